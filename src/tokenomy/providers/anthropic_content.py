"""Anthropic Messages content blocks <-> Tokenomy's blocks, in both directions.

`block_to_anthropic` writes a block in the Messages API's shape (for the provider, and for the gateway's
`/v1/messages` answers); `blocks_from_anthropic` reads a request's or an answer's content back, naming the block
(`messages.0.content.1.source`) of a shape it does not know. One table of block shapes serves both: text (with its
`citations`), image (base64 or url source), document (base64 PDF, plain-text, a file id, a PDF's url, or a content
source of text and image blocks; with its title, context and `citations: {"enabled": true}`), tool_use /
tool_result (is_error), thinking / redacted_thinking with signatures, and a server tool's blocks (server_tool_use,
web_search_tool_result, ...) as ProviderBlocks, carried back as they came."""

from __future__ import annotations

import base64
from typing import Any

from tokenomy.messages import (
    CLAUDE_SIGNED,
    Block,
    DocumentBlock,
    ImageBlock,
    ProviderBlock,
    ReasoningBlock,
    TextBlock,
    ToolResultBlock,
    ToolUseBlock,
)
from tokenomy.providers.anthropic_refusals import (
    IMAGE_TYPES,
    UNSIGNED,
    document_text,
    refuse,
    refuse_image,
    refuse_uncarried_fields,
    refuse_url_document,
    unsigned,
)
from tokenomy.providers.block_refusals import FILE_APIS, provider_block_kind
from tokenomy.providers.reasoning_signers import unsealed_block


def block_to_anthropic(block: Block, where: str, model: str = "") -> dict[str, Any]:
    """One block in the Messages API's content-block shape."""
    if isinstance(block, TextBlock):
        if block.citations is not None:
            return {"type": "text", "text": block.text, "citations": block.citations}
        return {"type": "text", "text": block.text}
    if isinstance(block, ProviderBlock):
        if block.api != "anthropic":
            raise refuse(model, where, f"takes no {provider_block_kind(block)}; remove it")
        return dict(block.data)  # a server tool's call or result, as Anthropic sent it (encrypted content included)
    if isinstance(block, ImageBlock):
        refuse_image(block, model, where)
        if block.inline:
            return {
                "type": "image",
                "source": {
                    "type": "base64",
                    "media_type": block.media_type or "image/png",
                    "data": block.base64 if block.base64 is not None else base64.b64encode(block.data or b"").decode(),
                },
            }
        return {"type": "image", "source": {"type": "url", "url": block.url}}
    if isinstance(block, DocumentBlock):
        if block.url is not None:
            refuse_url_document(block, model, where)
            source: dict[str, Any] = {"type": "url", "url": block.url}
        elif block.content is not None:  # a content document: its blocks, in order (the chunks a citation names)
            source = {"type": "content", "content": blocks_to_anthropic(block.content, f"{where}.content", model)}
        elif block.file_id is not None:
            if block.file_api not in (None, "anthropic"):  # another API's id: no file of Anthropic's
                raise refuse(
                    model,
                    f"{where}.source.file_id",
                    f"reads no file id of {FILE_APIS.get(block.file_api)}, which only that API's models read; "
                    "send the file's content instead",
                )
            source = {"type": "file", "file_id": block.file_id}
        elif block.format == "pdf":
            source = {
                "type": "base64",
                "media_type": "application/pdf",
                "data": base64.b64encode(block.data or b"").decode(),
            }
        else:  # a text source, or the 400 for a document Claude cannot read
            source = {"type": "text", "media_type": "text/plain", "data": document_text(block, model, where)}
        return _document_item(block, source)
    if isinstance(block, ToolUseBlock):
        return {"type": "tool_use", "id": block.id, "name": block.name, "input": block.input}
    if isinstance(block, ToolResultBlock):
        item: dict[str, Any] = {
            "type": "tool_result",
            "tool_use_id": block.tool_use_id,
            "content": blocks_to_anthropic(block.content, f"{where}.content", model),
        }
        if block.is_error:
            item["is_error"] = True
        return item
    if isinstance(block, ReasoningBlock):
        if block.redacted is not None:
            return {"type": "redacted_thinking", "data": block.redacted}
        if unsigned(block):
            raise refuse(model, where, UNSIGNED)
        return {"type": "thinking", "thinking": block.text, "signature": block.signature}
    raise refuse(model, where, f"has no content block for {type(block).__name__}")


def _document_item(block: DocumentBlock, source: dict[str, Any]) -> dict[str, Any]:
    """A document block: its source, and the title, context and citations the caller gave it."""
    item: dict[str, Any] = {"type": "document", "source": source}
    if block.name:
        item["title"] = block.name
    if block.context is not None:
        item["context"] = block.context
    if block.citations:
        item["citations"] = {"enabled": True}
    return item


def blocks_to_anthropic(blocks: list[Block], where: str, model: str = "") -> list[dict[str, Any]]:
    return [block_to_anthropic(b, f"{where}[{i}]", model) for i, b in enumerate(blocks)]


def _str(item: dict[str, Any], key: str, where: str, required: bool = True) -> Any:
    value = item.get(key)
    if (value is None and required) or (value is not None and not isinstance(value, str)):
        raise ValueError(f"{where}.{key}: Input should be a string")
    return value


def _source(item: dict[str, Any], where: str) -> dict[str, Any]:
    source = item.get("source")
    if not isinstance(source, dict):
        raise ValueError(f"{where}.source: Input should be an object")
    return source


def _document(item: dict[str, Any], where: str) -> DocumentBlock:
    document = _document_source(_source(item, where), f"{where}.source")
    document.name = _str(item, "title", where, required=False) or None
    document.context = _str(item, "context", where, required=False)
    citations = item.get("citations")
    if citations is not None:
        if not isinstance(citations, dict) or not isinstance(citations.get("enabled", False), bool):
            raise ValueError(f'{where}.citations: Input should be an object such as {{"enabled": true}}')
        for key in citations:
            if key != "enabled":
                raise ValueError(f"{where}.citations.{key}: the gateway cannot carry this field; remove it")
        document.citations = bool(citations.get("enabled"))
    return document


def _document_source(source: dict[str, Any], here: str) -> DocumentBlock:
    kind = source.get("type")
    if kind == "base64":
        if source.get("media_type") != "application/pdf":
            raise ValueError(f"{here}.media_type: base64 documents must be application/pdf")
        return DocumentBlock("pdf", _b64(_str(source, "data", here), f"{here}.data"))
    if kind == "text":
        if source.get("media_type", "text/plain") != "text/plain":  # what a text source is: another would be lost
            raise ValueError(f"{here}.media_type: text documents must be text/plain")
        return DocumentBlock("txt", _str(source, "data", here).encode("utf-8"))
    if kind == "file":  # an id of Anthropic's Files API
        return DocumentBlock("pdf", None, file_id=_str(source, "file_id", here), file_api="anthropic")
    if kind == "url":
        url = _str(source, "url", here)
        if not url:
            raise ValueError(f"{here}.url: a document URL is required")
        return DocumentBlock("pdf", url=url)
    if kind == "content":
        return _content_document(source.get("content"), f"{here}.content")
    raise ValueError(f"{here}.type: expected base64, text, file, url or content (got {kind!r})")


def _content_document(content: Any, where: str) -> DocumentBlock:
    """A content source: text and image blocks, each a chunk a citation may name. Of text alone its text, joined as
    Anthropic joins a cited range (`cited_text`), is also the document's bytes: the same text to any API."""
    if isinstance(content, list):
        for i, part in enumerate(content):
            if isinstance(part, dict) and part.get("cache_control") is not None:  # no place for it in a source
                raise ValueError(
                    f"{where}.{i}.cache_control: a content source's blocks take no cache_control; "
                    "put it on the document block"
                )
    blocks = blocks_from_anthropic(content, where, request=True)
    for i, block in enumerate(blocks):
        if not isinstance(block, (TextBlock, ImageBlock)):
            raise ValueError(f"{where}.{i}.type: a content source holds text and image blocks only")
        if isinstance(block, TextBlock) and block.citations is not None:
            raise ValueError(f"{where}.{i}.citations: a content source's text blocks take no citations; remove them")
    texts = [block.text for block in blocks if isinstance(block, TextBlock)]
    data = "".join(texts).encode("utf-8") if len(texts) == len(blocks) else None
    return DocumentBlock("txt", data, content=blocks)


def _image(item: dict[str, Any], where: str) -> ImageBlock:
    source = _source(item, where)
    here = f"{where}.source"
    if source.get("type") == "base64":
        if source.get("media_type") not in IMAGE_TYPES:
            raise ValueError(f"{here}.media_type: Input should be one of {', '.join(IMAGE_TYPES)}")
        text = _str(source, "data", here)
        return ImageBlock(source["media_type"], _b64(text, f"{here}.data"), base64=text)
    if source.get("type") == "url":
        url = _str(source, "url", here)
        if not url:
            raise ValueError(f"{here}.url: an image URL is required")
        return ImageBlock(url=url)
    raise ValueError(f"{here}.type: expected base64 or url (got {source.get('type')!r})")


def _b64(value: str, where: str) -> bytes:
    if not value:
        raise ValueError(f"{where}: the data is empty")
    try:
        return base64.b64decode(value, validate=True)
    except ValueError:
        raise ValueError(f"{where}: not valid base64") from None


def server_block(kind: str) -> bool:
    """A server tool's call (server_tool_use) or result (web_search_tool_result, web_fetch_tool_result, ...)."""
    return kind == "server_tool_use" or (kind.endswith("_tool_result") and kind != "tool_result")


def blocks_from_anthropic(content: Any, where: str = "content", request: bool = False) -> list[Block]:
    """Messages API content (a string or block dicts, from a response or a request) as Tokenomy blocks.
    Raises ValueError naming the block (`messages.0.content.1.source`) for a shape it does not know; with
    `request`, also for a key the block would lose (Tokenomy's content model has no place for it)."""
    if isinstance(content, str):
        return [TextBlock(content)]
    if not isinstance(content, list):
        raise ValueError(f"{where}: Input should be a string or a list of content blocks")
    blocks: list[Block] = []
    for i, item in enumerate(content):
        here = f"{where}.{i}"
        if not isinstance(item, dict):
            raise ValueError(f"{here}: Input should be a content block object")
        if request:
            refuse_uncarried_fields(item, here)
        kind = item.get("type")
        if kind == "text":
            citations = item.get("citations")
            if citations is not None and not isinstance(citations, list):
                raise ValueError(f"{here}.citations: Input should be a list of citations")
            blocks.append(TextBlock(_str(item, "text", here), citations))
        elif kind == "image":
            blocks.append(_image(item, here))
        elif kind == "document":
            blocks.append(_document(item, here))
        elif kind == "tool_use":
            arguments = item.get("input", {})
            if not isinstance(arguments, dict):
                raise ValueError(f"{here}.input: Input should be an object")
            blocks.append(ToolUseBlock(_str(item, "id", here), _str(item, "name", here), dict(arguments)))
        elif kind == "tool_result":
            inner = item.get("content", [])
            if not isinstance(inner, (str, list)):
                raise ValueError(f"{here}.content: Input should be a string or a list of content blocks")
            if item.get("is_error") is not None and not isinstance(item["is_error"], bool):
                raise ValueError(f"{here}.is_error: Input should be a boolean")  # bool("false") would be True
            blocks.append(
                ToolResultBlock(
                    _str(item, "tool_use_id", here),
                    blocks_from_anthropic(inner, f"{here}.content", request),
                    bool(item.get("is_error")),
                )
            )
        elif kind == "thinking":
            block = ReasoningBlock(_str(item, "thinking", here), _str(item, "signature", here, required=False))
            blocks.append(unsealed_block(block, CLAUDE_SIGNED) if request else block)  # who signed it: sealed
        elif kind == "redacted_thinking":
            block = ReasoningBlock(redacted=_str(item, "data", here))
            blocks.append(unsealed_block(block, CLAUDE_SIGNED) if request else block)
        elif isinstance(kind, str) and (not request or server_block(kind)):
            # An answer is never refused for a block Tokenomy cannot model; a request's server-tool blocks (an earlier
            # answer's, sent back) go back as they came.
            blocks.append(ProviderBlock("anthropic", dict(item)))
        else:
            raise ValueError(
                f"{here}.type: {kind!r} is not a content block Tokenomy carries (text, image, "
                "document, tool_use, tool_result, thinking, redacted_thinking, and server tools' server_tool_use "
                "and *_tool_result blocks)"
            )
    return blocks
