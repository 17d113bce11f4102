"""Real traffic through the gateway intact: the official openai SDK → gateway → a recording OpenAI upstream.

Tool calls (streamed and not, parallel), the assistant tool_calls + tool messages of the next turn,
image parts byte for byte, response_format/seed/top_p, and every field of OpenAI's request schema:
each is forwarded or refused with a 400 naming it.
"""

from __future__ import annotations

import base64
import hashlib
import json
import time

import anthropic
import httpx
import openai
import pytest

from helpers.openai_samples import GATEWAY_FIELDS, SAMPLES, request_fields
from helpers.recording_openai import LOGPROBS, PATCH, RecordingOpenAI, arguments_for
from tokenomy.config import parse_config
from tokenomy.emulate.server import ServerThread
from tokenomy.gateway.app import create_app
from tokenomy.ledger.store import open_store

HAIKU = "anthropic.claude-3-haiku-20240307-v1:0"
WEATHER = {
    "type": "function",
    "function": {
        "name": "get_weather",
        "description": "Weather in a city",
        "parameters": {"type": "object", "properties": {"city": {"type": "string"}}, "required": ["city"]},
    },
}
TIME = {"type": "function", "function": {"name": "get_time", "parameters": {"type": "object", "properties": {}}}}
USER = {"role": "user", "content": "Weather and time in Paris?"}
# A PNG header then every byte value: any re-encoding or truncation on the way changes it.
IMAGE = b"\x89PNG\r\n\x1a\n" + bytes(range(256)) * 3


def gateway(upstream: RecordingOpenAI, ledger) -> ServerThread:
    config = {
        "models": {
            "fast": {"provider": "openai", "model": "up-model", "base_url": upstream.url, "price_as": HAIKU},
            "text-only": {
                "provider": "openai",
                "model": "up-text",
                "base_url": upstream.url,
                "price_as": HAIKU,
                "inputs": ["text"],
            },
            # Anthropic's API has no per-message `name`; never called (refused before any call).
            "claude": {"provider": "anthropic", "model": "claude-sonnet-4-5-20250929", "base_url": upstream.url},
        }
    }
    return ServerThread(create_app(parse_config(config), str(ledger)), lifespan="on")


@pytest.fixture
def served(ledger_path):
    with RecordingOpenAI() as upstream, gateway(upstream, ledger_path) as url:
        yield upstream, openai.OpenAI(base_url=url + "/v1", api_key="unused", max_retries=0), url


def second_turn(reply_message) -> list[dict]:
    """The next request of an agent loop: the assistant's calls, then one tool message per call."""
    assistant = reply_message.model_dump(exclude_none=True)
    results = [
        {"role": "tool", "tool_call_id": c.id, "content": f"result of {c.function.name}: 18C sunny"}
        for c in reply_message.tool_calls
    ]
    return [USER, assistant, *results]


def test_tool_call_round_trip_and_parallel_calls(served, ledger_path):
    upstream, client, _ = served
    reply = client.chat.completions.create(model="fast", messages=[USER], tools=[WEATHER, TIME], max_tokens=50)
    choice = reply.choices[0]
    assert choice.finish_reason == "tool_calls" and choice.message.content is None
    assert [(c.id, c.function.name, c.function.arguments) for c in choice.message.tool_calls] == [
        ("call_0", "get_weather", arguments_for("get_weather")),
        ("call_1", "get_time", arguments_for("get_time")),
    ]
    assert reply.usage.prompt_tokens_details.cached_tokens == 8
    assert reply.usage.completion_tokens_details.reasoning_tokens == 3 and reply.usage.prompt_tokens == 40
    assert upstream.last["tools"] == [WEATHER, TIME]

    messages = second_turn(choice.message)
    final = client.chat.completions.create(model="fast", messages=messages, tools=[WEATHER, TIME], max_tokens=50)
    assert final.choices[0].finish_reason == "stop"
    assert final.choices[0].message.content == "answer after result of get_time: 18C sunny"
    sent = upstream.last["messages"]
    assert sent[0] == USER
    assert sent[1] == {"role": "assistant", "content": None, "tool_calls": messages[1]["tool_calls"]}
    assert sent[2:] == messages[2:]  # role tool, tool_call_id and content intact, in order

    one = client.chat.completions.create(
        model="fast", messages=[USER], tools=[WEATHER, TIME], parallel_tool_calls=False, tool_choice="required"
    )
    assert len(one.choices[0].message.tool_calls) == 1
    assert upstream.last["parallel_tool_calls"] is False and upstream.last["tool_choice"] == "required"
    named = {"type": "function", "function": {"name": "get_time"}}
    client.chat.completions.create(model="fast", messages=[USER], tools=[WEATHER, TIME], tool_choice=named)
    assert upstream.last["tool_choice"] == named


@pytest.mark.parametrize("stream", [False, True])
def test_a_custom_tool_call_round_trips_through_an_openai_model(served, ledger_path, stream):
    """A freeform (custom) tool reaches an OpenAI-format model as sent (its grammar, a tool_choice naming it), the
    model's custom call comes back with its raw input byte for byte (whole: the SDK's typed custom call; streamed:
    custom deltas), the ledger counts it as a tool call, and the next turn's call and tool message reach the model."""
    upstream, client, _ = served
    ask = {
        "model": "fast",
        "tools": [APPLY_PATCH, WEATHER],
        "parallel_tool_calls": False,
        "max_tokens": 50,
        "tool_choice": {"type": "custom", "custom": {"name": "apply_patch"}},
    }
    if stream:
        answer = client.chat.completions.create(messages=[USER], stream=True, **ask)
        request_id = answer.response.headers["x-request-id"]
        chunks = [chunk.to_dict() for chunk in answer]
        pieces = [p for c in chunks for ch in c["choices"] for p in ch["delta"].get("tool_calls") or []]
        assert pieces[0] == {
            "index": 0,
            "id": "call_0",
            "type": "custom",
            "custom": {"name": "apply_patch", "input": ""},
        }
        assert "".join(p["custom"]["input"] for p in pieces) == PATCH and len(pieces) > 2
        assert chunks[-1]["choices"][0]["finish_reason"] == "tool_calls"
    else:
        reply = client.chat.completions.create(messages=[USER], **ask)
        request_id = reply._request_id
        [call] = reply.choices[0].message.tool_calls
        assert isinstance(call, openai.types.chat.ChatCompletionMessageCustomToolCall)
        assert (call.id, call.custom.name, call.custom.input) == ("call_0", "apply_patch", PATCH)
        assert reply.choices[0].finish_reason == "tool_calls"
    assert (upstream.last["tools"], upstream.last["tool_choice"]) == ([APPLY_PATCH, WEATHER], ask["tool_choice"])
    final = client.chat.completions.create(messages=[USER, PATCHED, DONE], **{**ask, "tool_choice": "auto"})
    assert final.choices[0].message.content == "answer after Done!"
    assert upstream.last["messages"] == [USER, PATCHED, DONE]
    [row] = rows_of(ledger_path, request_id)
    assert row.tool_call_count == 1


def rows_of(ledger, request_id: str) -> list:
    """A call's ledger rows, once the gateway's writer (a second a batch) has written them."""
    deadline = time.monotonic() + 10
    while True:
        rows = [e for e in open_store(ledger).events() if e.request_id == request_id]
        if rows or time.monotonic() > deadline:
            return rows
        time.sleep(0.1)


def test_streamed_tool_calls_arrive_in_openais_chunk_format(served):
    upstream, client, _ = served
    stream = client.chat.completions.create(
        model="fast", messages=[USER], tools=[WEATHER, TIME], stream=True, stream_options={"include_usage": True}
    )
    calls: dict[int, dict] = {}
    finish, usage, pieces = None, None, 0
    for chunk in stream:
        usage = chunk.usage or usage
        for choice in chunk.choices:
            finish = choice.finish_reason or finish
            for piece in choice.delta.tool_calls or []:
                pieces += 1
                call = calls.setdefault(piece.index, {"id": None, "name": None, "arguments": ""})
                call["id"] = call["id"] or piece.id
                call["name"] = call["name"] or (piece.function.name if piece.function else None)
                call["arguments"] += (piece.function.arguments or "") if piece.function else ""
    assert finish == "tool_calls" and pieces == 8  # 2 calls x (header + 3 argument fragments), not one blob
    assert calls == {
        0: {"id": "call_0", "name": "get_weather", "arguments": arguments_for("get_weather")},
        1: {"id": "call_1", "name": "get_time", "arguments": arguments_for("get_time")},
    }
    assert usage.prompt_tokens_details.cached_tokens == 8 and usage.completion_tokens_details.reasoning_tokens == 3

    reply = client.chat.completions.create(model="fast", messages=[USER], tools=[WEATHER, TIME])
    messages = second_turn(reply.choices[0].message)
    text = "".join(
        c.choices[0].delta.content or ""
        for c in client.chat.completions.create(model="fast", messages=messages, tools=[WEATHER, TIME], stream=True)
        if c.choices
    )
    assert text == "answer after result of get_time: 18C sunny"
    assert upstream.last["stream"] is True and upstream.last["messages"][2:] == messages[2:]
    assert upstream.last["messages"][1]["tool_calls"] == messages[1]["tool_calls"]


def test_the_sdks_stream_and_parse_helpers_make_an_agent_loop_through_the_gateway(served):
    """The openai SDK's helpers, as an agent uses them: the final message of `stream()` or `parse()` is appended
    as-is to the next request. Before, the stream opened with content "" whatever followed (the helper fired an
    empty content delta and its message had content "" where OpenAI's has None), and the next request was a 400:
    the helpers' own `parsed`, `tool_calls[].index` and `function.parsed_arguments` were refused."""
    upstream, client, _ = served
    strict = {
        "type": "function",
        "function": {
            **WEATHER["function"],
            "strict": True,
            "parameters": {**WEATHER["function"]["parameters"], "additionalProperties": False},
        },
    }
    with client.chat.completions.stream(model="fast", messages=[USER], tools=[WEATHER, TIME]) as stream:
        events = [event.type for event in stream]
        streamed = stream.get_final_completion().choices[0].message
    assert streamed.content is None and [c.function.name for c in streamed.tool_calls] == ["get_weather", "get_time"]
    assert "content.delta" not in events and "tool_calls.function.arguments.done" in events
    parsed = client.chat.completions.parse(model="fast", messages=[USER], tools=[strict]).choices[0].message
    assert parsed.tool_calls[0].function.parsed_arguments["city"] == "Paris"
    for message in (streamed, parsed):
        results = [{"role": "tool", "tool_call_id": c.id, "content": "18C sunny"} for c in message.tool_calls]
        with client.chat.completions.stream(model="fast", messages=[USER, message, *results]) as stream:
            text = stream.get_final_completion().choices[0].message.content
        assert text == "answer after 18C sunny"  # a text answer still opens with ""
        sent = upstream.last["messages"][1]
        assert sent == {
            "role": "assistant",
            "content": None,
            "tool_calls": [
                {
                    "id": c.id,
                    "type": "function",
                    "function": {"name": c.function.name, "arguments": c.function.arguments},
                }
                for c in message.tool_calls
            ],
        }  # the helpers' derived fields are not forwarded


def test_a_streamed_answer_keeps_the_upstreams_system_fingerprint(served):
    # The non-streamed answer carried system_fingerprint (and service_tier); the streamed one lost them.
    _, client, _ = served
    chunks = list(
        client.chat.completions.create(
            model="fast", messages=[USER], stream=True, stream_options={"include_usage": True}
        )
    )
    finish = next(c for c in chunks if c.choices and c.choices[0].finish_reason)
    assert finish.system_fingerprint == "fp_test" and chunks[-1].usage and chunks[-1].system_fingerprint == "fp_test"


def test_the_upstreams_token_details_reach_the_caller_streamed_or_not(served):
    # Predicted outputs' accepted/rejected token counts (and audio tokens) were dropped: only cached and
    # reasoning tokens came back.
    _, client, _ = served
    ask = {"model": "fast", "messages": [USER], "prediction": {"type": "content", "content": "plain answer"}}
    reply = client.chat.completions.create(**ask)
    streamed = list(client.chat.completions.create(**ask, stream=True, stream_options={"include_usage": True}))
    for usage in (reply.usage, streamed[-1].usage):
        done = usage.completion_tokens_details
        assert (done.accepted_prediction_tokens, done.rejected_prediction_tokens, done.reasoning_tokens) == (2, 1, 3)
        assert (usage.prompt_tokens_details.audio_tokens, usage.prompt_tokens_details.cached_tokens) == (0, 8)


def test_an_openai_models_refusal_reaches_a_v1_messages_caller_as_text_and_stop_reason_refusal(served):
    # The refusal (OpenAI's message.refusal, delta.refusal when streamed) was dropped: the Anthropic SDK got an
    # empty message that ended "end_turn", as if the model had nothing to say.
    upstream, _, url = served
    upstream.message_extra = {"content": None, "refusal": "I can't help with that."}
    sdk = anthropic.Anthropic(base_url=url, api_key="unused", max_retries=0)
    ask = {"model": "fast", "max_tokens": 5, "messages": [{"role": "user", "content": "Something bad."}]}
    reply = sdk.messages.create(**ask)
    with sdk.messages.stream(**ask) as stream:
        final = stream.get_final_message()
    for message in (reply, final):
        assert [(b.type, b.text) for b in message.content] == [("text", "I can't help with that.")]
        assert message.stop_reason == "refusal"


def test_a_refusal_comes_back_beside_a_null_content_as_openai_sends_it(served):
    # The content was "" beside the refusal; OpenAI sends null there.
    upstream, client, _ = served
    upstream.message_extra = {"content": None, "refusal": "I can't help with that."}
    refused = client.chat.completions.create(model="fast", messages=[USER], max_tokens=5).choices[0].message
    assert (refused.content, refused.refusal) == (None, "I can't help with that.")


def test_a_conversation_that_opens_with_the_assistant_reaches_the_upstream_whole(served):
    # With no turn limit configured, a leading assistant turn was dropped anyway: a chat UI's greeting vanished,
    # and a history opening with a tool call lost the call and kept its result, which every provider refuses.
    upstream, client, _ = served
    greeting = [{"role": "assistant", "content": "Hi! How can I help?"}, USER]
    called = [
        {
            "role": "assistant",
            "content": None,
            "tool_calls": [{"id": "c1", "type": "function", "function": {"name": "get_time", "arguments": "{}"}}],
        },
        {"role": "tool", "tool_call_id": "c1", "content": "noon"},
        USER,
    ]
    for messages in (greeting, called):
        client.chat.completions.create(model="fast", messages=messages, tools=[TIME], max_tokens=5)
        assert [m["role"] for m in upstream.last["messages"]] == [m["role"] for m in messages]


def test_a_stream_without_obfuscation_is_served_and_one_with_it_refused_by_name(served):
    # include_obfuscation: false (OpenAI's bandwidth option) was a 400, though the gateway's chunks never carry
    # obfuscation padding: the request asked for exactly what it gets.
    _, client, _ = served
    chunks = list(
        client.chat.completions.create(
            model="fast",
            messages=[USER],
            stream=True,
            stream_options={"include_usage": True, "include_obfuscation": False},
        )
    )
    assert chunks[-1].usage.total_tokens == 49 and not any(c.model_extra.get("obfuscation") for c in chunks)
    with pytest.raises(openai.BadRequestError) as refused:
        list(
            client.chat.completions.create(
                model="fast", messages=[USER], stream=True, stream_options={"include_obfuscation": True}
            )
        )
    assert refused.value.param == "stream_options.include_obfuscation"


def test_an_assistant_refusal_part_is_carried_as_its_text(served):
    # OpenAI's assistant content may hold {"type": "refusal"} parts; one was a 400 "not supported by this gateway".
    upstream, client, url = served
    said = {"role": "assistant", "content": [{"type": "refusal", "refusal": "I can't help with that."}]}
    client.chat.completions.create(model="fast", messages=[USER, said, USER], max_tokens=5)
    assert upstream.last["messages"][1] == {"role": "assistant", "content": "I can't help with that."}
    as_user = httpx.post(
        url + "/v1/chat/completions",
        json={"model": "fast", "messages": [{"role": "user", "content": [{"type": "refusal", "refusal": "x"}]}]},
    )
    assert as_user.status_code == 400 and as_user.json()["error"]["param"] == "messages[0].content[0].type"


def test_image_and_file_parts_arrive_byte_identical(served, ledger_path):
    upstream, client, _ = served
    data_url = "data:image/png;base64," + base64.b64encode(IMAGE).decode()
    pdf = b"%PDF-1.4\n" + bytes(range(256))
    content = [
        {"type": "text", "text": "What is in these?"},
        {"type": "image_url", "image_url": {"url": data_url, "detail": "high"}},
        {"type": "image_url", "image_url": {"url": "https://example.com/cat.jpg"}},
        {
            "type": "file",
            "file": {
                "filename": "spec.pdf",
                "file_data": "data:application/pdf;base64," + base64.b64encode(pdf).decode(),
            },
        },
    ]
    client.chat.completions.create(model="fast", messages=[{"role": "user", "content": content}], max_tokens=5)
    sent = upstream.last["messages"][0]["content"]
    assert sent == content
    received = base64.b64decode(sent[1]["image_url"]["url"].split(",", 1)[1])
    assert hashlib.sha256(received).digest() == hashlib.sha256(IMAGE).digest()


def test_response_format_seed_top_p_and_sampling_are_forwarded(served):
    upstream, client, _ = served
    schema = {
        "type": "object",
        "properties": {"city": {"type": "string"}},
        "required": ["city"],
        "additionalProperties": False,
    }
    response_format = {"type": "json_schema", "json_schema": {"name": "place", "schema": schema, "strict": True}}
    reply = client.chat.completions.create(
        model="fast",
        messages=[{"role": "system", "content": "Answer in JSON."}, USER],
        response_format=response_format,
        seed=42,
        top_p=0.3,
        temperature=0.2,
        stop=["END"],
        presence_penalty=0.5,
        frequency_penalty=-0.5,
        max_completion_tokens=20,
        reasoning_effort="low",
        logprobs=True,
        top_logprobs=2,
        user="u-1",
        metadata={"app": "t"},
        service_tier="flex",
        store=False,
    )
    body = upstream.last
    assert body["response_format"] == response_format
    assert (body["seed"], body["top_p"], body["temperature"], body["stop"]) == (42, 0.3, 0.2, ["END"])
    assert (body["presence_penalty"], body["frequency_penalty"]) == (0.5, -0.5)
    assert body["max_completion_tokens"] == 20 and "max_tokens" not in body
    assert (body["reasoning_effort"], body["logprobs"], body["top_logprobs"], body["user"]) == ("low", True, 2, "u-1")
    assert (body["metadata"], body["service_tier"], body["store"]) == ({"app": "t"}, "flex", False)
    assert body["messages"][0] == {"role": "system", "content": "Answer in JSON."}
    assert reply.choices[0].logprobs.model_dump() == LOGPROBS and reply.system_fingerprint == "fp_test"
    several = client.chat.completions.create(model="fast", messages=[USER], n=3)
    assert [c.message.content for c in several.choices] == ["plain answer", "choice 1", "choice 2"]
    assert upstream.last["n"] == 3


# What the embedded local model can take; every other field must be refused naming it and the model.
# (prompt_cache_key: its KV cache reuses a shared prefix with no key, which is what the key asks for.)
LOCAL_TAKES = {
    "frequency_penalty",
    "presence_penalty",
    "max_completion_tokens",
    "max_tokens",
    "seed",
    "stop",
    "temperature",
    "top_p",
    "response_format",
    "tools",
    "tool_choice",
    "parallel_tool_calls",
    "prompt_cache_key",
}


@pytest.mark.parametrize("field", request_fields())
def test_every_request_field_is_forwarded_or_refused(field, served):
    upstream, _, url = served
    if field in GATEWAY_FIELDS:
        return
    assert field in SAMPLES, f"OpenAI's request has a new field {field!r}: add a sample value to SAMPLES"
    body = {"model": "fast", "messages": [USER], field: SAMPLES[field]}
    reply = httpx.post(url + "/v1/chat/completions", json=body, timeout=30)
    assert reply.status_code == 200, reply.text
    assert upstream.last[field] == SAMPLES[field]  # forwarded under its own name, value unchanged
    local = httpx.post(url + "/v1/chat/completions", json={**body, "model": "local", "max_tokens": 1}, timeout=120)
    if field in LOCAL_TAKES:
        assert local.status_code == 200, local.text
    else:
        assert local.status_code == 400, local.text
        message = local.json()["error"]["message"]
        assert f"`{field}`" in message and "model `local`" in message


def test_unknown_parts_and_keys_are_named_400s(served):
    upstream, _, url = served
    cases = [
        (
            {"role": "user", "content": [{"type": "video_url", "video_url": {"url": "https://x/v.mp4"}}]},
            "messages[0].content[0].type",
        ),
        (
            {"role": "user", "content": [{"type": "text", "text": "x", "prompt_cache_breakpoint": {}}]},
            "messages[0].content[0].prompt_cache_breakpoint",
        ),
        # LiteLLM's cache_control is read (test_anthropic_messages), so one of another kind is refused by name.
        ({"role": "user", "content": "x", "cache_control": {"type": "persistent"}}, "messages[0].cache_control"),
        ({"role": "tool", "tool_call_id": "c1", "content": "18C", "name": "get_weather"}, "messages[0].name"),
        (
            {"role": "user", "content": [{"type": "image_url", "image_url": {"url": "data:image/png;base64,@@"}}]},
            "messages[0].content[0].image_url.url",
        ),
    ]
    before = len(upstream.bodies)
    for message, param in cases:
        reply = httpx.post(url + "/v1/chat/completions", json={"model": "fast", "messages": [message]})
        assert reply.status_code == 400 and reply.json()["error"]["param"] == param, reply.text
    assert len(upstream.bodies) == before  # nothing reached the provider
    # A cache point (OpenCode's, on the message) is Claude's; OpenAI caches by itself and gets the message without it.
    marked = {"role": "user", "content": "x", "cache_control": {"type": "ephemeral"}}
    assert httpx.post(url + "/v1/chat/completions", json={"model": "fast", "messages": [marked]}).status_code == 200
    assert upstream.last["messages"] == [{"role": "user", "content": "x"}]


def test_a_cache_point_asked_of_an_openai_model_is_answered_by_its_automatic_caching(served):
    # OpenAI caches every long prefix by itself and its API has no cache_control: a 5-minute point (LiteLLM's
    # cache_control, which /v1/messages callers send too) needs nothing sent; a 1-hour one is refused (test_cache_ttl).
    upstream, client, _ = served
    tools = [{**WEATHER, "cache_control": {"type": "ephemeral"}}]
    messages = [
        {"role": "system", "content": "Rules.", "cache_control": {"type": "ephemeral"}},
        {"role": "user", "content": [{"type": "text", "text": "hi", "cache_control": {"type": "ephemeral"}}]},
    ]
    reply = client.chat.completions.create(model="fast", messages=messages, tools=tools)
    assert reply.choices[0].message.tool_calls
    assert "cache_control" not in json.dumps(upstream.last) and upstream.last["messages"][1]["content"] == "hi"


def test_image_to_the_local_model_is_refused_before_any_call(served, ledger_path):
    upstream, client, _ = served
    content = [
        {"type": "text", "text": "What is this?"},
        {"type": "image_url", "image_url": {"url": "data:image/png;base64," + base64.b64encode(IMAGE).decode()}},
    ]
    with pytest.raises(openai.BadRequestError) as refused:
        client.chat.completions.create(model="local", messages=[{"role": "user", "content": content}], max_tokens=4)
    message = refused.value.body["message"]
    assert "model `local`" in message and "an image block (messages[0].content[1])" in message
    assert json.loads(json.dumps(refused.value.body))["code"] == "unsupported_content"
    with pytest.raises(openai.BadRequestError) as refused:  # a model the config declares text-only
        client.chat.completions.create(model="text-only", messages=[{"role": "user", "content": content}])
    assert "model `text-only` cannot take an image block (messages[0].content[1])" in refused.value.body["message"]
    assert upstream.bodies == []


SYSTEM = {"role": "system", "content": "Be brief."}
# Codex's apply_patch as a chat-completions custom (freeform) tool, a call of it and its result.
APPLY_PATCH = {
    "type": "custom",
    "custom": {
        "name": "apply_patch",
        "description": "Edit files",
        "format": {"type": "grammar", "grammar": {"definition": "start: /(.|\\n)+/", "syntax": "lark"}},
    },
}
PATCHED = {
    "role": "assistant",
    "content": None,
    "tool_calls": [{"id": "call_0", "type": "custom", "custom": {"name": "apply_patch", "input": PATCH}}],
}
DONE = {"role": "tool", "tool_call_id": "call_0", "content": "Done!"}
PICTURE = [
    {"type": "text", "text": "What is this?"},
    {"type": "image_url", "image_url": {"url": "data:image/png;base64," + base64.b64encode(IMAGE).decode()}},
]
CALLS = {
    "role": "assistant",
    "content": None,
    "tool_calls": [
        {"id": "c1", "type": "function", "function": {"name": "get_weather", "arguments": "{}"}},
        {"id": "c2", "type": "function", "function": {"name": "get_time", "arguments": "{}"}},
    ],
}
TOOL_RUN = [
    SYSTEM,
    USER,
    CALLS,
    {"role": "tool", "tool_call_id": "c1", "content": "18C"},
    {"role": "tool", "tool_call_id": "c2", "content": PICTURE},
]
# (model, request fields, the caller's place as error.param, what the message says it cannot take). The content
# model differs from what was sent (the opening system message is lifted out, the tool messages are one turn):
# each place is the caller's, where the content model's index would be one message (or more) off.
REFUSALS = [
    (
        "local",
        {"messages": [SYSTEM, {"role": "user", "content": PICTURE}]},
        "messages[1].content[1]",
        "an image block (messages[1].content[1])",
    ),
    (
        "text-only",
        {"messages": [SYSTEM, {"role": "user", "content": PICTURE}]},
        "messages[1].content[1]",
        "an image block (messages[1].content[1]): it reads text only",
    ),
    # An OpenAI-format model takes a tool's image after the tool messages; one declared text-only does not.
    (
        "text-only",
        {"messages": TOOL_RUN},
        "messages[4].content[1]",
        "an image block (messages[4].content[1]): it reads text only",
    ),
    ("local", {"messages": TOOL_RUN}, "messages[4].content[1]", "an image block (messages[4].content[1])"),
    (
        "claude",
        {
            "messages": [
                SYSTEM,
                USER,
                {"role": "assistant", "content": "Sunny."},
                {"role": "user", "content": "And tomorrow?", "name": "ann"},
            ]
        },
        "messages[3].name",
        "field `messages[3].name`",
    ),
    (
        "local",
        {
            "messages": [
                SYSTEM,
                USER,
                {"role": "assistant", "content": "Sunny.", "reasoning_content": "Look."},
                {"role": "user", "content": "And tomorrow?"},
            ]
        },
        "messages[2].reasoning_content",
        "a reasoning block (messages[2].reasoning_content)",
    ),
    ("local", {"messages": [SYSTEM, USER], "logit_bias": {"50256": -100}}, "logit_bias", "field `logit_bias`"),
    (
        "local",
        {"messages": [SYSTEM, USER], "reasoning_effort": "low"},
        "reasoning_effort",
        "field `reasoning_effort` (it has no reasoning mode)",
    ),
    # Freeform (custom) tools and their calls reach OpenAI-format models only: never turned into something else.
    (
        "claude",
        {"messages": [SYSTEM, USER], "tools": [WEATHER, APPLY_PATCH]},
        "tools[1].type",
        "a freeform (custom) tool (`tools[1].type`): it has no freeform tools; declare a function tool taking a string "
        "instead (Codex: `[features] apply_patch_freeform = false`)",
    ),
    (
        "local",
        {"messages": [SYSTEM, USER, PATCHED, DONE]},
        "messages[2].tool_calls[0]",
        "a freeform (custom) tool call (messages[2].tool_calls[0]): it has no freeform tools; declare a function tool "
        "taking a string instead (Codex: `[features] apply_patch_freeform = false`)",
    ),
]


@pytest.mark.parametrize(("model", "fields", "param", "named"), REFUSALS)
def test_a_refusal_names_the_place_the_caller_sent_it(served, model, fields, param, named):
    upstream, _, url = served
    reply = httpx.post(url + "/v1/chat/completions", json={"model": model, "max_tokens": 4, **fields}, timeout=30)
    assert reply.status_code == 400, reply.text
    error = reply.json()["error"]
    assert (error["param"], error["code"], error["type"]) == (param, "unsupported_content", "invalid_request_error")
    assert f"model `{model}` cannot take {named}; remove it" in error["message"], error["message"]
    assert upstream.bodies == []


def test_an_image_on_v1_messages_to_a_text_only_model_is_refused_before_any_call(served):
    """The Anthropic ingress asks the same question before any call (it used to send the image to the model the
    config declares text-only), naming the place in the Messages API's terms."""
    upstream, _, url = served
    image = {
        "type": "image",
        "source": {"type": "base64", "media_type": "image/png", "data": base64.b64encode(IMAGE).decode()},
    }
    body = {
        "model": "text-only",
        "max_tokens": 4,
        "system": "Be brief.",
        "messages": [{"role": "user", "content": [{"type": "text", "text": "What is this?"}, image]}],
    }
    reply = httpx.post(url + "/v1/messages", json=body, timeout=30)
    assert reply.status_code == 400, reply.text
    message = reply.json()["error"]["message"]
    assert "model `text-only` cannot take an image block (messages.0.content.1): it reads text only" in message
    assert upstream.bodies == []


def test_the_ledger_counts_images_documents_and_tool_calls_without_their_content(ledger_path):
    image = "data:image/png;base64," + base64.b64encode(IMAGE).decode()
    pdf = "data:application/pdf;base64," + base64.b64encode(b"%PDF-1.4 secret").decode()
    content = [
        {"type": "text", "text": "Look"},
        {"type": "image_url", "image_url": {"url": image}},
        {"type": "image_url", "image_url": {"url": "https://example.com/a.png"}},
        {"type": "file", "file": {"filename": "a.pdf", "file_data": pdf}},
    ]
    with RecordingOpenAI() as upstream, gateway(upstream, ledger_path) as url:
        client = openai.OpenAI(base_url=url + "/v1", api_key="unused", max_retries=0)
        client.chat.completions.create(
            model="fast", messages=[{"role": "user", "content": content}], tools=[WEATHER, TIME]
        )
        client.chat.completions.create(model="fast", messages=[USER], stream=True, tools=[WEATHER])
    first, second = sorted(open_store(ledger_path).events(), key=lambda e: e.ts)
    assert (first.image_count, first.document_count, first.tool_call_count) == (2, 1, 2)
    assert (second.image_count, second.document_count, second.tool_call_count) == (0, 0, 1)
    # The upstream reported 8 of 40 prompt tokens cached; Claude 3 Haiku (what it is priced as) has no cache prices,
    # so all 40 are billed, and recorded, as input.
    assert first.prompt_text is None and first.cache_read_tokens == 0 and first.input_tokens == 40
    assert first.cost_usd > 0


def test_an_agent_loop_sends_the_returned_message_object_back_as_is(served):
    """The openai SDK sends `reply.choices[0].message` back with every key it has: the gateway's
    reasoning_content, refusal and annotations as OpenAI answers them, audio / function_call null."""
    upstream, client, url = served
    upstream.message_extra = {
        "reasoning_content": "Two tools, then answer.",
        "refusal": None,
        "annotations": [],
        "audio": None,
        "function_call": None,
    }
    messages: list = [USER]
    for _ in range(3):
        reply = client.chat.completions.create(model="fast", messages=messages, tools=[WEATHER, TIME])
        message = reply.choices[0].message
        messages.append(message)  # the SDK object itself, as agent loops do
        if not message.tool_calls:
            break
        messages += [
            {"role": "tool", "tool_call_id": c.id, "content": f"{c.function.name}: 18C"} for c in message.tool_calls
        ]
    assert messages[-1].content == "answer after get_time: 18C" and len(messages) == 5
    assert messages[1].model_extra["reasoning_content"] == "Two tools, then answer."
    # The reasoning is not sent to an OpenAI-format upstream (such servers refuse reasoning_content).
    assert upstream.last["messages"][1] == {
        "role": "assistant",
        "content": None,
        "tool_calls": messages[1].model_dump()["tool_calls"],
    }

    def refused(assistant: dict) -> dict:
        reply = httpx.post(
            url + "/v1/chat/completions",
            json={
                "model": "fast",
                "messages": [
                    USER,
                    {"role": "assistant", "content": "hi", **assistant},
                    {"role": "user", "content": "again"},
                ],
            },
        )
        assert reply.status_code == 400, reply.text
        return reply.json()["error"]

    before = len(upstream.bodies)
    assert refused({"audio": {"id": "audio_1"}})["param"] == "messages[1].audio"
    assert refused({"function_call": {"name": "f", "arguments": "{}"}})["param"] == "messages[1].function_call"
    assert refused({"reasoning_content": ["x"]})["param"] == "messages[1].reasoning_content"
    assert refused({"cache_control": {}})["param"] == "messages[1].cache_control"
    assert len(upstream.bodies) == before
    # A refusal's words are what the assistant said: they travel as its text.
    httpx.post(
        url + "/v1/chat/completions",
        json={
            "model": "fast",
            "messages": [
                USER,
                {"role": "assistant", "content": None, "refusal": "I can't."},
                {"role": "user", "content": "ok"},
            ],
        },
    )
    assert upstream.last["messages"][1] == {"role": "assistant", "content": "I can't."}


def test_unknown_keys_in_nested_objects_and_non_string_text_are_named_400s(served):
    upstream, _, url = served
    tool = {"type": "function", "function": {"name": "f", "parameters": {"type": "object"}}}
    call = {"id": "c1", "type": "function", "function": {"name": "f", "arguments": "{}"}}
    turn = [
        USER,
        {"role": "assistant", "content": None, "tool_calls": [call]},
        {"role": "tool", "tool_call_id": "c1", "content": "r"},
    ]
    png = "data:image/png;base64," + base64.b64encode(IMAGE).decode()
    cases = [
        (
            {"messages": [{"role": "user", "content": [{"type": "image_url", "image_url": {"url": png, "foo": 1}}]}]},
            "messages[0].content[0].image_url.foo",
        ),
        (
            {"messages": [{"role": "user", "content": [{"type": "file", "file": {"file_id": "f1", "bar": 1}}]}]},
            "messages[0].content[0].file.bar",
        ),
        (
            {"messages": [turn[0], {**turn[1], "tool_calls": [{**call, "foo": 1}]}, turn[2]]},
            "messages[1].tool_calls[0].foo",
        ),
        (
            {
                "messages": [
                    turn[0],
                    {**turn[1], "tool_calls": [{**call, "function": {**call["function"], "x": 1}}]},
                    turn[2],
                ]
            },
            "messages[1].tool_calls[0].function.x",
        ),
        (
            {
                "messages": [
                    turn[0],
                    {**turn[1], "tool_calls": [{**call, "function": {"name": "f", "arguments": {}}}]},
                    turn[2],
                ]
            },
            "messages[1].tool_calls[0].function.arguments",
        ),
        ({"messages": [USER], "tools": [{**tool, "foo": 1}]}, "tools[0].foo"),
        (
            {"messages": [USER], "tools": [{**tool, "function": {**tool["function"], "foo": 1}}]},
            "tools[0].function.foo",
        ),
        (
            {
                "messages": [USER],
                "tools": [tool],
                "tool_choice": {"type": "function", "function": {"name": "f"}, "x": 1},
            },
            "tool_choice.x",
        ),
        (
            {
                "messages": [USER],
                "tools": [tool],
                "tool_choice": {"type": "function", "function": {"name": "f", "y": 1}},
            },
            "tool_choice.function.y",
        ),
        ({"messages": [USER], "response_format": {"type": "json_object", "z": 1}}, "response_format.z"),
        (
            {
                "messages": [USER],
                "response_format": {
                    "type": "json_schema",
                    "json_schema": {"name": "n", "schema": {"type": "object"}, "w": 1},
                },
            },
            "response_format.json_schema.w",
        ),
        ({"messages": [{"role": "user", "content": [{"type": "text", "text": ["a"]}]}]}, "messages[0].content[0].text"),
        ({"messages": [{"role": "user", "content": [{"type": "text", "text": 5}]}]}, "messages[0].content[0].text"),
        ({"messages": [{"role": "user", "content": [{"type": "text"}]}]}, "messages[0].content[0].text"),
        # values of the wrong type inside those objects (each provider took them differently: sent as is, refused
        # by its SDK, or a 502 for the Gemini SDK's validation error)
        (
            {"messages": [USER], "tools": [{**tool, "function": {**tool["function"], "name": 5}}]},
            "tools[0].function.name",
        ),
        (
            {"messages": [USER], "tools": [{**tool, "function": {**tool["function"], "parameters": [1]}}]},
            "tools[0].function.parameters",
        ),
        (
            {"messages": [USER], "tools": [{**tool, "function": {**tool["function"], "strict": "yes"}}]},
            "tools[0].function.strict",
        ),
        (
            {
                "messages": [
                    turn[0],
                    {**turn[1], "tool_calls": [{**call, "function": {"name": 5, "arguments": "{}"}}]},
                    turn[2],
                ],
                "tools": [tool],
            },
            "messages[1].tool_calls[0].function.name",
        ),
        (
            {"messages": [{"role": "user", "content": [{"type": "file", "file": {"file_id": 5}}]}]},
            "messages[0].content[0].file.file_id",
        ),
        (
            {
                "messages": [
                    {"role": "user", "content": [{"type": "image_url", "image_url": {"url": png, "detail": 5}}]}
                ]
            },
            "messages[0].content[0].image_url.detail",
        ),
        (
            {
                "messages": [USER],
                "response_format": {
                    "type": "json_schema",
                    "json_schema": {"name": "n", "strict": "yes", "schema": {"type": "object"}},
                },
            },
            "response_format.json_schema.strict",
        ),
    ]
    before = len(upstream.bodies)
    for body, param in cases:
        reply = httpx.post(url + "/v1/chat/completions", json={"model": "fast", **body})
        assert reply.status_code == 400 and reply.json()["error"]["param"] == param, (param, reply.text)
    assert len(upstream.bodies) == before  # nothing reached the provider
    ok = httpx.post(url + "/v1/chat/completions", json={"model": "fast", "messages": turn, "tools": [tool]})
    assert ok.status_code == 200, ok.text


def test_wrongly_typed_fields_are_named_400s_not_coerced(served):
    upstream, _, url = served
    before = len(upstream.bodies)
    for field, value in [
        ("max_tokens", "10"),
        ("logprobs", "yes"),
        ("parallel_tool_calls", "no"),
        ("stream", "yes"),
        ("temperature", "1"),
        ("n", 1.5),
    ]:
        reply = httpx.post(url + "/v1/chat/completions", json={"model": "fast", "messages": [USER], field: value})
        assert reply.status_code == 400 and reply.json()["error"]["param"] == field, (field, reply.text)
    reply = httpx.post(
        url + "/v1/chat/completions",
        json={"model": "fast", "messages": [USER], "stream": True, "stream_options": {"include_usage": "yes"}},
    )
    assert reply.status_code == 400 and reply.json()["error"]["param"] == "stream_options.include_usage"
    reply = httpx.post(
        url + "/v1/chat/completions",
        json={"model": "fast", "messages": [USER], "stream_options": {"include_usage": True}},
    )
    assert reply.status_code == 400 and reply.json()["error"]["param"] == "stream_options"  # as OpenAI: no stream
    assert len(upstream.bodies) == before
    ok = httpx.post(
        url + "/v1/chat/completions",
        json={"model": "fast", "messages": [USER], "temperature": 1, "top_p": 1, "max_tokens": 10},
    )
    assert ok.status_code == 200 and upstream.last["temperature"] == 1.0, ok.text


def test_a_tool_schema_with_an_integer_past_64_bits_is_carried_not_a_500(ledger_path):
    # JSON has no integer limit; orjson (the call path's size estimate, the ledger's prefix hash) has one of 64 bits.
    tool = {
        "type": "function",
        "function": {
            "name": "f",
            "parameters": {"type": "object", "properties": {"n": {"type": "integer", "maximum": 2**70}}},
        },
    }
    with RecordingOpenAI() as upstream, gateway(upstream, ledger_path) as url:
        client = openai.OpenAI(base_url=url + "/v1", api_key="unused", max_retries=0)
        reply = client.chat.completions.create(model="fast", messages=[USER], tools=[tool], max_tokens=5)
        assert reply.choices and upstream.last["tools"] == [tool]
    [row] = open_store(ledger_path).events()
    assert row.outcome == "ok" and row.prefix_hash


def test_a_failed_tool_result_from_v1_messages_says_so_to_an_openai_upstream(served):
    # Anthropic's is_error has no field on a tool message: it was dropped, and the model read the error text as a
    # successful result.
    upstream, _, url = served
    call = {"type": "tool_use", "id": "t1", "name": "get_weather", "input": {"city": "Paris"}}
    tools = [{"name": "get_weather", "input_schema": WEATHER["function"]["parameters"]}]
    for is_error, content, sent in [
        (True, "city not found", "Error: city not found"),
        (True, [{"type": "text", "text": "timeout"}], "Error: timeout"),
        (False, "18C", "18C"),
    ]:
        reply = httpx.post(
            url + "/v1/messages",
            json={
                "model": "fast",
                "max_tokens": 20,
                "tools": tools,
                "messages": [
                    {"role": "user", "content": "Weather?"},
                    {"role": "assistant", "content": [call]},
                    {
                        "role": "user",
                        "content": [
                            {"type": "tool_result", "tool_use_id": "t1", "content": content, "is_error": is_error}
                        ],
                    },
                ],
            },
        )
        assert reply.status_code == 200, reply.text
        assert upstream.last["messages"][2] == {"role": "tool", "tool_call_id": "t1", "content": sent}


def test_a_file_part_keeps_the_file_name_it_was_sent_with_and_gets_none_added(served):
    upstream, client, _ = served
    pdf = "data:application/pdf;base64," + base64.b64encode(b"%PDF-1.4 x").decode()
    parts = [
        {"type": "file", "file": {"file_id": "file-abc", "filename": "spec.pdf"}},
        {"type": "file", "file": {"file_id": "file-def"}},
        {"type": "file", "file": {"file_data": pdf, "filename": "a.pdf"}},
    ]
    client.chat.completions.create(model="fast", messages=[{"role": "user", "content": parts}], max_tokens=5)
    assert upstream.last["messages"][0]["content"] == parts


def test_a_system_message_in_mid_conversation_stays_in_place_upstream_and_is_merged_where_apis_take_one(served):
    # Before, every system and developer message was moved into the opening system prompt, even on an OpenAI-format
    # upstream that takes them in place: an agent's mid-conversation instruction ("2 tool calls left") changed meaning.
    from tokenomy.gateway.openai_ingress import to_messages
    from tokenomy.gateway.schemas import ChatCompletionRequest
    from tokenomy.messages import ChatRequest
    from tokenomy.providers.anthropic_mapping import to_anthropic_params
    from tokenomy.providers.converse_mapping import to_converse_params
    from tokenomy.providers.gemini_mapping import config_from_request, contents_from_request
    from tokenomy.request_views import system_hoisted

    upstream, client, _ = served
    messages = [
        {"role": "system", "content": "Be brief."},
        {"role": "developer", "content": "Answer in French."},
        USER,
        {"role": "assistant", "content": "Il fait beau."},
        {"role": "system", "content": "Two tool calls left."},
        {"role": "user", "content": "And tomorrow?"},
        {"role": "developer", "content": "No tables."},
    ]
    client.chat.completions.create(model="fast", messages=messages, max_tokens=20)
    assert upstream.last["messages"] == [
        {"role": "system", "content": "Be brief.\n\nAnswer in French."},
        USER,
        messages[3],
        messages[4],
        messages[5],
        {"role": "system", "content": "No tables."},
    ]
    system, turns = to_messages(ChatCompletionRequest.model_validate({"model": "m", "messages": messages}))
    request = ChatRequest(turns, model="anthropic.claude-3-haiku-20240307-v1:0", system=system, max_tokens=20)
    merged = "Be brief.\n\nAnswer in French.\n\nTwo tool calls left.\n\nNo tables."
    anthropic = to_anthropic_params(request)
    assert anthropic["system"] == merged and [m["role"] for m in anthropic["messages"]] == ["user", "assistant", "user"]
    converse = to_converse_params(request)
    assert converse["system"] == [{"text": merged}] and len(converse["messages"]) == 3
    assert config_from_request(request)["system_instruction"] == merged
    assert [c["role"] for c in contents_from_request(request)] == ["user", "model", "user"]
    assert system_hoisted(system_hoisted(request)) == system_hoisted(request)
    plain = ChatRequest.simple("hi")
    assert system_hoisted(plain) is plain  # nothing to move: no copy on the hot path


def test_a_field_the_routed_provider_has_no_place_for_is_a_400_naming_it_as_openai_does(ledger_path, monkeypatch):
    # Refused by the mapping before any call: before, `param` was null and the type "upstream_error", which reads
    # as the provider's failure, not the request's.
    monkeypatch.setenv("CLAUDE_KEY", "x")
    config = {
        "models": {
            "claude": {
                "provider": "anthropic",
                "model": "claude-3-5-haiku-20241022",
                "base_url": "http://127.0.0.1:9",
                "api_key_env": "CLAUDE_KEY",
            },
            "nova": {
                "provider": "bedrock",
                "model": "amazon.nova-micro-v1:0",
                "region": "us-east-1",
                "endpoint_url": "http://127.0.0.1:9",
            },
        }
    }
    with ServerThread(create_app(parse_config(config), str(ledger_path)), lifespan="on") as url:
        client = openai.OpenAI(base_url=url + "/v1", api_key="unused", max_retries=0)
        cases = (
            ("claude", "seed", {"seed": 7}),
            ("claude", "response_format", {"response_format": {"type": "json_object"}}),
            ("nova", "frequency_penalty", {"frequency_penalty": 0.5}),
            ("nova", "parallel_tool_calls", {"tools": [WEATHER], "parallel_tool_calls": False}),
        )
        for model, field, extra in cases:
            for stream in (False, True):
                with pytest.raises(openai.BadRequestError) as info:
                    reply = client.chat.completions.create(
                        model=model, messages=[USER], max_tokens=5, stream=stream, **extra
                    )
                    list(reply) if stream else None
                body = info.value.body
                assert (body["param"], body["code"], body["type"]) == (
                    field,
                    "unsupported_parameter",
                    "invalid_request_error",
                ), body
                assert body["message"].startswith(f"{field}: ")
    assert {e.outcome for e in open_store(ledger_path).events()} <= {"client_error"}  # nothing was paid for


def test_a_part_the_routed_provider_cannot_send_is_named_where_the_caller_put_it(served):
    # Named by the content model's indices, the image at messages[4] was "messages[2].content[1].detail": the
    # opening system and developer messages are lifted out of the turns, so that named the user's "hi".
    _, client, _ = served
    image = {
        "type": "image_url",
        "image_url": {"url": "data:image/png;base64," + base64.b64encode(IMAGE).decode(), "detail": "high"},
    }
    messages = [
        {"role": "system", "content": "s"},
        {"role": "developer", "content": "d"},
        USER,
        {"role": "assistant", "content": "ok"},
        {"role": "user", "content": [{"type": "text", "text": "?"}, image]},
    ]
    for stream in (False, True):
        with pytest.raises(openai.BadRequestError) as info:
            reply = client.chat.completions.create(model="claude", messages=messages, max_tokens=5, stream=stream)
            list(reply) if stream else None
        assert info.value.body["param"] == "messages[4].content[1].image_url.detail", info.value.body
        assert info.value.body["message"].startswith("messages[4].content[1].image_url.detail: ")


def test_an_image_skips_the_models_that_cannot_read_it_fallbacks_and_cascade_tiers_alike(ledger_path):
    """Before, a routed tier or a fallback declared `inputs: [text]` was sent the image (only a route's own model
    was checked), and a route whose model could not read it was refused although its fallback could. Now the
    model that cannot read it is passed over before anything is sent; the text-only requests stay on it."""
    config = {
        "models": {
            "fast": {"provider": "openai", "model": "up-model", "base_url": "", "price_as": HAIKU},
            "text-only": {
                "provider": "openai",
                "model": "up-text",
                "base_url": "",
                "price_as": HAIKU,
                "inputs": ["text"],
            },
        },
        "tiers": {"cheap": ["text-only"], "strong": ["fast"]},
        "routes": {
            "with-fallback": {"model": "text-only", "fallback": ["fast"]},
            "cascade": {"policy": "look"},
            "rules": {"policy": "pick"},
        },
        "routing": {
            "policies": {
                "look": {"type": "cascade", "tiers": ["cheap", "strong"], "validators": {"hedging": True}},
                # No rule matches: the cheap tier is chosen, and it reads text only.
                "pick": {"type": "rules", "tiers": ["cheap", "strong"]},
            }
        },
    }
    picture = {
        "role": "user",
        "content": [
            {"type": "text", "text": "What is this?"},
            {"type": "image_url", "image_url": {"url": "data:image/png;base64," + base64.b64encode(IMAGE).decode()}},
        ],
    }
    with RecordingOpenAI() as upstream:
        for model in config["models"].values():
            model["base_url"] = upstream.url
        with ServerThread(create_app(parse_config(config), str(ledger_path)), lifespan="on") as url:
            client = openai.OpenAI(base_url=url + "/v1", api_key="unused", max_retries=0)
            for route in ("with-fallback", "cascade", "rules"):
                reply = client.chat.completions.create(model=route, messages=[picture], max_tokens=4)
                assert reply.choices[0].message.content and upstream.last["model"] == "up-model", route
                parts = upstream.last["messages"][0]["content"]
                assert parts[1]["image_url"]["url"] == picture["content"][1]["image_url"]["url"]  # byte for byte
                streamed = client.chat.completions.create(model=route, messages=[picture], max_tokens=4, stream=True)
                assert "".join(c.choices[0].delta.content or "" for c in streamed if c.choices)
                assert upstream.last["model"] == "up-model", route
                client.chat.completions.create(model=route, messages=[USER], max_tokens=4)
                assert upstream.last["model"] == "up-text", route  # text: the cheap model answers
    assert all(
        body["model"] == "up-model" for body in upstream.bodies if isinstance(body["messages"][0]["content"], list)
    )
    events = open_store(ledger_path).events()
    refused = [e for e in events if e.outcome == "client_error"]
    assert len(refused) == 6 and all(e.model == "up-text" and e.cost_usd == 0 for e in refused)  # recorded, $0
    for e in refused:  # the attempt that answered is numbered on from the refused one (a router's next tier too)
        assert sorted(x.attempt for x in events if x.request_id == e.request_id) == [1, 2]


def test_a_refusal_no_routed_model_can_take_names_the_place_the_caller_sent_it(ledger_path):
    """Every tier of a routed route refuses at call time (no route model to check up front): the 400 names where
    the caller put the image, as the up-front refusal does, although the route cut turns before sending (the
    content model's index of what was sent was named before, with `param` null)."""
    text_only = {"provider": "openai", "model": "up-text", "base_url": "", "price_as": HAIKU, "inputs": ["text"]}
    config = {
        "models": {"a": dict(text_only), "b": dict(text_only, model="up-text-2")},
        "tiers": {"cheap": ["a"], "strong": ["b"]},
        "routes": {"smart": {"policy": "pick", "tokens": {"max_turns": 3}}},
        "routing": {"policies": {"pick": {"type": "rules", "tiers": ["cheap", "strong"]}}},
    }
    old_turns = [USER, {"role": "assistant", "content": "Sunny."}]
    messages = [SYSTEM, *old_turns, *old_turns, {"role": "user", "content": PICTURE}]
    image = {
        "type": "image",
        "source": {"type": "base64", "media_type": "image/png", "data": base64.b64encode(IMAGE).decode()},
    }
    anthropic_body = {
        "model": "smart",
        "max_tokens": 4,
        "system": "Be brief.",
        "messages": [
            *old_turns,
            *old_turns,
            {"role": "user", "content": [{"type": "text", "text": "What is this?"}, image]},
        ],
    }
    with RecordingOpenAI() as upstream:
        for model in config["models"].values():
            model["base_url"] = upstream.url
        with ServerThread(create_app(parse_config(config), str(ledger_path)), lifespan="on") as url:
            for stream in (False, True):
                reply = httpx.post(
                    url + "/v1/chat/completions",
                    timeout=30,
                    json={"model": "smart", "messages": messages, "max_tokens": 4, "stream": stream},
                )
                assert reply.status_code == 400, reply.text
                error = reply.json()["error"]
                assert (error["param"], error["code"]) == ("messages[5].content[1]", "unsupported_content")
                assert error["message"] == (
                    "model `up-text-2` (openai) cannot take an image block "
                    "(messages[5].content[1]): it reads text only; remove it or send the "
                    "request to a model that supports it"
                )
                reply = httpx.post(url + "/v1/messages", json={**anthropic_body, "stream": stream}, timeout=30)
                assert reply.status_code == 400, reply.text
                assert "cannot take an image block (messages.4.content.1)" in reply.json()["error"]["message"]
    assert upstream.bodies == []  # nothing was sent, and each model's refusal is a $0 row
    assert {(e.model, e.outcome, e.cost_usd) for e in open_store(ledger_path).events()} == {
        ("up-text", "client_error", 0),
        ("up-text-2", "client_error", 0),
    }


def test_a_field_the_models_api_has_no_place_for_goes_to_the_fallback_that_takes_it(ledger_path, monkeypatch):
    """A seed, a penalty, JSON mode or parallel calls off, which Claude's API and Converse have no field for, were
    refused by the mapping with a 400 on a route whose fallback (an OpenAI-format model) takes them, as if no model
    could: the refusal is the gateway's own, nothing was sent, so the fallback gets the request now, as it does an
    image a text-only model cannot read; with no model that takes it, the refusal still names the field."""
    from google import genai
    from google.genai import types

    for name in ("AWS_BEARER_TOKEN_BEDROCK", "GEMINI_API_KEY", "GOOGLE_API_KEY"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", "x")
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "x")
    nowhere = "http://127.0.0.1:9"  # never called: each is refused before any call
    config = {
        "models": {
            "fast": {"provider": "openai", "model": "up-model", "base_url": "", "price_as": HAIKU},
            "claude": {"provider": "anthropic", "model": "claude-sonnet-4-5-20250929", "base_url": nowhere},
            "nova": {
                "provider": "bedrock",
                "model": "amazon.nova-micro-v1:0",
                "region": "us-east-1",
                "endpoint_url": nowhere,
            },
        },
        "tiers": {"cheap": ["claude"], "strong": ["fast"]},
        "routes": {
            "claude-first": {"model": "claude", "fallback": ["fast"]},
            "nova-first": {"model": "nova", "fallback": ["fast"]},
            "rules": {"policy": "pick"},
        },
        "routing": {"policies": {"pick": {"type": "rules", "tiers": ["cheap", "strong"]}}},
    }
    cases = [
        ({"seed": 7}, "seed", 7),
        ({"presence_penalty": 0.5}, "presence_penalty", 0.5),
        ({"frequency_penalty": 0.5}, "frequency_penalty", 0.5),
        ({"response_format": {"type": "json_object"}}, "response_format", {"type": "json_object"}),
        ({"tools": [WEATHER], "parallel_tool_calls": False}, "parallel_tool_calls", False),
    ]
    with RecordingOpenAI() as upstream:
        config["models"]["fast"]["base_url"] = upstream.url
        with ServerThread(create_app(parse_config(config), str(ledger_path)), lifespan="on") as url:
            client = openai.OpenAI(base_url=url + "/v1", api_key="unused", max_retries=0)
            for route in ("claude-first", "nova-first", "rules"):
                for extra, field, sent in cases:
                    for stream in (False, True):
                        before = len(upstream.bodies)
                        reply = client.chat.completions.create(
                            model=route, messages=[USER], max_tokens=4, stream=stream, **extra
                        )
                        list(reply) if stream else None
                        assert len(upstream.bodies) == before + 1, (route, field)
                        assert upstream.last[field] == sent, (route, field)
            gemini = genai.Client(api_key="unused", http_options={"base_url": url})
            asked = types.GenerateContentConfig(seed=3, presence_penalty=0.25, response_mime_type="application/json")
            for route in ("claude-first", "nova-first", "rules"):
                assert gemini.models.generate_content(model=route, contents="hi", config=asked).text
                assert (upstream.last["seed"], upstream.last["presence_penalty"]) == (3, 0.25)
                assert upstream.last["response_format"] == {"type": "json_object"}
                assert "".join(
                    c.text or ""
                    for c in gemini.models.generate_content_stream(model=route, contents="hi", config=asked)
                )
            with pytest.raises(openai.BadRequestError) as refused:  # no model of the route takes it: named
                client.chat.completions.create(model="claude", messages=[USER], max_tokens=4, seed=7)
            assert refused.value.body["param"] == "seed" and refused.value.body["message"].startswith("seed: ")
    events = open_store(ledger_path).events()
    refusals = [e for e in events if e.outcome == "client_error"]
    assert {e.model for e in refusals} == {"claude-sonnet-4-5-20250929", "amazon.nova-micro-v1:0"}
    assert all(e.cost_usd == 0 for e in refusals)  # recorded, $0: nothing was sent
    for e in refusals:  # the fallback's (or the next tier's) answer is the call's next attempt
        if e.request_id is not None and len([x for x in events if x.request_id == e.request_id]) > 1:
            assert sorted(x.attempt for x in events if x.request_id == e.request_id) == [1, 2]
    assert sum(e.outcome == "ok" and e.model == "up-model" for e in events) == 3 * 5 * 2 + 3 * 2


def test_an_option_no_model_of_the_route_takes_is_refused_before_any_attempt_or_ledger_row(tmp_path):
    """Claude's and Converse's mappings refused a seed (a penalty, JSON mode, ...) only at call time, inside the
    attempt: a route none of whose models takes it left a $0 client_error row per model for a request nothing was
    ever sent for, where an image to a text-only model is refused up front and leaves none. The mapping's refusal
    is now asked up front too: no row, the 400 still naming the field and the first model. A route whose fallback
    takes it keeps the documented rule: the passed-over model's attempt is a $0 client_error row, then the
    fallback's answer, which got the seed."""
    from helpers.claude_gateway import ClaudeGateway

    ledger = tmp_path / "ledger.duckdb"
    gateway = ClaudeGateway(
        ledger,
        {
            "claude-first": {"model": "claude", "fallback": ["fast"]},
            "haiku-first": {"model": "haiku", "fallback": ["fast"]},
            "claude-then-haiku": {"model": "claude", "fallback": ["haiku"]},
        },
    )
    client = openai.OpenAI(base_url=gateway.url + "/v1", api_key="unused", max_retries=0)
    answered = []
    try:
        for stream in (False, True):
            for route in ("claude-first", "haiku-first"):
                reply = client.chat.completions.with_raw_response.create(
                    model=route, messages=[USER], max_tokens=4, seed=7, stream=stream
                )
                list(reply.parse()) if stream else reply.parse()
                answered.append(reply.headers["x-request-id"])
                assert gateway.upstream.last["seed"] == 7, route
            for route, says in (
                ("claude", "the Anthropic Messages API (model claude-sonnet-4-5-20250929)"),
                ("claude-then-haiku", "the Anthropic Messages API (model claude-sonnet-4-5-20250929)"),
                ("haiku", f"Bedrock Converse (model {HAIKU})"),
            ):
                with pytest.raises(openai.BadRequestError) as refused:
                    client.chat.completions.create(model=route, messages=[USER], max_tokens=4, seed=7, stream=stream)
                body = refused.value.body
                assert (body["param"], body["code"]) == ("seed", "unsupported_parameter"), route
                assert body["message"] == (
                    f"seed: {says} has no such parameter; remove it, or route to a model that takes it (an "
                    "OpenAI-format or Gemini model)"
                )
    finally:
        gateway.stack.close()
    assert gateway.scripted.requests == [] and gateway.sent == []  # nothing reached Claude on either API
    events = open_store(ledger).events()  # exactly the answered calls' rows: the refused calls left none
    passed_over = ["claude-sonnet-4-5-20250929", HAIKU] * 2  # each answered call's first model
    assert sorted((e.request_id, e.attempt, e.model, e.outcome) for e in events) == sorted(
        row
        for rid, model in zip(answered, passed_over, strict=True)
        for row in ((rid, 1, model, "client_error"), (rid, 2, "up-model", "ok"))
    )
    assert all((e.cost_usd > 0) == (e.outcome == "ok") for e in events)  # the passed-over attempts at $0


def test_an_image_or_field_no_model_of_the_route_takes_is_refused_before_any_attempt_or_ledger_row(tmp_path):
    """Claude's and Converse's mappings refused an image's detail setting, an image by URL (Converse takes bytes
    only) and a Converse pass-through field (store) only at call time, inside the attempt: a route none of whose
    models takes it left a $0 client_error row per model for a request never sent. They are now asked up front, with
    the seed's refusal: no row, the 400 naming the caller's place and the first model. A fallback that takes the
    image still gets it, after the passed-over model's $0 row."""
    from helpers.claude_gateway import ClaudeGateway

    ledger = tmp_path / "ledger.duckdb"
    gateway = ClaudeGateway(
        ledger,
        {
            "haiku-first": {"model": "haiku", "fallback": ["fast"]},
            "claude-then-haiku": {"model": "claude", "fallback": ["haiku"]},
        },
    )
    client = openai.OpenAI(base_url=gateway.url + "/v1", api_key="unused", max_retries=0)
    claude = anthropic.Anthropic(base_url=gateway.url, api_key="unused", max_retries=0)
    png = "data:image/png;base64," + base64.b64encode(IMAGE).decode()
    detailed = {
        "role": "user",
        "content": [
            {"type": "text", "text": "What is it?"},
            {"type": "image_url", "image_url": {"url": png, "detail": "high"}},
        ],
    }
    sonnet, haiku = "the Anthropic Messages API (model claude-sonnet-4-5-20250929)", f"Bedrock Converse (model {HAIKU})"
    answered = []
    try:
        for stream in (False, True):
            reply = client.chat.completions.with_raw_response.create(
                model="haiku-first", messages=[detailed], max_tokens=4, stream=stream
            )
            list(reply.parse()) if stream else reply.parse()
            answered.append(reply.headers["x-request-id"])
            for route, says in (("claude", sonnet), ("claude-then-haiku", sonnet), ("haiku", haiku)):
                with pytest.raises(openai.BadRequestError) as refused:
                    client.chat.completions.create(model=route, messages=[detailed], max_tokens=4, stream=stream)
                body = refused.value.body
                assert body["param"] == "messages[0].content[1].image_url.detail", route
                assert body["message"] == (
                    f"messages[0].content[1].image_url.detail: {says} has no image detail setting ('high'); remove it"
                ), route
            with pytest.raises(openai.BadRequestError) as refused:
                client.chat.completions.create(model="haiku", messages=[USER], max_tokens=4, store=True, stream=stream)
            assert refused.value.body["param"] == "store" and haiku in refused.value.body["message"]
            with pytest.raises(anthropic.BadRequestError) as refused:  # Converse reads no image by URL
                linked = {"type": "image", "source": {"type": "url", "url": "https://example.com/a.png"}}
                claude.messages.create(
                    model="haiku", max_tokens=4, stream=stream, messages=[{"role": "user", "content": [linked]}]
                )
            assert refused.value.body["error"]["message"].startswith(f"messages.0.content.0: {haiku} takes images")
    finally:
        gateway.stack.close()
    assert gateway.scripted.requests == [] and gateway.sent == []  # nothing reached Claude on either API
    events = open_store(ledger).events()  # exactly the answered calls' rows: the refused calls left none
    assert sorted((e.request_id, e.attempt, e.model, e.outcome) for e in events) == sorted(
        row for rid in answered for row in ((rid, 1, HAIKU, "client_error"), (rid, 2, "up-model", "ok"))
    )
    assert all((e.cost_usd > 0) == (e.outcome == "ok") for e in events)  # the passed-over attempts at $0


def test_an_anthropic_field_claude_would_bill_unpriced_is_refused_before_any_attempt_or_ledger_row(tmp_path):
    """On /v1/messages the gateway checked a route up front without the caller's own Anthropic fields, so fast mode
    (`speed`) or a US-only `inference_geo`, which Claude bills at prices the catalog lacks, was refused only inside
    the attempt: a $0 client_error row and a budget reservation for a request never sent. Now no row."""
    from helpers.claude_gateway import ClaudeGateway

    ledger = tmp_path / "ledger.duckdb"
    gateway = ClaudeGateway(ledger, {})
    claude = anthropic.Anthropic(base_url=gateway.url, api_key="unused", max_retries=0)
    try:
        for stream in (False, True):
            for field, value in (("speed", "fast"), ("inference_geo", "us")):
                with pytest.raises(anthropic.BadRequestError) as refused:
                    claude.messages.create(
                        model="claude", max_tokens=4, stream=stream, messages=[USER], extra_body={field: value}
                    )
                message = refused.value.body["error"]["message"]
                assert message.startswith(f"{field}: the Anthropic Messages API (model claude-sonnet-4-5"), message
    finally:
        gateway.stack.close()
    assert gateway.scripted.requests == []
    assert open_store(ledger).events() == []


def test_a_forced_tool_with_thinking_on_is_refused_before_claude_naming_both_fields(ledger_path, monkeypatch):
    """Claude cannot think before a call it is forced to make: a forced tool (tool_choice any or tool, Gemini's
    toolConfig ANY) with thinking enabled went to Claude's API or Bedrock, whose 400 ("Thinking may not be enabled
    when tool_choice forces tool use") came back as the upstream's. The gateway refuses it first, naming both fields
    as the caller sent them, before anything is sent; a route whose fallback takes the request passes it on."""
    import boto3
    from botocore.config import Config
    from botocore.exceptions import ClientError
    from google import genai
    from google.genai import errors as genai_errors
    from google.genai import types

    from tokenomy.emulate.gemini_api import create_app as create_gemini
    from tokenomy.emulate.instant_engine import InstantEngine

    for name in ("AWS_BEARER_TOKEN_BEDROCK", "GEMINI_API_KEY", "GOOGLE_API_KEY"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", "x")
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "x")
    nowhere = "http://127.0.0.1:9"  # never called: each is refused before any call
    config = {
        "models": {
            "claude": {"provider": "anthropic", "model": "claude-sonnet-4-5-20250929", "base_url": nowhere},
            "sonnet": {
                "provider": "bedrock",
                "model": "us.anthropic.claude-sonnet-4-5-20250929-v1:0",
                "region": "us-east-1",
                "endpoint_url": nowhere,
            },
        },
        "routes": {"claude-first": {"model": "claude", "fallback": ["g"]}},
    }
    tool = {
        "name": "get_weather",
        "description": "Weather in a city",
        "input_schema": {"type": "object", "properties": {"city": {"type": "string"}}},
    }
    thinking = {"type": "enabled", "budget_tokens": 1024}
    with ServerThread(create_gemini(engine=InstantEngine())) as gemini_api:
        config["models"]["g"] = {"provider": "gemini", "model": "gemini-2.5-flash", "base_url": gemini_api}
        with ServerThread(create_app(parse_config(config), str(ledger_path)), lifespan="on") as url:
            claude = anthropic.Anthropic(base_url=url, api_key="unused", max_retries=0)
            for model in ("claude", "sonnet"):
                for choice in ({"type": "any"}, {"type": "tool", "name": "get_weather"}):
                    with pytest.raises(anthropic.BadRequestError) as refused:
                        claude.messages.create(
                            model=model,
                            max_tokens=2048,
                            messages=[USER],
                            tools=[tool],
                            tool_choice=choice,
                            thinking=thinking,
                        )
                    message = refused.value.body["error"]["message"]
                    assert message.startswith("tool_choice: ") and "thinking is on (`thinking`)" in message, message
            bedrock = boto3.client(
                "bedrock-runtime",
                endpoint_url=url,
                region_name="us-east-1",
                config=Config(retries={"total_max_attempts": 1}),
            )
            with pytest.raises(ClientError) as refused:
                bedrock.converse(
                    modelId="sonnet",
                    messages=[{"role": "user", "content": [{"text": "hi"}]}],
                    inferenceConfig={"maxTokens": 2048},
                    toolConfig={
                        "tools": [{"toolSpec": {"name": "get_weather", "inputSchema": {"json": tool["input_schema"]}}}],
                        "toolChoice": {"any": {}},
                    },
                    additionalModelRequestFields={"thinking": thinking},
                )
            message = refused.value.response["Error"]["Message"]
            assert (
                message.startswith("toolConfig.toolChoice: ") and "(`additionalModelRequestFields.thinking`)" in message
            ), message
            with pytest.raises(ClientError) as refused:
                bedrock.invoke_model(
                    modelId="sonnet",
                    body=json.dumps(
                        {
                            "anthropic_version": "bedrock-2023-05-31",
                            "max_tokens": 2048,
                            "messages": [USER],
                            "tools": [tool],
                            "tool_choice": {"type": "any"},
                            "thinking": thinking,
                        }
                    ),
                )
            message = refused.value.response["Error"]["Message"]
            assert message.startswith("tool_choice: ") and "(`thinking`)" in message, message
            gemini = genai.Client(api_key="unused", http_options={"base_url": url})
            forced = types.GenerateContentConfig(
                tools=[
                    types.Tool(
                        function_declarations=[
                            types.FunctionDeclaration(name="get_weather", parameters_json_schema=tool["input_schema"])
                        ]
                    )
                ],
                tool_config=types.ToolConfig(function_calling_config=types.FunctionCallingConfig(mode="ANY")),
                thinking_config=types.ThinkingConfig(thinking_budget=1024),
                max_output_tokens=2048,
            )
            for model in ("claude", "sonnet"):
                with pytest.raises(genai_errors.ClientError) as refused:
                    gemini.models.generate_content(model=model, contents="hi", config=forced)
                message = refused.value.message
                assert (
                    message.startswith("toolConfig.functionCallingConfig: ")
                    and "(`generationConfig.thinkingConfig`)" in message
                ), message
            # A fallback that takes it (Gemini thinks before a forced call) gets it: nothing was sent to Claude
            reply = claude.messages.create(
                model="claude-first",
                max_tokens=2048,
                messages=[USER],
                tools=[tool],
                tool_choice={"type": "any"},
                thinking=thinking,
            )
            assert [block.type for block in reply.content if block.type == "tool_use"] == ["tool_use"]
            answer = gemini.models.generate_content(model="claude-first", contents="hi", config=forced)
            assert answer.function_calls and answer.function_calls[0].name == "get_weather"
    events = open_store(ledger_path).events()
    refusals = [e for e in events if e.outcome == "client_error"]
    assert refusals and all(e.cost_usd == 0 for e in refusals)  # recorded, $0: nothing was sent
    assert [e.model for e in events if e.outcome == "ok"] == ["gemini-2.5-flash"] * 2
