"""Splitting records into jobs within a provider's batch quotas, and never into a job under its per-job minimum."""

from __future__ import annotations

import itertools
import json
import random
from datetime import UTC, datetime, time

import pytest

from helpers.batch_records import records, squeezed
from tokenomy.batch.split import ShortJob, record_bytes, split_records
from tokenomy.errors import UsageError

HAIKU = "anthropic.claude-3-haiku-20240307-v1:0"


def _shape(jobs) -> list[int]:
    return [sum(len(f) for f in job) for job in jobs]


def _bytes(job, size=record_bytes) -> int:
    return sum(size(rec) for f in job for rec in f)


def test_a_last_job_under_the_minimum_takes_records_from_the_job_before_it_within_its_bytes() -> None:
    # Eight short records fill a job's bytes and leave the two long ones (3.5 times as long) to a job of 2, under the
    # minimum of 3. Sharing the ten records in halves cannot help (5 records hold both long ones: over the bytes), so
    # the split kept the 2-record job, which the provider rejects once the first job is made and billed. The first
    # job now gives one short record to the last: 7 + 3, each within its bytes.
    lines, quotas = squeezed(8, 2, record_bytes)
    recs = records(lines)
    jobs = split_records(recs, quotas)
    assert _shape(jobs) == [7, 3]
    assert all(_bytes(job) <= quotas["max_bytes_per_job"] for job in jobs)
    assert [rec.id for job in jobs for f in job for rec in f] == [rec.id for rec in recs]


def test_records_no_split_keeps_at_the_minimum_are_refused_naming_the_job_its_records_and_the_minimum() -> None:
    # Six short records and three long ones: no jobs of at least 3 records hold the three long ones within the bytes
    # a job (the last three together are over). The split was 6 + 2 + 1, and the 2- and 1-record jobs were sent.
    lines, quotas = squeezed(6, 3, record_bytes)
    with pytest.raises(ShortJob) as refused:
        split_records(records(lines), quotas, provider="aws.bedrock")
    assert isinstance(refused.value, UsageError)
    assert str(refused.value) == (
        "job 2 of 3 would hold 2 records and job 3 of 3 would hold 1 record, below aws.bedrock's minimum of 3 per "
        f"batch job, and no split within its limits a job ({quotas['max_records_per_job']} records, "
        f"{quotas['max_bytes_per_job']:,} bytes as sent) keeps every job at 3 or more"
    ), str(refused.value)
    assert [[rec.id for rec in job] for job in refused.value.short] == [["r6", "r7"], ["r8"]]


def _feasible(sizes: list[int], minimum: int, per_job: int, job_bytes: int) -> bool:
    """Whether any split of `sizes`, in order, into jobs of minimum..per_job records within job_bytes exists."""
    n = len(sizes)
    for cuts in itertools.chain.from_iterable(itertools.combinations(range(1, n), k) for k in range(n)):
        bounds = [0, *cuts, n]
        if all(minimum <= b - a <= per_job and sum(sizes[a:b]) <= job_bytes for a, b in itertools.pairwise(bounds)):
            return True
    return False


def test_a_split_keeps_every_job_at_the_minimum_whenever_one_exists_and_refuses_only_when_none_does() -> None:
    # Against every split there is, for 400 files of random record sizes: a split is made iff one exists, and then
    # each job is within its records and bytes and at or above the minimum; else it is refused.
    rng = random.Random(11)
    made = refused = 0
    for _ in range(400):
        n = rng.randint(3, 10)
        sizes = [rng.choice((1, 2, 3, 5, 8)) for _ in range(n)]
        minimum, per_job, job_bytes = rng.randint(2, 3), rng.randint(3, 6), rng.randint(8, 16)
        recs = records([f'{{"id": "r{i}", "prompt": "p"}}' for i in range(n)])
        size = dict(zip((r.id for r in recs), sizes, strict=True))
        quotas = {"min_records_per_job": minimum, "max_records_per_job": per_job, "max_bytes_per_job": job_bytes}
        exists = _feasible(sizes, minimum, per_job, job_bytes) and n >= minimum
        try:
            jobs = split_records(recs, quotas, lambda rec, size=size: size[rec.id])
        except ShortJob:
            assert not exists, (sizes, quotas)
            refused += 1
            continue
        if len(jobs) == 1 and _shape(jobs)[0] < minimum:  # too few for any job: the callers' `below_minimum`
            continue
        assert exists, (sizes, quotas, _shape(jobs))
        assert [r.id for job in jobs for f in job for r in f] == [r.id for r in recs]
        assert all(minimum <= c <= per_job for c in _shape(jobs)), (sizes, quotas, _shape(jobs))
        assert all(_bytes(job, lambda r, size=size: size[r.id]) <= job_bytes for job in jobs), (sizes, quotas)
        made += 1
    assert made > 50 and refused > 50, (made, refused)


def test_batch_plan_says_no_batch_split_holds_the_minimum_before_submit(tmp_path, monkeypatch) -> None:
    # `batch plan` checked the whole file against the minimum only, and recommended batch for a file `batch submit`
    # splits into a job under it. It splits the file as submit does (by the bytes Bedrock is sent) and says so.
    from tokenomy.batch.bedrock_backend import BedrockBatchBackend
    from tokenomy.batch.plan import plan_deadline
    from tokenomy.batch.split import sent_bytes
    from tokenomy.pricing.catalog import default_catalog

    start = datetime(2026, 11, 2, 0, 0, tzinfo=UTC)
    size = sent_bytes(BedrockBatchBackend(), HAIKU)
    for smalls, bigs, splits in ((6, 3, False), (8, 2, True)):
        lines, quotas = squeezed(smalls, bigs, size)
        monkeypatch.setitem(default_catalog().batch_quotas, "aws.bedrock", quotas)
        path = tmp_path / f"in{smalls}.jsonl"
        path.write_text("\n".join(lines) + "\n")
        plan = plan_deadline(path, HAIKU, time(0, 0), start=start, backend="bedrock")
        if splits:
            assert plan.recommendation == "batch", plan.reason
            continue
        assert plan.recommendation == "on_demand", plan.reason
        assert plan.reason.startswith(
            "job 2 of 3 would hold 2 records (lines 7 to 8) and job 3 of 3 would hold 1 record (line 9), below "
            "aws.bedrock's minimum of 3 per batch job"
        ), plan.reason
        assert "`tokenomy batch submit" in plan.reason and "--backend local" in plan.reason, plan.reason


def test_batch_validate_notes_records_no_split_keeps_at_the_minimum(tmp_path, monkeypatch, capsys) -> None:
    # `batch validate` noted a file too small for a job, but not one whose split leaves a job under the minimum.
    import json

    from helpers.cli import run_cli
    from tokenomy.batch.bedrock_backend import BedrockBatchBackend
    from tokenomy.batch.split import sent_bytes
    from tokenomy.pricing.catalog import default_catalog

    # No backend named: measured as the model's own batch service, Bedrock's, is sent them (and said so).
    lines, quotas = squeezed(6, 3, sent_bytes(BedrockBatchBackend(), HAIKU))
    monkeypatch.setitem(default_catalog().batch_quotas, "aws.bedrock", quotas)
    path = tmp_path / "in.jsonl"
    path.write_text("\n".join(lines) + "\n")
    code, out, _ = run_cli(monkeypatch, capsys, "batch", "validate", str(path), "--model", HAIKU, "--json")
    assert code == 0
    assert (
        "job 2 of 3 would hold 2 records (lines 7 to 8) and job 3 of 3 would hold 1 record (line 9), below "
        "aws.bedrock's minimum of 3 per batch job"
    ) in json.loads(out)["notes"][-1]
    note = json.loads(out)["notes"][-1]
    assert note.endswith(" (measured as --backend bedrock sends each record; --backend measures for another)"), note


def test_a_record_larger_than_a_whole_job_may_be_is_refused_naming_it_its_size_and_the_limit() -> None:
    # A record larger, as sent, than the bytes a job (or its one file) may hold was put in a job of its own, which the
    # provider refused after the other jobs were made. The split refuses it before any job is made, naming the record
    # (its id; its line, for the file), its size and the limit, and what to do.
    from tokenomy.batch.split import RecordTooLarge

    lines = [json.dumps({"id": f"r{i}", "prompt": "x" * (400 if i in (2, 4) else 40)}) for i in range(6)]
    recs = records(lines)
    sizes = [record_bytes(rec) for rec in recs]
    limit = sizes[0] * 3
    for quotas in ({"max_bytes_per_job": limit}, {"max_bytes_per_job": 10**9, "max_bytes_per_file": limit}):
        with pytest.raises(RecordTooLarge) as refused:
            split_records(recs, {"min_records_per_job": 1, **quotas}, provider="openai")
        assert isinstance(refused.value, UsageError)
        assert str(refused.value) == (
            f"record r2 is {sizes[2]:,} bytes and record r4 is {sizes[4]:,} bytes as sent, more than openai's limit of "
            f"{limit:,} bytes for a whole batch job"
        )
    said = refused.value.in_file("in.jsonl", "gpt-4o-mini")
    assert said.startswith(f"record r2 (line 3) is {sizes[2]:,} bytes and record r4 (line 5) is {sizes[4]:,}"), said
    assert said.endswith(
        "; shorten them, or move lines 3 and 5 of in.jsonl to a file of their own, submit the rest, "
        "and run that one on demand: `tokenomy batch submit FILE --model gpt-4o-mini --backend local`"
    )
    assert [len(job[0]) for job in split_records(recs[:2], {"max_bytes_per_job": limit})] == [2]  # the others split


def test_batch_plan_with_no_backend_measures_records_as_the_models_own_batch_service_is_sent_them(
    tmp_path, monkeypatch
) -> None:
    # With no --backend, plan measured the file by its lines as written, which Bedrock is sent larger (each wrapped in
    # its modelInput): it recommended batch for a file `batch submit --backend bedrock` refuses, its long record being
    # larger as sent than a Bedrock job may be. It measures the records as the model's own batch service (Bedrock's,
    # for a Claude model on Bedrock) is sent them, and says which it measured.
    from tokenomy.batch.bedrock_backend import BedrockBatchBackend
    from tokenomy.batch.plan import plan_deadline
    from tokenomy.batch.split import sent_bytes
    from tokenomy.pricing.catalog import default_catalog

    lines = [json.dumps({"id": f"r{i}", "prompt": "x" * (900 if i == 2 else 40), "max_tokens": 8}) for i in range(3)]
    [*_, long] = records(lines)
    as_sent = sent_bytes(BedrockBatchBackend(), HAIKU)(long)
    assert record_bytes(long) < as_sent
    quotas = {"min_records_per_job": 1, "max_records_per_job": 50, "max_bytes_per_job": as_sent - 1}
    monkeypatch.setitem(default_catalog().batch_quotas, "aws.bedrock", quotas)
    path = tmp_path / "in.jsonl"
    path.write_text("\n".join(lines) + "\n")
    start = datetime(2026, 11, 2, 0, 0, tzinfo=UTC)
    named = plan_deadline(path, HAIKU, time(0, 0), start=start, backend="bedrock")
    plan = plan_deadline(path, HAIKU, time(0, 0), start=start)
    assert (plan.recommendation, named.recommendation) == ("on_demand", "on_demand"), plan.reason
    assert named.reason.startswith(f"record r2 (line 3) is {as_sent:,} bytes as sent"), named.reason
    measured = " (measured as --backend bedrock sends each record; --backend measures for another)"
    assert plan.reason == named.reason + measured, plan.reason
    # A line the model's own service would not send whole (a key Anthropic's rebuild leaves out) is measured as
    # written: the plan is made, and `--backend anthropic` names the line.
    body = {"model": "x", "messages": [{"role": "user", "content": "hi"}], "max_tokens": 5, "logprobs": True}
    path.write_text(json.dumps({"custom_id": "a", "method": "POST", "url": "/v1/chat/completions", "body": body}))
    assert plan_deadline(path, "claude-3-5-haiku-20241022", time(0, 0), start=start).recommendation == "batch"
