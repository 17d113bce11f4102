"""The local batch runner: for providers without a batch service (the local model, any OpenAI-compatible server).

Records go through `Tokenomy.chat` with bounded concurrency under requests- and tokens-per-minute
limits. There is no batch discount here: each record is recorded with mode `on_demand` at
on-demand prices (one ledger event per answered record, under an id derived from job + record; the client's own row
for that answer is dropped so nothing is counted twice). An attempt the server billed without a usable answer (cut
off midway, timed out after the request went out, unreadable) is a row of its own at its estimate, as on the
on-demand path: the record's retry is billed again. Throttling (HTTP 429) slows the whole runner down (the shared
rate is cut and recovers as calls succeed) and the record is retried with jittered back-off; a user only sees
it if every attempt was throttled, and then the record simply stays pending for `resume`.

Crash-safety: each finished record is committed at once (ledger event with an id derived from
job + record, then the `batch_results` row keyed by job + record); a restarted runner skips
records that already have a result. Commits come in groups, so each finished record is first appended to a
journal (`runner_journal`) that the next run commits: SIGKILL at any moment loses at most the records in
flight, which `tokenomy batch resume JOB` runs again, and nothing is stored twice.
"""

from __future__ import annotations

import os
import socket
import threading
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass

from tokenomy.batch.backends import FINAL_STATES, RecordResult
from tokenomy.batch.conversion import require_carried
from tokenomy.batch.formats import BatchRecord
from tokenomy.batch.job_tables import Job, JobTables, require_job
from tokenomy.batch.output_caps import LOCAL_MAX_TOKENS
from tokenomy.batch.records import forget_sent_prompts, missing_records, record_results
from tokenomy.batch.runner_journal import RunnerJournal, commit_left_behind
from tokenomy.batch.runner_process import runner_alive
from tokenomy.chat_response import ChatResponse
from tokenomy.client import Tokenomy
from tokenomy.errors import ProviderError, UsageError
from tokenomy.ledger.events import UsageEvent, utcnow
from tokenomy.messages import ChatRequest, Message, RequestMeta
from tokenomy.pricing.identifiers import pricing_region
from tokenomy.resilience.ratelimit import RateLimiter
from tokenomy.resilience.retry import RetryPolicy

HEARTBEAT_S = 2.0


class AdaptiveLimiter(RateLimiter):
    """A RateLimiter that starts with only a few seconds' allowance (no minute-long burst) and
    backs off multiplicatively when the server throttles, recovering additively as calls succeed."""

    def __init__(self, rpm: float | None, tpm: float | None, burst_s: float = 2.0, floor: float = 0.1) -> None:
        super().__init__(rpm, tpm)
        self.max_rpm, self.max_tpm, self.floor = rpm, tpm, floor
        with self._lock:
            self._requests = max(1.0, (rpm or 0) * burst_s / 60) if rpm else 0.0
            self._tokens = (tpm or 0) * burst_s / 60

    def _scale(self, factor: float) -> None:
        for name, top in (("rpm", self.max_rpm), ("tpm", self.max_tpm)):
            if top:
                setattr(self, name, min(top, max(top * self.floor, getattr(self, name) * factor)))

    def throttled(self) -> None:
        """The server said slow down: cut the rate by 30% and drain the buckets so everyone pauses."""
        with self._lock:
            self._refill()
            self._scale(0.7)
            self._requests = min(self._requests, 0.0)
            self._tokens = min(self._tokens, 0.0)

    def succeeded(self) -> None:
        """Creep back towards the configured rate (+2% of it per success)."""
        with self._lock:
            for name, top in (("rpm", self.max_rpm), ("tpm", self.max_tpm)):
                if top:
                    setattr(self, name, min(top, getattr(self, name) + top * 0.02))


@dataclass
class RunStats:
    """What one runner pass did."""

    answered: int = 0
    failed: int = 0
    gave_up: int = 0  # every attempt throttled/failed transiently: left pending for resume
    throttled: int = 0  # 429s absorbed by back-off (not errors the user sees)
    tokens: int = 0
    seconds: float = 0.0
    stopped: bool = False
    last_error: str | None = None  # why the last given-up record failed, so the job message can say it

    @property
    def tokens_per_minute(self) -> float:
        return self.tokens * 60 / self.seconds if self.seconds else 0.0


def to_request(rec: BatchRecord, model: str) -> ChatRequest:
    """A batch record as a chat request (system turns folded into the system prompt)."""
    require_carried(rec, "the local runner")
    system = "\n".join(filter(None, [rec.system] + [m["content"] for m in rec.messages if m["role"] == "system"]))
    turns = [Message(m["role"], m["content"]) for m in rec.messages if m["role"] != "system"]
    return ChatRequest(
        messages=turns,
        model=model,
        system=system or None,
        max_tokens=rec.max_tokens or LOCAL_MAX_TOKENS,
        temperature=rec.temperature,
        meta=RequestMeta(request_id=rec.id),  # every ledger row of the record, its answer's too, names it
    )


# Told (records done, records in the run, tokens per minute so far) after each record.
ProgressCallback = Callable[[int, int, float], None]


class LocalRunner:
    """Runs records through a Tokenomy client; calls `on_answer`/`on_error` (serialised) as each finishes."""

    def __init__(
        self,
        client,
        model: str,
        concurrency: int = 4,
        rpm: float | None = None,
        tpm: float | None = None,
        retry: RetryPolicy | None = None,
    ) -> None:
        from tokenomy.client import CallPolicy

        self.client, self.model = client, model
        self.concurrency = max(1, concurrency)
        self.limiter = AdaptiveLimiter(rpm, tpm) if (rpm or tpm) else None
        self.retry = retry or RetryPolicy(max_attempts=10, base_delay_s=0.5, max_delay_s=20.0, deadline_s=3600)
        # One attempt per chat(): retries happen here so throttling can also slow the shared limiter.
        self.policy = CallPolicy(
            retry=RetryPolicy(max_attempts=1, deadline_s=self.retry.deadline_s), limiter=self.limiter
        )
        self._commit = threading.Lock()

    def run(
        self,
        records: list[BatchRecord],
        on_answer: Callable[[BatchRecord, ChatResponse], None],
        on_error: Callable[[BatchRecord, str], None],
        stop: threading.Event | None = None,
        on_progress: ProgressCallback | None = None,
    ) -> RunStats:
        """`on_progress(done, total, tokens_per_minute)` is called as each record finishes (the CLI draws it)."""
        stop = stop or threading.Event()
        stats = RunStats()
        started = time.monotonic()
        done = 0

        def advance() -> None:
            nonlocal done
            done += 1
            if on_progress is not None:
                on_progress(done, len(records), stats.tokens * 60 / max(1e-6, time.monotonic() - started))

        def one(rec: BatchRecord) -> None:
            request = to_request(rec, self.model)
            attempt = 0
            while not stop.is_set():
                attempt += 1
                try:
                    response = self.client.chat(request, mode="on_demand", policy=self.policy)
                except ProviderError as exc:
                    if exc.kind == "throttled":
                        stats.throttled += 1
                        if self.limiter:
                            self.limiter.throttled()
                    if not exc.retryable:
                        with self._commit:
                            on_error(rec, f"{exc.kind}: {exc}")
                            stats.failed += 1
                            advance()
                        return
                    delay = self.retry.delay(attempt, exc)
                    if attempt >= self.retry.max_attempts or time.monotonic() - started + delay > self.retry.deadline_s:
                        stats.gave_up += 1
                        stats.last_error = f"{exc.kind}: {exc}"
                        return
                    stop.wait(delay)
                    continue
                if self.limiter:
                    self.limiter.succeeded()
                with self._commit:
                    on_answer(rec, response)
                    stats.answered += 1
                    stats.tokens += response.usage.total_input_tokens + response.usage.output_tokens
                    advance()
                return

        with ThreadPoolExecutor(self.concurrency, thread_name_prefix="batch") as pool:
            futures = [pool.submit(one, rec) for rec in records]
            try:
                for future in futures:
                    future.result()  # a non-provider error (bad config, ledger down) stops the run
            except BaseException:
                stop.set()
                raise
        stats.seconds = time.monotonic() - started
        stats.stopped = stop.is_set()
        return stats


# -- running a stored job ------------------------------------------------------------------------
class _Committer:
    """Group commit: answers finished by the workers are written together, as soon as the previous
    write is done (tens of ms on DuckDB), each with its ledger event. A crash loses only what is in
    this queue, and those records have no result yet, so resume runs them again."""

    def __init__(self, tables: JobTables, job: Job) -> None:
        self.tables, self.job = tables, job
        self._items: list[tuple] = []
        self._attempts: list[UsageEvent] = []  # billed attempts that gave no answer (see _RunnerClient)
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
    elif job.failed == job.records:
        status, message = "failed", "every record failed"
    else:
        status, message = ("partially_completed", f"{job.failed} records failed") if job.failed else ("completed", None)
    assert status in FINAL_STATES
    tables.update_job(job_id, status=status, message=message, runner_pid=None)
    forget_sent_prompts(tables, job)  # the records answered or failed for good are not sent again
    return require_job(tables, job_id), stats
