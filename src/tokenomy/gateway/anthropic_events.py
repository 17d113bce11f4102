"""Anthropic's SSE events for a streamed `/v1/messages` answer (`EventWriter`): message_start, a content block per
kind of piece (text, thinking, tool use, citations), its deltas and stop, message_delta with the stop reason and
usage, message_stop. Shared by `anthropic_routes` and Bedrock's InvokeModel stream of a Claude body (`invoke_routes`).
"""

from __future__ import annotations

import json
from typing import Any

from fastapi.responses import Response

from tokenomy.chat_response import ChatResponse, StreamChunk, ToolCallDelta, Usage
from tokenomy.errors import ProviderError, TokenomyError
from tokenomy.gateway.anthropic_errors import failure
from tokenomy.gateway.block_streams import ToolBlocks
from tokenomy.gateway.calls import (
    upstream_status,
)
from tokenomy.gateway.responses import unsent_redacted
from tokenomy.messages import CLAUDE_SIGNED
from tokenomy.providers.anthropic_answers import (
    stop_reason,
    usage_body,
    usage_fields,
)
from tokenomy.providers.reasoning_signers import sealed, sealed_block


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
        self.sent_speed: str | None = None  # the speed message_start said (usage.speed)

    def _event(self, event: str, data: dict[str, Any]) -> bytes:
        """One event on the wire: SSE here; Bedrock's InvokeModelWithResponseStream wraps the same events."""
        return _sse(event, data)

    def start(self) -> list[bytes]:
        # message_start waits for the first piece: an Anthropic upstream's counts (StreamChunk.start_usage) ride on it
        return []

    def _opening(self, usage: Usage | None, tier: str | None = None, speed: str | None = None) -> list[bytes]:
        if self.opened:
            return []
        self.opened = True
        self.sent_speed = speed
        return [self._message_start(usage, tier, speed)]

    def refused(self, exc: TokenomyError) -> Response:
        refused = failure(exc, self.body)
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

    def _message_start(self, usage: Usage | None, tier: str | None = None, speed: str | None = None) -> bytes:
        """An upstream that reports usage as its answer begins (Anthropic's API) has its input and cache counts
        passed on, and the service tier and speed it names (message_delta's usage has no place for them, and the SDKs
        read a streamed answer's `usage.speed` from message_start alone); any other reports them at the
        end only, so they are 0 here and come in message_delta, but for an answer that ended before any piece came
        (an empty turn), whose message_start goes out at the end with them (`finish`). The SDKs take the cache writes
        by lifetime (`cache_creation`) from message_start alone: a streamed answer's final message lacks them where
        its upstream counts at the end and content came first, short of holding the whole answer back; message_delta
        carries them, at the numbers of the whole answer, for a client reading the events."""
        counts: dict[str, Any] = usage_fields(usage) if usage is not None else {"input_tokens": 0, "output_tokens": 0}
        if tier is not None:
            counts["service_tier"] = tier
        if speed is not None:
            counts["speed"] = speed
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
                    "usage": counts,
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
        return self._opening(piece.start_usage, piece.start_tier, piece.start_speed) + self.pieces(piece)

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
        refused = piece.refusal
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
        usage = usage_body(response)
        speed = usage.pop("speed", None)
        out = self._opening(response.usage, usage.pop("service_tier", None), speed) + self.release_held()
        if speed is not None and speed != self.sent_speed:  # an upstream that said it only at the end: not dropped
            usage["speed"] = speed
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
                    "usage": usage,  # its service tier and speed went in message_start, as Anthropic's API sends them
                },
            )
        )
        out.append(self._event("message_stop", {"type": "message_stop"}))
        return out
