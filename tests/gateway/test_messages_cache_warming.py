"""`max_tokens: 0` on `/v1/messages`: Anthropic's cache warming ("Set to 0 to populate the prompt cache without
generating a response"), which the gateway refused as out of range. It now reaches Claude as 0 (not the default cap),
the answer has no content and stop_reason "max_tokens", the ledger row records the cache write at its price and no
output, and a budget reserves the prompt only. A model whose API has no zero-token call (OpenAI-format, Bedrock
Converse, Gemini, local) refuses it by name before anything is sent. The official SDK drives a real gateway on
127.0.0.1 in front of the Anthropic emulator (with a prompt cache), a recording OpenAI-format upstream and the
Bedrock emulator."""

from __future__ import annotations

import json
from decimal import Decimal

import anthropic
import httpx
import pytest

from helpers import stand_in_aws_keys
from helpers.ledger_rows import written_rows
from helpers.recording_openai import RecordingOpenAI
from tokenomy.config import parse_config
from tokenomy.emulate.anthropic_api import create_app as create_anthropic
from tokenomy.emulate.bedrock_runtime import create_app as create_bedrock
from tokenomy.emulate.instant_engine import InstantEngine
from tokenomy.emulate.prompt_cache import PromptCache
from tokenomy.emulate.server import ServerThread
from tokenomy.gateway.app import create_app
from tokenomy.ledger.store import open_store
from tokenomy.pricing.catalog import default_catalog

SONNET = "claude-sonnet-4-5-20250929"
# Over Sonnet's 1024-token minimum for a cache point (the emulator's engine counts ~4 characters a token).
SYSTEM = [
    {"type": "text", "text": "You answer questions about the handbook. " * 160, "cache_control": {"type": "ephemeral"}}
]
ASK = [{"role": "user", "content": "Ready?"}]
pytestmark = pytest.mark.filterwarnings("ignore:The model .* is deprecated:DeprecationWarning")


def recording(app, bodies: list):
    """`app` with every /v1/messages request body it receives appended to `bodies`."""

    async def wrapped(scope, receive, send):
        if scope["type"] != "http" or scope["path"] != "/v1/messages":
            return await app(scope, receive, send)
        chunks: list[bytes] = []

        async def listen():
            message = await receive()
            chunks.append(message.get("body", b""))
            if not message.get("more_body"):
                bodies.append(json.loads(b"".join(chunks) or b"{}"))
            return message

        await app(scope, listen, send)

    return wrapped


@pytest.fixture(scope="module")
def served(tmp_path_factory):
    """(gateway URL, ledger path, bodies Claude received, the OpenAI-format upstream, Claude's URL)."""
    bodies: list = []
    claude_app = recording(create_anthropic(engine=InstantEngine(cache=PromptCache())), bodies)
    with pytest.MonkeyPatch.context() as env:
        env.setenv("ANTHROPIC_API_KEY", "unused")
        stand_in_aws_keys(env)
        with (
            ServerThread(claude_app) as claude,
            RecordingOpenAI() as gpt,
            ServerThread(create_bedrock(engine=InstantEngine())) as bedrock,
        ):
            config = parse_config(
                {
                    "models": {
                        "claude": {"provider": "anthropic", "model": SONNET, "base_url": claude},
                        "claude-down": {"provider": "anthropic", "model": SONNET, "base_url": "http://127.0.0.1:9"},
                        "gpt": {"provider": "openai", "model": "up", "base_url": gpt.url, "price_as": "gpt-4o-mini"},
                        "sonnet-bedrock": {
                            "provider": "bedrock",
                            "region": "us-east-1",
                            "endpoint_url": bedrock,
                            "model": "anthropic.claude-sonnet-4-5-20250929-v1:0",
                        },
                        "gemini": {"provider": "gemini", "model": "gemini-2.5-flash", "base_url": "http://127.0.0.1:9"},
                        "local": {"provider": "local", "model": "smollm2-135m", "price_as": "gpt-4o-mini"},
                    },
                    "routes": {
                        "gpt-then-claude": {"model": "gpt", "fallback": ["claude"]},
                        "gpt-then-bedrock": {"model": "gpt", "fallback": ["sonnet-bedrock"]},
                        "claude-down-then-bedrock": {
                            "model": "claude-down",
                            "fallback": ["sonnet-bedrock"],
                            "retry": {"max_attempts": 1},
                        },
                    },
                }
            )
            ledger = tmp_path_factory.mktemp("warm") / "ledger.duckdb"
            with ServerThread(create_app(config, str(ledger)), lifespan="on") as url:
                yield url, ledger, bodies, gpt, claude


def test_max_tokens_0_warms_claudes_cache_and_is_billed_as_the_cache_write(served) -> None:
    url, ledger, bodies, _, _ = served
    sdk = anthropic.Anthropic(base_url=url, api_key="unused", max_retries=0)
    before = len(written_rows(ledger, 0))
    warm = sdk.messages.create(model="claude", max_tokens=0, system=SYSTEM, messages=ASK)
    assert bodies[-1]["max_tokens"] == 0  # Claude got 0, not the default cap
    assert warm.content == [] and warm.stop_reason == "max_tokens"
    assert warm.usage.output_tokens == 0 and warm.usage.cache_creation_input_tokens > 1024
    written = warm.usage.cache_creation_input_tokens
    # The next call reads what the warming wrote.
    read = sdk.messages.create(model="claude", max_tokens=8, system=SYSTEM, messages=ASK)
    assert read.usage.cache_read_input_tokens == written and read.content
    row = written_rows(ledger, before + 2)[before]
    entry = default_catalog().lookup(SONNET, None)
    assert (row.output_tokens, row.cache_write_tokens) == (0, written)
    assert row.cache_write_cost_usd == Decimal(written) * entry.cache_write / 10**6 > 0
    assert row.output_cost_usd == 0
    assert row.cost_usd == row.input_cost_usd + row.cache_write_cost_usd


def test_max_tokens_0_reaches_claude_behind_a_fallback_and_is_refused_by_name_where_no_model_takes_it(served):
    url, _, bodies, gpt, _ = served
    sdk = anthropic.Anthropic(base_url=url, api_key="unused", max_retries=0)
    sent = len(gpt.bodies)
    # The OpenAI-format primary has no zero-token call: nothing is sent to it, and Claude, the fallback, warms.
    warm = sdk.messages.create(model="gpt-then-claude", max_tokens=0, system=SYSTEM, messages=ASK)
    assert warm.content == [] and warm.stop_reason == "max_tokens" and bodies[-1]["max_tokens"] == 0
    # A route with no Anthropic model: a 400 naming max_tokens and the route's model (Bedrock's Converse takes
    # maxTokens of 1 or more).
    for route, model in [
        ("gpt", "gpt"),
        ("sonnet-bedrock", "sonnet-bedrock"),
        ("gemini", "gemini"),
        ("local", "local"),
        ("gpt-then-bedrock", "gpt"),
    ]:
        claude_calls = len(bodies)
        with pytest.raises(anthropic.BadRequestError) as refused:
            sdk.messages.create(model=route, max_tokens=0, messages=ASK)
        message = refused.value.body["error"]["message"]
        assert message.startswith(
            f"model `{model}` cannot take `max_tokens` 0 (a call that only writes the prompt cache"
        ), message
        assert len(bodies) == claude_calls
    assert len(gpt.bodies) == sent  # refused before any call
    # Chat completions has no zero-token call (OpenAI's API refuses 0): refused by name, as it was, for Claude too.
    for field in ("max_tokens", "max_completion_tokens"):
        answer = httpx.post(url + "/v1/chat/completions", json={"model": "claude", "messages": ASK, field: 0})
        assert answer.status_code == 400 and answer.json()["error"]["param"] == field, answer.text
    # Claude unreachable: its Bedrock fallback, which has no zero-token call, refuses it by name and is sent nothing.
    with pytest.raises(anthropic.BadRequestError) as refused:
        sdk.messages.create(model="claude-down-then-bedrock", max_tokens=0, messages=ASK)
    message = refused.value.body["error"]["message"]
    assert message.startswith(
        "model `anthropic.claude-sonnet-4-5-20250929-v1:0` (aws.bedrock) cannot take `max_tokens` 0"
    ), message


def test_a_budget_reserves_only_the_prompt_of_a_zero_token_call(served, tmp_path) -> None:
    from tokenomy.gateway.keys import KeyStore

    bodies, claude = served[2], served[4]
    ledger = tmp_path / "ledger.duckdb"
    # The prompt (~1,650 tokens) at the cache-write price fits the budget; with 1,024 output tokens it does not.
    secret, _ = KeyStore(open_store(ledger)).create(budget_usd=Decimal("0.012"), period="month", name="warmer")
    config = parse_config(
        {"auth": True, "models": {"claude": {"provider": "anthropic", "model": SONNET, "base_url": claude}}}
    )
    with ServerThread(create_app(config, str(ledger)), lifespan="on") as url:
        sdk = anthropic.Anthropic(base_url=url, api_key=secret, max_retries=0)
        with pytest.raises(anthropic.RateLimitError, match="Budget exhausted"):
            sdk.messages.create(model="claude", max_tokens=1024, system=SYSTEM, messages=ASK)
        # A zero-token call was reserved 1,024 output tokens (the estimate for no cap), and refused the same way.
        warm = sdk.messages.create(model="claude", max_tokens=0, system=SYSTEM, messages=ASK)
    assert warm.stop_reason == "max_tokens" and bodies[-1]["max_tokens"] == 0
