"""The reverse direction, for the gateway's `POST /v1/messages`: an Anthropic Messages request received from a
caller becomes a ChatRequest (the answer goes back in Anthropic's message shape by `anthropic_answers`, which also
names a field a provider refused as the caller sent it). The block shapes are `anthropic_content`'s, shared with the
provider.
"""

from __future__ import annotations

import dataclasses
from typing import Any

from tokenomy.messages import (
    ONE_HOUR,
    CachePoint,
    ChatRequest,
    Message,
    ProviderBlock,
    TextBlock,
)
from tokenomy.providers.anthropic_content import blocks_from_anthropic
from tokenomy.request_options import THINKING_DISPLAYS, Reasoning, ResponseFormat, ToolChoice, ToolSpec

KNOWN_FIELDS = {
    "model",
    "messages",
    "system",
    "max_tokens",
    "temperature",
    "top_p",
    "top_k",
    "stop_sequences",
    "stream",
    "tools",
    "tool_choice",
    "thinking",
}  # others (service_tier, …) ride in `extra`, to Anthropic upstreams only (anthropic_routes); `metadata` is
# ChatRequest.user (`_user`)


# Thinking only between tool calls (the SDK's ThinkingConfigBetweenToolsParam): Anthropic's alone, carried as sent.
BETWEEN_TOOLS = {"type": "between_tools"}
MAX_TOKENS = 1_000_000  # as on the OpenAI side: a bound no model reaches, so no integer overflows downstream
RANGES = {"temperature": (0, 1), "top_p": (0, 1), "top_k": (1, None)}  # Anthropic's documented ranges
TOOL_KEYS = {"type", "name", "description", "input_schema", "strict", "cache_control"}
TOOL_CHOICE_KEYS = {"type", "name", "disable_parallel_tool_use"}


def _cached(item: Any, where: str) -> tuple[str, CachePoint] | None:
    """Where `item` asks for a cache point (the caller's path to its cache_control) and which (True: 5 minutes, or
    ONE_HOUR), or None. Another kind or ttl would silently become one of those, so it is refused. A tool_result's
    own content may carry it on its last block: the cache then ends where the tool_result does."""
    if not isinstance(item, dict):
        return None
    inner = item.get("content")
    nested = _cache_point(inner, f"{where}.content", "tool_result") if item.get("type") == "tool_result" else None
    if item.get("cache_control") is None:
        return nested
    return f"{where}.cache_control", cache_point(item["cache_control"], f"{where}.cache_control")


def cache_point(control: Any, where: str) -> CachePoint:
    """The cache point a `cache_control` (at `where`) asks for: True (5 minutes) or ONE_HOUR. Another kind or ttl
    would silently become one of those, so it is a ValueError naming `where`. Chat completions callers (LiteLLM's
    convention) send the same object, so the OpenAI ingress reads it here too."""
    if not isinstance(control, dict) or control.get("type") != "ephemeral" or set(control) - {"type", "ttl"}:
        raise ValueError(f'{where}: Input should be {{"type": "ephemeral"}}')
    ttl = control.get("ttl", "5m")
    if ttl not in ("5m", ONE_HOUR):
        raise ValueError(f'{where}.ttl: Input should be "5m" or "1h" (got {ttl!r})')
    return ONE_HOUR if ttl == ONE_HOUR else True


def _cache_point(content: Any, where: str, what: str) -> tuple[str, CachePoint] | None:
    """The cache point of a list (`what`: the tool list, a tool_result's content) that caches at its end only:
    cache_control is honoured on its last item (the caller's path to it and the cache point, or None). A 1-hour
    point after a 5-minute one is Anthropic's to refuse, not reordered."""
    if not isinstance(content, list):
        return None
    for i, item in enumerate(content[:-1]):
        found = _cached(item, f"{where}.{i}")
        if found is not None:
            raise ValueError(
                f"{found[0]}: the gateway sets the cache point of a {what} at its end; move cache_control to its "
                "last block"
            )
    return _cached(content[-1], f"{where}.{len(content) - 1}") if content else None


def _message_points(content: Any, where: str) -> tuple[CachePoint, tuple[tuple[int, CachePoint], ...]]:
    """The cache point a message's content ends with (False: none) and those on its earlier blocks
    (`Message.block_points`): a document marked before the question that follows it, as Anthropic's docs show."""
    if not isinstance(content, list) or not content:
        return False, ()
    inner = []
    for i, item in enumerate(content[:-1]):
        found = _cached(item, f"{where}.{i}")
        if found is not None:
            inner.append((i, found[1]))
    last = _cached(content[-1], f"{where}.{len(content) - 1}")
    return False if last is None else last[1], tuple(inner)


def _tools_point(tools: Any) -> CachePoint:
    found = _cache_point(tools, "tools", "tool list")
    return False if found is None else found[1]


def _user(metadata: Any) -> str | None:
    """`metadata.user_id`, the Messages API's only metadata: an end-user id every provider carries in its own field
    (ChatRequest.user), so an agent that sends it on every request (Claude Code does) can use any route."""
    if metadata is None:
        return None
    if not isinstance(metadata, dict) or set(metadata) - {"user_id"}:
        raise ValueError('metadata: Input should be {"user_id": "..."}')
    user = metadata.get("user_id")
    if user is not None and not isinstance(user, str):
        raise ValueError("metadata.user_id: Input should be a valid string")
    return user


def _check_numbers(body: dict[str, Any]) -> None:
    for name, (low, high) in RANGES.items():
        value = body.get(name)
        if value is None:
            continue
        kind = int if name == "top_k" else (int, float)
        if isinstance(value, bool) or not isinstance(value, kind):
            raise ValueError(f"{name}: Input should be a{'n integer' if kind is int else ' number'}")
        if not (low <= value and (high is None or value <= high)):  # NaN fails both comparisons
            span = f"between {low} and {high}" if high is not None else f"at least {low}"
            raise ValueError(f"{name}: Input should be {span} (got {value})")


def _system(system: Any) -> tuple[str | None, CachePoint, tuple[tuple[int, int, CachePoint], ...]]:
    """The system prompt's text (its blocks joined by newlines), the cache point it ends with, and the cache points
    of blocks before the last (where in the text each ends, and the next begins): Claude Code marks both of its
    system blocks."""
    if system is None or isinstance(system, str):
        return system, False, ()
    if not isinstance(system, list):
        raise ValueError("system: Input should be a string or a list of text blocks")
    blocks = blocks_from_anthropic(system, "system", request=True)
    breaks: list[tuple[int, int, CachePoint]] = []
    end = -1  # where the text so far ends (before the first block: nothing, and no separator)
    for i, block in enumerate(blocks):
        if not isinstance(block, TextBlock):
            raise ValueError(f"system.{i}.type: the system prompt takes text blocks only")
        end += 1 + len(block.text)
        found = _cached(system[i], f"system.{i}") if i < len(blocks) - 1 else None
        if found is not None:
            breaks.append((end, end + 1, found[1]))  # the next block begins after the newline
    last = _cached(system[-1], f"system.{len(system) - 1}") if system else None
    text = "\n".join(b.text for b in blocks if isinstance(b, TextBlock))
    return text, False if last is None else last[1], tuple(breaks)


def _tools(tools_raw: Any) -> list[ToolSpec]:
    if not isinstance(tools_raw, list):
        raise ValueError("tools: Input should be a list of tools")
    tools = []
    for i, tool in enumerate(tools_raw):
        where = f"tools.{i}"
        if not isinstance(tool, dict):
            raise ValueError(f"{where}: Input should be a tool object")
        if tool.get("type") not in (None, "custom"):
            tools.append(_server_tool(tool, where))
            continue
        # Anthropic's API reads them; a null one (`eager_input_streaming: None`) is the SDK's unset, so it is no field
        own = {key: value for key, value in tool.items() if key not in TOOL_KEYS and value is not None}
        if not isinstance(tool.get("name"), str) or not tool["name"]:
            raise ValueError(f"{where}.name: Field required")
        if not isinstance(tool.get("input_schema"), dict):
            raise ValueError(f"{where}.input_schema: Input should be a JSON schema object")
        if tool.get("description") is not None and not isinstance(tool["description"], str):
            raise ValueError(f"{where}.description: Input should be a string")
        if tool.get("strict") is not None and not isinstance(tool["strict"], bool):
            raise ValueError(f"{where}.strict: Input should be a boolean")
        tools.append(
            ToolSpec(
                tool["name"], tool.get("description"), tool["input_schema"], tool.get("strict"), anthropic=own or None
            )
        )
    return tools


# The server tools the gateway carries (their `type`, versioned by a date suffix), to Anthropic's API only: Anthropic
# runs them and bills them per request (pricing/server_tools.py prices both).
SERVER_TOOLS = ("web_search_", "web_fetch_")


def _server_tool(tool: dict[str, Any], where: str) -> ToolSpec:
    """An Anthropic server tool (web search, web fetch), its definition carried as sent (cache_control aside: the
    tools' cache point). Others (code execution, billed per container-hour, ...) are refused by name."""
    kind = tool["type"]
    if not isinstance(kind, str) or not kind.startswith(SERVER_TOOLS):
        raise ValueError(
            f"{where}.type: {kind!r} is an Anthropic tool the gateway does not carry (it carries custom tools, and "
            "the web_search_* and web_fetch_* server tools to Anthropic's API); remove it"
        )
    if not isinstance(tool.get("name"), str) or not tool["name"]:
        raise ValueError(f"{where}.name: Field required")
    uses = tool.get("max_uses")
    if uses is not None and (isinstance(uses, bool) or not isinstance(uses, int) or uses < 1):
        raise ValueError(f"{where}.max_uses: Input should be a positive integer")
    return ToolSpec(tool["name"], server={k: v for k, v in tool.items() if k != "cache_control"})


def anthropic_only(call: ChatRequest) -> tuple[str, str] | None:
    """(the caller's path, what it is) of the first part of a Messages API request that only Anthropic's API takes
    (a server tool, a server tool's call or result sent back, a text block's citations), or None. The indices are
    the caller's (see `caller_path`)."""
    for i, tool in enumerate(call.tools):
        if tool.server is not None:
            kind = tool.server.get("type")
            return f"tools.{i}.type", f"{kind!r} is an Anthropic server tool, which Anthropic's API runs"
    for i, message in enumerate(call.messages):
        for j, block in enumerate(message.content):
            if isinstance(block, ProviderBlock):
                return f"messages.{i}.content.{j}", f"a {block.kind} block is an Anthropic server tool's"
            if isinstance(block, TextBlock) and block.citations is not None:
                return f"messages.{i}.content.{j}.citations", "a text block's citations are Anthropic's"
    return None


def _tool_choice(choice_raw: Any) -> tuple[ToolChoice | None, bool | None]:
    if choice_raw is None:
        return None, None
    if not isinstance(choice_raw, dict):
        raise ValueError('tool_choice: Input should be an object such as {"type": "auto"}')
    mode = choice_raw.get("type")
    if mode not in ("auto", "any", "tool", "none"):
        raise ValueError("tool_choice.type: Input should be 'auto', 'any', 'tool' or 'none'")
    for key in choice_raw:
        if key not in TOOL_CHOICE_KEYS:
            raise ValueError(f"tool_choice.{key}: the gateway cannot carry this field of tool_choice; remove it")
    name = choice_raw.get("name")
    if mode == "tool" and (not isinstance(name, str) or not name):
        raise ValueError("tool_choice.name: Field required for type 'tool'")
    if mode != "tool" and name is not None:  # only a forced tool names one: this one would be dropped
        raise ValueError(f"tool_choice.name: only tool_choice type 'tool' takes a name (got type {mode!r})")
    parallel = choice_raw.get("disable_parallel_tool_use")
    if parallel is not None and not isinstance(parallel, bool):
        raise ValueError("tool_choice.disable_parallel_tool_use: Input should be a boolean")
    return ToolChoice(mode, name if mode == "tool" else None), (False if parallel else None)


def request_from_anthropic(body: dict[str, Any]) -> ChatRequest:
    """A Messages API request body as a ChatRequest (model is the name the caller sent).
    Raises ValueError naming the field for anything malformed."""
    if not isinstance(body.get("model"), str) or not body["model"]:
        raise ValueError("model: Field required")
    max_tokens = body.get("max_tokens")
    # 0 is Anthropic's cache warming (the prompt is cached, nothing is generated): models without it refuse it by name
    if isinstance(max_tokens, bool) or not isinstance(max_tokens, int) or not 0 <= max_tokens <= MAX_TOKENS:
        raise ValueError(f"max_tokens: Field required (an integer from 0 to {MAX_TOKENS})")
    raw_messages = body.get("messages")
    if not isinstance(raw_messages, list) or not raw_messages:
        raise ValueError("messages: at least one message is required")
    messages = []
    for i, item in enumerate(raw_messages):
        if not isinstance(item, dict) or item.get("role") not in ("user", "assistant"):
            raise ValueError(f"messages.{i}.role: Input should be 'user' or 'assistant'")
        for key in item:
            if key not in ("role", "content"):
                raise ValueError(f"messages.{i}.{key}: the gateway cannot carry this field of a message; remove it")
        content = item.get("content")
        where = f"messages.{i}.content"
        if not isinstance(content, (str, list)):
            raise ValueError(f"{where}: Input should be a string or a list of content blocks")
        blocks = blocks_from_anthropic(content, where, request=True)
        point, inner = _message_points(content, where)
        messages.append(Message(item["role"], blocks, point, block_points=inner))
    system_text, system_cache_point, system_breaks = _system(body.get("system"))
    tools_raw = body.get("tools")
    if tools_raw is None:
        tools_raw = []  # an empty value of the wrong type ({}, "", 0) is refused, as a full one is
    tools = _tools(tools_raw)
    _check_numbers(body)
    choice, parallel = _tool_choice(body.get("tool_choice"))
    thinking = body.get("thinking")
    reasoning = None
    display = thinking.get("display") if isinstance(thinking, dict) else None
    if isinstance(thinking, dict) and thinking.get("type") in ("enabled", "disabled", "adaptive"):
        keys = {"type"} | ({"display"} if thinking["type"] != "disabled" else set())
        keys |= {"budget_tokens"} if thinking["type"] == "enabled" else set()
        if set(thinking) - keys:  # another key would be dropped on the way
            raise ValueError(f"thinking.{sorted(set(thinking) - keys)[0]}: not carried by the gateway; remove it")
        if display is not None and display not in THINKING_DISPLAYS:
            raise ValueError(f"thinking.display: Input should be {' or '.join(map(repr, THINKING_DISPLAYS))}")
    if isinstance(thinking, dict) and thinking.get("type") == "enabled":
        budget = thinking.get("budget_tokens")
        if isinstance(budget, bool) or not isinstance(budget, int) or budget < 1:
            raise ValueError("thinking.budget_tokens: Field required (a positive integer)")
        reasoning = Reasoning(budget_tokens=budget, display=display)
    elif isinstance(thinking, dict) and thinking.get("type") == "adaptive":
        # its effort, if any, rides in output_config to Anthropic's API
        reasoning = Reasoning(adaptive=True, display=display)
    elif isinstance(thinking, dict) and thinking.get("type") == "disabled":
        reasoning = Reasoning(budget_tokens=0)  # thinking off, said so: each provider carries it (Reasoning.off)
    elif thinking not in (None, BETWEEN_TOOLS):
        raise ValueError(
            'thinking: send {"type": "adaptive"}, {"type": "enabled", "budget_tokens": N}, {"type": "disabled"} '
            'or {"type": "between_tools"}'
        )
    stop = body.get("stop_sequences")
    stop = [] if stop is None else stop
    if not isinstance(stop, list) or not all(isinstance(s, str) for s in stop):
        raise ValueError("stop_sequences: Input should be a list of strings")
    if body.get("stream") is not None and not isinstance(body["stream"], bool):
        raise ValueError("stream: Input should be a boolean")
    # A null top-level field is the SDK's unset (`container=None`, `cache_control=None`): nothing to carry or refuse.
    extra = {k: v for k, v in body.items() if k not in KNOWN_FIELDS and v is not None}
    if thinking == BETWEEN_TOOLS:  # no other API has it: a pass-through field, to Anthropic's API only
        extra["thinking"] = dict(BETWEEN_TOOLS)
    user = _user(extra.pop("metadata", None))
    response_format = _output_format(extra)
    reasoning = _adaptive_effort(extra, reasoning)
    return ChatRequest(
        messages=messages,
        model=body["model"],
        system=system_text,
        max_tokens=max_tokens,
        temperature=body.get("temperature"),
        top_p=body.get("top_p"),
        top_k=body.get("top_k"),
        stop=list(stop),
        tools=tools,
        tool_choice=choice,
        parallel_tool_calls=parallel,
        reasoning=reasoning,
        response_format=response_format,
        user=user,
        extra=extra,
        system_cache_point=system_cache_point,
        system_breaks=system_breaks,
        tools_cache_point=_tools_point(tools_raw),
    )


def _output_format(extra: dict[str, Any]) -> ResponseFormat | None:
    """Claude's structured output, `output_config.format` (or the beta's top-level `output_format`), taken out of the
    pass-through fields into the request's response format, so a route to any model carries it in its own field.
    The rest of output_config (an effort) stays a pass-through field."""
    config = extra.get("output_config")
    if config is not None and not isinstance(config, dict):
        raise ValueError("output_config: Input should be an object")
    if config is not None:  # a null entry (`effort: None`, `format: None`) is the SDK's unset: it asks for nothing
        config = {k: v for k, v in config.items() if v is not None}
        if config:
            extra["output_config"] = config
        else:
            del extra["output_config"]
    places = [("output_format", extra.get("output_format"))]
    if config is not None:
        places.append(("output_config.format", config.get("format")))
    given = [(where, fmt) for where, fmt in places if fmt is not None]
    if not given:
        return None
    if len(given) > 1:
        raise ValueError("output_format: send the schema once, in output_config.format")
    where, fmt = given[0]
    if not isinstance(fmt, dict) or fmt.get("type") != "json_schema" or not isinstance(fmt.get("schema"), dict):
        raise ValueError(f'{where}: send {{"type": "json_schema", "schema": {{...}}}}')
    if set(fmt) - {"type", "schema"}:
        raise ValueError(f"{where}.{sorted(set(fmt) - {'type', 'schema'})[0]}: not carried by the gateway; remove it")
    if where == "output_format":
        del extra["output_format"]
    else:
        rest = {k: v for k, v in (config or {}).items() if k != "format"}
        if rest:
            extra["output_config"] = rest
        else:
            del extra["output_config"]
    return ResponseFormat(type="json_schema", schema=fmt["schema"], strict=True)  # Claude always enforces it


def _adaptive_effort(extra: dict[str, Any], reasoning: Reasoning | None) -> Reasoning | None:
    """With adaptive thinking, `output_config.effort` (which guides it) is taken out of the pass-through fields into
    the request's reasoning, so a route to any model carries it in its own field: Anthropic's output_config,
    Converse's outputConfig, OpenAI's reasoning_effort, Gemini's thinking level. An effort without adaptive
    thinking stays a pass-through field for Anthropic's API."""
    config = extra.get("output_config")
    if reasoning is None or not reasoning.adaptive or not isinstance(config, dict) or "effort" not in config:
        return reasoning
    effort = config["effort"]
    if not isinstance(effort, str):
        raise ValueError("output_config.effort: Input should be a string (low, medium, high, ...)")
    rest = {k: v for k, v in config.items() if k != "effort"}
    if rest:
        extra["output_config"] = rest
    else:
        del extra["output_config"]
    return dataclasses.replace(reasoning, effort=effort)
