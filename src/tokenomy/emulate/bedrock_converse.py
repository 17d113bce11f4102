"""Bedrock Converse on the local model: validate a request the way Bedrock does, answer it, account usage.

Content blocks accepted (shapes validated as Bedrock does): text, image (format + bytes), document
(format + name + bytes), toolUse, toolResult (text/json/image/document content, status), reasoningContent
(reasoningText + signature, or redactedContent) and cachePoint; `toolConfig` with tools and toolChoice.
The local model is a text model standing in for a vision model: it reads an image or binary document
as a placeholder line, and usage counts each at the fixed estimate in `engine` (IMAGE_TOKENS,
DOCUMENT_TOKENS). When toolChoice forces a call (`any`: the first tool, `tool`: the named one) the
answer is a toolUse block whose input the local model generated under the tool's JSON-schema grammar.
"""

from __future__ import annotations

import base64
import binascii
import json
import random
import threading
import time
import uuid
from typing import Any, Iterator

from tokenomy.emulate import eventstream
from tokenomy.emulate.bedrock_errors import BedrockError, invalid as _invalid
from tokenomy.emulate.bedrock_models import ModelIdError, ResolvedModel, resolve, route
from tokenomy.emulate.engine import DOCUMENT_TOKENS, IMAGE_TOKENS, Block, Engine, InputTooLong, Prepared, Turn

STOP_REASONS = {"stop": "end_turn", "length": "max_tokens"}
TTL_SECONDS = {"5m": 300, "1h": 3600}
TTL_NAMES = {v: k for k, v in TTL_SECONDS.items()}
SUPPORTED_BLOCKS = ("text", "cachePoint", "toolUse", "toolResult", "image", "document", "reasoningContent")
IMAGE_FORMATS = ("png", "jpeg", "gif", "webp")
DOCUMENT_FORMATS = ("pdf", "csv", "doc", "docx", "xls", "xlsx", "html", "txt", "md")
TEXT_DOCUMENTS = ("csv", "html", "txt", "md")


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


def _bytes(source: Any, where: str) -> bytes:
    """A blob sent over JSON (botocore base64-encodes it); S3 locations are not emulated."""
    if not isinstance(source, dict) or "bytes" not in source:
        raise _invalid(f"The source at {where} must set bytes (the emulator does not read s3Location).")
    try:
        return base64.b64decode(source["bytes"], validate=True)
    except (binascii.Error, TypeError, ValueError):
        raise _invalid(f"The bytes at {where}.bytes are not valid base64.") from None


def _media_block(kind: str, value: Any, here: str) -> Block:
    """An image or document: validated, shown to the text model as a placeholder (or its text)."""
    if not isinstance(value, dict):
        raise _invalid(f"The {kind} at {here} must be an object.")
    fmt = value.get("format")
    allowed = IMAGE_FORMATS if kind == "image" else DOCUMENT_FORMATS
    if fmt not in allowed:
        raise _invalid(f"1 validation error detected: Value '{fmt}' at '{here}.{kind}.format' failed to satisfy "
                       f"constraint: Member must satisfy enum value set: [{', '.join(allowed)}]")
    data = _bytes(value.get("source"), f"{here}.{kind}.source")
    if kind == "image":
        return Block(f"[image: {fmt}, {len(data)} bytes]", extra_tokens=IMAGE_TOKENS)
    name = value.get("name")
    if not isinstance(name, str) or not name.strip():
        raise _invalid(f"The document at {here} needs a name.")
    if fmt in TEXT_DOCUMENTS:
        return Block(f"[document {name}]\n{data.decode('utf-8', 'replace')}")
    return Block(f"[document {name}: {fmt}, {len(data)} bytes]", extra_tokens=DOCUMENT_TOKENS)


def _tool_block(kind: str, value: Any, here: str) -> Block:
    if not isinstance(value, dict) or not isinstance(value.get("toolUseId"), str):
        raise _invalid(f"The {kind} at {here} needs a toolUseId.")
    if kind == "toolUse":
        if not value.get("name") or not isinstance(value.get("input"), (dict, list, str, int, float, bool)):
            raise _invalid(f"The toolUse at {here} needs a name and an input.")
        return Block(json.dumps({kind: value}, sort_keys=True))
    if value.get("status") not in (None, "success", "error"):
        raise _invalid(f"1 validation error detected: Value '{value.get('status')}' at '{here}.toolResult.status' "
                       "failed to satisfy constraint: Member must satisfy enum value set: [success, error]")
    parts: list[str] = []
    extra = 0
    for k, part in enumerate(value.get("content") or []):
        inner_where = f"{here}.toolResult.content.{k}"
        if not isinstance(part, dict) or len(part) != 1:
            raise _invalid(f"The ToolResultContentBlock at {inner_where} must set exactly one member.")
        (inner_kind, inner), = part.items()
        if inner_kind == "text":
            parts.append(str(inner))
        elif inner_kind == "json":
            parts.append(json.dumps(inner, sort_keys=True))
        elif inner_kind in ("image", "document"):
            media = _media_block(inner_kind, inner, inner_where)
            parts.append(media.text)
            extra += media.extra_tokens
        else:
            raise _invalid(f"The block type '{inner_kind}' at {inner_where} is not a tool result content block.")
    return Block(json.dumps({kind: {"toolUseId": value["toolUseId"], "status": value.get("status", "success"),
                                    "content": parts}}, sort_keys=True), extra_tokens=extra)


def _reasoning_block(value: Any, here: str) -> Block:
    if not isinstance(value, dict) or len(value) != 1 or not ({"reasoningText", "redactedContent"} & set(value)):
        raise _invalid(f"The reasoningContent at {here} must set exactly one of reasoningText, redactedContent.")
    if "reasoningText" in value:
        text = value["reasoningText"]
        if not isinstance(text, dict) or not isinstance(text.get("text"), str):
            raise _invalid(f"The reasoningText at {here} needs text.")
    else:
        _bytes({"bytes": value["redactedContent"]}, f"{here}.reasoningContent.redactedContent")
    return Block("")  # prior reasoning is not shown to the model again (as Claude drops earlier thinking)


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
        elif kind in ("image", "document"):
            blocks.append(_media_block(kind, value, here))
        elif kind in ("toolUse", "toolResult"):
            blocks.append(_tool_block(kind, value, here))
        elif kind == "reasoningContent":
            blocks.append(_reasoning_block(value, here))
        else:  # toolSpec: the model reads it as JSON text
            blocks.append(Block(json.dumps({kind: value}, sort_keys=True)))
    return blocks


def _forced_tool(tool_config: dict[str, Any]) -> dict[str, Any] | None:
    """The tool a toolChoice forces ({"name", "schema"}), or None for auto; validates the choice."""
    specs = [t["toolSpec"] for t in tool_config["tools"] if isinstance(t, dict) and "toolSpec" in t]
    choice = tool_config.get("toolChoice")
    if choice is None:
        return None
    if not isinstance(choice, dict) or len(choice) != 1 or next(iter(choice)) not in ("auto", "any", "tool"):
        raise _invalid("The toolConfig.toolChoice must set exactly one of auto, any, tool.")
    mode, value = next(iter(choice.items()))
    if mode == "auto":
        return None
    if mode == "any":
        spec = specs[0]
    else:
        name = value.get("name") if isinstance(value, dict) else None
        spec = next((s for s in specs if s.get("name") == name), None)
        if spec is None:
            raise _invalid(f"The tool {name!r} named in toolConfig.toolChoice is not among toolConfig.tools.")
    schema = (spec.get("inputSchema") or {}).get("json") or {"type": "object"}
    return {"name": spec["name"], "schema": schema}


def _inference(body: dict[str, Any]) -> dict[str, Any]:
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
    extra = body.get("additionalModelRequestFields")
    if extra is not None and not isinstance(extra, dict):
        raise _invalid("The additionalModelRequestFields field must be a JSON object.")
    return {"max_tokens": max_tokens, "temperature": inference.get("temperature"), "stop": stops}


def parse_converse(body: Any, default_ttl: int) -> tuple[list[Block], list[Turn], dict[str, Any]]:
    """Validate a Converse body the way Bedrock does; return system blocks (tools first), turns, inference
    (with `forced_tool` when the tool choice forces a call)."""
    if not isinstance(body, dict):
        raise BedrockError("ValidationException", "The request body must be a JSON object.")
    messages = body.get("messages")
    if not isinstance(messages, list) or not messages:
        raise _invalid("A conversation must start with a user message. Try again with a conversation that starts "
                       "with a user message.")
    system: list[Block] = []
    tool_config = body.get("toolConfig")
    forced = None
    if tool_config is not None:
        tools = tool_config.get("tools") if isinstance(tool_config, dict) else None
        if not isinstance(tools, list) or not tools:
            raise _invalid("The toolConfig field must contain at least one tool in tools.")
        for i, tool in enumerate(tools):
            spec = tool.get("toolSpec") if isinstance(tool, dict) else None
            if spec is not None and (not isinstance(spec, dict) or not spec.get("name")):
                raise _invalid(f"The toolSpec at toolConfig.tools.{i} needs a name.")
        system += _blocks(tools, "toolConfig.tools", ("toolSpec", "cachePoint"), default_ttl)
        forced = _forced_tool(tool_config)
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
    return system, turns, {**_inference(body), "forced_tool": forced}


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
        prepared = self._render(resolved, system, turns, inference)
        prepared.forced_tool = inference["forced_tool"]
        return prepared, invoked

    def converse(self, model_id: str, body: Any, client_region: str = "us-east-1",
                 throttle: bool = True) -> dict[str, Any]:
        """One whole Converse call: the response body Bedrock returns (raises BedrockError like Bedrock).
        Batch jobs pass throttle=False: on-demand throttling does not apply to them."""
        prepared, invoked = self.prepare(model_id, body, client_region, throttle)
        start = time.perf_counter()
        if prepared.forced_tool is not None:
            use, output_tokens = tool_use(self.engine, prepared)
            content: list[dict[str, Any]] = [{"toolUse": use}]
            stop = "tool_use"
        else:
            pieces: list[str] = []
            output_tokens, finish = 0, "stop"
            for item in self.engine.generate(prepared):
                if isinstance(item, str):
                    pieces.append(item)
                else:
                    output_tokens, finish = item
            content, stop = [{"text": "".join(pieces)}], STOP_REASONS.get(finish, "end_turn")
        result: dict[str, Any] = {
            "output": {"message": {"role": "assistant", "content": content}},
            "stopReason": stop, "usage": _usage(prepared, output_tokens),
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


def tool_use(engine: Engine, prepared: Prepared) -> tuple[dict[str, Any], int]:
    """The forced tool call: arguments from the local model under the tool's JSON-schema grammar."""
    tool = prepared.forced_tool or {}
    generate = getattr(engine, "generate_json", None)
    if generate is None:
        raise _invalid("This engine cannot generate tool calls; send the request to the on-demand runtime.")
    try:
        arguments, output_tokens = generate(prepared, tool["schema"])
    except ValueError as exc:
        raise BedrockError("ModelErrorException", f"The model could not call {tool['name']}: {exc}") from None
    return {"toolUseId": f"tooluse_{uuid.uuid4().hex[:22]}", "name": tool["name"], "input": arguments}, output_tokens


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


def stream_events(engine: Engine, prepared: Prepared, invoked: str | None) -> Iterator[bytes]:
    """ConverseStream's event sequence in AWS event-stream framing (Starlette iterates it in a thread)."""
    start = time.perf_counter()
    yield eventstream.event("messageStart", {"role": "assistant"})
    output_tokens, finish = 0, "stop"
    try:
        if prepared.forced_tool is not None:
            use, output_tokens = tool_use(engine, prepared)
            yield eventstream.event("contentBlockStart", {"contentBlockIndex": 0, "start": {
                "toolUse": {"toolUseId": use["toolUseId"], "name": use["name"]}}})
            arguments = json.dumps(use["input"])
            half = len(arguments) // 2  # input arrives as JSON fragments, as Bedrock streams it
            for fragment in (arguments[:half], arguments[half:]):
                yield eventstream.event("contentBlockDelta", {"contentBlockIndex": 0,
                                                              "delta": {"toolUse": {"input": fragment}}})
            finish = "tool_use"
        else:
            for item in engine.generate(prepared):
                if isinstance(item, str):
                    yield eventstream.event("contentBlockDelta", {"contentBlockIndex": 0, "delta": {"text": item}})
                else:
                    output_tokens, finish = item
    except Exception as exc:  # a failure mid-stream is reported in-band, as Bedrock does
        yield eventstream.exception("modelStreamErrorException", f"The model failed while streaming: {exc}")
        return
    yield eventstream.event("contentBlockStop", {"contentBlockIndex": 0})
    yield eventstream.event("messageStop", {"stopReason": STOP_REASONS.get(finish, finish)})
    metadata: dict[str, Any] = {"usage": _usage(prepared, output_tokens),
                                "metrics": {"latencyMs": int((time.perf_counter() - start) * 1000)}}
    if invoked:
        metadata["trace"] = {"promptRouter": {"invokedModelId": invoked}}
    yield eventstream.event("metadata", metadata)
