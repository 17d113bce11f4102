"""A Gemini caller's `contents` as the conversation's messages, with the part each block came from (`Place`), for
`gemini_inbound` and for `gemini_caller_places`, which names a refused block at the part the caller sent.

A model's contents in a row are one assistant turn: google-genai's chats keep each chunk of a streamed answer as a
content of its own, which another API's model read as that many turns, the answer in pieces ("Hel", "lo"). Read as
one turn, its thoughts are collected and its signatures carried as a whole answer's are, and its plain text parts in
a row are one text, as `gemini_parts_read` reads Gemini's own answer. A text part is not joined across a thought, a
function call or a signature (a signed part keeps its own text: Gemini checks the signature on it). A user's contents
in a row stay turns of their own: Anthropic's API and the Converse mapping join them themselves, OpenAI's takes them,
and joining them would carry a cache point on the cache's last user turn past the request's first (CacheUse.mark), and
put a function's response after the user's text where Claude wants tool results first.
"""

from __future__ import annotations

from typing import Any

from tokenomy.messages import GEMINI_SIGNED, Block, Message, ReasoningBlock, TextBlock
from tokenomy.providers.gemini_fields import CONTENT_KINDS, PART_FIELDS, get, media_block, object_field, string_field
from tokenomy.providers.gemini_function_parts import FunctionCalls
from tokenomy.providers.gemini_signatures import carried_thinking, carries_thinking, has_content, part_signature
from tokenomy.providers.reasoning_signers import unsealed_block

Place = tuple[int, int]  # a part's (content index, part index) in `contents`, as the caller sent them


def turns(contents: list[Any]) -> list[list[int]]:
    """The contents each message is made of, by message index: a model content right after another joins its turn."""
    grouped: list[list[int]] = []
    for i, content in enumerate(contents):
        if grouped and _of_model(content) and _of_model(contents[grouped[-1][-1]]):
            grouped[-1].append(i)
        else:
            grouped.append([i])
    return grouped


def _of_model(content: Any) -> bool:
    return isinstance(content, dict) and get(content, "role") == "model"


def named_parts(content: Any, where: str) -> list[tuple[str, Any]]:
    """A content's parts, each with its place as the caller sent it (`contents[1].parts[0]`)."""
    parts = get(content, "parts")
    if not isinstance(parts, list) or not parts:
        raise ValueError(f"{where}.parts: expected a non-empty list of parts")
    return [(f"{where}.parts[{j}]", part) for j, part in enumerate(parts)]


def _signed(blocks: list[Block]) -> bool:
    """Whether the last block has a signature of its own (the empty reasoning block right before it holds it)."""
    before = blocks[-2] if len(blocks) > 1 else None
    return isinstance(before, ReasoningBlock) and not before.text and before.redacted is None


def read_parts(named: list[tuple[str, Any]], calls: FunctionCalls, joins_text: bool) -> tuple[list[Block], list[int]]:
    """The blocks of one turn's parts (each named as sent), and the index in `named` of the part each block came from
    (a block several parts made: the last of them). `joins_text`: a model turn's plain text parts in a row are one."""
    blocks: list[Block] = []
    owners: list[int] = []

    def add(k: int, block: Block) -> None:
        blocks.append(block)
        owners.append(k)

    shown = carries_thinking(named)
    for k, (here, part) in enumerate(named):
        part = object_field(part, here, PART_FIELDS)
        if get(part, "thought") is not None and not isinstance(get(part, "thought"), bool):
            # proto3 JSON's bool: any other value read as truthy made an answer's text a thought (dropped elsewhere)
            raise ValueError(f"{here}.thought: expected true or false")
        thinking = carried_thinking(part, here)
        if thinking is not None:  # the thinking before this part, whole
            for block in thinking:
                add(k, block)
            if get(part, "thought") or not has_content(part):
                continue
        elif shown and get(part, "thought") and get(part, "thoughtSignature") is None:
            continue  # a copy of thinking another part carries
        signed = part_signature(part, here) if thinking is None else None
        signature, redacted = signed if signed is not None else (None, False)
        if redacted:
            add(k, ReasoningBlock(redacted=signature))
            continue
        if get(part, "thought"):
            text = string_field(get(part, "text") or "", f"{here}.text")
            last = blocks[-1] if blocks else None
            if isinstance(last, ReasoningBlock) and last.text and last.signature is None and last.redacted is None:
                blocks[-1], owners[-1] = ReasoningBlock(last.text + text, signature), k  # a streamed thought
            else:
                add(k, ReasoningBlock(text, signature))
            continue
        if signature is not None:  # a signature on a call or text part: a block of its own right before it
            add(k, ReasoningBlock("", signature))
        kinds = [kind for kind in CONTENT_KINDS if get(part, kind) is not None]
        if len(kinds) != 1:
            if not kinds and signature is not None:
                continue  # a trailing signature-only part (Gemini ends a turn so): kept above
            raise ValueError(f"{here}: expected exactly one of text, inlineData, fileData, functionCall, "
                             "functionResponse")  # fmt: skip
        kind = kinds[0]
        if kind == "text":
            text = string_field(get(part, "text"), f"{here}.text")
            last = blocks[-1] if blocks else None
            if joins_text and signature is None and type(last) is TextBlock and not _signed(blocks):
                blocks[-1], owners[-1] = TextBlock(last.text + text), k  # a streamed answer's next piece
            else:
                add(k, TextBlock(text))
        elif kind == "functionCall":
            add(k, calls.call(get(part, kind), f"{here}.functionCall"))
        elif kind == "functionResponse":
            add(k, calls.response(get(part, kind), f"{here}.functionResponse"))
        else:
            add(k, media_block(part, here))
    # Who signed each (reasoning_signers): sealed in the signature when not Gemini, which the gateway's answers mark so
    return [unsealed_block(b, GEMINI_SIGNED) if isinstance(b, ReasoningBlock) else b for b in blocks], owners


def read_contents(contents: list[Any]) -> tuple[list[Message], list[list[Place]]]:
    """The messages `contents` make, and for each message the place of the part each of its blocks came from.
    Raises ValueError naming the place, as the caller sent it, for anything malformed."""
    calls = FunctionCalls()
    messages: list[Message] = []
    places: list[list[Place]] = []
    for group in turns(contents):
        calls.turn = len(messages)  # a turn's calls, streamed in contents of their own, are answered in their order
        named: list[tuple[str, Any]] = []
        at: list[Place] = []
        for i in group:
            where = f"contents[{i}]"
            content = object_field(contents[i], where, ("role", "parts"))
            role = get(content, "role") or "user"
            if role not in ("user", "model", "function"):  # function: a turn of function responses, as a user's
                raise ValueError(f"{where}.role: expected 'user' or 'model' (or 'function', for function responses)")
            parts = named_parts(content, where)
            named += parts
            at += [(i, j) for j in range(len(parts))]
        model = _of_model(contents[group[0]])
        blocks, owners = read_parts(named, calls, joins_text=model)
        messages.append(Message("assistant" if model else "user", blocks))
        places.append([at[k] for k in owners])
    return messages, places
