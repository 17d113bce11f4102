"""A ChatRequest as an API that takes less than the content model holds must read it, for the providers' mappings and
refusal checks: its mid-conversation system messages merged into its one system prompt (`system_hoisted`), only the
tools its choice allows (`allowed_tools_only`), its system prompt cut at its cache points (`system_parts`), and where
it first asks for a 1-hour cache point (`one_hour_cache_point`). Core types: imports `messages` and
`request_options` only."""

from __future__ import annotations

from dataclasses import replace

from tokenomy.messages import ONE_HOUR, CachePoint, ChatRequest, blocks_text
from tokenomy.request_options import ToolChoice


def system_hoisted(request: ChatRequest) -> ChatRequest:
    """`request` with its mid-conversation system messages merged into `system`, in order, a blank line between
    them: for APIs that take one system prompt (Anthropic, Bedrock, Gemini). `request` itself if it has none.

    Each cache point stays after the text it was set after, a break of the joined prompt (`system_breaks`): the
    opening prompt's (`system_cache_point`) at its end, a system message's at its end or after its block
    (`block_points`), and the last part's ends the prompt. An opening prompt with no text has no end of its own:
    its point stays the joined prompt's end (where caching places the system prompt's), one point with the last
    message's there, the longer-lived kept."""
    if not any(m.role == "system" for m in request.messages):
        return request
    texts: list[str] = [request.system] if request.system else []
    point = request.system_cache_point if request.system else False  # the point at the end of the text so far
    breaks = list(request.system_breaks)
    end = len(request.system or "")
    for message in request.messages:
        if message.role != "system":
            continue
        if texts:  # a blank line joins it: a point before it ends where the line begins
            if point:
                breaks.append((end, end + 2, point))
            end += 2
        # No separator joins a message's own blocks: the part after an inner point begins where it ends.
        for j, inner in message.block_points:
            at = end + len(blocks_text(message.content[: j + 1]))
            breaks.append((at, at, inner))
        texts.append(message.text)
        end += len(texts[-1])
        point = message.cache_point
    if not request.system and request.system_cache_point:
        point = ONE_HOUR if ONE_HOUR in (point, request.system_cache_point) else request.system_cache_point
    turns = [m for m in request.messages if m.role != "system"]
    return replace(
        request, system="\n\n".join(texts), messages=turns, system_breaks=tuple(breaks), system_cache_point=point
    )


def allowed_tools_only(request: ChatRequest) -> ChatRequest:
    """`request` with only the tools its choice allows (`ToolChoice.allowed`) and its choice over all of
    them: for an API with no way to allow some of the tools sent (Anthropic's, Bedrock's Converse, the local
    model), as a tool the model is not shown cannot be called. The prompt is then the shorter list's, so its
    cached prefix changes with the allowed set. `request` itself when every tool is allowed; names no tool has are
    refused before (`ToolChoice.undeclared`)."""
    choice = request.tool_choice
    if choice is None or not choice.allowed:
        return request
    allowed = set(choice.allowed)
    tools = [tool for tool in request.tools if tool.name in allowed]
    return request.replaced(tools=tools, tool_choice=ToolChoice(choice.mode))


def system_parts(request: ChatRequest) -> list[tuple[str, CachePoint]]:
    """The system prompt cut at its cache points: (text, the cache point it ends with, False for none), the last
    part ending with `system_cache_point`. The separator at a break (the newlines that joined the caller's blocks
    or messages) is left out, so the caller's text comes back as sent, with nothing added."""
    text = request.system or ""
    parts: list[tuple[str, CachePoint]] = []
    start = 0
    for end, resume, point in request.system_breaks:
        parts.append((text[start:end], point))
        start = resume
    return [*parts, (text[start:], request.system_cache_point)]


def one_hour_cache_point(request: ChatRequest) -> tuple[int | None, str | None] | None:
    """Where `request` first asks for a 1-hour cache point, in the order a prompt is cached: (None, "tools"),
    (None, "system"), (message index, None), or (None, "cache_control") for an Anthropic caller's top-level one
    (a pass-through field); None when it asks for none."""
    if request.tools_cache_point == ONE_HOUR:
        return None, "tools"
    if request.system_cache_point == ONE_HOUR or (
        request.system_breaks and any(point == ONE_HOUR for *_, point in request.system_breaks)
    ):  # (a generator only when there are breaks: this runs several times on every request)
        return None, "system"
    for i, message in enumerate(request.messages):
        if message.cache_point == ONE_HOUR or (
            message.block_points and any(point == ONE_HOUR for _, point in message.block_points)
        ):
            return i, None
    control = request.extra.get("cache_control")
    if isinstance(control, dict) and control.get("ttl") == ONE_HOUR:
        return None, "cache_control"
    return None
