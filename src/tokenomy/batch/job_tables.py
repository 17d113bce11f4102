"""Batch job state in the ledger database: jobs, their parts, and one result per record.

The tables live beside `usage_events` (DuckDB file or PostgreSQL) so any process that can open the
ledger can follow, resume or export a job. `batch_results` has PRIMARY KEY (job_id, record_id):
a record can never be answered twice, which is what makes the local runner crash-safe.
"""

from __future__ import annotations

import json
import threading
from dataclasses import dataclass, field
from datetime import UTC, datetime
from decimal import Decimal
from typing import Any

from tokenomy.batch.backends import RecordResult, refused, transient
from tokenomy.errors import UsageError
from tokenomy.ledger.events import utcnow
from tokenomy.ledger.store import LedgerStore

DDL = (
    """CREATE TABLE IF NOT EXISTS batch_jobs (
      job_id TEXT PRIMARY KEY, model TEXT NOT NULL, backend TEXT NOT NULL, status TEXT NOT NULL,
      message TEXT, created_at TIMESTAMPTZ NOT NULL, updated_at TIMESTAMPTZ NOT NULL,
      input_path TEXT, records INTEGER NOT NULL, bad_lines INTEGER NOT NULL, options TEXT,
      runner_pid INTEGER, runner_host TEXT, heartbeat_at TIMESTAMPTZ)""",
    """CREATE TABLE IF NOT EXISTS batch_parts (
      job_id TEXT NOT NULL, part_no INTEGER NOT NULL, handle TEXT, status TEXT NOT NULL, message TEXT,
      record_ids TEXT NOT NULL, payload TEXT NOT NULL, collected BOOLEAN NOT NULL,
      created_at TIMESTAMPTZ NOT NULL, updated_at TIMESTAMPTZ NOT NULL, PRIMARY KEY (job_id, part_no))""",
    """CREATE TABLE IF NOT EXISTS batch_results (
      job_id TEXT NOT NULL, record_id TEXT NOT NULL, part_no INTEGER, ok BOOLEAN NOT NULL, text TEXT,
      error TEXT, model TEXT, mode TEXT, input_tokens BIGINT, output_tokens BIGINT, cache_read_tokens BIGINT,
      cache_write_tokens BIGINT, cost_usd DECIMAL(20,12), raw TEXT, finished_at TIMESTAMPTZ NOT NULL,
      PRIMARY KEY (job_id, record_id))""",
)

JOB_FIELDS = (
    "job_id",
    "model",
    "backend",
    "status",
    "message",
    "created_at",
    "updated_at",
    "input_path",
    "records",
    "bad_lines",
    "options",
    "runner_pid",
    "runner_host",
    "heartbeat_at",
)

# What a record's later result replaces in its failed row (all but the key).
_RESULT_UPDATE = (
    "part_no",
    "ok",
    "text",
    "error",
    "model",
    "mode",
    "input_tokens",
    "output_tokens",
    "cache_read_tokens",
    "cache_write_tokens",
    "cost_usd",
    "raw",
    "finished_at",
)


def _utc(value: Any) -> Any:
    if isinstance(value, datetime) and value.tzinfo is None:
        return value.replace(tzinfo=UTC)
    return value.astimezone(UTC) if isinstance(value, datetime) else value


# The `mode` of a batch_results row that is no record's: an output line naming no record of its part (its id lost
# on the way), kept under where it is (`line N of FILE`) with its cost, for the provider billed it. Such rows count in
# the job's cost and `unmatched`, never as a record done or failed.
UNMATCHED = "unmatched"


@dataclass
class Job:
    """One batch job row, with counts filled in from batch_results."""

    job_id: str
    model: str
    backend: str
    status: str
    created_at: datetime
    updated_at: datetime
    records: int
    bad_lines: int = 0
    message: str | None = None
    input_path: str | None = None
    options: dict[str, Any] = field(default_factory=dict)
    runner_pid: int | None = None
    runner_host: str | None = None
    heartbeat_at: datetime | None = None
    done: int = 0
    failed: int = 0
    cost_usd: Decimal = Decimal(0)
    unmatched: int = 0  # output lines that name no record of the job (see UNMATCHED)

    @classmethod
    def from_row(cls, row: dict[str, Any]) -> Job:
        values = {k: _utc(row[k]) for k in JOB_FIELDS}
        values["options"] = json.loads(values["options"] or "{}")
        return cls(**values)

    @property
    def pending(self) -> int:
        return self.records - self.done - self.failed

    def to_json(self) -> dict[str, Any]:
        return {
            "job_id": self.job_id,
            "status": self.status,
            "backend": self.backend,
            "model": self.model,
            "records": self.records,
            "done": self.done,
            "failed": self.failed,
            "pending": self.pending,
            "cost_usd": self.cost_usd,
            "unmatched_lines": self.unmatched,
            "bad_lines": self.bad_lines,
            "message": self.message,
            "input_path": self.input_path,
            "created_at": self.created_at,
            "updated_at": self.updated_at,
            "prompts_stored": self.prompts_stored,
            "max_cost_usd": self.max_cost_usd,
        }

    @property
    def max_cost_usd(self) -> Decimal | None:
        """The cap on what the job may cost (`batch submit --max-cost`, or the last `resume --max-cost`), None if it has
        none: `resume` sends nothing whose worst case would take the job's cost over it."""
        stored = self.options.get("max_cost_usd")
        return None if stored is None else Decimal(str(stored))

    @property
    def prompts_stored(self) -> bool:
        """Whether the job keeps its records' inputs once they cannot be sent again (`store_prompts: true` in its
        --config); else each one's input is removed when the job ends with its result final."""
        return bool(self.options.get("store_prompts"))


class JobTables:
    """Reads and writes the three batch tables through a LedgerStore (short per-operation connections).

    DuckDB refuses a second connection to the same file from another thread while one is open, so
    every statement from this process goes through one lock (the runner's threads, its heartbeat).
    """

    _lock = threading.RLock()

    def __init__(self, store: LedgerStore) -> None:
        self.store = store
        self.p = store.placeholder
        with self._lock, store.connect() as conn:
            for ddl in DDL:
                conn.execute(ddl)

    def execute(self, sql: str, params: Any = ()) -> None:
        with self._lock:
            self.store.execute(sql, params)

    def query(self, sql: str, params: Any = ()) -> list[dict[str, Any]]:
        with self._lock:
            return self.store.query(sql, params)

    def write_events(self, events: list[Any]) -> None:
        """Ledger usage events (idempotent: existing event ids are skipped)."""
        with self._lock:
            self.store.write(events)

    def _marks(self, n: int) -> str:
        return ", ".join([self.p] * n)

    # -- jobs -----------------------------------------------------------------------------------
    def insert_job(self, job: Job) -> None:
        values = [getattr(job, k) for k in JOB_FIELDS]
        values[JOB_FIELDS.index("options")] = json.dumps(job.options, sort_keys=True)
        self.execute(
            f"INSERT INTO batch_jobs ({', '.join(JOB_FIELDS)}) VALUES ({self._marks(len(JOB_FIELDS))})", values
        )

    def update_job(self, job_id: str, **fields: Any) -> None:
        fields["updated_at"] = utcnow()
        sets = ", ".join(f"{k} = {self.p}" for k in fields)
        self.execute(f"UPDATE batch_jobs SET {sets} WHERE job_id = {self.p}", [*fields.values(), job_id])

    def update_job_if(self, job_id: str, if_status: str, **fields: Any) -> bool:
        """`update_job` only while the job's status is `if_status`, in one statement (another process may change it
        between a read and a write); whether it was updated."""
        fields["updated_at"] = utcnow()
        sets = ", ".join(f"{k} = {self.p}" for k in fields)
        rows = self.query(
            f"UPDATE batch_jobs SET {sets} WHERE job_id = {self.p} AND status = {self.p} RETURNING job_id",
            [*fields.values(), job_id, if_status],
        )
        return bool(rows)

    def get_job(self, job_id: str) -> Job | None:
        rows = self.query(f"SELECT * FROM batch_jobs WHERE job_id = {self.p}", [job_id])
        if not rows:
            return None
        job = Job.from_row(rows[0])
        self._fill_counts([job])
        return job

    def job_status(self, job_id: str) -> str | None:
        """Only the job's status: what the runner's heartbeat reads every beat to notice a cancel, without the counts
        and costs `get_job` adds up."""
        rows = self.query(f"SELECT status FROM batch_jobs WHERE job_id = {self.p}", [job_id])
        return rows[0]["status"] if rows else None

    def list_jobs(self) -> list[Job]:
        jobs = [Job.from_row(r) for r in self.query("SELECT * FROM batch_jobs ORDER BY created_at, job_id")]
        self._fill_counts(jobs)
        return jobs

    def _fill_counts(self, jobs: list[Job]) -> None:
        """Each job's done/failed counts and cost, in one statement: its results summed, and what its attempts billed
        without an answer (the local runner's cut-off or timed-out calls: ledger rows of their own, beside the
        records' answers, read from the jobs' creation on, the ledger's time index), so a job's cost is all it was
        billed. One job (`get_job`) is read by its id; more (`list_jobs`, every job) are summed for all jobs in one
        GROUP BY: listing thousands of ids in an IN (...) made a statement of thousands of parameters (PostgreSQL
        refuses more than 65,535) for what is the whole table anyway."""
        if not jobs:
            return
        one = jobs[0].job_id if len(jobs) == 1 else None
        mine, params = (f"job_id = {self.p}", [one]) if one else ("TRUE", [])
        billed = f"batch_job_id = {self.p}" if one else "batch_job_id IS NOT NULL"
        rows = self.query(
            "SELECT job_id, SUM(done) AS done, SUM(failed) AS failed, SUM(unmatched) AS unmatched, SUM(cost) AS cost"
            f" FROM (SELECT job_id, CASE WHEN mode = '{UNMATCHED}' THEN 0 WHEN ok THEN 1 ELSE 0 END AS done,"
            f" CASE WHEN mode = '{UNMATCHED}' OR ok THEN 0 ELSE 1 END AS failed,"
            f" CASE WHEN mode = '{UNMATCHED}' THEN 1 ELSE 0 END AS unmatched,"
            f" COALESCE(cost_usd, 0) AS cost FROM batch_results WHERE {mine}"
            " UNION ALL SELECT batch_job_id, 0, 0, 0, COALESCE(cost_usd, 0) FROM usage_events"
            f" WHERE ts >= {self.p} AND {billed} AND outcome <> 'ok') AS counted GROUP BY job_id",
            [*params, min(job.created_at for job in jobs), *params],
        )
        by_id = {r["job_id"]: r for r in rows}
        for job in jobs:
            row = by_id.get(job.job_id)
            if row:
                job.done, job.failed = int(row["done"] or 0), int(row["failed"] or 0)
                job.unmatched = int(row["unmatched"] or 0)
                job.cost_usd = Decimal(str(row["cost"] or 0))

    # -- parts ----------------------------------------------------------------------------------
    def insert_part(
        self, job_id: str, part_no: int, handle: str | None, status: str, record_ids: list[str], payload: str
    ) -> None:
        now = utcnow()
        self.execute(
            "INSERT INTO batch_parts (job_id, part_no, handle, status, message, record_ids, payload, collected, "
            f"created_at, updated_at) VALUES ({self._marks(10)})",
            [job_id, part_no, handle, status, None, json.dumps(record_ids), payload, False, now, now],
        )

    def update_part(self, job_id: str, part_no: int, **fields: Any) -> None:
        fields["updated_at"] = utcnow()
        sets = ", ".join(f"{k} = {self.p}" for k in fields)
        self.execute(
            f"UPDATE batch_parts SET {sets} WHERE job_id = {self.p} AND part_no = {self.p}",
            [*fields.values(), job_id, part_no],
        )

    def parts(self, job_id: str) -> list[dict[str, Any]]:
        rows = self.query(f"SELECT * FROM batch_parts WHERE job_id = {self.p} ORDER BY part_no", [job_id])
        for row in rows:
            row["record_ids"] = json.loads(row["record_ids"])
        return rows

    def stored_payloads(self, job_id: str) -> list[dict[str, Any]]:
        """The job's parts that still hold inputs (part_no, payload); those emptied are not read."""
        return self.query(
            f"SELECT part_no, payload FROM batch_parts WHERE job_id = {self.p} AND payload <> '' ORDER BY part_no",
            [job_id],
        )

    # -- results --------------------------------------------------------------------------------
    def outcomes(self, job_id: str) -> dict[str, dict[str, Any]]:
        """Each record's stored outcome (record_id, ok, error, mode, input_tokens), not its answer: what tells which
        records are final (`final_ids`), refused as written (`refused_among`) or to be sent again. An output line that
        named no record (UNMATCHED) is no record's: counted among them, it made a job "-1 records throttled"."""
        rows = self.query(
            f"SELECT record_id, ok, error, mode, input_tokens FROM batch_results WHERE job_id = {self.p} "
            f"AND mode <> '{UNMATCHED}'",
            [job_id],
        )
        return {r["record_id"]: r for r in rows}

    def result_ids(self, job_id: str) -> set[str]:
        """Records with a final result (`final_ids`)."""
        return final_ids(self.outcomes(job_id))

    def add_results(self, job_id: str, rows: list[tuple[int | None, RecordResult, str, Decimal | None]]) -> None:
        """Store records' outcomes (part_no, result, mode, cost) in one statement; a second answer for
        the same record is ignored (PRIMARY KEY (job_id, record_id)), except that a failure is replaced by the
        record's later result (a throttled record resubmitted by resume)."""
        # One row a record: an answer over a failure (the upsert below may not touch a row twice in one statement).
        unique: dict[str, tuple[int | None, RecordResult, str, Decimal | None]] = {}
        for row in rows:
            if row[1].id not in unique or (row[1].ok and not unique[row[1].id][1].ok):
                unique[row[1].id] = row
        rows = list(unique.values())
        if not rows:
            return
        values: list[Any] = []
        now = utcnow()
        for part_no, result, mode, cost_usd in rows:
            u = result.usage
            values += [
                job_id,
                result.id,
                part_no,
                result.ok,
                result.text,
                result.error,
                result.model,
                mode,
                u.input_tokens if u else None,
                u.output_tokens if u else None,
                u.cache_read_tokens if u else None,
                u.cache_write_tokens if u else None,
                cost_usd,
                json.dumps(result.raw) if result.raw is not None else None,
                now,
            ]
        marks = ", ".join([f"({self._marks(15)})"] * len(rows))
        self.execute(
            "INSERT INTO batch_results (job_id, record_id, part_no, ok, text, error, model, mode, input_tokens, "
            "output_tokens, cache_read_tokens, cache_write_tokens, cost_usd, raw, finished_at) "
            f"VALUES {marks} ON CONFLICT (job_id, record_id) DO UPDATE SET "
            + ", ".join(f"{c} = EXCLUDED.{c}" for c in _RESULT_UPDATE)
            + " WHERE NOT batch_results.ok",
            values,
        )

    def refused_ids(self, job_id: str) -> set[str]:
        """Records the provider refused as written (`refused_among`)."""
        return refused_among(self.outcomes(job_id))

    def results(self, job_id: str) -> dict[str, dict[str, Any]]:
        rows = self.query(f"SELECT * FROM batch_results WHERE job_id = {self.p}", [job_id])
        return {r["record_id"]: r for r in rows}


def final_ids(outcomes: dict[str, dict[str, Any]]) -> set[str]:
    """Records whose outcome (`JobTables.outcomes`) is final: answered, or failed for a reason a resubmission would
    repeat (a throttled or server-failed record is sent again by resume, and its answer then replaces the failure)."""
    return {rid for rid, row in outcomes.items() if row["ok"] or not transient(row["error"])}


def refused_among(outcomes: dict[str, dict[str, Any]]) -> set[str]:
    """Records whose outcome (`JobTables.outcomes`) is the provider refusing them as written (`backends.refused`),
    billed nothing (no usage recorded)."""
    return {
        rid for rid, row in outcomes.items() if not row["ok"] and row["input_tokens"] is None and refused(row["error"])
    }


def require_job(tables: JobTables, job_id: str) -> Job:
    """The job, or an error naming the ledger it is not in."""
    job = tables.get_job(job_id)
    if job is None:
        raise UsageError(f"no batch job {job_id!r} in ledger {tables.store.url}; see `tokenomy batch list`")
    return job
