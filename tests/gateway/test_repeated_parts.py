"""What an agent sends again with every request (its tools; earlier turns' images) is read once, not again each
time, and reads the same: shared where it is the same, read anew where it changed, refused every time it is wrong."""

from __future__ import annotations

import base64
from dataclasses import replace

import orjson
import pytest

from tokenomy.caching.placement import estimate_input_tokens
from tokenomy.config import RouteConfig
from tokenomy.gateway import openai_images
from tokenomy.gateway.openai_ingress import to_chat_request
from tokenomy.gateway.openai_shapes import RequestError
from tokenomy.gateway.schemas import ChatCompletionRequest
from tokenomy.ledger.fingerprints import fingerprints, tools_json_of
from tokenomy.messages import ONE_HOUR
from tokenomy.providers import openai_wire
from tokenomy.request_options import ToolSpec

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


def chat_request(**fields):
    body = ChatCompletionRequest.model_validate({"model": "gpt-4o", "messages": [USER], **fields})
    return to_chat_request(body, {}, None, RouteConfig())


def test_the_same_tools_sent_again_are_the_same_tool_specs():
    first = chat_request(tools=[WEATHER, TIME]).tools
    again = chat_request(tools=[WEATHER, TIME]).tools
    assert first == [
        ToolSpec("get_weather", "Weather in a city", WEATHER["function"]["parameters"]),
        ToolSpec("get_time", None, {"type": "object", "properties": {}}),
    ]
    assert all(a is b for a, b in zip(first, again, strict=True))
    assert first is not again  # each request has its own list


def test_tools_that_changed_are_read_anew():
    first = chat_request(tools=[WEATHER, TIME]).tools
    described = {"type": "function", "function": {**TIME["function"], "description": "Local time"}}
    changed = chat_request(tools=[WEATHER, described]).tools
    assert changed[1].description == "Local time" and first[1].description is None
    reordered = chat_request(tools=[TIME, WEATHER]).tools
    assert [t.name for t in reordered] == ["get_time", "get_weather"]


def test_the_tool_lists_cache_point_is_read_with_it():
    cached = {**TIME, "cache_control": {"type": "ephemeral", "ttl": "1h"}}
    assert chat_request(tools=[WEATHER, cached]).tools_cache_point == ONE_HOUR
    assert chat_request(tools=[WEATHER, cached]).tools_cache_point == ONE_HOUR
    assert chat_request(tools=[WEATHER, TIME]).tools_cache_point is False


def test_a_wrong_tool_list_is_refused_each_time_it_comes():
    bad = {"type": "function", "function": {**TIME["function"], "color": "red"}}
    for _ in range(2):
        with pytest.raises(RequestError) as refused:
            chat_request(tools=[WEATHER, bad])
        assert refused.value.param == "tools[1].function.color"
    early = {**WEATHER, "cache_control": {"type": "ephemeral"}}
    for _ in range(2):
        with pytest.raises(RequestError) as refused:
            chat_request(tools=[early, TIME])
        assert refused.value.param == "tools[0].cache_control"


def test_tools_past_64_bit_integers_are_still_read():
    big = {
        "type": "function",
        "function": {
            "name": "count",
            "parameters": {"type": "object", "properties": {"n": {"type": "integer", "maximum": 2**70}}},
        },
    }
    for _ in range(2):
        assert chat_request(tools=[big]).tools[0].input_schema["properties"]["n"]["maximum"] == 2**70


def test_a_shared_tools_forms_are_made_once_and_read_as_before():
    first, again = chat_request(tools=[WEATHER, TIME]), chat_request(tools=[WEATHER, TIME])
    sent = openai_wire.request_body(first)["tools"]
    assert sent == [WEATHER, TIME]  # as the caller sent them
    assert all(a is b for a, b in zip(sent, openai_wire.request_body(again)["tools"], strict=True))
    text = tools_json_of(first.tools)
    assert text == orjson.dumps([t.to_dict() for t in first.tools], option=orjson.OPT_SORT_KEYS).decode()
    assert text is not tools_json_of(again.tools) and text == tools_json_of(again.tools)
    assert first.tools[0].derived is not None and "ledger_json" in first.tools[0].derived
    schema_chars = len(orjson.dumps(WEATHER["function"]["parameters"]))
    assert (
        estimate_input_tokens(first)
        == estimate_input_tokens(again)
        == (
            len(USER["content"])
            + len("get_weather")
            + len("Weather in a city")
            + schema_chars
            + len("get_time")
            + len('{"type":"object","properties":{}}')
            + 3
        )
        // 4
    )


def test_a_changed_copy_of_a_tool_has_forms_of_its_own():
    tool = chat_request(tools=[WEATHER]).tools[0]
    openai_wire.request_body(chat_request(tools=[WEATHER]))
    renamed = replace(tool, name="get_forecast")
    assert renamed.derived is None and renamed == ToolSpec("get_forecast", tool.description, tool.input_schema)
    request = chat_request(tools=[WEATHER])
    request.tools = [renamed]
    assert openai_wire.request_body(request)["tools"][0]["function"]["name"] == "get_forecast"
    assert '"name":"get_forecast"' in tools_json_of(request.tools)


def fresh_fingerprints(request):
    """The fingerprints of `request` made from tools no request shared before (nothing kept on them)."""
    return fingerprints(replace(request, tools=[replace(tool) for tool in request.tools]))


def test_the_prefix_hash_of_shared_tools_is_kept_and_the_same_as_made_anew():
    first, again = chat_request(tools=[WEATHER, TIME]), chat_request(tools=[WEATHER, TIME])
    assert fingerprints(first) == fingerprints(again) == fresh_fingerprints(first)
    assert "ledger_prefix" in first.tools[0].derived
    alone = chat_request(tools=[WEATHER, TIME])
    alone.tools = alone.tools[:1]  # its first tool is the same ToolSpec, the list another
    assert fingerprints(alone) == fresh_fingerprints(alone) != fingerprints(first)
    assert fingerprints(first) == fresh_fingerprints(first)


def test_a_prefix_hash_kept_is_found_by_the_tools_themselves_not_equal_ones():
    # 1 and 1.0 are equal, and written out differently: a kept hash found by equality would be another tool list's.
    request = chat_request(tools=[WEATHER])
    schema = {"type": "object", "properties": {"n": {"type": "integer", "maximum": 1}}}
    request.tools = [ToolSpec("count", None, schema)]
    as_int = fingerprints(request)
    floated = ToolSpec("count", None, {"type": "object", "properties": {"n": {"type": "integer", "maximum": 1.0}}})
    assert floated == request.tools[0]
    request.tools = [floated]
    assert fingerprints(request) == fresh_fingerprints(request) and fingerprints(request)[1] != as_int[1]


def test_a_kept_prefix_hash_makes_no_reference_cycle():
    # It kept the whole tool list on the first tool, itself included: each request whose tools are not shared
    # (ToolSpecs made for it alone) was then freed by the cyclic collector only.
    import gc

    def alive() -> list:
        return [o for o in gc.get_objects() if type(o) is ToolSpec and o.name in ("cycle-one", "cycle-two")]

    gc.collect()
    gc.disable()
    try:
        request = chat_request(tools=[WEATHER])
        request.tools = [ToolSpec("cycle-one", None, {"type": "object"}), ToolSpec("cycle-two", None, {})]
        fingerprints(request)
        assert len(alive()) == 2
        del request
        assert alive() == []
    finally:
        gc.enable()


def image_turn(payload: str) -> dict:
    image = {"type": "image_url", "image_url": {"url": f"data:image/png;base64,{payload}"}}
    return {"role": "user", "content": [{"type": "text", "text": "What is this?"}, image]}


def test_an_image_sent_again_is_found_valid_without_checking_it_again(monkeypatch):
    payload = base64.b64encode(b"\x89PNG\r\n\x1a\n" + bytes(range(256)) * 4).decode()
    assert chat_request(messages=[image_turn(payload)]).messages[0].content[1].base64 == payload
    monkeypatch.setattr(openai_images, "_BASE64_ALPHABET", b"")  # any payload checked now would be refused
    again = chat_request(messages=[image_turn(payload[:-4] + payload[-4:])])  # an equal text, not the same object
    assert again.messages[0].content[1].base64 == payload
    with pytest.raises(RequestError, match="not valid base64"):
        chat_request(messages=[image_turn(base64.b64encode(b"another image").decode())])


def test_a_payload_that_is_not_base64_is_refused_each_time_it_comes():
    for _ in range(2):
        with pytest.raises(RequestError, match="not valid base64") as refused:
            chat_request(messages=[image_turn("iVBORw0KGgo*")])
        assert refused.value.param == "messages[0].content[1].image_url.url"


def test_the_payloads_kept_are_bounded(monkeypatch):
    monkeypatch.setattr(openai_images, "_VALID", {})
    monkeypatch.setattr(openai_images, "_valid_chars", 0)
    monkeypatch.setattr(openai_images, "VALID_KEPT_CHARS", 100)
    monkeypatch.setattr(openai_images, "VALID_KEPT_ONE", 40)
    payloads = [base64.b64encode(bytes([n]) * 27).decode() for n in range(5)]  # 36 characters each
    for payload in payloads:
        assert openai_images.valid_base64(payload)
    assert list(openai_images._VALID.values()) == payloads[-2:] and openai_images._valid_chars == 72
    long = base64.b64encode(bytes(60)).decode()
    assert openai_images.valid_base64(long) and long not in openai_images._VALID.values()


def test_a_payload_kept_is_only_found_by_an_equal_one():
    payload = base64.b64encode(bytes(range(256)) * 2).decode()
    assert openai_images.valid_base64(payload)
    # The same length, middle and end as the payload kept, another beginning: checked, not taken for it.
    assert not openai_images.valid_base64("*" + payload[1:])
    other = "A" + payload[1:]
    assert openai_images.valid_base64(other) and openai_images.valid_base64(payload)


CALL = {"id": "call_1", "type": "function", "function": {"name": "get_weather", "arguments": '{"city": "Paris"}'}}


@pytest.mark.parametrize(
    "call, param",
    [
        ({**CALL, "type": "custom"}, "messages[1].tool_calls[0].function"),
        ({**CALL, "type": None}, "messages[1].tool_calls[0]"),
        ({**CALL, "id": 7}, "messages[1].tool_calls[0].id"),
        ({**CALL, "function": {"name": "", "arguments": "{}"}}, "messages[1].tool_calls[0]"),
        (
            {**CALL, "function": {"name": "f", "arguments": {"city": "Paris"}}},
            "messages[1].tool_calls[0].function.arguments",
        ),
        (
            {**CALL, "function": {"name": "f", "arguments": "{}", "extra": 1}},
            "messages[1].tool_calls[0].function.extra",
        ),
        ({**CALL, "extra": 1}, "messages[1].tool_calls[0].extra"),
    ],
)
def test_a_tool_call_of_another_shape_is_refused_where_it_is(call, param):
    with pytest.raises(RequestError) as refused:
        chat_request(messages=[USER, {"role": "assistant", "tool_calls": [call]}])
    assert refused.value.param == param


def test_tool_calls_are_read_as_sent():
    calls = [
        CALL,
        {**CALL, "id": "", "function": {"name": "f", "arguments": ""}},
        {**CALL, "function": {"name": "f", "arguments": "[1, 2]"}},
        {**CALL, "function": {"name": "f", "arguments": "not json"}},
        {**CALL, "index": 0, "id": None},
    ]
    blocks = chat_request(messages=[USER, {"role": "assistant", "tool_calls": calls}]).messages[1].content
    assert [(b.id, b.name, b.input, b.arguments) for b in blocks] == [
        ("call_1", "get_weather", {"city": "Paris"}, '{"city": "Paris"}'),
        ("", "f", {}, ""),
        ("call_1", "f", {"value": [1, 2]}, "[1, 2]"),
        ("call_1", "f", {"INVALID_JSON": "not json"}, "not json"),
        ("", "get_weather", {"city": "Paris"}, '{"city": "Paris"}'),
    ]


def test_an_image_part_of_the_usual_shape_is_sent_to_an_openai_upstream_as_it_came():
    payload = base64.b64encode(b"\x89PNG\r\n\x1a\n" + bytes(range(256))).decode()
    part = {"type": "image_url", "image_url": {"url": f"data:image/png;base64,{payload}", "detail": "low"}}
    body = ChatCompletionRequest.model_validate(
        {
            "model": "gpt-4o",
            "messages": [{"role": "user", "content": [{"type": "text", "text": "What is this?"}, part]}],
        }
    )
    request = to_chat_request(body, {}, None, RouteConfig())
    image = request.messages[0].content[1]
    assert (image.media_type, image.base64, image.detail) == ("image/png", payload, "low")
    sent = openai_wire.request_body(request)["messages"][0]["content"][1]
    assert sent is body.messages[0].content[1] and sent == part  # the caller's own part, not built again
    changed = replace(image, detail="high")  # a copy with another field is built anew
    assert changed.openai_part is None
    request.messages[0].content[1] = changed
    assert openai_wire.request_body(request)["messages"][0]["content"][1] == {
        "type": "image_url",
        "image_url": {"url": f"data:image/png;base64,{payload}", "detail": "high"},
    }


@pytest.mark.parametrize(
    "part",
    [
        {"type": "image_url", "image_url": {"url": "https://example.com/a.png", "detail": None}},
        {
            "type": "image_url",
            "image_url": {"url": "https://example.com/a.png"},
            "cache_control": {"type": "ephemeral"},
        },
    ],
)
def test_an_image_part_with_more_than_an_upstream_takes_is_built_for_it(part):
    body = ChatCompletionRequest.model_validate({"model": "gpt-4o", "messages": [{"role": "user", "content": [part]}]})
    request = to_chat_request(body, {}, None, RouteConfig())
    assert request.messages[0].content[0].openai_part is None
    sent = openai_wire.request_body(request)["messages"][0]["content"][0]
    assert sent == {"type": "image_url", "image_url": {"url": "https://example.com/a.png"}}


def test_a_data_url_without_its_media_type_is_sent_with_the_one_the_wire_names():
    # "data:;base64,..." was kept as the caller's part and sent so, where it had been sent as image/png before
    # the caller's part was kept; a data URL without its media type is built again, as it was.
    payload = base64.b64encode(b"\x89PNG\r\n\x1a\n").decode()
    part = {"type": "image_url", "image_url": {"url": f"data:;base64,{payload}"}}
    body = ChatCompletionRequest.model_validate({"model": "gpt-4o", "messages": [{"role": "user", "content": [part]}]})
    request = to_chat_request(body, {}, None, RouteConfig())
    assert request.messages[0].content[0].openai_part is None
    sent = openai_wire.request_body(request)["messages"][0]["content"][0]
    assert sent == {"type": "image_url", "image_url": {"url": f"data:image/png;base64,{payload}"}}
