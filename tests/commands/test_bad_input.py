"""Every CLI command, on bad input, from a table: the exit status, and one line on stderr that says what is wrong
(no traceback, no multi-line usage box). Run through the real entry point (`tokenomy.cli.main`)."""

from __future__ import annotations

import json
import sys
from pathlib import Path

import pytest

from helpers.cli import all_command_paths
from tokenomy.cli import main
from tokenomy.ledger.store import open_store

HAIKU = "anthropic.claude-3-haiku-20240307-v1:0"

# command path -> (arguments, expected exit status, words the one line must contain).
# M: a ledger path that does not exist; F: a file that does not exist; C: a CSV file; D: a directory; L: a new ledger;
# E: an existing empty ledger.
CASES: dict[str, tuple[list[str], int, str]] = {
    "": (["bogus"], 2, "No such command 'bogus'"),
    "prices": (["no-such-model-xyz"], 2, "unknown model"),
    "cost": (["--model", "no-such-model-xyz", "--input", "1"], 2, "unknown model"),
    "chat": (["hi", "--model", "no-such-model-xyz", "--ledger", "L"], 2, "no-such-model-xyz"),
    "serve": (["--config", "F"], 2, "F"),
    "report": (["spend", "--ledger", "M"], 2, "no ledger at"),
    "review": (["--ledger", "M"], 2, "no ledger at"),
    "demo": (["--no-such-flag"], 2, "No such option"),
    "ledger": (["nope"], 2, "No such command 'nope'"),
    "ledger import": (["F", "--ledger", "L"], 2, "F"),
    "ledger export": (["--ledger", "M"], 2, "no ledger at"),
    "ledger stats": (["--ledger", "M"], 2, "no ledger at"),
    "emulate": (["nope"], 2, "No such command"),
    "emulate bedrock": (["--port", "-1"], 2, "--port"),
    "emulate anthropic": (["--port", "70000"], 2, "--port"),
    "emulate openai-batch": (["--port", "-5"], 2, "--port"),
    "emulate azure-openai": (["--deployment", "gpt-4o-mini"], 2, "NAME=MODEL"),
    "emulate gemini": (["--throttle-rate", "2"], 2, "--throttle-rate"),
    "keys": (["nope"], 2, "No such command"),
    "keys create": (["--budget-usd", "-5", "--ledger", "L"], 2, "budget"),
    "keys list": (["--ledger", "M"], 2, "no ledger at"),
    "keys revoke": (["no-such-key", "--ledger", "M"], 2, "no ledger at"),
    "keys teams": (["--ledger", "M"], 2, "no ledger at"),
    "keys team-budget": (["research", "--budget-usd", "-1", "--ledger", "L"], 2, "budget"),
    "route": (["nope"], 2, "No such command"),
    "route explain": (["hi", "--config", "F"], 2, "F"),
    "route train": (["F"], 2, "F"),
    "route eval": (["no-such-dataset"], 2, "no-such-dataset"),
    "route drift": (["--ledger", "M"], 2, "no ledger at"),
    "route export-labels": (["F"], 2, "F"),
    "batch": (["nope"], 2, "No such command"),
    "batch validate": (["C", "--model", HAIKU], 2, "this is CSV"),
    "batch submit": (["C", "--model", HAIKU, "--ledger", "L"], 2, "this is CSV"),
    "batch status": (["no-such-job", "--ledger", "M"], 2, "no ledger at"),
    "batch list": (["--ledger", "D"], 2, "ledger"),
    "batch wait": (["no-such-job", "--ledger", "M"], 2, "no ledger at"),
    "batch results": (["no-such-job", "--out", "out.jsonl", "--ledger", "E"], 2, "no-such-job"),
    "batch cancel": (["no-such-job", "--ledger", "M"], 2, "no ledger at"),
    "batch resume": (["no-such-job", "--ledger", "M"], 2, "no ledger at"),
    "batch plan": (["C", "--model", HAIKU, "--deadline", "25:99"], 2, "deadline"),
    "caches": (["nope"], 2, "No such command"),
    "caches create": (["--model", "gemini-2.5-flash", "--contents-file", "F", "--ledger", "L"], 2, "F"),
    "caches list": (["--ledger", "M"], 2, "no ledger at"),
    "caches delete": (["cachedContents/x", "--ledger", "M"], 2, "no ledger at"),
    "caches settle": (["--ledger", "M"], 2, "no ledger at"),
    "bench": (["nope"], 2, "No such command"),
    "bench run": (["F"], 2, "F"),
    "bench summary": (["F"], 2, "F"),
    "bench export-labels": (["F"], 2, "F"),
    "plan": (["nope"], 2, "No such command"),
    "plan breakeven": (["--model", HAIKU], 2, "--input-share"),
    "plan size": (["--model", HAIKU, "--ledger", "M"], 2, "no ledger at"),
    "plan utilization": (["--model", HAIKU, "--reservation-units", "1", "--ledger", "M"], 2, "no ledger at"),
    "plan savings": (["--ledger", "M"], 2, "no ledger at"),
    "alerts": (["nope"], 2, "No such command"),
    "alerts check": (["--ledger", "M"], 2, "no ledger at"),
    "export": (["nope"], 2, "No such command"),
    "export focus": (["-o", "focus.csv", "--ledger", "M"], 2, "no ledger at"),
    "import": (["nope"], 2, "No such command"),
    "import otel": (["F", "--ledger", "L"], 2, "F"),
    "import cur": (["F", "--ledger", "L"], 2, "F"),
    "import llm-log": (["F", "--ledger", "L"], 2, "F"),
    "import focus": (["F", "--ledger", "L"], 2, "F"),
    "import gcp-billing": (["F", "--ledger", "L"], 2, "F"),
    "import openai-usage": (["F", "--ledger", "L"], 2, "F"),
    "import anthropic-usage": (["--bucket-width", "2d", "--ledger", "L"], 2, "--bucket-width '2d'"),
}


def test_the_table_covers_every_command() -> None:
    assert {" ".join(path) for path in all_command_paths()} == set(CASES), "give every command a bad-input case"


@pytest.mark.parametrize("command", sorted(CASES))
def test_bad_input_exits_with_one_line(command: str, tmp_path: Path, monkeypatch, capsys) -> None:
    args, status, said = CASES[command]
    monkeypatch.chdir(tmp_path)
    (tmp_path / "records.csv").write_text("id,prompt\n1,hello\n")
    open_store(tmp_path / "empty.duckdb")
    places = {
        "E": str(tmp_path / "empty.duckdb"),
        "M": str(tmp_path / "missing.duckdb"),
        "F": str(tmp_path / "no-such-file.jsonl"),
        "C": str(tmp_path / "records.csv"),
        "D": str(tmp_path),
        "L": str(tmp_path / "ledger.duckdb"),
    }
    argv = ["tokenomy", *command.split(), *[places.get(a, a) for a in args]]
    monkeypatch.setattr(sys, "argv", argv)
    with pytest.raises(SystemExit) as exited:
        main()
    err = capsys.readouterr().err
    assert exited.value.code == status, (argv, err)
    lines = err.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: ") and "Traceback" not in err, (argv, err)
    if "L" in args:  # refused input leaves nothing behind: no new, empty ledger file
        assert not (tmp_path / "ledger.duckdb").exists(), argv
    assert places.get(said, said) in lines[0], (argv, lines[0])
    assert not (tmp_path / "missing.duckdb").exists()


def _date_options() -> list[tuple[str, str]]:
    """(command path, option) for every option of every command that takes a date and time."""
    from datetime import datetime

    import typer.main

    from tokenomy.cli import app

    found = []

    def walk(command, path: list[str]) -> None:
        for param in command.params:
            descriptor = getattr(param, "type_descriptor", None)
            if descriptor is not None and descriptor.annotation is datetime:
                found.append((" ".join(path), param.opts[0]))
        for name, sub in getattr(command, "commands", {}).items():
            walk(sub, path + [name])

    walk(typer.main.get_command(app), [])
    return found


@pytest.mark.parametrize(("command", "option"), _date_options())
@pytest.mark.parametrize("when", ["0001-01-02", "9999-12-31"])
def test_a_date_out_of_range_is_one_line_naming_the_option(command, option, when, tmp_path, monkeypatch, capsys):
    # `report forecast --until 0001-01-02` overflowed the date arithmetic with a traceback.
    monkeypatch.chdir(tmp_path)
    extra = ["forecast"] if command == "report" else []
    extra += ["--model", HAIKU] if command in ("plan size", "plan utilization") else []
    extra += ["--reservation-units", "1"] if command == "plan utilization" else []
    monkeypatch.setattr(sys, "argv", ["tokenomy", *command.split(), *extra, option, when])
    with pytest.raises(SystemExit) as exited:
        main()
    err = capsys.readouterr().err
    assert exited.value.code == 2 and "Traceback" not in err, err
    assert err.strip().startswith(
        f"error: Invalid value for '{option}': {when} is out of range; use a time from 1900-01-01 to 3000-01-01; see `"
    ), err
    assert len(err.strip().splitlines()) == 1


@pytest.mark.parametrize(("command", "option"), _date_options())
@pytest.mark.parametrize("span", ["99999999999d", "999999d", "99999999999999999999w"])
def test_a_span_back_before_year_one_is_one_line_naming_the_option(
    command, option, span, tmp_path, monkeypatch, capsys
):
    # `report spend --since 99999999999d` was an OverflowError traceback from timedelta (or datetime's subtraction).
    monkeypatch.chdir(tmp_path)
    extra = ["forecast"] if command == "report" else []
    extra += ["--model", HAIKU] if command in ("plan size", "plan utilization") else []
    extra += ["--reservation-units", "1"] if command == "plan utilization" else []
    monkeypatch.setattr(sys, "argv", ["tokenomy", *command.split(), *extra, option, span])
    with pytest.raises(SystemExit) as exited:
        main()
    err = capsys.readouterr().err
    assert exited.value.code == 2 and "Traceback" not in err, err
    assert err.strip().startswith(
        f"error: Invalid value for '{option}': '{span}' reaches back before year 1; give "
        "a shorter span (e.g. 90d) or a date"
    ), err
    assert len(err.strip().splitlines()) == 1


def test_the_date_options_are_all_found() -> None:
    assert len(_date_options()) >= 16  # every --since/--until/--as-of: report, review, ledger, plan, alerts, import


def test_each_emulator_listens_on_its_own_default_port() -> None:
    # `emulate azure-openai` and `emulate gemini` both took 8790: the second one started failed, its port in use.
    import typer.main

    from tokenomy.cli import app

    group = typer.main.get_command(app).commands["emulate"]
    ports = {name: next(p.default for p in cmd.params if p.name == "port") for name, cmd in group.commands.items()}
    assert len(set(ports.values())) == len(ports), ports


@pytest.mark.parametrize("named_in", ["config", "environment"])
def test_chat_to_bedrock_with_an_unknown_aws_profile_is_one_line(named_in, tmp_path: Path, monkeypatch, capsys):
    # botocore's ProfileNotFound came through as a traceback (and as a raw botocore error from the library).
    monkeypatch.chdir(tmp_path)
    (tmp_path / "aws").write_text("")
    monkeypatch.setenv("AWS_CONFIG_FILE", str(tmp_path / "aws"))
    monkeypatch.setenv("AWS_SHARED_CREDENTIALS_FILE", str(tmp_path / "aws"))
    model = {"provider": "bedrock", "model": HAIKU, "region": "us-east-1", "endpoint_url": "http://127.0.0.1:9"}
    if named_in == "config":
        model["profile"] = "no-such-profile"
    else:
        monkeypatch.setenv("AWS_PROFILE", "no-such-profile")
    (tmp_path / "tokenomy.yaml").write_text(json.dumps({"models": {"b": model}}))
    monkeypatch.setattr(
        sys,
        "argv",
        [
            "tokenomy",
            "chat",
            "hi",
            "--model",
            "b",
            "--max-tokens",
            "5",
            "--config",
            str(tmp_path / "tokenomy.yaml"),
            "--ledger",
            str(tmp_path / "l.duckdb"),
        ],
    )
    with pytest.raises(SystemExit) as exited:
        main()
    err = capsys.readouterr().err
    assert exited.value.code == 2 and "Traceback" not in err, err
    (line,) = err.strip().splitlines()
    assert line.startswith("error: ") and "no-such-profile" in line
    assert ("`profile:`" if named_in == "config" else "AWS_PROFILE") in line


def test_a_usage_error_quoting_a_value_hides_the_password_in_it(tmp_path: Path, monkeypatch, capsys) -> None:
    # click's "Invalid value for '--endpoint-url': 'ftp://u:PASSWORD@h/x' ..." printed the password as typed.
    source = tmp_path / "in.jsonl"
    source.write_text('{"id": "a", "prompt": "hi"}\n')
    argv = [
        "tokenomy",
        "batch",
        "submit",
        str(source),
        "--model",
        "gpt-4o-mini",
        "--backend",
        "openai",
        "--endpoint-url",
        "ftp://user:hunter2Proxy@proxy.example/v1",
    ]
    monkeypatch.setattr(sys, "argv", argv)
    with pytest.raises(SystemExit) as exited:
        main()
    err = capsys.readouterr().err
    assert exited.value.code == 2 and "hunter2Proxy" not in err, err
    assert "--endpoint-url" in err and "ftp://user:***@proxy.example/v1" in err and "not an http(s) URL" in err


# Every float option with a range: (command path, option, the range as the error words it). Other words come before
# the option where a command needs them to parse (the value is refused before any of them is read).
RANGED_FLOATS: list[tuple[str, str, str]] = [
    ("report", "--tolerance-pct", "of at least 0"),
    ("emulate bedrock", "--throttle-rate", "from 0 to 1"),
    ("emulate bedrock", "--retry-after", "of at least 0"),
    ("emulate bedrock", "--batch-step-seconds", "of at least 0"),
    ("emulate anthropic", "--throttle-rate", "from 0 to 1"),
    ("emulate anthropic", "--retry-after", "of at least 0"),
    ("emulate openai-batch", "--validating-seconds", "of at least 0"),
    ("emulate azure-openai", "--validating-seconds", "of at least 0"),
    ("emulate gemini", "--throttle-rate", "from 0 to 1"),
    ("emulate gemini", "--batch-pending-seconds", "of at least 0"),
    ("route train", "--target-quality", "of at least 0"),
    ("route train", "--holdout", "from 0.01 to 0.99"),
    ("route eval", "--target-quality", "of at least 0"),
    ("batch wait", "--timeout", "of at least 0"),
    ("batch wait", "--poll", "from 0.1 to 86400"),
    ("bench run", "--tolerance", "from 0 to 100"),
    ("bench summary", "--tolerance", "from 0 to 100"),
    ("bench export-labels", "--tolerance", "from 0 to 100"),
    ("bench export-labels", "--min-quality", "from 0 to 100"),
    ("plan breakeven", "--input-share", "from 0 to 1"),
    ("plan utilization", "--threshold", "from 0 to 1"),
    ("plan savings", "--routing-share", "from 0 to 1"),
    ("plan savings", "--cap-percentile", "from 0 to 100"),
]


def test_the_ranged_float_table_covers_every_such_option() -> None:
    import typer.main

    from tokenomy.cli import app

    found = set()

    def walk(command, path: list[str]) -> None:
        for param in command.params:
            descriptor = getattr(param, "type_descriptor", None)
            ranged = getattr(param, "min", None) is not None or getattr(param, "max", None) is not None
            if descriptor is not None and descriptor.annotation is float and ranged:
                found.add((" ".join(path), param.opts[0]))
        for name, sub in getattr(command, "commands", {}).items():
            walk(sub, path + [name])

    walk(typer.main.get_command(app), [])
    assert found == {(command, option) for command, option, _ in RANGED_FLOATS}


@pytest.mark.parametrize(("command", "option", "span"), RANGED_FLOATS)
@pytest.mark.parametrize("value", ["nan", "inf", "-inf", "1e400"])
def test_a_float_out_of_its_range_or_not_finite_says_so_naming_the_option(
    command, option, span, value, tmp_path, monkeypatch, capsys
):
    # Typer's range check let nan through to a callback that called it "not a number" (or to none: `batch wait
    # --timeout inf` was taken), refused inf as "Input should be less than or equal to 100" and -inf as "greater than
    # or equal to 0"; --throttle-rate, --routing-share, --input-share and --cap-percentile each had their own words,
    # the last only after reading the ledger. Each now says the value must be a finite number in its range.
    monkeypatch.chdir(tmp_path)
    after = {"route train": ["gsm8k"], "route eval": ["gsm8k"], "batch wait": ["no-such-job"]}.get(command, [])
    after += ["--model", HAIKU] if command.startswith("plan") and command != "plan savings" else []
    after += ["--reservation-units", "1"] if command == "plan utilization" else []
    after += [str(tmp_path)] if command in ("bench summary", "bench export-labels") else []
    monkeypatch.setattr(sys, "argv", ["tokenomy", *command.split(), option, value, *after])
    with pytest.raises(SystemExit) as exited:
        main()
    err = capsys.readouterr().err
    assert exited.value.code == 2 and "Traceback" not in err, err
    (line,) = err.strip().splitlines()
    assert line.startswith(f"error: Invalid value for '{option}': '{value}': must be a finite number {span}; see `")
    assert line.endswith(f" {command} --help`"), line


PRICE_FILE = """provider: aws.bedrock
source: https://example.com/our-rates
as_of: "2026-11-01"
models:
  acme.custom-model-v1:
    family: acme
    regions:
      us-east-1: {input: "1", output: "2", batch_input: "0.5", batch_output: "1"}
"""


@pytest.mark.parametrize(
    ("command", "args", "takes_prices"),
    [
        ("batch validate", ["R", "--model", "M", "--region", "us-east-1"], False),
        ("batch plan", ["R", "--model", "M", "--region", "us-east-1", "--deadline", "06:00"], False),
        ("chat", ["hi", "--model", "M", "--ledger", "L"], False),
        ("cost", ["--model", "M", "--region", "us-east-1", "--input", "1"], True),
        ("prices", ["M", "--region", "us-east-1"], True),
    ],
)
def test_a_model_without_a_price_names_a_fix_the_command_takes(
    command, args, takes_prices, tmp_path, monkeypatch, capsys
):
    # `batch validate --model <unknown>` said to add a price "with --prices FILE", an option it refuses; so did a
    # region without a price, a missing batch or cache price, and the rest of the pricing errors, in every command.
    import tokenomy.pricing.catalog as catalog
    from helpers.cli import one_error_line, run_cli

    monkeypatch.chdir(tmp_path)
    monkeypatch.delenv("TOKENOMY_PRICES", raising=False)
    monkeypatch.setattr(catalog, "_DEFAULT", None)
    (tmp_path / "records.jsonl").write_text('{"id": "a", "prompt": "hi"}\n')
    places = {"R": str(tmp_path / "records.jsonl"), "M": "acme.custom-model-v1", "L": str(tmp_path / "l.duckdb")}
    argv = [*command.split(), *[places.get(a, a) for a in args]]
    code, out, err = run_cli(monkeypatch, capsys, *argv)
    line = one_error_line(err)
    assert code == 2 and "unknown model 'acme.custom-model-v1'" in line, line
    said = "(--prices FILE, or TOKENOMY_PRICES=FILE)" if takes_prices else "(TOKENOMY_PRICES=FILE)"
    assert f"add it with a price file {said}." in line, line
    # The fix named works: the same command, with the model in a price file named by TOKENOMY_PRICES.
    if command != "chat":  # chat would call the model, which no server answers
        (tmp_path / "prices.yaml").write_text(PRICE_FILE)
        monkeypatch.setenv("TOKENOMY_PRICES", str(tmp_path / "prices.yaml"))
        monkeypatch.setattr(catalog, "_DEFAULT", None)
        code, out, err = run_cli(monkeypatch, capsys, *argv)
        assert code == 0 and "acme.custom-model-v1" in out, err


@pytest.mark.parametrize(
    ("args", "said"),
    [
        (["keys", "create", "--name", "caf\udce9", "--ledger", "L"], "--name 'caf\\xe9'"),
        (["keys", "team-budget", "r\udcff", "--budget-usd", "5", "--ledger", "L"], "'r\\xff'"),
        (["chat", "hi \udcff", "--max-tokens", "3", "--ledger", "L"], "'hi \\xff'"),
        (["chat", "hi", "--task=\udcfe", "--max-tokens", "3", "--ledger", "L"], "'--task=\\xfe'"),
        (["route", "explain", "\udcff", "--config", "F"], "'\\xff'"),
    ],
)
def test_a_word_that_is_not_utf8_is_one_line_naming_it(args, said, tmp_path: Path, monkeypatch, capsys) -> None:
    # A name, team, prompt or task typed in a terminal that is not UTF-8 reached DuckDB, the model or a hash as a
    # traceback ("surrogates not allowed"); `keys create` ended there with no key made.
    from helpers.cli import one_error_line, run_cli

    monkeypatch.chdir(tmp_path)
    places = {"L": str(tmp_path / "l.duckdb"), "F": str(tmp_path / "no-such.yaml")}
    code, out, err = run_cli(monkeypatch, capsys, *[places.get(a, a) for a in args])
    assert code == 2 and out == "", (code, out)
    assert one_error_line(err) == f"error: {said}: not UTF-8 text; type it again in UTF-8 (a terminal set to " + (
        "UTF-8, e.g. LANG=C.UTF-8)"
    )
    assert not (tmp_path / "l.duckdb").exists()


def test_a_file_whose_name_is_not_utf8_is_still_read(tmp_path: Path, monkeypatch, capsys) -> None:
    from helpers.cli import run_cli

    source = Path(str(tmp_path / "caf\udce9.jsonl"))
    source.write_text(json.dumps({"ts": "2026-11-17T10:00:00Z", "provider": "bedrock", "model": HAIKU}) + "\n")
    ledger = str(tmp_path / "l.duckdb")
    code, out, err = run_cli(monkeypatch, capsys, "ledger", "import", str(source), "--ledger", ledger, "--json")
    assert code == 0 and json.loads(out)["imported"] == 1, err


@pytest.mark.skipif(not Path("/dev/full").exists(), reason="needs /dev/full")
@pytest.mark.parametrize("args", [["prices", "--json"], ["prices"]])
def test_output_to_a_full_disk_says_so_with_the_fix(args, tmp_path: Path) -> None:
    # It was "error: [Errno 28] No space left on device", naming neither the output nor what to do.
    import subprocess

    with open("/dev/full", "w") as full:
        run = subprocess.run(
            [sys.executable, "-c", "from tokenomy.cli import main; main()", *args],
            stdout=full,
            stderr=subprocess.PIPE,
            text=True,
            cwd=tmp_path,
            timeout=120,
        )
    assert run.returncode == 2 and run.stderr == (
        "error: no space left on the disk the output goes to; free some space, or send it to another disk\n"
    ), run.stderr
