"""The table `tokenomy prices` prints: every column where the terminal has room for it, else a narrower layout that
never breaks a figure across lines (a price, a date) and names what it leaves to `--wide`, `--json` or
`tokenomy prices MODEL`."""

from __future__ import annotations

from typing import Any

from rich.table import Table

from tokenomy.commands._output import console, table
from tokenomy.money import money_or_none
from tokenomy.pricing.entry import PriceEntry
from tokenomy.pricing.lifecycle import lifecycle_label

TITLE = "Prices (USD per 1M tokens)"
PRICES = ("input", "output", "batch in", "cache read", "cache write")
FIELDS = ("input", "output", "batch_input", "cache_read", "cache_write")
# Left out first when the terminal is narrow: the three other prices are the ones most calls pay.
SECONDARY = ("batch in", "cache write")
# The narrowest the model column gets in the narrow layout before it leaves SECONDARY out (a Bedrock id folds onto
# two lines of it).
MODEL_ROOM = 24
DATE = len("2026-11-09")


def prices_table(entries: list[PriceEntry], notes: dict[str, int], stale: set[int], wide: bool) -> tuple[Table, str]:
    """The table of `entries` (`notes`: each source's note number; `stale`: ids of entries flagged stale) for a
    terminal of the console's width, and a line saying which columns it leaves out ("" for none)."""
    rows = [_row(e, notes[e.source], id(e) in stale) for e in entries]
    full = table(
        TITLE,
        ["provider", "model", "region", *PRICES, "as of"],
        [[r["provider"], r["model"], r["region"], *r["prices"], r["as_of"]] for r in rows],
        key_columns=("model",),
    )
    width = console.width
    if wide or console.measure(full, options=console.options.update(width=10_000)).maximum <= width:
        return _unbroken(full, PRICES), ""
    shown: tuple[str, ...] = PRICES
    if _model_room(rows, shown, width) < MODEL_ROOM:
        shown = tuple(p for p in PRICES if p not in SECONDARY)
    narrow = table(
        TITLE,
        ["model", *(p.replace(" ", "\n") for p in shown), "as of"],
        [[f"{r['model']}\n{r['provider']}, {r['region']}", *_figures(r, shown), r["as_of_narrow"]] for r in rows],
    )
    if _model_room(rows, shown, width) >= DATE:  # else so narrow that Rich would crop a figure kept on one line
        narrow = _unbroken(narrow, shown, "as of")
    left_out = [p for p in PRICES if p not in shown]
    note = (
        f"{' and '.join(left_out)} prices are left out at {width} columns: see them with --wide, --json or "
        "`tokenomy prices MODEL`, or in a wider terminal"
        if left_out
        else ""
    )
    return narrow, note


def _row(entry: PriceEntry, note: int, stale: bool) -> dict[str, Any]:
    label = lifecycle_label(entry)
    return {
        "provider": entry.provider,
        "model": entry.model + (f" ({label})" if label else ""),  # a retired model fails every call
        "region": entry.region,
        "prices": [
            money_or_none(getattr(entry, name), "unit_price") or ("-" if name not in ("input", "output") else "")
            for name in FIELDS
        ],
        "as_of": entry.as_of + (" (stale)" if stale else "") + f" [{note}]",
        "as_of_narrow": f"{entry.as_of} [{note}]" + ("\n(stale)" if stale else ""),  # the date and its note whole
    }


def _figures(row: dict[str, Any], shown: tuple[str, ...]) -> list[str]:
    return [row["prices"][PRICES.index(p)] for p in shown]


def _model_room(rows: list[dict[str, Any]], shown: tuple[str, ...], width: int) -> int:
    """What the model column of the narrow layout gets at `width`: the rest after the prices and the as-of dates (each
    at its widest cell or header line) and the table's borders and padding (3 a column, one more for the edge)."""
    figures = sum(
        max(len(p.split(" ")[0]), len(p.split(" ")[-1]), *(len(r["prices"][PRICES.index(p)]) for r in rows))
        for p in shown
    )  # the headers print as two lines ("cache" over "read")
    dates = max((len(line) for r in rows for line in r["as_of_narrow"].splitlines()), default=DATE)
    return width - figures - dates - 3 * (len(shown) + 2) - 1


def _unbroken(result: Table, figures: tuple[str, ...], *more: str) -> Table:
    """`result` with its figure columns (and `more`) kept on one line: "15.0000", never "15.000" over "0"."""
    keep = {name.replace(" ", "\n") for name in figures} | set(figures) | set(more)
    for column in result.columns:
        if column.header in keep:
            column.no_wrap = True
    return result
