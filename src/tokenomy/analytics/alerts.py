"""Alerts: budgets (provider/model/tag/key, monthly) and spend anomalies, each delivered once."""

from __future__ import annotations

import hashlib
import json
from datetime import datetime, timezone
from decimal import Decimal
from typing import Any

from tokenomy.errors import ConfigError

SCOPES = {"provider": "provider", "model": "model", "key": "key_id", "tag": None}
SENT_DDL = "CREATE TABLE IF NOT EXISTS tokenomy_alerts_sent (alert_id TEXT PRIMARY KEY, sent_at TEXT NOT NULL)"


def validate_budgets(items: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Check `budgets:` items: {scope, match, limit_usd}; errors name the item and key."""
    out = []
    for i, item in enumerate(items):
        where = f"budgets[{i}]"
        if not isinstance(item, dict):
            raise ConfigError(f"{where}: expected a mapping with scope, match, limit_usd")
        scope = item.get("scope")
        if scope not in SCOPES:
            raise ConfigError(f"{where}.scope: {scope!r} is not one of {sorted(SCOPES)}")
        if not item.get("match"):
            raise ConfigError(f"{where}.match: required (the {scope} value, or key=value for a tag)")
        try:
            limit = Decimal(str(item.get("limit_usd")))
        except Exception:
            raise ConfigError(f"{where}.limit_usd: {item.get('limit_usd')!r} is not a number of dollars") from None
        if scope == "tag" and "=" not in str(item["match"]):
            raise ConfigError(f"{where}.match: a tag budget matches key=value, e.g. team=search")
        out.append({"scope": scope, "match": str(item["match"]), "limit_usd": limit})
    return out


def _month_spend(store: Any, budget: dict[str, Any], now: datetime) -> Decimal:
    start = now.replace(day=1, hour=0, minute=0, second=0, microsecond=0)
    ph = store.placeholder
    if budget["scope"] == "tag":
        key, value = budget["match"].split("=", 1)
        total = Decimal(0)
        for e in store.events(since=start):
            if e.tags.get(key) == value:
                total += e.cost_usd
        return total
    column = SCOPES[budget["scope"]]
    rows = store.query(f"SELECT SUM(cost_usd) AS s FROM usage_events WHERE ts >= {ph} AND {column} = {ph}",
                       [start, budget["match"]])
    return rows[0]["s"] or Decimal(0)


def evaluate(store: Any, budgets: list[dict[str, Any]], now: datetime | None = None) -> list[dict[str, Any]]:
    """All current alerts (budgets over limit, spend anomalies), each with a stable id."""
    from tokenomy.analytics.anomalies import find_anomalies

    now = now or datetime.now(timezone.utc)
    alerts = []
    for budget in validate_budgets(budgets):
        spent = _month_spend(store, budget, now)
        if spent >= budget["limit_usd"]:
            alerts.append({"kind": "budget", "scope": budget["scope"], "match": budget["match"],
                           "spent_usd": spent, "limit_usd": budget["limit_usd"], "month": now.strftime("%Y-%m")})
    for anomaly in find_anomalies(store):
        alerts.append({**anomaly.to_json(), "kind": f"anomaly_{anomaly.kind}"})
    for alert in alerts:
        alert["alert_id"] = hashlib.sha256(json.dumps(alert, sort_keys=True, default=str).encode()).hexdigest()[:16]
    return alerts


def unsent(store: Any, alerts: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Alerts not delivered before (remembered in tokenomy_alerts_sent in the ledger DB)."""
    store.execute(SENT_DDL)
    sent = {r["alert_id"] for r in store.query("SELECT alert_id FROM tokenomy_alerts_sent")}
    return [a for a in alerts if a["alert_id"] not in sent]


def mark_sent(store: Any, alerts: list[dict[str, Any]]) -> None:
    """Remember delivered alerts so a re-run does not resend them."""
    now = datetime.now(timezone.utc).isoformat()
    for alert in alerts:
        store.execute(f"INSERT INTO tokenomy_alerts_sent (alert_id, sent_at) VALUES ({store.placeholder}, "
                      f"{store.placeholder})", [alert["alert_id"], now])
