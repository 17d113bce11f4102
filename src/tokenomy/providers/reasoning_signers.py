"""Who signed a reasoning block, and what a provider that cannot check the signature is sent instead.

A signature (Claude's thinking, Gemini's thought signature) or redacted reasoning holds only for the family that
made it: Anthropic answers another's with a 400 ("Invalid `signature` in `thinking` block"), Gemini with "Thought
signature is not valid". A conversation answered by two families (a fallback, a cascade's tier up, a later turn on
another model) would carry one's signature to the other. So each block records its signer (`ReasoningBlock.signer`,
stamped by the client on what a provider answers, `provider_signer`), and a provider is sent only the signed blocks of
its own family: the others are left out (`foreign`), as both document (Anthropic: thinking from earlier turns may be
omitted, and its API strips it anyway; Gemini: a turn without its signatures is read as another model's).

The gateway's callers hold the signature as opaque text and send it back: an answer seals the signer into it
(`sealed`: `tokenomy.signer:<family>:` before the text) when the signer is not the family the caller's API belongs
to, and the next request reads it back (`unsealed`); a signature of that family goes out, and back to its provider,
byte-identical.
"""

from __future__ import annotations

from dataclasses import replace
from typing import Final

from tokenomy.chat_response import ChatResponse
from tokenomy.messages import CLAUDE_SIGNED, GEMINI_SIGNED, Block, ReasoningBlock

SEAL: Final = "tokenomy.signer:"
SIGNERS: Final = frozenset({CLAUDE_SIGNED, GEMINI_SIGNED})


def bedrock_signer(model: str) -> str | None:
    """The family whose signatures a Bedrock model checks: Claude's are the same on Bedrock as on Anthropic's API."""
    return CLAUDE_SIGNED if "claude" in model.lower() else None


def signed_by(response: ChatResponse, signer: str | None) -> None:
    """Stamp an answer's signed and redacted reasoning blocks with the family of the provider that answered."""
    if signer is None:
        return
    for block in response.content:
        if isinstance(block, ReasoningBlock) and (block.signature or block.redacted is not None):
            block.signer = signer


def foreign(block: Block, family: str | None) -> bool:
    """Whether `block` is reasoning signed (or redacted) by a family other than `family`, which cannot check it."""
    return (
        isinstance(block, ReasoningBlock)
        and block.signer is not None
        and block.signer != family
        and (bool(block.signature) or block.redacted is not None)
    )


def sealed(text: str, signer: str | None, native: str | None) -> str:
    """A signature (or redacted data) as a caller of an API of family `native` is given it: see the module doc."""
    return text if signer is None or signer == native else f"{SEAL}{signer}:{text}"


def unsealed(text: str, native: str | None) -> tuple[str, str | None]:
    """(the signature as its signer issued it, its signer) from what a caller of `native`'s API sent back."""
    if text.startswith(SEAL):
        signer, colon, rest = text[len(SEAL) :].partition(":")
        if colon and signer in SIGNERS:
            return rest, signer
    return text, native


def sealed_block(block: ReasoningBlock, native: str | None) -> ReasoningBlock:
    """`block` with its signature and redacted data sealed for a caller of `native`'s API."""
    if block.signer is None or block.signer == native:
        return block
    return replace(
        block,
        signature=sealed(block.signature, block.signer, native) if block.signature else block.signature,
        redacted=sealed(block.redacted, block.signer, native) if block.redacted is not None else None,
    )


def sealed_blocks(blocks: list[Block], native: str | None) -> list[Block]:
    """An answer's blocks as a caller of `native`'s API is given them (`sealed_block` on each reasoning block)."""
    return [sealed_block(b, native) if isinstance(b, ReasoningBlock) else b for b in blocks]


def unsealed_block(block: ReasoningBlock, native: str | None) -> ReasoningBlock:
    """A reasoning block a caller of `native`'s API sent back, with its signer and its signature as issued."""
    if block.redacted is not None:
        data, signer = unsealed(block.redacted, native)
        return replace(block, redacted=data, signer=signer)
    if block.signature:
        signature, signer = unsealed(block.signature, native)
        return replace(block, signature=signature, signer=signer)
    return block
