"""OpenAI-shaped bodies the gateway answers with: errors, completions, stream chunks, usage."""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator, Sequence
from contextvars import ContextVar
from decimal import Decimal
from typing import Any, Protocol

import anyio
from fastapi.responses import JSONResponse
from starlette.responses import Response, StreamingResponse
from starlette.types import Receive, Scope, Send

from tokenomy.chat_response import ChatResponse, StreamChunk
from tokenomy.errors import CALLER_LEFT
from tokenomy.gateway.exact_json import dumps
from tokenomy.gateway.hygiene import api_of, end_shutdown_cancel, shutdown_cancel, unavailable_status
from tokenomy.messages import GEMINI_SIGNED, ReasoningBlock
from tokenomy.money import record_str
from tokenomy.providers.openai_reasoning import call_signature_extra, put_signed_reasoning, signed_reasoning
from tokenomy.providers.openai_wire_tools import tool_call
from tokenomy.providers.reasoning_signers import sealed


class FastJSONResponse(JSONResponse):
    """A JSONResponse rendered with `dumps`."""

    def render(self, content: Any) -> bytes:
        return dumps(content)


# What a stream still running at the end of a graceful shutdown (gateway.shutdown_grace_seconds) ends with.
SHUT_DOWN = "the gateway shut down mid-stream, so this answer is incomplete; send the request again"


class StreamEnds(Protocol):
    """How one API's stream ends in an error the caller's SDK raises as that API's error."""

    def crashed(self, message: str) -> bytes:
        """The event that ends a stream a bug broke (`message` names no detail the caller should not see)."""
        ...

    def unavailable(self, message: str) -> bytes:
        """The event that ends a stream the gateway's shutdown cut: the API's "unavailable" error where it has one
        (the caller may send the request again)."""
        ...


class FirstChunkStream(StreamingResponse):
    """A stream whose headers wait for its first item, which may be a whole Response instead of bytes: the call
    failed before anything was streamed, and the caller gets that error with its own status (a 429 or 502 the
    SDKs raise as such, and retry), not a 200 whose only event is an error. A provider's own stream answers so.

    A stream cut after its headers went out (the task cancelled at the end of a graceful shutdown, or an exception the
    stream's own events did not end) still ends as its API ends a failed stream: `ends` renders that API's error
    event, which goes out before the body's end, so the caller's SDK raises its API error, not a protocol error about
    a broken chunked body."""

    def __init__(
        self,
        content: AsyncIterator[bytes | Response],
        media_type: str = "text/event-stream",
        headers: dict[str, str] | None = None,
        *,
        ends: StreamEnds,
    ) -> None:
        # The first item may be a Response: then its own status and headers are sent, not `headers`.
        super().__init__(content, media_type=media_type, headers=headers)  # type: ignore[arg-type]
        self.ends = ends
        self.cut = False  # ended with `ends.unavailable` because the task was cancelled
        self.shut_down_status: int | None = None  # the API's unavailable status, once the shutdown grace cut it
        self.path = "?"

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        self.path = scope.get("path", "?")
        told = _STREAM.set(self)  # for `stopped_status`, asked in the stream's task (which copies this context)
        try:
            await super().__call__(scope, receive, send)
        except asyncio.CancelledError as exc:
            if not self.cut or not shutdown_cancel(exc):  # a caller's own cancellation goes on as one
                raise
            # Ended properly: its error event and the body's end went out, its ledger row is written.
            end_shutdown_cancel(
                self.path, "a stream was cut by the end of the shutdown grace; its caller got its API's error event"
            )
        finally:
            _STREAM.reset(told)

    async def listen_for_disconnect(self, receive: Receive) -> None:
        # Starlette runs this in the request's own task, which uvicorn cancels at the end of the shutdown grace; the
        # stream's task is cancelled only after (by the task group this task leaves), so it is told by then.
        try:
            await super().listen_for_disconnect(receive)
        except asyncio.CancelledError as exc:
            if shutdown_cancel(exc):
                self.shut_down_status = unavailable_status(api_of(self.path))
            raise

    async def stream_response(self, send: Send) -> None:
        items: AsyncIterator[Any] = self.body_iterator  # type: ignore[assignment]
        first = await anext(items, b"")
        if isinstance(first, Response):
            await send({"type": "http.response.start", "status": first.status_code, "headers": first.raw_headers})
            await send({"type": "http.response.body", "body": first.body, "more_body": False})
            await items.aclose()  # type: ignore[attr-defined]  # an async generator, done once it yields its error
            return
        await send({"type": "http.response.start", "status": self.status_code, "headers": self.raw_headers})
        await send({"type": "http.response.body", "body": first, "more_body": True})
        try:
            async for chunk in items:
                await send({"type": "http.response.body", "body": chunk, "more_body": True})
        except (asyncio.CancelledError, Exception) as exc:
            # uvicorn cancels a request at its graceful shutdown's end; Starlette cancels a stream whose client left,
            # which hears nothing of it (uvicorn drops what is sent to a closed connection).
            if isinstance(exc, asyncio.CancelledError):
                last = self.ends.unavailable(SHUT_DOWN)
            else:
                last = self.ends.crashed(f"internal error ({type(exc).__name__}); see the gateway's log")
            # Shielded: in Starlette's task group a cancelled stream is cancelled again at each await.
            with anyio.CancelScope(shield=True):
                await items.aclose()  # type: ignore[attr-defined]  # its settlement and ledger row, if not done yet
                with anyio.move_on_after(5):  # a caller that reads nothing cannot hold the shutdown
                    await send({"type": "http.response.body", "body": last, "more_body": True})
                    await send({"type": "http.response.body", "body": b"", "more_body": False})
                    self.cut = isinstance(exc, asyncio.CancelledError)
            raise  # through Starlette's task group (`__call__` ends a cut stream); an exception goes on to the log
        await send({"type": "http.response.body", "body": b"", "more_body": False})


# The stream being answered, in the request's task and the stream's (see `stopped_status`).
_STREAM: ContextVar[FirstChunkStream] = ContextVar("tokenomy.stream")


def stopped_status() -> int:
    """The status /metrics counts a stream at that was stopped from outside after its first event, asked in the
    stream's task: its API's unavailable status (503, Anthropic's 529) when the end of the shutdown grace cut it, as
    the edge counts a request cut before its answer began, for its caller got that error event; else a 499, its
    caller left (Starlette stops the stream then, and the two look alike from inside it)."""
    stream = _STREAM.get(None)
    if stream is None or stream.shut_down_status is None:
        return CALLER_LEFT
    return stream.shut_down_status


def error(
    status: int,
    message: str,
    kind: str,
    code: str | None = None,
    param: str | None = None,
    headers: dict[str, str] | None = None,
    innererror: dict[str, Any] | None = None,
) -> JSONResponse:
    """OpenAI's error shape; with the upstream's `innererror` when it sent one (Azure's)."""
    detail: dict[str, Any] = {"message": message, "type": kind, "param": param, "code": code}
    if innererror is not None:
        detail["innererror"] = innererror
    return JSONResponse({"error": detail}, status_code=status, headers=headers)


def invalid_body(errors: Sequence[Any]) -> JSONResponse:
    """A 400 for a request body that failed validation: the first problem, naming the field (`param`)."""
    first: dict[str, Any] = dict(errors[0]) if errors else {"loc": (), "msg": "invalid request"}
    loc = [p for p in first.get("loc", ()) if p != "body"]
    if first.get("type") == "json_invalid":  # say so, instead of "body: JSON decode error"
        detail = (first.get("ctx") or {}).get("error", "JSON decode error")
        at = f" at character {loc[-1]}" if loc else ""
        return error(
            400,
            f"the request body is not valid JSON ({detail}{at}); send a JSON "
            'object such as {"model": ..., "messages": [...]}',
            "invalid_request_error",
        )
    param = ".".join(str(p) for p in loc) or None
    return error(400, f"{param or 'body'}: {first.get('msg')}", "invalid_request_error", param=param)


def raw_extras(response: ChatResponse, key: str) -> dict[str, Any]:
    """What an OpenAI-format upstream sent beyond ChatResponse's slots (see providers.openai_wire_read.extras)."""
    raw = response.raw
    return dict(raw.get(key) or {}) if isinstance(raw, dict) else {}


def message_body(response: ChatResponse) -> dict[str, Any]:
    """The assistant message: text (None when the answer is only tool calls or a refusal, as OpenAI sends), tool
    calls."""
    calls = response.tool_calls
    extras = raw_extras(response, "message")  # refusal, annotations, audio, ... as the upstream sent them
    message: dict[str, Any] = {
        "role": "assistant",
        "content": response.text or (None if calls or extras.get("refusal") else ""),
    }
    reasoning = "".join(b.text for b in response.content if isinstance(b, ReasoningBlock))
    if reasoning:
        message["reasoning_content"] = reasoning  # the field OpenAI-compatible reasoning servers use
    if calls:
        message["tool_calls"] = [tool_call(c) for c in calls]
    if any(isinstance(b, ReasoningBlock) for b in response.content):
        put_signed_reasoning(response.content, message, for_caller=True)  # the caller sends it back as it came
    message.update(extras)
    return message


def completion_body(response: ChatResponse, model: str, request_id: str) -> dict[str, Any]:
    """A chat.completion object, plus Tokenomy's cost and attempt details under `tokenomy`."""
    usage = response.usage
    choice = {
        "index": 0,
        "message": message_body(response),
        "finish_reason": response.finish_reason,
        **raw_extras(response, "choice"),
    }
    more = response.raw.get("more_choices") if isinstance(response.raw, dict) else None
    return {
        "id": request_id,
        "object": "chat.completion",
        "created": int(time.time()),
        "model": model,
        "choices": [choice, *(more or [])],
        **raw_extras(response, "top"),
        "usage": usage_body(response),
        "tokenomy": {
            "cost_usd": _recorded(response.cost_usd),
            "call_cost_usd": _recorded(call_cost(response)),
            "model": response.model,
            "provider": response.provider,
            "tier": response.tier,
            "attempts": response.attempts,
            "cache_write_tokens": usage.cache_write_tokens,
        },
    }


def tokenomy_fields(response: ChatResponse) -> dict[str, Any]:
    """The `tokenomy` object every API's answer carries beside the API's own fields: what the answer and the whole
    call cost (the money rule's record form), and the model, provider, tier and attempts that answered."""
    return {
        "cost_usd": _recorded(response.cost_usd),
        "call_cost_usd": _recorded(call_cost(response)),
        "model": response.model,
        "provider": response.provider,
        "tier": response.tier,
        "attempts": response.attempts,
    }


def _recorded(cost: Decimal | None) -> str | None:
    """A cost in the money rule's record form (as the ledger holds it), None passed through."""
    return None if cost is None else record_str(cost)


def call_cost(response: ChatResponse) -> Decimal | None:
    """What the whole call cost: this answer, and every other one it paid for (a cascade's rejected cheaper answers,
    an attempt cut midway); the figure its budget is charged and the sum of its ledger rows (x-request-id)."""
    return response.call_cost_usd if response.call_cost_usd is not None else response.cost_usd


def usage_body(response: ChatResponse) -> dict[str, Any]:
    """OpenAI usage: prompt_tokens include cache reads and writes (prompt_tokens_details), completion_tokens reasoning;
    the other details an OpenAI-format upstream sent (audio, accepted/rejected prediction tokens) as it sent them, and
    the audio counts of another provider's answer (Gemini's), which sends no such details."""
    usage = response.usage
    details = raw_extras(response, "usage_details")
    prompt = {**details.get("prompt_tokens_details", {}), "cached_tokens": usage.cache_read_tokens}
    if usage.cache_write_tokens:  # OpenAI's field for them: writes bill above input, so a caller can reconcile
        prompt["cache_write_tokens"] = usage.cache_write_tokens
    completion = {**details.get("completion_tokens_details", {}), "reasoning_tokens": usage.reasoning_tokens}
    if not details and (usage.audio_input_tokens or usage.audio_cache_read_tokens or usage.audio_output_tokens):
        prompt["audio_tokens"] = usage.audio_input_tokens + usage.audio_cache_read_tokens
        completion["audio_tokens"] = usage.audio_output_tokens
    return {
        "prompt_tokens": usage.total_input_tokens,
        "completion_tokens": usage.output_tokens,
        "total_tokens": usage.total_input_tokens + usage.output_tokens,
        "prompt_tokens_details": prompt,
        "completion_tokens_details": completion,
    }


def signed_reasoning_delta(response: ChatResponse, signed_calls: set[int]) -> dict[str, Any]:
    """The last delta of a stream whose answer holds signed reasoning: its `thinking_blocks`, whole (the openai
    SDK's stream helper takes a list without indices once), and the thought signatures of tool calls that did not
    carry theirs as they streamed. Empty when there is none."""
    if not any(isinstance(b, ReasoningBlock) for b in response.content):
        return {}
    thinking, on_calls = signed_reasoning(response.content, for_caller=True)
    delta: dict[str, Any] = {} if thinking is None else {"thinking_blocks": thinking}
    late = [
        {"index": number, "extra_content": call_signature_extra(signature)}
        for number, signature in on_calls.items()
        if number not in signed_calls
    ]
    if late:
        delta["tool_calls"] = late
    return delta


def unsent_redacted(response: ChatResponse, sent: int) -> list[ReasoningBlock]:
    """The answer's redacted reasoning blocks a stream has not sent yet: it sent the first `sent` in their place
    (StreamChunk.redacted); the others (a provider without them in its stream) come at the end, whole."""
    return [b for b in response.content if isinstance(b, ReasoningBlock) and b.redacted is not None][sent:]


def chunk_delta(piece: StreamChunk) -> tuple[dict[str, Any], dict[str, Any]] | None:
    """(delta, other choice keys such as logprobs) of one streamed piece in OpenAI's chunk format, or None."""
    delta: dict[str, Any] = {}
    extra = dict(piece.extra or {})
    if piece.reasoning:
        delta["reasoning_content"] = piece.reasoning
    if piece.delta:
        delta["content"] = piece.delta
    delta.update(extra.pop("delta", None) or {})
    call = piece.tool_call
    if call is not None:
        entry: dict[str, Any] = {"index": call.index}
        kind = "custom" if call.freeform else "function"  # a freeform call's raw input comes in `custom.input`
        function: dict[str, Any] = {"input" if call.freeform else "arguments": call.arguments}
        if call.id is not None:
            entry["id"], entry["type"] = call.id, kind
        if call.name is not None:
            function["name"] = call.name
        entry[kind] = function
        if piece.signature:  # Gemini's, on the function call part it came with
            entry["extra_content"] = call_signature_extra(sealed(piece.signature, piece.signer, GEMINI_SIGNED))
        delta["tool_calls"] = [entry]
    return (delta, extra) if delta or extra else None


def sse(payload: dict[str, Any]) -> bytes:
    return b"data: " + dumps(payload) + b"\n\n"
