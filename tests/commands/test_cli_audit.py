"""Bad input found by walking every command as a user: one line on stderr, a non-zero status, no traceback, and
nothing lost. Run through the real entry point (`tokenomy.cli.main`)."""

from __future__ import annotations

import json
import os
import sys
from decimal import Decimal
from pathlib import Path

import pytest

from helpers.cli import _seed, one_error_line, run_cli
from tokenomy.ledger.events import UsageEvent
from tokenomy.ledger.store import open_store

HAIKU = "anthropic.claude-3-haiku-20240307-v1:0"


@pytest.mark.parametrize("fmt", ["xml", "csv"])
def test_ledger_export_that_fails_leaves_the_file_that_was_there(fmt, tmp_path: Path, monkeypatch, capsys) -> None:
    # `ledger export -o FILE --format xml` opened FILE for writing before the format was checked: the error was
    # right, but FILE was left empty. A failure part-way (here: an event that cannot be written) did the same.
    ledger = _seed(tmp_path / "ledger.duckdb")
    out = tmp_path / "precious.jsonl"
    out.write_text("precious\n")
    if fmt == "csv":
        import tokenomy.ledger.io as ledger_io

        def failing(events, handle, fmt):  # writes some rows, then fails
            handle.write("half a file\n")
            raise KeyboardInterrupt

        monkeypatch.setattr(ledger_io, "export_events", failing)
    code, _, err = run_cli(
        monkeypatch, capsys, "ledger", "export", "--ledger", str(ledger), "-o", str(out), "--format", fmt
    )
    assert code == (2 if fmt == "xml" else 130), err
    assert out.read_text() == "precious\n"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["ledger.duckdb", "precious.jsonl"]  # no temporary left


def test_ledger_export_to_a_dash_writes_stdout_not_a_file_named_dash(tmp_path, monkeypatch, capsys):
    ledger = _seed(tmp_path / "ledger.duckdb")
    monkeypatch.chdir(tmp_path)
    code, out, err = run_cli(monkeypatch, capsys, "ledger", "export", "--ledger", str(ledger), "-o", "-")
    assert code == 0, err
    assert not (tmp_path / "-").exists()
    assert out.strip() and all(json.loads(line)["event_id"] for line in out.splitlines())


def test_ledger_export_to_a_folder_that_does_not_exist_names_the_path_given(tmp_path, monkeypatch, capsys):
    # Not the temporary file beside it.
    ledger = _seed(tmp_path / "ledger.duckdb")
    where = tmp_path / "no-such-dir" / "out.jsonl"
    code, out, err = run_cli(monkeypatch, capsys, "ledger", "export", "--ledger", str(ledger), "-o", str(where))
    line = one_error_line(err)
    assert code == 2 and out == ""
    assert f"{where.parent} does not exist" in line and ".tmp" not in line, line


@pytest.mark.parametrize(
    ("args", "option"),
    [
        (["ledger", "export", "--ledger", "S", "-o", "P"], "'-o' / '--output'"),
        (["export", "focus", "--ledger", "S", "-o", "P"], "'-o' / '--output'"),
        (["report", "--html", "P", "--ledger", "S"], "'--html'"),
        (["review", "--html", "P", "--ledger", "S"], "'--html'"),
        (["route", "eval", "gsm8k", "--png", "P"], "'--png'"),
        (["route", "train", "gsm8k", "-o", "P"], "'-o' / '--output'"),
        (["route", "export-labels", "-o", "P", "--ledger", "S"], "'-o' / '--output'"),
        (["bench", "export-labels", "bench-out", "-o", "P"], "'-o' / '--output'"),
        (["batch", "results", "job", "-o", "P", "--ledger", "S"], "'-o' / '--output'"),
    ],
)
@pytest.mark.parametrize("where", ["a-dir", "a-file/out"])
def test_an_output_path_that_cannot_be_a_file_is_refused_before_the_work(
    args, option, where, tmp_path, monkeypatch, capsys
):
    # `review --html a-file/r.html` stored its review in the ledger, and `route eval --png` ran the whole evaluation,
    # before "error: a-file: File exists" / "Not a directory".
    monkeypatch.chdir(tmp_path)
    (tmp_path / "a-file").write_text("x")
    (tmp_path / "a-dir").mkdir()
    ledger = _seed(tmp_path / "ledger.duckdb", n=5)
    before = ledger.read_bytes()
    places = {"S": str(ledger), "P": str(tmp_path / where)}
    code, out, err = run_cli(monkeypatch, capsys, *[places.get(a, a) for a in args])
    line = one_error_line(err)
    assert code == 2 and out == ""
    option = "'-o' / '--out' / '--output'" if args[0] == "batch" else option
    said = (
        f"{tmp_path / 'a-dir'} is a directory"
        if where == "a-dir"
        else f"{tmp_path / 'a-file'} is a file, not a directory"
    )
    assert line.startswith(f"error: Invalid value for {option}: {said}"), line
    assert ledger.read_bytes() == before  # nothing recorded (review stores each review it makes)


@pytest.mark.parametrize(
    ("args", "option"),
    [
        (["ledger", "export", "--ledger", "S", "-o", "P"], "'-o' / '--output'"),
        (["export", "focus", "--ledger", "S", "-o", "P"], "'-o' / '--output'"),
        (["route", "eval", "gsm8k", "--png", "P"], "'--png'"),
        (["route", "train", "gsm8k", "-o", "P"], "'-o' / '--output'"),
        (["route", "export-labels", "-o", "P", "--ledger", "S"], "'-o' / '--output'"),
        (["bench", "export-labels", "bench-out", "-o", "P"], "'-o' / '--output'"),
        (["batch", "results", "job", "-o", "P", "--ledger", "S"], "'-o' / '--out' / '--output'"),
    ],
)
def test_an_output_file_in_a_folder_that_does_not_exist_is_refused_before_the_work(
    args, option, tmp_path, monkeypatch, capsys
):
    # `route eval gsm8k --png results/curve.png` ran the whole evaluation (14 s; minutes with --seeds) and printed
    # nothing but "error: results/curve.png: No such file or directory": the results were lost.
    monkeypatch.chdir(tmp_path)
    ledger = _seed(tmp_path / "ledger.duckdb", n=5)
    places = {"S": str(ledger), "P": str(tmp_path / "results" / "out")}
    code, out, err = run_cli(monkeypatch, capsys, *[places.get(a, a) for a in args])
    line = one_error_line(err)
    assert code == 2 and out == ""
    assert line.startswith(
        f"error: Invalid value for {option}: {tmp_path / 'results' / 'out'}: folder "
        f"{tmp_path / 'results'} does not exist; create it"
    ), line
    assert not (tmp_path / "results").exists()


@pytest.mark.parametrize(
    ("args", "option"),
    [
        (["ledger", "export", "--ledger", "S", "-o", "S"], "'-o' / '--output'"),
        (["export", "focus", "--ledger", "S", "-o", "S"], "'-o' / '--output'"),
        (["report", "--html", "S", "--ledger", "S"], "'--html'"),
        (["review", "--html", "S", "--ledger", "S"], "'--html'"),
        (["route", "export-labels", "-o", "S", "--ledger", "S"], "'-o' / '--output'"),
        (["batch", "results", "job", "-o", "S", "--ledger", "S"], "'-o' / '--out' / '--output'"),
    ],
)
def test_an_output_file_that_is_the_ledger_is_refused_not_written_over_it(args, option, tmp_path, monkeypatch, capsys):
    # `ledger export -o ledger.duckdb --ledger ledger.duckdb` wrote the export over the ledger and exited 0: every
    # recorded call was gone ("not a valid DuckDB database file" on the next command).
    ledger = _seed(tmp_path / "ledger.duckdb", n=5)
    before = ledger.read_bytes()
    code, out, err = run_cli(monkeypatch, capsys, *[str(ledger) if a == "S" else a for a in args])
    line = one_error_line(err)
    assert code == 2 and out == ""
    assert line.startswith(f"error: Invalid value for {option}: {ledger} is a DuckDB database (a ledger?)"), line
    assert ledger.read_bytes() == before


@pytest.mark.parametrize("args", [["report", "--html", "P"], ["review", "--html", "P"]])
def test_an_html_page_may_go_into_a_new_folder(args, tmp_path, monkeypatch, capsys):
    # These two make their folder, so a new one is not an error.
    ledger = _seed(tmp_path / "ledger.duckdb", n=5)
    page = tmp_path / "pages" / "r.html"
    code, _, err = run_cli(monkeypatch, capsys, *[str(page) if a == "P" else a for a in args], "--ledger", str(ledger))
    assert code == 0 and page.exists(), err


def test_ledger_export_writes_the_whole_file(tmp_path: Path, monkeypatch, capsys) -> None:
    ledger = _seed(tmp_path / "ledger.duckdb", n=5)
    out = tmp_path / "out.jsonl"
    out.write_text("old\n")
    code, _, err = run_cli(monkeypatch, capsys, "ledger", "export", "--ledger", str(ledger), "-o", str(out))
    assert code == 0, err
    assert len(out.read_text().splitlines()) == 5
    assert out.stat().st_mode & 0o777 != 0o600  # made as open() makes a file, not as a private temporary


def test_a_ledger_locked_by_another_process_says_so(tmp_path: Path, monkeypatch, capsys) -> None:
    # The advice was "pass --ledger with a DuckDB file path (a new one is created) or a postgresql:// URL" after
    # DuckDB's own text: no fix for a file another process (a running `tokenomy serve`) has open.
    import subprocess

    import tokenomy.ledger.store as store

    ledger = _seed(tmp_path / "ledger.duckdb", n=3)
    holder = subprocess.Popen(
        [
            sys.executable,
            "-c",
            f"import duckdb, sys, time; c = duckdb.connect({str(ledger)!r}); print('held', flush=True); time.sleep(60)",
        ],
        stdout=subprocess.PIPE,
        text=True,
    )
    try:
        assert holder.stdout is not None and holder.stdout.readline().strip() == "held"
        monkeypatch.setattr(store, "LOCK_WAIT_SECONDS", 0.2)
        code, out, err = run_cli(monkeypatch, capsys, "report", "spend", "--ledger", str(ledger), "--json")
    finally:
        holder.kill()
        holder.wait()
    line = one_error_line(err)
    assert code == 2 and out == ""
    assert f"process {holder.pid} (" in line and "holds its write lock" in line, line
    assert "a new one is created" not in line and "postgresql://" in line


@pytest.mark.parametrize(
    ("args", "creates"),
    [
        (["route", "drift"], False),
        (["route", "export-labels", "--route", "r", "-o", "O"], False),
        (["report", "spend"], False),
        (["ledger", "import", "F"], True),  # writes: a new file is made when --ledger names none
    ],
)
def test_a_ledger_that_is_not_duckdb_is_told_a_new_one_is_created_only_when_the_command_writes(
    args, creates, tmp_path, monkeypatch, capsys
) -> None:
    # `route drift --ledger some.txt` said "pass --ledger with a DuckDB file path (a new one is created)": a command
    # that only reads a ledger creates none, and a new empty one would report nothing.
    some = tmp_path / "some.txt"
    some.write_text("hello\n")
    events = tmp_path / "events.jsonl"
    events.write_text("")
    places = {"O": str(tmp_path / "labels.jsonl"), "F": str(events)}
    code, out, err = run_cli(monkeypatch, capsys, *[places.get(a, a) for a in args], "--ledger", str(some))
    line = one_error_line(err)
    assert code == 2 and out == ""
    assert line.startswith(f"error: ledger {some}: ") and "not a valid DuckDB database file" in line, line
    if creates:
        assert line.endswith("; pass --ledger with a DuckDB file path (a new one is created) or a postgresql:// URL")
    else:
        assert line.endswith(
            "; pass --ledger (or set TOKENOMY_LEDGER) to the DuckDB file or postgresql:// URL your "
            "calls were recorded in"
        ), line
    assert some.read_text() == "hello\n"


BIG = "99999999999999999999"  # 1e20 - 1: more than any database INTEGER or timedelta holds


@pytest.mark.parametrize(
    ("args", "said"),
    [
        (["import", "cur", "F", "--ledger", "L"], "cannot read as CSV or Parquet"),
        (["import", "focus", "F", "--ledger", "L"], "cannot read as CSV or Parquet"),
        (["bench", "summary", "D"], "cannot read as CSV"),
        (["route", "eval", "F"], "cannot read as a RouteLLM outcome CSV"),  # plan size --trace: tests/planning
    ],
)
def test_a_csv_with_a_ragged_line_is_one_error_line(args, said, tmp_path, monkeypatch, capsys) -> None:
    # pandas ends "Error tokenizing data. C error: Expected 2 fields in line 3, saw 3" with a line break: the error
    # came out as two lines, the second ")".
    ragged = "a,b\n1,2\n1,2,3\n"
    (tmp_path / "f.csv").write_text(ragged)
    (tmp_path / "out").mkdir()
    (tmp_path / "out" / "results.csv").write_text(ragged)
    places = {"F": str(tmp_path / "f.csv"), "D": str(tmp_path / "out"), "L": str(tmp_path / "ledger.duckdb")}
    code, out, err = run_cli(monkeypatch, capsys, *[places.get(a, a) for a in args])
    line = one_error_line(err)
    assert code == 2 and out == ""
    assert said in line and "Expected 2 fields in line 3, saw 3)" in line, line
    assert not (tmp_path / "ledger.duckdb").exists()


@pytest.mark.parametrize(
    ("args", "said"),
    [
        (["demo", "--workdir", "F"], "F: Not a directory; a file stands where a folder is needed; give a folder path"),
        (["batch", "validate", "D", "--model", HAIKU], "D: Is a directory; give a file path, not a folder"),
    ],
)
def test_a_file_where_a_folder_is_needed_is_named_with_its_fix(args, said, tmp_path, monkeypatch, capsys) -> None:
    # Each ended "; check the path and its permissions", which sent people to look at permissions.
    monkeypatch.chdir(tmp_path)
    tasks = Path(__file__).parents[2] / "src" / "tokenomy" / "examples" / "bench" / "capital.yaml"
    (tmp_path / "afile").write_text("x\n")
    (tmp_path / "adir").mkdir()
    places = {
        "T": str(tasks),
        "F": str(tmp_path / "afile"),
        "F/sub": str(tmp_path / "afile" / "sub"),
        "D": str(tmp_path / "adir"),
    }
    code, out, err = run_cli(monkeypatch, capsys, *[places.get(a, a) for a in args])
    line = one_error_line(err)
    assert code == 2 and out.strip() == ""
    where, _, rest = said.partition(":")
    assert line.startswith(f"error: {places[where]}:{rest}"), line
    assert "permissions" not in line, line


@pytest.mark.parametrize(
    "args",
    [
        ["chat", "hi", "--max-tokens", "3"],
        ["keys", "create"],
        ["ledger", "import", "E"],
        ["batch", "submit", "R", "--model", "local"],
    ],
)
@pytest.mark.parametrize("under", ["afile", "afile/sub"])
def test_a_ledger_path_under_a_file_names_the_file(args, under, tmp_path, monkeypatch, capsys) -> None:
    # "cannot read it as a Tokenomy ledger ([Errno 17] File exists: 'afile')": the ledger's folder could not be made.
    monkeypatch.chdir(tmp_path)
    (tmp_path / "afile").write_text("x\n")
    (tmp_path / "records.jsonl").write_text('{"id": "a", "prompt": "hi"}\n')
    event = {"ts": "2026-11-17T10:00:00Z", "provider": "bedrock", "model": HAIKU, "input_tokens": 3}
    (tmp_path / "events.jsonl").write_text(json.dumps(event) + "\n")
    places = {"E": str(tmp_path / "events.jsonl"), "R": str(tmp_path / "records.jsonl")}
    ledger = tmp_path / under / "l.duckdb"
    code, out, err = run_cli(monkeypatch, capsys, *[places.get(a, a) for a in args], "--ledger", str(ledger))
    assert code == 2 and out == "", (code, out)
    assert one_error_line(err) == (
        f"error: ledger {ledger}: {tmp_path / 'afile'} is a file, not a folder; give a ledger path in a folder "
        "(or move the file)"
    )


@pytest.mark.parametrize("out", ["afile", "afile/sub"])
def test_bench_run_names_a_file_given_as_out_before_it_makes_a_ledger(out, tmp_path: Path, monkeypatch, capsys):
    # It failed ("File exists" / "Not a directory") only when the first result was written, after
    # .tokenomy/ledger.duckdb had been made in the current folder.
    monkeypatch.chdir(tmp_path)
    (tmp_path / "afile").write_text("x\n")
    tasks = Path(__file__).parents[2] / "src" / "tokenomy" / "examples" / "bench" / "capital.yaml"
    code, out_text, err = run_cli(monkeypatch, capsys, "bench", "run", str(tasks), "--out", out)
    line = one_error_line(err)
    assert code == 2 and out_text == ""
    assert line == f"error: --out {out}: afile is a file; give a folder for the results (made if missing)", line
    assert not (tmp_path / ".tokenomy").exists()


@pytest.mark.parametrize("option", ["--models", "--judge"])
def test_bench_run_names_an_unknown_model_before_it_makes_a_ledger(option, tmp_path: Path, monkeypatch, capsys):
    # The model was checked only after .tokenomy/ledger.duckdb had been made in the current folder.
    monkeypatch.chdir(tmp_path)
    tasks = Path(__file__).parents[2] / "src" / "tokenomy" / "examples" / "bench" / "capital.yaml"
    code, out, err = run_cli(monkeypatch, capsys, "bench", "run", str(tasks), option, "nope-model")
    line = one_error_line(err)
    assert code == 2 and out.strip() == ""
    assert "unknown model 'nope-model'" in line, line
    assert not (tmp_path / ".tokenomy").exists()


@pytest.mark.parametrize(
    ("kind", "text", "problem"),
    [
        ("otel", '{"resourceSpans": 5}', "resourceSpans: is a JSON number, expected a list of objects"),
        ("otel", '{"traces": []}\n', "no resourceSpans; expected an OTLP JSON trace export"),
        ("otel", "", None),
    ],
)
def test_an_import_that_finds_nothing_to_add_makes_no_ledger(kind, text, problem, tmp_path, monkeypatch, capsys):
    # A document that was not OTLP was listed as a problem (exit 1), as it still is, but only after an empty
    # .tokenomy/ledger.duckdb had been made in the current folder.
    monkeypatch.chdir(tmp_path)
    source = tmp_path / "spans.json"
    source.write_text(text)
    code, out, err = run_cli(monkeypatch, capsys, "import", kind, str(source), "--json")
    assert "Traceback" not in err, err
    summary = json.loads(out)
    assert summary["read"] == 0 and summary["added"] == 0
    if problem is None:
        assert code == 0 and summary["problems"] == []
    else:
        assert code == 1 and summary["problems"] == [
            f"{source}: {problem}"
            + (
                " (an OTLP JSON trace export, as written by the OpenTelemetry Collector's file exporter)"
                if "is a JSON" in problem
                else ""
            )
        ]
    assert not (tmp_path / ".tokenomy").exists()


@pytest.mark.parametrize(
    ("args", "option"),
    [
        (["plan", "utilization", "--model", HAIKU, "--reservation-units", "1", "--cloudwatch"], "--endpoint-url"),
        (["plan", "size", "--model", HAIKU, "--cloudwatch", "--hourly-usd", "1"], "--endpoint-url"),
        (["caches", "settle", "--ledger", "L"], "--endpoint-url"),
        (["batch", "submit", "IN", "--model", HAIKU, "--backend", "bedrock", "--ledger", "L"], "--endpoint-url"),
        (["batch", "submit", "IN", "--model", HAIKU, "--backend", "bedrock", "--ledger", "L"], "--s3-endpoint-url"),
        (["batch", "submit", "IN", "--model", HAIKU, "--backend", "vertex", "--ledger", "L"], "--gcs-endpoint-url"),
        (["import", "openai-usage", "--ledger", "L"], "--base-url"),
        (["import", "anthropic-usage", "--ledger", "L"], "--base-url"),
        (["emulate", "bedrock", "--port", "-1"], "--s3-endpoint-url"),  # it served, and every batch job failed at S3
    ],
)
@pytest.mark.parametrize("url", ["notaurl", "ftp://host", "http://"])
def test_an_endpoint_that_is_not_an_http_url_is_one_line_naming_the_option(
    args, option, url, tmp_path, monkeypatch, capsys
):
    # `plan utilization --cloudwatch --endpoint-url notaurl` was botocore's "ValueError: Invalid endpoint", a
    # traceback; elsewhere the word went on to "no API key" or a connection error.
    source = tmp_path / "in.jsonl"
    source.write_text('{"id": "a", "prompt": "hi"}\n')
    places = {"L": str(tmp_path / "l.duckdb"), "IN": str(source)}
    code, out, err = run_cli(monkeypatch, capsys, *[places.get(a, a) for a in args], option, url)
    line = one_error_line(err)
    assert code == 2 and out == ""
    if option == "--gcs-endpoint-url" and url == "notaurl":  # a bare host (as STORAGE_EMULATOR_HOST is written)
        assert "--gcs-uri" in line, line  # taken: the next check speaks
    else:
        assert f"Invalid value for '{option}': {url!r} is not an http(s) URL; give e.g. http://127.0.0.1:4566" in line
    assert not (tmp_path / "l.duckdb").exists()


def test_every_url_option_is_checked_as_a_url() -> None:
    # `emulate bedrock --s3-endpoint-url notaurl` was the one URL option taken unchecked.
    import typer.main

    from tokenomy.cli import app
    from tokenomy.commands._options import http_url, http_url_or_host

    unchecked = []

    def walk(command, path: list[str]) -> None:
        for param in command.params:
            checker = getattr(param.callback, "__wrapped__", None)  # Typer wraps a callback
            if param.opts[0].endswith("-url") and checker not in (http_url, http_url_or_host):
                unchecked.append(f"{' '.join(path)} {param.opts[0]}")
        for name, sub in getattr(command, "commands", {}).items():
            walk(sub, [*path, name])

    walk(typer.main.get_command(app), [])
    assert unchecked == []


def test_a_storage_endpoint_may_be_a_bare_host_and_port(tmp_path, monkeypatch, capsys) -> None:
    # Cloud Storage emulators are named as host:port (STORAGE_EMULATOR_HOST); the URL check refused that.
    source = tmp_path / "in.jsonl"
    source.write_text('{"id": "a", "prompt": "hi"}\n')
    code, _, err = run_cli(
        monkeypatch,
        capsys,
        "batch",
        "submit",
        str(source),
        "--model",
        HAIKU,
        "--backend",
        "vertex",
        "--ledger",
        str(tmp_path / "l.duckdb"),
        "--gcs-endpoint-url",
        "localhost:4443",
    )
    assert code == 2 and "--gcs-uri" in one_error_line(err)  # past the endpoint, at the next missing option


def test_ledger_import_of_only_bad_lines_makes_no_ledger(tmp_path: Path, monkeypatch, capsys) -> None:
    # Every line rejected (exit 1, each named) left a new, empty ledger behind all the same.
    source = tmp_path / "events.jsonl"
    source.write_text('{"ts": "garbage", "provider": "bedrock", "model": "m"}\n[]\n')
    ledger = tmp_path / "l.duckdb"
    code, out, err = run_cli(monkeypatch, capsys, "ledger", "import", str(source), "--ledger", str(ledger), "--json")
    assert code == 1 and "Traceback" not in err, err
    assert json.loads(out)["rejected"] == 2
    assert not ledger.exists()
    # One good line still starts the ledger, and a ledger that is there still takes the import.
    source.write_text(
        json.dumps({"ts": "2026-11-17T10:00:00Z", "provider": "bedrock", "model": HAIKU, "input_tokens": 3}) + "\n"
    )
    code, out, err = run_cli(monkeypatch, capsys, "ledger", "import", str(source), "--ledger", str(ledger), "--json")
    assert code == 0 and json.loads(out)["imported"] == 1, err
    code, out, err = run_cli(monkeypatch, capsys, "ledger", "import", str(source), "--ledger", str(ledger), "--json")
    assert code == 0 and json.loads(out)["already_present"] == 1, err


@pytest.mark.parametrize(
    ("make", "said"),
    [
        (lambda p: p.mkdir(), "a folder; give the file with the text to cache"),
        (lambda p: p.write_text(""), "empty; give a file with the text to cache"),
        (lambda p: p.write_text(" \n\n"), "empty; give a file with the text to cache"),
    ],
)
def test_caches_create_names_a_contents_file_it_cannot_cache_before_the_api(make, said, tmp_path, monkeypatch, capsys):
    # A folder read "no such file"; an empty file went on to the API (connection refused, or its refusal) after the
    # ledger was made.
    contents = tmp_path / "doc.txt"
    make(contents)
    code, out, err = run_cli(
        monkeypatch,
        capsys,
        "caches",
        "create",
        "--model",
        "gemini-2.5-flash",
        "--contents-file",
        str(contents),
        "--ledger",
        str(tmp_path / "ledger.duckdb"),
        "--endpoint-url",
        "http://127.0.0.1:9",
    )
    line = one_error_line(err)
    assert code == 2 and out == ""
    assert line == f"error: --contents-file {contents}: {said}", line
    assert not (tmp_path / "ledger.duckdb").exists()


def test_caches_create_without_an_api_key_makes_no_ledger(tmp_path, monkeypatch, capsys) -> None:
    # "no Gemini API key" was said after an empty ledger file had been made for the cache it never created.
    for name in ("GEMINI_API_KEY", "GOOGLE_API_KEY"):
        monkeypatch.delenv(name, raising=False)
    contents = tmp_path / "doc.txt"
    contents.write_text("A long document to cache.\n")
    ledger = tmp_path / "ledger.duckdb"
    code, out, err = run_cli(
        monkeypatch, capsys, "caches", "create", "--model", "gemini-2.5-flash", "--contents-file", str(contents),
        "--ledger", str(ledger),
    )  # fmt: skip
    assert code == 2 and out == ""
    assert one_error_line(err).startswith("error: no Gemini API key: set GEMINI_API_KEY or GOOGLE_API_KEY"), err
    assert not ledger.exists()


@pytest.mark.parametrize(
    ("args", "said"),
    [
        (["keys", "create", "--rpm", BIG, "--ledger", "L"], f"--rpm {BIG}: give requests per minute from 1 to"),
        (["keys", "create", "--rpm", "0", "--ledger", "L"], "--rpm 0: give requests per minute from 1 to"),
        (["route", "drift", "--days", BIG, "--ledger", "S"], "Invalid value for '--days'"),
        (["review", "--since", f"{BIG}d", "--ledger", "S"], f"--since '{BIG}d': give the period in whole days"),
        (["route", "train", "X", "-o", "r.joblib", "--seed", "-1"], "Invalid value for '--seed'"),
        (["route", "train", "X", "-o", "r.joblib", "--seed", BIG], "Invalid value for '--seed'"),
        (["route", "eval", "mt-bench", "--seed", "-1", "--json"], "Invalid value for '--seed'"),
        (["route", "train", "X", "-o", "r.joblib", "--target-quality", "0.9", "--folds", "0"], "'--folds'"),
    ],
)
def test_a_number_too_big_for_the_command_is_one_line(args, said, tmp_path: Path, monkeypatch, capsys) -> None:
    # keys create --rpm 1e20: DuckDB's ConversionException (INT32 column) as a traceback; route drift --days 1e20
    # and review --since 99999999d: OverflowError from the date arithmetic, a traceback; route train/eval --seed -1
    # (or past 2**32 - 1): scikit-learn's InvalidParameterError and numpy's ValueError, tracebacks.
    monkeypatch.chdir(tmp_path)
    labelled = Path(__file__).parents[2] / "examples" / "routing" / "labelled.jsonl"
    places = {"L": str(tmp_path / "new.duckdb"), "S": str(_seed(tmp_path / "seeded.duckdb", n=3)), "X": str(labelled)}
    code, out, err = run_cli(monkeypatch, capsys, *[places.get(a, a) for a in args])
    line = one_error_line(err)
    assert code == 2 and out == "" and said in line, line


@pytest.mark.parametrize("as_json", [False, True])
@pytest.mark.parametrize(
    "extra", [["--hourly-usd", "99999999", "--units", BIG], ["--hourly-usd", "20", "--units", BIG]]
)  # a --hourly-usd of 1e30 or an --input-price of 1e300 is refused now (past money.MAX_USD): many --units get there
def test_plan_breakeven_prints_any_finite_amount(extra, as_json, monkeypatch, capsys) -> None:
    # money_str quantized in Decimal's default 28 digits: an amount from about 1e22 up (a big --hourly-usd, many
    # --units) raised decimal.InvalidOperation, a traceback, after the plan was computed.
    import json

    args = ["plan", "breakeven", "--model", HAIKU, "--input-share", "0.5", "--hourly-usd", "20", *extra]
    code, out, err = run_cli(monkeypatch, capsys, *args, *(["--json"] if as_json else []))
    assert code == 0 and "Traceback" not in err, err
    if as_json:
        data = json.loads(out)
        assert all(isinstance(v, str) for k, v in data.items() if k.endswith("_usd")), data


@pytest.mark.parametrize(
    "args",
    [
        # --hourly-usd 1e308 got there too (with `plan size` as well); it is refused now, past money.MAX_USD
        [
            "plan",
            "breakeven",
            "--input-share",
            "0.5",
            "--hourly-usd",
            "99999999",
            "--input-price",
            "1e-320",
            "--output-price",
            "1e-320",
        ],
        [
            "plan",
            "breakeven",
            "--input-share",
            "0.5",
            "--hourly-usd",
            "1",
            "--input-price",
            "1e-320",
            "--output-price",
            "1e-320",
            "--json",
        ],
    ],
)
def test_a_breakeven_past_what_a_number_holds_is_one_line(args, tmp_path: Path, monkeypatch, capsys) -> None:
    # The break-even volume overflowed a float to inf: "ValueError: inf cannot be written as JSON", a traceback.
    places = {"S": str(_seed(tmp_path / "seeded.duckdb", n=3))}
    code, out, err = run_cli(monkeypatch, capsys, *[places.get(a, a) for a in args], "--model", HAIKU)
    line = one_error_line(err)
    assert code == 2 and out == "", out
    assert "no volume breaks even" in line and "--hourly-usd" in line, line


@pytest.mark.parametrize(
    "args",
    [
        ["plan", "breakeven", "--model", HAIKU, "--input-share", "0.5", "--hourly-usd", "1e300"],
        ["plan", "breakeven", "--model", HAIKU, "--input-share", "0.5", "--hourly-usd", "20", "--input-price", "1e8"],
        [
            "plan",
            "breakeven",
            "--model",
            HAIKU,
            "--input-share",
            "0.5",
            "--hourly-usd",
            "20",
            "--output-price",
            "1e300",
        ],
        ["plan", "size", "--model", HAIKU, "--hourly-usd", "1e300", "--ledger", "S"],
        ["plan", "utilization", "--model", HAIKU, "--reservation-units", "1", "--hourly-usd", "1e300", "--ledger", "S"],
        ["route", "train", "D", "--max-cost-usd", "1e300"],
        ["keys", "create", "--budget-usd", "1e300", "--ledger", "L"],
        ["keys", "team-budget", "research", "--budget-usd", "1e300", "--ledger", "L"],
    ],
)
def test_a_usd_option_past_any_real_amount_is_refused_naming_the_option(args, tmp_path: Path, monkeypatch, capsys):
    # `plan breakeven --hourly-usd 1e300` printed a 301-digit provisioned cost (and a break-even utilisation to
    # match); `keys create --budget-usd 1e300` was refused, but echoed the budget as 301 digits.
    places = {
        "S": str(_seed(tmp_path / "seeded.duckdb", n=3)),
        "L": str(tmp_path / "new.duckdb"),
        "D": str(tmp_path / "labels.jsonl"),
    }
    code, out, err = run_cli(monkeypatch, capsys, *[places.get(a, a) for a in args])
    line = one_error_line(err)
    option, figure = args[-2:] if args[-2] != "--ledger" else args[-4:-2]
    assert code == 2 and out == "", out
    echoed = {"1e300": "1e+300", "1e8": "100000000"}[figure]
    assert f"{option} {echoed}" in line and "under 100,000,000" in line, line
    assert len(line) < 200, line
    assert not (tmp_path / "new.duckdb").exists()  # refused before a ledger was made


@pytest.mark.parametrize(
    ("command", "option"),
    [(["route", "explain", "hi"], "--config"), (["prices"], "--prices"), (["bench", "run"], None)],
)
@pytest.mark.parametrize(
    ("text", "where"),
    [("a: [\n", "line 2, column 1"), ("a: 1\n\tb: 2\n", "line 2, column 1"), ("m:\n  a: {b: c\n  d: 2\n", "line 3")],
)
def test_a_yaml_file_that_does_not_parse_is_one_line_with_its_place(
    command, option, text, where, tmp_path, monkeypatch, capsys
):
    # PyYAML's message came through whole: four lines, the last a caret under a blank copy of the line.
    bad = tmp_path / "bad.yaml"
    bad.write_text(text)
    code, out, err = run_cli(monkeypatch, capsys, *command, *([option] if option else []), str(bad))
    line = one_error_line(err)
    assert code == 2 and out == ""
    assert line.startswith(f"error: {bad}: not valid YAML at {where}"), line


@pytest.mark.parametrize(
    ("command", "option", "text"),
    [
        (["route", "explain", "hi"], "--config", "models: {}\nroutes: {}\nmodels: {}\n"),
        (["prices"], "--prices", "provider: openai\nmodels: []\nprovider: anthropic\n"),
        (["bench", "run"], None, "tasks: []\nname: x\ntasks: []\n"),
    ],
)
def test_a_key_written_twice_in_a_yaml_file_is_refused_with_its_line(
    command, option, text, tmp_path, monkeypatch, capsys
):
    # PyYAML keeps the last of two equal keys: the first `models:` (or a price file's first `provider:`) was
    # dropped without a word.
    bad = tmp_path / "twice.yaml"
    bad.write_text(text)
    code, out, err = run_cli(monkeypatch, capsys, *command, *([option] if option else []), str(bad))
    line = one_error_line(err)
    assert code == 2 and out == ""
    assert line.startswith(f"error: {bad}: not valid YAML at line 3, column 1: duplicate key "), line
    assert "(first at line 1); keep one of them" in line, line


def test_a_repeated_key_in_a_nested_mapping_is_refused_but_a_merge_may_be_overridden() -> None:
    from tokenomy.errors import yaml_problem
    from tokenomy.yaml_text import load_yaml

    with pytest.raises(Exception) as caught:
        load_yaml("models:\n  fast:\n    model: a\n    model: b\n")
    assert yaml_problem(caught.value) == "line 4, column 5: duplicate key 'model' (first at line 3); keep one of them"
    assert load_yaml("base: &b {model: a, provider: x}\nfast:\n  <<: *b\n  model: c\n")["fast"] == {
        "model": "c",
        "provider": "x",
    }


@pytest.mark.parametrize(
    "command",
    [
        ["serve"],
        ["emulate", "bedrock"],
        ["emulate", "anthropic"],
        ["emulate", "openai-batch"],
        ["emulate", "azure-openai"],
        ["emulate", "gemini"],
    ],
)
def test_a_port_in_use_is_one_line_before_anything_is_printed(command, tmp_path, monkeypatch, capsys):
    # serve: uvicorn's "ERROR: [Errno 98] error while attempting to bind ..." and exit status 3, after the config and
    # ledger were checked; emulate: the "emulator on http://..." banner on stdout, then the error.
    import socket

    monkeypatch.chdir(tmp_path)
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        ledger = ["--ledger", str(tmp_path / "ledger.duckdb")] if command == ["serve"] else []
        code, out, err = run_cli(monkeypatch, capsys, *command, "--port", str(port), *ledger)
    line = one_error_line(err)
    assert code == 2 and out == "", (out, err)
    assert line == (
        f"error: cannot listen on 127.0.0.1:{port} (Address already in use); pick another --port or "
        "--host, or stop the process using it"
    )


def test_serve_with_a_log_level_uvicorn_does_not_know_is_one_line(tmp_path, monkeypatch, capsys):
    # uvicorn raised KeyError: 'loud' from inside its Config, a traceback.
    monkeypatch.chdir(tmp_path)
    code, out, err = run_cli(monkeypatch, capsys, "serve", "--log-level", "loud", "--port", "0")
    line = one_error_line(err)
    assert code == 2 and out == ""
    assert "--log-level" in line and "'loud' is not a log level; use one of critical, error, warning" in line


def test_import_otel_of_a_binary_file_is_one_line(tmp_path: Path, monkeypatch, capsys) -> None:
    # A protobuf export (or any binary file) was a UnicodeDecodeError traceback from read_text.
    spans = tmp_path / "spans.pb"
    spans.write_bytes(b"\x0a\xea\x01\x02\xff\xfe binary")
    code, out, err = run_cli(
        monkeypatch, capsys, "import", "otel", str(spans), "--ledger", str(tmp_path / "l.duckdb"), "--json"
    )
    line = one_error_line(err)
    assert code == 2 and out == ""
    assert line.startswith(f"error: {spans}: not UTF-8 text (byte 2); expected OTLP JSON"), line


@pytest.mark.parametrize(
    ("name", "args", "expected"),
    [
        ("tasks.jsonl", ["bench", "run", "F"], "expected tasks as YAML"),
        ("tasks.yaml", ["bench", "run", "F"], "expected tasks as YAML"),
        ("labels.jsonl", ["route", "train", "F"], "expected a labelled JSONL"),
        ("cur.csv", ["import", "cur", "F", "--ledger", "L"], "expected a billing export as UTF-8 CSV (or Parquet, "),
        ("focus.csv", ["import", "focus", "F", "--ledger", "L"], "expected a billing export as UTF-8 CSV (or "),
        ("gcp.csv", ["import", "gcp-billing", "F", "--ledger", "L"], "expected a billing export as UTF-8 CSV"),
        (
            "doc.txt",
            [
                "caches",
                "create",
                "--model",
                "gemini-2.5-flash",
                "--contents-file",
                "F",
                "--ledger",
                "L",
                "--endpoint-url",
                "http://127.0.0.1:9",
            ],
            "expected the text to cache",
        ),
    ],
)
def test_a_binary_file_where_text_is_expected_is_one_line(name, args, expected, tmp_path, monkeypatch, capsys):
    # Each was a UnicodeDecodeError traceback from read_text (errors.read_utf8 now reads them all).
    monkeypatch.chdir(tmp_path)
    given = tmp_path / name
    given.write_bytes(b"ok\n\xea\x01\x02\xff binary")
    places = {"F": str(given), "L": str(tmp_path / "ledger.duckdb")}
    code, out, err = run_cli(monkeypatch, capsys, *[places.get(a, a) for a in args])
    line = one_error_line(err)
    assert code == 2 and out == ""
    assert line.startswith(f"error: {given}: not UTF-8 text (byte 4); {expected}"), line
    assert not (tmp_path / "ledger.duckdb").exists()


@pytest.mark.parametrize("kind", ["cur", "focus", "gcp-billing"])
def test_a_parquet_export_not_named_parquet_is_told_to_be_renamed(kind, tmp_path, monkeypatch, capsys) -> None:
    # Read as CSV, it was "cannot read as CSV or Parquet ('utf-8' codec can't decode byte ...)".
    import pandas as pd

    export = tmp_path / "export"
    pd.DataFrame({"BilledCost": ["1.0"]}).to_parquet(export)
    ledger = tmp_path / "l.duckdb"
    code, out, err = run_cli(monkeypatch, capsys, "import", kind, str(export), "--ledger", str(ledger))
    assert code == 2 and out == ""
    assert one_error_line(err) == f"error: {export}: a Parquet file not named *.parquet; rename it to end in .parquet"
    assert not ledger.exists()


EXAMPLE = '{"prompt": "...", "label": "weak"}'
ROW_KEYS = (
    "a row has prompt, label, tier, weak_quality, strong_quality, output_tokens, and the export-labels "
    "commands' notes (cost_by_model, example, met_bar, quality_bar, quality_by_model, route, task)"
)


@pytest.mark.parametrize(
    ("text", "said"),
    [
        ("", ": no examples; write one JSON object per line, e.g. " + EXAMPLE),
        ("\n\n", ": no examples; write one JSON object per line, e.g. " + EXAMPLE),
        ("[1, 2, 3]\n", ":1: a JSON array, not an object; write each example as " + EXAMPLE),
        ('"just a prompt"\n', ":1: a JSON string, not an object; write each example as " + EXAMPLE),
        (
            '{"prompt": "a", "label": "weak"}\n{"prompt": "b", "label": "strong"\n',
            ":2: not valid JSON at column 34: Expecting ',' delimiter; write one JSON object per line",
        ),
        ('{"prompt": "a"}\n', """:1: no 'label'; add "label": "weak" (the cheap tier was good enough) or "strong\""""),
        ('{"text": "a", "label": "weak"}\n', """:1: no 'prompt'; add the prompt's text as "prompt\""""),
        ('{"prompt": 7, "label": "weak"}\n', ":1: 'prompt' is a JSON number, not text; give the prompt's text"),
        # The label was shown as Python wrote it ("label ['a']", "label 'é'"), and a tier's as a 'label'; an array
        # or object was counted strong unsaid under --weak-label.
        (
            '{"prompt": "a", "label": "médium"}\n',
            """:1: 'label' "médium" is not strong/weak or tier1/tier2/tier3; name the cheap one(s) with `route train """
            """--weak-label NAME`""",
        ),
        (
            '{"prompt": "a", "label": "weak", "tier": 4}\n',
            ":1: 'tier' 4 is not strong/weak or tier1/tier2/tier3; name the cheap one(s) with `route train --weak-label "
            "NAME`",
        ),
        (
            '{"prompt": "a", "label": ["a"]}\n',
            """:1: 'label' ["a"] is a JSON array, not a label; give "weak" (the cheap tier was good enough), "strong" """
            """or a tier name""",
        ),
        # A blank prompt was trained on as a prompt (the embedding router took it without a word).
        (
            '{"prompt": "a", "label": "weak"}\n{"prompt": " \\n", "label": "strong"}\n',
            ":2: 'prompt' is blank; give the prompt's text, or leave the row out",
        ),
        (
            '{"prompt": "a", "label": "weak", "weak_quality": "high"}\n',
            """:1: 'weak_quality' "high" is not a number; give a quality from 0 (wrong) to 1 (fully right)""",
        ),
        # A quality past 0..1 was trained on: 5 made the weak model five times "correct", -1 worse than wrong.
        (
            '{"prompt": "a", "label": "weak", "weak_quality": 5}\n',
            ":1: 'weak_quality' 5 is outside 0 to 1; give a quality from 0 (wrong) to 1 (fully right)",
        ),
        (
            '{"prompt": "a", "label": "weak", "strong_quality": -1}\n',
            ":1: 'strong_quality' -1 is outside 0 to 1; give a quality from 0 (wrong) to 1 (fully right)",
        ),
        (
            '{"prompt": "a", "label": "weak", "weak_quality": 1.0000001}\n',
            ":1: 'weak_quality' 1.0000001 is outside 0 to 1; give a quality from 0 (wrong) to 1 (fully right)",
        ),
        (
            '{"prompt": "a", "label": "weak", "weak_quality": NaN}\n',
            ":1: 'weak_quality' NaN is not a number; give a quality from 0 (wrong) to 1 (fully right)",
        ),
        (
            '{"prompt": "a", "label": "weak", "strong_quality": true}\n',
            ":1: 'strong_quality' true is not a number; give a quality from 0 (wrong) to 1 (fully right)",
        ),
        # A misspelt key was dropped unsaid: the row trained with the default quality (1) in place of the 0.5 given.
        (
            '{"prompt": "a", "label": "weak", "strong_qualty": 0.5}\n',
            ":1: unknown key 'strong_qualty' (did you mean 'strong_quality'?); " + ROW_KEYS,
        ),
        (
            '{"prompt": "a", "label": "weak", "Weak_Quality": 0.5, "notes": "x"}\n',
            ":1: unknown keys 'Weak_Quality' (did you mean 'weak_quality'?), 'notes'; " + ROW_KEYS,
        ),
        (
            '{"prompt": "a", "label": "weak", "output_tokens": 2.5}\n',
            ":1: 'output_tokens' 2.5 is not a whole number >= 0; give the answer's length in tokens",
        ),
        # 1e30 was taken: every call it priced cost more than any budget, and calibration picked on that.
        (
            '{"prompt": "a", "label": "weak", "output_tokens": 1e30}\n',
            ":1: 'output_tokens' 1e+30 is over 2,147,483,647, more than one answer can be; give the answer's length in "
            "tokens",
        ),
        (
            '{"prompt": "a", "label": "weak", "output_tokens": 2147483648}\n',
            ":1: 'output_tokens' 2147483648 is over 2,147,483,647, more than one answer can be; give the answer's length "
            "in tokens",
        ),
        (
            '{"prompt": "a", "label": "weak", "output_tokens": "lots"}\n',
            """:1: 'output_tokens' "lots" is not a whole number >= 0; give the answer's length in tokens""",
        ),
        (
            '{"prompt": "a", "label": "strong"}\n{"prompt": "b", "label": "strong"}\n{"prompt": "c", "label": "tier2"}\n',
            ": every example is labelled strong; add examples labelled weak (the cheap tier was good enough), or name "
            "the cheap labels with --weak-label",
        ),
    ],
)
def test_route_train_on_a_bad_labelled_file_names_the_line_and_the_fix(text, said, tmp_path, monkeypatch, capsys):
    # Each ended in the reader's internal text in parentheses: "need a JSON object with 'prompt' and 'label'
    # ('list' object has no attribute 'get')", "(...'label')"; an empty file and one class named no file.
    data = tmp_path / "labels.jsonl"
    data.write_text(text)
    code, out, err = run_cli(monkeypatch, capsys, "route", "train", str(data), "-o", str(tmp_path / "r.joblib"))
    line = one_error_line(err)
    assert code == 2 and out == ""
    assert line == f"error: {data}{said}", line
    assert not (tmp_path / "r.joblib").exists()


@pytest.mark.parametrize(
    ("args", "said"),
    [
        (["keys", "create", "--period", "fortnight"], "--period 'fortnight': use one of day, month, total"),
        (["keys", "create", "--rpm", "0"], "--rpm 0: give requests per minute"),
        (["keys", "create", "--team", ""], "team '': give a team name"),
        (["keys", "team-budget", "web", "--budget-usd", "5", "--period", "week"], "--period 'week'"),
        (["keys", "team-budget", " ", "--budget-usd", "5"], "team ' ': give a team name"),
    ],
)
def test_a_bad_key_option_creates_no_ledger(args, said, tmp_path: Path, monkeypatch, capsys) -> None:
    # --period and --rpm were checked after the ledger was opened (a new ledger file was left behind, which the
    # budget check already avoided), and a blank team name was stored: "team : $5.00 per month".
    ledger = tmp_path / "new.duckdb"
    code, out, err = run_cli(monkeypatch, capsys, *args, "--ledger", str(ledger))
    line = one_error_line(err)
    assert code == 2 and out == "" and said in line, line
    assert not ledger.exists()


def test_keys_revoke_of_an_unknown_id_is_one_plain_line(tmp_path: Path, monkeypatch, capsys) -> None:
    # Was "error: Invalid value: no key with id 'x'; see `tokenomy keys list`; see `tokenomy keys revoke --help`".
    ledger = _seed(tmp_path / "ledger.duckdb", n=1)
    code, out, err = run_cli(monkeypatch, capsys, "keys", "revoke", "no-such-key", "--ledger", str(ledger))
    assert code == 2 and out == ""
    assert one_error_line(err) == "error: no key with id 'no-such-key' in this ledger; see `tokenomy keys list`"


def test_a_clickhouse_ledger_that_is_down_is_one_line_with_the_reason(monkeypatch, capsys) -> None:
    # clickhouse_connect logged "Unexpected Http Driver Exception" on its own line first, and the reason
    # ("Connection refused") was cut off at 300 characters of retry URL and query id.
    pytest.importorskip("clickhouse_connect")
    import socket

    with socket.socket() as probe:  # a port nothing listens on
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    code, out, err = run_cli(monkeypatch, capsys, "report", "spend", "--ledger", f"clickhouse://127.0.0.1:{port}")
    line = one_error_line(err)
    assert code == 2 and out == ""
    assert line.startswith(f"error: ledger clickhouse://127.0.0.1:{port}: cannot open ([Errno 111] Connection refused)")


@pytest.mark.parametrize(
    "args",
    [
        ["review"],
        ["plan", "savings"],
        ["plan", "size", "--model", HAIKU, "--hourly-usd", "20"],
    ],
)
def test_json_times_are_utc_with_z_like_every_other_json(args, tmp_path: Path, monkeypatch, capsys) -> None:
    # review (created_at, period.start/end/previous_start) and plan savings/size (window_start/end) wrote
    # "+00:00" where every other --json output, the ledger export included, writes "Z".
    import json
    import re

    monkeypatch.chdir(tmp_path)
    ledger = _seed(tmp_path / "ledger.duckdb", n=40, hours=24 * 20)
    code, out, err = run_cli(monkeypatch, capsys, *args, "--ledger", str(ledger), "--json")
    assert code == 0, err
    text = json.dumps(json.loads(out))
    times = re.findall(r'"(\d{4}-\d\d-\d\dT\d\d:\d\d[^"]*)"', text)
    assert times and all(t.endswith("Z") for t in times), times


def test_ledger_import_names_a_line_that_is_not_an_object(tmp_path: Path, monkeypatch, capsys) -> None:
    # A `null`, `[]`, `0` or `""` line was read as {} and reported as "field 'ts' is required".
    source = tmp_path / "events.jsonl"
    source.write_text('null\n[]\n0\n""\n')
    code, _, err = run_cli(monkeypatch, capsys, "ledger", "import", str(source), "--ledger", str(tmp_path / "l.duckdb"))
    assert code == 1 and "Traceback" not in err
    assert err.strip().splitlines() == [f"events.jsonl:{n}: line is not a JSON object" for n in range(1, 5)], err


@pytest.mark.parametrize(
    ("field", "value", "kind"),
    [
        ("region", {"name": "us-east-1"}, "an object"),
        ("task", ["triage"], "a list"),
        ("provider", ["bedrock"], "a list"),
        ("request_id", {"id": 1}, "an object"),
    ],
)
def test_ledger_import_names_a_list_or_object_where_text_belongs(field, value, kind, tmp_path, monkeypatch, capsys):
    # A region object was a TypeError traceback from the price lookup (unhashable type: 'dict'); a list or object in
    # any other text column was imported as its Python repr ("['triage']").
    record = {"ts": "2026-11-17T10:00:00Z", "provider": "bedrock", "model": HAIKU, "input_tokens": 10, field: value}
    source = tmp_path / "events.jsonl"
    source.write_text(json.dumps(record) + "\n")
    ledger = tmp_path / "l.duckdb"
    code, out, err = run_cli(monkeypatch, capsys, "ledger", "import", str(source), "--ledger", str(ledger), "--json")
    assert code == 1 and "Traceback" not in err, err
    assert json.loads(out)["errors"] == [
        f"events.jsonl:1: field '{field}' {value!r} is {kind}; write it as a single value, e.g. \"us-east-1\""
    ]
    assert open_store(ledger).query("SELECT COUNT(*) AS n FROM usage_events", [])[0]["n"] == 0


@pytest.mark.parametrize("value", ["nan", "inf", "-1"])
@pytest.mark.parametrize(
    ("args", "option"),
    [
        (["report", "reconcile", "--ledger", "S", "--tolerance-pct"], "--tolerance-pct"),
        (["bench", "summary", "B", "--json", "--tolerance"], "--tolerance"),
        (["bench", "export-labels", "B", "--min-quality"], "--min-quality"),
        (["route", "train", "gsm8k", "--holdout"], "--holdout"),
        (["route", "train", "gsm8k", "--target-quality"], "--target-quality"),
        (["route", "train", "gsm8k", "--max-cost-usd"], "--max-cost-usd"),
        (["route", "eval", "gsm8k", "--target-quality"], "--target-quality"),
    ],
)
def test_a_number_that_is_not_finite_or_out_of_range_is_one_line(args, option, value, tmp_path, monkeypatch, capsys):
    # report reconcile --tolerance-pct nan: decimal.InvalidOperation traceback; bench summary --tolerance inf --json:
    # "inf cannot be written as JSON" traceback; route train --holdout -1/nan/inf trained and exited 0;
    # --target-quality nan: "the best reachable on the held-out set is 1.004; lower the target".
    monkeypatch.chdir(tmp_path)
    bench = tmp_path / "bench-out"
    bench.mkdir()
    (bench / "results.csv").write_text(
        "task,model,example,repeat,prompt,quality,cost_usd,latency_ms,output_tokens,error\n"
        "t,local,0,0,hi,100.0,0.000000,10.0,3,\n"
    )
    places = {"S": str(_seed(tmp_path / "ledger.duckdb", n=3)), "B": str(bench)}
    code, out, err = run_cli(monkeypatch, capsys, *[places.get(a, a) for a in args], value)
    line = one_error_line(err)
    assert code == 2 and out == "" and option in line, line


@pytest.mark.parametrize(
    ("args", "option"),
    [
        (["bedrock", "--batch-step-seconds", "inf"], "--batch-step-seconds"),
        (["bedrock", "--retry-after", "inf"], "--retry-after"),
        (["anthropic", "--retry-after", "-1"], "--retry-after"),
        (["anthropic", "--retry-after", "inf"], "--retry-after"),
        (["openai-batch", "--validating-seconds", "inf"], "--validating-seconds"),
        (["azure-openai", "--validating-seconds", "inf"], "--validating-seconds"),
        (["gemini", "--batch-pending-seconds", "inf"], "--batch-pending-seconds"),
    ],
)
def test_an_emulator_with_a_time_that_is_not_finite_does_not_start(args, option, monkeypatch, capsys) -> None:
    # Each started serving (with "retry-after: -1" or "inf" headers, or batches that never leave a state).
    import tokenomy.emulate.server as server

    def must_not_serve(*_args, **_kwargs):
        raise AssertionError("the emulator started")

    monkeypatch.setattr(server, "serve", must_not_serve)
    code, out, err = run_cli(monkeypatch, capsys, "emulate", *args, "--port", "1")
    line = one_error_line(err)
    assert code == 2 and out == "" and f"Invalid value for '{option}'" in line, line


@pytest.mark.parametrize(
    ("text", "said"),
    [
        ("modelz: {}\n", "modelz: unknown key; did you mean 'models'? keys here: alerts, auth, budgets,"),
        (
            "models:\n  a: {provider: openai, model: gpt-4o-mini, base_ur: x}\n",
            "models.a.base_ur: unknown key; did you mean 'base_url'? keys here: api_key_env,",
        ),
        ("routes:\n  r: {model: local, fallbak: []}\n", "routes.r.fallbak: unknown key; did you mean 'fallback'?"),
        ("gateway:\n  journall: true\n", "gateway.journall: unknown key; did you mean 'journal'?"),
    ],
)
def test_an_unknown_config_key_says_which_keys_there_are(text, said, tmp_path: Path, monkeypatch, capsys) -> None:
    # Was pydantic's "Extra inputs are not permitted": the place, but not the fix (a typo of which key?).
    config = tmp_path / "tokenomy.yaml"
    config.write_text(text)
    code, out, err = run_cli(monkeypatch, capsys, "route", "explain", "hi", "--config", str(config))
    line = one_error_line(err)
    assert code == 2 and out == ""
    assert line.startswith(f"error: {config}: {said}"), line
    assert "source" not in line.split("keys here:")[1]  # an internal field, not a key to write


def test_import_of_a_figure_the_ledger_cannot_hold_is_a_problem_not_a_traceback(tmp_path, monkeypatch, capsys):
    # A CUR line with a usage amount of 1e400 made store.write fail for the whole file: pyarrow's OverflowError,
    # a traceback, nothing imported.
    import json

    cur = tmp_path / "cur.csv"
    cur.write_text(
        "line_item_usage_start_date,line_item_usage_type,line_item_usage_amount,line_item_unblended_cost,"
        "product_region_code,line_item_resource_id\n"
        "2026-11-01T00:00:00Z,USE1-Claude3Haiku-input-tokens,1000,0.25,us-east-1,x\n"
        "2026-11-02T00:00:00Z,USE1-Claude3Haiku-output-tokens,1e400,1,us-east-1,x\n"
    )
    code, out, err = run_cli(
        monkeypatch, capsys, "import", "cur", str(cur), "--ledger", str(tmp_path / "l.duckdb"), "--json"
    )
    assert code == 1 and "Traceback" not in err, err
    summary = json.loads(out)
    assert summary["read"] == 2 and summary["added"] == 1 and summary["already_in_ledger"] == 0, summary
    (problem,) = summary["problems"]
    assert "output_tokens" in problem and "out of the column's range; not imported" in problem


def test_ledger_import_of_a_folder_is_one_line_and_makes_no_ledger(tmp_path: Path, monkeypatch, capsys) -> None:
    # A folder passed the "does it exist" check, so a new, empty ledger was made before "Is a directory".
    (tmp_path / "exports").mkdir()
    code, out, err = run_cli(
        monkeypatch, capsys, "ledger", "import", str(tmp_path / "exports"), "--ledger", str(tmp_path / "ledger.duckdb")
    )
    line = one_error_line(err)
    assert code == 2 and out == ""
    assert line == f"error: {tmp_path / 'exports'}: a folder; give the JSONL or CSV file to import", line
    assert not (tmp_path / "ledger.duckdb").exists()


def test_ledger_export_writes_through_a_link_or_device_instead_of_replacing_it(
    tmp_path: Path, monkeypatch, capsys
) -> None:
    # The whole-or-nothing write moves a temporary file over the path: `-o /dev/full` (or /dev/stdout, as root)
    # replaced the device itself with a regular file and said "wrote 7 event(s)"; `-o link` replaced a symlink.
    ledger = _seed(tmp_path / "ledger.duckdb", n=3)
    real = tmp_path / "kept" / "events.jsonl"
    real.parent.mkdir()
    real.write_text("old\n")
    (tmp_path / "link.jsonl").symlink_to(real)
    (tmp_path / "null.jsonl").symlink_to(os.devnull)
    for name in ("link.jsonl", "null.jsonl"):
        code, _, err = run_cli(
            monkeypatch, capsys, "ledger", "export", "--ledger", str(ledger), "-o", str(tmp_path / name)
        )
        assert code == 0, err
        assert (tmp_path / name).is_symlink(), name
    assert len(real.read_text().splitlines()) == 3
    assert Path(os.devnull).is_char_device()


@pytest.mark.parametrize(
    "args",
    [
        ["ledger", "export"],
        ["ledger", "stats"],
        ["plan", "savings"],
        ["plan", "size", "--model", HAIKU, "--hourly-usd", "4"],
        ["plan", "utilization", "--model", HAIKU, "--reservation-units", "1", "--hourly-usd", "4"],
    ],
)
def test_a_since_after_until_is_named_not_an_empty_answer(args, tmp_path: Path, monkeypatch, capsys) -> None:
    # `ledger export --since 2026-11-18 --until 2026-11-17` wrote nothing and exited 0; `plan savings` said "the
    # ledger has no successful calls to analyse; record some traffic first" of a ledger full of them.
    ledger = _seed(tmp_path / "ledger.duckdb")
    code, out, err = run_cli(
        monkeypatch, capsys, *args, "--ledger", str(ledger), "--since", "2026-11-18", "--until", "2026-11-17"
    )
    line = one_error_line(err)
    assert code == 2 and out == ""
    assert line == "error: --since 2026-11-18 00:00 is not before --until 2026-11-17 00:00; swap them", line


@pytest.mark.parametrize(
    ("name", "text"),
    [
        ("focus.csv", "BilledCost,ChargePeriodStart,x_Model\n0.5,2026-11-20T00:00:00Z,m\n0.7,2026-11-21T00:00:00Z,m\n"),
        ("spans.jsonl", '{"resourceSpans": []}\n{"resourceSpans": []}\n'),
    ],
)
def test_ledger_import_of_another_kind_of_export_is_one_line_and_makes_no_ledger(
    name, text, tmp_path: Path, monkeypatch, capsys
) -> None:
    # A FOCUS export given to `ledger import` printed "unknown field(s) [...38 names...]" once per line, exited 1,
    # and left a new, empty ledger.
    (tmp_path / name).write_text(text)
    code, out, err = run_cli(
        monkeypatch, capsys, "ledger", "import", str(tmp_path / name), "--ledger", str(tmp_path / "ledger.duckdb")
    )
    line = one_error_line(err)
    assert code == 2 and out == ""
    assert line.startswith(f"error: {tmp_path / name}: not a Tokenomy ledger export"), line
    assert "tokenomy import" in line
    assert not (tmp_path / "ledger.duckdb").exists()


def test_every_since_and_until_takes_a_span_back_from_now_like_review_does(tmp_path: Path, monkeypatch, capsys):
    """`review --since 90d` spoke of periods, but `report spend --since 7d` was "Input should be a valid datetime
    or date, input is too short". Every time option now takes a span back from now as well as a date or time."""
    import json
    from datetime import UTC, datetime, timedelta

    ledger = tmp_path / "ledger.duckdb"
    store = open_store(ledger)
    now = datetime.now(UTC)
    store.write(
        [
            UsageEvent(
                ts=now - timedelta(hours=age),
                provider="bedrock",
                model=HAIKU,
                input_tokens=10,
                output_tokens=2,
                cost_usd=Decimal(cost),
                latency_ms=5.0,
            )
            for age, cost in ((1, "0.25"), (30, "0.5"), (24 * 10, "1"))
        ]
    )
    expected = {"2h": "0.25", "2d": "0.75", "2w": "1.75", "180m": "0.25"}
    for span, total in expected.items():
        code, out, err = run_cli(
            monkeypatch, capsys, "report", "spend", "--ledger", str(ledger), "--since", span, "--json"
        )
        assert code == 0, err
        assert sum(Decimal(row["cost_usd"]) for row in json.loads(out)) == Decimal(total), span
    code, out, err = run_cli(
        monkeypatch, capsys, "ledger", "export", "--ledger", str(ledger), "--since", "2d", "--until", "2h"
    )
    assert code == 0 and len(out.splitlines()) == 1, err  # the event 30 hours ago only
    code, out, _ = run_cli(
        monkeypatch,
        capsys,
        "report",
        "spend",
        "--ledger",
        str(ledger),
        "--since",
        (now - timedelta(days=2)).date().isoformat(),
        "--json",
    )
    assert code == 0 and json.loads(out)  # dates and times still read as before
    code, out, err = run_cli(monkeypatch, capsys, "report", "spend", "--ledger", str(ledger), "--since", "7 days")
    assert code == 2 and out == "" and "give a date (2026-11-01)" in err and "7d" in err and "Traceback" not in err


def test_report_options_only_tier_share_reads_are_refused_elsewhere(tmp_path: Path, monkeypatch, capsys) -> None:
    # `report spend --config tokenomy.yaml` read nothing from the config, silently.
    ledger = _seed(tmp_path / "ledger.duckdb")
    for flag, value in (("--config", str(tmp_path / "tokenomy.yaml")), ("--expected", "weak=0.7,strong=0.3")):
        code, out, err = run_cli(monkeypatch, capsys, "report", "spend", "--ledger", str(ledger), flag, value)
        assert code == 2 and out == ""
        assert one_error_line(err) == f"error: {flag} is read by `report tier-share` only; drop it from `report spend`"


@pytest.mark.parametrize("kind", ["otel", "cur", "focus", "gcp-billing", "openai-usage", "anthropic-usage"])
def test_import_of_a_file_that_is_not_there_says_so(kind, tmp_path, monkeypatch, capsys) -> None:
    # `import cur nope.parquet` said "cannot read as CSV or Parquet ([Errno 2] ...)", as if the file were bad
    missing = tmp_path / "typo.csv"
    code, _, err = run_cli(monkeypatch, capsys, "import", kind, str(missing), "--ledger", str(tmp_path / "l.duckdb"))
    assert code == 2
    assert one_error_line(err) == f"error: {missing}: file not found; check the path"
    assert not (tmp_path / "l.duckdb").exists()


@pytest.mark.parametrize("name", ["monthly-spend", "hourly-tokens"])
def test_csv_times_are_written_as_the_json_of_the_same_report_writes_them(name, tmp_path, monkeypatch, capsys):
    # `report monthly-spend --csv` wrote "2026-11-01 00:00:00+00:00" where its --json wrote "2026-11-01T00:00:00Z".
    import csv
    import io

    ledger = str(_seed(tmp_path / "ledger.duckdb"))
    window = ["--since", "2026-11-01", "--until", "2026-11-20", "--ledger", ledger]
    code, out, err = run_cli(monkeypatch, capsys, "report", name, *window, "--json")
    assert code == 0, err
    rows = json.loads(out)
    code, out, err = run_cli(monkeypatch, capsys, "report", name, *window, "--csv")
    assert code == 0, err
    column = next(iter(rows[0]))
    assert [r[column] for r in csv.DictReader(io.StringIO(out))] == [r[column] for r in rows]
    assert rows[0][column].endswith("Z")


@pytest.mark.parametrize("text", ["hello world\n", "a,b,c\n"])
def test_import_gcp_billing_of_a_csv_that_is_not_one_is_refused_like_cur_and_focus(text, tmp_path, monkeypatch, capsys):
    # With no data rows its columns went unchecked: "records read 0", exit 0, and a new empty ledger, where
    # `import cur` and `import focus` name the columns they need.
    given = tmp_path / "billing.csv"
    given.write_text(text)
    ledger = tmp_path / "ledger.duckdb"
    code, out, err = run_cli(
        monkeypatch, capsys, "import", "gcp-billing", str(given), "--ledger", str(ledger), "--json"
    )
    line = one_error_line(err)
    assert code == 2 and out == ""
    assert line.startswith(f"error: {given}: no service.description, sku.description and cost; expected a Google"), line
    assert not ledger.exists()


@pytest.mark.parametrize("option", ["--input", "--output", "--cache-read", "--cache-write"])
def test_a_negative_token_count_to_cost_names_the_option_given(option, monkeypatch, capsys):
    # It was refused as "input_tokens=-5 is negative", a name the command line does not have.
    code, out, err = run_cli(monkeypatch, capsys, "cost", "--model", HAIKU, option, "-5")
    line = one_error_line(err)
    assert code == 2 and out == "" and f"'{option}'" in line and "_tokens" not in line, line


@pytest.mark.parametrize(
    ("args", "said"),
    [
        (["--mode", "weird"], "error: --mode 'weird': give one of on_demand, batch, provisioned"),
        (["--cache-ttl", "2h"], "error: --cache-ttl '2h': give one of 5m, 1h"),
        (
            ["--service-tier", "gold"],
            "error: --service-tier 'gold': give one of standard, priority, flex, ultrafast, fast_mode",
        ),
        (
            ["--mode", "batch", "--service-tier", "priority"],
            "error: --service-tier priority prices on-demand calls only; drop it, or drop --mode batch",
        ),
    ],
)
def test_a_choice_cost_does_not_take_is_named_as_its_option(args, said, monkeypatch, capsys):
    # They were refused in the cost engine's words, "mode='weird' is not one of ...", "cache_ttl='2h' ...", names the
    # command line does not have.
    code, out, err = run_cli(monkeypatch, capsys, "cost", "--model", HAIKU, "--input", "5", *args)
    assert (code, out, one_error_line(err)) == (2, "", said)


@pytest.mark.parametrize(
    "name", ["spend", "tokens", "hourly-tokens", "latency", "errors", "cost-per-task", "tier-share", "cache-trend"]
)
def test_an_empty_report_csv_has_the_header_of_a_full_one(name, tmp_path, monkeypatch, capsys) -> None:
    # A window with no usage printed the report's name as the whole CSV ("spend"), so a script reading the file's
    # cost_usd column failed on exactly the quiet days; it is the columns the rows would have had, and no row.
    ledger = _seed(tmp_path / "ledger.duckdb")
    code, full, err = run_cli(
        monkeypatch,
        capsys,
        "report",
        name,
        "--ledger",
        str(ledger),
        "--csv",
        "--since",
        "2026-11-01",
        "--until",
        "2026-11-30",
    )
    assert code == 0 and len(full.splitlines()) > 1, err
    code, empty, err = run_cli(
        monkeypatch,
        capsys,
        "report",
        name,
        "--ledger",
        str(ledger),
        "--csv",
        "--since",
        "2020-01-01",
        "--until",
        "2020-01-31",
    )
    assert code == 0, err
    assert empty.splitlines() == full.splitlines()[:1], (empty, full)


@pytest.mark.parametrize(
    ("args", "said"),
    [
        (
            ["--tolerance-pct", "-5"],
            "error: Invalid value for '--tolerance-pct': '-5': must be a finite number of at least 0",
        ),
        (
            ["--since", "2025-11-24T10:00", "--until", "2025-11-24T09:00"],
            "error: --since 2025-11-24 10:00 is not before --until 2025-11-24 09:00; swap them",
        ),
    ],
)
def test_report_reconcile_echoes_what_was_typed(args, said, tmp_path, monkeypatch, capsys) -> None:
    # It echoed "-5.0" for -5, and a window ending before it starts on the same day as "--since 2025-11-24 is not
    # before --until 2025-11-24", which reads as a contradiction.
    ledger = _seed(tmp_path / "ledger.duckdb")
    code, out, err = run_cli(monkeypatch, capsys, "report", "reconcile", "--ledger", str(ledger), *args)
    assert code == 2 and out == "" and one_error_line(err).startswith(said), err


def test_a_csv_writes_a_yes_or_no_as_its_json_does(tmp_path, monkeypatch, capsys) -> None:
    # report reconcile --csv wrote its flagged column as Python writes a bool, "True", beside the JSON's true.
    from datetime import UTC, datetime

    ledger = tmp_path / "ledger.duckdb"
    bill = UsageEvent(
        ts=datetime(2026, 11, 10, 12, tzinfo=UTC),
        provider="openai",
        model="gpt-4o-mini",
        input_tokens=10,
        cost_usd=Decimal("0.5"),
        priced_by="billed",
    )
    open_store(ledger).write([bill])
    args = ["report", "reconcile", "--ledger", str(ledger), "--since", "2026-11-01", "--until", "2026-11-30"]
    code, out, err = run_cli(monkeypatch, capsys, *args, "--json")
    assert code == 0 and [r["flagged"] for r in json.loads(out)["rows"]] == [True], err
    code, out, err = run_cli(monkeypatch, capsys, *args, "--csv")
    header, row = out.splitlines()
    assert code == 0 and dict(zip(header.split(","), row.split(","), strict=True))["flagged"] == "true", out


def test_review_since_takes_weeks_and_answers_a_date_with_its_days(tmp_path: Path, monkeypatch, capsys):
    """Every other --since takes `2w` and a date; `review --since 2w` and `review --since 2026-11-01` were refused
    with "give the period in days" and no count to give. Weeks are whole days; a date is answered with its days."""
    from datetime import UTC, datetime, timedelta

    ledger = tmp_path / "ledger.duckdb"
    until = datetime(2026, 12, 1, tzinfo=UTC)
    open_store(ledger).write(
        [
            UsageEvent(
                ts=until - timedelta(days=3),
                provider="bedrock",
                model=HAIKU,
                input_tokens=10,
                output_tokens=2,
                cost_usd=Decimal("0.25"),
            )
        ]
    )
    code, out, err = run_cli(
        monkeypatch, capsys, "review", "--since", "2w", "--until", "2026-12-01", "--json", "--ledger", str(ledger)
    )
    assert code == 0, err
    assert json.loads(out)["period"]["start"] == "2026-11-17T00:00:00Z"
    code, out, err = run_cli(
        monkeypatch, capsys, "review", "--since", "2026-11-01", "--until", "2026-12-01", "--ledger", str(ledger)
    )
    assert code == 2 and "Traceback" not in err
    assert one_error_line(err) == (
        "error: --since '2026-11-01': give the period in whole days or weeks, 1 to 36500 "
        "days, e.g. 90d (from 2026-11-01 to 2026-12-01 is --since 30d)"
    )


def test_every_output_file_option_takes_output(tmp_path: Path, monkeypatch, capsys):
    """Six commands name their output -o/--output; `batch results` took only -o/--out and `bench run` only --out, so
    `--output` (what `ledger export`, `export focus`, `route train` take) was "No such option"."""
    ledger = tmp_path / "ledger.duckdb"
    open_store(ledger).write([])
    code, _, err = run_cli(
        monkeypatch, capsys, "batch", "results", "nojob", "--output", str(tmp_path / "r.jsonl"), "--ledger", str(ledger)
    )
    assert code == 2 and one_error_line(err).startswith("error: no batch job 'nojob'"), err
    for flag in ("--output", "-o"):
        code, _, err = run_cli(
            monkeypatch,
            capsys,
            "bench",
            "run",
            str(tmp_path / "none.yaml"),
            "--models",
            "local",
            flag,
            str(tmp_path / "out"),
        )
        assert code == 2 and "none.yaml" in one_error_line(err), err


@pytest.mark.parametrize(("args", "fresh"), [(["report", "spend"], False), (["serve"], True)])
def test_a_ledger_this_user_cannot_write_is_told_to_make_it_writable(args, fresh, tmp_path, monkeypatch, capsys):
    # A ledger on a read-only mount or in a folder the user cannot write was told "pass --ledger with a DuckDB file
    # path (a new one is created)": it was one, the path was right and its folder was the fault.
    import subprocess

    from helpers import require

    folder = tmp_path / "ledgers"
    folder.mkdir()
    ledger = folder / "ledger.duckdb"
    if not fresh:
        _seed(ledger, n=3)
    locked = ledger if ledger.exists() else folder
    if os.geteuid() == 0:  # root writes through permission bits: an immutable file or folder stops it too
        require(subprocess.run(["chattr", "+i", str(locked)], capture_output=True).returncode == 0, "no chattr +i")
    else:
        locked.chmod(0o555 if locked.is_dir() else 0o444)
    try:
        code, out, err = run_cli(monkeypatch, capsys, *args, "--ledger", str(ledger))
    finally:
        if os.geteuid() == 0:
            subprocess.run(["chattr", "-i", str(locked)], check=True)
        locked.chmod(0o755 if locked.is_dir() else 0o644)
    line = one_error_line(err)
    assert code == 2 and out == "", (code, out, err)
    assert line.startswith(f"error: ledger {ledger}: "), line
    assert line.endswith(
        f"; this user cannot write it or its folder {folder}: make them writable, or pass --ledger with a path in a "
        "folder it can write"
    ), line
