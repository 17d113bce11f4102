"""The Bedrock emulator refuses an output cap above the model's maximum output (the price catalog's figure) as Bedrock
does, with its ValidationException, on Converse, ConverseStream and InvokeModel; the maximum itself is taken."""

from __future__ import annotations

import json

import boto3
import pytest
from botocore.config import Config
from botocore.exceptions import ClientError

from tokenomy.emulate.bedrock_runtime import create_app
from tokenomy.emulate.instant_engine import InstantEngine
from tokenomy.emulate.server import ServerThread

HAIKU_45 = "anthropic.claude-haiku-4-5-20251001-v1:0"  # 64,000 output tokens at most (the catalog's figure)
PROMPT = "Name three colours of the rainbow please"


@pytest.fixture(scope="module")
def brt():
    with ServerThread(create_app(engine=InstantEngine())) as url:
        yield boto3.client(
            "bedrock-runtime",
            endpoint_url=url,
            region_name="us-east-1",
            aws_access_key_id="x",
            aws_secret_access_key="x",
            config=Config(retries={"total_max_attempts": 1}),
        )


def invoke(client, model_id: str, body: dict) -> dict:
    return json.loads(client.invoke_model(modelId=model_id, body=json.dumps(body))["body"].read())


@pytest.mark.parametrize("model_id", [HAIKU_45, f"us.{HAIKU_45}"])
def test_a_cap_above_the_models_maximum_output_is_bedrocks_validation_error(brt, model_id) -> None:
    limit = "The maximum tokens you requested exceeds the model limit of 64000. Try again with a maximum tokens value"
    messages = [{"role": "user", "content": [{"text": PROMPT}]}]
    for call in (
        lambda cap: brt.converse(modelId=model_id, messages=messages, inferenceConfig={"maxTokens": cap}),
        lambda cap: list(
            brt.converse_stream(modelId=model_id, messages=messages, inferenceConfig={"maxTokens": cap})["stream"]
        ),
        lambda cap: invoke(
            brt,
            model_id,
            {
                "anthropic_version": "bedrock-2023-05-31",
                "max_tokens": cap,
                "messages": [{"role": "user", "content": PROMPT}],
            },
        ),
    ):
        with pytest.raises(ClientError) as refused:
            call(64001)
        assert refused.value.response["Error"]["Code"] == "ValidationException"
        assert refused.value.response["Error"]["Message"].startswith(limit)
        assert call(64000)  # the maximum itself is taken


def test_claude_3_haikus_maximum_output_of_4096_is_held(brt) -> None:
    # The catalog had no maximum for Claude 3 Haiku, so the emulator took any cap for it; Bedrock refuses one above
    # its 4,096.
    haiku = "anthropic.claude-3-haiku-20240307-v1:0"
    messages = [{"role": "user", "content": [{"text": PROMPT}]}]
    with pytest.raises(ClientError) as refused:
        brt.converse(modelId=haiku, messages=messages, inferenceConfig={"maxTokens": 4097})
    assert "exceeds the model limit of 4096" in refused.value.response["Error"]["Message"]
    assert brt.converse(modelId=haiku, messages=messages, inferenceConfig={"maxTokens": 4096})["output"]["message"]
