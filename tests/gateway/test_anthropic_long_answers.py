"""A call not streamed to Claude whose answer may take longer than the model's timeout_s (the seconds its upstream may
stay silent): the Anthropic provider sends it as a stream and hands back one answer, so a long answer that keeps
coming is not cut. Before, it was sent as one call silent until whole: it timed out, was billed and retried.
The official SDKs drive a real gateway on 127.0.0.1 in front of a scripted Anthropic API."""

from __future__ import annotations

import contextlib

import anthropic
import openai
import pytest

from helpers.scripted_anthropic import USAGE, ScriptedAnthropic
from tokenomy.config import parse_config
from tokenomy.emulate.server import ServerThread
from tokenomy.gateway.app import create_app
from tokenomy.ledger.store import open_store

SONNET = "claude-sonnet-4-5-20250929"
ASK = [{"role": "user", "content": "write at length"}]
LONG_USAGE = {**USAGE, "input_tokens": 12, "output_tokens": 40}


@contextlib.contextmanager
def claude_gateway(ledger):
    """The scripted API and the gateway's URL: Claude's timeout_s is 1 s, and an answer streamed comes in six events
    0.3 s apart (about 2 s in all; one not streamed is silent that long)."""
    scripted = ScriptedAnthropic(text="a long answer")
    scripted.pace_s = 0.3
    scripted.usage, scripted.delta_usage = dict(LONG_USAGE), {"output_tokens": 40}
    with ServerThread(scripted.app) as api:
        config = parse_config(
            {"models": {"claude": {"provider": "anthropic", "model": SONNET, "base_url": api, "timeout_s": 1}}}
        )
        with ServerThread(create_app(config, str(ledger)), lifespan="on") as url:
            yield scripted, url


def test_a_long_answer_not_streamed_is_streamed_upstream_and_comes_whole_in_one_row(ledger_path) -> None:
    with claude_gateway(ledger_path) as (scripted, url):
        ids = ask_at_length(scripted, url)
    rows = open_store(str(ledger_path)).events()  # once the gateway stopped: its ledger writer flushed
    for request_id in ids:
        [row] = [e for e in rows if e.request_id == request_id]  # one attempt, answered: no timeout billed, retried
        assert (row.outcome, row.input_tokens, row.output_tokens) == ("ok", 12, 40)
        assert row.cost_usd > 0 and row.ttft_ms is None  # as for a call not streamed: no first token was seen


def ask_at_length(scripted: ScriptedAnthropic, url: str) -> list[str]:
    """A call not streamed with a large max_tokens from each SDK; the ledger request ids of the two."""
    # The SDK's own timeout, given, keeps it from refusing a large max_tokens not streamed itself.
    sdk = anthropic.Anthropic(base_url=url, api_key="unused", max_retries=0, timeout=30)
    reply = sdk.messages.create(model="claude", max_tokens=8000, messages=ASK)  # ~225 s at 128,000 tokens an hour
    assert reply.content[0].text == "a long answer" and reply.stop_reason == "end_turn"
    assert (reply.usage.input_tokens, reply.usage.output_tokens) == (12, 40)
    assert [body.get("stream") for _, body in scripted.requests] == [True]
    chat = openai.OpenAI(base_url=url + "/v1", api_key="unused", max_retries=0, timeout=30)
    completion = chat.chat.completions.with_raw_response.create(model="claude", messages=ASK)  # uncapped: 64,000
    answer = completion.parse()
    assert answer.choices[0].message.content == "a long answer" and answer.choices[0].finish_reason == "stop"
    assert answer.usage is not None and (answer.usage.prompt_tokens, answer.usage.completion_tokens) == (12, 40)
    assert [(body.get("stream"), body["max_tokens"]) for _, body in scripted.requests[1:]] == [(True, 64000)]
    return [reply._request_id, completion.headers["x-request-id"]]


def test_a_small_cap_not_streamed_is_still_sent_not_streamed(ledger_path) -> None:
    with claude_gateway(ledger_path) as (scripted, url):
        scripted.pace_s = 0.0  # 16 tokens take ~0.45 s at 128,000 tokens an hour: within the 1 s timeout
        sdk = anthropic.Anthropic(base_url=url, api_key="unused", max_retries=0)
        reply = sdk.messages.create(model="claude", max_tokens=16, messages=ASK)
    assert reply.content[0].text == "a long answer"
    assert [body.get("stream") for _, body in scripted.requests] == [None]


def test_an_error_ending_the_stream_of_a_long_answer_not_streamed_is_the_one_a_call_not_streamed_gets(
    ledger_path,
) -> None:
    with claude_gateway(ledger_path) as (scripted, url):
        scripted.pace_s = 0.0
        scripted.failure = {"type": "overloaded_error", "message": "Overloaded"}
        sdk = anthropic.Anthropic(base_url=url, api_key="unused", max_retries=0, timeout=30)
        with pytest.raises(anthropic.APIStatusError) as failed:
            sdk.messages.create(model="claude", max_tokens=8000, messages=ASK)
    # Anthropic's own 529 overloaded_error, as for a 529 answered to a call not streamed (retried first).
    assert failed.value.status_code == 529 and failed.value.body["error"]["type"] == "overloaded_error"
    assert len(scripted.requests) > 1 and all(body.get("stream") for _, body in scripted.requests)
