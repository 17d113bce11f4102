"""`tokenomy report reconcile`: metered against billed cost per day, provider and model."""

from __future__ import annotations

import csv
import sys
from datetime import datetime
from decimal import Decimal
from typing import Any, Optional

from tokenomy.commands._output import console, csv_cell, print_json, table, usd

COLUMNS = ["day", "provider", "model", "metered_usd", "billed_usd", "difference_usd", "difference_pct", "status"]


def _money(value: Decimal | None) -> str:
    return "—" if value is None else usd(value)


def _csv_value(value: Any) -> Any:
    """A cell as the JSON has it; a list (billed_models) as its items joined by ";", which no model id holds."""
    if isinstance(value, list):
        return csv_cell(";".join(map(str, value)))
    return csv_cell(value, "amount")


def show_reconcile(
    store: Any,
    by: Optional[str],
    since: Optional[datetime],
    until: Optional[datetime],
    tolerance_pct: float,
    as_json: bool,
    as_csv: bool,
) -> None:
    from tokenomy.analytics.reconcile import reconcile

    rows = reconcile(store, by or "model", since, until, tolerance_pct)
    flagged = [r for r in rows if r["flagged"]]
    if as_json:
        print_json({"tolerance_pct": tolerance_pct, "flagged": len(flagged), "rows": rows}, money="amount")
        return
    columns = [c for c in COLUMNS if c != "model" or by != "provider"]
    if as_csv:
        # Every field the JSON rows have (metered_calls, billed_models were left out), the table's first.
        fields = [*columns, *(k for k in (rows[0] if rows else {}) if k not in columns)]
        writer = csv.DictWriter(sys.stdout, fieldnames=fields)
        writer.writeheader()
        writer.writerows({k: _csv_value(r.get(k)) for k in fields} for r in rows)
        return
    if not rows:
        console.print("report reconcile: no metered or billed usage in the window; widen --since/--until")
        return
    body = [
        [
            *(r[c] for c in columns[: columns.index("metered_usd")]),
            _money(r["metered_usd"]),
            _money(r["billed_usd"]),
            _money(r["difference_usd"]),
            "—" if r["difference_pct"] is None else f"{r['difference_pct']}%",
            ("! " if r["flagged"] else "") + r["status"],
        ]
        for r in rows
    ]
    console.print(table("report reconcile", columns, body))
    unmetered = sum((r["unmetered_usd"] for r in rows), Decimal(0))
    console.print(
        f"{len(flagged)} of {len(rows)} rows past ±{tolerance_pct:g}%; unmetered spend {usd(unmetered)}",
        markup=False,
        highlight=False,
    )
    for r in flagged:
        where = f"{r['day']} {r['provider']} {r.get('model', '')}".rstrip()
        console.print(f"  {where}: {r['cause']}", markup=False, highlight=False)
