"""The one call path: request → policy (caps, cache points) → provider (with retries) → cost → ledger.

The gateway, batch runner, benchmark and router all call `Tokenomy`, so a cost is computed in
exactly one place and every attempt is recorded the same way (ledger row + OpenTelemetry span).
"""

from __future__ import annotations

import asyncio
import random
import time
import uuid
from dataclasses import dataclass, field, replace
from typing import TYPE_CHECKING, AsyncIterator, Iterator

from tokenomy.caching.placement import Placement, auto_cache, estimate_tokens
from tokenomy.caching.tokens import TokenPolicy, apply_token_policy
from tokenomy.errors import ProviderError, TokenomyError
from tokenomy.ledger.events import UsageEvent, event_from_response, prompt_fingerprint, utcnow
from tokenomy.ledger.store import LedgerStore
from tokenomy.ledger.writer import LedgerWriter
from tokenomy.messages import ChatRequest, ChatResponse, StreamChunk
from tokenomy.pricing.catalog import PriceCatalog, default_catalog
from tokenomy.pricing.cost import compute_cost
from tokenomy.providers.base import Provider
from tokenomy.providers.registry import ModelSpec, get_provider, resolve_model
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
        """Build the policy a config route asks for."""
        return cls(caching=route.caching.enabled,
                   tokens=TokenPolicy(route.tokens.max_tokens, route.tokens.max_turns,
                                      route.tokens.max_history_tokens, route.tokens.warn_uncapped),
                   retry=RetryPolicy(route.retry.max_attempts, route.retry.base_delay_s, route.retry.max_delay_s,
                                     route.retry.deadline_s),
                   fallback=tuple(route.fallback), limiter=limiter)


@dataclass
class _Attempt:
    """One planned attempt: which model, the request as sent, the provider, and bookkeeping."""

    spec: ModelSpec
    call: ChatRequest
    provider: Provider
    number: int
    placements: list[Placement]
    estimate: int


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
        self.last_placements: list[Placement] = []
        if not record:
            self.writer = None
        elif isinstance(ledger, LedgerWriter):
            self.writer = ledger
        else:
            self.writer = LedgerWriter(ledger)
        otel.configure_from_env()

    # -- planning -------------------------------------------------------------------------------
    def spec_for(self, model: str) -> ModelSpec:
        return resolve_model(model, self.models)

    def provider_for(self, spec: ModelSpec) -> Provider:
        return get_provider(spec)

    def _chain(self, request: ChatRequest, policy: CallPolicy) -> Iterator[tuple[ModelSpec, ChatRequest, list]]:
        """The primary model, then each fallback, with cache points placed for that model."""
        for model in (request.model, *policy.fallback):
            spec = self.spec_for(model)
            call = replace(request, model=spec.model, region=request.region or spec.region)
            placements: list[Placement] = []
            if policy.caching:
                call, placements = auto_cache(call, spec.pricing_model, self.catalog,
                                              None if call.region in (None, "global", "local") else call.region)
            yield spec, call, placements

    def _attempts(self, request: ChatRequest, policy: CallPolicy) -> Iterator[_Attempt]:
        number = 0
        for spec, call, placements in self._chain(request, policy):
            estimate = estimate_tokens((call.system or "") + "".join(m.content for m in call.messages)) + (
                call.max_tokens or 0)
            for _ in range(policy.retry.max_attempts):
                number += 1
                yield _Attempt(spec, call, self.provider_for(spec), number, placements, estimate)

    def _retry_delay(self, attempt: _Attempt, per_model: int, error: ProviderError, policy: CallPolicy,
                     started: float) -> float | None:
        """Seconds to wait before the next attempt on this model, or None to move on / give up."""
        delay = policy.retry.delay(per_model, error, self._rng)
        if policy.retry.should_retry(per_model, error, time.monotonic() - started, delay):
            return delay
        return None

    # -- recording ------------------------------------------------------------------------------
    def _finish(self, attempt: _Attempt, response: ChatResponse, mode: str, request_id: str, span,
                started: float) -> ChatResponse:
        pricing_model = attempt.spec.price_as or response.model
        region = response.region if response.region not in (None, "global", "local") else None
        cost = compute_cost(response.usage, pricing_model, region, mode, self.catalog)
        response.cost_usd = cost.total_usd
        response.attempts = attempt.number
        event = event_from_response(attempt.call, response, cost, mode, self.store_prompts, request_id)
        event.attempt = attempt.number
        self._record(event)
        otel.record_success(span, attempt.call, response, cost.total_usd, time.perf_counter() - started)
        self.last_placements = attempt.placements
        return response

    def _record(self, event: UsageEvent) -> None:
        if self.writer is not None:
            self.writer.record(event)

    def _fail(self, attempt: _Attempt, exc: ProviderError, span, started: float, request_id: str) -> None:
        meta = attempt.call.meta
        error_type = exc.kind if exc.__cause__ is None else type(exc.__cause__).__name__
        otel.record_failure(span, attempt.call, attempt.provider.name, error_type, time.perf_counter() - started)
        self._record(UsageEvent(
            ts=utcnow(), provider=attempt.provider.name, model=attempt.spec.model, region=attempt.call.region,
            task=meta.task, tags=dict(meta.tags), tenant=meta.tenant, key_id=meta.key_id, route=meta.route,
            tier=meta.tier, latency_ms=(time.perf_counter() - started) * 1000, outcome=exc.kind,
            error_type=error_type, attempt=attempt.number, request_id=request_id,
            prompt_hash=prompt_fingerprint(attempt.call)))

    # -- public API -----------------------------------------------------------------------------
    def chat(self, request: ChatRequest, mode: str = "on_demand", policy: CallPolicy | None = None) -> ChatResponse:
        """Send one request under `policy`; every attempt is recorded, the last error re-raised."""
        policy = policy or self.policy
        request, _ = apply_token_policy(request, policy.tokens)
        request_id, started_all = uuid.uuid4().hex, time.monotonic()
        last_error: ProviderError | None = None
        per_model, current = 0, None
        for attempt in self._attempts(request, policy):
            per_model = per_model + 1 if attempt.spec is current else 1
            current = attempt.spec
            if last_error is not None and per_model > 1:
                delay = self._retry_delay(attempt, per_model - 1, last_error, policy, started_all)
                if delay is None:
                    continue  # this model is done; the chain moves to the next one
                time.sleep(delay)
            elif last_error is not None and not last_error.retryable:
                break  # client errors don't fall back: the request itself is wrong
            if policy.limiter:
                policy.limiter.acquire(attempt.estimate)
            started = time.perf_counter()
            with otel.start_span(attempt.call, attempt.provider.name, attempt.number) as span:
                try:
                    response = attempt.provider.chat(attempt.call)
                except ProviderError as exc:
                    self._fail(attempt, exc, span, started, request_id)
                    last_error = exc
                    continue
                return self._finish(attempt, response, mode, request_id, span, started)
        assert last_error is not None
        raise last_error

    def stream(self, request: ChatRequest, mode: str = "on_demand",
               policy: CallPolicy | None = None) -> Iterator[StreamChunk]:
        """Stream deltas; retries happen only before the first delta. The final chunk is priced."""
        policy = policy or self.policy
        request, _ = apply_token_policy(request, policy.tokens)
        request_id, started_all = uuid.uuid4().hex, time.monotonic()
        last_error: ProviderError | None = None
        per_model, current = 0, None
        for attempt in self._attempts(request, policy):
            per_model = per_model + 1 if attempt.spec is current else 1
            current = attempt.spec
            if last_error is not None and per_model > 1:
                delay = self._retry_delay(attempt, per_model - 1, last_error, policy, started_all)
                if delay is None:
                    continue
                time.sleep(delay)
            elif last_error is not None and not last_error.retryable:
                break
            if policy.limiter:
                policy.limiter.acquire(attempt.estimate)
            started = time.perf_counter()
            yielded = False
            with otel.start_span(attempt.call, attempt.provider.name, attempt.number) as span:
                try:
                    for chunk in attempt.provider.stream(attempt.call):
                        if chunk.response is not None:
                            self._finish(attempt, chunk.response, mode, request_id, span, started)
                        yielded = yielded or bool(chunk.delta)
                        yield chunk
                    return
                except ProviderError as exc:
                    self._fail(attempt, exc, span, started, request_id)
                    if yielded:
                        raise  # the caller already has part of an answer: retrying would duplicate it
                    last_error = exc
        assert last_error is not None
        raise last_error

    async def achat(self, request: ChatRequest, mode: str = "on_demand",
                    policy: CallPolicy | None = None) -> ChatResponse:
        """Async `chat`: waits with asyncio.sleep and the provider's async path."""
        policy = policy or self.policy
        request, _ = apply_token_policy(request, policy.tokens)
        request_id, started_all = uuid.uuid4().hex, time.monotonic()
        last_error: ProviderError | None = None
        per_model, current = 0, None
        for attempt in self._attempts(request, policy):
            per_model = per_model + 1 if attempt.spec is current else 1
            current = attempt.spec
            if last_error is not None and per_model > 1:
                delay = self._retry_delay(attempt, per_model - 1, last_error, policy, started_all)
                if delay is None:
                    continue
                await asyncio.sleep(delay)
            elif last_error is not None and not last_error.retryable:
                break
            if policy.limiter:
                await policy.limiter.acquire_async(attempt.estimate)
            started = time.perf_counter()
            with otel.start_span(attempt.call, attempt.provider.name, attempt.number) as span:
                try:
                    response = await attempt.provider.achat(attempt.call)
                except ProviderError as exc:
                    self._fail(attempt, exc, span, started, request_id)
                    last_error = exc
                    continue
                return self._finish(attempt, response, mode, request_id, span, started)
        assert last_error is not None
        raise last_error

    async def astream(self, request: ChatRequest, mode: str = "on_demand",
                      policy: CallPolicy | None = None) -> AsyncIterator[StreamChunk]:
        """Async `stream`: retries only before the first delta."""
        policy = policy or self.policy
        request, _ = apply_token_policy(request, policy.tokens)
        request_id, started_all = uuid.uuid4().hex, time.monotonic()
        last_error: ProviderError | None = None
        per_model, current = 0, None
        for attempt in self._attempts(request, policy):
            per_model = per_model + 1 if attempt.spec is current else 1
            current = attempt.spec
            if last_error is not None and per_model > 1:
                delay = self._retry_delay(attempt, per_model - 1, last_error, policy, started_all)
                if delay is None:
                    continue
                await asyncio.sleep(delay)
            elif last_error is not None and not last_error.retryable:
                break
            if policy.limiter:
                await policy.limiter.acquire_async(attempt.estimate)
            started = time.perf_counter()
            yielded = False
            with otel.start_span(attempt.call, attempt.provider.name, attempt.number) as span:
                try:
                    async for chunk in attempt.provider.astream(attempt.call):
                        if chunk.response is not None:
                            self._finish(attempt, chunk.response, mode, request_id, span, started)
                        yielded = yielded or bool(chunk.delta)
                        yield chunk
                    return
                except ProviderError as exc:
                    self._fail(attempt, exc, span, started, request_id)
                    if yielded:
                        raise
                    last_error = exc
        assert last_error is not None
        raise last_error

    def flush(self) -> None:
        if self.writer is not None:
            self.writer.flush()

    def close(self) -> None:
        if self.writer is not None:
            self.writer.close()

    def __enter__(self) -> "Tokenomy":
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


__all__ = ["CallPolicy", "Tokenomy", "TokenomyError"]
