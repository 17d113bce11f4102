"""Batched, off-the-hot-path ledger writes that survive normal exit and SIGTERM.

`record()` only appends to an in-memory list; a background thread flushes every
`flush_interval` seconds or when `max_batch` events are waiting. On interpreter exit and on
SIGTERM the buffer is flushed before the process goes away. A failing flush (database down) is
retried with exponential backoff (at most every 30 s), logged once per attempt without a traceback; an event
the store refuses for its own values is set aside in a file instead (ledger/rejects.py), so it cannot block the rest.
With a `journal`, every event is also appended to a local fsynced journal (see ledger/journal.py), so
a crash loses nothing that was acknowledged; segments are deleted once their events are written.
"""

from __future__ import annotations

import atexit
import logging
import signal
import threading
import time
import weakref
from collections.abc import Iterable, Sequence
from typing import Any

from tokenomy.ledger.events import UsageEvent
from tokenomy.ledger.journal import Journal
from tokenomy.ledger.rejects import rejects_path, write_setting_aside
from tokenomy.ledger.store import LedgerStore, open_store

log = logging.getLogger(__name__)
_WRITERS: weakref.WeakSet[LedgerWriter] = weakref.WeakSet()
_SIGTERM_INSTALLED = False
SIGTERM_FLUSH_WAIT = 3.0  # seconds the signal handler waits for its flush before handing over
MAX_BACKOFF = 30.0


class LedgerWriter:
    """Buffers events and writes them in batches from a daemon thread."""

    def __init__(
        self,
        store: LedgerStore | str | None = None,
        flush_interval: float = 0.5,
        max_batch: int = 1000,
        journal: Journal | None = None,
    ) -> None:
        self.store = store if isinstance(store, LedgerStore) else open_store(store)
        self.flush_interval = flush_interval
        self.max_batch = max_batch
        self._buffer: list[Any] = []  # what `_journaled` keeps per event: the event here, its JSONL line in a subclass
        self.journal = journal
        self.rejects = rejects_path(self.store)  # where an event the store cannot take is kept (ledger/rejects.py)
        self._written = 0  # events recorded and now in the store (the journal's sequence numbers)
        self._lock = threading.Lock()
        self._flush_lock = threading.Lock()
        self._wake = threading.Event()
        self._closed = False
        self._retry_at = 0.0  # monotonic time before which a failed flush is not retried
        self._thread = threading.Thread(target=self._run, name="tokenomy-ledger", daemon=True)
        self._thread.start()
        _WRITERS.add(self)
        atexit.register(self.close)
        install_sigterm_flush()

    def record(self, event: UsageEvent) -> None:
        """Queue one event; cheap enough for the request path. Once closed, the event is written now."""
        with self._lock:
            if self._closed:
                self._buffer.append(self._late(event))
            else:
                self._buffer.append(self._journaled(event))
            full = len(self._buffer) >= self.max_batch
        if self._closed:
            self._write_through()
        elif full and time.monotonic() >= self._retry_at:
            self._wake.set()

    def record_many(self, events: Iterable[UsageEvent]) -> None:
        with self._lock:
            for event in events:
                self._buffer.append(self._journaled(event))
        self._wake.set()

    def _late(self, event: UsageEvent) -> Any:
        """What the buffer keeps for an event recorded after close (the journal is closed by then)."""
        return event

    def _write_through(self) -> None:
        """Write an event recorded after close (a provider call that ended after shutdown began): no thread flushes
        the buffer any more."""
        try:
            self.flush()
        except Exception as exc:
            log.error(
                "ledger write after shutdown failed (%s): %d events not written", one_line_reason(exc), self.pending
            )

    def _journaled(self, event: UsageEvent) -> Any:
        """Append `event` to the journal (under the buffer's lock: the journal's order is the buffer's); what
        the buffer keeps for it."""
        if self.journal is not None:
            self.journal.append(event)
        return event

    def _write(self, batch: Sequence[Any]) -> None:
        """Write one batch of what the buffer kept to the store; raise to keep it for a retry."""
        write_setting_aside(self.store, batch, self.rejects)

    @property
    def pending(self) -> int:
        return len(self._buffer)

    def flush(self) -> int:
        """Write everything buffered now; on failure the events go back to the buffer."""
        with self._flush_lock:
            with self._lock:
                batch, self._buffer = self._buffer, []
            if not batch:
                return 0
            try:
                self._write(batch)
            except Exception:
                with self._lock:
                    self._buffer[:0] = batch
                raise
            self._written += len(batch)
            if self.journal is not None:
                self.journal.written_to_store(self._written)
            return len(batch)

    def _run(self) -> None:
        failures = 0
        while not self._closed:
            self._wake.wait(self.flush_interval)
            self._wake.clear()
            if time.monotonic() < self._retry_at:
                continue
            try:
                self.flush()
                failures = 0
                self._retry_at = 0.0
            except Exception as exc:  # keep the events and try again later, backing off while it fails
                if self._closed:  # no retry follows: close() writes what is left and says where it is if it cannot
                    return
                failures += 1
                delay = min(MAX_BACKOFF, self.flush_interval * 2**failures)
                self._retry_at = time.monotonic() + delay
                log.warning(
                    "ledger flush of %d events failed (%s); retrying in %.1f s",
                    self.pending,
                    one_line_reason(exc),
                    delay,
                )

    def close(self) -> None:
        """Stop the thread and write what is left."""
        if self._closed:
            return
        self._closed = True
        self._wake.set()
        self._thread.join(timeout=5)
        try:
            self.flush()
        except Exception as exc:
            if self.journal is None:
                raise
            # The journal's segments stay and the next start writes them (journal_replay.replay); what the journal could
            # not take either (disk full) is said whole in the log, the one place left to keep it.
            self.journal.close()
            log.error(
                "ledger database unavailable at shutdown (%s): %s and written at the next start",
                one_line_reason(exc),
                kept_in_journal(self),
            )
            say_unwritten(self.journal)
            return
        if self.journal is not None:
            self.journal.discard()


REASON_CHARS = 1000  # room for our own reasons whole, their fix at the end (a ledger's lock: ~400 with its path)


def one_line_reason(exc: BaseException) -> str:
    """An error as one log-friendly line (at most REASON_CHARS characters)."""
    return " ".join(str(exc).split())[:REASON_CHARS] or type(exc).__name__


def kept_in_journal(writer: LedgerWriter) -> str:
    """Where a writer's events not in the database are: how many the journal has, how many it could not take."""
    if writer.journal is None:
        return f"{writer.pending} events not written"
    missing = len(writer.journal.unwritten)
    said = f"{writer.pending - missing} events kept in the journal {writer.journal.folder}"
    return said + (f" ({missing} more the journal could not take either)" if missing else "")


def say_unwritten(journal: Journal) -> None:
    """Log whole the events neither the database nor the journal has, which the process is about to lose."""
    lines = journal.unwritten
    if lines:
        log.error(
            "ledger: %d events are in neither the database nor the journal %s (its writes failed: disk full?); they "
            "follow, one JSON line each: save them to a file and load it with `tokenomy ledger import FILE`\n%s",
            len(lines),
            journal.folder,
            b"".join(lines).decode(errors="replace").rstrip("\n"),
        )


def flush_all() -> None:
    for writer in list(_WRITERS):
        try:
            writer.flush()
        except Exception as exc:  # the database is down: say where the events are, not a traceback
            log.error("ledger flush on shutdown failed (%s): %s", one_line_reason(exc), kept_in_journal(writer))


def install_sigterm_flush() -> None:
    """On SIGTERM, flush every writer, then hand over to the previous handler (or exit 143)."""
    global _SIGTERM_INSTALLED
    if _SIGTERM_INSTALLED or threading.current_thread() is not threading.main_thread():
        return
    previous = signal.getsignal(signal.SIGTERM)

    def handler(signum, frame):
        # The handler runs on the main thread between two bytecodes, possibly while that thread holds a lock
        # the flush needs (the writer's buffer lock, DuckDB's open lock): flushing inline could wait forever.
        # Flush from another thread and wait a bounded time; the lock holder resumes when the handler returns.
        flusher = threading.Thread(target=flush_all, name="tokenomy-ledger-sigterm", daemon=True)
        flusher.start()
        flusher.join(SIGTERM_FLUSH_WAIT)
        if callable(previous) and previous not in (signal.SIG_DFL, signal.SIG_IGN):
            previous(signum, frame)
        else:
            raise SystemExit(128 + signum)

    signal.signal(signal.SIGTERM, handler)
    _SIGTERM_INSTALLED = True
