"""A CLI that never misleads: read-only commands leave ledgers alone, failures exit non-zero, bad input gets
one line naming the fix. (Issue 16, part 2.)"""

from __future__ import annotations

import json
from pathlib import Path

from typer.testing import CliRunner

from helpers import REPO
from helpers.cli import _seed
from tokenomy.cli import app
from tokenomy.ledger.store import open_store


def _tables(path: Path) -> set[str]:
    return {r["table_name"] for r in open_store(path).query("SELECT table_name FROM information_schema.tables")}


def test_read_only_commands_refuse_a_missing_ledger(tmp_path: Path) -> None:
    runner = CliRunner()
    typo = tmp_path / "ledgr.duckdb"
    for args in (
        ["ledger", "stats"],
        ["ledger", "export"],
        ["plan", "savings"],
        ["plan", "size", "--model", "anthropic.claude-3-haiku-20240307-v1:0"],
    ):
        result = runner.invoke(app, [*args, "--ledger", str(typo)])
        assert result.exit_code != 0 and f"no ledger at {typo}" in str(result.exception), (args, result.output)
        assert not typo.exists(), args


def test_alerts_check_writes_the_sent_table_only_when_it_reports(tmp_path: Path) -> None:
    ledger = _seed(tmp_path / "ledger.duckdb")
    cfg = tmp_path / "tokenomy.yaml"
    cfg.write_text("budgets:\n  - {scope: model, match: anthropic.claude-3-haiku-20240307-v1:0, limit_usd: 1}\n")
    runner = CliRunner()
    base = ["alerts", "check", "--config", str(cfg), "--ledger", str(ledger), "--as-of", "2026-11-18T12:00:00"]
    for mode in (["--json"], ["--dry-run"], ["--dry-run", "--json"]):
        result = runner.invoke(app, [*base, *mode])
        assert result.exit_code == 0, result.output
        assert "budget" in result.output, (mode, result.output)
        assert "tokenomy_alerts_sent" not in _tables(ledger), mode
    printed = runner.invoke(app, base)
    assert printed.exit_code == 0 and "budget" in printed.output
    assert "tokenomy_alerts_sent" in _tables(ledger)
    assert "no new alerts" in runner.invoke(app, base).output  # printed once, remembered


def test_failures_exit_non_zero_and_help_says_so(tmp_path: Path) -> None:
    runner = CliRunner()
    model = "anthropic.claude-3-haiku-20240307-v1:0"
    # batch validate: 0 good records, and bad lines among good ones (the report still prints).
    empty = tmp_path / "empty.jsonl"
    empty.write_text("\n")
    mixed = tmp_path / "mixed.jsonl"
    mixed.write_text('{"id": "a", "prompt": "hi"}\n{"id": "b"}\n')
    good = tmp_path / "good.jsonl"
    good.write_text('{"id": "a", "prompt": "hi"}\n')
    assert runner.invoke(app, ["batch", "validate", str(empty), "--model", model]).exit_code == 1
    bad = runner.invoke(app, ["batch", "validate", str(mixed), "--model", model])
    assert bad.exit_code == 1 and "1 bad lines" in bad.output and "1 good records" in bad.output
    assert runner.invoke(app, ["batch", "validate", str(good), "--model", model]).exit_code == 0
    # ledger import with a rejected line: the good line is kept, the status says not everything went in.
    events = tmp_path / "events.jsonl"
    events.write_text(
        '{"ts": "2026-11-01T00:00:00Z", "provider": "local", "model": "local", "input_tokens": 3}\n'
        '{"ts": "2026-11-01T00:00:00Z", "provider": "local", "model": "local", "output_tokens": "x"}\n'
    )
    ledger = tmp_path / "l.duckdb"
    imported = runner.invoke(app, ["ledger", "import", str(events), "--ledger", str(ledger)])
    assert imported.exit_code == 1 and "imported 1 event(s); rejected 1" in imported.output
    # report --html on a ledger with no calls writes nothing and says why.
    empty_ledger = tmp_path / "empty.duckdb"
    open_store(empty_ledger)
    page = tmp_path / "page.html"
    html = runner.invoke(app, ["report", "--html", str(page), "--ledger", str(empty_ledger)])
    assert html.exit_code == 1 and "no calls in ledger" in html.output and not page.exists()
    imports = ("otel", "cur", "llm-log", "focus", "gcp-billing", "openai-usage", "anthropic-usage")
    for path in (
        ["batch", "validate"],
        ["ledger", "import"],
        ["report"],
        ["bench", "run"],
        *(["import", kind] for kind in imports),
    ):
        text = " ".join(runner.invoke(app, [*path, "--help"]).output.split())
        assert "Exit status" in text and "1 when" in text, path


def test_bench_run_where_every_call_failed_exits_1_and_recommends_nothing(tmp_path: Path) -> None:
    import json
    import socket

    with socket.socket() as sock:  # a port with nothing listening: every call is refused
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    cfg = tmp_path / "dead.yaml"
    cfg.write_text(
        f"models:\n  dead:\n    provider: openai\n    model: gpt-4o-mini\n"
        f"    base_url: http://127.0.0.1:{port}/v1\n    api_key_env: DEAD_KEY\n"
    )
    tasks = REPO / "examples" / "bench" / "capital.yaml"
    result = CliRunner(env={"DEAD_KEY": "x"}).invoke(
        app,
        [
            "bench",
            "run",
            str(tasks),
            "--models",
            "dead",
            "--config",
            str(cfg),
            "--out",
            str(tmp_path / "out"),
            "--ledger",
            str(tmp_path / "l.duckdb"),
            "--json",
        ],
    )
    assert result.exit_code == 1, result.output
    summary = json.loads(result.stdout)
    assert summary["recommendations"]["capital"]["model"] is None
    assert "every call failed" in result.stderr


def test_bad_input_is_named_in_one_line(tmp_path: Path) -> None:
    import json

    runner = CliRunner()
    model = "anthropic.claude-3-haiku-20240307-v1:0"
    oops = tmp_path / "oops.json"
    oops.write_text('{"resourceSpans":"oops"}')
    otel = runner.invoke(app, ["import", "otel", str(oops), "--ledger", str(tmp_path / "l.duckdb"), "--json"])
    assert otel.exit_code == 1, otel.output  # a problem listed, not a traceback (AttributeError before)
    assert json.loads(otel.stdout)["problems"] == [
        f"{oops}: resourceSpans: is a JSON string, expected a list of objects (an OTLP JSON trace export, as written "
        "by the OpenTelemetry Collector's file exporter)"
    ]
    shapes = {
        "a.csv": ("id,prompt\n1,hello\n", "this is CSV"),
        "array.jsonl": ('[{"id": "1", "prompt": "hi"}]\n', "JSON array of 1 object"),
        "pretty.jsonl": ('[\n  {"id": "1", "prompt": "hi"}\n]\n', "this is a JSON array of 1 item"),
        "object.jsonl": ('{\n  "id": "1",\n  "prompt": "hi"\n}\n', "one JSON object spread over several lines"),
    }
    for name, (text, said) in shapes.items():
        path = tmp_path / name
        path.write_text(text)
        result = runner.invoke(app, ["batch", "validate", str(path), "--model", model])
        assert result.exit_code != 0 and said in str(result.exception), (name, result.exception)
        assert "expected JSONL, one JSON object per line" in str(result.exception)
    lines = tmp_path / "forms.jsonl"
    lines.write_text(
        '{"id": "1", "method": "POST", "url": "/v1/chat/completions", "body": {"messages": [{"role": "user", '
        '"content": "hi"}]}}\n'
        '{"modelInput": {"messages": [{"role": "user", "content": [{"type": "text", "text": "hi"}]}]}}\n'
        '{"recordId": "2", "modelInput": {"messages": [{"role": "user", "content": "hi"}]}}\n'
    )
    report = json.loads(runner.invoke(app, ["batch", "validate", str(lines), "--model", model, "--json"]).stdout)
    assert [(b["line"], b["field"]) for b in report["bad_lines"]] == [(1, "custom_id"), (2, "recordId")]
    assert "OpenAI batch line" in report["bad_lines"][0]["reason"]
    assert "rename id to custom_id" in report["bad_lines"][0]["reason"]
    assert "Bedrock batch line" in report["bad_lines"][1]["reason"]
    assert any(n.startswith("lines read: 1 as a Bedrock batch line") for n in report["notes"]), report["notes"]


def test_window_extrapolations_state_the_window_and_warn_when_short(tmp_path: Path) -> None:
    import json

    runner = CliRunner()
    short = _seed(tmp_path / "short.duckdb", hours=54 / 3600, n=10)
    result = runner.invoke(app, ["plan", "savings", "--ledger", str(short), "--json"])
    assert result.exit_code == 0, result.output
    data = json.loads(result.stdout)
    assert data["observed_window_seconds"] == 54 and data["window"].startswith("54 s (2026-11-18 11:59")
    # The seeded calls cost $0.50 each, not their list price: that is the other warning, about what was recorded.
    assert [w for w in data["warnings"] if "at least 24 h" in w] == data["warnings"][:1]
    assert len(data["warnings"]) == 2 and "the ledger recorded" in data["warnings"][1]
    assert result.stderr.startswith("warning: only 54 s") and len(result.stderr.strip().splitlines()) == 2
    human = runner.invoke(app, ["plan", "savings", "--ledger", str(short)])
    assert "calls over 54 s" in " ".join(human.stdout.split()) and "1.0 h" not in human.stdout
    long = _seed(tmp_path / "long.duckdb", hours=48, n=10)
    quiet = runner.invoke(app, ["plan", "savings", "--ledger", str(long), "--json"])
    assert ["the ledger recorded" in w for w in json.loads(quiet.stdout)["warnings"]] == [True]  # no window warning
    assert "warning: only" not in quiet.stderr
    # plan size: 10 minutes of busy trace would "buy" units; it says the window and that a week is needed.
    trace = tmp_path / "trace.csv"
    trace.write_text(
        "ts,input_tokens,output_tokens\n" + "".join(f"2026-11-18T12:{m:02d}:00Z,900000,100000\n" for m in range(10))
    )
    sized = runner.invoke(
        app,
        [
            "plan",
            "size",
            "--model",
            "anthropic.claude-3-haiku-20240307-v1:0",
            "--trace",
            str(trace),
            "--tpm-per-unit",
            "1000000",
            "--hourly-usd",
            "1",
            "--json",
        ],
    )
    assert sized.exit_code == 0, sized.output
    data = json.loads(sized.stdout)
    assert data["recommended_units"] >= 1 and data["window"].startswith("10 min")
    assert "at least 7 days" in data["warnings"][0] and "measure a full week" in data["verdict"]
    assert sized.stderr.startswith("warning: only 10 min")


def test_a_variant_priced_as_another_model_is_recorded_under_that_model(tmp_path: Path) -> None:
    from tokenomy.emulate.instant_openai import InstantOpenAI

    haiku = "anthropic.claude-3-5-haiku-20241022-v1:0"
    tasks = REPO / "examples" / "bench" / "capital.yaml"
    ledger = tmp_path / "l.duckdb"
    with InstantOpenAI() as url:
        cfg = tmp_path / "variants.yaml"  # examples/bench/variants.yaml's `verbose`, served by an OpenAI-format model
        cfg.write_text(
            f"models:\n  verbose:\n    provider: openai\n    model: local\n    base_url: {url}\n"
            f"    api_key_env: INSTANT_KEY\n    price_as: {haiku}\n    system_prompt: Answer at length.\n"
        )
        result = CliRunner(env={"INSTANT_KEY": "x"}).invoke(
            app,
            [
                "bench",
                "run",
                str(tasks),
                "--models",
                "verbose",
                "--config",
                str(cfg),
                "--out",
                str(tmp_path / "out"),
                "--ledger",
                str(ledger),
                "--json",
            ],
        )
    assert result.exit_code == 0, result.output
    events = open_store(ledger).events()
    assert len(events) == 2 and all(e.cost_usd > 0 for e in events)
    assert {e.model for e in events} == {haiku}  # was `local`: "the free model cost $0.000546"
    assert all(e.tags["variant"] == "verbose" and e.tags["served_model"] == "local" for e in events)


def test_tables_never_cut_the_identifying_column() -> None:
    import os
    import subprocess
    import sys

    from tokenomy.pricing.catalog import default_catalog

    tokenomy = str(Path(sys.executable).with_name("tokenomy"))
    env = {**os.environ, "COLUMNS": "80"}
    narrow = subprocess.run([tokenomy, "prices"], capture_output=True, text=True, timeout=120, env=env)
    assert narrow.returncode == 0 and "…" not in narrow.stdout  # was `anthropic.claude…`: wrapped now, never cut
    wide = subprocess.run([tokenomy, "prices", "--wide"], capture_output=True, text=True, timeout=120, env=env)
    lines = wide.stdout.splitlines()
    for model in {e.model for e in default_catalog().entries()}:
        assert any(f"│ {model} " in line for line in lines), model  # every id whole, on one line


def test_the_ledger_option_names_every_kind_of_ledger_the_readme_lists() -> None:
    runner = CliRunner()
    for path in (["report"], ["ledger", "stats"], ["review"]):
        text = " ".join(runner.invoke(app, [*path, "--help"], terminal_width=200).output.split())
        assert all(kind in text for kind in ("DuckDB", "postgresql://", "clickhouse://", "chdb:DIR")), (path, text)


def test_the_ledger_group_names_every_kind_of_ledger() -> None:
    # `tokenomy ledger --help` said "(DuckDB file or PostgreSQL)", though its commands take ClickHouse too.
    text = " ".join(CliRunner().invoke(app, ["--help"], terminal_width=200).output.replace("│", " ").split())
    group = " ".join(CliRunner().invoke(app, ["ledger", "--help"], terminal_width=200).output.split())
    assert "ClickHouse" in group and "DuckDB" in group and "PostgreSQL" in group
    assert "ClickHouse" in text.split(" ledger ", 1)[1].split(" emulate ", 1)[0], text


def test_the_bedrock_emulators_help_names_invokemodel_for_embedding_models() -> None:
    # The README lists InvokeModel for the Titan and Cohere embedding models among what `emulate bedrock` serves (it
    # does); its --help and the `emulate` command list named Converse, CountTokens and batch jobs only.
    for path in (["emulate", "bedrock", "--help"], ["emulate", "--help"]):
        text = " ".join(CliRunner().invoke(app, path, terminal_width=250).output.replace("│", " ").split())
        assert "InvokeModel for the Titan and Cohere embedding models" in text, text


def test_serve_and_keys_help_name_the_config_and_ledger_they_use_when_none_is_given() -> None:
    # serve's --config said "Without it the local model is served", though ./tokenomy.yaml (or $TOKENOMY_CONFIG) is
    # read when present; its --ledger named neither the other kinds of ledger nor a default, and keys' --ledger
    # named $TOKENOMY_LEDGER as the default, though both take the config's `ledger:` first.
    runner = CliRunner()
    serve = " ".join(runner.invoke(app, ["serve", "--help"], terminal_width=200).output.replace("│", " ").split())
    assert "Without it the local model is served" not in serve
    assert "[default: $TOKENOMY_CONFIG, else ./tokenomy.yaml if present, else the local model alone]" in serve
    for path in (["serve"], ["keys", "create"], ["keys", "list"], ["keys", "teams"]):
        text = " ".join(runner.invoke(app, [*path, "--help"], terminal_width=200).output.replace("│", " ").split())
        assert all(kind in text for kind in ("DuckDB", "postgresql://", "clickhouse://", "chdb:DIR")), (path, text)
        assert "[default: the config's ledger:, else $TOKENOMY_LEDGER or .tokenomy/ledger.duckdb]" in text, (path, text)


def test_review_refuses_benchmark_options_without_a_benchmark(tmp_path: Path) -> None:
    """--judge and --candidates only steer `review --bench`; alone they were silently ignored."""
    ledger = _seed(tmp_path / "ledger.duckdb")
    runner = CliRunner()
    for option in (["--judge", "local"], ["--candidates", "local"]):
        result = runner.invoke(app, ["review", *option, "--ledger", str(ledger)])
        assert result.exit_code != 0 and "add --bench" in str(result.exception), (option, result.output)
    tables = _tables(ledger)
    assert "tokenomy_reviews" not in tables  # refused before anything was stored


def test_review_of_a_period_with_no_usage_says_so_and_is_not_saved(tmp_path: Path) -> None:
    # `review` on an empty ledger (or a --until past every call) printed "$0.00 ... No actions: nothing drifted" and
    # stored that review, which the next real review then reported as its previous one.
    from datetime import UTC, datetime, timedelta
    from decimal import Decimal

    from tokenomy.ledger.events import UsageEvent

    ledger = tmp_path / "ledger.duckdb"
    open_store(ledger).write(
        [
            UsageEvent(
                ts=datetime.now(UTC) - timedelta(days=2),
                provider="bedrock",
                model="anthropic.claude-3-haiku-20240307-v1:0",
                input_tokens=10,
                output_tokens=2,
                cost_usd=Decimal("0.25"),
            )
        ]
    )
    runner = CliRunner()
    empty = runner.invoke(
        app, ["review", "--since", "7d", "--until", "2020-01-01", "--ledger", str(ledger)], terminal_width=200
    )
    assert empty.exit_code == 0, empty.output
    assert "review: no usage in the ledger from 2019-12-18 to 2020-01-01" in empty.output, empty.output
    assert "No actions" not in empty.output and "Nothing was saved" in empty.output
    real = runner.invoke(app, ["review", "--since", "7d", "--ledger", str(ledger), "--json"])
    assert real.exit_code == 0, real.output
    assert json.loads(real.stdout)["previous_review"] is None
