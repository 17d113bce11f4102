"""The usage ledger: DuckDB and PostgreSQL round trips, import errors, SIGTERM flush."""

from __future__ import annotations

import json
import signal
import subprocess
import sys
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from pathlib import Path

import pytest

from tokenomy.errors import ConfigError
from tokenomy.ledger.events import UsageEvent
from tokenomy.ledger.io import export_to_string, import_file
from tokenomy.ledger.store import duckdb_path, local_path, open_store
from tokenomy.ledger.writer import LedgerWriter

T0 = datetime(2026, 11, 1, 12, 0, tzinfo=UTC)


def sample_events(n: int = 5) -> list[UsageEvent]:
    return [
        UsageEvent(
            ts=T0 + timedelta(minutes=i),
            provider="aws.bedrock",
            model="anthropic.claude-3-haiku-20240307-v1:0",
            region="us-east-1",
            task="classify",
            tags={"team": "support", "n": str(i)},
            input_tokens=100 * i,
            output_tokens=10 * i,
            cost_usd=Decimal("0.000123456789") * i,
            latency_ms=12.5 * i,
            ttft_ms=3.0,
            outcome="ok" if i % 2 == 0 else "throttled",
            attempt=1 + i % 2,
        )
        for i in range(n)
    ]


def assert_round_trip(store) -> None:
    events = sample_events()
    store.write(events)
    store.write(events[:2])  # re-writing the same events is a no-op
    back = store.events()
    assert len(back) == len(events)
    for original, loaded in zip(events, back, strict=True):
        assert loaded.to_json() == original.to_json()
    assert isinstance(back[3].cost_usd, Decimal) and back[3].cost_usd == Decimal("0.000370370367")
    assert back[0].ts.tzinfo is not None and back[0].ts.utcoffset() == timedelta(0)
    assert store.schema_version() == 1


def test_duckdb_round_trip(ledger_path):
    assert_round_trip(open_store(ledger_path))


@pytest.mark.postgres
def test_postgres_round_trip(fresh_postgres_url):
    assert_round_trip(open_store(fresh_postgres_url))


def test_schema_version_is_checked(ledger_path):
    store = open_store(ledger_path)
    store.execute("UPDATE tokenomy_meta SET value = '99' WHERE key = 'schema_version'")
    with pytest.raises(ConfigError, match="schema version 99"):
        open_store(ledger_path)


def test_import_reports_bad_lines_and_keeps_good_ones(tmp_path, ledger_path):
    good = {
        "ts": "2026-11-01T10:00:00Z",
        "provider": "aws.bedrock",
        "model": "anthropic.claude-3-haiku-20240307-v1:0",
        "region": "us-east-1",
        "mode": "on_demand",
        "task": "summarise",
        "tags": {"team": "a"},
        "input_tokens": 1000,
        "output_tokens": 200,
        "cache_read_tokens": 0,
        "cache_write_tokens": 0,
        "latency_ms": 800,
        "ttft_ms": 120,
        "outcome": "ok",
    }
    lines = [
        json.dumps(good),
        "{not json",
        json.dumps({**good, "input_tokens": -5}),
        json.dumps({**good, "model": "acme.unknown-model"}),
        json.dumps({**good, "ts": "2026-11-01T10:00:00"}),
        json.dumps({**good, "mode": "batch", "output_tokens": 400}),
        json.dumps({**good, "outcome": "exploded"}),
        json.dumps({**good, "cost_usd": "1.5"}),
        json.dumps({**good, "cost_usd": "NaN"}),
        json.dumps({**good, "cost_usd": "-Infinity"}),
    ]
    path = tmp_path / "usage.jsonl"
    path.write_text("\n".join(lines) + "\n")
    store = open_store(ledger_path)
    result = import_file(path, store)
    assert result.imported == 3
    assert len(result.errors) == 7
    joined = "\n".join(result.errors)
    assert "usage.jsonl:2: invalid JSON" in joined
    assert "usage.jsonl:3: field 'input_tokens' -5 is negative" in joined
    assert "usage.jsonl:4: cannot price it: unknown model 'acme.unknown-model'" in joined
    assert "usage.jsonl:5: field 'ts'" in joined and "no timezone" in joined
    assert "usage.jsonl:7: outcome='exploded'" in joined
    # NaN was refused as "outside ±100,000,000 USD", which it is not: it is no amount at all
    assert "usage.jsonl:9: field 'cost_usd' 'NaN' is not an amount; write a cost in USD such as 0.000150" in joined
    assert "usage.jsonl:10: field 'cost_usd' '-Infinity' is not an amount" in joined
    costs = sorted(e.cost_usd for e in store.events())
    # 1000*0.25 + 200*1.25 = 500 µ$ on demand; batch: 1000*0.125 + 400*0.625 = 375 µ$; given: 1.5
    assert costs == [Decimal("0.000375"), Decimal("0.0005"), Decimal("1.5")]


def test_an_imported_row_tagged_with_a_service_tier_is_priced_at_that_tier_on_its_day(tmp_path, ledger_path):
    """A row without cost_usd is priced from the catalog: its `service_tier` tag was ignored and every row priced at
    the standard tier. o3 per 1M tokens (openai.yaml, OpenAI's pricing page): standard $2 in / $8 out, flex $1 / $4,
    priority $3.50 / $14. GPT-6.2 Sol ultrafast (genai-prices 0.2.5): $6 / $30 through 2027-02-28, $12 / $60 from
    2027-03-01: a row is priced at its own day's price, not the day it is imported."""
    row = {
        "ts": "2026-11-01T10:00:00Z",
        "provider": "openai",
        "model": "o3",
        "mode": "on_demand",
        "input_tokens": 1000,
        "output_tokens": 500,
    }
    lines = [
        row,
        {**row, "tags": {"service_tier": "flex"}},
        {**row, "tags": {"service_tier": "fast"}},
        {**row, "model": "gpt-6.2-sol", "tags": {"service_tier": "ultrafast"}},
        {**row, "model": "gpt-6.2-sol", "ts": "2027-03-01T00:00:00Z", "tags": {"service_tier": "ultrafast"}},
    ]
    path = tmp_path / "usage.jsonl"
    path.write_text("\n".join(json.dumps(line) for line in lines) + "\n")
    store = open_store(ledger_path)
    result = import_file(path, store)
    assert (result.imported, result.errors) == (5, [])

    def price(rate_in, rate_out):
        return (1000 * Decimal(rate_in) + 500 * Decimal(rate_out)) / 1_000_000

    costs = sorted(e.cost_usd for e in store.events())
    assert costs == [price("1", "4"), price("2", "8"), price("3.50", "14"), price("6", "30"), price("12", "60")]
    assert costs == [Decimal("0.003"), Decimal("0.006"), Decimal("0.0105"), Decimal("0.021"), Decimal("0.042")]


def test_import_rejects_bytes_huge_counts_and_nan_latency_by_line(tmp_path, ledger_path):
    good = {
        "ts": "2026-11-01T10:00:00Z",
        "provider": "aws.bedrock",
        "model": "anthropic.claude-3-haiku-20240307-v1:0",
        "input_tokens": 1000,
        "output_tokens": 200,
    }
    path = tmp_path / "usage.jsonl"
    path.write_bytes(
        b"\n".join(
            [
                json.dumps(good).encode(),
                b'{"ts": "2026-11-01T10:00:00Z", "model": "caf\xe9"}',  # Latin-1, not UTF-8
                json.dumps({**good, "input_tokens": 10**26}).encode(),  # would overflow the BIGINT column
                json.dumps({**good, "latency_ms": "nan"}).encode(),
                json.dumps({**good, "latency_ms": -5}).encode(),
                json.dumps({**good, "ts": "yesterday"}).encode(),
                json.dumps({**good, "output_tokens": 7}).encode(),
            ]
        )
        + b"\n"
    )
    store = open_store(ledger_path)
    result = import_file(path, store)
    joined = "\n".join(result.errors)
    assert result.imported == 2 and len(result.errors) == 5, joined
    assert "usage.jsonl:2: not UTF-8 text" in joined
    assert "usage.jsonl:3: field 'input_tokens'" in joined and "over" in joined
    assert "usage.jsonl:4: field 'latency_ms' 'nan'" in joined
    assert "usage.jsonl:5: field 'latency_ms' -5" in joined
    assert "usage.jsonl:6: field 'ts' 'yesterday' is not an ISO-8601 time" in joined
    # What did land exports as strict JSON (no NaN).
    for line in export_to_string(store.events()).splitlines():
        json.loads(line, parse_constant=lambda name: pytest.fail(f"export wrote {name}"))


@pytest.mark.parametrize("store_url", ["duckdb", pytest.param("postgres", marks=pytest.mark.postgres)])
def test_reimport_counts_events_already_present_instead_of_claiming_them(tmp_path, store_url, request):
    url = tmp_path / "a.duckdb" if store_url == "duckdb" else request.getfixturevalue("fresh_postgres_url")
    store = open_store(url)
    store.write(sample_events())
    dump = tmp_path / "dump.jsonl"
    dump.write_text(export_to_string(store.events()) + export_to_string(sample_events(6)[5:]) * 2)
    result = import_file(dump, store)
    # Before, this said "imported 7": every line counted though the ledger already held five and one came twice.
    assert (result.imported, result.already_present, result.errors) == (1, 6, [])
    assert len(store.events()) == 6


def test_csv_row_with_more_values_than_columns_is_rejected_by_line(tmp_path, ledger_path):
    path = tmp_path / "usage.csv"
    model = "anthropic.claude-3-haiku-20240307-v1:0"
    path.write_text(
        f"ts,provider,model,input_tokens\n2026-11-01T10:00:00Z,aws.bedrock,{model},5\n"
        f"2026-11-01T10:01:00Z,aws.bedrock,{model},5,700\n"
    )
    result = import_file(path, open_store(ledger_path))
    # Before, the stray 700 was dropped and the row imported as if nothing were wrong.
    assert result.imported == 1 and len(result.errors) == 1 and result.errors[0].startswith("usage.csv:3: 1 value(s)")


def test_a_ledger_that_cannot_be_opened_is_a_config_error_without_the_password(tmp_path):
    import socket

    junk = tmp_path / "notes.duckdb"
    junk.write_text("not a database")
    with pytest.raises(ConfigError, match=r"notes.duckdb.*not a valid DuckDB"):  # was duckdb's IOException
        open_store(junk)
    with socket.socket() as sock:  # a port nothing listens on
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    with pytest.raises(ConfigError, match="cannot connect") as caught:  # was psycopg's OperationalError
        open_store(f"postgresql://tokenomy:s3cret@127.0.0.1:{port}/ledger")
    assert "s3cret" not in str(caught.value) and f"tokenomy:***@127.0.0.1:{port}" in str(caught.value)


def test_ledger_cli_names_bad_paths_and_formats_without_traceback(tmp_path, ledger_path):
    tokenomy = str(Path(sys.executable).with_name("tokenomy"))
    open_store(ledger_path)  # the export cases need a ledger; the refused import no longer leaves one behind
    cases = [
        ["ledger", "import", str(tmp_path), "--ledger", str(ledger_path)],
        ["ledger", "export", "-o", str(tmp_path / "no" / "such" / "dir.jsonl"), "--ledger", str(ledger_path)],
        ["ledger", "export", "--format", "xml", "--ledger", str(ledger_path)],
    ]
    for args in cases:
        result = subprocess.run([tokenomy, *args], capture_output=True, text=True, timeout=120)
        assert result.returncode == 2, (args, result.stderr)
        assert "Traceback" not in result.stderr and result.stderr.startswith("error: "), result.stderr
    assert "choose jsonl or csv" in result.stderr


@pytest.mark.parametrize("fmt", ["jsonl", "csv"])
def test_export_then_import_reproduces_the_ledger(tmp_path, fmt):
    source = open_store(tmp_path / "a.duckdb")
    source.write(sample_events())
    dump = tmp_path / f"dump.{fmt}"
    dump.write_text(export_to_string(source.events(), fmt))
    target = open_store(tmp_path / "b.duckdb")
    result = import_file(dump, target)
    assert result.errors == [] and result.imported == 5
    assert [e.to_json() for e in target.events()] == [e.to_json() for e in source.events()]


def test_writer_batches_and_flushes_on_close(ledger_path):
    writer = LedgerWriter(ledger_path, flush_interval=60)
    for event in sample_events(50):
        writer.record(event)
    assert writer.pending == 50  # nothing written on the request path
    writer.close()
    assert open_store(ledger_path).count() == 50


def test_an_event_recorded_after_close_is_written_through(tmp_path, caplog):
    # A provider call a cancelled caller left running in a worker thread may end after the gateway closed its writer
    # (its shutdown waits only so long): its row stayed in a buffer nobody would flush again.
    from tokenomy.ledger.journal import Journal

    writer = LedgerWriter(tmp_path / "ledger.duckdb", flush_interval=60, journal=Journal(tmp_path / "journal"))
    writer.close()
    with caplog.at_level("WARNING"):
        writer.record(sample_events(1)[0])
    assert open_store(tmp_path / "ledger.duckdb").count() == 1 and writer.pending == 0
    assert not caplog.records  # the discarded journal is not written to (and does not complain)


WRITER_SCRIPT = """
import sys, time
from datetime import datetime, timezone
from tokenomy.ledger.events import UsageEvent
from tokenomy.ledger.writer import LedgerWriter
writer = LedgerWriter(sys.argv[1], flush_interval=3600)
for i in range(int(sys.argv[2])):
    writer.record(UsageEvent(ts=datetime.now(timezone.utc), provider="local", model="local", input_tokens=i))
print("buffered", writer.pending, flush=True)
time.sleep(120)
"""


def test_sigterm_loses_no_buffered_event(tmp_path, ledger_path):
    script = tmp_path / "writer.py"
    script.write_text(WRITER_SCRIPT)
    proc = subprocess.Popen([sys.executable, str(script), str(ledger_path), "777"], stdout=subprocess.PIPE, text=True)
    assert proc.stdout.readline().strip() == "buffered 777"
    assert open_store(ledger_path).count() == 0  # still only in memory
    proc.send_signal(signal.SIGTERM)
    assert proc.wait(30) == 128 + signal.SIGTERM
    store = open_store(ledger_path)
    assert store.count() == 777
    assert sorted(e.input_tokens for e in store.events()) == list(range(777))


def test_two_processes_share_one_duckdb_file(tmp_path, ledger_path):
    script = tmp_path / "writer.py"
    script.write_text(WRITER_SCRIPT.replace("time.sleep(120)", "writer.close()"))
    procs = [
        subprocess.Popen([sys.executable, str(script), str(ledger_path), "300"], stdout=subprocess.DEVNULL)
        for _ in range(2)
    ]
    assert [p.wait(60) for p in procs] == [0, 0]
    assert open_store(ledger_path).count() == 600


def test_a_ledger_made_before_the_content_count_columns_opens_and_gains_them(tmp_path):
    import duckdb

    from tokenomy.ledger.store import ADDED_COLUMNS, EVENTS_DDL

    path = tmp_path / "old.duckdb"
    old_ddl = "\n".join(line for line in EVENTS_DDL.splitlines() if not line.strip().startswith(ADDED_COLUMNS))
    with duckdb.connect(str(path)) as conn:
        conn.execute(old_ddl)
        conn.execute("CREATE TABLE tokenomy_meta (key TEXT PRIMARY KEY, value TEXT NOT NULL)")
        conn.execute("INSERT INTO tokenomy_meta VALUES ('schema_version', '1')")
        conn.execute(
            "INSERT INTO usage_events (ts, provider, model, mode, outcome, event_id) "
            "VALUES (now(), 'openai', 'gpt-4o', 'on_demand', 'ok', 'old-row')"
        )
        assert "image_count" not in {r[0] for r in conn.execute("DESCRIBE usage_events").fetchall()}
    store = open_store(path)
    (old,) = store.events()
    assert old.event_id == "old-row" and (old.image_count, old.document_count, old.tool_call_count) == (0, 0, 0)
    from tokenomy.ledger.events import UsageEvent, utcnow

    store.write([UsageEvent(ts=utcnow(), provider="openai", model="gpt-4o", image_count=3, tool_call_count=2)])
    assert sorted((e.image_count, e.tool_call_count) for e in store.events()) == [(0, 0), (3, 2)]


def test_a_computed_cost_beyond_the_cost_column_is_a_bad_line_and_the_good_lines_land(tmp_path, ledger_path):
    # 9*10^11 output tokens of o1-pro cost $540M, more than DECIMAL(20,12) holds. Before, DuckDB's
    # ConversionException ended the import with a traceback and none of the good lines were written.
    good = {
        "ts": "2026-11-01T10:00:00Z",
        "provider": "aws.bedrock",
        "model": "anthropic.claude-3-haiku-20240307-v1:0",
        "input_tokens": 1000,
        "output_tokens": 200,
    }
    path = tmp_path / "usage.jsonl"
    path.write_text(
        "\n".join(
            json.dumps(line)
            for line in [
                good,
                {**good, "output_tokens": 7},
                {
                    "ts": "2026-11-05T10:00:00Z",
                    "provider": "openai",
                    "model": "o1-pro",
                    "output_tokens": 900_000_000_000,
                },
                {**good, "output_tokens": 9},
            ]
        )
        + "\n"
    )
    tokenomy = str(Path(sys.executable).with_name("tokenomy"))
    result = subprocess.run(
        [tokenomy, "ledger", "import", str(path), "--ledger", str(ledger_path)],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert result.returncode == 1 and "Traceback" not in result.stderr, result.stderr
    assert "usage.jsonl:3: cost out of range: output_cost_usd = 540000000 is out of the column's range" in result.stderr
    assert "imported 3 event(s); rejected 1" in result.stdout
    assert sorted(e.output_tokens for e in open_store(ledger_path).events()) == [7, 9, 200]


def test_reimporting_a_file_without_event_ids_adds_nothing(tmp_path, ledger_path):
    # Lines without an event_id got a random one: every re-import of the same file doubled the ledger.
    line = {
        "ts": "2026-11-01T10:00:00Z",
        "provider": "aws.bedrock",
        "model": "anthropic.claude-3-haiku-20240307-v1:0",
        "input_tokens": 1000,
        "output_tokens": 200,
    }
    path = tmp_path / "usage.jsonl"
    # Two identical calls are two rows; the same content with its keys in another order is the same line.
    path.write_text(json.dumps(line) + "\n" + json.dumps(line) + "\n" + json.dumps({**line, "output_tokens": 7}) + "\n")
    tokenomy = str(Path(sys.executable).with_name("tokenomy"))

    def run() -> subprocess.CompletedProcess:
        return subprocess.run(
            [tokenomy, "ledger", "import", str(path), "--ledger", str(ledger_path)],
            capture_output=True,
            text=True,
            timeout=120,
        )

    first = run()
    assert first.returncode == 0 and "imported 3 event(s)" in first.stdout, first.stderr
    path.write_text(path.read_text() + json.dumps(dict(reversed(line.items()))) + "\n")  # a third identical call
    again = run()
    assert again.returncode == 0, again.stderr
    assert "imported 1 event(s); rejected 0; 3 already in the ledger" in again.stdout
    assert sorted(e.output_tokens for e in open_store(ledger_path).events()) == [7, 200, 200, 200]
    assert run().stdout.startswith("imported 0 event(s)")


def test_a_ledger_url_of_another_database_is_refused_and_nothing_is_created(tmp_path):
    # mysql://foo/bar was taken as a DuckDB path: chat made a directory ./mysql:/foo and DuckDB went to download
    # its mysql extension; `ledger stats` said "no ledger at mysql://foo".
    tokenomy = str(Path(sys.executable).with_name("tokenomy"))
    for args in (
        ["chat", "hi", "--max-tokens", "3", "--ledger", "mysql://foo/bar"],
        ["ledger", "stats", "--ledger", "mysql://user:s3cret@foo/bar"],
        ["ledger", "import", "usage.jsonl", "--ledger", "sqlite:///usage.db"],
    ):
        result = subprocess.run([tokenomy, *args], capture_output=True, text=True, timeout=120, cwd=tmp_path)
        assert result.returncode == 2 and "Traceback" not in result.stderr, result.stderr
        assert result.stderr.startswith("error: unsupported ledger URL ") and "s3cret" not in result.stderr
        assert "use a DuckDB file path, postgresql://... or clickhouse://..." in result.stderr
    assert list(tmp_path.iterdir()) == []
    with pytest.raises(ConfigError, match=r"unsupported ledger URL s3://bucket/ledger\.duckdb"):
        open_store("s3://bucket/ledger.duckdb")
    # A token written as the URL's user alone (https://TOKEN@host) is a credential too.
    with pytest.raises(ConfigError, match=r"unsupported ledger URL mysql://\*\*\*@db/ledger:") as refused:
        open_store("mysql://tokSECRET9876@db/ledger")
    assert "tokSECRET9876" not in str(refused.value)


def test_local_path_names_the_file_or_directory_of_a_local_ledger_and_none_on_a_server():
    # The commands spelled the server schemes out themselves (and stripped duckdb:// / chdb: by regex).
    assert local_path(".tokenomy/l.duckdb") == duckdb_path(".tokenomy/l.duckdb") == Path(".tokenomy/l.duckdb")
    assert local_path("duckdb://a/l.duckdb") == duckdb_path("duckdb://a/l.duckdb") == Path("a/l.duckdb")
    assert local_path("chdb:a/l.chdb") == local_path("chdb://a/l.chdb") == Path("a/l.chdb")
    assert duckdb_path("chdb:a/l.chdb") is None
    for url in ("postgres://h/db", "postgresql://u@h/db", "clickhouse://h:8123", "clickhouses://h"):
        assert local_path(url) is None and duckdb_path(url) is None


def test_a_duckdb_file_that_is_not_a_ledger_is_refused_without_writing_to_it(tmp_path):
    # `ledger stats` on someone's DuckDB database exited 0 and created usage_events, usage_hourly, tokenomy_meta...
    import duckdb

    foreign = tmp_path / "analytics.duckdb"
    with duckdb.connect(str(foreign)) as conn:
        conn.execute("CREATE TABLE mydata AS SELECT 1 AS x")
    usage = tmp_path / "usage.jsonl"
    usage.write_text(
        json.dumps({"ts": "2026-11-01T10:00:00Z", "provider": "openai", "model": "gpt-4o-mini", "input_tokens": 10})
        + "\n"
    )
    tokenomy = str(Path(sys.executable).with_name("tokenomy"))
    for args in (
        ["ledger", "stats"],
        ["report", "spend"],
        ["ledger", "import", str(usage)],
        ["chat", "hi"],
        ["serve", "--port", "9"],
    ):  # chat and serve write to it: refused before anything is written
        result = subprocess.run(
            [tokenomy, *args, "--ledger", str(foreign)], capture_output=True, text=True, timeout=120
        )
        assert result.returncode == 2 and "Traceback" not in result.stderr, result.stderr
        assert result.stderr.startswith(
            f"error: ledger {foreign}: a DuckDB database but not a Tokenomy ledger (it holds mydata)"
        )
    with duckdb.connect(str(foreign), read_only=True) as conn:
        assert conn.execute("SELECT table_name FROM information_schema.tables").fetchall() == [("mydata",)]
    # An empty DuckDB file still becomes a ledger.
    duckdb.connect(str(tmp_path / "empty.duckdb")).close()
    result = subprocess.run(
        [tokenomy, "ledger", "import", str(usage), "--ledger", str(tmp_path / "empty.duckdb")],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert result.returncode == 0 and "imported 1 event(s)" in result.stdout, result.stderr
