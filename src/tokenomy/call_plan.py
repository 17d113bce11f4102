"""A call's plan, and what the attempt loop asks of it between attempts.

Planning: the token caps applied once, the router's tiers each expanded into a chain with its retries
(`AttemptPlan`), and each chain entry resolved on first use into the request it sends (its region, tier tags,
cache points). Between attempts: whether a model can take the request before anything is sent (`_check_inputs`,
`cache_refusal`), whether a validated tier's answer ends the call (`_accepted`) and whether a failed tier hands
the request to the next one up (`_pass_on`). `client.Tokenomy` inherits it and runs the attempts.
"""

from __future__ import annotations

import random
from dataclasses import replace

from tokenomy.caching.placement import Placement, auto_cache, estimate_input_tokens
from tokenomy.caching.tokens import apply_token_policy
from tokenomy.call_cost import CallCost
from tokenomy.call_policy import Attempt, CallPolicy, CallState, Target, TierRun
from tokenomy.chat_response import ChatResponse
from tokenomy.errors import ProviderError, TokenomyError
from tokenomy.ids import new_id
from tokenomy.ledger.events import MAX_TOKENS_CLAMPED_TAG, SCHEMA_LOOSENED_TAG, THINKING_BUDGET_CLAMPED_TAG
from tokenomy.messages import ChatRequest, RequestMeta
from tokenomy.pricing.catalog import PriceCatalog
from tokenomy.pricing.identifiers import pricing_region
from tokenomy.providers.base import Provider
from tokenomy.providers.block_refusals import inputs_refusal, tool_pairs_error
from tokenomy.providers.claude_schema import loosened_note, takes_claude_schema
from tokenomy.providers.claude_thinking_rules import held_budget_refusal, held_thinking_budget
from tokenomy.providers.refusals import Unsupported, cache_points_refusal, one_hour_cache_refusal, raise_refusal
from tokenomy.providers.registry import ModelSpec, get_provider, resolve_model
from tokenomy.request_options import Reasoning
from tokenomy.request_views import one_hour_cache_point
from tokenomy.resilience.fallback import AttemptPlan, Step
from tokenomy.routing.router import ESCALATED_TAG, PASSED_UP_ON_ERROR_TAG, PASSED_UP_TAG
from tokenomy.routing.validators import Rejection, rejection

# The errors a cascade's tier may end with and still pass the request up: the tier could not answer now (not the
# request's fault), so a stronger tier may. A client error is the request's own (or the tier's configuration), but
# for a prompt too long for the tier's context window, which passes up from any tier (`_pass_on`).
UNAVAILABLE_KINDS = ("throttled", "server_error", "timeout")


class CallPlanner:
    """The planning half of `Tokenomy`: what it needs is set by `Tokenomy.__init__`."""

    catalog: PriceCatalog
    models: dict[str, ModelSpec]
    policy: CallPolicy
    _rng: random.Random

    def spec_for(self, model: str) -> ModelSpec:
        return resolve_model(model, self.models)

    def provider_for(self, spec: ModelSpec) -> Provider:
        return get_provider(spec)

    def _begin(
        self, request: ChatRequest, policy: CallPolicy | None, mode: str, stream: bool, cost: CallCost | None = None
    ) -> CallState:
        """Plan the call: caps applied once, then the router's tiers, each with its own chain and retries. A tool
        result answering no call, or a call left unanswered, is refused first: every provider's API refuses it, so
        no attempt (nor fallback) is made, and no row written (the gateway asked already: `tools_paired`)."""
        if not request.tools_paired:
            unpaired = tool_pairs_error(request)
            if unpaired is not None:
                raise unpaired
        policy = policy or self.policy
        asked = request
        request, _ = apply_token_policy(request, policy.tokens)
        if policy.router is None:
            chains: list[tuple[str | None, tuple[str, ...]]] = [(None, (request.model,))]
            validators = None
        else:
            route = policy.router.route(request)
            chains = [(tier.name, tier.models) for tier in route.tiers]
            validators = route.validators
        tiers = []
        for index, (name, models) in enumerate(chains):
            # A tier's own models come first, then the route's fallbacks (each model tried once per chain).
            chain = tuple(dict.fromkeys((*models, *policy.fallback)))
            # Planned now, so every tier's deadline counts from the start of the call.
            tiers.append(
                TierRun(
                    index,
                    name,
                    AttemptPlan(chain, policy.retry, self._rng),
                    validated=validators is not None and index < len(chains) - 1,
                )
            )
        request_id = request.meta.request_id or new_id()
        return CallState(
            request, policy, tiers, validators, request_id, mode, stream, asked=asked, cost=cost or CallCost()
        )

    def _target(self, call: CallState, tier: TierRun, step: Step) -> Target:
        """Resolve a chain entry on first use (a fallback is never resolved unless it is needed)."""
        if step.target not in tier.targets:
            spec = self.spec_for(tier.plan.chain[step.target])
            # The caller's region wins for the primary model; a fallback names its own (region fallback).
            region = (call.request.region or spec.region) if step.target == 0 else (spec.region or call.request.region)
            meta = call.request.meta
            if tier.name is not None:
                # An escalation is numbered by the answers rejected so far ("1": the request's first, which drift
                # and the training labels count), not by the tier's place: a tier passed up below is no escalation.
                if call.escalated:
                    tag, number = ESCALATED_TAG, call.escalations
                else:  # reached because the tier below refused the request unsent, or failed (see _pass_on)
                    tag, number = (PASSED_UP_ON_ERROR_TAG if call.failed_below else PASSED_UP_TAG), tier.index
                tags = {**meta.tags, tag: str(number)} if tier.index else meta.tags
                meta = replace(meta, tier=tier.name, tags=tags)
            cap, reasoning, refused = call.request.max_tokens, call.request.reasoning, None
            held = self.held_cap(call.request, tier.plan.chain[step.target], spec, region)
            provider = self.provider_for(spec)
            if held is not None:
                meta, reasoning, refused = self._held_to(call, spec.model, held, meta)
                cap = held
            elif cap is None:  # the cap its provider requires (Claude's), made explicit: the rate limiter reserves it
                cap = self.uncapped_cap(call.request, spec, region, provider)
            loosened = loosened_note(call.request) if takes_claude_schema(spec.provider, spec.model) else None
            if loosened is not None:  # not silent: the row lists the constraints Claude was sent as descriptions
                meta = replace(meta, tags={**meta.tags, SCHEMA_LOOSENED_TAG: loosened})
            request = call.request.replaced(
                model=spec.model, region=region, meta=meta, max_tokens=cap, reasoning=reasoning
            )
            cleared = call.request.cleared
            # A cap held or filled in is checked anew (a thinking budget must be below it)
            same = cap == call.request.max_tokens and region == (call.request.region or spec.region)
            if same and cleared is not None and cleared[0] is spec:
                # What was cleared for this model, sent as it was cleared: its id, meta and the region the check
                # priced a 1-hour cache point in are all the copy changes (a cache point placed below makes another).
                request.cleared = cleared
            placements: list[Placement] = []
            if call.policy.caching and provider.carries_cache_points(request):
                request, placements = auto_cache(request, spec.pricing_model, self.catalog, pricing_region(region))
            tier.targets[step.target] = Target(spec, request, provider, placements, refused)
        return tier.targets[step.target]

    @staticmethod
    def _held_to(
        call: CallState, model: str, held: int, meta: RequestMeta
    ) -> tuple[RequestMeta, Reasoning | None, ProviderError | None]:
        """The meta, thinking and refusal of an attempt of `model` whose cap is held to `held`. Not silent: the row
        says the cap the caller asked for (or the route's, if none). Claude takes a thinking budget only below the
        cap: one the held cap leaves no room for is lowered with it (the row says the caller's), or the model is
        refused before the call when none fits (`held_thinking_budget`)."""
        request, reasoning = call.request, call.request.reasoning
        asked = (call.asked or request).max_tokens
        asked = request.max_tokens if asked is None else asked
        tags = {**meta.tags, MAX_TOKENS_CLAMPED_TAG: str(asked)}
        budget = held_thinking_budget(request, model, held)
        if budget is not None and budget >= held:
            return replace(meta, tags=tags), reasoning, held_budget_refusal(request, model, held, asked or held)
        if budget is not None and reasoning is not None:
            tags[THINKING_BUDGET_CLAMPED_TAG] = str(reasoning.budget_tokens)
            reasoning = replace(reasoning, budget_tokens=budget)
        return replace(meta, tags=tags), reasoning, None

    def held_cap(self, request: ChatRequest, name: str, spec: ModelSpec, region: str | None) -> int | None:
        """The output cap chain model `name` is sent, when below the request's own: the model's maximum output in the
        catalog, for a model the caller did not name (a fallback, a routed tier, a route's model reached by the
        route's name). That caller could not know which model would answer, and a cap above the maximum is the
        provider's 400 (Claude Code's 32,000 to a fallback on Claude 3 Haiku's 4,096). None: the request's cap stands
        (none set, within the maximum, the maximum not known, a stand-in priced as another model, whose limits are
        not that model's, or a model the caller named itself, whose provider's answer is the authority)."""
        cap = request.max_tokens
        if cap is None or spec.price_as or name == (request.meta.route or request.model):
            return None
        try:
            most = self.catalog.lookup(spec.model, pricing_region(region)).max_output_tokens
        except TokenomyError:
            return None
        return most if most is not None and cap > most else None

    def uncapped_cap(
        self, request: ChatRequest, spec: ModelSpec, region: str | None, provider: Provider, prompt: int | None = None
    ) -> int | None:
        """The output cap a request that sets none is sent on `spec`'s model: its provider's (`Provider.default_cap`:
        Claude's Messages API requires one, others send none), given the model's maximum output in the catalog, no
        more than its context window leaves after the prompt (`prompt` tokens, else estimated), since the caller's own
        API lets the model write that much (and Claude before Sonnet 4.5 refuses a prompt and cap over its window).
        The maximum is not known for a model the catalog lacks or a stand-in priced as another model (whose limits
        are not that model's, as for `held_cap`). A budget reserves the call at this same figure (gateway.state)."""
        if provider.default_cap(request) is None:  # sends no cap: no catalog lookup, no estimate on this path
            return None
        most = None
        if not spec.price_as:
            try:
                entry = self.catalog.lookup(spec.model, pricing_region(region))
            except TokenomyError:
                entry = None
            if entry is not None:
                most = entry.output_within(estimate_input_tokens(request) if prompt is None else prompt)
        return provider.default_cap(request, most)

    @staticmethod
    def _left(call: CallState, tier: TierRun) -> float:
        """Seconds left before the call's deadline: the rate limiter may not wait longer."""
        return max(0.0, call.policy.retry.deadline_s - tier.plan.elapsed_s)

    @staticmethod
    def _over_quota(call: CallState, target: Target) -> ProviderError:
        # Not a provider attempt (nothing was sent), so no ledger row: the caller sees a throttle, with the wait
        # until the route's limiter has room (the gateway's Retry-After: without it the SDKs retry at once, and
        # are refused again).
        assert call.policy.limiter is not None
        wait = call.policy.limiter.wait_s(target.estimate)
        exc = ProviderError(
            f"client-side rate limit: no request slot for {call.request.model!r} within the "
            f"{call.policy.retry.deadline_s:g} s deadline (the next in {wait:.1f} s); raise the route's rate_limit "
            "or deadline_s",
            kind="throttled",
            retry_after=wait,
        )
        exc.call_cost_usd = call.spent  # an earlier tier's answer (a cascade's) was paid for
        return exc

    def _start(self, call: CallState, tier: TierRun, step: Step) -> Attempt:
        return Attempt(tier, step, self._target(call, tier, step), call.attempts + step.attempt)

    @staticmethod
    def _judge(call: CallState, att: Attempt, response: ChatResponse) -> Rejection | None:
        """Why a validated tier's answer fails the route's validators; None when it passes or is not validated."""
        if not att.tier.validated:
            return None
        return rejection(response, call.request, call.validators or {})

    def _accepted(self, call: CallState, att: Attempt | None) -> bool:
        """After a tier answered: whether its answer ends the call (an unvalidated tier's always does). A rejected
        answer that came once the call's deadline had passed ends it with a timeout: the deadline bounds the whole
        call (an escalation would overrun it by a whole attempt), and the answer failed the checks that stand between
        the caller and a bad one, so it is not returned either."""
        if att is None or att.response is None or not att.tier.validated:
            return True
        call.attempts = att.number
        call.escalated = att.rejection is not None
        call.escalations += call.escalated
        if att.rejection is not None and self._left(call, att.tier) <= 0:
            deadline = call.policy.retry.deadline_s
            exc = ProviderError(
                f"route {call.request.meta.route or call.request.model!r}: its deadline_s {deadline:g} s had passed "
                f"({att.tier.plan.elapsed_s:.1f} s) when the answer of tier {att.tier.name!r} was rejected by the "
                f"cascade's validators ({att.rejection.said(False)}), so no stronger tier was tried; raise the route's "
                "retry deadline_s to leave time for an escalation",
                "timeout",
                retryable=False,
            )
            exc.call_cost_usd = call.spent  # the rejected answer was paid for
            raise exc
        return not call.escalated

    def _check_inputs(self, target: Target) -> None:
        """Refuse, before sending, a block the model's config says it cannot read (`inputs: [text]`), what its
        provider cannot send (`Provider.refusal`: a message of nothing but empty text to Claude or Converse, a server
        tool its API does not run, max_tokens 0 to an API with no zero-token call, ...), a 1-hour cache point it has
        no price for, or an option its API's mapping has no place for (`Provider.mapping_refusal`: Claude's unsigned
        reasoning, Converse's `none` tool choice with tool calls, ...): the gateway checks a route's own models up
        front, but a library caller's and a routed tier are known only here, and the API (or the mapping) would
        refuse them only once the provider is called, ending the call with no fallback tried. Nothing to do for a
        request its checks cleared (`ChatRequest.cleared`), which are these and more."""
        call, spec, provider = target.call, target.spec, target.provider
        if target.refused is not None:
            raise target.refused
        cleared = call.cleared
        if cleared is not None and cleared[0] is spec and cleared[1] is provider:
            return
        # `extra` is asked without: the caller's own API fields, which the Claude mapping carries as sent (and checks:
        # `mapping_refusal`) but Anthropic's `refusal` would refuse as another API's; the providers that refuse
        # those check them when called (`Provider.check`), as the gateway leaves them to.
        checked = replace(call, extra={}) if call.extra else call
        refused = inputs_refusal(spec.inputs, checked) or provider.refusal(checked)
        raise_refusal(call, provider.name, refused or self.cache_refusal(spec, call))
        unmapped = provider.mapping_refusal(call, call.model)
        if unmapped is not None:
            raise unmapped  # unsent (its `param`): the attempt plan moves on to a model that takes the request
        if checked is call:
            call.cleared = (spec, provider)  # every check passed: a retry, and the provider's `check`, skip them

    def cache_refusal(self, spec: ModelSpec, request: ChatRequest) -> Unsupported | None:
        """The cache checks that read the request's `extra` (`Provider.refusal` is asked without it): a cache point
        past the number the model takes, counting an Anthropic caller's top-level `cache_control` (a pass-through
        field); and a 1-hour cache point to a model whose catalog price has no 1-hour cache-write price: its writes
        could not be recorded at what they cost, so it is refused, never sent as a 5-minute one; so is one to a
        provider with no 1-hour cache (`Provider.one_hour_refusal`). A model the catalog does not know at all is not
        refused here (any of its calls is recorded unpriced)."""
        if isinstance(request.extra.get("cache_control"), dict):  # the other points `Provider.refusal` counted
            limit = self.provider_for(spec).cache_point_limit(request)
            crowded = None if limit is None else cache_points_refusal(request, limit)
            if crowded is not None:
                return crowded
        if one_hour_cache_point(request) is None:
            return None
        refused = self.provider_for(spec).one_hour_refusal(request)  # named for what it is, before any price
        if refused is not None:
            return refused
        region = request.region or spec.region
        try:
            entry = self.catalog.lookup(spec.pricing_model, pricing_region(region))
        except TokenomyError:
            return None
        if entry.cache_write_1h is not None:
            return None
        return one_hour_cache_refusal(
            request,
            f"{entry.model} in {entry.region} has no 1-hour cache-write price in the catalog (Bedrock caches an hour "
            "for Claude 4.5 and later; a price file can add cache_write_1h)",
        )

    def _pass_on(self, call: CallState, tier: TierRun, att: Attempt, exc: ProviderError) -> bool:
        """Hand the request to the next tier (a cascade's stronger one, or a router's next tier up) when every
        model of this one refused it before any call, rather than fail the call: nothing was sent, so nothing was
        paid. A validated (cascade) tier is passed up too when it ended unavailable (throttled, a server error, a
        timeout, after its retries and fallbacks): the cascade is there for the cheapest tier that answers well, and
        a tier that cannot answer now must not fail a request a stronger one can take. So is any tier (whatever the
        router) whose models' context windows the prompt exceeds: the next tier's models may have larger ones. Another
        error the request itself caused (a 4xx) is not: the next tier would refuse it too, and be paid for nothing.
        Whether it did; when not, a refusal that ends the call is placed in the caller's request."""
        if tier is not call.tiers[-1]:
            # Not once the call's deadline has passed: it bounds the whole call, and a retry would not be made then.
            in_time = self._left(call, tier) > 0
            unavailable = tier.validated and not exc.unsent and exc.kind in UNAVAILABLE_KINDS and in_time
            too_long = not exc.unsent and exc.context_window and in_time
            if exc.unsent or unavailable or too_long:
                call.attempts = att.number  # the next tier's attempts are numbered on from this one's
                call.failed_below = unavailable or too_long  # the next tier's rows say which (see _target)
                return True
        if exc.unsent and call.asked is not None and call.asked is not call.request:
            self._place_as_asked(call.asked, att.target, exc)
        return False

    def _place_as_asked(self, asked: ChatRequest, target: Target, exc: ProviderError) -> None:
        """Name a refusal that ends the call where the caller put what it refuses. Turns may have been cut: the
        refused block's indices are those of what was sent. The same check of the request as asked places it in the
        caller's request: a block the model cannot take (`refused`: None if only the policy's change made it), or a
        field its mapping has no place for (`param`: left as sent then). The message says the same place: a library
        caller reads it as raised (the gateway's ingresses name `refused` and `param` in their caller's terms)."""
        asked = replace(asked, model=target.call.model, region=target.call.region)
        spec, provider = target.spec, target.provider
        if exc.refused is not None:
            found = inputs_refusal(spec.inputs, asked) or provider.refusal(asked) or self.cache_refusal(spec, asked)
            exc.refused = None if found is None else replace(found, by=exc.refused.by)
            if exc.refused is not None:
                exc.args = (exc.refused.error_text(exc.refused.where),)
            return
        placed = provider.mapping_refusal(asked, asked.model)
        if placed is not None:
            exc.args, exc.param, exc.also = placed.args, placed.param, placed.also
