"""Writing events so that one the database cannot take never blocks the others.

A figure out of a column's range (an upstream reporting 10^15 tokens) or a value the engine refuses (a NUL byte in
PostgreSQL text) fails the whole batch it is in. Retried as it is, that batch would fail forever: every later
answer piles up unwritten, and the journal replay at the next start fails the same way. Such an event is set aside
instead, in a JSONL file beside the ledger (one event per line, as `tokenomy ledger export` writes them, so
`tokenomy ledger import` loads it once fixed), and logged as an error; the rest of the batch is written.
"""

from __future__ import annotations

import hashlib
import logging
import os
from collections.abc import Sequence
from pathlib import Path

import orjson

from tokenomy.ledger.base import unstorable
from tokenomy.ledger.events import UsageEvent
from tokenomy.ledger.store import LedgerStore

log = logging.getLogger(__name__)


def rejects_path(store: LedgerStore) -> Path:
    """Beside a DuckDB file; under .tokenomy/ (named after the URL, without credentials) for a server."""
    path = getattr(store, "path", None)
    if path is not None:
        return Path(f"{path}.rejected.jsonl")
    return Path(".tokenomy") / f"rejected-{hashlib.sha256(store.url.encode()).hexdigest()[:12]}.jsonl"


def write_setting_aside(store: LedgerStore, events: Sequence[UsageEvent], rejects: Path) -> int:
    """Write `events`; those the store cannot take go to `rejects` (synced to disk) instead. The number handled
    either way. Raises what is not about the events themselves (database down, lock held): retry the batch."""
    storable, refused = [], []
    for event in events:
        why = unstorable(event)
        if why is None:
            storable.append(event)
        else:
            refused.append((event, why))
    refused += write_refusing(store, storable)
    if refused:
        _set_aside(rejects, refused)
    return len(events)


def write_refusing(store: LedgerStore, events: Sequence[UsageEvent]) -> list[tuple[UsageEvent, str]]:
    """Write; on an error about the rows, halve the batch until the refused events are found (a few more writes
    for one bad event in a thousand). The refused events, with the engine's reason."""
    if not events:
        return []
    try:
        store.write(events)
        return []
    except Exception as exc:
        # Text the driver cannot encode (a lone surrogate in a model name a library caller passed) is the event's
        # own fault too: counted as the engine's, it failed every batch it was in, for ever.
        cause = next((e for e in _chain(exc) if store.is_data_error(e) or isinstance(e, UnicodeEncodeError)), None)
        if cause is None:
            raise
        if len(events) == 1:
            return [(events[0], " ".join(str(cause).split())[:300])]
    half = len(events) // 2
    return write_refusing(store, events[:half]) + write_refusing(store, events[half:])


def _chain(exc: BaseException) -> list[BaseException]:
    """`exc` and the errors it was raised during or from: an engine's refusal can be masked by the error its
    clean-up then met (DuckDB: "transaction is aborted" while unregistering a view), and the refusal decides."""
    chain: list[BaseException] = []
    current: BaseException | None = exc
    while current is not None and current not in chain:
        chain.append(current)
        current = current.__cause__ or current.__context__
    return chain


def _set_aside(rejects: Path, refused: list[tuple[UsageEvent, str]]) -> None:
    # A batch is sent again when the writer process died before it answered: what it set aside then is there.
    kept = _kept_ids(rejects)
    refused = [(event, why) for event, why in refused if event.event_id not in kept]
    if not refused:
        return
    rejects.parent.mkdir(parents=True, exist_ok=True)
    with rejects.open("ab") as out:
        for event, _ in refused:
            out.write(event.to_jsonl())
        out.flush()
        os.fsync(out.fileno())  # the journal drops its copy once this returns
    for event, why in refused:
        log.error(
            "ledger: event %s (%s, %s) cannot be stored: %s; it is kept in %s - correct it there and load it with "
            "`tokenomy ledger import %s`",
            event.event_id,
            event.provider,
            event.model,
            why,
            rejects,
            rejects,
        )


def _kept_ids(rejects: Path) -> set[str]:
    """Event ids already in the rejects file (read only when something is set aside, which is rare)."""
    try:
        lines = rejects.read_bytes().splitlines()
    except FileNotFoundError:
        return set()
    ids = set()
    for line in lines:
        try:
            ids.add(str(orjson.loads(line)["event_id"]))
        except (orjson.JSONDecodeError, KeyError, TypeError):
            continue  # a line the user is correcting by hand: it is theirs, and names no id to skip
    return ids
