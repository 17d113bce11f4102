"""Split records into jobs and files that respect the provider's batch quotas."""

from __future__ import annotations

import itertools
import json
from collections.abc import Callable
from pathlib import Path
from typing import Any

from tokenomy.batch.backends import BatchBackend
from tokenomy.batch.formats import BatchRecord
from tokenomy.errors import UsageError
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


def provider_backend(provider: str) -> str | None:
    """The backend of `provider`'s own batch service (Bedrock's for aws.bedrock, OpenAI's for openai, the Gemini API's
    for google), whose quotas bound a file no --backend is named for; None when it has none here."""
    return next((backend for backend, quotas in BACKEND_QUOTAS.items() if quotas == provider), None)


def record_bytes(rec: BatchRecord) -> int:
    """Size of the record as one JSONL line."""
    return len(json.dumps(rec.raw).encode()) + 1


class NoSplit(UsageError):
    """Records no split within the provider's limits a job can send: nothing is to be sent. `in_file` says what is
    wrong in the file and what to do."""

    def in_file(self, path: str | Path, model: str) -> str:
        raise NotImplementedError


def _on_demand(model: str) -> str:
    return f"`tokenomy batch submit {{}} --model {model} --backend local`"


class RecordTooLarge(NoSplit):
    """Records each larger, as sent, than a whole provider job may be (`limit` bytes, the per-job limit or, a job
    being one file, the per-file one): no split can send them (the split put each in a job of its own, which the
    provider refused once the others were made). `big`: each such record with its size; `records`: how many there are
    in all."""

    def __init__(self, big: list[tuple[BatchRecord, int]], limit: int, provider: str, records: int):
        self.big, self.limit, self.provider, self.records = big, limit, provider, records
        super().__init__(self.describe())

    def describe(self, lines: bool = False) -> str:
        """Each record (its id; its line in the file, if `lines`) with its size, and the limit."""
        named = [
            f"record {rec.id}" + (f" (line {rec.line})" if lines else "") + f" is {size:,} bytes"
            for rec, size in self.big[:_NAMED]
        ]
        if len(self.big) > _NAMED:
            named.append(f"{len(self.big) - _NAMED} more are larger")
        return f"{_and(named)} as sent, more than {self.provider}'s limit of {self.limit:,} bytes for a whole batch job"

    def in_file(self, path: str | Path, model: str) -> str:
        """What is wrong in the file at `path`, and what to do: shorten those lines, or run them on demand (in a file
        of their own, the rest in batch; or, every record too large, the whole file)."""
        them = "it" if len(self.big) == 1 else "them"
        if len(self.big) == self.records:
            return f"{self.describe(True)}; shorten {them}, or run the file on demand: {_on_demand(model).format(path)}"
        lines = [str(rec.line) for rec, _ in self.big[:_NAMED]]
        if len(self.big) > _NAMED:
            lines.append(f"those of the {len(self.big) - _NAMED} more")
        where = f"line{'s' if len(self.big) > 1 else ''} {_and(lines)}"
        return (
            f"{self.describe(True)}; shorten {them}, or move {where} of {path} to a file of "
            f"{'its' if len(self.big) == 1 else 'their'} own, submit the rest, and run that one on demand: "
            f"{_on_demand(model).format('FILE')}"
        )


_NAMED = 5  # records too large named in the message: the first ones, then how many more


def _and(items: list[str]) -> str:
    return items[0] if len(items) == 1 else f"{', '.join(items[:-1])} and {items[-1]}"


class ShortJob(NoSplit):
    """No split of the records within the provider's limits a job keeps every job at its minimum: the split the
    limits give (`jobs` jobs) leaves `short` (each such job's records; `numbers`, its place from 1) under `minimum`.
    The provider would reject those jobs after the others were made, and billed: nothing is to be sent."""

    def __init__(self, short: list[tuple[int, list[BatchRecord]]], jobs: int, minimum: int, provider: str, limits: str):
        self.short = [records for _, records in short]
        self.numbers = [number for number, _ in short]
        self.jobs, self.minimum, self.provider, self.limits = jobs, minimum, provider, limits
        super().__init__(self.describe())

    def describe(self, where: Callable[[list[BatchRecord]], str] | None = None) -> str:
        """What is wrong, each short job's records named by `where` (their lines in the file), if given."""
        named = " and ".join(
            f"job {number} of {self.jobs} would hold {_records(len(recs))}" + (f" ({where(recs)})" if where else "")
            for number, recs in zip(self.numbers, self.short, strict=True)
        )
        return (
            f"{named}, below {self.provider}'s minimum of {self.minimum} per batch job, and no split within its limits "
            f"a job ({self.limits}) keeps every job at {self.minimum} or more"
        )

    def in_file(self, path: str | Path, model: str) -> str:
        """What is wrong, splitting the file at `path` for `model`, and what to do: run the short jobs' lines on
        demand, in a file of their own, and the rest (whose every job holds the minimum) in batch; or, if every job is
        short, the whole file on demand."""
        on_demand = _on_demand(model)
        if len(self.numbers) == self.jobs:
            return f"{self.describe(_lines)}; run the whole file on demand: {on_demand.format(path)}"
        spans: list[list[BatchRecord]] = []  # the records of consecutive short jobs, one span of lines each
        for number, recs in zip(self.numbers, self.short, strict=True):
            if spans and number - 1 in self.numbers:
                spans[-1].extend(recs)
            else:
                spans.append(list(recs))
        where = " and ".join(_lines(span) for span in spans)
        return (
            f"{self.describe(_lines)}; move {where} of {path} to a file of their own, submit the rest, and run that "
            f"one on demand: {on_demand.format('FILE')}"
        )


def _lines(records: list[BatchRecord]) -> str:
    """Where `records`, consecutive in their file, are in it: "line 9", "lines 7 to 8"."""
    first, last = records[0].line, records[-1].line
    return f"line {first}" if first == last else f"lines {first} to {last}"


def split_records(
    records: list[BatchRecord],
    quotas: dict[str, Any],
    size: Callable[[BatchRecord], int] = record_bytes,
    provider: str = "the provider",
) -> list[list[list[BatchRecord]]]:
    """Jobs -> files -> records, greedy, each within records/bytes limits per file and per job (a record's bytes as
    `size` counts them: as the backend sends it, see `BatchBackend.input_line`). A job the greedy split leaves under
    the provider's per-job minimum would be rejected once the others were made: a last one shares the previous job's
    records in halves (50,050 records on Bedrock: 25,025 + 25,025, not 50,000 + a 50-record job Bedrock rejects);
    else (bytes force jobs too uneven for halves) earlier jobs give it records, the first jobs kept as full as a split
    that holds allows; none holding, `ShortJob` is raised (named for `provider`). Records too few for one job make
    one job under the minimum: callers refuse that first (`below_minimum`). A record larger than a job or a file may
    be is refused first (`RecordTooLarge`): no split sends it."""
    sizes = [size(rec) for rec in records]
    limit = min(int(quotas.get("max_bytes_per_file", _BIG)), _job_limits(quotas)[1])
    big = [(rec, n) for rec, n in zip(records, sizes, strict=True) if n > limit]
    if big:
        raise RecordTooLarge(big, limit, provider, len(records))
    jobs = _greedy(records, sizes, quotas)
    minimum = int(quotas.get("min_records_per_job", 0))
    short = [(number, job) for number, job in enumerate(jobs, 1) if _count(job) < minimum]
    if len(jobs) < 2 or not short:
        return jobs
    if [number for number, _ in short] == [len(jobs)]:
        tail_n = _count(jobs[-2]) + _count(jobs[-1])
        tail = records[-tail_n:]
        halves = _greedy(tail, sizes[-tail_n:], {**quotas, "max_records_per_job": (tail_n + 1) // 2})
        if all(_count(job) >= minimum for job in halves):
            return jobs[:-2] + halves
    per_job, job_bytes = _job_limits(quotas)
    ends = _ends_at_minimum(sizes, per_job, job_bytes, minimum)
    if ends is None:
        limits = ", ".join(
            f"{int(quotas[key]):,} {unit}"
            for key, unit in (("max_records_per_job", "records"), ("max_bytes_per_job", "bytes as sent"))
            if key in quotas
        )
        flat = [(number, [rec for file in job for rec in file]) for number, job in short]
        raise ShortJob(flat, len(jobs), minimum, provider, limits)
    bounds = [0, *ends]
    # Each job is within the job limits: greedy over it makes it one job, cut into files by the file limits.
    return [_greedy(records[a:b], sizes[a:b], quotas)[0] for a, b in itertools.pairwise(bounds)]


def job_parts(records: list[BatchRecord], provider: str, size: Callable[[BatchRecord], int]) -> list[list[BatchRecord]]:
    """`records` split at `provider`'s batch quotas into the parts of a job, one provider job each (a record's bytes
    as `size` counts them); `RecordTooLarge` when a record is larger than a job may be, `ShortJob` when no split keeps
    every part at the provider's minimum."""
    quotas = one_file_a_job(default_catalog().quotas_for(provider))
    return [list(itertools.chain.from_iterable(files)) for files in split_records(records, quotas, size, provider)]


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


def _records(n: int) -> str:
    return f"{n} record" if n == 1 else f"{n} records"


_BIG = 1 << 62


def _job_limits(quotas: dict[str, Any]) -> tuple[int, int]:
    return int(quotas.get("max_records_per_job", _BIG)), int(quotas.get("max_bytes_per_job", _BIG))


def _greedy(records: list[BatchRecord], sizes: list[int], quotas: dict[str, Any]) -> list[list[list[BatchRecord]]]:
    per_file = int(quotas.get("max_records_per_file", _BIG))
    bytes_file = int(quotas.get("max_bytes_per_file", _BIG))
    per_job, bytes_job = _job_limits(quotas)
    jobs: list[list[list[BatchRecord]]] = []
    job: list[list[BatchRecord]] = []
    cur: list[BatchRecord] = []
    job_n = job_b = file_b = 0
    for rec, size in zip(records, sizes, strict=True):
        if job_n and (job_n + 1 > per_job or job_b + size > bytes_job):  # never an empty job before a record over
            if cur:
                job.append(cur)
            jobs.append(job)
            job, cur, job_n, job_b, file_b = [], [], 0, 0, 0
        if cur and (len(cur) + 1 > per_file or file_b + size > bytes_file):
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


def _ends_at_minimum(sizes: list[int], per_job: int, job_bytes: int, minimum: int) -> list[int] | None:
    """Where each job ends (an index past its last record) in a split of records of `sizes`, in order, into jobs of
    `minimum` to `per_job` records and at most `job_bytes`, each job as long as the jobs after it can still be; None
    when no such split exists. Linear: a job from record j may end anywhere in [j + minimum, reach[j]], an interval."""
    n, minimum = len(sizes), max(1, minimum)
    reach = [0] * n  # past the last record a job from j can hold within per_job and job_bytes
    end = held = 0
    for j in range(n):
        if end < j:
            end, held = j, 0
        while end < n and end - j < per_job and held + sizes[end] <= job_bytes:
            held += sizes[end]
            end += 1
        reach[j] = end
        held -= sizes[j] if end > j else 0
    # ok[j]: the records from j on split into such jobs; oks_from[k]: how many of ok[k..n] hold
    ok = [False] * n + [True]
    oks_from = [0] * (n + 2)
    oks_from[n] = 1
    for j in range(n - 1, -1, -1):
        lo, hi = j + minimum, reach[j]
        ok[j] = lo <= hi and oks_from[lo] - oks_from[hi + 1] > 0
        oks_from[j] = oks_from[j + 1] + ok[j]
    if not ok[0]:
        return None
    last_ok = list(itertools.accumulate(range(n + 1), lambda last, k: k if ok[k] else last, initial=0))[1:]
    ends, j = [], 0
    while j < n:
        j = last_ok[reach[j]]  # the furthest end that leaves a split of the rest (ok[j] says one is in range)
        ends.append(j)
    return ends


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
