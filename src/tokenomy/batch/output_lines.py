"""Lines of a provider's batch output file that are not JSON (cut short, garbled in storage or transfer).

Such a line is its record's failure, and the job's other results are kept: a `json.loads` error out of a backend's
`results` lost every answer of the job. The record is found by the id the line still shows (`"custom_id": "r7"`
comes before the answer a cut line loses), else, once a batch has answered every request, as the one request of
its input that no readable line answers, so it is reported failed rather than left without a result.
"""

from __future__ import annotations

import json
import logging
import re
from collections.abc import Callable, Iterable, Iterator, Sequence
from typing import Any, TypeVar

from tokenomy.batch.backends import RecordResult
from tokenomy.chat_response import Usage
from tokenomy.errors import ProviderError, as_written

log = logging.getLogger(__name__)

R = TypeVar("R", bound="RecordResult | None")
M = TypeVar("M", bound="str | None")

SHOWN = 200  # characters of an unreadable line quoted in its record's error
# Where an output line repeats the request it answers (Bedrock's modelInput, Vertex AI's request): what follows is the
# prompt, which an error stored with the job and shown by `batch results` does not quote (store_prompts).
_ECHOED = ("modelInput", "request")
_ECHO = re.compile(r"""["']?\b(?:modelInput|request)\b["']?\s*:""")


def output_object(line: str | bytes) -> dict[str, Any] | None:
    """An output line as the JSON object it should be, or None for a line that is not one."""
    try:
        item = json.loads(line)
    except ValueError:  # not JSON, or bytes that are not UTF-8 (UnicodeDecodeError is a ValueError)
        return None
    return item if isinstance(item, dict) else None


def id_shown(line: str | bytes, key: str) -> str | None:
    """The record id an unreadable line still shows under `key` (its first `"key": "..."`), or None."""
    text = _text(line)
    match = re.search(rf'"{re.escape(key)}"\s*:\s*("(?:[^"\\]|\\.)*")', text)
    if match is None:
        return None
    try:
        found = json.loads(match.group(1))
    except ValueError:  # a bad escape inside the id itself
        return None
    return found if isinstance(found, str) else None


def object_shown(line: str | bytes, key: str) -> dict[str, Any] | None:
    """The JSON object an unreadable line still shows whole under `key` (its last `"key": {...}` that parses), or
    None: a line garbled in its answer's text keeps the usage written after it."""
    text = _text(line)
    for match in reversed(list(re.finditer(rf'"{re.escape(key)}"\s*:\s*\{{', text))):
        try:
            found, _ = json.JSONDecoder().raw_decode(text, match.end() - 1)
        except ValueError:
            continue
        if isinstance(found, dict):
            return found
    return None


def usage_shown(line: str | bytes, key: str, read: Callable[[dict[str, Any]], Usage | None]) -> Usage | None:
    """The usage an unreadable line still shows under `key`, as `read` (the backend's reader of a readable line's
    usage) takes it; None when none is shown whole, or its counts are not ones an answer can have."""
    shown = object_shown(line, key)
    if shown is None:
        return None
    try:
        return read(shown)
    except (ProviderError, AttributeError, KeyError, TypeError, ValueError):
        return None


def unreadable(line: str | bytes, where: str) -> str:
    """The error of a record whose output line is not JSON: where the line is, and its start."""
    return f"unreadable output line ({where}): {_shown(line)}"


def broken_line(
    line: str | bytes,
    where: str,
    rid: str | None,
    model: str | None,
    nameless: list[tuple[str, Any]],
    usage: Usage | None = None,
) -> RecordResult | None:
    """The result of an output line that is not JSON: its record's failure when the line still shows the record's
    id (`rid`), else None, the line kept in `nameless` for `unanswered_failures` once the whole output is read.
    `usage`: what the line still shows the call was billed (`usage_shown`), recorded in the ledger with the failure."""
    if rid is None:
        nameless.append((where, line))
        return None
    return RecordResult(rid, error=unreadable(line, where), model=model, usage=usage)


def misshapen_or(
    read: Callable[[dict[str, Any], M], R], item: dict[str, Any], model: M, id_key: str, where: str
) -> R | RecordResult:
    """`read(item, model)`, the result of the output line `item`; a line that is JSON but not of the shape `read`
    takes (a list where an object goes, `"choices": [null]`) is its record's failure naming the line, not an
    AttributeError out of the backend's `results` that loses every answer of the job. A line that names no record
    (no `id_key`) goes under where it is: under "None", a second such line was taken for the first and dropped,
    though billed, and the records they answered were left to be sent, and billed, again."""
    if item.get(id_key) is None:
        item = {**item, id_key: where}
    try:
        return read(item, model)
    except (AttributeError, KeyError, TypeError, IndexError, ValueError) as exc:
        shown = as_written({k: v for k, v in item.items() if k not in _ECHOED})[:SHOWN]
        error = f"malformed output line ({where}: {type(exc).__name__}): {shown}"
        return RecordResult(str(item.get(id_key)), error=error, model=model)


def unanswered_failures(
    sent: Iterable[str],
    answered: set[str],
    lines: Sequence[tuple[str, str | bytes]],
    model: str | None,
    heading: str = "unreadable output line: no readable line answers this record",
) -> Iterator[RecordResult]:
    """A failure for each record `sent` that no readable line answered, when `lines` (where, text) are lines that
    named no record: in a batch that answered every request, those lines were theirs. `heading` starts the error."""
    if not lines:
        return
    error = f"{heading}, and {len(lines)} name none ({_quoted(lines)})"
    placed = False
    for rid in dict.fromkeys(sent):
        if rid not in answered:
            placed = True
            yield RecordResult(rid, error=error, model=model)
    if not placed:  # every request has a readable answer: the lines answer none of them
        # Where each is and its size, not its text: Bedrock's and Vertex AI's lines repeat the prompt.
        shown = "; ".join(f"{where} ({len(text)} bytes)" for where, text in lines[:3])
        shown += f"; and {len(lines) - 3} more" if len(lines) > 3 else ""
        log.warning("%d output lines name no record and every record is answered; left out: %s", len(lines), shown)


def unplaced(lines: Sequence[tuple[str, str | bytes]], model: str | None) -> Iterator[RecordResult]:
    """Each of `lines` (where, text), which name no record, as a failed result under where it is: `collect.collect_part`
    keeps it as the job's unmatched line, shown by `batch status` and `batch results`, where a warning in a log was
    seen by nobody. (The batch did not answer every request, so the records without an answer may never have run.)"""
    for where, text in lines:
        yield RecordResult(where, error=unreadable(text, where), model=model)


def _quoted(lines: Sequence[tuple[str, str | bytes]]) -> str:
    said = "; ".join(f"{where}: {_shown(text)}" for where, text in lines[:3])
    return said + (f"; and {len(lines) - 3} more" if len(lines) > 3 else "")


def _shown(line: str | bytes) -> str:
    """The start of an unreadable line, up to the request it repeats (the prompt), at most SHOWN characters."""
    text = _text(line)
    echo = _ECHO.search(text)
    return (text[: echo.end()] + " …" if echo else text)[:SHOWN]


def _text(line: str | bytes) -> str:
    return line.decode("utf-8", "replace") if isinstance(line, bytes) else line
