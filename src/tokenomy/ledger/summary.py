"""The spend summary the demo and `ledger stats` print (per model, computed in SQL)."""

from __future__ import annotations

from datetime import datetime
from decimal import Decimal

from tokenomy.ledger.spend import SPEND_EVENTS, is_answered_sql
from tokenomy.ledger.store import LedgerStore


def spend_summary(store: LedgerStore, since: datetime | None = None, until: datetime | None = None) -> list[dict]:
    """Per model and overall: requests, tokens by type, cache-read share of input, cost, p50/p95 latency, of the
    events at or after `since` and before `until` (each optional, as `report spend` reads them).

    Requests and latency are the answered calls (outcome ok); tokens and cost are every recorded attempt, as the
    reports count them: a stream cancelled after its first delta was billed, and its row carries that cost. An
    imported bill counts only where the reports count it (ledger/spend.py): not on a day its calls were metered."""
    # An answered call: outcome ok, and a call (an imported bill's row is a provider-day's usage, a context cache's
    # storage row what keeping it cost: neither is a request), as report latency counts them.
    ok = is_answered_sql()
    answered = f"CASE WHEN {ok} THEN latency_ms END"
    percentile = {  # the exact, interpolating percentile on each engine (ClickHouse's was a syntax error)
        "duckdb": f"quantile_cont({answered}, {{q}})",
        "clickhouse": f"quantileExactInclusive({{q}})({answered})",
    }.get(store.dialect, f"percentile_cont({{q}}) WITHIN GROUP (ORDER BY {answered})")
    bounds = [(f"ts >= {store.placeholder}", since), (f"ts < {store.placeholder}", until)]
    window = " AND ".join(clause for clause, value in bounds if value is not None)
    params = [value for _, value in bounds if value is not None]
    columns = f"""SUM(CASE WHEN {ok} THEN 1 ELSE 0 END) AS requests,
               SUM(input_tokens) AS input_tokens, SUM(output_tokens) AS output_tokens,
               SUM(cache_read_tokens) AS cache_read_tokens, SUM(cache_write_tokens) AS cache_write_tokens,
               SUM(cost_usd) AS cost_usd,
               {percentile.format(q=0.5)} AS latency_p50_ms, {percentile.format(q=0.95)} AS latency_p95_ms
        FROM {SPEND_EVENTS}{" WHERE " + window if window else ""}"""
    # Per model, then the whole ledger: two plain queries, not GROUP BY ROLLUP, whose total row ClickHouse marks
    # differently (an empty string, and GROUPING() the other way round).
    rows = store.query(f"SELECT model, {columns} GROUP BY model ORDER BY model", params)
    rows.append({**store.query(f"SELECT {columns}", params)[0], "model": "ALL"})
    for row in rows:
        for key in ("input_tokens", "output_tokens", "cache_read_tokens", "cache_write_tokens", "requests"):
            row[key] = int(row[key] or 0)
        row["cost_usd"] = Decimal(str(row["cost_usd"] or 0))
        prompt = row["input_tokens"] + row["cache_read_tokens"] + row["cache_write_tokens"]
        row["cache_read_share"] = row["cache_read_tokens"] / prompt if prompt else 0.0
    return rows
