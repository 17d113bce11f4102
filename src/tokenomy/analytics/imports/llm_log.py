"""Prompts logged by the `llm` command-line tool (its SQLite logs.db) as ledger events priced from the catalog."""

from __future__ import annotations

import json
import sqlite3
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from tokenomy.analytics.imports.common import ImportResult, event_id, price_event
from tokenomy.errors import ConfigError
from tokenomy.ledger.events import UsageEvent
from tokenomy.pricing.entry import priced_tier

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


def _llm_tier(options: Any, response: Any) -> str:
    """The service tier a logged prompt was billed at: the one OpenAI's answer says it served (`service_tier` in
    response_json; a streamed Chat Completions answer's logs none), else the one asked for (llm's `-o service_tier
    flex`, in options_json); "standard" when neither names a dearer or cheaper one."""
    for text in (response, options):
        try:
            data = json.loads(text) if isinstance(text, str) and text else None
        except ValueError:
            continue
        tier = data.get("service_tier") if isinstance(data, dict) else None
        if isinstance(tier, str):
            return priced_tier(tier)
    return "standard"


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
        select = LLM_COLUMNS + "".join(
            f", {c}" if c in names else f", NULL AS {c}" for c in ("resolved_model", "options_json", "response_json")
        )
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
            tier = _llm_tier(row["options_json"], row["response_json"])
        except (ValueError, TypeError) as exc:
            result.problems.append(f"{place}: {exc}; expected datetime_utc in ISO format and a model id")
            continue
        event = UsageEvent(
            ts=ts.replace(tzinfo=UTC) if ts.tzinfo is None else ts.astimezone(UTC),
            provider=_llm_provider(model),
            model=model,
            # a tier's tag prices the row at that tier (price_event), as a gateway row is
            tags={"source": "llm", **({"service_tier": tier} if tier != "standard" else {})},
            input_tokens=uncached,
            output_tokens=int(row["output_tokens"] or 0),
            cache_read_tokens=read,
            cache_write_tokens=write,
            latency_ms=float(row["duration_ms"]) if row["duration_ms"] is not None else None,
            event_id="llm-" + event_id(row["id"]),
        )
        result.events.append(price_event(event, result))
    conn.close()
    return result
