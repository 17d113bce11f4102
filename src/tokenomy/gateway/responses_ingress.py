"""OpenAI's Responses API request (`POST /v1/responses`), mapped onto a provider-neutral ChatRequest.

`input` is a list of items rather than messages: messages (with `input_text`, `input_image` and `input_file` parts,
or an assistant's `output_text` and `refusal`), `function_call` and `function_call_output` items, freeform
`custom_tool_call` and `custom_tool_call_output` items (calls of `custom` tools: raw text, ToolSpec.freeform, which
OpenAI-format models take and every other provider refuses naming the tool or call), and `reasoning` items.
Consecutive assistant-side items (reasoning, the assistant's message, its function calls) are one assistant turn
and consecutive function outputs one user turn, as the chat-completions mapping groups a run of `tool` messages.
`instructions` and the opening system/developer messages are the system prompt.

The gateway keeps no responses, so what needs them (`previous_response_id`, `conversation`, stored prompts, `store:
true`, item references, background runs) is refused with a 400 naming the field, as is every field or item type
this mapping does not know (hosted tools: web search, file search, computer use, MCP, ...). Fields that OpenAI's
chat completions has too (`service_tier`, `safety_identifier`, `text.verbosity`, log probabilities) ride in
`ChatRequest.extra` under their chat-completions names, which OpenAI-format models take and every other provider
refuses by name (`caller_param` names them as the caller sent them); `prompt_cache_key`, which every provider honours
its own way, is `ChatRequest.prompt_cache_key`. `metadata` labels the
call in the ledger (its tags), as OpenAI stores it with the response. `client_metadata` (Codex sends its installation,
session and turn ids and a blob of workspace paths and git remotes with every request) is telemetry for OpenAI's own
servers, which hand it to no model: it is checked and goes no further, neither to a provider nor into the ledger.
`max_tool_calls` caps calls of hosted tools, which the gateway refuses: with none offered, the cap always holds.
A function tool without `strict` is strict, as the Responses API reads it (chat completions reads it as non-strict):
its schema made strict as OpenAI makes it, or refused when no strict form holds it (`_strict_by_default`).
"""

from __future__ import annotations

import binascii
from dataclasses import dataclass, field, replace
from typing import Any

from tokenomy.gateway.openai_images import data_url
from tokenomy.gateway.openai_ingress import CONTENT_PATH, DOCUMENT_FORMATS, json_arguments, part_field
from tokenomy.gateway.openai_options import reasoning_from
from tokenomy.gateway.openai_shapes import RequestError
from tokenomy.messages import (
    Block,
    ChatRequest,
    DocumentBlock,
    ImageBlock,
    Message,
    Reasoning,
    ReasoningBlock,
    ResponseFormat,
    TextBlock,
    ToolChoice,
    ToolResultBlock,
    ToolSpec,
    ToolUseBlock,
)
from tokenomy.providers.reasoning_signers import unsealed_block
from tokenomy.providers.refusals import FILE_ID, Unsupported
from tokenomy.providers.strict_schema import NotStrict, strict_normalized
from tokenomy.routing.router import routing_tag_refusal

# How a reasoning item's `encrypted_content` carries what the gateway issued: a signed block's signature, or a
# redacted block's data. The prefix tells them apart on the way back; content of any other origin is refused.
SIGNED = "tokenomy.signed:"
REDACTED = "tokenomy.redacted:"
# Fields that need responses kept on the server, which the gateway does not keep.
STATEFUL = ("previous_response_id", "conversation", "prompt", "background", "context_management")
# fmt: off
MAPPED = {
    "model", "input", "instructions", "max_output_tokens", "temperature", "top_p", "tools", "tool_choice",
    "parallel_tool_calls", "text", "reasoning", "thinking", "metadata", "store", "stream", "stream_options", "include",
    "user", "safety_identifier", "prompt_cache_key", "prompt_cache_retention", "service_tier", "top_logprobs",
    "truncation", "client_metadata", "max_tool_calls", *STATEFUL,
}
# fmt: on
# Responses fields OpenAI's chat completions takes under the same name: to OpenAI-format models, as sent.
PASSED = ("safety_identifier", "prompt_cache_retention", "service_tier", "top_logprobs")
# A block's field a provider names when it refuses one, by the field of the content part the caller sent.
PART_FIELDS = {FILE_ID: "file_id"}
# A caller's field for each `extra` key the mapping set under another name (named so in a provider's refusal).
CALLER_FIELDS = {
    "verbosity": "text.verbosity",
    "logprobs": "include",
    "max_completion_tokens": "max_output_tokens",
    "max_tokens": "max_output_tokens",
    "reasoning_effort": "reasoning.effort",
    "reasoning.budget_tokens": "thinking.budget_tokens",
    "response_format": "text.format",
}
INCLUDES = {"reasoning.encrypted_content", "message.output_text.logprobs"}
ECHOED = {"id", "status"}  # on an item the SDK appends from an earlier response: identifies it, carries nothing


def _object(value: Any, where: str, keys: set[str]) -> dict[str, Any]:
    """`value` as an object holding only `keys` (plus `type`); a RequestError naming the first other key."""
    if not isinstance(value, dict):
        raise RequestError(where, "expected an object")
    unknown = sorted(key for key in set(value) - keys - {"type"} if value[key] is not None)  # null: the SDK's unset
    if unknown:
        raise RequestError(f"{where}.{unknown[0]}", "not supported by this gateway; remove it")
    return value


def _string(value: Any, where: str, required: bool = True) -> str | None:
    if value is None and not required:
        return None
    if not isinstance(value, str):
        raise RequestError(where, "required: a string" if value is None else "expected a string")
    return value


@dataclass(slots=True)
class Origin:
    """Where one turn of the content model came from in the caller's `input` (for naming a refused block)."""

    item: str  # the turn's first item: "input[3]"
    blocks: list[str] = field(default_factory=list)  # each block's path, in the turn's order
    parts: dict[int, list[str]] = field(default_factory=dict)  # a tool result block's index -> its parts' paths


# -- content parts -----------------------------------------------------------------------------------------------
def _image(part: dict[str, Any], where: str) -> ImageBlock:
    _object(part, where, {"image_url", "file_id", "detail"})
    if part.get("file_id") is not None:
        raise RequestError(f"{where}.file_id", "files stored with OpenAI are not carried; send image_url (a data URL)")
    url = _string(part.get("image_url"), f"{where}.image_url")
    detail = _string(part.get("detail"), f"{where}.detail", required=False)
    if url and url.startswith("data:"):
        media_type, text = data_url(url, where, ".image_url")
        return ImageBlock(media_type=media_type, detail=detail, base64=text)
    if not url:
        raise RequestError(f"{where}.image_url", "required: an http(s) URL or a base64 data URL")
    return ImageBlock(url=url, detail=detail)


def _file(part: dict[str, Any], where: str) -> DocumentBlock:
    _object(part, where, {"file_data", "file_id", "filename", "file_url", "detail"})
    if part.get("detail") not in (None, "auto"):  # "auto", the default, asks for nothing a provider must do
        raise RequestError(
            f"{where}.detail", "a file's detail level is OpenAI's Responses API's alone, not carried; send auto"
        )
    name = _string(part.get("filename"), f"{where}.filename", required=False) or None
    if part.get("file_url") is not None:
        raise RequestError(f"{where}.file_url", "files by URL are not carried; send file_data (a base64 data URL)")
    if part.get("file_id") is not None:  # an id of OpenAI's Files API (Azure's on its paths: `issued_by_azure`)
        file_id = _string(part["file_id"], f"{where}.file_id")
        return DocumentBlock(format="pdf", file_id=file_id, name=name, file_api="openai")
    payload = _string(part.get("file_data"), f"{where}.file_data")
    assert payload is not None
    media_type, text = data_url(payload, where, ".file_data")
    ext = name.rsplit(".", 1)[-1].lower() if name and "." in name else "pdf"
    # held as bytes, as the chat-completions mapping holds documents (most APIs take them so)
    return DocumentBlock(format=DOCUMENT_FORMATS.get(media_type) or ext, data=binascii.a2b_base64(text), name=name)


def _part(part: Any, where: str, assistant: bool) -> Block:
    kind = part.get("type") if isinstance(part, dict) else None
    if assistant and kind in ("output_text", "refusal"):
        key = "text" if kind == "output_text" else "refusal"
        # annotations and logprobs describe the text the model wrote earlier; the model reads the text
        _object(part, where, {key, "annotations", "logprobs"})
        return TextBlock(_string(part.get(key), f"{where}.{key}") or "")
    if not assistant and kind == "input_text":
        _object(part, where, {"text"})
        return TextBlock(_string(part.get("text"), f"{where}.text") or "")
    if not assistant and kind == "input_image":
        return _image(part, where)
    if not assistant and kind == "input_file":
        return _file(part, where)
    if not isinstance(part, dict):
        raise RequestError(where, "expected a content part object")
    takes = "output_text and refusal" if assistant else "input_text, input_image and input_file"
    raise RequestError(f"{where}.type", f"{kind!r} parts are not supported here ({takes} are)")


def _content(content: Any, where: str, assistant: bool = False) -> tuple[list[Block], list[str]]:
    """The blocks of a message's or function output's content, with each block's path."""
    if isinstance(content, str):
        return ([TextBlock(content)], [where]) if content else ([], [])
    if not isinstance(content, list):
        raise RequestError(where, "expected a string or a list of content parts")
    paths = [f"{where}[{i}]" for i in range(len(content))]
    return [_part(p, path, assistant) for p, path in zip(content, paths, strict=True)], paths


def _reasoning_item(item: dict[str, Any], where: str) -> ReasoningBlock:
    _object(item, where, {"summary", "content", "encrypted_content"} | ECHOED)
    texts = []
    for key, kind in (("content", "reasoning_text"), ("summary", "summary_text")):
        parts = item.get(key) or []
        if not isinstance(parts, list):
            raise RequestError(f"{where}.{key}", "expected a list")
        for k, part in enumerate(parts):
            _object(part, f"{where}.{key}[{k}]", {"text"})
            if part.get("type") != kind:
                raise RequestError(f"{where}.{key}[{k}].type", f"expected {kind!r}")
        texts.append("".join(_string(p.get("text"), f"{where}.{key}") or "" for p in parts))
    text = texts[0] or texts[1]  # the reasoning itself; its summary when the model gave only that
    sealed = _string(item.get("encrypted_content"), f"{where}.encrypted_content", required=False)
    if sealed is None:
        return ReasoningBlock(text)
    # Who signed it follows (reasoning_signers.sealed): no API family is this one's own
    if sealed.startswith(SIGNED):
        return unsealed_block(ReasoningBlock(text, sealed.removeprefix(SIGNED)), None)
    if sealed.startswith(REDACTED):
        return unsealed_block(ReasoningBlock(redacted=sealed.removeprefix(REDACTED)), None)
    raise RequestError(
        f"{where}.encrypted_content", "was not issued by this gateway, which cannot carry it; remove the reasoning item"
    )


def _function_call(item: dict[str, Any], where: str) -> ToolUseBlock:
    _object(item, where, {"call_id", "name", "arguments"} | ECHOED)
    call_id = _string(item.get("call_id"), f"{where}.call_id")
    name = _string(item.get("name"), f"{where}.name")
    arguments = _string(item.get("arguments"), f"{where}.arguments") or ""
    parsed = json_arguments(arguments) if arguments else {}
    return ToolUseBlock(
        id=call_id or "",
        name=name or "",
        input=parsed if isinstance(parsed, dict) else {"value": parsed},
        arguments=arguments,
    )


def _custom_call(item: dict[str, Any], where: str) -> ToolUseBlock:
    """A freeform call (Codex's apply_patch): its `input` is the raw text the model wrote."""
    _object(item, where, {"call_id", "name", "input"} | ECHOED)
    call_id = _string(item.get("call_id"), f"{where}.call_id") or ""
    name = _string(item.get("name"), f"{where}.name") or ""
    return ToolUseBlock(id=call_id, name=name, arguments=_string(item.get("input"), f"{where}.input"), freeform=True)


class _Turns:
    """The content model's turns, built item by item with where each came from."""

    def __init__(self) -> None:
        self.system: list[str] = []
        self.messages: list[Message] = []
        self.origins: list[Origin] = []

    def add(self, role: str, block: Block, path: str, parts: list[str] | None = None, merge: bool = True) -> None:
        """Append `block` to the last turn when it is `role`'s and `merge` allows, else to a new turn."""
        last = self.messages[-1] if self.messages else None
        if not (merge and last is not None and last.role == role):
            self.messages.append(Message(role, []))
            self.origins.append(Origin(path))
        if parts is not None:
            self.origins[-1].parts[len(self.messages[-1].content)] = parts
        self.messages[-1].content.append(block)
        self.origins[-1].blocks.append(path)


def _message(item: dict[str, Any], where: str, turns: _Turns) -> None:
    role = item.get("role")
    _object(item, where, {"role", "content"} | ECHOED | ({"phase"} if role == "assistant" else set()))
    if role == "assistant" and item.get("phase") is not None:
        raise RequestError(f"{where}.phase", "not carried by this gateway (OpenAI's models only); remove it")
    if role not in ("user", "assistant", "system", "developer"):
        raise RequestError(f"{where}.role", "expected user, assistant, system or developer")
    blocks, paths = _content(item.get("content"), f"{where}.content", assistant=role == "assistant")
    if role in ("system", "developer"):
        if any(not isinstance(b, TextBlock) for b in blocks):
            raise RequestError(f"{where}.content", "a system message takes text parts only")
        text = "".join(b.text for b in blocks if isinstance(b, TextBlock))
        if not turns.messages:
            turns.system.append(text)
        else:  # mid-conversation: in place for upstreams that take it there (ChatRequest.system_hoisted)
            turns.add("system", TextBlock(text), f"{where}.content", merge=False)
        return
    if not blocks:
        return
    for k, (block, path) in enumerate(zip(blocks, paths, strict=True)):
        # A user message starts its own turn (after function outputs too); an assistant's joins its reasoning/calls.
        turns.add(role, block, path, merge=role == "assistant" or k > 0)


def _items(value: Any, turns: _Turns) -> None:
    if isinstance(value, str):
        turns.add("user", TextBlock(value), "input", merge=False)
        return
    if not isinstance(value, list):
        raise RequestError("input", "expected a string or a list of items")
    for i, item in enumerate(value):
        where = f"input[{i}]"
        if not isinstance(item, dict):
            raise RequestError(where, "expected an item object")
        kind = item.get("type", "message" if "role" in item else None)
        if kind == "message":
            _message(item, where, turns)
        elif kind == "function_call":
            turns.add("assistant", _function_call(item, where), where)
        elif kind == "custom_tool_call":
            turns.add("assistant", _custom_call(item, where), where)
        elif kind in ("function_call_output", "custom_tool_call_output"):
            _object(item, where, {"call_id", "output"} | ECHOED)
            call_id = _string(item.get("call_id"), f"{where}.call_id") or ""
            blocks, paths = _content(item.get("output"), f"{where}.output")
            last = turns.messages[-1] if turns.messages else None
            results = last is not None and all(isinstance(b, ToolResultBlock) for b in last.content)
            turns.add("user", ToolResultBlock(call_id, blocks), where, paths, merge=results)
        elif kind == "reasoning":
            turns.add("assistant", _reasoning_item(item, where), where)
        elif kind == "item_reference":
            raise RequestError(where, "item references need responses the gateway does not keep; send the item itself")
        else:
            raise RequestError(
                f"{where}.type",
                f"{kind!r} items are not supported by this gateway (message, function_call, function_call_output, "
                "custom_tool_call, custom_tool_call_output and reasoning are)",
            )


# -- options -----------------------------------------------------------------------------------------------------
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
    _object(tool, where, {"name", "description", "format"})
    spec = tool.get("format")
    if spec is None:
        spec = {"type": "text"}  # OpenAI's default: unconstrained text
    kind = spec.get("type") if isinstance(spec, dict) else None
    if kind == "text":
        _object(spec, f"{where}.format", set())
    elif kind == "grammar":
        _object(spec, f"{where}.format", {"syntax", "definition"})
        if spec.get("syntax") not in ("lark", "regex"):
            raise RequestError(f"{where}.format.syntax", "expected lark or regex")
        _string(spec.get("definition"), f"{where}.format.definition")
    else:
        raise RequestError(f"{where}.format.type", 'expected "text" or "grammar"')
    return ToolSpec(
        _string(tool.get("name"), f"{where}.name") or "",
        _string(tool.get("description"), f"{where}.description", required=False),
        freeform=dict(spec),
    )


def _tools(value: Any) -> list[ToolSpec]:
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
        _object(tool, where, {"name", "description", "parameters", "strict", "output_schema"})
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
                _string(tool.get("name"), f"{where}.name") or "",
                _string(tool.get("description"), f"{where}.description", required=False),
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


def _tool_choice(value: Any, tools: list[ToolSpec]) -> ToolChoice | None:
    if value is None:
        return None
    modes = {"auto": "auto", "none": "none", "required": "any"}
    if isinstance(value, str) and value in modes:
        return ToolChoice(modes[value])  # type: ignore[arg-type]
    if isinstance(value, dict) and value.get("type") in ("function", "custom"):
        _object(value, "tool_choice", {"name"})
        return ToolChoice("tool", _string(value.get("name"), "tool_choice.name"))
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
    _object(value, "tool_choice", {"mode", "tools"})
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
        name = _string(_object(item, where, {"name"}).get("name"), f"{where}.name") or ""
        if name not in declared:
            raise RequestError(f"{where}.name", f"{name!r} is not among the tools sent; declare it")
        if name not in names:
            names.append(name)
    return ToolChoice(modes[value["mode"]], allowed=tuple(names))  # type: ignore[arg-type]


def _text(value: Any, extra: dict[str, Any]) -> ResponseFormat | None:
    if value is None:
        return None
    _object(value, "text", {"format", "verbosity"})
    if value.get("verbosity") is not None:
        extra["verbosity"] = _string(value["verbosity"], "text.verbosity")
    spec = value.get("format")
    if spec is None:
        return None
    kind = spec.get("type") if isinstance(spec, dict) else None
    if kind in ("text", "json_object"):
        _object(spec, "text.format", set())
        return ResponseFormat(kind)
    if kind != "json_schema":
        raise RequestError("text.format.type", f"{kind!r} is not text, json_object or json_schema")
    _object(spec, "text.format", {"name", "schema", "strict", "description"})
    schema = spec.get("schema")
    if not isinstance(schema, dict):
        raise RequestError("text.format.schema", "required: a JSON Schema object")
    strict = spec.get("strict")
    if strict is not None and not isinstance(strict, bool):
        raise RequestError("text.format.strict", "expected a boolean")
    return ResponseFormat(
        "json_schema",
        schema,
        _string(spec.get("name"), "text.format.name"),
        strict,
        _string(spec.get("description"), "text.format.description", required=False),
    )


def _reasoning(value: Any, thinking: Any) -> Reasoning | None:
    """`reasoning.effort`, or `thinking` (a budget in Anthropic's shape, the gateway's extension as on chat
    completions). A summary (`summary`, or the older `generate_summary`) asks for the thoughts the model has
    (Reasoning.thoughts): Gemini is told to include them and Claude to show them summarized; the answer's reasoning
    items carry them as summaries (responses_routes). A model that does not think has none to summarize."""
    summary = False
    if value is not None:
        _object(value, "reasoning", {"effort", "summary", "generate_summary"})
        for key in ("summary", "generate_summary"):
            if value.get(key) not in (None, "auto", "concise", "detailed"):
                raise RequestError(f"reasoning.{key}", "expected auto, concise or detailed")
            summary = summary or value.get(key) is not None
    effort = _string((value or {}).get("effort"), "reasoning.effort", required=False)
    reasoning = reasoning_from(thinking, effort, "reasoning.effort")
    if not summary:
        return reasoning
    return Reasoning(thoughts=True) if reasoning is None else replace(reasoning, thoughts=True)


def _metadata(value: Any) -> dict[str, str]:
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


def _options(body: dict[str, Any], extra: dict[str, Any]) -> None:
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
        _object(options, "stream_options", {"include_obfuscation"})
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


def request_from_responses(body: Any) -> tuple[ChatRequest, list[Origin]]:
    """The ChatRequest for a Responses API body, and where each of its turns came from (for `caller_path`)."""
    if not isinstance(body, dict):
        raise RequestError("body", "expected a JSON object")
    # A null is the SDK's unset (`moderation=None`): it asks for nothing, so it is no field to refuse.
    unknown = sorted(key for key in set(body) - MAPPED if body[key] is not None)
    if unknown:
        raise RequestError(unknown[0], "not supported by this gateway; remove it")
    turns = _Turns()
    instructions = _string(body.get("instructions"), "instructions", required=False)
    if instructions:
        turns.system.append(instructions)
    _items(body.get("input"), turns)
    if not any(m.role == "user" for m in turns.messages):
        raise RequestError("input", "at least one user message is required")
    extra: dict[str, Any] = {}
    _options(body, extra)
    cap = body.get("max_output_tokens")
    if cap is not None and (isinstance(cap, bool) or not isinstance(cap, int) or cap < 1):
        raise RequestError("max_output_tokens", "expected a whole number of tokens above 0")
    for key in ("temperature", "top_p"):
        if body.get(key) is not None and (isinstance(body[key], bool) or not isinstance(body[key], (int, float))):
            raise RequestError(key, "expected a number")
    parallel = body.get("parallel_tool_calls")
    if parallel is not None and not isinstance(parallel, bool):
        raise RequestError("parallel_tool_calls", "expected a boolean")
    tools = _tools(body.get("tools"))
    call = ChatRequest(
        messages=turns.messages,
        system="\n\n".join(turns.system) or None,
        max_tokens=cap,
        max_tokens_name="max_completion_tokens",  # OpenAI's current name, which reasoning models require
        temperature=body.get("temperature"),
        top_p=body.get("top_p"),
        tools=tools,
        tool_choice=_tool_choice(body.get("tool_choice"), tools),
        parallel_tool_calls=parallel,
        response_format=_text(body.get("text"), extra),
        reasoning=_reasoning(body.get("reasoning"), body.get("thinking")),
        user=_string(body.get("user"), "user", required=False),
        prompt_cache_key=_string(body.get("prompt_cache_key"), "prompt_cache_key", required=False),
        extra=extra,
    )
    call.meta.tags = _metadata(body.get("metadata"))
    return call, turns.origins


def caller_path(origins: list[Origin], refused: Unsupported) -> str:
    """Where the caller sent what a provider refused: `input[2].content[1]`, `input[4]`, or a top-level field."""
    if refused.message is None:
        return CALLER_FIELDS.get(refused.where, refused.where)
    origin = origins[refused.message]
    if refused.block is None:
        return origin.item
    if refused.part is not None:
        return part_field(origin.parts[refused.block][refused.part], refused.field, PART_FIELDS)
    return part_field(origin.blocks[refused.block], refused.field, PART_FIELDS)


def caller_param(origins: list[Origin], param: str) -> str:
    """A field a provider's mapping refused, by the caller's name for it: a request option, or a place in the
    content model (`messages[0].content[1].detail`, as Bedrock names an image by URL) as the caller sent it
    (`input[0].content[1].detail`)."""
    found = CONTENT_PATH.match(param)
    if found is None:  # an option, or a field inside one (`response_format.description`: `text.format.description`)
        head = next((ours for ours in CALLER_FIELDS if param == ours or param.startswith(ours + ".")), None)
        return param if head is None else CALLER_FIELDS[head] + param[len(head) :]
    message, block, part = (None if index is None else int(index) for index in found.groups())
    rest = param[found.end() :]
    own = rest[1:] if rest[1:] in PART_FIELDS else None  # a block's field the caller's part names its own way
    try:
        where = caller_path(origins, Unsupported("", message, block, part, own))
    except (IndexError, KeyError):  # not a place of this request's content model: left as the mapping named it
        return param
    return where if own is not None else where + rest
