"""Batch jobs through their life: create (validate + split), submit, refresh through the backend, collect, cancel,
wait (resending what a remote job left is `resubmit.py`).

A job's state lives in the ledger database (`job_tables.py`), so `status`, `wait`, `resume` and
`results` work from any process. Remote backends (Bedrock, OpenAI, Azure, Anthropic, Gemini, Vertex AI) run each
part provider-side; the `local` backend runs records in-process (`local_job.py`, through `local_runner.py`). What a
job holds (its records' payloads, their stored results and usage, the exports) is `records.py`; storing a finished
part's results is `collect.py`; what a job that ended short says of itself (why, and what resume does) is `hints.py`.
"""

from __future__ import annotations

import importlib
import os
import time
import uuid
from dataclasses import asdict, replace
from decimal import Decimal
from pathlib import Path
from typing import Any

from tokenomy.batch.backends import FINAL_STATES, REFUSED_PART, BatchBackend, SubmitOptions
from tokenomy.batch.collect import collect_part
from tokenomy.batch.endpoints import ENDPOINT_ENVS, options_to_send, options_to_store
from tokenomy.batch.formats import BadLine, BatchRecord
from tokenomy.batch.hints import ended_short
from tokenomy.batch.job_tables import Job, JobTables, require_job
from tokenomy.batch.records import forget_sent_prompts, part_payload, part_records
from tokenomy.batch.runner_journal import commit_left_behind
from tokenomy.batch.runner_process import runner_alive, runner_gone, submitter
from tokenomy.batch.split import NoSplit, below_minimum, job_parts, quota_provider, sent_bytes
from tokenomy.batch.validate import require_good, validate_file
from tokenomy.batch.worst_case import require_within_cap
from tokenomy.errors import ConfigError, ProviderError, UsageError
from tokenomy.ledger.events import utcnow
from tokenomy.ledger.store import LedgerStore, open_store
from tokenomy.pricing.catalog import default_catalog
from tokenomy.telemetry import otel

BACKENDS = ("local", "bedrock", "openai", "azure", "anthropic", "gemini", "vertex")
_REMOTE = {
    "bedrock": ("tokenomy.batch.bedrock_backend", "BedrockBatchBackend"),
    "openai": ("tokenomy.batch.openai_backend", "OpenAIBatchBackend"),
    "azure": ("tokenomy.batch.azure_backend", "AzureOpenAIBatchBackend"),
    "anthropic": ("tokenomy.batch.anthropic_backend", "AnthropicBatchBackend"),
    "gemini": ("tokenomy.batch.gemini_backend", "GeminiBatchBackend"),
    "vertex": ("tokenomy.batch.vertex_backend", "VertexBatchBackend"),
}
_OPTION_KEYS = ("region", "role_arn", "s3_uri", "kms_key_id", "timeout_hours", "endpoint_url")


def open_tables(ledger: str | LedgerStore | None = None) -> JobTables:
    """The batch tables in the ledger at `ledger` (path, URL, store, or the default ledger)."""
    return JobTables(ledger if isinstance(ledger, LedgerStore) else open_store(ledger))


def get_backend(name: str, options: SubmitOptions) -> BatchBackend:
    """Instantiate a remote backend by name (imported lazily: boto3/openai only load when used)."""
    if name not in _REMOTE:
        raise ConfigError(f"--backend {name!r}: remote backends are {', '.join(_REMOTE)} (or use local)")
    module_name, class_name = _REMOTE[name]
    return getattr(importlib.import_module(module_name), class_name)(options)


# -- creating ---------------------------------------------------------------------------------------
def _pricing_model(model: str, config_path: str | None) -> str:
    """The catalog id that prices `model` (a configured name may say `price_as`)."""
    from tokenomy.config import load_config
    from tokenomy.providers.registry import resolve_model

    models = load_config(config_path).model_specs() if config_path else None
    return resolve_model(model, models).pricing_model


def _stores_prompts(config_path: str) -> bool:
    from tokenomy.config import load_config

    return load_config(config_path).store_prompts


def create_job(
    tables: JobTables,
    path: str | Path,
    model: str,
    backend: str = "local",
    options: SubmitOptions | None = None,
    config_path: str | None = None,
    run_settings: dict[str, Any] | None = None,
    max_cost: Decimal | None = None,
) -> Job:
    """Validate `path`, split it to the backend's quotas and store the job (no provider work yet)."""
    job, parts, _ = prepare_job(path, model, backend, options, config_path, run_settings, max_cost)
    return store_job(tables, job, parts)


def store_job(tables: JobTables, job: Job, parts: list[list[BatchRecord]]) -> Job:
    """Store a job `prepare_job` made, with its parts. Its endpoint's password, if it has one, is not stored: the
    job returned keeps it, for this process; a later one takes it from the environment (`submit_options`). A remote
    job names this process as its submitter: killed before its parts are sent, `batch status` and `wait` say so."""
    sender = submitter() if job.backend != "local" else {}
    tables.insert_job(replace(job, options=options_to_store(job.backend, job.options), **sender))
    for part_no, part in enumerate(parts):
        tables.insert_part(job.job_id, part_no, None, "submitted", [r.id for r in part], part_payload(part))
    return job


def prepare_job(
    path: str | Path,
    model: str,
    backend: str = "local",
    options: SubmitOptions | None = None,
    config_path: str | None = None,
    run_settings: dict[str, Any] | None = None,
    max_cost: Decimal | None = None,
) -> tuple[Job, list[list[BatchRecord]], list[BadLine]]:
    """Validate `path` and split it to the backend's quotas: the job, its parts and the bad lines it skips (in line
    order), nothing stored yet (a refused file leaves no trace, not even a new ledger). With `max_cost`, a job whose
    worst case is over it is refused (`worst_case.OverCap`), and the job keeps the cap for `resume`."""
    if backend not in BACKENDS:
        raise ConfigError(f"--backend {backend!r} is not one of {', '.join(BACKENDS)}")
    options = options or SubmitOptions()
    # Local and Azure name models the config may map (Azure: a deployment priced as the model it serves).
    pricing_model = _pricing_model(model, config_path) if backend in ("local", "azure") else model
    if backend == "azure":
        from tokenomy.batch.azure_backend import job_options

        options = job_options(model, options, config_path)
    endpoint_env = ENDPOINT_ENVS.get(backend)
    if endpoint_env and not options.endpoint_url and os.environ.get(endpoint_env):
        # Kept with the job: a later process (wait or resume from a shell without the variable) reaches the same
        # server, not the provider's own API, which has no such batch
        options = replace(options, endpoint_url=os.environ[endpoint_env])
    if backend == "bedrock":  # the region it runs in, where the AWS settings put it, kept with the job
        from tokenomy.batch.bedrock_backend import job_options as bedrock_options

        options = bedrock_options(options)
    if backend == "vertex":
        from tokenomy.batch.vertex_backend import job_options as vertex_options

        options = vertex_options(options)
    # For Bedrock the pricing model is the model sent, whose family decides which bodies go as written.
    report = validate_file(path, pricing_model, options.region, backend=backend)
    require_good(report)
    records = report.records
    if backend == "local":
        parts = [records]
    else:
        entry = default_catalog().lookup(pricing_model, options.region)
        provider = quota_provider(backend, entry.provider)
        if not entry.has_batch:  # the provider would run (and bill) the job, but no answer could be recorded
            raise UsageError(
                f"--model {model}: {entry.model} in {entry.region} has no batch price "
                f"({entry.batch_note or 'the provider publishes none'}), so its batch answers could not be priced; "
                "run it on demand with `--backend local`, or add its batch price with TOKENOMY_PRICES=FILE"
            )
        note = below_minimum(len(records), provider)
        if note:
            raise UsageError(f"{path}: {note}")
        # Settings the backend cannot run with (a missing key, role or bucket) are refused before a job is stored.
        sender = get_backend(backend, options)
        sender.check(options)
        # Each provider job of the split is one part; its files are the backend's business.
        try:
            parts = job_parts(records, provider, sent_bytes(sender, model))
        except NoSplit as refused:  # the provider would reject those jobs once the others were made (and billed)
            raise UsageError(f"{path}: {refused.in_file(path, model)} (nothing was sent)") from None
    now = utcnow()
    stored_options = {k: v for k, v in asdict(options).items() if k in _OPTION_KEYS and v is not None}
    stored_options.update(options.extra)
    stored_options.update({k: v for k, v in (run_settings or {}).items() if v is not None})
    if config_path:
        stored_options["config"] = str(Path(config_path).resolve())
        if _stores_prompts(config_path):  # else each record's input goes once it cannot be sent again
            stored_options["store_prompts"] = True
    stored_options["pricing_model"] = pricing_model
    if max_cost is not None:
        stored_options["max_cost_usd"] = str(max_cost)  # text: JSON has no exact decimal
    job = Job(
        job_id=f"bj-{now:%Y%m%d}-{uuid.uuid4().hex[:10]}",
        model=model,
        backend=backend,
        status="submitted",
        created_at=now,
        updated_at=now,
        records=len(records),
        bad_lines=len(report.bad),
        input_path=str(Path(path).resolve()),
        options=stored_options,
    )
    require_within_cap(job, records, max_cost)
    return job, parts, report.bad


def submit_options(job: Job) -> SubmitOptions:
    """What the backend is sent for a stored job: its options, with each endpoint's credential back from the
    environment (the ledger does not keep it)."""
    options = options_to_send(job.job_id, job.backend, job.options)
    known = {k: options[k] for k in _OPTION_KEYS if k in options}
    return SubmitOptions(**known, extra=options)


# -- remote backends -------------------------------------------------------------------------------
SENDING = "being sent; if it was cut short, resume finds the provider's job or sends it"


def part_key(job_id: str, part_no: int) -> str:
    """A part's name at the provider, the same every time it is sent (see BatchBackend.find)."""
    return f"{job_id}-p{part_no}"


def cut_short(job: Job, part_no: int, why: str) -> str:
    """What resume says of a part whose submit was cut short (the process killed mid-create) on a backend that cannot
    find the job it may have made (`BatchBackend.unfindable`): kept as the part's message, so the next resume
    sends it."""
    return (
        f"part {part_no} of {job.job_id} was being sent when its submit was cut short: whether the provider made its "
        f"batch is not known, and {why}. If one was made, it runs and is billed: cancel it there, or leave it and "
        "take its answers from there"
    )


def submit_parts(tables: JobTables, job: Job, backend: BatchBackend | None = None) -> Job:
    """Start provider work for every part that has no handle yet."""
    try:
        backend = backend or get_backend(job.backend, submit_options(job))
        todo = [p for p in tables.parts(job.job_id) if p["handle"] is None and p["status"] == "submitted"]
        if todo:
            tables.update_job(job.job_id, **submitter())  # a resume sending them: not cut short while it lives
            provider = getattr(backend, "ledger_provider", job.backend)
            with otel.batch_span("submit", provider, job.model, job.job_id) as span:
                sent = 0
                try:
                    for part in todo:
                        key = part_key(job.job_id, part["part_no"])
                        # A part with a message was sent before (it says how that ended): the provider may have
                        # accepted it though the answer was lost. Find that job rather than make a second one.
                        handle = backend.find(key) if part["message"] else None
                        unknown = backend.unfindable() if part["message"] == SENDING else None
                        if unknown:  # cut short (a kill) mid-create, and no find can tell: said once, not resent
                            again = f"; then `tokenomy batch resume {job.job_id}` sends it (not held back again)"
                            raise UsageError(cut_short(job, part["part_no"], unknown) + again)
                        if handle is None:
                            tables.update_part(job.job_id, part["part_no"], message=SENDING)  # kept if this dies
                            handle = backend.submit(job.job_id, job.model, part_records(part), submit_options(job), key)
                        tables.update_part(job.job_id, part["part_no"], handle=handle, status="submitted", message=None)
                        sent += len(part["record_ids"])
                finally:
                    otel.record_batch(span, sent)
    except Exception as exc:
        # Parts already started keep their handles; fix the cause and `resume` submits the rest. A create the provider
        # refused as written (400, 413, 422) would be refused again: resume holds it back unless asked.
        why = f"{REFUSED_PART}: {exc}" if getattr(exc, "status", None) in (400, 413, 422) else f"submit failed: {exc}"
        parts = tables.parts(job.job_id)
        for part in parts:
            if part["handle"] is None:  # never started: its records count as missing for resume
                tables.update_part(job.job_id, part["part_no"], status="failed", message=why, collected=True)
        started = [p for p in parts if p["handle"]]
        # A part already made runs on at the provider: the job is not over (`cancel` stops it, `wait` collects it).
        running = any(p["status"] not in FINAL_STATES for p in started)
        status = "in_progress" if running else "partially_completed" if started else "failed"
        tables.update_job(job.job_id, status=status, message=f"submit failed: {exc}")
        raise
    tables.update_job(job.job_id, status="submitted", message=None)  # an earlier "submit failed" no longer holds
    return require_job(tables, job.job_id)


def _aggregate(states: list[str], missing: int, answered: int, failed: int) -> str:
    """One job state from its parts' states and its records' results (a resubmitted part can make
    up for an expired one, so once every record is answered the job is completed)."""
    open_states = [s for s in states if s not in FINAL_STATES]
    if open_states:
        for state in ("stopping", "in_progress", "scheduled", "validating", "submitted"):
            if state in open_states:
                return "in_progress" if state != "stopping" and len(open_states) < len(states) else state
    if missing == 0 and failed == 0:
        return "completed"
    if answered == 0:  # the parts' one state (expired, stopped), else failed: never "partially completed" by none
        alike = len(set(states)) == 1 and states[0] not in ("completed", "partially_completed")
        return states[0] if alike else "failed"
    return "partially_completed"


def refresh(tables: JobTables, job_id: str, backend: BatchBackend | None = None) -> Job:
    """Ask the backend how each part is doing; collect results of parts that finished."""
    job = require_job(tables, job_id)
    if job.backend == "local":
        # What a killed runner was answered but had not committed: in the ledger and the job now, not at a resume
        # that may never come (a file a live runner holds is left to it).
        job = require_job(tables, job_id) if commit_left_behind(tables, job) else job
        if job.status in FINAL_STATES:
            forget_sent_prompts(tables, job)
        return job
    if job.status in FINAL_STATES and job.pending == 0:
        forget_sent_prompts(tables, job)  # a job that ended before prompts were removed (an earlier version)
        return job
    backend = backend or get_backend(job.backend, submit_options(job))
    parts = tables.parts(job_id)  # read once: kept as stored below, for the job's message and its prompts
    polled = False
    for part in parts:
        if part["handle"] is None or part["collected"]:
            continue
        state, message = backend.status(part["handle"])
        if state in FINAL_STATES:
            collect_part(tables, job, part, backend)
        now = {"status": state, "message": message, "collected": state in FINAL_STATES}
        tables.update_part(job_id, part["part_no"], **now)
        part.update(now)
        polled = True
    if polled:  # its counts with what was collected (and a `batch cancel` since the provider was asked)
        job = require_job(tables, job_id)
    status = _aggregate([p["status"] for p in parts], job.pending, job.done, job.failed)
    # A job `batch cancel` stopped ended stopped, not partially_completed (its parts' answers before the stop are kept).
    cancelled = job.status == "stopping" and status in FINAL_STATES - {"completed"}
    status = "stopped" if cancelled else status
    fields: dict[str, Any] = {"status": status}
    if status not in FINAL_STATES:
        tables.update_job(job_id, **fields)
        return require_job(tables, job_id)
    outcomes = tables.outcomes(job_id)
    # Why it ended short, in the provider's words (kept on its parts, shown by nobody), and what resume does.
    fields["message"] = None if status == "completed" else ended_short(job, parts, outcomes, cancelled, backend)
    if any(getattr(job, name) != value for name, value in fields.items()):  # a finished job's `status` writes nothing
        tables.update_job(job_id, **fields)
        job = require_job(tables, job_id)
    # Collected: the inputs of records that cannot be sent again go (store_prompts off).
    forget_sent_prompts(tables, job, parts, outcomes)
    return job


# -- any backend -----------------------------------------------------------------------------------
def cancel(tables: JobTables, job_id: str, backend: BatchBackend | None = None) -> Job:
    """Stop a job: remote parts are stopped provider-side; a local runner stops after records in flight."""
    job = require_job(tables, job_id)
    parts = tables.parts(job_id) if job.backend != "local" else []
    # A part made before another's submit failed runs on though the job was stored as ended (before that was fixed).
    if job.status in FINAL_STATES and all(p["status"] in FINAL_STATES or not p["handle"] for p in parts):
        return job
    if job.backend == "local":
        commit_left_behind(tables, job)  # what a killed runner was answered: in the ledger now, not at a next run
        alive = runner_alive(job)
        tables.update_job(job_id, status="stopping" if alive else "stopped")
        if not alive:  # a running runner removes them as it ends
            forget_sent_prompts(tables, job)
        return require_job(tables, job_id)
    backend = backend or get_backend(job.backend, submit_options(job))
    unsure = job.message  # kept, unless a part may run at the provider though cancel could not reach it
    for part in parts:
        if part["status"] in FINAL_STATES:
            continue
        # Sent, or being sent when its submit was cut short (the provider may have its job): stop that job.
        handle = part["handle"] or (backend.find(part_key(job_id, part["part_no"])) if part["message"] else None)
        if handle:
            backend.cancel(handle)
            tables.update_part(job_id, part["part_no"], handle=handle, status="stopping", message=None)
        else:  # never sent (a submit cut short): nothing runs provider-side, and nothing will; resume sends it
            # unless a kill cut its create short where no find can tell: it may run there, which only the user can stop
            unknown = backend.unfindable() if part["message"] == SENDING else None
            said = cut_short(job, part["part_no"], unknown) if unknown else "cancelled before it was sent"
            unsure = said if unknown else unsure
            tables.update_part(job_id, part["part_no"], status="stopped", message=said, collected=True)
    tables.update_job(job_id, status="stopping", message=unsure)
    return require_job(tables, job_id)


def wait(
    tables: JobTables,
    job_id: str,
    timeout_s: float | None = None,
    poll_s: float = 2.0,
    backend: BatchBackend | None = None,
) -> Job:
    """Refresh until the job reaches a final state or `timeout_s` passes; returns the latest job."""
    deadline = None if timeout_s is None else time.monotonic() + timeout_s
    while True:
        try:
            job = refresh(tables, job_id, backend)
        except ProviderError as exc:  # the provider's job runs on: said, lest the file be submitted, and billed, again
            follow = f"job {job_id} runs on at the provider: `tokenomy batch wait {job_id}` follows it"
            raise ProviderError(
                f"{exc}; {follow} (submitting the file again would run, and bill, every record twice)",
                exc.kind,
                status=exc.status,
            ) from None
        if job.status in FINAL_STATES or (deadline is not None and time.monotonic() >= deadline):
            return job
        # Nobody is working on the job (a local runner that died, or a submit killed before its runner started, given
        # a grace period to start; a remote submit killed before it sent every part): waiting would never end.
        if runner_gone(tables, job):
            return job
        time.sleep(poll_s if deadline is None else max(0.0, min(poll_s, deadline - time.monotonic())))
