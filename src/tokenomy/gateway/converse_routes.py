"""Bedrock Runtime's Converse API on the gateway (`POST /model/{modelId}/converse` and `/converse-stream`), so an
application on boto3's `bedrock-runtime` client moves behind Tokenomy by pointing `endpoint_url` at it:

    boto3.client("bedrock-runtime", endpoint_url="https://gateway", region_name="us-east-1")
    with AWS_BEARER_TOKEN_BEDROCK=<gateway key>   (boto3 1.39 or later sends it as `Authorization: Bearer`)

botocore sends a bearer token to an https endpoint only. Over plain http (a gateway on localhost), the key goes as
the access key id instead: AWS_ACCESS_KEY_ID=<gateway key>, AWS_SECRET_ACCESS_KEY=<anything>. The gateway reads the
key from the signature's credential scope and does not check the signature (it holds no AWS secret to check it
with), so the key is exposed exactly as a bearer token over http would be.

`modelId` names a gateway route or model, as `model` does on the other APIs. The same path as
`/v1/chat/completions`: the virtual key, overload guard, rate limit, budget reservation, the one call path (ledger,
telemetry, retries, fallback, caching, routing), settlement. Requests are read by `providers.converse_request`,
answers written by `providers.converse_answers`; streams are AWS event-stream frames (messageStart,
contentBlockStart/Delta/Stop, messageStop, metadata), errors are Bedrock's (`x-amzn-ErrorType`), which botocore
raises as its own exceptions.
"""

from __future__ import annotations

import json
import time
from typing import Any

from fastapi import APIRouter, Request
from fastapi.responses import JSONResponse, Response

from tokenomy.chat_response import ChatResponse, StreamChunk, ToolCallDelta
from tokenomy.errors import ProviderError, TokenomyError
from tokenomy.gateway import metrics
from tokenomy.gateway.block_streams import ToolBlocks
from tokenomy.gateway.call_stream import call_streamed
from tokenomy.gateway.calls import (
    Refusal,
    admit,
    call_whole,
    json_body,
    refusal,
    request_meta,
    retry_after,
    upstream_status,
)
from tokenomy.gateway.keys import VirtualKey
from tokenomy.gateway.responses import FirstChunkStream, unsent_redacted
from tokenomy.ids import new_id
from tokenomy.messages import CLAUDE_SIGNED, ChatRequest
from tokenomy.providers import eventstream
from tokenomy.providers.converse_answers import answer_body, asked_fields, redacted_blob, stop_reason, usage_body
from tokenomy.providers.converse_request import caller_param, request_from_converse, stop_sequence_paths
from tokenomy.providers.reasoning_signers import sealed, sealed_block

router = APIRouter()
SIGV4 = "AWS4-HMAC-SHA256 "
KEY_PREFIX = "tk-"  # every gateway key's (gateway.keys.KeyStore.create)
ERROR_CODES = {
    400: "ValidationException",
    401: "AccessDeniedException",
    403: "AccessDeniedException",
    404: "ResourceNotFoundException",
    408: "ModelTimeoutException",
    413: "ValidationException",
    429: "ThrottlingException",
    503: "ServiceUnavailableException",
    504: "ModelTimeoutException",  # the model did not answer within its timeout_s (Bedrock's own is a 408)
}
# The same failures inside a stream, as ConverseStream's modelled exception events.
STREAM_ERRORS = {
    "ThrottlingException": "throttlingException",
    "ValidationException": "validationException",
    "ServiceUnavailableException": "serviceUnavailableException",
}


def bedrock_error(
    status: int, message: str, headers: dict[str, str] | None = None, code: str | None = None
) -> JSONResponse:
    """Bedrock's REST-JSON error: the type in `x-amzn-ErrorType`, `{"message"}` in the body. A client error Bedrock
    has no type of its own for (an upstream's 409 or 422) is the caller's request: a ValidationException."""
    fallback = "ValidationException" if status < 500 else "InternalServerException" if status < 502 else None
    code = code or ERROR_CODES.get(status, fallback or "ServiceUnavailableException")
    return JSONResponse({"message": message}, status_code=status, headers={"x-amzn-ErrorType": code, **(headers or {})})


def _provider_error(exc: TokenomyError, call: ChatRequest | None = None) -> JSONResponse:
    """The error for `exc`, a place in `call` (the request as read) named as its caller sent it."""
    if not isinstance(exc, ProviderError):
        return bedrock_error(400, str(exc))
    if exc.refused is not None:  # no model the call could use can take it (nothing was sent): the caller's place
        return bedrock_error(400, exc.refused.error_text(caller_param(exc.refused.where, call)))
    if exc.param is not None:  # a mapping refused a field before any call: named as the caller sent it
        return bedrock_error(400, exc.named(lambda param: caller_param(param, call)))
    return bedrock_error(upstream_status(exc), f"upstream {exc.kind}: {exc}", retry_after(exc))


class EventWriter(ToolBlocks):
    """Turns StreamChunks into ConverseStream events, a new content block whenever the kind changes; each tool call
    is a block of its own, opened by contentBlockStart with its id and name (in the order `ToolBlocks` gives)."""

    def __init__(self, request_id: str, stop_paths: list[str] | None = None, call: ChatRequest | None = None) -> None:
        self.request_id = request_id
        self.call = call  # the request as read, whose places an error names as its caller sent them
        self.stop_paths = stop_paths  # the stop-sequence paths the request asked for (converse_request)
        self.index = -1
        self.open: str | None = None
        self.tool_blocks: dict[int, int] = {}  # a tool call's index -> its content-block index
        self.held: list[StreamChunk] = []
        self.redacted_sent = 0  # redacted reasoning blocks sent in their place (StreamChunk.redacted)

    def start(self) -> list[bytes]:
        return [eventstream.event("messageStart", {"role": "assistant"})]

    def refused(self, exc: TokenomyError) -> Response:
        refused = _provider_error(exc, self.call)
        refused.headers["x-amzn-RequestId"] = self.request_id  # the failed attempts' id in the ledger
        return refused

    def failed(self, exc: TokenomyError) -> bytes:
        code = _provider_error(exc).headers["x-amzn-ErrorType"]
        return eventstream.exception(STREAM_ERRORS.get(code, "modelStreamErrorException"), str(exc))

    def crashed(self, message: str) -> bytes:
        return eventstream.exception("internalServerException", message)

    def unavailable(self, message: str) -> bytes:
        return eventstream.exception("serviceUnavailableException", message)

    def _close(self) -> list[bytes]:
        if self.open is None:
            return []
        self.open = None
        return [eventstream.event("contentBlockStop", {"contentBlockIndex": self.index})]

    def _begin(self, kind: str) -> list[bytes]:
        out = self._close()
        self.index += 1
        self.open = kind
        return out

    def _delta(self, delta: dict[str, Any]) -> bytes:
        return eventstream.event("contentBlockDelta", {"contentBlockIndex": self.index, "delta": delta})

    def _redacted(self, data: str) -> list[bytes]:  # opaque reasoning streams as one delta, in a block of its own
        out = self._begin("redacted")
        out.append(self._delta({"reasoningContent": {"redactedContent": redacted_blob(data)}}))
        return out + self._close()

    def chunk(self, piece: StreamChunk) -> list[bytes]:
        return self.pieces(piece)

    def _begin_tool(self, call: ToolCallDelta) -> list[bytes]:
        out = self._begin("tool")
        start = {"toolUse": {"toolUseId": call.id or "", "name": call.name or ""}}
        return [*out, eventstream.event("contentBlockStart", {"contentBlockIndex": self.index, "start": start})]

    def _tool_delta(self, arguments: str) -> bytes:
        return self._delta({"toolUse": {"input": arguments}})

    def _content(self, piece: StreamChunk) -> list[bytes]:
        out: list[bytes] = []
        if piece.redacted is not None:  # whole, where the model put it
            out += self._redacted(sealed(piece.redacted, piece.signer, CLAUDE_SIGNED))
            self.redacted_sent += 1
        if piece.reasoning or piece.signature:
            riding = piece.signature is not None and not piece.reasoning and (piece.delta or piece.tool_call)
            if self.open != "reasoning" or riding:  # a signature on a text or call piece (Gemini's) is its own block
                out += self._begin("reasoning")
            if piece.reasoning:
                out.append(self._delta({"reasoningContent": {"text": piece.reasoning}}))
            if piece.signature:  # it closes its block: a reasoning block right after it is one of its own
                signature = sealed(piece.signature, piece.signer, CLAUDE_SIGNED)  # who signed it, if not Claude
                out.append(self._delta({"reasoningContent": {"signature": signature}}))
                out += self._close()
        refused = piece.refusal  # an OpenAI-format model's: text here
        text = (piece.delta or "") + (refused if isinstance(refused, str) else "")
        if text:
            if self.open != "text":
                out += self._begin("text")
            out.append(self._delta({"text": text}))
        return out

    def finish(self, response: ChatResponse) -> list[bytes]:
        out = self.release_held()
        for block in unsent_redacted(response, self.redacted_sent):  # what the stream did not carry in its place
            out += self._redacted(sealed_block(block, CLAUDE_SIGNED).redacted or "")
        asked = asked_fields(response, self.stop_paths)  # where ConverseStream carries them: messageStop, and metadata
        stop: dict[str, Any] = {"stopReason": stop_reason(response)}
        if "additionalModelResponseFields" in asked:
            stop["additionalModelResponseFields"] = asked["additionalModelResponseFields"]
        out.append(eventstream.event("messageStop", stop))
        metadata = {"usage": usage_body(response), "metrics": {"latencyMs": round(response.latency_ms)}}
        if "trace" in asked:
            metadata["trace"] = asked["trace"]
        out.append(eventstream.event("metadata", metadata))
        return out


def _key_header(header: str | None) -> str | None:
    """The Authorization header as a bearer one: a SigV4 signature whose access key id is a gateway key (`tk-...`)
    carries that key (see the module docstring); anything else is left as sent."""
    if header and header.startswith(SIGV4):
        access_key = header.partition("Credential=")[2].partition("/")[0]
        if access_key.startswith(KEY_PREFIX):
            return f"Bearer {access_key}"
    return header


async def bedrock_key(request: Request) -> VirtualKey | JSONResponse | None:
    """The caller's gateway key (from a bearer token or a SigV4 signature, `_key_header`), or the Bedrock error for a
    bad one: AWS credentials of another kind are refused naming both ways to send the key."""
    header = request.headers.get("authorization")
    key = await request.app.state.gateway.authenticate_async(_key_header(header))
    if not isinstance(key, JSONResponse):
        return key
    message = json.loads(bytes(key.body))["error"]["message"]
    if header and header.startswith(SIGV4) and key.status_code == 401:
        message = (
            "this gateway takes its own API key (`tokenomy keys create`), not AWS credentials: set "
            "AWS_BEARER_TOKEN_BEDROCK=<key> (boto3 1.39 or later, https endpoints), or AWS_ACCESS_KEY_ID=<key> "
            "with any AWS_SECRET_ACCESS_KEY"
        )
    return bedrock_error(key.status_code, message)


def denied(admitted: Refusal) -> JSONResponse:
    """Admission's refusal as Bedrock's error. An exhausted budget is a ServiceQuotaExceededException (400): botocore
    retries every 429, and waiting will not refill a budget."""
    if admitted.code == "budget_exceeded":
        return bedrock_error(400, admitted.message, code="ServiceQuotaExceededException")
    return bedrock_error(admitted.status, admitted.message, admitted.headers)


async def _converse(request: Request, model_id: str, stream: bool) -> Response:
    gw = request.app.state.gateway
    started = time.perf_counter()
    route = gw.route_for(model_id)
    label = model_id if route is not None else "unknown"  # bounded metric labels, whatever clients send
    key = await bedrock_key(request)
    if isinstance(key, JSONResponse):
        return metrics.done(key, label, started)
    if route is None:
        return metrics.done(
            bedrock_error(
                404,
                f"modelId: `{model_id}` does not exist on this gateway; GET /v1/models lists the names you can use.",
            ),
            label,
            started,
        )
    try:
        body = await json_body(request)
        call = request_from_converse(route.model or model_id, body)
        call.meta = request_meta(request, route, key, model_id)
        refused = refusal(gw, route, call, model_id, "Bedrock", ("aws.bedrock",))
        if refused is not None:
            return metrics.done(_provider_error(refused, call), model_id, started)
    except (ValueError, TokenomyError) as exc:  # json.JSONDecodeError is a ValueError
        return metrics.done(bedrock_error(400, str(exc)), model_id, started)
    admitted = await admit(gw, request, model_id, route, key, call, cap_field="inferenceConfig.maxTokens")
    if isinstance(admitted, Refusal):
        return metrics.done(denied(admitted), model_id, started)
    call.meta.request_id = new_id()  # boto3's ResponseMetadata.RequestId, and the call's ledger rows
    headers = {"x-amzn-RequestId": call.meta.request_id}
    if stream:
        writer = EventWriter(call.meta.request_id, stop_sequence_paths(body), call)
        stream_out = call_streamed(gw, call, admitted, model_id, started, writer)
        return FirstChunkStream(
            stream_out, media_type="application/vnd.amazon.eventstream", headers=headers, ends=writer
        )
    response = await call_whole(gw, call, admitted, model_id, lambda exc: _provider_error(exc, call))
    if isinstance(response, Response):
        response.headers.update(headers)
        return metrics.done(response, model_id, started)
    answer = answer_body(response, stop_sequence_paths(body))
    return metrics.done(JSONResponse(answer, headers=headers), model_id, started)


@router.post("/model/{model_id:path}/converse")
async def converse(request: Request, model_id: str) -> Response:
    """Bedrock Runtime's Converse: one answer, in Converse's shape."""
    return await _converse(request, model_id, stream=False)


@router.post("/model/{model_id:path}/converse-stream")
async def converse_stream(request: Request, model_id: str) -> Response:
    """Bedrock Runtime's ConverseStream: the answer as AWS event-stream frames."""
    return await _converse(request, model_id, stream=True)
