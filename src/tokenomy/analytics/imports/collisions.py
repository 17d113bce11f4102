"""Billed rows that would make a ledger's bill wrong if they were written: checked before an import writes.

A billed row's id comes from its bucket (start, model, region, mode, account), so importing the same days again
adds nothing. Two imports of one bucket can still disagree, and writing either way would be wrong:
- a usage report imported on its own is priced from the catalog; its cost report imported later lands on the same
  ids and was skipped as "already in the ledger", so the bill was never recorded (or, cost first, the tokens);
- the same days at another bucket width (`--bucket-width 1h` after `1d`) have other ids: each hour was added on
  top of its day, counting the day twice.
Such rows are not written; each is a problem that names the bucket and what to do, and the others are imported.
"""

from __future__ import annotations

import bisect
from collections.abc import Sequence
from datetime import datetime, timedelta
from typing import Any, NamedTuple

from tokenomy.analytics.billed import BILLED
from tokenomy.ledger.events import COLUMNS, UsageEvent
from tokenomy.ledger.store import event_from_row
from tokenomy.money import money_str

WIDTHS = {"1d": timedelta(days=1), "1h": timedelta(hours=1), "1m": timedelta(minutes=1)}


class Collision(NamedTuple):
    event: UsageEvent
    why: str
    # The ledger holds this very bucket with other figures: a bill refreshed since, which `--replace` takes (another
    # bucket width is never replaced: the file's buckets would not cover the held ones exactly)
    same_bucket: bool


def colliding(store: Any, events: Sequence[UsageEvent]) -> list[Collision]:
    """The billed `events` that disagree with billed rows the ledger holds, each with why (the rest are fine)."""
    billed = [event for event in events if event.priced_by == BILLED]
    if not billed:
        return []
    ph = store.placeholder
    since = min(event.ts for event in billed) - WIDTHS["1d"]
    until = max(event.ts for event in billed) + WIDTHS["1d"]
    rows = store.query(
        f"SELECT {', '.join(COLUMNS)} FROM usage_events WHERE priced_by = {ph} AND ts >= {ph} AND ts < {ph}",
        [BILLED, since, until],
    )
    held = [event_from_row(row) for row in rows]
    by_id = {event.event_id: event for event in held}
    starts: dict[tuple[Any, ...], list[datetime]] = {}  # a source's buckets of one width, by start
    for row in sorted(held, key=lambda row: row.ts):
        if row.tags.get("granularity") in WIDTHS:
            starts.setdefault(_bucket_kind(row), []).append(row.ts)
    out = []
    for event in billed:
        same = by_id.get(event.event_id)
        width = event.tags.get("granularity")
        if same is not None:  # an id says nothing of the width: a day's first hour has its day's id
            held_width = same.tags.get("granularity")
            if held_width in WIDTHS and width in WIDTHS and held_width != width:
                out.append(Collision(event, _other_width(same.ts, held_width, event), False))
            elif _disagree(same, event):
                out.append(Collision(event, _disagrees(same, event), True))
            continue
        if width not in WIDTHS:
            continue
        for other in WIDTHS:
            if other == width:
                continue
            held_starts = starts.get((*_bucket_kind(event)[:-1], other), [])
            # A held bucket overlaps this one when it starts before this one ends and ends after this one starts.
            first = bisect.bisect_right(held_starts, event.ts - WIDTHS[other])
            if first < len(held_starts) and held_starts[first] < event.ts + WIDTHS[width]:
                out.append(Collision(event, _other_width(held_starts[first], other, event), False))
                break
    return out


def _bucket_kind(event: UsageEvent) -> tuple[Any, ...]:
    return event.tags.get("source"), event.tags.get("account"), event.provider, event.tags.get("granularity")


def _tokens(event: UsageEvent) -> tuple[int, ...]:
    return event.input_tokens, event.output_tokens, event.cache_read_tokens, event.cache_write_tokens


def _disagree(held: UsageEvent, new: UsageEvent) -> bool:
    """Other tokens, or another billed cost. A cost priced from the catalog may differ with the catalog's prices
    since the first import: the same report, not a disagreement."""
    if _tokens(held) != _tokens(new):
        return True
    return "cost_from" not in held.tags and "cost_from" not in new.tags and held.cost_usd != new.cost_usd


def _describe(event: UsageEvent) -> str:
    priced = "billed" if event.tags.get("cost_from") is None else f"priced from the {event.tags['cost_from']}"
    return f"{sum(_tokens(event)):,} tokens, ${money_str(event.cost_usd)} ({priced})"


def _disagrees(held: UsageEvent, new: UsageEvent) -> str:
    return (
        f"the ledger already holds this bucket with other figures ({_describe(held)}; this import: {_describe(new)}): "
        "a usage report and its cost report imported apart, or a bill refreshed since; not imported, and the "
        "ledger's row is left as it is. A refreshed bill: import it again with --replace, and its figures take "
        "the row's place. A usage report and its cost report: import both together, in one run (with --replace "
        "when the ledger holds either already)"
    )


def _other_width(held_start: datetime, width: str, new: UsageEvent) -> str:
    return (
        f"the ledger holds {new.tags.get('source')}'s bucket of {held_start:%Y-%m-%dT%H:%MZ} as a {width} bucket and "
        f"this import's are {new.tags.get('granularity')}: both would count the same usage twice; not imported. "
        f"Import these days at --bucket-width {width}"
    )
