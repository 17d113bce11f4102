"""Context cache storage in the ledger: caches created, used and deleted (or left to expire) through google-genai
against `tokenomy emulate gemini` on 127.0.0.1, each recorded once at tokens x hours x the catalog's hourly price."""

from __future__ import annotations

import json
import time
from datetime import timedelta
from decimal import ROUND_HALF_UP, Decimal
from pathlib import Path

import pytest
from typer.testing import CliRunner

from tokenomy.caching.context_caches import ContextCaches
from tokenomy.cli import app
from tokenomy.emulate.gemini_api import create_app
from tokenomy.emulate.instant_engine import InstantEngine
from tokenomy.emulate.server import ServerThread
from tokenomy.ledger.store import open_store
from tokenomy.money import money_str
from tokenomy.providers.gemini_client import gemini_client

MODEL = "gemini-2.5-flash"
TEXT = "Clause 7: lot seven is paid thirty days after delivery, in euros, by bank transfer. " * 80
GOOGLE_PRICES = Path(__file__).resolve().parents[2] / "src/tokenomy/pricing/data/google.yaml"


def hourly_price(model: str, price: str = "cache_storage_hourly") -> Decimal:
    """The storage price (or another of the model's prices) as the price file states it (read here, not through the
    catalog under test)."""
    import yaml

    doc = yaml.safe_load(GOOGLE_PRICES.read_text())
    return Decimal(doc["models"][model]["regions"]["global"][price])


def expected_cost(tokens: int, seconds: timedelta) -> Decimal:
    hours = Decimal(seconds // timedelta(microseconds=1)) / Decimal(3_600_000_000)
    return (tokens * hourly_price(MODEL) * hours / Decimal(1_000_000)).quantize(Decimal("1e-12"), ROUND_HALF_UP)


@pytest.fixture(autouse=True)
def no_google_env(monkeypatch):
    for key in ("GEMINI_API_KEY", "GOOGLE_API_KEY"):
        monkeypatch.delenv(key, raising=False)


@pytest.fixture(scope="module")
def url():
    with ServerThread(create_app(engine=InstantEngine())) as base:
        yield base


@pytest.fixture()
def client(url):
    return gemini_client(base_url=url)


def storage_rows(ledger: Path | str) -> list:
    return [e for e in open_store(ledger).events() if e.mode == "cache_storage"]


def creation_rows(ledger: Path | str) -> list:
    return [e for e in open_store(ledger).events() if e.tags.get("operation") == "cache_create"]


def test_creating_a_cache_records_its_input_tokens_at_the_input_price(client, any_ledger):
    """Google bills the tokens that create an explicit cache at the standard input price (Vertex AI's context cache
    overview: "billed for the input tokens used to create the cache at the standard input token price"); only the
    storage was recorded, when the cache ended. The creation is now a row of its own, when it is made."""
    caches = ContextCaches(client, open_store(any_ledger))
    tracked = caches.create(MODEL, contents=[TEXT], ttl_seconds=600)
    tokens = client.caches.get(name=tracked.name).usage_metadata.total_token_count
    [row] = creation_rows(any_ledger)
    assert (row.provider, row.model, row.region, row.mode, row.outcome) == ("gcp.gemini", MODEL, "global",
                                                                             "on_demand", "ok")  # fmt: skip
    assert (row.input_tokens, row.output_tokens, row.cache_read_tokens, row.cache_write_tokens) == (tokens, 0, 0, 0)
    assert row.request_id == tracked.name and row.tags["cache"] == tracked.name
    assert row.cost_usd == row.input_cost_usd == tokens * hourly_price(MODEL, "input") / Decimal(1_000_000) > 0
    assert storage_rows(any_ledger) == []  # the storage is still recorded when the cache ends
    caches.delete(tracked.name)
    assert len(creation_rows(any_ledger)) == 1 and len(storage_rows(any_ledger)) == 1


@pytest.fixture(params=["duckdb", "postgresql"])
def any_ledger(request, ledger_path):
    """The DuckDB file, and a PostgreSQL database (the context_caches table and the row on both engines)."""
    return ledger_path if request.param == "duckdb" else request.getfixturevalue("fresh_postgres_url")


def test_a_deleted_cache_is_recorded_once_at_its_storage_price(client, any_ledger):
    ledger_path = any_ledger
    caches = ContextCaches(client, open_store(ledger_path))
    tracked = caches.create(MODEL, contents=[TEXT], ttl_seconds=600, display_name="contract")
    seen = client.caches.get(name=tracked.name)  # the provider's own record of the cache
    tokens = seen.usage_metadata.total_token_count
    assert tokens >= 1024 and tracked.tokens == tokens and storage_rows(ledger_path) == []  # alive: nothing yet

    answer = client.models.generate_content(model=MODEL, contents="When is lot 7 paid?",
                                            config={"cached_content": tracked.name})  # fmt: skip
    assert answer.usage_metadata.cached_content_token_count == tokens
    time.sleep(0.2)
    event = caches.delete(tracked.name)
    with pytest.raises(Exception, match="not found"):
        client.caches.get(name=tracked.name)

    [row] = storage_rows(ledger_path)
    assert row.event_id == event.event_id and row.request_id == tracked.name
    assert (row.provider, row.model, row.region, row.outcome) == ("gcp.gemini", MODEL, "global", "ok")
    # Storage is not tokens processed: no token column counts it; the count rides in the tags.
    assert (row.input_tokens, row.output_tokens, row.cache_read_tokens, row.cache_write_tokens) == (0, 0, 0, 0)
    assert row.tags["cached_tokens"] == str(tokens)
    kept = row.ts - seen.create_time
    assert timedelta(seconds=0.2) <= kept < timedelta(seconds=60) and row.ts < seen.expire_time
    assert row.cost_usd == expected_cost(tokens, kept) and row.cost_usd > 0

    # Deleting or settling again records nothing more.
    assert caches.delete(tracked.name) is None and caches.settle() == []
    assert len(storage_rows(ledger_path)) == 1


def test_an_expired_cache_is_recorded_for_its_whole_ttl_when_settled(client, ledger_path):
    caches = ContextCaches(client, open_store(ledger_path))
    tracked = caches.create(MODEL, contents=[TEXT], ttl_seconds=2)  # alive for the two calls below, slow machine or not
    seen = client.caches.get(name=tracked.name)
    assert caches.settle() == []  # still alive
    time.sleep(2.2)
    [event] = caches.settle()
    [row] = storage_rows(ledger_path)
    assert row.event_id == event.event_id and row.ts == seen.expire_time
    assert row.cost_usd == expected_cost(seen.usage_metadata.total_token_count, seen.expire_time - seen.create_time)
    assert caches.settle() == [] and len(storage_rows(ledger_path)) == 1


def test_a_ttl_extended_elsewhere_is_not_closed_early(client, ledger_path):
    caches = ContextCaches(client, open_store(ledger_path))
    tracked = caches.create(MODEL, contents=[TEXT], ttl_seconds=5)  # not expired before the update, however slow
    extended = client.caches.update(name=tracked.name, config={"ttl": "600s"})  # not through Tokenomy
    assert caches.settle(now=tracked.expires_at + timedelta(seconds=1)) == []
    assert caches.get(tracked.name).expires_at == extended.expire_time and storage_rows(ledger_path) == []
    caches.delete(tracked.name)
    assert len(storage_rows(ledger_path)) == 1


def test_a_ttl_extended_elsewhere_is_recorded_to_the_deletion_when_deleted_past_the_old_expiry(client, ledger_path):
    """A cache extended elsewhere and deleted after the expiry Tokenomy kept, before any settle: its storage was
    recorded only up to that old expiry (5 s of a cache kept for longer). The provider is asked first, as settle
    asks it."""
    caches = ContextCaches(client, open_store(ledger_path))
    tracked = caches.create(MODEL, contents=[TEXT], ttl_seconds=2)
    client.caches.update(name=tracked.name, config={"ttl": "600s"})  # not through Tokenomy
    time.sleep(2.5)
    event = caches.delete(tracked.name)
    [row] = storage_rows(ledger_path)
    assert row.event_id == event.event_id and row.ts > tracked.expires_at + timedelta(seconds=0.4)
    assert row.cost_usd == expected_cost(tracked.tokens, row.ts - tracked.created_at)


def test_cli_create_delete_and_reports_show_cache_storage_as_its_own_spend(url, tmp_path):
    ledger = str(tmp_path / "ledger.duckdb")
    text = tmp_path / "contract.txt"
    text.write_text(TEXT)
    runner = CliRunner()
    made = runner.invoke(app, ["caches", "create", "--model", MODEL, "--contents-file", str(text), "--endpoint-url",
                               url, "--ttl", "300", "--ledger", ledger, "--json"])  # fmt: skip
    assert made.exit_code == 0, made.output
    name = json.loads(made.output)["name"]
    listed = json.loads(runner.invoke(app, ["caches", "list", "--ledger", ledger, "--json"]).output)
    assert [(c["name"], c["settled_at"]) for c in listed] == [(name, None)]
    gone = runner.invoke(app, ["caches", "delete", name, "--endpoint-url", url, "--ledger", ledger, "--json"])
    assert gone.exit_code == 0, gone.output
    [recorded] = json.loads(gone.output)
    [row] = storage_rows(Path(ledger))
    assert Decimal(recorded["cost_usd"]) == row.cost_usd > 0

    spend = json.loads(runner.invoke(app, ["report", "spend", "--by", "mode", "--ledger", ledger, "--json"]).output)
    rows = spend["rows"] if isinstance(spend, dict) else spend
    [storage] = [r for r in rows if r["mode"] == "cache_storage"]
    assert storage["cost_usd"] == money_str(row.cost_usd, "amount")  # report --json: every amount at 6 places

    from tokenomy.analytics.console_data import breakdown
    from tokenomy.analytics.dashboard_data import usage_types
    from tokenomy.analytics.dashboard_filters import Filters

    store = open_store(ledger)
    types = {r["key"]: Decimal(r["cost_usd"]) for r in breakdown(store, Filters())["groups"]["usage type"]}
    [made_row] = creation_rows(Path(ledger))  # the cache's creation: its tokens at the input price
    assert types["cache storage"] == row.cost_usd and types["input"] == made_row.cost_usd > 0
    [usage] = usage_types(store, Filters())
    assert Decimal(str(usage["cache_storage_cost_usd"])) == row.cost_usd
    assert usage["input_tokens"] == made_row.input_tokens > 0

    # The FOCUS export carries it as a charge that is not tokens.
    out = tmp_path / "focus.csv"
    assert runner.invoke(app, ["export", "focus", "-o", str(out), "--ledger", ledger]).exit_code == 0
    import csv

    [charge] = [r for r in csv.DictReader(out.open()) if r["x_Mode"] == "cache_storage"]
    assert Decimal(charge["BilledCost"]) == row.cost_usd and charge["ConsumedQuantity"] == "0"


def test_caches_create_on_a_model_that_is_not_gemini_says_so(tmp_path, monkeypatch, capsys):
    import sys

    from tokenomy.cli import main

    contents = tmp_path / "c.txt"
    contents.write_text("hello")
    for key in ("GEMINI_API_KEY", "GOOGLE_API_KEY"):
        monkeypatch.delenv(key, raising=False)
    monkeypatch.setattr(
        sys,
        "argv",
        [
            "tokenomy",
            "caches",
            "create",
            "--model",
            "gpt-4o-mini",
            "--contents-file",
            str(contents),
            "--ledger",
            str(tmp_path / "l.duckdb"),
        ],
    )
    with pytest.raises(SystemExit) as exited:
        main()
    err = capsys.readouterr().err
    # Was "no Gemini API key" (or, with a key, a request for cache_storage_hourly).
    assert exited.value.code == 2 and "--model gpt-4o-mini (provider openai)" in err and "Gemini/Vertex AI only" in err


def test_caches_create_on_a_model_without_a_storage_price_is_refused_before_any_ledger_or_key(
    tmp_path, monkeypatch, capsys
):
    import sys

    from tokenomy.cli import main

    contents, ledger = tmp_path / "c.txt", tmp_path / "new.duckdb"
    contents.write_text("hello")
    for key in ("GEMINI_API_KEY", "GOOGLE_API_KEY"):
        monkeypatch.delenv(key, raising=False)
    monkeypatch.setattr(
        sys,
        "argv",
        [
            "tokenomy",
            "caches",
            "create",
            "--model",
            "gemini-2.0-flash-lite",
            "--contents-file",
            str(contents),
            "--ledger",
            str(ledger),
        ],
    )
    with pytest.raises(SystemExit) as exited:
        main()
    err = capsys.readouterr().err
    # Was "no Gemini API key" after an empty ledger file was made (with a key: the storage price, same file left).
    assert exited.value.code == 2 and "no published cache storage price" in err and "TOKENOMY_PRICES" in err, err
    assert not ledger.exists()
