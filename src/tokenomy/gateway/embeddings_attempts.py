"""The attempts of one embeddings call (`embeddings_routes.embed_request` admits it and settles it): each sent to
the model's upstream (the gateway's pooled OpenAI-format upstream, an Azure deployment through its SDK client, or a
Bedrock model's InvokeModel calls, in a thread) with the route's retries on the same model and its rate limit, each
with its ledger row (input tokens only, tagged `operation: embeddings`, priced by `pricing.cost`), its span, and the
journal's in-flight entry written before it is sent. An answer whose vectors cannot be paired with the inputs is
billed and refused, not retried.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Awaitable, Callable
from decimal import Decimal
from typing import Any

from tokenomy.call_cost import CallCost
from tokenomy.chat_response import Usage
from tokenomy.client import LIMITER_WAITED_S
from tokenomy.errors import ProviderError, TokenomyError, as_written, caller_left_error
from tokenomy.gateway.embeddings_request import EmbeddingsRequest, estimated_tokens
from tokenomy.ledger.events import UsageEvent, record_priced_as, utcnow
from tokenomy.messages import RequestMeta
from tokenomy.pricing.cost import answered_cost
from tokenomy.pricing.identifiers import pricing_region
from tokenomy.providers import bedrock_embeddings
from tokenomy.providers.http_faults import left_unsent
from tokenomy.providers.registry import ModelSpec
from tokenomy.resilience.fallback import AttemptPlan
from tokenomy.telemetry import otel

log = logging.getLogger(__name__)
OPERATION_TAG = {"operation": "embeddings"}


async def embed_with_retries(
    gw,
    asked: EmbeddingsRequest,
    spec: ModelSpec,
    policy,
    meta: RequestMeta,
    estimate: int,
    cost: CallCost | None = None,
) -> tuple[dict[str, Any], int, Decimal]:
    """The upstream's answer, the input tokens billed and what the call cost, after the route's retries (on the same
    model only). A ProviderError when every attempt failed, carrying what they cost (`call_cost_usd`). A retry that
    sends again input an attempt was billed for is made only if `cost`'s guard covers it (the key's budget)."""
    cost = cost or CallCost()
    # A Bedrock request is several calls: those that answered are kept across attempts, and not sent again.
    progress = bedrock_embeddings.Progress() if spec.provider == "bedrock" else None
    try:
        upstream, send = _upstream(gw, spec, progress)
    except TokenomyError as exc:  # the model's connection settings (an Azure endpoint, ...): the gateway's fault
        raise ProviderError(f"model {spec.name!r}: {exc}", kind="server_error", retryable=False) from exc
    body = asked.forwarded(spec.model)
    plan = AttemptPlan((spec.name,), policy.retry)
    step = plan.first()
    spent = Decimal(0)
    failed: ProviderError | None = None  # the last attempt's error
    with otel.call_span(spec.model, meta.request_id or "") as parent:  # its attempts' spans are children
        while True:
            waited = step.delay_s
            if waited:
                await cost.wait(waited)  # ended early by a caller who leaves
            left = max(0.0, policy.retry.deadline_s - plan.elapsed_s)
            calls, due = _attempt(body, spec, progress, estimate)
            limiter = policy.limiter
            if limiter is not None:
                limited_at = time.perf_counter()
                granted = await limiter.acquire_async(due, left, calls, given_up=cost.caller_leaves)
                if granted is None:  # the caller left during the limiter's wait: nothing taken, nothing sent
                    raise caller_left_error(spent, failed)
                if not granted:
                    # Not an attempt (nothing was sent), so no ledger row: the caller sees a throttle.
                    wait = limiter.wait_s(due, calls)  # the caller's Retry-After
                    limited = ProviderError(
                        f"client-side rate limit: no request slot for {meta.route!r} within the "
                        f"{policy.retry.deadline_s:g} s deadline (the next in {wait:.1f} s); raise the route's "
                        "rate_limit or deadline_s",
                        kind="throttled",
                        retry_after=wait,
                    )
                    limited.call_cost_usd = spent
                    raise limited
                waited = waited or time.perf_counter() - limited_at > LIMITER_WAITED_S
            if waited and await cost.caller_gone():  # the caller may have left during the wait: send nothing
                if limiter is not None:
                    limiter.release(due, calls)
                raise caller_left_error(spent, failed)
            carried = progress.tokens() if progress is not None else 0  # billed by earlier attempts' rows
            flight = _in_flight(gw, spec, upstream.name, meta, asked, due, step.attempt)
            began = time.perf_counter()
            with otel.embeddings_span(
                upstream.name,
                spec.model,
                meta.route,
                step.attempt,
                body.get("encoding_format", "float"),
                body.get("dimensions"),
                parent,
                upstream.server,
            ) as span:
                try:
                    answer = await send(body)
                except ProviderError as exc:
                    seconds = time.perf_counter() - began
                    error_type = exc.kind if exc.__cause__ is None else type(exc.__cause__).__name__
                    otel.record_embeddings(span, upstream.name, spec.model, None, 0, None, seconds, error_type)
                    # An upstream still working when the wait ended (or cut off mid-answer) bills the input anyway; a
                    # request of several calls (Bedrock's) bills the tokens of those that answered before one failed.
                    billed = exc.billed_tokens if exc.billed_tokens is not None else due if exc.reached else 0
                    if limiter is not None and exc.unsent_calls:  # calls of a Bedrock request never sent
                        limiter.release(0, exc.unsent_calls)
                    event = _row(gw, spec, upstream.name, spec.model, meta, asked, billed, step.attempt, seconds)
                    event.outcome, event.error_type = exc.kind, error_type
                    spent += event.cost_usd
                    _record(gw, event, flight)
                    following = plan.after(exc)
                    if following is None:
                        exc.call_cost_usd = spent
                        raise
                    # Input billed and sent again (not the calls of a Bedrock request that answered: those are kept).
                    cost.add(event.cost_usd, unanswered=exc.billed_tokens is None)
                    if await cost.caller_gone():  # nobody would read the answer, and its input is billed
                        raise caller_left_error(spent, exc) from None
                    if (refused := await cost.retry_refused()) is not None:
                        raise exc.not_retried_for_budget(spent, refused) from None
                    failed, step = exc, following
                    continue
                except (asyncio.CancelledError, Exception) as exc:
                    # Cancelled in flight (the gateway shutting down, a timeout), or a bug: the request went out, so the
                    # upstream bills its input, as a chat call cancelled or crashed so is recorded (at its estimate).
                    # Cancelled before it went out (the pool's connections all busy): nothing sent, no row, as for chat.
                    cancelled = isinstance(exc, asyncio.CancelledError)
                    if cancelled and left_unsent(exc):
                        _void(gw, flight)
                        if policy.limiter is not None:
                            policy.limiter.release(due, calls)
                        raise
                    outcome, error_type = (
                        ("cancelled", "CallCancelled") if cancelled else ("server_error", type(exc).__name__)
                    )
                    seconds = time.perf_counter() - began
                    otel.record_embeddings(span, upstream.name, spec.model, None, 0, None, seconds, error_type)
                    event = _row(gw, spec, upstream.name, spec.model, meta, asked, due, step.attempt, seconds)
                    event.outcome, event.error_type = outcome, error_type
                    _record(gw, event, flight)
                    raise
                seconds = time.perf_counter() - began
                used = _prompt_tokens(answer, spec, estimate)
                billed = max(0, used - carried)  # this attempt's calls; the caller is told the whole request's
                reported = answer.get("model")
                served = reported if isinstance(reported, str) and reported else spec.model
                event = _row(gw, spec, upstream.name, served, meta, asked, billed, step.attempt, seconds)
                if policy.limiter is not None:
                    policy.limiter.settle(due, billed)
                unusable = _unusable(answer, len(asked.items), body.get("encoding_format"))
                if unusable is not None:
                    # Billed all the same (the row keeps its tokens), and not retried: it would recur.
                    event.outcome = event.error_type = "server_error"
                    _record(gw, event, flight)
                    otel.record_embeddings(
                        span, upstream.name, spec.model, served, billed, event.cost_usd, seconds, "server_error"
                    )
                    wrong = ProviderError(
                        f"{upstream.name} {unusable} (model {spec.name!r})",
                        kind="server_error",
                        retryable=False,
                        reached=True,
                    )
                    wrong.call_cost_usd = spent + event.cost_usd
                    raise wrong
                _record(gw, event, flight)
                otel.record_embeddings(span, upstream.name, spec.model, served, billed, event.cost_usd, seconds)
                return answer, used, spent + event.cost_usd


def _unusable(answer: dict[str, Any], inputs: int, encoding: str | None) -> str | None:
    """What makes an answer's vectors unusable (said after the upstream's name), or None. Callers pair inputs with
    vectors by position: a short or long answer would misfile every vector after the gap. An entry that is no
    embedding (a float list; base64 text when asked for) would reach the caller as a vector, or break the gateway's
    own answer (InvokeModel's)."""
    vectors = answer["data"]
    if len(vectors) != inputs:
        return (
            f"answered {len(vectors)} embedding{'' if len(vectors) == 1 else 's'} for {inputs} inputs; check the "
            "upstream's batch limit and send fewer inputs a request"
        )
    shape = str if encoding == "base64" else list
    wrong = next((v for v in vectors if not isinstance(v, dict) or not isinstance(v.get("embedding"), shape)), None)
    if wrong is not None:
        return f"answered with no embedding vectors: {as_written(wrong)[:100]}"
    return None


def _upstream(
    gw, spec: ModelSpec, progress: bedrock_embeddings.Progress | None
) -> tuple[Any, Callable[[dict[str, Any]], Awaitable[dict[str, Any]]]]:
    """The provider the model is reached through (its `name` goes in the ledger) and how to send it a body (a
    Bedrock model's: the calls `progress` has not yet)."""
    if spec.provider == "azure":  # the shared SDK-based provider: Azure's paths, api-version and credentials
        provider = gw.client.provider_for(spec)

        async def in_thread(body: dict[str, Any]) -> dict[str, Any]:
            return await asyncio.to_thread(provider.embed, body)

        return provider, in_thread
    if spec.provider == "bedrock":  # boto3's InvokeModel, blocking: in a thread, in the model's region
        bedrock = gw.client.provider_for(spec)

        async def invoked(body: dict[str, Any]) -> dict[str, Any]:
            return await asyncio.to_thread(bedrock.embed, body, spec.region, progress)

        return bedrock, invoked
    upstream = gw.client.pooled(spec)
    return upstream, upstream.aembed


def _attempt(
    body: dict[str, Any], spec: ModelSpec, progress: bedrock_embeddings.Progress | None, estimate: int
) -> tuple[int, int]:
    """What one attempt sends: its upstream calls, which the route's rate limit counts as the upstream's quota does
    (a Bedrock model's InvokeModel calls not yet answered: one a text for Titan, one per 96 texts for Cohere; one
    for the others), and their estimated input tokens (the request's `estimate`, less what earlier attempts'
    answered calls carried), at which an attempt the upstream bills without a count is recorded."""
    if progress is None or not progress.answered:
        calls = 1 if progress is None else len(bedrock_embeddings.invoke_bodies(body, spec.model))
        return calls, estimate
    due = [
        call
        for index, call in enumerate(bedrock_embeddings.invoke_bodies(body, spec.model))
        if index not in progress.answered
    ]
    return len(due), estimated_tokens(text for call in due for text in bedrock_embeddings.call_texts(call))


def _prompt_tokens(answer: dict[str, Any], spec: ModelSpec, estimate: int) -> int:
    """The input tokens the upstream counted (`usage.prompt_tokens`); the estimate, said so in the log, from an
    OpenAI-compatible server that reports none (it still did the work, and a row at 0 would hide it)."""
    usage = answer.get("usage")
    counted = usage.get("prompt_tokens") if isinstance(usage, dict) else None
    if type(counted) is int and counted >= 0:
        return counted
    log.warning(
        "%s answered embeddings without usage.prompt_tokens: recorded at %d estimated tokens", spec.name, estimate
    )
    return estimate


def _row(
    gw,
    spec: ModelSpec,
    provider: str,
    served: str,
    meta: RequestMeta,
    asked: EmbeddingsRequest,
    tokens: int,
    attempt: int,
    seconds: float,
    in_flight: bool = False,
) -> UsageEvent:
    """The ledger row of one attempt: input tokens only, priced as the model's configured `price_as` or as itself
    (`in_flight`: an in-flight entry's, unpriced, which the replay prices, and without the prompt's hash and text,
    which read every input again)."""
    event = UsageEvent(
        ts=utcnow(),
        provider=provider,
        model=served,
        region=spec.region,
        task=meta.task,
        tags={**meta.tags, **OPERATION_TAG},
        tenant=meta.tenant,
        key_id=meta.key_id,
        route=meta.route,
        input_tokens=tokens,
        latency_ms=seconds * 1000,
        attempt=attempt,
        request_id=meta.request_id,
        prompt_hash=None if in_flight else asked.fingerprint(),
        prompt_text=asked.text() if gw.config.store_prompts and not in_flight else None,
    )
    if not in_flight:
        pricing = spec.price_as or served
        event.apply_cost(
            answered_cost(
                Usage(input_tokens=tokens),
                pricing,
                pricing_region(spec.region),
                "on_demand",
                gw.catalog,
                "embeddings call",
            )
        )
    if provider == "azure" and spec.price_as:  # a deployment's name says nothing of its model: as for a chat row
        event.tags["deployment"], event.model = spec.model, spec.price_as
        return event
    return record_priced_as(event, spec.price_as, spec.name, gw.catalog)


def _record(gw, event: UsageEvent, flight: str | None) -> None:
    if flight is not None:  # the row supersedes the attempt's in-flight entry (`_in_flight`)
        event.event_id = flight
    if gw.client.writer is not None:
        gw.client.writer.record(event)


def _in_flight(
    gw, spec: ModelSpec, provider: str, meta: RequestMeta, asked: EmbeddingsRequest, due: int, attempt: int
) -> str | None:
    """Before an attempt is sent: its row at its estimate (outcome `interrupted`) as the journal's in-flight entry, so a
    gateway killed while the upstream works on it (and bills it) records it at the next start
    (ledger/journal_replay.py, as `Recorder._in_flight` does for chat, priced at the replay); the entry's event id,
    which the attempt's row takes; None without one."""
    journal = gw.client.writer.journal if gw.client.writer is not None else None
    if journal is None:
        return None
    event = _row(gw, spec, provider, spec.model, meta, asked, due, attempt, 0.0, in_flight=True)
    event.outcome, event.error_type, event.latency_ms = "interrupted", "GatewayStopped", None
    journal.in_flight(event.event_id, event.to_jsonl(), spec.price_as or spec.model)
    return event.event_id


def _void(gw, flight: str | None) -> None:
    """The attempt ended unsent, with no row: its in-flight entry is void."""
    if flight is not None and gw.client.writer is not None and gw.client.writer.journal is not None:
        gw.client.writer.journal.void(flight)
