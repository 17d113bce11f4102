"""Token counting on the gateway, shared by each API's counting endpoint (Anthropic's `/v1/messages/count_tokens`,
the Gemini API's `:countTokens`, OpenAI's `/v1/responses/input_tokens`).

A count is asked of one model: the route's first (its `model`, or the first model of its routing policy's first
tier), never its fallbacks or other tiers, whose tokenizers may count the same prompt differently. The request is
what the call path would send (the route's token policy applied: caps, history trimming). Counting calls are free
at every provider: no budget is reserved and no ledger row is written, but the key's rate limit applies (a count
is a request to the gateway all the same), and so does the overload guard.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, replace

from tokenomy.caching.tokens import apply_token_policy
from tokenomy.errors import ProviderError
from tokenomy.messages import ChatRequest
from tokenomy.providers.base import COUNTING_UNAVAILABLE, Provider
from tokenomy.providers.block_refusals import inputs_refusal
from tokenomy.providers.refusals import Unsupported


@dataclass
class Counter:
    """The model a route counts with, its provider, and the request as that model would be sent it."""

    model: str  # the model's name in the config (what the docs and errors name)
    provider: Provider
    request: ChatRequest


def counting_model(gw, name: str, route) -> str:
    """The model a count on route `name` asks: its own model, else the first model of its routing policy."""
    if route.model:
        return route.model
    router = gw.policy_for(name, route).router
    models = router.models() if router is not None else []
    if not models:  # a route's config names a model or a policy with tiers; kept as a clear error all the same
        raise ValueError(f"model: the route `{name}` names no model to count with")
    return models[0]


def counter_for(
    gw, name: str, route, call: ChatRequest, api: str, providers: tuple[str, ...], named: Callable[[str], str] = str
) -> Counter | Unsupported:
    """The counting model with `call` mapped for it (as the client's attempt loop maps an attempt), or what of the
    request that model cannot take (an image to a text-only model), found before any call. An API's own fields
    (`call.extra`) reach only that API's `providers`: for another a ValueError names the first as the caller
    spelled it (`named`), as a call on the route would be refused."""
    model = counting_model(gw, name, route)
    spec = gw.client.spec_for(model)
    provider = gw.client.provider_for(spec)
    if type(provider).count_tokens is Provider.count_tokens:
        # No way to count whatever is sent: `count` says so, rather than a refusal of a field whose removal would
        # only lead to that 400.
        return Counter(model, provider, replace(call, model=spec.model))
    if call.extra and provider.name not in providers:
        raise ValueError(
            f"{named(next(iter(call.extra)))}: the gateway carries this field to {api} models only, and `{name}` "
            f"counts with model `{model}` ({provider.name}); remove it"
        )
    # A count has no output cap by nature: its warning would be wrong, and spend the once per model the calls' need.
    policy = replace(gw.policy_for(name, route).tokens, warn_uncapped=False)
    request, _ = apply_token_policy(call, policy)
    request = replace(request, model=spec.model, region=request.region or spec.region)
    bare = replace(request, extra={}) if request.extra else request  # the API's own fields were checked above
    why = inputs_refusal(spec.inputs, bare) or provider.refusal(bare)
    return replace(why, by=f"model `{model}`") if why is not None else Counter(model, provider, request)


async def count(counter: Counter) -> int:
    """The provider's count; a ProviderError (its own, or the refusal of a provider that cannot count) goes up."""
    return await counter.provider.acount_tokens(counter.request)


def cannot_count(exc: ProviderError) -> bool:
    """The provider has no way to count (base.Provider.count_tokens): the caller's route, not the upstream, is why."""
    return exc.code == COUNTING_UNAVAILABLE
