"""Parse batch JSONL in Bedrock, OpenAI-batch or plain-record form into one record shape."""

from __future__ import annotations

import json
import math
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from tokenomy.batch.native_bodies import prompt_turns, titan_config
from tokenomy.errors import UsageError, as_written

# The three line forms, as named in messages so a user sees which one a line was read as.
FORMS = {
    "bedrock": "a Bedrock batch line (recordId, modelInput)",
    "openai": "an OpenAI batch line (custom_id, method, url, body)",
    "plain": "a plain record (id, prompt or messages)",
}


# Every key a plain record may hold; each backend sends each of them in its provider's own field. Any other was ignored
# without a word, so a record went out without the `model`, `top_p` or misspelt `max_token` its line asked for.
PLAIN_KEYS = ("id", "prompt", "messages", "system", "max_tokens", "temperature")


@dataclass
class BatchRecord:
    """One good input line, normalised: id, messages, system, max_tokens, temperature, and its source form."""

    id: str
    line: int
    fmt: str  # bedrock | openai | plain
    messages: list[dict[str, str]]
    system: str | None = None
    max_tokens: int | None = None
    raw: dict[str, Any] = field(default_factory=dict)
    temperature: float | None = None  # None: the provider's default

    def system_and_turns(self) -> tuple[str | None, list[dict[str, str]]]:
        """System text (the record's own, then any system-role messages) and the user/assistant turns."""
        system = "\n".join(filter(None, [self.system] + [m["content"] for m in self.messages if m["role"] == "system"]))
        return system or None, [m for m in self.messages if m["role"] != "system"]

    def text(self) -> str:
        """All prompt text, for token estimates."""
        return (self.system or "") + "\n".join(m["content"] for m in self.messages)


@dataclass
class BadLine:
    """One rejected line: where, which field, why."""

    line: int
    field: str
    reason: str

    def to_json(self) -> dict[str, Any]:
        return {"line": self.line, "field": self.field, "reason": self.reason}


def _content_text(content: Any, where: str) -> str:
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


def _messages(raw: Any, where: str, form: str) -> list[dict[str, str]]:
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
        out.append({"role": role, "content": _content_text(content, f"{where}[{i}].content")})
    return out


def _non_text(part: Any) -> bool:
    """A content part that asks something without text: an image, a document, an audio clip, a tool call or result
    (OpenAI's typed parts; Bedrock's Claude blocks, and Converse's {"image": ...})."""
    return isinstance(part, dict) and (part.get("type", "text") != "text" or "text" not in part) and bool(part)


def _asks(rec: BatchRecord) -> bool:
    """Whether a record asks something: text in a message, or a part that is not text in an OpenAI or Bedrock line's
    messages (a question that is only an image, under a system prompt, is one)."""
    if any(m["content"].strip() for m in rec.messages):
        return True
    body = rec.raw.get({"openai": "body", "bedrock": "modelInput"}.get(rec.fmt, ""))
    messages = body.get("messages") if isinstance(body, dict) else None
    return any(_non_text(part) for m in messages or [] if isinstance(m.get("content"), list) for part in m["content"])


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


def _plain_text(content: Any, where: str) -> str:
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


def _plain_messages(raw: Any) -> list[dict[str, str]]:
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
        out.append({"role": m["role"], "content": _plain_text(m.get("content", ""), f"{where}.content")})
    return out


def _system_text(raw: Any) -> str | None:
    return None if raw is None else _plain_text(raw, "system")


def _temperature(value: Any, field_name: str) -> float | None:
    """A temperature as written (0 included), or None when absent; anything but a finite number 0 or more is refused
    here, where the line can be named, not sent for a provider to fail the record."""
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value) or value < 0:
        raise ValueError(f"{field_name}: must be a number 0 or more, e.g. 0.7, not {as_written(value)}")
    return value


def _first_cap(places: tuple[tuple[str, dict[str, Any], str], ...]) -> int | None:
    """The cap (max_tokens) a line gives, from the first of its places (field name, object, key) that holds one (null
    is none, the provider's default), or None; one that is not a whole number 1 or more is refused naming its place."""
    for field_name, holder, key in places:
        value = holder.get(key)
        if value is not None:
            if not isinstance(value, int) or isinstance(value, bool) or value < 1:
                raise ValueError(f"{field_name}: must be a positive integer, not {as_written(value)}")
            return value
    return None


def _bedrock_turns(body: dict[str, Any]) -> list[dict[str, str]]:
    """A Bedrock body's turns: its messages, or a prompt body's text as one user turn (native_bodies.py)."""
    turns = prompt_turns(body)
    return _messages(body.get("messages"), "modelInput.messages", "bedrock") if turns is None else turns


def line_form(obj: dict[str, Any]) -> str:
    """bedrock | openai | plain, from the keys that only one form has."""
    if "recordId" in obj or "modelInput" in obj:
        return "bedrock"
    if any(key in obj for key in ("custom_id", "body", "url", "method")):
        return "openai"
    return "plain"


def _record_id(rid: Any, field_name: str, form: str = "plain", obj: dict[str, Any] | None = None) -> str:
    """Ids are strings or whole numbers; an object, list or true would become an id nobody can match."""
    if rid in (None, ""):
        hint = f"; rename id to {field_name}" if obj and field_name != "id" and "id" in obj else ""
        raise ValueError(f"{field_name}: missing {field_name} (read as {FORMS[form]}){hint}")
    if isinstance(rid, bool) or not isinstance(rid, (str, int)):
        raise ValueError(f"{field_name}: id must be a string or an integer, not {as_written(rid)}")
    return str(rid)


# The keys of an OpenAI or Bedrock line (each provider's documented input line has no other), and where a parameter
# put beside them belongs. The line sent is built from these keys, so any other would be dropped unsaid.
LINE_KEYS = {"openai": ("custom_id", "method", "url", "body"), "bedrock": ("recordId", "modelInput")}
PARAMETERS_GO_IN = {"openai": "move a request parameter into body", "bedrock": "move a model parameter into modelInput"}


def _refuse_other_line_keys(obj: dict[str, Any], form: str) -> None:
    unknown = next((key for key in obj if key not in LINE_KEYS[form]), None)
    if unknown is not None:
        raise ValueError(
            f"{unknown}: not a key of {FORMS[form]}, so it would not be sent; remove it, or {PARAMETERS_GO_IN[form]}"
        )


def parse_obj(obj: dict[str, Any], line: int) -> BatchRecord:
    """Normalise one decoded JSON object; raises ValueError('field: reason')."""
    form = line_form(obj)
    if form == "bedrock":
        rid, body = _record_id(obj.get("recordId"), "recordId", form, obj), obj.get("modelInput")
        _refuse_other_line_keys(obj, form)
        if not isinstance(body, dict):
            raise ValueError("modelInput: body not valid for the model (must be an object)")
        inference = body.get("inferenceConfig") or {}
        if not isinstance(inference, dict):
            raise ValueError(f"modelInput.inferenceConfig: must be an object, not {as_written(inference)}")
        titan = titan_config(body)
        # Claude's (and Mistral's) body, then Converse's inferenceConfig, then Nova's (its cap was lost when the body
        # was rebuilt), then Llama's and Titan's (a body sent as written was counted, and estimated, at the model's
        # whole output without it).
        max_tokens = _first_cap(
            (
                ("modelInput.max_tokens", body, "max_tokens"),
                ("modelInput.inferenceConfig.maxTokens", inference, "maxTokens"),
                ("modelInput.inferenceConfig.max_new_tokens", inference, "max_new_tokens"),
                ("modelInput.max_gen_len", body, "max_gen_len"),
                ("modelInput.textGenerationConfig.maxTokenCount", titan, "maxTokenCount"),
            )
        )
        system = body.get("system")  # a string (Claude's) or a list of text blocks (Claude's, Nova's, Converse's)
        system = None if system is None else _content_text(system, "modelInput.system")
        # Native bodies' own (Titan's in its textGenerationConfig), then Converse's; a bad one is named where the line
        # has it.
        places = (("modelInput", body), ("modelInput.textGenerationConfig", titan))
        where, held = next(
            ((at, holder) for at, holder in places if "temperature" in holder),
            ("modelInput.inferenceConfig", inference),
        )
        temperature = _temperature(held.get("temperature"), f"{where}.temperature")
        return BatchRecord(rid, line, "bedrock", _bedrock_turns(body), system, max_tokens, obj, temperature)
    if form == "openai":
        rid, body = _record_id(obj.get("custom_id"), "custom_id", form, obj), obj.get("body")
        _refuse_other_line_keys(obj, form)
        if obj.get("method", "POST") != "POST" or not str(obj.get("url", "")).endswith("/chat/completions"):
            raise ValueError("url: only POST /v1/chat/completions is supported")
        if not isinstance(body, dict):
            raise ValueError("body: body not valid for the model (must be an object)")
        msgs = _messages(body.get("messages"), "body.messages", form)
        system = "\n".join(m["content"] for m in msgs if m["role"] == "system") or None
        msgs = [m for m in msgs if m["role"] != "system"]
        max_tokens = _first_cap(
            (("body.max_tokens", body, "max_tokens"), ("body.max_completion_tokens", body, "max_completion_tokens"))
        )
        temperature = _temperature(body.get("temperature"), "body.temperature")
        return BatchRecord(rid, line, "openai", msgs, system, max_tokens, obj, temperature)
    rid = _record_id(obj.get("id"), "id")
    unknown = next((key for key in obj if key not in PLAIN_KEYS), None)
    if unknown is not None:
        raise ValueError(
            f"{unknown}: not a key of a plain record (id, prompt or messages, system, max_tokens, temperature); remove "
            f"it, or write the line as {FORMS['openai']} to send other parameters"
        )
    if "messages" in obj and "prompt" in obj:
        raise ValueError("prompt: both prompt and messages given (only messages would be sent); keep one")
    if "messages" in obj:
        msgs = _plain_messages(obj["messages"])
    else:
        prompt = obj.get("prompt")
        if prompt is None:
            raise ValueError("prompt: missing prompt or messages")
        if not isinstance(prompt, str):  # `"prompt": 5` read "missing prompt", though it is there
            raise ValueError(f"prompt: {prompt!r} is not text; write the prompt as a JSON string")
        msgs = [{"role": "user", "content": prompt}]
    temperature = _temperature(obj.get("temperature"), "temperature")
    max_tokens = _first_cap((("max_tokens", obj, "max_tokens"),))
    return BatchRecord(rid, line, "plain", msgs, _system_text(obj.get("system")), max_tokens, obj, temperature)


def read_records(lines: Iterable[str | bytes]) -> tuple[list[BatchRecord], list[BadLine]]:
    """Parse every line; bad lines are reported, never stop the good ones."""
    good: list[BatchRecord] = []
    bad: list[BadLine] = []
    seen: set[str] = set()
    for number, text in enumerate(lines, start=1):
        if isinstance(text, bytes):
            try:
                text = text.decode("utf-8-sig" if number == 1 else "utf-8")
            except UnicodeDecodeError as exc:
                bad.append(
                    BadLine(number, "-", f"not UTF-8 text (byte {exc.start + 1} of the line); save the file as UTF-8")
                )
                continue
        if not text.strip():
            continue
        try:
            obj = json.loads(text.strip())
        except json.JSONDecodeError as exc:
            bad.append(BadLine(number, "-", f"invalid JSON: {exc.msg} at column {exc.colno}"))
            continue
        if not isinstance(obj, dict):
            bad.append(BadLine(number, "-", "invalid JSON: line must be an object"))
            continue
        try:
            rec = parse_obj(obj, number)
        except ValueError as exc:
            fld, _, reason = str(exc).partition(": ")
            bad.append(BadLine(number, fld, reason or str(exc)))
            continue
        if not _asks(rec):
            bad.append(BadLine(number, "prompt", "empty prompt"))
            continue
        if rec.id in seen:
            bad.append(BadLine(number, "id", f"duplicate id {rec.id!r}"))
            continue
        seen.add(rec.id)
        good.append(rec)
    return good, bad


def read_file(path: str | Path) -> tuple[list[BatchRecord], list[BadLine]]:
    """Parse a JSONL file (as bytes, so one line that is not UTF-8 is reported without losing the rest).

    A whole file in another shape (CSV, a JSON array, one pretty-printed object) is named as such, once,
    instead of as one JSON error per line."""
    check_jsonl_shape(path)
    with open(path, "rb") as fh:
        return read_records(fh)


def check_jsonl_shape(path: str | Path) -> None:
    """Raise UsageError naming the file's shape when it is plainly not JSONL."""
    expected = 'expected JSONL, one JSON object per line, e.g. {"id": "1", "prompt": "..."}'
    with open(path, "rb") as fh:
        start = fh.read(4)
    # UTF-16/32 (a Windows editor's "Unicode"): a BOM, or NUL bytes between ASCII characters. Read as UTF-8 its
    # first line looks like anything (it was called CSV); name the encoding and the fix instead.
    nul_pattern = len(start) == 4 and (start[1] == start[3] == 0 or start[0] == start[2] == 0)
    if start.startswith((b"\xff\xfe", b"\xfe\xff")) or nul_pattern:
        width = "UTF-32" if start.startswith((b"\xff\xfe\x00\x00", b"\x00\x00\xfe\xff")) else "UTF-16"
        raise UsageError(f"{path}: the file is {width}; save it as UTF-8 ({expected})")
    with open(path, "rb") as fh:
        raw = next((line for line in fh if line.strip()), b"")
    try:
        first = raw.decode("utf-8-sig").strip()
    except UnicodeDecodeError:
        # Not text (a binary file, another encoding): a comma among its bytes called it CSV, quoting the bytes.
        # Each line is then reported as not UTF-8, with the fix.
        return
    if not first:
        return
    try:
        head = json.loads(first)
    except json.JSONDecodeError:
        head = None
    else:
        if isinstance(head, list) and all(isinstance(item, dict) for item in head):
            raise UsageError(
                f"{path}: the first line is a JSON array of {len(head)} object(s); {expected} "
                f"(convert with: jq -c '.[]' {path} > records.jsonl)"
            )
        return  # the first line is JSON on its own: JSONL, whatever the later lines hold
    if first[0] in "[{":
        try:
            whole = json.loads(Path(path).read_text(encoding="utf-8-sig"))
        except (json.JSONDecodeError, UnicodeDecodeError):
            whole = None
        if isinstance(whole, list):
            raise UsageError(
                f"{path}: this is a JSON array of {len(whole)} item(s); {expected} "
                f"(convert with: jq -c '.[]' {path} > records.jsonl)"
            )
        if isinstance(whole, dict):
            raise UsageError(
                f"{path}: this is one JSON object spread over several lines; {expected} "
                f"(convert with: jq -c . {path} > records.jsonl)"
            )
        if first[0] == "[":
            raise UsageError(f"{path}: starts with '[' like a JSON array; {expected}")
        return
    if "," in first or "\t" in first:
        raise UsageError(f"{path}: this is CSV (first line {first[:60]!r}); {expected}")
