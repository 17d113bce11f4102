"""JSON text read as JSON defines it. Python's decoder also reads NaN, Infinity and numbers past a double (1e400) as
floats, which then fail a provider SDK's encoder (a 500) or reach the provider as no JSON at all; here they are a
ValueError, as any other text that is not JSON."""

from __future__ import annotations

import json
import math
from typing import Any


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
