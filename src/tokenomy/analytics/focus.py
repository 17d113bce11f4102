"""FinOps FOCUS 1.2 export: one row per model x token type x day x tag set, custom columns prefixed x_.

Every FOCUS 1.2 Mandatory column is present, plus the Conditional ones that apply to token usage
(ConsumedQuantity/Unit, ListUnitPrice, ContractedUnitPrice, PricingCategory, RegionId/Name, SkuId,
SkuMeter, SkuPriceId, Tags). The events' own tags (team=search ...) become FOCUS Tags so LLM spend can be
allocated like the rest of the cloud bill; Tokenomy's own tag is prefixed x_.
"""

from __future__ import annotations

import csv
import json
from collections import defaultdict
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from pathlib import Path
from typing import Any

from tokenomy.analytics.billed import BILLED_MARKS, canonical_provider, unsplit_cost
from tokenomy.ledger.events import STORAGE_MODE
from tokenomy.money import money_str

COLUMNS = [
    "BilledCost",
    "BillingAccountId",
    "BillingAccountName",
    "BillingCurrency",
    "BillingPeriodEnd",
    "BillingPeriodStart",
    "ChargeCategory",
    "ChargeClass",
    "ChargeDescription",
    "ChargeFrequency",
    "ChargePeriodEnd",
    "ChargePeriodStart",
    "ConsumedQuantity",
    "ConsumedUnit",
    "ContractedCost",
    "ContractedUnitPrice",
    "EffectiveCost",
    "InvoiceIssuerName",
    "ListCost",
    "ListUnitPrice",
    "PricingCategory",
    "PricingQuantity",
    "PricingUnit",
    "ProviderName",
    "PublisherName",
    "RegionId",
    "RegionName",
    "ServiceCategory",
    "ServiceName",
    "ServiceSubcategory",
    "SkuId",
    "SkuMeter",
    "SkuPriceId",
    "Tags",
    "x_Model",
    "x_TokenType",
    "x_Mode",
    "x_Calls",
]
_TYPES = [
    ("input", "input_tokens", "input_cost_usd"),
    ("output", "output_tokens", "output_cost_usd"),
    ("cache_read", "cache_read_tokens", "cache_read_cost_usd"),
    ("cache_write", "cache_write_tokens", "cache_write_cost_usd"),
]
_METER = {
    "input": "Input Tokens",
    "output": "Output Tokens",
    "cache_read": "Cache Read Tokens",
    "cache_write": "Cache Write Tokens",
    "all": "Tokens",  # every token type of a row whose cost was given as a total only
    "other": "Other Charges",  # a bill's charges that are not tokens (tools, cache storage, fees)
}
# Keyed on the canonical provider (`aws.bedrock` -> `bedrock`), so a cloud has one ProviderName whether its rows
# were metered or imported from its bill (the importers name Google's rows "Google Cloud", AWS's "Amazon Web
# Services"). Other providers are their own issuer, with service "<name> API".
_ISSUER = {
    "bedrock": "Amazon Web Services",
    "azure": "Microsoft",
    "vertex": "Google Cloud",
    "gemini": "Google Cloud",
    "oci": "Oracle",
    "openai": "OpenAI",
    "anthropic": "Anthropic",
}
_SERVICE = {
    "bedrock": "Amazon Bedrock",
    "azure": "Azure OpenAI",
    "vertex": "Vertex AI",
    "gemini": "Gemini API",
    "oci": "OCI Generative AI",
}


def _iso(value: datetime) -> str:
    return value.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def _tags(event: Any) -> str:
    return json.dumps(event.tags or {}, sort_keys=True)


def focus_rows(events: list[Any], account: str = "tokenomy") -> list[dict[str, Any]]:
    """Aggregate ledger events into FOCUS 1.2 rows (daily charge periods, USD)."""
    groups: dict[tuple, list] = defaultdict(lambda: [0, Decimal(0), 0])
    for e in events:
        day = e.ts.astimezone(UTC).replace(hour=0, minute=0, second=0, microsecond=0)
        provider = canonical_provider(e.provider) or ""
        other = unsplit_cost(e)
        # The calls a line stands for: a bill's day and a cache's storage are none (as reports count them).
        call = 0 if e.priced_by in BILLED_MARKS or e.mode == STORAGE_MODE else 1
        all_tokens = sum(getattr(e, tokens_field) for _, tokens_field, _ in _TYPES)
        if other and other == e.cost_usd and all_tokens:
            # A total without its split by token type (an import that gave only cost_usd): one row for all its
            # tokens, so the cost is counted and the typed rows' unit prices are not diluted by tokens at $0.
            bucket = groups[(day, provider, e.model, e.region or "global", e.mode, "all", _tags(e))]
            bucket[0] += all_tokens
            bucket[1] += other
            bucket[2] += call
            continue
        for kind, tokens_field, cost_field in _TYPES:
            tokens, cost = getattr(e, tokens_field), getattr(e, cost_field)
            if not tokens and not cost:
                continue  # (a cost report imported without its usage report has the costs and no tokens)
            bucket = groups[(day, provider, e.model, e.region or "global", e.mode, kind, _tags(e))]
            bucket[0] += tokens
            bucket[1] += cost
            bucket[2] += call
        if other:
            bucket = groups[(day, provider, e.model, e.region or "global", e.mode, "other", _tags(e))]
            bucket[1] += other
            bucket[2] += call
    rows = []
    for (day, provider, model, region, mode, kind, tags), (tokens, cost, calls) in sorted(groups.items()):
        month = day.replace(day=1)
        next_month = (month + timedelta(days=32)).replace(day=1)
        unit_price = (cost * Decimal(1_000_000) / tokens) if tokens else Decimal(0)
        issuer = _ISSUER.get(provider, provider)
        sku = f"{model}:{kind}:{mode}"
        rows.append(
            {
                "BilledCost": cost,
                "BillingAccountId": account,
                "BillingAccountName": account,
                "BillingCurrency": "USD",
                "BillingPeriodEnd": _iso(next_month),
                "BillingPeriodStart": _iso(month),
                "ChargeCategory": "Usage",
                "ChargeClass": "",
                "ChargeDescription": f"{model} {kind} {'charges' if kind == 'other' else 'tokens'} ({mode})",
                "ChargeFrequency": "Usage-Based",
                "ChargePeriodEnd": _iso(day + timedelta(days=1)),
                "ChargePeriodStart": _iso(day),
                "ConsumedQuantity": tokens,
                "ConsumedUnit": "Tokens",
                "ContractedCost": cost,
                "ContractedUnitPrice": unit_price,
                "EffectiveCost": cost,
                "InvoiceIssuerName": issuer,
                "ListCost": cost,
                "ListUnitPrice": unit_price,
                "PricingCategory": "Standard",
                "PricingQuantity": Decimal(tokens) / Decimal(1_000_000),
                "PricingUnit": "1M Tokens",
                "ProviderName": issuer,
                "PublisherName": issuer,
                "RegionId": region,
                "RegionName": region,
                "ServiceCategory": "AI and Machine Learning",
                "ServiceName": _SERVICE.get(provider, f"{issuer} API"),
                "ServiceSubcategory": "Generative AI",
                "SkuId": sku,
                "SkuMeter": _METER[kind],
                "SkuPriceId": sku,
                "Tags": json.dumps({**json.loads(tags), "x_provider": provider}, sort_keys=True),
                "x_Model": model,
                "x_TokenType": kind,
                "x_Mode": mode,
                "x_Calls": calls,
            }
        )
    return rows


def _as_text(row: dict[str, Any]) -> dict[str, Any]:
    """Money by the one money rule: costs as recorded, unit prices per 1M tokens, quantities plain."""
    out = dict(row)
    for name in ("BilledCost", "ContractedCost", "EffectiveCost", "ListCost"):
        out[name] = money_str(row[name], "record")
    for name in ("ContractedUnitPrice", "ListUnitPrice"):
        out[name] = money_str(row[name], "unit_price")
    out["PricingQuantity"] = format(row["PricingQuantity"], "f")  # tokens / 1e6: at most 6 places, exact
    return out


def write_focus_csv(events: list[Any], path: str | Path) -> int:
    """Write a FOCUS 1.2 CSV; returns the number of rows."""
    rows = [_as_text(row) for row in focus_rows(events)]
    with open(path, "w", newline="") as handle:
        writer = csv.DictWriter(handle, fieldnames=COLUMNS)
        writer.writeheader()
        writer.writerows(rows)
    return len(rows)
