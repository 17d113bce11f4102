"""The gateway's Converse ingress against the Bedrock provider's mapping: a Converse request read into the content
model and mapped back out is the request the caller sent, every block and option in its place."""

from __future__ import annotations

import base64
import json

import pytest

from tokenomy.chat_response import ChatResponse, Usage
from tokenomy.messages import ReasoningBlock, TextBlock, ToolUseBlock
from tokenomy.providers.converse_answers import answer_body
from tokenomy.providers.converse_mapping import to_converse_params
from tokenomy.providers.converse_request import request_from_converse

MODEL = "anthropic.claude-sonnet-4-5-20250929-v1:0"
IMAGE = b"\x89PNG\r\n\x1a\n" + bytes(range(256))
PDF = b"%PDF-1.4\n" + bytes(range(256))
REDACTED = bytes(range(200, 256))
# closed, as Claude's structured outputs take it: a strict tool's schema goes to Claude as sent (claude_schema)
SCHEMA = {"type": "object", "properties": {"city": {"type": "string"}}, "additionalProperties": False}


def b64(data: bytes) -> str:
    return base64.b64encode(data).decode()


def test_every_block_and_option_goes_back_out_as_the_caller_sent_it() -> None:
    tool = {
        "toolSpec": {"name": "get_weather", "description": "Weather", "inputSchema": {"json": SCHEMA}, "strict": True}
    }
    messages = [
        {
            "role": "user",
            "content": [
                {"text": "Look"},
                {"image": {"format": "png", "source": {"bytes": IMAGE}}},
                {"document": {"format": "pdf", "name": "spec", "source": {"bytes": PDF}}},
                {"cachePoint": {"type": "default"}},
            ],
        },
        {
            "role": "assistant",
            "content": [
                {"reasoningContent": {"reasoningText": {"text": "think", "signature": "sig=="}}},
                {"reasoningContent": {"redactedContent": REDACTED}},
                {"toolUse": {"toolUseId": "tu_1", "name": "get_weather", "input": {"city": "Paris"}}},
            ],
        },
        {
            "role": "user",
            "content": [{"toolResult": {"toolUseId": "tu_1", "content": [{"text": "18C"}], "status": "error"}}],
        },
    ]
    sent = {
        "system": [{"text": "Be brief."}, {"cachePoint": {"type": "default"}}],
        "toolConfig": {
            "tools": [tool, {"cachePoint": {"type": "default"}}],
            # auto: Claude takes no forced tool while thinking (a named one: test_converse_mapping)
            "toolChoice": {"auto": {}},
        },
        # with thinking on, Claude takes temperature 1, a topP from 0.95 only and a cap above the budget
        "inferenceConfig": {"maxTokens": 2000, "temperature": 1, "topP": 0.95, "stopSequences": ["END"]},
        "additionalModelRequestFields": {  # (top_k, which Claude refuses with thinking on: below)
            "thinking": {"type": "enabled", "budget_tokens": 1024},
            "anthropic_beta": ["x"],
        },
        "outputConfig": {
            "textFormat": {
                "type": "json_schema",
                "structure": {"jsonSchema": {"schema": json.dumps(SCHEMA), "name": "place", "description": "A place"}},
            },
            "effort": "high",
        },
        "guardrailConfig": {"guardrailIdentifier": "g1", "guardrailVersion": "1"},
        "requestMetadata": {"app": "shop"},
    }

    def wire(value):  # boto3 sends blobs as base64 text in the JSON body
        if isinstance(value, bytes):
            return b64(value)
        if isinstance(value, dict):
            return {k: wire(v) for k, v in value.items()}
        return [wire(v) for v in value] if isinstance(value, list) else value

    opus = "anthropic.claude-opus-4-5-20251101-v1:0"  # takes an effort level (Sonnet 4.5 does not)
    out = to_converse_params(request_from_converse(opus, wire({"messages": messages, **sent})))
    assert out["messages"] == messages
    text_format = out.pop("outputConfig")
    schema = text_format["textFormat"]["structure"]["jsonSchema"]
    assert json.loads(schema.pop("schema")) == SCHEMA
    sent_format = sent.pop("outputConfig")
    sent_format["textFormat"]["structure"]["jsonSchema"].pop("schema")
    assert text_format == sent_format
    assert {k: v for k, v in out.items() if k not in ("modelId", "messages")} == sent
    plain = {"messages": messages[:1], "additionalModelRequestFields": {"top_k": 40}}
    assert to_converse_params(request_from_converse(opus, wire(plain)))["additionalModelRequestFields"] == {"top_k": 40}


@pytest.mark.parametrize(
    ("body", "named"),
    [
        ({"messages": [{"role": "system", "content": [{"text": "x"}]}]}, "messages[0].role"),
        ({"messages": [{"role": "user", "content": []}]}, "messages[0].content: expected a non-empty list"),
        ({"messages": [{"role": "user", "content": [{"text": "a", "image": {}}]}]}, "messages[0].content[0]: expected"),
        (
            {"messages": [{"role": "user", "content": [{"toolUse": {"toolUseId": "t", "name": "n", "input": [1]}}]}]},
            "messages[0].content[0].toolUse.input",
        ),
        (
            {
                "messages": [
                    {
                        "role": "user",
                        "content": [
                            {"document": {"format": "pdf", "name": "d", "citations": {}, "source": {"bytes": "AA=="}}}
                        ],
                    }
                ]
            },
            "messages[0].content[0].document.citations",
        ),
        (
            {"messages": [{"role": "user", "content": [{"cachePoint": {"type": "default", "ttl": "2h"}}]}]},
            "messages[0].content[0].cachePoint.ttl",
        ),
        ({"inferenceConfig": {"maxTokens": 0}}, "inferenceConfig.maxTokens"),
        ({"inferenceConfig": {"temperature": "hot"}}, "inferenceConfig.temperature: expected a number"),
        (
            {"toolConfig": {"tools": [{"toolSpec": {"name": "t", "inputSchema": {"json": "{}"}}}]}},
            "toolConfig.tools[0].toolSpec.inputSchema.json",
        ),
        (
            {
                "toolConfig": {
                    "tools": [{"toolSpec": {"name": "t", "inputSchema": {"json": {}}}}],
                    "toolChoice": {"none": {}},
                }
            },
            "toolConfig.toolChoice.none",
        ),
        (
            {"additionalModelRequestFields": {"thinking": {"type": "enabled"}}},
            "additionalModelRequestFields.thinking.budget_tokens",
        ),
        (
            {"outputConfig": {"textFormat": {"type": "json_schema", "structure": {"jsonSchema": {"schema": "{"}}}}},
            "outputConfig.textFormat.structure.jsonSchema.schema",
        ),
        ({"madeUp": "p"}, "madeUp: not carried"),  # projectIdentifier is carried (test_converse_route.py)
    ],
)
def test_a_malformed_or_uncarried_field_is_named(body, named) -> None:
    with pytest.raises(ValueError, match=named.replace("[", r"\[").replace("]", r"\]").replace(".", r"\.")):
        request_from_converse(MODEL, {"messages": [{"role": "user", "content": [{"text": "hi"}]}], **body})


def test_an_answer_goes_back_in_converses_shape_blobs_as_base64() -> None:
    response = ChatResponse(
        content=[
            ReasoningBlock("hm", "sig"),
            ReasoningBlock(redacted=b64(REDACTED)),
            TextBlock("Calling."),
            ToolUseBlock("tu_9", "get_weather", {"city": "Oslo"}),
        ],
        model=MODEL,
        provider="bedrock",
        usage=Usage(10, 5, cache_read_tokens=100, cache_write_tokens=20),
        finish_reason="tool_calls",
        latency_ms=12.4,
        raw={"top": {"trace": {"guardrail": {"x": 1}}, "other": 1}},
    )
    body = answer_body(response)
    assert body["output"]["message"]["content"] == [
        {"reasoningContent": {"reasoningText": {"text": "hm", "signature": "sig"}}},
        {"reasoningContent": {"redactedContent": b64(REDACTED)}},
        {"text": "Calling."},
        {"toolUse": {"toolUseId": "tu_9", "name": "get_weather", "input": {"city": "Oslo"}}},
    ]
    assert body["stopReason"] == "tool_use" and body["metrics"] == {"latencyMs": 12}
    assert body["usage"] == {
        "inputTokens": 10,
        "outputTokens": 5,
        "totalTokens": 135,
        "cacheReadInputTokens": 100,
        "cacheWriteInputTokens": 20,
        "cacheDetails": [{"ttl": "5m", "inputTokens": 20}],
    }
    assert body["trace"] == {"guardrail": {"x": 1}} and "other" not in body


def test_redacted_reasoning_that_is_not_base64_goes_out_and_comes_back_as_it_was() -> None:
    """Anthropic's redacted thinking is opaque text; Converse holds redacted reasoning as bytes. Text that is not
    base64 had no Converse form (the answer was a 500); it goes out as marked bytes and comes back the same text."""
    opaque = "EmwKAhgBEgy3va3pzix/LafPsn4a=not=base64"
    response = ChatResponse(
        content=[ReasoningBlock(redacted=opaque), TextBlock("Hi.")],
        model=MODEL,
        provider="anthropic",
        usage=Usage(1, 1),
    )
    content = answer_body(response)["output"]["message"]["content"]
    turn = {"messages": [{"role": "user", "content": [{"text": "hi"}]}, {"role": "assistant", "content": content}]}
    back = [ReasoningBlock(redacted=opaque, signer="claude"), TextBlock("Hi.")]  # Converse's signatures are Claude's
    assert request_from_converse(MODEL, turn).messages[1].content == back


def test_a_streamed_answer_carries_redacted_reasoning_as_the_same_blob() -> None:
    from botocore.eventstream import EventStreamBuffer

    from tokenomy.gateway.converse_routes import EventWriter

    opaque = "EmwKAhgBEgy3va3pzix/LafPsn4a=not=base64"
    response = ChatResponse(
        content=[ReasoningBlock(redacted=opaque)], model=MODEL, provider="anthropic", usage=Usage(1, 1)
    )
    frames = EventStreamBuffer()
    frames.add_data(b"".join(EventWriter("req-1").finish(response)))
    events = [json.loads(frame.payload) for frame in frames]
    delta = events[0]["delta"]["reasoningContent"]["redactedContent"]
    assert delta == answer_body(response)["output"]["message"]["content"][0]["reasoningContent"]["redactedContent"]
    assert base64.b64decode(delta).endswith(opaque.encode())
