"""Reading ledger journals back (`ledger.journal` writes them): the event a journal line holds, and the replay of
the journals of processes that are gone.

On start, `replay()` writes the journals left by processes that are gone into the database (events
carry ids and the insert skips ids already present, so replaying twice is harmless) and deletes them. An in-flight
entry no row or void line in those journals supersedes is an attempt the provider had when the process died: it is
written as its row at its estimate, priced then with the catalog `replay` is given (the gateway's), as the attempt's
own row would have been; a model the catalog cannot price is recorded at $0 marked unpriced, as an answered call is
(if the row did reach the database, with its segment deleted since, the id is present and the entry is skipped).
"""

from __future__ import annotations

import fcntl
import json
import logging
import re
from datetime import datetime
from decimal import Decimal
from pathlib import Path
from typing import Any, BinaryIO

import orjson

from tokenomy.errors import described
from tokenomy.ledger.base import INT_COLUMNS
from tokenomy.ledger.events import COLUMNS, UsageEvent
from tokenomy.ledger.journal import IN_FLIGHT, PRICE_AS, PRICE_TIER, VOID
from tokenomy.ledger.rejects import rejects_path, write_setting_aside
from tokenomy.ledger.store import LedgerStore
from tokenomy.pricing.cost import answered_cost
from tokenomy.pricing.entry import priced_tier
from tokenomy.pricing.identifiers import pricing_region

log = logging.getLogger(__name__)
_COSTS = {"input_cost_usd", "output_cost_usd", "cache_read_cost_usd", "cache_write_cost_usd", "cost_usd"}


def event_from_jsonl(line: bytes) -> UsageEvent:
    """The event a JSONL line (`UsageEvent.to_jsonl`) holds; ValueError, TypeError or KeyError if it holds none."""
    return _event(_record(line))


def _record(line: bytes) -> dict:
    record = _decode(line)
    if any(isinstance(record.get(name), float) for name in INT_COLUMNS):
        # orjson reads an integer past 64 bits as a float: 10**30 tokens came back as 1e+30, and -(2**63 + 1) as
        # -2**63, which the ledger took. The stdlib reads it exactly (and the event is set aside, as it should be).
        record = json.loads(line)
    return record


_VOID_ID = re.compile(rb'"in_flight_void"\s*:\s*"([0-9A-Za-z_.:-]{1,64})"')
_EVENT_ID = re.compile(rb'"event_id"\s*:\s*"([0-9A-Za-z_.:-]{1,64})"')
# A whole line's own event id: its last key (a tag named event_id comes earlier), which a torn line lacks.
_OWN_ID = re.compile(rb'"event_id":"([0-9A-Za-z_.:-]{1,64})"}\s*$')


def unreadable_event(line: bytes, exc: BaseException) -> str:
    """What a log says of an event line that cannot be read: its event id (when the line still shows one), its size
    and the error, never its text, which holds the prompt when store_prompts is on."""
    found = _EVENT_ID.search(line)
    name = f"event {found.group(1).decode()}" if found else "a line without a readable event id"
    return f"{name}, {len(line)} bytes: {described(exc)}"


def _decode(line: bytes) -> dict:
    try:
        return orjson.loads(line)
    except ValueError:  # a line the stdlib wrote (an escaped lone surrogate), or a torn one (raises again)
        return json.loads(line)


def _event(record: dict) -> UsageEvent:
    values = {k: v for k, v in record.items() if k in COLUMNS}
    values["ts"] = datetime.fromisoformat(str(values["ts"]).replace("Z", "+00:00"))
    for name in _COSTS & set(values):
        if values[name] is not None:
            values[name] = Decimal(str(values[name]))
    return UsageEvent(**values)


def replay(folder: Path, store: LedgerStore, catalog: Any = None, spenders: set[tuple[str, str]] | None = None) -> int:
    """Write the journals of processes that are gone into `store`, then delete them; the number of events read
    (in-flight entries written as rows among them, priced with `catalog`: a PriceCatalog or what reads as one, the
    gateway's; default the price catalog). `spenders` collects who the events were spent by, as ("key_id", id) and
    ("tenant", team): their budget counters, shared in Redis, did not count what the dead process left unsettled."""
    if not folder.is_dir():
        return 0
    handles: list[tuple[Path, BinaryIO]] = []
    total = 0
    try:
        for path in sorted(folder.glob("journal-*.jsonl")):
            try:
                handle = open(path, "rb")  # noqa: SIM115 - closed below, once every segment is written
            except FileNotFoundError:
                continue
            try:
                fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except BlockingIOError:
                handle.close()
                continue  # a live process's journal
            handles.append((path, handle))
        interrupted = _interrupted(handles, catalog)
        if interrupted:  # first: a replay stopped midway finds them again (their ids then present, skipped)
            write_setting_aside(store, interrupted, rejects_path(store))
            log.warning(
                "%d calls were at their provider when the process that journaled them in %s died: recorded at their "
                "estimate, outcome interrupted",
                len(interrupted),
                folder,
            )
        total = len(interrupted)
        _note_spenders(spenders, interrupted)
        for path, segment in handles:
            segment.seek(0)
            events = []
            for number, line in enumerate(segment, 1):
                if line.startswith((IN_FLIGHT, VOID)):
                    continue
                try:
                    events.append(event_from_jsonl(line))
                except (ValueError, TypeError, KeyError) as exc:  # a torn last line was never acknowledged
                    log.warning(
                        "%s:%d: skipped an unreadable journal line (%s)", path, number, unreadable_event(line, exc)
                    )
            for start in range(0, len(events), 5000):  # an event the store cannot take is set aside, not replayed again
                write_setting_aside(store, events[start : start + 5000], rejects_path(store))
            total += len(events)
            _note_spenders(spenders, events)
            path.unlink(missing_ok=True)
    finally:
        for _, segment in handles:
            segment.close()
    if total:
        log.warning("replayed %d ledger events from the journal in %s", total, folder)
    return total


def _note_spenders(spenders: set[tuple[str, str]] | None, events: list[UsageEvent]) -> None:
    if spenders is not None:
        spenders.update(("key_id", e.key_id) for e in events if e.key_id)
        spenders.update(("tenant", e.tenant) for e in events if e.tenant)


def _interrupted(handles: list[tuple[Path, BinaryIO]], catalog: Any) -> list[UsageEvent]:
    """The rows of the in-flight entries in dead segments that no row or void line there supersedes. Every segment is
    read first: an entry and its row may be in two (an entry is written again in the next segment when one is
    sealed)."""
    superseded: set[bytes] = set()
    entries: dict[bytes, tuple[Path, int, bytes]] = {}
    for path, segment in handles:
        for number, line in enumerate(segment, 1):
            if line.startswith(VOID):
                found = _VOID_ID.search(line)
                if found:
                    superseded.add(found.group(1))
                continue
            found = _OWN_ID.search(line)
            if found is None:
                continue  # a torn line
            if line.startswith(IN_FLIGHT):
                entries[found.group(1)] = (path, number, line)
            else:
                superseded.add(found.group(1))
    rows = []
    for event_id, (path, number, line) in entries.items():
        if event_id in superseded:
            continue
        try:
            record = _record(line)
            event = _event(record)
        except (ValueError, TypeError, KeyError) as exc:  # torn as the process died: its write never finished
            log.warning("%s:%d: skipped an unreadable in-flight entry (%s)", path, number, unreadable_event(line, exc))
            continue
        price_as = record.get(PRICE_AS)
        if isinstance(price_as, str):  # else priced when written (an entry of a version before 2026-12-05's)
            _price(event, price_as, catalog, priced_tier(record.get(PRICE_TIER)))
        rows.append(event)
    return rows


def _price(event: UsageEvent, model: str, catalog: Any, tier: str = "standard") -> None:
    """Price an in-flight entry's row as `model` (its tokens, region and mode) at the service tier it asked for, as
    the attempt's own row would be; a model the catalog cannot price is recorded at $0 marked unpriced, as an
    answered call is (never dropped)."""
    region = pricing_region(event.region)
    tier = tier if event.mode == "on_demand" else "standard"
    cost = answered_cost(event.usage, model, region, event.mode, catalog, "an interrupted call", tier, event.ts)
    event.apply_cost(cost)
    if cost.service_tier != "standard":  # the row says why its price is not the standard one
        event.tags = {**(event.tags or {}), "service_tier": cost.service_tier}
