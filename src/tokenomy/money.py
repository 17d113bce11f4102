"""Money as text: the one rule every JSON, CSV and table output uses to turn a Decimal into a string.

Plain notation (never "7.5E-7"), a fixed number of decimal places per kind, and the same zero
everywhere ("0.000000" for amounts, never "0" beside "0.00" beside "0E-7"):

- ``unit_price``: a price in USD per million tokens, 4 places ("3.0000"). A published price with
  more digits (Nova Micro's cache read, $0.00875) keeps them up to ``MAX_PLACES``: a catalog must
  never print a price it does not charge.
- ``amount``: what something cost, to 1e-6 USD ("0.000750").
- ``record``: a cost as recorded in the ledger (exports, imports round-trip): at least 6 places,
  exact up to ``MAX_PLACES`` so summing exported rows gives the ledger's total.
- ``report``: cents ("12.34") unless the caller asks for more places.

This module depends on nothing else in tokenomy so every layer can use it.
"""

from __future__ import annotations

from decimal import ROUND_HALF_EVEN, Decimal, InvalidOperation, getcontext, localcontext
from typing import Any

MAX_PLACES = 12
# The largest USD figure a command takes (a budget, a price per hour or per 1M tokens, a cost ceiling). $100M is far
# past any real one (a provisioned model unit rents for tens of dollars an hour, the dearest tokens cost hundreds of
# dollars per 1M, a team's monthly budget is thousands), so a bigger figure is a slip of the exponent: 1e300 was
# taken and printed as a 301-digit cost. It is also what the ledger's DECIMAL(20,12) columns hold (ledger.base).
MAX_USD = Decimal(10) ** 8
# Past this many digits a figure typed on the command line is echoed as 1e+300, not as the 301 digits it stands for.
MAX_TYPED_DIGITS = 30
PLACES = {"unit_price": 4, "amount": 6, "record": 6, "report": 2}
# Kinds whose figure is kept exact (up to MAX_PLACES) when it has more digits than the base scale.
_EXACT_TAIL = ("unit_price", "record")
_QUANTA = [Decimal(1).scaleb(-places) for places in range(MAX_PLACES + 1)]  # 1, 0.1, ... 1E-12: made once


def to_decimal(value: Any) -> Decimal:
    """A Decimal from a Decimal, int, str or float (floats via their shortest repr, not binary noise)."""
    if isinstance(value, Decimal):
        return value
    if isinstance(value, bool):
        raise TypeError("a bool is not an amount of money")
    try:
        return Decimal(str(value))
    except InvalidOperation as exc:
        raise ValueError(f"{value!r} is not a number") from exc


def places_for(value: Decimal, kind: str) -> int:
    """How many decimal places `value` is written with under `kind`."""
    if kind not in PLACES:
        raise ValueError(f"unknown money kind {kind!r}; use one of {', '.join(PLACES)}")
    base = PLACES[kind]
    if kind in _EXACT_TAIL and value.is_finite():
        with localcontext() as context:
            context.prec = max(context.prec, value.adjusted() + MAX_PLACES + 2)
            exponent = value.quantize(_QUANTA[MAX_PLACES], ROUND_HALF_EVEN).normalize().as_tuple().exponent
        assert isinstance(exponent, int)
        return min(MAX_PLACES, max(base, -exponent))
    return base


def money_str(value: Any, kind: str = "amount", places: int | None = None) -> str:
    """`value` as plain decimal text with the scale of `kind` (or exactly `places` decimals)."""
    number = to_decimal(value)
    if not number.is_finite():
        raise ValueError(f"{number} is not an amount of money")
    scale = places if places is not None else places_for(number, kind)
    quantum = _QUANTA[scale] if 0 <= scale <= MAX_PLACES else Decimal(1).scaleb(-scale)
    digits = number.adjusted() + scale + 2
    if digits <= getcontext().prec:  # every amount a ledger holds: no context to make on the hot path
        rounded = number.quantize(quantum, ROUND_HALF_EVEN)
    else:
        with localcontext() as context:  # enough digits for any finite amount (28 raised InvalidOperation from ~1e22)
            context.prec = digits
            rounded = number.quantize(quantum, ROUND_HALF_EVEN)
    if rounded.is_zero():
        rounded = Decimal(0).quantize(quantum)  # one zero: never "-0.00" or "0E-7"
    return format(rounded, "f")


# A cost's text -> its record text (`record_str`). Bounded: emptied when full, as the costs a process meets repeat.
_RECORDED: dict[str, str] = {}
_RECORDED_MAX = 4096


def record_str(value: Decimal) -> str:
    """`money_str(value, "record")`, cached: a gateway writes the same few costs over and over (in each answer's
    `tokenomy` object, five in each ledger row), ~3 µs each to format. Keyed by the value's own text, not by the
    Decimal: hashing a cost such as 0.000198 is a modular power (~5,000 instructions), its text a few hundred, and
    the text is the value exactly (equal values spelled apart, 0.1 and 0.10, only take two entries)."""
    key = str(value)
    text = _RECORDED.get(key)
    if text is None:
        text = money_str(value, "record")
        if len(_RECORDED) >= _RECORDED_MAX:
            _RECORDED.clear()
        _RECORDED[key] = text
    return text


def money_or_none(value: Any, kind: str = "amount", places: int | None = None) -> str | None:
    """`money_str`, passing None through (a price the provider does not publish)."""
    return None if value is None else money_str(value, kind, places)


def typed(value: Any) -> str:
    """A figure the user typed, echoed in an error message: plain and exact ("0.0000001", never "1e-07" or
    "1E+20", which nobody typed), not rounded to a scale (a wrong amount must not read as a right-looking one).
    NaN and infinities have no plain notation and are echoed as they are; a figure whose plain form runs past
    MAX_TYPED_DIGITS digits (1e300, 1e-40) in the short form it was typed in ("1e+300")."""
    number = to_decimal(value)
    if not number.is_finite():
        return str(value)
    with localcontext() as context:
        context.prec = max(context.prec, len(number.as_tuple().digits))
        number = number.normalize()
        exponent = number.as_tuple().exponent
        assert isinstance(exponent, int)
        if max(number.adjusted() + 1, -exponent) > MAX_TYPED_DIGITS:
            return str(number).lower()
        return format(number, "f")


def usd(value: Any, kind: str = "report", places: int | None = None) -> str:
    """For people: "$1,234.56" (grouped thousands, same scale rules); None is "-"."""
    if value is None:
        return "-"
    text = money_str(value, kind, places)
    sign, digits = ("-", text[1:]) if text.startswith("-") else ("", text)
    whole, _, fraction = digits.partition(".")
    grouped = f"{int(whole):,}"
    return f"{sign}${grouped}.{fraction}" if fraction else f"{sign}${grouped}"
