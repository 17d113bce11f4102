"""The quarterly review: spend and trend, model upgrades, re-benchmark, drift and habits, ranked actions.

Parts live in review_spend, review_models, review_bench and review_habits; this module runs them over one
period (the `days` before `until`) against the previous period of equal length, ranks what they found by
dollars per month, and keeps each review in the ledger database (`tokenomy_reviews`) so the next one
compares against it. Dollars per month scale the period's dollars to a 730-hour month.
"""

from __future__ import annotations

import json
import uuid
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from typing import Any

from tokenomy.analytics import review_habits as habits
from tokenomy.analytics.review_models import models_section
from tokenomy.analytics.review_spend import month_factor, spend_section
from tokenomy.config_alerts import AlertSettings
from tokenomy.errors import UsageError
from tokenomy.money import money_str
from tokenomy.routing.drift import expected_tier_shares

REVIEWS_DDL = (
    "CREATE TABLE IF NOT EXISTS tokenomy_reviews (id TEXT PRIMARY KEY, created_at TEXT NOT NULL, "
    "period TEXT NOT NULL, body TEXT NOT NULL)"
)


def _json_default(value: Any) -> Any:
    if isinstance(value, Decimal):  # the project's one money rule, as `--json` prints it
        return money_str(value, "record")
    if isinstance(value, datetime):
        return value.isoformat().replace("+00:00", "Z")
    if hasattr(value, "isoformat"):
        return value.isoformat()
    raise TypeError(f"cannot serialise {type(value).__name__}")


def latest_review(store: Any, ending_by: datetime | None = None) -> dict[str, Any] | None:
    """The most recent stored review's body, or None; with `ending_by`, the most recent of those whose period ended
    by then (a review of an earlier quarter, run after a later one, compares with the one before it, not the later
    one)."""
    store.execute(REVIEWS_DDL)
    if ending_by is None:
        rows = store.query("SELECT body FROM tokenomy_reviews ORDER BY created_at DESC, id DESC LIMIT 1")
        return json.loads(rows[0]["body"]) if rows else None
    for row in store.query("SELECT body FROM tokenomy_reviews ORDER BY created_at DESC, id DESC"):
        body = json.loads(row["body"])
        end = datetime.fromisoformat(body["period"]["end"].replace("Z", "+00:00"))
        if end <= ending_by:
            return body
    return None


def stored_review(store: Any) -> dict[str, Any] | None:
    """The most recent stored review's body without creating the reviews table (for read-only viewers)."""
    found = store.query("SELECT COUNT(*) AS n FROM information_schema.tables WHERE table_name = 'tokenomy_reviews'")
    return latest_review(store) if found and found[0]["n"] else None


def save_review(store: Any, body: dict[str, Any]) -> None:
    store.execute(REVIEWS_DDL)
    ph = store.placeholder
    store.execute(
        f"INSERT INTO tokenomy_reviews (id, created_at, period, body) VALUES ({ph}, {ph}, {ph}, {ph})",
        [body["id"], body["created_at"], body["period"]["label"], json.dumps(body, default=_json_default)],
    )


def run_review(
    store: Any,
    days: int = 90,
    until: datetime | None = None,
    cfg: Any = None,
    bench: Callable[[list[dict[str, Any]], str | None], dict[str, Any]] | None = None,
    created_at: datetime | None = None,
) -> dict[str, Any]:
    """Build the review body (JSON-ready apart from Decimals).

    `bench(models_in_use, previous_judge)` re-runs the benchmark (see review_bench) on the models in use and their
    candidates and returns its result; the previous review's judge is passed so the evaluator stays fixed.
    """
    from tokenomy.analytics.review_bench import compare

    if days < 1:
        raise UsageError(f"--since {days}d: the period must be at least one day")
    end = (until or datetime.now(UTC)).astimezone(UTC)
    start = end - timedelta(days=days)
    factor = month_factor(days)
    settings = cfg.alert_settings() if cfg is not None else AlertSettings()
    previous = latest_review(store, ending_by=end)
    spend = spend_section(store, start, end, days, end)
    models = models_section(store, start, end, factor)
    tiers, tier_findings = habits.tier_drift(store, start, end, settings, expected_tier_shares(cfg, settings), factor)
    escalations, escalation_findings = habits.escalations(store, start, end, cfg, settings, factor)
    cache, cache_findings = habits.cache_changes(store, end, days, settings, factor)
    history, history_findings = habits.history_growth(store, start, end, days, factor)
    reserved, idle_findings = habits.reservations(store, start, end, settings, factor)
    batch, batch_findings = habits.batch_share(store, start, end, factor)
    findings = (
        models["findings"]
        + tier_findings
        + escalation_findings
        + cache_findings
        + history_findings
        + idle_findings
        + batch_findings
    )
    body: dict[str, Any] = {
        "id": uuid.uuid4().hex,
        "created_at": (created_at or datetime.now(UTC)).astimezone(UTC).isoformat().replace("+00:00", "Z"),
        "period": {
            "start": start.isoformat().replace("+00:00", "Z"),
            "end": end.isoformat().replace("+00:00", "Z"),
            "days": days,
            "previous_start": (start - timedelta(days=days)).isoformat().replace("+00:00", "Z"),
            "label": f"{start.date()}..{end.date()}",
            "month_factor": factor,
        },
        "spend": spend,
        "models": models["in_use"],
        "habits": {
            "tier_share": tiers,
            "escalation": escalations,
            "cache_hit_rate": cache,
            "history_length": history,
            "reservations": reserved,
            "batch_share": batch,
            "uncapped_outputs": {"known": False, "note": habits.UNCAPPED_NOTE},
        },
        "findings": findings,
        "actions": rank_actions(findings),
        "previous_review": None,
    }
    if bench is not None:
        previous_bench = (previous or {}).get("bench") or {}
        rerun = bench(models["in_use"], previous_bench.get("judge"))
        if previous_bench and previous_bench.get("judge") != rerun.get("judge"):
            rerun["note"] = (
                f"judge {rerun.get('judge')} differs from the previous review's "
                f"{previous_bench.get('judge')}: judged scores are not comparable"
            )
        rerun["comparison"] = compare(rerun["results"], previous_bench.get("results"))
        regressions = [c for c in rerun["comparison"] if c["regressed"]]
        rerun["regressions"] = regressions
        body["bench"] = rerun
        for row in regressions:
            body["actions"].append(
                {
                    "rank": len(body["actions"]) + 1,
                    "kind": "quality_regression",
                    "subject": f"{row['task']} on {row['model']}",
                    "monthly_usd": None,
                    "message": f"quality {row['previous_quality']} → {row['quality']} on "
                    f"{row['task']} (beyond both 95% intervals)",
                    "apply": f"do not route {row['task']} to {row['model']}; pin the previous model "
                    f"in tokenomy.yaml until it is fixed",
                }
            )
    if previous is not None:
        before = {(f["kind"], f["subject"]) for f in previous.get("findings", [])}
        body["previous_review"] = {
            "id": previous["id"],
            "created_at": previous["created_at"],
            "period": previous["period"]["label"],
            "spend_usd": previous["spend"]["current_usd"],
            "still_open": sorted(f"{k}: {s}" for k, s in before & {(f["kind"], f["subject"]) for f in findings}),
            "resolved": sorted(f"{k}: {s}" for k, s in before - {(f["kind"], f["subject"]) for f in findings}),
        }
    return body


def rank_actions(findings: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """One action per finding, largest dollars per month first (unpriced findings last)."""

    def dollars(f: dict[str, Any]) -> Decimal:
        value = action_dollars(f)
        return value if value is not None else Decimal(-1)

    ordered = sorted(findings, key=lambda f: (-dollars(f), f["kind"], f["subject"]))
    return [
        {
            "rank": i,
            "kind": f["kind"],
            "subject": f["subject"],
            "monthly_usd": action_dollars(f),
            "message": f["message"],
            "apply": f["apply"],
        }
        for i, f in enumerate(ordered, 1)
    ]


def action_dollars(finding: dict[str, Any]) -> Decimal | None:
    """What acting on a finding saves per month: its own saving if it states one, else its cost."""
    if finding.get("saving_monthly_usd") is not None:
        return finding["saving_monthly_usd"]
    return finding.get("monthly_usd")
