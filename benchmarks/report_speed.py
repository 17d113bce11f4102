"""Time every report preset (and the month-end forecast and anomaly scan) on a synthetic N-event DuckDB ledger
generated in SQL (default 10 million events over 90 days)."""

from __future__ import annotations

import sys
import tempfile
import time
from datetime import datetime, timezone
from pathlib import Path

import duckdb

from tokenomy.analytics.reports import REPORTS, run_report
from tokenomy.ledger.store import open_store


def main(n: int = 10_000_000) -> None:
    """Generate n events with range() + random() and print seconds per report."""
    path = Path(tempfile.mkdtemp()) / "bench.duckdb"
    store = open_store(path)  # creates the real schema
    del store
    start = time.perf_counter()
    con = duckdb.connect(str(path))
    con.execute(f"""
        INSERT INTO usage_events (ts, provider, model, region, mode, task, tier, tags, input_tokens, output_tokens,
            cache_read_tokens, cache_write_tokens, cost_usd, latency_ms, ttft_ms, outcome, attempt, event_id)
        SELECT TIMESTAMPTZ '2026-08-01 00:00:00+00' + to_seconds(CAST(i * 7776000 // {n} AS BIGINT)),
            ['bedrock','openai','anthropic'][1 + i % 3],
            ['claude-3-haiku','nova-micro','gpt-4o-mini','claude-sonnet-4'][1 + i % 4],
            'us-east-1', CASE WHEN i % 10 = 0 THEN 'batch' ELSE 'on_demand' END, ['chat','summarize'][1 + i % 2],
            ['1','2','3'][1 + i % 3], ['{{}}', '{{"team": "search"}}', '{{"env": "prod", "team": "ads"}}'][1 + i % 3],
            CAST(random() * 2000 AS INTEGER), CAST(random() * 400 AS INTEGER),
            CAST(random() * 1000 AS INTEGER), 0, CAST(random() / 100 AS DECIMAL(20,12)), random() * 3000,
            random() * 500, CASE WHEN i % 50 = 0 THEN 'throttled' ELSE 'ok' END, 1, CAST(i AS VARCHAR)
        FROM range({n}) t(i)""")
    con.close()
    print(f"generated {n:,} events in {time.perf_counter() - start:.1f} s")
    store = open_store(path)
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
    main(int(sys.argv[1]) if len(sys.argv) > 1 else 10_000_000)
