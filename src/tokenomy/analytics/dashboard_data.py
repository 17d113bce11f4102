"""The dashboard's figures: the preset reports' measures, narrowed by date range, provider, model, task and tag.

`reports.run_report` takes only a date range, so the filters live here; where a section is a preset report
(cache hit rate, latency, tier share) it runs that preset's own SQL under these filters. Money stays
exact: costs leave as decimal strings and the page turns them into numbers only to draw them.
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import UTC, datetime
from typing import Any

from tokenomy.analytics.billed import SPEND_EVENTS, provider_sql
from tokenomy.analytics.console_data import OTHER_COST, alerts, breakdown, budgets, headline
from tokenomy.analytics.console_levers import savings
from tokenomy.analytics.dashboard_filters import Filters, make_filters, money, parse_when, where
from tokenomy.analytics.dashboard_providers import providers
from tokenomy.analytics.reports import PRESETS, raw_source
from tokenomy.analytics.request_log import requests
from tokenomy.ledger.rollups import tag_pairs, tag_value
from tokenomy.ledger.spend import METERED_CALLS

__all__ = ["CONFIGURED", "SECTIONS", "Filters", "collect", "filter_options", "make_filters", "parse_when"]

# The tag menu lists up to this many values of each key (in order); a key with more (a per-user tag) is named in
# `tags_cut` with its count. One such key no longer crowds every other key's values out of the menu.
TAG_VALUES_PER_KEY = 200


_where = where
_money = money


def spend_by_day(store: Any, f: Filters) -> list[dict[str, Any]]:
    """Cost per UTC day and model (the 'spend' and 'cost by model by day' reports)."""
    where, params = _where(store, f)
    rows = store.query(
        f"SELECT CAST(ts AS DATE) AS day, model, SUM(cost_usd) AS cost_usd, {METERED_CALLS} AS calls "
        f"FROM {SPEND_EVENTS}{where} GROUP BY 1, 2 ORDER BY 1, 2",
        params,
    )
    return [
        {"day": r["day"].isoformat(), "model": r["model"], "cost_usd": _money(r["cost_usd"]), "calls": int(r["calls"])}
        for r in rows
    ]


def usage_types(store: Any, f: Filters) -> list[dict[str, Any]]:
    """Tokens per model split into input, output, cache read and cache write (the 'tokens' report), with what
    keeping context caches cost (mode cache_storage rows, which carry no tokens) and a bill's other charges (not
    tokens), so the costs add up to the model's spend."""
    where, params = _where(store, f)
    rows = store.query(
        f"SELECT model, SUM(input_tokens) AS input_tokens, SUM(output_tokens) AS output_tokens, "
        f"SUM(cache_read_tokens) AS cache_read_tokens, SUM(cache_write_tokens) AS cache_write_tokens, "
        f"SUM(input_cost_usd) AS input_cost_usd, SUM(output_cost_usd) AS output_cost_usd, "
        f"SUM(cache_read_cost_usd) AS cache_read_cost_usd, SUM(cache_write_cost_usd) AS cache_write_cost_usd, "
        f"SUM(CASE WHEN mode = 'cache_storage' THEN cost_usd ELSE 0 END) AS cache_storage_cost_usd, "
        f"SUM(CASE WHEN mode = 'cache_storage' THEN 0 ELSE {OTHER_COST} END) AS other_cost_usd "
        f"FROM {SPEND_EVENTS}{where} GROUP BY model ORDER BY model",
        params,
    )
    return [
        {k: (_money(v) if k.endswith("_usd") else (v if k == "model" else int(v or 0))) for k, v in r.items()}
        for r in rows
    ]


def _preset(store: Any, name: str, f: Filters) -> list[dict[str, Any]]:
    """A preset report's own SQL (per model), narrowed by the dashboard's filters instead of a date window."""
    where, params = _where(store, f)
    return store.query(PRESETS[name].sql("model", raw_source(name, where, store.dialect), store.dialect), params)


def cache_hit_rate(store: Any, f: Filters) -> list[dict[str, Any]]:
    """Cached share of input tokens per model (the 'cache-hit-rate' report)."""
    return [
        {
            "model": r["model"],
            "cache_read_tokens": int(r["cache_read_tokens"] or 0),
            "total_input_tokens": int(r["total_input_tokens"] or 0),
            "cache_hit_rate": None if r["cache_hit_rate"] is None else float(r["cache_hit_rate"]),
        }
        for r in _preset(store, "cache-hit-rate", f)
    ]


def latency(store: Any, f: Filters) -> list[dict[str, Any]]:
    """p50/p95 latency and time to first token per model (the 'latency' report)."""
    return [
        {k: (v if k == "model" or v is None else (int(v) if k == "calls" else float(v))) for k, v in r.items()}
        for r in _preset(store, "latency", f)
    ]


def tier_share(store: Any, f: Filters) -> list[dict[str, Any]]:
    """Share of calls per routing tier (the 'tier-share' report); no share (None) where the rows are an imported
    bill's only, which are no calls (as `report tier-share` prints it)."""
    return [
        {"tier": r["tier"], "calls": int(r["calls"]), "share": None if r["share"] is None else float(r["share"])}
        for r in _preset(store, "tier-share", f)
    ]


def totals(store: Any, f: Filters) -> dict[str, Any]:
    where, params = _where(store, f)
    row = store.query(
        f"SELECT {METERED_CALLS} AS calls, SUM(cost_usd) AS cost_usd, MIN(ts) AS first_ts, "
        f"MAX(ts) AS last_ts FROM {SPEND_EVENTS}{where}",
        params,
    )[0]

    def stamp(t: datetime | None) -> str | None:
        return t.astimezone(UTC).isoformat().replace("+00:00", "Z") if t else None

    return {
        "calls": int(row["calls"]),
        "cost_usd": _money(row["cost_usd"]),
        "first_ts": stamp(row["first_ts"]),
        "last_ts": stamp(row["last_ts"]),
    }


def filter_options(store: Any, scope: Filters | None = None) -> dict[str, Any]:
    """Values the filter menus offer within `scope` (a key's tenant or own calls), and the first and last day."""
    where, params = _where(store, scope or Filters())
    also = " AND " if where else " WHERE "

    def distinct(column: str) -> list[str]:
        return [
            r["v"]
            for r in store.query(
                f"SELECT DISTINCT {column} AS v FROM usage_events{where}{also}{column} IS NOT NULL ORDER BY 1", params
            )
        ]

    # Distinct key=value pairs (the first TAG_VALUES_PER_KEY of each key): the first 500 distinct tag sets, read
    # before, dropped whole keys' values once a per-call tag made every set distinct.
    sets = f"(SELECT DISTINCT tags FROM usage_events{where}{also}tags IS NOT NULL AND tags <> '{{}}') AS usage_events"
    pairs = f"SELECT DISTINCT tag_key AS k, {tag_value(store.dialect)} AS v FROM {tag_pairs(store.dialect, sets)}"
    rows = store.query(
        f"SELECT k, v, n FROM (SELECT k, v, COUNT(*) OVER (PARTITION BY k) AS n, "
        f"ROW_NUMBER() OVER (PARTITION BY k ORDER BY v) AS r FROM ({pairs}) d) w WHERE r <= {TAG_VALUES_PER_KEY}",
        params,
    )
    tags = {f"{r['k']}={r['v']}" for r in rows}
    cut = {r["k"]: int(r["n"]) for r in rows if int(r["n"]) > TAG_VALUES_PER_KEY}
    span = store.query(
        f"SELECT CAST(MIN(ts) AS DATE) AS first_day, CAST(MAX(ts) AS DATE) AS last_day FROM usage_events{where}", params
    )[0]
    return {
        "providers": distinct(provider_sql()),  # one name a provider, as spend groups and the filter match it
        "models": distinct("model"),
        "tasks": distinct("task"),
        "tags": sorted(tags),
        "tags_cut": dict(sorted(cut.items())),  # key -> how many values it has, where the menu lists fewer
        "first_day": span["first_day"].isoformat() if span["first_day"] else None,
        "last_day": span["last_day"].isoformat() if span["last_day"] else None,
    }


SECTIONS: dict[str, Callable[..., Any]] = {  # name -> fn(store, filters); CONFIGURED ones also take config=
    "spend": spend_by_day,
    "usage": usage_types,
    "cache": cache_hit_rate,
    "latency": latency,
    "tiers": tier_share,
    "savings": savings,
    "totals": totals,
    "headline": headline,
    "breakdown": breakdown,
    "budgets": budgets,
    "alerts": alerts,
    "requests": requests,
    "providers": providers,
}


# Sections that take a TokenomyConfig (`config=`): the open alerts evaluate its rules as `tokenomy alerts check` does.
CONFIGURED = ("alerts", "headline")


def collect(store: Any, f: Filters, config: Any = None) -> dict[str, Any]:
    """Every section at once: what the self-contained HTML report embeds (`config`: alert rules, as the gateway's)."""
    data = {name: fn(store, f, config=config) if name in CONFIGURED else fn(store, f) for name, fn in SECTIONS.items()}
    data["filters"] = f.describe()
    return data
