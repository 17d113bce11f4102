"""Token counting through the gateway as applications do it: the `anthropic` SDK's `messages.count_tokens` against a
real gateway on 127.0.0.1, in front of the Anthropic and Bedrock emulators and the local model. Each count must equal
the prompt tokens (fresh, cache-read and cache-written) a real `messages.create` of the same prompt reports."""

from __future__ import annotations

import base64
import io
from decimal import Decimal

import anthropic
import boto3
import httpx
import openai
import pytest
from botocore.config import Config
from google import genai
from google.genai import errors, types

from helpers import requests_in_metrics, stand_in_aws_keys
from helpers.anthropic_samples import COMPANIONS, GATEWAY_FIELDS, HEADER_FIELDS, SAMPLES, count_fields
from tokenomy.config import parse_config
from tokenomy.emulate.anthropic_api import create_app as create_anthropic
from tokenomy.emulate.bedrock_runtime import create_app as create_bedrock
from tokenomy.emulate.gemini_api import create_app as create_gemini
from tokenomy.emulate.server import ServerThread
from tokenomy.gateway.app import create_app
from tokenomy.gateway.keys import KeyStore
from tokenomy.ledger.store import open_store

SONNET = "claude-sonnet-4-5-20250929"
BEDROCK_SONNET = "anthropic.claude-3-7-sonnet-20250219-v1:0"
GEMINI = "gemini-2.5-flash"
ROUTER = "arn:aws:bedrock:us-east-1:123456789012:default-prompt-router/anthropic.claude:1"
pytestmark = pytest.mark.filterwarnings("ignore:The model .* is deprecated:DeprecationWarning")
TOOLS = [
    {
        "name": "weather",
        "description": "The weather in a city.",
        "input_schema": {"type": "object", "properties": {"city": {"type": "string"}}, "required": ["city"]},
    }
]
SYSTEM = "You answer in one short sentence."
ASK = [
    {"role": "user", "content": "What is the capital of France?"},
    {"role": "assistant", "content": "Paris."},
    {"role": "user", "content": "And of Italy?"},
]


def png() -> str:
    from PIL import Image

    out = io.BytesIO()
    Image.new("RGB", (4, 4), "red").save(out, format="PNG")
    return base64.b64encode(out.getvalue()).decode()


@pytest.fixture(scope="module")
def ledger(tmp_path_factory):
    return str(tmp_path_factory.mktemp("count") / "ledger.duckdb")


@pytest.fixture(scope="module")
def gateway(ledger):
    with pytest.MonkeyPatch.context() as env:
        stand_in_aws_keys(env)
        env.setenv("GPT_KEY", "unused")
        for name in ("GEMINI_API_KEY", "GOOGLE_API_KEY"):
            env.delenv(name, raising=False)
        with (
            ServerThread(create_anthropic()) as claude,
            ServerThread(create_bedrock()) as bedrock,
            ServerThread(create_gemini()) as gemini,
        ):
            config = parse_config(
                {
                    "models": {
                        "claude": {"provider": "anthropic", "model": SONNET, "base_url": claude},
                        "flash": {"provider": "gemini", "model": GEMINI, "base_url": gemini},
                        "sonnet": {
                            "provider": "bedrock",
                            "model": BEDROCK_SONNET,
                            "region": "us-east-1",
                            "endpoint_url": bedrock,
                        },
                        # Bedrock's prompt router picks a model only when it runs, so its CountTokens refuses.
                        "picked": {
                            "provider": "bedrock",
                            "model": ROUTER,
                            "region": "us-east-1",
                            "endpoint_url": bedrock,
                            "price_as": BEDROCK_SONNET,
                        },
                        # An OpenAI-format model; never called (port 9 has no server): counting is refused before.
                        "gpt": {
                            "provider": "openai",
                            "model": "gpt",
                            "base_url": "http://127.0.0.1:9/v1",
                            "api_key_env": "GPT_KEY",
                            "price_as": "gpt-4o-mini",
                        },
                    },
                    # Counted with their first model, the Bedrock one; the fallback or the routed tier, which cannot
                    # count, is never asked.
                    "tiers": {"cheap": ["sonnet"], "strong": ["gpt"]},
                    "routes": {"chain": {"model": "sonnet", "fallback": ["gpt"]}, "routed": {"policy": "by-words"}},
                    "routing": {
                        "policies": {
                            "by-words": {
                                "type": "rules",
                                "tiers": ["cheap", "strong"],
                                "rules": [{"name": "hard", "tier": "strong", "keywords": ["prove"]}],
                            }
                        }
                    },
                }
            )
            with ServerThread(create_app(config, ledger), lifespan="on") as url:
                # Loads the local model and starts the ledger's writer once, so no test's time is that set-up's.
                anthropic.Anthropic(base_url=url, api_key="unused").messages.create(
                    model="local", max_tokens=1, messages=ASK, system=SYSTEM, tools=TOOLS
                )
                yield url


@pytest.fixture
def sdk(gateway):
    return anthropic.Anthropic(base_url=gateway, api_key="unused", max_retries=0)


def prompt_tokens(usage) -> int:
    return usage.input_tokens + (usage.cache_read_input_tokens or 0) + (usage.cache_creation_input_tokens or 0)


@pytest.mark.parametrize("model", ["claude", "sonnet", "local", "chain", "flash"])
def test_a_count_equals_the_prompt_tokens_messages_create_reports(sdk, model) -> None:
    for ask in (
        {"messages": ASK},
        {"messages": ASK, "system": SYSTEM, "tools": TOOLS, "tool_choice": {"type": "auto"}},
    ):
        counted = sdk.messages.count_tokens(model=model, **ask).input_tokens
        created = sdk.messages.create(model=model, max_tokens=2, **ask)
        assert counted == prompt_tokens(created.usage) > 0
    bare = sdk.messages.count_tokens(model=model, messages=ASK).input_tokens
    assert counted > bare  # the system prompt and the tool are counted too


def test_a_routed_route_counts_with_its_first_tiers_first_model(sdk) -> None:
    ask = [{"role": "user", "content": "Please prove that 2 + 2 = 4."}]  # the rules send it to the strong tier
    counted = sdk.messages.count_tokens(model="routed", messages=ask).input_tokens
    assert counted == sdk.messages.count_tokens(model="sonnet", messages=ask).input_tokens > 0


@pytest.mark.parametrize("model", ["claude", "sonnet"])
def test_an_image_is_counted_as_the_provider_bills_it(sdk, model) -> None:
    ask = [
        {
            "role": "user",
            "content": [
                {"type": "image", "source": {"type": "base64", "media_type": "image/png", "data": png()}},
                {"type": "text", "text": "What colour is it?"},
            ],
        }
    ]
    counted = sdk.messages.count_tokens(model=model, messages=ask).input_tokens
    assert counted == prompt_tokens(sdk.messages.create(model=model, max_tokens=2, messages=ask).usage)
    words = sdk.messages.count_tokens(model=model, messages=[{"role": "user", "content": "What colour is it?"}])
    assert counted > words.input_tokens


def test_a_count_writes_no_ledger_row(tmp_path) -> None:
    ledger = str(tmp_path / "ledger.duckdb")
    with ServerThread(create_app(parse_config({}), ledger), lifespan="on") as url:  # flushes its ledger on exit
        client = anthropic.Anthropic(base_url=url, api_key="unused", max_retries=0)
        client.messages.create(model="local", max_tokens=2, messages=ASK)
        for _ in range(3):
            client.messages.count_tokens(model="local", messages=ASK)
    assert open_store(ledger).count() == 1  # the call's row, and none for the counts


def test_an_unknown_route_is_a_404_and_a_malformed_body_a_400_naming_the_field(sdk, gateway) -> None:
    with pytest.raises(anthropic.NotFoundError, match="`nope` does not exist") as missing:
        sdk.messages.count_tokens(model="nope", messages=ASK)
    assert missing.value.body["error"]["type"] == "not_found_error"
    for body, field in (
        ({"model": "claude", "messages": "hi"}, "messages"),
        ({"model": "claude", "messages": ASK, "max_tokens": 5}, "max_tokens"),
        ({"model": "claude", "messages": [{"role": "robot", "content": "x"}]}, "messages.0.role"),
        ({"messages": ASK}, "model"),
    ):
        answer = httpx.post(gateway + "/v1/messages/count_tokens", json=body)
        assert answer.status_code == 400, body
        assert answer.json()["error"]["type"] == "invalid_request_error"
        assert answer.json()["error"]["message"].startswith(field), answer.json()
    broken = httpx.post(
        gateway + "/v1/messages/count_tokens", content=b"{nope", headers={"content-type": "application/json"}
    )
    assert broken.status_code == 400 and broken.json()["type"] == "error"


@pytest.mark.parametrize(
    "fields", [{"speed": "standard"}, {"speed": "fast"}, {"speed": None}, {"cache_control": None, "system": SYSTEM}]
)
def test_a_field_the_sdks_count_tokens_takes_is_counted_not_refused(sdk, fields) -> None:
    # `speed` (and any field sent as null, the SDK's unset) was refused: "Extra inputs are not permitted"; then
    # "fast" as a call billed at a price the catalog lacks, though a count is billed nothing.
    same = {key: value for key, value in fields.items() if key == "system"}
    expected = sdk.messages.count_tokens(model="claude", messages=ASK, **same).input_tokens
    assert sdk.messages.count_tokens(model="claude", messages=ASK, **fields).input_tokens == expected > 0


@pytest.mark.parametrize("field", count_fields())
def test_every_field_of_the_sdks_count_tokens_is_counted_or_refused_by_name(sdk, field) -> None:
    """Each field of the installed anthropic SDK's MessageCountTokensParams is counted (what the model reads makes
    the count grow) or refused naming it; a field a newer SDK adds fails here until it gets a sample."""
    if field in GATEWAY_FIELDS:
        return
    assert field in SAMPLES, f"Anthropic's count_tokens has a new field {field!r}: add a sample value to SAMPLES"
    asked = {field: SAMPLES[field], **COMPANIONS.get(field, {})}
    if field in HEADER_FIELDS:
        with pytest.raises(anthropic.BadRequestError, match=field):
            sdk.messages.count_tokens(model="claude", messages=ASK, **asked)
        return
    counted = sdk.messages.count_tokens(model="claude", messages=ASK, **asked).input_tokens
    bare = sdk.messages.count_tokens(model="claude", messages=ASK, **COMPANIONS.get(field, {})).input_tokens
    assert counted > bare if field in ("system", "tools") else counted >= bare > 0


def test_an_openai_format_route_cannot_count_and_says_so(sdk) -> None:
    with pytest.raises(anthropic.BadRequestError) as refused:
        sdk.messages.count_tokens(model="gpt", messages=ASK)
    message = refused.value.body["error"]["message"]
    assert "provider `openai`" in message and "counting tokens is not available" in message, message


def test_a_model_its_provider_cannot_count_is_the_providers_400(sdk) -> None:
    with pytest.raises(anthropic.BadRequestError) as refused:
        sdk.messages.count_tokens(model="picked", messages=ASK)
    assert "ValidationException: The provided model doesn't support counting tokens" in str(refused.value)


def test_a_field_the_counting_model_cannot_take_is_refused_by_the_callers_name(sdk) -> None:
    ask = [
        {
            "role": "user",
            "content": [{"type": "image", "source": {"type": "base64", "media_type": "image/png", "data": png()}}],
        }
    ]
    with pytest.raises(anthropic.BadRequestError, match=r"messages\.0\.content\.0") as refused:
        sdk.messages.count_tokens(model="local", messages=ask)
    assert "model `local`" in refused.value.body["error"]["message"]


def test_a_count_takes_the_keys_rate_limit_but_no_budget(tmp_path) -> None:
    ledger = str(tmp_path / "ledger.duckdb")
    secret, _ = KeyStore(open_store(ledger)).create(rpm=3, budget_usd=Decimal("0.000001"))
    with ServerThread(create_anthropic()) as claude:
        config = parse_config(
            {"auth": True, "models": {"claude": {"provider": "anthropic", "model": SONNET, "base_url": claude}}}
        )
        with ServerThread(create_app(config, ledger), lifespan="on") as url:
            client = anthropic.Anthropic(base_url=url, api_key=secret, max_retries=0)
            with pytest.raises(anthropic.RateLimitError, match="Budget exhausted"):  # the call's reservation is
                client.messages.create(model="claude", max_tokens=2, messages=ASK)
            # ... and a count is free: it reserves nothing, but each is a request under the key's rate limit.
            counts = [client.messages.count_tokens(model="claude", messages=ASK).input_tokens for _ in range(2)]
            assert counts[0] == counts[1] > 0
            with pytest.raises(anthropic.RateLimitError, match="Rate limit of 3 requests per minute"):
                client.messages.count_tokens(model="claude", messages=ASK)
            stranger = anthropic.Anthropic(base_url=url, api_key="tk-wrong", max_retries=0)
            with pytest.raises(anthropic.AuthenticationError):
                stranger.messages.count_tokens(model="claude", messages=ASK)


@pytest.mark.parametrize("model", ["flash", "sonnet", "local"])
def test_google_genai_counts_what_generate_content_reports(gateway, model) -> None:
    client = genai.Client(api_key="unused", http_options={"base_url": gateway})
    turns = [
        types.Content(role="user", parts=[types.Part(text="What is the capital of France?")]),
        types.Content(role="model", parts=[types.Part(text="Paris.")]),
        types.Content(role="user", parts=[types.Part(text="And of Italy?")]),
    ]
    counted = client.models.count_tokens(model=model, contents=turns).total_tokens
    usage = client.models.generate_content(
        model=model, contents=turns, config=types.GenerateContentConfig(max_output_tokens=2)
    ).usage_metadata
    assert counted == usage.prompt_token_count > 0
    # A system instruction and tools reach a count in a whole generateContentRequest (REST callers; the SDK sends
    # contents alone to the Gemini API).
    whole = {
        "generateContentRequest": {
            "contents": [{"role": "user", "parts": [{"text": "And of Italy?"}]}],
            "systemInstruction": {"parts": [{"text": SYSTEM}]},
            "tools": [
                {
                    "functionDeclarations": [
                        {"name": "weather", "description": "The weather in a city.", "parameters": {"type": "object"}}
                    ]
                }
            ],
        }
    }
    answer = httpx.post(f"{gateway}/v1beta/models/{model}:countTokens", json=whole)
    bare = httpx.post(
        f"{gateway}/v1beta/models/{model}:countTokens", json={"contents": whole["generateContentRequest"]["contents"]}
    )
    assert answer.status_code == bare.status_code == 200
    assert answer.json()["totalTokens"] > bare.json()["totalTokens"] > 0


def test_google_genai_errors_for_a_count_are_googles(gateway) -> None:
    client = genai.Client(api_key="unused", http_options={"base_url": gateway})
    with pytest.raises(errors.ClientError) as missing:
        client.models.count_tokens(model="nope", contents="hi")
    assert missing.value.code == 404 and "`nope` does not exist" in missing.value.message
    with pytest.raises(errors.ClientError) as refused:
        client.models.count_tokens(model="gpt", contents="hi")
    assert refused.value.code == 400 and "provider `openai`" in refused.value.message
    malformed = httpx.post(f"{gateway}/v1beta/models/flash:countTokens", json={"contents": "hi"})
    assert malformed.status_code == 400 and malformed.json()["error"]["message"].startswith("contents")


@pytest.mark.parametrize("model", ["claude", "sonnet", "local", "flash"])
def test_openais_input_tokens_count_what_responses_create_reports(gateway, model) -> None:
    client = openai.OpenAI(base_url=gateway + "/v1", api_key="unused", max_retries=0)
    tool = {
        "type": "function",
        "name": "weather",
        "description": "The weather in a city.",
        "parameters": {"type": "object", "properties": {"city": {"type": "string"}}},
    }
    for ask in (
        {"input": "What is the capital of Italy?"},
        {"input": "What is the capital of Italy?", "instructions": SYSTEM, "tools": [tool]},
    ):
        counted = client.responses.input_tokens.count(model=model, **ask)
        assert counted.object == "response.input_tokens"
        assert (
            counted.input_tokens == client.responses.create(model=model, max_output_tokens=16, **ask).usage.input_tokens
        )
    bare = client.responses.input_tokens.count(model=model, input="What is the capital of Italy?").input_tokens
    assert counted.input_tokens > bare


def test_openais_input_tokens_count_a_request_with_a_thinking_budget_or_a_null_field(gateway) -> None:
    """`thinking` (the gateway's reasoning budget, which /v1/responses takes and its refusal of Claude's effort names)
    and a null (the SDK's unset, which /v1/responses reads as nothing sent) were refused as fields the count lacks, so
    a request /v1/responses answers could not be counted first."""
    client = openai.OpenAI(base_url=gateway + "/v1", api_key="unused", max_retries=0)
    ask = {
        "input": "What is the capital of Italy?",
        "instructions": SYSTEM,
        "extra_body": {"thinking": {"type": "enabled", "budget_tokens": 1024}},
    }
    counted = client.responses.input_tokens.count(model="claude", **ask).input_tokens
    assert counted == client.responses.create(model="claude", max_output_tokens=1100, **ask).usage.input_tokens > 0
    unset = client.responses.input_tokens.count(
        model="claude",
        input=ask["input"],
        instructions=SYSTEM,
        personality=None,
        extra_body={"max_output_tokens": None},
    )
    assert unset.input_tokens == counted


def test_openais_input_tokens_errors_are_openais(gateway) -> None:
    client = openai.OpenAI(base_url=gateway + "/v1", api_key="unused", max_retries=0)
    with pytest.raises(openai.NotFoundError) as missing:
        client.responses.input_tokens.count(model="nope", input="hi")
    assert missing.value.body["code"] == "model_not_found"
    with pytest.raises(openai.BadRequestError) as refused:
        client.responses.input_tokens.count(model="gpt", input="hi")
    assert refused.value.body["code"] == "counting_unavailable" and "provider `openai`" in refused.value.body["message"]
    with pytest.raises(openai.BadRequestError) as malformed:
        client.responses.input_tokens.count(model="claude", input=[{"role": "robot", "content": "hi"}])
    assert malformed.value.body["param"].startswith("input[0]"), malformed.value.body
    with pytest.raises(openai.BadRequestError) as capped:
        client.responses.input_tokens.count(model="claude", input="hi", extra_body={"max_output_tokens": 5})
    assert capped.value.body["param"] == "max_output_tokens"


def test_a_top_level_cache_control_reaches_an_anthropic_count_and_is_refused_by_name_for_others(sdk) -> None:
    # The SDK's count_tokens takes it as messages.create does, so an application counts with the call's own params.
    cached = sdk.messages.count_tokens(model="claude", messages=ASK, cache_control={"type": "ephemeral"})
    assert cached.input_tokens == sdk.messages.count_tokens(model="claude", messages=ASK).input_tokens
    with pytest.raises(anthropic.BadRequestError, match="cache_control: the gateway carries this field to Anthropic"):
        sdk.messages.count_tokens(model="sonnet", messages=ASK, cache_control={"type": "ephemeral"})


@pytest.mark.parametrize("field", ["previous_response_id", "conversation"])
def test_openais_input_tokens_refuses_a_stored_conversation_saying_what_to_send(gateway, field) -> None:
    # Fields of OpenAI's input_tokens, which the gateway cannot serve as it keeps no responses: the fix is to send
    # the conversation itself, not to remove a field the endpoint does not have.
    client = openai.OpenAI(base_url=gateway + "/v1", api_key="unused", max_retries=0)
    with pytest.raises(openai.BadRequestError) as stored:
        client.responses.input_tokens.count(model="claude", input="hi", **{field: "resp_1"})
    assert stored.value.body["param"] == field and "send the whole conversation in `input`" in stored.value.message


def test_a_route_that_cannot_count_says_so_before_naming_a_field_its_model_would_not_take(sdk, gateway) -> None:
    # Removing the field would only lead to the next 400: the route counts with a model that cannot count at all.
    with pytest.raises(anthropic.BadRequestError, match="counting tokens is not available for provider `openai`"):
        sdk.messages.count_tokens(model="gpt", messages=ASK, output_config={"effort": "low"})
    whole = {"contents": [{"role": "user", "parts": [{"text": "hi"}]}], "safetySettings": []}
    answer = httpx.post(f"{gateway}/v1beta/models/gpt:countTokens", json=whole)
    assert answer.status_code == 400 and "provider `openai`" in answer.json()["error"]["message"]


def test_a_count_logs_no_missing_output_cap_and_leaves_that_warning_to_the_call_that_has_none(
    gateway, sdk, caplog, monkeypatch
) -> None:
    """A count has no max_tokens by nature: it logged "request has no output cap; a runaway answer is billed in full",
    which it is not, and as that warning is logged once per model, an uncapped chat completion to the same model then
    went unwarned."""
    from tokenomy.caching import tokens

    monkeypatch.setattr(tokens, "_warned", set())  # once per model in this process: as if the gateway had just started
    with caplog.at_level("WARNING", logger="tokenomy.policy"):
        assert sdk.messages.count_tokens(model="claude", messages=ASK).input_tokens > 0
        counted = [r.getMessage() for r in caplog.records if "no output cap" in r.getMessage()]
        chat = openai.OpenAI(base_url=gateway + "/v1", api_key="unused", max_retries=0)
        assert chat.chat.completions.create(model="claude", messages=ASK).choices  # no max_tokens
        called = [r.getMessage() for r in caplog.records if "no output cap" in r.getMessage()]
    assert counted == []
    assert len(called) == 1 and "(model claude;" in called[0]


def test_each_count_endpoints_answers_are_counted_in_metrics_under_the_route(gateway) -> None:
    # The four count-tokens endpoints counted none of their own answers in /metrics, unlike every other API POST.
    # Each is counted now: under the route it counts for, as that route's calls are; under "unknown" before one.
    before = requests_in_metrics(gateway)
    claude = anthropic.Anthropic(base_url=gateway, api_key="unused", max_retries=0)
    google = genai.Client(api_key="unused", http_options={"base_url": gateway})
    openai_sdk = openai.OpenAI(base_url=gateway + "/v1", api_key="unused", max_retries=0)
    bedrock = boto3.client(
        "bedrock-runtime",
        endpoint_url=gateway,
        region_name="us-east-1",
        config=Config(retries={"max_attempts": 1, "mode": "standard"}),
    )
    assert claude.messages.count_tokens(model="claude", messages=ASK).input_tokens > 0
    assert google.models.count_tokens(model="flash", contents="hi").total_tokens > 0
    assert openai_sdk.responses.input_tokens.count(model="claude", input="hi").input_tokens > 0
    converse = {"messages": [{"role": "user", "content": [{"text": "hi"}]}]}
    assert bedrock.count_tokens(modelId="sonnet", input={"converse": converse})["inputTokens"] > 0
    with pytest.raises(anthropic.NotFoundError):
        claude.messages.count_tokens(model="nope", messages=ASK)
    assert httpx.post(gateway + "/v1beta/models/flash:countTokens", json={"contents": 5}).status_code == 400
    with pytest.raises(openai.BadRequestError):
        openai_sdk.responses.input_tokens.count(model="claude", input="hi", extra_body={"max_output_tokens": 5})
    with pytest.raises(bedrock.exceptions.ResourceNotFoundException):
        bedrock.count_tokens(modelId="nope", input={"converse": converse})
    after = requests_in_metrics(gateway)
    added = {series: after[series] - before.get(series, 0.0) for series in after if after[series] != before.get(series)}
    assert added == {
        ("claude", "200"): 2,  # Anthropic's count_tokens, OpenAI's input_tokens
        ("flash", "200"): 1,  # Gemini's countTokens
        ("sonnet", "200"): 1,  # Bedrock's CountTokens
        ("flash", "400"): 1,  # contents not a list, for route "flash"
        ("claude", "400"): 1,  # a field input_tokens does not take, for route "claude"
        ("unknown", "404"): 2,  # no such route (Anthropic's, Bedrock's)
    }
