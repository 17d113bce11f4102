"""How the Gemini API's calls answer on the gateway: a refused or failed call as Google's error naming the caller's
place (`provider_error`), and a streamed answer as GenerateContentResponse chunks (`ChunkWriter`), server-sent events
with `alt=sse` (the SDK's), else one JSON array of them written as they come (the REST API's default).

A streamed function call goes out whole, in the last chunk, as Gemini streams them: its arguments arrive in pieces
from other providers, and Gemini's format has no argument fragments. An answer without calls has text in its last
chunk (beside finishReason and usage), as Gemini's has: each text goes out as it comes but for its last character,
which the next chunk carries. google-genai's chats leave a streamed turn out of the history they send next when its
last chunk has no part (`chats._validate_response`): the conversation forgot each answer and the message it answered.
"""

from __future__ import annotations

import json
from typing import Any

from fastapi.responses import JSONResponse, Response

from tokenomy.chat_response import ChatResponse, StreamChunk
from tokenomy.errors import ProviderError, TokenomyError
from tokenomy.gateway.calls import retry_after, upstream_status
from tokenomy.gateway.gemini_errors import error_body, gemini_error
from tokenomy.gateway.responses import unsent_redacted
from tokenomy.messages import ReasoningBlock, ToolUseBlock
from tokenomy.providers.gemini_answers import (
    answered,
    candidate_said,
    finish_reason,
    parts_body,
    thinking_out,
    usage_body,
)
from tokenomy.providers.gemini_caller_places import caller_param
from tokenomy.providers.gemini_inbound import shows_thoughts


def provider_error(exc: TokenomyError, body: dict[str, Any], stand_ins_out: bool = False) -> JSONResponse:
    """`stand_ins_out`: the call went without Gemini's stand-in signatures (`caller_param`)."""
    if not isinstance(exc, ProviderError):
        return gemini_error(400, str(exc))
    if exc.refused is not None:  # no model the call could use can take it (nothing was sent): the caller's place
        return gemini_error(400, exc.refused.error_text(caller_param(body, exc.refused.where, stand_ins_out)))
    if exc.param is not None:  # a mapping refused a field before any call: named as the caller sent it
        return gemini_error(400, exc.named(lambda param: caller_param(body, param, stand_ins_out)))
    return gemini_error(upstream_status(exc), f"upstream {exc.kind}: {exc}", retry_after(exc))


class ChunkWriter:
    """Turns StreamChunks into GenerateContentResponse chunks: text and thoughts as they come, each function call
    whole at the end (with a signature that rode on it)."""

    def __init__(
        self, model: str, response_id: str, body: Any, array: bool = False, stand_ins_out: bool = False
    ) -> None:
        self.model, self.response_id = model, response_id
        self.show_thoughts = shows_thoughts(body)
        # The chunks as one JSON array written as they come (`alt=json`, the REST API's default without `alt=sse`)
        # rather than server-sent events: what a caller that sends no `alt=sse` parses.
        self.array = array
        self.opened = False  # the array's `[` is sent
        self.body = body  # the request, to name a refused field as the caller sent it
        self.stand_ins_out = stand_ins_out  # the call went without Gemini's stand-in signatures (`provider_error`)
        self.call_ids: dict[int, str] = {}  # a streamed call's index -> its id
        self.thinking = ""  # the thought streamed since the last signature
        self.pending: list[ReasoningBlock] = []  # signed reasoning for the next part (gemini_answers.thinking_out)
        self.carried: dict[int, list[ReasoningBlock]] = {}  # a streamed call's index -> the reasoning it carries
        self.redacted_sent = 0  # redacted reasoning blocks sent in their place (StreamChunk.redacted)
        self.held: list[dict[str, Any]] = []  # the latest text's last character, sent in the next chunk (`_sent`)
        self.calling = False  # a function call came: the last chunk has it, so nothing is held

    def start(self) -> list[bytes]:
        return []  # Gemini's stream has no opening event

    def refused(self, exc: TokenomyError) -> Response:
        refused = provider_error(exc, self.body, self.stand_ins_out)
        refused.headers["x-request-id"] = self.response_id  # the failed attempts' id in the ledger
        return refused

    def failed(self, exc: TokenomyError) -> bytes:
        # the last item; the SDK raises an APIError for it
        return self._unheld() + self._item(
            json.loads(bytes(provider_error(exc, self.body, self.stand_ins_out).body)), last=True
        )

    def crashed(self, message: str) -> bytes:
        return self._unheld() + self._item(error_body(500, message), last=True)

    def unavailable(self, message: str) -> bytes:
        return self._unheld() + self._item(error_body(503, message), last=True)

    def _unheld(self) -> bytes:
        """The held parts (`_sent`), before an error ends the stream: they were answered all the same."""
        held, self.held = self.held, []
        return self._chunk(held) if held else b""

    def _sent(self, parts: list[dict[str, Any]]) -> list[bytes]:
        """The chunk of `parts` after those held, but for the last character of the last one, held for the next chunk
        so the last chunk has the answer's last parts (see the module docstring) while the text goes out as it comes;
        once a function call came, which the last chunk has, nothing is held."""
        parts, self.held = _joined([*self.held, *parts]), []
        if parts and not self.calling:
            last = parts.pop()
            text = last["text"]  # each part of a piece is text (or a thought's), which `_joined` keeps so
            if len(text) < 2:
                self.held = [last]
            else:
                parts.append({**last, "text": text[:-1]})
                self.held = [{"text": text[-1], **({"thought": True} if last.get("thought") else {})}]
        return [self._chunk(parts)] if parts else []

    def _item(self, data: dict[str, Any], last: bool = False) -> bytes:
        """One chunk of the stream: a server-sent event, or the array's next element (its last closes it)."""
        text = json.dumps(data, separators=(",", ":"))
        if not self.array:
            return f"data: {text}\r\n\r\n".encode()
        opening = ",\r\n" if self.opened else "["
        self.opened = True
        return f"{opening}{text}{']' if last else ''}".encode()

    def _chunk(self, parts: list[dict[str, Any]], final: ChatResponse | None = None) -> bytes:
        # Every chunk has a content (the last one's with the answer's last parts: `_sent`): clients read
        # candidate.content on each chunk (LlamaIndex's streamed structured output failed on a last chunk without one).
        candidate: dict[str, Any] = {"content": {"role": "model", "parts": parts}, "index": 0}
        chunk: dict[str, Any] = {"candidates": [candidate], "modelVersion": self.model, "responseId": self.response_id}
        if final is not None:  # the last chunk: why the answer ended, and its usage
            candidate["finishReason"] = finish_reason(final)
            candidate.update(candidate_said(final))  # what Gemini's built-in tools found, as Gemini sends it last
            chunk["usageMetadata"] = usage_body(final)
            answered(chunk, final)
        return self._item(chunk, last=final is not None)

    def chunk(self, piece: StreamChunk) -> list[bytes]:
        parts: list[dict[str, Any]] = []
        if piece.redacted is not None:  # rides on the next part, where the model put it
            self.pending.append(ReasoningBlock(redacted=piece.redacted, signer=piece.signer))
            self.redacted_sent += 1
        riding = piece.signature is not None and not piece.reasoning and (piece.delta or piece.tool_call)
        if piece.reasoning and self.show_thoughts:  # shown as it comes; signed, it rides on the next part whole
            parts.append({"text": piece.reasoning, "thought": True})
        if piece.reasoning:
            self.thinking += piece.reasoning
        if piece.signature:
            self.pending.append(ReasoningBlock("" if riding else self.thinking, piece.signature, signer=piece.signer))
            self.thinking = "" if not riding else self.thinking
        if piece.delta:
            text: dict[str, Any] = {"text": piece.delta}
            if self.pending and piece.tool_call is None:
                text["thoughtSignature"], self.pending = thinking_out(self.pending), []
            parts.append(text)
        refused = piece.refusal  # an OpenAI-format model's: text here
        if isinstance(refused, str) and refused:
            parts.append({"text": refused})
        call = piece.tool_call
        if call is not None:  # held for the last chunk (see the module docstring)
            self.calling = True
            if call.id:
                self.call_ids[call.index] = call.id
            if self.pending:
                self.carried[call.index], self.pending = self.pending, []
        return self._sent(parts)

    def finish(self, response: ChatResponse) -> list[bytes]:
        # The answer's own blocks say what each call is (its id, name and parsed arguments); the fragments only
        # which ones streamed. Redacted reasoning the stream did not carry in its place comes here, whole, and
        # reasoning nothing followed at the end.
        unsent = unsent_redacted(response, self.redacted_sent)
        blocks = [b for b in response.content if isinstance(b, ToolUseBlock) or any(b is r for r in unsent)]
        carried = {self.call_ids.get(index): reasoning for index, reasoning in self.carried.items()}
        with_reasoning: list[Any] = []
        for block in blocks:
            if isinstance(block, ToolUseBlock) and block.id in carried:
                with_reasoning += carried[block.id]
            with_reasoning.append(block)
        with_reasoning += self.pending
        held, self.held = self.held, []
        return [self._chunk(_joined([*held, *parts_body(with_reasoning, show_thoughts=False)]), response)]


def _joined(parts: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """`parts` with each plain text part (a thought's too, no signature) joined to the one before it of its kind, so a
    chunk has one text part as Gemini's do (LlamaIndex reads the first part of each chunk)."""
    out: list[dict[str, Any]] = []
    for part in parts:
        if out and set(part) | set(out[-1]) <= {"text", "thought"} and out[-1].get("thought") == part.get("thought"):
            out[-1] = {**out[-1], "text": out[-1]["text"] + part["text"]}
        else:
            out.append(part)
    return out
