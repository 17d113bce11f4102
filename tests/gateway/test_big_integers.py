"""Integers past 64 bits reach the upstream digit for digit, whichever API the caller speaks: each official SDK →
the gateway → an OpenAI-format upstream that records the bytes it received. orjson, which parses the gateway's
bodies, reads an integer from 2**64 up (or below -2**63) as a float: 10**30 would have gone on as 1e+30."""

from __future__ import annotations

import base64
import json

import anthropic
import boto3
import httpx
import openai
import pytest
from botocore.config import Config
from google import genai
from google.genai import types

from helpers import stand_in_aws_keys
from helpers.recording_openai import RecordingOpenAI
from tokenomy.config import parse_config
from tokenomy.emulate.anthropic_api import create_app as create_anthropic
from tokenomy.emulate.instant_engine import InstantEngine
from tokenomy.emulate.server import ServerThread
from tokenomy.gateway.app import create_app

HAIKU = "anthropic.claude-3-haiku-20240307-v1:0"
BIG = 10**30
LOW = -(2**63) - 1  # one below what orjson reads as an integer
# A tool whose schema bounds its argument with both: the schema reaches the upstream as the caller wrote it.
PARAMETERS = {"type": "object", "properties": {"n": {"type": "integer", "minimum": LOW, "maximum": BIG}}}


@pytest.fixture
def served(ledger_path, monkeypatch):
    for key in ("GEMINI_API_KEY", "GOOGLE_API_KEY", "GOOGLE_GENAI_USE_VERTEXAI"):
        monkeypatch.delenv(key, raising=False)
    stand_in_aws_keys(monkeypatch)
    with RecordingOpenAI() as upstream:
        config = parse_config(
            {
                "models": {
                    "fast": {"provider": "openai", "model": "up-model", "base_url": upstream.url, "price_as": HAIKU}
                }
            }
        )
        with ServerThread(create_app(config, str(ledger_path)), lifespan="on") as url:
            yield upstream, url


def _arrived_intact(upstream: RecordingOpenAI) -> None:
    raw = upstream.raw[-1]
    assert str(BIG).encode() in raw and str(LOW).encode() in raw, raw
    assert b"e+30" not in raw and b"e+18" not in raw


def test_openai_chat_keeps_big_integers(served) -> None:
    upstream, url = served
    client = openai.OpenAI(base_url=url + "/v1", api_key="unused", max_retries=0)
    tool = {"type": "function", "function": {"name": "count", "parameters": PARAMETERS}}
    schema = {"name": "n", "schema": {"type": "object", "properties": {"n": {"type": "integer", "maximum": BIG}}}}
    client.chat.completions.create(
        model="fast",
        messages=[{"role": "user", "content": "count"}],
        tools=[tool],
        response_format={"type": "json_schema", "json_schema": schema},
        max_tokens=20,
        logit_bias={"50256": BIG},
    )
    _arrived_intact(upstream)
    assert upstream.last["response_format"]["json_schema"]["schema"]["properties"]["n"]["maximum"] == BIG
    assert upstream.last["logit_bias"] == {"50256": BIG}  # the upstream's to refuse, as sent


def test_an_azure_deployment_path_keeps_big_integers(served) -> None:
    # The edge writes the deployment into the parsed body and the body out again: with the stdlib where orjson
    # refuses the integer, not a 500.
    upstream, url = served
    client = openai.AzureOpenAI(azure_endpoint=url, api_key="unused", api_version="2024-10-21", max_retries=0)
    tool = {"type": "function", "function": {"name": "count", "parameters": PARAMETERS}}
    client.chat.completions.create(
        model="fast", messages=[{"role": "user", "content": "count"}], max_tokens=20, tools=[tool]
    )
    _arrived_intact(upstream)


def test_anthropic_messages_keep_big_integers_in_tool_input_and_schema(served) -> None:
    upstream, url = served
    client = anthropic.Anthropic(base_url=url, api_key="unused", max_retries=0)
    messages = [
        {"role": "user", "content": "count"},
        {"role": "assistant", "content": [{"type": "tool_use", "id": "toolu_1", "name": "count", "input": {"n": BIG}}]},
        {"role": "user", "content": [{"type": "tool_result", "tool_use_id": "toolu_1", "content": "done"}]},
    ]
    client.messages.create(
        model="fast", max_tokens=20, messages=messages, tools=[{"name": "count", "input_schema": PARAMETERS}]
    )
    _arrived_intact(upstream)
    call = upstream.last["messages"][1]["tool_calls"][0]
    assert json.loads(call["function"]["arguments"]) == {"n": BIG}


def test_responses_keep_big_integers(served) -> None:
    upstream, url = served
    client = openai.OpenAI(base_url=url + "/v1", api_key="unused", max_retries=0)
    client.responses.create(
        model="fast",
        input="count",
        max_output_tokens=20,
        tools=[{"type": "function", "name": "count", "parameters": PARAMETERS, "strict": False}],
    )
    _arrived_intact(upstream)


def test_gemini_keeps_big_integers_in_function_calls_and_responses(served) -> None:
    upstream, url = served
    client = genai.Client(api_key="unused", http_options={"base_url": url})
    contents = [
        types.Content(role="user", parts=[types.Part(text="count")]),
        types.Content(
            role="model", parts=[types.Part(function_call=types.FunctionCall(name="count", args={"n": BIG}))]
        ),
        types.Content(
            role="user",
            parts=[types.Part(function_response=types.FunctionResponse(name="count", response={"low": LOW}))],
        ),
    ]
    client.models.generate_content(
        model="fast", contents=contents, config=types.GenerateContentConfig(max_output_tokens=20)
    )
    _arrived_intact(upstream)


def test_converse_keeps_big_integers_in_tool_use_and_results(served) -> None:
    upstream, url = served
    client = boto3.client(
        "bedrock-runtime",
        endpoint_url=url,
        region_name="us-east-1",
        config=Config(retries={"max_attempts": 1, "mode": "standard"}),
    )
    messages = [
        {"role": "user", "content": [{"text": "count"}]},
        {"role": "assistant", "content": [{"toolUse": {"toolUseId": "t1", "name": "count", "input": {"n": BIG}}}]},
        {"role": "user", "content": [{"toolResult": {"toolUseId": "t1", "content": [{"json": {"low": LOW}}]}}]},
    ]
    tools = {"tools": [{"toolSpec": {"name": "count", "inputSchema": {"json": PARAMETERS}}}]}
    client.converse(modelId="fast", messages=messages, toolConfig=tools, inferenceConfig={"maxTokens": 20})
    _arrived_intact(upstream)


def test_embeddings_keep_big_integers(served) -> None:
    upstream, url = served
    # Token ids as a caller's own tokenizer wrote them: whatever the upstream makes of them, they reach it as sent.
    answer = httpx.post(url + "/v1/embeddings", json={"model": "fast", "input": [[BIG]]})
    assert upstream.raw, answer.text  # (the recording upstream answers with a chat completion: a 502)
    assert str(BIG).encode() in upstream.raw[-1] and b"e+30" not in upstream.raw[-1]


def test_a_tool_calls_arguments_reach_claude_with_big_integers_exact(ledger_path, monkeypatch) -> None:
    # OpenAI's tool call arguments are text; Claude's tool_use input is an object the gateway reads that text into.
    monkeypatch.setenv("ANTHROPIC_API_KEY", "x")
    claude = create_anthropic(engine=InstantEngine())
    raw: list[bytes] = []

    @claude.middleware("http")
    async def record(request, call_next):
        if request.url.path == "/v1/messages":
            raw.append(await request.body())
        return await call_next(request)

    with ServerThread(claude) as claude_url:
        config = parse_config(
            {
                "models": {
                    "claude": {"provider": "anthropic", "model": "claude-sonnet-4-5-20250929", "base_url": claude_url}
                }
            }
        )
        with ServerThread(create_app(config, str(ledger_path)), lifespan="on") as url:
            client = openai.OpenAI(base_url=url + "/v1", api_key="unused", max_retries=0)
            call = {
                "id": "call_1",
                "type": "function",
                "function": {"name": "count", "arguments": json.dumps({"n": BIG, "low": LOW})},
            }
            client.chat.completions.create(
                model="claude",
                max_tokens=20,
                messages=[
                    {"role": "user", "content": "count"},
                    {"role": "assistant", "content": None, "tool_calls": [call]},
                    {"role": "tool", "tool_call_id": "call_1", "content": "done"},
                ],
            )
    assert raw and str(BIG).encode() in raw[-1] and str(LOW).encode() in raw[-1], raw


def test_a_body_with_an_image_keeps_big_integers_around_it(served) -> None:
    # Past 2 KB the check skips a data URL's base64 (no number lives there): numbers on either side of it are read.
    upstream, url = served
    image = "data:image/png;base64," + base64.b64encode(bytes(range(256)) * 24).decode()
    content = [{"type": "text", "text": "count"}, {"type": "image_url", "image_url": {"url": image}}]
    for before, after in ((LOW, BIG), (BIG, LOW)):
        body = json.dumps(
            {
                "logit_bias": {"50256": before},
                "model": "fast",
                "max_tokens": 20,
                "messages": [{"role": "user", "content": content}],
                "tools": [
                    {
                        "type": "function",
                        "function": {
                            "name": "count",
                            "parameters": {
                                "type": "object",
                                "properties": {"n": {"type": "integer", "maximum": after}},
                            },
                        },
                    }
                ],
            }
        )
        assert body.index(str(before)) < body.index(";base64,") < body.index(str(after))
        answer = httpx.post(url + "/v1/chat/completions", content=body, headers={"content-type": "application/json"})
        assert answer.status_code == 200, answer.text
        assert image.encode() in upstream.raw[-1]
        _arrived_intact(upstream)


def test_the_check_finds_a_run_of_digits_wherever_it_starts() -> None:
    # A long text is ruled out by every 9th byte before it is read whole: a run of 20 digits (19 after a minus) is
    # found at any offset against that stride, and one of 19 is not taken for one.
    from tokenomy.gateway.exact_json import has_big_integer

    for offset in range(200, 220):
        for run, found in (("9" * 20, True), ("-" + "9" * 19, True), ("9" * 19, False), ("-" + "9" * 18, False)):
            text = ("a" * offset + run + "b" * 300).encode()
            assert has_big_integer(text) is found, (offset, run)
            assert has_big_integer(text + b'";base64,xyz"' + b"c" * 2100) is found, (offset, run)
