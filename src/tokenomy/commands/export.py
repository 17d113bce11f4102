"""`tokenomy export focus`: the ledger as a FinOps FOCUS 1.2 cost file."""

from __future__ import annotations

from typing import Optional

import typer

from tokenomy.commands._common import LedgerOption
from tokenomy.commands._options import output_file
from tokenomy.commands._output import console
from tokenomy.errors import UsageError

export_app = typer.Typer(help="Export ledger costs in standard billing formats.", no_args_is_help=True)


def register(app: typer.Typer) -> None:
    app.add_typer(export_app, name="export")


@export_app.command("focus")
def focus(
    output: str = typer.Option(..., "-o", "--output", help="CSV file to write.", callback=output_file),
    version: str = typer.Option("1.2", "--version", help="FOCUS version (1.2)."),
    ledger: Optional[str] = LedgerOption,
) -> None:
    """Write one FOCUS 1.2 row per model x token type x day."""
    from tokenomy.analytics.billed import spend_events
    from tokenomy.analytics.focus import write_focus_csv
    from tokenomy.commands._common import open_existing_ledger

    if version != "1.2":
        raise UsageError(f"--version {version}: only FOCUS 1.2 is supported; pass --version 1.2")
    count = write_focus_csv(spend_events(open_existing_ledger(ledger)), output)  # bills never double a metered day
    console.print(f"wrote {count} FOCUS 1.2 rows to {output}")
