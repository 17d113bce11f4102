"""Ledger stores: an embedded DuckDB file (default), a shared PostgreSQL database, or ClickHouse (clickhouse.py).

All expose the same small API (ledger/base.py) and the same table, so analytics SQL is written once.
DuckDB allows one writing process per file, so the DuckDB store holds its connection only
for the length of an operation and retries briefly when another process has the lock; that
lets a gateway with several workers and a CLI share one file.
"""

from __future__ import annotations

import os
import re
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any, Optional

from tokenomy.errors import ConfigError, one_line, url_without_credential
from tokenomy.ledger import latency_rollup, rollups
from tokenomy.ledger.base import (  # noqa: F401 - re-exported: callers import the schema and base from here
    _COLUMN_TYPES,
    ADDED_COLUMNS,
    EVENTS_DDL,
    META_DDL,
    LedgerStore,
    _row_values,
    event_from_row,
)
from tokenomy.ledger.events import COLUMNS

DEFAULT_LEDGER = ".tokenomy/ledger.duckdb"
# How long an operation waits for another process to let go of a DuckDB ledger's write lock.
LOCK_WAIT_SECONDS = 30.0
# DuckDB shares one database instance per file within a process, but threads opening the first connection
# (or closing the last) at the same moment race ("Unique file handle conflict"): open and close one at a time.
_DUCKDB_OPEN_CLOSE = threading.Lock()


class DuckDBStore(LedgerStore):
    dialect = "duckdb"
    placeholder = "?"

    threads: int | None = None  # DuckDB's worker threads (default: one per core)

    def __init__(self, path: str | Path) -> None:
        self.path = Path(path)
        self.url = str(self.path)
        try:
            self.path.parent.mkdir(parents=True, exist_ok=True)
        except (FileExistsError, NotADirectoryError):  # read "[Errno 17] File exists: 'notes.txt'"
            blocking = next((p for p in reversed(self.path.parents) if p.exists() and not p.is_dir()), self.path.parent)
            raise ConfigError(
                f"ledger {self.path}: {blocking} is a file, not a folder; give a ledger path in a folder "
                "(or move the file)"
            ) from None
        self._init_schema()

    @contextmanager
    def connect(self) -> Iterator[Any]:
        import duckdb

        deadline = time.monotonic() + LOCK_WAIT_SECONDS
        while True:
            try:
                with _DUCKDB_OPEN_CLOSE:
                    conn = duckdb.connect(str(self.path))
                break
            except duckdb.IOException as exc:  # another process holds the write lock
                if _UNWRITABLE.search(str(exc)):  # at start, or mid-run (a mount remounted read-only)
                    raise ConfigError(_unwritable_message(self.path, exc)) from None
                if "lock" not in str(exc).lower():
                    raise
                if time.monotonic() > deadline:
                    raise ConfigError(_lock_message(self.path, exc)) from exc
                time.sleep(0.02)
        try:
            conn.execute("SET TimeZone = 'UTC'")
            if self.threads is not None:
                conn.execute(f"SET threads = {self.threads}")
            yield conn
        finally:
            with _DUCKDB_OPEN_CLOSE:
                conn.close()

    def is_data_error(self, exc: BaseException) -> bool:
        import duckdb

        return isinstance(exc, (duckdb.ConversionException, duckdb.OutOfRangeException, duckdb.ConstraintException))

    def _stage(self, conn: Any, rows: list[tuple]) -> None:
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

    def _insert_staged(self, conn: Any) -> None:
        columns = ", ".join(COLUMNS)
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
                for measure in latency_rollup.MEASURES:
                    conn.execute(latency_rollup.histogram_insert(self.dialect, "_tokenomy_new", measure, upsert=True))
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

    def is_data_error(self, exc: BaseException) -> bool:
        import psycopg

        return isinstance(exc, (psycopg.DataError, psycopg.IntegrityError))  # e.g. a NUL byte in text

    def _lock_rollups(self, conn: Any) -> None:
        # Two gateway workers upserting the same hour, or two processes backfilling at once, would deadlock
        # or collide on the rollups' keys: one writer at a time (held until the transaction ends).
        conn.execute("SELECT pg_advisory_xact_lock(7355608)")

    def _init_extra(self, conn: Any) -> None:
        # Reports read the partial hours at a window's edges from raw events: an index keeps that a lookup.
        conn.execute("CREATE INDEX IF NOT EXISTS usage_events_ts ON usage_events (ts)")

    def _stage(self, conn: Any, rows: list[tuple]) -> None:
        columns = ", ".join(COLUMNS)
        with conn.transaction(), conn.cursor() as cursor:
            cursor.execute(f"CREATE TEMP TABLE _tokenomy_stage AS SELECT {columns} FROM usage_events LIMIT 0")
            cursor.executemany(f"INSERT INTO _tokenomy_stage VALUES ({', '.join(['%s'] * len(COLUMNS))})", rows)

    def _insert_staged(self, conn: Any) -> None:
        columns = ", ".join(COLUMNS)
        # One statement: the events really inserted (RETURNING skips ids already present) feed every rollup.
        conn.execute(
            f"WITH new AS (INSERT INTO usage_events ({columns}) SELECT {columns} FROM _tokenomy_stage "
            f"ON CONFLICT (event_id) DO NOTHING RETURNING {', '.join(rollups.SOURCE_COLUMNS)}), "
            f"hourly AS ({rollups.hourly_insert('new', upsert=True)})"
            + "".join(
                f", hist_{m} AS ({latency_rollup.histogram_insert(self.dialect, 'new', m, upsert=True)})"
                for m in latency_rollup.MEASURES
            )
            + f" {rollups.tags_insert(self.dialect, 'new', upsert=True)}"
        )


POSTGRES_SCHEMES = ("postgres://", "postgresql://")
CLICKHOUSE_SERVER_SCHEMES = ("clickhouse://", "clickhouses://")
SERVER_SCHEMES = (*POSTGRES_SCHEMES, *CLICKHOUSE_SERVER_SCHEMES)
EMBEDDED_CLICKHOUSE_SCHEME = "chdb:"  # chdb:DIR or chdb://DIR, a directory this process runs ClickHouse in
SUPPORTED_SCHEMES = ("duckdb://", *SERVER_SCHEMES, EMBEDDED_CLICKHOUSE_SCHEME)


def local_path(target: str) -> Optional[Path]:
    """Where a local ledger lives: the file of a DuckDB ledger (a path, or duckdb://PATH) or the directory of an
    embedded ClickHouse one (chdb:DIR); None for a ledger on a server (PostgreSQL, ClickHouse), which has no path
    here to check or create. The one place the commands learn which ledgers are files."""
    if target.startswith(SERVER_SCHEMES):
        return None
    if target.startswith(EMBEDDED_CLICKHOUSE_SCHEME):
        return Path(target[len(EMBEDDED_CLICKHOUSE_SCHEME) :].removeprefix("//"))
    return Path(target.removeprefix("duckdb://"))


def duckdb_path(target: str) -> Optional[Path]:
    """The file of a DuckDB ledger; None for any other (a server's, or an embedded ClickHouse directory)."""
    return None if target.startswith(EMBEDDED_CLICKHOUSE_SCHEME) else local_path(target)


def check_ledger_url(target: str) -> None:
    """Refuse a URL of a database Tokenomy does not store to (mysql://, sqlite://, s3://): taken as a DuckDB path
    it became a directory ./mysql:/ and DuckDB went to download an extension for it."""
    if re.match(r"[A-Za-z][A-Za-z0-9+.-]*://", target) and not target.startswith(SUPPORTED_SCHEMES):
        shown = url_without_credential(target)  # never print the credential
        raise ConfigError(
            f"unsupported ledger URL {shown}: use a DuckDB file path, postgresql://... or clickhouse://... "
            "(--ledger or TOKENOMY_LEDGER)"
        )


def _lock_message(path: Path, exc: BaseException) -> str:
    """The lock held too long, said as what it is ("pass --ledger with a DuckDB file path" was no fix for it)."""
    holder = re.search(r"Conflicting lock is held in (.+?) \(PID (\d+)\)", str(exc))
    who = f"process {holder.group(2)} ({holder.group(1)})" if holder else "another process"
    return (
        f"ledger {path}: {who} holds its write lock and kept it for {LOCK_WAIT_SECONDS:g} s; DuckDB lets one "
        "process at a time open a ledger file: stop that process (or let it finish) and run this again, or "
        "share one ledger between processes with PostgreSQL (--ledger postgresql://...)"
    )


def foreign_tables(path: str | Path) -> list[str]:
    """The tables of an existing DuckDB file that is not a Tokenomy ledger; [] for a ledger, an empty or new file,
    or one that cannot be read here (opening it says why). Read-only: nothing is written to look."""
    import duckdb

    path = Path(path)
    if not path.is_file() or path.stat().st_size == 0:
        return []
    try:
        with _DUCKDB_OPEN_CLOSE:
            conn = duckdb.connect(str(path), read_only=True)
    except duckdb.Error:  # not a DuckDB file, or another process holds the write lock
        return []
    try:
        names = [r[0] for r in conn.execute("SELECT table_name FROM information_schema.tables").fetchall()]
    finally:
        with _DUCKDB_OPEN_CLOSE:
            conn.close()
    return [] if {"usage_events", "tokenomy_meta"} & set(names) else sorted(names)


def ledger_target(url_or_path: str | os.PathLike | None = None) -> str:
    """The ledger a command means (given, else TOKENOMY_LEDGER, else the default), its URL scheme checked."""
    target = str(url_or_path or os.environ.get("TOKENOMY_LEDGER") or DEFAULT_LEDGER)
    check_ledger_url(target)
    return target


def open_store(url_or_path: str | os.PathLike | None = None, creates: bool = True) -> LedgerStore:
    """Open the ledger at a PostgreSQL URL or DuckDB path (default: TOKENOMY_LEDGER or .tokenomy/). `creates`: the
    caller makes a new DuckDB file when none is there (False for a command that only reads an existing ledger)."""
    target = ledger_target(url_or_path)
    if target.startswith(POSTGRES_SCHEMES):
        import psycopg

        try:
            return PostgresStore(target)
        except psycopg.OperationalError as exc:  # server down, bad credentials, no such database
            shown = url_without_credential(target)  # never print the credential
            raise ConfigError(
                f"ledger {shown}: cannot connect ({one_line(exc)}); check the URL "
                "and that PostgreSQL is running (--ledger or TOKENOMY_LEDGER)"
            ) from None
    if target.startswith((*CLICKHOUSE_SERVER_SCHEMES, EMBEDDED_CLICKHOUSE_SCHEME)):
        return _open_clickhouse(target)
    target = target.removeprefix("duckdb://")
    import duckdb

    try:
        return DuckDBStore(target)
    except duckdb.IOException as exc:  # e.g. a file that is not a DuckDB database
        fix = (
            "pass --ledger with a DuckDB file path (a new one is created) or a postgresql:// URL"
            if creates  # a read-only command said so too, and creates none
            else "pass --ledger (or set TOKENOMY_LEDGER) to the DuckDB file or postgresql:// URL your calls were "
            "recorded in"
        )
        raise ConfigError(f"ledger {target}: {exc}; {fix}") from None


# How the operating system refuses a write, as DuckDB's IOException quotes it.
_UNWRITABLE = re.compile(r"Read-only file system|Permission denied|Operation not permitted")


def _unwritable_message(path: Path, exc: BaseException) -> str:
    """A ledger the system will not let this user write ("pass --ledger with a DuckDB file path" was no fix: the path
    was one, and the file or its folder was the fault)."""
    return (
        f"ledger {path}: {one_line(exc)}; this user cannot write it or its folder {path.parent}: make them writable, "
        "or pass --ledger with a path in a folder it can write"
    )


def _reason(exc: BaseException) -> str:
    """The socket error inside a driver's long message ("[Errno 111] Connection refused"), else its first 300
    characters: cut at 300, the reason was lost after a retry URL and a query id."""
    text = " ".join(str(exc).split())
    socket_error = re.search(r"\[Errno -?\d+\] [^\"')]+", text)
    return socket_error.group(0).strip() if socket_error else text[:300]


def _open_clickhouse(target: str) -> LedgerStore:
    try:
        from tokenomy.ledger.clickhouse import ClickHouseStore
    except ImportError as exc:  # chdb / clickhouse-connect come with the `clickhouse` extra
        raise ConfigError(
            f"ledger {target}: ClickHouse support is not installed ({exc}); pip install 'tokenomy[clickhouse]'"
        ) from None
    import logging

    driver_log = logging.getLogger("clickhouse_connect")
    level = driver_log.level
    driver_log.setLevel(logging.CRITICAL)  # its "Unexpected Http Driver Exception" line came before the error below
    try:
        return ClickHouseStore(target)
    except ConfigError:
        raise
    except Exception as exc:  # server down, bad credentials, a directory chDB cannot use
        shown = url_without_credential(target)
        raise ConfigError(
            f"ledger {shown}: cannot open ({_reason(exc)}); check the URL and that ClickHouse "
            "is running (--ledger or TOKENOMY_LEDGER)"
        ) from None
    finally:
        driver_log.setLevel(level)
