"""The embedded local model with tools and JSON output, through the gateway and the official openai SDK.

A forced tool and a JSON Schema response format are answered by grammar-constrained generation, so
even the 135M model's output validates against the schema.
"""

from __future__ import annotations

import json
import time

import jsonschema
import openai
import pytest

from tokenomy.config import parse_config
from tokenomy.emulate.server import ServerThread
from tokenomy.gateway.app import create_app
from tokenomy.ledger.store import open_store
from tokenomy.messages import ChatRequest, Message, TextBlock, ToolResultBlock, ToolUseBlock
from tokenomy.providers.local import LocalProvider
from tokenomy.request_options import ToolSpec

pytestmark = pytest.mark.slow

BOOKING = {
    "type": "object",
    "additionalProperties": False,
    "required": ["city", "nights", "room"],
    "properties": {
        "city": {"type": "string", "enum": ["Paris", "Rome", "Oslo"]},
        "nights": {"type": "integer", "minimum": 1, "maximum": 9},
        "room": {"type": "string", "enum": ["single", "double"]},
    },
}
TOOLS = [
    {"type": "function", "function": {"name": "book_hotel", "description": "Book a hotel room", "parameters": BOOKING}},
    {"type": "function", "function": {"name": "get_time", "parameters": {"type": "object", "properties": {}}}},
]
ASK = [{"role": "user", "content": "Book me a double room in Rome for 3 nights."}]


@pytest.fixture
def client(ledger_path):
    with ServerThread(create_app(parse_config({}), str(ledger_path)), lifespan="on") as url:
        yield openai.OpenAI(base_url=url + "/v1", api_key="unused", max_retries=0)


def test_a_forced_tool_is_answered_with_arguments_valid_against_its_schema(client, ledger_path):
    forced = {"type": "function", "function": {"name": "book_hotel"}}
    reply = client.chat.completions.create(model="local", messages=ASK, tools=TOOLS, tool_choice=forced, max_tokens=60)
    choice = reply.choices[0]
    assert choice.finish_reason == "tool_calls" and len(choice.message.tool_calls) == 1
    call = choice.message.tool_calls[0]
    assert call.function.name == "book_hotel" and call.id.startswith("call_")
    jsonschema.validate(json.loads(call.function.arguments), BOOKING)

    stream = client.chat.completions.create(
        model="local", messages=ASK, tools=TOOLS, tool_choice=forced, max_tokens=60, stream=True
    )
    pieces = [p for c in stream if c.choices for p in (c.choices[0].delta.tool_calls or [])]
    assert pieces[0].id and pieces[0].function.name == "book_hotel" and len(pieces) > 2  # arguments streamed
    jsonschema.validate(json.loads("".join(p.function.arguments or "" for p in pieces)), BOOKING)

    required = client.chat.completions.create(
        model="local", messages=ASK, tools=TOOLS, tool_choice="required", max_tokens=80
    )
    picked = required.choices[0].message.tool_calls[0]
    schema = {t["function"]["name"]: t["function"]["parameters"] for t in TOOLS}[picked.function.name]
    jsonschema.validate(json.loads(picked.function.arguments), schema)
    deadline = time.monotonic() + 10  # the gateway's ledger writer flushes every 0.5 s
    while len(events := open_store(ledger_path).events()) < 3 and time.monotonic() < deadline:
        time.sleep(0.2)
    assert len(events) == 3 and all(e.tool_call_count == 1 for e in events)


def test_a_call_required_among_allowed_tools_is_one_of_them_by_grammar(client):
    """`allowed_tools` (required) over two of the three tools sent: the grammar holds the call to their names, and
    the prompt shows only them. book_hotel, which the request asks for, is not allowed."""
    cancel = {
        "type": "function",
        "function": {
            "name": "cancel_booking",
            "parameters": {
                "type": "object",
                "properties": {"city": {"type": "string", "enum": ["Rome"]}},
                "required": ["city"],
            },
        },
    }
    choice = {
        "type": "allowed_tools",
        "allowed_tools": {
            "mode": "required",
            "tools": [
                {"type": "function", "function": {"name": "get_time"}},
                {"type": "function", "function": {"name": "cancel_booking"}},
            ],
        },
    }
    reply = client.chat.completions.create(
        model="local", messages=ASK, tools=[*TOOLS, cancel], tool_choice=choice, max_tokens=40
    )
    call = reply.choices[0].message.tool_calls[0]
    assert reply.choices[0].finish_reason == "tool_calls" and call.function.name in ("get_time", "cancel_booking")


def test_json_schema_and_json_mode_output_parse(client):
    fmt = {"type": "json_schema", "json_schema": {"name": "booking", "schema": BOOKING, "strict": True}}
    reply = client.chat.completions.create(model="local", messages=ASK, response_format=fmt, max_tokens=60)
    jsonschema.validate(json.loads(reply.choices[0].message.content), BOOKING)
    reply = client.chat.completions.create(
        model="local", messages=ASK, response_format={"type": "json_object"}, max_tokens=60
    )
    assert reply.choices[0].finish_reason == "length" or isinstance(json.loads(reply.choices[0].message.content), dict)


def test_tool_results_are_rendered_into_the_prompt_as_text():
    request = ChatRequest(
        messages=[
            Message("user", "Weather?"),
            Message("assistant", [ToolUseBlock("c1", "get_weather", {"city": "Oslo"})]),
            Message("user", [ToolResultBlock("c1", [TextBlock("-3C snow")])]),
        ],
        tools=[ToolSpec("get_weather", "Weather in a city")],
    )
    prompt = LocalProvider().format_prompt(request)
    assert '"name": "get_weather"' in prompt.split("<|im_end|>")[0]  # tool definitions in the system turn
    assert '<tool_call>{"name": "get_weather", "arguments": {"city": "Oslo"}}</tool_call>' in prompt
    assert "<tool_response>-3C snow</tool_response>" in prompt
