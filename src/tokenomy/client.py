"""The one call path: request → policy (caps, router's tiers, cache points) → provider (with retries) → cost →
ledger.

The gateway, batch runner, benchmark and CLI all call `Tokenomy`, so a cost is computed in exactly one
place and every attempt is recorded the same way (ledger row + OpenTelemetry span). One attempt loop
(`_run`, and `_arun` for asyncio) serves chat and stream; `call_plan` plans the attempts and decides between tiers,
and `recording` records them (`Tokenomy` inherits both).
"""

from __future__ import annotations

import asyncio
import logging
import random
import threading
import time
from collections.abc import AsyncGenerator, Iterator
from contextlib import AbstractContextManager
from typing import TYPE_CHECKING

from tokenomy.caching.placement import Placement
from tokenomy.caching.tokens import TokenPolicy
from tokenomy.call_cost import RUNNING_WAIT_S, CallCost, Running
from tokenomy.call_plan import CallPlanner
from tokenomy.call_policy import Attempt, CallPolicy, CallState
from tokenomy.chat_response import ChatResponse, StreamChunk
from tokenomy.errors import ProviderError, TokenomyError, caller_left_error
from tokenomy.ledger.store import LedgerStore
from tokenomy.ledger.writer import LedgerWriter
from tokenomy.messages import ChatRequest
from tokenomy.pricing.catalog import PriceCatalog, default_catalog
from tokenomy.providers.http_faults import left_unsent
from tokenomy.providers.reasoning_signers import signed_by
from tokenomy.providers.registry import ModelSpec
from tokenomy.recording import Recorder
from tokenomy.resilience.fallback import Step
from tokenomy.resilience.ratelimit import RateLimiter
from tokenomy.resilience.retry import RetryPolicy
from tokenomy.routing.validators import Rejection
from tokenomy.telemetry import otel, otel_pipeline
from tokenomy.token_estimate import weighted_length

if TYPE_CHECKING:
    from opentelemetry.context import Context
    from opentelemetry.trace import Span

log = logging.getLogger(__name__)
# A route's rate limiter that held an attempt back longer than this waited (its caller may have left meanwhile).
LIMITER_WAITED_S = 0.05


class Tokenomy(CallPlanner, Recorder):
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
        otel_pipeline.configure_from_env()

    @property
    def last_placements(self) -> list[Placement]:
        """Cache points placed on this thread's last successful call (for demos and tests)."""
        return getattr(self._local, "placements", [])

    # -- one attempt (its plan and the decisions between tiers are `CallPlanner`'s) ---------------
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
        if chunk.signature or chunk.redacted is not None:  # who signed it goes with it (ReasoningBlock.signer)
            chunk.signer = att.target.provider.reasoning_signer(att.target.call.model)
        if chunk.response is not None:
            signed_by(chunk.response, att.target.provider.reasoning_signer(att.target.call.model))
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
                    if failed is not None:
                        if await call.cost.caller_gone():
                            raise caller_left_error(call.spent, failed)
                        if (refused := await call.cost.retry_refused()) is not None:
                            raise failed.not_retried_for_budget(call.spent, refused)
                    waited = step.delay_s
                    if waited:
                        await call.cost.wait(waited)  # ended early by a caller who leaves
                    att = self._start(call, tier, step)
                    limiter = call.policy.limiter
                    if limiter:
                        asked = time.perf_counter()
                        granted = await limiter.acquire_async(
                            att.target.estimate, self._left(call, tier), given_up=call.cost.caller_leaves
                        )
                        if granted is None:  # the caller left during the limiter's wait: nothing taken, nothing sent
                            raise caller_left_error(call.spent, failed)
                        if not granted:
                            raise self._over_quota(call, att.target)
                        waited = waited or time.perf_counter() - asked > LIMITER_WAITED_S
                    if waited and await call.cost.caller_gone():  # the caller may have left during the wait
                        if limiter:
                            limiter.release(att.target.estimate)
                        raise caller_left_error(call.spent, failed)
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
