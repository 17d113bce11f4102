"""From the ledger: cascade escalation rate per route, and each tier's traffic share against expectation.

Thresholds come from the routing config: `routing.policies.<name>.escalation_threshold` (default 25%)
and `expected_share` ({tier: share}) of the policy each route uses.
"""

from __future__ import annotations

import json
from datetime import datetime
from typing import Any

from tokenomy.routing.router import ESCALATED_TAG, REASON_TAG, REJECTED_TAG

DEFAULT_ESCALATION_THRESHOLD = 0.25


def _rows(store, since: datetime | None, until: datetime | None = None) -> list[dict]:
    sql = "SELECT route, tier, tags FROM usage_events WHERE route IS NOT NULL AND outcome = 'ok'"
    params: list = []
    if since is not None:
        sql += f" AND ts >= {store.placeholder}"
        params.append(since)
    if until is not None:  # a review of a past period must not count the calls after it
        sql += f" AND ts < {store.placeholder}"
        params.append(until)
    return store.query(sql, params)


def _tags(value) -> dict:
    return json.loads(value) if isinstance(value, str) and value else (value or {})


def _route_policies(cfg) -> dict[str, Any]:
    return {name: cfg.routing_policy(route.policy) for name, route in cfg.routes.items() if route.policy}


def escalation_thresholds(cfg) -> dict[str, float]:
    """{route: escalation threshold} for every route that has a routing policy."""
    return {name: policy.escalation_threshold for name, policy in _route_policies(cfg).items()}


def expected_shares(cfg) -> dict[str, dict[str, float]]:
    """{route: {tier: expected share}} for routes whose policy sets `expected_share`."""
    return {name: policy.expected_share for name, policy in _route_policies(cfg).items() if policy.expected_share}


def expected_tier_shares(cfg: Any, settings: Any = None) -> dict:
    """The expected tier shares route drift, alerts, review and `report tier-share` all compare against: the
    routes' policies' `expected_share` ({route: {tier: share}}), else the config's `expected_tier_share`
    (`alerts:` or top-level `routing:`, {tier: share} for every route). `settings`: AlertSettings already read."""
    if settings is None and cfg is not None:
        settings = cfg.alert_settings()
    return (expected_shares(cfg) if cfg is not None else {}) or (settings.expected_tier_share if settings else {})


def escalation_rates(
    store,
    thresholds: float | dict[str, float] | Any | None = None,
    since: datetime | None = None,
    default: float = DEFAULT_ESCALATION_THRESHOLD,
    until: datetime | None = None,
) -> list[dict]:
    """Per route: requests, escalated requests, rate, its threshold, flagged when the rate exceeds it.

    `thresholds`: one rate for every route, {route: rate} (others get `default`, 25%), or a TokenomyConfig, whose
    routing policies give each route's `escalation_threshold` and restrict the answer to routed routes.
    A request is an answered attempt not tagged as escalated; an escalated request has an attempt tagged "1" (its
    first escalation). A tier passed up to by refusals (tag `passed_up`) answers a request, not an escalation.
    `rejections`: why the route's answers were rejected, [{check, reason, answers}], the commonest first.
    """
    only = None
    if thresholds is not None and hasattr(thresholds, "routes"):
        thresholds = only = escalation_thresholds(thresholds)
    counts: dict[str, list[int]] = {}
    reasons: dict[str, dict[tuple[str, str], int]] = {}
    for row in _rows(store, since, until):
        if only is not None and row["route"] not in only:
            continue
        tags = _tags(row["tags"])
        attempt = tags.get(ESCALATED_TAG)
        entry = counts.setdefault(row["route"], [0, 0])
        if not attempt:
            entry[0] += 1
        elif str(attempt) == "1":
            entry[1] += 1
        if tags.get(REJECTED_TAG):
            why = (str(tags[REJECTED_TAG]), str(tags.get(REASON_TAG) or tags[REJECTED_TAG]))
            found = reasons.setdefault(row["route"], {})
            found[why] = found.get(why, 0) + 1
    out = []
    for route, (calls, escalated) in sorted(counts.items()):
        commonest = sorted(reasons.get(route, {}).items(), key=lambda item: (-item[1], item[0]))
        if isinstance(thresholds, dict):
            limit = thresholds.get(route, default)
        else:
            limit = default if thresholds is None else float(thresholds)
        rate = escalated / calls if calls else 0.0
        out.append(
            {
                "route": route,
                "calls": calls,
                "escalations": escalated,
                "rate": rate,
                "threshold": limit,
                "flagged": bool(calls) and rate > limit,
                "rejections": [{"check": check, "reason": reason, "answers": n} for (check, reason), n in commonest],
            }
        )
    return out


def routes_over_threshold(
    store,
    thresholds: float | dict[str, float] | Any | None = None,
    since: datetime | None = None,
    default: float = DEFAULT_ESCALATION_THRESHOLD,
) -> list[dict]:
    """Only the routes whose escalation rate is above their threshold (for alerts)."""
    return [row for row in escalation_rates(store, thresholds, since, default) if row["flagged"]]


def tier_share(
    store,
    since: datetime | None = None,
    expected: dict | None = None,
    tolerance: float = 0.1,
    until: datetime | None = None,
) -> list[dict]:
    """Per route and tier: share of calls vs the expected share; flagged when off by more than `tolerance`.

    `expected`: {tier: share} for every route, or {route: {tier: share}} (see `expected_shares(cfg)`).
    """
    expected = expected or {}
    per_route = bool(expected) and all(isinstance(v, dict) for v in expected.values())
    counts: dict[str, dict[str, int]] = {}
    for row in _rows(store, since, until):
        counts.setdefault(row["route"], {}).setdefault(row["tier"] or "-", 0)
        counts[row["route"]][row["tier"] or "-"] += 1
    out = []
    for route, tiers in sorted(counts.items()):
        want_by_tier = expected.get(route, {}) if per_route else expected
        total = sum(tiers.values())
        for tier in sorted(set(tiers) | set(want_by_tier)):
            share = tiers.get(tier, 0) / total
            want = want_by_tier.get(tier)
            delta = None if want is None else share - want
            out.append(
                {
                    "route": route,
                    "tier": tier,
                    "share": share,
                    "expected": want,
                    "delta": delta,
                    "flagged": delta is not None and abs(delta) > tolerance,
                }
            )
    return out
