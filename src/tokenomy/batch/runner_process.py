"""Whether a batch job has a process working on it: a local job's runner alive on this machine (not a zombie, not a
later process given its pid), or its heartbeat recent; a remote job's submit (or resume) still sending its parts; and
the log a background runner's stderr goes to."""

from __future__ import annotations

import os
import socket
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from tokenomy.batch.backends import FINAL_STATES
from tokenomy.batch.job_tables import Job, JobTables
from tokenomy.ledger.events import utcnow
from tokenomy.ledger.journal import journal_dir

PID_REUSED_AFTER = timedelta(seconds=5)  # a start this long after the last heartbeat is another process (clock slack)


def _started_at(fields: list[str]) -> datetime | None:
    """When a process started, from the fields of its /proc/PID/stat after the command name; None if unknown."""
    try:
        ticks = int(fields[19])  # field 22, starttime: clock ticks after boot
        stat = Path("/proc/stat").read_text().splitlines()
        boot = next(int(line.split()[1]) for line in stat if line.startswith("btime "))
    except (OSError, ValueError, IndexError, StopIteration):
        return None
    return datetime.fromtimestamp(boot + ticks / os.sysconf("SC_CLK_TCK"), UTC)


def runner_alive(job: Job) -> bool:
    """Is a local runner process working on this job right now?"""
    if job.runner_pid is None:
        return False
    if job.runner_host == socket.gethostname():
        # A process given the runner's pid after it died (a reboot or a container restart hands out the same low
        # pids) started after its last heartbeat: taken for the runner, it kept the job from being resumed, and
        # `batch cancel` left it "stopping", for ever.
        if not _process_lives(job.runner_pid, job.heartbeat_at):
            return False
        return job.status not in FINAL_STATES
    beat = job.heartbeat_at
    return beat is not None and (utcnow() - beat).total_seconds() < 30


STARTUP_GRACE_S = 30.0  # how long a detached local runner may take to claim its job
RUNNER_STARTED = "--- runner started: pid "  # the line `batch submit --detach` / `resume --detach` adds to the log


def runner_log(tables: JobTables, job_id: str) -> Path:
    """Where a background runner's stderr goes (a crash's traceback, an error it printed): beside the job's state, in
    the ledger's journal folder, one file per job that each run started in the background appends to."""
    return journal_dir(tables.store) / f"batch-{job_id}-runner.log"


def started_runner(log: Path, pid: int) -> None:
    """Note in the log which process the background run is (written after the start: the pid is known then)."""
    with open(log, "a") as file:
        file.write(f"{RUNNER_STARTED}{pid} at {utcnow():%Y-%m-%dT%H:%M:%SZ}\n")


def _background_pid(log: Path) -> tuple[int, datetime] | None:
    """The last background runner the log names, and when it started."""
    try:
        lines = [line for line in log.read_text(errors="replace").splitlines() if line.startswith(RUNNER_STARTED)]
        pid, _, at = lines[-1].removeprefix(RUNNER_STARTED).partition(" at ")
        return int(pid), datetime.strptime(at, "%Y-%m-%dT%H:%M:%SZ").replace(tzinfo=UTC)
    except (OSError, IndexError, ValueError):
        return None


def _process_lives(pid: int, since: datetime | None) -> bool:
    """Whether process `pid`, there since about `since` (None: not known), still runs: not a zombie, not a later
    process given its pid."""
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().split(")")[-1].split()
    except OSError:
        fields = []
    if fields[:1] == ["Z"]:  # a killed process nobody has reaped yet
        return False
    started = _started_at(fields)
    if started is not None and since is not None and started > since + PID_REUSED_AFTER:
        return False
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def submitter() -> dict[str, Any]:
    """The job fields naming this process as the one sending a remote job's parts (`submit_cut_short`), as a local
    runner names itself: its pid and host, and when it started sending (a later process given its pid started after)."""
    return {"runner_pid": os.getpid(), "runner_host": socket.gethostname(), "heartbeat_at": utcnow()}


def submit_cut_short(tables: JobTables, job: Job) -> bool:
    """Whether a remote job that has not ended has parts never sent whose submit (or resume) process is gone, killed
    while it stored or sent them: nothing will send them, and nothing ends the job, until `batch resume`. A process
    on another machine cannot be seen from here, nor one a job stored by an earlier version did not name: not said."""
    if job.status in FINAL_STATES or job.runner_pid is None or job.runner_host != socket.gethostname():
        return False
    unsent = any(p["handle"] is None and p["status"] == "submitted" for p in tables.parts(job.job_id))
    return unsent and not _process_lives(job.runner_pid, job.heartbeat_at)


def runner_gone(tables: JobTables, job: Job) -> Path | bool:
    """Whether a job that has not ended has nothing working on it: a local job without its runner (one that crashed or
    was killed left it as it was), a remote one whose submit was cut short (`submit_cut_short`). False while one works
    on it or a background one is still starting; else its background runner's log when there is one (what the runner
    said before it died), or True."""
    if job.backend != "local":
        return submit_cut_short(tables, job)
    if job.status in FINAL_STATES or runner_alive(job):
        return False
    log = runner_log(tables, job.job_id)
    started = _background_pid(log)
    if started is not None and _process_lives(*started):
        return False  # started in the background, and not yet holding the job (or just letting it go)
    # No background run known (a log that could not be written): give one the time to start.
    if started is None and job.status == "submitted" and (utcnow() - job.updated_at).total_seconds() < STARTUP_GRACE_S:
        return False
    return log if started is not None else True
