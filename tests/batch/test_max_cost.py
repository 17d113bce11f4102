"""`batch submit --max-cost`: a job whose worst case is over the cap is refused before anything is sent; `batch
resume` holds what it would send again to the job's cap; `batch validate` prints the worst case."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from decimal import Decimal

import openai
import pytest

from tokenomy.batch.backends import SubmitOptions
from tokenomy.emulate.instant_engine import InstantEngine
from tokenomy.emulate.openai_batch_api import create_app
from tokenomy.emulate.server import ServerThread
from tokenomy.pricing.catalog import default_catalog

MODEL = "gpt-4o-mini"
PROMPT = "write a haiku about rain"
# Three records: one at 50 tokens, one with a system prompt at 20, one with no max_tokens (OpenAI is sent none).
LINES = [
    {"id": "r0", "prompt": PROMPT, "max_tokens": 50},
    {"id": "r1", "prompt": PROMPT, "system": "be brief", "max_tokens": 20},
    {"id": "r2", "prompt": PROMPT},
]
# By hand. The upper bound of a prompt's tokens (token_estimate.bound_length, in quarter tokens): lowercase letters
# and spaces a quarter each, one token more for the letters opening the text; ChatML framing 5 a message, 4 the reply.
#   r0, r2: "write a haiku about rain", 24 characters + 4 = 28 quarters = 7 tokens; 1 message: 7 + 5 + 4 = 16
#   r1: "be brief" 8 + 4 = 12 quarters, with the prompt's 28: 40 quarters = 10 tokens; 2 messages: 10 + 10 + 4 = 24
# Output: 50 + 20 + gpt-4o-mini's maximum output (r2 sets none and OpenAI's batch is sent none).
WORST_IN = 16 + 24 + 16
WORST_OUT = 50 + 20 + 16_384


def _batch_worst() -> Decimal:
    entry = default_catalog().lookup(MODEL)
    assert entry.max_output_tokens == 16_384 and entry.long_context is None
    assert (entry.batch_input, entry.batch_output) == (Decimal("0.075"), Decimal("0.30"))  # USD per 1M tokens
    return (WORST_IN * entry.batch_input + WORST_OUT * entry.batch_output) / 1_000_000  # $0.0049404


def _input(tmp_path):
    path = tmp_path / "in.jsonl"
    path.write_text("".join(json.dumps(line) + "\n" for line in LINES))
    return path


def _tokenomy(*args: str) -> subprocess.CompletedProcess:
    env = {k: v for k, v in os.environ.items() if not k.startswith("OPENAI_")}
    return subprocess.run(
        [sys.executable, "-m", "tokenomy.cli", *args], capture_output=True, text=True, timeout=300, env=env
    )


def emulator():
    return ServerThread(create_app(engine=InstantEngine(), validating_seconds=0.05))


def test_the_worst_case_is_the_hand_computed_one_and_validate_prints_it_beside_the_estimate(tmp_path) -> None:
    from tokenomy.batch.formats import read_file
    from tokenomy.batch.worst_case import job_worst_case

    path = _input(tmp_path)
    worst = job_worst_case(read_file(path)[0], MODEL, backend="openai")
    assert (worst.input_tokens, worst.output_tokens, worst.uncapped) == (WORST_IN, WORST_OUT, 1)
    assert worst.batch_usd == _batch_worst() == Decimal("0.0049404")
    # The local runner sends 256 to a record with none, and bills on demand ($0.15 / $0.60 per 1M).
    local = job_worst_case(read_file(path)[0], MODEL, backend="local")
    assert local.output_tokens == 50 + 20 + 256 and local.usd_on("local") == Decimal("0.000204")
    out = _tokenomy("batch", "validate", str(path), "--model", MODEL, "--backend", "openai", "--json")
    assert out.returncode == 0, out.stderr
    shown = json.loads(out.stdout)["worst_case"]
    assert (shown["input_tokens"], shown["output_tokens"], shown["batch_usd"]) == (WORST_IN, WORST_OUT, "0.004940")
    table = _tokenomy("batch", "validate", str(path), "--model", MODEL, "--backend", "openai")
    row = next(line for line in table.stdout.splitlines() if "worst case" in line and "$" in line)
    assert "$0.004940" in row and "16454" in row.replace(",", ""), table.stdout


def test_submit_over_the_cap_sends_nothing_stores_no_job_and_exits_1_naming_worst_case_cap_and_fix(tmp_path) -> None:
    path, ledger = _input(tmp_path), tmp_path / "ledger.duckdb"
    with emulator() as url:
        client = openai.OpenAI(base_url=f"{url}/v1", api_key="x")
        args = [
            "batch",
            "submit",
            str(path),
            "--model",
            MODEL,
            "--backend",
            "openai",
            "--endpoint-url",
            url,
            "--ledger",
            str(ledger),
            "--max-cost",
            "0.0049",
        ]
        out = _tokenomy(*args)
        assert out.returncode == 1, out.stderr
        said = " ".join(out.stderr.split())
        assert "worst case $0.004940 at batch prices" in said and "over --max-cost $0.004900" in said, said
        assert "1 without max_tokens counted at gpt-4o-mini's maximum output of 16,384 tokens" in said, said
        assert "Lower max_tokens" in said and "split the file" in said and "raise --max-cost" in said, said
        assert "Traceback" not in said
        refused = _tokenomy(*args, "--json")
        assert refused.returncode == 1, refused.stderr
        answer = json.loads(refused.stdout)
        assert answer["worst_case_usd"] == "0.0049404" and answer["max_cost_usd"] == "0.004900", answer
        assert "over --max-cost" in answer["error"]
        assert client.files.list().data == [] and client.batches.list().data == []  # nothing reached the provider
    assert not ledger.exists()  # no job stored, not even a new ledger


def test_submit_under_the_cap_runs_and_the_job_keeps_its_cap(tmp_path) -> None:
    from tokenomy.batch.jobs import open_tables

    path, ledger = _input(tmp_path), tmp_path / "ledger.duckdb"
    with emulator() as url:
        out = _tokenomy(
            "batch",
            "submit",
            str(path),
            "--model",
            MODEL,
            "--backend",
            "openai",
            "--endpoint-url",
            url,
            "--ledger",
            str(ledger),
            "--max-cost",
            "0.005",
            "--json",
        )
    assert out.returncode == 0, out.stderr
    job = json.loads(out.stdout.splitlines()[-1])
    assert job["status"] == "completed" and job["done"] == 3
    assert open_tables(str(ledger)).get_job(job["job_id"]).options["max_cost_usd"] == "0.005"


def test_resume_holds_what_it_sends_again_to_the_jobs_cap_until_given_a_higher_one(tmp_path) -> None:
    from tokenomy.batch.jobs import create_job, open_tables
    from tokenomy.batch.worst_case import keep_cap

    path, ledger = _input(tmp_path), tmp_path / "ledger.duckdb"
    tables = open_tables(str(ledger))
    with emulator() as url:
        client = openai.OpenAI(base_url=f"{url}/v1", api_key="x")
        # Stored as a submit cut short before its upload leaves it: its one part never sent.
        job = create_job(tables, path, MODEL, "openai", SubmitOptions(endpoint_url=url), max_cost=Decimal("0.005"))
        keep_cap(tables, job, Decimal("0.004"))  # the job's cap lowered since (as `resume --max-cost 0.004` keeps it)
        refused = _tokenomy("batch", "resume", job.job_id, "--ledger", str(ledger))
        assert refused.returncode == 1, refused.stderr
        said = " ".join(refused.stderr.split())
        assert f"{job.job_id}: the 3 records resume would send: worst case $0.004940" in said, said
        assert "over --max-cost $0.004000; nothing was sent" in said and f"resume {job.job_id} --max-cost USD" in said
        assert client.batches.list().data == [] and tables.parts(job.job_id)[0]["handle"] is None
        resumed = _tokenomy("batch", "resume", job.job_id, "--max-cost", "0.01", "--json", "--ledger", str(ledger))
        assert resumed.returncode == 0, resumed.stderr
        assert json.loads(resumed.stdout.splitlines()[-1])["done"] == 3
        assert len(client.batches.list().data) == 1
    assert tables.get_job(job.job_id).options["max_cost_usd"] == "0.01"


def test_a_local_jobs_resume_is_held_to_its_cap_at_on_demand_prices_before_any_call(tmp_path) -> None:
    from tokenomy.batch.jobs import create_job, open_tables
    from tokenomy.batch.worst_case import keep_cap
    from tokenomy.ledger.store import open_store

    path, ledger = _input(tmp_path), tmp_path / "ledger.duckdb"
    tables = open_tables(str(ledger))
    job = create_job(tables, path, MODEL, "local", max_cost=Decimal("0.01"))
    keep_cap(tables, job, Decimal("0.0002"))
    refused = _tokenomy("batch", "resume", job.job_id, "--json", "--ledger", str(ledger))
    assert refused.returncode == 1, refused.stderr
    # r2 runs with the local runner's 256: (56 x $0.15 + 326 x $0.60) / 1M on demand
    answer = json.loads(refused.stdout)
    assert answer["worst_case_usd"] == "0.000204" and answer["max_cost_usd"] == "0.000200", answer
    assert "at on-demand prices" in answer["error"] and "nothing was sent" in answer["error"]
    assert tables.get_job(job.job_id).status == "submitted" and not open_store(str(ledger)).events()


def test_a_cap_that_cannot_bound_audio_says_so_at_submit(tmp_path) -> None:
    path, ledger = tmp_path / "in.jsonl", tmp_path / "ledger.duckdb"
    audio = {"type": "input_audio", "input_audio": {"data": "AAAA", "format": "wav"}}
    body = {
        "model": MODEL,
        "max_tokens": 5,
        "messages": [{"role": "user", "content": [{"type": "text", "text": "hi"}, audio]}],
    }
    path.write_text(json.dumps({"custom_id": "r0", "method": "POST", "url": "/v1/chat/completions", "body": body}))
    with emulator() as url:
        out = _tokenomy(
            "batch",
            "submit",
            str(path),
            "--model",
            MODEL,
            "--backend",
            "openai",
            "--endpoint-url",
            url,
            "--ledger",
            str(ledger),
            "--max-cost",
            "1",
            "--detach",
        )
    assert out.returncode == 0, out.stderr
    said = " ".join(out.stderr.split())
    assert "warning: 1 record(s) send audio or video, billed by a length no line gives: --max-cost does not" in said


WEATHER = {
    "type": "function",
    "function": {
        "name": "weather",
        "description": "The weather in a city, today",
        "parameters": {"type": "object", "properties": {"city": {"type": "string"}}, "required": ["city"]},
    },
}


def _one(tmp_path, line: dict) -> list:
    from tokenomy.batch.formats import read_file

    path = tmp_path / "one.jsonl"
    path.write_text(json.dumps(line) + "\n")
    return read_file(path)[0]


def test_a_records_tools_and_tool_calls_are_in_its_worst_case_and_estimate_and_claudes_tool_prompt_too(tmp_path):
    """A line's tool definitions and earlier tool calls are billed as input though no message text shows them: the
    worst case counts their JSON at the upper bound (and, on Claude, the tool use system prompt Anthropic adds, at its
    larger tool_choice figure), and validate's estimate counts them; both left them out, so a job of agent records
    passed a --max-cost its tools' definitions put it over."""
    from tokenomy.batch.record_tokens import record_estimate
    from tokenomy.batch.worst_case import job_worst_case
    from tokenomy.token_estimate import bound_length, estimate_text_tokens

    call = {"id": "c1", "type": "function", "function": {"name": "weather", "arguments": '{"city": "Oslo"}'}}
    turns = [
        {"role": "user", "content": PROMPT},
        {"role": "assistant", "content": None, "tool_calls": [call]},
        {"role": "tool", "tool_call_id": "c1", "content": "18C"},
    ]
    plain = {
        "custom_id": "a",
        "method": "POST",
        "url": "/v1/chat/completions",
        "body": {"model": MODEL, "messages": turns, "max_tokens": 10},
    }
    agent = {**plain, "body": {**plain["body"], "tools": [WEATHER], "tool_choice": "auto"}}
    # What each sends beyond its messages' text, as JSON: the earlier call alone, or the tools, the choice and it.
    unseen = json.dumps([[call]]), json.dumps([[WEATHER], "auto", [call]])
    [without], [with_tools] = _one(tmp_path, plain), _one(tmp_path, agent)
    added = (
        job_worst_case([with_tools], MODEL, backend="openai").input_tokens
        - job_worst_case([without], MODEL, backend="openai").input_tokens
    )
    bound = [(bound_length(text) + 3) // 4 for text in unseen]
    assert added == bound[1] - bound[0] > 60  # gpt-4o-mini adds no tool prompt to count
    estimated = record_estimate(with_tools) - record_estimate(without)
    assert estimated == estimate_text_tokens(unseen[1]) - estimate_text_tokens(unseen[0]) > 30

    # Claude on Bedrock (its native body, tools as Anthropic's): the tool use system prompt too, 340 on Claude 3 Haiku
    # with tool_choice any/tool (264 with auto): the worst case takes the larger.
    haiku = "anthropic.claude-3-haiku-20240307-v1:0"
    tool = {"name": "weather", "input_schema": WEATHER["function"]["parameters"]}
    body = {
        "anthropic_version": "bedrock-2023-05-31",
        "max_tokens": 10,
        "messages": [{"role": "user", "content": PROMPT}],
    }
    [bare] = _one(tmp_path, {"recordId": "b", "modelInput": body})
    [tooled] = _one(tmp_path, {"recordId": "b", "modelInput": {**body, "tools": [tool]}})
    added = (
        job_worst_case([tooled], haiku, backend="bedrock").input_tokens
        - job_worst_case([bare], haiku, backend="bedrock").input_tokens
    )
    assert added == (bound_length(json.dumps([[tool]])) + 3) // 4 + 340


def test_a_llama_bodys_max_gen_len_is_its_cap_in_the_worst_case_estimate_and_rebuild(tmp_path) -> None:
    # A Bedrock line whose Llama body gives its cap as max_gen_len (Llama's name for it) was read as giving none: sent
    # as written to a Llama job, its worst case counted the rest of the model's 128,000-token context window (and the
    # estimate the 256 default); a body rebuilt for another model refused it as a key it would not send. It is the
    # record's cap now, and a Llama body with a cap Llama does not take (max_tokens) is refused before the job runs.
    from tokenomy.batch.bedrock_bodies import model_input
    from tokenomy.batch.formats import read_records
    from tokenomy.batch.validate import validate_file
    from tokenomy.batch.worst_case import job_worst_case

    llama, nova = "meta.llama3-1-8b-instruct-v1:0", "amazon.nova-micro-v1:0"
    hi = [{"role": "user", "content": "hi"}]
    lines = [
        {"recordId": "l1", "modelInput": {"prompt": "hi", "max_gen_len": 50}},  # Llama's, as written
        {"recordId": "c1", "modelInput": {"messages": hi, "max_gen_len": 30}},  # rebuilt for the job's model
    ]
    path = tmp_path / "llama.jsonl"
    path.write_text("".join(json.dumps(line) + "\n" for line in lines))
    report = validate_file(path, llama, "us-east-1", backend="bedrock")
    assert report.bad == [] and [r.max_tokens for r in report.records] == [50, 30]
    worst = job_worst_case(report.records, llama, "us-east-1", "bedrock")
    assert (worst.output_tokens, worst.uncapped) == (80, 0)
    assert model_input(llama, report.records[0]) == lines[0]["modelInput"]  # as written
    assert model_input(nova, report.records[1])["inferenceConfig"]["max_new_tokens"] == 30
    [wrong], _ = read_records(
        [json.dumps({"recordId": "w", "modelInput": {"prompt": "hi", "max_gen_len": 9, "max_tokens": 9}})]
    )
    path.write_text(json.dumps(wrong.raw) + "\n")
    [bad] = validate_file(path, llama, "us-east-1", backend="bedrock").bad
    assert bad.field == "modelInput.max_tokens" and "a Llama body takes its cap in modelInput.max_gen_len" in bad.reason
    # Without max_gen_len, {"prompt", "max_tokens"} is Mistral's own body: refused for a Llama job, saying why.
    path.write_text(json.dumps({"recordId": "w", "modelInput": {"prompt": "hi", "max_tokens": 9}}) + "\n")
    [bad] = validate_file(path, llama, "us-east-1", backend="bedrock").bad
    assert bad.field == "modelInput.prompt" and "Mistral prompt" in bad.reason
    assert "its max_tokens, a key of Mistral's body; a Llama body's cap is max_gen_len" in bad.reason


def test_resume_splits_what_it_would_send_before_its_cap_as_submit_does(tmp_path, monkeypatch) -> None:
    # Submit splits a file before it checks the cap; resume checked the cap first: records no split keeps at the
    # provider's minimum were refused as over the cap (raise it, and resume refused them for the split, sending
    # nothing either way), and a --max-cost given to a resume the split then refused was kept as the job's cap though
    # nothing was sent. Resume splits first, as submit does: the split's refusal is said, the job's cap is unchanged.
    from helpers.batch_records import squeezed
    from tokenomy.batch.jobs import cancel, create_job, open_tables, submit_parts, wait
    from tokenomy.batch.openai_backend import OpenAIBatchBackend
    from tokenomy.batch.resubmit import resubmit_missing
    from tokenomy.batch.split import sent_bytes
    from tokenomy.batch.worst_case import OverCap
    from tokenomy.errors import UsageError

    lines, quotas = squeezed(6, 3, sent_bytes(OpenAIBatchBackend(), MODEL))
    path = tmp_path / "in.jsonl"
    path.write_text("\n".join(lines) + "\n")
    tables = open_tables(str(tmp_path / "ledger.duckdb"))
    with ServerThread(create_app(engine=InstantEngine(), validating_seconds=2)) as url:
        client = openai.OpenAI(base_url=f"{url}/v1", api_key="x")
        options = SubmitOptions(endpoint_url=url)
        job = submit_parts(tables, create_job(tables, path, MODEL, "openai", options, max_cost=Decimal("1")))
        cancel(tables, job.job_id)  # stopped while validating: its nine records have no result
        job = wait(tables, job.job_id, 30, 0.05)
        assert (job.status, job.pending) == ("stopped", 9), job.to_json()
        monkeypatch.setitem(default_catalog().batch_quotas, "openai", {**quotas, "min_records_per_job": 3})
        with pytest.raises(UsageError) as refused:
            resubmit_missing(tables, job.job_id, max_cost=Decimal("0.000001"))
        assert not isinstance(refused.value, OverCap), str(refused.value)
        assert "job 3 of 3 would hold 1 record, below openai's minimum of 3 per batch job" in str(refused.value)
        # A cap that holds, given to a resume that sends nothing:
        with pytest.raises(UsageError, match="below openai's minimum of 3"):
            resubmit_missing(tables, job.job_id, max_cost=Decimal("5"))
        assert len(client.batches.list().data) == 1 and len(tables.parts(job.job_id)) == 1  # nothing sent
    assert tables.get_job(job.job_id).options["max_cost_usd"] == "1"  # the cap of a resume that sent nothing: not kept


def test_status_shows_the_cap_a_job_was_submitted_under_and_none_for_a_job_without(tmp_path, monkeypatch, capsys):
    # The job kept its --max-cost (resume holds what it sends to it) but `batch status` never said so: a user could not
    # see why a resume was refused, or what cap it ran under. Status shows it, in its table's notes and --json.
    from helpers.cli import run_cli
    from tokenomy.batch.jobs import create_job, open_tables

    path, ledger = _input(tmp_path), tmp_path / "ledger.duckdb"
    tables = open_tables(str(ledger))
    capped = create_job(tables, path, MODEL, "local", max_cost=Decimal("0.25"))
    uncapped = create_job(tables, path, MODEL, "local")
    shown = {}
    for job in (capped, uncapped):
        code, out, err = run_cli(monkeypatch, capsys, "batch", "status", job.job_id, "--ledger", str(ledger), "--json")
        assert code in (0, 1), err  # 1: nothing runs these jobs, which is said
        shown[job.job_id] = json.loads(out)["max_cost_usd"]
        code, out, _ = run_cli(monkeypatch, capsys, "batch", "status", job.job_id, "--ledger", str(ledger))
        shown[job.job_id, "table"] = [line for line in out.splitlines() if "--max-cost" in line]
    assert shown[capped.job_id] == "0.250000" and shown[uncapped.job_id] is None, shown
    said = " ".join(" ".join(shown[capped.job_id, "table"]).split())
    assert "capped at --max-cost $0.250000" in said, said
    assert shown[uncapped.job_id, "table"] == [], shown
