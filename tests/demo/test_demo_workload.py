"""The demo's workload step prices its tokens on Bedrock Claude Haiku 4.5 as Bedrock would bill them: the local
model's KV cache reads the ~865-token system prompt, which Haiku 4.5 (4,096-token minimum) never caches."""

from __future__ import annotations

from datetime import UTC, datetime

from tokenomy.chat_response import Usage
from tokenomy.demo.workload import COMPARE_MODEL, REGION, compare_text
from tokenomy.ledger.events import UsageEvent
from tokenomy.pricing.catalog import default_catalog
from tokenomy.pricing.cost import compute_cost


def _call(input_tokens: int, cache_read: int, prefix: int) -> UsageEvent:
    return UsageEvent(
        ts=datetime(2026, 12, 7, 9, tzinfo=UTC),
        provider="local",
        model="local",
        input_tokens=input_tokens,
        output_tokens=20,
        cache_read_tokens=cache_read,
        prefix_tokens=prefix,
    )


def test_cache_reads_under_the_compare_models_minimum_are_priced_as_input_and_the_text_says_so() -> None:
    assert default_catalog().lookup(COMPARE_MODEL, REGION).cache_min_tokens == 4096
    calls = [_call(1041, 0, 865)] + [_call(45, 986, 865) for _ in range(5)]
    as_input = compute_cost(Usage(1041 + 5 * 1031, 6 * 20), COMPARE_MODEL, REGION).total_usd
    text = compare_text(calls)
    assert f"${as_input:.6f}, with or without prompt caching" in text
    assert "read 4,930 prompt tokens from its KV cache" in text and "no prefix under 4,096 tokens" in text
    assert "this system prompt is ~865: Bedrock would bill all 4,930 of them as input" in text


def test_cache_reads_over_the_minimum_keep_their_cache_price() -> None:
    calls = [_call(45, 5000, 5040) for _ in range(3)]
    cached = compute_cost(Usage(135, 60, 15000), COMPARE_MODEL, REGION).total_usd
    uncached = compute_cost(Usage(15135, 60), COMPARE_MODEL, REGION).total_usd
    text = compare_text(calls)
    assert f"${uncached:.6f} without prompt caching, ${cached:.6f} with it" in text
    assert "as input" not in text
