"""The `routing:` section of tokenomy.yaml: routing policies (rules, cascade validators, classifier, tiers) and
the tier shares reports expect, typed in the config model and validated when the config loads (a misspelt key is
an error naming it).

`config.py` checks what spans sections (a route's policy and a policy's tiers defined under `routing.policies` and
`tiers:`); `tokenomy.routing` reads these settings to route.
"""

from __future__ import annotations

import re
from typing import Any, Literal, Optional

from pydantic import BaseModel, ConfigDict, Field, field_validator

from tokenomy.analytics.alert_settings import TierShares


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


# The keys `tokenomy.routing.validators.validate` reads: a misspelt one would silently validate nothing.
VALIDATOR_KEYS = (
    "truncated",
    "hedging",
    "hedge_phrases",
    "json",
    "schema",
    "required",
    "regex",
    "arithmetic",
    "python",
)


class RoutingPolicy(BaseModel):
    """`routing.policies.<name>`: rules, cascade, classifier, embedding, combined or hybrid (see
    tokenomy.routing.router)."""

    model_config = ConfigDict(extra="forbid")

    type: Literal["rules", "cascade", "classifier", "embedding", "combined", "hybrid"] = "rules"
    rules: list[Rule] = Field(default_factory=list)
    default_tier: Optional[str] = Field(None, description="tier when no rule fires; default: the cheapest tier")
    tiers: Optional[list[str]] = Field(None, description="the policy's tiers, cheapest first; default: all tiers")
    validators: dict[str, Any] = Field(default_factory=dict)
    classifier_path: Optional[str] = None
    threshold: Optional[float] = Field(
        None,
        ge=0,
        le=1,
        description="P(strong) at or above which the classifier "
        "picks the strong tier; default: the one saved by `route train`",
    )
    escalation_threshold: float = Field(
        0.25, ge=0, le=1, description="cascade escalation rate above which the route is flagged"
    )
    expected_share: TierShares = Field(default_factory=dict, description="expected share of calls per tier")

    @field_validator("validators")
    @classmethod
    def _known_validators(cls, value: dict[str, Any]) -> dict[str, Any]:
        unknown = sorted(set(value) - set(VALIDATOR_KEYS))
        if unknown:
            raise ValueError(f"unknown validator {', '.join(map(repr, unknown))}; use {', '.join(VALIDATOR_KEYS)}")
        # A schema the validators cannot check is judged without (as a caller's is): say so at load instead.
        if value.get("schema") is not None:
            from tokenomy.routing.validators import schema_problem

            problem = schema_problem(value["schema"])
            if problem is not None:
                raise ValueError(problem)
        if value.get("regex") is not None:  # else found on each request, after the cheap tier's answer was paid
            try:
                re.compile(value["regex"])
            except (re.error, TypeError) as exc:
                raise ValueError(f"regex {value['regex']!r} does not compile ({exc}); fix it") from None
        return value

    def tiers_named(self) -> list[tuple[str, str]]:
        """(key, tier) for every tier this policy names, to check them against `tiers:`."""
        named = [(f"tiers[{i}]", t) for i, t in enumerate(self.tiers or [])]
        if self.default_tier:
            named.append(("default_tier", self.default_tier))
        return named + [(f"rules[{i}].tier", r.tier) for i, r in enumerate(self.rules)]


class RoutingConfig(BaseModel):
    """`routing:`: named policies, and the tier shares reports and alerts expect."""

    model_config = ConfigDict(extra="forbid")

    policies: dict[str, RoutingPolicy] = Field(default_factory=dict)
    expected_tier_share: TierShares = Field(default_factory=dict)
