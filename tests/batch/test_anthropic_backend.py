"""Anthropic Message Batches: the backend and the official `anthropic` SDK against the Anthropic emulator."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from contextlib import contextmanager
from decimal import Decimal

import anthropic
import pytest

from helpers.batch_records import in_order, plain, records, wait  # the same records and polling
from tokenomy.batch.anthropic_backend import AnthropicBatchBackend, custom_id
from tokenomy.batch.backends import SubmitOptions
from tokenomy.chat_response import Usage
from tokenomy.emulate.anthropic_batch import create_app
from tokenomy.emulate.instant_engine import InstantEngine
from tokenomy.emulate.server import ServerThread
from tokenomy.errors import ConfigError

MODEL = "claude-haiku-4-5-20251001"
# Its batch price by hand (pricing/data/anthropic.yaml: batch_input 0.50, batch_output 2.50 USD a million tokens).
BATCH_IN, BATCH_OUT = Decimal("0.50") / 10**6, Decimal("2.50") / 10**6


@pytest.fixture(autouse=True)
def no_anthropic_env(monkeypatch):
    for key in ("ANTHROPIC_API_KEY", "ANTHROPIC_BASE_URL"):
        monkeypatch.delenv(key, raising=False)


@contextmanager
def emulator(**settings):
    """The emulator on a free port; yields (SDK client, backend options, its batches)."""
    app = create_app(engine=InstantEngine(), **settings)
    with ServerThread(app) as url:
        yield anthropic.Anthropic(base_url=url, api_key="x"), SubmitOptions(endpoint_url=url), app.state.batches


def cli(*args: str, timeout: float = 120) -> subprocess.CompletedProcess:
    env = {k: v for k, v in os.environ.items() if not k.startswith("ANTHROPIC_")}
    return subprocess.run(
        [sys.executable, "-m", "tokenomy.cli", "batch", *args], capture_output=True, text=True, timeout=timeout, env=env
    )


def by_hand(input_tokens: int, output_tokens: int) -> Decimal:
    return input_tokens * BATCH_IN + output_tokens * BATCH_OUT


def test_a_batch_runs_through_the_sdk_and_results_come_back_by_record_id() -> None:
    lines = plain(4) + [
        json.dumps(
            {"id": "doc 1.txt", "prompt": "topic9 please", "system": "Be brief", "max_tokens": 5, "temperature": 0}
        )
    ]
    with emulator() as (client, options, _):
        backend = AnthropicBatchBackend()
        handle = backend.submit("j", MODEL, records(lines), options)
        assert handle.startswith("msgbatch_")
        seen = wait(backend, handle)
        assert seen[-1] == "completed" and in_order(seen)
        batch = client.messages.batches.retrieve(handle)
        assert batch.request_counts.succeeded == 5 and batch.processing_status == "ended"
        sent = [r.custom_id for r in client.messages.batches.results(handle)]
        assert sorted(sent) == sorted(["r0", "r1", "r2", "r3", custom_id("doc 1.txt")])  # the pattern refuses a space
        results = {r.id: r for r in backend.part_results(handle, ["r0", "r1", "r2", "r3", "doc 1.txt"])}
    assert set(results) == {"r0", "r1", "r2", "r3", "doc 1.txt"}
    for rid, r in results.items():
        assert r.ok and r.model == MODEL and r.usage.input_tokens > 0 and r.usage.output_tokens > 0
        assert (rid[1:] if rid != "doc 1.txt" else "9") in r.text  # each answer echoes its own prompt
    assert results["doc 1.txt"].usage.output_tokens <= 5


def test_a_partly_errored_batch_names_each_error_in_the_providers_words() -> None:
    lines = plain(6)
    lines[4] = json.dumps({"id": "r4", "prompt": "hi", "temperature": 1.5})  # Anthropic's range is 0 to 1
    with emulator(error_ids={"r2": "overloaded_error"}) as (_, options, _batches):
        backend = AnthropicBatchBackend(options)
        handle = backend.submit("j", MODEL, records(lines), options)
        assert wait(backend, handle)[-1] == "partially_completed"
        assert "2 requests errored" in backend.status(handle)[1]
        results = {r.id: r for r in backend.results(handle)}
    assert len(results) == 6 and {rid for rid, r in results.items() if not r.ok} == {"r2", "r4"}
    assert results["r2"].error == "529 overloaded_error: Overloaded"
    assert results["r4"].error.startswith("400 invalid_request_error: temperature")


def test_the_answers_usage_maps_cache_tokens_as_the_sync_path_does() -> None:
    line = {
        "custom_id": "a",
        "result": {
            "type": "succeeded",
            "message": {
                "model": MODEL,
                "content": [{"type": "text", "text": "hi"}],
                "usage": {
                    "input_tokens": 10,
                    "output_tokens": 3,
                    "cache_read_input_tokens": 100,
                    "cache_creation_input_tokens": 50,
                    "cache_creation": {"ephemeral_5m_input_tokens": 30, "ephemeral_1h_input_tokens": 20},
                },
            },
        },
    }
    result = AnthropicBatchBackend._record(line, None)
    assert result.text == "hi" and result.usage == Usage(10, 3, 100, 50, cache_write_1h_tokens=20)
    for kind in ("canceled", "expired"):  # never run: left missing, for resume
        assert AnthropicBatchBackend._record({"custom_id": "a", "result": {"type": kind}}, None) is None


def test_cancel_stops_the_batch_and_unrun_requests_stay_missing() -> None:
    with emulator(request_delay_s=0.02) as (client, options, batches):
        backend = AnthropicBatchBackend(options)
        handle = backend.submit("j", MODEL, records(plain(100)), options)
        deadline = time.monotonic() + 30
        while not batches.batches[handle]["outcomes"] and time.monotonic() < deadline:
            time.sleep(0.01)
        backend.cancel(handle)
        assert client.messages.batches.retrieve(handle).processing_status in ("canceling", "ended")
        seen = wait(backend, handle)
        assert seen[-1] == "stopped"
        _, message = backend.status(handle)
        answered = {r.id for r in backend.results(handle)}
    assert 0 < len(answered) < 100 and f"cancelled: {100 - len(answered)} of its 100 requests never ran" in message


def test_no_key_and_no_endpoint_is_a_config_error() -> None:
    with pytest.raises(ConfigError, match="ANTHROPIC_API_KEY"):
        AnthropicBatchBackend().check(SubmitOptions())


def test_cli_submit_waits_and_results_record_each_answer_once_at_the_batch_price(tmp_path, ledger_path) -> None:
    from tokenomy.ledger.store import open_store

    src = tmp_path / "in.jsonl"
    src.write_text("\n".join(plain(30, max_tokens=6)) + "\n")
    with emulator() as (_, options, _batches):
        out = cli(
            "submit",
            str(src),
            "--model",
            MODEL,
            "--backend",
            "anthropic",
            "--json",
            "--endpoint-url",
            options.endpoint_url,
            "--ledger",
            str(ledger_path),
        )
        assert out.returncode == 0, out.stderr
        job = [json.loads(x) for x in out.stdout.splitlines() if x.startswith("{")][-1]
        assert job["status"] == "completed" and job["done"] == 30
        results = cli(
            "results", job["job_id"], "-o", str(tmp_path / "out.jsonl"), "--json", "--ledger", str(ledger_path)
        )
    assert results.returncode == 0, results.stderr
    lines = [json.loads(x) for x in (tmp_path / "out.jsonl").read_text().splitlines()]
    assert [x["id"] for x in lines] == [f"r{i}" for i in range(30)] and all(x["ok"] for x in lines)
    rows = open_store(str(ledger_path)).query(
        "SELECT provider, mode, input_tokens, output_tokens, cache_read_tokens, cost_usd FROM usage_events "
        "WHERE batch_job_id = ?",
        [job["job_id"]],
    )
    assert len(rows) == 30 and {(r["provider"], r["mode"]) for r in rows} == {("anthropic", "batch")}
    for r in rows:
        assert r["cache_read_tokens"] == 0 and r["output_tokens"] <= 6
        assert Decimal(str(r["cost_usd"])) == by_hand(r["input_tokens"], r["output_tokens"])


def test_expired_and_throttled_records_are_sent_again_by_resume_and_recorded_once(tmp_path) -> None:
    from tokenomy.batch.jobs import create_job, open_tables, submit_parts
    from tokenomy.batch.jobs import wait as wait_job
    from tokenomy.batch.resubmit import resubmit_missing
    from tokenomy.ledger.store import open_store

    src, ledger = tmp_path / "in.jsonl", tmp_path / "ledger.duckdb"
    src.write_text("\n".join(plain(80)) + "\n")
    tables = open_tables(str(ledger))
    # The 24 h window lasts 0.4 s; 80 requests at 20 ms each need 1.6 s. r1 is answered "overloaded" (a 529).
    with emulator(request_delay_s=0.02, seconds_per_hour=0.4 / 24, error_ids={"r1": "overloaded_error"}) as (
        client,
        options,
        batches,
    ):
        backend = AnthropicBatchBackend(options)
        job = submit_parts(tables, create_job(tables, src, MODEL, "anthropic", options), backend)
        job = wait_job(tables, job.job_id, 60, 0.05, backend)
        assert job.status == "partially_completed" and 1 < job.done + job.failed < 80, job
        assert f"expired: {job.pending} of its 80 requests never ran" in job.message
        # ...and that resume sends them (it named no fix); r1, throttled, is said apart, as sent again.
        hint = f"; {job.pending} records have no result; `tokenomy batch resume {job.job_id}` sends them;"
        assert hint in job.message, job.message
        first = job.done
        batches.settings.seconds_per_hour, batches.settings.request_delay_s = 3600.0, 0.0
        batches.settings.error_ids.clear()
        sent = resubmit_missing(tables, job.job_id, backend)
        assert sent == 80 - first  # the expired ones and r1, whose 529 another run may answer
        job = wait_job(tables, job.job_id, 60, 0.05, backend)
        assert len(client.messages.batches.list(limit=100).data) == 2
    assert job.status == "completed" and job.done == 80 and job.pending == 0 and job.failed == 0
    events = [e for e in open_store(ledger).events() if e.batch_job_id == job.job_id]
    assert sorted(e.request_id for e in events) == sorted(f"r{i}" for i in range(80))  # each record once
    assert {e.mode for e in events} == {"batch"}
    for e in events:
        assert e.cost_usd == by_hand(e.usage.input_tokens, e.usage.output_tokens)


def test_throttled_records_fewer_than_the_providers_minimum_say_resume_runs_them_on_demand(
    tmp_path, monkeypatch
) -> None:
    # A job whose only records left were throttled or hit a server error said "`tokenomy batch resume JOB` sends them
    # again", though resume refuses fewer records than the provider's minimum a batch job (Bedrock's 100; Anthropic's,
    # 1, raised to 5 here) and says how to run them on demand. It says so now, as it does of records a job never ran.
    from tokenomy.batch.jobs import create_job, open_tables, submit_parts
    from tokenomy.batch.jobs import wait as wait_job
    from tokenomy.batch.resubmit import resubmit_missing
    from tokenomy.errors import UsageError
    from tokenomy.pricing.catalog import default_catalog

    quotas = {**default_catalog().quotas_for("anthropic"), "min_records_per_job": 5}
    monkeypatch.setitem(default_catalog().batch_quotas, "anthropic", quotas)
    src = tmp_path / "in.jsonl"
    src.write_text("\n".join(plain(20)) + "\n")
    tables = open_tables(str(tmp_path / "ledger.duckdb"))
    with emulator(error_ids={"r1": "overloaded_error", "r2": "rate_limit_error"}) as (_, options, _batches):
        backend = AnthropicBatchBackend(options)
        job = submit_parts(tables, create_job(tables, src, MODEL, "anthropic", options), backend)
        job = wait_job(tables, job.job_id, 60, 0.05, backend)
        assert (job.status, job.done, job.failed, job.pending) == ("partially_completed", 18, 2, 0), job.to_json()
        assert job.message == (
            "2 requests errored; `tokenomy batch results` gives each one's error; "
            "2 records were throttled or hit a server error; fewer than anthropic's minimum of 5 a batch job are left "
            f"to send: `tokenomy batch resume {job.job_id}` says how to run them on demand"
        ), job.message
        with pytest.raises(UsageError, match=r"2 records .* below anthropic's minimum of 5 .* run them on demand"):
            resubmit_missing(tables, job.job_id, backend)


def test_a_job_is_split_at_anthropics_100000_requests_a_batch_by_the_bytes_sent() -> None:
    from tokenomy.batch.split import one_file_a_job, sent_bytes, split_records
    from tokenomy.pricing.catalog import default_catalog

    quotas = one_file_a_job(default_catalog().quotas_for("anthropic"))
    assert (quotas["max_records_per_job"], quotas["max_bytes_per_job"]) == (100_000, 256 * 2**20)
    backend = AnthropicBatchBackend()
    jobs = split_records(records(plain(100_001)), quotas, sent_bytes(backend, MODEL))
    assert [sum(len(f) for f in job) for job in jobs] == [100_000, 1]
    # By the request as sent (custom_id and params), not the line as written: 1 MB of limit holds fewer of them.
    recs = records(plain(2_000))
    small = {**quotas, "max_bytes_per_job": 100_000}
    as_sent = split_records(recs, small, sent_bytes(backend, MODEL))
    as_written = split_records(recs, small)
    assert len(as_sent) > len(as_written)
    assert all(sum(len(backend.input_line(MODEL, r)) + 1 for f in job for r in f) <= 100_000 for job in as_sent)


def test_a_results_line_that_is_not_json_is_its_records_failure_and_the_rest_are_kept() -> None:
    with emulator() as (_, options, batches):
        backend = AnthropicBatchBackend(options)
        handle = backend.submit("j", MODEL, records(plain(3)), options)
        assert wait(backend, handle)[-1] == "completed"
        whole = batches.results
        # r1's line cut short where its id is still shown; r2's garbled past reading any id.
        lines = whole(handle).decode().splitlines()
        cut = {json.loads(x)["custom_id"]: x for x in lines}
        garbled = [cut["r0"], cut["r1"][:40], "\x00garbled"]
        batches.results = lambda batch_id: ("\n".join(garbled) + "\n").encode()
        results = {r.id: r for r in backend.part_results(handle, ["r0", "r1", "r2"])}
    assert results["r0"].ok and set(results) == {"r0", "r1", "r2"}
    assert results["r1"].error.startswith("unreadable output line") and "r1" in results["r1"].error
    assert "unreadable output line" in results["r2"].error and "garbled" in results["r2"].error


def test_openai_and_bedrock_lines_are_rebuilt_as_messages_params_and_a_key_not_carried_is_named(tmp_path) -> None:
    from tokenomy.batch.anthropic_backend import request_params
    from tokenomy.batch.validate import validate_file

    body = {
        "model": "gpt-4o",
        "max_completion_tokens": 7,
        "temperature": 0.5,
        "messages": [{"role": "developer", "content": "Be brief"}, {"role": "user", "content": "hi"}],
    }
    claude = {
        "anthropic_version": "bedrock-2023-05-31",
        "max_tokens": 9,
        "system": "Terse",
        "messages": [{"role": "user", "content": [{"type": "text", "text": "yo"}]}],
    }
    src = tmp_path / "in.jsonl"
    src.write_text(
        "\n".join(
            [
                json.dumps({"custom_id": "a", "method": "POST", "url": "/v1/chat/completions", "body": body}),
                json.dumps({"recordId": "b", "modelInput": claude}),
                json.dumps(
                    {"custom_id": "c", "method": "POST", "url": "/v1/chat/completions", "body": {**body, "top_p": 0.9}}
                ),
            ]
        )
        + "\n"
    )
    report = validate_file(src, MODEL, backend="anthropic")
    assert [r.id for r in report.records] == ["a", "b"]
    assert [(b.line, b.field) for b in report.bad] == [(3, "body.top_p")]
    assert "--backend anthropic" in report.bad[0].reason
    a, b = (request_params(MODEL, r) for r in report.records)
    assert a == {
        "model": MODEL,
        "max_tokens": 7,
        "system": "Be brief",
        "temperature": 0.5,
        "messages": [{"role": "user", "content": "hi"}],
    }
    assert b == {"model": MODEL, "max_tokens": 9, "system": "Terse", "messages": [{"role": "user", "content": "yo"}]}


def test_a_create_without_an_answer_is_sent_once_and_says_to_check_before_resume() -> None:
    import socket

    from tokenomy.errors import ProviderError

    with socket.socket() as sock:  # a port nothing listens on
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    backend = AnthropicBatchBackend()
    with pytest.raises(ProviderError, match=f"127.0.0.1:{port}.*not known.*before `tokenomy batch resume`"):
        backend.submit("j", MODEL, records(plain(1)), SubmitOptions(endpoint_url=f"http://127.0.0.1:{port}"))


def test_a_job_sent_through_anthropic_is_split_at_anthropics_limits_whatever_its_model(tmp_path, ledger_path) -> None:
    # `--backend anthropic --model gpt-4o` was split at OpenAI's 50,000 requests a batch (the model's provider's
    # limits): two Message Batches where Anthropic takes 100,000 in one.
    src = tmp_path / "in.jsonl"
    src.write_text("\n".join(plain(50_001)) + "\n")
    with emulator() as (client, options, _batches):
        out = cli(
            "submit",
            str(src),
            "--model",
            "gpt-4o",
            "--backend",
            "anthropic",
            "--detach",
            "--json",
            "--endpoint-url",
            options.endpoint_url,
            "--ledger",
            str(ledger_path),
            timeout=600,
        )
        assert out.returncode == 0, out.stderr
        made = client.messages.batches.list(limit=100).data
    counts = made[0].request_counts if len(made) == 1 else None
    assert counts is not None, [b.request_counts for b in made]
    assert counts.processing + counts.succeeded + counts.errored + counts.canceled + counts.expired == 50_001


def test_ledger_rows_are_timestamped_when_anthropic_ended_the_batch_not_at_collection(tmp_path, ledger_path) -> None:
    from datetime import UTC, datetime

    from tokenomy.ledger.store import open_store

    src = tmp_path / "in.jsonl"
    src.write_text("\n".join(plain(3, max_tokens=6)) + "\n")
    with emulator() as (client, options, _batches):
        sent = cli(
            "submit",
            str(src),
            "--model",
            MODEL,
            "--backend",
            "anthropic",
            "--detach",
            "--json",
            "--endpoint-url",
            options.endpoint_url,
            "--ledger",
            str(ledger_path),
        )
        job_id = json.loads(sent.stdout.splitlines()[0])["job_id"]
        [batch] = client.messages.batches.list().data
        while client.messages.batches.retrieve(batch.id).ended_at is None:
            time.sleep(0.05)
        time.sleep(2.2)  # collected a while after
        done = cli("wait", job_id, "--json", "--poll", "0.1", "--ledger", str(ledger_path))
        assert done.returncode == 0, done.stderr
        ended = client.messages.batches.retrieve(batch.id).ended_at.astimezone(UTC)
    events = [e for e in open_store(str(ledger_path)).events() if e.batch_job_id == job_id]
    assert len(events) == 3 and {e.ts for e in events} == {ended}, (events[0].ts, ended)
    assert (datetime.now(UTC) - ended).total_seconds() > 2


def test_a_submit_killed_after_anthropic_made_its_batch_is_not_sent_again_unsaid_by_resume(tmp_path) -> None:
    from tokenomy.batch.jobs import create_job, open_tables, submit_parts

    class KilledAfterCreate(AnthropicBatchBackend):
        def submit(self, *args, **kwargs):  # Anthropic makes the batch, and the process dies before it is recorded
            super().submit(*args, **kwargs)
            raise KeyboardInterrupt  # a BaseException: like a SIGKILL, nothing after the create runs

    src, ledger = tmp_path / "in.jsonl", tmp_path / "ledger.duckdb"
    src.write_text("\n".join(plain(10, max_tokens=6)) + "\n")
    tables = open_tables(str(ledger))
    with emulator() as (client, options, _batches):
        job = create_job(tables, src, MODEL, "anthropic", options)
        with pytest.raises(KeyboardInterrupt):
            submit_parts(tables, job, KilledAfterCreate(options))
        assert len(client.messages.batches.list().data) == 1
        resume = ["resume", job.job_id, "--detach", "--json", "--ledger", str(ledger)]
        first = cli(*resume)
        # Before, resume sent the part again, unsaid: a second batch, every record run and billed twice.
        assert len(client.messages.batches.list().data) == 1
        assert first.returncode == 2  # an error, as a submit whose create timed out
        said = json.loads(first.stdout.splitlines()[-1])["error"] if first.stdout.strip() else first.stderr
        assert f"part 0 of {job.job_id}" in said and "is not known" in said, said
        assert "GET /v1/messages/batches" in said and f"tokenomy batch resume {job.job_id}" in said, said
        # Said once: the user has checked (no batch of theirs, say), and the next resume sends it.
        client.messages.batches.cancel(client.messages.batches.list().data[0].id)
        second = cli(*resume)
        assert second.returncode == 0, second.stderr
        assert len(client.messages.batches.list().data) == 2


def test_cancel_of_a_submit_killed_mid_create_says_its_anthropic_batch_may_run_on(tmp_path) -> None:
    from tokenomy.batch.jobs import create_job, open_tables, submit_parts

    class KilledAfterCreate(AnthropicBatchBackend):
        def submit(self, *args, **kwargs):
            super().submit(*args, **kwargs)
            raise KeyboardInterrupt

    src, ledger = tmp_path / "in.jsonl", tmp_path / "ledger.duckdb"
    src.write_text("\n".join(plain(10, max_tokens=6)) + "\n")
    tables = open_tables(str(ledger))
    with emulator(request_delay_s=0.5) as (client, options, _batches):
        job = create_job(tables, src, MODEL, "anthropic", options)
        with pytest.raises(KeyboardInterrupt):
            submit_parts(tables, job, KilledAfterCreate(options))
        cancelled = cli("cancel", job.job_id, "--json", "--ledger", str(ledger))
        assert cancelled.returncode == 0, cancelled.stderr
        # Before: "cancelled before it was sent", and nothing said, while the batch Anthropic made ran on, billed.
        said = json.loads(cancelled.stdout)["message"]
        assert said and f"part 0 of {job.job_id}" in said and "it runs and is billed" in said, said
        assert "GET /v1/messages/batches" in said, said
        assert [b.processing_status for b in client.messages.batches.list().data] == ["in_progress"]
