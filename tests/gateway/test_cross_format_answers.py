"""How an answer ended and what it counted, told on an API the gateway speaks when the model behind it speaks another:
Claude on Anthropic's API (a scripted upstream), driven by the front's own SDK, whole and streamed."""

from __future__ import annotations

import boto3
import openai
import pytest
from botocore.config import Config

from helpers.claude_gateway import ClaudeGateway
from tokenomy.ledger.store import open_store

ASK = [{"role": "user", "content": [{"text": "Summarise all of it"}]}]


@pytest.fixture
def gateway(tmp_path):
    gateway = ClaudeGateway(tmp_path / "ledger.duckdb", {})
    yield gateway
    gateway.stack.close()


def test_claudes_full_context_window_is_converses_own_stop_reason_whole_and_streamed(gateway) -> None:
    # Converse has a stopReason for a full context window, and Bedrock gives Claude's there: the caller makes room in
    # the prompt. From Anthropic's API it came back as max_tokens, so a Converse caller raised maxTokens and retried.
    gateway.scripted.reply = {"text": "Hi", "stop_reason": "model_context_window_exceeded", "stop_sequence": None}
    client = boto3.client(
        "bedrock-runtime", endpoint_url=gateway.url, region_name="us-east-1", config=Config(retries={"max_attempts": 1})
    )
    whole = client.converse(modelId="claude", messages=ASK, inferenceConfig={"maxTokens": 50})
    events = list(client.converse_stream(modelId="claude", messages=ASK, inferenceConfig={"maxTokens": 50})["stream"])
    assert whole["stopReason"] == "model_context_window_exceeded"
    assert [e["messageStop"]["stopReason"] for e in events if "messageStop" in e] == ["model_context_window_exceeded"]
    assert whole["output"]["message"]["content"] == [{"text": "Hi"}]


def test_claudes_cache_writes_are_in_chat_completions_usage_whole_and_streamed_as_in_the_ledger(gateway) -> None:
    # prompt_tokens counts Claude's cache writes with its plain input, and writes bill at 1.25x input: a chat caller
    # had cached_tokens only (the writes in the gateway's own `tokenomy` object, and nowhere when streamed), so its
    # usage could not be priced or matched with the ledger row. They are OpenAI's prompt_tokens_details field.
    gateway.scripted.usage = {
        "input_tokens": 100,
        "output_tokens": 20,
        "cache_creation_input_tokens": 30,
        "cache_read_input_tokens": 50,
    }
    gateway.scripted.delta_usage = {"output_tokens": 20}
    client = openai.OpenAI(base_url=gateway.url + "/v1", api_key="unused", max_retries=0)
    ask = {"model": "claude", "max_tokens": 50, "messages": [{"role": "user", "content": "Summarise all of it"}]}
    whole = client.chat.completions.create(**ask)
    with client.chat.completions.stream(**ask, stream_options={"include_usage": True}) as stream:
        streamed = stream.get_final_completion()
    for usage in (whole.usage, streamed.usage):
        assert usage is not None and usage.prompt_tokens_details is not None
        assert usage.prompt_tokens == 180
        assert usage.prompt_tokens_details.cached_tokens == 50
        assert usage.prompt_tokens_details.cache_write_tokens == 30
    gateway.stack.close()  # the ledger is written once the gateway stops
    rows = [e for e in open_store(str(gateway.ledger)).events() if e.outcome == "ok"]
    assert [(e.input_tokens, e.cache_read_tokens, e.cache_write_tokens) for e in rows] == [(100, 50, 30)] * 2
