"""Report presets: SQL written once; dialect differences (percentiles) isolated in one helper."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from tokenomy.errors import UsageError

REPORTS = ["spend", "tokens", "hourly-tokens", "cache-hit-rate", "latency", "errors", "cost-per-task",
           "tier-share", "batch-share"]
GROUPS = {"model", "provider", "region", "task", "tier", "route", "mode", "tenant", "key_id"}


def percentile(dialect: str, column: str, q: float) -> str:
    """Percentile expression: DuckDB quantile_cont vs PostgreSQL ordered-set percentile_cont."""
    if dialect == "postgres":
        return f"percentile_cont({q}) WITHIN GROUP (ORDER BY {column})"
    return f"quantile_cont({column}, {q})"


def _where(store: Any, since: datetime | None, until: datetime | None) -> tuple[str, list[Any]]:
    clauses, params = [], []
    if since is not None:
        clauses.append(f"ts >= {store.placeholder}")
        params.append(since)
    if until is not None:
        clauses.append(f"ts < {store.placeholder}")
        params.append(until)
    return (" WHERE " + " AND ".join(clauses)) if clauses else "", params


def run_report(store: Any, name: str, by: str = "model", since: datetime | None = None,
               until: datetime | None = None) -> list[dict[str, Any]]:
    """Run a preset report and return its rows."""
    if by not in GROUPS:
        raise UsageError(f"--by {by!r} is not a known grouping; use one of {sorted(GROUPS)}")
    where, params = _where(store, since, until)
    if name == "spend":
        sql = (f"SELECT {by}, SUM(cost_usd) AS cost_usd, COUNT(*) AS calls FROM usage_events{where} "
               f"GROUP BY {by} ORDER BY cost_usd DESC")
    elif name == "cache-hit-rate":
        sql = (f"SELECT {by}, SUM(cache_read_tokens) AS cache_read_tokens, "
               f"SUM(input_tokens + cache_read_tokens + cache_write_tokens) AS total_input_tokens, "
               f"CAST(SUM(cache_read_tokens) AS DOUBLE PRECISION) / "
               f"NULLIF(SUM(input_tokens + cache_read_tokens + cache_write_tokens), 0) AS cache_hit_rate "
               f"FROM usage_events{where} GROUP BY {by} ORDER BY {by}")
    elif name == "latency":
        d = store.dialect
        sql = (f"SELECT {by}, COUNT(*) AS calls, {percentile(d, 'latency_ms', 0.5)} AS p50_ms, "
               f"{percentile(d, 'latency_ms', 0.95)} AS p95_ms, {percentile(d, 'ttft_ms', 0.5)} AS ttft_p50_ms, "
               f"{percentile(d, 'ttft_ms', 0.95)} AS ttft_p95_ms FROM usage_events{where} "
               f"GROUP BY {by} ORDER BY {by}")
    elif name == "tokens":
        sql = (f"SELECT {by}, SUM(input_tokens) AS input_tokens, SUM(output_tokens) AS output_tokens, "
               f"SUM(cache_read_tokens) AS cache_read_tokens, SUM(cache_write_tokens) AS cache_write_tokens "
               f"FROM usage_events{where} GROUP BY {by} ORDER BY {by}")
    elif name == "hourly-tokens":
        sql = (f"SELECT date_trunc('hour', ts) AS hour, {by}, "
               f"SUM(input_tokens + output_tokens + cache_read_tokens + cache_write_tokens) AS tokens "
               f"FROM usage_events{where} GROUP BY 1, 2 ORDER BY 1, 2")
    elif name == "errors":
        sql = (f"SELECT {by}, COUNT(*) AS calls, "
               f"SUM(CASE WHEN outcome = 'throttled' THEN 1 ELSE 0 END) AS throttled, "
               f"SUM(CASE WHEN outcome NOT IN ('ok', 'throttled') THEN 1 ELSE 0 END) AS errors, "
               f"CAST(SUM(CASE WHEN outcome = 'throttled' THEN 1 ELSE 0 END) AS DOUBLE PRECISION) / COUNT(*) "
               f"AS throttle_rate, CAST(SUM(CASE WHEN outcome NOT IN ('ok', 'throttled') THEN 1 ELSE 0 END) "
               f"AS DOUBLE PRECISION) / COUNT(*) AS error_rate FROM usage_events{where} GROUP BY {by} ORDER BY {by}")
    elif name == "cost-per-task":
        sql = (f"SELECT COALESCE(task, '(none)') AS task, COUNT(*) AS calls, SUM(cost_usd) AS cost_usd, "
               f"SUM(cost_usd) / COUNT(*) AS cost_per_call_usd FROM usage_events{where} GROUP BY 1 ORDER BY 3 DESC")
    elif name == "tier-share":
        sql = (f"SELECT COALESCE(tier, '(none)') AS tier, COUNT(*) AS calls, "
               f"CAST(COUNT(*) AS DOUBLE PRECISION) / SUM(COUNT(*)) OVER () AS share "
               f"FROM usage_events{where} GROUP BY 1 ORDER BY 1")
    elif name == "batch-share":
        sql = (f"SELECT {by}, SUM(CASE WHEN mode = 'batch' THEN cost_usd ELSE 0 END) AS batch_cost_usd, "
               f"SUM(cost_usd) AS cost_usd, CAST(SUM(CASE WHEN mode = 'batch' THEN 1 ELSE 0 END) AS "
               f"DOUBLE PRECISION) / COUNT(*) AS batch_call_share FROM usage_events{where} GROUP BY {by} "
               f"ORDER BY {by}")
    else:
        raise UsageError(f"unknown report {name!r}; available: {', '.join(REPORTS)}")
    return store.query(sql, params)
