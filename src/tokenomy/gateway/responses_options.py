"""The options of OpenAI's Responses API request (everything but its `input` and `instructions`) as ChatRequest's
slots: tools, tool_choice, `text` (its format and verbosity), reasoning, `metadata`, and the fields without a slot,
refused or carried in `extra` (`extra_options`).

The gateway keeps no responses, so the fields that need them (`previous_response_id`, `conversation`, stored
prompts, `store: true`, background runs) are refused with a 400 naming the field, as are hosted tools (web search,
file search, computer use, MCP, ...). Fields that OpenAI's chat completions has too (`service_tier`,
`safety_identifier`, `text.verbosity`, log probabilities) ride in `ChatRequest.extra` under their chat-completions
names, which OpenAI-format models take and every other provider refuses by name (`responses_ingress.caller_param`
names them as the caller sent them); `prompt_cache_key`, which every provider honours its own way, is
`ChatRequest.prompt_cache_key`. `metadata` labels the call in the ledger (its tags), as OpenAI stores it with the
response. `client_metadata` (Codex sends its installation, session and turn ids and a blob of workspace paths and
git remotes with every request) is telemetry for OpenAI's own servers, which hand it to no model: it is checked and
goes no further, neither to a provider nor into the ledger. `max_tool_calls` caps calls of hosted tools, which the
gateway refuses: with none offered, the cap always holds. A function tool without `strict` is strict, as the
Responses API reads it (chat completions reads it as non-strict): its schema made strict as OpenAI makes it, or
refused when no strict form holds it (`_strict_by_default`).
"""

from __future__ import annotations

from dataclasses import replace
from typing import Any

from tokenomy.gateway.openai_options import reasoning_from
from tokenomy.gateway.openai_shapes import RequestError
from tokenomy.gateway.responses_shapes import checked_object, checked_string
from tokenomy.providers.strict_schema import NotStrict, strict_normalized
from tokenomy.request_options import Reasoning, ResponseFormat, ToolChoice, ToolSpec
from tokenomy.routing.router import routing_tag_refusal

# Fields that need responses kept on the server, which the gateway does not keep.
STATEFUL = ("previous_response_id", "conversation", "prompt", "background", "context_management")
# Responses fields OpenAI's chat completions takes under the same name: to OpenAI-format models, as sent.
PASSED = ("safety_identifier", "prompt_cache_retention", "service_tier", "top_logprobs")
INCLUDES = {"reasoning.encrypted_content", "message.output_text.logprobs"}


# Why a tool other than a function or custom tool is refused, and what to send instead (Codex offers web_search, in
# its cached mode, unless told otherwise: its config.toml key is named).
# The built-in tools the caller runs (shell, apply_patch) are no server's: their calls are items of OpenAI's own shape
# that no other model writes, so they are declared as function tools instead.
CLIENT_RUN = "OpenAI's built-in {} call is not carried by this gateway; declare a function tool for it"
UNCARRIED_TOOLS = {
    "local_shell": CLIENT_RUN.format("shell"),
    "shell": CLIENT_RUN.format("shell"),
    "apply_patch": CLIENT_RUN.format("apply_patch") + " (or a custom tool, which OpenAI-format models take)",
    "web_search": "OpenAI's servers run the search and this gateway runs none; remove the tool (Codex: "
    '`web_search = "disabled"`)',
}
HOSTED = (
    "OpenAI's servers run these (files, computer use, code, images, MCP) and this gateway runs none; remove the tool "
    "(function and custom tools are carried)"
)


def _custom_tool(tool: dict[str, Any], where: str) -> ToolSpec:
    """A freeform tool (Codex's apply_patch): the model answers with raw text, unconstrained or under a grammar."""
    checked_object(tool, where, {"name", "description", "format"})
    spec = tool.get("format")
    if spec is None:
        spec = {"type": "text"}  # OpenAI's default: unconstrained text
    kind = spec.get("type") if isinstance(spec, dict) else None
    if kind == "text":
        checked_object(spec, f"{where}.format", set())
    elif kind == "grammar":
        checked_object(spec, f"{where}.format", {"syntax", "definition"})
        if spec.get("syntax") not in ("lark", "regex"):
            raise RequestError(f"{where}.format.syntax", "expected lark or regex")
        checked_string(spec.get("definition"), f"{where}.format.definition")
    else:
        raise RequestError(f"{where}.format.type", 'expected "text" or "grammar"')
    return ToolSpec(
        checked_string(tool.get("name"), f"{where}.name") or "",
        checked_string(tool.get("description"), f"{where}.description", required=False),
        freeform=dict(spec),
    )


def tools_of(value: Any) -> list[ToolSpec]:
    if value is None:
        return []
    if not isinstance(value, list):
        raise RequestError("tools", "expected a list of tools")
    tools = []
    for i, tool in enumerate(value):
        where = f"tools[{i}]"
        if isinstance(tool, dict) and tool.get("type") == "custom":
            tools.append(_custom_tool(tool, where))
            continue
        if not isinstance(tool, dict) or tool.get("type") != "function":
            kind = tool.get("type") if isinstance(tool, dict) else None
            family = "web_search" if isinstance(kind, str) and kind.startswith("web_search") else kind
            if not isinstance(family, str):
                raise RequestError(where, "expected a tool object with a type (function and custom tools are carried)")
            raise RequestError(f"{where}.type", f"{kind!r} tools: {UNCARRIED_TOOLS.get(family, HOSTED)}")
        checked_object(tool, where, {"name", "description", "parameters", "strict", "output_schema"})
        parameters = tool.get("parameters")
        if parameters is not None and not isinstance(parameters, dict):
            raise RequestError(f"{where}.parameters", "expected a JSON Schema object")
        strict = tool.get("strict")
        if strict is not None and not isinstance(strict, bool):
            raise RequestError(f"{where}.strict", "expected a boolean")
        output_schema = tool.get("output_schema")
        if output_schema is not None and not isinstance(output_schema, dict):
            raise RequestError(f"{where}.output_schema", "expected a JSON Schema object")
        parameters = parameters or {"type": "object", "properties": {}}
        if strict is None:
            parameters, strict = _strict_by_default(parameters, where), True
        tools.append(
            ToolSpec(
                checked_string(tool.get("name"), f"{where}.name") or "",
                checked_string(tool.get("description"), f"{where}.description", required=False),
                parameters,
                strict,
                output_schema,
            )
        )
    return tools


def _strict_by_default(parameters: dict[str, Any], where: str) -> dict[str, Any]:
    """A function tool's parameters when it omits `strict`, which the Responses API reads as strict: true (unlike
    chat completions), its schema made strict as OpenAI makes it (`strict_normalized`: every object closed, every
    property required). A schema no strict form holds is refused: sent non-strict, the call would not be held to
    what the caller (as OpenAI reads the request) asked."""
    try:
        return strict_normalized(parameters)
    except NotStrict as exc:
        place = f"{where}.parameters" + (f".{exc.where}" if exc.where else "")
        raise RequestError(
            f"{where}.strict",
            f"left out, which the Responses API reads as strict: true (every object of {where}.parameters closed, "
            f"every property required), and {place} {exc.what}, which strict mode cannot hold; send strict: false "
            "for best-effort function calling, or make the schema strict yourself",
        ) from None


def tool_choice_of(value: Any, tools: list[ToolSpec]) -> ToolChoice | None:
    if value is None:
        return None
    modes = {"auto": "auto", "none": "none", "required": "any"}
    if isinstance(value, str) and value in modes:
        return ToolChoice(modes[value])  # type: ignore[arg-type]
    if isinstance(value, dict) and value.get("type") in ("function", "custom"):
        checked_object(value, "tool_choice", {"name"})
        return ToolChoice("tool", checked_string(value.get("name"), "tool_choice.name"))
    if isinstance(value, dict) and value.get("type") == "allowed_tools":
        return _allowed_tools(value, tools)
    raise RequestError(
        "tool_choice",
        'send auto, none, required, {"type": "function", "name": ...}, {"type": "custom", "name": ...} or '
        '{"type": "allowed_tools", "mode": ..., "tools": [...]} (hosted tools are not supported by this gateway)',
    )


def _allowed_tools(value: dict[str, Any], tools: list[ToolSpec]) -> ToolChoice:
    """`{"type": "allowed_tools", "mode": "auto" | "required", "tools": [{"type": "function", "name": ...}, ...]}`:
    the model may call those of the tools sent only (function and custom tools: the gateway carries no other). A
    name none of `tools` has is refused at its place."""
    checked_object(value, "tool_choice", {"mode", "tools"})
    modes = {"auto": "auto", "required": "any"}
    if value.get("mode") not in modes:
        raise RequestError("tool_choice.mode", "expected auto or required")
    items = value.get("tools")
    if not isinstance(items, list) or not items:
        raise RequestError("tool_choice.tools", 'name at least one tool (tool_choice "none" allows none)')
    declared = {tool.name for tool in tools}
    names: list[str] = []
    for i, item in enumerate(items):
        where = f"tool_choice.tools[{i}]"
        kind = item.get("type") if isinstance(item, dict) else None
        if kind not in ("function", "custom"):
            raise RequestError(where, f"{kind!r} tools: only function and custom tools are carried by this gateway")
        name = checked_string(checked_object(item, where, {"name"}).get("name"), f"{where}.name") or ""
        if name not in declared:
            raise RequestError(f"{where}.name", f"{name!r} is not among the tools sent; declare it")
        if name not in names:
            names.append(name)
    return ToolChoice(modes[value["mode"]], allowed=tuple(names))  # type: ignore[arg-type]


def response_format_of(value: Any, extra: dict[str, Any]) -> ResponseFormat | None:
    if value is None:
        return None
    checked_object(value, "text", {"format", "verbosity"})
    if value.get("verbosity") is not None:
        extra["verbosity"] = checked_string(value["verbosity"], "text.verbosity")
    spec = value.get("format")
    if spec is None:
        return None
    kind = spec.get("type") if isinstance(spec, dict) else None
    if kind in ("text", "json_object"):
        checked_object(spec, "text.format", set())
        return ResponseFormat(kind)
    if kind != "json_schema":
        raise RequestError("text.format.type", f"{kind!r} is not text, json_object or json_schema")
    checked_object(spec, "text.format", {"name", "schema", "strict", "description"})
    schema = spec.get("schema")
    if not isinstance(schema, dict):
        raise RequestError("text.format.schema", "required: a JSON Schema object")
    strict = spec.get("strict")
    if strict is not None and not isinstance(strict, bool):
        raise RequestError("text.format.strict", "expected a boolean")
    return ResponseFormat(
        "json_schema",
        schema,
        checked_string(spec.get("name"), "text.format.name"),
        strict,
        checked_string(spec.get("description"), "text.format.description", required=False),
    )


def reasoning_of(value: Any, thinking: Any) -> Reasoning | None:
    """`reasoning.effort`, or `thinking` (a budget in Anthropic's shape, the gateway's extension as on chat
    completions). A summary (`summary`, or the older `generate_summary`) asks for the thoughts the model has
    (Reasoning.thoughts): Gemini is told to include them and Claude to show them summarized; the answer's reasoning
    items carry them as summaries (responses_answer). A model that does not think has none to summarize."""
    summary = False
    if value is not None:
        checked_object(value, "reasoning", {"effort", "summary", "generate_summary"})
        for key in ("summary", "generate_summary"):
            if value.get(key) not in (None, "auto", "concise", "detailed"):
                raise RequestError(f"reasoning.{key}", "expected auto, concise or detailed")
            summary = summary or value.get(key) is not None
    effort = checked_string((value or {}).get("effort"), "reasoning.effort", required=False)
    reasoning = reasoning_from(thinking, effort, "reasoning.effort")
    if not summary:
        return reasoning
    return Reasoning(thoughts=True) if reasoning is None else replace(reasoning, thoughts=True)


def tags_of(value: Any) -> dict[str, str]:
    """`metadata` (up to 16 string pairs, as OpenAI takes it): the call's labels in the ledger."""
    if value is None:
        return {}
    if not isinstance(value, dict) or any(not isinstance(v, str) for v in value.values()):
        raise RequestError("metadata", "expected an object of string values")
    if len(value) > 16:
        raise RequestError("metadata", "at most 16 pairs")
    for key, text in value.items():  # OpenAI's own limits: what it would refuse is refused here too
        if len(key) > 64 or len(text) > 512:
            raise RequestError(f"metadata.{key[:64]}", "keys take at most 64 characters, values 512")
    refused = routing_tag_refusal(value)  # the row's tags: not one routing writes
    if refused is not None:
        raise RequestError("metadata", refused)
    return dict(value)


def extra_options(body: dict[str, Any], extra: dict[str, Any]) -> None:
    """The fields without a ChatRequest slot: refused when they need what the gateway has not, else into `extra`."""
    if body.get("stream") is not None and not isinstance(body["stream"], bool):  # "false", a string, streamed
        raise RequestError("stream", "expected a boolean (true or false)")
    telemetry = body.get("client_metadata")  # for the server, not the model: checked, then left here (module doc)
    if telemetry is not None and (
        not isinstance(telemetry, dict) or any(not isinstance(v, str) for v in telemetry.values())
    ):
        raise RequestError("client_metadata", "expected an object of string values")
    for key in STATEFUL:
        if body.get(key) not in (None, False):
            raise RequestError(
                key,
                "needs responses kept on the server, which this gateway does not keep; send the whole "
                "conversation in `input`",
            )
    if body.get("store"):
        raise RequestError("store", "this gateway keeps no responses (its ledger records the call); send false")
    if body.get("truncation") not in (None, "disabled"):
        raise RequestError(
            "truncation",
            "only disabled (an input longer than the model's window is an error, nothing is cut); send disabled",
        )
    cap = body.get("max_tool_calls")  # on hosted tools, which the gateway refuses: no call can exceed it
    if cap is not None and (isinstance(cap, bool) or not isinstance(cap, int) or cap < 1):
        raise RequestError("max_tool_calls", "expected a whole number above 0")
    options = body.get("stream_options")
    if options is not None:
        if not body.get("stream"):
            raise RequestError("stream_options", "only allowed with stream: true; remove it or stream the answer")
        checked_object(options, "stream_options", {"include_obfuscation"})
        if options.get("include_obfuscation"):
            raise RequestError(
                "stream_options.include_obfuscation", "the gateway's events carry no obfuscation; send false"
            )
    include = body.get("include") or []
    if not isinstance(include, list):
        raise RequestError("include", "expected a list")
    for k, name in enumerate(include):
        if not isinstance(name, str) or name not in INCLUDES:  # (a list or object is no set member: not a 500)
            raise RequestError(f"include[{k}]", f"{name!r} is not supported (only {', '.join(sorted(INCLUDES))})")
    extra.update({key: body[key] for key in PASSED if body.get(key) is not None})
    # after top_logprobs, which needs it too: a provider refuses the first key, so the error names a field sent
    if "message.output_text.logprobs" in include or body.get("top_logprobs") is not None:
        extra["logprobs"] = True
