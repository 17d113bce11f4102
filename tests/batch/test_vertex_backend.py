"""Vertex AI batch prediction: `tokenomy batch submit --backend vertex` end to end, google-genai (vertexai=True)
underneath, against the Gemini emulator's batchPredictionJobs and Cloud Storage on 127.0.0.1."""

from __future__ import annotations

import json
from decimal import Decimal
from urllib.parse import quote

import httpx
import pytest
from typer.testing import CliRunner

from helpers.batch_records import plain, records, wait
from tokenomy.batch.backends import STATES, SubmitOptions
from tokenomy.batch.vertex_backend import STATUS_MAP, VertexBatchBackend, job_options
from tokenomy.cli import app
from tokenomy.emulate.gemini_api import create_app
from tokenomy.emulate.instant_engine import InstantEngine
from tokenomy.emulate.server import ServerThread
from tokenomy.ledger.store import open_store
from tokenomy.pricing.catalog import default_catalog

MODEL = "gemini-2.5-flash"
MILLION = Decimal(1_000_000)
POISON = "poison"
AUTH = {"Authorization": "Bearer any"}  # Cloud Storage takes an OAuth token; the emulator, any


class FailsOnPoison(InstantEngine):
    """The instant engine, except that the model fails on a prompt naming POISON (one bad request in a job)."""

    def generate(self, prepared):
        if any(POISON in m.text for m in prepared.request.messages):
            raise RuntimeError("the model crashed on this prompt")
        return super().generate(prepared)


@pytest.fixture(autouse=True)
def no_google_env(monkeypatch):
    for key in ("GOOGLE_CLOUD_PROJECT", "GOOGLE_CLOUD_LOCATION", "GOOGLE_VERTEX_BASE_URL", "STORAGE_EMULATOR_HOST"):
        monkeypatch.delenv(key, raising=False)


@pytest.fixture(scope="module")
def url():
    with ServerThread(create_app(engine=FailsOnPoison(), batch_pending_seconds=0.1)) as base:
        yield base


def cli(*args: str):
    return CliRunner().invoke(app, list(args))


def test_batch_submit_on_vertex_lands_in_the_ledger_at_half_the_on_demand_price(url, tmp_path):
    source = tmp_path / "in.jsonl"
    lines = [*plain(4, max_tokens=5), json.dumps({"id": "bad", "prompt": f"{POISON} this one", "max_tokens": 5})]
    source.write_text("\n".join(lines) + "\n")
    ledger = str(tmp_path / "ledger.duckdb")
    result = cli("batch", "submit", str(source), "--model", MODEL, "--backend", "vertex", "--endpoint-url", url,
                 "--gcs-uri", "gs://tk-bucket/runs", "--project", "demo", "--region", "us-central1",
                 "--ledger", ledger, "--json")  # fmt: skip
    assert result.exit_code == 0, result.output
    job = json.loads(result.output.strip().splitlines()[-1])
    assert (job["status"], job["done"], job["failed"], job["pending"]) == ("partially_completed", 4, 1, 0)

    events = sorted(open_store(ledger).events(), key=lambda e: e.request_id or "")
    assert [e.request_id for e in events] == ["r0", "r1", "r2", "r3"]
    entry = default_catalog().lookup(MODEL)
    for e in events:
        assert (e.provider, e.mode, e.model, e.region) == ("gcp.vertex_ai", "batch", MODEL, "us-central1")
        assert e.input_tokens > 0 and e.output_tokens == 5
        on_demand = (e.input_tokens * entry.input + e.output_tokens * entry.output) / MILLION
        assert e.cost_usd == on_demand / 2  # Vertex AI bills batch prediction at half the on-demand price
    assert Decimal(str(job["cost_usd"])) == sum((e.cost_usd for e in events), Decimal(0))

    # The failed line is a failed result, with the model's error, not a dropped one.
    out = tmp_path / "results.jsonl"
    assert cli("batch", "results", job["job_id"], "-o", str(out), "--ledger", ledger).exit_code == 0
    rows = {r["id"]: r for r in map(json.loads, out.read_text().splitlines())}
    assert set(rows) == {"r0", "r1", "r2", "r3", "bad"}
    assert not rows["bad"]["ok"] and "the model crashed on this prompt" in rows["bad"]["error"]
    assert rows["r2"]["ok"] and rows["r2"]["text"] == "Re: topic2 please summarise briefly"

    # What went through Cloud Storage: one input line per record, one prediction line per request.
    def gcs(path: str, **params: str) -> httpx.Response:
        return httpx.get(f"{url}/storage/v1/b/tk-bucket/o{path}", params=params, headers=AUTH)

    names = [item["name"] for item in gcs("", prefix=f"runs/{job['job_id']}/").json()["items"]]
    [input_name] = [n for n in names if n.endswith("/input.jsonl")]
    [output_name] = [n for n in names if n.endswith("/predictions.jsonl")]
    inputs = [json.loads(x) for x in gcs("/" + quote(input_name, safe=""), alt="media").text.splitlines()]
    assert len(inputs) == 5 and all("contents" in x["request"] for x in inputs)
    outputs = [json.loads(x) for x in gcs("/" + quote(output_name, safe=""), alt="media").text.splitlines()]
    assert sorted(bool(x["status"]) for x in outputs) == [False] * 4 + [True]

    # Polling again, or collecting the finished part again (a crash before it was marked collected), adds nothing.
    for _ in range(2):
        again = cli("batch", "status", job["job_id"], "--ledger", ledger, "--json")
        assert again.exit_code == 0 and json.loads(again.output)["done"] == 4
    from tokenomy.batch.collect import collect_part
    from tokenomy.batch.job_tables import require_job
    from tokenomy.batch.jobs import get_backend, open_tables, submit_options

    tables = open_tables(ledger)
    stored = require_job(tables, job["job_id"])
    [part] = tables.parts(job["job_id"])
    assert collect_part(tables, stored, part, get_backend("vertex", submit_options(stored))) == 5
    assert len(open_store(ledger).events()) == 4
    assert require_job(tables, job["job_id"]).cost_usd == stored.cost_usd


def test_the_sdk_sees_the_job_tokenomy_made(url):
    from tokenomy.providers.gemini_client import gemini_client

    options = job_options(SubmitOptions(endpoint_url=url, extra={"gcs_uri": "gs://b2", "project": "demo"}))
    backend = VertexBatchBackend(options)
    handle = backend.submit("job-sdk", MODEL, records(plain(2, max_tokens=3)), options)
    assert handle.startswith("projects/demo/locations/global/batchPredictionJobs/")
    assert wait(backend, handle, timeout=30)[-1] == "completed"
    client = gemini_client(vertex=True, base_url=url, project="demo", location="global")
    job = client.batches.get(name=handle)
    assert job.state.value == "JOB_STATE_SUCCEEDED" and job.model == f"publishers/google/models/{MODEL}"
    assert job.src.gcs_uri[0].startswith("gs://b2/job-sdk/") and job.dest.gcs_uri.startswith("gs://b2/job-sdk/")
    assert job.completion_stats.successful_count == 2 and handle in [j.name for j in client.batches.list()]
    results = sorted(backend.results(handle), key=lambda r: r.id)
    assert [(r.id, r.ok, r.usage.output_tokens) for r in results] == [("r0", True, 3), ("r1", True, 3)]


def test_output_lines_that_lost_their_labels_are_matched_by_request(url):
    options = job_options(SubmitOptions(endpoint_url=url, extra={"gcs_uri": "gs://b4", "project": "demo"}))
    backend = VertexBatchBackend(options)
    twin = {"id": "twin", "prompt": "topic1 please summarise briefly", "max_tokens": 2}  # the same request as r1
    lines = [*plain(3, max_tokens=2), json.dumps(twin)]
    handle = backend.submit("job-l", MODEL, records(lines), options)
    assert wait(backend, handle, timeout=30)[-1] == "completed"
    listing = httpx.get(f"{url}/storage/v1/b/b4/o", params={"prefix": "job-l/"}, headers=AUTH).json()
    [name] = [i["name"] for i in listing["items"] if i["name"].endswith("predictions.jsonl")]
    path = f"{url}/storage/v1/b/b4/o/{quote(name, safe='')}"
    items = [json.loads(x) for x in httpx.get(path, params={"alt": "media"}, headers=AUTH).text.splitlines()]
    for item in items:
        del item["request"]["labels"]
    items.append({"status": "", "request": {"contents": [{"role": "user", "parts": [{"text": "never sent"}]}]},
                  "response": items[0]["response"]})  # fmt: skip
    body = "".join(json.dumps(i) + "\n" for i in [*items, "not an object"]).encode() + b"{broken\n"
    httpx.post(f"{url}/upload/storage/v1/b/b4/o", params={"uploadType": "media", "name": name}, content=body,
               headers=AUTH).raise_for_status()  # fmt: skip
    results = list(backend.results(handle))
    answered = sorted(r.id for r in results if r.ok and not r.id.startswith("line "))
    assert answered == ["r0", "r1", "r2", "twin"]  # two identical requests: each record once
    # The readable line that matches no request is a stray; every record is answered, so the two lines that are not
    # JSON objects were no record's, and fail none.
    [stray] = [r for r in results if r.id.startswith("line ")]
    assert stray.id == f"line 5 of gs://b4/{name}" and len(results) == 5


def test_an_output_line_that_is_not_json_is_its_records_failure_not_left_missing_to_be_sent_again(url, monkeypatch):
    # A line that was not JSON was yielded under `line N of gs://...`, which no record has: its record showed as
    # missing, and `batch resume` sent it again, to be billed twice. As the OpenAI and Bedrock backends do, it is now
    # its record's failure, found by the label the cut line still shows, else (a job that answered every request) as
    # the request no readable line answers; in a job that ended short, that record stays missing, for resume.
    from google.genai import types

    options = job_options(SubmitOptions(endpoint_url=url, extra={"gcs_uri": "gs://b5", "project": "demo"}))
    backend = VertexBatchBackend(options)
    handle = backend.submit("job-g", MODEL, records(plain(4, max_tokens=2)), options)
    assert wait(backend, handle, timeout=30)[-1] == "completed"
    listing = httpx.get(f"{url}/storage/v1/b/b5/o", params={"prefix": "job-g/"}, headers=AUTH).json()
    [name] = [i["name"] for i in listing["items"] if i["name"].endswith("predictions.jsonl")]
    path = f"{url}/storage/v1/b/b5/o/{quote(name, safe='')}"
    lines = httpx.get(path, params={"alt": "media"}, headers=AUTH).text.splitlines()
    index = {json.loads(x)["request"]["contents"][0]["parts"][0]["text"][5]: n for n, x in enumerate(lines)}
    r1, r2 = index["1"], index["2"]
    lines[r1] = lines[r1][: lines[r1].index('"response"') + 20]  # cut in the answer: its label is still there
    lines[r2] = "\x00\x1f" + lines[r2][30:].replace('"', "'")  # garbled past reading its label
    body = ("\n".join(lines) + "\n").encode().replace(b"\x00\x1f", b"\xff\x00\x1f")  # and not UTF-8: the file's
    httpx.post(f"{url}/upload/storage/v1/b/b5/o", params={"uploadType": "media", "name": name},  # other lines kept
               content=body, headers=AUTH).raise_for_status()  # fmt: skip

    results = {r.id: r for r in backend.results(handle)}
    assert set(results) == {"r0", "r1", "r2", "r3"} and results["r0"].ok and results["r3"].ok
    where = f"line {r1 + 1} of gs://b5/{name}"
    assert results["r1"].error.startswith(f"unreadable output line ({where}): "), results["r1"].error
    assert not results["r2"].ok and "no readable line answers this record, and 1 name none" in results["r2"].error
    assert f"line {r2 + 1} of gs://b5/{name}" in results["r2"].error

    # A job that ended short (cancelled, expired, failed, or partly succeeded with requests never run) may simply
    # not have reached r2: it stays missing, and resume sends it; the line that shows its label is still r1's.
    job = backend.describe(handle)
    stats = job.completion_stats
    short = [
        ("JOB_STATE_CANCELLED", stats),
        ("JOB_STATE_EXPIRED", stats),
        ("JOB_STATE_FAILED", stats),
        ("JOB_STATE_PARTIALLY_SUCCEEDED", types.CompletionStats(successful_count=2, incomplete_count=2)),
        ("JOB_STATE_SUCCEEDED", types.CompletionStats(successful_count=3, incomplete_count=1)),
    ]
    for state, counts in short:
        monkeypatch.setattr(backend, "describe", lambda h, s=state, c=counts: job.model_copy(
            update={"state": types.JobState(s), "completion_stats": c}))  # fmt: skip
        results = {r.id: r for r in backend.results(handle)}
        # the garbled line is yielded under where it is (the job's unmatched line), no longer only logged
        assert set(results) == {"r0", "r1", "r3", f"line {r2 + 1} of gs://b5/{name}"} and not results["r1"].ok, state
    every = types.CompletionStats(successful_count=3, failed_count=1, incomplete_count=0)
    monkeypatch.setattr(backend, "describe", lambda h: job.model_copy(
        update={"state": types.JobState.JOB_STATE_PARTIALLY_SUCCEEDED, "completion_stats": every}))  # fmt: skip
    assert not {r.id: r for r in backend.results(handle)}["r2"].ok  # its counts say every request was answered


def test_cancel_stops_a_pending_job():
    with ServerThread(create_app(engine=InstantEngine(), batch_pending_seconds=30)) as base:
        options = job_options(SubmitOptions(endpoint_url=base, extra={"gcs_uri": "gs://b3/x", "project": "p"}))
        backend = VertexBatchBackend(options)
        handle = backend.submit("job-c", MODEL, records(plain(3)), options)
        assert backend.status(handle)[0] == "submitted"
        backend.cancel(handle)
        assert backend.status(handle)[0] == "stopped" and list(backend.results(handle)) == []


def test_missing_bucket_or_project_is_named(tmp_path):
    source = tmp_path / "in.jsonl"
    source.write_text("\n".join(plain(1)) + "\n")
    base = ["batch", "submit", str(source), "--model", MODEL, "--backend", "vertex", "--ledger", str(tmp_path / "l")]
    no_bucket = cli(*base, "--project", "p")
    assert no_bucket.exit_code != 0 and "--gcs-uri gs://" in str(no_bucket.exception)
    no_project = cli(*base, "--gcs-uri", "gs://b/p")
    assert no_project.exit_code != 0 and "GOOGLE_CLOUD_PROJECT" in str(no_project.exception)
    not_gs = cli(*base, "--gcs-uri", "s3://b/p", "--project", "p")
    assert not_gs.exit_code != 0 and "gs://my-bucket" in str(not_gs.exception)


def test_every_sdk_job_state_maps_to_a_normalised_state() -> None:
    from google.genai import types

    states = {s.value for s in types.JobState} - {"JOB_STATE_UNSPECIFIED", "JOB_STATE_PAUSED", "JOB_STATE_UPDATING"}
    assert states <= set(STATUS_MAP) and set(STATUS_MAP.values()) <= set(STATES)


def test_a_system_role_message_is_sent_as_the_system_instruction_not_a_user_turn(url, tmp_path):
    from tokenomy.batch.gemini_backend import inline_request

    line = {
        "id": "s1",
        "max_tokens": 5,
        "messages": [{"role": "system", "content": "Answer in French."}, {"role": "user", "content": "Say hello."}],
    }
    source = tmp_path / "in.jsonl"
    source.write_text(json.dumps(line) + "\n")
    ledger = str(tmp_path / "ledger.duckdb")
    config = tmp_path / "tokenomy.yaml"
    config.write_text("store_prompts: true\n")  # else the request Vertex echoes is not kept with the result
    result = cli(
        "batch",
        "submit",
        str(source),
        "--model",
        MODEL,
        "--backend",
        "vertex",
        "--endpoint-url",
        url,
        "--gcs-uri",
        "gs://tk-bucket/system",
        "--project",
        "demo",
        "--ledger",
        ledger,
        "--json",
        "--config",
        str(config),
    )
    assert result.exit_code == 0, result.output
    job_id = json.loads(result.output.strip().splitlines()[-1])["job_id"]
    out = tmp_path / "out.jsonl"
    assert cli("batch", "results", job_id, "-o", str(out), "--ledger", ledger).exit_code == 0
    sent = json.loads(out.read_text())["output"]["request"]  # Vertex echoes each request in its output
    # Before, the system message went as a first user turn and the request had no systemInstruction.
    assert sent["systemInstruction"] == {"parts": [{"text": "Answer in French."}]}
    assert sent["contents"] == [{"role": "user", "parts": [{"text": "Say hello."}]}]
    inline = inline_request(records([json.dumps(line)])[0])  # the Gemini API batch's request, the same way
    assert inline["config"]["system_instruction"] == "Answer in French." and len(inline["contents"]) == 1


def test_a_batch_prediction_job_whose_create_answer_was_lost_is_found_by_resume_not_made_twice(tmp_path):
    # Vertex AI accepted the batch prediction job; its answer never came back, so the submit failed. Resume sent the
    # records as a new part and made a second job: both ran, and were billed; one was never collected.
    from helpers.lossy_proxy import LossyProxy
    from tokenomy.batch.jobs import create_job, open_tables, submit_parts
    from tokenomy.batch.jobs import wait as wait_job
    from tokenomy.batch.resubmit import resubmit_missing
    from tokenomy.errors import ProviderError
    from tokenomy.providers.gemini_client import gemini_client

    path = tmp_path / "in.jsonl"
    path.write_text("\n".join(plain(3, max_tokens=4)) + "\n")
    ledger = str(tmp_path / "ledger.duckdb")
    tables = open_tables(ledger)
    extra = {"gcs_uri": "gs://tk-lost/runs", "project": "demo"}
    with ServerThread(create_app(engine=InstantEngine(), batch_pending_seconds=0.05)) as url:
        create = b"POST /v1beta1/projects/demo/locations/us-central1/batchPredictionJobs "
        with LossyProxy(url, create, lose=1) as proxy:
            options = SubmitOptions(endpoint_url=proxy.url, region="us-central1", extra=extra)
            job = create_job(tables, path, MODEL, "vertex", options)
            with pytest.raises(ProviderError, match="batch create failed"):
                submit_parts(tables, job)
            assert proxy.lost == 1
            assert resubmit_missing(tables, job.job_id) == 3
            job = wait_job(tables, job.job_id, 30, 0.05)
        client = gemini_client(vertex=True, base_url=url, project="demo", location="us-central1")
        made = [b.name for b in client.batches.list() if job.job_id in (b.display_name or "")]
    assert len(made) == 1, made
    assert job.status == "completed" and job.done == 3, job.to_json()
    assert sorted(e.request_id for e in open_store(ledger).events()) == ["r0", "r1", "r2"]


def test_an_output_line_without_usage_metadata_leaves_usage_to_be_estimated_not_zero() -> None:
    # usage_from_gemini(None) is Usage(): such an answer was stored as 0 tokens at $0. None lets the job estimate it.
    item = {
        "request": {"labels": {"tokenomy_record": "r0"}},
        "response": {"candidates": [{"content": {"role": "model", "parts": [{"text": "An answer."}]}}]},
    }
    result = VertexBatchBackend._result(item, "r0", MODEL)
    assert result.ok and result.text == "An answer." and result.usage is None
    with_usage = {
        **item,
        "response": {**item["response"], "usageMetadata": {"promptTokenCount": 7, "candidatesTokenCount": 3}},
    }
    assert VertexBatchBackend._result(with_usage, "r0", MODEL).usage.input_tokens == 7


def test_an_output_line_with_a_count_no_answer_can_have_is_that_records_failure_naming_it() -> None:
    # usage_from_gemini was applied to the counts as sent: a negative count was a negative cost (or, in the prompt,
    # hidden as 0 by taking cached tokens out), one past 2^31-1 a row set aside, and text or true (read as numbers by
    # the SDK) were taken. The OpenAI and Bedrock readers check them (usage_count, checked_counts); so does this one.
    answer = {"candidates": [{"content": {"role": "model", "parts": [{"text": "An answer."}]}}]}
    bad = {
        "candidatesTokenCount": -3,
        "promptTokenCount": -7,
        "cachedContentTokenCount": 2**31,
        "thoughtsTokenCount": "4",
        "toolUsePromptTokenCount": True,
    }
    for name, count in bad.items():
        usage = {"promptTokenCount": 7, "candidatesTokenCount": 3, name: count}
        item = {"request": {}, "response": {**answer, "usageMetadata": usage}}
        result = VertexBatchBackend._result(item, "r1", MODEL)
        assert not result.ok and result.usage is None and result.raw is item, name
        assert result.error.startswith("unreadable usage:") and str(count) in result.error, result.error
    fine = {"request": {}, "response": {**answer, "usageMetadata": {"promptTokenCount": 7, "candidatesTokenCount": 3}}}
    assert VertexBatchBackend._result(fine, "r1", MODEL).usage.output_tokens == 3


def test_answers_whose_labels_were_lost_are_counted_billed_and_their_records_fail_not_wait(url, tmp_path):
    # Vertex echoed two requests without their labels and not as they were sent, so neither label nor request named
    # their records. The two lines were dropped: their cost (Google billed them) was in no ledger, and their records
    # stayed pending, for `batch resume` to send and pay for again. The lines are now kept as the job's unmatched
    # answers, priced into the ledger and the job's cost and listed by `batch results`, and the two records without an
    # answer end failed, saying why.
    source = tmp_path / "in.jsonl"
    source.write_text("\n".join(plain(4, max_tokens=5)) + "\n")
    ledger = str(tmp_path / "ledger.duckdb")
    result = cli("batch", "submit", str(source), "--model", MODEL, "--backend", "vertex", "--endpoint-url", url,
                 "--gcs-uri", "gs://b9/runs", "--project", "demo", "--region", "us-central1", "--detach",
                 "--ledger", ledger, "--json")  # fmt: skip
    assert result.exit_code == 0, result.output
    job_id = json.loads(result.output.strip().splitlines()[-1])["job_id"]
    from tokenomy.batch.job_tables import require_job
    from tokenomy.batch.jobs import get_backend, open_tables, submit_options

    tables = open_tables(ledger)
    [part] = tables.parts(job_id)
    backend = get_backend("vertex", submit_options(require_job(tables, job_id)))
    assert wait(backend, part["handle"], timeout=30)[-1] == "completed"
    listing = httpx.get(f"{url}/storage/v1/b/b9/o", params={"prefix": f"runs/{job_id}/"}, headers=AUTH).json()
    [name] = [i["name"] for i in listing["items"] if i["name"].endswith("predictions.jsonl")]
    path = f"{url}/storage/v1/b/b9/o/{quote(name, safe='')}"
    items = [json.loads(x) for x in httpx.get(path, params={"alt": "media"}, headers=AUTH).text.splitlines()]
    lost = sorted(items, key=lambda i: json.dumps(i["request"]["contents"]))[2:]  # r2's and r3's
    for item in lost:
        del item["request"]["labels"]
        item["request"]["generationConfig"]["candidateCount"] = 1  # echoed with a default added
    httpx.post(
        f"{url}/upload/storage/v1/b/b9/o",
        params={"uploadType": "media", "name": name},
        content="".join(json.dumps(i) + "\n" for i in items).encode(),
        headers=AUTH,
    ).raise_for_status()

    shown = cli("batch", "status", job_id, "--ledger", ledger, "--json")
    job = json.loads(shown.output)
    assert (job["done"], job["failed"], job["pending"], job["unmatched_lines"]) == (2, 2, 0, 2), job
    events = open_store(ledger).events()
    assert len(events) == 4 and all(e.cost_usd > 0 for e in events)  # the two unmatched answers were billed too
    assert Decimal(str(job["cost_usd"])) == sum((e.cost_usd for e in events), Decimal(0))
    out = tmp_path / "results.jsonl"
    assert cli("batch", "results", job_id, "-o", str(out), "--ledger", ledger).exit_code == 0
    rows = [json.loads(x) for x in out.read_text().splitlines()]
    by_id = {r["id"]: r for r in rows if r["id"] is not None}
    assert by_id["r0"]["ok"] and by_id["r1"]["ok"] and not by_id["r2"]["ok"] and not by_id["r3"]["ok"]
    assert "name no record" in by_id["r2"]["error"] and f"gs://b9/{name}" in by_id["r2"]["error"]
    unmatched = [r for r in rows if r["id"] is None]
    assert sorted(r["text"] for r in unmatched) == [
        "Re: topic2 please summarise briefly",
        "Re: topic3 please summarise briefly",
    ]
    assert all(r["output_line"].startswith("line ") for r in unmatched)


def test_results_keep_the_answer_line_without_the_request_it_echoes(url, tmp_path):
    # Vertex AI's output line repeats the whole request (the prompt) beside the response; it was stored as is in
    # batch_results.raw, so the prompt stayed in the ledger database though store_prompts was off.
    source = tmp_path / "in.jsonl"
    source.write_text("\n".join(plain(2, max_tokens=3)) + "\n")
    ledger = str(tmp_path / "ledger.duckdb")
    result = cli("batch", "submit", str(source), "--model", MODEL, "--backend", "vertex", "--endpoint-url", url,
                 "--gcs-uri", "gs://tk-echo/runs", "--project", "demo", "--ledger", ledger, "--json")  # fmt: skip
    assert result.exit_code == 0, result.output
    job_id = json.loads(result.output.strip().splitlines()[-1])["job_id"]
    stored = open_store(ledger).query("SELECT raw, text FROM batch_results WHERE job_id = ?", [job_id])
    assert len(stored) == 2 and all("please summarise" not in row["raw"] for row in stored), stored
    assert all(json.loads(row["raw"])["response"] for row in stored)  # the provider's answer is kept
    out = tmp_path / "results.jsonl"
    assert cli("batch", "results", job_id, "-o", str(out), "--ledger", ledger).exit_code == 0
    lines = [json.loads(x) for x in out.read_text().splitlines()]
    assert all(line["ok"] and "request" not in line["output"] and line["output"]["response"] for line in lines)


@pytest.mark.parametrize("backend", ["vertex", "bedrock"])
def test_an_endpoint_password_is_not_kept_in_the_ledger_for_vertex_or_bedrock(tmp_path, monkeypatch, backend):
    """A proxy's password in --endpoint-url was kept out of the ledger for the openai, azure and gemini backends only:
    a Vertex AI or Bedrock job stored it in batch_jobs.options as given. It is kept as user:***, and a later command
    takes the URL with its password from the backend's endpoint variable, or says to set it."""
    from tokenomy.batch.job_tables import require_job
    from tokenomy.batch.jobs import ENDPOINT_ENVS, create_job, open_tables, submit_options
    from tokenomy.errors import ConfigError

    monkeypatch.setenv("AWS_DEFAULT_REGION", "us-east-1")
    variable = {"vertex": "GOOGLE_VERTEX_BASE_URL", "bedrock": "AWS_ENDPOINT_URL_BEDROCK"}[backend]
    monkeypatch.delenv(variable, raising=False)
    path = tmp_path / "in.jsonl"
    path.write_text("\n".join(plain(3 if backend == "vertex" else 100, max_tokens=4)) + "\n")  # Bedrock's minimum
    ledger = str(tmp_path / "ledger.duckdb")
    tables = open_tables(ledger)
    secret_url = "http://proxyuser:hunter2Proxy@127.0.0.1:9/"
    extra = {"gcs_uri": "gs://b/x", "project": "demo"} if backend == "vertex" else {}
    model = MODEL if backend == "vertex" else "anthropic.claude-3-haiku-20240307-v1:0"
    options = SubmitOptions(
        endpoint_url=secret_url,
        region="us-central1" if backend == "vertex" else None,
        s3_uri="s3://b/x" if backend == "bedrock" else None,
        role_arn="arn:aws:iam::1:role/r" if backend == "bedrock" else None,
        extra=extra,
    )
    job = create_job(tables, path, model, backend, options)
    [row] = open_store(ledger).query("SELECT options FROM batch_jobs")
    assert "hunter2Proxy" not in row["options"] and "proxyuser:***@" in row["options"], row["options"]
    assert ENDPOINT_ENVS.get(backend) is None  # the job's endpoint is not taken from the variable at submit
    stored = require_job(tables, job.job_id)
    with pytest.raises(ConfigError, match=variable) as refused:
        submit_options(stored)
    assert "hunter2Proxy" not in str(refused.value)
    monkeypatch.setenv(variable, secret_url)
    assert submit_options(stored).endpoint_url == secret_url


@pytest.mark.parametrize("backend", ["vertex", "bedrock"])
def test_a_lone_user_token_and_the_storage_endpoints_are_not_kept_in_the_ledger(tmp_path, monkeypatch, backend):
    """A credential in a URL's user part alone (https://TOKEN@proxy/v1, as some proxies take it) was stored as given,
    and so were --s3-endpoint-url and --gcs-endpoint-url, password and all. Each is kept as ***@host or user:***@host,
    and a later command takes it from the variable its SDK reads (AWS_ENDPOINT_URL_S3, STORAGE_EMULATOR_HOST)."""
    from tokenomy.batch.job_tables import require_job
    from tokenomy.batch.jobs import create_job, open_tables, submit_options
    from tokenomy.errors import ConfigError

    monkeypatch.setenv("AWS_DEFAULT_REGION", "us-east-1")
    variable = {"vertex": "GOOGLE_VERTEX_BASE_URL", "bedrock": "AWS_ENDPOINT_URL_BEDROCK"}[backend]
    storage_key, storage_variable = {
        "vertex": ("gcs_endpoint_url", "STORAGE_EMULATOR_HOST"),
        "bedrock": ("s3_endpoint_url", "AWS_ENDPOINT_URL_S3"),
    }[backend]
    for name in (variable, storage_variable):
        monkeypatch.delenv(name, raising=False)
    path = tmp_path / "in.jsonl"
    path.write_text("\n".join(plain(3 if backend == "vertex" else 100, max_tokens=4)) + "\n")  # Bedrock's minimum
    ledger = str(tmp_path / "ledger.duckdb")
    tables = open_tables(ledger)
    token_url = "http://tokTOKEN1234@127.0.0.1:9/v1"
    storage_url = "http://store:st0rePASS@127.0.0.1:8/"
    extra = {"gcs_uri": "gs://b/x", "project": "demo"} if backend == "vertex" else {}
    model = MODEL if backend == "vertex" else "anthropic.claude-3-haiku-20240307-v1:0"
    options = SubmitOptions(endpoint_url=token_url, region="us-central1" if backend == "vertex" else None,
                            s3_uri="s3://b/x" if backend == "bedrock" else None,
                            role_arn="arn:aws:iam::1:role/r" if backend == "bedrock" else None,
                            extra={**extra, storage_key: storage_url})  # fmt: skip
    job = create_job(tables, path, model, backend, options)
    [row] = open_store(ledger).query("SELECT options FROM batch_jobs")
    kept = json.loads(row["options"])
    assert "tokTOKEN1234" not in row["options"] and "st0rePASS" not in row["options"], row["options"]
    assert kept["endpoint_url"] == "http://***@127.0.0.1:9/v1" and kept[storage_key] == "http://store:***@127.0.0.1:8/"
    stored = require_job(tables, job.job_id)
    monkeypatch.setenv(variable, token_url)
    with pytest.raises(ConfigError, match=storage_variable) as refused:
        submit_options(stored)
    assert "st0rePASS" not in str(refused.value) and "tokTOKEN1234" not in str(refused.value)
    monkeypatch.setenv(storage_variable, storage_url)
    restored = submit_options(stored)
    assert restored.endpoint_url == token_url and restored.extra[storage_key] == storage_url


def test_resume_holds_back_a_job_vertex_failed_for_its_input_not_one_it_failed_itself(tmp_path):
    # A batch prediction job Vertex AI failed because its input was invalid (INVALID_ARGUMENT) was sent again
    # unchanged by `batch resume`, to fail again; only OpenAI's were held back. Now it is marked refused at validation
    # and resume names it; a job Google failed itself (INTERNAL) is still resent.
    from tokenomy.batch.jobs import create_job, open_tables, submit_parts
    from tokenomy.batch.jobs import wait as wait_job
    from tokenomy.batch.resubmit import resubmit_missing
    from tokenomy.errors import UsageError

    path = tmp_path / "in.jsonl"
    path.write_text("\n".join(plain(3, max_tokens=4)) + "\n")
    tables = open_tables(str(tmp_path / "ledger.duckdb"))
    with ServerThread(create_app(engine=InstantEngine(), batch_pending_seconds=2)) as url:
        options = SubmitOptions(
            endpoint_url=url, region="us-central1", extra={"gcs_uri": "gs://tk-refused/runs", "project": "demo"}
        )
        job = submit_parts(tables, create_job(tables, path, MODEL, "vertex", options))
        listing = httpx.get(f"{url}/storage/v1/b/tk-refused/o", params={"prefix": "runs/"}, headers=AUTH).json()
        [name] = [i["name"] for i in listing["items"] if i["name"].endswith("/input.jsonl")]
        httpx.post(
            f"{url}/upload/storage/v1/b/tk-refused/o",
            params={"uploadType": "media", "name": name},
            content=b"\xff\xfe not UTF-8\n",
            headers=AUTH,
        ).raise_for_status()  # before the job reads it
        job = wait_job(tables, job.job_id, 30, 0.05)
        assert job.status == "failed" and job.message.startswith("refused at validation: cannot read the input"), (
            job.to_json()
        )
        with pytest.raises(UsageError, match=r"part 0 \(3 records\): refused at validation: cannot read the input"):
            resubmit_missing(tables, job.job_id, min_records=1)
    from google.genai import types

    from tokenomy.batch.gemini_backend import job_failure

    assert job_failure(types.JobError(code=13, message="Internal error")) == "Internal error"  # resent by resume
