"""A ChatRequest as an API that takes less than the content model holds must read it, for the providers' mappings and
refusal checks: its mid-conversation system messages merged into its one system prompt (`system_hoisted`), only the
tools its choice allows (`allowed_tools_only`), its system prompt cut at its cache points (`system_parts`), and where
it first asks for a 1-hour cache point (`one_hour_cache_point`). Core types: imports `messages` and
`request_options` only."""

from __future__ import annotations

from dataclasses import replace

from tokenomy.messages import ONE_HOUR, CachePoint, ChatRequest
from tokenomy.request_options import ToolChoice


def system_hoisted(request: ChatRequest) -> ChatRequest:
    """`request` with its mid-conversation system messages merged into `system`, in order: for APIs that
    take one system prompt (Anthropic, Bedrock, Gemini). `request` itself if it has none."""
    if not any(m.role == "system" for m in request.messages):
        return request
    texts = [request.system] if request.system else []
    texts += [m.text for m in request.messages if m.role == "system"]
    turns = [m for m in request.messages if m.role != "system"]
    return replace(request, system="\n\n".join(texts), messages=turns)


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
