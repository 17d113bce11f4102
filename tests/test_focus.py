"""FOCUS 1.2 export: mandatory columns present with valid values; costs sum to the ledger."""

from __future__ import annotations

import csv
import json
from datetime import datetime
from decimal import Decimal

from typer.testing import CliRunner

from tokenomy.cli import app
from tokenomy.ledger.store import open_store
from tests.test_reports import _events

MANDATORY = ["BilledCost", "BillingAccountId", "BillingAccountName", "BillingCurrency", "BillingPeriodEnd",
             "BillingPeriodStart", "ChargeCategory", "ChargeClass", "ChargeDescription", "ChargePeriodEnd",
             "ChargePeriodStart", "ContractedCost", "EffectiveCost", "InvoiceIssuerName", "ListCost",
             "PricingQuantity", "PricingUnit", "ProviderName", "PublisherName", "ServiceCategory", "ServiceName",
             "ServiceSubcategory", "ConsumedQuantity", "ConsumedUnit", "SkuId", "RegionId", "Tags"]


def test_focus_export(ledger_path, tmp_path) -> None:
    store = open_store(ledger_path)
    events = _events(120)
    for e in events:
        e.input_cost_usd = e.cost_usd
    store.write(events)
    out = tmp_path / "costs.csv"
    result = CliRunner().invoke(app, ["export", "focus", "--version", "1.2", "-o", str(out),
                                      "--ledger", str(ledger_path)])
    assert result.exit_code == 0, result.output
    rows = list(csv.DictReader(out.open()))
    assert rows
    for column in MANDATORY:
        assert column in rows[0], column
    for row in rows:
        assert row["ServiceCategory"] == "AI and Machine Learning"
        assert row["ChargeCategory"] in {"Usage", "Purchase", "Tax", "Credit", "Adjustment"}
        assert row["BillingCurrency"] == "USD"
        start = datetime.fromisoformat(row["ChargePeriodStart"].replace("Z", "+00:00"))
        end = datetime.fromisoformat(row["ChargePeriodEnd"].replace("Z", "+00:00"))
        assert end > start
        assert Decimal(row["ConsumedQuantity"]) > 0
        assert isinstance(json.loads(row["Tags"]), dict)
        assert all(not k.startswith("x_") or k in {"x_Model", "x_TokenType", "x_Mode", "x_Calls"} for k in row)
    assert sum(Decimal(r["BilledCost"]) for r in rows if r["x_TokenType"] == "input") == \
        sum(e.cost_usd for e in events)
