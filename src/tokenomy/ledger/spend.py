"""Which ledger rows spend counts: every metered row, and a billed row only where nothing was metered.

Metered rows are the calls Tokenomy made or saw; billed rows come from a provider's or cloud's own bill
(`priced_by` 'billed', or 'cur' for AWS CUR rows imported before that marker). A billed row and the metered
calls of the same provider and UTC day describe the same spend, so a billed row counts only for a provider-day
with no metered call; what the bill shows beyond the metered calls on a metered day is `report reconcile`'s.

Kept in the ledger layer because the hourly rollups apply the same rule. The SQL has no correlated subquery
(a tuple NOT IN), so it runs on DuckDB, PostgreSQL and ClickHouse alike.
"""

from __future__ import annotations

from tokenomy.ledger.events import STORAGE_MODE

BILLED_MARKS = ("billed", "cur")
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
    "gcp.gen_ai": "gemini",  # OpenTelemetry's name when the Google endpoint is not known
    "google": "gemini",  # the config's alias for the Gemini API (providers.registry), as genai-prices names it
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


def is_call_sql(alias: str = "") -> str:
    """SQL test that a row is a call: metered, and not an explicit context cache's storage (mode `cache_storage`,
    which is cost over time, not a request)."""
    return f"({is_metered_sql(alias)} AND ({alias}mode IS NULL OR {alias}mode <> '{STORAGE_MODE}'))"


def is_answered_sql(alias: str = "") -> str:
    """SQL test that a row is an answered call (outcome ok): what latency is measured over. A throttled attempt (a
    429 back in ~120 ms) or a failed one is no answer, and counted in would make latency read far faster."""
    return f"({is_call_sql(alias)} AND {alias}outcome = 'ok')"


# Calls in a group of events: metered rows that are calls (an imported bill's row is a provider-day's usage, a
# cache's storage row is what keeping it cost: neither is a call, though both count in spend).
METERED_CALLS = f"COALESCE(SUM(CASE WHEN {is_call_sql()} THEN 1 ELSE 0 END), 0)"


def counted_sql(ts_column: str = "ts", days_from: str = "usage_events", days_ts: str = "ts") -> str:
    """SQL condition on a row (its time in `ts_column`) that spend counts it: metered, or billed on a provider-day
    with no metered row in `days_from` (the events, or the hourly rollup whose time column is `days_ts`)."""
    metered_days = (
        f"SELECT DISTINCT {provider_sql()}, date_trunc('day', {days_ts}) FROM {days_from} WHERE {is_metered_sql()}"
    )
    return f"({is_metered_sql()} OR ({provider_sql()}, date_trunc('day', {ts_column})) NOT IN ({metered_days}))"


# A derived table named usage_events, so a query reads it in place of the table with no other change.
SPEND_EVENTS = f"(SELECT * FROM usage_events WHERE {counted_sql()}) AS usage_events"
