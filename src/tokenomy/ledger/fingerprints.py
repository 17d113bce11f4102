"""The ledger's fingerprints of a prompt: a hash of the whole prompt, so repeats can be found without storing text,
and a hash and token estimate of its cacheable prefix (tools, system prompt, earlier turns), which `plan savings`
and the caching analysis read. Images, documents and tool calls count by their identity (a payload's digest, a
call's id and arguments), never their content.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
from functools import lru_cache
from typing import Any

import orjson

from tokenomy.messages import (
    Block,
    ChatRequest,
    DocumentBlock,
    ImageBlock,
    ProviderBlock,
    ReasoningBlock,
    TextBlock,
    ToolResultBlock,
    ToolUseBlock,
)
from tokenomy.request_options import ToolSpec
from tokenomy.token_estimate import estimate_text_tokens, weighted_length


def prompt_fingerprint(request: ChatRequest) -> str:
    """A stable hash of the prompt (system + turns) so repeats can be found without storing text."""
    return fingerprints(request)[0]


def tools_json_of(tools: list[ToolSpec]) -> str:
    """Tools as JSON text with sorted keys. orjson (the stdlib's json.dumps cost ~20 us a request), each tool's text
    made once (`ToolSpec.derived`: an agent's tools come with every request); the stdlib for what orjson refuses (an
    integer past 64 bits in a schema)."""
    try:
        return "[" + ",".join([_tool_json(tool) for tool in tools]) + "]"  # as orjson writes the list
    except TypeError:
        return json.dumps([t.to_dict() for t in tools], sort_keys=True, separators=(",", ":"))


def _tool_json(tool: ToolSpec) -> str:
    derived = tool.derived
    if derived is None:
        derived = tool.derived = {}
    text = derived.get("ledger_json")
    if text is None:
        text = derived["ledger_json"] = orjson.dumps(tool.to_dict(), option=orjson.OPT_SORT_KEYS).decode()
    return text


def _sorted_json(value: object) -> str:
    """JSON text with sorted keys: orjson; the stdlib, in the same compact form, for what orjson refuses (an integer
    past 64 bits, which the edge keeps exact: a tool call's input as the caller sent it)."""
    try:
        return orjson.dumps(value, option=orjson.OPT_SORT_KEYS).decode()
    except TypeError:
        return json.dumps(value, sort_keys=True, separators=(",", ":"))


def _prefix_hash(prefix: str) -> tuple[str | None, int]:
    """Hash and estimated token count (~4 characters a token) of a stable prefix; (None, 0) if empty."""
    if not prefix.strip("\x00"):
        return None, 0
    return hashlib.sha256(prefix.encode()).hexdigest()[:32], estimate_text_tokens(prefix)


@lru_cache(maxsize=64)
def _tools_digest(tools: str) -> Any:
    """SHA-256 fed the tools' JSON and the separator after it, to be copied and fed the rest of a prefix: an agent
    sends the same tools with every request, and hashing their schemas each time cost more than the rest of the
    request's fingerprints."""
    return hashlib.sha256(tools.encode() + b"\x00")


def _turn_identity(blocks: list[Block]) -> str:
    """What a turn's blocks are, as hashed: text as it is (a text-only turn hashes as it always did), every other
    block as a short mark naming it (an image's or document's digest or link, a tool call's id, name and arguments),
    so prompts that differ only in their images, documents or tool calls never hash alike. No content is kept."""
    if len(blocks) == 1:  # most turns: one text block (no list built)
        only = blocks[0]
        return only.text if type(only) is TextBlock else _block_identity(only)
    return "".join([b.text if type(b) is TextBlock else _block_identity(b) for b in blocks])


def _block_identity(block: Block) -> str:
    if isinstance(block, TextBlock):
        return block.text
    if isinstance(block, ImageBlock):
        held = block.base64 if block.base64 is not None else block.data
        what = f"url {block.url}" if held is None else payload_digest(held)
        return f"\x02image {block.media_type} {block.detail} {what}\x03"
    if isinstance(block, DocumentBlock):
        data = "" if block.data is None else payload_digest(block.data)
        inner = "" if block.content is None else _turn_identity(block.content)
        return (
            f"\x02document {block.format} {block.name} {block.file_id} {block.url} {data} {block.context} "
            f"{block.citations} {inner}\x03"
        )
    if isinstance(block, ToolUseBlock):
        arguments = block.arguments
        if arguments is None:
            arguments = _sorted_json(block.input)
        return f"\x02call {block.id} {block.name} {arguments}\x03"
    if isinstance(block, ToolResultBlock):
        return f"\x02result {block.tool_use_id} {block.is_error} {_turn_identity(block.content)}\x03"
    if isinstance(block, ReasoningBlock):
        return f"\x02reasoning {block.text} {block.signature} {block.redacted}\x03"
    if isinstance(block, ProviderBlock):
        try:
            data = orjson.dumps(block.data, option=orjson.OPT_SORT_KEYS).decode()
        except TypeError:
            data = repr(block.data)
        return f"\x02{block.api} {data}\x03"
    return f"\x02{type(block).__name__}\x03"


# Payloads hashed lately, found again by a cheap key and an equality check (a memory compare, ~30 us a megabyte,
# where SHA-256 takes ~600 us): an agent sends its conversation's images again with every turn. Bounded by the bytes
# held (64 entries of 8 MB would keep half a gigabyte of old images alive in the gateway), oldest dropped first.
_DIGESTS: dict[tuple[int, Any, Any], tuple[str | bytes, str]] = {}
_DIGESTS_MAX = 64
_DIGEST_BYTES_MAX = 16 << 20  # every payload held, together
_DIGEST_KEPT_MAX = 4 << 20  # a payload past 4 MB is hashed each time rather than held
_digest_bytes = 0


def payload_digest(payload: str | bytes) -> str:
    """SHA-256 (32 hex digits) of an inline image's or document's payload: its identity in a prompt's hash."""
    global _digest_bytes
    size = len(payload)
    key = (size, payload[size // 2 : size // 2 + 32], payload[-32:])
    kept = _DIGESTS.get(key)
    if kept is not None and kept[0] == payload:
        return kept[1]
    digest = hashlib.sha256(payload.encode() if isinstance(payload, str) else payload).hexdigest()[:32]
    if size <= _DIGEST_KEPT_MAX:
        # another thread may change it meanwhile: one more or less kept, or a total off by one payload, is fine
        with contextlib.suppress(RuntimeError, KeyError, StopIteration):
            while _DIGESTS and (len(_DIGESTS) >= _DIGESTS_MAX or _digest_bytes + size > _DIGEST_BYTES_MAX):
                _digest_bytes -= len(_DIGESTS.pop(next(iter(_DIGESTS)))[0])  # the oldest
        _DIGESTS[key] = (payload, digest)
        _digest_bytes += size
    return digest


def fingerprints(request: ChatRequest) -> tuple[str, str | None, int]:
    """(prompt hash, prefix hash, prefix tokens) in one pass: each turn's text is joined once, not twice (a turn
    with tool results or parts has its text built from its blocks). The prompt hash covers the system prompt and
    every turn, so repeats can be found without storing text; the prefix is what a prompt cache can reuse across
    calls (tools, system prompt, earlier turns), None when empty.

    The prompt is the system prompt, then each turn as `\\x00<role>\\x01<text>` (its blocks' identities, see
    `_turn_identity`); the prefix is the tools' JSON, the
    system prompt and each earlier turn, joined by `\\x00`: that is the prompt without its last turn, after the
    tools."""
    system = request.system or ""
    turns = [f"\x00{message.role}\x01{_turn_identity(message.content)}" for message in request.messages]
    prompt = system + "".join(turns)
    earlier = prompt[: len(prompt) - len(turns[-1])] if turns else prompt
    prompt_hash = hashlib.sha256(prompt.encode()).hexdigest()[:32]
    if not request.tools:
        return (prompt_hash, *_prefix_hash(earlier))
    tools, chars = _tools_prefix(request.tools)
    digest = tools.copy()
    digest.update(earlier.encode())
    return prompt_hash, digest.hexdigest()[:32], (chars + 1 + weighted_length(earlier) + 3) // 4


def _tools_prefix(tools: list[ToolSpec]) -> tuple[Any, int]:
    """(the hash state after the tools' JSON and its separator, the JSON's length) of a request's tools, kept on its
    first tool (`ToolSpec.derived`) beside the tools it was made of: the gateway shares the ToolSpecs of a tool list
    sent again (`openai_options.read_tools`), and writing out their JSON to find its hash state cost more than the
    rest of a request's fingerprints. Found by the tools' identities, not equality (equal schemas may write out
    differently: 1 and 1.0); the tools are kept with it, so their ids are not taken by others while it is kept."""
    first = tools[0]
    derived = first.derived
    if derived is None:
        derived = first.derived = {}
    ids = [id(tool) for tool in tools]
    kept = derived.get("ledger_prefix")
    if kept is not None and kept[0] == ids:
        return kept[2], kept[3]
    text = tools_json_of(tools)
    digest = _tools_digest(text)
    # The other tools are kept (the first owns the dict): keeping the first too made a cycle per request whose
    # tools are not shared, freed only by the cyclic collector.
    derived["ledger_prefix"] = (ids, tuple(tools[1:]), digest, len(text))
    return digest, len(text)
