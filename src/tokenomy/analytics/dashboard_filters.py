"""What the dashboard narrows the ledger to, as SQL: shared by every dashboard and console section.

A `Filters` value comes from the page's query string (date range, provider, model, task, tag) plus the
gateway's scope (the caller's team or key); `where` turns it into one WHERE clause for DuckDB or PostgreSQL.
`period` fixes the "this period" a headline compares with the one before it.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, replace
from datetime import UTC, date, datetime, time, timedelta
from typing import Any

from tokenomy.errors import UsageError
from tokenomy.ledger.rollups import tag_match
from tokenomy.ledger.spend import canonical_provider, provider_sql
from tokenomy.money import money_str


@dataclass(frozen=True)
class Filters:
    """What the dashboard narrows the ledger to; None means no restriction. `until` is exclusive."""

    since: datetime | None = None
    until: datetime | None = None
    provider: str | None = None
    model: str | None = None
    task: str | None = None
    tag: str | None = None  # "key=value"
    # Set by the gateway from the caller's virtual key when auth is on, never from the query string.
    tenant: str | None = None
    key_id: str | None = None

    def describe(self) -> dict[str, Any]:
        return {k: stamp(v) if isinstance(v, datetime) else v for k, v in asdict(self).items()}


def stamp(t: datetime | None) -> str | None:
    return t.astimezone(UTC).isoformat().replace("+00:00", "Z") if t else None


# The dates a range may take: the previous period (as long again, just before) and the budget periods must stay
# within what a datetime holds; year 1 or 9999 used to fail those sums with a 500.
EARLIEST = datetime(1900, 1, 1, tzinfo=UTC)
LATEST = datetime(3000, 1, 1, tzinfo=UTC)


def check_when(value: datetime | None, name: str) -> datetime | None:
    """`value` if it lies within EARLIEST..LATEST (None passes); else a UsageError naming `name`."""
    if value is not None and not EARLIEST <= value <= LATEST:
        raise UsageError(
            f"{name}={value.isoformat()} is out of range; use a time from {EARLIEST.date()} to {LATEST.date()}"
        )
    return value


def parse_when(value: str | None, name: str) -> datetime | None:
    """A date (midnight UTC) or an ISO timestamp (naive means UTC); empty means no bound."""
    if not value:
        return None
    try:
        if len(value) == 10:
            parsed = datetime.combine(date.fromisoformat(value), time(), tzinfo=UTC)
        else:
            parsed = datetime.fromisoformat(value.replace("Z", "+00:00"))
            parsed = parsed.replace(tzinfo=UTC) if parsed.tzinfo is None else parsed.astimezone(UTC)
    except (ValueError, OverflowError):  # OverflowError: year 1 at +14:00 is before the first datetime in UTC
        raise UsageError(
            f"{name}={value!r} is not a date; use YYYY-MM-DD or an ISO timestamp such as 2026-11-01T00:00:00Z"
        ) from None
    return check_when(parsed, name)


def make_filters(
    since: str | None = None,
    until: str | None = None,
    provider: str | None = None,
    model: str | None = None,
    task: str | None = None,
    tag: str | None = None,
) -> Filters:
    """Filters from query-string values (empty strings mean 'all')."""
    if tag and "=" not in tag:
        raise UsageError(f"tag={tag!r} must be key=value, e.g. tag=team=search")
    start, end = parse_when(since, "since"), parse_when(until, "until")
    if start and end and start >= end:
        raise UsageError(f"since={since} is not before until={until} (until is exclusive); swap them")
    return Filters(start, end, provider or None, model or None, task or None, tag or None)


def where(store: Any, f: Filters) -> tuple[str, list[Any]]:
    """` WHERE ...` (or "") selecting the filtered calls, and its parameters."""
    mark = store.placeholder
    if store.dialect == "postgres":  # its text holds no NUL: the query failed as "database unavailable" (503)
        for name in ("provider", "model", "task", "tag"):
            value = getattr(f, name) or ""
            if "\x00" in value:
                raise UsageError(f"{name}={value!r} holds a NUL character, which no value in this ledger can")
    clauses, params = [], []
    for column, op, value in (
        ("ts", ">=", f.since),
        ("ts", "<", f.until),
        # the provider as spend groups it: `bedrock` selects its metered `aws.bedrock` calls and its bill alike
        (provider_sql(), "=", canonical_provider(f.provider)),
        ("model", "=", f.model),
        ("task", "=", f.task),
        ("tenant", "=", f.tenant),
        ("key_id", "=", f.key_id),
    ):
        if value is not None:
            clauses.append(f"{column} {op} {mark}")
            params.append(value)
    if f.tag:
        sql, values = tag_match(store.dialect, mark, f.tag)
        clauses.append(sql)
        params += values
    return (" WHERE " + " AND ".join(clauses)) if clauses else "", params


def check_known(store: Any, f: Filters) -> None:
    """A UsageError naming a provider, model, task or tag the ledger (within the caller's scope) holds no row of, at
    any date: a misspelt `model=gpt4o-mini` answered $0 everywhere, as if nothing had been spent on it. A value
    the ledger holds, at other dates or beside other filters, still narrows to an empty answer."""
    scope = Filters(tenant=f.tenant, key_id=f.key_id)
    for name, column in (("provider", provider_sql()), ("model", "model"), ("task", "task"), ("tag", None)):
        value = getattr(f, name)
        if value is None:
            continue
        sql, params = where(store, replace(scope, **{name: value}))
        if store.query(f"SELECT 1 AS found FROM usage_events{sql} LIMIT 1", params):
            continue
        held = ""
        if column is not None:
            sql, params = where(store, scope)
            sql += (" AND " if sql else " WHERE ") + f"{column} IS NOT NULL"
            rows = store.query(f"SELECT DISTINCT {column} AS v FROM usage_events{sql} ORDER BY 1 LIMIT 6", params)
            values = [str(r["v"]) for r in rows]
            shown = ", ".join(values[:5]) + (", ..." if len(values) > 5 else "")
            held = f" (it holds {shown})" if values else " (it holds no calls yet)"
        raise UsageError(
            f"{name}={value!r} matches nothing in this ledger{held}; pick a value the filter menus offer "
            "(/dashboard/api/filters lists them) or leave it out"
        )


def and_where(store: Any, f: Filters) -> tuple[str, tuple]:
    """The filters other than the date range as ` AND ...` (what forecast.month_end_forecast takes)."""
    sql, params = where(store, replace(f, since=None, until=None))
    return sql.replace(" WHERE ", " AND ", 1), tuple(params)


def money(value: Any) -> str:
    return money_str(value or 0, "record")  # exact: charts and tables sum to the ledger


def period(store: Any, f: Filters) -> tuple[datetime, datetime] | None:
    """This period: the filter's range, an open end closed at the first/last day with calls (None: no calls)."""
    if f.since and f.until:
        return f.since, f.until
    sql, params = where(store, f)
    row = store.query(f"SELECT MIN(ts) AS first_ts, MAX(ts) AS last_ts FROM usage_events{sql}", params)[0]
    if row["first_ts"] is None:
        return None

    def day(t: datetime) -> datetime:
        return t.astimezone(UTC).replace(hour=0, minute=0, second=0, microsecond=0)

    return f.since or day(row["first_ts"]), f.until or day(row["last_ts"]) + timedelta(days=1)


def previous(f: Filters, bounds: tuple[datetime, datetime]) -> Filters:
    """The same filters over the period of equal length just before `bounds`."""
    start, end = bounds
    return replace(f, since=start - (end - start), until=start)
