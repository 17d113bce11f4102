"""How old a price is: `tokenomy prices --stale` lists entries past 90 days; pricing a call from data
past 180 days logs one warning per source (not one per call)."""

from __future__ import annotations

import logging
from datetime import UTC, date, datetime

from tokenomy.pricing.entry import PriceEntry

STALE_DAYS = 90
WARN_DAYS = 180
log = logging.getLogger("tokenomy.pricing")
_warned: set[tuple[str, str]] = set()


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
        return "run `tokenomy prices update` (or pass --prices FILE with current prices)"
    return "pass --prices FILE with current prices (`tokenomy prices update` refreshes genai-prices' data only)"


def warn_if_old(entry: PriceEntry, today: date | None = None) -> bool:
    """Log once per (source, as_of) when a call is priced from data older than WARN_DAYS; True if it is."""
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
