"""A model's lifecycle in the price catalog (`deprecated_on`, `retired_on`, `lifecycle_source`): checked as a price
file loads, warned of by the config checks for a model a route calls, and never proposed by the model review."""

from __future__ import annotations

from datetime import date
from decimal import Decimal
from io import StringIO
from typing import Any

import pytest
from rich.console import Console

from tokenomy.config import parse_config
from tokenomy.config_checks import check_config
from tokenomy.errors import ConfigError
from tokenomy.pricing.catalog import PriceCatalog
from tokenomy.pricing.price_document import parse_price_document

TODAY = date(2026, 12, 6)
HAIKU_3 = "claude-3-haiku-20240307"  # retired by Anthropic on 2026-04-20


def _doc(**lifecycle: Any) -> dict[str, Any]:
    return {
        "provider": "anthropic",
        "source": "our rates",
        "as_of": "2026-11-01",
        "models": {"claude-x": {**lifecycle, "regions": {"global": {"input": "1", "output": "5"}}}},
    }


def test_a_price_file_takes_lifecycle_dates_with_their_source() -> None:
    [entry] = parse_price_document(
        _doc(deprecated_on="2026-02-19", retired_on=date(2026, 4, 20), lifecycle_source="https://x; read 2026-12-06"),
        "user-override",
        "p.yaml",
    )[0]
    assert (entry.deprecated_on, entry.retired_on) == ("2026-02-19", "2026-04-20")
    assert entry.to_json()["retired_on"] == "2026-04-20"
    assert entry.to_json()["lifecycle_source"] == "https://x; read 2026-12-06"


@pytest.mark.parametrize(
    ("lifecycle", "expected"),
    [
        (
            {"retired_on": "2026-13-01", "lifecycle_source": "https://x"},
            "p.yaml: models.claude-x.retired_on: '2026-13-01' is not a date; write the day the provider gives as "
            "YYYY-MM-DD",
        ),
        ({"retired_on": "2026-04-20"}, "p.yaml: models.claude-x: retired_on given without lifecycle_source"),
        ({"lifecycle_source": "https://x"}, "p.yaml: models.claude-x.lifecycle_source: given without deprecated_on"),
        (
            {"deprecated_on": "2026-05-01", "retired_on": "2026-04-20", "lifecycle_source": "https://x"},
            "p.yaml: models.claude-x.retired_on: 2026-04-20 is before deprecated_on (2026-05-01)",
        ),
    ],
)
def test_a_bad_lifecycle_is_refused_naming_the_file_entry_and_fix(lifecycle: dict, expected: str) -> None:
    with pytest.raises(ConfigError) as caught:
        parse_price_document(_doc(**lifecycle), "user-override", "p.yaml")
    assert str(caught.value).startswith(expected), str(caught.value)


def test_the_catalog_carries_anthropics_retirements_with_the_page() -> None:
    entry = PriceCatalog.builtin().lookup(HAIKU_3)
    assert (entry.deprecated_on, entry.retired_on) == ("2026-02-19", "2026-04-20")
    assert entry.lifecycle_source is not None
    assert entry.lifecycle_source.startswith("https://platform.claude.com/docs/en/about-claude/model-deprecations")
    # Bedrock retires Claude on its own schedule: Anthropic's dates are not its (tested below)
    bedrock = PriceCatalog.builtin().lookup("anthropic.claude-3-haiku-20240307-v1:0", "us-east-1")
    assert (bedrock.retired_on, bedrock.provider) == ("2026-09-10", "aws.bedrock")


BEDROCK_HAIKU_3 = f"anthropic.{HAIKU_3}-v1:0"
BEDROCK_HAIKU_35 = "anthropic.claude-3-5-haiku-20241022-v1:0"


def test_the_catalog_carries_bedrocks_own_eol_dates_with_the_model_card() -> None:
    catalog = PriceCatalog.builtin()
    for model, region, retired in [
        (BEDROCK_HAIKU_3, "us-east-1", "2026-09-10"),
        (BEDROCK_HAIKU_3, "eu-west-3", "2026-09-10"),
        (BEDROCK_HAIKU_35, "us-west-2", "2026-06-19"),
    ]:
        entry = catalog.lookup(model, region)
        assert (entry.provider, entry.retired_on, entry.deprecated_on) == ("aws.bedrock", retired, None), entry
        assert entry.lifecycle_source is not None
        card = "model-card-" + model.split("-2024")[0].replace(".", "-")
        assert entry.lifecycle_source.startswith(f"https://docs.aws.amazon.com/bedrock/latest/userguide/{card}.html")
        assert entry.lifecycle_source.endswith("read 2026-12-07")
        assert entry.to_json()["retired_on"] == retired
    # AWS's card says Claude 3 Haiku is still served in Canada: that region has no date, and its prices are unchanged
    canada = catalog.lookup(BEDROCK_HAIKU_3, "ca-central-1")
    assert (canada.retired_on, canada.lifecycle_source, canada.input) == (None, None, Decimal("0.25"))
    # a cross-region profile is its source region's model, retired with it
    assert catalog.lookup(f"us.{BEDROCK_HAIKU_3}").retired_on == "2026-09-10"
    assert catalog.lookup(f"eu.{BEDROCK_HAIKU_3}").retired_on == "2026-09-10"
    assert catalog.lookup(f"us.{BEDROCK_HAIKU_35}").retired_on == "2026-06-19"


def test_the_catalog_carries_nova_premiers_eol_from_its_model_card() -> None:
    # AWS's card: "Model lifecycle: Legacy", "Model EOL date: September 14, 2026", no Legacy date, no region apart
    catalog = PriceCatalog.builtin()
    for region in ("us-east-1", "us-east-2", "us-west-2"):
        entry = catalog.lookup("amazon.nova-premier-v1:0", region)
        assert (entry.provider, entry.retired_on, entry.deprecated_on) == ("aws.bedrock", "2026-09-14", None), region
        assert entry.lifecycle_source is not None
        assert entry.lifecycle_source.startswith(
            "https://docs.aws.amazon.com/bedrock/latest/userguide/model-card-amazon-nova-premier.html"
        )
        assert "September 14, 2026" in entry.lifecycle_source and entry.lifecycle_source.endswith("read 2026-12-07")
    assert catalog.lookup("us.amazon.nova-premier-v1:0").retired_on == "2026-09-14"


def test_config_check_warns_of_a_route_to_a_retired_or_retiring_model() -> None:
    config = parse_config(
        {
            "models": {
                "cheap": {"provider": "anthropic", "model": HAIKU_3},
                "big": {"provider": "openai", "model": "gpt-5"},
                # still served on Bedrock in Canada: Anthropic's retirement of its own Claude 3 Haiku is not warned
                "aws": {"provider": "bedrock", "model": f"anthropic.{HAIKU_3}-v1:0", "region": "ca-central-1"},
                "fine": {"provider": "anthropic", "model": "claude-haiku-4-5-20251001"},
            },
            "routes": {"triage": {"model": "cheap", "fallback": ["fine"]}, "smart": {"model": "fine"}},
        },
        "t.yaml",
    )
    found = check_config(config, environ={}, today=TODAY)
    assert found.errors == []
    retired, retiring = found.warnings
    assert retired.startswith(
        f"t.yaml: models.cheap.model: '{HAIKU_3}' was retired on 2026-04-20 "
        "(https://platform.claude.com/docs/en/about-claude/model-deprecations"
    ), retired
    assert "every call to it fails (used by routes.triage)" in retired, retired
    assert retiring.startswith(
        "t.yaml: models.big.model: 'gpt-5' retires on 2026-12-11, deprecated since 2026-06-11 (https://developers."
    ), retiring
    assert "every call to it will fail from that day (called by its name 'big')" in retiring, retiring
    # after its retirement, gpt-5 fails too
    assert "was retired on 2026-12-11" in check_config(config, environ={}, today=date(2026, 12, 11)).warnings[1]


def _groups() -> list[dict[str, Any]]:
    return [
        {
            "task": "triage",
            "region": None,
            "mode": "on_demand",
            "prompt_size": 0,
            "cache_parts": 0,
            "calls": 10,
            "input_tokens": 100_000,
            "output_tokens": 20_000,
            "cache_read_tokens": 0,
            "cache_write_tokens": 0,
            "cache_write_1h_tokens": 0,
            "prompt_tokens": 10_000,
            "cost_usd": None,
        }
    ]


def test_the_review_skips_a_retired_candidate_and_says_so() -> None:
    from tokenomy.analytics.review_lifecycle import not_proposed_line
    from tokenomy.analytics.review_models import candidates_for
    from tokenomy.commands.review import render

    in_use = "claude-sonnet-4-5-20250929"
    # Claude 3 Haiku is a cheaper model of another line: proposed while it was active and more than a quarter from
    # its retirement, with the day it retires
    before = candidates_for(in_use, _groups(), Decimal(1), date(2026, 1, 15))
    [haiku] = [c for c in before["candidates"] if c["model"] == HAIKU_3]
    assert (haiku["kind"], haiku["retires_on"]) == ("cheaper, other line", "2026-04-20")
    # Claude 3.5 Haiku, deprecated then (2025-12-19) and retiring on 2026-02-19, is not proposed: said apart
    legacy = {"model": "claude-3-5-haiku-20241022", "kind": haiku["kind"], "deprecated_on": "2025-12-19"}
    assert before["legacy"] == [{**legacy, "retires_on": "2026-02-19"}] and before["retired"] == []
    # Within a quarter of its retirement (78 days), not yet deprecated: a move to it would be next quarter's
    # retirement finding, so it is not proposed, and said apart with its day
    closer = candidates_for(in_use, _groups(), Decimal(1), date(2026, 2, 1))
    assert HAIKU_3 not in {c["model"] for c in closer["candidates"]}
    assert {"model": HAIKU_3, "kind": haiku["kind"], "retires_on": "2026-04-20"} in closer["legacy"]
    assert f"{HAIKU_3} (retires 2026-04-20)" in not_proposed_line([closer])
    # Deprecated (2026-02-19), no longer proposed, though every call to it still works until it retires
    deprecated = candidates_for(in_use, _groups(), Decimal(1), date(2026, 3, 1))
    assert HAIKU_3 not in {c["model"] for c in deprecated["candidates"]}
    assert {"model": HAIKU_3, "kind": haiku["kind"], "deprecated_on": "2026-02-19", "retires_on": "2026-04-20"} in (
        deprecated["legacy"]
    )

    info = candidates_for(in_use, _groups(), Decimal(1), TODAY)
    assert HAIKU_3 not in {c["model"] for c in info["candidates"]}
    assert {"model": HAIKU_3, "kind": "cheaper, other line", "retired_on": "2026-04-20"} in info["retired"]
    assert all(r["to"] != HAIKU_3 for r in info.get("per_task", []))
    out = StringIO()
    body = {
        "spend": {"current_usd": 0, "previous_usd": 0, "change_usd": 0, "forecast": {"unavailable": "-"}, "movers": {}},
        "period": {"label": "test", "days": 30},
        "models": [info],
        "habits": {"uncapped_outputs": {"note": "-"}},
        "actions": [],
    }
    render(body, Console(file=out, width=300))
    assert f"Not proposed, retired by their provider: claude-3-5-haiku-20241022 (retired 2026-02-19), {HAIKU_3} " in (
        out.getvalue()
    ), out.getvalue()
