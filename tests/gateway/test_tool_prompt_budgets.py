"""Claude's tool use system prompt under a key's budget. Anthropic (and Claude on Bedrock) adds a system prompt to a
call that sends tools, billed as input: 496 tokens on Sonnet 4.5 for tool_choice auto or none, 588 for any or tool
(the catalog's tool_prompt_tokens_auto / _any, from Anthropic's tool use pricing table). A call's worst case reserved
only what the request shows, so N concurrent tool calls under a tight budget overspent it by N times that prompt. It
is now reserved on each model of the route. The openai SDK calls a real gateway in front of the Anthropic emulator."""

from __future__ import annotations

import re
from decimal import Decimal
from pathlib import Path

import openai
import pytest

from helpers.gateway_worst_case import worst_case
from tokenomy.caching.placement import input_bound
from tokenomy.config import parse_config
from tokenomy.emulate.anthropic_api import create_app as create_anthropic
from tokenomy.emulate.instant_engine import InstantEngine
from tokenomy.emulate.server import ServerThread
from tokenomy.gateway.app import create_app
from tokenomy.gateway.keys import KeyStore
from tokenomy.gateway.limits import to_nano
from tokenomy.ledger.store import open_store
from tokenomy.messages import ChatRequest, Message
from tokenomy.request_options import ToolChoice, ToolSpec

SONNET = "claude-sonnet-4-5-20250929"  # $3.75 per 1M for a cache write (the dearest input rate), $15 output
HAIKU3 = "anthropic.claude-3-haiku-20240307-v1:0"  # Bedrock us-east-1: $0.25 / $1.25 per 1M
M = Decimal(1_000_000)
ASK = "What is the weather in Paris?"
SCHEMA = {"type": "object", "properties": {"city": {"type": "string"}}, "required": ["city"]}
WEATHER = {
    "type": "function",
    "function": {"name": "weather", "description": "The weather in a city.", "parameters": SCHEMA},
}
CAP = 50


def tool_request(choice: ToolChoice | None, tools: bool = True) -> ChatRequest:
    """The request the openai SDK call below makes, as the gateway reads it."""
    specs = [ToolSpec("weather", "The weather in a city.", SCHEMA)] if tools else []
    return ChatRequest([Message("user", ASK)], model="m", max_tokens=CAP, tools=specs, tool_choice=choice)


def usd_without_tool_prompt(request: ChatRequest, input_price: str, output_price: str) -> Decimal:
    """What the worst case was before: the request's prompt bound and its output cap, nothing for the tool prompt."""
    return input_bound(request)[0] * Decimal(input_price) / M + CAP * Decimal(output_price) / M


@pytest.mark.parametrize(
    "tool_choice, choice, tool_prompt",
    [
        ("auto", ToolChoice("auto"), 496),
        ("required", ToolChoice("any"), 588),  # OpenAI's required is Claude's any
    ],
)
def test_a_tool_call_is_reserved_with_claudes_tool_prompt(tmp_path: Path, tool_choice, choice, tool_prompt) -> None:
    """A budget above the call's old worst case and below the new one: the gateway refused nothing and sent the call,
    which Anthropic bills ~500 tokens more than was reserved. It now refuses it up front, naming the reservation that
    includes the tool prompt; a budget that holds the tool prompt too admits it."""
    before = usd_without_tool_prompt(tool_request(choice), "3.75", "15")
    prompt_usd = tool_prompt * Decimal("3.75") / M  # $0.00186 (auto) or $0.002205 (any)
    models = {"m": {"provider": "anthropic", "model": SONNET, "base_url": "http://127.0.0.1:9"}}
    worst = worst_case({"models": models}, "m", tool_request(choice), tmp_path / "w.duckdb")
    assert worst.nano() == to_nano(before + prompt_usd)

    with ServerThread(create_anthropic(engine=InstantEngine())) as claude:
        models = {"m": {"provider": "anthropic", "model": SONNET, "base_url": claude}}
        for budget, admitted in ((before + prompt_usd / 2, False), (before + prompt_usd * 2, True)):
            ledger = tmp_path / f"{budget}.duckdb"
            secret, _ = KeyStore(open_store(ledger)).create(budget_usd=budget, period="month")
            app = create_app(parse_config({"auth": True, "models": models}), str(ledger))
            with ServerThread(app, lifespan="on") as gateway:
                sdk = openai.OpenAI(base_url=gateway + "/v1", api_key=secret, max_retries=0)
                call = dict(
                    model="m",
                    max_tokens=CAP,
                    messages=[{"role": "user", "content": ASK}],
                    tools=[WEATHER],
                    tool_choice=tool_choice,
                )
                if admitted:
                    assert sdk.chat.completions.create(**call).usage.prompt_tokens > 0
                    continue
                with pytest.raises(openai.RateLimitError) as refused:
                    sdk.chat.completions.create(**call)
            assert refused.value.body["code"] == "budget_exceeded"
            reserved = re.search(r"could cost up to \$([0-9.]+)", refused.value.body["message"])
            assert reserved is not None, refused.value.body["message"]
            assert Decimal(reserved.group(1)) == round(before + prompt_usd, 6)  # the tool prompt is in it


def test_the_tool_prompt_is_reserved_on_bedrock_by_tool_choice_and_only_with_tools(tmp_path: Path) -> None:
    """Claude 3 Haiku on Bedrock: 264 tokens for auto or none, 340 for any or tool, nothing without tools; on a route
    with a fallback, each model is reserved with its own tool prompt (the dearer line is the reservation)."""
    bedrock = {"provider": "bedrock", "region": "us-east-1", "endpoint_url": "http://127.0.0.1:9", "model": HAIKU3}
    sonnet = {"provider": "anthropic", "model": SONNET, "base_url": "http://127.0.0.1:9"}
    routes = {"r": {"model": "haiku", "fallback": ["sonnet"]}}
    config = {"models": {"haiku": bedrock, "sonnet": sonnet}, "routes": routes}
    for choice, tokens in ((None, 264), (ToolChoice("none"), 264), (ToolChoice("tool", "weather"), 340)):
        request = tool_request(choice)
        worst = worst_case(config, "haiku", request, tmp_path / "w.duckdb")
        assert worst.nano() == to_nano(usd_without_tool_prompt(request, "0.25", "1.25") + tokens * Decimal("0.25") / M)
        lines = worst_case(config, "r", request, tmp_path / "w.duckdb").answers[0]
        sonnet_tokens = 496 if tokens == 264 else 588
        bound = input_bound(request)[0]
        assert [line.prompt_usd_m for line in lines] == [
            (bound + tokens) * Decimal("0.25"),
            (bound + sonnet_tokens) * Decimal("3.75"),
        ]
    plain = tool_request(None, tools=False)
    worst = worst_case(config, "haiku", plain, tmp_path / "w.duckdb")
    assert worst.nano() == to_nano(usd_without_tool_prompt(plain, "0.25", "1.25"))


@pytest.mark.parametrize(
    "model, auto, any_",
    [
        ("claude-4-sonnet", 497, 589),  # Sonnet's largest (4.6's); claude-sonnet-4-0 is the catalog's own now
        ("claude-4-opus", 675, 804),  # Opus's largest (4.7's); claude-3-opus-latest is the catalog's own now
        ("claude-2", 675, 804),  # a line the catalog has no count for: the largest of every Claude model
    ],
)
def test_a_claude_model_only_genai_prices_prices_is_reserved_with_its_lines_tool_prompt(
    tmp_path: Path, model, auto, any_
) -> None:
    """genai-prices has no tool use system prompt counts, so a Claude model priced by it alone (not in the catalog)
    was reserved with none: N concurrent tool calls overspent a budget by N times ~500 tokens. It gets the largest
    count of the catalog's Claude models of its line, its source saying so."""
    from tokenomy.pricing.catalog import default_catalog

    entry = default_catalog().lookup(model)
    assert entry.priced_by == "genai-prices"
    assert (entry.tool_prompt_tokens_auto, entry.tool_prompt_tokens_any) == (auto, any_)
    assert "genai-prices has none" in entry.tool_prompt_source and "claude.com" in entry.tool_prompt_source
    request = tool_request(ToolChoice("any"))
    models = {"m": {"provider": "anthropic", "model": model, "base_url": "http://127.0.0.1:9"}}
    worst = worst_case({"models": models}, "m", request, tmp_path / "w.duckdb")
    dearest_input = max(entry.input, entry.cache_write or entry.input)
    before = usd_without_tool_prompt(request, str(dearest_input), str(entry.output))
    assert worst.nano() == to_nano(before + any_ * dearest_input / M)


def test_a_claude_model_a_litellm_import_prices_is_reserved_with_its_tool_prompt(tmp_path: Path) -> None:
    """LiteLLM's price file gives no tool use system prompt count by tool_choice, so a Claude model it priced (its
    entry `priced_by: litellm-import`) was reserved with none, as genai-prices' were. It gets the catalog's counts: the
    largest of its line's; its source says which."""
    import json

    from tokenomy.pricing.catalog import PriceCatalog, set_default_catalog

    litellm = tmp_path / "model_prices_and_context_window.json"
    claude = {
        "mode": "chat",
        "input_cost_per_token": 1.5e-05,
        "output_cost_per_token": 7.5e-05,
        "cache_creation_input_token_cost": 1.875e-05,
        "tool_use_system_prompt_tokens": 159,
    }
    litellm.write_text(
        json.dumps(
            {
                "claude-4-opus-20250514": {**claude, "litellm_provider": "anthropic"},
                HAIKU3: {
                    "litellm_provider": "bedrock",
                    "mode": "chat",
                    "input_cost_per_token": 2.5e-07,
                    "output_cost_per_token": 1.25e-06,
                },
                f"bedrock/us.{HAIKU3}": {
                    "litellm_provider": "bedrock",
                    "mode": "chat",
                    "input_cost_per_token": 2.5e-07,
                    "output_cost_per_token": 1.25e-06,
                },
                "acme-chat-1": {
                    "litellm_provider": "openai",
                    "mode": "chat",
                    "input_cost_per_token": 2e-06,
                    "output_cost_per_token": 8e-06,
                },
            }
        )
    )
    catalog = PriceCatalog.builtin().with_litellm(litellm)
    opus = catalog.lookup("claude-4-opus-20250514")
    assert opus.priced_by == "litellm-import"
    assert (opus.tool_prompt_tokens_auto, opus.tool_prompt_tokens_any) == (675, 804)  # Opus's largest (4.7's)
    assert opus.tool_prompt_source.startswith(
        "LiteLLM's price file has none by tool_choice: the largest of the catalog's Claude opus models"
    )
    for haiku in (catalog.lookup(HAIKU3), catalog.lookup(f"us.{HAIKU3}")):  # the catalog prices it: not imported
        assert haiku.priced_by == "tokenomy-catalog"
        assert (haiku.tool_prompt_tokens_auto, haiku.tool_prompt_tokens_any) == (264, 340)  # not Haiku 4.5's
    assert catalog.lookup("acme-chat-1").tool_prompt_tokens("any") == 0

    request = tool_request(ToolChoice("any"))
    models = {"m": {"provider": "anthropic", "model": "claude-4-opus-20250514", "base_url": "http://127.0.0.1:9"}}
    set_default_catalog(catalog)
    try:
        worst = worst_case({"models": models}, "m", request, tmp_path / "w.duckdb")
    finally:
        set_default_catalog(None)
    assert worst.nano() == to_nano(usd_without_tool_prompt(request, "18.75", "75") + 804 * Decimal("18.75") / M)
