"""An assistant message of OpenAI's chat-completions request as agents send it back: the fields beyond its content
and tool calls (`assistant_extras`), which OpenAI's API takes and SDKs echo (`refusal`, `annotations`, a null `audio`
or `function_call`, `parsed`), the gateway's own reasoning (`reasoning_content`, signed `thinking_blocks`), LiteLLM's
copy of them (`litellm_copy`), OpenRouter's `reasoning_details` (`openai_fields`), and a tool call's Gemini thought
signature (`tool_call_signature`). Read for `openai_ingress.to_messages`; what it cannot carry is refused, naming it."""

from __future__ import annotations

from typing import Any

from tokenomy.gateway.openai_shapes import RequestError
from tokenomy.messages import Block, ReasoningBlock, TextBlock
from tokenomy.providers.openai_reasoning import call_signature, thinking_block
from tokenomy.providers.reasoning_signers import unsealed_block

# Keys of an assistant message beyond ChatMessage's fields: what OpenAI's API takes (and the SDK sends back when
# a caller appends `reply.choices[0].message` as-is, `parsed` after its parse() helper), plus the gateway's own
# `reasoning_content` and `thinking_blocks` (signed reasoning, LiteLLM's convention: providers.openai_reasoning).
# `cache_control` is a cache point at the end of the message, on any role (`openai_ingress._cache_points`).
ASSISTANT_KEYS = {
    "refusal",
    "audio",
    "function_call",
    "annotations",
    "reasoning_content",
    "thinking_blocks",
    "parsed",
    "cache_control",
    "reasoning_details",  # OpenRouter's reasoning, carried back to OpenAI-format upstreams (`openai_fields`)
}


def tool_call_signature(call: dict[str, Any], where: str) -> str:
    """The thought signature the `extra_content` of the tool call at `where` carries; a RequestError for an
    `extra_content` holding anything else (it would not reach the model)."""
    extra = call["extra_content"]
    signature = call_signature(extra)
    if signature is None or set(extra) != {"google"} or set(extra["google"]) != {"thought_signature"}:
        raise RequestError(
            f"{where}.extra_content", 'only {"google": {"thought_signature": "..."}} is carried; remove the rest'
        )
    return signature


def _thinking_blocks(value: Any, reasoning: Any, where: str) -> list[ReasoningBlock]:
    """`thinking_blocks` as reasoning blocks. The `reasoning_content` sent beside them (the SDK echoes both) must
    be their text: it is not carried a second time."""
    if not isinstance(value, list):
        raise RequestError(f"{where}.thinking_blocks", "expected a list of thinking blocks")
    blocks: list[ReasoningBlock] = []
    for k, item in enumerate(value):
        try:
            # Who signed it, sealed in it (reasoning_signers): unsealed, another client's, of no known family
            blocks.append(unsealed_block(thinking_block(item), None))
        except ValueError as exc:
            raise RequestError(f"{where}.thinking_blocks[{k}]", str(exc)) from None
    if reasoning and reasoning != "".join(b.text for b in blocks):
        raise RequestError(
            f"{where}.reasoning_content", "differs from the text of thinking_blocks; send it unchanged or remove it"
        )
    return blocks


def litellm_copy(extra: dict[str, Any], where: str) -> dict[str, Any]:
    """`extra` with LiteLLM's `provider_specific_fields` read in. LiteLLM's Message keeps there a copy of the answer's
    fields beyond its own (this gateway's `thinking_blocks`, say), and sends it back with the message when an agent
    appends `response.choices[0].message` as its docs show. Each key is taken as that field of the message: the
    same value as the message's own, or the field itself when the message lacks it; a key this gateway does not
    carry is refused where it was sent."""
    rest = {key: value for key, value in extra.items() if key != "provider_specific_fields"}
    copy = extra["provider_specific_fields"]
    if copy is None:
        return rest
    if not isinstance(copy, dict):
        raise RequestError(f"{where}.provider_specific_fields", "expected an object")
    for key, value in copy.items():
        here = f"{where}.provider_specific_fields.{key}"
        if key not in ASSISTANT_KEYS:
            raise RequestError(here, "this message field is not supported by this gateway")
        if key == "annotations" or value is None:  # annotations describe the content and reach no model
            continue
        if rest.get(key) is not None and rest[key] != value:
            raise RequestError(here, f"differs from the message's own {key}; send one of them")
        rest[key] = value
    return rest


def openai_fields(extra: dict[str, Any], where: str) -> dict[str, Any] | None:
    """Message.openai_fields of an assistant message: OpenRouter's `reasoning_details` (the answer's reasoning, signed
    or encrypted, which the gateway passed on and OpenRouter restores from it on the next turn), as the caller sent
    it. Only OpenAI-format upstreams take it; another API refuses it by name."""
    details = extra.get("reasoning_details")
    if details is None:
        return None
    if not isinstance(details, list) or not all(isinstance(item, dict) for item in details):
        raise RequestError(f"{where}.reasoning_details", "expected a list of objects, as the answer carried it")
    return {"reasoning_details": details}


def assistant_extras(extra: dict[str, Any], where: str) -> tuple[list[Block], list[Block]]:
    """(blocks before the content, blocks after it) for the extra keys of an assistant message."""
    unknown = sorted(set(extra) - ASSISTANT_KEYS)
    if unknown:
        raise RequestError(f"{where}.{unknown[0]}", "this message field is not supported by this gateway")
    before: list[Block] = []
    after: list[Block] = []
    for key in ("audio", "function_call"):  # null is what the SDK echoes; a value cannot be carried
        if extra.get(key) is not None:
            raise RequestError(
                f"{where}.{key}",
                "not supported by this gateway (send null; use tool_calls for function calls)",
            )
    reasoning = extra.get("reasoning_content")
    if reasoning is not None and not isinstance(reasoning, str):
        raise RequestError(f"{where}.reasoning_content", "expected a string")
    if extra.get("thinking_blocks") is not None:  # signed: carried as they came, with their signatures
        before += _thinking_blocks(extra["thinking_blocks"], reasoning, where)
    elif reasoning:
        before.append(ReasoningBlock(reasoning))  # unsigned: each provider mapping decides how to carry it
    refusal = extra.get("refusal")
    if refusal is not None and not isinstance(refusal, str):
        raise RequestError(f"{where}.refusal", "expected a string")
    if refusal:
        after.append(TextBlock(refusal))  # the model's words when it refused: the next turn needs them as text
    annotations = extra.get("annotations")
    if annotations is not None and not isinstance(annotations, list):
        raise RequestError(f"{where}.annotations", "expected a list")
    # Annotations (url citations) describe spans of the content, which is carried; the model does not read them.
    return before, after
