"""Billed rows that would make a ledger's bill wrong if they were written: checked before an import writes.

A billed row's id comes from its bucket (start, model, region, mode, account), so importing the same days again
adds nothing. Two imports of one bucket can still disagree, and writing either way would be wrong:
- a usage report imported on its own is priced from the catalog; its cost report imported later lands on the same
  ids and was skipped as "already in the ledger", so the bill was never recorded (or, cost first, the tokens);
- usage imported on its own is a row per service tier (see billing), its bill one row whole: the bill took the
  standard row's place only, and the other tiers' tokens counted twice (or, bill first, the tier rows were added
  on top of it). A bucket is one unit: all its rows (the ids of one bucket id) agree with the ledger's, or none is
  written, and `--replace` puts them in the place of all the rows the ledger holds of it;
- the same days at another bucket width (`--bucket-width 1h` after `1d`) have other ids: each hour was added on
  top of its day, counting the day twice.
Such rows are not written; each is a problem that names the bucket and what to do, and the others are imported.
"""

from __future__ import annotations

import bisect
from collections.abc import Sequence
from datetime import datetime, timedelta
from decimal import Decimal
from typing import Any, NamedTuple

from tokenomy.analytics.billed import BILLED
from tokenomy.analytics.imports.billing import bucket_of
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
    # The ids of the rows the ledger holds of this bucket, which its rows in this import take the place of
    replaces: tuple[str, ...] = ()


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
    held: dict[str, list[UsageEvent]] = {}  # by bucket id: a bucket's rows, one per service tier
    for row in rows:
        event = event_from_row(row)
        held.setdefault(bucket_of(event.event_id), []).append(event)
    starts: dict[tuple[Any, ...], list[datetime]] = {}  # a source's buckets of one width, by start
    for row in sorted((row for tiers in held.values() for row in tiers), key=lambda row: row.ts):
        if row.tags.get("granularity") in WIDTHS:
            starts.setdefault(_bucket_kind(row), []).append(row.ts)
    buckets: dict[str, list[UsageEvent]] = {}
    for event in billed:
        buckets.setdefault(bucket_of(event.event_id), []).append(event)
    out = []
    for bucket, new in buckets.items():
        same = held.get(bucket)
        width = new[0].tags.get("granularity")
        if same is not None:  # an id says nothing of the width: a day's first hour has its day's id
            held_width = same[0].tags.get("granularity")
            if held_width in WIDTHS and width in WIDTHS and held_width != width:
                out += [Collision(event, _other_width(same[0].ts, held_width, event), False) for event in new]
            elif _disagree(same, new):
                why, ids = _disagrees(same, new), tuple(row.event_id for row in same)
                out += [Collision(event, why, True, ids) for event in new]
            continue
        if width not in WIDTHS:
            continue
        for event in new:
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


def _disagree(held: list[UsageEvent], new: list[UsageEvent]) -> bool:
    """Other rows (other service tiers), other tokens, or another billed cost. A cost priced from the catalog may
    differ with the catalog's prices since the first import: the same report, not a disagreement."""
    held_rows = {row.event_id: row for row in held}
    new_rows: dict[str, UsageEvent] = {}
    for row in new:  # an id twice in one import keeps its first row, as the ledger's writes do
        new_rows.setdefault(row.event_id, row)
    if held_rows.keys() != new_rows.keys():
        return True
    for row_id, was in held_rows.items():
        now = new_rows[row_id]
        if _tokens(was) != _tokens(now):
            return True
        if "cost_from" not in was.tags and "cost_from" not in now.tags and was.cost_usd != now.cost_usd:
            return True
    return False


def _describe(rows: list[UsageEvent]) -> str:
    tokens = sum(sum(_tokens(row)) for row in rows)
    cost = sum((row.cost_usd for row in rows), Decimal(0))
    froms = sorted({row.tags.get("cost_from", "bill") for row in rows})
    priced = "billed" if froms == ["bill"] else "priced from the " + " and the ".join(froms)
    return f"{tokens:,} tokens, ${money_str(cost)} ({priced})"


def _disagrees(held: list[UsageEvent], new: list[UsageEvent]) -> str:
    return (
        f"the ledger already holds this bucket with other figures ({_describe(held)}; this import: {_describe(new)}): "
        "a usage report and its cost report imported apart, or a bill refreshed since; not imported, and the "
        "ledger's rows are left as they are. A refreshed bill: import it again with --replace, and its figures take "
        "the place of all the bucket's rows. A usage report and its cost report: import both together, in one run "
        "(with --replace when the ledger holds either already)"
    )


def _other_width(held_start: datetime, width: str, new: UsageEvent) -> str:
    return (
        f"the ledger holds {new.tags.get('source')}'s bucket of {held_start:%Y-%m-%dT%H:%MZ} as a {width} bucket and "
        f"this import's are {new.tags.get('granularity')}: both would count the same usage twice; not imported. "
        f"Import these days at --bucket-width {width}"
    )
