"""Ledger import and export (JSONL or CSV). Bad lines are reported by number and field; good lines land."""

from __future__ import annotations

import csv
import hashlib
import io
import json
import math
from collections import Counter
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime
from decimal import Decimal, InvalidOperation
from pathlib import Path
from typing import Any, TextIO, cast

from tokenomy.errors import TokenomyError
from tokenomy.ledger.base import unstorable
from tokenomy.ledger.events import COLUMNS, UsageEvent
from tokenomy.ledger.rejects import write_refusing
from tokenomy.ledger.store import LedgerStore
from tokenomy.pricing.cost import compute_cost
from tokenomy.pricing.entry import priced_tier

INT_FIELDS = (
    "input_tokens",
    "output_tokens",
    "cache_read_tokens",
    "cache_write_tokens",
    "attempt",
    "prefix_tokens",
    "image_count",
    "document_count",
    "tool_call_count",
    "audio_input_tokens",
    "audio_cache_read_tokens",
    "audio_output_tokens",
)
FLOAT_FIELDS = ("latency_ms", "ttft_ms")
# The ledger's columns: token counts fit any BIGINT with room for sums, costs fit DECIMAL(20,12).
MAX_TOKENS = 10**12
MAX_COST_USD = Decimal(10) ** 8
COST_FIELDS = ("input_cost_usd", "output_cost_usd", "cache_read_cost_usd", "cache_write_cost_usd", "cost_usd")


@dataclass
class ImportResult:
    imported: int = 0
    errors: list[str] = field(default_factory=list)
    already_present: int = 0  # lines whose event_id the ledger (or an earlier line) already holds

    def to_json(self) -> dict[str, Any]:
        return {
            "imported": self.imported,
            "rejected": len(self.errors),
            "errors": self.errors,
            "already_present": self.already_present,
        }


def _parse_ts(value: Any) -> datetime:
    if isinstance(value, datetime):
        ts = value
    else:
        text = str(value).strip()
        if not text:
            raise ValueError("is empty")
        try:
            ts = datetime.fromisoformat(text.replace("Z", "+00:00"))
        except ValueError:
            raise ValueError("is not an ISO-8601 time; write UTC times like 2026-01-31T12:00:00Z") from None
    if ts.tzinfo is None:
        raise ValueError("has no timezone; write UTC times like 2026-01-31T12:00:00Z")
    return ts.astimezone(UTC)


def canonical_record(record: dict[str, Any]) -> str:
    """One text per content, whatever the key order or spacing of the line."""
    return json.dumps(record, sort_keys=True, separators=(",", ":"), ensure_ascii=False, default=str)


def content_event_id(record: dict[str, Any], occurrence: int = 0) -> str:
    """An event_id derived from the record's content, so importing the same file twice adds nothing. `occurrence`
    tells apart identical lines of one file: two calls can look the same, and each is a row."""
    text = canonical_record(record) + (f"#{occurrence}" if occurrence else "")
    return hashlib.sha256(text.encode()).hexdigest()[:32]


def event_from_record(record: Any, occurrence: int = 0) -> UsageEvent:
    """Validate one import record into a priced UsageEvent; ValueError names the bad field. A record without an
    event_id gets one from its content (`content_event_id`), not the random id of a live event."""
    if not isinstance(record, dict):
        raise ValueError("line is not a JSON object")
    unknown = set(record) - set(COLUMNS)
    if unknown:
        raise ValueError(f"unknown field(s) {sorted(unknown)}")
    for required in ("ts", "provider", "model"):
        if record.get(required) in (None, ""):
            raise ValueError(f"field '{required}' is required")
    for name, value in record.items():
        # A list or object in a text column was stored as its Python repr ("['x']"), or, as the region, was a
        # TypeError traceback from the price lookup. (`tags` is the one column that holds an object.)
        if name != "tags" and isinstance(value, (dict, list)):
            kind = "an object" if isinstance(value, dict) else "a list"
            raise ValueError(f"field '{name}' {value!r} is {kind}; write it as a single value, e.g. \"us-east-1\"")
    values: dict[str, Any] = {k: v for k, v in record.items() if v not in ("",)}
    try:
        values["ts"] = _parse_ts(values["ts"])
    except ValueError as exc:
        raise ValueError(f"field 'ts' {values['ts']!r} {exc}") from None
    for name in INT_FIELDS:
        if name in values and values[name] is not None:
            raw = values[name]
            try:
                number = float(raw) if isinstance(raw, str) else raw
                if isinstance(number, bool) or not float(number).is_integer():
                    raise ValueError
                values[name] = int(number)
            except (TypeError, ValueError):
                raise ValueError(f"field '{name}' {raw!r} is not a whole number") from None
            if values[name] < 0:
                raise ValueError(f"field '{name}' {raw!r} is negative")
            if values[name] > MAX_TOKENS:
                raise ValueError(f"field '{name}' {raw!r} is over {MAX_TOKENS:,}, more than one call can use")
    for name in FLOAT_FIELDS:
        if values.get(name) is not None:
            try:
                number = float(values[name])
            except (TypeError, ValueError):
                raise ValueError(f"field '{name}' {values[name]!r} is not a number") from None
            # NaN or infinity would poison percentiles and make the export invalid JSON.
            if not math.isfinite(number) or number < 0:
                raise ValueError(f"field '{name}' {values[name]!r} must be a finite number of milliseconds >= 0")
            values[name] = number
    for name in COST_FIELDS:
        if values.get(name) is not None:
            raw = values[name]
            try:
                values[name] = Decimal(str(raw))
            except InvalidOperation:
                raise ValueError(f"field '{name}' {raw!r} is not a number") from None
            if not values[name].is_finite():  # NaN was refused as "outside ±100,000,000 USD"
                raise ValueError(f"field '{name}' {raw!r} is not an amount; write a cost in USD such as 0.000150")
            if abs(values[name]) >= MAX_COST_USD:
                raise ValueError(f"field '{name}' {values[name]} is outside ±{MAX_COST_USD:,} USD")
    tags = values.get("tags")
    if isinstance(tags, str):
        try:
            tags = json.loads(tags) if tags else {}
        except json.JSONDecodeError:
            raise ValueError(f"field 'tags' {tags!r} is not a JSON object") from None
    if tags is not None and not isinstance(tags, dict):
        raise ValueError("field 'tags' must be an object of string values")
    values["tags"] = {str(k): str(v) for k, v in (tags or {}).items()}
    if values.get("event_id") is None:
        values["event_id"] = content_event_id(record, occurrence)
    event = UsageEvent(**{k: v for k, v in values.items() if v is not None})
    try:
        event.validate()
    except TokenomyError as exc:
        raise ValueError(str(exc)) from None
    if record.get("cost_usd") in (None, ""):
        try:
            cost = compute_cost(
                event.usage,  # its 1-hour cache writes (a tag) at their price
                event.model,
                event.region if event.region not in (None, "") else None,
                event.mode,
                one_call=True,  # a ledger row is one call
                # the tier its `service_tier` tag names (flex, priority, ...), at the prices of the row's day
                service_tier=priced_tier(event.tags.get("service_tier")) if event.mode == "on_demand" else "standard",
                at=event.ts,
            )
        except TokenomyError as exc:
            raise ValueError(f"cannot price it: {exc}") from None
        event.apply_cost(cost)
    # A computed cost can exceed what the columns hold (10^11 output tokens of an expensive model); caught
    # here it is this line's error instead of a database error that fails the whole batch.
    why = unstorable(event)
    if why is not None:
        raise ValueError(f"cost out of range: {why}; check the token counts")
    return event


def read_records(path: Path) -> Iterator[tuple[int, dict[str, Any] | None, str | None]]:
    """Yield (line number, record or None, error or None) from a JSONL or CSV file."""
    if path.suffix.lower() == ".csv":
        # CSV rows can span lines, so a file that is not UTF-8 is rejected whole, by name.
        try:
            with path.open(newline="", encoding="utf-8-sig") as handle:
                reader = csv.DictReader(handle)
                for row in reader:
                    number = reader.line_num  # the row's last physical line (quoted fields may span lines)
                    if None in row:  # more values than header columns: the extra ones would be dropped unseen
                        yield (
                            number,
                            None,
                            (
                                f"{len(row[None])} value(s) beyond the header's {len(reader.fieldnames or [])} "
                                "columns; quote fields that contain commas"
                            ),
                        )
                        continue
                    yield number, row, None
        except UnicodeDecodeError as exc:
            raise TokenomyError(f"{path}: not UTF-8 text (byte {exc.start}); save the CSV as UTF-8") from None
        return
    # Bytes, decoded line by line: one line that is not UTF-8 is reported, the others still import.
    with path.open("rb") as handle:
        for number, raw in enumerate(handle, start=1):
            try:
                line = raw.decode("utf-8-sig" if number == 1 else "utf-8")
            except UnicodeDecodeError as exc:
                yield number, None, f"not UTF-8 text (byte {exc.start + 1} of the line); save the file as UTF-8"
                continue
            if not line.strip():
                continue
            try:
                yield number, json.loads(line), None
            except json.JSONDecodeError as exc:
                yield number, None, f"invalid JSON ({exc.msg} at column {exc.colno})"


def require_file(path: str | Path) -> Path:
    """`path`, which must exist (checked before a ledger is opened, so a wrong name leaves no new ledger)."""
    path = Path(path)
    if not path.exists():
        raise TokenomyError(f"{path}: file not found")
    if path.is_dir():  # it passed the check above, and a new ledger was made before "Is a directory"
        raise TokenomyError(f"{path}: a folder; give the JSONL or CSV file to import")
    names = _first_record_fields(path)
    if names is not None and not set(names) & set(COLUMNS):
        # A FOCUS, CUR or OTLP export: "unknown field(s) [...]" on every line, and an empty new ledger.
        shown = ", ".join(names[:4]) + (", ..." if len(names) > 4 else "")
        raise TokenomyError(
            f"{path}: not a Tokenomy ledger export (its first record has {shown or 'no fields'}, none of the "
            "ledger's: ts, provider, model, ...); import billing and telemetry exports with `tokenomy import "
            "focus|cur|otel|...`"
        )
    return path


def _first_record_fields(path: Path) -> list[str] | None:
    """The field names of the file's first record (a CSV header, or the first JSON object line), or None when the
    file has none to read this way (empty, or its first line not an object: that line's own error says so)."""
    try:
        with path.open(newline="", encoding="utf-8-sig") as handle:
            if path.suffix.lower() == ".csv":
                header = next(csv.reader(handle), None)
                return [h for h in header if h] if header else None
            for line in handle:
                if line.strip():
                    record = json.loads(line)
                    return [str(k) for k in record] if isinstance(record, dict) else None
    except (UnicodeDecodeError, json.JSONDecodeError, csv.Error):
        return None
    return None


def import_file(
    path: str | Path, store: LedgerStore | Callable[[], LedgerStore], batch_size: int = 5000
) -> ImportResult:
    """Import every good line of `path` into `store`; collect an error per bad line. `store` may be a function
    that opens it, called at the first good line: a file of bad lines then makes no new, empty ledger."""
    path = require_file(path)
    ledger: LedgerStore = cast(LedgerStore, _OpenedAtFirstWrite(store)) if callable(store) else store
    result = ImportResult()
    pending: list[UsageEvent] = []
    lines: dict[str, int] = {}  # event id -> line number, to name the line of an event the database refuses
    seen: set[str] = set()
    occurrences: Counter[str] = Counter()  # identical lines without an event_id: the n-th gets the n-th id
    for number, record, error in read_records(path):
        if error is None:
            occurrence = 0
            if isinstance(record, dict) and record.get("event_id") in (None, ""):
                key = canonical_record(record)
                occurrence = occurrences[key]
                occurrences[key] += 1
            try:
                pending.append(event_from_record(record, occurrence))  # null, [] or 0: "not a JSON object"
                lines[pending[-1].event_id] = number
            except ValueError as exc:
                error = str(exc)
        if error is not None:
            result.errors.append(f"{path.name}:{number}: {error}")
        if len(pending) >= batch_size:
            result.imported += _write_new(ledger, pending, seen, result, lines, path.name)
            pending, lines = [], {}
    result.imported += _write_new(ledger, pending, seen, result, lines, path.name)
    return result


class _OpenedAtFirstWrite:
    """A ledger opened when first used (`import_file` uses it only for good lines)."""

    def __init__(self, opener: Callable[[], LedgerStore]) -> None:
        self._opener = opener
        self._store: LedgerStore | None = None

    def __getattr__(self, name: str) -> Any:
        if self._store is None:
            self._store = self._opener()
        return getattr(self._store, name)


def _write_new(
    store: LedgerStore, events: list[UsageEvent], seen: set[str], result: ImportResult, lines: dict[str, int], name: str
) -> int:
    """Write the events whose id is new; count the rest, so a re-import does not claim it added them again."""
    ids = [e.event_id for e in events]
    existing = set()
    if ids:
        marks = ", ".join([store.placeholder] * len(ids))
        existing = {
            r["event_id"] for r in store.query(f"SELECT event_id FROM usage_events WHERE event_id IN ({marks})", ids)
        }
    new = []
    for event in events:
        if event.event_id in existing or event.event_id in seen:
            result.already_present += 1
        else:
            seen.add(event.event_id)
            new.append(event)
    refused = write_refusing(store, new)  # e.g. a NUL byte PostgreSQL text cannot hold: that line, not the file
    for event, why in refused:
        result.errors.append(f"{name}:{lines[event.event_id]}: the ledger database refused it ({why})")
    return len(new) - len(refused)


def export_events(events: list[UsageEvent], out: TextIO, fmt: str = "jsonl") -> int:
    """Write events as JSONL (default) or CSV; the output imports back unchanged."""
    if fmt not in ("jsonl", "csv"):
        raise TokenomyError(f"--format {fmt!r}: choose jsonl or csv")
    if fmt == "csv":
        writer = csv.DictWriter(out, fieldnames=COLUMNS)
        writer.writeheader()
        for event in events:
            row = event.to_json()
            row["tags"] = json.dumps(row["tags"], sort_keys=True)
            writer.writerow(row)
    else:
        for event in events:
            out.write(json.dumps(event.to_json(), sort_keys=True) + "\n")
    return len(events)


def export_to_string(events: list[UsageEvent], fmt: str = "jsonl") -> str:
    buffer = io.StringIO()
    export_events(events, buffer, fmt)
    return buffer.getvalue()
