"""FOCUS 1.2 export: every Mandatory column present with valid values; costs sum to the ledger; user tags kept."""

from __future__ import annotations

import csv
import json
from collections import defaultdict
from datetime import datetime
from decimal import Decimal
from pathlib import Path

import pytest
from typer.testing import CliRunner

from helpers.seeded_ledgers import _events
from tokenomy.cli import app
from tokenomy.ledger.store import open_store

# FOCUS 1.2 columns with feature level Mandatory (the spec's column list).
MANDATORY = [
    "BilledCost",
    "BillingAccountId",
    "BillingAccountName",
    "BillingCurrency",
    "BillingPeriodEnd",
    "BillingPeriodStart",
    "ChargeCategory",
    "ChargeClass",
    "ChargeDescription",
    "ChargePeriodEnd",
    "ChargePeriodStart",
    "ContractedCost",
    "EffectiveCost",
    "InvoiceIssuerName",
    "ListCost",
    "PricingQuantity",
    "PricingUnit",
    "ProviderName",
    "PublisherName",
    "ServiceCategory",
    "ServiceName",
    "ServiceSubcategory",
]
# Conditional columns that apply to metered token usage.
CONDITIONAL = [
    "ConsumedQuantity",
    "ConsumedUnit",
    "ContractedUnitPrice",
    "ListUnitPrice",
    "PricingCategory",
    "RegionId",
    "RegionName",
    "SkuId",
    "SkuMeter",
    "SkuPriceId",
    "Tags",
    "ChargeFrequency",
]
NOT_NULL = [
    "BilledCost",
    "BillingAccountId",
    "BillingCurrency",
    "BillingPeriodEnd",
    "BillingPeriodStart",
    "ChargeCategory",
    "ChargeDescription",
    "ChargePeriodEnd",
    "ChargePeriodStart",
    "ContractedCost",
    "EffectiveCost",
    "InvoiceIssuerName",
    "ListCost",
    "ProviderName",
    "PublisherName",
    "ServiceCategory",
    "ServiceName",
    "ServiceSubcategory",
]


def _time(text: str) -> datetime:
    assert text.endswith("Z"), text  # FOCUS date/time values are UTC in ISO 8601 with Z
    return datetime.fromisoformat(text.replace("Z", "+00:00"))


def test_focus_export(ledger_path, tmp_path) -> None:
    store = open_store(ledger_path)
    events = _events(120)
    for e in events:
        e.input_cost_usd = e.cost_usd
    store.write(events)
    out = tmp_path / "costs.csv"
    result = CliRunner().invoke(
        app, ["export", "focus", "--version", "1.2", "-o", str(out), "--ledger", str(ledger_path)]
    )
    assert result.exit_code == 0, result.output
    rows = list(csv.DictReader(out.open()))
    assert rows
    for column in MANDATORY + CONDITIONAL:
        assert column in rows[0], column
    for column in rows[0]:  # anything that is not FOCUS is a custom column with the x_ prefix
        assert column in MANDATORY + CONDITIONAL or column.startswith("x_"), column
    for row in rows:
        for column in NOT_NULL:
            assert row[column] != "", (column, row)
        assert row["ServiceCategory"] == "AI and Machine Learning" and row["ServiceSubcategory"] == "Generative AI"
        assert row["ChargeCategory"] == "Usage" and row["ChargeClass"] == ""  # not a correction
        assert row["ChargeFrequency"] in {"One-Time", "Recurring", "Usage-Based"}
        assert row["PricingCategory"] in {"Standard", "Dynamic", "Committed", "Other"}
        assert row["BillingCurrency"] == "USD"
        start, end = _time(row["ChargePeriodStart"]), _time(row["ChargePeriodEnd"])
        assert _time(row["BillingPeriodStart"]) <= start < end <= _time(row["BillingPeriodEnd"])
        assert Decimal(row["ConsumedQuantity"]) > 0 and row["ConsumedUnit"] == "Tokens"
        quantity, unit_price = Decimal(row["PricingQuantity"]), Decimal(row["ListUnitPrice"])
        assert Decimal(row["ListCost"]) == pytest.approx(quantity * unit_price, rel=Decimal("1e-9"))
        assert Decimal(row["EffectiveCost"]) <= Decimal(row["ListCost"])
        assert row["BilledCost"] == row["EffectiveCost"]  # no commitments or credits on token usage
        for column in ("BilledCost", "ListCost", "ListUnitPrice", "ContractedUnitPrice", "PricingQuantity"):
            text = row[column]  # one money rule: plain, at most 12 decimals (unit prices used to carry 28)
            assert "E" not in text.upper() and len(text.partition(".")[2]) <= 12, (column, text)
        assert len(row["ListUnitPrice"].partition(".")[2]) >= 4  # per 1M tokens, 4 places at least
        tags = json.loads(row["Tags"])
        assert isinstance(tags, dict) and all(isinstance(v, str) for v in tags.values())
    assert sum(Decimal(r["BilledCost"]) for r in rows if r["x_TokenType"] == "input") == sum(e.cost_usd for e in events)
    by_team: dict = defaultdict(Decimal)  # user tags survive, so spend can be allocated per team
    for row in rows:
        by_team[json.loads(row["Tags"]).get("team")] += Decimal(row["BilledCost"])
    want: dict = defaultdict(Decimal)
    for e in events:
        want[e.tags.get("team")] += e.cost_usd
    assert dict(by_team) == dict(want)


def test_focus_export_keeps_the_cost_of_imported_rows_that_give_only_a_total(ledger_path, tmp_path) -> None:
    # A row imported with cost_usd 5.00 and no split by token type used to vanish from the export (total 0.000750
    # instead of 5.000750), and its tokens at $0 halved the unit prices of the priced row beside it.
    usage = tmp_path / "usage.jsonl"
    line = {
        "ts": "2026-11-05T10:00:00Z",
        "provider": "openai",
        "model": "gpt-4o-mini",
        "input_tokens": 1000,
        "output_tokens": 1000,
    }
    usage.write_text(
        json.dumps({**line, "cost_usd": "5.00"}) + "\n" + json.dumps({**line, "ts": "2026-11-05T11:00Z"}) + "\n"
    )
    runner = CliRunner()
    assert runner.invoke(app, ["ledger", "import", str(usage), "--ledger", str(ledger_path)]).exit_code == 0
    out = tmp_path / "focus.csv"
    result = runner.invoke(app, ["export", "focus", "-o", str(out), "--ledger", str(ledger_path)])
    assert result.exit_code == 0, result.output
    rows = {row["x_TokenType"]: row for row in csv.DictReader(out.open())}
    assert sum(Decimal(row["BilledCost"]) for row in rows.values()) == Decimal("5.000750")
    assert sum(e.cost_usd for e in open_store(ledger_path).events()) == Decimal("5.000750")
    # gpt-4o-mini lists $0.15 / $0.60 per 1M tokens; the total-only row is one row for all its 2,000 tokens.
    assert (rows["input"]["ListUnitPrice"], rows["output"]["ListUnitPrice"]) == ("0.1500", "0.6000")
    assert (rows["all"]["ConsumedQuantity"], rows["all"]["BilledCost"], rows["all"]["ListUnitPrice"]) == (
        "2000",
        "5.000000",
        "2500.0000",
    )


def test_focus_export_gives_one_cloud_one_provider_name(ledger_path, tmp_path) -> None:
    # Metered Bedrock calls (provider aws.bedrock) came out as ProviderName "aws.bedrock" / "aws.bedrock API"
    # beside the same cloud's imported bill as "Amazon Web Services"; Gemini and Vertex as "gemini API" ...
    from tokenomy.ledger.events import UsageEvent

    def row(day: int, provider: str, **extra) -> UsageEvent:
        return UsageEvent(
            ts=datetime.fromisoformat(f"2026-11-{day:02d}T10:00:00+00:00"),
            provider=provider,
            model="m",
            input_tokens=1000,
            input_cost_usd=Decimal("0.001"),
            cost_usd=Decimal("0.001"),
            **extra,
        )

    open_store(ledger_path).write(
        [
            row(1, "aws.bedrock"),
            row(2, "bedrock", priced_by="billed"),  # a metered day, and a billed (CUR) day
            row(1, "gcp.vertex_ai"),
            row(2, "vertex", priced_by="billed"),
            row(1, "gcp.gemini"),
            row(1, "gemini"),
            row(1, "google"),
            row(1, "gcp.gen_ai"),  # came out as "google" / "google API"
            row(1, "azure.ai.openai"),
            row(1, "azure"),
            row(1, "openai"),
            row(1, "anthropic"),
        ]
    )
    out = tmp_path / "focus.csv"
    result = CliRunner().invoke(app, ["export", "focus", "-o", str(out), "--ledger", str(ledger_path)])
    assert result.exit_code == 0, result.output
    names = defaultdict(set)
    for r in csv.DictReader(out.open()):
        names[json.loads(r["Tags"])["x_provider"]].add((r["ProviderName"], r["InvoiceIssuerName"], r["ServiceName"]))
    assert names == {
        "bedrock": {("Amazon Web Services", "Amazon Web Services", "Amazon Bedrock")},
        "vertex": {("Google Cloud", "Google Cloud", "Vertex AI")},
        "gemini": {("Google Cloud", "Google Cloud", "Gemini API")},
        "azure": {("Microsoft", "Microsoft", "Azure OpenAI")},
        "openai": {("OpenAI", "OpenAI", "OpenAI API")},
        "anthropic": {("Anthropic", "Anthropic", "Anthropic API")},
    }


def test_focus_export_keeps_a_cost_whose_token_type_has_no_tokens(ledger_path, tmp_path) -> None:
    """Anthropic's cost report alone gives each token type's cost and no tokens: the export skipped every type with
    0 tokens, so its file held $0.01 of the ledger's $0.0623."""
    exports = Path(__file__).parent / "billing_exports"
    runner = CliRunner()
    cost = ["import", "anthropic-usage", str(exports / "anthropic_cost_report.json"), "--ledger", str(ledger_path)]
    assert runner.invoke(app, cost).exit_code == 0
    out = tmp_path / "focus.csv"
    result = runner.invoke(app, ["export", "focus", "-o", str(out), "--ledger", str(ledger_path)])
    assert result.exit_code == 0, result.output
    rows = list(csv.DictReader(out.open()))
    total = sum(e.cost_usd for e in open_store(ledger_path).events())
    assert total == Decimal("0.0623") and sum(Decimal(row["BilledCost"]) for row in rows) == total
    typed = [row for row in rows if row["x_TokenType"] not in ("other", "all")]
    assert typed and all(row["ConsumedQuantity"] == "0" for row in typed)


def test_focus_export_counts_no_call_for_a_cache_storage_row_or_a_bill(ledger_path, tmp_path) -> None:
    """x_Calls is the calls a line stands for: a context cache's storage row (cost over time) and an imported bill's
    day are none, as every report counts them; each read as one call."""
    from datetime import UTC

    from tokenomy.ledger.events import STORAGE_MODE, UsageEvent

    day = datetime(2026, 11, 3, 12, tzinfo=UTC)
    store = open_store(ledger_path)
    store.write([
        UsageEvent(ts=day, provider="gcp.gemini", model="gemini-2.5-flash", region="global", input_tokens=100,
                   input_cost_usd=Decimal("0.00003"), cost_usd=Decimal("0.00003")),
        UsageEvent(ts=day, provider="gcp.gemini", model="gemini-2.5-flash", region="global", mode=STORAGE_MODE,
                   cost_usd=Decimal("0.04"), request_id="cachedContents/c1"),
        UsageEvent(ts=day, provider="openai", model="gpt-4o-mini", input_tokens=9000, cost_usd=Decimal("0.5"),
                   input_cost_usd=Decimal("0.5"), priced_by="billed", tags={"source": "openai_usage"}),
    ])  # fmt: skip
    out = tmp_path / "focus.csv"
    assert CliRunner().invoke(app, ["export", "focus", "-o", str(out), "--ledger", str(ledger_path)]).exit_code == 0
    calls = {(r["x_Mode"], r["ProviderName"]): r["x_Calls"] for r in csv.DictReader(out.open())}
    google = "Google Cloud"
    assert calls == {("on_demand", google): "1", (STORAGE_MODE, google): "0", ("on_demand", "OpenAI"): "0"}
