"""What a batch job keeps of its prompts: inputs are kept while a record may still be sent, then removed unless the
job's config sets `store_prompts: true`; answers, counts and costs stay."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from contextlib import contextmanager
from dataclasses import replace
from pathlib import Path

import pytest

from helpers.batch_records import plain
from tokenomy.batch.backends import SubmitOptions
from tokenomy.batch.jobs import create_job, open_tables, submit_parts
from tokenomy.batch.jobs import wait as wait_job
from tokenomy.batch.local_job import run_job
from tokenomy.batch.openai_backend import OpenAIBatchBackend
from tokenomy.batch.records import export_missing, export_results
from tokenomy.batch.resubmit import resubmit_missing
from tokenomy.emulate.instant_engine import InstantEngine
from tokenomy.emulate.instant_openai import InstantOpenAI
from tokenomy.emulate.openai_batch_api import create_app
from tokenomy.emulate.server import ServerThread

MODEL = "gpt-4o-mini"
TOKENOMY = str(Path(sys.executable).with_name("tokenomy"))


@pytest.fixture(autouse=True)
def no_openai_env(monkeypatch):
    for key in ("OPENAI_API_KEY", "OPENAI_BASE_URL"):
        monkeypatch.delenv(key, raising=False)


@contextmanager
def emulator():
    with ServerThread(create_app(engine=InstantEngine(), validating_seconds=0.05)) as url:
        yield SubmitOptions(endpoint_url=url)


class ThrottledOnce(OpenAIBatchBackend):
    """The OpenAI batch emulator, except that r1 is throttled (429) the first time and r2 refused (400) for good."""

    throttled = False

    def results(self, handle):
        for result in super().results(handle):
            if result.id == "r1" and not self.throttled:
                self.throttled = True
                result = replace(result, text=None, usage=None, error="429: rate limit reached, try again")
            elif result.id == "r2":
                result = replace(result, text=None, usage=None, error="400: invalid request")
            yield result


def stored_inputs(ledger: Path | str, job_id: str) -> str:
    rows = open_tables(str(ledger)).parts(job_id)
    return "\n".join(row["payload"] for row in rows)


def test_inputs_go_once_no_record_can_be_sent_again_and_a_throttled_one_keeps_its_until_answered(tmp_path) -> None:
    src, ledger = tmp_path / "in.jsonl", tmp_path / "ledger.duckdb"
    src.write_text("\n".join(plain(5)) + "\n")
    tables = open_tables(str(ledger))
    with emulator() as options:
        backend = ThrottledOnce(options)
        job = submit_parts(tables, create_job(tables, src, MODEL, "openai", options), backend)
        job = wait_job(tables, job.job_id, 60, 0.05, backend)
        assert (job.status, job.done, job.failed) == ("partially_completed", 3, 2)
        # Before, every prompt stayed in batch_parts for good, whatever store_prompts said. Now only r1's is kept:
        # throttled, resume sends it again; and r2's, refused as written (a 400), for `results --failed-input` to give
        # back to be fixed; the others are answered.
        kept = stored_inputs(ledger, job.job_id)
        assert "topic1 please" in kept and "topic2 please" in kept
        assert all(f"topic{i} please" not in kept for i in (0, 3, 4)), kept
        rest = tmp_path / "rest.jsonl"
        export_missing(tables, job.job_id, rest)
        assert [json.loads(line)["id"] for line in rest.read_text().splitlines()] == ["r1"]
        assert resubmit_missing(tables, job.job_id, backend, min_records=1) == 1
        job = wait_job(tables, job.job_id, 60, 0.05, backend)
    assert (job.status, job.done, job.failed) == ("partially_completed", 4, 1)
    left = stored_inputs(ledger, job.job_id)  # nothing left to send: no prompt left but the refused one's
    assert "topic2 please" in left and all(f"topic{i} please" not in left for i in (0, 1, 3, 4)), left
    # The job's rows, counts and cost stay, and its results are written as before.
    assert job.cost_usd > 0 and len(tables.parts(job.job_id)) == 2
    out = tmp_path / "out.jsonl"
    assert export_results(tables, job.job_id, out) == {"records": 5, "ok": 4, "failed": 1, "missing": 0}
    lines = {line["id"]: line for line in map(json.loads, out.read_text().splitlines())}
    assert lines["r1"]["ok"] and lines["r1"]["text"]
    assert lines["r2"]["error"].startswith("400: invalid request (refused as written: ")


def test_a_job_whose_config_stores_prompts_keeps_its_inputs(tmp_path) -> None:
    src, ledger, config = tmp_path / "in.jsonl", tmp_path / "ledger.duckdb", tmp_path / "tokenomy.yaml"
    src.write_text("\n".join(plain(3)) + "\n")
    config.write_text("store_prompts: true\n")
    tables = open_tables(str(ledger))
    with emulator() as options:
        backend = OpenAIBatchBackend(options)
        job = create_job(tables, src, MODEL, "openai", options, config_path=str(config))
        job = wait_job(tables, submit_parts(tables, job, backend).job_id, 60, 0.05, backend)
    assert job.status == "completed"
    assert all(f"topic{i} please" in stored_inputs(ledger, job.job_id) for i in range(3))


def test_a_local_job_drops_the_inputs_of_answered_records_and_its_commands_still_show_it(tmp_path) -> None:
    src, ledger, config = tmp_path / "in.jsonl", tmp_path / "ledger.duckdb", tmp_path / "tokenomy.yaml"
    src.write_text("\n".join(plain(4)) + "\n")
    with InstantOpenAI() as url:
        config.write_text(
            f"models:\n  upstream:\n    provider: openai\n    model: {MODEL}\n    base_url: {url}\n"
            f"    price_as: {MODEL}\n"
        )
        tables = open_tables(str(ledger))
        job = create_job(tables, src, "upstream", "local", config_path=str(config))
        job, _ = run_job(tables, job.job_id)
    assert (job.status, job.done) == ("completed", 4)
    assert "topic" not in stored_inputs(ledger, job.job_id)
    env = {k: v for k, v in os.environ.items() if not k.startswith("OPENAI_")}
    shown = subprocess.run(
        [TOKENOMY, "batch", "status", job.job_id, "--ledger", str(ledger)],
        capture_output=True,
        text=True,
        timeout=120,
        env=env,
    )
    assert shown.returncode == 0, shown.stderr
    assert "completed" in shown.stdout and "prompt text is not kept" in shown.stdout, shown.stdout
    as_json = subprocess.run(
        [TOKENOMY, "batch", "status", job.job_id, "--json", "--ledger", str(ledger)],
        capture_output=True,
        text=True,
        timeout=120,
        env=env,
    )
    data = json.loads(as_json.stdout)
    assert (data["done"], data["prompts_stored"]) == (4, False)
    out = tmp_path / "out.jsonl"
    results = subprocess.run(
        [TOKENOMY, "batch", "results", job.job_id, "-o", str(out), "--ledger", str(ledger)],
        capture_output=True,
        text=True,
        timeout=120,
        env=env,
    )
    assert results.returncode == 0, results.stderr
    assert all(json.loads(line)["ok"] for line in out.read_text().splitlines())
