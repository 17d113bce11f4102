"""A batch line's messages and system prompt read as role and text, each form by its own rules: an OpenAI or Bedrock
line's content parts give their text (other parts are sent as written, or named by a rebuild), a plain record's may
hold text parts only and any other key or part is refused by name.

Apart from formats.py (which reads a line's other fields and makes its record) as the one place a line's message
content is judged: conversion.py asks it again (first_non_text_part) when it rebuilds a line for another provider.
"""

from __future__ import annotations

from typing import Any

from tokenomy.batch.line_forms import FORMS
from tokenomy.errors import as_written


def content_text(content: Any, where: str) -> str:
    """The text of an OpenAI or Bedrock line's content (or Bedrock system): a string, or a list of parts whose text
    each carries as {text} or {type, text} (other parts carry none: the line is sent as written, or a rebuild refuses
    them). A `text` that is not a string is named, not made into text."""
    if isinstance(content, str):
        return content
    if not isinstance(content, list):
        raise ValueError(f"{where}: content must be a string or a list of text blocks")
    texts = []
    for j, part in enumerate(content):
        if isinstance(part, dict) and "text" in part:
            if not isinstance(part["text"], str):
                raise ValueError(f"{where}[{j}].text: must be text, not {as_written(part['text'])}")
            texts.append(part["text"])
    return "".join(texts)


# The roles of an OpenAI chat message (a `developer` message is the system prompt of newer models; `tool` and
# `function` messages answer a call): such a line goes to OpenAI as written; a rebuild names those it cannot send.
OPENAI_ROLES = ("user", "assistant", "system", "developer", "tool", "function")


def read_messages(raw: Any, where: str, form: str) -> list[dict[str, str]]:
    """An OpenAI or Bedrock line's messages (at `where`) as role and text, a `developer` message read as system."""
    if not isinstance(raw, list) or not raw:
        raise ValueError(f"{where}: messages must be a non-empty list")
    roles = OPENAI_ROLES if form == "openai" else ("user", "assistant", "system")
    out = []
    for i, m in enumerate(raw):
        if not isinstance(m, dict):
            raise ValueError(f"{where}[{i}]: a message must be an object with role and content")
        if m.get("role") not in roles:
            named = f"{', '.join(roles[:-1])} or {roles[-1]}"
            raise ValueError(f"{where}[{i}].role: {m.get('role')!r} is not a message role; use {named}")
        content = m.get("content", "")
        if content is None and form == "openai":  # an assistant turn that only calls tools
            content = ""
        role = "system" if m["role"] == "developer" else m["role"]  # as OpenAI reads it, and a rebuild sends it
        out.append({"role": role, "content": content_text(content, f"{where}[{i}].content")})
    return out


def is_non_text_part(part: Any) -> bool:
    """A content part that asks something without text: an image, a document, an audio clip, a tool call or result
    (OpenAI's typed parts; Bedrock's Claude blocks, and Converse's {"image": ...})."""
    return isinstance(part, dict) and (part.get("type", "text") != "text" or "text" not in part) and bool(part)


# A plain record sends each message as its role and its text, nothing else: any other key or part is refused here, by
# name, rather than left out of the body (an OpenAI or Bedrock line is sent to its own provider as written instead).
MESSAGE_KEYS = ("role", "content")
TEXT_PART_KEYS = ("type", "text")
TO_SEND_IT = f"write the line as {FORMS['openai']} for an OpenAI batch"


# Why a content part is not a text part (first_non_text_part): no object, another `type`, another key, or (where the
# text is required) a `text` that is not a string.
NOT_AN_OBJECT, OTHER_TYPE, OTHER_KEY, NOT_A_STRING = "not an object", "other type", "other key", "text not a string"


def first_non_text_part(
    content: list[Any], at: str, keys: tuple[str, ...] = TEXT_PART_KEYS, text_required: bool = False
) -> tuple[str, str, Any] | None:
    """The first part of a content list (at `at`) that is not a text part holding only `keys`, as (field, why, the
    part), `why` one of the four above; None when every part is one. A plain record refuses such a part and a
    rebuild (conversion.py) would drop it, each in its own words."""
    for j, part in enumerate(content):
        where = f"{at}[{j}]"
        if not isinstance(part, dict):
            return where, NOT_AN_OBJECT, part
        if part.get("type", "text") != "text":
            return f"{where}.type", OTHER_TYPE, part
        unknown = next((key for key in part if key not in keys), None)
        if unknown is not None:
            return f"{where}.{unknown}", OTHER_KEY, part
        if text_required and not isinstance(part.get("text"), str):
            return f"{where}.text", NOT_A_STRING, part
    return None


def plain_text(content: Any, where: str) -> str:
    """A plain record's content (a message's or the system's): a string, or a list of text parts, joined."""
    if isinstance(content, str):
        return content
    if not isinstance(content, list):
        raise ValueError(f"{where}: content must be a string or a list of text blocks")
    found = first_non_text_part(content, where, text_required=True)
    if found is None:
        return "".join(part["text"] for part in content)
    at, why, part = found
    if why == NOT_AN_OBJECT:
        raise ValueError(f'{at}: a content part must be an object like {{"type": "text", "text": "..."}}')
    if why == OTHER_TYPE:
        raise ValueError(
            f"{at}: {part['type']!r} parts are not sent from a plain record (text parts only); remove it, or "
            f"{TO_SEND_IT}"
        )
    if why == OTHER_KEY:
        raise ValueError(f"{at}: not a key of a plain record's text part (type, text); remove it")
    raise ValueError(f"{at}: must be text, not {as_written(part.get('text'))}")


def plain_messages(raw: Any) -> list[dict[str, str]]:
    """A plain record's messages, each only a role and its text; anything else names the message and key."""
    if not isinstance(raw, list) or not raw:
        raise ValueError("messages: messages must be a non-empty list")
    out = []
    for i, m in enumerate(raw):
        where = f"messages[{i}]"
        if not isinstance(m, dict):
            raise ValueError(f"{where}: a message must be an object with role and content")
        if m.get("role") not in ("user", "assistant", "system"):
            raise ValueError(
                f"{where}.role: {m.get('role')!r} is not a role of a plain record's message; use user, assistant or "
                "system"
            )
        unknown = next((key for key in m if key not in MESSAGE_KEYS), None)
        if unknown is not None:
            raise ValueError(
                f"{where}.{unknown}: not a key of a plain record's message (role, content); remove it, or {TO_SEND_IT}"
            )
        out.append({"role": m["role"], "content": plain_text(m.get("content", ""), f"{where}.content")})
    return out


def plain_system(raw: Any) -> str | None:
    """A plain record's system prompt as text, or None when it has none."""
    return None if raw is None else plain_text(raw, "system")
