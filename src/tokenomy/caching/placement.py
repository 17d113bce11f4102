"""Place cache points after the longest stable prefixes, where the model's minimum makes them pay.

Stable parts of a prompt, in the order providers hash them: tools, the system prompt, then earlier
turns (everything but the last user message). A cache point goes after a part only when the prefix
up to it reaches the model's minimum cacheable length (on Bedrock, also the minimum past the point before it);
with more candidates than the model allows, the longest prefixes win because they save the most on a hit.
"""

from __future__ import annotations

import json
import re
import zlib
from collections.abc import Callable, Sequence
from dataclasses import dataclass, replace
from functools import lru_cache

import orjson

from tokenomy.errors import UnknownModelError
from tokenomy.messages import (
    Block,
    ChatRequest,
    DocumentBlock,
    ImageBlock,
    Message,
    ProviderBlock,
    ReasoningBlock,
    TextBlock,
    ToolResultBlock,
    ToolUseBlock,
)
from tokenomy.pricing.catalog import PriceCatalog, PriceEntry, default_catalog
from tokenomy.pricing.identifiers import takes_no_tools_cache_point
from tokenomy.request_options import ToolSpec
from tokenomy.token_estimate import bound_length, estimate_text_tokens, weighted_length


def estimate_tokens(text: str) -> int:
    """Provider-neutral estimate (~4 characters per token for English text and JSON; a CJK character ~1 token, see
    `token_estimate`).

    Hosted tokenizers are not available offline, so placement uses this cheap estimate for them
    (the local model counts exactly with its own tokenizer). It tends to *under*-count text full of
    numbers and punctuation (SmolLM2 counted 1,956 tokens where it says 1,730), so a point placed
    "at the minimum" is usually above it in fact. A point that still lands below the real minimum
    costs nothing: Bedrock and Anthropic simply don't cache that prefix.
    """
    return estimate_text_tokens(text)


# Inputs that are not text, at a fixed figure each: about what Claude reports for a ~1.2 megapixel image (OpenAI's
# high detail and Gemini count less) and for a PDF page. A budget's reservation must not leave them out.
IMAGE_TOKENS = 1600
DOCUMENT_TOKENS = 1500
_TEXT_DOCUMENTS = frozenset({"txt", "csv", "md", "html"})
# Audio and video (Gemini's), which Gemini bills by length (32 tokens a second of audio, 263 of video): ~500 bytes a
# token is 128 kbps audio or 1 Mbps video (16 kHz WAV at twice what it is billed: a reservation errs above).
MEDIA_BYTES_PER_TOKEN = 500
# The tokens a chat format adds around each message's content and before the answer, which an upper bound of a prompt
# counts: ChatML's 5 a message (<|im_start|>, the role, a newline, <|im_end|>, a newline; OpenAI counts 3, and 1 more
# for a name) and 4 opening the answer (<|im_start|>, "assistant", which SmolLM2's tokenizer splits in two, a newline).
MESSAGE_FRAMING_TOKENS = 5
REPLY_FRAMING_TOKENS = 4


def estimate_input_tokens(request: ChatRequest) -> int:
    """Everything a request sends, estimated for rate limits and routing (a budget reserves an upper bound of it,
    `input_bound`): its text, the tools' definitions, earlier tool calls' arguments, reasoning sent back, and images
    and documents at a fixed figure each (a text document by its length). `request.text()` alone counts the words
    only, and an agent's tool definitions or a screenshot often cost more than its words."""
    return input_size(request)[0]


def input_size(request: ChatRequest, length: Callable[[str], int] = weighted_length) -> tuple[int, int]:
    """(`estimate_input_tokens`, how many documents it sends by reference: a URL or file id the provider reads, whose
    size the gateway cannot see and which that estimate counts as one page each). Its text is measured by `length`
    (in the estimate's units, 4 a token): the estimate's, or `bound_length` for `input_bound`."""
    chars = length(request.system or "")
    tokens = unsized = 0
    for message in request.messages:
        more_chars, more_tokens, more_unsized = _blocks_size(message.content, length)
        chars += more_chars
        tokens += more_tokens
        unsized += more_unsized
    for tool in request.tools:
        chars += _tool_chars(tool, length)
    return (chars + 3) // 4 + tokens, unsized


def input_bound(request: ChatRequest) -> tuple[int, int]:
    """An upper bound of what a request sends, in tokens, for a budget's reservation, and how many documents it sends
    by reference: `input_size` with its text at `token_estimate.bound_length` (digits and punctuation at a token
    each, where the estimate has a quarter of one), and the chat format's framing, which the estimate leaves out:
    MESSAGE_FRAMING_TOKENS a message (the system prompt too) and REPLY_FRAMING_TOKENS for the answer's start."""
    tokens, unsized = input_size(request, bound_length)
    messages = len(request.messages) + (request.system is not None)
    return tokens + MESSAGE_FRAMING_TOKENS * messages + REPLY_FRAMING_TOKENS, unsized


def _tool_chars(tool: ToolSpec, length: Callable[[str], int] = weighted_length) -> int:
    """A tool definition's size in the estimate's units, measured once per `length` (`ToolSpec.derived`: an agent's
    tools come with every request, and this runs for each of them up to three times a request)."""
    derived = tool.derived
    if derived is None:
        derived = tool.derived = {}
    name = "chars" if length is weighted_length else "bound"
    chars = derived.get(name)
    if chars is None:
        chars = derived[name] = (
            length(tool.name) + length(tool.description or "") + _json_length(tool.server or tool.input_schema, length)
        )
    return chars


_PAGE = re.compile(rb"/Type\s*/Page(?![A-Za-z])")
_OBJECT_STREAM = re.compile(rb"/Type\s*/ObjStm\b")
_STREAM = re.compile(rb"stream\r?\n")
_INFLATE_LIMIT = 16 << 20


# One request is estimated up to three times (the gateway's reservation, a routing rule, the client's rate limit):
# its PDF's streams are inflated once (a bytes object keeps its hash, so a repeat lookup costs nothing).
@lru_cache(maxsize=8)
def _pdf_pages(data: bytes) -> int:
    """A PDF's page objects (providers bill a PDF per page), also inside compressed object streams, where
    PDF 1.5 and later keep them; only those streams are inflated, never images. 1 when none is found."""
    pages = len(_PAGE.findall(data))
    left = _INFLATE_LIMIT  # a crafted file of many streams that inflate hugely costs no more than this
    for found in _OBJECT_STREAM.finditer(data):
        start = _STREAM.search(data, found.end(), found.end() + 1024)
        if start is None:
            continue
        try:  # an object stream holds a few KB of object text; no more than 1 MiB is inflated from one
            text = zlib.decompressobj().decompress(memoryview(data)[start.end() :], min(1 << 20, left))
        except zlib.error:
            continue
        pages += len(_PAGE.findall(text))
        left -= len(text)
        if left <= 0:
            break
    return pages or 1


def document_tokens(block: DocumentBlock, length: Callable[[str], int] | None = None) -> int:
    """The estimate of a document given whole (not as content blocks): a text document by its length (its text
    measured by `length` where given, e.g. `bound_length`), a PDF by its pages, any other (or one sent by reference,
    whose size cannot be seen) one page. `batch validate` counts a line's documents with it, as a budget reserves
    them."""
    if block.format in _TEXT_DOCUMENTS and block.data is not None:
        if length is not None:
            return (length(block.data.decode("utf-8", "replace")) + 3) // 4
        return (len(block.data) + 3) // 4
    return DOCUMENT_TOKENS * (_pdf_pages(block.data) if block.format == "pdf" and block.data else 1)


def _json_length(value: object, length: Callable[[str], int] = weighted_length) -> int:
    """`value` as JSON, measured by `length` (the estimate's: its length, in UTF-8 bytes)."""
    try:
        text = orjson.dumps(value, default=str)
    except TypeError:  # orjson refuses an integer past 64 bits; the stdlib does not
        text = json.dumps(value, default=str).encode()
    return len(text) if length is weighted_length else length(text.decode())


def _blocks_size(blocks: Sequence[Block], length: Callable[[str], int] = weighted_length) -> tuple[int, int, int]:
    """(text in the estimate's units by `length`, tokens of images and documents, documents sent by reference) in
    some blocks."""
    chars = tokens = unsized = 0
    for block in blocks:
        if isinstance(block, TextBlock):
            chars += length(block.text)
        elif isinstance(block, ImageBlock):
            tokens += IMAGE_TOKENS
        elif isinstance(block, DocumentBlock):
            chars += length(block.context or "")  # read by the model (and billed) though never cited
            if block.content is not None:  # Anthropic's content source: the blocks it is made of
                more_chars, more_tokens, more_unsized = _blocks_size(block.content, length)
                chars += more_chars
                tokens += more_tokens
                unsized += more_unsized
            else:
                tokens += document_tokens(block, None if length is weighted_length else length)
                unsized += block.data is None
        elif isinstance(block, ToolUseBlock):
            chars += length(block.name) + (
                length(block.arguments) if block.arguments else _json_length(block.input, length)
            )
        elif isinstance(block, ToolResultBlock):
            more_chars, more_tokens, more_unsized = _blocks_size(block.content, length)
            chars += more_chars
            tokens += more_tokens
            unsized += more_unsized
        elif isinstance(block, ReasoningBlock):
            chars += length(block.text or block.redacted or "")
        elif isinstance(block, ProviderBlock):
            media = block.data if block.api == "gemini" else {}  # Gemini's audio or video (gemini_fields)
            inline = isinstance(media.get("inline_data"), dict)
            if inline or "file_data" in media:
                tokens += media_tokens(media)
                unsized += not inline
            else:  # a server tool's call or result (web search results): sent as it is
                chars += _json_length(block.data, length)
    return chars, tokens, unsized


def media_tokens(media: dict) -> int:
    """A Gemini audio or video part's tokens: inline, by its size, as Gemini bills it by its length (not its base64
    text); by URI, a size the gateway cannot see, at one document's figure."""
    inline = media.get("inline_data")
    if isinstance(inline, dict):
        return len(inline.get("data") or "") * 3 // 4 // MEDIA_BYTES_PER_TOKEN + 1
    return DOCUMENT_TOKENS


def audio_input_tokens(blocks: Sequence[Block]) -> int:
    """The audio in `estimate_input_tokens` of these blocks (Gemini's audio parts, tool results' too), so a row at the
    estimate (an interrupted or abandoned call's) prices them at the model's audio rate, as its answer would have."""
    audio = 0
    for block in blocks:
        if type(block) is ProviderBlock and block.kind == "audio" and block.api == "gemini":
            audio += media_tokens(block.data)
        elif type(block) is ToolResultBlock:
            audio += audio_input_tokens(block.content)
    return audio


@dataclass(frozen=True)
class Placement:
    """Where a cache point was placed: after 'tools', 'system' or 'message:<index>'; prefix size."""

    after: str
    prefix_tokens: int


def token_counter_for(model: str) -> Callable[[str], int]:
    """The local model counts exactly with its tokenizer; hosted models use the estimate."""
    if model == "local":
        from tokenomy.providers.local import LocalProvider

        return LocalProvider().count_text
    return estimate_tokens


def place_cache_points(
    request: ChatRequest, entry: PriceEntry | None, count_tokens: Callable[[str], int] = estimate_tokens
) -> tuple[ChatRequest, list[Placement]]:
    """Return a copy of `request` with cache points set, and the placements made."""
    if entry is None or not entry.has_cache or not entry.cache_max_checkpoints:
        return request, []  # no prompt caching, or automatic caching (OpenAI): nothing to mark
    minimum = entry.cache_min_tokens or 0
    candidates: list[tuple[str, int]] = []
    total = 0
    if request.tools:
        total += count_tokens(json.dumps([t.to_dict() for t in request.tools], sort_keys=True))
        if not takes_no_tools_cache_point(entry.model):  # (a later point's prefix still holds the tools)
            candidates.append(("tools", total))
    # Claude and Bedrock take one system prompt: a system message in mid-conversation joins it (system_hoisted), so it
    # is part of the system prompt's prefix, and the system prompt's point goes on the last of them (its end is the
    # joined prompt's, where each point stays after its own text), none on a turn of its own.
    hoisted = [m for m in request.messages if m.role == "system"] if entry.provider != "local" else []
    if request.system or hoisted:
        total += count_tokens(request.system or "") + sum(count_tokens(m.text) for m in hoisted)
        candidates.append(("system", total))
    last_user = max((i for i, m in enumerate(request.messages) if m.role == "user"), default=-1)
    for index, message in enumerate(request.messages[:last_user]):
        if hoisted and message.role == "system":
            continue
        # Its text, and what a turn holds besides (images and documents at their fixed figures, tool calls' arguments,
        # reasoning sent back): a turn of screenshots or a PDF is a long prefix, though its words are few.
        content = message.content
        if len(content) == 1 and type(content[0]) is TextBlock:  # most turns: one text
            total += count_tokens(content[0].text)
            candidates.append((f"message:{index}", total))
            continue
        chars, media, _ = _blocks_size(content)
        if count_tokens is estimate_tokens:  # its characters, text and the rest alike
            total += (chars + 3) // 4 + media
        else:  # the local model counts the text with its tokenizer
            text = message.text
            total += count_tokens(text) + media + (max(0, chars - weighted_length(text)) + 3) // 4
        candidates.append((f"message:{index}", total))
    chosen: list[tuple[str, int]] = []
    # Bedrock needs the minimum per checkpoint ("the first after 1,024 tokens, the second after 2,048"): a point
    # less than that past the one before it is ignored, and the longer prefix after it is not cached at all.
    # Anthropic's API needs the minimum of the prefix as a whole.
    spacing = minimum if entry.provider == "aws.bedrock" else 0
    for candidate in sorted(candidates, key=lambda c: c[1], reverse=True):
        if len(chosen) == entry.cache_max_checkpoints:
            break
        if candidate[1] >= minimum and (not chosen or candidate[1] <= chosen[-1][1] - spacing):
            chosen.append(candidate)
    if not chosen:
        return request, []
    names = {name for name, _ in chosen}
    if hoisted and "system" in names:  # the joined prompt's end: after the last system message's text
        last_system = max(i for i, m in enumerate(request.messages) if m.role == "system")
        names.add(f"message:{last_system}")
    messages = [replace(m, cache_point=True) if f"message:{i}" in names else m for i, m in enumerate(request.messages)]
    placed = replace(
        request,
        messages=messages,
        tools_cache_point="tools" in names or request.tools_cache_point,
        system_cache_point=("system" in names and not hoisted) or request.system_cache_point,
    )
    return placed, [Placement(name, size) for name, size in sorted(chosen, key=lambda c: c[1])]


def auto_cache(
    request: ChatRequest, pricing_model: str, catalog: PriceCatalog | None = None, region: str | None = None
) -> tuple[ChatRequest, list[Placement]]:
    """Apply placement using the catalog entry of the model that will be priced."""
    placed = request.system_cache_point or request.system_breaks or request.tools_cache_point
    # An Anthropic caller's top-level cache_control (automatic caching, at the last block) is one too, and takes one
    # of the model's breakpoints: points placed beside it made Claude refuse the request (5 of 4).
    if placed or "cache_control" in request.extra or any(m.cache_point or m.block_points for m in request.messages):
        return request, []  # the caller placed its own points: respect them
    try:
        entry = (catalog or default_catalog()).lookup(pricing_model, region)
    except UnknownModelError:
        return request, []
    return place_cache_points(request, entry, token_counter_for(pricing_model))


__all__ = ["Message", "Placement", "auto_cache", "estimate_tokens", "place_cache_points"]
