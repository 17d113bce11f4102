"""A batch line whose tool result answers no call of the turn before, or whose tool call the next turn leaves
unanswered: its provider refuses the record, but only once the job runs, hours after submit. Each wire form a line
may carry tools in is read for its calls and results (an OpenAI chat body's `tool_calls` and `tool` messages, a
Claude body's `tool_use` and `tool_result` blocks, a Converse or Nova body's `toolUse` and `toolResult`), the pairs
checked as the gateway checks a request (`tool_pairs_refusal`), and the first unpaired one named at its place in the
line. A plain record carries text only: it has no tool to pair.
"""

from __future__ import annotations

from typing import Any

from tokenomy.batch.formats import BadLine, BatchRecord
from tokenomy.messages import Block, ChatRequest, Message, ToolResultBlock, ToolUseBlock
from tokenomy.providers.block_refusals import tool_pairs_refusal

# Where each form's messages sit in its line.
MESSAGES_AT = {"openai": ("body", "body.messages"), "bedrock": ("modelInput", "modelInput.messages")}


def _an_id(value: Any) -> str | None:
    return value if isinstance(value, str) else None


def _openai_blocks(message: dict[str, Any], at: str) -> tuple[str, list[tuple[Block, str]]]:
    """An OpenAI chat message's role in the content model and its calls or result, each with its place."""
    role = message.get("role")
    if role == "tool":
        answered = _an_id(message.get("tool_call_id"))
        return "user", [] if answered is None else [(ToolResultBlock(answered), f"{at}.tool_call_id")]
    if role in ("system", "developer"):
        return "system", []
    calls = message.get("tool_calls") if role == "assistant" else None
    blocks: list[tuple[Block, str]] = []
    for k, call in enumerate(calls if isinstance(calls, list) else []):
        made = _an_id(call.get("id")) if isinstance(call, dict) else None
        if made is not None:
            blocks.append((ToolUseBlock(made, ""), f"{at}.tool_calls[{k}]"))
    return str(role), blocks


def _bedrock_block(part: Any, at: str) -> tuple[Block, str] | None:
    """A Claude body's `tool_use` or `tool_result` block, or a Converse or Nova body's `toolUse` or `toolResult`."""
    if not isinstance(part, dict):
        return None
    kind = part.get("type")
    if kind == "tool_use" and _an_id(part.get("id")) is not None:
        return ToolUseBlock(part["id"], ""), at
    if kind == "tool_result" and _an_id(part.get("tool_use_id")) is not None:
        return ToolResultBlock(part["tool_use_id"]), f"{at}.tool_use_id"
    use, result = part.get("toolUse"), part.get("toolResult")
    if isinstance(use, dict) and _an_id(use.get("toolUseId")) is not None:
        return ToolUseBlock(use["toolUseId"], ""), f"{at}.toolUse"
    if isinstance(result, dict) and _an_id(result.get("toolUseId")) is not None:
        return ToolResultBlock(result["toolUseId"]), f"{at}.toolResult.toolUseId"
    return None


def unpaired_tools(rec: BatchRecord) -> BadLine | None:
    """The bad line for `rec`'s first tool result without its call, or call without its result, named where the
    line writes it; None when every one is paired (or the line has none)."""
    if rec.fmt not in MESSAGES_AT:
        return None
    key, at = MESSAGES_AT[rec.fmt]
    raw = rec.raw[key].get("messages") if isinstance(rec.raw.get(key), dict) else None
    if not isinstance(raw, list):
        return None
    messages: list[Message] = []
    places: dict[tuple[int | None, int | None], str] = {}
    for i, message in enumerate(raw):
        if not isinstance(message, dict):
            return None  # (formats.py refused it already)
        if rec.fmt == "openai":
            role, blocks = _openai_blocks(message, f"{at}[{i}]")
        else:
            content = message.get("content")
            found = (
                [_bedrock_block(p, f"{at}[{i}].content[{j}]") for j, p in enumerate(content)]
                if isinstance(content, list)
                else []
            )
            role, blocks = str(message.get("role")), [b for b in found if b is not None]
        for j, (_, place) in enumerate(blocks):
            places[(i, j)] = place
        messages.append(Message(role, [block for block, _ in blocks]))
    refused = tool_pairs_refusal(ChatRequest(messages=messages))
    if refused is None:
        return None
    place = places[(refused.message, refused.block)]
    reason = f"{refused.describe(place)} (the provider would refuse the record when the job runs)"
    return BadLine(rec.line, place, reason)
