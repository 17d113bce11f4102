"""Third CLI audit: a config figure past what a date holds, a binary file called CSV, a database that is not llm's
read as an empty log. Run through the real entry point (`tokenomy.cli.main`)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from helpers.cli import _seed, one_error_line, run_cli


@pytest.mark.parametrize("days", ["800000", "99999999999"])
def test_an_alert_window_back_past_year_one_is_one_line_naming_the_key(days, tmp_path: Path, monkeypatch, capsys):
    # alerts.window_days took any whole number: 800000 days back from now is before year 1, an OverflowError
    # traceback (99999999999 one from timedelta) once the check ran.
    ledger = _seed(tmp_path / "ledger.duckdb")
    config = tmp_path / "tokenomy.yaml"
    config.write_text(f"alerts:\n  window_days: {days}\n")
    code, out, err = run_cli(
        monkeypatch, capsys, "alerts", "check", "--config", str(config), "--ledger", str(ledger), "--dry-run", "--json"
    )
    assert code == 2 and out == ""
    assert one_error_line(err) == f"error: {config}: alerts.window_days: Input should be less than or equal to 36500"


def test_an_alert_window_of_a_hundred_years_still_runs(tmp_path: Path, monkeypatch, capsys) -> None:
    ledger = _seed(tmp_path / "ledger.duckdb")
    config = tmp_path / "tokenomy.yaml"
    config.write_text("alerts:\n  window_days: 36500\n")
    code, out, err = run_cli(
        monkeypatch,
        capsys,
        "alerts",
        "check",
        "--config",
        str(config),
        "--ledger",
        str(ledger),
        "--dry-run",
        "--json",
        "--as-of",
        "1900-01-01",
    )
    assert code == 0, err
    assert json.loads(out) == []


HAIKU = "anthropic.claude-3-haiku-20240307-v1:0"


def test_batch_validate_of_a_binary_file_with_a_comma_says_not_utf8_not_csv(tmp_path: Path, monkeypatch, capsys):
    # A binary file whose first line held a comma among its bytes was refused as "this is CSV", quoting the bytes.
    records = tmp_path / "records.jsonl"
    records.write_bytes(b"\x9d\x0cd!,\xff\xfe[z\x08\n\x01\xe9\x02\n")
    code, out, err = run_cli(monkeypatch, capsys, "batch", "validate", str(records), "--model", HAIKU, "--json")
    assert code == 1, err
    report = json.loads(out)
    assert report["good_records"] == 0
    assert [(b["line"], b["reason"]) for b in report["bad_lines"]] == [
        (1, "not UTF-8 text (byte 1 of the line); save the file as UTF-8"),
        (2, "not UTF-8 text (byte 2 of the line); save the file as UTF-8"),
    ]


def test_a_csv_file_is_still_named_csv(tmp_path: Path, monkeypatch, capsys) -> None:
    records = tmp_path / "records.jsonl"
    records.write_text("id,prompt\n1,hi\n")
    code, out, err = run_cli(monkeypatch, capsys, "batch", "validate", str(records), "--model", HAIKU)
    assert code == 2 and out == ""
    assert one_error_line(err).startswith(f"error: {records}: this is CSV (first line 'id,prompt'); expected JSONL")


@pytest.mark.parametrize("made", ["empty file", "another database"])
def test_import_llm_log_of_a_database_that_is_not_llms_is_refused(made, tmp_path: Path, monkeypatch, capsys):
    # SQLite opens an empty file as an empty database, and any database without llm's tables was read as a log of
    # no prompts: "records read 0", exit 0, as if llm had logged nothing.
    import sqlite3

    logs = tmp_path / "logs.db"
    logs.write_bytes(b"")
    if made == "another database":
        with sqlite3.connect(logs) as conn:
            conn.execute("CREATE TABLE notes (id TEXT, body TEXT)")
    ledger = tmp_path / "ledger.duckdb"
    code, out, err = run_cli(monkeypatch, capsys, "import", "llm-log", str(logs), "--ledger", str(ledger), "--json")
    assert code == 2 and out == ""
    assert one_error_line(err) == (
        f"error: {logs}: not an llm logs.db (no responses or turns table); `llm logs path` prints where llm keeps "
        "logs.db"
    )
    assert not ledger.exists()


def test_import_llm_log_of_a_log_with_no_prompts_yet_reads_none(tmp_path: Path, monkeypatch, capsys) -> None:
    import sqlite_utils
    from llm.migrations import migrate

    logs = tmp_path / "logs.db"
    migrate(sqlite_utils.Database(logs))  # the llm tool's own schema, no prompt logged yet
    code, out, err = run_cli(
        monkeypatch, capsys, "import", "llm-log", str(logs), "--ledger", str(tmp_path / "ledger.duckdb"), "--json"
    )
    assert code == 0, err
    assert json.loads(out)["read"] == 0


def test_import_llm_log_names_prompts_logged_before_llm_recorded_tokens(tmp_path: Path, monkeypatch, capsys) -> None:
    # A responses table from before llm 0.19 has no token columns: its prompts were skipped unsaid, "0 records read"
    # and exit 0, as if llm had logged nothing. They are listed as a problem (exit 1), with why.
    import sqlite3

    logs = tmp_path / "logs.db"
    with sqlite3.connect(logs) as conn:
        conn.execute("CREATE TABLE responses (id TEXT PRIMARY KEY, model TEXT, prompt TEXT, datetime_utc TEXT)")
        conn.executemany(
            "INSERT INTO responses VALUES (?, 'gpt-4o-mini', 'hi', '2024-05-01T10:00:00')", [("a",), ("b",)]
        )
    code, out, err = run_cli(
        monkeypatch, capsys, "import", "llm-log", str(logs), "--ledger", str(tmp_path / "ledger.duckdb"), "--json"
    )
    summary = json.loads(out)
    assert code == 1 and summary["read"] == 0, (code, out, err)
    assert summary["problems"] == [
        f"{logs}: responses: 2 prompt(s) logged by an llm that recorded no token counts (before 0.19) are not "
        "imported: there is nothing to price them by"
    ]


@pytest.mark.parametrize(
    ("name", "value", "said"),
    [
        (
            "TOKENOMY_LOCAL_CTX",
            "abc",
            "TOKENOMY_LOCAL_CTX='abc': give the context window in tokens, a whole number "
            "above 0 (default 8192), or unset it",
        ),
        ("TOKENOMY_LOCAL_THREADS", "-3", "TOKENOMY_LOCAL_THREADS='-3': give CPU threads, a whole number above 0"),
        (
            "TOKENOMY_LOCAL_GGUF",
            "/no/such/model.gguf",
            "TOKENOMY_LOCAL_GGUF=/no/such/model.gguf: no such file; point it at a .gguf model file, or unset it",
        ),
    ],
)
def test_a_bad_local_model_setting_in_the_environment_is_one_line(name, value, said, tmp_path, monkeypatch, capsys):
    # int("abc") of TOKENOMY_LOCAL_CTX and llama.cpp's "Model path does not exist" were ValueError tracebacks; a
    # negative thread count went to llama.cpp as given.
    import tokenomy.providers.local as local

    monkeypatch.setattr(local, "_MODEL", None)  # the model as first loaded in this process, with these settings
    monkeypatch.setenv(name, value)
    code, out, err = run_cli(
        monkeypatch, capsys, "chat", "hi", "--max-tokens", "5", "--ledger", str(tmp_path / "ledger.duckdb")
    )
    assert code == 2 and out == ""
    assert "Traceback" not in err, err
    assert err.strip().splitlines()[-1].startswith(f"error: {said}"), err
    assert local._MODEL is None


def test_an_infinite_billing_tolerance_in_the_config_is_named_as_its_key(tmp_path: Path, monkeypatch, capsys) -> None:
    # alerts.billing_tolerance_pct: .inf loaded, then was refused as "--tolerance-pct inf", an option `alerts check`
    # does not have.
    ledger = _seed(tmp_path / "ledger.duckdb")
    config = tmp_path / "tokenomy.yaml"
    config.write_text("alerts:\n  billing_tolerance_pct: .inf\n")
    code, out, err = run_cli(
        monkeypatch, capsys, "alerts", "check", "--config", str(config), "--ledger", str(ledger), "--dry-run", "--json"
    )
    assert code == 2 and out == ""
    assert one_error_line(err) == f"error: {config}: alerts.billing_tolerance_pct: Input should be a finite number"


@pytest.mark.parametrize("args", [["ledger", "stats"], ["ledger", "export", "-o", "-"], ["report", "reconcile"]])
def test_the_same_since_and_until_is_told_until_is_exclusive_not_to_swap_them(args, tmp_path, monkeypatch, capsys):
    # `--since 2026-11-17 --until 2026-11-17` (meant as that day) was told "swap them", which changes nothing.
    ledger = _seed(tmp_path / "ledger.duckdb")
    code, out, err = run_cli(
        monkeypatch, capsys, *args, "--ledger", str(ledger), "--since", "2026-11-17", "--until", "2026-11-17"
    )
    assert code == 2 and out == ""
    assert one_error_line(err) == (
        "error: --since 2026-11-17 00:00 is not before --until 2026-11-17 00:00; --until is exclusive: give a later "
        "one, e.g. --until 2026-11-18"
    )


@pytest.mark.parametrize("kind", ["cur", "focus", "gcp-billing"])
def test_a_billing_import_of_a_folder_or_an_empty_file_says_which(kind, tmp_path: Path, monkeypatch, capsys) -> None:
    # Both were "cannot read as CSV or Parquet" with the reader's own words ("[Errno 21] Is a directory", "No columns
    # to parse from file"), neither saying what to do.
    ledger = tmp_path / "ledger.duckdb"
    empty = tmp_path / "export.csv"
    empty.write_bytes(b"")
    said = {}
    for given in (tmp_path, empty):
        code, out, err = run_cli(monkeypatch, capsys, "import", kind, str(given), "--ledger", str(ledger))
        assert code == 2 and out == "", (code, out)
        said[given] = one_error_line(err)
    assert said[tmp_path] == f"error: {tmp_path}: is a folder; give the export file itself (one FILE a command)"
    assert said[empty] == f"error: {empty}: the file is empty, not a billing export; download or export it again"


@pytest.mark.parametrize(
    ("args", "said"),
    [
        (["report", "spend", "--by", "colour"], "error: --by 'colour' is not a known grouping; use one of family, "),
        (["alerts", "check", "--config", "C"], "error: C: budgets[0].scope: 'team' is not one of key, model, "),
    ],
)
def test_a_list_of_choices_is_words_not_a_python_list(args, said, tmp_path: Path, monkeypatch, capsys) -> None:
    # Both read "use one of ['family', 'key_id', ...]", brackets and quotes as Python prints a list.
    ledger = _seed(tmp_path / "ledger.duckdb")
    config = tmp_path / "alerts.yaml"
    config.write_text("budgets:\n  - {scope: team, match: research, limit_usd: 5}\n")
    code, out, err = run_cli(
        monkeypatch, capsys, *[str(config) if a == "C" else a for a in args], "--ledger", str(ledger)
    )
    line = one_error_line(err)
    assert code == 2 and out == ""
    assert line.startswith(said.replace("C:", f"{config}:")) and "['" not in line, line
