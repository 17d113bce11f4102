"""A ledger event's JSONL line (the journal's and the rejected-events file's format, which `tokenomy ledger import`
reads): the JSON of `UsageEvent.to_json`, whatever writes it — the timestamp in UTC ending in Z, each cost in the
money rule's record form, every column in order."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta, timezone
from decimal import Decimal

import pytest

from tokenomy.ledger.events import COLUMNS, UsageEvent


def _event(ts: datetime, **fields) -> UsageEvent:
    return UsageEvent(
        ts=ts,
        provider="openai",
        model="gpt-4o-mini",
        tags={"team": "search", "ü": "ß"},
        input_tokens=1200,
        output_tokens=30,
        input_cost_usd=Decimal("0.00018"),
        output_cost_usd=Decimal("0.000018"),
        cache_read_cost_usd=Decimal("0.0000000000125"),
        cost_usd=Decimal("0.000198"),
        latency_ms=12.5,
        request_id="r1",
        **fields,
    )


@pytest.mark.parametrize(
    "ts",
    [
        datetime(2026, 12, 5, 1, 2, 3, 123456, tzinfo=UTC),
        datetime(2026, 12, 5, 1, 2, 3, tzinfo=UTC),  # no microseconds: none written
        datetime(2026, 12, 5, 3, 2, 3, 7, tzinfo=timezone(timedelta(hours=2))),  # another zone: written in UTC
    ],
)
def test_the_line_is_the_events_json(ts: datetime) -> None:
    event = _event(ts)
    line = event.to_jsonl()
    assert line.endswith(b"\n") and line.count(b"\n") == 1
    row = json.loads(line)
    assert row == event.to_json() and list(row) == COLUMNS
    assert row["ts"].endswith("Z") and datetime.fromisoformat(row["ts"].replace("Z", "+00:00")) == ts
    assert (row["input_cost_usd"], row["cache_read_cost_usd"], row["cache_write_cost_usd"]) == (
        "0.000180",
        "0.000000000012",  # exact to 12 places, rounded half even
        "0.000000",
    )


def test_a_lone_surrogate_is_written_escaped_as_the_stdlib_writes_it() -> None:
    event = _event(datetime(2026, 12, 5, tzinfo=UTC), prompt_text="a\ud800b")
    line = event.to_jsonl()
    assert b"\\ud800" in line and json.loads(line) == event.to_json()


def test_a_value_json_cannot_hold_is_an_error_not_a_line() -> None:
    with pytest.raises(TypeError):
        _event(datetime(2026, 12, 5, tzinfo=UTC), latency_ms=object()).to_jsonl()
