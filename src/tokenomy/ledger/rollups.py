"""Hourly rollups of the ledger, kept on write, so reports over millions of events read thousands of rows.

`usage_hourly` holds, per UTC hour and per combination of the grouping columns reports use, the number of
calls and the sums of cost and tokens; `usage_tags_hourly` the same per tag key=value (for cost-per-tag).
DuckDB and PostgreSQL add the events a write really inserted (an event id already present adds nothing, so
writes stay idempotent) in the same transaction as the events; ClickHouse keeps them with materialized views
(ledger/clickhouse.py). A ledger made before rollups existed is backfilled on open. Sums of sums are exact
(DECIMAL money, integer tokens), so a report over rollups equals the one over the raw rows. `facts()` gives
reports one relation: rollup rows for whole hours inside the window and raw rows for the partial hours at
its edges.

Grouping columns may be NULL in events; a primary key cannot hold NULL on every engine, so rollups store
NULL as a control character no caller sends (`NULL_MARK`) and `facts()` turns it back into NULL.
"""

from __future__ import annotations

from datetime import datetime, timedelta
from typing import Any

from tokenomy.ledger.events import STORAGE_MODE
from tokenomy.ledger.spend import counted_sql, is_call_sql, is_metered_sql

ROLLUP_VERSION = "5"  # tokenomy_meta key `rollup_version`: bump to rebuild every ledger's rollups on open
DIMENSIONS = (
    "provider", "model", "region", "mode", "task", "tier", "route", "tenant", "key_id", "outcome", "priced_by"
)  # fmt: skip
# Tag rollups keep what the spend rule (ledger/spend.py: a billed row counts only where nothing was metered) needs.
TAG_DIMENSIONS = ("provider", "priced_by")
NULL_MARK = "\x1f"
TOKENS = ("input_tokens", "output_tokens", "cache_read_tokens", "cache_write_tokens")
TOKEN_SUM = "input_tokens + output_tokens + cache_read_tokens + cache_write_tokens"
ALL_INPUT = "input_tokens + cache_read_tokens + cache_write_tokens"
# Measure name -> the expression summed over raw rows (a NULL token count leaves a row out of total_tokens,
# exactly as SUM(a + b + ...) over the raw rows does).
MEASURES: dict[str, str] = {
    "cost_usd": "cost_usd",
    **{t: t for t in TOKENS},
    "total_tokens": TOKEN_SUM,
    "all_input_tokens": ALL_INPUT,
}
# A rollup row's calls: its events less any cache storage rows (cost over time, no request; the tag rollup has no
# mode column to tell them apart when read, so they are left out when written).
CALL_COUNT = f"SUM(CASE WHEN mode = '{STORAGE_MODE}' THEN 0 ELSE 1 END)"
# Columns the rollup needs from a freshly inserted event (what the write's RETURNING gives back).
SOURCE_COLUMNS = ("ts", *DIMENSIONS, "tags", "cost_usd", *TOKENS, "latency_ms", "ttft_ms")

HOURLY_DDL = (
    "CREATE TABLE IF NOT EXISTS usage_hourly (hour TIMESTAMPTZ NOT NULL, "
    + ", ".join(f"{d} TEXT NOT NULL" for d in DIMENSIONS)
    + ", calls BIGINT NOT NULL, cost_usd DECIMAL(38,12) NOT NULL, "
    + ", ".join(f"{m} BIGINT NOT NULL" for m in MEASURES if m != "cost_usd")
    + f", PRIMARY KEY (hour, {', '.join(DIMENSIONS)}))"
)
TAGS_DDL = (
    "CREATE TABLE IF NOT EXISTS usage_tags_hourly (hour TIMESTAMPTZ NOT NULL, tag_key TEXT NOT NULL, "
    "tag_value TEXT NOT NULL, provider TEXT NOT NULL, priced_by TEXT NOT NULL, calls BIGINT NOT NULL, "
    "cost_usd DECIMAL(38,12) NOT NULL, PRIMARY KEY (hour, tag_key, tag_value, provider, priced_by))"
)
TAG_KEYS = ("hour", "tag_key", "tag_value", *TAG_DIMENSIONS)


def _mark(column: str) -> str:
    return f"COALESCE({column}, '{NULL_MARK}')"


def tag_pairs(dialect: str, source: str) -> str:
    """FROM clause expanding `source`'s JSON `tags` into rows with `tag_key` (see `tag_value`)."""
    if dialect == "postgres":
        return f"{source}, json_each_text(CAST(tags AS json)) AS t(tag_key, tag_value)"
    if dialect == "clickhouse":
        pairs = "arrayJoin(JSONExtractKeysAndValues(COALESCE(tags, '{}'), 'String'))"
        return f"(SELECT *, {pairs} AS tag_pair, tag_pair.1 AS tag_key, tag_pair.2 AS tag_value FROM {source}) u"
    return (
        f"(SELECT *, unnest(json_keys(CAST(tags AS JSON))) AS tag_key FROM {source} "
        "WHERE tags IS NOT NULL AND tags <> '{}') u"
    )


def tag_value(dialect: str) -> str:
    """The value for `tag_key` in a row from `tag_pairs`."""
    if dialect in ("postgres", "clickhouse"):
        return "tag_value"
    # A JSON pointer (/key, with ~ and / escaped) reaches any key; a quoted JSONPath ('$."key"') was malformed for a
    # key holding '"' or '\\', or an empty one, which any client can send, and that failed the whole write.
    return "json_extract_string(CAST(tags AS JSON), '/' || replace(replace(tag_key, '~', '~0'), '/', '~1'))"


def tag_match(dialect: str, placeholder: str, tag: str) -> tuple[str, list[str]]:
    """SQL (with its parameters) that a row's JSON `tags` hold `tag` ("key=value") exactly: a JSON accessor, not
    LIKE on the text, whose `_` and `%` are wildcards (team=ml_ops matched team ml-ops)."""
    key, value = tag.split("=", 1)
    if dialect == "postgres":
        return f"(CAST(tags AS jsonb) ->> {placeholder}) = {placeholder}", [key, value]
    if dialect == "clickhouse":
        return f"JSONExtractString(COALESCE(tags, '{{}}'), {placeholder}) = {placeholder}", [key, value]
    # A JSON pointer reaches any key (a JSONPath from json.dumps missed non-ASCII keys, failed on "").
    pointer = "/" + key.replace("~", "~0").replace("/", "~1")
    return f"json_extract_string(tags, {placeholder}) = {placeholder}", [pointer, value]


def tag_count(dialect: str, key: str) -> str:
    """SQL for the whole number a row's JSON `tags` hold under `key` (a name in the code, never a caller's), 0 where
    they hold none or anything else, as UsageEvent.usage reads CACHE_WRITE_1H_TAG (digits only)."""
    if dialect == "postgres":
        value = f"(CAST(tags AS jsonb) ->> '{key}')"
        return f"(CASE WHEN {value} ~ '^[0-9]{{1,18}}$' THEN CAST({value} AS BIGINT) ELSE 0 END)"
    if dialect == "clickhouse":
        value = f"JSONExtractString(COALESCE(tags, '{{}}'), '{key}')"
        return f"(CASE WHEN match({value}, '^[0-9]{{1,18}}$') THEN toInt64OrZero({value}) ELSE 0 END)"
    value = f"json_extract_string(tags, '/{key}')"
    return f"COALESCE(CASE WHEN regexp_full_match({value}, '[0-9]{{1,18}}') THEN TRY_CAST({value} AS BIGINT) END, 0)"


def _upsert(table: str, keys: tuple[str, ...], measures: tuple[str, ...]) -> str:
    added = ", ".join(f"{m} = {table}.{m} + EXCLUDED.{m}" for m in measures)
    return f" ON CONFLICT ({', '.join(keys)}) DO UPDATE SET {added}"


def hourly_select(source: str) -> str:
    """`source`'s events aggregated to usage_hourly's columns (named, for a ClickHouse materialized view too)."""
    values = ["date_trunc('hour', ts) AS hour", *(f"{_mark(d)} AS {d}" for d in DIMENSIONS), f"{CALL_COUNT} AS calls"]
    values += [f"COALESCE(SUM({expr}), 0) AS {name}" for name, expr in MEASURES.items()]
    groups = ", ".join(str(i) for i in range(1, len(DIMENSIONS) + 2))
    return f"SELECT {', '.join(values)} FROM {source} GROUP BY {groups}"


def tags_select(dialect: str, source: str) -> str:
    """`source`'s events aggregated to usage_tags_hourly's columns, one row per tag key=value."""
    dims = ", ".join(f"{_mark(d)} AS {d}" for d in TAG_DIMENSIONS)
    return (
        f"SELECT date_trunc('hour', ts) AS hour, tag_key, {_mark(tag_value(dialect))} AS tag_value, {dims}, "
        f"{CALL_COUNT} AS calls, COALESCE(SUM(cost_usd), 0) AS cost_usd FROM {tag_pairs(dialect, source)} "
        f"GROUP BY 1, 2, 3, {', '.join(str(4 + i) for i in range(len(TAG_DIMENSIONS)))}"
    )


def hourly_insert(source: str, upsert: bool) -> str:
    """INSERT adding `source`'s events to usage_hourly (upsert: add to rows already there)."""
    names = ", ".join(["hour", *DIMENSIONS, "calls", *MEASURES])
    sql = f"INSERT INTO usage_hourly ({names}) {hourly_select(source)}"
    return sql + (_upsert("usage_hourly", ("hour", *DIMENSIONS), ("calls", *MEASURES)) if upsert else "")


def tags_insert(dialect: str, source: str, upsert: bool) -> str:
    """INSERT adding `source`'s events to usage_tags_hourly, one row per tag key=value."""
    sql = f"INSERT INTO usage_tags_hourly ({', '.join(TAG_KEYS)}, calls, cost_usd) {tags_select(dialect, source)}"
    if upsert:
        sql += _upsert("usage_tags_hourly", TAG_KEYS, ("calls", "cost_usd"))
    return sql


def rebuild(conn: Any, dialect: str) -> None:
    """Recompute both rollups from every event (inside the caller's transaction)."""
    conn.execute("DELETE FROM usage_hourly")
    conn.execute("DELETE FROM usage_tags_hourly")
    conn.execute(hourly_insert("usage_events", upsert=False))
    conn.execute(tags_insert(dialect, "usage_events", upsert=False))


def _floor(ts: datetime, unit: str) -> datetime:
    floor = ts.replace(minute=0, second=0, microsecond=0)
    return floor.replace(hour=0) if unit == "day" else floor


def _ceil(ts: datetime, unit: str) -> datetime:
    floor = _floor(ts, unit)
    return floor if floor == ts else floor + timedelta(**{f"{unit}s": 1})


def _split(
    since: datetime | None, until: datetime | None, unit: str = "hour"
) -> list[tuple[str, datetime | None, datetime | None]]:
    """Cover [since, until) by (source, start, end) pieces: 'rollup' for whole hours (or UTC days), 'raw' for
    the edges."""
    lo = None if since is None else _ceil(since, unit)
    hi = None if until is None else _floor(until, unit)
    if lo is not None and hi is not None and lo >= hi:
        return [("raw", since, until)]  # the window lies inside one or two partial hours
    pieces: list[tuple[str, datetime | None, datetime | None]] = [("rollup", lo, hi)]
    if since is not None and lo != since:
        pieces.append(("raw", since, lo))
    if until is not None and hi != until:
        pieces.append(("raw", hi, until))
    return pieces


def time_range(column: str, start: datetime | None, end: datetime | None, ph: str) -> tuple[str, list[Any]]:
    clauses, params = [], []
    if start is not None:
        clauses.append(f"{column} >= {ph}")
        params.append(start)
    if end is not None:
        clauses.append(f"{column} < {ph}")
        params.append(end)
    return (" WHERE " + " AND ".join(clauses)) if clauses else "", params


def _counted(where: str, ts_column: str, rollups: bool) -> str:
    """`where` narrowed to the rows spend counts (ledger/spend.py); metered days from the rollup when there is one."""
    rule = counted_sql(ts_column, "usage_hourly", "hour") if rollups else counted_sql(ts_column)
    return f"{where} AND {rule}" if where else f" WHERE {rule}"


def metered_calls(calls: str) -> str:
    """A row's calls as reports count them: metered calls only. An imported bill's row is a provider-day's usage,
    not a call: its cost and tokens count in spend, but it is no call. `calls` is a rollup's column (which counts
    no cache storage row: CALL_COUNT) or '1' for a raw event, which is a call unless it is a storage row."""
    test = is_metered_sql() if calls == "calls" else is_call_sql()
    return f"CASE WHEN {test} THEN {calls} ELSE 0 END AS calls"


def raw_facts(where: str, rollups: bool = False) -> str:
    """Raw events in the shape `facts()` gives (one call per metered row), as spend counts them."""
    measures = ", ".join(f"{expr} AS {name}" for name, expr in MEASURES.items())
    counted = _counted(where, "ts", rollups)
    return f"SELECT ts, {', '.join(DIMENSIONS)}, {metered_calls('1')}, {measures} FROM usage_events{counted}"


def facts(store: Any, since: datetime | None, until: datetime | None) -> tuple[str, list[Any]]:
    """A FROM-clause relation `f` of events in [since, until): ts, grouping columns, calls and measures.

    Reports sum `calls` where they counted rows; `calls` are metered calls (an imported bill's row is none).
    Without rollups (`store.rollups` false) it is the raw table.
    """
    ph = store.placeholder
    if not getattr(store, "rollups", False):
        where, params = time_range("ts", since, until, ph)
        return f"({raw_facts(where)}) f", params
    parts, params = [], []
    for source, start, end in _split(since, until):
        if source == "raw":
            where, more = time_range("ts", start, end, ph)
            parts.append(raw_facts(where, rollups=True))
        else:
            where, more = time_range("hour", start, end, ph)
            dims = ", ".join(f"NULLIF({d}, '{NULL_MARK}') AS {d}" for d in DIMENSIONS)
            counted = _counted(where, "hour", rollups=True)
            calls = metered_calls("calls")
            parts.append(f"SELECT hour AS ts, {dims}, {calls}, {', '.join(MEASURES)} FROM usage_hourly{counted}")
        params += more
    return "(" + " UNION ALL ".join(parts) + ") f", params


def raw_tag_facts(dialect: str, where: str, rollups: bool = False) -> str:
    """Raw events' tag pairs in the shape `tag_facts()` gives (one call per row), as spend counts them."""
    return (
        f"SELECT tag_key, {tag_value(dialect)} AS tag_value, {metered_calls('1')}, cost_usd "
        f"FROM {tag_pairs(dialect, 'usage_events')}{_counted(where, 'ts', rollups)}"
    )


def tag_facts(store: Any, since: datetime | None, until: datetime | None) -> tuple[str, list[Any]]:
    """A FROM-clause relation `f` of (tag_key, tag_value, calls, cost_usd) for events in [since, until)."""
    ph, dialect = store.placeholder, store.dialect

    def raw(start: datetime | None, end: datetime | None) -> tuple[str, list[Any]]:
        where, more = time_range("ts", start, end, ph)
        return raw_tag_facts(dialect, where, rollups=bool(getattr(store, "rollups", False))), more

    if not getattr(store, "rollups", False):
        sql, params = raw(since, until)
        return f"({sql}) f", params
    parts, params = [], []
    for source, start, end in _split(since, until):
        if source == "raw":
            sql, more = raw(start, end)
        else:
            where, more = time_range("hour", start, end, ph)
            value = f"NULLIF(tag_value, '{NULL_MARK}') AS tag_value"
            calls = metered_calls("calls")
            sql = f"SELECT tag_key, {value}, {calls}, cost_usd FROM usage_tags_hourly{_counted(where, 'hour', True)}"
        parts.append(sql)
        params += more
    return "(" + " UNION ALL ".join(parts) + ") f", params
