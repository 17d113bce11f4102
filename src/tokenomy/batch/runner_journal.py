"""What a local batch runner was answered, on disk before it is committed: a killed runner loses no billed answer.

The runner commits answers in groups (`local_job._Committer`), each group waiting for the previous write, so
about half a second of answers was only in memory: SIGKILLed then (15-20 answers at ~35 records/s), they were missing
from the ledger although the provider had billed them, and `batch resume` sent their records again, billed twice.
Each finished record, and each billed attempt without an answer, is now appended here first (one `write` call: in
the operating system's page cache when it returns, so a killed process loses nothing; a power loss may lose the
last lines). The next run of the job commits what a dead runner left, then deletes it; commits are idempotent
(derived event ids, one result per record), so a line already committed is harmless.

Files are `batch-<job>-<pid>-<random>.jsonl` in the ledger's journal folder (`ledger.journal.journal_dir`), each
held under an exclusive flock while its runner lives, so a live runner's file is never taken.
"""

from __future__ import annotations

import contextlib
import fcntl
import json
import logging
import os
import threading
from dataclasses import asdict
from datetime import datetime
from pathlib import Path
from typing import IO

from tokenomy.batch.backends import RecordResult
from tokenomy.batch.job_tables import Job, JobTables
from tokenomy.batch.records import record_results
from tokenomy.chat_response import Usage
from tokenomy.ids import new_id
from tokenomy.ledger.events import UsageEvent
from tokenomy.ledger.journal import journal_dir
from tokenomy.ledger.journal_replay import event_from_jsonl, unreadable_event

log = logging.getLogger(__name__)
COMMIT_ROWS = 500  # results a statement writes (15 parameters each; PostgreSQL takes at most 65,535)


class RunnerJournal:
    """One runner's append-only file of what it was answered and has not necessarily committed yet. A folder that
    cannot be written (a read-only working directory for a server ledger, a full disk) costs the crash safety, said
    once in a warning, never the run: the group commits still write every answer."""

    def __init__(self, tables: JobTables, job_id: str) -> None:
        folder = journal_dir(tables.store)
        self.path = folder / f"batch-{job_id}-{os.getpid()}-{new_id()}.jsonl"
        self._file: IO[bytes] | None = None
        self._lock = threading.Lock()
        self._failed = False
        try:
            folder.mkdir(parents=True, exist_ok=True)
            # Locked under a name the committers' glob does not match, then renamed: one never takes it half-made.
            draft = folder / f".{self.path.name}"
            file = open(draft, "ab", buffering=0)  # noqa: SIM115 - held open (and locked) for its life
            fcntl.flock(file, fcntl.LOCK_EX | fcntl.LOCK_NB)
            os.rename(draft, self.path)
            self._file = file
        except OSError as exc:
            self._warn(exc)

    def _warn(self, exc: OSError) -> None:
        if not self._failed:
            log.warning(
                "the batch runner's journal %s cannot be written (%s): answers are committed as usual, but a runner "
                "killed now loses the last half second of them",
                self.path,
                exc,
            )
        self._failed = True

    def item(self, item: tuple) -> None:
        """A record's outcome as `record_results` takes it: (part_no, result, mode, provider, pricing_model, region)."""
        part_no, result, *rest = item
        fields = asdict(result)  # usage becomes a dict of its counts
        self._append((json.dumps({"record": [part_no, fields, *rest]}, default=str) + "\n").encode())

    def attempt(self, event: UsageEvent) -> None:
        """A billed attempt without an answer (its own ledger row)."""
        self._append(event.to_jsonl())

    def _append(self, line: bytes) -> None:
        with self._lock:
            if self._file is None:
                return
            view = memoryview(line)
            try:
                while view:  # a regular file takes it in one call; a short write is finished, never torn silently
                    view = view[os.write(self._file.fileno(), view) :]
            except OSError as exc:  # disk full: the group commit still has the answer
                self._warn(exc)

    def discard(self) -> None:
        """Everything in it is committed: delete it."""
        if self._file is not None:
            self.path.unlink(missing_ok=True)
            self._file.close()

    def release(self) -> None:
        """Keep it for the next run of the job (a commit failed)."""
        if self._file is not None:
            self._file.close()


def commit_left_behind(tables: JobTables, job: Job) -> int:
    """Commit what runners of `job` that are gone had journaled, then delete their files; the lines read."""
    folder = journal_dir(tables.store)
    total = 0
    for path in sorted(folder.glob(f"batch-{job.job_id}-*.jsonl")) if folder.is_dir() else []:
        with contextlib.suppress(FileNotFoundError), open(path, "rb") as handle:
            if not _locked(handle, path):
                continue  # a live runner's
            if os.fstat(handle.fileno()).st_nlink == 0:
                continue  # committed and deleted by another process while this one waited for it
            items, attempts = [], []
            for number, line in enumerate(handle, 1):
                try:
                    record = json.loads(line)
                    if "record" in record:
                        part_no, fields, *rest = record["record"]
                        usage = Usage(**fields.pop("usage")) if fields.get("usage") else None
                        answered = fields.get("answered_at")  # recorded at when it was answered, not at this commit
                        fields["answered_at"] = datetime.fromisoformat(answered) if answered else None
                        items.append((part_no, RecordResult(**{**fields, "usage": usage}), *rest))
                    else:
                        attempts.append(event_from_jsonl(line))
                except (ValueError, TypeError, KeyError) as exc:  # a torn last line: its answer was never kept
                    log.warning(
                        "%s:%d: skipped an unreadable batch journal line (%s)",
                        path,
                        number,
                        unreadable_event(line, exc),
                    )
            if attempts:
                tables.write_events(attempts)
            for start in range(0, len(items), COMMIT_ROWS):  # one statement of thousands of rows PostgreSQL refuses
                record_results(tables, job, items[start : start + COMMIT_ROWS])
            total += len(items) + len(attempts)
            path.unlink()
    if total:
        log.warning("committed %d answers of %s that a stopped runner had not written", total, job.job_id)
    return total


def _locked(handle: IO[bytes], path: Path) -> bool:
    """Take the file's lock: at once, or, when its runner is gone and another process is committing it, once that
    one is done (skipping it would send its records again). False for a live runner's file."""
    try:
        fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
        return True
    except BlockingIOError:
        pass
    try:
        os.kill(int(path.name.rsplit("-", 2)[-2]), 0)  # batch-<job>-<pid>-<id>.jsonl
        return False  # its runner lives
    except ValueError:  # not a name a runner gave
        return False
    except (ProcessLookupError, PermissionError):  # gone, or the pid is another user's process now: not a runner's
        fcntl.flock(handle, fcntl.LOCK_EX)
        return True
