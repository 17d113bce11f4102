"""`tokenomy prices` (the catalog listing) names where every price came from, as its help and the README say."""

import json
import os
import re
import subprocess
import sys

from typer.testing import CliRunner

from tokenomy.cli import app
from tokenomy.pricing.catalog import PriceCatalog
from tokenomy.pricing.lifecycle import lifecycle_label


def test_the_listing_prints_each_rows_source_beside_its_date():
    # The listing printed each row's as-of date but no source (only `--json` and `prices MODEL` did), so a price read
    # in the table could not be checked against the page it came from.
    out = CliRunner().invoke(app, ["prices", "--wide"], env={"COLUMNS": "400"})
    assert out.exit_code == 0, out.output
    notes = dict(re.findall(r"^\[(\d+)\] (.+)$", out.stdout, re.M))
    entries = {(e.provider, e.model, e.region): e for e in PriceCatalog.builtin().entries()}
    checked = 0
    for line in out.stdout.splitlines():
        cells = [c.strip() for c in line.split("│")[1:-1]]
        if len(cells) != 9:
            continue
        model, _, label = cells[1].partition(" (")
        if (cells[0], model, cells[2]) not in entries:
            continue
        entry = entries[(cells[0], model, cells[2])]
        # a model its provider retired (or will) says so beside its id: every call to a retired one fails
        assert (label.rstrip(")") or None) == lifecycle_label(entry), cells
        mark = re.fullmatch(r"(\d{4}-\d{2}-\d{2})(?: \(stale\))? \[(\d+)\]", cells[8])
        assert mark and mark[1] == entry.as_of, cells
        assert notes[mark[2]] == entry.source, (cells, notes.get(mark[2]))
        checked += 1
    assert checked == len(entries)


def test_at_80_columns_no_figure_is_broken_and_every_row_keeps_its_prices_whole():
    # At 80 columns the nine columns were squeezed until "15.0000" printed as "15.000" over "0" and a date as "2026-1"
    # over "1-09"; the listing drops to a narrower layout whose figures stay whole, naming the prices it leaves out.
    env = {**os.environ, "COLUMNS": "80"}
    shown = subprocess.run([sys.executable, "-m", "tokenomy.cli", "prices"], capture_output=True, text=True, env=env)
    assert shown.returncode == 0, shown.stderr
    lines = shown.stdout.splitlines()
    assert max(len(line) for line in lines) <= 80
    table = [[c.strip() for c in line.split("│")[1:-1]] for line in lines if line.startswith("│")]
    listed = json.loads(
        subprocess.run(
            [sys.executable, "-m", "tokenomy.cli", "prices", "--json"], capture_output=True, text=True
        ).stdout
    )
    cells = {cell for row in table for cell in row}
    broken = {e[name] for e in listed for name in ("input", "output", "cache_read") if e[name]} - cells
    assert not broken, f"figures not printed whole in any cell: {sorted(broken)}"
    header = [line for line in lines if line.startswith("┃")]
    columns = [
        " ".join(words).strip()
        for words in zip(*([c.strip() for c in h.split("┃")[1:-1]] for h in header), strict=True)
    ]
    assert columns == ["model", "input", "output", "cache read", "as of"]
    rows: list[list[list[str]]] = []
    for cells in table:
        if re.fullmatch(r"\d{4}-\d{2}-\d{2} \[\d+\]", cells[4]):  # a row's first line: its date and source note
            rows.append([[c] for c in cells])
        else:  # the row goes on: its model id and provider, and "(stale)" under the date; never a part of a figure
            assert cells[1:4] == ["", "", ""] and cells[4] in ("", "(stale)"), cells
            for column, cell in zip(rows[-1], cells, strict=True):
                column.append(cell)
    listed = json.loads(
        subprocess.run(
            [sys.executable, "-m", "tokenomy.cli", "prices", "--json"], capture_output=True, text=True
        ).stdout
    )
    assert len(rows) == len(listed)
    for row, entry in zip(rows, listed, strict=True):
        model, input_price, output_price, cache_read, as_of = row
        assert "".join(model[:-1]).replace(" ", "").startswith(entry["model"].replace(" ", "")), model
        assert model[-1] == f"{entry['provider']}, {entry['region']}"
        assert [input_price[0], output_price[0], cache_read[0]] == [
            entry["input"] or "",
            entry["output"] or "",
            entry["cache_read"] or "-",
        ]
        assert as_of[0].startswith(entry["as_of"] + " [")
    assert "batch in and cache write prices are left out at 80 columns: see them with --wide, --json" in " ".join(
        shown.stdout.split()
    )
    assert all("batch_input" in entry and "cache_write" in entry for entry in listed)
