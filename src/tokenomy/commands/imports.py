"""`tokenomy import ...`: usage recorded elsewhere (otel, cur, llm-log) and provider billing data (openai-usage,
anthropic-usage, focus, gcp-billing), added to the ledger."""

from __future__ import annotations

from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from typing import Any, Optional

import typer

from tokenomy.commands._common import JsonOption, LedgerOption, PricesOption, apply_prices, takes_prices
from tokenomy.commands._options import http_url, when_option
from tokenomy.commands._output import console, err_console, print_json, table

import_app = typer.Typer(
    help="Import usage from OpenTelemetry spans, the llm CLI's log, and billing data (OpenAI / Anthropic usage and "
    "cost APIs, AWS CUR, FOCUS exports of any cloud, Google Cloud billing exports).",
    no_args_is_help=True,
)


def register(app: typer.Typer) -> None:
    app.add_typer(import_app, name="import")


def _existing(files: list[str]) -> None:
    """A FILE that is not there or is a folder is named as such: `import cur` said "cannot read as CSV or Parquet" of
    both, with the reader's words for why."""
    from pathlib import Path

    from tokenomy.errors import TokenomyError

    for file in files:
        path = Path(file)
        if not path.exists():
            raise TokenomyError(f"{file}: file not found; check the path")
        if path.is_dir():  # read as a file it said "[Errno 21] Is a directory"
            raise TokenomyError(f"{file}: is a folder; give the export file itself (one FILE a command)")


ReplaceOption = typer.Option(
    False,
    "--replace",
    help="A bucket the ledger already holds with other figures (a bill refreshed since: AWS re-issues a month's CUR "
    "as late usage arrives) takes this file's figures; without it such a bucket is a problem and is left as it is. "
    "Needs a DuckDB or PostgreSQL ledger.",
)


def _run(
    kind: str,
    file: str,
    ledger: Optional[str],
    as_json: bool,
    prices: Optional[str] = None,
    replace: bool = False,
) -> None:
    from tokenomy.analytics.imports import IMPORTERS

    if kind != "llm-log":  # whose own message says where llm keeps logs.db
        _existing([file])
    _run_with(kind, lambda: IMPORTERS[kind](file), ledger, as_json, prices, replace)


@takes_prices  # every import takes --prices, and runs through here
def _run_with(
    kind: str,
    read: Callable[[], Any],
    ledger: Optional[str],
    as_json: bool,
    prices: Optional[str] = None,
    replace: bool = False,
) -> None:
    from tokenomy.commands._common import new_duckdb_file, open_existing_ledger

    apply_prices(prices)  # the unpriced-model hint below points here

    result = read()  # first: a file that is not this export at all leaves no new, empty ledger behind
    if not result.events and new_duckdb_file(ledger):
        # Nothing to add (a document that is not OTLP, only bad records): no new, empty ledger either.
        _print_summary(kind, result, 0, as_json)
        return
    store = open_existing_ledger(ledger, must_exist=False)  # a new ledger is fine; a directory is an error
    before = store.count()
    # A figure the ledger's columns cannot hold (a usage amount of 1e400) failed the whole write with a traceback:
    # that record is a problem, the others are imported.
    from tokenomy.ledger.base import unstorable
    from tokenomy.ledger.rejects import write_refusing

    storable, problems_before = [], len(result.problems)
    for event in result.events:
        why = unstorable(event)
        if why is None:
            storable.append(event)
        else:
            result.problems.append(
                f"{result.source}: {event.model} at {event.ts:%Y-%m-%dT%H:%M:%SZ}: {why}; not imported"
            )
    from tokenomy.analytics.imports.collisions import colliding

    collisions = colliding(store, storable)  # a bucket already held with other figures, or at another width
    refreshed = [c.event for c in collisions if replace and c.same_bucket]
    held = [row_id for c in collisions if replace and c.same_bucket for row_id in c.replaces]  # its other tiers too
    refused = [(c.event, c.why) for c in collisions if not (replace and c.same_bucket)]
    if collisions:
        apart = {id(c.event) for c in collisions}
        storable = [event for event in storable if id(event) not in apart]
    for event, why in [*refused, *write_refusing(store, storable)]:
        result.problems.append(f"{result.source}: {event.model} at {event.ts:%Y-%m-%dT%H:%M:%SZ}: {why}; not imported")
    added = store.count() - before  # re-imported records keep their ids and are not added twice
    replaced = store.replace(refreshed, held) if refreshed else 0  # one transaction: the held rows or the new ones
    _print_summary(kind, result, added, as_json, problems_before, replaced)


def _print_summary(
    kind: str,
    result: Any,
    added: int,
    as_json: bool,
    problems_before: Optional[int] = None,
    replaced: int = 0,
) -> None:
    problems_before = len(result.problems) if problems_before is None else problems_before
    summary = {
        "source": result.source,
        "read": len(result.events),
        "added": added,
        "replaced": replaced,
        "already_in_ledger": len(result.events) - (len(result.problems) - problems_before) - added - replaced,
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
                    *([["replaced (refreshed since)", replaced]] if replaced else []),
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
    """GenAI spans (gen_ai.* attributes, old and new names) as ledger events priced from the catalog.

    Exit status: 0 when every record was imported (or was already there); 1 when any record could not be read
    (it is listed, the others are still imported); 2 when the file or ledger cannot be used."""
    _run("otel", file, ledger, as_json, prices)


@import_app.command("cur")
def cur(
    file: str = typer.Argument(..., help="AWS CUR 2.0, legacy CUR or FOCUS export (CSV, CSV.gz, Parquet)."),
    ledger: Optional[str] = LedgerOption,
    as_json: bool = JsonOption,
    replace: bool = ReplaceOption,
) -> None:
    """Bedrock input/output/cache-read/cache-write token line items, with the billed cost.

    Exit status: 0 when every record was imported (or was already there); 1 when any record could not be read
    (it is listed, the others are still imported); 2 when the file or ledger cannot be used."""
    _run("cur", file, ledger, as_json, replace=replace)


@import_app.command("llm-log")
def llm_log(
    file: str = typer.Argument(..., help="The llm CLI's logs.db (see `llm logs path`)."),
    ledger: Optional[str] = LedgerOption,
    as_json: bool = JsonOption,
    prices: Optional[str] = PricesOption,
) -> None:
    """Prompts logged by Simon Willison's llm tool: model, tokens, duration, time.

    Exit status: 0 when every record was imported (or was already there); 1 when any record could not be read
    (it is listed, the others are still imported); 2 when the file or ledger cannot be used."""
    _run("llm-log", file, ledger, as_json, prices)


@import_app.command("focus")
def focus(
    file: str = typer.Argument(..., help="FOCUS 1.0-1.2 export (AWS, Azure, Google Cloud, OCI): CSV, CSV.gz, Parquet."),
    ledger: Optional[str] = LedgerOption,
    as_json: bool = JsonOption,
    replace: bool = ReplaceOption,
) -> None:
    """AI/ML service rows (Bedrock, Azure OpenAI, Vertex AI / Gemini, OCI Generative AI) as billed rows.

    Exit status: 0 when every record was imported (or was already there); 1 when any record could not be read
    (it is listed, the others are still imported); 2 when the file or ledger cannot be used."""
    _run("focus", file, ledger, as_json, replace=replace)


@import_app.command("gcp-billing")
def gcp_billing(
    file: str = typer.Argument(..., help="Google Cloud billing export rows as CSV or newline-delimited JSON."),
    ledger: Optional[str] = LedgerOption,
    as_json: bool = JsonOption,
    prices: Optional[str] = PricesOption,
    replace: bool = ReplaceOption,
) -> None:
    """Vertex AI and Gemini API SKUs of a Google Cloud billing export as billed rows.

    Exit status: 0 when every record was imported (or was already there); 1 when any record could not be read
    (it is listed, the others are still imported); 2 when the file or ledger cannot be used."""
    _run("gcp-billing", file, ledger, as_json, prices, replace)


SinceOption = when_option("--since", "API: start day (UTC) \\[default: 7 days before --until].")
UntilOption = when_option("--until", "API: end (UTC, exclusive) \\[default: the start of today].")
BucketOption = typer.Option("1d", "--bucket-width", help="API: 1d, 1h or 1m buckets (costs are fetched for 1d only).")


def _window(since: Optional[datetime], until: Optional[datetime]) -> tuple[datetime, datetime]:
    """Closed buckets only by default: today's is still growing, and a re-import keeps the first copy of a row."""
    from tokenomy.errors import UsageError

    end = until or datetime.now(UTC).replace(hour=0, minute=0, second=0, microsecond=0)
    end = end.replace(tzinfo=UTC) if end.tzinfo is None else end
    start = since or end - timedelta(days=7)
    start = start.replace(tzinfo=UTC) if start.tzinfo is None else start
    if start >= end:
        raise UsageError(f"--since {start:%Y-%m-%d %H:%M} is not before --until {end:%Y-%m-%d %H:%M}")
    return start, end


def _check_width(bucket_width: str) -> None:
    from tokenomy.errors import UsageError

    if bucket_width not in ("1d", "1h", "1m"):
        raise UsageError(f"--bucket-width {bucket_width!r}: use 1d, 1h or 1m")


@import_app.command("openai-usage")
def openai_usage(
    files: Optional[list[str]] = typer.Argument(None, help="Saved Usage/Costs API pages (JSON); none: call the API."),
    since: Optional[datetime] = SinceOption,
    until: Optional[datetime] = UntilOption,
    base_url: Optional[str] = typer.Option(
        None,
        "--base-url",
        callback=http_url,
        help="API base \\[default: https://api.openai.com/v1]; the key is read from OPENAI_ADMIN_KEY.",
    ),
    bucket_width: str = BucketOption,
    ledger: Optional[str] = LedgerOption,
    as_json: bool = JsonOption,
    prices: Optional[str] = PricesOption,
    replace: bool = ReplaceOption,
) -> None:
    """OpenAI organization usage (completions: cached input and batch split) and costs, as billed rows.

    Exit status: 0 when every record was imported (or was already there); 1 when any record could not be read
    (it is listed, the others are still imported); 2 when the file or ledger cannot be used."""
    from tokenomy.analytics.imports.openai_usage import fetch_openai, import_openai_files, import_openai_usage

    _check_width(bucket_width)

    def read() -> Any:
        if files:
            _existing(list(files))
            return import_openai_files(list(files))
        start, end = _window(since, until)
        pages = fetch_openai(start, end, base_url, bucket_width, costs=bucket_width == "1d")
        return import_openai_usage(pages, base_url or "https://api.openai.com/v1")

    _run_with("openai-usage", read, ledger, as_json, prices, replace)


@import_app.command("anthropic-usage")
def anthropic_usage(
    files: Optional[list[str]] = typer.Argument(None, help="Saved usage/cost report pages (JSON); none: call the API."),
    since: Optional[datetime] = SinceOption,
    until: Optional[datetime] = UntilOption,
    base_url: Optional[str] = typer.Option(
        None,
        "--base-url",
        callback=http_url,
        help="API base \\[default: https://api.anthropic.com/v1]; the key is read from ANTHROPIC_ADMIN_KEY.",
    ),
    bucket_width: str = BucketOption,
    ledger: Optional[str] = LedgerOption,
    as_json: bool = JsonOption,
    prices: Optional[str] = PricesOption,
    replace: bool = ReplaceOption,
) -> None:
    """Anthropic Admin API usage report (cache creation/read split, service tier) and cost report, as billed rows.

    Exit status: 0 when every record was imported (or was already there); 1 when any record could not be read
    (it is listed, the others are still imported); 2 when the file or ledger cannot be used."""
    from tokenomy.analytics.imports.anthropic_usage import (
        fetch_anthropic,
        import_anthropic_files,
        import_anthropic_usage,
    )

    _check_width(bucket_width)

    def read() -> Any:
        if files:
            _existing(list(files))
            return import_anthropic_files(list(files))
        start, end = _window(since, until)
        pages = fetch_anthropic(start, end, base_url, bucket_width, costs=bucket_width == "1d")
        return import_anthropic_usage(pages, base_url or "https://api.anthropic.com/v1")

    _run_with("anthropic-usage", read, ledger, as_json, prices, replace)
