"""`POST /v1/embeddings` (the openai SDK's `client.embeddings.create`) on OpenAI-format upstreams, Azure OpenAI and
Amazon Bedrock's embedding models (Titan Text Embeddings V2, Cohere Embed).

An embeddings call is no chat, so it does not take the client's chat path (`Tokenomy.achat`); it takes every step
around it that a chat call takes: the virtual key, admission (`calls.admit`: overload guard, the key's rate limit,
the budget reserved at the estimated input), the route's rate limit and retries, one ledger row and one span per
attempt (priced by `pricing.cost.compute_cost`, the one place a cost is computed), settlement at the actual cost,
the journal made durable before the answer, and the metrics. The body goes to the upstream's `/embeddings` over
the gateway's pooled upstream (`upstream.AsyncOpenAIUpstream.aembed`), or to an Azure deployment's through the
Azure provider's SDK client (`AzureOpenAIProvider.embed`), as the caller sent it, `model` replaced by the route's
model (for Azure, the deployment). A Bedrock model is reached through the Bedrock provider's InvokeModel
(`BedrockProvider.embed`, in a thread as Azure's), which turns the request into the model's own bodies and the
answers back into OpenAI's shape (`providers.bedrock_embeddings`: one call per text for Titan, batches of 96 for
Cohere; base64 encoded by the gateway; a retry sends only the calls that did not answer, which Bedrock has not
billed); what of the request the model cannot take (token ids, `dimensions` it cannot give, `user`) is refused by
name before anything is reserved. Ledger rows carry the tag
`operation: embeddings` (the schema has no operation column, and tags are grouped by every report already).

Refused before anything is sent or reserved, with a 400 saying what to do: a route whose model has no embeddings
reachable here (Anthropic has no embeddings API; Gemini and the local model are not forwarded; a Bedrock model that
is no embedding model), a routing policy (it picks a model per request), and fallbacks: vectors of two models
cannot be compared, so an index built with one model must never receive the other's. The gateway's one extension
field, `input_type`, is refused by every model but Cohere Embed's.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from decimal import Decimal
from typing import Any

from fastapi import APIRouter, Request
from starlette.responses import JSONResponse, Response

from tokenomy.call_cost import CallCost
from tokenomy.errors import ProviderError, TokenomyError, as_written
from tokenomy.gateway import metrics
from tokenomy.gateway.calls import (
    Refusal,
    admit,
    call_cost,
    json_body,
    request_meta,
    retry_after,
    settle,
    settle_when_final,
    upstream_status,
)
from tokenomy.gateway.embeddings_request import (
    REQUEST_SCHEMA,
    EmbeddingsRequest,
    estimated_tokens,
    parse_embeddings_request,
)
from tokenomy.gateway.limits import to_nano
from tokenomy.gateway.openai_shapes import RequestError
from tokenomy.gateway.responses import FastJSONResponse, error
from tokenomy.gateway.schemas import ErrorResponse
from tokenomy.ids import new_id
from tokenomy.ledger.events import UsageEvent, record_priced_as, utcnow
from tokenomy.messages import RequestMeta, Usage
from tokenomy.pricing.cost import answered_cost
from tokenomy.providers import bedrock_embeddings
from tokenomy.providers.http_faults import left_unsent
from tokenomy.providers.registry import ModelSpec
from tokenomy.resilience.fallback import AttemptPlan
from tokenomy.telemetry import otel

log = logging.getLogger(__name__)
router = APIRouter()
OPERATION_TAG = {"operation": "embeddings"}
_ERROR_TYPES = {  # OpenAI's error `type` for each admission refusal code, as for chat completions
    "overloaded": "server_error",
    "rate_limit_exceeded": "rate_limit_error",
    "budget_unavailable": "server_error",
    "budget_exceeded": "insufficient_quota",
}
_FIX = (
    "point the route at an embedding model: a model with `provider: openai` and the upstream's "
    "`base_url` (OpenAI, or a compatible server such as vLLM, Ollama or LiteLLM), e.g. `models: {embed: {provider: "
    "openai, model: text-embedding-3-small}}`, an Azure OpenAI deployment (`provider: azure`), or a Bedrock "
    "embedding model (`provider: bedrock, model: amazon.titan-embed-text-v2:0, region: us-east-1`), and send its name"
)
_WHY_NOT = {"anthropic": "Anthropic has no embeddings API"}
PROVIDERS = ("openai", "azure", "bedrock")  # the providers whose models embeddings are sent to


@router.post(
    "/v1/embeddings",
    responses={code: {"model": ErrorResponse} for code in (400, 401, 404, 429, 502, 503, 504)},
    openapi_extra={"requestBody": {"required": True, "content": {"application/json": {"schema": REQUEST_SCHEMA}}}},
)
async def create_embeddings(request: Request) -> Response:
    """Create embeddings in OpenAI's shape; `model` names a route or model served over the OpenAI wire."""
    gw = request.app.state.gateway
    started = time.perf_counter()
    key = await gw.authenticate_async(request.headers.get("authorization"))
    if isinstance(key, JSONResponse):
        return metrics.done(key, "unknown", started)
    try:
        asked = parse_embeddings_request(await json_body(request))
    except RequestError as exc:
        return metrics.done(error(400, str(exc), "invalid_request_error", param=exc.param), "unknown", started)
    except ValueError as exc:  # not JSON
        message = (
            f'the request body is not valid JSON ({exc}); send a JSON object such as {{"model": ..., "input": ...}}'
        )
        return metrics.done(error(400, message, "invalid_request_error"), "unknown", started)
    outcome = await embed_request(gw, request, key, asked)
    if isinstance(outcome, Failure):
        refused = error(outcome.status, outcome.message, outcome.type, outcome.code, outcome.param, outcome.headers)
        return metrics.done(refused, outcome.label, started)
    answer, used = outcome.answer, outcome.used
    usage = answer.get("usage")
    if not isinstance(usage, dict) or usage.get("prompt_tokens") != used:
        # The upstream counted nothing usable (none, or not a count): the caller is told what was billed instead.
        answer["usage"] = {"prompt_tokens": used, "total_tokens": used}
    headers = {"x-request-id": outcome.request_id}
    return metrics.done(FastJSONResponse({**answer, "model": asked.model}, headers=headers), asked.model, started)


@dataclass
class Embedded:
    """An answered embeddings request: the upstream's answer in OpenAI's shape, the input tokens billed, the id
    of its ledger rows, and the model that embedded it (its provider's id: a Bedrock model's answer shape
    depends on it)."""

    answer: dict[str, Any]
    used: int
    request_id: str
    model: str


@dataclass
class Failure:
    """Why an embeddings request got no vectors, for the caller's API to say in its own error shape: the status,
    the message, OpenAI's error type, code and param, headers (a Retry-After), and the metric label."""

    status: int
    message: str
    type: str
    label: str
    code: str | None = None
    param: str | None = None
    headers: dict[str, str] | None = None


async def embed_request(gw, request: Request, key, asked: EmbeddingsRequest) -> Embedded | Failure:
    """Everything an embeddings request takes after its key and body are read: the route, its one embedding model,
    the fields it can take, admission (the budget reserved at the estimate), the call with the route's retries (one
    ledger row per attempt), settlement at the real cost and the journal. Shared by `/v1/embeddings` and Bedrock's
    InvokeModel with an embedding model's own body (`invoke_embeddings`)."""
    name = asked.model
    route = gw.route_for(name)
    if route is None:
        message = f"The model `{name}` does not exist on this gateway; GET /v1/models lists the names you can use."
        return Failure(404, message, "invalid_request_error", "unknown", "model_not_found", "model")
    try:
        spec = embedding_model(gw, name, route)
    except (RequestError, TokenomyError) as exc:
        return Failure(400, str(exc), "invalid_request_error", name, "model_not_supported", "model")
    wrong = field_refusal(asked, spec, name)
    if wrong is not None:
        return Failure(400, str(wrong), "invalid_request_error", name, param=wrong.param)
    try:  # before admission, as on the chat routes: a malformed tags header must hold no slot or reservation
        meta = request_meta(request, route, key, name)
    except ValueError as exc:
        return Failure(400, str(exc), "invalid_request_error", name)
    tokens = asked.estimated_tokens()
    admitted = await admit(gw, name, route, key, None, estimate_nano=_reservation(gw, spec, tokens))
    if isinstance(admitted, Refusal):
        return Failure(
            admitted.status, admitted.message, _ERROR_TYPES[admitted.code], name, admitted.code, None, admitted.headers
        )
    meta.request_id = new_id()
    attempts = call_cost(gw, admitted.budgets)
    try:
        answer, used, cost = await _embed(gw, asked, spec, admitted.policy, meta, tokens, attempts)
    except ProviderError as exc:  # every attempt is in the ledger under the request id
        await settle(gw, admitted.budgets, None, paid=exc.call_cost_usd)
        return Failure(
            upstream_status(exc),
            f"upstream {exc.kind}: {exc}",
            "upstream_error",
            name,
            exc.code or exc.kind,
            headers={**(retry_after(exc) or {}), "x-request-id": meta.request_id},
        )
    except asyncio.CancelledError as exc:
        if left_unsent(exc):  # cancelled before it went out: settled at what earlier attempts cost, as their rows say
            settle_when_final(gw, admitted.budgets, attempts)
        else:  # whether the upstream answered is not known
            await settle(gw, admitted.budgets, None, unknown=True)
        raise
    except BaseException:  # a bug: whether the upstream answered is not known
        await settle(gw, admitted.budgets, None, unknown=True)
        raise
    finally:
        gw.guard.slots.release()
    await settle(gw, admitted.budgets, None, paid=cost)
    if gw.journal is not None:
        await gw.journal.durable_async()  # journaled (as journal_sync promises) before the client hears of it
    metrics.observe_usage(Usage(input_tokens=used), cost, name)
    return Embedded(answer, used, meta.request_id, spec.model)


def embedding_model(gw, name: str, route) -> ModelSpec:
    """The one OpenAI-format model `route` embeds with; a RequestError saying why not and what to do."""
    if gw.policy_for(name, route).router is not None or not route.model:
        raise RequestError(
            "model",
            f"route `{name}` picks its model per request (routing policy `{route.policy}`); embeddings need one "
            "fixed model, as vectors of different models cannot be compared: send the embedding model's own name, "
            "or a route whose `model` is it",
        )
    if route.fallback:
        raise RequestError(
            "model",
            f"route `{name}` falls back to {', '.join(route.fallback)}, whose vectors could not be compared with "
            f"`{route.model}`'s (an index built with one model must not receive another's): the gateway does not "
            "fall back for embeddings. Send the model's own name, or a route without `fallback` (retries on the "
            "same model still apply)",
        )
    spec = gw.client.spec_for(route.model)
    if spec.provider not in PROVIDERS:
        why = _WHY_NOT.get(spec.provider, f"the gateway does not forward embeddings to {spec.provider} models yet")
        raise RequestError(
            "model",
            f"route `{name}` reaches model `{route.model}` on provider `{spec.provider}`: {why}. To embed, {_FIX}",
        )
    if spec.provider == "bedrock" and bedrock_embeddings.embedding_model(spec.model) is None:
        raise RequestError(
            "model",
            f"route `{name}` reaches Bedrock model `{spec.model}`, which is no embedding model the gateway reaches "
            f"(it embeds with {', '.join(bedrock_embeddings.MODELS)}). To embed, {_FIX}",
        )
    return spec


def field_refusal(asked: EmbeddingsRequest, spec: ModelSpec, name: str) -> RequestError | None:
    """What of the request the route's model cannot take, named (a 400 before anything is reserved), or None."""
    if spec.provider == "bedrock":
        wrong = bedrock_embeddings.refusal(asked.forwarded(spec.model), spec.model)
        return None if wrong is None else RequestError(wrong.param, f"route `{name}`: {wrong}")
    if "input_type" in asked.body:
        return RequestError(
            "input_type",
            f"route `{name}` reaches `{spec.model}` on provider `{spec.provider}`, which has no `input_type`: only "
            "Cohere Embed models on Bedrock take it; remove it",
        )
    return None


def _reservation(gw, spec: ModelSpec, tokens: int) -> int:
    """The budget reservation (nano-USD): the estimated input at the model's input price (unpriced: 0)."""
    try:
        entry = gw.catalog.lookup(spec.pricing_model, _region(spec))
    except TokenomyError:  # no price where it runs (the row says so when it is recorded): nothing to reserve
        return 0
    return to_nano(Decimal(tokens) * (entry.input or 0) / Decimal(1_000_000))


def _region(spec: ModelSpec) -> str | None:
    return spec.region if spec.region not in (None, "global", "local") else None


async def _embed(
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
    with otel.call_span(spec.model, meta.request_id or "") as parent:  # its attempts' spans are children
        while True:
            if step.delay_s:
                await asyncio.sleep(step.delay_s)
            left = max(0.0, policy.retry.deadline_s - plan.elapsed_s)
            calls, due = _attempt(body, spec, progress, estimate)
            if policy.limiter is not None and not await policy.limiter.acquire_async(due, left, calls):
                # Not an attempt (nothing was sent), so no ledger row: the caller sees a throttle.
                wait = policy.limiter.wait_s(due, calls)  # the caller's Retry-After
                limited = ProviderError(
                    f"client-side rate limit: no request slot for {meta.route!r} within the "
                    f"{policy.retry.deadline_s:g} s deadline (the next in {wait:.1f} s); raise the route's rate_limit "
                    "or deadline_s",
                    kind="throttled",
                    retry_after=wait,
                )
                limited.call_cost_usd = spent
                raise limited
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
                    if not await cost.may_try_again():
                        raise exc.not_retried_for_budget(spent) from None
                    step = following
                    continue
                except (asyncio.CancelledError, Exception) as exc:
                    # Cancelled in flight (the gateway shutting down, a timeout), or a bug: the request went out, so the
                    # upstream bills its input, as a chat call cancelled or crashed so is recorded (at its estimate).
                    # Cancelled before it went out (the pool's connections all busy): nothing sent, no row, as for chat.
                    cancelled = isinstance(exc, asyncio.CancelledError)
                    if cancelled and left_unsent(exc):
                        _void(gw, flight)
                        if policy.limiter is not None:
                            policy.limiter.release(due)
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
                Usage(input_tokens=tokens), pricing, _region(spec), "on_demand", gw.catalog, "embeddings call"
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
