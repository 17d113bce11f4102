"""Anthropic's server tools (web search, web fetch) through `POST /v1/messages`: carried to Anthropic's API on a route
whose models are all there, their blocks back in place (whole and streamed), sent back on a follow-up turn, each
search billed and reserved; refused by name on a route that may reach another API. The anthropic SDK drives a real
gateway in front of the Messages API emulator (which answers a web search with a fixture) and a recording upstream."""

from __future__ import annotations

from decimal import Decimal

import anthropic
import pytest

from helpers import stand_in_aws_keys
from helpers.scripted_anthropic import ScriptedAnthropic
from tokenomy.config import parse_config
from tokenomy.emulate.anthropic_api import create_app as create_claude
from tokenomy.emulate.server import ServerThread
from tokenomy.gateway.app import create_app
from tokenomy.gateway.keys import KeyStore
from tokenomy.ledger.store import open_store
from tokenomy.pricing.catalog import PriceCatalog, set_default_catalog
from tokenomy.pricing.cost import compute_cost
from tokenomy.pricing.server_tools import DEFAULT_RESERVED_USES, REQUEST_PRICES

SONNET = "claude-sonnet-4-5-20250929"
ASK = [{"role": "user", "content": "What is the weather in Paris?"}]
SEARCH = {
    "type": "web_search_20250305",
    "name": "web_search",
    "max_uses": 3,
    "allowed_domains": ["example.com"],
    "user_location": {"type": "approximate", "city": "Paris", "country": "FR", "timezone": "Europe/Paris"},
}
FETCH = {"type": "web_fetch_20250910", "name": "web_fetch", "max_uses": 2}
CUSTOM = {"name": "lookup", "description": "Look a word up.", "input_schema": {"type": "object", "properties": {}}}
PER_SEARCH = REQUEST_PRICES["anthropic"]["web_search_requests"].usd
pytestmark = pytest.mark.filterwarnings("ignore:The model .* is deprecated:DeprecationWarning")


def models(claude: str, scripted: str) -> dict:
    return {
        "claude": {"provider": "anthropic", "model": SONNET, "base_url": claude},
        "scripted": {"provider": "anthropic", "model": SONNET, "base_url": scripted},
        # Never called (port 9 has no server): the routes that may leave Anthropic's API are refused before any call.
        "bedrock": {
            "provider": "bedrock",
            "region": "us-east-1",
            "endpoint_url": "http://127.0.0.1:9",
            "model": "anthropic.claude-3-haiku-20240307-v1:0",
        },
        "gpt": {
            "provider": "openai",
            "model": "gpt",
            "base_url": "http://127.0.0.1:9/v1",
            "api_key_env": "GPT_KEY",
            "price_as": "gpt-4o-mini",
        },
    }


@pytest.fixture(scope="module")
def upstreams():
    scripted = ScriptedAnthropic()
    with ServerThread(create_claude()) as claude, ServerThread(scripted.app) as recorded:
        yield claude, recorded, scripted


@pytest.fixture(scope="module")
def gateway(upstreams, tmp_path_factory):
    claude, recorded, _ = upstreams
    routes = {name: {"model": name} for name in ("claude", "scripted", "bedrock", "gpt")}
    routes["mixed"] = {"model": "claude", "fallback": ["bedrock"]}
    ledger = tmp_path_factory.mktemp("gw") / "ledger.duckdb"
    config = parse_config({"models": models(claude, recorded), "routes": routes})
    with pytest.MonkeyPatch.context() as env:
        env.setenv("GPT_KEY", "unused")
        stand_in_aws_keys(env)
        with ServerThread(create_app(config, str(ledger)), lifespan="on") as url:
            yield url, ledger


@pytest.fixture
def sdk(gateway):
    return anthropic.Anthropic(base_url=gateway[0], api_key="unused", max_retries=0)


@pytest.fixture
def scripted(upstreams):
    upstreams[2].requests.clear()
    return upstreams[2]


def test_a_web_search_answer_comes_back_block_by_block_whole_and_streamed(sdk) -> None:
    whole = sdk.messages.create(model="claude", max_tokens=50, messages=ASK, tools=[SEARCH])
    kinds = ["ServerToolUseBlock", "WebSearchToolResultBlock", "TextBlock"]
    assert [type(block).__name__ for block in whole.content] == kinds
    use, result, text = whole.content
    assert use.name == "web_search" and use.input == {"query": ASK[0]["content"]}
    assert result.tool_use_id == use.id and result.content[0].encrypted_content
    assert [c.type for c in text.citations] == ["web_search_result_location"]
    assert whole.usage.server_tool_use.web_search_requests == 1

    events = []
    with sdk.messages.stream(model="claude", max_tokens=50, messages=ASK, tools=[SEARCH]) as stream:
        for event in stream:
            if event.type in ("content_block_start", "content_block_delta", "content_block_stop"):
                delta = getattr(event, "delta", None)
                events.append((event.type, event.index, delta.type if delta is not None else None))
        streamed = stream.get_final_message()
    assert events == [
        ("content_block_start", 0, None),
        ("content_block_delta", 0, "input_json_delta"),
        ("content_block_stop", 0, None),
        ("content_block_start", 1, None),
        ("content_block_stop", 1, None),
        ("content_block_start", 2, None),
        ("content_block_delta", 2, "citations_delta"),
        ("content_block_delta", 2, "text_delta"),
        ("content_block_stop", 2, None),
    ]
    assert [block.model_dump(exclude_none=True) for block in streamed.content] == [
        block.model_dump(exclude_none=True) for block in whole.content
    ]
    assert streamed.usage.server_tool_use.web_search_requests == 1


def test_server_tool_definitions_reach_anthropic_as_sent(sdk, scripted) -> None:
    cached = {**CUSTOM, "cache_control": {"type": "ephemeral"}}
    sdk.messages.create(
        model="scripted",
        max_tokens=5,
        messages=ASK,
        tools=[SEARCH, FETCH, cached],
        extra_headers={"anthropic-beta": "web-fetch-2025-09-10"},
    )
    headers, body = scripted.requests[-1]
    assert body["tools"] == [SEARCH, FETCH, cached]
    assert headers["anthropic-beta"] == "web-fetch-2025-09-10"


def test_a_paused_turn_stays_paused_for_the_caller_to_go_on(sdk, scripted) -> None:
    """Claude pauses a long turn of server tools (stop_reason pause_turn) for the caller to send it back: answered
    as end_turn, an agent took the turn as finished."""
    scripted.reply = {"text": "Searching", "stop_reason": "pause_turn", "stop_sequence": None}
    try:
        whole = sdk.messages.create(model="scripted", max_tokens=5, messages=ASK, tools=[SEARCH])
        with sdk.messages.stream(model="scripted", max_tokens=5, messages=ASK, tools=[SEARCH]) as stream:
            streamed = stream.get_final_message()
    finally:
        scripted.reply = {"text": "Hi", "stop_reason": "end_turn", "stop_sequence": None}
    assert whole.stop_reason == streamed.stop_reason == "pause_turn"


def test_a_follow_up_turn_sends_the_server_tool_blocks_back_intact(sdk, scripted) -> None:
    first = sdk.messages.create(model="claude", max_tokens=50, messages=ASK, tools=[SEARCH])
    answered = [block.model_dump(exclude_none=True) for block in first.content]
    turns = [*ASK, {"role": "assistant", "content": answered}, {"role": "user", "content": "And tomorrow?"}]
    sdk.messages.create(model="scripted", max_tokens=5, messages=turns, tools=[SEARCH])
    assert scripted.requests[-1][1]["messages"][1] == {"role": "assistant", "content": answered}
    again = sdk.messages.create(model="claude", max_tokens=5, messages=turns)  # the emulator takes them back too
    assert again.content


def test_each_search_is_in_the_ledger_at_its_price_beside_the_tokens(upstreams, tmp_path) -> None:
    ledger = str(tmp_path / "ledger.duckdb")
    config = parse_config({"models": models(upstreams[0], upstreams[1])})
    with ServerThread(create_app(config, ledger), lifespan="on") as url:
        sdk = anthropic.Anthropic(base_url=url, api_key="unused", max_retries=0)
        sdk.messages.create(model="claude", max_tokens=50, messages=ASK, tools=[SEARCH])
        with sdk.messages.stream(model="claude", max_tokens=50, messages=ASK, tools=[SEARCH]) as stream:
            stream.get_final_message()
    rows = open_store(ledger).events()
    assert len(rows) == 2
    for row in rows:
        assert row.tags["web_search_requests"] == "1"
        assert row.cost_usd == compute_cost(row.usage, SONNET).total_usd + PER_SEARCH


def test_a_budget_reserves_the_searches_a_request_may_run(upstreams, tmp_path) -> None:
    """Before any call, each search a request may run (its max_uses, or DEFAULT_RESERVED_USES) is reserved at its
    price: concurrent requests could otherwise start more searches than the budget pays for. (The results, billed as
    input, make the prompt Sonnet 4.5's whole window: test_fetched_content_budgets.)"""
    ledger = str(tmp_path / "ledger.duckdb")
    window = 200_000 * Decimal("3.75") / 1_000_000 + 8 * Decimal(15) / 1_000_000  # the prompt, and 8 output tokens
    budget = window + PER_SEARCH * 2  # room for two searches
    secret, key = KeyStore(open_store(ledger)).create(budget_usd=budget, period="month")
    config = parse_config({"auth": True, "models": models(upstreams[0], upstreams[1])})
    with ServerThread(create_app(config, ledger), lifespan="on") as url:
        sdk = anthropic.Anthropic(base_url=url, api_key=secret, max_retries=0)
        for tool in ({**SEARCH, "max_uses": 5}, {k: v for k, v in SEARCH.items() if k != "max_uses"}):
            with pytest.raises(anthropic.RateLimitError) as refused:
                sdk.messages.create(model="claude", max_tokens=8, messages=ASK, tools=[tool])
            assert "Budget exhausted" in refused.value.body["error"]["message"]
        answer = sdk.messages.create(model="claude", max_tokens=8, messages=ASK, tools=[{**SEARCH, "max_uses": 1}])
    assert answer.usage.server_tool_use.web_search_requests == 1
    [row] = open_store(ledger).events()
    assert row.key_id == key.key_id and row.cost_usd == compute_cost(row.usage, SONNET).total_usd + PER_SEARCH
    assert budget < window + DEFAULT_RESERVED_USES * PER_SEARCH


def test_a_search_is_priced_from_the_models_catalog_entry(upstreams, tmp_path) -> None:
    """A search costs the model's web search price (its catalog entry's `web_search`, per 1,000: genai-prices' $10
    for Claude, which Anthropic publishes), so a price file can change it; the hand table is only the fallback."""
    assert PriceCatalog.builtin().lookup(SONNET).web_search / 1000 == PER_SEARCH == Decimal("0.01")
    prices = tmp_path / "prices.yaml"
    prices.write_text(
        f'provider: anthropic\nsource: https://example.com/contract\nas_of: "2026-11-01"\nmodels:\n'
        f'  {SONNET}:\n    regions:\n      global: {{input: "3", output: "15", web_search: "8"}}\n'
    )
    catalog = PriceCatalog.builtin().with_overrides(prices)
    ledger = str(tmp_path / "ledger.duckdb")
    set_default_catalog(catalog)
    try:
        with ServerThread(create_app(parse_config({"models": models(*upstreams[:2])}), ledger), lifespan="on") as url:
            sdk = anthropic.Anthropic(base_url=url, api_key="unused", max_retries=0)
            sdk.messages.create(model="claude", max_tokens=50, messages=ASK, tools=[SEARCH])
    finally:
        set_default_catalog(None)
    [row] = open_store(ledger).events()
    assert row.cost_usd == compute_cost(row.usage, SONNET, catalog=catalog).total_usd + Decimal("0.008")


FOLLOW_UP = [
    *ASK,
    {
        "role": "assistant",
        "content": [
            {"type": "server_tool_use", "id": "srvtoolu_1", "name": "web_search", "input": {"query": "Paris weather"}},
            {
                "type": "web_search_tool_result",
                "tool_use_id": "srvtoolu_1",
                "content": [
                    {
                        "type": "web_search_result",
                        "url": "https://example.com",
                        "title": "Paris",
                        "encrypted_content": "e",
                    }
                ],
            },
            {
                "type": "text",
                "text": "Sunny.",
                "citations": [
                    {
                        "type": "web_search_result_location",
                        "url": "https://example.com",
                        "title": "Paris",
                        "cited_text": "Sun",
                        "encrypted_index": "i",
                    }
                ],
            },
        ],
    },
    {"role": "user", "content": "Thanks"},
]


@pytest.mark.parametrize("route, reaches", [("bedrock", "aws.bedrock"), ("gpt", "openai"), ("mixed", "aws.bedrock")])
@pytest.mark.parametrize(
    "ask, named",
    [
        ({"messages": ASK, "tools": [CUSTOM, SEARCH]}, "tools.1.type"),
        ({"messages": FOLLOW_UP}, "messages.1.content.0"),
        (
            {"messages": [FOLLOW_UP[0], {"role": "assistant", "content": FOLLOW_UP[1]["content"][2:]}, FOLLOW_UP[2]]},
            "messages.1.content.0.citations",
        ),
    ],
)
def test_a_route_that_may_leave_anthropics_api_refuses_them_by_name(sdk, route, reaches, ask, named) -> None:
    with pytest.raises(anthropic.BadRequestError) as refused:
        sdk.messages.create(model=route, max_tokens=5, **ask)
    message = refused.value.body["error"]["message"]
    assert message.startswith(named + ":") and reaches in message, message
