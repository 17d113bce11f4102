"""Structured output across APIs: a JSON schema the answer must follow reaches every model in that model's own
field. OpenAI's `response_format: json_schema` becomes Claude's `output_config.format` on Anthropic's API; Claude's
`output_config.format` (and the beta's `output_format`) sent to `/v1/messages` becomes `response_format` on an
OpenAI-format model and Converse's `outputConfig.textFormat` on Bedrock. The official SDKs drive a real gateway on
127.0.0.1 in front of the Anthropic and Bedrock emulators (whose local model answers under the schema's grammar)
and a recording OpenAI-format upstream."""

from __future__ import annotations

import json

import anthropic
import httpx
import openai
import pydantic
import pytest

from helpers import stand_in_aws_keys
from helpers.recording_openai import RecordingOpenAI
from helpers.scripted_anthropic import ScriptedAnthropic
from tokenomy.config import parse_config
from tokenomy.emulate.anthropic_api import create_app as create_anthropic
from tokenomy.emulate.bedrock_runtime import create_app as create_bedrock
from tokenomy.emulate.gemini_api import create_app as create_gemini
from tokenomy.emulate.server import ServerThread
from tokenomy.errors import ProviderError
from tokenomy.gateway.app import create_app
from tokenomy.messages import ChatRequest, Message
from tokenomy.providers.anthropic_provider import AnthropicProvider
from tokenomy.request_options import Reasoning, ResponseFormat

SONNET = "claude-sonnet-4-5-20250929"
BEDROCK_SONNET = "anthropic.claude-3-7-sonnet-20250219-v1:0"
ASK = [{"role": "user", "content": "Name a city in France and its population."}]
SCHEMA = {
    "type": "object",
    "properties": {"city": {"type": "string"}, "population": {"type": "integer"}},
    "required": ["city", "population"],
    "additionalProperties": False,
}
FORMAT = {"type": "json_schema", "schema": SCHEMA}
pytestmark = pytest.mark.filterwarnings("ignore:The model .* is deprecated:DeprecationWarning")


class City(pydantic.BaseModel):
    model_config = pydantic.ConfigDict(extra="forbid")
    city: str
    population: int


@pytest.fixture(scope="module")
def served(tmp_path_factory):
    """(gateway URL, recording OpenAI upstream, scripted Anthropic upstream)."""
    with pytest.MonkeyPatch.context() as env:
        stand_in_aws_keys(env)
        for key in ("GEMINI_API_KEY", "GOOGLE_API_KEY"):
            env.delenv(key, raising=False)
        scripted = ScriptedAnthropic(text='{"city": "Lyon", "population": 520000}')
        with (
            ServerThread(create_anthropic()) as claude,
            ServerThread(create_bedrock()) as bedrock,
            ServerThread(scripted.app) as scripted_url,
            RecordingOpenAI() as gpt,
            ServerThread(create_gemini()) as gemini,
        ):
            config = parse_config(
                {
                    "models": {
                        "claude": {"provider": "anthropic", "model": SONNET, "base_url": claude},
                        "claude-scripted": {"provider": "anthropic", "model": SONNET, "base_url": scripted_url},
                        "opus46-scripted": {
                            "provider": "anthropic",
                            "model": "claude-opus-4-6",
                            "base_url": scripted_url,
                        },
                        "sonnet": {
                            "provider": "bedrock",
                            "model": BEDROCK_SONNET,
                            "region": "us-east-1",
                            "endpoint_url": bedrock,
                        },
                        "gpt": {
                            "provider": "openai",
                            "model": "up-model",
                            "base_url": gpt.url,
                            "price_as": "gpt-4o-mini",
                        },
                        "gemini": {"provider": "gemini", "model": "gemini-2.5-flash", "base_url": gemini},
                    }
                }
            )
            ledger = tmp_path_factory.mktemp("structured") / "ledger.duckdb"
            with ServerThread(create_app(config, str(ledger)), lifespan="on") as url:
                yield url, gpt, scripted


def test_openai_sdk_parse_gets_a_schema_valid_answer_from_claude(served) -> None:
    # Refused before ("has no json_schema output mode"): the OpenAI SDK's structured output now reaches Claude.
    client = openai.OpenAI(base_url=served[0] + "/v1", api_key="unused", max_retries=0)
    reply = client.chat.completions.parse(model="claude", messages=ASK, response_format=City, max_tokens=60)
    assert isinstance(reply.choices[0].message.parsed, City)
    streamed = client.chat.completions.create(
        model="claude",
        messages=ASK,
        max_tokens=60,
        stream=True,
        response_format={"type": "json_schema", "json_schema": {"name": "city", "schema": SCHEMA, "strict": True}},
    )
    City.model_validate_json("".join(c.choices[0].delta.content or "" for c in streamed if c.choices))


def test_what_reaches_anthropic_is_output_config_format(served) -> None:
    url, _, scripted = served
    scripted.requests.clear()
    client = openai.OpenAI(base_url=url + "/v1", api_key="unused", max_retries=0)
    described = {"name": "city", "schema": SCHEMA, "description": "One French city"}
    client.chat.completions.create(
        model="claude-scripted",
        messages=ASK,
        max_tokens=60,
        response_format={"type": "json_schema", "json_schema": described},
    )
    # The format's description is for the model: the Messages API reads it from the schema.
    assert scripted.requests[-1][1]["output_config"] == {
        "format": {"type": "json_schema", "schema": {**SCHEMA, "description": "One French city"}}
    }
    sdk = anthropic.Anthropic(base_url=url, api_key="unused", max_retries=0)
    # /v1/messages to Anthropic: the format and an effort arrive together in one output_config.
    sdk.messages.create(
        model="opus46-scripted",
        max_tokens=60,
        messages=ASK,
        thinking={"type": "adaptive"},
        output_config={"format": FORMAT, "effort": "low"},
    )
    assert scripted.requests[-1][1]["output_config"] == {"effort": "low", "format": FORMAT}
    assert scripted.requests[-1][1]["thinking"] == {"type": "adaptive"}


def test_json_object_mode_is_still_refused_for_claude_by_name(served) -> None:
    client = openai.OpenAI(base_url=served[0] + "/v1", api_key="unused", max_retries=0)
    with pytest.raises(openai.BadRequestError) as refused:
        client.chat.completions.create(
            model="claude", messages=ASK, max_tokens=20, response_format={"type": "json_object"}
        )
    assert "response_format" in str(refused.value) and "json_schema" in str(refused.value)


def test_anthropic_sdk_output_config_reaches_an_openai_model_as_response_format(served) -> None:
    url, gpt, _ = served
    sdk = anthropic.Anthropic(base_url=url, api_key="unused", max_retries=0)
    sdk.messages.create(model="gpt", max_tokens=60, messages=ASK, output_config={"format": FORMAT})
    assert gpt.last["response_format"] == {
        "type": "json_schema",
        "json_schema": {"name": "response", "schema": SCHEMA, "strict": True},
    }
    assert "output_config" not in gpt.last
    # The beta's top-level output_format is the same request.
    sdk.messages.create(model="gpt", max_tokens=60, messages=ASK, extra_body={"output_format": FORMAT})
    assert gpt.last["response_format"]["json_schema"]["schema"] == SCHEMA and "output_format" not in gpt.last


def test_claudes_format_reaches_an_openai_model_in_the_form_strict_mode_takes_where_one_exists(served) -> None:
    # Claude's format without `additionalProperties: false` went to OpenAI-format models as `strict: true` as sent,
    # which OpenAI refuses. Where that is all it lacks it is added; a schema with an optional property has no strict
    # form and goes as sent, still strict: the caller asked for an enforced schema, OpenAI's 400 says why it cannot.
    url, gpt, _ = served
    sdk = anthropic.Anthropic(base_url=url, api_key="unused", max_retries=0)
    loose = {**SCHEMA, "required": ["city"]}
    sdk.messages.create(model="gpt", max_tokens=60, messages=ASK, output_config={"format": {**FORMAT, "schema": loose}})
    assert gpt.last["response_format"]["json_schema"] == {"name": "response", "schema": loose, "strict": True}
    bare = {k: v for k, v in SCHEMA.items() if k != "additionalProperties"}
    sdk.messages.create(model="gpt", max_tokens=60, messages=ASK, output_config={"format": {**FORMAT, "schema": bare}})
    assert gpt.last["response_format"]["json_schema"] == {"name": "response", "schema": SCHEMA, "strict": True}


@pytest.mark.parametrize("model", ["sonnet", "gemini"])
def test_anthropic_sdk_output_config_reaches_bedrock_and_gemini_in_their_fields(served, model) -> None:
    sdk = anthropic.Anthropic(base_url=served[0], api_key="unused", max_retries=0)
    reply = sdk.messages.create(model=model, max_tokens=80, messages=ASK, output_config={"format": FORMAT})
    City.model_validate_json(reply.content[0].text)  # the emulator held its answer to the schema


@pytest.mark.parametrize(
    "fields, named",
    [
        ({"output_config": {"format": {"type": "json_object"}}}, "output_config.format"),
        ({"output_config": {"format": FORMAT | {"name": "x"}}}, "output_config.format.name"),
        ({"output_config": "json"}, "output_config"),
        ({"output_format": FORMAT, "output_config": {"format": FORMAT}}, "output_format"),
    ],
)
def test_a_malformed_output_format_is_a_400_naming_it(served, fields, named) -> None:
    sdk = anthropic.Anthropic(base_url=served[0], api_key="unused", max_retries=0)
    with pytest.raises(anthropic.BadRequestError) as refused:
        sdk.messages.create(model="gpt", max_tokens=20, messages=ASK, extra_body=fields)
    assert refused.value.body["error"]["message"].startswith(named + ":")


def test_an_output_config_key_set_twice_is_refused_and_others_join() -> None:
    # The gateway's OpenAI route refuses a pass-through output_config for Claude before this point; a library
    # caller can still send one beside a mapped field. Joined when the keys differ, named when they clash.
    ask = [Message("user", "hi")]
    provider = AnthropicProvider(base_url="http://127.0.0.1:9", api_key="unused")
    adaptive = Reasoning(adaptive=True, effort="low")
    joined = provider._params(
        ChatRequest(
            ask,
            model="claude-opus-4-6",
            reasoning=Reasoning(adaptive=True),
            response_format=ResponseFormat("json_schema", SCHEMA),
            extra={"output_config": {"effort": "high"}},
        )
    )
    assert joined["output_config"] == {"effort": "high", "format": FORMAT} and "extra_body" not in joined
    with pytest.raises(ProviderError) as refused:
        provider._params(
            ChatRequest(
                ask,
                model="claude-opus-4-6",
                reasoning=adaptive,  # takes both
                extra={"output_config": {"effort": "x"}},
            )
        )
    assert refused.value.param == "output_config.effort" and refused.value.status == 400


NOT_AN_OBJECT = {"type": "object", "properties": 5}
UNHASHABLE = {"type": "object", "properties": {"city": {"type": "string"}}, "required": [["city"]]}


def _strict_bodies(schema: dict) -> list[tuple[str, dict]]:
    """The same malformed strict schema as each API sends one to a model: as an answer's format and as a tool's."""
    say = [{"role": "user", "content": "hi"}]
    return [
        (
            "/v1/messages",
            {
                "model": "gpt",
                "max_tokens": 5,
                "messages": say,
                "output_config": {"format": {"type": "json_schema", "schema": schema}},
            },
        ),
        (
            "/v1/messages",
            {
                "model": "gpt",
                "max_tokens": 5,
                "messages": say,
                "tools": [{"name": "f", "strict": True, "input_schema": schema}],
            },
        ),
        (
            "/v1/responses",
            {
                "model": "gpt",
                "input": "hi",
                "text": {"format": {"type": "json_schema", "name": "x", "strict": True, "schema": schema}},
            },
        ),
        (
            "/v1/responses",
            {
                "model": "gpt",
                "input": "hi",
                "tools": [{"type": "function", "name": "f", "strict": True, "parameters": schema}],
            },
        ),
        (
            "/v1/chat/completions",
            {
                "model": "gpt",
                "messages": say,
                "response_format": {
                    "type": "json_schema",
                    "json_schema": {"name": "x", "strict": True, "schema": schema},
                },
            },
        ),
        (
            "/model/gpt/converse",
            {
                "messages": [{"role": "user", "content": [{"text": "hi"}]}],
                "outputConfig": {
                    "textFormat": {"type": "json_schema", "structure": {"jsonSchema": {"schema": json.dumps(schema)}}}
                },
            },
        ),
        (
            "/model/gpt/converse",
            {
                "messages": [{"role": "user", "content": [{"text": "hi"}]}],
                "toolConfig": {"tools": [{"toolSpec": {"name": "f", "strict": True, "inputSchema": {"json": schema}}}]},
            },
        ),
        (
            "/v1beta/models/gpt:generateContent",
            {
                "contents": [{"parts": [{"text": "hi"}]}],
                "generationConfig": {"responseMimeType": "application/json", "responseJsonSchema": schema},
            },
        ),
    ]


@pytest.mark.parametrize("path, body", _strict_bodies(NOT_AN_OBJECT) + _strict_bodies(UNHASHABLE))
def test_a_strict_schema_malformed_where_strict_mode_looks_goes_as_sent_not_a_500(served, path, body) -> None:
    # `properties` that is no object, or `required` names that are lists, made the strict form (strict_schema) raise
    # TypeError: a 500 from every API. Such a schema has no strict form: it goes as sent, strict, and the model's
    # API refuses it by name (the recording upstream takes anything).
    url, gpt, _ = served
    answer = httpx.post(url + path, json=body)
    assert answer.status_code == 200, answer.text
    sent = gpt.last.get("response_format", {}).get("json_schema") or gpt.last["tools"][0]["function"]
    assert sent["strict"] is True and (sent.get("schema") or sent.get("parameters")) in (NOT_AN_OBJECT, UNHASHABLE)
