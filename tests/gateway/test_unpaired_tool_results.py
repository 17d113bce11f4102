"""A tool result answering no call of the assistant turn before it (an agent that trimmed its history, a tool message
sent twice), or a tool call the next turn leaves unanswered, is refused by every provider's API with a 400. The
gateway sent it on: Claude refused it in Anthropic's terms (`messages.2.content.0`, a place the OpenAI caller never
wrote), then each fallback was tried and refused in turn. It is refused before any call, whatever the route, with the
caller's API's 400 naming the place as the caller sent it and the fix; nothing reaches a provider and no ledger row
is written. Driven by the official SDKs (openai, anthropic, boto3, google-genai) on the Claude gateway
(helpers.claude_gateway): Claude on Anthropic's API, with fallbacks on Bedrock and an OpenAI-format upstream."""

from __future__ import annotations

import anthropic
import boto3
import openai
import pytest
from botocore.config import Config
from botocore.exceptions import ClientError
from google import genai

from helpers.claude_gateway import ClaudeGateway
from helpers.openai_samples import TOOL, WEATHER_CALLED
from tokenomy.ledger.store import open_store

pytestmark = pytest.mark.slow
ROUTES = {"chain": {"model": "claude", "fallback": ["haiku", "fast"]}, "openai": {"model": "fast"}}
WEATHER = {"name": "get_weather", "description": "Weather", "input_schema": {"type": "object"}}
UNPAIRED = "no provider takes a result without its call"
FIX = "send the assistant message with that call right before its result, or remove the result"


@pytest.fixture
def gateway(tmp_path):
    served = ClaudeGateway(tmp_path / "ledger.duckdb", ROUTES)
    try:
        yield served
    finally:
        served.stack.close()
    # nothing was sent anywhere: no attempt, no fallback, no $0 client_error row
    assert served.scripted.requests == []
    assert served.sent == []
    assert served.upstream.bodies == []
    assert open_store(str(served.ledger)).events() == []


def test_an_openai_callers_tool_message_without_its_call_is_refused_before_any_call(gateway) -> None:
    client = openai.OpenAI(base_url=gateway.url + "/v1", api_key="unused", max_retries=0)
    trimmed = [  # the history cut after the assistant's call: the tool message answers nothing before it
        {"role": "system", "content": "Be brief."},
        {"role": "user", "content": "Weather in Paris?"},
        {"role": "tool", "tool_call_id": "c1", "content": "sunny"},
    ]
    for route in ("chain", "openai"):
        for stream in (False, True):
            with pytest.raises(openai.BadRequestError) as refused:
                client.chat.completions.create(model=route, messages=trimmed, tools=[TOOL], stream=stream)
            error = refused.value.body
            assert error["param"] == "messages[2].tool_call_id"
            assert error["message"].startswith("a tool result (`messages[2].tool_call_id`) answering tool call `c1`,")
            assert UNPAIRED in error["message"] and error["message"].endswith(FIX)
    # The Responses API's function_call_output, named as its item
    items = [{"role": "user", "content": "Weather in Paris?"}, {"type": "function_call_output", "call_id": "c1",
        "output": "sunny"}]  # fmt: skip
    with pytest.raises(openai.BadRequestError) as refused:
        client.responses.create(model="chain", input=items)
    assert refused.value.body["param"] == "input[1].call_id"
    assert refused.value.body["message"].startswith("a tool result (`input[1].call_id`) answering tool call `c1`,")
    answered_elsewhere = [*WEATHER_CALLED[:2], {"role": "tool", "tool_call_id": "c9", "content": "sunny"}]
    with pytest.raises(openai.BadRequestError) as refused:
        client.chat.completions.create(model="chain", messages=answered_elsewhere, tools=[TOOL])
    assert refused.value.body["param"] == "messages[2].tool_call_id"
    assert "answering tool call `c9`" in refused.value.body["message"]


def test_an_openai_callers_tool_call_left_unanswered_is_refused_before_any_call(gateway) -> None:
    client = openai.OpenAI(base_url=gateway.url + "/v1", api_key="unused", max_retries=0)
    unanswered = [*WEATHER_CALLED[:2], {"role": "user", "content": "Never mind: Rome?"}]
    with pytest.raises(openai.BadRequestError) as refused:
        client.chat.completions.create(model="chain", messages=unanswered, tools=[TOOL])
    assert refused.value.body["param"] == "messages[1].tool_calls[0]"
    assert refused.value.body["message"] == (
        "tool call `c1` (`messages[1].tool_calls[0]`) with no result in the turn right after it; Anthropic's, "
        "Bedrock's and OpenAI's APIs refuse a call left unanswered: send its result (a tool result with its id) right "
        "after the call, or remove the call"
    )


def test_an_anthropic_callers_tool_result_without_its_call_is_refused_in_its_terms(gateway) -> None:
    client = anthropic.Anthropic(base_url=gateway.url, api_key="unused", max_retries=0)
    orphan = [
        {"role": "user", "content": "Weather in Paris?"},
        {"role": "assistant", "content": "Let me look."},
        {"role": "user", "content": [{"type": "tool_result", "tool_use_id": "toolu_1", "content": "sunny"}]},
    ]
    for route in ("openai", "chain"):  # routed to an OpenAI-format model, and to Claude with its fallbacks
        with pytest.raises(anthropic.BadRequestError) as refused:
            client.messages.create(model=route, max_tokens=20, messages=orphan, tools=[WEATHER])
        error = refused.value.body["error"]
        assert error["type"] == "invalid_request_error"
        assert error["message"].startswith("a tool result (`messages.2.content.0.tool_use_id`) answering tool call ")
        assert error["message"].endswith(FIX)


def test_converse_and_gemini_callers_unpaired_results_are_refused_in_their_terms(gateway) -> None:
    bedrock = boto3.client(
        "bedrock-runtime",
        endpoint_url=gateway.url,
        region_name="us-east-1",
        config=Config(retries={"max_attempts": 1, "mode": "standard"}),
    )
    orphan = [
        {"role": "user", "content": [{"text": "Weather in Paris?"}]},
        {"role": "assistant", "content": [{"text": "Let me look."}]},
        {"role": "user", "content": [{"text": "Here:"}, {"cachePoint": {"type": "default"}}, {"toolResult": {
            "toolUseId": "tooluse_1", "content": [{"text": "sunny"}]}}]},
    ]  # fmt: skip
    tool_config = {"tools": [{"toolSpec": {"name": "get_weather", "inputSchema": {"json": {"type": "object"}}}}]}
    with pytest.raises(ClientError) as refused:
        bedrock.converse(modelId="chain", messages=orphan, toolConfig=tool_config)
    error = refused.value.response
    assert (error["ResponseMetadata"]["HTTPStatusCode"], error["Error"]["Code"]) == (400, "ValidationException")
    assert (
        "(`messages[2].content[2].toolResult.toolUseId`) answering tool call `tooluse_1`" in error["Error"]["Message"]
    )
    # A Gemini caller's response to a call two turns back: Gemini pairs a response with the turn right before it
    gemini = genai.Client(api_key="unused", http_options={"base_url": gateway.url})
    call = {"functionCall": {"name": "get_weather", "args": {}}}
    contents = [
        {"role": "user", "parts": [{"text": "Weather in Paris?"}]},
        {"role": "model", "parts": [call]},
        {"role": "user", "parts": [{"text": "Hurry."}]},
        {"role": "model", "parts": [{"text": "Looking."}]},
        {"role": "user", "parts": [{"functionResponse": {"name": "get_weather", "response": {"output": "sunny"}}}]},
    ]
    tools = [{"functionDeclarations": [{"name": "get_weather", "description": "Weather"}]}]
    with pytest.raises(genai.errors.ClientError) as caught:
        gemini.models.generate_content(model="chain", contents=contents, config={"tools": tools})
    assert caught.value.code == 400
    assert caught.value.message.startswith("a tool result (`contents[4].parts[0].functionResponse`) answering ")
