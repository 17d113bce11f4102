"""Azure OpenAI Global Batch: `tokenomy batch submit --backend azure` and the SDK's AzureOpenAI client against
the Azure emulator's Files + Batches API (deployment names in the lines, /chat/completions, api-version)."""

from __future__ import annotations

import json
from decimal import Decimal

import httpx
import openai
import pytest
from typer.testing import CliRunner

from helpers.batch_records import plain, records, wait
from tokenomy.batch.azure_backend import AzureOpenAIBatchBackend, job_options
from tokenomy.batch.backends import SubmitOptions
from tokenomy.cli import app
from tokenomy.emulate.azure_openai import create_app
from tokenomy.emulate.instant_engine import InstantEngine
from tokenomy.emulate.server import ServerThread
from tokenomy.ledger.store import open_store
from tokenomy.pricing.catalog import default_catalog

VERSION = "2024-10-21"


@pytest.fixture(autouse=True)
def azure_env(monkeypatch):
    for key in ("AZURE_OPENAI_AD_TOKEN", "AZURE_OPENAI_ENDPOINT", "OPENAI_API_VERSION"):
        monkeypatch.delenv(key, raising=False)
    monkeypatch.setenv("AZURE_OPENAI_API_KEY", "k")


@pytest.fixture
def azure_url():
    app_ = create_app({"batch-prod": "gpt-4o-mini"}, InstantEngine(), validating_seconds=0.05)
    with ServerThread(app_) as url:
        yield url


def azure_config(tmp_path, url: str):
    config = tmp_path / "tokenomy.yaml"
    config.write_text(
        "models:\n  nightly:\n    provider: azure\n    model: batch-prod\n"
        f"    base_url: {url}\n    api_version: '{VERSION}'\n    price_as: gpt-4o-mini\n"
    )
    return config


def test_batch_submit_on_azure_is_priced_at_batch_rates(azure_url, tmp_path):
    config = azure_config(tmp_path, azure_url)
    source = tmp_path / "in.jsonl"
    source.write_text("\n".join(plain(5)) + "\n")
    ledger = str(tmp_path / "ledger.duckdb")
    args = ["batch", "submit", str(source), "--model", "nightly", "--backend", "azure", "--config", str(config)]
    result = CliRunner().invoke(app, [*args, "--ledger", ledger, "--json"])
    assert result.exit_code == 0, result.output
    job = json.loads(result.output.strip().splitlines()[-1])
    assert job["status"] == "completed" and job["done"] == 5
    events = open_store(ledger).events()
    assert len(events) == 5 and {(e.provider, e.mode, e.model) for e in events} == {("azure", "batch", "gpt-4o-mini")}
    entry = default_catalog().lookup("gpt-4o-mini")
    assert entry.batch_input < entry.input  # batch rates differ from on-demand, so the check below tells them apart
    for e in events:
        by_hand = (e.input_tokens * entry.batch_input + e.output_tokens * entry.batch_output) / Decimal(1_000_000)
        assert e.cost_usd == by_hand and e.input_tokens > 0 and e.output_tokens > 0
    assert Decimal(str(job["cost_usd"])) == sum((e.cost_usd for e in events), Decimal(0))


def test_backend_sends_deployment_names_and_the_azure_endpoint(azure_url, tmp_path):
    options = job_options("nightly", SubmitOptions(), str(azure_config(tmp_path, azure_url)))
    assert (options.endpoint_url, options.extra["deployment"], options.extra["api_version"]) == (
        azure_url,
        "batch-prod",
        VERSION,
    )
    backend = AzureOpenAIBatchBackend(options)
    handle = backend.submit("job-1", "nightly", records(plain(3)), options)
    assert wait(backend, handle)[-1] == "completed"
    results = sorted(backend.results(handle), key=lambda r: r.id)
    assert [r.id for r in results] == ["r0", "r1", "r2"] and all(r.ok and r.model == "gpt-4o-mini" for r in results)
    client = openai.AzureOpenAI(azure_endpoint=azure_url, api_version=VERSION, api_key="k")
    batch = client.batches.retrieve(handle)
    assert batch.endpoint == "/chat/completions"
    lines = [json.loads(x) for x in client.files.content(batch.input_file_id).text.splitlines()]
    assert {(x["url"], x["body"]["model"]) for x in lines} == {("/chat/completions", "batch-prod")}


def test_unknown_deployment_lines_fail_and_api_version_is_required(azure_url):
    options = SubmitOptions(endpoint_url=azure_url, extra={"deployment": "no-such", "api_version": VERSION})
    backend = AzureOpenAIBatchBackend(options)
    handle = backend.submit("job-2", "no-such", records(plain(2)), options)
    state, message = wait(backend, handle)[-1], backend.status(handle)[1]
    assert state == "partially_completed" and message and "2 requests failed" in message
    errors = list(backend.results(handle))
    assert len(errors) == 2 and all(not r.ok and "does not exist" in (r.error or "") for r in errors)
    assert all(r.raw and r.raw["response"]["body"]["error"]["code"] == "DeploymentNotFound" for r in errors)
    bare = httpx.get(f"{azure_url}/openai/batches", headers={"api-key": "k"})
    assert bare.status_code == 404 and bare.json() == {"error": {"code": "404", "message": "Resource not found"}}


def test_a_batch_is_found_by_the_key_it_was_created_under(azure_url, tmp_path):
    # What `resume` asks after a create whose answer was lost: Azure's batches carry the part's key in metadata.
    options = job_options("nightly", SubmitOptions(), str(azure_config(tmp_path, azure_url)))
    backend = AzureOpenAIBatchBackend(options)
    handle = backend.submit("job-3", "nightly", records(plain(2)), options, "job-3-p0")
    assert backend.find("job-3-p0") == handle and backend.find("job-3-p1") is None
