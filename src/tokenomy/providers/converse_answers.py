"""The answer side of the gateway's Bedrock Runtime routes (`/model/{modelId}/converse`, `-stream`): a ChatResponse
in Converse's answer shape (its message, stopReason, usage and metrics, and the fields the request asked for), and the
pieces `gateway.converse_routes` builds ConverseStream's events from. `converse_request` reads requests; the block
shapes are `converse_mapping`'s, shared with the Bedrock provider.
"""

from __future__ import annotations

import binascii
from typing import Any

from tokenomy.chat_response import ChatResponse
from tokenomy.messages import CLAUDE_SIGNED, ONE_HOUR, Block, ReasoningBlock
from tokenomy.providers.anthropic_answers import CONTEXT_FULL, refusal
from tokenomy.providers.converse_inbound import REDACTED_TEXT
from tokenomy.providers.converse_mapping import block_to_converse
from tokenomy.providers.converse_request import STOP_SEQUENCE_PATHS
from tokenomy.providers.reasoning_signers import sealed_block

# Converse's stopReason for the finish reason Tokenomy records (bedrock_answer_read.FINISH_REASONS the other way).
STOP_REASONS = {
    "stop": "end_turn",
    "length": "max_tokens",
    "tool_calls": "tool_use",
    "content_filter": "content_filtered",
}


def _jsonable(block: dict[str, Any]) -> dict[str, Any]:
    """A Converse block with its blobs (bytes) as base64 text, as the JSON protocol carries them."""
    return {
        key: (
            binascii.b2a_base64(value, newline=False).decode()
            if isinstance(value, bytes)
            else _jsonable(value)
            if isinstance(value, dict)
            else value
        )
        for key, value in block.items()
    }


def stop_reason(response: ChatResponse) -> str:
    own = response.raw.get("stop_reason") if isinstance(response.raw, dict) else None
    if response.provider == "aws.bedrock" and isinstance(own, str):
        return own  # a Bedrock model's, as Bedrock said it: a guardrail's app tells guardrail_intervened apart
    if response.stop_sequence is not None:
        return "stop_sequence"
    if response.finish_reason == "length" and own == CONTEXT_FULL:
        return CONTEXT_FULL  # Claude's full context window, a Converse reason too: the caller makes room
    return STOP_REASONS.get(response.finish_reason, "end_turn")


def usage_body(response: ChatResponse) -> dict[str, Any]:
    """Converse's TokenUsage: inputTokens excludes cache reads and writes, as Tokenomy's Usage does; cacheDetails
    splits the writes by TTL, 1h before 5m, as Bedrock sorts them."""
    usage = response.usage
    body: dict[str, Any] = {
        "inputTokens": usage.input_tokens,
        "outputTokens": usage.output_tokens,
        "totalTokens": usage.input_tokens + usage.output_tokens + usage.cache_read_tokens + usage.cache_write_tokens,
    }
    if usage.cache_read_tokens or usage.cache_write_tokens:
        body["cacheReadInputTokens"] = usage.cache_read_tokens
        body["cacheWriteInputTokens"] = usage.cache_write_tokens
    if usage.cache_write_tokens:
        one_hour = usage.cache_write_1h_tokens
        by_ttl = ((ONE_HOUR, one_hour), ("5m", usage.cache_write_tokens - one_hour))
        body["cacheDetails"] = [{"ttl": ttl, "inputTokens": tokens} for ttl, tokens in by_ttl if tokens]
    return body


def redacted_blob(redacted: str) -> str:
    """Redacted reasoning as Converse's `redactedContent` blob (base64 in JSON): its bytes, or, for another provider's
    opaque text that is not base64, that text as marked bytes (REDACTED_TEXT), which `_reasoning` reads back."""
    try:
        raw = binascii.a2b_base64(redacted, strict_mode=True)
    except binascii.Error:
        raw = REDACTED_TEXT + redacted.encode()
    return binascii.b2a_base64(raw, newline=False).decode()


def _answer_block(block: Block, model: str, where: str) -> dict[str, Any]:
    if isinstance(block, ReasoningBlock):
        block = sealed_block(block, CLAUDE_SIGNED)  # who signed it, when not Claude
    if isinstance(block, ReasoningBlock) and block.redacted is not None:
        return {"reasoningContent": {"redactedContent": redacted_blob(block.redacted)}}
    return _jsonable(block_to_converse(block, model, where))


def answer_body(response: ChatResponse, stop_paths: list[str] | None = None) -> dict[str, Any]:
    """A ChatResponse as Converse's answer: the message, stopReason, usage, metrics, and the model's own fields and
    guardrail trace a Bedrock model returned for a request that asked for them (and the stop sequence, `stop_paths`).
    An OpenAI-format model's refusal (its message's `refusal`, which Converse has no field for) is the answer's text,
    as the Messages API gives it."""
    content = [_answer_block(b, response.model, f"content[{i}]") for i, b in enumerate(response.content)]
    refused = refusal(response)
    if refused is not None:
        content.append({"text": refused})
    body: dict[str, Any] = {
        "output": {"message": {"role": "assistant", "content": content}},
        "stopReason": stop_reason(response),
        "usage": usage_body(response),
        "metrics": {"latencyMs": round(response.latency_ms)},
    }
    return {**body, **asked_fields(response, stop_paths)}


def asked_fields(response: ChatResponse, stop_paths: list[str] | None = None) -> dict[str, Any]:
    """The model's own fields (additionalModelResponseFieldPaths) and the guardrail trace a Bedrock model returned for
    a request that asked for them (bedrock_answer_read.answer_fields), with the stop sequence that ended the answer at
    each of `stop_paths` (null when none did, or the provider does not say which); ConverseStream sends them in
    messageStop and metadata."""
    top = response.raw.get("top") if isinstance(response.raw, dict) else None
    asked = {key: top[key] for key in ("additionalModelResponseFields", "trace") if top.get(key)} if top else {}
    if stop_paths:
        fields = dict(asked.get("additionalModelResponseFields") or {})
        for path in stop_paths:
            *parents, last = STOP_SEQUENCE_PATHS[path]
            where = fields
            for key in parents:
                where = where.setdefault(key, {})
            where[last] = response.stop_sequence or None
        asked["additionalModelResponseFields"] = fields
    return asked
