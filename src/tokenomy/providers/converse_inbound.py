"""The reverse direction, for the gateway's Bedrock Runtime routes (`/model/{modelId}/converse`, `-stream`): the
content blocks of a Converse request received from a caller (boto3's `bedrock-runtime` client) read into Tokenomy's
content model, with the checks its other fields are read with (`converse_request` reads the whole request into a
ChatRequest; the answer goes back in Converse's shape by `converse_answers`). The block shapes are
`converse_mapping`'s, shared with the Bedrock provider.

Every block field boto3 can send is carried or refused with a ValueError naming it in boto3's terms
(`messages[0].content[1].image.source.s3Location`): nothing is dropped.
- text, image (bytes), document (bytes, format, name), toolUse, toolResult (text, json, image, document parts;
  `status: error`) and reasoningContent (text + signature, or redacted bytes) become content blocks.
- a cachePoint after a content block of a message or the system prompt, or at the end of the tool list, is Tokenomy's
  cache point there (a 1-hour one with `ttl: "1h"`); one elsewhere is refused.
"""

from __future__ import annotations

import binascii
import json
from typing import Any

from tokenomy.messages import (
    CLAUDE_SIGNED,
    ONE_HOUR,
    Block,
    CachePoint,
    DocumentBlock,
    ImageBlock,
    ReasoningBlock,
    TextBlock,
    ToolResultBlock,
    ToolUseBlock,
)
from tokenomy.providers.converse_mapping import MEDIA_TYPES
from tokenomy.providers.reasoning_signers import unsealed_block

BLOCK_KINDS = ("text", "image", "document", "toolUse", "toolResult", "reasoningContent", "cachePoint")
RESULT_KINDS = ("text", "json", "image", "document")
# DocumentBlock.format's values (botocore's model of the API, which botocore itself does not check)
DOCUMENT_FORMATS = ("pdf", "csv", "doc", "docx", "xls", "xlsx", "html", "txt", "md")
# Converse holds redacted reasoning as bytes; another provider's (Anthropic's `data`) is text, which goes out as these
# marked bytes so that a caller sending the answer back returns that text.
REDACTED_TEXT = b"tokenomy:redacted:"
MAX_TOKENS = 1_000_000  # as on the other APIs: a bound no model reaches, so no integer overflows downstream


def only_keys(value: Any, where: str, keys: tuple[str, ...] | set[str]) -> dict[str, Any]:
    """`value` if it is an object holding only `keys`; else a ValueError naming the first other key."""
    if not isinstance(value, dict):
        raise ValueError(f"{where}: expected an object")
    for key in value:
        if key not in keys:
            raise ValueError(f"{where}.{key}: not carried by the gateway; remove it")
    return value


def one_of(value: Any, where: str, kinds: tuple[str, ...]) -> tuple[str, Any]:
    """The one member of a Converse union (a content block is exactly one of its kinds)."""
    if not isinstance(value, dict) or len(value) != 1:
        raise ValueError(f"{where}: expected an object with exactly one of {', '.join(kinds)}")
    kind, item = next(iter(value.items()))
    if kind not in kinds:
        raise ValueError(f"{where}.{kind}: not carried by the gateway (it carries {', '.join(kinds)})")
    return kind, item


def checked_string(value: Any, where: str) -> str:
    if not isinstance(value, str):
        raise ValueError(f"{where}: expected a string")
    return value


def _blob(value: Any, where: str) -> str:
    """A blob's base64 text (boto3 sends blobs base64-encoded in JSON), checked."""
    text = checked_string(value, where)
    try:
        binascii.a2b_base64(text, strict_mode=True)
    except binascii.Error:
        raise ValueError(f"{where}: not valid base64") from None
    return text


def _bytes_text(source: Any, where: str) -> str:
    """The base64 text of a block's `source.bytes`; an s3Location is refused (the gateway cannot read the caller's
    bucket, and a provider other than Bedrock could not either)."""
    return _blob(only_keys(source, f"{where}.source", ("bytes",)).get("bytes"), f"{where}.source.bytes")


def _image(value: Any, where: str) -> ImageBlock:
    image = only_keys(value, where, ("format", "source"))
    fmt = image.get("format")
    if not isinstance(fmt, str) or fmt not in MEDIA_TYPES:  # a list or object is no format (nor hashable)
        raise ValueError(f"{where}.format: expected one of {', '.join(MEDIA_TYPES)}")
    return ImageBlock(media_type=MEDIA_TYPES[fmt], base64=_bytes_text(image.get("source"), where))


def _document(value: Any, where: str) -> DocumentBlock:
    document = only_keys(value, where, ("format", "name", "source"))
    fmt = document.get("format")
    if not isinstance(fmt, str) or fmt not in DOCUMENT_FORMATS:
        raise ValueError(f"{where}.format: expected one of {', '.join(DOCUMENT_FORMATS)}")
    data = binascii.a2b_base64(_bytes_text(document.get("source"), where))
    return DocumentBlock(format=fmt, data=data, name=checked_string(document.get("name", ""), f"{where}.name") or None)


def _tool_result(value: Any, where: str) -> ToolResultBlock:
    result = only_keys(value, where, ("toolUseId", "content", "status"))
    parts = result.get("content") or []
    if not isinstance(parts, list):
        raise ValueError(f"{where}.content: expected a list")
    inner: list[Block] = []
    for i, part in enumerate(parts):
        here = f"{where}.content[{i}]"
        kind, item = one_of(part, here, RESULT_KINDS)
        if kind == "json":  # every provider takes a tool's result as text: the JSON is carried as its text
            inner.append(TextBlock(json.dumps(item, separators=(",", ":"))))
        else:
            inner.append(_block(kind, item, f"{here}.{kind}"))
    status = result.get("status")
    if status not in (None, "success", "error"):
        raise ValueError(f"{where}.status: expected 'success' or 'error'")
    return ToolResultBlock(checked_string(result.get("toolUseId"), f"{where}.toolUseId"), inner, status == "error")


def _reasoning(value: Any, where: str) -> ReasoningBlock:
    """A reasoningContent block, with who signed it (reasoning_signers: Claude's, unless sealed otherwise)."""
    return unsealed_block(_reasoning_as_sent(value, where), CLAUDE_SIGNED)


def _reasoning_as_sent(value: Any, where: str) -> ReasoningBlock:
    kind, item = one_of(value, where, ("reasoningText", "redactedContent"))
    if kind == "redactedContent":  # bytes, kept as the base64 text they came in (ReasoningBlock.redacted)
        blob = _blob(item, f"{where}.redactedContent")
        raw = binascii.a2b_base64(blob)
        if raw.startswith(REDACTED_TEXT):  # opaque text the gateway sent as bytes (answer_body): that text again
            return ReasoningBlock(redacted=raw[len(REDACTED_TEXT) :].decode("utf-8", "replace"))
        return ReasoningBlock(redacted=blob)
    text = only_keys(item, f"{where}.reasoningText", ("text", "signature"))
    signature = text.get("signature")
    return ReasoningBlock(
        checked_string(text.get("text", ""), f"{where}.reasoningText.text"),
        None if signature is None else checked_string(signature, f"{where}.reasoningText.signature"),
    )


def _block(kind: str, item: Any, where: str) -> Block:
    if kind == "text":
        return TextBlock(checked_string(item, where))
    if kind == "image":
        return _image(item, where)
    if kind == "document":
        return _document(item, where)
    if kind == "toolUse":
        use = only_keys(item, where, ("toolUseId", "name", "input"))
        arguments = use.get("input", {})
        if not isinstance(arguments, dict):
            raise ValueError(f"{where}.input: expected an object")
        return ToolUseBlock(
            checked_string(use.get("toolUseId"), f"{where}.toolUseId"),
            checked_string(use.get("name"), f"{where}.name"),
            arguments,
        )
    if kind == "toolResult":
        return _tool_result(item, where)
    return _reasoning(item, where)


def cache_point(item: Any, where: str) -> CachePoint:
    """A cachePoint block: Tokenomy's cache point (True: 5 minutes, or ONE_HOUR). A 1-hour point after a 5-minute
    one is Bedrock's to refuse, not reordered."""
    point = only_keys(item, where, ("type", "ttl"))
    if point.get("type") != "default":
        raise ValueError(f"{where}.type: expected 'default'")
    if point.get("ttl") not in (None, "5m", ONE_HOUR):
        raise ValueError(f"{where}.ttl: expected '5m' or '1h' (got {point['ttl']!r})")
    return ONE_HOUR if point.get("ttl") == ONE_HOUR else True


def content_blocks(
    items: Any, where: str, kinds: tuple[str, ...]
) -> tuple[list[Block], CachePoint, tuple[tuple[int, CachePoint], ...]]:
    """A list of Converse content blocks: the blocks, the cache point it ends with (False: none), and the cachePoints
    between its blocks, each as (the index of the block before it, its point): `Message.block_points`."""
    if not isinstance(items, list) or not items:
        raise ValueError(f"{where}: expected a non-empty list of content blocks")
    blocks: list[Block] = []
    cached: CachePoint = False
    inner: list[tuple[int, CachePoint]] = []
    for i, raw in enumerate(items):
        here = f"{where}[{i}]"
        kind, item = one_of(raw, here, kinds)
        if kind != "cachePoint":
            blocks.append(_block(kind, item, f"{here}.{kind}"))
            continue
        point = cache_point(item, f"{here}.cachePoint")
        if not blocks or (inner and inner[-1][0] == len(blocks) - 1):  # it would cache what the one before caches
            raise ValueError(f"{here}.cachePoint: a cachePoint goes after a content block; remove this one")
        if i == len(items) - 1:
            cached = point
        else:
            inner.append((len(blocks) - 1, point))
    return blocks, cached, tuple(inner)
