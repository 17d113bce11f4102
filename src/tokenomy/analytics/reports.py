"""Report presets: SQL written once for DuckDB and PostgreSQL; dialect differences isolated in helpers.

Each preset has a default grouping and a default window (the last N days before `--until`, or now),
which `--by`, `--since` and `--until` override. Presets read `ledger.rollups.facts()`: hourly rollups for
the whole hours of the window, raw events for its partial hours; they sum `calls` where they would count
rows. Percentiles do not roll up, bucket counts do: the latency preset reads daily log-bucket histograms
(analytics/latency.py, within 0.99% of the exact percentile) unless asked for `exact`, which reads raw events.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

from tokenomy.analytics.billed import SPEND_EVENTS, provider_sql
from tokenomy.analytics.latency import latency_rows
from tokenomy.errors import UsageError
from tokenomy.ledger.rollups import facts, raw_facts, raw_tag_facts, tag_facts, tag_pairs, tag_value, time_range
from tokenomy.ledger.spend import is_answered_sql

GROUPS = {"model", "provider", "region", "task", "tier", "route", "mode", "tenant", "key_id", "family"}

# Coarse model families for the family report, matched on the lower-cased model id in this order
# (so "anthropic.claude-3-haiku" is claude and "meta.llama3" is llama). Unmatched ids are "other".
FAMILIES: list[tuple[str, tuple[str, ...]]] = [
    ("claude", ("claude",)),
    ("nova", ("nova",)),
    ("titan", ("titan",)),
    ("llama", ("llama",)),
    ("mistral", ("mistral", "mixtral", "pixtral", "codestral")),
    ("gemini", ("gemini", "gemma")),
    ("cohere", ("cohere", "command")),
    ("deepseek", ("deepseek",)),
    ("qwen", ("qwen",)),
    ("local", ("local", "smollm", "gguf")),
    ("gpt", ("gpt", "openai", "o1", "o3", "o4")),  # last: "o1" is short
]
CALLS = "CAST(SUM(calls) AS BIGINT)"  # the metered calls a group stands for (BIGINT: PostgreSQL sums to NUMERIC)
PER_CALL = f"NULLIF({CALLS}, 0)"  # a divisor: a group of only an imported bill's rows has no calls
FLOAT = "DOUBLE PRECISION"  # a type name both engines accept
# DuckDB divides a DECIMAL sum by a count as DOUBLE; money stays Decimal (no 5.3e-05 in CSV, $ in tables).
MONEY = "DECIMAL(38, 12)"


def cost_per_call(d: str) -> str:
    """SUM(cost_usd) over the group's calls, rounded to MONEY's 12 places; NULL for a group with no calls.

    ClickHouse divides a Decimal(38, 12) by truncating to 12 places ($0.000789185291 where DuckDB and PostgreSQL say
    ...292): it divides at 24 places and rounds, and casts NULL only to a Nullable."""
    if d == "clickhouse":
        return f"CAST(round(toDecimal256(SUM(cost_usd), 24) / {PER_CALL}, 12) AS Nullable({MONEY}))"
    if d == "duckdb":
        # DuckDB divides a DECIMAL as DOUBLE (3 calls of $10000.000000000001 came out at ...002): the sum in units of
        # 1e-12 USD as an integer, divided with the remainder rounded half away from zero as PostgreSQL's NUMERIC is.
        units = "CAST(SUM(cost_usd) * 1000000000000 AS HUGEINT)"
        quotient = f"abs({units}) // {PER_CALL}"
        rounded = f"{quotient} + CASE WHEN 2 * (abs({units}) % {PER_CALL}) >= {PER_CALL} THEN 1 ELSE 0 END"
        return f"CAST(sign({units}) * ({rounded}) AS DECIMAL(38, 0)) * CAST(0.000000000001 AS {MONEY})"
    return f"CAST(SUM(cost_usd) / {PER_CALL} AS {MONEY})"


def percentiles(dialect: str, column: str, qs: tuple[float, ...]) -> str:
    """Several percentiles of a column as one (1-based) array: one sort rather than one per percentile."""
    if dialect == "postgres":
        return f"percentile_cont(ARRAY[{', '.join(map(str, qs))}]) WITHIN GROUP (ORDER BY {column})"
    if dialect == "clickhouse":  # the exact, interpolating quantile (percentile_cont's definition)
        return f"quantilesExactInclusive({', '.join(map(str, qs))})({column})"
    return f"quantile_cont({column}, [{', '.join(map(str, qs))}])"


def trunc(dialect: str, unit: str) -> str:
    """`ts` truncated to a UTC hour/day/week (ISO, Monday)/month, as a timestamp on every engine."""
    if dialect == "clickhouse":  # its date_trunc gives a Date for day and longer units
        return f"CAST(date_trunc('{unit}', ts) AS DateTime64(0, 'UTC'))"
    return f"date_trunc('{unit}', ts)"


def family_expr(column: str = "model") -> str:
    """SQL CASE giving the coarse family of a model id (same text on both engines)."""
    whens = []
    for family, patterns in FAMILIES:
        # position() rather than LIKE '%..%': a literal % would clash with psycopg's %s placeholders.
        test = " OR ".join(f"position('{p}' IN lower({column})) > 0" for p in patterns)
        whens.append(f"WHEN {test} THEN '{family}'")
    return "CASE " + " ".join(whens) + " ELSE 'other' END"


def tag_pairs_from(dialect: str) -> str:
    """FROM clause expanding the events' JSON `tags` column into (tag_key, tag_value) rows."""
    return tag_pairs(dialect, SPEND_EVENTS)  # as spend counts them (a billed row only where nothing was metered)


def tag_value_expr(dialect: str) -> str:
    """The value for `tag_key` in the row produced by `tag_pairs_from`."""
    return tag_value(dialect)


def _group(by: str) -> str:
    if by == "family":
        return f"{family_expr()} AS family"
    if by == "provider":  # a provider's metered calls (`aws.bedrock`) and its bill (`bedrock`) are one provider
        return f"{provider_sql()} AS provider"
    return by


@dataclass(frozen=True)
class Preset:
    """One report: what it shows, its default grouping and window, and its SQL."""

    help: str
    by: str | None  # default grouping; None when the preset's grouping is fixed
    days: int | None  # default window in days before --until (None: whole ledger)
    sql: Callable[[str, str, str], str]  # (group column, FROM relation, dialect) -> SQL
    # The FROM relation: "facts" (rollups + raw edges), "tags" (per tag), "raw" events, or "histogram": `sql` is
    # the exact computation over raw events, run only when asked for; by default analytics/latency.py answers.
    source: str = "facts"
    # The time unit of the rows (hour, day, week), if any: a default window starts on one of its boundaries, so the
    # first row is a whole period and not a part of one that reads as a drop in spend.
    period: str | None = None


def _spend(g: str, src: str, d: str) -> str:
    return f"SELECT {_group(g)}, SUM(cost_usd) AS cost_usd, {CALLS} AS calls FROM {src} GROUP BY 1 ORDER BY 2 DESC, 1"


def _monthly_spend(g: str, src: str, d: str) -> str:
    return (
        f"SELECT {trunc(d, 'month')} AS month, {_group(g)}, SUM(cost_usd) AS cost_usd, {CALLS} AS calls "
        f"FROM {src} GROUP BY 1, 2 ORDER BY 1, 2"
    )


def _family_daily(g: str, src: str, d: str) -> str:
    return (
        f"SELECT {trunc(d, 'day')} AS day, {family_expr()} AS family, SUM(cost_usd) AS cost_usd, "
        f"{CALLS} AS calls FROM {src} GROUP BY 1, 2 ORDER BY 1, 2"
    )


def _tokens(g: str, src: str, d: str) -> str:
    return (
        f"SELECT {_group(g)}, SUM(input_tokens) AS input_tokens, SUM(output_tokens) AS output_tokens, "
        f"SUM(cache_read_tokens) AS cache_read_tokens, SUM(cache_write_tokens) AS cache_write_tokens, "
        f"SUM(total_tokens) AS total_tokens FROM {src} GROUP BY 1 ORDER BY 1"
    )


def _hourly_tokens(g: str, src: str, d: str) -> str:
    return (
        f"SELECT {trunc(d, 'hour')} AS hour, {_group(g)}, SUM(input_tokens) AS input_tokens, "
        f"SUM(output_tokens) AS output_tokens, SUM(cache_read_tokens) AS cache_read_tokens, "
        f"SUM(cache_write_tokens) AS cache_write_tokens, SUM(total_tokens) AS tokens "
        f"FROM {src} GROUP BY 1, 2 ORDER BY 1, 2"
    )


def _hit_rate_columns() -> str:
    return (
        "SUM(cache_read_tokens) AS cache_read_tokens, SUM(all_input_tokens) AS total_input_tokens, "
        f"CAST(SUM(cache_read_tokens) AS {FLOAT}) / NULLIF(SUM(all_input_tokens), 0) AS cache_hit_rate"
    )


def _cache_hit_rate(g: str, src: str, d: str) -> str:
    return f"SELECT {_group(g)}, {_hit_rate_columns()} FROM {src} GROUP BY 1 ORDER BY 1"


def _cache_trend(g: str, src: str, d: str) -> str:
    # ISO weeks (Monday start) on both engines; the week-over-week change is what alerts watch.
    return (
        f"SELECT {trunc(d, 'week')} AS week, {_group(g)}, {_hit_rate_columns()} FROM {src} GROUP BY 1, 2 ORDER BY 2, 1"
    )


def _latency(g: str, src: str, d: str) -> str:
    # The exact percentiles over raw events; both percentiles of a column come from one sort. Answered calls only, as
    # the histograms count them: an imported bill's row or a cache's storage row is no call, and a throttled or failed
    # attempt (a 429 back in ~120 ms) no answer, whose time would make latency read far faster than real answers.
    answered = f"(SELECT * FROM {src}) m WHERE {is_answered_sql()}"
    return (
        f"SELECT {g}, calls, latency[1] AS p50_ms, latency[2] AS p95_ms, ttft[1] AS ttft_p50_ms, "
        f"ttft[2] AS ttft_p95_ms FROM (SELECT {_group(g)}, COUNT(*) AS calls, "
        f"{percentiles(d, 'latency_ms', (0.5, 0.95))} AS latency, {percentiles(d, 'ttft_ms', (0.5, 0.95))} AS ttft "
        f"FROM {answered} GROUP BY 1) p ORDER BY 1"
    )


def _errors(g: str, src: str, d: str) -> str:
    throttled = "SUM(CASE WHEN outcome = 'throttled' THEN calls ELSE 0 END)"
    # A stream the client abandoned ('cancelled') is not the provider's error.
    failed = "SUM(CASE WHEN outcome NOT IN ('ok', 'throttled', 'cancelled') THEN calls ELSE 0 END)"
    cancelled = "SUM(CASE WHEN outcome = 'cancelled' THEN calls ELSE 0 END)"
    return (
        f"SELECT {_group(g)}, {CALLS} AS calls, CAST({throttled} AS BIGINT) AS throttled, "
        f"CAST({failed} AS BIGINT) AS errors, CAST({cancelled} AS BIGINT) AS cancelled, "
        f"CAST({throttled} AS {FLOAT}) / {PER_CALL} AS throttle_rate, "
        f"CAST({failed} AS {FLOAT}) / {PER_CALL} AS error_rate FROM {src} GROUP BY 1 ORDER BY 1"
    )


def _cost_per_task(g: str, src: str, d: str) -> str:
    return (
        f"SELECT COALESCE(task, '(none)') AS task, {CALLS} AS calls, SUM(cost_usd) AS cost_usd, "
        f"{cost_per_call(d)} AS cost_per_call_usd FROM {src} "
        f"GROUP BY 1 ORDER BY 3 DESC, 1"
    )


def _cost_per_tag(g: str, src: str, d: str) -> str:
    return (
        f"SELECT tag_key, tag_value, {CALLS} AS calls, SUM(cost_usd) AS cost_usd, "
        f"{cost_per_call(d)} AS cost_per_call_usd FROM {src} "
        f"GROUP BY 1, 2 ORDER BY 1, 4 DESC, 2"
    )


UNROUTED = "(none)"  # the tier-share row of calls no router placed


def _tier_share(g: str, src: str, d: str) -> str:
    # Answered calls, as `route drift` and the routing alert count them: an attempt a tier refused before sending
    # anything (passed up), or one that failed and was retried, is not a call that tier served.
    return (
        f"SELECT COALESCE(tier, '{UNROUTED}') AS tier, {CALLS} AS calls, "
        f"CAST(SUM(calls) AS {FLOAT}) / CAST(NULLIF(SUM(SUM(calls)) OVER (), 0) AS {FLOAT}) AS share "
        f"FROM {src} WHERE outcome = 'ok' GROUP BY 1 ORDER BY 1"
    )


def _batch_share(g: str, src: str, d: str) -> str:
    batch_calls = "SUM(CASE WHEN mode = 'batch' THEN calls ELSE 0 END)"
    return (
        f"SELECT {_group(g)}, SUM(CASE WHEN mode = 'batch' THEN cost_usd ELSE 0 END) AS batch_cost_usd, "
        f"SUM(cost_usd) AS cost_usd, CAST({batch_calls} AS BIGINT) AS batch_calls, "
        f"{CALLS} AS calls, CAST({batch_calls} AS {FLOAT}) / {PER_CALL} "
        f"AS batch_call_share FROM {src} GROUP BY 1 ORDER BY 1"
    )


PRESETS: dict[str, Preset] = {
    "spend": Preset("spend per group", "model", None, _spend),
    "monthly-spend": Preset("spend per month per group (default provider)", "provider", None, _monthly_spend),
    "family-daily": Preset("cost per model family per day, last 14 days", None, 14, _family_daily, period="day"),
    "tokens": Preset("input/output/cache-read/cache-write tokens per group, last 30 days", "model", 30, _tokens),
    "hourly-tokens": Preset(
        "tokens per hour per group (default provider), last 2 days", "provider", 2, _hourly_tokens, period="hour"
    ),
    "cache-hit-rate": Preset("cached share of input tokens per group", "model", None, _cache_hit_rate),
    "cache-trend": Preset(
        "cache hit rate per ISO week per group, last 8 weeks", "model", 56, _cache_trend, period="week"
    ),
    "latency": Preset("p50/p95 latency and time to first token per group", "model", None, _latency, "histogram"),
    "errors": Preset("throttling and error rates per group", "model", None, _errors),
    "cost-per-task": Preset("cost per task type", None, None, _cost_per_task),
    "cost-per-tag": Preset("cost per tag key=value", None, None, _cost_per_tag, "tags"),
    "tier-share": Preset("routing tier share of calls against the expected share", None, None, _tier_share),
    "batch-share": Preset("batch share of cost and calls per group", "model", None, _batch_share),
}
REPORTS = list(PRESETS)
# Every name `tokenomy report` takes: the row presets, and the two the command runs itself (see commands/report.py).
ALL_REPORTS = [*REPORTS, "forecast", "reconcile"]


def window(
    name: str, since: datetime | None, until: datetime | None, now: datetime | None = None
) -> tuple[datetime | None, datetime | None]:
    """The preset's default window unless --since is given: the last N days before --until (or now)."""
    preset = PRESETS[name]
    since, until = _utc(since), _utc(until)
    if since is None and preset.days is not None:
        since = (until or now or datetime.now(UTC)) - timedelta(days=preset.days)
        if preset.period is not None:  # back to the start of that hour, UTC day or ISO week
            since = since.replace(minute=0, second=0, microsecond=0)
            if preset.period in ("day", "week"):
                since = since.replace(hour=0)
            if preset.period == "week":
                since -= timedelta(days=since.weekday())
    return since, until


def _utc(value: datetime | None) -> datetime | None:
    if value is None:
        return None
    return value.replace(tzinfo=UTC) if value.tzinfo is None else value.astimezone(UTC)


def raw_source(name: str, where: str, dialect: str) -> str:
    """The preset's FROM relation over raw events narrowed by `where` (filters rollups cannot answer)."""
    preset = PRESETS[name]
    if preset.source == "tags":
        return f"({raw_tag_facts(dialect, where)}) f"
    return f"{SPEND_EVENTS}{where}" if preset.source in ("raw", "histogram") else f"({raw_facts(where)}) f"


def _source(store: Any, preset: Preset, since: datetime | None, until: datetime | None) -> tuple[str, list[Any]]:
    if preset.source == "tags":
        return tag_facts(store, since, until)
    if preset.source == "facts":
        return facts(store, since, until)
    where, params = time_range("ts", since, until, store.placeholder)
    return SPEND_EVENTS + where, params


def run_report(
    store: Any,
    name: str,
    by: str | None = None,
    since: datetime | None = None,
    until: datetime | None = None,
    expected: dict[str, float] | None = None,
    now: datetime | None = None,
    exact: bool = False,
) -> list[dict[str, Any]]:
    """Run a preset report and return its rows (`expected` tier shares add expected/delta to tier-share;
    `exact`: latency percentiles from raw events rather than the histograms' 0.99% bound)."""
    if name not in PRESETS:
        raise UsageError(f"unknown report {name!r}; available: {', '.join(ALL_REPORTS)}")
    preset = PRESETS[name]
    if exact and preset.source != "histogram":
        raise UsageError(f"--exact applies to the latency report; report {name} is exact already, drop --exact")
    if by and preset.by is None:
        raise UsageError(f"report {name} has a fixed grouping ({preset.help}); drop --by {by}")
    by = by or preset.by or "model"
    if by not in GROUPS:
        raise UsageError(f"--by {by!r} is not a known grouping; use one of {', '.join(sorted(GROUPS))}")
    since, until = window(name, since, until, now)
    if since is not None and until is not None and since >= until:
        raise UsageError(
            f"--since {since:%Y-%m-%d %H:%M} is not before --until {until:%Y-%m-%d %H:%M}; "
            "swap them or widen the window"
        )
    if preset.source == "histogram" and not exact:
        return latency_rows(store, _group(by), by, since, until)
    source, params = _source(store, preset, since, until)
    rows = store.query(preset.sql(by, source, store.dialect), params)
    if name == "tier-share":
        rows = _with_expected(rows, expected or {})
    return rows


def report_columns(
    store: Any, name: str, by: str | None = None, since: datetime | None = None, until: datetime | None = None
) -> list[str]:
    """The columns of a preset's rows, read from its SQL over the window, so a report with no row still has its
    header (the histogram percentiles of `latency` have the exact preset's columns)."""
    preset = PRESETS[name]
    by = by or preset.by or "model"
    since, until = window(name, since, until)
    source, params = _source(store, preset, since, until)
    columns = store.query_columns(preset.sql(by, source, store.dialect), params)
    return columns + (["routed_share", "expected_share", "delta"] if name == "tier-share" else [])


def _with_expected(rows: list[dict[str, Any]], expected: dict[str, float]) -> list[dict[str, Any]]:
    """Add each tier's share of the routed calls (those with a tier), the expected share and the difference;
    tiers expected but unseen get a zero row. Expected shares split routed traffic (as `route drift` and the
    routing_drift alert read them), so calls without a tier are left out of the comparison."""
    seen = {r["tier"] for r in rows}
    rows = rows + [{"tier": t, "calls": 0, "share": 0.0} for t in sorted(set(expected) - seen)]
    routed = sum(int(r["calls"]) for r in rows if r["tier"] != UNROUTED)
    for row in rows:
        want = expected.get(row["tier"])
        share = None if row["tier"] == UNROUTED or not routed else int(row["calls"]) / routed
        row["routed_share"] = share
        row["expected_share"] = want
        row["delta"] = None if want is None or share is None else share - want
    return rows


def parse_expected(text: str | None, config_routing: dict[str, Any] | None = None) -> dict[str, float]:
    """Expected tier shares from `--expected weak=0.7,strong=0.3` or config `routing.expected_tier_share`."""
    if text:
        out = {}
        for part in text.split(","):
            tier, _, share = part.partition("=")
            try:
                value = float(share)
            except ValueError:
                value = float("nan")
            if not tier.strip() or not 0 <= value <= 1:  # also catches nan; 1.5 or -1 used to be accepted
                raise UsageError(
                    f"--expected {text!r}: {part!r} is not tier=share with a share from 0 to 1, "
                    "e.g. weak=0.7,strong=0.3"
                )
            out[tier.strip()] = value
        if sum(out.values()) > 1 + 1e-9:
            raise UsageError(f"--expected {text!r}: the shares add up to {sum(out.values()):g}, more than 1")
        return out
    raw = (config_routing or {}).get("expected_tier_share") or {}
    try:
        return {str(k): float(v) for k, v in raw.items()}
    except (TypeError, ValueError, AttributeError):
        raise UsageError("routing.expected_tier_share: must map tier names to shares, e.g. {weak: 0.7}") from None
