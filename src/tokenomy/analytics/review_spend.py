"""Review, part 1: spend this period against the previous one, the month-end forecast, the largest movers.

A mover's change in cost is split into three additive effects. With n calls, t = tokens per call and
p = cost per token (so cost C = n·t·p), the change C1 − C0 is divided by the Shapley decomposition of a
three-factor product, which is exact (the three effects always add up to the change) and symmetric
(no factor is privileged by being "first"):

    volume          = Δn · [ (t0·p0 + t1·p1) / 3 + (t0·p1 + t1·p0) / 6 ]
    tokens_per_call = Δt · [ (n0·p0 + n1·p1) / 3 + (n0·p1 + n1·p0) / 6 ]
    price           = Δp · [ (n0·t0 + n1·t1) / 3 + (n0·t1 + n1·t0) / 6 ]

`tokens_per_call` is prompt growth and verbosity; `price` is cost per token (a model or price change,
or a cache hit rate change). A group absent in one period has no t or p there: its whole change is volume.
"""

from __future__ import annotations

from datetime import datetime, timedelta
from decimal import Decimal
from typing import Any

from tokenomy.analytics.reports import run_report
from tokenomy.errors import UsageError

HOURS_PER_MONTH = Decimal(730)
SPEND_GROUPS = ("provider", "family", "task")
MOVER_GROUPS = ("model", "task")


def month_factor(days: int) -> Decimal:
    """Multiply a `days`-long period's dollars by this for dollars per (730-hour) month."""
    return HOURS_PER_MONTH / (Decimal(days) * 24)


def decompose(n0: int, t0: Decimal, c0: Decimal, n1: int, t1: Decimal, c1: Decimal) -> dict[str, Decimal]:
    """Split C1 − C0 into volume, tokens per call and price (see the module docstring); `t` are total tokens."""
    change = c1 - c0
    if not (n0 and n1 and t0 and t1):
        return {"volume_usd": change, "tokens_per_call_usd": Decimal(0), "price_usd": Decimal(0)}
    a0, a1 = Decimal(n0), Decimal(n1)
    b0, b1 = t0 / a0, t1 / a1
    p0, p1 = c0 / t0, c1 / t1

    def effect(delta: Decimal, x0: Decimal, x1: Decimal, y0: Decimal, y1: Decimal) -> Decimal:
        return delta * ((x0 * y0 + x1 * y1) / 3 + (x0 * y1 + x1 * y0) / 6)

    volume = effect(a1 - a0, b0, b1, p0, p1)
    tokens = effect(b1 - b0, a0, a1, p0, p1)
    return {"volume_usd": volume, "tokens_per_call_usd": tokens, "price_usd": change - volume - tokens}


def _by(store: Any, by: str, since: datetime, until: datetime) -> dict[str, dict[str, Any]]:
    """Spend, calls and tokens per group (the `spend` and `tokens` presets) in [since, until)."""
    out: dict[str, dict[str, Any]] = {}
    for row in run_report(store, "spend", by=by, since=since, until=until):
        out[str(row[by] if row[by] is not None else "(none)")] = {
            "cost_usd": Decimal(row["cost_usd"] or 0),
            "calls": int(row["calls"]),
            "tokens": Decimal(0),
        }
    for row in run_report(store, "tokens", by=by, since=since, until=until):
        key = str(row[by] if row[by] is not None else "(none)")
        if key in out:
            out[key]["tokens"] = Decimal(int(row["total_tokens"] or 0))
    return out


def spend_section(
    store: Any, start: datetime, end: datetime, days: int, now: datetime, movers: int = 5
) -> dict[str, Any]:
    """Totals, per-group comparison, forecast and the largest movers with their three effects."""
    previous_start = start - timedelta(days=days)
    section: dict[str, Any] = {"groups": {}, "movers": {}}
    totals = {"current_usd": Decimal(0), "previous_usd": Decimal(0)}
    for by in sorted(set(SPEND_GROUPS) | set(MOVER_GROUPS)):
        current, previous = _by(store, by, start, end), _by(store, by, previous_start, start)
        rows = []
        for key in sorted(set(current) | set(previous)):
            now_row = current.get(key, {"cost_usd": Decimal(0), "calls": 0, "tokens": Decimal(0)})
            old_row = previous.get(key, {"cost_usd": Decimal(0), "calls": 0, "tokens": Decimal(0)})
            row = {
                by: key,
                "previous_usd": old_row["cost_usd"],
                "current_usd": now_row["cost_usd"],
                "change_usd": now_row["cost_usd"] - old_row["cost_usd"],
                "previous_calls": old_row["calls"],
                "current_calls": now_row["calls"],
            }
            if by in MOVER_GROUPS:
                row.update(
                    decompose(
                        old_row["calls"],
                        old_row["tokens"],
                        old_row["cost_usd"],
                        now_row["calls"],
                        now_row["tokens"],
                        now_row["cost_usd"],
                    )
                )
            rows.append(row)
        rows.sort(key=lambda r: (-abs(r["change_usd"]), r[by]))
        if by in SPEND_GROUPS:
            section["groups"][by] = rows
        if by in MOVER_GROUPS:
            section["movers"][by] = [r for r in rows if r["change_usd"]][:movers]
        if by == "provider":
            totals = {
                "current_usd": sum((r["current_usd"] for r in rows), Decimal(0)),
                "previous_usd": sum((r["previous_usd"] for r in rows), Decimal(0)),
            }
    section.update(totals, change_usd=totals["current_usd"] - totals["previous_usd"])
    section["decomposition"] = (
        "change = volume (calls) + tokens_per_call (prompt growth, verbosity) + price (cost "
        "per token); Shapley split of cost = calls x tokens/call x cost/token"
    )
    section["forecast"] = _forecast(store, now)
    return section


def _forecast(store: Any, now: datetime) -> dict[str, Any]:
    from tokenomy.analytics.forecast import month_end_forecast

    try:
        return month_end_forecast(store, now=now).to_json()
    except UsageError as exc:  # too little history: say why instead of a number
        return {"unavailable": str(exc)}
