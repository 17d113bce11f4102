"""Ledger stores: an embedded DuckDB file (default) or a shared PostgreSQL database.

Both expose the same small API and the same table, so analytics SQL is written once.
DuckDB allows one writing process per file, so the DuckDB store holds its connection only
for the length of an operation and retries briefly when another process has the lock; that
lets a gateway with several workers and a CLI share one file.
"""

from __future__ import annotations

import json
import os
import re
import threading
import time
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from datetime import UTC, datetime
from decimal import Decimal
from pathlib import Path
from typing import Any

from tokenomy.errors import ConfigError
from tokenomy.ledger import rollups
from tokenomy.ledger.events import COLUMNS, SCHEMA_VERSION, UsageEvent

DEFAULT_LEDGER = ".tokenomy/ledger.duckdb"
# DuckDB shares one database instance per file within a process, but threads opening the first connection
# (or closing the last) at the same moment race ("Unique file handle conflict"): open and close one at a time.
_DUCKDB_OPEN_CLOSE = threading.Lock()

_COLUMN_TYPES = {
    "ts": "TIMESTAMPTZ NOT NULL",
    "provider": "TEXT NOT NULL",
    "model": "TEXT NOT NULL",
    "region": "TEXT",
    "mode": "TEXT NOT NULL",
    "task": "TEXT",
    "tags": "TEXT",
    "tenant": "TEXT",
    "key_id": "TEXT",
    "route": "TEXT",
    "tier": "TEXT",
    "input_tokens": "BIGINT",
    "output_tokens": "BIGINT",
    "cache_read_tokens": "BIGINT",
    "cache_write_tokens": "BIGINT",
    "input_cost_usd": "DECIMAL(20,12)",
    "output_cost_usd": "DECIMAL(20,12)",
    "cache_read_cost_usd": "DECIMAL(20,12)",
    "cache_write_cost_usd": "DECIMAL(20,12)",
    "cost_usd": "DECIMAL(20,12)",
    "latency_ms": "DOUBLE PRECISION",
    "ttft_ms": "DOUBLE PRECISION",
    "outcome": "TEXT NOT NULL",
    "error_type": "TEXT",
    "attempt": "INTEGER",
    "request_id": "TEXT",
    "batch_job_id": "TEXT",
    "prompt_hash": "TEXT",
    "prefix_hash": "TEXT",
    "prefix_tokens": "INTEGER",
    "prompt_text": "TEXT",
    "priced_by": "TEXT",
    "image_count": "INTEGER DEFAULT 0",
    "document_count": "INTEGER DEFAULT 0",
    "tool_call_count": "INTEGER DEFAULT 0",
    "event_id": "TEXT PRIMARY KEY",
}
# Columns added after schema version 1 shipped: ledgers made before them gain them on open (0 for old rows).
ADDED_COLUMNS = ("image_count", "document_count", "tool_call_count")
assert set(_COLUMN_TYPES) == set(COLUMNS), "ledger DDL and UsageEvent fields drifted apart"

EVENTS_DDL = (
    "CREATE TABLE IF NOT EXISTS usage_events (\n  "
    + ",\n  ".join(f"{name} {_COLUMN_TYPES[name]}" for name in COLUMNS)
    + "\n)"
)
META_DDL = "CREATE TABLE IF NOT EXISTS tokenomy_meta (key TEXT PRIMARY KEY, value TEXT NOT NULL)"


def _row_values(event: UsageEvent) -> tuple:
    row = event.to_row()
    row["tags"] = json.dumps(row["tags"] or {}, sort_keys=True)
    return tuple(row[c] for c in COLUMNS)


def event_from_row(row: dict[str, Any]) -> UsageEvent:
    """Rebuild an event from a database row (tags JSON decoded, ts made UTC-aware)."""
    values = dict(row)
    tags = values.get("tags")
    values["tags"] = json.loads(tags) if isinstance(tags, str) and tags else (tags or {})
    ts = values["ts"]
    if isinstance(ts, datetime):
        values["ts"] = ts.replace(tzinfo=UTC) if ts.tzinfo is None else ts.astimezone(UTC)
    for key in ("input_cost_usd", "output_cost_usd", "cache_read_cost_usd", "cache_write_cost_usd", "cost_usd"):
        if values.get(key) is not None and not isinstance(values[key], Decimal):
            values[key] = Decimal(str(values[key]))
    return UsageEvent(**{k: values[k] for k in COLUMNS if k in values})


class LedgerStore:
    """Common behaviour; subclasses provide `connect()` and the parameter placeholder style."""

    dialect = "generic"
    placeholder = "?"
    rollups = True  # hourly rollups kept on write (ledger/rollups.py); reports read them
    url: str

    @contextmanager
    def connect(self) -> Iterator[Any]:  # pragma: no cover - abstract
        raise NotImplementedError
        yield

    def _init_schema(self) -> None:
        with self.connect() as conn:
            conn.execute(META_DDL)
            conn.execute(EVENTS_DDL)
            for name in ADDED_COLUMNS:
                conn.execute(f"ALTER TABLE usage_events ADD COLUMN IF NOT EXISTS {name} {_COLUMN_TYPES[name]}")
            rows = conn.execute("SELECT value FROM tokenomy_meta WHERE key = 'schema_version'").fetchall()
            if not rows:
                conn.execute(
                    f"INSERT INTO tokenomy_meta (key, value) VALUES ({self.placeholder}, {self.placeholder})",
                    ("schema_version", str(SCHEMA_VERSION)),
                )
            elif int(rows[0][0]) != SCHEMA_VERSION:
                raise ConfigError(
                    f"ledger {self.url} has schema version {rows[0][0]}, this Tokenomy expects {SCHEMA_VERSION}; "
                    "upgrade Tokenomy (if newer) or export with the old version and import into a fresh ledger"
                )
            conn.execute(rollups.HOURLY_DDL)
            conn.execute(rollups.TAGS_DDL)
            self._init_extra(conn)
        if not self._rollups_current():
            self.rebuild_rollups()

    def _init_extra(self, conn: Any) -> None:
        """Engine-specific schema additions (indexes)."""

    def _rollups_current(self) -> bool:
        rows = self.query("SELECT value FROM tokenomy_meta WHERE key = 'rollup_version'")
        return bool(rows) and rows[0]["value"] == rollups.ROLLUP_VERSION

    def rebuild_rollups(self) -> None:
        """Recompute the hourly rollups from every event: on first open of an older ledger, or after events
        were inserted with plain SQL (as the report benchmark does) rather than through `write`."""
        ph = self.placeholder
        with self.connect() as conn, self._transaction(conn):
            self._lock_rollups(conn)
            rollups.rebuild(conn, self.dialect)
            conn.execute("DELETE FROM tokenomy_meta WHERE key = 'rollup_version'")
            version = ("rollup_version", rollups.ROLLUP_VERSION)
            conn.execute(f"INSERT INTO tokenomy_meta (key, value) VALUES ({ph}, {ph})", version)

    @contextmanager
    def _transaction(self, conn: Any) -> Iterator[None]:
        conn.execute("BEGIN")
        try:
            yield
        except BaseException:
            conn.execute("ROLLBACK")
            raise
        conn.execute("COMMIT")

    def _lock_rollups(self, conn: Any) -> None:
        """Serialise rollup maintenance between processes where the engine lets several write at once."""

    def schema_version(self) -> int:
        with self.connect() as conn:
            return int(conn.execute("SELECT value FROM tokenomy_meta WHERE key = 'schema_version'").fetchone()[0])

    def write(self, events: Sequence[UsageEvent]) -> int:
        """Insert events and add the new ones to the rollups in one transaction; an event id already present
        is skipped (writes are idempotent)."""
        if not events:
            return 0
        with self.connect() as conn, self._transaction(conn):
            self._lock_rollups(conn)
            self._insert_new(conn, [_row_values(e) for e in events])
        return len(events)

    def _insert_new(self, conn: Any, rows: list[tuple]) -> None:  # pragma: no cover - per engine
        raise NotImplementedError

    def query(self, sql: str, params: Sequence[Any] = ()) -> list[dict[str, Any]]:
        """Run SQL (with this store's placeholder style) and return rows as dicts."""
        with self.connect() as conn:
            cursor = conn.execute(sql, tuple(params))
            names = [d[0] for d in cursor.description] if cursor.description else []
            return [dict(zip(names, row, strict=True)) for row in cursor.fetchall()]

    def execute(self, sql: str, params: Sequence[Any] = ()) -> None:
        with self.connect() as conn:
            conn.execute(sql, tuple(params))

    def events(self, since: datetime | None = None, until: datetime | None = None) -> list[UsageEvent]:
        clauses, params = [], []
        if since:
            clauses.append(f"ts >= {self.placeholder}")
            params.append(since)
        if until:
            clauses.append(f"ts < {self.placeholder}")
            params.append(until)
        where = f" WHERE {' AND '.join(clauses)}" if clauses else ""
        rows = self.query(f"SELECT {', '.join(COLUMNS)} FROM usage_events{where} ORDER BY ts, event_id", params)
        return [event_from_row(r) for r in rows]

    def count(self) -> int:
        return int(self.query("SELECT COUNT(*) AS n FROM usage_events")[0]["n"])


class DuckDBStore(LedgerStore):
    dialect = "duckdb"
    placeholder = "?"

    def __init__(self, path: str | Path) -> None:
        self.path = Path(path)
        self.url = str(self.path)
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self._init_schema()

    @contextmanager
    def connect(self) -> Iterator[Any]:
        import duckdb

        deadline = time.monotonic() + 30
        while True:
            try:
                with _DUCKDB_OPEN_CLOSE:
                    conn = duckdb.connect(str(self.path))
                break
            except duckdb.IOException as exc:  # another process holds the write lock
                if "lock" not in str(exc).lower() or time.monotonic() > deadline:
                    raise
                time.sleep(0.02)
        try:
            conn.execute("SET TimeZone = 'UTC'")
            yield conn
        finally:
            with _DUCKDB_OPEN_CLOSE:
                conn.close()

    def _insert_new(self, conn: Any, rows: list[tuple]) -> None:
        # DuckDB's executemany costs ~5 ms per row; staging the batch from an Arrow table is ~1000x cheaper,
        # which a busy gateway's ledger needs. Falls back to row by row if Arrow cannot type a batch.
        import duckdb
        import pyarrow as pa

        columns = ", ".join(COLUMNS)
        conn.execute(f"CREATE OR REPLACE TEMP TABLE _tokenomy_stage AS SELECT {columns} FROM usage_events LIMIT 0")
        try:
            batch = pa.table({c: [r[i] for r in rows] for i, c in enumerate(COLUMNS)})
            conn.register("_tokenomy_batch", batch)
            try:
                conn.execute(f"INSERT INTO _tokenomy_stage SELECT {columns} FROM _tokenomy_batch")
            finally:
                conn.unregister("_tokenomy_batch")
        except (pa.ArrowException, duckdb.Error):
            conn.execute("DELETE FROM _tokenomy_stage")
            marks = ", ".join(["?"] * len(COLUMNS))
            conn.executemany(f"INSERT INTO _tokenomy_stage VALUES ({marks})", rows)
        # RETURNING gives back only the rows really inserted: those, and only those, go into the rollups.
        # (conn.sql runs an INSERT at once; its relation then hands over the returned rows without a copy.)
        new = conn.sql(
            f"INSERT INTO usage_events ({columns}) SELECT {columns} FROM _tokenomy_stage "
            f"ON CONFLICT (event_id) DO NOTHING RETURNING {', '.join(rollups.SOURCE_COLUMNS)}"
        ).to_arrow_table()
        conn.execute("DROP TABLE _tokenomy_stage")
        if new.num_rows:
            conn.register("_tokenomy_new", new)
            try:
                conn.execute(rollups.hourly_insert("_tokenomy_new", upsert=True))
                conn.execute(rollups.tags_insert(self.dialect, "_tokenomy_new", upsert=True))
            finally:
                conn.unregister("_tokenomy_new")


class PostgresStore(LedgerStore):
    dialect = "postgres"
    placeholder = "%s"

    def __init__(self, url: str) -> None:
        self.url = url
        self._init_schema()

    @contextmanager
    def connect(self) -> Iterator[Any]:
        import psycopg

        with psycopg.connect(self.url, autocommit=True) as conn:
            conn.execute("SET TIME ZONE 'UTC'")
            yield conn

    @contextmanager
    def _transaction(self, conn: Any) -> Iterator[None]:
        with conn.transaction():
            yield

    def _lock_rollups(self, conn: Any) -> None:
        # Two gateway workers upserting the same hour, or two processes backfilling at once, would deadlock
        # or collide on the rollups' keys: one writer at a time (held until the transaction ends).
        conn.execute("SELECT pg_advisory_xact_lock(7355608)")

    def _init_extra(self, conn: Any) -> None:
        # Reports read the partial hours at a window's edges from raw events: an index keeps that a lookup.
        conn.execute("CREATE INDEX IF NOT EXISTS usage_events_ts ON usage_events (ts)")

    def _insert_new(self, conn: Any, rows: list[tuple]) -> None:
        columns = ", ".join(COLUMNS)
        conn.execute(f"CREATE TEMP TABLE _tokenomy_stage ON COMMIT DROP AS SELECT {columns} FROM usage_events LIMIT 0")
        with conn.cursor() as cursor:
            cursor.executemany(f"INSERT INTO _tokenomy_stage VALUES ({', '.join(['%s'] * len(COLUMNS))})", rows)
        # One statement: the events really inserted (RETURNING skips ids already present) feed both rollups.
        conn.execute(
            f"WITH new AS (INSERT INTO usage_events ({columns}) SELECT {columns} FROM _tokenomy_stage "
            f"ON CONFLICT (event_id) DO NOTHING RETURNING {', '.join(rollups.SOURCE_COLUMNS)}), "
            f"hourly AS ({rollups.hourly_insert('new', upsert=True)}) "
            f"{rollups.tags_insert(self.dialect, 'new', upsert=True)}"
        )


def open_store(url_or_path: str | os.PathLike | None = None) -> LedgerStore:
    """Open the ledger at a PostgreSQL URL or DuckDB path (default: TOKENOMY_LEDGER or .tokenomy/)."""
    target = str(url_or_path or os.environ.get("TOKENOMY_LEDGER") or DEFAULT_LEDGER)
    if target.startswith(("postgres://", "postgresql://")):
        import psycopg

        try:
            return PostgresStore(target)
        except psycopg.OperationalError as exc:  # server down, bad credentials, no such database
            shown = re.sub(r"//([^:/@]+):[^@]*@", r"//\1:***@", target)  # never print the password
            raise ConfigError(
                f"ledger {shown}: cannot connect ({' '.join(str(exc).split())}); check the URL "
                "and that PostgreSQL is running (--ledger or TOKENOMY_LEDGER)"
            ) from None
    if target.startswith(("clickhouse://", "clickhouses://", "chdb:")):
        return _open_clickhouse(target)
    if target.startswith("duckdb://"):
        target = target[len("duckdb://") :]
    import duckdb

    try:
        return DuckDBStore(target)
    except duckdb.IOException as exc:  # e.g. a file that is not a DuckDB database
        raise ConfigError(
            f"ledger {target}: {exc}; pass --ledger with a DuckDB file path (a new one is created) "
            "or a postgresql:// URL"
        ) from None


def _open_clickhouse(target: str) -> LedgerStore:
    try:
        from tokenomy.ledger.clickhouse import ClickHouseStore
    except ImportError as exc:  # chdb / clickhouse-connect come with the `clickhouse` extra
        raise ConfigError(
            f"ledger {target}: ClickHouse support is not installed ({exc}); pip install 'tokenomy[clickhouse]'"
        ) from None
    try:
        return ClickHouseStore(target)
    except ConfigError:
        raise
    except Exception as exc:  # server down, bad credentials, a directory chDB cannot use
        shown = re.sub(r"//([^:/@]+):[^@]*@", r"//\1:***@", target)
        raise ConfigError(
            f"ledger {shown}: cannot open ({' '.join(str(exc).split())[:300]}); check the URL and that ClickHouse "
            "is running (--ledger or TOKENOMY_LEDGER)"
        ) from None
