"""`POST /v1/messages` (and chat completions) to an Anthropic upstream: what reaches the upstream, what the
caller gets back. The official SDKs drive a real gateway on 127.0.0.1 in front of a recording upstream."""

from __future__ import annotations

import contextlib
import copy
import json
from decimal import Decimal

import anthropic
import httpx
import openai
import pytest

from helpers import stand_in_aws_keys
from helpers.anthropic_blocks import (
    BLOCKS,
    BY_BLOCK,
    KEYS,
    POSITION,
    TOOL_KEYS,
    block_types,
    optional_keys,
    tool_keys,
)
from helpers.anthropic_samples import COMPANIONS, GATEWAY_FIELDS, HEADER_FIELDS, SAMPLES, SCHEMA, request_fields
from helpers.anthropic_samples import TOOL as SAMPLE_TOOL
from helpers.converse_capture import record_converse
from helpers.recording_openai import RecordingOpenAI
from helpers.scripted_anthropic import ScriptedAnthropic
from tokenomy.config import parse_config
from tokenomy.emulate.server import ServerThread
from tokenomy.gateway.app import create_app

SONNET = "claude-sonnet-4-5-20250929"
ASK = [{"role": "user", "content": "hi"}]
pytestmark = pytest.mark.filterwarnings("ignore:The model .* is deprecated:DeprecationWarning")


@pytest.fixture(scope="module")
def upstream():
    scripted = ScriptedAnthropic()
    with ServerThread(scripted.app) as url:
        yield scripted, url


@pytest.fixture(scope="module")
def gateway(upstream, tmp_path_factory):
    config = parse_config(
        {
            "models": {
                "claude": {"provider": "anthropic", "model": SONNET, "base_url": upstream[1]},
                "opus": {"provider": "anthropic", "model": "claude-opus-4-5-20251101", "base_url": upstream[1]},
                "opus46": {"provider": "anthropic", "model": "claude-opus-4-6", "base_url": upstream[1]},
                # An OpenAI-format model; the tests here never call it (port 9 has no server).
                "gpt": {
                    "provider": "openai",
                    "model": "gpt",
                    "base_url": "http://127.0.0.1:9/v1",
                    "api_key_env": "GPT_KEY",
                    "price_as": "gpt-4o-mini",
                },
            },
            "gateway": {"max_body_bytes": 8192},
        }
    )
    ledger = tmp_path_factory.mktemp("gw") / "ledger.duckdb"
    with pytest.MonkeyPatch.context() as env:
        env.setenv("GPT_KEY", "unused")
        with ServerThread(create_app(config, str(ledger)), lifespan="on") as url:
            yield url


@pytest.fixture
def scripted(upstream):
    scripted = upstream[0]
    scripted.requests.clear()
    scripted.reply = {"text": "Hi", "stop_reason": "end_turn", "stop_sequence": None}
    scripted.broken = False
    scripted.failure = None
    scripted.redacted = None
    scripted.thinking = []
    return scripted


@pytest.fixture
def sdk(gateway):
    return anthropic.Anthropic(base_url=gateway, api_key="unused", max_retries=0)


def test_sampling_parameters_reach_the_upstream(gateway, scripted, sdk) -> None:
    # anthropic 2.x's messages.create has no temperature/top_p/top_k keywords and its API version refuses them:
    # callers send them in the body, and so does the gateway, under the API version that takes them.
    reply = sdk.messages.create(model="claude", max_tokens=5, messages=ASK, extra_body={"temperature": 0.2, "top_k": 3})
    assert reply.content[0].text == "Hi"
    with sdk.messages.stream(model="claude", max_tokens=5, messages=ASK, extra_body={"top_p": 0.9}) as stream:
        assert "".join(stream.text_stream) == "Hi"
    chat = openai.OpenAI(base_url=gateway + "/v1", api_key="unused", max_retries=0)
    assert chat.chat.completions.create(model="claude", messages=ASK, max_tokens=5, temperature=0.5).choices
    sent = [
        (headers["anthropic-version"], {k: body.get(k) for k in ("temperature", "top_p", "top_k")})
        for headers, body in scripted.requests
    ]
    assert sent == [
        ("2023-06-01", {"temperature": 0.2, "top_p": None, "top_k": 3}),
        ("2023-06-01", {"temperature": None, "top_p": 0.9, "top_k": None}),
        ("2023-06-01", {"temperature": 0.5, "top_p": None, "top_k": None}),
    ]
    sdk.messages.create(model="claude", max_tokens=5, messages=ASK)  # no sampling: the SDK's own API version
    assert scripted.requests[-1][0]["anthropic-version"] == anthropic._constants.ANTHROPIC_API_VERSION


def test_a_fault_inside_a_stream_ends_it_with_an_error_event(gateway, scripted, sdk) -> None:
    scripted.broken = True
    with pytest.raises(anthropic.APIStatusError) as raised:
        with sdk.messages.stream(model="claude", max_tokens=5, messages=ASK) as stream:
            list(stream)
    assert raised.value.body["error"]["type"] == "api_error"
    assert "see the gateway's log" in raised.value.body["error"]["message"]
    assert "Traceback" not in str(raised.value.body)
    with httpx.stream(
        "POST",
        gateway + "/v1/chat/completions",
        json={"model": "claude", "messages": ASK, "max_tokens": 5, "stream": True},
    ) as response:
        lines = [line for line in response.iter_lines() if line.startswith("data: ")]
    assert '"type": "server_error"' in lines[-2] and lines[-1] == "data: [DONE]"


@pytest.mark.parametrize("kind", ["overloaded_error", "rate_limit_error"])
def test_an_error_anthropic_ends_its_stream_with_reaches_the_caller_as_its_type(gateway, scripted, sdk, kind) -> None:
    # Anthropic's API ends a stream it cannot finish with an error event: an Anthropic-SDK agent retries an
    # overloaded_error (or waits out a rate_limit_error) by its type, which an api_error would have hidden.
    scripted.failure = {"type": kind, "message": "Overloaded"}
    with pytest.raises(anthropic.APIStatusError) as raised:
        with sdk.messages.stream(model="claude", max_tokens=5, messages=ASK) as stream:
            list(stream)
    assert raised.value.body["error"]["type"] == kind
    wire = httpx.post(
        gateway + "/v1/messages", json={"model": "claude", "max_tokens": 5, "messages": ASK, "stream": True}
    ).text
    assert wire.index('"text":"Hi"') < wire.index("event: error")  # the text that came before it, then the error


def test_claudes_model_context_window_exceeded_reaches_the_caller_as_such(gateway, scripted, sdk) -> None:
    # Claude stops with model_context_window_exceeded when the context window is full: the caller should make room
    # (compact the conversation). The gateway answered max_tokens, which says to raise the output cap instead.
    scripted.reply = {"text": "Hi", "stop_reason": "model_context_window_exceeded", "stop_sequence": None}
    reply = sdk.messages.create(model="claude", max_tokens=5, messages=ASK)
    with sdk.messages.stream(model="claude", max_tokens=5, messages=ASK) as stream:
        streamed = stream.get_final_message()
    assert reply.stop_reason == streamed.stop_reason == "model_context_window_exceeded"
    chat = openai.OpenAI(base_url=gateway + "/v1", api_key="unused", max_retries=0)
    assert chat.chat.completions.create(model="claude", messages=ASK, max_tokens=5).choices[0].finish_reason == "length"


def turn(*blocks: dict, role: str = "user") -> list[dict]:
    return [{"role": role, "content": list(blocks)}]


USE = {"type": "tool_use", "id": "t", "name": "f", "input": {}}
PNG = {"type": "base64", "media_type": "image/png", "data": "iVBORw0KGgo="}
TOOL = {"name": "f", "input_schema": {"type": "object"}}


@pytest.mark.parametrize(
    "change, named",
    [
        # malformed shapes (were 500s in OpenAI's shape)
        ({"system": 5}, "system"),
        ({"messages": turn({"type": ["text"], "text": "a"})}, "messages.0.content.0.type"),
        ({"messages": turn({"type": "text", "text": "a"}, {"type": "text", "text": 5})}, "messages.0.content.1.text"),
        ({"messages": turn({"type": "image", "source": "x"})}, "messages.0.content.0.source"),
        ({"messages": ASK + turn(USE | {"input": [1, 2]}, role="assistant")}, "messages.1.content.0.input"),
        ({"messages": ASK + turn(USE | {"input": "abc"}, role="assistant")}, "messages.1.content.0.input"),
        (
            {
                "messages": ASK
                + turn(USE, role="assistant")
                + turn({"type": "tool_result", "tool_use_id": "t", "content": 5})
            },
            "messages.2.content.0.content",
        ),
        ({"messages": turn({"type": "document", "source": "x"})}, "messages.0.content.0.source"),
        (
            {"messages": turn({"type": "document", "source": {"type": "text", "media_type": "text/plain", "data": 5}})},
            "messages.0.content.0.source.data",
        ),
        (
            {"messages": turn({"type": "image", "source": {"type": "base64", "media_type": "image/png", "data": 5}})},
            "messages.0.content.0.source.data",
        ),
        # silent drops and changes (were carried wrongly)
        (
            {"messages": turn({"type": "text", "text": "a", "cache_control": {"type": "ephemeral", "ttl": "2h"}})},
            "messages.0.content.0.cache_control.ttl",
        ),
        # A document's context and citations reach Claude, and are refused by name for another API's model
        # (tests/gateway/test_document_citations.py).
        (
            {
                "messages": turn(
                    {
                        "type": "document",
                        "citations": {"enabled": "yes"},
                        "source": {"type": "text", "media_type": "text/plain", "data": "d"},
                    }
                )
            },
            "messages.0.content.0.citations",
        ),
        ({"messages": turn({"type": "document", "source": {"type": "url"}})}, "messages.0.content.0.source.url"),
        (
            {"messages": turn({"type": "document", "source": {"type": "content", "content": [USE]}})},
            "messages.0.content.0.source.content.0.type",
        ),
        (
            {
                "messages": turn(
                    {
                        "type": "document",
                        "source": {
                            "type": "content",
                            "content": [{"type": "text", "text": "a", "cache_control": {"type": "ephemeral"}}],
                        },
                    }
                )
            },
            "messages.0.content.0.source.content.0.cache_control",
        ),
        # Citations, server tools and their blocks go to Anthropic's API only (tests/gateway/test_server_tools.py).
        (
            {"model": "gpt", "messages": turn({"type": "text", "text": "a", "citations": []})},
            "messages.0.content.0.citations",
        ),
        ({"system": [{"type": "image", "source": PNG}]}, "system.0.type"),
        ({"tool_choice": "any", "tools": [TOOL]}, "tool_choice"),
        ({"tool_choice": {"type": "tool"}, "tools": [TOOL]}, "tool_choice.name"),
        ({"messages": turn({"type": "image", "source": {"type": "url"}})}, "messages.0.content.0.source.url"),
        (
            {"messages": turn({"type": "image", "source": {"type": "base64", "media_type": "image/png"}})},
            "messages.0.content.0.source.data",
        ),
        ({"max_tokens": 10**30}, "max_tokens"),
        ({"temperature": 5}, "temperature"),
        ({"top_p": -1}, "top_p"),
        ({"top_k": 0}, "top_k"),
        ({"stream": "no"}, "stream"),
        (
            {"model": "gpt", "tools": [{"type": "web_search_20250305", "name": "web_search", "max_uses": 1}]},
            "tools.0.type",
        ),
        ({"tools": [{"type": "code_execution_20250825", "name": "code_execution"}]}, "tools.0.type"),
        ({"tools": [{"type": "web_search_20250305", "name": "web_search", "max_uses": 0}]}, "tools.0.max_uses"),
        ({"model": "gpt", "output_config": {"effort": "low"}}, "output_config"),
        ({"model": "gpt", "cache_control": {"type": "ephemeral"}}, "cache_control"),
    ],
)
def test_malformed_or_uncarriable_requests_are_400s_naming_the_field(gateway, change, named) -> None:
    body = {"model": "claude", "max_tokens": 8, "messages": ASK, **change}
    answer = httpx.post(gateway + "/v1/messages", json=body)
    assert answer.status_code == 400, answer.text
    error = answer.json()
    assert error["type"] == "error" and error["error"]["type"] == "invalid_request_error"
    assert error["error"]["message"].startswith(named + ":"), error


def test_nan_temperature_and_a_missing_model_are_400s(gateway) -> None:
    raw = b'{"model": "claude", "max_tokens": 8, "messages": [{"role": "user", "content": "hi"}], "temperature": NaN}'
    answer = httpx.post(gateway + "/v1/messages", content=raw, headers={"content-type": "application/json"})
    assert answer.status_code == 400 and answer.json()["error"]["message"].startswith("temperature:")
    missing = httpx.post(gateway + "/v1/messages", json={"max_tokens": 8, "messages": ASK})
    assert missing.status_code == 400 and missing.json()["error"]["message"].startswith("model:")


def test_anthropic_fields_reach_an_anthropic_upstream_as_sent(gateway, scripted, sdk) -> None:
    sdk.messages.create(
        model="claude",
        max_tokens=5,
        messages=ASK,
        metadata={"user_id": "u1"},
        extra_body={"cache_control": {"type": "ephemeral"}},
    )
    body = scripted.requests[-1][1]
    assert body["metadata"] == {"user_id": "u1"} and body["cache_control"] == {"type": "ephemeral"}


@pytest.mark.parametrize(
    ("parameter", "value", "header"),
    [("workspace_id", "wrkspc_1", "anthropic-workspace-id"), ("user_profile_id", "up_1", "anthropic-user-profile-id")],
)
@pytest.mark.parametrize("model", ["claude", "gpt"])
def test_the_sdks_workspace_and_user_profile_are_refused_by_name_not_dropped(
    gateway, scripted, sdk, parameter, value, header, model
) -> None:
    # The SDK sends them as headers; the gateway calls every upstream with its own key, which they cannot steer.
    with pytest.raises(anthropic.BadRequestError) as refused:
        sdk.messages.create(model=model, max_tokens=5, messages=ASK, **{parameter: value})
    message = refused.value.body["error"]["message"]
    assert message.startswith(f"{parameter} (the `{header}` header)") and f"remove {parameter}" in message
    assert scripted.requests == []  # nothing was sent


@pytest.fixture(scope="module")
def mixed(upstream, tmp_path_factory):
    """A gateway with a Claude route (the scripted upstream) and an OpenAI-format one (a recording upstream)."""
    with RecordingOpenAI() as openai_upstream:
        config = parse_config(
            {
                "models": {
                    "claude": {"provider": "anthropic", "model": SONNET, "base_url": upstream[1]},
                    "gpt": {
                        "provider": "openai",
                        "model": "up",
                        "base_url": openai_upstream.url,
                        "price_as": "gpt-4o-mini",
                    },
                }
            }
        )
        ledger = tmp_path_factory.mktemp("mixed") / "ledger.duckdb"
        with ServerThread(create_app(config, str(ledger)), lifespan="on") as url:
            yield url, openai_upstream


TEXT_DOCUMENT = {"type": "text", "media_type": "text/plain", "data": "d"}


# The SDK types these Optional: a null is its unset, which asks for nothing. They were refused ("the gateway cannot
# carry this field", or "carries this field to Anthropic models only" for a route to an OpenAI-format model).
@pytest.mark.parametrize("model", ["claude", "gpt"])
@pytest.mark.parametrize(
    "fields",
    [
        {"container": None, "cache_control": None, "inference_geo": None, "speed": None, "diagnostics": None},
        {"messages": turn({"type": "document", "source": TEXT_DOCUMENT, "citations": None, "context": None})},
        {"messages": turn({"type": "image", "source": PNG, "transformations": None})},
        {
            "messages": ASK
            + turn(USE, role="assistant")
            + turn({"type": "tool_result", "tool_use_id": "t", "content": "ok", "toolset_name": None}),
            "tools": [TOOL],
        },
        {"tools": [TOOL | {"eager_input_streaming": None}]},
        {"output_config": {"format": None, "effort": None}},
        {"output_config": {"effort": None, "format": {"type": "json_schema", "schema": {"type": "object"}}}},
    ],
)
def test_a_null_optional_field_is_unset_not_refused(mixed, scripted, model, fields) -> None:
    url, openai_upstream = mixed
    openai_upstream.bodies.clear()
    sdk = anthropic.Anthropic(base_url=url, api_key="unused", max_retries=0)
    sdk.messages.create(**{"model": model, "max_tokens": 5, "messages": ASK, **fields})
    sent = scripted.requests[-1][1] if model == "claude" else openai_upstream.last
    assert len(sent["messages"]) == len(fields.get("messages", ASK))
    if model == "claude":  # nothing passed on as null (an OpenAI-format assistant turn's content is null by design)
        assert "null" not in json.dumps(sent), sent


# Where each field of Anthropic's request lands in an OpenAI-format model's body; any other is refused by name.
IN_OPENAI_FORM = {
    "metadata": ("user", "u-1"),
    "output_config": (
        "response_format",
        {"type": "json_schema", "json_schema": {"name": "response", "schema": SCHEMA, "strict": True}},
    ),
    "service_tier": ("service_tier", "auto"),
    "stop_sequences": ("stop", ["END"]),
    "system": ("messages", [{"role": "system", "content": "Be brief."}, *ASK]),
    "tool_choice": ("tool_choice", "required"),
    "tools": (
        "tools",
        [{"type": "function", "function": {"name": "get_weather", "parameters": SAMPLE_TOOL["input_schema"]}}],
    ),
}


@pytest.mark.parametrize("field", request_fields())
def test_every_field_of_the_sdks_request_is_carried_or_refused_by_name(mixed, scripted, field) -> None:
    """Each field of the installed anthropic SDK's MessageCreateParams reaches Claude as sent and an OpenAI-format
    model in its own field (IN_OPENAI_FORM), or is refused naming it before any call. A field a newer SDK adds fails
    here until it gets a sample (helpers/anthropic_samples.py) and a place."""
    if field in GATEWAY_FIELDS:
        return
    assert field in SAMPLES, f"Anthropic's request has a new field {field!r}: add a sample value to SAMPLES"
    url, openai_upstream = mixed
    sdk = anthropic.Anthropic(base_url=url, api_key="unused", max_retries=0)
    asked = {field: SAMPLES[field], **COMPANIONS.get(field, {})}
    for model in ("claude", "gpt"):
        scripted.requests.clear()
        openai_upstream.bodies.clear()
        refused = field in HEADER_FIELDS or (model == "gpt" and field not in IN_OPENAI_FORM)
        if refused:
            with pytest.raises(anthropic.BadRequestError) as caught:
                sdk.messages.create(model=model, max_tokens=2000, messages=ASK, **asked)
            assert field in caught.value.body["error"]["message"], caught.value.body
            assert scripted.requests == [] and openai_upstream.bodies == []  # refused before any call
            continue
        sdk.messages.create(model=model, max_tokens=2000, messages=ASK, **asked)
        if model == "claude":
            assert scripted.requests[-1][1][field] == SAMPLES[field]  # under its own name, value unchanged
        else:
            place, value = IN_OPENAI_FORM[field]
            assert openai_upstream.last[place] == value


def test_thinking_turned_off_reaches_claude_and_asks_nothing_of_another_model(mixed, scripted) -> None:
    """`thinking: {"type": "disabled"}` was dropped on the way to Anthropic's API, where leaving `thinking` out lets
    the model decide (the SDK: what omitting it does depends on the model): a caller who turned thinking off could
    get thinking, billed as output. An OpenAI-format model, which reasons only when asked, gets no reasoning field."""
    url, openai_upstream = mixed
    sdk = anthropic.Anthropic(base_url=url, api_key="unused", max_retries=0)
    sdk.messages.create(model="claude", max_tokens=5, messages=ASK, thinking={"type": "disabled"})
    assert scripted.requests[-1][1]["thinking"] == {"type": "disabled"}
    with sdk.messages.stream(model="claude", max_tokens=5, messages=ASK, thinking={"type": "disabled"}) as stream:
        stream.get_final_message()
    assert scripted.requests[-1][1]["thinking"] == {"type": "disabled"}
    sdk.messages.create(model="gpt", max_tokens=5, messages=ASK, thinking={"type": "disabled"})
    assert not {"thinking", "reasoning_effort"} & set(openai_upstream.last)


def test_thinking_between_tools_reaches_claude_and_is_refused_by_name_for_another_model(mixed, scripted) -> None:
    """The SDK's `thinking: {"type": "between_tools"}` was refused for every route ("send adaptive, enabled or
    disabled"), Anthropic's API included. It is Anthropic's alone: carried as sent there, refused by name elsewhere."""
    url, openai_upstream = mixed
    sdk = anthropic.Anthropic(base_url=url, api_key="unused", max_retries=0)
    sdk.messages.create(model="claude", max_tokens=5, messages=ASK, thinking={"type": "between_tools"})
    assert scripted.requests[-1][1]["thinking"] == {"type": "between_tools"}
    sent = len(openai_upstream.bodies)
    with pytest.raises(anthropic.BadRequestError) as refused:
        sdk.messages.create(model="gpt", max_tokens=5, messages=ASK, thinking={"type": "between_tools"})
    assert refused.value.body["error"]["message"].startswith("thinking: the gateway carries this field to Anthropic")
    assert len(openai_upstream.bodies) == sent  # refused before any call


def test_edge_refusals_on_messages_come_in_anthropic_shape(gateway) -> None:
    headers = {"content-type": "application/json"}
    big = json.dumps({"model": "claude", "max_tokens": 5, "messages": [{"role": "user", "content": "x" * 9000}]})
    bad_utf8 = b'{"model":"claude","max_tokens":5,"messages":[{"role":"user","content":"\xff"}]}'
    surrogate = b'{"model":"claude","max_tokens":5,"messages":[{"role":"user","content":"\\ud800"}]}'
    for body, status, kind, needle in [
        (big, 413, "request_too_large", "8192"),
        (bad_utf8, 400, "invalid_request_error", "UTF-8"),
        (surrogate, 400, "invalid_request_error", "messages.0.content"),
        # was a 500 (RecursionError) with a traceback in the log
        (b"[" * 3000 + b"]" * 3000, 400, "invalid_request_error", "nested"),
    ]:
        answer = httpx.post(gateway + "/v1/messages", content=body, headers=headers)
        assert answer.status_code == status
        assert answer.json()["type"] == "error" and answer.json()["error"]["type"] == kind
        assert needle in answer.json()["error"]["message"]
    # chat completions keep OpenAI's shape
    answer = httpx.post(gateway + "/v1/chat/completions", content=bad_utf8, headers=headers)
    assert answer.status_code == 400 and answer.json()["error"]["type"] == "invalid_request_error"
    with pytest.raises(anthropic.APIStatusError) as raised:  # the SDK reads the shape: its message is ours
        anthropic.Anthropic(base_url=gateway, api_key="unused", max_retries=0).messages.create(
            model="claude", max_tokens=5, messages=[{"role": "user", "content": "x" * 9000}]
        )
    assert raised.value.status_code == 413 and "8192" in raised.value.message


TOOL_ROUND = (
    ASK
    + turn(USE, USE | {"id": "t2"}, role="assistant")
    + turn(
        {"type": "tool_result", "tool_use_id": "t", "content": "ok"},
        {
            "type": "tool_result",
            "tool_use_id": "t2",
            "content": [{"type": "text", "text": "see"}, {"type": "image", "source": PNG}],
        },
    )
)
PICTURE = turn({"type": "text", "text": "What is this?"}, {"type": "image", "source": PNG})
THINKING = {"type": "enabled", "budget_tokens": 1024}


# (model, request fields, what the message says the model cannot take): the place in the Messages API's own terms
# (this mapping is one message per message, one block per block, so the index is the caller's), not `[i]` brackets.
@pytest.mark.parametrize(
    "model, change, named",
    [
        (
            "local",
            {
                "system": "Be brief.",
                "messages": ASK + turn({"type": "text", "text": "Hello"}, role="assistant") + PICTURE,
            },
            "an image block (messages.2.content.1)",
        ),
        ("local", {"messages": TOOL_ROUND}, "an image block (messages.2.content.1.content.1)"),
        ("local", {"messages": ASK, "thinking": THINKING}, "field `thinking` (it has no reasoning mode)"),
        (
            "gpt",
            {"messages": ASK, "thinking": THINKING},
            "a reasoning token budget (`thinking.budget_tokens`; OpenAI takes",
        ),
    ],
)
def test_a_refusal_names_the_place_the_caller_sent_it(gateway, model, change, named) -> None:
    answer = httpx.post(gateway + "/v1/messages", json={"model": model, "max_tokens": 8, **change}, timeout=30)
    assert answer.status_code == 400, answer.text
    error = answer.json()
    assert error["type"] == "error" and error["error"]["type"] == "invalid_request_error"
    assert f"model `{model}` cannot take {named}" in error["error"]["message"], error


def test_an_exhausted_budget_is_not_retried_by_either_sdk(upstream, tmp_path) -> None:
    from tokenomy.gateway.keys import KeyStore
    from tokenomy.ledger.store import open_store

    ledger = tmp_path / "ledger.duckdb"
    secret, _ = KeyStore(open_store(ledger)).create(budget_usd=Decimal("0.01"), period="month", name="agent")
    config = parse_config(
        {"auth": True, "models": {"claude": {"provider": "anthropic", "model": SONNET, "base_url": upstream[1]}}}
    )
    app = create_app(config, str(ledger))
    posts: list[str] = []

    async def counting(scope, receive, send):  # every request the SDKs send, retries included
        if scope["type"] == "http" and scope["method"] == "POST":
            posts.append(scope["path"])
        await app(scope, receive, send)

    with ServerThread(counting, lifespan="on") as gateway:
        # 20k output tokens at $15 per million could cost $0.30: more than the key's $0.01 budget.
        with pytest.raises(anthropic.RateLimitError, match="Budget exhausted") as raised:
            anthropic.Anthropic(base_url=gateway, api_key=secret).messages.create(  # the SDK's default retries
                model="claude", max_tokens=20_000, messages=ASK
            )
        assert raised.value.response.headers["x-should-retry"] == "false"
        with pytest.raises(openai.RateLimitError, match="Budget exhausted"):
            openai.OpenAI(base_url=gateway + "/v1", api_key=secret).chat.completions.create(
                model="claude", max_tokens=20_000, messages=ASK
            )
    assert posts == ["/v1/messages", "/v1/chat/completions"]


def test_the_matched_stop_sequence_comes_back(gateway, scripted, sdk) -> None:
    scripted.reply = {"text": "Hi", "stop_reason": "stop_sequence", "stop_sequence": "END"}
    reply = sdk.messages.create(model="claude", max_tokens=5, messages=ASK, stop_sequences=["END"])
    assert (reply.stop_reason, reply.stop_sequence) == ("stop_sequence", "END")
    with sdk.messages.stream(model="claude", max_tokens=5, messages=ASK, stop_sequences=["END"]) as stream:
        final = stream.get_final_message()
    assert (final.stop_reason, final.stop_sequence) == ("stop_sequence", "END")
    scripted.reply = {"text": "Hi", "stop_reason": "end_turn", "stop_sequence": None}
    reply = sdk.messages.create(model="claude", max_tokens=5, messages=ASK, stop_sequences=["END"])
    assert (reply.stop_reason, reply.stop_sequence) == ("end_turn", None)


def test_the_ai_sdks_converse_request_to_a_claude_route_gets_the_matched_stop_sequence(gateway, scripted) -> None:
    """@ai-sdk/amazon-bedrock asks a Claude model for `/delta/stop_sequence`; on a route to Anthropic's API the
    gateway answers it from Claude's stop_sequence (before, the field was refused: Bedrock models only)."""
    scripted.reply = {"text": "Hi", "stop_reason": "stop_sequence", "stop_sequence": "END"}
    body = {
        "system": [],
        "messages": [{"role": "user", "content": [{"text": "hi"}]}],
        "additionalModelResponseFieldPaths": ["/delta/stop_sequence"],
        "inferenceConfig": {"maxTokens": 5, "stopSequences": ["END"]},
    }
    whole = httpx.post(f"{gateway}/model/claude/converse", json=body)
    assert whole.status_code == 200, whole.text
    assert (whole.json()["stopReason"], whole.json()["additionalModelResponseFields"]) == (
        "stop_sequence",
        {"delta": {"stop_sequence": "END"}},
    )
    frames = httpx.post(f"{gateway}/model/claude/converse-stream", json=body).content
    assert b'"additionalModelResponseFields":{"delta":{"stop_sequence":"END"}}' in frames.replace(b" ", b"")
    assert all("additionalModelResponseFieldPaths" not in sent for _, sent in scripted.requests[-2:])


def test_opencodes_message_cache_control_in_chat_completions_is_claudes_cache_point(gateway, scripted) -> None:
    """OpenCode (its OpenAI-compatible provider, for a model named like Claude) marks the system prompt and the last
    messages with `cache_control` on the message, as gateways in front of Claude take it; the gateway refused every
    such request (`messages[0].cache_control: this message field is not supported`)."""
    ephemeral = {"type": "ephemeral"}
    body = {
        "model": "claude",
        "max_tokens": 5,
        "tool_choice": "auto",
        "messages": [
            {"role": "system", "content": "You are OpenCode.", "cache_control": ephemeral},
            {"role": "user", "content": "hello"},
            {"role": "assistant", "content": "hi"},
            {"role": "user", "content": "say hi", "cache_control": {"type": "ephemeral", "ttl": "1h"}},
        ],
        "tools": [{"type": "function", "function": {"name": "bash", "parameters": {"type": "object"}}}],
    }
    answer = httpx.post(f"{gateway}/v1/chat/completions", json=body)
    assert answer.status_code == 200, answer.text
    sent = scripted.requests[-1][1]
    assert sent["system"][-1]["cache_control"] == ephemeral
    assert sent["messages"][-1]["content"][-1]["cache_control"] == {"type": "ephemeral", "ttl": "1h"}
    assert all("cache_control" not in block for m in sent["messages"][:-1] for block in m["content"])
    body["messages"][1]["cache_control"] = {"type": "persistent"}
    refused = httpx.post(f"{gateway}/v1/chat/completions", json=body)
    assert refused.status_code == 400 and refused.json()["error"]["param"] == "messages[1].cache_control"


def test_a_bedrock_stop_sequence_is_one_without_a_name(tmp_path) -> None:
    from starlette.applications import Starlette
    from starlette.responses import JSONResponse
    from starlette.routing import Route

    async def converse(request):  # Converse says a stop sequence ended the answer, not which one
        return JSONResponse(
            {
                "output": {"message": {"role": "assistant", "content": [{"text": "Hi"}]}},
                "stopReason": "stop_sequence",
                "usage": {"inputTokens": 3, "outputTokens": 1, "totalTokens": 4},
                "metrics": {"latencyMs": 1},
            }
        )

    bedrock = Starlette(routes=[Route("/model/{model:path}/converse", converse, methods=["POST"])])
    with ServerThread(bedrock) as url:
        haiku = "anthropic.claude-3-haiku-20240307-v1:0"
        config = parse_config(
            {"models": {"sonnet": {"provider": "bedrock", "model": haiku, "region": "us-east-1", "endpoint_url": url}}}
        )
        with ServerThread(create_app(config, str(tmp_path / "ledger.duckdb")), lifespan="on") as gateway:
            reply = anthropic.Anthropic(base_url=gateway, api_key="unused", max_retries=0).messages.create(
                model="sonnet", max_tokens=5, messages=ASK, stop_sequences=["END"]
            )
    assert (reply.stop_reason, reply.stop_sequence) == ("stop_sequence", None)


@pytest.mark.parametrize(
    "change, named",
    [
        (
            {
                "tool_choice": {"type": "auto", "disable_parallel_tool_use": True},
                "tools": [{"name": "t", "input_schema": {"type": "object"}}],
            },
            "tool_choice.disable_parallel_tool_use: Bedrock",
        ),
        (
            {
                "messages": [
                    {
                        "role": "user",
                        "content": [
                            {"type": "text", "text": "see"},
                            {"type": "image", "source": {"type": "url", "url": "https://example.com/a.png"}},
                        ],
                    }
                ]
            },
            "messages.0.content.1: Bedrock",
        ),
    ],
)
def test_a_field_bedrock_cannot_take_is_named_as_the_caller_sent_it(tmp_path, change, named) -> None:
    # The Converse mapping's refusal reached an Anthropic-SDK caller as "upstream client_error: parallel_tool_calls:
    # ..." (OpenAI's name, for a request that never left the gateway) or "messages[0].content[1]" (not the Messages
    # API's path).
    config = parse_config(
        {
            "models": {
                "sonnet": {
                    "provider": "bedrock",
                    "region": "us-east-1",
                    "model": "anthropic.claude-3-haiku-20240307-v1:0",
                    "endpoint_url": "http://127.0.0.1:9",
                }
            }
        }
    )  # never called
    with ServerThread(create_app(config, str(tmp_path / "ledger.duckdb")), lifespan="on") as gateway:
        answer = httpx.post(
            gateway + "/v1/messages", json={"model": "sonnet", "max_tokens": 8, "messages": ASK, **change}, timeout=30
        )
    assert answer.status_code == 400 and answer.json()["error"]["type"] == "invalid_request_error"
    assert answer.json()["error"]["message"].startswith(named), answer.text


def test_the_cost_is_written_as_chat_completions_writes_it(gateway, scripted) -> None:
    import re

    answer = httpx.post(gateway + "/v1/messages", json={"model": "claude", "max_tokens": 8, "messages": ASK})
    cost = answer.json()["tokenomy"]["cost_usd"]
    # The money rule's record kind: plain, at least 6 places (was str(Decimal): "0" or "1.5E-7").
    assert answer.status_code == 200 and re.fullmatch(r"\d+\.\d{6,12}", cost) and Decimal(cost) > 0, cost


def test_a_document_reaches_anthropic_with_the_title_it_was_sent_with_or_none(gateway, scripted, sdk) -> None:
    # An untitled document used to arrive titled "document": a title the caller never wrote, which the model reads.
    doc = {"type": "document", "source": {"type": "text", "media_type": "text/plain", "data": "Clause 1."}}
    for block in (doc, doc | {"title": "contract.txt"}):
        sdk.messages.create(
            model="claude",
            max_tokens=5,
            messages=[{"role": "user", "content": [block, {"type": "text", "text": "Sum up."}]}],
        )
    sent = [body["messages"][0]["content"][0] for _, body in scripted.requests]
    assert sent == [doc, doc | {"title": "contract.txt"}]


def test_the_anthropic_beta_header_reaches_an_anthropic_upstream(gateway, scripted, sdk) -> None:
    # Beta features (1M context, interleaved thinking, ...) are turned on by this header; it was dropped.
    sdk.beta.messages.create(model="claude", max_tokens=5, messages=ASK, betas=["interleaved-thinking-2025-05-14"])
    with sdk.messages.stream(
        model="claude",
        max_tokens=5,
        messages=ASK,
        extra_body={"temperature": 0.1},
        extra_headers={"anthropic-beta": "context-1m-2025-08-07"},
    ) as stream:
        list(stream)
    sdk.messages.create(model="claude", max_tokens=5, messages=ASK)
    sent = [(headers.get("anthropic-beta"), "anthropic-beta" in body) for headers, body in scripted.requests]
    assert sent == [("interleaved-thinking-2025-05-14", False), ("context-1m-2025-08-07", False), (None, False)]
    headers, body = scripted.requests[1]
    assert headers["anthropic-version"] == "2023-06-01" and body["temperature"] == 0.1


def test_messages_paths_the_gateway_does_not_serve_are_anthropic_errors_not_made_up_answers(
    gateway, scripted, sdk
) -> None:
    # Batches were FastAPI's {"detail": "Not Found"}, which the SDK reads as no message at all.
    for call in (
        lambda: sdk.messages.batches.create(
            requests=[{"custom_id": "a", "params": {"model": "claude", "max_tokens": 5, "messages": ASK}}]
        ),
        lambda: sdk.messages.batches.list(),
    ):
        with pytest.raises(anthropic.NotFoundError) as missing:
            call()
        assert missing.value.body["type"] == "error" and missing.value.body["error"]["type"] == "not_found_error"
        assert "POST /v1/messages" in missing.value.message
    wrong_method = httpx.get(gateway + "/v1/messages")
    assert wrong_method.status_code == 405 and wrong_method.json()["error"]["type"] == "invalid_request_error"
    assert scripted.requests == []


def test_each_message_names_its_ledger_request_id_in_request_id_and_its_id(upstream, tmp_path) -> None:
    # The message id and the ledger's request_id were unrelated, and no request-id header came back.
    from tokenomy.ledger.store import open_store

    ledger = tmp_path / "ledger.duckdb"
    config = parse_config({"models": {"claude": {"provider": "anthropic", "model": SONNET, "base_url": upstream[1]}}})
    with ServerThread(create_app(config, str(ledger)), lifespan="on") as url:
        sdk = anthropic.Anthropic(base_url=url, api_key="unused", max_retries=0)
        reply = sdk.messages.create(model="claude", max_tokens=5, messages=ASK)
        with sdk.messages.stream(model="claude", max_tokens=5, messages=ASK) as stream:
            final = stream.get_final_message()
            streamed = stream.response.headers["request-id"]
    assert reply.id == f"msg_{reply._request_id}" and final.id == f"msg_{streamed}"
    assert sorted(e.request_id for e in open_store(ledger).events()) == sorted([reply._request_id, streamed])


def test_an_openai_sdk_caller_turns_on_claudes_thinking_with_a_budget(upstream, gateway):
    """Claude takes a thinking budget, not an effort level. Before, chat completions had no way to send one: the
    refusal of `reasoning_effort` pointed to a field no OpenAI request has, and a `thinking` field was refused."""
    scripted, _ = upstream
    client = openai.OpenAI(base_url=gateway + "/v1", api_key="unused", max_retries=0)
    thinking = {"type": "enabled", "budget_tokens": 1024}
    client.chat.completions.create(model="claude", max_tokens=3000, messages=ASK, extra_body={"thinking": thinking})
    assert scripted.requests[-1][1]["thinking"] == thinking
    # Thinking turned off reaches Claude (it was dropped, leaving the model's default, which may be to think)
    client.chat.completions.create(
        model="claude", max_tokens=30, messages=ASK, extra_body={"thinking": {"type": "disabled"}}
    )
    assert scripted.requests[-1][1]["thinking"] == {"type": "disabled"}
    sent = len(scripted.requests)
    refusals = [
        (
            "claude",
            {"reasoning_effort": "low"},
            "reasoning_effort",
            "send a thinking budget in tokens (`thinking.budget_tokens`) instead",
        ),
        ("claude", {"extra_body": {"thinking": {"type": "enabled"}}}, "thinking", '"budget_tokens": N'),
        (
            "claude",
            {"extra_body": {"thinking": {"type": "enabled", "budget_tokens": "many"}}},
            "thinking.budget_tokens",
            "a whole number of tokens",
        ),
        ("claude", {"reasoning_effort": "low", "extra_body": {"thinking": thinking}}, "thinking", "not both"),
        ("gpt", {"extra_body": {"thinking": thinking}}, "thinking.budget_tokens", "OpenAI takes reasoning_effort"),
    ]
    for model, extra, param, said in refusals:
        with pytest.raises(openai.BadRequestError) as refused:
            client.chat.completions.create(model=model, max_tokens=3000, messages=ASK, **extra)
        assert refused.value.body["param"] == param and said in refused.value.body["message"], refused.value.body
    assert len(scripted.requests) == sent  # refused before any call


def test_an_openai_sdk_caller_sends_claudes_signed_thinking_back(tmp_path, monkeypatch) -> None:
    """The next turn of a conversation with thinking on must carry the thinking blocks signed, as Claude (here the
    emulator, which checks its signatures) gave them. Chat completions returned only `reasoning_content`: sent back,
    it was refused as unsigned. Now the message also has `thinking_blocks`, whole or streamed."""
    from tokenomy.emulate.anthropic_api import create_app as create_emulator

    monkeypatch.setenv("ANTHROPIC_API_KEY", "unused")
    with ServerThread(create_emulator()) as upstream:
        config = parse_config({"models": {"claude": {"provider": "anthropic", "model": SONNET, "base_url": upstream}}})
        with ServerThread(create_app(config, str(tmp_path / "ledger.duckdb")), lifespan="on") as url:
            client = openai.OpenAI(base_url=url + "/v1", api_key="unused", max_retries=0)
            ask = {
                "model": "claude",
                "max_tokens": 1100,
                "extra_body": {"thinking": {"type": "enabled", "budget_tokens": 1024}},
            }
            messages = [{"role": "user", "content": "Name one colour, in one word."}]
            whole = client.chat.completions.create(messages=messages, **ask).choices[0].message
            with client.chat.completions.stream(messages=messages, **ask) as stream:
                streamed = next(iter(stream.get_final_completion().choices)).message
            for message in (whole, streamed):
                blocks = message.model_extra["thinking_blocks"]
                assert [b["type"] for b in blocks] == ["thinking"] and blocks[0]["signature"]
                assert blocks[0]["thinking"] == message.model_extra["reasoning_content"]
                turn = [*messages, message, {"role": "user", "content": "And another?"}]
                assert client.chat.completions.create(messages=turn, **ask).choices[0].message.content
            unsigned = whole.model_dump(exclude={"thinking_blocks"})  # what a caller sent back before
            with pytest.raises(openai.BadRequestError, match="unsigned") as refused:
                client.chat.completions.create(messages=[*messages, unsigned, {"role": "user", "content": "?"}], **ask)
            assert refused.value.body["param"] == "messages[1].reasoning_content"


def test_a_text_document_that_is_not_utf8_is_a_400_naming_it_not_a_500(gateway, scripted) -> None:
    # Anthropic takes a text document as a JSON string: a CSV saved as Latin-1 raised UnicodeDecodeError in the
    # mapping, and the caller got a 500 "internal error".
    import base64

    latin1 = "name;city\nRené;Zürich\n".encode("latin-1")
    part = {
        "type": "file",
        "file": {"filename": "people.csv", "file_data": "data:text/csv;base64," + base64.b64encode(latin1).decode()},
    }
    client = openai.OpenAI(base_url=gateway + "/v1", api_key="unused", max_retries=0)
    with pytest.raises(openai.BadRequestError) as caught:
        client.chat.completions.create(
            model="claude",
            max_tokens=8,
            messages=[{"role": "user", "content": [{"type": "text", "text": "Who lives where?"}, part]}],
        )
    assert caught.value.body["param"] == "messages[0].content[1]" and "UTF-8" in caught.value.body["message"]
    assert scripted.requests == []  # nothing was sent


def test_an_end_user_id_reaches_each_provider_in_its_own_field(tmp_path, scripted, sdk, monkeypatch) -> None:
    """Claude Code sends `metadata.user_id` on every request. Only an Anthropic route took it: a Bedrock or a routed
    one refused every request ("carries this field to Anthropic models only"). It is now an end-user id each
    provider carries in its own field (Anthropic's metadata, OpenAI's `user`, Converse's requestMetadata); an API
    without one (Gemini's, the local model's) refuses it by the caller's name, before any call."""
    from tokenomy.emulate.bedrock_runtime import create_app as create_bedrock
    from tokenomy.emulate.instant_engine import InstantEngine

    user = "user_5f2a_account_9c1e_session_77d0"
    sdk.messages.create(model="claude", max_tokens=5, messages=ASK, metadata={"user_id": user})
    assert scripted.requests[-1][1]["metadata"] == {"user_id": user}
    sent = record_converse(monkeypatch)
    with ServerThread(create_bedrock(engine=InstantEngine())) as bedrock:
        config = parse_config(
            {
                "models": {
                    "sonnet": {
                        "provider": "bedrock",
                        "region": "us-east-1",
                        "endpoint_url": bedrock,
                        "model": "anthropic.claude-3-haiku-20240307-v1:0",
                    },
                    "g": {"provider": "gemini", "model": "gemini-2.5-flash", "base_url": "http://127.0.0.1:9"},
                }
            }
        )
        with ServerThread(create_app(config, str(tmp_path / "ledger.duckdb")), lifespan="on") as url:
            client = anthropic.Anthropic(base_url=url, api_key="unused", max_retries=0)
            reply = client.messages.create(model="sonnet", max_tokens=5, messages=ASK, metadata={"user_id": user})
            assert reply.content and sent[-1]["requestMetadata"] == {"user_id": user}
            with pytest.raises(anthropic.BadRequestError, match=r"metadata\.user_id") as refused:
                client.messages.create(model="g", max_tokens=5, messages=ASK, metadata={"user_id": user})
            assert "no field for it" in str(refused.value)
            chat = openai.OpenAI(base_url=url + "/v1", api_key="unused", max_retries=0)
            with pytest.raises(openai.BadRequestError) as named:
                chat.chat.completions.create(model="g", max_tokens=5, messages=ASK, user=user)
            assert named.value.body["param"] == "user"
            with pytest.raises(anthropic.BadRequestError, match=r"metadata: Input should be"):
                client.messages.create(model="sonnet", max_tokens=5, messages=ASK, metadata={"user": user})


def test_a_model_set_to_omit_the_end_user_id_takes_claude_codes_requests_without_it(tmp_path) -> None:
    """Claude Code sends `metadata.user_id` on every request and cannot be told not to, so a Gemini route refused
    every one of its requests with nothing the user could change. A model set `omit_end_user_id: true` takes them,
    without the id (its API has no field for one); unset, the refusal names the setting. A provider that carries
    the id is told to remove the setting."""
    from tokenomy.config import ConfigError
    from tokenomy.emulate.gemini_api import create_app as create_gemini
    from tokenomy.emulate.instant_engine import InstantEngine

    user = '{"device_id":"d1","account_uuid":"","session_id":"s1"}'
    with ServerThread(create_gemini(engine=InstantEngine())) as gemini:
        config = parse_config(
            {
                "models": {
                    "g": {
                        "provider": "gemini",
                        "model": "gemini-2.5-flash",
                        "base_url": gemini,
                        "omit_end_user_id": True,
                    },
                    "strict": {"provider": "gemini", "model": "gemini-2.5-flash", "base_url": gemini},
                }
            }
        )
        with ServerThread(create_app(config, str(tmp_path / "ledger.duckdb")), lifespan="on") as url:
            client = anthropic.Anthropic(base_url=url, api_key="unused", max_retries=0)
            reply = client.messages.create(model="g", max_tokens=5, messages=ASK, metadata={"user_id": user})
            assert reply.content[0].text
            with pytest.raises(anthropic.BadRequestError, match=r"omit_end_user_id: true") as refused:
                client.messages.create(model="strict", max_tokens=5, messages=ASK, metadata={"user_id": user})
            assert "metadata.user_id" in str(refused.value)
    with pytest.raises(ConfigError, match=r"omit_end_user_id.*its own API; remove it"):
        parse_config({"models": {"b": {"provider": "bedrock", "model": "m", "omit_end_user_id": True}}})


def test_claude_codes_json_end_user_id_reaches_converse_whole(tmp_path, monkeypatch) -> None:
    """Claude Code 2.1.78 and later send `metadata.user_id` as a JSON object's text (device, account and session
    ids), whose braces and quotes Converse's requestMetadata values cannot hold: every request of theirs to a
    Bedrock route was refused. Each of its entries is now a requestMetadata entry of its own (`user_id.session_id`);
    a user id that is neither fits nowhere and is refused as before."""
    from tokenomy.emulate.bedrock_runtime import create_app as create_bedrock
    from tokenomy.emulate.instant_engine import InstantEngine

    ids = {"device_id": "a" * 64, "account_uuid": "", "session_id": "54c1eb09-bc4c-4d2f-98eb-6d2ab2d5e2fe"}
    sent = record_converse(monkeypatch)
    with ServerThread(create_bedrock(engine=InstantEngine())) as bedrock:
        config = parse_config(
            {
                "models": {
                    "sonnet": {
                        "provider": "bedrock",
                        "region": "us-east-1",
                        "endpoint_url": bedrock,
                        "model": "anthropic.claude-3-haiku-20240307-v1:0",
                    }
                }
            }
        )
        with ServerThread(create_app(config, str(tmp_path / "ledger.duckdb")), lifespan="on") as url:
            client = anthropic.Anthropic(base_url=url, api_key="unused", max_retries=0)
            user = json.dumps(ids, separators=(",", ":"))
            reply = client.messages.create(model="sonnet", max_tokens=5, messages=ASK, metadata={"user_id": user})
            assert reply.content and sent[-1]["requestMetadata"] == {f"user_id.{k}": v for k, v in ids.items()}
            with pytest.raises(anthropic.BadRequestError, match=r"metadata\.user_id: Bedrock Converse"):
                client.messages.create(
                    model="sonnet", max_tokens=5, messages=ASK, metadata={"user_id": json.dumps({"device_id": "<a>"})}
                )


def test_adaptive_thinking_reaches_claude_from_either_api(gateway, scripted, sdk) -> None:
    """Claude Opus 4.7 and later refuse a thinking budget and take `thinking: {"type": "adaptive"}` (guided by
    `output_config.effort`); coding agents send it on every request. The gateway refused it on both APIs."""
    sdk.messages.create(
        model="opus46",
        max_tokens=2000,
        messages=ASK,
        thinking={"type": "adaptive"},
        extra_body={"output_config": {"effort": "high"}},
    )
    body = scripted.requests[-1][1]
    assert body["thinking"] == {"type": "adaptive"} and body["output_config"] == {"effort": "high"}
    chat = openai.OpenAI(base_url=gateway + "/v1", api_key="unused", max_retries=0)
    chat.chat.completions.create(
        model="opus46",
        max_tokens=2000,
        messages=ASK,
        reasoning_effort="low",
        extra_body={"thinking": {"type": "adaptive"}},
    )
    body = scripted.requests[-1][1]
    assert body["thinking"] == {"type": "adaptive"} and body["output_config"] == {"effort": "low"}
    sent = len(scripted.requests)
    with pytest.raises(openai.BadRequestError) as refused:  # OpenAI's models take an effort, not "adaptive" alone
        chat.chat.completions.create(
            model="gpt", max_tokens=20, messages=ASK, extra_body={"thinking": {"type": "adaptive"}}
        )
    assert refused.value.body["param"] == "thinking" and "reasoning_effort" in refused.value.body["message"]
    with pytest.raises(anthropic.BadRequestError, match=r"thinking\.extra"):  # a key the gateway cannot carry
        sdk.messages.create(
            model="opus46", max_tokens=2000, messages=ASK, thinking={"type": "adaptive", "extra": "omitted"}
        )  # type: ignore[typeddict-unknown-key]
    assert len(scripted.requests) == sent  # refused before any call


def test_claudes_redacted_thinking_streams_in_its_place_to_each_api(gateway, scripted, sdk, monkeypatch) -> None:
    """Claude streams a redacted_thinking block whole, before the text it precedes: each API's stream sends it there
    (once), not after the answer's other blocks, so an SDK's assembled message keeps Claude's order to send back."""
    import boto3
    from google import genai

    scripted.redacted = "opaque-ciphertext"
    with sdk.messages.stream(model="claude", max_tokens=16, messages=ASK) as stream:
        started = [e.content_block.type for e in stream if e.type == "content_block_start"]
        final = stream.get_final_message()
    assert started == ["redacted_thinking", "text"]
    assert [(b.type, getattr(b, "data", None)) for b in final.content] == [
        ("redacted_thinking", "opaque-ciphertext"),
        ("text", None),
    ]
    gemini = genai.Client(api_key="unused", http_options={"base_url": gateway})
    parts = [
        p
        for c in gemini.models.generate_content_stream(model="claude", contents="hi")
        if c.candidates[0].content
        for p in c.candidates[0].content.parts
    ]
    # Gemini's stream: on the text it precedes (the part after it carries it, as Gemini puts its signatures).
    # (The text's last character comes in the last chunk, as Gemini's last chunk has text.)
    assert [(bool(p.thought), bool(p.thought_signature)) for p in parts] == [(False, True), (False, False)]
    assert "".join(p.text for p in parts) == "Hi"
    stand_in_aws_keys(monkeypatch)
    bedrock = boto3.client("bedrock-runtime", endpoint_url=gateway, region_name="us-east-1")
    events = list(
        bedrock.converse_stream(modelId="claude", messages=[{"role": "user", "content": [{"text": "hi"}]}])["stream"]
    )
    deltas = [e["contentBlockDelta"] for e in events if "contentBlockDelta" in e]
    assert [(d["contentBlockIndex"], sorted(d["delta"])) for d in deltas] == [(0, ["reasoningContent"]), (1, ["text"])]
    assert deltas[0]["delta"]["reasoningContent"]["redactedContent"]


def test_claudes_adjacent_thinking_blocks_stream_as_two_each_with_its_signature(gateway, scripted, sdk) -> None:
    """A signature closes its thinking block: a thinking block that follows another one at once is a block of its own.
    They were streamed as one block holding both texts and two signature_deltas, so the SDK's assembled message kept
    the second signature on the joined text, which Claude refuses (invalid signature) when the agent sends it back."""
    scripted.thinking = [("first thought", "sig-one"), ("second thought", "sig-two")]
    with sdk.messages.stream(model="claude", max_tokens=16, messages=ASK) as stream:
        final = stream.get_final_message()
    assert [(b.type, getattr(b, "thinking", None), getattr(b, "signature", None)) for b in final.content] == [
        ("thinking", "first thought", "sig-one"),
        ("thinking", "second thought", "sig-two"),
        ("text", None, None),
    ]
    whole = sdk.messages.create(model="claude", max_tokens=16, messages=ASK)
    assert [b.model_dump(exclude_none=True) for b in whole.content] == [
        b.model_dump(exclude_none=True) for b in final.content
    ]


def test_claudes_adjacent_thinking_blocks_reach_a_converse_stream_as_two_blocks(gateway, scripted, monkeypatch) -> None:
    """Bedrock's ConverseStream to a Claude route: each signed thinking block is a reasoning block of its own, its
    signature in it. Both were one block, its two signature deltas on the joined text (boto3's caller kept the last)."""
    import boto3

    stand_in_aws_keys(monkeypatch)
    scripted.thinking = [("first thought", "sig-one"), ("second thought", "sig-two")]
    bedrock = boto3.client("bedrock-runtime", endpoint_url=gateway, region_name="us-east-1")
    events = list(
        bedrock.converse_stream(modelId="claude", messages=[{"role": "user", "content": [{"text": "hi"}]}])["stream"]
    )
    blocks: dict[int, dict] = {}
    for event in events:
        delta = event.get("contentBlockDelta")
        if delta and "reasoningContent" in delta["delta"]:
            block = blocks.setdefault(delta["contentBlockIndex"], {"text": "", "signature": []})
            reasoning = delta["delta"]["reasoningContent"]
            block["text"] += reasoning.get("text", "")
            block["signature"] += [reasoning["signature"]] if "signature" in reasoning else []
    assert list(blocks.values()) == [
        {"text": "first thought", "signature": ["sig-one"]},
        {"text": "second thought", "signature": ["sig-two"]},
    ]
    stops = [e["contentBlockStop"]["contentBlockIndex"] for e in events if "contentBlockStop" in e]
    assert stops == [0, 1, 2]  # each reasoning block closed before the next, then the text


# LiteLLM's cache points in OpenAI's format (its docs, and what `cache_control_injection_points` adds): cache_control
# on a message (string content), on its last content part, or on a tool.
CACHED = {"type": "ephemeral"}
WEATHER_TOOL = {
    "type": "function",
    "function": {"name": "get_weather", "parameters": {"type": "object"}},
    "cache_control": CACHED,
}


def test_chat_completions_cache_control_reaches_claude_as_its_cache_points(gateway, scripted) -> None:
    chat = openai.OpenAI(base_url=gateway + "/v1", api_key="unused", max_retries=0)
    messages = [
        {"role": "system", "content": "Rules.", "cache_control": CACHED},
        {"role": "system", "content": [{"type": "text", "text": "Docs.", "cache_control": {**CACHED, "ttl": "1h"}}]},
        {
            "role": "user",
            "content": [{"type": "text", "text": "a"}, {"type": "text", "text": "b"}],  # (4 points: Claude's most)
        },
        {
            "role": "assistant",
            "content": None,
            "tool_calls": [{"id": "t1", "type": "function", "function": {"name": "get_weather", "arguments": "{}"}}],
        },
        {"role": "tool", "tool_call_id": "t1", "content": "18C", "cache_control": CACHED},
        {"role": "user", "content": "hi"},
    ]
    chat.chat.completions.create(model="claude", messages=messages, tools=[WEATHER_TOOL], max_tokens=5)
    body = scripted.requests[-1][1]
    assert body["system"] == [
        {"type": "text", "text": "Rules.", "cache_control": CACHED},
        {"type": "text", "text": "Docs.", "cache_control": {**CACHED, "ttl": "1h"}},
    ]
    assert body["tools"][0]["cache_control"] == CACHED
    user, _, result, last = body["messages"]
    assert user["content"] == [{"type": "text", "text": "a"}, {"type": "text", "text": "b"}]
    assert result["content"][-1]["cache_control"] == CACHED
    assert "cache_control" not in json.dumps(last)


@pytest.mark.parametrize(
    ("messages", "tools", "param"),
    [
        # A cache point the gateway cannot put where it was asked (a system message's parts join into one text; it
        # caches the tool list at its end).
        (
            [
                {
                    "role": "system",
                    "content": [{"type": "text", "text": "a", "cache_control": CACHED}, {"type": "text", "text": "b"}],
                },
                *ASK,
            ],
            None,
            "messages[0].content[0].cache_control",
        ),
        (ASK, [WEATHER_TOOL, {"type": "function", "function": {"name": "t2"}}], "tools[0].cache_control"),
        (
            [{"role": "user", "content": "hi", "cache_control": {"type": "persistent"}}],
            None,
            "messages[0].cache_control",
        ),
        (
            [{"role": "user", "content": "hi", "cache_control": {**CACHED, "ttl": "2h"}}],
            None,
            "messages[0].cache_control.ttl",
        ),
        (  # in mid-conversation too (its point at its end joins Claude's system prompt with it)
            [
                *ASK,
                {"role": "assistant", "content": "x"},
                {
                    "role": "system",
                    "content": [{"type": "text", "text": "s", "cache_control": CACHED}, {"type": "text", "text": "t"}],
                },
                *ASK,
            ],
            None,
            "messages[2].content[0].cache_control",
        ),
    ],
)
def test_chat_completions_cache_control_that_cannot_be_carried_is_a_400_naming_it(
    gateway, scripted, messages, tools, param
) -> None:
    sent = len(scripted.requests)
    body = {"model": "claude", "messages": messages, "max_tokens": 5, **({"tools": tools} if tools else {})}
    answer = httpx.post(gateway + "/v1/chat/completions", json=body)
    assert answer.status_code == 400 and answer.json()["error"]["param"] == param, answer.text
    assert len(scripted.requests) == sent


def test_a_one_hour_cache_point_from_chat_completions_is_refused_where_no_1_hour_cache_exists(gateway) -> None:
    messages = [{"role": "user", "content": "hi", "cache_control": {**CACHED, "ttl": "1h"}}]
    answer = httpx.post(gateway + "/v1/chat/completions", json={"model": "gpt", "messages": messages})
    assert answer.status_code == 400 and answer.json()["error"]["param"] == "messages[0]", answer.text


def test_message_start_carries_an_anthropic_upstreams_input_and_cache_counts(gateway, scripted, sdk) -> None:
    """Claude Code and the SDK's stream helpers read the input and cache counts in message_start: the gateway sent
    0 there whatever the upstream said."""
    scripted.usage = {
        "input_tokens": 31,
        "output_tokens": 1,
        "cache_creation_input_tokens": 7,
        "cache_read_input_tokens": 1200,
    }
    try:
        with sdk.messages.stream(model="claude", max_tokens=5, messages=ASK) as stream:
            events = list(stream)
    finally:
        scripted.usage = {
            "input_tokens": 10,
            "output_tokens": 2,
            "cache_creation_input_tokens": 0,
            "cache_read_input_tokens": 0,
        }
    assert events[0].type == "message_start"
    start = events[0].message.usage
    assert (start.input_tokens, start.cache_read_input_tokens, start.cache_creation_input_tokens) == (31, 1200, 7)
    [delta] = [e for e in events if e.type == "message_delta"]  # the final counts repeat them, as the API's do
    assert (delta.usage.input_tokens, delta.usage.cache_read_input_tokens, delta.usage.output_tokens) == (31, 1200, 2)


def test_a_cache_point_between_system_messages_sends_each_text_as_written(gateway, scripted) -> None:
    """Two opening system messages, the first marked (OpenCode's and LiteLLM's cache_control): Claude got the first
    block with a newline the caller never wrote ("You are OpenCode.\\n"), so the cached prefix was not the caller's."""
    first, second = "You are OpenCode.", "Project rules:\nbe brief."
    body = {
        "model": "claude",
        "max_tokens": 5,
        "messages": [
            {"role": "system", "content": first, "cache_control": {"type": "ephemeral"}},
            {"role": "system", "content": second},
            {"role": "user", "content": "hello"},
        ],
    }
    client = openai.OpenAI(base_url=f"{gateway}/v1", api_key="unused", max_retries=0)
    client.chat.completions.create(**body)
    assert [block["text"] for block in scripted.requests[-1][1]["system"]] == [first, second]
    assert scripted.requests[-1][1]["system"][0]["cache_control"] == {"type": "ephemeral"}


@pytest.fixture
def claude_on_both(upstream, tmp_path, monkeypatch):
    """(scripted Anthropic API, the Converse params sent to Bedrock, gateway URL): Claude Sonnet 4.5, Opus 4.5 and
    Sonnet 4.6 each on Anthropic's API (`sonnet-api`, `opus-api`, `sonnet46-api`) and on Bedrock (`-bedrock`)."""
    from tokenomy.emulate.bedrock_runtime import create_app as create_bedrock
    from tokenomy.emulate.instant_engine import InstantEngine

    scripted, anthropic_url = upstream
    scripted.requests.clear()
    sent = record_converse(monkeypatch)
    with ServerThread(create_bedrock(engine=InstantEngine())) as bedrock:

        def on_bedrock(model: str) -> dict:
            return {"provider": "bedrock", "region": "us-east-1", "endpoint_url": bedrock, "model": model}

        config = parse_config(
            {
                "models": {
                    "sonnet-api": {"provider": "anthropic", "model": SONNET, "base_url": anthropic_url},
                    "opus-api": {
                        "provider": "anthropic",
                        "model": "claude-opus-4-5-20251101",
                        "base_url": anthropic_url,
                    },
                    "sonnet46-api": {"provider": "anthropic", "model": "claude-sonnet-4-6", "base_url": anthropic_url},
                    "sonnet-bedrock": on_bedrock("anthropic.claude-sonnet-4-5-20250929-v1:0"),
                    "opus-bedrock": on_bedrock("anthropic.claude-opus-4-5-20251101-v1:0"),
                    "sonnet46-bedrock": on_bedrock("us.anthropic.claude-sonnet-4-6"),
                }
            }
        )
        with ServerThread(create_app(config, str(tmp_path / "ledger.duckdb")), lifespan="on") as url:
            yield scripted, sent, url


def test_a_reasoning_effort_reaches_the_claude_models_that_take_one_on_either_provider(claude_on_both) -> None:
    """Anthropic's effort parameter is for Claude Opus 4.5 and the 4.6 and later models. Claude Sonnet 4.5's
    reasoning_effort was sent to Bedrock as outputConfig.effort but refused on Anthropic's API, and Opus 4.5's was
    refused on Anthropic's API (it asked for adaptive thinking, which Opus 4.5 does not have): now both providers
    carry it to the models that take it and refuse it, naming the model, for the others."""
    scripted, sent, url = claude_on_both
    chat = openai.OpenAI(base_url=url + "/v1", api_key="unused", max_retries=0)
    for route in ("opus-api", "opus-bedrock"):
        chat.chat.completions.create(model=route, max_tokens=50, messages=ASK, reasoning_effort="low")
    assert scripted.requests[-1][1]["output_config"] == {"effort": "low"}
    assert "thinking" not in scripted.requests[-1][1]
    assert sent[-1]["outputConfig"] == {"effort": "low"}
    calls = (len(scripted.requests), len(sent))
    for route in ("sonnet-api", "sonnet-bedrock"):
        with pytest.raises(openai.BadRequestError) as refused:
            chat.chat.completions.create(model=route, max_tokens=50, messages=ASK, reasoning_effort="low")
        body = refused.value.body
        assert body["param"] == "reasoning_effort", body
        assert "claude-sonnet-4-5-20250929" in body["message"] and "takes no effort level" in body["message"]
        assert "(`thinking.budget_tokens`)" in body["message"]
    assert (len(scripted.requests), len(sent)) == calls  # refused before any call


@pytest.mark.parametrize("route", ["opus-api", "opus-bedrock"])
@pytest.mark.parametrize("effort", ["none", "minimal"])
def test_an_openai_effort_claude_has_no_level_for_is_refused_before_any_call(claude_on_both, route, effort) -> None:
    """OpenAI's "none" and "minimal" efforts reached Anthropic's API as output_config.effort, which takes low to max
    only: refused after the call was sent (Bedrock's mapping refused them first). Both now refuse them by the caller's
    name for the field."""
    scripted, sent, url = claude_on_both
    chat = openai.OpenAI(base_url=url + "/v1", api_key="unused", max_retries=0)
    calls = (len(scripted.requests), len(sent))
    with pytest.raises(openai.BadRequestError) as refused:
        chat.chat.completions.create(model=route, max_tokens=50, messages=ASK, reasoning_effort=effort)
    assert refused.value.body["param"] == "reasoning_effort" and repr(effort) in refused.value.body["message"]
    with pytest.raises(openai.BadRequestError) as refused:
        chat.responses.create(model=route, max_output_tokens=50, input="hi", reasoning={"effort": effort})
    assert refused.value.body["param"] == "reasoning.effort" and "low, medium, high" in refused.value.body["message"]
    claude = anthropic.Anthropic(base_url=url, api_key="unused", max_retries=0)
    # An Anthropic caller's effort (with adaptive thinking, Claude 4.6 and later) is output_config's.
    with pytest.raises(anthropic.BadRequestError) as named:
        claude.messages.create(
            model=route.replace("opus", "sonnet46"),
            max_tokens=50,
            messages=ASK,
            extra_body={"thinking": {"type": "adaptive"}, "output_config": {"effort": effort}},
        )
    assert named.value.body["error"]["message"].startswith("output_config.effort:"), named.value.body
    assert (len(scripted.requests), len(sent)) == calls  # refused before any call


def test_adaptive_thinking_and_a_native_effort_are_refused_before_any_call_for_claude_models_without_them(
    claude_on_both,
) -> None:
    """Adaptive thinking is for Claude 4.6 and later, output_config.effort for Opus 4.5 and 4.6 and later. Sent by an
    Anthropic caller for Sonnet 4.5, Anthropic's API refused them only upstream and Bedrock got them as model
    parameters it refuses after the call; now both providers refuse them first, naming the field, model and fix,
    and carry them to the models that take them."""
    scripted, sent, url = claude_on_both
    client = anthropic.Anthropic(base_url=url, api_key="unused", max_retries=0)
    adaptive, why_adaptive = {"thinking": {"type": "adaptive"}}, "adaptive thinking is for the Claude 4.6"
    effort, why_effort = {"output_config": {"effort": "low"}}, "takes no effort level"
    asks = [
        ("thinking", adaptive, why_adaptive, "sonnet-api"),
        ("thinking", adaptive, why_adaptive, "sonnet-bedrock"),
        ("output_config.effort", effort, why_effort, "sonnet-api"),
    ]
    for field, extra, why, route in asks:
        calls = (len(scripted.requests), len(sent))
        with pytest.raises(anthropic.BadRequestError) as refused:
            client.messages.create(model=route, max_tokens=2000, messages=ASK, extra_body=extra)
        message = refused.value.body["error"]["message"]
        assert field in message and "claude-sonnet-4-5-20250929" in message and why in message, message
        assert (len(scripted.requests), len(sent)) == calls  # refused before any call
    for extra in (adaptive, effort):
        client.messages.create(model="sonnet46-api", max_tokens=2000, messages=ASK, extra_body=extra)
        assert {k: scripted.requests[-1][1][k] for k in extra} == extra
    client.messages.create(model="sonnet46-bedrock", max_tokens=2000, messages=ASK, extra_body=adaptive)
    assert sent[-1]["additionalModelRequestFields"]["thinking"] == {"type": "adaptive"}


def test_an_empty_answer_has_no_content_blocks_streamed_or_not(gateway, scripted, sdk) -> None:
    # An upstream answer with an empty text block came back as `content: [{"type": "text", "text": ""}]`, yet
    # streamed as no block at all (`content=[]`). Anthropic's API answers an empty turn with `content: []` (no
    # content_block_start when streamed), and refuses an empty text block sent back in the next turn's history.
    scripted.reply = {"text": "", "stop_reason": "end_turn", "stop_sequence": None}
    reply = sdk.messages.create(model="claude", max_tokens=5, messages=ASK)
    with sdk.messages.stream(model="claude", max_tokens=5, messages=ASK) as stream:
        final = stream.get_final_message()
    assert reply.content == final.content == [] and reply.stop_reason == final.stop_reason == "end_turn"
    scripted.reply = {"text": "Hi", "stop_reason": "end_turn", "stop_sequence": None}
    assert [b.text for b in sdk.messages.create(model="claude", max_tokens=5, messages=ASK).content] == ["Hi"]


def test_thinking_turned_off_reaches_claude_on_a_mixed_route_and_on_bedrock(upstream, scripted, tmp_path, monkeypatch):
    """`thinking: {"type": "disabled"}` was carried only on a route whose every model is Anthropic's: a route with
    a fallback elsewhere, a Claude model on Bedrock, and OpenAI-format callers' `thinking` all dropped it. Claude gets
    it in its own field on either API; a model that thinks only when asked (here an OpenAI-format one, the local
    model) gets nothing, which is what turning thinking off asks of it."""
    from tokenomy.emulate.bedrock_runtime import create_app as create_bedrock
    from tokenomy.emulate.instant_engine import InstantEngine

    sent = record_converse(monkeypatch)
    off = {"type": "disabled"}
    with RecordingOpenAI() as openai_upstream, ServerThread(create_bedrock(engine=InstantEngine())) as bedrock:
        config = parse_config(
            {
                "models": {
                    "claude": {"provider": "anthropic", "model": SONNET, "base_url": upstream[1]},
                    "sonnet-bedrock": {
                        "provider": "bedrock",
                        "region": "us-east-1",
                        "endpoint_url": bedrock,
                        "model": "anthropic.claude-sonnet-4-5-20250929-v1:0",
                    },
                    "nova": {
                        "provider": "bedrock",
                        "region": "us-east-1",
                        "endpoint_url": bedrock,
                        "model": "amazon.nova-lite-v1:0",
                    },
                    "gpt": {
                        "provider": "openai",
                        "model": "up",
                        "base_url": openai_upstream.url,
                        "price_as": "gpt-4o-mini",
                    },
                },
                "routes": {"claude-then-gpt": {"model": "claude", "fallback": ["gpt"]}},
            }
        )
        with ServerThread(create_app(config, str(tmp_path / "ledger.duckdb")), lifespan="on") as url:
            sdk = anthropic.Anthropic(base_url=url, api_key="unused", max_retries=0)
            sdk.messages.create(model="claude-then-gpt", max_tokens=5, messages=ASK, thinking=off)
            assert scripted.requests[-1][1]["thinking"] == off
            sdk.messages.create(model="sonnet-bedrock", max_tokens=5, messages=ASK, thinking=off)
            assert sent[-1]["additionalModelRequestFields"] == {"thinking": off}
            sdk.messages.create(model="nova", max_tokens=5, messages=ASK, thinking=off)
            assert "additionalModelRequestFields" not in sent[-1]
            chat = openai.OpenAI(base_url=url + "/v1", api_key="unused", max_retries=0)
            chat.chat.completions.create(
                model="sonnet-bedrock", max_tokens=5, messages=ASK, extra_body={"thinking": off}
            )
            assert sent[-1]["additionalModelRequestFields"] == {"thinking": off}
            chat.chat.completions.create(model="gpt", max_tokens=5, messages=ASK, extra_body={"thinking": off})
            assert not {"thinking", "reasoning_effort"} & set(openai_upstream.last)


def test_every_error_status_comes_with_the_type_anthropic_gives_it(tmp_path) -> None:
    """A 504 (the upstream outwaited the model's timeout_s) is Anthropic's timeout_error, and an upstream's 4xx the
    gateway passes on (a 422 from an OpenAI-compatible server) an invalid_request_error: both came as api_error, the
    type Anthropic gives a 500, which says the fault is the server's and not the request's. A stream that stalls
    midway ends with a timeout_error event too."""
    from helpers.scripted_openai import ScriptedOpenAI

    upstream = ScriptedOpenAI([(200, {}, "stall"), (200, {}, "held"), (422, {})])
    try:
        model = {"provider": "openai", "model": "up", "base_url": upstream.url, "price_as": "gpt-4o-mini"}
        config = parse_config(
            {
                "models": {"hasty": {**model, "timeout_s": 0.5}, "up": model},
                "routes": {
                    "hasty": {"model": "hasty", "retry": {"max_attempts": 1}},
                    "once": {"model": "up", "retry": {"max_attempts": 1}},
                },
            }
        )
        with ServerThread(create_app(config, str(tmp_path / "ledger.duckdb")), lifespan="on") as url:
            sdk = anthropic.Anthropic(base_url=url, api_key="unused", max_retries=0)
            with pytest.raises(anthropic.APIStatusError) as stalled:  # the stream stops midway: its error event
                with sdk.messages.stream(model="hasty", max_tokens=5, messages=ASK) as stream:
                    list(stream)
            with pytest.raises(anthropic.APIStatusError) as timed_out:
                sdk.messages.create(model="hasty", max_tokens=5, messages=ASK)
            upstream.release()
            with pytest.raises(anthropic.APIStatusError) as unprocessable:
                sdk.messages.create(model="once", max_tokens=5, messages=ASK)
    finally:
        upstream.release()
        upstream.close()
    assert (timed_out.value.status_code, timed_out.value.body["error"]["type"]) == (504, "timeout_error")
    assert (unprocessable.value.status_code, unprocessable.value.body["error"]["type"]) == (
        422,
        "invalid_request_error",
    )
    assert stalled.value.body["error"]["type"] == "timeout_error"


def test_a_service_tier_naming_the_standard_tier_asks_nothing_of_other_providers(tmp_path, monkeypatch) -> None:
    """The anthropic SDK's `service_tier="auto"` (Anthropic's default) or "standard_only" was refused for a route that
    may reach another provider ("service_tier: the gateway carries this field to Anthropic models only"), though it
    asks for the standard tier, which the others serve unasked (as Gemini's serviceTier "standard" is left out for
    them). Now "auto" reaches Claude as sent and is left out for Bedrock, and an OpenAI-format model gets it as OpenAI
    takes it; "standard_only" is left out for a route with no model on Anthropic's API. A dearer or cheaper tier
    ("priority") is still refused by name where only Anthropic has it."""
    from tokenomy.emulate.bedrock_runtime import create_app as create_bedrock
    from tokenomy.emulate.instant_engine import InstantEngine

    sent = record_converse(monkeypatch)
    scripted = ScriptedAnthropic()
    scripted.reply = {"text": "Hi", "stop_reason": "end_turn", "stop_sequence": None}
    with (
        RecordingOpenAI() as gpt,
        ServerThread(create_bedrock(engine=InstantEngine())) as bedrock,
        ServerThread(scripted.app) as claude_url,
    ):
        config = parse_config(
            {
                "models": {
                    "claude": {"provider": "anthropic", "model": SONNET, "base_url": claude_url},
                    "sonnet-bedrock": {
                        "provider": "bedrock",
                        "region": "us-east-1",
                        "endpoint_url": bedrock,
                        "model": "anthropic.claude-sonnet-4-5-20250929-v1:0",
                    },
                    "gpt": {"provider": "openai", "model": "up", "base_url": gpt.url, "price_as": "gpt-4o-mini"},
                },
                "routes": {"claude-then-gpt": {"model": "claude", "fallback": ["gpt"]}},
            }
        )
        with ServerThread(create_app(config, str(tmp_path / "ledger.duckdb")), lifespan="on") as url:
            sdk = anthropic.Anthropic(base_url=url, api_key="unused", max_retries=0)
            for stream in (False, True):
                for model in ("gpt", "sonnet-bedrock", "claude-then-gpt"):
                    with (
                        sdk.messages.stream(model=model, max_tokens=5, messages=ASK, service_tier="auto")
                        if stream
                        else contextlib.nullcontext() as streamed
                    ):
                        reply = (
                            streamed.get_final_message()
                            if stream
                            else sdk.messages.create(model=model, max_tokens=5, messages=ASK, service_tier="auto")
                        )
                    assert reply.content[0].text, model
                assert gpt.last["service_tier"] == "auto"
                assert "service_tier" not in json.dumps(sent[-1], default=str)
                assert scripted.requests[-1][1]["service_tier"] == "auto"
                for model in ("gpt", "sonnet-bedrock"):
                    sdk.messages.create(model=model, max_tokens=5, messages=ASK, service_tier="standard_only")
                assert "service_tier" not in gpt.last and "service_tier" not in json.dumps(sent[-1], default=str)
            with pytest.raises(anthropic.BadRequestError, match="service_tier: the gateway carries this field"):
                sdk.messages.create(model="gpt", max_tokens=5, messages=ASK, extra_body={"service_tier": "priority"})
            with pytest.raises(anthropic.BadRequestError, match="service_tier: the gateway carries this field"):
                sdk.messages.create(model="claude-then-gpt", max_tokens=5, messages=ASK, service_tier="standard_only")


def test_the_service_tier_anthropic_served_a_call_at_reaches_the_caller_streamed_or_not(gateway, scripted, sdk) -> None:
    # Anthropic's usage says which tier served the call (`service_tier`: "standard", or "priority" for an organisation
    # with Priority Tier capacity), which a caller sending service_tier="auto" reads to know what it got. The gateway
    # dropped it: the SDK's usage.service_tier was None, whole or streamed.
    scripted.usage = {**scripted.usage, "service_tier": "priority"}
    try:
        whole = sdk.messages.create(model="claude", max_tokens=5, messages=ASK, service_tier="auto")
        with sdk.messages.stream(model="claude", max_tokens=5, messages=ASK, service_tier="auto") as stream:
            streamed = stream.get_final_message()
    finally:
        scripted.usage = {k: v for k, v in scripted.usage.items() if k != "service_tier"}
    assert whole.usage.service_tier == streamed.usage.service_tier == "priority"
    assert whole.usage.input_tokens == streamed.usage.input_tokens == 10


# What a block's key does to an OpenAI-format model's messages, where the gateway carries it (None: asks nothing of
# it, as a cache point: OpenAI caches every long prefix by itself, README "cache_control"). Any other is refused.
BLOCK_KEYS_IN_OPENAI_FORM = {
    "cache_control": None,
    "is_error": lambda messages: messages[-1]["content"].startswith("Error: "),  # a tool message has no flag
    "title": lambda messages: messages[0]["content"][0]["file"]["filename"] == "Report",
}


def test_every_key_of_every_content_block_is_carried_or_refused_by_name(mixed, scripted) -> None:
    """Each optional key of each content block type of the installed anthropic SDK (helpers/anthropic_blocks.py)
    reaches Claude in its place, value unchanged, and an OpenAI-format model as BLOCK_KEYS_IN_OPENAI_FORM says, or is
    refused naming the block or the key before any call. A block type or key a newer SDK adds fails here until it
    gets a sample."""
    url, openai_upstream = mixed
    sdk = anthropic.Anthropic(base_url=url, api_key="unused", max_retries=0)
    for name, kind in block_types().items():
        assert name in BLOCKS, f"the SDK has a new content block {name}: add a sample to BLOCKS"
        turns, i = BLOCKS[name]
        j = POSITION.get(name, 0)
        for key in optional_keys(kind):
            if key in turns[i]["content"][j]:  # part of the sample block already
                continue
            assert key in KEYS or (name, key) in BY_BLOCK, f"{name} has a new key {key!r}: add a sample to KEYS"
            sample = BY_BLOCK.get((name, key), KEYS.get(key))
            asked = copy.deepcopy(turns)
            asked[i]["content"][j][key] = sample
            for model in ("claude", "gpt"):
                scripted.requests.clear()
                openai_upstream.bodies.clear()
                try:
                    sdk.messages.create(model=model, max_tokens=2000, messages=asked)
                except anthropic.BadRequestError as refused:
                    assert f"messages.{i}.content." in refused.message, (name, key, model, refused.message)
                    assert scripted.requests == [] and openai_upstream.bodies == []  # refused before any call
                    continue
                if model == "claude":
                    assert scripted.requests[-1][1]["messages"][i]["content"][j][key] == sample, (name, key)
                else:
                    assert key in BLOCK_KEYS_IN_OPENAI_FORM, (name, key, openai_upstream.last["messages"])
                    check = BLOCK_KEYS_IN_OPENAI_FORM[key]
                    assert check is None or check(openai_upstream.last["messages"]), (name, key)


# What a tool's key becomes for an OpenAI-format model (None: asks nothing of it: a cache point, as above; input
# streamed as written, which it does anyway; "custom", every function tool's kind). Any other is refused by name.
TOOL_KEYS_IN_OPENAI_FORM = {
    "cache_control": None,
    "description": ("description", "Weather in a city"),
    "eager_input_streaming": None,
    "strict": ("strict", True),
    "type": None,
}


def test_every_key_of_a_custom_tool_is_carried_or_refused_by_name(mixed, scripted) -> None:
    """Each optional key of the installed anthropic SDK's ToolParam reaches Claude as sent ("custom", its default
    kind, asks nothing) and an OpenAI-format model in its function's own field, or is refused naming tools.0.<key>.
    A key a newer SDK adds fails here until it gets a sample (helpers/anthropic_blocks.py)."""
    url, openai_upstream = mixed
    sdk = anthropic.Anthropic(base_url=url, api_key="unused", max_retries=0)
    for key in tool_keys():
        assert key in TOOL_KEYS, f"the SDK's ToolParam has a new key {key!r}: add a sample to TOOL_KEYS"
        tool = {**SAMPLE_TOOL, key: TOOL_KEYS[key]}
        sdk.messages.create(model="claude", max_tokens=2000, messages=ASK, tools=[tool])
        sent = scripted.requests[-1][1]["tools"][0]
        assert sent.get(key) == TOOL_KEYS[key] or (key, sent.get(key)) == ("type", None), (key, sent)
        openai_upstream.bodies.clear()
        if key not in TOOL_KEYS_IN_OPENAI_FORM:
            with pytest.raises(anthropic.BadRequestError, match=rf"tools\.0\.{key}"):
                sdk.messages.create(model="gpt", max_tokens=2000, messages=ASK, tools=[tool])
            assert openai_upstream.bodies == []  # refused before any call
            continue
        sdk.messages.create(model="gpt", max_tokens=2000, messages=ASK, tools=[tool])
        function = openai_upstream.last["tools"][0]["function"]
        place = TOOL_KEYS_IN_OPENAI_FORM[key]
        assert place is None or function[place[0]] == place[1], (key, function)
