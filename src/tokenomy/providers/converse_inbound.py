"""The reverse direction, for the gateway's Bedrock Runtime routes (`/model/{modelId}/converse`, `-stream`): a
Converse request received from a caller (boto3's `bedrock-runtime` client) becomes a ChatRequest (the answer goes back
in Converse's shape by `converse_answers`). The block shapes are `converse_mapping`'s, shared with the Bedrock
provider.

Every field boto3 can send is carried or refused with a ValueError naming it in boto3's terms
(`messages[0].content[1].image.source.s3Location`): nothing is dropped.
- text, image (bytes), document (bytes, format, name), toolUse, toolResult (text, json, image, document parts;
  `status: error`) and reasoningContent (text + signature, or redacted bytes) become content blocks.
- a cachePoint at the end of a message, the system prompt or the tool list is Tokenomy's cache point there (a
  1-hour one with `ttl: "1h"`); one elsewhere is refused (Tokenomy caches at the end of a turn, as its providers do).
- inferenceConfig, toolConfig (toolSpec, toolChoice), outputConfig (a JSON schema text format, an effort) and the
  model fields Tokenomy knows in additionalModelRequestFields (top_k, Anthropic-style thinking) map to the
  ChatRequest's own options, so they reach whichever provider the route names.
- the rest of Converse's fields (guardrailConfig, requestMetadata, promptVariables, other model fields, ...) ride in
  `extra`, which the gateway carries to Bedrock models only, as the caller sent them.
"""

from __future__ import annotations

import binascii
import json
from typing import Any

from tokenomy.messages import (
    CLAUDE_SIGNED,
    ONE_HOUR,
    Block,
    CachePoint,
    ChatRequest,
    DocumentBlock,
    ImageBlock,
    Message,
    ReasoningBlock,
    TextBlock,
    ToolResultBlock,
    ToolUseBlock,
)
from tokenomy.providers import json_text
from tokenomy.providers.converse_mapping import MEDIA_TYPES
from tokenomy.providers.reasoning_signers import unsealed_block
from tokenomy.request_options import THINKING_DISPLAYS, Reasoning, ResponseFormat, ToolChoice, ToolSpec

# Converse request fields that ride to a Bedrock model as sent (Bedrock's own features, no other API has them).
PASS_THROUGH = (
    "guardrailConfig",
    "promptVariables",
    "additionalModelResponseFieldPaths",
    "requestMetadata",
    "performanceConfig",
    "serviceTier",
)
# Paths in `additionalModelResponseFieldPaths` to Claude's answer field naming the stop sequence that ended it
# (@ai-sdk/amazon-bedrock asks "/delta/stop_sequence" of every Claude model), each with where its answer goes. The
# gateway answers them itself from the stop sequence every provider reports (ChatResponse.stop_sequence; a Bedrock
# Claude is asked by bedrock.ask_stop_sequence), so they reach any model, not Bedrock's alone.
STOP_SEQUENCE_PATHS: dict[str, tuple[str, ...]] = {
    "/delta/stop_sequence": ("delta", "stop_sequence"),
    "/stop_sequence": ("stop_sequence",),
}
KNOWN_FIELDS = {
    "modelId",
    "messages",
    "system",
    "inferenceConfig",
    "toolConfig",
    "additionalModelRequestFields",
    "outputConfig",
    *PASS_THROUGH,
}
INFERENCE_KEYS: dict[str, type | tuple[type, ...]] = {
    "maxTokens": int,
    "temperature": (int, float),
    "topP": (int, float),
    "stopSequences": list,
}
BLOCK_KINDS = ("text", "image", "document", "toolUse", "toolResult", "reasoningContent", "cachePoint")
RESULT_KINDS = ("text", "json", "image", "document")
# DocumentBlock.format's values (botocore's model of the API, which botocore itself does not check)
DOCUMENT_FORMATS = ("pdf", "csv", "doc", "docx", "xls", "xlsx", "html", "txt", "md")
# Converse holds redacted reasoning as bytes; another provider's (Anthropic's `data`) is text, which goes out as these
# marked bytes so that a caller sending the answer back returns that text.
REDACTED_TEXT = b"tokenomy:redacted:"
MAX_TOKENS = 1_000_000  # as on the other APIs: a bound no model reaches, so no integer overflows downstream


def _object(value: Any, where: str, keys: tuple[str, ...] | set[str]) -> dict[str, Any]:
    """`value` if it is an object holding only `keys`; else a ValueError naming the first other key."""
    if not isinstance(value, dict):
        raise ValueError(f"{where}: expected an object")
    for key in value:
        if key not in keys:
            raise ValueError(f"{where}.{key}: not carried by the gateway; remove it")
    return value


def _one(value: Any, where: str, kinds: tuple[str, ...]) -> tuple[str, Any]:
    """The one member of a Converse union (a content block is exactly one of its kinds)."""
    if not isinstance(value, dict) or len(value) != 1:
        raise ValueError(f"{where}: expected an object with exactly one of {', '.join(kinds)}")
    kind, item = next(iter(value.items()))
    if kind not in kinds:
        raise ValueError(f"{where}.{kind}: not carried by the gateway (it carries {', '.join(kinds)})")
    return kind, item


def _string(value: Any, where: str) -> str:
    if not isinstance(value, str):
        raise ValueError(f"{where}: expected a string")
    return value


def _blob(value: Any, where: str) -> str:
    """A blob's base64 text (boto3 sends blobs base64-encoded in JSON), checked."""
    text = _string(value, where)
    try:
        binascii.a2b_base64(text, strict_mode=True)
    except binascii.Error:
        raise ValueError(f"{where}: not valid base64") from None
    return text


def _bytes_text(source: Any, where: str) -> str:
    """The base64 text of a block's `source.bytes`; an s3Location is refused (the gateway cannot read the caller's
    bucket, and a provider other than Bedrock could not either)."""
    return _blob(_object(source, f"{where}.source", ("bytes",)).get("bytes"), f"{where}.source.bytes")


def _image(value: Any, where: str) -> ImageBlock:
    image = _object(value, where, ("format", "source"))
    fmt = image.get("format")
    if not isinstance(fmt, str) or fmt not in MEDIA_TYPES:  # a list or object is no format (nor hashable)
        raise ValueError(f"{where}.format: expected one of {', '.join(MEDIA_TYPES)}")
    return ImageBlock(media_type=MEDIA_TYPES[fmt], base64=_bytes_text(image.get("source"), where))


def _document(value: Any, where: str) -> DocumentBlock:
    document = _object(value, where, ("format", "name", "source"))
    fmt = document.get("format")
    if not isinstance(fmt, str) or fmt not in DOCUMENT_FORMATS:
        raise ValueError(f"{where}.format: expected one of {', '.join(DOCUMENT_FORMATS)}")
    data = binascii.a2b_base64(_bytes_text(document.get("source"), where))
    return DocumentBlock(format=fmt, data=data, name=_string(document.get("name", ""), f"{where}.name") or None)


def _tool_result(value: Any, where: str) -> ToolResultBlock:
    result = _object(value, where, ("toolUseId", "content", "status"))
    parts = result.get("content") or []
    if not isinstance(parts, list):
        raise ValueError(f"{where}.content: expected a list")
    inner: list[Block] = []
    for i, part in enumerate(parts):
        here = f"{where}.content[{i}]"
        kind, item = _one(part, here, RESULT_KINDS)
        if kind == "json":  # every provider takes a tool's result as text: the JSON is carried as its text
            inner.append(TextBlock(json.dumps(item, separators=(",", ":"))))
        else:
            inner.append(_block(kind, item, f"{here}.{kind}"))
    status = result.get("status")
    if status not in (None, "success", "error"):
        raise ValueError(f"{where}.status: expected 'success' or 'error'")
    return ToolResultBlock(_string(result.get("toolUseId"), f"{where}.toolUseId"), inner, status == "error")


def _reasoning(value: Any, where: str) -> ReasoningBlock:
    """A reasoningContent block, with who signed it (reasoning_signers: Claude's, unless sealed otherwise)."""
    return unsealed_block(_reasoning_as_sent(value, where), CLAUDE_SIGNED)


def _reasoning_as_sent(value: Any, where: str) -> ReasoningBlock:
    kind, item = _one(value, where, ("reasoningText", "redactedContent"))
    if kind == "redactedContent":  # bytes, kept as the base64 text they came in (ReasoningBlock.redacted)
        blob = _blob(item, f"{where}.redactedContent")
        raw = binascii.a2b_base64(blob)
        if raw.startswith(REDACTED_TEXT):  # opaque text the gateway sent as bytes (answer_body): that text again
            return ReasoningBlock(redacted=raw[len(REDACTED_TEXT) :].decode("utf-8", "replace"))
        return ReasoningBlock(redacted=blob)
    text = _object(item, f"{where}.reasoningText", ("text", "signature"))
    signature = text.get("signature")
    return ReasoningBlock(
        _string(text.get("text", ""), f"{where}.reasoningText.text"),
        None if signature is None else _string(signature, f"{where}.reasoningText.signature"),
    )


def _block(kind: str, item: Any, where: str) -> Block:
    if kind == "text":
        return TextBlock(_string(item, where))
    if kind == "image":
        return _image(item, where)
    if kind == "document":
        return _document(item, where)
    if kind == "toolUse":
        use = _object(item, where, ("toolUseId", "name", "input"))
        arguments = use.get("input", {})
        if not isinstance(arguments, dict):
            raise ValueError(f"{where}.input: expected an object")
        return ToolUseBlock(
            _string(use.get("toolUseId"), f"{where}.toolUseId"), _string(use.get("name"), f"{where}.name"), arguments
        )
    if kind == "toolResult":
        return _tool_result(item, where)
    return _reasoning(item, where)


def _cache_point(item: Any, where: str, last: bool) -> CachePoint:
    """A cachePoint block: Tokenomy's cache point (True: 5 minutes, or ONE_HOUR), honoured at the end of a message,
    system or tool list. A 1-hour point after a 5-minute one is Bedrock's to refuse, not reordered."""
    point = _object(item, where, ("type", "ttl"))
    if point.get("type") != "default":
        raise ValueError(f"{where}.type: expected 'default'")
    if point.get("ttl") not in (None, "5m", ONE_HOUR):
        raise ValueError(f"{where}.ttl: expected '5m' or '1h' (got {point['ttl']!r})")
    if not last:
        raise ValueError(
            f"{where}: the gateway sets cache points at the end of a message, system prompt or tool "
            "list; move the cachePoint to the end"
        )
    return ONE_HOUR if point.get("ttl") == ONE_HOUR else True


def _content(items: Any, where: str, kinds: tuple[str, ...]) -> tuple[list[Block], CachePoint]:
    """A list of Converse content blocks: the blocks, and the cache point it ends with (False: none)."""
    if not isinstance(items, list) or not items:
        raise ValueError(f"{where}: expected a non-empty list of content blocks")
    blocks: list[Block] = []
    cached: CachePoint = False
    for i, raw in enumerate(items):
        here = f"{where}[{i}]"
        kind, item = _one(raw, here, kinds)
        if kind == "cachePoint":
            cached = _cache_point(item, f"{here}.cachePoint", i == len(items) - 1)
        else:
            blocks.append(_block(kind, item, f"{here}.{kind}"))
    return blocks, cached


def _tools(config: Any) -> tuple[list[ToolSpec], ToolChoice | None, CachePoint]:
    config = _object(config, "toolConfig", ("tools", "toolChoice"))
    entries = config.get("tools")
    if not isinstance(entries, list) or not entries:
        raise ValueError("toolConfig.tools: expected a non-empty list")
    tools: list[ToolSpec] = []
    cached: CachePoint = False
    for i, entry in enumerate(entries):
        where = f"toolConfig.tools[{i}]"
        kind, item = _one(entry, where, ("toolSpec", "cachePoint"))
        if kind == "cachePoint":
            cached = _cache_point(item, f"{where}.cachePoint", i == len(entries) - 1)
            continue
        spec = _object(item, f"{where}.toolSpec", ("name", "description", "inputSchema", "strict"))
        schema = _object(spec.get("inputSchema"), f"{where}.toolSpec.inputSchema", ("json",)).get("json")
        if not isinstance(schema, dict):
            raise ValueError(f"{where}.toolSpec.inputSchema.json: expected a JSON schema object")
        strict = spec.get("strict")
        if strict is not None and not isinstance(strict, bool):
            raise ValueError(f"{where}.toolSpec.strict: expected a boolean")
        description = spec.get("description")
        tools.append(
            ToolSpec(
                _string(spec.get("name"), f"{where}.toolSpec.name"),
                None if description is None else _string(description, f"{where}.toolSpec.description"),
                schema,
                strict,
            )
        )
    choice = None
    if config.get("toolChoice") is not None:
        mode, item = _one(config["toolChoice"], "toolConfig.toolChoice", ("auto", "any", "tool"))
        if mode == "tool":
            name = _string(
                _object(item, "toolConfig.toolChoice.tool", ("name",)).get("name"), "toolConfig.toolChoice.tool.name"
            )
            choice = ToolChoice("tool", name)
        else:
            _object(item, f"toolConfig.toolChoice.{mode}", ())
            choice = ToolChoice("auto" if mode == "auto" else "any")
    return tools, choice, cached


def _inference(config: Any) -> dict[str, Any]:
    config = _object(config, "inferenceConfig", tuple(INFERENCE_KEYS))
    for key, kind in INFERENCE_KEYS.items():
        value = config.get(key)
        if value is not None and (isinstance(value, bool) or not isinstance(value, kind)):
            expected = "an integer" if kind is int else "a list of strings" if kind is list else "a number"
            raise ValueError(f"inferenceConfig.{key}: expected {expected}")
    max_tokens = config.get("maxTokens")
    if max_tokens is not None and not 1 <= max_tokens <= MAX_TOKENS:
        raise ValueError(f"inferenceConfig.maxTokens: expected an integer from 1 to {MAX_TOKENS}")
    stop = config.get("stopSequences") or []
    if not all(isinstance(s, str) for s in stop):
        raise ValueError("inferenceConfig.stopSequences: expected a list of strings")
    return config


def _output(config: Any) -> tuple[ResponseFormat | None, str | None]:
    config = _object(config, "outputConfig", ("textFormat", "effort"))
    effort = config.get("effort")
    if effort is not None:
        _string(effort, "outputConfig.effort")
    fmt = None
    if config.get("textFormat") is not None:
        text_format = _object(config["textFormat"], "outputConfig.textFormat", ("type", "structure"))
        if text_format.get("type") != "json_schema":
            raise ValueError("outputConfig.textFormat.type: expected 'json_schema'")
        where = "outputConfig.textFormat.structure.jsonSchema"
        structure = _object(text_format.get("structure"), "outputConfig.textFormat.structure", ("jsonSchema",))
        schema = _object(structure.get("jsonSchema"), where, ("schema", "name", "description"))
        try:
            # NaN, Infinity and 1e400 are not JSON: read as floats they failed a provider SDK's encoder, a 500
            parsed = json_text.loads(_string(schema.get("schema"), f"{where}.schema"))
        except ValueError as exc:
            raise ValueError(f"{where}.schema: expected a JSON schema as JSON text ({exc})") from None
        description = schema.get("description")
        fmt = ResponseFormat(
            "json_schema",
            parsed,
            schema.get("name"),
            True,
            None if description is None else _string(description, f"{where}.description"),
        )
    return fmt, effort


def _model_fields(fields: Any) -> tuple[int | None, Reasoning | None, dict[str, Any]]:
    """top_k and Anthropic-style thinking from additionalModelRequestFields (options every provider maps); the
    model's other fields stay as sent."""
    if not isinstance(fields, dict):
        raise ValueError("additionalModelRequestFields: expected an object")
    rest = dict(fields)
    top_k = rest.pop("top_k", None)
    if top_k is not None and (isinstance(top_k, bool) or not isinstance(top_k, int) or top_k < 1):
        raise ValueError("additionalModelRequestFields.top_k: expected a positive integer")
    thinking = rest.pop("thinking", None)
    reasoning = None
    display = thinking.get("display") if isinstance(thinking, dict) else None  # Claude's; LiteLLM sends it
    if display is not None and display not in THINKING_DISPLAYS:
        raise ValueError(f"additionalModelRequestFields.thinking.display: expected {' or '.join(THINKING_DISPLAYS)}")
    kind = {k: v for k, v in thinking.items() if k != "display"} if isinstance(thinking, dict) else thinking
    if isinstance(kind, dict) and kind.get("type") == "enabled" and set(kind) <= {"type", "budget_tokens"}:
        budget = kind.get("budget_tokens")
        if isinstance(budget, bool) or not isinstance(budget, int) or budget < 1:
            raise ValueError("additionalModelRequestFields.thinking.budget_tokens: expected a positive integer")
        reasoning = Reasoning(budget_tokens=budget, display=display)
    elif kind == {"type": "adaptive"}:
        reasoning = Reasoning(adaptive=True, display=display)
    elif thinking == {"type": "disabled"}:
        reasoning = Reasoning(budget_tokens=0)  # thinking off, said so: carried to Claude (Reasoning.off)
    elif thinking is not None:
        raise ValueError(
            'additionalModelRequestFields.thinking: send {"type": "enabled", "budget_tokens": N}, '
            '{"type": "adaptive"} or {"type": "disabled"} (with a display: summarized or omitted)'
        )
    return top_k, reasoning, rest


def _claude_output(fields: dict[str, Any]) -> tuple[ResponseFormat | None, str | None]:
    """Claude's own `output_config` in additionalModelRequestFields (where @ai-sdk/amazon-bedrock sends a Claude
    model's JSON schema and effort), taken out of `fields` as Converse's outputConfig is read: a json_schema format
    and an effort that every provider maps. Anything else in it stays a field for the model."""
    config = fields.get("output_config")
    if config is None:
        return None, None
    if not isinstance(config, dict):
        raise ValueError("additionalModelRequestFields.output_config: expected an object")
    rest = dict(config)
    fmt, effort = rest.pop("format", None), rest.pop("effort", None)
    where = "additionalModelRequestFields.output_config"
    if effort is not None:
        _string(effort, f"{where}.effort")
    if fmt is not None:
        if not isinstance(fmt, dict) or fmt.get("type") != "json_schema" or not isinstance(fmt.get("schema"), dict):
            raise ValueError(f'{where}.format: send {{"type": "json_schema", "schema": {{...}}}}')
        if set(fmt) - {"type", "schema"}:
            raise ValueError(f"{where}.format.{sorted(set(fmt) - {'type', 'schema'})[0]}: not carried; remove it")
        fmt = ResponseFormat("json_schema", fmt["schema"], strict=True)  # Claude always enforces it
    if rest:
        fields["output_config"] = rest
    else:
        del fields["output_config"]
    return fmt, effort


def request_from_converse(model: str, body: Any) -> ChatRequest:
    """A Converse request body (the model id is the URL's) as a ChatRequest.
    Raises ValueError naming the field, in boto3's terms, for anything malformed or not carried."""
    if not isinstance(body, dict):
        raise ValueError("the request body must be a JSON object")
    for key in body:
        if key not in KNOWN_FIELDS:
            raise ValueError(f"{key}: not carried by the gateway; remove it")
    raw_messages = body.get("messages")
    if not isinstance(raw_messages, list) or not raw_messages:
        raise ValueError("messages: expected a non-empty list of messages")
    messages = []
    for i, item in enumerate(raw_messages):
        message = _object(item, f"messages[{i}]", ("role", "content"))
        if message.get("role") not in ("user", "assistant"):
            raise ValueError(f"messages[{i}].role: expected 'user' or 'assistant'")
        blocks, cached = _content(message.get("content"), f"messages[{i}].content", BLOCK_KINDS)
        messages.append(Message(message["role"], blocks, cached))
    system: str | None = None
    system_cached: CachePoint = False
    # An empty list is no system prompt, as Bedrock takes it: langchain-aws's ChatBedrockConverse sends `system: []`
    # with every request that has no system message, and so do the AI SDK's Bedrock provider and Pydantic AI.
    if body.get("system") is not None and body["system"] != []:
        parts, system_cached = _content(body["system"], "system", ("text", "cachePoint"))
        system = "\n".join(b.text for b in parts if isinstance(b, TextBlock))
    tools, choice, tools_cached = (
        _tools(body["toolConfig"]) if body.get("toolConfig") is not None else ([], None, False)
    )
    inference = _inference(body.get("inferenceConfig") or {})
    fmt, effort = _output(body["outputConfig"]) if body.get("outputConfig") is not None else (None, None)
    top_k, reasoning, model_fields = _model_fields(body.get("additionalModelRequestFields") or {})
    claude_fmt, claude_effort = _claude_output(model_fields)
    if claude_fmt is not None:
        if fmt is not None:
            raise ValueError("additionalModelRequestFields.output_config.format: send the schema once, in outputConfig")
        fmt = claude_fmt
    if claude_effort is not None:
        if effort is not None:
            raise ValueError("additionalModelRequestFields.output_config.effort: send the effort once, in outputConfig")
        effort = claude_effort
    if effort is not None:
        reasoning = Reasoning(
            effort=effort,
            budget_tokens=reasoning.budget_tokens if reasoning else None,
            adaptive=bool(reasoning and reasoning.adaptive),
            display=reasoning.display if reasoning else None,
        )
    extra: dict[str, Any] = {key: body[key] for key in PASS_THROUGH if body.get(key) is not None}
    paths = extra.get("additionalModelResponseFieldPaths")
    if isinstance(paths, list):  # the stop-sequence paths are the gateway's to answer (STOP_SEQUENCE_PATHS)
        kept = [path for path in paths if path not in STOP_SEQUENCE_PATHS]
        extra.pop("additionalModelResponseFieldPaths")
        if kept:
            extra["additionalModelResponseFieldPaths"] = kept
    if model_fields:
        extra["additionalModelRequestFields"] = model_fields
    return ChatRequest(
        messages=messages,
        model=model,
        system=system,
        max_tokens=inference.get("maxTokens"),
        temperature=inference.get("temperature"),
        top_p=inference.get("topP"),
        top_k=top_k,
        stop=list(inference.get("stopSequences") or []),
        tools=tools,
        tool_choice=choice,
        response_format=fmt,
        reasoning=reasoning,
        extra=extra,
        system_cache_point=system_cached,
        tools_cache_point=tools_cached,
    )


# The request options a provider mapping names when it refuses one, by the Converse field the caller sent.
CALLER_FIELDS = {
    "max_tokens": "inferenceConfig.maxTokens",
    "temperature": "inferenceConfig.temperature",
    "top_p": "inferenceConfig.topP",
    "stop": "inferenceConfig.stopSequences",
    "top_k": "additionalModelRequestFields.top_k",
    "reasoning.budget_tokens": "additionalModelRequestFields.thinking.budget_tokens",
    "reasoning_effort": "outputConfig.effort",
    "thinking": "additionalModelRequestFields.thinking",
    "response_format": "outputConfig.textFormat",
    "tools": "toolConfig.tools",
    "tool_choice": "toolConfig.toolChoice",
}


def caller_param(param: str) -> str:
    """A mapping's name for a field it cannot send (`messages[2].content[1]`, `top_k`) in the caller's Converse
    terms: messages and their blocks keep their places (a cachePoint is only ever last), so only option names
    change."""
    for ours, theirs in CALLER_FIELDS.items():
        if param == ours or param.startswith(ours + "."):
            return theirs + param[len(ours) :]
    return param


def stop_sequence_paths(body: Any) -> list[str]:
    """The stop-sequence paths (STOP_SEQUENCE_PATHS) a Converse request's additionalModelResponseFieldPaths names."""
    paths = body.get("additionalModelResponseFieldPaths") if isinstance(body, dict) else None
    return [path for path in paths if path in STOP_SEQUENCE_PATHS] if isinstance(paths, list) else []
