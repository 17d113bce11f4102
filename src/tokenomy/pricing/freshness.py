"""How old a price is: `tokenomy prices --stale` lists entries past 90 days; pricing a call from data
past 180 days logs one warning per source (not one per call)."""

from __future__ import annotations

import logging
import time
from datetime import UTC, date, datetime, timedelta

from tokenomy.errors import price_file
from tokenomy.pricing.entry import PriceEntry

STALE_DAYS = 90
WARN_DAYS = 180
log = logging.getLogger("tokenomy.pricing")
_warned: set[tuple[str, str]] = set()
_clock = time.time  # the seconds warn_if_old compares with a price's turning point
# as_of -> the UTC midnight (seconds) from which a price of that date is past WARN_DAYS, or None if it has no date.
# Decided once per as_of: the gateway prices every answer, and datetime.now plus parsing the date cost each call.
_old_from: dict[str, float | None] = {}


def age_days(as_of: str, today: date | None = None) -> int | None:
    """Days since `as_of` (an ISO date, possibly followed by text), or None if it carries no date."""
    try:
        day = date.fromisoformat(as_of.strip()[:10])
    except ValueError:
        return None
    return ((today or datetime.now(UTC).date()) - day).days


def stale_entries(entries: list[PriceEntry], days: int = STALE_DAYS, today: date | None = None) -> list[PriceEntry]:
    """Entries whose data is older than `days` (or carries no date at all: it cannot be trusted as current)."""
    out = []
    for entry in entries:
        age = age_days(entry.as_of, today)
        if age is None or age > days:
            out.append(entry)
    return out


def refresh_hint(entry: PriceEntry) -> str:
    """How to get a current price for `entry`: `prices update` refreshes genai-prices' data only; a curated,
    user or LiteLLM entry is layered above that data, so it wins whatever the update brings."""
    if entry.priced_by == "genai-prices":
        return f"run `tokenomy prices update`, or give current prices in {price_file()}"
    return f"give current prices in {price_file()}; `tokenomy prices update` refreshes genai-prices' data only"


def _turns_old(as_of: str) -> float | None:
    """The first moment (UTC, in seconds) a price dated `as_of` is more than WARN_DAYS old, as age_days counts."""
    try:
        day = date.fromisoformat(as_of.strip()[:10])
    except ValueError:
        return None
    midnight = datetime.combine(day + timedelta(days=WARN_DAYS + 1), datetime.min.time(), UTC)
    return midnight.timestamp()


def warn_if_old(entry: PriceEntry, today: date | None = None) -> bool:
    """Log once per (source, as_of) when a call is priced from data older than WARN_DAYS; True if it is."""
    if today is None:
        as_of = entry.as_of
        try:
            old_from = _old_from[as_of]
        except KeyError:
            old_from = _old_from[as_of] = _turns_old(as_of)
        now = _clock()
        if old_from is None or now < old_from:
            return False
        if (entry.source, as_of) in _warned:
            return True  # old since old_from, and said so once already
        today = datetime.fromtimestamp(now, UTC).date()
    age = age_days(entry.as_of, today)
    if age is None or age <= WARN_DAYS:
        return False
    key = (entry.source, entry.as_of)
    if key not in _warned:
        _warned.add(key)
        log.warning(
            "pricing %s from data %d days old (as of %s, %s); %s",
            entry.model,
            age,
            entry.as_of,
            entry.source,
            refresh_hint(entry),
        )
    return True
