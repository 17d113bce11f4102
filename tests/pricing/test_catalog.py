"""Price catalog and cost engine: published per-million prices reproduced exactly."""

from __future__ import annotations

import json
from decimal import Decimal

import pytest

from tokenomy.chat_response import Usage
from tokenomy.errors import ConfigError, UnknownModelError, UsageError
from tokenomy.pricing.catalog import PriceCatalog, split_inference_profile
from tokenomy.pricing.cost import compute_cost

HAIKU3 = "anthropic.claude-3-haiku-20240307-v1:0"
SONNET37 = "anthropic.claude-3-7-sonnet-20250219-v1:0"
M = 1_000_000


@pytest.fixture
def catalog() -> PriceCatalog:
    return PriceCatalog.builtin()


@pytest.mark.parametrize(
    "model, region, usage, expected",
    [
        # Claude 3 Haiku on Bedrock: $0.25 in / $1.25 out per 1M tokens.
        (HAIKU3, "us-east-1", Usage(M, M), "1.50"),
        (HAIKU3, None, Usage(1234, 567), "0.00101725"),  # 1234*0.25/1e6 + 567*1.25/1e6
        # Claude 3.7 Sonnet with caching: 3.00 in, 15.00 out, 0.30 cache read, 3.75 cache write.
        (SONNET37, "us-east-1", Usage(100, 200, 3000, 1500), "0.009825"),  # 300+3000+900+5625 micro-dollars
        # Nova Micro: 0.035 / 0.14.
        ("amazon.nova-micro-v1:0", "us-east-1", Usage(2_000_000, 500_000), "0.14"),
        # Llama 3 8B is dearer in London (0.39 / 0.78) than in us-east-1 (0.30 / 0.60).
        ("meta.llama3-8b-instruct-v1:0", "us-east-1", Usage(M, M), "0.90"),
        ("meta.llama3-8b-instruct-v1:0", "eu-west-2", Usage(M, M), "1.17"),
        ("gpt-4o-mini", None, Usage(M, M, M), "0.825"),  # 0.15 + 0.60 + 0.075 cached
        ("claude-3-5-haiku-20241022", None, Usage(0, 0, M, M), "1.08"),  # 0.08 read + 1.00 write
        ("local", None, Usage(5000, 5000, 5000), "0"),
    ],
)
def test_on_demand_costs_match_published_prices(catalog, model, region, usage, expected):
    cost = compute_cost(usage, model, region, catalog=catalog)
    assert cost.total_usd == Decimal(expected)
    assert isinstance(cost.total_usd, Decimal)


def test_breakdown_is_per_token_type(catalog):
    cost = compute_cost(Usage(M, 2 * M, 3 * M, 4 * M), SONNET37, "us-east-1", catalog=catalog)
    assert (cost.input_usd, cost.output_usd, cost.cache_read_usd, cost.cache_write_usd) == (
        Decimal("3"),
        Decimal("30"),
        Decimal("0.9"),
        Decimal("15"),
    )
    assert cost.source.startswith("https://aws.amazon.com/bedrock/pricing")
    assert cost.as_of


def test_batch_uses_batch_prices_and_refuses_models_without_them(catalog):
    cost = compute_cost(Usage(M, M), HAIKU3, "us-east-1", mode="batch", catalog=catalog)
    assert cost.total_usd == Decimal("0.75")  # 0.125 + 0.625: half of on-demand
    with pytest.raises(UsageError, match="no batch price"):
        compute_cost(Usage(10, 10), "meta.llama3-8b-instruct-v1:0", "us-east-1", mode="batch", catalog=catalog)


def test_provisioned_mode_has_no_per_token_cost(catalog):
    cost = compute_cost(Usage(M, M), "anthropic.claude-instant-v1", "us-east-1", mode="provisioned", catalog=catalog)
    assert cost.total_usd == 0 and "model unit" in cost.note


@pytest.mark.parametrize(
    "usage, message",
    [
        (Usage(-1, 0), "input_tokens=-1 is negative"),
        (Usage(0, 2.5), "output_tokens=2.5 is not a whole number"),  # type: ignore[arg-type]
        (Usage(0, 0, "7"), "cache_read_tokens='7' is not a whole number"),  # type: ignore[arg-type]
        (Usage(True, 0), "input_tokens=True is not a whole number"),  # type: ignore[arg-type]
        (Usage(0, 1, cache_write_tokens=2, cache_write_1h_tokens=-1), "cache_write_1h_tokens=-1 is negative"),
    ],
)
def test_bad_token_counts_name_the_value(catalog, usage, message):
    with pytest.raises(UsageError, match=message):
        compute_cost(usage, HAIKU3, catalog=catalog)


def test_a_breakdown_priced_without_its_constructor_is_the_one_the_constructor_makes(catalog):
    # compute_cost builds its CostBreakdown without the frozen dataclass's __init__ (each field through
    # object.__setattr__, a third of pricing a gateway's answer): every field is still set, the defaults included.
    from dataclasses import fields

    from tokenomy.pricing.cost_breakdown import CostBreakdown

    costs = [
        compute_cost(Usage(M, 10, 5, 7, 3), SONNET37, "us-east-1", catalog=catalog, one_call=True),
        compute_cost(Usage(M, M), HAIKU3, "us-east-1", mode="batch", catalog=catalog),
        compute_cost(Usage(M, M), "anthropic.claude-instant-v1", "us-east-1", mode="provisioned", catalog=catalog),
        compute_cost(Usage(1.0, 2), HAIKU3, catalog=catalog),  # type: ignore[arg-type]  # a whole float passes
    ]
    for cost in costs:
        made = CostBreakdown(**{f.name: getattr(cost, f.name) for f in fields(CostBreakdown)})
        assert vars(cost) == vars(made) and cost == made and hash(cost) == hash(made)
    assert costs[0].total_usd > 0 and costs[0].tools_usd == 0 and costs[0].currency == "USD"


def test_unknown_model_and_region_errors_say_how_to_fix(catalog):
    with pytest.raises(UnknownModelError, match=r"unknown model 'acme.nonexistent-9000'.*tokenomy prices"):
        compute_cost(Usage(1, 1), "acme.nonexistent-9000", catalog=catalog)
    with pytest.raises(UnknownModelError, match="no price for region 'sa-east-1'"):
        catalog.lookup(HAIKU3, "sa-east-1")
    with pytest.raises(UsageError, match="mode='spot'"):
        compute_cost(Usage(1, 1), HAIKU3, mode="spot", catalog=catalog)


def test_cross_region_profiles_resolve_to_the_source_region_price(catalog):
    assert split_inference_profile("us.anthropic.claude-3-haiku-20240307-v1:0") == (HAIKU3, "us-east-1")
    entry = catalog.lookup("eu." + SONNET37)
    assert entry.model == SONNET37 and entry.region == "eu-central-1" and entry.resolved_from == "eu." + SONNET37
    # Geographic profiles cost the same as in-region use...
    assert compute_cost(Usage(M, M), "us." + HAIKU3, catalog=catalog).total_usd == Decimal("1.50")
    # ...while global profiles of Claude 4.5 models are ~10% cheaper than geographic/in-region.
    sonnet45 = "anthropic.claude-sonnet-4-5-20250929-v1:0"
    regional = compute_cost(Usage(M, M), "us." + sonnet45, catalog=catalog).total_usd
    global_ = compute_cost(Usage(M, M), "global." + sonnet45, catalog=catalog).total_usd
    assert (regional, global_) == (Decimal("19.80"), Decimal("18.00"))
    arn = f"arn:aws:bedrock:us-west-2:123456789012:inference-profile/us.{HAIKU3}"
    assert catalog.lookup(arn).region == "us-west-2"


def test_a_global_profile_priced_by_the_library_is_labelled_global(catalog):
    """genai-prices 0.2.5 prices global.anthropic.claude-fable-5-v1:0 at its global-profile figures ($10 in / $50 out
    per 1M; the regional id is $11 / $55). The entry and the cost said us-east-1 (the profile's assumed source
    region), a region whose price it is not; a curated global profile says global."""
    entry = catalog.lookup("global.anthropic.claude-fable-5-v1:0")
    assert (entry.priced_by, entry.input, entry.output) == ("genai-prices", Decimal("10"), Decimal("50"))
    assert entry.region == "global"
    cost = compute_cost(Usage(M, M), "global.anthropic.claude-fable-5-v1:0", catalog=catalog)
    assert (cost.region, cost.total_usd) == ("global", Decimal("60"))
    # A geographic profile keeps its source region, where its regional price applies.
    assert catalog.lookup("us.anthropic.claude-fable-5-v1:0").region == "us-east-1"


@pytest.mark.parametrize(
    "tier, error",
    [
        (
            '[{input: "1", output: "2", starts: "2027-03-01", source: s, as_of: "2026-11-01"}]',
            r"service_tiers\.flex\[0\]\.starts: the first price is the one in effect now",
        ),
        (
            '[{input: "1", output: "2", source: s, as_of: "2026-11-01"}, '
            '{input: "2", output: "4", source: s, as_of: "2026-11-01"}]',
            r"service_tiers\.flex\[1\]: starts required",
        ),
        (
            '[{input: "1", output: "2", source: s, as_of: "2026-11-01"}, '
            '{starts: "2027-03-01", input: "2", output: "4", source: s, as_of: "2026-11-01"}, '
            '{starts: "2027-02-01", input: "3", output: "6", source: s, as_of: "2026-11-01"}]',
            r"service_tiers\.flex\[2\]\.starts: 2027-02-01 is not after 2027-03-01",
        ),
        (
            '[{input: "1", output: "2", source: s, as_of: "2026-11-01"}, {starts: soon, input: "2", output: "4", source: s, '
            'as_of: "2026-11-01"}]',
            r"service_tiers\.flex\[1\]\.starts: 'soon' is not a date",
        ),
    ],
)
def test_a_tier_price_that_changes_on_a_date_is_checked_where_it_is_written(tier, error, tmp_path):
    path = tmp_path / "prices.yaml"
    path.write_text(
        f'provider: openai\nsource: s\nas_of: "2026-11-01"\nmodels:\n  m:\n    regions:\n'
        f'      global: {{input: "0.5", output: "1", service_tiers: {{flex: {tier}}}}}\n'
    )
    with pytest.raises(ConfigError, match=error):
        PriceCatalog.builtin().with_overrides(path)


def test_every_entry_carries_source_and_as_of(catalog):
    entries = catalog.entries()
    providers = {e.provider for e in entries}
    assert {"aws.bedrock", "openai", "anthropic", "local"} <= providers
    for entry in entries:
        assert entry.source and entry.as_of and entry.input is not None and entry.output is not None
    bedrock_regions = {e.region for e in entries if e.provider == "aws.bedrock"}
    assert {"us-east-1", "eu-west-2"} <= bedrock_regions
    families = {e.family for e in entries}
    for family in (
        "claude-3-haiku",
        "claude-3.5-haiku",
        "claude-3.5-sonnet",
        "claude-3.7-sonnet",
        "claude-sonnet-4",
        "claude-opus-4",
        "nova-micro",
        "nova-lite",
        "nova-pro",
        "llama-3",
        "mistral-7b",
        "mistral-large",
    ):
        assert family in families, family


def test_user_override_file_wins(tmp_path, catalog):
    override = tmp_path / "prices.yaml"
    override.write_text(f"""
provider: aws.bedrock
source: https://example.com/our-negotiated-rates
as_of: "2026-11-01"
models:
  {HAIKU3}:
    regions:
      us-east-1: {{input: "0.20", output: "1.00"}}
  acme.custom-model-v1:
    family: acme
    regions:
      us-east-1: {{input: "1", output: "2"}}
""")
    merged = catalog.with_overrides(override)
    assert merged.lookup(HAIKU3, "us-east-1").priced_by == "user-override"
    assert compute_cost(Usage(M, M), HAIKU3, "us-east-1", catalog=merged).total_usd == Decimal("1.20")
    assert compute_cost(Usage(M, 0), "acme.custom-model-v1", catalog=merged).total_usd == Decimal("1")
    # Regions the override does not mention keep the curated price.
    assert merged.lookup(HAIKU3, "us-west-2").priced_by == "tokenomy-catalog"


def test_broken_override_names_the_field(tmp_path, catalog):
    bad = tmp_path / "bad.yaml"
    bad.write_text(
        'provider: openai\nsource: x\nas_of: "2026-01-01"\nmodels:\n  m:\n    regions:\n'
        '      global: {input: "cheap", output: "1"}\n'
    )
    with pytest.raises(ConfigError, match=r"models\.m\.regions\.global\.input: 'cheap' is not a number"):
        catalog.with_overrides(bad)
    missing = tmp_path / "missing.yaml"
    missing.write_text("models: {}\n")
    with pytest.raises(ConfigError, match="'provider' is required"):
        catalog.with_overrides(missing)


@pytest.mark.parametrize(
    ("models", "said"),
    [
        ("[a, b]", r"models: expected a mapping of model id -> \{regions: ...\}, not \['a', 'b'\]"),
        ("[]", r"models: expected a mapping of model id -> \{regions: ...\}, not \[\]"),  # was read as no models
        ("{m: {regions: [global]}}", r"models\.m\.regions: expected a mapping of region -> .*, not \['global'\]"),
        (
            "{m: {regions: {global: cheap}}}",
            r"models\.m\.regions\.global: expected a mapping of prices .*, not 'cheap'",
        ),
        (
            '{m: {regions: {global: {input: "1", output: "1", service_tiers: [flex]}}}}',
            r"models\.m\.regions\.global\.service_tiers: expected a mapping of tier -> prices, not \['flex'\]",
        ),
    ],
)
def test_a_price_file_with_a_list_or_text_where_a_mapping_belongs_names_the_place(models, said, tmp_path, catalog):
    # `models: [a, b]` and `regions: [global]` were AttributeError tracebacks ('list' object has no attribute
    # 'items'), a region's prices written as text a ValueError one, from `cost --prices` and every --prices command.
    bad = tmp_path / "prices.yaml"
    bad.write_text(f'provider: openai\nsource: x\nas_of: "2026-01-01"\nmodels: {models}\n')
    with pytest.raises(ConfigError, match=f"^{bad}: {said}"):
        catalog.with_overrides(bad)


@pytest.mark.parametrize("text", [None, "models: [a]\n"])
def test_a_bad_tokenomy_prices_file_is_named_with_the_variable(text, tmp_path, monkeypatch):
    # "error: /x/prices.yaml: price file not found" did not say the path came from TOKENOMY_PRICES.
    from tokenomy.pricing.catalog import default_catalog, set_default_catalog

    prices = tmp_path / "prices.yaml"
    if text is not None:
        prices.write_text(f'provider: openai\nsource: x\nas_of: "2026-01-01"\n{text}')
    monkeypatch.setenv("TOKENOMY_PRICES", str(prices))
    set_default_catalog(None)
    try:
        with pytest.raises(
            ConfigError, match=f"^TOKENOMY_PRICES: {prices}: .*; fix the file, or point TOKENOMY_PRICES elsewhere$"
        ):
            default_catalog()
    finally:
        monkeypatch.delenv("TOKENOMY_PRICES")
        set_default_catalog(None)


def test_a_price_file_provider_that_is_not_text_is_named(tmp_path, catalog):
    # `provider: [openai]` was taken, and every price in the file said it came from "['openai']".
    bad = tmp_path / "prices.yaml"
    bad.write_text(
        'provider: [openai]\nsource: x\nas_of: "2026-01-01"\nmodels: {m: {regions: {global: '
        '{input: "1", output: "1"}}}}\n'
    )
    with pytest.raises(ConfigError, match=r"top-level 'provider' \['openai'\] must be text, e.g. provider: openai"):
        catalog.with_overrides(bad)


@pytest.mark.parametrize("value", ["abc", "[1]", "1.5", "-5", "true"])
def test_a_count_in_a_price_file_that_is_not_a_whole_number_names_the_field(value, tmp_path, catalog):
    # `cache_min_tokens: abc` was int()'s ValueError traceback, `[1]` a TypeError one; 1.5 and true were read as 1
    # and -5 was kept, a cache minimum no prompt can fall under.
    bad = tmp_path / "bad.yaml"
    bad.write_text(
        'provider: openai\nsource: x\nas_of: "2026-01-01"\nmodels:\n  m:\n    regions:\n'
        f'      global: {{input: "1", output: "1", cache_min_tokens: {value}}}\n'
    )
    with pytest.raises(
        ConfigError,
        match=r"models\.m\.regions\.global\.cache_min_tokens: .* is not a whole number "
        r"0 or more; write counts like 1024",
    ):
        catalog.with_overrides(bad)
    model_level = tmp_path / "model.yaml"
    model_level.write_text(
        'provider: openai\nsource: x\nas_of: "2026-01-01"\nmodels:\n  m:\n'
        f'    context_window: {value}\n    regions:\n      global: {{input: "1", output: "1"}}\n'
    )
    with pytest.raises(ConfigError, match=r"models\.m\.context_window: .* is not a whole number 0 or more"):
        catalog.with_overrides(model_level)


@pytest.mark.parametrize(
    ("quotas", "said"),
    [
        ("{min_records_per_job: abc}", r"batch_quotas\.min_records_per_job: 'abc' is not a whole number"),
        ("{max_records_per_file: 0}", r"batch_quotas\.max_records_per_file: 0 must be 1 or more"),
        ("{max_recods_per_file: 10}", r"batch_quotas\.max_recods_per_file: not a batch quota; known quotas are"),
        ("[1, 2]", r"batch_quotas: expected a mapping"),
    ],
)
def test_batch_quotas_in_a_price_file_are_checked_when_it_loads(quotas, said, tmp_path, catalog):
    # `min_records_per_job: abc` loaded, and `batch validate` then ended in int()'s ValueError traceback.
    bad = tmp_path / "bad.yaml"
    bad.write_text(f'provider: aws.bedrock\nsource: x\nas_of: "2026-01-01"\nbatch_quotas: {quotas}\nmodels: {{}}\n')
    with pytest.raises(ConfigError, match=said):
        catalog.with_overrides(bad)


def test_litellm_import_adds_models_but_curated_entries_win(tmp_path, catalog):
    litellm = tmp_path / "model_prices_and_context_window.json"
    litellm.write_text(
        json.dumps(
            {
                "sample_spec": {"input_cost_per_token": 0},
                "acme-chat-1": {
                    "litellm_provider": "openai",
                    "mode": "chat",
                    "input_cost_per_token": 2e-06,
                    "output_cost_per_token": 8e-06,
                    "cache_read_input_token_cost": 5e-07,
                    "max_input_tokens": 128000,
                },
                "gpt-4o": {
                    "litellm_provider": "openai",
                    "mode": "chat",
                    "input_cost_per_token": 9e-06,
                    "output_cost_per_token": 9e-06,
                },
                "text-embedding-3-small": {
                    "litellm_provider": "openai",
                    "mode": "embedding",
                    "input_cost_per_token": 3e-08,
                    "output_cost_per_token": 0,
                },
                "acme-embed-1": {
                    "litellm_provider": "openai",
                    "mode": "embedding",
                    "input_cost_per_token": 1e-08,
                    "output_cost_per_token": 0,
                },
                "acme-voice": {
                    "litellm_provider": "openai",
                    "mode": "audio_speech",
                    "input_cost_per_token": 1e-08,
                    "output_cost_per_token": 0,
                },
            }
        )
    )
    merged = catalog.with_litellm(litellm)
    acme = merged.lookup("acme-chat-1")
    assert acme.priced_by == "litellm-import" and acme.input == Decimal("2") and acme.cache_read == Decimal("0.5")
    assert merged.lookup("gpt-4o").priced_by == "tokenomy-catalog"
    # Embedding models are imported (the gateway serves /v1/embeddings); modes it serves not, such as speech.
    assert merged.lookup("acme-embed-1").input == Decimal("0.01")
    assert merged.lookup("text-embedding-3-small").input == Decimal("0.02")  # curated
    with pytest.raises(UnknownModelError):
        PriceCatalog(merged.entries(), use_fallback=False).lookup("acme-voice")


@pytest.mark.parametrize(
    "litellm_name, asked, region",
    [
        # LiteLLM's bare Bedrock id, imported in region `global`, was picked over the per-region prices for no region.
        (HAIKU3, HAIKU3, None),
        (f"bedrock/{HAIKU3}", HAIKU3, "us-east-1"),
        # LiteLLM's `us.` profile id was matched whole before the catalog resolved the profile to its base model.
        (f"bedrock/us.{HAIKU3}", f"us.{HAIKU3}", None),
        (f"bedrock/eu.{HAIKU3}", f"eu.{HAIKU3}", "eu-central-1"),
        ("claude-3-5-haiku-latest", "claude-3-5-haiku-latest", None),  # an alias of a curated model
    ],
)
def test_litellm_import_never_reprices_a_model_the_catalog_prices(tmp_path, catalog, litellm_name, asked, region):
    litellm = tmp_path / "model_prices_and_context_window.json"
    litellm.write_text(
        json.dumps(
            {
                litellm_name: {
                    "litellm_provider": "bedrock",
                    "mode": "chat",
                    "input_cost_per_token": 9e-06,
                    "output_cost_per_token": 9e-06,
                },
                "acme.chat-1": {
                    "litellm_provider": "bedrock",
                    "mode": "chat",
                    "input_cost_per_token": 2e-06,
                    "output_cost_per_token": 8e-06,
                },
            }
        )
    )
    merged = catalog.with_litellm(litellm)
    assert merged.lookup(asked, region) == catalog.lookup(asked, region)
    entry = merged.lookup(asked, region)
    assert entry.priced_by == "tokenomy-catalog" and entry.input != Decimal("9") and entry.source and entry.as_of
    # A model the catalog lacks is still imported, with its source and date.
    acme = merged.lookup("acme.chat-1")
    assert (acme.priced_by, acme.input, acme.source) == ("litellm-import", Decimal("2"), f"litellm:{litellm.name}")
    assert acme.as_of


def test_models_outside_the_catalog_fall_back_to_genai_prices(catalog):
    entry = catalog.lookup("gpt-3.5-turbo")
    assert entry.priced_by == "genai-prices"
    assert entry.input > 0 and entry.output > 0
    cost = compute_cost(Usage(M, 0), "gpt-3.5-turbo", catalog=catalog)
    assert cost.priced_by == "genai-prices" and cost.total_usd == entry.input


def test_embedding_models_are_priced_on_input_tokens_alone(catalog):
    # Neither was priced: the catalog had no embedding model, and the library's (input price only) were skipped.
    small = compute_cost(Usage(M, 0), "text-embedding-3-small", catalog=catalog)
    assert small.priced_by == "tokenomy-catalog" and small.total_usd == Decimal("0.02") and small.output_usd == 0
    assert compute_cost(Usage(37, 0), "text-embedding-3-small", catalog=catalog).total_usd == Decimal("0.00000074")
    assert compute_cost(Usage(M, 0), "text-embedding-3-large", mode="batch", catalog=catalog).total_usd == Decimal(
        "0.065"
    )
    gemini = catalog.lookup("gemini-embedding-001")
    assert gemini.priced_by == "genai-prices" and gemini.input == Decimal("0.15") and gemini.output == 0


def test_an_as_of_that_is_not_a_date_is_refused_where_it_is(tmp_path, catalog):
    # Was accepted and printed ("as of notadate"): a price whose age cannot be told.
    override = tmp_path / "prices.yaml"
    text = f"""
provider: aws.bedrock
source: https://example.com/rates
as_of: 2026-11-01
models:
  {HAIKU3}:
    regions:
      us-east-1: {{input: "0.20", output: "1.00", as_of: "AS_OF"}}
"""
    override.write_text(text.replace("AS_OF", "2026-11-02"))
    assert catalog.with_overrides(override).lookup(HAIKU3, "us-east-1").as_of == "2026-11-02"
    override.write_text(text.replace("AS_OF", "notadate"))
    with pytest.raises(ConfigError, match=rf"models.{HAIKU3}.regions.us-east-1.as_of: 'notadate' is not a date"):
        catalog.with_overrides(override)
    # A date to come read as current for years: no stale-price warning would ever fire for it.
    from datetime import UTC, datetime, timedelta

    later = (datetime.now(UTC) + timedelta(days=3)).date()
    override.write_text(text.replace("AS_OF", later.isoformat()))
    with pytest.raises(ConfigError, match=rf"models.{HAIKU3}.regions.us-east-1.as_of: {later} is in the future"):
        catalog.with_overrides(override)
    override.write_text(text.replace('"AS_OF"', later.isoformat()).replace("2026-11-02", "x"))  # YAML's own date
    with pytest.raises(ConfigError, match=r"is in the future"):
        catalog.with_overrides(override)


def test_price_files_that_are_not_utf8_are_named(tmp_path):
    from tokenomy.pricing.catalog import load_litellm_prices

    latin1 = tmp_path / "prices.yaml"
    latin1.write_bytes(b"provider: acme\nsource: caf\xe9\n")
    with pytest.raises(ConfigError, match=r"prices.yaml: not UTF-8"):  # was a UnicodeDecodeError traceback
        PriceCatalog.builtin().with_overrides(latin1)
    with pytest.raises(ConfigError, match=r"prices.yaml: not UTF-8 text \(byte 27\); expected LiteLLM's"):
        load_litellm_prices(latin1)
    # A byte-order mark (Windows editors write one) is skipped, not "Unexpected UTF-8 BOM".
    bom = tmp_path / "litellm.json"
    bom.write_bytes(b"\xef\xbb\xbf" + json.dumps({"gpt-bom": {"litellm_provider": "openai",
        "input_cost_per_token": 1e-06, "output_cost_per_token": 2e-06}}).encode())  # fmt: skip
    assert [e.model for e in load_litellm_prices(bom)] == ["gpt-bom"]


def test_prices_for_an_unpriced_region_says_which_regions_exist():
    import subprocess
    import sys
    from pathlib import Path

    result = subprocess.run(
        [str(Path(sys.executable).with_name("tokenomy")), "prices", "--region", "mars-1"],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert result.returncode == 2 and "--region 'mars-1'" in result.stderr and "us-east-1" in result.stderr


def test_cache_tokens_on_a_model_without_caching_say_what_to_do():
    with pytest.raises(UsageError, match=r"read=100.*count them as input tokens"):
        compute_cost(Usage(10, 0, 100, 0), "meta.llama3-8b-instruct-v1:0", "us-east-1")


@pytest.mark.parametrize(
    "doc, said",
    [
        (
            '{"my-model": {"input_cost_per_token": 1e-6, "output_cost_per_token": "abc"}}',
            "my-model.output_cost_per_token: 'abc' is not a number",
        ),  # was a decimal.InvalidOperation traceback
        # was an AttributeError traceback:
        ("[1, 2]", "a LiteLLM price file is a JSON object of model name -> prices, not a list"),
        (
            '{"n": {"input_cost_per_token": NaN, "output_cost_per_token": 1e-6}}',
            "n.input_cost_per_token: nan is not a finite number",
        ),  # was a ValueError traceback
        (
            '{"n": {"input_cost_per_token": -1e-6, "output_cost_per_token": 1e-6}}',
            "n.input_cost_per_token: price -1e-06 is negative",
        ),  # was accepted and printed
    ],
)
def test_bad_litellm_prices_are_one_error_naming_file_and_entry(doc, said, tmp_path, monkeypatch, capsys):
    import sys

    from tokenomy.cli import main

    path = tmp_path / "ll.json"
    path.write_text(doc)
    monkeypatch.setattr(sys, "argv", ["tokenomy", "prices", "--litellm", str(path), "my-model"])
    with pytest.raises(SystemExit) as exited:
        main()
    err = capsys.readouterr().err
    assert exited.value.code == 2 and "Traceback" not in err, err
    assert err.startswith("error: ") and f"ll.json: {said}" in err, err


def test_every_maximum_output_in_the_catalog_fits_its_window_and_names_its_source(catalog):
    # A budget reserves a call that sets no output cap at its model's max_output_tokens (gateway.state): a figure
    # above the window the prompt and the answer share is a misread page, and one without its page cannot be checked.
    limited = [e for e in catalog.entries() if e.max_output_tokens is not None]
    assert len({e.model for e in limited}) >= 30  # Claude 4.5 and later, OpenAI's chat models, most Geminis
    for entry in limited:
        assert entry.context_window is not None and 1 <= entry.max_output_tokens <= entry.context_window, entry.model
        assert entry.limits_source and "https://" in entry.limits_source and "; read 20" in entry.limits_source
    figures = {m: catalog.lookup(m).max_output_tokens for m in ("gpt-4.1", "o3", "claude-opus-4-6", "gemini-2.0-flash")}
    assert figures == {"gpt-4.1": 32_768, "o3": 100_000, "claude-opus-4-6": 128_000, "gemini-2.0-flash": 8_192}
    # Not sourced, so not there: the gateway falls back to its estimate for it.
    assert catalog.lookup("gemini-2.5-flash").max_output_tokens is None
    # Claude 3 Haiku's 4,096 (AWS's "4K"), on Anthropic's API and on Bedrock alike: without it the emulators took any
    # cap for the model, and a budget reserved an uncapped Converse call at its estimate instead.
    assert {catalog.lookup(m).max_output_tokens for m in (HAIKU3, "claude-3-haiku-20240307")} == {4096}
    # Nova Micro, Lite and Pro: AWS's "5K" (card and request schema), read as the 5,000 its Nova 2 schema writes out,
    # from AWS's own pages; a `us.` profile resolves to the model. Nova Premier's pages disagree, so it has none.
    for model in (
        "amazon.nova-micro-v1:0",
        "amazon.nova-lite-v1:0",
        "amazon.nova-pro-v1:0",
        "us.amazon.nova-lite-v1:0",
    ):
        entry = catalog.lookup(model)
        assert entry.max_output_tokens == 5_000, model
        assert (
            entry.limits_source.startswith("https://docs.aws.amazon.com/") and "read 2026-12-07" in entry.limits_source
        )
    assert catalog.lookup("amazon.nova-premier-v1:0").max_output_tokens is None
    # Llama 3 to 3.3: max_gen_len's 2,048, which Bedrock enforces (Llama 3.1 70B's card says "4K"); Mistral's text
    # models: max_tokens' maximum on AWS's Mistral page (Mistral Large's card says "4K"). No figure was read for the
    # Llama 4 models or Mistral Large 2 (24.07), so they have none.
    llama = ["meta.llama3-8b-instruct-v1:0", "meta.llama3-1-70b-instruct-v1:0", "meta.llama3-2-1b-instruct-v1:0"]
    llama += ["meta.llama3-3-70b-instruct-v1:0", "us.meta.llama3-2-90b-instruct-v1:0"]
    mistral = {
        "mistral.mistral-7b-instruct-v0:2": 8_192,
        "mistral.mixtral-8x7b-instruct-v0:1": 4_096,
        "mistral.mistral-large-2402-v1:0": 8_192,
        "mistral.mistral-small-2402-v1:0": 8_192,
    }
    for model, figure in {**dict.fromkeys(llama, 2_048), **mistral}.items():
        entry = catalog.lookup(model)
        assert entry.max_output_tokens == figure, model
        assert entry.limits_source.startswith("https://docs.aws.amazon.com/bedrock/latest/userguide/model-parameters-")
        assert entry.limits_source.endswith("; read 2026-12-07"), model
    for model in ("meta.llama4-scout-17b-instruct-v1:0", "mistral.mistral-large-2407-v1:0"):
        assert catalog.lookup(model).max_output_tokens is None, model
    # A Bedrock profile of a Claude model carries Anthropic's figure for it, in every region.
    assert {
        catalog.lookup("us.anthropic.claude-sonnet-4-5-20250929-v1:0", r).max_output_tokens
        for r in ("us-east-1", "eu-west-1")
    } == {64_000}


@pytest.mark.parametrize(
    ("limits", "said"),
    [
        (
            "context_window: 1000\n    max_output_tokens: 4000",
            r"models\.m\.max_output_tokens: 4000 is more than the model's context_window \(1000\)",
        ),
        ("max_output_tokens: 0", r"models\.m\.max_output_tokens: 0 is not a number of tokens above 0"),
        ("max_output_tokens: 1.5", r"models\.m\.max_output_tokens: 1\.5 is not a whole number 0 or more"),
    ],
)
def test_a_maximum_output_in_a_price_file_is_checked_where_it_is_written(limits, said, tmp_path, catalog):
    bad = tmp_path / "bad.yaml"
    bad.write_text(
        'provider: openai\nsource: x\nas_of: "2026-01-01"\nmodels:\n  m:\n'
        f'    {limits}\n    regions:\n      global: {{input: "1", output: "1"}}\n'
    )
    with pytest.raises(ConfigError, match=said):
        catalog.with_overrides(bad)
    good = tmp_path / "good.yaml"
    good.write_text(
        'provider: openai\nsource: x\nas_of: "2026-01-01"\nmodels:\n  m:\n    context_window: 1000\n'
        '    max_output_tokens: 500\n    limits_source: "our model card; read 2026-01-01"\n'
        '    regions:\n      global: {input: "1", output: "1"}\n'
    )
    entry = catalog.with_overrides(good).lookup("m")
    assert (entry.max_output_tokens, entry.limits_source) == (500, "our model card; read 2026-01-01")


def test_litellm_import_carries_its_maximum_output(tmp_path, catalog):
    litellm = tmp_path / "model_prices_and_context_window.json"
    litellm.write_text(
        json.dumps(
            {
                "acme-chat-1": {
                    "litellm_provider": "openai",
                    "mode": "chat",
                    "input_cost_per_token": 2e-06,
                    "output_cost_per_token": 8e-06,
                    "max_input_tokens": 128000,
                    "max_output_tokens": 16384,
                },
                "acme-chat-2": {
                    "litellm_provider": "openai",
                    "mode": "chat",
                    "input_cost_per_token": 2e-06,
                    "output_cost_per_token": 8e-06,
                    "max_tokens": 4096,
                },
            }
        )
    )
    merged = catalog.with_litellm(litellm)
    acme = merged.lookup("acme-chat-1")
    assert (acme.max_output_tokens, acme.limits_source) == (16384, "litellm:model_prices_and_context_window.json")
    assert merged.lookup("acme-chat-2").max_output_tokens is None  # LiteLLM's ambiguous max_tokens is not read as it
    litellm.write_text(
        json.dumps(
            {"acme-chat-3": {"input_cost_per_token": 1e-6, "output_cost_per_token": 1e-6, "max_output_tokens": "lots"}}
        )
    )
    with pytest.raises(ConfigError, match=r"acme-chat-3\.max_output_tokens: 'lots' is not a whole number"):
        catalog.with_litellm(litellm)


BATCH_LONG_FILE = """
provider: openai
source: https://example.test/pricing
as_of: "2026-12-05"
models:
  gpt-priced-here:
    regions:
      global:
        input: "2.50"
        output: "15.00"
        cache_read: "0.25"
        batch_input: "1.25"
        batch_output: "7.50"
        batch_cache_read: "0.13"
        long_context: {above_tokens: 272000, input: "5.00", output: "22.50", cache_read: "0.50",
                       source: "https://example.test/pricing (over 272k)", as_of: "2026-12-05"}
"""


def test_a_price_file_states_batch_long_context_prices_and_they_price_a_long_batch_call(tmp_path):
    # A price file could not say a batch's long-context prices (`batch_long_context` was an unknown field), so a
    # curated or user entry's long batch prompt was priced at each field's batch ratio: the cached token at
    # $0.50 x 0.13/0.25 = $0.26 where the provider publishes $0.25 (GPT-5.4's figures).
    over = Usage(200_000, 1_000, cache_read_tokens=100_000)  # 300,000 prompt tokens, over 272,000
    plain = tmp_path / "plain.yaml"
    plain.write_text(BATCH_LONG_FILE)
    derived = compute_cost(
        over,
        "gpt-priced-here",
        mode="batch",
        one_call=True,
        catalog=PriceCatalog([], use_fallback=False).with_overrides(plain),
    )
    assert derived.cache_read_usd == 100_000 * Decimal("0.26") / M  # without the published figure: the ratio
    stated = tmp_path / "stated.yaml"
    stated.write_text(
        BATCH_LONG_FILE
        + """\
        batch_long_context: {above_tokens: 272000, input: "2.50", output: "11.25", cache_read: "0.25",
                             source: "https://example.test/pricing (batch, over 272k)", as_of: "2026-12-05"}
"""
    )
    catalog = PriceCatalog([], use_fallback=False).with_overrides(stated)
    entry = catalog.lookup("gpt-priced-here")
    assert entry.batch_long_context is not None and entry.batch_long_context.cache_read == Decimal("0.25")
    assert entry.to_json()["batch_long_context"]["cache_read"] == "0.2500"
    cost = compute_cost(over, "gpt-priced-here", mode="batch", one_call=True, catalog=catalog)
    assert cost.input_usd == 200_000 * Decimal("2.50") / M  # $0.50
    assert cost.cache_read_usd == 100_000 * Decimal("0.25") / M  # $0.025, not $0.026
    assert cost.output_usd == 1_000 * Decimal("11.25") / M
    assert cost.total_usd == Decimal("0.53625")
    # Under the threshold the batch prices are the standard ones
    assert compute_cost(
        Usage(100_000, 0), "gpt-priced-here", mode="batch", one_call=True, catalog=catalog
    ).total_usd == Decimal("0.125")


@pytest.mark.parametrize(
    ("extra", "said"),
    [
        (
            'above_tokens: 200000, input: "2.50", output: "11.25", source: s, as_of: "2026-12-05"',
            r"batch_long_context: its above_tokens \(200000\) must be the long_context threshold's",
        ),
        (
            'above_tokens: 272000, input: "2.50", output: "11.25", source: s, as_of: "2999-01-01"',
            r"models.gpt-priced-here.regions.global.batch_long_context.as_of: 2999-01-01 is in the future",
        ),
        ('above_tokens: 272000, input: "2.50", source: s, as_of: "2026-12-05"', r"batch_long_context: output required"),
    ],
)
def test_a_wrong_batch_long_context_block_is_named(tmp_path, extra, said):
    bad = tmp_path / "bad.yaml"
    bad.write_text(BATCH_LONG_FILE + f"        batch_long_context: {{{extra}}}\n")
    with pytest.raises(ConfigError, match=said):
        PriceCatalog([], use_fallback=False).with_overrides(bad)
