"""Reasoning sent back without a signature, through Bedrock's Converse. Converse's ReasoningTextBlock types the
signature optional, as the API serves models that sign nothing (DeepSeek-R1 answers unsigned reasoningText and takes
it back so); Claude checks the signature of each reasoning block sent back and refuses one without ("include the text
and its signature unmodified"), on Bedrock as on Anthropic's API. The gateway passed an OpenAI caller's unsigned
reasoning_content on to Claude on Bedrock, to fail there, and the Bedrock emulator refused unsigned reasoning for every
model. Driven with boto3 and the openai SDK against the Bedrock emulator and a real gateway on 127.0.0.1."""

from __future__ import annotations

import boto3
import openai
import pytest
from botocore.config import Config
from botocore.exceptions import ClientError

from helpers import stand_in_aws_keys
from tokenomy.config import parse_config
from tokenomy.emulate.bedrock_runtime import create_app as create_bedrock
from tokenomy.emulate.instant_engine import InstantEngine
from tokenomy.emulate.server import ServerThread
from tokenomy.gateway.app import create_app

CLAUDE = "anthropic.claude-sonnet-4-5-20250929-v1:0"
R1 = "deepseek.r1-v1:0"
UNSIGNED_TURN = [
    {"role": "user", "content": [{"text": "hi"}]},
    {
        "role": "assistant",
        "content": [{"reasoningContent": {"reasoningText": {"text": "greet back"}}}, {"text": "hello"}],
    },
    {"role": "user", "content": [{"text": "again"}]},
]


@pytest.fixture
def bedrock(monkeypatch):
    stand_in_aws_keys(monkeypatch)
    app = create_bedrock(engine=InstantEngine())
    calls: list[str] = []

    @app.middleware("http")
    async def record(request, call_next):
        calls.append(request.url.path)
        return await call_next(request)

    with ServerThread(app) as url:
        yield url, calls


def test_bedrock_refuses_unsigned_reasoning_for_claude_only(bedrock) -> None:
    url, _ = bedrock
    client = boto3.client(
        "bedrock-runtime",
        endpoint_url=url,
        region_name="us-east-1",
        config=Config(retries={"max_attempts": 1, "mode": "standard"}),
    )
    with pytest.raises(ClientError) as refused:
        client.converse(modelId=CLAUDE, messages=UNSIGNED_TURN, inferenceConfig={"maxTokens": 8})
    error = refused.value.response["Error"]
    assert error["Code"] == "ValidationException"
    assert "messages.1.content.0" in error["Message"] and "signature" in error["Message"], error
    # A model that signs nothing takes its reasoning back unsigned.
    reply = client.converse(modelId=R1, messages=UNSIGNED_TURN, inferenceConfig={"maxTokens": 8})
    assert reply["output"]["message"]["role"] == "assistant"


def test_the_gateway_refuses_unsigned_reasoning_for_claude_on_bedrock_before_any_call(bedrock, tmp_path) -> None:
    url, calls = bedrock
    config = parse_config(
        {
            "models": {
                "claude": {"provider": "bedrock", "region": "us-east-1", "endpoint_url": url, "model": CLAUDE},
                "r1": {"provider": "bedrock", "region": "us-east-1", "endpoint_url": url, "model": R1},
            }
        }
    )
    said = [
        {"role": "user", "content": "hi"},
        {"role": "assistant", "content": "hello", "reasoning_content": "greet back"},
        {"role": "user", "content": "again"},
    ]
    with ServerThread(create_app(config, str(tmp_path / "ledger.duckdb")), lifespan="on") as gateway:
        chat = openai.OpenAI(base_url=gateway + "/v1", api_key="unused", max_retries=0)
        for stream in (False, True):
            with pytest.raises(openai.BadRequestError) as refused:
                reply = chat.chat.completions.create(model="claude", messages=said, max_tokens=8, stream=stream)
                list(reply) if stream else None
            body = refused.value.body
            assert body["param"] == "messages[1].reasoning_content", body
            assert "signed" in body["message"] and "drop the unsigned reasoning" in body["message"], body
        assert not any(path.startswith("/model/") for path in calls)  # nothing reached Bedrock
        answered = chat.chat.completions.create(model="r1", messages=said, max_tokens=8)
        assert answered.choices[0].message.role == "assistant"
