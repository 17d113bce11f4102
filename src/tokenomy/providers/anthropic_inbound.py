"""The reverse direction, for the gateway's `POST /v1/messages`: an Anthropic Messages request received from a
caller becomes a ChatRequest, and a ChatResponse goes back in Anthropic's message shape. The block shapes are
`anthropic_mapping`'s, shared with the provider.
"""

from __future__ import annotations

from typing import Any

from tokenomy.messages import (
    ChatRequest,
    ChatResponse,
    Message,
    Reasoning,
    TextBlock,
    ToolChoice,
    ToolSpec,
)
from tokenomy.providers.anthropic_mapping import STOP_REASONS, blocks_from_anthropic, blocks_to_anthropic

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
}  # others (metadata, service_tier, …) ride in `extra`


def _cached(item: Any) -> bool:
    return isinstance(item, dict) and item.get("cache_control") is not None


def _cache_point(content: Any, where: str) -> bool:
    """Tokenomy caches at the end of a turn: cache_control is honoured on a turn's last block only."""
    if not isinstance(content, list):
        return False
    for i, item in enumerate(content[:-1]):
        if _cached(item):
            raise ValueError(
                f"{where}[{i}].cache_control: the gateway sets cache points at the end of a message, "
                "system prompt or tool list; move cache_control to the last block"
            )
    return bool(content) and _cached(content[-1])


def _check_numbers(body: dict[str, Any]) -> None:
    for name, kind in (("temperature", (int, float)), ("top_p", (int, float)), ("top_k", int)):
        value = body.get(name)
        if value is not None and (isinstance(value, bool) or not isinstance(value, kind)):
            raise ValueError(f"{name}: Input should be a {'integer' if kind is int else 'number'}")


def request_from_anthropic(body: dict[str, Any]) -> ChatRequest:
    """A Messages API request body as a ChatRequest (model is the name the caller sent).
    Raises ValueError naming the field for anything malformed."""
    if not isinstance(body.get("model"), str) or not body["model"]:
        raise ValueError("model: Field required")
    max_tokens = body.get("max_tokens")
    if isinstance(max_tokens, bool) or not isinstance(max_tokens, int) or max_tokens < 1:
        raise ValueError("max_tokens: Field required (a positive integer)")
    raw_messages = body.get("messages")
    if not isinstance(raw_messages, list) or not raw_messages:
        raise ValueError("messages: at least one message is required")
    messages = []
    for i, item in enumerate(raw_messages):
        if not isinstance(item, dict) or item.get("role") not in ("user", "assistant"):
            raise ValueError(f"messages[{i}].role: Input should be 'user' or 'assistant'")
        content = item.get("content")
        where = f"messages[{i}].content"
        if not isinstance(content, (str, list)):
            raise ValueError(f"{where}: a string or a list of content blocks")
        messages.append(Message(item["role"], blocks_from_anthropic(content, where), _cache_point(content, where)))
    system = body.get("system")
    system_text = (
        system
        if isinstance(system, str) or system is None
        else "\n".join(b.text for b in blocks_from_anthropic(system, "system") if isinstance(b, TextBlock))
    )
    tools_raw = body.get("tools") or []
    if not isinstance(tools_raw, list) or not all(isinstance(t, dict) and t.get("name") for t in tools_raw):
        raise ValueError("tools: a list of tools, each with a name and an input_schema")
    tools = [
        ToolSpec(t["name"], t.get("description"), t.get("input_schema") or {"type": "object"}, t.get("strict"))
        for t in tools_raw
    ]
    _check_numbers(body)
    choice_raw = body.get("tool_choice")
    choice, parallel = None, None
    if isinstance(choice_raw, dict):
        mode = choice_raw.get("type")
        if mode not in ("auto", "any", "tool", "none"):
            raise ValueError("tool_choice.type: Input should be 'auto', 'any', 'tool' or 'none'")
        choice = ToolChoice(mode, choice_raw.get("name"))
        if choice_raw.get("disable_parallel_tool_use"):
            parallel = False
    thinking = body.get("thinking")
    reasoning = None
    if isinstance(thinking, dict) and thinking.get("type") == "enabled":
        budget = thinking.get("budget_tokens")
        if isinstance(budget, bool) or not isinstance(budget, int) or budget < 1:
            raise ValueError("thinking.budget_tokens: Field required (a positive integer)")
        reasoning = Reasoning(budget_tokens=budget)
    elif thinking is not None and not (isinstance(thinking, dict) and thinking.get("type") == "disabled"):
        raise ValueError('thinking: send {"type": "enabled", "budget_tokens": N} or {"type": "disabled"}')
    stop = body.get("stop_sequences") or []
    if not isinstance(stop, list) or not all(isinstance(s, str) for s in stop):
        raise ValueError("stop_sequences: Input should be a list of strings")
    extra = {k: v for k, v in body.items() if k not in KNOWN_FIELDS}
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
        extra=extra,
        system_cache_point=_cache_point(system, "system") if isinstance(system, list) else False,
        tools_cache_point=_cache_point(tools_raw, "tools"),
    )


def usage_body(response: ChatResponse) -> dict[str, Any]:
    usage = response.usage
    return {
        "input_tokens": usage.input_tokens,
        "output_tokens": usage.output_tokens,
        "cache_creation_input_tokens": usage.cache_write_tokens,
        "cache_read_input_tokens": usage.cache_read_tokens,
    }


def message_body(response: ChatResponse, model: str, message_id: str) -> dict[str, Any]:
    """A ChatResponse as the Messages API's message object."""
    return {
        "id": message_id,
        "type": "message",
        "role": "assistant",
        "model": model,
        "content": blocks_to_anthropic(response.content, "content", model),
        "stop_reason": STOP_REASONS.get(response.finish_reason, "end_turn"),
        "stop_sequence": None,
        "usage": usage_body(response),
    }
