"""The one call path: request → policy (caps, router's tiers, cache points) → provider (with retries) → cost →
ledger.

The gateway, batch runner, benchmark and CLI all call `Tokenomy`, so a cost is computed in exactly one
place and every attempt is recorded the same way (ledger row + OpenTelemetry span). One attempt loop
(`_run`, and `_arun` for asyncio) serves chat and stream; shared helpers plan the attempts, and `recording`
(which `Tokenomy` inherits) records them.
"""

from __future__ import annotations

import asyncio
import logging
import random
import threading
import time
from collections.abc import AsyncGenerator, Iterator
from contextlib import AbstractContextManager
from dataclasses import replace
from typing import TYPE_CHECKING

from tokenomy.caching.placement import Placement, auto_cache
from tokenomy.caching.tokens import TokenPolicy, apply_token_policy
from tokenomy.call_cost import RUNNING_WAIT_S, CallCost, Running
from tokenomy.call_policy import Attempt, CallPolicy, CallState, Target, TierRun
from tokenomy.errors import ProviderError, TokenomyError
from tokenomy.ids import new_id
from tokenomy.ledger.store import LedgerStore
from tokenomy.ledger.writer import LedgerWriter
from tokenomy.messages import ChatRequest, ChatResponse, StreamChunk
from tokenomy.pricing.catalog import PriceCatalog, default_catalog
from tokenomy.pricing.identifiers import pricing_region
from tokenomy.providers.base import Provider
from tokenomy.providers.http_faults import left_unsent
from tokenomy.providers.refusals import (
    Unsupported,
    inputs_refusal,
    one_hour_cache_refusal,
    raise_refusal,
    server_tools_refusal,
    zero_output_refusal,
)
from tokenomy.providers.registry import ModelSpec, get_provider, resolve_model
from tokenomy.recording import Recorder
from tokenomy.resilience.fallback import AttemptPlan, Step
from tokenomy.resilience.ratelimit import RateLimiter
from tokenomy.resilience.retry import RetryPolicy
from tokenomy.routing.router import ESCALATED_TAG, PASSED_UP_ON_ERROR_TAG, PASSED_UP_TAG
from tokenomy.routing.validators import Rejection, rejection
from tokenomy.telemetry import otel
from tokenomy.token_estimate import weighted_length

if TYPE_CHECKING:
    from opentelemetry.context import Context
    from opentelemetry.trace import Span

log = logging.getLogger(__name__)

# The errors a cascade's tier may end with and still pass the request up: the tier could not answer now (not the
# request's fault), so a stronger tier may. A client error is the request's own (or the tier's configuration), but
# for a prompt too long for the tier's context window, which passes up from any tier (`_pass_on`).
UNAVAILABLE_KINDS = ("throttled", "server_error", "timeout")


class Tokenomy(Recorder):
    """Calls models and records every attempt. Use as a context manager so the ledger is flushed."""

    def __init__(
        self,
        ledger: LedgerStore | LedgerWriter | str | None = None,
        models: dict[str, ModelSpec] | None = None,
        catalog: PriceCatalog | None = None,
        store_prompts: bool = False,
        record: bool = True,
        policy: CallPolicy | None = None,
        seed: int | None = None,
    ) -> None:
        self.catalog = catalog or default_catalog()
        self._cache_unpriced_warned = set()
        self.models = models or {}
        self.store_prompts = store_prompts
        self.policy = policy or CallPolicy()
        self._rng = random.Random(seed)
        self._local = threading.local()  # last_placements is per thread: the client is shared by threads
        self.running = Running()  # attempts cancelled callers left running in worker threads, until recorded
        if not record:
            self.writer = None
        elif isinstance(ledger, LedgerWriter):
            self.writer = ledger
        else:
            self.writer = LedgerWriter(ledger)
        otel.configure_from_env()

    @property
    def last_placements(self) -> list[Placement]:
        """Cache points placed on this thread's last successful call (for demos and tests)."""
        return getattr(self._local, "placements", [])

    # -- planning -------------------------------------------------------------------------------
    def spec_for(self, model: str) -> ModelSpec:
        return resolve_model(model, self.models)

    def provider_for(self, spec: ModelSpec) -> Provider:
        return get_provider(spec)

    def _begin(
        self, request: ChatRequest, policy: CallPolicy | None, mode: str, stream: bool, cost: CallCost | None = None
    ) -> CallState:
        """Plan the call: caps applied once, then the router's tiers, each with its own chain and retries."""
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
            request = call.request.replaced(model=spec.model, region=region, meta=meta)
            cleared = call.request.cleared
            if cleared is not None and cleared[0] is spec and region == (call.request.region or spec.region):
                # What was cleared for this model, sent as it was cleared: its id, meta and the region the check
                # priced a 1-hour cache point in are all the copy changes (a cache point placed below makes another).
                request.cleared = cleared
            placements: list[Placement] = []
            provider = self.provider_for(spec)
            if call.policy.caching and provider.carries_cache_points(request):
                request, placements = auto_cache(request, spec.pricing_model, self.catalog, pricing_region(region))
            tier.targets[step.target] = Target(spec, request, provider, placements)
        return tier.targets[step.target]

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
    def _span_for(att: Attempt, stream: bool, parent: Context | None) -> AbstractContextManager[Span]:
        """The attempt's span, a child of the call's; a stream's is not made current (a generator suspended at `yield`
        must not leave it in the caller's context)."""
        target = att.target
        return otel.attempt_span(
            target.call,
            target.provider.name,
            att.number,
            current=not stream,
            parent=parent,
            server=target.provider.server_for(target.call),
        )

    def _take(self, call: CallState, att: Attempt, chunk: StreamChunk, held: list[StreamChunk]) -> bool:
        """Account for one chunk of an attempt; True when the caller gets it now (a validated tier's are held)."""
        if chunk.response is not None:
            # Judged before it is recorded, so a rejected answer's row says why (a validator that raised on it is a
            # bug of ours, raised once the paid answer's row is written).
            judged: Rejection | None = None
            try:
                judged = self._judge(call, att, chunk.response)
            finally:
                att.response = self._finish(call, att, chunk.response, judged)
            att.rejection = judged
        att.deltas += chunk.has_content  # text, tool-call and reasoning pieces alike
        if chunk.start_usage is not None:
            att.reported = chunk.start_usage
        call_part = chunk.tool_call.arguments if chunk.tool_call is not None else ""
        att.chars += weighted_length(chunk.delta) + weighted_length(chunk.reasoning) + weighted_length(call_part)
        if att.tier.validated:
            held.append(chunk)
            return False
        att.yielded = att.yielded or chunk.has_content
        return True

    def _failed(self, call: CallState, att: Attempt, exc: ProviderError, held: list[StreamChunk]) -> Step | None:
        """Record a failed attempt; the next step of its tier, or None when the error is final."""
        self._fail(call, att, exc)
        held.clear()
        # The caller already has part of an answer: a retry would duplicate it.
        return None if att.yielded else att.tier.plan.after(exc)

    def _abandoned(self, call: CallState, att: Attempt, unsent: bool = False) -> None:
        # A stream closed part-way, or a call cancelled in flight (an asyncio timeout, a gateway's graceful shutdown):
        # the request went out, so the provider bills its prompt at least, though no answer will be read. A call
        # running on in a worker thread is recorded when it ends (_leave_running); one still queued for a thread, or
        # cancelled before its provider sent a byte (`unsent`: the gateway's pool waiting for a connection), sent
        # nothing and cost nothing: no row, and its rate-limit allowance is given back.
        if att.response is None and att.thread is None and not unsent:
            self._abandon(call, att)
            return
        if att.response is None:
            # The span ends now, with its caller: it says the attempt was cancelled (an answer a worker thread still
            # waits for is metered when it comes, its duration counted here, once).
            error_type = "StreamAbandoned" if call.stream else "CallCancelled"  # as _abandon names them
            otel.record_failure(
                att.span, att.target.call, att.target.provider.name, error_type, time.perf_counter() - att.started
            )
        if att.thread == "queued" or unsent:
            self._no_row(att)
            if call.policy.limiter:
                call.policy.limiter.release(att.target.estimate)

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
        """Refuse, before sending, a block the model's config says it cannot read (`inputs: [text]`), a server tool
        its API does not run, or a 1-hour cache point it has no price for: the gateway checks a route's own model up
        front, but a fallback or a routed tier is known only here. Nothing to do for a request its checks cleared
        (`ChatRequest.cleared`), which are these and more."""
        cleared = target.call.cleared
        if cleared is not None and cleared[0] is target.spec and cleared[1] is target.provider:
            return
        refused = inputs_refusal(target.spec.inputs, target.call)
        if refused is None and target.call.tools and not target.provider.accepts_server_tools:
            refused = server_tools_refusal(target.call)  # a fallback or routed tier on an API that runs none
        if refused is None and not target.provider.accepts_zero_output:
            refused = zero_output_refusal(target.call)  # max_tokens 0 to a fallback with no zero-token call
        raise_refusal(target.call, target.provider.name, refused or self.cache_refusal(target.spec, target.call))

    def cache_refusal(self, spec: ModelSpec, request: ChatRequest) -> Unsupported | None:
        """A 1-hour cache point to a model whose catalog price has no 1-hour cache-write price: its writes could not
        be recorded at what they cost, so it is refused, never sent as a 5-minute one; so is one to a provider with
        no 1-hour cache (`Provider.accepts_1h_cache`). A model the catalog does not know at all is not refused here
        (any of its calls is recorded unpriced)."""
        if request.one_hour_cache_point() is None:
            return None
        provider = self.provider_for(spec)
        if not provider.accepts_1h_cache:  # named for what it is, before any price is looked at
            return one_hour_cache_refusal(request, provider.no_one_hour_cache(request))
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
            unavailable = tier.validated and exc.refused is None and exc.kind in UNAVAILABLE_KINDS and in_time
            too_long = exc.refused is None and exc.context_window and in_time
            if exc.refused is not None or unavailable or too_long:
                call.attempts = att.number  # the next tier's attempts are numbered on from this one's
                call.failed_below = unavailable or too_long  # the next tier's rows say which (see _target)
                return True
        if exc.refused is not None and call.asked is not None and call.asked is not call.request:
            # Turns may have been cut: the refused block's indices are those of what was sent. The same check on
            # the request as asked places it where the caller put it (None if only the policy's change made it).
            asked = replace(call.asked, model=att.target.call.model, region=att.target.call.region)
            spec, provider = att.target.spec, att.target.provider
            found = inputs_refusal(spec.inputs, asked) or provider.refusal(asked) or self.cache_refusal(spec, asked)
            exc.refused = None if found is None else replace(found, by=exc.refused.by)
        return False

    # -- the attempt loop, written once for sync and once for async -------------------------------
    def _run(self, request: ChatRequest, policy: CallPolicy | None, mode: str, stream: bool) -> Iterator[StreamChunk]:
        """Every attempt of one call: tiers in order; within a tier, retries then fallbacks.

        Yields the caller's chunks (a non-streamed call yields one chunk carrying the response). A validated
        tier's chunks are held until its answer passes, then released; a failing answer escalates.
        """
        call = self._begin(request, policy, mode, stream)
        with otel.call_span(call.request.model, call.request_id, _cancelled(stream)) as parent:
            for tier in call.tiers:
                held: list[StreamChunk] = []
                step: Step | None = tier.plan.first()
                att: Attempt | None = None
                passed_on = False  # the tier refused the request unsent, or a cascade's tier was down: the next gets it
                while step is not None:
                    if step.delay_s:
                        time.sleep(step.delay_s)
                    att = self._start(call, tier, step)
                    if call.policy.limiter and not call.policy.limiter.acquire(
                        att.target.estimate, self._left(call, tier)
                    ):
                        raise self._over_quota(call, att.target)
                    att.started = time.perf_counter()
                    self._in_flight(call, att)
                    with self._span_for(att, stream, parent) as att.span:
                        try:
                            provider = att.target.provider
                            self._check_inputs(att.target)
                            chunks = (
                                provider.stream(att.target.call)
                                if stream
                                else iter([StreamChunk(response=provider.chat(att.target.call))])
                            )
                            for chunk in chunks:
                                if self._take(call, att, chunk, held):
                                    yield chunk
                            break
                        except (GeneratorExit, KeyboardInterrupt, SystemExit):
                            self._abandoned(call, att)  # SystemExit: the ledger's SIGTERM handler
                            raise
                        except ProviderError as exc:
                            step = self._failed(call, att, exc, held)
                            if step is None and not self._pass_on(call, tier, att, exc):
                                exc.call_cost_usd = call.spent  # the call failed, yet what it paid for stays paid
                                raise
                            passed_on = step is None
                        except Exception as exc:  # a bug of ours mid-attempt: the attempt is in the ledger, then raised
                            self._crash(call, att, exc)
                            raise
                if passed_on:
                    continue
                if self._accepted(call, att):
                    yield from held
                    return

    async def _achat(self, call: CallState, att: Attempt) -> ChatResponse:
        """A non-streamed attempt's answer. A provider call run in a worker thread (the SDK-based providers) cannot be
        stopped by a cancelled caller: it is left running, and recorded when it ends."""
        provider, request = att.target.provider, att.target.call
        running = provider.chat_thread(request)
        if running is None:
            return await provider.achat(request)
        try:
            return await asyncio.wrap_future(running)
        except asyncio.CancelledError:
            if running.cancel():  # still queued for a thread: nothing was sent
                att.thread = "queued"
            else:
                self._leave_running(call, att, running)
            raise

    async def _arun(
        self, request: ChatRequest, policy: CallPolicy | None, mode: str, stream: bool, cost: CallCost | None = None
    ) -> AsyncGenerator[StreamChunk, None]:
        """Async `_run`: waits with asyncio.sleep and the provider's async path; a retry after attempts billed without
        an answer is made only if the cost's guard covers them (`CallCost.guard`: the gateway's budget)."""
        call = self._begin(request, policy, mode, stream, cost)
        with otel.call_span(call.request.model, call.request_id, _cancelled(stream)) as parent:
            failed: ProviderError | None = None  # the last attempt's error
            for tier in call.tiers:
                held: list[StreamChunk] = []
                step: Step | None = tier.plan.first()
                att: Attempt | None = None
                passed_on = False  # the tier refused the request unsent, or a cascade's tier was down: the next gets it
                while step is not None:
                    if failed is not None and not await call.cost.may_try_again():
                        raise failed.not_retried_for_budget(call.spent)
                    if step.delay_s:
                        await asyncio.sleep(step.delay_s)
                    att = self._start(call, tier, step)
                    if call.policy.limiter and not await call.policy.limiter.acquire_async(
                        att.target.estimate, self._left(call, tier)
                    ):
                        raise self._over_quota(call, att.target)
                    att.started = time.perf_counter()
                    self._in_flight(call, att)
                    with self._span_for(att, stream, parent) as att.span:
                        try:
                            provider = att.target.provider
                            self._check_inputs(att.target)
                            if stream:
                                async for chunk in provider.astream(att.target.call):
                                    if self._take(call, att, chunk, held):
                                        yield chunk
                            else:
                                chunk = StreamChunk(response=await self._achat(call, att))
                                if self._take(call, att, chunk, held):
                                    yield chunk
                            break
                        except (GeneratorExit, asyncio.CancelledError) as exc:
                            self._abandoned(call, att, unsent=left_unsent(exc))
                            raise
                        except ProviderError as exc:
                            failed = exc
                            step = self._failed(call, att, exc, held)
                            if step is None and not self._pass_on(call, tier, att, exc):
                                exc.call_cost_usd = call.spent  # the call failed, yet what it paid for stays paid
                                raise
                            passed_on = step is None
                        except Exception as exc:  # a bug of ours mid-attempt: the attempt is in the ledger, then raised
                            self._crash(call, att, exc)
                            raise
                if passed_on:
                    continue
                if self._accepted(call, att):
                    for chunk in held:
                        yield chunk
                    return

    # -- public API -----------------------------------------------------------------------------
    def chat(self, request: ChatRequest, mode: str = "on_demand", policy: CallPolicy | None = None) -> ChatResponse:
        """Send one request under `policy`; every attempt is recorded, the last error re-raised."""
        return _answer(list(self._run(request, policy, mode, stream=False)))

    def stream(
        self, request: ChatRequest, mode: str = "on_demand", policy: CallPolicy | None = None
    ) -> Iterator[StreamChunk]:
        """Stream deltas; retries happen only before the first delta reaches the caller. The final chunk is
        priced. A validated (cascade) tier's answer is held until it passes, then streamed."""
        return self._run(request, policy, mode, stream=True)

    async def achat(
        self,
        request: ChatRequest,
        mode: str = "on_demand",
        policy: CallPolicy | None = None,
        cost: CallCost | None = None,
    ) -> ChatResponse:
        """Async `chat`. `cost` follows what the call's attempts cost, however it ends (see `call_cost`)."""
        return _answer([chunk async for chunk in self._arun(request, policy, mode, False, cost)])

    def astream(
        self,
        request: ChatRequest,
        mode: str = "on_demand",
        policy: CallPolicy | None = None,
        cost: CallCost | None = None,
    ) -> AsyncGenerator[StreamChunk, None]:
        """Async `stream` (use with `async for`); `cost` as for `achat`."""
        return self._arun(request, policy, mode, True, cost)

    def flush(self) -> None:
        """Write buffered ledger rows now."""
        if self.writer is not None:
            self.writer.flush()

    def close(self, wait_s: float = RUNNING_WAIT_S) -> None:
        """Wait (at most `wait_s`) for attempts cancelled callers left running, then flush and stop the ledger
        writer."""
        if len(self.running) and not self.running.wait(wait_s):
            log.warning(
                "%d provider calls whose callers were cancelled are still running at close; each is written to the "
                "ledger when it ends, if this process still runs then",
                len(self.running),
            )
        if self.writer is not None:
            self.writer.close()

    def __enter__(self) -> Tokenomy:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def _cancelled(stream: bool) -> str:
    """The error type of a call its caller stopped waiting for, as its attempt's row names it (`_abandon`)."""
    return "StreamAbandoned" if stream else "CallCancelled"


def _answer(chunks: list[StreamChunk]) -> ChatResponse:
    """The response a finished run delivered (its last chunk carries it)."""
    if not chunks or chunks[-1].response is None:
        raise AssertionError("unreachable: a run ends with a response or an error")
    return chunks[-1].response


__all__ = ["CallPolicy", "RateLimiter", "RetryPolicy", "TokenPolicy", "Tokenomy", "TokenomyError"]
