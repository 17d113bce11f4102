"""What every ledger store shares: the usage_events schema, row conversion, and the LedgerStore base class
(query/execute/events/count, schema checks, rollup upkeep). Engines live in store.py and clickhouse.py."""

from __future__ import annotations

import json
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from typing import Any

from tokenomy.errors import ConfigError
from tokenomy.ledger import latency_rollup, rollups
from tokenomy.ledger.events import COLUMNS, SCHEMA_VERSION, UsageEvent
from tokenomy.money import MAX_USD

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
    "audio_input_tokens": "BIGINT DEFAULT 0",
    "audio_cache_read_tokens": "BIGINT DEFAULT 0",
    "audio_output_tokens": "BIGINT DEFAULT 0",
    "event_id": "TEXT PRIMARY KEY",
}
# Columns added after schema version 1 shipped: ledgers made before them gain them on open (0 for old rows).
ADDED_COLUMNS = (
    "image_count",
    "document_count",
    "tool_call_count",
    "audio_input_tokens",
    "audio_cache_read_tokens",
    "audio_output_tokens",
)
assert set(_COLUMN_TYPES) == set(COLUMNS), "ledger DDL and UsageEvent fields drifted apart"
# What those types hold: DECIMAL(20,12) keeps 8 digits before the point; BIGINT and INTEGER are signed 64/32 bits.
MAX_MONEY = MAX_USD  # money.MAX_USD: also the limit of every other DECIMAL(20,12) money column (key and team budgets)
_INT_LIMITS = {"BIGINT": 2**63, "INTEGER": 2**31}
INT_COLUMNS = {c: _INT_LIMITS[t.split()[0]] for c, t in _COLUMN_TYPES.items() if t.split()[0] in _INT_LIMITS}
_COST_COLUMNS = [c for c, t in _COLUMN_TYPES.items() if t.startswith("DECIMAL")]


def unstorable(event: UsageEvent) -> str | None:
    """Why the ledger's columns cannot hold `event` (a figure out of their range), or None. An upstream that reports
    10^15 tokens gives a cost no DECIMAL(20,12) holds: every engine would refuse the whole batch it is in."""
    for column, limit in INT_COLUMNS.items():
        value = getattr(event, column)
        if value is not None and not -limit <= value < limit:
            return f"{column} = {value} is out of the column's range"
    for column in _COST_COLUMNS:
        value = getattr(event, column)
        if value is not None and (not value.is_finite() or abs(value) >= MAX_MONEY):
            return f"{column} = {value} is out of the column's range (under 100,000,000 USD)"
    return None


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
    # Another process can write it while this one has it open (not so an embedded engine that owns its files).
    shared_with_other_processes = True

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
            version = conn.execute("SELECT value FROM tokenomy_meta WHERE key = 'rollup_version'").fetchall()
            if not version or version[0][0] != rollups.ROLLUP_VERSION:  # older rollups: their columns differ
                conn.execute("DROP TABLE IF EXISTS usage_hourly")
                conn.execute("DROP TABLE IF EXISTS usage_tags_hourly")
                conn.execute("DROP TABLE IF EXISTS latency_daily")
            conn.execute(rollups.HOURLY_DDL)
            conn.execute(rollups.TAGS_DDL)
            conn.execute(latency_rollup.DDL)
            self._init_extra(conn)
        if not self._rollups_current():
            self.rebuild_rollups()

    def _init_extra(self, conn: Any) -> None:
        """Engine-specific schema additions (indexes)."""

    def _rollups_current(self) -> bool:
        rows = self.query("SELECT value FROM tokenomy_meta WHERE key = 'rollup_version'")
        return bool(rows) and rows[0]["value"] == rollups.ROLLUP_VERSION

    def rebuild_rollups(self) -> None:
        """Recompute the hourly rollups and daily latency histograms from every event: on first open of an older
        ledger, or after events were inserted with plain SQL (as the report benchmark does) rather than through
        `write`."""
        ph = self.placeholder
        with self.connect() as conn, self._transaction(conn):
            self._lock_rollups(conn)
            rollups.rebuild(conn, self.dialect)
            latency_rollup.rebuild(conn, self.dialect)
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

    def is_data_error(self, exc: BaseException) -> bool:
        """Whether `exc` is this engine refusing a row for its values (not a connection or lock failure): the
        writer then finds that row and sets it aside, instead of retrying the whole batch forever."""
        return False

    def schema_version(self) -> int:
        with self.connect() as conn:
            return int(conn.execute("SELECT value FROM tokenomy_meta WHERE key = 'schema_version'").fetchone()[0])

    def write(self, events: Sequence[UsageEvent]) -> int:
        """Insert events and add the new ones to the rollups in one transaction; an event id already present
        is skipped (writes are idempotent)."""
        if not events:
            return 0
        with self.connect() as conn:
            self._stage(conn, [_row_values(e) for e in events])  # a temporary table of this connection
            with self._transaction(conn):
                self._lock_rollups(conn)
                self._insert_staged(conn)
        return len(events)

    def replace(self, events: Sequence[UsageEvent], held: Sequence[str] = ()) -> int:
        """Write `events` in place of the rows that hold their ids and of the rows `held` names (a bucket's other
        service tiers, on the events' days), in one transaction: an imported bill's buckets refreshed since (AWS
        re-issues a month's CUR as late usage arrives). The rollups of the UTC days the events fall on are recomputed
        from the rows, so reports over them stay equal to the raw rows."""
        firsts: dict[str, UsageEvent] = {}
        for event in events:  # an id twice in one import keeps its first row, as `write` does
            firsts.setdefault(event.event_id, event)
        events = list(firsts.values())
        if not events:
            return 0
        ph = self.placeholder
        days = [event.ts.astimezone(UTC).replace(hour=0, minute=0, second=0, microsecond=0) for event in events]
        window = [min(days), max(days) + timedelta(days=1)]
        in_window = f"(SELECT * FROM usage_events WHERE ts >= {ph} AND ts < {ph}) AS replaced"
        with self.connect() as conn:
            self._stage(conn, [_row_values(e) for e in events])
            with self._transaction(conn):
                self._lock_rollups(conn)
                conn.execute("DELETE FROM usage_events WHERE event_id IN (SELECT event_id FROM _tokenomy_stage)")
                held = list(dict.fromkeys(held))
                for start in range(0, len(held), 1000):
                    chunk = held[start : start + 1000]
                    conn.execute(f"DELETE FROM usage_events WHERE event_id IN ({', '.join([ph] * len(chunk))})", chunk)
                columns = ", ".join(COLUMNS)
                conn.execute(f"INSERT INTO usage_events ({columns}) SELECT {columns} FROM _tokenomy_stage")
                conn.execute(f"DELETE FROM usage_hourly WHERE hour >= {ph} AND hour < {ph}", window)
                conn.execute(f"DELETE FROM usage_tags_hourly WHERE hour >= {ph} AND hour < {ph}", window)
                conn.execute(f"DELETE FROM latency_daily WHERE day >= {ph} AND day < {ph}", window)
                conn.execute(rollups.hourly_insert(in_window, upsert=False), window)
                conn.execute(rollups.tags_insert(self.dialect, in_window, upsert=False), window)
                for measure in latency_rollup.MEASURES:
                    histogram = latency_rollup.histogram_insert(self.dialect, in_window, measure, upsert=False)
                    conn.execute(histogram, window)
            conn.execute("DROP TABLE _tokenomy_stage")
        return len(events)

    def _stage(self, conn: Any, rows: list[tuple]) -> None:  # pragma: no cover - per engine
        raise NotImplementedError

    def _insert_staged(self, conn: Any) -> None:  # pragma: no cover - per engine
        raise NotImplementedError

    def query(self, sql: str, params: Sequence[Any] = ()) -> list[dict[str, Any]]:
        """Run SQL (with this store's placeholder style) and return rows as dicts."""
        with self.connect() as conn:
            cursor = conn.execute(sql, tuple(params))
            names = [d[0] for d in cursor.description] if cursor.description else []
            return [dict(zip(names, row, strict=True)) for row in cursor.fetchall()]

    def query_columns(self, sql: str, params: Sequence[Any] = ()) -> list[str]:
        """The names of the columns `sql` answers with, also when it answers no row (a CSV's header)."""
        with self.connect() as conn:
            cursor = conn.execute(sql, tuple(params))
            return [d[0] for d in cursor.description] if cursor.description else []

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
