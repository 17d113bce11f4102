"""A local append-only journal of ledger events: what a client was told about survives a crash.

The write-behind LedgerWriter keeps the database off the request path, but its buffer dies with the
process (SIGKILL, OOM, power loss). The journal closes that gap: every event is written to the journal
file as one JSON line (one `write` syscall, on the request path, before the answer is released), so a
process that dies loses nothing it answered. How far that goes is `sync`:

- `"write"` (default): the line is in the operating system's page cache when the answer leaves; a
  background thread `fdatasync`s every `interval` seconds. A killed process (SIGKILL, OOM, a crash)
  loses nothing; a power loss or kernel panic can lose the last `interval` seconds. No wait on the
  request path (measured: the fsync wait was most of the gateway's 1.2 ms added latency at concurrency 1).
- `"fsync"`: the answer also waits until the line is on disk (group commit: one `fdatasync` covers every
  event that arrived meanwhile). A power loss loses nothing answered either.

Before an attempt is sent, the gateway writes an in-flight entry for it (`in_flight`: the attempt's row at its
estimated tokens, outcome `interrupted`, marked `{"in_flight":1,...}`), under the event id its own row will take; it
takes no sequence number and never reaches the database from here. It carries the model the attempt is priced as,
not a cost: pricing it on every attempt was most of the entry's cost on the request path, and few entries are ever
read. Its row supersedes it (`append_line` drops it from the open entries), as does a `void` line for an attempt
that ended unsent. A segment sealed while entries are open hands them to the next (written there again), so deleting
it loses none. It is one more `write` per attempt, no fsync: a write the OS holds survives a SIGKILL.

On start, `ledger.journal_replay.replay()` writes the journals left by processes that are gone into the database.

Files are segments `journal-<pid>-<random>-<n>.jsonl`, each held under an exclusive flock while its
process lives, so a starting worker never replays a live neighbour's journal (a segment is created under a hidden
name and takes its own once locked, so no replay sees it unlocked). A segment is deleted
once every event in it is in the database.

A folder the operator chose (`gateway.journal_dir`) is claimed for one ledger (`claim`): replay writes every
dead segment in it into the starting gateway's ledger, so a folder shared by gateways on two ledgers moved one
ledger's answered calls into the other.
"""

from __future__ import annotations

import asyncio
import contextlib
import fcntl
import hashlib
import logging
import os
import threading
from collections import deque
from pathlib import Path
from typing import IO, Literal
from urllib.parse import parse_qsl, urlencode, urlsplit

import orjson

from tokenomy.errors import ConfigError
from tokenomy.ids import new_id
from tokenomy.ledger.events import UsageEvent
from tokenomy.ledger.store import LedgerStore

log = logging.getLogger(__name__)
SEGMENT_BYTES = 8 * 1024 * 1024
SYNC_MODES = ("write", "fsync")
OWNER_FILE = "LEDGER"  # in a journal folder: which ledger its segments belong to
_CREDENTIALS = {"user", "password", "sslpassword", "passfile"}  # URL options that name who connects, not the database
IN_FLIGHT = b'{"in_flight":1,'  # how an in-flight entry's line begins (the row's JSON follows)
PRICE_AS = "price_as"  # an in-flight entry's key: the model the replay prices its tokens as
PRICE_TIER = "price_tier"  # ... and the service tier it asked for, when a dearer one (flex, priority, ...)
VOID = b'{"in_flight_void":'  # ... and a line saying an attempt's entry is void (it ended unsent)
_PRICE_AS_KEY = orjson.dumps(PRICE_AS) + b":"  # the two keys as written, encoded once (an entry per attempt)
_PRICE_TIER_KEY = orjson.dumps(PRICE_TIER) + b":"


def ledger_name(store: LedgerStore) -> str:
    """Which ledger a journal belongs to: a DuckDB file's resolved path, a server's URL without its credentials or
    options (the same database after a password change is the same ledger, and no password is written out)."""
    path = getattr(store, "path", None)
    if path is not None:
        return str(Path(path).resolve())
    url = urlsplit(store.url)
    hosts = url.netloc.rpartition("@")[2].lower()  # "h1:5432,h2:5433" as libpq takes it; no credentials
    kept = sorted((k, v) for k, v in parse_qsl(url.query) if k not in _CREDENTIALS)  # host=, service=, options=
    return f"{url.scheme}://{hosts}{url.path}" + (f"?{urlencode(kept)}" if kept else "")


def journal_dir(store: LedgerStore) -> Path:
    """Beside a DuckDB file; under .tokenomy/ (named after the server's URL without credentials) for a server."""
    path = getattr(store, "path", None)
    if path is not None:
        return Path(f"{path}.journal")
    return Path(".tokenomy") / f"journal-{hashlib.sha256(ledger_name(store).encode()).hexdigest()[:12]}"


def legacy_journal_dir(store: LedgerStore) -> Path | None:
    """Where versions before 2026-12-03 kept a server ledger's journal (named after the whole URL, password
    included): replayed too, so an upgrade right after a crash loses nothing."""
    if getattr(store, "path", None) is not None:
        return None
    return Path(".tokenomy") / f"journal-{hashlib.sha256(store.url.encode()).hexdigest()[:12]}"


def claim(folder: Path, store: LedgerStore) -> None:
    """Mark `folder` as the journal of `store`'s ledger; ConfigError if it is another ledger's journal."""
    name = ledger_name(store)
    identity = hashlib.sha256(name.encode()).hexdigest()[:16]
    folder.mkdir(parents=True, exist_ok=True)
    marker = folder / OWNER_FILE
    draft = folder / f".{OWNER_FILE}-{os.getpid()}-{new_id()}"
    draft.write_text(f"{identity} {name}\n")
    try:
        os.link(draft, marker)  # created whole or not at all: a gateway starting beside never reads half of it
    except FileExistsError:
        pass
    finally:
        draft.unlink()
    owner, _, owner_name = marker.read_text().strip().partition(" ")
    if owner != identity:
        raise ConfigError(
            f"{folder} is the ledger journal of {owner_name}, not of {name}: the events a gateway leaves there are "
            "replayed into the ledger of whichever gateway starts next; give each ledger its own journal folder "
            f"(if this ledger was moved from {owner_name}, delete {marker})"
        )


class _Segment:
    def __init__(self, path: Path) -> None:
        self.path = path
        # Created under a name replay does not read, and named a segment only once locked: a gateway starting beside
        # (a worker of the same `serve`) took the new file, unlocked for that instant, for a dead one, and deleted it
        # while this process went on writing every answer into the deleted file, lost at the next crash.
        draft = path.with_name(f".{path.name}")
        self.file: IO[bytes] = open(draft, "ab", buffering=0)  # noqa: SIM115 - held open (and locked) for its life
        try:
            fcntl.flock(self.file, fcntl.LOCK_EX | fcntl.LOCK_NB)
            os.rename(draft, path)
        except OSError:
            self.file.close()
            with contextlib.suppress(OSError):
                draft.unlink()
            raise
        self.fd = self.file.fileno()
        self.size = os.fstat(self.fd).st_size
        self.last_seq = 0

    def write(self, data: bytes) -> None:
        view = memoryview(data)
        try:
            while view:  # a regular file takes it in one call; a short write is finished, never torn silently
                view = view[self._write_some(view) :]
        except OSError:
            # Part of the line may be in the file (the disk filled up midway): cut it off, or the next line, written
            # once there is room, would follow the torn half and both would be unreadable at replay.
            with contextlib.suppress(OSError):
                os.ftruncate(self.fd, self.size)
            raise
        self.size += len(data)

    def _write_some(self, view: memoryview) -> int:
        return os.write(self.fd, view)

    def drop(self) -> None:
        with contextlib.suppress(FileNotFoundError):
            self.path.unlink()
        self.file.close()


class Journal:
    def __init__(self, folder: Path, sync: Literal["write", "fsync"] = "write", interval: float = 0.2) -> None:
        if sync not in SYNC_MODES:
            raise ValueError(f"journal sync {sync!r} is not one of {', '.join(SYNC_MODES)}")
        self.folder = folder
        self.sync, self.interval = sync, interval
        folder.mkdir(parents=True, exist_ok=True)
        self._stem = f"journal-{os.getpid()}-{new_id()}"  # unique per journal, across processes too
        self._numbers = iter(range(1, 1 << 62))
        self._cond = threading.Condition()
        self._io = threading.Lock()  # appends vs. segment rotation and deletion
        self._waiters: list[tuple[int, asyncio.AbstractEventLoop, asyncio.Future]] = []
        self.appended = 0  # sequence number of the last event written to the journal file
        self.durable = 0  # ... of the last one known to be on disk (fdatasync'ed)
        self._failed = False  # the last write failed: logged once until it recovers
        # Events whose write failed (disk full), in order, with their sequence numbers: written before the next line
        # and by the sync thread once there is room, dropped once the database has them (`written_to_store`).
        self._unwritten: deque[tuple[int, bytes]] = deque()
        self._stuck = False  # the last rotation failed: logged once until it recovers
        self._closed = False
        self._open: dict[str, bytes] = {}  # in-flight entries not superseded yet, by event id
        self._current = self._open_segment()
        self._sealed: list[_Segment] = []
        self._thread = threading.Thread(target=self._run, name="tokenomy-journal", daemon=True)
        self._thread.start()

    @property
    def failing(self) -> bool:
        """The last write to the journal failed (disk full, I/O error): answers are not crash-safe until one works."""
        return self._failed

    @property
    def unwritten(self) -> list[bytes]:
        """The JSONL lines of events neither in the journal file (its writes failed) nor known to be in the database."""
        with self._io:
            return [line for _, line in self._unwritten]

    def _open_segment(self) -> _Segment:
        return _Segment(self.folder / f"{self._stem}-{next(self._numbers)}.jsonl")

    def append(self, event: UsageEvent) -> int:
        """Write one event to the journal file now (one syscall); its sequence number."""
        return self.append_line(event.to_jsonl(), event.event_id)

    def append_line(self, line: bytes, event_id: str | None = None) -> int:
        """Write one event already encoded as a JSONL line (`UsageEvent.to_jsonl`); its sequence number. It
        supersedes the in-flight entry of the same `event_id`."""
        with self._io:
            if self._open and event_id is not None:
                self._open.pop(event_id, None)
            self.appended += 1
            seq = self.appended
            self._unwritten.append((seq, line))
            self._write_unwritten()
        if self.sync == "fsync":
            with self._cond:
                self._cond.notify()
        return seq

    def in_flight(self, event_id: str, line: bytes, price_as: str | None = None, tier: str = "standard") -> None:
        """Write the in-flight entry of an attempt about to be sent: `line`, its row at its estimated tokens (a JSONL
        line in `UsageEvent.to_jsonl`'s format), unpriced when `price_as` names the model the replay is to price it as,
        at service `tier` (a line without it keeps the cost it carries). A failed write is not retried: the attempt's
        own row is what the journal keeps."""
        if price_as is None:
            entry = IN_FLIGHT + line[1:]
        else:
            tiered = b"" if tier == "standard" else _PRICE_TIER_KEY + orjson.dumps(tier) + b","
            entry = b"".join((IN_FLIGHT, _PRICE_AS_KEY, orjson.dumps(price_as), b",", tiered, memoryview(line)[1:]))
        with self._io:
            if self._closed:
                return
            self._open[event_id] = entry
            self._write_entry(entry)

    def void(self, event_id: str) -> None:
        """The attempt `event_id` ended without a row (nothing was sent): its in-flight entry is void."""
        with self._io:
            if self._open.pop(event_id, None) is not None and not self._closed:
                self._write_entry(VOID + orjson.dumps(event_id) + b"}\n")

    def _write_entry(self, entry: bytes) -> None:
        """Write an in-flight entry or void line (under `_io`) when no event line waits before it (disk full)."""
        if self._unwritten:
            return
        with contextlib.suppress(OSError):
            self._current.write(entry)

    def _write_unwritten(self) -> None:
        """Write the lines waiting, in order (under `_io`). A failure (disk full, I/O error) keeps them for the next
        try; the caller is answered anyway (the write-behind still has the event)."""
        segment = self._current
        try:
            while self._unwritten:
                seq, line = self._unwritten[0]
                segment.write(line)
                segment.last_seq = max(segment.last_seq, seq)
                self._unwritten.popleft()
        except OSError as exc:
            if not self._failed:
                log.error("ledger journal write failed (%s); answers are not crash-safe until it recovers", exc)
            self._failed = True
        else:
            if self._failed:
                log.warning("ledger journal writes work again: the events they missed are written")
            self._failed = False
        if segment.size > SEGMENT_BYTES:  # rare: seal it on disk here, so the thread only syncs the current one
            self._rotate(segment)

    def _rotate(self, segment: _Segment) -> None:
        """Seal the full `segment` and start the next. The next is opened first: if it cannot be (disk full), the
        full one stays current and unsealed, so it is never deleted while it is still written to."""
        try:
            os.fdatasync(segment.fd)
            following = self._open_segment()
        except OSError as exc:  # tried again at the next append; said once until it works
            if not self._stuck:
                log.error("ledger journal cannot start a new segment (%s); %s keeps growing", exc, segment.path)
            self._stuck = True
            return
        self._stuck = False
        self._sealed.append(segment)
        self._current = following
        for entry in list(self._open.values()):  # the sealed segment may go before these attempts end
            self._write_entry(entry)

    async def durable_async(self, seq: int | None = None) -> None:
        """Return once event `seq` (default: every event appended so far) is as safe as `sync` promises:
        written (at once, with "write") or on disk (with "fsync")."""
        seq = self.appended if seq is None else seq
        if self.sync == "write" or self.durable >= seq:
            return
        loop = asyncio.get_running_loop()
        future = loop.create_future()
        with self._cond:
            if self.durable >= seq:
                return
            self._waiters.append((seq, loop, future))
        await future

    def durable_sync(self, seq: int | None = None, timeout: float = 10.0) -> bool:
        """Block until event `seq` is on disk (whatever `sync` is); False after `timeout` seconds."""
        seq = self.appended if seq is None else seq
        with self._cond:
            self._cond.notify()
            return self._cond.wait_for(lambda: self.durable >= seq, timeout)

    def _run(self) -> None:
        while True:
            with self._cond:
                if not self._closed:
                    if self.sync == "fsync" and not self._unwritten:  # group commit: sync once anything is written
                        self._cond.wait_for(lambda: self._closed or self.appended > self.durable)
                    else:  # on a timer (a durable_sync or close wakes it early); lines waiting for room retried
                        self._cond.wait(self.interval)
                closing = self._closed
            with self._io:
                if self._unwritten:  # the disk may have room again, though no answer came since
                    self._write_unwritten()
                # Read before the sync: every event up to it is in the segment synced below. One still waiting for
                # room on the disk is in memory only, and so is every later one (they are written in order).
                upto = self._unwritten[0][0] - 1 if self._unwritten else self.appended
            if upto > self.durable:
                try:
                    os.fdatasync(self._current.fd)  # sealed segments were synced when sealed
                except OSError as exc:
                    log.error(
                        "ledger journal fsync failed (%s); answers are not power-loss-safe until it recovers", exc
                    )
                self._release(upto)
            if closing:
                return

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
            while self._unwritten and self._unwritten[0][0] <= seq:
                self._unwritten.popleft()
            keep = []
            for segment in self._sealed:
                if segment.last_seq <= seq:
                    segment.drop()
                else:
                    keep.append(segment)
            self._sealed = keep

    def close(self) -> None:
        """Sync what was written and stop the thread (the segments stay for a replay)."""
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
