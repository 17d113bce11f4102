"""`tokenomy emulate anthropic`: a minimal Anthropic Messages API (`POST /v1/messages`) on the local model.

JSON responses and SSE streams use the documented shapes and event types (message_start,
content_block_start, ping, content_block_delta, content_block_stop, message_delta, message_stop);
errors use `{"type": "error", "error": {"type", "message"}}`. `cache_control` blocks are honoured
with the catalog's minimum prefix length and TTL, like the Bedrock emulator, and so is a top-level one (automatic
caching: a cache point on the last block).

Content blocks accepted (shapes validated): text, image (base64 or url source), document (base64 PDF, plain text, a
PDF's url, or content blocks), tool_use, tool_result (string or text/image content, is_error), thinking (its signature
must be one this emulator issued, as the API checks) and redacted_thinking; `tools`, `tool_choice` (auto/any/tool/none;
a call with tools bills the tool use system prompt as input, the catalog's count for the model and tool_choice, as the
API does) and `thinking` ({type: enabled, budget_tokens}, or adaptive; a display; a budget not below max_tokens only
with the interleaved-thinking beta in `anthropic-beta`, as the API takes it); `speed` (fast mode: usage.speed says
the speed served, in message_start when streamed; refused on a model without it). The local model is a text model
standing in for a vision model: an image or PDF reaches it as a placeholder line and counts at the fixed estimate in
`engine`. A forced tool (`any`: the first tool, `tool`: the named one) is answered with a tool_use block whose input the
local model generated under the tool's JSON-schema grammar. With thinking enabled the model first writes a short
reasoning (`engine.THINKING_TOKENS` at most), returned as a signed thinking block before the answer. Server tools: a web
search tool (`web_search_*`) is answered with a deterministic fixture (`anthropic_search`: one search, its result, a
cited text; usage counts the search), and an earlier answer's server_tool_use and *_tool_result blocks are taken back. A
document may come by URL or as content blocks, with a title, context and `citations`; a request with a cited document is
answered with a text block citing it (`anthropic_citations`: a deterministic fixture). The request is checked and
rendered by `anthropic_request.parse_messages`; `anthropic_batch.create_app` adds the Message Batches API
(`/v1/messages/batches`) to this app.
"""

from __future__ import annotations

import json
import uuid
from collections.abc import Iterator
from typing import Any

from fastapi import FastAPI, Request
from starlette.concurrency import run_in_threadpool
from starlette.responses import JSONResponse, StreamingResponse

from tokenomy.emulate.anthropic_blocks import AnthropicError, invalid
from tokenomy.emulate.anthropic_citations import ANSWER as CITED_ANSWER
from tokenomy.emulate.anthropic_citations import citation_events, first_citation
from tokenomy.emulate.anthropic_request import parse_messages
from tokenomy.emulate.anthropic_search import ANSWER as SEARCH_ANSWER
from tokenomy.emulate.anthropic_search import search_events
from tokenomy.emulate.engine import (
    CLAUDE,
    Block,
    CutShort,
    Engine,
    InputTooLong,
    Prepared,
    answer_prepared,
    complete_members,
    generate_to_stop,
    reasoning_prepared,
    sign_reasoning,
)
from tokenomy.emulate.throttle import InjectedThrottle
from tokenomy.pricing.catalog import PriceEntry, default_catalog

STOP_REASONS = {"stop": "end_turn", "length": "max_tokens"}


def anthropic_entry(model: str) -> PriceEntry | None:
    """The catalog entry of a first-party Anthropic model id."""
    return next((e for e in default_catalog().entries() if e.provider == "anthropic" and e.model == model), None)


class AnthropicEmulator:
    """State behind the route: the local model, the prompt cache, the throttle RNG."""

    def __init__(
        self,
        throttle_rate: float = 0.0,
        seed: int | None = None,
        retry_after: float | None = None,
        engine: Engine | None = None,
    ) -> None:
        self.throttle = InjectedThrottle(throttle_rate, seed)
        self.retry_after = retry_after
        self.engine = engine or Engine()

    @property
    def calls(self) -> int:
        return self.throttle.calls

    def count(self, body: Any) -> int:
        """A count_tokens request's input tokens: what `prepare` accounts for the same prompt, with no cache."""
        entry = self._entry(body)
        system, turns, _ = parse_messages(body, entry.cache_ttl_seconds or 300, counting=True)
        return self.engine.count_input(_with_tool_prompt(entry, body, system), turns)

    def _entry(self, body: Any) -> PriceEntry:
        model = body.get("model") if isinstance(body, dict) else None
        if not isinstance(model, str) or not model:
            raise invalid("model: Field required")
        entry = anthropic_entry(model)
        if entry is None:
            raise AnthropicError("not_found_error", f"model: {model}")
        return entry

    def prepare(self, body: Any, betas: str | None = None) -> tuple[Prepared, str, int | None]:
        """Validate and render a request (`betas`: its anthropic-beta header): (prepared, model, thinking budget or
        None)."""
        entry = self._entry(body)
        model = body["model"]
        if self.throttle.hit():
            raise AnthropicError(
                "rate_limit_error",
                "This request would exceed the rate limit for your "
                "organization. Please reduce the prompt length or try later.",
            )
        system, turns, options = parse_messages(body, entry.cache_ttl_seconds or 300, betas=betas)
        limit = entry.max_output_tokens
        if limit is not None and options["max_tokens"] > limit:  # the API's own words (the catalog has each model's)
            raise invalid(
                f"max_tokens: {options['max_tokens']} > {limit}, which is the maximum allowed number of output tokens "
                f"for {model}"
            )
        _with_tool_prompt(entry, body, system)
        points = sum(b.cache_ttl is not None for b in system) + sum(
            b.cache_ttl is not None for t in turns for b in t.blocks
        )
        limit = entry.cache_max_checkpoints or 4
        if points > limit:
            raise invalid(f"A maximum of {limit} blocks with cache_control may be provided. Found {points}.")
        min_tokens = (entry.cache_min_tokens or 1024) if entry.has_cache else None
        try:
            prepared = self.engine.prepare(
                model,
                system,
                turns,
                min_tokens,
                False,
                options["max_tokens"],
                options["temperature"],
                options["stop"],
                sampling=options["sampling"],
            )
        except InputTooLong as exc:
            raise invalid(f"prompt is too long: {exc}") from None
        prepared.forced_tool = options["forced_tool"]
        prepared.web_search = options["web_search"]
        prepared.citation = first_citation(body["messages"])
        prepared.speed = options["speed"]
        return prepared, model, options["thinking_budget"]


def _with_tool_prompt(entry: PriceEntry, body: dict[str, Any], system: list[Block]) -> list[Block]:
    """`system` (tools first, as parse_messages renders them) billing the system prompt Anthropic adds to a call that
    sends tools, by tool_choice (the catalog's tool_prompt_tokens_auto / _any): fresh input the local model does not
    read, on the first tool's block, so answers and counts alike report it as the API does."""
    if body.get("tools"):
        choice = body.get("tool_choice")
        system[0].extra_tokens += entry.tool_prompt_tokens(choice.get("type") if isinstance(choice, dict) else None)
    return system


def _usage(prepared: Prepared, output_tokens: int, searches: int = 0) -> dict[str, Any]:
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


def _message(
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


def _error(exc: AnthropicError, retry_after: float | None) -> JSONResponse:
    headers = {"request-id": f"req_{uuid.uuid4().hex[:24]}"}
    if retry_after is not None and exc.status in (429, 529):
        headers["retry-after"] = f"{retry_after:g}"
    return JSONResponse(
        {"type": "error", "error": {"type": exc.kind, "message": exc.message}}, status_code=exc.status, headers=headers
    )


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
        for fragment in (text[:half], text[half:]):
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
        blocks[i]["input"] = complete_members(text) if stop == "max_tokens" else json.loads(text)
    return blocks, output_tokens, stop, searches, sequence


def finish_fields(event: tuple) -> tuple[int, str, int, str | None]:
    """A finish event's output tokens, stop reason, web searches and matched stop sequence (the last two optional)."""
    return event[1], event[2], event[3] if len(event) > 3 else 0, event[4] if len(event) > 4 else None


def stream_events(
    engine: Engine, prepared: Prepared, model: str, message_id: str, thinking_budget: int | None = None
) -> Iterator[bytes]:
    """The documented SSE sequence: message_start, each block's start/deltas/stop, message_delta, message_stop."""
    start_usage = dict(_usage(prepared, 1))
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
            "usage": _usage(prepared, output_tokens, searches),
        },
    )
    yield _sse("message_stop", {"type": "message_stop"})


async def _body(request: Request) -> Any:
    """The request's JSON body, or the error answer for a request without a key or with a body that is not JSON."""
    if not (request.headers.get("x-api-key") or request.headers.get("authorization")):
        return _error(AnthropicError("authentication_error", "x-api-key header is required"), None)
    try:
        return json.loads(await request.body() or b"{}")
    except ValueError:
        return _error(invalid("request body is not valid JSON"), None)


def create_app(
    throttle_rate: float = 0.0, seed: int | None = None, retry_after: float | None = None, engine: Engine | None = None
) -> FastAPI:
    """The Messages API emulator as an ASGI app."""
    emulator = AnthropicEmulator(throttle_rate, seed, retry_after, engine)
    app = FastAPI(title="Tokenomy Anthropic emulator", docs_url=None, redoc_url=None, openapi_url=None)
    app.state.emulator = emulator

    @app.post("/v1/messages/count_tokens")
    async def count_tokens(request: Request):
        body = await _body(request)
        if isinstance(body, JSONResponse):
            return body
        try:
            tokens = await run_in_threadpool(emulator.count, body)
        except AnthropicError as exc:
            return _error(exc, emulator.retry_after)
        return JSONResponse({"input_tokens": tokens}, headers={"request-id": f"req_{uuid.uuid4().hex[:24]}"})

    @app.post("/v1/messages")
    async def messages(request: Request):
        body = await _body(request)
        if isinstance(body, JSONResponse):
            return body
        try:
            prepared, model, budget = await run_in_threadpool(
                emulator.prepare, body, request.headers.get("anthropic-beta")
            )
        except AnthropicError as exc:
            return _error(exc, emulator.retry_after)
        message_id = f"msg_{uuid.uuid4().hex[:24]}"
        headers = {"request-id": f"req_{uuid.uuid4().hex[:24]}"}
        if body["max_tokens"] == 0:  # cache warming: the prompt was read (and cached); nothing is generated
            warmed = _message(message_id, model, [], "max_tokens", None, _usage(prepared, 0))
            return JSONResponse(warmed, headers=headers)
        if body.get("stream"):
            return StreamingResponse(
                stream_events(emulator.engine, prepared, model, message_id, budget),
                media_type="text/event-stream",
                headers=headers,
            )
        try:
            content, output_tokens, stop, searches, sequence = await run_in_threadpool(
                lambda: message_content(answer(emulator.engine, prepared, budget))
            )
        except AnthropicError as exc:
            return _error(exc, None)
        except Exception as exc:  # a local-model failure is the service's fault: the API's 500 shape
            return _error(AnthropicError("api_error", f"The model failed: {exc}"), None)
        usage = _usage(prepared, output_tokens, searches)
        return JSONResponse(_message(message_id, model, content, stop, sequence, usage), headers=headers)

    return app
