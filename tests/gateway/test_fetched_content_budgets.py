"""Server tools that bring content into the prompt under a budget. Anthropic bills the pages its web fetch tool reads
and the results its web search tool finds as input tokens, and Google bills the pages Gemini's URL context tool reads
as input too; the gateway cannot see their size before the call. A budgeted route reserved only the visible prompt,
so a request fetching a long page overspent its budget by far. Such a request is now reserved like a document sent by
URL: its prompt at the model's whole context window (where the catalog has it), or, for a web fetch tool that sets
both `max_uses` and `max_content_tokens` (the most tokens of each page Anthropic puts in the context), the prompt plus
that many tokens. Real gateways serve the anthropic and google-genai SDKs in front of recording upstreams."""

from __future__ import annotations

from decimal import Decimal
from pathlib import Path

import anthropic
import pytest
from google import genai
from google.genai import errors, types

from helpers.gateway_worst_case import worst_case as gateway_worst_case
from helpers.scripted_anthropic import ScriptedAnthropic
from tokenomy.config import parse_config
from tokenomy.emulate.gemini_api import create_app as create_gemini
from tokenomy.emulate.instant_engine import InstantEngine
from tokenomy.emulate.server import ServerThread
from tokenomy.gateway.app import create_app
from tokenomy.gateway.keys import KeyStore
from tokenomy.gateway.limits import to_nano
from tokenomy.gateway.worst_case import WorstCase
from tokenomy.ledger.store import open_store
from tokenomy.messages import ChatRequest, Message
from tokenomy.request_options import ToolSpec

SONNET = "claude-sonnet-4-5-20250929"  # a 200,000-token window; $3.75 per 1M for a cache write, $15 output
GEMINI = "gemini-2.5-flash"  # a 1,048,576-token window at $0.30 per 1M input
ASK = [{"role": "user", "content": "Summarise https://example.com/annual-report"}]
FETCH = {"type": "web_fetch_20250910", "name": "web_fetch"}
SEARCH = {"type": "web_search_20250305", "name": "web_search", "max_uses": 1}
M = Decimal(1_000_000)
WINDOW_USD = 200_000 * Decimal("3.75") / M  # $0.75: Sonnet 4.5's whole window at its dearest input price


def worst_case(models: dict, request: ChatRequest, ledger: Path) -> WorstCase:
    return gateway_worst_case({"models": models}, "m", request, ledger)


@pytest.fixture(scope="module")
def scripted():
    upstream = ScriptedAnthropic()
    with ServerThread(upstream.app) as url:
        yield upstream, url


def claude_gateway(url: str, ledger: Path) -> ServerThread:
    models = {"m": {"provider": "anthropic", "model": SONNET, "base_url": url}}
    return ServerThread(create_app(parse_config({"auth": True, "models": models}), str(ledger)), lifespan="on")


@pytest.mark.parametrize(
    "tool, named",
    [(FETCH, "web_fetch"), (SEARCH, "web_search"), ({**FETCH, "max_content_tokens": 50_000}, "web_fetch")],
)
def test_a_fetching_tool_without_a_bound_reserves_the_models_whole_window(scripted, tmp_path, tool, named) -> None:
    """Without max_uses and max_content_tokens both, nothing bounds what the tool brings in (Anthropic sets no
    default max_uses): the prompt is reserved at the whole window. A budget below it refuses, saying why."""
    upstream, url = scripted
    upstream.requests.clear()
    ledger = tmp_path / "ledger.duckdb"
    secret, _ = KeyStore(open_store(ledger)).create(budget_usd=Decimal("0.5"), period="month")
    with claude_gateway(url, ledger) as gateway:
        sdk = anthropic.Anthropic(base_url=gateway, api_key=secret, max_retries=0)
        with pytest.raises(anthropic.RateLimitError) as refused:
            sdk.messages.create(model="m", max_tokens=100, messages=ASK, tools=[tool])
        # The same question without the tool is a few tokens, well within the budget.
        assert sdk.messages.create(model="m", max_tokens=100, messages=ASK).content[0].text == "Hi"
    assert len(upstream.requests) == 1 and "tools" not in upstream.requests[0][1]
    assert refused.value.body["error"]["message"].endswith(
        f"Its {named} tool brings content into the prompt (billed as input tokens) whose size the gateway cannot "
        "see, so its prompt is reserved at the model's whole context window; a web_fetch tool that sets max_uses "
        "and max_content_tokens is reserved at those instead."
    )

    request = ChatRequest(
        [Message("user", ASK[0]["content"])], model="m", max_tokens=100, tools=[ToolSpec(tool["name"], server=tool)]
    )
    worst = worst_case({"m": {"provider": "anthropic", "model": SONNET, "base_url": url}}, request, ledger)
    searches = Decimal("0.01") if named == "web_search" else 0
    assert worst.nano() == to_nano(WINDOW_USD + 100 * Decimal(15) / M + searches)


def test_a_web_fetch_tool_with_max_uses_and_max_content_tokens_is_reserved_at_those(scripted, tmp_path) -> None:
    """Two fetches of at most 20,000 tokens each: 40,000 tokens on top of the prompt ($0.15 at $3.75 per 1M), not the
    whole window ($0.75). A budget of $0.10 refuses it; one of $0.50 admits it, and the tool reaches Anthropic."""
    upstream, url = scripted
    upstream.requests.clear()
    bounded = {**FETCH, "max_uses": 2, "max_content_tokens": 20_000}
    request = ChatRequest(
        [Message("user", ASK[0]["content"])], model="m", max_tokens=100, tools=[ToolSpec("web_fetch", server=bounded)]
    )
    bare = ChatRequest([Message("user", ASK[0]["content"])], model="m", max_tokens=100)
    models = {"m": {"provider": "anthropic", "model": SONNET, "base_url": url}}
    worst, plain = worst_case(models, request, tmp_path / "w.duckdb"), worst_case(models, bare, tmp_path / "w.duckdb")
    fetched = worst.nano() - plain.nano()
    # Past the fetched pages: the tool's definition, estimated as text, and Claude's tool use system prompt (496
    # tokens on Sonnet 4.5 for tool_choice auto), which any tool brings.
    tool_tokens = fetched - to_nano((40_000 + 496) * Decimal("3.75") / M)
    assert 0 <= tool_tokens < to_nano(100 * Decimal("3.75") / M)

    for budget, admitted in ((Decimal("0.1"), False), (Decimal("0.5"), True)):
        ledger = tmp_path / f"{budget}.duckdb"
        secret, _ = KeyStore(open_store(ledger)).create(budget_usd=budget, period="month")
        with claude_gateway(url, ledger) as gateway:
            sdk = anthropic.Anthropic(base_url=gateway, api_key=secret, max_retries=0)
            if admitted:
                sdk.messages.create(model="m", max_tokens=100, messages=ASK, tools=[bounded])
            else:
                with pytest.raises(anthropic.RateLimitError) as refused:
                    sdk.messages.create(model="m", max_tokens=100, messages=ASK, tools=[bounded])
                assert refused.value.body["error"]["message"].endswith(
                    "Its web_fetch tool may bring up to 40,000 tokens into the prompt (max_uses times "
                    "max_content_tokens), reserved on top of it."
                )
    assert [body["tools"] for _, body in upstream.requests] == [[bounded]]


def test_gemini_url_context_reserves_the_models_whole_window(tmp_path) -> None:
    """Gemini's urlContext tool reads the pages a prompt names, billed as input tokens: the prompt is reserved at
    Gemini 2.5 Flash's whole window ($0.31), so a $0.20 budget refuses it through generateContent."""
    ledger = tmp_path / "ledger.duckdb"
    secret, _ = KeyStore(open_store(ledger)).create(budget_usd=Decimal("0.2"), period="month")
    with ServerThread(create_gemini(engine=InstantEngine())) as gemini:
        models = {"g": {"provider": "gemini", "model": GEMINI, "base_url": gemini}}
        config = parse_config({"auth": True, "models": models})
        with ServerThread(create_app(config, str(ledger)), lifespan="on") as url:
            client = genai.Client(api_key=secret, http_options={"base_url": url})
            ask = "Summarise https://example.com/annual-report"
            with pytest.raises(errors.ClientError, match="Budget exhausted") as refused:
                client.models.generate_content(
                    model="g",
                    contents=ask,
                    config=types.GenerateContentConfig(
                        max_output_tokens=5, tools=[types.Tool(url_context=types.UrlContext())]
                    ),
                )
            assert refused.value.code == 429
            assert "Its urlContext tool brings content into the prompt" in str(refused.value)
            # Google Search grounding alone is reserved as before (its queries), not at the window.
            client.models.generate_content(
                model="g",
                contents=ask,
                config=types.GenerateContentConfig(
                    max_output_tokens=5, tools=[types.Tool(google_search=types.GoogleSearch())]
                ),
            )
    assert len(open_store(str(ledger)).events()) == 1
