"""The form a strict JSON schema goes out in to an OpenAI-format model (`openai_wire`).

OpenAI's strict mode refuses a schema unless every object lists `additionalProperties: false`. A strict schema from
an API that holds every answer to its schema anyway (Gemini's response schema and VALIDATED tools, Claude's output
format, Converse's), or a pydantic model's schema from the openai SDK, often leaves that out, and the request would
come back 400. Where that is all that is missing (every object requires all its properties), it is added: the same
answers are valid, and no request OpenAI would take changes. Otherwise the schema goes as sent, `strict: true`
still, and OpenAI's own 400 names what it cannot hold: nothing the caller asked for is quietly loosened.

`strict_normalized` is the Responses API's own reading of a function tool that omits `strict` (the gateway's
`/v1/responses`): strict, its schema made strict as OpenAI makes it, optional properties required.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from typing import Any

_NESTED = ("items", "anyOf", "prefixItems")  # the places strict mode takes a subschema, besides properties and $defs


def strict_form(schema: Any) -> Any:
    """`schema` with `additionalProperties: false` on each object that lacks it, when every object declares its
    properties, requires them all and is not open to others; else `schema` unchanged."""
    try:
        return _walk(schema, "", _close_as_is) if isinstance(schema, dict) else schema
    except (LookupError, TypeError):
        # TypeError: malformed where strict mode looks (`properties` not an object, `required` not a list of names).
        # No strict form either: it goes as sent, and the provider's 400 names what is wrong, not a gateway 500.
        return schema


def _walk(node: Any, where: str, close: Callable[[dict[str, Any], dict[str, Any], str], None]) -> Any:
    """A copy of `node` in which `close(node, copy, where)` has made each object schema strict, wherever strict mode
    takes a subschema (properties, $defs, items, anyOf, prefixItems); `where` is the place, keys joined by dots."""
    if isinstance(node, list):
        return [_walk(item, f"{where}[{i}]", close) for i, item in enumerate(node)]
    if not isinstance(node, dict):
        return node
    out = dict(node)
    kind = node.get("type")
    kinds: list[Any] = kind if isinstance(kind, list) else [kind]
    properties = node.get("properties")
    if "object" in kinds or isinstance(properties, dict):
        close(node, out, where)
    if isinstance(properties, dict):
        out["properties"] = {name: _walk(item, _join(where, f"properties.{name}"), close) for name, item in
                             properties.items()}  # fmt: skip
    for key in ("$defs", "definitions"):
        if isinstance(node.get(key), dict):
            out[key] = {name: _walk(item, _join(where, f"{key}.{name}"), close) for name, item in node[key].items()}
    for key in _NESTED:
        if key in node:
            out[key] = _walk(node[key], _join(where, key), close)
    return out


def _join(where: str, key: str) -> str:
    return f"{where}.{key}" if where else key


def _close_as_is(node: dict[str, Any], out: dict[str, Any], where: str) -> None:
    properties = node.get("properties")
    if node.get("additionalProperties", False) is not False:
        raise LookupError  # open to other properties: no strict form
    if not properties and node.get("additionalProperties") is not False:
        raise LookupError  # a free-form object ({"type": "object"}): closing it would allow only {}
    if not set(properties or {}) <= set(node.get("required") or []):
        raise LookupError  # an optional property: no strict form keeps its meaning
    out["additionalProperties"] = False


class NotStrict(ValueError):
    """A schema no strict form holds without changing what it lets through: `where` is the place in it (its keys
    joined by dots, "" for the schema itself) and `what` says what it is there."""

    def __init__(self, where: str, what: str) -> None:
        super().__init__(f"{where or 'the schema'} {what}")
        self.where, self.what = where, what


def strict_normalized(schema: dict[str, Any]) -> dict[str, Any]:
    """`schema` as OpenAI's Responses API makes a function's parameters strict when the tool omits `strict`: every
    object closed (`additionalProperties: false`) and requiring all its properties, so an optional property becomes
    required (OpenAI's function-calling guide says so). Unlike `strict_form`, which only closes schemas that require
    everything already, this changes what is optional, as OpenAI does. Raises NotStrict at the first object open to
    other properties (`additionalProperties` true or a schema), or of any properties (none declared): closed, it would
    refuse arguments the caller's schema takes, so no strict form keeps its meaning."""
    return _walk(schema, "", _close_all_required)


def _close_all_required(node: dict[str, Any], out: dict[str, Any], where: str) -> None:
    properties = node.get("properties")
    extra = node.get("additionalProperties")
    if extra is not None and extra is not False:
        raise NotStrict(where, f"is open to other properties (additionalProperties: {json.dumps(extra)})")
    if properties is None and extra is not False:
        raise NotStrict(where, "is an object of any properties (it declares none)")
    required = node.get("required") or []
    if not isinstance(properties or {}, dict) or not isinstance(required, list):
        raise NotStrict(where, "has `properties` that are not an object, or `required` that is not a list")
    names = list(properties or {})
    out["required"] = names + [name for name in required if name not in names]
    out["additionalProperties"] = False
