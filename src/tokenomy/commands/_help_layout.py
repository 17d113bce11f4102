"""The layout of `--help`'s option tables on a narrow terminal: every word whole.

Typer prints each option as a row of columns (names, type and range, help) and leaves their widths to Rich, which
shrinks the widest column first and then every column evenly. At 80 columns the help got about 22 characters, as
little as the names, and Rich cut what did not fit: `--batch-pending-secon…`, `[default: anthropic.claude-3-7-…`.
Typer's commands table does not have the problem: its description column takes what the names leave (a ratio). The
option tables get the same: the help column takes the width the names and types leave, and when that is less than
its longest word or half the table, a type's range goes under it and the empty columns' padding is shared.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

from rich.cells import cell_len
from rich.columns import Columns
from rich.console import Console, ConsoleOptions, RenderableType
from rich.measure import Measurement
from rich.table import Column, Table
from rich.text import Text


class _OptionsTable(Table):
    """Typer's table, laid out so that the help column gets the width its longest word needs first."""

    def __rich_console__(self, console: Console, options: ConsoleOptions) -> Iterator[Any]:
        if self.columns and not any(column.ratio for column in self.columns):  # the commands table has its ratio
            _fit(self, console, options)
        yield from super().__rich_console__(console, options)


def _fit(table: Table, console: Console, options: ConsoleOptions) -> None:
    *others, help_column = table.columns
    help_column.ratio = 1  # the help takes what the names and types leave, as the description of a command does

    def width(column: Column, which: str) -> int:
        return max((getattr(_measure(console, options, cell), which) for cell in column.cells), default=0)

    gaps = 2 * len(others)  # padding (0, 1) on each side of a column, none at the table's edges
    # The help keeps its longest word, and half the width: the names and types are short, the help is sentences.
    wanted = max(width(help_column, "minimum"), options.max_width // 2)
    if sum(width(c, "maximum") for c in others) + gaps + wanted > options.max_width:
        table.collapse_padding = True  # one space between columns, and none doubled around the empty name columns
        for column in others:  # "<float range> [x>=0]" on two lines, the type above its range
            column.max_width = max((_widest_part(console, options, cell) for cell in column.cells), default=0)


def _measure(console: Console, options: ConsoleOptions, cell: RenderableType) -> Measurement:
    """A cell's widths. Typer's help cell is a Columns (help, default, range side by side), which Rich measures as
    "0 to any width": it is measured by its parts."""
    if isinstance(cell, Columns):
        parts = [Measurement.get(console, options, part) for part in cell.renderables]
        return Measurement(max((p.minimum for p in parts), default=0), sum(p.maximum for p in parts))
    return Measurement.get(console, options, cell)


def _widest_part(console: Console, options: ConsoleOptions, cell: RenderableType) -> int:
    """The width a names or types cell needs with its type and its range each kept on one line (Typer writes
    "<float range> [x>=0]")."""
    if isinstance(cell, Text):
        return max(cell_len(part) for part in cell.plain.replace(" [", "\n[").split("\n"))
    return _measure(console, options, cell).minimum


def fit_option_tables() -> None:
    """Lay out Typer's option tables with `_OptionsTable` (Typer makes them with the `Table` of its rich_utils)."""
    try:
        from typer import rich_utils
    except ImportError:  # Typer without Rich: click's plain help, which wraps at spaces
        return
    setattr(rich_utils, "Table", _OptionsTable)  # noqa: B010  (mypy refuses assigning to a class)
