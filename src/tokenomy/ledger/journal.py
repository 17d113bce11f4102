"""A local append-only journal of ledger events: what a client was told about survives a crash.

The write-behind LedgerWriter keeps the database off the request path, but its buffer dies with the
process (SIGKILL, OOM, power loss). The journal closes that gap: every event is appended as one JSON
line, a background thread writes and fsyncs whatever has accumulated (group commit: one fsync covers
every event that arrived meanwhile), and the gateway awaits `durable()` before it releases a response.
On start, `replay()` writes the journals left by processes that are gone into the database (events
carry ids and the insert skips ids already present, so replaying twice is harmless) and deletes them.

Files are segments `journal-<pid>-<random>-<n>.jsonl`, each held under an exclusive flock while its
process lives, so a starting worker never replays a live neighbour's journal. A segment is deleted
once every event in it is in the database.
"""

from __future__ import annotations

import asyncio
import contextlib
import fcntl
import hashlib
import json
import logging
import os
import threading
import uuid
from datetime import datetime
from decimal import Decimal
from pathlib import Path
from typing import IO

from tokenomy.ledger.events import COLUMNS, UsageEvent
from tokenomy.ledger.store import LedgerStore

log = logging.getLogger(__name__)
SEGMENT_BYTES = 8 * 1024 * 1024
_COSTS = {"input_cost_usd", "output_cost_usd", "cache_read_cost_usd", "cache_write_cost_usd", "cost_usd"}


def journal_dir(store: LedgerStore) -> Path:
    """Beside a DuckDB file; under .tokenomy/ (named after the URL, without credentials) for PostgreSQL."""
    path = getattr(store, "path", None)
    if path is not None:
        return Path(f"{path}.journal")
    return Path(".tokenomy") / f"journal-{hashlib.sha256(store.url.encode()).hexdigest()[:12]}"


class _Segment:
    def __init__(self, path: Path) -> None:
        self.path = path
        self.file: IO[bytes] = open(path, "ab")  # noqa: SIM115 - held open (and locked) for the segment's life
        fcntl.flock(self.file, fcntl.LOCK_EX | fcntl.LOCK_NB)
        self.last_seq = 0

    def drop(self) -> None:
        with contextlib.suppress(FileNotFoundError):
            self.path.unlink()
        self.file.close()


class Journal:
    def __init__(self, folder: Path) -> None:
        self.folder = folder
        folder.mkdir(parents=True, exist_ok=True)
        self._stem = f"journal-{os.getpid()}-{uuid.uuid4().hex[:8]}"
        self._numbers = iter(range(1, 1 << 62))
        self._cond = threading.Condition()
        self._io = threading.Lock()  # the commit thread's writes vs. segment rotation and deletion
        self._lines: list[bytes] = []
        self._waiters: list[tuple[int, asyncio.AbstractEventLoop, asyncio.Future]] = []
        self.appended = 0  # sequence number of the last event appended
        self.durable = 0  # ... of the last one on disk (or no longer needed there)
        self._closed = False
        self._current = self._open_segment()
        self._sealed: list[_Segment] = []
        self._thread = threading.Thread(target=self._run, name="tokenomy-journal", daemon=True)
        self._thread.start()

    def _open_segment(self) -> _Segment:
        return _Segment(self.folder / f"{self._stem}-{next(self._numbers)}.jsonl")

    def append(self, event: UsageEvent) -> int:
        line = (json.dumps(event.to_json(), separators=(",", ":")) + "\n").encode()
        with self._cond:
            self._lines.append(line)
            self.appended += 1
            self._cond.notify()
            return self.appended

    async def durable_async(self, seq: int | None = None) -> None:
        """Return once event `seq` (default: every event appended so far) is on disk."""
        seq = self.appended if seq is None else seq
        if self.durable >= seq:
            return
        loop = asyncio.get_running_loop()
        future = loop.create_future()
        with self._cond:
            if self.durable >= seq:
                return
            self._waiters.append((seq, loop, future))
        await future

    def durable_sync(self, seq: int | None = None, timeout: float = 10.0) -> bool:
        seq = self.appended if seq is None else seq
        with self._cond:
            return self._cond.wait_for(lambda: self.durable >= seq, timeout)

    def _run(self) -> None:
        while True:
            with self._cond:
                while not self._lines and not self._closed:
                    self._cond.wait()
                if not self._lines:
                    return
                lines, self._lines = self._lines, []
                upto = self.appended
            try:
                with self._io:
                    segment = self._current
                    segment.file.write(b"".join(lines))
                    segment.file.flush()
                    os.fdatasync(segment.file.fileno())
                    segment.last_seq = upto
                    if segment.file.tell() > SEGMENT_BYTES:
                        self._sealed.append(segment)
                        self._current = self._open_segment()
            except OSError as exc:  # disk full, I/O error: answer anyway (the write-behind still has the events)
                log.error("ledger journal write failed (%s); answers are no longer crash-safe until it recovers", exc)
            self._release(upto)

    def _release(self, upto: int) -> None:
        with self._cond:
            self.durable = max(self.durable, upto)
            ready = [w for w in self._waiters if w[0] <= self.durable]
            self._waiters = [w for w in self._waiters if w[0] > self.durable]
            self._cond.notify_all()
        for _, loop, future in ready:
            loop.call_soon_threadsafe(_resolve, future)

    def written_to_store(self, seq: int) -> None:
        """Events up to `seq` are in the database: delete the segments that hold nothing newer."""
        with self._io:
            keep = []
            for segment in self._sealed:
                if segment.last_seq <= seq:
                    segment.drop()
                else:
                    keep.append(segment)
            self._sealed = keep

    def close(self) -> None:
        with self._cond:
            self._closed = True
            self._cond.notify_all()
        self._thread.join(10)

    def discard(self) -> None:
        """Everything is in the database (clean shutdown): remove this process's segments."""
        self.close()
        with self._io:
            for segment in [*self._sealed, self._current]:
                segment.drop()
            self._sealed = []


def _resolve(future: asyncio.Future) -> None:
    if not future.done():
        future.set_result(None)


def _event(record: dict) -> UsageEvent:
    values = {k: v for k, v in record.items() if k in COLUMNS}
    values["ts"] = datetime.fromisoformat(str(values["ts"]).replace("Z", "+00:00"))
    for name in _COSTS & set(values):
        if values[name] is not None:
            values[name] = Decimal(str(values[name]))
    return UsageEvent(**values)


def replay(folder: Path, store: LedgerStore) -> int:
    """Write the journals of processes that are gone into `store`, then delete them; the number of events read."""
    if not folder.is_dir():
        return 0
    total = 0
    for path in sorted(folder.glob("journal-*.jsonl")):
        try:
            handle = open(path, "rb")  # noqa: SIM115
        except FileNotFoundError:
            continue
        with handle:
            try:
                fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except BlockingIOError:
                continue  # a live process's journal
            events = []
            for number, line in enumerate(handle, 1):
                try:
                    events.append(_event(json.loads(line)))
                except (ValueError, TypeError, KeyError) as exc:  # a torn last line was never acknowledged
                    log.warning("%s:%d: skipped an unreadable journal line (%s)", path, number, exc)
            for start in range(0, len(events), 5000):
                store.write(events[start : start + 5000])
            total += len(events)
            path.unlink(missing_ok=True)
    if total:
        log.warning("replayed %d ledger events from the journal in %s", total, folder)
    return total
