"""The form a JSON schema Claude holds its answer to goes out in (Claude's output format and strict tools, on
Anthropic's API and on Bedrock: `anthropic_mapping`, `converse_mapping`).

Claude's structured outputs take a subset of JSON Schema: every object closed (`additionalProperties: false`), no
numerical, string-length or array-size constraints, no recursion; the API answers 400 to the rest. A pydantic model's
schema (the openai SDK's `.parse`, google-genai's `response_schema`) often has them. The schema goes out in the form
the official SDK sends (`anthropic.transform_schema`): objects closed, an unsupported constraint moved into its
place's description for the model to read. Not silently: what was moved is listed on the attempt's ledger row
(`ledger.events.SCHEMA_LOOSENED_TAG`, set in `call_plan`). What has no such form is refused before the call, by
name, with the fix: an object open to other properties (`additionalProperties` true or a schema: closing it would
refuse what the caller allows), a recursive schema, a reference outside the schema.

A schema's form is made once, with what it moved, and kept on the tool or response format it came from (`derived`):
the ledger tag and the request sent both read it, and a tool the gateway shares among requests is not made again.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from anthropic import transform_schema

from tokenomy.messages import ChatRequest
from tokenomy.providers.bedrock_families import body_family
from tokenomy.request_options import ResponseFormat, ToolSpec


@dataclass(frozen=True, slots=True)
class ClaudeForm:
    """A schema as Claude takes it (`anthropic.transform_schema`), and what that moved into descriptions, each as
    `place {key: value, ...}`. As sent when the SDK has no form for it (a type list, no type): Claude's own 400
    then names what is wrong, not a gateway 500."""

    schema: dict[str, Any]
    moved: tuple[str, ...]


def claude_form(holder: ToolSpec | ResponseFormat) -> ClaudeForm:
    """The Claude form of a tool's input schema or a response format's schema, made once and kept on it (`derived`,
    not changed once made: a ToolSpec is shared among requests)."""
    derived = holder.derived
    if derived is None:
        derived = holder.derived = {}
    form = derived.get("claude")
    if form is None:
        schema = holder.input_schema if isinstance(holder, ToolSpec) else holder.schema or {"type": "object"}
        form = derived["claude"] = _made(schema)
    return form


def unexpressible(schema: Any) -> tuple[str, str] | None:
    """The place in `schema` Claude cannot hold an answer to, and what the API takes not with the fix (worded after
    "the API (model ...)"); None when there is none."""
    defs = {**_dict(schema.get("definitions")), **_dict(schema.get("$defs"))} if isinstance(schema, dict) else {}
    return _open_place(schema, "") or _ref_place(schema, "", defs, ())


def takes_claude_schema(provider: str, model: str) -> bool:
    """Whether `model` on `provider` (a config's provider name) is Claude, on Anthropic's API or on Bedrock, whose
    schemas go in Claude's form."""
    return provider == "anthropic" or (provider == "bedrock" and body_family(model) == "anthropic")


def claude_targets(request: ChatRequest) -> list[tuple[str, ToolSpec | ResponseFormat]]:
    """What in `request` holds a schema Claude holds its answer to, each with its field: the json_schema response
    format and each strict tool (its input schema)."""
    out: list[tuple[str, ToolSpec | ResponseFormat]] = []
    fmt = request.response_format
    if fmt is not None and fmt.type == "json_schema" and isinstance(fmt.schema, dict):
        out.append(("response_format.json_schema.schema", fmt))
    for i, tool in enumerate(request.tools):
        if tool.strict and tool.server is None and isinstance(tool.input_schema, dict):
            out.append((f"tools[{i}].input_schema", tool))
    return out


def schema_refusal(request: ChatRequest) -> tuple[str, str] | None:
    """The field of `request` Claude could not hold an answer to, and why with the fix; None when there is none."""
    for field, holder in claude_targets(request):
        found = unexpressible(holder.input_schema if isinstance(holder, ToolSpec) else holder.schema)
        if found is not None:
            place, why = found
            return f"{field}{'.' + place if place else ''}", why
    return None


def loosened_note(request: ChatRequest) -> str | None:
    """The ledger tag's value for `request` sent to Claude: each schema's moved constraints; None when none moved."""
    notes = [f"{field}{' ' if item.startswith('{') else '.'}{item}"
             for field, holder in claude_targets(request) for item in claude_form(holder).moved]  # fmt: skip
    return "; ".join(notes) or None


_OPEN = (
    "takes no object open to other properties (additionalProperties {value}) in a schema Claude's structured "
    "outputs hold an answer to (every object closed), and closing it would refuse what it allows; declare its "
    "properties and set additionalProperties to false, or send it to a model without that limit"
)
_RECURSIVE = (
    "takes no recursive schema in Claude's structured outputs (this place refers back to {ref}); flatten it to a "
    "fixed depth, or send it to a model without that limit"
)
_EXTERNAL = (
    "takes no reference outside the schema ({ref}) in Claude's structured outputs, only into its own $defs; copy "
    "the definition in"
)


def _open_place(node: Any, where: str) -> tuple[str, str] | None:
    if isinstance(node, list):
        return next((p for i, item in enumerate(node) if (p := _open_place(item, f"{where}[{i}]"))), None)
    if not isinstance(node, dict):
        return None
    extra = node.get("additionalProperties")
    if extra is not None and extra is not False:
        shown = "true" if extra is True else "a schema"
        return _join(where, "additionalProperties"), _OPEN.format(value=shown)
    for key in ("properties", "$defs", "definitions"):
        for name, item in _dict(node.get(key)).items():
            found = _open_place(item, _join(where, f"{key}.{name}"))
            if found:
                return found
    for key in ("items", "anyOf", "oneOf", "allOf", "prefixItems"):
        if key in node:
            found = _open_place(node[key], _join(where, key))
            if found:
                return found
    return None


def _ref_place(node: Any, where: str, defs: dict[str, Any], seen: tuple[str, ...]) -> tuple[str, str] | None:
    if isinstance(node, list):
        return next((p for i, item in enumerate(node) if (p := _ref_place(item, f"{where}[{i}]", defs, seen))), None)
    if not isinstance(node, dict):
        return None
    ref = node.get("$ref")
    if isinstance(ref, str):
        if not ref.startswith("#"):
            return _join(where, "$ref"), _EXTERNAL.format(ref=ref)
        if ref in seen or ref == "#":
            return _join(where, "$ref"), _RECURSIVE.format(ref=ref)
        target = defs.get(ref.rsplit("/", 1)[-1])
        if target is not None:
            found = _ref_place(target, where, defs, (*seen, ref))
            if found:
                return found
    for key in ("properties", "$defs", "definitions"):
        for name, item in _dict(node.get(key)).items():
            found = _ref_place(item, _join(where, f"{key}.{name}"), defs, seen)
            if found:
                return found
    for key in ("items", "anyOf", "oneOf", "allOf", "prefixItems"):
        if key in node:
            found = _ref_place(node[key], _join(where, key), defs, seen)
            if found:
                return found
    return None


def _made(schema: dict[str, Any]) -> ClaudeForm:
    try:
        form = transform_schema(schema)
    except (ValueError, AssertionError, TypeError, AttributeError, KeyError):
        return ClaudeForm(schema, ())
    moved: list[str] = []
    _moved(form, schema, "", moved)
    return ClaudeForm(form, tuple(moved))


def _moved(node: Any, own: Any, where: str, found: list[str]) -> None:
    """What the SDK moved into the descriptions of `node` (a place in the form) and below, against `own` (the same
    place in the caller's schema): the SDK appends them to a place's own description, after a blank line, as
    "{key: value, ...}"."""
    if isinstance(node, list):
        for i, item in enumerate(node):
            _moved(item, own[i] if isinstance(own, list) and i < len(own) else None, f"{where}[{i}]", found)
    elif isinstance(node, dict):
        own = _dict(own)
        for key, value in node.items():
            if key == "description" and isinstance(value, str):
                before = own.get("description")
                if value != before:
                    added = value[len(before) + 2 :] if isinstance(before, str) else value
                    found.append(f"{where} {added}".strip())
            else:  # the SDK sends a oneOf as anyOf
                _moved(
                    value, own.get("oneOf" if key == "anyOf" and "anyOf" not in own else key), _join(where, key), found
                )


def _dict(value: Any) -> dict[str, Any]:
    return value if isinstance(value, dict) else {}


def _join(where: str, key: str) -> str:
    return f"{where}.{key}" if where else key
