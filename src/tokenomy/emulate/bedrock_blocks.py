"""Converse content blocks as Bedrock validates them, rendered as text blocks for the local model.

An image or binary document becomes a placeholder line counted at a fixed token estimate (see
`engine`); text documents are read; reasoning sent back to Claude must carry a signature this process issued (a model
that signs nothing, such as DeepSeek-R1, takes its reasoning back unsigned: the Converse API types the signature
optional).
"""

from __future__ import annotations

import base64
import binascii
import json
import re
from typing import Any

from tokenomy.caching.placement import DOCUMENT_TOKENS, IMAGE_TOKENS
from tokenomy.emulate.bedrock_errors import invalid as _invalid
from tokenomy.emulate.engine import CLAUDE, Block, signature_valid
from tokenomy.providers.converse_inbound import DOCUMENT_FORMATS  # botocore's list, kept once with the gateway's

TTL_SECONDS = {"5m": 300, "1h": 3600}
SUPPORTED_BLOCKS = ("text", "cachePoint", "toolUse", "toolResult", "image", "document", "reasoningContent")
IMAGE_FORMATS = ("png", "jpeg", "gif", "webp")
TEXT_DOCUMENTS = ("csv", "html", "txt", "md")
# Bedrock's DocumentBlock.name: alphanumerics, single whitespace characters, hyphens, parentheses, square brackets.
DOCUMENT_NAME = re.compile(r"[A-Za-z0-9\-()\[\]]+(\s[A-Za-z0-9\-()\[\]]+)*")


def _cache_ttl(block: dict[str, Any], where: str, default_ttl: int) -> int:
    point = block.get("cachePoint")
    if not isinstance(point, dict) or point.get("type") != "default":
        raise _invalid(
            f"1 validation error detected: Value at '{where}.cachePoint.type' failed to satisfy "
            "constraint: Member must satisfy enum value set: [default]"
        )
    ttl = point.get("ttl")
    if ttl is not None and ttl not in TTL_SECONDS:
        raise _invalid(
            f"1 validation error detected: Value '{ttl}' at '{where}.cachePoint.ttl' failed to satisfy "
            "constraint: Member must satisfy enum value set: [5m, 1h]"
        )
    return TTL_SECONDS[ttl] if ttl else default_ttl


def _bytes(source: Any, where: str) -> bytes:
    """A blob sent over JSON (botocore base64-encodes it); S3 locations are not emulated."""
    if not isinstance(source, dict) or "bytes" not in source:
        raise _invalid(f"The source at {where} must set bytes (the emulator does not read s3Location).")
    try:
        return base64.b64decode(source["bytes"], validate=True)
    except (binascii.Error, TypeError, ValueError):
        raise _invalid(f"The bytes at {where}.bytes are not valid base64.") from None


def _media_block(kind: str, value: Any, here: str) -> Block:
    """An image or document: validated, shown to the text model as a placeholder (or its text)."""
    if not isinstance(value, dict):
        raise _invalid(f"The {kind} at {here} must be an object.")
    fmt = value.get("format")
    allowed = IMAGE_FORMATS if kind == "image" else DOCUMENT_FORMATS
    if fmt not in allowed:
        raise _invalid(
            f"1 validation error detected: Value '{fmt}' at '{here}.{kind}.format' failed to satisfy "
            f"constraint: Member must satisfy enum value set: [{', '.join(allowed)}]"
        )
    data = _bytes(value.get("source"), f"{here}.{kind}.source")
    if kind == "image":
        return Block(f"[image: {fmt}, {len(data)} bytes]", extra_tokens=IMAGE_TOKENS)
    name = value.get("name")
    if not isinstance(name, str) or not name.strip():
        raise _invalid(f"The document at {here} needs a name.")
    if len(name) > 200 or not DOCUMENT_NAME.fullmatch(name):
        raise _invalid(
            f"The document name at {here}.document.name can only contain alphanumeric characters, whitespace "
            "characters, hyphens, parentheses, and square brackets. The name can't contain more than one "
            "consecutive whitespace character."
        )
    if fmt in TEXT_DOCUMENTS:
        return Block(f"[document {name}]\n{data.decode('utf-8', 'replace')}")
    return Block(f"[document {name}: {fmt}, {len(data)} bytes]", extra_tokens=DOCUMENT_TOKENS)


def _tool_block(kind: str, value: Any, here: str) -> Block:
    if not isinstance(value, dict) or not isinstance(value.get("toolUseId"), str):
        raise _invalid(f"The {kind} at {here} needs a toolUseId.")
    if kind == "toolUse":
        if not value.get("name") or not isinstance(value.get("input"), (dict, list, str, int, float, bool)):
            raise _invalid(f"The toolUse at {here} needs a name and an input.")
        return Block(json.dumps({kind: value}, sort_keys=True))
    if value.get("status") not in (None, "success", "error"):
        raise _invalid(
            f"1 validation error detected: Value '{value.get('status')}' at '{here}.toolResult.status' "
            "failed to satisfy constraint: Member must satisfy enum value set: [success, error]"
        )
    parts: list[str] = []
    extra = 0
    for k, part in enumerate(value.get("content") or []):
        inner_where = f"{here}.toolResult.content.{k}"
        if not isinstance(part, dict) or len(part) != 1:
            raise _invalid(f"The ToolResultContentBlock at {inner_where} must set exactly one member.")
        ((inner_kind, inner),) = part.items()
        if inner_kind == "text":
            parts.append(str(inner))
        elif inner_kind == "json":
            parts.append(json.dumps(inner, sort_keys=True))
        elif inner_kind in ("image", "document"):
            media = _media_block(inner_kind, inner, inner_where)
            parts.append(media.text)
            extra += media.extra_tokens
        else:
            raise _invalid(f"The block type '{inner_kind}' at {inner_where} is not a tool result content block.")
    return Block(
        json.dumps(
            {kind: {"toolUseId": value["toolUseId"], "status": value.get("status", "success"), "content": parts}},
            sort_keys=True,
        ),
        extra_tokens=extra,
    )


def _reasoning_block(value: Any, here: str, signed: bool) -> Block:
    if not isinstance(value, dict) or len(value) != 1 or not ({"reasoningText", "redactedContent"} & set(value)):
        raise _invalid(f"The reasoningContent at {here} must set exactly one of reasoningText, redactedContent.")
    if "reasoningText" in value:
        text = value["reasoningText"]
        if not isinstance(text, dict) or not isinstance(text.get("text"), str):
            raise _invalid(f"The reasoningText at {here} needs text.")
        if signed and not text.get("signature"):
            raise _invalid(
                f"The reasoningText at {here} has no signature: this model takes back only reasoning it signed; "
                "send it back with its signature, unchanged."
            )
        if signed and not signature_valid(text["text"], text.get("signature"), CLAUDE):
            raise _invalid(f"The reasoningText at {here} has an invalid signature: send reasoning back unchanged.")
    else:
        _bytes({"bytes": value["redactedContent"]}, f"{here}.reasoningContent.redactedContent")
    return Block("")  # prior reasoning is not shown to the model again (as Claude drops earlier thinking)


def content_blocks(
    items: list[Any], where: str, allowed: tuple[str, ...], default_ttl: int, signed: bool = True
) -> list[Block]:
    """Content blocks -> text blocks; a cachePoint marks the block before it. `signed`: the model checks the signature
    of reasoning sent back (Claude), else it takes reasoning as it comes."""
    blocks: list[Block] = []
    for j, item in enumerate(items):
        here = f"{where}.{j}"
        if not isinstance(item, dict) or len(item) != 1:
            raise _invalid(f"The ContentBlock object at {here} must set exactly one member.")
        ((kind, value),) = item.items()
        if kind not in allowed:
            raise _invalid(
                f"The block type '{kind}' at {here} is not supported by the Tokenomy emulator "
                f"(supported: {', '.join(allowed)})."
            )
        if kind == "cachePoint":
            ttl = _cache_ttl(item, here, default_ttl)
            if not blocks:
                raise _invalid(f"A cachePoint at {here} must follow content to cache.")
            blocks[-1].cache_ttl = ttl
        elif kind == "text":
            if not isinstance(value, str) or not value.strip():
                raise _invalid(
                    f"The text field in the ContentBlock object at {here} is blank. "
                    "Add text to the text field, and try again."
                )
            blocks.append(Block(value))
        elif kind in ("image", "document"):
            blocks.append(_media_block(kind, value, here))
        elif kind in ("toolUse", "toolResult"):
            blocks.append(_tool_block(kind, value, here))
        elif kind == "reasoningContent":
            blocks.append(_reasoning_block(value, here, signed))
        else:  # toolSpec: the model reads it as JSON text
            blocks.append(Block(json.dumps({kind: value}, sort_keys=True)))
    return blocks


def forced_tool(tool_config: dict[str, Any]) -> dict[str, Any] | None:
    """The tool a toolChoice forces ({"name", "schema"}), or None for auto; validates the choice."""
    specs = [t["toolSpec"] for t in tool_config["tools"] if isinstance(t, dict) and "toolSpec" in t]
    choice = tool_config.get("toolChoice")
    if choice is None:
        return None
    if not isinstance(choice, dict) or len(choice) != 1 or next(iter(choice)) not in ("auto", "any", "tool"):
        raise _invalid("The toolConfig.toolChoice must set exactly one of auto, any, tool.")
    mode, value = next(iter(choice.items()))
    if mode == "auto":
        return None
    if mode == "any":
        spec = specs[0]
    else:
        name = value.get("name") if isinstance(value, dict) else None
        spec = next((s for s in specs if s.get("name") == name), None)
        if spec is None:
            raise _invalid(f"The tool {name!r} named in toolConfig.toolChoice is not among toolConfig.tools.")
    schema = (spec.get("inputSchema") or {}).get("json") or {"type": "object"}
    return {"name": spec["name"], "schema": schema}
