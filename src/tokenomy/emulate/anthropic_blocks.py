"""Content blocks of the emulated Messages API: validated as the API does, rendered for the local model.

Images and PDFs (inline or by URL) reach the text model as a placeholder line and count at the fixed estimates in
`engine`; a thinking block must carry a signature this process issued (`engine.sign_reasoning`), as the API checks.
"""

from __future__ import annotations

import base64
import binascii
import json
from typing import Any

from tokenomy.caching.placement import DOCUMENT_TOKENS, IMAGE_TOKENS
from tokenomy.emulate.engine import CLAUDE, Block, signature_valid

ERROR_STATUS = {
    "invalid_request_error": 400,
    "authentication_error": 401,
    "not_found_error": 404,
    "rate_limit_error": 429,
    "api_error": 500,
    "overloaded_error": 529,
}
TTL_SECONDS = {"5m": 300, "1h": 3600}
IMAGE_TYPES = ("image/jpeg", "image/png", "image/gif", "image/webp")


class AnthropicError(Exception):
    def __init__(self, kind: str, message: str) -> None:
        super().__init__(message)
        self.kind = kind
        self.message = message
        self.status = ERROR_STATUS[kind]


def invalid(message: str) -> AnthropicError:
    return AnthropicError("invalid_request_error", message)


def cache_ttl(block: dict[str, Any], where: str, default_ttl: int) -> int | None:
    control = block.get("cache_control")
    if control is None:
        return None
    place = f"{where}.cache_control" if where else "cache_control"  # no `where`: the request's own (top level)
    if not isinstance(control, dict) or control.get("type") != "ephemeral":
        raise invalid(f"{place}.type: Input should be 'ephemeral'")
    ttl = control.get("ttl")
    if ttl is not None and ttl not in TTL_SECONDS:
        raise invalid(f"{place}.ttl: Input should be '5m' or '1h'")
    return TTL_SECONDS[ttl] if ttl else default_ttl


def _base64(value: Any, where: str) -> bytes:
    try:
        return base64.b64decode(str(value), validate=True)
    except (binascii.Error, ValueError):
        raise invalid(f"{where}: invalid base64 data") from None


def _image(block: dict[str, Any], here: str) -> Block:
    source = block.get("source")
    if not isinstance(source, dict):
        source = {}
    kind = source.get("type")
    if kind == "base64":
        if source.get("media_type") not in IMAGE_TYPES:
            raise invalid(f"{here}.source.media_type: Input should be {', '.join(IMAGE_TYPES)}")
        data = _base64(source.get("data"), f"{here}.source.data")
        return Block(f"[image: {source['media_type']}, {len(data)} bytes]", extra_tokens=IMAGE_TOKENS)
    if kind == "url":
        if not str(source.get("url", "")).startswith(("http://", "https://")):
            raise invalid(f"{here}.source.url: Input should be an http(s) URL")
        return Block(f"[image: {source['url']}]", extra_tokens=IMAGE_TOKENS)
    raise invalid(f"{here}.source.type: Input should be 'base64' or 'url'")


def _document_fields(block: dict[str, Any], here: str) -> None:
    """A document's title, context and citations, checked as the API checks them."""
    for key in ("title", "context"):
        if block.get(key) is not None and not isinstance(block[key], str):
            raise invalid(f"{here}.{key}: Input should be a valid string")
    citations = block.get("citations")
    if citations is not None and (
        not isinstance(citations, dict)
        or set(citations) - {"enabled"}
        or not isinstance(citations.get("enabled", False), bool)
    ):
        raise invalid(f"{here}.citations: Input should be an object with a boolean `enabled`")


def _content_source(source: dict[str, Any], here: str, title: str) -> Block:
    content = source.get("content")
    if isinstance(content, str):
        content = [{"type": "text", "text": content}]
    if not isinstance(content, list) or not content:
        raise invalid(f"{here}.source.content: Input should be a non-empty string or list of content blocks")
    parts, extra = [], 0
    for k, part in enumerate(content):
        inner = f"{here}.source.content.{k}"
        kind = part.get("type") if isinstance(part, dict) else None
        if kind == "text" and isinstance(part.get("text"), str):
            parts.append(part["text"])
        elif kind == "image":
            media = _image(part, inner)
            parts.append(media.text)
            extra += media.extra_tokens
        else:
            raise invalid(f"{inner}.type: Input should be 'text' or 'image'")
    return Block(f"[document {title}]\n" + "\n".join(parts), extra_tokens=extra)


def _document(block: dict[str, Any], here: str) -> Block:
    source = block.get("source")
    if not isinstance(source, dict):
        source = {}
    kind = source.get("type")
    _document_fields(block, here)
    title = block.get("title") or "document"
    if block.get("context"):  # the model reads it (it is never cited)
        title += f" ({block['context']})"
    if kind == "url":  # a PDF the API fetches: the emulator fetches nothing, it counts one
        if not str(source.get("url", "")).startswith(("http://", "https://")):
            raise invalid(f"{here}.source.url: Input should be an http(s) URL")
        return Block(f"[document {title}: pdf, {source['url']}]", extra_tokens=DOCUMENT_TOKENS)
    if kind == "content":
        return _content_source(source, here, title)
    if kind == "base64":
        if source.get("media_type") != "application/pdf":
            raise invalid(f"{here}.source.media_type: Input should be 'application/pdf'")
        data = _base64(source.get("data"), f"{here}.source.data")
        return Block(f"[document {title}: pdf, {len(data)} bytes]", extra_tokens=DOCUMENT_TOKENS)
    if kind == "text":
        if not isinstance(source.get("data"), str):
            raise invalid(f"{here}.source.data: Field required")
        return Block(f"[document {title}]\n{source['data']}")
    raise invalid(
        f"{here}.source.type: Input should be 'base64', 'text', 'url' or 'content' (the emulator has no Files API)"
    )


def _tool_result(block: dict[str, Any], here: str) -> Block:
    if not isinstance(block.get("tool_use_id"), str):
        raise invalid(f"{here}.tool_use_id: Field required")
    content = block.get("content", "")
    parts: list[str] = []
    extra = 0
    for k, part in enumerate([{"type": "text", "text": content}] if isinstance(content, str) else content or []):
        inner = f"{here}.content.{k}"
        kind = part.get("type") if isinstance(part, dict) else None
        if kind == "text":
            parts.append(str(part.get("text", "")))
        elif kind in ("image", "document"):
            media = _image(part, inner) if kind == "image" else _document(part, inner)
            parts.append(media.text)
            extra += media.extra_tokens
        else:
            raise invalid(f"{inner}.type: Input should be 'text', 'image' or 'document'")
    return Block(
        json.dumps(
            {
                "tool_result": {
                    "tool_use_id": block["tool_use_id"],
                    "is_error": bool(block.get("is_error")),
                    "content": parts,
                }
            },
            sort_keys=True,
        ),
        extra_tokens=extra,
    )


def _block(block: dict[str, Any], here: str) -> Block:
    kind = block.get("type")
    if kind == "text":
        if not isinstance(block.get("text"), str) or not block["text"]:
            raise invalid(f"{here}: text content blocks must be non-empty")
        return Block(block["text"])
    if kind == "image":
        return _image(block, here)
    if kind == "document":
        return _document(block, here)
    if kind == "tool_use":
        if not block.get("id") or not block.get("name") or not isinstance(block.get("input"), dict):
            raise invalid(f"{here}: tool_use blocks need id, name and an input object")
        return Block(json.dumps({k: block[k] for k in ("type", "id", "name", "input")}, sort_keys=True))
    if kind == "tool_result":
        return _tool_result(block, here)
    if kind == "thinking":
        thinking, signature = block.get("thinking"), block.get("signature")
        if not isinstance(thinking, str) or not signature_valid(thinking, signature, CLAUDE):
            raise invalid(f"{here}: Invalid `signature` in `thinking` block")
        return Block("")  # earlier reasoning is not shown to the model again, as the API drops it
    if kind == "redacted_thinking":
        if not isinstance(block.get("data"), str) or not block["data"]:
            raise invalid(f"{here}.data: Field required")
        return Block("")
    if kind == "server_tool_use":  # an earlier answer's web search, sent back
        if not block.get("id") or not block.get("name") or not isinstance(block.get("input"), dict):
            raise invalid(f"{here}: server_tool_use blocks need id, name and an input object")
        return Block(json.dumps({k: block[k] for k in ("type", "id", "name", "input")}, sort_keys=True))
    if kind in ("web_search_tool_result", "web_fetch_tool_result"):
        if not isinstance(block.get("tool_use_id"), str) or "content" not in block:
            raise invalid(f"{here}: {kind} blocks need tool_use_id and content")
        return Block(json.dumps({k: block[k] for k in ("type", "tool_use_id", "content")}, sort_keys=True))
    raise invalid(
        f"{here}.type: '{kind}' is not supported by the Tokenomy emulator (text, image, document, "
        "tool_use, tool_result, thinking, redacted_thinking, server_tool_use, web_search_tool_result and "
        "web_fetch_tool_result are)"
    )


def content_blocks(value: Any, where: str, default_ttl: int) -> list[Block]:
    if isinstance(value, str):
        if not value:
            raise invalid(f"{where}: text content blocks must be non-empty")
        return [Block(value)]
    if not isinstance(value, list) or not value:
        raise invalid(f"{where}: content must be a non-empty string or list of content blocks")
    blocks = []
    for j, block in enumerate(value):
        here = f"{where}.{j}"
        if not isinstance(block, dict):
            raise invalid(f"{here}: Input should be a content block object")
        parsed = _block(block, here)
        parsed.cache_ttl = cache_ttl(block, here, default_ttl)
        blocks.append(parsed)
    return blocks
