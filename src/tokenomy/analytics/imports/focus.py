"""FOCUS 1.0–1.2 cost exports of any cloud (AWS, Azure, Google Cloud, OCI): the AI/ML service rows.

A row is kept when its service is a model API (Bedrock, Azure OpenAI / AI Foundry, Vertex AI / Gemini, OCI
Generative AI). The model and the usage type come from the SKU text (SkuMeter, ChargeDescription and the
provider's x_ SKU/usage columns): "gpt-4o-mini-0718-Inp-glbl" is gpt-4o-mini-0718 input, "Gemini 2.0 Flash
Text Input - Predictions" is gemini-2.0-flash input, "...Cached Input..." a cache read, "...Batch..." batch
mode. AWS rows with x_UsageType are read like CUR line items. Only usage charges count (no tax, credits or
purchases). Rows of one period, provider, account, model, region and mode become one billed ledger row.
"""

from __future__ import annotations

import re
from datetime import UTC, datetime
from decimal import Decimal, InvalidOperation
from pathlib import Path

from tokenomy.analytics.imports.billing import BilledRows
from tokenomy.analytics.imports.common import ImportResult, cell, read_table, unit_scale
from tokenomy.analytics.imports.cur import REGION_PREFIXES, parse_bedrock_usage_type
from tokenomy.errors import ConfigError

SOURCE = "focus"
REQUIRED = ("ChargePeriodStart", "BilledCost", "ServiceName")
# Service (or SKU) text → our provider id; the first match wins.
AI_SERVICES = [
    ("bedrock", "bedrock"),
    ("openai", "azure"),
    ("ai foundry", "azure"),
    ("ai services", "azure"),
    ("vertex", "vertex"),
    ("gemini", "gemini"),
    ("generative ai", "oci"),
]
SKU_COLUMNS = ("SkuMeter", "ChargeDescription", "x_SkuMeterName", "x_SkuDescription", "x_SkuDetails", "x_UsageType")
# Usage type from the SKU text, checked in order: cache reads before input, since they say "cached input".
KINDS = [
    (("cache read", "cached input", "cache hit", "cached content", "cached inp", "cached"), "cache_read_tokens"),
    (("cache write", "cache creation", "cache writes"), "cache_write_tokens"),
    (("storage",), None),  # a cache's storage per hour: money, not tokens
    (("input", " inp ", "prompt"), "input_tokens"),
    (("output", " outp ", "completion", "response"), "output_tokens"),
]
# Words of a SKU that describe the usage, not the model: dropped to leave the model's name.
NOISE = {
    "input", "inp", "output", "outp", "cached", "cache", "read", "write", "writes", "hit", "tokens", "token",
    "batch", "text", "predictions", "prediction", "global", "glbl", "regional", "rgnl", "data", "zone", "dz",
    "1k", "1m", "per", "million", "thousand", "usage", "prompt", "completion", "response", "count", "creation",
    "content", "standard", "on", "demand", "in", "for", "of", "and", "characters", "character", "long", "short",
    "context", "storage", "hour", "hours",
}  # fmt: skip
KEEP = re.compile(r"^(gpt|o\d|claude|gemini|gemma|llama|mistral|mixtral|command|cohere|nova|titan|grok|phi|deepseek)")


def _provider(service: str, provider_name: str, sku_text: str) -> str | None:
    text = f"{service} {sku_text}".lower()
    for needle, provider in AI_SERVICES:
        if needle in text:
            if (
                provider == "azure"
                and "azure" not in f"{provider_name} {service}".lower()
                and "microsoft" not in (provider_name.lower())
            ):
                continue  # "openai" in a non-Azure bill is a SKU name, not the Azure OpenAI service
            return provider
    if "cognitive services" in service.lower() and "openai" in sku_text.lower():
        return "azure"
    return None


def usage_kind(sku_text: str) -> str | None:
    text = " " + re.sub(r"[-_/(),]+", " ", sku_text.lower()) + " "
    for needles, kind in KINDS:
        if any(n in text for n in needles):
            return kind
    return None


def model_from_sku(sku_text: str) -> str:
    """The model's name left when the usage words are removed: 'Gemini 2.0 Flash Text Input' → gemini-2.0-flash."""
    words = [w for w in re.split(r"[\s\-_/(),:]+", sku_text.lower()) if w and w not in NOISE]
    start = next((i for i, w in enumerate(words) if KEEP.match(w)), 0)
    return "-".join(words[start:]) or sku_text.strip().lower()


def _tokens(row: dict[str, str], kind: str | None) -> int:
    """Tokens of a line: its pricing or consumed quantity times the unit's scale ('1M tokens' → 1,000,000)."""
    if kind is None:
        return 0
    for quantity, unit in (("PricingQuantity", "PricingUnit"), ("ConsumedQuantity", "ConsumedUnit")):
        unit_text = row.get(unit, "").lower()
        if row.get(quantity) and ("token" in unit_text or unit_text in ("count", "")):
            return int((Decimal(row[quantity]) * unit_scale(unit_text)).to_integral_value())
    return 0  # priced in characters, images or hours: the cost is kept, the tokens are unknown


def _time(text: str) -> datetime:
    ts = datetime.fromisoformat(text.strip().replace("Z", "+00:00").replace(" UTC", "+00:00"))
    return ts.replace(tzinfo=UTC) if ts.tzinfo is None else ts.astimezone(UTC)


def import_focus_rows(rows_in: list[tuple[str, dict[str, str]]], source: str, result: ImportResult) -> None:
    """Billed rows from FOCUS-named rows (place, row) into `result`."""
    rows = BilledRows(source)
    widths: set[float] = set()
    for place, row in rows_in:
        sku_text = " ".join(row.get(c, "") for c in SKU_COLUMNS if row.get(c))
        provider = _provider(
            row.get("ServiceName", ""), row.get("ProviderName") or row.get("ServiceProviderName") or "", sku_text
        )
        category = row.get("ChargeCategory", "Usage") or "Usage"
        if provider is None or category.lower() != "usage":
            result.skipped += 1  # another service, or tax / credit / purchase / adjustment
            continue
        parsed = parse_bedrock_usage_type(row.get("x_UsageType", "")) if provider == "bedrock" else None
        kind: str | None
        try:
            start = _time(row["ChargePeriodStart"])
            if row.get("ChargePeriodEnd"):
                widths.add((_time(row["ChargePeriodEnd"]) - start).total_seconds())
            currency = (row.get("BillingCurrency") or "USD").upper()
            if currency != "USD":
                raise ValueError(f"BillingCurrency={currency}; Tokenomy keeps money in USD")
            cost = Decimal(row.get("BilledCost") or "0")
            if parsed:
                prefix, model, kind, mode = parsed
                quantity = Decimal(row.get("ConsumedQuantity") or "0") * unit_scale(row.get("ConsumedUnit", ""))
                tokens = int(quantity.to_integral_value())
                region = row.get("RegionId") or REGION_PREFIXES.get(prefix) or prefix or None
            else:
                kind, model = usage_kind(sku_text), model_from_sku(sku_text or row.get("SkuId", ""))
                mode = "batch" if "batch" in sku_text.lower() else "on_demand"
                tokens, region = _tokens(row, kind), row.get("RegionId") or row.get("Region") or None
        except (ValueError, InvalidOperation, KeyError) as exc:
            reason = str(exc) if isinstance(exc, ValueError) and str(exc) else "cannot read the time or a number"
            result.problems.append(
                f"{place}: {reason} (ChargePeriodStart={row.get('ChargePeriodStart')!r}, "
                f"BilledCost={row.get('BilledCost')!r}, ConsumedQuantity={row.get('ConsumedQuantity')!r})"
            )
            continue
        if not model:
            result.problems.append(f"{place}: no model in the SKU text {sku_text!r}")
            continue
        account = row.get("SubAccountId") or row.get("BillingAccountId") or None
        rows.add(start, provider, model, kind=kind, tokens=tokens, cost=cost, region=region, mode=mode, account=account)
    rows.granularity = {86400: "1d", 3600: "1h"}.get(int(widths.pop())) if len(widths) == 1 else None
    rows.events(result)


def import_focus(path: str | Path) -> ImportResult:
    """The AI/ML rows of a FOCUS export (CSV, CSV.gz or Parquet)."""
    path = Path(path)
    result = ImportResult(str(path))
    header, lines = read_table(path)
    missing = [c for c in REQUIRED if c not in header]
    if missing:
        raise ConfigError(
            f"{path}: no {', '.join(missing)} column(s); expected a FOCUS 1.0–1.2 export (ChargePeriodStart, "
            "BilledCost, ServiceName, SkuMeter ...); for an AWS CUR use `tokenomy import cur`"
        )
    rows = [(f"{path}:{n}", {c: cell(line, c) for c in header}) for n, line in enumerate(lines, 2)]
    import_focus_rows(rows, SOURCE, result)
    return result
