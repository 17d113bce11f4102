"""The models released in November 2026 (GPT-6.2 Sol and Astra, Gemini 4 Neon, Hydrogen and Carbon) are priced.

genai-prices 0.2.3, the installed fallback, does not know them: their calls were recorded at $0 (`unpriced`). Each
figure below is the provider's published price, worked by hand."""

from decimal import Decimal

import pytest

from tokenomy.chat_response import Usage
from tokenomy.pricing.catalog import PriceCatalog
from tokenomy.pricing.cost import compute_cost

M = 1_000_000


@pytest.mark.parametrize(
    "model, short, long, batch, priority",
    [
        # GPT-6.2 Sol: $2 in, $0.10 cached, $2.50 cache write (30 min), $10 out; over 272k input tokens $4 / $0.20 / $5 /
        # $15; batch half; priority twice (developers.openai.com/api/docs/models/gpt-6.2-sol).
        ("gpt-6.2-sol", ("2", "0.10", "2.50", "10"), ("4", "0.20", "5", "15"), ("1", "5"), ("4", "20")),
        # GPT-6.2 Astra: $8 / $0.40 / $10 / $40; over 272k $16 / $0.80 / $20 / $60.
        ("gpt-6.2-astra", ("8", "0.40", "10", "40"), ("16", "0.80", "20", "60"), ("4", "20"), ("16", "80")),
    ],
)
def test_gpt_6_2_is_priced_from_the_catalog(model, short, long, batch, priority):
    catalog = PriceCatalog.builtin()
    entry = catalog.lookup(model)
    assert entry.priced_by == "tokenomy-catalog" and entry.as_of == "2026-12-04" and "gpt-6.2" in entry.source
    assert (entry.input, entry.cache_read, entry.cache_write, entry.output) == tuple(map(Decimal, short))
    # One call: 100k input, 50k cached, 10k written to the cache, 20k output, by hand at the short-prompt prices.
    usage = Usage(100_000, 20_000, cache_read_tokens=50_000, cache_write_tokens=10_000)
    rin, rcr, rcw, rout = map(Decimal, short)
    hand = (100_000 * rin + 50_000 * rcr + 10_000 * rcw + 20_000 * rout) / M
    assert compute_cost(usage, model, catalog=catalog, one_call=True).total_usd == hand
    # Over 272k prompt tokens the whole call is at the long-context prices.
    big = Usage(300_000, 20_000)
    lin, _, _, lout = map(Decimal, long)
    assert compute_cost(big, model, catalog=catalog, one_call=True).total_usd == (300_000 * lin + 20_000 * lout) / M
    assert compute_cost(Usage(M, M), model, mode="batch", catalog=catalog).total_usd == sum(map(Decimal, batch))
    assert compute_cost(Usage(M, M), model, catalog=catalog, service_tier="priority").total_usd == sum(
        map(Decimal, priority)
    )
    assert compute_cost(Usage(M, 0), f"{model}-2026-11-17", catalog=catalog).total_usd == rin  # a dated id


@pytest.mark.parametrize(
    "model, prices, batch, priority",
    [
        # aistudio.google.com/docs/pricing: flat across the 1M window; batch and flex half, priority 1.8x.
        ("gemini-4-neon", ("3", "0.15", "15"), ("1.5", "7.5"), ("5.4", "27")),
        ("gemini-4-hydrogen", ("1.5", "0.075", "7.5"), ("0.75", "3.75"), ("2.7", "13.5")),
        # Carbon's introductory $2 / $10 ended on 2026-11-30: $4 / $20 from 2026-12-01.
        ("gemini-4-carbon", ("4", "0.20", "20"), ("2", "10"), ("7.2", "36")),
    ],
)
def test_gemini_4_is_priced_from_the_catalog(model, prices, batch, priority):
    catalog = PriceCatalog.builtin()
    entry = catalog.lookup(model)
    assert entry.priced_by == "tokenomy-catalog" and entry.as_of == "2026-12-04"
    assert (entry.input, entry.cache_read, entry.output) == tuple(map(Decimal, prices))
    assert entry.web_search == Decimal(14)  # per 1,000 search queries, as for Gemini 3
    # Thinking tokens are output tokens (Usage.output_tokens counts them): 1,000 in, 300 answer + 700 thinking.
    rin, _, rout = map(Decimal, prices)
    usage = Usage(1_000, 1_000, reasoning_tokens=700)
    assert compute_cost(usage, model, catalog=catalog, one_call=True).total_usd == (1_000 * rin + 1_000 * rout) / M
    assert compute_cost(Usage(M, M), model, mode="batch", catalog=catalog).total_usd == sum(map(Decimal, batch))
    assert compute_cost(Usage(M, M), model, catalog=catalog, service_tier="priority").total_usd == sum(
        map(Decimal, priority)
    )
    assert compute_cost(Usage(M, M), model, catalog=catalog, service_tier="flex").total_usd == sum(map(Decimal, batch))
