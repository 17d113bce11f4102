"""Daily latency histograms of the ledger, kept on write, so latency percentiles over millions of calls read
thousands of rows.

Percentiles do not add up the way sums do, but counts per value bucket do. `latency_daily` holds, per UTC day,
per combination of the grouping columns and per measure (latency_ms, ttft_ms), how many answered calls (outcome ok:
ledger/spend.is_answered_sql; a throttled or failed attempt is no answer and its time no latency) fell in each
log-spaced bucket: bucket i holds the values in (GAMMA^(i-1), GAMMA^i] (the DDSketch layout). A percentile read
from merged counts takes each bucket's value as 2*GAMMA^i/(GAMMA+1), which is within RELATIVE_ERROR
((GAMMA-1)/(GAMMA+1), 0.99% for GAMMA 1.02) of every value in the bucket, so of the exact percentile too, also
where two ranks are interpolated as percentile_cont does. That bound holds for values from GAMMA^MIN_BUCKET
(~0.4 microseconds) to GAMMA^MAX_BUCKET (~35 years); values beyond are clamped into the end buckets. Values
<= 0 have a bucket of their own read as 0; a NULL value has one that counts the call and no percentile.

Why days and not hours: a bucket row saves work only where it stands for many calls. In the report benchmark
(10 M calls over 90 days) a group sees a few hundred calls an hour, spread over ~400 buckets per measure, so
hourly histograms would hold about as many rows as there are events. Daily ones held 0.47 M rows for 1 M events
there, and their count levels off once a group's day fills its buckets (a few hundred per measure), so it grows
far slower than the events. The partial days at a window's edges are read from raw events and bucketed by the
same SQL, so a report gives the same counts with and without the histograms.

`outcome` is left out of the key (only answered calls are counted), which halves the rows of a typical ledger.
DuckDB and PostgreSQL add the events a write really inserted in the same transaction as the events
(ledger/store.py); ClickHouse keeps the histograms with materialized views (ledger/clickhouse.py).
"""

from __future__ import annotations

import math
from datetime import datetime
from typing import Any

from tokenomy.ledger.rollups import DIMENSIONS, NULL_MARK, _mark, _split, time_range
from tokenomy.ledger.spend import is_answered_sql

GAMMA = 1.02
RELATIVE_ERROR = (GAMMA - 1) / (GAMMA + 1)  # 0.0099: the bound a histogram percentile keeps to the exact one
MIN_BUCKET, MAX_BUCKET = -400, 1400  # GAMMA^-400 ~ 0.36 us, GAMMA^1400 ~ 1.1e12 ms: at most 1,803 buckets
ZERO_BUCKET = MIN_BUCKET - 1  # values <= 0
NULL_BUCKET = MIN_BUCKET - 2  # no value: the call counts, the percentiles do not see it
MEASURES = ("latency_ms", "ttft_ms")
HIST_DIMENSIONS = tuple(d for d in DIMENSIONS if d != "outcome")
KEYS = ("day", *HIST_DIMENSIONS, "measure", "bucket")
DDL = (
    "CREATE TABLE IF NOT EXISTS latency_daily (day TIMESTAMPTZ NOT NULL, "
    + ", ".join(f"{d} TEXT NOT NULL" for d in HIST_DIMENSIONS)
    + ", measure TEXT NOT NULL, bucket INTEGER NOT NULL, calls BIGINT NOT NULL"
    + f", PRIMARY KEY ({', '.join(KEYS)}))"
)


def bucket_sql(column: str) -> str:
    """SQL for the bucket of `column` (the same text on every engine; the log's argument is kept positive because
    ClickHouse evaluates every branch of a CASE)."""
    index = f"CEIL(LN(GREATEST({column}, 1e-300)) / {math.log(GAMMA)!r})"
    clamped = f"LEAST(GREATEST({index}, {MIN_BUCKET}), {MAX_BUCKET})"
    return (
        f"CAST(CASE WHEN {column} IS NULL THEN {NULL_BUCKET} WHEN {column} <= 0 THEN {ZERO_BUCKET} "
        f"ELSE {clamped} END AS INTEGER)"
    )


def day_sql(dialect: str) -> str:
    """`ts` truncated to its UTC day, as a timestamp (ClickHouse's date_trunc would give a Date)."""
    return "toStartOfDay(ts)" if dialect == "clickhouse" else "date_trunc('day', ts)"


def histogram_select(dialect: str, source: str, measure: str) -> str:
    """`source`'s answered calls counted per day, grouping columns and bucket of `measure` (named as
    latency_daily's)."""
    # ClickHouse's WHERE reads a SELECT alias before the column of that name: the test sees mode and priced_by
    # marked (NULL as NULL_MARK), which it passes or fails as it does the NULL.
    dims = ", ".join(f"{_mark(d)} AS {d}" for d in HIST_DIMENSIONS)
    groups = ", ".join(str(i) for i in range(1, len(KEYS) + 1))
    return (
        f"SELECT {day_sql(dialect)} AS day, {dims}, '{measure}' AS measure, {bucket_sql(measure)} AS bucket, "
        f"COUNT(*) AS calls FROM {source} WHERE {is_answered_sql()} GROUP BY {groups}"
    )


def histogram_insert(dialect: str, source: str, measure: str, upsert: bool) -> str:
    """INSERT adding `source`'s events to latency_daily for one measure (upsert: add to rows already there)."""
    sql = f"INSERT INTO latency_daily ({', '.join(KEYS)}, calls) {histogram_select(dialect, source, measure)}"
    if upsert:
        sql += f" ON CONFLICT ({', '.join(KEYS)}) DO UPDATE SET calls = latency_daily.calls + EXCLUDED.calls"
    return sql


def rebuild(conn: Any, dialect: str) -> None:
    """Recompute the histograms from every event (inside the caller's transaction)."""
    if dialect == "postgres":  # ~0.5 histogram rows per event: with the default 4 MB PostgreSQL groups by sorting
        conn.execute("SET LOCAL work_mem = '256MB'")  # on disk (1 M events: 30 s; hashed in memory: 20 s)
    conn.execute("DELETE FROM latency_daily")
    for measure in MEASURES:
        conn.execute(histogram_insert(dialect, "usage_events", measure, upsert=False))


def _answered(where: str) -> str:
    """`where` narrowed to answered calls, as the histograms count them: an imported bill's row is a provider-day's
    usage and a cache's storage row what keeping it cost (no call), a throttled or failed attempt no answer."""
    return f"{where} AND {is_answered_sql()}" if where else f" WHERE {is_answered_sql()}"


def _raw(store: Any, start: datetime | None, end: datetime | None) -> tuple[str, list[Any]]:
    """Answered calls of [start, end), one row per event and measure, bucketed."""
    where, params = time_range("ts", start, end, store.placeholder)
    parts = [
        f"SELECT {', '.join(HIST_DIMENSIONS)}, '{m}' AS measure, {bucket_sql(m)} AS bucket, 1 AS calls "
        f"FROM usage_events{_answered(where)}"
        for m in MEASURES
    ]
    return " UNION ALL ".join(parts), params * len(MEASURES)


def histogram_facts(store: Any, since: datetime | None, until: datetime | None) -> tuple[str, list[Any]]:
    """A FROM-clause relation `f` of (grouping columns, measure, bucket, calls) for the answered calls in
    [since, until): the daily histograms for whole days, raw events bucketed alike for the partial days at the
    edges (all raw when the store keeps no rollups)."""
    rollups = bool(getattr(store, "rollups", False))
    if not rollups:
        sql, params = _raw(store, since, until)
        return f"({sql}) f", params
    parts, params = [], []
    for source, start, end in _split(since, until, unit="day"):
        if source == "raw":
            sql, more = _raw(store, start, end)
        else:
            where, more = time_range("day", start, end, store.placeholder)
            dims = ", ".join(f"NULLIF({d}, '{NULL_MARK}') AS {d}" for d in HIST_DIMENSIONS)
            sql = f"SELECT {dims}, measure, bucket, calls FROM latency_daily{where}"  # answered calls only
        parts.append(sql)
        params += more
    return "(" + " UNION ALL ".join(parts) + ") f", params


def bucket_value(bucket: int) -> float:
    """The value a bucket stands for: within RELATIVE_ERROR of every value it holds."""
    return 0.0 if bucket == ZERO_BUCKET else 2 * GAMMA**bucket / (GAMMA + 1)


def percentile(counts: list[tuple[int, int]], q: float) -> float | None:
    """The q-quantile (0..1) of (bucket, count) pairs sorted by bucket, interpolated between the two ranks around
    q*(n-1) as percentile_cont does; None when no call has a value."""
    counts = [(b, c) for b, c in counts if b != NULL_BUCKET and c > 0]
    n = sum(c for _, c in counts)
    if n == 0:
        return None
    rank = q * (n - 1)
    low, high = math.floor(rank), math.ceil(rank)
    values: dict[int, float] = {}
    seen = 0
    for bucket, count in counts:
        for wanted in (low, high):
            if wanted not in values and wanted < seen + count:
                values[wanted] = bucket_value(bucket)
        if high in values:
            break
        seen += count
    return values[low] + (rank - low) * (values[high] - values[low])
