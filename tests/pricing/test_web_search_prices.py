"""A model's web search price (USD per 1,000 searches) is part of its catalog entry, read from genai-prices'
`web_searches_kcount` (or a price file), shown by `tokenomy prices`, and what a call's searches are billed at."""

from __future__ import annotations

import json
import sys
from datetime import UTC, datetime
from decimal import Decimal

import pytest

from tokenomy.chat_response import Usage
from tokenomy.pricing.catalog import PriceCatalog
from tokenomy.pricing.cost import compute_cost
from tokenomy.pricing.server_tools import billed_counts, with_server_tools


def published(provider: str, model: str) -> Decimal:
    """genai-prices' own figure for a model's web searches, USD per 1,000."""
    from genai_prices import data_snapshot

    _, info = data_snapshot.get_snapshot().find_provider_model(model, None, provider, None)
    return info.get_prices(datetime.now(tz=UTC)).web_searches_kcount


@pytest.mark.parametrize(
    "provider, model",
    [
        ("anthropic", "claude-sonnet-4-5-20250929"),  # curated
        ("google", "gemini-2.5-flash"),  # curated: per grounded prompt
        ("google", "gemini-3-pro-preview"),  # from genai-prices: per search query
        ("openai", "gpt-5.2-codex"),  # from genai-prices
    ],
)
def test_an_entry_carries_its_models_web_search_price(provider, model) -> None:
    entry = PriceCatalog.builtin().lookup(model)
    assert entry.web_search == published(provider, model) and entry.web_search > 0
    assert entry.source and entry.as_of


def test_gemini_generations_are_billed_in_their_own_unit() -> None:
    """Google bills Gemini 2.x per grounded prompt ($35 per 1,000), Gemini 3 per search query ($14 per 1,000)."""
    catalog = PriceCatalog.builtin()
    base = compute_cost(Usage(10, 10), "gemini-2.5-flash")
    for model, unit, number in (
        ("gemini-2.5-flash", "grounded_prompts", 1),
        ("gemini-3-pro-preview", "web_search_queries", 3),
    ):
        entry = catalog.lookup(model)
        counts = billed_counts({"web_search_queries": 3}, entry.family)
        assert counts == {unit: number}
        cost = with_server_tools(base, "gcp.gemini", counts, entry)
        assert cost.tools_usd == published("google", model) * number / 1000


def test_a_price_file_sets_it_and_tokenomy_prices_shows_it(tmp_path, monkeypatch, capsys) -> None:
    from tokenomy.cli import main
    from tokenomy.pricing import catalog as catalog_module

    prices = tmp_path / "prices.yaml"
    prices.write_text(
        'provider: anthropic\nsource: https://example.com/contract\nas_of: "2026-11-01"\nmodels:\n'
        "  claude-sonnet-4-5-20250929:\n    regions:\n"
        '      global: {input: "2.00", output: "10.00", web_search: "8"}\n'
    )
    entry = PriceCatalog.builtin().with_overrides(prices).lookup("claude-sonnet-4-5-20250929")
    assert entry.web_search == Decimal(8) and entry.source == "https://example.com/contract"
    counts = {"web_search_requests": 2}
    assert with_server_tools(compute_cost(Usage(1, 1), entry.model), "anthropic", counts, entry).tools_usd == Decimal(
        "0.016"
    )
    # `--prices` layers the file over the process-wide catalog, as a command does for its process: put the
    # catalog back after this test, or later tests in this process would price with the file's $8 per 1,000
    monkeypatch.setattr(catalog_module, "_DEFAULT", catalog_module._DEFAULT)
    monkeypatch.setattr(
        sys, "argv", ["tokenomy", "prices", "--prices", str(prices), "claude-sonnet-4-5-20250929", "--json"]
    )
    try:
        main()
    except SystemExit as exited:
        assert not exited.code
    shown = json.loads(capsys.readouterr().out)
    assert Decimal(shown["web_search"]) == 8 and "web_search: USD per 1,000 web searches" in shown["unit"]


def test_a_model_without_a_web_search_price_falls_back_to_the_hand_table() -> None:
    """Claude 3 Haiku has no web search price in genai-prices: Anthropic's published $10 per 1,000 applies."""
    entry = PriceCatalog.builtin().lookup("claude-3-haiku-20240307")
    assert entry.web_search is None
    cost = with_server_tools(compute_cost(Usage(1, 1), entry.model), "anthropic", {"web_search_requests": 1}, entry)
    assert cost.tools_usd == Decimal("0.01")
