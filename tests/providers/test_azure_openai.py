"""Azure OpenAI: the openai SDK's AzureOpenAI client and Tokenomy's Azure provider against the Azure-shaped
emulator on 127.0.0.1 (deployments path, api-version, DeploymentNotFound, prompt caching, tools)."""

from __future__ import annotations

import json
import subprocess
import sys
from decimal import Decimal

import httpx
import openai
import pytest

from helpers import free_port, wait_for_port
from tokenomy.client import Tokenomy
from tokenomy.config import parse_config
from tokenomy.emulate.azure_openai import create_app
from tokenomy.emulate.instant_engine import InstantEngine
from tokenomy.emulate.server import ServerThread
from tokenomy.errors import ConfigError, ProviderError
from tokenomy.ledger.store import open_store
from tokenomy.messages import ChatRequest, ImageBlock, Message, TextBlock
from tokenomy.pricing.catalog import default_catalog
from tokenomy.providers.registry import resolve_model
from tokenomy.request_options import ResponseFormat, ToolChoice, ToolSpec

VERSION = "2024-10-21"
DEPLOYMENTS = {"chat-prod": "gpt-4o-mini"}
WEATHER = {"type": "object", "properties": {"city": {"type": "string"}, "days": {"type": "integer"}}}


@pytest.fixture(autouse=True)
def no_azure_env(monkeypatch):
    for key in ("AZURE_OPENAI_API_KEY", "AZURE_OPENAI_AD_TOKEN", "AZURE_OPENAI_ENDPOINT", "OPENAI_API_VERSION"):
        monkeypatch.delenv(key, raising=False)


@pytest.fixture
def azure_url():
    with ServerThread(create_app(DEPLOYMENTS, InstantEngine(), validating_seconds=0.05)) as url:
        yield url


def sdk(url: str, **kwargs) -> openai.AzureOpenAI:
    return openai.AzureOpenAI(azure_endpoint=url, api_version=VERSION, **{"api_key": "k", **kwargs})


def models(url: str, **entry) -> dict:
    config = {
        "models": {"prod": {"provider": "azure", "model": "chat-prod", "base_url": url, "price_as": "gpt-4o-mini"}}
    }
    config["models"]["prod"].update(entry)
    return parse_config(config).model_specs()


def by_hand(prompt: int, cached: int, output: int, model: str = "gpt-4o-mini", batch: bool = False) -> Decimal:
    """Cost from the catalog's per-million prices, computed here rather than by Tokenomy's pricing."""
    e = default_catalog().lookup(model)
    fresh, out = (e.batch_input, e.batch_output) if batch else (e.input, e.output)
    cache_rate = e.cache_read if not batch else e.batch_input  # batch figures below carry no cached tokens
    return ((prompt - cached) * fresh + cached * cache_rate + output * out) / Decimal(1_000_000)


# -- the SDK's Azure client against the emulator ------------------------------------------------------
def test_sdk_chat_on_a_deployment(azure_url):
    client = sdk(azure_url)
    reply = client.chat.completions.create(model="chat-prod", messages=[{"role": "user", "content": "hello azure"}])
    assert reply.model == "gpt-4o-mini" and reply.choices[0].message.content == "Re: hello azure"
    assert reply.usage is not None and reply.usage.prompt_tokens > 0 and reply.usage.completion_tokens == 3
    # A deployment named after its model exists too (the usual practice).
    same = client.chat.completions.create(model="gpt-4o-mini", messages=[{"role": "user", "content": "hi"}])
    assert same.choices[0].message.content == "Re: hi"


def test_sdk_missing_api_version_is_azures_404(azure_url):
    # The plain OpenAI client at the deployment URL sends no api-version: Azure answers 404 Resource not found.
    plain = openai.OpenAI(base_url=f"{azure_url}/openai/deployments/chat-prod", api_key="k")
    with pytest.raises(openai.NotFoundError) as info:
        plain.chat.completions.create(model="chat-prod", messages=[{"role": "user", "content": "x"}])
    assert info.value.body == {"code": "404", "message": "Resource not found"}
    with pytest.raises(openai.BadRequestError, match="API version not supported"):
        openai.AzureOpenAI(azure_endpoint=azure_url, api_version="latest", api_key="k").chat.completions.create(
            model="chat-prod", messages=[{"role": "user", "content": "x"}]
        )


def test_sdk_unknown_deployment_and_missing_key(azure_url):
    with pytest.raises(openai.NotFoundError) as info:
        sdk(azure_url).chat.completions.create(model="no-such", messages=[{"role": "user", "content": "x"}])
    assert isinstance(info.value.body, dict) and info.value.body["code"] == "DeploymentNotFound"
    # An Entra ID bearer token is accepted in place of a key; neither is a 401.
    token = sdk(azure_url, api_key=None, azure_ad_token="eyJ.token")
    assert token.chat.completions.create(model="chat-prod", messages=[{"role": "user", "content": "x"}]).choices
    # The SDK refuses to send nothing; a bare HTTP call shows the server's 401.
    anonymous = httpx.post(
        f"{azure_url}/openai/deployments/chat-prod/chat/completions?api-version={VERSION}",
        json={"messages": [{"role": "user", "content": "x"}]},
    )
    assert anonymous.status_code == 401 and anonymous.json()["error"]["code"] == "401"


def test_sdk_stream_reports_cached_tokens_on_a_repeated_prefix(azure_url):
    client = sdk(azure_url)
    long = "policy " * 1200  # ~1,800 tokens: past the 1,024-token caching floor
    usages = []
    for question in ("first?", "second?"):
        stream = client.chat.completions.create(
            model="chat-prod",
            messages=[{"role": "system", "content": long}, {"role": "user", "content": question}],
            stream=True,
            stream_options={"include_usage": True},
        )
        chunks = list(stream)
        assert chunks[0].choices == []  # Azure's prompt-filter chunk comes first
        assert "".join(c.choices[0].delta.content or "" for c in chunks if c.choices).startswith("Re:")
        usages.append(chunks[-1].usage)
    system_tokens = InstantEngine().count(long) + 1
    assert usages[0].prompt_tokens_details.cached_tokens == 0
    # The system message is the cached prefix, counted in 128-token steps past 1,024.
    assert usages[1].prompt_tokens_details.cached_tokens == 1024 + (system_tokens - 1024) // 128 * 128


def test_sdk_tool_call_then_answer_in_text(azure_url):
    client = sdk(azure_url)
    tools = [{"type": "function", "function": {"name": "get_weather", "parameters": WEATHER}}]
    asked = [{"role": "user", "content": "Weather in Oslo?"}]
    first = client.chat.completions.create(model="chat-prod", messages=asked, tools=tools)
    call = first.choices[0].message.tool_calls[0]
    assert first.choices[0].finish_reason == "tool_calls" and call.function.name == "get_weather"
    assert set(json.loads(call.function.arguments)) == {"city", "days"}
    answered = [
        *asked,
        {"role": "assistant", "content": None, "tool_calls": [call.model_dump()]},
        {"role": "tool", "tool_call_id": call.id, "content": "sunny"},
    ]
    second = client.chat.completions.create(model="chat-prod", messages=answered, tools=tools)
    assert second.choices[0].finish_reason == "stop" and second.choices[0].message.content


@pytest.mark.parametrize(
    "schema", [{"type": 5}, {"type": "object", "properties": 3}, {"type": "object", "required": 7}]
)
def test_sdk_malformed_schema_is_openais_400(azure_url, schema):
    # The emulator filled the schema in and crashed (a 500) where OpenAI answers 400 "Invalid schema for ...".
    client = sdk(azure_url)
    asked = [{"role": "user", "content": "Weather in Oslo?"}]
    tools = [{"type": "function", "function": {"name": "get_weather", "parameters": schema}}]
    with pytest.raises(openai.BadRequestError, match="Invalid schema for function 'get_weather'") as refused:
        client.chat.completions.create(model="chat-prod", messages=asked, tools=tools)
    assert refused.value.body["param"] == "tools[0].function.parameters"
    fmt = {"type": "json_schema", "json_schema": {"name": "report", "schema": schema}}
    with pytest.raises(openai.BadRequestError, match="Invalid schema for response_format 'report'"):
        client.chat.completions.create(model="chat-prod", messages=asked, response_format=fmt)


# -- Tokenomy's Azure provider through tokenomy.client ----------------------------------------------
def test_tokenomy_records_azure_calls_under_the_deployed_model_with_cached_price(azure_url, ledger_path, monkeypatch):
    monkeypatch.setenv("AZURE_OPENAI_API_KEY", "k")
    long = "clause " * 1300
    with Tokenomy(ledger_path, models=models(azure_url)) as client:
        answers = [
            client.chat(ChatRequest.simple("first?", model="prod", system=long, max_tokens=8)),
            list(client.stream(ChatRequest.simple("second?", model="prod", system=long, max_tokens=8)))[-1].response,
        ]
    assert answers[1] is not None
    assert [a.provider for a in answers] == ["azure", "azure"] and answers[0].text.startswith("Re:")
    assert answers[0].usage.cache_read_tokens == 0 and answers[1].usage.cache_read_tokens >= 1024
    events = open_store(ledger_path).events()
    assert len(events) == 2
    for event, answer in zip(sorted(events, key=lambda e: e.ts), answers, strict=True):
        u = answer.usage
        assert event.provider == "azure" and event.model == "gpt-4o-mini"
        assert event.tags["deployment"] == "chat-prod"
        assert event.cache_read_tokens == u.cache_read_tokens and event.input_tokens == u.input_tokens
        expected = by_hand(u.input_tokens + u.cache_read_tokens, u.cache_read_tokens, u.output_tokens)
        assert event.cost_usd == expected == answer.cost_usd
    entry = default_catalog().lookup("gpt-4o-mini")
    assert entry.cache_read < entry.input  # so the check above tells a cached rate from the plain one


def test_tokenomy_tools_images_and_json_schema_reach_azure(azure_url, ledger_path, monkeypatch):
    monkeypatch.setenv("AZURE_OPENAI_API_KEY", "k")
    tool = ToolSpec("get_weather", "Forecast", WEATHER)
    with Tokenomy(ledger_path, models=models(azure_url)) as client:
        called = client.chat(
            ChatRequest.simple("Weather?", model="prod", tools=[tool], tool_choice=ToolChoice("tool", "get_weather"))
        )
        forced = ChatRequest.simple("Weather?", model="prod", tools=[tool], tool_choice=ToolChoice("any"))
        streamed = list(client.stream(forced))[-1].response
        image = Message("user", [TextBlock("What is this?"), ImageBlock("image/png", data=b"\x89PNG")])
        seen = client.chat(ChatRequest(messages=[image], model="prod", max_tokens=4))
        shaped = client.chat(
            ChatRequest.simple("Forecast", model="prod", response_format=ResponseFormat("json_schema", WEATHER, "w"))
        )
    assert called.tool_calls[0].name == "get_weather" and set(called.tool_calls[0].input) == {"city", "days"}
    assert streamed is not None and streamed.finish_reason == "tool_calls"
    assert [(c.name, c.input) for c in streamed.tool_calls] == [(c.name, c.input) for c in called.tool_calls]
    assert seen.usage.input_tokens > 1600  # the image reached the server and was billed at its fixed estimate
    assert set(json.loads(shaped.text)) == {"city", "days"}


def test_tokenomy_azure_errors_name_the_fix(azure_url, ledger_path, monkeypatch):
    monkeypatch.setenv("AZURE_OPENAI_API_KEY", "k")
    with Tokenomy(ledger_path, models=models(azure_url, model="gone")) as client, pytest.raises(ProviderError) as info:
        client.chat(ChatRequest.simple("hi", model="prod"))
    assert info.value.kind == "client_error" and info.value.status == 404 and "DeploymentNotFound" in str(info.value)
    assert info.value.code == "DeploymentNotFound"  # the API's error.code, which the gateway passes on
    with pytest.raises(ConfigError, match="price_as"):
        resolve_model("azure/my-deployment")
    assert resolve_model("azure/gpt-4o-mini").provider == "azure"
    monkeypatch.delenv("AZURE_OPENAI_API_KEY")
    unkeyed = models(azure_url, api_key_env="NO_SUCH_KEY")
    with Tokenomy(ledger_path, models=unkeyed) as client, pytest.raises(ConfigError, match="AZURE_OPENAI_AD_TOKEN"):
        client.chat(ChatRequest.simple("hi", model="prod"))
    with pytest.raises(ConfigError, match="api_version applies to provider azure"):
        parse_config({"models": {"x": {"provider": "openai", "api_version": VERSION}}})


@pytest.mark.slow
def test_cli_emulator_on_the_local_model_answers_chat_and_a_forced_tool():
    port = free_port()
    cli = [sys.executable, "-m", "tokenomy.cli", "emulate", "azure-openai", "--port", str(port)]
    proc = subprocess.Popen([*cli, "--deployment", "team-chat=gpt-4o-mini"], stdout=subprocess.DEVNULL)
    try:
        wait_for_port(port, 60, proc)
        client = sdk(f"http://127.0.0.1:{port}")
        reply = client.chat.completions.create(
            model="team-chat", messages=[{"role": "user", "content": "Say hi."}], max_tokens=6
        )
        assert reply.model == "gpt-4o-mini" and reply.choices[0].message.content
        assert 0 < reply.usage.completion_tokens <= 6
        tools = [{"type": "function", "function": {"name": "get_weather", "parameters": WEATHER}}]
        forced = {"type": "function", "function": {"name": "get_weather"}}
        called = client.chat.completions.create(
            model="team-chat", messages=[{"role": "user", "content": "Oslo"}], tools=tools, tool_choice=forced
        )
        arguments = json.loads(called.choices[0].message.tool_calls[0].function.arguments)  # grammar-constrained
        assert isinstance(arguments, dict) and set(arguments) <= {"city", "days"}
    finally:
        proc.terminate()
        proc.wait(10)


def test_gateway_serves_an_azure_deployment_and_prices_it(azure_url, ledger_path, monkeypatch):
    from tokenomy.gateway.app import create_app as gateway_app

    monkeypatch.setenv("AZURE_OPENAI_API_KEY", "k")
    config = {"models": {"chat": {"provider": "azure", "model": "chat-prod", "base_url": azure_url}}}
    config["models"]["chat"]["price_as"] = "gpt-4o-mini"
    with ServerThread(gateway_app(parse_config(config), str(ledger_path)), lifespan="on") as url:
        client = openai.OpenAI(base_url=url + "/v1", api_key="unused", max_retries=0)
        reply = client.chat.completions.create(
            model="chat", messages=[{"role": "user", "content": "via gateway"}], max_tokens=5
        )
    assert reply.choices[0].message.content == "Re: via gateway"
    # Azure's content-filter annotations reach the caller as Azure sent them.
    assert (reply.model_extra or {})["prompt_filter_results"][0]["content_filter_results"]["hate"]["filtered"] is False
    (event,) = open_store(ledger_path).events()
    assert (event.provider, event.model, event.tags["deployment"]) == ("azure", "gpt-4o-mini", "chat-prod")
    assert event.cost_usd == by_hand(event.input_tokens, 0, event.output_tokens) > 0


def test_gateway_stream_carries_azures_content_filter_results(azure_url, ledger_path, monkeypatch):
    # A whole answer carried them; a stream dropped both the prompt's (a choiceless chunk of its own) and each
    # piece's (on the choice).
    from tokenomy.gateway.app import create_app as gateway_app

    monkeypatch.setenv("AZURE_OPENAI_API_KEY", "k")
    config = {
        "models": {
            "chat": {"provider": "azure", "model": "chat-prod", "base_url": azure_url, "price_as": "gpt-4o-mini"}
        }
    }
    with ServerThread(gateway_app(parse_config(config), str(ledger_path)), lifespan="on") as url:
        client = openai.OpenAI(base_url=url + "/v1", api_key="unused", max_retries=0)
        chunks = list(
            client.chat.completions.create(
                model="chat", messages=[{"role": "user", "content": "via gateway"}], max_tokens=5, stream=True
            )
        )
    prompt = [c.model_extra["prompt_filter_results"] for c in chunks if "prompt_filter_results" in c.model_extra]
    assert prompt and prompt[0][0]["content_filter_results"]["hate"] == {"filtered": False, "severity": "safe"}
    pieces = [c.choices[0] for c in chunks if c.choices and c.choices[0].delta.content]
    assert pieces and all(p.model_extra["content_filter_results"]["violence"]["filtered"] is False for p in pieces)


def test_config_check_refuses_an_unpriced_deployment():
    from tokenomy.config_checks import check_config

    config = parse_config(
        {
            "models": {
                "named": {"provider": "azure", "model": "gpt-4o-mini"},  # named after its model: priced
                "mapped": {"provider": "azure", "model": "prod-1", "price_as": "gpt-4o-mini"},
                "bare": {"provider": "azure", "model": "prod-2"},
            }
        },
        "t.yaml",
    )
    found = check_config(config, environ={"AZURE_OPENAI_ENDPOINT": "https://res.openai.azure.com"})
    assert found.warnings == []
    assert found.errors == [
        "t.yaml: models.bare: Azure deployment 'prod-2' is not in the price catalog; set price_as: to the model "
        "the deployment serves (e.g. gpt-4o-mini)"
    ]


def test_spans_name_azure_by_its_genai_provider_name(azure_url, ledger_path, monkeypatch):
    from tokenomy.telemetry.otel_pipeline import in_memory_pipeline

    exporter, _ = in_memory_pipeline()
    exporter.clear()
    monkeypatch.setenv("AZURE_OPENAI_API_KEY", "k")
    with Tokenomy(ledger_path, models=models(azure_url)) as client:
        client.chat(ChatRequest.simple("hi", model="prod", max_tokens=3))
    (span,) = [s for s in exporter.get_finished_spans() if s.name.startswith("chat ")]
    assert span.attributes["gen_ai.provider.name"] == "azure.ai.openai"  # the ledger row says "azure"
    assert open_store(ledger_path).events()[0].provider == "azure"


def test_focus_export_names_azure_openai(azure_url, ledger_path, monkeypatch):
    from tokenomy.analytics.focus import focus_rows

    monkeypatch.setenv("AZURE_OPENAI_API_KEY", "k")
    with Tokenomy(ledger_path, models=models(azure_url)) as client:
        client.chat(ChatRequest.simple("hi", model="prod", max_tokens=3))
    rows = focus_rows(open_store(ledger_path).events())
    assert {(r["ProviderName"], r["ServiceName"], r["x_Model"]) for r in rows} == {
        ("Microsoft", "Azure OpenAI", "gpt-4o-mini")
    }


@pytest.mark.parametrize(
    ("entry", "named", "fix"),
    [
        ({"endpoint_url": "https://res.openai.azure.com"}, "endpoint_url applies to provider bedrock", "base_url"),
        (
            {"base_url": "https://res.openai.azure.com/openai/"},
            "base_url: an Azure OpenAI endpoint is the resource's root",
            "without /openai",
        ),
        (
            {"base_url": "https://res.openai.azure.com/openai/deployments/chat-prod/chat/completions?api-version=x"},
            "base_url",
            "RESOURCE.openai.azure.com",
        ),
        ({"project": "acme"}, "project applies to provider vertex", "remove it"),
    ],
)
def test_a_setting_azure_never_reads_is_refused_at_load(entry, named, fix):
    """An Azure model's endpoint under endpoint_url (Bedrock's key), or its URL pasted with /openai/...: refused at
    load naming the key and the fix (they were accepted, and the calls went to AZURE_OPENAI_ENDPOINT or 404'd)."""
    with pytest.raises(ConfigError) as info:
        parse_config(
            {"models": {"prod": {"provider": "azure", "model": "chat-prod", "price_as": "gpt-4o-mini", **entry}}},
            "t.yaml",
        )
    assert "models.prod" in str(info.value) and named in str(info.value) and fix in str(info.value)
    assert parse_config(
        {
            "models": {
                "prod": {
                    "provider": "azure",
                    "model": "chat-prod",
                    "price_as": "gpt-4o-mini",
                    "base_url": "https://apim.example.com/team-a",
                }
            }
        }
    )  # a gateway's prefix


def test_unanswered_azure_calls_are_recorded_under_the_deployed_model_too(azure_url, ledger_path, monkeypatch):
    """A failed attempt and a stream the caller left (billed, at an estimate) are rows under the model the deployment
    serves with the deployment as a tag, as answered calls are (they were rows under the deployment's name, so a
    report by model split one deployment's calls and cost in two)."""
    monkeypatch.setenv("AZURE_OPENAI_API_KEY", "k")
    specs = {**models(azure_url), **{f"gone{k}": v for k, v in models(azure_url, model="gone").items()}}
    with Tokenomy(ledger_path, models=specs) as client:
        with pytest.raises(ProviderError):
            client.chat(ChatRequest.simple("hi", model="goneprod"))
        stream = client.stream(ChatRequest.simple("tell me more", model="prod", max_tokens=8))
        next(stream)
        stream.close()
    rows = sorted(open_store(ledger_path).events(), key=lambda e: e.ts)
    assert [(e.outcome, e.provider, e.model, e.tags.get("deployment")) for e in rows] == [
        ("client_error", "azure", "gpt-4o-mini", "gone"),
        ("cancelled", "azure", "gpt-4o-mini", "chat-prod"),
    ]
    assert rows[1].cost_usd == by_hand(rows[1].input_tokens, 0, rows[1].output_tokens) > 0


def test_a_stream_on_an_api_version_before_stream_options_is_answered(azure_url, ledger_path, monkeypatch, caplog):
    """api-version 2024-06-01 (the GA version before 2024-10-21) refuses `stream_options` with a 400: a stream is sent
    without it and its usage estimated, and said so (every stream on such a resource failed as a client error)."""
    monkeypatch.setenv("AZURE_OPENAI_API_KEY", "k")
    with pytest.raises(openai.BadRequestError, match="stream_options"):  # the emulator refuses it as Azure does
        list(
            openai.AzureOpenAI(azure_endpoint=azure_url, api_version="2024-06-01", api_key="k").chat.completions.create(
                model="chat-prod",
                messages=[{"role": "user", "content": "x"}],
                stream=True,
                stream_options={"include_usage": True},
            )
        )
    with Tokenomy(ledger_path, models=models(azure_url, api_version="2024-06-01")) as client:
        chunks = list(client.stream(ChatRequest.simple("hello old azure", model="prod", max_tokens=8)))
        whole = client.chat(ChatRequest.simple("hello old azure", model="prod", max_tokens=8))
    streamed = chunks[-1].response
    assert streamed is not None and streamed.text == whole.text == "Re: hello old azure"
    assert streamed.raw["usage_source"] == "estimated" and streamed.usage.output_tokens >= 1
    assert "token counts are estimated" in caplog.text
    rows = open_store(ledger_path).events()
    assert [(e.outcome, e.model) for e in rows] == [("ok", "gpt-4o-mini")] * 2 and all(e.cost_usd > 0 for e in rows)


def test_config_check_warns_of_an_azure_model_with_no_endpoint():
    """No base_url and no AZURE_OPENAI_ENDPOINT: `tokenomy serve` says at start that every call will fail, naming the
    key (it started, and each call failed with a ConfigError)."""
    from tokenomy.config_checks import check_config

    config = parse_config({"models": {"prod": {"provider": "azure", "model": "gpt-4o-mini"}}}, "t.yaml")
    assert check_config(config, environ={}).warnings == [
        "t.yaml: models.prod.base_url: not set, nor is $AZURE_OPENAI_ENDPOINT; every call to prod will fail until "
        "you set base_url: to the resource endpoint https://RESOURCE.openai.azure.com"
    ]
    assert check_config(config, environ={"AZURE_OPENAI_ENDPOINT": "https://res.openai.azure.com"}).warnings == []


NEGATIVE = {"prompt_tokens": -5, "completion_tokens": 3, "total_tokens": -2}


@pytest.mark.parametrize(
    ("kind", "stream", "usage", "said"),
    [
        ("garbled", False, None, "no JSON"),
        (
            "html",
            False,
            None,
            "no JSON",
        ),  # the SDK hands back a body not labelled JSON as text: was a 500 AttributeError
        ("misshapen", False, None, "unreadable completion"),
        (None, False, NEGATIVE, "token counts"),
        (None, True, NEGATIVE, "token counts"),
        ("cut", True, None, "ended before the answer was complete"),
        ("empty", True, None, "ended before the answer was complete"),
        ("done-only", True, None, "ended before the answer was complete"),
        ("garbled-line", True, None, "no JSON"),
    ],
)
def test_a_bad_azure_answer_is_azures_fault_at_the_gateway_recorded_at_its_estimate(
    kind, stream, usage, said, ledger_path, monkeypatch
):
    """Azure's chat and stream go through the OpenAI provider and its wire module (the SDK's AzureOpenAI client, not
    the gateway's pooled passthrough): a 200 answer that is no JSON or of the wrong shape, counts no answer can have,
    a stream that ends early are Azure's fault, a 502 (or the stream's error event) recorded at its estimate."""
    from helpers.scripted_openai import ScriptedOpenAI
    from tokenomy.gateway.app import create_app as gateway_app

    monkeypatch.setenv("AZURE_OPENAI_API_KEY", "k")
    upstream = ScriptedOpenAI([(200, {}, kind)] if kind else [])
    upstream.usage = usage or upstream.usage
    config = {
        "models": {
            "chat": {
                "provider": "azure",
                "model": "chat-prod",
                "base_url": upstream.url[:-3],
                "price_as": "gpt-4o-mini",
            }
        },
        "routes": {"chat": {"model": "chat", "retry": {"max_attempts": 1}}},
    }
    try:
        with ServerThread(gateway_app(parse_config(config), str(ledger_path)), lifespan="on") as url:
            client = openai.OpenAI(base_url=url + "/v1", api_key="unused", max_retries=0)
            with pytest.raises(openai.APIError) as failed:
                reply = client.chat.completions.create(
                    model="chat", messages=[{"role": "user", "content": "x" * 400}], stream=stream
                )
                list(reply) if stream else None
    finally:
        upstream.close()
    message = failed.value.message
    assert said in message and "internal error" not in message and (stream or failed.value.status_code == 502)
    assert upstream.calls == 1
    [row] = open_store(ledger_path).events()
    assert (row.provider, row.outcome) == ("azure", "server_error") and row.input_tokens >= 100
    assert row.cost_usd == by_hand(row.input_tokens, 0, row.output_tokens) > 0


def test_an_azure_answer_without_usage_is_recorded_at_its_estimate(ledger_path, monkeypatch):
    from helpers.scripted_openai import ScriptedOpenAI
    from tokenomy.gateway.app import create_app as gateway_app

    monkeypatch.setenv("AZURE_OPENAI_API_KEY", "k")
    upstream = ScriptedOpenAI([])
    upstream.usage = None
    config = {
        "models": {
            "chat": {
                "provider": "azure",
                "model": "chat-prod",
                "base_url": upstream.url[:-3],
                "price_as": "gpt-4o-mini",
            }
        }
    }
    try:
        with ServerThread(gateway_app(parse_config(config), str(ledger_path)), lifespan="on") as url:
            client = openai.OpenAI(base_url=url + "/v1", api_key="unused", max_retries=0)
            for stream in (False, True):
                reply = client.chat.completions.create(
                    model="chat", messages=[{"role": "user", "content": "x" * 400}], stream=stream
                )
                assert (
                    "".join(c.choices[0].delta.content or "" for c in reply if c.choices)
                    if stream
                    else reply.choices[0].message.content
                ) == "ok"
    finally:
        upstream.close()
    rows = open_store(ledger_path).events()
    assert [(r.provider, r.outcome) for r in rows] == [("azure", "ok")] * 2
    assert all(r.input_tokens >= 100 and r.cost_usd > 0 for r in rows)  # estimated, not 0 tokens at $0


@pytest.mark.parametrize("stream", [False, True])
def test_azures_content_filter_400_reaches_the_caller_with_what_it_filtered(stream, ledger_path, monkeypatch):
    """Azure refuses a prompt its content filter caught with a 400 whose `innererror` says which filter caught it
    (jailbreak, hate, ...): the gateway passed on the code alone, so an application could not tell the user why."""
    from helpers.scripted_openai import ScriptedOpenAI
    from tokenomy.gateway.app import create_app as gateway_app

    monkeypatch.setenv("AZURE_OPENAI_API_KEY", "k")
    inner = {
        "code": "ResponsibleAIPolicyViolation",
        "content_filter_result": {
            "hate": {"filtered": False, "severity": "safe"},
            "jailbreak": {"filtered": True, "detected": True},
        },
    }
    upstream = ScriptedOpenAI([(400, {}, "content_filter")])
    upstream.error_fields = {"param": "prompt", "status": 400, "innererror": inner}
    config = {
        "models": {
            "chat": {
                "provider": "azure",
                "model": "chat-prod",
                "base_url": upstream.url[:-3],
                "price_as": "gpt-4o-mini",
            }
        }
    }
    try:
        with ServerThread(gateway_app(parse_config(config), str(ledger_path)), lifespan="on") as url:
            client = openai.OpenAI(base_url=url + "/v1", api_key="unused", max_retries=0)
            with pytest.raises(openai.BadRequestError) as refused:
                client.chat.completions.create(model="chat", messages=[{"role": "user", "content": "x"}], stream=stream)
    finally:
        upstream.close()
    assert refused.value.code == "content_filter"
    assert refused.value.body["innererror"] == inner
    [row] = open_store(ledger_path).events()
    assert (row.model, row.outcome) == ("gpt-4o-mini", "client_error")
