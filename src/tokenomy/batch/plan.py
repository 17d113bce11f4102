"""Deadline planner: finish a file by HH:MM on demand (within the TPM quota) or send it to batch?

On demand is predictable: tokens / usable TPM gives the run time. Batch costs less (catalog batch
price) but its completion time is not guaranteed: Bedrock batch jobs have no completion SLA and
end `Expired` when their timeout (timeoutDurationInHours, 24 h by default) passes; OpenAI Batch
promises results within its 24 h completion window. So batch is the safe choice only when the window
is at least that long, or when on demand cannot finish in time anyway.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime, time, timedelta
from decimal import Decimal
from pathlib import Path
from typing import Any

from tokenomy.batch.formats import BatchRecord
from tokenomy.batch.split import (
    NoSplit,
    below_minimum,
    job_parts,
    provider_backend,
    quota_provider,
    record_bytes,
    sent_bytes,
)
from tokenomy.batch.validate import require_good, validate_file
from tokenomy.batch.worst_case import job_worst_case
from tokenomy.errors import ConfigError, UsageError
from tokenomy.money import usd
from tokenomy.pricing.catalog import default_catalog

# Share of the TPM quota a rate-aware runner sustains (benchmarks/batch_runner_throughput.py measures it).
USABLE_QUOTA = Decimal("0.9")
BATCH_COMPLETION = {
    "aws.bedrock": (
        24,
        "Bedrock batch jobs have no completion guarantee; a job still running at its "
        "timeoutDurationInHours (default 24 h) ends Expired with the rest unanswered",
    ),
    "openai": (24, "OpenAI Batch completes within its 24 h completion window, with no earlier guarantee"),
    "anthropic": (24, "Anthropic Message Batches finish within 24 h, most sooner, with no earlier guarantee"),
    # The catalog's Gemini API models (pricing/data/google.yaml); the Gemini Batch API returns results "within 24
    # hours" (https://developers.googleblog.com/scale-your-ai-workloads-batch-mode-gemini-api, 2025-07-07).
    "google": (24, "the Gemini Batch API returns results within 24 h, with no earlier guarantee"),
}


def parse_clock(text: str, option: str) -> time:
    try:
        hours, minutes = (int(x) for x in text.split(":"))
        return time(hours, minutes)
    except ValueError:
        raise ConfigError(f"{option} {text!r}: give a UTC time of day as HH:MM, e.g. 06:00") from None


def window(deadline: time, start: datetime) -> tuple[datetime, datetime]:
    """From `start` to the next time the clock shows `deadline` (UTC)."""
    end = start.replace(hour=deadline.hour, minute=deadline.minute, second=0, microsecond=0)
    if end <= start:
        end += timedelta(days=1)
    return start, end


@dataclass
class DeadlinePlan:
    model: str
    records: int
    input_tokens: int
    output_tokens: int
    start: datetime
    deadline: datetime
    window_hours: float
    tpm_quota: int | None
    on_demand_minutes: float | None
    on_demand_fits: bool | None
    on_demand_usd: Decimal | None
    batch_usd: Decimal | None
    batch_saving_usd: Decimal | None
    batch_completion_hours: int | None
    batch_risk: str
    recommendation: str
    reason: str
    required_tpm: int = 0
    notes: list[str] = field(default_factory=list)
    # Lines `batch validate` rejects ({line, field, reason}): the plan covers only the good records.
    bad_lines: list[dict[str, Any]] = field(default_factory=list)
    # The prices behind both costs (`ValidationReport`'s): who priced them, their source and as_of.
    priced_by: str = ""
    price_source: str = ""
    price_as_of: str = ""
    # The most each option may cost (`worst_case.job_worst_case`), beside its expected cost: to choose a --max-cost.
    worst_on_demand_usd: Decimal | None = None
    worst_batch_usd: Decimal | None = None

    def to_json(self) -> dict[str, Any]:
        return {**asdict(self), "bad_count": len(self.bad_lines)}


def plan_deadline(
    path: str | Path,
    model: str,
    deadline: time,
    tpm_quota: int | None = None,
    start: datetime | None = None,
    region: str | None = None,
    backend: str | None = None,
) -> DeadlinePlan:
    """Compare on demand and batch for `path` on `model` between `start` (default now) and `deadline`; given the
    `backend` it will be sent with, lines it would not send whole are left out, as `batch validate` leaves them."""
    if tpm_quota is not None and tpm_quota <= 0:
        raise ConfigError(
            f"--tpm-quota {tpm_quota}: give your account's tokens-per-minute quota, a number above 0 (or leave it out)"
        )
    report = validate_file(path, model, region, backend=backend)
    require_good(report)
    worst = job_worst_case(report.records, model, region, backend)
    report.notes.append(worst.note())
    begin, end = window(deadline, start or datetime.now(UTC))
    hours = (end - begin).total_seconds() / 3600
    tokens = report.input_tokens + report.output_tokens
    required = int(tokens / (hours * 60) / float(USABLE_QUOTA)) + 1
    minutes: float | None = None
    fits: bool | None = None
    if tpm_quota:
        minutes = tokens / (tpm_quota * float(USABLE_QUOTA))
        fits = minutes <= hours * 60
    provider = default_catalog().lookup(model, region).provider
    completion, risk = BATCH_COMPLETION.get(provider, (None, "no managed batch service for this provider"))
    saving = (
        report.on_demand_usd - report.batch_usd
        if report.batch_usd is not None and report.on_demand_usd is not None
        else None
    )
    # What `batch submit` would refuse: too few records for a job, no split of them keeping each job at the minimum, or
    # a record larger than a job may be.
    quotas_of = quota_provider(backend, provider)
    too_few = below_minimum(len(report.records), quotas_of) or unsplittable(
        report.records, path, model, quotas_of, backend
    )
    if report.batch_usd is None:
        choice, reason = (
            "on_demand",
            (
                f"{model} has no batch price; run it on demand "
                "(`tokenomy batch submit --backend local` keeps it under your quota)"
            ),
        )
    elif too_few:
        choice, reason = "on_demand", too_few
    elif completion is not None and hours >= completion:
        choice, reason = (
            "batch",
            (
                f"the {hours:.1f} h window covers batch's stated {completion} h completion; "
                f"batch saves {usd(saving, 'amount')}"
            ),
        )
    elif fits:
        choice, reason = (
            "on_demand",
            (
                f"on demand finishes in ~{minutes:.0f} min at {tpm_quota:,} TPM, inside the "
                f"{hours:.1f} h window; batch would save {usd(saving, 'amount')} but its completion "
                + (f"is only promised within {completion} h" if completion is not None else "time is not stated")
            ),
        )
    elif fits is False and minutes is not None:
        choice, reason = (
            "batch",
            (
                f"on demand needs ~{minutes / 60:.1f} h at {tpm_quota:,} TPM, longer than the "
                f"{hours:.1f} h window (it needs ~{required:,} TPM); batch may finish in time "
                f"and saves {usd(saving, 'amount')}, but is not guaranteed to"
            ),
        )
    elif completion is None:
        choice, reason = (
            "on_demand",
            (
                f"{model} has a batch price but no stated batch completion time, so batch may not finish by the "
                f"deadline; on demand needs ~{required:,} TPM to finish in time (pass --tpm-quota to check)"
            ),
        )
    else:
        choice, reason = (
            "on_demand",
            (
                f"the window is shorter than batch's {completion} h completion; on demand "
                f"needs ~{required:,} TPM to finish in time (pass --tpm-quota to check)"
            ),
        )
    return DeadlinePlan(
        model,
        len(report.records),
        report.input_tokens,
        report.output_tokens,
        begin,
        end,
        round(hours, 2),
        tpm_quota,
        None if minutes is None else round(minutes, 1),
        fits,
        report.on_demand_usd,
        report.batch_usd,
        saving,
        completion,
        risk,
        choice,
        reason,
        required,
        list(report.notes),
        [b.to_json() for b in report.bad],
        priced_by=report.priced_by,
        price_source=report.price_source,
        price_as_of=report.price_as_of,
        worst_on_demand_usd=worst.on_demand_usd,
        worst_batch_usd=worst.batch_usd,
    )


def unsplittable(
    records: list[BatchRecord], path: str | Path, model: str, provider: str, backend: str | None
) -> str | None:
    """Why `batch submit` would refuse to split `records` of `path` for `backend` at `provider`'s quotas (a job under
    the minimum no split avoids, a record larger than a job may be), and what to do; None when it would not. With no
    backend named, records are measured as `provider`'s own batch service is sent them (a line as written is smaller
    than Bedrock's modelInput around it, or larger than the request OpenAI is sent for it), and that is said."""
    if backend == "local" or not records:
        return None
    from tokenomy.batch.backends import SubmitOptions
    from tokenomy.batch.jobs import get_backend

    measured = backend or provider_backend(provider)
    size = sent_bytes(get_backend(measured, SubmitOptions()), model) if measured else record_bytes
    if backend is None and measured:
        size = _sent_else_written(size)
    try:
        job_parts(records, provider, size)
    except NoSplit as refused:
        said = refused.in_file(path, model)
        if backend is None:
            how = f"as --backend {measured} sends each record" if measured else "as each line is written"
            said += f" (measured {how}; --backend measures for another)"
        return said
    return None


def _sent_else_written(sent: Callable[[BatchRecord], int]) -> Callable[[BatchRecord], int]:
    """`sent`, else, for a record that backend would not send whole (a key its rebuild leaves out, which validation
    with that --backend names as a bad line), its line as written."""

    def size(rec: BatchRecord) -> int:
        try:
            return sent(rec)
        except UsageError:
            return record_bytes(rec)

    return size
