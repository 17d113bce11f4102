"""An OpenAI-format model's refusal on Bedrock's Converse and InvokeModel routes, driven by boto3's `bedrock-runtime`
client: it comes back as the answer's text, whole and streamed, as the Messages and Gemini API routes give it."""

from __future__ import annotations

import json

import boto3
import pytest
from botocore.config import Config

from helpers import stand_in_aws_keys
from helpers.recording_openai import RecordingOpenAI
from tokenomy.config import parse_config
from tokenomy.emulate.server import ServerThread
from tokenomy.gateway.app import create_app

HAIKU = "anthropic.claude-3-haiku-20240307-v1:0"
REFUSED = "I'm sorry, I can't help with that."
ASK = [{"role": "user", "content": [{"text": "Something bad"}]}]


@pytest.fixture
def refusing(tmp_path, monkeypatch):
    """A boto3 client for a gateway whose route `fast` is an OpenAI-format model that refuses."""
    stand_in_aws_keys(monkeypatch)
    with RecordingOpenAI() as upstream:
        upstream.refuse(REFUSED)
        models = {"fast": {"provider": "openai", "model": "up", "base_url": upstream.url, "price_as": HAIKU}}
        with ServerThread(
            create_app(parse_config({"models": models}), str(tmp_path / "ledger.duckdb")), lifespan="on"
        ) as url:
            config = Config(retries={"max_attempts": 1, "mode": "standard"})
            yield boto3.client("bedrock-runtime", endpoint_url=url, region_name="us-east-1", config=config)


def test_an_openai_format_models_refusal_comes_back_as_the_converse_answers_text(refusing) -> None:
    # OpenAI's models refuse in `message.refusal` (streamed as `delta.refusal`), with no content: Converse has no field
    # for it, and the gateway answered an empty message, whole and streamed, as if the model said nothing.
    client = refusing
    whole = client.converse(modelId="fast", messages=ASK)
    events = list(client.converse_stream(modelId="fast", messages=ASK)["stream"])
    assert whole["output"]["message"]["content"] == [{"text": REFUSED}] and whole["stopReason"] == "end_turn"
    deltas = [e["contentBlockDelta"]["delta"] for e in events if "contentBlockDelta" in e]
    assert "".join(d.get("text", "") for d in deltas) == REFUSED
    assert [e["messageStop"]["stopReason"] for e in events if "messageStop" in e] == ["end_turn"]


def test_an_openai_format_models_refusal_comes_back_as_the_invoke_model_answers_text(refusing) -> None:
    # InvokeModel answers with the Messages API's mapping, which gives the refusal as text with stop_reason "refusal".
    client = refusing
    body = json.dumps(
        {
            "anthropic_version": "bedrock-2023-05-31",
            "max_tokens": 50,
            "messages": [{"role": "user", "content": "Something bad"}],
        }
    )
    whole = json.loads(client.invoke_model(modelId="fast", body=body)["body"].read())
    frames = client.invoke_model_with_response_stream(modelId="fast", body=body)["body"]
    events = [json.loads(frame["chunk"]["bytes"]) for frame in frames]
    assert whole["content"] == [{"type": "text", "text": REFUSED}] and whole["stop_reason"] == "refusal"
    deltas = [e["delta"] for e in events if e["type"] == "content_block_delta"]
    assert "".join(d.get("text", "") for d in deltas) == REFUSED
    assert [e["delta"]["stop_reason"] for e in events if e["type"] == "message_delta"] == ["refusal"]
