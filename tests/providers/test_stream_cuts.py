"""A stream whose body breaks off, or ends before the provider's end-of-answer event, is an error (a ProviderError
with a ledger row), never a raw HTTP-client exception nor a partial answer passed off as whole."""

from __future__ import annotations

import json
import re
import socket
import threading

import pytest

from tokenomy.client import CallPolicy, Tokenomy
from tokenomy.errors import ProviderError
from tokenomy.ledger.store import open_store
from tokenomy.messages import ChatRequest
from tokenomy.providers import eventstream
from tokenomy.providers.registry import ModelSpec
from tokenomy.resilience.retry import RetryPolicy

pytestmark = pytest.mark.filterwarnings("ignore:The model .* is deprecated:DeprecationWarning")


def sse(*events: tuple[str | None, dict]) -> bytes:
    return b"".join(
        (f"event: {name}\n" if name else "").encode() + b"data: " + json.dumps(data).encode() + b"\n\n"
        for name, data in events
    )


ANTHROPIC = sse(
    (
        "message_start",
        {
            "type": "message_start",
            "message": {
                "id": "m1",
                "type": "message",
                "role": "assistant",
                "model": "claude-sonnet-4-5-20250929",
                "content": [],
                "stop_reason": None,
                "stop_sequence": None,
                "usage": {"input_tokens": 10, "output_tokens": 1},
            },
        },
    ),
    ("content_block_start", {"type": "content_block_start", "index": 0, "content_block": {"type": "text", "text": ""}}),
    (
        "content_block_delta",
        {"type": "content_block_delta", "index": 0, "delta": {"type": "text_delta", "text": "part"}},
    ),
)
GEMINI = sse(
    (
        None,
        {
            "candidates": [{"content": {"role": "model", "parts": [{"text": "part"}]}, "index": 0}],
            "modelVersion": "gemini-2.5-flash",
        },
    )
)
BEDROCK = eventstream.event("messageStart", {"role": "assistant"}) + eventstream.event(
    "contentBlockDelta", {"contentBlockIndex": 0, "delta": {"text": "part"}}
)
CASES = {
    "anthropic": (ANTHROPIC, "text/event-stream", {"base_url": "{url}"}, "claude-sonnet-4-5-20250929"),
    "gemini": (GEMINI, "text/event-stream", {"base_url": "{url}"}, "gemini-2.5-flash"),
    "bedrock": (
        BEDROCK,
        "application/vnd.amazon.eventstream",
        {"endpoint_url": "{url}", "region": "us-east-1"},
        "anthropic.claude-3-5-sonnet-20240620-v1:0",
    ),
}


class PartialStream:
    """Answers every request with the start of a stream: then cuts the connection mid-body (`cut`), or ends the
    body cleanly with the answer's end never sent."""

    def __init__(self, payload: bytes, content_type: str, cut: bool) -> None:
        self.calls = 0
        self.sock = socket.socket()
        self.sock.bind(("127.0.0.1", 0))
        self.sock.listen(8)
        self.url = f"http://127.0.0.1:{self.sock.getsockname()[1]}"
        head = f"HTTP/1.1 200 OK\r\ncontent-type: {content_type}\r\ntransfer-encoding: chunked\r\n\r\n".encode()
        self.reply = head + f"{len(payload):x}\r\n".encode() + payload + b"\r\n" + (b"" if cut else b"0\r\n\r\n")
        threading.Thread(target=self._serve, daemon=True).start()

    def _serve(self) -> None:
        while True:
            try:
                conn, _ = self.sock.accept()
            except OSError:
                return
            with conn:
                data = b""
                while b"\r\n\r\n" not in data:
                    data += conn.recv(65536)
                head, _, body = data.partition(b"\r\n\r\n")
                length = next(
                    int(line.split(b":")[1])
                    for line in head.split(b"\r\n")
                    if line.lower().startswith(b"content-length")
                )
                while len(body) < length:
                    body += conn.recv(65536)
                self.calls += 1
                conn.sendall(self.reply)

    def close(self) -> None:
        self.sock.close()


@pytest.mark.parametrize("cut", [True, False], ids=["cut", "no-end-event"])
@pytest.mark.parametrize("provider", list(CASES))
def test_a_partial_stream_is_a_recorded_server_error(provider, cut, ledger_path) -> None:
    payload, content_type, where, model = CASES[provider]
    server = PartialStream(payload, content_type, cut)
    try:
        spec = ModelSpec(
            name="m", provider=provider, model=model, **{k: v.format(url=server.url) for k, v in where.items()}
        )
        policy = CallPolicy(retry=RetryPolicy(max_attempts=3, base_delay_s=0.01, deadline_s=20))
        with Tokenomy(ledger_path, models={"m": spec}, policy=policy) as client:
            deltas = []
            with pytest.raises(ProviderError) as caught:
                for chunk in client.stream(ChatRequest.simple("hi", model="m", max_tokens=5)):
                    deltas.append(chunk.delta)
        assert caught.value.kind == "server_error", caught.value
        assert deltas == ["part"] and server.calls == 1  # the caller has part of an answer: not retried
        (row,) = open_store(ledger_path).events()
        assert row.outcome == "server_error" and row.output_tokens == 1  # billed, so recorded at its estimate
    finally:
        server.close()


def test_cannot_reach_names_the_endpoint_that_was_tried(monkeypatch):
    # httpx says "All connection attempts failed" (or "Connection refused") without the address: the error did not
    # say which base_url or --endpoint-url was down.
    from tokenomy.providers.anthropic_provider import AnthropicProvider
    from tokenomy.providers.gemini_provider import GeminiProvider

    monkeypatch.setenv("GEMINI_API_KEY", "x")
    monkeypatch.setenv("ANTHROPIC_API_KEY", "x")
    with socket.socket() as probe:  # a port nothing listens on
        probe.bind(("127.0.0.1", 0))
        down = f"http://127.0.0.1:{probe.getsockname()[1]}"
    for provider, model in (
        (GeminiProvider(base_url=down), "gemini-2.5-flash"),
        (AnthropicProvider(base_url=down), "claude-haiku-4-5"),
    ):
        with pytest.raises(ProviderError, match=rf"cannot reach the \w+ API at {re.escape(down)}: "):
            provider.chat(ChatRequest.simple("hi", model=model, max_tokens=5))
