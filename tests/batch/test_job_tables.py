"""Batch job tables on DuckDB and PostgreSQL: counts and costs of many jobs."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from decimal import Decimal

import pytest

from tokenomy.batch.job_tables import JOB_FIELDS
from tokenomy.batch.jobs import open_tables
from tokenomy.ledger.events import UsageEvent

JOBS = 3000
START = datetime(2026, 11, 2, tzinfo=UTC)


def _insert(tables, table: str, columns: tuple[str, ...], rows: list[list]) -> None:
    for i in range(0, len(rows), 400):  # a few multi-row INSERTs, not thousands of statements
        chunk = rows[i : i + 400]
        marks = ", ".join(["(" + ", ".join([tables.p] * len(columns)) + ")"] * len(chunk))
        tables.execute(f"INSERT INTO {table} ({', '.join(columns)}) VALUES {marks}", [v for r in chunk for v in r])


@pytest.mark.parametrize("url_fixture", ["ledger_path", "fresh_postgres_url"])
def test_listing_thousands_of_jobs_sums_each_one_without_naming_every_id_in_the_statement(
    request, url_fixture, monkeypatch
) -> None:
    # `batch list` passed every job id in an IN (...) list, twice: 3,000 jobs made statements of 3,000 parameters
    # (PostgreSQL refuses more than 65,535) to sum what is the whole table anyway.
    tables = open_tables(str(request.getfixturevalue(url_fixture)))
    ids = [f"job-{i:05d}" for i in range(JOBS)]
    jobs = []
    for i, job_id in enumerate(ids):
        created = START + timedelta(seconds=i)
        row = dict(
            job_id=job_id,
            model="gpt-4o-mini",
            backend="local",
            status="completed",
            message=None,
            created_at=created,
            updated_at=created,
            input_path=None,
            records=4,
            bad_lines=0,
            options="{}",
            runner_pid=None,
            runner_host=None,
            heartbeat_at=None,
        )
        jobs.append([row[k] for k in JOB_FIELDS])
    _insert(tables, "batch_jobs", JOB_FIELDS, jobs)
    # Job i: i % 3 answers at $0.00i each, one failure when i % 5 == 0, and $0.5 billed for a timed-out attempt
    # when i % 7 == 0 (a ledger row of its own); one `ok` ledger row that is not an unanswered cost.
    columns = ("job_id", "record_id", "ok", "cost_usd", "finished_at")
    results, expected = [], {}
    for i, job_id in enumerate(ids):
        answered = [[job_id, f"r{k}", True, Decimal(i) / 1000, START] for k in range(i % 3)]
        failed = [[job_id, "r9", False, None, START]] if i % 5 == 0 else []
        results += answered + failed
        cost = Decimal(i) / 1000 * len(answered) + (Decimal("0.5") if i % 7 == 0 else 0)
        expected[job_id] = (len(answered), len(failed), cost)
    _insert(tables, "batch_results", columns, results)
    events = [
        UsageEvent(
            ts=START + timedelta(hours=1),
            provider="openai",
            model="gpt-4o-mini",
            outcome="timeout",
            cost_usd=Decimal("0.5"),
            batch_job_id=job_id,
        )
        for i, job_id in enumerate(ids)
        if i % 7 == 0
    ]
    events.append(
        UsageEvent(
            ts=START + timedelta(hours=1),
            provider="openai",
            model="gpt-4o-mini",
            cost_usd=Decimal(9),
            batch_job_id=ids[1],
        )
    )  # an answer's own row: not counted again
    tables.write_events(events)

    sent: list[tuple[str, list]] = []
    query = tables.query

    def spy(sql, params=()):
        sent.append((sql, list(params)))
        return query(sql, params)

    monkeypatch.setattr(tables, "query", spy)
    listed = tables.list_jobs()
    assert len(listed) == JOBS
    got = {j.job_id: (j.done, j.failed, j.cost_usd) for j in listed}
    assert got == expected
    assert sum(cost for *_, cost in expected.values()) > 0
    assert max(len(params) for _, params in sent) <= 1  # the jobs' start at most; no id lists
    # The jobs, then their counts and costs in one statement (the results' sums and the ledger's unanswered costs
    # were two, each a statement of its own on every `batch status`, `list` and job read).
    assert len(sent) == 2, [sql for sql, _ in sent]
    sent.clear()
    one = tables.get_job(ids[35])  # one job: read by its id, and right
    assert (one.done, one.failed, one.cost_usd) == expected[one.job_id] == (2, 1, Decimal("0.035") * 2 + Decimal("0.5"))
    assert all(len(params) <= 3 for _, params in sent) and len(sent) == 2, sent


@pytest.mark.parametrize("url_fixture", ["ledger_path", "fresh_postgres_url"])
def test_a_job_is_updated_only_while_its_status_is_the_one_expected(request, url_fixture) -> None:
    # What a background runner claims a job with: only one still `submitted`, not one a cancel has stopped.
    from tokenomy.batch.job_tables import Job

    tables = open_tables(str(request.getfixturevalue(url_fixture)))
    tables.insert_job(Job("j1", "gpt-4o-mini", "local", "stopped", START, START, 1))
    assert not tables.update_job_if("j1", "submitted", status="in_progress", runner_pid=7)
    assert (tables.job_status("j1"), tables.get_job("j1").runner_pid) == ("stopped", None)
    tables.update_job("j1", status="submitted")
    assert tables.update_job_if("j1", "submitted", status="in_progress", runner_pid=7)
    assert (tables.job_status("j1"), tables.get_job("j1").runner_pid) == ("in_progress", 7)
