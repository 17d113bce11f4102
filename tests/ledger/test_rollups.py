"""Hourly rollups: reports over them equal reports over the raw events, whatever the window, on every engine;
writes add each event once; a ledger filled without them is backfilled on open."""

from __future__ import annotations

import statistics
from dataclasses import replace
from datetime import timedelta
from decimal import Decimal

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


def test_any_tag_key_is_written_and_reported(tmp_path) -> None:
    """A tag key is any client's text (`x-tokenomy-tags: {"a\\"b": "1"}`): on DuckDB a '"', a backslash or an
    empty key made the rollup's JSON path malformed, failing the whole write (the gateway's flush retried it
    forever, with every other call in the batch)."""
    store = open_store(tmp_path / "ledger.duckdb")
    keys = ['a"b', "c\\d", "", "模型", "x/y~z", "$.e", "plain"]
    events = [replace(e, tags={k: f"v{i}" for i, k in enumerate(keys)}) for e in _events()[:20]]
    store.write(events)
    assert store.count() == len(events)
    since, until = min(e.ts for e in events) - timedelta(days=1), max(e.ts for e in events) + timedelta(days=1)
    tags = run_report(store, "cost-per-tag", since=since, until=until, now=NOW)
    expected = sum(e.cost_usd for e in events)
    assert sorted((r["tag_key"], r["tag_value"], r["cost_usd"]) for r in tags) == sorted(
        (k, f"v{i}", expected) for i, k in enumerate(keys)
    )
    raw = run_report(replace_rollups(store, False), "cost-per-tag", since=since, until=until, now=NOW)
    assert raw == tags


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
        return UsageEvent(
            ts=ts,
            provider=provider,
            model="billed-model",
            cost_usd=Decimal(cost),
            input_tokens=1000,
            priced_by="billed",
            event_id=f"bill-{n}",
            tags={"source": "focus"},
        )

    bills = [
        bill("bedrock", first, "7.25", 1),  # the aws.bedrock calls' day: reconciled, not spend
        bill("bedrock", first - timedelta(days=90), "3.50", 2),  # nothing metered that day: spend
        bill("vertex", first, "1.10", 3),
    ]  # a provider never metered: spend
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


def test_ledger_stats_counts_a_bill_only_where_the_reports_do(store) -> None:
    """`ledger stats` summed every row: a bill imported for a day whose calls were metered was counted twice, so its
    total was above `report spend`'s for the same ledger."""
    from tokenomy.ledger.events import UsageEvent
    from tokenomy.ledger.summary import spend_summary

    metered = _events_with_nulls()
    day = metered[0].ts.replace(hour=0, minute=0, second=0, microsecond=0)
    bills = [
        UsageEvent(
            ts=ts,
            provider=metered[0].provider,
            model=metered[0].model,
            cost_usd=Decimal(cost),
            input_tokens=1000,
            priced_by="billed",
            event_id=f"bill-{n}",
        )
        for n, (ts, cost) in enumerate([(day, "7.25"), (day - timedelta(days=90), "3.50")])
    ]
    store.write(metered + bills)
    spend = run_report(store, "spend", since=day - timedelta(days=400), until=NOW + timedelta(days=1))
    want = sum((e.cost_usd for e in metered), Decimal(0)) + Decimal("3.50")  # the first bill is the metered day's
    assert sum((r["cost_usd"] for r in spend), Decimal(0)) == want
    stats = {r["model"]: r for r in spend_summary(store)}
    assert stats["ALL"]["cost_usd"] == want
    assert stats["ALL"]["input_tokens"] == sum(e.input_tokens for e in metered) + 1000


def _skewed_events(n: int = 3000) -> list:
    """Latencies over five orders of magnitude (log-normal, a heavy tail), with zeros, NULLs and sub-millisecond
    values; several tenants and models; spread over 12 days before NOW."""
    import random

    from tokenomy.ledger.events import UsageEvent

    rng = random.Random(11)
    models = ["anthropic.claude-3-haiku", "amazon.nova-micro", "gpt-4o-mini", "meta.llama3-8b"]
    out = []
    for i in range(n):
        model = models[i % 4]
        latency = rng.lognormvariate(5 + i % 4, 1.6) if i % 4 != 3 else rng.paretovariate(0.9) * 40
        if i % 97 == 0:
            latency = 0.0
        elif i % 89 == 0:
            latency = rng.uniform(0.01, 0.9)
        out.append(
            UsageEvent(
                ts=NOW - timedelta(hours=rng.uniform(0, 12 * 24)),
                provider="bedrock" if i % 3 else "openai",
                model=model,
                tenant=f"t{i % 5}" if i % 2 else None,
                latency_ms=None if i % 53 == 0 else latency,
                ttft_ms=None if i % 3 == 0 else rng.expovariate(1 / 80),
                cost_usd=Decimal("0.0001"),
                event_id=f"skew-{i}",
            )
        )
    return out


LATENCY_WINDOWS = [
    (None, None),  # whole ledger: histograms only
    (NOW - timedelta(days=9, hours=13, minutes=27), NOW - timedelta(days=1, hours=5, minutes=10)),  # partial days
    (NOW - timedelta(days=6), NOW - timedelta(days=2)),  # whole days (NOW is noon: raw half days at both ends)
    (NOW - timedelta(days=3, hours=2), NOW - timedelta(days=2, hours=20, minutes=3)),  # inside one day: raw only
]


def test_latency_histograms_within_the_stated_bound_of_exact(store) -> None:
    """The default latency report (histograms for whole days, raw edges bucketed alike) is within RELATIVE_ERROR
    of the exact percentile for every group, grouping and window, and counts the same calls."""
    from tokenomy.ledger.latency_rollup import RELATIVE_ERROR

    store.write(_skewed_events())
    columns = ("p50_ms", "p95_ms", "ttft_p50_ms", "ttft_p95_ms")
    checked = 0
    for since, until in LATENCY_WINDOWS:
        for by in ("model", "family", "tenant", "provider"):
            fast = run_report(store, "latency", by=by, since=since, until=until)
            exact = run_report(store, "latency", by=by, since=since, until=until, exact=True)
            assert [r[by] for r in fast] == [r[by] for r in exact] and fast, (by, since)
            for got, want in zip(fast, exact, strict=True):
                assert got["calls"] == want["calls"], (by, since, got, want)
                for column in columns:
                    if want[column] is None:
                        assert got[column] is None
                        continue
                    assert abs(got[column] - float(want[column])) <= RELATIVE_ERROR * float(want[column]) + 1e-9, (
                        by, since, column, got, want)  # fmt: skip
                    checked += 1
    assert checked > 100


def _histogram(store) -> dict:
    rows = store.query(
        "SELECT day, model, tenant, measure, bucket, SUM(calls) AS n FROM latency_daily "
        "GROUP BY day, model, tenant, measure, bucket"
    )
    return {(r["day"], r["model"], r["tenant"], r["measure"], r["bucket"]): int(r["n"]) for r in rows}


def test_write_path_and_backfill_give_the_same_histogram(store) -> None:
    events = _skewed_events(1200)
    for start in range(0, len(events), 300):  # several writes add to the same days' buckets
        store.write(events[start : start + 400])  # overlapping: repeats add nothing
    written = _histogram(store)
    assert sum(n for (_, _, _, measure, _), n in written.items() if measure == "latency_ms") == len(events)
    store.rebuild_rollups()
    assert _histogram(store) == written


def test_old_rollup_version_gets_latency_histograms_on_open(store) -> None:
    """A ledger whose rollups predate the histograms (rollup_version 2) has them built on its next open."""
    store.write(_skewed_events(400))
    store.execute("DELETE FROM latency_daily WHERE 1 = 1")
    store.execute("DELETE FROM tokenomy_meta WHERE key = 'rollup_version'")
    store.execute("INSERT INTO tokenomy_meta (key, value) VALUES ('rollup_version', '2')")
    reopened = open_store(store.url)
    counts = reopened.query("SELECT measure, SUM(calls) AS n FROM latency_daily GROUP BY measure ORDER BY measure")
    assert [(r["measure"], int(r["n"])) for r in counts] == [("latency_ms", 400), ("ttft_ms", 400)]
    _same_reports(reopened)


def test_clickhouse_query_gives_null_where_clickhouse_gives_nan(tmp_path) -> None:
    """Every caller of the ClickHouse store's query() gets NULL (None) for an aggregate of no values, as SQL does."""
    store = open_store(f"chdb:{tmp_path / 'ledger.chdb'}")
    row = store.query("SELECT avg(latency_ms) AS a, quantileExactInclusive(0.5)(latency_ms) AS q FROM usage_events")
    assert row == [{"a": None, "q": None}]


def test_ledger_stats_summary_is_the_same_on_every_engine(store) -> None:
    """`ledger stats` on a ClickHouse ledger was a syntax error (PostgreSQL's percentile_cont ... WITHIN GROUP)."""
    from tokenomy.ledger.summary import spend_summary

    events = _events_with_nulls()
    store.write(events)
    rows = {r["model"]: r for r in spend_summary(store)}
    answered = [e for e in events if e.outcome == "ok"]
    assert sorted(rows) == sorted({e.model for e in events} | {"ALL"})
    assert rows["ALL"]["cost_usd"] == sum(e.cost_usd for e in events)
    assert rows["ALL"]["requests"] == len(answered)
    assert rows["ALL"]["input_tokens"] == sum(e.input_tokens for e in events)
    latencies = sorted(e.latency_ms for e in answered)
    assert abs(rows["ALL"]["latency_p50_ms"] - statistics.quantiles(latencies, n=2, method="inclusive")[0]) < 1e-6


def test_histograms_that_counted_every_attempt_are_rebuilt_to_answered_calls(store) -> None:
    """Rollup version 4 histograms counted throttled and failed attempts in the latency buckets; such a ledger has
    them rebuilt on its next open, and later writes (ClickHouse: its views, recreated) count answered calls only."""
    from tokenomy.ledger import latency_rollup
    from tokenomy.ledger.events import UsageEvent

    def call(i: int, outcome: str) -> UsageEvent:
        return UsageEvent(ts=NOW - timedelta(days=3, minutes=i), provider="anthropic", model="claude-3-haiku",
                          latency_ms=120.0 if outcome != "ok" else 1000.0 + i, outcome=outcome)  # fmt: skip

    store.write([call(i, "ok" if i % 3 == 0 else "throttled") for i in range(30)])  # 10 answered, 20 throttled
    # The histograms as version 4 wrote them: every attempt counted, whatever its outcome.
    columns = ", ".join(("ts", *latency_rollup.HIST_DIMENSIONS, *latency_rollup.MEASURES))
    every = f"(SELECT {columns}, 'ok' AS outcome FROM usage_events) AS every_attempt"
    store.execute("DELETE FROM latency_daily WHERE 1 = 1")
    for measure in latency_rollup.MEASURES:
        store.execute(latency_rollup.histogram_insert(store.dialect, every, measure, upsert=False))
    store.execute("DELETE FROM tokenomy_meta WHERE key = 'rollup_version'")
    store.execute("INSERT INTO tokenomy_meta (key, value) VALUES ('rollup_version', '4')")
    assert run_report(store, "latency", since=NOW - timedelta(days=30), until=NOW)[0]["calls"] == 30
    reopened = open_store(store.url)
    reopened.write([call(i, "throttled") for i in range(100, 110)] + [call(200, "ok")])
    [row] = run_report(reopened, "latency", since=NOW - timedelta(days=30), until=NOW)
    assert row["calls"] == 11
    assert row["p50_ms"] == pytest.approx(1000.0 + 15, rel=latency_rollup.RELATIVE_ERROR)  # 0, 3, ..., 27 and 200
