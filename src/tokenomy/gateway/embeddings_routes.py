"""`POST /v1/embeddings` (the openai SDK's `client.embeddings.create`) on OpenAI-format upstreams, Azure OpenAI and
Amazon Bedrock's embedding models (Titan Text Embeddings V2, Cohere Embed).

An embeddings call is no chat, so it does not take the client's chat path (`Tokenomy.achat`); it takes every step
around it that a chat call takes: the virtual key, admission (`calls.admit`: overload guard, the key's rate limit,
the budget reserved at the estimated input), the route's rate limit and retries, one ledger row and one span per
attempt (`embeddings_attempts`; priced by `pricing.cost.compute_cost`, the one place a cost is computed), settlement
at the actual cost, the journal made durable before the answer, and the metrics. The body goes to the upstream's
`/embeddings` over the gateway's pooled upstream (`upstream.AsyncOpenAIUpstream.aembed`), or to an Azure
deployment's through the Azure provider's SDK client (`AzureOpenAIProvider.embed`), as the caller sent it, `model`
replaced by the route's model (for Azure, the deployment). A Bedrock model is reached through the Bedrock provider's
InvokeModel (`BedrockProvider.embed`, in a thread as Azure's), which turns the request into the model's own bodies
and the answers back into OpenAI's shape (`providers.bedrock_embeddings`: one call per text for Titan, batches of 96
for Cohere; base64 encoded by the gateway; a retry sends only the calls that did not answer, which Bedrock has not
billed); what of the request the model cannot take (token ids, `dimensions` it cannot give, `user`) is refused by
name before anything is reserved. Ledger rows carry the tag `operation: embeddings` (the schema has no operation
column, and tags are grouped by every report already).

Refused before anything is sent or reserved, with a 400 saying what to do: a route whose model has no embeddings
reachable here (Anthropic has no embeddings API; Gemini and the local model are not forwarded; a Bedrock model that
is no embedding model), a routing policy (it picks a model per request), and fallbacks: vectors of two models
cannot be compared, so an index built with one model must never receive the other's. The gateway's one extension
field, `input_type`, is refused by every model but Cohere Embed's.
"""

from __future__ import annotations

import asyncio
import time
from dataclasses import dataclass
from decimal import Decimal
from typing import Any

from fastapi import APIRouter, Request
from starlette.responses import JSONResponse, Response

from tokenomy.chat_response import Usage
from tokenomy.errors import ProviderError, TokenomyError
from tokenomy.gateway import metrics
from tokenomy.gateway.calls import (
    Refusal,
    admit,
    json_body,
    request_meta,
    retry_after,
    upstream_status,
)
from tokenomy.gateway.embeddings_attempts import embed_with_retries
from tokenomy.gateway.embeddings_request import REQUEST_SCHEMA, EmbeddingsRequest, parse_embeddings_request
from tokenomy.gateway.limits import to_nano
from tokenomy.gateway.openai_shapes import RequestError
from tokenomy.gateway.responses import FastJSONResponse, error
from tokenomy.gateway.schemas import ErrorResponse
from tokenomy.gateway.settlement import call_cost, settle, settle_when_final
from tokenomy.ids import new_id
from tokenomy.pricing.identifiers import pricing_region
from tokenomy.providers import bedrock_embeddings
from tokenomy.providers.http_faults import left_unsent
from tokenomy.providers.registry import ModelSpec

router = APIRouter()
_ERROR_TYPES = {  # OpenAI's error `type` for each admission refusal code, as for chat completions
    "caller_left": "invalid_request_error",
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
    reserved = _reservation(gw, spec, asked.bound_tokens())  # the input's upper bound, as a chat prompt's
    admitted = await admit(gw, request, name, route, key, None, estimate_nano=reserved)
    if isinstance(admitted, Refusal):
        return Failure(
            admitted.status, admitted.message, _ERROR_TYPES[admitted.code], name, admitted.code, None, admitted.headers
        )
    meta.request_id = new_id()
    attempts = call_cost(gw, admitted.budgets, admitted.caller_left(), admitted.caller_leaves())
    try:
        answer, used, cost = await embed_with_retries(gw, asked, spec, admitted.policy, meta, tokens, attempts)
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
        attempts.forget_caller()
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
    """The budget reservation (nano-USD): the input's upper bound at the model's input price (unpriced: 0)."""
    try:
        entry = gw.catalog.lookup(spec.pricing_model, pricing_region(spec.region))
    except TokenomyError:  # no price where it runs (the row says so when it is recorded): nothing to reserve
        return 0
    return to_nano(Decimal(tokens) * (entry.input or 0) / Decimal(1_000_000))
