"""`tokenomy review` re-prices a model's traffic on each candidate (and on the model itself) as the ledger prices each
call: 1-hour cache writes at the 1-hour price, and a prompt over a model's long-context threshold at its
long-context prices. The expected figures are every call priced on its own with compute_cost(one_call=True), with
the same fallbacks `tokenomy plan savings` uses (no 1-hour price: a 5-minute write; no cache prices: input; a part
with no long-context price: the standard rates), and a bill's row (many calls' tokens) at the standard rates."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from decimal import Decimal

import pytest

from tokenomy.chat_response import Usage
from tokenomy.errors import TokenomyError
from tokenomy.ledger.events import CACHE_WRITE_1H_TAG, UsageEvent
from tokenomy.ledger.store import open_store
from tokenomy.pricing.catalog import default_catalog
from tokenomy.pricing.cost import compute_cost

END = datetime(2026, 11, 30, tzinfo=UTC)
START = END - timedelta(days=30)
BEDROCK_SONNET = "anthropic.claude-sonnet-4-5-20250929-v1:0"  # 1-hour cache writes at 2x input
SONNET = "claude-sonnet-4-5-20250929"  # prompts over 200k tokens at $6 / $22.50 (no 1-hour write price over 200k)
GEMINI = "gemini-2.5-pro"  # prompts over 200k tokens at $2.50 / $15


def _call(
    day: int,
    model: str,
    provider: str,
    region: str | None,
    input_tokens: int,
    output_tokens: int,
    cache_read: int = 0,
    cache_write: int = 0,
    one_hour: int = 0,
    billed: bool = False,
) -> UsageEvent:
    event = UsageEvent(
        ts=END - timedelta(days=day, hours=3),
        provider=provider,
        model=model,
        region=region,
        task="work",
        input_tokens=input_tokens,
        output_tokens=output_tokens,
        cache_read_tokens=cache_read,
        cache_write_tokens=cache_write,
    )
    if one_hour:
        event.tags[CACHE_WRITE_1H_TAG] = str(one_hour)
    if billed:  # an imported bill's row: a day of many calls, priced at the standard rates
        event.priced_by = "billed"
        event.cost_usd = compute_cost(event.usage, model, region).total_usd
        return event
    try:
        return event.apply_cost(compute_cost(event.usage, model, region, one_call=True))  # as the gateway records it
    except TokenomyError:  # no long-context 1-hour write price: what the review falls back to (standard rates)
        return event.apply_cost(compute_cost(event.usage, model, region))


def ledger_events() -> list[UsageEvent]:
    events = []
    for day in range(1, 11):
        # (a) Bedrock Claude with 1-hour cache writes (part of each call's writes), and some calls without
        events.append(
            _call(
                day,
                BEDROCK_SONNET,
                "aws.bedrock",
                "us-east-1",
                2_000 + day,
                400,
                cache_read=6_000,
                cache_write=10_000,
                one_hour=8_000,
            )
        )
        events.append(_call(day, BEDROCK_SONNET, "aws.bedrock", "us-east-1", 3_000, 300 + day, cache_write=5_000))
        # (b) long prompts beside short ones, either side of the 200,000-token threshold
        events.append(_call(day, SONNET, "anthropic", None, 250_000 + day, 2_000, cache_read=20_000))
        events.append(_call(day, SONNET, "anthropic", None, 120_000, 1_000 + day, cache_read=80_000))  # 200,000
        events.append(_call(day, SONNET, "anthropic", None, 150_001, 500, cache_write=50_000))  # 200,001: long
        events.append(_call(day, SONNET, "anthropic", None, 1_000, 100 + day))
        events.append(_call(day, GEMINI, "gemini", None, 300_000 + day, 4_000, cache_read=100_000))
        events.append(_call(day, GEMINI, "gemini", None, 30_000, 800 + day))
    # a long call with 1-hour writes, which Sonnet 4.5 has no long-context price for
    events.append(_call(3, SONNET, "anthropic", None, 210_000, 700, cache_write=30_000, one_hour=30_000))
    # a day the gateway missed, from Google's bill: 600,000 prompt tokens of many calls
    events.append(_call(20, GEMINI, "gemini", None, 600_000, 9_000, billed=True))
    return events


def per_call(event: UsageEvent, model: str) -> Decimal:
    """One call on `model`, priced on its own."""
    catalog = default_catalog()
    region = event.region
    try:
        entry = catalog.lookup(model, region)
    except TokenomyError:
        region, entry = None, catalog.lookup(model)
    usage = event.usage
    if not entry.has_cache:
        usage = Usage(usage.total_input_tokens, usage.output_tokens)
    elif usage.cache_write_1h_tokens and entry.cache_write_1h is None:  # written for 5 minutes there
        usage = Usage(usage.input_tokens, usage.output_tokens, usage.cache_read_tokens, usage.cache_write_tokens)
    if event.priced_by == "billed":
        return compute_cost(usage, model, region).total_usd
    try:
        return compute_cost(usage, model, region, one_call=True).total_usd
    except TokenomyError:
        return compute_cost(usage, model, region).total_usd


@pytest.fixture(params=["duckdb", "postgres", "clickhouse"])
def store(request, tmp_path):
    if request.param == "duckdb":
        return open_store(tmp_path / "ledger.duckdb")
    if request.param == "clickhouse":
        return open_store(f"chdb:{tmp_path / 'ledger.chdb'}")
    return open_store(request.getfixturevalue("fresh_postgres_url"))


def test_candidates_and_today_are_priced_call_by_call(store) -> None:
    from tokenomy.analytics.review_models import models_section, reprice, usage_groups

    events = ledger_events()
    store.write(events)
    in_use = {m["model"]: m for m in models_section(store, START, END, Decimal(1))["in_use"]}
    assert set(in_use) == {BEDROCK_SONNET, SONNET, GEMINI}
    for model, info in in_use.items():
        mine = [e for e in events if e.model == model]
        # today: the model itself, priced as each call was (the recorded cost, but for the call recorded at the
        # standard rates for want of a long-context 1-hour price, and the bill's row, at the standard rates)
        assert info["current_usd"] == sum(per_call(e, model) for e in mine), model
        assert info["candidates"], model
        for candidate in info["candidates"]:
            assert candidate["cost_usd"] == sum(per_call(e, candidate["model"]) for e in mine), (model, candidate)
        for row in info.get("per_task", []):
            to = sum(per_call(e, row["to"]) for e in mine)
            assert row["monthly_saving_usd"] == info["current_usd"] - to, (model, row)
        assert info["current_usd"] == sum(e.cost_usd for e in mine), model  # as the ledger recorded them
    # Each rule is exercised: a candidate with a 1-hour price, one without (5-minute writes), one without cache
    # prices (input); a long-context candidate's upgrade without long-context prices.
    bedrock = {c["model"] for c in in_use[BEDROCK_SONNET]["candidates"]}
    assert {"anthropic.claude-sonnet-4-6", "amazon.nova-micro-v1:0"} <= bedrock, sorted(bedrock)
    # Sonnet 4 (long-context prices, no 1-hour writes) and 3.5 Sonnet v1 (no cache prices), which Anthropic retired,
    # are not proposed; they are still priced as each call would have been
    vendor_retired = {r["model"] for r in in_use[BEDROCK_SONNET]["vendor_retired"]}
    mine = [e for e in events if e.model == BEDROCK_SONNET]
    groups = usage_groups(store, START, END)[BEDROCK_SONNET]
    for model in ("anthropic.claude-sonnet-4-20250514-v1:0", "anthropic.claude-3-5-sonnet-20240620-v1:0"):
        assert model in vendor_retired and model not in bedrock
        assert reprice(groups, model) == sum(per_call(e, model) for e in mine), model
    # past their Bedrock EOL: not proposed, and said so
    retired = {r["model"] for r in in_use[BEDROCK_SONNET]["retired"]}
    assert {"anthropic.claude-3-5-haiku-20241022-v1:0", "anthropic.claude-3-haiku-20240307-v1:0"} <= retired
    assert not retired & bedrock
    assert "claude-sonnet-4-6" in {c["model"] for c in in_use[SONNET]["candidates"]}
    assert "gemini-2.5-flash" in {c["model"] for c in in_use[GEMINI]["candidates"]}


def test_a_threshold_only_the_price_library_knows_splits_the_calls_too(store) -> None:
    # Gemini 1.5 Pro is priced from genai-prices, over 128k prompt tokens at its long-context prices: a threshold no
    # curated entry has, so the calls either side of it were summed together (and priced at the standard rates).
    from tokenomy.analytics.review_models import models_section

    model = "gemini-1.5-pro"
    assert default_catalog().lookup(model).long_context.above_tokens == 128_000  # the premise
    events = [_call(day, model, "gemini", None, 150_000 + day, 1_000) for day in range(1, 6)]
    events += [_call(day, model, "gemini", None, 100_000, 2_000 + day) for day in range(1, 6)]
    store.write(events)
    [info] = models_section(store, START, END, Decimal(1))["in_use"]
    assert info["current_usd"] == sum(per_call(e, model) for e in events) == sum(e.cost_usd for e in events)
