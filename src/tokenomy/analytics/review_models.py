"""Review, part 2: for each model in use, the catalog's newer or cheaper models and what this period's
traffic would have cost on each.

Candidates come from the same provider, named as the traffic would call them (Bedrock traffic through a `us.`,
`global.`, ... inference profile is offered that profile of each candidate where the catalog prices it, at its
price: `callable_id`): the same line (pricing/families.py) released later ("upgrade")
or cheaper ("same line, cheaper"), and cheaper models of other lines ("cheaper, other line": those need a
quality check before a switch — `tokenomy review --bench`); for the newest cheaper line of the same vendor,
what moving each task would save ("Sonnet for ticket-classification → Haiku"). The traffic is re-priced
token for token with the cost engine, as the ledger priced each call: 1-hour cache writes at the 1-hour price (a
5-minute write on a model without one), a prompt over a model's long-context threshold at its long-context prices
(the standard rates for a part it has none for, and for a bill's row, many calls' tokens); cache tokens go to input
on a model without cache prices, batch traffic to on-demand on a model without batch prices. Today's cost is the
model in use re-priced the same way, not the recorded cost (which holds what no candidate is priced with: a
priority or flex tier, server tools, a bill's own figures), so each candidate is compared like for like. Provisioned
traffic is left out (it is paid per unit-hour, not per token). A same-line upgrade that costs no more than today is
a finding: the model is superseded (unless it must move anyway: a lifecycle finding). What the catalog's lifecycle
dates leave out (review_lifecycle.py), each listed apart and not proposed: a model its provider has retired in a region
the traffic runs in (`retired`: every call to it would fail), or moved to Legacy there (Bedrock), deprecated
(Anthropic, OpenAI) or retiring within RETIRING_NOTICE_DAYS (`legacy`); one on a platform that gives no date for it
whose vendor has retired or deprecated it on its own API (`vendor_retired`: Bedrock's Claude 3.5 Sonnet v2); and a
model priced only from data past WARN_DAYS when a newer model of its vendor with current prices is a candidate or the
model in use (`outdated`: Claude Instant's 2025 prices beside Claude Haiku 4.5's). A candidate with a retirement date
further ahead carries it (`retires_on`). A model in use that its provider (or, where the platform gives no date, its
vendor) has retired, or retires within RETIRING_NOTICE_DAYS, is a finding naming the model to move to
(`lifecycle_finding`).
"""

from __future__ import annotations

from datetime import date, datetime
from decimal import Decimal
from typing import Any

from tokenomy.analytics.billed import SPEND_EVENTS
from tokenomy.analytics.review_lifecycle import (
    RETIRING_NOTICE_DAYS,
    entry_or_none,
    lifecycle_dates,
    lifecycle_finding,
    vendor_lifecycle,
    vendor_note,
)
from tokenomy.chat_response import Usage
from tokenomy.errors import TokenomyError
from tokenomy.ledger.events import CACHE_WRITE_1H_TAG
from tokenomy.ledger.rollups import tag_count
from tokenomy.ledger.spend import METERED_CALLS, is_billed_sql, is_metered_sql
from tokenomy.pricing.catalog import default_catalog, split_inference_profile
from tokenomy.pricing.cost import compute_cost
from tokenomy.pricing.families import model_line
from tokenomy.pricing.freshness import WARN_DAYS, age_days
from tokenomy.pricing.identifiers import parse_model_id, pricing_region
from tokenomy.pricing.lifecycle import utc_today

OTHER_LINES = 2  # cheapest other-vendor candidates listed per model (same-vendor lines are all listed)


# A call's prompt: what a long-context threshold is compared with (pricing/cost.py `_long_context`).
PROMPT_SQL = "(COALESCE(input_tokens, 0) + COALESCE(cache_read_tokens, 0) + COALESCE(cache_write_tokens, 0))"


def _thresholds(entries: Any) -> set[int]:
    return {e.long_context.above_tokens for e in entries if e is not None and e.long_context is not None}


def usage_groups(store: Any, start: datetime, end: datetime) -> dict[str, list[dict[str, Any]]]:
    """Per model: successful token sums per (task, region, mode, provider, prompt size, cache parts) in [start, end);
    provisioned traffic and context cache storage are paid per hour, not per token, so they are left out.

    Calls are grouped so that a group prices as its calls do one by one: `prompt_size` puts every call of a group on
    the same side of every long-context threshold of the catalog (0: at or under them all, k: over the k-th lowest;
    -1: a bill's row, many calls' tokens, priced at the standard rates), and over a threshold `cache_parts` keeps
    apart calls with and without cache reads, writes and 1-hour writes (a part a model has no long-context price for
    sends the calls with it to the standard rates). `prompt_tokens` is the group's largest prompt."""
    thresholds = _thresholds(default_catalog().entries())
    rows = _groups(store, start, end, sorted(thresholds))
    # A model in use that only the price library knows may have a threshold of its own: group by it too.
    extra = _thresholds(entry_or_none(m, r) for m, r in {(row["model"], row["region"]) for row in rows}) - thresholds
    if extra:
        rows = _groups(store, start, end, sorted(thresholds | extra))
    out: dict[str, list[dict[str, Any]]] = {}
    for row in rows:
        out.setdefault(row["model"], []).append(row)
    return out


def _groups(store: Any, start: datetime, end: datetime, thresholds: list[int]) -> list[dict[str, Any]]:
    ph = store.placeholder
    # 1-hour cache writes are a tag (ledger/events.py CACHE_WRITE_1H_TAG), read only on rows that may have it
    one_hour = (
        f"(CASE WHEN cache_write_tokens > 0 AND tags LIKE {ph} "
        f"THEN LEAST({tag_count(store.dialect, CACHE_WRITE_1H_TAG)}, cache_write_tokens) ELSE 0 END)"
    )
    over = " ".join(f"WHEN prompt > {t} THEN {k}" for k, t in reversed(list(enumerate(thresholds, 1))))
    size = f"(CASE WHEN {is_billed_sql()} THEN -1 {over} ELSE 0 END)"
    parts = (
        f"(CASE WHEN {is_metered_sql()} AND prompt > {thresholds[0]} THEN "
        "(CASE WHEN cache_read_tokens > 0 THEN 1 ELSE 0 END) + (CASE WHEN cache_write_tokens > 0 THEN 2 ELSE 0 END) "
        "+ (CASE WHEN one_hour > 0 THEN 4 ELSE 0 END) ELSE 0 END)"
        if thresholds
        else "0"
    )
    return store.query(
        f"SELECT model, COALESCE(task, '(none)') AS task, region, mode, provider, {size} AS prompt_size, "
        f"{parts} AS cache_parts, {METERED_CALLS} AS calls, SUM(input_tokens) AS input_tokens, "
        "SUM(output_tokens) AS output_tokens, SUM(cache_read_tokens) AS cache_read_tokens, "
        "SUM(cache_write_tokens) AS cache_write_tokens, SUM(one_hour) AS cache_write_1h_tokens, "
        "MAX(prompt) AS prompt_tokens, SUM(cost_usd) AS cost_usd "
        f"FROM (SELECT *, {PROMPT_SQL} AS prompt, {one_hour} AS one_hour FROM {SPEND_EVENTS} "
        f"WHERE ts >= {ph} AND ts < {ph} AND outcome = 'ok' AND mode NOT IN ('provisioned', 'cache_storage')) AS e "
        "GROUP BY 1, 2, 3, 4, 5, 6, 7 ORDER BY 1, 2, 3, 4, 5, 6, 7",
        [f'%"{CACHE_WRITE_1H_TAG}"%', start, end],
    )


def reprice(groups: list[dict[str, Any]], model: str) -> Decimal:
    """What these usage groups cost on `model` (see the module docstring for cache and batch)."""
    return reprice_dated(groups, model)[0]


def reprice_dated(groups: list[dict[str, Any]], model: str, warn_old: bool = True) -> tuple[Decimal, str]:
    """`reprice`, with the as-of date of the oldest price it used (a candidate's row shows it rather than the
    log warning of a price past 180 days: the review compares every model of a provider, retired ones too)."""
    catalog = default_catalog()
    total = Decimal(0)
    oldest = ""
    for g in groups:
        region = pricing_region(g["region"])
        try:
            entry = catalog.lookup(model, region)
        except TokenomyError:
            region, entry = None, catalog.lookup(model)
        tokens_in, tokens_out = int(g["input_tokens"] or 0), int(g["output_tokens"] or 0)
        read, write = int(g["cache_read_tokens"] or 0), int(g["cache_write_tokens"] or 0)
        one_hour = int(g.get("cache_write_1h_tokens") or 0)
        if not entry.has_cache:
            tokens_in, read, write, one_hour = tokens_in + read + write, 0, 0, 0
        elif entry.cache_write_1h is None:
            one_hour = 0  # a model with no 1-hour cache writes them for 5 minutes
        mode = g["mode"] if g["mode"] != "batch" or entry.has_batch else "on_demand"
        usage = Usage(tokens_in, tokens_out, read, write, cache_write_1h_tokens=one_hour)
        # metered calls, each on the same side of every long-context threshold as the group's largest prompt
        prompt = g.get("prompt_tokens") if int(g.get("prompt_size") or 0) >= 0 else None
        prompt = int(prompt) if prompt is not None else None
        try:
            cost = compute_cost(usage, model, region, mode, warn_old=warn_old, prompt_tokens=prompt)
        except TokenomyError:
            if prompt is None:
                raise
            # a long prompt with a part the model has no long-context price for (a price file's model listing no
            # cache prices over its threshold): the standard rates, as planning/savings.py prices such a call
            cost = compute_cost(usage, model, region, mode, warn_old=warn_old)
        total += cost.total_usd
        oldest = min(oldest or cost.as_of, cost.as_of)
    return total, oldest


def _current_successor(row: dict[str, Any], line: Any, rows: list[tuple[dict[str, Any], Any]], today: date) -> Any:
    """For a candidate priced only from data past WARN_DAYS, the newest candidate released after it and priced from
    current data that does its job: of its line, or for a cheaper model of another line, of its vendor (Claude
    Haiku 4.5 for Claude Instant, priced from 2025 data); None for a candidate with current prices or no such one
    (an upgrade stands while no newer release of its line is current: Mistral Large 2407 for 2402)."""
    if (age_days(row["prices_as_of"], today) or 0) <= WARN_DAYS:
        return None
    newer = [
        (other["released"], other["model"])
        for other, other_line in rows
        if (other_line.line == line.line or (row["kind"] == "cheaper, other line" and other_line.vendor == line.vendor))
        and other_line.released > line.released
        and (age := age_days(other["prices_as_of"], today)) is not None
        and age <= WARN_DAYS
    ]
    return max(newer)[1] if newer else None


def _catalog_models(provider: str) -> list[str]:
    """Base (non-profile) model ids of one provider in the catalog."""
    catalog = default_catalog()
    return [
        m for m in catalog.models() if split_inference_profile(m)[0] == m and catalog.lookup(m).provider == provider
    ]


def callable_id(model: str, profile: str | None) -> str:
    """The id traffic sent through a cross-region inference profile (`us.`, `global.`, ...) calls `model` by: the same
    profile of it where the catalog prices that profile (a `global.` one only where it has an entry of its own, its
    price not the base model's), else the base id. Claude 4 and later take on-demand calls only through a profile:
    Bedrock answers their base id "Invocation of model ID ... with on-demand throughput isn't supported"."""
    if profile is None:
        return model
    profiled = f"{profile}.{model}"
    catalog = default_catalog()
    if profile == "global":
        return profiled if profiled in catalog.models() else model
    try:
        catalog.lookup(profiled)
    except TokenomyError:  # the catalog has no price in the profile's source region
        return model
    return profiled


def price_date_note(candidate: dict[str, Any]) -> str:
    """A note such as " (prices as of 2025-10-15)" for a candidate priced from data past 180 days, else "" (also
    for a review saved before candidates carried the date)."""
    as_of = candidate.get("prices_as_of") or ""
    age = age_days(as_of)
    return f" (prices as of {as_of[:10]})" if age is not None and age > WARN_DAYS else ""


def candidates_for(
    model: str, groups: list[dict[str, Any]], factor: Decimal, today: date | None = None
) -> dict[str, Any]:
    """The model's line, today's (re-priced) cost, and each candidate's cost for the same traffic. A model retired by
    `today` (UTC) in a region of the traffic is not a candidate: it is listed in `retired` with its date; nor is one
    Legacy or deprecated there by then (`legacy`), nor one priced only from old data beside a newer current model of
    its vendor (`outdated`)."""
    today = today or utc_today()
    line = model_line(model)
    try:
        entry = default_catalog().lookup(model)
        current, current_as_of = reprice_dated(groups, model)
    except TokenomyError as exc:
        return {"model": model, "line": None, "candidates": [], "note": f"not priced in the catalog ({exc})"}
    info: dict[str, Any] = {
        "model": model,
        "provider": entry.provider,
        "family": entry.family,
        "line": line.line if line else None,
        "released": line.released.isoformat() if line else None,
        "calls": sum(int(g["calls"]) for g in groups),
        "current_usd": current,
        "current_monthly_usd": current * factor,
        "candidates": [],
        "retired": [],
        "legacy": [],
        "vendor_retired": [],
        "outdated": [],
    }
    if line is None:
        info["note"] = "not in the curated model lines (pricing/families.py): no upgrade candidates"
        return info
    regions = {g["region"] for g in groups} or {None}
    profile = parse_model_id(model, strict=False).profile
    proposable: list[tuple[dict[str, Any], Any]] = []
    for other in _catalog_models(entry.provider):
        other_line = model_line(other)
        if other == model or other_line is None or split_inference_profile(model)[0] == other:
            continue
        if other_line.kind != line.kind:  # an embedding model is no cheaper chat model, nor the reverse
            continue
        offered = callable_id(other, profile)  # what this traffic would call, priced as it would be billed
        try:
            cost, as_of = reprice_dated(groups, offered, warn_old=False)
        except TokenomyError:
            continue
        row = {
            "model": offered,
            "line": other_line.line,
            "released": other_line.released.isoformat(),
            "prices_as_of": as_of,
            "cost_usd": cost,
            "monthly_usd": cost * factor,
            "monthly_change_usd": (cost - current) * factor,
        }
        if other_line.line == line.line and other_line.released > line.released:
            kind = "upgrade"
        elif other_line.line == line.line and cost < current:
            kind = "same line, cheaper"
        elif other_line.line != line.line and cost < current:
            kind = "cheaper, other line"
        else:
            continue
        # the dates of the regions this traffic runs in: a model its provider retired in one is still served in
        # another (Bedrock's Claude 3 Haiku in ca-central-1), and a move is proposed only where it can be made
        retired_on, legacy_on = lifecycle_dates(other, regions, "retired_on"), lifecycle_dates(other, regions)
        if retired_on is not None and date.fromisoformat(retired_on) <= today:  # every call to it fails
            info["retired"].append({"model": other, "kind": kind, "retired_on": retired_on})
            continue
        if legacy_on is not None and date.fromisoformat(legacy_on) <= today:  # on its way out: no move to make
            info["legacy"].append({"model": other, "kind": kind, "deprecated_on": legacy_on, "retires_on": retired_on})
            continue
        if retired_on is not None and (date.fromisoformat(retired_on) - today).days <= RETIRING_NOTICE_DAYS:
            # a move to it would be next quarter's retirement finding
            info["legacy"].append({"model": other, "kind": kind, "retires_on": retired_on})
            continue
        vendor = vendor_lifecycle(other, today) if retired_on is legacy_on is None else None
        if vendor is not None:  # the platform gives no date; its vendor has retired or deprecated the model
            info["vendor_retired"].append({"model": other, "kind": kind, "note": vendor_note(vendor, today)})
            continue
        if retired_on is not None:
            row["retires_on"] = retired_on
        proposable.append(({**row, "kind": kind}, other_line))
    same: list[dict[str, Any]] = []
    others: list[dict[str, Any]] = []
    # The model in use is a current model of its vendor too: Claude Instant, priced from 2025 data, is no move for
    # Claude Haiku 4.5's traffic even when no other current Claude model is cheaper.
    in_use = ({"model": model, "released": line.released.isoformat(), "prices_as_of": current_as_of}, line)
    for row, other_line in proposable:
        newer = _current_successor(row, other_line, [*proposable, in_use], today)
        if newer is not None:
            info["outdated"].append({**row, "newer": newer})
        elif row["kind"] != "cheaper, other line" or other_line.vendor == line.vendor:
            same.append(row)
        else:
            others.append(row)
    others.sort(key=lambda r: (r["cost_usd"], r["model"]))
    cheaper_sibling = [r for r in same if r["kind"] == "cheaper, other line"]
    if (
        cheaper_sibling
    ):  # e.g. "Sonnet for ticket-classification → Haiku": what moving each task to its newest release would save
        # the newest cheaper line (Haiku 4.5 rather than Claude 3 Haiku), cheapest among equals
        target = min(cheaper_sibling, key=lambda r: (-int(str(r["released"]).replace("-", "")), r["cost_usd"]))
        info["per_task"] = []
        for task in sorted({g["task"] for g in groups}):
            mine = [g for g in groups if g["task"] == task]
            now_cost, then_cost = reprice(mine, model), reprice_dated(mine, target["model"], warn_old=False)[0]
            info["per_task"].append(
                {
                    "task": task,
                    "to": target["model"],
                    "prices_as_of": target["prices_as_of"],
                    "monthly_usd": now_cost * factor,
                    "monthly_saving_usd": (now_cost - then_cost) * factor,
                }
            )
        info["per_task"].sort(key=lambda r: (-r["monthly_saving_usd"], r["task"]))
    order = {"upgrade": 0, "same line, cheaper": 1, "cheaper, other line": 2}
    info["candidates"] = (
        sorted(same, key=lambda r: (order[str(r["kind"])], r["cost_usd"], r["model"])) + others[:OTHER_LINES]
    )
    return info


def models_section(
    store: Any, start: datetime, end: datetime, factor: Decimal, today: date | None = None
) -> dict[str, Any]:
    """Every model in use with its candidates (none retired by `today`, UTC); findings for models a cheaper-or-equal
    upgrade supersedes."""
    today = today or utc_today()
    by_model = usage_groups(store, start, end)
    in_use = [candidates_for(model, groups, factor, today) for model, groups in sorted(by_model.items())]
    findings = [
        found
        for info in in_use
        if (
            found := lifecycle_finding(
                info,
                today,
                {g["region"] for g in by_model[info["model"]]},
                {g["provider"] for g in by_model[info["model"]] if g["provider"]},
            )
        )
        is not None
    ]
    ending = {f["subject"] for f in findings}  # a model that must move anyway is one action, not two
    for info in in_use:
        upgrades = [c for c in info["candidates"] if c["kind"] == "upgrade" and c["cost_usd"] <= info["current_usd"]]
        if not upgrades or info["model"] in ending:
            continue
        # the newest release that costs no more than today (the cheapest among same-day releases)
        best = min(upgrades, key=lambda c: (-int(c["released"].replace("-", "")), c["cost_usd"]))
        saving = (info["current_usd"] - best["cost_usd"]) * factor
        findings.append(
            {
                "kind": "model_superseded",
                "subject": info["model"],
                "model": info["model"],
                "to": best["model"],
                "monthly_usd": saving,
                "message": f"{info['model']} ({info['released']}) is superseded by {best['model']} "
                f"({best['released']}, same line {info['line']}) at "
                f"{'a lower' if saving > 0 else 'the same'} price for this traffic",
                "apply": f"in tokenomy.yaml, set `model: {best['model']}` wherever `model: {info['model']}` is used "
                f"(and in code that hard-codes it); check quality first: tokenomy review --bench TASKS.yaml",
            }
        )
    return {"in_use": in_use, "findings": findings}
