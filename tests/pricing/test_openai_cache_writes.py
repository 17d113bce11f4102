"""OpenAI-format answers that report cache writes (`prompt_tokens_details.cache_write_tokens`: GPT-6.x, and Claude
through OpenAI-compatible routers) are billed at the cache-write price, not as plain input."""

from decimal import Decimal

import pytest

from helpers.scripted_openai import ScriptedOpenAI
from tokenomy.client import Tokenomy
from tokenomy.ledger.store import open_store
from tokenomy.messages import ChatRequest
from tokenomy.providers.openai_wire_read import usage_from_dict
from tokenomy.providers.registry import ModelSpec

M = Decimal(1_000_000)
# 10,000 prompt tokens: 6,000 read from the cache, 3,000 written to it, 1,000 neither; 500 written out.
REPORTED = {
    "prompt_tokens": 10_000,
    "completion_tokens": 500,
    "total_tokens": 10_500,
    "prompt_tokens_details": {"cached_tokens": 6_000, "cache_write_tokens": 3_000},
}


def test_the_usage_keeps_cache_writes_apart_from_input():
    usage = usage_from_dict(REPORTED)
    assert (usage.input_tokens, usage.cache_read_tokens, usage.cache_write_tokens) == (1_000, 6_000, 3_000)
    assert usage.total_input_tokens == 10_000
    # Chat Completions' older answers (and most servers) report no writes: all uncached prompt tokens are input.
    assert usage_from_dict({"prompt_tokens": 10, "completion_tokens": 1}).input_tokens == 10


@pytest.fixture
def upstream():
    server = ScriptedOpenAI([])
    yield server
    server.close()


@pytest.mark.parametrize("stream", [False, True])
def test_a_gpt_6_call_that_writes_the_cache_is_recorded_at_the_write_price(upstream, ledger_path, stream):
    # GPT-6.1 Sol: $2 input, $0.10 cached input, $2.50 cache write (30 minutes), $10 output. The 3,000 written
    # tokens were billed as input ($2), a quarter under what OpenAI bills.
    upstream.usage = REPORTED
    spec = {"sol": ModelSpec(name="sol", provider="openai", model="gpt-6.1-sol", base_url=upstream.url)}
    request = ChatRequest.simple("hi", model="sol", max_tokens=5)
    with Tokenomy(ledger_path, models=spec) as client:
        answer = list(client.stream(request))[-1].response if stream else client.chat(request)
    by_hand = (1_000 * Decimal("2") + 6_000 * Decimal("0.10") + 3_000 * Decimal("2.50") + 500 * Decimal("10")) / M
    assert answer.cost_usd == by_hand
    [event] = open_store(ledger_path).events()
    assert (event.input_tokens, event.cache_read_tokens, event.cache_write_tokens) == (1_000, 6_000, 3_000)
    assert event.cost_usd == by_hand


def test_a_batch_result_line_keeps_its_cache_writes_apart_too():
    from tokenomy.batch.openai_backend import _usage
    from tokenomy.pricing.cost import compute_cost

    usage = _usage(REPORTED)
    assert (usage.input_tokens, usage.cache_read_tokens, usage.cache_write_tokens) == (1_000, 6_000, 3_000)
    # At GPT-6.1 Sol's batch prices: half of each (the cache read and write in proportion to input's discount).
    assert (
        compute_cost(usage, "gpt-6.1-sol", mode="batch", one_call=True).total_usd
        == (1_000 * Decimal("1") + 6_000 * Decimal("0.05") + 3_000 * Decimal("1.25") + 500 * Decimal("5")) / M
    )
