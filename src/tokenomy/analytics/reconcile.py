"""Metered against billed: per day, provider and model, what Tokenomy's calls cost against what the provider's
bill says (imported usage/cost data), the difference in dollars and percent, and why it may differ.

Model ids are matched on a key that ignores vendor prefixes, dates and versions, so Bedrock's
`anthropic.claude-3-haiku-20240307-v1:0` meets the bill's `Claude3Haiku` and `gpt-4o-mini-2024-07-18` meets
itself. A day and provider the bill does not cover yet (no billed row at all) is `no_billing_data`, never
a mismatch; a model billed with no metered call is `unmetered` spend (traffic around Tokenomy).
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from datetime import UTC, datetime
from decimal import Decimal
from typing import Any

from tokenomy.analytics import DEFAULT_TOLERANCE_PCT
from tokenomy.analytics.billed import canonical_provider, is_billed_sql
from tokenomy.errors import UsageError, not_before
from tokenomy.money import typed, usd

BY = ("model", "provider")
KINDS = ("input_tokens", "output_tokens", "cache_read_tokens", "cache_write_tokens")
_PREFIX = re.compile(r"^((us|eu|apac|global|jp|au)\.)?((anthropic|amazon|meta|mistral|cohere|ai21|deepseek|openai)\.)?")
_SUFFIX = re.compile(r"(-v\d+(:\d+)?)?$")
_DATE = re.compile(r"[-@](\d{8}|\d{4}-\d{2}-\d{2}|\d{4}|0\d\d)$")  # 20241022, 2024-07-18, 0718, Vertex 001


def _cost(kind: str) -> str:
    return kind.replace("_tokens", "_cost_usd")


def model_key(model: str) -> str:
    """A model id without vendor/region prefix, version and date, letters and digits only."""
    key = _PREFIX.sub("", model.lower().strip())
    key = _DATE.sub("", _SUFFIX.sub("", key, count=1))
    return re.sub(r"[^a-z0-9]", "", key) or model


@dataclass
class _Side:
    cost: Decimal = Decimal(0)
    rows: int = 0
    tokens: dict[str, int] = field(default_factory=lambda: dict.fromkeys(KINDS, 0))
    costs: dict[str, Decimal] = field(default_factory=lambda: dict.fromkeys(KINDS, Decimal(0)))
    models: set[str] = field(default_factory=set)

    @property
    def other_cost(self) -> Decimal:
        """Cost not split by token type (non-token charges, or rows whose cost has no per-type split)."""
        return self.cost - sum(self.costs.values(), Decimal(0))


def _cause(metered: _Side, billed: _Side, status: str) -> str:
    """A plain reading of where the difference comes from."""
    if status == "unmetered":
        return "billed with no metered call: traffic that did not pass through Tokenomy"
    if status == "unbilled":
        return "metered, but the bill has no line for this model on this day"
    if status == "ok":
        return ""
    causes = []
    read_m, read_b = metered.tokens["cache_read_tokens"], billed.tokens["cache_read_tokens"]
    if read_m > read_b or (read_b and billed.costs["cache_read_tokens"] > metered.costs["cache_read_tokens"]):
        causes.append("cache discount missing on the bill")
    for kind in KINDS:
        name = kind.replace("_tokens", "").replace("_", " ")
        m, b = metered.tokens[kind], billed.tokens[kind]
        if m != b:
            causes.append(f"{name} tokens billed {b} vs metered {m}")
        elif metered.costs[kind] != billed.costs[kind] and billed.cost != billed.other_cost:
            causes.append(
                f"{name} billed {usd(billed.costs[kind], 'record')} vs metered {usd(metered.costs[kind], 'record')}"
            )
    if billed.other_cost:
        causes.append(f"{usd(billed.other_cost, 'record')} billed beyond tokens (tools, storage, fees)")
    if not causes:
        causes.append("same tokens at a different price (a price change, or the catalog is out of date)")
    return "; ".join(causes)


def reconcile(
    store: Any,
    by: str = "model",
    since: datetime | None = None,
    until: datetime | None = None,
    tolerance_pct: Decimal | float | str = DEFAULT_TOLERANCE_PCT,
) -> list[dict[str, Any]]:
    """One row per day, provider and (with by=model) model, oldest first."""
    if by not in BY:
        raise UsageError(f"--by {by!r}: reconcile groups by {' or '.join(BY)}")
    tolerance = Decimal(str(tolerance_pct))
    if not tolerance.is_finite() or tolerance < 0:  # NaN was a decimal.InvalidOperation traceback
        raise UsageError(
            f"--tolerance-pct {typed(tolerance_pct)}: must be a number 0 or more (percent of the metered cost), e.g. 5"
        )
    since, until = (t.replace(tzinfo=UTC) if t and t.tzinfo is None else t for t in (since, until))
    if since and until and since >= until:
        # With their times: "--since 2025-11-24 is not before --until 2025-11-24" read as a contradiction.
        raise not_before(since, until)
    ph = store.placeholder
    clauses = [c for c, v in ((f"ts >= {ph}", since), (f"ts < {ph}", until)) if v is not None]
    where = f" WHERE {' AND '.join(clauses)}" if clauses else ""
    rows = store.query(
        f"SELECT CAST(date_trunc('day', ts) AS DATE) AS day, provider, model, "
        f"CASE WHEN {is_billed_sql()} THEN 1 ELSE 0 END AS billed, COUNT(*) AS n, SUM(cost_usd) AS cost, "
        + ", ".join(f"SUM({k}) AS {k}, SUM({_cost(k)}) AS {_cost(k)}" for k in KINDS)
        + f" FROM usage_events{where} GROUP BY 1, 2, 3, 4",
        [v for v in (since, until) if v is not None],
    )
    groups: dict[tuple, tuple[_Side, _Side]] = {}
    billed_days: set[tuple] = set()
    for row in rows:
        day = row["day"].isoformat() if hasattr(row["day"], "isoformat") else str(row["day"])[:10]
        provider = canonical_provider(row["provider"])  # `aws.bedrock` calls pair with `bedrock` bills
        key = (day, provider, model_key(row["model"]) if by == "model" else "")
        side = groups.setdefault(key, (_Side(), _Side()))[int(row["billed"])]
        side.cost += Decimal(row["cost"] or 0)
        side.rows += int(row["n"])
        side.models.add(row["model"])
        for kind in KINDS:
            side.tokens[kind] += int(row[kind] or 0)
            side.costs[kind] += Decimal(row[_cost(kind)] or 0)
        if row["billed"]:
            billed_days.add((day, provider))
    out = []
    for (day, provider, _), (metered, billed) in sorted(groups.items()):
        diff = billed.cost - metered.cost
        pct = (diff / metered.cost * 100) if metered.cost else None
        if (day, provider) not in billed_days:
            status = "no_billing_data"
        elif not metered.rows:
            status = "unmetered"
        elif not billed.rows:
            status = "unbilled"
        elif pct is None or abs(pct) > tolerance:
            status = "mismatch" if diff else "ok"
        else:
            status = "ok"
        out.append(
            {
                "day": day,
                "provider": provider,
                **({"model": sorted(metered.models or billed.models)[0]} if by == "model" else {}),
                "metered_usd": metered.cost,
                "billed_usd": billed.cost if billed.rows else None,
                "difference_usd": diff if billed.rows else None,
                "difference_pct": None if pct is None or not billed.rows else round(pct, 2),
                "unmetered_usd": billed.cost if status == "unmetered" else Decimal(0),
                "metered_calls": metered.rows,
                "status": status,
                "flagged": status in ("mismatch", "unmetered", "unbilled") and (diff != 0),
                "cause": (
                    f"no bill imported for {provider} on {day} yet: nothing to compare (tokenomy import --help)"
                    if status == "no_billing_data"
                    else _cause(metered, billed, status)
                ),
                "billed_models": sorted(billed.models),
            }
        )
    return out
