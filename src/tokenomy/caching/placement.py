"""Place cache points after the longest stable prefixes, where the model's minimum makes them pay.

Stable parts of a prompt, in the order providers hash them: tools, the system prompt, then earlier
turns (everything but the last user message). A cache point goes after a part only when the prefix
up to it reaches the model's minimum cacheable length; with more candidates than the model allows,
the longest prefixes win because they save the most on a hit.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from dataclasses import dataclass, replace

from tokenomy.errors import UnknownModelError
from tokenomy.messages import ChatRequest, Message
from tokenomy.pricing.catalog import PriceCatalog, PriceEntry, default_catalog


def estimate_tokens(text: str) -> int:
    """Provider-neutral estimate (~4 characters per token for English text and JSON).

    Hosted tokenizers are not available offline, so placement uses this cheap estimate for them
    (the local model counts exactly with its own tokenizer). It tends to *under*-count text full of
    numbers and punctuation (SmolLM2 counted 1,956 tokens where it says 1,730), so a point placed
    "at the minimum" is usually above it in fact. A point that still lands below the real minimum
    costs nothing: Bedrock and Anthropic simply don't cache that prefix.
    """
    return (len(text) + 3) // 4


@dataclass(frozen=True)
class Placement:
    """Where a cache point was placed: after 'tools', 'system' or 'message:<index>'; prefix size."""

    after: str
    prefix_tokens: int


def token_counter_for(model: str) -> Callable[[str], int]:
    """The local model counts exactly with its tokenizer; hosted models use the estimate."""
    if model == "local":
        from tokenomy.providers.local import LocalProvider

        return LocalProvider().count_tokens
    return estimate_tokens


def place_cache_points(
    request: ChatRequest, entry: PriceEntry | None, count_tokens: Callable[[str], int] = estimate_tokens
) -> tuple[ChatRequest, list[Placement]]:
    """Return a copy of `request` with cache points set, and the placements made."""
    if entry is None or not entry.has_cache or not entry.cache_max_checkpoints:
        return request, []  # no prompt caching, or automatic caching (OpenAI): nothing to mark
    minimum = entry.cache_min_tokens or 0
    candidates: list[tuple[str, int]] = []
    total = 0
    if request.tools:
        total += count_tokens(json.dumps([t.to_dict() for t in request.tools], sort_keys=True))
        candidates.append(("tools", total))
    if request.system:
        total += count_tokens(request.system)
        candidates.append(("system", total))
    last_user = max((i for i, m in enumerate(request.messages) if m.role == "user"), default=-1)
    for index, message in enumerate(request.messages[:last_user]):
        total += count_tokens(message.text)
        candidates.append((f"message:{index}", total))
    eligible = [c for c in candidates if c[1] >= minimum]
    chosen = sorted(eligible, key=lambda c: c[1], reverse=True)[: entry.cache_max_checkpoints]
    if not chosen:
        return request, []
    names = {name for name, _ in chosen}
    messages = [replace(m, cache_point=True) if f"message:{i}" in names else m for i, m in enumerate(request.messages)]
    placed = replace(
        request,
        messages=messages,
        tools_cache_point="tools" in names or request.tools_cache_point,
        system_cache_point="system" in names or request.system_cache_point,
    )
    return placed, [Placement(name, size) for name, size in sorted(chosen, key=lambda c: c[1])]


def auto_cache(
    request: ChatRequest, pricing_model: str, catalog: PriceCatalog | None = None, region: str | None = None
) -> tuple[ChatRequest, list[Placement]]:
    """Apply placement using the catalog entry of the model that will be priced."""
    if request.system_cache_point or request.tools_cache_point or any(m.cache_point for m in request.messages):
        return request, []  # the caller placed its own points: respect them
    try:
        entry = (catalog or default_catalog()).lookup(pricing_model, region)
    except UnknownModelError:
        return request, []
    return place_cache_points(request, entry, token_counter_for(pricing_model))


__all__ = ["Message", "Placement", "auto_cache", "estimate_tokens", "place_cache_points"]
