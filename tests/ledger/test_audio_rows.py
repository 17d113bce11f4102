"""A row keeps the audio parts of its tokens (audio_input_tokens, audio_cache_read_tokens, audio_output_tokens), so a
row priced again (ledger import of a file without costs, journal replay, savings reviews) prices its audio at the
audio rates it was recorded at, not as text; every ledger engine stores them."""

from __future__ import annotations

import json
from datetime import UTC, datetime
from decimal import Decimal

import pytest

from tokenomy.ledger.events import UsageEvent
from tokenomy.ledger.io import COST_FIELDS, export_to_string, import_file
from tokenomy.ledger.journal_replay import event_from_jsonl
from tokenomy.ledger.store import open_store
from tokenomy.pricing.cost import compute_cost

M = Decimal(1_000_000)
T0 = datetime(2026, 11, 1, 12, 0, tzinfo=UTC)
# Gemini 2.5 Flash: text $0.30 in / $0.03 cached / $2.50 out, audio $1.00 in / $0.10 cached (per 1M tokens).
# 1,000 prompt tokens of which 600 audio, 2,000 cached of which 1,500 audio, 100 output.
GEMINI = (
    400 * Decimal("0.30")
    + 600 * Decimal("1.00")
    + 500 * Decimal("0.03")
    + 1_500 * Decimal("0.10")
    + 100 * Decimal("2.50")
) / M  # $0.001135
# gpt-audio: text $2.50 in / $10 out, audio $32 in / $64 out; 1,200 prompt (1,000 audio), 500 output (400 audio).
GPT_AUDIO = (200 * Decimal("2.50") + 1_000 * Decimal("32") + 100 * Decimal("10") + 400 * Decimal("64")) / M  # $0.0591


def audio_rows() -> list[UsageEvent]:
    rows = [
        UsageEvent(
            ts=T0,
            provider="google.gemini",
            model="gemini-2.5-flash",
            input_tokens=1_000,
            cache_read_tokens=2_000,
            output_tokens=100,
            audio_input_tokens=600,
            audio_cache_read_tokens=1_500,
            event_id="gemini-audio",
        ),
        UsageEvent(
            ts=T0,
            provider="openai",
            model="gpt-audio",
            input_tokens=1_200,
            output_tokens=500,
            audio_input_tokens=1_000,
            audio_output_tokens=400,
            event_id="openai-audio",
        ),
    ]
    for row in rows:
        row.apply_cost(compute_cost(row.usage, row.model, one_call=True, at=row.ts))
    return rows


def test_an_audio_rows_usage_prices_its_audio_at_the_audio_rates():
    gemini, openai = audio_rows()
    assert gemini.cost_usd == GEMINI == Decimal("0.001135")
    assert openai.cost_usd == GPT_AUDIO == Decimal("0.0591")


def check_stored_and_repriced(store, tmp_path) -> None:
    store.write(audio_rows())
    stored = {row.event_id: row for row in store.events()}
    assert (stored["gemini-audio"].audio_input_tokens, stored["gemini-audio"].audio_cache_read_tokens) == (600, 1_500)
    assert stored["openai-audio"].audio_output_tokens == 400
    # Exported, its costs taken off, and imported into a fresh ledger: priced again, exactly as when recorded
    lines = [json.loads(line) for line in export_to_string(list(stored.values())).splitlines()]
    path = tmp_path / "no-costs.jsonl"
    path.write_text(
        "".join(json.dumps({k: v for k, v in line.items() if k not in COST_FIELDS}) + "\n" for line in lines)
    )
    fresh = open_store(tmp_path / "fresh.duckdb")
    result = import_file(path, fresh)
    assert result.errors == [] and result.imported == 2
    again = {row.event_id: row for row in fresh.events()}
    assert again["gemini-audio"].cost_usd == GEMINI and again["openai-audio"].cost_usd == GPT_AUDIO


def test_duckdb_stores_the_audio_counts_and_an_import_prices_them_again(tmp_path):
    check_stored_and_repriced(open_store(tmp_path / "ledger.duckdb"), tmp_path)


@pytest.mark.postgres
def test_postgres_stores_the_audio_counts(fresh_postgres_url, tmp_path):
    check_stored_and_repriced(open_store(fresh_postgres_url), tmp_path)


def test_clickhouse_stores_the_audio_counts(tmp_path):
    pytest.importorskip("chdb")
    check_stored_and_repriced(open_store(f"chdb:{tmp_path / 'ledger.chdb'}"), tmp_path)


def test_a_journal_line_read_back_keeps_the_audio_and_its_price():
    for row in audio_rows():
        back = event_from_jsonl(row.to_jsonl())
        assert back.usage == row.usage
        assert compute_cost(back.usage, back.model, one_call=True, at=back.ts).total_usd == row.cost_usd


def test_an_imported_line_with_more_audio_than_its_tokens_is_a_bad_line_naming_both(tmp_path):
    path = tmp_path / "usage.jsonl"
    path.write_text(
        json.dumps(
            {
                "ts": "2026-11-01T12:00:00Z",
                "provider": "openai",
                "model": "gpt-audio",
                "input_tokens": 10,
                "output_tokens": 5,
                "audio_output_tokens": 6,
                "cost_usd": "0.001",
            }
        )
        + "\n"
    )
    result = import_file(path, open_store(tmp_path / "ledger.duckdb"))
    assert result.imported == 0
    assert result.errors == [
        "usage.jsonl:1: audio_output_tokens=6 is more than output_tokens=5; "
        "the audio tokens are a part of output_tokens"
    ]


def test_a_clickhouse_ledger_made_before_the_added_columns_opens_and_gains_them(tmp_path):
    # ClickHouse ledgers were never given the columns added after schema version 1 (DuckDB and PostgreSQL were):
    # writing to an older one failed on the first row.
    pytest.importorskip("chdb")
    from tokenomy.ledger.base import ADDED_COLUMNS

    url = f"chdb:{tmp_path / 'ledger.chdb'}"
    store = open_store(url)
    for name in ADDED_COLUMNS:
        store.execute(f"ALTER TABLE usage_events DROP COLUMN {name}")
    check_stored_and_repriced(open_store(url), tmp_path)
