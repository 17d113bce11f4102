"""Prices you can trust today: current models in the regions they are sold, every identifier form, batch only
where published, 1-hour cache writes, the curated catalog checked against genai-prices, freshness."""

from __future__ import annotations

import json
import logging
import re
from dataclasses import replace
from datetime import date
from decimal import Decimal
from pathlib import Path

import pytest
from typer.testing import CliRunner

from tokenomy.chat_response import Usage
from tokenomy.cli import app
from tokenomy.errors import ConfigError, UnknownModelError, UsageError, cost_options_taken
from tokenomy.pricing import freshness, library
from tokenomy.pricing.catalog import PriceCatalog
from tokenomy.pricing.cost import compute_cost

M = 1_000_000
US = ["us-east-1", "us-east-2", "us-west-2"]
GEO = US + ["eu-central-1", "eu-west-1", "eu-west-3", "ap-northeast-1", "ap-southeast-2", "ap-south-1", "us-gov-west-1"]
# (model id, regions it is sold in, published input price per 1M tokens in those regions)
CURRENT = [
    ("anthropic.claude-sonnet-4-5-20250929-v1:0", GEO, "3.30"),
    ("anthropic.claude-sonnet-4-6", GEO, "3.30"),
    ("anthropic.claude-haiku-4-5-20251001-v1:0", GEO + ["ap-southeast-4", "ap-northeast-3"], "1.10"),
    ("anthropic.claude-opus-4-5-20251101-v1:0", GEO, "5.50"),
    ("anthropic.claude-opus-4-6-v1", GEO, "5.50"),
    ("anthropic.claude-opus-4-1-20250805-v1:0", GEO, "15.00"),
    ("anthropic.claude-sonnet-4-20250514-v1:0", GEO, "3.00"),
    ("global.anthropic.claude-sonnet-4-5-20250929-v1:0", ["global"], "3.00"),
    ("global.anthropic.claude-haiku-4-5-20251001-v1:0", ["global"], "1.00"),
    ("global.anthropic.claude-opus-4-5-20251101-v1:0", ["global"], "5.00"),
    ("anthropic.claude-3-haiku-20240307-v1:0", ["us-east-1", "ap-southeast-2", "eu-west-3", "ca-central-1"], "0.25"),
    ("amazon.nova-premier-v1:0", US, "2.50"),
    ("amazon.nova-pro-v1:0", ["us-east-1", "us-west-2"], "0.80"),
    ("amazon.nova-lite-v1:0", ["us-east-1", "us-west-2"], "0.06"),
    ("amazon.nova-micro-v1:0", ["us-east-1", "us-west-2"], "0.035"),
    ("meta.llama3-3-70b-instruct-v1:0", US, "0.72"),
    ("meta.llama3-2-1b-instruct-v1:0", US, "0.10"),
    ("meta.llama3-2-90b-instruct-v1:0", US, "0.72"),
    ("meta.llama4-scout-17b-instruct-v1:0", US, "0.17"),
    ("meta.llama4-maverick-17b-instruct-v1:0", US, "0.24"),
    ("mistral.pixtral-large-2502-v1:0", US, "2.00"),
    ("deepseek.r1-v1:0", US, "1.35"),
    ("qwen.qwen3-32b-v1:0", ["us-west-2"], "0.15"),
    ("openai.gpt-oss-120b-1:0", ["us-west-2"], "0.15"),
    ("claude-opus-4-5-20251101", ["global"], "5.00"),
    ("claude-sonnet-4-6", ["global"], "3.00"),
    ("claude-haiku-4-5-20251001", ["global"], "1.00"),
    ("o3", ["global"], "2.00"),
    ("o4-mini", ["global"], "1.10"),
    ("gpt-4.1", ["global"], "2.00"),
    ("gpt-5", ["global"], "1.25"),
    ("gpt-5.1", ["global"], "1.25"),
    ("gpt-5-mini", ["global"], "0.25"),
    ("gemini-2.5-pro", ["global"], "1.25"),
    ("gemini-2.5-flash", ["global"], "0.30"),
    ("gemini-2.0-flash", ["global"], "0.10"),
]
PAIRS = [(model, region, price) for model, regions, price in CURRENT for region in regions]


def test_the_checked_list_is_long_enough():
    assert len({m for m, _, _ in PAIRS}) >= 36 and len(PAIRS) >= 60, len(PAIRS)


@pytest.mark.parametrize("model, region, price", PAIRS)
def test_current_models_are_priced_where_they_are_sold(model, region, price):
    entry = PriceCatalog.builtin().lookup(model, None if region == "global" else region)
    assert entry.input == Decimal(price) and entry.output is not None
    assert entry.source.startswith("https://") and date.fromisoformat(entry.as_of) >= date(2025, 10, 1)
    assert entry.region in (region, "global")


def test_prices_json_answers_for_a_current_model_in_its_region():
    result = CliRunner().invoke(
        app, ["prices", "au.anthropic.claude-haiku-4-5-20251001-v1:0", "--region", "ap-southeast-2", "--json"]
    )
    data = json.loads(result.stdout)
    assert data["region"] == "ap-southeast-2" and data["input"] == "1.1000" and data["cache_write_1h"] == "2.2000"
    assert data["source"] and data["as_of"] and data["priced_by"] == "tokenomy-catalog"


def test_the_playbook_example_on_demand_and_batch_in_sydney():
    """10,000 requests x 500 input + 200 output tokens on Claude Sonnet 4.5 in ap-southeast-2."""
    usage = Usage(10_000 * 500, 10_000 * 200)
    on_demand = compute_cost(usage, "au.anthropic.claude-sonnet-4-5-20250929-v1:0", "ap-southeast-2")
    batch = compute_cost(usage, "anthropic.claude-sonnet-4-5-20250929-v1:0", "ap-southeast-2", "batch")
    assert on_demand.total_usd == Decimal("5") * Decimal("3.30") + Decimal("2") * Decimal("16.50")  # $49.50
    assert batch.total_usd == on_demand.total_usd / 2  # AWS's batch price for Sonnet 4.5: half of on-demand
    assert on_demand.as_of and batch.as_of


@pytest.mark.parametrize(
    "model",
    [
        "anthropic.claude-3-5-haiku-20241022-v1:0",
        "anthropic.claude-3-7-sonnet-20250219-v1:0",
        "anthropic.claude-sonnet-4-20250514-v1:0",
        "anthropic.claude-opus-4-20250514-v1:0",
    ],
)
def test_batch_is_refused_with_the_reason_where_aws_lists_none(model):
    with pytest.raises(UsageError, match="no batch price: AWS's Bedrock pricing table lists batch inference as N/A"):
        compute_cost(Usage(M, M), model, "us-east-1", "batch")


def test_one_hour_cache_writes():
    cost = compute_cost(Usage(0, 0, 0, M), "claude-sonnet-4-5-20250929", cache_ttl="1h")
    assert cost.cache_write_usd == Decimal("6.00")  # 2x input on Anthropic
    assert compute_cost(Usage(0, 0, 0, M), "claude-sonnet-4-5-20250929").cache_write_usd == Decimal("3.75")
    bedrock = compute_cost(Usage(0, 0, 0, M), "us.anthropic.claude-haiku-4-5-20251001-v1:0", cache_ttl="1h")
    assert bedrock.cache_write_usd == Decimal("2.20")
    with pytest.raises(UsageError, match="no published 1-hour cache-write price") as refused:
        compute_cost(Usage(0, 0, 0, M), "amazon.nova-pro-v1:0", cache_ttl="1h")
    assert "cache_ttl='5m'" in str(refused.value) and "--cache-ttl" not in str(refused.value)  # cost's option
    with cost_options_taken(), pytest.raises(UsageError, match="price cache writes with --cache-ttl 5m or add"):
        compute_cost(Usage(0, 0, 0, M), "amazon.nova-pro-v1:0", cache_ttl="1h")
    out = CliRunner().invoke(
        app, ["cost", "--model", "claude-opus-4-5-20251101", "--cache-write", "1000000", "--cache-ttl", "1h", "--json"]
    )
    assert json.loads(out.stdout)["cache_write_usd"] == "10.000000"


def test_a_calls_own_split_of_cache_writes_prices_each_part_at_its_lifetimes_price():
    """Usage.cache_write_1h_tokens (a call's 1-hour writes, from Anthropic's cache_creation or Bedrock's
    cacheDetails) at the 1-hour price, the rest of the writes at the 5-minute one, on demand and in batch."""
    split = Usage(0, 0, 0, 3 * M, cache_write_1h_tokens=M)
    assert compute_cost(split, "claude-sonnet-4-5-20250929").cache_write_usd == 2 * Decimal("3.75") + Decimal("6.00")
    assert (
        compute_cost(split, "claude-sonnet-4-5-20250929", mode="batch").cache_write_usd
        == (2 * Decimal("3.75") + Decimal("6.00")) / 2
    )  # Anthropic's batch discount, on both
    assert (split + split).cache_write_1h_tokens == 2 * M
    with pytest.raises(UsageError, match="no published 1-hour cache-write price but usage reports 1000000"):
        compute_cost(split, "anthropic.claude-sonnet-4-20250514-v1:0", "us-east-1")
    with pytest.raises(UsageError, match="cache_write_1h_tokens=1000000 is more than cache_write_tokens=0"):
        compute_cost(Usage(0, 0, 0, 0, cache_write_1h_tokens=M), "claude-sonnet-4-5-20250929")


@pytest.mark.parametrize(
    "asked, model, region",
    [
        ("us.anthropic.claude-sonnet-4-5-20250929-v1:0", "anthropic.claude-sonnet-4-5-20250929-v1:0", "us-east-1"),
        ("eu.anthropic.claude-haiku-4-5-20251001-v1:0", "anthropic.claude-haiku-4-5-20251001-v1:0", "eu-central-1"),
        ("apac.anthropic.claude-sonnet-4-20250514-v1:0", "anthropic.claude-sonnet-4-20250514-v1:0", "ap-northeast-1"),
        ("jp.anthropic.claude-haiku-4-5-20251001-v1:0", "anthropic.claude-haiku-4-5-20251001-v1:0", "ap-northeast-1"),
        ("au.anthropic.claude-sonnet-4-6", "anthropic.claude-sonnet-4-6", "ap-southeast-2"),
        # Anthropic's aliases of the first Claude 4 snapshots end in -0 (claude-opus-4-0 is claude-opus-4-20250514)
        ("claude-opus-4-0", "claude-opus-4-20250514", "global"),
        ("claude-sonnet-4-0", "claude-sonnet-4-20250514", "global"),
        ("claude-opus-4-1", "claude-opus-4-1-20250805", "global"),
        (
            "us-gov.anthropic.claude-sonnet-4-5-20250929-v1:0",
            "anthropic.claude-sonnet-4-5-20250929-v1:0",
            "us-gov-west-1",
        ),
        ("global.anthropic.claude-opus-4-5-20251101-v1:0", "global.anthropic.claude-opus-4-5-20251101-v1:0", "global"),
        (
            "arn:aws:bedrock:eu-west-1::foundation-model/anthropic.claude-sonnet-4-5-20250929-v1:0",
            "anthropic.claude-sonnet-4-5-20250929-v1:0",
            "eu-west-1",
        ),
        (
            "arn:aws:bedrock:ap-southeast-2:123456789012:inference-profile/au.anthropic.claude-haiku-4-5-20251001-v1:0",
            "anthropic.claude-haiku-4-5-20251001-v1:0",
            "ap-southeast-2",
        ),
        ("anthropic.claude-opus-4-6-v1:0", "anthropic.claude-opus-4-6-v1", "us-east-1"),
        ("anthropic.claude-3-haiku-20240307-v1:0:200k", "anthropic.claude-3-haiku-20240307-v1:0", "us-east-1"),
        ("claude-sonnet-4-5", "claude-sonnet-4-5-20250929", "global"),
        ("claude-3-5-haiku-latest", "claude-3-5-haiku-20241022", "global"),
        ("anthropic/claude-opus-4-5-20251101", "claude-opus-4-5-20251101", "global"),
        ("gpt-4o-2024-08-06", "gpt-4o", "global"),
        ("openai/gpt-4.1-mini", "gpt-4.1-mini", "global"),
        ("azure/gpt-4o-mini", "gpt-4o-mini", "global"),
        ("models/gemini-2.5-flash", "gemini-2.5-flash", "global"),
        # LiteLLM's Bedrock routes keep the profile: `global.` is the global price, not the regional one (+10%).
        (
            "bedrock/us.anthropic.claude-sonnet-4-5-20250929-v1:0",
            "anthropic.claude-sonnet-4-5-20250929-v1:0",
            "us-east-1",
        ),
        (
            "bedrock/converse/eu.anthropic.claude-haiku-4-5-20251001-v1:0",
            "anthropic.claude-haiku-4-5-20251001-v1:0",
            "eu-central-1",
        ),
        (
            "bedrock_converse/global.anthropic.claude-opus-4-5-20251101-v1:0",
            "global.anthropic.claude-opus-4-5-20251101-v1:0",
            "global",
        ),
    ],
)
def test_identifiers_resolve(asked, model, region):
    entry = PriceCatalog.builtin().lookup(asked)
    assert (entry.model, entry.region) == (model, region)
    assert entry.resolved_from in (asked, None) and entry.priced_by == "tokenomy-catalog"


def test_a_bedrock_route_prefix_reaches_the_library_with_its_profile():
    catalog = PriceCatalog([], use_fallback=True)  # nothing curated: the library prices both
    plain = catalog.lookup("global.anthropic.claude-opus-4-5-20251101-v1:0")
    routed = catalog.lookup("bedrock/global.anthropic.claude-opus-4-5-20251101-v1:0")
    assert (routed.input, routed.output, routed.family) == (plain.input, plain.output, plain.family)
    assert routed.resolved_from == "bedrock/global.anthropic.claude-opus-4-5-20251101-v1:0"


@pytest.mark.parametrize(
    "arn, says",
    [
        (
            "arn:aws:bedrock:us-east-1:123456789012:application-inference-profile/a1b2c3",
            "application inference profile",
        ),
        ("arn:aws:bedrock:us-east-1:123456789012:default-prompt-router/anthropic.claude:1", "prompt router"),
        ("arn:aws:bedrock:us-east-1:123456789012:provisioned-model/xyz", "model unit-hour"),
    ],
)
def test_arns_that_name_no_model_say_how_to_price_them(arn, says):
    with pytest.raises(UnknownModelError, match=f"{says}.*price_as"):
        PriceCatalog.builtin().lookup(arn)


def test_a_price_file_can_alias_an_application_profile(tmp_path):
    arn = "arn:aws:bedrock:us-east-1:123456789012:application-inference-profile/a1b2c3"
    prices = tmp_path / "prices.yaml"
    prices.write_text(
        f'provider: aws.bedrock\nsource: ours\nas_of: "2026-11-01"\nmodels: {{}}\n'
        f'aliases:\n  "{arn}": us.anthropic.claude-haiku-4-5-20251001-v1:0\n'
    )
    entry = PriceCatalog.builtin().with_overrides(prices).lookup(arn)
    assert entry.model == "anthropic.claude-haiku-4-5-20251001-v1:0" and entry.resolved_from == arn


def test_the_library_fallback_resolves_bedrock_ids_and_keeps_batch():
    catalog = PriceCatalog([], use_fallback=True)  # nothing curated: everything from genai-prices
    llama = catalog.lookup("us.meta.llama3-3-70b-instruct-v1:0")
    assert llama.priced_by == "genai-prices" and llama.input == Decimal("0.72") and llama.region == "us-east-1"
    opus = catalog.lookup("anthropic.claude-opus-4-5-20251101-v1:0", "eu-west-1")
    assert opus.input == Decimal("5.5") and opus.cache_write_1h == Decimal("11")  # the regional (+10%) figure
    assert catalog.lookup("global.anthropic.claude-opus-4-5-20251101-v1:0").input == Decimal("5")
    gpt = catalog.lookup("gpt-4.1-mini")  # the library has OpenAI batch prices: they are kept
    assert (gpt.batch_input, gpt.batch_output) == (Decimal("0.2"), Decimal("0.8"))
    with pytest.raises(UsageError, match="genai-prices lists no batch price"):
        compute_cost(Usage(1, 1), "us.meta.llama3-3-70b-instruct-v1:0", mode="batch", catalog=catalog)


PROVIDERS = {"aws.bedrock": "aws", "anthropic": "anthropic", "openai": "openai", "google": "google"}
FIELDS = (
    "input",
    "output",
    "cache_read",
    "cache_write",
    "cache_write_1h",
    "batch_input",
    "batch_output",
    "batch_cache_read",
    "web_search",
)


def test_curated_figures_match_the_library_or_say_why_not():
    """Every curated per-token figure the library also has must equal it, unless the entry carries an
    `overrides:` reason. The curated file cannot rot silently."""
    compared, unexplained = 0, []
    for entry in PriceCatalog.builtin().entries():
        if entry.provider not in PROVIDERS:
            continue
        figures = library.library_figures(PROVIDERS[entry.provider], entry.model)
        if figures is None:
            continue
        compared += 1
        for name in FIELDS:
            ours, theirs = getattr(entry, name), figures[name]
            if ours is not None and theirs is not None and ours != theirs and not entry.overrides:
                unexplained.append(f"{entry.model} {entry.region} {name}: {ours} vs genai-prices {theirs}")
        # A price the library has and the entry lacks is a difference too: Bedrock's Claude 3.5 Sonnet v2 had no
        # cache prices, so its cache reads were recorded at the input price (10x), while the entry was dated as
        # "figures as in genai-prices" by this comparison. Without a published batch cache-read price the engine
        # derives one (cache_read x batch_input / input): that derived figure is what is compared.
        for name in ("input", "output", "cache_read", "cache_write", "cache_write_1h", "batch_input", "batch_output"):
            if getattr(entry, name) is None and figures[name] is not None and not entry.overrides:
                unexplained.append(f"{entry.model} {entry.region} {name}: none vs genai-prices {figures[name]}")
        derived = entry.batch_cache_read
        if derived is None and entry.cache_read is not None and entry.batch_input is not None and entry.input:
            derived = entry.cache_read * entry.batch_input / entry.input
        theirs = figures["batch_cache_read"]
        if theirs is not None and derived != theirs and not entry.overrides:
            unexplained.append(f"{entry.model} {entry.region} batch cache read: {derived} vs genai-prices {theirs}")
    assert compared >= 200, compared
    assert not unexplained, "\n".join(unexplained)


def test_bedrock_claude_3_5_sonnet_v2_cache_tokens_cost_what_bedrock_bills():
    # Accounts from Bedrock's caching preview get cache reads and writes on v2: they were recorded as plain input.
    from tokenomy.pricing.cost import billable_usage

    v2 = "anthropic.claude-3-5-sonnet-20241022-v2:0"
    usage = Usage(1_000, 100, cache_read_tokens=10_000, cache_write_tokens=2_000)
    cost = compute_cost(billable_usage(usage, v2, "us-east-1"), v2, "us-east-1")
    # By hand: 1,000 x $3 + 100 x $15 + 10,000 x $0.30 + 2,000 x $3.75, per million tokens.
    assert cost.total_usd == Decimal("0.015")
    assert PriceCatalog.builtin().lookup(v2, "us-east-1").cache_max_checkpoints is None  # no cache points placed
    v1 = "anthropic.claude-3-5-sonnet-20240620-v1:0"  # no caching on Bedrock: reported cache tokens are input
    assert compute_cost(billable_usage(usage, v1, "us-east-1"), v1, "us-east-1").total_usd == Decimal("0.0405")


def test_the_comparison_catches_a_drifted_figure(tmp_path):
    drifted = tmp_path / "drift.yaml"
    drifted.write_text(
        'provider: openai\nsource: x\nas_of: "2026-11-01"\nmodels:\n  gpt-4.1:\n    regions:\n'
        '      global: {input: "2.10", output: "8.00"}\n'
    )
    entry = PriceCatalog.builtin().with_overrides(drifted).lookup("gpt-4.1")
    assert library.library_figures("openai", "gpt-4.1")["input"] != entry.input and not entry.overrides


def test_stale_entries_and_one_warning(caplog):
    catalog = PriceCatalog.builtin()
    stale = freshness.stale_entries(catalog.entries(), today=date(2026, 11, 29))
    assert any(e.model == "anthropic.claude-v2:1" for e in stale)  # as of 2025-10-15: genai-prices no longer lists it
    assert not any(e.model == "anthropic.claude-opus-4-5-20251101-v1:0" for e in stale)  # as of 2026-11-09
    # Confirmed by the library's data: dated by it. London's own price is the AWS page's alone, so it keeps that date.
    llama = {e.region: e for e in catalog.entries() if e.model == "meta.llama3-8b-instruct-v1:0"}
    assert llama["us-east-1"].as_of == "2026-11-09" and "genai-prices" in llama["us-east-1"].source
    assert llama["eu-west-2"] in stale and llama["eu-west-2"].as_of == "2025-10-15"
    freshness._warned.clear()
    with caplog.at_level(logging.WARNING, logger="tokenomy.pricing"):
        for _ in range(5):
            compute_cost(Usage(10, 10), "anthropic.claude-v2:1", "us-east-1")
    warnings = [r for r in caplog.records if "days old" in r.getMessage()]
    # A curated entry wins over genai-prices' data whatever `prices update` fetches: the hint says what does help.
    assert len(warnings) == 1 and "give current prices in a price file (TOKENOMY_PRICES" in warnings[0].getMessage()
    assert "refreshes genai-prices' data only" in warnings[0].getMessage()
    from_library = replace(llama["us-east-1"], priced_by="genai-prices")
    assert freshness.refresh_hint(from_library).startswith("run `tokenomy prices update`")
    out = CliRunner().invoke(app, ["prices", "--stale", "--json"])
    rows = json.loads(out.stdout)
    assert rows and all(row["age_days"] > freshness.STALE_DAYS for row in rows)
    # With a model named, --stale was ignored unsaid (the model's prices printed, exit 0).
    named = CliRunner().invoke(app, ["prices", "anthropic.claude-v2:1", "--stale"])
    assert "--stale lists the catalog's stale entries" in str(named.exception), named.output


def test_prices_update_from_a_file_saved_with_a_byte_order_mark(tmp_path, monkeypatch):
    # A data.json saved by a Windows editor starts with a UTF-8 byte-order mark: `prices update --from` refused it as
    # "not a JSON file (Unexpected UTF-8 BOM ...)". The mark is skipped, as errors.read_utf8 skips it for other files.
    monkeypatch.setenv("TOKENOMY_HOME", str(tmp_path / "home"))
    library.reset()
    payload = [
        {
            "id": "acme",
            "name": "Acme",
            "api_pattern": "https://api\\.acme\\.test",
            "pricing_urls": ["https://acme.test/pricing"],
            "model_match": {"starts_with": "acme-"},
            "models": [
                {
                    "id": "acme-chat-3",
                    "match": {"equals": "acme-chat-3"},
                    "prices": {"input_mtok": 0.5, "output_mtok": 2},
                }
            ],
        }
    ]
    data = tmp_path / "data.json"
    data.write_bytes(b"\xef\xbb\xbf" + json.dumps(payload).encode())
    try:
        result = CliRunner().invoke(app, ["prices", "update", "--from", str(data), "--json"])
        assert result.exit_code == 0, result.output
        assert json.loads(result.stdout)["models"] == 1
        assert PriceCatalog.builtin().lookup("acme-chat-3").input == Decimal("0.5")
        data.write_bytes(b"\xef\xbb\xbf[caf\xe9]")
        refused = CliRunner().invoke(app, ["prices", "update", "--from", str(data)])
        assert refused.exit_code != 0 and f"{data}: not UTF-8 text (byte 8)" in str(refused.exception)
    finally:
        library.reset()


def test_prices_update_from_a_file(tmp_path, monkeypatch):
    monkeypatch.setenv("TOKENOMY_HOME", str(tmp_path / "home"))
    library.reset()
    payload = [
        {
            "id": "acme",
            "name": "Acme",
            "api_pattern": "https://api\\.acme\\.test",
            "pricing_urls": ["https://acme.test/pricing"],
            "model_match": {"starts_with": "acme-"},
            "models": [
                {
                    "id": "acme-chat-2",
                    "match": {"equals": "acme-chat-2"},
                    "prices": {"input_mtok": 0.4, "output_mtok": 1.6},
                }
            ],
        }
    ]
    data = tmp_path / "data.json"
    data.write_text(json.dumps(payload))
    try:
        result = CliRunner().invoke(app, ["prices", "update", "--from", str(data), "--json"])
        assert result.exit_code == 0, result.output
        summary = json.loads(result.stdout)
        assert summary["models"] == 1 and Path(summary["path"]).is_relative_to(tmp_path / "home")
        entry = PriceCatalog.builtin().lookup("acme-chat-2")
        assert entry.priced_by == "genai-prices" and entry.input == Decimal("0.4")
        assert entry.as_of == summary["as_of"] and "acme.test/pricing" in entry.source
        bad = tmp_path / "bad.json"
        bad.write_text('{"not": "a provider list"}')
        refused = CliRunner().invoke(app, ["prices", "update", "--from", str(bad)])
        assert refused.exit_code != 0 and "genai-prices' data file" in str(refused.exception)
        with pytest.raises(ConfigError, match="file not found"):
            library.update_library(str(tmp_path / "missing.json"))
    finally:
        library.reset()


# -- service tiers (priority / flex) -----------------------------------------------------------------------------


def test_openai_flex_and_priority_are_priced_at_their_published_prices():
    usage = Usage(M, M, M, 0)
    flex = compute_cost(usage, "gpt-5", service_tier="flex")
    priority = compute_cost(usage, "gpt-5", service_tier="priority")
    standard = compute_cost(usage, "gpt-5")
    assert (flex.input_usd, flex.output_usd, flex.cache_read_usd) == (Decimal("0.625"), Decimal("5"), Decimal("0.0625"))
    assert (priority.input_usd, priority.output_usd) == (Decimal("2.50"), Decimal("20"))
    assert standard.total_usd == Decimal("1.25") + Decimal("10") + Decimal("0.125")
    assert flex.service_tier == "flex" and flex.as_of == "2026-10-12" and "flex / priority" in flex.source
    # o4-mini's flex cached input is published at $0.138, not half of $0.275: figures are read, not derived.
    assert compute_cost(Usage(0, 0, M), "o4-mini", service_tier="flex").cache_read_usd == Decimal("0.138")


def test_a_fast_mode_one_hour_cache_write_is_priced_at_the_tier_s_one_hour_price():
    """A fast-mode call that wrote to the 1-hour cache was refused a price ("the fast_mode tier publishes no 1-hour
    cache-write price"), so the gateway recorded it unpriced. Anthropic's fast-mode page says prompt caching's
    multipliers apply on top of fast mode's prices: the 1-hour write is 2x the fast input (Opus 5.5: $16, as in
    genai-prices' data), the rest of the writes at the 5-minute price, the reads at the tier's read price."""
    usage = Usage(
        input_tokens=M, output_tokens=M, cache_read_tokens=M, cache_write_tokens=3 * M, cache_write_1h_tokens=M
    )
    cost = compute_cost(usage, "claude-opus-5-5", service_tier="fast_mode")
    assert cost.service_tier == "fast_mode" and "fast-mode" in cost.source
    assert (cost.input_usd, cost.output_usd, cost.cache_read_usd) == (Decimal("8"), Decimal("40"), Decimal("0.40"))
    assert cost.cache_write_usd == 2 * Decimal("10.00") + Decimal("16.00")  # 2M at 5 minutes, 1M at an hour
    every_write_an_hour = compute_cost(
        Usage(0, 0, cache_write_tokens=M), "claude-opus-5", service_tier="fast_mode", cache_ttl="1h"
    )
    assert every_write_an_hour.cache_write_usd == Decimal("20.00")  # twice Opus 5's fast $10 input
    # A tier that publishes no 1-hour price still refuses such writes, naming the fix.
    with pytest.raises(
        UsageError, match="priority tier publishes no 1-hour cache-write price but usage reports 1000000"
    ):
        compute_cost(replace(usage, output_tokens=0), "gpt-4o", service_tier="priority")


@pytest.mark.parametrize(
    "model, tier, reason",
    [
        ("gpt-5-nano", "priority", "no priority service-tier price"),  # OpenAI publishes flex only
        ("gpt-4o", "flex", "no flex service-tier price"),  # priority only
        ("o1", "flex", "no flex service-tier price"),
        ("claude-sonnet-4-5-20250929", "priority", "no priority service-tier price"),
        ("openai.gpt-oss-120b-1:0", "flex", "AWS sells priority and flex tiers for this model"),
    ],
)
def test_a_tier_without_a_published_price_is_refused_with_the_reason(model, tier, reason):
    with pytest.raises(UsageError, match=reason):
        compute_cost(Usage(M, M), model, "us-west-2" if model.startswith("openai.") else None, service_tier=tier)


def test_tiers_are_on_demand_only_and_named_exactly():
    with pytest.raises(UsageError, match="on-demand calls only"):
        compute_cost(Usage(M, M), "gpt-5", mode="batch", service_tier="flex")
    with pytest.raises(UsageError, match="not one of standard, priority, flex"):
        compute_cost(Usage(M, M), "gpt-5", service_tier="turbo")


def test_cost_cli_service_tier():
    out = CliRunner().invoke(
        app,
        [
            "cost",
            "--model",
            "gpt-5.1",
            "--input",
            "1000000",
            "--output",
            "1000000",
            "--service-tier",
            "priority",
            "--json",
        ],
    )
    data = json.loads(out.stdout)
    assert data["total_usd"] == "22.500000" and data["service_tier"] == "priority" and data["as_of"] == "2026-10-12"
    refused = CliRunner().invoke(app, ["cost", "--model", "gpt-4.1", "--input", "10", "--service-tier", "flex"])
    assert refused.exit_code != 0 and "no flex service-tier price" in str(refused.exception)
    assert "Use --service-tier standard, or add the tier's published price with a price file (--prices" in str(
        refused.exception
    )
    table_out = CliRunner().invoke(app, ["prices", "gpt-5-mini", "--json"])
    tiers = json.loads(table_out.stdout)["service_tiers"]
    assert tiers["flex"]["input"] == "0.1250" and tiers["priority"]["output"] == "3.6000" and tiers["flex"]["as_of"]


def test_a_tier_in_a_price_file_needs_its_source_and_date(tmp_path):
    prices = tmp_path / "tiers.yaml"
    prices.write_text(
        'provider: aws.bedrock\nsource: x\nas_of: "2026-11-01"\nmodels:\n  openai.gpt-oss-20b-1:0:\n'
        '    regions:\n      us-west-2:\n        input: "0.07"\n        output: "0.30"\n'
        '        service_tiers: {flex: {input: "0.035", output: "0.15"}}\n'
    )
    with pytest.raises(ConfigError, match="source, as_of required"):
        PriceCatalog.builtin().with_overrides(prices)
    prices.write_text(
        prices.read_text().replace('output: "0.15"}', 'output: "0.15", source: "my contract", as_of: "2026-11-20"}')
    )
    catalog = PriceCatalog.builtin().with_overrides(prices)
    flex = compute_cost(Usage(M, M), "openai.gpt-oss-20b-1:0", "us-west-2", catalog=catalog, service_tier="flex")
    assert flex.total_usd == Decimal("0.185") and flex.source == "my contract"


def test_curated_tier_figures_match_the_library():
    compared = 0
    for entry in PriceCatalog.builtin().entries():
        if entry.provider != "openai" or not entry.service_tiers:
            continue
        figures = library.library_figures("openai", entry.model)
        if figures is None:  # a model newer than the installed library's data (GPT-6.2): nothing to compare with
            continue
        theirs = figures["service_tiers"]
        assert set(entry.service_tiers) == set(theirs), entry.model
        for name, tier in entry.service_tiers.items():
            assert (tier.input, tier.output, tier.cache_read) == (
                theirs[name].input,
                theirs[name].output,
                theirs[name].cache_read,
            ), (entry.model, name)
            compared += 1
    assert compared >= 15, compared


def test_the_library_fallback_keeps_service_tiers():
    catalog = PriceCatalog([], use_fallback=True)
    entry = catalog.lookup("gpt-5.2")
    assert entry.priced_by == "genai-prices" and entry.service_tiers["flex"].input == Decimal("0.875")
    assert compute_cost(Usage(M, 0), "gpt-5.2", catalog=catalog, service_tier="priority").total_usd == Decimal("3.5")


@pytest.mark.parametrize(
    "profile", ["eu.amazon.nova-micro-v1:0", "apac.amazon.nova-lite-v1:0", "us-gov.amazon.nova-pro-v1:0"]
)
def test_nova_profiles_outside_the_verified_regions_are_refused_not_guessed(profile):
    """AWS sells Nova through these profiles, but no regional figure could be verified: the answer names the
    priced regions and the fix instead of applying the US price."""
    with pytest.raises(
        UnknownModelError,
        match=r"no price for region .*priced regions: \['us-east-1', 'us-west-2'\]"
        r".*a price file \(TOKENOMY_PRICES=FILE\)",
    ):
        PriceCatalog.builtin().lookup(profile)


def test_an_alias_never_prices_a_snapshot_the_library_prices_differently():
    """Ids the curated catalog resolves only through its alias rules (dated snapshots, version suffixes, profiles)
    must get the figures genai-prices has for that exact id: gpt-4o-2024-05-13 ($5 / $15) was priced as gpt-4o
    ($2.50 / $10), global.anthropic.claude-opus-4-6-v1:0 at the in-region price ($5.50 / $27.50, not $5 / $25)."""
    from datetime import UTC, datetime

    from tokenomy.pricing.identifiers import parse_model_id

    catalog, snapshot, now = PriceCatalog.builtin(), library._snapshot()[0], datetime.now(UTC)
    resolved, wrong = 0, []
    for provider in snapshot.providers:
        if provider.id not in PROVIDERS.values():
            continue
        for model in provider.models:
            prices = model.get_prices(now)
            theirs = (library._flat(prices, "input_mtok"), library._flat(prices, "output_mtok"))
            ref = parse_model_id(model.id, strict=False)
            if None in theirs or ref.profiled in catalog.models() or ref.base in catalog.models():
                continue
            try:
                entry = catalog.lookup(model.id)
            except UnknownModelError:
                continue
            if entry.priced_by != "tokenomy-catalog":
                continue
            resolved += 1
            if (entry.input, entry.output) != theirs:
                wrong.append(f"{model.id} -> {entry.model} {entry.region}: {entry.input}/{entry.output} vs {theirs}")
    assert resolved >= 10, resolved
    assert not wrong, "\n".join(wrong)


def test_the_first_gpt_4o_snapshot_keeps_its_own_prices():
    usage = Usage(M, M)
    cost = compute_cost(usage, "gpt-4o-2024-05-13")
    assert cost.input_usd == Decimal("5.00") and cost.output_usd == Decimal("15.00")  # OpenAI: $5 / $15 per 1M
    assert compute_cost(usage, "gpt-4o-2024-05-13", mode="batch").total_usd == Decimal("10.00")  # $2.50 + $7.50
    assert compute_cost(usage, "gpt-4o-2024-08-06").total_usd == Decimal("12.50")  # the later snapshot: gpt-4o
    assert compute_cost(usage, "openai/gpt-4o-2024-05-13").total_usd == Decimal("20.00")
    with pytest.raises(UsageError, match="no prompt-cache prices"):  # the snapshot has no prompt caching
        compute_cost(Usage(0, 0, 1, 0), "gpt-4o-2024-05-13")


def test_a_global_profile_keeps_the_global_price_through_an_alias():
    one_million = Usage(M, 0)
    for asked, price in (
        ("global.anthropic.claude-opus-4-6-v1:0", "5.00"),
        ("global.anthropic.claude-sonnet-4-6-v1:0", "3.00"),
        ("us.anthropic.claude-opus-4-6-v1:0", "5.50"),
    ):  # a geographic profile: in-region price
        assert compute_cost(one_million, asked).total_usd == Decimal(price), asked


def test_curated_long_context_prices_match_the_library():
    """Where genai-prices bills prompts over a threshold at higher prices, the curated entry has them too (and the
    same figures): Gemini 2.5 Pro and Claude Sonnet 4.5 were priced at their short-prompt rates at any size, and a
    long Sonnet 4.5 call with 1-hour cache writes could not be priced at all (recorded at $0, "unpriced")."""
    compared, wrong = 0, []
    for entry in PriceCatalog.builtin().entries():
        if entry.provider not in PROVIDERS or entry.overrides:
            continue
        figures = library.library_figures(PROVIDERS[entry.provider], entry.model)
        theirs = figures and figures["long_context"]
        if not theirs:
            continue
        compared += 1
        ours = entry.long_context
        if ours is None:
            wrong.append(f"{entry.model} {entry.region}: no long_context; genai-prices: {theirs}")
            continue
        for name in ("above_tokens", "input", "output", "cache_read", "cache_write", "cache_write_1h"):
            if getattr(theirs, name) is not None and getattr(ours, name) != getattr(theirs, name):
                wrong.append(
                    f"{entry.model} {entry.region} long_context.{name}: {getattr(ours, name)} vs "
                    f"{getattr(theirs, name)}"
                )
    assert compared >= 2 and not wrong, "\n".join(wrong)


@pytest.mark.parametrize(
    "model, short, long",
    [
        # (input, output, cache read) per 1M tokens up to 200k prompt tokens, then over
        ("gemini-2.5-pro", ("1.25", "10.00", "0.125"), ("2.50", "15.00", "0.25")),
        ("claude-sonnet-4-5-20250929", ("3.00", "15.00", "0.30"), ("6.00", "22.50", "0.60")),
    ],
)
def test_a_prompt_over_200k_tokens_is_billed_whole_at_the_long_context_price(model, short, long):
    def expected(tokens_in, tokens_cached, tokens_out, rates):
        rate_in, rate_out, rate_cached = (Decimal(r) for r in rates)
        return (tokens_in * rate_in + tokens_cached * rate_cached + tokens_out * rate_out) / M

    at_limit = compute_cost(Usage(150_000, 1_000, 50_000), model, one_call=True)  # 200,000 prompt tokens: not over
    assert at_limit.total_usd == expected(150_000, 50_000, 1_000, short) and at_limit.note is None
    over = compute_cost(Usage(150_001, 1_000, 50_000), model, one_call=True)  # 200,001: all at the long price
    assert over.total_usd == expected(150_001, 50_000, 1_000, long)
    assert over.note == "long-context prices: 200,001 prompt tokens are over 200,000" and over.as_of == "2026-11-09"
    batch = compute_cost(Usage(200_001, 1_000), model, mode="batch", one_call=True)  # batch halves it too
    assert batch.total_usd == expected(200_001, 0, 1_000, long) / 2
    # Usage summed over many calls says nothing about one prompt's size: the standard rates.
    assert compute_cost(Usage(150_001, 1_000, 50_000), model).total_usd == expected(150_001, 50_000, 1_000, short)


def test_long_context_refuses_what_it_has_no_price_for(tmp_path):
    prices = tmp_path / "prices.yaml"  # a model publishing no 1-hour write price for long prompts
    prices.write_text(
        'provider: anthropic\nsource: x\nas_of: "2026-11-01"\nmodels:\n  m:\n    long_context: '
        '{above_tokens: 200000, input: "6", output: "22.5", cache_write: "7.5", source: x, '
        'as_of: "2026-11-01"}\n    regions:\n      global: {input: "3", output: "15", cache_read: "0.3", '
        'cache_write: "3.75", cache_write_1h: "6"}\n'
    )
    catalog = PriceCatalog.builtin().with_overrides(prices)
    with pytest.raises(UsageError, match="no 1-hour cache-write price for prompts over 200,000 tokens"):
        compute_cost(Usage(1_000, 0, 0, 250_000), "m", cache_ttl="1h", one_call=True, catalog=catalog)
    library_only = PriceCatalog([], use_fallback=True).lookup("gemini-1.5-pro")  # genai-prices: over 128k
    assert library_only.long_context is not None and library_only.long_context.above_tokens == 128_000


def test_a_long_sonnet_4_5_call_with_1_hour_writes_is_priced_at_the_long_context_1_hour_price():
    # Anthropic bills a prompt over 200k tokens at $6 input, $22.50 output and $12 for a 1-hour cache write (2x the
    # long-context input price); without that figure such a call was refused a price and recorded at $0.
    cost = compute_cost(Usage(1_000, 2_000, 0, 250_000), "claude-sonnet-4-5-20250929", cache_ttl="1h", one_call=True)
    assert cost.total_usd == (1_000 * Decimal("6") + 2_000 * Decimal("22.50") + 250_000 * Decimal("12")) / M


def test_a_long_context_block_in_a_price_file_is_checked(tmp_path):
    bad = tmp_path / "bad.yaml"
    bad.write_text(
        'provider: google\nsource: x\nas_of: "2026-11-01"\nmodels:\n  m:\n    long_context: '
        '{above_tokens: 200000, input: "2"}\n    regions:\n      global: {input: "1", output: "2"}\n'
    )
    with pytest.raises(ConfigError, match=r"models\.m\.regions\.global\.long_context: output, source, as_of required"):
        PriceCatalog.builtin().with_overrides(bad)


def test_a_price_file_cannot_price_a_model_at_zero_by_mistake(tmp_path):
    """Prices written beside `regions:` were dropped and the region's entry (which replaces the built-in one) had
    none: Sonnet 4.5 in eu-west-1 cost $0.000000 per million tokens. An entry missing a price priced it at $0."""
    beside = tmp_path / "beside.yaml"
    beside.write_text(
        'provider: aws.bedrock\nsource: https://example.com/quote\nas_of: "2026-11-01"\nmodels:\n'
        '  anthropic.claude-sonnet-4-5-20250929-v1:0:\n    input: "2.90"\n    output: "14.50"\n'
        "    regions:\n      eu-west-1: {}\n"
    )
    with pytest.raises(
        ConfigError,
        match=r"models\.anthropic\.claude-sonnet-4-5-20250929-v1:0: unknown field\(s\) "
        r"\['input', 'output'\]; prices go in a region block",
    ):
        PriceCatalog.builtin().with_overrides(beside)
    half = tmp_path / "half.yaml"
    half.write_text(
        'provider: openai\nsource: https://example.com/quote\nas_of: "2026-11-01"\nmodels:\n'
        '  my-model:\n    regions:\n      global: {input: "1.00", provisioned_hourly: {1m: "10"}}\n'
    )
    catalog = PriceCatalog.builtin().with_overrides(half)
    with pytest.raises(UsageError, match="model 'my-model' in global has no output price"):
        compute_cost(Usage(M, M), "my-model", catalog=catalog)
    assert compute_cost(Usage(M, M), "my-model", mode="provisioned", catalog=catalog).total_usd == 0  # per unit-hour


def test_a_cached_token_in_a_batch_costs_what_the_provider_publishes():
    """Every batch cache read was half the cached-input price. genai-prices' batch prices say otherwise for OpenAI's
    GPT-4o/4.1/o-series and Gemini 2.5 (no further discount), and agree for GPT-5 and Claude."""
    curated, derived = 0, []
    for entry in PriceCatalog.builtin().entries():
        if entry.provider not in PROVIDERS or not entry.has_batch or entry.cache_read is None:
            continue
        figures = library.library_figures(PROVIDERS[entry.provider], entry.model)
        if figures is None or figures["batch_cache_read"] is None:
            continue
        curated += 1
        charged = compute_cost(Usage(0, 0, M), entry.model, entry.region, "batch").cache_read_usd
        if charged != figures["batch_cache_read"]:
            derived.append(f"{entry.model} {entry.region}: {charged} vs genai-prices {figures['batch_cache_read']}")
    assert curated >= 20 and not derived, "\n".join(derived)
    # By hand, per 1M cached tokens in a batch: gpt-4.1 $0.50 (its cached-input price; half of it was charged),
    # gemini-2.5-flash $0.03, gpt-5 $0.0625 (half of $0.125), Claude Sonnet 4.5 $0.15 (half of $0.30).
    for model, price in (
        ("gpt-4.1", "0.50"),
        ("gemini-2.5-flash", "0.03"),
        ("gpt-5", "0.0625"),
        ("claude-sonnet-4-5-20250929", "0.15"),
    ):
        assert compute_cost(Usage(0, 0, M), model, mode="batch").cache_read_usd == Decimal(price), model
    # Over 200k prompt tokens Gemini 2.5 Pro's batch cache read is its long-context cached price, $0.25 (not halved).
    long = compute_cost(Usage(100_000, 0, 150_000), "gemini-2.5-pro", mode="batch", one_call=True)
    assert long.cache_read_usd == 150_000 * Decimal("0.25") / M and long.input_usd == 100_000 * Decimal("1.25") / M


def test_prices_flags_a_stale_entry_where_it_shows_its_date(monkeypatch):
    # `prices MODEL` and the list showed a 2025 as_of like any other date: only `prices --stale` said it was old.
    from datetime import UTC, datetime

    class Today(datetime):
        @classmethod
        def now(cls, tz=None):
            return datetime(2026, 12, 2, 12, tzinfo=UTC)

    monkeypatch.setattr(freshness, "datetime", Today)
    from tokenomy.commands import _output

    # The console's width is read from COLUMNS once, at import (an xdist worker has 80): set it, so no line wraps.
    monkeypatch.setattr(_output.console, "width", 250)
    runner = CliRunner()
    shown = runner.invoke(app, ["prices", "anthropic.claude-v2:1", "--region", "us-east-1"], env={"COLUMNS": "250"})
    assert (
        shown.exit_code == 0
        and "│ stale " in shown.stdout
        and "413 days old: give current prices in a price file (--prices FILE" in shown.stdout
    )
    current = runner.invoke(
        app, ["prices", "anthropic.claude-opus-4-5-20251101-v1:0", "--region", "us-east-1"], env={"COLUMNS": "250"}
    )
    assert current.exit_code == 0 and "stale" not in current.stdout
    listed = runner.invoke(app, ["prices", "--region", "eu-west-2", "--wide"], env={"COLUMNS": "250"}).stdout
    # a model cell is the id, then its lifecycle where it has one: "... (retired 2026-09-10)"
    lines = {line.split("│")[2].strip().partition(" (")[0]: line for line in listed.splitlines() if line.count("│") > 3}
    assert "2025-10-15 (stale)" in lines["meta.llama3-8b-instruct-v1:0"]
    assert "(stale)" not in lines["anthropic.claude-3-haiku-20240307-v1:0"]


@pytest.mark.parametrize(
    "model, tier, rates",
    [
        # (input, cache read, cache write, output) per 1M tokens over 272k input tokens at the tier: OpenAI's long-context
        # rates (2x input and cache, 1.5x output) at the tier's multiple (flex half, priority twice), as genai-prices has.
        ("gpt-6.1-sol", "priority", ("8", "0.40", "10", "30")),
        ("gpt-6.1-sol", "flex", ("2", "0.10", "2.50", "7.50")),
        ("gpt-6.2-astra", "priority", ("32", "1.60", "40", "120")),
        ("gpt-6.2-sol", "ultrafast", ("12", "0.60", "15", "45")),
        ("gpt-5.5", "flex", ("5", "0.50", None, "22.50")),  # priced by genai-prices
    ],
)
def test_a_prompt_over_272k_tokens_at_a_service_tier_is_billed_at_the_tiers_long_context_prices(model, tier, rates):
    # Such a call was refused a price ("the priority tier publishes no price for prompts over 272,000 tokens"), so the
    # gateway recorded it at $0, unpriced, though the tier's long-context prices are published.
    rin, rcr, rcw, rout = (Decimal(r) if r else None for r in rates)
    usage = Usage(250_000, 3_000, cache_read_tokens=30_000, cache_write_tokens=10_000 if rcw else 0)
    cost = compute_cost(usage, model, service_tier=tier, one_call=True, at=date(2026, 12, 5))
    assert cost.total_usd == (250_000 * rin + 30_000 * rcr + (10_000 * rcw if rcw else 0) + 3_000 * rout) / M
    assert cost.service_tier == tier and "over 272,000" in cost.note
    # At the threshold the tier's own prices apply, as before.
    assert compute_cost(Usage(272_000, 0), model, service_tier=tier, one_call=True).input_usd == 272_000 * rin / 2 / M
    # A tier with no published long-context price is still refused, not priced at its short-prompt rates:
    # genai-prices bills gpt-5.4's priority tier flat, beside its standard tier's 272k threshold.
    with pytest.raises(UsageError, match="the priority tier publishes no price for prompts over 272,000 tokens"):
        compute_cost(Usage(300_000, 0), "gpt-5.4", service_tier="priority", one_call=True)


@pytest.mark.parametrize(
    ("usage", "ttl", "model", "tier", "elsewhere", "in_cost"),
    [
        (
            Usage(10, 0),
            "5m",
            "gpt-4.1",
            "flex",
            "Add the tier's published price with a price file (TOKENOMY_PRICES=FILE)",
            "Use --service-tier standard, or add the tier's published price with",
        ),
        (
            Usage(300_000, 0),
            "5m",
            "gpt-5.4",
            "priority",
            "price it with a price file (TOKENOMY_PRICES=FILE)",
            "price it with --service-tier standard or a price file",
        ),
        (
            Usage(10, 0, cache_write_tokens=5),
            "1h",
            "gpt-5.1",
            "priority",
            "add the tier's cache_write_1h with a price file (TOKENOMY_PRICES=FILE)",
            "use --cache-ttl 5m",
        ),
    ],
)
def test_a_tier_price_it_cannot_give_names_the_cost_commands_options_only_where_cost_runs(
    usage, ttl, model, tier, elsewhere, in_cost
):
    # Every caller was told "Use --service-tier standard" (or "--cache-ttl 5m"), options only `cost` takes: the
    # gateway's and the library's recorder logged it for a call its provider served at that tier.
    with pytest.raises(UsageError) as refused:
        compute_cost(usage, model, service_tier=tier, one_call=True, cache_ttl=ttl)
    assert elsewhere in str(refused.value) and "--service-tier" not in str(refused.value), refused.value
    assert "--cache-ttl" not in str(refused.value)
    with cost_options_taken(), pytest.raises(UsageError, match=re.escape(in_cost)):
        compute_cost(usage, model, service_tier=tier, one_call=True, cache_ttl=ttl)


def test_curated_tier_long_context_prices_match_the_library():
    compared, wrong = 0, []
    for entry in PriceCatalog.builtin().entries():
        if entry.provider not in PROVIDERS or not entry.service_tiers:
            continue
        figures = library.library_figures(PROVIDERS[entry.provider], entry.model)
        for name, tier in (figures or {}).get("service_tiers", {}).items():
            ours = entry.service_tiers.get(name)
            for mine, theirs in zip((ours, *ours.changes) if ours else (), (tier, *tier.changes), strict=False):
                if theirs.long_context is None:
                    continue
                compared += 1
                for field in ("above_tokens", "input", "output", "cache_read", "cache_write"):
                    want = getattr(theirs.long_context, field)
                    got = getattr(mine.long_context, field) if mine.long_context else None
                    if want is not None and got != want:
                        when = mine.starts or "now"
                        wrong.append(f"{entry.model} {name} {when} long_context.{field}: {got} vs {want}")
    assert compared >= 10 and not wrong, "\n".join(wrong)


@pytest.mark.parametrize(
    ("profile", "base", "source_region"),
    [
        ("eu.amazon.nova-pro-v1:0", "amazon.nova-pro-v1:0", "eu-central-1"),
        ("apac.amazon.nova-pro-v1:0", "amazon.nova-pro-v1:0", "ap-northeast-1"),
        (
            "apac.anthropic.claude-3-5-sonnet-20241022-v2:0",
            "anthropic.claude-3-5-sonnet-20241022-v2:0",
            "ap-northeast-1",
        ),
    ],
)
def test_an_unpriced_geographic_profile_says_why_and_what_to_write(profile, base, source_region):
    """`tokenomy cost` refused these with "has no price for region 'eu-central-1' ... If it is sold there", naming a
    region the caller never gave: the refusal now says the region is the profile's assumed source region, that AWS
    bills a profile at the price of the region the call is sent from, and the price-file block to write."""
    import subprocess
    import sys

    result = subprocess.run(
        [sys.executable, "-m", "tokenomy.cli", "cost", "--model", profile, "--input", "1000", "--output", "100"],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert result.returncode == 2 and "Traceback" not in result.stderr, result.stderr
    said = " ".join(result.stderr.split())
    assert f"no price for region '{source_region}'; priced regions: ['us-east-1', 'us-west-2']" in said, said
    assert f"'{profile}' is the {profile.split('.')[0]}. cross-region inference profile" in said, said
    assert f"{source_region} is assumed when none is given" in said and "price of the region they are sent from" in said
    assert f"--prices FILE, or TOKENOMY_PRICES=FILE): models.{base}.regions.<region>: " in said, said
