"""Implicit context caching on the real local model: a repeated long prefix is read from the cache the
second time, reported as `cachedContentTokenCount`, and Tokenomy prices those tokens at the cached rate."""

from __future__ import annotations

from decimal import Decimal

import pytest

from tokenomy.emulate.gemini_api import create_app
from tokenomy.emulate.server import ServerThread
from tokenomy.messages import ChatRequest
from tokenomy.pricing.catalog import default_catalog
from tokenomy.pricing.cost import compute_cost
from tokenomy.providers.gemini_provider import GeminiProvider

MODEL = "gemini-2.5-flash"
MILLION = Decimal(1_000_000)


@pytest.mark.slow
def test_repeated_prefix_is_an_implicit_cache_hit_at_the_cached_rate() -> None:
    system = "\n".join(f"Policy {i}: refunds for order group {i} take {i % 6 + 2} days." for i in range(110))
    with ServerThread(create_app()) as url:
        provider = GeminiProvider(base_url=url)
        first = provider.chat(ChatRequest.simple("Group 4?", model=MODEL, system=system, max_tokens=2))
        second = provider.chat(ChatRequest.simple("Group 9?", model=MODEL, system=system, max_tokens=2))
        short = provider.chat(ChatRequest.simple("Hi", model=MODEL, system="Short.", max_tokens=1))
        provider.close()
    entry = default_catalog().lookup(MODEL)
    assert first.usage.cache_read_tokens == 0 and first.usage.input_tokens >= entry.cache_min_tokens
    cached = second.usage.cache_read_tokens
    assert cached >= entry.cache_min_tokens and 0 < second.usage.input_tokens < 30
    assert cached + second.usage.input_tokens == first.usage.input_tokens  # same length: "Group 9?" vs "Group 4?"
    cost = compute_cost(second.usage, MODEL)
    assert cost.cache_read_usd == cached * entry.cache_read / MILLION
    assert (
        cost.total_usd
        == (
            second.usage.input_tokens * entry.input
            + cached * entry.cache_read
            + second.usage.output_tokens * entry.output
        )
        / MILLION
    )
    assert short.usage.cache_read_tokens == 0  # below the minimum nothing is cached
