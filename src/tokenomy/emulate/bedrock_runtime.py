"""`tokenomy emulate bedrock`: Amazon Bedrock Runtime's Converse and ConverseStream on the local model.

Implements `POST /model/{modelId}/converse` and `POST /model/{modelId}/converse-stream` with the
documented request/response shapes, so `boto3.client("bedrock-runtime", endpoint_url=...)` works
unmodified. Errors use Bedrock's shape (status, `x-amzn-ErrorType`, JSON `message`) so botocore
raises the same ClientError codes. Signatures are not checked; the region is read from the SigV4
credential scope only to shape ARNs.

Extending: `create_app` mounts `tokenomy.emulate.bedrock_batch.router` when that module exists.
Routes reach the shared state through `request.app.state.emulator` (a `BedrockEmulator`: its
`converse(model_id, body)` runs one Converse call on the local model and returns Bedrock's body).
"""

from __future__ import annotations

import json
import random
import re
import threading
import time
import uuid
from typing import Any, Iterator

from fastapi import FastAPI, Request
from starlette.concurrency import run_in_threadpool
from starlette.responses import JSONResponse, StreamingResponse

from tokenomy.emulate import eventstream
from tokenomy.emulate.bedrock_models import ModelIdError, ResolvedModel, resolve, route
from tokenomy.emulate.engine import Block, Engine, InputTooLong, Prepared, Turn

ERROR_STATUS = {"ValidationException": 400, "ResourceNotFoundException": 404, "ThrottlingException": 429,
                "AccessDeniedException": 403, "InternalServerException": 500, "ServiceUnavailableException": 503,
                "ModelNotReadyException": 429, "ModelTimeoutException": 408, "ModelErrorException": 424}
STOP_REASONS = {"stop": "end_turn", "length": "max_tokens"}
TTL_SECONDS = {"5m": 300, "1h": 3600}
TTL_NAMES = {v: k for k, v in TTL_SECONDS.items()}
SUPPORTED_BLOCKS = ("text", "cachePoint", "toolUse", "toolResult")
_REGION_RE = re.compile(r"Credential=[^/]+/\d{8}/([a-z0-9-]+)/")


class BedrockError(Exception):
    """An error Bedrock would return: code (x-amzn-ErrorType), HTTP status, message."""

    def __init__(self, code: str, message: str) -> None:
        super().__init__(message)
        self.code = code
        self.message = message
        self.status = ERROR_STATUS.get(code, 400)


def _invalid(message: str) -> BedrockError:
    return BedrockError("ValidationException", message)


def error_response(error: BedrockError, retry_after: float | None = None):
    """Bedrock's REST-JSON error shape, which botocore's parser turns into ClientError(code)."""
    headers = {"x-amzn-ErrorType": f"{error.code}:http://internal.amazon.com/coral/com.amazon.bedrock/",
               "x-amzn-RequestId": str(uuid.uuid4())}
    if retry_after is not None and error.status in (429, 503):
        headers["Retry-After"] = f"{retry_after:g}"
    return JSONResponse({"message": error.message}, status_code=error.status, headers=headers)


def _cache_ttl(block: dict[str, Any], where: str, default_ttl: int) -> int:
    point = block.get("cachePoint")
    if not isinstance(point, dict) or point.get("type") != "default":
        raise _invalid(f"1 validation error detected: Value at '{where}.cachePoint.type' failed to satisfy "
                       "constraint: Member must satisfy enum value set: [default]")
    ttl = point.get("ttl")
    if ttl is not None and ttl not in TTL_SECONDS:
        raise _invalid(f"1 validation error detected: Value '{ttl}' at '{where}.cachePoint.ttl' failed to satisfy "
                       "constraint: Member must satisfy enum value set: [5m, 1h]")
    return TTL_SECONDS[ttl] if ttl else default_ttl


def _blocks(items: list[Any], where: str, allowed: tuple[str, ...], default_ttl: int) -> list[Block]:
    """Content blocks -> text blocks; a cachePoint marks the block before it."""
    blocks: list[Block] = []
    for j, item in enumerate(items):
        here = f"{where}.{j}"
        if not isinstance(item, dict) or len(item) != 1:
            raise _invalid(f"The ContentBlock object at {here} must set exactly one member.")
        (kind, value), = item.items()
        if kind not in allowed:
            raise _invalid(f"The block type '{kind}' at {here} is not supported by the Tokenomy emulator "
                           f"(supported: {', '.join(allowed)}).")
        if kind == "cachePoint":
            ttl = _cache_ttl(item, here, default_ttl)
            if not blocks:
                raise _invalid(f"A cachePoint at {here} must follow content to cache.")
            blocks[-1].cache_ttl = ttl
        elif kind == "text":
            if not isinstance(value, str) or not value.strip():
                raise _invalid(f"The text field in the ContentBlock object at {here} is blank. "
                               "Add text to the text field, and try again.")
            blocks.append(Block(value))
        else:  # toolUse / toolResult / toolSpec: the model reads them as JSON text
            blocks.append(Block(json.dumps({kind: value}, sort_keys=True)))
    return blocks


def parse_converse(body: Any, default_ttl: int) -> tuple[list[Block], list[Turn], dict[str, Any]]:
    """Validate a Converse body the way Bedrock does; return system blocks (tools first), turns, inference."""
    if not isinstance(body, dict):
        raise BedrockError("ValidationException", "The request body must be a JSON object.")
    messages = body.get("messages")
    if not isinstance(messages, list) or not messages:
        raise _invalid("A conversation must start with a user message. Try again with a conversation that starts "
                       "with a user message.")
    system: list[Block] = []
    tool_config = body.get("toolConfig")
    if tool_config is not None:
        tools = tool_config.get("tools") if isinstance(tool_config, dict) else None
        if not isinstance(tools, list) or not tools:
            raise _invalid("The toolConfig field must contain at least one tool in tools.")
        for i, tool in enumerate(tools):
            spec = tool.get("toolSpec") if isinstance(tool, dict) else None
            if spec is not None and (not isinstance(spec, dict) or not spec.get("name")):
                raise _invalid(f"The toolSpec at toolConfig.tools.{i} needs a name.")
        system += _blocks(tools, "toolConfig.tools", ("toolSpec", "cachePoint"), default_ttl)
    raw_system = body.get("system") or []
    if not isinstance(raw_system, list):
        raise _invalid("The system field must be a list of SystemContentBlock objects.")
    system += _blocks(raw_system, "system", ("text", "cachePoint"), default_ttl)
    turns: list[Turn] = []
    uses_tools = False
    for i, message in enumerate(messages):
        if not isinstance(message, dict):
            raise _invalid(f"The Message object at messages.{i} must be a JSON object.")
        role = message.get("role")
        if role not in ("user", "assistant"):
            raise _invalid(f"1 validation error detected: Value '{role}' at 'messages.{i + 1}.member.role' failed "
                           "to satisfy constraint: Member must satisfy enum value set: [user, assistant]")
        if i == 0 and role != "user":
            raise _invalid("A conversation must start with a user message. Try again with a conversation that "
                           "starts with a user message.")
        if turns and turns[-1].role == role:
            raise _invalid("A conversation must alternate between user and assistant roles. Make sure the "
                           "conversation alternates between user and assistant roles and try again.")
        content = message.get("content")
        if not isinstance(content, list) or not content:
            raise _invalid(f"The content field in the Message object at messages.{i} is empty. Add a ContentBlock "
                           "object to the content field and try again.")
        uses_tools |= any(isinstance(c, dict) and ("toolUse" in c or "toolResult" in c) for c in content)
        turns.append(Turn(role, _blocks(content, f"messages.{i}.content", SUPPORTED_BLOCKS, default_ttl)))
    if uses_tools and tool_config is None:
        raise _invalid("The toolConfig field must be defined when using toolUse and toolResult content blocks.")
    inference = body.get("inferenceConfig") or {}
    if not isinstance(inference, dict):
        raise _invalid("The inferenceConfig field must be a JSON object.")
    max_tokens = inference.get("maxTokens")
    if max_tokens is not None and (isinstance(max_tokens, bool) or not isinstance(max_tokens, int) or max_tokens < 1):
        raise _invalid(f"1 validation error detected: Value '{max_tokens}' at 'inferenceConfig.maxTokens' failed to "
                       "satisfy constraint: Member must have value greater than or equal to 1")
    for name in ("temperature", "topP"):
        value = inference.get(name)
        if value is not None and (not isinstance(value, (int, float)) or not 0 <= value <= 1):
            raise _invalid(f"1 validation error detected: Value '{value}' at 'inferenceConfig.{name}' failed to "
                           "satisfy constraint: Member must have value between 0 and 1")
    stops = inference.get("stopSequences") or []
    if not isinstance(stops, list) or not all(isinstance(s, str) and s for s in stops):
        raise _invalid("inferenceConfig.stopSequences must be a list of non-empty strings.")
    return system, turns, {"max_tokens": max_tokens, "temperature": inference.get("temperature"), "stop": stops}


class BedrockEmulator:
    """State behind the routes: the local model, the prompt cache, the throttle RNG."""

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
        self.throttled = 0

    def maybe_throttle(self) -> None:
        with self._rng_lock:
            self.calls += 1
            if self.throttle_rate and self._rng.random() < self.throttle_rate:
                self.throttled += 1
                raise BedrockError("ThrottlingException", "Too many requests, please wait before trying again.")

    def prepare(self, model_id: str, body: Any, client_region: str,
                throttle: bool = True) -> tuple[Prepared, str | None]:
        """Resolve the model, validate the body, render and account the cache; errors are BedrockError."""
        try:
            resolved = resolve(model_id)
        except ModelIdError as exc:
            raise BedrockError(exc.code, exc.message) from None
        if throttle:
            self.maybe_throttle()
        ttl = (resolved.entry.cache_ttl_seconds if resolved.entry else None) or 300
        system, turns, inference = parse_converse(body, ttl)
        invoked = None
        if resolved.router is not None:
            # Route on the prompt's size, then account the cache against the model that runs.
            size = sum(self.engine.count(b.text) for b in system) + sum(
                self.engine.count(b.text) for t in turns for b in t.blocks)
            resolved, invoked = route(resolved, size, client_region)
        return self._render(resolved, system, turns, inference), invoked

    def converse(self, model_id: str, body: Any, client_region: str = "us-east-1",
                 throttle: bool = True) -> dict[str, Any]:
        """One whole Converse call: the response body Bedrock returns (raises BedrockError like Bedrock).
        Batch jobs pass throttle=False: on-demand throttling does not apply to them."""
        prepared, invoked = self.prepare(model_id, body, client_region, throttle)
        start = time.perf_counter()
        pieces: list[str] = []
        output_tokens, finish = 0, "stop"
        for item in self.engine.generate(prepared):
            if isinstance(item, str):
                pieces.append(item)
            else:
                output_tokens, finish = item
        result: dict[str, Any] = {
            "output": {"message": {"role": "assistant", "content": [{"text": "".join(pieces)}]}},
            "stopReason": STOP_REASONS.get(finish, "end_turn"), "usage": _usage(prepared, output_tokens),
            "metrics": {"latencyMs": int((time.perf_counter() - start) * 1000)}}
        if invoked:
            result["trace"] = {"promptRouter": {"invokedModelId": invoked}}
        return result

    def _render(self, resolved: ResolvedModel, system: list[Block], turns: list[Turn],
                inference: dict[str, Any]) -> Prepared:
        entry = resolved.entry
        points = sum(b.cache_ttl is not None for b in system) + sum(
            b.cache_ttl is not None for t in turns for b in t.blocks)
        limit = (entry.cache_max_checkpoints if entry else None) or 4
        if points > limit:
            raise _invalid(f"The number of cache points ({points}) exceeds the maximum of {limit} for this model. "
                           "Remove cache points and try again.")
        cacheable = entry is not None and entry.has_cache
        min_tokens = ((entry.cache_min_tokens or 1024) if cacheable else None)
        try:
            return self.engine.prepare(resolved.namespace, system, turns, min_tokens, True,
                                       inference["max_tokens"], inference["temperature"], inference["stop"])
        except InputTooLong as exc:
            raise _invalid(str(exc)) from None


def _usage(prepared: Prepared, output_tokens: int) -> dict[str, Any]:
    account = prepared.account
    usage: dict[str, Any] = {
        "inputTokens": account.input_tokens, "outputTokens": output_tokens,
        "totalTokens": prepared.prompt_tokens + output_tokens,
        "cacheReadInputTokens": account.cache_read_tokens, "cacheWriteInputTokens": account.cache_write_tokens}
    if account.writes_by_ttl:
        usage["cacheDetails"] = [{"ttl": TTL_NAMES.get(ttl, f"{ttl}s"), "inputTokens": tokens}
                                 for ttl, tokens in account.writes_by_ttl]
    return usage


def _client_region(request) -> str:
    match = _REGION_RE.search(request.headers.get("authorization", ""))
    return match.group(1) if match else "us-east-1"


def create_app(throttle_rate: float = 0.0, seed: int | None = None, retry_after: float | None = None,
               engine: Engine | None = None):
    """The Bedrock Runtime emulator as an ASGI app (plus the batch-job router when that module exists)."""
    emulator = BedrockEmulator(throttle_rate, seed, retry_after, engine)
    app = FastAPI(title="Tokenomy Bedrock emulator", docs_url=None, redoc_url=None, openapi_url=None)
    app.state.emulator = emulator

    async def read_body(request: Request) -> Any:
        try:
            return json.loads(await request.body() or b"{}")
        except ValueError:
            raise BedrockError("ValidationException", "The request body is not valid JSON.") from None

    @app.post("/model/{model_id:path}/converse")
    async def converse(model_id: str, request: Request):
        try:
            body = await read_body(request)
            result = await run_in_threadpool(emulator.converse, model_id, body, _client_region(request))
        except BedrockError as exc:
            return error_response(exc, emulator.retry_after)
        except Exception as exc:  # a local-model failure is the service's fault: Bedrock's 500 shape
            return error_response(BedrockError("InternalServerException", f"The model failed: {exc}"))
        return JSONResponse(result, headers={"x-amzn-RequestId": str(uuid.uuid4())})

    @app.post("/model/{model_id:path}/converse-stream")
    async def converse_stream(model_id: str, request: Request):
        try:
            body = await read_body(request)
            prepared, invoked = await run_in_threadpool(emulator.prepare, model_id, body, _client_region(request))
        except BedrockError as exc:
            return error_response(exc, emulator.retry_after)
        return StreamingResponse(stream_events(emulator.engine, prepared, invoked),
                                 media_type="application/vnd.amazon.eventstream",
                                 headers={"x-amzn-RequestId": str(uuid.uuid4())})

    try:  # the batch-job control plane lives in its own module (another part of Tokenomy)
        from tokenomy.emulate.bedrock_batch import router as batch_router
    except ModuleNotFoundError as exc:
        if exc.name != "tokenomy.emulate.bedrock_batch":
            raise
    else:
        app.include_router(batch_router)
    return app


def stream_events(engine: Engine, prepared: Prepared, invoked: str | None) -> Iterator[bytes]:
    """ConverseStream's event sequence in AWS event-stream framing (Starlette iterates it in a thread)."""
    start = time.perf_counter()
    yield eventstream.event("messageStart", {"role": "assistant"})
    output_tokens, finish = 0, "stop"
    try:
        for item in engine.generate(prepared):
            if isinstance(item, str):
                yield eventstream.event("contentBlockDelta", {"contentBlockIndex": 0, "delta": {"text": item}})
            else:
                output_tokens, finish = item
    except Exception as exc:  # a failure mid-stream is reported in-band, as Bedrock does
        yield eventstream.exception("modelStreamErrorException", f"The model failed while streaming: {exc}")
        return
    yield eventstream.event("contentBlockStop", {"contentBlockIndex": 0})
    yield eventstream.event("messageStop", {"stopReason": STOP_REASONS.get(finish, "end_turn")})
    metadata: dict[str, Any] = {"usage": _usage(prepared, output_tokens),
                                "metrics": {"latencyMs": int((time.perf_counter() - start) * 1000)}}
    if invoked:
        metadata["trace"] = {"promptRouter": {"invokedModelId": invoked}}
    yield eventstream.event("metadata", metadata)
