"""`tokenomy batch resume` of a remote job: send again what the job left without a result (each part whose submit
failed, under its own key, and the records finished parts left, as new parts), or say why not and how to run them on
demand."""

from __future__ import annotations

from decimal import Decimal
from typing import Any

from tokenomy.batch.backends import FINAL_STATES, BatchBackend
from tokenomy.batch.hints import on_demand, provider_minimum
from tokenomy.batch.job_tables import Job, JobTables
from tokenomy.batch.jobs import get_backend, part_key, refresh, submit_options, submit_parts
from tokenomy.batch.records import (
    missing_records,
    part_payload,
    part_records,
    refused_note,
    refused_parts,
    unsent_parts,
)
from tokenomy.batch.split import NoSplit, job_parts, sent_bytes
from tokenomy.batch.worst_case import job_cap, keep_cap, require_within_cap
from tokenomy.errors import ConfigError, UsageError


def resubmit_missing(
    tables: JobTables,
    job_id: str,
    backend: BatchBackend | None = None,
    min_records: int | None = None,
    resend_refused: bool = False,
    max_cost: Decimal | None = None,
) -> int:
    """Send what a job left without a result, in one go: each part whose submit failed (or was cut short) again under
    its own key, and the records that finished parts (partial, expired, failed or stopped) left unanswered as new
    part(s). Returns how many records were sent.

    Fewer records than the provider's per-job minimum (`min_records`, default from the catalog's
    quotas) would be rejected by the provider, so that case is an error that says how to run them
    on demand instead. A part the provider refused whole as written (`refused_parts`) is not sent unchanged unless
    `resend_refused`: with nothing else to send, that is an error naming the part, why, and what to do. Nothing is
    sent when what the job has cost and the worst case of everything it would send are over its cap (`max_cost`,
    else the one it was submitted with): `worst_case.OverCap`. A `max_cost` that holds is kept as the job's cap. A part
    whose submit failed and that no longer fits one provider job by the limits of now is split again, with the records
    finished parts left (`_outgrown`).
    """
    job = refresh(tables, job_id, backend)
    if job.backend == "local":
        raise UsageError(f"{job_id} runs locally: use `tokenomy batch resume {job_id}`")
    held = [] if resend_refused else refused_parts(tables, job_id)
    held_nos = {p["part_no"] for p in held}
    parts = tables.parts(job_id)
    # Its submit failed, maybe after the provider accepted it: sent again under its own key (so `submit_parts` finds
    # a job made then), not as records of a new part, which would make another.
    unsent = unsent_parts(parts, held_nos)
    running = any(p["handle"] and p["status"] not in FINAL_STATES for p in parts)
    if running and not unsent:
        raise UsageError(f"{job_id} still has parts running; `tokenomy batch wait {job_id}` first")
    provider, minimum = provider_minimum(job)
    min_records = minimum if min_records is None else min_records
    for part in unsent:  # split to the minimum of when it was made; the provider holds it to today's
        _require_minimum(job, len(part["record_ids"]), provider, min_records, f"part {part['part_no']}: ")
    backend = backend or get_backend(job.backend, submit_options(job))
    # A failed part was split by the limits of when it was made (or by an older version): one that no longer fits a
    # provider job by today's goes as new parts, with the records finished parts left.
    outgrown = _outgrown(job, unsent, provider, backend)
    unsent = [p for p in unsent if p not in outgrown]
    regrouped = {rid for p in outgrown for rid in p["record_ids"]}
    # The records finished parts left (those of a part still running may yet be answered: not sent twice).
    resent_ids = {rid for p in unsent for rid in p["record_ids"]}
    skip = resent_ids | {rid for p in held for rid in p["record_ids"]}
    missing = [r for r in missing_records(tables, job_id) if r.id not in skip]
    rest = [r for r in missing if r.id in regrouped] if running else missing
    if not unsent and not rest:
        if held:
            raise UsageError(refused_note(job_id, held))
        return 0
    resent = [rec for p in unsent for rec in part_records(p)]
    left = len(rest) if unsent and len(rest) < min_records else 0
    if left:  # too few for a batch job of their own: the failed parts go, and what to do with these is said after
        rest = []
    elif rest:
        _require_minimum(job, len(rest), provider, min_records)
    _require_settings(job, backend)
    # Split before anything is sent: a part under the minimum, or a record larger than a job may be, would be refused
    # once the others were made.
    try:
        new_parts = job_parts(rest, provider, sent_bytes(backend, job.model)) if rest else []
    except NoSplit as refused:
        raise UsageError(
            f"{job_id}: {refused}, so nothing was sent; run them on demand instead: {on_demand(job)}"
        ) from None
    # The cap after the split, as submit checks it: records no split can send are refused for that, not for a cap
    # that raising would not help. Once, over all it sends (the split only parts them: no job adds to what it costs).
    require_within_cap(job, resent + rest, job_cap(job, max_cost), resume=True)
    keep_cap(tables, job, max_cost)  # for the resumes after this one, kept before an error below can end this one
    for part in unsent:
        tables.update_part(job_id, part["part_no"], status="submitted", collected=False)
    next_no = max((p["part_no"] for p in parts), default=-1) + 1
    for part in outgrown:  # ended, never sent: its records go in the new parts
        tables.update_part(job_id, part["part_no"], status="stopped", collected=True, message=OUTGROWN)
    for offset, records in enumerate(new_parts):
        tables.insert_part(job_id, next_no + offset, None, "submitted", [r.id for r in records], part_payload(records))
    submit_parts(tables, job, backend)
    if left:
        raise UsageError(
            f"{job_id}: sent again the {len(resent)} records of the parts whose submit failed; the other {left} "
            f"records without a result are below {provider}'s minimum of {min_records} per batch job, so a "
            f"resubmission would be rejected: once those parts end (`tokenomy batch wait {job_id}`), run the rest on "
            f"demand: {on_demand(job)}"
        )
    return len(resent) + len(rest)


OUTGROWN = "not sent: over what one provider job may hold by the limits of now; its records were split again"


def _outgrown(job: Job, unsent: list[dict[str, Any]], provider: str, backend: BatchBackend) -> list[dict[str, Any]]:
    """The parts of `unsent` (their submit failed) that no longer fit one `provider` job as `backend` sends them, by
    the limits of now (`split.job_parts`, as submit splits): sent as they are, the provider would refuse them. A part
    the provider may have made (sent before, and found under its key) is not among them: it is not made twice. A
    record no split can send, or records no split keeps at the minimum, refuse the resume before anything is sent."""
    out = []
    for part in unsent:
        try:
            fits = len(job_parts(part_records(part), provider, sent_bytes(backend, job.model))) == 1
        except NoSplit as refused:
            raise UsageError(
                f"{job.job_id}: part {part['part_no']}: {refused}, so nothing was sent; run them on demand instead: "
                f"{on_demand(job)}"
            ) from None
        if fits:
            continue
        if part["message"]:  # sent before: the provider may have made it, though its answer was lost
            _require_settings(job, backend)  # (asked with settings it runs with)
            if backend.find(part_key(job.job_id, part["part_no"])):
                continue
        out.append(part)
    return out


def _require_minimum(job: Job, records: int, provider: str, minimum: int, what: str = "") -> None:
    """Refuse `records` of `job` (`what` names them: a part sent again) too few for a batch job of their own under
    `provider`'s `minimum`, saying how to run them on demand."""
    if records < minimum:
        raise UsageError(
            f"{what}{records} records of {job.job_id} have no result, below {provider}'s minimum of {minimum} per "
            f"batch job, so a resubmission would be rejected; run them on demand instead: {on_demand(job)}"
        )


def _require_settings(job: Job, backend: BatchBackend) -> None:
    """Refuse settings `backend` cannot run `job` with, as submit does before a job is stored (`BatchBackend.check`):
    a part sent with them would be refused (after Bedrock's input was uploaded), or fail at once, so nothing is sent."""
    try:
        backend.check(submit_options(job))
    except ConfigError as exc:
        raise ConfigError(
            f"{job.job_id}: {exc}; nothing was sent (resume runs with the settings the job was submitted with, and "
            "takes the rest from the environment: set what is missing there, or send its records as a new job: "
            f"`tokenomy batch results {job.job_id} --missing-input -o rest.jsonl` then `tokenomy batch submit "
            "rest.jsonl` with settings that hold)"
        ) from None
