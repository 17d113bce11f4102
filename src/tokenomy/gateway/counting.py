"""Token counting on the gateway, shared by each API's counting endpoint (Anthropic's `/v1/messages/count_tokens`,
the Gemini API's `:countTokens`, OpenAI's `/v1/responses/input_tokens`).

A count is asked of one model: the route's first (its `model`, or the first model of its routing policy's first
tier), never its fallbacks or other tiers, whose tokenizers may count the same prompt differently. The request is
what the call path would send (the route's token policy applied: caps, history trimming). Counting calls are free
at every provider: no budget is reserved and no ledger row is written, but the key's rate limit applies (a count
is a request to the gateway all the same), and so does the overload guard.
"""

from __future__ import annotations

from dataclasses import dataclass, replace

from tokenomy.caching.tokens import apply_token_policy
from tokenomy.errors import ProviderError
from tokenomy.gateway.calls import Refusal
from tokenomy.messages import ChatRequest
from tokenomy.providers.base import COUNTING_UNAVAILABLE, Provider, Unsupported, inputs_refusal


@dataclass
class Counter:
    """The model a route counts with, its provider, and the request as that model would be sent it."""

    model: str  # the model's name in the config (what the docs and errors name)
    provider: Provider
    request: ChatRequest
    inputs: tuple[str, ...] | None = None  # what the model reads, when its config says (ModelSpec.inputs)


def counting_model(gw, name: str, route) -> str:
    """The model a count on route `name` asks: its own model, else the first model of its routing policy."""
    if route.model:
        return route.model
    router = gw.policy_for(name, route).router
    models = router.models() if router is not None else []
    if not models:  # a route's config names a model or a policy with tiers; kept as a clear error all the same
        raise ValueError(f"model: the route `{name}` names no model to count with")
    return models[0]


def counter_for(gw, name: str, route, call: ChatRequest) -> Counter:
    """Resolve the counting model and map `call` for it (as the client's attempt loop does for an attempt)."""
    model = counting_model(gw, name, route)
    spec = gw.client.spec_for(model)
    request, _ = apply_token_policy(call, gw.policy_for(name, route).tokens)
    request = replace(request, model=spec.model, region=request.region or spec.region)
    return Counter(model, gw.client.provider_for(spec), request, spec.inputs)


def count_refusal(counter: Counter, request: ChatRequest) -> Unsupported | None:
    """What of `request` (the counter's, its API's own fields left out) the counting model cannot take (an image to
    a text-only model), asked before any call."""
    why = inputs_refusal(counter.inputs, request) or counter.provider.refusal(request)
    return replace(why, by=f"model `{counter.model}`") if why is not None else None


async def admit_count(gw, key) -> Refusal | None:
    """The overload guard and the key's rate limit; no budget reservation (counting is free) and no call slot."""
    if gw.guard.full():
        return Refusal(503, "The gateway is at capacity; retry with backoff.", "overloaded")
    if key is not None and key.rpm and not await gw.limits.hit_rate(f"key:{key.key_id}", key.rpm):
        return Refusal(429, f"Rate limit of {key.rpm} requests per minute reached for this key.", "rate_limit_exceeded")
    return None


async def count(counter: Counter) -> int:
    """The provider's count; a ProviderError (its own, or the refusal of a provider that cannot count) goes up."""
    return await counter.provider.acount_tokens(counter.request)


def cannot_count(exc: ProviderError) -> bool:
    """The provider has no way to count (base.Provider.count_tokens): the caller's route, not the upstream, is why."""
    return exc.code == COUNTING_UNAVAILABLE
