"""What a batch job holds: each part's stored records, the answers stored for them, and the exports.

The payload a part is stored with (and read back from for a resubmission), the results written to `batch_results`
with their usage in the ledger, the records that still have no result, and `tokenomy batch results` (the results
file, or `--missing-input`). Kept apart from `jobs.py`, which moves a job through its life (create, submit,
refresh, cancel, wait, resubmit): both `jobs.py` and the local runner store answers here, and this module imports
nothing from `jobs.py`. Each answered record is stored once in `batch_results` and its usage once in the ledger,
under an event id derived from (job, record), so a repeat after a crash cannot count it twice.
"""

from __future__ import annotations

import hashlib
import json
import logging
from collections.abc import Collection
from dataclasses import replace
from decimal import Decimal
from pathlib import Path
from typing import Any

from tokenomy.batch.backends import FINAL_STATES, REFUSED_PART, RecordResult, estimated_usage, refused, transient
from tokenomy.batch.formats import BatchRecord, read_records
from tokenomy.batch.job_tables import UNMATCHED, Job, JobTables, final_ids, refused_among, require_job
from tokenomy.batch.line_forms import line_form
from tokenomy.errors import ConfigError, TokenomyError, UsageError
from tokenomy.ledger.events import CACHE_WRITE_1H_TAG, UsageEvent, decimal_str, utcnow
from tokenomy.pricing.cost import billable_usage, compute_cost, unpriced_cost

log = logging.getLogger(__name__)


def record_event_id(job_id: str, record_id: str) -> str:
    """Deterministic ledger event id for one record of one job: re-writing it is a no-op."""
    return hashlib.sha256(f"batch\x00{job_id}\x00{record_id}".encode()).hexdigest()[:32]


def with_estimated_usage(result: RecordResult, record: BatchRecord | None, job_id: str) -> RecordResult:
    """An answer whose output carried no usage, with its tokens estimated from the record's prompt (when known) and
    its text: the provider answered, and billed, it, so it is recorded as an estimate, with a warning, never as $0."""
    log.warning(
        "batch record %s of job %s (%s) has no usage in its output; its tokens are estimated (~4 characters a token)",
        result.id,
        job_id,
        result.model or "model not named",
    )
    return replace(result, usage=estimated_usage(record.text() if record else "", result.text or ""))


def record_results(
    tables: JobTables, job: Job, items: list[tuple[int | None, RecordResult, str, str, str, str | None]]
) -> list[UsageEvent]:
    """Store (part_no, result, mode, provider, pricing_model, region) items: the ledger usage events
    first (idempotent ids), then the result rows (PRIMARY KEY), so a crash between the two writes
    is repaired by running the record again, and nothing is counted twice. Returns the usage events written."""
    events, rows = [], []
    for part_no, result, mode, provider, pricing_model, region in items:
        cost_usd = None
        if result.raw is not None and not job.prompts_stored:
            result = replace(result, raw=without_echoed_request(result.raw))
        if result.ok and result.usage is None:  # callers with the record estimate first; this is the last guard
            result = with_estimated_usage(result, None, job.job_id)
        # An answer, or a failure whose line still shows what the call was billed (an output line garbled in its
        # text): the provider billed it, so it is in the ledger either way.
        if result.usage is not None:
            # Priced as the call path prices an answer: cache tokens as input where the model has no cache prices,
            # and $0 marked unpriced rather than an error, for the provider answered and bills it; an error here
            # would fail the job and lose every answer collected with it.
            # The local model priced as another (`price_as`: a pricing model other than the one that answered) has
            # its KV cache reads billed as that model would bill them (`billable_usage`'s `kv_cache`).
            kv_cache = provider == "local" and pricing_model != (result.model or job.model)
            u = billable_usage(result.usage, pricing_model, region, kv_cache=kv_cache)
            result = replace(result, usage=u)  # its stored row shows the tokens its cost was computed from
            priced = "batch" if mode == UNMATCHED else mode  # an unmatched line was billed as its batch's others
            try:
                cost = compute_cost(u, pricing_model, region, priced, one_call=True, at=result.answered_at)
            except TokenomyError as exc:
                log.warning("batch record %s of %s recorded at $0 (priced_by=unpriced): %s", result.id, job.job_id, exc)
                cost = unpriced_cost(pricing_model, region, mode)
            cost_usd = cost.total_usd
            event = UsageEvent(
                ts=result.answered_at or utcnow(),
                provider=provider,
                model=result.model or job.model,
                region=region,
                mode=priced,
                input_tokens=u.input_tokens,
                output_tokens=u.output_tokens,
                cache_read_tokens=u.cache_read_tokens,
                cache_write_tokens=u.cache_write_tokens,
                audio_input_tokens=u.audio_input_tokens,
                audio_cache_read_tokens=u.audio_cache_read_tokens,
                audio_output_tokens=u.audio_output_tokens,
                request_id=result.id,
                batch_job_id=job.job_id,
                event_id=record_event_id(job.job_id, result.id),
            )
            if u.cache_write_1h_tokens:  # the row's 1-hour writes, so it is priced again as it was here
                event.tags[CACHE_WRITE_1H_TAG] = str(u.cache_write_1h_tokens)
            events.append(event.apply_cost(cost))
        rows.append((part_no, result, mode, cost_usd))
    tables.write_events(events)
    tables.add_results(job.job_id, rows)
    return events


# Where a provider's output line repeats the request it answers: Bedrock's `modelInput`, Vertex AI's `request`.
_ECHOED_REQUEST = ("modelInput", "request")


def without_echoed_request(raw: dict[str, Any]) -> dict[str, Any]:
    """A provider's output line without the request (the prompt) it repeats: the answer, usage and status are what
    `batch results` needs, and the prompt is stored only when asked (`store_prompts`)."""
    return {key: value for key, value in raw.items() if key not in _ECHOED_REQUEST}


_ID_KEYS = {"bedrock": "recordId", "openai": "custom_id", "plain": "id"}


def _line_id(line: str) -> str | None:
    """The record id of a stored payload line (None for one this version cannot read: kept, never guessed)."""
    try:
        obj = json.loads(line)
    except ValueError:
        return None
    if not isinstance(obj, dict):
        return None
    rid = obj.get(_ID_KEYS[line_form(obj)])
    return None if rid is None else str(rid)


def forget_sent_prompts(
    tables: JobTables,
    job: Job,
    parts: list[dict[str, Any]] | None = None,
    outcomes: dict[str, dict[str, Any]] | None = None,
) -> int:
    """Remove from the job's stored parts the input of every record that has a final result (answered, or failed
    for a reason a resubmission would repeat), unless the job stores prompts; returns how many were removed. The input
    of a record without one (never answered, throttled, a server error) is kept: `resume` and `--missing-input` send
    it again; so is a record the provider refused as written, for `--failed-input` to give back to be fixed. The
    parts' record ids, the results, their usage and costs stay. `parts` and `outcomes` (`JobTables.outcomes`): what
    the caller has just read of the job (`refresh`), so it is not read again."""
    if job.prompts_stored:
        return 0
    stored = [p for p in parts if p["payload"]] if parts is not None else tables.stored_payloads(job.job_id)
    if not stored:  # nothing left to remove (a finished job's `status`, again and again): its results are not read
        return 0
    outcomes = tables.outcomes(job.job_id) if outcomes is None else outcomes
    final = final_ids(outcomes) - refused_among(outcomes)
    removed = 0
    for part in stored:
        lines = part["payload"].splitlines()
        kept = [line for line in lines if _line_id(line) not in final]
        if len(kept) < len(lines):
            tables.update_part(job.job_id, part["part_no"], payload="\n".join(kept))
            removed += len(lines) - len(kept)
    return removed


def part_payload(records: list[BatchRecord]) -> str:
    # The records themselves are kept with the job so resume never depends on the input file; in the caller's key
    # order, as a body sent as written is read back from here and sent (sorted, it was no longer as written).
    return "\n".join(json.dumps(r.raw) for r in records)


def part_records(part: dict[str, Any]) -> list[BatchRecord]:
    records, bad = read_records(part["payload"].splitlines())
    if bad:  # a record an earlier version took (and sent without a key it now refuses): said, never dropped
        raise ConfigError(
            f"batch part {part['job_id']}#{part['part_no']}: record on line {bad[0].line} is refused by this version "
            f"({bad[0].field}: {bad[0].reason}); it was stored by an earlier Tokenomy that ignored that key. "
            "Submit the job's records again from a corrected input file"
        )
    return records


def refused_parts(tables: JobTables, job_id: str) -> list[dict[str, Any]]:
    """The job's `held_back` parts."""
    return held_back(tables.parts(job_id), tables.result_ids(job_id))


def held_back(parts: list[dict[str, Any]], done: set[str]) -> list[dict[str, Any]]:
    """Parts the provider refused whole as written (`backends.REFUSED_PART`: a create answered 400, 413 or 422, or a
    job failed at validation) that are the last to hold records still without a final result (not in `done`): sent
    unchanged, they would be refused again, so `resume` holds them back."""
    last = {rid: p["part_no"] for p in parts for rid in p["record_ids"]}
    return [
        p
        for p in parts
        if p["status"] == "failed"
        and (p["message"] or "").startswith(REFUSED_PART)
        and any(last[rid] == p["part_no"] and rid not in done for rid in p["record_ids"])
    ]


def unrun_records(
    parts: list[dict[str, Any]], outcomes: dict[str, dict[str, Any]]
) -> tuple[int, list[str], list[dict[str, Any]]]:
    """Of the job whose `parts` and `outcomes` (`JobTables.outcomes`) these are: how many records were left without
    any result by a part that ended short (expired, timed out, stopped by the provider or by `batch cancel`, or whose
    submit failed), the ids of every record `resume` would send (no final result, and not held back as part of a
    `held_back` part), and the parts whose submit failed (`unsent_parts`: sent again under their own key, or split
    again if they no longer fit one provider job), the others going as new parts."""
    last = {rid: p for p in parts for rid in p["record_ids"]}
    done = final_ids(outcomes)
    held = held_back(parts, done)
    held_ids = {rid for p in held for rid in p["record_ids"]}
    sendable = [rid for rid in last if rid not in done and rid not in held_ids]
    unrun = sum(1 for rid in sendable if rid not in outcomes)  # a throttled record has one: said apart, as sent again
    again = unsent_parts(parts, {p["part_no"] for p in held})
    return unrun, sendable, again


def unsent_parts(parts: list[dict[str, Any]], held_nos: Collection[int] = ()) -> list[dict[str, Any]]:
    """Parts never started (their submit failed, or was cut short) and not held back (`held_nos`): resume sends each
    again under its own key, so that a provider's job made by a submit whose answer was lost is found, not made
    twice."""
    return [
        p
        for p in parts
        if p["handle"] is None and p["status"] in ("submitted", "failed") and p["part_no"] not in held_nos
    ]


def refused_note(job_id: str, held: list[dict[str, Any]]) -> str:
    """What `resume` says of the parts it does not send: which, why (the provider's words), and what to do."""
    said = "; ".join(f"part {p['part_no']} ({len(p['record_ids'])} records): {p['message']}" for p in held)
    return (
        f"not sent again, as sent unchanged it would be refused again (and may be billed): {said}. Fix the records "
        f"(`tokenomy batch results {job_id} --missing-input -o fix.jsonl` writes them) and `tokenomy batch submit` "
        f"the fixed file, or, once the cause is fixed on the provider's side, `tokenomy batch resume {job_id} "
        "--resend-refused` sends them as they are"
    )


def missing_records(tables: JobTables, job_id: str) -> list[BatchRecord]:
    """Records of the job with no stored result, in input order, each once."""
    done = tables.result_ids(job_id)
    parts = tables.parts(job_id)
    return records_among(parts, {rid for p in parts for rid in p["record_ids"]} - done)


def records_among(parts: list[dict[str, Any]], ids: Collection[str]) -> list[BatchRecord]:
    """The records of `parts` whose id is in `ids`, in input order, each once."""
    seen: set[str] = set()
    out = []
    for part in parts:
        for rec in part_records(part):
            if rec.id in ids and rec.id not in seen:
                seen.add(rec.id)
                out.append(rec)
    return out


def export_missing(tables: JobTables, job_id: str, out: str | Path, runner_alive: bool = False) -> dict[str, int]:
    """Write the input lines of records that have no result yet, ready to submit again. Records still being answered
    (a provider's part still running, or a local job's live runner, `runner_alive`) are refused, not written: sent
    again, each would be answered, and billed, twice."""
    missing = missing_records(tables, job_id)
    running = {
        rid for p in tables.parts(job_id) if p["handle"] and p["status"] not in FINAL_STATES for rid in p["record_ids"]
    }
    still = sum(1 for r in missing if r.id in running) if not runner_alive else len(missing)
    if still:
        raise UsageError(
            f"{still} records of {job_id} without a result are still being answered (job "
            f"{require_job(tables, job_id).status}); sent again they would be billed twice: "
            f"`tokenomy batch wait {job_id}` first, then --missing-input"
        )
    Path(out).write_text("".join(json.dumps(r.raw) + "\n" for r in missing), encoding="utf-8")
    return {"records": len(missing), "ok": 0, "failed": 0, "missing": len(missing)}


def export_failed(tables: JobTables, job_id: str, out: str | Path) -> dict[str, int]:
    """Write the input lines, as submitted (their ids too), of the records the provider refused as written (a
    validation error, `backends.refused`; not a throttled or failed call, which `resume` sends again), for the user to
    fix and submit as a new job."""
    refused_ids = tables.refused_ids(job_id)
    lines: dict[str, str] = {}
    for part in tables.parts(job_id):  # a record's last part holds the input it was last sent with
        for rec in part_records(part):
            if rec.id in refused_ids:
                lines[rec.id] = json.dumps(rec.raw)
    lost = len(refused_ids) - len(lines)
    if lost:  # inputs removed by an earlier version once the job ended: said, not written short in silence
        raise UsageError(
            f"{lost} of the {len(refused_ids)} refused records of {job_id} no longer have their input stored (removed "
            "once the job ended, by an earlier version); take them from the input file by id: "
            + ", ".join(sorted(set(refused_ids) - set(lines))[:5])
        )
    Path(out).write_text("".join(line + "\n" for line in lines.values()), encoding="utf-8")
    return {"records": len(lines), "ok": 0, "failed": len(lines), "missing": 0}


def export_results(tables: JobTables, job_id: str, out: str | Path) -> dict[str, int]:
    """Write one JSON line per input record, in input order: its answer, or the error, or why it has none."""
    job = require_job(tables, job_id)
    results = tables.results(job_id)
    counts = {"records": 0, "ok": 0, "failed": 0, "missing": 0}
    seen: set[str] = set()
    parts = tables.parts(job_id)
    # Records a provider is still working on: resume would refuse them ("still has parts running").
    running = {rid for p in parts if p["handle"] and p["status"] not in FINAL_STATES for rid in p["record_ids"]}
    last_sent = {rid: p for p in parts for rid in p["record_ids"]}  # the part that last had it: why it has no result
    out = Path(out)
    tmp = out.with_name(out.name + ".tmp")
    with open(tmp, "w", encoding="utf-8") as fh:
        for part in parts:
            for record_id in part["record_ids"]:
                if record_id in seen:
                    continue
                seen.add(record_id)
                line = _result_line(record_id, results.get(record_id), job, record_id in running, last_sent[record_id])
                fh.write(json.dumps(line) + "\n")
                row = results.get(record_id)
                counts["records"] += 1
                counts["missing" if row is None else "ok" if row["ok"] else "failed"] += 1
        # Output lines that named no record (their id lost on the way): billed, so listed after the records, under
        # where each was, for whoever can tell whose answer it is.
        for where, row in sorted(results.items()):
            if row["mode"] == UNMATCHED:
                line = {**_result_line(where, row, job), "id": None, "output_line": where}
                fh.write(json.dumps(line) + "\n")
                counts["unmatched"] = counts.get("unmatched", 0) + 1
    tmp.replace(out)
    return counts


# How a record's last batch ended, when it ended without running the record (`_result_line`).
_ENDED = {"expired": "expired", "stopped": "was stopped", "failed": "failed"}


def _result_line(
    record_id: str, row: dict[str, Any] | None, job: Job, running: bool = False, part: dict[str, Any] | None = None
) -> dict[str, Any]:
    if row is None:
        if job.backend == "local":
            error = f"no result yet (job {job.status}); try `tokenomy batch resume {job.job_id}`"
        elif running:
            error = f"no result yet (job {job.status}); `tokenomy batch wait {job.job_id}`, then `results` again"
        elif part is not None and part["status"] in FINAL_STATES:  # say why, in the provider's words where it gave some
            said = f" ({part['message']})" if part["message"] else ""
            ended = _ENDED.get(part["status"], "ended without answering it")
            again = "resubmits it"
            if (part["message"] or "").startswith(REFUSED_PART):  # resume holds it back: sent as it is, refused again
                again = "--resend-refused sends it unchanged; or fix it (--missing-input) and submit it"
            error = f"not run: its batch {ended}{said}; `tokenomy batch resume {job.job_id}` {again}"
        else:
            error = f"no result (job {job.status}); `tokenomy batch resume {job.job_id}` resubmits it"
        return {"id": record_id, "ok": False, "error": error}
    line: dict[str, Any] = {"id": record_id, "ok": bool(row["ok"])}
    if not row["ok"] and transient(row["error"]) and job.backend != "local":
        if running:  # resubmitted, and its new part is still running
            hint = f"sent again; `tokenomy batch wait {job.job_id}`, then `results` again"
        else:
            hint = f"`tokenomy batch resume {job.job_id}` resubmits it"
        row = {**row, "error": f"{row['error']} ({hint})"}
    elif not row["ok"] and refused(row["error"]) and row["input_tokens"] is None and row["mode"] != UNMATCHED:
        hint = f"refused as written: `tokenomy batch results {job.job_id} --failed-input FIX.jsonl` to fix and submit"
        row = {**row, "error": f"{row['error']} ({hint})"}
    if row["ok"]:
        line.update(text=row["text"], model=row["model"], mode=row["mode"])
    else:
        line["error"] = row["error"]
    if row["ok"] or row["input_tokens"] is not None:  # a failure billed (its garbled line showed usage): what it cost
        line.update(
            usage={
                "input_tokens": row["input_tokens"],
                "output_tokens": row["output_tokens"],
                "cache_read_tokens": row["cache_read_tokens"],
                "cache_write_tokens": row["cache_write_tokens"],
            },
            cost_usd=None if row["cost_usd"] is None else decimal_str(Decimal(str(row["cost_usd"]))),
        )
    if row["raw"]:
        line["output"] = json.loads(row["raw"])
    return line
