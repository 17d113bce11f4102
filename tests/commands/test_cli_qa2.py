"""Second CLI audit: options dropped silently, unbounded counts, money echoed in scientific notation. Run through
the real entry point (`tokenomy.cli.main`)."""

from __future__ import annotations

from pathlib import Path

import pytest

from helpers.cli import _seed, one_error_line, run_cli


@pytest.mark.parametrize(
    ("name", "option", "reader"),
    [
        ("spend", ["--tolerance-pct", "3"], "reconcile"),
        ("latency", ["--tolerance-pct", "5"], "reconcile"),  # the default value, given: still read by nothing
        ("spend", ["--exact"], "latency"),
        ("reconcile", ["--exact"], "latency"),
    ],
)
def test_report_refuses_an_option_only_another_preset_reads(
    name, option, reader, tmp_path: Path, monkeypatch, capsys
) -> None:
    # `report spend --tolerance-pct 3` and `report spend --exact` printed the report as if they were not given.
    ledger = _seed(tmp_path / "ledger.duckdb")
    code, out, err = run_cli(monkeypatch, capsys, "report", name, "--ledger", str(ledger), *option)
    assert code == 2 and out == ""
    assert one_error_line(err) == f"error: {option[0]} is read by `report {reader}` only; drop it from `report {name}`"


def test_report_options_still_reach_their_own_preset(tmp_path: Path, monkeypatch, capsys) -> None:
    import json

    ledger = _seed(tmp_path / "ledger.duckdb")
    code, out, err = run_cli(
        monkeypatch, capsys, "report", "reconcile", "--ledger", str(ledger), "--since", "2020-01-01", "--json"
    )
    assert code == 0, err
    assert json.loads(out)["tolerance_pct"] == 5.0  # the documented default when not given
    code, out, err = run_cli(
        monkeypatch,
        capsys,
        "report",
        "reconcile",
        "--ledger",
        str(ledger),
        "--since",
        "2020-01-01",
        "--tolerance-pct",
        "7.5",
        "--json",
    )
    assert code == 0 and json.loads(out)["tolerance_pct"] == 7.5, err
    code, out, err = run_cli(
        monkeypatch, capsys, "report", "latency", "--ledger", str(ledger), "--since", "2020-01-01", "--exact"
    )
    assert code == 0 and "p50_ms" in out and "within 0.99%" not in out, err
    code, out, err = run_cli(monkeypatch, capsys, "report", "latency", "--ledger", str(ledger), "--since", "2020-01-01")
    assert code == 0 and "p50_ms" in out, err


@pytest.mark.parametrize("option", [["--by", "model"], ["--exact"], ["--tolerance-pct", "3"]])
def test_report_html_refuses_a_preset_option_it_would_ignore(option, tmp_path: Path, monkeypatch, capsys) -> None:
    ledger = _seed(tmp_path / "ledger.duckdb")
    page = tmp_path / "report.html"
    code, out, err = run_cli(monkeypatch, capsys, "report", "--html", str(page), "--ledger", str(ledger), *option)
    assert code == 2 and out == "" and not page.exists()
    assert one_error_line(err) == (
        f"error: --html writes all charts to one page; drop {option[0]} (or drop --html for one report's table)"
    )


def test_route_eval_seeds_is_bounded_and_says_so(monkeypatch, capsys) -> None:
    # `route eval mt-bench --seeds 1000000000` was accepted: a billion train-and-replay runs, practically forever.
    code, out, err = run_cli(monkeypatch, capsys, "route", "eval", "mt-bench", "--seeds", "101")
    assert code == 2 and out == ""
    assert one_error_line(err).startswith(
        "error: Invalid value for '--seeds': Input should be less than or equal to 100"
    )
    # The bound itself is allowed: the command goes on to the dataset (here a missing one, so nothing runs long).
    code, out, err = run_cli(monkeypatch, capsys, "route", "eval", "no-such-dataset", "--seeds", "100")
    assert code == 2 and "'--seeds'" not in err and "route dataset 'no-such-dataset': not found" in one_error_line(err)
    code, out, _ = run_cli(monkeypatch, capsys, "route", "eval", "--help")
    assert code == 0 and "at most 100" in " ".join(out.replace("│", " ").split())


@pytest.mark.parametrize(
    ("args", "echoed"),
    [
        (["keys", "create", "--budget-usd", "1e20"], "--budget-usd 100000000000000000000: give an amount"),
        (["keys", "create", "--budget-usd", "-1e-7"], "--budget-usd -0.0000001: give an amount"),
        (["keys", "team-budget", "research", "--budget-usd", "1E+20"], "--budget-usd 100000000000000000000: give"),
        (
            ["plan", "breakeven", "--model", "anthropic.claude-v2:1", "--input-share", "0.5", "--hourly-usd", "-1e-7"],
            "--hourly-usd -0.0000001: give a price in USD",
        ),
        (
            ["plan", "breakeven", "--model", "anthropic.claude-v2:1", "--input-share", "0.5", "--input-price", "-2e-9"],
            "--input-price -0.000000002: give a price in USD",
        ),
        (
            ["plan", "utilization", "--model", "anthropic.claude-v2:1", "--reservation-units", "1", "--trace", "x"]
            + ["--hourly-usd", "-1e-7"],
            "--hourly-usd -0.0000001: give a price in USD",
        ),
    ],
)
def test_money_options_are_echoed_in_plain_notation(args, echoed, tmp_path: Path, monkeypatch, capsys) -> None:
    # The errors echoed the parsed float: "--budget-usd 1E+20", "--hourly-usd -1e-07", amounts nobody typed.
    ledger = ["--ledger", str(tmp_path / "ledger.duckdb")] if args[0] == "keys" else []
    code, out, err = run_cli(monkeypatch, capsys, *args, *ledger)
    assert code == 2 and out == ""
    line = one_error_line(err)
    assert echoed in line and "e-" not in line.lower() and "e+" not in line.lower(), line


HAIKU = "anthropic.claude-3-haiku-20240307-v1:0"


def _calls(path: Path, *calls: tuple[str, int, int, str | None]) -> Path:
    """One call a day from 2026-10-01: (model, input tokens, cache-read tokens, task)."""
    from datetime import UTC, datetime, timedelta
    from decimal import Decimal

    from tokenomy.ledger.events import UsageEvent
    from tokenomy.ledger.store import open_store

    start = datetime(2026, 10, 1, 9, tzinfo=UTC)
    open_store(path).write(
        [
            UsageEvent(
                ts=start + timedelta(days=day),
                provider="bedrock",
                model=model,
                input_tokens=tokens,
                output_tokens=200,
                cache_read_tokens=cached,
                task=task,
                cost_usd=Decimal("0.0005"),
            )
            for day, (model, tokens, cached, task) in enumerate(calls)
        ]
    )
    return path


def test_plan_savings_table_prints_savings_at_the_report_scale(tmp_path: Path, monkeypatch, capsys) -> None:
    # A small Haiku call a day: batching them saves ~$0.004 a month, which the table rounded to "$0.00"
    # (cents) while every report table prints amounts to 6 places.
    import json
    from decimal import Decimal

    from tokenomy.money import usd

    ledger = _calls(tmp_path / "ledger.duckdb", *[(HAIKU, 100, 0, "nightly")] * 30)
    args = ["plan", "savings", "--ledger", str(ledger), "--batch-tasks", "nightly"]
    code, out, err = run_cli(monkeypatch, capsys, *args, "--json")
    assert code == 0, err
    batch = next(r for r in json.loads(out)["levers"] if r["lever"] == "batch")
    saving = Decimal(batch["monthly_saving_usd"])
    assert Decimal("0") < saving < Decimal("0.005")  # a saving cents would show as nothing
    code, out, err = run_cli(monkeypatch, capsys, *args)
    assert code == 0, err
    assert usd(saving, "amount") in out and "$0.00/" not in out, out


def test_plan_savings_names_the_real_reason_calls_cannot_be_priced(tmp_path: Path, monkeypatch, capsys) -> None:
    # Haiku 3 on Bedrock has prices but no prompt-cache prices: its calls reporting cache reads were left out with
    # "the catalog cannot price them", sending the user to add a price the catalog already has.
    ledger = _calls(tmp_path / "ledger.duckdb", *[(HAIKU, 1000, 0, None)] * 4, (HAIKU, 1000, 500, None))
    code, _, err = run_cli(monkeypatch, capsys, "plan", "savings", "--ledger", str(ledger))
    assert code == 0, err
    assert "catalog cannot price" not in err
    assert "warning: 1 of 5 successful calls left out, they cannot be priced: model " in err, err
    assert "has no prompt-cache prices but usage reports cache tokens (read=500, write=0)" in err, err
    # Every call so: the error says the same, not "none ... has a catalog price".
    only_cached = _calls(tmp_path / "cached.duckdb", (HAIKU, 1000, 500, None), (HAIKU, 1000, 300, None))
    code, out, err = run_cli(monkeypatch, capsys, "plan", "savings", "--ledger", str(only_cached))
    assert code == 2 and out == ""
    line = one_error_line(err)
    assert line.startswith("error: none of the 2 successful calls can be priced: model "), line
    assert "has no prompt-cache prices" in line and "--price-as MODEL" in line, line


@pytest.mark.parametrize(
    ("given", "said"),
    [
        (["--cheap-model", "no-such-model"], "error: --cheap-model no-such-model needs --routing-share, the share of"),
        (["--cheap-model", HAIKU, "--routing-share", "0"], f"error: --cheap-model {HAIKU} needs --routing-share, "),
        (["--routing-share", "0.4"], "error: --routing-share 0.4 needs --cheap-model, the model routing would move"),
    ],
)
def test_plan_savings_refuses_half_a_routing_result(given, said, tmp_path: Path, monkeypatch, capsys) -> None:
    # Either option alone was dropped: exit 0, the routing lever "no routing result given", an unknown model unchecked.
    ledger = _seed(tmp_path / "ledger.duckdb")
    code, out, err = run_cli(monkeypatch, capsys, "plan", "savings", "--ledger", str(ledger), *given, "--json")
    assert code == 2 and out == "", (code, out)
    assert one_error_line(err).startswith(said), err


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
@pytest.mark.parametrize("host", ["", " "])
def test_an_empty_host_is_refused_not_bound_to_every_interface(
    command, host, tmp_path: Path, monkeypatch, capsys
) -> None:
    # `serve --host ''` (and each emulator) bound 0.0.0.0: a server meant for this machine, open to the network.
    import uvicorn

    def must_not_run(*args, **kwargs):
        raise AssertionError("uvicorn.run was reached with an empty host")

    monkeypatch.setattr(uvicorn, "run", must_not_run)
    monkeypatch.chdir(tmp_path)
    import socket

    with socket.socket() as probe:  # a free port: the emulators refuse --port 0, which would hide what the host does
        probe.bind(("127.0.0.1", 0))
        port = str(probe.getsockname()[1])
    code, out, err = run_cli(monkeypatch, capsys, *command, "--host", host, "--port", port)
    assert code == 2 and out == ""
    line = one_error_line(err)
    assert line.startswith("error: Invalid value for '--host': an empty host binds every interface; give an address"), (
        line
    )
    assert "127.0.0.1" in line and list(tmp_path.iterdir()) == []  # nothing started, no ledger made
