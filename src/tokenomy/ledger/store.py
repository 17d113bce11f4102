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

    def schema_version(self) -> int:
        with self.connect() as conn:
            return int(conn.execute("SELECT value FROM tokenomy_meta WHERE key = 'schema_version'").fetchone()[0])

    def write(self, events: Sequence[UsageEvent]) -> int:
        """Insert events; an event id already present is skipped (writes are idempotent)."""
        if not events:
            return 0
        marks = ", ".join([self.placeholder] * len(COLUMNS))
        sql = f"INSERT INTO usage_events ({', '.join(COLUMNS)}) VALUES ({marks}) ON CONFLICT (event_id) DO NOTHING"
        with self.connect() as conn:
            self._executemany(conn, sql, [_row_values(e) for e in events])
        return len(events)

    def _executemany(self, conn: Any, sql: str, rows: list[tuple]) -> None:
        conn.executemany(sql, rows)

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

    def _executemany(self, conn: Any, sql: str, rows: list[tuple]) -> None:
        # DuckDB's executemany costs ~5 ms per row; one INSERT ... SELECT from an Arrow table is ~1000x
        # cheaper, which a busy gateway's ledger needs. Falls back to row by row if Arrow cannot type a batch.
        if not sql.startswith("INSERT INTO usage_events ") or len(rows) < 2:
            conn.executemany(sql, rows)
            return
        import duckdb
        import pyarrow as pa

        try:
            batch = pa.table({c: [r[i] for r in rows] for i, c in enumerate(COLUMNS)})
            conn.register("_tokenomy_batch", batch)
            try:  # one statement: it lands whole or not at all, so the fallback cannot double-write
                conn.execute(
                    f"INSERT INTO usage_events ({', '.join(COLUMNS)}) SELECT {', '.join(COLUMNS)} "
                    "FROM _tokenomy_batch ON CONFLICT (event_id) DO NOTHING"
                )
            finally:
                conn.unregister("_tokenomy_batch")
        except (pa.ArrowException, duckdb.Error):
            conn.executemany(sql, rows)


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

    def _executemany(self, conn: Any, sql: str, rows: list[tuple]) -> None:
        with conn.transaction(), conn.cursor() as cursor:
            cursor.executemany(sql, rows)


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
