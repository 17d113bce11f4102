"""Gemini's Google Search grounding is billed: the google-genai SDK → `tokenomy serve` → the Gemini emulator (which
answers a googleSearch tool with a fixed groundingMetadata of two queries), on the Gemini API and on Vertex AI, whole
and streamed. Google bills Gemini 3 and later per search query and Gemini 2.x per grounded prompt, at the model's
web search price in genai-prices (`web_searches_kcount`, USD per 1,000); a key's budget reserves the searches a
request may run."""

from __future__ import annotations

from datetime import UTC, datetime
from decimal import Decimal

import pytest
from google import genai
from google.genai import errors, types
from google.oauth2.credentials import Credentials

from tokenomy.config import parse_config
from tokenomy.emulate.gemini_api import create_app as create_gemini
from tokenomy.emulate.instant_engine import InstantEngine
from tokenomy.emulate.server import ServerThread
from tokenomy.gateway.app import create_app
from tokenomy.gateway.keys import KeyStore
from tokenomy.ledger.store import open_store
from tokenomy.pricing.cost import compute_cost
from tokenomy.pricing.server_tools import DEFAULT_RESERVED_USES

GEMINI2, GEMINI3 = "gemini-2.5-flash", "gemini-3-pro-preview"
SEARCH = types.GenerateContentConfig(tools=[types.Tool(google_search=types.GoogleSearch())], max_output_tokens=20)
QUERIES = 2  # the emulator's groundingMetadata: two webSearchQueries


@pytest.fixture(autouse=True)
def no_google_env(monkeypatch):
    for key in (
        "GEMINI_API_KEY",
        "GOOGLE_API_KEY",
        "GOOGLE_CLOUD_PROJECT",
        "GOOGLE_CLOUD_LOCATION",
        "GOOGLE_GENAI_USE_VERTEXAI",
    ):
        monkeypatch.delenv(key, raising=False)


def per_search(model: str) -> Decimal:
    """genai-prices' price of one of the model's searches (USD; it publishes them per 1,000)."""
    from genai_prices import data_snapshot

    _, info = data_snapshot.get_snapshot().find_provider_model(model, None, "google", None)
    return info.get_prices(datetime.now(tz=UTC)).web_searches_kcount / 1000


def models(gemini: str) -> dict:
    return {
        "g2": {"provider": "gemini", "model": GEMINI2, "base_url": gemini},
        "g3": {"provider": "gemini", "model": GEMINI3, "base_url": gemini},
        "v3": {"provider": "vertex", "model": GEMINI3, "base_url": gemini, "project": "acme", "region": "us-central1"},
    }


@pytest.fixture(scope="module")
def emulator():
    with ServerThread(create_gemini(engine=InstantEngine())) as url:
        yield url


def test_each_search_is_in_the_ledger_at_its_generations_unit_whole_and_streamed(emulator, tmp_path) -> None:
    ledger = str(tmp_path / "ledger.duckdb")
    with ServerThread(create_app(parse_config({"models": models(emulator)}), ledger), lifespan="on") as url:
        studio = genai.Client(api_key="unused", http_options={"base_url": url})
        vertex = genai.Client(
            vertexai=True,
            project="acme",
            location="us-central1",
            credentials=Credentials(token="t"),
            http_options={"base_url": url},
        )
        for client, route in ((studio, "g2"), (studio, "g3"), (vertex, "v3")):
            whole = client.models.generate_content(model=route, contents="Weather in Paris?", config=SEARCH)
            assert len(whole.candidates[0].grounding_metadata.web_search_queries) == QUERIES
            chunks = list(
                client.models.generate_content_stream(model=route, contents="Weather in Paris?", config=SEARCH)
            )
            assert len(chunks[-1].candidates[0].grounding_metadata.web_search_queries) == QUERIES
            plain = client.models.generate_content(model=route, contents="Weather in Paris?")  # no search: no charge
            assert plain.candidates[0].grounding_metadata is None
    rows = open_store(ledger).events()
    assert [row.route for row in rows] == ["g2"] * 3 + ["g3"] * 3 + ["v3"] * 3
    for row in rows:
        tokens = compute_cost(row.usage, row.model).total_usd
        if rows.index(row) % 3 == 2:  # the call without the tool
            assert row.cost_usd == tokens and not {"grounded_prompts", "web_search_queries"} & set(row.tags)
        elif row.model == GEMINI2:  # Gemini 2.x: one grounded prompt, however many queries it ran
            assert row.tags["grounded_prompts"] == "1" and "web_search_queries" not in row.tags
            assert row.cost_usd == tokens + per_search(GEMINI2)
        else:  # Gemini 3: each query
            assert row.tags["web_search_queries"] == str(QUERIES) and row.provider in ("gcp.gemini", "gcp.vertex_ai")
            assert row.cost_usd == tokens + QUERIES * per_search(GEMINI3)
    assert per_search(GEMINI2) == Decimal("0.035") and per_search(GEMINI3) == Decimal("0.014")  # as published


def test_a_budget_reserves_the_searches_a_gemini_request_may_run(emulator, tmp_path) -> None:
    """Before the call, a request with Google Search reserves DEFAULT_RESERVED_USES queries on Gemini 3 and one
    grounded prompt on Gemini 2.x, at the model's price: a budget with room for the tokens and a few searches
    refuses the Gemini 3 request and serves the Gemini 2.5 one."""
    ledger = str(tmp_path / "ledger.duckdb")
    budget = per_search(GEMINI3) * (DEFAULT_RESERVED_USES - 2)  # < the reservation, > a grounded prompt and tokens
    assert per_search(GEMINI2) * 2 < budget
    secret, key = KeyStore(open_store(ledger)).create(budget_usd=budget, period="month")
    config = parse_config({"auth": True, "models": models(emulator)})
    with ServerThread(create_app(config, ledger), lifespan="on") as url:
        client = genai.Client(api_key=secret, http_options={"base_url": url})
        with pytest.raises(errors.ClientError, match="Budget exhausted") as refused:
            client.models.generate_content(model="g3", contents="Weather in Paris?", config=SEARCH)
        assert refused.value.code == 429
        client.models.generate_content(model="g3", contents="Weather in Paris?")  # without the tool: served
        answer = client.models.generate_content(model="g2", contents="Weather in Paris?", config=SEARCH)
    assert answer.candidates[0].grounding_metadata.web_search_queries
    rows = open_store(ledger).events()
    assert [row.route for row in rows] == ["g3", "g2"] and all(row.key_id == key.key_id for row in rows)
    assert rows[1].cost_usd == compute_cost(rows[1].usage, GEMINI2).total_usd + per_search(GEMINI2)
