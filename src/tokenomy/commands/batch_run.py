"""How `tokenomy batch submit` and `batch resume` run a job's work and end: a local job in the foreground (with its
progress bar, and what Ctrl-C kept) or in a detached background runner (its ledger passed by the environment, its
stderr kept in the job's runner log); a provider's job submitted and, unless detached, waited for; then the job shown,
and one that ended failed exits 1."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import typer

from tokenomy.commands._output import err_console
from tokenomy.commands.batch_output import BatchProgress, json_line, show_job


def spawn_resume(tables, job_id: str) -> int:
    """Run the job in a detached background process that outlives this command. Its stderr goes to the job's runner
    log (`runner_process.runner_log`): a runner that dies says why there, and `batch status` names the file."""
    from tokenomy.batch.runner_process import runner_log, started_runner

    log = runner_log(tables, job_id)
    try:
        log.parent.mkdir(parents=True, exist_ok=True)
        err = open(log, "ab")  # noqa: SIM115 - handed to the child, closed once it has it
    except OSError as exc:
        err_console.print(f"warning: cannot keep the runner's log at {log} ({exc}); its errors will not be seen")
        err = None
    ledger_url = _ledger_url(tables)
    proc = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "tokenomy.cli",
            "batch",
            "resume",
            job_id,
            "--quiet",
            "--background",
        ],
        # The ledger by the environment, not --ledger: a postgresql:// URL's password on the command line is readable
        # by every user of the machine (ps), the environment only by ours.
        env={**os.environ, "TOKENOMY_LEDGER": ledger_url},
        stdin=subprocess.DEVNULL,
        stdout=subprocess.DEVNULL,
        stderr=err if err is not None else subprocess.DEVNULL,
        start_new_session=True,
    )
    if err is not None:
        err.close()
        started_runner(log, proc.pid)
    return proc.pid


def _ledger_url(tables) -> str:
    url = tables.store.url
    return url if "://" in url else str(Path(url).resolve())


def run_local(tables, job_id: str, progress: bool, waiting: bool = False):
    """Run a local job; on Ctrl-C say what was kept and how to continue (the runner has saved the answers).
    `waiting`: the background runner of a detached submit or resume, which takes the job only if it is still
    `submitted` (not cancelled meanwhile)."""
    from tokenomy.batch.job_tables import require_job
    from tokenomy.batch.local_job import run_job

    try:
        if not progress:
            return run_job(tables, job_id, waiting=waiting)
        with BatchProgress() as bar:
            return run_job(tables, job_id, on_progress=bar.update)
    except KeyboardInterrupt:
        job = require_job(tables, job_id)
        err_console.print(
            f"interrupted: {job.done} of {job.records} records answered and kept; "
            f"`tokenomy batch resume {job_id}` continues",
            highlight=False,
            soft_wrap=True,
        )
        raise typer.Exit(130) from None


def start(tables, job, detach: bool, as_json: bool, extra: dict | None = None) -> None:
    from tokenomy.batch.job_tables import require_job
    from tokenomy.batch.jobs import get_backend, submit_options, submit_parts, wait

    extra = extra or {}
    if job.backend == "local":
        if detach:
            pid = spawn_resume(tables, job.job_id)
            finish(require_job(tables, job.job_id), as_json, {"runner_pid": pid, **extra}, ended=False)
            return
        job, stats = run_local(tables, job.job_id, True)
        finish(job, as_json, {"throttled_retries": stats.throttled, "seconds": round(stats.seconds, 2), **extra})
        return
    # One backend from the job as made here: its endpoint's password, which the ledger does not keep, with it.
    backend = get_backend(job.backend, submit_options(job))
    job = submit_parts(tables, job, backend)
    if not detach:
        job = wait(tables, job.job_id, backend=backend)
    finish(job, as_json, extra, ended=not detach)


def finish(job, as_json: bool, extra: dict | None = None, ended: bool = True) -> None:
    """Show the job; `ended`: the command waited for it to end (not --detach), so a failed job exits 1."""
    if as_json:
        json_line({**job.to_json(), **(extra or {})})
    else:
        show_job(job, False)
    if ended:
        exit_if_failed(job)


def exit_if_failed(job) -> None:
    """Exit 1 once a job has ended `failed` (no record answered): it ran, but did not do what was asked."""
    if job.status == "failed":
        raise typer.Exit(1)
