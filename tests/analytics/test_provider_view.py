"""The dashboard's provider view over metered calls and imported bills: every figure against a computation of
its own from the rows written, on DuckDB and PostgreSQL, and the section in `/dashboard/api/providers` and in
`tokenomy report --html`."""

from __future__ import annotations

from collections import defaultdict
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from pathlib import Path

import pytest
from typer.testing import CliRunner

from tokenomy.analytics.dashboard_filters import Filters
from tokenomy.analytics.dashboard_providers import providers
from tokenomy.cli import app
from tokenomy.ledger.events import UsageEvent
from tokenomy.ledger.store import open_store

EXPORTS = Path(__file__).parent / "billing_exports"
D1 = datetime(2025, 11, 24, tzinfo=UTC)
END = D1 + timedelta(days=2)


def _metered() -> list[UsageEvent]:
    return [
        UsageEvent(
            ts=D1 + timedelta(hours=h),
            provider="openai",
            model="gpt-4o-mini-2024-07-18",
            input_tokens=100 * h,
            output_tokens=10 * h,
            cache_read_tokens=50 * h,
            input_cost_usd=Decimal("0.0001") * h,
            output_cost_usd=Decimal("0.00002") * h,
            cache_read_cost_usd=Decimal("0.000004") * h,
            cost_usd=Decimal("0.000124") * h,
            priced_by="tokenomy-catalog",
        )
        for h in (1, 2, 30)
    ]  # the last on day 2


@pytest.mark.parametrize("url_fixture", ["ledger_path", "fresh_postgres_url"])
def test_provider_view_counts_bills_once(request, url_fixture) -> None:
    url = str(request.getfixturevalue(url_fixture))
    store = open_store(url)
    metered = _metered()
    store.write(metered)
    for args in (
        ["openai-usage", str(EXPORTS / "openai_usage_and_costs.jsonl")],
        ["anthropic-usage", str(EXPORTS / "anthropic_usage_report.json"), str(EXPORTS / "anthropic_cost_report.json")],
    ):
        assert CliRunner().invoke(app, ["import", *args, "--ledger", url]).exit_code == 0
    billed = [e for e in store.events() if e.priced_by == "billed"]
    # OpenAI is metered on both days, so its bill is reconciled, not shown; Anthropic only the bill knows.
    shown = metered + [e for e in billed if e.provider == "anthropic"]
    view = providers(store, Filters(since=D1 - timedelta(days=30), until=END))

    monthly: dict[str, Decimal] = defaultdict(Decimal)
    for e in shown:
        monthly[e.provider] += e.cost_usd
    assert {(r["month"], r["provider"]): Decimal(r["cost_usd"]) for r in view["monthly"]} == {
        ("2025-11", p): c for p, c in monthly.items()
    }
    families: dict[tuple, Decimal] = defaultdict(Decimal)
    for e in shown:
        family = next((f for f in ("gpt", "claude") if f in e.model), "other")  # "Web search" is no model
        families[(e.ts.date().isoformat(), family)] += e.cost_usd
    assert {(r["day"], r["family"]): Decimal(r["cost_usd"]) for r in view["family_daily"]} == dict(families)
    openai = next(r for r in view["usage_types"] if r["provider"] == "openai")
    assert (openai["input_tokens"], openai["cache_read_tokens"]) == (3300, 1650)
    anthropic = next(r for r in view["usage_types"] if r["provider"] == "anthropic")
    batch = sum(
        e.input_tokens + e.output_tokens + e.cache_read_tokens + e.cache_write_tokens
        for e in shown
        if e.provider == "anthropic" and e.mode == "batch"
    )
    assert anthropic["batch_tokens"] == batch == 10_000
    hourly = {(r["hour"], r["provider"]): r["tokens"] for r in view["hourly"]}
    assert hourly[("2025-11-25T06:00", "openai")] == 30 * 160 and ("2025-11-24T01:00", "openai") in hourly
    # Model | Cached | Monthly cost | Token usage: the cache-read/write part of each model apart from the rest
    table = {(r["model"], r["cached"]): (Decimal(r["monthly_cost_usd"]), r["token_usage"]) for r in view["models"]}
    assert table[("gpt-4o-mini-2024-07-18", "yes")] == (Decimal("0.000004") * 33, 50 * 33)
    assert table[("gpt-4o-mini-2024-07-18", "no")] == (Decimal("0.000120") * 33, 110 * 33)
    haiku = [e for e in shown if e.model == "claude-3-5-haiku-20241022"]
    assert table[("claude-3-5-haiku-20241022", "yes")][1] == sum(
        e.cache_read_tokens + e.cache_write_tokens for e in haiku
    )


def test_provider_view_in_the_html_report(ledger_path, tmp_path) -> None:
    store = open_store(ledger_path)
    store.write(_metered())
    out = tmp_path / "report.html"
    result = CliRunner().invoke(
        app,
        ["report", "--html", str(out), "--since", "2025-11-01", "--until", "2025-11-26", "--ledger", str(ledger_path)],
    )
    assert result.exit_code == 0, result.output
    html = out.read_text()
    assert 'id="chart-provider-monthly"' in html and "window.TokenomyProviders" in html
    assert '"providers": {"monthly": [{"month": "2025-11", "provider": "openai"' in html
