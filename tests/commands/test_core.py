"""The `tokenomy` command: help everywhere, JSON interfaces the checks use, readable errors."""

from __future__ import annotations

import json
import subprocess
import sys
from decimal import Decimal
from pathlib import Path

import pytest
from typer.testing import CliRunner

from helpers.cli import all_command_paths
from tokenomy.cli import app

TOKENOMY = str(Path(sys.executable).with_name("tokenomy"))


def run(*args: str, check: bool = True) -> subprocess.CompletedProcess:
    result = subprocess.run([TOKENOMY, *args], capture_output=True, text=True, timeout=300)
    if check:
        assert result.returncode == 0, result.stderr
    return result


def test_every_subcommand_has_help():
    paths = all_command_paths()
    assert ["prices"] in paths and ["cost"] in paths and ["ledger", "import"] in paths
    runner = CliRunner()
    for path in paths:
        result = runner.invoke(app, [*path, "--help"])
        assert result.exit_code == 0, (path, result.output)
        assert "Usage" in result.output


def test_cost_json_has_breakdown_and_total():
    data = json.loads(
        run(
            "cost",
            "--model",
            "anthropic.claude-3-haiku-20240307-v1:0",
            "--input",
            "1000",
            "--output",
            "500",
            "--mode",
            "batch",
            "--json",
        ).stdout
    )
    assert data["total_usd"] == "0.0004375"  # 1000*0.125 + 500*0.625 = 437.5 micro-dollars, exact
    assert {"input_usd", "output_usd", "cache_read_usd", "cache_write_usd", "source", "as_of"} <= set(data)


def test_cost_prices_the_audio_parts_given_at_the_audio_rates():
    # gpt-audio: text $2.50 in / $10 out, audio $32 / $64 per 1M; `cost` had no way to say which tokens were audio.
    data = json.loads(
        run(
            "cost",
            "--model",
            "gpt-audio",
            "--input",
            "1200",
            "--output",
            "500",
            "--audio-input",
            "1000",
            "--audio-output",
            "400",
            "--json",
        ).stdout
    )
    assert Decimal(data["input_usd"]) == (200 * Decimal("2.50") + 1_000 * Decimal(32)) / 1_000_000
    assert Decimal(data["total_usd"]) == Decimal("0.0591")
    bad = run("cost", "--model", "gpt-audio", "--input", "10", "--audio-input", "11", check=False)
    assert bad.returncode == 2 and "Traceback" not in bad.stderr
    assert bad.stderr.strip() == "error: --audio-input 11 is more than --input 10; the audio tokens are part of --input"


def test_cost_json_parts_add_up_to_the_total():
    # Each part was rounded to 1e-6 on its own: input "0.000000" + output "0.000001" beside total "0.000002", for
    # the "exact Decimal breakdown" the README promises (the table beside it showed $0.00000050 + $0.00000125).
    data = json.loads(
        run(
            "cost", "--model", "anthropic.claude-3-haiku-20240307-v1:0", "--input", "2", "--output", "1", "--json"
        ).stdout
    )
    parts = [data[k] for k in ("input_usd", "output_usd", "cache_read_usd", "cache_write_usd")]
    assert parts == ["0.0000005", "0.00000125", "0.000000", "0.000000"] and data["total_usd"] == "0.00000175"
    assert sum(map(Decimal, parts)) == Decimal(data["total_usd"])


def test_cost_with_a_region_of_a_model_priced_globally_says_on_stderr_the_region_does_not_change_it():
    result = run("cost", "--region", "mars-1", "--model", "gpt-4o-mini", "--input", "1000", "--json")
    assert json.loads(result.stdout)["region"] == "global"  # stdout stays the breakdown alone
    assert "gpt-4o-mini has one global price" in result.stderr and "--region mars-1" in result.stderr
    regional = run("cost", "--region", "us-east-1", "--model", "anthropic.claude-3-haiku-20240307-v1:0", "--json")
    assert json.loads(regional.stdout)["region"] == "us-east-1" and regional.stderr == ""


def test_prices_json_shows_every_field_with_source():
    data = json.loads(run("prices", "anthropic.claude-3-5-haiku-20241022-v1:0", "--json").stdout)
    for field in (
        "input",
        "output",
        "batch_input",
        "batch_output",
        "cache_read",
        "cache_write",
        "cache_min_tokens",
        "cache_ttl_seconds",
        "provisioned_hourly",
        "source",
        "as_of",
        "region",
        "priced_by",
    ):
        assert field in data, field
    assert data["input"] == "0.8000" and data["cache_min_tokens"] == 2048  # per 1M tokens, 4 places


def test_errors_are_one_readable_line():
    result = run("cost", "--model", "nope-model", "--input", "1", "--json", check=False)
    assert result.returncode == 2
    assert result.stderr.startswith("error: unknown model 'nope-model'") and "Traceback" not in result.stderr
    # `chat` and `bench run` take no --prices: the fix named must be one every command has (TOKENOMY_PRICES)
    result = run("chat", "hi", "--model", "nope-model", check=False)
    assert result.returncode == 2 and "TOKENOMY_PRICES=FILE" in result.stderr, result.stderr
    assert "). (or" not in result.stderr and "configure it under `models:`" in result.stderr, result.stderr
    result = run("cost", "--model", "local", "--input", "-3", check=False)
    assert result.returncode == 2 and "'--input'" in result.stderr and "greater than or equal to 0" in result.stderr


def test_ledger_import_cli_reports_line_numbers(tmp_path):
    path = tmp_path / "events.jsonl"
    path.write_text(
        '{"ts": "2026-11-01T00:00:00Z", "provider": "local", "model": "local", "input_tokens": 3}\n'
        '{"ts": "2026-11-01T00:00:00Z", "provider": "local", "model": "local", "output_tokens": "x"}\n'
    )
    ledger = tmp_path / "l.duckdb"
    imported = run("ledger", "import", str(path), "--ledger", str(ledger), "--json", check=False)
    assert imported.returncode == 1  # a rejected line means the import did not do all it was asked
    data = json.loads(imported.stdout)
    assert data["imported"] == 1 and data["rejected"] == 1
    assert data["errors"] == ["events.jsonl:2: field 'output_tokens' 'x' is not a whole number"]
    exported = run("ledger", "export", "--ledger", str(ledger)).stdout.strip().splitlines()
    assert len(exported) == 1 and json.loads(exported[0])["input_tokens"] == 3


@pytest.mark.slow
def test_chat_command_prints_answer_and_records(tmp_path):
    ledger = tmp_path / "l.duckdb"
    data = json.loads(
        run("chat", "Say OK.", "--max-tokens", "4", "--task", "smoke", "--ledger", str(ledger), "--json").stdout
    )
    assert data["text"] and data["model"] == "local" and data["output_tokens"] > 0
    human = run("chat", "Say OK.", "--max-tokens", "4", "--ledger", str(ledger)).stdout
    assert "cache read" in human and "ms" in human
    stats = json.loads(run("ledger", "stats", "--ledger", str(ledger), "--json").stdout)
    assert stats[0]["requests"] == 2


def test_chat_refuses_an_empty_prompt_or_cap_and_names_an_unreachable_server(tmp_path):
    ledger = str(tmp_path / "l.duckdb")
    empty = run("chat", "   ", "--ledger", ledger, check=False)
    assert empty.returncode == 2 and "PROMPT is empty" in empty.stderr  # was sent to the model as is
    zero = run("chat", "Hi", "--max-tokens", "0", "--ledger", ledger, check=False)
    assert zero.returncode == 2 and "--max-tokens" in zero.stderr  # was silently "no cap"
    import os
    import socket

    with socket.socket() as sock:  # a port nothing listens on
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    env = {**os.environ, "OPENAI_BASE_URL": f"http://127.0.0.1:{port}/v1", "OPENAI_API_KEY": "x"}
    down = subprocess.run(
        [TOKENOMY, "chat", "Hi", "--model", "gpt-4o-mini", "--max-tokens", "5", "--ledger", ledger],
        capture_output=True,
        text=True,
        timeout=300,
        env=env,
    )
    assert down.returncode == 2 and f"127.0.0.1:{port}/v1" in down.stderr and "OPENAI_BASE_URL" in down.stderr


def test_help_keeps_bracketed_defaults_that_rich_would_take_for_markup():
    import os

    def help_text(*args: str) -> str:  # wide, so no box border splits a phrase
        return subprocess.run(
            [TOKENOMY, *args, "--help"],
            capture_output=True,
            text=True,
            timeout=60,
            env={**os.environ, "COLUMNS": "400"},
        ).stdout

    assert "[default: $TOKENOMY_LEDGER or .tokenomy/ledger.duckdb]" in help_text("ledger", "stats")
    assert "[default: now]" in help_text("batch", "plan")


def test_a_config_that_is_not_utf8_is_named(tmp_path):
    config = tmp_path / "tokenomy.yaml"
    config.write_bytes(b"models:\n  m:\n    provider: caf\xe9\n")
    result = run("chat", "Hi", "--config", str(config), "--model", "m", check=False)
    assert result.returncode == 2 and "tokenomy.yaml: not UTF-8" in result.stderr, result.stderr  # was a traceback


def test_tables_left_align_sentences_and_right_align_numbers():
    from tokenomy.commands._output import table

    result = table(
        "bad lines",
        ["line", "field", "reason", "tokens"],
        [[2, "id", "duplicate id 'a'", 7]],
        text_columns=("field", "reason"),
    )
    # Reasons and assumptions were right-aligned like numbers, ragged and hard to read.
    assert [c.justify for c in result.columns] == ["left", "left", "left", "right"]


def test_help_paragraphs_flow_as_sentences_not_as_the_docstring_was_wrapped():
    # Typer keeps single line breaks after the first paragraph: `alerts check --help` broke "when" / "they are POSTed"
    # and "(the" / "table and the" onto lines of their own, mid-sentence, at any terminal width.
    import inspect

    import typer.main

    def walk(command, path):
        for paragraph in inspect.cleandoc(command.help or "").split("\n\n"):
            assert "\n" not in paragraph, (path, paragraph)
        for name, sub in getattr(command, "commands", {}).items():
            walk(sub, [*path, name])

    walk(typer.main.get_command(app), [])
    result = CliRunner().invoke(app, ["alerts", "check", "--help"], terminal_width=200)
    assert "created on the first one) when they are POSTed" in result.output, result.output


def test_tables_left_align_every_column_of_words_not_only_the_first():
    # `keys list` right-aligned name, team and period, `report cache-trend` the model id beside the week, `report
    # monthly-spend` the provider: ragged words, because only the first column and the ones a caller named were left.
    from tokenomy.commands._output import table

    result = table(
        "Keys",
        ["id", "name", "team", "budget", "period", "rpm", "revoked"],
        [
            ["6b29537577bd", "a b", "ads", "$10.005", "month", None, ""],
            ["c686d330a87a", None, None, "$0.00", "month", "1,200", "yes"],
        ],
    )
    assert [c.justify for c in result.columns] == ["left", "left", "left", "right", "left", "right", "left"]
    figures = table(
        None,
        ["week", "model", "calls", "rate", "delta", "cost"],
        [["2026-11-16", "m", "1,234", "12.5%", "+3.0%", "-$0.50"], ["2026-11-23", "n", "7", "—", "", "1"]],
    )
    assert [c.justify for c in figures.columns] == ["left", "left", "right", "right", "right", "right"]


def test_ledger_stats_counts_the_cost_of_every_billed_attempt_like_report_spend(tmp_path):
    # `ledger stats` summed cost over outcome='ok' rows only, so a stream cancelled after its first delta (billed,
    # recorded with its cost) vanished from the "Spend summary": $0.50 beside `report spend`'s $0.80.
    from datetime import UTC, datetime, timedelta

    from tokenomy.ledger.events import UsageEvent
    from tokenomy.ledger.store import open_store

    ledger = tmp_path / "l.duckdb"
    t0 = datetime(2026, 11, 20, 10, tzinfo=UTC)
    open_store(ledger).write(
        [
            UsageEvent(
                ts=t0,
                provider="bedrock",
                model="m",
                input_tokens=100,
                output_tokens=10,
                cost_usd=Decimal("0.5"),
                latency_ms=100.0,
            ),
            UsageEvent(
                ts=t0 + timedelta(minutes=1),
                provider="bedrock",
                model="m",
                input_tokens=100,
                output_tokens=3,
                cost_usd=Decimal("0.3"),
                latency_ms=900.0,
                outcome="cancelled",
            ),
            UsageEvent(
                ts=t0 + timedelta(minutes=2), provider="bedrock", model="m", outcome="throttled", latency_ms=5.0
            ),
        ]
    )
    runner = CliRunner()
    stats = json.loads(runner.invoke(app, ["ledger", "stats", "--ledger", str(ledger), "--json"]).stdout)
    spend = json.loads(runner.invoke(app, ["report", "spend", "--ledger", str(ledger), "--json"]).stdout)
    everything = stats[-1]
    assert everything["model"] == "ALL" and Decimal(everything["cost_usd"]) == Decimal(spend[0]["cost_usd"]) == Decimal(
        "0.8"
    )
    assert everything["input_tokens"] == 200 and everything["output_tokens"] == 13  # billed tokens, as cost
    assert everything["requests"] == 1 and everything["latency_p50_ms"] == 100.0  # answered calls only


def test_ledger_stats_takes_since_and_until_like_report_spend(tmp_path):
    # `ledger stats` summed the whole ledger, with no --since where `ledger export` and `report spend` take one.
    from datetime import UTC, datetime, timedelta

    from tokenomy.ledger.events import UsageEvent
    from tokenomy.ledger.store import open_store

    ledger = tmp_path / "l.duckdb"
    now = datetime.now(UTC)
    open_store(ledger).write(
        [
            UsageEvent(
                ts=now - timedelta(hours=age),
                provider="bedrock",
                model=model,
                input_tokens=10,
                output_tokens=2,
                cost_usd=Decimal(cost),
                latency_ms=5.0,
            )
            for age, model, cost in ((1, "a", "0.25"), (30, "b", "0.5"), (24 * 10, "c", "1"))
        ]
    )
    runner = CliRunner()

    def stats(*window: str) -> dict[str, Decimal]:
        result = runner.invoke(app, ["ledger", "stats", "--ledger", str(ledger), "--json", *window])
        assert result.exit_code == 0, result.output
        return {row["model"]: Decimal(row["cost_usd"]) for row in json.loads(result.stdout)}

    assert stats("--since", "2d") == {"a": Decimal("0.25"), "b": Decimal("0.5"), "ALL": Decimal("0.75")}
    assert stats("--since", "2w", "--until", "2h") == {"b": Decimal("0.5"), "c": Decimal("1"), "ALL": Decimal("1.5")}
    assert stats("--since", (now - timedelta(days=3)).date().isoformat())["ALL"] == Decimal("0.75")
    spend = json.loads(
        runner.invoke(app, ["report", "spend", "--ledger", str(ledger), "--since", "2d", "--json"]).stdout
    )
    assert sum(Decimal(row["cost_usd"]) for row in spend) == Decimal("0.75")


def test_ledger_stats_json_prints_the_spend_its_table_and_report_spend_print(tmp_path):
    # `ledger stats --json` wrote the ledger's exact record ("0.0000045") beside its own table's $0.000004 and
    # `report spend --json`'s "0.000004": one spend, two figures. A summary's money is an amount, to 6 places.
    from datetime import UTC, datetime

    from tokenomy.ledger.events import UsageEvent
    from tokenomy.ledger.store import open_store

    ledger = tmp_path / "l.duckdb"
    open_store(ledger).write(
        [
            UsageEvent(
                ts=datetime(2026, 11, 20, tzinfo=UTC),
                provider="openai",
                model="m",
                input_tokens=10,
                output_tokens=5,
                cost_usd=Decimal("0.0000045"),
            )
        ]
    )
    runner = CliRunner()
    stats = json.loads(runner.invoke(app, ["ledger", "stats", "--ledger", str(ledger), "--json"]).stdout)
    spend = json.loads(runner.invoke(app, ["report", "spend", "--ledger", str(ledger), "--json"]).stdout)
    table = runner.invoke(app, ["ledger", "stats", "--ledger", str(ledger)], env={"COLUMNS": "200"}).output
    assert [r["cost_usd"] for r in stats] == [spend[0]["cost_usd"]] * 2 == ["0.000004"] * 2
    assert "$0.000004" in table


def test_ledger_stats_and_cost_tables_group_thousands_like_the_reports(tmp_path):
    # `ledger stats` printed 192681 input tokens and `cost` 1200 beside `report tokens`' 192,681.
    from datetime import UTC, datetime

    from tokenomy.ledger.events import UsageEvent
    from tokenomy.ledger.store import open_store

    ledger = tmp_path / "l.duckdb"
    open_store(ledger).write(
        [
            UsageEvent(
                ts=datetime(2026, 11, 20, tzinfo=UTC),
                provider="bedrock",
                model="m",
                input_tokens=192681,
                output_tokens=1200,
                cost_usd=Decimal("1"),
            )
        ]
    )
    runner = CliRunner()
    stats = runner.invoke(app, ["ledger", "stats", "--ledger", str(ledger)], env={"COLUMNS": "200"})
    assert "192,681" in stats.output and "1,200" in stats.output, stats.output
    cost = runner.invoke(
        app,
        ["cost", "--model", "anthropic.claude-3-haiku-20240307-v1:0", "--input", "1200", "--output", "300"],
        env={"COLUMNS": "200"},
    )
    assert "1,200" in cost.output and "1,500" in cost.output, cost.output


def test_ledger_stats_prints_latency_as_report_latency_does(tmp_path):
    # `ledger stats` printed a p50 of 12346 ms beside `report latency`'s 12,345.6: one latency, two spellings.
    from datetime import UTC, datetime

    from tokenomy.ledger.events import UsageEvent
    from tokenomy.ledger.store import open_store

    ledger = tmp_path / "l.duckdb"
    open_store(ledger).write(
        [
            UsageEvent(
                ts=datetime(2026, 11, 20, tzinfo=UTC),
                provider="bedrock",
                model="m",
                input_tokens=10,
                cost_usd=Decimal("1"),
                latency_ms=12345.6,
            )
        ]
    )
    runner = CliRunner()
    wide = {"COLUMNS": "200"}
    stats = runner.invoke(app, ["ledger", "stats", "--ledger", str(ledger)], env=wide).output
    latency = runner.invoke(
        app, ["report", "latency", "--exact", "--since", "2026-11-01", "--ledger", str(ledger)], env=wide
    ).output
    assert "12,345.6" in latency, latency
    assert stats.count("12,345.6") == 4, stats  # p50 and p95, for the model and for ALL


def test_ledger_stats_requests_are_calls_not_a_bills_rows(tmp_path):
    # An imported bill's row (a provider-day's usage) was counted as one answered request; its cost still counts.
    from datetime import UTC, datetime

    from tokenomy.ledger.events import UsageEvent
    from tokenomy.ledger.store import open_store

    ledger = tmp_path / "l.duckdb"
    day = datetime(2026, 11, 20, 9, tzinfo=UTC)
    open_store(ledger).write(
        [
            UsageEvent(ts=day, provider="openai", model="m", input_tokens=10, cost_usd=Decimal("1"), latency_ms=100.0),
            UsageEvent(ts=day, provider="openai", model="m", input_tokens=10, cost_usd=Decimal("1"), latency_ms=300.0),
            UsageEvent(
                ts=day.replace(day=19, hour=0),
                provider="openai",
                model="m",
                input_tokens=5000,
                cost_usd=Decimal("5"),
                priced_by="billed",
            ),  # a day with no metered call: its spend counts
        ]
    )
    stats = json.loads(CliRunner().invoke(app, ["ledger", "stats", "--ledger", str(ledger), "--json"]).stdout)
    assert (stats[-1]["requests"], stats[-1]["cost_usd"], stats[-1]["input_tokens"]) == (2, "7.000000", 5020)


def test_flags_are_shown_bare_not_as_if_they_took_a_bool():
    # Typer 0.29 printed `--json <bool>` beside every flag, which reads as `--json true`, and `--help <bool>` on every
    # help page (an option Typer makes itself).
    runner = CliRunner()
    for path in all_command_paths():
        output = runner.invoke(app, [*path, "--help"], terminal_width=200).output
        for line in output.splitlines():
            assert "<bool>" not in line, (path, line)
    report = runner.invoke(app, ["report", "--help"], terminal_width=200).output
    assert any("--json " in line and "machine-readable" in line for line in report.splitlines()), report
    assert any("--help " in line and "Show this message" in line for line in report.splitlines()), report


def test_prices_shows_a_models_maximum_output_beside_its_window_with_where_it_was_read():
    data = json.loads(run("prices", "gpt-4.1", "--json").stdout)
    assert (data["context_window"], data["max_output_tokens"]) == (1047576, 32768)
    source = data["limits_source"]
    assert source.startswith("https://learn.microsoft.com/") and source.endswith("; read 2026-12-04")
    table = run("prices", "gpt-4.1", "--wide").stdout
    assert "max_output_tokens" in table and "32768" in table and "limits_source" in table
    assert "max_output_tokens" not in run("prices", "meta.llama4-scout-17b-instruct-v1:0").stdout  # not known


def test_chat_on_a_cascade_route_shows_what_the_whole_call_cost_as_the_ledger_records_it(tmp_path):
    import yaml

    from tokenomy.emulate.instant_openai import InstantOpenAI
    from tokenomy.ledger.store import open_store

    # The upstream answers "ok", never JSON: the cheap tier's answer is rejected and paid for, and the strong tier
    # answers. `chat` printed that answer's cost alone, half of what the call cost the ledger (and a budget).
    haiku = "anthropic.claude-3-haiku-20240307-v1:0"
    ledger, config = tmp_path / "l.duckdb", tmp_path / "tokenomy.yaml"
    with InstantOpenAI() as upstream:
        config.write_text(
            yaml.safe_dump(
                {
                    "models": {
                        name: {"provider": "openai", "model": name, "base_url": upstream, "price_as": haiku}
                        for name in ("cheap", "strong")
                    },
                    "tiers": {"tier1": ["cheap"], "tier2": ["strong"]},
                    "routes": {"extract": {"policy": "json"}},
                    "routing": {
                        "policies": {
                            "json": {"type": "cascade", "tiers": ["tier1", "tier2"], "validators": {"json": True}}
                        }
                    },
                }
            )
        )
        common = ("--route", "extract", "--config", str(config), "--max-tokens", "20", "--ledger", str(ledger))
        data = json.loads(run("chat", "Give me JSON.", *common, "--json").stdout)
        human = run("chat", "Give me JSON.", *common).stdout
    rows = list(open_store(ledger).events())
    first = [e for e in rows if e.request_id == min(e.request_id for e in rows)]
    assert data["tier"] == "tier2" and len(first) == 2
    assert Decimal(data["call_cost_usd"]) == sum(e.cost_usd for e in first) == 2 * Decimal(data["cost_usd"])
    assert f"(call ${Decimal(data['call_cost_usd']):.6f}, every attempt paid)" in human, human


def test_cost_table_prints_the_figures_its_json_prints():
    # The table rounded every part to 8 places: Nova Micro's 1 input token, $0.000000035, read $0.00000004 and the
    # total $0.000035455 read $0.00003546, beside the JSON's exact figures. Both are the cost as recorded now.
    args = ["cost", "--model", "amazon.nova-micro-v1:0", "--input", "1", "--output", "3", "--cache-read", "4000"]
    data = json.loads(run(*args, "--json").stdout)
    assert (data["input_usd"], data["total_usd"]) == ("0.000000035", "0.000035455")
    rows = {
        line.split("│")[1].strip(): line.split("│")[3].strip()
        for line in run(*args).stdout.splitlines()
        if line.count("│") == 4
    }
    assert rows == {
        "input": "$0.000000035",
        "output": "$0.00000042",
        "cache read": "$0.000035",
        "cache write": "$0.000000",
        "total": "$0.000035455",
    }, rows
    assert [rows[k].lstrip("$") for k in ("input", "output", "cache read", "cache write", "total")] == [
        data[f"{k}_usd"] for k in ("input", "output", "cache_read", "cache_write", "total")
    ]


def test_cost_at_prices_a_tier_on_the_day_given():
    # A tier's price announced to change on a date (GPT-6.2 Sol's ultrafast, 3x to 6x the standard rates from
    # 2027-03-01) could be priced only as of today: `cost` had no way to ask for another day's price.
    args = ["cost", "--model", "gpt-6.2-sol", "--input", "100000", "--service-tier", "ultrafast", "--json"]
    totals = {
        at: json.loads(run(*args, "--at", at).stdout)["total_usd"]
        for at in ("2027-02-28", "2027-02-28T23:59:59Z", "2027-03-01", "2027-02-28T20:00:00-05:00")
    }
    assert totals == {
        "2027-02-28": "0.600000",
        "2027-02-28T23:59:59Z": "0.600000",
        "2027-03-01": "1.200000",
        "2027-02-28T20:00:00-05:00": "1.200000",
    }  # 8 pm in New York is March 1st in UTC
    table = run(*args[:-1], "--at", "2027-03-01").stdout
    assert "at 2027-03-01" in table and "$1.200000" in table
    for bad, named in (("next week", "is not a time"), ("0001-01-01", "out of range")):
        result = run(*args, "--at", bad, check=False)
        assert result.returncode != 0 and "--at" in result.stderr and named in result.stderr, result.stderr
        assert "Traceback" not in result.stderr


def test_ledger_stats_says_so_when_the_window_holds_no_usage(tmp_path):
    # `ledger stats` on an empty ledger, or a --since past every call, printed a table of zeros ($0.000000 over
    # 0 requests) where `report spend` says no usage was found: it read as calls that cost nothing.
    from datetime import UTC, datetime, timedelta

    from tokenomy.ledger.events import UsageEvent
    from tokenomy.ledger.store import open_store

    empty, ledger = tmp_path / "empty.duckdb", tmp_path / "l.duckdb"
    open_store(empty)
    open_store(ledger).write(
        [
            UsageEvent(
                ts=datetime.now(UTC) - timedelta(days=3),
                provider="bedrock",
                model="a",
                input_tokens=10,
                output_tokens=2,
                cost_usd=Decimal("0.25"),
            )
        ]
    )
    runner = CliRunner()
    wide = {"COLUMNS": "200"}
    result = runner.invoke(app, ["ledger", "stats", "--ledger", str(empty)], env=wide)
    assert result.exit_code == 0 and "no usage in the ledger; record some" in result.output, result.output
    assert "$0.000000" not in result.output
    result = runner.invoke(app, ["ledger", "stats", "--ledger", str(ledger), "--since", "1d"], env=wide)
    assert result.exit_code == 0 and "no usage in the ledger from " in result.output, result.output
    assert "widen --since/--until" in result.output and "$0.000000" not in result.output
    assert "$0.250000" in runner.invoke(app, ["ledger", "stats", "--ledger", str(ledger)], env=wide).output


def test_python_dash_m_tokenomy_is_the_command_with_its_exit_status():
    # `python -m tokenomy` said "No module named tokenomy.__main__": an environment whose scripts folder is not on
    # PATH had no way to run the command.
    ok = subprocess.run([sys.executable, "-m", "tokenomy", "--version"], capture_output=True, text=True)
    assert ok.returncode == 0 and ok.stdout.startswith("tokenomy "), ok.stderr
    refused = subprocess.run(
        [sys.executable, "-m", "tokenomy", "prices", "no-such-model"], capture_output=True, text=True
    )
    assert refused.returncode == 2 and "unknown model 'no-such-model'" in refused.stderr
    assert "Traceback" not in refused.stderr
