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
without them refuses them by name (`refusals.document_refusal`); the answer's text keeps its citations.
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
from tokenomy.gateway.block_streams import ToolBlocks
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
    retry_after,
    route_providers,
    upstream_status,
)
from tokenomy.gateway.counting import cannot_count, count, counter_for
from tokenomy.gateway.hygiene import COUNTED_AS, count_in_metrics
from tokenomy.gateway.responses import FirstChunkStream, tokenomy_fields, unsent_redacted
from tokenomy.ids import new_id
from tokenomy.messages import (
    CLAUDE_SIGNED,
    ChatResponse,
    StreamChunk,
    ToolCallDelta,
    Usage,
)
from tokenomy.providers.anthropic_answers import (
    caller_param,
    caller_path,
    message_body,
    stop_reason,
    usage_body,
    usage_fields,
)
from tokenomy.providers.anthropic_inbound import anthropic_only, request_from_anthropic
from tokenomy.providers.anthropic_provider import BETA_HEADER
from tokenomy.providers.reasoning_signers import sealed, sealed_block
from tokenomy.providers.refusals import Unsupported

router = APIRouter()
# What `messages.count_tokens` takes: what the model reads, not how it answers (no max_tokens, sampling, stream).
# A top-level cache_control is taken as messages.create takes it (the SDK's count_tokens sends it too), and so is
# `speed`, which the SDK's count_tokens also takes.
COUNT_FIELDS = frozenset(
    {"model", "messages", "system", "tools", "tool_choice", "thinking", "output_config", "cache_control", "speed"}
)
ERROR_TYPES = {
    400: "invalid_request_error",
    401: "authentication_error",
    403: "permission_error",
    404: "not_found_error",
    405: "invalid_request_error",
    402: "billing_error",
    413: "request_too_large",
    429: "rate_limit_error",
    503: "overloaded_error",
    504: "timeout_error",
    529: "overloaded_error",
}


def error_type(status: int) -> str:
    """Anthropic's error type for a status: another 4xx (an upstream's 422 passed on) is the request's fault, as
    invalid_request_error says; api_error is the server's."""
    return ERROR_TYPES.get(status, "invalid_request_error" if 400 <= status < 500 else "api_error")


def anthropic_error(status: int, message: str, headers: dict[str, str] | None = None) -> JSONResponse:
    """Anthropic's error shape: {"type": "error", "error": {"type", "message"}}."""
    return JSONResponse(
        {"type": "error", "error": {"type": error_type(status), "message": message}},
        status_code=status,
        headers=headers,
    )


def failure_parts(exc: TokenomyError, body: dict[str, Any]) -> tuple[int, str, dict[str, str] | None]:
    """Status, message and headers for a call that failed, a refused field named as the Messages API caller sent it
    (`messages.1.content.0`): shared with Bedrock's InvokeModel, whose bodies are Messages API bodies."""
    if not isinstance(exc, ProviderError):
        return 400, str(exc), None
    if exc.refused is not None:  # no model the call could use can take it (nothing was sent): the caller's place
        return 400, exc.refused.error_text(caller_path(body, exc.refused)), None
    if exc.param is not None:  # the provider's mapping refused a field before any call: named as the caller sent it
        return 400, exc.named(lambda param: caller_param(param, body)), None
    return upstream_status(exc), f"upstream {exc.kind}: {exc}", retry_after(exc)


def _failure(exc: TokenomyError, body: dict[str, Any]) -> JSONResponse:
    status, message, headers = failure_parts(exc, body)
    # An overloaded upstream is Anthropic's 529 overloaded_error, which Anthropic-SDK applications and coding agents
    # wait out and retry as such (InvokeModel's callers get Bedrock's 503 ServiceUnavailableException).
    return anthropic_error(529 if status == 503 else status, message, headers)


def _sse(event: str, data: dict[str, Any]) -> bytes:
    return f"event: {event}\ndata: {json.dumps(data, separators=(',', ':'))}\n\n".encode()


class EventWriter(ToolBlocks):
    """Turns StreamChunks into Anthropic SSE events, opening a new content block whenever the kind changes (tool
    calls' blocks as `ToolBlocks` orders them)."""

    def __init__(self, message_id: str, model: str, body: dict[str, Any] | None = None) -> None:
        self.message_id, self.model = message_id, model
        self.body = body or {}  # the request, to name a refused field as the caller sent it
        self.index = -1
        self.open: str | None = None
        self.tool_blocks: dict[int, int] = {}  # a tool call's index -> its content-block index
        self.held: list[StreamChunk] = []
        self.model_refused = False  # an OpenAI-format model streamed a refusal: the message stops with "refusal"
        self.redacted_sent = 0  # redacted reasoning blocks sent in their place (StreamChunk.redacted)
        self.opened = False  # message_start went out

    def _event(self, event: str, data: dict[str, Any]) -> bytes:
        """One event on the wire: SSE here; Bedrock's InvokeModelWithResponseStream wraps the same events."""
        return _sse(event, data)

    def start(self) -> list[bytes]:
        # message_start waits for the first piece: an Anthropic upstream's counts (StreamChunk.start_usage) ride on it
        return []

    def _opening(self, usage: Usage | None) -> list[bytes]:
        if self.opened:
            return []
        self.opened = True
        return [self._message_start(usage)]

    def refused(self, exc: TokenomyError) -> Response:
        refused = _failure(exc, self.body)
        refused.headers["request-id"] = self.message_id.removeprefix("msg_")  # the failed attempts' id in the ledger
        return refused

    def failed(self, exc: TokenomyError) -> bytes:
        if isinstance(exc, ProviderError) and exc.kind == "throttled":
            kind = "rate_limit_error"
        elif isinstance(exc, ProviderError) and upstream_status(exc) == 503:
            kind = "overloaded_error"  # as Anthropic's API ends a stream it cannot finish for load
        elif isinstance(exc, ProviderError) and exc.kind == "timeout":
            kind = "timeout_error"
        elif isinstance(exc, ProviderError) and exc.kind != "client_error":
            kind = "api_error"
        else:
            kind = "invalid_request_error"
        return self._event("error", {"type": "error", "error": {"type": kind, "message": str(exc)}})

    def crashed(self, message: str) -> bytes:
        return self._event("error", {"type": "error", "error": {"type": "api_error", "message": message}})

    def unavailable(self, message: str) -> bytes:
        return self._event("error", {"type": "error", "error": {"type": "overloaded_error", "message": message}})

    def _message_start(self, usage: Usage | None) -> bytes:
        """An upstream that reports usage as its answer begins (Anthropic's API) has its input and cache counts
        passed on; any other reports them at the end only, so they are 0 here and come in message_delta."""
        return self._event(
            "message_start",
            {
                "type": "message_start",
                "message": {
                    "id": self.message_id,
                    "type": "message",
                    "role": "assistant",
                    "model": self.model,
                    "content": [],
                    "stop_reason": None,
                    "stop_sequence": None,
                    "usage": usage_fields(usage) if usage is not None else {"input_tokens": 0, "output_tokens": 0},
                },
            },
        )

    def _close(self) -> list[bytes]:
        if self.open is None:
            return []
        self.open = None
        return [self._event("content_block_stop", {"type": "content_block_stop", "index": self.index})]

    def _begin(self, kind: str, block: dict[str, Any]) -> list[bytes]:
        out = self._close()
        self.index += 1
        self.open = kind
        return [
            *out,
            self._event(
                "content_block_start", {"type": "content_block_start", "index": self.index, "content_block": block}
            ),
        ]

    def _delta(self, delta: dict[str, Any]) -> bytes:
        return self._event("content_block_delta", {"type": "content_block_delta", "index": self.index, "delta": delta})

    def chunk(self, piece: StreamChunk) -> list[bytes]:
        return self._opening(piece.start_usage) + self.pieces(piece)

    def _begin_tool(self, call: ToolCallDelta) -> list[bytes]:
        return self._begin("tool_use", {"type": "tool_use", "id": call.id or "", "name": call.name or "", "input": {}})

    def _tool_delta(self, arguments: str) -> bytes:
        return self._delta({"type": "input_json_delta", "partial_json": arguments})

    def _content(self, piece: StreamChunk) -> list[bytes]:
        out: list[bytes] = []
        if piece.redacted is not None:  # whole, where the model put it
            data = sealed(piece.redacted, piece.signer, CLAUDE_SIGNED)
            out += self._begin("redacted", {"type": "redacted_thinking", "data": data}) + self._close()
            self.redacted_sent += 1
        if piece.block is not None:  # a server tool's call or result, whole, where the model put it
            out += self._provider_block(piece.block.data)
        if piece.citations is not None:  # a cited text: a block of its own, its citations before its text
            out += self._begin("cited", {"type": "text", "text": "", "citations": []})
            out += [self._delta({"type": "citations_delta", "citation": cited}) for cited in piece.citations]
            if piece.delta:
                out.append(self._delta({"type": "text_delta", "text": piece.delta}))
            return out + self._close()
        if piece.reasoning or piece.signature:
            # A signature riding on a text or tool-call piece (Gemini's) is a block of its own before that part.
            riding = piece.signature is not None and not piece.reasoning and (piece.delta or piece.tool_call)
            if self.open != "thinking" or riding:
                out += self._begin("thinking", {"type": "thinking", "thinking": "", "signature": ""})
            if piece.reasoning:
                out.append(self._delta({"type": "thinking_delta", "thinking": piece.reasoning}))
            if piece.signature:  # it closes its block: a thinking block right after it is one of its own
                signature = sealed(piece.signature, piece.signer, CLAUDE_SIGNED)  # who signed it, if not Claude
                out.append(self._delta({"type": "signature_delta", "signature": signature}))
                out += self._close()
        # An OpenAI-format model's refusal streams in `delta.refusal`: the Messages API has only text for it.
        refused = ((piece.extra or {}).get("delta") or {}).get("refusal")
        text = (piece.delta or "") + (refused if isinstance(refused, str) else "")
        self.model_refused = self.model_refused or bool(isinstance(refused, str) and refused)
        if text:
            if self.open != "text":
                out += self._begin("text", {"type": "text", "text": ""})
            out.append(self._delta({"type": "text_delta", "text": text}))
        return out

    def _provider_block(self, data: dict[str, Any]) -> list[bytes]:
        """A server tool's block as Anthropic streams it: a call's input in an input_json_delta, a result whole."""
        if data.get("type") != "server_tool_use":
            return self._begin("server", data) + self._close()
        out = self._begin("server", {**data, "input": {}})
        out.append(self._delta({"type": "input_json_delta", "partial_json": json.dumps(data.get("input") or {})}))
        return out + self._close()

    def finish(self, response: ChatResponse) -> list[bytes]:
        out = self._opening(None) + self.release_held()
        for block in unsent_redacted(response, self.redacted_sent):  # opaque reasoning the stream did not carry
            data = sealed_block(block, CLAUDE_SIGNED).redacted
            out += self._begin("redacted", {"type": "redacted_thinking", "data": data}) + self._close()
        out.append(
            self._event(
                "message_delta",
                {
                    "type": "message_delta",
                    "delta": {
                        "stop_reason": "refusal" if self.model_refused else stop_reason(response),
                        "stop_sequence": response.stop_sequence or None,
                    },
                    "usage": usage_body(response),
                },
            )
        )
        out.append(self._event("message_stop", {"type": "message_stop"}))
        return out


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
        return _failure(exc, body)
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
        # Refused before any call or budget reservation, as on /v1/chat/completions, naming the caller's place.
        refused = refusal(gw, route, call, name, "Anthropic", ("anthropic",))
        if refused is not None:
            return metrics.done(_failure(refused, body), name, started)
        beta = request.headers.get(BETA_HEADER)
        # Beta features of Anthropic's API, which no other has: for a route whose every model is Anthropic's
        only_anthropic = not others and providers == {"anthropic"}
        if beta and only_anthropic:
            call.extra[BETA_HEADER] = beta
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
    response = await call_whole(gw, call, admitted, name, lambda exc: _failure(exc, body))
    if isinstance(response, Response):
        response.headers.update(headers)
        return metrics.done(response, name, started)
    body_out = message_body(response, name, message_id)
    body_out["tokenomy"] = tokenomy_fields(response)
    return metrics.done(JSONResponse(body_out, headers=headers), name, started)
