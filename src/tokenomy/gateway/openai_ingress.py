"""OpenAI's chat-completions request, mapped onto a provider-neutral ChatRequest.

Every field of OpenAI's request is either mapped onto a ChatRequest slot (messages with all their parts, tools,
tool_choice, response_format, sampling, reasoning_effort) or carried as-is in `ChatRequest.extra` (logprobs, n,
user, metadata, service_tier, ... and any field of an OpenAI-compatible server); a provider that cannot send one
refuses the request naming it (`Provider.refusal`, translated to the caller's place by `caller_path`). Nothing is
dropped: a part or key this mapping does not know is a 400.
"""

from __future__ import annotations

import binascii
import functools
import json
import re
from dataclasses import dataclass, field, replace
from typing import Any, Union

import orjson

from tokenomy.config import RouteConfig
from tokenomy.gateway.hygiene import exact_loads
from tokenomy.gateway.openai_assistant import (
    assistant_extras,
    litellm_copy,
    openai_fields,
    tool_call_signature,
)
from tokenomy.gateway.openai_images import data_url, image_block, valid_base64
from tokenomy.gateway.openai_options import (
    cache_key_of,
    extra_of,
    read_tools,
    reasoning_from,
    response_format_of,
    tool_choice_of,
    user_of,
)
from tokenomy.gateway.openai_shapes import (
    AT_THE_END,
    AUDIO_KEYS,
    CALL_FUNCTION_KEYS,
    CALL_KEYS,
    CUSTOM_CALL_KEYS,
    CUSTOM_INPUT_KEYS,
    FILE_KEYS,
    RequestError,
    bad_shape,
    cache_control_point,
    fits,
    only,
)
from tokenomy.gateway.schemas import ChatCompletionRequest
from tokenomy.messages import (
    GEMINI_SIGNED,
    Block,
    CachePoint,
    ChatRequest,
    DocumentBlock,
    Message,
    ProviderBlock,
    ReasoningBlock,
    RequestMeta,
    TextBlock,
    ToolResultBlock,
    ToolUseBlock,
)
from tokenomy.providers import json_text
from tokenomy.providers.openai_wire import DOCUMENT_MEDIA_TYPES
from tokenomy.providers.reasoning_signers import unsealed_block
from tokenomy.providers.refusals import FILE_ID, Unsupported
from tokenomy.routing.router import routing_tag_refusal

# A file part's media type -> the document's format: every type the mappings send (an office file among them, which
# was taken for a PDF when it came without a file name and went upstream labelled application/pdf).
DOCUMENT_FORMATS = {media_type: fmt for fmt, media_type in DOCUMENT_MEDIA_TYPES.items()}


def parse_tags(header: str | None) -> dict[str, str]:
    """`x-tokenomy-tags`: JSON object or `k=v,k2=v2` (none named as a tag routing writes)."""
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
        tags = {str(k): str(v) for k, v in data.items()}
    else:
        tags = {}
        for pair in header.split(","):
            if pair.strip():
                key, sep, value = pair.partition("=")
                if not sep or not key.strip():
                    raise ValueError(f"x-tokenomy-tags: {pair.strip()!r} is not k=v")
                tags[key.strip()] = value.strip()
    refused = routing_tag_refusal(tags)
    if refused is not None:
        raise ValueError(f"x-tokenomy-tags: {refused}")
    return tags


# -- messages --------------------------------------------------------------------------------------
# `cache_control` ({"type": "ephemeral"}, optionally a "ttl"), LiteLLM's convention for Anthropic's cache points in
# OpenAI's format, marks a cache point at the end of the message the part ends (`_message_cache_point`).
PART_KEYS = {
    "text": {"type", "text", "cache_control"},
    "image_url": {"type", "image_url", "cache_control"},
    "file": {"type", "file", "cache_control"},
    "input_audio": {"type", "input_audio", "cache_control"},
    "refusal": {"type", "refusal"},  # an assistant message's only (OpenAI's ChatCompletionContentPartRefusalParam)
}


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
    if kind == "image_url":
        return image_block(part, message, index)
    where = f"{message}.content[{index}]"
    if kind == "file":
        file = only(part.get("file") or {}, FILE_KEYS, f"{where}.file")
        if file.get("file_id"):  # an id of OpenAI's Files API (Azure's on its paths: `issued_by_azure`)
            return DocumentBlock(format="pdf", file_id=file["file_id"], name=file.get("filename") or None,
                                 file_api="openai")  # fmt: skip
        if not file.get("file_data"):
            raise RequestError(f"{where}.file", "send file_data (a base64 data URL) or file_id")
        media_type, text = data_url(file["file_data"], where, ".file.file_data")
        data = binascii.a2b_base64(text)  # documents are held as bytes (most APIs take them so)
        name = file.get("filename") or ""
        fmt = DOCUMENT_FORMATS.get(media_type) or (name.rsplit(".", 1)[-1].lower() if "." in name else "pdf")
        return DocumentBlock(format=fmt, data=data, name=name or None)
    if kind == "input_audio":
        return _audio_block(part, where)
    raise RequestError(
        f"{where}.type",
        f"content parts of type {kind!r} are not supported by this gateway (text, image_url, file and input_audio are)",
    )


def _audio_block(part: dict[str, Any], where: str) -> ProviderBlock:
    """An `input_audio` part as Gemini's own audio part (gemini_fields.media_block's): the content model has no audio
    block, so Gemini models take it, an OpenAI-format model gets it back as `input_audio` (openai_wire.input_audio),
    and every other provider refuses it by its place."""
    audio = only(part.get("input_audio") or {}, AUDIO_KEYS, f"{where}.input_audio")
    if audio.get("format") not in ("wav", "mp3"):
        raise RequestError(f"{where}.input_audio.format", "required: 'wav' or 'mp3'")
    data = audio.get("data")
    if not data or not valid_base64(data):
        raise RequestError(f"{where}.input_audio.data", "required: the audio's bytes in base64")
    return ProviderBlock(
        "gemini", {"type": "audio", "inline_data": {"mime_type": f"audio/{audio['format']}", "data": data}}
    )


def _blocks(content: Union[str, list[dict[str, Any]], None], where: str, assistant: bool = False) -> list[Block]:
    if content is None:
        return []
    if isinstance(content, str):
        return [TextBlock(content)] if content else []
    return [_part(p, where, i, assistant) for i, p in enumerate(content)]


def json_arguments(arguments: str) -> Any:
    """A tool call's arguments as JSON: orjson first (fast; integers past 64 bits kept exact, `hygiene.exact_loads`),
    the stdlib for what orjson refuses; `{"INVALID_JSON": text}` for text that is not JSON (a model's call cut off
    mid-argument, sent back with the conversation), so an API whose tool input is an object gets the text too, as
    the model's answers give it (`json_text.call_input`); an OpenAI-format upstream gets the exact text. NaN,
    Infinity and numbers past a double (1e400) are not JSON either: read as floats they reached a provider's SDK,
    whose encoder refused them, a 500."""
    try:
        return exact_loads(arguments)
    except (orjson.JSONDecodeError, RecursionError):
        try:
            return json_text.loads(arguments)
        except ValueError:
            return {json_text.INVALID_JSON: arguments}


def _custom_call(call: dict[str, Any], where: str) -> ToolUseBlock:
    """The block for a freeform (custom) tool call at `where`: its raw input text, as the model wrote it."""
    only(call, CUSTOM_CALL_KEYS, where)
    custom = only(call.get("custom"), CUSTOM_INPUT_KEYS, f"{where}.custom")
    for key in ("name", "input"):
        if custom.get(key) is None:
            raise RequestError(f"{where}.custom.{key}", "required: a string")
    return ToolUseBlock(id=str(call.get("id") or ""), name=custom["name"], arguments=custom["input"], freeform=True)


# A tool call as the openai SDK sends it back, its keys and its function's: read by `_tool_call` without a look at
# each key in turn (most agents' calls come so, every call of the conversation with every request).
_USUAL_CALL = {"id", "type", "function"}
_USUAL_FUNCTION = {"name", "arguments"}


def _tool_call(call: dict[str, Any], message: str, index: int) -> ToolUseBlock:
    """The block for `{message}.tool_calls[{index}]` (the path is spelled out only for an error)."""
    function = call.get("function") if type(call) is dict else None
    if (
        type(function) is dict
        and call.keys() == _USUAL_CALL
        and function.keys() == _USUAL_FUNCTION
        and call["type"] == "function"
        and type(call["id"]) is str
        and type(function["name"]) is str
        and function["name"]
        and type(function["arguments"]) is str
    ):
        arguments = function["arguments"]
        parsed = json_arguments(arguments) if arguments else {}
        return ToolUseBlock(
            call["id"], function["name"], parsed if isinstance(parsed, dict) else {"value": parsed}, arguments
        )
    if isinstance(call, dict) and call.get("type") == "custom":
        return _custom_call(call, f"{message}.tool_calls[{index}]")
    if not fits(call, CALL_KEYS):
        bad_shape(call, CALL_KEYS, f"{message}.tool_calls[{index}]")
    function = call.get("function") or {}
    if not fits(function, CALL_FUNCTION_KEYS):
        bad_shape(function, CALL_FUNCTION_KEYS, f"{message}.tool_calls[{index}].function")
    if call.get("type", "function") != "function" or not function.get("name"):
        raise RequestError(
            f"{message}.tool_calls[{index}]", 'expected {"id", "type": "function", "function": {"name", "arguments"}}'
        )
    arguments = function.get("arguments") or ""  # (`fits` found the id and arguments strings or null)
    parsed = json_arguments(arguments) if arguments else {}
    return ToolUseBlock(
        call.get("id") or "", function["name"], parsed if isinstance(parsed, dict) else {"value": parsed}, arguments
    )


def _message_cache_point(extra: dict[str, Any] | None, content: Any, where: str) -> CachePoint:
    """The cache point a message (at `where`; its extra fields and content, read once by the caller) asks for, on
    itself or on its last content part (False for none). One on an earlier part is refused, not moved: the cache
    would end later than the caller asked."""
    if not extra and type(content) is not list:  # most messages: no extra fields, no parts
        return False
    point: CachePoint = False
    control = extra.get("cache_control") if extra else None
    if control is not None:
        point = cache_control_point(control, f"{where}.cache_control")
    if type(content) is list:
        last = len(content) - 1
        for i, part in enumerate(content):
            if isinstance(part, dict) and part.get("cache_control") is not None:
                at = f"{where}.content[{i}].cache_control"
                if i < last:
                    raise RequestError(at, AT_THE_END.format("part"))
                found = cache_control_point(part["cache_control"], at)
                if point and found != point:
                    raise RequestError(at, "differs from the message's own cache_control; send one of them")
                point = found
    return point


def _system_cache(body: ChatCompletionRequest) -> tuple[CachePoint, tuple[tuple[int, int, CachePoint], ...]]:
    """(system_cache_point, system_breaks) of the opening system and developer messages, which `to_messages` joins
    into one system prompt with a blank line between them: the last one's point ends the prompt, an earlier one's
    is a break at the end of its text, the next message's text beginning after the blank line (which the upstream's
    system blocks leave out: each is a message's text as sent)."""
    opening: list[tuple[int, CachePoint]] = []  # each opening message's text length and point
    for i, m in enumerate(body.messages):
        if m.role not in ("system", "developer"):
            break
        content = m.content
        size = len(content) if isinstance(content, str) else sum(len(p.get("text") or "") for p in content or [])
        opening.append((size, _message_cache_point(m.__pydantic_extra__, content, f"messages[{i}]")))
    if not opening or not any(point for _, point in opening):
        return False, ()
    breaks: list[tuple[int, int, CachePoint]] = []
    end = -2  # where the text so far ends (before the first message: nothing, and no separator)
    for size, point in opening[:-1]:
        end += 2 + size
        if point:
            breaks.append((end, end + 2, point))
    return opening[-1][1], tuple(breaks)


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


@functools.lru_cache(maxsize=1024)
def message_path(index: int) -> str:
    """`messages[index]`, the place of a message in errors and refusals (built once: an f-string for every message
    of every request cost more than the rest of reading a short one)."""
    return f"messages[{index}]"


def to_messages(body: ChatCompletionRequest, origins: list[Origin] | None = None) -> tuple[str | None, list[Message]]:
    """System prompt (the system and developer messages before the first turn) and the turns; a run of `tool`
    messages is one user turn, and a system or developer message after the first turn stays in its place.

    With `origins`, also records where each turn and block came from, as it appends them: only a refusal asks for
    it (`caller_path`), so the requests that pass do not pay for it, and the grouping is this one."""
    system: list[str] = []
    turns: list[Message] = []
    cached_tool = ""  # the tool message whose cache point the last turn ends with
    for i, m in enumerate(body.messages):
        where = message_path(i)
        own = m.__pydantic_extra__  # (its slot: `model_extra` is a property, a call for every message)
        extra = own or {}
        # Each read once: a pydantic model's attribute costs ~400 instructions (its class's __getattr__ keeps Python
        # from specialising the lookup), and the role was read up to four times a message, its content twice.
        role, content = m.role, m.content
        if extra and role != "assistant":
            key = next((k for k in extra if k != "cache_control"), None)
            if key is not None:
                raise RequestError(f"{where}.{key}", "this message field is not supported by this gateway")
        if role in ("system", "developer"):
            if m.name:
                raise RequestError(f"{where}.name", "names on system messages are not carried; remove it")
            blocks = _blocks(content, where)
            if any(not isinstance(b, TextBlock) for b in blocks):
                raise RequestError(f"{where}.content", "a system message takes text parts only")
            text = "".join(b.text for b in blocks if isinstance(b, TextBlock))
            if turns:  # mid-conversation: in place for upstreams that take it there (request_views.system_hoisted)
                # merged into the one system prompt where an API takes one
                if _message_cache_point(own, content, where):
                    raise RequestError(
                        f"{where}.cache_control",
                        "a system message after the first turn joins the system prompt on Claude, Bedrock and "
                        "Gemini, where its cache point has no place; mark the message before it instead",
                    )
                turns.append(Message("system", [TextBlock(text)]))
                if origins is not None:
                    origins.append(Origin(where, [f"{where}.content"]))
            else:
                system.append(text)
        elif role == "tool":
            if not m.tool_call_id:
                raise RequestError(f"{where}.tool_call_id", "required on a tool message")
            if m.name:  # no provider's tool result has a name: it would be lost
                raise RequestError(f"{where}.name", "a tool message takes no name (tool_call_id names its call)")
            result = ToolResultBlock(m.tool_call_id, _blocks(content, where))
            last = turns[-1] if turns else None
            if last is not None and last.role == "user" and all(isinstance(b, ToolResultBlock) for b in last.content):
                if last.cache_point:  # a run of tool messages is one turn: its cache point is the run's end
                    raise RequestError(f"{cached_tool}.cache_control", AT_THE_END.format("tool message of the run"))
                last.content.append(result)
            else:
                turns.append(Message("user", [result]))
                if origins is not None:
                    origins.append(Origin(where))
            turns[-1].cache_point = _message_cache_point(own, content, where)
            cached_tool = where
            if origins is not None:  # the result block is the tool message; its parts are the message's content
                origins[-1].parts[len(origins[-1].blocks)] = _paths(content, where)
                origins[-1].blocks.append(where)
        elif role == "assistant":
            if "provider_specific_fields" in extra:
                extra = litellm_copy(extra, where)
            before, after = assistant_extras(extra, where) if extra else ([], [])
            blocks = before + _blocks(content, where, assistant=True) + after
            calls: list[str] = []  # with `origins`: each call block's path (a signature's block comes before it)
            for j, c in enumerate(m.tool_calls or []):
                block = _tool_call(c, where, j)
                if c.get("extra_content") is not None:  # (`_tool_call` found `c` an object)
                    signed = ReasoningBlock("", tool_call_signature(c, f"{where}.tool_calls[{j}]"))
                    blocks.append(unsealed_block(signed, GEMINI_SIGNED))  # Google's field: Gemini's, unless sealed
                    if origins is not None:
                        calls.append(f"{where}.tool_calls[{j}].extra_content")
                blocks.append(block)
                if origins is not None:
                    calls.append(f"{where}.tool_calls[{j}]")
            fields = openai_fields(extra, where) if extra else None
            turns.append(Message("assistant", blocks, _message_cache_point(own, content, where), m.name, fields))
            if origins is not None:  # in the order of `blocks`: reasoning, content, refusal, tool calls
                if extra.get("thinking_blocks") is not None:
                    paths = [f"{where}.thinking_blocks[{k}]" for k in range(len(before))]
                else:
                    paths = [f"{where}.reasoning_content"] * len(before)
                paths += _paths(content, where)
                paths += [f"{where}.refusal"] * len(after)
                origins.append(Origin(where, paths + calls))
        else:
            if role == "function":
                raise RequestError(
                    f"{where}.role", "the deprecated `function` role is not supported; send `tool` messages"
                )
            if m.tool_calls or m.tool_call_id:
                raise RequestError(f"{where}", "tool_calls / tool_call_id belong on assistant / tool messages")
            turns.append(
                Message("user", _blocks(content, where), _message_cache_point(own, content, where), name=m.name)
            )
            if origins is not None:
                origins.append(Origin(where, _paths(content, where)))
    if not turns:
        raise ValueError("messages: at least one user message is required")
    return "\n\n".join(system) or None, turns


# ChatRequest slots a provider names when it refuses one, by the field the caller sent.
CALLER_FIELDS = {"reasoning.budget_tokens": "thinking.budget_tokens"}
# A block's field a provider names when it refuses one, by the field of the content part the caller sent.
PART_FIELDS = {FILE_ID: "file.file_id", "detail": "image_url.detail"}  # detail: inside the part's image_url


def part_field(path: str, field: str | None, fields: dict[str, str]) -> str:
    """`path` (a content part's, as its caller sent it) with the part's own field that `field` (a provider's name for
    a block's field) is, as `fields` maps them; `path` alone for a field the caller's part has no name for."""
    return f"{path}.{fields[field]}" if field in fields else path


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
        return part_field(origin.parts[refused.block][refused.part], refused.field, PART_FIELDS)
    return part_field(origin.blocks[refused.block], refused.field, PART_FIELDS)


def issued_by_azure(call: ChatRequest) -> None:
    """The file ids of a request sent on Azure OpenAI's paths (`path_aliases`) as ids of Azure's Files API, which is
    its own: they are read as OpenAI's ids on /v1."""
    for message in call.messages:
        message.content = [_azure_file(block) for block in message.content]


def _azure_file(block: Block) -> Block:
    if isinstance(block, ToolResultBlock) and any(isinstance(part, DocumentBlock) for part in block.content):
        return replace(block, content=[_azure_file(part) for part in block.content])
    if isinstance(block, DocumentBlock) and block.file_api == "openai":
        return replace(block, file_api="azure")
    return block


CONTENT_PATH = re.compile(r"messages\[(\d+)\](?:\.content\[(\d+)\](?:\.content\[(\d+)\])?)?")


def caller_param(body: ChatCompletionRequest, param: str) -> str:
    """A provider mapping names a field it cannot send by its place in the content model
    (`messages[2].content[1].detail`); this is the same place in the caller's request (`messages[4].content[1]
    .detail` when two system messages came first). A path outside `messages` is the caller's already."""
    found = CONTENT_PATH.match(param)
    if found is None:
        return CALLER_FIELDS.get(param, param)
    message, block, part = (None if index is None else int(index) for index in found.groups())
    rest = param[found.end() :]
    own = rest[1:] if rest[1:] in PART_FIELDS else None  # a block's field the caller's part names its own way
    try:
        where = caller_path(body, Unsupported("", message, block, part, own))
    except (IndexError, KeyError):  # not a place of this request's content model: left as the mapping named it
        return param
    return where if own is not None else where + rest


def to_chat_request(body: ChatCompletionRequest, headers, key, route: RouteConfig) -> ChatRequest:
    """Map the OpenAI request (opening system/developer messages become the system prompt) to a ChatRequest."""
    system, turns = to_messages(body)
    system_cache_point, system_breaks = _system_cache(body) if system else (False, ())
    tools, tools_point = read_tools(body)
    stop = [body.stop] if isinstance(body.stop, str) else list(body.stop or [])
    cap, other = body.max_completion_tokens, body.max_tokens
    if cap is None or (other is not None and other < cap):
        cap = other
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
        max_tokens=cap,
        max_tokens_name="max_completion_tokens" if body.max_completion_tokens is not None else "max_tokens",
        temperature=body.temperature,
        top_p=body.top_p,
        top_k=body.top_k,
        stop=stop,
        seed=body.seed,
        presence_penalty=body.presence_penalty,
        frequency_penalty=body.frequency_penalty,
        tools=tools,
        tool_choice=tool_choice_of(body.tool_choice, tools),
        parallel_tool_calls=body.parallel_tool_calls,
        response_format=response_format_of(body.response_format),
        reasoning=reasoning_from(body.thinking, body.reasoning_effort, "reasoning_effort"),
        user=user_of(body),
        prompt_cache_key=cache_key_of(body),
        extra=extra_of(body),
        system_cache_point=system_cache_point,
        system_breaks=system_breaks,
        tools_cache_point=tools_point,
        meta=meta,
    )
