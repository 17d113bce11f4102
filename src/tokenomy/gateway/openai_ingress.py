"""OpenAI's chat-completions request, mapped onto a provider-neutral ChatRequest.

Every field of OpenAI's request is either mapped onto a ChatRequest slot (messages with all their parts, whose
blocks `openai_blocks` makes, tools, tool_choice, response_format, sampling, reasoning_effort) or carried as-is in
`ChatRequest.extra` (logprobs, n, user, metadata, service_tier, ... and any field of an OpenAI-compatible server); a
provider that cannot send one refuses the request naming it (`Provider.refusal`, translated to the caller's place by
`caller_path`). Nothing is dropped: a part or key this mapping does not know is a 400.
"""

from __future__ import annotations

import functools
import json
import re
from dataclasses import dataclass, field, replace
from typing import Any, Union

from tokenomy.config import RouteConfig
from tokenomy.gateway.openai_assistant import (
    assistant_extras,
    litellm_copy,
    openai_fields,
    tool_call_signature,
)
from tokenomy.gateway.openai_blocks import content_blocks, tool_call_block
from tokenomy.gateway.openai_options import (
    cache_key_of,
    extra_of,
    read_tools,
    reasoning_from,
    response_format_of,
    tool_choice_of,
    user_of,
)
from tokenomy.gateway.openai_shapes import AT_THE_END, RequestError, cache_control_point
from tokenomy.gateway.schemas import ChatCompletionRequest
from tokenomy.messages import (
    GEMINI_SIGNED,
    Block,
    CachePoint,
    ChatRequest,
    DocumentBlock,
    Message,
    ReasoningBlock,
    RequestMeta,
    TextBlock,
    ToolResultBlock,
)
from tokenomy.providers.block_refusals import FILE_ID
from tokenomy.providers.reasoning_signers import unsealed_block
from tokenomy.providers.refusals import Unsupported
from tokenomy.routing.router import routing_tag_refusal


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


def caller_meta(headers, route, key, name: str) -> RequestMeta:
    """Who is calling and what for: the task and tags headers (by lower-case name), the key and its team, the route's
    name. Every front door's request carries this one."""
    return RequestMeta(
        task=headers.get("x-tokenomy-task") or route.task,
        tags=parse_tags(headers.get("x-tokenomy-tags")),
        tenant=key.team if key else None,
        key_id=key.key_id if key else None,
        route=name,
    )


# -- messages --------------------------------------------------------------------------------------
def _cache_points(
    extra: dict[str, Any] | None, content: Any, where: str
) -> tuple[CachePoint, tuple[tuple[int, CachePoint], ...]]:
    """The cache points a message (at `where`; its extra fields and content, read once by the caller) asks for: the
    one at its end, on itself or on its last content part (False for none), and those on its earlier parts, each as
    (the part's index, its point)."""
    if not extra and type(content) is not list:  # most messages: no extra fields, no parts
        return False, ()
    point: CachePoint = False
    inner: list[tuple[int, CachePoint]] = []
    control = extra.get("cache_control") if extra else None
    if control is not None:
        point = cache_control_point(control, f"{where}.cache_control")
    if type(content) is list:
        last = len(content) - 1
        for i, part in enumerate(content):
            if isinstance(part, dict) and part.get("cache_control") is not None:
                at = f"{where}.content[{i}].cache_control"
                found = cache_control_point(part["cache_control"], at)
                if i < last:
                    inner.append((i, found))
                    continue
                if point and found != point:
                    raise RequestError(at, "differs from the message's own cache_control; send one of them")
                point = found
    return point, tuple(inner)


def _message_cache_point(extra: dict[str, Any] | None, content: Any, where: str) -> CachePoint:
    """The cache point at the end of a system or tool message (`_cache_points`), whose parts are no blocks of a turn
    (a system message's join into its text, a tool message's are its result's): one on an earlier part is refused,
    not moved, as the cache would end later than the caller asked."""
    point, inner = _cache_points(extra, content, where)
    if inner:
        at = f"{where}.content[{inner[0][0]}].cache_control"
        raise RequestError(at, AT_THE_END.format("a system or tool message", "part"))
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
    """The caller's path of each block `content_blocks` makes of `content` (a string is one block: the content
    itself)."""
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
            blocks = content_blocks(content, where)
            if any(not isinstance(b, TextBlock) for b in blocks):
                raise RequestError(f"{where}.content", "a system message takes text parts only")
            text = "".join(b.text for b in blocks if isinstance(b, TextBlock))
            if turns:  # mid-conversation: in place for upstreams that take it there, joined to the one system
                # prompt where an API takes one, its cache point after its text there (request_views.system_hoisted)
                turns.append(Message("system", [TextBlock(text)], _message_cache_point(own, content, where)))
                if origins is not None:
                    origins.append(Origin(where, [f"{where}.content"]))
            else:
                system.append(text)
        elif role == "tool":
            if not m.tool_call_id:
                raise RequestError(f"{where}.tool_call_id", "required on a tool message")
            if m.name:  # no provider's tool result has a name: it would be lost
                raise RequestError(f"{where}.name", "a tool message takes no name (tool_call_id names its call)")
            result = ToolResultBlock(m.tool_call_id, content_blocks(content, where))
            last = turns[-1] if turns else None
            if last is not None and last.role == "user" and all(isinstance(b, ToolResultBlock) for b in last.content):
                if last.cache_point:  # a run of tool messages is one turn: an earlier one's point is inside it
                    last.block_points += ((len(last.content) - 1, last.cache_point),)
                last.content.append(result)
            else:
                turns.append(Message("user", [result]))
                if origins is not None:
                    origins.append(Origin(where))
            turns[-1].cache_point = _message_cache_point(own, content, where)
            if origins is not None:  # the result block is the tool message; its parts are the message's content
                origins[-1].parts[len(origins[-1].blocks)] = _paths(content, where)
                origins[-1].blocks.append(where)
        elif role == "assistant":
            if "provider_specific_fields" in extra:
                extra = litellm_copy(extra, where)
            before, after = assistant_extras(extra, where) if extra else ([], [])
            blocks = before + content_blocks(content, where, assistant=True) + after
            calls: list[str] = []  # with `origins`: each call block's path (a signature's block comes before it)
            for j, c in enumerate(m.tool_calls or []):
                block = tool_call_block(c, where, j)
                if c.get("extra_content") is not None:  # (`tool_call_block` found `c` an object)
                    signed = ReasoningBlock("", tool_call_signature(c, f"{where}.tool_calls[{j}]"))
                    blocks.append(unsealed_block(signed, GEMINI_SIGNED))  # Google's field: Gemini's, unless sealed
                    if origins is not None:
                        calls.append(f"{where}.tool_calls[{j}].extra_content")
                blocks.append(block)
                if origins is not None:
                    calls.append(f"{where}.tool_calls[{j}]")
            fields = openai_fields(extra, where) if extra else None
            point, inner = _cache_points(own, content, where)
            if inner:  # a part's block comes after the reasoning blocks `before`
                inner = tuple((len(before) + i, part_point) for i, part_point in inner)
            turns.append(Message("assistant", blocks, point, m.name, fields, inner))
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
            point, inner = _cache_points(own, content, where)  # a part a block
            turns.append(Message("user", content_blocks(content, where), point, name=m.name, block_points=inner))
            if origins is not None:
                origins.append(Origin(where, _paths(content, where)))
    if not turns:
        raise ValueError("messages: at least one user message is required")
    return "\n\n".join(system) or None, turns


# ChatRequest slots a provider names when it refuses one, by the field the caller sent.
CALLER_FIELDS = {"reasoning.budget_tokens": "thinking.budget_tokens"}
# A block's field a provider names when it refuses one, by the field of the content part the caller sent.
PART_FIELDS = {
    FILE_ID: "file.file_id",
    "detail": "image_url.detail",  # inside the part's image_url
    "tool_use_id": "tool_call_id",  # a tool result's: its tool message's
}


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
# A tool's schema, as Claude's form names it (`claude_schema`); the caller's tools[i] is a function tool of that index.
TOOL_SCHEMA = re.compile(r"tools\[(\d+)\]\.input_schema")


def caller_param(body: ChatCompletionRequest, param: str) -> str:
    """A provider mapping names a field it cannot send by its place in the content model
    (`messages[2].content[1].detail`); this is the same place in the caller's request (`messages[4].content[1]
    .detail` when two system messages came first); a tool schema's, in its function's parameters. Any other path
    outside `messages` is the caller's already."""
    found = CONTENT_PATH.match(param)
    if found is None:
        schema = TOOL_SCHEMA.match(param)
        if schema is not None:
            return f"tools[{schema[1]}].function.parameters{param[schema.end() :]}"
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
    # The smaller of the two caps holds; a refusal names the field it came from (max_completion_tokens on a tie).
    cap, other, cap_name = body.max_completion_tokens, body.max_tokens, "max_completion_tokens"
    if cap is None or (other is not None and other < cap):
        cap, cap_name = other, "max_tokens"
    meta = caller_meta(headers, route, key, body.model)
    return ChatRequest(
        messages=turns,
        model=route.model or body.model,
        system=system,
        max_tokens=cap,
        max_tokens_name=cap_name,
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
