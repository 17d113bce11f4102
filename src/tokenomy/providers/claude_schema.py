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
"""

from __future__ import annotations

from typing import Any

from anthropic import transform_schema

from tokenomy.messages import ChatRequest
from tokenomy.providers.bedrock_families import body_family


def claude_form(schema: dict[str, Any]) -> dict[str, Any]:
    """`schema` as Claude takes it (`anthropic.transform_schema`); as sent when the SDK has no form for it (a type
    list, no type): Claude's own 400 then names what is wrong, not a gateway 500."""
    try:
        return transform_schema(schema)
    except (ValueError, AssertionError, TypeError, AttributeError, KeyError):
        return schema


def moved_constraints(schema: dict[str, Any]) -> list[str]:
    """What `claude_form` moves into descriptions, each as `place {key: value, ...}`."""
    try:
        bare = transform_schema(_without_descriptions(schema))
    except (ValueError, AssertionError, TypeError, AttributeError, KeyError):
        return []
    found: list[str] = []
    _descriptions(bare, "", found)  # with the caller's descriptions taken away, any left are the moved constraints
    return found


def unexpressible(schema: Any) -> tuple[str, str] | None:
    """The place in `schema` Claude cannot hold an answer to, and what the API takes not with the fix (worded after
    "the API (model ...)"); None when there is none."""
    defs = {**_dict(schema.get("definitions")), **_dict(schema.get("$defs"))} if isinstance(schema, dict) else {}
    return _open_place(schema, "") or _ref_place(schema, "", defs, ())


def takes_claude_schema(provider: str, model: str) -> bool:
    """Whether `model` on `provider` (a config's provider name) is Claude, on Anthropic's API or on Bedrock, whose
    schemas go in Claude's form."""
    return provider == "anthropic" or (provider == "bedrock" and body_family(model) == "anthropic")


def claude_targets(request: ChatRequest) -> list[tuple[str, dict[str, Any]]]:
    """The schemas of `request` Claude holds its answer to, each with its field: the json_schema response format and
    each strict tool's input schema."""
    out: list[tuple[str, dict[str, Any]]] = []
    fmt = request.response_format
    if fmt is not None and fmt.type == "json_schema" and isinstance(fmt.schema, dict):
        out.append(("response_format.json_schema.schema", fmt.schema))
    for i, tool in enumerate(request.tools):
        if tool.strict and tool.server is None and isinstance(tool.input_schema, dict):
            out.append((f"tools[{i}].input_schema", tool.input_schema))
    return out


def schema_refusal(request: ChatRequest) -> tuple[str, str] | None:
    """The field of `request` Claude could not hold an answer to, and why with the fix; None when there is none."""
    for field, schema in claude_targets(request):
        found = unexpressible(schema)
        if found is not None:
            place, why = found
            return f"{field}{'.' + place if place else ''}", why
    return None


def loosened_note(request: ChatRequest) -> str | None:
    """The ledger tag's value for `request` sent to Claude: each schema's moved constraints; None when none moved."""
    notes = [f"{field}{' ' if item.startswith('{') else '.'}{item}"
             for field, schema in claude_targets(request) for item in moved_constraints(schema)]  # fmt: skip
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


def _without_descriptions(node: Any) -> Any:
    if isinstance(node, list):
        return [_without_descriptions(item) for item in node]
    if not isinstance(node, dict):
        return node
    return {k: _without_descriptions(v) for k, v in node.items() if not (k == "description" and isinstance(v, str))}


def _descriptions(node: Any, where: str, found: list[str]) -> None:
    if isinstance(node, list):
        for i, item in enumerate(node):
            _descriptions(item, f"{where}[{i}]", found)
    elif isinstance(node, dict):
        for key, value in node.items():
            if key == "description" and isinstance(value, str):
                found.append(f"{where} {value}".strip())
            else:
                _descriptions(value, _join(where, key), found)


def _dict(value: Any) -> dict[str, Any]:
    return value if isinstance(value, dict) else {}


def _join(where: str, key: str) -> str:
    return f"{where}.{key}" if where else key
