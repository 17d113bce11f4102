"""`tokenomy batch plan`: before a deadline, on demand within a TPM quota or batch at batch price."""

from __future__ import annotations

from datetime import UTC
from pathlib import Path
from typing import Optional

import typer

from tokenomy.commands._common import BatchRegionOption, JsonOption, batch_backend_option
from tokenomy.commands._output import console, print_json, table, usd
from tokenomy.commands.batch_output import print_bad_lines, print_price_source


def register_plan(batch: typer.Typer) -> None:
    """Add `plan` to the `batch` command group."""

    @batch.command("plan")
    def plan(
        file: Path = typer.Argument(..., help="JSONL input."),
        model: str = typer.Option(..., "--model", help="Model id."),
        deadline: str = typer.Option(..., "--deadline", help="UTC time the work must be done by, HH:MM."),
        start: Optional[str] = typer.Option(None, "--start", help="UTC start time HH:MM \\[default: now]."),
        tpm_quota: Optional[int] = typer.Option(
            None, "--tpm-quota", help="Your account's tokens-per-minute quota for the model (on-demand speed)."
        ),
        region: Optional[str] = BatchRegionOption,
        backend: Optional[str] = batch_backend_option(
            "validate", "OpenAI and Bedrock lines it would not send whole are left out of the plan."
        ),
        as_json: bool = JsonOption,
    ) -> None:
        """Before a deadline: on demand within your TPM quota, or batch at batch price (completion not guaranteed)?

        Exit status: 0 when every line is a good record; 1 when any line is bad (the bad lines are listed and the
        plan covers the good records, as `batch validate` reports them); 2 on unusable input."""
        from datetime import datetime

        from tokenomy.batch.jobs import BACKENDS
        from tokenomy.batch.plan import parse_clock, plan_deadline, window
        from tokenomy.errors import ConfigError

        if backend is not None and backend not in BACKENDS:
            raise ConfigError(f"--backend {backend!r} is not one of {', '.join(BACKENDS)}")
        begin = None
        if start:
            clock = parse_clock(start, "--start")
            _, begin = window(clock, datetime.now(UTC))  # the next time the clock shows --start
        result = plan_deadline(file, model, parse_clock(deadline, "--deadline"), tpm_quota, begin, region, backend)
        if result.bad_lines:  # a plan silently made on part of the file looked like a plan for all of it
            checked_for = f" --backend {backend}" if backend else ""
            result.notes.append(
                f"{len(result.bad_lines)} bad line(s) left out: the plan covers the {result.records} good records; "
                f"fix them (`tokenomy batch validate {file} --model {model}{checked_for}`)"
            )
        if as_json:
            print_json(result.to_json(), money="amount")  # the costs the table prints
            raise typer.Exit(1 if result.bad_lines else 0)
        if result.bad_lines:
            print_bad_lines(result.bad_lines)
        od_time = "-" if result.on_demand_minutes is None else f"{result.on_demand_minutes:,.0f} min"
        fits = {True: "yes", False: "no", None: "? (--tpm-quota)"}[result.on_demand_fits]
        hours = result.batch_completion_hours
        batch_time = f"≤ {hours} h (not guaranteed)" if hours else "-"
        batch_fits = "yes" if hours and result.window_hours >= hours else "not guaranteed"
        console.print(
            table(
                f"{result.records} records, ~{result.input_tokens:,} in + {result.output_tokens:,} out "
                f"tokens; window {result.start:%H:%M}–{result.deadline:%H:%M}Z ({result.window_hours} h)",
                ["option", "cost", "worst case", "time", "fits the window"],
                [
                    ["on demand", usd(result.on_demand_usd), usd(result.worst_on_demand_usd), od_time, fits],
                    ["batch", usd(result.batch_usd), usd(result.worst_batch_usd), batch_time, batch_fits],
                ],
            )
        )
        console.print(f"[bold]recommend {result.recommendation.replace('_', ' ')}[/bold]: {result.reason}")
        console.print(f"- batch risk: {result.batch_risk}")
        print_price_source(result)
        for note in result.notes:
            console.print(f"- {note}")
        if result.bad_lines:
            raise typer.Exit(1)
