"""The Gemini API on the gateway as Google's agents drive it: Gemini CLI (@google/genai, raw shapes here: its
requests are JSON the Python SDK cannot always make), the Agent Development Kit and google-genai, in front of the
Gemini emulator ("g"), Claude on the Anthropic emulator ("claude", which checks its thinking signatures), Claude on
the Bedrock emulator ("haiku") and an OpenAI-format upstream ("fast"). Multi-turn function calling as the agents send
it back: call ids they wrote, the signatures they add, the labels they set."""

from __future__ import annotations

import contextlib
import json

import httpx
import pytest
from google import genai
from google.genai import errors, types

from helpers import stand_in_aws_keys
from helpers.recording_openai import RecordingOpenAI
from tokenomy.config import parse_config
from tokenomy.emulate.anthropic_api import create_app as create_anthropic
from tokenomy.emulate.bedrock_runtime import create_app as create_bedrock
from tokenomy.emulate.gemini_api import create_app as create_gemini
from tokenomy.emulate.instant_engine import InstantEngine
from tokenomy.emulate.server import ServerThread
from tokenomy.gateway.app import create_app
from tokenomy.ledger.store import open_store

HAIKU = "anthropic.claude-3-haiku-20240307-v1:0"
HAIKU_45 = "anthropic.claude-haiku-4-5-20251001-v1:0"  # Claude on Bedrock that thinks (Claude 3 Haiku refuses a budget)
# Gemini CLI's tools: JSON Schema declarations (parametersJsonSchema), with `$schema` and additionalProperties.
CLI_TOOLS = [
    {
        "functionDeclarations": [
            {
                "name": "read_file",
                "description": "Reads a file",
                "parametersJsonSchema": {
                    "type": "object",
                    "properties": {"absolute_path": {"type": "string"}},
                    "required": ["absolute_path"],
                },
            },
            {
                "name": "run_shell_command",
                "description": "Runs a command",
                "parametersJsonSchema": {
                    "$schema": "http://json-schema.org/draft-07/schema#",
                    "type": "object",
                    "additionalProperties": False,
                    "properties": {"command": {"type": "string"}},
                    "required": ["command"],
                },
            },
        ]
    }
]
CLI_HEADERS = {
    "x-goog-api-key": "unused",
    "user-agent": "GeminiCLI/0.20.0 (linux; x64) google-genai-sdk/1.30.0",
    "x-goog-api-client": "google-genai-sdk/1.30.0 gl-node/v22.0.0",
}
SKIP = "skip_thought_signature_validator"  # Gemini CLI's SYNTHETIC_THOUGHT_SIGNATURE (geminiChat.ts)


@pytest.fixture(autouse=True)
def no_google_env(monkeypatch):
    for key in ("GEMINI_API_KEY", "GOOGLE_API_KEY", "GOOGLE_GENAI_USE_VERTEXAI"):
        monkeypatch.delenv(key, raising=False)


class Served:
    def __init__(self, ledger) -> None:
        self.ledger = ledger
        self.stack = contextlib.ExitStack()
        env = self.stack.enter_context(pytest.MonkeyPatch.context())
        stand_in_aws_keys(env)
        gemini = self.stack.enter_context(ServerThread(create_gemini(engine=InstantEngine())))
        bedrock = self.stack.enter_context(ServerThread(create_bedrock(engine=InstantEngine())))
        anthropic = create_anthropic(engine=InstantEngine())
        self.claude_bodies: list[dict] = []  # what reached Claude, each call

        @anthropic.middleware("http")
        async def record(request, call_next):
            if request.method == "POST" and request.url.path == "/v1/messages":
                self.claude_bodies.append(await request.json())
            return await call_next(request)

        claude = self.stack.enter_context(ServerThread(anthropic))
        self.upstream = self.stack.enter_context(RecordingOpenAI())
        config = parse_config(
            {
                "models": {
                    "g": {"provider": "gemini", "model": "gemini-2.5-flash", "base_url": gemini},
                    "fast": {
                        "provider": "openai",
                        "model": "up-model",
                        "base_url": self.upstream.url,
                        "price_as": HAIKU,
                    },
                    "claude": {"provider": "anthropic", "model": "claude-sonnet-4-5-20250929", "base_url": claude},
                    "haiku": {"provider": "bedrock", "region": "us-east-1", "endpoint_url": bedrock, "model": HAIKU_45},
                    "haiku3": {"provider": "bedrock", "region": "us-east-1", "endpoint_url": bedrock, "model": HAIKU},
                }
            }
        )
        self.url = self.stack.enter_context(ServerThread(create_app(config, str(ledger)), lifespan="on"))
        self.client = genai.Client(api_key="unused", http_options={"base_url": self.url})

    def rows(self):
        self.stack.close()  # the gateway's ledger writer flushes and lets the file go
        return open_store(str(self.ledger)).events()


@pytest.fixture
def served(tmp_path):
    served = Served(tmp_path / "ledger.duckdb")
    yield served
    served.stack.close()


def cli_stream(url: str, model: str, body: dict) -> list[dict]:
    """One streamGenerateContent?alt=sse as Gemini CLI posts it: the answer's parts, in order."""
    answer = httpx.post(
        f"{url}/v1beta/models/{model}:streamGenerateContent?alt=sse", json=body, headers=CLI_HEADERS, timeout=60
    )
    assert answer.status_code == 200, answer.text
    chunks = [json.loads(line[6:]) for line in answer.text.splitlines() if line.startswith("data: ")]
    assert chunks[-1]["candidates"][0]["finishReason"] == "STOP"
    return [p for c in chunks for cand in c["candidates"] for p in cand.get("content", {}).get("parts", [])]


def cli_next_turn(contents: list[dict], parts: list[dict]) -> list[dict]:
    """The CLI's history after a model turn with calls (geminiChat.ts, turn.ts): thought parts dropped, each call's id
    rewritten `<name>__<id>` (one it made up when the model sent none) in place, the first call of the turn given the
    synthetic signature when it has none, and each call answered by id with `{"output": ...}`."""
    model_parts = [dict(p) for p in parts if not p.get("thought")]
    calls = [p["functionCall"] for p in model_parts if "functionCall" in p]
    for n, call in enumerate(calls):
        raw = call.get("id") or f"{call['name']}_1733000000_{n}"
        call["id"] = raw if raw.startswith(f"{call['name']}__") else f"{call['name']}__{raw}"
    first = next(p for p in model_parts if "functionCall" in p)
    first.setdefault("thoughtSignature", SKIP)
    answers = [
        {"functionResponse": {"id": c["id"], "name": c["name"], "response": {"output": "file text"}}} for c in calls
    ]
    return [*contents, {"role": "model", "parts": model_parts}, {"role": "user", "parts": answers}]


@pytest.mark.parametrize("model", ["g", "claude", "haiku", "fast"])
def test_a_gemini_cli_tool_loop_keeps_going_on_every_provider(served, model) -> None:
    """Gemini CLI signs the first call of each turn that came unsigned with its stand-in signature: carried to Gemini
    (which skips its check for it), left out for Claude (which would refuse it as a forged signature)."""
    contents = [
        {
            "role": "user",
            "parts": [{"text": "<session_context>Gemini CLI</session_context>"}, {"text": "Read /tmp/notes.txt"}],
        }
    ]
    body = {
        "contents": contents,
        "systemInstruction": {"role": "user", "parts": [{"text": "You are a CLI agent."}]},
        "tools": CLI_TOOLS,
        "toolConfig": {"functionCallingConfig": {"mode": "ANY"}},
        "generationConfig": {"temperature": 1, "topP": 0.95, "maxOutputTokens": 2048},
    }
    parts = cli_stream(served.url, model, body)
    assert any("functionCall" in p for p in parts)
    contents = cli_next_turn(contents, parts)
    final = cli_stream(served.url, model, {**body, "contents": contents, "toolConfig": None})
    assert any(p.get("text") for p in final)


def test_the_sdks_stand_in_signature_bytes_are_left_out_for_claude(served) -> None:
    """google-genai (ADK) sends the stand-in as bytes: the base64 of its ASCII."""
    call = types.Part(
        function_call=types.FunctionCall(name="read_file", args={"absolute_path": "/a"}),
        thought_signature=SKIP.encode(),
    )
    turn = [
        types.Content(role="user", parts=[types.Part(text="Read /a")]),
        types.Content(role="model", parts=[call]),
        types.Content(
            role="user",
            parts=[
                types.Part(function_response=types.FunctionResponse(name="read_file", response={"output": "a's text"}))
            ],
        ),
    ]
    tools = [
        types.Tool(
            function_declarations=[
                types.FunctionDeclaration(
                    name="read_file",
                    parameters_json_schema=CLI_TOOLS[0]["functionDeclarations"][0]["parametersJsonSchema"],
                )
            ]
        )
    ]
    config = types.GenerateContentConfig(
        tools=tools, max_output_tokens=64, automatic_function_calling=types.AutomaticFunctionCallingConfig(disable=True)
    )
    for model in ("claude", "haiku", "g"):
        assert served.client.models.generate_content(model=model, contents=turn, config=config).text
    counted = served.client.models.count_tokens(model="claude", contents=turn)
    assert counted.total_tokens > 0


def test_a_thinking_budget_without_an_output_cap_reaches_claude_with_room_for_the_answer(served) -> None:
    """Gemini CLI's 2.5 settings: thinkingBudget 8192, no maxOutputTokens. Claude needs max_tokens above the budget."""
    body = {
        "contents": [{"role": "user", "parts": [{"text": "Hi"}]}],
        "tools": CLI_TOOLS,
        "generationConfig": {"temperature": 1, "thinkingConfig": {"includeThoughts": True, "thinkingBudget": 8192}},
    }
    parts = cli_stream(served.url, "claude", body)
    assert any(p.get("thought") for p in parts) and any(p.get("text") and not p.get("thought") for p in parts)


def test_adks_labels_on_vertex_reach_every_provider_as_the_ledger_rows_tags(served) -> None:
    """ADK sets `labels: {"adk_agent_name": ...}` on every Vertex AI call: tags of the call's row for any model (and
    Gemini's own field for a Gemini model), not a refusal of every call to Claude."""
    vertex = genai.Client(vertexai=True, api_key="unused", http_options={"base_url": served.url})
    config = types.GenerateContentConfig(labels={"adk_agent_name": "root_agent"}, max_output_tokens=32)
    for model in ("claude", "haiku", "fast", "g"):
        assert vertex.models.generate_content(model=model, contents="hi", config=config).text
    bad = httpx.post(
        f"{served.url}/v1beta/models/claude:generateContent",
        headers={"x-goog-api-key": "k"},
        json={"contents": [{"role": "user", "parts": [{"text": "hi"}]}], "labels": {"n": 1}},
    )
    assert bad.status_code == 400 and bad.json()["error"]["message"].startswith("labels: expected an object")
    for model in ("claude", "haiku", "g"):  # a count checks them as well (it dropped them for non-Gemini models)
        bad = httpx.post(
            f"{served.url}/v1beta/models/{model}:countTokens",
            headers={"x-goog-api-key": "k"},
            json={"contents": [{"role": "user", "parts": [{"text": "hi"}]}], "labels": ["a"]},
        )
        assert bad.status_code == 400 and bad.json()["error"]["message"].startswith("labels: expected an object")
    rows = served.rows()
    assert len(rows) == 4 and all(row.tags.get("adk_agent_name") == "root_agent" for row in rows)


@pytest.mark.parametrize("stream", [True, False])
def test_claudes_thinking_comes_back_from_an_agent_that_keeps_no_thought_parts(served, stream) -> None:
    """Gemini CLI drops thought parts from its history; Claude refuses a tool loop whose thinking did not come back.
    The signed thinking rides on the part after it (as Gemini puts its signatures), so the next turn has it."""
    contents = [{"role": "user", "parts": [{"text": "Read /tmp/notes.txt"}]}]
    body = {
        "contents": contents,
        "tools": CLI_TOOLS,
        "generationConfig": {
            "maxOutputTokens": 2048,
            "thinkingConfig": {"includeThoughts": True, "thinkingBudget": 1024},
        },
    }
    if stream:
        parts = cli_stream(served.url, "claude", body)
    else:
        answer = httpx.post(f"{served.url}/v1beta/models/claude:generateContent", json=body, headers=CLI_HEADERS)
        parts = answer.json()["candidates"][0]["content"]["parts"]
    thoughts = [p for p in parts if p.get("thought")]
    assert thoughts and not any("thoughtSignature" in p for p in thoughts)  # shown, not needed back
    assert any("thoughtSignature" in p for p in parts if not p.get("thought"))
    # Claude's call after its thinking and text (the emulator calls no tool unforced, and forced it cannot think).
    parts = [*parts, {"functionCall": {"id": "toolu_01", "name": "read_file", "args": {"absolute_path": "/a"}}}]
    final = cli_stream(served.url, "claude", {**body, "contents": cli_next_turn(contents, parts)})
    assert any(p.get("text") for p in final)
    assistant = served.claude_bodies[-1]["messages"][1]["content"]
    assert assistant[0]["type"] == "thinking" and assistant[0]["signature"]
    kinds = [b["type"] for b in assistant[1:]]  # the text as it streamed: in one part or more
    assert [k for n, k in enumerate(kinds) if kinds[n - 1 : n] != [k]] == ["text", "tool_use"]


@pytest.mark.parametrize("model", ["claude", "g"])
def test_include_thoughts_false_answers_without_thoughts_and_the_loop_still_has_its_signatures(served, model) -> None:
    """`includeThoughts: false` (Gemini's default) asks for no thought summaries: none are shown, whole or streamed,
    and Claude's signed thinking still rides on the part after it for the next turn. (Gemini is told, and its
    emulator then sends no thought, nor a signature without function calls, as Gemini 2.5 does: this test saw one
    only because Gemini was told include_thoughts true.)"""
    thinking = types.ThinkingConfig(thinking_budget=1024, include_thoughts=False)
    config = types.GenerateContentConfig(thinking_config=thinking, max_output_tokens=2048)
    signed = model == "claude"
    reply = served.client.models.generate_content(model=model, contents="Hi", config=config)
    parts = reply.candidates[0].content.parts
    assert not any(p.thought for p in parts) and any(p.thought_signature for p in parts) == signed
    chunks = list(served.client.models.generate_content_stream(model=model, contents="Hi", config=config))
    streamed = [p for c in chunks if c.candidates[0].content for p in c.candidates[0].content.parts]
    assert not any(p.thought for p in streamed) and any(p.thought_signature for p in streamed) == signed
    turn = [
        types.Content(role="user", parts=[types.Part(text="Hi")]),
        reply.candidates[0].content,
        types.Content(role="user", parts=[types.Part(text="And?")]),
    ]
    assert served.client.models.generate_content(model=model, contents=turn, config=config).text


def test_include_thoughts_reaches_each_model_as_said(served, monkeypatch) -> None:
    """`includeThoughts` reaches Gemini as sent, alone too (Gemini 2.5 thinks unasked: it asks to see that), and Claude
    as its thinking display, on Anthropic's API and Bedrock. Alone it reached Gemini as no thinkingConfig at all, and
    false beside a budget as include_thoughts true; Claude got no display (Opus 4.7 and later omit thoughts unless
    told). An OpenAI-format server has no switch: it sends its reasoning or not, and the request is answered."""
    from helpers.converse_capture import record_converse
    from tokenomy.providers import gemini_mapping

    gemini: list[dict] = []
    original = gemini_mapping.config_from_request
    monkeypatch.setattr(
        "tokenomy.providers.gemini_provider.config_from_request",
        lambda request: gemini.append(original(request)) or gemini[-1],
    )
    converse = record_converse(monkeypatch)

    def ask(model: str, **thinking) -> types.GenerateContentResponse:
        config = types.GenerateContentConfig(thinking_config=types.ThinkingConfig(**thinking), max_output_tokens=2048)
        return served.client.models.generate_content(model=model, contents="Hi", config=config)

    assert ask("g", include_thoughts=True).text
    assert gemini[-1]["thinking_config"] == {"include_thoughts": True}
    assert ask("g", include_thoughts=False, thinking_budget=512).text
    assert gemini[-1]["thinking_config"] == {"include_thoughts": False, "thinking_budget": 512}
    assert ask("g", include_thoughts=True, thinking_level=types.ThinkingLevel.LOW).text
    # "g" is Gemini 2.5, which refuses a level: LOW reaches it as Google's budget for low effort
    assert gemini[-1]["thinking_config"] == {"include_thoughts": True, "thinking_budget": 1024}
    for shown, display in ((True, "summarized"), (False, "omitted")):
        assert ask("claude", include_thoughts=shown, thinking_budget=1024).text
        assert served.claude_bodies[-1]["thinking"] == {"type": "enabled", "budget_tokens": 1024, "display": display}
        assert ask("haiku", include_thoughts=shown, thinking_budget=1024).text
        fields = converse[-1]["additionalModelRequestFields"]
        assert fields["thinking"] == {"type": "enabled", "budget_tokens": 1024, "display": display}
    assert ask("claude", include_thoughts=True).text and "thinking" not in served.claude_bodies[-1]  # none asked
    assert ask("fast", include_thoughts=True).text and "reasoning_effort" not in served.upstream.last
    assert ask("fast", include_thoughts=True, thinking_level=types.ThinkingLevel.LOW).text
    assert served.upstream.last["reasoning_effort"] == "low"


@pytest.mark.parametrize("model", ["g", "claude"])
def test_thoughts_not_asked_for_are_not_in_the_answer(served, model) -> None:
    """Gemini shows no thoughts unless `includeThoughts` is true: a thinking budget alone was answered with the
    model's thoughts as thought parts, whole and streamed. Their signatures still ride on the parts after them."""
    config = types.GenerateContentConfig(
        thinking_config=types.ThinkingConfig(thinking_budget=1024), max_output_tokens=2048
    )
    reply = served.client.models.generate_content(model=model, contents="Hi", config=config)
    parts = reply.candidates[0].content.parts
    assert not any(p.thought for p in parts) and any(p.thought_signature for p in parts)
    chunks = list(served.client.models.generate_content_stream(model=model, contents="Hi", config=config))
    streamed = [p for c in chunks if c.candidates[0].content for p in c.candidates[0].content.parts]
    assert not any(p.thought for p in streamed) and any(p.thought_signature for p in streamed)
    shown = config.model_copy(
        update={"thinking_config": types.ThinkingConfig(thinking_budget=1024, include_thoughts=True)}
    )
    reply = served.client.models.generate_content(model=model, contents="Hi", config=shown)
    assert any(p.thought and p.text for p in reply.candidates[0].content.parts)


def test_a_file_by_uri_reaches_a_model_that_can_read_it_and_is_refused_by_name_elsewhere(served, monkeypatch) -> None:
    """A fileData document is a file id of the Gemini API (its Files API's URI, Cloud Storage's) or a document on the
    web. Either was sent to Claude as an Anthropic file id (`source.type: file` holding the URI) and to an
    OpenAI-format model as an OpenAI file id. A web document now reaches Claude as its url source and Gemini as sent;
    Gemini's own file reaches Gemini only; anything else is a 400 naming the part's fileUri and the model."""
    from tokenomy.providers import gemini_mapping

    gemini: list[list[dict]] = []
    original = gemini_mapping.contents_from_request
    monkeypatch.setattr(
        "tokenomy.providers.gemini_provider.contents_from_request",
        lambda request: gemini.append(original(request)) or gemini[-1],
    )
    on_the_web, stored = "https://arxiv.org/pdf/1706.03762", "https://generativelanguage.googleapis.com/v1beta/files/f1"

    def ask(model: str, uri: str, mime: str = "application/pdf") -> types.GenerateContentResponse:
        paper = types.Part(file_data=types.FileData(file_uri=uri, mime_type=mime, display_name="Paper"))
        turn = [types.Content(role="user", parts=[types.Part(text="Summarise this paper"), paper])]
        return served.client.models.generate_content(
            model=model, contents=turn, config=types.GenerateContentConfig(max_output_tokens=64)
        )

    assert ask("claude", on_the_web).text
    assert served.claude_bodies[-1]["messages"][0]["content"][1] == {
        "type": "document",
        "source": {"type": "url", "url": on_the_web},
        "title": "Paper",
    }
    for uri in (on_the_web, stored, "gs://bucket/paper.pdf"):
        assert ask("g", uri).text
        assert gemini[-1][0]["parts"][1] == {
            "file_data": {"file_uri": uri, "mime_type": "application/pdf", "display_name": "Paper"}
        }
    refused = [("fast", on_the_web, "a document by URL"), ("haiku", on_the_web, "a document by URL")]
    refused += [(model, stored, "a file id of the Gemini API") for model in ("claude", "haiku", "fast")]
    calls = len(served.claude_bodies), len(served.upstream.bodies)
    for model, uri, what in refused:
        with pytest.raises(genai.errors.ClientError) as caught:
            ask(model, uri)
        message = caught.value.message
        assert caught.value.code == 400 and message.startswith(f"model `{model}` cannot take {what}")
        assert "(`contents[0].parts[1].fileData.fileUri`)" in message
    with pytest.raises(genai.errors.ClientError) as caught:  # Claude's url source is a PDF's
        ask("claude", "https://example.com/notes.txt", "text/plain")
    assert caught.value.message.startswith("contents[0].parts[1].fileData.fileUri: the Anthropic Messages API")
    assert (len(served.claude_bodies), len(served.upstream.bodies)) == calls


def test_an_image_of_gemini_s_own_files_reaches_gemini_only_and_a_typeless_link_is_read_by_its_name(
    served, monkeypatch
) -> None:
    """A fileData image at a Files API or Cloud Storage URI was an image URL for Claude and an OpenAI-format model,
    which fetched it and failed (Google's Files API wants its key; gs:// is no web address): now it reaches Gemini
    only, and elsewhere is a 400 naming the fileUri before anything is sent. A fileData with no mimeType was always an
    image: a link named like a PDF is a document by URL now, and Gemini's own typeless file goes to Gemini as sent,
    not as image/jpeg."""
    from tokenomy.providers import gemini_mapping

    gemini: list[list[dict]] = []
    original = gemini_mapping.contents_from_request
    monkeypatch.setattr(
        "tokenomy.providers.gemini_provider.contents_from_request",
        lambda request: gemini.append(original(request)) or gemini[-1],
    )
    stored, bucket = "https://generativelanguage.googleapis.com/v1beta/files/img1", "gs://bucket/cat.png"

    def ask(model: str, uri: str, mime: str | None = "image/png") -> types.GenerateContentResponse:
        picture = types.Part(file_data=types.FileData(file_uri=uri, mime_type=mime))
        turn = [types.Content(role="user", parts=[types.Part(text="What is in it?"), picture])]
        return served.client.models.generate_content(
            model=model, contents=turn, config=types.GenerateContentConfig(max_output_tokens=64)
        )

    for uri in (stored, bucket):
        assert ask("g", uri).text
        assert gemini[-1][0]["parts"][1] == {"file_data": {"file_uri": uri, "mime_type": "image/png"}}
    assert ask("g", stored, None).text
    assert gemini[-1][0]["parts"][1] == {"file_data": {"file_uri": stored}}
    calls = len(served.claude_bodies), len(served.upstream.bodies)
    for model in ("claude", "haiku", "fast"):
        for uri, mime in ((stored, "image/png"), (bucket, "image/png"), (stored, None)):
            with pytest.raises(genai.errors.ClientError) as caught:
                ask(model, uri, mime)
            assert caught.value.code == 400
            assert caught.value.message.startswith(f"model `{model}` cannot take a file id of the Gemini API")
            assert "(`contents[0].parts[1].fileData.fileUri`)" in caught.value.message
    assert (len(served.claude_bodies), len(served.upstream.bodies)) == calls
    web_image = "https://example.com/cat.png"
    assert ask("claude", web_image).text
    assert served.claude_bodies[-1]["messages"][0]["content"][1] == {
        "type": "image",
        "source": {"type": "url", "url": web_image},
    }
    paper = "https://arxiv.org/pdf/1706.03762.pdf?download=1"
    assert ask("claude", paper, None).text
    assert served.claude_bodies[-1]["messages"][0]["content"][1] == {
        "type": "document",
        "source": {"type": "url", "url": paper},
    }
    assert ask("claude", "https://cdn.example.com/render/41", None).text  # no name says what it is: an image
    assert served.claude_bodies[-1]["messages"][0]["content"][1]["type"] == "image"


PNG = b"\x89PNG\r\n\x1a\n" + bytes(range(256))


def test_an_image_a_function_returned_in_its_response_parts_reaches_the_model(served) -> None:
    """Gemini CLI nests what read_file read (an image) in the functionResponse's parts for Gemini 3 models: carried
    to Gemini (function_response.parts), Claude (the tool result's content) and an OpenAI-format model, whose tool
    messages take text only (the image follows in a user message, labelled with its call)."""
    import base64

    from tokenomy.messages import ChatRequest
    from tokenomy.providers.gemini_inbound import request_from_gemini
    from tokenomy.providers.gemini_mapping import contents_from_request

    answer = {
        "id": "read_file__c1",
        "name": "read_file",
        "response": {"output": "Binary content provided."},
        "parts": [{"inlineData": {"mimeType": "image/png", "data": base64.b64encode(PNG).decode()}}],
    }
    body = {
        "contents": [
            {"role": "user", "parts": [{"text": "What is in /a.png?"}]},
            {
                "role": "model",
                "parts": [
                    {"functionCall": {"id": "read_file__c1", "name": "read_file", "args": {"absolute_path": "/a.png"}}}
                ],
            },
            {"role": "user", "parts": [{"functionResponse": answer}]},
        ],
        "tools": CLI_TOOLS,
    }
    for model in ("g", "claude"):
        reply = httpx.post(f"{served.url}/v1beta/models/{model}:generateContent", json=body, headers=CLI_HEADERS)
        assert reply.status_code == 200, reply.text
    result = served.claude_bodies[-1]["messages"][2]["content"][0]
    assert result["type"] == "tool_result" and base64.b64decode(result["content"][1]["source"]["data"]) == PNG
    request: ChatRequest = request_from_gemini("gemini-3-pro-preview", body)
    [sent] = contents_from_request(request)[2]["parts"]
    assert sent["function_response"]["parts"] == [{"inline_data": {"mime_type": "image/png", "data": PNG}}]
    carried = httpx.post(f"{served.url}/v1beta/models/fast:generateContent", json=body, headers=CLI_HEADERS)
    assert carried.status_code == 200, carried.text
    *_, tool, user = served.upstream.last["messages"]
    assert tool["role"] == "tool" and tool["tool_call_id"] == "read_file__c1"
    assert user["content"] == [
        {"type": "text", "text": "Tool call read_file__c1 returned:"},
        {"type": "image_url", "image_url": {"url": "data:image/png;base64," + base64.b64encode(PNG).decode()}},
    ]


def test_validated_function_calling_is_strict_tools_the_model_may_call(served) -> None:
    """Mode VALIDATED: the model chooses whether to call, and a call holds to its schema: strict tools under auto."""
    from tokenomy.providers.gemini_inbound import request_from_gemini
    from tokenomy.providers.gemini_mapping import config_from_request

    body = {
        "contents": [{"role": "user", "parts": [{"text": "hi"}]}],
        "tools": CLI_TOOLS,
        "toolConfig": {"functionCallingConfig": {"mode": "VALIDATED"}},
    }
    for model in ("g", "claude", "fast", "haiku"):
        reply = httpx.post(f"{served.url}/v1beta/models/{model}:generateContent", json=body, headers=CLI_HEADERS)
        assert reply.status_code == 200, reply.text
    assert [t["function"].get("strict") for t in served.upstream.last["tools"]] == [True, True]
    assert served.upstream.last.get("tool_choice") in (None, "auto")
    assert [t.get("strict") for t in served.claude_bodies[-1]["tools"]] == [True, True]
    config = config_from_request(request_from_gemini("gemini-2.5-flash", body))
    assert config["tool_config"] == {"function_calling_config": {"mode": "VALIDATED"}}


def test_a_malformed_tool_call_ends_as_geminis_malformed_function_call_whichever_model_made_it(
    served, monkeypatch
) -> None:
    """Converse's stopReason malformed_tool_use (and malformed_model_output) came back as "MALFORMED_TOOL_USE", no
    reason Gemini has: the SDK warned, and an agent that retries on MALFORMED_FUNCTION_CALL (ADK, Gemini CLI) saw an
    unknown reason and stopped. They are now Gemini's counterparts, MALFORMED_FUNCTION_CALL and MALFORMED_RESPONSE."""
    from tokenomy.emulate import bedrock_converse

    events = bedrock_converse.answer_events
    said = {"reason": "malformed_tool_use"}

    def malformed(*args):
        for event in events(*args):
            yield event if event[0] != "finish" else (event[0], event[1], said["reason"])

    monkeypatch.setattr(bedrock_converse, "answer_events", malformed)
    for reason, gemini in (
        ("malformed_tool_use", types.FinishReason.MALFORMED_FUNCTION_CALL),
        ("malformed_model_output", types.FinishReason.MALFORMED_RESPONSE),
    ):
        said["reason"] = reason
        reply = served.client.models.generate_content(model="haiku", contents="hi")
        assert reply.candidates[0].finish_reason == gemini, reason
        chunks = list(served.client.models.generate_content_stream(model="haiku", contents="hi"))
        assert chunks[-1].candidates[0].finish_reason == gemini, reason


def test_thinking_off_is_sent_to_claude_models_that_think_and_not_to_one_with_no_thinking(served, monkeypatch) -> None:
    """thinkingBudget 0 reached Claude 3 Haiku on Bedrock as `thinking: {"type": "disabled"}`, a field for a model
    that has no thinking (Anthropic documents `disabled` as turning thinking off on the models that accept it): it is
    left out for such a model, and still sent to a Claude model that thinks (Sonnet 4.5)."""
    from tokenomy.providers import bedrock as bedrock_provider

    sent: list[dict] = []
    original = bedrock_provider.to_converse_params
    monkeypatch.setattr(
        bedrock_provider, "to_converse_params", lambda request: sent.append(original(request)) or sent[-1]
    )
    off = types.GenerateContentConfig(thinking_config=types.ThinkingConfig(thinking_budget=0), max_output_tokens=20)
    assert served.client.models.generate_content(model="haiku3", contents="hi", config=off).text
    assert "thinking" not in sent[-1].get("additionalModelRequestFields", {})
    assert served.client.models.generate_content(model="claude", contents="hi", config=off).text
    assert served.claude_bodies[-1]["thinking"] == {"type": "disabled"}


@pytest.mark.parametrize("model", ["g", "claude", "haiku", "fast"])
def test_a_streamed_chat_turn_stays_in_the_history_the_chat_sends_next(served, model) -> None:
    """google-genai's chats keep a streamed turn in the history they send next only when every chunk has a part
    (`chats._validate_response`): the gateway's last chunk (finish reason and usage) had none, so the next message
    reached the model without the conversation before it. The last chunk now has the answer's last parts, as
    Gemini's does, and the text streamed is the whole answer still."""
    chat = served.client.chats.create(model=model, config=types.GenerateContentConfig(max_output_tokens=64))
    chunks = list(chat.send_message_stream("My name is Bob"))
    whole = served.client.models.generate_content(
        model=model, contents="My name is Bob", config=types.GenerateContentConfig(max_output_tokens=64)
    )
    assert "".join(c.text or "" for c in chunks) == whole.text
    assert chunks[-1].candidates[0].finish_reason == "STOP" and chunks[-1].candidates[0].content.parts
    chat.send_message("What is my name?")
    history = chat.get_history(curated=True)
    assert [c.role for c in history][:2] == ["user", "model"] and history[0].parts[0].text == "My name is Bob"
    sent = {"claude": served.claude_bodies, "fast": served.upstream.bodies}.get(model)
    if sent is not None:  # what reached the model: the first turn too
        assert "My name is Bob" in json.dumps(sent[-1]["messages"])


@pytest.mark.parametrize("model", ["fast", "claude"])
def test_a_streamed_answer_goes_back_as_one_assistant_turn_with_its_whole_text(served, model) -> None:
    """google-genai's chats keep each chunk of a streamed answer as a model content of its own: the next request
    reached an OpenAI-format model (and Claude) as that many assistant messages, the answer cut into pieces
    ("plain", " answer"). A model's contents in a row are one turn, their text one text."""
    chat = served.client.chats.create(model=model, config=types.GenerateContentConfig(max_output_tokens=64))
    said = "".join(c.text or "" for c in chat.send_message_stream("Hi"))
    assert len(chat.get_history()) > 2  # the answer is in the history as more than one content
    list(chat.send_message_stream("And again?"))
    sent = (served.upstream.bodies if model == "fast" else served.claude_bodies)[-1]["messages"]
    assert [m["role"] for m in sent] == ["user", "assistant", "user"]
    assert sent[1]["content"] == said


def test_an_image_of_a_type_claude_cannot_read_is_refused_before_the_call_naming_its_part(served) -> None:
    """Gemini reads HEIC (an iPhone's photos); Anthropic's API refuses any image but jpeg, png, gif and webp. The
    gateway sent it: Anthropic's 400 came back naming its own field (`messages.0.content.0.source.media_type`), after
    an attempt in the ledger (and a route's fallback that reads it was never tried). It is refused before the call,
    at the part the caller sent, as Bedrock's is."""
    heic = types.Part.from_bytes(data=b"\x00\x00\x00\x18ftypheic", mime_type="image/heic")
    for model in ("claude", "haiku"):
        with pytest.raises(errors.ClientError) as refused:
            served.client.models.generate_content(model=model, contents=[heic, "What is this?"])
        message = refused.value.message
        assert refused.value.code == 400 and message.startswith("contents[0].parts[0]: "), message
        assert "'image/heic'" in message and "upstream" not in message
    assert served.claude_bodies == [] and served.rows() == []  # nothing was sent, nor billed


def test_a_refused_part_after_a_stand_in_signature_is_named_at_its_own_place(served) -> None:
    """The stand-in signature, left out for models other than Gemini's, is a block of its own as the request is read:
    a part such a model refuses after it in the same turn was named one part early (`contents[1].parts[0]`, the
    signed text), as the blocks were counted with it. Named at its own part in an answer, a stream and a count."""
    notes = types.Part(file_data=types.FileData(file_uri="https://example.com/notes.txt", mime_type="text/plain"))
    turn = [
        types.Content(role="user", parts=[types.Part(text="Read /a")]),
        types.Content(role="model", parts=[types.Part(text="Here it is", thought_signature=SKIP.encode()), notes]),
        types.Content(role="user", parts=[types.Part(text="Thanks")]),
    ]
    ask = types.GenerateContentConfig(max_output_tokens=64)
    claude = "the Anthropic Messages API (model claude-sonnet-4-5-20250929) fetches PDFs by URL, not 'txt' documents"
    for model, says in (
        ("claude", f"contents[1].parts[1].fileData.fileUri: {claude}; send the document's text"),
        ("haiku", "model `haiku` cannot take a document by URL (`contents[1].parts[1].fileData.fileUri`)"),
        ("fast", "model `fast` cannot take a document by URL (`contents[1].parts[1].fileData.fileUri`)"),
    ):
        for ask_it in ("generate", "stream", "count"):
            if ask_it == "count" and model == "fast":
                continue  # an OpenAI-format API counts nothing
            with pytest.raises(errors.ClientError) as caught:
                if ask_it == "generate":
                    served.client.models.generate_content(model=model, contents=turn, config=ask)
                elif ask_it == "stream":
                    list(served.client.models.generate_content_stream(model=model, contents=turn, config=ask))
                else:
                    served.client.models.count_tokens(model=model, contents=turn)
            assert caught.value.code == 400
            assert caught.value.message.startswith(says), caught.value.message


def test_an_array_response_schema_reaches_claude_on_bedrock_and_its_answer_comes_back(served) -> None:
    # `response_schema=list[str]` to Claude on Bedrock (outputConfig.textFormat) was a 502: the Bedrock emulator
    # generated the answer's text as a tool's input, which must be an object, where the answer may be any JSON value.
    config = types.GenerateContentConfig(
        response_mime_type="application/json", response_schema=list[str], max_output_tokens=256
    )
    reply = served.client.models.generate_content(model="haiku", contents="Names?", config=config)
    assert isinstance(reply.parsed, list)
    chunks = served.client.models.generate_content_stream(model="haiku", contents="Names?", config=config)
    assert isinstance(json.loads("".join(c.text or "" for c in chunks)), list)
