"""The one call path: request → policy (caps, cache points) → provider (with retries) → cost → ledger.

The gateway, batch runner, benchmark and router all call `Tokenomy`, so a cost is computed in
exactly one place and every attempt is recorded the same way (ledger row + OpenTelemetry span).
"""

from __future__ import annotations

import asyncio
import json
import random
import threading
import time
import uuid
from dataclasses import asdict, dataclass, field, replace
from typing import TYPE_CHECKING, AsyncIterator, Iterator

from tokenomy.caching.placement import Placement, auto_cache, estimate_tokens
from tokenomy.caching.tokens import TokenPolicy, apply_token_policy
from tokenomy.errors import ProviderError, TokenomyError
from tokenomy.ledger.events import UsageEvent, event_from_response, prompt_fingerprint, record_priced_as, utcnow
from tokenomy.ledger.store import LedgerStore
from tokenomy.ledger.writer import LedgerWriter
from tokenomy.messages import ChatRequest, ChatResponse, StreamChunk, Usage
from tokenomy.pricing.catalog import PriceCatalog, default_catalog
from tokenomy.pricing.cost import compute_cost
from tokenomy.providers.base import Provider
from tokenomy.providers.registry import ModelSpec, get_provider, resolve_model
from tokenomy.resilience.fallback import AttemptPlan, Step
from tokenomy.resilience.ratelimit import RateLimiter
from tokenomy.resilience.retry import RetryPolicy
from tokenomy.telemetry import otel

if TYPE_CHECKING:
    from tokenomy.config import RouteConfig


@dataclass(frozen=True)
class CallPolicy:
    """What happens around a call: automatic cache points, token caps, retries, fallbacks, rate limit."""

    caching: bool = True
    tokens: TokenPolicy = field(default_factory=TokenPolicy)
    retry: RetryPolicy = field(default_factory=RetryPolicy)
    fallback: tuple[str, ...] = ()
    limiter: RateLimiter | None = None

    @classmethod
    def from_route(cls, route: "RouteConfig", limiter: RateLimiter | None = None) -> "CallPolicy":
        """Build the policy a config route asks for (build it once per route: it owns the route's token bucket)."""
        if limiter is None and route.rate_limit is not None:
            limiter = RateLimiter(route.rate_limit.requests_per_minute, route.rate_limit.tokens_per_minute)
        return cls(caching=route.caching.enabled,
                   tokens=TokenPolicy(route.tokens.max_tokens, route.tokens.max_turns,
                                      route.tokens.max_history_tokens, route.tokens.warn_uncapped),
                   retry=RetryPolicy(route.retry.max_attempts, route.retry.base_delay_s, route.retry.max_delay_s,
                                     route.retry.deadline_s),
                   fallback=tuple(route.fallback), limiter=limiter)


@dataclass
class _Target:
    """One model of the chain, ready to call: the request as sent to it, its provider, its cache points."""

    spec: ModelSpec
    call: ChatRequest
    provider: Provider
    placements: list[Placement]
    estimate: int  # tokens reserved in the rate limiter before the call, corrected after


@dataclass
class _Call:
    """State shared by every attempt of one logical call."""

    request: ChatRequest
    policy: CallPolicy
    plan: AttemptPlan
    request_id: str
    mode: str
    targets: dict[int, _Target] = field(default_factory=dict)


class Tokenomy:
    """Calls models and records every attempt. Use as a context manager so the ledger is flushed."""

    def __init__(self, ledger: LedgerStore | LedgerWriter | str | None = None,
                 models: dict[str, ModelSpec] | None = None, catalog: PriceCatalog | None = None,
                 store_prompts: bool = False, record: bool = True, policy: CallPolicy | None = None,
                 seed: int | None = None) -> None:
        self.catalog = catalog or default_catalog()
        self.models = models or {}
        self.store_prompts = store_prompts
        self.policy = policy or CallPolicy()
        self._rng = random.Random(seed)
        self._local = threading.local()  # last_placements is per thread: the client is shared by threads
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

    def _begin(self, request: ChatRequest, policy: CallPolicy | None, mode: str) -> _Call:
        policy = policy or self.policy
        request, _ = apply_token_policy(request, policy.tokens)
        chain = (request.model, *policy.fallback)
        return _Call(request, policy, AttemptPlan(chain, policy.retry, self._rng), uuid.uuid4().hex, mode)

    def _target(self, call: _Call, step: Step) -> _Target:
        """Resolve a chain entry on first use (a fallback is never resolved unless it is needed)."""
        if step.target not in call.targets:
            spec = self.spec_for(call.plan.chain[step.target])
            # The caller's region wins for the primary model; a fallback names its own (region fallback).
            region = (call.request.region or spec.region) if step.target == 0 else (spec.region or call.request.region)
            request = replace(call.request, model=spec.model, region=region)
            placements: list[Placement] = []
            if call.policy.caching:
                request, placements = auto_cache(request, spec.pricing_model, self.catalog,
                                                 None if region in (None, "global", "local") else region)
            text = request.text()
            if request.tools:
                text += json.dumps([asdict(t) for t in request.tools])
            estimate = estimate_tokens(text) + (request.max_tokens or 0)
            call.targets[step.target] = _Target(spec, request, self.provider_for(spec), placements, estimate)
        return call.targets[step.target]

    @staticmethod
    def _left(call: _Call) -> float:
        """Seconds left before the call's deadline: the rate limiter may not wait longer."""
        return max(0.0, call.policy.retry.deadline_s - call.plan.elapsed_s)

    @staticmethod
    def _over_quota(call: _Call) -> ProviderError:
        # Not a provider attempt (nothing was sent), so no ledger row: the caller sees a throttle.
        return ProviderError(f"client-side rate limit: no request slot for {call.request.model!r} within the "
                             f"{call.policy.retry.deadline_s:g} s deadline; raise the route's rate_limit or deadline_s",
                             kind="throttled")

    # -- recording ------------------------------------------------------------------------------
    def _finish(self, call: _Call, target: _Target, step: Step, response: ChatResponse, mode: str, span,
                started: float) -> ChatResponse:
        pricing_model = target.spec.price_as or response.model
        region = response.region if response.region not in (None, "global", "local") else None
        usage = response.usage
        if target.spec.price_as and (usage.cache_read_tokens or usage.cache_write_tokens) \
                and not self.catalog.lookup(pricing_model, region).has_cache:
            # The stand-in (e.g. the local model's KV cache) cached a prefix that the model it is priced
            # as cannot cache: that model would bill those tokens as plain input.
            usage = Usage(usage.total_input_tokens, usage.output_tokens)
        cost = compute_cost(usage, pricing_model, region, mode, self.catalog)
        response.cost_usd = cost.total_usd
        response.attempts = step.attempt
        event = record_priced_as(event_from_response(target.call, response, cost, mode, self.store_prompts,
                                                     call.request_id), target.spec.price_as, target.spec.name, self.catalog)
        event.attempt = step.attempt
        self._record(event)
        if call.policy.limiter:
            usage = response.usage
            call.policy.limiter.settle(target.estimate, usage.total_input_tokens + usage.output_tokens)
        otel.record_success(span, target.call, response, cost.total_usd, time.perf_counter() - started,
                            [p.after for p in target.placements])
        self._local.placements = target.placements
        return response

    def _record(self, event: UsageEvent) -> None:
        if self.writer is not None:
            self.writer.record(event)

    def _fail(self, call: _Call, target: _Target, step: Step, exc: ProviderError, span, started: float) -> None:
        meta = target.call.meta
        error_type = exc.kind if exc.__cause__ is None else type(exc.__cause__).__name__
        otel.record_failure(span, target.call, target.provider.name, error_type, time.perf_counter() - started)
        self._record(UsageEvent(
            ts=utcnow(), provider=target.provider.name, model=target.spec.model, region=target.call.region,
            mode=call.mode, task=meta.task, tags=dict(meta.tags), tenant=meta.tenant, key_id=meta.key_id, route=meta.route,
            tier=meta.tier, latency_ms=(time.perf_counter() - started) * 1000, outcome=exc.kind,
            error_type=error_type, attempt=step.attempt, request_id=call.request_id,
            prompt_hash=prompt_fingerprint(target.call)))

    def _abandon(self, call: _Call, target: _Target, step: Step, span, started: float, deltas: int) -> None:
        """The caller stopped reading a stream before its final chunk (closed it, disconnected).

        The provider has already billed the prompt and whatever it generated, so the attempt is
        recorded with estimated tokens (prompt estimate; one token per delta received) rather than
        vanishing from the ledger.
        """
        request = target.call
        usage = Usage(input_tokens=target.estimate - (request.max_tokens or 0), output_tokens=deltas)
        cost = compute_cost(usage, target.spec.pricing_model, request.region if request.region not in ("global", "local") else None,
                            call.mode, self.catalog)
        meta = request.meta
        otel.record_failure(span, request, target.provider.name, "StreamAbandoned", time.perf_counter() - started)
        self._record(UsageEvent(
            ts=utcnow(), provider=target.provider.name, model=target.spec.model, region=request.region,
            mode=call.mode, task=meta.task, tags=dict(meta.tags), tenant=meta.tenant, key_id=meta.key_id,
            route=meta.route, tier=meta.tier, input_tokens=usage.input_tokens, output_tokens=usage.output_tokens,
            latency_ms=(time.perf_counter() - started) * 1000, outcome="cancelled", error_type="StreamAbandoned",
            attempt=step.attempt, request_id=call.request_id, prompt_hash=prompt_fingerprint(request)).apply_cost(cost))
        if call.policy.limiter:
            call.policy.limiter.settle(target.estimate, usage.total_input_tokens + usage.output_tokens)

    # -- public API -----------------------------------------------------------------------------
    def chat(self, request: ChatRequest, mode: str = "on_demand", policy: CallPolicy | None = None) -> ChatResponse:
        """Send one request under `policy`; every attempt is recorded, the last error re-raised."""
        call = self._begin(request, policy, mode)
        step: Step | None = call.plan.first()
        while step is not None:
            if step.delay_s:
                time.sleep(step.delay_s)
            target = self._target(call, step)
            if call.policy.limiter and not call.policy.limiter.acquire(target.estimate, self._left(call)):
                raise self._over_quota(call)
            started = time.perf_counter()
            with otel.attempt_span(target.call, target.provider.name, step.attempt) as span:
                try:
                    response = target.provider.chat(target.call)
                except ProviderError as exc:
                    self._fail(call, target, step, exc, span, started)
                    step = call.plan.after(exc)
                    if step is None:
                        raise
                    continue
                return self._finish(call, target, step, response, mode, span, started)
        raise AssertionError("unreachable: a plan always starts with one step")

    def stream(self, request: ChatRequest, mode: str = "on_demand",
               policy: CallPolicy | None = None) -> Iterator[StreamChunk]:
        """Stream deltas; retries happen only before the first delta. The final chunk is priced."""
        call = self._begin(request, policy, mode)
        step: Step | None = call.plan.first()
        while step is not None:
            if step.delay_s:
                time.sleep(step.delay_s)
            target = self._target(call, step)
            if call.policy.limiter and not call.policy.limiter.acquire(target.estimate, self._left(call)):
                raise self._over_quota(call)
            started = time.perf_counter()
            yielded, deltas, finished = False, 0, False
            # Not made current: a generator suspended at `yield` must not leave its span in the caller's context.
            with otel.attempt_span(target.call, target.provider.name, step.attempt, current=False) as span:
                try:
                    for chunk in target.provider.stream(target.call):
                        if chunk.response is not None:
                            self._finish(call, target, step, chunk.response, mode, span, started)
                            finished = True
                        deltas += bool(chunk.delta)
                        yielded = yielded or bool(chunk.delta)
                        yield chunk
                    return
                except GeneratorExit:
                    if not finished:
                        self._abandon(call, target, step, span, started, deltas)
                    raise
                except ProviderError as exc:
                    self._fail(call, target, step, exc, span, started)
                    # The caller already has part of an answer: a retry would duplicate it.
                    step = None if yielded else call.plan.after(exc)
                    if step is None:
                        raise

    async def achat(self, request: ChatRequest, mode: str = "on_demand",
                    policy: CallPolicy | None = None) -> ChatResponse:
        """Async `chat`: waits with asyncio.sleep and the provider's async path."""
        call = self._begin(request, policy, mode)
        step: Step | None = call.plan.first()
        while step is not None:
            if step.delay_s:
                await asyncio.sleep(step.delay_s)
            target = self._target(call, step)
            if call.policy.limiter and not await call.policy.limiter.acquire_async(target.estimate, self._left(call)):
                raise self._over_quota(call)
            started = time.perf_counter()
            with otel.attempt_span(target.call, target.provider.name, step.attempt) as span:
                try:
                    response = await target.provider.achat(target.call)
                except ProviderError as exc:
                    self._fail(call, target, step, exc, span, started)
                    step = call.plan.after(exc)
                    if step is None:
                        raise
                    continue
                return self._finish(call, target, step, response, mode, span, started)
        raise AssertionError("unreachable: a plan always starts with one step")

    async def astream(self, request: ChatRequest, mode: str = "on_demand",
                      policy: CallPolicy | None = None) -> AsyncIterator[StreamChunk]:
        """Async `stream`: retries only before the first delta."""
        call = self._begin(request, policy, mode)
        step: Step | None = call.plan.first()
        while step is not None:
            if step.delay_s:
                await asyncio.sleep(step.delay_s)
            target = self._target(call, step)
            if call.policy.limiter and not await call.policy.limiter.acquire_async(target.estimate, self._left(call)):
                raise self._over_quota(call)
            started = time.perf_counter()
            yielded, deltas, finished = False, 0, False
            with otel.attempt_span(target.call, target.provider.name, step.attempt, current=False) as span:
                try:
                    async for chunk in target.provider.astream(target.call):
                        if chunk.response is not None:
                            self._finish(call, target, step, chunk.response, mode, span, started)
                            finished = True
                        deltas += bool(chunk.delta)
                        yielded = yielded or bool(chunk.delta)
                        yield chunk
                    return
                except (GeneratorExit, asyncio.CancelledError):
                    if not finished:
                        self._abandon(call, target, step, span, started, deltas)
                    raise
                except ProviderError as exc:
                    self._fail(call, target, step, exc, span, started)
                    step = None if yielded else call.plan.after(exc)
                    if step is None:
                        raise

    def flush(self) -> None:
        """Write buffered ledger rows now."""
        if self.writer is not None:
            self.writer.flush()

    def close(self) -> None:
        """Flush and stop the ledger writer."""
        if self.writer is not None:
            self.writer.close()

    def __enter__(self) -> "Tokenomy":
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


__all__ = ["CallPolicy", "RateLimiter", "RetryPolicy", "TokenPolicy", "Tokenomy", "TokenomyError"]
