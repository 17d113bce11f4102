"""Gemini batch: the backend (google-genai underneath) against the Gemini emulator's Batch API, and a
whole `tokenomy batch` job whose answers land in the ledger at the catalog's batch rates."""

from __future__ import annotations

from decimal import Decimal

import pytest

from helpers.batch_records import in_order, plain, records, wait
from tokenomy.batch.backends import STATES, SubmitOptions
from tokenomy.batch.gemini_backend import STATUS_MAP, GeminiBatchBackend, inline_request
from tokenomy.emulate.gemini_api import create_app
from tokenomy.emulate.instant_engine import InstantEngine
from tokenomy.emulate.server import ServerThread
from tokenomy.errors import ConfigError
from tokenomy.pricing.catalog import default_catalog

MODEL = "gemini-2.5-flash"
MILLION = Decimal(1_000_000)


@pytest.fixture(autouse=True)
def no_google_env(monkeypatch):
    for key in ("GEMINI_API_KEY", "GOOGLE_API_KEY", "GOOGLE_GEMINI_BASE_URL"):
        monkeypatch.delenv(key, raising=False)


@pytest.fixture(scope="module")
def url():
    # Pending for 1 s: a test cancels a batch still pending, or sees it before it completes, with one call (0.1 s was
    # too short for that call on a loaded machine).
    with ServerThread(create_app(engine=InstantEngine(delay_s=0.01), batch_pending_seconds=1.0)) as base:
        yield base


def test_records_become_inline_requests_keyed_by_id() -> None:
    [rec] = records(
        [
            '{"id": "q1", "system": "be brief", "messages": [{"role": "user", "content": "hi"}, '
            '{"role": "assistant", "content": "hello"}, {"role": "user", "content": "more"}], '
            '"max_tokens": 9}'
        ]
    )
    assert inline_request(rec) == {
        "contents": [
            {"role": "user", "parts": [{"text": "hi"}]},
            {"role": "model", "parts": [{"text": "hello"}]},
            {"role": "user", "parts": [{"text": "more"}]},
        ],
        "metadata": {"key": "q1"},
        "config": {"system_instruction": "be brief", "max_output_tokens": 9},
    }


def test_backend_runs_a_batch_and_reads_results_by_key(url) -> None:
    backend = GeminiBatchBackend()
    handle = backend.submit("job1", MODEL, records(plain(5, max_tokens=3)), SubmitOptions(endpoint_url=url))
    assert handle.startswith("batches/")
    seen = wait(backend, handle, timeout=30)
    assert seen[-1] == "completed" and in_order(seen) and seen[0] in ("submitted", "in_progress")
    results = {r.id: r for r in backend.results(handle)}
    assert set(results) == {f"r{i}" for i in range(5)}
    for i, result in results.items():
        assert result.ok and result.text == f"Re: topic{i[1:]} please" and result.usage.output_tokens == 3
        assert result.model == MODEL and result.raw["metadata"] == {"key": i}


def test_cancel_stops_a_pending_batch(url) -> None:
    backend = GeminiBatchBackend(SubmitOptions(endpoint_url=url))
    handle = backend.submit("job2", MODEL, records(plain(3)), SubmitOptions(endpoint_url=url))
    backend.cancel(handle)
    assert backend.status(handle)[0] == "stopped" and list(backend.results(handle)) == []


def test_batch_job_lands_in_the_ledger_at_batch_rates(url, tmp_path, ledger_path) -> None:
    from tokenomy.batch.jobs import create_job, open_tables, submit_parts
    from tokenomy.batch.jobs import wait as wait_job
    from tokenomy.ledger.store import open_store

    path = tmp_path / "in.jsonl"
    path.write_text("\n".join(plain(4, max_tokens=4)) + "\n")
    tables = open_tables(str(ledger_path))
    job = submit_parts(tables, create_job(tables, path, MODEL, "gemini", SubmitOptions(endpoint_url=url)))
    job = wait_job(tables, job.job_id, timeout_s=30, poll_s=0.05)
    assert job.status == "completed" and job.done == 4
    rows = open_store(str(ledger_path)).query(
        "SELECT request_id, mode, provider, input_tokens, output_tokens, cost_usd FROM usage_events "
        "WHERE batch_job_id = ? ORDER BY request_id",
        [job.job_id],
    )
    assert [r["request_id"] for r in rows] == ["r0", "r1", "r2", "r3"]
    entry = default_catalog().lookup(MODEL)
    for row in rows:
        assert row["mode"] == "batch" and row["provider"] == "gcp.gemini" and row["output_tokens"] == 4
        expected = (row["input_tokens"] * entry.batch_input + 4 * entry.batch_output) / MILLION
        assert Decimal(str(row["cost_usd"])) == expected
        assert expected * 2 == (row["input_tokens"] * entry.input + 4 * entry.output) / MILLION


def test_every_sdk_job_state_maps_to_a_normalised_state() -> None:
    from google.genai import types

    states = {s.value for s in types.JobState} - {"JOB_STATE_UNSPECIFIED", "JOB_STATE_PAUSED", "JOB_STATE_UPDATING"}
    assert states <= set(STATUS_MAP) and set(STATUS_MAP.values()) <= set(STATES)


def test_no_key_and_no_emulator_is_a_config_error() -> None:
    with pytest.raises(ConfigError, match="GEMINI_API_KEY"):
        GeminiBatchBackend().status("batches/x")


def test_throttled_records_are_sent_again_by_resume_until_each_is_answered_once(tmp_path, ledger_path) -> None:
    import json

    from tokenomy.batch.jobs import create_job, open_tables, submit_parts
    from tokenomy.batch.jobs import wait as wait_job
    from tokenomy.batch.records import export_results
    from tokenomy.batch.resubmit import resubmit_missing
    from tokenomy.ledger.store import open_store

    # A record the Batch API answered with 429 (or a 5xx) was stored as a final failure: `resume` resubmitted
    # nothing, so the throttled records never got an answer, and nothing said how to get one.
    app = create_app(engine=InstantEngine(delay_s=0.0), batch_pending_seconds=0.05, throttle_rate=0.3, seed=7)
    path = tmp_path / "in.jsonl"
    path.write_text("\n".join(plain(20, max_tokens=4)) + "\n")
    tables = open_tables(str(ledger_path))
    with ServerThread(app) as base:
        options = SubmitOptions(endpoint_url=base)
        job = submit_parts(tables, create_job(tables, path, MODEL, "gemini", options))
        job = wait_job(tables, job.job_id, timeout_s=30, poll_s=0.05)
        assert job.failed and "`tokenomy batch resume" in job.message
        first = job.failed
        out = tmp_path / "out.jsonl"
        export_results(tables, job.job_id, out)
        failed = [json.loads(line) for line in out.read_text().splitlines() if '"ok": false' in line]
        assert len(failed) == first and all("429" in f["error"] and "batch resume" in f["error"] for f in failed)
        for _ in range(10):  # each round answers about 70% of what is left
            if not job.failed:
                break
            assert resubmit_missing(tables, job.job_id) == job.failed
            export_results(tables, job.job_id, out)  # while the new part runs, the failures say to wait
            waiting = [json.loads(line) for line in out.read_text().splitlines() if '"ok": false' in line]
            assert waiting and all("sent again; `tokenomy batch wait" in w["error"] for w in waiting)
            job = wait_job(tables, job.job_id, timeout_s=30, poll_s=0.05)
    assert (job.status, job.done, job.failed, job.pending) == ("completed", 20, 0, 0)
    counts = export_results(tables, job.job_id, out)
    assert counts == {"records": 20, "ok": 20, "failed": 0, "missing": 0}
    assert [json.loads(line)["id"] for line in out.read_text().splitlines()] == [f"r{i}" for i in range(20)]
    rows = open_store(str(ledger_path)).query(
        "SELECT request_id, COUNT(*) AS n FROM usage_events WHERE batch_job_id = ? GROUP BY 1", [job.job_id]
    )
    assert len(rows) == 20 and {r["n"] for r in rows} == {1}  # each answered record billed once


def test_a_batch_create_whose_answer_was_lost_is_found_by_resume_not_made_twice(tmp_path, ledger_path) -> None:
    # The Gemini API accepted the batch; its answer never came back, so the submit failed. Resume sent the records
    # as a new part and made a second batch: both ran, and were billed; one was never collected.
    from helpers.lossy_proxy import LossyProxy
    from tokenomy.batch.jobs import create_job, open_tables, submit_parts
    from tokenomy.batch.jobs import wait as wait_job
    from tokenomy.batch.resubmit import resubmit_missing
    from tokenomy.errors import ProviderError
    from tokenomy.ledger.store import open_store

    path = tmp_path / "in.jsonl"
    path.write_text("\n".join(plain(3, max_tokens=4)) + "\n")
    tables = open_tables(str(ledger_path))
    with ServerThread(create_app(engine=InstantEngine(), batch_pending_seconds=0.05)) as url:
        with LossyProxy(url, b"POST /v1/models/", lose=1) as proxy:
            options = SubmitOptions(endpoint_url=proxy.url)
            job = create_job(tables, path, MODEL, "gemini", options)
            with pytest.raises(ProviderError, match="batch create failed"):
                submit_parts(tables, job, GeminiBatchBackend(options))
            assert proxy.lost == 1
            assert resubmit_missing(tables, job.job_id, GeminiBatchBackend(options)) == 3
            job = wait_job(tables, job.job_id, 30, 0.05, GeminiBatchBackend(options))
        direct = GeminiBatchBackend(SubmitOptions(endpoint_url=url))  # kept: its SDK client closes when collected
        made = [b.name for b in direct._client().batches.list() if job.job_id in (b.display_name or "")]
    assert len(made) == 1, made
    assert job.status == "completed" and job.done == 3, job.to_json()
    rows = [e for e in open_store(str(ledger_path)).events() if e.batch_job_id == job.job_id]
    assert sorted(e.request_id for e in rows) == ["r0", "r1", "r2"]


def test_an_answer_without_usage_metadata_is_recorded_with_estimated_tokens_not_at_zero(
    tmp_path, ledger_path, monkeypatch, caplog
) -> None:
    # usage_from_gemini(None) is 0 tokens: an answer without usageMetadata reached the ledger at $0, silently.
    from tokenomy.batch.jobs import create_job, open_tables, submit_parts
    from tokenomy.batch.jobs import wait as wait_job
    from tokenomy.caching.placement import estimate_tokens
    from tokenomy.emulate import gemini_batch
    from tokenomy.ledger.store import open_store

    body = gemini_batch.response_body

    def without_usage(call, events, response_id):  # the answers as a server that leaves usageMetadata out sends them
        answer = body(call, events, response_id)
        answer.pop("usageMetadata")
        return answer

    monkeypatch.setattr(gemini_batch, "response_body", without_usage)
    path = tmp_path / "in.jsonl"
    path.write_text("\n".join(plain(2, max_tokens=4)) + "\n")
    tables = open_tables(str(ledger_path))
    with (
        ServerThread(create_app(engine=InstantEngine(), batch_pending_seconds=0.1)) as base,
        caplog.at_level("WARNING", logger="tokenomy.batch.records"),
    ):
        job = submit_parts(tables, create_job(tables, path, MODEL, "gemini", SubmitOptions(endpoint_url=base)))
        job = wait_job(tables, job.job_id, timeout_s=30, poll_s=0.05)
    assert job.status == "completed" and job.done == 2
    answers = tables.results(job.job_id)
    entry = default_catalog().lookup(MODEL)
    events = [e for e in open_store(str(ledger_path)).events() if e.batch_job_id == job.job_id]
    assert sorted(e.request_id for e in events) == ["r0", "r1"]
    for event in events:
        prompt = f"topic{event.request_id[1:]} please summarise briefly"
        text = answers[event.request_id]["text"]
        assert (event.input_tokens, event.output_tokens) == (estimate_tokens(prompt), estimate_tokens(text)) != (0, 0)
        assert (
            event.cost_usd
            == (event.input_tokens * entry.batch_input + event.output_tokens * entry.batch_output) / MILLION
            > 0
        )
        assert f"batch record {event.request_id} of job {job.job_id}" in caplog.text


def test_an_answer_with_a_count_no_answer_can_have_is_that_records_failure_the_rest_kept(monkeypatch) -> None:
    # usage_from_gemini was applied to the counts as sent: a negative count reached the ledger as a negative cost,
    # one past 2^31-1 as a row set aside. The OpenAI and Bedrock readers check them (usage_count, checked_counts); so
    # does this one, and such an answer is its record's failure naming the count.
    from tokenomy.emulate import gemini_batch

    body, counts = gemini_batch.response_body, iter([None, ("candidatesTokenCount", -3), ("promptTokenCount", 2**31)])

    def odd_counts(call, events, response_id):
        answer = body(call, events, response_id)
        change = next(counts)
        if change:
            answer["usageMetadata"][change[0]] = change[1]
        return answer

    monkeypatch.setattr(gemini_batch, "response_body", odd_counts)
    with ServerThread(create_app(engine=InstantEngine(), batch_pending_seconds=0.1)) as base:
        backend = GeminiBatchBackend(SubmitOptions(endpoint_url=base))
        handle = backend.submit("odd", MODEL, records(plain(3, max_tokens=4)), SubmitOptions(endpoint_url=base))
        assert wait(backend, handle, timeout=30)[-1] == "completed"
        results = list(backend.results(handle))
    assert sorted(r.id for r in results) == ["r0", "r1", "r2"]
    assert sum(r.ok for r in results) == 1 and all(r.ok == (r.usage is not None) for r in results)
    errors = sorted(r.error for r in results if not r.ok)
    assert all(e.startswith("unreadable usage:") for e in errors), errors
    assert "candidates_token_count -3" in errors[0] or "candidates_token_count -3" in errors[1], errors
    assert any(str(2**31) in e for e in errors), errors


def test_a_response_that_lost_its_key_is_its_records_failure_never_another_records_answer(
    tmp_path, ledger_path, monkeypatch
) -> None:
    # A response whose metadata.key was lost was yielded under its position ("0", "1", ...): its record showed as
    # missing, and resume sent it again, to be billed twice, and a record named "0" could be given another record's
    # answer. As the OpenAI, Bedrock and Vertex backends treat a line naming no record, it is now, in a batch that
    # answered every request, the failure of the record no response names; in a batch that ended short, that record
    # stays missing, for resume.
    import json

    from google.genai import types

    from tokenomy.batch.jobs import create_job, open_tables, submit_parts
    from tokenomy.batch.jobs import wait as wait_job
    from tokenomy.emulate.gemini_batch import GeminiBatches
    from tokenomy.ledger.store import open_store

    operation = GeminiBatches.operation

    def key_lost(self, record):  # the response to record "b" (the first) comes back without its metadata
        out = operation(self, record)
        for response in out["metadata"].get("output", {}).get("inlinedResponses", {}).get("inlinedResponses", []):
            if response.get("metadata") == {"key": "b"}:
                del response["metadata"]
        return out

    monkeypatch.setattr(GeminiBatches, "operation", key_lost)
    path = tmp_path / "in.jsonl"
    lines = [
        {"id": "b", "prompt": "topicb please summarise briefly", "max_tokens": 4},
        {"id": "0", "prompt": "topic0 please summarise briefly", "max_tokens": 4},
    ]
    path.write_text("".join(json.dumps(line) + "\n" for line in lines))
    tables = open_tables(str(ledger_path))
    with ServerThread(create_app(engine=InstantEngine(), batch_pending_seconds=0.1)) as base:
        job = submit_parts(tables, create_job(tables, path, MODEL, "gemini", SubmitOptions(endpoint_url=base)))
        job = wait_job(tables, job.job_id, timeout_s=30, poll_s=0.05)
        [part] = tables.parts(job.job_id)
        backend = GeminiBatchBackend(SubmitOptions(endpoint_url=base))
        batch = backend.describe(part["handle"])
    rows = tables.results(job.job_id)
    where = f"response 1 of {part['handle']}"
    assert set(rows) == {"b", "0", where} and (job.done, job.failed) == (1, 1), job.to_json()
    assert rows["0"]["ok"] and rows["0"]["text"] == "Re: topic0 please summarise", rows["0"]  # its own answer, not b's
    assert not rows["b"]["ok"] and "no response names this record, and 1 name none" in rows["b"]["error"]
    assert f"{where}: " in rows["b"]["error"] and "topicb" in rows["b"]["error"]
    # Google billed the response that lost its key: it was in no ledger. It is the job's unmatched answer now, with
    # its cost in the ledger and the job's.
    assert job.unmatched == 1 and rows[where]["ok"] and rows[where]["text"] == "Re: topicb please summarise"
    events = open_store(str(ledger_path)).events()
    assert sorted(e.request_id for e in events) == sorted(["0", where]) and all(e.cost_usd > 0 for e in events)
    assert job.cost_usd == sum((e.cost_usd for e in events), Decimal(0))

    # A batch that ended short may not have answered "b": it stays missing, and resume sends it; the response that
    # names no record is still the job's unmatched answer.
    monkeypatch.setattr(backend, "describe", lambda h: batch.model_copy(
        update={"state": types.JobState.JOB_STATE_CANCELLED}))  # fmt: skip
    assert [r.id for r in backend.part_results(part["handle"], ["b", "0"])] == ["0", where]


def test_a_response_error_s_grpc_code_is_read_by_its_name_so_a_throttled_record_is_sent_again() -> None:
    """An inlined response's error is a google.rpc.Status, whose code is gRPC's (8 RESOURCE_EXHAUSTED, 14
    UNAVAILABLE), not HTTP's: stored as "8: ...", a throttled record was a final failure resume never sent again."""
    from types import SimpleNamespace

    from tokenomy.batch.backends import transient
    from tokenomy.batch.gemini_backend import status_text

    def stored(code: int) -> str:
        return status_text(SimpleNamespace(code=code, message="m"))

    assert stored(8) == "RESOURCE_EXHAUSTED: m" and transient(stored(8))
    assert all(transient(stored(code)) for code in (4, 13, 14, 429, 500, 503))
    assert not any(transient(stored(code)) for code in (3, 5, 7, 400, 404))
    assert stored(3) == "INVALID_ARGUMENT: m" and stored(429) == "429: m"
