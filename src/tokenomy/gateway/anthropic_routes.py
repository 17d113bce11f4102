"""`POST /v1/messages`: Anthropic's Messages API on the gateway, for Anthropic-SDK applications and agents.

The same path as `/v1/chat/completions`: a virtual key (`x-api-key` or `Authorization: Bearer`), the
route named by `model`, overload guard, rate limit, budget reservation, the one call path (ledger,
telemetry, retries, fallback, caching), settlement. Requests and answers are mapped with the
Anthropic provider's own block functions in reverse (`providers.anthropic_inbound` reads requests,
`providers.anthropic_answers` writes answers), so tools, images,
documents, thinking and cache_control reach whichever model the route names, or are refused with a 400
naming the field. Streams use Anthropic's SSE events (message_start, content_block_start/delta/
stop with text_delta, input_json_delta, thinking_delta, signature_delta and citations_delta, message_delta,
message_stop). Anthropic's server tools (web search, web fetch), their blocks and text citations reach a route whose
models are all on Anthropic's API, and are refused by name for any other (`anthropic_inbound.anthropic_only`). A
document's citations, context, url source and content source with images reach Anthropic's API, and each provider
without them refuses them by name (`block_refusals.document_refusal`); the answer's text keeps its citations.
"""

from __future__ import annotations

import json
import time
from dataclasses import replace
from typing import Any

from fastapi import APIRouter, Request
from fastapi.responses import JSONResponse, Response

from tokenomy.errors import ProviderError, TokenomyError
from tokenomy.gateway import metrics
from tokenomy.gateway.anthropic_errors import anthropic_error, failure
from tokenomy.gateway.anthropic_events import EventWriter
from tokenomy.gateway.call_stream import call_streamed
from tokenomy.gateway.calls import (
    Refusal,
    admit,
    call_whole,
    gate,
    json_body,
    leave_out_standard_only,
    refusal,
    request_meta,
    route_providers,
)
from tokenomy.gateway.counting import cannot_count, count, counter_for
from tokenomy.gateway.metrics_counting import COUNTED_AS, count_in_metrics
from tokenomy.gateway.responses import FirstChunkStream, tokenomy_fields
from tokenomy.ids import new_id
from tokenomy.providers.anthropic_answers import (
    caller_path,
    message_body,
)
from tokenomy.providers.anthropic_inbound import anthropic_only, request_from_anthropic
from tokenomy.providers.anthropic_provider import BETA_HEADER
from tokenomy.providers.refusals import Unsupported

router = APIRouter()
# What `messages.count_tokens` takes: what the model reads, not how it answers (no max_tokens, sampling, stream).
# A top-level cache_control is taken as messages.create takes it (the SDK's count_tokens sends it too), and so is
# `speed`, which the SDK's count_tokens also takes.
COUNT_FIELDS = frozenset(
    {"model", "messages", "system", "tools", "tool_choice", "thinking", "output_config", "cache_control", "speed"}
)

# Headers the anthropic SDK's messages.create sends for two of its parameters, which no upstream of the gateway gets:
# it calls Anthropic with its own key, whose workspace and billing its operator set, and the other APIs have neither.
# Left out unsaid, the call would be billed to a workspace or profile its caller did not ask for: refused, named.
UNCARRIED_HEADERS = {
    "anthropic-workspace-id": (
        "workspace_id",
        "the gateway calls Anthropic with its own key, in the workspace its operator chose; remove workspace_id "
        "(the ledger tells your calls apart by your gateway key and its x-tokenomy-tags)",
    ),
    "anthropic-user-profile-id": (
        "user_profile_id",
        "the gateway calls Anthropic with its own key, which no user profile is billed through; remove "
        "user_profile_id (name your end user with metadata.user_id)",
    ),
}


def uncarried_header(headers: Any) -> str | None:
    """The 400's message for a header of `UNCARRIED_HEADERS` among the request's, or None."""
    for header, (parameter, fix) in UNCARRIED_HEADERS.items():
        if headers.get(header) is not None:
            return f"{parameter} (the `{header}` header): {fix}"
    return None


async def anthropic_key(request: Request) -> Any:
    """The caller's virtual key (`x-api-key` or `Authorization: Bearer`; None with auth off), or Anthropic's error."""
    secret = request.headers.get("x-api-key")
    gw = request.app.state.gateway
    key = await gw.authenticate_async(f"Bearer {secret}" if secret else request.headers.get("authorization"))
    if isinstance(key, JSONResponse):
        message = json.loads(bytes(key.body))["error"]["message"]
        return anthropic_error(
            key.status_code,
            message.replace(
                "send `Authorization: Bearer <key>`", "send `x-api-key: <key>` or `Authorization: Bearer <key>`"
            ),
        )
    return key


async def message_caller(request: Request, body: Any) -> tuple[str, Any, Any] | JSONResponse:
    """(route name, route, key) of a Messages API request, or the Anthropic error for a bad key, a body without a
    model, or a model the gateway does not serve (looked up in that order, as on `/v1/messages`)."""
    gw = request.app.state.gateway
    model = body.get("model")
    name: str = model if isinstance(model, str) else ""
    route = gw.route_for(name) if name else None
    key = await anthropic_key(request)
    if isinstance(key, JSONResponse):
        return key
    if not name:
        return anthropic_error(400, "model: Field required (a string; GET /v1/models lists the names you can use)")
    if route is None:
        return anthropic_error(
            404, f"model: `{name}` does not exist on this gateway; GET /v1/models lists the names you can use."
        )
    return name, route, key


@router.post("/v1/messages/count_tokens")
async def count_message_tokens(request: Request):
    """Count a Messages API request's input tokens (`client.messages.count_tokens`): `{"input_tokens": N}`, as the
    route's first model counts them; nothing is generated, reserved against a budget or written to the ledger."""
    try:
        body = await json_body(request)
    except ValueError as exc:
        return count_in_metrics(
            request.scope, anthropic_error(400, f"the request body is not valid JSON ({exc}); send a JSON object")
        )
    if not isinstance(body, dict):
        return count_in_metrics(request.scope, anthropic_error(400, "the request body must be a JSON object"))
    return await count_answer(request, body)


async def count_answer(request: Request, body: dict[str, Any]) -> Response:
    """`{"input_tokens": N}` for a count_tokens body (its `model` naming the route), or Anthropic's error, counted in
    /metrics under the route (as a message is): shared with Vertex AI's count-tokens:rawPredict, whose bodies are
    these."""
    return count_in_metrics(request.scope, await _count_answer(request, body))


async def _count_answer(request: Request, body: dict[str, Any]) -> Response:
    gw = request.app.state.gateway
    caller = await message_caller(request, body)
    if isinstance(caller, JSONResponse):
        return caller
    name, route, key = caller
    request.scope[COUNTED_AS] = name
    unknown = sorted(key for key in set(body) - COUNT_FIELDS if body[key] is not None)  # a null is the SDK's unset
    if unknown:  # as Anthropic's endpoint refuses them: they shape an answer, and counting makes none
        return anthropic_error(
            400, f"{unknown[0]}: Extra inputs are not permitted (count_tokens takes {', '.join(sorted(COUNT_FIELDS))})"
        )
    uncarried = uncarried_header(request.headers)  # the SDK's count_tokens sends them as messages.create does
    if uncarried is not None:
        return anthropic_error(400, uncarried)
    try:
        # The mapping wants an answer's cap; a count has none, so a placeholder stands in and is taken out again.
        # `speed` changes no count, and a count is billed nothing: not carried, so fast mode's price check stays out.
        counted = {key: value for key, value in body.items() if key != "speed"}
        call = replace(request_from_anthropic({**counted, "max_tokens": 1}), max_tokens=None)
        counter = counter_for(gw, name, route, call, "Anthropic", ("anthropic",))
        if isinstance(counter, Unsupported):
            return anthropic_error(400, counter.error_text(caller_path(body, counter)))
        beta = request.headers.get(BETA_HEADER)
        if beta and counter.provider.name == "anthropic":
            counter.request.extra[BETA_HEADER] = beta
    except (ValueError, TokenomyError) as exc:
        return anthropic_error(400, str(exc))
    admitted = await gate(gw, key)  # counting is free: no budget reservation, no call slot
    if admitted is not None:
        return anthropic_error(admitted.status, admitted.message, admitted.headers)
    try:
        tokens = await count(counter)
    except ProviderError as exc:
        if cannot_count(exc):
            return anthropic_error(400, f"`{name}` counts with model `{counter.model}`: {exc}")
        return failure(exc, body)
    return JSONResponse({"input_tokens": tokens})


@router.post("/v1/messages")
async def create_message(request: Request):
    """Create a message in Anthropic's Messages API shape (streaming with `stream: true`)."""
    gw = request.app.state.gateway
    started = time.perf_counter()
    try:
        body = await json_body(request)
    except ValueError as exc:
        return metrics.done(
            anthropic_error(
                400,
                f"the request body is not valid JSON ({exc}); send a JSON object "
                'such as {"model": ..., "max_tokens": ..., "messages": [...]}',
            ),
            "unknown",
            started,
        )
    if not isinstance(body, dict):
        return metrics.done(anthropic_error(400, "the request body must be a JSON object"), "unknown", started)
    caller = await message_caller(request, body)
    if isinstance(caller, JSONResponse):
        model = body.get("model")
        known = isinstance(model, str) and bool(model) and gw.route_for(model) is not None
        label = str(model) if known else "unknown"  # bounded metric labels, whatever clients send
        return metrics.done(caller, label, started)
    name, route, key = caller
    return await answer_message(request, body, name, route, key, started, stream=bool(body.get("stream")))


async def answer_message(
    request: Request, body: dict[str, Any], name: str, route: Any, key: Any, started: float, stream: bool
) -> Response:
    """A Messages API request from a known caller to route `name`, answered as `/v1/messages` answers it (Claude's
    message, or Anthropic's SSE events with `stream`): shared with Vertex AI's rawPredict, whose bodies are these."""
    gw = request.app.state.gateway
    try:
        uncarried = uncarried_header(request.headers)
        if uncarried is not None:
            raise ValueError(uncarried)
        call = request_from_anthropic(body)
        call.meta = request_meta(request, route, key, name)
        # Server tools, their blocks and citations: to Anthropic's API only (looked for when the route may leave it)
        providers = route_providers(gw, route, name)
        others = sorted(providers - {"anthropic"})
        leave_out_standard_only(call, providers)
        only = anthropic_only(call) if others else None
        if only is not None:
            where, what = only
            bedrock = " (Claude on Bedrock runs no server tools)" if "aws.bedrock" in others else ""
            message = (
                f"{where}: {what}, and `{name}` may reach {', '.join(others)} models, which cannot take it{bedrock}; "
                "remove it or use a route whose models are all on Anthropic's API"
            )
            return metrics.done(anthropic_error(400, message), name, started)
        beta = request.headers.get(BETA_HEADER)
        # Beta features of Anthropic's API, which no other has: for a route whose every model is Anthropic's. Set
        # before the refusals, which read one (interleaved thinking lets a thinking budget exceed max_tokens).
        only_anthropic = not others and providers == {"anthropic"}
        if beta and only_anthropic:
            call.extra[BETA_HEADER] = beta
        # Refused before any call or budget reservation, as on /v1/chat/completions, naming the caller's place.
        refused = refusal(gw, route, call, name, "Anthropic", ("anthropic",))
        if refused is not None:
            return metrics.done(failure(refused, body), name, started)
    except (ValueError, TokenomyError) as exc:
        return metrics.done(anthropic_error(400, str(exc)), name, started)
    call.model = route.model or name
    admitted = await admit(gw, request, name, route, key, call)
    if isinstance(admitted, Refusal):
        return metrics.done(anthropic_error(admitted.status, admitted.message, admitted.headers), name, started)
    # One id for the message, its request-id header (the SDK's `_request_id`) and its ledger rows.
    call.meta.request_id = new_id()
    message_id = f"msg_{call.meta.request_id}"
    headers = {"request-id": call.meta.request_id}
    if stream:
        writer = EventWriter(message_id, name, body)
        return FirstChunkStream(call_streamed(gw, call, admitted, name, started, writer), headers=headers, ends=writer)
    response = await call_whole(gw, call, admitted, name, lambda exc: failure(exc, body))
    if isinstance(response, Response):
        response.headers.update(headers)
        return metrics.done(response, name, started)
    body_out = message_body(response, name, message_id)
    body_out["tokenomy"] = tokenomy_fields(response)
    return metrics.done(JSONResponse(body_out, headers=headers), name, started)
