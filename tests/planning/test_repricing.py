"""`plan savings` re-pricing calls as another model (`--price-as`, the routing lever's target) counts a cache read or
write only where that model caches the prefix: none under its minimum cacheable length."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from decimal import Decimal

from tokenomy.chat_response import Usage
from tokenomy.ledger.events import UsageEvent
from tokenomy.planning.savings import SavingsInputs, what_if
from tokenomy.pricing.catalog import default_catalog
from tokenomy.pricing.cost import cacheable_usage, compute_cost

HAIKU_45 = "anthropic.claude-haiku-4-5-20251001-v1:0"  # caches prefixes of 4,096 tokens or more
SONNET_45 = "anthropic.claude-sonnet-4-5-20250929-v1:0"  # 1,024 or more
T0 = datetime(2026, 11, 2, 9, 0, tzinfo=UTC)


def _call(minute: int, model: str, provider: str, input_tokens: int, cache_read: int) -> UsageEvent:
    return UsageEvent(
        ts=T0 + timedelta(minutes=minute),
        provider=provider,
        model=model,
        region="us-east-1" if provider == "aws.bedrock" else None,
        task="support",
        input_tokens=input_tokens,
        output_tokens=40,
        cache_read_tokens=cache_read,
    )


def test_a_cache_read_under_the_models_minimum_is_input_and_one_over_it_stays_a_read() -> None:
    haiku = default_catalog().lookup(HAIKU_45, "us-east-1")
    assert haiku.cache_min_tokens == 4096
    assert cacheable_usage(Usage(20, 40, 750), haiku) == Usage(770, 40)
    assert cacheable_usage(Usage(20, 40, 5000), haiku) == Usage(20, 40, 5000)
    assert cacheable_usage(Usage(20, 40, 0, 2000), haiku) == Usage(2020, 40)
    # a read under the minimum before writes that reach it: the model writes the whole prefix at the later point
    assert cacheable_usage(Usage(20, 40, 1000, 3500), haiku) == Usage(20, 40, 0, 4500)


def test_price_as_bills_a_local_models_short_cached_prompt_as_input() -> None:
    """The demo's case: the local model's KV cache reads most of a 750-token system prompt on every call; Haiku 4.5
    on Bedrock caches nothing that short, so every one of those tokens is input at Haiku's price."""
    calls = [_call(i, "local", "local", 20, 730) for i in range(6)]
    result = what_if(calls, SavingsInputs(price_as=HAIKU_45, levers=("caching",)))
    hours = Decimal(1)  # five minutes of calls count as one hour
    as_input = 6 * compute_cost(Usage(750, 40), HAIKU_45).total_usd
    assert result["current_monthly_cost_usd"] == as_input * 730 / hours


def test_the_routing_lever_bills_cache_reads_the_cheaper_model_cannot_make_as_input() -> None:
    """Sonnet 4.5 reads a 2,000-token cached prompt; Haiku 4.5 would not cache it, so routed calls pay input."""
    calls = [_call(i, SONNET_45, "aws.bedrock", 100, 2000) for i in range(6)]
    result = what_if(calls, SavingsInputs(cheap_model=HAIKU_45, routing_share=1.0, levers=("routing",)))
    [routing] = result["levers"]
    on_sonnet = 6 * compute_cost(Usage(100, 40, 2000), SONNET_45, "us-east-1").total_usd
    on_haiku = 6 * compute_cost(Usage(2100, 40), HAIKU_45).total_usd
    assert routing["window_saving_usd"] == on_sonnet - on_haiku
