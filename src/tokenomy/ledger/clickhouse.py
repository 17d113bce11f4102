"""A ClickHouse ledger for deployments whose events outgrow PostgreSQL: a server (`clickhouse://user:pw@host:8123/db`,
through clickhouse-connect) or embedded ClickHouse in the process (`chdb:PATH`, through chDB).

The table is the same usage_events, column-oriented (MergeTree ordered by time), with the same hourly rollups
as the other stores, kept by materialized views. ClickHouse has no unique constraint, so a write first asks
which of its event ids are already there and inserts only the others (idempotent like the other stores, for
one writer at a time); the views see only what is inserted. Parameters are
rendered as typed literals (`%s` placeholders, as for PostgreSQL). Only the ledger's own tables live here:
features that keep other state in the ledger database (keys, alerts sent, batch jobs, ...: STATE_TABLES) need DuckDB or
PostgreSQL, and say so.
"""

from __future__ import annotations

import math
import re
import threading
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from datetime import UTC, date, datetime
from decimal import Decimal
from typing import Any
from urllib.parse import unquote, urlparse

from tokenomy.errors import ConfigError, NotOnThisLedger, url_without_credential
from tokenomy.ledger import latency_rollup, rollups
from tokenomy.ledger.base import _COLUMN_TYPES, ADDED_COLUMNS, LedgerStore, _row_values
from tokenomy.ledger.events import COLUMNS, SCHEMA_VERSION, UsageEvent

_TYPES = {
    "TIMESTAMPTZ": "DateTime64(6, 'UTC')",
    "TEXT": "String",
    "BIGINT": "Int64",
    "INTEGER": "Int32",
    "DECIMAL(20,12)": "Decimal(20, 12)",
    "DOUBLE PRECISION": "Float64",
}
# Report SQL reuses a column's name as its aggregate's alias (SUM(x) AS x, then SUM(x) again): read x as the column.
SETTINGS = {"prefer_column_name_to_alias": 1}
_EMBEDDED_LOCK = threading.Lock()
_embedded: dict[str, Any] = {}  # chDB runs one embedded server per process, at one path: {path: connection}


def _column_type(sql_type: str) -> str:
    """The ClickHouse type for a column of the shared DDL (NOT NULL and keys stay plain, the rest Nullable)."""
    base = next(t for t in sorted(_TYPES, key=len, reverse=True) if sql_type.startswith(t))
    ch = _TYPES[base]
    if "DEFAULT" in sql_type:
        return f"{ch} DEFAULT {sql_type.split('DEFAULT')[1].strip()}"
    return ch if ("NOT NULL" in sql_type or "PRIMARY KEY" in sql_type) else f"Nullable({ch})"


EVENTS_DDL = (
    "CREATE TABLE IF NOT EXISTS usage_events ("
    + ", ".join(f"{c} {_column_type(_COLUMN_TYPES[c])}" for c in COLUMNS)
    + ") ENGINE = MergeTree ORDER BY (ts, event_id)"
)
# Rollups as ClickHouse keeps them: SummingMergeTree tables that materialized views fill from every insert into
# usage_events (rows of one key are added up when parts merge; reports sum anyway, so unmerged parts are fine).
ROLLUP_DDL = [
    "CREATE TABLE IF NOT EXISTS usage_hourly (hour DateTime('UTC'), "
    + ", ".join(f"{d} String" for d in rollups.DIMENSIONS)
    + ", calls UInt64, cost_usd Decimal(38, 12), "
    + ", ".join(f"{m} Int64" for m in rollups.MEASURES if m != "cost_usd")
    + f") ENGINE = SummingMergeTree ORDER BY (hour, {', '.join(rollups.DIMENSIONS)})",
    "CREATE TABLE IF NOT EXISTS usage_tags_hourly (hour DateTime('UTC'), tag_key String, tag_value String, "
    + "".join(f"{d} String, " for d in rollups.TAG_DIMENSIONS)
    + f"calls UInt64, cost_usd Decimal(38, 12)) ENGINE = SummingMergeTree ORDER BY ({', '.join(rollups.TAG_KEYS)})",
    "CREATE MATERIALIZED VIEW IF NOT EXISTS usage_hourly_mv TO usage_hourly AS "
    + rollups.hourly_select("usage_events"),
    "CREATE MATERIALIZED VIEW IF NOT EXISTS usage_tags_hourly_mv TO usage_tags_hourly AS "
    + rollups.tags_select("clickhouse", "usage_events"),
    "CREATE TABLE IF NOT EXISTS latency_daily (day DateTime('UTC'), "
    + "".join(f"{d} String, " for d in latency_rollup.HIST_DIMENSIONS)
    + "measure String, bucket Int32, calls UInt64) "
    + f"ENGINE = SummingMergeTree ORDER BY ({', '.join(latency_rollup.KEYS)})",
    # One view per measure: each inserted block adds its latency and its ttft buckets.
    *(
        f"CREATE MATERIALIZED VIEW IF NOT EXISTS latency_daily_{m}_mv TO latency_daily AS "
        + latency_rollup.histogram_select("clickhouse", "usage_events", m)
        for m in latency_rollup.MEASURES
    ),
]
ROLLUP_TABLES = (
    "usage_hourly_mv", "usage_tags_hourly_mv", *(f"latency_daily_{m}_mv" for m in latency_rollup.MEASURES),
    "usage_hourly", "usage_tags_hourly", "latency_daily",
)  # fmt: skip
META_DDL = (
    "CREATE TABLE IF NOT EXISTS tokenomy_meta (key String, value String) ENGINE = ReplacingMergeTree ORDER BY key"
)


def literal(value: Any) -> str:
    """A Python value as a typed ClickHouse literal (money stays exact, times stay UTC)."""
    if value is None:
        return "NULL"
    if isinstance(value, bool):
        return "1" if value else "0"
    if isinstance(value, int | float):
        return repr(value)
    if isinstance(value, Decimal):
        return f"toDecimal128('{value}', 12)"
    if isinstance(value, datetime):
        utc = value.replace(tzinfo=UTC) if value.tzinfo is None else value.astimezone(UTC)
        return f"toDateTime64('{utc:%Y-%m-%d %H:%M:%S.%f}', 6, 'UTC')"
    if isinstance(value, date):
        return f"toDate('{value.isoformat()}')"
    text = str(value).replace("\\", "\\\\").replace("'", "\\'")
    return f"'{text}'"


def bind(sql: str, params: Sequence[Any]) -> str:
    """Fill `%s` placeholders in order with literals."""
    pieces = sql.split("%s")
    if len(pieces) - 1 != len(params):
        raise ValueError(f"{len(pieces) - 1} placeholders but {len(params)} parameters in {sql[:80]!r}")
    out = [pieces[0]]
    for value, piece in zip(params, pieces[1:], strict=True):
        out += [literal(value), piece]
    return "".join(out)


class _Embedded:
    """chDB connection adapter: run SQL, get rows as dicts (through Arrow: typed lists, Decimals, UTC times)."""

    def __init__(self, path: str) -> None:
        import chdb

        with _EMBEDDED_LOCK:
            if path not in _embedded:
                for other in list(_embedded):  # one embedded server per process: the newest ledger wins
                    _embedded.pop(other).close()
                _embedded[path] = chdb.connect(path)
                for name, value in SETTINGS.items():
                    _embedded[path].query(f"SET {name} = {value}")
            self.conn = _embedded[path]
        self.lock = threading.Lock()

    def command(self, sql: str) -> None:
        with self.lock:
            self.conn.query(sql)

    def rows(self, sql: str) -> Any:
        """The answer as an Arrow table (its column names are there with no row)."""
        with self.lock:
            return self.conn.query(sql, "ArrowTable")


class _Server:
    """clickhouse-connect client adapter for a ClickHouse server over HTTP(S)."""

    def __init__(self, url: str) -> None:
        import clickhouse_connect

        parts = urlparse(url)
        self.client = clickhouse_connect.get_client(
            host=parts.hostname or "localhost",
            port=parts.port or (8443 if parts.scheme == "clickhouses" else 8123),
            username=unquote(parts.username or "default"),
            password=unquote(parts.password or ""),
            database=parts.path.lstrip("/") or "default",
            secure=parts.scheme == "clickhouses",
            settings=SETTINGS,
        )

    def command(self, sql: str) -> None:
        self.client.command(sql)

    def rows(self, sql: str) -> Any:
        """The answer as an Arrow table (its column names are there with no row)."""
        return self.client.query_arrow(sql)


def _sql_null(value: Any) -> Any:
    return None if isinstance(value, float) and math.isnan(value) else value


class _Cursor:
    """Just enough of a DB-API cursor for LedgerStore.query/execute."""

    def __init__(self, table: Any = None) -> None:
        # ClickHouse gives NaN where SQL gives NULL (a percentile or average of no values): every caller gets NULL.
        self._rows = [{k: _sql_null(v) for k, v in r.items()} for r in table.to_pylist()] if table is not None else []
        # Named from the table, not its first row: an answer with no row still has its columns (a CSV's header).
        self.description = [(name,) for name in table.column_names] if table is not None else None

    def fetchall(self) -> list[tuple]:
        return [tuple(r.values()) for r in self._rows]

    def fetchone(self) -> tuple | None:
        return tuple(self._rows[0].values()) if self._rows else None


# Tables other features keep in the ledger database, by what they hold. Their DDL is DuckDB's and PostgreSQL's
# (UNIQUE, TIMESTAMPTZ, upserts), so ClickHouse refused it with a syntax error that said nothing of the ledger.
STATE_TABLES = {
    "gateway_keys": "virtual keys and team budgets (`tokenomy keys`, a gateway with auth)",
    "gateway_teams": "virtual keys and team budgets (`tokenomy keys`, a gateway with auth)",
    "batch_jobs": "batch jobs (`tokenomy batch`)",
    "batch_parts": "batch jobs (`tokenomy batch`)",
    "batch_results": "batch jobs (`tokenomy batch`)",
    "context_caches": "context caches (`tokenomy caches`)",
    "gemini_cached_contents": "the gateway's Gemini cachedContents",
    "tokenomy_reviews": "stored reviews (`tokenomy review`)",
    "tokenomy_alerts_sent": "alerts already sent (`tokenomy alerts check`)",
}
_CREATE_TABLE = re.compile(r"\s*CREATE\s+TABLE\s+(?:IF\s+NOT\s+EXISTS\s+)?(\w+)", re.IGNORECASE)


class _Connection:
    def __init__(self, backend: _Embedded | _Server, shown: str) -> None:
        self.backend = backend
        self.shown = shown  # the ledger's URL as errors name it (no password)

    def execute(self, sql: str, params: Sequence[Any] = ()) -> _Cursor:
        created = _CREATE_TABLE.match(sql)
        if created and created.group(1) in STATE_TABLES:
            raise NotOnThisLedger(
                f"ledger {self.shown}: {STATE_TABLES[created.group(1)]} need a DuckDB or PostgreSQL ledger; a "
                "ClickHouse ledger keeps the calls only. Pass --ledger a DuckDB file or a postgresql:// URL for them"
            )
        sql = bind(sql, params)
        if re.match(r"\s*(SELECT|WITH)\b", sql, re.IGNORECASE):
            return _Cursor(self.backend.rows(sql))
        self.backend.command(sql)
        return _Cursor()


class ClickHouseStore(LedgerStore):
    dialect = "clickhouse"
    placeholder = "%s"
    rollups = True  # kept by materialized views (ROLLUP_DDL)

    def __init__(self, url: str) -> None:
        self.url = url
        self._shown = url_without_credential(url)  # as errors name it: never the password
        if url.startswith("chdb:"):
            path = url[len("chdb:") :].removeprefix("//")
            if not path:
                raise ConfigError("ledger chdb: needs a directory, e.g. --ledger chdb:.tokenomy/ledger.chdb")
            self._backend: _Embedded | _Server = _Embedded(path)
            self.shared_with_other_processes = False  # one embedded server per directory: this process's
        else:
            self._backend = _Server(url)
        self._init_schema()

    @contextmanager
    def connect(self) -> Iterator[Any]:
        yield _Connection(self._backend, self._shown)

    def _init_schema(self) -> None:
        with self.connect() as conn:
            conn.execute(META_DDL)
            conn.execute(EVENTS_DDL)
            for name in ADDED_COLUMNS:  # a ledger made before them gains them (0 for its old rows)
                conn.execute(
                    f"ALTER TABLE usage_events ADD COLUMN IF NOT EXISTS {name} {_column_type(_COLUMN_TYPES[name])}"
                )
            rows = conn.execute("SELECT value FROM tokenomy_meta FINAL WHERE key = 'schema_version'").fetchall()
            if not rows:
                conn.execute("INSERT INTO tokenomy_meta (key, value) VALUES (%s, %s)", ("schema_version", "1"))
            elif int(rows[0][0]) != SCHEMA_VERSION:
                raise ConfigError(
                    f"ledger {self.url} has schema version {rows[0][0]}, this Tokenomy expects {SCHEMA_VERSION}"
                )
            version = conn.execute("SELECT value FROM tokenomy_meta FINAL WHERE key = 'rollup_version'").fetchall()
            if not version or version[0][0] != rollups.ROLLUP_VERSION:  # older rollups: their columns differ
                for name in ROLLUP_TABLES:  # views first: none may outlive its target
                    conn.execute(f"DROP TABLE IF EXISTS {name}")
            for ddl in ROLLUP_DDL:
                conn.execute(ddl)
        if not self._rollups_current():
            self.rebuild_rollups()

    def rebuild_rollups(self) -> None:
        """Recompute the rollups from every event (a ledger made before them, or events inserted with plain SQL
        while the views were missing). No transactions here: do it while nothing writes."""
        with self.connect() as conn:
            conn.execute("TRUNCATE TABLE usage_hourly")
            conn.execute("TRUNCATE TABLE usage_tags_hourly")
            conn.execute(rollups.hourly_insert("usage_events", upsert=False))
            conn.execute(rollups.tags_insert(self.dialect, "usage_events", upsert=False))
            conn.execute("TRUNCATE TABLE latency_daily")
            for measure in latency_rollup.MEASURES:
                conn.execute(latency_rollup.histogram_insert(self.dialect, "usage_events", measure, upsert=False))
            conn.execute(
                "INSERT INTO tokenomy_meta (key, value) VALUES (%s, %s)", ("rollup_version", rollups.ROLLUP_VERSION)
            )

    def replace(self, events: Sequence[UsageEvent], held: Sequence[str] = ()) -> int:
        """Rows are not replaced here: ClickHouse deletes by background mutations its rollup views never see."""
        raise NotOnThisLedger(
            f"ledger {self._shown}: replacing imported bill rows (--replace) needs a DuckDB or PostgreSQL ledger "
            "(ClickHouse's rollups cannot take a row back); import the refreshed bill into one of those"
        )

    def write(self, events: Sequence[UsageEvent]) -> int:
        """Insert the events whose ids are not in the ledger yet (nor earlier in the same batch)."""
        if not events:
            return 0
        ids = list(dict.fromkeys(e.event_id for e in events))
        known: set[str] = set()
        for start in range(0, len(ids), 10_000):
            chunk = ids[start : start + 10_000]
            marks = ", ".join(["%s"] * len(chunk))
            rows = self.query(f"SELECT event_id FROM usage_events WHERE event_id IN ({marks})", chunk)
            known.update(r["event_id"] for r in rows)
        new: dict[str, tuple] = {}
        for event in events:
            if event.event_id not in known and event.event_id not in new:
                new[event.event_id] = _row_values(event)
        if new:
            values = ", ".join("(" + ", ".join(literal(v) for v in row) + ")" for row in new.values())
            self._backend.command(f"INSERT INTO usage_events ({', '.join(COLUMNS)}) VALUES {values}")
        return len(events)
