"""What a remote batch job that ended short says of itself (`tokenomy batch status`): why its parts ended, in the
provider's words, how many of its records have no result or were throttled, and what `tokenomy batch resume` does
with them (sends them; or, fewer than the provider's minimum a batch job, or so few that no split of them keeps every
provider job at that minimum, says how to run them on demand).

Worked out from the job's parts and its records' outcomes (`JobTables.outcomes`) as `jobs.refresh` has just read
them: a status reads each table once.
"""

from __future__ import annotations

from typing import Any

from tokenomy.batch.backends import FINAL_STATES, BatchBackend, transient
from tokenomy.batch.job_tables import Job, final_ids
from tokenomy.batch.records import part_records, records_among, unrun_records
from tokenomy.batch.split import NoSplit, job_parts, quota_provider, sent_bytes
from tokenomy.pricing.catalog import default_catalog


def ended_short(
    job: Job,
    parts: list[dict[str, Any]],
    outcomes: dict[str, dict[str, Any]],
    cancelled: bool,
    backend: BatchBackend,
) -> str | None:
    """The message of a job that ended other than completed (`cancelled`: by `batch cancel`), from its `parts` and
    `outcomes`: the notes of its parts that ended short (kept on the parts, shown by nobody), then what resume does
    (through `backend`, whose bytes sent decide how it splits them)."""
    # A part whose every record without an answer a later part sent again (`resume`) no longer tells why any is.
    last = {rid: p["part_no"] for p in parts for rid in p["record_ids"]}
    answered = {rid for rid, row in outcomes.items() if row["ok"]}
    notes = [
        (f"part {p['part_no']}: " if len(parts) > 1 else "") + p["message"]
        for p in parts
        if p["message"]
        and p["status"] in FINAL_STATES - {"completed"}
        and any(last[rid] == p["part_no"] and rid not in answered for rid in p["record_ids"])
    ]
    unrun, sendable, again = unrun_records(parts, outcomes)
    retry = len(outcomes) - len(final_ids(outcomes))  # failed for a passing reason: sent with the others, by one rule
    sends = _resume_sends(job, parts, sendable, again, backend) if unrun or retry else ""
    if unrun:  # whatever ended it (`batch cancel`, the provider, its window running out): resume sends them
        said = f"stopped with {unrun} records pending" if cancelled else f"{unrun} records have no result"
        notes.append(f"{said}; {sends}")
    if retry:
        notes.append(f"{retry} records were throttled or hit a server error; {sends}")
    return _joined(notes) or job.message


def failed_for_good(job_id: str, outcomes: dict[str, dict[str, Any]]) -> str | None:
    """What `resume` says of the records it does not send because they failed for good (`final_ids`: refused by the
    provider as written, or failed for a reason sending them again would repeat), from the job's `outcomes`
    (`JobTables.outcomes`); None when there are none."""
    failed = sorted((rid, row["error"]) for rid, row in outcomes.items() if not (row["ok"] or transient(row["error"])))
    if not failed:
        return None
    rid, error = failed[0]
    error = error if len(error or "") <= 200 else f"{error[:200]}..."
    return (
        f"{len(failed)} records failed for good (record {rid}: {error}) and are not sent again: the provider refused "
        "them as written, or failed them for a reason sending them unchanged would repeat (and may bill again). "
        f"`tokenomy batch results {job_id} -o FILE` lists each with its error; `--failed-input FILE` writes those "
        "refused as written, to fix and `tokenomy batch submit`"
    )


def provider_minimum(job: Job) -> tuple[str, int]:
    """The provider whose quotas apply to the job's parts, and its minimum records a batch job."""
    entry = default_catalog().lookup(job.options.get("pricing_model", job.model), job.options.get("region"))
    provider = quota_provider(job.backend, entry.provider)
    return provider, int(default_catalog().quotas_for(provider).get("min_records_per_job", 0))


def _resume_sends(
    job: Job, parts: list[dict[str, Any]], sendable: list[str], again: list[dict[str, Any]], backend: BatchBackend
) -> str:
    """What one `resume` does with the `sendable` records it would send, those of the parts whose submit failed
    (`again`) among them: sends them all; or, a failed part too small for a batch job, sends nothing and says how to
    run them on demand; or, too few of the others for one, sends those parts only, saying how to run the others on
    demand; or, a failed part no split sends, or no split of the others keeping every provider job at the minimum
    (`split.ShortJob`) or a record larger than a job may be (`split.RecordTooLarge`), sends nothing, saying why and
    how to run them on demand, as resume's error does. A failed part over what one job may hold by the limits of now
    goes with the others, split again (`resubmit._outgrown`)."""
    provider, minimum = provider_minimum(job)
    below = f"fewer than {provider}'s minimum of {minimum} a batch job"
    to_demand = f"`tokenomy batch resume {job.job_id}` says how to run them on demand"
    if again and min(len(p["record_ids"]) for p in again) < minimum:
        return f"{below} are left to send: {to_demand}"
    size = sent_bytes(backend, job.model)
    fitting = []
    for part in again:  # resume splits them before it sends anything: a split that fails sends nothing
        try:
            if len(job_parts(part_records(part), provider, size)) == 1:
                fitting.append(part)
        except NoSplit as refused:
            return _sends_none(job, f"part {part['part_no']}: {refused}")
    resent = {rid for p in fitting for rid in p["record_ids"]}
    rest = [rid for rid in sendable if rid not in resent]
    if rest and len(rest) < minimum and fitting:
        return (
            f"`tokenomy batch resume {job.job_id}` sends the {len(resent)} of the parts whose submit failed; the "
            f"other {len(rest)} are {below}: it says how to run them on demand"
        )
    if rest and len(rest) < minimum:
        return f"{below} are left to send: {to_demand}"
    if rest:
        try:
            job_parts(records_among(parts, set(rest)), provider, size)
        except NoSplit as refused:
            return _sends_none(job, str(refused))
    return f"`tokenomy batch resume {job.job_id}` sends them"


def _sends_none(job: Job, why: str) -> str:
    return (
        f"`tokenomy batch resume {job.job_id}` sends none of them: {why}; run them on demand instead: {on_demand(job)}"
    )


def on_demand(job: Job) -> str:
    """How to run the records `job` has no result for on demand."""
    return (
        f"`tokenomy batch results {job.job_id} --missing-input -o rest.jsonl` then `tokenomy batch submit rest.jsonl "
        f"--model {job.model} --backend local`"
    )


def _joined(notes: list[str]) -> str:
    """Notes in one message: a note ending in a full stop (Bedrock's "Submit a new job.") loses it before the next."""
    return "; ".join([note.rstrip(".") for note in notes[:-1]] + notes[-1:])
