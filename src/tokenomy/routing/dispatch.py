"""Send a request through a route's routing policy: rules pick a tier, a cascade escalates on failure."""

from __future__ import annotations

import os
from dataclasses import replace

from tokenomy.errors import ConfigError
from tokenomy.messages import ChatRequest, ChatResponse
from tokenomy.routing.rules import Policy, explain, load_policy
from tokenomy.routing.validators import validate

ESCALATED_TAG = "cascade_escalated"


def _model(cfg, tier: str) -> str:
    models = cfg.tiers.get(tier)
    if not models:
        raise ConfigError(f"tiers.{tier}: no models listed; add e.g. `{tier}: [local]` under tiers")
    return models[0]


def _plan(cfg, route_name: str, request: ChatRequest) -> tuple[Policy, list[str]]:
    route = cfg.route_for(route_name)
    if route is None or not route.policy:
        raise ConfigError(f"routes.{route_name}: no routing policy; set routes.{route_name}.policy")
    policy = load_policy(cfg.routing, route.policy)
    if policy.type == "cascade":
        tiers = policy.tiers or sorted(cfg.tiers)
    else:
        first = choose_tier(policy, request, sorted(cfg.tiers))
        order = policy.tiers or sorted(cfg.tiers)
        tiers = [first] + ([t for t in order[order.index(first) + 1:]] if first in order and policy.validators else [])
    return policy, tiers


def _prepare(request: ChatRequest, cfg, route_name: str, tier: str, attempt: int = 0) -> ChatRequest:
    # An escalated attempt is tagged with its number (1 = first escalation) so escalation rates per route
    # are queryable from the ledger: requests = untagged rows, escalated requests = rows tagged "1".
    tags = {**request.meta.tags, ESCALATED_TAG: str(attempt)} if attempt else request.meta.tags
    meta = replace(request.meta, route=route_name, tier=tier, tags=tags)
    return replace(request, model=_model(cfg, tier), meta=meta)


def chat_via_route(client, cfg, route_name: str, request: ChatRequest) -> ChatResponse:
    """Route `request` by the route's policy; every attempt goes through the client (recorded, costed)."""
    policy, tiers = _plan(cfg, route_name, request)
    response = None
    for index, tier in enumerate(tiers):
        response = client.chat(_prepare(request, cfg, route_name, tier, index))
        response.tier = tier
        if index == len(tiers) - 1 or validate(response, request, policy.validators) is None:
            break
    return response


async def achat_via_route(client, cfg, route_name: str, request: ChatRequest) -> ChatResponse:
    """Async `chat_via_route`."""
    policy, tiers = _plan(cfg, route_name, request)
    response = None
    for index, tier in enumerate(tiers):
        response = await client.achat(_prepare(request, cfg, route_name, tier, index))
        response.tier = tier
        if index == len(tiers) - 1 or validate(response, request, policy.validators) is None:
            break
    return response


_MODELS: dict[tuple, object] = {}


def choose_tier(policy: Policy, request: ChatRequest, order: list[str]) -> str:
    """Rules decide (hybrid: only when a rule fires); the classifier picks weak or strong for the rest."""
    decision = explain(policy, request)
    if policy.type == "rules" or (policy.type == "hybrid" and decision.rule is not None):
        return decision.tier
    if not policy.classifier_path:
        raise ConfigError(f"routing.policies: a {policy.type} policy needs classifier_path (see `tokenomy route train`)")
    from tokenomy.routing.classifier import load, strong_probability

    try:
        # Loaded once per file version: a decision must stay well under 5 ms; a retrained file is reloaded.
        key = (policy.classifier_path, os.stat(policy.classifier_path).st_mtime_ns)
    except OSError as exc:
        raise ConfigError(f"routing.policies: classifier_path {policy.classifier_path!r} cannot be read ({exc}); "
                          "train one with `tokenomy route train`") from exc
    if key not in _MODELS:
        _MODELS[key] = load(policy.classifier_path)
    router = _MODELS[key]
    threshold = policy.threshold if policy.threshold is not None else router.threshold  # calibrated by route train
    tiers = policy.tiers or order
    text = "\n".join(m.text for m in request.messages)
    return tiers[-1] if strong_probability(router, text) >= threshold else tiers[0]
