"""`tokenomy emulate anthropic`: a minimal Anthropic Messages API (`POST /v1/messages`) on the local model.

JSON responses and SSE streams use the documented shapes and event types (message_start,
content_block_start, ping, content_block_delta, content_block_stop, message_delta, message_stop);
errors use `{"type": "error", "error": {"type", "message"}}`. `cache_control` blocks are honoured
with the catalog's minimum prefix length and TTL, like the Bedrock emulator.
"""

from __future__ import annotations

import json
import random
import threading
import uuid
from typing import Any, Iterator

from fastapi import FastAPI, Request
from starlette.concurrency import run_in_threadpool
from starlette.responses import JSONResponse, StreamingResponse

from tokenomy.emulate.engine import Block, Engine, InputTooLong, Prepared, Turn
from tokenomy.pricing.catalog import PriceEntry, default_catalog

ERROR_STATUS = {"invalid_request_error": 400, "authentication_error": 401, "not_found_error": 404,
                "rate_limit_error": 429, "api_error": 500, "overloaded_error": 529}
STOP_REASONS = {"stop": "end_turn", "length": "max_tokens"}
TTL_SECONDS = {"5m": 300, "1h": 3600}


class AnthropicError(Exception):
    def __init__(self, kind: str, message: str) -> None:
        super().__init__(message)
        self.kind = kind
        self.message = message
        self.status = ERROR_STATUS[kind]


def _invalid(message: str) -> AnthropicError:
    return AnthropicError("invalid_request_error", message)


def anthropic_entry(model: str) -> PriceEntry | None:
    """The catalog entry of a first-party Anthropic model id."""
    return next((e for e in default_catalog().entries() if e.provider == "anthropic" and e.model == model), None)


def _ttl(block: dict[str, Any], where: str, default_ttl: int) -> int | None:
    control = block.get("cache_control")
    if control is None:
        return None
    if not isinstance(control, dict) or control.get("type") != "ephemeral":
        raise _invalid(f"{where}.cache_control.type: Input should be 'ephemeral'")
    ttl = control.get("ttl")
    if ttl is not None and ttl not in TTL_SECONDS:
        raise _invalid(f"{where}.cache_control.ttl: Input should be '5m' or '1h'")
    return TTL_SECONDS[ttl] if ttl else default_ttl


def _content(value: Any, where: str, default_ttl: int) -> list[Block]:
    if isinstance(value, str):
        if not value:
            raise _invalid(f"{where}: text content blocks must be non-empty")
        return [Block(value)]
    if not isinstance(value, list) or not value:
        raise _invalid(f"{where}: content must be a non-empty string or list of content blocks")
    blocks = []
    for j, block in enumerate(value):
        here = f"{where}.{j}"
        if not isinstance(block, dict):
            raise _invalid(f"{here}: Input should be a content block object")
        kind = block.get("type")
        if kind == "text":
            if not isinstance(block.get("text"), str) or not block["text"]:
                raise _invalid(f"{here}: text content blocks must be non-empty")
            text = block["text"]
        elif kind in ("tool_use", "tool_result"):
            text = json.dumps({k: v for k, v in block.items() if k != "cache_control"}, sort_keys=True)
        else:
            raise _invalid(f"{here}.type: '{kind}' is not supported by the Tokenomy emulator (text, tool_use, "
                           "tool_result are)")
        blocks.append(Block(text, _ttl(block, here, default_ttl)))
    return blocks


def parse_messages(body: Any, default_ttl: int) -> tuple[list[Block], list[Turn], dict[str, Any]]:
    """Validate a Messages request; return system blocks (tools first), turns and sampling options."""
    if not isinstance(body, dict):
        raise _invalid("request body must be a JSON object")
    max_tokens = body.get("max_tokens")
    if max_tokens is None:
        raise _invalid("max_tokens: Field required")
    if isinstance(max_tokens, bool) or not isinstance(max_tokens, int) or max_tokens < 1:
        raise _invalid(f"max_tokens: Input should be a positive integer (got {max_tokens!r})")
    messages = body.get("messages")
    if not isinstance(messages, list):
        raise _invalid("messages: Field required")
    if not messages:
        raise _invalid("messages: at least one message is required")
    system: list[Block] = []
    for i, tool in enumerate(body.get("tools") or []):
        if not isinstance(tool, dict) or not tool.get("name"):
            raise _invalid(f"tools.{i}.name: Field required")
        spec = {k: v for k, v in tool.items() if k != "cache_control"}
        system.append(Block(json.dumps(spec, sort_keys=True), _ttl(tool, f"tools.{i}", default_ttl)))
    raw_system = body.get("system")
    if raw_system is not None:
        system += _content(raw_system, "system", default_ttl)
    turns: list[Turn] = []
    for i, message in enumerate(messages):
        role = message.get("role") if isinstance(message, dict) else None
        if role not in ("user", "assistant"):
            raise _invalid(f"messages.{i}.role: Input should be 'user' or 'assistant'")
        if i == 0 and role != "user":
            raise _invalid("messages: first message must use the \"user\" role")
        blocks = _content(message.get("content"), f"messages.{i}.content", default_ttl)
        if turns and turns[-1].role == role:  # the API merges consecutive same-role turns
            turns[-1].blocks += blocks
        else:
            turns.append(Turn(role, blocks))
    temperature = body.get("temperature")
    if temperature is not None and (not isinstance(temperature, (int, float)) or not 0 <= temperature <= 1):
        raise _invalid("temperature: Input should be between 0 and 1")
    stops = body.get("stop_sequences") or []
    if not isinstance(stops, list) or not all(isinstance(s, str) and s for s in stops):
        raise _invalid("stop_sequences: Input should be a list of non-empty strings")
    return system, turns, {"max_tokens": max_tokens, "temperature": temperature, "stop": stops}


class AnthropicEmulator:
    """State behind the route: the local model, the prompt cache, the throttle RNG."""

    def __init__(self, throttle_rate: float = 0.0, seed: int | None = None, retry_after: float | None = None,
                 engine: Engine | None = None) -> None:
        if not 0.0 <= throttle_rate <= 1.0:
            raise ValueError(f"throttle_rate={throttle_rate} must be between 0 and 1")
        self.throttle_rate = throttle_rate
        self.retry_after = retry_after
        self.engine = engine or Engine()
        self._rng = random.Random(seed)
        self._rng_lock = threading.Lock()
        self.calls = 0

    def prepare(self, body: Any) -> tuple[Prepared, str]:
        model = body.get("model") if isinstance(body, dict) else None
        if not isinstance(model, str) or not model:
            raise _invalid("model: Field required")
        entry = anthropic_entry(model)
        if entry is None:
            raise AnthropicError("not_found_error", f"model: {model}")
        with self._rng_lock:
            self.calls += 1
            if self.throttle_rate and self._rng.random() < self.throttle_rate:
                raise AnthropicError("rate_limit_error", "This request would exceed the rate limit for your "
                                                         "organization. Please reduce the prompt length or try later.")
        system, turns, options = parse_messages(body, entry.cache_ttl_seconds or 300)
        points = sum(b.cache_ttl is not None for b in system) + sum(
            b.cache_ttl is not None for t in turns for b in t.blocks)
        limit = entry.cache_max_checkpoints or 4
        if points > limit:
            raise _invalid(f"A maximum of {limit} blocks with cache_control may be provided. Found {points}.")
        min_tokens = (entry.cache_min_tokens or 1024) if entry.has_cache else None
        try:
            prepared = self.engine.prepare(model, system, turns, min_tokens, False, options["max_tokens"],
                                           options["temperature"], options["stop"])
        except InputTooLong as exc:
            raise _invalid(f"prompt is too long: {exc}") from None
        return prepared, model


def _usage(prepared: Prepared, output_tokens: int) -> dict[str, Any]:
    account = prepared.account
    by_ttl = dict(account.writes_by_ttl)
    return {"input_tokens": account.input_tokens, "output_tokens": output_tokens,
            "cache_creation_input_tokens": account.cache_write_tokens,
            "cache_read_input_tokens": account.cache_read_tokens,
            "cache_creation": {"ephemeral_5m_input_tokens": by_ttl.get(300, 0),
                               "ephemeral_1h_input_tokens": by_ttl.get(3600, 0)}}


def _error(exc: AnthropicError, retry_after: float | None) -> JSONResponse:
    headers = {"request-id": f"req_{uuid.uuid4().hex[:24]}"}
    if retry_after is not None and exc.status in (429, 529):
        headers["retry-after"] = f"{retry_after:g}"
    return JSONResponse({"type": "error", "error": {"type": exc.kind, "message": exc.message}},
                        status_code=exc.status, headers=headers)


def _sse(event: str, data: dict[str, Any]) -> bytes:
    return f"event: {event}\ndata: {json.dumps(data, separators=(',', ':'))}\n\n".encode()


def stream_events(engine: Engine, prepared: Prepared, model: str, message_id: str) -> Iterator[bytes]:
    """The documented SSE sequence for one text block."""
    start_usage = dict(_usage(prepared, 1))
    yield _sse("message_start", {"type": "message_start", "message": {
        "id": message_id, "type": "message", "role": "assistant", "model": model, "content": [],
        "stop_reason": None, "stop_sequence": None, "usage": start_usage}})
    yield _sse("content_block_start", {"type": "content_block_start", "index": 0,
                                       "content_block": {"type": "text", "text": ""}})
    yield _sse("ping", {"type": "ping"})
    output_tokens, finish = 0, "stop"
    try:
        for item in engine.generate(prepared):
            if isinstance(item, str):
                yield _sse("content_block_delta", {"type": "content_block_delta", "index": 0,
                                                   "delta": {"type": "text_delta", "text": item}})
            else:
                output_tokens, finish = item
    except Exception as exc:  # mid-stream failures arrive as an SSE error event, as the API sends them
        yield _sse("error", {"type": "error", "error": {"type": "api_error", "message": str(exc)}})
        return
    yield _sse("content_block_stop", {"type": "content_block_stop", "index": 0})
    yield _sse("message_delta", {"type": "message_delta",
                                 "delta": {"stop_reason": STOP_REASONS.get(finish, "end_turn"), "stop_sequence": None},
                                 "usage": _usage(prepared, output_tokens)})
    yield _sse("message_stop", {"type": "message_stop"})


def create_app(throttle_rate: float = 0.0, seed: int | None = None, retry_after: float | None = None,
               engine: Engine | None = None) -> FastAPI:
    """The Messages API emulator as an ASGI app."""
    emulator = AnthropicEmulator(throttle_rate, seed, retry_after, engine)
    app = FastAPI(title="Tokenomy Anthropic emulator", docs_url=None, redoc_url=None, openapi_url=None)
    app.state.emulator = emulator

    @app.post("/v1/messages")
    async def messages(request: Request):
        if not (request.headers.get("x-api-key") or request.headers.get("authorization")):
            return _error(AnthropicError("authentication_error", "x-api-key header is required"), None)
        try:
            body = json.loads(await request.body() or b"{}")
        except ValueError:
            return _error(_invalid("request body is not valid JSON"), None)
        try:
            prepared, model = await run_in_threadpool(emulator.prepare, body)
        except AnthropicError as exc:
            return _error(exc, emulator.retry_after)
        message_id = f"msg_{uuid.uuid4().hex[:24]}"
        headers = {"request-id": f"req_{uuid.uuid4().hex[:24]}"}
        if body.get("stream"):
            return StreamingResponse(stream_events(emulator.engine, prepared, model, message_id),
                                     media_type="text/event-stream", headers=headers)

        def run() -> tuple[str, int, str]:
            pieces, result = [], (0, "stop")
            for item in emulator.engine.generate(prepared):
                if isinstance(item, str):
                    pieces.append(item)
                else:
                    result = item
            return "".join(pieces), *result

        try:
            text, output_tokens, finish = await run_in_threadpool(run)
        except Exception as exc:  # a local-model failure is the service's fault: the API's 500 shape
            return _error(AnthropicError("api_error", f"The model failed: {exc}"), None)
        return JSONResponse({"id": message_id, "type": "message", "role": "assistant", "model": model,
                             "content": [{"type": "text", "text": text}],
                             "stop_reason": STOP_REASONS.get(finish, "end_turn"), "stop_sequence": None,
                             "usage": _usage(prepared, output_tokens)}, headers=headers)

    return app
