"""OpenAI batch: the backend and the official `openai` SDK against the Files + Batches emulator."""

from __future__ import annotations

import json
import time
from contextlib import contextmanager
from decimal import Decimal

import openai
import pytest

from helpers.batch_records import in_order, plain, records, wait  # the same records and polling
from tokenomy.batch.backends import STATES, SubmitOptions
from tokenomy.batch.openai_backend import OpenAIBatchBackend
from tokenomy.chat_response import Usage
from tokenomy.emulate.instant_engine import InstantEngine
from tokenomy.emulate.openai_batch_api import create_app
from tokenomy.emulate.server import ServerThread
from tokenomy.errors import ConfigError, ProviderError, UsageError
from tokenomy.pricing.cost import compute_cost

MODEL = "gpt-4o-mini"
FAST = {"validating_seconds": 0.05}


@pytest.fixture(autouse=True)
def no_openai_env(monkeypatch):
    for key in ("OPENAI_API_KEY", "OPENAI_BASE_URL"):
        monkeypatch.delenv(key, raising=False)


@contextmanager
def emulator(engine=None, **settings):
    """The emulator on a free port; yields (SDK client, backend options)."""
    app = create_app(engine=engine or InstantEngine(), **{**FAST, **settings})
    with ServerThread(app) as url:
        yield openai.OpenAI(base_url=f"{url}/v1", api_key="x"), SubmitOptions(endpoint_url=url)


def file_lines(client: openai.OpenAI, file_id: str) -> list[dict]:
    return [json.loads(x) for x in client.files.content(file_id).text.splitlines()]


def priced(results) -> tuple[Decimal, Decimal]:
    batch = sum((compute_cost(r.usage, MODEL, mode="batch").total_usd for r in results), Decimal(0))
    return batch, sum((compute_cost(r.usage, MODEL).total_usd for r in results), Decimal(0))


def wait_until_answered(client: openai.OpenAI, handle: str, at_least: int) -> None:
    """Until the emulator's batch `handle` has answered `at_least` requests: a cancel then stops it midway."""
    deadline = time.monotonic() + 30
    while client.batches.retrieve(handle).request_counts.completed < at_least:
        assert time.monotonic() < deadline, f"batch {handle} answered fewer than {at_least} requests in 30 s"
        time.sleep(0.05)


@pytest.mark.slow
def test_local_model_batch_completes_with_output_file_usage_and_batch_prices() -> None:
    from tokenomy.emulate.engine import Engine

    with emulator(engine=Engine(), validating_seconds=0.3) as (client, options):
        backend = OpenAIBatchBackend()
        handle = backend.submit("local", MODEL, records(plain(3, max_tokens=5)), options)
        assert handle.startswith("batch_")
        seen = wait(backend, handle)
        assert seen[-1] == "completed" and in_order(seen) and "validating" in seen
        batch = client.batches.retrieve(handle)
        assert batch.request_counts.total == 3 and batch.request_counts.completed == 3
        assert batch.error_file_id is None and batch.metadata == {"tokenomy_job": "local", "tokenomy_part": "local"}
        lines = file_lines(client, batch.output_file_id)
        assert [ln["custom_id"] for ln in lines] == ["r0", "r1", "r2"]
        assert all(ln["response"]["status_code"] == 200 and ln["error"] is None for ln in lines)
        results = {r.id: r for r in backend.results(handle)}
        assert set(results) == {"r0", "r1", "r2"}
        assert all(r.ok and r.text.strip() and 0 < r.usage.output_tokens <= 5 for r in results.values())
        assert batch.usage.input_tokens == sum(r.usage.input_tokens for r in results.values())
        assert batch.usage.output_tokens == sum(r.usage.output_tokens for r in results.values())
        batch_usd, on_demand = priced(results.values())
        assert batch_usd > 0 and batch_usd == on_demand / 2


def test_two_hundred_requests_on_the_instant_engine() -> None:
    with emulator(validating_seconds=0.1) as (client, options):
        backend = OpenAIBatchBackend(options)
        handle = backend.submit("big", MODEL, records(plain(200)), options)
        seen = wait(backend, handle)
        assert seen[-1] == "completed" and in_order(seen)
        results = list(backend.results(handle))
        assert sorted(r.id for r in results) == sorted(f"r{i}" for i in range(200))
        for r in results:  # joined by custom_id: each answer echoes its own prompt
            assert r.ok and f"topic{r.id[1:]} " in r.text + " " and r.model == MODEL
        batch = client.batches.retrieve(handle)
        total = sum((r.usage for r in results), Usage())
        assert (batch.usage.input_tokens, batch.usage.output_tokens) == (total.input_tokens, total.output_tokens)
        batch_usd, on_demand = priced(results)
        assert batch_usd == compute_cost(total, MODEL, mode="batch").total_usd == on_demand / 2
        assert [b.id for b in client.batches.list()] == [handle]


def test_rejected_requests_go_to_the_error_file_and_are_named() -> None:
    lines = plain(50)
    bad = {"r5": {"temperature": 7}, "r21": {"stop": 3}}
    for rid, extra in bad.items():
        body = {"model": MODEL, "messages": [{"role": "user", "content": "hello"}], **extra}
        lines[int(rid[1:])] = json.dumps(
            {"custom_id": rid, "method": "POST", "url": "/v1/chat/completions", "body": body}
        )
    with emulator() as (client, options):
        backend = OpenAIBatchBackend()
        handle = backend.submit("partial", MODEL, records(lines), options)
        assert wait(backend, handle)[-1] == "partially_completed"
        assert "2 requests failed" in backend.status(handle)[1]
        results = {r.id: r for r in backend.results(handle)}
        assert len(results) == 50 and {rid for rid, r in results.items() if not r.ok} == set(bad)
        assert results["r5"].error.startswith("400") and "temperature" in results["r5"].error
        assert "stop" in results["r21"].error and results["r21"].usage is None
        errors = file_lines(client, client.batches.retrieve(handle).error_file_id)
        assert sorted(e["custom_id"] for e in errors) == ["r21", "r5"]
        assert all(e["response"]["body"]["error"]["type"] == "invalid_request_error" for e in errors)


def test_a_bad_input_file_fails_the_batch_naming_each_line() -> None:
    with emulator() as (client, options):
        good = {
            "custom_id": "a",
            "method": "POST",
            "url": "/v1/chat/completions",
            "body": {"model": MODEL, "messages": [{"role": "user", "content": "hi"}]},
        }
        text = "\n".join([json.dumps(good), "{not json", json.dumps(good)]) + "\n"
        upload = client.files.create(file=("in.jsonl", text.encode()), purpose="batch")
        assert upload.purpose == "batch" and upload.bytes == len(text.encode())
        batch = client.batches.create(input_file_id=upload.id, endpoint="/v1/chat/completions", completion_window="24h")
        backend = OpenAIBatchBackend(options)
        assert wait(backend, batch.id)[-1] == "failed"
        errors = client.batches.retrieve(batch.id).errors.data
        assert [(e.line, e.code) for e in errors] == [(2, "invalid_json_line"), (3, "duplicate_custom_id")]
        assert "line 2" in backend.status(batch.id)[1] and list(backend.results(batch.id)) == []
        with pytest.raises(openai.NotFoundError):
            client.batches.create(
                input_file_id="file-missing", endpoint="/v1/chat/completions", completion_window="24h"
            )


def test_cancel_moves_through_stopping_to_stopped_and_unrun_requests_stay_missing() -> None:
    with emulator(instant_delay_s=0.02) as (client, options):
        backend = OpenAIBatchBackend()
        recs = records(plain(150))
        handle = backend.submit("cancel", MODEL, recs, options)
        wait_until_answered(client, handle, 1)  # once a request was answered (at "in_progress" maybe none was)
        backend.cancel(handle)
        assert backend.status(handle)[0] in ("stopping", "stopped")
        assert wait(backend, handle, timeout=30)[-1] == "stopped"
        answered = {r.id for r in backend.results(handle)}
        never_ran = {
            e["custom_id"]
            for e in file_lines(client, client.batches.retrieve(handle).error_file_id)
            if e["error"]["code"] == "batch_cancelled"
        }
        assert answered and never_ran and answered | never_ran == {r.id for r in recs}
        assert not answered & never_ran
        backend.cancel(handle)  # cancelling a finished batch is a no-op


def test_window_running_out_expires_the_batch_with_the_rest_missing() -> None:
    # The 24h window lasts 0.8 s; 150 requests at 20 ms each need 3 s.
    with emulator(instant_delay_s=0.02, seconds_per_hour=0.8 / 24) as (client, options):
        backend = OpenAIBatchBackend()
        recs = records(plain(150))
        handle = backend.submit("expire", MODEL, recs, options)
        assert wait(backend, handle)[-1] == "expired"
        answered = {r.id for r in backend.results(handle)}
        missing = {r.id for r in recs} - answered
        assert answered and missing
        errors = file_lines(client, client.batches.retrieve(handle).error_file_id)
        assert {e["custom_id"] for e in errors} == missing
        assert {e["error"]["code"] for e in errors} == {"batch_expired"}


def test_no_key_and_no_endpoint_is_a_config_error() -> None:
    with pytest.raises(ConfigError, match="OPENAI_API_KEY"):
        OpenAIBatchBackend().submit("j", MODEL, records(plain(1)), SubmitOptions())


def test_an_unreachable_endpoint_is_named_in_the_error() -> None:
    import socket

    with socket.socket() as sock:  # a port nothing listens on
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    backend = OpenAIBatchBackend()
    with pytest.raises(ProviderError, match=f"127.0.0.1:{port}/v1/files.*--endpoint-url"):
        backend.submit("j", MODEL, records(plain(1)), SubmitOptions(endpoint_url=f"http://127.0.0.1:{port}"))


def test_cli_submit_against_the_emulator_records_batch_priced_ledger_rows(tmp_path, ledger_path) -> None:
    import os
    import subprocess
    import sys

    from tokenomy.ledger.store import open_store

    path = tmp_path / "in.jsonl"
    path.write_text("\n".join(plain(60, max_tokens=6)) + "\n")
    with emulator() as (_, options):
        out = subprocess.run(
            [
                sys.executable,
                "-m",
                "tokenomy.cli",
                "batch",
                "submit",
                str(path),
                "--model",
                MODEL,
                "--backend",
                "openai",
                "--json",
                "--endpoint-url",
                options.endpoint_url,
                "--ledger",
                str(ledger_path),
            ],
            capture_output=True,
            text=True,
            timeout=300,
            env={k: v for k, v in os.environ.items() if not k.startswith("OPENAI_")},
        )
    assert out.returncode == 0, out.stderr
    job = [json.loads(x) for x in out.stdout.splitlines() if x.startswith("{")][-1]
    assert job["status"] == "completed" and job["done"] == 60
    rows = open_store(str(ledger_path)).query(
        "SELECT mode, input_tokens, output_tokens, cost_usd FROM usage_events WHERE batch_job_id = ?", [job["job_id"]]
    )
    assert len(rows) == 60 and {r["mode"] for r in rows} == {"batch"}
    for r in rows:
        usage = Usage(r["input_tokens"], r["output_tokens"])
        assert Decimal(str(r["cost_usd"])) == compute_cost(usage, MODEL, mode="batch").total_usd


def test_every_openai_batch_status_in_the_sdk_maps_to_a_normalised_state() -> None:
    from typing import get_args

    from openai.types import Batch

    from tokenomy.batch.openai_backend import STATUS_MAP

    statuses = set(get_args(Batch.model_fields["status"].annotation))
    assert len(statuses) == 8 and set(STATUS_MAP) == statuses
    assert set(STATUS_MAP.values()) <= set(STATES)


def test_status_and_results_show_the_stored_job_when_the_provider_is_down(tmp_path, ledger_path) -> None:
    import os
    import subprocess
    import sys

    path = tmp_path / "in.jsonl"
    path.write_text("\n".join(plain(5)) + "\n")
    env = {k: v for k, v in os.environ.items() if not k.startswith("OPENAI_")}
    base = [sys.executable, "-m", "tokenomy.cli", "batch"]
    with emulator(validating_seconds=60) as (_, options):
        out = subprocess.run(
            base
            + [
                "submit",
                str(path),
                "--model",
                MODEL,
                "--backend",
                "openai",
                "--detach",
                "--json",
                "--endpoint-url",
                options.endpoint_url,
                "--ledger",
                str(ledger_path),
            ],
            capture_output=True,
            text=True,
            timeout=120,
            env=env,
        )
        assert out.returncode == 0, out.stderr
        job_id = json.loads(out.stdout.splitlines()[0])["job_id"]
    # The emulator is gone: status and results used to fail outright; now they show what the ledger holds.
    status = subprocess.run(
        base + ["status", job_id, "--json", "--ledger", str(ledger_path)],
        capture_output=True,
        text=True,
        timeout=120,
        env=env,
    )
    assert status.returncode == 0 and json.loads(status.stdout)["status"] == "submitted", status.stderr
    assert "as last stored" in status.stderr and options.endpoint_url in status.stderr
    results = subprocess.run(
        base + ["results", job_id, "-o", str(tmp_path / "out.jsonl"), "--json", "--ledger", str(ledger_path)],
        capture_output=True,
        text=True,
        timeout=120,
        env=env,
    )
    assert results.returncode == 0 and json.loads(results.stdout)["missing"] == 5, results.stderr


def test_resume_starts_the_parts_an_interrupted_submit_never_sent(tmp_path) -> None:
    import subprocess
    import sys
    from pathlib import Path

    from tokenomy.batch.jobs import create_job, open_tables
    from tokenomy.ledger.store import open_store

    src, ledger = tmp_path / "in.jsonl", tmp_path / "ledger.duckdb"
    src.write_text("\n".join(plain(20)) + "\n")
    with emulator() as (client, options):
        # What `batch submit` stores before it uploads: a Ctrl-C or a kill during the upload leaves the job so.
        job = create_job(open_tables(str(ledger)), src, MODEL, "openai", options)
        tokenomy = str(Path(sys.executable).with_name("tokenomy"))
        # Before, resume said "still has parts running; wait first" and `batch wait` waited for ever.
        resumed = subprocess.run(
            [tokenomy, "batch", "resume", job.job_id, "--json", "--ledger", str(ledger)],
            capture_output=True,
            text=True,
            timeout=120,
        )
        assert resumed.returncode == 0, resumed.stderr
        answer = json.loads(resumed.stdout.splitlines()[-1])
        assert answer["status"] == "completed" and answer["done"] == 20 and answer["resubmitted"] == 20
        assert len(client.batches.list().data) == 1  # sent once
    events = [e for e in open_store(ledger).events() if e.batch_job_id == job.job_id]
    assert len(events) == 20 and {e.mode for e in events} == {"batch"}


def test_status_and_wait_say_a_killed_submit_was_cut_short_and_wait_ends(tmp_path) -> None:
    import os
    import subprocess
    import sys
    from datetime import timedelta

    from tokenomy.batch.jobs import create_job, open_tables
    from tokenomy.ledger.events import utcnow

    src, ledger = tmp_path / "in.jsonl", tmp_path / "ledger.duckdb"
    src.write_text("\n".join(plain(4)) + "\n")
    tables = open_tables(str(ledger))

    def cli(*args: str, timeout: float = 120) -> subprocess.CompletedProcess:
        argv = [sys.executable, "-m", "tokenomy.cli", "batch", *args, "--ledger", str(ledger)]
        return subprocess.run(argv, capture_output=True, text=True, timeout=timeout, env=dict(os.environ))

    with emulator() as (client, options):
        # What `batch submit` stores before it sends: this (live) process stands in for a submit still sending.
        job = create_job(tables, src, MODEL, "openai", options)
        running = cli("wait", job.job_id, "--timeout", "1", "--poll", "0.2")
        assert running.returncode == 1 and job.job_id in running.stdout, running.stderr
        assert "cut short" not in running.stdout
        live = cli("status", job.job_id, "--json")
        assert live.returncode == 0 and "submit_cut_short" not in json.loads(live.stdout), live.stderr
        # The submitting process was killed: its pid is gone.
        with subprocess.Popen(["true"]) as dead:
            dead.wait()
        tables.update_job(job.job_id, runner_pid=dead.pid)
        # Before, status said only "submitted", exit 0, and `batch wait` polled for ever.
        status = cli("status", job.job_id)
        assert status.returncode == 1 and "submit was cut short" in status.stdout, status.stdout
        assert f"tokenomy batch resume {job.job_id}` continues it" in status.stdout
        waited = cli("wait", job.job_id, "--poll", "0.2", "--json", timeout=60)
        assert waited.returncode == 1, waited.stderr
        said = json.loads(waited.stdout)
        assert (said["status"], said["submit_cut_short"], said["pending"]) == ("submitted", True, 4)
        # Its pid since given to a process that started after the submit did: not the submit.
        with subprocess.Popen(["sleep", "60"]) as other:
            tables.update_job(job.job_id, runner_pid=other.pid, heartbeat_at=utcnow() - timedelta(minutes=1))
            try:
                reused = cli("wait", job.job_id, "--poll", "0.2", timeout=60)
            finally:
                other.kill()
        assert reused.returncode == 1 and "submit was cut short" in reused.stdout, reused.stdout
        resumed = cli("resume", job.job_id, "--json")
        assert resumed.returncode == 0, resumed.stderr
        assert json.loads(resumed.stdout.splitlines()[-1])["status"] == "completed"
        assert len(client.batches.list().data) == 1


def test_a_resumed_job_that_completes_no_longer_reports_its_old_submit_failure(tmp_path) -> None:
    from tokenomy.batch.jobs import create_job, open_tables, refresh, submit_parts
    from tokenomy.batch.jobs import wait as wait_job
    from tokenomy.batch.resubmit import resubmit_missing

    class Down(OpenAIBatchBackend):
        def submit(self, *args, **kwargs):
            raise ProviderError("OpenAI file upload failed: 503: down", "server_error", status=503)

    src = tmp_path / "in.jsonl"
    src.write_text("\n".join(plain(5)) + "\n")
    tables = open_tables(str(tmp_path / "ledger.duckdb"))
    with emulator() as (_, options):
        job = create_job(tables, src, MODEL, "openai", options)
        with pytest.raises(ProviderError):
            submit_parts(tables, job, Down(options))
        failed = "submit failed: OpenAI file upload failed: 503: down"
        assert tables.get_job(job.job_id).message == failed
        # ...and `status` said only that: not that resume sends the records again (the part under its own key).
        hint = f"5 records have no result; `tokenomy batch resume {job.job_id}` sends them"
        assert refresh(tables, job.job_id, Down(options)).message == f"{failed}; {hint}"
        assert resubmit_missing(tables, job.job_id, OpenAIBatchBackend(options)) == 5
        job = wait_job(tables, job.job_id, 60, 0.05, OpenAIBatchBackend(options))
    # Before, `status` showed "completed" beside "- submit failed: ... 503: down".
    assert job.status == "completed" and job.done == 5 and job.message is None


def test_cancelling_a_job_whose_submit_was_cut_short_stops_it_and_resume_still_sends_it(tmp_path) -> None:
    from tokenomy.batch.jobs import cancel, create_job, open_tables
    from tokenomy.batch.jobs import wait as wait_job
    from tokenomy.batch.resubmit import resubmit_missing

    src = tmp_path / "in.jsonl"
    src.write_text("\n".join(plain(6)) + "\n")
    tables = open_tables(str(tmp_path / "ledger.duckdb"))
    with emulator() as (client, options):
        backend = OpenAIBatchBackend(options)
        # What `batch submit` stores before it uploads: a Ctrl-C or a kill during the upload leaves the job so.
        job = create_job(tables, src, MODEL, "openai", options)
        cancel(tables, job.job_id, backend)
        # Before, the unsent part stayed `submitted`: the job went back to `submitted` and `batch wait` never ended.
        job = wait_job(tables, job.job_id, 5, 0.05, backend)
        assert job.status == "stopped" and job.pending == 6 and client.batches.list().data == []
        assert resubmit_missing(tables, job.job_id, backend) == 6
        job = wait_job(tables, job.job_id, 60, 0.05, backend)
    assert job.status == "completed" and job.done == 6


def test_results_of_a_running_job_say_to_wait_not_to_resume(tmp_path) -> None:
    from tokenomy.batch.jobs import create_job, open_tables, submit_parts
    from tokenomy.batch.records import export_results
    from tokenomy.batch.resubmit import resubmit_missing

    src, out = tmp_path / "in.jsonl", tmp_path / "out.jsonl"
    src.write_text("\n".join(plain(3)) + "\n")
    tables = open_tables(str(tmp_path / "ledger.duckdb"))
    with emulator(validating_seconds=60) as (_, options):  # still validating while we look
        job = submit_parts(tables, create_job(tables, src, MODEL, "openai", options), OpenAIBatchBackend(options))
        assert export_results(tables, job.job_id, out)["missing"] == 3
        errors = {json.loads(line)["error"] for line in out.read_text().splitlines()}
        # Before: "`tokenomy batch resume JOB` resubmits it", and resume refused: "still has parts running".
        assert errors == {f"no result yet (job submitted); `tokenomy batch wait {job.job_id}`, then `results` again"}
        with pytest.raises(UsageError, match="still has parts running"):
            resubmit_missing(tables, job.job_id, OpenAIBatchBackend(options))


def test_missing_input_refuses_records_a_running_batch_may_still_answer(tmp_path) -> None:
    # `batch results --missing-input` of a job still running wrote every record "to submit again": sent again, each
    # was answered, and billed, twice. Records still being answered are refused, naming the wait; once the batch has
    # ended, only those it left unanswered are written.
    from tokenomy.batch.jobs import cancel, create_job, open_tables, submit_parts
    from tokenomy.batch.jobs import wait as wait_job
    from tokenomy.batch.records import export_missing

    src, rest = tmp_path / "in.jsonl", tmp_path / "rest.jsonl"
    src.write_text("\n".join(plain(3)) + "\n")
    tables = open_tables(str(tmp_path / "ledger.duckdb"))
    with emulator(validating_seconds=60) as (_, options):
        backend = OpenAIBatchBackend(options)
        job = submit_parts(tables, create_job(tables, src, MODEL, "openai", options), backend)
        with pytest.raises(UsageError, match=rf"3 records of {job.job_id} .* still being answered .* batch wait"):
            export_missing(tables, job.job_id, rest)
        assert not rest.exists()
        cancel(tables, job.job_id, backend)
        assert wait_job(tables, job.job_id, 30, 0.05, backend).status == "stopped"
        assert export_missing(tables, job.job_id, rest)["records"] == 3
    with pytest.raises(UsageError, match="still being answered"):  # a local job's live runner, likewise
        export_missing(tables, job.job_id, rest, runner_alive=True)


def test_a_job_cancelled_midway_ends_stopped_not_partially_completed(tmp_path) -> None:
    # `batch cancel` of a running batch that had answered some records ended the job `partially_completed`, with no
    # message: nothing said it was cancelled (a local job says `stopped`). It is `stopped` now, with what is pending.
    from tokenomy.batch.jobs import cancel, create_job, open_tables, submit_parts
    from tokenomy.batch.jobs import wait as wait_job
    from tokenomy.batch.resubmit import resubmit_missing

    src = tmp_path / "in.jsonl"
    src.write_text("\n".join(plain(200)) + "\n")
    tables = open_tables(str(tmp_path / "ledger.duckdb"))
    with emulator(instant_delay_s=0.02, local_model_max_records=0) as (client, options):
        backend = OpenAIBatchBackend(options)
        job = submit_parts(tables, create_job(tables, src, MODEL, "openai", options), backend)
        wait_until_answered(client, tables.parts(job.job_id)[0]["handle"], 10)
        cancel(tables, job.job_id, backend)
        job = wait_job(tables, job.job_id, 30, 0.05, backend)
        assert job.status == "stopped" and 0 < job.done < 200 and job.pending == 200 - job.done, job.to_json()
        assert f"stopped with {job.pending} records pending" in job.message
        assert resubmit_missing(tables, job.job_id, backend) == job.pending
        job = wait_job(tables, job.job_id, 60, 0.05, backend)
    assert (job.status, job.done, job.message) == ("completed", 200, None)


def test_a_batch_the_provider_cancelled_names_resume_and_a_part_sent_again_is_no_longer_its_reason(tmp_path) -> None:
    # A batch cancelled at the provider (its console, another tool), not by `batch cancel`, said only "cancelled: N of
    # its M requests never ran", not that resume sends them. And once resume had sent them again as part 1, the job
    # still showed part 0's note beside part 1's, though part 0 no longer held any record without a result.
    from tokenomy.batch.jobs import create_job, open_tables, submit_parts
    from tokenomy.batch.jobs import wait as wait_job
    from tokenomy.batch.resubmit import resubmit_missing

    def cancel_upstream(client, handle, at_least):
        wait_until_answered(client, handle, at_least)
        client.batches.cancel(handle)

    src = tmp_path / "in.jsonl"
    src.write_text("\n".join(plain(200)) + "\n")
    tables = open_tables(str(tmp_path / "ledger.duckdb"))
    with emulator(instant_delay_s=0.02, local_model_max_records=0) as (client, options):
        backend = OpenAIBatchBackend(options)
        job = submit_parts(tables, create_job(tables, src, MODEL, "openai", options), backend)
        cancel_upstream(client, tables.parts(job.job_id)[0]["handle"], 10)
        job = wait_job(tables, job.job_id, 30, 0.05, backend)
        assert 0 < job.done < 200 and job.pending == 200 - job.done, job.to_json()
        hint = f"{job.pending} records have no result; `tokenomy batch resume {job.job_id}` sends them"
        assert job.message == f"cancelled: {job.pending} of its 200 requests never ran; {hint}", job.message
        first = job.done
        assert resubmit_missing(tables, job.job_id, backend) == 200 - first
        cancel_upstream(client, tables.parts(job.job_id)[1]["handle"], first + 1 if first < 100 else 1)
        job = wait_job(tables, job.job_id, 30, 0.05, backend)
    assert 0 < job.pending < 200 - first, job.to_json()
    hint = f"{job.pending} records have no result; `tokenomy batch resume {job.job_id}` sends them"
    assert job.message == f"part 1: cancelled: {job.pending} of its {200 - first} requests never ran; {hint}"


def test_status_of_a_finished_job_reads_its_parts_and_results_once(tmp_path, monkeypatch) -> None:
    # `batch status` of a job that ended with a part the provider cancelled read its parts five times and its results
    # seven (for the parts' notes, the records without a result, those resume holds back, the throttled ones, the
    # prompts to forget) and wrote the job unchanged: 22 statements, each on a connection of its own, ~0.5-1 s on a
    # 3,000-record job. It reads each once, writes nothing, and says the same.
    from typer.testing import CliRunner

    from tokenomy.batch.job_tables import JobTables
    from tokenomy.batch.jobs import create_job, open_tables, submit_parts
    from tokenomy.batch.jobs import wait as wait_job
    from tokenomy.cli import app

    src, ledger = tmp_path / "in.jsonl", str(tmp_path / "ledger.duckdb")
    src.write_text("\n".join(plain(200)) + "\n")
    tables = open_tables(ledger)
    with emulator(instant_delay_s=0.02, local_model_max_records=0) as (client, options):
        backend = OpenAIBatchBackend(options)
        job = submit_parts(tables, create_job(tables, src, MODEL, "openai", options), backend)
        handle = tables.parts(job.job_id)[0]["handle"]
        wait_until_answered(client, handle, 10)
        client.batches.cancel(handle)
        job = wait_job(tables, job.job_id, 30, 0.05, backend)
    hint = f"{job.pending} records have no result; `tokenomy batch resume {job.job_id}` sends them"
    said = f"cancelled: {job.pending} of its 200 requests never ran; {hint}"
    assert job.status == "partially_completed" and 0 < job.pending < 200 and job.message == said, job.to_json()

    statements: list[str] = []

    def counting(run):
        def counted(self, sql, params=()):
            statements.append(sql)
            return run(self, sql, params)

        return counted

    monkeypatch.setattr(JobTables, "query", counting(JobTables.query))
    monkeypatch.setattr(JobTables, "execute", counting(JobTables.execute))
    shown = CliRunner().invoke(app, ["batch", "status", job.job_id, "--ledger", ledger, "--json"])
    assert shown.exit_code == 0, shown.output
    assert {k: v for k, v in json.loads(shown.output).items() if k in ("status", "done", "pending", "message")} == {
        "status": "partially_completed",
        "done": job.done,
        "pending": job.pending,
        "message": said,
    }
    parts = [sql for sql in statements if "FROM batch_parts" in sql]
    results = [sql for sql in statements if "FROM batch_results" in sql and "SUM(" not in sql]  # SUM: the job's counts
    writes = [sql for sql in statements if sql.lstrip().startswith(("UPDATE", "INSERT", "DELETE"))]
    assert (len(parts), len(results), writes) == (1, 1, []), statements


def test_a_batch_create_whose_answer_was_lost_is_found_not_made_twice(tmp_path, ledger_path) -> None:
    # OpenAI accepted POST /v1/batches and the answer was lost. The SDK's own retry made a second batch (OpenAI has
    # no idempotency key), and so did resume after a failed submit: both ran and were billed; one was never collected.
    from helpers.lossy_proxy import LossyProxy
    from tokenomy.batch.jobs import create_job, open_tables, submit_parts
    from tokenomy.batch.jobs import wait as wait_job
    from tokenomy.batch.resubmit import resubmit_missing
    from tokenomy.ledger.store import open_store

    path = tmp_path / "in.jsonl"
    path.write_text("\n".join(plain(3)) + "\n")
    tables = open_tables(str(ledger_path))
    with emulator() as (client, options):
        with LossyProxy(options.endpoint_url, b"POST /v1/batches ", lose=1) as proxy:  # the first answer lost
            lossy = SubmitOptions(endpoint_url=proxy.url)
            handle = OpenAIBatchBackend().submit("once", MODEL, records(plain(2)), lossy)
            assert proxy.lost == 1
        assert [b.id for b in client.batches.list()] == [handle]
        # Every answer lost, the batches listed too: the submit fails, and resume (the provider reachable) finds it.
        with LossyProxy(options.endpoint_url, (b"POST /v1/batches ", b"GET /v1/batches"), lose=10**6) as proxy:
            lossy = SubmitOptions(endpoint_url=proxy.url)
            job = create_job(tables, path, MODEL, "openai", lossy)
            with pytest.raises(ProviderError, match="batch create failed"):
                submit_parts(tables, job, OpenAIBatchBackend(lossy))
            assert proxy.lost >= 1
        resubmit_missing(tables, job.job_id, OpenAIBatchBackend(options))
        job = wait_job(tables, job.job_id, 60, 0.05, OpenAIBatchBackend(options))
        made = [b for b in client.batches.list() if b.metadata.get("tokenomy_job") == job.job_id]
    assert len(made) == 1, [b.id for b in made]
    assert job.status == "completed" and job.done == 3, job.to_json()
    rows = [e for e in open_store(str(ledger_path)).events() if e.batch_job_id == job.job_id]
    assert sorted(e.request_id for e in rows) == ["r0", "r1", "r2"]


def test_cancel_stops_the_batch_a_submit_killed_mid_create_had_made(tmp_path) -> None:
    # The process died after OpenAI accepted the create, before the handle was stored: cancel said "cancelled
    # before it was sent" while the batch ran on, and was billed.
    from tokenomy.batch.jobs import SENDING, cancel, create_job, open_tables, part_key

    src = tmp_path / "in.jsonl"
    src.write_text("\n".join(plain(3)) + "\n")
    tables = open_tables(str(tmp_path / "ledger.duckdb"))
    with emulator(validating_seconds=30) as (client, options):
        job = create_job(tables, src, MODEL, "openai", options)
        tables.update_part(job.job_id, 0, message=SENDING)  # as submit_parts leaves it just before the create
        made = OpenAIBatchBackend().submit(job.job_id, MODEL, records(plain(3)), options, part_key(job.job_id, 0))
        cancel(tables, job.job_id, OpenAIBatchBackend(options))
        assert client.batches.retrieve(made).status in ("cancelling", "cancelled")
    [part] = tables.parts(job.job_id)
    assert part["handle"] == made and part["status"] == "stopping"


def test_a_job_whose_second_part_failed_to_submit_is_still_running_and_cancel_stops_its_first(tmp_path) -> None:
    # Part 0 was made, part 1's upload failed: the job was stored `partially_completed`, a final state, while part 0
    # ran on at the provider. `batch list` showed it ended, and `batch cancel` returned at once, stopping nothing.
    from tokenomy.batch.jobs import cancel, open_tables, prepare_job, store_job, submit_parts

    class SecondDown(OpenAIBatchBackend):
        calls = 0

        def submit(self, *args, **kwargs):
            SecondDown.calls += 1
            if SecondDown.calls == 2:
                raise ProviderError("OpenAI file upload failed: 503: down", "server_error", status=503)
            return super().submit(*args, **kwargs)

    src = tmp_path / "in.jsonl"
    src.write_text("\n".join(plain(6)) + "\n")
    tables = open_tables(str(tmp_path / "ledger.duckdb"))
    with emulator(validating_seconds=30) as (client, options):
        job, [part], _ = prepare_job(src, MODEL, "openai", options)
        store_job(tables, job, [part[:3], part[3:]])  # two provider jobs, as a file past the quota makes
        with pytest.raises(ProviderError):
            submit_parts(tables, job, SecondDown(options))
        assert tables.get_job(job.job_id).status == "in_progress"
        assert cancel(tables, job.job_id, OpenAIBatchBackend(options)).status == "stopping"
        [made] = client.batches.list().data
        assert client.batches.retrieve(made.id).status in ("cancelling", "cancelled")


def test_an_answer_whose_body_has_no_usage_is_recorded_with_estimated_tokens_not_at_zero(
    tmp_path, monkeypatch, caplog
) -> None:
    # Some OpenAI-compatible batch servers answer without `usage`. The record was stored as 0 tokens at $0: an
    # answer the provider billed looked free in every report.
    from tokenomy.batch.jobs import create_job, open_tables, submit_parts
    from tokenomy.batch.jobs import wait as wait_job
    from tokenomy.caching.placement import estimate_tokens
    from tokenomy.emulate.openai_batch import OpenAIBatchEmulator
    from tokenomy.ledger.store import open_store

    add_file = OpenAIBatchEmulator.add_file

    def without_usage(self, name, data, purpose):  # the output file as such a server writes it, for r1 and r2
        if name.endswith("_output.jsonl"):
            lines = [json.loads(x) for x in data.decode().splitlines()]
            for line in lines:
                if line["custom_id"] in ("r1", "r2"):
                    del line["response"]["body"]["usage"]
            data = "".join(json.dumps(x) + "\n" for x in lines).encode()
        return add_file(self, name, data, purpose)

    monkeypatch.setattr(OpenAIBatchEmulator, "add_file", without_usage)
    src, ledger = tmp_path / "in.jsonl", tmp_path / "ledger.duckdb"
    src.write_text("\n".join(plain(4, max_tokens=6)) + "\n")
    tables = open_tables(str(ledger))
    warnings = caplog.at_level("WARNING", logger="tokenomy.batch.records")
    with emulator(local_model_max_records=0) as (_, options), warnings:
        job = submit_parts(tables, create_job(tables, src, MODEL, "openai", options))
        job = wait_job(tables, job.job_id, timeout_s=60, poll_s=0.05)
    assert job.status == "completed"
    events = {e.request_id: e for e in open_store(ledger).events() if e.batch_job_id == job.job_id}
    answers = {k: v["text"] for k, v in tables.results(job.job_id).items()}
    assert set(events) == {"r0", "r1", "r2", "r3"}
    for rid in ("r1", "r2"):
        prompt = json.loads(plain(4)[int(rid[1:])])["prompt"]
        e = events[rid]
        assert (e.input_tokens, e.output_tokens) == (estimate_tokens(prompt), estimate_tokens(answers[rid]))
        assert e.output_tokens > 0 and e.cost_usd > 0
        assert e.cost_usd == compute_cost(Usage(e.input_tokens, e.output_tokens), MODEL, mode="batch").total_usd
        assert f"batch record {rid} of job {job.job_id}" in caplog.text and "estimated" in caplog.text
    assert "batch record r0 " not in caplog.text  # answers with usage keep the provider's counts
    assert events["r0"].input_tokens > 0 and events["r0"].cost_usd > 0


def test_a_result_line_with_a_count_no_answer_can_have_is_that_records_failure_the_rest_kept() -> None:
    # The output file's counts were read as sent: text in prompt_tokens raised a TypeError out of `results` (every
    # line of the job lost), `true` was 1 token, a negative count a negative cost. The sync path refuses such counts
    # (usage_counts.usage_count, checked_counts); a batch line with one is now its record's failure, naming the count.
    def line(rid: str, **usage) -> dict:
        body = {
            "model": MODEL,
            "choices": [{"message": {"content": "hi"}}],
            "usage": {"prompt_tokens": 10, "completion_tokens": 2, **usage},
        }
        return {"custom_id": rid, "response": {"status_code": 200, "body": body}}

    good = OpenAIBatchBackend._record(line("r0"), MODEL)
    assert good.ok and good.usage == Usage(10, 2)
    bad = {
        "r1": ({"prompt_tokens": "10"}, "prompt_tokens '10'"),
        "r2": ({"completion_tokens": True}, "True"),
        "r3": ({"completion_tokens": 2.5}, "completion_tokens 2.5"),
        "r4": ({"prompt_tokens_details": {"cached_tokens": "3"}}, "cached_tokens '3'"),
        "r5": ({"prompt_tokens": -1}, "input_tokens=-1"),
        "r6": ({"completion_tokens": 2**31}, str(2**31)),
    }
    for rid, (usage, named) in bad.items():
        result = OpenAIBatchBackend._record(line(rid, **usage), MODEL)
        assert result is not None and not result.ok and result.usage is None and result.raw["custom_id"] == rid
        assert result.error.startswith("unreadable usage:") and named in result.error, result.error


def test_an_output_line_that_is_not_json_is_its_records_failure_the_rest_kept(tmp_path, monkeypatch) -> None:
    # `results` read each line with a bare json.loads: one garbled line of the output file was a traceback out of
    # `batch wait` that lost every answer of the job. Such a line is now its record's failure, naming the line; a
    # line too garbled to show its custom_id is the failure of the request no readable line answers.
    from tokenomy.batch.jobs import create_job, open_tables, submit_parts
    from tokenomy.batch.jobs import wait as wait_job
    from tokenomy.emulate.openai_batch import OpenAIBatchEmulator

    add_file = OpenAIBatchEmulator.add_file

    def garbled(self, name, data, purpose):  # r1's line cut short, r2's bytes garbled past reading its id
        if name.endswith("_output.jsonl"):
            lines = data.decode().splitlines()
            index = {json.loads(x)["custom_id"]: n for n, x in enumerate(lines)}
            lines[index["r1"]] = lines[index["r1"]][:80]
            lines[index["r2"]] = "\x00\x1f" + lines[index["r2"]][40:].replace('"', "'")
            data = ("\n".join(lines) + "\n").encode()
        return add_file(self, name, data, purpose)

    monkeypatch.setattr(OpenAIBatchEmulator, "add_file", garbled)
    src = tmp_path / "in.jsonl"
    src.write_text("\n".join(plain(4, max_tokens=6)) + "\n")
    tables = open_tables(str(tmp_path / "ledger.duckdb"))
    with emulator(local_model_max_records=0) as (_, options):
        job = submit_parts(tables, create_job(tables, src, MODEL, "openai", options))
        job = wait_job(tables, job.job_id, timeout_s=60, poll_s=0.05)
    rows = tables.results(job.job_id)
    assert job.status == "partially_completed" and (job.done, job.failed) == (2, 2), job.to_json()
    assert rows["r0"]["ok"] and rows["r3"]["ok"] and not rows["r1"]["ok"] and not rows["r2"]["ok"]
    assert rows["r1"]["error"].startswith("unreadable output line (line 2 of the output file file-"), rows["r1"]
    assert "no readable line answers this record, and 1 name none (line 3 of the output file" in rows["r2"]["error"]


def test_raw_line_separators_inside_an_answer_and_a_misshapen_line_lose_nothing(tmp_path, monkeypatch) -> None:
    # The output file was split with str.splitlines(), which also cuts at U+2028, U+2029 and U+0085: JSON may hold
    # them raw in a string, so an answered record came back as an unreadable line. A line that is JSON of another
    # shape ("choices": [null]) let an AttributeError out of `results`, losing every answer of the job; it is now
    # its record's failure, naming the line.
    from tokenomy.batch.jobs import create_job, open_tables, submit_parts
    from tokenomy.batch.jobs import wait as wait_job
    from tokenomy.emulate.openai_batch import OpenAIBatchEmulator

    add_file = OpenAIBatchEmulator.add_file

    def rewritten(self, name, data, purpose):  # r0 and r1 answered with raw separators, r2's choices misshapen
        if name.endswith("_output.jsonl"):
            items = {(item := json.loads(x))["custom_id"]: item for x in data.decode().splitlines()}
            items["r0"]["response"]["body"]["choices"][0]["message"]["content"] = "one\u2028two\u2029three"
            items["r1"]["response"]["body"]["choices"][0]["message"]["content"] = "caf\u00e9\x85ok"
            items["r2"]["response"]["body"]["choices"] = [None]
            data = "".join(json.dumps(item, ensure_ascii=False) + "\n" for item in items.values()).encode()
        return add_file(self, name, data, purpose)

    monkeypatch.setattr(OpenAIBatchEmulator, "add_file", rewritten)
    src = tmp_path / "in.jsonl"
    src.write_text("\n".join(plain(4, max_tokens=6)) + "\n")
    tables = open_tables(str(tmp_path / "ledger.duckdb"))
    with emulator(local_model_max_records=0) as (_, options):
        job = submit_parts(tables, create_job(tables, src, MODEL, "openai", options))
        job = wait_job(tables, job.job_id, timeout_s=60, poll_s=0.05)
    rows = tables.results(job.job_id)
    assert (job.done, job.failed) == (3, 1), job.to_json()
    assert rows["r0"]["ok"] and rows["r1"]["ok"] and rows["r3"]["ok"]
    assert rows["r2"]["error"].startswith("malformed output line (line 3 of the output file file-"), rows["r2"]


def test_an_endpoint_from_the_environment_is_kept_with_the_job(tmp_path, ledger_path, monkeypatch) -> None:
    """A job submitted with OPENAI_BASE_URL set (an OpenAI-compatible server, the emulator) kept no endpoint: `batch
    wait` or `resume` from a shell without the variable asked api.openai.com for a batch it never had. The address is
    now stored with the job, as --endpoint-url is, and a later process without the variable finds the job's server."""
    from tokenomy.batch.jobs import create_job, open_tables, submit_parts
    from tokenomy.batch.jobs import wait as wait_job

    path = tmp_path / "in.jsonl"
    path.write_text("\n".join(plain(3, max_tokens=4)) + "\n")
    monkeypatch.setenv("OPENAI_API_KEY", "x")
    tables = open_tables(str(ledger_path))
    with emulator() as (_, options):
        monkeypatch.setenv("OPENAI_BASE_URL", options.endpoint_url)
        job = submit_parts(tables, create_job(tables, path, MODEL, "openai"))
        assert job.options["endpoint_url"] == options.endpoint_url
        monkeypatch.delenv("OPENAI_BASE_URL")
        job = wait_job(tables, job.job_id, timeout_s=30, poll_s=0.05)
    assert (job.status, job.done) == ("completed", 3)


def test_an_endpoint_password_is_not_kept_in_the_ledger_and_is_taken_from_the_environment(tmp_path, ledger_path):
    """A job kept its endpoint as given, so a proxy's password in --endpoint-url or OPENAI_BASE_URL
    (https://user:PASSWORD@proxy/v1) sat in batch_jobs.options. The ledger now keeps it as user:***; a later command
    takes the password from OPENAI_BASE_URL, and without it says so."""
    import os
    import subprocess
    import sys

    from tokenomy.ledger.store import open_store

    path = tmp_path / "in.jsonl"
    path.write_text("\n".join(plain(3, max_tokens=4)) + "\n")
    env = {k: v for k, v in os.environ.items() if not k.startswith("OPENAI_")}
    env["OPENAI_API_KEY"] = "x"
    base = [sys.executable, "-m", "tokenomy.cli", "batch"]
    with emulator() as (_, options):
        secret_url = options.endpoint_url.replace("http://", "http://proxyuser:hunter2Proxy@")
        submitted = subprocess.run(
            base
            + [
                "submit",
                str(path),
                "--model",
                MODEL,
                "--backend",
                "openai",
                "--json",
                "--detach",
                "--endpoint-url",
                secret_url,
                "--ledger",
                str(ledger_path),
            ],
            capture_output=True,
            text=True,
            timeout=120,
            env=env,
        )
        assert submitted.returncode == 0, submitted.stderr
        job_id = json.loads(submitted.stdout.splitlines()[0])["job_id"]
        [row] = open_store(str(ledger_path)).query("SELECT options FROM batch_jobs")
        assert "hunter2Proxy" not in row["options"] and "proxyuser:***@" in row["options"], row["options"]
        waited = subprocess.run(
            base + ["wait", job_id, "--json", "--ledger", str(ledger_path)],
            capture_output=True,
            text=True,
            timeout=120,
            env=env,
        )
        assert waited.returncode == 2 and "OPENAI_BASE_URL" in waited.stderr, waited.stderr
        assert "hunter2Proxy" not in waited.stderr
        waited = subprocess.run(
            base + ["wait", job_id, "--json", "--ledger", str(ledger_path)],
            capture_output=True,
            text=True,
            timeout=120,
            env={**env, "OPENAI_BASE_URL": secret_url},
        )
    assert waited.returncode == 0, waited.stderr
    assert json.loads(waited.stdout)["status"] == "completed" and json.loads(waited.stdout)["done"] == 3


def test_a_line_naming_no_record_is_not_counted_as_a_record_to_send_again(tmp_path) -> None:
    # A job holding an output line that named no record (kept as its unmatched line) said, once it ended,
    # "-1 records were throttled or hit a server error: `tokenomy batch resume` sends them again": that line's row
    # was counted among the records with a final result. Nothing was throttled; the job's message says nothing of it.
    from tokenomy.batch.backends import RecordResult
    from tokenomy.batch.jobs import create_job, open_tables, submit_parts
    from tokenomy.batch.jobs import wait as wait_job

    class IdLost(OpenAIBatchBackend):  # r1's output line came back too garbled to name it
        def results(self, handle):
            for result in super().results(handle):
                if result.id == "r1":
                    where = "line 2 of the output file file-x"
                    result = RecordResult(where, error=f"unreadable output line ({where}): {{garbled")
                yield result

    src = tmp_path / "in.jsonl"
    src.write_text("\n".join(plain(4)) + "\n")
    tables = open_tables(str(tmp_path / "ledger.duckdb"))
    with emulator() as (_, options):
        backend = IdLost(options)
        job = submit_parts(tables, create_job(tables, src, MODEL, "openai", options), backend)
        job = wait_job(tables, job.job_id, 60, 0.05, backend)
    assert (job.done, job.failed, job.pending, job.unmatched) == (3, 1, 0, 1), job.to_json()
    assert "throttled" not in (job.message or ""), job.message


def test_a_job_whose_every_record_the_provider_refused_ends_failed_and_submit_exits_1(tmp_path, ledger_path) -> None:
    # Every request was refused (400: a `stop` that is not text, which only the provider checks): the job ended
    # "partially_completed" and `batch submit` exited 0, though no record was answered, where the command's help
    # promises exit 1 for a job that ended with none. Each record's error is kept, in the provider's words.
    import os
    import subprocess
    import sys

    body = {"model": MODEL, "messages": [{"role": "user", "content": "hi"}], "stop": 3}
    path = tmp_path / "in.jsonl"
    path.write_text(
        "".join(
            json.dumps({"custom_id": f"r{i}", "method": "POST", "url": "/v1/chat/completions", "body": body}) + "\n"
            for i in range(3)
        )
    )
    with emulator() as (_, options):
        out = subprocess.run(
            [
                sys.executable,
                "-m",
                "tokenomy.cli",
                "batch",
                "submit",
                str(path),
                "--model",
                MODEL,
                "--backend",
                "openai",
                "--json",
                "--endpoint-url",
                options.endpoint_url,
                "--ledger",
                str(ledger_path),
            ],
            capture_output=True,
            text=True,
            timeout=300,
            env={k: v for k, v in os.environ.items() if not k.startswith("OPENAI_")},
        )
    job = [json.loads(x) for x in out.stdout.splitlines() if x.startswith("{")][-1]
    assert (job["status"], job["done"], job["failed"], job["pending"]) == ("failed", 0, 3, 0), job
    assert out.returncode == 1, out.stderr
    results = tmp_path / "out.jsonl"
    subprocess.run(
        [
            sys.executable,
            "-m",
            "tokenomy.cli",
            "batch",
            "results",
            job["job_id"],
            "-o",
            str(results),
            "--ledger",
            str(ledger_path),
        ],
        check=True,
        capture_output=True,
        timeout=120,
    )
    lines = [json.loads(x) for x in results.read_text().splitlines()]
    assert [(x["id"], x["ok"]) for x in lines] == [("r0", False), ("r1", False), ("r2", False)]
    assert all(x["error"].startswith("400: Invalid 'stop'") for x in lines), lines
    # Resume sends none of them (sent unchanged they would be refused again); before, it said nothing of why.
    resumed = subprocess.run(
        [sys.executable, "-m", "tokenomy.cli", "batch", "resume", job["job_id"], "--ledger", str(ledger_path)],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert resumed.returncode == 1 and "resubmitted 0 records" in resumed.stdout, resumed.stderr
    note = " ".join(resumed.stderr.split())
    assert "3 records failed for good (record r0: 400: Invalid 'stop'" in note, note
    assert f"`tokenomy batch results {job['job_id']} -o FILE` lists each with its error" in note


def test_records_an_expired_batch_never_ran_say_so_in_results_and_the_job_says_why(tmp_path) -> None:
    # An OpenAI batch whose 24h window ran out ended "partially_completed" with no message, and each record it never
    # ran read "no result (job partially_completed)" in `batch results`: the provider's reason (the window expired)
    # was nowhere. The job's message and each such record's line now say it, and that resume sends the record.
    from tokenomy.batch.jobs import create_job, open_tables, submit_parts
    from tokenomy.batch.jobs import wait as wait_job
    from tokenomy.batch.records import export_results

    src = tmp_path / "in.jsonl"
    src.write_text("\n".join(plain(150)) + "\n")
    tables = open_tables(str(tmp_path / "ledger.duckdb"))
    with emulator(instant_delay_s=0.02, seconds_per_hour=0.8 / 24) as (_, options):
        backend = OpenAIBatchBackend(options)
        job = submit_parts(tables, create_job(tables, src, MODEL, "openai", options), backend)
        job = wait_job(tables, job.job_id, 60, 0.05, backend)
    assert job.status == "partially_completed" and 0 < job.done < 150 and job.pending == 150 - job.done
    assert f"expired: {job.pending} of its 150 requests never ran" in (job.message or ""), job.message
    # `status` named no fix, though resume sends them.
    hint = f"; {job.pending} records have no result; `tokenomy batch resume {job.job_id}` sends them"
    assert job.message.endswith(hint), job.message
    export_results(tables, job.job_id, tmp_path / "out.jsonl")
    lines = [json.loads(x) for x in (tmp_path / "out.jsonl").read_text().splitlines()]
    missing = [x for x in lines if not x["ok"]]
    assert len(missing) == job.pending and [x["id"] for x in lines] == [f"r{i}" for i in range(150)]
    assert all(x["error"].startswith("not run: its batch expired") and "batch resume" in x["error"] for x in missing)


def test_a_batch_refused_at_validation_names_the_record_of_each_line_it_names(tmp_path, monkeypatch) -> None:
    # OpenAI's validation names a line of the file Tokenomy uploaded for the part ("line 2: ..."), which the user never
    # sees and which is not line 2 of their input: the job's message sent them to the wrong record. It now names the
    # record each such line holds.
    from tokenomy.batch.jobs import create_job, open_tables, submit_parts
    from tokenomy.batch.jobs import wait as wait_job
    from tokenomy.emulate.openai_batch import OpenAIBatchEmulator

    def refuse_line_2(self, batch):  # as OpenAI's validation fails a batch: its errors, each naming a line
        error = {"code": "invalid_request", "message": "The request is not valid.", "param": None, "line": 2}
        batch["errors"] = {"object": "list", "data": [error]}
        self._set(batch, "failed")

    monkeypatch.setattr(OpenAIBatchEmulator, "_validate", refuse_line_2)
    src = tmp_path / "in.jsonl"
    src.write_text("\n".join(['{"id": "first", "prompt": "hi"}', "", '{"id": "second", "prompt": "hello"}']) + "\n")
    tables = open_tables(str(tmp_path / "ledger.duckdb"))
    with emulator() as (_, options):
        job = submit_parts(tables, create_job(tables, src, MODEL, "openai", options))
        job = wait_job(tables, job.job_id, 60, 0.05)
    assert job.status == "failed" and job.pending == 2
    assert job.message == (
        "refused at validation: line 2 of the batch's input file (record 'second'): The request is not valid."
    ), job.message


def test_a_provider_outage_while_waiting_says_the_job_runs_on_and_how_to_follow_it(tmp_path) -> None:
    # `batch submit` (or `wait`) whose status poll failed (a 503 past the SDK's retries) ended with the provider's
    # error alone: the batch was made and runs on, but nothing said so, and a user submitting the file again has
    # every record run, and billed, twice. The error now names the job and the command that follows it.
    from tokenomy.batch.jobs import create_job, open_tables, submit_parts
    from tokenomy.batch.jobs import wait as wait_job

    class Down(OpenAIBatchBackend):
        def status(self, handle):
            raise ProviderError("OpenAI batch retrieve failed: 503: unavailable", "server_error", status=503)

    src = tmp_path / "in.jsonl"
    src.write_text("\n".join(plain(3)) + "\n")
    tables = open_tables(str(tmp_path / "ledger.duckdb"))
    with emulator(validating_seconds=30) as (_, options):
        job = submit_parts(tables, create_job(tables, src, MODEL, "openai", options), OpenAIBatchBackend(options))
        with pytest.raises(ProviderError) as raised:
            wait_job(tables, job.job_id, 5, 0.05, Down(options))
    said = str(raised.value)
    assert said.startswith("OpenAI batch retrieve failed: 503: unavailable") and raised.value.kind == "server_error"
    assert f"`tokenomy batch wait {job.job_id}`" in said and "twice" in said, said


def test_a_garbled_output_line_that_shows_its_id_and_usage_is_billed_in_the_ledger(
    tmp_path, ledger_path, monkeypatch
) -> None:
    # r1's answer came back garbled in its text (a raw control character), its custom_id and usage still whole: it
    # was stored failed with no usage, so a call OpenAI billed was missing from the ledger and the job's cost.
    import subprocess
    import sys

    from tokenomy.emulate.openai_batch import OpenAIBatchEmulator
    from tokenomy.ledger.store import open_store

    add_file, billed = OpenAIBatchEmulator.add_file, {}

    def garbled(self, name, data, purpose):
        if name.endswith("_output.jsonl"):
            lines = data.decode().splitlines()
            for n, line in enumerate(lines):
                if json.loads(line)["custom_id"] == "r1":
                    billed.update(json.loads(line)["response"]["body"]["usage"])
                    lines[n] = line.replace('"content": "', '"content": "\x01', 1)
            data = ("\n".join(lines) + "\n").encode()
        return add_file(self, name, data, purpose)

    monkeypatch.setattr(OpenAIBatchEmulator, "add_file", garbled)
    src, out = tmp_path / "in.jsonl", tmp_path / "out.jsonl"
    src.write_text("\n".join(plain(3, max_tokens=6)) + "\n")
    tokenomy = [sys.executable, "-m", "tokenomy.cli", "batch"]
    with emulator(local_model_max_records=0) as (_, options):
        done = subprocess.run(
            tokenomy
            + [
                "submit",
                str(src),
                "--model",
                MODEL,
                "--backend",
                "openai",
                "--json",
                "--endpoint-url",
                options.endpoint_url,
                "--ledger",
                str(ledger_path),
            ],
            capture_output=True,
            text=True,
            timeout=300,
        )
    job = json.loads(done.stdout.splitlines()[-1])
    assert (job["done"], job["failed"]) == (2, 1), done.stdout + done.stderr
    rows = {
        r["request_id"]: r
        for r in open_store(str(ledger_path)).query(
            "SELECT request_id, input_tokens, output_tokens, cost_usd FROM usage_events WHERE batch_job_id = ?",
            [job["job_id"]],
        )
    }
    assert set(rows) == {"r0", "r1", "r2"} and billed["prompt_tokens"] > 0
    assert (rows["r1"]["input_tokens"], rows["r1"]["output_tokens"]) == (
        billed["prompt_tokens"],
        billed["completion_tokens"],
    )
    cost = compute_cost(Usage(billed["prompt_tokens"], billed["completion_tokens"]), MODEL, mode="batch").total_usd
    assert Decimal(str(rows["r1"]["cost_usd"])) == cost
    assert Decimal(str(job["cost_usd"])) == sum(Decimal(str(r["cost_usd"])) for r in rows.values())
    subprocess.run(
        tokenomy + ["results", job["job_id"], "-o", str(out), "--ledger", str(ledger_path)],
        check=True,
        capture_output=True,
        timeout=120,
    )
    r1 = next(x for x in map(json.loads, out.read_text().splitlines()) if x["id"] == "r1")
    assert not r1["ok"] and r1["error"].startswith("unreadable output line") and r1["cost_usd"] == str(cost)


def test_ledger_rows_of_a_batch_collected_later_are_timestamped_when_openai_completed_it(tmp_path, ledger_path) -> None:
    # A batch collected hours after it completed was recorded at the collection: its calls landed in the wrong hour
    # (or day, and budget window). They are now recorded at the batch's completed_at, in UTC.
    import subprocess
    import sys
    from datetime import UTC, datetime

    from tokenomy.ledger.store import open_store

    src = tmp_path / "in.jsonl"
    src.write_text("\n".join(plain(3, max_tokens=6)) + "\n")
    tokenomy = [sys.executable, "-m", "tokenomy.cli", "batch"]
    with emulator(local_model_max_records=0) as (client, options):
        sent = subprocess.run(
            tokenomy
            + [
                "submit",
                str(src),
                "--model",
                MODEL,
                "--backend",
                "openai",
                "--detach",
                "--json",
                "--endpoint-url",
                options.endpoint_url,
                "--ledger",
                str(ledger_path),
            ],
            capture_output=True,
            text=True,
            timeout=300,
        )
        job_id = json.loads(sent.stdout.splitlines()[0])["job_id"]
        [batch] = client.batches.list().data
        while client.batches.retrieve(batch.id).status != "completed":
            time.sleep(0.05)
        time.sleep(2.2)  # collected a while after
        done = subprocess.run(
            tokenomy + ["wait", job_id, "--json", "--poll", "0.1", "--ledger", str(ledger_path)],
            capture_output=True,
            text=True,
            timeout=300,
        )
        assert done.returncode == 0, done.stderr
        completed = datetime.fromtimestamp(client.batches.retrieve(batch.id).completed_at, UTC)
    events = [e for e in open_store(str(ledger_path)).events() if e.batch_job_id == job_id]
    assert len(events) == 3 and {e.ts for e in events} == {completed}, (events[0].ts, completed)
    assert (datetime.now(UTC) - completed).total_seconds() > 2


def test_records_the_provider_refused_are_written_out_to_fix_and_submit_again(tmp_path, ledger_path) -> None:
    # A record OpenAI refused as written (a 400: here a stop that is no string, or holds one that is not, both past
    # `batch validate`) could not be sent again once fixed: resume leaves it (it would be refused again) and
    # --missing-input skips it (it has a result), and its input was removed once the job ended.
    # `batch results JOB --failed-input FILE` now writes such records as submitted, ids and all.
    import subprocess
    import sys

    def openai_line(rid: str, **body) -> str:
        return json.dumps(
            {"custom_id": rid, "method": "POST", "url": "/v1/chat/completions", "body": {"model": MODEL, **body}}
        )

    stop = openai_line("x-stop", messages=[{"role": "user", "content": "hi"}], stop=3)
    no_user = openai_line("x-list", messages=[{"role": "user", "content": "hi"}], stop=["end", 4])
    src, fix, out = tmp_path / "in.jsonl", tmp_path / "fix.jsonl", tmp_path / "out.jsonl"
    src.write_text("\n".join([*plain(2, max_tokens=5), stop, *plain(1, max_tokens=5, start=2), no_user]) + "\n")
    tokenomy = [sys.executable, "-m", "tokenomy.cli", "batch"]
    ledger = ["--ledger", str(ledger_path)]
    help_text = subprocess.run(tokenomy + ["results", "--help"], capture_output=True, text=True, timeout=120).stdout
    assert "--failed-input" in help_text and "refused" in help_text
    with emulator(local_model_max_records=0) as (_, options):
        sent = subprocess.run(
            tokenomy
            + [
                "submit",
                str(src),
                "--model",
                MODEL,
                "--backend",
                "openai",
                "--json",
                "--endpoint-url",
                options.endpoint_url,
                *ledger,
            ],
            capture_output=True,
            text=True,
            timeout=300,
        )
        job = json.loads(sent.stdout.splitlines()[-1])
        assert (job["status"], job["done"], job["failed"]) == ("partially_completed", 3, 2), sent.stderr
        written = subprocess.run(
            tokenomy + ["results", job["job_id"], "--failed-input", str(fix), "-o", str(out), *ledger],
            capture_output=True,
            text=True,
            timeout=120,
        )
        assert written.returncode == 0, written.stderr
        assert f"{fix}: 2 records the provider refused" in written.stderr
        assert [json.loads(x) for x in fix.read_text().splitlines()] == [json.loads(stop), json.loads(no_user)]
        said = {x["id"]: x for x in map(json.loads, out.read_text().splitlines())}
        assert said["x-stop"]["error"].startswith("400: ") and "--failed-input" in said["x-stop"]["error"]
        # Fixed by the user, the file is a job of its own, under the same ids.
        fixed = [json.loads(x) for x in fix.read_text().splitlines()]
        fixed[0]["body"]["stop"] = "3"
        fixed[1]["body"]["stop"] = ["end", "4"]
        fix.write_text("".join(json.dumps(x) + "\n" for x in fixed))
        again = subprocess.run(
            tokenomy
            + [
                "submit",
                str(fix),
                "--model",
                MODEL,
                "--backend",
                "openai",
                "--json",
                "--endpoint-url",
                options.endpoint_url,
                *ledger,
            ],
            capture_output=True,
            text=True,
            timeout=300,
        )
        assert (json.loads(again.stdout.splitlines()[-1])["done"]) == 2, again.stderr


def test_resume_holds_back_a_batch_refused_at_validation_and_says_why_until_asked(tmp_path, ledger_path) -> None:
    # A batch OpenAI failed at validation (here: a model the account has no access to) was sent again unchanged by
    # `batch resume`, to be refused again. Resume now names the part and the provider's reason, sends nothing, and
    # exits non-zero; `--resend-refused` sends it as it is, once the cause is fixed on the provider's side.
    import subprocess
    import sys

    src = tmp_path / "in.jsonl"
    src.write_text("\n".join(plain(3, max_tokens=5)) + "\n")
    tokenomy = [sys.executable, "-m", "tokenomy.cli", "batch"]
    ledger = ["--ledger", str(ledger_path)]
    app = create_app(engine=InstantEngine(), no_access_models=(MODEL,), **FAST)
    with ServerThread(app) as url:
        client = openai.OpenAI(base_url=f"{url}/v1", api_key="x")
        sent = subprocess.run(
            tokenomy
            + ["submit", str(src), "--model", MODEL, "--backend", "openai", "--json", "--endpoint-url", url, *ledger],
            capture_output=True,
            text=True,
            timeout=300,
        )
        job = json.loads(sent.stdout.splitlines()[-1])
        assert sent.returncode == 1 and job["status"] == "failed", sent.stderr
        assert job["message"].startswith("refused at validation: line 1 of the batch's input file (record 'r0')")
        resumed = subprocess.run(
            tokenomy + ["resume", job["job_id"], "--json", *ledger], capture_output=True, text=True, timeout=300
        )
        said = " ".join(resumed.stderr.split())
        assert resumed.returncode == 2 and "Traceback" not in resumed.stderr, resumed.stderr
        assert "part 0 (3 records): refused at validation" in said and "do not have access to it" in said, said
        assert "--resend-refused" in said and "--missing-input" in said, said
        assert len(client.batches.list().data) == 1  # not sent again
        help_text = " ".join(
            subprocess.run(tokenomy + ["resume", "--help"], capture_output=True, text=True, timeout=120).stdout.split()
        )
        assert "--resend-refused" in help_text and "refused" in help_text
        app.state.emulator.settings.no_access_models = ()  # access granted: the same batch now runs
        again = subprocess.run(
            tokenomy + ["resume", job["job_id"], "--resend-refused", "--json", *ledger],
            capture_output=True,
            text=True,
            timeout=300,
        )
        assert again.returncode == 0, again.stderr
        done = json.loads(again.stdout.splitlines()[-1])
        assert (done["status"], done["done"], done["resubmitted"]) == ("completed", 3, 3)
        assert len(client.batches.list().data) == 2


def test_an_audio_models_output_line_keeps_its_audio_counts_and_prices_them_at_the_audio_rates():
    # A batch output line's usage is a chat completion's: gpt-audio's audio tokens were read as text ($2.50 / $10
    # per 1M instead of $32 / $64), priced below what OpenAI bills.
    from decimal import Decimal

    from tokenomy.batch.openai_backend import _usage
    from tokenomy.pricing.cost import compute_cost

    usage = _usage(
        {
            "prompt_tokens": 1_200,
            "completion_tokens": 500,
            "prompt_tokens_details": {"cached_tokens": 0, "audio_tokens": 1_000},
            "completion_tokens_details": {"reasoning_tokens": 0, "audio_tokens": 400},
        }
    )
    assert (usage.audio_input_tokens, usage.audio_cache_read_tokens, usage.audio_output_tokens) == (1_000, 0, 400)
    # standard prices by hand: 200 x $2.50 + 1,000 x $32 + 100 x $10 + 400 x $64 per 1M
    assert compute_cost(usage, "gpt-audio", one_call=True).total_usd == Decimal("0.0591")
    with pytest.raises(ProviderError, match="the batch"):
        _usage({"prompt_tokens": 10, "completion_tokens": 5, "completion_tokens_details": {"audio_tokens": 6}})


class SecondPartDown(OpenAIBatchBackend):
    """A backend whose submit of a job's part 1 fails, as an upload the provider answered 503."""

    def submit(self, job_id, model, recs, options=None, key=None):
        if key and key.endswith("-p1"):
            raise ProviderError("OpenAI file upload failed: 503: down", "server_error", status=503)
        return super().submit(job_id, model, recs, options, key)


def failed_and_cancelled(tables, src, client, options, first_part: int):
    """A job of `src` in two parts: part 0 (`first_part` records) cancelled at the provider after 10 answers, part 1's
    submit failed. Returns the job once ended."""
    from tokenomy.batch.jobs import prepare_job, store_job, submit_parts
    from tokenomy.batch.jobs import wait as wait_job

    job, (recs,), _ = prepare_job(src, MODEL, "openai", options)
    store_job(tables, job, [recs[:first_part], recs[first_part:]])  # two provider jobs, as a file over a quota is split
    with pytest.raises(ProviderError):
        submit_parts(tables, job, SecondPartDown(options))
    first = tables.parts(job.job_id)[0]["handle"]
    wait_until_answered(client, first, 10)
    client.batches.cancel(first)
    return wait_job(tables, job.job_id, 30, 0.05, OpenAIBatchBackend(options))


def test_one_resume_sends_a_failed_part_and_the_records_a_finished_part_left(tmp_path) -> None:
    # A job with a part whose submit failed and a part the provider cancelled midway: resume sent the failed part again
    # and returned, though status said resume sends every record without a result; a second resume sent the rest.
    # One resume sends both: the failed part under its own key, the cancelled part's records as a new part.
    from tokenomy.batch.jobs import open_tables
    from tokenomy.batch.jobs import wait as wait_job
    from tokenomy.batch.resubmit import resubmit_missing

    src = tmp_path / "in.jsonl"
    src.write_text("\n".join(plain(105)) + "\n")
    tables = open_tables(str(tmp_path / "ledger.duckdb"))
    with emulator(instant_delay_s=0.02, local_model_max_records=0) as (client, options):
        job = failed_and_cancelled(tables, src, client, options, 100)
        backend = OpenAIBatchBackend(options)
        assert 0 < job.done < 100 and job.pending == 105 - job.done, job.to_json()
        assert job.message.endswith(
            f"{job.pending} records have no result; `tokenomy batch resume {job.job_id}` sends them"
        ), job.message
        assert resubmit_missing(tables, job.job_id, backend) == job.pending  # before: 5, the failed part's
        parts = tables.parts(job.job_id)
        assert [(p["part_no"], len(p["record_ids"]), p["handle"] is not None) for p in parts[1:]] == [
            (1, 5, True),
            (2, job.pending - 5, True),
        ]
        job = wait_job(tables, job.job_id, 60, 0.05, backend)
        assert len(client.batches.list().data) == 3
    assert (job.status, job.done, job.message) == ("completed", 105, None), job.to_json()


def test_resume_sends_a_failed_part_and_says_how_to_run_the_few_records_left_on_demand(tmp_path, monkeypatch) -> None:
    # The records a finished part left are fewer than the provider's minimum a batch job (OpenAI's, 1, raised to 95
    # here), the failed part is not: status says resume sends that part and how it treats the rest, and one resume
    # sends the part and names the rest and how to run them on demand (a second resume would say only that).
    from tokenomy.batch.jobs import open_tables
    from tokenomy.batch.jobs import wait as wait_job
    from tokenomy.batch.resubmit import resubmit_missing
    from tokenomy.pricing.catalog import default_catalog

    src = tmp_path / "in.jsonl"
    src.write_text("\n".join(plain(200)) + "\n")
    tables = open_tables(str(tmp_path / "ledger.duckdb"))
    with emulator(instant_delay_s=0.02, local_model_max_records=0) as (client, options):
        monkeypatch.setitem(
            default_catalog().batch_quotas,
            "openai",
            {**default_catalog().quotas_for("openai"), "min_records_per_job": 95},
        )
        job = failed_and_cancelled(tables, src, client, options, 100)
        backend = OpenAIBatchBackend(options)
        left = job.pending - 100
        assert 0 < left <= 90, job.to_json()
        assert job.message.endswith(
            f"{job.pending} records have no result; `tokenomy batch resume {job.job_id}` sends the 100 of the parts "
            f"whose submit failed; the other {left} are fewer than openai's minimum of 95 a batch job: it says how to "
            "run them on demand"
        ), job.message
        with pytest.raises(
            UsageError,
            match=rf"sent again the 100 records .*; the other {left} records .* below "
            "openai's minimum of 95 .* batch wait .* --backend local",
        ):
            resubmit_missing(tables, job.job_id, backend, max_cost=Decimal("100"))
        assert tables.parts(job.job_id)[1]["handle"] is not None and len(tables.parts(job.job_id)) == 2
        # The cap it sent the part under holds for the resumes after, though the call ended in that error.
        assert tables.get_job(job.job_id).options["max_cost_usd"] == "100"
        job = wait_job(tables, job.job_id, 60, 0.05, backend)
        assert (job.done, job.pending) == (200 - left, left), job.to_json()
        assert job.message.endswith(
            f"{left} records have no result; fewer than openai's minimum of 95 a batch job "
            f"are left to send: `tokenomy batch resume {job.job_id}` says how to run them on "
            "demand"
        ), job.message


def test_resume_holds_the_failed_part_and_the_records_left_together_to_the_cap(tmp_path) -> None:
    # Resume checked the cap over a failed part alone and sent it; the records a finished part left then went on a
    # second resume, checked against a cap the first had already spent toward. One resume checks everything it would
    # send at once, and sends nothing over the cap.
    from tokenomy.batch.jobs import open_tables
    from tokenomy.batch.records import part_records
    from tokenomy.batch.resubmit import resubmit_missing
    from tokenomy.batch.worst_case import OverCap, job_worst_case

    src = tmp_path / "in.jsonl"
    src.write_text("\n".join(plain(105)) + "\n")
    tables = open_tables(str(tmp_path / "ledger.duckdb"))
    with emulator(instant_delay_s=0.02, local_model_max_records=0) as (client, options):
        job = failed_and_cancelled(tables, src, client, options, 100)
        failed_part = part_records(tables.parts(job.job_id)[1])
        # The failed part's worst case fits under the cap; with the cancelled part's records, it does not.
        cap = job.cost_usd + job_worst_case(failed_part, MODEL, None, "openai").usd_on("openai") * 2
        with pytest.raises(OverCap, match=f"the {job.pending} records resume would send"):
            resubmit_missing(tables, job.job_id, OpenAIBatchBackend(options), max_cost=cap)
        assert [p["handle"] is None for p in tables.parts(job.job_id)] == [False, True]  # nothing sent
        assert len(client.batches.list().data) == 1


def test_resume_refuses_a_failed_part_below_the_providers_minimum_as_it_does_new_parts(tmp_path, monkeypatch) -> None:
    # A part whose submit failed was sent again whatever its size, though the provider rejects a batch job below its
    # minimum (OpenAI's, 1, raised to 50 here: the quotas of now, not those it was split by): resume refuses it, as it
    # refuses records too few for a new part, saying how to run them on demand, and sends nothing; status says so.
    from tokenomy.batch.jobs import open_tables, prepare_job, store_job, submit_parts
    from tokenomy.batch.jobs import wait as wait_job
    from tokenomy.batch.resubmit import resubmit_missing
    from tokenomy.pricing.catalog import default_catalog

    src = tmp_path / "in.jsonl"
    src.write_text("\n".join(plain(25)) + "\n")
    tables = open_tables(str(tmp_path / "ledger.duckdb"))
    with emulator() as (client, options):
        job, (recs,), _ = prepare_job(src, MODEL, "openai", options)
        store_job(tables, job, [recs[:20], recs[20:]])
        with pytest.raises(ProviderError):
            submit_parts(tables, job, SecondPartDown(options))
        monkeypatch.setitem(
            default_catalog().batch_quotas,
            "openai",
            {**default_catalog().quotas_for("openai"), "min_records_per_job": 10},
        )
        backend = OpenAIBatchBackend(options)
        job = wait_job(tables, job.job_id, 60, 0.05, backend)
        assert (job.done, job.pending) == (20, 5), job.to_json()
        assert job.message.endswith(
            f"5 records have no result; fewer than openai's minimum of 10 a batch job are left "
            f"to send: `tokenomy batch resume {job.job_id}` says how to run them on demand"
        )
        with pytest.raises(
            UsageError,
            match=rf"part 1: 5 records of {job.job_id} have no result, below openai's "
            r"minimum of 10 per batch job, .* --backend local",
        ):
            resubmit_missing(tables, job.job_id, backend)  # before: sent, for the provider to reject
        assert tables.parts(job.job_id)[1]["handle"] is None and len(client.batches.list().data) == 1


def _one_too_large(tmp_path, monkeypatch):
    """Five records, r3 larger as sent than a job may be under the OpenAI quotas set here (the others fit, two a job):
    (path, r3's size, the limit)."""
    from tokenomy.batch.split import sent_bytes
    from tokenomy.pricing.catalog import default_catalog

    lines = [json.dumps({"id": f"r{i}", "prompt": "x" * (2000 if i == 3 else 40), "max_tokens": 8}) for i in range(5)]
    size = sent_bytes(OpenAIBatchBackend(), MODEL)
    sizes = [size(rec) for rec in records(lines)]
    limit = 2 * max(sizes[:3])
    assert sizes[3] > limit
    quotas = {"min_records_per_job": 1, "max_records_per_job": 50, "max_bytes_per_job": limit}
    monkeypatch.setitem(default_catalog().batch_quotas, "openai", quotas)
    path = tmp_path / "in.jsonl"
    path.write_text("\n".join(lines) + "\n")
    return path, sizes[3], limit


def test_submit_refuses_a_record_larger_than_a_job_may_be_before_anything_is_sent(
    tmp_path, monkeypatch, capsys
) -> None:
    # A record larger, as sent, than the bytes a whole OpenAI batch may be went in a batch of its own, which OpenAI
    # refuses, after the other batches were made. Submit refuses the file (exit 2, nothing sent, no job kept), naming
    # the line, the record, its size, the limit and what to do; validate and plan say so first.
    from helpers.cli import one_error_line, run_cli

    path, size, limit = _one_too_large(tmp_path, monkeypatch)
    ledger = tmp_path / "ledger.duckdb"
    why = (
        f"record r3 (line 4) is {size:,} bytes as sent, more than openai's limit of {limit:,} bytes for a whole "
        f"batch job; shorten it, or move line 4 of {path} to a file of its own, submit the rest, and run that one "
        f"on demand: `tokenomy batch submit FILE --model {MODEL} --backend local`"
    )
    with emulator() as (client, options):
        code, out, err = run_cli(
            monkeypatch,
            capsys,
            "batch",
            "submit",
            str(path),
            "--model",
            MODEL,
            "--backend",
            "openai",
            "--endpoint-url",
            options.endpoint_url,
            "--ledger",
            str(ledger),
        )
        assert (code, out) == (2, ""), (code, out, err)
        assert one_error_line(err) == f"error: {path}: {why} (nothing was sent)"
        assert client.files.list().data == [] and client.batches.list().data == []
    assert not ledger.exists()
    code, out, _ = run_cli(
        monkeypatch, capsys, "batch", "validate", str(path), "--model", MODEL, "--backend", "openai", "--json"
    )
    assert (code, json.loads(out)["notes"][-1]) == (0, why)
    code, out, _ = run_cli(
        monkeypatch,
        capsys,
        "batch",
        "plan",
        str(path),
        "--model",
        MODEL,
        "--deadline",
        "00:00",
        "--start",
        "00:00",
        "--backend",
        "openai",
        "--json",
    )
    plan = json.loads(out)
    assert (code, plan["recommendation"], plan["reason"]) == (0, "on_demand", why), plan


def test_resume_refuses_a_record_larger_than_a_job_may_be_and_status_says_so(tmp_path, monkeypatch, capsys) -> None:
    # A job stopped before it ran, whose records OpenAI's limit of now puts one over: resume sent it in a batch of its
    # own (refused by OpenAI once the others were made), and status said resume "sends them". Resume sends nothing,
    # naming the record, its size and the limit; status says what resume does.
    from helpers.cli import run_cli
    from tokenomy.batch.jobs import cancel, create_job, open_tables, submit_parts
    from tokenomy.batch.jobs import wait as wait_job
    from tokenomy.batch.resubmit import resubmit_missing
    from tokenomy.pricing.catalog import default_catalog

    path, size, limit = _one_too_large(tmp_path, monkeypatch)
    quotas = default_catalog().batch_quotas["openai"]
    monkeypatch.setitem(default_catalog().batch_quotas, "openai", {**quotas, "max_bytes_per_job": 10**6})
    ledger = tmp_path / "ledger.duckdb"
    tables = open_tables(str(ledger))
    with emulator(validating_seconds=2) as (client, options):
        job = submit_parts(tables, create_job(tables, path, MODEL, "openai", options))
        cancel(tables, job.job_id)  # stopped while validating: its five records have no result
        job = wait_job(tables, job.job_id, 30, 0.05)
        assert (job.status, job.pending) == ("stopped", 5), job.to_json()
        monkeypatch.setitem(default_catalog().batch_quotas, "openai", quotas)
        code, out, err = run_cli(monkeypatch, capsys, "batch", "status", job.job_id, "--ledger", str(ledger), "--json")
        assert code == 0, err
        with pytest.raises(UsageError) as refused:
            resubmit_missing(tables, job.job_id)
        assert len(client.batches.list().data) == 1 and len(tables.parts(job.job_id)) == 1  # nothing sent
    why = f"record r3 is {size:,} bytes as sent, more than openai's limit of {limit:,} bytes for a whole batch job"
    on_demand = (
        f"run them on demand instead: `tokenomy batch results {job.job_id} --missing-input -o rest.jsonl` "
        f"then `tokenomy batch submit rest.jsonl --model {MODEL} --backend local`"
    )
    assert str(refused.value) == f"{job.job_id}: {why}, so nothing was sent; {on_demand}"
    assert json.loads(out)["message"].endswith(
        f"`tokenomy batch resume {job.job_id}` sends none of them: {why}; {on_demand}"
    ), out


def test_resume_splits_a_failed_part_again_when_it_no_longer_fits_one_batch(tmp_path, monkeypatch) -> None:
    # A part whose submit failed was sent again as it was split, though by the limits of now (an older version's
    # split, or limits that changed; OpenAI's 50,000 requests a batch lowered to 10 here) it is over what one batch may
    # hold: the provider refuses it, and resume then held it back. It is split again, as submit splits, and sent as new
    # parts; it is not sent itself.
    from tokenomy.batch.jobs import open_tables, prepare_job, store_job, submit_parts
    from tokenomy.batch.jobs import wait as wait_job
    from tokenomy.batch.resubmit import resubmit_missing
    from tokenomy.pricing.catalog import default_catalog

    src = tmp_path / "in.jsonl"
    src.write_text("\n".join(plain(30)) + "\n")
    tables = open_tables(str(tmp_path / "ledger.duckdb"))
    with emulator() as (client, options):
        job, (recs,), _ = prepare_job(src, MODEL, "openai", options)
        store_job(tables, job, [recs[:5], recs[5:]])
        with pytest.raises(ProviderError):
            submit_parts(tables, job, SecondPartDown(options))
        monkeypatch.setitem(
            default_catalog().batch_quotas,
            "openai",
            {**default_catalog().quotas_for("openai"), "max_records_per_job": 10},
        )
        backend = OpenAIBatchBackend(options)
        assert resubmit_missing(tables, job.job_id, backend) == 25
        parts = tables.parts(job.job_id)
        assert [(p["part_no"], len(p["record_ids"]), p["status"], p["handle"] is not None) for p in parts[1:]] == [
            (1, 25, "stopped", False),
            (2, 10, "submitted", True),
            (3, 10, "submitted", True),
            (4, 5, "submitted", True),
        ], parts
        assert sorted(rid for p in parts[2:] for rid in p["record_ids"]) == sorted(parts[1]["record_ids"])
        job = wait_job(tables, job.job_id, 60, 0.05, backend)
        assert sorted(len(file_lines(client, b.input_file_id)) for b in client.batches.list().data) == [5, 5, 10, 10]
    assert (job.status, job.done, job.message) == ("completed", 30, None), job.to_json()


def test_resume_refuses_a_failed_part_holding_a_record_larger_than_a_job_may_be(tmp_path, monkeypatch, capsys) -> None:
    # A part whose submit failed holds a record larger, by the limits of now, than a whole batch may be: resume sent
    # the part as it was, for OpenAI to refuse, and status said resume "sends them". Resume refuses it before anything
    # is sent, naming the part, the record, its size and the limit; status says what resume does.
    from helpers.cli import run_cli
    from tokenomy.batch.jobs import open_tables, prepare_job, store_job, submit_parts
    from tokenomy.batch.jobs import wait as wait_job
    from tokenomy.batch.resubmit import resubmit_missing
    from tokenomy.pricing.catalog import default_catalog

    path, size, limit = _one_too_large(tmp_path, monkeypatch)
    quotas = default_catalog().batch_quotas["openai"]
    monkeypatch.setitem(default_catalog().batch_quotas, "openai", {**quotas, "max_bytes_per_job": 10**6})
    ledger = tmp_path / "ledger.duckdb"
    tables = open_tables(str(ledger))
    with emulator() as (client, options):
        job, (recs,), _ = prepare_job(path, MODEL, "openai", options)
        store_job(tables, job, [recs[:2], recs[2:]])  # r3 in part 1
        with pytest.raises(ProviderError):
            submit_parts(tables, job, SecondPartDown(options))
        backend = OpenAIBatchBackend(options)
        job = wait_job(tables, job.job_id, 30, 0.05, backend)
        monkeypatch.setitem(default_catalog().batch_quotas, "openai", quotas)
        code, out, err = run_cli(monkeypatch, capsys, "batch", "status", job.job_id, "--ledger", str(ledger), "--json")
        assert code == 0, err
        with pytest.raises(UsageError) as refused:
            resubmit_missing(tables, job.job_id, backend)
        assert len(client.batches.list().data) == 1 and tables.parts(job.job_id)[1]["handle"] is None  # nothing sent
    why = (
        f"part 1: record r3 is {size:,} bytes as sent, more than openai's limit of {limit:,} bytes for a whole "
        "batch job"
    )
    on_demand = (
        f"run them on demand instead: `tokenomy batch results {job.job_id} --missing-input -o rest.jsonl` "
        f"then `tokenomy batch submit rest.jsonl --model {MODEL} --backend local`"
    )
    assert str(refused.value) == f"{job.job_id}: {why}, so nothing was sent; {on_demand}"
    assert json.loads(out)["message"].endswith(
        f"`tokenomy batch resume {job.job_id}` sends none of them: {why}; {on_demand}"
    ), out


def test_output_lines_that_name_no_record_are_each_kept_billed_and_their_records_not_sent_again(tmp_path) -> None:
    # Two answered lines came back without their custom_id: both were read as record "None", the second dropped
    # unsaid though billed, and r1 and r2 stayed missing, for resume to send, and pay for, again.
    from types import SimpleNamespace

    from tokenomy.batch.jobs import create_job, open_tables, submit_parts
    from tokenomy.batch.jobs import wait as wait_job
    from tokenomy.batch.resubmit import resubmit_missing
    from tokenomy.ledger.store import open_store

    class IdsLost(OpenAIBatchBackend):
        def _call(self, what, fn, *args, **kwargs):
            got = super()._call(what, fn, *args, **kwargs)
            if what != "file content" or '"response"' not in got.text:
                return got
            lines = [json.loads(x) for x in got.text.split("\n") if x.strip()]
            for line in lines:
                if line["custom_id"] in ("r1", "r2"):
                    del line["custom_id"]
            return SimpleNamespace(text="\n".join(json.dumps(x) for x in lines))

    src, ledger = tmp_path / "in.jsonl", tmp_path / "ledger.duckdb"
    src.write_text("\n".join(plain(4)) + "\n")
    tables = open_tables(str(ledger))
    with emulator() as (client, options):
        backend = IdsLost(options)
        job = submit_parts(tables, create_job(tables, src, MODEL, "openai", options), backend)
        job = wait_job(tables, job.job_id, 60, 0.05, backend)
        assert (job.done, job.failed, job.pending, job.unmatched) == (2, 2, 0, 2), job.to_json()
        failures = {r["record_id"]: r["error"] for r in tables.results(job.job_id).values() if not r["ok"]}
        assert set(failures) == {"r1", "r2"} and "line 2 of the output file" in failures["r1"], failures
        assert resubmit_missing(tables, job.job_id, backend) == 0
        assert len(client.batches.list().data) == 1  # nothing sent twice
    events = [e for e in open_store(str(ledger)).events() if e.batch_job_id == job.job_id]
    assert len(events) == 4 and all(e.input_tokens > 0 for e in events)  # each billed line in the ledger


def test_a_line_with_a_tool_round_trip_and_every_parameter_is_uploaded_as_written_and_answered() -> None:
    # The emulator answered an assistant turn that only calls tools (`"content": null`, as OpenAI takes it) with a
    # 400, so an offline run of a tool round trip failed a record OpenAI would answer.
    tool = {"type": "function", "function": {"name": "get_w", "parameters": {"type": "object"}, "strict": False}}
    call = {"id": "c1", "type": "function", "function": {"name": "get_w", "arguments": '{"c": "x"}'}}
    schema = {
        "type": "object",
        "properties": {"a": {"type": "string"}},
        "required": ["a"],
        "additionalProperties": False,
    }
    body = {
        "model": MODEL,
        "messages": [
            {"role": "developer", "content": "be brief"},
            {"role": "user", "content": [{"type": "text", "text": "weather?"}]},
            {"role": "assistant", "content": None, "tool_calls": [call]},
            {"role": "tool", "tool_call_id": "c1", "content": "sunny"},
            {"role": "user", "content": "so?"},
        ],
        "tools": [tool],
        "tool_choice": "auto",
        "response_format": {"type": "json_schema", "json_schema": {"name": "s", "strict": True, "schema": schema}},
        "seed": 1,
        "top_p": 0.9,
        "stop": ["X"],
        "presence_penalty": 0.1,
        "frequency_penalty": 0.1,
        "reasoning_effort": "low",
        "metadata": {"k": "v"},
        "user": "u1",
        "prompt_cache_key": "pk",
        "max_completion_tokens": 20,
    }
    line = {"custom_id": "t1", "method": "POST", "url": "/v1/chat/completions", "body": body}
    with emulator() as (client, options):
        backend = OpenAIBatchBackend()
        handle = backend.submit("tools", MODEL, records([json.dumps(line)]), options)
        assert wait(backend, handle)[-1] == "completed"
        [sent] = file_lines(client, client.batches.retrieve(handle).input_file_id)
        assert sent == line
        [result] = backend.results(handle)
        assert result.ok and result.usage.output_tokens > 0, result.error
