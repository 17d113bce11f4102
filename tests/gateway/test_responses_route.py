"""`POST /v1/responses`: OpenAI's Responses API on the gateway, driven by the official openai SDK
(`client.responses.create` and its `stream()` helper) against a real gateway on 127.0.0.1, in front of a recording
OpenAI-format upstream and the Anthropic emulator. What reaches the upstream is checked field by field; what is
refused is named as the caller sent it."""

from __future__ import annotations

import base64
import json
import time
from decimal import Decimal

import httpx
import openai
import pydantic
import pytest

from helpers import stand_in_aws_keys
from helpers.openai_samples import (
    RESPONSES_COMPANIONS,
    RESPONSES_GATEWAY_FIELDS,
    RESPONSES_SAMPLES,
    RESPONSES_TOOL,
    responses_fields,
)
from helpers.recording_openai import LOGPROBS, RecordingOpenAI, arguments_for
from helpers.scripted_anthropic import ScriptedAnthropic
from tokenomy.config import parse_config
from tokenomy.emulate.server import ServerThread
from tokenomy.gateway.app import create_app
from tokenomy.ledger.store import open_store

HAIKU = "anthropic.claude-3-haiku-20240307-v1:0"
SONNET = "claude-sonnet-4-5-20250929"
WEATHER = {
    "type": "function",
    "name": "get_weather",
    "description": "Weather in a city",
    "strict": False,
    "parameters": {"type": "object", "properties": {"city": {"type": "string"}}, "required": ["city"]},
}
TIME = {"type": "function", "name": "get_time", "parameters": {"type": "object", "properties": {}}, "strict": None}
ASK = {"role": "user", "content": "Weather and time in Paris?"}
pytestmark = pytest.mark.filterwarnings("ignore:The model .* is deprecated:DeprecationWarning")


class Point(pydantic.BaseModel):
    x: int
    y: int


IMAGE = b"\x89PNG\r\n\x1a\n" + bytes(range(256)) * 3  # every byte value: any re-encoding would show


@pytest.fixture(scope="module")
def served(tmp_path_factory):
    from tokenomy.emulate.anthropic_api import create_app as create_emulator
    from tokenomy.emulate.instant_engine import InstantEngine

    scripted = ScriptedAnthropic()
    ledger = tmp_path_factory.mktemp("responses") / "ledger.duckdb"
    with (
        RecordingOpenAI() as upstream,
        ServerThread(scripted.app) as claude_url,
        ServerThread(create_emulator(engine=InstantEngine())) as thinker_url,
    ):
        config = parse_config(
            {
                "models": {
                    "thinker": {"provider": "anthropic", "model": SONNET, "base_url": thinker_url},
                    "fast": {"provider": "openai", "model": "up-model", "base_url": upstream.url, "price_as": HAIKU},
                    "text-only": {
                        "provider": "openai",
                        "model": "up-text",
                        "base_url": upstream.url,
                        "price_as": HAIKU,
                        "inputs": ["text"],
                    },
                    "claude": {"provider": "anthropic", "model": SONNET, "base_url": claude_url},
                }
            }
        )
        with pytest.MonkeyPatch.context() as env:
            env.setenv("ANTHROPIC_API_KEY", "unused")
            with ServerThread(create_app(config, str(ledger)), lifespan="on") as url:
                yield upstream, scripted, url, ledger


@pytest.fixture
def client(served):
    upstream, scripted, url, _ = served
    upstream.bodies.clear()
    upstream.message_extra = {}
    upstream.top_extra = {}
    scripted.requests.clear()
    scripted.broken = False
    return openai.OpenAI(base_url=url + "/v1", api_key="unused", max_retries=0)


def ledger_rows(ledger, request_id: str) -> list:
    """The call's ledger rows, once the gateway's writer (a second a batch) has written them."""
    deadline = time.monotonic() + 10
    while True:
        rows = [e for e in open_store(ledger).events() if e.request_id == request_id]
        if rows or time.monotonic() > deadline:
            return rows
        time.sleep(0.1)


def next_turn(reply) -> list[dict]:
    """An agent loop's next input: the question, the reply's items as the SDK gives them, one output per call."""
    items = [item.model_dump(exclude_none=True) for item in reply.output]
    outputs = [
        {"type": "function_call_output", "call_id": item.call_id, "output": f"{item.name}: 18C sunny"}
        for item in reply.output
        if item.type == "function_call"
    ]
    return [ASK, *items, *outputs]


def test_text_instructions_and_options_reach_the_upstream_and_usage_comes_back(served, client):
    upstream, _, _, ledger = served
    reply = client.responses.create(
        model="fast",
        input="Hi",
        instructions="Be brief",
        max_output_tokens=20,
        temperature=0.5,
        top_p=0.9,
        metadata={"team": "search"},
        extra_headers={"x-tokenomy-tags": "app=bot"},
    )
    assert reply.output_text == "plain answer" and reply.status == "completed" and reply.model == "fast"
    assert upstream.last == {
        "model": "up-model",
        "messages": [{"role": "system", "content": "Be brief"}, {"role": "user", "content": "Hi"}],
        "max_completion_tokens": 20,
        "temperature": 0.5,
        "top_p": 0.9,
    }
    # The upstream's 40 prompt tokens include 8 cached; 9 output tokens include 3 of reasoning.
    assert (reply.usage.input_tokens, reply.usage.input_tokens_details.cached_tokens) == (40, 8)
    assert (reply.usage.output_tokens, reply.usage.output_tokens_details.reasoning_tokens) == (9, 3)
    assert reply.usage.total_tokens == 49 and reply.metadata == {"team": "search"}
    request_id = reply.id.removeprefix("resp_")
    [row] = ledger_rows(ledger, request_id)
    assert row.outcome == "ok" and row.model == "up-model" and row.route == "fast"
    assert row.tags == {"team": "search", "app": "bot"} and row.cost_usd > 0


def test_a_tool_call_round_trip_whole_and_streamed(client, served):
    upstream = served[0]
    reply = client.responses.create(model="fast", input=[ASK], tools=[WEATHER, TIME], max_output_tokens=50)
    calls = [(o.type, o.call_id, o.name, o.arguments) for o in reply.output]
    assert calls == [
        ("function_call", "call_0", "get_weather", arguments_for("get_weather")),
        ("function_call", "call_1", "get_time", arguments_for("get_time")),
    ]
    assert upstream.last["tools"] == [
        {
            "type": "function",
            "function": {
                "name": "get_weather",
                "description": "Weather in a city",
                "parameters": WEATHER["parameters"],
                "strict": False,
            },
        },
        # strict left out (None): strict in the Responses API, its schema made strict (test_a_function_tool_...)
        {
            "type": "function",
            "function": {
                "name": "get_time",
                "strict": True,
                "parameters": {**TIME["parameters"], "required": [], "additionalProperties": False},
            },
        },
    ]
    final = client.responses.create(model="fast", input=next_turn(reply), tools=[WEATHER, TIME])
    assert final.output_text == "answer after get_time: 18C sunny"
    assert upstream.last["messages"] == [
        ASK,
        {
            "role": "assistant",
            "content": None,
            "tool_calls": [
                {
                    "id": "call_0",
                    "type": "function",
                    "function": {"name": "get_weather", "arguments": arguments_for("get_weather")},
                },
                {
                    "id": "call_1",
                    "type": "function",
                    "function": {"name": "get_time", "arguments": arguments_for("get_time")},
                },
            ],
        },
        {"role": "tool", "tool_call_id": "call_0", "content": "get_weather: 18C sunny"},
        {"role": "tool", "tool_call_id": "call_1", "content": "get_time: 18C sunny"},
    ]

    with client.responses.stream(model="fast", input=[ASK], tools=[WEATHER, TIME]) as stream:
        events = [event.type for event in stream]
        streamed = stream.get_final_response()
    assert events.count("response.function_call_arguments.delta") == 6  # 2 calls x 3 fragments, not one blob
    assert events[:2] == ["response.created", "response.in_progress"] and events[-1] == "response.completed"
    assert [(o.call_id, o.arguments) for o in streamed.output] == [(c[1], c[3]) for c in calls]
    assert upstream.last["stream"] is True
    with client.responses.stream(model="fast", input=next_turn(streamed), tools=[WEATHER, TIME]) as stream:
        text = "".join(e.delta for e in stream if e.type == "response.output_text.delta")
        assert stream.get_final_response().output_text == text == "answer after get_time: 18C sunny"

    client.responses.create(
        model="fast",
        input=[ASK],
        tools=[WEATHER, TIME],
        parallel_tool_calls=False,
        tool_choice={"type": "function", "name": "get_time"},
    )
    assert upstream.last["parallel_tool_calls"] is False
    assert upstream.last["tool_choice"] == {"type": "function", "function": {"name": "get_time"}}


def test_a_claude_call_of_a_tool_without_parameters_streams_the_arguments_its_whole_answer_has(client):
    """Claude's API streams a call with no input as a tool_use block opened with `input: {}` and one empty
    input_json_delta. The streamed function_call's arguments were "", where the answer not streamed (and OpenAI,
    either way) says "{}": an app's json.loads(call.arguments) raised on the stream alone."""
    ask = {"model": "thinker", "input": "What time is it?", "tools": [TIME], "tool_choice": "required"}
    [whole] = client.responses.create(**ask, max_output_tokens=100).output
    with client.responses.stream(**ask, max_output_tokens=100) as stream:
        deltas = "".join(e.delta for e in stream if e.type == "response.function_call_arguments.delta")
        [call] = stream.get_final_response().output
    assert whole.arguments == call.arguments == deltas == "{}"
    chat = openai.OpenAI(base_url=str(client.base_url), api_key="unused", max_retries=0)
    pieces = chat.chat.completions.create(
        model="thinker",
        messages=[{"role": "user", "content": "What time is it?"}],
        tools=[{"type": "function", "function": {"name": "get_time", "parameters": TIME["parameters"]}}],
        tool_choice="required",
        max_tokens=100,
        stream=True,
    )
    streamed = "".join(
        p.choices[0].delta.tool_calls[0].function.arguments or ""
        for p in pieces
        if p.choices and p.choices[0].delta.tool_calls
    )
    assert streamed == "{}"  # chat completions streams it so too


def test_the_response_echoes_the_cache_key_tool_call_cap_and_safety_identifier_it_was_sent(client):
    """A Response echoes the request's settings, as OpenAI's does: `prompt_cache_key`, `max_tool_calls` and
    `safety_identifier` (an OpenAI model's), which the gateway takes, came back null, whole and in the stream's
    response.created and response.completed alike."""
    ask = {
        "model": "thinker",
        "input": "hi",
        "max_output_tokens": 20,
        "prompt_cache_key": "conv-1",
        "max_tool_calls": 3,
    }
    reply = client.responses.create(**ask)
    assert (reply.prompt_cache_key, reply.max_tool_calls) == ("conv-1", 3)
    events = list(client.responses.create(**ask, stream=True))
    echoed = [
        (e.response.status, e.response.prompt_cache_key, e.response.max_tool_calls) for e in events[:: len(events) - 1]
    ]
    assert echoed == [("in_progress", "conv-1", 3), ("completed", "conv-1", 3)]
    assert client.responses.create(model="fast", input="hi", safety_identifier="user-7").safety_identifier == "user-7"


def test_a_function_tool_without_strict_is_strict_as_the_responses_api_reads_it(client, served):
    """The Responses API reads a function tool that leaves out `strict` as strict: true, its schema made strict
    (every object closed, every property required), where chat completions reads it as non-strict. The gateway sent
    it on non-strict, so the model's calls were not held to the schema the caller's API promised; `strict: false`
    stays best-effort, and a schema no strict form holds is refused naming the tool's `strict` and the fix."""
    upstream, scripted = served[0], served[1]
    address = {
        "type": "object",
        "properties": {"street": {"type": "string"}, "zip": {"type": "string"}},
        "required": ["street"],
    }
    tool = {
        "type": "function",
        "name": "ship",
        "parameters": {
            "type": "object",
            "properties": {
                "to": address,
                "tags": {"type": "array", "items": {"type": "string"}},
                "note": {"type": "string"},
            },
            "required": ["to"],
        },
    }
    closed = {
        "type": "object",
        "properties": {"street": {"type": "string"}, "zip": {"type": "string"}},
        "required": ["street", "zip"],
        "additionalProperties": False,
    }
    strict = {
        "type": "object",
        "properties": {
            "to": closed,
            "tags": {"type": "array", "items": {"type": "string"}},
            "note": {"type": "string"},
        },
        "required": ["to", "tags", "note"],
        "additionalProperties": False,
    }
    client.responses.create(model="fast", input="Ship it", tools=[tool], max_output_tokens=50)
    assert upstream.last["tools"] == [
        {"type": "function", "function": {"name": "ship", "parameters": strict, "strict": True}}
    ]
    client.responses.create(model="claude", input="Ship it", tools=[tool], max_output_tokens=50)
    assert scripted.requests[-1][1]["tools"] == [{"name": "ship", "input_schema": strict, "strict": True}]
    client.responses.create(model="fast", input="Ship it", tools=[{**tool, "strict": False}], max_output_tokens=50)
    assert upstream.last["tools"][0]["function"] == {"name": "ship", "parameters": tool["parameters"], "strict": False}
    sent = len(upstream.bodies)
    for parameters, place in (
        (
            {"type": "object", "properties": {"opts": {"type": "object", "additionalProperties": True}}},
            "tools[0].parameters.properties.opts is open to other properties (additionalProperties: true)",
        ),
        (
            {"type": "object", "properties": {}, "additionalProperties": {"type": "string"}},
            'tools[0].parameters is open to other properties (additionalProperties: {"type": "string"})',
        ),
        (
            {"type": "object", "properties": {"meta": {"type": "object"}}},
            "tools[0].parameters.properties.meta is an object of any properties (it declares none)",
        ),
    ):
        with pytest.raises(openai.BadRequestError) as refused:
            client.responses.create(model="fast", input="Ship it", tools=[{**tool, "parameters": parameters}])
        assert refused.value.body["param"] == "tools[0].strict"
        message = refused.value.body["message"]
        assert message.startswith("tools[0].strict: left out, which the Responses API reads as strict: true")
        assert place in message and "send strict: false for best-effort function calling" in message
    assert len(upstream.bodies) == sent


def test_an_image_and_a_file_arrive_byte_for_byte(client, served):
    upstream = served[0]
    image = "data:image/png;base64," + base64.b64encode(IMAGE).decode()
    pdf = base64.b64encode(b"%PDF-1.4 report").decode()
    content = [
        {"type": "input_text", "text": "What is this?"},
        {"type": "input_image", "image_url": image, "detail": "low"},
        {"type": "input_file", "filename": "r.pdf", "file_data": "data:application/pdf;base64," + pdf},
    ]
    client.responses.create(model="fast", input=[{"role": "user", "content": content}])
    sent = upstream.last["messages"][0]["content"]
    assert sent[1] == {"type": "image_url", "image_url": {"url": image, "detail": "low"}}
    assert sent[2]["file"]["file_data"] == "data:application/pdf;base64," + pdf
    with pytest.raises(openai.BadRequestError) as refused:  # a model the config declares text-only
        client.responses.create(model="text-only", input=[{"role": "user", "content": content[:2]}])
    assert refused.value.body["param"] == "input[0].content[1]"
    assert "model `text-only` cannot take an image block (input[0].content[1])" in refused.value.body["message"]


def test_a_file_id_reaches_only_the_api_that_issued_it(client, served):
    """An `input_file`'s file_id is an id of OpenAI's Files API: an OpenAI-format model gets it as sent; Claude got it
    as an Anthropic file id (`source.type: file`), which it is not, and now the request is refused naming it."""
    upstream, scripted = served[0], served[1]
    item = {
        "role": "user",
        "content": [
            {"type": "input_text", "text": "Summarise"},
            {"type": "input_file", "file_id": "file-6F2ksmvXxt4VdoqmHRw6kL"},
        ],
    }
    client.responses.create(model="fast", input=[item], max_output_tokens=20)
    assert upstream.last["messages"][0]["content"][1] == {
        "type": "file",
        "file": {"file_id": "file-6F2ksmvXxt4VdoqmHRw6kL"},
    }
    with pytest.raises(openai.BadRequestError) as refused:
        client.responses.create(model="claude", input=[item], max_output_tokens=20)
    assert refused.value.body["param"] == "input[0].content[1].file_id"
    assert refused.value.body["message"].startswith(
        "model `claude` cannot take a file id of OpenAI's Files API (`input[0].content[1].file_id`), which only that "
        "API's models read: send the file's content instead"
    )
    assert not scripted.requests


def test_structured_output_verbosity_and_logprobs_reach_an_openai_model(client, served):
    upstream = served[0]
    schema = {
        "type": "object",
        "properties": {"x": {"type": "integer"}},
        "required": ["x"],
        "additionalProperties": False,
    }
    reply = client.responses.create(
        model="fast",
        input="A number",
        include=["message.output_text.logprobs"],
        top_logprobs=2,
        text={"format": {"type": "json_schema", "name": "n", "schema": schema, "strict": True}, "verbosity": "low"},
        reasoning={"effort": "low", "summary": "auto"},
        service_tier="flex",
        prompt_cache_key="k1",
    )
    sent = upstream.last
    assert sent["response_format"] == {
        "type": "json_schema",
        "json_schema": {"name": "n", "schema": schema, "strict": True},
    }
    assert (sent["verbosity"], sent["logprobs"], sent["top_logprobs"]) == ("low", True, 2)
    assert (sent["reasoning_effort"], sent["service_tier"], sent["prompt_cache_key"]) == ("low", "flex", "k1")
    assert reply.output[0].content[0].logprobs[0].token == LOGPROBS["content"][0]["token"]


@pytest.mark.parametrize(
    ("change", "param"),
    [
        ({"previous_response_id": "resp_1"}, "previous_response_id"),
        ({"store": True}, "store"),
        ({"tools": [{"type": "web_search"}]}, "tools[0].type"),
        ({"input": [{"type": "item_reference", "id": "msg_1"}]}, "input[0]"),
        (
            {"input": [{"role": "user", "content": [{"type": "input_audio", "input_audio": {}}]}]},
            "input[0].content[0].type",
        ),
        ({"input": [{"role": "user", "content": "hi", "colour": "red"}]}, "input[0].colour"),
        # The Responses API has no cache points (LiteLLM's cache_control is a Chat Completions field): one on a system
        # message in mid-conversation, which Claude's system prompt would take, is refused as any other is.
        (
            {"input": [ASK, {"role": "system", "content": "Be brief.", "cache_control": {"type": "ephemeral"}}]},
            "input[1].cache_control",
        ),
        (
            {"input": [ASK, {"type": "reasoning", "id": "rs_1", "summary": [], "encrypted_content": "gAAAA"}]},
            "input[1].encrypted_content",
        ),
        ({"truncation": "auto"}, "truncation"),
        ({"include": ["file_search_call.results"]}, "include[0]"),
        ({"include": ["reasoning.encrypted_content", ["message.output_text.logprobs"]]}, "include[1]"),
        ({"max_output_tokens": 0}, "max_output_tokens"),
        ({"metadata": {"k": "v" * 513}}, "metadata.k"),
        ({"made_up": 1}, "made_up"),
        # A tag the recorder writes from what the call reported: the caller's stayed on rows that wrote none and passed
        # for it (1-hour cache writes re-price a row in plan savings and the model review).
        ({"metadata": {"cache_write_1h_tokens": "900"}}, "metadata"),
        # ... and the tier it was served at: a caller's `service_tier` tag stayed on a standard call's row and passed for
        # it (a ledger file imported prices a row at its tag's tier; reports group by it).
        ({"metadata": {"service_tier": "flex"}}, "metadata"),
        ({"stream": "false"}, "stream"),  # a string, true to Python: the caller asking for JSON got an event stream
    ],
)
def test_what_the_gateway_cannot_carry_is_a_400_naming_the_field(served, change, param):
    upstream, _, url, _ = served
    before = len(upstream.bodies)
    reply = httpx.post(url + "/v1/responses", json={"model": "fast", "input": "hi", **change}, timeout=30)
    assert reply.status_code == 400, reply.text
    assert reply.json()["error"]["param"] == param and reply.json()["error"]["message"].startswith(param)
    assert len(upstream.bodies) == before  # refused before any call


# Where each field of the Responses request lands in each model's body (None: asks nothing of that model, as
# responses_options says: max_tool_calls caps hosted tools, which are refused; metadata is the ledger's tags; Claude
# caches by prefix without a key). Any other field is refused by name.
SCHEMA_OF_TOOL = RESPONSES_TOOL["parameters"]
IN_CHAT_FORM = {
    "include": ("logprobs", True),
    "instructions": ("messages", [{"role": "system", "content": "Be brief."}, {"role": "user", "content": "hi"}]),
    "max_output_tokens": ("max_completion_tokens", 20),
    "max_tool_calls": None,
    "metadata": None,
    "parallel_tool_calls": ("parallel_tool_calls", False),
    "prompt_cache_key": ("prompt_cache_key", "tenant-1"),
    "prompt_cache_retention": ("prompt_cache_retention", "24h"),
    "reasoning": ("reasoning_effort", "low"),
    "safety_identifier": ("safety_identifier", "user-hash"),
    "service_tier": ("service_tier", "flex"),
    "temperature": ("temperature", 0.5),
    "text": ("verbosity", "low"),
    "tool_choice": ("tool_choice", "required"),
    "tools": (
        "tools",
        [{"type": "function", "function": {"name": "get_weather", "parameters": SCHEMA_OF_TOOL, "strict": True}}],
    ),
    "top_logprobs": ("top_logprobs", 2),
    "top_p": ("top_p", 0.5),
    "user": ("user", "u-1"),
}
IN_CLAUDE_FORM = {
    "instructions": ("system", "Be brief."),
    "max_output_tokens": ("max_tokens", 20),
    "max_tool_calls": None,
    "metadata": None,
    "parallel_tool_calls": ("tool_choice", {"type": "auto", "disable_parallel_tool_use": True}),
    "prompt_cache_key": None,
    "temperature": ("temperature", 0.5),
    "tool_choice": ("tool_choice", {"type": "any"}),
    "tools": ("tools", [{"name": "get_weather", "input_schema": SCHEMA_OF_TOOL, "strict": True}]),
    "top_p": ("top_p", 0.5),
    "user": ("metadata", {"user_id": "u-1"}),
}


@pytest.mark.parametrize("field", responses_fields())
def test_every_field_of_the_sdks_request_is_carried_or_refused_by_name(client, served, field):
    """Each field of the installed openai SDK's ResponseCreateParams reaches an OpenAI-format model and Claude in
    their own fields (IN_CHAT_FORM, IN_CLAUDE_FORM), or is refused naming it before any call. A field a newer SDK
    adds fails here until it gets a sample (helpers/openai_samples.py) and a place."""
    if field in RESPONSES_GATEWAY_FIELDS:
        return
    assert field in RESPONSES_SAMPLES, f"OpenAI's Responses request has a new field {field!r}: add a sample"
    upstream, scripted = served[0], served[1]
    asked = {field: RESPONSES_SAMPLES[field], **RESPONSES_COMPANIONS.get(field, {})}
    for model, places in (("fast", IN_CHAT_FORM), ("claude", IN_CLAUDE_FORM)):
        upstream.bodies.clear()
        scripted.requests.clear()
        if field not in places:
            with pytest.raises(openai.BadRequestError) as refused:
                client.responses.create(model=model, input="hi", **asked)
            assert refused.value.body["param"].startswith(field), (model, refused.value.body)
            assert upstream.bodies == [] and scripted.requests == []  # refused before any call
            continue
        client.responses.create(model=model, input="hi", **asked)
        if places[field] is not None:
            place, value = places[field]
            sent = upstream.last if model == "fast" else scripted.requests[-1][1]
            assert sent[place] == value, (model, sent)


# OpenAI's Responses API has no audio input part (its content parts are input_text, input_image and input_file; OpenAI
# answers `input_audio` with "Invalid value"), while Chat Completions takes it: the 400 names the part and where audio
# goes instead, rather than only listing the parts this route takes.
def test_input_audio_is_refused_naming_chat_completions_as_the_fix(client, served):
    upstream = served[0]
    audio = {"type": "input_audio", "input_audio": {"data": base64.b64encode(b"RIFF").decode(), "format": "wav"}}
    with pytest.raises(openai.BadRequestError) as refused:
        client.responses.create(model="fast", input=[{"role": "user", "content": [audio]}])
    error = refused.value.body
    assert error["param"] == "input[0].content[0].type", error
    assert "input_audio" in error["message"] and "/v1/chat/completions" in error["message"], error
    assert not upstream.bodies  # refused before any call


PDF_DATA = "data:application/pdf;base64," + base64.b64encode(b"%PDF-1.4 report").decode()


# The SDK types these Optional (a null is its unset), or sends the default ("auto"): they ask for nothing, and were
# refused as fields the gateway does not support.
@pytest.mark.parametrize("model", ["fast", "claude"])
@pytest.mark.parametrize(
    "fields",
    [
        {"moderation": None},
        {
            "input": [
                {
                    "role": "user",
                    "content": [{"type": "input_file", "filename": "r.pdf", "file_data": PDF_DATA, "detail": "auto"}],
                }
            ]
        },
        {
            "input": [
                {"role": "user", "content": [{"type": "input_text", "text": "hi", "prompt_cache_breakpoint": None}]}
            ]
        },
        # The standard tier and the default (in-memory) cache retention, which Claude gives with nothing sent: they were
        # refused for Claude as fields it cannot take.
        {"service_tier": "default"},
        {"service_tier": "auto"},
        {"prompt_cache_retention": "in_memory"},
    ],
)
def test_a_null_optional_field_or_a_default_detail_is_not_refused(client, served, model, fields):
    upstream, scripted = served[0], served[1]
    client.responses.create(**{"model": model, "input": "hi", "max_output_tokens": 16, **fields})
    sent = upstream.last if model == "fast" else scripted.requests[-1][1]
    assert "null" not in json.dumps(sent) and "detail" not in json.dumps(sent), sent
    if model == "claude" and fields == {"service_tier": "auto"}:  # Anthropic's own field and default: as sent
        assert sent["service_tier"] == "auto", sent
    elif model == "claude":
        assert not {"service_tier", "prompt_cache_retention"} & set(sent), sent
    else:  # an OpenAI-format model gets them as sent
        asked = {k: v for k, v in fields.items() if k != "input" and v is not None}
        assert {k: sent[k] for k in asked} == asked


@pytest.mark.parametrize(
    "fields", [{"service_tier": "flex"}, {"service_tier": "priority"}, {"prompt_cache_retention": "24h"}]
)
def test_a_tier_or_retention_claude_cannot_give_is_refused_by_name(client, fields):
    with pytest.raises(openai.BadRequestError) as refused:
        client.responses.create(model="claude", input="hi", max_output_tokens=16, **fields)
    assert refused.value.body["param"] == next(iter(fields))


def test_a_files_detail_other_than_auto_is_refused_by_name(served):
    part = {"type": "input_file", "filename": "r.pdf", "file_data": PDF_DATA, "detail": "high"}
    refused = httpx.post(
        served[2] + "/v1/responses", json={"model": "fast", "input": [{"role": "user", "content": [part]}]}, timeout=30
    )
    assert refused.status_code == 400 and refused.json()["error"]["param"] == "input[0].content[0].detail"


def test_openai_only_fields_are_refused_for_claude_by_their_responses_names(client, served):
    with pytest.raises(openai.BadRequestError) as refused:
        client.responses.create(model="claude", input="hi", max_output_tokens=16, text={"verbosity": "low"})
    assert refused.value.body["param"] == "text.verbosity"
    with pytest.raises(openai.BadRequestError) as refused:  # logprobs without `include`: named as sent
        client.responses.create(model="claude", input="hi", max_output_tokens=16, top_logprobs=2)
    assert refused.value.body["param"] == "top_logprobs"
    with pytest.raises(openai.BadRequestError) as refused:  # JSON mode, which Claude lacks: named as text.format
        client.responses.create(
            model="claude", input="hi", max_output_tokens=16, text={"format": {"type": "json_object"}}
        )
    assert refused.value.body["param"] == "text.format" and "response_format" not in refused.value.body["message"]
    # The SDK's structured output reaches Claude as its own (the scripted upstream's answer is no Point: not parsed).
    with pytest.raises(pydantic.ValidationError):
        client.responses.parse(model="claude", input="hi", max_output_tokens=16, text_format=Point)
    assert served[1].requests[-1][1]["output_config"]["format"]["schema"]["required"] == ["x", "y"]


def test_reasoning_the_local_model_cannot_do_is_refused_by_the_field_sent(served):
    url = served[2]
    for sent, param in (
        ({"thinking": {"type": "enabled", "budget_tokens": 512}}, "thinking"),
        ({"reasoning": {"effort": "low"}}, "reasoning.effort"),
    ):
        refused = httpx.post(url + "/v1/responses", json={"model": "local", "input": "hi", **sent}, timeout=30)
        assert refused.status_code == 400 and refused.json()["error"]["param"] == param, refused.text


def test_malformed_requests_are_400s_and_an_unknown_model_a_404(served):
    url = served[2]
    bad = httpx.post(url + "/v1/responses", content=b"{not json", headers={"content-type": "application/json"})
    assert bad.status_code == 400 and "not valid JSON" in bad.json()["error"]["message"]
    assert httpx.post(url + "/v1/responses", json={"input": "hi"}).json()["error"]["param"] == "model"
    missing = httpx.post(url + "/v1/responses", json={"model": "nope", "input": "hi"})
    assert missing.status_code == 404 and missing.json()["error"]["code"] == "model_not_found"
    assert httpx.post(url + "/v1/responses", json={"model": "fast", "input": 3}).json()["error"]["param"] == "input"


def _earlier_call(path: str, arguments: str) -> dict:
    """A request to Claude whose history holds a call of `get_time` with `arguments`, and its result."""
    if path == "/v1/responses":
        return {
            "model": "claude",
            "tools": [TIME],
            "input": [
                ASK,
                {"type": "function_call", "call_id": "c1", "name": "get_time", "arguments": arguments},
                {"type": "function_call_output", "call_id": "c1", "output": "noon"},
            ],
        }
    call = {"id": "c1", "type": "function", "function": {"name": "get_time", "arguments": arguments}}
    return {
        "model": "claude",
        "max_tokens": 5,
        "messages": [
            ASK,
            {"role": "assistant", "tool_calls": [call]},
            {"role": "tool", "tool_call_id": "c1", "content": "noon"},
        ],
        "tools": [{"type": "function", "function": {"name": "get_time", "parameters": {"type": "object"}}}],
    }


@pytest.mark.parametrize("path", ["/v1/responses", "/v1/chat/completions"])
@pytest.mark.parametrize("arguments", ["NaN", "-Infinity", '{"hour": NaN}', '{"hour": 1e400}', "[Infinity]"])
def test_a_tool_calls_arguments_with_nan_or_infinity_are_not_json_and_no_500(served, path, arguments):
    # The stdlib reads NaN, Infinity and 1e400 as floats: they reached the Anthropic SDK in the call's `input`,
    # whose encoder refused them (a 500). They are text that is not JSON, sent as any other: under INVALID_JSON.
    scripted, url = served[1], served[2]
    scripted.requests.clear()
    answer = httpx.post(url + path, json=_earlier_call(path, arguments))
    assert answer.status_code == 200, answer.text
    [[_, sent]] = scripted.requests
    assert sent["messages"][1]["content"] == [
        {"type": "tool_use", "id": "c1", "name": "get_time", "input": {"INVALID_JSON": arguments}}
    ]


def test_claudes_signed_reasoning_goes_back_in_encrypted_content(tmp_path, monkeypatch):
    """The emulator checks the signatures it issued: a reasoning item sent back must carry its thinking whole."""
    from tokenomy.emulate.anthropic_api import create_app as create_emulator

    monkeypatch.setenv("ANTHROPIC_API_KEY", "unused")
    with ServerThread(create_emulator()) as upstream:
        config = parse_config({"models": {"claude": {"provider": "anthropic", "model": SONNET, "base_url": upstream}}})
        with ServerThread(create_app(config, str(tmp_path / "ledger.duckdb")), lifespan="on") as url:
            client = openai.OpenAI(base_url=url + "/v1", api_key="unused", max_retries=0)
            ask = {
                "model": "claude",
                "max_output_tokens": 1100,
                "extra_body": {"thinking": {"type": "enabled", "budget_tokens": 1024}},
            }
            first = [{"role": "user", "content": "Name one colour, in one word."}]
            whole = client.responses.create(input=first, **ask)
            with client.responses.stream(input=first, **ask) as stream:
                shown = "".join(e.text for e in stream if e.type == "response.reasoning_text.done")
                streamed = stream.get_final_response()
            for reply in (whole, streamed):
                reasoning = reply.output[0]
                assert reasoning.type == "reasoning" and reasoning.encrypted_content.startswith("tokenomy.signed:")
                assert reasoning.content[0].text and reply.output[1].type == "message"
                turn = [
                    *first,
                    *[o.model_dump(exclude_none=True) for o in reply.output],
                    {"role": "user", "content": "And another?"},
                ]
                assert client.responses.create(input=turn, **ask).output_text
            assert shown == streamed.output[0].content[0].text
            forged = whole.output[0].model_dump(exclude_none=True)
            forged["content"][0]["text"] += " (edited)"
            with pytest.raises(openai.BadRequestError, match="signature"):
                client.responses.create(
                    input=[
                        *first,
                        forged,
                        whole.output[1].model_dump(exclude_none=True),
                        {"role": "user", "content": "?"},
                    ],
                    **ask,
                )


def test_a_fault_inside_a_stream_ends_it_with_response_failed(client, served):
    scripted = served[1]
    scripted.broken = True
    with client.responses.stream(model="claude", input="hi", max_output_tokens=16) as stream:
        events = [event for event in stream]
    assert events[-1].type == "response.failed" and events[-1].response.status == "failed"
    assert events[-1].response.error.message


def test_an_exhausted_budget_is_a_429_the_sdk_does_not_retry(tmp_path):
    from tokenomy.gateway.keys import KeyStore

    ledger = tmp_path / "ledger.duckdb"
    secret, _ = KeyStore(open_store(ledger)).create(budget_usd=Decimal("0.000001"), period="month", name="agent")
    posts: list[str] = []
    with RecordingOpenAI() as upstream:
        config = parse_config(
            {
                "auth": True,
                "models": {"fast": {"provider": "openai", "model": "up", "base_url": upstream.url, "price_as": HAIKU}},
            }
        )
        app = create_app(config, str(ledger))

        async def counting(scope, receive, send):  # every request the SDK sends, retries included
            if scope["type"] == "http" and scope["method"] == "POST":
                posts.append(scope["path"])
            await app(scope, receive, send)

        with ServerThread(counting, lifespan="on") as url:
            with pytest.raises(openai.RateLimitError) as refused:  # the SDK's default retries
                openai.OpenAI(base_url=url + "/v1", api_key=secret).responses.create(
                    model="fast", input="hi", max_output_tokens=500
                )
    assert refused.value.body["code"] == "budget_exceeded" and posts == ["/v1/responses"]
    assert upstream.bodies == []


def test_the_answer_is_json_the_sdk_reads_whole(served):
    """Every field the Response object has in OpenAI's answer is there (the SDK reads missing ones as None)."""
    url = served[2]
    body = httpx.post(url + "/v1/responses", json={"model": "fast", "input": "hi"}).json()
    for key in (
        "id",
        "object",
        "created_at",
        "status",
        "model",
        "output",
        "usage",
        "parallel_tool_calls",
        "tool_choice",
        "tools",
        "text",
        "store",
    ):
        assert key in body, key
    assert body["object"] == "response" and body["store"] is False
    assert json.loads(json.dumps(body["tokenomy"]))["provider"] == "openai"


def test_the_paths_of_stored_responses_say_the_gateway_keeps_none(served):
    url = served[2]
    for method, path in (
        ("GET", "/v1/responses/resp_1"),
        ("DELETE", "/v1/responses/resp_1"),
        ("POST", "/v1/responses/resp_1/cancel"),
    ):
        reply = httpx.request(method, url + path, json={"model": "fast", "input": "hi"} if method == "POST" else None)
        assert reply.status_code == 404 and "keeps no responses" in reply.json()["error"]["message"], path


def test_a_gemini_tool_loop_with_thinking_sends_the_signatures_back(tmp_path, monkeypatch):
    """Gemini (its emulator checks them) wants each thought signature back on the part it came with: the reasoning
    item before the call carries it in encrypted_content, whole and streamed, and the next turn is accepted."""
    from tokenomy.emulate.gemini_api import create_app as create_gemini
    from tokenomy.emulate.instant_engine import InstantEngine

    for key in ("GEMINI_API_KEY", "GOOGLE_API_KEY"):
        monkeypatch.delenv(key, raising=False)
    with ServerThread(create_gemini(engine=InstantEngine())) as upstream:
        config = parse_config(
            {"models": {"g": {"provider": "gemini", "model": "gemini-2.5-flash", "base_url": upstream}}}
        )
        with ServerThread(create_app(config, str(tmp_path / "ledger.duckdb")), lifespan="on") as url:
            client = openai.OpenAI(base_url=url + "/v1", api_key="unused", max_retries=0)
            ask = {
                "model": "g",
                "max_output_tokens": 256,
                "tools": [WEATHER],
                "extra_body": {"thinking": {"type": "enabled", "budget_tokens": 128}},
            }
            first = [{"role": "user", "content": "Weather in Paris?"}]
            whole = client.responses.create(input=first, tool_choice="required", **ask)
            with client.responses.stream(input=first, tool_choice="required", **ask) as stream:
                streamed = stream.get_final_response()
            for reply in (whole, streamed):
                kinds = [o.type for o in reply.output]
                assert kinds[-1] == "function_call" and "reasoning" in kinds, kinds
                signed = [o for o in reply.output if o.type == "reasoning" and o.encrypted_content]
                assert signed and all(o.encrypted_content.startswith("tokenomy.signed:") for o in signed)
                turn = [
                    *first,
                    *[o.model_dump(exclude_none=True) for o in reply.output],
                    {"type": "function_call_output", "call_id": reply.output[-1].call_id, "output": "18C sunny"},
                ]
                assert "18C" in client.responses.create(input=turn, **ask).output_text
            unsigned = [o.model_dump(exclude_none=True, exclude={"encrypted_content"}) for o in whole.output]
            with pytest.raises(openai.BadRequestError):
                client.responses.create(
                    input=[
                        *first,
                        *unsigned,
                        {"type": "function_call_output", "call_id": whole.output[-1].call_id, "output": "18C sunny"},
                    ],
                    **ask,
                )


def test_what_bedrocks_mapping_refuses_is_named_where_the_caller_sent_it(tmp_path, monkeypatch):
    """Bedrock takes images as bytes only: its mapping refuses one by URL at call time, by the content model's
    place (`messages[0].content[1]`), which the caller never sent; the 400 names `input[1].content[1]`."""
    from tokenomy.emulate.bedrock_runtime import create_app as create_bedrock
    from tokenomy.emulate.instant_engine import InstantEngine

    stand_in_aws_keys(monkeypatch)
    ask = [
        {"role": "developer", "content": "Be brief"},
        {
            "role": "user",
            "content": [
                {"type": "input_text", "text": "What is this?"},
                {"type": "input_image", "image_url": "https://example.com/a.png"},
            ],
        },
    ]
    with ServerThread(create_bedrock(engine=InstantEngine())) as bedrock:
        config = parse_config(
            {
                "models": {
                    "haiku": {"provider": "bedrock", "region": "us-east-1", "endpoint_url": bedrock, "model": HAIKU}
                }
            }
        )
        with ServerThread(create_app(config, str(tmp_path / "ledger.duckdb")), lifespan="on") as url:
            client = openai.OpenAI(base_url=url + "/v1", api_key="unused", max_retries=0)
            for stream in (False, True):
                with pytest.raises(openai.BadRequestError) as refused:
                    client.responses.create(model="haiku", input=ask, max_output_tokens=16, stream=stream)
                assert refused.value.body["param"] == "input[1].content[1]"
                assert refused.value.body["message"].startswith("input[1].content[1]: Bedrock Converse")
            # JSON with no schema: the remedy named OpenAI's Chat Completions field (a json_schema response format)
            with pytest.raises(openai.BadRequestError) as refused:
                client.responses.create(model="haiku", input="hi", text={"format": {"type": "json_object"}})
            assert refused.value.body["param"] == "text.format"
            assert "`text.format.schema`" in refused.value.body["message"], refused.value.body["message"]
            assert "response_format" not in refused.value.body["message"], refused.value.body["message"]


def test_every_streamed_event_is_the_sdks_event_type_whole(served):
    """The SDK builds events without validating them: a field its types require and the gateway leaves out
    (output_text.done's logprobs) is only an AttributeError away in a client that reads it. Each event is checked
    against the SDK's own types; sequence numbers count from 0, as OpenAI's; the text's logprobs add up."""
    from pydantic import TypeAdapter

    url = served[2]
    event_type = TypeAdapter(openai.types.responses.ResponseStreamEvent)
    body = {"model": "fast", "input": "hi", "stream": True, "include": ["message.output_text.logprobs"]}
    with httpx.stream("POST", url + "/v1/responses", json=body, timeout=30) as reply:
        events = [json.loads(line[6:]) for line in reply.iter_lines() if line.startswith("data: ")]
    for event in events:
        event_type.validate_python(event)
    assert [e["sequence_number"] for e in events] == list(range(len(events)))
    deltas = [p for e in events if e["type"] == "response.output_text.delta" for p in e["logprobs"]]
    [done] = [e for e in events if e["type"] == "response.output_text.done"]
    final = events[-1]["response"]["output"][0]["content"][0]
    assert len(deltas) == 2 and done["logprobs"] == final["logprobs"] == deltas


def test_a_stream_that_fails_before_its_first_event_names_its_ledger_rows(tmp_path):
    """The error of a stream the upstream refused carries x-request-id (the SDK's `request_id`), as a whole
    answer's does: the caller finds the failed attempt in the ledger."""
    from helpers.scripted_openai import ScriptedOpenAI

    upstream = ScriptedOpenAI([(400, {}, "context_length_exceeded")])
    ledger = tmp_path / "ledger.duckdb"
    config = parse_config(
        {"models": {"fast": {"provider": "openai", "model": "up", "base_url": upstream.url, "price_as": HAIKU}}}
    )
    try:
        with ServerThread(create_app(config, str(ledger)), lifespan="on") as url:
            client = openai.OpenAI(base_url=url + "/v1", api_key="unused", max_retries=0)
            with pytest.raises(openai.BadRequestError) as refused:
                client.responses.create(model="fast", input="hi", max_output_tokens=16, stream=True)
            assert refused.value.body["code"] == "context_length_exceeded"
            [row] = ledger_rows(ledger, refused.value.request_id)
            assert row.outcome == "client_error" and row.route == "fast"
    finally:
        upstream.close()


def test_an_answer_cut_by_its_cap_is_incomplete_and_so_is_its_last_item(client, served):
    """As OpenAI marks it: the response and the message the cap stopped are `incomplete`, whole and streamed (the
    stream ends with response.incomplete, its output_item.done saying so too)."""
    upstream = served[0]
    upstream.finish_reason = "length"
    try:
        whole = client.responses.create(model="fast", input="hi", max_output_tokens=5)
        with client.responses.stream(model="fast", input="hi", max_output_tokens=5) as stream:
            events = list(stream)
    finally:
        upstream.finish_reason = None
    assert (whole.status, whole.incomplete_details.reason) == ("incomplete", "max_output_tokens")
    assert whole.output[0].status == "incomplete"
    [done] = [e for e in events if e.type == "response.output_item.done"]
    assert events[-1].type == "response.incomplete" and events[-1].response.output[0].status == "incomplete"
    assert done.item.status == "incomplete" and events[-1].response.incomplete_details.reason == "max_output_tokens"


def test_a_field_inside_text_format_that_gemini_refuses_is_named_as_sent(tmp_path, monkeypatch):
    from tokenomy.emulate.gemini_api import create_app as create_gemini
    from tokenomy.emulate.instant_engine import InstantEngine

    for key in ("GEMINI_API_KEY", "GOOGLE_API_KEY"):
        monkeypatch.delenv(key, raising=False)
    with ServerThread(create_gemini(engine=InstantEngine())) as upstream:
        config = parse_config(
            {"models": {"g": {"provider": "gemini", "model": "gemini-2.5-flash", "base_url": upstream}}}
        )
        with ServerThread(create_app(config, str(tmp_path / "ledger.duckdb")), lifespan="on") as url:
            client = openai.OpenAI(base_url=url + "/v1", api_key="unused", max_retries=0)
            schema = Point.model_json_schema()
            assert client.responses.parse(model="g", input="A point", text_format=Point).output_parsed
            with pytest.raises(openai.BadRequestError) as refused:
                client.responses.create(
                    model="g",
                    input="A point",
                    text={"format": {"type": "json_schema", "name": "p", "schema": schema, "description": "a point"}},
                )
    assert refused.value.body["param"] == "text.format.description"
    assert refused.value.body["message"].startswith("text.format.description: Gemini")


def test_the_older_generate_summary_asks_for_summaries_as_summary_does(client):
    """`reasoning.generate_summary` is accepted, so it is honoured: the reasoning items carry their summary."""
    ask = {
        "model": "thinker",
        "input": "Name one colour.",
        "max_output_tokens": 1100,
        "reasoning": {"generate_summary": "concise"},
        "extra_body": {"thinking": {"type": "enabled", "budget_tokens": 1024}},
    }
    whole = client.responses.create(**ask)
    with client.responses.stream(**ask) as stream:
        streamed = stream.get_final_response()
    for reply in (whole, streamed):
        reasoning = reply.output[0]
        assert reasoning.type == "reasoning" and reasoning.summary[0].text == reasoning.content[0].text


def test_a_search_models_citations_come_back_whole_and_streamed(client, served):
    """A streamed answer carries the url citations a whole one does (annotation.added, then on the text part)."""
    cited = {"url": "https://example.com/paris", "title": "Paris", "start_index": 0, "end_index": 5}
    served[0].message_extra = {"annotations": [{"type": "url_citation", "url_citation": cited}]}
    whole = client.responses.create(model="fast", input="Weather in Paris?")
    with client.responses.stream(model="fast", input="Weather in Paris?") as stream:
        added = [e for e in stream if e.type == "response.output_text.annotation.added"]
        streamed = stream.get_final_response()
    for reply in (whole, streamed):
        assert [a.model_dump() for a in reply.output[0].content[0].annotations] == [{"type": "url_citation", **cited}]
    assert [(e.annotation_index, e.content_index, e.annotation.url) for e in added] == [(0, 0, cited["url"])]


def test_the_tier_that_served_the_call_comes_back_in_service_tier_whole_and_streamed(client, served):
    """OpenAI's Response says the tier that processed it (`service_tier`: a flex request may be served at another);
    chat completions passed on the upstream's word, the Responses API answered None. The tier the upstream reports
    comes back, whole and streamed; with no word from it, the tier asked for, as the Response echoes the request."""
    upstream, ledger = served[0], served[3]
    upstream.top_extra = {"service_tier": "default"}  # asked flex, served at the standard tier
    whole = client.responses.create(model="fast", input="hi", max_output_tokens=16, service_tier="flex")
    with client.responses.stream(model="fast", input="hi", max_output_tokens=16, service_tier="flex") as stream:
        streamed = stream.get_final_response()
    assert (whole.service_tier, streamed.service_tier) == ("default", "default")
    [row] = ledger_rows(ledger, whole.id.removeprefix("resp_"))
    assert "service_tier" not in row.tags  # priced at the tier that served it, as the answer says
    upstream.top_extra = {}
    assert client.responses.create(model="fast", input="hi", service_tier="priority").service_tier == "priority"
    assert client.responses.create(model="fast", input="hi").service_tier is None


@pytest.mark.parametrize(
    ("sampling", "said"),
    [({"temperature": 0.2}, "takes only temperature 1"), ({"top_p": 0.5}, "takes a top_p only from 0.95 to 1")],
)
def test_sampling_claude_refuses_while_it_thinks_is_named_before_any_call(client, served, sampling, said):
    """With thinking on, Claude's API takes no temperature but 1 and a top_p only from 0.95: the call went out and
    came back as Anthropic's 400; it is refused before any call, naming the field as sent and `thinking` (a fallback
    that can take it is tried instead), and without thinking it is sent as asked."""
    scripted = served[1]
    thinking = {"thinking": {"type": "enabled", "budget_tokens": 1024}}
    with pytest.raises(openai.BadRequestError) as refused:
        client.responses.create(model="claude", input="hi", max_output_tokens=2000, extra_body=thinking, **sampling)
    assert refused.value.body["param"] == next(iter(sampling)), refused.value.body
    assert said in refused.value.body["message"] and "`thinking`" in refused.value.body["message"]
    assert not scripted.requests
    client.responses.create(model="claude", input="hi", max_output_tokens=2000, extra_body=thinking, temperature=1)
    client.responses.create(model="claude", input="hi", max_output_tokens=2000, **sampling)  # no thinking: as sent
    [(_, with_thinking), (_, without)] = scripted.requests
    assert with_thinking["temperature"] == 1 and without == {**without, **sampling}


def test_a_claude_refusal_of_a_format_description_is_named_as_the_responses_caller_sent_it():
    # Claude's mapping names the json_schema's description (`response_format.json_schema.description`, OpenAI's
    # place); a Responses caller sends it at text.format.description, not inside a json_schema or the schema.
    from tokenomy.gateway.responses_ingress import caller_param

    assert caller_param([], "response_format.json_schema.description") == "text.format.description"
    assert caller_param([], "response_format.json_schema") == "text.format.schema"
    assert caller_param([], "response_format") == "text.format"
