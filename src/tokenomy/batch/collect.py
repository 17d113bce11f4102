"""Collecting a finished part: each of its results stored at batch prices, its usage in the ledger.

`refresh` (jobs.py) calls `collect_part` once a part's provider job has ended. An output line that names no record
of its part is kept as the job's unmatched line (`job_tables.UNMATCHED`), and a part whose lines outnumber its
answered records ends its unanswered records failed, naming those lines, rather than send them (and pay) again.
"""

from __future__ import annotations

from dataclasses import replace
from decimal import Decimal
from typing import Any

from tokenomy.batch.backends import BatchBackend, RecordResult
from tokenomy.batch.formats import BatchRecord
from tokenomy.batch.job_tables import UNMATCHED, Job, JobTables
from tokenomy.batch.records import part_records, record_results, with_estimated_usage
from tokenomy.chat_response import Usage
from tokenomy.ledger.events import UsageEvent
from tokenomy.telemetry import otel


def collect_part(tables: JobTables, job: Job, part: dict[str, Any], backend: BatchBackend) -> int:
    """Store every result of a finished part at batch prices; records the provider skipped stay missing.

    An output line that names no record of the part (its id lost on the way: a Vertex AI line echoing its request
    without labels, and not as sent) is kept as an unmatched row under where it is, priced into the ledger and the
    job's cost: the provider billed it. Once the part has as many lines as records, every request was answered, so
    the records still without a result were answered by those lines: they end failed, naming them, rather than
    wait for a resume that would send them, and pay for them, again."""
    pricing = job.options.get("pricing_model", job.model)
    region = job.options.get("region")
    # The provider name its on-demand calls are recorded under, where it differs from the backend's name.
    provider = getattr(backend, "ledger_provider", job.backend)
    with otel.batch_span("collect", provider, job.model, job.job_id) as span:
        count, events = _collect(tables, job, part, backend, provider, pricing, region)
        usage = sum((e.usage for e in events), Usage())
        otel.record_batch(span, count, usage, sum((e.cost_usd for e in events), Decimal(0)))
    return count


def _collect(
    tables: JobTables,
    job: Job,
    part: dict[str, Any],
    backend: BatchBackend,
    provider: str,
    pricing: str,
    region: str | None,
) -> tuple[int, list[UsageEvent]]:
    """`collect_part`'s work: the results it stored and the usage events it wrote for them."""
    wanted = set(part["record_ids"])
    written: list[UsageEvent] = []
    count, chunk = 0, []
    placed: set[str] = set()
    unmatched: list[str] = []  # where each line that names no record is
    sent: dict[str, BatchRecord] = {}  # the part's records, read only to estimate an answer that has no usage
    # Recorded when the provider answered (its job's end), not now: a part collected hours later is in its own hour.
    ended = backend.ended_at(part["handle"])
    for result in backend.part_results(part["handle"], part["record_ids"]):
        if ended is not None and result.answered_at is None:
            result = replace(result, answered_at=ended)
        if result.id in wanted:
            if result.ok and result.usage is None:
                sent = sent or {r.id: r for r in part_records(part)}
                result = with_estimated_usage(result, sent.get(result.id), job.job_id)
            chunk.append((part["part_no"], result, "batch", provider, pricing, region))
            placed.add(result.id)
            count += 1
        else:
            if result.ok and result.usage is None:
                result = with_estimated_usage(result, None, job.job_id)
            chunk.append((part["part_no"], result, UNMATCHED, provider, pricing, region))
            unmatched.append(result.id)
        if len(chunk) >= 500:
            written += record_results(tables, job, chunk)
            chunk = []
    if unmatched and len(placed) + len(unmatched) >= len(wanted):
        have = tables.result_ids(job.job_id) | placed
        shown = "; ".join(unmatched[:3]) + (f"; and {len(unmatched) - 3} more" if len(unmatched) > 3 else "")
        error = (
            f"no output line names this record, and {len(unmatched)} line(s) of its batch name no record ({shown}): "
            "one of them is its answer, billed; `tokenomy batch results` lists them. Not sent again, so as not to "
            "pay for it twice"
        )
        for rid in dict.fromkeys(part["record_ids"]):
            if rid not in have:
                chunk.append((part["part_no"], RecordResult(rid, error=error), "batch", provider, pricing, region))
                count += 1
    written += record_results(tables, job, chunk)
    return count, written
