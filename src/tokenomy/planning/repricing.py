"""A call's tokens as another model would bill them: the model `plan savings --price-as` re-prices every call as, or the
one its routing lever sends calls to. That model caches no prefix shorter than its minimum (a local model's KV cache
reads a 750-token prompt that Claude Haiku 4.5, with its 4,096-token minimum, bills as input)."""

from __future__ import annotations

from dataclasses import replace

from tokenomy.chat_response import Usage
from tokenomy.errors import TokenomyError
from tokenomy.ledger.events import UsageEvent
from tokenomy.pricing.catalog import default_catalog
from tokenomy.pricing.cost import cacheable_usage
from tokenomy.pricing.entry import PriceEntry


def priced_as(event: UsageEvent, model: str, entry: PriceEntry) -> UsageEvent:
    """The event as if `model` (its catalog entry `entry`) had served it: cache reads and writes only where `model`
    caches that prefix, the rest plain input. A call `model` served keeps the counts its provider reported."""
    if event.model == model:
        return replace(event, region=None)
    return replace(event, model=model, region=None).apply_usage(cacheable_usage(event.usage, entry))


def cached_on(usage: Usage, model: str) -> Usage:
    """A call's usage moved to `model` (a routing target): its cache tokens as `model` would bill them."""
    try:
        return cacheable_usage(usage, default_catalog().lookup(model))
    except TokenomyError:  # an unknown target is named when its scenario is priced
        return usage
