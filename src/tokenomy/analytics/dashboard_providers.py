"""The dashboard's provider view: every provider in one set of figures, metered and imported alike.

Spend by provider per month (the selected range), spend by model family per day (the last 14 days of it),
tokens by usage type per provider (30 days), tokens per hour per provider (2 days), and the playbook's
"Model | Cached | Monthly cost | Token usage" table for the month the range ends in. The windows end where
the range ends (an open range: the end of the last day with calls). Like every spend figure they read
SPEND_EVENTS, so a bill never doubles a metered day.
"""

from __future__ import annotations

from dataclasses import replace
from datetime import datetime, timedelta
from decimal import Decimal
from typing import Any

from tokenomy.analytics.billed import SPEND_EVENTS, provider_sql
from tokenomy.analytics.dashboard_filters import Filters, money, period, where
from tokenomy.analytics.reports import family_expr
from tokenomy.ledger.rollups import TOKEN_SUM

CACHED_TOKENS = "cache_read_tokens + cache_write_tokens"
PROVIDER = provider_sql()  # metered `aws.bedrock` and billed `bedrock` are one provider
# What cached usage cost: reads and writes, and keeping explicit context caches (mode cache_storage).
CACHED_COST = "cache_read_cost_usd + cache_write_cost_usd + CASE WHEN mode = 'cache_storage' THEN cost_usd ELSE 0 END"


def _stamp(value: Any) -> str:
    return value.isoformat() if hasattr(value, "isoformat") else str(value)


def providers(store: Any, f: Filters) -> dict[str, Any]:
    def rows(sql: str, clause: tuple[str, list[Any]]) -> list[dict[str, Any]]:
        return store.query(sql.format(src=SPEND_EVENTS, where=clause[0]), clause[1])

    bounds = period(store, f)
    if bounds is None:  # no calls and no bills under these filters
        return {"monthly": [], "family_daily": [], "usage_types": [], "hourly": [], "models": []}
    end = bounds[1]
    scoped = where(store, f)
    monthly = rows(
        f"SELECT date_trunc('month', ts) AS month, {PROVIDER} AS provider, SUM(cost_usd) AS cost_usd "
        "FROM {src}{where} GROUP BY 1, 2 ORDER BY 1, 2",
        scoped,
    )
    family = rows(
        f"SELECT CAST(ts AS DATE) AS day, {family_expr()} AS family, SUM(cost_usd) AS cost_usd "
        "FROM {src}{where} GROUP BY 1, 2 ORDER BY 1, 2",
        _windowed(store, f, end, 14),
    )
    batch = f"SUM(CASE WHEN mode = 'batch' THEN {TOKEN_SUM} ELSE 0 END)"
    types = rows(
        f"SELECT {PROVIDER} AS provider, SUM(input_tokens) AS input_tokens, SUM(output_tokens) AS output_tokens, "
        "SUM(cache_read_tokens) AS cache_read_tokens, SUM(cache_write_tokens) AS cache_write_tokens, "
        f"{batch} AS batch_tokens FROM {{src}}{{where}} GROUP BY 1 ORDER BY 1",
        _windowed(store, f, end, 30),
    )
    hourly = rows(
        f"SELECT date_trunc('hour', ts) AS hour, {PROVIDER} AS provider, SUM({TOKEN_SUM}) AS tokens "
        "FROM {src}{where} GROUP BY 1, 2 ORDER BY 1, 2",
        _windowed(store, f, end, 2),
    )
    models = rows(
        f"SELECT model, SUM(cost_usd) AS cost_usd, SUM({CACHED_COST}) AS cached_cost_usd, "
        f"SUM({TOKEN_SUM}) AS tokens, SUM({CACHED_TOKENS}) AS cached_tokens FROM {{src}}{{where}} "
        "GROUP BY 1 ORDER BY 2 DESC, 1",
        _windowed(store, f, end, None),
    )
    table = []
    for r in models:
        cached_cost, cost = Decimal(r["cached_cost_usd"] or 0), Decimal(r["cost_usd"] or 0)
        cached_tokens, tokens = int(r["cached_tokens"] or 0), int(r["tokens"] or 0)
        for cached, part_cost, part_tokens in (
            ("yes", cached_cost, cached_tokens),
            ("no", cost - cached_cost, tokens - cached_tokens),
        ):
            if part_tokens or part_cost:
                table.append({"model": r["model"], "cached": cached, "monthly_cost_usd": money(part_cost),
                              "token_usage": part_tokens})  # fmt: skip
    return {
        "monthly": [
            {"month": _stamp(r["month"])[:7], "provider": r["provider"], "cost_usd": money(r["cost_usd"])}
            for r in monthly
        ],
        "family_daily": [
            {"day": _stamp(r["day"]), "family": r["family"], "cost_usd": money(r["cost_usd"])} for r in family
        ],
        "usage_types": [{k: (v if k == "provider" else int(v or 0)) for k, v in r.items()} for r in types],
        "hourly": [
            {"hour": _stamp(r["hour"])[:13] + ":00", "provider": r["provider"], "tokens": int(r["tokens"] or 0)}
            for r in hourly
        ],
        "models": table,
    }


def _windowed(store: Any, f: Filters, end: datetime, days: int | None) -> tuple[str, list[Any]]:
    if days is None:  # the month the range ends in
        start = (end - timedelta(microseconds=1)).replace(day=1, hour=0, minute=0, second=0, microsecond=0)
    else:
        start = end - timedelta(days=days)
    return where(store, replace(f, since=max(start, f.since) if f.since else start, until=end))
