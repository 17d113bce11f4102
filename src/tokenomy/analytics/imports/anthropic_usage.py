"""Anthropic's Admin API usage report (`usage_report/messages`) and cost report, from the API or saved pages.

Usage results give per bucket, model and service tier `uncached_input_tokens`, `cache_creation`
(`ephemeral_5m_input_tokens`, `ephemeral_1h_input_tokens`), `cache_read_input_tokens` and `output_tokens`.
Cost results (daily, grouped by description) give `amount` in cents as a decimal string per model, service
tier and token type. Both land on the same row (day, workspace, model, tier), so the row carries
Anthropic's tokens and Anthropic's bill; non-token costs (web search, code execution) are rows of their own.
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

ANTHROPIC_API = "https://api.anthropic.com/v1"
KEY_ENV = "ANTHROPIC_ADMIN_KEY"
SOURCE = "anthropic-usage"
BUCKET_LIMITS = {"1d": 31, "1h": 168, "1m": 1440}
TOKEN_TYPES = {
    "uncached_input_tokens": "input_tokens",
    "output_tokens": "output_tokens",
    "cache_read_input_tokens": "cache_read_tokens",
    "cache_creation.ephemeral_5m_input_tokens": "cache_write_tokens",
    "cache_creation.ephemeral_1h_input_tokens": "cache_write_tokens",
}


def _rfc3339(value: datetime) -> str:
    return value.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def fetch_anthropic(
    since: datetime, until: datetime, base_url: str | None = None, bucket_width: str = "1d", costs: bool = True
) -> list[tuple[str, dict[str, Any]]]:
    """Usage pages (grouped by model, service tier and workspace) and, with `costs`, cost report pages."""
    base = (base_url or ANTHROPIC_API).rstrip("/")
    headers = {"x-api-key": admin_key(KEY_ENV, "tokenomy import anthropic-usage"), "anthropic-version": "2023-06-01"}
    window = [("starting_at", _rfc3339(since)), ("ending_at", _rfc3339(until))]
    usage_url = f"{base}/organizations/usage_report/messages"
    usage = fetch_pages(
        usage_url,
        [*window, ("bucket_width", bucket_width), ("limit", str(BUCKET_LIMITS[bucket_width]))]
        + [("group_by[]", g) for g in ("model", "service_tier", "workspace_id")],
        headers,
    )
    pages = [(usage_url, p) for p in usage]
    if costs:
        cost_url = f"{base}/organizations/cost_report"
        cost_pages = fetch_pages(
            cost_url, [*window, ("group_by[]", "workspace_id"), ("group_by[]", "description")], headers
        )
        pages += [(cost_url, p) for p in cost_pages]
    return pages


def _time(value: Any) -> datetime:
    ts = datetime.fromisoformat(str(value).replace("Z", "+00:00"))
    return ts.replace(tzinfo=UTC) if ts.tzinfo is None else ts.astimezone(UTC)


def _whole(value: Any, name: str) -> int:
    value = value or 0
    if not isinstance(value, int) or isinstance(value, bool) or value < 0:
        raise ValueError(f"{name}={value!r} is not a token count (a whole number >= 0)")
    return value


def _mode(tier: Any) -> tuple[str, dict[str, str] | None]:
    """Batch is its own mode; priority and flex are on-demand calls at another tier (kept as a tag)."""
    if tier == "batch":
        return "batch", None
    return "on_demand", ({"service_tier": str(tier)} if tier and tier != "standard" else None)


def _tier(tier: Any) -> str | None:
    """The on-demand tier a line's usage or cost is priced at (its report names one on every token line; batch is a
    mode, at the standard tier), None where it names none (a report not grouped by service tier)."""
    return priced_tier(tier) if tier else None


def _usage_line(rows: BilledRows, start: datetime, result: dict[str, Any]) -> None:
    model = result.get("model")
    if not model:
        raise ValueError("no model; fetch the usage report with group_by[]=model")
    creation = result.get("cache_creation") or {}
    if not isinstance(creation, dict):
        raise ValueError("cache_creation is not an object")
    write_5m = _whole(creation.get("ephemeral_5m_input_tokens"), "cache_creation.ephemeral_5m_input_tokens")
    write_1h = _whole(creation.get("ephemeral_1h_input_tokens"), "cache_creation.ephemeral_1h_input_tokens")
    counts = {
        "input_tokens": _whole(result.get("uncached_input_tokens"), "uncached_input_tokens"),
        "cache_read_tokens": _whole(result.get("cache_read_input_tokens"), "cache_read_input_tokens"),
        "cache_write_tokens": write_5m + write_1h,
        "output_tokens": _whole(result.get("output_tokens"), "output_tokens"),
    }
    mode, tags = _mode(result.get("service_tier"))
    tags = {**(tags or {}), **({"cache_write_1h_tokens": str(write_1h)} if write_1h else {})}
    for kind, tokens in counts.items():
        rows.add(
            start, "anthropic", str(model), kind=kind, tokens=tokens, mode=mode,
            account=result.get("workspace_id"), tags=tags, service_tier=_tier(result.get("service_tier")),
        )  # fmt: skip


def _cost_line(rows: BilledRows, start: datetime, result: dict[str, Any]) -> None:
    currency = str(result.get("currency") or "USD").upper()
    if currency != "USD":
        raise ValueError(f"currency={currency!r}; Tokenomy keeps money in USD")
    try:
        cost = Decimal(str(result.get("amount") or "0")) / 100  # lowest currency unit: cents
    except InvalidOperation:
        raise ValueError(f"amount={result.get('amount')!r} is not a decimal string of cents") from None
    model = result.get("model")
    kind = TOKEN_TYPES.get(str(result.get("token_type") or ""))
    if not model or kind is None:  # web search, code execution, or a report not grouped by description
        model = str(result.get("description") or result.get("cost_type") or "(all costs)")
        kind = None
    mode, _ = _mode(result.get("service_tier"))
    rows.add(
        start, "anthropic", str(model), kind=kind, cost=cost, mode=mode, account=result.get("workspace_id"),
        service_tier=_tier(result.get("service_tier")),
    )  # fmt: skip


def import_anthropic_usage(pages: list[tuple[str, dict[str, Any]]], source: str = SOURCE) -> ImportResult:
    """Rows from usage report and cost report pages (as fetched, or read from saved exports)."""
    result = ImportResult(source)
    widths = set()
    rows = BilledRows(SOURCE)
    for place, bucket in buckets(pages):
        try:
            start = _time(bucket["starting_at"])
            widths.add((_time(bucket["ending_at"]) - start).total_seconds())
        except (KeyError, TypeError, ValueError):
            result.problems.append(f"{place}: no starting_at/ending_at (RFC 3339); expected an Anthropic report bucket")
            continue
        for index, line in enumerate(bucket.get("results") or []):
            try:
                if not isinstance(line, dict):
                    raise ValueError("not a JSON object")
                if "amount" in line:
                    _cost_line(rows, start, line)
                elif "uncached_input_tokens" in line:
                    _usage_line(rows, start, line)
                else:
                    result.skipped += 1
            except ValueError as exc:
                result.problems.append(f"{place}.results[{index}]: {exc}")
    rows.granularity = {86400: "1d", 3600: "1h", 60: "1m"}.get(int(widths.pop())) if len(widths) == 1 else None
    rows.events(result)
    return result


def import_anthropic_files(paths: list[str | Path]) -> ImportResult:
    return import_saved(paths, import_anthropic_usage)
