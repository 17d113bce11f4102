"""What an OpenAI-format request becomes for each provider mapping: the gateway's schema → ChatRequest →
the Anthropic, Bedrock Converse, Gemini and OpenAI bodies (no server needed: the mappings are pure)."""

from __future__ import annotations

from dataclasses import replace

import pytest

from tokenomy.config import RouteConfig
from tokenomy.errors import ProviderError
from tokenomy.gateway.openai_ingress import to_chat_request
from tokenomy.gateway.schemas import ChatCompletionRequest
from tokenomy.messages import ReasoningBlock
from tokenomy.providers import openai_wire, openai_wire_read
from tokenomy.providers.anthropic_mapping import to_anthropic_params
from tokenomy.providers.converse_mapping import to_converse_params
from tokenomy.providers.gemini_mapping import contents_from_request

SONNET = "claude-sonnet-4-20250514"
CLAUDE_ON_BEDROCK = "anthropic.claude-3-haiku-20240307-v1:0"


def chat_request(model: str, **fields):
    body = ChatCompletionRequest.model_validate({"model": model, **fields})
    return to_chat_request(body, {}, None, RouteConfig())


def test_returned_reasoning_content_is_carried_or_refused_never_a_500():
    turns = [
        {"role": "user", "content": "hi"},
        {
            "role": "assistant",
            "content": "hello",
            "reasoning_content": "greet back",
            "refusal": None,
            "annotations": [],
            "audio": None,
            "function_call": None,
        },
        {"role": "user", "content": "again"},
    ]
    request = chat_request(SONNET, messages=turns)
    assert request.messages[1].content[0] == ReasoningBlock("greet back")
    # OpenAI-format servers get no reasoning back (DeepSeek-style servers refuse reasoning_content).
    assert openai_wire.request_body(request)["messages"][1] == {"role": "assistant", "content": "hello"}
    # Anthropic checks thinking signatures: an unsigned block is refused before any call, naming it.
    with pytest.raises(ProviderError, match=r"messages\[1\]\.content\[0\].*unsigned") as refused:
        to_anthropic_params(request)
    assert refused.value.kind == "client_error" and refused.value.status == 400
    # Converse types reasoningText's signature optional (DeepSeek-R1 signs nothing), but Claude checks it on Bedrock
    # too: refused for Claude, carried unsigned for a model that signs nothing. Gemini takes the text as a thought part.
    request.model = CLAUDE_ON_BEDROCK
    with pytest.raises(ProviderError, match=r"messages\[1\]\.content\[0\].*unsigned") as refused:
        to_converse_params(request)
    assert refused.value.kind == "client_error" and refused.value.status == 400
    request.model = "deepseek.r1-v1:0"
    converse = to_converse_params(request)["messages"][1]["content"]
    assert converse[0] == {"reasoningContent": {"reasoningText": {"text": "greet back"}}}
    assert contents_from_request(request)[1]["parts"][0] == {"text": "greet back", "thought": True}


def test_max_completion_tokens_is_each_providers_own_cap_and_never_a_raw_field():
    turns = [{"role": "user", "content": "hi"}]
    request = chat_request(SONNET, messages=turns, max_completion_tokens=20)
    assert request.max_tokens == 20 and request.extra == {}
    anthropic = to_anthropic_params(request)
    assert anthropic["max_tokens"] == 20 and "max_completion_tokens" not in anthropic
    request.model = CLAUDE_ON_BEDROCK
    converse = to_converse_params(request)
    assert converse["inferenceConfig"]["maxTokens"] == 20
    assert "max_completion_tokens" not in str(converse)
    # OpenAI gets the name its caller used (o-series models refuse max_tokens), and the smaller cap.
    body = openai_wire.request_body(chat_request("o3", messages=turns, max_completion_tokens=20, max_tokens=30))
    assert body["max_completion_tokens"] == 20 and "max_tokens" not in body
    body = openai_wire.request_body(chat_request("gpt-4o", messages=turns, max_tokens=30))
    assert body["max_tokens"] == 30 and "max_completion_tokens" not in body


SIGNED = [
    {"type": "thinking", "thinking": "look it up", "signature": "c2lnLTE="},
    {"type": "redacted_thinking", "data": "opaque"},
]
GEMINI_CALL = {
    "id": "call_1",
    "type": "function",
    "function": {"name": "get_weather", "arguments": '{"city": "Paris"}'},
    "extra_content": {"google": {"thought_signature": "c2lnLTI="}},
}


def test_signed_reasoning_sent_back_through_chat_completions_reaches_each_provider_signed():
    """Claude's thinking and Gemini's thought signatures must come back signed, or the next turn of a tool loop is
    refused (Claude checks its thinking blocks; Gemini 3 wants the signature on the function call it came with).
    Chat completions had no place for a signature: `reasoning_content` came back unsigned and was refused."""
    turns = [
        {"role": "user", "content": "Weather in Paris?"},
        {
            "role": "assistant",
            "content": None,
            "reasoning_content": "look it up",
            "thinking_blocks": SIGNED,
            "tool_calls": [GEMINI_CALL],
        },
        {"role": "tool", "tool_call_id": "call_1", "content": "18C sunny"},
    ]
    request = chat_request(SONNET, messages=turns)
    assert request.messages[1].content[:3] == [
        ReasoningBlock("look it up", "c2lnLTE="),
        ReasoningBlock(redacted="opaque"),
        ReasoningBlock("", "c2lnLTI=", signer="gemini"),
    ]  # Google's field: Gemini's; thinking_blocks: unknown
    anthropic = to_anthropic_params(
        chat_request(
            SONNET,
            messages=[
                turns[0],
                {**turns[1], "tool_calls": [{k: v for k, v in GEMINI_CALL.items() if k != "extra_content"}]},
                turns[2],
            ],
        )
    )
    assert anthropic["messages"][1]["content"][:2] == [
        {"type": "thinking", "thinking": "look it up", "signature": "c2lnLTE="},
        {"type": "redacted_thinking", "data": "opaque"},
    ]
    gemini = contents_from_request(
        chat_request("gemini-2.5-flash", messages=[turns[0], {**turns[1], "thinking_blocks": SIGNED[:1]}, turns[2]])
    )
    assert gemini[1]["parts"][0] == {"text": "look it up", "thought": True, "thought_signature": b"sig-1"}
    assert gemini[1]["parts"][1]["thought_signature"] == b"sig-2" and "function_call" in gemini[1]["parts"][1]
    # An OpenAI-format upstream (Google's compatible API, a LiteLLM proxy) gets them back in the same two fields.
    sent = openai_wire.request_body(request)["messages"][1]
    assert sent["thinking_blocks"] == SIGNED and sent["tool_calls"][0]["extra_content"] == GEMINI_CALL["extra_content"]
    unsigned = [replace(b, signer=None) if isinstance(b, ReasoningBlock) else b for b in request.messages[1].content]
    assert openai_wire_read.message_blocks(sent) == unsigned


@pytest.mark.parametrize(
    ("change", "param", "said"),
    [
        ({"thinking_blocks": "signed"}, "messages[1].thinking_blocks", "a list"),
        (
            {"thinking_blocks": [{"type": "thinking", "thinking": "x", "signature": "s", "cache_control": {}}]},
            "messages[1].thinking_blocks[0]",
            "cache_control",
        ),
        ({"thinking_blocks": [{"type": "summary", "text": "x"}]}, "messages[1].thinking_blocks[0]", "'summary'"),
        ({"reasoning_content": "something else"}, "messages[1].reasoning_content", "differs from"),
        (
            {"tool_calls": [{**GEMINI_CALL, "extra_content": {"google": {"thought_signature": "s", "more": 1}}}]},
            "messages[1].tool_calls[0].extra_content",
            "thought_signature",
        ),
    ],
)
def test_signed_reasoning_of_a_shape_that_cannot_be_carried_is_a_named_400(change, param, said):
    from tokenomy.gateway.openai_shapes import RequestError

    turns = [
        {"role": "user", "content": "hi"},
        {
            "role": "assistant",
            "content": "hello",
            "reasoning_content": "look it up",
            "thinking_blocks": SIGNED[:1],
            **change,
        },
    ]
    with pytest.raises(RequestError, match=said) as refused:
        chat_request(SONNET, messages=[*turns, {"role": "user", "content": "again"}])
    assert refused.value.param == param


@pytest.mark.parametrize(
    "media_type, fmt",
    [
        ("application/vnd.openxmlformats-officedocument.wordprocessingml.document", "docx"),
        ("application/vnd.openxmlformats-officedocument.spreadsheetml.sheet", "xlsx"),
        ("application/msword", "doc"),
        ("text/csv", "csv"),
    ],
)
def test_a_file_part_keeps_its_media_type_without_a_file_name(media_type, fmt):
    # An office file sent without a filename was taken for a PDF: Converse was told format pdf, and an OpenAI-format
    # upstream got it relabelled data:application/pdf.
    part = {"type": "file", "file": {"file_data": f"data:{media_type};base64,UEsDBA=="}}
    request = chat_request(CLAUDE_ON_BEDROCK, messages=[{"role": "user", "content": [part]}])
    assert request.messages[0].content[0].format == fmt
    assert to_converse_params(request)["messages"][0]["content"][0]["document"]["format"] == fmt
    sent = openai_wire.request_body(request)["messages"][0]["content"][0]["file"]["file_data"]
    assert sent == part["file"]["file_data"]


def test_reasoning_that_is_not_base64_is_refused_naming_it_not_a_500():
    # A thought signature (Gemini) or redacted reasoning (Converse) is sent as bytes: text that is not base64 raised
    # binascii.Error in the mapping, which the gateway answered with a 500.
    from tokenomy.providers.gemini_mapping import contents_from_request as gemini_contents

    signed = {
        "role": "assistant",
        "content": "x",
        "thinking_blocks": [{"type": "thinking", "thinking": "t", "signature": "not base64!"}],
    }
    redacted = {"role": "assistant", "content": "x", "thinking_blocks": [{"type": "redacted_thinking", "data": "abc"}]}
    turns = [{"role": "user", "content": "hi"}, signed, {"role": "user", "content": "again"}]
    with pytest.raises(ProviderError, match=r"^messages\[1\]\.content\[0\]: Gemini .*not base64") as refused:
        gemini_contents(chat_request("gemini-2.5-flash", messages=turns))
    assert refused.value.status == 400 and refused.value.param == "messages[1].content[0]"
    turns[1] = redacted
    with pytest.raises(ProviderError, match=r"^messages\[1\]\.content\[0\]: Bedrock Converse .*not base64"):
        to_converse_params(chat_request(CLAUDE_ON_BEDROCK, messages=turns))
    # Either base64 alphabet is taken, byte for byte.
    turns[1] = {**redacted, "thinking_blocks": [{"type": "redacted_thinking", "data": "-_8="}]}
    content = to_converse_params(chat_request(CLAUDE_ON_BEDROCK, messages=turns))["messages"][1]["content"]
    assert content[0] == {"reasoningContent": {"redactedContent": b"\xfb\xff"}}


def test_tool_call_arguments_that_are_no_json_reach_every_api_with_their_text():
    # A model's call cut off mid-argument comes back to an OpenAI-format agent as its raw text, which the agent sends
    # back with the conversation. Anthropic got input {} (the text dropped), Converse refused the turn (every later
    # turn of the loop too); each now gets {"INVALID_JSON": text}, Anthropic's convention, as a /v1/messages caller
    # is answered such a call.
    turns = [
        {"role": "system", "content": "s"},
        {"role": "user", "content": "weather?"},
        {
            "role": "assistant",
            "content": None,
            "tool_calls": [
                {"id": "c1", "type": "function", "function": {"name": "get_weather", "arguments": '{"city": "Oslo"}'}},
                {"id": "c2", "type": "function", "function": {"name": "get_weather", "arguments": '{"city": "Par'}},
            ],
        },
        {"role": "tool", "tool_call_id": "c1", "content": "sunny"},
        {"role": "tool", "tool_call_id": "c2", "content": "rain"},
    ]
    tools = [{"type": "function", "function": {"name": "get_weather"}}]
    wrapped = {"INVALID_JSON": '{"city": "Par'}
    body = ChatCompletionRequest.model_validate({"model": CLAUDE_ON_BEDROCK, "messages": turns, "tools": tools})
    converse = to_converse_params(to_chat_request(body, {}, None, RouteConfig()))
    assert converse["messages"][1]["content"][1]["toolUse"]["input"] == wrapped
    body = ChatCompletionRequest.model_validate({"model": "claude-haiku-4-5", "messages": turns, "tools": tools})
    claude = to_anthropic_params(to_chat_request(body, {}, None, RouteConfig()))
    assert claude["messages"][1]["content"][1]["input"] == wrapped
    body = ChatCompletionRequest.model_validate({"model": "gpt-4o-mini", "messages": turns, "tools": tools})
    sent = openai_wire.request_body(to_chat_request(body, {}, None, RouteConfig()))
    assert sent["messages"][2]["tool_calls"][1]["function"]["arguments"] == '{"city": "Par'  # as the model wrote it


def test_openais_user_is_each_providers_end_user_field():
    # `user` went through as a raw field: Anthropic routes refused it, and Converse got it as a model field
    # (additionalModelRequestFields), which Bedrock's models refuse.
    turns = [{"role": "user", "content": "hi"}]
    request = chat_request(SONNET, messages=turns, user="end-user-42")
    assert request.user == "end-user-42" and "user" not in request.extra
    assert to_anthropic_params(request)["metadata"] == {"user_id": "end-user-42"}
    assert openai_wire.request_body(request)["user"] == "end-user-42"
    request.model = CLAUDE_ON_BEDROCK
    converse = to_converse_params(request)
    assert converse["requestMetadata"] == {"user_id": "end-user-42"} and "additionalModelRequestFields" not in converse
    request.user = "ann <ann@example.com>"  # Converse's metadata values take no < or >
    with pytest.raises(ProviderError, match="requestMetadata") as refused:
        to_converse_params(request)
    assert str(refused.value).startswith("user: ") and refused.value.status == 400
    with pytest.raises(Exception, match="expected a string"):
        chat_request(SONNET, messages=turns, user=42)


def test_adaptive_thinking_is_each_providers_own():
    # Claude on Bedrock takes it in additionalModelRequestFields (its effort in outputConfig); Gemini's counterpart
    # is a dynamic budget (-1), or a thinking level when an effort guides it.
    turns = [{"role": "user", "content": "hi"}]
    adaptive = {"thinking": {"type": "adaptive"}}
    opus = "anthropic.claude-opus-4-6-v1"  # Claude 4.6: adaptive thinking and an effort
    converse = to_converse_params(chat_request(opus, messages=turns, **adaptive, reasoning_effort="high"))
    assert converse["additionalModelRequestFields"]["thinking"] == {"type": "adaptive"}
    assert converse["outputConfig"] == {"effort": "high"}
    from tokenomy.providers.gemini_mapping import config_from_request

    gemini = config_from_request(chat_request("gemini-2.5-flash", messages=turns, **adaptive))
    assert gemini["thinking_config"] == {"include_thoughts": True, "thinking_budget": -1}
