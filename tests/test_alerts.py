"""alerts check: budget over limit and anomalies reported once; bad budget names its key."""

from __future__ import annotations

import json
from datetime import datetime, timezone
from decimal import Decimal

import pytest
from typer.testing import CliRunner

from tokenomy.analytics.alerts import validate_budgets
from tokenomy.cli import app
from tokenomy.errors import ConfigError
from tokenomy.ledger.events import UsageEvent
from tokenomy.ledger.store import open_store
from tests.test_report_anomalies import _ledger


def test_alerts_once(ledger_path, tmp_path) -> None:
    _ledger(ledger_path)
    from tokenomy.analytics.alerts import evaluate

    store = open_store(ledger_path)
    month = evaluate(store, [{"scope": "model", "match": "steady", "limit_usd": 5}],
                     now=datetime(2026, 9, 28, 23, tzinfo=timezone.utc))
    expected = sum(e.cost_usd for e in store.events() if e.model == "steady" and e.ts.month == 9)
    assert [a["spent_usd"] for a in month if a["kind"] == "budget"] == [expected]
    cfg = tmp_path / "tokenomy.yaml"
    cfg.write_text("budgets:\n  - {scope: model, match: steady, limit_usd: 5}\n")
    args = ["alerts", "check", "--json", "--config", str(cfg), "--ledger", str(ledger_path)]
    first = CliRunner().invoke(app, args)
    assert first.exit_code == 0, first.output
    kinds = sorted(a["kind"] for a in json.loads(first.output))
    assert "anomaly_spike" in kinds and "anomaly_drift" in kinds
    second = CliRunner().invoke(app, args)
    assert json.loads(second.output) == []


def test_bad_budget_names_key() -> None:
    with pytest.raises(ConfigError, match=r"budgets\[0\]\.limit_usd"):
        validate_budgets([{"scope": "model", "match": "x", "limit_usd": "lots"}])
