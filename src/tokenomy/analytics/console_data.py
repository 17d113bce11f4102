"""The console's decision figures: the headline, spend by group against the previous period, budgets, alerts.

Every figure is over the dashboard's filters. "This period" is the selected range (an open end closed at
the first or last day with calls) and "the previous period" the range of equal length just before it.
Budgets are what the gateway enforces (gateway_keys / gateway_teams), spent in the budget's own period
as of the end of the selection; they are read only if those tables exist (reading never creates them).
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from decimal import Decimal
from typing import Any

from tokenomy.analytics.billed import SPEND_EVENTS, provider_sql
from tokenomy.analytics.dashboard_filters import Filters, and_where, money, period, previous, stamp, where
from tokenomy.analytics.reports import tag_pairs_from, tag_value_expr
from tokenomy.errors import UsageError
from tokenomy.ledger.spend import METERED_CALLS
from tokenomy.money import usd

GROUP_ROWS = 50  # the page shows the top N of these
# group-by name -> SQL expression for its label
GROUPS = {
    "model": "model",
    "provider": provider_sql(),  # metered `aws.bedrock` and billed `bedrock` are one provider
    "task": "COALESCE(task, '(none)')",
    "team": "COALESCE(tenant, '(none)')",
    "key": "COALESCE(key_id, '(none)')",
    "route": "COALESCE(route, '(none)')",
    "tier": "COALESCE(tier, '(none)')",
    "mode": "mode",
}
# What a row cost beyond its four token costs: a bill's charges that are not tokens (Google's cache storage, tool
# fees), which an imported bill puts in cost_usd only (analytics/imports/billing.py); zero for a metered call.
OTHER_COST = "cost_usd - input_cost_usd - output_cost_usd - cache_read_cost_usd - cache_write_cost_usd"
# usage type -> cost expression; a batch call's whole cost is "batch", a context cache's storage (mode
# cache_storage, no token costs) is "cache storage" and a bill's other charges "other", so the seven add up to the
# total
USAGE_TYPES = {
    "input": "CASE WHEN mode = 'batch' THEN 0 ELSE input_cost_usd END",
    "output": "CASE WHEN mode = 'batch' THEN 0 ELSE output_cost_usd END",
    "cache read": "CASE WHEN mode = 'batch' THEN 0 ELSE cache_read_cost_usd END",
    "cache write": "CASE WHEN mode = 'batch' THEN 0 ELSE cache_write_cost_usd END",
    "batch": "CASE WHEN mode = 'batch' THEN cost_usd ELSE 0 END",
    "cache storage": "CASE WHEN mode = 'cache_storage' THEN cost_usd ELSE 0 END",
    "other": f"CASE WHEN mode IN ('batch', 'cache_storage') THEN 0 ELSE {OTHER_COST} END",
}


def _now() -> datetime:
    return datetime.now(UTC)


def _spend(store: Any, f: Filters) -> Decimal:
    sql, params = where(store, f)
    return Decimal(store.query(f"SELECT SUM(cost_usd) AS s FROM {SPEND_EVENTS}{sql}", params)[0]["s"] or 0)


def _as_of(f: Filters) -> datetime:
    """The end of the selection, never in the future: budgets and the forecast are as of this moment."""
    return min(f.until, _now()) if f.until else _now()


def _grouped(store: Any, f: Filters, name: str) -> dict[str, dict[str, Any]]:
    if name == "usage type":
        sql, params = where(store, f)
        row = store.query(
            "SELECT "
            + ", ".join(f"SUM({expr}) AS c{i}" for i, expr in enumerate(USAGE_TYPES.values()))
            + f" FROM {SPEND_EVENTS}{sql}",
            params,
        )[0]
        return {label: {"cost": Decimal(row[f"c{i}"] or 0), "calls": None} for i, label in enumerate(USAGE_TYPES)}
    if name == "tag":
        sql, params = where(store, f)
        label, source = f"tag_key || '=' || {tag_value_expr(store.dialect)}", tag_pairs_from(store.dialect)
    else:
        sql, params = where(store, f)
        label, source = GROUPS[name], SPEND_EVENTS
    rows = store.query(
        f"SELECT {label} AS label, SUM(cost_usd) AS cost, {METERED_CALLS} AS calls FROM {source}{sql} "
        f"GROUP BY 1 ORDER BY 2 DESC, 1",
        params,
    )
    return {str(r["label"]): {"cost": Decimal(r["cost"] or 0), "calls": int(r["calls"])} for r in rows}


def breakdown(store: Any, f: Filters) -> dict[str, Any]:
    """Spend in dollars per model, provider, task, tag, team, key, route, tier, mode and usage type, with the
    previous period's spend and the change beside each row (largest first, top 50; group_counts says how many there
    are)."""
    bounds = period(store, f)
    before = previous(f, bounds) if bounds else None
    groups: dict[str, list[dict[str, Any]]] = {}
    counts: dict[str, int] = {}  # how many groups there are in all, beyond the top GROUP_ROWS shown
    for name in [*GROUPS, "tag", "usage type"]:
        now_rows = _grouped(store, f, name)
        counts[name] = len(now_rows)
        then_rows = _grouped(store, before, name) if before else {}
        rows = sorted(now_rows.items(), key=lambda kv: (-kv[1]["cost"], kv[0]))[:GROUP_ROWS]
        groups[name] = [
            {
                "key": key,
                "cost_usd": money(v["cost"]),
                "calls": v["calls"],
                "previous_cost_usd": money(then_rows.get(key, {}).get("cost", Decimal(0))),
                # the change, in Decimal here: the page subtracted two floats, a digit off on large amounts
                "delta_usd": money(v["cost"] - then_rows.get(key, {}).get("cost", Decimal(0))),
            }
            for key, v in rows
        ]
    names = _key_names(store)
    for r in groups["key"]:
        r["name"] = names.get(r["key"])
    return {
        "period": _bounds_json(bounds),
        "previous_period": _bounds_json(bounds and _previous_bounds(bounds)),
        "groups": groups,
        "group_counts": counts,
    }


def _previous_bounds(bounds: tuple[datetime, datetime]) -> tuple[datetime, datetime]:
    start, end = bounds
    return start - (end - start), start


def _bounds_json(bounds: tuple[datetime, datetime] | None) -> dict[str, Any] | None:
    return {"since": stamp(bounds[0]), "until": stamp(bounds[1])} if bounds else None


def _table_exists(store: Any, name: str) -> bool:
    rows = store.query(
        f"SELECT COUNT(*) AS n FROM information_schema.tables WHERE table_name = {store.placeholder}", [name]
    )
    return int(rows[0]["n"]) > 0


def _key_names(store: Any) -> dict[str, str]:
    """Each virtual key's name by its id, so a chart says "research-bot" and not only "855750b3f7c6"."""
    if not _table_exists(store, "gateway_keys"):
        return {}
    return {r["key_id"]: r["name"] for r in store.query("SELECT key_id, name FROM gateway_keys WHERE name IS NOT NULL")}


def _spent_since(store: Any, column: str, value: str, start: datetime, end: datetime) -> Decimal:
    p = store.placeholder
    rows = store.query(
        f"SELECT SUM(cost_usd) AS s FROM usage_events WHERE {column} = {p} AND ts >= {p} AND ts < {p}",
        [value, start, end],
    )
    return Decimal(rows[0]["s"] or 0)


def _used(spent: Decimal, limit: Decimal | None) -> float | None:
    """The share of a budget spent; a $0 budget is used up by any spend (it read as no usage: no alert fired)."""
    if limit is None:
        return None
    if limit == 0:
        return 1.0 if spent > 0 else 0.0
    return float(spent / limit)


def budgets(store: Any, f: Filters) -> dict[str, Any]:
    """Each virtual key and team: spent in its budget period (as of the selection's end) against its budget."""
    from tokenomy.gateway.keys import period_start

    as_of = _as_of(f)
    moment = as_of - timedelta(microseconds=1)  # `until` is exclusive: midnight belongs to the day before
    keys = (
        store.query("SELECT key_id, name, team, budget_usd, period FROM gateway_keys WHERE NOT revoked ORDER BY key_id")
        if _table_exists(store, "gateway_keys")
        else []
    )
    teams: dict[str, Any] = {}
    if _table_exists(store, "gateway_teams"):
        teams = {r["team"]: r for r in store.query("SELECT team, budget_usd, period FROM gateway_teams ORDER BY team")}
    for key in keys:  # a team named only on keys has spend but no budget of its own
        if key["team"] and key["team"] not in teams:
            teams[key["team"]] = {"team": key["team"], "budget_usd": None, "period": "month"}
    if f.tenant or f.key_id:  # a scoped key sees its own team, or only itself
        keys = [k for k in keys if (f.tenant and k["team"] == f.tenant) or k["key_id"] == f.key_id]
        teams = {t: row for t, row in teams.items() if t == f.tenant}

    def row(
        kind: str, ident: str, name: str | None, budget: Any, per: str, column: str, team: str | None = None
    ) -> dict[str, Any]:
        start = period_start(per, moment)
        spent = _spent_since(store, column, ident, start, as_of)
        limit = None if budget is None else Decimal(str(budget))
        return {
            "kind": kind,
            "id": ident,
            "name": name or ident,
            "team": team,
            "period": per,
            "period_start": stamp(start),
            "spent_usd": money(spent),
            "budget_usd": None if limit is None else money(limit),
            "used": _used(spent, limit),
        }

    return {
        "as_of": stamp(as_of),
        "keys": [row("key", k["key_id"], k["name"], k["budget_usd"], k["period"], "key_id", k["team"]) for k in keys],
        "teams": [row("team", t, t, r["budget_usd"], r["period"], "tenant") for t, r in sorted(teams.items())],
    }


def alerts(store: Any, f: Filters, config: Any = None) -> dict[str, Any]:
    """Open alerts as of the selection's end (anomalies, cache drops, routing drift) and budgets overspent; with
    `config` (the gateway's TokenomyConfig) its `budgets:`, `alerts:` settings and routing expectations too, as
    `tokenomy alerts check --config` evaluates them."""
    from tokenomy.analytics.alerts import evaluate

    out = _over_budget(store, f)
    note, anomalies = None, []
    if f.tenant or f.key_id:
        note = "alerts over the whole ledger are for admins; a team or personal key sees its budgets only"
    else:
        anomalies = _anomalies_in_range(store, f)
        rules = ([], None) if config is None else (config.budgets, config.alert_settings())
        for a in evaluate(store, rules[0], now=_as_of(f), settings=rules[1], config=config):
            out.append(
                {
                    "kind": a["kind"],
                    "subject": a["subject"],
                    "message": a["message"],
                    "when": a.get("day") or a.get("week") or a.get("month"),
                }
            )
    return {"alerts": out, "anomalies": anomalies, "as_of": stamp(_as_of(f)), "note": note}


def _anomalies_in_range(store: Any, f: Filters) -> list[dict[str, Any]]:
    """Spend spikes and drifts per model of the filtered calls on days of the selected period (history, not only
    what is open)."""
    from tokenomy.analytics.anomalies import find_anomalies

    bounds = period(store, f)
    if bounds is None:
        return []
    first, end = bounds[0].date().isoformat(), bounds[1].date().isoformat()
    sql, params = and_where(store, f)  # the provider, model, task and tag filters; the history is every day before
    found = [
        a
        for a in find_anomalies(store, by="model", until=min(bounds[1], _now()), filter_sql=sql, filter_params=params)
        if first <= a.day < end
    ]
    return [
        {
            "kind": a.kind,
            "model": a.key,
            "day": a.day,
            "actual_usd": money(Decimal(repr(a.actual_usd))),
            "expected_low_usd": money(Decimal(repr(max(a.expected_low_usd, 0.0)))),
            "expected_high_usd": money(Decimal(repr(a.expected_high_usd))),
        }
        for a in sorted(found, key=lambda a: a.day, reverse=True)
    ]


def _over_budget(store: Any, f: Filters) -> list[dict[str, Any]]:

    b = budgets(store, f)
    return [
        {
            "kind": f"{r['kind']}_budget",
            "subject": f"{r['kind']} {r['name']}",
            # a lifetime budget's period has no start to name (its period_start is the epoch: "(1970-01-01)")
            "when": None if r["period"] == "total" else r["period_start"][:10],
            "message": f"spent {usd(r['spent_usd'], 'amount')} of {usd(r['budget_usd'], 'amount')} "
            + ("in total" if r["period"] == "total" else f"this {r['period']}"),  # a lifetime budget has no "this"
        }
        for r in [*b["keys"], *b["teams"]]
        if r["used"] is not None and r["used"] >= 1
    ]


def _month_so_far(store: Any, month: str, as_of: str, sql: str, params: tuple) -> list[dict[str, Any]]:
    """Cumulative spend per day of the forecast month before `as_of` (what the forecast line continues)."""
    start = datetime.fromisoformat(month + "-01").replace(tzinfo=UTC)
    cutoff = datetime.fromisoformat(as_of).replace(tzinfo=UTC)
    p = store.placeholder
    rows = store.query(
        f"SELECT CAST(ts AS DATE) AS day, SUM(cost_usd) AS s FROM {SPEND_EVENTS} WHERE ts >= {p} AND "
        f"ts < {p}{sql} GROUP BY 1",
        [start, cutoff, *params],
    )
    spent = {r["day"].isoformat(): Decimal(r["s"] or 0) for r in rows}
    out, total, day = [], Decimal(0), start
    while day < cutoff:
        total += spent.get(day.date().isoformat(), Decimal(0))
        out.append({"day": day.date().isoformat(), "cumulative_usd": money(total)})
        day += timedelta(days=1)
    return out


def headline(store: Any, f: Filters, config: Any = None) -> dict[str, Any]:
    """Spend this period against the previous one, the month-end forecast with its interval and the budget
    line, and how many alerts are open (`config`: the gateway's, whose alert rules count, as in `alerts`)."""
    from tokenomy.analytics.forecast import month_end_forecast

    bounds = period(store, f)
    out: dict[str, Any] = {"period": _bounds_json(bounds), "spend_usd": money(_spend(store, f))}
    if bounds:
        before = previous(f, bounds)
        prior = _spend(store, before)
        current = Decimal(out["spend_usd"])
        out.update(
            previous_period=_bounds_json(_previous_bounds(bounds)),
            previous_spend_usd=money(prior),
            delta_usd=money(current - prior),
            delta_pct=float((current - prior) / prior) if prior else None,
        )
    sql, params = and_where(store, f)
    try:
        fc = month_end_forecast(store, now=_as_of(f), filter_sql=sql, filter_params=params)
        out["forecast"] = {
            "month": fc.month,
            "as_of": fc.as_of,
            "forecast_usd": money(fc.forecast_usd),
            "low_usd": money(fc.low_usd),
            "high_usd": money(fc.high_usd),
            "level": fc.level,
            "month_to_date_usd": money(fc.month_to_date_usd),
            "method": fc.method,
            "days": _month_so_far(store, fc.month, fc.as_of, sql, params),
        }
    except UsageError as exc:
        out["forecast"] = None
        out["forecast_note"] = str(exc).split(". Pass")[0]
    b = budgets(store, f)
    # The line is what the monthly budgets allow together: each team's, and each key's outside a team with a monthly
    # budget (a team with no budget of its own caps nothing: its keys' budgets are the limit the gateway enforces).
    capped = {t["id"] for t in b["teams"] if t["budget_usd"] and t["period"] == "month"}
    monthly = [Decimal(r["budget_usd"]) for r in b["teams"] if r["budget_usd"] and r["period"] == "month"]
    monthly += [
        Decimal(r["budget_usd"])
        for r in b["keys"]
        if r["budget_usd"] and r["period"] == "month" and r.get("team") not in capped
    ]
    out["monthly_budget_usd"] = money(sum(monthly)) if monthly else None
    out["open_alerts"] = len(alerts(store, f, config)["alerts"])
    return out
