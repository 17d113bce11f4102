"""What-if savings on ledger traffic: each lever alone, then compounded without double counting.

Every event is re-priced with the cost engine under each scenario; the window's saving is scaled
to a 730-hour month. Levers compound in this order — route, cache, cap outputs, batch — each
applied to what the previous ones left, so the compounded saving is never the plain sum.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from datetime import UTC, datetime
from decimal import Decimal
from typing import Any

import numpy as np

from tokenomy.chat_response import Usage
from tokenomy.errors import ConfigError, TokenomyError
from tokenomy.ledger.events import STORAGE_MODE, UsageEvent
from tokenomy.ledger.spend import BILLED_MARKS
from tokenomy.money import usd
from tokenomy.planning.repricing import cached_on, priced_as
from tokenomy.planning.window import short_for_monthly, window_text
from tokenomy.pricing.catalog import default_catalog
from tokenomy.pricing.cost import CACHE_TTLS, compute_cost
from tokenomy.pricing.identifiers import pricing_region

HOURS_PER_MONTH = Decimal(730)
ORDER = ("routing", "caching", "output_caps", "batch")
TTL_SECONDS = {"5m": 300, "1h": 3600}
NO_1H_PRICE = "no published 1-hour cache-write price"


@dataclass(frozen=True)
class SavingsInputs:
    """The assumptions behind the what-ifs; all printed with the result."""

    batch_tasks: tuple[str, ...] = ()
    batch_tag: str = "latency_tolerant"
    routing_share: float = 0.0
    cheap_model: str | None = None
    cap_percentile: float = 95.0
    levers: tuple[str, ...] = ORDER
    price_as: str | None = None  # re-price every call as if it ran on this model (e.g. local → Bedrock)
    cache_ttl: str = "5m"  # the caching lever's cache lifetime: 5m, or 1h at the 1-hour cache-write price


@dataclass
class _Scenario:
    model: str
    region: str | None
    input_tokens: int
    output_tokens: int
    cache_read: int
    cache_write: int
    mode: str
    weight: Decimal = Decimal(1)
    cache_write_1h: int = 0  # tokens written with a 1-hour TTL: the call's own, and the caching lever's
    one_call: bool = True  # one metered call (long-context prices apply), not a bill's day of many calls
    notes: list[str] = field(default_factory=list)


def cache_plan(events: list[UsageEvent], cache_ttl: str = "5m") -> dict[str, str]:
    """Walk arrival times per (model, prefix): 'write' on a miss, 'read' within the TTL, '' if not cacheable.
    With `cache_ttl="1h"` the TTL is an hour and models without a 1-hour write price are not cacheable."""
    catalog = default_catalog()
    last_seen: dict[tuple, float] = {}
    plan: dict[str, str] = {}
    for event in sorted(events, key=lambda e: e.ts):
        plan[event.event_id] = ""
        if not event.prefix_hash or not event.prefix_tokens or event.cache_read_tokens or event.cache_write_tokens:
            continue
        try:
            entry = catalog.lookup(event.model, pricing_region(event.region))
        except TokenomyError:
            continue
        if not entry.has_cache or event.prefix_tokens < (entry.cache_min_tokens or 0):
            continue
        if cache_ttl == "1h" and entry.cache_write_1h is None:
            continue
        key = (event.model, event.prefix_hash)
        now = event.ts.timestamp()
        ttl = TTL_SECONDS["1h"] if cache_ttl == "1h" else entry.cache_ttl_seconds or TTL_SECONDS["5m"]
        previous = last_seen.get(key)
        plan[event.event_id] = "read" if previous is not None and now - previous <= ttl else "write"
        last_seen[key] = now  # a hit refreshes the TTL
    return plan


def _price(s: _Scenario) -> Decimal:
    region = pricing_region(s.region)
    cache_write, one_hour = s.cache_write, s.cache_write_1h
    if one_hour and default_catalog().lookup(s.model, region).cache_write_1h is None:
        cache_write, one_hour = cache_write + one_hour, 0  # a routing target with no 1-hour cache writes a 5-minute one
    # One pricing of the whole call: its 1-hour writes (its own, or the caching lever's) at the 1-hour price, and a
    # metered call's prompt over the long-context threshold at the long-context prices, as the ledger priced it. A
    # bill's row is many calls' tokens (`one_call=False`: standard rates).
    usage = Usage(s.input_tokens, s.output_tokens, s.cache_read, cache_write + one_hour, cache_write_1h_tokens=one_hour)
    try:
        return compute_cost(usage, s.model, region, s.mode, one_call=s.one_call).total_usd * s.weight
    except TokenomyError:
        if not s.one_call:
            raise
        # A long prompt with a part the model publishes no long-context price for (cache reads on a price file's
        # model that lists none over its threshold): the standard rates, rather than no what-if at all.
        return compute_cost(usage, s.model, region, s.mode).total_usd * s.weight


def _apply(
    event: UsageEvent, levers: tuple[str, ...], inputs: SavingsInputs, plan: dict[str, str], caps: dict[str, int]
) -> Decimal:
    """Price one event after the given levers, in ORDER. Routing splits the event by expected share."""
    # The call's own 1-hour cache writes stay 1-hour writes (priced at 2x input, not the 5-minute 1.25x).
    one_hour = event.usage.cache_write_1h_tokens
    base = _Scenario(
        event.model,
        event.region,
        event.input_tokens,
        event.output_tokens,
        event.cache_read_tokens,
        event.cache_write_tokens - one_hour,
        event.mode,
        cache_write_1h=one_hour,
        one_call=not _billed(event),
    )
    scenarios = [base]
    if "routing" in levers and inputs.cheap_model and inputs.routing_share > 0 and event.model != inputs.cheap_model:
        share = Decimal(str(inputs.routing_share))
        base.weight = 1 - share
        routed = cached_on(event.usage, inputs.cheap_model)
        scenarios.append(
            _Scenario(
                inputs.cheap_model,
                None,
                routed.input_tokens,
                routed.output_tokens,
                routed.cache_read_tokens,
                routed.cache_write_tokens - routed.cache_write_1h_tokens,
                event.mode,
                share,
                cache_write_1h=routed.cache_write_1h_tokens,
                one_call=not _billed(event),
            )
        )
    total = Decimal(0)
    for s in scenarios:
        if "caching" in levers and plan.get(event.event_id):
            try:
                entry = default_catalog().lookup(s.model, pricing_region(s.region))
            except TokenomyError:
                entry = None
            prefix = min(event.prefix_tokens or 0, s.input_tokens)
            one_hour = inputs.cache_ttl == "1h"
            if (
                entry is not None
                and entry.has_cache
                and prefix >= (entry.cache_min_tokens or 0)
                and not (one_hour and entry.cache_write_1h is None)
            ):
                s.input_tokens -= prefix
                if plan[event.event_id] == "read":
                    s.cache_read += prefix
                elif one_hour:
                    s.cache_write_1h += prefix
                else:
                    s.cache_write += prefix
        if "output_caps" in levers and not _billed(event):
            cap = caps.get(event.task or "*")
            if cap is not None:
                s.output_tokens = min(s.output_tokens, cap)
        if "batch" in levers and _batchable(event, inputs):
            try:
                if default_catalog().lookup(s.model, pricing_region(s.region)).has_batch:
                    s.mode = "batch"
            except TokenomyError:
                pass
        total += _price(s)
    return total


def _why_unpriced(reasons: dict[str, str]) -> str:
    """Why calls cannot be priced, one reason per model (the first of its calls that failed): an unknown model, but
    as often a known one without cache prices whose calls report cache tokens, or without a batch price."""
    shown = [reasons[model] for model in sorted(reasons)[:2]]
    more = len(reasons) - len(shown)
    return " | ".join(shown) + (f" | and {more} more model(s)" if more else "")


def _left_out(skipped: int, priced: int, reasons: dict[str, str]) -> str | None:
    """A warning saying how many calls the projection leaves out and why they cannot be priced, else None."""
    if not skipped:
        return None
    why = _why_unpriced(reasons).removesuffix(".")  # a reason's own period before "; or" read "FILE).; or re-price"
    return (
        f"{skipped} of {skipped + priced} successful calls left out, they cannot be priced: {why}; "
        "or re-price every call with --price-as MODEL"
    )


def _batchable(event: UsageEvent, inputs: SavingsInputs) -> bool:
    return event.mode == "on_demand" and (
        event.task in inputs.batch_tasks or event.tags.get(inputs.batch_tag, "").lower() in ("1", "true", "yes")
    )


def _billed(event: UsageEvent) -> bool:
    """A row of an imported bill: a provider-day's usage, not one call, so no per-call max_tokens shortens it."""
    return event.priced_by in BILLED_MARKS


def output_caps(events: list[UsageEvent], percentile: float) -> dict[str, int]:
    """Per task, the output-token percentile of its calls that a cap would cut the long tail at."""
    caps: dict[str, int] = {}
    by_task: dict[str, list[int]] = {}
    for event in events:
        if not _billed(event):  # a bill's day total among the calls would lift the cap past every real call
            by_task.setdefault(event.task or "*", []).append(event.output_tokens)
    for task, values in by_task.items():
        if len(values) >= 5:
            # Never below the percentile: its ceiling, after rounding away float noise (numpy's p95 of 100, 200, 300,
            # 400 and 1,000 is 879.9999999999999, a cap of 880; int() made it 879, and a p95 of 4.8 a cap of 4).
            caps[task] = math.ceil(round(float(np.percentile(values, percentile)), 6))
    return caps


def what_if(
    events: list[UsageEvent], inputs: SavingsInputs, since: datetime | None = None, until: datetime | None = None
) -> dict:
    """Each lever's projected monthly saving, and the levers compounded in ORDER. The window is [since, until)
    when given (the calls were read from it: its quiet hours are part of what repeats; `since` alone runs up to now),
    else first to last call."""
    # Calls only: a context cache's storage row is what keeping it cost, which no lever changes, and no call.
    events = [e for e in events if e.outcome == "ok" and e.mode != STORAGE_MODE]
    if inputs.cache_ttl not in CACHE_TTLS:
        raise ConfigError(f"--cache-ttl {inputs.cache_ttl}: give one of {', '.join(CACHE_TTLS)}")
    if not 0 <= inputs.cap_percentile <= 100:
        raise ConfigError(f"--cap-percentile {inputs.cap_percentile}: give a percentile between 0 and 100, e.g. 95")
    if inputs.price_as:
        target = default_catalog().lookup(inputs.price_as)  # an unknown model is named as such, not blamed on the data
        events = [priced_as(e, inputs.price_as, target) for e in events]
    if not events:
        raise TokenomyError("the ledger has no successful calls to analyse; record some traffic first")
    priced: list[UsageEvent] = []
    skipped = 0
    unpriced: dict[str, str] = {}  # model -> why its first call could not be priced
    for event in events:
        try:
            compute_cost(event.usage, event.model, pricing_region(event.region), event.mode)
            priced.append(event)
        except TokenomyError as exc:  # its message is the real cause (and its fix), not always "no price"
            skipped += 1
            unpriced.setdefault(event.model, str(exc))
    if not priced:
        raise TokenomyError(
            f"none of the {skipped} successful calls can be priced: {_why_unpriced(unpriced)}; "
            "or re-price every call with --price-as MODEL"
        )
    start = since if since is not None else min(e.ts for e in priced)
    # Hours still to come are no part of the observed window (an --until next month, asked mid-month); --since alone
    # asks for the window up to now (`--since 24h`: the last 24 hours, its quiet tail after the last call included).
    last = max(e.ts for e in priced)
    now = datetime.now(UTC)
    if until is None and since is not None:
        until = now
    end = max(min(until, now), last) if until is not None else last
    hours = max(Decimal(str((end - start).total_seconds())) / 3600, Decimal(1))
    scale = HOURS_PER_MONTH / hours
    refused = _one_hour_refusals(priced, inputs)
    plan = cache_plan(priced, inputs.cache_ttl)
    caps = output_caps(priced, inputs.cap_percentile)
    current = sum(_apply(e, (), inputs, plan, caps) for e in priced)
    recorded = sum((e.cost_usd for e in priced), Decimal(0))
    levers: list[dict[str, Any]] = []
    for lever in inputs.levers:
        after = sum(_apply(e, (lever,), inputs, plan, caps) for e in priced)
        levers.append(
            {
                "lever": lever,
                "monthly_saving_usd": (current - after) * scale,
                "window_saving_usd": current - after,
                "assumption": _assumption(lever, inputs, plan, caps, refused),
            }
        )
    # Only levers that save money on their own are worth applying; compound those, in ORDER.
    applied = tuple(row["lever"] for row in levers if row["monthly_saving_usd"] > 0)
    compounded_after = sum(_apply(e, applied, inputs, plan, caps) for e in priced)
    levers.sort(key=lambda row: row["monthly_saving_usd"], reverse=True)
    return {
        "window_start": start.isoformat().replace("+00:00", "Z"),
        "window_end": end.isoformat().replace("+00:00", "Z"),
        "window_hours": float(hours),
        "observed_window_seconds": (end - start).total_seconds(),
        "window": window_text(start, end),
        "warnings": [
            w
            for w in (
                short_for_monthly(start, end),
                _left_out(skipped, len(priced), unpriced),
                _unlike_recorded(current * scale, recorded * scale, inputs.price_as),
            )
            if w
        ],
        "events": len(priced),
        "events_skipped_unpriced": skipped,
        "current_monthly_cost_usd": current * scale,
        "recorded_monthly_cost_usd": recorded * scale,
        "levers": levers,
        "compounded_order": list(applied),
        "priced_as": inputs.price_as,
        "cache_ttl": inputs.cache_ttl,
        "caching_refused": refused,
        "compounded_monthly_saving_usd": (current - compounded_after) * scale,
        "sum_of_individual_monthly_savings_usd": sum(
            (row["monthly_saving_usd"] for row in levers if row["lever"] in applied), Decimal(0)
        ),
        "assumption": (
            f"the {float(hours):.1f}-hour window repeats for a 730-hour month"
            if hours > 1
            else f"the {window_text(start, end)} of calls, counted as one hour, repeats for a 730-hour month"
        ),
    }


def _unlike_recorded(current: Decimal, recorded: Decimal, price_as: str | None) -> str | None:
    """Say so when the list-price figure every lever is measured against is not what the ledger recorded (a bill's
    or an import's own cost, a negotiated price): by more than 1%, and not because --price-as asked for it."""
    if price_as or abs(current - recorded) <= abs(recorded) / 100:
        return None
    return (
        f"the current cost at list prices, {usd(current, 'amount')} a month, is not the "
        f"{usd(recorded, 'amount')} the ledger recorded for these calls (bills, imported costs and "
        "negotiated prices are not list prices); each lever's saving is measured against the list-price figure"
    )


def _one_hour_refusals(events: list[UsageEvent], inputs: SavingsInputs) -> dict[str, str]:
    """With --cache-ttl 1h: the cacheable models without a 1-hour write price, each with the reason. If no
    model in the window has one, the what-if is refused rather than showing a caching saving of zero."""
    if inputs.cache_ttl != "1h" or "caching" not in inputs.levers:
        return {}
    refused: dict[str, str] = {}
    priced_1h = []
    for model, region in sorted({(e.model, e.region) for e in events}, key=str):
        try:
            entry = default_catalog().lookup(model, pricing_region(region))
        except TokenomyError:
            continue
        if entry.cache_write_1h is not None:
            priced_1h.append(model)
        elif entry.has_cache:
            refused[model] = f"{NO_1H_PRICE} in {entry.region} (source {entry.source}, as of {entry.as_of})"
    if not priced_1h:
        names = ", ".join(sorted(refused)) or "the window's models"
        raise ConfigError(
            f"--cache-ttl 1h: {names} has {NO_1H_PRICE} (none has a 1-hour cache); use --cache-ttl 5m, "
            "re-price with --price-as MODEL that has one, or add the price with a price file"
        )
    return refused


def _assumption(
    lever: str, inputs: SavingsInputs, plan: dict[str, str], caps: dict[str, int], refused: dict[str, str] | None = None
) -> str:
    if lever == "routing":
        if not inputs.cheap_model or not inputs.routing_share:
            return "no routing result given (use --cheap-model and --routing-share from `route eval` or `bench`)"
        return f"{inputs.routing_share:.0%} of calls move to {inputs.cheap_model} at equal tokens and quality"
    if lever == "caching":
        reads = sum(1 for v in plan.values() if v == "read")
        writes = sum(1 for v in plan.values() if v == "write")
        ttl = "a 1-hour TTL at the 1-hour cache-write price" if inputs.cache_ttl == "1h" else "TTL"
        not_cached = "".join(f"; not cached at 1h: {model} ({reason})" for model, reason in (refused or {}).items())
        return (
            f"repeated stable prefixes cached per model minimum and {ttl} along real arrival times: "
            f"{writes} cache writes, {reads} cache reads{not_cached}"
        )
    if lever == "output_caps":
        shown = ", ".join(f"{task}≤{cap}" for task, cap in sorted(caps.items())) or "too few calls per task"
        return (
            f"max_tokens at the p{inputs.cap_percentile:g} of each task's outputs ({shown}); longer answers truncated"
        )
    tasks = ", ".join(inputs.batch_tasks) or "none"
    return f"tasks {tasks} or tag {inputs.batch_tag}=true are latency-tolerant and move to batch prices"
