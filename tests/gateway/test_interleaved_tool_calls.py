"""An OpenAI-format upstream may stream parallel tool calls with their argument fragments interleaved (call 0's, then
call 1's, then call 0's again). Anthropic's Messages stream and Bedrock's ConverseStream need each content block's
deltas between its start and its stop, one block at a time: before, the gateway closed call 0's block when call 1's
began and then sent call 0's later fragment into the closed block, so the SDKs built a cut input (or refused it)."""

from __future__ import annotations

import json

import anthropic
import boto3
import httpx
import pytest
from botocore.config import Config

from helpers.recording_openai import RecordingOpenAI
from tokenomy.config import parse_config
from tokenomy.emulate.server import ServerThread
from tokenomy.gateway.app import create_app

pytestmark = pytest.mark.slow
TOOL = {
    "name": "get_weather",
    "description": "Weather",
    "input_schema": {"type": "object", "properties": {"city": {"type": "string"}}},
}


def chunk(delta: dict, finish: str | None = None) -> dict:
    return {
        "id": "up-1",
        "object": "chat.completion.chunk",
        "created": 0,
        "model": "up-model",
        "choices": [{"index": 0, "delta": delta, "finish_reason": finish}],
    }


def fragment(index: int, arguments: str) -> dict:
    return chunk({"tool_calls": [{"index": index, "function": {"arguments": arguments}}]})


def opening(index: int) -> dict:
    return chunk(
        {
            "tool_calls": [
                {
                    "index": index,
                    "id": f"call_{index}",
                    "type": "function",
                    "function": {"name": "get_weather", "arguments": ""},
                }
            ]
        }
    )


INTERLEAVED = [
    chunk({"role": "assistant", "content": "Checking both."}),
    opening(0),
    fragment(0, '{"city": "Pa'),
    opening(1),
    fragment(1, '{"city": "Ro'),
    fragment(0, 'ris"}'),
    fragment(1, 'me"}'),
    chunk({}, "tool_calls"),
    {
        "id": "up-1",
        "object": "chat.completion.chunk",
        "created": 0,
        "model": "up-model",
        "choices": [],
        "usage": {"prompt_tokens": 20, "completion_tokens": 12, "total_tokens": 32},
    },
]


@pytest.fixture
def gateway(ledger_path):
    with RecordingOpenAI() as upstream:
        upstream.chunks = INTERLEAVED
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


ASK = {
    "model": "fast",
    "max_tokens": 50,
    "tools": [TOOL],
    "messages": [{"role": "user", "content": "Weather in Paris and Rome?"}],
}


def test_messages_stream_keeps_each_tool_blocks_deltas_inside_it(gateway) -> None:
    with httpx.stream("POST", gateway + "/v1/messages", json={**ASK, "stream": True}, timeout=30) as answer:
        events = [json.loads(line[6:]) for line in answer.iter_lines() if line.startswith("data: ")]
    open_blocks: set[int] = set()
    closed: set[int] = set()
    for event in events:
        if event["type"] == "content_block_start":
            assert not open_blocks and event["index"] not in closed, events  # one block at a time, each once
            open_blocks.add(event["index"])
        elif event["type"] == "content_block_delta":
            assert event["index"] in open_blocks, events
        elif event["type"] == "content_block_stop":
            open_blocks.remove(event["index"])
            closed.add(event["index"])
    assert not open_blocks

    client = anthropic.Anthropic(base_url=gateway, api_key="unused", max_retries=0)
    with client.messages.stream(**ASK) as stream:
        message = stream.get_final_message()
    assert [b.type for b in message.content] == ["text", "tool_use", "tool_use"]
    assert message.content[0].text == "Checking both."
    assert [(b.id, b.input) for b in message.content[1:]] == [
        ("call_0", {"city": "Paris"}),
        ("call_1", {"city": "Rome"}),
    ]


def test_converse_stream_keeps_each_tool_blocks_deltas_inside_it(gateway) -> None:
    client = boto3.client(
        "bedrock-runtime",
        endpoint_url=gateway,
        region_name="us-east-1",
        aws_access_key_id="x",
        aws_secret_access_key="x",
        config=Config(retries={"max_attempts": 1, "mode": "standard"}),
    )
    answer = client.converse_stream(
        modelId="fast",
        messages=[{"role": "user", "content": [{"text": "Weather in Paris and Rome?"}]}],
        toolConfig={"tools": [{"toolSpec": {"name": "get_weather", "inputSchema": {"json": TOOL["input_schema"]}}}]},
    )
    open_blocks: set[int] = set()
    closed: set[int] = set()
    inputs: dict[int, str] = {}
    ids: dict[int, str] = {}
    for event in answer["stream"]:
        if "contentBlockStart" in event:
            start = event["contentBlockStart"]
            assert not open_blocks and start["contentBlockIndex"] not in closed
            open_blocks.add(start["contentBlockIndex"])
            ids[start["contentBlockIndex"]] = start["start"]["toolUse"]["toolUseId"]
        elif "contentBlockDelta" in event:
            delta = event["contentBlockDelta"]
            index = delta["contentBlockIndex"]
            if index not in open_blocks:  # a text block opens with its first delta
                assert not open_blocks and index not in closed
                open_blocks.add(index)
            if "toolUse" in delta["delta"]:
                inputs[index] = inputs.get(index, "") + delta["delta"]["toolUse"]["input"]
        elif "contentBlockStop" in event:
            open_blocks.remove(event["contentBlockStop"]["contentBlockIndex"])
            closed.add(event["contentBlockStop"]["contentBlockIndex"])
    assert not open_blocks
    assert sorted((ids[i], json.loads(text)) for i, text in inputs.items()) == [
        ("call_0", {"city": "Paris"}),
        ("call_1", {"city": "Rome"}),
    ]
