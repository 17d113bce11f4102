"""Reports match an independent Python computation over the same events (DuckDB and PostgreSQL)."""

from __future__ import annotations

import json
import random
from collections import defaultdict
from datetime import datetime, timedelta, timezone
from decimal import Decimal

import pytest
from typer.testing import CliRunner

from tokenomy.analytics.reports import run_report
from tokenomy.cli import app
from tokenomy.ledger.events import UsageEvent
from tokenomy.ledger.store import open_store


def _events(n: int = 300) -> list[UsageEvent]:
    rng = random.Random(7)
    start = datetime(2026, 10, 1, tzinfo=timezone.utc)
    out = []
    for i in range(n):
        model = rng.choice(["claude-3-haiku", "nova-micro", "gpt-4o-mini"])
        out.append(UsageEvent(ts=start + timedelta(minutes=7 * i), provider="bedrock", model=model,
                              input_tokens=rng.randint(10, 900), output_tokens=rng.randint(1, 300),
                              cache_read_tokens=rng.choice([0, 0, 500]), cache_write_tokens=rng.choice([0, 64]),
                              cost_usd=Decimal(rng.randint(1, 10**6)) / Decimal(10**9),
                              latency_ms=rng.uniform(50, 2000), ttft_ms=rng.uniform(10, 400)))
    return out


def _check(store) -> None:
    events = store.events()
    spend = {r["model"]: r["cost_usd"] for r in run_report(store, "spend", by="model")}
    expect: dict[str, Decimal] = defaultdict(Decimal)
    for e in events:
        expect[e.model] += e.cost_usd
    assert spend == expect
    rates = {r["model"]: r["cache_hit_rate"] for r in run_report(store, "cache-hit-rate", by="model")}
    for model in expect:
        mine = [e for e in events if e.model == model]
        read = sum(e.cache_read_tokens for e in mine)
        total = sum(e.input_tokens + e.cache_read_tokens + e.cache_write_tokens for e in mine)
        assert rates[model] == pytest.approx(read / total)
    import numpy as np
    lat = {r["model"]: r for r in run_report(store, "latency", by="model")}
    for model in expect:
        values = [e.latency_ms for e in events if e.model == model]
        assert lat[model]["p50_ms"] == pytest.approx(float(np.percentile(values, 50)))
        assert lat[model]["p95_ms"] == pytest.approx(float(np.percentile(values, 95)))


def test_reports_duckdb_and_cli(ledger_path) -> None:
    store = open_store(ledger_path)
    store.write(_events())
    _check(store)
    result = CliRunner().invoke(app, ["report", "spend", "--by", "model", "--json", "--ledger", str(ledger_path)])
    assert result.exit_code == 0, result.output
    rows = json.loads(result.output)
    assert {r["model"] for r in rows} == {"claude-3-haiku", "nova-micro", "gpt-4o-mini"}
    assert all(Decimal(r["cost_usd"]) > 0 for r in rows)


def test_reports_postgres(fresh_postgres_url) -> None:
    store = open_store(fresh_postgres_url)
    store.write(_events())
    _check(store)


@pytest.mark.parametrize("url_fixture", ["ledger_path", "fresh_postgres_url"])
def test_every_preset_runs(request, url_fixture) -> None:
    from tokenomy.analytics.reports import REPORTS

    store = open_store(request.getfixturevalue(url_fixture))
    events = _events(60)
    store.write(events)
    for name in REPORTS:
        rows = run_report(store, name, by="model")
        assert rows, name
    tokens = {r["model"]: r["output_tokens"] for r in run_report(store, "tokens", by="model")}
    assert sum(tokens.values()) == sum(e.output_tokens for e in events)
