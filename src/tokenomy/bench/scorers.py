"""Scorers: each turns (answer, example, options) into a quality from 0 to 100 and a short note."""

from __future__ import annotations

import json
import re
import string
from typing import Any

import jsonschema

from tokenomy.bench.tasks import Example, Task


def normalize(text: str) -> str:
    """Lower case, no punctuation, single spaces — the usual normalised-match rules."""
    text = str(text).lower().strip()
    text = text.translate(str.maketrans("", "", string.punctuation))
    return " ".join(text.split())


def extract_json(text: str) -> Any:
    """Parse the first JSON object or array in the answer (models wrap JSON in prose or fences)."""
    text = text.strip()
    fenced = re.search(r"```(?:json)?\s*(.*?)```", text, re.S)
    if fenced:
        text = fenced.group(1)
    for opener, closer in (("{", "}"), ("[", "]")):
        start, end = text.find(opener), text.rfind(closer)
        if start != -1 and end > start:
            return json.loads(text[start : end + 1])
    return json.loads(text)


# A label named right after one of these is negated ("not billing", "isn't a billing question"): normalize() drops the
# apostrophe of "isn't", not a typographic one.
_NEGATED = r"\b(?:not|no|isnt|isn’t|never)\s+(?:(?:a|an|the)\s+)?"
# Where a negation stops: "No, billing." names billing.
_CLAUSE = re.compile(r"[,;:!?()\n]|\.(?=\s|$)|\s[-–—]+\s")


def named_labels(answer: str, labels: list[str]) -> list[str]:
    """The labels (normalised) the answer names as whole words, in any case, leaving out one it only names negated:
    "Technical, not billing" names technical alone."""
    text = normalize(answer)
    clauses = [normalize(clause) for clause in _CLAUSE.split(str(answer))]
    named = []
    for label in dict.fromkeys(labels):
        word = rf"\b{re.escape(label)}\b"
        if not re.search(word, text):
            continue
        said = sum(len(re.findall(word, clause)) for clause in clauses)
        negated = sum(len(re.findall(_NEGATED + re.escape(label) + r"\b", clause)) for clause in clauses)
        if not said or negated < said:  # named once without a negation (or across a clause break: not negated)
            named.append(label)
    return named


def score(task: Task, example: Example, answer: str) -> tuple[float, str]:
    """Quality 0–100 for a non-judge scorer."""
    expected = example.expected
    kind = task.scorer
    if kind == "exact_match":
        ok = answer.strip() == str(expected).strip()
        return (100.0 if ok else 0.0), "exact" if ok else "differs"
    if kind in ("normalized_match", "classification"):
        got = normalize(answer)
        want = normalize(expected)
        if kind == "classification":
            labels = [normalize(label) for label in task.options.get("labels", [])]
            if not labels:  # no list to name from: the whole answer is the label
                return (100.0 if got == want else 0.0), "label ?"
            # The answer's label is the one label it names; naming several is a hedge, not an answer (nor is none).
            found = named_labels(answer, labels)
            if len(found) == 1:
                return (100.0 if found == [want] else 0.0), f"label {found[0]}"
            return 0.0, f"label ? (names {', '.join(found)})" if found else "label ?"
        ok = got == want or bool(task.options.get("contains", True) and re.search(rf"\b{re.escape(want)}\b", got))
        return (100.0 if ok else 0.0), "match" if ok else "no match"
    if kind == "regex":
        pattern = task.options.get("pattern") or expected
        ok = re.search(str(pattern), answer, re.S) is not None
        return (100.0 if ok else 0.0), "pattern found" if ok else "pattern missing"
    if kind in ("json_valid", "json_fields", "json_schema"):
        try:
            data = extract_json(answer)
        except (json.JSONDecodeError, ValueError):
            return 0.0, "invalid JSON"
        if kind == "json_valid":
            return 100.0, "valid JSON"
        if kind == "json_schema":
            try:
                jsonschema.validate(data, task.options["schema"])
            except jsonschema.ValidationError as exc:
                return 0.0, f"schema: {exc.message[:60]}"
            return 100.0, "schema ok"
        required = task.options.get("required") or (list(expected) if isinstance(expected, dict) else [])
        if not isinstance(data, dict):
            return 0.0, "not an object"
        present = [k for k in required if k in data and data[k] not in (None, "")]
        correct = sum(
            1 for k in present if not isinstance(expected, dict) or normalize(data[k]) == normalize(expected[k])
        )
        if not required:
            return 100.0, "no fields required"
        # Half the credit for having the fields, half for their values matching the reference.
        quality = 50.0 * len(present) / len(required) + 50.0 * correct / len(required)
        return quality, f"{len(present)}/{len(required)} fields, {correct} correct"
    if kind == "numeric":
        numbers = re.findall(r"-?\d+(?:\.\d+)?", answer.replace(",", ""))
        if not numbers:
            return 0.0, "no number"
        tolerance = float(task.options.get("tolerance", 0))
        ok = abs(float(numbers[-1]) - float(expected)) <= tolerance
        return (100.0 if ok else 0.0), f"got {numbers[-1]}"
    raise ValueError(f"scorer {kind!r} needs the judge")
