"""The ledger journal: fsynced before an answer, replayed once (idempotently) after a crash, never a live one."""

from __future__ import annotations

import asyncio
import os
import subprocess
import sys
from decimal import Decimal

import pytest

from tokenomy.chat_response import Usage
from tokenomy.errors import ConfigError
from tokenomy.gateway.pricing import GatewayCatalog
from tokenomy.ledger.events import UsageEvent, utcnow
from tokenomy.ledger.journal import Journal, claim, journal_dir, legacy_journal_dir
from tokenomy.ledger.journal_replay import event_from_jsonl, replay
from tokenomy.ledger.store import open_store
from tokenomy.pricing.cost import compute_cost

HAIKU = "anthropic.claude-3-haiku-20240307-v1:0"


def test_a_dead_process_journal_is_replayed_once_skipping_a_torn_line_and_present_ids(tmp_path):
    folder = tmp_path / "journal"
    script = f"""
import asyncio, os
from decimal import Decimal
from tokenomy.ledger.events import UsageEvent, utcnow
from tokenomy.ledger.journal import Journal
journal = Journal(__import__("pathlib").Path({str(folder)!r}))
for i in range(3):
    journal.append(UsageEvent(ts=utcnow(), provider="openai", model="m", event_id=f"e{{i}}",
                              cost_usd=Decimal("0.000275")))
asyncio.run(journal.durable_async())
os._exit(9)  # no clean shutdown: the segment stays behind
"""
    subprocess.run([sys.executable, "-c", script], check=False, timeout=60)
    [segment] = folder.glob("journal-*.jsonl")
    with segment.open("ab") as handle:
        handle.write(b'{"ts": "2026-01-01T00:00:00Z", "provid')  # torn: never acknowledged
    store = open_store(tmp_path / "ledger.duckdb")
    store.write([UsageEvent(ts=utcnow(), provider="openai", model="m", event_id="e0", cost_usd=Decimal("0.000275"))])
    assert replay(folder, store) == 3
    assert store.count() == 3  # e0 was already there: not written twice
    assert sum(e.cost_usd for e in store.events()) == Decimal("0.000825")
    assert replay(folder, store) == 0 and not list(folder.glob("*.jsonl"))


def test_a_live_journal_is_not_replayed_and_waiters_return_once_it_is_on_disk(tmp_path):
    folder = tmp_path / "journal"
    journal = Journal(folder, sync="fsync")
    event = UsageEvent(ts=utcnow(), provider="openai", model="m")
    seq = journal.append(event)
    asyncio.run(asyncio.wait_for(journal.durable_async(seq), 10))
    assert journal.durable >= seq
    [segment] = folder.glob("journal-*.jsonl")
    assert event.event_id.encode() in segment.read_bytes()
    store = open_store(tmp_path / "ledger.duckdb")
    assert replay(folder, store) == 0 and segment.exists()  # held by this live process
    journal.discard()
    assert not segment.exists() and os.listdir(folder) == []


def test_write_mode_has_the_event_in_the_file_before_durable_returns_and_fsync_mode_waits_for_disk(tmp_path):
    """ "write": the line is in the file (the OS has it: a killed process loses nothing) at once, synced on a
    timer; "fsync": durable_async returns only once the line is fdatasync'ed (durable catches up)."""
    for sync in ("write", "fsync"):
        journal = Journal(tmp_path / sync, sync=sync, interval=30.0)  # the timer never fires in this test
        seq = journal.append(UsageEvent(ts=utcnow(), provider="openai", model="m", event_id=f"{sync}-1"))
        asyncio.run(asyncio.wait_for(journal.durable_async(seq), 10))
        [segment] = (tmp_path / sync).glob("journal-*.jsonl")
        assert f"{sync}-1".encode() in segment.read_bytes()
        assert (journal.durable >= seq) == (sync == "fsync")  # "write" did not wait for the disk
        assert journal.durable_sync(seq, timeout=10) and journal.durable >= seq  # on demand, either mode
        journal.discard()


def test_a_journal_written_in_write_mode_survives_sigkill(tmp_path):
    folder = tmp_path / "journal"
    script = f"""
import os
from tokenomy.ledger.events import UsageEvent, utcnow
from tokenomy.ledger.journal import Journal
journal = Journal(__import__("pathlib").Path({str(folder)!r}), sync="write", interval=3600)
for i in range(50):
    journal.append(UsageEvent(ts=utcnow(), provider="openai", model="m", event_id=f"k{{i}}"))
os.kill(os.getpid(), 9)  # no fsync ever ran: the lines are only in the page cache, which outlives the process
"""
    subprocess.run([sys.executable, "-c", script], check=False, timeout=60)
    store = open_store(tmp_path / "ledger.duckdb")
    assert replay(folder, store) == 50 and store.count() == 50


def test_a_segment_that_cannot_be_rotated_stays_current_and_keeps_every_later_event(tmp_path, monkeypatch):
    # Rotation sealed the full segment first, then opened the next; when that failed (disk full, no inodes) the
    # sealed segment stayed current too, so the next flush deleted the file still being written: every later
    # answer went to a closed file, for good, and a crash lost them.
    import tokenomy.ledger.journal as journal_module

    monkeypatch.setattr(journal_module, "SEGMENT_BYTES", 1)  # every append fills the segment
    folder = tmp_path / "journal"
    journal = Journal(folder, interval=30.0)
    opened = journal._open_segment

    def disk_full():
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(journal, "_open_segment", disk_full)
    first = journal.append(UsageEvent(ts=utcnow(), provider="openai", model="m", event_id="e1"))
    journal.written_to_store(first)  # e1 is in the database: only what holds nothing newer may go
    monkeypatch.setattr(journal, "_open_segment", opened)  # the disk has room again
    journal.append(UsageEvent(ts=utcnow(), provider="openai", model="m", event_id="e2"))
    on_disk = b"".join(path.read_bytes() for path in folder.glob("journal-*.jsonl"))
    journal.discard()
    assert b'"e2"' in on_disk  # a crash now would replay it


def test_a_journal_folder_is_claimed_by_one_ledger_however_its_path_is_written(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    folder = tmp_path / "journal"
    claim(folder, open_store("ledger.duckdb"))
    claim(folder, open_store(tmp_path / "ledger.duckdb"))  # the same file: the same owner
    claim(folder, open_store(f"{tmp_path}/sub/../ledger.duckdb"))
    with pytest.raises(ConfigError) as refused:
        claim(folder, open_store(tmp_path / "other.duckdb"))
    assert str(tmp_path / "ledger.duckdb") in str(refused.value) and "other.duckdb" in str(refused.value)
    assert [p.name for p in folder.iterdir()] == ["LEDGER"]  # no draft left behind


def test_a_server_ledgers_journal_folder_survives_a_password_change_and_never_shows_the_password(tmp_path):
    from types import SimpleNamespace

    folder = tmp_path / "journal"
    claim(folder, SimpleNamespace(url="postgresql://app:old-secret@db.internal:5432/ledger"))
    claim(folder, SimpleNamespace(url="postgresql://app:new-secret@db.internal:5432/ledger"))  # the same database
    with pytest.raises(ConfigError) as refused:
        claim(folder, SimpleNamespace(url="postgresql://app:new-secret@db.internal:5432/staging"))
    assert "db.internal:5432/ledger" in str(refused.value) and "secret" not in str(refused.value)
    assert "secret" not in (folder / "LEDGER").read_text()


@pytest.mark.postgres
def test_a_server_ledgers_journal_is_replayed_after_a_password_change_and_from_where_older_versions_kept_it(
    fresh_postgres_url, tmp_path, monkeypatch
):
    # The default folder was named after the whole URL, password included: after a password change a gateway looked
    # in another folder, and the answered calls a crashed one had left were never written to the ledger. The folder
    # older versions used (for the URL the gateway starts with) is replayed too.
    from tokenomy.config import parse_config
    from tokenomy.gateway.state import Gateway

    monkeypatch.chdir(tmp_path)
    url = fresh_postgres_url.replace("postgres@", "postgres:old-secret@", 1)
    before, changed = open_store(url), open_store(url.replace("old-secret", "new-secret"))
    assert journal_dir(before) == journal_dir(changed) != legacy_journal_dir(before)
    left = {journal_dir(before): "left-by-a-crash", legacy_journal_dir(before): "left-before-the-upgrade"}
    for folder, event_id in left.items():
        folder.mkdir(parents=True, exist_ok=True)
        event = UsageEvent(ts=utcnow(), provider="openai", model="m", event_id=event_id)
        (folder / "journal-1-dead-0.jsonl").write_bytes(event.to_jsonl())
    models = {"m": {"provider": "openai", "model": "gpt-4o-mini", "base_url": "http://127.0.0.1:9"}}
    gateway = Gateway(parse_config({"models": models}), url)
    try:
        assert {row.event_id for row in open_store(url).events()} == set(left.values())
    finally:
        gateway.client.close()
    assert not [path for folder in left for path in folder.glob("journal-*.jsonl")]


def test_a_server_ledgers_name_keeps_every_host_and_option_that_picks_the_database_and_no_credential():
    # A multi-host URL (libpq takes "h1:5432,h2:5433") made the journal folder's name a ValueError traceback; options
    # that pick another database (host=, service=) were dropped, so two ledgers shared one folder.
    from types import SimpleNamespace

    from tokenomy.ledger.journal import ledger_name

    def name(url: str) -> str:
        return ledger_name(SimpleNamespace(url=url))

    assert name("postgresql://app:secret@H1:5432,h2:5433/ledger") == "postgresql://h1:5432,h2:5433/ledger"
    assert name("postgresql:///tokenomy?host=/run/pg-a") != name("postgresql:///tokenomy?host=/run/pg-b")
    assert name("postgresql://?service=prod") != name("postgresql://?service=staging")
    assert name("postgresql://db/ledger?password=old&sslmode=require") == name(
        "postgresql://db/ledger?sslmode=require&password=new"
    )
    assert "secret" not in name("postgresql://db/ledger?user=app&password=secret")


def fill_the_disk(monkeypatch) -> dict:
    """Journal writes fail as on a full disk (a write that tears its line halfway, then ENOSPC) while `full["now"]`."""
    import tokenomy.ledger.journal as journal_module

    full = {"now": False}
    write = journal_module._Segment._write_some

    def written(segment, view):
        if not full["now"]:
            return write(segment, view)
        if len(view) > 100:  # the last blocks' room: part of the line goes in
            return write(segment, view[: len(view) // 2])
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(journal_module._Segment, "_write_some", written)
    return full


def test_events_the_journal_could_not_write_are_written_once_the_disk_has_room_and_never_tear_a_line(
    tmp_path, monkeypatch
):
    # A journal write that failed (disk full) left half a line in the segment and the event nowhere but in memory: the
    # next line, once there was room, was written after the torn half (both unreadable at replay), and with the
    # database down at shutdown the events were lost though the log said they were "kept in the journal".
    from tokenomy.ledger.writer import LedgerWriter

    full = fill_the_disk(monkeypatch)
    store = open_store(tmp_path / "ledger.duckdb")
    monkeypatch.setattr(store, "write", lambda events: (_ for _ in ()).throw(RuntimeError("database down")))
    folder = tmp_path / "journal"
    writer = LedgerWriter(store, flush_interval=30, journal=Journal(folder, interval=30.0))

    def record(event_id: str) -> None:
        writer.record(
            UsageEvent(ts=utcnow(), provider="openai", model="m", event_id=event_id, cost_usd=Decimal("0.000275"))
        )

    record("e1")
    full["now"] = True
    record("e2"), record("e3")
    full["now"] = False  # room again
    record("e4")
    writer.close()  # the database is still down: what it has not taken must be in the journal, every line whole
    lines = b"".join(path.read_bytes() for path in sorted(folder.glob("journal-*.jsonl"))).splitlines()
    assert sorted(event_from_jsonl(line).event_id for line in lines) == ["e1", "e2", "e3", "e4"]


def test_events_neither_the_database_nor_the_journal_took_are_logged_whole_not_said_to_be_kept(
    tmp_path, monkeypatch, caplog
):
    from tokenomy.ledger.writer import LedgerWriter

    full = fill_the_disk(monkeypatch)
    store = open_store(tmp_path / "ledger.duckdb")
    monkeypatch.setattr(store, "write", lambda events: (_ for _ in ()).throw(RuntimeError("database down")))
    folder = tmp_path / "journal"
    writer = LedgerWriter(store, flush_interval=30, journal=Journal(folder, interval=30.0))
    writer.record(UsageEvent(ts=utcnow(), provider="openai", model="m", event_id="e1"))
    full["now"] = True  # and it stays full
    writer.record(UsageEvent(ts=utcnow(), provider="openai", model="m", event_id="e2"))
    writer.close()
    said = caplog.text
    assert "1 events kept in the journal" in said and "e1" not in said.split("kept in the journal")[0]
    assert "1 events are in neither" in said and '"event_id":"e2"' in said and "tokenomy ledger import" in said


def test_an_event_the_disk_had_no_room_for_is_not_said_to_be_on_disk_and_is_synced_once_there_is_room(
    tmp_path, monkeypatch
):
    # With sync "fsync", the sync thread counted every appended event as on disk, those still waiting for room
    # included: durable_sync said True (and durable_async released its caller) for an event in memory only.
    full = fill_the_disk(monkeypatch)
    journal = Journal(tmp_path / "journal", sync="fsync", interval=0.05)
    try:
        first = journal.append(UsageEvent(ts=utcnow(), provider="openai", model="m", event_id="e1"))
        assert journal.durable_sync(first, timeout=5)
        full["now"] = True
        waiting = journal.append(UsageEvent(ts=utcnow(), provider="openai", model="m", event_id="e2"))
        assert not journal.durable_sync(waiting, timeout=0.5)  # in memory only: not on disk
        full["now"] = False  # room again, and no answer comes to write it: the sync thread retries on its own
        assert journal.durable_sync(waiting, timeout=5)
    finally:
        journal.close()
    lines = b"".join(p.read_bytes() for p in sorted((tmp_path / "journal").glob("journal-*.jsonl"))).splitlines()
    assert [event_from_jsonl(line).event_id for line in lines] == ["e1", "e2"]


def test_in_flight_entries_without_a_row_are_replayed_as_interrupted_rows_across_sealed_segments(tmp_path):
    # A gateway killed while attempts were at their provider left no trace of them (the provider billed them):
    # each now has an in-flight entry, superseded by its row or a void line, and handed on when a segment is sealed.
    folder = tmp_path / "journal"
    script = f"""
import os
from decimal import Decimal
from pathlib import Path
import tokenomy.ledger.journal as journal_module
from tokenomy.ledger.events import UsageEvent, utcnow
journal_module.SEGMENT_BYTES = 1  # every event line seals its segment
journal = journal_module.Journal(Path({str(folder)!r}), interval=30.0)
def row(event_id, outcome="interrupted", **extra):
    return UsageEvent(ts=utcnow(), provider="openai", model="m", outcome=outcome, event_id=event_id,
                      input_tokens=100, cost_usd=Decimal("0.000025"), **extra)
journal.in_flight("a", row("a").to_jsonl())
journal.in_flight("b", row("b").to_jsonl())
seq = journal.append(row("a", "ok"))  # a's row supersedes its entry; the full segment is sealed, b handed on
journal.written_to_store(seq)  # the sealed segment (a's entry and row, b's first entry) is deleted
journal.in_flight("c", row("c").to_jsonl())
journal.void("c")  # c ended unsent
journal.in_flight("d", row("d").to_jsonl())
journal.in_flight("f", row("f").to_jsonl())
journal.append(row("e", "ok", tags={{"event_id": "d"}}))  # a tag named event_id is not e's id
journal.append(row("f", "ok"))
os._exit(9)  # SIGKILL-like: no clean shutdown
"""
    subprocess.run([sys.executable, "-c", script], check=False, timeout=60)
    store = open_store(tmp_path / "ledger.duckdb")
    assert replay(folder, store) == 4
    rows = {e.event_id: e.outcome for e in store.events()}
    assert rows == {"b": "interrupted", "d": "interrupted", "e": "ok", "f": "ok"}
    assert not list(folder.glob("*.jsonl"))


def test_in_flight_entries_are_priced_at_replay_with_the_catalog_it_is_given_and_an_unknown_model_kept_at_zero(
    tmp_path,
):
    # The entry carries the attempt's tokens and the model it is priced as, not a cost: pricing it on every attempt
    # was most of the entry's cost on the request path. The replay prices it as the attempt's own row would be.
    folder = tmp_path / "journal"
    script = f"""
import os
from pathlib import Path
from tokenomy.ledger.events import row_jsonl, utcnow
from tokenomy.ledger.journal import Journal
journal = Journal(Path({str(folder)!r}), interval=30.0)
def entry(event_id, model, **extra):
    return row_jsonl({{"ts": utcnow(), "provider": "openai", "model": model, "mode": "on_demand",
                      "input_tokens": 1200, "outcome": "interrupted", "error_type": "GatewayStopped", **extra,
                      "event_id": event_id}})
journal.in_flight("mapped", entry("mapped", "slow"), price_as={HAIKU!r})
journal.in_flight("batch", entry("batch", "slow", mode="batch", region="us-east-1"), price_as={HAIKU!r})
journal.in_flight("unknown", entry("unknown", "my-own-model"), price_as="my-own-model")
journal.in_flight("global", entry("global", "slow", region="global"), price_as={HAIKU!r})
os._exit(9)
"""
    subprocess.run([sys.executable, "-c", script], check=False, timeout=60)
    store = open_store(tmp_path / "ledger.duckdb")
    assert replay(folder, store, GatewayCatalog()) == 4
    rows = {e.event_id: e for e in store.events()}
    for event_id, mode, region in [("mapped", "on_demand", None), ("batch", "batch", "us-east-1"),
                                   ("global", "on_demand", None)]:  # fmt: skip
        expected = compute_cost(Usage(input_tokens=1200), HAIKU, region, mode, one_call=True)
        row = rows[event_id]
        assert expected.total_usd > 0
        assert (row.model, row.cost_usd, row.input_cost_usd, row.priced_by) == (
            "slow", expected.total_usd, expected.input_usd, expected.priced_by)  # fmt: skip
    unknown = rows["unknown"]  # recorded as an unpriced answered call is: its tokens at $0, marked unpriced
    assert (unknown.input_tokens, unknown.cost_usd, unknown.priced_by) == (1200, 0, "unpriced")
    assert all(e.outcome == "interrupted" for e in rows.values())


def test_an_in_flight_entry_an_older_version_priced_when_it_wrote_it_keeps_its_cost(tmp_path):
    folder = tmp_path / "journal"
    script = f"""
import os
from decimal import Decimal
from pathlib import Path
from tokenomy.ledger.events import UsageEvent, utcnow
from tokenomy.ledger.journal import Journal
journal = Journal(Path({str(folder)!r}), interval=30.0)
row = UsageEvent(ts=utcnow(), provider="openai", model="m", outcome="interrupted", event_id="old",
                 input_tokens=100, cost_usd=Decimal("0.000025"), priced_by="catalog")
journal.in_flight("old", row.to_jsonl())
os._exit(9)
"""
    subprocess.run([sys.executable, "-c", script], check=False, timeout=60)
    store = open_store(tmp_path / "ledger.duckdb")
    assert replay(folder, store, GatewayCatalog()) == 1
    [row] = store.events()
    assert (row.cost_usd, row.priced_by) == (Decimal("0.000025"), "catalog")


def test_an_in_flight_entry_of_a_dearer_tier_is_priced_at_it_on_replay(tmp_path):
    # A call asked at flex or priority, in flight when the gateway died: the replay priced it at the standard tier,
    # though OpenAI bills the tier asked for (as the attempt's own row, and the gateway's reservation, price it).
    # o3 per 1M input tokens (openai.yaml): standard $2, flex $1, priority $3.50; batch $1 (no tier applies).
    folder = tmp_path / "journal"
    script = f"""
import os
from pathlib import Path
from tokenomy.ledger.events import row_jsonl, utcnow
from tokenomy.ledger.journal import Journal
journal = Journal(Path({str(folder)!r}), interval=30.0)
def entry(event_id, mode="on_demand"):
    return row_jsonl({{"ts": utcnow(), "provider": "openai", "model": "o3", "mode": mode, "input_tokens": 1000,
                      "outcome": "interrupted", "error_type": "GatewayStopped", "event_id": event_id}})
journal.in_flight("flex", entry("flex"), price_as="o3", tier="flex")
journal.in_flight("priority", entry("priority"), price_as="o3", tier="priority")
journal.in_flight("standard", entry("standard"), price_as="o3")
journal.in_flight("batch", entry("batch", mode="batch"), price_as="o3", tier="flex")
os._exit(9)
"""
    subprocess.run([sys.executable, "-c", script], check=False, timeout=60)
    store = open_store(tmp_path / "ledger.duckdb")
    assert replay(folder, store, GatewayCatalog()) == 4
    rows = {e.event_id: e for e in store.events()}
    assert {k: (e.cost_usd, e.tags.get("service_tier")) for k, e in rows.items()} == {
        "flex": (Decimal("0.001"), "flex"),
        "priority": (Decimal("0.0035"), "priority"),
        "standard": (Decimal("0.002"), None),
        "batch": (Decimal("0.001"), None),
    }


def test_a_segment_being_opened_is_never_taken_for_a_dead_one_by_a_replay_beside_it(tmp_path, monkeypatch):
    # A new segment was created, then locked: a gateway starting beside it (another worker of the same `serve`)
    # that replayed the folder in between found it unlocked, took it for a dead process's, and deleted it, while its
    # owner went on writing every answer into the deleted file, for a crash to lose.
    import fcntl

    folder = tmp_path / "journal"
    store = open_store(tmp_path / "ledger.duckdb")
    locking = fcntl.flock
    replayed = []

    def replay_first(handle, operation):  # the neighbour's replay runs between the segment's creation and its lock
        if not replayed and getattr(handle, "mode", "") == "ab":
            replayed.append(replay(folder, store))
        return locking(handle, operation)

    monkeypatch.setattr(fcntl, "flock", replay_first)
    journal = Journal(folder, interval=30.0)
    journal.append(UsageEvent(ts=utcnow(), provider="openai", model="m", event_id="kept"))
    on_disk = b"".join(path.read_bytes() for path in folder.glob("journal-*.jsonl"))
    journal.close()
    assert replayed == [0]
    assert b'"kept"' in on_disk  # a crash now would replay it
