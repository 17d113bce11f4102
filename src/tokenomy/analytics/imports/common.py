"""What every importer shares: the result of one import, catalog pricing, ids derived from the source, and
reading CSV / Parquet tables cell by cell."""

from __future__ import annotations

import hashlib
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from tokenomy.errors import ConfigError, TokenomyError, one_line
from tokenomy.ledger.events import UsageEvent
from tokenomy.pricing.entry import priced_tier


@dataclass
class ImportResult:
    """Events read from one file, and a message for every record that could not be read."""

    source: str
    events: list[UsageEvent] = field(default_factory=list)
    problems: list[str] = field(default_factory=list)
    skipped: int = 0  # records that are not LLM usage (other spans, other services' line items)
    unpriced_models: set[str] = field(default_factory=set)


def price_event(event: UsageEvent, result: ImportResult) -> UsageEvent:
    """Price an event from the catalog, at the service tier its `service_tier` tag names (flex, priority, ...: the
    provider bills the call at that tier's price of its day); models, or tiers, it does not know keep cost 0 and are
    reported."""
    from tokenomy.pricing.cost import compute_cost

    tier = priced_tier(event.tags.get("service_tier")) if event.mode == "on_demand" else "standard"
    try:
        # Spans and log entries are one call each.
        event.apply_cost(
            compute_cost(
                event.usage, event.model, event.region, mode=event.mode, one_call=True, service_tier=tier, at=event.ts
            )
        )
    except TokenomyError:
        result.unpriced_models.add(event.model if tier == "standard" else f"{event.model} ({tier} tier)")
    return event


def event_id(*parts: Any) -> str:
    return hashlib.sha256("\x00".join(str(p) for p in parts).encode()).hexdigest()[:32]


def read_table(path: Path) -> tuple[list[str], list[dict[str, Any]]]:
    """(header, rows): the header is kept so a file with no data rows is still checked for CUR columns."""
    import pandas as pd

    if path.is_file() and path.stat().st_size == 0:  # pandas says "No columns to parse from file"
        raise ConfigError(f"{path}: the file is empty, not a billing export; download or export it again")
    parquet = path.suffix.lower() in (".parquet", ".pq")
    if not parquet and path.is_file():
        with open(path, "rb") as handle:
            if handle.read(4) == b"PAR1":  # read as CSV it was "cannot read as CSV or Parquet (... C error ...)"
                raise ConfigError(f"{path}: a Parquet file not named *.parquet; rename it to end in .parquet")
    try:
        frame = (
            pd.read_parquet(path)
            if parquet
            else pd.read_csv(path, dtype=str, keep_default_na=False, compression="infer")
        )
    except UnicodeDecodeError:  # was "cannot read as CSV or Parquet ('utf-8' codec can't decode byte 0xb2 ...)"
        raise ConfigError(_not_text(path)) from None
    except (OSError, ValueError, pd.errors.ParserError) as exc:
        raise ConfigError(f"{path}: cannot read as CSV or Parquet ({one_line(exc)})") from None
    return [str(c) for c in frame.columns], frame.to_dict("records")


def _not_text(path: Path) -> str:
    """A billing export read as CSV that is not UTF-8 text, with its first bad byte (counted in the file, as
    errors.read_utf8 counts it)."""
    import codecs

    with open(path, "rb") as handle:
        where = ""
        if path.suffix.lower() not in (".gz", ".bz2", ".zip", ".xz", ".zst", ".tar"):  # else a byte of what it holds
            decoder, offset = codecs.getincrementaldecoder("utf-8")(), 0
            while chunk := handle.read(1 << 20):
                held = len(decoder.getstate()[0])  # a character's first bytes, left from the last chunk
                try:
                    decoder.decode(chunk)
                except UnicodeDecodeError as exc:
                    where = f" (byte {offset - held + exc.start + 1})"
                    break
                offset += len(chunk)
    return f"{path}: not UTF-8 text{where}; expected a billing export as UTF-8 CSV (or Parquet, named *.parquet)"


def cell(row: dict[str, Any], column: str | None) -> str:
    """A cell as text; Parquet gives typed values and NaN/None for blanks, CSV (read as text) gives ""."""
    import pandas as pd

    value = None if column is None else row.get(column)
    if value is None or (not isinstance(value, str) and pd.isna(value)):
        return ""
    return value.isoformat() if hasattr(value, "isoformat") else str(value)


def unit_scale(unit: str) -> int:
    """Tokens per usage unit: "1K tokens" → 1000, "1M tokens" → 1,000,000, "tokens"/blank → 1."""
    match = re.match(r"\s*(\d+)\s*([KkMm])?", unit or "")
    if not match:
        return 1
    return int(match.group(1)) * {"k": 1000, "m": 1_000_000}.get((match.group(2) or "").lower(), 1)
