"""ChatRequest -> google-genai contents/config and back: what is carried, what is refused by name."""

from __future__ import annotations

import base64
from dataclasses import replace
from types import SimpleNamespace

import pytest

from tokenomy.chat_response import Usage
from tokenomy.errors import ProviderError
from tokenomy.messages import (
    ChatRequest,
    DocumentBlock,
    ImageBlock,
    Message,
    ReasoningBlock,
    TextBlock,
    ToolResultBlock,
    ToolUseBlock,
)
from tokenomy.providers.gemini_mapping import config_from_request, contents_from_request
from tokenomy.providers.gemini_parts_read import blocks_from_parts, finish_reason, usage_from_gemini
from tokenomy.providers.gemini_provider import GeminiProvider
from tokenomy.request_options import Reasoning, ResponseFormat, ToolChoice, ToolSpec

MODEL = "gemini-2.5-flash"
SCHEMA = {"type": "object", "properties": {"city": {"type": "string"}}, "required": ["city"]}


def conversation() -> ChatRequest:
    return ChatRequest(
        model=MODEL,
        system="be brief",
        messages=[
            Message(
                "user",
                [
                    TextBlock("look"),
                    ImageBlock("image/png", b"\x89PNG"),
                    ImageBlock(url="https://x/a.jpg"),
                    DocumentBlock("pdf", b"%PDF", "contract"),
                    DocumentBlock("txt", file_id="files/abc"),
                ],
            ),
            Message(
                "assistant",
                [
                    ReasoningBlock("thinking...", base64.b64encode(b"sig1").decode()),
                    ReasoningBlock("", base64.b64encode(b"sig2").decode()),
                    ToolUseBlock("call-1", "get_weather", {"city": "Oslo"}),
                ],
            ),
            Message("user", [ToolResultBlock("call-1", [TextBlock('{"temp": 18}')]), TextBlock("and now?")]),
        ],
        max_tokens=64,
        temperature=0.2,
        top_p=0.9,
        top_k=40,
        stop=["END"],
        seed=7,
        presence_penalty=0.1,
        frequency_penalty=0.2,
        tools=[ToolSpec("get_weather", "Weather now", SCHEMA)],
        tool_choice=ToolChoice("tool", "get_weather"),
        response_format=ResponseFormat("json_schema", SCHEMA, "w"),
        reasoning=Reasoning(budget_tokens=512),
        extra={"cached_content": "cachedContents/abc", "labels": {"team": "a"}},
    )


def test_every_block_and_option_is_carried() -> None:
    request = conversation()
    contents = contents_from_request(request)
    assert [c["role"] for c in contents] == ["user", "model", "user"]
    user = contents[0]["parts"]
    assert user[0] == {"text": "look"}
    assert user[1] == {"inline_data": {"mime_type": "image/png", "data": b"\x89PNG"}}
    assert user[2] == {"file_data": {"file_uri": "https://x/a.jpg", "mime_type": "image/jpeg"}}
    assert user[3]["inline_data"] == {"mime_type": "application/pdf", "data": b"%PDF", "display_name": "contract"}
    assert user[4] == {"file_data": {"file_uri": "files/abc", "mime_type": "text/plain"}}
    model = contents[1]["parts"]
    assert model[0] == {"text": "thinking...", "thought": True, "thought_signature": b"sig1"}
    # The empty reasoning block carries the signature Gemini put on the function call part.
    assert model[1] == {
        "function_call": {"name": "get_weather", "args": {"city": "Oslo"}, "id": "call-1"},
        "thought_signature": b"sig2",
    }
    assert contents[2]["parts"][0] == {
        "function_response": {"name": "get_weather", "response": {"output": {"temp": 18}}, "id": "call-1"}
    }
    config = config_from_request(request)
    assert config["system_instruction"] == "be brief" and config["max_output_tokens"] == 64
    assert (config["temperature"], config["top_p"], config["top_k"], config["seed"]) == (0.2, 0.9, 40, 7)
    assert (config["presence_penalty"], config["frequency_penalty"], config["stop_sequences"]) == (0.1, 0.2, ["END"])
    assert config["response_mime_type"] == "application/json" and config["response_json_schema"] == SCHEMA
    assert config["tools"] == [
        {
            "function_declarations": [
                {"name": "get_weather", "parameters_json_schema": SCHEMA, "description": "Weather now"}
            ]
        }
    ]
    assert config["tool_config"] == {
        "function_calling_config": {"mode": "ANY", "allowed_function_names": ["get_weather"]}
    }
    assert config["thinking_config"] == {"include_thoughts": True, "thinking_budget": 512}
    assert config["cached_content"] == "cachedContents/abc" and config["labels"] == {"team": "a"}
    from google.genai import types

    types.GenerateContentConfig.model_validate(config)  # the SDK takes every key as it is


@pytest.mark.parametrize(
    ("change", "needle"),
    [
        ({"parallel_tool_calls": False}, "parallel_tool_calls"),
        ({"messages": [Message("user", [DocumentBlock("docx", b"PK")])]}, "messages[0].content[0]"),
        ({"messages": [Message("user", [ImageBlock("image/png", b"x", detail="high")])]}, "detail"),
        ({"messages": [Message("user", [ToolResultBlock("nope", [TextBlock("x")])])]}, "tool_use_id"),
        ({"reasoning": Reasoning(effort="extreme")}, "reasoning_effort"),
        ({"reasoning": Reasoning(effort="high", budget_tokens=0)}, "reasoning_effort"),  # thinking off: it was dropped
        ({"response_format": ResponseFormat("json_object", description="an answer")}, "description"),
        ({"tool_choice": ToolChoice("any")}, "tool_choice"),  # forced, with no tools: the choice was dropped
        ({"tool_choice": ToolChoice("tool", "lookup")}, "tool_choice"),
    ],
)
def test_what_gemini_cannot_take_is_refused_by_name(change, needle) -> None:
    request = ChatRequest(**{"messages": [Message("user", "hi")], "model": MODEL, **change})
    with pytest.raises(ProviderError, match=needle.replace("[", r"\[").replace("]", r"\]")) as refused:
        config_from_request(request)
        contents_from_request(request)
    assert refused.value.kind == "client_error" and refused.value.status == 400


def test_strict_tools_are_validated_calls() -> None:
    request = ChatRequest.simple("x", model=MODEL, tools=[ToolSpec("f", input_schema=SCHEMA, strict=True)])
    assert config_from_request(request)["tool_config"] == {"function_calling_config": {"mode": "VALIDATED"}}
    forced = ChatRequest.simple(
        "x", model=MODEL, tools=[ToolSpec("f", input_schema=SCHEMA, strict=True)], tool_choice=ToolChoice("any")
    )
    assert config_from_request(forced)["tool_config"] == {"function_calling_config": {"mode": "ANY"}}
    assert "tool_config" not in config_from_request(ChatRequest.simple("x", model=MODEL, tools=[ToolSpec("f")]))


def test_unknown_extra_keys_are_refused_before_any_call(monkeypatch) -> None:
    monkeypatch.setenv("GEMINI_API_KEY", "k")
    provider = GeminiProvider()
    bias = ChatRequest.simple("x", model=MODEL, extra={"logit_bias": {"1": 2}})
    assert str(provider.refusal(bias)) == "field `logit_bias`"
    assert provider.refusal(ChatRequest.simple("x", model=MODEL, extra={"safety_settings": []})) is None
    more = ChatRequest.simple("x", model=MODEL, extra={"candidate_count": 2})  # a second answer has no place
    assert str(provider.refusal(more)) == "field `candidate_count`"
    assert provider.refusal(ChatRequest.simple("x", model=MODEL, extra={"max_completion_tokens": 5})) is None
    provider.close()


def test_response_parts_become_blocks() -> None:
    blocks = blocks_from_parts(
        [
            {"text": "let me ", "thought": True},
            {"text": "think", "thought": True, "thought_signature": b"s"},
            {"text": "It is "},
            {"text": "sunny."},
            {"function_call": {"name": "f", "args": {"a": 1}}, "thought_signature": b"t"},
        ]
    )
    assert blocks[0] == ReasoningBlock("let me think", base64.b64encode(b"s").decode())
    assert blocks[1] == TextBlock("It is sunny.")
    assert blocks[2] == ReasoningBlock("", base64.b64encode(b"t").decode())
    assert blocks[3] == ToolUseBlock("gemini-call-0", "f", {"a": 1}, '{"a": 1}')
    assert finish_reason("STOP", blocks) == "tool_calls" and finish_reason("MAX_TOKENS", []) == "length"
    assert finish_reason("SAFETY", []) == "content_filter"
    # A made-up id is not sent back to Gemini; the result is matched by the function's name.
    result = ToolResultBlock("gemini-call-0", [TextBlock("ok")])
    request = ChatRequest(model=MODEL, messages=[Message("assistant", blocks[2:]), Message("user", [result])])
    contents = contents_from_request(request)
    assert contents[0]["parts"] == [{"function_call": {"name": "f", "args": {"a": 1}}, "thought_signature": b"t"}]
    assert contents[1]["parts"] == [{"function_response": {"name": "f", "response": {"output": "ok"}}}]


@pytest.mark.parametrize(
    "answer",
    [
        [{"text": "It is sunny."}, {"text": "", "thought_signature": b"s"}],
        [{"function_call": {"name": "f", "args": {"a": 1}}}, {"text": "", "thought_signature": b"t"}],
    ],
    ids=["after text", "after a function call"],
)
def test_a_trailing_signature_part_goes_back_as_it_came(answer) -> None:
    # Gemini 3 often ends a turn (a stream's last chunk, or after a function call on Vertex AI) with an empty text
    # part holding only the thought signature: it became a bare ReasoningBlock that was dropped on the way back.
    blocks = blocks_from_parts(answer)
    turns = [Message("user", "hi"), Message("assistant", blocks)]
    if isinstance(blocks[0], ToolUseBlock):
        turns.append(Message("user", [ToolResultBlock(blocks[0].id, [TextBlock("ok")])]))
    parts = contents_from_request(ChatRequest(model=MODEL, messages=turns))[1]["parts"]
    assert parts == [{"function_call": p["function_call"]} if "function_call" in p else p for p in answer]


def test_finish_reasons_say_why_the_answer_ended() -> None:
    from google.genai import types

    # Content filters Gemini names apart (images, Vertex AI's Model Armor) were recorded as a normal stop, and an
    # answer that failed (a malformed function call, often with no content at all) as "stop" too.
    for reason in ("IMAGE_PROHIBITED_CONTENT", "IMAGE_RECITATION", "MODEL_ARMOR"):
        assert finish_reason(reason, []) == "content_filter"
    assert finish_reason(types.FinishReason.MALFORMED_FUNCTION_CALL, []) == "malformed_function_call"
    assert finish_reason("TOO_MANY_TOOL_CALLS", []) == "too_many_tool_calls"
    assert finish_reason("OTHER", []) == finish_reason(None, []) == "stop"


def test_usage_separates_cached_tokens_and_counts_thoughts_as_output() -> None:
    meta = SimpleNamespace(
        prompt_token_count=1500,
        cached_content_token_count=1200,
        candidates_token_count=40,
        thoughts_token_count=100,
        tool_use_prompt_token_count=None,
    )
    assert usage_from_gemini(meta) == Usage(
        input_tokens=300, output_tokens=140, cache_read_tokens=1200, reasoning_tokens=100
    )
    assert usage_from_gemini(None) == Usage()


def test_a_blocked_prompt_is_a_content_filter_finish() -> None:
    from google.genai import types

    from tokenomy.providers.gemini_answer_read import prompt_blocked

    blocked = types.GenerateContentResponse.model_validate({"promptFeedback": {"blockReason": "SAFETY"}})
    assert finish_reason(prompt_blocked(blocked), []) == "content_filter"
    assert prompt_blocked(types.GenerateContentResponse.model_validate({"candidates": []})) is None


def _assistant_call_turn(*blocks) -> ChatRequest:
    return ChatRequest(
        model=MODEL,
        messages=[
            Message("user", "Weather in Paris?"),
            Message("assistant", [*blocks, ToolUseBlock("call_1", "get_weather", {"city": "Paris"})]),
            Message("user", [ToolResultBlock("call_1", [TextBlock("18C")])]),
        ],
        tools=[ToolSpec("get_weather", "Weather", SCHEMA)],
    )


@pytest.mark.parametrize("model", ["gemini-3-pro-preview", "models/gemini-3.1-flash", "gemini-10-x"])
def test_a_call_another_model_made_gets_gemini_3s_stand_in_signature(model):
    """Gemini 3 refuses a turn whose first function call has no thought signature, which a call Claude or GPT made
    lacks: it goes with the stand-in Google documents, written by the SDK (URL-safe base64) as its text."""
    contents = contents_from_request(replace(_assistant_call_turn(), model=model))
    part = contents[1]["parts"][0]
    assert base64.urlsafe_b64encode(part["thought_signature"]) == b"skip_thought_signature_validator"


def test_gemini_signed_turns_and_older_models_get_no_stand_in():
    signature = base64.b64encode(b"gemini's own").decode()
    own = contents_from_request(replace(_assistant_call_turn(ReasoningBlock("", signature)), model="gemini-3-pro"))
    assert own[1]["parts"][0]["thought_signature"] == b"gemini's own"
    older = contents_from_request(_assistant_call_turn())  # 2.5 only warns
    assert "thought_signature" not in older[1]["parts"][0]
