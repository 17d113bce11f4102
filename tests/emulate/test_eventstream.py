"""Event-stream framing (checked with botocore's own decoder) and the emulators' prompt-cache rules."""

from __future__ import annotations

import json
import zlib

import pytest
from botocore.eventstream import ChecksumMismatch, EventStreamBuffer

from tokenomy.emulate.prompt_cache import Checkpoint, PromptCache, prefix_digest
from tokenomy.providers import eventstream


def decode_all(data: bytes) -> list:
    buffer = EventStreamBuffer()
    buffer.add_data(data)
    return list(buffer)


def test_event_round_trips_through_botocore_decoder() -> None:
    frames = eventstream.event("messageStart", {"role": "assistant"}) + eventstream.event(
        "contentBlockDelta", {"contentBlockIndex": 0, "delta": {"text": "héllo ✓"}}
    )
    messages = decode_all(frames)
    assert [m.headers[":event-type"] for m in messages] == ["messageStart", "contentBlockDelta"]
    assert all(m.headers[":message-type"] == "event" for m in messages)
    assert all(m.headers[":content-type"] == "application/json" for m in messages)
    assert json.loads(messages[1].payload)["delta"]["text"] == "héllo ✓"
    # The prelude's total length matches the frame, so frames concatenate cleanly.
    assert messages[0].prelude.total_length == len(eventstream.event("messageStart", {"role": "assistant"}))


def test_exception_frame_carries_exception_type() -> None:
    (message,) = decode_all(eventstream.exception("modelStreamErrorException", "boom"))
    assert message.headers[":message-type"] == "exception"
    assert message.headers[":exception-type"] == "modelStreamErrorException"
    assert json.loads(message.payload) == {"message": "boom"}


def test_corrupted_frame_fails_botocore_crc_check() -> None:
    frame = bytearray(eventstream.event("messageStop", {"stopReason": "end_turn"}))
    frame[-6] ^= 0xFF  # flip a payload byte: the message CRC no longer matches
    with pytest.raises(ChecksumMismatch):
        decode_all(bytes(frame))
    # and an intact frame's trailing CRC is the CRC32 of everything before it
    good = eventstream.event("messageStop", {"stopReason": "end_turn"})
    assert int.from_bytes(good[-4:], "big") == zlib.crc32(good[:-4]) & 0xFFFFFFFF


class Clock:
    """A controllable monotonic clock so TTL expiry is tested without waiting minutes."""

    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def point(text: str, tokens: int, ttl: int = 300) -> Checkpoint:
    return Checkpoint(prefix_digest("m", text), tokens, ttl)


def test_write_then_read_then_expiry() -> None:
    clock = Clock()
    cache = PromptCache(clock=clock)
    first = cache.account([point("sys", 1500)], total_tokens=1520, min_tokens=1024)
    assert (first.input_tokens, first.cache_read_tokens, first.cache_write_tokens) == (20, 0, 1500)
    clock.now += 299
    second = cache.account([point("sys", 1500)], total_tokens=1530, min_tokens=1024)
    assert (second.input_tokens, second.cache_read_tokens, second.cache_write_tokens) == (30, 1500, 0)
    clock.now += 299  # the hit refreshed the TTL, so this is still a hit
    assert cache.account([point("sys", 1500)], 1530, 1024).cache_read_tokens == 1500
    clock.now += 301
    expired = cache.account([point("sys", 1500)], 1530, 1024)
    assert (expired.cache_read_tokens, expired.cache_write_tokens) == (0, 1500)


def test_below_minimum_is_not_cached() -> None:
    cache = PromptCache()
    for _ in range(2):
        account = cache.account([point("short", 900)], total_tokens=950, min_tokens=1024)
        assert (account.input_tokens, account.cache_read_tokens, account.cache_write_tokens) == (950, 0, 0)


def test_bedrock_rule_needs_minimum_per_checkpoint_anthropic_rule_per_prefix() -> None:
    points = [point("a", 1100), point("ab", 1500)]
    # Bedrock: the second point is only 400 tokens past the first, so it is ignored.
    assert [p.tokens for p in PromptCache().effective(points, 1024, per_checkpoint=True)] == [1100]
    # Anthropic: every prefix of >= 1024 tokens can be cached.
    assert [p.tokens for p in PromptCache().effective(points, 1024, per_checkpoint=False)] == [1100, 1500]


def test_longest_live_prefix_is_read_and_the_rest_written() -> None:
    cache = PromptCache()
    cache.account([point("a", 1100)], 1200, 1024)
    account = cache.account([point("a", 1100), point("ab", 2300)], 2400, 1024)
    assert (account.input_tokens, account.cache_read_tokens, account.cache_write_tokens) == (100, 1100, 1200)
    again = cache.account([point("a", 1100), point("ab", 2300)], 2400, 1024)
    assert (again.cache_read_tokens, again.cache_write_tokens) == (2300, 0)


def test_prefixes_are_per_model() -> None:
    cache = PromptCache()
    cache.account([Checkpoint(prefix_digest("model-a", "p"), 2000, 300)], 2100, 1024)
    other = cache.account([Checkpoint(prefix_digest("model-b", "p"), 2000, 300)], 2100, 1024)
    assert other.cache_read_tokens == 0 and other.cache_write_tokens == 2000


def test_writes_are_split_by_checkpoint_ttl() -> None:
    cache = PromptCache()
    account = cache.account([point("a", 1100, ttl=3600), point("ab", 2300, ttl=300)], 2400, 1024)
    assert account.writes_by_ttl == ((300, 1200), (3600, 1100)) and account.cache_write_tokens == 2300
