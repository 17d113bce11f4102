"""Agent SDKs not covered elsewhere, replayed through the official SDKs (the frameworks themselves are not needed):
the exact requests the OpenAI Agents SDK (`openai-agents`), AWS Strands Agents and Google's ADK sent to a gateway on
127.0.0.1 in front of a recording OpenAI-format upstream ("gpt"), the Anthropic emulator ("claude"), the Bedrock
emulator ("bedrock") and the Gemini emulator ("g"), and the ledger rows of the calls they made."""

from __future__ import annotations

import time

import openai
import pytest

from helpers import stand_in_aws_keys
from helpers.recording_openai import RecordingOpenAI, arguments_for
from tokenomy.config import parse_config
from tokenomy.emulate.server import ServerThread
from tokenomy.gateway.app import create_app
from tokenomy.ledger.store import open_store

HAIKU = "anthropic.claude-3-haiku-20240307-v1:0"
# The OpenAI Agents SDK's function tool (strict schema, every parameter required), as its chat completions model
# sends it.
WEATHER = {
    "type": "function",
    "function": {
        "name": "weather",
        "description": "Weather of a city.",
        "strict": True,
        "parameters": {
            "properties": {"city": {"title": "City", "type": "string"}, "tool": {"title": "Tool", "type": "string"}},
            "required": ["city", "tool"],
            "title": "weather_args",
            "type": "object",
            "additionalProperties": False,
        },
    },
}


@pytest.fixture(scope="module")
def served(tmp_path_factory):
    from tokenomy.emulate.anthropic_api import create_app as create_anthropic
    from tokenomy.emulate.bedrock_runtime import create_app as create_bedrock
    from tokenomy.emulate.gemini_api import create_app as create_gemini
    from tokenomy.emulate.instant_engine import InstantEngine

    ledger = tmp_path_factory.mktemp("sdks") / "ledger.duckdb"
    with pytest.MonkeyPatch.context() as env:
        env.setenv("ANTHROPIC_API_KEY", "unused")
        stand_in_aws_keys(env)
        with (
            RecordingOpenAI() as upstream,
            ServerThread(create_anthropic(engine=InstantEngine())) as claude,
            ServerThread(create_bedrock(engine=InstantEngine())) as bedrock,
            ServerThread(create_gemini(engine=InstantEngine())) as gemini,
        ):
            config = parse_config(
                {
                    "models": {
                        "gpt": {"provider": "openai", "model": "up-model", "base_url": upstream.url, "price_as": HAIKU},
                        "claude": {"provider": "anthropic", "model": "claude-sonnet-4-5-20250929", "base_url": claude},
                        "bedrock": {
                            "provider": "bedrock",
                            "region": "us-east-1",
                            "endpoint_url": bedrock,
                            "model": "us.anthropic.claude-sonnet-4-20250514-v1:0",
                        },
                        "g": {"provider": "gemini", "model": "gemini-2.5-flash", "base_url": gemini},
                    }
                }
            )
            with ServerThread(create_app(config, str(ledger)), lifespan="on") as url:
                yield upstream, url, ledger


@pytest.fixture
def client(served):
    served[0].bodies.clear()
    return openai.OpenAI(base_url=served[1] + "/v1", api_key="unused", max_retries=0)


def ledger_rows(ledger, request_ids: list[str]) -> list:
    """The ledger rows of these calls (by their answers' ids), once the gateway's writer (a batch a second) has
    written them all."""
    request_ids = [i.removeprefix("chatcmpl-") for i in request_ids]
    deadline = time.monotonic() + 10
    while len(rows := [e for e in open_store(ledger).events() if e.request_id in request_ids]) < len(request_ids):
        assert time.monotonic() < deadline, f"{len(rows)} of {len(request_ids)} calls in the ledger"
        time.sleep(0.1)
    return rows


def agents_sdk_turn(client, model: str, messages: list[dict], stream: bool):
    """One turn of the OpenAI Agents SDK's chat completions model with ModelSettings(store=False,
    parallel_tool_calls=False, max_tokens=200, include_usage=True): its request, field for field."""
    more = {"stream_options": {"include_usage": True}} if stream else {}
    return client.chat.completions.create(
        model=model,
        messages=messages,
        tools=[WEATHER],
        max_tokens=200,
        parallel_tool_calls=False,
        store=False,
        stream=stream,
        **more,
    )


@pytest.mark.parametrize("stream", [False, True])
def test_the_agents_sdks_store_false_asks_nothing_of_claude_and_its_tool_loop_goes_on(served, client, stream):
    # ModelSettings(store=False) (OpenAI's default: the completion is not kept) was refused on every route but an
    # OpenAI one ("model `claude` cannot take field `store`"), so an agent with it could not use Claude at all.
    upstream, _, ledger = served
    opening = [{"content": "Be terse.", "role": "system"}, {"role": "user", "content": "Weather in Paris?"}]
    ids = []
    answer = agents_sdk_turn(client, "claude", opening, stream)
    if stream:
        chunks = list(answer)
        assert "".join(c.choices[0].delta.content or "" for c in chunks if c.choices) == "Re: Weather in Paris?"
        assert chunks[-1].usage.prompt_tokens > 0 and chunks[-1].usage.completion_tokens > 0
        ids.append(chunks[0].id)
    else:
        assert answer.choices[0].message.content == "Re: Weather in Paris?"
        ids.append(answer.id)
    # The same turn to an OpenAI-format model, then the tool result: the upstream gets `store` as sent, the tool
    # loop goes on.
    answer = agents_sdk_turn(client, "gpt", opening, stream)
    if stream:
        chunks = list(answer)
        call = next(c.choices[0].delta.tool_calls[0] for c in chunks if c.choices and c.choices[0].delta.tool_calls)
        ids.append(chunks[0].id)
    else:
        call = answer.choices[0].message.tool_calls[0]
        ids.append(answer.id)
    assert call.function.name == "weather"
    followed = [
        *opening,
        {
            "role": "assistant",
            "content": None,
            "tool_calls": [
                {
                    "id": call.id,
                    "type": "function",
                    "function": {"name": "weather", "arguments": arguments_for("weather")},
                }
            ],
        },
        {"role": "tool", "tool_call_id": call.id, "content": "18C sunny in Paris"},
    ]
    answer = agents_sdk_turn(client, "gpt", followed, stream)
    text = (
        "".join(c.choices[0].delta.content or "" for c in answer if c.choices)
        if stream
        else (answer.choices[0].message.content)
    )
    assert text == "answer after 18C sunny in Paris"
    assert [(body["store"], body["parallel_tool_calls"]) for body in upstream.bodies] == [(False, False)] * 2
    rows = ledger_rows(ledger, ids)
    assert sorted(row.route for row in rows) == ["claude", "gpt"]
    assert all(row.input_tokens > 0 and row.output_tokens > 0 and row.outcome == "ok" for row in rows)


@pytest.mark.parametrize("model", ["bedrock", "g"])
def test_store_false_asks_nothing_of_bedrock_or_gemini_either(client, model):
    answer = client.chat.completions.create(
        model=model, messages=[{"role": "user", "content": "hi"}], max_tokens=20, store=False
    )
    assert answer.choices[0].message.content == "Re: hi"


def test_store_true_is_still_refused_for_claude_naming_the_field(client):
    # true asks the provider to keep the completion, which only OpenAI does: a 400 naming it, nothing sent.
    with pytest.raises(openai.BadRequestError) as refused:
        client.chat.completions.create(model="claude", messages=[{"role": "user", "content": "hi"}], store=True)
    assert "`store`" in refused.value.message and "remove it" in refused.value.message


def test_store_false_reaches_no_other_apis_body():
    # Bedrock had taken it as a model field (additionalModelRequestFields: {"store": false}), which Claude refuses.
    from tokenomy.config import RouteConfig
    from tokenomy.gateway.openai_ingress import to_chat_request
    from tokenomy.gateway.schemas import ChatCompletionRequest
    from tokenomy.providers.converse_mapping import to_converse_params

    body = ChatCompletionRequest.model_validate(
        {"model": HAIKU, "messages": [{"role": "user", "content": "hi"}], "store": False}
    )
    assert "additionalModelRequestFields" not in to_converse_params(to_chat_request(body, {}, None, RouteConfig()))


@pytest.mark.parametrize(
    "schema",
    [
        {"type": 5},
        {"type": "object", "properties": 3},
        {"type": "object", "properties": {"a": {"type": "string"}}, "required": "a"},
    ],
)
@pytest.mark.parametrize("model", ["claude", "bedrock", "g"])
def test_a_malformed_tool_schema_is_the_providers_400_not_a_502(served, client, model, schema):
    # The emulators filled the forced tool's schema in and crashed on a `type` of 5, `properties` that are not an
    # object, ... (the gateway answered 502); the real APIs refuse such a schema with a 400 before generating, and
    # the gateway passes that 400 on.
    tool = {"type": "function", "function": {"name": "weather", "parameters": schema}}
    with pytest.raises(openai.BadRequestError) as refused:
        client.chat.completions.create(
            model=model,
            messages=[{"role": "user", "content": "Weather in Paris?"}],
            tools=[tool],
            tool_choice="required",
            max_tokens=50,
        )
    assert refused.value.status_code == 400 and "schema" in str(refused.value).lower()


def test_a_malformed_tool_schema_on_v1_messages_is_anthropics_400(served):
    import anthropic

    sdk = anthropic.Anthropic(base_url=served[1], api_key="unused", max_retries=0)
    with pytest.raises(anthropic.BadRequestError, match=r"tools\.0\.custom\.input_schema: JSON schema is invalid"):
        sdk.messages.create(
            model="claude",
            max_tokens=50,
            messages=[{"role": "user", "content": "hi"}],
            tools=[{"name": "t", "input_schema": {"type": "object", "required": 7}}],
            tool_choice={"type": "tool", "name": "t"},
        )
