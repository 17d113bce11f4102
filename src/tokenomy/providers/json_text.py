"""JSON text read as JSON defines it. Python's decoder also reads NaN, Infinity and numbers past a double (1e400) as
floats, which then fail a provider SDK's encoder (a 500) or reach the provider as no JSON at all; here they are a
ValueError, as any other text that is not JSON. A model's tool-call arguments are read into a call's input here
too."""

from __future__ import annotations

import json
import math
from typing import Any

# Anthropic's convention for passing on a tool call's arguments that are no JSON: the text under this key, so the input
# is still the JSON object every API's tool call holds, and the caller sees what the model wrote.
INVALID_JSON = "INVALID_JSON"


def call_input(arguments: str) -> dict[str, Any]:
    """The input of a tool call a model wrote as `arguments`: its JSON object, any other JSON value as
    `{"value": value}`, and text that is no JSON (a call cut off mid-argument) as `{"INVALID_JSON": text}`: never `{}`,
    which would show the caller a call the model did not make."""
    try:
        value = loads(arguments)
    except ValueError:
        return {INVALID_JSON: arguments}
    return value if isinstance(value, dict) else {"value": value}


def loads(text: str | bytes) -> Any:
    """The value of JSON `text`; ValueError for text that is not JSON, NaN, Infinity and 1e400 included."""
    return json.loads(text, parse_constant=_not_json, parse_float=_finite)


def _not_json(constant: str) -> Any:
    raise ValueError(f"{constant} is not a JSON number")


def _finite(text: str) -> float:
    number = float(text)
    if not math.isfinite(number):
        raise ValueError(f"{text} is past a double's range")
    return number
