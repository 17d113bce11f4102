"""Whether a tool's or an answer's JSON schema is one, checked as the real APIs check it: before any generation.

Anthropic's, Bedrock's, OpenAI's and Gemini's APIs each answer 400 for a schema their meta-schema refuses (a
`type` of 5, `properties` that is not an object, `required` that is not a list of names, ...). The emulators
check it when they read the request, so such a request gets that 400, not a 5xx from the engine that tried to
fill the schema in.
"""

from __future__ import annotations

from typing import Any

from jsonschema import Draft202012Validator, validators
from jsonschema.exceptions import SchemaError


def schema_problem(schema: Any) -> str | None:
    """Why `schema` is not a valid JSON schema (under the draft its `$schema` names; 2020-12 when it names none,
    as the APIs read it), with the place in the schema; None when it is valid."""
    checker = validators.validator_for(schema, default=Draft202012Validator) if isinstance(schema, dict) else None
    try:
        (checker or Draft202012Validator).check_schema(schema)
    except SchemaError as exc:
        where = "/".join(str(part) for part in exc.path)
        return f"{exc.message} (at {where})" if where else exc.message
    return None


# The constraints Claude's structured outputs refuse (Anthropic's "JSON Schema limitations"), by the types they bind
_CLAUDE_UNSUPPORTED = {
    "integer": ("minimum", "maximum", "exclusiveMinimum", "exclusiveMaximum", "multipleOf"),
    "number": ("minimum", "maximum", "exclusiveMinimum", "exclusiveMaximum", "multipleOf"),
    "string": ("minLength", "maxLength"),
    "array": ("maxItems", "uniqueItems"),
}


def claude_schema_problem(schema: Any) -> str | None:
    """Why Claude's structured outputs (an output format, a strict tool) refuse a valid `schema`, in the API's words:
    an object not closed (`additionalProperties: false`), a numerical, string-length or array-size constraint, a
    recursive or external `$ref`; None when Claude takes it."""
    return _claude_problem(schema, schema, ())


def _claude_problem(node: Any, root: Any, refs: tuple[str, ...]) -> str | None:
    if isinstance(node, list):
        return next((p for item in node if (p := _claude_problem(item, root, refs))), None)
    if not isinstance(node, dict):
        return None
    ref = node.get("$ref")
    if isinstance(ref, str) and not ref.startswith("#"):
        return f"External $ref is not supported: '{ref}'"
    if isinstance(ref, str) and ref in refs:
        return f"Recursive schemas are not supported: '{ref}'"
    kind_or_kinds = node.get("type")
    kinds: list[Any] = kind_or_kinds if isinstance(kind_or_kinds, list) else [kind_or_kinds]
    for kind in kinds:
        for key in _CLAUDE_UNSUPPORTED.get(kind, ()) if isinstance(kind, str) else ():
            if key in node:
                return f"For '{kind}' type, property '{key}' is not supported"
        if kind == "array" and node.get("minItems") not in (None, 0, 1):
            return "For 'array' type, 'minItems' values other than 0 or 1 are not supported"
        if kind == "object" and node.get("additionalProperties") is not False:
            return "For 'object' type, 'additionalProperties' must be explicitly set to false"
    inner = [node.get(key) for key in ("items", "anyOf", "oneOf", "allOf", "prefixItems")]
    inner += [item for key in ("properties", "$defs", "definitions") if isinstance(node.get(key), dict)
              for item in node[key].values()]  # fmt: skip
    if isinstance(ref, str):  # a definition is checked where it is used, so a reference back to it is recursion
        inner.append(_resolve(root, ref))
        refs = (*refs, ref)
    return next((p for item in inner if (p := _claude_problem(item, root, refs))), None)


def _resolve(root: Any, ref: str) -> Any:
    """The subschema a local `$ref` ("#/$defs/Name") points at in `root`; None when it points nowhere."""
    node = root
    for part in ref.lstrip("#").strip("/").split("/") if ref != "#" else []:
        node = node.get(part) if isinstance(node, dict) else None
    return node
