"""OpenAI's `POST /v1/chat/completions` and `GET /v1/models[/{model}]` on the gateway.

Chat completions take the gateway's one path: the virtual key (`Authorization: Bearer`), the route named by
`model`, overload guard, rate limit, budget reservation (`calls.admit`, as `/v1/messages` does), the one call path
(ledger, telemetry, retries, fallback, caching, routing), settlement at the actual cost. The body is validated by
pydantic from the JSON value the edge parsed (`schemas.from_parsed`; from the bytes when the edge has none or it does
not validate, so a 400 reads in JSON's terms: `schemas.parse_chat_request`) and mapped by `openai_ingress`;
answers are OpenAI's chat.completion objects, streams its chat.completion.chunk SSE events. `create_app` serves
this endpoint through the fast path (`fast_path.GatewayApp.serve_directly`), which calls the handler with only the
request: the gateway's state is reached through `request.app.state.gateway`, as every route module does.
`/v1/models` lists the names a caller may send as `model` (in Gemini's shape to google-genai, which asks on the
same path).
"""

from __future__ import annotations

import asyncio
import json
import logging
import time
from collections.abc import AsyncGenerator, AsyncIterator
from typing import Any

from fastapi import APIRouter, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse, Response
from pydantic import ValidationError

from tokenomy.chat_response import StreamChunk
from tokenomy.errors import ProviderError, TokenomyError, described
from tokenomy.gateway import metrics
from tokenomy.gateway.anthropic_errors import anthropic_error
from tokenomy.gateway.anthropic_routes import anthropic_key
from tokenomy.gateway.call_stream import StreamProgress, settled_stream
from tokenomy.gateway.calls import (
    OPENAI_ERROR_TYPES,
    Admitted,
    Refusal,
    admit,
    call_headers,
    retry_after,
    upstream_status,
)
from tokenomy.gateway.fast_path import SENT_PATH
from tokenomy.gateway.gemini_routes import from_gemini_sdk, gemini_model, gemini_models
from tokenomy.gateway.hygiene import PARSED_BODY
from tokenomy.gateway.openai_ingress import caller_param, caller_path, issued_by_azure, to_chat_request
from tokenomy.gateway.openai_shapes import RequestError
from tokenomy.gateway.path_aliases import azure_sent
from tokenomy.gateway.responses import (
    FastJSONResponse,
    FirstChunkStream,
    chunk_delta,
    completion_body,
    error,
    raw_extras,
    signed_reasoning_delta,
    sse,
    usage_body,
)
from tokenomy.gateway.schemas import ChatCompletionRequest, ErrorResponse, from_parsed, parse_chat_request
from tokenomy.gateway.settlement import call_cost, paid, settle_when_final
from tokenomy.gateway.settlement import settle as _settle
from tokenomy.gateway.state import Gateway
from tokenomy.ids import new_id

log = logging.getLogger(__name__)
router = APIRouter()


class ChatStreamEnds:
    """How a chat completions stream ends in an error: OpenAI's error chunk, on which the openai SDK raises APIError."""

    def crashed(self, message: str) -> bytes:
        return _error_chunk(message, "internal_error")

    def unavailable(self, message: str) -> bytes:
        return _error_chunk(message, "service_unavailable")


def _error_chunk(message: str, code: str) -> bytes:
    return (
        b"data: "
        + json.dumps({"error": {"message": message, "type": "server_error", "param": None, "code": code}}).encode()
        + b"\n\n"
    )


ENDS = ChatStreamEnds()


class ChatStreamErrors(ChatStreamEnds):
    """How a chat completions stream answers a call that failed (`call_stream.stream_error`): before the first chunk,
    its error with its own status and the failed attempts' id in the ledger; after it, OpenAI's error chunk."""

    def __init__(self, body: ChatCompletionRequest, request_id: str) -> None:
        self.body = body
        self.request_id = request_id

    def refused(self, exc: TokenomyError) -> Response:
        refused = (
            _provider_error(exc, self.body)
            if isinstance(exc, ProviderError)
            else error(400, str(exc), "invalid_request_error")
        )
        refused.headers["x-request-id"] = self.request_id
        return refused

    def failed(self, exc: TokenomyError) -> bytes:
        kind = exc.kind if isinstance(exc, ProviderError) else "invalid_request_error"
        return (
            b"data: "
            + json.dumps({"error": {"message": str(exc), "type": kind, "param": None, "code": kind}}).encode()
            + b"\n\n"
        )


@router.get("/v1/models")
async def models(request: Request) -> Response:
    """The names clients may send as `model`: routes and configured models (in Gemini's shape to google-genai,
    whose default API version is v1 too)."""
    if from_gemini_sdk(request):
        return await gemini_models(request)
    refused = await _listing_refusal(request)
    if refused is not None:
        return refused
    names = request.app.state.gateway.served_names()
    if _from_anthropic_sdk(request):  # its `models.list()` pages by first_id / last_id
        data = [_anthropic_model(n) for n in names]
        return JSONResponse({"data": data, "has_more": False, "first_id": names[0], "last_id": names[-1]})
    return JSONResponse({"object": "list", "data": [_model_object(n) for n in names]})


@router.get("/v1/models/{model:path}")
async def model(request: Request, model: str) -> Response:
    """One name clients may send as `model` (the openai SDK's `client.models.retrieve`, google-genai's
    `client.models.get`)."""
    if from_gemini_sdk(request):
        return await gemini_model(request, model)
    refused = await _listing_refusal(request)
    if refused is not None:
        return refused
    if model not in request.app.state.gateway.served_names():
        if _from_anthropic_sdk(request):
            return anthropic_error(404, f"model: {model} is not served here; GET /v1/models lists the names to use")
        return error(
            404,
            f"The model `{model}` does not exist on this gateway; GET /v1/models lists the names you can use.",
            "invalid_request_error",
            "model_not_found",
            "model",
        )
    return JSONResponse(_anthropic_model(model) if _from_anthropic_sdk(request) else _model_object(model))


def _from_anthropic_sdk(request: Request) -> bool:
    """A caller of Anthropic's API (its SDK sends `anthropic-version` and `x-api-key`): the listing and its errors
    answer it in Anthropic's shape."""
    return "anthropic-version" in request.headers or "x-api-key" in request.headers


async def _listing_refusal(request: Request) -> JSONResponse | None:
    """With auth on, the served names are for key holders only (OpenAI's and Anthropic's listings need a key too):
    the 401 in Anthropic's shape to its callers, else OpenAI's."""
    if _from_anthropic_sdk(request):
        key = await anthropic_key(request)
    else:
        key = await request.app.state.gateway.authenticate_async(request.headers.get("authorization"))
    return key if isinstance(key, JSONResponse) else None


@router.post(
    "/v1/chat/completions",
    # The body is parsed by pydantic's JSON parser straight from the bytes (not json.loads, then a dict
    # validated): the largest per-request cost for bodies with images and tools. Documented as before.
    openapi_extra={
        "requestBody": {
            "required": True,
            "content": {"application/json": {"schema": {"$ref": "#/components/schemas/ChatCompletionRequest"}}},
        }
    },
    responses={
        400: {"model": ErrorResponse},
        401: {"model": ErrorResponse},
        404: {"model": ErrorResponse},
        429: {"model": ErrorResponse},
        503: {"model": ErrorResponse},
    },
)
async def chat_completions(request: Request):
    """Create a chat completion (streaming with `stream: true`)."""
    gw = request.app.state.gateway
    started = time.perf_counter()
    try:
        body = from_parsed(request.scope.get(PARSED_BODY))  # the edge's value; the bytes when it has none or it fails
        if body is None:
            body = parse_chat_request(await request.body())
    except ValidationError as exc:
        raise RequestValidationError(exc.errors(include_url=False)) from None
    route = gw.route_for(body.model)
    label = body.model if route is not None else "unknown"  # bounded metric labels, whatever clients send
    given = call_headers(request)
    key = await gw.authenticate_async(given.get("authorization"))
    if isinstance(key, JSONResponse):
        return metrics.done(key, label, started)
    if route is None:
        return metrics.done(
            error(
                404,
                f"The model `{body.model}` does not exist on this gateway; GET /v1/models lists the names you can use.",
                "invalid_request_error",
                "model_not_found",
                "model",
            ),
            label,
            started,
        )
    try:
        call = to_chat_request(body, given, key, route)
        if azure_sent(request.scope.get(SENT_PATH)):
            issued_by_azure(call)  # its file ids are Azure's
        refused = gw.refusal(route, call, sent_as_is=True)  # (only its meta's request_id is set below)
    except RequestError as exc:
        return metrics.done(error(400, str(exc), "invalid_request_error", param=exc.param), body.model, started)
    except ValueError as exc:
        return metrics.done(error(400, str(exc), "invalid_request_error"), body.model, started)
    except TokenomyError as exc:  # the route's model cannot be resolved
        return metrics.done(error(400, str(exc), "invalid_request_error"), body.model, started)
    except (TypeError, AttributeError, KeyError) as exc:  # a field of an unexpected shape: the caller's fault
        log.warning("request could not be translated: %s", described(exc))  # not its repr: it may quote the prompt
        return metrics.done(
            error(
                400,
                f"the request has a field of an unexpected shape ({exc}); check it "
                "against OpenAI's chat completions reference",
                "invalid_request_error",
            ),
            body.model,
            started,
        )
    router = gw.policy_for(body.model, route).router
    choices = call.extra.get("n")
    if type(choices) is int and choices > 1 and router is not None and router.judges:
        # The validators judge an answer's first choice: the others would reach the caller unjudged.
        message = (
            f"n: {choices} choices cannot be judged by the validators of route `{body.model}` (a cascade judges one "
            "answer before the caller sees it); send n=1, and several requests for several answers"
        )
        return metrics.done(error(400, message, "invalid_request_error", param="n"), body.model, started)
    if refused is not None:  # named where the caller sent it, not by the content model's indices
        return metrics.done(_provider_error(refused, body), body.model, started)
    # The same admission as /v1/messages; a refusal names the output cap as OpenAI's API spells it.
    admitted = await admit(gw, request, body.model, route, key, call, cap_field="max_tokens or max_completion_tokens")
    if isinstance(admitted, Refusal):
        return metrics.done(
            error(
                admitted.status,
                admitted.message,
                OPENAI_ERROR_TYPES[admitted.code],
                admitted.code,
                headers=admitted.headers,
            ),
            body.model,
            started,
        )
    policy, budgets = admitted.policy, admitted.budgets
    # One id for the answer, its x-request-id header and its ledger rows: the caller can find its call there.
    call.meta.request_id = new_id()
    request_id = f"chatcmpl-{call.meta.request_id}"
    headers = {"x-request-id": call.meta.request_id}
    if body.stream:
        return FirstChunkStream(_stream(gw, call, admitted, body, request_id, started), headers=headers, ends=ENDS)
    cost = call_cost(gw, budgets, admitted.caller_left(), admitted.caller_leaves())
    try:
        response = await gw.client.achat(call, policy=policy, cost=cost)
    except TokenomyError as exc:  # the failed attempts are in the ledger under the same id
        await _settle(gw, budgets, None, paid=paid(exc))
        failed = (
            _provider_error(exc, body)
            if isinstance(exc, ProviderError)
            else error(400, str(exc), "invalid_request_error")
        )
        failed.headers.update(headers)
        return metrics.done(failed, body.model, started)
    except asyncio.CancelledError:  # a graceful shutdown's end, or a caller's timeout: its attempts are (or will
        settle_when_final(gw, budgets, cost)  # be) in the ledger at what they cost
        raise
    except BaseException:  # a bug: whether the provider answered is not known
        await _settle(gw, budgets, None, unknown=True)
        raise
    finally:
        gw.guard.slots.release()
        cost.forget_caller()
    await _settle(gw, budgets, response)
    if gw.journal is not None:
        await gw.journal.durable_async()  # journaled (as journal_sync promises) before the client hears of it
    metrics.observe(response, body.model)
    answer = FastJSONResponse(completion_body(response, body.model, request_id), headers=headers)
    return metrics.done(answer, body.model, started)


def _model_object(name: str) -> dict[str, Any]:
    return {"id": name, "object": "model", "created": 0, "owned_by": "tokenomy"}


def _anthropic_model(name: str) -> dict[str, Any]:
    """A served name as Anthropic's model object (the same epoch as OpenAI's `created: 0`)."""
    return {"type": "model", "id": name, "display_name": name, "created_at": "1970-01-01T00:00:00Z"}


def _provider_error(exc: ProviderError, body: ChatCompletionRequest) -> JSONResponse:
    if exc.refused is not None:  # no model the call could use can take it (nothing was sent): the caller's place
        where = caller_path(body, exc.refused)
        return error(400, exc.refused.error_text(where), "invalid_request_error", "unsupported_content", where)
    if exc.param is not None:  # refused by the mapping before any call: the request's field, where the caller put it
        where = caller_param(body, exc.param)
        message = exc.named(lambda param: caller_param(body, param))
        return error(400, message, "invalid_request_error", "unsupported_parameter", param=where)
    status = upstream_status(exc)
    # The provider's own code (context_length_exceeded, ...) when it sent one: callers branch on it. Its `param` is
    # set only by an OpenAI-format upstream, whose field names are this caller's.
    return error(
        status,
        f"upstream {exc.kind}: {exc}",
        "upstream_error",
        exc.code or exc.kind,
        param=exc.upstream_param,
        headers=retry_after(exc),
        innererror=exc.innererror,
    )


def _stream(
    gw: Gateway, call, admitted: Admitted, body, request_id: str, started: float
) -> AsyncIterator[bytes | Response]:
    """A chat completions stream: chat.completion.chunk events, then `[DONE]` (see `call_stream.settled_stream`)."""
    created = int(time.time())

    def chunk(
        delta: dict,
        finish: str | None = None,
        usage: dict | None = None,
        extra: dict | None = None,
        top: dict | None = None,
    ) -> bytes:
        payload = {
            "id": request_id,
            "object": "chat.completion.chunk",
            "created": created,
            "model": body.model,
            "choices": []
            if usage is not None
            else [{"index": 0, "delta": delta, "finish_reason": finish, **(extra or {})}],
            **(top or {}),
        }
        if usage is not None:
            payload["usage"] = usage
        return sse(payload)

    signed_calls: set[int] = set()  # tool calls whose thought signature went out with them

    async def events(
        pieces: AsyncGenerator[StreamChunk, None], progress: StreamProgress
    ) -> AsyncGenerator[bytes, None]:
        # A routed call streams too; a cascade's cheaper tier is held until it passes (see README, Routing).
        async for piece in pieces:
            rendered = chunk_delta(piece)
            # The first chunk is sent once the call produced something (before that, an error is the answer, with its
            # status; after, it can only end the stream).
            if not progress.sent and (rendered is not None or piece.response is not None):
                progress.sent = True
                # As OpenAI opens: content "" before text, null before an answer that is only tool calls (the
                # SDK's accumulated message then has content None, not "").
                first = rendered[0] if rendered is not None else {}
                calls_only = "tool_calls" in first and not first.get("content")
                yield chunk({"role": "assistant", "content": None if calls_only else ""})
            if rendered is not None:
                if piece.signature and piece.tool_call is not None:
                    signed_calls.add(piece.tool_call.index)
                yield chunk(rendered[0], extra=rendered[1])
            if piece.response is not None:
                progress.final = piece.response
        final = progress.final
        assert final is not None
        if gw.journal is not None:
            await gw.journal.durable_async()  # journaled before the stream tells the client it is complete
        signed = signed_reasoning_delta(final, signed_calls)
        if signed:
            yield chunk(signed)
        top = raw_extras(final, "top")  # system_fingerprint, service_tier, ... as the upstream sent them
        yield chunk({}, final.finish_reason, top=top)
        if body.stream_options and body.stream_options.include_usage:
            yield chunk({}, usage=usage_body(final), top=top)

    ends = ChatStreamErrors(body, call.meta.request_id)
    return settled_stream(gw, call, admitted, body.model, started, ends, events, done=b"data: [DONE]\n\n")
