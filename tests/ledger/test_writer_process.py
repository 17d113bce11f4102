"""The gateway's ledger writes run in a child process: same events in the database, nothing lost when it fails."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import threading
import time
from decimal import Decimal
from pathlib import Path

import pytest

from tokenomy.ledger.events import UsageEvent, utcnow
from tokenomy.ledger.journal import Journal
from tokenomy.ledger.rejects import rejects_path
from tokenomy.ledger.store import open_store
from tokenomy.ledger.writer_process import ProcessLedgerWriter, WriterProcessError


def event(event_id: str, cost: str = "0.000275", **extra) -> UsageEvent:
    return UsageEvent(ts=utcnow(), provider="openai", model="m", event_id=event_id, cost_usd=Decimal(cost), **extra)


def child_argv(writer: ProcessLedgerWriter) -> list[str]:
    assert writer._child is not None
    return Path(f"/proc/{writer._child.pid}/cmdline").read_bytes().decode().split("\0")


def test_the_child_writes_every_field_sets_aside_what_the_store_refuses_and_empties_the_journal(tmp_path):
    store = open_store(tmp_path / "ledger.duckdb")
    journal_dir = tmp_path / "journal"
    writer = ProcessLedgerWriter(store, flush_interval=3600, journal=Journal(journal_dir))
    rich = event(
        "rich",
        "0.001234567891",
        tags={"team": "süd", "app": "x"},
        prompt_text="naïve 😀",
        latency_ms=12.5,
        input_tokens=1200,
        cache_read_tokens=800,
        input_cost_usd=Decimal("0.0003"),
        route="r",
        tier="cheap",
        image_count=2,
        tool_call_count=1,
        prefix_hash="p" * 16,
        prefix_tokens=512,
    )
    huge = event("huge", "750000000", input_tokens=10**15)  # more than DECIMAL(20,12) holds
    for e in (event("a"), rich, huge):
        writer.record(e)
    assert writer.flush() == 3 and writer.pending == 0
    child = writer._child
    assert child is not None and child.pid != os.getpid() and str(tmp_path) not in " ".join(child_argv(writer))
    stored = {e.event_id: e for e in store.events()}
    assert sorted(stored) == ["a", "rich"]
    assert stored["rich"] == rich  # every field, through the JSONL line and the child, as recorded
    [line] = rejects_path(store).read_text().splitlines()
    assert json.loads(line)["event_id"] == "huge"
    writer.record(event("b"))
    writer.close()
    assert child.returncode == 0 and sorted(e.event_id for e in store.events()) == ["a", "b", "rich"]
    assert not list(journal_dir.glob("*.jsonl"))


def test_token_counts_past_64_bits_reach_the_rejects_file_exactly_through_the_child(tmp_path):
    # orjson reads an integer past 64 bits as a float: 10**30 tokens were set aside as 1e+30, and -(2**63 + 1)
    # rounded to -2**63 and was written to the ledger.
    store = open_store(tmp_path / "ledger.duckdb")
    writer = ProcessLedgerWriter(store, flush_interval=3600)
    writer.record(event("huge", input_tokens=10**30, output_tokens=2**64))
    writer.record(event("negative", input_tokens=-(2**63) - 1))
    writer.record(event("a"))
    assert writer.flush() == 3
    writer.close()
    assert [e.event_id for e in store.events()] == ["a"]
    kept = {r["event_id"]: r for r in map(json.loads, rejects_path(store).read_text().splitlines())}
    assert kept["huge"]["input_tokens"] == 10**30 and kept["huge"]["output_tokens"] == 2**64
    assert kept["negative"]["input_tokens"] == -(2**63) - 1


def test_an_event_recorded_after_close_is_written_through_a_child_that_is_then_stopped(tmp_path):
    # A provider call left running by a cancelled request may end after the gateway's shutdown closed the writer.
    store = open_store(tmp_path / "ledger.duckdb")
    writer = ProcessLedgerWriter(store, flush_interval=3600, journal=Journal(tmp_path / "journal"))
    writer.close()
    writer.record(event("late"))
    assert [e.event_id for e in store.events()] == ["late"] and writer._child is None


def running(tmp_path) -> tuple:
    """A store, and a writer whose child has written event "a" and is running."""
    store = open_store(tmp_path / "ledger.duckdb")
    writer = ProcessLedgerWriter(store, flush_interval=3600)
    writer.record(event("a"))
    writer.flush()
    assert writer._child is not None and writer._child.poll() is None
    return store, writer, writer._child


def test_a_killed_child_is_started_again_and_a_batch_it_died_with_is_sent_again(tmp_path, caplog):
    store, writer, first = running(tmp_path)
    first.kill()
    first.wait()
    writer.record(event("b"))
    assert writer.flush() == 1  # a dead child is noticed before the batch goes out: a new one writes it
    assert writer._child is not None and writer._child.pid != first.pid
    writer._child.kill()
    writer._child.wait()
    # One killed while it writes a batch (SIGKILL, the OOM killer): said as a kill, not as "status -9".
    writer._child = subprocess.Popen(
        [sys.executable, "-c", "import os, sys; sys.stdin.buffer.readline(); os.kill(os.getpid(), 9)"],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
    )
    writer.record(event("b2"))
    assert writer.flush() == 1
    assert "the ledger writer process was killed by SIGKILL; starting another" in caplog.text
    writer._child.kill()
    writer._child.wait()

    # A child that dies with the batch in hand (it reads the frame's header, then exits without an answer).
    def dying() -> subprocess.Popen:
        return subprocess.Popen(
            [sys.executable, "-c", "import sys; sys.stdin.buffer.readline()"],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
        )

    writer._child = dying()
    writer.record(event("c"))
    assert writer.flush() == 1  # a new child took it at once, not after the backoff meant for a database down
    # Children that keep dying: the batch is kept for the writer's retries.
    real = writer._running_child
    writer._running_child = dying  # type: ignore[method-assign]
    writer.record(event("d"))
    with pytest.raises(WriterProcessError, match="exited"):
        writer.flush()
    assert writer.pending == 1
    writer._running_child = real  # type: ignore[method-assign]
    assert writer.flush() == 1
    writer.close()
    assert sorted(e.event_id for e in store.events()) == ["a", "b", "b2", "c", "d"]


def test_the_child_outlives_sigterm_and_sigint_so_the_gateway_last_flush_is_written(tmp_path):
    # `kill` of the process group or a Ctrl-C reaches the child too: it must wait for the gateway's last batch.
    store, writer, child = running(tmp_path)
    child.send_signal(signal.SIGTERM)
    child.send_signal(signal.SIGINT)
    time.sleep(0.3)
    assert child.poll() is None  # still there for the last batch
    writer.record(event("last"))
    writer.close()
    assert child.returncode == 0 and sorted(e.event_id for e in store.events()) == ["a", "last"]


def test_a_child_whose_gateway_was_killed_before_its_answer_exits_quietly(tmp_path):
    # A SIGKILLed gateway leaves the child answering into a pipe nobody reads: it printed a BrokenPipeError
    # traceback on the terminal it shares with the gateway. What it was sent is in the gateway's journal.
    child = subprocess.Popen(
        [sys.executable, "-m", "tokenomy.ledger.writer_process"],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
    )
    assert child.stdin is not None and child.stdout is not None and child.stderr is not None
    child.stdout.close()  # the gateway is gone: nobody reads the answers
    url, line = str(tmp_path / "ledger.duckdb").encode(), event("a").to_jsonl()
    child.stdin.write(b"%d\n%s%d\n%s" % (len(url), url, len(line), line))
    child.stdin.close()
    stderr = child.stderr.read().decode()
    assert child.wait(30) == 0 and "Traceback" not in stderr and "BrokenPipe" not in stderr, stderr


def test_a_child_stuck_on_the_database_cannot_hold_the_shutdown_and_its_batch_stays_in_the_journal(
    tmp_path, monkeypatch, caplog
):
    # A lock another process holds (a DuckDB file open elsewhere: 30 s per attempt, three attempts; a PostgreSQL
    # lock: for ever) kept the child from answering, and the gateway's exit waited for it.
    from tokenomy.ledger import writer_process

    monkeypatch.setattr(writer_process, "SHUTDOWN_WAIT", 1.0)
    store = open_store(tmp_path / "ledger.duckdb")
    journal_dir = tmp_path / "journal"
    writer = ProcessLedgerWriter(store, flush_interval=3600, journal=Journal(journal_dir))
    stuck = subprocess.Popen(
        [sys.executable, "-c", "import time; time.sleep(600)"],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        start_new_session=True,
    )
    writer._child = stuck  # takes the batch, never answers
    writer.record(event("a"))
    closer = threading.Thread(target=writer.close, daemon=True)
    started = time.monotonic()
    closer.start()
    closer.join(20)
    try:
        assert not closer.is_alive(), "close() waited for a child that never answers"
        assert time.monotonic() - started < 10 and stuck.poll() is not None  # stopped, not left behind
    finally:
        stuck.kill()
        stuck.wait()
    [line] = [line for s in journal_dir.glob("*.jsonl") for line in s.read_text().splitlines()]
    assert json.loads(line)["event_id"] == "a"  # written at the next start
    assert "did not answer" in caplog.text and "kept in the journal" in caplog.text
    assert "retrying" not in caplog.text  # nothing retries it once the process is going


def test_the_answer_is_read_whatever_the_pipe_descriptor_number(tmp_path):
    # A gateway with a thousand connections open starts its child on descriptors past 1024, which select() refuses.
    import resource

    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    needed = 1200
    assert hard == resource.RLIM_INFINITY or hard >= needed, f"the hard limit of open files ({hard}) is below {needed}"
    if soft != resource.RLIM_INFINITY and soft < needed:  # raised for this test only, up to what the machine allows
        resource.setrlimit(resource.RLIMIT_NOFILE, (needed, hard))
    held = [os.open(os.devnull, os.O_RDONLY) for _ in range(1100)]
    try:
        writer = ProcessLedgerWriter(open_store(tmp_path / "ledger.duckdb"), flush_interval=3600)
        writer.record(event("a"))
        assert writer.flush() == 1
        assert writer._child is not None and writer._child.stdout.fileno() > 1024
        writer.close()
    finally:
        for fd in held:
            os.close(fd)
        resource.setrlimit(resource.RLIMIT_NOFILE, (soft, hard))


def test_a_module_in_the_working_directory_cannot_shadow_the_child_s_imports(tmp_path, monkeypatch):
    # `python -m` puts the working directory first on the path: an operator's tokenomy.py there was imported by the
    # child instead of the package, and no flush ever succeeded.
    (tmp_path / "tokenomy.py").write_text("print('my wrapper')\n")
    (tmp_path / "duckdb.py").write_text("raise ImportError('not the real duckdb')\n")
    monkeypatch.chdir(tmp_path)
    store = open_store(tmp_path / "ledger.duckdb")
    writer = ProcessLedgerWriter(store, flush_interval=3600)
    writer.record(event("a"))
    assert writer.flush() == 1
    writer.close()
    assert [e.event_id for e in store.events()] == ["a"]


def test_a_stray_line_on_the_child_s_output_stops_it_rather_than_shift_every_later_answer(tmp_path):
    # Read as an answer, a line some library printed left the real answer for the next batch: a failed write
    # would then be taken for a written one, and its events dropped from the buffer.
    store = open_store(tmp_path / "ledger.duckdb")
    writer = ProcessLedgerWriter(store, flush_interval=3600)
    script = (
        "import sys\n"
        'for reply in (b\'junk\\n{"written": 1}\\n\', b\'{"error": "down"}\\n\'):\n'
        "    sys.stdin.buffer.read(int(sys.stdin.buffer.readline()))\n"
        "    sys.stdout.buffer.write(reply); sys.stdout.flush()\n"
    )
    writer._child = subprocess.Popen([sys.executable, "-c", script], stdin=subprocess.PIPE, stdout=subprocess.PIPE)
    writer.record(event("a"))
    with pytest.raises(WriterProcessError, match="junk"):
        writer.flush()
    writer.record(event("b"))
    assert writer.flush() == 2  # by a new child: both written, not "written" on the stale answer
    assert sorted(e.event_id for e in store.events()) == ["a", "b"]
    writer.close()


def test_a_ledger_the_child_cannot_open_keeps_the_batch_and_says_why(tmp_path):
    path = tmp_path / "ledger.duckdb"
    store = open_store(path)
    writer = ProcessLedgerWriter(store, flush_interval=3600)
    path.rename(tmp_path / "aside.duckdb")
    path.write_bytes(b"not a database" * 1000)
    writer.record(event("a"))
    with pytest.raises(WriterProcessError, match="cannot open the ledger"):
        writer.flush()
    assert writer.pending == 1
    path.unlink()
    (tmp_path / "aside.duckdb").rename(path)
    assert writer.flush() == 1
    writer.close()
    assert [e.event_id for e in store.events()] == ["a"]


@pytest.mark.parametrize(
    ("ledger", "setting", "in_child"),
    [
        ("ledger.duckdb", None, True),  # the default
        ("ledger.duckdb", "thread", False),
        ("chdb:ledger.chdb", None, False),  # one process owns an embedded chDB: a child could not open it
    ],
)
def test_the_gateway_writes_from_a_child_unless_told_not_to_or_the_engine_is_embedded(
    tmp_path, monkeypatch, ledger, setting, in_child
):
    from tokenomy.config import parse_config
    from tokenomy.gateway.state import Gateway

    monkeypatch.chdir(tmp_path)
    config = {"models": {"m": {"provider": "openai", "model": "m", "base_url": "http://127.0.0.1:9/v1"}}}
    if setting:
        config["gateway"] = {"ledger_writer": setting}
    gw = Gateway(parse_config(config), ledger)
    try:
        assert isinstance(gw.writer, ProcessLedgerWriter) is in_child
        gw.writer.record(event("a"))
        gw.writer.flush()
        assert [e.event_id for e in gw.store.events()] == ["a"]
    finally:
        gw.writer.close()


def test_an_event_the_child_cannot_read_is_logged_by_its_id_and_size_not_its_prompt(caplog):
    import logging

    from tokenomy.ledger.writer_process import _decoded

    # The child logged the line's first 300 characters, which hold the prompt when store_prompts is on.
    line = json.dumps(
        {
            "event_id": "ev-42",
            "ts": "not a time",
            "provider": "openai",
            "model": "m",
            "prompt_text": "Board memo: the merger closes Friday",
        }
    ).encode()
    with caplog.at_level(logging.ERROR):
        assert _decoded([line]) == []
    assert "merger" not in caplog.text, caplog.text
    assert "ev-42" in caplog.text and f"{len(line)} bytes" in caplog.text and "ValueError" in caplog.text


def test_a_flush_held_off_by_another_process_s_lock_says_the_whole_fix(tmp_path, monkeypatch, caplog):
    # The log line was cut at 300 characters, mid-word in the lock's fix ("...between processes with Postgre").
    import logging

    import tokenomy.ledger.store as store_module
    from tokenomy.ledger.writer import LedgerWriter

    path = tmp_path / "ledger.duckdb"
    store = open_store(path)
    holder = subprocess.Popen(
        [
            sys.executable,
            "-c",
            f"import duckdb, time; c = duckdb.connect({str(path)!r}); print(1, flush=True); time.sleep(60)",
        ],
        stdout=subprocess.PIPE,
    )
    try:
        assert holder.stdout is not None and holder.stdout.readline()
        monkeypatch.setattr(store_module, "LOCK_WAIT_SECONDS", 0.2)
        caplog.set_level(logging.WARNING, logger="tokenomy.ledger.writer")
        writer = LedgerWriter(store, flush_interval=0.05)
        writer.record(event("a"))
        deadline = time.monotonic() + 20
        while not caplog.records and time.monotonic() < deadline:
            time.sleep(0.05)
    finally:
        holder.kill()
        holder.wait()
    writer.close()
    said = caplog.records[0].getMessage()
    assert f"process {holder.pid}" in said and "(--ledger postgresql://...)); retrying in" in said, said
    assert [e.event_id for e in store.events()] == ["a"]


def test_a_database_that_stops_answering_is_said_in_the_log_while_the_write_waits(tmp_path, monkeypatch, caplog):
    # A PostgreSQL server paused or behind a dropped route refuses nothing: the child's write waited without an
    # error, and the log said nothing while rows stopped reaching the ledger.
    import logging

    from tokenomy.ledger import writer_process

    monkeypatch.setattr(writer_process, "STALL_WARN", 0.5)
    caplog.set_level(logging.WARNING, logger="tokenomy.ledger.writer_process")
    store = open_store(tmp_path / "ledger.duckdb")
    journal_dir = tmp_path / "journal"
    writer = ProcessLedgerWriter(store, flush_interval=3600, journal=Journal(journal_dir))
    slow = subprocess.Popen(  # takes the batch, answers after 2 s
        [
            sys.executable,
            "-c",
            "import sys, time; n = int(sys.stdin.buffer.readline()); sys.stdin.buffer.read(n); time.sleep(2); "
            "print('{\"written\": 1}', flush=True); sys.stdin.buffer.read()",
        ],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
    )
    writer._child = slow
    writer.record(event("a"))
    try:
        assert writer.flush() == 1
    finally:
        slow.kill()
        slow.wait()
        writer._child = None
        writer.close()
    said = [r.getMessage() for r in caplog.records]
    assert len(said) == 2, said
    assert "no answer from the database for 0.5 s" in said[0] and str(store.path) in said[0], said
    assert f"kept in the journal {journal_dir}" in said[0], said
    assert said[1].startswith("ledger write answered after"), said
