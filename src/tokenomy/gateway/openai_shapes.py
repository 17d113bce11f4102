"""The shape checks of an OpenAI-format request's nested objects, shared by the chat-completions ingress and its
options: the keys each object may hold with the type of each, and the error that names the place of anything else.
A key this gateway does not know would be dropped, so it is refused; so is a value of another type."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, NoReturn

from tokenomy.messages import CachePoint
from tokenomy.providers.anthropic_inbound import cache_point


class RequestError(ValueError):
    """A malformed or unsupported part of the request; `param` names where (OpenAI's error.param)."""

    def __init__(self, param: str, message: str) -> None:
        super().__init__(f"{param}: {message}")
        self.param = param


# The keys each nested object of the request may hold, with the type of each: anything else would be dropped, so it
# is refused, and a value of another type (a number as a tool's name) would reach each provider differently (sent
# as is, refused by its SDK, a server error), so it is refused too.
IMAGE_KEYS = {"url": str, "detail": str}
FILE_KEYS = {"file_data": str, "file_id": str, "filename": str}
AUDIO_KEYS = {"data": str, "format": str}
# `index` (a streamed call's position) and `parsed_arguments` (its arguments decoded) are what the openai SDK's
# `stream()` and `parse()` helpers add to the message an agent appends to its next request: derived from what the
# call already carries, they are accepted and not forwarded, like the `parsed` content of such a message.
# `extra_content` carries a Gemini thought signature on the call it belongs to (Google's OpenAI-compatible format).
CALL_KEYS = {"id": str, "type": str, "function": dict, "index": int, "extra_content": dict}
CALL_FUNCTION_KEYS = {"name": str, "arguments": str, "parsed_arguments": object}
# cache_control: on the last tool only (`openai_options.tools_cache_point`)
TOOL_KEYS = {"type": str, "function": dict, "cache_control": dict}
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


def fits(value: Any, keys: Mapping[str, type]) -> bool:
    """Whether `value` is an object holding only `keys`, each null or of its type: one pass, no set built (this
    runs several times for every tool, tool call and image). A caller that gets False asks `bad_shape` why, so
    the path naming the object is spelled out only for a request that is refused."""
    if not isinstance(value, dict):
        return False
    for key, item in value.items():
        kind = keys.get(key)
        if kind is None or (item is not None and not isinstance(item, kind)):
            return False
    return True


def bad_shape(value: Any, keys: Mapping[str, type], where: str) -> NoReturn:
    """The RequestError for a value `fits` refused: not an object, its first unknown key (in sorted order), or
    its first key of the wrong type."""
    if not isinstance(value, dict):
        raise RequestError(where, "expected an object")
    unknown = value.keys() - keys.keys()
    if unknown:
        raise RequestError(f"{where}.{min(unknown)}", "not supported by this gateway")
    key = next(k for k, item in value.items() if item is not None and not isinstance(item, keys[k]))
    raise RequestError(f"{where}.{key}", f"expected {TYPE_NAMES[keys[key]]}")


def only(value: Any, keys: Mapping[str, type], where: str) -> dict[str, Any]:
    """`value` if it is an object holding only `keys`, each null or of its type; else a RequestError naming why."""
    if not fits(value, keys):
        bad_shape(value, keys, where)
    return value


# LiteLLM's way of asking for Anthropic's cache points in OpenAI's format, which its `cache_control_injection_points`
# add and its docs show: `cache_control` on a message, a content part or a tool. Read as /v1/messages reads Anthropic's
# (`anthropic_inbound.cache_point`): Claude and Bedrock get the point, a 1-hour one is refused where no 1-hour cache
# exists, and OpenAI-format models, which cache every prefix by themselves, need none. A user or assistant message
# takes one on any part (`Message.block_points`); the tool list and a system or tool message, at their end only.
AT_THE_END = "the gateway sets the cache point of {} at its end; move cache_control to its last {}"


def cache_control_point(control: Any, where: str) -> CachePoint:
    """The cache point a `cache_control` at `where` asks for; a RequestError naming the place of a malformed one."""
    try:
        return cache_point(control, where)
    except ValueError as exc:
        param, _, message = str(exc).partition(": ")
        raise RequestError(param, message) from None
