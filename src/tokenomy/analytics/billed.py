"""Billed data next to metered data, counted once.

Metered rows are the calls Tokenomy made or saw (gateway, client, OTLP spans, the llm log). Billed rows come
from a provider's or cloud's own bill (usage/cost APIs, CUR, FOCUS, Google Cloud billing exports): they are
marked `priced_by = 'billed'` (AWS CUR imports before this marker used 'cur') and carry tags `source`,
`account` and `granularity`.

A billed row and the metered calls of the same provider and day describe the same spend, so spend reports
read SPEND_EVENTS: every metered row, and a billed row only for a provider and day with no metered call.
Spend that the bill shows beyond what Tokenomy metered on a metered day is what `report reconcile` is for.
"""

from __future__ import annotations

from datetime import datetime
from decimal import Decimal
from typing import Any

from tokenomy.ledger.events import UsageEvent
from tokenomy.ledger.spend import (  # the rule itself lives in the ledger layer (rollups apply it too)
    BILLED_MARKS,
    PROVIDER_ALIASES,
    SPEND_EVENTS,
    canonical_provider,
    is_billed_sql,
    is_metered_sql,
    provider_sql,
)

BILLED = "billed"


def billed_tags(
    source: str, account: str | None = None, granularity: str | None = None, **extra: str
) -> dict[str, str]:
    """The tags that say where a billed row came from: importer, billing account/project, bucket width."""
    tags = {"source": source}
    if account:
        tags["account"] = str(account)
    if granularity:
        tags["granularity"] = granularity
    tags.update({k: str(v) for k, v in extra.items() if v not in (None, "")})
    return tags


def spend_events(store: Any, since: datetime | None = None, until: datetime | None = None) -> list[UsageEvent]:
    """The ledger's events as spend counts them: metered rows, and billed rows of provider-days nothing metered."""
    from tokenomy.ledger.events import COLUMNS
    from tokenomy.ledger.store import event_from_row

    bounds = [(f"ts >= {store.placeholder}", since), (f"ts < {store.placeholder}", until)]
    where = " AND ".join(clause for clause, value in bounds if value is not None)
    rows = store.query(
        f"SELECT {', '.join(COLUMNS)} FROM {SPEND_EVENTS}{' WHERE ' + where if where else ''} ORDER BY ts, event_id",
        [value for _, value in bounds if value is not None],
    )
    return [event_from_row(r) for r in rows]


def unsplit_cost(event: UsageEvent) -> Decimal:
    """A row's cost that no token type carries: a bill's tools, storage and fees, a metered context cache's
    storage (mode cache_storage), or the whole cost of an imported row that gave only a total `cost_usd`; 0 for
    a call priced from the catalog (its parts add up to its total)."""
    parts = event.input_cost_usd + event.output_cost_usd + event.cache_read_cost_usd + event.cache_write_cost_usd
    return event.cost_usd - parts


__all__ = [
    "BILLED",
    "BILLED_MARKS",
    "PROVIDER_ALIASES",
    "SPEND_EVENTS",
    "billed_tags",
    "canonical_provider",
    "is_billed_sql",
    "is_metered_sql",
    "provider_sql",
    "spend_events",
    "unsplit_cost",
]
