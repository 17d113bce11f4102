"""Routers: from a request, the ordered tiers to try and whether each answer must pass validators.

One small interface and a table of implementations (rules, classifier, embedding, combined, hybrid, cascade), in
the manner of RouteLLM's router table. A router only decides; the client's attempt loop (`tokenomy.client`) expands
the tiers into attempts under the route's call policy (token caps, cache points, retries, fallbacks,
rate limit), so a routed call is capped, retried and recorded exactly like any other call.
"""

from __future__ import annotations

import os
from collections.abc import Callable
from dataclasses import dataclass
from decimal import Decimal
from typing import TYPE_CHECKING, Any, ClassVar, Protocol

from tokenomy.errors import ConfigError, TokenomyError
from tokenomy.ledger.events import (
    CACHE_WRITE_1H_TAG,
    FILTERED_TAG,
    MAX_TOKENS_CLAMPED_TAG,
    OVER_CAP_TAG,
    SCHEMA_LOOSENED_TAG,
    THINKING_BUDGET_CLAMPED_TAG,
)
from tokenomy.messages import ChatRequest
from tokenomy.pricing.identifiers import pricing_region
from tokenomy.routing.rules import Decision, explain

if TYPE_CHECKING:
    from tokenomy.config import TokenomyConfig
    from tokenomy.config_routing import RoutingPolicy
    from tokenomy.pricing.catalog import PriceEntry

# An escalated attempt is tagged with its number (1 = first escalation) so escalation rates per route are
# queryable from the ledger: requests = untagged rows, escalated requests = rows tagged "1".
ESCALATED_TAG = "cascade_escalated"
# A tier reached only because every model below it refused the request before sending (an image to a text-only
# tier) is tagged apart: no answer failed, so it is not an escalation and must not raise the escalation rate.
PASSED_UP_TAG = "passed_up"
# A cascade's tier reached because the one below was unavailable (throttled, a server error, a timeout, after its
# retries and fallbacks): no answer was judged either, so it is no escalation; tagged apart from a refusal.
PASSED_UP_ON_ERROR_TAG = "passed_up_on_error"
# The answer the validators rejected carries why, on its own row: the validator (`cascade_rejected`: hedging, json,
# arithmetic, ...; few values, so reports can group by it) and the bounded reason (`cascade_reason`), which quotes the
# answer only where the ledger stores prompts (validators.Rejection.said).
REJECTED_TAG = "cascade_rejected"
REASON_TAG = "cascade_reason"
# The tags above are Tokenomy's own: route drift, the training labels and the reports count them, so a caller's tag of
# one of these names (which the cheap tier's row would carry) would count an escalation or a rejection that never was.
ROUTING_TAGS = (ESCALATED_TAG, PASSED_UP_TAG, PASSED_UP_ON_ERROR_TAG, REJECTED_TAG, REASON_TAG)
# Tags the recorder writes on a row from what its call reported, only when there is something to say: a caller's of the
# same name stayed on the others and passed for it (1-hour cache writes re-price the row in `plan savings`, the model
# review and a journal's replay; an answer past its cap is warned of; a dearer service tier re-prices a ledger file's
# row on `ledger import`; a cap held to a model's maximum output, and a thinking budget lowered with it, say what the
# caller asked for; constraints Claude was sent as descriptions are listed; an answer a content filter blocked says so).
RECORDED_TAGS = (
    CACHE_WRITE_1H_TAG,
    FILTERED_TAG,
    OVER_CAP_TAG,
    SCHEMA_LOOSENED_TAG,
    "service_tier",
    MAX_TOKENS_CLAMPED_TAG,
    THINKING_BUDGET_CLAMPED_TAG,
    SCHEMA_LOOSENED_TAG,
)


def routing_tag_refusal(tags: dict[str, str]) -> str | None:
    """Why a caller's `tags` cannot be taken (the caller names where it got them): one is named as a tag routing, or
    the recorder, writes."""
    taken = next((key for key in tags if key in ROUTING_TAGS), None)
    if taken is not None:
        return (
            f"{taken!r} is a tag Tokenomy writes itself on a routed call's ledger rows (route drift, training "
            "labels and reports count it); send yours under another name"
        )
    recorded = next((key for key in tags if key in RECORDED_TAGS), None)
    if recorded is not None:
        return (
            f"{recorded!r} is a tag Tokenomy writes itself on a ledger row from what the call reported (a row's "
            "1-hour cache writes, or its service tier, re-price it); send yours under another name"
        )
    return None


class Prices(Protocol):
    """What pricing a router needs: the catalog, or the gateway's catalog that also answers unpriced models."""

    def lookup(self, model: str, region: str | None = None) -> PriceEntry: ...


@dataclass(frozen=True)
class Tier:
    """A tier as configured under `tiers:`: its first model answers, the others are its fallbacks."""

    name: str
    models: tuple[str, ...]


@dataclass(frozen=True)
class RoutePlan:
    """The tiers to try, in order. With `validators`, every answer but the last tier's must pass them, else
    the next tier is tried (a cascade escalates). Without, the first tier's answer is the answer: a later tier is
    tried only when every model of the earlier ones refused the request before sending it (an image, and a tier
    declared `inputs: [text]`)."""

    tiers: tuple[Tier, ...]
    validators: dict[str, Any] | None
    decision: Decision


class Router:
    """The interface: `route(request)` → RoutePlan. Subclasses implement `first_tier`; a cascade overrides
    `route`. Built once per route (at gateway start), never per request."""

    kind: ClassVar[str] = ""

    def __init__(self, policy: RoutingPolicy, tiers: dict[str, Tier], order: list[str], cheapest: str) -> None:
        self.policy = policy
        self.tiers = tiers  # every tier the policy may use, by name
        self.order = order  # the policy's tiers, cheapest first (escalation order)
        self.cheapest = cheapest
        # A rule or `default_tier` may name a tier under `tiers:` that the policy's `tiers` does not list: a request
        # may be sent there too, so budgets and the route's provider checks must count it.
        named = [policy.default_tier, *(rule.tier for rule in policy.rules)] if self.kind in ("rules", "hybrid") else []
        self.outside = [name for name in dict.fromkeys(named) if name and name not in order]

    def first_tier(self, request: ChatRequest) -> Decision:
        raise NotImplementedError

    def route(self, request: ChatRequest) -> RoutePlan:
        decision = self.first_tier(request)
        names = [decision.tier]
        validators = self.policy.validators or None
        # The tiers above the chosen one, in escalation order: with validators an answer that fails them goes up;
        # without, a request the chosen tier cannot take at all (an image to a text-only tier) does.
        if decision.tier in self.order:
            names += self.order[self.order.index(decision.tier) + 1 :]
        return RoutePlan(tuple(self._tier(n) for n in names), validators if len(names) > 1 else None, decision)

    def models(self) -> list[str]:
        """Every model a request on this router may reach (for worst-case budget reservations)."""
        return [m for name in (*self.order, *self.outside) for m in self._tier(name).models]

    @property
    def judges(self) -> bool:
        """Whether answers below the last tier are judged by the validators (a cascade, or a policy with
        validators): such an answer reaches the caller only once it has passed them."""
        return self.kind == "cascade" or bool(self.policy.validators)

    def paid_answers(self) -> list[tuple[str, ...]]:
        """The models of each answer a request may pay for (for worst-case budget reservations): with validators
        a request may escalate through every tier, paying one answer on each; without, one tier answers. A tier
        outside the policy's `tiers` that a rule names answers alone, so it joins the first answer's models."""
        if self.judges:
            answers = [self._tier(name).models for name in self.order]
            answers[0] = (*answers[0], *(m for name in self.outside for m in self._tier(name).models))
            return answers
        return [tuple(self.models())]

    def _tier(self, name: str) -> Tier:
        tier = self.tiers.get(name)
        if tier is None or not tier.models:
            raise ConfigError(f"tiers.{name}: no models listed; add e.g. `{name}: [local]` under tiers")
        return tier


class RulesRouter(Router):
    """The first rule that matches picks the tier; none: `default_tier`, else the cheapest tier."""

    kind = "rules"

    def first_tier(self, request: ChatRequest) -> Decision:
        return explain(self.policy, request, self.cheapest)


_MODELS: dict[tuple, Any] = {}


class ClassifierRouter(Router):
    """A trained classifier: P(strong tier needed) at or above the threshold → the last tier, else the first."""

    kind = "classifier"
    label = "the classifier"
    # The router file this policy type takes: its pipeline's `kind` (None: the TF-IDF classifier, which has none).
    # Another kind was taken unsaid and its decisions reported as this one's. A hybrid takes any: its router decides
    # only what no rule did.
    takes: ClassVar[str | None] = None
    checks_kind: ClassVar[bool] = True
    trained_by = "`tokenomy route train` (--router tfidf)"

    def model(self) -> Any:
        """The trained router at `classifier_path`, loaded once per file version (a decision must stay well
        under 5 ms; a retrained file is reloaded)."""
        from tokenomy.routing.classifier import load

        path = self.policy.classifier_path
        if not path:
            raise ConfigError(
                f"routing.policies: a {self.kind} policy needs classifier_path (see `tokenomy route train`)"
            )
        try:
            key = (path, os.stat(path).st_mtime_ns)
        except OSError as exc:
            raise ConfigError(
                f"routing.policies: classifier_path {path!r} cannot be read ({exc}); "
                "train one with `tokenomy route train`"
            ) from exc
        if key not in _MODELS:
            _MODELS[key] = load(path)
        model = _MODELS[key]
        held = getattr(model.pipeline, "kind", None)
        if self.checks_kind and held != self.takes:
            raise ConfigError(
                f"routing.policies: classifier_path {path!r} holds {_router_file(held)}; "
                f"{'an' if self.kind[0] in 'aeiou' else 'a'} {self.kind} policy needs one from {self.trained_by}"
            )
        return model

    def first_tier(self, request: ChatRequest) -> Decision:
        from tokenomy.routing.classifier import strong_probability

        model = self.model()
        threshold = self.policy.threshold if self.policy.threshold is not None else model.threshold
        text = "\n".join(m.text for m in request.messages)
        strong = strong_probability(model, text) >= threshold
        return Decision(
            self.order[-1] if strong else self.order[0],
            self.kind if self.kind in ("embedding", "combined") else "classifier",
            f"{self.label} {self.policy.classifier_path} chose it (threshold {threshold:g})",
        )


class EmbeddingRouter(ClassifierRouter):
    """The embedding router (`route train --router embedding`): a static MiniLM prompt embedding and a linear model
    of the strong model's quality gain; P(strong better) at or above the threshold → the last tier. With
    `validators`, the other prompts' cheap answers are checked and escalated: a hybrid of router and cascade."""

    kind = "embedding"
    label = "the embedding router"
    takes = "embedding"
    trained_by = "`tokenomy route train --router embedding`"


class CombinedRouter(EmbeddingRouter):
    """The combined router (`route train --router combined`): TF-IDF words, the static embedding and difficulty
    cues, with one quality head per model; P(strong better) at or above the threshold → the last tier. With
    `validators`, like the embedding router, the other prompts' cheap answers are checked and escalated."""

    kind = "combined"
    label = "the combined router"
    takes = "combined"
    trained_by = "`tokenomy route train --router combined`"


class HybridRouter(ClassifierRouter):
    """Rules first; when no rule fires, the classifier decides."""

    kind = "hybrid"
    checks_kind = False

    def first_tier(self, request: ChatRequest) -> Decision:
        decision = explain(self.policy, request, self.cheapest)
        if decision.rule is not None:
            return decision
        decision = super().first_tier(request)
        return Decision(decision.tier, decision.rule, "no rule matched; " + decision.reason)


class CascadeRouter(Router):
    """Every tier in order, cheapest first: an answer that fails the validators escalates to the next tier."""

    kind = "cascade"

    def first_tier(self, request: ChatRequest) -> Decision:
        return Decision(
            self.order[0],
            None,
            f"cascade: starts at the cheapest tier, escalates along "
            f"{' -> '.join(self.order)} when the validators reject an answer",
        )

    def route(self, request: ChatRequest) -> RoutePlan:
        tiers = tuple(self._tier(n) for n in self.order)
        # Validators always apply (their defaults reject empty, truncated and hedging answers).
        return RoutePlan(tiers, dict(self.policy.validators), self.first_tier(request))


ROUTERS: dict[str, Callable[..., Router]] = {
    r.kind: r for r in (RulesRouter, ClassifierRouter, EmbeddingRouter, CombinedRouter, HybridRouter, CascadeRouter)
}


def _router_file(held: str | None) -> str:
    """What a router file holds, and the policy types that take it."""
    if held is None:
        return "a TF-IDF classifier, which a `type: classifier` or `type: hybrid` policy takes"
    return f"the {held} router" + (f", which a `type: {held}` policy takes" if held in ROUTERS else "")


def cheapest_tier(names: list[str], tiers: dict[str, Tier], price: Callable[[str], Decimal | None]) -> str:
    """The tier whose first model has the lowest catalog price (input + output per million tokens); ties and
    unpriced models → the first listed."""
    best, best_price = names[0], None
    for name in names:
        models = tiers[name].models if name in tiers else ()
        value = price(models[0]) if models else None
        if value is not None and (best_price is None or value < best_price):
            best, best_price = name, value
    return best


def build_router(config: TokenomyConfig, policy_name: str, catalog: Prices | None = None) -> Router:
    """The router for `routing.policies.<policy_name>` (config validated at load: no per-request checks)."""
    from tokenomy.pricing.catalog import default_catalog
    from tokenomy.providers.registry import resolve_model

    policy = config.routing_policy(policy_name)
    if not config.tiers:
        raise ConfigError(f"routing.policies.{policy_name}: no tiers defined; add `tiers:` (e.g. tier1: [local])")
    catalog = catalog or default_catalog()
    specs = config.model_specs()

    def price(model: str) -> Decimal | None:
        try:
            spec = resolve_model(model, specs)
            entry = catalog.lookup(spec.pricing_model, pricing_region(spec.region))
        except TokenomyError:
            return None
        if getattr(entry, "priced_by", "") == "unpriced" or entry.input is None:
            return None
        return entry.input + (entry.output or 0)

    return make_router(policy, config.tiers, price)


def make_router(
    policy: RoutingPolicy, tiers: dict[str, list[str]], price: Callable[[str], Decimal | None] = lambda model: None
) -> Router:
    """The router for `policy` over `tiers` ({name: models}); `price` ranks tiers for the default tier."""
    if policy.validators.get("python"):  # imported now, at start: not found on a request after a paid answer
        from tokenomy.routing.validators import load_callable

        load_callable(policy.validators["python"])
    by_name = {name: Tier(name, tuple(models)) for name, models in tiers.items()}
    listed = policy.tiers or list(tiers)
    order = policy.tiers or sorted(tiers)
    return ROUTERS[policy.type](policy, by_name, order, cheapest_tier(listed, by_name, price))


__all__ = [
    "ESCALATED_TAG",
    "PASSED_UP_ON_ERROR_TAG",
    "PASSED_UP_TAG",
    "REASON_TAG",
    "REJECTED_TAG",
    "ROUTERS",
    "ROUTING_TAGS",
    "CascadeRouter",
    "ClassifierRouter",
    "CombinedRouter",
    "EmbeddingRouter",
    "HybridRouter",
    "Prices",
    "RoutePlan",
    "Router",
    "RulesRouter",
    "Tier",
    "build_router",
    "cheapest_tier",
    "make_router",
    "routing_tag_refusal",
]
