"""Parse batch JSONL in Bedrock, OpenAI-batch or plain-record form into one record shape.

A line's form and the keys each form holds are line_forms.py's, its messages and system prompt are read by
line_messages.py, and a file plainly not JSONL is named whole by jsonl_shape.py before its lines are read.
"""

from __future__ import annotations

import json
import math
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from tokenomy.batch.jsonl_shape import check_jsonl_shape
from tokenomy.batch.line_forms import FORMS, PLAIN_KEYS, line_form, refuse_other_line_keys, refuse_other_providers_lines
from tokenomy.batch.line_messages import content_text, is_non_text_part, plain_messages, plain_system, read_messages
from tokenomy.batch.native_bodies import prompt_turns, titan_config
from tokenomy.errors import as_written


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


def _asks(rec: BatchRecord) -> bool:
    """Whether a record asks something: text in a message, or a part that is not text in an OpenAI or Bedrock line's
    messages (a question that is only an image, under a system prompt, is one)."""
    if any(m["content"].strip() for m in rec.messages):
        return True
    body = rec.raw.get({"openai": "body", "bedrock": "modelInput"}.get(rec.fmt, ""))
    messages = body.get("messages") if isinstance(body, dict) else None
    return any(
        is_non_text_part(part) for m in messages or [] if isinstance(m.get("content"), list) for part in m["content"]
    )


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
    return read_messages(body.get("messages"), "modelInput.messages", "bedrock") if turns is None else turns


def _record_id(rid: Any, field_name: str, form: str = "plain", obj: dict[str, Any] | None = None) -> str:
    """Ids are strings or whole numbers; an object, list or true would become an id nobody can match."""
    if rid in (None, ""):
        hint = f"; rename id to {field_name}" if obj and field_name != "id" and "id" in obj else ""
        raise ValueError(f"{field_name}: missing {field_name} (read as {FORMS[form]}){hint}")
    if isinstance(rid, bool) or not isinstance(rid, (str, int)):
        raise ValueError(f"{field_name}: id must be a string or an integer, not {as_written(rid)}")
    return str(rid)


def parse_obj(obj: dict[str, Any], line: int) -> BatchRecord:
    """Normalise one decoded JSON object; raises ValueError('field: reason')."""
    refuse_other_providers_lines(obj)
    form = line_form(obj)
    if form == "bedrock":
        rid, body = _record_id(obj.get("recordId"), "recordId", form, obj), obj.get("modelInput")
        refuse_other_line_keys(obj, form)
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
        system = None if system is None else content_text(system, "modelInput.system")
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
        refuse_other_line_keys(obj, form)
        if obj.get("method", "POST") != "POST" or not str(obj.get("url", "")).endswith("/chat/completions"):
            raise ValueError("url: only POST /v1/chat/completions is supported")
        if not isinstance(body, dict):
            raise ValueError("body: body not valid for the model (must be an object)")
        msgs = read_messages(body.get("messages"), "body.messages", form)
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
        msgs = plain_messages(obj["messages"])
    else:
        prompt = obj.get("prompt")
        if prompt is None:
            raise ValueError("prompt: missing prompt or messages")
        if not isinstance(prompt, str):  # `"prompt": 5` read "missing prompt", though it is there
            raise ValueError(f"prompt: {prompt!r} is not text; write the prompt as a JSON string")
        msgs = [{"role": "user", "content": prompt}]
    temperature = _temperature(obj.get("temperature"), "temperature")
    max_tokens = _first_cap((("max_tokens", obj, "max_tokens"),))
    return BatchRecord(rid, line, "plain", msgs, plain_system(obj.get("system")), max_tokens, obj, temperature)


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
