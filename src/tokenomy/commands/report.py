"""`tokenomy report NAME`: preset cost reports over the ledger."""

from __future__ import annotations

from datetime import datetime
from typing import Optional

import typer

from tokenomy.commands._common import JsonOption, LedgerOption, console, print_json, table


def register(app: typer.Typer) -> None:
    app.command("report")(report)


def report(
    name: str = typer.Argument(..., help="Preset: spend, tokens, hourly-tokens, cache-hit-rate, latency, errors, cost-per-task, tier-share, batch-share."),
    by: str = typer.Option("model", "--by", help="Group by model, provider, region, task, tier ..."),
    since: Optional[datetime] = typer.Option(None, "--since", help="Start (UTC, inclusive)."),
    until: Optional[datetime] = typer.Option(None, "--until", help="End (UTC, exclusive)."),
    ledger: Optional[str] = LedgerOption,
    as_json: bool = JsonOption,
    as_csv: bool = typer.Option(False, "--csv", help="Print CSV instead of a table."),
) -> None:
    """Run a preset report over the ledger and print it."""
    from tokenomy.analytics.reports import run_report
    from tokenomy.ledger.store import open_store

    rows = run_report(open_store(ledger), name, by=by, since=since, until=until)
    if as_json:
        print_json(rows)
        return
    columns = list(rows[0]) if rows else [by]
    if as_csv:
        import csv
        import sys

        writer = csv.DictWriter(sys.stdout, fieldnames=columns)
        writer.writeheader()
        writer.writerows(rows)
        return
    console.print(table(f"report {name}", columns, [[r[c] for c in columns] for r in rows]))
