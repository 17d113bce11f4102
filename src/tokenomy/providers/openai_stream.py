"""An OpenAI-format stream, read: Chat Completions chunks (dicts) become StreamChunks as they come (text, tool-call,
reasoning deltas; what a chunk carries beyond them passed on in OpenAI's shape), and at the end one ChatResponse with
the usage the server reported, read from wherever its dialect puts it (`openai_wire_read` reads whole answers the
same way).
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

from tokenomy.chat_response import ChatResponse, StreamChunk, ToolCallDelta, Usage
from tokenomy.errors import ProviderError, as_written
from tokenomy.messages import Block, ChatRequest, ReasoningBlock, TextBlock
from tokenomy.providers.openai_reasoning import (
    call_signature,
    call_signature_extra,
    thinking_block,
)
from tokenomy.providers.openai_wire_read import (
    CHOICE_KEYS,
    SHAPE_ERRORS,
    beyond,
    call_blocks,
    counts_anything,
    finish_reason,
    stand_in_id,
    usage_details,
    usage_from_dict,
    with_missing_counts,
)
from tokenomy.providers.usage_counts import estimated_prompt_tokens
from tokenomy.token_estimate import weighted_length


class StreamAssembler:
    """Turns Chat Completions stream chunks (dicts) into StreamChunks and, at the end, one ChatResponse."""

    def __init__(self, request: ChatRequest) -> None:
        self.request = request
        self.text: list[str] = []
        self.reasoning: list[str] = []
        self.thinking: list[dict[str, Any]] = []  # `thinking_blocks` delta entries (pieces of signed reasoning)
        self.calls: dict[int, dict[str, Any]] = {}
        # The upstream's tool-call index -> the call's index here: some servers (Ollama) stream every parallel call
        # at index 0, each with its own id, and merging them by index would join two calls into one.
        self.slots: dict[int, int] = {}
        self.finish = "stop"
        self.usage: dict | None = None
        self.served = request.model
        self.extra: dict[str, Any] = {}
        self.deltas = 0
        self.thoughts = 0  # reasoning deltas (each a token, for an estimate)
        self.finished = False  # a finish_reason arrived: the answer is whole even if [DONE] never does
        self.chosen = False  # a chunk carried choice 0: without one, no answer came (as a whole one with no choices)

    def feed(self, chunk: Any) -> Iterator[StreamChunk]:
        """The pieces of one chunk. A chunk of an unexpected shape (a field of the wrong type) is the upstream's fault,
        as a whole answer's is (`parse_completion`): a ProviderError (an attempt a retry or fallback may follow, at
        its estimate in the ledger), not a bug's crash."""
        try:
            yield from self._feed(chunk)
        except SHAPE_ERRORS as exc:
            raise ProviderError(
                f"upstream sent an unreadable stream chunk: {as_written(chunk)[:200]}",
                kind="server_error",
                reached=True,
            ) from exc

    def _feed(self, chunk: dict[str, Any]) -> Iterator[StreamChunk]:
        if chunk.get("error"):  # OpenAI's in-stream error event: generation failed midway
            error = chunk["error"]
            message = error.get("message") if isinstance(error, dict) else error
            raise ProviderError(f"upstream stream failed: {message}", kind="server_error")
        self.served = chunk.get("model") or self.served
        if chunk.get("usage"):
            self.usage = chunk["usage"]
        elif isinstance(chunk.get("x_groq"), dict) and chunk["x_groq"].get("usage"):
            self.usage = chunk["x_groq"]["usage"]  # Groq puts the usage of its streams in the last chunk's x_groq
        # Azure's content filter annotations on the prompt arrive in a choiceless chunk of their own, as in a whole
        # answer at the top level: kept there, so a stream carries what the whole answer carries.
        for key in ("system_fingerprint", "service_tier", "prompt_filter_results"):
            if chunk.get(key) is not None:
                self.extra.setdefault("top", {})[key] = chunk[key]
        for choice in chunk.get("choices") or []:
            if choice.get("index", 0) != 0:
                continue  # n > 1 is refused for streams (see the gateway); only choice 0 exists here
            self.chosen = True
            if isinstance(choice.get("usage"), dict) and not chunk.get("usage"):
                self.usage = choice["usage"]  # Moonshot's streams: in the last chunk's choice, not beside it
            delta = choice.get("delta") or {}
            other = beyond(delta)
            # The choice's keys beyond the delta (logprobs, Azure's content_filter_results), as the server sent them.
            keys = {k: v for k, v in choice.items() if k not in CHOICE_KEYS and v is not None and v != {}}
            passthrough = {**({"delta": other} if other else {}), **keys}
            reasoning = delta.get("reasoning_content") or delta.get("reasoning")
            if isinstance(reasoning, str) and reasoning:
                self.reasoning.append(reasoning)
                self.thoughts += 1  # reasoning tokens are output tokens, billed as such
                yield StreamChunk(reasoning=reasoning)
            text = delta.get("content")
            if text is not None and not isinstance(text, str):  # passed on to the caller's stream as text
                raise TypeError(f"content: {text!r} is no text")
            if text or passthrough:
                self.text.append(text or "")
                self.deltas += bool(text)
                yield StreamChunk(delta=text or "", extra=passthrough or None)
            thinking = delta.get("thinking_blocks")
            if isinstance(thinking, list):
                self.thinking += [item for item in thinking if isinstance(item, dict)]
            for piece in delta.get("tool_calls") or []:
                yield StreamChunk(
                    tool_call=self._tool_piece(piece), signature=call_signature(piece.get("extra_content"))
                )
            if choice.get("finish_reason"):
                self.finish = choice["finish_reason"]
                self.finished = True

    def check_complete(self, done: bool) -> None:
        """Raise if the stream ended with neither a finish_reason nor `[DONE]` (`done`): the connection was
        cut, and what arrived is part of an answer, not an answer. The upstream had answered 200 (only such a stream
        gets here), so it had the request and bills its prompt: `reached`, even when no chunk came (a body that ended
        at once, a whole JSON answer to a streamed request), so the attempt is not recorded at $0. A stream that ended
        (`[DONE]`) without a choice in any chunk is the fault of a whole answer with no choices (`parse_completion`):
        not an ok empty answer."""
        if not (done or self.finished):
            raise ProviderError(
                "upstream stream ended before the answer was complete", kind="server_error", reached=True
            )
        if not self.chosen:
            raise ProviderError(
                "upstream sent a stream with no choices (no chunk carried an answer)", kind="server_error", reached=True
            )

    def _tool_piece(self, piece: dict[str, Any]) -> ToolCallDelta:
        wire = int(piece.get("index") or 0)
        index = self.slots.get(wire, wire)
        started = self.calls.get(index)
        if started is not None and piece.get("id") and started["id"] and piece["id"] != started["id"]:
            index = self.slots[wire] = max(self.calls) + 1  # a new call at an index already taken
        custom = piece.get("custom")
        function = custom if isinstance(custom, dict) else piece.get("function") or {}
        call = self.calls.get(index)
        # Only the call's first piece names it (id, name) to the caller: some servers repeat both on every piece, and
        # OpenAI-format clients join a key that comes again (the openai SDK's helper made the id `call_1call_1`).
        call_id = None
        if call is None:  # the call's first piece: it names the call, by the server's id or a stand-in
            call_id = piece.get("id") or stand_in_id()
            call = self.calls[index] = {
                "id": None,
                "name": None,
                "arguments": [],
                "stand_in": call_id,
                "signature": None,
                "freeform": False,
            }
        call["id"] = call["id"] or piece.get("id")
        call["signature"] = call["signature"] or call_signature(piece.get("extra_content"))
        name = None if call["name"] else function.get("name")
        call["name"] = call["name"] or name
        # a freeform call's pieces carry its raw input under `custom` (its first piece says type custom)
        call["freeform"] = call["freeform"] or isinstance(custom, dict) or piece.get("type") == "custom"
        fragment = function.get("input" if call["freeform"] else "arguments") or ""
        if not isinstance(fragment, str):  # passed on to the caller's stream as text
            raise TypeError(f"arguments: {fragment!r} is no text")
        call["arguments"].append(fragment)
        self.deltas += 1
        return ToolCallDelta(index=index, id=call_id, name=name, arguments=fragment, freeform=call["freeform"])

    def _signed_blocks(self) -> list[Block] | None:
        """The streamed `thinking_blocks` pieces as whole blocks: a thinking block's text arrives in pieces and
        ends with the piece carrying its signature (one piece when the upstream sends each block whole)."""
        blocks: list[Block] = []
        text: list[str] = []
        try:
            for item in self.thinking:
                if item.get("type") == "redacted_thinking":
                    blocks.append(thinking_block(item))
                    continue
                piece = thinking_block({k: v for k, v in item.items() if k != "signature" or v})
                text.append(piece.text)
                if piece.signature:
                    blocks.append(ReasoningBlock("".join(text), piece.signature))
                    text = []
        except ValueError:
            return None
        if text:
            blocks.append(ReasoningBlock("".join(text)))
        return blocks or None

    def response(self, provider: str, latency_ms: float, ttft_ms: float | None) -> ChatResponse:
        """The whole answer the chunks made; a ProviderError, as for `feed`, when what they said cannot be read (a
        usage whose counts are no numbers)."""
        try:
            return self._response(provider, latency_ms, ttft_ms)
        except SHAPE_ERRORS as exc:
            raise ProviderError(
                f"upstream sent an unreadable stream: {exc}", kind="server_error", reached=True
            ) from exc

    def _estimated(self, text: str, raw: dict[str, Any]) -> Usage:
        """The answer's usage where its upstream counted none: estimated rather than recorded as zero, and said so
        (`raw`). A delta is at least a token, and a long one (a server or proxy that sends the answer in a few
        pieces) its characters over four, as for a stream cut midway (`attempt_estimate.estimated`)."""
        raw["usage_source"] = "estimated"
        chars = weighted_length(text) + sum(
            len(c["name"] or "") + sum(map(weighted_length, c["arguments"])) for c in self.calls.values()
        )
        reasoning = max(self.thoughts, -(-sum(map(weighted_length, self.reasoning)) // 4))
        return Usage(
            input_tokens=estimated_prompt_tokens(self.request),
            output_tokens=max(self.deltas, -(-chars // 4)) + reasoning,
            reasoning_tokens=reasoning,
        )

    def _response(self, provider: str, latency_ms: float, ttft_ms: float | None) -> ChatResponse:
        signed = self._signed_blocks() if self.thinking else None
        blocks: list[Block] = signed or ([ReasoningBlock("".join(self.reasoning))] if self.reasoning else [])
        text = "".join(self.text)
        if text:
            blocks.append(TextBlock(text))
        for index in sorted(self.calls):
            call = self.calls[index]
            said = {"name": call["name"], "input" if call["freeform"] else "arguments": "".join(call["arguments"])}
            blocks += call_blocks(
                {
                    "id": call["id"] or call["stand_in"],
                    "custom" if call["freeform"] else "function": said,
                    **({"extra_content": call_signature_extra(call["signature"])} if call["signature"] else {}),
                }
            )
        raw: dict[str, Any] = {"served_model": self.served, "usage_source": "reported", **self.extra}
        details = usage_details(self.usage)
        if details:
            raw["usage_details"] = details
        if counts_anything(self.usage):
            assert self.usage is not None
            usage = with_missing_counts(usage_from_dict(self.usage), self.usage, lambda: self._estimated(text, raw))
        else:  # some OpenAI-compatible servers ignore stream_options.include_usage, or count nothing in it
            usage = self._estimated(text, raw)
        return ChatResponse(
            content=blocks,
            model=self.request.model,
            provider=provider,
            usage=usage,
            finish_reason=finish_reason(self.finish, blocks),
            latency_ms=latency_ms,
            ttft_ms=ttft_ms,
            region="global",
            raw=raw,
        )
