"""OpenAI's Responses API request (`POST /v1/responses`), mapped onto a provider-neutral ChatRequest.

`input` is a list of items rather than messages: messages (with `input_text`, `input_image` and `input_file` parts,
or an assistant's `output_text` and `refusal`), `function_call` and `function_call_output` items, freeform
`custom_tool_call` and `custom_tool_call_output` items (calls of `custom` tools: raw text, ToolSpec.freeform, which
OpenAI-format models take and every other provider refuses naming the tool or call), and `reasoning` items.
Consecutive assistant-side items (reasoning, the assistant's message, its function calls) are one assistant turn
and consecutive function outputs one user turn, as the chat-completions mapping groups a run of `tool` messages.
`instructions` and the opening system/developer messages are the system prompt.

The gateway keeps no responses, so an item reference (which needs them) is refused with a 400 naming the item, as
is every field or item type this mapping does not know. The request's options (everything but `input` and
`instructions`: tools, tool_choice, text, reasoning, metadata, the fields carried in `extra` or refused) are read
by `responses_options`, which says how each is carried.
"""

from __future__ import annotations

import binascii
from dataclasses import dataclass, field
from typing import Any

from tokenomy.gateway.openai_blocks import json_arguments
from tokenomy.gateway.openai_images import data_url
from tokenomy.gateway.openai_ingress import CONTENT_PATH, TOOL_SCHEMA, part_field
from tokenomy.gateway.openai_shapes import RequestError
from tokenomy.gateway.responses_options import (
    STATEFUL,
    extra_options,
    reasoning_of,
    response_format_of,
    tags_of,
    tool_choice_of,
    tools_of,
)
from tokenomy.gateway.responses_shapes import checked_object, checked_string
from tokenomy.messages import (
    Block,
    ChatRequest,
    DocumentBlock,
    ImageBlock,
    Message,
    ReasoningBlock,
    TextBlock,
    ToolResultBlock,
    ToolUseBlock,
)
from tokenomy.providers.block_refusals import FILE_ID
from tokenomy.providers.openai_wire import DOCUMENT_FORMATS
from tokenomy.providers.reasoning_signers import unsealed_block
from tokenomy.providers.refusals import Unsupported

# How a reasoning item's `encrypted_content` carries what the gateway issued: a signed block's signature, or a
# redacted block's data. The prefix tells them apart on the way back; content of any other origin is refused.
SIGNED = "tokenomy.signed:"
REDACTED = "tokenomy.redacted:"
# fmt: off
MAPPED = {
    "model", "input", "instructions", "max_output_tokens", "temperature", "top_p", "tools", "tool_choice",
    "parallel_tool_calls", "text", "reasoning", "thinking", "metadata", "store", "stream", "stream_options", "include",
    "user", "safety_identifier", "prompt_cache_key", "prompt_cache_retention", "service_tier", "top_logprobs",
    "truncation", "client_metadata", "max_tool_calls", *STATEFUL,
}
# fmt: on
# A block's field a provider names when it refuses one, by the field of the content part the caller sent.
PART_FIELDS = {FILE_ID: "file_id", "tool_use_id": "call_id"}  # a tool result's: its function_call_output's
# A caller's field for each `extra` key the mapping set under another name (named so in a provider's refusal).
CALLER_FIELDS = {
    "verbosity": "text.verbosity",
    "logprobs": "include",
    "max_completion_tokens": "max_output_tokens",
    "max_tokens": "max_output_tokens",
    "reasoning_effort": "reasoning.effort",
    "reasoning.budget_tokens": "thinking.budget_tokens",
    # Before response_format, which the lookup would match first: a format's description and schema sit in text.format.
    "response_format.json_schema.description": "text.format.description",
    "response_format.json_schema": "text.format.schema",
    "response_format": "text.format",
}
ECHOED = {"id", "status"}  # on an item the SDK appends from an earlier response: identifies it, carries nothing


@dataclass(slots=True)
class Origin:
    """Where one turn of the content model came from in the caller's `input` (for naming a refused block)."""

    item: str  # the turn's first item: "input[3]"
    blocks: list[str] = field(default_factory=list)  # each block's path, in the turn's order
    parts: dict[int, list[str]] = field(default_factory=dict)  # a tool result block's index -> its parts' paths


# -- content parts -----------------------------------------------------------------------------------------------
def _image(part: dict[str, Any], where: str) -> ImageBlock:
    checked_object(part, where, {"image_url", "file_id", "detail"})
    if part.get("file_id") is not None:
        raise RequestError(f"{where}.file_id", "files stored with OpenAI are not carried; send image_url (a data URL)")
    url = checked_string(part.get("image_url"), f"{where}.image_url")
    detail = checked_string(part.get("detail"), f"{where}.detail", required=False)
    if url and url.startswith("data:"):
        media_type, text = data_url(url, where, ".image_url")
        return ImageBlock(media_type=media_type, detail=detail, base64=text)
    if not url:
        raise RequestError(f"{where}.image_url", "required: an http(s) URL or a base64 data URL")
    return ImageBlock(url=url, detail=detail)


def _file(part: dict[str, Any], where: str) -> DocumentBlock:
    checked_object(part, where, {"file_data", "file_id", "filename", "file_url", "detail"})
    if part.get("detail") not in (None, "auto"):  # "auto", the default, asks for nothing a provider must do
        raise RequestError(
            f"{where}.detail", "a file's detail level is OpenAI's Responses API's alone, not carried; send auto"
        )
    name = checked_string(part.get("filename"), f"{where}.filename", required=False) or None
    if part.get("file_url") is not None:
        raise RequestError(f"{where}.file_url", "files by URL are not carried; send file_data (a base64 data URL)")
    if part.get("file_id") is not None:  # an id of OpenAI's Files API (Azure's on its paths: `issued_by_azure`)
        file_id = checked_string(part["file_id"], f"{where}.file_id")
        return DocumentBlock(format="pdf", file_id=file_id, name=name, file_api="openai")
    payload = checked_string(part.get("file_data"), f"{where}.file_data")
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
        checked_object(part, where, {key, "annotations", "logprobs"})
        return TextBlock(checked_string(part.get(key), f"{where}.{key}") or "")
    if not assistant and kind == "input_text":
        checked_object(part, where, {"text"})
        return TextBlock(checked_string(part.get("text"), f"{where}.text") or "")
    if not assistant and kind == "input_image":
        return _image(part, where)
    if not assistant and kind == "input_file":
        return _file(part, where)
    if not isinstance(part, dict):
        raise RequestError(where, "expected a content part object")
    if not assistant and kind == "input_audio":
        # OpenAI's Responses API has no audio input (OpenAI refuses the part too); Chat Completions takes it
        raise RequestError(
            f"{where}.type",
            "'input_audio' parts are not part of the Responses API (input_text, input_image and input_file are); "
            "send audio to /v1/chat/completions as an input_audio part",
        )
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
    checked_object(item, where, {"summary", "content", "encrypted_content"} | ECHOED)
    texts = []
    for key, kind in (("content", "reasoning_text"), ("summary", "summary_text")):
        parts = item.get(key) or []
        if not isinstance(parts, list):
            raise RequestError(f"{where}.{key}", "expected a list")
        for k, part in enumerate(parts):
            checked_object(part, f"{where}.{key}[{k}]", {"text"})
            if part.get("type") != kind:
                raise RequestError(f"{where}.{key}[{k}].type", f"expected {kind!r}")
        texts.append("".join(checked_string(p.get("text"), f"{where}.{key}") or "" for p in parts))
    text = texts[0] or texts[1]  # the reasoning itself; its summary when the model gave only that
    sealed = checked_string(item.get("encrypted_content"), f"{where}.encrypted_content", required=False)
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
    checked_object(item, where, {"call_id", "name", "arguments"} | ECHOED)
    call_id = checked_string(item.get("call_id"), f"{where}.call_id")
    name = checked_string(item.get("name"), f"{where}.name")
    arguments = checked_string(item.get("arguments"), f"{where}.arguments") or ""
    parsed = json_arguments(arguments) if arguments else {}
    return ToolUseBlock(
        id=call_id or "",
        name=name or "",
        input=parsed if isinstance(parsed, dict) else {"value": parsed},
        arguments=arguments,
    )


def _custom_call(item: dict[str, Any], where: str) -> ToolUseBlock:
    """A freeform call (Codex's apply_patch): its `input` is the raw text the model wrote."""
    checked_object(item, where, {"call_id", "name", "input"} | ECHOED)
    call_id = checked_string(item.get("call_id"), f"{where}.call_id") or ""
    name = checked_string(item.get("name"), f"{where}.name") or ""
    return ToolUseBlock(
        id=call_id, name=name, arguments=checked_string(item.get("input"), f"{where}.input"), freeform=True
    )


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
    checked_object(item, where, {"role", "content"} | ECHOED | ({"phase"} if role == "assistant" else set()))
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
        else:  # mid-conversation: in place for upstreams that take it there (request_views.system_hoisted)
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
            checked_object(item, where, {"call_id", "output"} | ECHOED)
            call_id = checked_string(item.get("call_id"), f"{where}.call_id") or ""
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


def request_from_responses(body: Any) -> tuple[ChatRequest, list[Origin]]:
    """The ChatRequest for a Responses API body, and where each of its turns came from (for `caller_path`)."""
    if not isinstance(body, dict):
        raise RequestError("body", "expected a JSON object")
    # A null is the SDK's unset (`moderation=None`): it asks for nothing, so it is no field to refuse.
    unknown = sorted(key for key in set(body) - MAPPED if body[key] is not None)
    if unknown:
        raise RequestError(unknown[0], "not supported by this gateway; remove it")
    turns = _Turns()
    instructions = checked_string(body.get("instructions"), "instructions", required=False)
    if instructions:
        turns.system.append(instructions)
    _items(body.get("input"), turns)
    if not any(m.role == "user" for m in turns.messages):
        raise RequestError("input", "at least one user message is required")
    extra: dict[str, Any] = {}
    extra_options(body, extra)
    cap = body.get("max_output_tokens")
    if cap is not None and (isinstance(cap, bool) or not isinstance(cap, int) or cap < 1):
        raise RequestError("max_output_tokens", "expected a whole number of tokens above 0")
    for key in ("temperature", "top_p"):
        if body.get(key) is not None and (isinstance(body[key], bool) or not isinstance(body[key], (int, float))):
            raise RequestError(key, "expected a number")
    parallel = body.get("parallel_tool_calls")
    if parallel is not None and not isinstance(parallel, bool):
        raise RequestError("parallel_tool_calls", "expected a boolean")
    tools = tools_of(body.get("tools"))
    call = ChatRequest(
        messages=turns.messages,
        system="\n\n".join(turns.system) or None,
        max_tokens=cap,
        max_tokens_name="max_completion_tokens",  # OpenAI's current name, which reasoning models require
        temperature=body.get("temperature"),
        top_p=body.get("top_p"),
        tools=tools,
        tool_choice=tool_choice_of(body.get("tool_choice"), tools),
        parallel_tool_calls=parallel,
        response_format=response_format_of(body.get("text"), extra),
        reasoning=reasoning_of(body.get("reasoning"), body.get("thinking")),
        user=checked_string(body.get("user"), "user", required=False),
        prompt_cache_key=checked_string(body.get("prompt_cache_key"), "prompt_cache_key", required=False),
        extra=extra,
    )
    call.meta.tags = tags_of(body.get("metadata"))
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
    schema = TOOL_SCHEMA.match(param)
    if schema is not None:  # a function tool's schema, in its parameters
        return f"tools[{schema[1]}].parameters{param[schema.end() :]}"
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
