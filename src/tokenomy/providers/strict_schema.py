"""A JSON schema in the form OpenAI's strict mode takes, for the APIs whose structured output is always held to its
schema (Gemini's response schema and VALIDATED tools, Claude's output format) when the gateway sends it on to an
OpenAI-format model as `strict: true`."""

from __future__ import annotations

from typing import Any


def strict_schema(schema: Any) -> dict[str, Any] | None:
    """The schema as OpenAI's strict mode takes it, or None where it cannot: strict needs every object to require
    all its properties and to allow no others (else OpenAI refuses the request). Gemini and Claude write only the
    properties a schema declares, so `additionalProperties: false` is added where absent; an optional property, or
    an object open to others, leaves the schema as sent and the answer held to it by the model's best effort."""

    def walk(node: Any) -> Any:
        if isinstance(node, list):
            return [walk(item) for item in node]
        if not isinstance(node, dict):
            return node
        out = dict(node)
        kind = node.get("type")
        kinds: list[Any] = kind if isinstance(kind, list) else [kind]
        if "object" in kinds or isinstance(node.get("properties"), dict):
            properties = node.get("properties") or {}
            if node.get("additionalProperties", False) is not False or not set(properties) <= set(
                node.get("required") or []
            ):
                raise LookupError
            out["additionalProperties"] = False
        if isinstance(node.get("properties"), dict):
            out["properties"] = {name: walk(item) for name, item in node["properties"].items()}
        for key in ("$defs", "definitions"):
            if isinstance(node.get(key), dict):
                out[key] = {name: walk(item) for name, item in node[key].items()}
        for key in ("items", "anyOf", "oneOf", "allOf", "prefixItems", "not"):
            if key in node:
                out[key] = walk(node[key])
        return out

    try:
        return walk(schema) if isinstance(schema, dict) else None
    except LookupError:
        return None
