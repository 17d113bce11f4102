"""The `routing:` section of tokenomy.yaml: routing policies (rules, cascade validators, classifier, tiers) and
the tier shares reports expect, typed in the config model and validated when the config loads (a misspelt key is
an error naming it).

`config.py` checks what spans sections (a route's policy and a policy's tiers defined under `routing.policies` and
`tiers:`); `tokenomy.routing` reads these settings to route. Like every config module it imports nothing above the
config layer (docs/architecture.md), so the checks a policy gets at load (its validator keys, its schema) are here.
"""

from __future__ import annotations

import re
from typing import Any, Literal, Optional

from pydantic import BaseModel, ConfigDict, Field, field_validator

from tokenomy.config_alerts import TierShares


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


# The keys `tokenomy.routing.validators.validate` reads: a misspelt one would silently validate nothing. Here, not
# beside `validate`, because the config checks them at load and sits below `routing` (which imports this module).
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


def schema_problem(schema: Any) -> str | None:
    """Why a route's `schema` validator could not check an answer, or None: it is no valid JSON schema, or a `$ref` in
    it does not resolve within it. `routing.validators` judges an answer without such a schema (a caller's may be
    one), so a route's own is checked once, when the config loads, and refused there. It lives here, not beside the
    validators, because the config sits below `routing`, which reads it."""
    import jsonschema

    try:
        jsonschema.validators.validator_for(schema).check_schema(schema)
    except jsonschema.SchemaError as exc:
        return f"schema is not a JSON schema ({exc.message}); fix it or drop it"
    ref = _unresolved_ref(schema)
    if ref is not None:
        return (
            f"schema's $ref {ref!r} does not resolve within it (the validators fetch nothing); "
            "define it under $defs or write it in place"
        )
    return None


def _unresolved_ref(schema: Any) -> str | None:
    """The first `$ref` in `schema` that does not resolve within it, else None. jsonschema resolves a `$ref` only
    when an answer reaches it; `referencing` is jsonschema's resolver."""
    from referencing import Registry, Resource
    from referencing.exceptions import Unresolvable
    from referencing.jsonschema import DRAFT202012

    if not isinstance(schema, dict):
        return None
    root = Resource.from_contents(schema, default_specification=DRAFT202012)
    base = root.id() or "urn:tokenomy:validators-schema"
    resolver = Registry().with_resource(base, root).crawl().resolver(base_uri=base)
    pending: list[Any] = [schema]
    while pending:
        node = pending.pop()
        if isinstance(node, dict):
            ref = node.get("$ref")
            if isinstance(ref, str):
                try:
                    resolver.lookup(ref)
                except Unresolvable:
                    return ref
            pending.extend(node.values())
        elif isinstance(node, list):
            pending.extend(node)
    return None
