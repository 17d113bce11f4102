"""What a local batch runner was answered, on disk before it is committed: a killed runner loses no billed answer.

The runner commits answers in groups (`local_runner._Committer`), each group waiting for the previous write, so
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
from typing import IO

from tokenomy.batch.backends import RecordResult
from tokenomy.batch.job_tables import Job, JobTables
from tokenomy.batch.records import record_results
from tokenomy.ids import new_id
from tokenomy.ledger.events import UsageEvent
from tokenomy.ledger.journal import event_from_jsonl, journal_dir
from tokenomy.messages import Usage

log = logging.getLogger(__name__)


class RunnerJournal:
    """One runner's append-only file of what it was answered and has not necessarily committed yet."""

    def __init__(self, tables: JobTables, job_id: str) -> None:
        folder = journal_dir(tables.store)
        folder.mkdir(parents=True, exist_ok=True)
        self.path = folder / f"batch-{job_id}-{os.getpid()}-{new_id()}.jsonl"
        self._file: IO[bytes] = open(self.path, "ab", buffering=0)  # noqa: SIM115 - held open (and locked) for its life
        fcntl.flock(self._file, fcntl.LOCK_EX | fcntl.LOCK_NB)
        self._lock = threading.Lock()

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
            view = memoryview(line)
            while view:  # a regular file takes it in one call; a short write is finished, never torn silently
                view = view[os.write(self._file.fileno(), view) :]

    def discard(self) -> None:
        """Everything in it is committed: delete it."""
        self.path.unlink(missing_ok=True)
        self._file.close()

    def release(self) -> None:
        """Keep it for the next run of the job (a commit failed)."""
        self._file.close()


def commit_left_behind(tables: JobTables, job: Job) -> int:
    """Commit what runners of `job` that are gone had journaled, then delete their files; the lines read."""
    folder = journal_dir(tables.store)
    total = 0
    for path in sorted(folder.glob(f"batch-{job.job_id}-*.jsonl")) if folder.is_dir() else []:
        with contextlib.suppress(FileNotFoundError), open(path, "rb") as handle:
            try:
                fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except BlockingIOError:
                continue  # a live runner's
            items, attempts = [], []
            for number, line in enumerate(handle, 1):
                try:
                    record = json.loads(line)
                    if "record" in record:
                        part_no, fields, *rest = record["record"]
                        usage = Usage(**fields.pop("usage")) if fields.get("usage") else None
                        items.append((part_no, RecordResult(**{**fields, "usage": usage}), *rest))
                    else:
                        attempts.append(event_from_jsonl(line))
                except (ValueError, TypeError, KeyError) as exc:  # a torn last line: its answer was never kept
                    log.warning("%s:%d: skipped an unreadable batch journal line (%s)", path, number, exc)
            if attempts:
                tables.write_events(attempts)
            if items:
                record_results(tables, job, items)
            total += len(items) + len(attempts)
            path.unlink()
    if total:
        log.warning("committed %d answers of %s that a stopped runner had not written", total, job.job_id)
    return total
