"""Batch jobs and the local runner: 1,000 records with 20 bad lines, SIGKILL x3 + resume, throttling
absorbed, job state in PostgreSQL, a Bedrock job through the emulator, the CLI's --json, the planner."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from decimal import Decimal
from pathlib import Path

import pytest

from helpers.cli import interruptible
from tokenomy.batch.job_tables import require_job
from tokenomy.batch.jobs import create_job, open_tables
from tokenomy.batch.local_job import run_job
from tokenomy.batch.records import export_results, record_event_id
from tokenomy.chat_response import Usage
from tokenomy.emulate.instant_openai import InstantOpenAI
from tokenomy.ledger.store import open_store
from tokenomy.pricing.cost import compute_cost

TOKENOMY = str(Path(sys.executable).with_name("tokenomy"))
PRICE_AS = "gpt-4o-mini"


def config_for(tmp_path: Path, url: str) -> Path:
    path = tmp_path / "tokenomy.yaml"
    path.write_text(
        f"models:\n  upstream:\n    provider: openai\n    model: {PRICE_AS}\n    base_url: {url}\n"
        f"    price_as: {PRICE_AS}\n"
    )
    return path


def plain(n: int, max_tokens: int = 8) -> list[str]:
    return [
        json.dumps({"id": f"r{i}", "prompt": f"Say something about item {i}.", "max_tokens": max_tokens})
        for i in range(n)
    ]


def upstream_job(tables, tmp_path: Path, url: str, records: int, max_tokens: int = 8, **run_settings):
    """A local-backend job of `records` plain records against the OpenAI-format server at `url`."""
    src = tmp_path / "in.jsonl"
    src.write_text("\n".join(plain(records, max_tokens=max_tokens)) + "\n")
    return create_job(
        tables, src, "upstream", "local", config_path=str(config_for(tmp_path, url)), run_settings=run_settings or None
    )


def with_bad_lines(good: list[str]) -> tuple[list[str], dict[int, str]]:
    """Interleave 20 malformed lines of five kinds; returns the lines and {line number: field at fault}."""
    kinds = [
        ('{"id": "x", "prompt": ', "-"),
        (json.dumps({"prompt": "no id"}), "id"),
        (json.dumps({"id": "r3", "prompt": "duplicate id"}), "id"),
        (json.dumps({"id": "e", "prompt": " "}), "prompt"),
        (json.dumps({"id": "m", "prompt": "hi", "max_tokens": -1}), "max_tokens"),
    ]
    lines, bad = [], {}
    for index, line in enumerate(good):
        lines.append(line)
        if index % 50 == 25:
            text, fld = kinds[len(bad) % len(kinds)]
            if fld != "-":
                text = text.replace('"e"', f'"e{len(bad)}"').replace('"m"', f'"m{len(bad)}"')
            lines.append(text)
            bad[len(lines)] = fld
    return lines, bad


def cli(*args: str, check: bool = True) -> subprocess.CompletedProcess:
    result = subprocess.run([TOKENOMY, *args], capture_output=True, text=True, timeout=300)
    if check:
        assert result.returncode == 0, result.stderr
    return result


def count_results(ledger: Path, job_id: str) -> int:
    return int(open_store(ledger).query("SELECT COUNT(*) AS n FROM batch_results WHERE job_id = ?", [job_id])[0]["n"])


def test_thousand_records_bad_lines_named_rest_run_and_cli_json(tmp_path: Path, ledger_path: Path) -> None:
    lines, bad = with_bad_lines(plain(1000))
    assert len(bad) == 20
    src = tmp_path / "in.jsonl"
    src.write_text("\n".join(lines) + "\n")
    with InstantOpenAI() as url:
        cfg = config_for(tmp_path, url)
        validated = cli("batch", "validate", str(src), "--model", PRICE_AS, "--json", check=False)
        assert validated.returncode == 1  # bad lines are named and the status says so
        report = json.loads(validated.stdout)
        assert {b["line"]: b["field"] for b in report["bad_lines"]} == bad
        submitted = cli(
            "batch",
            "submit",
            str(src),
            "--model",
            "upstream",
            "--config",
            str(cfg),
            "--backend",
            "local",
            "--ledger",
            str(ledger_path),
            "--json",
            "--concurrency",
            "8",
        )
    first, *rest = submitted.stdout.strip().splitlines()
    job_id = json.loads(first)["job_id"]
    assert json.loads(first) == {"job_id": job_id}  # the id comes alone, before any work
    summary = json.loads(rest[-1])
    assert (summary["status"], summary["records"], summary["done"], summary["failed"]) == ("completed", 1000, 1000, 0)
    assert summary["bad_lines"] == 20

    listed = json.loads(cli("batch", "list", "--ledger", str(ledger_path), "--json").stdout)
    assert [
        (j["job_id"], j["status"], j["backend"], j["model"], j["records"], j["done"], j["failed"]) for j in listed
    ] == [(job_id, "completed", "local", "upstream", 1000, 1000, 0)]
    status = json.loads(cli("batch", "status", job_id, "--ledger", str(ledger_path), "--json").stdout)
    assert status["status"] == "completed" and status["runner_alive"] is False

    out = tmp_path / "out.jsonl"
    counts = json.loads(cli("batch", "results", job_id, "-o", str(out), "--ledger", str(ledger_path), "--json").stdout)
    assert counts["records"] == counts["ok"] == 1000
    rows = [json.loads(x) for x in out.read_text().splitlines()]
    assert [r["id"] for r in rows] == [f"r{i}" for i in range(1000)]  # input order, one line each
    assert all(r["ok"] and r["text"] == "ok" and r["mode"] == "on_demand" for r in rows)

    # Ledger: one on-demand event per record at the catalog price of the model it is priced as.
    events = open_store(ledger_path).query(
        "SELECT request_id, mode, input_tokens, output_tokens, cost_usd, event_id FROM usage_events "
        "WHERE batch_job_id = ?",
        [job_id],
    )
    assert len(events) == 1000 and {e["mode"] for e in events} == {"on_demand"}
    for e in events[:50]:
        expected = compute_cost(Usage(e["input_tokens"], e["output_tokens"]), PRICE_AS, None, "on_demand").total_usd
        assert Decimal(str(e["cost_usd"])) == expected > 0
        assert e["event_id"] == record_event_id(job_id, e["request_id"])
    assert Decimal(str(listed[0]["cost_usd"])) == sum(Decimal(str(e["cost_usd"])) for e in events)


def test_sigkill_three_times_then_resume_answers_each_record_once(tmp_path: Path, ledger_path: Path) -> None:
    total = 600
    src = tmp_path / "in.jsonl"
    src.write_text("\n".join(plain(total)) + "\n")
    # 2 calls in flight x 30 ms each: ~65 records/s, so the whole run takes ~10 s.
    with InstantOpenAI(delay_s=0.03) as url:
        cfg = config_for(tmp_path, url)
        base = [TOKENOMY, "batch"]
        cmd = base + [
            "submit",
            str(src),
            "--model",
            "upstream",
            "--config",
            str(cfg),
            "--backend",
            "local",
            "--json",
            "--concurrency",
            "2",
            "--ledger",
            str(ledger_path),
        ]
        job_id = None
        kills = []
        for round_no, kill_after in enumerate((60, 250, 420)):
            proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True)
            if job_id is None:
                job_id = json.loads(proc.stdout.readline())["job_id"]
                cmd = base + ["resume", job_id, "--ledger", str(ledger_path), "--json"]
            deadline = time.monotonic() + 60
            while count_results(ledger_path, job_id) < kill_after:
                assert proc.poll() is None, f"runner exited early in round {round_no}"
                assert time.monotonic() < deadline, "runner made no progress"
                time.sleep(0.05)
            os.kill(proc.pid, signal.SIGKILL)
            proc.wait(10)
            kills.append(count_results(ledger_path, job_id))
            shown = cli("batch", "status", job_id, "--ledger", str(ledger_path), "--json", check=False)
            status = json.loads(shown.stdout)
            assert status["status"] == "in_progress" and status["runner_alive"] is False
            assert shown.returncode == 1 and status["runner_exited"] is True  # nothing works on it: not "running"
        assert all(k < total for k in kills) and kills == sorted(kills), kills  # each kill landed mid-run
        final = cli("batch", "resume", job_id, "--ledger", str(ledger_path), "--json")
    summary = json.loads(final.stdout.strip().splitlines()[-1])
    assert (summary["status"], summary["done"], summary["failed"], summary["pending"]) == ("completed", total, 0, 0)

    out = tmp_path / "out.jsonl"
    cli("batch", "results", job_id, "-o", str(out), "--ledger", str(ledger_path))
    ids = [json.loads(x)["id"] for x in out.read_text().splitlines()]
    assert sorted(ids) == sorted(f"r{i}" for i in range(total)) and len(ids) == total
    store = open_store(ledger_path)
    per_record = store.query(
        "SELECT request_id, COUNT(*) AS n FROM usage_events WHERE batch_job_id = ? GROUP BY request_id", [job_id]
    )
    assert len(per_record) == total and {r["n"] for r in per_record} == {1}
    assert count_results(ledger_path, job_id) == total


def test_throttling_is_absorbed_not_surfaced(tmp_path: Path, ledger_path: Path) -> None:
    from tokenomy.emulate.limited_openai import LimitedOpenAI

    # The server allows 24k tokens/min; the runner is told 60k, so it must learn from the 429s.
    with LimitedOpenAI(tpm=24_000, burst_s=1.0) as url:
        tables = open_tables(ledger_path)
        job = upstream_job(tables, tmp_path, url, 100, max_tokens=40, concurrency=6, tpm=60_000)
        job, stats = run_job(tables, job.job_id)
    assert stats.throttled > 0  # the server did refuse...
    assert (job.status, job.done, job.failed, job.pending) == ("completed", 100, 0, 0)  # ...and nobody saw it
    assert stats.tokens_per_minute < 24_000 * 1.5  # it slowed to near the server's quota


def test_job_state_lives_in_postgres(tmp_path: Path, fresh_postgres_url: str) -> None:
    import psycopg

    with InstantOpenAI() as url:
        tables = open_tables(fresh_postgres_url)
        job = upstream_job(tables, tmp_path, url, 40)
        job, _ = run_job(tables, job.job_id)
    assert (job.status, job.done) == ("completed", 40)
    with psycopg.connect(fresh_postgres_url) as conn:
        assert conn.execute("SELECT status, records FROM batch_jobs WHERE job_id = %s", (job.job_id,)).fetchone() == (
            "completed",
            40,
        )
        assert conn.execute("SELECT COUNT(*) FROM batch_results WHERE job_id = %s", (job.job_id,)).fetchone()[0] == 40
        assert (
            conn.execute("SELECT COUNT(*) FROM usage_events WHERE batch_job_id = %s", (job.job_id,)).fetchone()[0] == 40
        )
    listed = json.loads(cli("batch", "list", "--ledger", fresh_postgres_url, "--json").stdout)
    assert [(j["job_id"], j["done"]) for j in listed] == [(job.job_id, 40)]
    out = tmp_path / "out.jsonl"
    assert export_results(open_tables(fresh_postgres_url), job.job_id, out)["ok"] == 40


def test_plan_recommends_with_numbers(tmp_path: Path) -> None:
    src = tmp_path / "in.jsonl"
    src.write_text("\n".join(plain(200, max_tokens=100)) + "\n")
    haiku = "anthropic.claude-3-haiku-20240307-v1:0"

    def plan(*extra: str) -> dict:
        return json.loads(cli("batch", "plan", str(src), "--model", haiku, "--json", *extra).stdout)

    fits = plan("--start", "00:00", "--deadline", "06:00", "--tpm-quota", "100000")
    assert fits["window_hours"] == 6 and fits["on_demand_fits"] is True and fits["recommendation"] == "on_demand"
    assert Decimal(fits["batch_usd"]) < Decimal(fits["on_demand_usd"]) and fits["batch_completion_hours"] == 24
    tight = plan("--start", "00:00", "--deadline", "06:00", "--tpm-quota", "10")
    assert tight["on_demand_fits"] is False and tight["recommendation"] == "batch"
    assert tight["on_demand_minutes"] > 360 and tight["required_tpm"] > 10
    long_window = plan("--start", "06:00", "--deadline", "06:00", "--tpm-quota", "100000")
    assert long_window["window_hours"] == 24 and long_window["recommendation"] == "batch"
    for bad_quota in ("-5", "0"):  # used to print "finishes in ~-2 min at -5 TPM" and recommend it
        refused = cli(
            "batch", "plan", str(src), "--model", haiku, "--deadline", "06:00", "--tpm-quota", bad_quota, check=False
        )
        assert refused.returncode == 2 and f"--tpm-quota {bad_quota}" in refused.stderr, refused.stderr


def test_results_to_a_folder_or_missing_folder_and_bad_poll_are_named(tmp_path: Path, ledger_path: Path) -> None:
    cases = {
        ("-o", str(tmp_path)): "is a directory",  # was pathlib's ValueError traceback
        ("-o", str(tmp_path / "no" / "x.jsonl")): "does not exist",
    }  # named x.jsonl.tmp before
    for args, expected in cases.items():
        result = cli("batch", "results", "bj-any", *args, "--ledger", str(ledger_path), check=False)
        # the option and the path
        named = f"-o {args[1]}" in result.stderr or f"'-o' / '--out' / '--output': {args[1]}" in result.stderr
        assert result.returncode == 2 and named and expected in result.stderr, result.stderr
    result = cli("batch", "wait", "bj-any", "--poll", "-1", "--ledger", str(ledger_path), check=False)
    assert result.returncode == 2 and "--poll" in result.stderr  # was time.sleep(-1)'s ValueError once running
    for poll in ("inf", "1e300"):  # time.sleep's OverflowError once running
        result = cli("batch", "wait", "bj-any", "--poll", poll, "--ledger", str(ledger_path), check=False)
        assert (
            result.returncode == 2 and f"'--poll': '{poll}': must be a finite number from 0.1 to 86400" in result.stderr
        ), result.stderr
    src = tmp_path / "in.jsonl"
    src.write_text("\n".join(plain(2)) + "\n")
    for flag, value in (("--rpm", "0"), ("--tpm", "-5"), ("--tpm", "nan")):  # silently meant "no limit"
        result = cli(
            "batch", "submit", str(src), "--model", "local", flag, value, "--ledger", str(ledger_path), check=False
        )
        assert result.returncode == 2 and f"{flag} " in result.stderr and "above 0" in result.stderr, result.stderr
    # An option only another backend reads did nothing, silently (a Bedrock timeout on a local job, ...).
    for backend, flag, value, reader in (
        ("local", "--timeout-hours", "24", "bedrock"),
        ("local", "--role-arn", "arn:aws:iam::1:role/r", "bedrock"),
        ("bedrock", "--rpm", "60", "local"),
        ("openai", "--project", "p", "vertex"),
    ):
        result = cli(
            "batch",
            "submit",
            str(src),
            "--model",
            "local",
            "--backend",
            backend,
            flag,
            value,
            "--ledger",
            str(ledger_path),
            check=False,
        )
        said = f"{flag} is read by --backend {reader} only; with --backend {backend} it would do nothing"
        assert result.returncode == 2 and said in result.stderr, result.stderr
    listed = cli("batch", "list", "--json", "--ledger", str(ledger_path), check=False)  # no job was made: the
    assert listed.stdout.strip() == "[]" or (listed.returncode == 2 and "no ledger at" in listed.stderr)  # nor a ledger


def test_remote_backend_below_minimum_says_what_to_do(tmp_path: Path, ledger_path: Path) -> None:
    src = tmp_path / "in.jsonl"
    src.write_text("\n".join(plain(5)) + "\n")
    result = cli(
        "batch",
        "submit",
        str(src),
        "--model",
        "anthropic.claude-3-haiku-20240307-v1:0",
        "--backend",
        "bedrock",
        "--ledger",
        str(ledger_path),
        check=False,
    )
    assert result.returncode == 2
    assert "below" in result.stderr and "minimum of 100" in result.stderr and "--backend local" in result.stderr
    assert not ledger_path.exists()  # no job was stored, nor even a new ledger made


def test_remote_jobs_a_provider_could_not_run_or_price_are_refused_before_anything_is_stored(
    tmp_path: Path, ledger_path: Path, monkeypatch
) -> None:
    for key in ("OPENAI_API_KEY", "OPENAI_BASE_URL", "TOKENOMY_BEDROCK_ROLE_ARN", "TOKENOMY_BEDROCK_S3_URI"):
        monkeypatch.delenv(key, raising=False)
    src = tmp_path / "in.jsonl"
    src.write_text("\n".join(plain(100)) + "\n")
    haiku = "anthropic.claude-3-haiku-20240307-v1:0"
    cases = [  # (args, what the one error line names)
        # No batch price: the job ran and was billed provider-side, then every status/results failed pricing it
        # and its answers never reached the ledger (the job stayed `submitted` for good).
        (
            ["--model", "gemini-2.0-flash", "--backend", "gemini", "--endpoint-url", "http://127.0.0.1:9"],
            "has no batch price",
        ),
        # Settings only the provider call checked left a failed job behind, which resume could not mend
        # (`resume` takes no --role-arn / --s3-uri).
        (["--model", "gpt-4o-mini", "--backend", "openai"], "OPENAI_API_KEY"),
        (["--model", haiku, "--backend", "bedrock", "--s3-uri", "s3://b/p"], "--role-arn"),
        (["--model", haiku, "--backend", "bedrock", "--role-arn", "arn:aws:iam::1:role/R"], "--s3-uri"),
        (
            ["--model", haiku, "--backend", "bedrock", "--role-arn", "arn:aws:iam::1:role/R", "--s3-uri", "b/p"],
            "not an S3 URI",
        ),
        # botocore refused it after the input was uploaded to S3: a failed job and an orphan object were left.
        (
            [
                "--model",
                haiku,
                "--backend",
                "bedrock",
                "--role-arn",
                "arn:aws:iam::1:role/R",
                "--s3-uri",
                "s3://b/p",
                "--timeout-hours",
                "2",
            ],
            "--timeout-hours 2: a Bedrock batch job's timeout is 24 to 168 hours",
        ),
    ]
    for args, expected in cases:
        result = cli("batch", "submit", str(src), *args, "--ledger", str(ledger_path), "--json", check=False)
        assert result.returncode == 2 and expected in result.stderr, (args, result.stderr)
        assert result.stdout == "", result.stdout  # no {"job_id": ...} line for a job that was never made
    assert not ledger_path.exists()  # no job was stored, nor even a new ledger made


@pytest.mark.slow
def test_small_batch_on_the_local_model(tmp_path: Path, ledger_path: Path) -> None:
    src = tmp_path / "in.jsonl"
    src.write_text(
        "\n".join(json.dumps({"id": f"c{i}", "prompt": f"Name a colour ({i}).", "max_tokens": 4}) for i in range(6))
        + "\n"
    )
    tables = open_tables(ledger_path)
    job = create_job(tables, src, "local", "local", run_settings={"concurrency": 2})
    job, _stats = run_job(tables, job.job_id)
    assert (job.status, job.done, job.failed) == ("completed", 6, 0)
    results = tables.results(job.job_id)
    assert all(r["text"] and r["output_tokens"] >= 1 and r["mode"] == "on_demand" for r in results.values())
    events = open_store(ledger_path).query(
        "SELECT provider, cost_usd FROM usage_events WHERE batch_job_id = ?", [job.job_id]
    )
    assert len(events) == 6 and {e["provider"] for e in events} == {"local"}
    assert all(Decimal(str(e["cost_usd"])) == 0 for e in events)  # the local model is free


@pytest.mark.slow
def test_a_local_job_priced_as_another_model_bills_its_short_cache_reads_as_input(tmp_path: Path, ledger_path: Path):
    # The local model priced as Claude Haiku 4.5 read the records' shared system prompt from its KV cache and each
    # record's row said a cache read at Haiku's price; Haiku 4.5 caches no prefix under 4,096 tokens, so Bedrock
    # bills it as input.
    haiku = "anthropic.claude-haiku-4-5-20251001-v1:0"
    src, config = tmp_path / "in.jsonl", tmp_path / "tokenomy.yaml"
    system = "You are a support assistant. Answer in one word."
    src.write_text(
        "\n".join(
            json.dumps({"id": f"r{i}", "system": system, "prompt": q, "max_tokens": 2}) for i, q in enumerate("ab")
        )
    )
    config.write_text(f"models:\n  stand-in:\n    provider: local\n    model: local\n    price_as: {haiku}\n")
    tables = open_tables(ledger_path)
    ran = [
        run_job(tables, create_job(tables, src, name, "local", config_path=cfg, run_settings={"concurrency": 1}).job_id)
        for name, cfg in (("local", None), ("stand-in", str(config)))
    ]
    assert [(job.status, job.done) for job, _ in ran] == [("completed", 2)] * 2
    query = "SELECT input_tokens, cache_read_tokens, output_tokens, cost_usd FROM usage_events WHERE batch_job_id = ?"
    own, stood_in = (open_store(ledger_path).query(f"{query} ORDER BY request_id", [job.job_id]) for job, _ in ran)
    assert own[1]["cache_read_tokens"] > 0  # the local model, priced as itself, keeps the reads of its cache
    total = [r["input_tokens"] + r["cache_read_tokens"] for r in own]
    assert [(r["input_tokens"], r["cache_read_tokens"]) for r in stood_in] == [(t, 0) for t in total]
    billed = [compute_cost(Usage(r["input_tokens"], r["output_tokens"]), haiku).total_usd for r in stood_in]
    assert [Decimal(str(r["cost_usd"])) for r in stood_in] == billed


def test_detached_run_can_be_cancelled_and_resumed(tmp_path: Path, ledger_path: Path) -> None:
    src = tmp_path / "in.jsonl"
    src.write_text("\n".join(plain(200)) + "\n")
    # 0.08 s an answer: the run lasts 16 s, long enough for `batch cancel` to land on a busy machine (each command
    # starts Python and may wait for the runner's hold on the DuckDB file; at 0.03 s the run sometimes ended first).
    with InstantOpenAI(delay_s=0.08) as url:
        cfg = config_for(tmp_path, url)
        lines = cli(
            "batch",
            "submit",
            str(src),
            "--model",
            "upstream",
            "--config",
            str(cfg),
            "--json",
            "--detach",
            "--concurrency",
            "1",
            "--ledger",
            str(ledger_path),
        ).stdout.splitlines()
        job_id = json.loads(lines[0])["job_id"]
        assert json.loads(lines[-1])["runner_pid"] > 0  # returned at once; a background runner does the work
        deadline = time.monotonic() + 30
        while count_results(ledger_path, job_id) < 20:
            assert time.monotonic() < deadline
            time.sleep(0.1)
        assert (
            json.loads(cli("batch", "cancel", job_id, "--ledger", str(ledger_path), "--json").stdout)["status"]
            == "stopping"
        )
        waited = json.loads(
            cli(
                "batch", "wait", job_id, "--timeout", "30", "--poll", "0.2", "--ledger", str(ledger_path), "--json"
            ).stdout
        )
        assert waited["status"] == "stopped" and 20 <= waited["done"] < 200
        assert waited["pending"] == 200 - waited["done"]
        out = tmp_path / "partial.jsonl"
        counts = json.loads(
            cli("batch", "results", job_id, "-o", str(out), "--ledger", str(ledger_path), "--json").stdout
        )
        assert counts["records"] == 200 and counts["missing"] == 200 - waited["done"]
        assert all("resume" in json.loads(x)["error"] for x in out.read_text().splitlines() if not json.loads(x)["ok"])
        resumed = cli("batch", "resume", job_id, "--ledger", str(ledger_path), "--json")
        final = json.loads(resumed.stdout.splitlines()[-1])
    assert (final["status"], final["done"], final["pending"]) == ("completed", 200, 0)


def test_resume_detach_refuses_a_job_whose_runner_is_still_alive(tmp_path: Path, ledger_path: Path) -> None:
    import socket

    src = tmp_path / "in.jsonl"
    src.write_text("\n".join(plain(3)) + "\n")
    tables = open_tables(ledger_path)
    job = create_job(tables, src, "local", "local")
    # A runner that is still stopping after `batch cancel`: this live process stands in for it.
    tables.update_job(job.job_id, status="stopping", runner_pid=os.getpid(), runner_host=socket.gethostname())
    result = cli("batch", "resume", job.job_id, "--detach", "--ledger", str(ledger_path), check=False)
    # Before, it answered 0 with a new runner_pid whose process at once refused the job, unseen.
    assert result.returncode == 2 and "still has a runner" in result.stderr and "batch wait" in result.stderr


def test_ctrl_c_says_what_was_kept_and_how_to_continue(tmp_path: Path, ledger_path: Path) -> None:
    src = tmp_path / "in.jsonl"
    src.write_text("\n".join(plain(200)) + "\n")
    with InstantOpenAI(delay_s=0.03) as url:
        proc = subprocess.Popen(
            [
                TOKENOMY,
                "batch",
                "submit",
                str(src),
                "--model",
                "upstream",
                "--config",
                str(config_for(tmp_path, url)),
                "--concurrency",
                "1",
                "--json",
                "--ledger",
                str(ledger_path),
            ],
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
            preexec_fn=interruptible,
        )
        job_id = json.loads(proc.stdout.readline())["job_id"]
        deadline = time.monotonic() + 30
        while count_results(ledger_path, job_id) < 5:
            assert time.monotonic() < deadline and proc.poll() is None
            time.sleep(0.05)
        proc.send_signal(signal.SIGINT)
        _, err = proc.communicate(timeout=60)
    # Before, Ctrl-C ended the command with exit 130 and not a word.
    assert proc.returncode == 130 and "Traceback" not in err, err
    assert "records answered and kept" in err and f"tokenomy batch resume {job_id}" in err, err


def test_crash_between_ledger_write_and_result_write_counts_once(tmp_path: Path, ledger_path: Path) -> None:
    from tokenomy.batch.backends import RecordResult
    from tokenomy.batch.records import record_results

    with InstantOpenAI() as url:
        tables = open_tables(ledger_path)
        job = upstream_job(tables, tmp_path, url, 30)
        # A runner died after writing the ledger events of r0..r4 but before their result rows.
        answered = [
            (
                0,
                RecordResult(f"r{i}", text="ok", usage=Usage(7, 8), model=PRICE_AS),
                "on_demand",
                "openai",
                PRICE_AS,
                None,
            )
            for i in range(5)
        ]
        record_results(tables, job, answered)
        tables.execute("DELETE FROM batch_results WHERE job_id = ?", [job.job_id])
        job, stats = run_job(tables, job.job_id)
        assert stats.answered == 30 and (job.status, job.done) == ("completed", 30)  # r0..r4 were asked again...
        record_results(tables, job, answered)  # ...and writing them once more changes nothing
    rows = open_store(ledger_path).query(
        "SELECT request_id, COUNT(*) AS n FROM usage_events WHERE batch_job_id = ? GROUP BY request_id", [job.job_id]
    )
    assert len(rows) == 30 and {r["n"] for r in rows} == {1}  # ...but each is in the ledger once
    assert len(tables.results(job.job_id)) == 30


def test_records_given_up_after_retries_keep_the_reason(tmp_path: Path) -> None:
    import threading

    from tokenomy.batch.formats import read_records
    from tokenomy.batch.local_runner import LocalRunner
    from tokenomy.errors import ProviderError
    from tokenomy.resilience.retry import RetryPolicy

    class Unreachable:  # what an OpenAI-compatible server that is down looks like to the runner
        def chat(self, request, mode="on_demand", policy=None):
            raise ProviderError("cannot reach http://127.0.0.1:9/v1/chat/completions", kind="server_error")

    records, _ = read_records(plain(3))
    runner = LocalRunner(Unreachable(), "upstream", 2, retry=RetryPolicy(max_attempts=2, base_delay_s=0.01))
    stats = runner.run(records, lambda rec, resp: None, lambda rec, err: None, threading.Event(), False)
    # Before, the job only said "3 records not answered after retries", never why.
    assert stats.gave_up == 3 and "cannot reach http://127.0.0.1:9" in stats.last_error


def test_a_job_whose_every_record_failed_says_why(tmp_path: Path, ledger_path: Path) -> None:
    from tokenomy.errors import ProviderError

    class Refusing:  # what a Bedrock model looks like to the runner with no AWS credentials
        def chat(self, request, mode="on_demand", policy=None):
            raise ProviderError("no AWS credentials found; set AWS_PROFILE", kind="client_error")

    tables = open_tables(ledger_path)
    job = upstream_job(tables, tmp_path, "http://127.0.0.1:9/v1", 3)
    job, _ = run_job(tables, job.job_id, client=Refusing())
    # It said only "every record failed": `batch submit` ended there, exit 1, without the reason.
    assert (job.status, job.failed) == ("failed", 3)
    assert job.message == (
        "every record failed (last error: client_error: no AWS credentials found; set AWS_PROFILE); "
        f"`tokenomy batch results {job.job_id} -o FILE` lists each"
    )


def test_cancelling_a_job_that_has_ended_says_so(tmp_path: Path, ledger_path: Path, monkeypatch, capsys) -> None:
    from helpers.cli import run_cli
    from tokenomy.errors import ProviderError

    class Refusing:
        def chat(self, request, mode="on_demand", policy=None):
            raise ProviderError("model not found", kind="client_error")

    tables = open_tables(ledger_path)
    job = upstream_job(tables, tmp_path, "http://127.0.0.1:9/v1", 2)
    run_job(tables, job.job_id, client=Refusing())
    # It printed the job's table, status failed, exit 0: nothing said the cancel had nothing to stop.
    code, out, err = run_cli(monkeypatch, capsys, "batch", "cancel", job.job_id, "--ledger", str(ledger_path), "--json")
    assert code == 0 and json.loads(out)["status"] == "failed"
    assert err == f"note: {job.job_id} had already ended (failed); nothing to stop\n"


def test_answers_reporting_cache_tokens_for_a_model_without_cache_prices_are_kept_and_priced_as_input(
    tmp_path: Path, ledger_path: Path
) -> None:
    from helpers.scripted_openai import ScriptedOpenAI

    # An OpenAI-compatible server with prefix caching (vLLM, llama.cpp) reports cached tokens; the model is priced
    # as Claude 3 Haiku, which has no cache prices. The gateway prices those tokens as input; the batch runner raised
    # instead, failing the job and losing every answer the server had given (and been paid for).
    upstream = ScriptedOpenAI([])
    upstream.usage = {
        "prompt_tokens": 1000,
        "completion_tokens": 10,
        "total_tokens": 1010,
        "prompt_tokens_details": {"cached_tokens": 800},
    }
    config = tmp_path / "tokenomy.yaml"
    config.write_text(
        f"models:\n  upstream:\n    provider: openai\n    model: m\n    base_url: {upstream.url}\n"
        "    price_as: anthropic.claude-3-haiku-20240307-v1:0\n"
    )
    src = tmp_path / "in.jsonl"
    src.write_text("\n".join(plain(3)) + "\n")
    tables = open_tables(ledger_path)
    try:
        job = create_job(tables, src, "upstream", "local", config_path=str(config))
        job, _ = run_job(tables, job.job_id)
    finally:
        upstream.close()
    assert (job.status, job.done, job.failed) == ("completed", 3, 0)
    each = Decimal(1000) * Decimal("0.25") / 10**6 + Decimal(10) * Decimal("1.25") / 10**6
    events = open_store(ledger_path).events()
    assert [(e.input_tokens, e.cache_read_tokens, e.cost_usd) for e in events] == [(1000, 0, each)] * 3
    out = tmp_path / "out.jsonl"
    export_results(tables, job.job_id, out)
    lines = [json.loads(line) for line in out.read_text().splitlines()]
    assert [(line["usage"]["input_tokens"], Decimal(line["cost_usd"])) for line in lines] == [(1000, each)] * 3


@pytest.mark.parametrize(
    "error, again",
    [
        ("429: Resource has been exhausted (e.g. check quota).", True),
        ("503: overloaded", True),
        ("RESOURCE_EXHAUSTED: quota", True),
        ("400: model UNAVAILABLE in this region", False),
        ("client_error: 429 in the text", False),
        ("invalid_request: bad body", False),
        (None, False),
    ],
)
def test_only_a_throttled_or_server_failed_record_is_sent_again_by_resume(error, again) -> None:
    from tokenomy.batch.backends import transient

    assert transient(error) is again


def test_an_attempt_the_server_billed_without_an_answer_is_in_the_ledger_beside_the_records_answer(
    tmp_path: Path, ledger_path: Path
) -> None:
    from helpers.scripted_openai import ScriptedOpenAI

    # One answer breaks off halfway through its body and one outwaits the model's timeout after the request went out:
    # the server generated both, and bills them, before the runner's retry was answered. The runner's client recorded
    # nothing, so the ledger had one row per record and missed both bills. A 500 generated nothing: no row.
    upstream = ScriptedOpenAI([(200, {}, "cutbody"), (200, {}, "late"), (500, {})])
    config = tmp_path / "tokenomy.yaml"
    config.write_text(
        f"models:\n  upstream:\n    provider: openai\n    model: m\n    base_url: {upstream.url}\n"
        f"    price_as: {PRICE_AS}\n    timeout_s: 0.5\n"
    )
    src = tmp_path / "in.jsonl"
    src.write_text("\n".join(plain(3)) + "\n")
    tables = open_tables(ledger_path)
    try:
        job = create_job(tables, src, "upstream", "local", config_path=str(config), run_settings={"concurrency": 1})
        job, stats = run_job(tables, job.job_id)
    finally:
        upstream.close()
    assert (job.status, job.done, stats.answered, upstream.calls) == ("completed", 3, 3, 6)
    events = open_store(ledger_path).events()
    assert {e.batch_job_id for e in events} == {job.job_id}
    answers = sorted((e.request_id, e.event_id) for e in events if e.outcome == "ok")
    assert answers == [(f"r{i}", record_event_id(job.job_id, f"r{i}")) for i in range(3)]  # each answer once
    billed = [e for e in events if e.outcome != "ok"]
    assert sorted(e.outcome for e in billed) == ["server_error", "timeout"]
    estimate = compute_cost(Usage(billed[0].input_tokens, 0), PRICE_AS, None, "on_demand", one_call=True).total_usd
    assert all(e.request_id in {"r0", "r1", "r2"} and e.input_tokens > 0 and e.cost_usd == estimate for e in billed)
    assert job.cost_usd == sum(e.cost_usd for e in events)  # the job's cost is all it was billed, not its answers'
    assert require_job(tables, job.job_id).cost_usd == job.cost_usd  # as `batch status` reads it again


def test_a_runner_pid_reused_by_another_process_after_a_restart_does_not_block_resume(
    tmp_path: Path, ledger_path: Path
) -> None:
    """A reboot or container restart kills the runner and hands its pid to some other process. Taken for the
    runner, it made `batch resume` refuse the job ("already running") and `batch cancel` leave it "stopping",
    for ever. A process that started after the runner's last heartbeat is not the runner."""
    import socket
    from datetime import timedelta

    from tokenomy.ledger.events import utcnow

    total = 40
    with InstantOpenAI(delay_s=0.05) as url:
        tables = open_tables(ledger_path)
        job = upstream_job(tables, tmp_path, url, total)
        # This test's own process stands in for a live runner: it started before its (fresh) heartbeat.
        tables.update_job(
            job.job_id,
            status="in_progress",
            runner_pid=os.getpid(),
            runner_host=socket.gethostname(),
            heartbeat_at=utcnow(),
        )
        refused = cli("batch", "resume", job.job_id, "--ledger", str(ledger_path), check=False)
        assert refused.returncode == 2 and "already running" in refused.stderr, refused.stderr
        # The runner's last heartbeat was a minute ago; the process holding its pid now started since.
        with subprocess.Popen(["sleep", "60"]) as other:
            tables.update_job(job.job_id, runner_pid=other.pid, heartbeat_at=utcnow() - timedelta(minutes=1))
            try:
                resumed = cli("batch", "resume", job.job_id, "--ledger", str(ledger_path), "--json", check=False)
            finally:
                other.kill()
    assert resumed.returncode == 0, resumed.stderr
    summary = json.loads(resumed.stdout.strip().splitlines()[-1])
    assert (summary["status"], summary["done"], summary["pending"]) == ("completed", total, 0)
    per_record = open_store(ledger_path).query(
        "SELECT request_id, COUNT(*) AS n FROM usage_events WHERE batch_job_id = ? GROUP BY request_id", [job.job_id]
    )
    assert len(per_record) == total and {r["n"] for r in per_record} == {1}


def test_sigkill_loses_no_answer_the_server_billed_and_resume_sends_none_again(
    tmp_path: Path, ledger_path: Path
) -> None:
    """Answers are committed in groups, each waiting for the previous write: SIGKILLed, a runner lost the answers
    it held (15-20 at ~35 records/s), billed by the server but never in the ledger, and resume sent their records
    again, billed twice. Only the calls in flight at the kill (at most --concurrency) may be unaccounted for."""

    class Counting(InstantOpenAI):
        calls = 0

        def _refusal(self, body: bytes) -> bytes | None:
            Counting.calls += 1
            return None

    total, concurrency = 300, 2
    src = tmp_path / "in.jsonl"
    src.write_text("\n".join(plain(total)) + "\n")
    with Counting(delay_s=0.02) as url:
        cmd = [
            TOKENOMY,
            "batch",
            "submit",
            str(src),
            "--model",
            "upstream",
            "--config",
            str(config_for(tmp_path, url)),
            "--backend",
            "local",
            "--json",
            "--concurrency",
            str(concurrency),
            "--ledger",
            str(ledger_path),
        ]
        proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True)
        job_id = json.loads(proc.stdout.readline())["job_id"]
        deadline = time.monotonic() + 60
        while count_results(ledger_path, job_id) < 100:
            assert proc.poll() is None and time.monotonic() < deadline, "the runner made no progress"
            time.sleep(0.05)
        os.kill(proc.pid, signal.SIGKILL)
        proc.wait(10)
        assert count_results(ledger_path, job_id) < total  # the kill landed mid-run
        cli("batch", "cancel", job_id, "--ledger", str(ledger_path), "--json")
        assert Counting.calls - count_results(ledger_path, job_id) <= concurrency  # `cancel` commits them too
        status = json.loads(cli("batch", "status", job_id, "--ledger", str(ledger_path), "--json", check=False).stdout)
        assert Counting.calls - status["done"] <= concurrency  # `status` commits what the runner got, resume or not
        final = cli("batch", "resume", job_id, "--ledger", str(ledger_path), "--json")
    summary = json.loads(final.stdout.strip().splitlines()[-1])
    assert (summary["status"], summary["done"], summary["pending"]) == ("completed", total, 0)
    rows = open_store(ledger_path).query(
        "SELECT request_id, COUNT(*) AS n FROM usage_events WHERE batch_job_id = ? GROUP BY request_id", [job_id]
    )
    assert len(rows) == total and {r["n"] for r in rows} == {1}
    assert Counting.calls - total <= concurrency, f"{Counting.calls} calls billed, {total} in the ledger"
    assert not list(Path(f"{ledger_path}.journal").glob("batch-*"))  # committed, then deleted


@pytest.mark.postgres
def test_thousands_of_answers_a_killed_runner_journaled_are_committed_on_postgres(
    tmp_path: Path, fresh_postgres_url: str, monkeypatch
) -> None:
    # A runner killed after 5,000 answers leaves them all in its journal: committed in one statement of 75,000
    # parameters PostgreSQL refused, and the file, never deleted, failed every later status, wait and resume the same.
    from tokenomy.batch.backends import RecordResult
    from tokenomy.batch.runner_journal import RunnerJournal, commit_left_behind

    monkeypatch.chdir(tmp_path)  # a server ledger's journal folder is under the working directory
    tables = open_tables(fresh_postgres_url)
    job = upstream_job(tables, tmp_path, "http://127.0.0.1:9", 5000)
    journal = RunnerJournal(tables, job.job_id)
    for n in range(5000):
        answer = RecordResult(f"r{n}", text="ok", usage=Usage(12, 3), model="upstream")
        journal.item((0, answer, "on_demand", "openai", "upstream", None))
    journal.release()  # the runner is gone; its file stays
    assert commit_left_behind(tables, job) == 5000
    assert count_results_in(tables, job.job_id) == 5000
    assert not list(tmp_path.glob(".tokenomy/journal-*/batch-*"))  # committed, then deleted


def count_results_in(tables, job_id: str) -> int:
    return int(tables.query(f"SELECT COUNT(*) AS n FROM batch_results WHERE job_id = {tables.p}", [job_id])[0]["n"])


def test_a_journal_folder_that_cannot_be_made_costs_the_crash_safety_not_the_run(
    tmp_path: Path, ledger_path: Path, caplog
) -> None:
    # A read-only working directory (a server ledger's journal is under it) or a full disk: the run used to fail at
    # its start, after claiming the job.
    Path(f"{ledger_path}.journal").write_text("a file where the folder would go")
    with InstantOpenAI() as url:
        tables = open_tables(ledger_path)
        job, _ = run_job(tables, upstream_job(tables, tmp_path, url, 5).job_id)
    assert (job.status, job.done) == ("completed", 5)
    assert "journal" in caplog.text and "cannot be written" in caplog.text


def test_a_dead_runners_journal_another_process_is_committing_is_waited_for_not_skipped(
    tmp_path: Path, ledger_path: Path
) -> None:
    # `batch status` committing a dead runner's file holds its lock; a `resume` starting then took the file for a live
    # runner's, skipped it, and sent its records again (billed twice).
    from tokenomy.batch.backends import RecordResult
    from tokenomy.batch.runner_journal import RunnerJournal, commit_left_behind

    tables = open_tables(ledger_path)
    job = upstream_job(tables, tmp_path, "http://127.0.0.1:9", 3)
    journal = RunnerJournal(tables, job.job_id)
    for n in range(3):
        journal.item(
            (
                0,
                RecordResult(f"r{n}", text="ok", usage=Usage(12, 3), model="upstream"),
                "on_demand",
                "openai",
                "upstream",
                None,
            )
        )
    journal.release()
    gone = subprocess.run([sys.executable, "-c", "import os; print(os.getpid())"], capture_output=True, text=True)
    dead = journal.path.with_name(journal.path.name.replace(f"-{os.getpid()}-", f"-{gone.stdout.strip()}-"))
    journal.path.rename(dead)  # a runner that is gone
    holder = subprocess.Popen(
        [
            sys.executable,
            "-c",
            "import fcntl, sys, time; f = open(sys.argv[1], 'rb'); "
            "fcntl.flock(f, fcntl.LOCK_EX); print('held', flush=True); time.sleep(1)",
            str(dead),
        ],
        stdout=subprocess.PIPE,
        text=True,
    )
    assert holder.stdout.readline().strip() == "held"  # another process is committing it
    assert commit_left_behind(tables, job) == 3  # waited for the lock, then committed
    holder.wait(10)
    assert count_results_in(tables, job.job_id) == 3


def test_an_answer_committed_from_a_runners_journal_is_recorded_when_it_was_answered(
    tmp_path: Path, ledger_path: Path
) -> None:
    # Committed days later (the next status or resume), it was recorded at the commit's time: another day, another
    # budget period.
    from datetime import UTC, datetime

    from tokenomy.batch.backends import RecordResult
    from tokenomy.batch.runner_journal import RunnerJournal, commit_left_behind

    tables = open_tables(ledger_path)
    job = upstream_job(tables, tmp_path, "http://127.0.0.1:9", 1)
    answered = datetime(2026, 11, 30, 23, 59, 59, 250000, tzinfo=UTC)
    journal = RunnerJournal(tables, job.job_id)
    journal.item(
        (
            0,
            RecordResult("r0", text="ok", usage=Usage(12, 3), model="upstream", answered_at=answered),
            "on_demand",
            "openai",
            "upstream",
            None,
        )
    )
    journal.release()
    assert commit_left_behind(tables, job) == 1
    [row] = open_store(ledger_path).events()
    assert row.ts == answered


def test_submit_names_its_skipped_lines_from_the_one_validation_it_ran(tmp_path: Path, monkeypatch) -> None:
    # The skipped lines were found by validating the whole input a second time after the job was stored.
    from typer.testing import CliRunner

    import tokenomy.batch.validate as validate
    from tokenomy.cli import app

    reads = []
    read_file = validate.read_file
    monkeypatch.setattr(validate, "read_file", lambda path: reads.append(path) or read_file(path))
    top_p = {
        "custom_id": "t",
        "method": "POST",
        "url": "/v1/chat/completions",
        "body": {"messages": [{"role": "user", "content": "hi"}], "top_p": 0.1},
    }
    src = tmp_path / "in.jsonl"
    src.write_text(
        "\n".join([json.dumps(top_p), *plain(2), '{"id": "x", "prompt": ', json.dumps({"prompt": "p"})]) + "\n"
    )
    with InstantOpenAI() as url:
        args = [
            "batch",
            "submit",
            str(src),
            "--model",
            "upstream",
            "--config",
            str(config_for(tmp_path, url)),
            "--backend",
            "local",
            "--ledger",
            str(tmp_path / "l.duckdb"),
        ]
        shown = CliRunner().invoke(app, args)
        assert shown.exit_code == 0, shown.output
        assert len(reads) == 1, reads
        as_json = CliRunner().invoke(app, [*args, "--json"])
    assert as_json.exit_code == 0, as_json.output
    assert len(reads) == 2, reads
    lines = [line for line in shown.stdout.splitlines() if "skipped line" in line]
    assert [line.split(":")[0].strip() for line in lines] == ["skipped line 1", "skipped line 4", "skipped line 5"]
    assert "skipped line 1: body.top_p: --backend local rebuilds" in lines[0]
    summary = json.loads(as_json.stdout.strip().splitlines()[-1])
    assert summary["bad_lines"] == 3
    assert [(b["line"], b["field"]) for b in summary["bad"]] == [(1, "body.top_p"), (4, "-"), (5, "id")]


def test_a_run_that_answered_no_record_is_failed_and_exits_1(
    tmp_path: Path, ledger_path: Path, monkeypatch, capsys
) -> None:
    # The upstream was down for the whole run: every record was given up after its retries, and the job was said to
    # be `partially_completed` (0 done, 0 failed, 3 pending) with exit status 0, so `submit ... && use the results`
    # went on with nothing. It is `failed` now, saying why and that resume tries again, and the command exits 1.
    from helpers.cli import run_cli
    from tokenomy.batch import local_runner
    from tokenomy.resilience.retry import RetryPolicy

    def quick(**settings):  # two attempts 10 ms apart, not ten over a minute and a half
        return RetryPolicy(
            **{**settings, "max_attempts": min(2, settings.get("max_attempts", 2)), "base_delay_s": 0.01}
        )

    monkeypatch.setattr(local_runner, "RetryPolicy", quick)
    src = tmp_path / "in.jsonl"
    src.write_text("\n".join(plain(3)) + "\n")
    config = config_for(tmp_path, "http://127.0.0.1:9/v1")  # nothing listens on port 9
    code, out, err = run_cli(
        monkeypatch,
        capsys,
        "batch",
        "submit",
        str(src),
        "--model",
        "upstream",
        "--config",
        str(config),
        "--ledger",
        str(ledger_path),
        "--json",
    )
    job = json.loads(out.splitlines()[-1])
    assert (code, job["status"], job["done"], job["pending"]) == (1, "failed", 0, 3), err
    assert "3 records not answered after retries" in job["message"] and "127.0.0.1:9" in job["message"]
    code, out, _ = run_cli(
        monkeypatch, capsys, "batch", "resume", job["job_id"], "--ledger", str(ledger_path), "--json", "--quiet"
    )
    assert code == 1 and json.loads(out.splitlines()[-1])["status"] == "failed"
    code, out, _ = run_cli(monkeypatch, capsys, "batch", "wait", job["job_id"], "--ledger", str(ledger_path), "--json")
    assert code == 1 and json.loads(out)["status"] == "failed"


def test_a_cancel_before_the_detached_runner_starts_is_kept_and_no_record_is_sent(
    tmp_path: Path, ledger_path: Path
) -> None:
    # `batch submit --detach` then `batch cancel` at once: cancel found no runner yet and said "stopped", then the
    # runner started and ran (and billed) every record, ending "completed". `resume --detach` of a stopped job then a
    # cancel alike: the job was final, so cancel did nothing. A runner started in the background now takes the job
    # only if it is still waiting for it.
    from tokenomy.batch.jobs import cancel

    def ended(pid: int) -> None:
        deadline = time.monotonic() + 60
        while Path(f"/proc/{pid}").exists() and Path(f"/proc/{pid}/stat").read_text().split(")")[-1].split()[0] != "Z":
            assert time.monotonic() < deadline, "the background runner did not exit"
            time.sleep(0.1)

    src = tmp_path / "in.jsonl"
    src.write_text("\n".join(plain(5)) + "\n")
    with InstantOpenAI() as url:
        cfg = config_for(tmp_path, url)
        lines = cli(
            "batch",
            "submit",
            str(src),
            "--model",
            "upstream",
            "--config",
            str(cfg),
            "--json",
            "--detach",
            "--ledger",
            str(ledger_path),
        ).stdout.splitlines()
        job_id, pid = json.loads(lines[0])["job_id"], json.loads(lines[-1])["runner_pid"]
        tables = open_tables(ledger_path)
        assert cancel(tables, job_id).status == "stopped"  # in this process: before the runner has started
        ended(pid)
        job = require_job(tables, job_id)
        assert (job.status, job.done, job.pending) == ("stopped", 0, 5)
        resumed = json.loads(cli("batch", "resume", job_id, "--detach", "--json", "--ledger", str(ledger_path)).stdout)
        assert cancel(tables, job_id).status == "stopped"
        ended(resumed["runner_pid"])
        job = require_job(tables, job_id)
        assert (job.status, job.done) == ("stopped", 0)
        final = json.loads(cli("batch", "resume", job_id, "--json", "--ledger", str(ledger_path)).stdout)
    assert (final["status"], final["done"]) == ("completed", 5)


def test_a_background_runner_that_crashes_is_reported_with_its_log_and_the_job_resumes(
    tmp_path: Path, ledger_path: Path
) -> None:
    # The detached runner's stderr went to /dev/null: one that died (here: its config gone) said nothing, and the job
    # looked in progress for ever (`batch status` exit 0). Its stderr is now kept in a log beside the job's state, and
    # status and wait say the runner exited, name the log, and exit 1; the job is left to resume.
    src = tmp_path / "in.jsonl"
    src.write_text("\n".join(plain(3)) + "\n")
    with InstantOpenAI() as url:
        cfg = config_for(tmp_path, url)
        tables = open_tables(ledger_path)
        job = create_job(tables, src, "upstream", "local", config_path=str(cfg))
        kept = cfg.read_text()
        cfg.unlink()
        pid = json.loads(cli("batch", "resume", job.job_id, "--detach", "--json", "--ledger", str(ledger_path)).stdout)[
            "runner_pid"
        ]
        deadline = time.monotonic() + 60
        while Path(f"/proc/{pid}").exists() and Path(f"/proc/{pid}/stat").read_text().split(")")[-1].split()[0] != "Z":
            assert time.monotonic() < deadline, "the background runner did not exit"
            time.sleep(0.1)
        status = cli("batch", "status", job.job_id, "--ledger", str(ledger_path), check=False)
        assert status.returncode == 1, status.stdout + status.stderr
        assert "runner exited (see " in status.stdout, status.stdout
        shown = json.loads(
            cli("batch", "status", job.job_id, "--json", "--ledger", str(ledger_path), check=False).stdout
        )
        log = Path(shown["runner_log"])
        assert shown["runner_alive"] is False and shown["runner_exited"] is True
        assert log.parent == Path(f"{ledger_path}.journal") and str(cfg) in log.read_text()  # what the runner said
        waited = cli(
            "batch", "wait", job.job_id, "--timeout", "30", "--poll", "0.2", "--ledger", str(ledger_path), check=False
        )
        assert waited.returncode == 1 and "runner exited" in waited.stdout
        cfg.write_text(kept)
        final = json.loads(cli("batch", "resume", job.job_id, "--json", "--ledger", str(ledger_path)).stdout)
    assert (final["status"], final["done"]) == ("completed", 3)
