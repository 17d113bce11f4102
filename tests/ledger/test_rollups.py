"""Hourly rollups: reports over them equal reports over the raw events, whatever the window, on every engine;
writes add each event once; a ledger filled without them is backfilled on open."""

from __future__ import annotations

from dataclasses import replace
from datetime import timedelta

import pytest

from helpers.seeded_ledgers import NOW, _events
from tokenomy.analytics.reports import PRESETS, REPORTS, run_report
from tokenomy.ledger.store import open_store

WINDOWS = [
    (None, None),  # whole ledger: rollups only
    (NOW - timedelta(days=20), NOW - timedelta(days=2)),  # whole hours
    (NOW - timedelta(days=20, minutes=17), NOW - timedelta(hours=30, seconds=5)),  # raw edges at both ends
    (NOW - timedelta(hours=5, minutes=50), NOW - timedelta(hours=5, minutes=10)),  # inside one hour: raw only
    (NOW - timedelta(hours=6, minutes=50), NOW - timedelta(hours=5, minutes=10)),  # two partial hours, no whole one
]


def _all_reports(store) -> dict:
    out = {}
    for since, until in WINDOWS:
        for name in REPORTS:
            # A fixed-grouping preset may not take --by; the others also run grouped by family and tenant.
            for by in [None] if PRESETS[name].by is None else [None, "family", "tenant"]:
                rows = run_report(store, name, by=by, since=since, until=until, now=NOW, expected={"weak": 0.5})
                out[(name, by, since, until)] = rows
    return out


def _same_reports(store) -> None:
    """Every preset, window and grouping gives identical rows (Decimal money included) with and without rollups."""
    with_rollups = _all_reports(store)
    assert any(with_rollups.values())
    raw = replace_rollups(store, False)
    without = _all_reports(raw)
    for key, rows in with_rollups.items():
        assert rows == without[key], key


def replace_rollups(store, enabled: bool):
    clone = object.__new__(type(store))
    clone.__dict__.update(store.__dict__)
    clone.rollups = enabled
    return clone


def _events_with_nulls():
    events = _events()
    # Grouping columns NULL in some events and set in others: NULL must stay NULL, not become a marker.
    for i, event in enumerate(events):
        if i % 3 == 0:
            events[i] = replace(event, tenant="acme", key_id=f"k{i % 2}", route="chat", region=None)
        if i % 7 == 0:
            events[i] = replace(event, task=None, tier=None)
    return events


@pytest.fixture(params=["duckdb", "postgres", "clickhouse"])
def store(request, tmp_path):
    if request.param == "duckdb":
        return open_store(tmp_path / "ledger.duckdb")
    if request.param == "clickhouse":  # embedded (chDB): rollups kept by materialized views
        return open_store(f"chdb:{tmp_path / 'ledger.chdb'}")
    return open_store(request.getfixturevalue("fresh_postgres_url"))


def test_reports_over_rollups_equal_raw(store) -> None:
    store.write(_events_with_nulls())
    _same_reports(store)


def test_writes_add_each_event_once(store) -> None:
    events = _events_with_nulls()
    store.write(events[:250])
    store.write(events[200:])  # 50 events written again, in a batch with new ones
    store.write(events[10:20])  # a batch of repeats only
    store.write([events[0], events[0]])  # the same id twice in one batch
    assert store.count() == len(events)
    calls = store.query("SELECT SUM(calls) AS n FROM usage_hourly")[0]["n"]
    assert int(calls) == len(events)
    tagged = sum(len(e.tags) for e in events)
    assert int(store.query("SELECT SUM(calls) AS n FROM usage_tags_hourly")[0]["n"]) == tagged
    _same_reports(store)


def test_ledger_without_rollups_is_backfilled_on_open(store) -> None:
    store.write(_events_with_nulls())
    # As a ledger made before rollups (or filled with plain SQL): rollups empty, no rollup_version.
    store.execute("DELETE FROM usage_hourly WHERE 1 = 1")
    store.execute("DELETE FROM usage_tags_hourly WHERE 1 = 1")
    store.execute("DELETE FROM tokenomy_meta WHERE key = 'rollup_version'")
    reopened = open_store(store.url)
    assert int(reopened.query("SELECT SUM(calls) AS n FROM usage_hourly")[0]["n"]) == reopened.count()
    _same_reports(reopened)


def test_duckdb_row_by_row_fallback_feeds_the_rollups_too(tmp_path, monkeypatch) -> None:
    """A batch Arrow cannot type is staged row by row; the new events still reach the rollups once."""
    import pyarrow as pa

    store = open_store(tmp_path / "ledger.duckdb")

    def cannot_type(*args, **kwargs):
        raise pa.ArrowInvalid("mixed types")

    monkeypatch.setattr(pa, "table", cannot_type)
    events = _events()[:40]
    store.write(events)
    store.write(events[:10])
    monkeypatch.undo()
    assert store.count() == 40
    assert int(store.query("SELECT SUM(calls) AS n FROM usage_hourly")[0]["n"]) == 40


def test_billed_rows_count_only_on_provider_days_nothing_metered(store) -> None:
    """Imported bills next to metered calls (ledger/spend.py): a billed row on a provider-day with metered calls
    is reconciled, not added; on any other day it is spend. `aws.bedrock` calls pair with a `bedrock` bill.
    Every preset agrees with and without rollups, and the spend total matches a computation of its own."""
    from decimal import Decimal

    from tokenomy.ledger.events import UsageEvent
    from tokenomy.ledger.spend import canonical_provider

    metered = _events_with_nulls()
    metered[0] = replace(metered[0], provider="aws.bedrock")
    days = {(canonical_provider(e.provider), e.ts.date()) for e in metered}
    first = metered[0].ts.replace(hour=0, minute=0, second=0, microsecond=0)

    def bill(provider: str, ts, cost: str, n: int) -> UsageEvent:
        return UsageEvent(ts=ts, provider=provider, model="billed-model", cost_usd=Decimal(cost), input_tokens=1000,
                          priced_by="billed", event_id=f"bill-{n}", tags={"source": "focus"})

    bills = [bill("bedrock", first, "7.25", 1),  # the aws.bedrock calls' day: reconciled, not spend
             bill("bedrock", first - timedelta(days=90), "3.50", 2),  # nothing metered that day: spend
             bill("vertex", first, "1.10", 3)]  # a provider never metered: spend
    store.write(metered + bills)
    counted = [b for b in bills if (canonical_provider(b.provider), b.ts.date()) not in days]
    assert [b.event_id for b in counted] == ["bill-2", "bill-3"]
    spend = run_report(store, "spend", by="provider", since=first - timedelta(days=400), until=NOW + timedelta(days=1))
    want = sum((e.cost_usd for e in metered), Decimal(0)) + sum((b.cost_usd for b in counted), Decimal(0))
    assert sum((r["cost_usd"] for r in spend), Decimal(0)) == want
    assert {r["provider"]: r["cost_usd"] for r in spend}["vertex"] == Decimal("1.10")
    tags = run_report(store, "cost-per-tag", since=first - timedelta(days=400), until=NOW + timedelta(days=1))
    assert [(r["tag_value"], r["cost_usd"]) for r in tags if r["tag_key"] == "source"] == [("focus", Decimal("4.60"))]
    _same_reports(store)
