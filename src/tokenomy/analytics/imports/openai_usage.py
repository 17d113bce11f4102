"""OpenAI's organization Usage API (completions) and Costs API, from the API or from saved pages.

Usage results (`organization.usage.completions.result`) give per bucket, model, batch flag, project and service
tier the input tokens (cached ones included), `input_cached_tokens` and output tokens. Cost results
(`organization.costs.result`, daily) give dollars per project and line item, e.g. "gpt-4o-mini-2024-07-18,
input": the model, then the usage type. Both land on the same row (day, project, model, batch), so the
row has OpenAI's tokens and OpenAI's bill; line items that are not a model's tokens (tools, storage,
fine-tuning) become rows of their own with the line item as the model and no tokens. Line items name no service
tier, so a billed row holds all its tiers; usage without its bill is a row per tier, priced at that tier.
"""

from __future__ import annotations

from datetime import UTC, datetime
from decimal import Decimal, InvalidOperation
from pathlib import Path
from typing import Any

from tokenomy.analytics.imports.admin_api import admin_key, buckets, fetch_pages, import_saved
from tokenomy.analytics.imports.billing import BilledRows
from tokenomy.analytics.imports.common import ImportResult
from tokenomy.pricing.entry import priced_tier

OPENAI_API = "https://api.openai.com/v1"
KEY_ENV = "OPENAI_ADMIN_KEY"
SOURCE = "openai-usage"
BUCKET_LIMITS = {"1d": 31, "1h": 168, "1m": 1440}  # the API's largest page per bucket width
# A cost line item's usage type → our token column, checked in order ("cached input" before "input").
LINE_KINDS = [("cached input", "cache_read_tokens"), ("input", "input_tokens"), ("output", "output_tokens")]


def fetch_openai(
    since: datetime, until: datetime, base_url: str | None = None, bucket_width: str = "1d", costs: bool = True
) -> list[tuple[str, dict[str, Any]]]:
    """Usage pages (grouped by model, batch, project and service tier: a flex or priority call is billed at its tier's
    price) and, with `costs`, cost pages (by line item, project)."""
    base = (base_url or OPENAI_API).rstrip("/")
    headers = {"Authorization": f"Bearer {admin_key(KEY_ENV, 'tokenomy import openai-usage')}"}
    window = [("start_time", str(int(since.timestamp()))), ("end_time", str(int(until.timestamp())))]
    usage_url = f"{base}/organization/usage/completions"
    usage = fetch_pages(
        usage_url,
        window
        + [("bucket_width", bucket_width), ("limit", str(BUCKET_LIMITS[bucket_width]))]
        + [("group_by", g) for g in ("model", "batch", "project_id", "service_tier")],
        headers,
    )
    pages = [(usage_url, p) for p in usage]
    if costs:
        costs_url = f"{base}/organization/costs"
        cost_pages = fetch_pages(
            costs_url,
            [*window, ("bucket_width", "1d"), ("limit", "180"), ("group_by", "line_item"), ("group_by", "project_id")],
            headers,
        )
        pages += [(costs_url, p) for p in cost_pages]
    return pages


def _ts(value: Any) -> datetime:
    return datetime.fromtimestamp(int(value), tz=UTC)


def _whole(result: dict[str, Any], name: str) -> int:
    value = result.get(name) or 0
    if not isinstance(value, int) or isinstance(value, bool) or value < 0:
        raise ValueError(f"{name}={value!r} is not a token count (a whole number >= 0)")
    return value


def _usage_line(rows: BilledRows, start: datetime, result: dict[str, Any]) -> None:
    model = result.get("model")
    if not model:
        raise ValueError("no model; fetch the usage with group_by=model")
    total, cached = _whole(result, "input_tokens"), _whole(result, "input_cached_tokens")
    output = _whole(result, "output_tokens")
    if cached > total:
        raise ValueError(f"input_cached_tokens={cached} exceeds input_tokens={total} (cached tokens are part of it)")
    mode, account = "batch" if result.get("batch") else "on_demand", result.get("project_id")
    said = result.get("service_tier")  # with group_by=service_tier: "default", "flex", "priority", ...
    tier = priced_tier(said) if said else None
    shown = tier if tier not in (None, "standard") else said  # "fast" is tagged as the priority it is priced at
    tags = {"service_tier": str(shown)} if said and said not in ("default", "standard") else None
    for kind, tokens in (("input_tokens", total - cached), ("cache_read_tokens", cached), ("output_tokens", output)):
        rows.add(
            start, "openai", str(model), kind=kind, tokens=tokens, tags=tags, mode=mode, account=account,
            service_tier=tier,
        )  # fmt: skip


def _cost_line(rows: BilledRows, start: datetime, result: dict[str, Any]) -> None:
    amount = result.get("amount") or {}
    currency = str(amount.get("currency") or "usd").lower()
    if currency != "usd":
        raise ValueError(f"amount.currency={currency!r}; Tokenomy keeps money in USD")
    try:
        cost = Decimal(str(amount.get("value") or 0))
    except InvalidOperation:
        raise ValueError(f"amount.value={amount.get('value')!r} is not a number") from None
    line_item = str(result.get("line_item") or "")
    model, _, usage = line_item.rpartition(", ")
    usage = usage.lower()
    kind = next((k for text, k in LINE_KINDS if text in usage), None)
    if not model or kind is None:
        # Not a model's tokens (tools, storage, fine-tuning), or costs fetched without group_by=line_item.
        model, kind = line_item or "(all line items)", None
    mode = "batch" if "batch" in usage else "on_demand"
    rows.add(start, "openai", model, kind=kind, cost=cost, mode=mode, account=result.get("project_id"))


def import_openai_usage(pages: list[tuple[str, dict[str, Any]]], source: str = SOURCE) -> ImportResult:
    """Rows from usage and cost pages (as fetched, or read from saved exports)."""
    result = ImportResult(source)
    widths = set()
    rows = BilledRows(SOURCE)
    for place, bucket in buckets(pages):
        try:
            start = _ts(bucket["start_time"])
            widths.add(int(bucket.get("end_time") or 0) - int(bucket["start_time"]))
        except (KeyError, TypeError, ValueError, OverflowError):
            result.problems.append(f"{place}: no start_time (Unix seconds); expected an OpenAI usage or costs bucket")
            continue
        for index, line in enumerate(bucket.get("results") or []):
            kind = str(line.get("object", "")) if isinstance(line, dict) else ""
            try:
                if not isinstance(line, dict):
                    raise ValueError("not a JSON object")
                if kind.startswith("organization.costs") or "amount" in line:
                    _cost_line(rows, start, line)
                elif kind.startswith("organization.usage.completions") or "input_tokens" in line:
                    _usage_line(rows, start, line)
                else:
                    result.skipped += 1  # other usage endpoints' results (embeddings, images ...)
            except ValueError as exc:
                result.problems.append(f"{place}.results[{index}]: {exc}")
    rows.granularity = {86400: "1d", 3600: "1h", 60: "1m"}.get(widths.pop()) if len(widths) == 1 else None
    rows.events(result)
    return result


def import_openai_files(paths: list[str | Path]) -> ImportResult:
    return import_saved(paths, import_openai_usage)
