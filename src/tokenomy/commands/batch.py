"""`tokenomy batch`: validate batch files (submit/status/results to follow)."""

from __future__ import annotations

from pathlib import Path
from typing import Optional

import typer

from tokenomy.commands._common import JsonOption, console, print_json, table, usd


def register(app: typer.Typer) -> None:
    """Add the `batch` command group."""
    batch = typer.Typer(help="Batch inference: validate, split and run JSONL jobs at batch prices.",
                        no_args_is_help=True)
    app.add_typer(batch, name="batch")

    @batch.command("validate")
    def validate(file: Path = typer.Argument(..., help="JSONL input (Bedrock, OpenAI batch or plain records)."),
                 model: str = typer.Option(..., "--model", help="Model the batch will run on."),
                 region: Optional[str] = typer.Option(None, "--region"),
                 as_json: bool = JsonOption) -> None:
        """Report every bad line and estimate tokens and cost at batch vs on-demand prices."""
        from tokenomy.batch.split import below_minimum
        from tokenomy.batch.validate import validate_file
        from tokenomy.pricing.catalog import default_catalog

        report = validate_file(file, model, region)
        provider = default_catalog().lookup(model, region).provider
        note = below_minimum(len(report.records), provider)
        if note:
            report.notes.append(note)
        if as_json:
            print_json(report.to_json())
            return
        if report.bad:
            console.print(table(f"{len(report.bad)} bad lines", ["line", "field", "reason"],
                                [[b.line, b.field, b.reason] for b in report.bad]))
        console.print(table(f"{file}: {len(report.records)} good records on {model}",
                            ["", "input tokens", "output tokens", "on-demand", "batch"],
                            [["estimate", report.input_tokens, report.output_tokens,
                              usd(report.on_demand_usd), usd(report.batch_usd)]]))
        for n in report.notes:
            console.print(f"- {n}")
