"""Running a stored local job to its end through the local runner (local_runner.py): only records without a result
are sent, and the job ends with the status its records earned.

There is no batch discount here: each record is recorded with mode `on_demand` at
on-demand prices (one ledger event per answered record, under an id derived from job + record; the client's own row
for that answer is dropped so nothing is counted twice). An attempt the server billed without a usable answer (cut
off midway, timed out after the request went out, unreadable) is a row of its own at its estimate, as on the
on-demand path: the record's retry is billed again.

Crash-safety: each finished record is committed at once (ledger event with an id derived from
job + record, then the `batch_results` row keyed by job + record); a restarted runner skips
records that already have a result. Commits come in groups, so each finished record is first appended to a
journal (`runner_journal`) that the next run commits: SIGKILL at any moment loses at most the records in
flight, which `tokenomy batch resume JOB` runs again, and nothing is stored twice.

Apart from local_runner.py, which sends records through a client, because this is the part that knows the job: it
claims it, keeps its heartbeat, commits its answers and sets its final status.
"""

from __future__ import annotations

import os
import socket
import threading
from collections.abc import Callable

from tokenomy.batch.backends import FINAL_STATES, RecordResult
from tokenomy.batch.formats import BatchRecord
from tokenomy.batch.job_tables import Job, JobTables, require_job
from tokenomy.batch.local_runner import LocalRunner, ProgressCallback, RunStats
from tokenomy.batch.records import forget_sent_prompts, missing_records, record_results
from tokenomy.batch.runner_journal import RunnerJournal, commit_left_behind
from tokenomy.batch.runner_process import runner_alive
from tokenomy.chat_response import ChatResponse
from tokenomy.client import Tokenomy
from tokenomy.errors import UsageError
from tokenomy.ledger.events import UsageEvent, utcnow
from tokenomy.pricing.identifiers import pricing_region

HEARTBEAT_S = 2.0


class _Committer:
    """Group commit: answers finished by the workers are written together, as soon as the previous
    write is done (tens of ms on DuckDB), each with its ledger event. A crash loses only what is in
    this queue, and those records have no result yet, so resume runs them again."""

    def __init__(self, tables: JobTables, job: Job) -> None:
        self.tables, self.job = tables, job
        self._items: list[tuple] = []
        self._attempts: list[UsageEvent] = []  # billed attempts that gave no answer (see RunnerClient)
        self._lock = threading.Lock()
        self._wake = threading.Event()
        self._closed = False
        self.error: BaseException | None = None
        self._thread = threading.Thread(target=self._run, name="batch-commit", daemon=True)
        self._thread.start()

    def add(self, item: tuple) -> None:
        if self.error is not None:
            raise self.error
        with self._lock:
            self._items.append(item)
        self._wake.set()

    def add_attempt(self, event: UsageEvent) -> None:
        """A billed attempt without an answer: its own ledger row, written with the next group of answers."""
        with self._lock:
            self._attempts.append(event)
        self._wake.set()

    def _drain(self) -> None:
        with self._lock:
            items, self._items = self._items, []
            attempts, self._attempts = self._attempts, []
        if attempts:
            self.tables.write_events(attempts)
        if items:
            record_results(self.tables, self.job, items)

    def _run(self) -> None:
        while True:
            self._wake.wait(0.5)
            self._wake.clear()
            try:
                self._drain()
            except BaseException as exc:  # surfaced to the workers on their next add()
                self.error = exc
                return
            if self._closed and not self._items and not self._attempts:
                return

    def close(self) -> None:
        self._closed = True
        self._wake.set()
        self._thread.join()
        if self.error is not None:
            raise self.error


class RunnerClient(Tokenomy):
    """The runner's Tokenomy client: an answered attempt's row is dropped (the record's own event, under an id derived
    from job + record, is that row), a failed attempt the provider billed goes to `billed`, tagged with the job (a
    throttle or an error before anything was generated costs nothing and is no row: a record throttled a hundred times
    is one answer)."""

    def __init__(self, models: dict | None, job_id: str, billed: Callable[[UsageEvent], None]) -> None:
        super().__init__(None, models=models, record=False)
        self.job_id = job_id
        self.billed = billed

    def _record(self, event: UsageEvent) -> None:
        if event.outcome != "ok" and (event.input_tokens or event.output_tokens or event.cost_usd):
            event.batch_job_id = self.job_id
            self.billed(event)


def _claim(tables: JobTables, job: Job, waiting: bool = False) -> bool:
    """Make this process the job's runner. `waiting`: a runner started in the background (`--detach`) takes only a job
    still waiting for it (`submitted`): a `batch cancel` that landed before it started stopped the job, and is kept."""
    if runner_alive(job) and job.runner_pid != os.getpid():
        raise UsageError(
            f"{job.job_id} is already running (pid {job.runner_pid} on {job.runner_host}); "
            f"`tokenomy batch cancel {job.job_id}` to stop it"
        )
    fields = {
        "status": "in_progress",
        "message": None,
        "runner_pid": os.getpid(),
        "runner_host": socket.gethostname(),
        "heartbeat_at": utcnow(),
    }
    if waiting:
        return tables.update_job_if(job.job_id, "submitted", **fields)
    tables.update_job(job.job_id, **fields)
    return True


def _heartbeat(tables: JobTables, job_id: str, stop: threading.Event, finished: threading.Event) -> None:
    """Keep heartbeat_at fresh and notice `tokenomy batch cancel` (status set to stopping)."""
    while not finished.wait(HEARTBEAT_S):
        try:
            if tables.job_status(job_id) == "stopping":
                stop.set()
            tables.update_job(job_id, heartbeat_at=utcnow())
        except Exception:  # a busy ledger must not kill the run; the next beat tries again
            continue


def run_job(
    tables: JobTables,
    job_id: str,
    client=None,
    on_progress: ProgressCallback | None = None,
    waiting: bool = False,
) -> tuple[Job, RunStats]:
    """Run (or resume) a local job to the end: only records without a result are sent. `waiting`: started in the
    background for a job left `submitted`; a job cancelled before then is left as it is, nothing sent."""
    message: str | None

    job = require_job(tables, job_id)
    if job.backend != "local":
        raise UsageError(f"{job_id} runs on {job.backend}; use `tokenomy batch resume` to resubmit missing records")
    if not _claim(tables, job, waiting):
        return require_job(tables, job_id), RunStats(stopped=True)
    commit_left_behind(tables, job)  # answers a killed runner got but had not committed: kept, not sent again
    pending = missing_records(tables, job_id)
    opts = job.options
    journal = RunnerJournal(tables, job_id)
    committer = _Committer(tables, job)

    def billed(event: UsageEvent) -> None:
        journal.attempt(event)
        committer.add_attempt(event)

    if client is None:
        from tokenomy.config import load_config

        models = load_config(opts["config"]).model_specs() if opts.get("config") else None
        client = RunnerClient(models, job_id, billed)
    pricing_model = opts.get("pricing_model", job.model)

    def keep(item: tuple) -> None:
        journal.item(item)  # on disk before the group commit that may come too late
        committer.add(item)

    def on_answer(rec: BatchRecord, response: ChatResponse) -> None:
        region = pricing_region(response.region)
        result = RecordResult(
            rec.id, text=response.text, usage=response.usage, model=response.model, answered_at=utcnow()
        )
        keep((0, result, "on_demand", response.provider, pricing_model, region))

    def on_error(rec: BatchRecord, error: str) -> None:
        keep((0, RecordResult(rec.id, error=error), "on_demand", "", pricing_model, None))

    runner = LocalRunner(client, job.model, int(opts.get("concurrency") or 4), opts.get("rpm"), opts.get("tpm"))
    stop, finished = threading.Event(), threading.Event()
    beat = threading.Thread(target=_heartbeat, args=(tables, job_id, stop, finished), daemon=True)
    beat.start()
    try:
        stats = runner.run(pending, on_answer, on_error, stop, on_progress)
        committer.close()
        journal.discard()
    except BaseException as exc:
        finished.set()
        try:
            committer.close()  # keep the answers that did arrive
            journal.discard()
        except Exception:
            journal.release()  # not committed: the next run of the job commits them from the journal
        if isinstance(exc, KeyboardInterrupt):
            status, message = "stopped", "interrupted; `tokenomy batch resume` continues"
        else:
            status, message = "failed", f"runner error: {exc}; fix it and `tokenomy batch resume {job_id}`"
        tables.update_job(job_id, status=status, message=message, runner_pid=None)
        raise
    finished.set()
    beat.join()
    job = require_job(tables, job_id)
    if stats.stopped and job.pending:
        status, message = "stopped", f"stopped with {job.pending} records pending; resume continues"
    elif job.pending:
        why = f" (last error: {stats.last_error})" if stats.last_error else ""
        status, message = (
            "partially_completed" if job.done else "failed",  # nothing answered at all (an upstream down) is failed
            (
                f"{job.pending} records not answered after retries{why}; "
                f"`tokenomy batch resume {job_id}` tries them again"
            ),
        )
    elif job.failed:
        # The reason, so "every record failed" (no AWS credentials, a model the server does not know) says what to fix
        why = f" (last error: {stats.last_error}); `tokenomy batch results {job_id} -o FILE` lists each"
        why = why if stats.last_error else ""
        status = "failed" if job.failed == job.records else "partially_completed"
        message = ("every record failed" if status == "failed" else f"{job.failed} records failed") + why
    else:
        status, message = "completed", None
    assert status in FINAL_STATES
    tables.update_job(job_id, status=status, message=message, runner_pid=None)
    forget_sent_prompts(tables, job)  # the records answered or failed for good are not sent again
    return require_job(tables, job_id), stats
