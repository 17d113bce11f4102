"""The tool list, the tool choice and the response format as Chat Completions takes them (`openai_wire.request_body`
writes them into the body; the gateway's Responses API answer reuses `tool_call`). A tool is mapped once and shared
(`ToolSpec.derived`): an agent sends the same tools with every request."""

from __future__ import annotations

from typing import Any

from tokenomy.messages import ToolUseBlock
from tokenomy.providers.strict_schema import strict_form
from tokenomy.providers.usage_counts import arguments_text
from tokenomy.request_options import ResponseFormat, ToolChoice, ToolSpec


def tool_call(call: ToolUseBlock) -> dict[str, Any]:
    """An assistant message's tool call: a function call, or a freeform (custom) call with its raw text."""
    if call.freeform:
        return {"id": call.id, "type": "custom", "custom": {"name": call.name, "input": call.arguments or ""}}
    return {"id": call.id, "type": "function", "function": {"name": call.name, "arguments": arguments_text(call)}}


def custom_format(freeform: dict[str, Any]) -> dict[str, Any]:
    """A freeform tool's format (ToolSpec.freeform, the Responses API's flat shape) as chat completions nests it."""
    if freeform.get("type") != "grammar":
        return {"type": "text"}
    return {"type": "grammar", "grammar": {"definition": freeform["definition"], "syntax": freeform["syntax"]}}


def wire_tool(tool: ToolSpec) -> dict[str, Any]:
    """The tool as Chat Completions takes it, made once (`ToolSpec.derived`: an agent's tools come with every
    request) and shared by the bodies that send it, which nothing changes once made."""
    derived = tool.derived
    if derived is None:
        derived = tool.derived = {}
    wire = derived.get("openai")
    if wire is None:
        wire = derived["openai"] = _wire_tool(tool)
    return wire


def _wire_tool(tool: ToolSpec) -> dict[str, Any]:
    if tool.freeform is not None:
        custom: dict[str, Any] = {"name": tool.name}
        if tool.description is not None:
            custom["description"] = tool.description
        custom["format"] = custom_format(tool.freeform)
        return {"type": "custom", "custom": custom}
    schema = strict_form(tool.input_schema) if tool.strict else tool.input_schema
    function: dict[str, Any] = {"name": tool.name, "parameters": schema}
    if tool.described is not None:
        function["description"] = tool.described
    if tool.strict is not None:
        function["strict"] = tool.strict
    return {"type": "function", "function": function}


def _named_tool(name: str | None, tools: list[ToolSpec]) -> dict[str, Any]:
    """A tool by its name alone, as tool_choice names one: a custom (freeform) tool's shape, or a function's."""
    if any(t.name == name and t.freeform is not None for t in tools):
        return {"type": "custom", "custom": {"name": name}}
    return {"type": "function", "function": {"name": name}}


def tool_choice_body(choice: ToolChoice, tools: list[ToolSpec]) -> Any:
    if choice.mode == "tool":
        return _named_tool(choice.name, tools)
    mode = {"any": "required"}.get(choice.mode, choice.mode)
    if choice.allowed:
        named = [_named_tool(name, tools) for name in choice.allowed]
        return {"type": "allowed_tools", "allowed_tools": {"mode": mode, "tools": named}}
    return mode


def response_format_body(fmt: ResponseFormat) -> dict[str, Any]:
    if fmt.type != "json_schema":
        return {"type": fmt.type}
    schema = fmt.schema or {}
    spec: dict[str, Any] = {"name": fmt.name or "response", "schema": strict_form(schema) if fmt.strict else schema}
    if fmt.strict is not None:
        spec["strict"] = fmt.strict
    if fmt.description is not None:
        spec["description"] = fmt.description
    return {"type": "json_schema", "json_schema": spec}
