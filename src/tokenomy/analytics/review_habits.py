"""Review, part 4: drift and habits, each with what it costs per month.

- Routing tier share against the expected share (routing policies or `alerts.expected_tier_share`):
  cost of the drift = actual cost − N · Σ expected_share_t · cost_per_call_t (tiers at today's cost per call).
- Escalation rate per route over its threshold: the cheaper tier's rejected answers' cost (paid and thrown away;
  routing such prompts straight to the strong tier saves it), the escalated attempts' cost beside it.
- Cache hit rate per model against the previous period: the input tokens that were cached before and
  are not now, at (input price − cache-read price): (rate_before − rate_now) · input_tokens_now · Δprice.
- Uncapped outputs: the ledger does not record max_tokens, so it cannot tell; said so, not guessed.
- History length: input tokens per call per task against the previous period; the growth's cost is
  (per_call_now − per_call_before) · calls_now · input cost per input token now.
- Provisioned throughput per reservation (`alerts.reservations`): utilisation, the idle share of its unit-hour
  price (`hourly_usd`, else the catalog's price for its `term`), and what the same traffic costs on demand.
- Batch share of latency-tolerant tasks (calls tagged latency_tolerant=true): what batch prices save.
"""

from __future__ import annotations

from datetime import datetime, timedelta
from decimal import Decimal
from typing import Any

from tokenomy.analytics.alerts import ALL_INPUT, cache_rates, reservation_utilization
from tokenomy.analytics.reports import run_report
from tokenomy.analytics.review_html import money
from tokenomy.chat_response import Usage
from tokenomy.config_alerts import AlertSettings
from tokenomy.errors import TokenomyError
from tokenomy.ledger.spend import is_call_sql
from tokenomy.pricing.catalog import default_catalog
from tokenomy.pricing.cost import compute_cost
from tokenomy.pricing.identifiers import pricing_region
from tokenomy.routing.router import ESCALATED_TAG, REJECTED_TAG

MILLION = Decimal(1_000_000)
HISTORY_GROWTH = 0.2  # input tokens per call up 20% or more is worth a look
LATENCY_TOLERANT_TAG = "latency_tolerant"


def _dec(value: Any) -> Decimal:
    return Decimal(str(value or 0))


def tier_drift(
    store: Any, start: datetime, end: datetime, settings: AlertSettings, expected: dict, factor: Decimal
) -> tuple[list[dict[str, Any]], list[dict[str, Any]]]:
    """Rows per route and tier, and findings for routes with a tier off its expectation."""
    from tokenomy.routing.drift import tier_share

    if not expected:
        return [], []
    ph = store.placeholder
    costs = {
        (r["route"], r["tier"] or "-"): r
        for r in store.query(
            f"SELECT route, tier, COUNT(*) AS calls, SUM(cost_usd) AS cost_usd FROM usage_events "
            f"WHERE route IS NOT NULL AND outcome = 'ok' AND ts >= {ph} AND ts < {ph} GROUP BY 1, 2",
            [start, end],
        )
    }
    rows = tier_share(store, since=start, expected=expected, tolerance=settings.tier_tolerance, until=end)
    findings = []
    for route in sorted({r["route"] for r in rows}):
        mine = [r for r in rows if r["route"] == route]
        if not any(r["flagged"] for r in mine):
            continue
        calls = sum(int(costs[(route, r["tier"])]["calls"]) for r in mine if (route, r["tier"]) in costs)
        actual = sum(
            (_dec(costs[(route, r["tier"])]["cost_usd"]) for r in mine if (route, r["tier"]) in costs), Decimal(0)
        )
        unpriced = [r["tier"] for r in mine if r["expected"] and (route, r["tier"]) not in costs]
        if unpriced:  # a tier expected but never used has no cost per call to price the drift with
            monthly = None
        else:
            as_expected = sum(
                (
                    Decimal(str(r["expected"]))
                    * _dec(costs[(route, r["tier"])]["cost_usd"])
                    / int(costs[(route, r["tier"])]["calls"])
                    for r in mine
                    if r["expected"]
                ),
                Decimal(0),
            )
            monthly = (actual - calls * as_expected) * factor
        off = ", ".join(f"{r['tier']} {r['share']:.0%} (expected {r['expected']:.0%})" for r in mine if r["flagged"])
        findings.append(
            {
                "kind": "tier_drift",
                "subject": route,
                "route": route,
                "monthly_usd": monthly,
                "shares": {r["tier"]: r["share"] for r in mine},
                "expected": {r["tier"]: r["expected"] for r in mine if r["expected"] is not None},
                "message": f"route {route}: {off}"
                + (
                    ""
                    if monthly is not None
                    else f"; tier(s) {', '.join(unpriced)} unused, so the drift cannot be priced"
                ),
                "apply": f"tokenomy route drift --config tokenomy.yaml, then re-calibrate the router "
                f"(tokenomy route eval) or adjust routing.policies.*.expected_share for {route}",
            }
        )
    return rows, findings


def escalations(
    store: Any, start: datetime, end: datetime, cfg: Any, settings: AlertSettings, factor: Decimal
) -> tuple[list[dict[str, Any]], list[dict[str, Any]]]:
    from tokenomy.routing.drift import escalation_rates, escalation_thresholds

    per_route = escalation_thresholds(cfg) if cfg is not None else {}
    rows = escalation_rates(store, per_route or settings.escalation_threshold, since=start, until=end)
    findings = []
    for row in rows:
        if not (row["flagged"] and row["calls"] >= settings.escalation_min_calls):
            continue
        ph = store.placeholder
        costs = store.query(
            f"SELECT SUM(CASE WHEN tags LIKE {ph} THEN cost_usd END) AS escalated, "
            f"SUM(CASE WHEN tags LIKE {ph} THEN cost_usd END) AS rejected FROM usage_events "
            f"WHERE route = {ph} AND ts >= {ph} AND ts < {ph}",
            [f'%"{ESCALATED_TAG}"%', f'%"{REJECTED_TAG}"%', row["route"], start, end],
        )[0]
        share = f"route {row['route']}: {row['rate']:.0%} of requests escalated (threshold {row['threshold']:.0%})"
        if costs["rejected"] is None:  # rows from before rejected answers were tagged: their cost is not known
            monthly = None
            message = f"{share}; what its rejected answers cost is unknown (its rows predate the {REJECTED_TAG} tag)"
        else:
            # The cheaper tier's answers paid for and thrown away: what sending such prompts straight to the strong
            # tier saves. The escalated attempts' cost (the strong tier's) is paid either way, so it is shown apart.
            monthly = _dec(costs["rejected"]) * factor
            message = f"{share}; the cheaper tier's rejected answers cost {money(monthly)} a month"
        findings.append(
            {
                "kind": "escalation_rate",
                "subject": row["route"],
                "route": row["route"],
                "rate": row["rate"],
                "threshold": row["threshold"],
                "monthly_usd": monthly,
                "escalated_usd": _dec(costs["escalated"]) * factor,
                "message": message,
                "apply": f"tokenomy route eval on recent traffic; lower the weak tier's confidence bar or "
                f"route {row['route']} to the strong tier directly",
            }
        )
    return rows, findings


def _cache_price_gap(model: str) -> Decimal | None:
    try:
        entry = default_catalog().lookup(model)
    except TokenomyError:
        return None
    if entry.cache_read is None or entry.input is None:
        return None
    return (entry.input - entry.cache_read) / MILLION


def cache_changes(
    store: Any, end: datetime, days: int, settings: AlertSettings, factor: Decimal
) -> tuple[list[dict[str, Any]], list[dict[str, Any]]]:
    rows, findings = [], []
    for row in cache_rates(store, end, days):
        out = {"model": row["model"], "previous_rate": row["previous_rate"], "current_rate": row["recent_rate"]}
        rows.append(out)
        if (
            None in (row["recent_rate"], row["previous_rate"])
            or min(int(row["recent_input"]), int(row["prev_input"])) < settings.cache_min_tokens
        ):
            continue
        drop = row["previous_rate"] - row["recent_rate"]
        if drop < settings.cache_drop_points:
            continue
        gap = _cache_price_gap(row["model"])
        lost_tokens = Decimal(repr(drop)) * int(row["recent_input"])
        monthly = None if gap is None else lost_tokens * gap * factor
        findings.append(
            {
                "kind": "cache_drop",
                "subject": row["model"],
                "model": row["model"],
                "previous_rate": row["previous_rate"],
                "current_rate": row["recent_rate"],
                "monthly_usd": monthly,
                "message": f"{row['model']}: cache hit rate {row['previous_rate']:.0%} → "
                f"{row['recent_rate']:.0%}"
                + ("" if gap is not None else " (no cache prices in the catalog to price it)"),
                "apply": f"tokenomy report cache-trend --by model; find the prompt change for {row['model']} "
                "that moved dynamic text before the cached prefix and put it after",
            }
        )
    return rows, findings


def history_growth(
    store: Any, start: datetime, end: datetime, days: int, factor: Decimal
) -> tuple[list[dict[str, Any]], list[dict[str, Any]]]:
    ph = store.placeholder
    previous_start = start - timedelta(days=days)
    sql = (
        f"SELECT COALESCE(task, '(none)') AS task, COUNT(*) AS calls, SUM({ALL_INPUT}) AS input_tokens, "
        f"SUM(input_cost_usd + cache_read_cost_usd + cache_write_cost_usd) AS input_cost_usd FROM usage_events "
        # calls only: an imported bill's row is a provider-day's usage, whose tokens are no one call's, and a cache's
        # storage row is what keeping it cost, no call at all
        f"WHERE outcome = 'ok' AND {is_call_sql()} AND ts >= {ph} AND ts < {ph} GROUP BY 1"
    )
    now = {r["task"]: r for r in store.query(sql, [start, end])}
    before = {r["task"]: r for r in store.query(sql, [previous_start, start])}
    rows, findings = [], []
    for task in sorted(set(now) & set(before)):
        n1, n0 = int(now[task]["calls"]), int(before[task]["calls"])
        per1, per0 = _dec(now[task]["input_tokens"]) / n1, _dec(before[task]["input_tokens"]) / n0
        growth = float(per1 / per0 - 1) if per0 else None
        rows.append(
            {
                "task": task,
                "previous_input_per_call": float(per0),
                "current_input_per_call": float(per1),
                "growth": growth,
            }
        )
        if growth is None or growth < HISTORY_GROWTH or not _dec(now[task]["input_tokens"]):
            continue
        per_token = _dec(now[task]["input_cost_usd"]) / _dec(now[task]["input_tokens"])
        findings.append(
            {
                "kind": "history_growth",
                "subject": task,
                "task": task,
                "growth": growth,
                "monthly_usd": (per1 - per0) * n1 * per_token * factor,
                "message": f"task {task}: input tokens per call {float(per0):,.0f} → {float(per1):,.0f} "
                f"({growth:+.0%})",
                "apply": f"trim or summarise the conversation history sent for task {task}, or cache its "
                "stable prefix (tokenomy plan savings --config tokenomy.yaml shows the caching lever)",
            }
        )
    return rows, findings


def reservations(
    store: Any, start: datetime, end: datetime, settings: AlertSettings, factor: Decimal
) -> tuple[list[dict[str, Any]], list[dict[str, Any]]]:
    rows, findings = [], []
    hours = Decimal(str((end - start).total_seconds())) / 3600
    for index, res in enumerate(settings.reservations):
        used = reservation_utilization(store, res, start, end)
        hourly = res.hourly_usd
        if hourly is None:
            try:
                hourly = default_catalog().lookup(res.model).provisioned_hourly.get(res.term)
            except TokenomyError:
                hourly = None
        monthly_cost = None if hourly is None else hourly * res.units * hours * factor
        idle = None if monthly_cost is None else monthly_cost * (1 - Decimal(repr(used)))
        ph = store.placeholder
        served = store.query(
            f"SELECT SUM(input_tokens) AS i, SUM(output_tokens) AS o FROM usage_events WHERE "
            f"model = {ph} AND outcome = 'ok' AND ts >= {ph} AND ts < {ph}",
            [res.model, start, end],
        )[0]
        try:  # per-token prices are linear, so the period's sums price the same as call by call
            on_demand = compute_cost(Usage(int(served["i"] or 0), int(served["o"] or 0)), res.model).total_usd * factor
        except TokenomyError:
            on_demand = None
        row = {
            "model": res.model,
            "units": res.units,
            "term": res.term,
            "hourly_usd": hourly,
            "utilization": used,
            "monthly_cost_usd": monthly_cost,
            "idle_monthly_usd": idle,
            "on_demand_monthly_usd": on_demand,
        }
        rows.append(row)
        if used >= settings.idle_threshold:
            continue
        # Releasing the reservation saves its cost less the on-demand price of its traffic (when that is positive).
        saving = None
        if monthly_cost is not None and on_demand is not None and monthly_cost > on_demand:
            saving = monthly_cost - on_demand
        findings.append(
            {
                "kind": "provisioned_idle",
                "subject": res.model,
                **row,
                "monthly_usd": idle,
                "saving_monthly_usd": saving,
                "message": f"{res.model}: {res.units} unit(s) {used:.0%} utilised; idle capacity costs "
                + (
                    f"an unknown amount (the catalog has no {res.term!r}-term unit price: set "
                    f"alerts.reservations[{index}].hourly_usd or term)"
                    if idle is None
                    else f"{money(idle)}/month at the {res.term}-term hourly price"
                ),
                "apply": f"release the reservation and run {res.model} on demand (then remove "
                f"alerts.reservations[{index}] from tokenomy.yaml), or cut its units",
            }
        )
    return rows, findings


def batch_share(
    store: Any, start: datetime, end: datetime, factor: Decimal
) -> tuple[list[dict[str, Any]], list[dict[str, Any]]]:
    rows = run_report(store, "batch-share", by="task", since=start, until=end)
    from tokenomy.ledger.events import COLUMNS
    from tokenomy.ledger.store import event_from_row

    ph = store.placeholder
    tagged = store.query(
        f"SELECT {', '.join(COLUMNS)} FROM usage_events WHERE ts >= {ph} AND ts < {ph} AND "
        f"outcome = 'ok' AND mode = 'on_demand' AND tags LIKE {ph}",
        [start, end, f'%"{LATENCY_TOLERANT_TAG}"%'],
    )  # only the tagged calls are read
    tolerant = [
        e for e in map(event_from_row, tagged) if e.tags.get(LATENCY_TOLERANT_TAG, "").lower() in ("1", "true", "yes")
    ]
    findings: list[dict[str, Any]] = []
    saving_by_task: dict[str, Decimal] = {}
    for event in tolerant:
        if event.mode != "on_demand":
            continue
        region = pricing_region(event.region)
        try:
            # one_call: a call over the long-context threshold, priced at those prices, moves at their batch price
            batch = compute_cost(event.usage, event.model, region, "batch", one_call=True).total_usd
        except TokenomyError:
            continue
        task = event.task or "(none)"
        saving_by_task[task] = saving_by_task.get(task, Decimal(0)) + event.cost_usd - batch
    for task, saving in sorted(saving_by_task.items()):
        if saving > 0:
            findings.append(
                {
                    "kind": "batch_candidate",
                    "subject": task,
                    "task": task,
                    "monthly_usd": saving * factor,
                    "message": f"task {task}: latency-tolerant calls ran on demand",
                    "apply": f"tokenomy batch plan for task {task}'s requests, then tokenomy batch submit "
                    f"(tokenomy plan savings --batch-tasks {task} sizes it)",
                }
            )
    return rows, findings


UNCAPPED_NOTE = (
    "the ledger does not record max_tokens per call, so uncapped outputs cannot be told apart from "
    "capped ones; `tokenomy plan savings` prices capping outputs at each task's p95"
)
