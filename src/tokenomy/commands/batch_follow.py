"""`tokenomy batch status`, `list`, `wait`, `results` and `cancel`: following a job to its end, collecting its answers
and stopping it."""

from __future__ import annotations

from pathlib import Path
from typing import Optional

import typer

from tokenomy.commands._common import JsonOption, LedgerOption, open_existing_ledger
from tokenomy.commands._options import number_option, output_file
from tokenomy.commands._output import console, err_console, print_json, table, usd
from tokenomy.commands.batch_output import show_job
from tokenomy.commands.batch_run import exit_if_failed


def _refresh_or_stored(tables, job_id: str):
    """The job refreshed from its backend; if the provider cannot be reached, what the ledger last stored, said so."""
    from tokenomy.batch.job_tables import require_job
    from tokenomy.batch.jobs import refresh
    from tokenomy.errors import ProviderError

    try:
        return refresh(tables, job_id)
    except ProviderError as exc:
        job = require_job(tables, job_id)
        err_console.print(
            f"warning: showing {job_id} as last stored ({job.updated_at:%Y-%m-%d %H:%M}Z): {exc}",
            highlight=False,
            soft_wrap=True,
            markup=False,
        )
        return job


def register_follow(batch: typer.Typer) -> None:
    """Add `status`, `list`, `wait`, `results` and `cancel` to the `batch` command group."""

    @batch.command("status")
    def status(
        job_id: str = typer.Argument(..., help="Job id from `batch submit` or `batch list`."),
        ledger: Optional[str] = LedgerOption,
        as_json: bool = JsonOption,
    ) -> None:
        """Refresh a job from its backend and show progress, counts and cost so far.

        Exit status: 1 when the job has not ended and nothing works on it (a local runner, or a submit sending a
        provider's parts, killed): `batch resume` continues it."""
        from tokenomy.batch.jobs import open_tables
        from tokenomy.batch.runner_process import runner_alive, runner_gone

        tables = open_tables(open_existing_ledger(ledger))
        job = _refresh_or_stored(tables, job_id)
        gone = runner_gone(tables, job)
        show_job(job, as_json, runner_alive(job) if job.backend == "local" else None, gone)
        if gone:  # not ended, and nothing works on it: a script must not take it for a running job
            raise typer.Exit(1)

    @batch.command("list")
    def list_jobs(ledger: Optional[str] = LedgerOption, as_json: bool = JsonOption) -> None:
        """Every batch job in the ledger, oldest first."""
        from tokenomy.batch.jobs import open_tables

        jobs = open_tables(open_existing_ledger(ledger)).list_jobs()
        if as_json:
            print_json([j.to_json() for j in jobs])
            return
        console.print(
            table(
                f"{len(jobs)} batch jobs",
                ["job", "backend", "model", "status", "records", "done", "failed", "cost", "created"],
                [
                    [
                        j.job_id,
                        j.backend,
                        j.model,
                        j.status,
                        j.records,
                        j.done,
                        j.failed,
                        usd(j.cost_usd),
                        f"{j.created_at:%Y-%m-%d %H:%M}Z",
                    ]
                    for j in jobs
                ],
                text_columns=("backend", "model", "status"),
            )
        )

    @batch.command("wait")
    def wait_job(
        job_id: str = typer.Argument(..., help="Job id."),
        timeout: Optional[float] = number_option(
            None, "--timeout", min=0, help="Give up after this many seconds (exit code 1) \\[default: wait until done]"
        ),
        # max: `--poll inf` (or 1e300) reached time.sleep as an OverflowError traceback once the job was found.
        poll: float = number_option(5.0, "--poll", min=0.1, max=86400, help="Seconds between status checks."),
        ledger: Optional[str] = LedgerOption,
        as_json: bool = JsonOption,
    ) -> None:
        """Block until the job finishes (completed, partially completed, failed, stopped or expired).

        Exit status: 0 when it ended; 1 past --timeout, when it ended failed (no record answered), or when nothing
        works on it (a local runner, or a submit sending a provider's parts, killed): `batch resume` continues it."""
        from tokenomy.batch.backends import FINAL_STATES
        from tokenomy.batch.jobs import open_tables, wait
        from tokenomy.batch.runner_process import runner_alive, runner_gone

        tables = open_tables(open_existing_ledger(ledger))
        job = wait(tables, job_id, timeout, poll)
        show_job(job, as_json, runner_alive(job) if job.backend == "local" else None, runner_gone(tables, job))
        if job.status not in FINAL_STATES:
            raise typer.Exit(1)
        exit_if_failed(job)

    @batch.command("results")
    def results(
        job_id: str = typer.Argument(..., help="Job id."),
        out: Optional[Path] = typer.Option(
            # --output as well: the name every other command's output file has (`ledger export -o/--output`)
            None,
            "-o",
            "--out",
            "--output",
            help="Output JSONL: one line per input record.",
            callback=output_file,
        ),
        missing_input: bool = typer.Option(
            False, "--missing-input", help="Instead write the input lines of records with no result, to submit again."
        ),
        failed_input: Optional[Path] = typer.Option(
            None,
            "--failed-input",
            callback=output_file,
            help="Write to this file the input lines, with their ids, of the records the provider refused as written "
            "(a validation error such as a 400; not throttling, which resume sends again): fix them, then `tokenomy "
            "batch submit` the file.",
        ),
        ledger: Optional[str] = LedgerOption,
        as_json: bool = JsonOption,
    ) -> None:
        """Write one line per input record (its id with the answer, or the error, or why it has none); or, with
        --failed-input, the records the provider refused, ready to fix and submit."""
        from tokenomy.batch.jobs import open_tables
        from tokenomy.batch.records import export_failed, export_missing, export_results
        from tokenomy.batch.runner_process import runner_alive
        from tokenomy.errors import ConfigError

        if out is None and failed_input is None:
            raise ConfigError("give -o FILE for the results (or the --missing-input lines), or --failed-input FILE")
        # Checked before any work, so the error names the path (not a temporary file) and no traceback shows.
        for flag, path in (("-o", out), ("--failed-input", failed_input)):
            if path is not None and path.is_dir():
                raise ConfigError(f"{flag} {path}: is a directory; give a file name such as {path / 'out.jsonl'}")
            if path is not None and not path.absolute().parent.is_dir():
                raise ConfigError(f"{flag} {path}: folder {path.absolute().parent} does not exist; create it")
        tables = open_tables(open_existing_ledger(ledger))
        job = _refresh_or_stored(tables, job_id)
        if failed_input is not None:
            refused = export_failed(tables, job_id, failed_input)["records"]
            if as_json and out is None:
                print_json({"job_id": job_id, "failed_input": str(failed_input), "records": refused})
            else:
                err_console.print(f"{failed_input}: {refused} records the provider refused, to fix and submit")
        if out is None:
            return
        if missing_input:  # not the records a live local runner is sending
            counts = export_missing(tables, job_id, out, job.backend == "local" and runner_alive(job))
        else:
            counts = export_results(tables, job_id, out)
        if as_json:
            print_json({"job_id": job_id, "out": str(out), **counts})
            return
        console.print(
            f"{out}: {counts['records']} lines ({counts['ok']} answered, {counts['failed']} failed, "
            f"{counts['missing']} without a result yet)"
            + (
                f", then {counts['unmatched']} output lines that named no record (id null)"
                if counts.get("unmatched")
                else ""
            )
        )

    @batch.command("cancel")
    def cancel(
        job_id: str = typer.Argument(..., help="Job id."),
        ledger: Optional[str] = LedgerOption,
        as_json: bool = JsonOption,
    ) -> None:
        """Stop a job; answers already stored are kept, the rest can be resumed later."""
        from tokenomy.batch.backends import FINAL_STATES
        from tokenomy.batch.job_tables import require_job
        from tokenomy.batch.jobs import cancel as cancel_job
        from tokenomy.batch.jobs import open_tables

        tables = open_tables(open_existing_ledger(ledger))
        before = require_job(tables, job_id)
        job = cancel_job(tables, job_id)
        if before.status in FINAL_STATES and job.status == before.status:  # the table alone read as if it stopped
            err_console.print(
                f"note: {job_id} had already ended ({job.status}); nothing to stop", markup=False, highlight=False
            )
        show_job(job, as_json)
