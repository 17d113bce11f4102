"""`tokenomy import otel|cur|llm-log FILE`: usage recorded elsewhere, added to the ledger."""

from __future__ import annotations

from typing import Optional

import typer

from tokenomy.commands._common import (
    JsonOption,
    LedgerOption,
    PricesOption,
    apply_prices,
    console,
    err_console,
    print_json,
    table,
)

import_app = typer.Typer(
    help="Import usage from OpenTelemetry spans, AWS CUR/FOCUS exports or the llm CLI's log.", no_args_is_help=True
)


def register(app: typer.Typer) -> None:
    app.add_typer(import_app, name="import")


def _run(kind: str, file: str, ledger: Optional[str], as_json: bool, prices: Optional[str] = None) -> None:
    from tokenomy.analytics.imports import IMPORTERS
    from tokenomy.commands._common import open_existing_ledger

    apply_prices(prices)  # the unpriced-model hint below points here

    store = open_existing_ledger(ledger, must_exist=False)  # a new ledger is fine; a directory is an error
    before = store.count()
    result = IMPORTERS[kind](file)
    store.write(result.events)
    added = store.count() - before  # re-imported records keep their ids and are not added twice
    summary = {
        "source": result.source,
        "read": len(result.events),
        "added": added,
        "already_in_ledger": len(result.events) - added,
        "skipped_not_llm_usage": result.skipped,
        "problems": result.problems,
        "unpriced_models": sorted(result.unpriced_models),
    }
    if as_json:
        print_json(summary)
    else:
        console.print(
            table(
                f"import {kind}",
                ["figure", "value"],
                [
                    ["records read", summary["read"]],
                    ["added to the ledger", added],
                    ["already in the ledger", summary["already_in_ledger"]],
                    ["skipped (not LLM usage)", result.skipped],
                    ["problems", len(result.problems)],
                ],
            )
        )
        if result.unpriced_models:
            console.print(
                f"not in the price catalog (cost 0): {', '.join(sorted(result.unpriced_models))}; "
                f"price them with a price file: `tokenomy import {kind} FILE --prices prices.yaml`"
            )
        for problem in result.problems:
            err_console.print(problem, markup=False, highlight=False)
    if result.problems:
        raise typer.Exit(1)  # the good records are in the ledger; the bad ones are listed above


@import_app.command("otel")
def otel(
    file: str = typer.Argument(..., help="OTLP JSON trace export (one document, or one per line)."),
    ledger: Optional[str] = LedgerOption,
    as_json: bool = JsonOption,
    prices: Optional[str] = PricesOption,
) -> None:
    """GenAI spans (gen_ai.* attributes, old and new names) as ledger events priced from the catalog."""
    _run("otel", file, ledger, as_json, prices)


@import_app.command("cur")
def cur(
    file: str = typer.Argument(..., help="AWS CUR 2.0, legacy CUR or FOCUS export (CSV, CSV.gz, Parquet)."),
    ledger: Optional[str] = LedgerOption,
    as_json: bool = JsonOption,
) -> None:
    """Bedrock input/output/cache-read/cache-write token line items, with the billed cost."""
    _run("cur", file, ledger, as_json)


@import_app.command("llm-log")
def llm_log(
    file: str = typer.Argument(..., help="The llm CLI's logs.db (see `llm logs path`)."),
    ledger: Optional[str] = LedgerOption,
    as_json: bool = JsonOption,
    prices: Optional[str] = PricesOption,
) -> None:
    """Prompts logged by Simon Willison's llm tool: model, tokens, duration, time."""
    _run("llm-log", file, ledger, as_json, prices)
