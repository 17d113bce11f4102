"""Routing policies from config (`routing.policies.<name>`) and the ordered rule router."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Literal, Optional

from pydantic import BaseModel, ConfigDict, Field, ValidationError

from tokenomy.caching.placement import estimate_tokens
from tokenomy.errors import ConfigError
from tokenomy.messages import ChatRequest


class Rule(BaseModel):
    """One rule: all given conditions must hold; the first matching rule picks the tier."""

    model_config = ConfigDict(extra="forbid")
    name: str
    tier: str
    task: Optional[list[str]] = None
    keywords: Optional[list[str]] = None
    min_tokens: Optional[int] = None
    max_tokens: Optional[int] = None
    json_schema: Optional[bool] = None
    tools: Optional[bool] = None
    min_turns: Optional[int] = None


class Policy(BaseModel):
    """`routing.policies.<name>`: rules, cascade, classifier or hybrid."""

    model_config = ConfigDict(extra="forbid")
    type: Literal["rules", "cascade", "classifier", "hybrid"] = "rules"
    rules: list[Rule] = Field(default_factory=list)
    default_tier: Optional[str] = None
    tiers: Optional[list[str]] = None
    validators: dict[str, Any] = Field(default_factory=dict)
    classifier_path: Optional[str] = None
    threshold: Optional[float] = Field(None, ge=0, le=1, description="P(strong) at or above which the classifier "
                                       "picks the strong tier; default: the one saved by `route train`")
    escalation_threshold: float = Field(0.25, ge=0, le=1, description="cascade escalation rate above which "
                                        "the route is flagged")
    expected_share: dict[str, float] = Field(default_factory=dict, description="expected share of calls per tier")


def load_policy(routing: dict[str, Any], name: str) -> Policy:
    """Validate `routing.policies.<name>`; errors name the key."""
    policies = (routing or {}).get("policies") or {}
    if name not in policies:
        raise ConfigError(f"routing.policies.{name}: no such policy; define it under routing.policies")
    try:
        return Policy.model_validate(policies[name])
    except ValidationError as exc:
        err = exc.errors()[0]
        where = ".".join(str(p) for p in err["loc"])
        raise ConfigError(f"routing.policies.{name}.{where}: {err['msg']}") from exc


@dataclass
class Decision:
    """Which tier a request goes to, and the rule that said so."""

    tier: str
    rule: str | None
    reason: str


def _text(request: ChatRequest) -> str:
    return (request.system or "") + "\n".join(m.text for m in request.messages)


def explain(policy: Policy, request: ChatRequest) -> Decision:
    """Apply rules in order; fall back to the policy's default tier."""
    text = _text(request)
    tokens = estimate_tokens(text)
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
    tier = policy.default_tier or "tier1"
    return Decision(tier, None, "no rule matched: default tier")
