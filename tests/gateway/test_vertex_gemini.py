"""Gemini on Vertex AI's paths on the gateway: google-genai with `vertexai=True` (a project and location with the
gateway key as the credentials' token, or express mode with the key as api_key) → `tokenomy serve` → a Gemini model
(the emulator), an OpenAI-format model, Claude on Anthropic's API or on Bedrock. Function calls and responses, an
image, streamed and not, counting, the ledger, keys, and malformed bodies refused by name."""

from __future__ import annotations

import base64
import contextlib
import json
from decimal import Decimal

import httpx
import pytest
from google import genai
from google.genai import errors, types
from google.oauth2.credentials import Credentials

from helpers import stand_in_aws_keys
from helpers.recording_openai import RecordingOpenAI, arguments_for
from helpers.scripted_anthropic import ScriptedAnthropic
from tokenomy.config import parse_config
from tokenomy.emulate.bedrock_runtime import create_app as create_bedrock
from tokenomy.emulate.gemini_api import create_app as create_gemini
from tokenomy.emulate.instant_engine import InstantEngine
from tokenomy.emulate.server import ServerThread
from tokenomy.gateway.app import create_app
from tokenomy.ledger.store import open_store

GEMINI = "gemini-2.5-flash"
HAIKU = "anthropic.claude-3-haiku-20240307-v1:0"
IMAGE = b"\x89PNG\r\n\x1a\n" + bytes(range(256)) * 3  # every byte value: a re-encoding on the way changes it
WEATHER = types.FunctionDeclaration(
    name="get_weather",
    description="Weather in a city",
    parameters_json_schema={"type": "object", "properties": {"city": {"type": "string"}}, "required": ["city"]},
)
MANUAL = types.AutomaticFunctionCallingConfig(disable=True)  # the test plays the application's part
PATH = "/v1beta1/projects/my-project/locations/us-central1/publishers/google/models"
pytestmark = pytest.mark.filterwarnings("ignore:The model .* is deprecated:DeprecationWarning")


@pytest.fixture(autouse=True)
def no_google_env(monkeypatch):
    for key in (
        "GEMINI_API_KEY",
        "GOOGLE_API_KEY",
        "GOOGLE_CLOUD_PROJECT",
        "GOOGLE_CLOUD_LOCATION",
        "GOOGLE_GENAI_USE_VERTEXAI",
        "GOOGLE_GENAI_API_VERSION",
    ):
        monkeypatch.delenv(key, raising=False)


def vertex_client(url: str, token: str = "unused") -> genai.Client:
    """google-genai on Vertex AI with a project and location, the gateway key as its credentials' access token."""
    return genai.Client(
        vertexai=True,
        project="my-project",
        location="us-central1",
        credentials=Credentials(token=token),
        http_options={"base_url": url},
    )


def express_client(url: str, key: str = "unused") -> genai.Client:
    """google-genai in Vertex AI's express mode: the gateway key as its API key."""
    return genai.Client(vertexai=True, api_key=key, http_options={"base_url": url})


class Served:
    """A gateway in front of the Gemini emulator ("g"), a recording OpenAI-format upstream ("fast"), a scripted
    Anthropic API ("claude") and the Bedrock emulator ("haiku"). The ledger is read once the gateway has stopped."""

    def __init__(self, ledger) -> None:
        self.ledger, self.scripted = ledger, ScriptedAnthropic()
        self.stack = contextlib.ExitStack()
        env = self.stack.enter_context(pytest.MonkeyPatch.context())
        stand_in_aws_keys(env)
        gemini = self.stack.enter_context(ServerThread(create_gemini(engine=InstantEngine())))
        bedrock = self.stack.enter_context(ServerThread(create_bedrock(engine=InstantEngine())))
        self.upstream = self.stack.enter_context(RecordingOpenAI())
        claude_api = self.stack.enter_context(ServerThread(self.scripted.app))
        config = parse_config(
            {
                "models": {
                    "g": {"provider": "gemini", "model": GEMINI, "base_url": gemini},
                    "fast": {
                        "provider": "openai",
                        "model": "up-model",
                        "base_url": self.upstream.url,
                        "price_as": HAIKU,
                    },
                    "claude": {"provider": "anthropic", "model": "claude-sonnet-4-5-20250929", "base_url": claude_api},
                    "haiku": {"provider": "bedrock", "region": "us-east-1", "endpoint_url": bedrock, "model": HAIKU},
                }
            }
        )
        self.url = self.stack.enter_context(ServerThread(create_app(config, str(ledger)), lifespan="on"))
        self.client = vertex_client(self.url)

    def rows(self):
        self.stack.close()  # the gateway's ledger writer flushes and lets the file go
        return open_store(str(self.ledger)).events()


@pytest.fixture
def served(tmp_path):
    served = Served(tmp_path / "ledger.duckdb")
    yield served
    served.stack.close()


def test_the_sdk_on_vertex_reaches_the_routes_model_with_an_image_and_function_calls(served) -> None:
    upstream, seen = served.upstream, []
    client = vertex_client(served.url)
    client._api_client._httpx_client.event_hooks["request"].append(lambda r: seen.append(r.url.path))
    user = types.Content(
        role="user", parts=[types.Part(text="Weather here?"), types.Part.from_bytes(data=IMAGE, mime_type="image/png")]
    )
    config = types.GenerateContentConfig(
        tools=[types.Tool(function_declarations=[WEATHER])],
        automatic_function_calling=MANUAL,
        system_instruction="Be brief.",
        max_output_tokens=30,
    )
    reply = client.models.generate_content(model="fast", contents=[user], config=config)
    assert seen == [f"{PATH}/fast:generateContent"]  # Vertex's own path, as the SDK builds it
    content = upstream.last["messages"][1]["content"]
    assert upstream.last["messages"][0] == {"role": "system", "content": "Be brief."}
    assert base64.b64decode(content[1]["image_url"]["url"].split(",", 1)[1]) == IMAGE
    [call] = reply.function_calls
    assert call.name == "get_weather" and call.args == json.loads(arguments_for("get_weather"))
    result = types.FunctionResponse(id=call.id, name=call.name, response={"output": "18C"})
    turn = [user, reply.candidates[0].content, types.Content(role="user", parts=[types.Part(function_response=result)])]
    final = client.models.generate_content(model="fast", contents=turn, config=config)
    assert final.text == "answer after 18C"
    assert upstream.last["messages"][-1]["role"] == "tool" and upstream.last["messages"][-1]["tool_call_id"] == call.id
    chunks = list(client.models.generate_content_stream(model="fast", contents=[user], config=config))
    streamed = [p.function_call for c in chunks if c.candidates[0].content for p in c.candidates[0].content.parts]
    assert [(c.name, c.args) for c in streamed] == [(call.name, call.args)]
    assert seen[-1] == f"{PATH}/fast:streamGenerateContent"


def test_whole_and_streamed_answers_from_each_provider_are_in_the_ledger_with_their_route_and_cost(served) -> None:
    client = served.client
    ids = {}
    for model in ("g", "claude", "haiku"):
        reply = client.models.generate_content(
            model=model, contents="Say hi", config=types.GenerateContentConfig(max_output_tokens=20)
        )
        assert reply.text and reply.usage_metadata.prompt_token_count > 0
        ids[reply.response_id] = model
    chunks = list(client.models.generate_content_stream(model="g", contents="Say hi"))
    assert "".join(c.text or "" for c in chunks) and chunks[-1].candidates[0].finish_reason == "STOP"
    ids[chunks[-1].response_id] = "g"
    assert served.scripted.requests[-1][1]["model"] == "claude-sonnet-4-5-20250929"
    rows = {r.request_id: r for r in served.rows()}
    assert {i: rows[i].route for i in ids} == ids
    assert all(rows[i].outcome == "ok" and rows[i].cost_usd > 0 for i in ids)
    assert {rows[i].provider for i in ids} == {"gcp.gemini", "anthropic", "aws.bedrock"}


def test_express_mode_with_the_gateway_key_as_api_key(served) -> None:
    client = express_client(served.url)
    seen: list[str] = []
    client._api_client._httpx_client.event_hooks["request"].append(lambda r: seen.append(r.url.path))
    assert client.models.generate_content(model="g", contents="Say hi").text
    assert "".join(c.text or "" for c in client.models.generate_content_stream(model="g", contents="Say hi"))
    assert client.models.count_tokens(model="g", contents="Say hi").total_tokens > 0
    prefix = "/v1beta1/publishers/google/models/g"
    assert seen == [f"{prefix}:generateContent", f"{prefix}:streamGenerateContent", f"{prefix}:countTokens"]
    # Vertex's v1 (GOOGLE_GENAI_API_VERSION=v1) is served as its v1beta1
    for path in ("/v1/publishers/google/models/g", "/v1/projects/p/locations/europe-west4/publishers/google/models/g"):
        answer = httpx.post(
            f"{served.url}{path}:generateContent",
            json={"contents": [{"role": "user", "parts": [{"text": "hi"}]}]},
            headers={"x-goog-api-key": "unused"},
        )
        assert answer.status_code == 200 and answer.json()["candidates"][0]["content"]["parts"][0]["text"]


def test_a_stream_asked_without_alt_sse_is_the_rest_apis_json_array(served) -> None:
    """Without `alt=sse` (Vertex's REST default, alt=json) streamGenerateContent answers one JSON array of chunks, as a
    REST caller parses it, not server-sent events; a function call comes whole in the last element."""
    body = {"contents": [{"role": "user", "parts": [{"text": "Say hi"}]}]}
    for query in ("", "?alt=json"):
        answer = httpx.post(
            f"{served.url}{PATH}/g:streamGenerateContent{query}", json=body, headers={"authorization": "Bearer unused"}
        )
        assert answer.status_code == 200 and answer.headers["content-type"] == "application/json"
        chunks = answer.json()
        assert "".join(p["text"] for c in chunks for p in c["candidates"][0].get("content", {}).get("parts", []))
        assert chunks[-1]["candidates"][0]["finishReason"] == "STOP" and chunks[-1]["usageMetadata"]["totalTokenCount"]
    tools = [{"functionDeclarations": [{"name": "get_weather", "parameters": {"type": "OBJECT"}}]}]
    called = httpx.post(
        f"{served.url}{PATH}/fast:streamGenerateContent",
        json={**body, "tools": tools},
        headers={"authorization": "Bearer unused"},
    ).json()
    [call] = [p["functionCall"] for p in called[-1]["candidates"][0]["content"]["parts"] if "functionCall" in p]
    assert call["name"] == "get_weather" and call["args"] == json.loads(arguments_for("get_weather"))
    other = httpx.post(
        f"{served.url}{PATH}/g:streamGenerateContent?alt=proto", json=body, headers={"authorization": "Bearer unused"}
    )
    assert other.status_code == 400 and other.json()["error"]["message"].startswith("alt: ")
    rows = served.rows()
    assert [(r.route, r.outcome) for r in rows] == [("g", "ok"), ("g", "ok"), ("fast", "ok")]


def test_count_tokens_on_vertex_counts_with_the_routes_model(served) -> None:
    counted = served.client.models.count_tokens(
        model="g", contents="Say hi", config=types.CountTokensConfig(system_instruction="Be brief.")
    )
    bare = served.client.models.count_tokens(model="g", contents="Say hi")
    assert counted.total_tokens > bare.total_tokens > 0
    # The SDK sends the request's generationConfig with a count on Vertex AI: its sampling shapes no prompt, and a
    # seed or penalty, which Claude has no place for, refused the count of a route to Claude.
    sampling = types.GenerationConfig(seed=7, presence_penalty=0.5, frequency_penalty=0.2, temperature=0.3, top_k=5)
    for model in ("g", "haiku"):
        config = types.CountTokensConfig(generation_config=sampling)
        alone = served.client.models.count_tokens(model=model, contents="Say hi").total_tokens
        assert served.client.models.count_tokens(model=model, contents="Say hi", config=config).total_tokens == alone
    assert served.rows() == []  # a count writes no ledger row


@pytest.mark.parametrize(
    ("body", "named"),
    [
        ({"contents": [{"role": "user", "parts": [{"bogus": 1}]}]}, "contents[0].parts[0].bogus"),
        (
            {"contents": [{"role": "user", "parts": [{"text": "hi"}]}], "generationConfig": {"maxOutputTokens": "x"}},
            "generationConfig.maxOutputTokens",
        ),
        ({"contents": "hi", "unknownField": 1}, "unknownField"),
        # a field of the wrong type deep in the body is the caller's 400, not the gateway's 500
        (
            {"contents": [{"role": "user", "parts": [{"text": "hi"}]}], "tools": [{"functionDeclarations": 1}]},
            "tools[0].functionDeclarations: expected a list",
        ),
        (
            {
                "contents": [{"role": "user", "parts": [{"text": "hi"}]}],
                "toolConfig": {"functionCallingConfig": {"mode": "ANY", "allowedFunctionNames": 5}},
            },
            "toolConfig.functionCallingConfig.allowedFunctionNames: expected a list",
        ),
    ],
)
def test_a_malformed_body_is_a_400_naming_the_field(served, body, named) -> None:
    answer = httpx.post(
        f"{served.url}{PATH}/fast:generateContent", json=body, headers={"authorization": "Bearer unused"}
    )
    assert answer.status_code == 400, answer.text
    error = answer.json()["error"]
    assert error["status"] == "INVALID_ARGUMENT" and named in error["message"]
    with pytest.raises(errors.ClientError, match=r"generationConfig\.candidateCount: not carried") as sdk:
        served.client.models.generate_content(
            model="g", contents="hi", config=types.GenerateContentConfig(candidate_count=2)
        )
    assert sdk.value.code == 400
    assert served.upstream.bodies == []  # nothing reached a model


def test_the_edges_refusals_and_a_fault_inside_the_gateway_are_googles_errors(served, monkeypatch) -> None:
    """What the edge refuses before any endpoint runs (here text that is not Unicode), and a bug, are answered in
    Google's shape on Vertex's paths too, so google-genai has their status and message."""
    from tokenomy.gateway import gemini_routes

    with pytest.raises(errors.ClientError) as unsendable:
        served.client.models.generate_content(model="g", contents="hi \ud800")
    assert (unsendable.value.code, unsendable.value.status) == (400, "INVALID_ARGUMENT")
    assert "lone UTF-16 surrogate" in unsendable.value.message

    def broken(model, body):
        raise RuntimeError("a bug")

    monkeypatch.setattr(gemini_routes, "request_from_gemini", broken)
    with pytest.raises(errors.ServerError) as crashed:
        served.client.models.generate_content(model="g", contents="hi")
    assert (crashed.value.code, crashed.value.status) == (500, "INTERNAL")
    assert "internal error (RuntimeError); see the gateway's log" in crashed.value.message


def test_unknown_models_and_other_vertex_paths_are_googles_404s(served) -> None:
    assert served.client.models.get(model="g").name == "models/g"  # Vertex's models.get path reaches the gateway's
    assert {"models/g", "models/fast"} <= {m.name for m in served.client.models.list()}  # and its models.list
    express = express_client(served.url)  # held while its pager reads
    assert {"models/g"} <= {m.name for m in express.models.list()}
    with pytest.raises(errors.ClientError, match="`nope` does not exist on this gateway") as missing:
        served.client.models.generate_content(model="nope", contents="hi")
    assert missing.value.code == 404 and missing.value.status == "NOT_FOUND"
    other = httpx.post(
        f"{served.url}/v1/projects/p/locations/us-central1/publishers/meta/models/llama:predict", json={}
    )
    assert other.status_code == 404
    assert "publishers/google/models/{model}" in other.json()["error"]["message"]
    with pytest.raises(errors.ClientError) as other_method:  # Vertex-only methods are named as the SDK sent them
        served.client.models.compute_tokens(model="g", contents="hi")
    assert other_method.value.code == 404
    assert other_method.value.message.startswith(f"{PATH}/g:computeTokens: this gateway serves :generateContent")
    # A GET on a method's path is a 405 naming that path, not "model `g:generateContent` does not exist"
    for method in ("generateContent", "streamGenerateContent", "countTokens"):
        path = f"{PATH}/g:{method}"
        wrong = httpx.get(served.url + path, headers={"authorization": "Bearer unused"})
        assert (wrong.status_code, wrong.headers["allow"]) == (405, "POST")
        assert wrong.json()["error"] == {
            "code": 405,
            "message": f"GET {path} is not allowed; send POST",
            "status": "INVALID_ARGUMENT",
        }
    unknown = httpx.post(f"{served.url}/v2/anything", json={})  # any path's 404 lists Vertex's among those served
    assert unknown.status_code == 404 and "publishers/google/models/{model}" in unknown.json()["error"]["message"]


def test_the_gateway_key_is_the_credentials_token_or_the_express_api_key(tmp_path) -> None:
    from tokenomy.gateway.keys import KeyStore

    ledger = tmp_path / "ledger.duckdb"
    secret, key = KeyStore(open_store(ledger)).create(budget_usd=Decimal("0.01"), period="month", name="app")
    with ServerThread(create_gemini(engine=InstantEngine())) as gemini:
        config = parse_config(
            {"auth": True, "models": {"g": {"provider": "gemini", "model": GEMINI, "base_url": gemini}}}
        )
        with ServerThread(create_app(config, str(ledger)), lifespan="on") as url:
            for stranger in (vertex_client(url, "wrong"), express_client(url, "wrong")):
                with pytest.raises(errors.ClientError, match="Invalid or revoked API key") as refused:
                    stranger.models.generate_content(model="g", contents="hi")
                assert refused.value.code == 401 and refused.value.status == "UNAUTHENTICATED"
                with pytest.raises(errors.ClientError, match="Invalid or revoked API key"):
                    stranger.models.count_tokens(model="g", contents="hi")
            anonymous = httpx.post(f"{url}{PATH}/g:generateContent", json={"contents": "hi"})
            assert anonymous.status_code == 401
            # (each Client held while its models are used: a Client closes its connections when collected)
            client, express = vertex_client(url, secret), express_client(url, secret)
            reply = client.models.generate_content(
                model="g", contents="hi", config=types.GenerateContentConfig(max_output_tokens=5)
            )
            assert express.models.count_tokens(model="g", contents="hi").total_tokens > 0
            # 20k output tokens at Gemini 2.5 Flash's $2.50 per million could cost $0.05: more than the $0.01 budget.
            with pytest.raises(errors.ClientError, match="Budget exhausted") as spent:
                express.models.generate_content(
                    model="g", contents="hi", config=types.GenerateContentConfig(max_output_tokens=20_000)
                )
            assert spent.value.code == 429
    [row] = open_store(str(ledger)).events()
    assert (row.key_id, row.route, row.request_id) == (key.key_id, "g", reply.response_id)
