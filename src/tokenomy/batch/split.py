"""Split records into jobs and files that respect the provider's batch quotas."""

from __future__ import annotations

import json
from collections.abc import Callable
from typing import Any

from tokenomy.batch.backends import BatchBackend
from tokenomy.batch.formats import BatchRecord
from tokenomy.pricing.catalog import default_catalog

# The catalog provider whose `batch_quotas` bound a job sent through each backend: the service that takes the job sets
# its limits, whatever model it runs (gpt-4o sent through Anthropic's Message Batches is split at Anthropic's).
BACKEND_QUOTAS = {
    "bedrock": "aws.bedrock",
    "openai": "openai",
    "azure": "openai",  # Azure OpenAI Global Batch, priced and limited as OpenAI's
    "anthropic": "anthropic",
    "gemini": "google",
    "vertex": "google",
}


def quota_provider(backend: str | None, model_provider: str) -> str:
    """The provider whose batch quotas (per-job minimum, records and bytes a job) apply: the backend's, else (no
    backend named, or the local runner) the model's provider's."""
    return BACKEND_QUOTAS.get(backend or "", model_provider)


def record_bytes(rec: BatchRecord) -> int:
    """Size of the record as one JSONL line."""
    return len(json.dumps(rec.raw).encode()) + 1


def split_records(
    records: list[BatchRecord], quotas: dict[str, Any], size: Callable[[BatchRecord], int] = record_bytes
) -> list[list[list[BatchRecord]]]:
    """Jobs -> files -> records, greedy, each within records/bytes limits per file and per job (a record's bytes as
    `size` counts them: as the backend sends it, see `BatchBackend.input_line`); a last job
    the greedy split leaves under the provider's per-job minimum shares the previous job's records instead
    (50,050 records on Bedrock: 25,025 + 25,025, not 50,000 + a 50-record job Bedrock rejects)."""
    jobs = _greedy(records, quotas, size)
    minimum = int(quotas.get("min_records_per_job", 0))
    if len(jobs) > 1 and _count(jobs[-1]) < minimum:
        tail = [rec for job in jobs[-2:] for file in job for rec in file]
        halves = _greedy(tail, {**quotas, "max_records_per_job": (len(tail) + 1) // 2}, size)
        if all(_count(job) >= minimum for job in halves):
            jobs[-2:] = halves
    return jobs


def one_file_a_job(quotas: dict[str, Any]) -> dict[str, Any]:
    """`quotas` for a backend that sends each job as one file (every one here: a Bedrock job's input file, an OpenAI
    batch's, a Vertex AI job's, a Gemini batch's inline requests): a job is held to the per-file limits too, where
    a Bedrock job of 5 GB in one file went past its 1 GB a file."""
    out = dict(quotas)
    for job_key, file_key in (
        ("max_records_per_job", "max_records_per_file"),
        ("max_bytes_per_job", "max_bytes_per_file"),
    ):
        limits = [int(quotas[k]) for k in (job_key, file_key) if k in quotas]
        if limits:
            out[job_key] = min(limits)
    return out


def _count(job: list[list[BatchRecord]]) -> int:
    return sum(len(file) for file in job)


def _greedy(
    records: list[BatchRecord], quotas: dict[str, Any], size_of: Callable[[BatchRecord], int]
) -> list[list[list[BatchRecord]]]:
    big = 1 << 62
    per_file = int(quotas.get("max_records_per_file", big))
    per_job = int(quotas.get("max_records_per_job", big))
    bytes_file = int(quotas.get("max_bytes_per_file", big))
    bytes_job = int(quotas.get("max_bytes_per_job", big))
    jobs: list[list[list[BatchRecord]]] = []
    job: list[list[BatchRecord]] = []
    cur: list[BatchRecord] = []
    job_n = job_b = file_b = 0
    for rec in records:
        size = size_of(rec)
        if job_n + 1 > per_job or job_b + size > bytes_job:
            if cur:
                job.append(cur)
            jobs.append(job)
            job, cur, job_n, job_b, file_b = [], [], 0, 0, 0
        if len(cur) + 1 > per_file or file_b + size > bytes_file:
            job.append(cur)
            cur, file_b = [], 0
        cur.append(rec)
        file_b += size
        job_n += 1
        job_b += size
    if cur:
        job.append(cur)
    if job:
        jobs.append(job)
    return jobs


def sent_bytes(backend: BatchBackend, model: str) -> Callable[[BatchRecord], int]:
    """A record's size as `backend` sends it for `model`, as the provider's limits count it (with its newline)."""
    return lambda rec: len(backend.input_line(model, rec).encode()) + 1


def below_minimum(records: int, provider: str) -> str | None:
    """A message when `records` is under the provider's minimum per job, else None."""
    minimum = int(default_catalog().quotas_for(provider).get("min_records_per_job", 0))
    if records < minimum:
        return (
            f"{records} records is below {provider}'s minimum of {minimum} per batch job; "
            "run them on demand instead (`--backend local`) or add records"
        )
    return None
