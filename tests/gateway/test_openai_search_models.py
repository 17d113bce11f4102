"""OpenAI's Chat Completions search models (gpt-4o-search-preview, gpt-4o-mini-search-preview, gpt-5-search-api)
search the web on every call and OpenAI bills each search beside the tokens; their answers report no count. A call
of one is recorded with its search at the model's web search price, and a budget reserves it before the call. The
openai SDK drives a real gateway in front of a recording OpenAI-format upstream."""

from __future__ import annotations

from decimal import Decimal

import openai
import pytest

from helpers.recording_openai import RecordingOpenAI
from tokenomy.config import parse_config
from tokenomy.emulate.server import ServerThread
from tokenomy.gateway.app import create_app
from tokenomy.gateway.keys import KeyStore
from tokenomy.ledger.store import open_store
from tokenomy.pricing.catalog import PriceCatalog
from tokenomy.pricing.cost import compute_cost
from tokenomy.pricing.server_tools import implied_searches

ASK = [{"role": "user", "content": "What is the weather in Paris today?"}]
CITED = [
    {
        "type": "url_citation",
        "url_citation": {"url": "https://example.com/paris", "title": "Paris", "start_index": 0, "end_index": 5},
    }
]


@pytest.fixture
def upstream():
    with RecordingOpenAI() as server:
        server.message_extra = {"annotations": CITED}
        yield server


def config(upstream_url: str, model: str, auth: bool = False):
    return parse_config(
        {
            "auth": auth,
            "models": {
                "search": {"provider": "openai", "model": model, "base_url": upstream_url, "api_key_env": "SEARCH_KEY"}
            },
        }
    )


@pytest.mark.parametrize(
    "model, per_search",
    [
        ("gpt-4o-search-preview", Decimal("0.025")),
        ("gpt-4o-mini-search-preview-2025-03-11", Decimal("0.025")),
        ("gpt-5-search-api", Decimal("0.01")),
    ],
)
def test_each_call_of_a_search_model_is_billed_its_search(upstream, tmp_path, monkeypatch, model, per_search):
    monkeypatch.setenv("SEARCH_KEY", "sk-test")
    ledger = str(tmp_path / "ledger.duckdb")
    with ServerThread(create_app(config(upstream.url, model), ledger), lifespan="on") as url:
        sdk = openai.OpenAI(base_url=url + "/v1", api_key="unused", max_retries=0)
        answer = sdk.chat.completions.create(
            model="search", messages=ASK, web_search_options={"search_context_size": "low"}
        )
        chunks = list(
            sdk.chat.completions.create(
                model="search", messages=ASK, stream=True, stream_options={"include_usage": True}
            )
        )
    assert answer.choices[0].message.annotations[0].url_citation.url == "https://example.com/paris"
    assert any(c.choices and c.choices[0].delta.content for c in chunks)
    assert upstream.bodies[0]["web_search_options"] == {"search_context_size": "low"}
    rows = open_store(ledger).events()
    assert len(rows) == 2
    for row in rows:
        tokens = compute_cost(row.usage, model).total_usd
        assert tokens > 0 and row.cost_usd == tokens + per_search
        assert row.tags["web_search_requests"] == "1"
    assert PriceCatalog.builtin().lookup(model).web_search == per_search * 1000


def test_a_budget_reserves_the_search_before_the_call(upstream, tmp_path, monkeypatch):
    monkeypatch.setenv("SEARCH_KEY", "sk-test")
    ledger = str(tmp_path / "ledger.duckdb")
    # Enough for a short call's tokens, not for its search: refused before anything is sent.
    secret, _ = KeyStore(open_store(ledger)).create(budget_usd=Decimal("0.02"), period="month")
    with ServerThread(
        create_app(config(upstream.url, "gpt-4o-search-preview", auth=True), ledger), lifespan="on"
    ) as url:
        sdk = openai.OpenAI(base_url=url + "/v1", api_key=secret, max_retries=0)
        with pytest.raises(openai.RateLimitError) as refused:
            sdk.chat.completions.create(model="search", messages=ASK, max_tokens=8)
    assert "Budget exhausted" in refused.value.body["message"] and upstream.bodies == []


def test_only_search_models_imply_a_search():
    for model in ("gpt-4o-search-preview", "openai/gpt-4o-mini-search-preview-2025-03-11", "gpt-5-search-api"):
        assert implied_searches(model) == {"web_search_requests": 1}
    for model in ("gpt-4o", "gpt-4o-mini", "research-search", "gpt-5", "o3-deep-research"):
        assert implied_searches(model) == {}
