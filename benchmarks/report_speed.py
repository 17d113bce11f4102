"""Time every report preset (and the month-end forecast and anomaly scan) on a synthetic N-event ledger in
DuckDB, PostgreSQL and ClickHouse side by side: 90 days of traffic, default 10 million events, generated in SQL.

    python benchmarks/report_speed.py [N] [--engines duckdb,postgres,clickhouse] [--postgres URL] [--keep DIR]

PostgreSQL: the events go into --postgres (an empty, throwaway database), or else into a cluster of the
benchmark's own (initdb from /usr/lib/postgresql, removed at the end). ClickHouse is embedded (chDB).
DuckDB and PostgreSQL keep hourly rollups: events inserted with plain SQL are rolled up once after the
insert (the time a ledger made before rollups spends on its first open), printed as `rollup backfill`.
Reports end at a time inside an hour, so the raw-event edges of each window are part of what is timed.
`latency` reads the daily latency histograms; `latency --exact` the raw events, with the largest relative
difference between the two printed beside it.
"""

from __future__ import annotations

import argparse
import glob
import os
import pwd
import shutil
import socket
import subprocess
import tempfile
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from datetime import UTC, datetime
from pathlib import Path

from tokenomy.analytics.reports import REPORTS, run_report
from tokenomy.ledger.store import LedgerStore, open_store

COLUMNS = (
    "ts, provider, model, region, mode, task, tier, tags, input_tokens, output_tokens, cache_read_tokens, "
    "cache_write_tokens, cost_usd, latency_ms, ttft_ms, outcome, attempt, event_id"
)
SECONDS = 90 * 86400
TAGS = """'{}', '{"team": "search"}', '{"env": "prod", "team": "ads"}'"""
END = datetime(2026, 10, 29, 13, 37, 11, tzinfo=UTC)  # inside the last generated day and hour


def _values(array: str, ts: str, rand: str, text: str) -> str:
    """The generated row for event i (`array` wraps a list literal, `rand` is a uniform [0, 1) per dialect)."""
    return f"""{ts},
        {array.format("'bedrock','openai','anthropic'")}[1 + i % 3],
        {array.format("'claude-3-haiku','nova-micro','gpt-4o-mini','claude-sonnet-4'")}[1 + i % 4],
        'us-east-1', CASE WHEN i % 10 = 0 THEN 'batch' ELSE 'on_demand' END,
        {array.format("'chat','summarize'")}[1 + i % 2], {array.format("'1','2','3'")}[1 + i % 3],
        {array.format(TAGS)}[1 + i % 3],
        CAST({rand} * 2000 AS INTEGER), CAST({rand} * 400 AS INTEGER), CAST({rand} * 1000 AS INTEGER), 0,
        CAST({rand} / 100 AS DECIMAL(20,12)), {rand} * 3000, {rand} * 500,
        CASE WHEN i % 50 = 0 THEN 'throttled' ELSE 'ok' END, 1, CAST(i AS {text})"""


def fill_duckdb(n: int, directory: Path) -> LedgerStore:
    import duckdb

    path = directory / "bench.duckdb"
    open_store(path).query("SELECT 1")  # creates the real schema (and its rollup tables)
    con = duckdb.connect(str(path))
    con.execute("SET preserve_insertion_order = false")
    step = 10_000_000  # in slices: the event_id key index of one 100 M insert would not fit in memory
    for start in range(0, n, step):
        stop = min(n, start + step)
        ts = f"TIMESTAMPTZ '2026-08-01 00:00:00+00' + to_seconds(CAST(i * {SECONDS} // {n} AS BIGINT))"
        con.execute(
            f"INSERT INTO usage_events ({COLUMNS}) SELECT "
            f"{_values('[{}]', ts, 'random()', 'VARCHAR')} FROM range({start}, {stop}) t(i)"
        )
    con.close()
    return open_store(path)


def fill_postgres(url: str, n: int) -> LedgerStore:
    import psycopg

    open_store(url)  # creates the real schema
    ts = f"TIMESTAMPTZ '2026-08-01 00:00:00+00' + make_interval(secs => i::bigint * {SECONDS} / {n})"
    with psycopg.connect(url, autocommit=True) as conn:
        conn.execute(
            f"INSERT INTO usage_events ({COLUMNS}) SELECT {_values('(ARRAY[{}])', ts, 'random()', 'TEXT')} "
            f"FROM generate_series(0, {n - 1}) t(i)"
        )
        conn.execute("ANALYZE usage_events")
    return open_store(url)


def fill_clickhouse(n: int, directory: Path) -> LedgerStore:
    store = open_store(f"chdb:{directory / 'bench.chdb'}")
    ts = f"toDateTime64('2026-08-01 00:00:00', 6, 'UTC') + toIntervalSecond(intDiv(i * {SECONDS}, {n}))"
    store.execute(
        f"INSERT INTO usage_events ({COLUMNS}) SELECT {_values('[{}]', ts, 'randCanonical()', 'String')} "
        f"FROM (SELECT number AS i FROM numbers({n}))"
    )
    store.execute("OPTIMIZE TABLE usage_events FINAL")  # one part per partition, as a settled ledger has
    return store


@contextmanager
def postgres_cluster() -> Iterator[str]:
    """A throwaway PostgreSQL cluster on a free port (run as `postgres` when we are root)."""
    bindir = sorted(glob.glob("/usr/lib/postgresql/*/bin"))[-1]
    base = Path(tempfile.mkdtemp(prefix="report-speed-pg-"))
    prefix: list[str] = []
    if os.geteuid() == 0:
        user = pwd.getpwnam("postgres")
        os.chown(base, user.pw_uid, user.pw_gid)
        prefix = ["runuser", "-u", "postgres", "--"]
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    data = base / "data"
    subprocess.run(
        [*prefix, f"{bindir}/initdb", "-D", str(data), "-A", "trust", "-U", "postgres"], check=True, capture_output=True
    )
    subprocess.run(
        [
            *prefix,
            f"{bindir}/pg_ctl",
            "-D",
            str(data),
            "-l",
            str(base / "log"),
            "-w",
            "-o",
            f"-p {port} -k {base} -h 127.0.0.1 -c fsync=off",
            "start",
        ],
        check=True,
        capture_output=True,
    )
    try:
        yield f"postgresql://postgres@127.0.0.1:{port}/postgres"
    finally:
        subprocess.run(
            [*prefix, f"{bindir}/pg_ctl", "-D", str(data), "-m", "immediate", "-w", "stop"], capture_output=True
        )
        shutil.rmtree(base, ignore_errors=True)


def _timed(fn: Callable[[], object]) -> tuple[float, object]:
    t0 = time.perf_counter()
    out = fn()
    return time.perf_counter() - t0, out


def measure(store: LedgerStore) -> dict[str, tuple[float, str]]:
    """Seconds and a short result note per preset, then forecast and anomalies."""
    from tokenomy.analytics.anomalies import find_anomalies
    from tokenomy.analytics.forecast import month_end_forecast

    out: dict[str, tuple[float, str]] = {}
    for name in REPORTS:
        seconds, rows = _timed(lambda name=name: run_report(store, name, now=END))
        out[name] = (seconds, f"{len(rows)} rows")  # type: ignore[arg-type]
        if name == "latency":  # the default reads histograms; time the exact one too, and how far apart they are
            seconds, exact = _timed(lambda: run_report(store, "latency", now=END, exact=True))
            worst = _largest_difference(rows, exact)  # type: ignore[arg-type]
            out["latency --exact"] = (seconds, f"histogram percentiles at most {worst:.3%} off")
    # Imported before timing: the import is not the forecast (1.2 s cold here, once per process; before this
    # line the first engine of a run paid it inside its figure).
    from statsmodels.tsa.exponential_smoothing.ets import ETSModel  # noqa: F401

    seconds, forecast = _timed(lambda: month_end_forecast(store, now=datetime(2026, 10, 20, tzinfo=UTC)))
    out["forecast"] = (seconds, f"Oct ${forecast.forecast_usd:,.0f}")  # type: ignore[attr-defined]
    seconds, found = _timed(lambda: find_anomalies(store))
    out["anomalies"] = (seconds, f"{len(found)} flagged")  # type: ignore[arg-type]
    return out


def _largest_difference(fast: list[dict], exact: list[dict]) -> float:
    """The largest relative difference between the histogram and the exact percentiles, over groups and columns."""
    worst = 0.0
    for got, want in zip(fast, exact, strict=True):
        for column in ("p50_ms", "p95_ms", "ttft_p50_ms", "ttft_p95_ms"):
            if want[column]:
                worst = max(worst, abs(got[column] - float(want[column])) / float(want[column]))
    return worst


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("n", nargs="?", type=int, default=10_000_000, help="events to generate")
    parser.add_argument("--engines", default="duckdb,postgres,clickhouse", help="comma-separated engines to time")
    parser.add_argument("--postgres", help="an empty PostgreSQL database URL (default: a throwaway cluster)")
    parser.add_argument("--keep", type=Path, help="generate into this directory and keep it (default: removed)")
    args = parser.parse_args()
    engines = [e.strip() for e in args.engines.split(",") if e.strip()]
    results: dict[str, dict[str, tuple[float, str]]] = {}
    for engine in engines:
        directory = args.keep or Path(tempfile.mkdtemp(prefix="report-speed-"))
        directory.mkdir(parents=True, exist_ok=True)
        try:
            if engine == "postgres" and not args.postgres:
                with postgres_cluster() as url:
                    results[engine] = _run(engine, args.n, directory, url)
            else:
                results[engine] = _run(engine, args.n, directory, args.postgres)
        finally:
            if not args.keep:
                shutil.rmtree(directory, ignore_errors=True)
    _print(args.n, results)


def _run(engine: str, n: int, directory: Path, url: str | None) -> dict[str, tuple[float, str]]:
    print(f"{engine}: generating {n:,} events ...", flush=True)
    seconds, store = _timed(
        lambda: {
            "duckdb": lambda: fill_duckdb(n, directory),
            "postgres": lambda: fill_postgres(url or "", n),
            "clickhouse": lambda: fill_clickhouse(n, directory),
        }[engine]()
    )
    assert isinstance(store, LedgerStore)
    backfill, _ = _timed(store.rebuild_rollups)
    print(f"{engine}: generated in {seconds:.1f} s, rollup backfill {backfill:.1f} s", flush=True)
    out = measure(store)
    for name, (secs, note) in out.items():
        print(f"  {name:16s} {secs:7.2f} s  ({note})", flush=True)
    out["rollup backfill"] = (backfill, "")
    return out


def _print(n: int, results: dict[str, dict[str, tuple[float, str]]]) -> None:
    engines = list(results)
    print(f"\nseconds per preset, {n:,} events (a Markdown table):\n")
    print("| preset | " + " | ".join(engines) + " |")
    print("| --- |" + " ---: |" * len(engines))
    for name in [*REPORTS, "latency --exact", "forecast", "anomalies", "rollup backfill"]:
        cells = [f"{results[e][name][0]:.2f}" if name in results[e] else "-" for e in engines]
        print(f"| {name} | " + " | ".join(cells) + " |")


if __name__ == "__main__":
    main()
