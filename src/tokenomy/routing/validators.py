"""Cascade validators: decide from a response whether the cheaper tier's answer is good enough."""

from __future__ import annotations

import importlib
import json
import re
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from typing import Any

from tokenomy.chat_response import ChatResponse
from tokenomy.errors import ConfigError
from tokenomy.messages import ChatRequest

HEDGES = (
    "i'm not sure",
    "i am not sure",
    "as an ai",
    "as a language model",  # the disclaimer of models that do not call themselves "an AI"
    "as a large language model",
    "i cannot",
    "i can't",
    "i don't know",
    "i do not know",
    "unable to",
    "not certain",
)

# Models often write a typographic apostrophe ("I’m not sure"): read it as the ASCII one the phrases use.
_APOSTROPHES = str.maketrans({"\u2019": "'", "\u2018": "'", "\u02bc": "'"})


def _folded(text: str) -> str:
    return text.lower().translate(_APOSTROPHES)


# What in an answer are not the model's own words: fenced and inline code, quotations (on one line, so a stray
# inch mark cannot swallow a paragraph) and markdown blockquote lines.
_NOT_PROSE = re.compile(
    r"^[ \t]*(```|~~~).*?^[ \t]*\1[^\n]*$|^[ \t]*(```|~~~).*\Z"  # fenced blocks; one left open runs to the end
    r"|`[^`\n]+`"
    r'|"[^"\n]*"|\u201c[^\u201d\n]*\u201d|\u00ab[^\u00bb\n]*\u00bb'
    r"|^[ \t]*>.*$",
    re.S | re.M,
)


def prose(text: str) -> str:
    """The model's own words in an answer: none in a JSON answer (its values are data: an extraction's
    `"status": "unable to ship"`), and not its code, quotations or blockquotes."""
    try:
        if isinstance(_json(text), (dict, list)):
            return ""
    except ValueError:
        pass
    return _NOT_PROSE.sub(" ", text)


def hedge(text: str, phrases: Iterable[str]) -> str | None:
    """The first of `phrases` that the prose of `text` says, as whole words whatever the case, or None.

    Whole words: "Hawaii cannot" does not say "i cannot", nor "as an aid" "as an ai"."""
    folded = _folded(prose(text))
    for phrase in phrases:
        if re.search(rf"(?<!\w){re.escape(_folded(phrase))}(?!\w)", folded):
            return phrase
    return None


# A worked calculation: "12 * 3 = 36", "$4.50 + $2 = $6.50", or a calculator annotation "<<12*3=36>>". A stated
# result followed by an operator is one step of a chain ("= $8 + $24 = $32") or an equation ("= 40 * Total"), one
# followed by ":" a clock time ("= 2:15"): the pattern does not take it as a result.
_NUMBER = r"\$?(?:\d[\d,]*(?:\.\d+)?|\.\d+)%?"
_CALCULATION = re.compile(
    rf"((?:{_NUMBER}\s*[-+*/x×÷]\s*)+{_NUMBER})\s*=\s*(-?{_NUMBER})(?![\d.,]*%?\s*(?:[-+*/×÷]\s*[\w$(.]|x\s*[\d$(.])|:\d)"
)
_ANNOTATION = re.compile(r"<<([-+*/().\d\s]+)=\s*(-?[\d.,]+)>>")


def _left_side(text: str, start: int) -> str | None:
    """What the calculation found at `start` starts with: "" for the match as it is, "-" for a negative first number
    ("-6 + 3 = -3"), None when the left side runs on before it ("x * 4 + 8 = 40", "(2 + 3) x 4", the ".5" of a
    "$.5"): the match is then only part of the calculation, and its value is not the one stated."""
    before = text[:start]
    # A digit, "." or ":" before it: the match began inside "$.5", a clock time "1:30" or a ratio "3:2"; a number
    # and a space before it: a mixed number "1 1/2".
    if before.endswith((".", ":")) or before.rstrip()[-1:].isdigit():
        return None
    if re.search(r"(?:^|[^\w).])-$", before):
        return "-"
    stripped = before.rstrip()
    if stripped.endswith(("+", "*", "/", "×", "÷", "^", "(")) or re.search(r"(?:[\w)]\s*-|[\d)]\s*[x×])$", stripped):
        return None
    return ""


def _states(value: float, stated: str) -> bool:
    """Whether `stated` is `value` to within rounding; a percentage either as a fraction ("50% of 8 is 4") or as the
    number it shows ("0.1 * 100 = 10%")."""
    try:
        claimed = _value(stated)
    except ValueError:
        return True
    shown = [claimed, claimed * 100] if stated.strip().endswith("%") else [claimed]
    return any(abs(value - c) <= 0.011 * max(1.0, abs(c)) for c in shown)


def _value(number: str) -> float:
    text = number.replace(",", "").replace("$", "").strip()
    return float(text[:-1]) / 100 if text.endswith("%") else float(text)


def _compute(expression: str) -> float | None:
    """The value of `a op b op c` with + - * / (x, ×, ÷ as multiply and divide), or None when it does not parse."""
    cleaned = re.sub(r"(?<=\d)\s*[x×]\s*(?=[\d$])", "*", expression.replace("÷", "/"))
    cleaned = re.sub(_NUMBER, lambda m: repr(_value(m.group(0))), cleaned)
    if not re.fullmatch(r"[-+*/().\d\se]+", cleaned):
        return None
    try:  # only digits, operators and parentheses reach eval: no names, no calls
        return float(eval(cleaned, {"__builtins__": {}}, {}))
    except (SyntaxError, ZeroDivisionError, TypeError, ValueError, OverflowError):
        return None


def wrong_calculation(text: str) -> str | None:
    """The first worked calculation in `text` whose stated result is off by more than rounding, or None.

    A model that shows its arithmetic and gets it wrong has almost always got the answer wrong: on RouteLLM's
    GSM8K responses, 94% of the Mixtral answers this flags (61 of 65) are wrong against 36% overall. A result that
    more operations follow (the "$8" of "= $8 + $24 = $32") is a step, not a stated result, and a calculation whose
    left side runs on past the numbers ("x * 4 + 8 = 40") is not checked: neither has a result that can be."""
    text = text.replace("\\*", "*")  # markdown's escaped multiplication sign: "16 \\* 1/2 = 8"
    for expression, stated in _ANNOTATION.findall(text):
        value = _compute(expression)
        if value is not None and not _states(value, stated):
            return f"{expression.strip()} = {stated.strip()}"
    for match in _CALCULATION.finditer(text):
        sign = _left_side(text, match.start())
        if sign is None:
            continue
        expression, stated = sign + match.group(1), match.group(2)
        value = _compute(expression)
        if value is not None and not _states(value, stated):
            return f"{expression.strip()} = {stated.strip()}"
    return None


_FENCED = re.compile(r"^```(?:json)?\s*(.*?)\s*```$", re.S | re.I)  # "```JSON" too


def _json(text: str, fences: bool = True) -> Any:
    """The JSON document `text` is; with `fences`, also one wrapped in a fenced block, as models often write JSON a
    prompt asks for in words. Anything else that does not parse raises ValueError."""
    body = text.strip()
    fenced = _FENCED.match(body)
    if fenced and not fences:
        raise ValueError("a fenced code block (```json ... ```), not the bare JSON the response_format asks for")
    return json.loads(fenced.group(1) if fenced else body, parse_constant=_no_json_constant)


def _no_json_constant(name: str) -> Any:
    # Python's json reads NaN and Infinity, which JSON (RFC 8259) has not: a caller's strict parser fails on them.
    raise ValueError(f"{name} is no JSON value (RFC 8259 has no NaN or Infinity; strict parsers refuse it)")


def tool_call_problem(response: ChatResponse, request: ChatRequest) -> str | None:
    """Why the answer's tool calls are malformed (arguments that are not a JSON object, a tool the request did not
    offer, arguments its input schema rejects), or None."""
    found = _tool_call_rejection(response, request)
    return None if found is None else found.reason


def _tool_call_rejection(response: ChatResponse, request: ChatRequest) -> Rejection | None:
    tools = {tool.name: tool for tool in request.tools}
    for call in response.tool_calls:
        if call.freeform:  # raw text, not JSON: its grammar is the provider's to hold the model to
            if tools and call.name not in tools:
                return Rejection(
                    "tool_call",
                    f"tool call to {call.name!r}, a tool the request did not offer",
                    "tool call to a tool the request did not offer",
                )
            continue
        if call.arguments is not None:
            try:
                arguments = json.loads(call.arguments) if call.arguments.strip() else {}
            except ValueError as exc:
                return Rejection(
                    "tool_call",
                    f"malformed tool call {call.name!r}: arguments are not JSON ({exc})",
                    "malformed tool call: arguments are not JSON",
                )
            if not isinstance(arguments, dict):
                return Rejection(
                    "tool_call",
                    f"malformed tool call {call.name!r}: arguments are not a JSON object",
                    "malformed tool call: arguments are not a JSON object",
                )
        else:
            arguments = call.input
        if tools and call.name not in tools:
            return Rejection(
                "tool_call",
                f"tool call to {call.name!r}, a tool the request did not offer",
                "tool call to a tool the request did not offer",
            )
        schema = tools[call.name].input_schema if call.name in tools else None
        broken = _schema_rejection("tool_call", "tool call", f" {call.name!r}", arguments, schema)
        if broken is not None:
            return broken
    return None


def _schema_rejection(check: str, what: str, which: str, data: Any, schema: dict[str, Any] | None) -> Rejection | None:
    """Where `data` breaks `schema`, as a rejection: the reason quotes jsonschema's message (which may repeat the
    value), the summary only the keyword it failed."""
    broken = _schema_error(data, schema) if schema else None
    if broken is None:
        return None
    return Rejection(
        check, f"schema-invalid {what}{which}: {broken.message}", f"schema-invalid {what} (failed {broken.validator!r})"
    )


def _schema_error(data: Any, schema: dict[str, Any]) -> Any:
    """Where `data` breaks a caller's `schema` (a jsonschema.ValidationError), or None. None too for a schema the
    upstream took but jsonschema cannot check: one that is invalid (a `required` that is no list, a pattern Python
    cannot compile) or whose `$ref` it cannot resolve (a missing `$defs` entry, a remote URL it does not fetch). The
    answer is then judged without it, rather than the call failing after its answer was paid for (a route's own schema
    is refused at load instead: `config_routing.schema_problem`)."""
    import jsonschema

    try:
        jsonschema.validate(data, schema)
    except jsonschema.ValidationError as exc:
        return exc
    except Exception:  # SchemaError, or an unresolvable $ref (referencing.Unresolvable; RefResolutionError before 4.18)
        return None
    return None


# The longest reason a ledger row or span keeps: a reason quoting a long answer (a schema error repeats the value it
# found) must not make every rejected row carry a paragraph.
REASON_CHARS = 160


@dataclass(frozen=True)
class Rejection:
    """Why the validators rejected an answer. `check` names the validator (empty, truncated, hedging, tool_call,
    json, schema, required, regex, arithmetic, python); `reason` says what it found and may quote the answer (a
    wrong calculation, the value a schema refused, a python check's verdict); `summary` says it with nothing taken
    from the answer or the request, for a ledger that does not store prompts."""

    check: str
    reason: str
    summary: str = ""

    def said(self, content: bool) -> str:
        """The reason to record, at most REASON_CHARS: in full when `content` may be kept (store_prompts), else
        the summary."""
        text = self.reason if content or not self.summary else self.summary
        # One line of printable text: a quoted answer may hold a NUL, which PostgreSQL's text and JSON refuse.
        text = " ".join("".join(ch if ch.isprintable() else " " for ch in text).split())
        return text if len(text) <= REASON_CHARS else text[: REASON_CHARS - 1] + "\u2026"


def validate(response: ChatResponse, request: ChatRequest, spec: dict[str, Any]) -> str | None:
    """Return why `response` fails the validators in `spec`, or None when it passes (see `rejection`)."""
    found = rejection(response, request, spec)
    return None if found is None else found.reason


def rejection(response: ChatResponse, request: ChatRequest, spec: dict[str, Any]) -> Rejection | None:
    """Why `response` fails the validators in `spec`, or None when it passes.

    An answer that calls tools is judged on its calls alone (well-formed, offered, valid against the tool's schema):
    the call is the model acting, so the text beside it ("I'm not sure, let me check the weather tool") is no hedge,
    and the validators of a final text answer (hedging, JSON, regex, ...) do not apply to it.
    A reason whose words come from the route's config (a hedge phrase, a regex, required fields) has no summary: it
    quotes nothing of the answer."""
    text = response.text or ""
    calls = response.tool_calls
    if not text.strip() and not calls:
        return Rejection("empty", "empty output")
    # A content filter stops an answer part-way as a token cap does: either way it is not the whole answer.
    if response.finish_reason in ("length", "content_filter") and spec.get("truncated", True):
        return Rejection("truncated", f"truncated output (finish_reason {response.finish_reason})")
    if calls:
        return _tool_call_rejection(response, request)
    if spec.get("hedging", True):
        phrase = hedge(text, spec.get("hedge_phrases", HEDGES))
        if phrase is not None:
            return Rejection("hedging", f"hedging language: {phrase!r}")
    # A caller's response_format (json_object or a schema) asks for JSON as `json: true` does, and more strictly: the
    # caller parses the answer as it comes (json.loads), so a fenced block is no JSON to it. The route's own validators
    # read one, as its author may ask for JSON in the prompt's words, which models answer fenced, the strong tier too.
    wants_json = spec.get("json") or request.wants_json or spec.get("schema") or spec.get("required")
    if wants_json:
        try:
            data = _json(text, fences=not request.wants_json)
        except ValueError as exc:  # the parser's message says where, never what: no summary needed
            return Rejection("json", f"invalid JSON: {exc}")
        broken = _schema_rejection("schema", "JSON", "", data, spec.get("schema") or request.json_schema)
        if broken is not None:
            return broken
        missing = [k for k in spec.get("required", []) if not isinstance(data, dict) or k not in data]
        if missing:
            return Rejection("required", f"missing required fields: {', '.join(missing)}")
    if spec.get("regex") and not re.search(spec["regex"], text):
        return Rejection("regex", f"does not match regex {spec['regex']!r}")
    if spec.get("arithmetic"):
        wrong = wrong_calculation(text)
        if wrong is not None:
            return Rejection("arithmetic", f"wrong arithmetic: {wrong}", "wrong arithmetic")
    if spec.get("python"):
        check = load_callable(spec["python"])
        try:
            verdict = check(text)
        except Exception as exc:  # the caller's code, on an answer it did not expect
            # The cheap answer is paid for: failing the call would lose it and the stronger tier's too; an answer
            # the check cannot judge is one it did not pass. The escalation is tagged in the ledger, and a hook
            # that always raises shows as a route escalating every call (`route drift`, the escalation_rate alert).
            return Rejection(
                "python",
                f"python validator {spec['python']} raised {type(exc).__name__}: {exc}",
                f"python validator {spec['python']} raised {type(exc).__name__}",
            )
        if verdict is False or isinstance(verdict, str):
            return Rejection(
                "python",
                f"python validator {spec['python']}: {verdict or 'rejected'}",
                f"python validator {spec['python']}: rejected",
            )
    return None


def load_callable(path: str) -> Callable[[str], Any]:
    """Import a `module:function` validator; errors name the path and the fix."""
    module, _, name = path.partition(":")
    try:
        return getattr(importlib.import_module(module), name)
    except (ImportError, AttributeError, ValueError) as exc:
        raise ConfigError(
            f"routing validator python: {path!r} cannot be imported ({exc}); give an importable 'module:function'"
        ) from exc
