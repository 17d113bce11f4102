"""Ledger writes from a child process, so that the gateway's event loop never waits for them.

A database write is ~100 ms of work per second of a busy gateway's calls (2,000 events: building the rows, the
DuckDB connection, the insert and its rollups, the checkpoint on close). In the gateway's own process much of it
holds the GIL, in slices of up to 13 ms, and every request in flight waits behind them: measured at concurrency 32
on the instant upstream, the writes alone took p99 from ~20 ms to ~55 ms and cost a sixth of the throughput.

`ProcessLedgerWriter` keeps the write-behind buffer, the journal, the retries and the shutdown flush of
`LedgerWriter`, but its buffer holds each event's JSONL line (the journal's, encoded once) and a flush hands the
lines to a child process (`python -m tokenomy.ledger.writer_process`) that decodes them and writes them, setting
aside what the store refuses exactly as in-process writes do. The flush returns when the child says they are
written, so `flush()` still means "in the database" and the journal's segments are deleted only then.

The pipe carries frames: a header line with the payload's byte count, then the payload. The first frame is the
store's URL (never on the command line, where `ps` would show a password); each later one is a batch of lines. The
child answers each frame with one JSON line: `{"written": n}` or `{"error": "why"}`. It ignores SIGINT and SIGTERM
and runs in its own session, so a Ctrl-C or a `kill` of the gateway cannot stop it before the gateway's last
flush; it exits when its input closes (the gateway exited, however it exited). A child that dies is started again
at the next flush, and the batch it had is sent again (writes skip event ids already present).
"""

from __future__ import annotations

import logging
import os
import select
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Sequence
from typing import IO

import orjson

from tokenomy.ledger.events import UsageEvent
from tokenomy.ledger.journal import Journal, ledger_name
from tokenomy.ledger.journal_replay import event_from_jsonl, unreadable_event
from tokenomy.ledger.rejects import rejects_path, write_setting_aside
from tokenomy.ledger.store import DuckDBStore, LedgerStore, open_store
from tokenomy.ledger.writer import LedgerWriter, one_line_reason

log = logging.getLogger(__name__)
# Seconds a closing writer waits for the child's answer before leaving the batch to the journal (next start).
SHUTDOWN_WAIT = 10.0
# Seconds without an answer before the log says the database is not answering: a server paused or unreachable
# (no refusal, so no error comes back) or a lock held for ever left the writes silent while rows stopped arriving.
STALL_WARN = 60.0


class WriterProcessError(RuntimeError):
    """The child could not write a batch (its reason), or is gone."""


class ChildGone(WriterProcessError):
    """The child died before answering (killed, crashed): not about the database, so worth one retry at once."""


class ProcessLedgerWriter(LedgerWriter):
    """A LedgerWriter whose flushes are written by a child process."""

    def __init__(
        self, store: LedgerStore, flush_interval: float = 0.5, max_batch: int = 1000, journal: Journal | None = None
    ) -> None:
        self._child: subprocess.Popen | None = None
        self._child_lock = threading.Lock()
        self._closing_at: float | None = None  # monotonic time close() began
        super().__init__(store, flush_interval=flush_interval, max_batch=max_batch, journal=journal)

    def _journaled(self, event: UsageEvent) -> bytes:
        line = event.to_jsonl()  # encoded once: for the journal and for the child
        if self.journal is not None:
            self.journal.append_line(line, event.event_id)
        return line

    def _late(self, event: UsageEvent) -> bytes:
        return event.to_jsonl()

    def _write_through(self) -> None:
        try:
            super()._write_through()
        finally:  # the child started for it is not left running
            with self._child_lock:
                if self._child is not None:
                    _stop(self._child)
                    self._child = None

    def _write(self, batch: Sequence[bytes]) -> None:
        payload = b"".join(batch)
        with self._child_lock:
            try:
                self._write_once(payload)
            except ChildGone as exc:  # a new child takes the batch now, not after a backoff meant for a database down
                log.warning("%s; starting another", exc)
                self._write_once(payload)

    def _write_once(self, payload: bytes) -> None:
        child = self._running_child()
        try:
            _send(child.stdin, payload)
            answer = self._answer(child)
        except OSError as exc:  # a broken pipe: the child died between two flushes
            answer = b""
            log.debug("ledger writer process pipe: %s", exc)
        if not answer:
            self._child = None
            raise ChildGone(f"the ledger writer process {_ended(child.wait())}")
        reply = _reply(child, answer)
        if "error" in reply:
            raise WriterProcessError(reply["error"])

    def _running_child(self) -> subprocess.Popen:
        if self._child is not None and self._child.poll() is None:
            return self._child
        child = subprocess.Popen(
            # -P: not the working directory first on its path, where a tokenomy.py (or duckdb.py...) of the operator's
            # would be imported instead of the package, and no ledger write would ever succeed.
            [sys.executable, "-P", "-m", "tokenomy.ledger.writer_process"],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            start_new_session=True,  # out of the terminal's process group: a Ctrl-C reaches the gateway only
        )
        try:
            _send(child.stdin, self.store.url.encode())
            answer = self._answer(child)
        except OSError:
            answer = b""
        if not answer or "error" in (reply := _reply(child, answer)):
            _stop(child)
            raise WriterProcessError(reply["error"] if answer else f"the ledger writer process {_ended(child.wait())}")
        self._child = child
        return child

    def _answer(self, child: subprocess.Popen) -> bytes:
        """The child's answer line, or b"" if it is gone. Once close() has begun, a child that has not answered within
        SHUTDOWN_WAIT seconds is killed: stuck on a lock another process holds (a DuckDB file open elsewhere, 30 s
        per attempt; a PostgreSQL lock, for ever) it held the gateway's exit. Its batch stays in the journal."""
        if child.stdout is None:
            return b""
        ready = select.poll()  # not select(): a busy gateway's pipe can be past fd 1024, which select() refuses
        ready.register(child.stdout, select.POLLIN)
        asked, stalled = time.monotonic(), False
        while not ready.poll(200):  # one answer per frame: nothing is ever left in the reader's buffer
            if self._closing_at is not None and time.monotonic() > self._closing_at + SHUTDOWN_WAIT:
                child.kill()
                child.wait()
                raise WriterProcessError(
                    f"the ledger writer process did not answer within {SHUTDOWN_WAIT:g} s of shutdown (is the "
                    "ledger database locked by another process?)"
                )
            if not stalled and time.monotonic() > asked + STALL_WARN:
                stalled = True
                log.warning(
                    "ledger write has had no answer from the database for %g s (a server paused or unreachable, or "
                    "a lock another process holds on %s); the write goes on, and the calls answered meanwhile are "
                    "%s",
                    STALL_WARN,
                    ledger_name(self.store),
                    f"kept in the journal {self.journal.folder}" if self.journal is not None else "kept in memory",
                )
        if stalled:
            log.warning("ledger write answered after %.0f s", time.monotonic() - asked)
        return child.stdout.readline()

    def close(self) -> None:
        if self.journal is not None:  # what a stuck child holds is safe in the journal: bound the wait for it
            self._closing_at = time.monotonic()
        try:
            super().close()
        finally:
            with self._child_lock:
                if self._child is not None:
                    _stop(self._child)
                    self._child = None


def _ended(status: int) -> str:
    """How a child ended, as its log line says it ("status -9" read as an error code, not as a kill)."""
    if status < 0:
        try:
            return f"was killed by {signal.Signals(-status).name}"
        except ValueError:
            return f"was killed by signal {-status}"
    return f"exited with status {status}"


def _reply(child: subprocess.Popen, answer: bytes) -> dict:
    """An answer line decoded. Anything else (a library the child imports printing to stdout) puts the pipe out of
    step: every later answer would be taken for the next batch's, a failed write for a written one. The child is
    killed (a new one starts at the next flush) and the batch kept."""
    try:
        return orjson.loads(answer)
    except orjson.JSONDecodeError:
        child.kill()
        child.wait()
        raise WriterProcessError(
            f"the ledger writer process printed {answer[:200]!r} where only its answers belong (something it imports "
            "writes to stdout); it was stopped and the batch is kept"
        ) from None


def _send(pipe: IO[bytes] | None, payload: bytes) -> None:
    if pipe is None:
        raise OSError("no pipe to the ledger writer process")
    pipe.write(b"%d\n" % len(payload))
    pipe.write(payload)
    pipe.flush()


def _stop(child: subprocess.Popen) -> None:
    """Close its input (it exits when it has answered what it holds); kill it if it does not."""
    try:
        if child.stdin is not None:
            child.stdin.close()
        child.wait(10)
    except (OSError, subprocess.TimeoutExpired):
        child.kill()
        child.wait()
    finally:
        if child.stdout is not None:
            child.stdout.close()


def _read_frame(pipe: IO[bytes]) -> bytes | None:
    header = pipe.readline()
    if not header:
        return None
    size = int(header)
    payload = pipe.read(size)
    if len(payload) != size:
        return None  # the gateway died mid-frame: what it sent is in its journal
    return payload


def _answer(out: IO[bytes], reply: dict) -> None:
    out.write(orjson.dumps(reply) + b"\n")
    out.flush()


def _decoded(lines: list[bytes]) -> list[UsageEvent]:
    events = []
    for line in lines:
        try:
            events.append(event_from_jsonl(line))
        except (ValueError, TypeError, KeyError) as exc:  # cannot happen for to_jsonl's lines; never block the rest
            log.error(
                "ledger writer process: an event it cannot read was not written (%s)", unreadable_event(line, exc)
            )
    return events


def main() -> int:
    """The child: open the store named by the first frame, then write each batch and answer."""
    signal.signal(signal.SIGINT, signal.SIG_IGN)  # the gateway decides when the last batch has come: EOF
    signal.signal(signal.SIGTERM, signal.SIG_IGN)
    logging.basicConfig(level=logging.WARNING, format="%(levelname)s %(name)s: %(message)s")
    source, out = sys.stdin.buffer, sys.stdout.buffer
    try:
        return _serve(source, out)
    except BrokenPipeError:
        # The gateway is gone (SIGKILL) before reading an answer: what it sent and did not hear back about is in its
        # journal, replayed at its next start. Exit quietly, not with a traceback on the terminal it shared, and
        # with no answer left buffered for Python to fail writing again at exit.
        os.dup2(os.open(os.devnull, os.O_WRONLY), out.fileno())
        return 0


def _serve(source: IO[bytes], out: IO[bytes]) -> int:
    url = _read_frame(source)
    if url is None:
        return 0
    try:
        store = open_store(url.decode())
    except Exception as exc:
        _answer(out, {"error": f"cannot open the ledger: {one_line_reason(exc)}"})
        return 1
    if isinstance(store, DuckDBStore):
        store.threads = 1  # a batch is small: more threads only take cores from the gateway (-10% CPU measured)
    rejects = rejects_path(store)
    _answer(out, {"written": 0})
    while (payload := _read_frame(source)) is not None:
        lines = payload.splitlines()
        try:
            write_setting_aside(store, _decoded(lines), rejects)
        except Exception as exc:  # the database is down or locked: the gateway keeps the batch and retries
            _answer(out, {"error": one_line_reason(exc)})
            continue
        _answer(out, {"written": len(lines)})
    return 0


if __name__ == "__main__":
    sys.exit(main())
