"""The ordered rules of a routing policy (`routing.policies.<name>.rules`): which tier a request goes to, and why."""

from __future__ import annotations

from dataclasses import dataclass

from tokenomy.caching.placement import estimate_input_tokens
from tokenomy.config_routing import RoutingPolicy as Policy
from tokenomy.messages import ChatRequest


@dataclass
class Decision:
    """Which tier a request goes to, and the rule that said so."""

    tier: str
    rule: str | None
    reason: str


def _text(request: ChatRequest) -> str:
    return (request.system or "") + "\n".join(m.text for m in request.messages)


def explain(policy: Policy, request: ChatRequest, default_tier: str | None = None) -> Decision:
    """Apply rules in order; when none fires: the policy's `default_tier`, else `default_tier` (the router
    passes the policy's cheapest tier)."""
    text = _text(request)
    tokens = estimate_input_tokens(request)  # what the model reads: tool definitions and images too
    turns = sum(1 for m in request.messages if m.role == "user")
    lowered = text.lower()
    for rule in policy.rules:
        why: list[str] = []
        if rule.task is not None:
            if request.meta.task not in rule.task:
                continue
            why.append(f"task {request.meta.task!r}")
        if rule.keywords is not None:
            hit = next((k for k in rule.keywords if k.lower() in lowered), None)
            if hit is None:
                continue
            why.append(f"keyword {hit!r}")
        if rule.min_tokens is not None:
            if tokens < rule.min_tokens:
                continue
            why.append(f"~{tokens} tokens >= {rule.min_tokens}")
        if rule.max_tokens is not None:
            if tokens > rule.max_tokens:
                continue
            why.append(f"~{tokens} tokens <= {rule.max_tokens}")
        if rule.json_schema is not None:
            if (request.json_schema is not None) != rule.json_schema:
                continue
            why.append("JSON schema " + ("present" if rule.json_schema else "absent"))
        if rule.tools is not None:
            if bool(request.tools) != rule.tools:
                continue
            why.append("tools " + ("present" if rule.tools else "absent"))
        if rule.min_turns is not None:
            if turns < rule.min_turns:
                continue
            why.append(f"{turns} turns >= {rule.min_turns}")
        return Decision(rule.tier, rule.name, "; ".join(why) or "unconditional")
    tier = policy.default_tier or default_tier
    if tier is None:
        raise ValueError("explain: the policy has no default_tier; pass the cheapest tier as default_tier")
    return Decision(tier, None, "no rule matched: default tier")
