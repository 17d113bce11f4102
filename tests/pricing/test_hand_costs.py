"""One call of each kind priced by hand from the published figures, against what the cost engine computes.

Figures (USD per 1M tokens): Claude Sonnet 4.5 on Bedrock, global profile $3 / $15, in-region (us.) 10% more; batch is
half of on-demand (aws.amazon.com/bedrock/pricing); Claude cache writes 1.25x input for 5 minutes, 2x for an hour,
reads 0.1x (platform.claude.com/docs/en/about-claude/pricing); Gemini 2.5 Pro $1.25 / $10, cached $0.125, and for a
prompt over 200k tokens $2.50 / $15, cached $0.25 (ai.google.dev/gemini-api/docs/pricing); reasoning (thinking)
tokens are billed as output everywhere."""

from decimal import Decimal

import pytest

from tokenomy.chat_response import Usage
from tokenomy.client import Tokenomy
from tokenomy.emulate.gemini_api import create_app
from tokenomy.emulate.instant_engine import InstantEngine
from tokenomy.emulate.server import ServerThread
from tokenomy.ledger.store import open_store
from tokenomy.messages import ChatRequest
from tokenomy.pricing.cost import compute_cost
from tokenomy.providers.openai_wire_read import usage_from_dict
from tokenomy.providers.registry import ModelSpec
from tokenomy.request_options import Reasoning

M = Decimal(1_000_000)


@pytest.mark.parametrize(
    "model, rate_in, rate_out",
    [
        ("global.anthropic.claude-sonnet-4-5-20250929-v1:0", Decimal("3.00"), Decimal("15.00")),
        ("us.anthropic.claude-sonnet-4-5-20250929-v1:0", Decimal("3.30"), Decimal("16.50")),
    ],
)
def test_a_bedrock_batch_record_costs_half_its_on_demand_price(model, rate_in, rate_out):
    usage = Usage(10_000, 2_000, cache_read_tokens=5_000, cache_write_tokens=1_000)
    on_demand = (10_000 * rate_in + 2_000 * rate_out + 5_000 * rate_in / 10 + 1_000 * rate_in * Decimal("1.25")) / M
    batch = compute_cost(usage, model, mode="batch", one_call=True)
    assert compute_cost(usage, model, one_call=True).total_usd == on_demand
    assert batch.total_usd == on_demand / 2 and batch.mode == "batch"
    assert batch.input_usd == 10_000 * rate_in / 2 / M and batch.output_usd == 2_000 * rate_out / 2 / M


@pytest.mark.parametrize(
    "model, rate_in",
    [
        ("claude-sonnet-4-5-20250929", Decimal("3.00")),
        ("claude-haiku-4-5-20251001", Decimal("1.00")),
        ("global.anthropic.claude-haiku-4-5-20251001-v1:0", Decimal("1.00")),
        ("eu.anthropic.claude-sonnet-4-5-20250929-v1:0", Decimal("3.30")),
    ],
)
def test_a_one_hour_cache_write_costs_twice_the_input_price(model, rate_in):
    # 3,000 tokens written to the cache, 1,000 of them for an hour (Anthropic's cache_creation split).
    usage = Usage(500, 100, cache_write_tokens=3_000, cache_write_1h_tokens=1_000)
    cost = compute_cost(usage, model, one_call=True)
    assert cost.cache_write_usd == (2_000 * rate_in * Decimal("1.25") + 1_000 * rate_in * 2) / M
    everything_for_an_hour = compute_cost(Usage(0, 0, cache_write_tokens=3_000), model, cache_ttl="1h")
    assert everything_for_an_hour.total_usd == 3_000 * rate_in * 2 / M


def test_a_gemini_2_5_pro_prompt_over_200k_tokens_is_billed_whole_at_the_long_context_prices():
    model = "gemini-2.5-pro"
    at_threshold = Usage(150_000, 1_000, cache_read_tokens=50_000)  # 200,000 prompt tokens: not over it
    assert (
        compute_cost(at_threshold, model, one_call=True).total_usd
        == (150_000 * Decimal("1.25") + 50_000 * Decimal("0.125") + 1_000 * Decimal("10")) / M
    )
    over = Usage(150_001, 1_000, cache_read_tokens=50_000)
    long = compute_cost(over, model, one_call=True)
    assert long.total_usd == (150_001 * Decimal("2.50") + 50_000 * Decimal("0.25") + 1_000 * Decimal("15")) / M
    assert long.note and "long-context" in long.note
    # In a batch input and output are half of those; a cached token keeps its price (Gemini's batch cached price).
    assert (
        compute_cost(over, model, mode="batch", one_call=True).total_usd
        == (150_001 * Decimal("1.25") + 50_000 * Decimal("0.25") + 1_000 * Decimal("7.50")) / M
    )
    # Token totals of many calls say nothing of one prompt's size: standard prices.
    assert (
        compute_cost(over, model).total_usd
        == (150_001 * Decimal("1.25") + 50_000 * Decimal("0.125") + 1_000 * Decimal("10")) / M
    )


def test_a_gpt_5_4_batch_prompt_over_272k_tokens_is_billed_at_the_published_batch_long_context_prices():
    # developers.openai.com/api/docs/pricing, batch: $1.25 / $7.50, cached $0.13 (a rounded half of $0.25); over
    # 272k prompt tokens $2.50 / $11.25, cached $0.25 (not $0.50 x 0.13/0.25 = $0.26).
    over = Usage(200_000, 1_000, cache_read_tokens=100_000)
    cost = compute_cost(over, "gpt-5.4", mode="batch", one_call=True)
    assert cost.cache_read_usd == 100_000 * Decimal("0.25") / M
    assert cost.total_usd == (200_000 * Decimal("2.50") + 100_000 * Decimal("0.25") + 1_000 * Decimal("11.25")) / M
    assert cost.note == "long-context prices: 300,000 prompt tokens are over 272,000"


def test_openai_reasoning_tokens_are_billed_as_output():
    # o3 ($2 / $8): completion_tokens counts the 700 reasoning tokens with the 300 of the answer.
    usage = usage_from_dict(
        {
            "prompt_tokens": 1_200,
            "completion_tokens": 1_000,
            "total_tokens": 2_200,
            "prompt_tokens_details": {"cached_tokens": 200},
            "completion_tokens_details": {"reasoning_tokens": 700},
        }
    )
    assert (usage.input_tokens, usage.cache_read_tokens, usage.output_tokens) == (1_000, 200, 1_000)
    assert (
        compute_cost(usage, "o3", one_call=True).total_usd
        == (1_000 * Decimal("2") + 200 * Decimal("0.50") + 1_000 * Decimal("8")) / M
    )


def test_a_gemini_call_that_thinks_is_recorded_with_its_thoughts_at_the_output_price(ledger_path, monkeypatch):
    for key in ("GEMINI_API_KEY", "GOOGLE_API_KEY", "GOOGLE_CLOUD_PROJECT", "GOOGLE_CLOUD_LOCATION"):
        monkeypatch.delenv(key, raising=False)
    # Gemini 2.5 Flash: $0.30 in, $2.50 out; Gemini leaves thoughts out of candidatesTokenCount but bills them.
    with ServerThread(create_app(engine=InstantEngine())) as url:
        spec = {"g": ModelSpec(name="g", provider="gemini", model="gemini-2.5-flash", base_url=url)}
        with Tokenomy(ledger_path, models=spec) as client:
            answer = client.chat(ChatRequest.simple("Is 17 prime?", model="g", reasoning=Reasoning(budget_tokens=256)))
    usage = answer.usage
    assert usage.reasoning_tokens > 0 and usage.output_tokens == usage.reasoning_tokens + len(answer.text.split())
    by_hand = (usage.input_tokens * Decimal("0.30") + usage.output_tokens * Decimal("2.50")) / M
    [event] = open_store(ledger_path).events()
    assert answer.cost_usd == event.cost_usd == by_hand and event.output_tokens == usage.output_tokens


def test_a_claude_sonnet_4_prompt_over_200k_tokens_is_billed_at_the_long_context_prices():
    # Sonnet 4 takes 1M tokens on Anthropic's API (the context-1m beta), and a prompt over 200k tokens bills the whole
    # call at $6 / $22.50 (cache reads $0.60, 5-minute writes $7.50), as Sonnet 4.5 does: it was priced at $3 / $15.
    usage = Usage(200_000, 2_000, cache_read_tokens=40_000, cache_write_tokens=10_000)
    cost = compute_cost(usage, "claude-sonnet-4-20250514", one_call=True)
    assert (
        cost.total_usd
        == (200_000 * Decimal("6") + 2_000 * Decimal("22.50") + 40_000 * Decimal("0.60") + 10_000 * Decimal("7.50")) / M
    )
    assert compute_cost(usage, "claude-sonnet-4@20250514", mode="batch", one_call=True).total_usd == cost.total_usd / 2


@pytest.mark.parametrize(
    "model, when, rates",
    [
        # genai-prices 0.2.5, GPT-6.2 Sol (standard $2 in / $0.10 cached / $10 out): ultrafast is 3x through 2027-02-28
        # ($6 / $0.30 / $30) and 6x from 2027-03-01 ($12 / $0.60 / $60), applied by the request's UTC date.
        ("gpt-6.2-sol", "2027-02-28T23:59:59+00:00", ("6", "0.30", "30")),
        ("gpt-6.2-sol", "2027-03-01T00:00:00+00:00", ("12", "0.60", "60")),
        # the same instant as 2027-02-28 16:00 Pacific: the UTC day decides, as in genai-prices
        ("gpt-6.2-sol", "2027-02-28T16:00:00-08:00", ("12", "0.60", "60")),
        # GPT-6.2 Astra (standard $8 / $0.40 / $40): 3x is $24 / $1.20 / $120, 6x $48 / $2.40 / $240
        ("gpt-6.2-astra", "2026-12-05T12:00:00+00:00", ("24", "1.20", "120")),
        ("gpt-6.2-astra", "2027-06-01T12:00:00+00:00", ("48", "2.40", "240")),
    ],
)
def test_an_ultrafast_call_is_priced_at_the_ultrafast_price_of_its_day(model, when, rates):
    from datetime import datetime

    rate_in, rate_cached, rate_out = map(Decimal, rates)
    expected = (800 * rate_in + 200 * rate_cached + 100 * rate_out) / M
    cost = compute_cost(
        Usage(800, 100, 200), model, service_tier="ultrafast", one_call=True, at=datetime.fromisoformat(when)
    )
    assert cost.total_usd == expected and cost.service_tier == "ultrafast"
    assert "ultrafast" in cost.source and cost.as_of


def test_genai_prices_ultrafast_change_is_kept_with_its_date():
    """The fallback library's own ultrafast variants (the 6x one constrained to start 2027-03-01) become one tier price
    with its dated change, so a model only the library knows is priced by its call's day too."""
    from datetime import date

    from tokenomy.pricing.library import library_figures

    tier = library_figures("openai", "gpt-6.2-astra")["service_tiers"]["ultrafast"]
    assert (tier.input, tier.output, tier.cache_read, tier.cache_write) == (24, 120, Decimal("1.2"), 30)
    later = tier.on(date(2027, 3, 1))
    assert (later.input, later.output, later.cache_read, later.cache_write, later.starts) == (
        48,
        240,
        Decimal("2.4"),
        60,
        "2027-03-01",
    )
    assert tier.on(date(2027, 2, 28)) is tier


@pytest.mark.parametrize(
    "model, rates",
    [
        # (input, output, cache read, 5-minute write, 1-hour write) per 1M tokens over 200k prompt tokens: Anthropic's
        # long-context rates (2x input and cache, 1.5x output); Sonnet 4.5 in-region 10% above its global profile.
        ("us.anthropic.claude-sonnet-4-5-20250929-v1:0", ("6.60", "24.75", "0.66", "8.25", "13.20")),
        ("global.anthropic.claude-sonnet-4-5-20250929-v1:0", ("6.00", "22.50", "0.60", "7.50", "12.00")),
        ("eu.anthropic.claude-sonnet-4-20250514-v1:0", ("6.00", "22.50", "0.60", "7.50", None)),
        ("global.anthropic.claude-sonnet-4-20250514-v1:0", ("6.00", "22.50", "0.60", "7.50", None)),
    ],
)
def test_a_bedrock_sonnet_4_prompt_over_200k_tokens_is_billed_whole_at_the_long_context_prices(model, rates):
    # Bedrock serves Sonnet 4 and 4.5 with the 1M-token window (anthropic_beta context-1m-2025-08-07, which the gateway
    # carries): such a call was recorded at the short-prompt rates, half what Bedrock bills.
    rate_in, rate_out, rate_read, rate_write, rate_1h = (Decimal(r) if r else None for r in rates)
    usage = Usage(150_001, 2_000, cache_read_tokens=40_000, cache_write_tokens=10_000)  # 200,001 prompt tokens
    cost = compute_cost(usage, model, one_call=True)
    assert cost.total_usd == (150_001 * rate_in + 2_000 * rate_out + 40_000 * rate_read + 10_000 * rate_write) / M
    assert cost.note == "long-context prices: 200,001 prompt tokens are over 200,000"
    at_threshold = compute_cost(Usage(150_000, 2_000, 40_000, 10_000), model, one_call=True)
    assert at_threshold.note is None and at_threshold.input_usd == 150_000 * rate_in / 2 / M  # the short-prompt rate
    if rate_1h is not None:
        hour = compute_cost(Usage(200_000, 0, 0, 1_000, cache_write_1h_tokens=1_000), model, one_call=True)
        assert hour.total_usd == (200_000 * rate_in + 1_000 * rate_1h) / M


def test_gemini_audio_input_costs_its_own_price_not_the_text_one():
    """Gemini 2.5 Flash bills audio input at $1.00 per 1M tokens (cached $0.10) against text's $0.30 (cached $0.03),
    Gemini 2.0 Flash $0.70 (cached $0.175) against $0.10 (ai.google.dev/gemini-api/docs/pricing); a batch halves
    them. Audio counts are parts of the input and cache-read counts."""
    usage = Usage(10_000, 1_000, cache_read_tokens=4_000, audio_input_tokens=6_000, audio_cache_read_tokens=3_000)
    flash = compute_cost(usage, "gemini-2.5-flash", one_call=True)
    assert flash.input_usd == (4_000 * Decimal("0.30") + 6_000 * Decimal("1.00")) / M
    assert flash.cache_read_usd == (1_000 * Decimal("0.03") + 3_000 * Decimal("0.10")) / M
    assert flash.total_usd == (Decimal(1_200) + 6_000 + 2_500 + 30 + 300) / M  # $0.01003
    batch = compute_cost(usage, "gemini-2.5-flash", mode="batch", one_call=True)
    assert batch.input_usd == (4_000 * Decimal("0.15") + 6_000 * Decimal("0.50")) / M
    assert batch.cache_read_usd == flash.cache_read_usd  # Google bills a batch's cached input at no discount
    assert compute_cost(Usage(1_000_000, 0, audio_input_tokens=1_000_000), "gemini-2.0-flash").input_usd == Decimal(
        "0.70"
    )


def test_audio_a_model_bills_as_text_is_priced_as_text_and_one_it_bills_apart_is_never_priced_at_text():
    """Gemini 2.5 Pro's page prices audio input as text, so its audio costs the input price; a model that bills audio
    apart (2.5 Flash) at a tier the catalog has no price for at all is refused, not priced at the text rate."""
    from tokenomy.errors import UsageError

    usage = Usage(10_000, 0, audio_input_tokens=10_000)
    assert compute_cost(usage, "gemini-2.5-pro").input_usd == 10_000 * Decimal("1.25") / M
    with pytest.raises(UsageError, match=r"has no flex service-tier price"):
        compute_cost(usage, "gemini-2.5-flash", service_tier="flex")
    with pytest.raises(UsageError, match=r"audio_input_tokens=20000.*a part of them"):
        compute_cost(Usage(10_000, 0, audio_input_tokens=20_000), "gemini-2.5-flash")


def test_audio_at_a_service_tier_is_priced_at_the_tiers_ratio_and_its_source_says_so(tmp_path):
    """Gemini 3 Flash bills audio apart ($1.00 per 1M against $0.50 for text) and its flex and priority tiers are
    published as text prices only (half, and 1.8x, the standard): an audio call at either was recorded unpriced. Its
    audio is now priced at the tier's own ratio to the standard text price, and the cost's source says it is derived;
    a call without audio is priced at the tier's prices and source alone, as before."""
    from tokenomy.pricing.catalog import PriceCatalog

    path = tmp_path / "prices.yaml"
    path.write_text(
        'provider: google\nsource: s\nas_of: "2026-12-05"\nmodels:\n  gemini-3-flash-preview:\n    regions:\n'
        '      global: {input: "0.50", output: "3.00", cache_read: "0.05", input_audio: "1.00", '
        'cache_read_audio: "0.10", service_tiers: {flex: {input: "0.25", output: "1.50", cache_read: "0.025", '
        'source: flex-page, as_of: "2026-12-05"}, priority: {input: "0.90", output: "5.40", cache_read: "0.09", '
        'source: priority-page, as_of: "2026-12-05"}}}\n'
    )
    catalog = PriceCatalog.builtin().with_overrides(path)
    usage = Usage(10_000, 100, cache_read_tokens=2_000, audio_input_tokens=4_000, audio_cache_read_tokens=1_000)
    flex = compute_cost(usage, "gemini-3-flash-preview", catalog=catalog, service_tier="flex")
    assert flex.input_usd == (6_000 * Decimal("0.25") + 4_000 * Decimal("0.50")) / M
    assert flex.cache_read_usd == (1_000 * Decimal("0.025") + 1_000 * Decimal("0.05")) / M
    assert flex.source.startswith("flex-page; audio input at $0.5 per 1M, derived: the standard audio price at")
    priority = compute_cost(usage, "gemini-3-flash-preview", catalog=catalog, service_tier="priority")
    assert priority.input_usd == (6_000 * Decimal("0.90") + 4_000 * Decimal("1.80")) / M
    text = compute_cost(Usage(10_000, 100), "gemini-3-flash-preview", catalog=catalog, service_tier="flex")
    assert text.input_usd == 10_000 * Decimal("0.25") / M and text.source == "flex-page"


def test_audio_output_at_a_service_tier_is_refused_not_priced_at_the_text_rate(tmp_path):
    """A tier publishes text prices only; its audio input is derived from the tier's ratio, but audio output (OpenAI's
    gpt-audio writes it at $64 against $10 for text) has no derivation, so such a call is refused, naming the tier."""
    from tokenomy.errors import UsageError
    from tokenomy.pricing.catalog import PriceCatalog

    path = tmp_path / "prices.yaml"
    path.write_text(
        'provider: openai\nsource: s\nas_of: "2026-12-05"\nmodels:\n  gpt-audio:\n    regions:\n'
        '      global: {input: "2.50", output: "10.00", input_audio: "32.00", output_audio: "64.00", '
        'service_tiers: {flex: {input: "1.25", output: "5.00", source: flex-page, as_of: "2026-12-05"}}}\n'
    )
    catalog = PriceCatalog.builtin().with_overrides(path)
    spoken = Usage(1_000, 500, audio_input_tokens=800, audio_output_tokens=400)
    with pytest.raises(UsageError, match=r"no audio price for audio output at the flex tier, but usage reports 1200"):
        compute_cost(spoken, "gpt-audio", catalog=catalog, service_tier="flex")
    heard = compute_cost(Usage(1_000, 500, audio_input_tokens=800), "gpt-audio", catalog=catalog, service_tier="flex")
    assert heard.input_usd == (200 * Decimal("1.25") + 800 * Decimal("16.00")) / M
