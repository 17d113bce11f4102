"""The answer side of the gateway's Gemini routes: a ChatResponse as Gemini's GenerateContentResponse (whole, or the
parts of a stream's chunks), in the proto3 JSON the google-genai SDK reads. `gemini_inbound` reads requests.

A thoughtSignature is bytes to Gemini's SDK: it decodes the base64 text and sends the bytes back re-encoded (in the
URL-safe alphabet), so a signature's own text (Claude's, or Gemini's base64 as the provider holds it) goes out as the
base64 of marked bytes (SIGNATURE_MARK), which come back whole.

Signed thinking (Claude's: its text and signature; redacted thinking) rides on the part after it, as Gemini puts its
own signatures, for agents keep no thought parts in their history (Gemini CLI drops them; ADK joins streamed ones
without their signatures), and Claude refuses a tool loop whose thinking did not come back: the part's
thoughtSignature is THINKING_MARK and the blocks as JSON (`thinking_out`); the thought's text goes out too, as an
unsigned thought part, to show. A caller that sends the turn back returns the blocks; the unsigned copies are not
read again (`gemini_inbound`).
"""

from __future__ import annotations

import base64
import json
from typing import Any

from tokenomy.chat_response import ChatResponse
from tokenomy.messages import GEMINI_SIGNED, Block, ImageBlock, ReasoningBlock, TextBlock, ToolUseBlock
from tokenomy.providers.anthropic_answers import refusal
from tokenomy.providers.gemini_mapping import GENERATED_ID
from tokenomy.providers.reasoning_signers import sealed_block

SIGNATURE_MARK = b"tokenomy:signature:"
REDACTED_MARK = b"tokenomy:redacted:"
THINKING_MARK = b"tokenomy:thinking:"
FINISH_REASONS = {
    "stop": "STOP",
    "tool_calls": "STOP",
    "length": "MAX_TOKENS",
    "content_filter": "SAFETY",
    # Converse's own reasons (kept by name, chat_response.py), as Gemini says them: agents retry on these
    "malformed_tool_use": "MALFORMED_FUNCTION_CALL",
    "malformed_model_output": "MALFORMED_RESPONSE",
    # Claude's pause_turn: its server-tool loop (web searches) stopped at its iteration limit before a final answer,
    # which is what Gemini's TOO_MANY_TOOL_CALLS says ("the server-side tool loop stopped before the model returned a
    # final answer"); not STOP, which would tell the caller's agent the answer is whole, nor CONTINUATION, which
    # promises a continuation_token the gateway has none of
    "pause_turn": "TOO_MANY_TOOL_CALLS",
    "function_call": "STOP",  # OpenAI's legacy function call, a call as tool_calls is
}


def signature_out(text: str, mark: bytes = SIGNATURE_MARK) -> str:
    """A signature (or redacted reasoning) as the thoughtSignature the gateway sends: see SIGNATURE_MARK."""
    return base64.b64encode(mark + text.encode()).decode()


def thinking_out(blocks: list[ReasoningBlock]) -> str:
    """Reasoning blocks as the thoughtSignature of the part after them: one bare signature (Gemini's on a call) as
    itself, anything else (thinking with its text, redacted thinking) whole, as JSON (THINKING_MARK). Another family's
    signature or redacted data is sealed with its signer (reasoning_signers.sealed): read back, it reaches only them."""
    blocks = [sealed_block(b, GEMINI_SIGNED) for b in blocks]
    if len(blocks) == 1 and not blocks[0].text and blocks[0].redacted is None:
        return signature_out(blocks[0].signature or "")
    items = [{"redacted": b.redacted} if b.redacted is not None else {"text": b.text, "signature": b.signature}
             for b in blocks]  # fmt: skip
    return signature_out(json.dumps(items, separators=(",", ":")), THINKING_MARK)


def _part(block: Block, pending: list[ReasoningBlock]) -> dict[str, Any] | None:
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
        part["thoughtSignature"] = thinking_out(pending)
    return part


def parts_body(blocks: list[Block], show_thoughts: bool = True) -> list[dict[str, Any]]:
    """Answer blocks as Gemini parts: each thought's text as a `thought` part (to show; unless `show_thoughts` is
    False: it streamed already), and the signed reasoning before a part on that part (`thinking_out`), or on a part
    of its own at the end."""
    parts: list[dict[str, Any]] = []
    pending: list[ReasoningBlock] = []
    for block in blocks:
        if isinstance(block, ReasoningBlock):
            if block.text and show_thoughts:
                parts.append({"text": block.text, "thought": True})
            if block.signature or block.redacted is not None:
                pending.append(block)
            continue
        part = _part(block, pending)
        if part is not None:
            parts.append(part)
            pending = []
    if pending:
        parts.append({"text": "", "thoughtSignature": thinking_out(pending)})
    return parts


def finish_reason(response: ChatResponse) -> str:
    own = response.raw.get("finish_reason") if isinstance(response.raw, dict) else None
    if response.provider in ("gcp.gemini", "gcp.vertex_ai") and isinstance(own, str):
        return own  # a Gemini model's, as Gemini said it (RECITATION, PROHIBITED_CONTENT, MALFORMED_FUNCTION_CALL)
    # Any other model's reason Gemini has no name for is its OTHER ("a reason not otherwise specified"), not a name
    # the SDK does not know
    return FINISH_REASONS.get(response.finish_reason, "OTHER")


def usage_body(response: ChatResponse) -> dict[str, Any]:
    """usageMetadata: Gemini's prompt count includes cached tokens, and its candidates count excludes thoughts; the
    tokens of what Gemini's built-in tools found (input to the ledger) are its toolUsePromptTokenCount, apart. A
    Gemini answer's per-modality counts (promptTokensDetails, cacheTokensDetails, candidatesTokensDetails: audio apart
    from text, say) are passed on as Gemini sent them; another provider's answer has none to pass on."""
    usage = response.usage
    raw = response.raw if isinstance(response.raw, dict) else {}
    gemini = response.provider in ("gcp.gemini", "gcp.vertex_ai")
    tool_use = raw.get("tool_use_prompt_tokens") if gemini else None
    tool_use = tool_use if isinstance(tool_use, int) else 0
    prompt = usage.input_tokens + usage.cache_read_tokens + usage.cache_write_tokens - tool_use
    body = {"promptTokenCount": prompt, "candidatesTokenCount": usage.output_tokens - usage.reasoning_tokens,
            "totalTokenCount": prompt + tool_use + usage.output_tokens}  # fmt: skip
    if tool_use:
        body["toolUsePromptTokenCount"] = tool_use
    if usage.cache_read_tokens:
        body["cachedContentTokenCount"] = usage.cache_read_tokens
    if usage.reasoning_tokens:
        body["thoughtsTokenCount"] = usage.reasoning_tokens
    modalities = raw.get("modality_tokens") if gemini else None
    if isinstance(modalities, dict):
        body.update(modalities)
    return body


def candidate_said(response: ChatResponse) -> dict[str, Any]:
    """What Gemini said of its candidate beside the parts (what its built-in tools found, why it cut the answer short:
    groundingMetadata, safetyRatings, finishMessage, ...), kept by the Gemini provider as Gemini sent it."""
    said = response.raw.get("candidate") if isinstance(response.raw, dict) else None
    return said if isinstance(said, dict) else {}


def prompt_feedback(response: ChatResponse) -> dict[str, Any]:
    """Gemini's promptFeedback (why it blocked the prompt), kept by the Gemini provider as Gemini sent it."""
    feedback = response.raw.get("prompt_feedback") if isinstance(response.raw, dict) else None
    return feedback if isinstance(feedback, dict) else {}


def answered(body: dict[str, Any], response: ChatResponse) -> dict[str, Any]:
    """A GenerateContentResponse (or a stream's last chunk) with Gemini's promptFeedback, and without candidates
    where Gemini sent none: a prompt it blocked, which an application tells by them (`prompt_feedback.block_reason`,
    no candidates), not by a candidate the gateway made up."""
    feedback = prompt_feedback(response)
    if feedback:
        body["promptFeedback"] = feedback
    if feedback.get("blockReason") and not response.content and not candidate_said(response):
        del body["candidates"]
    return body


def response_body(response: ChatResponse, model: str, response_id: str, show_thoughts: bool = True) -> dict[str, Any]:
    """A ChatResponse as Gemini's GenerateContentResponse (one candidate). An OpenAI-format model's refusal (its
    message's `refusal`, which Gemini's API has no field for) is the answer's text, as the Messages API gives it."""
    parts = parts_body(response.content, show_thoughts)
    refused = refusal(response)
    if refused is not None:
        parts.append({"text": refused})
    return answered({
        "candidates": [{"content": {"role": "model", "parts": parts},
                        "finishReason": finish_reason(response), "index": 0, **candidate_said(response)}],
        "usageMetadata": usage_body(response),
        "modelVersion": model,
        "responseId": response_id,
    }, response)  # fmt: skip
