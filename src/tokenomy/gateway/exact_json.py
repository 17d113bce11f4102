"""JSON read and written with integers past 64 bits kept exact, at orjson's speed for everything else.

orjson reads an integer from 2**64 up (or below -2**63) as a float, so text holding such a number is read again by
the stdlib, which keeps it exact (`exact_loads`), and written with the stdlib where orjson refuses it (`dumps`):
10**30 in a tool's schema reaches the upstream as 10**30, not 1e+30. `has_big_integer` finds such text cheaply, so
the normal body pays for one orjson pass and a scan in C.
"""

from __future__ import annotations

import json
from typing import Any

import orjson

# A number orjson would read as a float has 20 digits (19 after a minus sign). Such a run holds the bytes at two
# consecutive multiples of 9 (19 bytes span two), so every 9th byte, its digits made "0", rules out nearly every text
# without a "00" there (a pass over a ninth of it); then every digit is made "0", a count of them rules out most of the
# rest, and substring searches find such a run (C; a regular expression tried a match at every byte, ~10 ns a byte).
# A data URL's base64 (the bulk of a body with an image or a file) is string content, no number: past SMALL_TEXT
# bytes it is skipped, from its `;base64,` (which only a string holds) to the next quote.
_DIGITS = bytes.maketrans(b"0123456789", b"0" * 10)
_ZERO = ord("0")
_RUN = b"0" * 19
_LONG_RUN, _NEGATIVE_RUN = _RUN + b"0", b"-" + _RUN
_BASE64 = b";base64,"
SMALL_TEXT = 2048


def has_big_integer(text: bytes) -> bool:
    """Whether `text` may hold an integer orjson cannot read exactly (also true of a long digit run in a string)."""
    if len(text) < 19:  # a short tool call's arguments
        return False
    if len(text) <= SMALL_TEXT:
        return _has_run(text)
    start, mark = 0, text.find(_BASE64)
    while mark >= 0:
        end = text.find(b'"', mark)
        if end < 0:
            break
        if _has_run(text[start:mark]):
            return True
        start, mark = end, text.find(_BASE64, end)
    return _has_run(text[start:])


def _has_run(text: bytes) -> bool:
    # no two digits 9 apart at multiples of 9: no run of 19 (a short text is read whole at about the same cost)
    if len(text) > 160 and b"00" not in text[::9].translate(_DIGITS):
        return False
    digits = text.translate(_DIGITS)
    return digits.count(_ZERO) >= 19 and _RUN in digits and (_LONG_RUN in digits or _NEGATIVE_RUN in digits)


def exact_loads(text: bytes | str) -> Any:
    """JSON as orjson reads it (and refuses it: orjson.JSONDecodeError), but with integers past 64 bits exact: text
    that holds one is read again by the stdlib (RecursionError when it nests deeper than the stdlib recurses)."""
    value = orjson.loads(text)
    if has_big_integer(text if isinstance(text, bytes) else text.encode("utf-8", "surrogatepass")):
        return json.loads(text)
    return value


def dumps(value: Any) -> bytes:
    """JSON bytes: orjson (several times the stdlib's speed on the hot path); the stdlib for what orjson refuses (an
    integer past 64 bits, a lone surrogate a model or upstream produced)."""
    try:
        return orjson.dumps(value)
    except TypeError:
        return json.dumps(value).encode()
