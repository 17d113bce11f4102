"""`tokenomy report NAME`: preset cost reports over the ledger; `--html FILE`: the dashboard as one file."""

from __future__ import annotations

from datetime import datetime, timezone
from pathlib import Path
from typing import Optional

import typer

from tokenomy.commands._common import JsonOption, LedgerOption, console, print_json, table


def register(app: typer.Typer) -> None:
    app.command("report")(report)


def report(
    name: Optional[str] = typer.Argument(None, help="Preset: spend, tokens, hourly-tokens, cache-hit-rate, latency, errors, cost-per-task, tier-share, batch-share."),
    by: str = typer.Option("model", "--by", help="Group by model, provider, region, task, tier ..."),
    since: Optional[datetime] = typer.Option(None, "--since", help="Start (UTC, inclusive)."),
    until: Optional[datetime] = typer.Option(None, "--until", help="End (UTC, exclusive)."),
    ledger: Optional[str] = LedgerOption,
    as_json: bool = JsonOption,
    as_csv: bool = typer.Option(False, "--csv", help="Print CSV instead of a table."),
    html: Optional[Path] = typer.Option(None, "--html", help="Write the dashboard's charts for "
                                        "--since/--until as one self-contained HTML file (opens offline)."),
) -> None:
    """Run a preset report over the ledger and print it, or write all charts to one HTML file."""
    from tokenomy.analytics.reports import run_report
    from tokenomy.ledger.store import open_store

    if html is not None:
        from tokenomy.analytics.dashboard import write_report_html
        from tokenomy.analytics.dashboard_data import Filters

        utc = [t.replace(tzinfo=timezone.utc) if t and t.tzinfo is None else t for t in (since, until)]
        console.print(f"wrote {write_report_html(open_store(ledger), Filters(*utc), html)}")
        return
    if name is None:
        from tokenomy.errors import UsageError

        raise UsageError("give a report NAME (e.g. `tokenomy report spend`) or --html FILE for the charts")
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
