"""What a provider bills per request of a tool it runs itself (a server tool), beside the call's tokens.

Web searches are priced from the model's price entry (`PriceEntry.web_search`, USD per 1,000, with the entry's
source and as_of; genai-prices publishes it per model as `web_searches_kcount`: Claude $10, Gemini 2.x $35, Gemini 3
and later $14). The hand-written table below (REQUEST_PRICES) is only the fallback for a model whose entry has no
such price (a price file without it), and prices Anthropic's web fetch, billed for the fetched content's tokens
only (counted as input tokens), at $0.

The counts come from the answer, in `ChatResponse.raw["server_tool_use"]`, as each provider puts them there:
- Anthropic: `usage.server_tool_use` as it answers (`web_search_requests`, `web_fetch_requests`); a search each.
- OpenAI's Chat Completions search models (gpt-4o-search-preview, gpt-4o-mini-search-preview, gpt-5-search-api)
  report no count: they search on every call (OpenAI: "the model always retrieves information from the web before
  responding"), so a call of one is one search (`implied_searches`), a lower bound of what OpenAI bills.
- Gemini (the Gemini API and Vertex AI), with the googleSearch / googleSearchRetrieval tool: `web_search_queries`,
  the number of queries the model ran (the candidate's `groundingMetadata.webSearchQueries`). Google bills Gemini 3
  and later per search query, and Gemini 1.x/2.x per grounded prompt: one, however many queries the answer ran
  (`billed_counts` turns the count into `grounded_prompts: 1` for those, decided from the entry's model family).
Google's and Anthropic's free allowances (Gemini's daily/monthly free grounded prompts or queries) are not
modelled: a call is recorded at list price, an upper bound of what the provider bills.

`with_server_tools` adds the price to a call's cost (`tools_usd`, part of its total but of no token type, so a
ledger row's token costs still add up to its token spend); `reserved_tools_usd` is what a budget reserves for a
request's server tools before the call, and `fetched_content` what they may bring into its prompt (billed as input).
"""

from __future__ import annotations

import functools
import logging
import re
from dataclasses import dataclass, replace
from decimal import Decimal
from typing import Any

from tokenomy.pricing.cost_breakdown import CostBreakdown
from tokenomy.pricing.entry import PriceEntry

log = logging.getLogger(__name__)

SEARCH_SOURCE = (
    "https://docs.anthropic.com/en/docs/agents-and-tools/tool-use/web-search-tool#usage-and-pricing "
    "($10 per 1,000 searches, plus the search results' tokens as input)"
)
FETCH_SOURCE = (
    "https://docs.anthropic.com/en/docs/agents-and-tools/tool-use/web-fetch-tool#usage-and-pricing "
    "(no charge beyond the fetched content's tokens)"
)
THOUSAND = Decimal(1000)


@dataclass(frozen=True)
class RequestPrice:
    """USD per request of one server tool, with the source and date it was read from."""

    usd: Decimal
    source: str
    as_of: str


# The fallback: provider -> the answer's usage counter -> its price per request, for a model whose price entry
# has no web search price.
REQUEST_PRICES: dict[str, dict[str, RequestPrice]] = {
    "anthropic": {
        "web_search_requests": RequestPrice(Decimal("0.01"), SEARCH_SOURCE, "2026-12-02"),
        "web_fetch_requests": RequestPrice(Decimal(0), FETCH_SOURCE, "2026-12-02"),
    }
}
# The counters billed at the model's web search price (its entry's `web_search`, per 1,000): Anthropic's searches,
# Gemini 3's search queries, Gemini 2.x's grounded prompts.
SEARCH_COUNTERS = ("web_search_requests", "web_search_queries", "grounded_prompts")
# The tool `type`s (prefix; the date suffix versions them) whose use each counter counts, for a budget reservation.
COUNTERS = {"web_search_": "web_search_requests", "web_fetch_": "web_fetch_requests"}
# Searches a budget reserves for a web search tool that sets no max_uses: Anthropic has no documented cap, so the
# reservation is a fixed, documented figure; a call that searches more is settled at what it really cost. A Gemini
# 3 request with Google Search reserves as many queries (Gemini runs as many as it sees fit), a Gemini 2.x one a
# single grounded prompt (all it can be billed).
DEFAULT_RESERVED_USES = 10
# Gemini's built-in tools that search Google (as the Gemini API spells them, and as the google-genai SDK does).
GOOGLE_SEARCH_TOOLS = ("googleSearch", "googleSearchRetrieval", "google_search", "google_search_retrieval")
# Gemini models Google bills per grounded prompt (1.x and 2.x); later ones are billed per search query.
_PER_PROMPT = re.compile(r"gemini-(?:live-)?[12](?:\.|-|$)")


# OpenAI's Chat Completions models that search the web on every call (their dated snapshots too).
_SEARCH_MODEL = re.compile(r"-search-(?:preview|api)(?:-|$)")


@functools.lru_cache(maxsize=256)
def implied_searches(model: str) -> dict[str, int]:
    """The searches a call of `model` runs whatever its answer says: one for an OpenAI search model, none else.
    Asked for every recorded answer and every budget reservation, of a handful of models: cached (never mutate)."""
    return {"web_search_requests": 1} if _SEARCH_MODEL.search(model.rsplit("/", 1)[-1].lower()) else {}


def billed_per_prompt(family: str) -> bool:
    """Whether Google bills this Gemini model's grounding per grounded prompt (Gemini 1.x and 2.x: "$35 per 1,000
    grounded prompts") rather than per search query (Gemini 3 and later: "$14 per 1,000 search queries"). Decided
    from the model family (the price entry's, e.g. `gemini-2.5-flash`; a Vertex AI id's last part)."""
    return bool(_PER_PROMPT.search(family.rsplit("/", 1)[-1].lower()))


def server_tool_counts(raw: Any) -> dict[str, int]:
    """The server-tool requests an answer reports (`raw["server_tool_use"]`, as the provider put them there): the
    counters above zero."""
    counts = raw.get("server_tool_use") if isinstance(raw, dict) else None
    if not isinstance(counts, dict):
        return {}
    return {name: value for name, value in counts.items() if _positive(value)}


def billed_counts(counts: dict[str, int], family: str) -> dict[str, int]:
    """The counts in the unit the provider bills: a Gemini 1.x/2.x answer's search queries are one grounded prompt."""
    if counts.get("web_search_queries") and billed_per_prompt(family):
        counts = {k: v for k, v in counts.items() if k != "web_search_queries"}
        counts["grounded_prompts"] = 1
    return counts


def request_price(provider: str, counter: str, entry: PriceEntry | None = None) -> RequestPrice | None:
    """One request's price: a search at the model's entry's web search price, else the fallback table's."""
    if counter in SEARCH_COUNTERS and entry is not None and entry.web_search is not None:
        return RequestPrice(entry.web_search / THOUSAND, entry.source, entry.as_of)
    return REQUEST_PRICES.get(provider, {}).get(counter)


def with_server_tools(
    cost: CostBreakdown, provider: str, counts: dict[str, int], entry: PriceEntry | None = None
) -> CostBreakdown:
    """`cost` with the price of the server-tool requests in `counts` (`billed_counts`'s) at `entry`'s prices
    (`tools_usd`). A counter without a price (a tool a provider may add; a model with no web search price) is
    logged, never guessed."""
    total = Decimal(0)
    for counter, number in counts.items():
        price = request_price(provider, counter, entry)
        if price is None:
            log.warning("%s reported %d %s, which has no price here: recorded at $0", provider, number, counter)
            continue
        total += price.usd * number
    return replace(cost, tools_usd=total) if total else cost


def _google_search(tool: Any) -> bool:
    return isinstance(tool, dict) and any(tool.get(name) is not None for name in GOOGLE_SEARCH_TOOLS)


# Gemini's built-in tool whose pages enter the prompt, billed as input tokens (as the Gemini API and google-genai
# spell it); Anthropic's are its web search (the results) and web fetch (the pages), the tools COUNTERS names.
FETCHING_BUILT_IN = ("urlContext", "url_context")


@dataclass(frozen=True)
class Fetched:
    """What a request's fetching tools may bring into its prompt: their names (for a refusal), and `tokens`, at most
    that many (a web fetch tool's max_uses times its max_content_tokens), or None: nothing bounds it."""

    tools: tuple[str, ...]
    tokens: int | None


def _positive(value: Any) -> int:
    """`value` if it is a positive integer (a count as a caller or provider sent it), else 0."""
    return value if isinstance(value, int) and not isinstance(value, bool) and value > 0 else 0


def _prefix(tool: dict[str, Any]) -> str | None:
    """The COUNTERS prefix of an Anthropic server tool's `type` (its date suffix versions it), or None."""
    kind = tool.get("type")
    return next((prefix for prefix in COUNTERS if isinstance(kind, str) and kind.startswith(prefix)), None)


def fetched_content(server: list[dict[str, Any]], built_in: Any) -> Fetched | None:
    """The content a request's server tools (`server`: Anthropic's, as sent) and Gemini built-in tools (`built_in`:
    `extra["tools"]`) may bring into its prompt, billed as input tokens of a size nothing shows before the call, or
    None if none brings any. Only a web fetch tool that sets both max_uses and max_content_tokens has a bound
    (Anthropic: the fetched content is truncated to max_content_tokens, approximately, and max_uses has no default);
    a search's results and Gemini's pages have none."""
    names: list[str] = []
    tokens: int | None = 0
    for tool in server:
        prefix = _prefix(tool)
        if prefix is None:
            continue
        names.append(prefix[:-1])  # web_fetch, web_search: the tool, whatever its version
        bound = _positive(tool.get("max_uses")) * _positive(tool.get("max_content_tokens"))
        if tokens is not None and prefix == "web_fetch_" and bound:
            tokens += bound
        else:
            tokens = None
    if isinstance(built_in, list):
        for tool in built_in:
            name = next((n for n in FETCHING_BUILT_IN if isinstance(tool, dict) and tool.get(n) is not None), None)
            if name is not None:
                names.append(name)
                tokens = None
    return Fetched(tuple(dict.fromkeys(names)), tokens) if names else None


def reserved_tools_usd(
    provider: str, entry: PriceEntry | None, tools: list[dict[str, Any]], built_in: Any = None
) -> Decimal:
    """What a budget reserves for the server tools a request defines on one model: each Anthropic tool's
    `max_uses` requests, or DEFAULT_RESERVED_USES without one (`tools`: their definitions as sent); and for
    Gemini's Google Search among its built-in tools (`built_in`: `extra["tools"]`), DEFAULT_RESERVED_USES
    queries (Gemini 3 and later) or one grounded prompt (Gemini 1.x/2.x)."""
    total = Decimal(0)
    for tool in tools:
        prefix = _prefix(tool)
        price = request_price(provider, COUNTERS[prefix], entry) if prefix else None
        if price is None or not price.usd:
            continue
        total += price.usd * (_positive(tool.get("max_uses")) or DEFAULT_RESERVED_USES)
    for counter, number in implied_searches(entry.family if entry is not None else "").items():
        price = request_price(provider, counter, entry)
        total += price.usd * number if price is not None else 0
    if isinstance(built_in, list) and any(_google_search(tool) for tool in built_in):
        per_prompt = entry is not None and billed_per_prompt(entry.family)
        price = request_price(provider, "grounded_prompts" if per_prompt else "web_search_queries", entry)
        if price is not None:
            total += price.usd * (1 if per_prompt else DEFAULT_RESERVED_USES)
    return total
