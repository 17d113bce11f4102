"""The answer side of the gateway's `POST /v1/messages`: a ChatResponse as the Messages API's message object (its
content, stop_reason and usage), and a field a provider mapping refused named as the caller sent it, for the
gateway's errors. `anthropic_inbound` reads requests; the block shapes are `anthropic_content`'s.
"""

from __future__ import annotations

import re
from typing import Any

from tokenomy.chat_response import ChatResponse, Usage
from tokenomy.messages import CLAUDE_SIGNED
from tokenomy.providers.anthropic_content import blocks_to_anthropic
from tokenomy.providers.anthropic_mapping import STOP_REASONS
from tokenomy.providers.reasoning_signers import sealed_blocks
from tokenomy.providers.refusals import Unsupported


def caller_path(body: dict[str, Any], refused: Unsupported) -> str:
    """Where the caller sent what a provider refused, in the Messages API's terms (`messages.1.content.0`,
    `thinking`). `request_from_anthropic` keeps each message and block in its place (nothing is grouped or lifted
    out), so the content model's indices are the caller's; a string content is one block, named as the content."""
    if refused.message is None:
        return caller_param(refused.where, body)  # `tools[0].type` as `tools.0.type`
    path = f"messages.{refused.message}"
    if refused.block is None:
        return f"{path}.{refused.field}" if refused.field else path
    content = body["messages"][refused.message]["content"]
    if isinstance(content, str):
        return f"{path}.content"
    path += f".content.{refused.block}"
    if refused.part is not None:  # inside a tool_result block
        inner = content[refused.block].get("content")
        path += ".content" if isinstance(inner, str) else f".content.{refused.part}"
    return f"{path}.{refused.field}" if refused.field else path  # a block's own field: a document's citations


# The request options a provider mapping names when it refuses one (a ChatRequest slot or OpenAI's name for it), by the
# Messages API field the caller sent.
CALLER_FIELDS = {
    "parallel_tool_calls": "tool_choice.disable_parallel_tool_use",
    "reasoning_effort": "thinking",
    "reasoning.budget_tokens": "thinking.budget_tokens",
    "user": "metadata.user_id",
    "response_format": "output_config.format",
    "stop": "stop_sequences",
}
_INDEX = re.compile(r"\[(\d+)\]")


def caller_param(param: str, body: dict[str, Any] | None = None) -> str:
    """A mapping's name for a field it cannot send (`messages[2].content[1]`, `tools[0].strict`,
    `parallel_tool_calls`) in the caller's Messages API terms (`messages.2.content.1`, `tools.0.strict`,
    `tool_choice.disable_parallel_tool_use`): the indices are the caller's, as `caller_path` says. An effort the
    caller sent is `output_config.effort` (taken into the request's reasoning by
    `anthropic_inbound._adaptive_effort`)."""
    config = body.get("output_config") if body is not None else None
    if param == "reasoning_effort" and isinstance(config, dict) and config.get("effort") is not None:
        return "output_config.effort"
    for ours, theirs in CALLER_FIELDS.items():
        if param == ours or param.startswith(ours + "."):
            return theirs + param[len(ours) :]
    return _INDEX.sub(r".\1", param)


def refusal(response: ChatResponse) -> str | None:
    """The text an OpenAI-format model refused with (its message's `refusal`, beside an empty content): the
    Messages API has no such field, so it is the answer's text, with stop_reason "refusal"."""
    message = response.raw.get("message") if isinstance(response.raw, dict) else None
    text = message.get("refusal") if isinstance(message, dict) else None
    return text if isinstance(text, str) and text else None


# Claude's stop for a full context window, which finish_reason records as "length" (OpenAI has no other): a Messages
# API caller gets it as Claude (on Anthropic's API or Bedrock) said it, so it makes room rather than raise max_tokens.
CONTEXT_FULL = "model_context_window_exceeded"


def stop_reason(response: ChatResponse) -> str:
    if response.stop_sequence is not None:
        return "stop_sequence"
    if refusal(response) is not None:
        return "refusal"
    own = response.raw.get("stop_reason") if isinstance(response.raw, dict) else None
    if response.finish_reason == "length" and own == CONTEXT_FULL:
        return CONTEXT_FULL
    return STOP_REASONS.get(response.finish_reason, "end_turn")


def usage_body(response: ChatResponse) -> dict[str, Any]:
    body = usage_fields(response.usage)
    used = response.raw.get("server_tool_use") if isinstance(response.raw, dict) else None
    if used:  # the web searches Anthropic ran (and billed), as it counted them
        body["server_tool_use"] = used
    # The tier Anthropic says served the call, which a caller asking for "auto" reads (Gemini's raw names its own)
    tier = response.raw.get("service_tier") if isinstance(response.raw, dict) else None
    if response.provider == "anthropic" and isinstance(tier, str):
        body["service_tier"] = tier
    speed = response.raw.get("speed") if isinstance(response.raw, dict) else None
    if response.provider == "anthropic" and isinstance(speed, str):  # fast mode, which it billed at its own prices
        body["speed"] = speed
    return body


def usage_fields(usage: Usage) -> dict[str, Any]:
    """Token counts as the Messages API's usage object names them."""
    return {
        "input_tokens": usage.input_tokens,
        "output_tokens": usage.output_tokens,
        "cache_creation_input_tokens": usage.cache_write_tokens,
        "cache_read_input_tokens": usage.cache_read_tokens,
        "cache_creation": {  # the writes by lifetime, as Anthropic's API answers
            "ephemeral_5m_input_tokens": usage.cache_write_tokens - usage.cache_write_1h_tokens,
            "ephemeral_1h_input_tokens": usage.cache_write_1h_tokens,
        },
    }


def message_body(response: ChatResponse, model: str, message_id: str) -> dict[str, Any]:
    """A ChatResponse as the Messages API's message object."""
    # An empty text block is no block: the API answers an empty turn with `content: []` (as the stream does, which
    # opens no block without text) and refuses an empty text block sent back in the next request's history.
    content = [
        block
        for block in blocks_to_anthropic(sealed_blocks(response.content, CLAUDE_SIGNED), "content", model)
        if block.get("type") != "text" or block.get("text") or block.get("citations")
    ]
    refused = refusal(response)
    if refused is not None:
        content.append({"type": "text", "text": refused})
    return {
        "id": message_id,
        "type": "message",
        "role": "assistant",
        "model": model,
        "content": content,
        "stop_reason": stop_reason(response),
        "stop_sequence": response.stop_sequence or None,
        "usage": usage_body(response),
    }
