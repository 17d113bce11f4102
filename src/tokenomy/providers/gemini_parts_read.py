"""A Gemini `generateContent` answer read into Tokenomy's content model: a candidate's parts (`Part.model_dump()`
dicts) as blocks, its `finishReason` as the finish reason Tokenomy records, and its `usage_metadata` as Usage (and its
per-modality counts, for the gateway's Gemini answer to pass on).

A thought signature that Gemini puts on a non-thought part (e.g. a function call) rides back as an empty
ReasoningBlock right before that part (`gemini_mapping` attaches it to the next part on the way out). The request's
side is `gemini_mapping`; what an answer says beside its parts is `gemini_answer_read`.
"""

from __future__ import annotations

import base64
import json
from typing import Any

from tokenomy.chat_response import Usage
from tokenomy.messages import Block, ImageBlock, ReasoningBlock, TextBlock, ToolUseBlock
from tokenomy.providers.gemini_mapping import GENERATED_ID
from tokenomy.providers.usage_counts import usage_count

# Gemini's finishReason -> the OpenAI-style finish_reason Tokenomy records. A reason with no OpenAI counterpart
# (MALFORMED_FUNCTION_CALL, TOO_MANY_TOOL_CALLS, MISSING_THOUGHT_SIGNATURE, ...: the answer failed, often empty) is
# recorded as Gemini named it, lower-cased, as Bedrock's are: "stop" would tell the caller the model finished.
FINISH_REASONS = {
    "STOP": "stop",
    "FINISH_REASON_UNSPECIFIED": "stop",
    "OTHER": "stop",
    "MAX_TOKENS": "length",
    "SAFETY": "content_filter",
    "RECITATION": "content_filter",
    "BLOCKLIST": "content_filter",
    "PROHIBITED_CONTENT": "content_filter",
    "SPII": "content_filter",
    "IMAGE_SAFETY": "content_filter",
    "IMAGE_PROHIBITED_CONTENT": "content_filter",
    "IMAGE_RECITATION": "content_filter",
    "MODEL_ARMOR": "content_filter",
}


def signature_text(value: Any) -> str | None:
    if not value:
        return None
    return base64.b64encode(value).decode() if isinstance(value, bytes) else str(value)


def blocks_from_parts(parts: list[dict[str, Any]], call_offset: int = 0) -> list[Block]:
    """A candidate's parts (SDK `Part.model_dump()` dicts) as Tokenomy blocks."""
    blocks: list[Block] = []
    calls = call_offset
    for part in parts:
        signature = signature_text(part.get("thought_signature"))
        if part.get("thought") and part.get("text") is not None:
            last = blocks[-1] if blocks else None
            if isinstance(last, ReasoningBlock) and last.text and last.signature is None:  # streamed pieces
                blocks[-1] = ReasoningBlock(last.text + part["text"], signature)
            else:
                blocks.append(ReasoningBlock(part["text"], signature))
            continue
        if signature:
            blocks.append(ReasoningBlock("", signature))
        call = part.get("function_call")
        if call:
            args = dict(call.get("args") or {})
            blocks.append(
                ToolUseBlock(call.get("id") or f"{GENERATED_ID}{calls}", call.get("name") or "", args, json.dumps(args))
            )
            calls += 1
        elif part.get("text"):
            if blocks and isinstance(blocks[-1], TextBlock):
                blocks[-1] = TextBlock(blocks[-1].text + part["text"])
            else:
                blocks.append(TextBlock(part["text"]))
        elif part.get("inline_data"):
            data = part["inline_data"]
            if str(data.get("mime_type", "")).startswith("image/"):
                blocks.append(ImageBlock(data.get("mime_type"), data.get("data")))
    return blocks


def usage_from_gemini(meta: Any) -> Usage:
    """`usage_metadata` as Usage: the prompt count includes cached tokens, which Usage keeps apart;
    thoughts are output tokens (Gemini counts them outside `candidates_token_count`)."""
    if meta is None:
        return Usage()

    def count(name: str) -> int:
        return usage_count(getattr(meta, name, None), "Gemini", name)

    cached = count("cached_content_token_count")
    thoughts = count("thoughts_token_count")
    prompt = count("prompt_token_count") + count("tool_use_prompt_token_count")
    input_tokens = max(0, prompt - cached)
    # Audio input is billed at its own price (Gemini 2.x Flash): its share of the prompt and of the cached tokens,
    # from the per-modality breakdown (the prompt's includes the cached audio, as its count includes the cached).
    audio_cached = max(
        0, min(cached, _audio_count(getattr(meta, "cache_tokens_details", None), "cache_tokens_details"))
    )
    audio_prompt = _audio_count(getattr(meta, "prompt_tokens_details", None), "prompt_tokens_details")
    return Usage(
        input_tokens=input_tokens,
        output_tokens=count("candidates_token_count") + thoughts,
        cache_read_tokens=cached,
        reasoning_tokens=thoughts,
        audio_input_tokens=min(input_tokens, max(0, audio_prompt - audio_cached)),
        audio_cache_read_tokens=audio_cached,
    )


# usageMetadata's per-modality lists (ModalityTokenCount: TEXT, IMAGE, AUDIO, VIDEO, DOCUMENT), by the SDK's name and
# the API's.
MODALITY_DETAILS = {
    "prompt_tokens_details": "promptTokensDetails",
    "cache_tokens_details": "cacheTokensDetails",
    "candidates_tokens_details": "candidatesTokensDetails",
    "tool_use_prompt_tokens_details": "toolUsePromptTokensDetails",
}


def modality_counts(meta: Any) -> dict[str, list[dict[str, Any]]]:
    """usageMetadata's per-modality counts as the API shapes them (`{"promptTokensDetails": [{"modality": "AUDIO",
    "tokenCount": 120}, ...]}`), those Gemini sent, for the gateway's Gemini answer to pass on (Usage keeps only the
    audio part, which it prices)."""
    counts: dict[str, list[dict[str, Any]]] = {}
    for name, field in MODALITY_DETAILS.items():
        details = getattr(meta, name, None) if meta is not None else None
        listed = []
        for detail in details or ():
            modality = getattr(detail, "modality", None)
            tokens = usage_count(getattr(detail, "token_count", None), "Gemini", f"{name}.token_count")
            listed.append({"modality": str(getattr(modality, "value", modality) or "MODALITY_UNSPECIFIED"),
                           "tokenCount": tokens})  # fmt: skip
        if listed:
            counts[field] = listed
    return counts


def _audio_count(details: Any, name: str) -> int:
    """The AUDIO modality's tokens in a usage_metadata's per-modality list (ModalityTokenCount), 0 where none."""
    total = 0
    for detail in details or ():
        modality = getattr(detail, "modality", None)
        if getattr(modality, "value", modality) == "AUDIO":
            total += usage_count(getattr(detail, "token_count", None), "Gemini", f"{name}.token_count")
    return total


def finish_reason(reason: Any, blocks: list[Block]) -> str:
    name = getattr(reason, "value", reason) or "STOP"
    if any(isinstance(b, ToolUseBlock) for b in blocks) and name == "STOP":
        return "tool_calls"
    return FINISH_REASONS.get(str(name), str(name).lower())
