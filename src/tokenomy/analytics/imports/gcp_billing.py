"""Google Cloud's billing export (the BigQuery table, saved as CSV or newline-delimited JSON): the Vertex AI
and Gemini API rows.

Each row is renamed to the FOCUS columns it corresponds to (service.description → ServiceName,
sku.description → SkuMeter, usage_start_time → ChargePeriodStart, cost → BilledCost ...) and read by the
FOCUS importer, so the model and usage type come from the SKU text the same way.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from tokenomy.analytics.imports.common import ImportResult, cell, read_table
from tokenomy.analytics.imports.focus import import_focus_rows
from tokenomy.errors import ConfigError, read_utf8

SOURCE = "gcp-billing"
TO_FOCUS = {
    "service.description": "ServiceName",
    "sku.description": "SkuMeter",
    "sku.id": "SkuId",
    "usage_start_time": "ChargePeriodStart",
    "usage_end_time": "ChargePeriodEnd",
    "cost": "BilledCost",
    "currency": "BillingCurrency",
    "usage.amount": "ConsumedQuantity",
    "usage.unit": "ConsumedUnit",
    "usage.amount_in_pricing_units": "PricingQuantity",
    "usage.pricing_unit": "PricingUnit",
    "location.region": "RegionId",
    "project.id": "SubAccountId",
    "billing_account_id": "BillingAccountId",
}
CHARGE_CATEGORY = {"regular": "Usage", "": "Usage", "tax": "Tax", "adjustment": "Adjustment"}


def _flat(value: Any, prefix: str = "") -> dict[str, str]:
    """Nested JSON objects as dotted keys ({"sku": {"description": ..}} → "sku.description")."""
    out: dict[str, str] = {}
    for key, item in value.items():
        name = f"{prefix}{key}"
        if isinstance(item, dict):
            out.update(_flat(item, name + "."))
        elif item is not None and not isinstance(item, list):
            out[name] = str(item)
    return out


def _rows(path: Path, result: ImportResult) -> list[tuple[str, dict[str, str]]]:
    """(place, flattened row) for every row; a line that is not a JSON object is a problem in `result`, and the
    other lines still import. A JSON file with no row at all is the wrong file, an error."""
    if path.suffix.lower() in (".json", ".jsonl", ".ndjson"):
        lines = read_utf8(path, "the billing export as UTF-8 JSON lines; save it as UTF-8").splitlines()
        rows, problems = [], []
        for number, line in enumerate(lines, 1):
            if not line.strip():
                continue
            try:
                value = json.loads(line)
            except json.JSONDecodeError as exc:
                problems.append(f"{path}:{number}: not JSON ({exc.msg}); expected one billing export row per line")
                continue
            if not isinstance(value, dict):
                problems.append(f"{path}:{number}: not a JSON object; expected one billing export row per line")
                continue
            rows.append((f"{path}:{number}", _flat(value)))
        if problems and not rows:
            more = f" (and {len(problems) - 1} more)" if len(problems) > 1 else ""
            raise ConfigError(problems[0] + more)
        result.problems += problems
        return rows
    header, lines_ = read_table(path)
    if not lines_ and not _is_billing_export(header):  # a wrong file with no rows imported 0 quietly
        raise _not_a_billing_export(path)
    return [(f"{path}:{n}", {c: cell(line, c) for c in header}) for n, line in enumerate(lines_, 2)]


def _is_billing_export(columns: Any) -> bool:
    names = {str(c).replace(".", "_") for c in columns}
    return all(k in names for k in ("service_description", "sku_description", "cost"))


def _not_a_billing_export(path: Path) -> ConfigError:
    return ConfigError(
        f"{path}: no service.description, sku.description and cost; expected a Google Cloud billing export "
        "(standard or detailed usage cost table) as CSV or newline-delimited JSON"
    )


def import_gcp_billing(path: str | Path) -> ImportResult:
    path = Path(path)
    result = ImportResult(str(path))
    # A CSV saved from a query has the nested fields flattened by the query's aliases, usually with "_".
    rows = [(place, {k.replace(".", "_"): v for k, v in row.items()}) for place, row in _rows(path, result)]
    if rows and not _is_billing_export(rows[0][1]):
        raise _not_a_billing_export(path)
    focus_rows = []
    for place, row in rows:
        renamed = {ours: row.get(theirs.replace(".", "_"), "") for theirs, ours in TO_FOCUS.items()}
        renamed["ProviderName"] = "Google Cloud"
        renamed["ChargeCategory"] = CHARGE_CATEGORY.get(row.get("cost_type", "").lower(), "Adjustment")
        focus_rows.append((place, renamed))
    import_focus_rows(focus_rows, SOURCE, result)
    return result
