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

BILLED = "billed"
BILLED_MARKS = ("billed", "cur")  # 'cur': AWS CUR rows imported before the common marker
_IN = "(" + ", ".join(f"'{m}'" for m in BILLED_MARKS) + ")"


# A metered row names its provider as the client that made the call does (OpenTelemetry's names: the Bedrock
# provider records `aws.bedrock`, Gemini `gcp.gemini` / `gcp.vertex_ai`); a bill names it as its importer does
# (`bedrock`, `gemini`, `vertex`). Billed and metered rows are paired under one name.
PROVIDER_ALIASES = {
    "aws.bedrock": "bedrock",
    "az.ai.openai": "azure",
    "azure.ai.openai": "azure",
    "gcp.vertex_ai": "vertex",
    "gcp.gemini": "gemini",
}


def canonical_provider(name: str | None) -> str | None:
    """The one name billed and metered rows are paired under (`aws.bedrock` -> `bedrock`)."""
    return PROVIDER_ALIASES.get(name, name) if name is not None else None


def provider_sql(column: str = "provider") -> str:
    """SQL for `canonical_provider(column)`."""
    cases = " ".join(f"WHEN '{alias}' THEN '{name}'" for alias, name in PROVIDER_ALIASES.items())
    return f"(CASE {column} {cases} ELSE {column} END)"


def is_billed_sql(alias: str = "") -> str:
    """SQL test that a row is billed data (alias: a table alias with its dot, e.g. 'b.')."""
    return f"{alias}priced_by IN {_IN}"


def is_metered_sql(alias: str = "") -> str:
    return f"({alias}priced_by IS NULL OR {alias}priced_by NOT IN {_IN})"


# A derived table named usage_events, so a query reads it in place of the table with no other change.
SPEND_EVENTS = (
    f"(SELECT * FROM usage_events WHERE {is_metered_sql()} "
    f"UNION ALL SELECT * FROM usage_events b WHERE {is_billed_sql('b.')} AND NOT EXISTS ("
    f"SELECT 1 FROM usage_events m WHERE {is_metered_sql('m.')} "
    f"AND {provider_sql('m.provider')} = {provider_sql('b.provider')} "
    "AND date_trunc('day', m.ts) = date_trunc('day', b.ts))) AS usage_events"
)


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
    """A billed row's cost that no token type carries (tools, storage, fees); 0 for metered rows."""
    if event.priced_by not in BILLED_MARKS:
        return Decimal(0)
    parts = event.input_cost_usd + event.output_cost_usd + event.cache_read_cost_usd + event.cache_write_cost_usd
    return event.cost_usd - parts
