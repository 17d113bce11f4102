"""A tool call whose arguments are no JSON object (a model cut off mid-argument, a small model's slip) reaches every
caller with the model's text, streamed or not: OpenAI chat as `arguments`, `/v1/messages` and Converse wrapped as
`{"INVALID_JSON": text}` (Anthropic's convention for passing invalid tool JSON on), the same text their streams'
input deltas add up to. Before, a whole answer's input was `{}` (and Converse's a 400), so the caller never saw it."""

from __future__ import annotations

import json

import anthropic
import boto3
import openai
import pytest
from botocore.config import Config

from helpers import stand_in_aws_keys
from helpers.recording_openai import RecordingOpenAI
from tokenomy.config import parse_config
from tokenomy.emulate.server import ServerThread
from tokenomy.gateway.app import create_app

pytestmark = pytest.mark.slow
CUT = '{"city": "Par'  # the model stopped mid-argument
TOOL = {
    "name": "get_weather",
    "description": "Weather",
    "input_schema": {"type": "object", "properties": {"city": {"type": "string"}}},
}
CALL = {"id": "call_1", "type": "function", "function": {"name": "get_weather", "arguments": CUT}}


def scripted(upstream: RecordingOpenAI) -> None:
    upstream.answer = {
        "id": "up-1",
        "object": "chat.completion",
        "created": 0,
        "model": "up-model",
        "choices": [
            {
                "index": 0,
                "finish_reason": "length",
                "message": {"role": "assistant", "content": None, "tool_calls": [CALL]},
            }
        ],
        "usage": {"prompt_tokens": 20, "completion_tokens": 5, "total_tokens": 25},
    }

    def chunk(delta: dict, finish: str | None = None) -> dict:
        return {
            "id": "up-1",
            "object": "chat.completion.chunk",
            "created": 0,
            "model": "up-model",
            "choices": [{"index": 0, "delta": delta, "finish_reason": finish}],
        }

    opening = {"index": 0, "id": "call_1", "type": "function", "function": {"name": "get_weather", "arguments": ""}}
    upstream.chunks = [
        chunk({"role": "assistant", "content": None}),
        chunk({"tool_calls": [opening]}),
        chunk({"tool_calls": [{"index": 0, "function": {"arguments": CUT[:6]}}]}),
        chunk({"tool_calls": [{"index": 0, "function": {"arguments": CUT[6:]}}]}),
        chunk({}, "length"),
        {
            "id": "up-1",
            "object": "chat.completion.chunk",
            "created": 0,
            "model": "up-model",
            "choices": [],
            "usage": {"prompt_tokens": 20, "completion_tokens": 5, "total_tokens": 25},
        },
    ]


@pytest.fixture
def gateway(ledger_path):
    with RecordingOpenAI() as upstream:
        scripted(upstream)
        config = parse_config(
            {
                "models": {
                    "fast": {
                        "provider": "openai",
                        "model": "up-model",
                        "base_url": upstream.url,
                        "price_as": "gpt-4o-mini",
                    }
                }
            }
        )
        with ServerThread(create_app(config, str(ledger_path)), lifespan="on") as url:
            yield url


def test_openai_chat_gets_the_models_text_streamed_or_not(gateway) -> None:
    client = openai.OpenAI(base_url=gateway + "/v1", api_key="unused", max_retries=0)
    ask = {
        "model": "fast",
        "max_tokens": 5,
        "messages": [{"role": "user", "content": "Weather in Paris?"}],
        "tools": [{"type": "function", "function": {"name": TOOL["name"], "parameters": TOOL["input_schema"]}}],
    }
    whole = client.chat.completions.create(**ask)
    assert whole.choices[0].message.tool_calls[0].function.arguments == CUT
    pieces = [
        c.choices[0].delta.tool_calls
        for c in client.chat.completions.create(**ask, stream=True)
        if c.choices and c.choices[0].delta.tool_calls
    ]
    assert "".join(p[0].function.arguments or "" for p in pieces) == CUT


def test_messages_gets_the_models_text_streamed_or_not(gateway) -> None:
    client = anthropic.Anthropic(base_url=gateway, api_key="unused", max_retries=0)
    ask = {
        "model": "fast",
        "max_tokens": 5,
        "tools": [TOOL],
        "messages": [{"role": "user", "content": "Weather in Paris?"}],
    }
    whole = client.messages.create(**ask)
    [use] = [b for b in whole.content if b.type == "tool_use"]
    assert use.input == {"INVALID_JSON": CUT}
    streamed = "".join(
        e.delta.partial_json
        for e in client.messages.create(**ask, stream=True)
        if e.type == "content_block_delta" and e.delta.type == "input_json_delta"
    )
    assert streamed == CUT


def test_converse_gets_the_models_text_streamed_or_not(gateway, monkeypatch) -> None:
    stand_in_aws_keys(monkeypatch)  # boto3 signs; the gateway reads its own keys, none here
    client = boto3.client(
        "bedrock-runtime",
        endpoint_url=gateway,
        region_name="us-east-1",
        config=Config(retries={"max_attempts": 1, "mode": "standard"}),
    )
    ask = {
        "modelId": "fast",
        "inferenceConfig": {"maxTokens": 5},
        "messages": [{"role": "user", "content": [{"text": "Weather in Paris?"}]}],
        "toolConfig": {"tools": [{"toolSpec": {"name": TOOL["name"], "inputSchema": {"json": TOOL["input_schema"]}}}]},
    }
    whole = client.converse(**ask)
    [use] = [b["toolUse"] for b in whole["output"]["message"]["content"] if "toolUse" in b]
    assert use["input"] == {"INVALID_JSON": CUT}
    events = client.converse_stream(**ask)["stream"]
    streamed = "".join(
        e["contentBlockDelta"]["delta"]["toolUse"]["input"]
        for e in events
        if "toolUse" in e.get("contentBlockDelta", {}).get("delta", {})
    )
    assert streamed == CUT
    assert json.loads(json.dumps(use))  # a plain JSON document, as Converse's input is
