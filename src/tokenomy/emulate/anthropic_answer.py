"""The emulated Messages API's answer, from a request the emulator prepared (`anthropic_api`): the local model's output
as abstract events (thinking, a web search, a cited answer, a forced tool's input, text), folded into a whole
message's content blocks or written as the documented SSE sequence (message_start, content_block_start, ping,
content_block_delta, content_block_stop, message_delta, message_stop), with the usage Anthropic reports. The
Messages route and the Message Batches (`anthropic_batch`) answer with it alike.
"""

from __future__ import annotations

import json
import uuid
from collections.abc import Iterator
from typing import Any

from tokenomy.emulate.anthropic_blocks import AnthropicError
from tokenomy.emulate.anthropic_citations import ANSWER as CITED_ANSWER
from tokenomy.emulate.anthropic_citations import citation_events
from tokenomy.emulate.anthropic_search import ANSWER as SEARCH_ANSWER
from tokenomy.emulate.anthropic_search import search_events
from tokenomy.emulate.engine import (
    CLAUDE,
    CutShort,
    Engine,
    Prepared,
    answer_prepared,
    complete_members,
    generate_to_stop,
    reasoning_prepared,
    sign_reasoning,
)

STOP_REASONS = {"stop": "end_turn", "length": "max_tokens"}


def message_usage(prepared: Prepared, output_tokens: int, searches: int = 0) -> dict[str, Any]:
    account = prepared.account
    by_ttl = dict(account.writes_by_ttl)
    used = {"server_tool_use": {"web_search_requests": searches, "web_fetch_requests": 0}} if searches else {}
    speed = {"speed": prepared.speed} if prepared.speed is not None else {}  # fast mode's, as the API says it
    return {
        **used,
        **speed,
        "input_tokens": account.input_tokens,
        "output_tokens": output_tokens,
        "cache_creation_input_tokens": account.cache_write_tokens,
        "cache_read_input_tokens": account.cache_read_tokens,
        "cache_creation": {
            "ephemeral_5m_input_tokens": by_ttl.get(300, 0),
            "ephemeral_1h_input_tokens": by_ttl.get(3600, 0),
        },
    }


def message_body(
    message_id: str, model: str, content: list[dict[str, Any]], stop: str, sequence: str | None, usage: dict[str, Any]
) -> dict[str, Any]:
    """A whole answer's body."""
    return {
        "id": message_id,
        "type": "message",
        "role": "assistant",
        "model": model,
        "content": content,
        "stop_reason": stop,
        "stop_sequence": sequence,
        "usage": usage,
    }


def _sse(event: str, data: dict[str, Any]) -> bytes:
    return f"event: {event}\ndata: {json.dumps(data, separators=(',', ':'))}\n\n".encode()


def answer(engine: Engine, prepared: Prepared, thinking_budget: int | None) -> Iterator[tuple]:
    """The answer as abstract events: ("start", index, block), ("delta", index, delta), ("stop", index),
    then ("finish", output_tokens, stop_reason). The JSON and SSE responses are both built from them."""
    index, output_tokens = 0, 0
    if thinking_budget is not None:
        think = reasoning_prepared(prepared, thinking_budget)
        yield "start", index, {"type": "thinking", "thinking": "", "signature": ""}
        pieces: list[str] = []
        for item in engine.generate(think):
            if isinstance(item, str):
                pieces.append(item)
                yield "delta", index, {"type": "thinking_delta", "thinking": item}
            else:
                output_tokens += item[0]
        yield "delta", index, {"type": "signature_delta", "signature": sign_reasoning("".join(pieces), CLAUDE)}
        yield "stop", index
        index += 1
        answering = answer_prepared(prepared, output_tokens)  # max_tokens bounds the thinking and answer together
        if answering is None:
            yield "finish", output_tokens, "max_tokens"
            return
        prepared = answering
    if prepared.web_search is not None and prepared.forced_tool is None:  # one search, answered by the fixture
        query = prepared.request.messages[-1].text[:200] if prepared.request.messages else ""
        yield from search_events(query, index)
        output = engine.count(json.dumps({"query": query}) + SEARCH_ANSWER)
        yield "finish", output_tokens + output, "end_turn", 1
        return
    if prepared.citation is not None and prepared.forced_tool is None:  # a cited answer, from the fixture
        yield from citation_events(prepared.citation, index)
        yield "finish", output_tokens + engine.count(CITED_ANSWER), "end_turn"
        return
    if prepared.forced_tool is not None:
        tool = prepared.forced_tool
        stop = "tool_use"
        try:
            # A tool's input is an object; the answer's text under output_config's schema is any value it allows
            # (a top-level array was a 5xx).
            generate = engine.generate_value if tool.get("as_text") else engine.generate_json
            arguments, tokens = generate(prepared, tool["schema"])
            text = json.dumps(arguments)
        except CutShort as cut:  # the API stops at max_tokens with the partial text or tool input
            text, tokens, stop = cut.text, cut.tokens, "max_tokens"
        except ValueError as exc:
            raise AnthropicError("api_error", f"The model could not answer in the format asked: {exc}") from None
        if tool.get("as_text"):
            yield "start", index, {"type": "text", "text": ""}
            yield "delta", index, {"type": "text_delta", "text": text}
            yield "stop", index
            yield "finish", output_tokens + tokens, "end_turn" if stop == "tool_use" else stop
            return
        yield (
            "start",
            index,
            {"type": "tool_use", "id": f"toolu_{uuid.uuid4().hex[:24]}", "name": tool["name"], "input": {}},
        )
        half = len(text) // 2  # the input arrives as JSON fragments, as the API streams it
        # A call with no input streams one empty fragment, as the API streams it: the `{}` it opened with stands.
        for fragment in ("",) if text == "{}" else (text[:half], text[half:]):
            yield "delta", index, {"type": "input_json_delta", "partial_json": fragment}
        yield "stop", index
        yield "finish", output_tokens + tokens, stop
        return
    yield "start", index, {"type": "text", "text": ""}
    tokens, finish, matched = 0, "stop", None
    for piece in generate_to_stop(engine, prepared):  # stop sequences matched there, so the answer can name one
        if isinstance(piece, str):
            yield "delta", index, {"type": "text_delta", "text": piece}
        else:
            tokens, finish, matched = piece
    yield "stop", index
    if matched is not None:  # the API's content ends before the sequence; `stop_sequence` names it
        yield "finish", output_tokens + tokens, "stop_sequence", 0, matched
        return
    yield "finish", output_tokens + tokens, STOP_REASONS.get(finish, "end_turn")


def message_content(events: Iterator[tuple]) -> tuple[list[dict[str, Any]], int, str, int, str | None]:
    """Fold answer events into the content blocks of a JSON response (and its output tokens, stop reason, web
    searches and the stop sequence that matched)."""
    blocks: list[dict[str, Any]] = []
    arguments: dict[int, str] = {}
    output_tokens, stop, searches, sequence = 0, "end_turn", 0, None
    for event in events:
        if event[0] == "start":
            blocks.append(dict(event[2]))
        elif event[0] == "delta":
            block, delta = blocks[event[1]], event[2]
            if delta["type"] == "text_delta":
                block["text"] += delta["text"]
            elif delta["type"] == "thinking_delta":
                block["thinking"] += delta["thinking"]
            elif delta["type"] == "signature_delta":
                block["signature"] = delta["signature"]
            elif delta["type"] == "input_json_delta":
                arguments[event[1]] = arguments.get(event[1], "") + delta["partial_json"]
            elif delta["type"] == "citations_delta":
                block["citations"] = [*block.get("citations", []), delta["citation"]]
        elif event[0] == "finish":
            output_tokens, stop, searches, sequence = finish_fields(event)
    for i, text in arguments.items():  # a call cut by max_tokens keeps its complete members, as the API's does
        if text:  # none: the input it opened with
            blocks[i]["input"] = complete_members(text) if stop == "max_tokens" else json.loads(text)
    return blocks, output_tokens, stop, searches, sequence


def finish_fields(event: tuple) -> tuple[int, str, int, str | None]:
    """A finish event's output tokens, stop reason, web searches and matched stop sequence (the last two optional)."""
    return event[1], event[2], event[3] if len(event) > 3 else 0, event[4] if len(event) > 4 else None


def stream_events(
    engine: Engine, prepared: Prepared, model: str, message_id: str, thinking_budget: int | None = None
) -> Iterator[bytes]:
    """The documented SSE sequence: message_start, each block's start/deltas/stop, message_delta, message_stop."""
    start_usage = dict(message_usage(prepared, 1))
    yield _sse(
        "message_start",
        {
            "type": "message_start",
            "message": {
                "id": message_id,
                "type": "message",
                "role": "assistant",
                "model": model,
                "content": [],
                "stop_reason": None,
                "stop_sequence": None,
                "usage": start_usage,
            },
        },
    )
    output_tokens, stop, searches, sequence = 0, "end_turn", 0, None
    try:
        for event in answer(engine, prepared, thinking_budget):
            if event[0] == "start":
                yield _sse(
                    "content_block_start", {"type": "content_block_start", "index": event[1], "content_block": event[2]}
                )
                if event[1] == 0:  # the documented sequence pings after the first block starts
                    yield _sse("ping", {"type": "ping"})
            elif event[0] == "delta":
                yield _sse("content_block_delta", {"type": "content_block_delta", "index": event[1], "delta": event[2]})
            elif event[0] == "stop":
                yield _sse("content_block_stop", {"type": "content_block_stop", "index": event[1]})
            else:
                output_tokens, stop, searches, sequence = finish_fields(event)
    except Exception as exc:  # mid-stream failures arrive as an SSE error event, as the API sends them
        yield _sse("error", {"type": "error", "error": {"type": "api_error", "message": str(exc)}})
        return
    yield _sse(
        "message_delta",
        {
            "type": "message_delta",
            "delta": {"stop_reason": stop, "stop_sequence": sequence},
            "usage": message_usage(prepared, output_tokens, searches),
        },
    )
    yield _sse("message_stop", {"type": "message_stop"})
