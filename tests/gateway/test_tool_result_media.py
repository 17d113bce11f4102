"""A tool result holding an image (a screenshot tool, Claude Code reading a picture, computer use) reaches an
OpenAI-format model from every API the gateway serves. Chat Completions' tool messages take text only, so the
result's text stays in its tool message and its images follow, byte for byte and labelled with their call, in the
user message after the run of tool messages. Each official SDK streams the next turn of its tool loop through a
real gateway on 127.0.0.1 to a recording OpenAI-format upstream; the stream ends and the ledger counts the images."""

from __future__ import annotations

import base64
import time

import anthropic
import boto3
import openai
import pytest
from botocore.config import Config
from google import genai
from google.genai import types

from helpers.recording_openai import RecordingOpenAI
from tokenomy.config import parse_config
from tokenomy.emulate.server import ServerThread
from tokenomy.gateway.app import create_app
from tokenomy.ledger.store import open_store

HAIKU = "anthropic.claude-3-haiku-20240307-v1:0"
IMAGE = b"\x89PNG\r\n\x1a\n" + bytes(range(256)) * 3  # every byte value: a re-encoding on the way changes it
B64 = base64.b64encode(IMAGE).decode()
DATA_URL = "data:image/png;base64," + B64
SCHEMA = {"type": "object", "properties": {}}
ASK = "Take two screenshots."


@pytest.fixture(scope="module")
def served(tmp_path_factory):
    """(gateway URL, recording upstream, ledger path)."""
    ledger = tmp_path_factory.mktemp("media") / "ledger.duckdb"
    with pytest.MonkeyPatch.context() as env, RecordingOpenAI() as upstream:
        for key in ("GEMINI_API_KEY", "GOOGLE_API_KEY", "AWS_BEARER_TOKEN_BEDROCK"):
            env.delenv(key, raising=False)
        config = parse_config(
            {
                "models": {
                    "gpt": {"provider": "openai", "model": "up-model", "base_url": upstream.url, "price_as": HAIKU}
                }
            }
        )
        with ServerThread(create_app(config, str(ledger)), lifespan="on") as url:
            yield url, upstream, ledger


def anthropic_loop(url: str) -> None:
    sdk = anthropic.Anthropic(base_url=url, api_key="unused", max_retries=0)
    image = {"type": "image", "source": {"type": "base64", "media_type": "image/png", "data": B64}}
    messages = [
        {"role": "user", "content": ASK},
        {
            "role": "assistant",
            "content": [{"type": "tool_use", "id": i, "name": "shot", "input": {}} for i in ("t1", "t2")],
        },
        {
            "role": "user",
            "content": [
                {
                    "type": "tool_result",
                    "tool_use_id": "t1",
                    "content": [{"type": "text", "text": "the desktop"}, image],
                },
                {"type": "tool_result", "tool_use_id": "t2", "content": [image]},
            ],
        },
    ]
    with sdk.messages.stream(
        model="gpt", max_tokens=50, messages=messages, tools=[{"name": "shot", "input_schema": SCHEMA}]
    ) as stream:
        final = stream.get_final_message()
    assert final.stop_reason == "tool_use" and final.usage.input_tokens + final.usage.cache_read_input_tokens == 40


def converse_loop(url: str) -> None:
    client = boto3.client(
        "bedrock-runtime",
        endpoint_url=url,
        region_name="us-east-1",
        aws_access_key_id="x",
        aws_secret_access_key="x",
        config=Config(retries={"max_attempts": 1, "mode": "standard"}),
    )
    image = {"image": {"format": "png", "source": {"bytes": IMAGE}}}
    messages = [
        {"role": "user", "content": [{"text": ASK}]},
        {
            "role": "assistant",
            "content": [{"toolUse": {"toolUseId": i, "name": "shot", "input": {}}} for i in ("t1", "t2")],
        },
        {
            "role": "user",
            "content": [
                {"toolResult": {"toolUseId": "t1", "content": [{"text": "the desktop"}, image]}},
                {"toolResult": {"toolUseId": "t2", "content": [image]}},
            ],
        },
    ]
    events = list(
        client.converse_stream(
            modelId="gpt",
            messages=messages,
            toolConfig={"tools": [{"toolSpec": {"name": "shot", "inputSchema": {"json": SCHEMA}}}]},
        )["stream"]
    )
    assert {"messageStop": {"stopReason": "tool_use"}} in events and "metadata" in events[-1]


def responses_loop(url: str) -> None:
    client = openai.OpenAI(base_url=url + "/v1", api_key="unused", max_retries=0)
    image = {"type": "input_image", "image_url": DATA_URL}
    items = [
        {"role": "user", "content": ASK},
        *({"type": "function_call", "call_id": i, "name": "shot", "arguments": "{}"} for i in ("t1", "t2")),
        {
            "type": "function_call_output",
            "call_id": "t1",
            "output": [{"type": "input_text", "text": "the desktop"}, image],
        },
        {"type": "function_call_output", "call_id": "t2", "output": [image]},
    ]
    with client.responses.stream(
        model="gpt", input=items, tools=[{"type": "function", "name": "shot", "parameters": SCHEMA, "strict": False}]
    ) as stream:
        final = stream.get_final_response()
    assert final.status == "completed" and final.usage.input_tokens == 40


def gemini_loop(url: str) -> None:
    client = genai.Client(api_key="unused", http_options={"base_url": url})
    image = types.FunctionResponsePart(inline_data=types.FunctionResponseBlob(mime_type="image/png", data=IMAGE))
    contents = [
        types.Content(role="user", parts=[types.Part(text=ASK)]),
        types.Content(
            role="model",
            parts=[types.Part(function_call=types.FunctionCall(id=i, name="shot", args={})) for i in ("t1", "t2")],
        ),
        types.Content(
            role="user",
            parts=[
                types.Part(
                    function_response=types.FunctionResponse(
                        id="t1", name="shot", parts=[image], response={"output": "the desktop"}
                    )
                ),
                types.Part(function_response=types.FunctionResponse(id="t2", name="shot", parts=[image], response={})),
            ],
        ),
    ]
    shot = types.FunctionDeclaration(name="shot", parameters_json_schema=SCHEMA)
    config = types.GenerateContentConfig(
        tools=[types.Tool(function_declarations=[shot])],
        automatic_function_calling=types.AutomaticFunctionCallingConfig(disable=True),
    )
    chunks = list(client.models.generate_content_stream(model="gpt", contents=contents, config=config))
    assert chunks[-1].candidates[0].finish_reason == "STOP" and chunks[-1].usage_metadata.prompt_token_count == 40


def chat_loop(url: str) -> None:
    # A Chat Completions caller may put a tool's image in its tool message, which OpenAI itself refuses: the gateway
    # moves it where an OpenAI-format model takes it.
    client = openai.OpenAI(base_url=url + "/v1", api_key="unused", max_retries=0)
    image = {"type": "image_url", "image_url": {"url": DATA_URL}}
    calls = [{"id": i, "type": "function", "function": {"name": "shot", "arguments": "{}"}} for i in ("t1", "t2")]
    messages = [
        {"role": "user", "content": ASK},
        {"role": "assistant", "content": None, "tool_calls": calls},
        {"role": "tool", "tool_call_id": "t1", "content": [{"type": "text", "text": "the desktop"}, image]},
        {"role": "tool", "tool_call_id": "t2", "content": [image]},
    ]
    with client.chat.completions.stream(
        model="gpt",
        messages=messages,
        tools=[{"type": "function", "function": {"name": "shot", "parameters": SCHEMA}}],
        stream_options={"include_usage": True},
    ) as stream:
        final = stream.get_final_completion()
    assert final.choices[0].finish_reason == "tool_calls" and final.usage.prompt_tokens == 40


LOOPS = {
    "chat": chat_loop,
    "anthropic": anthropic_loop,
    "converse": converse_loop,
    "responses": responses_loop,
    "gemini": gemini_loop,
}


@pytest.mark.parametrize("api", LOOPS)
def test_a_tool_results_image_reaches_an_openai_model_after_its_tool_message(served, api) -> None:
    url, upstream, ledger = served
    before = len(open_store(ledger).events())
    LOOPS[api](url)  # refused before: "model `gpt` cannot take a tool result holding an image or document"
    *_, first, second, user = upstream.last["messages"]
    assert first["role"] == second["role"] == "tool" and (first["tool_call_id"], second["tool_call_id"]) == ("t1", "t2")
    assert "the desktop" in first["content"]  # the result's text stays with its call
    # A result of images alone says where they are (Gemini's function response always has its response object).
    assert second["content"] == ("{}" if api == "gemini" else "(images or documents: in the next message)")
    picture = {"type": "image_url", "image_url": {"url": DATA_URL}}
    assert user == {
        "role": "user",
        "content": [
            {"type": "text", "text": "Tool call t1 returned:"},
            picture,
            {"type": "text", "text": "Tool call t2 returned:"},
            picture,
        ],
    }
    deadline = time.monotonic() + 10
    while len(rows := open_store(ledger).events()) == before and time.monotonic() < deadline:
        time.sleep(0.1)
    [row] = rows[before:]
    assert (row.image_count, row.tool_call_count, row.input_tokens, row.output_tokens) == (2, 1, 40, 9)
