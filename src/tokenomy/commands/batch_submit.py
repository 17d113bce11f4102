"""`tokenomy batch validate`, `submit` and `resume`: checking a file, and sending a job's records (at submit, and
what a job left without a result at resume)."""

from __future__ import annotations

from collections.abc import Mapping
from decimal import Decimal
from pathlib import Path
from typing import Optional

import typer

from tokenomy.commands._common import (
    BatchRegionOption,
    JsonOption,
    LedgerOption,
    batch_backend_option,
    open_existing_ledger,
)
from tokenomy.commands._options import http_url, http_url_or_host, usd_option
from tokenomy.commands._output import console, err_console, print_json
from tokenomy.commands.batch_output import json_line, print_validation, refuse_over_cap
from tokenomy.commands.batch_run import finish, run_local, spawn_resume, start

BackendOption = typer.Option(
    "local",
    "--backend",
    help="bedrock, openai, azure (Azure OpenAI Global Batch), anthropic (Message Batches), gemini (Gemini API), "
    "vertex (Vertex AI batch prediction, with --gcs-uri), or local (runs records on demand under your rate "
    "limits, for providers without batch).",
)


# Options only one kind of backend reads: given with another, they did nothing, silently.
OPTION_BACKENDS = {
    "--rpm": ("local",),
    "--tpm": ("local",),
    "--role-arn": ("bedrock",),
    "--s3-uri": ("bedrock",),
    "--kms-key-id": ("bedrock",),
    "--timeout-hours": ("bedrock",),
    "--s3-endpoint-url": ("bedrock",),
    "--gcs-uri": ("vertex",),
    "--gcs-endpoint-url": ("vertex",),
    "--project": ("vertex",),
}


def _refuse_other_backends_options(backend: str, given: Mapping[str, object]) -> None:
    from tokenomy.batch.jobs import BACKENDS
    from tokenomy.errors import ConfigError

    if backend not in BACKENDS:
        return  # prepare_job names the backends there are
    for flag, value in given.items():
        if value is not None and backend not in OPTION_BACKENDS[flag]:
            raise ConfigError(
                f"{flag} is read by --backend {' or '.join(OPTION_BACKENDS[flag])} only; with --backend {backend} "
                "it would do nothing: remove it or change --backend"
            )


def register_submit(batch: typer.Typer) -> None:
    """Add `validate` and `submit` to the `batch` command group."""

    @batch.command("validate")
    def validate(
        file: Path = typer.Argument(..., help="JSONL input (Bedrock, OpenAI batch or plain records)."),
        model: str = typer.Option(..., "--model", help="Model the batch will run on."),
        region: Optional[str] = BatchRegionOption,
        backend: Optional[str] = batch_backend_option(
            "submit", "OpenAI and Bedrock lines it would rebuild are checked for keys it would not send."
        ),
        as_json: bool = JsonOption,
    ) -> None:
        """Report every bad line and estimate tokens and cost at batch vs on-demand prices.

        Exit status: 0 when every line is a good record; 1 when any line is bad or no record is good (the
        report is still printed, so a script can gate on the status); 2 on unusable input."""
        from tokenomy.batch.jobs import BACKENDS
        from tokenomy.batch.plan import unsplittable
        from tokenomy.batch.split import below_minimum, quota_provider
        from tokenomy.batch.validate import validate_file
        from tokenomy.batch.worst_case import job_worst_case
        from tokenomy.errors import ConfigError
        from tokenomy.pricing.catalog import default_catalog

        if backend is not None and backend not in BACKENDS:
            raise ConfigError(f"--backend {backend!r} is not one of {', '.join(BACKENDS)}")
        report = validate_file(file, model, region, backend=backend)
        worst = job_worst_case(report.records, model, region, backend) if report.records else None
        if worst is not None:
            report.notes.append(worst.note())
        provider = quota_provider(backend, default_catalog().lookup(model, region).provider)
        # With no good record there is nothing to run anywhere: say so rather than quote a job minimum.
        note = (
            f"no valid records in {file}: " + ("fix the bad lines listed" if report.bad else "the file is empty")
            if not report.records
            else below_minimum(len(report.records), provider)
            or unsplittable(report.records, file, model, provider, backend)
        )
        if note:
            report.notes.append(note)
        if as_json:
            worst_json = {"worst_case": worst.to_json() if worst else None}
            print_json({**report.to_json(), **worst_json}, money="amount")  # the estimates the table prints
        else:
            print_validation(report, file, model, worst)
        if report.bad or not report.records:
            raise typer.Exit(1)

    @batch.command("submit")
    def submit(
        file: Path = typer.Argument(..., help="JSONL input (Bedrock, OpenAI batch or plain records)."),
        model: str = typer.Option(..., "--model", help="Model id, or a model name from --config."),
        backend: str = BackendOption,
        config: Optional[str] = typer.Option(
            None,
            "--config",
            help="tokenomy.yaml naming the model (e.g. an OpenAI-compatible base_url for --backend local).",
        ),
        detach: bool = typer.Option(
            False,
            "--detach",
            help="Return once submitted; the work goes on provider-side (or in a background runner for local).",
        ),
        concurrency: int = typer.Option(4, "--concurrency", min=1, help="Local runner: calls in flight."),
        rpm: Optional[float] = typer.Option(None, "--rpm", help="Local runner: requests per minute limit."),
        tpm: Optional[float] = typer.Option(None, "--tpm", help="Local runner: tokens per minute limit."),
        region: Optional[str] = typer.Option(
            None, "--region", help="AWS region (Bedrock) or Vertex AI location (vertex; default global)."
        ),
        role_arn: Optional[str] = typer.Option(None, "--role-arn", help="Bedrock service role ARN."),
        s3_uri: Optional[str] = typer.Option(None, "--s3-uri", help="s3://bucket/prefix for Bedrock I/O."),
        kms_key_id: Optional[str] = typer.Option(None, "--kms-key-id", help="KMS key for Bedrock outputs."),
        timeout_hours: Optional[int] = typer.Option(None, "--timeout-hours", help="Bedrock job timeout."),
        endpoint_url: Optional[str] = typer.Option(
            None, "--endpoint-url", callback=http_url, help="Service endpoint (emulators, compatible servers)."
        ),
        s3_endpoint_url: Optional[str] = typer.Option(
            None, "--s3-endpoint-url", callback=http_url, help="S3-compatible endpoint for Bedrock inputs/outputs."
        ),
        gcs_uri: Optional[str] = typer.Option(
            None, "--gcs-uri", help="gs://bucket/prefix for Vertex AI batch inputs and outputs (vertex)."
        ),
        gcs_endpoint_url: Optional[str] = typer.Option(
            None,
            "--gcs-endpoint-url",
            callback=http_url_or_host,
            help="Cloud Storage endpoint (emulators; else STORAGE_EMULATOR_HOST).",
        ),
        project: Optional[str] = typer.Option(
            None, "--project", help="Google Cloud project (vertex; else GOOGLE_CLOUD_PROJECT)."
        ),
        max_cost: Optional[Decimal] = usd_option(
            None,
            "--max-cost",
            "Refuse the job, sending nothing, if its worst case (every prompt at an upper bound of its tokens, every "
            "record at its whole max_tokens) is over this many USD; `batch validate` prints the worst case. Kept "
            "with the job for `batch resume`.",
        ),
        ledger: Optional[str] = LedgerOption,
        as_json: bool = JsonOption,
    ) -> None:
        """Validate, split and start a batch job. With --json the first line is {"job_id": ...}.

        Exit status: 0 once the job is started (--detach) or has ended with answers; 1 when it ended failed, no
        record answered (the job is kept: fix the cause, then `batch resume`), or its worst case is over --max-cost
        (nothing sent, no job kept; with --json an {"error": ...} line); 2 on unusable input."""
        import math

        from tokenomy.batch.backends import SubmitOptions
        from tokenomy.batch.jobs import open_tables, prepare_job, store_job
        from tokenomy.batch.record_tokens import sends_media
        from tokenomy.batch.worst_case import OverCap
        from tokenomy.errors import ConfigError

        for flag, limit in (("--rpm", rpm), ("--tpm", tpm)):  # 0, negative or NaN used to mean "no limit"
            if limit is not None and not (math.isfinite(limit) and limit > 0):
                raise ConfigError(f"{flag} {limit}: give a rate limit above 0 per minute, or leave it out for none")
        given = {
            "--rpm": rpm,
            "--tpm": tpm,
            "--role-arn": role_arn,
            "--s3-uri": s3_uri,
            "--kms-key-id": kms_key_id,
            "--timeout-hours": timeout_hours,
            "--s3-endpoint-url": s3_endpoint_url,
            "--gcs-uri": gcs_uri,
            "--gcs-endpoint-url": gcs_endpoint_url,
            "--project": project,
        }
        _refuse_other_backends_options(backend, given)
        options = SubmitOptions(
            region=region,
            role_arn=role_arn,
            s3_uri=s3_uri,
            kms_key_id=kms_key_id,
            timeout_hours=timeout_hours,
            endpoint_url=endpoint_url,
            extra={
                k: v
                for k, v in (
                    ("s3_endpoint_url", s3_endpoint_url),
                    ("gcs_uri", gcs_uri),
                    ("gcs_endpoint_url", gcs_endpoint_url),
                    ("project", project),
                )
                if v
            },
        )
        # The bad lines it skips: each one the job counts, those a backend would not send whole and those over the
        # context window included, named from the validation prepare_job ran (the file is not read again).
        try:
            job, parts, bad_lines = prepare_job(
                file, model, backend, options, config, {"concurrency": concurrency, "rpm": rpm, "tpm": tpm}, max_cost
            )
        except OverCap as refusal:
            refuse_over_cap(refusal, as_json)
        media = sum(sends_media(r.raw) for part in parts for r in part) if max_cost is not None else 0
        if media:  # billed by a length no line gives: the cap cannot hold them, said rather than implied
            err_console.print(
                f"warning: {media} record(s) send audio or video, billed by a length no line gives: --max-cost does "
                "not bound it, and its cost comes on top of the worst case",
                highlight=False,
                soft_wrap=True,
                markup=False,
            )
        tables = open_tables(ledger)  # once the file is good: a refused one leaves no new ledger behind
        store_job(tables, job, parts)
        if as_json:
            json_line({"job_id": job.job_id})
        else:
            skipped = f" ({job.bad_lines} bad lines skipped)" if job.bad_lines else ""
            console.print(f"job [bold]{job.job_id}[/bold]: {job.records} records on {model} via {backend}{skipped}")
        bad = [b.to_json() for b in bad_lines]
        if bad and not as_json:
            for b in bad:
                console.print(f"  skipped line {b['line']}: {b['field']}: {b['reason']}")
        start(tables, job, detach, as_json, {"bad": bad} if bad else None)


def register_resume(batch: typer.Typer) -> None:
    """Add `resume` to the `batch` command group."""

    @batch.command("resume")
    def resume(
        job_id: str = typer.Argument(..., help="Job id."),
        detach: bool = typer.Option(False, "--detach", help="Do not wait for the resumed work."),
        quiet: bool = typer.Option(False, "--quiet", help="No progress bar (background runs)."),
        resend_refused: bool = typer.Option(
            False,
            "--resend-refused",
            help="Also send the parts the provider refused whole at validation (which resume otherwise holds back: "
            "sent as they are they would be refused again), once the cause is fixed on its side: the same records, "
            "split again only where today's limits no longer fit them in one job.",
        ),
        background: bool = typer.Option(
            False, "--background", hidden=True, help="The runner --detach starts: only a job still waiting for it."
        ),
        max_cost: Optional[Decimal] = usd_option(
            None,
            "--max-cost",
            "The job's cap in USD, in place of the one it was submitted with (kept for later resumes): nothing is sent "
            "if what it has cost and the worst case of what resume sends are over it.",
        ),
        ledger: Optional[str] = LedgerOption,
        as_json: bool = JsonOption,
    ) -> None:
        """Finish a job: a local job runs its records that have no result; a remote job resubmits
        records missing after a partial, expired, failed or stopped run, except a part the provider refused whole at
        validation (named, with why), unless --resend-refused. Records that failed for good (refused by the provider
        as written, or for a reason sending them again would repeat) are not sent again: said, with how to list them.

        A job submitted with --max-cost (or given one here) is not resumed when what it has cost and the worst case of
        the records resume would send are over it.

        Exit status: 0 when the job ends with answers (or is left running, --detach); 1 when it ends failed, no
        record answered, or is over its cap (nothing sent)."""
        from tokenomy.batch.hints import failed_for_good
        from tokenomy.batch.job_tables import require_job
        from tokenomy.batch.jobs import open_tables, refresh, wait
        from tokenomy.batch.records import refused_note, refused_parts
        from tokenomy.batch.resubmit import resubmit_missing
        from tokenomy.batch.worst_case import OverCap, job_cap, keep_cap, require_local_resume_within_cap

        tables = open_tables(open_existing_ledger(ledger))
        job = require_job(tables, job_id)

        def say_failed_for_good() -> None:  # else a job whose failed records were all final sent nothing, unsaid
            final = None if background else failed_for_good(job_id, tables.outcomes(job_id))
            if final:
                err_console.print(f"note: {final}", highlight=False, soft_wrap=True, markup=False)

        # A local job's records run from here or from the background runner this starts (its submit or resume has
        # checked them); refreshed first, so that what a killed runner was answered counts as spent, not to be sent.
        if job.backend == "local" and not background and job_cap(job, max_cost) is not None:
            try:
                require_local_resume_within_cap(tables, refresh(tables, job_id), max_cost)
            except OverCap as refusal:
                refuse_over_cap(refusal, as_json)
            keep_cap(tables, job, max_cost)
        if job.backend == "local":
            say_failed_for_good()
            if detach:
                from tokenomy.batch.runner_process import runner_alive
                from tokenomy.errors import UsageError

                # The background runner would refuse a job another runner holds, with nobody to see why.
                if runner_alive(job):
                    raise UsageError(
                        f"{job_id} still has a runner (pid {job.runner_pid}, status {job.status}); "
                        f"`tokenomy batch wait {job_id}` for it to end, then resume"
                    )
                # Waiting for its runner: `batch cancel` now stops it before it starts, and `batch wait` waits for it.
                tables.update_job(job_id, status="submitted", message=None)
                pid = spawn_resume(tables, job_id)
                finish(require_job(tables, job_id), as_json, {"runner_pid": pid}, ended=False)
                return
            job, stats = run_local(tables, job_id, not quiet, background)
            finish(job, as_json, {"throttled_retries": stats.throttled, "seconds": round(stats.seconds, 2)})
            return
        try:
            sent = resubmit_missing(tables, job_id, resend_refused=resend_refused, max_cost=max_cost)
        except OverCap as refusal:
            refuse_over_cap(refusal, as_json)
        say_failed_for_good()  # as collected by resubmit_missing, before what it sent has answers
        held = [] if resend_refused else refused_parts(tables, job_id)
        if held:  # the rest were sent: say which parts were not, and why
            err_console.print(f"warning: {refused_note(job_id, held)}", highlight=False, soft_wrap=True, markup=False)
        if not as_json:
            console.print(f"resubmitted {sent} records without a result")
        job = require_job(tables, job_id) if detach or not sent else wait(tables, job_id)
        finish(job, as_json, {"resubmitted": sent}, ended=not (detach and sent))
