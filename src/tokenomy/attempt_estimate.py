"""What an attempt the provider gave no count for is recorded at (`recording.Recorder`): its usage estimated from
what the attempt saw, priced at the service tier it asked for, as the gateway reserves it.

The provider bills a stream cut midway, a call its caller stopped waiting for, and a call it was still working on
when it failed; none of them brings the provider's usage, so the row carries this estimate rather than $0.
"""

from __future__ import annotations

from dataclasses import replace

from tokenomy.call_policy import Attempt, CallState
from tokenomy.chat_response import Usage
from tokenomy.errors import TokenomyError
from tokenomy.pricing.catalog import PriceCatalog
from tokenomy.pricing.cost import answered_cost, billable_usage
from tokenomy.pricing.cost_breakdown import CostBreakdown
from tokenomy.pricing.identifiers import pricing_region
from tokenomy.pricing.served_tier import asked_tier


def estimated(catalog: PriceCatalog, call: CallState, att: Attempt) -> tuple[Usage, CostBreakdown]:
    """Usage and cost of an attempt that ended without the provider's count: the prompt estimate; as output, the
    characters received over four (as the prompt is estimated), and at least one token per delta (a provider may
    send many tokens in one: Gemini's and Bedrock's chunks often carry dozens). A prompt the provider counted as
    its answer began (Anthropic's message_start: its cache reads and writes too) is recorded at those counts.
    Priced at the service tier asked for (no answer says the one served), as the gateway reserves it: the provider
    bills a flex or priority attempt at its tier."""
    request = att.target.call
    output = max(att.deltas, att.chars // 4)
    model, region = att.target.spec.pricing_model, request.region
    region = pricing_region(region)
    if att.reported is not None:
        counted = replace(att.reported, output_tokens=max(att.reported.output_tokens, output))
        usage = billable_usage(counted, model, region, catalog)
    else:
        usage = Usage(
            input_tokens=att.target.estimate - (request.max_tokens or 0),
            output_tokens=output,
            audio_input_tokens=att.target.audio_estimate,
        )
    tier = priced_tier(catalog, call, att)
    return usage, answered_cost(usage, model, region, call.mode, catalog, service_tier=tier)


def priced_tier(catalog: PriceCatalog, call: CallState, att: Attempt) -> str:
    """The service tier an attempt asked for (`service_tier`, or fast `speed`, in `extra`: `asked_tier`), at which
    an attempt that ends without an answer saying the tier served is priced, as the gateway reserves it: the
    provider bills a flex or priority call at its tier. A tier the catalog publishes no price of for the model is
    estimated at the standard price, as the gateway reserves it too (not $0 unpriced)."""
    tier = asked_tier(att.target.call.extra) if call.mode == "on_demand" else "standard"
    if tier == "standard":
        return tier
    region = att.target.call.region
    try:
        entry = catalog.lookup(att.target.spec.pricing_model, pricing_region(region))
    except TokenomyError:  # no price entry: priced at the standard tier
        return "standard"
    return tier if tier in entry.service_tiers else "standard"
