"""Bedrock batch: the backend and real boto3 against `tokenomy emulate bedrock`'s batch-job API, with S3
served by moto in server mode on 127.0.0.1."""

from __future__ import annotations

import json
import os
import time
from contextlib import contextmanager
from dataclasses import replace
from datetime import UTC
from decimal import Decimal

import boto3
import pytest
from botocore.exceptions import ClientError

from helpers.batch_records import in_order, plain, records, wait
from tokenomy.batch.backends import STATES, SubmitOptions
from tokenomy.batch.bedrock_backend import BedrockBatchBackend
from tokenomy.chat_response import Usage
from tokenomy.emulate.bedrock_batch import configure
from tokenomy.emulate.bedrock_runtime import create_app
from tokenomy.emulate.instant_engine import InstantEngine
from tokenomy.emulate.server import ServerThread, free_port
from tokenomy.errors import ConfigError, ProviderError, UsageError
from tokenomy.pricing.cost import compute_cost

HAIKU = "anthropic.claude-3-haiku-20240307-v1:0"
ROLE = "arn:aws:iam::123456789012:role/BedrockBatch"
BUCKET = "tokenomy-batch"
FAST = {"step_seconds": 0.05, "queue_seconds": 0.05}


@pytest.fixture(scope="module")
def s3_url():
    from moto.server import ThreadedMotoServer

    port = free_port()
    server = ThreadedMotoServer(ip_address="127.0.0.1", port=port, verbose=False)
    server.start()
    url = f"http://127.0.0.1:{port}"
    boto3.client(
        "s3", endpoint_url=url, region_name="us-east-1", aws_access_key_id="x", aws_secret_access_key="x"
    ).create_bucket(Bucket=BUCKET)
    yield url
    server.stop()


@pytest.fixture(autouse=True)
def aws_env(monkeypatch):
    for key, value in {
        "AWS_ACCESS_KEY_ID": "testing",
        "AWS_SECRET_ACCESS_KEY": "testing",
        "AWS_REGION": "us-east-1",
    }.items():
        monkeypatch.setenv(key, value)
    for key in (
        "AWS_PROFILE",
        "AWS_SESSION_TOKEN",
        "AWS_ENDPOINT_URL",
        "AWS_ENDPOINT_URL_BEDROCK",
        "AWS_ENDPOINT_URL_S3",
        "TOKENOMY_BEDROCK_ROLE_ARN",
        "TOKENOMY_BEDROCK_S3_URI",
    ):
        monkeypatch.delenv(key, raising=False)


@contextmanager
def emulator(s3_url: str, engine=None, **settings):
    """The Bedrock emulator (runtime + batch) on a free port; yields (url, backend options)."""
    app = create_app(engine=engine or InstantEngine())
    configure(app, s3_endpoint_url=s3_url, **{"min_records": 1, **FAST, **settings})
    with ServerThread(app) as url:
        yield (
            url,
            SubmitOptions(
                region="us-east-1",
                role_arn=ROLE,
                s3_uri=f"s3://{BUCKET}/jobs",
                endpoint_url=url,
                extra={"s3_endpoint_url": s3_url},
            ),
        )


def s3_json(s3_url: str, handle: str, backend: BedrockBatchBackend):
    """Bedrock's documented layout: {outputS3Uri}/{jobId}/ holds {input}.out and manifest.json.out."""
    job = backend.describe(handle)
    out = job["outputDataConfig"]["s3OutputDataConfig"]["s3Uri"]
    bucket, prefix = out[5:].split("/", 1)
    folder = f"{prefix.rstrip('/')}/{handle.rsplit('/', 1)[1]}/"
    s3 = boto3.client("s3", endpoint_url=s3_url, region_name="us-east-1")
    keys = sorted(o["Key"][len(folder) :] for o in s3.list_objects_v2(Bucket=bucket, Prefix=folder)["Contents"])
    read = lambda k: s3.get_object(Bucket=bucket, Key=folder + k)["Body"].read().decode()  # noqa: E731
    lines = [json.loads(x) for x in read("records.jsonl.out").splitlines()]
    return keys, lines, json.loads(read("manifest.json.out"))


def priced(results, model: str = HAIKU) -> tuple[Decimal, Decimal]:
    batch = sum((compute_cost(r.usage, model, "us-east-1", mode="batch").total_usd for r in results), Decimal(0))
    on_demand = sum((compute_cost(r.usage, model, "us-east-1").total_usd for r in results), Decimal(0))
    return batch, on_demand


@pytest.mark.slow
def test_local_model_job_completes_with_outputs_manifest_and_batch_prices(s3_url) -> None:
    # Real Bedrock needs 100 records per job; the emulator is told 1 so the local model stays quick.
    from tokenomy.emulate.engine import Engine

    with emulator(s3_url, engine=Engine(), step_seconds=0.3, queue_seconds=0.3) as (_, options):
        backend = BedrockBatchBackend()
        recs = records(plain(3, max_tokens=5))
        handle = backend.submit("local-job", HAIKU, recs, options)
        assert handle.startswith("arn:aws:bedrock:us-east-1:") and "model-invocation-job/" in handle
        seen = wait(backend, handle)
        assert seen[-1] == "completed" and in_order(seen)
        assert {"submitted", "validating", "scheduled", "in_progress"} & set(seen)
        keys, lines, manifest = s3_json(s3_url, handle, backend)
        assert keys == ["manifest.json.out", "records.jsonl.out"]
        assert [ln["recordId"] for ln in lines] == ["r0", "r1", "r2"]
        for ln in lines:
            assert ln["modelInput"]["anthropic_version"] == "bedrock-2023-05-31"
            assert ln["modelOutput"]["type"] == "message" and ln["modelOutput"]["content"][0]["text"].strip()
        results = {r.id: r for r in backend.results(handle)}
        assert set(results) == {"r0", "r1", "r2"}
        assert all(r.ok and r.text and 0 < r.usage.output_tokens <= 5 for r in results.values())
        assert manifest == {
            "totalRecordCount": 3,
            "processedRecordCount": 3,
            "successRecordCount": 3,
            "errorRecordCount": 0,
            "inputTokenCount": sum(r.usage.input_tokens for r in results.values()),
            "outputTokenCount": sum(r.usage.output_tokens for r in results.values()),
        }
        assert backend.manifests[handle] == manifest
        batch, on_demand = priced(results.values())
        assert batch > 0 and batch == on_demand / 2


def test_two_hundred_records_on_the_instant_engine(s3_url) -> None:
    # 0.5 s in each of Submitted, Validating and Scheduled: polls (boto3 calls, slow on a loaded machine) see at least
    # two of them before Completed; at 0.1 s a slow poll could miss all but one.
    with emulator(s3_url, step_seconds=0.5, queue_seconds=0.5) as (_, options):
        backend = BedrockBatchBackend()
        handle = backend.submit("big job #1", HAIKU, records(plain(200)), options)
        seen = wait(backend, handle)
        assert seen[-1] == "completed" and in_order(seen) and len(seen) >= 3
        results = list(backend.results(handle))
        assert sorted(r.id for r in results) == sorted(f"r{i}" for i in range(200))
        for r in results:  # joined by id: each answer echoes its own record's prompt
            assert r.ok and f"topic{r.id[1:]} " in r.text + " " and r.model == HAIKU
        manifest = backend.manifests[handle]
        assert manifest["successRecordCount"] == 200 and manifest["errorRecordCount"] == 0
        assert manifest["inputTokenCount"] == sum(r.usage.input_tokens for r in results)
        assert manifest["outputTokenCount"] == sum(r.usage.output_tokens for r in results)
        job = backend.describe(handle)
        assert job["status"] == "Completed" and job["totalRecordCount"] == 200 and "endTime" in job
        assert job["timeoutDurationInHours"] == 168 and job["inputDataConfig"]["s3InputDataConfig"]["s3Uri"].endswith(
            "/input/records.jsonl"
        )
        assert job["jobName"].startswith("tokenomy-big-job-1-")
        batch, on_demand = priced(results)
        assert (
            batch == compute_cost(sum((r.usage for r in results), Usage()), HAIKU, "us-east-1", mode="batch").total_usd
        )
        assert batch == on_demand / 2


def test_invalid_bodies_leave_a_partially_completed_job_and_are_named(s3_url) -> None:
    bad_ids = {"r3", "r40", "r77"}
    lines = plain(100)
    for i, rid in enumerate(sorted(bad_ids)):  # Bedrock-form records whose Claude body is not valid
        # (an old Text Completions cap beside max_tokens)
        body = {
            "anthropic_version": "bedrock-2023-05-31",
            "max_tokens": 5,
            "max_tokens_to_sample": 300,
            "messages": [{"role": "user", "content": "hi"}],
        }
        if i == 1:  # (a version Bedrock does not take)
            body = {"anthropic_version": "2023-01-01", "max_tokens": 5, "messages": body["messages"]}
        lines[int(rid[1:])] = json.dumps({"recordId": rid, "modelInput": body})
    with emulator(s3_url) as (_, options):
        backend = BedrockBatchBackend()
        key = "arn:aws:kms:us-east-1:123456789012:key/1234abcd-12ab-34cd-56ef-1234567890ab"
        handle = backend.submit("partial", HAIKU, records(lines), replace(options, kms_key_id=key))
        assert wait(backend, handle)[-1] == "partially_completed"
        output = backend.describe(handle)["outputDataConfig"]["s3OutputDataConfig"]
        assert output["s3EncryptionKeyId"] == key
        s3 = boto3.client("s3", endpoint_url=s3_url, region_name="us-east-1")
        folder = output["s3Uri"][len(f"s3://{BUCKET}/") :] + handle.rsplit("/", 1)[1]
        head = s3.head_object(Bucket=BUCKET, Key=f"{folder}/records.jsonl.out")
        assert head["ServerSideEncryption"] == "aws:kms" and head["SSEKMSKeyId"] == key
        _state, message = backend.status(handle)
        assert "3 records failed" in message
        results = {r.id: r for r in backend.results(handle)}
        failed = {rid for rid, r in results.items() if not r.ok}
        assert failed == bad_ids and len(results) == 100
        assert "max_tokens_to_sample" in results["r3"].error and results["r3"].error.startswith("400")
        assert "anthropic_version" in results["r40"].error
        assert all(r.usage is None for rid, r in results.items() if rid in bad_ids)
        assert backend.manifests[handle]["errorRecordCount"] == 3


def test_timeout_mid_job_is_partially_completed_with_the_rest_missing(s3_url) -> None:
    # 24 emulated hours last 0.8 s; 150 records at 20 ms each need 3 s.
    with emulator(s3_url, step_seconds=0.02, queue_seconds=0.02, seconds_per_hour=0.8 / 24, instant_delay_s=0.02) as (
        _,
        options,
    ):
        backend = BedrockBatchBackend()
        recs = records(plain(150))
        handle = backend.submit("timeout", HAIKU, recs, replace(options, timeout_hours=24))
        seen = wait(backend, handle)
        assert seen[-1] == "partially_completed" and "in_progress" in seen
        answered = {r.id for r in backend.results(handle)}
        missing = {r.id for r in recs} - answered
        assert answered and missing and len(answered) + len(missing) == 150
        assert backend.manifests[handle]["processedRecordCount"] == len(answered)
        assert "timed out" in backend.status(handle)[1]


def test_stop_moves_through_stopping_to_stopped(s3_url) -> None:
    with emulator(s3_url, instant_delay_s=0.02) as (_, options):
        backend = BedrockBatchBackend()
        handle = backend.submit("stop-me", HAIKU, records(plain(150)), options)
        while backend.status(handle)[0] != "in_progress":
            time.sleep(0.01)
        backend.cancel(handle)
        assert backend.status(handle)[0] in ("stopping", "stopped")
        seen = wait(backend, handle, timeout=30)
        assert seen[-1] == "stopped"
        answered = list(backend.results(handle))
        assert len(answered) < 150 and backend.manifests[handle]["processedRecordCount"] == len(answered)
        backend.cancel(handle)  # stopping a finished job is a no-op, not an error


def test_job_that_waits_past_its_timeout_expires(s3_url) -> None:
    # Scheduled for 5 s, but 24 emulated hours pass in 0.24 s: it expires before it starts.
    with emulator(s3_url, queue_seconds=5, seconds_per_hour=0.01) as (_url, options):
        backend = BedrockBatchBackend(options)
        handle = backend.submit("expire", HAIKU, records(plain(5)), options)
        seen = wait(backend, handle, timeout=10)
        assert seen[-1] == "expired" and "in_progress" not in seen
        assert list(backend.results(handle)) == []  # nothing ran: every record can be resubmitted
        summaries = list(backend.list_jobs("expire"))
        assert [s["status"] for s in summaries] == ["Expired"] and summaries[0]["jobArn"] == handle


def test_converse_jobs_for_other_families_and_bedrock_api_errors(s3_url) -> None:
    with emulator(s3_url, min_records=3) as (url, options):
        backend = BedrockBatchBackend()
        handle = backend.submit("mistral", "mistral.mistral-large-2407-v1:0", records(plain(4)), options)
        assert wait(backend, handle)[-1] == "completed"
        assert backend.describe(handle)["modelInvocationType"] == "Converse"
        assert all(r.ok and r.usage.output_tokens > 0 for r in backend.results(handle))
        llama = backend.submit("llama", "meta.llama3-1-8b-instruct-v1:0", records(plain(3)), options)
        assert wait(backend, llama)[-1] == "completed"
        answers = list(backend.results(llama))
        assert len(answers) == 3 and all(
            r.ok
            and r.raw["modelInput"]["prompt"].startswith("<|begin_of_text|>")
            and "generation" in r.raw["modelOutput"]
            for r in answers
        )
        small = backend.submit("too-small", HAIKU, records(plain(2)), options)  # under the 3-record minimum
        assert wait(backend, small)[-1] == "failed"
        assert "at least 3 records" in backend.status(small)[1]
        client = boto3.client("bedrock", endpoint_url=url, region_name="us-east-1")
        config = {
            "inputDataConfig": {"s3InputDataConfig": {"s3Uri": f"s3://{BUCKET}/nothing-here/"}},
            "outputDataConfig": {"s3OutputDataConfig": {"s3Uri": f"s3://{BUCKET}/out/"}},
        }
        with pytest.raises(ClientError) as err:
            client.create_model_invocation_job(jobName="bad-role", roleArn="not-a-role", modelId=HAIKU, **config)
        assert err.value.response["Error"]["Code"] == "ValidationException"
        with pytest.raises(ClientError) as err:
            client.create_model_invocation_job(jobName="bad-model", roleArn=ROLE, modelId="acme.nope-v1", **config)
        assert err.value.response["Error"]["Code"] == "ValidationException"
        with pytest.raises(ClientError) as err:
            client.get_model_invocation_job(jobIdentifier="abcdefabcdef")
        assert err.value.response["Error"]["Code"] == "ResourceNotFoundException"
        empty = client.create_model_invocation_job(jobName="empty", roleArn=ROLE, modelId=HAIKU, **config)["jobArn"]
        assert wait(backend, empty)[-1] == "failed" and "No .jsonl input" in backend.status(empty)[1]
        with pytest.raises(ClientError) as err:
            client.stop_model_invocation_job(jobIdentifier=empty)
        assert err.value.response["Error"]["Code"] == "ConflictException"
        from datetime import datetime, timedelta

        page = client.list_model_invocation_jobs(
            maxResults=2, sortOrder="Ascending", submitTimeAfter=datetime.now(UTC) - timedelta(minutes=10)
        )
        assert [j["jobArn"] for j in page["invocationJobSummaries"]] == [handle, llama] and page["nextToken"]
        everything = [
            j["jobArn"]
            for p in client.get_paginator("list_model_invocation_jobs").paginate(
                sortOrder="Ascending", PaginationConfig={"PageSize": 1}
            )
            for j in p["invocationJobSummaries"]
        ]
        assert everything == [handle, llama, small, empty]
        assert client.list_model_invocation_jobs(statusEquals="Failed")["invocationJobSummaries"][0]["jobArn"] == empty


def test_missing_role_or_bucket_is_a_config_error_naming_the_fix() -> None:
    recs = records(plain(1))
    with pytest.raises(ConfigError, match="--role-arn"):
        BedrockBatchBackend().submit("j", HAIKU, recs, SubmitOptions(s3_uri="s3://b/p"))
    with pytest.raises(ConfigError, match="--s3-uri"):
        BedrockBatchBackend().submit("j", HAIKU, recs, SubmitOptions(role_arn=ROLE))


def test_missing_aws_credentials_error_says_which_settings_to_give(monkeypatch, tmp_path) -> None:
    for key in [k for k in os.environ if k.startswith("AWS_")]:
        monkeypatch.delenv(key)
    monkeypatch.setenv("AWS_SHARED_CREDENTIALS_FILE", str(tmp_path / "none"))
    monkeypatch.setenv("AWS_CONFIG_FILE", str(tmp_path / "none"))
    monkeypatch.setenv("AWS_EC2_METADATA_DISABLED", "true")
    monkeypatch.setattr(boto3, "DEFAULT_SESSION", None)  # a session from an earlier test caches its credentials
    with pytest.raises(ProviderError, match="Unable to locate credentials; set AWS_ACCESS_KEY_ID"):
        BedrockBatchBackend().submit(
            "j", HAIKU, records(plain(1)), SubmitOptions(region="us-east-1", role_arn=ROLE, s3_uri="s3://b/p")
        )


def test_cli_submit_of_1000_lines_with_20_malformed_completes_at_batch_prices(s3_url, tmp_path, ledger_path) -> None:
    import os
    import subprocess
    import sys

    from tokenomy.ledger.store import open_store

    lines = plain(1000, max_tokens=6)
    broken = [
        '{"id": "x", "prompt": ',
        '{"prompt": "no id"}',
        json.dumps({"id": "r1", "prompt": "duplicate"}),
        json.dumps({"id": "e", "prompt": "   "}),
        "[1, 2]",
    ]
    for i in range(20):  # every 50th line is malformed in one of five ways
        lines[i * 50 + 7] = broken[i % 5].replace('"e"', f'"e{i}"').replace('"x"', f'"x{i}"')
    path = tmp_path / "in.jsonl"
    path.write_text("\n".join(lines) + "\n")
    env = {**os.environ, "AWS_ACCESS_KEY_ID": "testing", "AWS_SECRET_ACCESS_KEY": "testing", "AWS_REGION": "us-east-1"}
    with emulator(s3_url) as (url, _):
        out = subprocess.run(
            [
                sys.executable,
                "-m",
                "tokenomy.cli",
                "batch",
                "submit",
                str(path),
                "--model",
                HAIKU,
                "--backend",
                "bedrock",
                "--json",
                "--endpoint-url",
                url,
                "--s3-endpoint-url",
                s3_url,
                "--role-arn",
                ROLE,
                "--s3-uri",
                f"s3://{BUCKET}/cli",
                "--ledger",
                str(ledger_path),
            ],
            capture_output=True,
            text=True,
            env=env,
            timeout=300,
        )
    assert out.returncode == 0, out.stderr
    first, *_, last = [json.loads(x) for x in out.stdout.splitlines() if x.startswith("{")]
    job = last
    assert job["job_id"] == first["job_id"] and job["status"] == "completed"
    assert job["records"] == 980 and job["done"] == 980 and job["bad_lines"] == 20
    rows = open_store(str(ledger_path)).query(
        "SELECT mode, model, input_tokens, output_tokens, cost_usd FROM usage_events WHERE batch_job_id = ?",
        [job["job_id"]],
    )
    assert len(rows) == 980 and {r["mode"] for r in rows} == {"batch"} and {r["model"] for r in rows} == {HAIKU}
    batch = on_demand = Decimal(0)
    for r in rows:
        usage = Usage(r["input_tokens"], r["output_tokens"])
        assert Decimal(str(r["cost_usd"])) == compute_cost(usage, HAIKU, mode="batch").total_usd
        batch += Decimal(str(r["cost_usd"]))
        on_demand += compute_cost(usage, HAIKU).total_usd
    assert batch > 0 and batch == on_demand / 2
    assert Decimal(str(job["cost_usd"])) == batch


def test_emulate_bedrock_command_serves_batch_jobs(s3_url) -> None:
    import subprocess
    import sys

    from helpers import wait_for_port

    port = free_port()
    proc = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "tokenomy.cli",
            "emulate",
            "bedrock",
            "--port",
            str(port),
            "--s3-endpoint-url",
            s3_url,
            "--batch-step-seconds",
            "0.05",
            "--batch-min-records",
            "25",
        ],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
    )
    try:
        wait_for_port(port, 60, proc)
        options = SubmitOptions(
            role_arn=ROLE,
            s3_uri=f"s3://{BUCKET}/cmd",
            endpoint_url=f"http://127.0.0.1:{port}",
            extra={"s3_endpoint_url": s3_url},
        )
        backend = BedrockBatchBackend(options)
        handle = backend.submit("cmd", "amazon.nova-micro-v1:0", records(plain(30)), options)
        assert wait(backend, handle)[-1] == "completed"
        results = list(backend.results(handle))
        assert len(results) == 30 and all(r.ok and r.usage.output_tokens > 0 for r in results)
        assert results[0].raw["modelInput"]["schemaVersion"] == "messages-v1"  # Nova's native body
        small = backend.submit("cmd-small", "amazon.nova-micro-v1:0", records(plain(24)), options)
        assert wait(backend, small)[-1] == "failed" and "at least 25 records" in backend.status(small)[1]
    finally:
        proc.terminate()
        proc.wait(10)


def test_records_missing_after_a_timeout_are_resubmitted_and_answered_once(s3_url, tmp_path, ledger_path) -> None:
    from tokenomy.batch.jobs import create_job, open_tables, submit_parts
    from tokenomy.batch.jobs import wait as wait_job
    from tokenomy.batch.records import export_missing
    from tokenomy.batch.resubmit import resubmit_missing
    from tokenomy.errors import UsageError
    from tokenomy.ledger.store import open_store

    path = tmp_path / "in.jsonl"
    path.write_text("\n".join(plain(120)) + "\n")
    app = create_app(engine=InstantEngine())
    # First run: 24 emulated hours last 3 s but 120 records at 50 ms need 6 s: about 55 finish on a quiet machine,
    # and more than 20 unless the job's start (S3 reads, its stages) takes over 2 s, so the resubmission stays below
    # Bedrock's 100-record minimum (the emulator is told 1 for it; real Bedrock would fail that part). With 1.2 s and
    # 15 ms a record, a slow start in CI left 20 or fewer.
    service = configure(
        app,
        s3_endpoint_url=s3_url,
        min_records=1,
        step_seconds=0.02,
        queue_seconds=0.02,
        seconds_per_hour=3.0 / 24,
        instant_delay_s=0.05,
    )
    with ServerThread(app) as url:
        tables = open_tables(str(ledger_path))
        options = SubmitOptions(
            role_arn=ROLE,
            s3_uri=f"s3://{BUCKET}/resume",
            endpoint_url=url,
            timeout_hours=24,
            extra={"s3_endpoint_url": s3_url},
        )
        job = submit_parts(tables, create_job(tables, path, HAIKU, "bedrock", options))
        job = wait_job(tables, job.job_id, timeout_s=60, poll_s=0.05)
        assert job.status == "partially_completed" and 20 < job.done < 120, job.to_json()
        first = job.done
        service.settings.seconds_per_hour = 3600.0  # the next job has all the time it needs
        with pytest.raises(UsageError, match=r"below aws.bedrock's minimum of 100"):
            resubmit_missing(tables, job.job_id)  # what real Bedrock would reject is refused up front
        rest = tmp_path / "rest.jsonl"
        assert export_missing(tables, job.job_id, rest)["records"] == 120 - first
        assert len(rest.read_text().splitlines()) == 120 - first
        assert resubmit_missing(tables, job.job_id, min_records=1) == 120 - first
        job = wait_job(tables, job.job_id, timeout_s=60, poll_s=0.05)
    assert job.done == 120 and job.pending == 0, job.to_json()
    rows = open_store(str(ledger_path)).query(
        "SELECT request_id, mode, provider FROM usage_events WHERE batch_job_id = ?", [job.job_id]
    )
    assert sorted(r["request_id"] for r in rows) == sorted(f"r{i}" for i in range(120))  # each exactly once
    assert {r["mode"] for r in rows} == {"batch"}
    from tokenomy.providers.bedrock import BedrockProvider

    # Named as on-demand Bedrock calls are, so `report spend --by provider` shows one Bedrock (was `bedrock`).
    assert {r["provider"] for r in rows} == {BedrockProvider.name} == {"aws.bedrock"}


def test_every_bedrock_job_status_in_botocore_maps_to_a_normalised_state() -> None:
    import botocore.session

    from tokenomy.batch.bedrock_backend import STATUS_MAP

    shape = botocore.session.get_session().get_service_model("bedrock").shape_for("ModelInvocationJobStatus")
    assert len(shape.enum) == 10 and set(STATUS_MAP) == set(shape.enum)
    assert set(STATUS_MAP.values()) == set(STATES)  # one normalised state each, all of them used


def test_a_record_whose_output_has_no_usage_is_estimated_not_dropped(caplog) -> None:
    # Mistral's own body (`outputs`) carries no usage: Bedrock reports it in response headers, which a batch output
    # file does not keep. Such an answered record used to reach the ledger as nothing at all.
    prompt = "<s>[INST] " + "Summarise the report. " * 20 + "[/INST]"
    line = {
        "recordId": "r1",
        "modelInput": {"prompt": prompt, "max_tokens": 100},
        "modelOutput": {"outputs": [{"text": "A short summary. " * 5, "stop_reason": "stop"}]},
    }
    with caplog.at_level("WARNING", logger="tokenomy.batch.bedrock_backend"):
        result = BedrockBatchBackend._record(line, "mistral.mistral-7b-instruct-v0:2")
    assert result.ok and result.text == "A short summary. " * 5
    assert result.usage == Usage(input_tokens=(len(prompt) + 3) // 4, output_tokens=(len(result.text) + 3) // 4)
    assert "batch record r1 of mistral.mistral-7b-instruct-v0:2 has no usage" in caplog.text


def test_a_claude_or_converse_output_without_usage_is_estimated_not_zero(caplog) -> None:
    # An Anthropic (or Converse) modelOutput without `usage` was read as 0 tokens: recorded at $0, with no warning.
    body = {
        "anthropic_version": "bedrock-2023-05-31",
        "max_tokens": 50,
        "messages": [{"role": "user", "content": [{"type": "text", "text": "Name three rivers."}]}],
    }
    claude = {"content": [{"type": "text", "text": "Nile, Amazon, Danube."}], "stop_reason": "end_turn"}
    converse = {"output": {"message": {"role": "assistant", "content": [{"text": "Nile, Amazon, Danube."}]}}}
    for output in (claude, converse):
        line = {"recordId": "r1", "modelInput": body, "modelOutput": output}
        with caplog.at_level("WARNING", logger="tokenomy.batch.bedrock_backend"):
            result = BedrockBatchBackend._record(line, HAIKU)
        assert result.usage == Usage(input_tokens=(len(json.dumps(body)) + 3) // 4, output_tokens=(21 + 3) // 4)
        assert f"batch record r1 of {HAIKU} has no usage" in caplog.text


def test_a_claude_invoke_model_answer_names_the_stop_sequence_that_ended_it(s3_url) -> None:
    # The emulator's Claude InvokeModel body said `"stop_sequence": null` (and stop_reason end_turn) when a stop
    # sequence ended the text; Bedrock, like the Messages API, says "stop_sequence" and names the one that matched.
    def line(rid: str, stops: list[str]) -> str:
        return json.dumps(
            {
                "recordId": rid,
                "modelInput": {
                    "anthropic_version": "bedrock-2023-05-31",
                    "max_tokens": 50,
                    "stop_sequences": stops,
                    "messages": [{"role": "user", "content": [{"type": "text", "text": "alpha beta STOP gamma"}]}],
                },
            }
        )

    with emulator(s3_url) as (_, options):
        backend = BedrockBatchBackend()
        handle = backend.submit(
            "stops", HAIKU, records([line("r0", ["zzz", "ta ST", "STOP"]), line("r1", ["zzz"])]), options
        )
        assert wait(backend, handle)[-1] == "completed"
        _, lines, _ = s3_json(s3_url, handle, backend)
    out = {ln["recordId"]: ln["modelOutput"] for ln in lines}
    assert (out["r0"]["stop_reason"], out["r0"]["stop_sequence"]) == ("stop_sequence", "ta ST")
    assert out["r0"]["content"] == [{"type": "text", "text": "Re: alpha be"}]  # the text stops before it
    assert out["r0"]["usage"]["output_tokens"] > 0
    assert (out["r1"]["stop_reason"], out["r1"]["stop_sequence"]) == ("end_turn", None)
    assert out["r1"]["content"][0]["text"] == "Re: alpha beta STOP gamma"


def test_status_of_a_job_that_ended_short_says_why_in_the_providers_words(s3_url, tmp_path, ledger_path) -> None:
    import subprocess
    import sys
    from pathlib import Path

    from tokenomy.batch.jobs import create_job, open_tables, submit_parts
    from tokenomy.batch.jobs import wait as wait_job

    path = tmp_path / "in.jsonl"
    path.write_text("\n".join(plain(100)) + "\n")  # Bedrock's minimum
    # Scheduled for 5 s, but 24 emulated hours pass in 0.24 s: Bedrock expires it before it starts.
    with emulator(s3_url, queue_seconds=5, seconds_per_hour=0.01) as (_, options):
        tables = open_tables(str(ledger_path))
        job = submit_parts(tables, create_job(tables, path, HAIKU, "bedrock", replace(options, timeout_hours=24)))
        job = wait_job(tables, job.job_id, timeout_s=10, poll_s=0.05)
    assert job.status == "expired"
    shown = subprocess.run(
        [
            str(Path(sys.executable).with_name("tokenomy")),
            "batch",
            "status",
            job.job_id,
            "--ledger",
            str(ledger_path),
            "--json",
        ],
        capture_output=True,
        text=True,
        timeout=60,
    )
    # Before, `status` said "expired" and nothing more: the provider's reason stayed on the job's part rows.
    # And it named no fix, though resume sends the records (100: Bedrock's minimum a job).
    assert json.loads(shown.stdout)["message"] == (
        "The job timed out before it started. Submit a new job; 100 records have no result; "
        f"`tokenomy batch resume {job.job_id}` sends them"
    )


def test_a_job_that_timed_out_with_fewer_records_left_than_bedrocks_minimum_says_what_resume_does(
    s3_url, tmp_path, ledger_path
) -> None:
    # A job that timed out midway said only so: it named no fix. Resume cannot send fewer records than Bedrock's
    # minimum a job (100), so the job says that resume tells how to run them on demand, not that it sends them.
    from tokenomy.batch.jobs import create_job, open_tables, submit_parts
    from tokenomy.batch.jobs import wait as wait_job
    from tokenomy.batch.resubmit import resubmit_missing

    path = tmp_path / "in.jsonl"
    path.write_text("\n".join(plain(101)) + "\n")
    # 24 emulated hours last 1.5 s; 101 records at 20 ms each need 2 s.
    with emulator(s3_url, step_seconds=0.02, queue_seconds=0.02, seconds_per_hour=1.5 / 24, instant_delay_s=0.02) as (
        _,
        options,
    ):
        tables = open_tables(str(ledger_path))
        job = submit_parts(tables, create_job(tables, path, HAIKU, "bedrock", replace(options, timeout_hours=24)))
        job = wait_job(tables, job.job_id, timeout_s=30, poll_s=0.05)
        assert job.status == "partially_completed" and 1 < job.done < 101 and job.pending == 101 - job.done
        assert job.message.endswith(
            f"; {job.pending} records have no result; fewer than aws.bedrock's minimum of 100 a batch job are left to "
            f"send: `tokenomy batch resume {job.job_id}` says how to run them on demand"
        ), job.message
        with pytest.raises(UsageError, match=f"{job.pending} records .* below aws.bedrock's minimum of 100 .* demand"):
            resubmit_missing(tables, job.job_id)


def test_a_create_whose_answer_was_lost_is_found_by_resume_not_made_twice(
    s3_url, tmp_path, ledger_path, monkeypatch
) -> None:
    # Bedrock accepted CreateModelInvocationJob; its answer never came back, so the submit failed. Resume named the
    # part anew (a new clientRequestToken) and made a second job: both ran, and were billed; one was never collected.
    from helpers.lossy_proxy import LossyProxy
    from tokenomy.batch.jobs import create_job, open_tables, submit_parts
    from tokenomy.batch.jobs import wait as wait_job
    from tokenomy.batch.resubmit import resubmit_missing
    from tokenomy.ledger.store import open_store

    monkeypatch.setenv("AWS_MAX_ATTEMPTS", "1")  # botocore's own retries reuse the token; this is about resume
    path = tmp_path / "in.jsonl"
    path.write_text("\n".join(plain(100)) + "\n")  # Bedrock's minimum a job
    with emulator(s3_url) as (url, options), LossyProxy(url, b"POST /model-invocation-job ", lose=1) as proxy:
        options = replace(options, endpoint_url=proxy.url)
        tables = open_tables(str(ledger_path))
        job = create_job(tables, path, HAIKU, "bedrock", options)
        with pytest.raises(ProviderError, match="CreateModelInvocationJob failed"):
            submit_parts(tables, job)
        assert proxy.lost == 1
        resubmit_missing(tables, job.job_id, min_records=1)
        job = wait_job(tables, job.job_id, timeout_s=60, poll_s=0.05)
        created = list(BedrockBatchBackend(options).list_jobs())
    assert len(created) == 1, [j["jobName"] for j in created]
    assert job.status == "completed" and job.done == 100, job.to_json()
    rows = [e for e in open_store(str(ledger_path)).events() if e.batch_job_id == job.job_id]
    assert sorted(e.request_id for e in rows) == sorted(f"r{i}" for i in range(100))  # each once


def test_an_output_with_a_count_no_answer_can_have_is_that_records_failure_naming_it() -> None:
    # modelOutput's counts were read as sent: text, `true`, a fraction or a negative count reached the ledger (a
    # TypeError when priced, 1 token, a negative cost). The sync path refuses them (usage_counts.usage_count,
    # checked_counts); a batch record with one is now its own failure, naming the count, and the job's other records
    # are kept.
    body = {
        "anthropic_version": "bedrock-2023-05-31",
        "max_tokens": 50,
        "messages": [{"role": "user", "content": [{"type": "text", "text": "Hi"}]}],
    }
    said = [{"type": "text", "text": "Hi."}]
    outputs = {
        "input_tokens": {"content": said, "usage": {"input_tokens": "7", "output_tokens": 2}},
        "output_tokens": {"content": said, "usage": {"input_tokens": 7, "output_tokens": True}},
        "cacheReadInputTokens": {
            "output": {"message": {"content": [{"text": "Hi."}]}},
            "usage": {"inputTokens": 7, "outputTokens": 2, "cacheReadInputTokens": 1.5},
        },
        "generation_token_count": {"generation": "Hi.", "prompt_token_count": 7, "generation_token_count": "2"},
        "tokenCount": {"inputTextTokenCount": 7, "results": [{"outputText": "Hi.", "tokenCount": [2]}]},
    }
    for name, output in outputs.items():
        result = BedrockBatchBackend._record({"recordId": "r1", "modelInput": body, "modelOutput": output}, HAIKU)
        assert not result.ok and result.usage is None and result.raw["recordId"] == "r1", name
        assert result.error.startswith("unreadable usage:") and name in result.error, result.error
    negative = {"content": [{"type": "text", "text": "Hi."}], "usage": {"input_tokens": -7, "output_tokens": 2}}
    result = BedrockBatchBackend._record({"recordId": "r2", "modelInput": body, "modelOutput": negative}, HAIKU)
    assert not result.ok and "unreadable usage:" in result.error
    fine = {"content": [{"type": "text", "text": "Hi."}], "usage": {"input_tokens": 7, "output_tokens": 2}}
    assert BedrockBatchBackend._record(
        {"recordId": "r3", "modelInput": body, "modelOutput": fine}, HAIKU
    ).usage == Usage(7, 2)


def test_a_job_runs_and_is_recorded_in_the_region_of_the_users_aws_profile(s3_url, tmp_path, monkeypatch) -> None:
    # With the region in ~/.aws/config (`aws configure`) and no AWS_REGION, on-demand Bedrock calls go to it, but a
    # batch job was made in us-east-1, its rows recorded with no region, and a resume from another shell looked there.
    from tokenomy.batch.jobs import create_job, open_tables, submit_parts
    from tokenomy.batch.jobs import wait as wait_job
    from tokenomy.ledger.store import open_store

    config = tmp_path / "aws-config"
    config.write_text("[default]\nregion = eu-central-1\n")
    monkeypatch.setenv("AWS_CONFIG_FILE", str(config))
    monkeypatch.delenv("AWS_REGION")
    src, ledger = tmp_path / "in.jsonl", str(tmp_path / "ledger.duckdb")
    src.write_text("\n".join(plain(100)) + "\n")  # Bedrock's minimum
    tables = open_tables(ledger)
    with emulator(s3_url) as (_, options):
        job = create_job(tables, src, HAIKU, "bedrock", replace(options, region=None))
        assert job.options["region"] == "eu-central-1"
        submit_parts(tables, job)
        [part] = tables.parts(job.job_id)
        assert part["handle"].startswith("arn:aws:bedrock:eu-central-1:")
        assert wait_job(tables, job.job_id, 60, 0.05).status == "completed"
    assert {e.region for e in open_store(ledger).events()} == {"eu-central-1"}


def test_writes_to_a_one_hour_cache_are_priced_and_recorded_at_the_one_hour_price(tmp_path) -> None:
    # A Claude body (cache_control ttl 1h, sent as written) or a Converse one reports its 1-hour writes apart
    # (cache_creation.ephemeral_1h_input_tokens, cacheDetails): the batch reader dropped them, so 2,000 tokens written
    # for an hour were priced as 5-minute writes ($0.00418275 for $0.00665775), and the ledger row lost the split.
    from tokenomy.batch.job_tables import Job
    from tokenomy.batch.jobs import open_tables
    from tokenomy.batch.records import record_results
    from tokenomy.ledger.events import utcnow
    from tokenomy.ledger.store import open_store

    sonnet = "anthropic.claude-sonnet-4-5-20250929-v1:0"
    claude = {
        "content": [{"type": "text", "text": "Hi."}],
        "usage": {
            "input_tokens": 10,
            "output_tokens": 5,
            "cache_creation_input_tokens": 2000,
            "cache_read_input_tokens": 0,
            "cache_creation": {"ephemeral_5m_input_tokens": 0, "ephemeral_1h_input_tokens": 2000},
        },
    }
    converse = {
        "output": {"message": {"content": [{"text": "Hi."}]}},
        "usage": {
            "inputTokens": 10,
            "outputTokens": 5,
            "cacheWriteInputTokens": 2000,
            "cacheDetails": [{"ttl": "1h", "inputTokens": 2000}],
        },
    }
    written = Usage(10, 5, 0, 2000, cache_write_1h_tokens=2000)
    results = [
        BedrockBatchBackend._record({"recordId": f"r{i}", "modelInput": {}, "modelOutput": output}, sonnet)
        for i, output in enumerate((claude, converse))
    ]
    assert [r.usage for r in results] == [written, written]
    tables = open_tables(str(tmp_path / "ledger.duckdb"))
    now = utcnow()
    job = Job("bj-1h", sonnet, "bedrock", "in_progress", now, now, 2, options={"region": "us-east-1"})
    tables.insert_job(job)
    record_results(tables, job, [(0, r, "batch", "aws.bedrock", sonnet, "us-east-1") for r in results])
    right = compute_cost(written, sonnet, "us-east-1", "batch", one_call=True).total_usd
    assert right == Decimal("0.00665775")
    events = open_store(str(tmp_path / "ledger.duckdb")).events()
    assert [(e.cost_usd, e.usage) for e in events] == [(right, written)] * 2


def test_an_output_line_that_is_not_json_is_its_records_failure_the_rest_kept(s3_url) -> None:
    # `results` read each line with a bare json.loads: one garbled line of records.jsonl.out was a traceback out of
    # `batch wait` that lost every answer of the job. Such a line is now its record's failure, naming the line; a
    # line too garbled to show its recordId is the failure of the record no readable line answers.
    with emulator(s3_url) as (_, options):
        backend = BedrockBatchBackend()
        handle = backend.submit("garbled", HAIKU, records(plain(4)), options)
        assert wait(backend, handle)[-1] == "completed"
        out = backend.describe(handle)["outputDataConfig"]["s3OutputDataConfig"]["s3Uri"]
        key = out[len(f"s3://{BUCKET}/") :].rstrip("/") + "/" + handle.rsplit("/", 1)[1] + "/records.jsonl.out"
        s3 = boto3.client("s3", endpoint_url=s3_url, region_name="us-east-1")
        lines = s3.get_object(Bucket=BUCKET, Key=key)["Body"].read().decode().splitlines()
        index = {json.loads(x)["recordId"]: n for n, x in enumerate(lines)}
        lines[index["r1"]] = lines[index["r1"]][:40]
        lines[index["r2"]] = "\x00\x1f" + lines[index["r2"]][30:].replace('"', "'")
        s3.put_object(Bucket=BUCKET, Key=key, Body=("\n".join(lines) + "\n").encode())
        results = {r.id: r for r in backend.results(handle)}
    assert set(results) == {"r0", "r1", "r2", "r3"} and results["r0"].ok and results["r3"].ok
    where = f"line {index['r1'] + 1} of s3://{BUCKET}/{key}"
    assert results["r1"].error.startswith(f"unreadable output line ({where}): "), results["r1"].error
    assert not results["r2"].ok and "no readable line answers this record, and 1 name none" in results["r2"].error


def test_a_garbled_line_in_a_job_that_ran_short_leaves_the_unrun_records_missing_for_resume(s3_url) -> None:
    # A line too garbled to show its recordId was taken as the answer of every record no readable line answers
    # whenever the job was PartiallyCompleted. Such a job may have left records unrun (it timed out here): they
    # were each stored as failed, so resume never sent them. They now stay missing; the garbled line is yielded under
    # where it is (the job's unmatched line, which batch status and results show), no longer only logged.
    with emulator(s3_url, step_seconds=0.02, queue_seconds=0.02, seconds_per_hour=0.8 / 24, instant_delay_s=0.02) as (
        _,
        options,
    ):
        backend = BedrockBatchBackend()
        recs = records(plain(150))
        handle = backend.submit("short", HAIKU, recs, replace(options, timeout_hours=24))
        assert wait(backend, handle)[-1] == "partially_completed"
        out = backend.describe(handle)["outputDataConfig"]["s3OutputDataConfig"]["s3Uri"]
        key = out[len(f"s3://{BUCKET}/") :].rstrip("/") + "/" + handle.rsplit("/", 1)[1] + "/records.jsonl.out"
        s3 = boto3.client("s3", endpoint_url=s3_url, region_name="us-east-1")
        lines = s3.get_object(Bucket=BUCKET, Key=key)["Body"].read().decode().splitlines()
        assert 1 < len(lines) < 150
        garbled = json.loads(lines[0])["recordId"]
        lines[0] = "\x00\x1f" + lines[0][30:].replace('"', "'")
        s3.put_object(Bucket=BUCKET, Key=key, Body=("\n".join(lines) + "\n").encode())
        results = {r.id: r for r in backend.results(handle)}
    [stray] = [r for r in results.values() if not r.ok]
    assert garbled not in results and len(results) == len(lines) and stray.id not in {r.id for r in recs}
    assert stray.error.startswith(f"unreadable output line ({stray.id}): ")


def test_resume_holds_back_a_job_bedrock_failed_at_validation_not_one_it_failed_itself(
    s3_url, tmp_path, ledger_path
) -> None:
    # A job Bedrock failed at validation (here: fewer records than its minimum) was sent again unchanged by
    # `batch resume`, to fail again; only OpenAI's were held back. Now it is marked refused at validation and resume
    # names it; a job Bedrock failed itself ("Internal error") is still resent. (100 records pass Tokenomy's own check
    # of Bedrock's minimum; the emulator asks for 150.)
    from tokenomy.batch.jobs import create_job, open_tables, submit_parts
    from tokenomy.batch.jobs import wait as wait_job
    from tokenomy.batch.resubmit import resubmit_missing
    from tokenomy.errors import UsageError

    path = tmp_path / "in.jsonl"
    path.write_text("\n".join(plain(100)) + "\n")
    with emulator(s3_url, min_records=150) as (_, options):
        tables = open_tables(str(ledger_path))
        job = submit_parts(tables, create_job(tables, path, HAIKU, "bedrock", options))
        job = wait_job(tables, job.job_id, timeout_s=30, poll_s=0.05)
        assert job.status == "failed" and job.message.startswith("refused at validation: The job has 100 records"), (
            job.to_json()
        )
        with pytest.raises(UsageError, match=r"part 0 \(100 records\): refused at validation: The job has 100"):
            resubmit_missing(tables, job.job_id, min_records=1)
        backend = BedrockBatchBackend(options)
        [part] = tables.parts(job.job_id)
        failed = {**backend.describe(part["handle"]), "message": "Internal error: the service failed"}
        backend.describe = lambda handle: failed  # type: ignore[method-assign]
        assert backend.status(part["handle"]) == ("failed", "Internal error: the service failed")


def _submit_squeezed(s3_url, tmp_path, ledger_path, monkeypatch, capsys, smalls: int, bigs: int):
    """`batch submit --backend bedrock --json` of `squeezed` records, Bedrock's quotas scaled down to them (the
    emulator rejects a job under their minimum of 3, as Bedrock one under 100): (exit status, stdout, stderr, the
    emulator's jobs)."""
    from helpers.batch_records import squeezed
    from helpers.cli import run_cli
    from tokenomy.batch.split import sent_bytes
    from tokenomy.pricing.catalog import default_catalog

    lines, quotas = squeezed(smalls, bigs, sent_bytes(BedrockBatchBackend(), HAIKU))
    monkeypatch.setitem(default_catalog().batch_quotas, "aws.bedrock", quotas)
    path = tmp_path / "in.jsonl"
    path.write_text("\n".join(lines) + "\n")
    app = create_app(engine=InstantEngine())
    service = configure(app, s3_endpoint_url=s3_url, min_records=quotas["min_records_per_job"], **FAST)
    with ServerThread(app) as url:
        code, out, err = run_cli(
            monkeypatch,
            capsys,
            "batch",
            "submit",
            str(path),
            "--model",
            HAIKU,
            "--backend",
            "bedrock",
            "--json",
            "--endpoint-url",
            url,
            "--s3-endpoint-url",
            s3_url,
            "--role-arn",
            ROLE,
            "--s3-uri",
            f"s3://{BUCKET}/squeezed",
            "--ledger",
            str(ledger_path),
        )
    return code, out, err, service.jobs


def test_submit_moves_records_into_a_last_job_the_bytes_left_under_bedrocks_minimum(
    s3_url, tmp_path, ledger_path, monkeypatch, capsys
) -> None:
    # Split by the bytes sent, eight short records filled the first job and left the two long ones to a second job
    # under the minimum: Bedrock failed it, after the first was made and billed. The first job gives the second one.
    code, out, err, jobs = _submit_squeezed(s3_url, tmp_path, ledger_path, monkeypatch, capsys, 8, 2)
    job = json.loads(out.splitlines()[-1])
    assert (code, job["status"], job["done"], job["pending"]) == (0, "completed", 10, 0), (out, err)
    assert sorted(j.counts["totalRecordCount"] for j in jobs.values()) == [3, 7]


def test_submit_refuses_records_no_split_keeps_at_bedrocks_minimum_before_any_job_is_made(
    s3_url, tmp_path, ledger_path, monkeypatch, capsys
) -> None:
    # No split of these holds three records a job within the bytes a job: submit made a job of 6, one of 2 and one
    # of 1, and Bedrock failed the two small ones after the first had been made (and was billed). Nothing is sent now,
    # no job is kept, and the error names the job, its records, the minimum and how to run them on demand.
    from helpers.cli import one_error_line, run_cli
    from tokenomy.pricing.catalog import default_catalog

    code, out, err, jobs = _submit_squeezed(s3_url, tmp_path, ledger_path, monkeypatch, capsys, 6, 3)
    line = one_error_line(err)
    assert code == 2 and not out and jobs == {}, (code, out, err, jobs)
    path = tmp_path / "in.jsonl"
    assert line == (
        f"error: {path}: job 2 of 3 would hold 2 records (lines 7 to 8) and job 3 of 3 would hold 1 record (line 9), "
        "below aws.bedrock's minimum of 3 per batch job, and no split within its limits a job (50 records, "
        f"{default_catalog().quotas_for('aws.bedrock')['max_bytes_per_job']:,} bytes as sent) keeps every job at 3 or "
        f"more; move lines 7 to 9 of {path} to a file of their own, submit the rest, and run that one on demand: "
        f"`tokenomy batch submit FILE --model {HAIKU} --backend local` (nothing was sent)"
    )
    assert not ledger_path.exists()
    # `batch plan` says so before submit (it recommended batch: the file passed the minimum).
    code, out, _ = run_cli(
        monkeypatch,
        capsys,
        "batch",
        "plan",
        str(path),
        "--model",
        HAIKU,
        "--deadline",
        "00:00",
        "--start",
        "00:00",
        "--backend",
        "bedrock",
        "--json",
    )
    plan = json.loads(out)
    assert (code, plan["recommendation"]) == (0, "on_demand"), plan
    assert plan["reason"] == line.split(": ", 2)[2].removesuffix(" (nothing was sent)"), plan["reason"]


def test_resume_refuses_records_no_split_keeps_at_bedrocks_minimum_before_any_part_is_sent(
    s3_url, tmp_path, ledger_path, monkeypatch, capsys
) -> None:
    # A job expired before it started: resume split its nine records as submit did, 6 + 2 + 1 by the bytes sent, and
    # sent all three parts; Bedrock failed the two small ones after the first was made. It sends nothing now, and
    # `batch status`, which said resume "sends them", says resume's reason and how to run them on demand.
    from helpers.batch_records import squeezed
    from helpers.cli import run_cli
    from tokenomy.batch.jobs import create_job, open_tables, submit_parts
    from tokenomy.batch.jobs import wait as wait_job
    from tokenomy.batch.resubmit import resubmit_missing
    from tokenomy.batch.split import sent_bytes
    from tokenomy.pricing.catalog import default_catalog

    lines, quotas = squeezed(6, 3, sent_bytes(BedrockBatchBackend(), HAIKU))
    path = tmp_path / "in.jsonl"
    path.write_text("\n".join(lines) + "\n")
    roomy = {**quotas, "max_bytes_per_job": 10**6, "max_bytes_per_file": 10**6}
    monkeypatch.setitem(default_catalog().batch_quotas, "aws.bedrock", roomy)  # submitted as one part of 9
    app = create_app(engine=InstantEngine())
    # Scheduled for 5 s, but 24 emulated hours pass in 0.24 s: Bedrock expires it before it starts.
    service = configure(
        app, s3_endpoint_url=s3_url, min_records=3, step_seconds=0.05, queue_seconds=5, seconds_per_hour=0.01
    )
    with ServerThread(app) as url:
        options = SubmitOptions(
            region="us-east-1",
            role_arn=ROLE,
            s3_uri=f"s3://{BUCKET}/squeezed-resume",
            endpoint_url=url,
            timeout_hours=24,
            extra={"s3_endpoint_url": s3_url},
        )
        tables = open_tables(str(ledger_path))
        job = submit_parts(tables, create_job(tables, path, HAIKU, "bedrock", options))
        job = wait_job(tables, job.job_id, timeout_s=10, poll_s=0.05)
        assert (job.status, job.pending, len(service.jobs)) == ("expired", 9, 1), job.to_json()
        monkeypatch.setitem(default_catalog().batch_quotas, "aws.bedrock", quotas)
        code, out, err = run_cli(
            monkeypatch, capsys, "batch", "status", job.job_id, "--ledger", str(ledger_path), "--json"
        )
        with pytest.raises(UsageError) as refused:
            resubmit_missing(tables, job.job_id)
        assert len(service.jobs) == 1 and len(tables.parts(job.job_id)) == 1  # nothing sent, no part made
    why = (
        f"job 2 of 3 would hold 2 records and job 3 of 3 would hold 1 record, below aws.bedrock's minimum of 3 per "
        f"batch job, and no split within its limits a job (50 records, {quotas['max_bytes_per_job']:,} bytes as "
        "sent) keeps every job at 3 or more"
    )
    on_demand = (
        f"run them on demand instead: `tokenomy batch results {job.job_id} --missing-input -o rest.jsonl` "
        f"then `tokenomy batch submit rest.jsonl --model {HAIKU} --backend local`"
    )
    assert str(refused.value) == f"{job.job_id}: {why}, so nothing was sent; {on_demand}"
    shown = json.loads(out)
    assert (code, shown["status"]) == (0, "expired"), (out, err)
    assert shown["message"].endswith(
        f"9 records have no result; `tokenomy batch resume {job.job_id}` sends none of them: {why}; {on_demand}"
    ), shown["message"]


def test_a_llama_prompt_file_goes_to_a_llama_job_as_written_and_is_priced_like_llama(
    s3_url, tmp_path, ledger_path
) -> None:
    # A line in Llama's own InvokeModel shape (`prompt`, `max_gen_len`), the body Bedrock's batch takes for Llama,
    # was refused as `modelInput.messages: messages must be a non-empty list`: a team's existing file broke.
    import subprocess
    import sys

    from tokenomy.ledger.store import open_store

    llama = "meta.llama3-1-8b-instruct-v1:0"
    template = (
        "<|begin_of_text|><|start_header_id|>user<|end_header_id|>\n\nTopic {i}: say something "
        "short.<|eot_id|><|start_header_id|>assistant<|end_header_id|>\n\n"
    )
    bodies = {
        f"r{i}": {"prompt": template.format(i=i), "max_gen_len": 50, "temperature": 0.2, "top_p": 0.9}
        for i in range(100)
    }  # Bedrock's minimum of a job
    path = tmp_path / "llama.jsonl"
    path.write_text("".join(json.dumps({"recordId": rid, "modelInput": body}) + "\n" for rid, body in bodies.items()))
    env = {**os.environ, "AWS_ACCESS_KEY_ID": "testing", "AWS_SECRET_ACCESS_KEY": "testing", "AWS_REGION": "us-east-1"}
    with emulator(s3_url) as (url, _):
        out = subprocess.run(
            [
                sys.executable,
                "-m",
                "tokenomy.cli",
                "batch",
                "submit",
                str(path),
                "--model",
                llama,
                "--backend",
                "bedrock",
                "--json",
                "--endpoint-url",
                url,
                "--s3-endpoint-url",
                s3_url,
                "--role-arn",
                ROLE,
                "--s3-uri",
                f"s3://{BUCKET}/llama-prompt",
                "--ledger",
                str(ledger_path),
            ],
            capture_output=True,
            text=True,
            env=env,
            timeout=300,
        )
    assert out.returncode == 0, out.stderr
    job = [json.loads(x) for x in out.stdout.splitlines() if x.startswith("{")][-1]
    assert job["status"] == "completed" and job["records"] == job["done"] == 100 and job["bad_lines"] == 0, job
    s3 = boto3.client("s3", endpoint_url=s3_url, region_name="us-east-1")
    [key] = [
        o["Key"]
        for o in s3.list_objects_v2(Bucket=BUCKET, Prefix="llama-prompt/")["Contents"]
        if o["Key"].endswith("/input/records.jsonl")
    ]
    sent = [json.loads(x) for x in s3.get_object(Bucket=BUCKET, Key=key)["Body"].read().decode().splitlines()]
    # The job's input is each caller's body as written: its prompt, its extra top_p, in its own order.
    assert {line["recordId"]: line["modelInput"] for line in sent} == bodies
    assert all(list(line["modelInput"]) == list(bodies[line["recordId"]]) for line in sent)
    rows = open_store(str(ledger_path)).query(
        "SELECT mode, model, input_tokens, output_tokens, cost_usd FROM usage_events WHERE batch_job_id = ?",
        [job["job_id"]],
    )
    assert len(rows) == 100 and {r["mode"] for r in rows} == {"batch"} and {r["model"] for r in rows} == {llama}
    for r in rows:  # Llama's own counts (prompt_token_count, generation_token_count) at Llama's batch price
        usage = Usage(r["input_tokens"], r["output_tokens"])
        assert r["input_tokens"] > 0 and 0 < r["output_tokens"] <= 50
        assert Decimal(str(r["cost_usd"])) == compute_cost(usage, llama, mode="batch").total_usd


def test_titan_and_mistral_prompt_lines_run_in_an_invoke_model_job_as_written(s3_url) -> None:
    # A Titan Text line was refused as "needing messages", a Mistral one as a Llama prompt; each is its own model's
    # InvokeModel body, which the job takes as written (the model's messages lines still go in a Converse job).
    titan, mistral = "amazon.titan-text-express-v1", "mistral.mistral-7b-instruct-v0:2"
    bodies = {
        titan: {
            f"t{i}": {
                "inputText": f"User: topic {i}, briefly\nBot:",
                "textGenerationConfig": {"maxTokenCount": 12, "temperature": 0.2},
            }
            for i in range(3)
        },
        mistral: {
            f"m{i}": {"prompt": f"<s>[INST] topic {i}, briefly [/INST]", "max_tokens": 12, "top_k": 5} for i in range(3)
        },
    }
    with emulator(s3_url, min_records=3) as (_, options):
        backend = BedrockBatchBackend()
        for model, lines in bodies.items():
            recs = records([json.dumps({"recordId": rid, "modelInput": body}) for rid, body in lines.items()])
            handle = backend.submit(f"native-{model[:6]}", model, recs, options)
            assert backend.describe(handle)["modelInvocationType"] == "InvokeModel"
            assert wait(backend, handle)[-1] == "completed"
            _keys, out, manifest = s3_json(s3_url, handle, backend)
            assert {line["recordId"]: line["modelInput"] for line in out} == lines  # as written
            results = {r.id: r for r in backend.results(handle)}
            assert set(results) == set(lines)
            assert all(r.ok and r.text and 0 < r.usage.output_tokens <= 12 for r in results.values())
            assert manifest["inputTokenCount"] > 0 and 0 < manifest["outputTokenCount"] <= 36
            for line in out:
                answer = line["modelOutput"]
                if model == titan:  # Titan's own answer and counts
                    [result] = answer["results"]
                    assert result["outputText"] == results[line["recordId"]].text
                    assert results[line["recordId"]].usage.output_tokens == result["tokenCount"]
                    assert results[line["recordId"]].usage.input_tokens == answer["inputTextTokenCount"]
                else:  # Mistral's: no counts in the body, so the record's are estimated
                    assert list(answer) == ["outputs"] and answer["outputs"][0]["text"]


def test_a_claude_body_with_tools_is_answered_with_a_tool_call_and_a_key_not_read_is_named(s3_url) -> None:
    # The emulator's InvokeModel translation dropped a Claude body's tools and tool_choice (the answer was text), and
    # refused tool_use / tool_result blocks; any other key was dropped without a word.
    weather = {
        "name": "get_weather",
        "description": "The weather in a city",
        "input_schema": {"type": "object", "properties": {"city": {"type": "string"}}, "required": ["city"]},
    }
    base = {"anthropic_version": "bedrock-2023-05-31", "max_tokens": 64, "tools": [weather]}
    asked = [{"role": "user", "content": "Weather in Paris?"}]
    image = {"type": "image", "source": {"type": "base64", "media_type": "image/png", "data": "iVBORw0KGgo="}}
    called = [
        *asked,
        {
            "role": "assistant",
            "content": [{"type": "tool_use", "id": "toolu_1", "name": "get_weather", "input": {"city": "Paris"}}],
        },
        {"role": "user", "content": [{"type": "tool_result", "tool_use_id": "toolu_1", "content": "18 C"}]},
    ]
    lines = {
        "forced": {**base, "messages": asked, "tool_choice": {"type": "tool", "name": "get_weather"}},
        "answered": {**base, "messages": called},
        "odd": {**base, "messages": asked, "tool_choice": {"type": "auto"}, "service_level": "fast"},
        "pictured": {**base, "messages": [{"role": "user", "content": [image]}]},
    }
    with emulator(s3_url) as (_, options):
        backend = BedrockBatchBackend()
        recs = records([json.dumps({"recordId": rid, "modelInput": body}) for rid, body in lines.items()])
        handle = backend.submit("claude-tools", HAIKU, recs, options)
        assert wait(backend, handle)[-1] == "partially_completed"
        _keys, out, _manifest = s3_json(s3_url, handle, backend)
        answers = {line["recordId"]: line for line in out}
        forced = answers["forced"]["modelOutput"]
        assert forced["stop_reason"] == "tool_use"
        [call] = [block for block in forced["content"] if block["type"] == "tool_use"]
        assert call["name"] == "get_weather" and isinstance(call["input"].get("city"), str)
        assert answers["answered"]["modelOutput"]["type"] == "message"
        assert answers["odd"]["error"]["errorCode"] == 400
        assert "extraneous key [service_level]" in answers["odd"]["error"]["errorMessage"]
        # Content the emulator does not translate: the batch job's way to send it (a direct call's is Converse's).
        pictured = answers["pictured"]["error"]["errorMessage"]
        assert (
            pictured.startswith("messages.0.0: ") and "create the job with modelInvocationType='Converse'" in pictured
        )
        results = {r.id: r for r in backend.results(handle)}
        assert results["forced"].ok and results["answered"].ok and not results["odd"].ok and not results["pictured"].ok


def test_resume_refuses_settings_bedrock_cannot_run_with_before_anything_is_uploaded(
    s3_url, tmp_path, ledger_path
) -> None:
    # A job stored with a --timeout-hours Bedrock refuses (by a version that did not check it): its submit uploaded
    # the input to S3, then Bedrock refused the create. Resume never ran the backend's check, as submit does, so
    # `resume --resend-refused` uploaded the input again, to be refused the same way. It is refused before anything is
    # sent now.
    from tokenomy.batch.jobs import open_tables, prepare_job, store_job, submit_parts
    from tokenomy.batch.resubmit import resubmit_missing

    path = tmp_path / "in.jsonl"
    path.write_text("\n".join(plain(100)) + "\n")  # Bedrock's minimum a job
    s3 = boto3.client("s3", endpoint_url=s3_url, region_name="us-east-1")
    with emulator(s3_url) as (_, options):
        options = replace(options, s3_uri=f"s3://{BUCKET}/bad-timeout")
        tables = open_tables(str(ledger_path))
        job, parts, _ = prepare_job(path, HAIKU, "bedrock", options)
        job = store_job(tables, replace(job, options={**job.options, "timeout_hours": 200}), parts)
        with pytest.raises(ProviderError, match="ValidationException: Value '200' at 'timeoutDurationInHours'"):
            submit_parts(tables, job)
        for key in [o["Key"] for o in s3.list_objects_v2(Bucket=BUCKET, Prefix="bad-timeout/").get("Contents", [])]:
            s3.delete_object(Bucket=BUCKET, Key=key)  # the object that submit left behind
        with pytest.raises(ConfigError) as refused:
            resubmit_missing(tables, job.job_id, resend_refused=True)
        assert s3.list_objects_v2(Bucket=BUCKET, Prefix="bad-timeout/").get("KeyCount") == 0  # nothing uploaded
        [part] = tables.parts(job.job_id)
    assert str(refused.value).startswith(
        f"{job.job_id}: --timeout-hours 200: a Bedrock batch job's timeout is 24 to 168 hours; nothing was sent"
    ), str(refused.value)
    assert part["status"] == "failed" and part["handle"] is None
