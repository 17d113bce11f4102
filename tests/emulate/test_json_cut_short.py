"""A schema-constrained answer (structured output or a forced tool call) that max_tokens cuts short: the three
emulators stop as the APIs do (max_tokens / MAX_TOKENS, with the partial output), driven by the official SDKs."""

from __future__ import annotations

import json

import anthropic
import boto3
import pytest
from botocore.config import Config
from google import genai
from google.genai import types

from tokenomy.emulate import anthropic_api, bedrock_runtime, gemini_api
from tokenomy.emulate.server import ServerThread

pytestmark = [pytest.mark.slow, pytest.mark.filterwarnings("ignore:The model .* is deprecated:DeprecationWarning")]

SCHEMA = {
    "type": "object",
    "properties": {"city": {"type": "string"}, "forecast": {"type": "string"}},
    "required": ["city", "forecast"],
    "additionalProperties": False,  # closed, as Claude's structured outputs take a schema
}
ASK = "Give the weather in Paris as a long, detailed forecast."
LIMIT = 6


def _not_json(text: str) -> bool:
    try:
        json.loads(text)
    except ValueError:
        return True
    return False


@pytest.fixture(scope="module")
def claude():
    with ServerThread(anthropic_api.create_app()) as url:
        yield anthropic.Anthropic(base_url=url, api_key="unused", max_retries=0)


def test_anthropic_structured_output_cut_short_is_a_max_tokens_stop(claude) -> None:
    message = claude.messages.create(
        model="claude-sonnet-4-5-20250929",
        max_tokens=LIMIT,
        messages=[{"role": "user", "content": ASK}],
        extra_body={"output_config": {"format": {"type": "json_schema", "schema": SCHEMA}}},
    )
    assert message.stop_reason == "max_tokens"
    [block] = message.content
    assert block.type == "text" and block.text.startswith("{") and _not_json(block.text)
    assert message.usage.output_tokens == LIMIT


def test_anthropic_forced_tool_cut_short_keeps_a_partial_input(claude) -> None:
    kwargs = dict(
        model="claude-sonnet-4-5-20250929",
        max_tokens=LIMIT,
        messages=[{"role": "user", "content": ASK}],
        tools=[{"name": "report", "description": "Report the weather.", "input_schema": SCHEMA}],
        tool_choice={"type": "tool", "name": "report"},
    )
    message = claude.messages.create(**kwargs)
    assert message.stop_reason == "max_tokens"
    [block] = message.content
    assert block.type == "tool_use" and block.name == "report" and isinstance(block.input, dict)
    assert "forecast" not in block.input  # the limit cut the call before its second member
    with claude.messages.stream(**kwargs) as stream:
        partial = "".join(e.delta.partial_json for e in stream if e.type == "content_block_delta")
        final = stream.get_final_message()
    assert final.stop_reason == "max_tokens" and partial.startswith("{") and _not_json(partial)


def test_bedrock_converse_cut_short_is_a_max_tokens_stop() -> None:
    with ServerThread(bedrock_runtime.create_app()) as url:
        brt = boto3.client(
            "bedrock-runtime",
            endpoint_url=url,
            region_name="us-east-1",
            aws_access_key_id="x",
            aws_secret_access_key="x",
            config=Config(retries={"total_max_attempts": 1}),
        )
        model = "anthropic.claude-3-7-sonnet-20250219-v1:0"
        tool = {"toolSpec": {"name": "report", "inputSchema": {"json": SCHEMA}}}
        kwargs = dict(
            modelId=model,
            messages=[{"role": "user", "content": [{"text": ASK}]}],
            inferenceConfig={"maxTokens": LIMIT},
            toolConfig={"tools": [tool], "toolChoice": {"tool": {"name": "report"}}},
        )
        result = brt.converse(**kwargs)
        assert result["stopReason"] == "max_tokens"
        [block] = result["output"]["message"]["content"]
        assert block["toolUse"]["name"] == "report" and "forecast" not in block["toolUse"]["input"]
        assert result["usage"]["outputTokens"] == LIMIT
        events = list(brt.converse_stream(**kwargs)["stream"])
        partial = "".join(
            e["contentBlockDelta"]["delta"]["toolUse"]["input"] for e in events if "contentBlockDelta" in e
        )
        assert partial.startswith("{") and _not_json(partial)
        assert [e["messageStop"]["stopReason"] for e in events if "messageStop" in e] == ["max_tokens"]


def test_gemini_json_schema_cut_short_is_max_tokens_with_the_partial_text() -> None:
    with ServerThread(gemini_api.create_app()) as url:
        client = genai.Client(api_key="x", http_options={"base_url": url})
        config = types.GenerateContentConfig(
            max_output_tokens=LIMIT, response_mime_type="application/json", response_json_schema=SCHEMA
        )
        response = client.models.generate_content(model="gemini-2.5-flash", contents=ASK, config=config)
        [candidate] = response.candidates
        assert candidate.finish_reason == types.FinishReason.MAX_TOKENS
        assert response.text.startswith("{") and _not_json(response.text)
        assert response.usage_metadata.candidates_token_count == LIMIT
        tool = types.Tool(
            function_declarations=[
                types.FunctionDeclaration(
                    name="report", description="Report the weather.", parameters_json_schema=SCHEMA
                )
            ]
        )
        forced = types.GenerateContentConfig(
            max_output_tokens=LIMIT,
            tools=[tool],
            tool_config=types.ToolConfig(function_calling_config=types.FunctionCallingConfig(mode="ANY")),
            automatic_function_calling=types.AutomaticFunctionCallingConfig(disable=True),
        )
        chunks = list(client.models.generate_content_stream(model="gemini-2.5-flash", contents=ASK, config=forced))
        assert chunks[-1].candidates[0].finish_reason == types.FinishReason.MAX_TOKENS
        assert not any(c.function_calls for c in chunks)  # a call is sent whole or not at all


def test_azure_json_schema_cut_short_is_a_length_finish_with_the_partial_text() -> None:
    import openai

    from tokenomy.emulate import azure_openai

    with ServerThread(azure_openai.create_app({"chat-prod": "gpt-4o-mini"})) as url:
        client = openai.AzureOpenAI(azure_endpoint=url, api_key="k", api_version="2024-10-21", max_retries=0)
        fmt = {"type": "json_schema", "json_schema": {"name": "weather", "schema": SCHEMA, "strict": True}}
        kwargs = dict(
            model="chat-prod", messages=[{"role": "user", "content": ASK}], max_tokens=LIMIT, response_format=fmt
        )
        reply = client.chat.completions.create(**kwargs)
        [choice] = reply.choices
        assert choice.finish_reason == "length"
        assert choice.message.content.startswith("{") and _not_json(choice.message.content)
        assert reply.usage.completion_tokens == LIMIT
        chunks = list(client.chat.completions.create(**kwargs, stream=True))
        assert [c.choices[0].finish_reason for c in chunks if c.choices and c.choices[0].finish_reason] == ["length"]
        streamed = "".join(c.choices[0].delta.content or "" for c in chunks if c.choices)
        assert streamed == choice.message.content
        tool = {"type": "function", "function": {"name": "report", "parameters": SCHEMA}}
        called = client.chat.completions.create(
            **kwargs | {"response_format": None},
            tools=[tool],
            tool_choice={"type": "function", "function": {"name": "report"}},
        )
        assert called.choices[0].finish_reason == "length"
        assert _not_json(called.choices[0].message.tool_calls[0].function.arguments)
