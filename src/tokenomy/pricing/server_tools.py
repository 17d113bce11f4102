"""What a provider bills per request of a tool it runs itself (a server tool), beside the call's tokens.

Anthropic's web search is billed per search ($10 per 1,000), counted in the answer's
`usage.server_tool_use.web_search_requests`; its web fetch is billed for the fetched content's tokens only (counted
as input tokens), so its counter is priced at $0. The provider's answer carries the counts in
`ChatResponse.raw["server_tool_use"]`; `with_server_tools` adds their price to a call's cost (`tools_usd`, part of
its total but of no token type, so a ledger row's token costs still add up to its token spend).
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, replace
from decimal import Decimal
from typing import Any

from tokenomy.pricing.cost import CostBreakdown

log = logging.getLogger(__name__)

SEARCH_SOURCE = (
    "https://docs.anthropic.com/en/docs/agents-and-tools/tool-use/web-search-tool#usage-and-pricing "
    "($10 per 1,000 searches, plus the search results' tokens as input)"
)
FETCH_SOURCE = (
    "https://docs.anthropic.com/en/docs/agents-and-tools/tool-use/web-fetch-tool#usage-and-pricing "
    "(no charge beyond the fetched content's tokens)"
)


@dataclass(frozen=True)
class RequestPrice:
    """USD per request of one server tool, with the source and date it was read from."""

    usd: Decimal
    source: str
    as_of: str


# provider -> the answer's usage counter -> its price per request
REQUEST_PRICES: dict[str, dict[str, RequestPrice]] = {
    "anthropic": {
        "web_search_requests": RequestPrice(Decimal("0.01"), SEARCH_SOURCE, "2026-12-02"),
        "web_fetch_requests": RequestPrice(Decimal(0), FETCH_SOURCE, "2026-12-02"),
    }
}
# The tool `type`s (prefix; the date suffix versions them) whose use each counter counts, for a budget reservation.
COUNTERS = {"web_search_": "web_search_requests", "web_fetch_": "web_fetch_requests"}
# Searches a budget reserves for a web search tool that sets no max_uses: Anthropic has no documented cap, so the
# reservation is a fixed, documented figure; a call that searches more is settled at what it really cost.
DEFAULT_RESERVED_USES = 10


def server_tool_counts(raw: Any) -> dict[str, int]:
    """The server-tool requests an answer reports (`raw["server_tool_use"]`, as the provider put them there): the
    counters above zero."""
    counts = raw.get("server_tool_use") if isinstance(raw, dict) else None
    if not isinstance(counts, dict):
        return {}
    return {
        name: value
        for name, value in counts.items()
        if isinstance(value, int) and not isinstance(value, bool) and value > 0
    }


def request_price(provider: str, counter: str) -> RequestPrice | None:
    return REQUEST_PRICES.get(provider, {}).get(counter)


def with_server_tools(cost: CostBreakdown, provider: str, counts: dict[str, int]) -> CostBreakdown:
    """`cost` with the price of the server-tool requests in `counts` (`tools_usd`). A counter without a price (a
    tool Anthropic may add) is logged, never guessed."""
    total = Decimal(0)
    for counter, number in counts.items():
        price = request_price(provider, counter)
        if price is None:
            log.warning("%s reported %d %s, which has no price here: recorded at $0", provider, number, counter)
            continue
        total += price.usd * number
    return replace(cost, tools_usd=total) if total else cost


def reserved_tools_usd(provider: str, tools: list[dict[str, Any]]) -> Decimal:
    """What a budget reserves for the server tools a request defines (their definitions as sent): each priced
    tool's `max_uses` requests, or DEFAULT_RESERVED_USES without one."""
    total = Decimal(0)
    for tool in tools:
        kind = tool.get("type")
        counter = next((c for prefix, c in COUNTERS.items() if isinstance(kind, str) and kind.startswith(prefix)), None)
        price = request_price(provider, counter) if counter else None
        if price is None or not price.usd:
            continue
        uses = tool.get("max_uses")
        uses = uses if isinstance(uses, int) and not isinstance(uses, bool) and uses > 0 else DEFAULT_RESERVED_USES
        total += price.usd * uses
    return total
