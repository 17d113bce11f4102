"""The Response object of an answer on `POST /v1/responses` (`responses_routes`): its output items in order
(`reasoning` with what must come back in `encrypted_content`, one `message` per run of text, a `function_call` or
`custom_tool_call` per tool call), its usage and status, and the object itself echoing the request's settings. The
whole answer and the stream's events are both built from these.
"""

from __future__ import annotations

import time
from typing import Any

from tokenomy.chat_response import ChatResponse
from tokenomy.gateway.responses import raw_extras, tokenomy_fields
from tokenomy.gateway.responses_ingress import REDACTED, SIGNED
from tokenomy.messages import ReasoningBlock, TextBlock, ToolUseBlock
from tokenomy.providers.reasoning_signers import sealed_block
from tokenomy.providers.usage_counts import arguments_text


def reasoning_item(item_id: str, block: ReasoningBlock, summary: bool) -> dict[str, Any]:
    """A reasoning item; what must come back with the text (a signature, redacted data) rides in encrypted_content,
    with the family that signed it (reasoning_signers.sealed)."""
    block = sealed_block(block, None)
    sealed = REDACTED + block.redacted if block.redacted is not None else None
    if block.signature:
        sealed = SIGNED + block.signature
    return {
        "type": "reasoning",
        "id": item_id,
        "summary": [{"type": "summary_text", "text": block.text}] if summary and block.text else [],
        "content": [{"type": "reasoning_text", "text": block.text}] if block.text else [],
        "encrypted_content": sealed,
        "status": "completed",
    }


def wants_summary(body: dict[str, Any]) -> bool:
    """Whether the caller asked for reasoning summaries: `reasoning.summary`, or the older `generate_summary`."""
    reasoning = body.get("reasoning") or {}
    return bool(reasoning.get("summary") or reasoning.get("generate_summary"))


def text_part(text: str, annotations: list[Any] | None = None, logprobs: list[Any] | None = None) -> dict[str, Any]:
    return {"type": "output_text", "text": text, "annotations": annotations or [], "logprobs": logprobs or []}


def message_item(item_id: str, content: list[dict[str, Any]], status: str = "completed") -> dict[str, Any]:
    return {"type": "message", "id": item_id, "role": "assistant", "status": status, "content": content}


def call_item(item_id: str, call_id: str, name: str, arguments: str, status: str = "completed") -> dict[str, Any]:
    return {
        "type": "function_call",
        "id": item_id,
        "call_id": call_id,
        "name": name,
        "arguments": arguments,
        "status": status,
    }


def custom_call_item(item_id: str, call_id: str, name: str, text: str) -> dict[str, Any]:
    """A freeform call (ResponseCustomToolCall: no status field): `input` is the raw text the model wrote."""
    return {"type": "custom_tool_call", "id": item_id, "call_id": call_id, "name": name, "input": text}


def flat_annotations(found: list[Any]) -> list[dict[str, Any]]:
    """An OpenAI-format upstream's url citations as the Responses API has them (chat completions nests each under
    `url_citation`)."""
    return [{"type": a.get("type"), **(a.get(a.get("type")) or {})} for a in found if isinstance(a, dict)]


def _annotations(response: ChatResponse) -> list[dict[str, Any]]:
    return flat_annotations(raw_extras(response, "message").get("annotations") or [])


def output_items(response: ChatResponse, ids: str, summary: bool) -> list[dict[str, Any]]:
    """The answer's blocks as output items, in order: the text blocks of a run are one message (an OpenAI-format
    upstream's refusal, which ChatResponse has no block for, is its refusal part)."""
    items: list[dict[str, Any]] = []
    message: dict[str, Any] | None = None
    logprobs = (raw_extras(response, "choice").get("logprobs") or {}).get("content")
    for block in response.content:
        item_id = f"{ids}_{len(items)}"
        if isinstance(block, TextBlock):
            if message is None:
                message = message_item("msg" + item_id, [])
                items.append(message)
            first = not message["content"]  # what the upstream said of its text goes with the text's first part
            message["content"].append(text_part(block.text, *((_annotations(response), logprobs) if first else ())))
            continue
        message = None
        if isinstance(block, ReasoningBlock):
            items.append(reasoning_item("rs" + item_id, block, summary))
        elif isinstance(block, ToolUseBlock) and block.freeform:
            items.append(custom_call_item("ctc" + item_id, block.id, block.name, block.arguments or ""))
        elif isinstance(block, ToolUseBlock):
            items.append(call_item("fc" + item_id, block.id, block.name, arguments_text(block)))
    refused = raw_extras(response, "message").get("refusal")
    if isinstance(refused, str) and refused:
        if message is None:
            message = message_item(f"msg{ids}_{len(items)}", [])
            items.append(message)
        message["content"].append({"type": "refusal", "refusal": refused})
    return items


def usage_body(response: ChatResponse) -> dict[str, Any]:
    """The Responses API's usage: input_tokens include cached ones (input_tokens_details), output reasoning."""
    usage = response.usage
    given = {"cached_tokens": usage.cache_read_tokens, "cache_write_tokens": usage.cache_write_tokens}
    made = {"reasoning_tokens": usage.reasoning_tokens}
    if usage.audio_input_tokens or usage.audio_cache_read_tokens or usage.audio_output_tokens:
        # as chat's usage says them (prompt_tokens_details.audio_tokens): only an answer with audio has them
        given["audio_tokens"] = usage.audio_input_tokens + usage.audio_cache_read_tokens
        made["audio_tokens"] = usage.audio_output_tokens
    return {
        "input_tokens": usage.total_input_tokens,
        "input_tokens_details": given,
        "output_tokens": usage.output_tokens,
        "output_tokens_details": made,
        "total_tokens": usage.total_input_tokens + usage.output_tokens,
    }


def ending(response: ChatResponse) -> tuple[str, dict[str, str] | None]:
    """(status, incomplete_details): an answer cut by its cap or a content filter is incomplete."""
    reason = {"length": "max_output_tokens", "content_filter": "content_filter"}.get(response.finish_reason)
    return ("incomplete", {"reason": reason}) if reason else ("completed", None)


def response_body(
    body: dict[str, Any], name: str, response_id: str, status: str = "in_progress", output: list | None = None
) -> dict[str, Any]:
    """The Response object, echoing the request's settings as OpenAI's does."""
    return {
        "id": response_id,
        "object": "response",
        "created_at": int(time.time()),
        "status": status,
        "error": None,
        "incomplete_details": None,
        "instructions": body.get("instructions"),
        "max_output_tokens": body.get("max_output_tokens"),
        "model": name,
        "output": output or [],
        "parallel_tool_calls": body.get("parallel_tool_calls", True),
        "temperature": body.get("temperature"),
        "top_p": body.get("top_p"),
        "tool_choice": body.get("tool_choice") or "auto",
        "tools": body.get("tools") or [],
        "text": body.get("text") or {"format": {"type": "text"}},
        "reasoning": body.get("reasoning"),
        "store": False,
        "truncation": "disabled",
        "metadata": body.get("metadata") or {},
        "user": body.get("user"),
        "safety_identifier": body.get("safety_identifier"),
        "prompt_cache_key": body.get("prompt_cache_key"),
        "max_tool_calls": body.get("max_tool_calls"),
        "service_tier": body.get("service_tier"),
        "usage": None,
    }


def finished(answer: dict[str, Any], response: ChatResponse) -> dict[str, Any]:
    """`answer` completed with the call's outcome: status, usage, the tier that served it (an OpenAI-format upstream
    says it; else the tier asked for stands), and what it cost (as the other APIs report it)."""
    answer["status"], answer["incomplete_details"] = ending(response)
    answer["usage"] = usage_body(response)
    served = raw_extras(response, "top").get("service_tier")  # the tier that processed it, as the upstream says it
    if isinstance(served, str):
        answer["service_tier"] = served
    answer["tokenomy"] = tokenomy_fields(response)
    return answer
