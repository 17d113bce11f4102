"""A pydantic model's schema to Claude, from the openai SDK's `.parse` and google-genai's `response_schema`: Claude's
structured outputs take a subset of JSON Schema (every object closed, no minimum or maxLength, no recursion), and its
API answers 400 to the rest. The gateway sends it in Claude's form (`providers.claude_schema`: the official SDK's
`transform_schema`), on Anthropic's API and on Bedrock, the constraints moved into descriptions listed on the row, and
refuses by name, before any call, what Claude cannot hold (an object open to other properties)."""

from __future__ import annotations

import json
import re
import time

import openai
import pydantic
import pytest
from google import genai
from google.genai import types

from helpers import stand_in_aws_keys
from helpers.capturing_asgi import capturing
from helpers.ledger_rows import written_rows
from tokenomy.config import parse_config
from tokenomy.emulate.anthropic_api import create_app as create_anthropic
from tokenomy.emulate.bedrock_runtime import create_app as create_bedrock
from tokenomy.emulate.server import ServerThread
from tokenomy.gateway.app import create_app

SONNET = "claude-sonnet-4-5-20250929"
BEDROCK_SONNET = "anthropic.claude-3-7-sonnet-20250219-v1:0"
ASK = [{"role": "user", "content": "A person, please."}]
TAG = "schema_constraints_described"
pytestmark = pytest.mark.filterwarnings("ignore:The model .* is deprecated:DeprecationWarning")


class Person(pydantic.BaseModel):
    name: str = pydantic.Field(max_length=40)
    age: int = pydantic.Field(ge=0, le=150)


class Pet(pydantic.BaseModel):  # google-genai's response_schema: no additionalProperties anywhere
    name: str
    legs: int


@pytest.fixture(scope="module")
def served(tmp_path_factory):
    """(gateway URL, ledger path, bodies Anthropic's emulator was sent, bodies Bedrock's was sent)."""
    claude_bodies: list[dict] = []
    bedrock_bodies: list[dict] = []
    with pytest.MonkeyPatch.context() as env:
        stand_in_aws_keys(env)
        with (
            ServerThread(capturing(create_anthropic(), claude_bodies)) as claude,
            ServerThread(capturing(create_bedrock(), bedrock_bodies)) as bedrock,
        ):
            config = parse_config(
                {
                    "models": {
                        "claude": {"provider": "anthropic", "model": SONNET, "base_url": claude},
                        "sonnet": {
                            "provider": "bedrock",
                            "model": BEDROCK_SONNET,
                            "region": "us-east-1",
                            "endpoint_url": bedrock,
                        },
                    }
                }
            )
            ledger = tmp_path_factory.mktemp("claude_schemas") / "ledger.duckdb"
            with ServerThread(create_app(config, str(ledger)), lifespan="on") as url:
                yield url, ledger, claude_bodies, bedrock_bodies


def _sent_schema(route: str, body: dict) -> dict:
    if route == "claude":
        return body["output_config"]["format"]["schema"]
    return json.loads(body["outputConfig"]["textFormat"]["structure"]["jsonSchema"]["schema"])


@pytest.mark.parametrize("route", ["claude", "sonnet"])
def test_openai_sdk_parse_with_field_constraints_reaches_claude_in_its_form(served, route) -> None:
    # Sent as the caller wrote it before: Claude's API answers 400 ("For 'integer' type, property 'minimum' is not
    # supported"), and so do the emulators now.
    url, ledger, claude_bodies, bedrock_bodies = served
    bodies = claude_bodies if route == "claude" else bedrock_bodies
    before = len(written_rows(ledger, 0, wait_s=0))
    client = openai.OpenAI(base_url=url + "/v1", api_key="unused", max_retries=0)
    reply = client.chat.completions.parse(model=route, messages=ASK, response_format=Person, max_tokens=200)
    assert isinstance(reply.choices[0].message.parsed, Person)
    sent = _sent_schema(route, bodies[-1])
    assert sent["additionalProperties"] is False
    assert "maximum" not in sent["properties"]["age"] and "maxLength" not in sent["properties"]["name"]
    described = sent["properties"]["age"]["description"]  # the model still reads them
    assert "minimum: 0" in described and "maximum: 150" in described
    tag = written_rows(ledger, before + 1)[-1].tags[TAG]  # and the row says what Claude was not held to
    assert "response_format.json_schema.schema.properties.name {maxLength: 40}" in tag
    assert f"response_format.json_schema.schema.properties.age {described}" in tag


@pytest.mark.parametrize("route", ["claude", "sonnet"])
def test_google_genai_response_schema_without_additional_properties_reaches_claude_closed(served, route) -> None:
    url, _, claude_bodies, bedrock_bodies = served
    bodies = claude_bodies if route == "claude" else bedrock_bodies
    client = genai.Client(api_key="unused", http_options={"base_url": url})
    config = types.GenerateContentConfig(response_mime_type="application/json", response_schema=Pet)
    reply = client.models.generate_content(model=route, contents="A pet, please.", config=config)
    assert isinstance(reply.parsed, Pet)
    assert _sent_schema(route, bodies[-1])["additionalProperties"] is False


@pytest.mark.parametrize("route", ["claude", "sonnet"])
def test_an_open_object_schema_is_refused_by_name_before_any_call(served, route) -> None:
    url, _, claude_bodies, bedrock_bodies = served
    bodies = claude_bodies if route == "claude" else bedrock_bodies
    sent = len(bodies)
    schema = {
        "type": "object",
        "properties": {"scores": {"type": "object", "additionalProperties": {"type": "integer"}}},
        "required": ["scores"],
    }
    client = openai.OpenAI(base_url=url + "/v1", api_key="unused", max_retries=0)
    with pytest.raises(openai.BadRequestError) as caught:
        client.chat.completions.create(
            model=route,
            messages=ASK,
            max_tokens=100,
            response_format={"type": "json_schema", "json_schema": {"name": "scores", "schema": schema}},
        )
    message = str(caught.value)
    assert "response_format.json_schema.schema.properties.scores.additionalProperties" in message
    assert "set additionalProperties to false" in message
    assert len(bodies) == sent  # refused before the call: nothing reached the upstream


def _row_of(ledger, request_id: str):
    """The ledger row of one request, once the gateway's writer has flushed it (rows of earlier tests may come later)."""
    deadline = time.monotonic() + 10
    while not (rows := [e for e in written_rows(ledger, 0, wait_s=0) if e.request_id == request_id]):
        assert time.monotonic() < deadline, f"no ledger row for {request_id}"
        time.sleep(0.1)
    return rows[0]


def _sent_tool(route: str, body: dict) -> tuple[dict, bool | None]:
    """The first tool the upstream was sent: its input schema, and its `strict` flag."""
    if route == "claude":
        tool = body["tools"][0]
        return tool["input_schema"], tool.get("strict")
    spec = body["toolConfig"]["tools"][0]["toolSpec"]
    return spec["inputSchema"]["json"], spec.get("strict")


PERSON_TOOL = {
    "type": "function",
    "function": {
        "name": "file_person",
        "description": "Files a person.",
        "strict": True,
        "parameters": {
            "type": "object",
            "properties": {"name": {"type": "string", "maxLength": 40}, "age": {"type": "integer", "maximum": 150}},
            "required": ["name", "age"],
            "additionalProperties": False,
        },
    },
}
FILE_PERSON = {"type": "function", "function": {"name": "file_person"}}


@pytest.mark.parametrize("route", ["claude", "sonnet"])
def test_openai_sdk_strict_tool_reaches_claude_strict_in_its_form(served, route) -> None:
    url, ledger, claude_bodies, bedrock_bodies = served
    bodies = claude_bodies if route == "claude" else bedrock_bodies
    client = openai.OpenAI(base_url=url + "/v1", api_key="unused", max_retries=0)
    reply = client.chat.completions.create(
        model=route, messages=ASK, max_tokens=200, tools=[PERSON_TOOL], tool_choice=FILE_PERSON
    )
    call = reply.choices[0].message.tool_calls[0]
    assert call.function.name == "file_person"
    assert set(json.loads(call.function.arguments)) == {"name", "age"}
    schema, strict = _sent_tool(route, bodies[-1])
    assert strict is True  # Claude holds its calls to the schema only when the tool says so
    assert schema["additionalProperties"] is False
    assert "maximum" not in schema["properties"]["age"] and "maxLength" not in schema["properties"]["name"]
    assert "maximum: 150" in schema["properties"]["age"]["description"]
    tag = _row_of(ledger, reply._request_id).tags[TAG]
    assert "tools[0].input_schema.properties.name {maxLength: 40}" in tag
    assert "tools[0].input_schema.properties.age {maximum: 150}" in tag


@pytest.mark.parametrize("route", ["claude", "sonnet"])
def test_openai_sdk_parse_with_a_pydantic_function_tool_reaches_claude_strict(served, route) -> None:
    url, _, claude_bodies, bedrock_bodies = served
    bodies = claude_bodies if route == "claude" else bedrock_bodies
    client = openai.OpenAI(base_url=url + "/v1", api_key="unused", max_retries=0)
    reply = client.chat.completions.parse(
        model=route,
        messages=ASK,
        max_tokens=200,
        tools=[openai.pydantic_function_tool(Person)],
        tool_choice={"type": "function", "function": {"name": "Person"}},
    )
    assert isinstance(reply.choices[0].message.tool_calls[0].function.parsed_arguments, Person)
    schema, strict = _sent_tool(route, bodies[-1])
    assert strict is True and schema["additionalProperties"] is False
    assert "minimum: 0" in schema["properties"]["age"]["description"]


@pytest.mark.parametrize("route", ["claude", "sonnet"])
def test_a_strict_tool_open_to_other_properties_is_refused_by_name_before_any_call(served, route) -> None:
    url, _, claude_bodies, bedrock_bodies = served
    bodies = claude_bodies if route == "claude" else bedrock_bodies
    sent = len(bodies)
    tool = {
        "type": "function",
        "function": {
            "name": "score",
            "strict": True,
            "parameters": {"type": "object", "properties": {}, "additionalProperties": {"type": "integer"}},
        },
    }
    client = openai.OpenAI(base_url=url + "/v1", api_key="unused", max_retries=0)
    with pytest.raises(openai.BadRequestError) as caught:
        client.chat.completions.create(model=route, messages=ASK, max_tokens=100, tools=[tool])
    message = str(caught.value)
    assert "tools[0].function.parameters.additionalProperties" in message  # named where the caller wrote it
    assert "set additionalProperties to false" in message
    function = {"type": "function", **tool["function"]}  # the Responses API's tool: its schema in `parameters`
    with pytest.raises(openai.BadRequestError) as caught:
        client.responses.create(model=route, input="Score it.", max_output_tokens=100, tools=[function])
    assert "tools[0].parameters.additionalProperties" in str(caught.value)
    assert len(bodies) == sent


OPEN_SCHEMA = {"type": "object", "properties": {}, "additionalProperties": {"type": "integer"}}


@pytest.mark.parametrize("route", ["claude", "sonnet"])
def test_a_converse_caller_is_told_its_own_place_for_a_schema_claude_cannot_hold(served, route) -> None:
    import boto3
    from botocore.config import Config

    url, _, claude_bodies, bedrock_bodies = served
    bodies = claude_bodies if route == "claude" else bedrock_bodies
    sent = len(bodies)
    client = boto3.client(
        "bedrock-runtime", region_name="us-east-1", endpoint_url=url, config=Config(retries={"max_attempts": 1})
    )
    messages = [{"role": "user", "content": [{"text": "Score it."}]}]
    tool = {"toolSpec": {"name": "score", "strict": True, "inputSchema": {"json": OPEN_SCHEMA}}}
    with pytest.raises(client.exceptions.ValidationException) as caught:
        client.converse(modelId=route, messages=messages, toolConfig={"tools": [tool]})
    assert "toolConfig.tools[0].toolSpec.inputSchema.json.additionalProperties" in str(caught.value)
    text_format = {"type": "json_schema", "structure": {"jsonSchema": {"name": "s", "schema": json.dumps(OPEN_SCHEMA)}}}
    with pytest.raises(client.exceptions.ValidationException) as caught:
        client.converse(modelId=route, messages=messages, outputConfig={"textFormat": text_format})
    assert "outputConfig.textFormat.structure.jsonSchema.schema.additionalProperties" in str(caught.value)
    assert len(bodies) == sent


@pytest.mark.parametrize("route", ["claude", "sonnet"])
def test_a_gemini_caller_is_told_its_own_place_for_a_schema_claude_cannot_hold(served, route) -> None:
    url, _, claude_bodies, bedrock_bodies = served
    bodies = claude_bodies if route == "claude" else bedrock_bodies
    sent = len(bodies)
    client = genai.Client(api_key="unused", http_options={"base_url": url})
    declaration = types.FunctionDeclaration(name="score", parameters_json_schema=OPEN_SCHEMA)
    config = types.GenerateContentConfig(
        tools=[types.Tool(function_declarations=[declaration])],
        tool_config=types.ToolConfig(function_calling_config=types.FunctionCallingConfig(mode="VALIDATED")),
        automatic_function_calling=types.AutomaticFunctionCallingConfig(disable=True),
    )
    with pytest.raises(genai.errors.ClientError) as caught:
        client.models.generate_content(model=route, contents="Score it.", config=config)
    # (named as the SDK spelled it: google-genai sends some fields in snake case)
    assert re.search(
        r"tools\[0\]\.functionDeclarations\[0\]\.parameters_?[jJ]son_?[sS]chema\.additionalProp", str(caught.value)
    )
    config = types.GenerateContentConfig(response_mime_type="application/json", response_json_schema=OPEN_SCHEMA)
    with pytest.raises(genai.errors.ClientError) as caught:
        client.models.generate_content(model=route, contents="Score it.", config=config)
    assert re.search(r"generationConfig\.response_?[jJ]son_?[sS]chema\.additionalProperties", str(caught.value))
    assert len(bodies) == sent
