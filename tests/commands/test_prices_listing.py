"""`tokenomy prices` (the catalog listing) names where every price came from, as its help and the README say."""

import re

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
