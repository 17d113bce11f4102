"""AWS CUR 2.0, legacy CUR and AWS FOCUS exports: Bedrock token line items with the billed cost."""

from __future__ import annotations

import re
from datetime import UTC, datetime
from decimal import Decimal, InvalidOperation
from pathlib import Path
from typing import Any

from tokenomy.analytics.imports.billing import BilledRows
from tokenomy.analytics.imports.common import ImportResult, cell, read_table, unit_scale
from tokenomy.errors import ConfigError

# Token type from the usage type: "USE1-Claude3Haiku-input-tokens", "...-cache-read-input-token-count", ...
CUR_KINDS = [
    ("cache-read-input-token-count", "cache_read_tokens"),
    ("cache-write-input-token-count", "cache_write_tokens"),
    ("input-tokens", "input_tokens"),
    ("output-tokens", "output_tokens"),
]
CUR_COLUMNS = {  # ours: (CUR 2.0, legacy CUR, FOCUS)
    "start": ("line_item_usage_start_date", "lineItem/UsageStartDate", "ChargePeriodStart"),
    "usage_type": ("line_item_usage_type", "lineItem/UsageType", "x_UsageType"),
    "amount": ("line_item_usage_amount", "lineItem/UsageAmount", "ConsumedQuantity"),
    "cost": ("line_item_unblended_cost", "lineItem/UnblendedCost", "BilledCost"),
    "service": ("line_item_product_code", "lineItem/ProductCode", "ServiceName"),
    "region": ("product_region_code", "product/region", "RegionId"),
    "unit": ("pricing_unit", "pricing/unit", "ConsumedUnit"),
    "line_type": ("line_item_line_item_type", "lineItem/LineItemType", "ChargeCategory"),
    "account": ("line_item_usage_account_id", "lineItem/UsageAccountId", "SubAccountId"),
}
REGION_PREFIXES = {
    "USE1": "us-east-1",
    "USE2": "us-east-2",
    "USW2": "us-west-2",
    "EUC1": "eu-central-1",
    "EU": "eu-west-1",
    "EUW1": "eu-west-1",
    "EUW2": "eu-west-2",
    "EUW3": "eu-west-3",
    "APN1": "ap-northeast-1",
    "APS1": "ap-southeast-1",
    "APS2": "ap-southeast-2",
    "APS3": "ap-south-1",
    "CAN1": "ca-central-1",
    "SAE1": "sa-east-1",
}


def _columns(path: Path, header: list[str]) -> dict[str, str | None]:
    found = {ours: next((c for c in names if c in header), None) for ours, names in CUR_COLUMNS.items()}
    missing = [ours for ours in ("start", "usage_type", "amount", "cost") if found[ours] is None]
    if missing:
        raise ConfigError(
            f"{path}: no {', '.join(CUR_COLUMNS[m][0] for m in missing)} column(s); expected a CUR "
            "2.0 export (line_item_usage_type ...), a legacy CUR (lineItem/UsageType ...) or an AWS "
            "FOCUS export (x_UsageType, ConsumedQuantity, BilledCost ...)"
        )
    return found


def parse_bedrock_usage_type(usage_type: str) -> tuple[str, str, str, str] | None:
    """(region prefix, model, token field, mode) from a Bedrock usage type, or None if not a token line."""
    for marker, kind in CUR_KINDS:
        index = usage_type.find("-" + marker)
        if index < 0:
            continue
        head = usage_type[:index]
        region, _, model = head.partition("-") if head.split("-", 1)[0].isupper() else ("", "", head)
        mode = "batch" if re.search(r"(^|-)batch($|-)", model, re.I) else "on_demand"
        model = re.sub(r"-(mantle|batch|cross-region.*|global)$", "", model, flags=re.I)
        return region, model, kind, mode
    return None


def import_cur(path: str | Path) -> ImportResult:
    """Bedrock token line items from a CUR 2.0, legacy CUR or FOCUS export (CSV, CSV.gz or Parquet).

    The lines of one model, region and hour/day (input, output, cache read, cache write) become one event
    whose cost is the billed cost from the file, not a catalog price.
    """
    path = Path(path)
    result = ImportResult(str(path))
    header, lines = read_table(path)
    cols = _columns(path, header)  # before the empty check: a wrong file must not import 0 rows quietly
    rows = BilledRows("cur")
    for number, row in enumerate(lines, 2):  # header is line 1

        def get(ours: str, row: dict[str, Any] = row) -> str:
            return cell(row, cols[ours])

        service, usage_type = get("service"), get("usage_type")
        if service and service not in ("AmazonBedrock", "Amazon Bedrock") and "bedrock" not in service.lower():
            result.skipped += 1
            continue
        parsed = parse_bedrock_usage_type(usage_type)
        if parsed is None or get("line_type") in ("Tax", "Credit", "Refund", "Purchase"):
            result.skipped += 1  # not a token line (provisioned hours, model customisation, tax ...)
            continue
        prefix, model, kind, mode = parsed
        try:
            start = datetime.fromisoformat(get("start").replace("Z", "+00:00"))
            tokens = Decimal(get("amount") or "0") * unit_scale(get("unit"))
            cost = Decimal(get("cost") or "0")
        except (ValueError, InvalidOperation):
            result.problems.append(
                f"{path}:{number}: {usage_type}: cannot read start={get('start')!r}, "
                f"amount={get('amount')!r}, cost={get('cost')!r} (need an ISO time and numbers)"
            )
            continue
        start = start.replace(tzinfo=UTC) if start.tzinfo is None else start.astimezone(UTC)
        region = get("region") or REGION_PREFIXES.get(prefix) or prefix or None
        rows.add(
            start,
            "bedrock",
            model,
            kind=kind,
            tokens=int(tokens.to_integral_value()),
            cost=cost,
            region=region,
            mode=mode,
            account=get("account") or None,
        )
    rows.events(result)
    return result
