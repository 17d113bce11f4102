"""The blocks of one message of OpenAI's chat-completions request: its content parts (text, an assistant's refusal,
image_url by way of `openai_images`, file, input_audio) and an assistant's tool calls (function and custom), each
checked against its keys. A part or key this mapping does not know is a 400 naming its place; `openai_ingress` maps
the messages around them.
"""

from __future__ import annotations

import binascii
from typing import Any, Union

import orjson

from tokenomy.gateway.exact_json import exact_loads
from tokenomy.gateway.openai_images import data_url, image_block, valid_base64
from tokenomy.gateway.openai_shapes import (
    AUDIO_KEYS,
    CALL_FUNCTION_KEYS,
    CALL_KEYS,
    CUSTOM_CALL_KEYS,
    CUSTOM_INPUT_KEYS,
    FILE_KEYS,
    RequestError,
    bad_shape,
    fits,
    only,
)
from tokenomy.messages import Block, DocumentBlock, ProviderBlock, TextBlock, ToolUseBlock
from tokenomy.providers import json_text
from tokenomy.providers.openai_wire import DOCUMENT_FORMATS

# `cache_control` ({"type": "ephemeral"}, optionally a "ttl"), LiteLLM's convention for Anthropic's cache points in
# OpenAI's format, marks a cache point after the part (`openai_ingress._cache_points`).
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


def content_blocks(content: Union[str, list[dict[str, Any]], None], where: str, assistant: bool = False) -> list[Block]:
    """The blocks of the `content` of the message at `where`: a string is one text block (none when empty), a list
    one block a part."""
    if content is None:
        return []
    if isinstance(content, str):
        return [TextBlock(content)] if content else []
    return [_part(p, where, i, assistant) for i, p in enumerate(content)]


def json_arguments(arguments: str) -> Any:
    """A tool call's arguments as JSON: orjson first (fast; integers past 64 bits kept exact, `exact_json.exact_loads`),
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


# A tool call as the openai SDK sends it back, its keys and its function's: read by `tool_call_block` without a look at
# each key in turn (most agents' calls come so, every call of the conversation with every request).
_USUAL_CALL = {"id", "type", "function"}
_USUAL_FUNCTION = {"name", "arguments"}


def tool_call_block(call: dict[str, Any], message: str, index: int) -> ToolUseBlock:
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
