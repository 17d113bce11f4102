"""The Bedrock emulator's InvokeModel on chat models, driven by boto3: each family's own body answered in that
family's answer shape (Amazon Titan Text, Meta Llama, Mistral AI), with Bedrock's token-count headers."""

from __future__ import annotations

import json

import boto3
import pytest
from botocore.config import Config
from botocore.exceptions import ClientError

from tokenomy.emulate.bedrock_runtime import create_app
from tokenomy.emulate.instant_engine import InstantEngine
from tokenomy.emulate.server import ServerThread

TITAN_TEXT = "amazon.titan-text-express-v1"
LLAMA = "meta.llama3-8b-instruct-v1:0"
MISTRAL = "mistral.mistral-7b-instruct-v0:2"
HAIKU = "anthropic.claude-3-haiku-20240307-v1:0"
COMMAND_R = "cohere.command-r-v1:0"
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


def invoke(client, model_id: str, body: dict) -> tuple[dict, dict]:
    result = client.invoke_model(modelId=model_id, body=json.dumps(body))
    return json.loads(result["body"].read()), result["ResponseMetadata"]["HTTPHeaders"]


def counts(headers: dict) -> tuple[int, int]:
    return int(headers["x-amzn-bedrock-input-token-count"]), int(headers["x-amzn-bedrock-output-token-count"])


def test_titan_text_answers_results_with_its_token_counts(brt) -> None:
    answer, headers = invoke(brt, TITAN_TEXT, {"inputText": PROMPT, "textGenerationConfig": {"maxTokenCount": 3}})
    [result] = answer["results"]
    assert set(answer) == {"inputTextTokenCount", "results"}
    assert result["outputText"].strip() and result["completionReason"] == "LENGTH"
    assert (answer["inputTextTokenCount"], result["tokenCount"]) == counts(headers)
    assert result["tokenCount"] == 3 and answer["inputTextTokenCount"] > 0


def test_llama_answers_its_generation_and_counts(brt) -> None:
    answer, headers = invoke(brt, LLAMA, {"prompt": PROMPT, "max_gen_len": 50, "temperature": 0.1})
    assert set(answer) == {"generation", "prompt_token_count", "generation_token_count", "stop_reason"}
    assert answer["generation"].strip() and answer["stop_reason"] == "stop"
    assert (answer["prompt_token_count"], answer["generation_token_count"]) == counts(headers)
    assert answer["generation_token_count"] > 0


def test_mistral_answers_outputs_with_the_counts_in_headers_only(brt) -> None:
    answer, headers = invoke(brt, MISTRAL, {"prompt": f"<s>[INST] {PROMPT} [/INST]", "max_tokens": 2})
    assert answer == {"outputs": [{"text": answer["outputs"][0]["text"], "stop_reason": "length"}]}
    assert answer["outputs"][0]["text"].strip()
    assert counts(headers)[0] > 0 and counts(headers)[1] == 2


@pytest.mark.parametrize(
    ("model_id", "body", "named"),
    [
        (LLAMA, {"prompt": PROMPT, "max_tokens": 5}, "extraneous key [max_tokens]"),
        (TITAN_TEXT, {"inputText": PROMPT, "textGenerationConfig": {"maxTokens": 5}}, "extraneous key [maxTokens]"),
        (MISTRAL, {"max_tokens": 5}, "required key [prompt]"),
    ],
)
def test_a_body_not_of_the_models_family_is_a_validation_error(brt, model_id, body, named) -> None:
    with pytest.raises(ClientError) as refused:
        invoke(brt, model_id, body)
    assert refused.value.response["Error"]["Code"] == "ValidationException"
    assert named in refused.value.response["Error"]["Message"]


def test_a_body_the_emulator_cannot_translate_names_converse_as_an_invoke_model_caller_reaches_it(brt) -> None:
    # Its 400 told a direct InvokeModel caller to "create the job with modelInvocationType='Converse'": a batch job's
    # fix, and there is no job. It names the Converse call now, for another family's body and for Claude's content
    # other than text and tools alike.
    image = {"type": "image", "source": {"type": "base64", "media_type": "image/png", "data": "iVBORw0KGgo="}}
    claude = {
        "anthropic_version": "bedrock-2023-05-31",
        "max_tokens": 5,
        "messages": [{"role": "user", "content": [image]}],
    }
    for model_id, body, where in (
        (HAIKU, claude, "messages.0.0: "),
        (COMMAND_R, {"message": PROMPT}, "Claude, Nova, Llama, Mistral and Titan Text only"),
    ):
        with pytest.raises(ClientError) as err:
            invoke(brt, model_id, body)
        error = err.value.response["Error"]
        assert error["Code"] == "ValidationException" and where in error["Message"], error
        assert "call Converse (boto3's `converse` or `converse_stream`) instead of InvokeModel" in error["Message"]
        assert "job" not in error["Message"], error


SONNET_3_7 = "anthropic.claude-3-7-sonnet-20250219-v1:0"
INTERLEAVED = ["interleaved-thinking-2025-05-14"]
THINKING = {"type": "enabled", "budget_tokens": 4096}


def test_a_thinking_budget_above_the_cap_is_taken_under_the_interleaved_thinking_beta(brt) -> None:
    # With interleaved thinking (anthropic_beta) the budget is the whole turn's and may exceed the output cap, on
    # Converse and InvokeModel alike; the emulator refused it as it refuses it without the beta, and InvokeModel
    # refused anthropic_beta itself as an extraneous key.
    converse = {"modelId": SONNET_3_7, "messages": [{"role": "user", "content": [{"text": PROMPT}]}]}
    converse["inferenceConfig"] = {"maxTokens": 2000}
    with pytest.raises(ClientError, match=r"must be greater than thinking\.budget_tokens"):
        brt.converse(**converse, additionalModelRequestFields={"thinking": THINKING})
    answer = brt.converse(
        **converse, additionalModelRequestFields={"thinking": THINKING, "anthropic_beta": INTERLEAVED}
    )
    assert [next(iter(block)) for block in answer["output"]["message"]["content"]] == ["reasoningContent", "text"]
    native = {"anthropic_version": "bedrock-2023-05-31", "max_tokens": 2000, "thinking": THINKING}
    native["messages"] = [{"role": "user", "content": PROMPT}]
    with pytest.raises(ClientError, match=r"must be greater than thinking\.budget_tokens"):
        invoke(brt, SONNET_3_7, native)
    answer, _ = invoke(brt, SONNET_3_7, {**native, "anthropic_beta": INTERLEAVED})
    assert [block["type"] for block in answer["content"]] == ["thinking", "text"]


CLAUDE_BODY = {
    "anthropic_version": "bedrock-2023-05-31",
    "max_tokens": 200,
    "messages": [{"role": "user", "content": PROMPT}],
}
COLOURS = {
    "type": "object",
    "properties": {"colours": {"type": "array", "items": {"type": "string"}}},
    "required": ["colours"],
    "additionalProperties": False,
}


def test_claude_output_config_is_answered_with_json_valid_against_its_schema(brt) -> None:
    # InvokeModel takes Claude's structured output in output_config.format (Bedrock's "Structured outputs"); the
    # emulator refused the key as extraneous.
    config = {"format": {"type": "json_schema", "schema": COLOURS}}
    answer, _ = invoke(brt, SONNET_3_7, {**CLAUDE_BODY, "output_config": config})
    [block] = answer["content"]
    assert block["type"] == "text" and isinstance(json.loads(block["text"])["colours"], list)


@pytest.mark.parametrize(
    ("schema", "named"),
    [
        ({**COLOURS, "additionalProperties": True}, "'additionalProperties' must be explicitly set to false"),
        (
            {**COLOURS, "properties": {"colours": {"type": "array", "maxItems": 3}}},
            "For 'array' type, property 'maxItems' is not supported",
        ),
        (
            {**COLOURS, "properties": {"colours": {"type": "integer", "minimum": 1}}},
            "For 'integer' type, property 'minimum' is not supported",
        ),
        ({"type": "object", "properties": {"n": {"type": 5}}}, "output_config.format.schema: JSON schema is invalid"),
    ],
)
def test_claude_output_config_claude_cannot_hold_is_refused_as_anthropics_api_refuses_it(brt, schema, named) -> None:
    with pytest.raises(ClientError) as refused:
        invoke(brt, SONNET_3_7, {**CLAUDE_BODY, "output_config": {"format": {"type": "json_schema", "schema": schema}}})
    assert refused.value.response["Error"]["Code"] == "ValidationException"
    assert "output_config.format.schema: " in refused.value.response["Error"]["Message"]
    assert named in refused.value.response["Error"]["Message"]


def test_a_claude_strict_tool_is_held_to_what_claude_takes(brt) -> None:
    tool = {"name": "list_colours", "strict": True, "input_schema": COLOURS}
    forced = {"type": "tool", "name": "list_colours"}
    answer, _ = invoke(brt, SONNET_3_7, {**CLAUDE_BODY, "tools": [tool], "tool_choice": forced})
    [call] = answer["content"]
    assert call["type"] == "tool_use" and isinstance(call["input"]["colours"], list)
    capped = {**COLOURS, "properties": {"colours": {"type": "array", "maxItems": 3}}}
    with pytest.raises(ClientError) as refused:
        invoke(brt, SONNET_3_7, {**CLAUDE_BODY, "tools": [{**tool, "input_schema": capped}]})
    message = refused.value.response["Error"]["Message"]
    assert "tools.0.custom.input_schema: For 'array' type, property 'maxItems' is not supported" in message
