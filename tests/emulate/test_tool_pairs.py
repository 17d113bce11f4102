"""A tool result answering no call of the turn before it, and a call the next turn leaves unanswered, are refused by
the emulators as each real API refuses them: Anthropic's, Bedrock's Converse, OpenAI's chat completions (the instant
upstream and Azure's) and Gemini's 400, in their words. They accepted both, so no test saw what a provider answers.
Driven by the official SDKs (anthropic, boto3, openai, google-genai) on 127.0.0.1."""

from __future__ import annotations

import anthropic
import boto3
import openai
import pytest
from botocore.config import Config
from botocore.exceptions import ClientError
from google import genai
from google.genai import errors as genai_errors

from helpers.openai_samples import TOOL, WEATHER_CALLED
from tokenomy.emulate.anthropic_api import create_app as create_anthropic
from tokenomy.emulate.azure_openai import create_app as create_azure
from tokenomy.emulate.bedrock_runtime import create_app as create_bedrock
from tokenomy.emulate.gemini_api import create_app as create_gemini
from tokenomy.emulate.instant_engine import InstantEngine
from tokenomy.emulate.instant_openai import InstantOpenAI
from tokenomy.emulate.server import ServerThread

pytestmark = pytest.mark.slow
SONNET = "claude-sonnet-4-5-20250929"
WEATHER = {"name": "get_weather", "description": "Weather", "input_schema": {"type": "object"}}
CALLED = {"role": "assistant", "content": [{"type": "tool_use", "id": "toolu_1", "name": "get_weather", "input": {}}]}


def result(tool_use_id: str) -> dict:
    return {"role": "user", "content": [{"type": "tool_result", "tool_use_id": tool_use_id, "content": "sunny"}]}


@pytest.fixture(scope="module")
def claude():
    with ServerThread(create_anthropic(engine=InstantEngine())) as url:
        yield anthropic.Anthropic(base_url=url, api_key="unused", max_retries=0)


def test_anthropic_refuses_a_tool_result_without_its_call_in_its_words(claude) -> None:
    orphan = [{"role": "user", "content": "Weather in Paris?"}, result("toolu_9")]
    for send in (claude.messages.create, claude.messages.count_tokens):
        extra = {"max_tokens": 16} if send == claude.messages.create else {}
        with pytest.raises(anthropic.BadRequestError) as refused:
            send(model=SONNET, messages=orphan, tools=[WEATHER], **extra)
        assert refused.value.body["error"] == {
            "type": "invalid_request_error",
            "message": "messages.1.content.0: unexpected `tool_use_id` found in `tool_result` blocks: toolu_9. Each "
            "`tool_result` block must have a corresponding `tool_use` block in the previous message.",
        }
    with pytest.raises(anthropic.BadRequestError, match=r"messages\.2\.content\.0: unexpected `tool_use_id`"):
        claude.messages.create(model=SONNET, max_tokens=16, messages=[orphan[0], CALLED, result("toolu_9")])
    # The pair as the API takes it, the next user message merged into the results' turn
    answered = [orphan[0], CALLED, result("toolu_1"), {"role": "user", "content": "Thanks."}]
    assert claude.messages.create(model=SONNET, max_tokens=16, messages=answered, tools=[WEATHER]).content


def test_anthropic_refuses_a_tool_call_the_next_turn_leaves_unanswered(claude) -> None:
    unanswered = [{"role": "user", "content": "Weather in Paris?"}, CALLED, {"role": "user", "content": "Go on."}]
    with pytest.raises(anthropic.BadRequestError) as refused:
        claude.messages.create(model=SONNET, max_tokens=16, messages=unanswered, tools=[WEATHER])
    assert refused.value.body["error"]["message"] == (
        "messages.1: `tool_use` ids were found without `tool_result` blocks immediately after: toolu_1. Each "
        "`tool_use` block must have a corresponding `tool_result` block in the next message."
    )


def converse_message(role: str, *blocks: dict) -> dict:
    return {"role": role, "content": list(blocks)}


TOOL_CONFIG = {"tools": [{"toolSpec": {"name": "get_weather", "inputSchema": {"json": {"type": "object"}}}}]}
USE = {"toolUse": {"toolUseId": "tooluse_1", "name": "get_weather", "input": {}}}


def converse_result(tool_use_id: str) -> dict:
    return {"toolResult": {"toolUseId": tool_use_id, "content": [{"text": "sunny"}]}}


def test_bedrock_refuses_tool_results_and_calls_that_do_not_pair_in_its_words() -> None:
    with ServerThread(create_bedrock(engine=InstantEngine())) as url:
        config = Config(retries={"total_max_attempts": 1})
        client = boto3.client(
            "bedrock-runtime", endpoint_url=url, region_name="us-east-1", aws_access_key_id="x",
            aws_secret_access_key="x", config=config,
        )  # fmt: skip
        ask = converse_message("user", {"text": "Weather in Paris?"})
        cases = {
            "The number of toolResult blocks at messages.2.content exceeds the number of toolUse blocks of previous "
            "turn.": [
                ask,
                converse_message("assistant", {"text": "Hm."}),
                converse_message("user", converse_result("x")),
            ],
            "Expected toolResult blocks at messages.2.content for the following Ids: tooluse_1": [
                ask,
                converse_message("assistant", USE),
                converse_message("user", converse_result("tooluse_9")),
            ],
        }
        for message, messages in cases.items():
            with pytest.raises(ClientError) as refused:
                client.converse(modelId=f"anthropic.{SONNET}-v1:0", messages=messages, toolConfig=TOOL_CONFIG)
            assert refused.value.response["Error"] == {"Code": "ValidationException", "Message": message}
        paired = [ask, converse_message("assistant", USE), converse_message("user", converse_result("tooluse_1"))]
        answer = client.converse(modelId=f"anthropic.{SONNET}-v1:0", messages=paired, toolConfig=TOOL_CONFIG)
        assert answer["output"]["message"]["content"]


ORPHAN = [{"role": "user", "content": "Weather in Paris?"}, {"role": "tool", "tool_call_id": "c9", "content": "sunny"}]
OPENAI_REFUSALS = [
    (
        ORPHAN,
        "Invalid parameter: messages with role 'tool' must be a response to a preceeding message with 'tool_calls'.",
        "messages.[1].role",
    ),
    (
        [*WEATHER_CALLED[:2], {"role": "tool", "tool_call_id": "c9", "content": "sunny"}],
        "Invalid parameter: 'tool_call_id' of 'c9' not found in 'tool_calls' of previous message.",
        "messages.[2].tool_call_id",
    ),
    (
        [*WEATHER_CALLED[:2], {"role": "user", "content": "Go on."}],
        "An assistant message with 'tool_calls' must be followed by tool messages responding to each "
        "'tool_call_id'. The following tool_call_ids did not have response messages: c1",
        "messages.[1].role",
    ),
]


def assert_openai_refusals(chat) -> None:
    for messages, message, param in OPENAI_REFUSALS:
        with pytest.raises(openai.BadRequestError) as refused:
            chat(messages=messages, tools=[TOOL])
        assert refused.value.body == {
            "message": message,
            "type": "invalid_request_error",
            "param": param,
            "code": None,
        }
    assert chat(messages=[*WEATHER_CALLED, {"role": "user", "content": "Thanks."}], tools=[TOOL]).choices


def test_openai_format_upstreams_refuse_tool_messages_and_calls_that_do_not_pair_in_openais_words() -> None:
    with InstantOpenAI() as url:
        client = openai.OpenAI(base_url=url, api_key="unused", max_retries=0)
        assert_openai_refusals(lambda **ask: client.chat.completions.create(model="gpt-4o-mini", **ask))
    with ServerThread(create_azure({"chat": "gpt-4o-mini"}, engine=InstantEngine())) as url:
        azure = openai.AzureOpenAI(azure_endpoint=url, api_key="unused", api_version="2024-10-21", max_retries=0)
        assert_openai_refusals(lambda **ask: azure.chat.completions.create(model="chat", **ask))


def test_gemini_refuses_function_responses_that_do_not_pair_in_its_words() -> None:
    call = {"role": "model", "parts": [{"functionCall": {"name": "get_weather", "args": {}}}]}
    answer = {"functionResponse": {"name": "get_weather", "response": {"output": "sunny"}}}
    ask = {"role": "user", "parts": [{"text": "Weather in Paris?"}]}
    tools = [{"functionDeclarations": [{"name": "get_weather", "description": "Weather"}]}]
    with ServerThread(create_gemini(engine=InstantEngine())) as url:
        client = genai.Client(api_key="x", http_options={"base_url": url})
        cases = {
            "Please ensure that function response turn comes immediately after a function call turn.": [
                ask,
                {"role": "user", "parts": [answer]},
            ],
            "Please ensure that the number of function response parts is equal to the number of function call parts "
            "of the function call turn.": [ask, call, {"role": "user", "parts": [answer, answer]}],
        }
        for message, contents in cases.items():
            with pytest.raises(genai_errors.ClientError) as refused:
                client.models.generate_content(model="gemini-2.5-flash", contents=contents, config={"tools": tools})
            assert (refused.value.code, refused.value.status, refused.value.message) == (
                400,
                "INVALID_ARGUMENT",
                message,
            )
        paired = [ask, call, {"role": "user", "parts": [answer]}]
        assert client.models.generate_content(model="gemini-2.5-flash", contents=paired, config={"tools": tools}).text
