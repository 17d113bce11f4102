"""From the ledger: cascade escalation rate per route, and each tier's traffic share against expectation."""

from __future__ import annotations

import json
from datetime import datetime

from tokenomy.routing.dispatch import ESCALATED_TAG


def _rows(store, since: datetime | None) -> list[dict]:
    sql = "SELECT route, tier, tags FROM usage_events WHERE route IS NOT NULL AND outcome = 'ok'"
    params: list = []
    if since is not None:
        sql += f" AND ts >= {store.placeholder}"
        params.append(since)
    return store.query(sql, params)


def _tags(value) -> dict:
    return json.loads(value) if isinstance(value, str) and value else (value or {})


def escalation_rates(store, since: datetime | None = None, threshold: float = 0.25) -> list[dict]:
    """Per route: routed calls, escalations, rate, flagged when the rate exceeds `threshold` (default 25%)."""
    counts: dict[str, list[int]] = {}
    for row in _rows(store, since):
        entry = counts.setdefault(row["route"], [0, 0])
        if _tags(row["tags"]).get(ESCALATED_TAG):
            entry[1] += 1
        else:
            entry[0] += 1
    return [{"route": route, "calls": calls, "escalations": esc, "rate": esc / calls if calls else 0.0,
             "flagged": bool(calls) and esc / calls > threshold}
            for route, (calls, esc) in sorted(counts.items())]


def tier_share(store, since: datetime | None = None, expected: dict[str, float] | None = None,
               tolerance: float = 0.1) -> list[dict]:
    """Per route and tier: share of calls vs the expected share; flagged when off by more than `tolerance`."""
    expected = expected or {}
    counts: dict[str, dict[str, int]] = {}
    for row in _rows(store, since):
        counts.setdefault(row["route"], {}).setdefault(row["tier"] or "-", 0)
        counts[row["route"]][row["tier"] or "-"] += 1
    out = []
    for route, tiers in sorted(counts.items()):
        total = sum(tiers.values())
        for tier in sorted(set(tiers) | set(expected)):
            share = tiers.get(tier, 0) / total
            want = expected.get(tier)
            delta = None if want is None else share - want
            out.append({"route": route, "tier": tier, "share": share, "expected": want, "delta": delta,
                        "flagged": delta is not None and abs(delta) > tolerance})
    return out
