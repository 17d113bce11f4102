"""An event the ledger cannot store is set aside in a file, logged, and never blocks the events around it."""

from __future__ import annotations

import json
import logging
import subprocess
import sys
from decimal import Decimal
from pathlib import Path

from tokenomy.ledger.events import UsageEvent, utcnow
from tokenomy.ledger.journal import Journal
from tokenomy.ledger.journal_replay import replay
from tokenomy.ledger.rejects import rejects_path, write_setting_aside
from tokenomy.ledger.store import open_store
from tokenomy.ledger.writer import LedgerWriter

TOKENOMY = str(Path(sys.executable).with_name("tokenomy"))


def event(event_id: str, cost: str = "0.000275", **extra) -> UsageEvent:
    return UsageEvent(ts=utcnow(), provider="openai", model="m", event_id=event_id, cost_usd=Decimal(cost), **extra)


def test_a_cost_out_of_range_is_set_aside_and_the_rest_of_the_batch_is_written(tmp_path, caplog):
    # An upstream that reported 10^15 tokens: $750M, more than DECIMAL(20,12) holds. Before, every flush failed
    # ("out of range"), every later answer piled up unwritten, and the journal replay failed the next start too.
    store = open_store(tmp_path / "ledger.duckdb")
    writer = LedgerWriter(store, flush_interval=3600, journal=Journal(tmp_path / "journal"))
    huge = event("huge", "750000000", input_tokens=10**15)
    for e in (event("a"), huge, event("b")):
        writer.record(e)
    with caplog.at_level(logging.ERROR, logger="tokenomy.ledger.rejects"):
        assert writer.flush() == 3
    writer.record(event("c"))
    writer.close()
    assert sorted(e.event_id for e in store.events()) == ["a", "b", "c"] and writer.pending == 0
    kept = rejects_path(store)
    [line] = kept.read_text().splitlines()
    assert json.loads(line)["event_id"] == "huge" and json.loads(line)["cost_usd"] == "750000000.000000"
    assert "cost_usd = 750000000 is out of the column's range" in caplog.text and str(kept) in caplog.text
    assert not list((tmp_path / "journal").glob("*.jsonl"))  # written or kept: the journal holds nothing more
    # The file is what `tokenomy ledger import` reads: once corrected, the event loads.
    kept.write_text(line.replace('"750000000.000000"', '"750.000000"').replace("1000000000000000", "1000"))
    loaded = subprocess.run(
        [TOKENOMY, "ledger", "import", str(kept), "--ledger", str(tmp_path / "ledger.duckdb")],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert loaded.returncode == 0, loaded.stderr
    assert {e.event_id: e.cost_usd for e in store.events()}["huge"] == Decimal("750")


def test_a_refusal_masked_by_its_clean_up_error_still_sets_the_event_aside(tmp_path):
    # DuckDB refusing a value inside the rollups' upsert, then "transaction is aborted" while the store unregistered
    # its view: the second error is the one raised, and taken for an outage the batch was retried forever.
    import duckdb

    store = open_store(tmp_path / "ledger.duckdb")
    write = store.write

    def refusing(events):
        if any(e.event_id == "bad" for e in events):
            try:
                raise duckdb.ConversionException("Could not convert the value")
            finally:
                raise duckdb.TransactionException("Current transaction is aborted (please ROLLBACK)")
        return write(events)

    store.write = refusing  # type: ignore[method-assign]
    writer = LedgerWriter(store, flush_interval=3600)
    writer.record_many([event("a"), event("bad"), event("b")])
    assert writer.flush() == 3
    writer.close()
    assert sorted(e.event_id for e in store.events()) == ["a", "b"]
    [line] = rejects_path(store).read_text().splitlines()
    assert json.loads(line)["event_id"] == "bad"


def test_an_event_the_engine_refuses_is_found_by_halving_the_batch(postgres_url, tmp_path, monkeypatch):
    # PostgreSQL text cannot hold a NUL byte (a stored prompt could carry one): the engine refuses the batch.
    monkeypatch.chdir(tmp_path)  # a server ledger's rejects file goes under ./.tokenomy
    store = open_store(postgres_url)
    ids = [f"pg-{utcnow().timestamp()}-{i}" for i in range(9)]
    events = [event(i, prompt_text="hi\x00there" if n == 5 else "hi") for n, i in enumerate(ids)]
    writer = LedgerWriter(store, flush_interval=3600)
    writer.record_many(events)
    assert writer.flush() == 9
    writer.close()
    stored = {r["event_id"] for r in store.query("SELECT event_id FROM usage_events WHERE event_id = ANY(%s)", [ids])}
    assert stored >= set(ids) - {ids[5]} and ids[5] not in stored
    [line] = rejects_path(store).read_text().splitlines()
    assert json.loads(line)["event_id"] == ids[5]


def test_the_replay_sets_aside_what_the_store_cannot_take(tmp_path):
    folder = tmp_path / "journal"
    script = f"""
import os
from decimal import Decimal
from pathlib import Path
from tokenomy.ledger.events import UsageEvent, utcnow
from tokenomy.ledger.journal import Journal
journal = Journal(Path({str(folder)!r}))
for i, cost in enumerate(("0.1", "1e9", "0.2")):
    journal.append(UsageEvent(ts=utcnow(), provider="openai", model="m", event_id=f"e{{i}}", cost_usd=Decimal(cost)))
journal.durable_sync()
os._exit(9)
"""
    subprocess.run([sys.executable, "-c", script], check=False, timeout=60)
    store = open_store(tmp_path / "ledger.duckdb")
    assert replay(folder, store) == 3  # before: the replay raised, and the gateway could not start
    assert sorted(e.event_id for e in store.events()) == ["e0", "e2"]
    assert json.loads(rejects_path(store).read_text())["event_id"] == "e1"
    assert not list(folder.glob("*.jsonl"))


def test_ledger_import_names_the_line_the_database_refuses_and_keeps_the_others(postgres_url, tmp_path):
    stamp = utcnow().timestamp()
    rows = [event(f"imp-{stamp}-{i}", prompt_text="a\x00b" if i == 1 else "ok").to_json() for i in range(3)]
    source = tmp_path / "events.jsonl"
    source.write_text("".join(json.dumps(r) + "\n" for r in rows))
    done = subprocess.run(
        [TOKENOMY, "ledger", "import", str(source), "--ledger", postgres_url],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert done.returncode == 1 and "Traceback" not in done.stderr
    assert "events.jsonl:2: the ledger database refused it" in done.stdout + done.stderr
    stored = open_store(postgres_url).query(
        "SELECT event_id FROM usage_events WHERE event_id = ANY(%s)", [[r["event_id"] for r in rows]]
    )
    assert sorted(r["event_id"] for r in stored) == [rows[0]["event_id"], rows[2]["event_id"]]


def test_an_event_whose_text_cannot_be_encoded_is_set_aside_not_retried_for_ever(tmp_path):
    # A lone surrogate in a model name (from a library caller) raised UnicodeEncodeError, which was not taken for the
    # event's own fault: every batch holding it failed, with either writer, and the rest piled up unwritten.
    from tokenomy.ledger.writer_process import ProcessLedgerWriter

    for name, make in (("thread", LedgerWriter), ("process", ProcessLedgerWriter)):
        store = open_store(tmp_path / f"{name}.duckdb")
        writer = make(store, flush_interval=3600)
        bad = UsageEvent(ts=utcnow(), provider="openai", model="bad\ud800name", event_id="bad")
        for e in (event("a"), bad, event("b")):
            writer.record(e)
        assert writer.flush() == 3 and writer.pending == 0
        writer.close()
        assert sorted(e.event_id for e in store.events()) == ["a", "b"], name
        [line] = rejects_path(store).read_text().splitlines()
        assert json.loads(line)["event_id"] == "bad" and json.loads(line)["model"] == "bad\ud800name"


def test_a_batch_sent_again_sets_nothing_aside_twice(tmp_path):
    # The writer process may set an event aside and die before it answers; the gateway then sends the batch again
    # to a new one. The written events are skipped by id; the set-aside one must not get a second line either.
    store = open_store(tmp_path / "ledger.duckdb")
    kept = rejects_path(store)
    batch = [event("a"), event("huge", "750000000", input_tokens=10**15)]
    assert write_setting_aside(store, batch, kept) == 2
    assert write_setting_aside(store, [*batch, event("huge2", "750000000")], kept) == 3
    assert [json.loads(line)["event_id"] for line in kept.read_text().splitlines()] == ["huge", "huge2"]
    assert [e.event_id for e in store.events()] == ["a"]
