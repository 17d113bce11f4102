"""Time every report preset (and the month-end forecast and anomaly scan) on a synthetic N-event ledger
generated in SQL: 90 days of traffic, default 10 million events in a DuckDB file.

    python benchmarks/report_speed.py [N] [--postgres postgresql://...]

With --postgres the same events go into that (empty, throwaway) database and the same report SQL runs there.
"""

from __future__ import annotations

import argparse
import tempfile
import time
from datetime import datetime, timezone
from pathlib import Path

from tokenomy.analytics.reports import REPORTS, run_report
from tokenomy.ledger.store import open_store

COLUMNS = ("ts, provider, model, region, mode, task, tier, tags, input_tokens, output_tokens, cache_read_tokens, "
           "cache_write_tokens, cost_usd, latency_ms, ttft_ms, outcome, attempt, event_id")
SECONDS = 90 * 86400
TAGS = """'{}', '{"team": "search"}', '{"env": "prod", "team": "ads"}'"""


def _values(array: str, seconds: str) -> str:
    """The generated row for event i, in SQL both engines read (`array` wraps a list literal per dialect)."""
    return f"""TIMESTAMPTZ '2026-08-01 00:00:00+00' + {seconds},
        {array.format("'bedrock','openai','anthropic'")}[1 + i % 3],
        {array.format("'claude-3-haiku','nova-micro','gpt-4o-mini','claude-sonnet-4'")}[1 + i % 4],
        'us-east-1', CASE WHEN i % 10 = 0 THEN 'batch' ELSE 'on_demand' END,
        {array.format("'chat','summarize'")}[1 + i % 2], {array.format("'1','2','3'")}[1 + i % 3],
        {array.format(TAGS)}[1 + i % 3],
        CAST(random() * 2000 AS INTEGER), CAST(random() * 400 AS INTEGER), CAST(random() * 1000 AS INTEGER), 0,
        CAST(random() / 100 AS DECIMAL(20,12)), random() * 3000, random() * 500,
        CASE WHEN i % 50 = 0 THEN 'throttled' ELSE 'ok' END, 1, CAST(i AS VARCHAR)"""


def fill_duckdb(n: int) -> str:
    import duckdb

    path = Path(tempfile.mkdtemp()) / "bench.duckdb"
    open_store(path)  # creates the real schema
    con = duckdb.connect(str(path))
    con.execute(f"INSERT INTO usage_events ({COLUMNS}) SELECT "
                f"{_values('[{}]', f'to_seconds(CAST(i * {SECONDS} // {n} AS BIGINT))')} FROM range({n}) t(i)")
    con.close()
    return str(path)


def fill_postgres(url: str, n: int) -> str:
    import psycopg

    open_store(url)  # creates the real schema
    with psycopg.connect(url, autocommit=True) as conn:
        conn.execute(f"INSERT INTO usage_events ({COLUMNS}) SELECT "
                     f"{_values('(ARRAY[{}])', f'make_interval(secs => i::bigint * {SECONDS} / {n})')} "
                     f"FROM generate_series(0, {n - 1}) t(i)")
        conn.execute("ANALYZE usage_events")
    return url


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("n", nargs="?", type=int, default=10_000_000, help="events to generate")
    parser.add_argument("--postgres", help="an empty PostgreSQL database URL to fill instead of a DuckDB file")
    args = parser.parse_args()
    start = time.perf_counter()
    target = fill_postgres(args.postgres, args.n) if args.postgres else fill_duckdb(args.n)
    store = open_store(target)
    print(f"{store.dialect}: generated {args.n:,} events in {time.perf_counter() - start:.1f} s")
    end = datetime(2026, 10, 30, tzinfo=timezone.utc)  # the last day of the generated data: windows end here
    for name in REPORTS:
        t0 = time.perf_counter()
        rows = run_report(store, name, now=end)
        print(f"{name:16s} {time.perf_counter() - t0:7.2f} s  ({len(rows)} rows)")
    from tokenomy.analytics.anomalies import find_anomalies
    from tokenomy.analytics.forecast import month_end_forecast

    t0 = time.perf_counter()
    forecast = month_end_forecast(store, now=datetime(2026, 10, 20, tzinfo=timezone.utc))
    print(f"{'forecast':16s} {time.perf_counter() - t0:7.2f} s  (Oct: ${forecast.forecast_usd:,.0f}, "
          f"{forecast.level:.0%} ${forecast.low_usd:,.0f}-${forecast.high_usd:,.0f})")
    t0 = time.perf_counter()
    found = find_anomalies(store)
    print(f"{'anomalies':16s} {time.perf_counter() - t0:7.2f} s  ({len(found)} flagged)")


if __name__ == "__main__":
    main()
