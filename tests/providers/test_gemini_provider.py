"""Tokenomy's Gemini provider (google-genai underneath) against the Gemini emulator on 127.0.0.1: chat and
stream through the Tokenomy client with ledger rows and catalog costs, an explicit cache read, a tool round
trip, thinking with its signature sent back, JSON output, Vertex AI paths and error mapping."""

from __future__ import annotations

import json
from decimal import Decimal

import pytest
from google import genai
from google.genai import types

from tokenomy.client import Tokenomy
from tokenomy.emulate.gemini_api import create_app
from tokenomy.emulate.instant_engine import InstantEngine
from tokenomy.emulate.server import ServerThread
from tokenomy.errors import ConfigError, ProviderError
from tokenomy.ledger.store import open_store
from tokenomy.messages import ChatRequest, Message, ReasoningBlock, TextBlock, ToolResultBlock
from tokenomy.pricing.catalog import default_catalog
from tokenomy.providers.gemini_provider import GeminiProvider
from tokenomy.providers.registry import ModelSpec, resolve_model
from tokenomy.request_options import Reasoning, ResponseFormat, ToolChoice, ToolSpec

MODEL = "gemini-2.5-flash"
MILLION = Decimal(1_000_000)
SCHEMA = {"type": "object", "properties": {"city": {"type": "string"}}, "required": ["city"]}


@pytest.fixture(scope="module")
def url():
    with ServerThread(create_app(engine=InstantEngine(), batch_pending_seconds=0.05)) as base:
        yield base


@pytest.fixture(autouse=True)
def no_google_env(monkeypatch):
    for key in ("GEMINI_API_KEY", "GOOGLE_API_KEY", "GOOGLE_CLOUD_PROJECT", "GOOGLE_CLOUD_LOCATION"):
        monkeypatch.delenv(key, raising=False)


def test_gemini_ids_resolve_to_the_gemini_provider() -> None:
    assert resolve_model(MODEL).provider == "gemini"  # a catalog id priced under `google`
    assert resolve_model("gemini/gemini-2.5-pro") == ModelSpec("gemini/gemini-2.5-pro", "gemini", "gemini-2.5-pro")
    assert resolve_model("vertex/gemini-2.5-pro").provider == "vertex"


def test_the_vertex_location_is_looked_up_in_one_place(monkeypatch) -> None:
    # `location or GOOGLE_CLOUD_LOCATION or "global"` was written out five times (the client, the provider's region,
    # the Vertex batch backend, `caches` twice): the ledger row must name the location the client used, and five
    # copies could drift apart.
    from pathlib import Path

    from tokenomy.providers.gemini_client import vertex_location

    assert vertex_location(None) == "global" and vertex_location("europe-west4") == "europe-west4"
    monkeypatch.setenv("GOOGLE_CLOUD_LOCATION", "us-central1")
    assert vertex_location(None) == "us-central1" and vertex_location("asia-east1") == "asia-east1"
    src = Path(__file__).resolve().parents[2] / "src" / "tokenomy"
    lookup = 'os.environ.get("GOOGLE_CLOUD_LOCATION")'
    copies = [
        str(p.relative_to(src))
        for p in src.rglob("*.py")
        for line in p.read_text(encoding="utf-8").splitlines()
        if lookup in line
    ]
    assert copies == ["providers/gemini_client.py"], copies


def test_chat_and_stream_are_recorded_in_the_ledger_at_catalog_prices(url, ledger_path) -> None:
    spec = {"g": ModelSpec(name="g", provider="gemini", model=MODEL, base_url=url)}
    with Tokenomy(ledger_path, models=spec) as client:
        whole = client.chat(ChatRequest.simple("Name a planet of the solar system", model="g", max_tokens=20))
        chunks = list(client.stream(ChatRequest.simple("Name a planet of the solar system", model="g", max_tokens=20)))
    final = chunks[-1].response
    assert whole.provider == "gcp.gemini" and whole.model == MODEL and whole.finish_reason == "stop"
    assert whole.text == "Re: Name a planet of the solar system"
    assert final.text == "".join(c.delta for c in chunks[:-1]) == whole.text
    assert final.usage == whole.usage and whole.usage.output_tokens == 8 and whole.usage.input_tokens > 5
    assert final.ttft_ms is not None and 0 < final.ttft_ms <= final.latency_ms
    entry = default_catalog().lookup(MODEL)
    expected = (whole.usage.input_tokens * entry.input + whole.usage.output_tokens * entry.output) / MILLION
    assert whole.cost_usd == expected == final.cost_usd
    events = open_store(ledger_path).events()
    assert [e.provider for e in events] == ["gcp.gemini", "gcp.gemini"] and {e.outcome for e in events} == {"ok"}
    assert [e.cost_usd for e in events] == [expected, expected]
    assert events[0].input_tokens == whole.usage.input_tokens and events[0].output_tokens == 8


def test_named_cache_is_read_and_priced_at_the_cached_rate(url, ledger_path) -> None:
    sdk = genai.Client(api_key="x", http_options={"base_url": url})
    document = "\n".join(f"Rule {i}: parcels to zone {i} ship on day {i % 5 + 1}." for i in range(160))
    cache = sdk.caches.create(model=MODEL, config=types.CreateCachedContentConfig(contents=[document]))
    cached = cache.usage_metadata.total_token_count
    spec = {"g": ModelSpec(name="g", provider="gemini", model=MODEL, base_url=url)}
    with Tokenomy(ledger_path, models=spec) as client:
        response = client.chat(
            ChatRequest.simple("When does zone 3 ship?", model="g", extra={"cached_content": cache.name})
        )
    usage = response.usage
    assert usage.cache_read_tokens == cached and usage.input_tokens > 0
    entry = default_catalog().lookup(MODEL)
    expected = usage.input_tokens * entry.input + cached * entry.cache_read + usage.output_tokens * entry.output
    assert response.cost_usd == expected / MILLION
    [event] = open_store(ledger_path).events()
    assert event.cache_read_tokens == cached and event.cost_usd == expected / MILLION


def test_tool_call_round_trip_through_the_provider(url) -> None:
    provider = GeminiProvider(base_url=url)
    tools = [ToolSpec("get_weather", "Weather now", SCHEMA)]
    ask = Message("user", "Weather in Oslo?")
    first = provider.chat(ChatRequest(messages=[ask], model=MODEL, tools=tools, tool_choice=ToolChoice("any")))
    [call] = first.tool_calls
    assert first.finish_reason == "tool_calls" and call.name == "get_weather" and isinstance(call.input["city"], str)
    second = provider.chat(
        ChatRequest(
            model=MODEL,
            tools=tools,
            messages=[
                ask,
                Message("assistant", first.content),
                Message("user", [ToolResultBlock(call.id, [TextBlock("sunny")])]),
            ],
        )
    )
    assert not second.tool_calls and '"output": "sunny"' in second.text
    streamed = list(
        provider.stream(
            ChatRequest(messages=[ask], model=MODEL, tools=tools, tool_choice=ToolChoice("tool", "get_weather"))
        )
    )
    deltas = [c.tool_call for c in streamed if c.tool_call]
    assert deltas[0].name == "get_weather" and json.loads(deltas[0].arguments) == call.input
    assert streamed[-1].response.tool_calls[0].id == deltas[0].id
    provider.close()


def test_thinking_is_output_and_its_signature_goes_back(url) -> None:
    provider = GeminiProvider(base_url=url)
    request = ChatRequest.simple("Is 17 prime?", model=MODEL, reasoning=Reasoning(budget_tokens=256))
    response = provider.chat(request)
    thought = response.content[0]
    assert isinstance(thought, ReasoningBlock) and thought.text and thought.signature
    assert response.usage.reasoning_tokens > 0
    assert response.usage.output_tokens == response.usage.reasoning_tokens + len(response.text.split())
    again = provider.chat(
        ChatRequest(
            model=MODEL,
            messages=[
                Message("user", "Is 17 prime?"),
                Message("assistant", response.content),
                Message("user", "And 19?"),
            ],
        )
    )
    assert again.text.startswith("Re: And 19?")  # the emulator checked the signature it issued
    streamed = list(provider.stream(request))
    assert "".join(c.reasoning for c in streamed) == thought.text and streamed[-1].response.content[0] == thought
    forged = ReasoningBlock(thought.text + "!", thought.signature)
    with pytest.raises(ProviderError, match="Thought signature") as refused:
        provider.chat(
            ChatRequest(
                model=MODEL,
                messages=[
                    Message("user", "Is 17 prime?"),
                    Message("assistant", [forged, TextBlock("yes")]),
                    Message("user", "ok"),
                ],
            )
        )
    assert refused.value.kind == "client_error"
    provider.close()


def test_json_schema_output_parses(url) -> None:
    provider = GeminiProvider(base_url=url)
    response = provider.chat(
        ChatRequest.simple(
            "A city, as JSON", model=MODEL, response_format=ResponseFormat("json_schema", SCHEMA, "city")
        )
    )
    assert set(json.loads(response.text)) == {"city"}
    provider.close()


def test_vertex_ai_paths_with_project_and_location(url) -> None:
    spec = ModelSpec(
        name="v", provider="vertex", model=MODEL, base_url=url, region="europe-west4", options=(("project", "acme"),)
    )
    with Tokenomy(models={"v": spec}) as client:
        response = client.chat(ChatRequest.simple("Hello from Vertex", model="v"))
    assert response.provider == "gcp.vertex_ai" and response.region == "europe-west4"
    assert response.text == "Re: Hello from Vertex" and response.cost_usd > 0
    # A Vertex context cache (projects/.../cachedContents) is read the same way.
    from google.oauth2.credentials import Credentials

    sdk = genai.Client(
        vertexai=True,
        project="acme",
        location="europe-west4",
        credentials=Credentials(token="t"),
        http_options={"base_url": url},
    )
    cache = sdk.caches.create(model=MODEL, config=types.CreateCachedContentConfig(contents=["clause " * 1200]))
    vertex = GeminiProvider(vertex=True, base_url=url, project="acme", location="europe-west4")
    cached = vertex.chat(ChatRequest.simple("Summarise", model=MODEL, extra={"cached_content": cache.name}))
    assert cached.usage.cache_read_tokens == cache.usage_metadata.total_token_count > 1024
    vertex.close()
    with pytest.raises(ConfigError, match="GOOGLE_CLOUD_PROJECT"):
        GeminiProvider(vertex=True, base_url=url)


def test_errors_map_to_tokenomy_kinds(url) -> None:
    provider = GeminiProvider(base_url=url)
    with pytest.raises(ProviderError) as unknown:
        provider.chat(ChatRequest.simple("x", model="gemini-0-nope"))
    assert unknown.value.kind == "client_error" and unknown.value.status == 404
    with ServerThread(create_app(throttle_rate=1.0, engine=InstantEngine())) as busy:
        throttled = GeminiProvider(base_url=busy)
        with pytest.raises(ProviderError) as limited:
            throttled.chat(ChatRequest.simple("x", model=MODEL))
        assert limited.value.kind == "throttled" and limited.value.retryable
        throttled.close()
    # The model cannot call a tool whose input is not an object: a 500, before or in the middle of a stream.
    odd = ChatRequest.simple(
        "x", model=MODEL, tools=[ToolSpec("f", input_schema={"type": "string"})], tool_choice=ToolChoice("any")
    )
    with pytest.raises(ProviderError, match="could not produce JSON") as failed:
        provider.chat(odd)
    assert failed.value.kind == "server_error" and failed.value.status == 500
    with pytest.raises(ProviderError, match="could not produce JSON") as failed:
        list(provider.stream(odd))
    assert failed.value.kind == "server_error" and failed.value.retryable
    with pytest.raises(ProviderError, match="cannot take field `logit_bias`"):
        provider.chat(ChatRequest.simple("x", model=MODEL, extra={"logit_bias": {"50256": -100}}))
    provider.close()


@pytest.mark.parametrize(
    ("sdk_field", "value", "own"),
    [
        ("frequency_penalty", 0.25, "frequency_penalty"),
        ("thinking_config", {"thinking_budget": 1024}, "reasoning settings"),
        ("max_output_tokens", 20, "max_tokens"),
        ("response_json_schema", SCHEMA, "response_format"),
    ],
)
def test_a_config_field_the_request_sets_itself_is_refused_naming_the_field_to_set(
    url, ledger_path, sdk_field, value, own
) -> None:
    """A library caller who writes a GenerateContentConfig field the request maps itself into `extra` (as written for
    google-genai) was told Gemini "cannot take" it and to send the request to a model that supports it, which
    Gemini is; the 400 names the request's own field to set, before any call."""
    specs = {"g": ModelSpec(name="g", provider="gemini", model=MODEL, base_url=url)}
    with Tokenomy(ledger_path, models=specs) as client:
        with pytest.raises(ProviderError) as refused:
            client.chat(ChatRequest.simple("hi", model="g", max_tokens=5, extra={sdk_field: value}))
    message = str(refused.value)
    assert (refused.value.kind, refused.value.status, refused.value.retryable) == ("client_error", 400, False)
    assert f"`{sdk_field}`: Gemini's name for what the request's own {own}" in message, message
    assert "cannot take" not in message and "a model that supports it" not in message, message


def test_geminis_retry_delay_reaches_the_caller_as_retry_after(tmp_path) -> None:
    """The Gemini API says how long to wait in its 429's body (RetryInfo's retryDelay), with no Retry-After header:
    it was read as no wait at all, so the gateway's retries came back at once and the caller got no Retry-After.
    The call's attempts are recorded, throttled."""
    import openai
    from fastapi import FastAPI
    from starlette.responses import JSONResponse

    from tokenomy.config import parse_config
    from tokenomy.gateway.app import create_app as gateway_app

    quota = {
        "code": 429,
        "message": "You exceeded your current quota. Please retry in 37.5s.",
        "status": "RESOURCE_EXHAUSTED",
        "details": [
            {"@type": "type.googleapis.com/google.rpc.Help", "links": []},
            {"@type": "type.googleapis.com/google.rpc.RetryInfo", "retryDelay": "37.5s"},
        ],
    }
    busy = FastAPI()

    @busy.post("/{version}/models/{target}")
    async def generate(target: str):
        return JSONResponse({"error": quota}, status_code=429)

    ledger = tmp_path / "ledger.duckdb"
    with ServerThread(busy) as gemini:
        with pytest.raises(ProviderError) as direct:
            GeminiProvider(base_url=gemini).chat(ChatRequest.simple("x", model=MODEL))
        assert (direct.value.kind, direct.value.retry_after) == ("throttled", 37.5)
        models = {"g": {"provider": "gemini", "model": MODEL, "base_url": gemini}}
        routes = {"once": {"model": "g", "retry": {"max_attempts": 1}}}
        app = gateway_app(parse_config({"models": models, "routes": routes}), str(ledger))
        with ServerThread(app, lifespan="on") as url:
            chat = openai.OpenAI(base_url=url + "/v1", api_key="unused", max_retries=0)
            with pytest.raises(openai.RateLimitError) as limited:
                chat.chat.completions.create(model="once", messages=[{"role": "user", "content": "hi"}])
    assert limited.value.response.headers.get("retry-after") == "38"
    assert [row.outcome for row in open_store(ledger).events()] == ["throttled"]


def test_missing_key_names_the_variables() -> None:
    with pytest.raises(ConfigError, match="GEMINI_API_KEY or GOOGLE_API_KEY"):
        GeminiProvider(base_url="https://generativelanguage.googleapis.com")
    with pytest.raises(ConfigError, match="MY_KEY"):
        GeminiProvider(api_key_env="MY_KEY")


def test_vertex_without_google_credentials_is_a_client_error_not_retried(tmp_path, ledger_path, monkeypatch) -> None:
    """No Application Default Credentials: one attempt, a client error saying how to log in (it was a server error,
    retried four times)."""
    monkeypatch.delenv("GOOGLE_APPLICATION_CREDENTIALS", raising=False)
    monkeypatch.setenv("HOME", str(tmp_path))
    monkeypatch.setenv("CLOUDSDK_CONFIG", str(tmp_path / "gcloud"))
    monkeypatch.setenv("NO_GCE_CHECK", "True")  # never look for a metadata server
    monkeypatch.setenv("GCE_METADATA_HOST", "127.0.0.1:9")
    monkeypatch.setenv("GCE_METADATA_IP", "127.0.0.1:9")
    # Not a loopback URL (an emulator gets stand-in credentials); .invalid never resolves, so nothing is sent.
    spec = {
        "v": ModelSpec(
            name="v", provider="vertex", model=MODEL, base_url="http://vertex.invalid", options=(("project", "acme"),)
        )
    }
    with Tokenomy(ledger_path, models=spec) as client:
        with pytest.raises(ProviderError) as caught:
            client.chat(ChatRequest.simple("hi", model="v", max_tokens=5))
    assert caught.value.kind == "client_error" and "gcloud auth application-default login" in str(caught.value)
    assert [row.attempt for row in open_store(ledger_path).events()] == [1]


def test_vertex_with_refused_credentials_is_a_client_error_not_retried(tmp_path, ledger_path, monkeypatch) -> None:
    """Credentials Google refuses to refresh (a revoked or expired login, a deleted service-account key): one attempt,
    a client error saying how to log in again (it was a server error, retried four times)."""
    import threading
    from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

    from cryptography.hazmat.primitives import serialization
    from cryptography.hazmat.primitives.asymmetric import rsa

    refusals = []

    class TokenEndpoint(BaseHTTPRequestHandler):
        def log_message(self, *args):
            pass

        def do_POST(self):
            self.rfile.read(int(self.headers.get("content-length", 0)))
            refusals.append(self.path)
            body = json.dumps({"error": "invalid_grant", "error_description": "Invalid JWT Signature."}).encode()
            self.send_response(400)
            self.send_header("content-type", "application/json")
            self.send_header("content-length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

    server = ThreadingHTTPServer(("127.0.0.1", 0), TokenEndpoint)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    key = rsa.generate_private_key(public_exponent=65537, key_size=2048).private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
    )
    key_file = tmp_path / "sa.json"
    key_file.write_text(
        json.dumps(
            {
                "type": "service_account",
                "project_id": "acme",
                "private_key_id": "1",
                "private_key": key.decode(),
                "client_email": "sa@acme.iam.gserviceaccount.com",
                "client_id": "1",
                "token_uri": f"http://127.0.0.1:{server.server_address[1]}/token",
            }
        )
    )
    monkeypatch.setenv("GOOGLE_APPLICATION_CREDENTIALS", str(key_file))
    monkeypatch.setenv("NO_GCE_CHECK", "True")
    spec = {
        "v": ModelSpec(
            name="v", provider="vertex", model=MODEL, base_url="http://vertex.invalid", options=(("project", "acme"),)
        )
    }
    try:
        with Tokenomy(ledger_path, models=spec) as client:
            with pytest.raises(ProviderError) as caught:
                client.chat(ChatRequest.simple("hi", model="v", max_tokens=5))
    finally:
        server.shutdown()
    assert caught.value.kind == "client_error" and "gcloud auth application-default login" in str(caught.value)
    assert "invalid_grant" in str(caught.value) and refusals == ["/token"]
    assert [row.attempt for row in open_store(ledger_path).events()] == [1]


@pytest.mark.parametrize(
    ("entry", "named", "fix"),
    [
        ({"provider": "gemini", "project": "acme"}, "project applies to provider vertex", "set provider: vertex"),
        (
            {"provider": "vertex", "project": "acme", "api_key_env": "GEMINI_API_KEY"},
            "api_key_env applies to provider",
            "set provider: gemini",
        ),
        (
            {"provider": "vertex", "project": "acme", "endpoint_url": "http://127.0.0.1:1"},
            "endpoint_url applies to provider bedrock",
            "base_url",
        ),
    ],
)
def test_a_setting_the_provider_never_reads_is_refused_at_load(entry, named, fix) -> None:
    """A Gemini API model given a Vertex project, a Vertex model given an API key variable: refused at load naming
    the key and the fix (they were ignored: the calls went to the Gemini API, or to Vertex without the key)."""
    from tokenomy.config import parse_config

    with pytest.raises(ConfigError) as info:
        parse_config({"models": {"g": {"model": MODEL, **entry}}}, "t.yaml")
    assert "models.g" in str(info.value) and named in str(info.value) and fix in str(info.value)


def test_config_check_warns_of_a_vertex_model_with_no_project() -> None:
    """No project and no GOOGLE_CLOUD_PROJECT: `tokenomy serve` says at start that every call will fail, naming the
    key (it started, and each call failed with a ConfigError)."""
    from tokenomy.config import parse_config
    from tokenomy.config_checks import check_config

    config = parse_config({"models": {"vx": {"provider": "vertex", "model": MODEL, "region": "us-central1"}}}, "t.yaml")
    assert check_config(config, environ={}).warnings == [
        "t.yaml: models.vx.project: not set, nor is $GOOGLE_CLOUD_PROJECT; every call to vx will fail until you set "
        "project: to the Google Cloud project"
    ]
    assert check_config(config, environ={"GOOGLE_CLOUD_PROJECT": "acme"}).warnings == []


def test_a_config_field_only_the_other_api_takes_is_a_client_error_not_retried(url, ledger_path) -> None:
    """google-genai refuses, before sending, a config field of the other API (`audio_timestamp` is Vertex AI's,
    `enable_enhanced_civic_answers` the Gemini API's): one attempt, a 400 client error naming the field (the SDK's
    ValueError was a server error, retried four times)."""
    specs = {
        "g": ModelSpec(name="g", provider="gemini", model=MODEL, base_url=url),
        "v": ModelSpec(name="v", provider="vertex", model=MODEL, base_url=url, options=(("project", "acme"),)),
    }
    caught = []
    with Tokenomy(ledger_path, models=specs) as client:
        for name, field in (("g", "audio_timestamp"), ("v", "enable_enhanced_civic_answers")):
            with pytest.raises(ProviderError) as info:
                client.chat(ChatRequest.simple("hi", model=name, max_tokens=5, extra={field: True}))
            caught.append(info.value)
    assert [(e.kind, e.status, e.retryable) for e in caught] == [("client_error", 400, False)] * 2
    assert "audio_timestamp parameter is only supported" in str(caught[0]) and "provider: vertex" in str(caught[0])
    assert [row.attempt for row in open_store(ledger_path).events()] == [1, 1]


def _tiered_gemini(tier_header):
    """A Gemini API peer that answers with `x-gemini-service-tier: <tier_header(asked)>` (the tier it served; none
    when that returns None), whole or streamed: 1,000 prompt tokens, 100 output."""
    import threading
    from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

    class Handler(BaseHTTPRequestHandler):
        def log_message(self, *args):
            pass

        def do_POST(self):
            body = json.loads(self.rfile.read(int(self.headers["content-length"])))
            served = tier_header(body.get("serviceTier"))
            answer = {
                "candidates": [{"content": {"role": "model", "parts": [{"text": "ok"}]}, "finishReason": "STOP"}],
                "usageMetadata": {"promptTokenCount": 1000, "candidatesTokenCount": 100, "totalTokenCount": 1100},
                "modelVersion": MODEL,
            }
            stream = "streamGenerateContent" in self.path
            data = b"data: " + json.dumps(answer).encode() + b"\r\n\r\n" if stream else json.dumps(answer).encode()
            self.send_response(200)
            self.send_header("content-type", "text/event-stream" if stream else "application/json")
            self.send_header("content-length", str(len(data)))
            if served:
                self.send_header("x-gemini-service-tier", served)
            self.end_headers()
            self.wfile.write(data)

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    return server


def test_a_flex_or_priority_call_is_recorded_at_the_tier_gemini_served(ledger_path, tmp_path) -> None:
    """`service_tier` is a GenerateContentConfig field, so it rides in `extra` to Gemini, which bills flex at half
    the standard price and priority at up to twice it (or at standard when over its priority limit, which the
    x-gemini-service-tier header says): every call was recorded at the standard price."""
    prices = tmp_path / "prices.yaml"
    prices.write_text(f"""provider: google
source: https://ai.google.dev/gemini-api/docs/pricing
as_of: "2026-11-01"
models:
  {MODEL}:
    regions:
      global:
        input: "0.30"
        output: "2.50"
        service_tiers:
          flex: {{input: "0.15", output: "1.25", source: "test", as_of: "2026-11-01"}}
          priority: {{input: "0.54", output: "4.50", source: "test", as_of: "2026-11-01"}}
""")
    catalog = default_catalog().with_overrides(prices)
    downgraded = _tiered_gemini(lambda asked: "standard" if asked == "priority" else asked)
    try:
        url = f"http://127.0.0.1:{downgraded.server_address[1]}"
        spec = {"g": ModelSpec(name="g", provider="gemini", model=MODEL, base_url=url)}
        with Tokenomy(ledger_path, models=spec, catalog=catalog) as client:
            for tier in ("flex", "priority", None):
                extra = {"service_tier": tier} if tier else {}
                client.chat(ChatRequest.simple("hi", model="g", max_tokens=100, extra=extra))
            final = list(
                client.stream(ChatRequest.simple("hi", model="g", max_tokens=100, extra={"service_tier": "flex"}))
            )[-1].response
    finally:
        downgraded.shutdown()
        downgraded.server_close()
    assert final.raw["top"] == {"service_tier": "flex"}  # the gateway's answer shows it, as OpenAI's does
    rows = open_store(ledger_path).events()
    flex, standard = Decimal("0.000275"), Decimal("0.00055")  # 1,000 in + 100 out at $0.15/$1.25 and $0.30/$2.50
    assert [r.cost_usd for r in rows] == [flex, standard, standard, flex]
    assert [r.tags.get("service_tier") for r in rows] == ["flex", None, None, "flex"]


def test_the_served_tier_is_read_from_any_source_gemini_gives() -> None:
    from types import SimpleNamespace

    from google.genai import types

    from tokenomy.providers.gemini_answer_read import served_tier

    assert served_tier({"X-Gemini-Service-Tier": "Flex"}, None, "priority") == "flex"  # the header wins, any case
    vertex = SimpleNamespace(traffic_type=types.TrafficType.ON_DEMAND_PRIORITY)
    assert served_tier({}, vertex, None) == "priority"  # Vertex AI: the usage's traffic type
    assert served_tier({}, SimpleNamespace(traffic_type=types.TrafficType.ON_DEMAND), "flex") == "standard"
    assert served_tier(None, None, "SERVICE_TIER_FLEX") == "flex" and served_tier(None, None, None) is None


@pytest.mark.parametrize("vertex", [False, True])
def test_a_count_equals_the_prompt_tokens_generate_content_reports(url, vertex) -> None:
    """The Gemini API's SDK counts `contents` alone; the system instruction and tools the model reads are counted
    through a whole generateContentRequest. Vertex AI takes them beside the contents."""
    provider = GeminiProvider(vertex=vertex, base_url=url, project="p" if vertex else None, location="us-central1")
    tool = ToolSpec("weather", "The weather in a city.", SCHEMA)
    asks = [
        ChatRequest.simple("Name a planet", model=MODEL, max_tokens=4),
        ChatRequest.simple("Name a planet", model=MODEL, max_tokens=4, system="Answer in one word.", tools=[tool]),
    ]
    counts = []
    for ask in asks:
        counts.append(provider.count_tokens(ask))
        usage = provider.chat(ask).usage
        assert counts[-1] == usage.input_tokens + usage.cache_read_tokens
    assert counts[1] > counts[0]
    with pytest.raises(ProviderError, match="404") as unknown:
        provider.count_tokens(ChatRequest.simple("Name a planet", model="gemini-nope"))
    assert unknown.value.kind == "client_error"


def test_a_call_that_outwaits_its_timeout_is_recorded_at_its_estimate_not_free(ledger_path, monkeypatch) -> None:
    # The request reached Gemini, which kept working after the client stopped waiting (a read timeout) and bills it:
    # recorded at $0 it was charged to no budget. A connect timeout (nothing sent) stays at $0.
    import asyncio

    import httpx
    from starlette.applications import Starlette
    from starlette.responses import Response
    from starlette.routing import Route

    from tokenomy.client import CallPolicy
    from tokenomy.providers.gemini_faults import map_gemini_error
    from tokenomy.resilience.retry import RetryPolicy

    async def slow(request):
        await asyncio.sleep(2)
        return Response(status_code=500)

    monkeypatch.setenv("GEMINI_API_KEY", "x")
    app = Starlette(routes=[Route("/{path:path}", slow, methods=["POST"])])
    with ServerThread(app) as base:
        spec = {"g": ModelSpec(name="g", provider="gemini", model=MODEL, base_url=base, options=(("timeout_s", 0.5),))}
        with Tokenomy(ledger_path, models=spec) as client, pytest.raises(ProviderError) as failed:
            client.chat(
                ChatRequest.simple("x" * 400, model="g", max_tokens=20),
                policy=CallPolicy(retry=RetryPolicy(max_attempts=1)),
            )
    assert failed.value.kind == "timeout" and failed.value.reached
    [row] = open_store(ledger_path).events()
    assert row.outcome == "timeout" and row.input_tokens == 100 and row.cost_usd > 0
    assert not map_gemini_error(httpx.ConnectTimeout("connect")).reached
