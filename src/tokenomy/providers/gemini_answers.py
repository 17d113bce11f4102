"""The answer side of the gateway's Gemini routes: a ChatResponse as Gemini's GenerateContentResponse (whole, or the
parts of a stream's chunks), in the proto3 JSON the google-genai SDK reads. `gemini_inbound` reads requests.

A thoughtSignature is bytes to Gemini's SDK: it decodes the base64 text and sends the bytes back re-encoded (in the
URL-safe alphabet), so a signature's own text (Claude's, or Gemini's base64 as the provider holds it) goes out as the
base64 of marked bytes (SIGNATURE_MARK), which come back whole. Redacted reasoning (Claude's) has no Gemini part: it
travels as a thought signature marked so (REDACTED_MARK), and a caller that sends it back returns it to the model
that redacted it.
"""

from __future__ import annotations

import base64
from typing import Any

from tokenomy.messages import Block, ChatResponse, ImageBlock, ReasoningBlock, TextBlock, ToolUseBlock
from tokenomy.providers.gemini_mapping import GENERATED_ID

SIGNATURE_MARK = b"tokenomy:signature:"
REDACTED_MARK = b"tokenomy:redacted:"
FINISH_REASONS = {"stop": "STOP", "tool_calls": "STOP", "length": "MAX_TOKENS", "content_filter": "SAFETY"}
# What Gemini's built-in tools found, as the Gemini provider keeps it (raw) -> the candidate's field for it.
GROUNDING = {"grounding_metadata": "groundingMetadata", "url_context_metadata": "urlContextMetadata"}


def signature_out(text: str, mark: bytes = SIGNATURE_MARK) -> str:
    """A signature (or redacted reasoning) as the thoughtSignature the gateway sends: see SIGNATURE_MARK."""
    return base64.b64encode(mark + text.encode()).decode()


def _part(block: Block, pending: str | None) -> dict[str, Any] | None:
    if isinstance(block, TextBlock):
        part: dict[str, Any] = {"text": block.text}
    elif isinstance(block, ToolUseBlock):
        call: dict[str, Any] = {"name": block.name, "args": block.input}
        if not block.id.startswith(GENERATED_ID):
            call["id"] = block.id
        part = {"functionCall": call}
    elif isinstance(block, ImageBlock) and block.inline:
        part = {
            "inlineData": {
                "mimeType": block.media_type or "image/png",
                "data": block.base64 or base64.b64encode(block.payload() or b"").decode(),
            }
        }
    elif isinstance(block, ImageBlock):
        part = {"fileData": {"mimeType": block.media_type or "image/jpeg", "fileUri": block.url}}
    else:  # a document or tool result: request blocks, never in an answer
        return None
    if pending:
        part["thoughtSignature"] = signature_out(pending)
    return part


def parts_body(blocks: list[Block]) -> list[dict[str, Any]]:
    """Answer blocks as Gemini parts: thoughts as `thought` parts with their signature, a bare signature on the part
    that follows it (or a part of its own at the end), redacted reasoning as a marked signature (SIGNATURE_MARK)."""
    parts: list[dict[str, Any]] = []
    pending: str | None = None
    for block in blocks:
        if isinstance(block, ReasoningBlock):
            if block.redacted is not None:
                parts.append(
                    {"text": "", "thought": True, "thoughtSignature": signature_out(block.redacted, REDACTED_MARK)}
                )
            elif block.text:
                thought: dict[str, Any] = {"text": block.text, "thought": True}
                if block.signature:
                    thought["thoughtSignature"] = signature_out(block.signature)
                parts.append(thought)
            else:
                pending = block.signature
            continue
        part = _part(block, pending)
        if part is not None:
            parts.append(part)
            pending = None
    if pending:
        parts.append({"text": "", "thoughtSignature": signature_out(pending)})
    return parts


def finish_reason(response: ChatResponse) -> str:
    own = response.raw.get("finish_reason") if isinstance(response.raw, dict) else None
    if response.provider in ("gcp.gemini", "gcp.vertex_ai") and isinstance(own, str):
        return own  # a Gemini model's, as Gemini said it (RECITATION, PROHIBITED_CONTENT, MALFORMED_FUNCTION_CALL)
    return FINISH_REASONS.get(response.finish_reason, response.finish_reason.upper())


def usage_body(response: ChatResponse) -> dict[str, int]:
    """usageMetadata: Gemini's prompt count includes cached tokens, and its candidates count excludes thoughts."""
    usage = response.usage
    prompt = usage.input_tokens + usage.cache_read_tokens + usage.cache_write_tokens
    body = {"promptTokenCount": prompt, "candidatesTokenCount": usage.output_tokens - usage.reasoning_tokens,
            "totalTokenCount": prompt + usage.output_tokens}  # fmt: skip
    if usage.cache_read_tokens:
        body["cachedContentTokenCount"] = usage.cache_read_tokens
    if usage.reasoning_tokens:
        body["thoughtsTokenCount"] = usage.reasoning_tokens
    return body


def grounding_body(response: ChatResponse) -> dict[str, Any]:
    """What Gemini's built-in tools found (groundingMetadata, urlContextMetadata), kept by the Gemini provider."""
    raw = response.raw if isinstance(response.raw, dict) else {}
    return {theirs: raw[ours] for ours, theirs in GROUNDING.items() if raw.get(ours)}


def response_body(response: ChatResponse, model: str, response_id: str) -> dict[str, Any]:
    """A ChatResponse as Gemini's GenerateContentResponse (one candidate)."""
    return {
        "candidates": [{"content": {"role": "model", "parts": parts_body(response.content)},
                        "finishReason": finish_reason(response), "index": 0, **grounding_body(response)}],
        "usageMetadata": usage_body(response),
        "modelVersion": model,
        "responseId": response_id,
    }  # fmt: skip
