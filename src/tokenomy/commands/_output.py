"""What commands print and how: the consoles, JSON and CSV that keep Decimals exact (the one money rule) and floats
plain, and tables that align figures and never cut a cell."""

from __future__ import annotations

import functools
import json
import os
import re
import sys
from datetime import date, datetime
from decimal import ROUND_HALF_EVEN, Decimal
from typing import Any

import typer
from rich.console import Console
from rich.table import Table

from tokenomy.money import money_str
from tokenomy.money import usd as money_usd

# Pipes and CI logs get a wide, fixed layout so tables aren't squeezed to 80 columns.
_WIDTH = None if sys.stdout.isatty() else int(os.environ.get("COLUMNS", "140"))
console = Console(width=_WIDTH)
# soft_wrap: a message on stderr stays one line however long (scripts grep it; tables still fit the width).
err_console = Console(stderr=True, width=_WIDTH, soft_wrap=True)


def _default(value: Any, money: str = "record") -> Any:
    if isinstance(value, Decimal):  # the one money rule: plain text, never "0E-7" or 28 decimals
        return money_str(value, money)
    if isinstance(value, (datetime, date)):
        return value.isoformat().replace("+00:00", "Z")
    if hasattr(value, "to_json"):
        return value.to_json()
    raise TypeError(f"cannot serialise {type(value).__name__}")


_TWELVE_PLACES = Decimal("1E-12")


def _plain_float(value: float) -> str:
    """A float as a JSON number in plain notation, at most 12 decimals (never "1e-05" or 17 digits of noise)."""
    if value != value or value in (float("inf"), float("-inf")):
        raise ValueError(f"{value} cannot be written as JSON")
    # From the float's shortest repr (its meaningful digits), not `format(value, ".12f")`, which writes the binary
    # expansion: 766666.6666666666 came out as 766666.666666666628.
    number = Decimal(repr(float(value)))  # float(): a numpy float's repr is "np.float64(0.5)"
    exponent = number.as_tuple().exponent
    if isinstance(exponent, int) and exponent < -12:
        number = number.quantize(_TWELVE_PLACES, ROUND_HALF_EVEN)
    text = format(number, "f")
    text = text.rstrip("0") if "." in text else text + "."
    text = text + "0" if text.endswith(".") else text
    return "0.0" if text == "-0.0" else text


class _PlainJSONEncoder(json.JSONEncoder):
    """The standard encoder with floats written by `_plain_float` (Decimals go through `_default`)."""

    def iterencode(self, o: Any, _one_shot: bool = False) -> Any:
        encoder: Any = json.encoder  # the stdlib module; its private hook is not in the type stubs
        strings = encoder.encode_basestring_ascii if self.ensure_ascii else encoder.encode_basestring
        return encoder._make_iterencode(  # the one hook for float text in the stdlib encoder
            {} if self.check_circular else None,
            self.default,
            strings,
            self.indent,
            _plain_float,
            self.key_separator,
            self.item_separator,
            self.sort_keys,
            self.skipkeys,
            _one_shot,
        )(o, 0)


# A spreadsheet runs a cell that starts with one of these as a formula (OWASP's "CSV injection").
FORMULA_STARTS = ("=", "+", "-", "@", "\t", "\r")


def csv_cell(value: Any, money: str = "record") -> Any:
    """A CSV value by the same rules as JSON: money by the one money rule (of kind `money`), floats plain.

    Text a caller chose (a tag sent in a request header, a route or model name) that a spreadsheet would run as a
    formula gets a leading `'`, so a report opened in Excel shows it instead of running `=HYPERLINK(...)`."""
    if isinstance(value, Decimal):
        return money_str(value, money)
    if isinstance(value, bool):  # as JSON writes it: "true", not Python's "True" (reconcile's flagged column)
        return "true" if value else "false"
    if isinstance(value, (datetime, date)):  # as JSON writes it: "2026-11-01T00:00:00Z", not str()'s "+00:00"
        return _default(value)
    if isinstance(value, float) and value == value and value not in (float("inf"), float("-inf")):
        return _plain_float(value)
    if isinstance(value, str) and value.startswith(FORMULA_STARTS) and not _signed_number(value):
        return "'" + value
    return value


def _signed_number(text: str) -> bool:
    """A number with its sign ("-0.5"), which a spreadsheet reads as a number, not a formula."""
    try:
        float(text)
    except ValueError:
        return False
    return text[0] in "+-"


def dumps(data: Any, money: str = "record") -> str:
    """JSON text; Decimals by the money rule of kind `money`: "record" (exact, what the ledger holds) or "amount"
    (fixed 6 places, so every figure of a report or plan has the same scale)."""
    return json.dumps(data, default=functools.partial(_default, money=money), indent=2, cls=_PlainJSONEncoder)


def print_json(data: Any, money: str = "record") -> None:
    """Print JSON to stdout without Rich markup or wrapping (Decimals as `dumps` writes them)."""
    typer.echo(dumps(data, money))


def table(
    title: str | None,
    columns: list[str],
    rows: list[list[Any]],
    text_columns: tuple[str, ...] = (),
    key_columns: tuple[str, ...] = (),
) -> Table:
    """Numbers right-aligned; the first column, any `text_columns` (sentences, reasons) and any column with a cell
    that is not a figure (a model id, a team, a status) left-aligned.

    Nothing is cut with "…": a cell too wide for the terminal wraps (a long id folds onto the next line, whole), and
    `print_table(..., wide=True)` prints at the table's natural width instead. `key_columns` (e.g. a model id that
    is not the first column) are left-aligned like the first."""
    cells = [["" if v is None else str(v) for v in row] for row in rows]
    result = Table(title=title, show_lines=False, header_style="bold")
    for index, column in enumerate(columns):
        words = any(index < len(row) and not _FIGURE.match(row[index]) for row in cells)
        left = index == 0 or column in text_columns or column in key_columns or words
        result.add_column(column, justify="left" if left else "right", overflow="fold")
    for row in cells:
        result.add_row(*row)
    return result


# A cell that reads as a figure: "1,234", "-0.5", "$0.000750", "12.5%", "+3.0%", "1011.1", or blank / a dash for none.
_FIGURE = re.compile(r"^(|[-—]|[-+]?\$?[\d,]*\.?\d+(%|x)?)$")


def print_table(result: Table, wide: bool = False) -> None:
    """Print a table; `wide`: at its natural width (one line per row, for a wide terminal or a pipe)."""
    if not wide:
        console.print(result)
        return
    natural = console.measure(result, options=console.options.update(width=10_000)).maximum
    Console(width=natural, force_terminal=console.is_terminal, no_color=console.no_color).print(result)


WideOption = typer.Option(False, "--wide", help="Print tables at full width (one line per row, nothing wrapped).")


def report_row(columns: list[str], row: dict[str, Any]) -> list[str]:
    """A report row as people read it; its group (the first column) with no value, e.g. calls recorded without a
    task, reads "(none)" as the reports that name it in SQL do, never a blank."""
    return [report_cell(c, row[c]) if row[c] is not None or i else "(none)" for i, c in enumerate(columns)]


def report_cell(column: str, value: Any) -> str:
    """A report value as people read it: money with $, rates and shares as percentages, big counts grouped."""
    if value is None:
        return ""
    if isinstance(value, Decimal):
        return money_usd(value, "amount")
    if isinstance(value, float):
        if column == "delta":  # tier-share: actual minus expected share, in percentage points
            return f"{value:+.1%}"
        if column.endswith(("_rate", "_share")) or column == "share":
            return f"{value:.1%}"
        return f"{value:,.1f}"
    if isinstance(value, int):
        return f"{value:,}"
    if isinstance(value, datetime):
        return value.strftime("%Y-%m-%d %H:%M") if (value.hour or value.minute) else value.strftime("%Y-%m-%d")
    return str(value)


def usd(value: Decimal | None, places: int = 6) -> str:
    return money_usd(value, "amount", places)


def usd_short(value: Decimal | float | str | None) -> str:
    """$50.00, $0.45 or $0.001 (cents, or the digits that matter), never a catalog's trailing zeros; None is "-"."""
    if value is None:
        return "-"
    value = Decimal(str(value))
    if value == value.quantize(Decimal("0.01")):
        return money_usd(value, "report")
    return money_usd(value, "record", min(12, max(2, -int(value.normalize().as_tuple().exponent))))
