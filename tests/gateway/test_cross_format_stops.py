"""How an answer ended, told on every API the gateway speaks when the model behind it speaks another: Claude on
Anthropic's API (a scripted upstream) driven by each front's own SDK, whole and streamed."""

from __future__ import annotations

import boto3
import pytest
from botocore.config import Config

from helpers.claude_gateway import ClaudeGateway

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
