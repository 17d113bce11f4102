"""OpenTelemetry GenAI client spans (OTLP JSON) as ledger events priced from the catalog."""

from __future__ import annotations

import json
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from tokenomy.analytics.billed import PROVIDER_ALIASES
from tokenomy.analytics.imports.common import ImportResult, event_id, price_event
from tokenomy.errors import read_utf8
from tokenomy.ledger.events import UsageEvent
from tokenomy.pricing.entry import priced_tier
from tokenomy.routing.router import REASON_TAG, REJECTED_TAG
from tokenomy.telemetry.otel import REJECTED

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
# The service tier the call was served at, else the one it asked for: flex, priority (OpenAI's "fast") and ultrafast
# are billed at their own prices; "default", "auto", "scale" at the standard ones. `gen_ai.openai.*`: the names before
# they moved to `openai.*`.
OTEL_SERVICE_TIER = (
    "tokenomy.service_tier",  # the tier Tokenomy priced the call at (any API's: Claude's priority and fast mode too)
    "openai.response.service_tier",
    "gen_ai.openai.response.service_tier",
    "openai.request.service_tier",
    "gen_ai.openai.request.service_tier",
)
OTEL_PROVIDERS = PROVIDER_ALIASES  # OpenTelemetry's provider names, as bills name them


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
    # A binary file or a protobuf export is named (it was a traceback); a byte-order mark is skipped (was "not JSON").
    expected = "OTLP JSON (resourceSpans) as one document or one per line, e.g. the collector's file exporter"
    text = read_utf8(path, f"{expected} with format: json")
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
    # Tokenomy's span of an answer a cascade's validators rejected is failed, yet the provider answered (and billed)
    # it: it is imported as the answered row the ledger has, with why it was rejected.
    rejected = attrs.get("error.type") == REJECTED
    failed = not rejected and (status in (2, "STATUS_CODE_ERROR") or attrs.get("error.type") is not None)
    tags = {"source": "otel"}
    if rejected:
        tags[REJECTED_TAG] = str(attrs.get("tokenomy.cascade.rejected") or "")
        tags[REASON_TAG] = str(attrs.get("tokenomy.cascade.reason") or "")
    if resource.get("service.name"):
        tags["service"] = str(resource["service.name"])
    tier = priced_tier(_first(attrs, OTEL_SERVICE_TIER))
    if tier != "standard":  # the row says why its price is not the standard one, as a gateway row does
        tags["service_tier"] = tier
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
        error_type=None if rejected else attrs.get("error.type"),
        request_id=attrs.get("gen_ai.response.id"),
        event_id="otel-" + event_id(span.get("traceId"), span.get("spanId"), start),
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
                        result.events.append(price_event(event, result))
    return result
