"""Review, the lifecycle part: what the catalog's model lifecycle dates (pricing/lifecycle.py) mean for a review.
A candidate its provider retired, or moved to Legacy (Bedrock) or deprecated (Anthropic, OpenAI), in a region its
traffic runs in is not proposed (`review_models.candidates_for` lists it apart, said in `not_proposed_line`); a model
in use that its provider retired, or retires within RETIRING_NOTICE_DAYS, is a finding naming the model to move to
(`lifecycle_finding`). Dates are read for the regions the traffic ran in: Bedrock retires a model region by region
(Claude 3 Haiku is still served in ca-central-1).

Where a platform's entry for a model carries no lifecycle date in any region (the catalog has none of Bedrock's for
Claude 3.5 Sonnet v1 and v2 or Claude 3.7 Sonnet), the dates of the same model on its vendor's own API stand in
(`vendor_lifecycle`): a model Anthropic has deprecated or retired is not proposed on Bedrock either (AWS moved Claude
3.5 Sonnet v2 to Legacy too), and one in use is said to be due for replacement, naming the vendor's date and that
the platform's own may differ. A platform that gives dates for the model (Claude 3 Haiku, served in ca-central-1)
keeps its own.
"""

from __future__ import annotations

from collections.abc import Iterable
from datetime import date
from typing import Any

from tokenomy.errors import TokenomyError
from tokenomy.pricing.catalog import default_catalog, split_inference_profile
from tokenomy.pricing.families import model_line
from tokenomy.pricing.identifiers import pricing_region
from tokenomy.pricing.lifecycle import LIFECYCLE_DATES, LIFECYCLE_PROVIDERS

# How far ahead a model in use that its provider retires is a finding: a quarter, the review's default period (the
# notice providers give runs from 60 days, Anthropic's, to six months, Bedrock's Legacy period).
RETIRING_NOTICE_DAYS = 90


def entry_or_none(model: str, region: str | None) -> Any:
    try:
        return default_catalog().lookup(model, pricing_region(region))
    except TokenomyError:
        return None


def lifecycle_dates(model: str, regions: Iterable[str | None], field: str = "deprecated_on") -> str | None:
    """The earliest of `model`'s `field` (deprecated_on: Legacy on Bedrock; retired_on) over the `regions` traffic ran
    in; a region the catalog lacks for it has its default region's, as its traffic is priced (`reprice`)."""
    dates = [getattr(entry_or_none(model, r) or entry_or_none(model, None), field, None) for r in regions]
    return min((d for d in dates if d is not None), default=None)


def vendor_lifecycle(model: str, today: date) -> dict[str, str] | None:
    """For a model on a platform whose catalog entry gives no lifecycle date in any region, the vendor's own API's
    dates, when the vendor has deprecated or retired by `today` the same model (same line and release: Anthropic's
    claude-3-5-sonnet-20241022 for Bedrock's anthropic.claude-3-5-sonnet-20241022-v2:0) or, where its own API lists it
    no more, a later release of its line (vendors retire the older first): {"vendor_model", "provider", "same",
    "deprecated_on"?, "retired_on"?}. None for the vendor's own entry, a platform with dates of its own, or a model the
    vendor still serves."""
    line = model_line(model)
    own = entry_or_none(model, None)
    if line is None or own is None or own.provider == line.vendor:
        return None
    catalog = default_catalog()
    base = split_inference_profile(own.model)[0]
    if any(getattr(e, d, None) for e in catalog.entries() if e.model in (own.model, base) for d in LIFECYCLE_DATES):
        return None
    ended = []
    for other in catalog.models():
        entry, same = entry_or_none(other, None), model_line(other)
        if entry is None or same is None or entry.provider != line.vendor or same.line != line.line:
            continue
        dates = {d: getattr(entry, d) for d in LIFECYCLE_DATES if getattr(entry, d, None)}
        if same.released >= line.released and dates and min(map(date.fromisoformat, dates.values())) <= today:
            ended.append((same.released, other, entry.provider, dates))
    if not ended:
        return None
    released, other, provider, dates = min(ended)
    return {"vendor_model": other, "provider": provider, "same": str(released == line.released).lower(), **dates}


def vendor_note(found: dict[str, str], today: date) -> str:
    """ "retired by anthropic on 2025-10-28 as claude-3-5-sonnet-20241022", "deprecated by ...", or for a release its
    vendor's API no longer lists, "anthropic retired claude-3-5-sonnet-20241022, a later release of its line, on ...".
    """
    retired = found.get("retired_on")
    ended = "retired" if retired and date.fromisoformat(retired) <= today else "deprecated"
    day = retired if ended == "retired" else found["deprecated_on"]
    if found.get("same") == "false":
        return f"{found['provider']} {ended} {found['vendor_model']}, a later release of its line, on {day}"
    said = f"{ended} by {found['provider']} on {day}"
    return said if found.get("same") == "self" else f"{said} as {found['vendor_model']}"


def retirement_note(candidate: dict[str, Any]) -> str:
    """ " (retires 2026-12-11)" for a candidate its provider will retire, else "" (a review saved before candidates
    carried the date too)."""
    retires = candidate.get("retires_on")
    return f" (retires {retires})" if retires else ""


def not_proposed_line(models: list[dict[str, Any]]) -> str:
    """What the review left out of the candidates of its models in use, and why: "Not proposed, retired by their
    provider: X (retired 2026-04-20), ...", then the Legacy or deprecated ones, then those priced only from old data
    beside a newer model of its vendor with current prices (one entry a model); "" when none was: said, so a model
    missing from the candidates is not taken for an oversight (a review saved before the last two were kept has only
    the first)."""

    def listed(key: str, text: Any) -> str:
        return ", ".join(sorted({text(r) for info in models for r in info.get(key, [])}))

    def outdated() -> str:  # one entry a model, naming each newer model it was left out beside
        newer: dict[tuple[str, str], set[str]] = {}
        for info in models:
            for r in info.get("outdated", []):
                newer.setdefault((r["model"], r["prices_as_of"][:10]), set()).add(r["newer"])
        return ", ".join(
            f"{model} (prices as of {as_of}; newer: {', '.join(sorted(names))})"
            for (model, as_of), names in sorted(newer.items())
        )

    def legacy(r: dict[str, Any]) -> str:
        if not r.get("deprecated_on"):  # retiring within the notice period
            return f"{r['model']} (retires {r['retires_on']})"
        retires = f", retires {r['retires_on']}" if r.get("retires_on") else ""
        return f"{r['model']} (since {r['deprecated_on']}{retires})"

    parts = [
        (
            "Not proposed, retired by their provider",
            listed("retired", lambda r: f"{r['model']} (retired {r['retired_on']})"),
        ),
        (
            f"Not proposed, Legacy, deprecated or retiring within {RETIRING_NOTICE_DAYS} days by their provider",
            listed("legacy", legacy),
        ),
        (
            "Not proposed, retired or deprecated by their vendor where the platform gives no date",
            listed("vendor_retired", lambda r: f"{r['model']} ({r['note']})"),
        ),
        (
            "Not proposed, priced only from old data while a newer model of its vendor has current prices",
            outdated(),
        ),
    ]
    return "; ".join(f"{title}: {names}" for title, names in parts if names)


def dates_apply(model: str, providers: Iterable[str]) -> bool:
    """Whether the catalog's dates for `model` are those of a platform some of its traffic ran on (True too when the
    ledger names none, or the model is not in the catalog)."""
    entry, platforms = entry_or_none(model, None), set(providers)
    return entry is None or not platforms or any(LIFECYCLE_PROVIDERS.get(p, p) == entry.provider for p in platforms)


def platform_dates(model: str, providers: Iterable[str], today: date) -> dict[str, str] | None:
    """For traffic that ran only on platforms the catalog's dates are not for (Azure's deployments of OpenAI's
    models, Vertex AI's of Gemini), the model maker's dates, as `vendor_lifecycle` gives them, when it has deprecated or
    retired the model by `today`; None when some of the traffic ran where the dates apply, or the maker has not."""
    entry = entry_or_none(model, None)
    if entry is None or dates_apply(model, providers):
        return None
    dates = {d: getattr(entry, d) for d in LIFECYCLE_DATES if getattr(entry, d, None)}
    if not dates or min(map(date.fromisoformat, dates.values())) > today:
        return None
    return {"vendor_model": model, "provider": entry.provider, "same": "self", **dates}


def lifecycle_finding(
    info: dict[str, Any], today: date, regions: Iterable[str | None] = (None,), providers: Iterable[str] = ()
) -> dict[str, Any] | None:
    """A finding for a model in use that its provider has retired (every call to it fails) or retires within
    RETIRING_NOTICE_DAYS of `today` (UTC), naming the model to move to: its newest same-line upgrade, else the newest
    candidate of its vendor released after it, else its cheapest candidate. Its dollars are the model's traffic a month:
    what fails unless it moves. The date is the earliest of the `regions` its traffic ran in (a provider may still
    serve it in one: Bedrock's Claude 3 Haiku in ca-central-1); a region the catalog lacks has its default region's,
    as its traffic is priced (`reprice`). Where the platform gives no date, its vendor's (`vendor_lifecycle`)."""
    model = info["model"]
    regions, providers = list(regions), sorted(set(providers))
    retired_on = lifecycle_dates(model, regions, "retired_on")
    if "current_monthly_usd" not in info:
        return None
    vendor = None
    if not dates_apply(model, providers):  # the catalog's dates are the maker's, not the platform's
        vendor, retired_on = platform_dates(model, providers, today), None
    elif retired_on is None and lifecycle_dates(model, regions) is None:
        vendor = vendor_lifecycle(model, today)
    if retired_on is None and vendor is None:
        return None
    days_left = 0 if retired_on is None else (date.fromisoformat(retired_on) - today).days
    if days_left > RETIRING_NOTICE_DAYS:
        return None
    candidates = info["candidates"]
    upgrades = [c for c in candidates if c["kind"] == "upgrade"]
    if not upgrades:  # a newer release of its vendor rather than an older one (gpt-4o-mini for gpt-5-mini)
        line = model_line(model)
        upgrades = [
            c
            for c in candidates
            if line is not None
            and (other := model_line(c["model"])) is not None
            and other.vendor == line.vendor
            and other.released > line.released
        ]
    best = max(upgrades, key=lambda c: (c["released"], -c["cost_usd"])) if upgrades else None
    to = (best or (candidates[0] if candidates else {})).get("model")
    if vendor is not None:
        platform = ", ".join(p for p in providers if LIFECYCLE_PROVIDERS.get(p, p) != vendor["provider"]) or (
            info.get("provider") or "its platform"
        )
        kind = "model_retired_by_vendor"
        said = (
            f"{model}: {vendor_note(vendor, today)}; the price catalog has no date of {platform}'s for it, which "
            f"may serve it longer or stop it without further notice"
        )
    elif days_left <= 0:
        kind, said = "model_retired", f"{model} was retired by its provider on {retired_on}: every call to it fails"
    else:
        kind, said = "model_retiring", f"{model} retires on {retired_on} (in {days_left} days): calls to it fail then"
    move = (
        f"in tokenomy.yaml, set `model: {to}` wherever `model: {model}` is used (and in code that hard-codes it); "
        "check quality first: tokenomy review --bench TASKS.yaml"
        if to
        else "move its traffic to a current model (`tokenomy prices` lists them, marking retired ones)"
    )
    return {
        "kind": kind,
        "subject": model,
        "model": model,
        "to": to,
        "retires_on": retired_on,
        **({"vendor": vendor} if vendor is not None else {}),
        "monthly_usd": info["current_monthly_usd"],
        "message": f"{said}; its traffic (the $/month beside this) moves" + (f" to {to}" if to else ""),
        "apply": move,
    }
