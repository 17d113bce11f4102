"""The service tier an answer says it was served at, which the ledger prices and tags it by and its span names: one
reading for both, so they agree.

Its own module because the recorder (call path) and the span (telemetry, a base package beside pricing) both read it.
"""

from __future__ import annotations

from typing import Any

from tokenomy.chat_response import ChatResponse
from tokenomy.pricing.entry import FAST_MODE_TIER, priced_tier


def served_tier(response: ChatResponse) -> str:
    """The service tier the upstream reports it served the call at (OpenAI-format and Gemini answers carry
    `service_tier` in `raw["top"]`, which the caller can ask for in `extra`; Anthropic's answer its usage's, in
    `raw["service_tier"]`: "priority" for an organisation with Priority Tier capacity): flex, priority and ultrafast
    calls are billed at their own prices, any other value ("default", "auto", "standard", "scale", none) at the
    standard price. Anthropic publishes no per-token Priority Tier price (capacity commitments, at contract prices:
    https://platform.claude.com/docs/en/api/service-tiers), so such a call is priced at the tier a price file gives,
    else unpriced, as any tier without a published price is: not at the standard list price, which is not its bill.
    A Claude answer whose usage says `speed: "fast"` (`raw["speed"]`) ran in fast mode, billed at its own published
    prices: the `fast_mode` tier (Anthropic bills the speed the call ran at, which is not always the one asked)."""
    raw = response.raw if isinstance(response.raw, dict) else {}
    top = raw.get("top")
    said = top.get("service_tier") if isinstance(top, dict) else None
    if said is None and response.provider == "anthropic":
        if raw.get("speed") == "fast":
            return FAST_MODE_TIER
        said = raw.get("service_tier")
    return priced_tier(said)  # "fast" is priority


def asked_tier(extra: dict[str, Any]) -> str:
    """The service tier a request's pass-through fields ask for: fast mode (`speed: "fast"`, Claude's), else its
    `service_tier` (OpenAI's "fast" is priority), else the standard tier. An attempt that ends with no answer to say
    the tier served is priced at it, and the gateway reserves a call's budget at it."""
    if extra.get("speed") == "fast":
        return FAST_MODE_TIER
    return priced_tier(extra.get("service_tier"))
