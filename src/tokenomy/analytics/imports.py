"""Usage from elsewhere into the ledger: OpenTelemetry GenAI spans, AWS CUR 2.0 / FOCUS Bedrock line items,
and the `llm` command-line tool's SQLite log.

Each importer returns the events it could read and one message per record it could not, naming the file
and the line, row or span and what to fix; good records are never dropped because of a bad one. Event ids
are derived from the source (trace/span id, line item, log id), so importing a file twice adds nothing.
"""

from __future__ import annotations

import hashlib
import json
import re
import sqlite3
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime
from decimal import Decimal, InvalidOperation
from pathlib import Path
from typing import Any

from tokenomy.errors import ConfigError, TokenomyError
from tokenomy.ledger.events import UsageEvent


@dataclass
class ImportResult:
    """Events read from one file, and a message for every record that could not be read."""

    source: str
    events: list[UsageEvent] = field(default_factory=list)
    problems: list[str] = field(default_factory=list)
    skipped: int = 0  # records that are not LLM usage (other spans, other services' line items)
    unpriced_models: set[str] = field(default_factory=set)


def _price(event: UsageEvent, result: ImportResult) -> UsageEvent:
    """Price an event from the catalog; models it does not know keep cost 0 and are reported."""
    from tokenomy.pricing.cost import compute_cost

    try:
        event.apply_cost(compute_cost(event.usage, event.model, event.region, mode=event.mode))
    except TokenomyError:
        result.unpriced_models.add(event.model)
    return event


def _event_id(*parts: Any) -> str:
    return hashlib.sha256("\x00".join(str(p) for p in parts).encode()).hexdigest()[:32]


# --- OpenTelemetry GenAI spans (OTLP JSON) -------------------------------------------------------------------

# Newer semantic-convention names first, then the older ones they replaced.
OTEL_PROVIDER = ("gen_ai.provider.name", "gen_ai.system")
OTEL_MODEL = ("gen_ai.response.model", "gen_ai.request.model")
OTEL_INPUT = ("gen_ai.usage.input_tokens", "gen_ai.usage.prompt_tokens")
OTEL_OUTPUT = ("gen_ai.usage.output_tokens", "gen_ai.usage.completion_tokens")
# Current names count cached tokens inside input_tokens; the older underscore names (Anthropic style) do not.
OTEL_CACHE_READ = {
    "gen_ai.usage.cache_read.input_tokens": True,
    "gen_ai.usage.input_tokens.cached": True,
    "gen_ai.usage.cache_read_input_tokens": False,
}
OTEL_CACHE_WRITE = {
    "gen_ai.usage.cache_creation.input_tokens": True,
    "gen_ai.usage.input_tokens.cache_write": True,
    "gen_ai.usage.cache_creation_input_tokens": False,
}
OTEL_PROVIDERS = {
    "aws.bedrock": "bedrock",
    "az.ai.openai": "azure",
    "azure.ai.openai": "azure",
    "gcp.vertex_ai": "vertex",
    "gcp.gemini": "gemini",
}


def _otel_value(value: dict[str, Any]) -> Any:
    """An OTLP JSON AnyValue: {"stringValue": ..} / {"intValue": "12"} (int64 as a string) / ..."""
    for key in ("stringValue", "boolValue", "doubleValue"):
        if key in value:
            return value[key]
    if "intValue" in value:
        return int(value["intValue"])
    return None


def _otel_attrs(items: list[dict[str, Any]] | None) -> dict[str, Any]:
    if not isinstance(items, list):
        return {}  # attributes of the wrong shape carry nothing usable (a span without gen_ai.* is skipped)
    return {
        item["key"]: _otel_value(_otel_object(item.get("value")))
        for item in items
        if isinstance(item, dict) and "key" in item
    }


def _otel_documents(path: Path) -> Iterator[tuple[str, dict[str, Any] | None, str | None]]:
    """(where, document, problem): one OTLP JSON document, or one per line (the collector's file exporter)."""
    try:
        text = path.read_text()
    except OSError as exc:
        raise ConfigError(f"{path}: cannot read ({exc.strerror})") from None
    try:
        yield str(path), json.loads(text), None
        return
    except json.JSONDecodeError:
        pass
    for number, line in enumerate(text.splitlines(), 1):
        if not line.strip():
            continue
        try:
            yield f"{path}:{number}", json.loads(line), None
        except json.JSONDecodeError as exc:
            yield (
                f"{path}:{number}",
                None,
                (f"not JSON ({exc.msg}); expected OTLP JSON (resourceSpans) as one document or one per line"),
            )


def _first(attrs: dict[str, Any], names: tuple[str, ...]) -> Any:
    return next((attrs[n] for n in names if attrs.get(n) is not None), None)


def _nanos(value: Any) -> datetime:
    return datetime.fromtimestamp(int(value) / 1e9, tz=UTC)


def _count(attrs: dict[str, Any], names: tuple[str, ...]) -> int:
    """A token count attribute (first name present) as a whole number >= 0; 0 when absent."""
    name = next((n for n in names if attrs.get(n) is not None), None)
    if name is None:
        return 0
    try:
        value = int(attrs[name])
    except (TypeError, ValueError):
        value = -1
    if value < 0:
        raise ValueError(f"{name}={attrs[name]!r} is not a token count (a whole number >= 0)")
    return value


def _otel_span(span: dict[str, Any], resource: dict[str, Any]) -> UsageEvent | None:
    attrs = _otel_attrs(span.get("attributes"))
    if not any(k.startswith("gen_ai.usage.") for k in attrs):
        return None  # not an LLM call (HTTP, DB ... spans share the file)
    provider, model = _first(attrs, OTEL_PROVIDER), _first(attrs, OTEL_MODEL)
    if not model:
        raise ValueError("gen_ai span without gen_ai.response.model or gen_ai.request.model")
    input_tokens = _count(attrs, OTEL_INPUT)
    output_tokens = _count(attrs, OTEL_OUTPUT)
    cache = {}
    for kind, names in (("read", OTEL_CACHE_READ), ("write", OTEL_CACHE_WRITE)):
        name = next((n for n in names if attrs.get(n) is not None), None)
        cache[kind] = _count(attrs, tuple(names))
        if name and names[name]:
            input_tokens -= cache[kind]  # included in input_tokens under the current names
    if input_tokens < 0:
        raise ValueError("cache tokens exceed gen_ai.usage.input_tokens")
    start, end = span.get("startTimeUnixNano"), span.get("endTimeUnixNano")
    if not start:
        raise ValueError("span has no startTimeUnixNano")
    status = (span.get("status") or {}).get("code")
    failed = status in (2, "STATUS_CODE_ERROR") or attrs.get("error.type") is not None
    tags = {"source": "otel"}
    if resource.get("service.name"):
        tags["service"] = str(resource["service.name"])
    provider = str(provider or "unknown")
    return UsageEvent(
        ts=_nanos(start),
        provider=OTEL_PROVIDERS.get(provider, provider),
        model=str(model),
        region=attrs.get("cloud.region") or resource.get("cloud.region"),
        task=attrs.get("gen_ai.operation.name"),
        tags=tags,
        input_tokens=input_tokens,
        output_tokens=output_tokens,
        cache_read_tokens=cache["read"],
        cache_write_tokens=cache["write"],
        latency_ms=(int(end) - int(start)) / 1e6 if end else None,
        outcome="server_error" if failed else "ok",
        error_type=attrs.get("error.type"),
        request_id=attrs.get("gen_ai.response.id"),
        event_id="otel-" + _event_id(span.get("traceId"), span.get("spanId"), start),
    )


def _otel_object(value: Any) -> dict[str, Any]:
    return value if isinstance(value, dict) else {}


def _otel_items(value: Any, place: str, result: ImportResult) -> list[tuple[int, dict[str, Any]]]:
    """(index, object) pairs of an OTLP list; a value of the wrong shape is a named problem, not a traceback."""
    if not isinstance(value, list):
        result.problems.append(
            f"{place}: is a JSON {_json_kind(value)}, expected a list of objects "
            "(an OTLP JSON trace export, as written by the OpenTelemetry Collector's file exporter)"
        )
        return []
    items = []
    for index, item in enumerate(value):
        if isinstance(item, dict):
            items.append((index, item))
        else:
            result.problems.append(f"{place}[{index}]: is a JSON {_json_kind(item)}, expected an object")
    return items


def _json_kind(value: Any) -> str:
    return {str: "string", bool: "boolean", int: "number", float: "number", list: "list", dict: "object"}.get(
        type(value), "null" if value is None else type(value).__name__
    )


def import_otel(path: str | Path) -> ImportResult:
    """GenAI client spans from OTLP JSON (`resourceSpans` → `scopeSpans` → `spans`)."""
    path = Path(path)
    result = ImportResult(str(path))
    for where, doc, problem in _otel_documents(path):
        if problem or not isinstance(doc, dict):
            result.problems.append(f"{where}: {problem or 'not a JSON object'}")
            continue
        if "resourceSpans" not in doc:
            result.problems.append(f"{where}: no resourceSpans; expected an OTLP JSON trace export")
            continue
        for r, rs in _otel_items(doc["resourceSpans"], f"{where}: resourceSpans", result):
            try:
                resource = _otel_attrs(_otel_object(rs.get("resource")).get("attributes"))
            except (ValueError, TypeError) as exc:
                result.problems.append(f"{where}: resourceSpans[{r}].resource: {exc}; its spans are not imported")
                continue
            scopes = rs.get("scopeSpans") or rs.get("instrumentationLibrarySpans") or []
            for s, ss in _otel_items(scopes, f"{where}: resourceSpans[{r}].scopeSpans", result):
                for n, span in _otel_items(
                    ss.get("spans") or [], f"{where}: resourceSpans[{r}].scopeSpans[{s}].spans", result
                ):
                    place = f"{where}: resourceSpans[{r}].scopeSpans[{s}].spans[{n}] ({span.get('name', '?')})"
                    try:
                        event = _otel_span(span, resource)
                    except (ValueError, TypeError, OverflowError) as exc:
                        result.problems.append(f"{place}: {exc}")
                        continue
                    if event is None:
                        result.skipped += 1
                    else:
                        result.events.append(_price(event, result))
    return result


# --- AWS CUR 2.0 / FOCUS (Bedrock line items) ----------------------------------------------------------------

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


def _read_table(path: Path) -> tuple[list[str], list[dict[str, Any]]]:
    """(header, rows): the header is kept so a file with no data rows is still checked for CUR columns."""
    import pandas as pd

    try:
        frame = (
            pd.read_parquet(path)
            if path.suffix.lower() in (".parquet", ".pq")
            else pd.read_csv(path, dtype=str, keep_default_na=False, compression="infer")
        )
    except (OSError, ValueError, pd.errors.ParserError) as exc:
        raise ConfigError(f"{path}: cannot read as CSV or Parquet ({exc})") from None
    return [str(c) for c in frame.columns], frame.to_dict("records")


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


def _cell(row: dict[str, Any], column: str | None) -> str:
    """A cell as text; Parquet gives typed values and NaN/None for blanks, CSV (read as text) gives ""."""
    import pandas as pd

    value = None if column is None else row.get(column)
    if value is None or (not isinstance(value, str) and pd.isna(value)):
        return ""
    return value.isoformat() if hasattr(value, "isoformat") else str(value)


def _unit_scale(unit: str) -> int:
    """Tokens per usage unit: "1K tokens" → 1000, "1M tokens" → 1,000,000, "tokens"/blank → 1."""
    match = re.match(r"\s*(\d+)\s*([KkMm])?", unit or "")
    if not match:
        return 1
    return int(match.group(1)) * {"k": 1000, "m": 1_000_000}.get((match.group(2) or "").lower(), 1)


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
    header, rows = _read_table(path)
    cols = _columns(path, header)  # before the empty check: a wrong file must not import 0 rows quietly
    groups: dict[tuple, dict[str, Any]] = {}
    for number, row in enumerate(rows, 2):  # header is line 1

        def get(ours: str, row: dict[str, Any] = row) -> str:
            return _cell(row, cols[ours])

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
            tokens = Decimal(get("amount") or "0") * _unit_scale(get("unit"))
            cost = Decimal(get("cost") or "0")
        except (ValueError, InvalidOperation):
            result.problems.append(
                f"{path}:{number}: {usage_type}: cannot read start={get('start')!r}, "
                f"amount={get('amount')!r}, cost={get('cost')!r} (need an ISO time and numbers)"
            )
            continue
        start = start.replace(tzinfo=UTC) if start.tzinfo is None else start.astimezone(UTC)
        region = get("region") or REGION_PREFIXES.get(prefix) or prefix or None
        group = groups.setdefault((start, region, model, mode), {"cost": Decimal(0), "lines": []})
        group[kind] = group.get(kind, 0) + int(tokens.to_integral_value())
        cost_field = kind.replace("_tokens", "_cost_usd")
        group[cost_field] = group.get(cost_field, Decimal(0)) + cost
        group["cost"] += cost
        group["lines"].append(number)
    for (start, region, model, mode), group in sorted(groups.items(), key=lambda kv: kv[1]["lines"][0]):
        result.events.append(
            UsageEvent(
                ts=start,
                provider="bedrock",
                model=model,
                region=region,
                mode=mode,
                tags={"source": "cur"},
                input_tokens=group.get("input_tokens", 0),
                output_tokens=group.get("output_tokens", 0),
                cache_read_tokens=group.get("cache_read_tokens", 0),
                cache_write_tokens=group.get("cache_write_tokens", 0),
                input_cost_usd=group.get("input_cost_usd", Decimal(0)),
                output_cost_usd=group.get("output_cost_usd", Decimal(0)),
                cache_read_cost_usd=group.get("cache_read_cost_usd", Decimal(0)),
                cache_write_cost_usd=group.get("cache_write_cost_usd", Decimal(0)),
                cost_usd=group["cost"],
                priced_by="cur",
                event_id="cur-" + _event_id(start.isoformat(), region, model, mode),
            )
        )
    return result


# --- the `llm` CLI's logs.db --------------------------------------------------------------------------------

LLM_COLUMNS = "id, model, input_tokens, output_tokens, token_details, duration_ms, datetime_utc"


def _llm_provider(model: str) -> str:
    lowered = model.lower()
    if "bedrock" in lowered or lowered.startswith(("anthropic.", "amazon.", "meta.", "us.", "eu.")):
        return "bedrock"
    if "claude" in lowered:
        return "anthropic"
    if lowered.startswith(("gpt", "o1", "o3", "o4", "chatgpt", "openai")):
        return "openai"
    return "llm"


def _llm_cache(details: Any, input_tokens: int) -> tuple[int, int, int]:
    """(uncached input, cache read, cache write) from token_details of the OpenAI or Anthropic plugins."""
    data = json.loads(details) if isinstance(details, str) and details else (details or {})
    if not isinstance(data, dict):
        return input_tokens, 0, 0
    if "cache_read_input_tokens" in data or "cache_creation_input_tokens" in data:  # Anthropic: not in input
        return (
            input_tokens,
            int(data.get("cache_read_input_tokens") or 0),
            int(data.get("cache_creation_input_tokens") or 0),
        )
    nested = data.get("prompt_tokens_details") or data.get("input_tokens_details") or {}
    cached = int(nested.get("cached_tokens") or 0) if isinstance(nested, dict) else 0
    return max(input_tokens - cached, 0), cached, 0  # OpenAI: cached tokens are part of input


def _llm_rows(conn: sqlite3.Connection) -> Iterator[tuple[str, dict[str, Any]]]:
    tables = {r[0] for r in conn.execute("SELECT name FROM sqlite_master WHERE type = 'table'")}
    seen: set[str] = set()
    # llm 0.27+ logs to `turns`; earlier versions to `responses` (tokens from 0.19). Read both, once per id.
    for table in ("turns", "responses"):
        if table not in tables:
            continue
        names = {r[1] for r in conn.execute(f"PRAGMA table_info({table})")}
        if not {"input_tokens", "output_tokens"} <= names:
            continue  # a log from before llm recorded tokens
        select = LLM_COLUMNS + (", resolved_model" if "resolved_model" in names else ", NULL AS resolved_model")
        cursor = conn.execute(f"SELECT {select} FROM {table} ORDER BY datetime_utc, id")
        columns = [d[0] for d in cursor.description]
        for values in cursor:
            row = dict(zip(columns, values, strict=True))
            if row["id"] in seen:
                continue
            seen.add(row["id"])
            yield table, row


def import_llm_log(path: str | Path) -> ImportResult:
    """Responses logged by the `llm` CLI (logs.db): model, tokens, duration and time of each prompt."""
    path = Path(path)
    result = ImportResult(str(path))
    if not path.exists():
        raise ConfigError(f"{path}: no such file; `llm logs path` prints where llm keeps logs.db")
    try:
        conn = sqlite3.connect(f"file:{path}?mode=ro", uri=True)
        rows = list(_llm_rows(conn))
    except sqlite3.DatabaseError as exc:
        raise ConfigError(f"{path}: not an llm logs.db SQLite database ({exc})") from None
    for table, row in rows:
        place = f"{path}: {table} id={row['id']}"
        try:
            ts = datetime.fromisoformat(str(row["datetime_utc"]).replace("Z", "+00:00"))
            model = str(row["resolved_model"] or row["model"] or "")
            if not model:
                raise ValueError("no model")
            uncached, read, write = _llm_cache(row["token_details"], int(row["input_tokens"] or 0))
        except (ValueError, TypeError) as exc:
            result.problems.append(f"{place}: {exc}; expected datetime_utc in ISO format and a model id")
            continue
        event = UsageEvent(
            ts=ts.replace(tzinfo=UTC) if ts.tzinfo is None else ts.astimezone(UTC),
            provider=_llm_provider(model),
            model=model,
            tags={"source": "llm"},
            input_tokens=uncached,
            output_tokens=int(row["output_tokens"] or 0),
            cache_read_tokens=read,
            cache_write_tokens=write,
            latency_ms=float(row["duration_ms"]) if row["duration_ms"] is not None else None,
            event_id="llm-" + _event_id(row["id"]),
        )
        result.events.append(_price(event, result))
    conn.close()
    return result


IMPORTERS = {"otel": import_otel, "cur": import_cur, "llm-log": import_llm_log}
