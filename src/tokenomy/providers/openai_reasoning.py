"""Signed reasoning in OpenAI's Chat Completions format, which has no field for it.

Anthropic's thinking and Gemini's thoughts carry a signature the model checks when the turn comes back; an agent's
tool loop must return it. Two conventions that OpenAI-format clients and servers already read carry it:
- LiteLLM's `thinking_blocks` on the assistant message (`{"type": "thinking", "thinking", "signature"}` or
  `{"type": "redacted_thinking", "data"}`), read by openai-agents and LiteLLM clients;
- Google's OpenAI-compatible `extra_content.google.thought_signature` on the tool call a Gemini signature belongs to.
Used by the OpenAI wire (to and from OpenAI-format upstreams) and by the gateway (to and from its callers).
"""

from __future__ import annotations

from typing import Any

from tokenomy.messages import GEMINI_SIGNED, Block, ReasoningBlock, ToolUseBlock
from tokenomy.providers.reasoning_signers import sealed, sealed_block


def _rides_on_call(blocks: list[Block], index: int) -> bool:
    """Whether `blocks[index]` is a bare signature (Gemini's on a function call part) right before a tool call."""
    block = blocks[index]
    return (
        isinstance(block, ReasoningBlock)
        and not block.text
        and bool(block.signature)
        and block.redacted is None
        and index + 1 < len(blocks)
        and isinstance(blocks[index + 1], ToolUseBlock)
    )


def signed_reasoning(
    blocks: list[Block], for_caller: bool = False
) -> tuple[list[dict[str, Any]] | None, dict[int, str]]:
    """An assistant's reasoning in OpenAI-format terms: (`thinking_blocks`, {tool call number: signature}).

    `thinking_blocks` lists every reasoning block, in order, when any of them is signed or redacted (None when
    none is: `reasoning_content` says it all). A bare signature right before a tool call rides on that call
    (`extra_content.google.thought_signature`), so it comes back on the same part. `for_caller` (the gateway's
    answers): each signature sealed with its signer (reasoning_signers.sealed), but Gemini's in Google's own
    `extra_content`; `thinking_blocks` carry Claude's and Gemini's alike (LiteLLM's), so no family is theirs."""
    thinking: list[dict[str, Any]] = []
    on_calls: dict[int, str] = {}
    signed = False
    calls = 0
    for i, block in enumerate(blocks):
        if isinstance(block, ToolUseBlock):
            calls += 1
        elif isinstance(block, ReasoningBlock):
            if _rides_on_call(blocks, i):
                signature = block.signature or ""
                on_calls[calls] = sealed(signature, block.signer, GEMINI_SIGNED) if for_caller else signature
                continue
            if for_caller:
                block = sealed_block(block, None)
            if block.redacted is not None:
                thinking.append({"type": "redacted_thinking", "data": block.redacted})
                signed = True
            else:
                item = {"type": "thinking", "thinking": block.text}
                if block.signature:
                    item["signature"] = block.signature
                    signed = True
                thinking.append(item)
    return (thinking if signed else None), on_calls


def call_signature_extra(signature: str) -> dict[str, Any]:
    """A tool call's `extra_content` carrying a thought signature (Google's OpenAI-compatible API's field)."""
    return {"google": {"thought_signature": signature}}


def call_signature(extra_content: Any) -> str | None:
    """The thought signature in a tool call's `extra_content`, or None."""
    google = extra_content.get("google") if isinstance(extra_content, dict) else None
    signature = google.get("thought_signature") if isinstance(google, dict) else None
    return signature if isinstance(signature, str) and signature else None


def thinking_block(item: Any) -> ReasoningBlock:
    """One `thinking_blocks` entry as a ReasoningBlock; ValueError naming the key that is wrong."""
    if not isinstance(item, dict):
        raise ValueError("expected an object")
    kind = item.get("type")
    if kind == "redacted_thinking":
        data = item.get("data")
        if not isinstance(data, str) or set(item) - {"type", "data"}:
            raise ValueError('expected {"type": "redacted_thinking", "data": "..."}')
        return ReasoningBlock(redacted=data)
    if kind != "thinking":
        raise ValueError(f"type {kind!r} is not thinking or redacted_thinking")
    text, signature = item.get("thinking"), item.get("signature")
    if not isinstance(text, str) or not (signature is None or isinstance(signature, str)):
        raise ValueError('expected {"type": "thinking", "thinking": "...", "signature": "..."}')
    if set(item) - {"type", "thinking", "signature"}:
        raise ValueError(f"{sorted(set(item) - {'type', 'thinking', 'signature'})[0]} is not a thinking block key")
    return ReasoningBlock(text, signature or None)


def put_signed_reasoning(blocks: list[Block], out: dict[str, Any], for_caller: bool = False) -> None:
    """Put an assistant message's signed reasoning on it (`thinking_blocks`) and on its tool calls."""
    thinking, on_calls = signed_reasoning(blocks, for_caller)
    if thinking is not None:
        out["thinking_blocks"] = thinking
    for number, signature in on_calls.items():
        out["tool_calls"][number]["extra_content"] = call_signature_extra(signature)
