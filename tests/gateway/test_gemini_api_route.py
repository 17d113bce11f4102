"""The Gemini API on the gateway: the google-genai SDK → `tokenomy serve` → a Gemini model (the Gemini emulator,
which checks its own thought signatures) or any other provider (a recording OpenAI upstream, Claude). Function
calls and responses, thoughts, images and documents, streamed and not, keys, and every malformed or uncarried field
refused by name."""

from __future__ import annotations

import base64
import json
from decimal import Decimal
from typing import Literal

import httpx
import pydantic
import pytest
from fastapi import FastAPI, Request
from fastapi.responses import JSONResponse, StreamingResponse
from google import genai
from google.genai import errors, types

from helpers.capturing_asgi import capturing
from helpers.recording_openai import RecordingOpenAI, arguments_for
from helpers.scripted_openai import ScriptedOpenAI
from tokenomy.config import parse_config
from tokenomy.emulate.gemini_api import create_app as create_gemini
from tokenomy.emulate.instant_engine import InstantEngine
from tokenomy.emulate.server import ServerThread
from tokenomy.gateway.app import create_app
from tokenomy.ledger.store import open_store

GEMINI = "gemini-2.5-flash"
HAIKU = "anthropic.claude-3-haiku-20240307-v1:0"
IMAGE = b"\x89PNG\r\n\x1a\n" + bytes(range(256)) * 3  # every byte value: a re-encoding on the way changes it
PDF = b"%PDF-1.4\n" + bytes(range(256))
WEATHER = types.FunctionDeclaration(
    name="get_weather",
    description="Weather in a city",
    parameters_json_schema={"type": "object", "properties": {"city": {"type": "string"}}, "required": ["city"]},
)
TIME = types.FunctionDeclaration(name="get_time", parameters=types.Schema(type="OBJECT", properties={}))
MANUAL = types.AutomaticFunctionCallingConfig(disable=True)  # the test plays the application's part


@pytest.fixture(autouse=True)
def no_google_env(monkeypatch):
    for key in ("GEMINI_API_KEY", "GOOGLE_API_KEY"):
        monkeypatch.delenv(key, raising=False)


@pytest.fixture
def served(tmp_path):
    """(google-genai client, gateway URL, recording upstream)."""
    with ServerThread(create_gemini(engine=InstantEngine())) as gemini, RecordingOpenAI() as upstream:
        config = parse_config(
            {
                "models": {
                    "g": {"provider": "gemini", "model": GEMINI, "base_url": gemini},
                    "fast": {"provider": "openai", "model": "up-model", "base_url": upstream.url, "price_as": HAIKU},
                    "text-only": {
                        "provider": "openai",
                        "model": "up-text",
                        "base_url": upstream.url,
                        "price_as": HAIKU,
                        "inputs": ["text"],
                    },
                }
            }
        )
        with ServerThread(create_app(config, str(tmp_path / "ledger.duckdb")), lifespan="on") as url:
            yield genai.Client(api_key="unused", http_options={"base_url": url}), url, upstream


def test_a_tool_loop_with_thinking_reaches_gemini_and_its_signatures_go_back(served) -> None:
    client = served[0]
    config = types.GenerateContentConfig(
        tools=[types.Tool(function_declarations=[WEATHER])],
        automatic_function_calling=MANUAL,
        tool_config=types.ToolConfig(function_calling_config=types.FunctionCallingConfig(mode="ANY")),
        thinking_config=types.ThinkingConfig(thinking_budget=128, include_thoughts=True),
        max_output_tokens=256,
    )
    contents: list = [types.Content(role="user", parts=[types.Part(text="Weather in Paris?")])]
    for stream in (False, True):
        if stream:
            chunks = list(client.models.generate_content_stream(model="g", contents=contents, config=config))
            parts = [p for c in chunks if c.candidates[0].content for p in c.candidates[0].content.parts]
            answer = types.Content(role="model", parts=parts)
        else:
            answer = client.models.generate_content(model="g", contents=contents, config=config).candidates[0].content
        thoughts = [p for p in answer.parts if p.thought]
        calls = [p.function_call for p in answer.parts if p.function_call]
        assert thoughts and any(p.thought_signature for p in answer.parts)
        assert [c.name for c in calls] == ["get_weather"] and set(calls[0].args) == {"city"}
        result = types.FunctionResponse(name="get_weather", response={"output": "18C sunny"})
        turn = [*contents, answer, types.Content(role="user", parts=[types.Part(function_response=result)])]
        final = client.models.generate_content(
            model="g",
            contents=turn,
            config=types.GenerateContentConfig(
                tools=config.tools, automatic_function_calling=MANUAL, thinking_config=config.thinking_config
            ),
        )
        assert "18C" in final.text  # the emulator took the signatures back and saw the function's result


def test_a_gemini_request_reaches_an_openai_model_and_its_calls_come_back_as_function_calls(served) -> None:
    client, _, upstream = served
    user = types.Content(
        role="user",
        parts=[
            types.Part(text="Weather and time here?"),
            types.Part.from_bytes(data=IMAGE, mime_type="image/png"),
            types.Part.from_bytes(data=PDF, mime_type="application/pdf"),
        ],
    )
    config = types.GenerateContentConfig(
        tools=[types.Tool(function_declarations=[WEATHER, TIME])],
        automatic_function_calling=MANUAL,
        system_instruction="Be brief.",
        max_output_tokens=30,
        top_p=0.5,
        stop_sequences=["END"],
        seed=7,
    )
    reply = client.models.generate_content(model="fast", contents=[user], config=config)
    body = upstream.last
    assert body["messages"][0] == {"role": "system", "content": "Be brief."}
    content = body["messages"][1]["content"]
    assert base64.b64decode(content[1]["image_url"]["url"].split(",", 1)[1]) == IMAGE
    assert base64.b64decode(content[2]["file"]["file_data"].split(",", 1)[1]) == PDF
    assert [t["function"]["parameters"] for t in body["tools"]] == [
        WEATHER.parameters_json_schema,
        {"type": "object", "properties": {}},
    ]
    assert (body["max_tokens"], body["top_p"], body["stop"], body["seed"]) == (30, 0.5, ["END"], 7)
    calls = reply.function_calls
    assert [(c.id, c.name) for c in calls] == [("call_0", "get_weather"), ("call_1", "get_time")]
    assert calls[0].args == json.loads(arguments_for("get_weather"))
    turn = [
        user,
        reply.candidates[0].content,
        types.Content(
            role="user",
            parts=[
                types.Part(function_response=types.FunctionResponse(id=c.id, name=c.name, response={"output": "18C"}))
                for c in calls
            ],
        ),
    ]
    final = client.models.generate_content(model="fast", contents=turn, config=config)
    assert final.text == "answer after 18C"
    sent = upstream.last["messages"]
    assert [m["role"] for m in sent] == ["system", "user", "assistant", "tool", "tool"]
    assert [m.get("tool_call_id") for m in sent[3:]] == ["call_0", "call_1"]
    # Streamed: each call arrives whole, with its arguments byte for byte, in the last chunk.
    chunks = list(client.models.generate_content_stream(model="fast", contents=[user], config=config))
    streamed = [p.function_call for c in chunks if c.candidates[0].content for p in c.candidates[0].content.parts]
    assert [(c.name, c.args) for c in streamed] == [(c.name, c.args) for c in calls]
    assert chunks[-1].candidates[0].finish_reason == "STOP" and chunks[-1].usage_metadata.total_token_count > 0


def test_the_sdks_automatic_function_calling_runs_its_python_function_through_the_gateway(served) -> None:
    """google-genai declares a Python function with `response_json_schema` (its return annotation): carried as Gemini's
    own field to Gemini models, and told in the description to the others."""
    client, _, upstream = served
    called: list[str] = []

    def get_weather(city: str) -> str:
        """Weather in a city."""
        called.append(city)
        return "18C sunny"

    chat = client.chats.create(model="fast", config=types.GenerateContentConfig(tools=[get_weather]))
    assert chat.send_message("Weather in Paris?").text == 'answer after {"result": "18C sunny"}'
    assert called == ["Paris"]
    function = upstream.bodies[0]["tools"][0]["function"]
    assert function["description"] == 'Weather in a city.\n\nReturns (JSON Schema): {"type":"string"}'
    assert [m["role"] for m in upstream.last["messages"]] == ["user", "assistant", "tool"]
    reply = client.models.generate_content(
        model="g", contents="Weather?", config=types.GenerateContentConfig(tools=[get_weather], max_output_tokens=16)
    )
    assert reply.text


def test_a_pydantic_response_schema_reaches_other_providers_as_the_json_schema_it_means(served) -> None:
    """The SDK sends a pydantic model as Gemini's Schema (`nullable`, `property_ordering`, upper-case types): the
    JSON Schema other providers get lets null in where the model does, in the model's property order."""
    client, _, upstream = served

    class Item(pydantic.BaseModel):
        name: str
        qty: int | None = None
        color: Literal["red", "blue"] | None

    config = types.GenerateContentConfig(response_mime_type="application/json", response_schema=Item)
    client.models.generate_content(model="fast", contents="An item?", config=config)
    schema = upstream.last["response_format"]["json_schema"]["schema"]
    assert schema == {
        "properties": {
            "name": {"title": "Name", "type": "string"},
            "qty": {"title": "Qty", "type": ["integer", "null"]},
            "color": {"enum": ["red", "blue", None], "title": "Color", "type": ["string", "null"]},
        },
        "required": ["name", "color"],
        "title": "Item",
        "type": "object",
    }
    assert list(schema["properties"]) == ["name", "qty", "color"]
    assert client.models.generate_content(model="g", contents="An item?", config=config).parsed.name


def openai_takes_as_strict(schema: dict) -> bool:
    """OpenAI's rule for a strict schema (else it refuses the request): every object requires all its properties and
    allows no others."""
    if isinstance(schema.get("properties"), dict) or schema.get("type") == "object":
        properties = schema.get("properties") or {}
        if schema.get("additionalProperties") is not False or set(schema.get("required") or []) != set(properties):
            return False
    nested = [*(schema.get("properties") or {}).values(), *([schema["items"]] if "items" in schema else [])]
    return all(openai_takes_as_strict(item) for item in nested)


def test_a_gemini_schema_reaches_openai_in_the_form_strict_mode_takes_where_one_exists(served) -> None:
    # Every Gemini response schema and every VALIDATED-mode tool went to OpenAI-format models with `strict: true`, but
    # as Gemini sends them: no `additionalProperties: false`. OpenAI refuses such a strict schema (400
    # "'additionalProperties' is required to be supplied and to be false"). One with an optional property has no
    # strict form: it goes as sent, still strict (enforcement is never loosened quietly; OpenAI's 400 says why).
    client, _, upstream = served

    class Part(pydantic.BaseModel):
        label: str

    class Whole(pydantic.BaseModel):
        name: str
        parts: list[Part]

    class Loose(pydantic.BaseModel):
        name: str
        note: str | None = None  # optional: no strict form keeps its meaning

    for model, closed in ((Whole, True), (Loose, False)):
        config = types.GenerateContentConfig(response_mime_type="application/json", response_schema=model)
        client.models.generate_content(model="fast", contents="One?", config=config)
        spec = upstream.last["response_format"]["json_schema"]
        assert spec["strict"] is True
        assert openai_takes_as_strict(spec["schema"]) if closed else "additionalProperties" not in spec["schema"]
    assert upstream.last["response_format"]["json_schema"]["schema"]["required"] == ["name"]
    optional = types.FunctionDeclaration(
        name="find",
        parameters_json_schema={
            "type": "object",
            "properties": {"city": {"type": "string"}, "near": {"type": "string"}},
            "required": ["city"],
        },
    )
    validated = types.ToolConfig(function_calling_config=types.FunctionCallingConfig(mode="VALIDATED"))
    client.models.generate_content(
        model="fast",
        contents="Weather?",
        config=types.GenerateContentConfig(
            tools=[types.Tool(function_declarations=[WEATHER, optional])],
            tool_config=validated,
            automatic_function_calling=MANUAL,
        ),
    )
    sent = {t["function"]["name"]: t["function"] for t in upstream.last["tools"]}
    assert sent["get_weather"]["strict"] is True and openai_takes_as_strict(sent["get_weather"]["parameters"])
    assert sent["find"]["strict"] is True and "additionalProperties" not in sent["find"]["parameters"]


def test_validated_mode_with_an_optional_parameter_stays_validated_for_gemini() -> None:
    # The strict form for OpenAI was decided when the request was read: a tool with an optional parameter lost its
    # `strict`, and a Gemini model was then asked in AUTO mode, its calls no longer held to their schemas.
    from tokenomy.providers.gemini_inbound import request_from_gemini
    from tokenomy.providers.gemini_mapping import _tool_config

    find = {
        "name": "find",
        "parametersJsonSchema": {
            "type": "object",
            "properties": {"city": {"type": "string"}, "near": {"type": "string"}},
            "required": ["city"],
        },
    }
    request = request_from_gemini(
        "g",
        {
            "contents": [{"role": "user", "parts": [{"text": "Where?"}]}],
            "tools": [{"functionDeclarations": [find]}],
            "toolConfig": {"functionCallingConfig": {"mode": "VALIDATED"}},
        },
    )
    assert [t.strict for t in request.tools] == [True]
    assert _tool_config(request)["function_calling_config"]["mode"] == "VALIDATED"


GROUNDING = {
    "webSearchQueries": ["weather paris"],
    "groundingChunks": [{"web": {"uri": "https://w.example", "title": "Weather"}}],
}
URL_CONTEXT = {
    "urlMetadata": [{"retrievedUrl": "https://w.example", "urlRetrievalStatus": "URL_RETRIEVAL_STATUS_SUCCESS"}]
}


def _searching_gemini(bodies: list[dict]):
    """A Gemini API that answers as a model with Google Search and URL context does: text, then the candidate's
    groundingMetadata and urlContextMetadata (in a stream's last chunk)."""
    app = FastAPI()
    usage = {"promptTokenCount": 5, "candidatesTokenCount": 3, "toolUsePromptTokenCount": 40, "totalTokenCount": 48}
    last = {"finishReason": "STOP", "groundingMetadata": GROUNDING, "urlContextMetadata": URL_CONTEXT}

    @app.post("/{version}/models/{target}")
    async def generate(target: str, request: Request):
        bodies.append(await request.json())
        text = {"content": {"role": "model", "parts": [{"text": "18C in Paris"}]}, "index": 0}
        if target.endswith(":generateContent"):
            return JSONResponse({"candidates": [{**text, **last}], "usageMetadata": usage})
        chunks = [{"candidates": [text]}, {"candidates": [{"index": 0, **last}], "usageMetadata": usage}]
        return StreamingResponse((f"data: {json.dumps(c)}\r\n\r\n" for c in chunks), media_type="text/event-stream")

    return app


def test_gemini_built_in_tools_reach_gemini_and_what_they_found_comes_back(tmp_path) -> None:
    bodies: list[dict] = []
    with ServerThread(_searching_gemini(bodies)) as gemini:
        config = parse_config({"models": {"g": {"provider": "gemini", "model": GEMINI, "base_url": gemini}}})
        with ServerThread(create_app(config, str(tmp_path / "ledger.duckdb")), lifespan="on") as url:
            client = genai.Client(api_key="unused", http_options={"base_url": url})
            tools = [
                types.Tool(google_search=types.GoogleSearch()),
                types.Tool(url_context=types.UrlContext()),
                types.Tool(function_declarations=[WEATHER]),
            ]
            config = types.GenerateContentConfig(tools=tools, automatic_function_calling=MANUAL)
            reply = client.models.generate_content(model="g", contents="Weather in Paris?", config=config)
            chunks = list(client.models.generate_content_stream(model="g", contents="Weather?", config=config))
    for body in bodies:
        assert sorted(key for tool in body["tools"] for key in tool) == [
            "functionDeclarations",
            "googleSearch",
            "urlContext",
        ]
    for candidate in (reply.candidates[0], chunks[-1].candidates[0]):
        assert candidate.grounding_metadata.model_dump(mode="json", by_alias=True, exclude_none=True) == GROUNDING
        assert candidate.url_context_metadata.url_metadata[0].retrieved_url == "https://w.example"
    assert reply.text == "18C in Paris" and "".join(c.text or "" for c in chunks) == "18C in Paris"
    # The search results' tokens are Gemini's toolUsePromptTokenCount, apart from the prompt's (they were added to
    # promptTokenCount and the field left out); the ledger bills them as input
    for usage in (reply.usage_metadata, chunks[-1].usage_metadata):
        assert (
            usage.prompt_token_count,
            usage.tool_use_prompt_token_count,
            usage.candidates_token_count,
            usage.total_token_count,
        ) == (5, 40, 3, 48)
    assert [(row.input_tokens, row.output_tokens) for row in open_store(str(tmp_path / "ledger.duckdb")).events()] == [
        (45, 3),
        (45, 3),
    ]


def test_audio_and_video_reach_gemini_models_and_are_refused_by_name_elsewhere(served) -> None:
    """Audio (transcription) and video (by URI: a Files API upload, a YouTube link) are Gemini's own inputs, which
    the gateway refused for Gemini models as well ("the gateway carries images and ..."); they reach Gemini models as
    sent, and are refused, named, for another."""
    client, _, upstream = served
    audio = b"RIFF" + bytes(range(256))
    parts = [
        types.Part(text="Transcribe and describe"),
        types.Part.from_bytes(data=audio, mime_type="audio/wav"),
        types.Part.from_uri(file_uri="https://www.youtube.com/watch?v=abc", mime_type="video/mp4"),
    ]
    reply = client.models.generate_content(model="g", contents=[types.Content(role="user", parts=parts)])
    assert f"[audio/wav, {len(audio)} bytes]" in reply.text  # the emulator read the bytes
    assert "[file https://www.youtube.com/watch?v=abc]" in reply.text
    before = len(upstream.bodies)
    ogg = types.Part.from_bytes(data=audio, mime_type="audio/ogg")  # Chat Completions takes wav and mp3 only
    for part, named in ((ogg, "an audio part"), (parts[2], "a video part")):
        with pytest.raises(errors.ClientError) as refused:
            client.models.generate_content(model="fast", contents=[types.Content(role="user", parts=[parts[0], part])])
        assert refused.value.code == 400 and named in refused.value.message, refused.value.message
        assert "contents[0].parts[1]" in refused.value.message, refused.value.message
    assert len(upstream.bodies) == before
    # WAV audio reaches an OpenAI-format model as Chat Completions' input_audio part (OpenAI's audio models take it)
    client.models.generate_content(model="fast", contents=[types.Content(role="user", parts=parts[:2])])
    assert upstream.bodies[-1]["messages"][0]["content"][1] == {
        "type": "input_audio",
        "input_audio": {"data": base64.b64encode(audio).decode(), "format": "wav"},
    }


def test_a_key_s_budget_reserves_audio_at_what_gemini_bills_for_it_not_its_base64_text(tmp_path) -> None:
    """Inline audio was estimated as its base64 text (4 MB: 1.3M tokens, $0.40 on Gemini 2.5 Flash), which a $0.05
    budget refused; Gemini bills audio at 32 tokens a second (4 MB of 128 kbps MP3 is ~4 minutes: ~8,000 tokens)."""
    from tokenomy.gateway.keys import KeyStore

    ledger = tmp_path / "ledger.duckdb"
    secret, _ = KeyStore(open_store(ledger)).create(budget_usd=Decimal("0.05"), period="month", name="app")
    with ServerThread(create_gemini(engine=InstantEngine())) as gemini:
        config = parse_config(
            {"auth": True, "models": {"g": {"provider": "gemini", "model": GEMINI, "base_url": gemini}}}
        )
        with ServerThread(create_app(config, str(ledger)), lifespan="on") as url:
            client = genai.Client(api_key=secret, http_options={"base_url": url})
            audio = types.Part.from_bytes(data=bytes(4_000_000), mime_type="audio/mp3")
            reply = client.models.generate_content(
                model="g", contents=[audio, "Transcribe"], config=types.GenerateContentConfig(max_output_tokens=64)
            )
    assert "[audio/mp3, 4000000 bytes]" in reply.text


def test_markdown_by_its_standard_mime_type_and_a_documents_display_name_are_carried(served, monkeypatch) -> None:
    """A stored file (a fileData URI of Gemini's) goes to Gemini with its name; an OpenAI-format model got it as an
    OpenAI file id, which it is not (test_gemini_agents: a file id goes to its own API only)."""
    from tokenomy.providers import gemini_mapping

    sent: list[list[dict]] = []
    original = gemini_mapping.contents_from_request
    monkeypatch.setattr(
        "tokenomy.providers.gemini_provider.contents_from_request",
        lambda request: sent.append(original(request)) or sent[-1],
    )
    client, _, upstream = served
    stored_uri = "https://generativelanguage.googleapis.com/v1beta/files/abc"
    for mime in ("text/markdown", "text/md"):
        notes = types.Part(inline_data=types.Blob(data=b"# Notes\n", mime_type=mime, display_name="notes.md"))
        stored = types.Part(file_data=types.FileData(file_uri=stored_uri, mime_type=mime, display_name="kept.md"))
        client.models.generate_content(model="fast", contents=[types.Content(role="user", parts=[notes])])
        [inline] = upstream.last["messages"][0]["content"]
        assert inline["file"]["filename"] == "notes.md"
        assert base64.b64decode(inline["file"]["file_data"].split(",", 1)[1]) == b"# Notes\n"
        turn = [types.Content(role="user", parts=[notes, stored])]
        assert client.models.generate_content(model="g", contents=turn).text
        assert sent[-1][0]["parts"][1] == {
            "file_data": {"file_uri": stored_uri, "mime_type": "text/md", "display_name": "kept.md"}
        }


def test_thinking_budget_zero_turns_gemini_thinking_off_and_means_no_thinking_elsewhere(served, monkeypatch) -> None:
    """Gemini 2.5 Flash thinks unless told not to (and bills it as output): thinkingBudget 0 must reach it."""
    from tokenomy.providers import gemini_mapping

    sent: list[dict] = []
    original = gemini_mapping.config_from_request
    monkeypatch.setattr(
        "tokenomy.providers.gemini_provider.config_from_request",
        lambda request: sent.append(original(request)) or sent[-1],
    )
    client, _, upstream = served
    off = types.GenerateContentConfig(thinking_config=types.ThinkingConfig(thinking_budget=0), max_output_tokens=16)
    assert client.models.generate_content(model="g", contents="hi", config=off).text
    assert sent[-1]["thinking_config"] == {"thinking_budget": 0}
    assert client.models.generate_content(model="fast", contents="hi", config=off).text == "plain answer"
    assert "reasoning_effort" not in upstream.last


def test_a_lowercase_thinking_level_as_the_ai_sdk_sends_it_is_that_level(served, monkeypatch) -> None:
    """@ai-sdk/google sends `thinkingLevel: "low"` as the caller wrote it (Gemini reads enums in any case); the
    gateway refused it, taking only "LOW"."""
    from tokenomy.providers import gemini_mapping

    sent: list[dict] = []
    original = gemini_mapping.config_from_request
    monkeypatch.setattr(
        "tokenomy.providers.gemini_provider.config_from_request",
        lambda request: sent.append(original(request)) or sent[-1],
    )
    _, url, upstream = served
    body = {
        "contents": [{"role": "user", "parts": [{"text": "hi"}]}],
        "generationConfig": {"thinkingConfig": {"thinkingLevel": "low"}},
    }
    for model in ("g", "fast"):
        answer = httpx.post(f"{url}/v1beta/models/{model}:generateContent", json=body)
        assert answer.status_code == 200, answer.text
    assert sent[-1]["thinking_config"]["thinking_budget"] == 1024  # LOW, as Gemini 2.5 takes it: a budget
    assert upstream.last["reasoning_effort"] == "low"


def test_a_function_response_without_an_id_answers_the_latest_call_of_its_name(served) -> None:
    client, _, upstream = served
    turn = [
        types.Content(role="user", parts=[types.Part(text="Weather?")]),
        types.Content(
            role="model",
            parts=[types.Part(function_call=types.FunctionCall(name="get_weather", args={"city": "Paris"}))],
        ),
        types.Content(
            role="user",
            parts=[types.Part(function_response=types.FunctionResponse(name="get_weather", response={"temp_c": 18}))],
        ),
    ]
    client.models.generate_content(
        model="fast",
        contents=turn,
        config=types.GenerateContentConfig(
            tools=[types.Tool(function_declarations=[WEATHER])], automatic_function_calling=MANUAL
        ),
    )
    assistant, result = upstream.last["messages"][1:]
    assert result == {"role": "tool", "tool_call_id": assistant["tool_calls"][0]["id"], "content": '{"temp_c": 18}'}


@pytest.mark.parametrize("model", ["g", "fast"])
def test_function_responses_in_a_turn_of_role_function_answer_their_calls(served, model) -> None:
    """Many google-genai applications send their function responses as `Content(role="function", ...)`, which
    Gemini's API takes (as a user turn); the gateway refused it ("expected 'user' or 'model'")."""
    client, _, upstream = served
    turn = [
        types.Content(role="user", parts=[types.Part(text="Weather?")]),
        types.Content(
            role="model",
            parts=[types.Part(function_call=types.FunctionCall(name="get_weather", args={"city": "Paris"}))],
        ),
        types.Content(
            role="function",
            parts=[
                types.Part(function_response=types.FunctionResponse(name="get_weather", response={"output": "18C"}))
            ],
        ),
    ]
    reply = client.models.generate_content(
        model=model,
        contents=turn,
        config=types.GenerateContentConfig(
            tools=[types.Tool(function_declarations=[WEATHER])], automatic_function_calling=MANUAL
        ),
    )
    assert "18C" in reply.text
    if model == "fast":
        assert upstream.last["messages"][-1]["role"] == "tool"


def test_responses_without_ids_to_parallel_calls_of_one_function_answer_them_in_order(served) -> None:
    """Automatic function calling sends each response by name only, in the order of the calls."""
    client, _, upstream = served
    calls = [
        types.Part(function_call=types.FunctionCall(name="get_weather", args={"city": city}))
        for city in ("Paris", "Rome")
    ]
    results = [
        types.Part(function_response=types.FunctionResponse(name="get_weather", response={"output": temp}))
        for temp in ("18C in Paris", "25C in Rome")
    ]
    turn = [
        types.Content(role="user", parts=[types.Part(text="Weather in Paris and Rome?")]),
        types.Content(role="model", parts=calls),
        types.Content(role="user", parts=results),
    ]
    client.models.generate_content(
        model="fast",
        contents=turn,
        config=types.GenerateContentConfig(
            tools=[types.Tool(function_declarations=[WEATHER])], automatic_function_calling=MANUAL
        ),
    )
    assistant, *answers = upstream.last["messages"][1:]
    ids = {json.loads(call["function"]["arguments"])["city"]: call["id"] for call in assistant["tool_calls"]}
    assert {answer["content"]: answer["tool_call_id"] for answer in answers} == {
        "18C in Paris": ids["Paris"],
        "25C in Rome": ids["Rome"],
    }


RATINGS = [
    {"category": "HARM_CATEGORY_HARASSMENT", "probability": "HIGH", "blocked": True},
    {"category": "HARM_CATEGORY_HATE_SPEECH", "probability": "NEGLIGIBLE"},
]
FEEDBACK = {"blockReason": "PROHIBITED_CONTENT", "safetyRatings": RATINGS}
CUT = {"finishReason": "SAFETY", "safetyRatings": RATINGS, "finishMessage": "The answer was blocked: harassment"}


def _blocking_gemini():
    """A Gemini API that blocks a prompt asking for "blocked" (promptFeedback, no candidates, as Gemini answers it),
    and cuts any other answer short for safety (the candidate's safetyRatings and finishMessage)."""
    app = FastAPI()

    @app.post("/{version}/models/{target}")
    @app.post("/{version}/projects/{project}/locations/{location}/publishers/google/models/{target}")  # Vertex AI's
    async def generate(target: str, request: Request):
        usage = {"promptTokenCount": 5, "candidatesTokenCount": 1, "totalTokenCount": 6}
        if "blocked" in json.dumps(await request.json()):
            chunks = [{"promptFeedback": FEEDBACK, "usageMetadata": {"promptTokenCount": 5, "totalTokenCount": 5}}]
        else:
            chunks = [
                {"candidates": [{"content": {"role": "model", "parts": [{"text": "Well"}]}, "index": 0}]},
                {"candidates": [{"index": 0, **CUT}], "usageMetadata": usage},
            ]
        if target.endswith(":generateContent"):
            answer = (
                chunks[-1]
                if len(chunks) == 1
                else {"candidates": [{**chunks[0]["candidates"][0], **CUT}], "usageMetadata": usage}
            )
            return JSONResponse(answer)
        return StreamingResponse((f"data: {json.dumps(c)}\r\n\r\n" for c in chunks), media_type="text/event-stream")

    return app


def test_why_gemini_blocked_a_prompt_or_cut_an_answer_comes_back_as_gemini_said_it(tmp_path) -> None:
    """A prompt Gemini blocks is answered with promptFeedback (its blockReason) and no candidates; the gateway answered
    a candidate with finishReason SAFETY and no promptFeedback, so an application reading
    `response.prompt_feedback.block_reason` (or checking for no candidates) saw no block. An answer cut for safety
    lost its safetyRatings and finishMessage (which google-genai reads on Vertex AI, REST clients on either)."""
    with ServerThread(_blocking_gemini()) as gemini:
        config = parse_config(
            {
                "models": {
                    "g": {"provider": "gemini", "model": GEMINI, "base_url": gemini},
                    "vertex": {
                        "provider": "vertex",
                        "model": GEMINI,
                        "base_url": gemini,
                        "project": "p",
                        "region": "us-central1",
                    },
                }
            }
        )
        with ServerThread(create_app(config, str(tmp_path / "ledger.duckdb")), lifespan="on") as url:
            client = genai.Client(api_key="unused", http_options={"base_url": url})
            blocked = [
                client.models.generate_content(model="g", contents="Say blocked things"),
                *client.models.generate_content_stream(model="g", contents="Say blocked things"),
            ]
            cut = [
                client.models.generate_content(model="g", contents="Hi"),
                list(client.models.generate_content_stream(model="g", contents="Hi"))[-1],
            ]
            answer = httpx.post(
                f"{url}/v1beta/models/vertex:generateContent", json={"contents": [{"parts": [{"text": "Hi"}]}]}
            )
            # The tag is the recorder's: a caller's label of that name (which would pass for a filtered call) is refused.
            labelled = httpx.post(
                f"{url}/v1beta/models/g:generateContent",
                json={"contents": [{"parts": [{"text": "Hi"}]}], "labels": {"content_filter": "none"}},
            )
    for reply in blocked:
        assert not reply.candidates and reply.text is None
        assert reply.prompt_feedback.model_dump(mode="json", by_alias=True, exclude_none=True) == FEEDBACK
        assert reply.usage_metadata.prompt_token_count == 5
    for reply in cut:
        candidate = reply.candidates[0].model_dump(mode="json", by_alias=True, exclude_none=True)
        assert (candidate["finishReason"], candidate["safetyRatings"]) == ("SAFETY", RATINGS)
    assert cut[0].text == "Well"
    # finishMessage, as a REST client reads it: from Vertex AI (google-genai drops it from a Gemini API answer)
    assert {key: answer.json()["candidates"][0].get(key) for key in CUT} == CUT
    rows = open_store(str(tmp_path / "ledger.duckdb")).events()
    assert [(row.input_tokens, row.output_tokens) for row in rows] == [(5, 0), (5, 0), (5, 1), (5, 1), (5, 1)]
    # Each row says it was filtered (billed, as Gemini bills the prompt): before, it read as an ordinary answer.
    # A refused prompt's row names Gemini's blockReason, not the SAFETY an answer cut short gives.
    tags = [row.tags.get("content_filter") for row in rows]
    assert tags == ["prompt blocked: PROHIBITED_CONTENT"] * 2 + ["SAFETY"] * 3, tags
    assert labelled.status_code == 400 and "content_filter" in labelled.json()["error"]["message"], labelled.text


def test_vertex_ais_model_selection_reaches_a_vertex_model_under_the_sdks_name(tmp_path) -> None:
    """google-genai on Vertex AI sends `model_selection_config` as generationConfig.modelConfig: the gateway read it
    as `model_config`, no field of Gemini's, and refused it for Vertex AI's models, which take it."""
    selection = types.GenerateContentConfig(
        model_selection_config=types.ModelSelectionConfig(feature_selection_preference="PRIORITIZE_COST"),
        max_output_tokens=8,
    )
    with ServerThread(create_gemini(engine=InstantEngine())) as gemini, RecordingOpenAI() as upstream:
        config = parse_config(
            {
                "models": {
                    "vx": {
                        "provider": "vertex",
                        "model": GEMINI,
                        "base_url": gemini,
                        "project": "p",
                        "region": "us-central1",
                    },
                    "g": {"provider": "gemini", "model": GEMINI, "base_url": gemini},
                    "fast": {"provider": "openai", "model": "up-model", "base_url": upstream.url, "price_as": HAIKU},
                }
            }
        )
        with ServerThread(create_app(config, str(tmp_path / "ledger.duckdb")), lifespan="on") as url:
            client = genai.Client(vertexai=True, api_key="unused", http_options={"base_url": url})
            assert client.models.generate_content(model="vx", contents="hi", config=selection).text
            for model, named in (
                ("g", "model_selection_config parameter is only supported in Gemini Enterprise Agent Platform mode"),
                ("fast", "generationConfig.modelConfig: the gateway carries this field to Gemini models only"),
            ):
                with pytest.raises(errors.ClientError) as refused:
                    client.models.generate_content(model=model, contents="hi", config=selection)
                assert refused.value.code == 400 and named in refused.value.message, refused.value.message


def test_enum_output_reaches_gemini_models_and_is_refused_by_name_elsewhere(served, monkeypatch) -> None:
    """`response_mime_type="text/x.enum"` with an enum schema (Gemini's documented classification output: the answer
    is one of the values, bare) was refused for every model, Gemini's too; it reaches Gemini models as sent."""
    import enum

    from tokenomy.providers import gemini_mapping

    class Mood(enum.Enum):
        HAPPY = "happy"
        SAD = "sad"

    sent: list[dict] = []
    original = gemini_mapping.config_from_request
    monkeypatch.setattr(
        "tokenomy.providers.gemini_provider.config_from_request",
        lambda request: sent.append(original(request)) or sent[-1],
    )
    client = served[0]
    config = types.GenerateContentConfig(response_mime_type="text/x.enum", response_schema=Mood)
    assert client.models.generate_content(model="g", contents="I won!", config=config).text
    assert sent[-1]["response_mime_type"] == "text/x.enum"
    assert types.Schema.model_validate(sent[-1]["response_schema"]).enum == ["happy", "sad"]
    with pytest.raises(errors.ClientError) as refused:
        client.models.generate_content(model="fast", contents="I won!", config=config)
    assert refused.value.code == 400 and refused.value.message.startswith(
        "generationConfig.responseMimeType: the gateway carries this field to Gemini models only, and `fast` may reach"
    )


@pytest.mark.parametrize("model", ["g", "fast"])
def test_any_with_every_declared_function_allowed_is_a_call_of_any_of_them(served, monkeypatch, model) -> None:
    """LangChain's `bind_tools(tools, tool_choice="any")` and pydantic-ai's output tools send mode ANY with every
    declared function's name in allowedFunctionNames: the gateway refused it ("ANY with one allowed function name")
    whenever two tools were bound. It is a call of any of them, which every provider takes."""
    from tokenomy.providers import gemini_mapping

    sent: list[dict] = []
    original = gemini_mapping.config_from_request
    monkeypatch.setattr(
        "tokenomy.providers.gemini_provider.config_from_request",
        lambda request: sent.append(original(request)) or sent[-1],
    )
    client, url, upstream = served
    config = types.GenerateContentConfig(
        tools=[types.Tool(function_declarations=[WEATHER, TIME])],
        automatic_function_calling=MANUAL,
        tool_config=types.ToolConfig(
            function_calling_config=types.FunctionCallingConfig(
                mode="ANY", allowed_function_names=["get_weather", "get_time"]
            )
        ),
    )
    reply = client.models.generate_content(model=model, contents="Weather?", config=config)
    assert reply.function_calls
    if model == "g":
        assert sent[-1]["tool_config"] == {"function_calling_config": {"mode": "ANY"}}
    else:
        assert upstream.last["tool_choice"] == "required"
    # A name no declaration has is Gemini's 400, named, among several as alone.
    body = {
        "contents": [{"parts": [{"text": "hi"}]}],
        "tools": [{"functionDeclarations": [{"name": "get_weather"}, {"name": "get_time"}]}],
        "toolConfig": {"functionCallingConfig": {"mode": "ANY", "allowedFunctionNames": ["get_weather", "get_date"]}},
    }
    refused = httpx.post(f"{url}/v1beta/models/{model}:generateContent", json=body)
    assert refused.status_code == 400 and refused.json()["error"]["message"].startswith(
        "toolConfig.functionCallingConfig.allowedFunctionNames: 'get_date' is not declared"
    ), refused.text


@pytest.mark.parametrize(
    ("body", "named"),
    [
        (
            {"contents": [{"role": "user", "parts": [{"executableCode": {"code": "1"}}]}]},
            "contents[0].parts[0].executableCode: not carried",
        ),
        (
            {"tools": [{"googleSearch": {}}]},
            "tools[0].googleSearch: the gateway carries this field to Gemini models only",
        ),
        ({"tools": [{"codeExecution": {}}], "model": "g"}, "tools[0].codeExecution: not carried by the gateway"),
        (
            {"contents": [{"role": "user", "parts": [{"inlineData": {"mimeType": "image/png", "data": "%%"}}]}]},
            "contents[0].parts[0].inlineData.data: not valid base64",
        ),
        # (wav and mp3 go to an OpenAI-format model as its input_audio part; Chat Completions takes no other audio)
        (
            {"contents": [{"role": "user", "parts": [{"inlineData": {"mimeType": "audio/ogg", "data": "AA=="}}]}]},
            "cannot take an audio part (contents[0].parts[0])",
        ),
        (
            {
                "contents": [
                    {"role": "user", "parts": [{"inlineData": {"mimeType": "application/zip", "data": "AA=="}}]}
                ],
                "model": "g",
            },
            "contents[0].parts[0].inlineData.mimeType: the gateway carries images, audio and video",
        ),
        (
            {"contents": [{"role": "user", "parts": [{"functionResponse": {"name": "f", "response": {}}}]}]},
            "contents[0].parts[0].functionResponse: no earlier functionCall",
        ),
        ({"generationConfig": {"maxOutputTokens": "ten"}}, "generationConfig.maxOutputTokens"),
        (
            {"generationConfig": {"thinkingConfig": {"thinkingBudget": 128, "includeThoughts": "no"}}},
            "generationConfig.thinkingConfig.includeThoughts: expected true or false",
        ),
        # names with AUTO, which Gemini takes with ANY and VALIDATED only
        (
            {
                "tools": [{"functionDeclarations": [{"name": "a"}, {"name": "b"}, {"name": "c"}]}],
                "toolConfig": {"functionCallingConfig": {"mode": "AUTO", "allowedFunctionNames": ["a", "b"]}},
            },
            "toolConfig.functionCallingConfig.allowedFunctionNames: Gemini takes names with mode ANY or VALIDATED only",
        ),
        (
            {"safetySettings": [{"category": "HARM_CATEGORY_HARASSMENT", "threshold": "BLOCK_LOW_AND_ABOVE"}]},
            "safetySettings: the gateway carries this field to Gemini models only",
        ),
        (
            {"generationConfig": {"responseModalities": ["AUDIO"]}},
            "generationConfig.responseModalities: not carried by the gateway (its answers are one candidate, of text",
        ),
        ({"generationConfig": {"candidateCount": 2}, "model": "g"}, "generationConfig.candidateCount"),
        ({"generationConfig": {"candidateCount": 2}}, "generationConfig.candidateCount: not carried by the gateway"),
        (
            {
                "contents": [{"role": "user", "parts": [{"inlineData": {"mimeType": "image/png", "data": "AA=="}}]}],
                "model": "text-only",
            },
            "contents[0].parts[0]",
        ),
        ({"cachedContents": "x"}, "cachedContents: not carried"),
        (
            {"generationConfig": {"thinkingConfig": {"thinkingLevel": ["HIGH"]}}},
            "generationConfig.thinkingConfig.thinkingLevel: expected one of",
        ),
        ({"generationConfig": []}, "generationConfig: expected an object"),
        (
            {"contents": [{"role": "user", "parts": [{"fileData": {"mimeType": [], "fileUri": "gs://b/a.pdf"}}]}]},
            "contents[0].parts[0].fileData.mimeType: expected a string",
        ),
        (
            {
                "contents": [
                    {
                        "role": "user",
                        "parts": [{"inlineData": {"mimeType": "image/png", "data": "AA==", "displayName": "a.png"}}],
                    }
                ]
            },
            "contents[0].parts[0].inlineData.displayName: the gateway carries a name for documents only",
        ),
        # google-genai reads these enums with `.upper()`: anything but a string was an AttributeError, a 500
        ({"safetySettings": [{"category": 0, "threshold": "BLOCK_NONE"}], "model": "g"}, "safetySettings: Gemini"),
        (
            {"safetySettings": [{"category": "HARM_CATEGORY_HARASSMENT", "threshold": ["OFF"]}], "model": "g"},
            "safetySettings: Gemini",
        ),
        (
            {
                "safetySettings": [{"category": "HARM_CATEGORY_HARASSMENT", "threshold": "OFF", "method": {}}],
                "model": "g",
            },
            "safetySettings: Gemini",
        ),
        ({"generationConfig": {"mediaResolution": 2**70}, "model": "g"}, "generationConfig.mediaResolution: Gemini"),
        # `thought` is a bool: the text "no" was read as true, and the answer part as a thought (dropped for OpenAI)
        (
            {
                "contents": [
                    {"role": "user", "parts": [{"text": "hi"}]},
                    {"role": "model", "parts": [{"text": "the answer", "thought": "no"}]},
                    {"role": "user", "parts": [{"text": "and?"}]},
                ]
            },
            "contents[1].parts[0].thought: expected true or false",
        ),
        # Gemini's seed is an int32, which its API refuses beyond: carried past it to any model
        ({"generationConfig": {"seed": 2**31}}, "generationConfig.seed: expected an integer from -2147483648"),
        ({"generationConfig": {"seed": -(2**31) - 1}, "model": "g"}, "generationConfig.seed: expected an integer from"),
        # Gemini refuses a forced call of a function not declared, or of any function when none is: an OpenAI-format model
        # got tool_choice naming it (or "required" without tools), which OpenAI refuses under its own names
        (
            {
                "tools": [{"functionDeclarations": [{"name": "get_weather"}]}],
                "toolConfig": {"functionCallingConfig": {"mode": "ANY", "allowedFunctionNames": ["get_time"]}},
            },
            "toolConfig.functionCallingConfig.allowedFunctionNames: 'get_time' is not declared",
        ),
        (
            {"toolConfig": {"functionCallingConfig": {"mode": "ANY"}}},
            "toolConfig.functionCallingConfig.mode: ANY needs functionDeclarations in tools",
        ),
        # propertyOrdering holding a list was a 500 (unhashable), and text was left out unsaid
        (
            {
                "generationConfig": {
                    "responseMimeType": "application/json",
                    "responseSchema": {
                        "type": "OBJECT",
                        "properties": {"a": {"type": "STRING"}},
                        "propertyOrdering": [["a"]],
                    },
                }
            },
            "generationConfig.responseSchema.propertyOrdering: expected a list of property names",
        ),
        (
            {
                "tools": [
                    {
                        "functionDeclarations": [
                            {
                                "name": "f",
                                "parameters": {
                                    "type": "OBJECT",
                                    "properties": {
                                        "p": {
                                            "type": "OBJECT",
                                            "properties": {"a": {"type": "STRING"}},
                                            "property_ordering": "a",
                                        }
                                    },
                                },
                            }
                        ]
                    }
                ],
                "model": "g",
            },
            "tools[0].functionDeclarations[0].parameters.properties.p.property_ordering: expected a list of property names",
        ),
        # a name that is no string was told as an unsupported count of names ("mode 'ANY' with 1 names")
        (
            {
                "tools": [{"functionDeclarations": [{"name": "get_weather"}]}],
                "toolConfig": {"functionCallingConfig": {"mode": "ANY", "allowedFunctionNames": [1]}},
            },
            "toolConfig.functionCallingConfig.allowedFunctionNames: expected a list of function names",
        ),
    ],
)
def test_what_the_gateway_cannot_carry_is_a_400_naming_it(served, body, named) -> None:
    url = served[1]
    model = body.pop("model", "fast")
    request = {"contents": [{"role": "user", "parts": [{"text": "hi"}]}], **body}
    answer = httpx.post(f"{url}/v1beta/models/{model}:generateContent", json=request)
    assert answer.status_code == 400, answer.text
    error = answer.json()["error"]
    assert error["status"] == "INVALID_ARGUMENT" and named in error["message"]


@pytest.mark.parametrize("model", ["g", "fast"])
def test_two_fields_gemini_takes_one_of_are_a_400_naming_both(served, monkeypatch, model) -> None:
    """A thinking level and a thinking budget, or a response schema in both of Gemini's forms (a function's parameters
    or result too), are refused by Gemini's API. The gateway read the level and dropped the budget, and the JSON
    Schema and dropped the other, answering as if the caller had sent one; each is now a 400 naming both, as sent,
    before anything reaches a model."""
    from tokenomy.providers import gemini_mapping

    sent: list[dict] = []
    original = gemini_mapping.config_from_request
    monkeypatch.setattr(
        "tokenomy.providers.gemini_provider.config_from_request",
        lambda request: sent.append(original(request)) or sent[-1],
    )
    client, _, upstream = served
    before = len(upstream.bodies)
    schema = {"type": "object", "properties": {"b": {"type": "integer"}}}
    both = types.FunctionDeclaration(
        name="f", parameters=types.Schema(type="OBJECT", properties={}), parameters_json_schema=schema
    )
    cases = [
        (
            types.GenerateContentConfig(
                thinking_config=types.ThinkingConfig(thinking_level=types.ThinkingLevel.LOW, thinking_budget=5000)
            ),
            # as google-genai sends them (snake_case inside thinkingConfig)
            "generationConfig.thinkingConfig.thinking_budget and generationConfig.thinkingConfig.thinking_level: Gemini "
            "takes one or the other, not both (thinking_level for Gemini 3 and later models, thinking_budget for Gemini "
            "2.5); remove one",
        ),
        (
            types.GenerateContentConfig(
                response_mime_type="application/json",
                response_json_schema=schema,
                response_schema=types.Schema(type="OBJECT", properties={"a": {"type": "STRING"}}),
            ),
            "generationConfig.responseSchema and generationConfig.responseJsonSchema: Gemini takes one or the other, "
            "not both (responseJsonSchema is JSON Schema, responseSchema Gemini's OpenAPI-style Schema); remove one",
        ),
        (
            types.GenerateContentConfig(
                tools=[types.Tool(function_declarations=[both])], automatic_function_calling=MANUAL
            ),
            "tools[0].functionDeclarations[0].parameters and tools[0].functionDeclarations[0].parameters_json_schema: ",
        ),
    ]
    for config, named in cases:
        with pytest.raises(errors.ClientError) as refused:
            client.models.generate_content(model=model, contents="hi", config=config)
        assert refused.value.code == 400 and named in refused.value.message
    body = {
        "contents": [{"role": "user", "parts": [{"text": "hi"}]}],
        "generationConfig": {"thinkingConfig": {"thinkingLevel": "LOW", "thinkingBudget": 5000}},
    }
    answer = httpx.post(f"{served[1]}/v1beta/models/{model}:generateContent", json=body)
    assert answer.status_code == 400 and answer.json()["error"]["message"].startswith(
        "generationConfig.thinkingConfig.thinkingBudget and generationConfig.thinkingConfig.thinkingLevel: "
    )
    assert not sent and len(upstream.bodies) == before


def test_safety_settings_that_turn_every_filter_off_ask_nothing_of_other_providers(served) -> None:
    # Instructor's from_genai sends every harm category at OFF on each call: the gateway refused it for every model
    # but Gemini ("safetySettings: ... Gemini models only"). Another provider has no such filter to turn off.
    client, _, upstream = served
    off = [
        types.SafetySetting(category=c, threshold="OFF")
        for c in ("HARM_CATEGORY_HATE_SPEECH", "HARM_CATEGORY_HARASSMENT", "HARM_CATEGORY_DANGEROUS_CONTENT")
    ]
    off.append(types.SafetySetting(category="HARM_CATEGORY_SEXUALLY_EXPLICIT", threshold="BLOCK_NONE"))
    config = types.GenerateContentConfig(safety_settings=off, max_output_tokens=8)
    assert client.models.generate_content(model="fast", contents="hi", config=config).text == "plain answer"
    assert not {"safety_settings", "safetySettings"} & set(upstream.last)
    assert (
        "".join(c.text or "" for c in client.models.generate_content_stream(model="fast", contents="hi", config=config))
        == "plain answer"
    )
    assert client.models.generate_content(model="g", contents="hi", config=config).text  # Gemini gets them
    # A filter that blocks something is still Gemini's only, and refused by name elsewhere.
    strict = types.GenerateContentConfig(
        safety_settings=[types.SafetySetting(category="HARM_CATEGORY_HARASSMENT", threshold="BLOCK_ONLY_HIGH"), *off]
    )
    with pytest.raises(errors.ClientError, match="safetySettings: the gateway carries this field to Gemini"):
        client.models.generate_content(model="fast", contents="hi", config=strict)


def test_safety_settings_that_turn_every_filter_off_reach_gemini_on_a_route_that_may_reach_another(tmp_path) -> None:
    # A Gemini model with a fallback elsewhere (or the reverse): one set of pass-through fields goes to every model of
    # the route, and settings turning every filter off were refused as the other provider's field. They reach Gemini as
    # sent and are left out for the other, which has no such filters; a filter that blocks something is still refused.
    bodies: list[dict] = []
    off = [
        types.SafetySetting(category="HARM_CATEGORY_HARASSMENT", threshold="OFF"),
        types.SafetySetting(category="HARM_CATEGORY_DANGEROUS_CONTENT", threshold="BLOCK_NONE"),
    ]
    config = types.GenerateContentConfig(safety_settings=off, max_output_tokens=8)
    with (
        ServerThread(capturing(create_gemini(engine=InstantEngine()), bodies)) as gemini,
        RecordingOpenAI() as upstream,
    ):
        models = {
            "g": {"provider": "gemini", "model": GEMINI, "base_url": gemini},
            "fast": {"provider": "openai", "model": "up-model", "base_url": upstream.url, "price_as": HAIKU},
        }
        routes = {
            "g-then-fast": {"model": "g", "fallback": ["fast"]},
            "fast-then-g": {"model": "fast", "fallback": ["g"]},
        }
        app = create_app(parse_config({"models": models, "routes": routes}), str(tmp_path / "ledger.duckdb"))
        with ServerThread(app, lifespan="on") as url:
            client = genai.Client(api_key="unused", http_options={"base_url": url})
            assert client.models.generate_content(model="g-then-fast", contents="hi", config=config).text
            streamed = client.models.generate_content_stream(model="g-then-fast", contents="hi", config=config)
            assert "".join(c.text or "" for c in streamed)
            sent = [
                {"category": "HARM_CATEGORY_HARASSMENT", "threshold": "OFF"},
                {"category": "HARM_CATEGORY_DANGEROUS_CONTENT", "threshold": "BLOCK_NONE"},
            ]
            assert [b.get("safetySettings") for b in bodies] == [sent, sent]
            answer = client.models.generate_content(model="fast-then-g", contents="hi", config=config)
            assert answer.text == "plain answer" and len(upstream.bodies) == 1
            assert not {"safety_settings", "safetySettings"} & set(upstream.last)
            whole = {"contents": [{"role": "user", "parts": [{"text": "hi"}]}], "safetySettings": sent}
            counted = httpx.post(f"{url}/v1beta/models/g-then-fast:countTokens", json={"generateContentRequest": whole})
            assert counted.status_code == 200 and counted.json()["totalTokens"] > 0, counted.text
            strict = types.GenerateContentConfig(
                safety_settings=[
                    types.SafetySetting(category="HARM_CATEGORY_HARASSMENT", threshold="BLOCK_ONLY_HIGH"),
                    *off,
                ]
            )
            for model in ("g-then-fast", "fast-then-g"):
                with pytest.raises(
                    errors.ClientError, match="safetySettings: the gateway carries this field to Gemini models only"
                ):
                    client.models.generate_content(model=model, contents="hi", config=strict)
            assert len(upstream.bodies) == 1


def test_gemini_fields_reach_a_gemini_model_and_the_sdk_raises_gateway_errors(served) -> None:
    client, url, _ = served
    settings = [types.SafetySetting(category="HARM_CATEGORY_HARASSMENT", threshold="BLOCK_NONE")]
    reply = client.models.generate_content(
        model="g", contents="hi", config=types.GenerateContentConfig(safety_settings=settings, max_output_tokens=8)
    )
    assert reply.text and reply.usage_metadata.prompt_token_count > 0
    # Asking for what every answer is (one text candidate, no log probabilities) is no field to refuse.
    for model in ("g", "fast"):
        assert client.models.generate_content(
            model=model,
            contents="hi",
            config=types.GenerateContentConfig(
                candidate_count=1, response_modalities=["TEXT"], response_logprobs=False, max_output_tokens=8
            ),
        ).text
    with pytest.raises(errors.ClientError, match=r"generationConfig\.candidateCount: not carried by the gateway"):
        client.models.generate_content(
            model="g", contents="hi", config=types.GenerateContentConfig(candidate_count=2)
        )  # one candidate is all a ChatResponse holds: refused, not answered with one
    with pytest.raises(errors.ClientError) as missing:
        client.models.generate_content(model="nope", contents="hi")
    assert missing.value.code == 404
    wrong = httpx.post(f"{url}/v1beta/models/g:embedContent", json={"content": {"parts": [{"text": "hi"}]}})
    assert wrong.status_code == 404 and "countTokens" in wrong.json()["error"]["message"]
    empty = httpx.post(f"{url}/v1beta/models/g:countTokens", json={"contents": []})  # served: a count of nothing
    assert empty.status_code == 400 and empty.json()["error"]["message"].startswith("contents")
    # The SDK in Vertex AI mode posts to Vertex's paths (served: test_vertex_gemini); another Vertex path is refused
    # in Google's shape, saying what of Vertex AI the gateway serves.
    vertex = genai.Client(vertexai=True, api_key="unused", http_options={"base_url": url})
    assert vertex.models.generate_content(model="g", contents="hi").text
    refused = httpx.post(f"{url}/v1beta1/projects/p/locations/global/endpoints/openapi/chat/completions", json={})
    error = refused.json()["error"]
    assert refused.status_code == 404 and error["status"] == "NOT_FOUND"
    assert "of Vertex AI it serves Gemini's generateContent" in error["message"]


def test_the_sdks_top_k_which_it_sends_as_a_float_is_carried_as_the_integer_it_is(served) -> None:
    # google-genai types `top_k` as a float: `top_k=3` goes on the wire as `"topK": 3.0`, which the API takes; the
    # gateway refused it as "expected an integer".
    client, url, upstream = served
    config = types.GenerateContentConfig(top_k=3, max_output_tokens=8)
    assert client.models.generate_content(model="g", contents="hi", config=config).text
    client.models.generate_content(model="fast", contents="hi", config=config)
    assert upstream.last["top_k"] == 3 and isinstance(upstream.last["top_k"], int)
    half = httpx.post(
        f"{url}/v1beta/models/fast:generateContent",
        json={"contents": [{"parts": [{"text": "hi"}]}], "generationConfig": {"topK": 2.5}},
    )
    assert half.status_code == 400 and half.json()["error"]["message"] == "generationConfig.topK: expected an integer"


def test_a_gemini_models_own_finish_reason_comes_back_as_gemini_said_it(served, monkeypatch) -> None:
    from tokenomy.emulate import gemini_api, gemini_response

    answer = gemini_response.answer

    def recited(*args):
        for event in answer(*args):
            yield event if event[0] != "finish" else (*event[:3], "RECITATION")

    monkeypatch.setattr(gemini_api, "answer", recited)
    monkeypatch.setattr(gemini_response, "answer", recited)
    client = served[0]
    reply = client.models.generate_content(model="g", contents="hi")
    assert reply.candidates[0].finish_reason == types.FinishReason.RECITATION
    chunks = list(client.models.generate_content_stream(model="g", contents="hi"))
    assert chunks[-1].candidates[0].finish_reason == types.FinishReason.RECITATION


def test_the_sdk_lists_and_gets_the_gateways_models(served) -> None:
    client, url, _ = served
    listed = {m.name: m for m in client.models.list()}
    assert set(listed) == {"models/g", "models/fast", "models/text-only", "models/local"}
    model = client.models.get(model="g")
    assert (model.name, model.display_name) == ("models/g", "g")
    assert model.supported_actions == ["generateContent", "streamGenerateContent"]
    assert model.input_token_limit == 1048576  # gemini-2.5-flash's context window in the price catalog
    with pytest.raises(errors.ClientError, match="`nope` does not exist on this gateway") as missing:
        client.models.get(model="nope")
    assert missing.value.code == 404 and missing.value.status == "NOT_FOUND"
    beta = genai.Client(api_key="unused", http_options={"base_url": url, "api_version": "v1beta"})
    assert beta.models.get(model="models/g") == model and len(list(beta.models.list())) == 4
    assert httpx.get(f"{url}/v1/models").json()["object"] == "list"  # the openai SDK's listing is unchanged


def test_a_gateway_key_rides_in_the_sdks_api_key_and_its_budget_holds(tmp_path) -> None:
    from tokenomy.gateway.keys import KeyStore

    ledger = tmp_path / "ledger.duckdb"
    secret, key = KeyStore(open_store(ledger)).create(budget_usd=Decimal("0.01"), period="month", name="app")
    with ServerThread(create_gemini(engine=InstantEngine())) as gemini:
        config = parse_config(
            {"auth": True, "models": {"g": {"provider": "gemini", "model": GEMINI, "base_url": gemini}}}
        )
        with ServerThread(create_app(config, str(ledger)), lifespan="on") as url:
            stranger = genai.Client(api_key="wrong", http_options={"base_url": url})
            with pytest.raises(errors.ClientError, match="Invalid or revoked API key") as refused:
                stranger.models.generate_content(model="g", contents="hi")
            assert refused.value.code == 401
            for listing in (lambda: list(stranger.models.list()), lambda: stranger.models.get(model="g")):
                with pytest.raises(errors.ClientError, match="Invalid or revoked API key"):
                    listing()
            anonymous = httpx.post(f"{url}/v1beta/models/g:generateContent", json={"contents": "hi"})
            assert anonymous.status_code == 401 and "x-goog-api-key" in anonymous.json()["error"]["message"]
            client = genai.Client(api_key=secret, http_options={"base_url": url})
            assert [m.name for m in client.models.list()] == ["models/g", "models/local"]
            reply = client.models.generate_content(
                model="g", contents="hi", config=types.GenerateContentConfig(max_output_tokens=5)
            )
            # 20k output tokens at Gemini 2.5 Flash's $2.50 per million could cost $0.05: more than the $0.01 budget.
            with pytest.raises(errors.ClientError, match="Budget exhausted") as spent:
                client.models.generate_content(
                    model="g", contents="hi", config=types.GenerateContentConfig(max_output_tokens=20_000)
                )
            assert spent.value.code == 429 and spent.value.status == "RESOURCE_EXHAUSTED"
    [row] = open_store(str(ledger)).events()
    assert (row.key_id, row.route, row.request_id) == (key.key_id, "g", reply.response_id)


def test_a_fault_after_the_stream_began_ends_it_with_an_error_chunk(tmp_path) -> None:
    upstream = ScriptedOpenAI([(200, {}, "cut")])  # streams a token, then the connection drops
    config = parse_config(
        {
            "models": {"up": {"provider": "openai", "model": "up", "base_url": upstream.url, "price_as": HAIKU}},
            "routes": {"once": {"model": "up", "retry": {"max_attempts": 1}}},
        }
    )
    with ServerThread(create_app(config, str(tmp_path / "ledger.duckdb")), lifespan="on") as url:
        client = genai.Client(api_key="unused", http_options={"base_url": url})
        with pytest.raises(errors.APIError, match="upstream"):
            list(client.models.generate_content_stream(model="once", contents="hi"))
    upstream.close()
    [row] = open_store(str(tmp_path / "ledger.duckdb")).events()
    assert row.outcome == "server_error" and row.output_tokens == 1  # what the provider billed is recorded


def test_an_upstream_client_error_without_a_google_status_is_invalid_argument(tmp_path) -> None:
    upstream = ScriptedOpenAI([(422, {}, "unprocessable")])
    config = parse_config(
        {
            "models": {"up": {"provider": "openai", "model": "up", "base_url": upstream.url, "price_as": HAIKU}},
            "routes": {"once": {"model": "up", "retry": {"max_attempts": 1}}},
        }
    )
    with ServerThread(create_app(config, str(tmp_path / "ledger.duckdb")), lifespan="on") as url:
        client = genai.Client(api_key="unused", http_options={"base_url": url})
        with pytest.raises(errors.ClientError) as failed:
            client.models.generate_content(model="once", contents="hi")
    upstream.close()
    assert (failed.value.code, failed.value.status) == (422, "INVALID_ARGUMENT")


@pytest.mark.parametrize("model", ["g", "fast"])
def test_every_streamed_chunk_has_a_content_as_gemini_sends_it(served, model) -> None:
    """LlamaIndex's GoogleGenAI reads `candidate.content.parts` on each chunk of a streamed structured answer: the
    gateway's last chunk (finish reason and usage) had no content, and the stream failed at its end."""
    schema = {"type": "object", "properties": {"n": {"type": "integer"}}, "required": ["n"]}
    config = types.GenerateContentConfig(
        max_output_tokens=64, response_mime_type="application/json", response_json_schema=schema
    )
    chunks = list(served[0].models.generate_content_stream(model=model, contents="Count", config=config))
    text = ""
    for chunk in chunks:
        parts = chunk.candidates[0].content.parts or []  # as llama_index.llms.google_genai reads it
        text += parts[0].text if parts and parts[0].text else ""
    assert chunks[-1].candidates[0].finish_reason == "STOP" and chunks[-1].candidates[0].content.role == "model"
    if model == "g":
        assert json.loads(text) == {"n": 1}


def test_an_array_response_schema_reaches_gemini_and_its_answer_comes_back(served) -> None:
    # `response_schema=list[Item]` was a 502 through the gateway: the Gemini emulator refused any schema but an
    # object's, where the API takes an array (or any type) for the response.
    client = served[0]

    class Item(pydantic.BaseModel):
        name: str

    for stream in (False, True):
        config = types.GenerateContentConfig(response_mime_type="application/json", response_schema=list[Item])
        if stream:
            text = "".join(
                c.text or "" for c in client.models.generate_content_stream(model="g", contents="Items?", config=config)
            )
        else:
            reply = client.models.generate_content(model="g", contents="Items?", config=config)
            text = reply.text
            assert isinstance(reply.parsed, list)
        assert isinstance(json.loads(text), list)


def test_a_stop_sequence_ends_a_gemini_models_answer_before_it(served) -> None:
    # `stop_sequences` reached the Gemini emulator and its answer went on past the sequence (only the Anthropic and
    # Bedrock emulators matched them): the answer ends before the sequence, streamed or not, finished as STOP.
    client = served[0]
    ask = "Count to ten now"
    free = client.models.generate_content(
        model="g", contents=ask, config=types.GenerateContentConfig(max_output_tokens=64)
    ).text
    config = types.GenerateContentConfig(stop_sequences=["ten"], max_output_tokens=64)
    whole = client.models.generate_content(model="g", contents=ask, config=config)
    chunks = list(client.models.generate_content_stream(model="g", contents=ask, config=config))
    assert whole.text == "".join(c.text or "" for c in chunks) == free[: free.index("ten")]
    assert whole.candidates[0].finish_reason == chunks[-1].candidates[0].finish_reason == "STOP"


def test_int64_schema_fields_sent_as_text_reach_other_providers_as_numbers(served) -> None:
    # Google's Schema keeps minItems, maxItems, minLength, maxLength, minProperties and maxProperties as int64, which
    # proto3 JSON writes as text ("1") and Google's discovery-based REST clients send so: the gateway passed the text
    # on, and OpenAI got a JSON schema with a string where a number belongs.
    _, url, upstream = served
    city = {"type": "STRING", "minLength": "1", "max_length": "40"}  # either spelling, as proto3 JSON reads both
    schema = {
        "type": "OBJECT",
        "properties": {"cities": {"type": "ARRAY", "items": city, "minItems": "1", "maxItems": "3"}},
        "required": ["cities"],
        "minProperties": "1",
        "maxProperties": "1",
    }
    body = {
        "contents": [{"parts": [{"text": "Cities?"}]}],
        "tools": [{"functionDeclarations": [{"name": "pick", "parameters": schema}]}],
        "generationConfig": {"responseMimeType": "application/json", "responseSchema": schema},
    }
    answer = httpx.post(f"{url}/v1beta/models/fast:generateContent", json=body)
    assert answer.status_code == 200, answer.text
    tool = upstream.last["tools"][0]["function"]["parameters"]
    for sent in (upstream.last["response_format"]["json_schema"]["schema"], tool):
        assert sent["minProperties"] == 1 and sent["maxProperties"] == 1
        cities = sent["properties"]["cities"]
        assert (cities["minItems"], cities["maxItems"]) == (1, 3)
        assert (cities["items"]["minLength"], cities["items"]["maxLength"]) == (1, 40)
    # Text that is no integer is a 400 naming where it is.
    wrong = {
        "contents": [{"parts": [{"text": "hi"}]}],
        "generationConfig": {
            "responseMimeType": "application/json",
            "responseSchema": {"type": "ARRAY", "items": {"type": "STRING", "maxLength": "forty"}},
        },
    }
    refused = httpx.post(f"{url}/v1beta/models/fast:generateContent", json=wrong)
    assert refused.status_code == 400, refused.text
    assert refused.json()["error"]["message"].startswith("generationConfig.responseSchema.items.maxLength:")
    # A count no int64 holds, or below 0, was carried as the huge or negative number.
    for text in ("-5", str(2**63), "99999999999999999999999"):
        schema = {"type": "ARRAY", "items": {"type": "STRING"}, "minItems": text}
        wrong["generationConfig"]["responseSchema"] = schema
        refused = httpx.post(f"{url}/v1beta/models/fast:generateContent", json=wrong)
        assert refused.status_code == 400 and "from 0 to 2^63-1" in refused.json()["error"]["message"], refused.text


def test_an_upstreams_499_reaches_a_gemini_caller_as_cancelled(tmp_path) -> None:
    # An OpenAI-format upstream behind nginx answers 499 when it took the request as cancelled; the gateway passes a
    # client error's status on, and Google's error shape named it INVALID_ARGUMENT, telling the caller its request
    # was malformed. Google's status for 499 is CANCELLED.
    upstream = FastAPI()

    @upstream.post("/v1/chat/completions")
    async def cancelled() -> JSONResponse:
        return JSONResponse({"error": {"message": "client closed request", "type": "cancelled"}}, status_code=499)

    with ServerThread(upstream) as base:
        config = parse_config(
            {
                "models": {
                    "o": {
                        "provider": "openai",
                        "model": "gpt-4o-mini",
                        "base_url": base + "/v1",
                        "api_key_env": "UNSET_KEY_FOR_TEST",
                    }
                },
                "routes": {"o": {"model": "o", "retry": {"max_attempts": 1}}},
            }
        )
        with ServerThread(create_app(config, str(tmp_path / "ledger.duckdb")), lifespan="on") as url:
            client = genai.Client(api_key="unused", http_options={"base_url": url})
            with pytest.raises(errors.ClientError) as failed:
                client.models.generate_content(model="o", contents="hi")
    assert (failed.value.code, failed.value.status) == (499, "CANCELLED"), failed.value
