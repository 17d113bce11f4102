"""The options of OpenAI's chat-completions request (everything but its messages) as ChatRequest's slots: tools and
the tool list's cache point, tool_choice, response_format, reasoning, the end-user id, prompt_cache_key, and the
fields passed through as sent (`extra_of`)."""

from __future__ import annotations

from typing import Any, Union

import orjson

from tokenomy.gateway.openai_shapes import (
    AT_THE_END,
    CHOICE_FUNCTION_KEYS,
    CUSTOM_KEYS,
    CUSTOM_TOOL_KEYS,
    FORMAT_KEYS,
    GRAMMAR_KEYS,
    SCHEMA_KEYS,
    TOOL_FUNCTION_KEYS,
    TOOL_KEYS,
    RequestError,
    bad_shape,
    cache_control_point,
    fits,
    only,
)
from tokenomy.gateway.schemas import MAPPED, ChatCompletionRequest
from tokenomy.messages import CachePoint
from tokenomy.request_options import Reasoning, ResponseFormat, ToolChoice, ToolSpec


def _custom_format(value: Any, where: str) -> dict[str, Any]:
    """A custom tool's `format` as ToolSpec.freeform has it (the grammar's keys beside its type)."""
    if value is None:
        return {"type": "text"}  # OpenAI's default: unconstrained text
    kind = value.get("type") if isinstance(value, dict) else None
    if kind == "text":
        only(value, {"type": str}, where)
        return {"type": "text"}
    if kind != "grammar":
        raise RequestError(f"{where}.type", 'expected "text" or "grammar"')
    only(value, {"type": str, "grammar": dict}, where)
    grammar = only(value.get("grammar"), GRAMMAR_KEYS, f"{where}.grammar")
    if grammar.get("syntax") not in ("lark", "regex"):
        raise RequestError(f"{where}.grammar.syntax", "expected lark or regex")
    if grammar.get("definition") is None:
        raise RequestError(f"{where}.grammar.definition", "required: the grammar as a string")
    return {"type": "grammar", "syntax": grammar["syntax"], "definition": grammar["definition"]}


def _custom_tool(tool: dict[str, Any], where: str) -> ToolSpec:
    """A freeform (custom) tool: the model answers its calls with raw text (only OpenAI-format models take one)."""
    only(tool, CUSTOM_TOOL_KEYS, where)
    custom = only(tool.get("custom"), CUSTOM_KEYS, f"{where}.custom")
    if not custom.get("name"):
        raise RequestError(f"{where}.custom.name", "required: a string")
    freeform = _custom_format(custom.get("format"), f"{where}.custom.format")
    return ToolSpec(custom["name"], custom.get("description"), freeform=freeform)


# Tool lists read before, by their JSON text, with their cache point: an agent sends the same tools with every
# request, and reading them (each tool's shape checked, a ToolSpec made) cost more than all its other options. The
# same text reads as the same ToolSpecs, so they are shared by the requests that send it (nothing changes a ToolSpec
# once made). A list refused is never kept: it is refused each time it comes.
_READ_TOOLS: dict[bytes, tuple[tuple[ToolSpec, ...], CachePoint]] = {}
READ_TOOLS_KEPT = 64  # tool lists kept, the oldest dropped first: a few agents' worth per worker


def read_tools(body: ChatCompletionRequest) -> tuple[list[ToolSpec], CachePoint]:
    """The request's tools and the tool list's cache point (`tools_of`, `tools_cache_point`), read once per text."""
    if not body.tools:
        return [], False
    try:
        text = orjson.dumps(body.tools)
    except TypeError:  # an integer past 64 bits, which orjson refuses: read as it comes
        return tools_of(body), tools_cache_point(body)
    known = _READ_TOOLS.get(text)
    if known is None:
        known = (tuple(tools_of(body)), tools_cache_point(body))
        if len(_READ_TOOLS) >= READ_TOOLS_KEPT:
            del _READ_TOOLS[next(iter(_READ_TOOLS))]
        _READ_TOOLS[text] = known
    return list(known[0]), known[1]


def tools_of(body: ChatCompletionRequest) -> list[ToolSpec]:
    tools = []
    for i, tool in enumerate(body.tools or []):
        # A function tool of the usual shape, read in one pass (this runs for every tool of every request); anything
        # else is a custom tool, or refused naming why (`_tool`).
        if isinstance(tool, dict) and tool.get("type") == "function":
            function: Any = tool.get("function")
            if fits(tool, TOOL_KEYS) and fits(function, TOOL_FUNCTION_KEYS) and function.get("name"):
                schema = function.get("parameters") or {"type": "object", "properties": {}}
                tools.append(ToolSpec(function["name"], function.get("description"), schema, function.get("strict")))
                continue
        tools.append(_tool(tool, i))
    return tools


def _tool(tool: Any, i: int) -> ToolSpec:
    """`tools[i]` when it is not a function tool of the usual shape: a custom tool, or a RequestError naming what is
    wrong."""
    if isinstance(tool, dict) and tool.get("type") == "custom":
        return _custom_tool(tool, f"tools[{i}]")
    function = tool.get("function") if isinstance(tool, dict) else None
    if isinstance(function, dict) and tool.get("type") == "function":
        if not fits(tool, TOOL_KEYS):
            bad_shape(tool, TOOL_KEYS, f"tools[{i}]")
        if not fits(function, TOOL_FUNCTION_KEYS):
            bad_shape(function, TOOL_FUNCTION_KEYS, f"tools[{i}].function")
    if not isinstance(function, dict) or tool.get("type") != "function" or not function.get("name"):
        raise RequestError(
            f"tools[{i}]",
            'only function tools ({"type": "function", "function": {"name", '
            '"parameters"}}) and custom tools ({"type": "custom", "custom": {"name", "format"}}) are supported by '
            "this gateway",
        )
    return ToolSpec(
        function["name"],
        function.get("description"),
        function.get("parameters") or {"type": "object", "properties": {}},
        function.get("strict"),
    )


def tool_choice_of(value: Union[str, dict[str, Any], None], tools: list[ToolSpec]) -> ToolChoice | None:
    if value is None:
        return None
    if isinstance(value, str):
        modes = {"auto": "auto", "none": "none", "required": "any"}
        if value not in modes:
            raise RequestError("tool_choice", f"{value!r} is not auto, none, required or a named function")
        return ToolChoice(modes[value])  # type: ignore[arg-type]
    kind = value.get("type")
    if kind == "allowed_tools":
        return _allowed_tools(value, tools)
    if kind in ("function", "custom"):  # a named function tool, or a named custom (freeform) one
        only(value, {"type": str, kind: dict}, "tool_choice")
        only(value.get(kind) or {}, CHOICE_FUNCTION_KEYS, f"tool_choice.{kind}")
    name = (value.get(kind) or {}).get("name") if kind in ("function", "custom") else None
    if not name:
        raise RequestError(
            "tool_choice",
            'send auto, none, required, {"type": "function", "function": {"name": ...}} or {"type": "custom", '
            '"custom": {"name": ...}} or {"type": "allowed_tools", "allowed_tools": {"mode": ..., "tools": [...]}}',
        )
    return ToolChoice("tool", name)


def _allowed_tools(value: dict[str, Any], tools: list[ToolSpec]) -> ToolChoice:
    """`{"type": "allowed_tools", "allowed_tools": {"mode": "auto" | "required", "tools": [{"type": "function",
    "function": {"name": ...}}, ...]}}`: the model may call those of the tools sent only. Each tool is named as
    tool_choice names one; a name none of `tools` has is refused at its place, as OpenAI refuses it."""
    only(value, {"type": str, "allowed_tools": dict}, "tool_choice")
    where = "tool_choice.allowed_tools"
    spec = only(value.get("allowed_tools"), {"mode": str, "tools": list}, where)
    modes = {"auto": "auto", "required": "any"}
    if spec.get("mode") not in modes:
        raise RequestError(f"{where}.mode", "expected auto or required")
    if not spec.get("tools"):
        raise RequestError(f"{where}.tools", 'name at least one tool (tool_choice "none" allows none)')
    declared = {tool.name for tool in tools}
    names: list[str] = []
    for i, item in enumerate(spec["tools"]):
        kind = item.get("type") if isinstance(item, dict) else None
        if kind not in ("function", "custom"):
            raise RequestError(f"{where}.tools[{i}]", 'expected {"type": "function", "function": {"name": ...}}')
        only(item, {"type": str, kind: dict}, f"{where}.tools[{i}]")
        name = only(item.get(kind), CHOICE_FUNCTION_KEYS, f"{where}.tools[{i}].{kind}").get("name")
        if not name:
            raise RequestError(f"{where}.tools[{i}].{kind}.name", "required: a tool's name")
        if name not in declared:
            raise RequestError(f"{where}.tools[{i}].{kind}.name", f"{name!r} is not among the tools sent; declare it")
        if name not in names:
            names.append(name)
    return ToolChoice(modes[spec["mode"]], allowed=tuple(names))  # type: ignore[arg-type]


def response_format_of(value: dict[str, Any] | None) -> ResponseFormat | None:
    if value is None:
        return None
    kind = only(value, FORMAT_KEYS, "response_format").get("type")
    if kind in ("text", "json_object"):
        return ResponseFormat(kind)
    if kind == "json_schema":
        spec = value.get("json_schema") or {}
        if not isinstance(spec, dict) or not isinstance(spec.get("schema") or {}, dict):
            raise RequestError("response_format.json_schema", 'send an object {"name": ..., "schema": {...}}')
        only(spec, SCHEMA_KEYS, "response_format.json_schema")
        return ResponseFormat(
            "json_schema", spec.get("schema") or {}, spec.get("name"), spec.get("strict"), spec.get("description")
        )
    raise RequestError("response_format.type", f"{kind!r} is not text, json_object or json_schema")


def reasoning_from(thinking: dict[str, Any] | None, effort: str | None, effort_name: str) -> Reasoning | None:
    """`effort` (OpenAI's level, sent as `effort_name`) or `thinking` (a budget in tokens, in Anthropic's shape), not
    both; or adaptive thinking (`{"type": "adaptive"}`, Claude 4.6 and later), which the effort may guide."""
    if thinking is not None and not isinstance(thinking, dict):
        raise RequestError("thinking", "expected an object")
    if thinking is not None and thinking.get("type") == "adaptive":
        if set(thinking) != {"type"}:
            raise RequestError("thinking", f'send {{"type": "adaptive"}} alone (with {effort_name} to guide it)')
        return Reasoning(effort=effort, adaptive=True)
    if thinking is None or thinking.get("type") == "disabled":
        if thinking is not None and set(thinking) != {"type"}:
            raise RequestError(
                "thinking", 'send {"type": "disabled"} alone, or {"type": "enabled", "budget_tokens": N}'
            )
        if thinking is not None:  # thinking off, said so: each provider carries it (Reasoning.off), with any effort
            return Reasoning(effort=effort, budget_tokens=0)
        return Reasoning(effort=effort) if effort else None
    if thinking.get("type") != "enabled" or set(thinking) != {"type", "budget_tokens"}:
        raise RequestError(
            "thinking", 'send {"type": "adaptive"}, {"type": "enabled", "budget_tokens": N} or {"type": "disabled"}'
        )
    budget = thinking["budget_tokens"]
    if isinstance(budget, bool) or not isinstance(budget, int) or budget < 1:
        raise RequestError("thinking.budget_tokens", "expected a whole number of tokens above 0")
    if effort:
        raise RequestError("thinking", f"send a thinking budget or {effort_name}, not both")
    return Reasoning(budget_tokens=budget)


def user_of(body: ChatCompletionRequest) -> str | None:
    """The end-user id (`user`), which each provider carries in its own field (ChatRequest.user)."""
    user = (body.model_extra or {}).get("user")
    if user is not None and not isinstance(user, str):
        raise RequestError("user", "expected a string (an id for your end user)")
    return user


def cache_key_of(body: ChatCompletionRequest) -> str | None:
    """`prompt_cache_key`, which every provider honours in its own way (ChatRequest.prompt_cache_key)."""
    key = (body.model_extra or {}).get("prompt_cache_key")
    if key is not None and not isinstance(key, str):
        raise RequestError("prompt_cache_key", "expected a string")
    return key


def extra_of(body: ChatCompletionRequest) -> dict[str, Any]:
    """Fields passed through as sent (a default that changes nothing, like n=1, is not a field to refuse)."""
    extra = {k: v for k, v in (body.model_extra or {}).items() if k not in MAPPED}
    if body.n is not None and body.n != 1:
        if body.stream:
            raise RequestError("n", "n > 1 cannot be streamed through this gateway; send n=1 or stream=false")
        extra["n"] = body.n
    if body.logprobs:
        extra["logprobs"] = True
    if body.stream_options is not None:
        if not body.stream:  # OpenAI refuses it too: the caller expects a usage chunk that no stream will carry
            raise RequestError("stream_options", "only allowed with stream: true; remove it or stream the answer")
        if body.stream_options.include_obfuscation:  # false (less bandwidth) is what the gateway does anyway
            raise RequestError(
                "stream_options.include_obfuscation",
                "the gateway's stream chunks carry no obfuscation padding; send false or remove it",
            )
        for key in body.stream_options.model_extra or {}:
            raise RequestError(f"stream_options.{key}", "not supported by this gateway (include_usage is)")
    return extra


def tools_cache_point(body: ChatCompletionRequest) -> CachePoint:
    """The tool list's cache point: `cache_control` on its last tool (on an earlier one it is refused)."""
    tools = body.tools or []
    for i, tool in enumerate(tools):
        if isinstance(tool, dict) and tool.get("cache_control") is not None:
            if i < len(tools) - 1:
                raise RequestError(f"tools[{i}].cache_control", AT_THE_END.format("the tool list", "tool"))
            return cache_control_point(tool["cache_control"], f"tools[{i}].cache_control")
    return False
