"""What `tokenomy batch` prints: a job's row, the validation report, JSON lines, and progress on stderr."""

from __future__ import annotations

import json
import sys
import time
from pathlib import Path
from typing import NoReturn

import typer

from tokenomy.batch.backends import FINAL_STATES
from tokenomy.commands._output import console, err_console, print_json, table, usd


def json_line(data: dict) -> None:
    """One compact JSON line, flushed at once (a caller may be reading the first line while we work)."""
    from tokenomy.commands._output import _default

    sys.stdout.write(json.dumps(data, default=_default) + "\n")
    sys.stdout.flush()


def refuse_over_cap(refusal, as_json: bool) -> NoReturn:
    """A job, or what resume would send, refused under its --max-cost (`worst_case.OverCap`): said, with --json also
    as a JSON line, and exit 1: the command did what it was asked (nothing sent), not a misuse (exit 2)."""
    err_console.print(f"error: {refusal}", highlight=False, soft_wrap=True, markup=False)
    if as_json:
        json_line(refusal.to_json())
    raise typer.Exit(1)


def show_job(job, as_json: bool, alive: bool | None = None, gone: Path | bool = False) -> None:
    """The job's row and message. `gone`: the job has not ended and nothing works on it
    (`runner_process.runner_gone`: the log of the background runner that died, or True; for a remote job, its submit
    was cut short)."""
    if as_json:
        data = job.to_json()
        if alive is not None:
            data["runner_alive"] = alive
        if gone:
            data["runner_exited"] = True
            if job.backend != "local":
                data["submit_cut_short"] = True
            if isinstance(gone, Path):
                data["runner_log"] = str(gone)
        print_json(data)
        return
    rows = [
        [
            job.job_id,
            job.backend,
            job.model,
            job.status,
            job.records,
            job.done,
            job.failed,
            job.pending,
            usd(job.cost_usd),
        ]
    ]
    console.print(
        table(
            None,
            ["job", "backend", "model", "status", "records", "done", "failed", "pending", "cost"],
            rows,
            text_columns=("backend", "model", "status"),
        )
    )
    if job.message:
        console.print(f"- {job.message}")
    if job.max_cost_usd is not None:
        console.print(
            f"- capped at --max-cost {usd(job.max_cost_usd)}: `batch resume` sends nothing whose worst case would take "
            "the job's cost over it",
            markup=False,
        )
    if not job.prompts_stored and job.status in FINAL_STATES:
        kept = f"; the {job.pending} records without a result keep theirs for resume" if job.pending else ""
        console.print(
            "- prompt text is not kept (store_prompts is off): each record's input was removed once its result was "
            f"final; its answer or error, tokens and cost stay{kept}",
            markup=False,
        )
    if job.unmatched:
        console.print(
            f"- {job.unmatched} output line(s) named no record (the id was lost on the way): billed, in the cost; "
            f"`tokenomy batch results {job.job_id}` lists them",
            markup=False,
        )
    if gone and job.backend != "local":
        console.print(
            f"- its submit was cut short (process {job.runner_pid} ended before every part was sent): nothing sends "
            f"the rest, and the job would wait for ever; `tokenomy batch resume {job.job_id}` continues it (a part the "
            "provider may have made is found or held back, not sent twice)",
            markup=False,
            soft_wrap=True,
        )
    elif isinstance(gone, Path):
        console.print(
            f"- runner exited (see {gone}) without ending the job: `tokenomy batch resume {job.job_id}` continues it",
            markup=False,
            soft_wrap=True,
        )
    elif gone or (alive is False and job.status in ("in_progress", "stopping")):
        console.print(f"- no runner is working on it (stopped or killed): `tokenomy batch resume {job.job_id}`")


class BatchProgress:
    """Rich progress on stderr: records done, records/s, tokens/min, ETA (stdout stays clean for --json)."""

    def __init__(self) -> None:
        from rich.progress import (
            BarColumn,
            MofNCompleteColumn,
            Progress,
            TaskProgressColumn,
            TextColumn,
            TimeRemainingColumn,
        )

        self.progress = Progress(
            TextColumn("batch"),
            BarColumn(),
            MofNCompleteColumn(),
            TaskProgressColumn(),
            TextColumn("{task.fields[rate]}"),
            TextColumn("{task.fields[tpm]}"),
            TimeRemainingColumn(),
            console=err_console,
        )
        self.task = self.progress.add_task("batch", total=None, rate="", tpm="")
        self.started = time.monotonic()

    def update(self, done: int, total: int, tokens_per_minute: float) -> None:
        rate = done / max(1e-6, time.monotonic() - self.started)
        tpm = f"{tokens_per_minute:,.0f} tok/min" if tokens_per_minute else ""
        self.progress.update(self.task, completed=done, total=total, rate=f"{rate:.1f} rec/s", tpm=tpm)

    def __enter__(self) -> BatchProgress:
        self.progress.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.progress.stop()


def print_bad_lines(bad: list[dict]) -> None:
    """The lines `batch validate` rejects ({line, field, reason}), as a table."""
    console.print(
        table(
            f"{len(bad)} bad lines",
            ["line", "field", "reason"],
            [[b["line"], b["field"], b["reason"]] for b in bad],
            text_columns=("field", "reason"),
        )
    )


def print_validation(report, file: Path, model: str, worst=None) -> None:
    """The validation report: its bad lines, the estimate and, under it, the worst case (`worst_case.JobWorstCase`)."""
    if report.bad:
        print_bad_lines([b.to_json() for b in report.bad])
    rows = [["estimate", report.input_tokens, report.output_tokens, usd(report.on_demand_usd), usd(report.batch_usd)]]
    if worst is not None:
        rows.append(
            ["worst case", worst.input_tokens, worst.output_tokens, usd(worst.on_demand_usd), usd(worst.batch_usd)]
        )
    console.print(
        table(
            f"{file}: {len(report.records)} good records on {model}",
            ["", "input tokens", "output tokens", "on-demand", "batch"],
            rows,
        )
    )
    print_price_source(report)
    for n in report.notes:
        console.print(f"- {n}")


def print_price_source(priced) -> None:
    """Where the prices of an estimate's costs come from (a ValidationReport or a DeadlinePlan): who priced them,
    their source and as_of, as `tokenomy cost` names them."""
    console.print(
        f"- prices: {priced.priced_by}, {priced.price_source} (as of {priced.price_as_of})",
        markup=False,
        highlight=False,
    )
