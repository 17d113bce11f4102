"""Alerts over the ledger, each delivered once.

Budgets (spent, and forecast to be exceeded by month end), spend anomalies, cache-hit-rate drops week
over week, routing tier drift, cascade escalation rate, idle provisioned throughput, and a bill that
disagrees with what Tokenomy metered (billing_mismatch). Every alert has
an id made from what it is about and its period (not from its changing figures), so a re-run does not
send the same alert again while the condition persists. Money in a message is printed as every table and the
console print amounts (money's `amount`, "$1,234.500000"): a $0.004 budget or a model costing $0.0005 a day reads
whole, as the budget bar beside it does.
"""

from __future__ import annotations

import hashlib
import json
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from typing import Any

# Re-exported: callers and tests import the settings from here.
from tokenomy.analytics.billed import SPEND_EVENTS, canonical_provider, provider_sql
from tokenomy.config_alerts import SCOPES, AlertSettings, Budget, Reservation, validate_budgets
from tokenomy.errors import ConfigError, UsageError
from tokenomy.ledger.rollups import tag_match
from tokenomy.money import usd

__all__ = ["SCOPES", "AlertSettings", "Budget", "Reservation", "evaluate", "mark_sent", "unsent", "validate_budgets"]
SENT_DDL = "CREATE TABLE IF NOT EXISTS tokenomy_alerts_sent (alert_id TEXT PRIMARY KEY, sent_at TEXT NOT NULL)"
ALL_INPUT = "input_tokens + cache_read_tokens + cache_write_tokens"


def scope_filter(store: Any, budget: dict[str, Any]) -> tuple[str, tuple]:
    """` AND ...` SQL selecting a budget's events, the same text on DuckDB and PostgreSQL."""
    if budget["scope"] == "tag":
        sql, params = tag_match(store.dialect, store.placeholder, budget["match"])
        return f" AND {sql}", tuple(params)
    if budget["scope"] == "provider":
        # Metered calls record `aws.bedrock`, bills and people say `bedrock`: compare canonical names, so either
        # spelling in a budget matches both kinds of row.
        return f" AND {provider_sql()} = {store.placeholder}", (canonical_provider(budget["match"]),)
    return f" AND {SCOPES[budget['scope']]} = {store.placeholder}", (budget["match"],)


def _week(now: datetime) -> str:
    return (now - timedelta(days=now.weekday())).date().isoformat()


def _budget_alerts(store: Any, budgets: list[Any], now: datetime) -> list[dict[str, Any]]:
    from tokenomy.analytics.forecast import month_end_forecast

    start = now.replace(day=1, hour=0, minute=0, second=0, microsecond=0)
    ph, out = store.placeholder, []
    for budget in validate_budgets(budgets):
        sql, params = scope_filter(store, budget)
        rows = store.query(
            f"SELECT SUM(cost_usd) AS s FROM {SPEND_EVENTS} WHERE ts >= {ph} AND ts < {ph}{sql}", [start, now, *params]
        )
        spent, limit = Decimal(rows[0]["s"] or 0), budget["limit_usd"]
        base = {
            "scope": budget["scope"],
            "match": budget["match"],
            "limit_usd": budget["limit_usd"],
            "month": now.strftime("%Y-%m"),
            "spent_usd": spent,
        }
        if spent >= budget["limit_usd"]:
            out.append(
                {
                    "kind": "budget",
                    "subject": f"{budget['scope']} {budget['match']}",
                    **base,
                    "message": f"spent {usd(spent, 'amount')} of {usd(limit, 'amount')} this month",
                }
            )
            continue
        try:
            forecast = month_end_forecast(store, now=now, filter_sql=sql, filter_params=params)
        except UsageError:
            continue  # too little history to forecast; the spent check above still applies
        if forecast.forecast_usd > budget["limit_usd"]:
            out.append(
                {
                    "kind": "budget_forecast",
                    "subject": f"{budget['scope']} {budget['match']}",
                    **base,
                    "forecast_usd": forecast.forecast_usd,
                    "low_usd": forecast.low_usd,
                    "high_usd": forecast.high_usd,
                    "message": f"month-end forecast {usd(forecast.forecast_usd, 'amount')} "
                    f"({usd(forecast.low_usd, 'amount')}–{usd(forecast.high_usd, 'amount')}) "
                    f"exceeds the {usd(limit, 'amount')} budget",
                }
            )
    return out


def _anomaly_alerts(store: Any, now: datetime, s: AlertSettings) -> list[dict[str, Any]]:
    from tokenomy.analytics.anomalies import find_anomalies

    first = (now - timedelta(days=s.window_days)).date().isoformat()
    out = []
    for group in s.anomaly_groups:
        for anomaly in find_anomalies(store, by=group, until=now):
            if anomaly.day < first:
                continue  # older than the window: a past event, not news
            subject = anomaly.key if group == "model" else f"{group} {anomaly.key}"
            out.append(
                {
                    **anomaly.to_json(),
                    "kind": f"anomaly_{anomaly.kind}",
                    "group": group,
                    "subject": subject,
                    "message": f"{usd(anomaly.actual_usd, 'amount')}/day, expected "
                    f"{usd(anomaly.expected_low_usd, 'amount')}–"
                    f"{usd(anomaly.expected_high_usd, 'amount')}",
                }
            )
    return out


def cache_rates(store: Any, now: datetime, days: int) -> list[dict[str, Any]]:
    """Per model: cache hit rate in the last `days` and in the `days` before that."""
    ph = store.placeholder
    mid, start = now - timedelta(days=days), now - timedelta(days=2 * days)
    recent, prev = f"ts >= {ph}", f"ts < {ph}"
    rows = store.query(
        f"SELECT model, SUM(CASE WHEN {recent} THEN cache_read_tokens ELSE 0 END) AS recent_read, "
        f"SUM(CASE WHEN {recent} THEN {ALL_INPUT} ELSE 0 END) AS recent_input, "
        f"SUM(CASE WHEN {prev} THEN cache_read_tokens ELSE 0 END) AS prev_read, "
        f"SUM(CASE WHEN {prev} THEN {ALL_INPUT} ELSE 0 END) AS prev_input "
        f"FROM {SPEND_EVENTS} WHERE ts >= {ph} AND ts < {ph} GROUP BY model ORDER BY model",
        [mid, mid, mid, mid, start, now],
    )
    for row in rows:
        row["recent_rate"] = int(row["recent_read"]) / int(row["recent_input"]) if row["recent_input"] else None
        row["previous_rate"] = int(row["prev_read"]) / int(row["prev_input"]) if row["prev_input"] else None
    return rows


def _cache_alerts(store: Any, now: datetime, s: AlertSettings) -> list[dict[str, Any]]:
    out = []
    for row in cache_rates(store, now, s.window_days):
        if (
            None in (row["recent_rate"], row["previous_rate"])
            or min(int(row["recent_input"]), int(row["prev_input"])) < s.cache_min_tokens
        ):
            continue
        drop = row["previous_rate"] - row["recent_rate"]
        if drop >= s.cache_drop_points:
            out.append(
                {
                    "kind": "cache_drop",
                    "subject": row["model"],
                    "model": row["model"],
                    "week": _week(now),
                    "previous_rate": row["previous_rate"],
                    "recent_rate": row["recent_rate"],
                    "message": f"cache hit rate {row['previous_rate']:.0%} → {row['recent_rate']:.0%} "
                    f"over the last {s.window_days} days",
                }
            )
    return out


def _routing_alerts(store: Any, now: datetime, s: AlertSettings, config: Any = None) -> list[dict[str, Any]]:
    """Tier share off its expectation, and escalation rate over its threshold, per route.

    Per-route expectations and thresholds come from the routes' routing policies (`expected_share`,
    `escalation_threshold`) when a config is given; `alerts:` settings cover everything else.
    """
    from tokenomy.routing.drift import escalation_rates, escalation_thresholds, expected_tier_shares, tier_share

    since, out = now - timedelta(days=s.window_days), []
    expected: dict[str, Any] = expected_tier_shares(config, s)
    if expected:
        for row in tier_share(store, since=since, expected=expected, tolerance=s.tier_tolerance):
            if row["flagged"]:
                out.append(
                    {
                        "kind": "routing_drift",
                        "subject": f"{row['route']} tier {row['tier']}",
                        "route": row["route"],
                        "tier": row["tier"],
                        "share": row["share"],
                        "expected": row["expected"],
                        "week": _week(now),
                        "message": f"tier {row['tier']} got {row['share']:.0%} of calls, expected "
                        f"{row['expected']:.0%}",
                    }
                )
    per_route = escalation_thresholds(config) if config is not None else {}
    thresholds: Any = {**per_route} if per_route else s.escalation_threshold
    for row in escalation_rates(store, thresholds, since=since):
        if row["flagged"] and row["calls"] >= s.escalation_min_calls:
            message = f"{row['rate']:.0%} of requests escalated (threshold {row['threshold']:.0%})"
            if row["rejections"]:  # what to act on: why the cheap answers were rejected
                top, rejected = row["rejections"][0], sum(r["answers"] for r in row["rejections"])
                message += f"; the commonest reason: {top['reason']} ({top['answers']} of {rejected} rejected answers)"
            out.append(
                {
                    "kind": "escalation_rate",
                    "subject": row["route"],
                    "route": row["route"],
                    "rate": row["rate"],
                    "threshold": row["threshold"],
                    "rejections": row["rejections"],
                    "week": _week(now),
                    "message": message,
                }
            )
    return out


def reservation_utilization(store: Any, reservation: Reservation, since: datetime, until: datetime) -> float:
    """Sustained utilisation of a reservation: tokens served (capped at capacity each minute) / capacity."""
    import pandas as pd

    from tokenomy.planning.traffic import from_ledger

    minutes = pd.date_range(
        pd.Timestamp(since).floor("min"), pd.Timestamp(until).floor("min"), freq="1min", inclusive="left"
    )
    try:
        series = from_ledger(store, reservation.model, since, until)
    except ConfigError:  # no traffic at all in the window: fully idle
        return 0.0
    capacity = reservation.units * reservation.tpm_per_unit
    # Silent minutes before the first and after the last call are idle time too, so fill the whole window.
    per_minute = (series["input_tokens"] + series["output_tokens"]).reindex(minutes, fill_value=0)
    return float(per_minute.clip(upper=capacity).sum() / (capacity * len(minutes)))


def _idle_alerts(store: Any, now: datetime, s: AlertSettings) -> list[dict[str, Any]]:
    out = []
    for reservation in s.reservations:
        used = reservation_utilization(store, reservation, now - timedelta(days=s.window_days), now)
        if used < s.idle_threshold:
            out.append(
                {
                    "kind": "provisioned_idle",
                    "subject": reservation.model,
                    "model": reservation.model,
                    "units": reservation.units,
                    "utilization": used,
                    "week": _week(now),
                    "message": f"{reservation.units} unit(s) {used:.0%} utilised over {s.window_days} days "
                    f"(threshold {s.idle_threshold:.0%}): {1 - used:.0%} of paid capacity idle",
                }
            )
    return out


def _billing_alerts(store: Any, now: datetime, s: AlertSettings) -> list[dict[str, Any]]:
    """Days in the window whose bill (imported usage/cost data) is off what Tokenomy metered, or that bill
    spend Tokenomy never saw."""
    from tokenomy.analytics.reconcile import reconcile

    rows = reconcile(store, "model", now - timedelta(days=s.window_days), now, s.billing_tolerance_pct)
    return [
        {
            "kind": "billing_mismatch",
            "subject": f"{r['provider']}/{r['model']}",
            **{k: r[k] for k in ("day", "provider", "model", "status", "metered_usd", "billed_usd")},
            **{k: r[k] for k in ("difference_usd", "difference_pct", "unmetered_usd")},
            "message": f"{r['status']}: billed {usd(r['billed_usd'], 'amount')} vs metered "
            f"{usd(r['metered_usd'], 'amount')}; {r['cause']}",
        }
        for r in rows
        if r["flagged"]
    ]


# What makes an alert the same alert on the next run: its kind, its subject and its period.
IDENTITY = {
    "budget": ("month", "limit_usd"),
    "budget_forecast": ("month", "limit_usd"),
    "anomaly_spike": ("day",),
    "anomaly_drift": ("week",),
    "cache_drop": ("week",),
    "routing_drift": ("week",),
    "escalation_rate": ("week",),
    "provisioned_idle": ("week",),
    "billing_mismatch": ("day",),
}


def evaluate(
    store: Any,
    budgets: list[Any],
    now: datetime | None = None,
    settings: AlertSettings | None = None,
    config: Any = None,
) -> list[dict[str, Any]]:
    """All current alerts, each with a stable `alert_id` (`config`: a TokenomyConfig for routing policies)."""
    now = (now or datetime.now(UTC)).astimezone(UTC)
    settings = settings or AlertSettings()
    alerts = _budget_alerts(store, budgets, now)
    alerts += _anomaly_alerts(store, now, settings)
    alerts += _cache_alerts(store, now, settings)
    alerts += _routing_alerts(store, now, settings, config)
    alerts += _idle_alerts(store, now, settings)
    alerts += _billing_alerts(store, now, settings)
    for alert in alerts:
        if alert["kind"] == "anomaly_drift":
            alert["week"] = _week(datetime.fromisoformat(alert["day"]))
        identity = [alert["kind"], alert["subject"], *(alert[k] for k in IDENTITY[alert["kind"]])]
        alert["alert_id"] = hashlib.sha256(json.dumps(identity, default=str).encode()).hexdigest()[:16]
    return alerts


def _has_sent_table(store: Any) -> bool:
    rows = store.query("SELECT COUNT(*) AS n FROM information_schema.tables WHERE table_name = 'tokenomy_alerts_sent'")
    return int(rows[0]["n"]) > 0


def unsent(store: Any, alerts: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Alerts not delivered before (remembered in tokenomy_alerts_sent in the ledger DB).

    Read-only: the table is created by `mark_sent`, so checking a ledger never alters it."""
    if not _has_sent_table(store):
        return list(alerts)
    sent = {r["alert_id"] for r in store.query("SELECT alert_id FROM tokenomy_alerts_sent")}
    return [a for a in alerts if a["alert_id"] not in sent]


def mark_sent(store: Any, alerts: list[dict[str, Any]]) -> None:
    """Remember delivered alerts so a re-run does not resend them."""
    if not alerts:
        return
    store.execute(SENT_DDL)
    now = datetime.now(UTC).isoformat()
    for alert in alerts:
        store.execute(
            f"INSERT INTO tokenomy_alerts_sent (alert_id, sent_at) VALUES ({store.placeholder}, "
            f"{store.placeholder}) ON CONFLICT (alert_id) DO NOTHING",
            [alert["alert_id"], now],
        )
