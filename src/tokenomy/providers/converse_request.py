"""A Converse request received from a caller on the gateway's Bedrock Runtime routes (`/model/{modelId}/converse`,
`-stream`; boto3's `bedrock-runtime` client) as a ChatRequest: its options read here, its messages' content blocks by
`converse_inbound` (the answer goes back in Converse's shape by `converse_answers`); and a field a provider refused
named as the caller sent it.

Every field boto3 can send is carried or refused with a ValueError naming it in boto3's terms
(`inferenceConfig.topP`): nothing is dropped.
- inferenceConfig, toolConfig (toolSpec, toolChoice), outputConfig (a JSON schema text format, an effort) and the
  model fields Tokenomy knows in additionalModelRequestFields (top_k, Anthropic-style thinking) map to the
  ChatRequest's own options, so they reach whichever provider the route names.
- the rest of Converse's fields (guardrailConfig, requestMetadata, projectIdentifier, promptVariables, other model
  fields, ...) ride in
  `extra`, which the gateway carries to Bedrock models only, as the caller sent them.
"""

from __future__ import annotations

import re
from typing import Any

from tokenomy.messages import CachePoint, ChatRequest, Message, TextBlock
from tokenomy.providers import json_text
from tokenomy.providers.converse_inbound import (
    BLOCK_KINDS,
    MAX_TOKENS,
    cache_point,
    checked_string,
    content_blocks,
    one_of,
    only_keys,
)
from tokenomy.request_options import THINKING_DISPLAYS, Reasoning, ResponseFormat, ToolChoice, ToolSpec

# Converse request fields that ride to a Bedrock model as sent (Bedrock's own features, no other API has them).
PASS_THROUGH = (
    "guardrailConfig",
    "promptVariables",
    "additionalModelResponseFieldPaths",
    "requestMetadata",
    "projectIdentifier",
    "performanceConfig",
    "serviceTier",
)
# Paths in `additionalModelResponseFieldPaths` to Claude's answer field naming the stop sequence that ended it
# (@ai-sdk/amazon-bedrock asks "/delta/stop_sequence" of every Claude model), each with where its answer goes. The
# gateway answers them itself from the stop sequence every provider reports (ChatResponse.stop_sequence; a Bedrock
# Claude is asked by bedrock_answer_read.ask_stop_sequence), so they reach any model, not Bedrock's alone.
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


def _tools(config: Any) -> tuple[list[ToolSpec], ToolChoice | None, CachePoint]:
    config = only_keys(config, "toolConfig", ("tools", "toolChoice"))
    entries = config.get("tools")
    if not isinstance(entries, list) or not entries:
        raise ValueError("toolConfig.tools: expected a non-empty list")
    tools: list[ToolSpec] = []
    cached: CachePoint = False
    for i, entry in enumerate(entries):
        where = f"toolConfig.tools[{i}]"
        kind, item = one_of(entry, where, ("toolSpec", "cachePoint"))
        if kind == "cachePoint":
            cached = cache_point(item, f"{where}.cachePoint")
            if i < len(entries) - 1:
                raise ValueError(
                    f"{where}.cachePoint: the gateway sets the tool list's cache point at its end; move the "
                    "cachePoint to the end"
                )
            continue
        spec = only_keys(item, f"{where}.toolSpec", ("name", "description", "inputSchema", "strict"))
        schema = only_keys(spec.get("inputSchema"), f"{where}.toolSpec.inputSchema", ("json",)).get("json")
        if not isinstance(schema, dict):
            raise ValueError(f"{where}.toolSpec.inputSchema.json: expected a JSON schema object")
        strict = spec.get("strict")
        if strict is not None and not isinstance(strict, bool):
            raise ValueError(f"{where}.toolSpec.strict: expected a boolean")
        description = spec.get("description")
        tools.append(
            ToolSpec(
                checked_string(spec.get("name"), f"{where}.toolSpec.name"),
                None if description is None else checked_string(description, f"{where}.toolSpec.description"),
                schema,
                strict,
            )
        )
    choice = None
    if config.get("toolChoice") is not None:
        mode, item = one_of(config["toolChoice"], "toolConfig.toolChoice", ("auto", "any", "tool"))
        if mode == "tool":
            name = checked_string(
                only_keys(item, "toolConfig.toolChoice.tool", ("name",)).get("name"), "toolConfig.toolChoice.tool.name"
            )
            choice = ToolChoice("tool", name)
        else:
            only_keys(item, f"toolConfig.toolChoice.{mode}", ())
            choice = ToolChoice("auto" if mode == "auto" else "any")
    return tools, choice, cached


def _system_breaks(
    texts: list[str], points: tuple[tuple[int, CachePoint], ...]
) -> tuple[tuple[int, int, CachePoint], ...]:
    """`ChatRequest.system_breaks` of a system prompt whose text blocks are joined by newlines, from the cachePoints
    between them (the index of the block before each): where the cached text ends, and the next begins."""
    ends = [sum(len(text) + 1 for text in texts[: k + 1]) - 1 for k, _ in points]
    return tuple((end, end + 1, point) for end, (_, point) in zip(ends, points, strict=True))


def _inference(config: Any) -> dict[str, Any]:
    config = only_keys(config, "inferenceConfig", tuple(INFERENCE_KEYS))
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
    config = only_keys(config, "outputConfig", ("textFormat", "effort"))
    effort = config.get("effort")
    if effort is not None:
        checked_string(effort, "outputConfig.effort")
    fmt = None
    if config.get("textFormat") is not None:
        text_format = only_keys(config["textFormat"], "outputConfig.textFormat", ("type", "structure"))
        if text_format.get("type") != "json_schema":
            raise ValueError("outputConfig.textFormat.type: expected 'json_schema'")
        where = "outputConfig.textFormat.structure.jsonSchema"
        structure = only_keys(text_format.get("structure"), "outputConfig.textFormat.structure", ("jsonSchema",))
        schema = only_keys(structure.get("jsonSchema"), where, ("schema", "name", "description"))
        try:
            # NaN, Infinity and 1e400 are not JSON: read as floats they failed a provider SDK's encoder, a 500
            parsed = json_text.loads(checked_string(schema.get("schema"), f"{where}.schema"))
        except ValueError as exc:
            raise ValueError(f"{where}.schema: expected a JSON schema as JSON text ({exc})") from None
        description = schema.get("description")
        fmt = ResponseFormat(
            "json_schema",
            parsed,
            schema.get("name"),
            True,
            None if description is None else checked_string(description, f"{where}.description"),
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
        checked_string(effort, f"{where}.effort")
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
        message = only_keys(item, f"messages[{i}]", ("role", "content"))
        if message.get("role") not in ("user", "assistant"):
            raise ValueError(f"messages[{i}].role: expected 'user' or 'assistant'")
        blocks, cached, inner = content_blocks(message.get("content"), f"messages[{i}].content", BLOCK_KINDS)
        messages.append(Message(message["role"], blocks, cached, block_points=inner))
    system: str | None = None
    system_cached: CachePoint = False
    system_breaks: tuple[tuple[int, int, CachePoint], ...] = ()
    # An empty list is no system prompt, as Bedrock takes it: langchain-aws's ChatBedrockConverse sends `system: []`
    # with every request that has no system message, and so do the AI SDK's Bedrock provider and Pydantic AI.
    if body.get("system") is not None and body["system"] != []:
        parts, system_cached, inner = content_blocks(body["system"], "system", ("text", "cachePoint"))
        texts = [b.text for b in parts if isinstance(b, TextBlock)]
        system = "\n".join(texts)
        system_breaks = _system_breaks(texts, inner)
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
        system_breaks=system_breaks,
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


_BLOCK_PATH = re.compile(r"messages\[(\d+)\]\.content\[(\d+)\]")
# A tool's schema, as Claude's form names it (`claude_schema`), and the response format's: their Converse places (a
# tool list's cachePoint comes only at its end, so a tool's index is the caller's; the format's schema is a JSON text).
_CLAUDE_SCHEMAS = (
    (re.compile(r"tools\[(\d+)\]\.input_schema"), r"toolConfig.tools[\1].toolSpec.inputSchema.json"),
    (re.compile(r"response_format\.json_schema\.schema"), "outputConfig.textFormat.structure.jsonSchema.schema"),
)


def caller_param(param: str, call: ChatRequest | None = None) -> str:
    """A mapping's name for a field it cannot send (`messages[2].content[1]`, `top_k`) in the caller's Converse
    terms: option names change, and a block's index counts the cachePoints before it in the caller's message
    (`call`, the request as read: its `block_points`); a block's cache point (`...content[1].cache_control`) is the
    cachePoint after it."""
    found = _BLOCK_PATH.match(param)
    if found is not None and call is not None and int(found[1]) < len(call.messages):
        message, block, rest = int(found[1]), int(found[2]), param[found.end() :]
        before = sum(1 for after, _ in call.messages[message].block_points if after < block)
        if rest == ".cache_control":
            return f"messages[{message}].content[{block + before + 1}].cachePoint"
        if rest == ".tool_use_id":  # the call a tool result answers
            rest = ".toolResult.toolUseId"
        return f"messages[{message}].content[{block + before}]{rest}"
    for pattern, theirs in _CLAUDE_SCHEMAS:
        schema = pattern.match(param)
        if schema is not None:
            return schema.expand(theirs) + param[schema.end() :]
    for ours, theirs in CALLER_FIELDS.items():
        if param == ours or param.startswith(ours + "."):
            return theirs + param[len(ours) :]
    return param


def stop_sequence_paths(body: Any) -> list[str]:
    """The stop-sequence paths (STOP_SEQUENCE_PATHS) a Converse request's additionalModelResponseFieldPaths names."""
    paths = body.get("additionalModelResponseFieldPaths") if isinstance(body, dict) else None
    return [path for path in paths if path in STOP_SEQUENCE_PATHS] if isinstance(paths, list) else []
