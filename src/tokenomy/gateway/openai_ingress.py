"""OpenAI's chat-completions request, mapped onto a provider-neutral ChatRequest.

Every field of OpenAI's request is either mapped onto a ChatRequest slot (messages with all their parts, tools,
tool_choice, response_format, sampling, reasoning_effort) or carried as-is in `ChatRequest.extra` (logprobs, n,
user, metadata, service_tier, ... and any field of an OpenAI-compatible server); a provider that cannot send one
refuses the request naming it (`Provider.refusal`, translated to the caller's place by `caller_path`). Nothing is
dropped: a part or key this mapping does not know is a 400.
"""

from __future__ import annotations

import binascii
import json
import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any, NoReturn, Union

import orjson

from tokenomy.config import RouteConfig
from tokenomy.gateway.schemas import MAPPED, ChatCompletionRequest
from tokenomy.messages import (
    ONE_HOUR,
    Block,
    CachePoint,
    ChatRequest,
    DocumentBlock,
    ImageBlock,
    Message,
    Reasoning,
    ReasoningBlock,
    RequestMeta,
    ResponseFormat,
    TextBlock,
    ToolChoice,
    ToolResultBlock,
    ToolSpec,
    ToolUseBlock,
)
from tokenomy.providers.openai_reasoning import call_signature, thinking_block
from tokenomy.providers.openai_wire import DOCUMENT_MEDIA_TYPES
from tokenomy.providers.refusals import Unsupported

# A file part's media type -> the document's format: every type the mappings send (an office file among them, which
# was taken for a PDF when it came without a file name and went upstream labelled application/pdf).
DOCUMENT_FORMATS = {media_type: fmt for fmt, media_type in DOCUMENT_MEDIA_TYPES.items()}


class RequestError(ValueError):
    """A malformed or unsupported part of the request; `param` names where (OpenAI's error.param)."""

    def __init__(self, param: str, message: str) -> None:
        super().__init__(f"{param}: {message}")
        self.param = param


def parse_tags(header: str | None) -> dict[str, str]:
    """`x-tokenomy-tags`: JSON object or `k=v,k2=v2`."""
    if not header:
        return {}
    header = header.strip()
    if header.startswith("{"):
        try:
            data = json.loads(header)
        except json.JSONDecodeError:
            raise ValueError("x-tokenomy-tags: not valid JSON; send an object or k=v,k2=v2") from None
        if not isinstance(data, dict):
            raise ValueError("x-tokenomy-tags: send a JSON object or k=v,k2=v2")
        return {str(k): str(v) for k, v in data.items()}
    tags = {}
    for pair in header.split(","):
        if pair.strip():
            key, sep, value = pair.partition("=")
            if not sep or not key.strip():
                raise ValueError(f"x-tokenomy-tags: {pair.strip()!r} is not k=v")
            tags[key.strip()] = value.strip()
    return tags


# -- messages --------------------------------------------------------------------------------------
def data_url(url: str, where: str, suffix: str = "") -> tuple[str, str]:
    """(media type, base64 text) of a `data:<type>;base64,<data>` URL whose payload is checked, not decoded.
    `where` + `suffix` names it in an error (joined only then)."""
    head, sep, payload = url.partition(",")
    if not sep or not head.startswith("data:") or not head.endswith(";base64"):
        raise RequestError(where + suffix, "expected a data URL `data:<media type>;base64,<data>`")
    if not valid_base64(payload):
        raise RequestError(where + suffix, "the data URL's payload is not valid base64")
    return head[5:-7], payload


_BASE64_ALPHABET = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/"


def valid_base64(text: str) -> bool:
    """Whether `text` is strict base64 (whole quanta, at most two `=` at the end): what decoding would accept,
    checked in a quarter of the time decoding takes (bytes.translate deletes the alphabet in C)."""
    try:
        raw = text.encode("ascii")
    except UnicodeEncodeError:
        return False
    unpadded = raw.rstrip(b"=")
    return len(raw) % 4 == 0 and len(raw) - len(unpadded) <= 2 and not unpadded.translate(None, _BASE64_ALPHABET)


PART_KEYS = {
    "text": {"type", "text"},
    "image_url": {"type", "image_url"},
    "file": {"type", "file"},
    "refusal": {"type", "refusal"},  # an assistant message's only (OpenAI's ChatCompletionContentPartRefusalParam)
}
# The keys each nested object of the request may hold, with the type of each: anything else would be dropped, so it
# is refused, and a value of another type (a number as a tool's name) would reach each provider differently (sent
# as is, refused by its SDK, a server error), so it is refused too.
IMAGE_KEYS = {"url": str, "detail": str}
FILE_KEYS = {"file_data": str, "file_id": str, "filename": str}
# `index` (a streamed call's position) and `parsed_arguments` (its arguments decoded) are what the openai SDK's
# `stream()` and `parse()` helpers add to the message an agent appends to its next request: derived from what the
# call already carries, they are accepted and not forwarded, like the `parsed` content of such a message.
# `extra_content` carries a Gemini thought signature on the call it belongs to (Google's OpenAI-compatible format).
CALL_KEYS = {"id": str, "type": str, "function": dict, "index": int, "extra_content": dict}
CALL_FUNCTION_KEYS = {"name": str, "arguments": str, "parsed_arguments": object}
TOOL_KEYS = {"type": str, "function": dict}
TOOL_FUNCTION_KEYS = {"name": str, "description": str, "parameters": dict, "strict": bool}
# A freeform (custom) tool, its calls and a tool_choice naming one: raw text under a format (ToolSpec.freeform).
CUSTOM_CALL_KEYS = {"id": str, "type": str, "custom": dict, "index": int}
CUSTOM_INPUT_KEYS = {"name": str, "input": str}
CUSTOM_TOOL_KEYS = {"type": str, "custom": dict}
CUSTOM_KEYS = {"name": str, "description": str, "format": dict}
GRAMMAR_KEYS = {"definition": str, "syntax": str}
CHOICE_FUNCTION_KEYS = {"name": str}
FORMAT_KEYS = {"type": str, "json_schema": dict}
SCHEMA_KEYS = {"name": str, "schema": dict, "strict": bool, "description": str}
TYPE_NAMES = {str: "a string", dict: "an object", bool: "a boolean", int: "an integer"}


def _fits(value: Any, keys: Mapping[str, type]) -> bool:
    """Whether `value` is an object holding only `keys`, each null or of its type: one pass, no set built (this
    runs several times for every tool, tool call and image). A caller that gets False asks `_bad_shape` why, so
    the path naming the object is spelled out only for a request that is refused."""
    if not isinstance(value, dict):
        return False
    for key, item in value.items():
        kind = keys.get(key)
        if kind is None or (item is not None and not isinstance(item, kind)):
            return False
    return True


def _bad_shape(value: Any, keys: Mapping[str, type], where: str) -> NoReturn:
    """The RequestError for a value `_fits` refused: not an object, its first unknown key (in sorted order), or
    its first key of the wrong type."""
    if not isinstance(value, dict):
        raise RequestError(where, "expected an object")
    unknown = value.keys() - keys.keys()
    if unknown:
        raise RequestError(f"{where}.{min(unknown)}", "not supported by this gateway")
    key = next(k for k, item in value.items() if item is not None and not isinstance(item, keys[k]))
    raise RequestError(f"{where}.{key}", f"expected {TYPE_NAMES[keys[key]]}")


def _only(value: Any, keys: Mapping[str, type], where: str) -> dict[str, Any]:
    """`value` if it is an object holding only `keys`, each null or of its type; else a RequestError naming why."""
    if not _fits(value, keys):
        _bad_shape(value, keys, where)
    return value


def _part(part: dict[str, Any], message: str, index: int, assistant: bool = False) -> Block:
    """The block for the content part `{message}.content[{index}]` (the path is spelled out only for an error)."""
    if not isinstance(part, dict):
        raise RequestError(f"{message}.content[{index}]", "expected a content part object")
    kind = part.get("type")
    keys = PART_KEYS.get(kind) if isinstance(kind, str) else None
    if keys is not None and not keys.issuperset(part):  # a part with only its own keys builds no set
        unknown = sorted(set(part) - keys)
        raise RequestError(f"{message}.content[{index}].{unknown[0]}", f"not supported on {kind} parts by this gateway")
    if kind == "text" or (kind == "refusal" and assistant):
        # A refusal part is the model's words when it refused: text for the next turn, as a message's `refusal` is.
        text = part.get(kind)
        if not isinstance(text, str):
            raise RequestError(f"{message}.content[{index}].{kind}", "required: a string")
        return TextBlock(text)
    where = f"{message}.content[{index}]"
    if kind == "image_url":
        image = part.get("image_url") or {}
        if not _fits(image, IMAGE_KEYS):
            _bad_shape(image, IMAGE_KEYS, f"{where}.image_url")
        url = image.get("url")
        if not isinstance(url, str) or not url:
            raise RequestError(f"{where}.image_url.url", "required: an http(s) URL or a base64 data URL")
        if url.startswith("data:"):
            media_type, text = data_url(url, where, ".image_url.url")
            return ImageBlock(media_type=media_type, detail=image.get("detail"), base64=text)
        return ImageBlock(url=url, detail=image.get("detail"))
    if kind == "file":
        file = _only(part.get("file") or {}, FILE_KEYS, f"{where}.file")
        if file.get("file_id"):
            return DocumentBlock(format="pdf", file_id=file["file_id"], name=file.get("filename") or None)
        if not file.get("file_data"):
            raise RequestError(f"{where}.file", "send file_data (a base64 data URL) or file_id")
        media_type, text = data_url(file["file_data"], where, ".file.file_data")
        data = binascii.a2b_base64(text)  # documents are held as bytes (most APIs take them so)
        name = file.get("filename") or ""
        fmt = DOCUMENT_FORMATS.get(media_type) or (name.rsplit(".", 1)[-1].lower() if "." in name else "pdf")
        return DocumentBlock(format=fmt, data=data, name=name or None)
    raise RequestError(
        f"{where}.type",
        f"content parts of type {kind!r} are not supported by this gateway (text, image_url and file are)",
    )


def _blocks(content: Union[str, list[dict[str, Any]], None], where: str, assistant: bool = False) -> list[Block]:
    if content is None:
        return []
    if isinstance(content, str):
        return [TextBlock(content)] if content else []
    return [_part(p, where, i, assistant) for i, p in enumerate(content)]


def json_arguments(arguments: str) -> Any:
    """A tool call's arguments as JSON: orjson first (fast), the stdlib for what orjson refuses (integers past
    64 bits, NaN); {} for text that is not JSON (the exact text is still what goes back upstream)."""
    try:
        return orjson.loads(arguments)
    except orjson.JSONDecodeError:
        try:
            return json.loads(arguments)
        except ValueError:
            return {}


def _custom_call(call: dict[str, Any], where: str) -> ToolUseBlock:
    """The block for a freeform (custom) tool call at `where`: its raw input text, as the model wrote it."""
    _only(call, CUSTOM_CALL_KEYS, where)
    custom = _only(call.get("custom"), CUSTOM_INPUT_KEYS, f"{where}.custom")
    for key in ("name", "input"):
        if custom.get(key) is None:
            raise RequestError(f"{where}.custom.{key}", "required: a string")
    return ToolUseBlock(id=str(call.get("id") or ""), name=custom["name"], arguments=custom["input"], freeform=True)


def _tool_call(call: dict[str, Any], message: str, index: int) -> ToolUseBlock:
    """The block for `{message}.tool_calls[{index}]` (the path is spelled out only for an error)."""
    if isinstance(call, dict) and call.get("type") == "custom":
        return _custom_call(call, f"{message}.tool_calls[{index}]")
    if not _fits(call, CALL_KEYS):
        _bad_shape(call, CALL_KEYS, f"{message}.tool_calls[{index}]")
    function = call.get("function") or {}
    if not _fits(function, CALL_FUNCTION_KEYS):
        _bad_shape(function, CALL_FUNCTION_KEYS, f"{message}.tool_calls[{index}].function")
    if call.get("type", "function") != "function" or not function.get("name"):
        raise RequestError(
            f"{message}.tool_calls[{index}]", 'expected {"id", "type": "function", "function": {"name", "arguments"}}'
        )
    arguments = function.get("arguments")
    if arguments is None:
        arguments = ""
    if not isinstance(arguments, str):
        raise RequestError(
            f"{message}.tool_calls[{index}].function.arguments", "expected a string (the arguments as JSON text)"
        )
    parsed = json_arguments(arguments) if arguments else {}
    return ToolUseBlock(
        id=str(call.get("id") or ""),
        name=function["name"],
        input=parsed if isinstance(parsed, dict) else {"value": parsed},
        arguments=arguments,
    )


# Keys of an assistant message beyond ChatMessage's fields: what OpenAI's API takes (and the SDK sends back when
# a caller appends `reply.choices[0].message` as-is, `parsed` after its parse() helper), plus the gateway's own
# `reasoning_content` and `thinking_blocks` (signed reasoning, LiteLLM's convention: providers.openai_reasoning).
ASSISTANT_KEYS = {"refusal", "audio", "function_call", "annotations", "reasoning_content", "thinking_blocks", "parsed"}


def _call_signature(call: dict[str, Any], where: str) -> str | None:
    """The thought signature `extra_content` carries on the tool call at `where`, or None; a RequestError for an
    `extra_content` holding anything else (it would not reach the model)."""
    extra = call.get("extra_content")
    if extra is None:
        return None
    signature = call_signature(extra)
    if signature is None or set(extra) != {"google"} or set(extra["google"]) != {"thought_signature"}:
        raise RequestError(
            f"{where}.extra_content", 'only {"google": {"thought_signature": "..."}} is carried; remove the rest'
        )
    return signature


def _thinking_blocks(value: Any, reasoning: Any, where: str) -> list[ReasoningBlock]:
    """`thinking_blocks` as reasoning blocks. The `reasoning_content` sent beside them (the SDK echoes both) must
    be their text: it is not carried a second time."""
    if not isinstance(value, list):
        raise RequestError(f"{where}.thinking_blocks", "expected a list of thinking blocks")
    blocks: list[ReasoningBlock] = []
    for k, item in enumerate(value):
        try:
            blocks.append(thinking_block(item))
        except ValueError as exc:
            raise RequestError(f"{where}.thinking_blocks[{k}]", str(exc)) from None
    if reasoning and reasoning != "".join(b.text for b in blocks):
        raise RequestError(
            f"{where}.reasoning_content", "differs from the text of thinking_blocks; send it unchanged or remove it"
        )
    return blocks


def _assistant_extras(extra: dict[str, Any], where: str) -> tuple[list[Block], list[Block]]:
    """(blocks before the content, blocks after it) for the extra keys of an assistant message."""
    unknown = sorted(set(extra) - ASSISTANT_KEYS)
    if unknown:
        raise RequestError(f"{where}.{unknown[0]}", "this message field is not supported by this gateway")
    before: list[Block] = []
    after: list[Block] = []
    for key in ("audio", "function_call"):  # null is what the SDK echoes; a value cannot be carried
        if extra.get(key) is not None:
            raise RequestError(
                f"{where}.{key}",
                "not supported by this gateway (send null; use tool_calls for function calls)",
            )
    reasoning = extra.get("reasoning_content")
    if reasoning is not None and not isinstance(reasoning, str):
        raise RequestError(f"{where}.reasoning_content", "expected a string")
    if extra.get("thinking_blocks") is not None:  # signed: carried as they came, with their signatures
        before += _thinking_blocks(extra["thinking_blocks"], reasoning, where)
    elif reasoning:
        before.append(ReasoningBlock(reasoning))  # unsigned: each provider mapping decides how to carry it
    refusal = extra.get("refusal")
    if refusal is not None and not isinstance(refusal, str):
        raise RequestError(f"{where}.refusal", "expected a string")
    if refusal:
        after.append(TextBlock(refusal))  # the model's words when it refused: the next turn needs them as text
    annotations = extra.get("annotations")
    if annotations is not None and not isinstance(annotations, list):
        raise RequestError(f"{where}.annotations", "expected a list")
    # Annotations (url citations) describe spans of the content, which is carried; the model does not read them.
    return before, after


@dataclass(slots=True)
class Origin:
    """Where one turn of the content model came from in the caller's `messages` (recorded by `to_messages`)."""

    message: str  # the caller's message: "messages[3]" (a run of tool messages: the first of them)
    blocks: list[str] = field(default_factory=list)  # each block's path, in the turn's order
    parts: dict[int, list[str]] = field(default_factory=dict)  # a tool result block's index -> its parts' paths


def _paths(content: Union[str, list[dict[str, Any]], None], where: str) -> list[str]:
    """The caller's path of each block `_blocks` makes of `content` (a string is one block: the content itself)."""
    if isinstance(content, list):
        return [f"{where}.content[{i}]" for i in range(len(content))]
    return [f"{where}.content"] if content else []


def _cache_control(value: Any, where: str) -> CachePoint:
    """A message's `cache_control`, as OpenAI-compatible clients mark Claude's cache points (OpenCode marks its system
    prompt and last messages so, for the gateways that take it): a cache point at the end of that message."""
    if (
        not isinstance(value, dict)
        or value.get("type") != "ephemeral"
        or set(value) - {"type", "ttl"}
        or value.get("ttl") not in (None, "5m", "1h")
    ):
        raise RequestError(f"{where}.cache_control", 'expected {"type": "ephemeral"}, with "ttl": "5m" or "1h" if any')
    return ONE_HOUR if value.get("ttl") == "1h" else True


def system_cache_point(body: ChatCompletionRequest) -> CachePoint:
    """The cache point at the end of the system prompt: the last opening system or developer message's
    `cache_control` (the system prompt is those messages joined)."""
    point: CachePoint = False
    for i, m in enumerate(body.messages):
        if m.role not in ("system", "developer"):
            break
        marked = (m.model_extra or {}).get("cache_control")
        if marked is not None:
            point = _cache_control(marked, f"messages[{i}]")
    return point


def to_messages(body: ChatCompletionRequest, origins: list[Origin] | None = None) -> tuple[str | None, list[Message]]:
    """System prompt (the system and developer messages before the first turn) and the turns; a run of `tool`
    messages is one user turn, and a system or developer message after the first turn stays in its place.

    With `origins`, also records where each turn and block came from, as it appends them: only a refusal asks for
    it (`caller_path`), so the requests that pass do not pay for it, and the grouping is this one."""
    system: list[str] = []
    turns: list[Message] = []
    for i, m in enumerate(body.messages):
        where = f"messages[{i}]"
        extra = m.model_extra or {}
        point: CachePoint = False
        if "cache_control" in extra:  # a cache point after this message (the opening system ones: system_cache_point)
            extra = dict(extra)
            point = _cache_control(extra.pop("cache_control"), where)
        if extra and m.role != "assistant":
            key = next(iter(extra))
            raise RequestError(f"{where}.{key}", "this message field is not supported by this gateway")
        if m.role == "function":
            raise RequestError(f"{where}.role", "the deprecated `function` role is not supported; send `tool` messages")
        if m.role in ("system", "developer"):
            if m.name:
                raise RequestError(f"{where}.name", "names on system messages are not carried; remove it")
            blocks = _blocks(m.content, where)
            if any(not isinstance(b, TextBlock) for b in blocks):
                raise RequestError(f"{where}.content", "a system message takes text parts only")
            text = "".join(b.text for b in blocks if isinstance(b, TextBlock))
            if turns:  # mid-conversation: in place for upstreams that take it there (ChatRequest.system_hoisted)
                turns.append(Message("system", [TextBlock(text)]))
                if origins is not None:
                    origins.append(Origin(where, [f"{where}.content"]))
            else:
                system.append(text)
        elif m.role == "tool":
            if not m.tool_call_id:
                raise RequestError(f"{where}.tool_call_id", "required on a tool message")
            if m.name:  # no provider's tool result has a name: it would be lost
                raise RequestError(f"{where}.name", "a tool message takes no name (tool_call_id names its call)")
            result = ToolResultBlock(m.tool_call_id, _blocks(m.content, where))
            last = turns[-1] if turns else None
            if last is not None and last.role == "user" and all(isinstance(b, ToolResultBlock) for b in last.content):
                last.content.append(result)
            else:
                turns.append(Message("user", [result]))
                if origins is not None:
                    origins.append(Origin(where))
            if origins is not None:  # the result block is the tool message; its parts are the message's content
                origins[-1].parts[len(origins[-1].blocks)] = _paths(m.content, where)
                origins[-1].blocks.append(where)
        elif m.role == "assistant":
            before, after = _assistant_extras(extra, where) if extra else ([], [])
            blocks = before + _blocks(m.content, where, assistant=True) + after
            calls: list[str] = []  # each call block's path (a thought signature's block comes right before it)
            for j, c in enumerate(m.tool_calls or []):
                block = _tool_call(c, where, j)
                signature = _call_signature(c, f"{where}.tool_calls[{j}]")
                if signature is not None:
                    blocks.append(ReasoningBlock("", signature))
                    calls.append(f"{where}.tool_calls[{j}].extra_content")
                blocks.append(block)
                calls.append(f"{where}.tool_calls[{j}]")
            turns.append(Message("assistant", blocks, name=m.name))
            if origins is not None:  # in the order of `blocks`: reasoning, content, refusal, tool calls
                if extra.get("thinking_blocks") is not None:
                    paths = [f"{where}.thinking_blocks[{k}]" for k in range(len(before))]
                else:
                    paths = [f"{where}.reasoning_content"] * len(before)
                paths += _paths(m.content, where)
                paths += [f"{where}.refusal"] * len(after)
                origins.append(Origin(where, paths + calls))
        else:
            if m.tool_calls or m.tool_call_id:
                raise RequestError(f"{where}", "tool_calls / tool_call_id belong on assistant / tool messages")
            turns.append(Message("user", _blocks(m.content, where), name=m.name))
            if origins is not None:
                origins.append(Origin(where, _paths(m.content, where)))
        if point and turns:  # the turn this message made or joined (an opening system message makes none)
            turns[-1].cache_point = point
    if not turns:
        raise ValueError("messages: at least one user message is required")
    return "\n\n".join(system) or None, turns


# ChatRequest slots a provider names when it refuses one, by the field the caller sent.
CALLER_FIELDS = {"reasoning.budget_tokens": "thinking.budget_tokens"}


def caller_path(body: ChatCompletionRequest, refused: Unsupported) -> str:
    """Where the caller sent what a provider refused, in OpenAI's terms (error.param): `messages[3].content[1]`,
    `messages[4].content` (a string), `messages[5].tool_calls[0]`, `messages[2].name`, or a top-level field.
    The refusal's indices are the content model's; this walks the request again with the same grouping."""
    if refused.message is None:  # a top-level field: pass-through keys and options go by the caller's names
        return CALLER_FIELDS.get(refused.where, refused.where)
    origins: list[Origin] = []
    to_messages(body, origins)
    origin = origins[refused.message]
    if refused.block is None:
        return f"{origin.message}.{refused.field}" if refused.field else origin.message
    if refused.part is not None:
        return origin.parts[refused.block][refused.part]
    return origin.blocks[refused.block]


CONTENT_PATH = re.compile(r"messages\[(\d+)\](?:\.content\[(\d+)\](?:\.content\[(\d+)\])?)?")


def caller_param(body: ChatCompletionRequest, param: str) -> str:
    """A provider mapping names a field it cannot send by its place in the content model
    (`messages[2].content[1].detail`); this is the same place in the caller's request (`messages[4].content[1]
    .detail` when two system messages came first). A path outside `messages` is the caller's already."""
    found = CONTENT_PATH.match(param)
    if found is None:
        return CALLER_FIELDS.get(param, param)
    message, block, part = (None if index is None else int(index) for index in found.groups())
    try:
        where = caller_path(body, Unsupported("", message, block, part))
    except (IndexError, KeyError):  # not a place of this request's content model: left as the mapping named it
        return param
    return where + param[found.end() :]


# -- options ---------------------------------------------------------------------------------------
def _custom_format(value: Any, where: str) -> dict[str, Any]:
    """A custom tool's `format` as ToolSpec.freeform has it (the grammar's keys beside its type)."""
    if value is None:
        return {"type": "text"}  # OpenAI's default: unconstrained text
    kind = value.get("type") if isinstance(value, dict) else None
    if kind == "text":
        _only(value, {"type": str}, where)
        return {"type": "text"}
    if kind != "grammar":
        raise RequestError(f"{where}.type", 'expected "text" or "grammar"')
    _only(value, {"type": str, "grammar": dict}, where)
    grammar = _only(value.get("grammar"), GRAMMAR_KEYS, f"{where}.grammar")
    if grammar.get("syntax") not in ("lark", "regex"):
        raise RequestError(f"{where}.grammar.syntax", "expected lark or regex")
    if grammar.get("definition") is None:
        raise RequestError(f"{where}.grammar.definition", "required: the grammar as a string")
    return {"type": "grammar", "syntax": grammar["syntax"], "definition": grammar["definition"]}


def _custom_tool(tool: dict[str, Any], where: str) -> ToolSpec:
    """A freeform (custom) tool: the model answers its calls with raw text (only OpenAI-format models take one)."""
    _only(tool, CUSTOM_TOOL_KEYS, where)
    custom = _only(tool.get("custom"), CUSTOM_KEYS, f"{where}.custom")
    if not custom.get("name"):
        raise RequestError(f"{where}.custom.name", "required: a string")
    freeform = _custom_format(custom.get("format"), f"{where}.custom.format")
    return ToolSpec(custom["name"], custom.get("description"), freeform=freeform)


def _tools(body: ChatCompletionRequest) -> list[ToolSpec]:
    tools = []
    for i, tool in enumerate(body.tools or []):
        if isinstance(tool, dict) and tool.get("type") == "custom":
            tools.append(_custom_tool(tool, f"tools[{i}]"))
            continue
        function = tool.get("function") if isinstance(tool, dict) else None
        if isinstance(function, dict) and tool.get("type") == "function":
            if not _fits(tool, TOOL_KEYS):
                _bad_shape(tool, TOOL_KEYS, f"tools[{i}]")
            if not _fits(function, TOOL_FUNCTION_KEYS):
                _bad_shape(function, TOOL_FUNCTION_KEYS, f"tools[{i}].function")
        if not isinstance(function, dict) or tool.get("type") != "function" or not function.get("name"):
            raise RequestError(
                f"tools[{i}]",
                'only function tools ({"type": "function", "function": {"name", '
                '"parameters"}}) and custom tools ({"type": "custom", "custom": {"name", "format"}}) are supported by '
                "this gateway",
            )
        tools.append(
            ToolSpec(
                function["name"],
                function.get("description"),
                function.get("parameters") or {"type": "object", "properties": {}},
                function.get("strict"),
            )
        )
    return tools


def _tool_choice(value: Union[str, dict[str, Any], None]) -> ToolChoice | None:
    if value is None:
        return None
    if isinstance(value, str):
        modes = {"auto": "auto", "none": "none", "required": "any"}
        if value not in modes:
            raise RequestError("tool_choice", f"{value!r} is not auto, none, required or a named function")
        return ToolChoice(modes[value])  # type: ignore[arg-type]
    kind = value.get("type")
    if kind in ("function", "custom"):  # a named function tool, or a named custom (freeform) one
        _only(value, {"type": str, kind: dict}, "tool_choice")
        _only(value.get(kind) or {}, CHOICE_FUNCTION_KEYS, f"tool_choice.{kind}")
    name = (value.get(kind) or {}).get("name") if kind in ("function", "custom") else None
    if not name:
        raise RequestError(
            "tool_choice",
            'send auto, none, required, {"type": "function", "function": {"name": ...}} or {"type": "custom", '
            '"custom": {"name": ...}} (allowed_tools is not supported)',
        )
    return ToolChoice("tool", name)


def _response_format(value: dict[str, Any] | None) -> ResponseFormat | None:
    if value is None:
        return None
    kind = _only(value, FORMAT_KEYS, "response_format").get("type")
    if kind in ("text", "json_object"):
        return ResponseFormat(kind)
    if kind == "json_schema":
        spec = value.get("json_schema") or {}
        if not isinstance(spec, dict) or not isinstance(spec.get("schema") or {}, dict):
            raise RequestError("response_format.json_schema", 'send an object {"name": ..., "schema": {...}}')
        _only(spec, SCHEMA_KEYS, "response_format.json_schema")
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


def _user(body: ChatCompletionRequest) -> str | None:
    """The end-user id (`user`), which each provider carries in its own field (ChatRequest.user)."""
    user = (body.model_extra or {}).get("user")
    if user is not None and not isinstance(user, str):
        raise RequestError("user", "expected a string (an id for your end user)")
    return user


def _cache_key(body: ChatCompletionRequest) -> str | None:
    """`prompt_cache_key`, which every provider honours in its own way (ChatRequest.prompt_cache_key)."""
    key = (body.model_extra or {}).get("prompt_cache_key")
    if key is not None and not isinstance(key, str):
        raise RequestError("prompt_cache_key", "expected a string")
    return key


def _extra(body: ChatCompletionRequest) -> dict[str, Any]:
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


def to_chat_request(body: ChatCompletionRequest, headers, key, route: RouteConfig) -> ChatRequest:
    """Map the OpenAI request (opening system/developer messages become the system prompt) to a ChatRequest."""
    system, turns = to_messages(body)
    stop = [body.stop] if isinstance(body.stop, str) else list(body.stop or [])
    caps = [c for c in (body.max_completion_tokens, body.max_tokens) if c is not None]
    meta = RequestMeta(
        task=headers.get("x-tokenomy-task") or route.task,
        tags=parse_tags(headers.get("x-tokenomy-tags")),
        tenant=key.team if key else None,
        key_id=key.key_id if key else None,
        route=body.model,
    )
    return ChatRequest(
        messages=turns,
        model=route.model or body.model,
        system=system,
        system_cache_point=system_cache_point(body),
        max_tokens=min(c for c in caps) if caps else None,
        max_tokens_name="max_completion_tokens" if body.max_completion_tokens is not None else "max_tokens",
        temperature=body.temperature,
        top_p=body.top_p,
        top_k=body.top_k,
        stop=stop,
        seed=body.seed,
        presence_penalty=body.presence_penalty,
        frequency_penalty=body.frequency_penalty,
        tools=_tools(body),
        tool_choice=_tool_choice(body.tool_choice),
        parallel_tool_calls=body.parallel_tool_calls,
        response_format=_response_format(body.response_format),
        reasoning=reasoning_from(body.thinking, body.reasoning_effort, "reasoning_effort"),
        user=_user(body),
        prompt_cache_key=_cache_key(body),
        extra=_extra(body),
        meta=meta,
    )
