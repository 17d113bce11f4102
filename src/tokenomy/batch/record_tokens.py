"""A batch record's prompt tokens by the estimate, and what its line sends beyond its text: images and documents
(counted as the gateway counts them), tools and tool calls (as JSON), audio and video (counted nowhere: billed by a
length no line gives). `batch validate` prices a file by them, and the worst case and the output cap a record is sent
with (`output_caps`) read its prompt from them."""

from __future__ import annotations

import binascii
import json
from typing import Any

from tokenomy.batch.formats import BatchRecord
from tokenomy.caching.placement import IMAGE_TOKENS, document_tokens
from tokenomy.messages import DocumentBlock
from tokenomy.providers.openai_wire import DOCUMENT_FORMATS
from tokenomy.token_estimate import estimate_text_tokens


def estimate_tokens(text: str) -> int:
    """Cheap token estimate (chars/4, a CJK character ~1 token: token_estimate; min 1): no model load needed for a
    1,000-line file."""
    return max(1, estimate_text_tokens(text))


# An image part as each form a record can take writes it: OpenAI's chat (image_url) and Responses (input_image), the
# Messages API's (image), Converse's ({"image": {"format", "source"}}).
_IMAGE_TYPES = ("image_url", "input_image", "image")


def record_estimate(rec: BatchRecord) -> int:
    """A record's prompt tokens by the estimate: its text, its tools and tool calls (`unseen_input`), and its images
    and documents as the gateway counts them."""
    unseen = unseen_input(rec.raw)
    tokens = estimate_tokens(rec.text()) + (estimate_text_tokens(unseen) if unseen else 0)
    tokens += IMAGE_TOKENS * images_in(rec.raw)
    return tokens + sum(document_tokens(document) for document in documents_in(rec.raw))


def images_in(value: Any) -> int:
    """The image parts anywhere in a record's line (its messages and system, in any form): each is estimated at the
    gateway's figure (`caching.placement.IMAGE_TOKENS`), as a budget reserves it, never left out as 0 tokens."""
    if isinstance(value, list):
        return sum(images_in(item) for item in value)
    if not isinstance(value, dict):
        return 0
    image = value.get("image")
    if value.get("type") in _IMAGE_TYPES or (isinstance(image, dict) and ("source" in image or "format" in image)):
        return 1
    return sum(images_in(item) for item in value.values())


def _decoded(text: Any) -> bytes | None:
    """A document's base64 text as bytes; None when it is not base64 (the provider refuses it; a page's estimate)."""
    try:
        return binascii.a2b_base64(text, strict_mode=True) if isinstance(text, str) else None
    except binascii.Error:
        return None


def _document(part: dict[str, Any]) -> DocumentBlock | None:
    """The document a content part sends, as the gateway holds one, in each form a line takes: OpenAI's file part (a
    data URL, or a file id), the Messages API's document (base64 PDF, plain text, content blocks, or a URL or file id
    the provider reads), Converse's {"document": {format, source}} (bytes or text, or an s3Location). None for any
    other part. A document whose bytes the line does not hold is one page, as the gateway estimates it."""
    if part.get("type") == "file" and isinstance(part.get("file"), dict):
        head, _, payload = str(part["file"].get("file_data") or "").partition(",")
        media_type = head.removeprefix("data:").partition(";")[0]
        return DocumentBlock(format=DOCUMENT_FORMATS.get(media_type, "pdf"), data=_decoded(payload) if head else None)
    source = part.get("source")
    if part.get("type") == "document" and isinstance(source, dict):
        if source.get("type") == "text" and isinstance(source.get("data"), str):
            return DocumentBlock(format="txt", data=source["data"].encode())
        blocks = source.get("content")
        if source.get("type") == "content" and isinstance(blocks, list):  # its text (an image in it: images_in's)
            texts = [b["text"] for b in blocks if isinstance(b, dict) and isinstance(b.get("text"), str)]
            return DocumentBlock(format="txt", data="".join(texts).encode())
        return DocumentBlock(format="pdf", data=_decoded(source.get("data")))
    document = part.get("document")
    if isinstance(document, dict) and isinstance(document.get("source"), dict):
        fmt, source = document.get("format"), document["source"]
        text = source.get("text")
        data = text.encode() if isinstance(text, str) else _decoded(source.get("bytes"))
        return DocumentBlock(format=fmt if isinstance(fmt, str) else "pdf", data=data)
    return None


def documents_in(value: Any) -> list[DocumentBlock]:
    """The documents anywhere in a record's line (in any form): each is estimated as the gateway reserves it
    (`caching.placement.document_tokens`: a PDF by its pages), never left out as 0 tokens."""
    if isinstance(value, list):
        return [document for item in value for document in documents_in(item)]
    if not isinstance(value, dict):
        return []
    document = _document(value)
    return [document] if document else [d for item in value.values() for d in documents_in(item)]


# A request body's fields billed as input that its messages' text does not show: the tools' definitions (OpenAI's and
# Claude's `tools`, Converse's `toolConfig`, OpenAI's older `functions`), the tool choice and a response format's JSON
# schema; and in its messages, earlier turns' tool calls and results (OpenAI's `tool_calls`, Claude's tool_use and
# tool_result blocks, Converse's toolUse and toolResult). Counted as their JSON, as the gateway counts a call's tools.
_UNSEEN_FIELDS = ("tools", "toolConfig", "functions", "tool_choice", "response_format")
_TOOL_PARTS = ("tool_use", "tool_result")
_TOOL_BLOCKS = ("toolUse", "toolResult")


def unseen_input(raw: dict[str, Any]) -> str:
    """The JSON text of what a record's body sends as input beyond its messages' text (`_UNSEEN_FIELDS`, tool calls
    and results); empty for a plain record or a body without any. A line's tools are billed whatever the line says,
    and an agent's often cost more than its words."""
    body = raw.get("body", raw.get("modelInput"))
    if not isinstance(body, dict):
        return ""
    unseen: list[Any] = [body[key] for key in _UNSEEN_FIELDS if body.get(key)]
    for message in body.get("messages") or []:
        if not isinstance(message, dict):
            continue
        if message.get("tool_calls"):
            unseen.append(message["tool_calls"])
        content = message.get("content")
        if isinstance(content, list):
            unseen += [
                part
                for part in content
                if isinstance(part, dict) and (part.get("type") in _TOOL_PARTS or any(k in part for k in _TOOL_BLOCKS))
            ]
    return json.dumps(unseen, ensure_ascii=False) if unseen else ""


def sends_tools(raw: dict[str, Any]) -> bool:
    """Whether a record's body defines tools (on Claude, a call with tools is billed a tool use system prompt too)."""
    body = raw.get("body", raw.get("modelInput"))
    return isinstance(body, dict) and any(body.get(key) for key in ("tools", "toolConfig", "functions"))


def sends_media(value: Any) -> bool:
    """Whether a record's line sends audio or video (OpenAI's input_audio part; Converse's and Nova's video and audio
    blocks). Those are billed by their length, which the line does not say, at rates of each model's own: no estimate
    here counts them, and validate names the record instead of counting them as 0 tokens without a word."""
    if isinstance(value, list):
        return any(sends_media(item) for item in value)
    if not isinstance(value, dict):
        return False
    if value.get("type") == "input_audio" or any(
        isinstance(value.get(kind), dict) and ("source" in value[kind] or "format" in value[kind])
        for kind in ("audio", "video")
    ):
        return True
    return any(sends_media(item) for item in value.values())
