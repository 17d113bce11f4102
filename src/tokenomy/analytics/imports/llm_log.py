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


def _llm_details(details: Any) -> dict[str, Any]:
    """A prompt's token_details (JSON text in logs.db) as a dict; {} when there are none."""
    data = json.loads(details) if isinstance(details, str) and details else (details or {})
    return data if isinstance(data, dict) else {}


def _llm_cache(data: dict[str, Any], input_tokens: int) -> tuple[int, int, int]:
    """(uncached input, cache read, cache write) from token_details of the OpenAI or Anthropic plugins."""
    if "cache_read_input_tokens" in data or "cache_creation_input_tokens" in data:  # Anthropic: not in input
        return (
            input_tokens,
            int(data.get("cache_read_input_tokens") or 0),
            int(data.get("cache_creation_input_tokens") or 0),
        )
    nested = data.get("prompt_tokens_details") or data.get("input_tokens_details") or {}
    cached = int(nested.get("cached_tokens") or 0) if isinstance(nested, dict) else 0
    return max(input_tokens - cached, 0), cached, 0  # OpenAI: cached tokens are part of input


def _llm_audio(data: dict[str, Any], prompt_tokens: int, uncached: int, output_tokens: int) -> tuple[int, int, int]:
    """(audio input, cached audio, audio output) from token_details of the OpenAI plugin (its chat answer's usage,
    zeros left out): the prompt's audio counted uncached as far as the uncached tokens hold it, the rest cached, as
    the gateway reads an answer (openai_wire_read.count_audio)."""
    counts = []
    for name, whole in (("prompt_tokens_details", prompt_tokens), ("completion_tokens_details", output_tokens)):
        nested = data.get(name)
        value = nested.get("audio_tokens") if isinstance(nested, dict) else None
        if value is not None and (not isinstance(value, int) or isinstance(value, bool) or value < 0):
            raise ValueError(f"token_details {name}.audio_tokens={value!r} is not a token count")
        if value and value > whole:
            raise ValueError(f"token_details {name}.audio_tokens={value} is more than the {whole} tokens it is part of")
        counts.append(value or 0)
    prompt, output = counts
    return min(prompt, uncached), prompt - min(prompt, uncached), output


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


def _has_tokens(conn: sqlite3.Connection, table: str) -> bool:
    return {"input_tokens", "output_tokens"} <= {r[1] for r in conn.execute(f"PRAGMA table_info({table})")}


def _tokenless(conn: sqlite3.Connection, tables: set[str]) -> list[str]:
    """A problem line for each log table llm wrote before it recorded tokens (before 0.19) that holds prompts: they
    were skipped unsaid, a log of 0 records read as if llm had logged nothing."""
    problems = []
    for table in sorted(tables & {"turns", "responses"}):
        if not _has_tokens(conn, table):
            count = conn.execute(f"SELECT COUNT(*) FROM {table}").fetchone()[0]
            if count:
                problems.append(
                    f"{table}: {count} prompt(s) logged by an llm that recorded no token counts (before 0.19) are "
                    "not imported: there is nothing to price them by"
                )
    return problems


def _llm_rows(conn: sqlite3.Connection, tables: set[str]) -> Iterator[tuple[str, dict[str, Any]]]:
    seen: set[str] = set()
    # llm 0.27+ logs to `turns`; earlier versions to `responses` (tokens from 0.19). Read both, once per id.
    for table in ("turns", "responses"):
        if table not in tables:
            continue
        if not _has_tokens(conn, table):
            continue  # a log from before llm recorded tokens: `import_llm_log` lists what it holds as a problem
        names = {r[1] for r in conn.execute(f"PRAGMA table_info({table})")}
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
        tables = {r[0] for r in conn.execute("SELECT name FROM sqlite_master WHERE type = 'table'")}
        rows = list(_llm_rows(conn, tables))
        tokenless = _tokenless(conn, tables)
    except sqlite3.DatabaseError as exc:
        raise ConfigError(f"{path}: not an llm logs.db SQLite database ({exc})") from None
    if not tables & {"turns", "responses"}:
        # Another SQLite database (or an empty file, which SQLite opens as one) was imported as a log of no prompts:
        # "0 records read", exit 0, as if llm had logged nothing.
        raise ConfigError(
            f"{path}: not an llm logs.db (no responses or turns table); `llm logs path` prints where llm keeps logs.db"
        )
    result.problems.extend(f"{path}: {problem}" for problem in tokenless)
    for table, row in rows:
        place = f"{path}: {table} id={row['id']}"
        try:
            ts = datetime.fromisoformat(str(row["datetime_utc"]).replace("Z", "+00:00"))
            model = str(row["resolved_model"] or row["model"] or "")
            if not model:
                raise ValueError("no model")
            details = _llm_details(row["token_details"])
            prompt, output = int(row["input_tokens"] or 0), int(row["output_tokens"] or 0)
            uncached, read, write = _llm_cache(details, prompt)
            audio, cached_audio, audio_output = _llm_audio(details, prompt, uncached, output)
            tier = _llm_tier(row["options_json"], row["response_json"])
        except (ValueError, TypeError) as exc:
            result.problems.append(f"{place}: {exc}; expected datetime_utc in ISO format, a model id and token counts")
            continue
        event = UsageEvent(
            ts=ts.replace(tzinfo=UTC) if ts.tzinfo is None else ts.astimezone(UTC),
            provider=_llm_provider(model),
            model=model,
            # a tier's tag prices the row at that tier (price_event), as a gateway row is
            tags={"source": "llm", **({"service_tier": tier} if tier != "standard" else {})},
            input_tokens=uncached,
            output_tokens=output,
            cache_read_tokens=read,
            cache_write_tokens=write,
            audio_input_tokens=audio,
            audio_cache_read_tokens=cached_audio,
            audio_output_tokens=audio_output,
            latency_ms=float(row["duration_ms"]) if row["duration_ms"] is not None else None,
            event_id="llm-" + event_id(row["id"]),
        )
        result.events.append(price_event(event, result))
    conn.close()
    return result
