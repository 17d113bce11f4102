"""Thoughts and thought signatures in the parts a Gemini caller sends back: the reasoning the gateway carried on a
part's thoughtSignature (gemini_answers.thinking_out), a signature of Gemini's own, and Gemini's documented stand-ins
for a signature the caller does not have (dropped for models other than Gemini's).
"""

from __future__ import annotations

import base64
import binascii
import json
from dataclasses import replace
from typing import Any

from tokenomy.messages import Block, Message, ReasoningBlock
from tokenomy.providers.gemini_answers import REDACTED_MARK, SIGNATURE_MARK, THINKING_MARK
from tokenomy.providers.gemini_fields import CONTENT_KINDS, get, string_field

# Gemini's documented stand-ins for a thought signature the caller does not have (a call another model made): Gemini
# skips its check for them. Gemini CLI puts one on the first function call of every model turn that came without a
# signature (every turn of a model other than Gemini's). As `part_signature` holds them: the base64 of their ASCII bytes
# (the Python SDK's bytes), or of the bytes their text decodes to (the JS SDK sends the text itself).
_SKIPS = ("skip_thought_signature_validator", "context_engineering_is_the_way_to_go")
SKIP_SIGNATURES = frozenset(
    [base64.b64encode(s.encode()).decode() for s in _SKIPS] + [base64.b64encode(base64.urlsafe_b64decode(s)).decode()
                                                               for s in _SKIPS]
)  # fmt: skip


def signature_bytes(part: dict[str, Any], where: str) -> bytes | None:
    value = get(part, "thoughtSignature")
    if value is None:
        return None
    text = string_field(value, f"{where}.thoughtSignature").replace("-", "+").replace("_", "/")
    try:
        return base64.b64decode(
            text + "=" * (-len(text) % 4), validate=True
        )  # proto3 JSON: either alphabet, padded or not
    except binascii.Error:
        raise ValueError(f"{where}.thoughtSignature: not valid base64") from None


def carried_thinking(part: dict[str, Any], where: str) -> list[ReasoningBlock] | None:
    """The reasoning blocks a part's thoughtSignature carries (THINKING_MARK, gemini_answers.thinking_out), or None."""
    raw = signature_bytes(part, where)
    if raw is None or not raw.startswith(THINKING_MARK):
        return None
    try:
        items = json.loads(raw[len(THINKING_MARK) :])
        return [ReasoningBlock(redacted=i["redacted"]) if "redacted" in i else ReasoningBlock(i["text"], i["signature"])
                for i in items]  # fmt: skip
    except (ValueError, TypeError, KeyError):
        raise ValueError(
            f"{where}.thoughtSignature: not a signature the gateway sent; send it back as it came"
        ) from None


def part_signature(part: dict[str, Any], where: str) -> tuple[str, bool] | None:
    """A part's thoughtSignature as (the signature's text, whether it is redacted reasoning). One the gateway sent
    comes back as it left; one it did not (Gemini's own, from another client) is its bytes in standard base64."""
    raw = signature_bytes(part, where)
    if raw is None:
        return None
    for mark, redacted in ((SIGNATURE_MARK, False), (REDACTED_MARK, True)):
        if raw.startswith(mark):
            return raw[len(mark) :].decode("utf-8", "replace"), redacted
    return base64.b64encode(raw).decode(), False


def has_content(part: dict[str, Any]) -> bool:
    """Whether a part that carries thinking has content of its own (the last part of a turn carries it on "")."""
    return bool(get(part, "text")) or any(get(part, k) is not None for k in CONTENT_KINDS[1:])


def carries_thinking(named: list[tuple[str, Any]]) -> bool:
    """Whether a part of the turn (each named as sent) carries its thinking (`carried_thinking`): then its unsigned
    thought parts are the copies shown to the caller, not read again."""
    return any(isinstance(p, dict) and carried_thinking(p, where) is not None for where, p in named)


def stand_in(block: Block) -> bool:
    """Whether `block` is Gemini's stand-in for a signature (SKIP_SIGNATURES), the block of its own it was read as."""
    return isinstance(block, ReasoningBlock) and not block.text and block.signature in SKIP_SIGNATURES


def without_skip_signatures(messages: list[Message]) -> list[Message]:
    """The conversation without Gemini's stand-in signatures (SKIP_SIGNATURES), for a model other than Gemini: it
    checks every signature it is sent, and the stand-in is no signature of its own."""
    return [replace(m, content=[b for b in m.content if not stand_in(b)]) for m in messages]
