"""A tool choice among some of the tools sent (OpenAI's `allowed_tools`, on chat completions and the Responses API;
Gemini's `allowedFunctionNames` with two names or more), which the gateway refused: the official SDKs drive a gateway
on 127.0.0.1 in front of a recording OpenAI-format upstream, which gets the choice as sent, and the Anthropic, Bedrock
and Gemini emulators, each recorded as it receives the request: Claude and Bedrock (no way to allow some tools) get
only the allowed tools, Gemini its mode and allowedFunctionNames. A name no tool sent has is a 400 naming it."""

from __future__ import annotations

import json

import httpx
import openai
import pytest
from google import genai
from google.genai import types

from helpers import stand_in_aws_keys
from helpers.recording_openai import RecordingOpenAI
from tokenomy.config import parse_config
from tokenomy.emulate.server import ServerThread
from tokenomy.gateway.app import create_app

HAIKU = "anthropic.claude-3-haiku-20240307-v1:0"
EMPTY = {"type": "object", "properties": {}}
WEATHER = {
    "type": "function",
    "function": {
        "name": "get_weather",
        "description": "Weather in a city",
        "parameters": {"type": "object", "properties": {"city": {"type": "string"}}, "required": ["city"]},
    },
}
TIME = {"type": "function", "function": {"name": "get_time", "parameters": EMPTY}}
BOOK = {"type": "function", "function": {"name": "book_table", "parameters": EMPTY}}
USER = {"role": "user", "content": "Weather and time in Paris?"}


def allowed(mode: str, *names: str) -> dict:
    """Chat completions' tool_choice allowing `names` (the openai SDK's ChatCompletionAllowedToolChoiceParam)."""
    tools = [{"type": "function", "function": {"name": name}} for name in names]
    return {"type": "allowed_tools", "allowed_tools": {"mode": mode, "tools": tools}}


class Recorded:
    """An ASGI app's requests' JSON bodies, as they reach it (`bodies`), then the app."""

    def __init__(self, app) -> None:
        self.app, self.bodies = app, []

    async def __call__(self, scope, receive, send) -> None:
        if scope["type"] != "http":
            return await self.app(scope, receive, send)
        chunks: list[bytes] = []

        async def recorded():
            message = await receive()
            if message["type"] == "http.request":
                chunks.append(message.get("body", b""))
                if not message.get("more_body") and b"".join(chunks):
                    self.bodies.append(json.loads(b"".join(chunks)))
            return message

        await self.app(scope, recorded, send)


@pytest.fixture(scope="module")
def served(tmp_path_factory):
    """(gateway URL, recording OpenAI upstream, {"claude", "bedrock", "g": the emulator's recorder})."""
    from tokenomy.emulate.anthropic_api import create_app as create_anthropic
    from tokenomy.emulate.bedrock_runtime import create_app as create_bedrock
    from tokenomy.emulate.gemini_api import create_app as create_gemini
    from tokenomy.emulate.instant_engine import InstantEngine

    emulators = {
        "claude": Recorded(create_anthropic(engine=InstantEngine())),
        "bedrock": Recorded(create_bedrock(engine=InstantEngine())),
        "g": Recorded(create_gemini(engine=InstantEngine())),
    }
    ledger = tmp_path_factory.mktemp("allowed") / "ledger.duckdb"
    with pytest.MonkeyPatch.context() as env:
        env.setenv("ANTHROPIC_API_KEY", "unused")
        stand_in_aws_keys(env)
        for key in ("GEMINI_API_KEY", "GOOGLE_API_KEY"):
            env.delenv(key, raising=False)
        with (
            RecordingOpenAI() as upstream,
            ServerThread(emulators["claude"]) as claude,
            ServerThread(emulators["bedrock"]) as bedrock,
            ServerThread(emulators["g"]) as gemini,
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
                            "model": HAIKU,
                        },
                        "g": {"provider": "gemini", "model": "gemini-2.5-flash", "base_url": gemini},
                    }
                }
            )
            with ServerThread(create_app(config, str(ledger)), lifespan="on") as url:
                yield url, upstream, emulators


@pytest.fixture
def client(served):
    return openai.OpenAI(base_url=served[0] + "/v1", api_key="unused", max_retries=0)


@pytest.mark.parametrize("mode", ["required", "auto"])
def test_allowed_tools_reach_an_openai_model_as_sent_with_every_tool(served, client, mode) -> None:
    upstream = served[1]
    choice = allowed(mode, "get_time", "book_table")
    client.chat.completions.create(model="gpt", messages=[USER], tools=[WEATHER, TIME, BOOK], tool_choice=choice)
    assert upstream.last["tool_choice"] == choice and upstream.last["tools"] == [WEATHER, TIME, BOOK]
    streamed = client.chat.completions.create(
        model="gpt", messages=[USER], tools=[WEATHER, TIME, BOOK], tool_choice=choice, stream=True
    )
    assert [c for c in streamed] and upstream.last["tool_choice"] == choice


def test_allowed_tools_on_the_responses_api_reach_an_openai_model_as_chat_completions_names_them(served) -> None:
    upstream = served[1]
    client = openai.OpenAI(base_url=served[0] + "/v1", api_key="unused", max_retries=0)
    tools = [
        {"type": "function", "name": t["function"]["name"], "parameters": t["function"]["parameters"], "strict": False}
        for t in (WEATHER, TIME, BOOK)
    ]
    client.responses.create(
        model="gpt",
        input="Weather and time in Paris?",
        tools=tools,
        tool_choice={
            "type": "allowed_tools",
            "mode": "required",
            "tools": [{"type": "function", "name": "get_time"}, {"type": "function", "name": "book_table"}],
        },
    )
    assert upstream.last["tool_choice"] == allowed("required", "get_time", "book_table")
    assert [t["function"]["name"] for t in upstream.last["tools"]] == ["get_weather", "get_time", "book_table"]


@pytest.mark.parametrize(
    ("mode", "claude_choice", "converse_choice"),
    [("required", {"type": "any"}, {"any": {}}), ("auto", {"type": "auto"}, {"auto": {}})],
)
def test_claude_and_bedrock_are_sent_only_the_allowed_tools(
    served, client, mode, claude_choice, converse_choice
) -> None:
    """Neither API can allow some of the tools it is sent: it gets those tools only, with auto or any; the model
    cannot call a tool it is not shown. The emulators force the first tool they get for `any`: one allowed."""
    emulators = served[2]
    for model in ("claude", "bedrock"):
        reply = client.chat.completions.create(
            model=model,
            messages=[USER],
            tools=[WEATHER, TIME, BOOK],
            tool_choice=allowed(mode, "get_time", "book_table"),
            max_tokens=60,
        )
        body = emulators[model].bodies[-1]
        if model == "claude":
            assert [t["name"] for t in body["tools"]] == ["get_time", "book_table"]
            assert body["tool_choice"] == claude_choice
        else:
            assert [t["toolSpec"]["name"] for t in body["toolConfig"]["tools"]] == ["get_time", "book_table"]
            assert body["toolConfig"]["toolChoice"] == converse_choice
        if mode == "required":
            assert [c.function.name for c in reply.choices[0].message.tool_calls] == ["get_time"]


def test_gemini_any_with_two_of_three_functions_reaches_each_provider_in_its_own_terms(served) -> None:
    """google-genai's mode ANY with allowedFunctionNames naming two of the three declared functions (refused before:
    "ANY with one allowed function name or all of them"): Gemini gets it as sent, an OpenAI-format model
    `allowed_tools`, Claude only those two tools."""
    url, upstream, emulators = served
    declared = [
        types.FunctionDeclaration(name=t["function"]["name"], parameters_json_schema=t["function"]["parameters"])
        for t in (WEATHER, TIME, BOOK)
    ]
    config = types.GenerateContentConfig(
        tools=[types.Tool(function_declarations=declared)],
        automatic_function_calling=types.AutomaticFunctionCallingConfig(disable=True),
        tool_config=types.ToolConfig(
            function_calling_config=types.FunctionCallingConfig(
                mode="ANY", allowed_function_names=["get_time", "book_table"]
            )
        ),
        max_output_tokens=60,
    )
    client = genai.Client(api_key="unused", http_options={"base_url": url})
    for model in ("g", "gpt", "claude"):
        reply = client.models.generate_content(model=model, contents="Weather and time in Paris?", config=config)
        if model != "gpt":  # (the recording upstream calls the first tools, whatever the choice)
            assert [c.name for c in reply.function_calls] == ["get_time"]
    sent = emulators["g"].bodies[-1]
    assert sent["toolConfig"] == {
        "functionCallingConfig": {"mode": "ANY", "allowedFunctionNames": ["get_time", "book_table"]}
    }
    assert len(sent["tools"][0]["functionDeclarations"]) == 3
    assert upstream.last["tool_choice"] == allowed("required", "get_time", "book_table")
    assert [t["name"] for t in emulators["claude"].bodies[-1]["tools"]] == ["get_time", "book_table"]
    # VALIDATED with names: the model answers in text or calls one of them (Gemini's AUTO takes no names)
    validated = config.model_copy(
        update={
            "tool_config": types.ToolConfig(
                function_calling_config=types.FunctionCallingConfig(
                    mode="VALIDATED", allowed_function_names=["get_time"]
                )
            )
        }
    )
    client.models.generate_content(model="g", contents="Time in Paris?", config=validated)
    assert emulators["g"].bodies[-1]["toolConfig"] == {
        "functionCallingConfig": {"mode": "VALIDATED", "allowedFunctionNames": ["get_time"]}
    }
    client.models.generate_content(model="gpt", contents="Time in Paris?", config=validated)
    assert upstream.last["tool_choice"] == allowed("auto", "get_time")


def test_an_allowed_tool_not_among_the_tools_sent_is_a_400_naming_it(served) -> None:
    url, upstream = served[0], served[1]
    before = len(upstream.bodies)
    chat = httpx.post(
        f"{url}/v1/chat/completions",
        json={
            "model": "claude",
            "messages": [USER],
            "tools": [WEATHER, TIME],
            "tool_choice": allowed("required", "get_time", "book_table"),
        },
    )
    assert chat.status_code == 400
    assert chat.json()["error"]["param"] == "tool_choice.allowed_tools.tools[1].function.name"
    assert "'book_table' is not among the tools sent" in chat.json()["error"]["message"]
    for choice, param in [
        (
            {"type": "allowed_tools", "allowed_tools": {"mode": "sometimes", "tools": [TIME]}},
            "tool_choice.allowed_tools.mode",
        ),
        ({"type": "allowed_tools", "allowed_tools": {"mode": "auto", "tools": []}}, "tool_choice.allowed_tools.tools"),
        (
            {"type": "allowed_tools", "allowed_tools": {"mode": "auto", "tools": [WEATHER]}},
            "tool_choice.allowed_tools.tools[0].function.description",
        ),
    ]:
        refused = httpx.post(
            f"{url}/v1/chat/completions",
            json={"model": "gpt", "messages": [USER], "tools": [WEATHER, TIME], "tool_choice": choice},
        )
        assert refused.status_code == 400 and refused.json()["error"]["param"] == param, refused.text
    responses = httpx.post(
        f"{url}/v1/responses",
        json={
            "model": "gpt",
            "input": "hi",
            "tools": [{"type": "function", "name": "get_time", "parameters": EMPTY}],
            "tool_choice": {
                "type": "allowed_tools",
                "mode": "auto",
                "tools": [{"type": "function", "name": "get_date"}],
            },
        },
    )
    assert responses.status_code == 400 and responses.json()["error"]["param"] == "tool_choice.tools[0].name"
    gemini = httpx.post(
        f"{url}/v1beta/models/claude:generateContent",
        json={
            "contents": [{"parts": [{"text": "hi"}]}],
            "tools": [{"functionDeclarations": [{"name": "get_weather"}, {"name": "get_time"}]}],
            "toolConfig": {"functionCallingConfig": {"mode": "VALIDATED", "allowedFunctionNames": ["get_date"]}},
        },
    )
    assert gemini.status_code == 400 and "'get_date' is not declared" in gemini.json()["error"]["message"]
    assert len(upstream.bodies) == before  # nothing reached a provider
