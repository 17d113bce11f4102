"""Anthropic's fast mode (`speed: "fast"` on the Messages API: the same Claude model at up to 2.5 times the output
speed, billed at its own, higher per-token prices) through the gateway's /v1/messages: carried to the models that
have it, with the fast-mode beta header where the model needs it, recorded at the fast_mode price of the catalog and
tagged so; refused, naming the model and why, for one without it, before anything is sent."""

from __future__ import annotations

import json
from decimal import Decimal

import anthropic
import pytest

from helpers.capturing_asgi import capturing
from helpers.ledger_rows import written_rows
from helpers.scripted_anthropic import USAGE, ScriptedAnthropic
from tokenomy.config import parse_config
from tokenomy.emulate.anthropic_api import create_app as create_anthropic
from tokenomy.emulate.instant_engine import InstantEngine
from tokenomy.emulate.server import ServerThread
from tokenomy.gateway.app import create_app
from tokenomy.pricing.catalog import default_catalog

ASK = [{"role": "user", "content": "hi"}]
BETA = "fast-mode-2026-02-01"


@pytest.fixture
def gateway(tmp_path):
    """(scripted Anthropic upstream, anthropic SDK on the gateway, ledger path)."""
    scripted = ScriptedAnthropic()
    ledger = tmp_path / "ledger.duckdb"
    models = {
        "opus5": "claude-opus-5",  # fast mode in research preview: needs the beta header
        "opus55": "claude-opus-5-5",  # fast mode available: no beta header
        "opus48": "claude-opus-4-8",  # fast mode removed on 2026-11-30
        "sonnet": "claude-sonnet-4-5-20250929",  # never had it
    }
    with ServerThread(scripted.app) as upstream, pytest.MonkeyPatch.context() as env:
        env.setenv("ANTHROPIC_API_KEY", "unused")
        config = parse_config(
            {
                "models": {
                    name: {"provider": "anthropic", "model": m, "base_url": upstream} for name, m in models.items()
                }
            }
        )
        with ServerThread(create_app(config, str(ledger)), lifespan="on") as url:
            yield scripted, anthropic.Anthropic(base_url=url, api_key="unused", max_retries=0), ledger


@pytest.fixture
def emulated(tmp_path):
    """(what the Anthropic emulator received: bodies and headers, anthropic SDK on a gateway in front of it, ledger
    path)."""
    bodies: list[dict] = []
    headers: list[dict[str, str]] = []
    ledger = tmp_path / "ledger.duckdb"
    models = {"opus5": "claude-opus-5", "opus55": "claude-opus-5-5"}
    with (
        ServerThread(capturing(create_anthropic(engine=InstantEngine()), bodies, headers)) as upstream,
        pytest.MonkeyPatch.context() as env,
    ):
        env.setenv("ANTHROPIC_API_KEY", "unused")
        config = {
            "models": {name: {"provider": "anthropic", "model": m, "base_url": upstream} for name, m in models.items()}
        }
        with ServerThread(create_app(parse_config(config), str(ledger)), lifespan="on") as url:
            yield (bodies, headers), anthropic.Anthropic(base_url=url, api_key="unused", max_retries=0), ledger


@pytest.mark.parametrize("streamed", [False, True])
def test_fast_mode_reaches_claude_and_is_recorded_at_its_own_price(emulated, streamed) -> None:
    """`speed: "fast"` was refused for every model ("bills fast mode at its own, higher price, which Tokenomy's
    catalog does not have"), though genai-prices and Anthropic's pricing page publish the fast prices of the models
    that have it. Now it reaches Claude (Opus 5 with the fast-mode beta header its research preview needs, without
    which the emulator, as Anthropic, runs it at standard speed; Opus 5.5 without), the answer's usage.speed comes
    back to the caller, and the row is priced at the model's fast_mode price, with that price's source, and tagged
    `service_tier: fast_mode`."""
    (bodies, headers), sdk, ledger = emulated
    for route in ("opus5", "opus55"):
        if streamed:
            with sdk.messages.stream(model=route, max_tokens=5, messages=ASK, speed="fast") as stream:
                reply = stream.get_final_message()
        else:
            reply = sdk.messages.create(model=route, max_tokens=5, messages=ASK, speed="fast")
        assert bodies[-1]["speed"] == "fast"
        betas = headers[-1].get("anthropic-beta", "").split(",")
        assert (BETA in betas) == (route == "opus5"), headers[-1]
        # A stream's speed was sent in message_delta's usage, where the SDK does not read it (its MessageDeltaUsage
        # has no speed): the streamed final message said none. It goes in message_start, as Anthropic sends it.
        assert reply.usage.speed == "fast", route
    rows = written_rows(ledger, 2)
    catalog = default_catalog()
    for row, model in zip(rows, ("claude-opus-5", "claude-opus-5-5"), strict=True):
        fast = catalog.lookup(model, None).service_tiers["fast_mode"]
        assert row.tags.get("service_tier") == "fast_mode"
        assert row.input_tokens > 0 and row.output_tokens > 0
        assert row.cost_usd == (row.input_tokens * fast.input + row.output_tokens * fast.output) / 1_000_000
        assert "fast-mode-pricing" in fast.source and row.priced_by == "tokenomy-catalog"
    opus5 = catalog.lookup("claude-opus-5", None)
    tokens_in, tokens_out = rows[0].input_tokens, rows[0].output_tokens
    assert rows[0].cost_usd == (tokens_in * Decimal("10") + tokens_out * Decimal("50")) / 1_000_000  # twice $5 / $25
    assert rows[0].cost_usd == 2 * (tokens_in * opus5.input + tokens_out * opus5.output) / 1_000_000


def test_a_fast_call_claude_ran_at_standard_speed_is_recorded_at_the_standard_price(gateway) -> None:
    """Anthropic bills the speed a call ran at, which its usage says: asked fast and run standard, it is standard."""
    scripted, sdk, ledger = gateway
    scripted.usage = {**USAGE, "speed": "standard"}
    sdk.messages.create(model="opus55", max_tokens=5, messages=ASK, speed="fast")
    [row] = written_rows(ledger, 1)
    entry = default_catalog().lookup("claude-opus-5-5", None)
    assert "service_tier" not in row.tags
    assert row.cost_usd == (10 * entry.input + 2 * entry.output) / 1_000_000


def test_fast_mode_on_a_model_without_it_is_refused_naming_the_model_before_anything_is_sent(gateway) -> None:
    """Opus 4.8's fast mode, removed on 2026-11-30 (the API now refuses it), and Sonnet 4.5's, which never was: a
    400 naming the model, why and the fix, before anything reaches Claude; `speed: "standard"` is carried as sent."""
    scripted, sdk, _ = gateway
    for route, model, why in (
        ("opus48", "claude-opus-4-8", "had fast mode until Anthropic removed it on 2026-11-30"),
        ("sonnet", "claude-sonnet-4-5-20250929", "has no fast mode"),
    ):
        with pytest.raises(anthropic.BadRequestError) as refused:
            sdk.messages.create(model=route, max_tokens=5, messages=ASK, speed="fast")
        message = refused.value.body["error"]["message"]
        assert message.startswith(f"speed: the Anthropic Messages API (model {model}) {why}"), message
        assert "Opus 5.5" in message and 'send "standard"' in message
    with pytest.raises(anthropic.BadRequestError) as refused:
        sdk.messages.create(model="opus5", max_tokens=5, messages=ASK, extra_body={"speed": "ludicrous"})
    assert 'takes "standard" or "fast" (got \'ludicrous\')' in refused.value.body["error"]["message"]
    sdk.messages.create(model="sonnet", max_tokens=5, messages=ASK, speed="standard")  # the standard speed: sent
    assert [body.get("speed") for _, body in scripted.requests] == ["standard"]


def test_a_fast_speed_said_only_in_message_delta_prices_the_row_and_reaches_the_caller(gateway) -> None:
    """Anthropic's stream says the speed in message_start (the SDK types `speed` on the message's usage, not on
    message_delta's); an upstream that says it only in message_delta had it ignored: the row was priced at the
    standard price. The row is priced wherever it arrives, and the gateway's message_delta passes it on."""
    scripted, sdk, ledger = gateway
    scripted.delta_usage = {"output_tokens": 2, "speed": "fast"}  # message_start's usage names no speed
    with sdk.messages.with_streaming_response.create(
        model="opus55", max_tokens=5, messages=ASK, speed="fast", stream=True
    ) as answer:
        events = [line for line in answer.iter_lines() if line.startswith("data: ")]
    delta = next(json.loads(line[6:]) for line in events if '"message_delta"' in line)
    assert delta["usage"]["speed"] == "fast"
    [row] = written_rows(ledger, 1)
    fast = default_catalog().lookup("claude-opus-5-5", None).service_tiers["fast_mode"]
    assert row.tags.get("service_tier") == "fast_mode"
    assert row.cost_usd == (10 * fast.input + 2 * fast.output) / 1_000_000


def test_a_fast_mode_call_that_writes_the_one_hour_cache_is_priced(gateway) -> None:
    """A fast-mode call that wrote to the 1-hour cache was recorded unpriced (the fast_mode tier had no 1-hour
    cache-write price). Anthropic: "Prompt caching multipliers apply on top of fast mode pricing": the 1-hour write
    is 2x fast mode's input price ($16 on Opus 5.5), the 5-minute write 1.25x ($10)."""
    scripted, sdk, ledger = gateway
    split = {"ephemeral_5m_input_tokens": 40, "ephemeral_1h_input_tokens": 60}
    scripted.usage = {**USAGE, "cache_creation_input_tokens": 100, "cache_creation": split, "speed": "fast"}
    reply = sdk.messages.create(model="opus55", max_tokens=5, messages=ASK, speed="fast")
    assert reply.usage.cache_creation.ephemeral_1h_input_tokens == 60
    [row] = written_rows(ledger, 1)
    assert row.tags.get("service_tier") == "fast_mode"
    assert row.cost_usd == (10 * Decimal("8") + 2 * Decimal("40") + 40 * Decimal("10") + 60 * Decimal("16")) / 10**6
