"""The shape checks of an OpenAI Responses API request's objects, shared by its ingress (`responses_ingress`: the
`input` items) and its options (`responses_options`). A key this gateway does not know would be dropped, so it is
refused; a null is the SDK's unset and asks for nothing."""

from __future__ import annotations

from typing import Any

from tokenomy.gateway.openai_shapes import RequestError


def checked_object(value: Any, where: str, keys: set[str]) -> dict[str, Any]:
    """`value` as an object holding only `keys` (plus `type`); a RequestError naming the first other key."""
    if not isinstance(value, dict):
        raise RequestError(where, "expected an object")
    unknown = sorted(key for key in set(value) - keys - {"type"} if value[key] is not None)  # null: the SDK's unset
    if unknown:
        raise RequestError(f"{where}.{unknown[0]}", "not supported by this gateway; remove it")
    return value


def checked_string(value: Any, where: str, required: bool = True) -> str | None:
    if value is None and not required:
        return None
    if not isinstance(value, str):
        raise RequestError(where, "required: a string" if value is None else "expected a string")
    return value
