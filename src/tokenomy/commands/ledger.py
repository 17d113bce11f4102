"""`tokenomy ledger import|export|stats`."""

from __future__ import annotations

import functools
import sys
from datetime import datetime
from pathlib import Path
from typing import Optional

import typer

from tokenomy.commands._common import JsonOption, LedgerOption, replacing
from tokenomy.commands._options import output_file, when_option
from tokenomy.commands._output import console, err_console, print_json, report_cell, table, usd

ledger_app = typer.Typer(
    help="The usage ledger: one row per call (a DuckDB file, PostgreSQL or ClickHouse).", no_args_is_help=True
)


def register(app: typer.Typer) -> None:
    app.add_typer(ledger_app, name="ledger")


@ledger_app.command("import")
def import_(
    file: Path = typer.Argument(
        ...,
        help="JSONL or CSV of usage events (ts, provider, model, region, mode, "
        "task, tags, input_tokens, output_tokens, cache_read_tokens, cache_write_tokens, "
        "latency_ms, ttft_ms, outcome). Cost is computed when not given. A line without event_id gets one "
        "from its content, so importing the same file again adds nothing.",
    ),
    ledger: Optional[str] = LedgerOption,
    as_json: bool = JsonOption,
) -> None:
    """Import usage events; bad lines are reported by line and field, good lines are kept.

    Exit status: 0 when every line was imported (or was already there); 1 when any line was rejected (the
    good lines are still imported); 2 when the file or ledger cannot be used."""
    from tokenomy.commands._common import new_duckdb_file, open_existing_ledger
    from tokenomy.ledger.io import import_file, require_file
    from tokenomy.ledger.store import ledger_target

    ledger_target(ledger)  # a wrong URL scheme is named first
    require_file(file)  # then the file, before a new ledger is made for nothing
    # Importing may start a ledger, at the first good line: a file of bad lines leaves none behind. One that is
    # there (or a server) is opened now, so that a ledger that cannot be used is named before the lines.
    opener = functools.partial(open_existing_ledger, ledger, must_exist=False)
    result = import_file(file, opener if new_duckdb_file(ledger) else opener())
    if as_json:
        print_json(result.to_json())
    else:
        for error in result.errors:
            err_console.print(f"[red]{error}[/red]", markup=True, highlight=False)
        present = (
            f"; {result.already_present} already in the ledger (same event_id), skipped"
            if result.already_present
            else ""
        )
        console.print(f"imported {result.imported} event(s); rejected {len(result.errors)}{present}")
    if result.errors:
        raise typer.Exit(1)


@ledger_app.command("export")
def export(
    output: Optional[Path] = typer.Option(
        None, "-o", "--output", help="File to write (default, or `-`: stdout).", callback=output_file
    ),
    fmt: str = typer.Option("jsonl", "--format", help="jsonl or csv."),
    since: Optional[datetime] = when_option("--since", "Only events at or after this UTC time."),
    until: Optional[datetime] = when_option("--until", "Only events before this UTC time."),
    ledger: Optional[str] = LedgerOption,
) -> None:
    """Export events as JSONL or CSV (re-importable)."""

    from tokenomy.commands._common import open_existing_ledger
    from tokenomy.commands._options import utc_window
    from tokenomy.ledger.io import export_events

    since, until = utc_window(since, until)
    events = open_existing_ledger(ledger).events(since, until)
    if output and str(output) != "-":  # `-o -` is stdout, as for most tools (it wrote a file named "-")
        with replacing(output, newline="") as handle:  # a bad --format or Ctrl-C leaves an existing file as it was
            count = export_events(events, handle, fmt)
        err_console.print(f"wrote {count} event(s) to {output}")
    else:
        export_events(events, sys.stdout, fmt)


@ledger_app.command("stats")
def stats(
    since: Optional[datetime] = when_option("--since", "Only events at or after this UTC time."),
    until: Optional[datetime] = when_option("--until", "Only events before this UTC time."),
    ledger: Optional[str] = LedgerOption,
    as_json: bool = JsonOption,
) -> None:
    """Spend summary: requests, tokens by type, cache-read share, cost, p50/p95 latency per model.

    Requests and latency count answered calls; tokens and cost count every recorded attempt (a stream cancelled
    part-way was billed), so the cost matches `tokenomy report spend` over the same --since/--until."""
    from tokenomy.commands._common import open_existing_ledger
    from tokenomy.commands._options import utc_window
    from tokenomy.ledger.summary import spend_summary

    since, until = utc_window(since, until)
    # read-only: a missing ledger is an error, not created
    rows = spend_summary(open_existing_ledger(ledger), since, until)
    if as_json:
        print_json(rows, money="amount")  # the figures its table and `report spend --json` print
        return
    if len(rows) == 1:  # only the ALL row: a table of zeros read as calls that cost nothing
        span = f" from {since:%Y-%m-%d %H:%M}" if since else ""
        span += f" until {until:%Y-%m-%d %H:%M}" if until else ""
        hint = "widen --since/--until" if span else "record some (`tokenomy demo`, `tokenomy chat`, `tokenomy serve`)"
        console.print(f"ledger stats: no usage in the ledger{span}; {hint}, or check --ledger")
        return
    print_summary(rows)


def print_summary(rows: list[dict], title: str = "Spend summary") -> None:
    console.print(
        table(
            title,
            [
                "model",
                "requests",
                "input",
                "output",
                "cache read",
                "cache write",
                "cache-read share",
                "cost",
                "p50 ms",
                "p95 ms",
            ],
            [
                [
                    r["model"],
                    f"{r['requests']:,}",
                    f"{r['input_tokens']:,}",
                    f"{r['output_tokens']:,}",
                    f"{r['cache_read_tokens']:,}",
                    f"{r['cache_write_tokens']:,}",
                    f"{r['cache_read_share']:.1%}",
                    usd(r["cost_usd"]),
                    # as `report latency` prints them (grouped, to 0.1 ms); "-" when no call was answered
                    report_cell("p50_ms", r["latency_p50_ms"]) or "-",
                    report_cell("p95_ms", r["latency_p95_ms"]) or "-",
                ]
                for r in rows
            ],
        )
    )
