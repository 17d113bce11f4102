"""One money rule: plain notation, a fixed scale per kind, one zero — and every `--json` command obeys it."""

from __future__ import annotations

import json
import re
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import typer.main
from typer.testing import CliRunner

from tokenomy.chat_response import Usage
from tokenomy.cli import app
from tokenomy.ledger.events import UsageEvent
from tokenomy.ledger.store import open_store
from tokenomy.money import money_str, usd
from tokenomy.pricing.cost import compute_cost


@pytest.mark.parametrize(
    "value, kind, expected",
    [
        (Decimal("7.5E-7"), "amount", "0.000001"),  # was printed "7.5E-7"
        (Decimal("0E-7"), "amount", "0.000000"),  # one zero, not "0E-7" beside "0" beside "0.00"
        (Decimal("0.00"), "amount", "0.000000"),
        (Decimal("-0.0000001"), "amount", "0.000000"),  # no "-0.000000"
        (Decimal("2.500000000000000000000"), "record", "2.500000"),  # was 21 decimals
        (Decimal("0.0004375"), "record", "0.0004375"),  # recorded costs stay exact beyond 6 places...
        (Decimal("1") / Decimal("3"), "record", "0.333333333333"),  # ...up to 12
        (Decimal("0.00875"), "unit_price", "0.00875"),  # a published price is never rounded away
        (Decimal("3"), "unit_price", "3.0000"),
        (Decimal("1234.565"), "report", "1234.56"),  # banker's rounding to cents
        (5, "amount", "5.000000"),
        (0.1, "amount", "0.100000"),  # floats by their shortest repr, not binary noise
    ],
)
def test_money_str(value, kind, expected):
    assert money_str(value, kind) == expected


def test_usd_groups_thousands_and_passes_none():
    assert usd(Decimal("1234567.891")) == "$1,234,567.89"
    assert usd(Decimal("-3.5"), "amount") == "-$3.500000"
    assert usd(None) == "-"
    with pytest.raises(ValueError, match="unknown money kind"):
        money_str(1, "euros")


@pytest.mark.parametrize(
    "value, expected",
    [
        (766666.6666666666, "766666.6666666666"),  # was 766666.666666666628: the binary expansion, not the figure
        (123456789.12345679, "123456789.12345679"),  # was 123456789.123456791043
        (0.1 + 0.2, "0.3"),  # more than 12 places: rounded to 12, then trailing zeros dropped
        (1 / 3, "0.333333333333"),
        (1e-05, "0.00001"),  # plain notation, never 1e-05
        (1e20, "100000000000000000000.0"),
        (-1e-13, "0.0"),  # one zero
        (7.0, "7.0"),
        (np.float64(766666.6666666666), "766666.6666666666"),  # numpy floats (their repr is "np.float64(...)")
    ],
)
def test_json_floats_are_their_shortest_repr_in_plain_notation(value, expected):
    from tokenomy.commands._output import dumps

    assert dumps({"x": value}) == '{\n  "x": ' + expected + "\n}"
    assert json.loads(dumps(value)) == float(expected)


def test_breakeven_volume_is_printed_as_computed():
    """plan breakeven's break-even volume: $18.40 an hour / (60 min x $0.40 per 1M tokens) = 766,666.67 tokens/min."""
    out = CliRunner().invoke(
        app, ["plan", "breakeven", "--model", "amazon.titan-text-express-v1", "--input-share", "0.5", "--json"]
    )
    expected = Decimal("18.40") / (60 * (Decimal("0.5") * Decimal("0.20") + Decimal("0.5") * Decimal("0.60")) / 10**6)
    assert '"breakeven_tokens_per_minute": 766666.6666666666,' in out.stdout
    assert json.loads(out.stdout)["breakeven_tokens_per_minute"] == pytest.approx(float(expected), rel=1e-15)


# --- every command with --json, on a small demo-like ledger -------------------------------------------------

NUMBER_IN_TEXT = re.compile(r"^-?\d+(\.\d+)?$")


def _numbers(value: Any, path: str = "$"):
    """Every number in a JSON document, as text: JSON numbers and numeric strings."""
    if isinstance(value, dict):
        for key, item in value.items():
            yield from _numbers(item, f"{path}.{key}")
    elif isinstance(value, list):
        for index, item in enumerate(value):
            yield from _numbers(item, f"{path}[{index}]")
    elif isinstance(value, bool) or value is None:
        return
    elif isinstance(value, (int, float)):
        yield path, json.dumps(value)
    elif isinstance(value, str) and (NUMBER_IN_TEXT.match(value) or re.fullmatch(r"-?\d+(\.\d+)?[eE][-+]?\d+", value)):
        yield path, value


def _bad_numbers(document: Any) -> list[str]:
    bad = []
    for path, text in _numbers(document):
        decimals = len(text.split(".", 1)[1]) if "." in text and "e" not in text.lower() else 0
        if "e" in text.lower() or decimals > 12:
            bad.append(f"{path} = {text}")
    return bad


def _demo_events(now: datetime) -> list[UsageEvent]:
    """Calls on cheap and dear models, with caching and batch, priced by the cost engine (tiny amounts included:
    one Nova Micro token costs 3.5e-8 USD, the kind of figure that used to leave as "3.5E-8")."""
    calls = [
        ("aws.bedrock", "amazon.nova-micro-v1:0", "us-east-1", Usage(1, 1), "on_demand"),
        ("aws.bedrock", "anthropic.claude-3-7-sonnet-20250219-v1:0", "us-east-1", Usage(100, 20, 1164, 0), "on_demand"),
        ("aws.bedrock", "anthropic.claude-3-haiku-20240307-v1:0", "us-east-1", Usage(1000, 500), "batch"),
        ("openai", "gpt-4o-mini", "global", Usage(1500, 40, 1024, 0), "on_demand"),
        ("anthropic", "claude-haiku-4-5-20251001", "global", Usage(3, 7, 0, 2048), "on_demand"),
    ]
    events = []
    for i in range(60):
        provider, model, region, usage, mode = calls[i % len(calls)]
        cost = compute_cost(usage, model, region, mode)
        event = UsageEvent(
            ts=now - timedelta(hours=i * 7),
            provider=provider,
            model=model,
            region=region,
            mode=mode,
            input_tokens=usage.input_tokens,
            output_tokens=usage.output_tokens,
            cache_read_tokens=usage.cache_read_tokens,
            cache_write_tokens=usage.cache_write_tokens,
            task=["chat", "summarise", "qa"][i % 3],
            tags={"team": ["ads", "search"][i % 2]},
            tier=["weak", "strong"][i % 2],
            latency_ms=100.0 + i,
            ttft_ms=20.0 + i / 3,
        )
        events.append(event.apply_cost(cost))
    return events


def _json_commands() -> list[list[str]]:
    root = typer.main.get_command(app)
    found: list[list[str]] = []

    def walk(command, path: list[str]) -> None:
        if hasattr(command, "commands"):
            for name, sub in command.commands.items():
                walk(sub, path + [name])
        elif any("--json" in getattr(p, "opts", []) for p in command.params):
            found.append(path)

    walk(root, [])
    return found


# Commands that need a live model, upstream or trained artefact to produce anything: their own tests cover
# their JSON; this test names why it does not run them here, so a new command cannot be skipped silently.
NEEDS_A_SERVICE = {
    "chat": "sends a request to a model",
    "route train": "needs a labelled dataset",
    "route eval": "needs a labelled dataset",
    "route explain": "needs a trained router",
    "route drift": "needs a trained router",
    "route export-labels": "needs bench results",
    "batch submit": "needs a batch upstream",
    "batch status": "needs a submitted job",
    "batch wait": "needs a submitted job",
    "batch results": "needs a submitted job",
    "batch cancel": "needs a submitted job",
    "batch resume": "needs a submitted job",
    "bench run": "sends requests to models",
    "bench summary": "needs bench results",
    "bench export-labels": "needs bench results",
    "import otel": "needs an OpenTelemetry export (tests/test_imports.py)",
    "import cur": "needs an AWS CUR export (tests/test_imports.py)",
    "import llm-log": "needs an llm log database (tests/test_imports.py)",
    "caches create": "talks to the Gemini API (tests/caching/test_context_caches.py)",
    "caches delete": "talks to the Gemini API (tests/caching/test_context_caches.py)",
    "caches settle": "talks to the Gemini API (tests/caching/test_context_caches.py)",
}


EXPORTS = Path(__file__).parent / "analytics" / "billing_exports"


def test_no_command_prints_exponents_or_more_than_12_decimals(tmp_path: Path) -> None:
    now = datetime.now(UTC).replace(microsecond=0)
    ledger = str(tmp_path / "ledger.duckdb")
    events = _demo_events(now)
    open_store(ledger).write(events)
    exported = tmp_path / "events.jsonl"
    exported.write_text("\n".join(json.dumps(e.to_json()) for e in events[:5]) + "\n")
    batch_file = tmp_path / "batch.jsonl"
    batch_file.write_text(
        "\n".join(json.dumps({"id": f"r{i}", "prompt": f"Summarise item {i}.", "max_tokens": 8}) for i in range(120))
        + "\n"
    )
    trace = tmp_path / "trace.csv"
    trace.write_text(
        "ts,input_tokens,output_tokens\n"
        + "".join(f"{(now - timedelta(minutes=m)).isoformat()},{700 + m % 13},{3 + m % 5}\n" for m in range(600))
    )
    haiku = "anthropic.claude-3-haiku-20240307-v1:0"
    deadline = (now + timedelta(hours=6)).strftime("%H:%M")
    runs = {
        "prices": [["prices"], ["prices", "amazon.nova-micro-v1:0"], ["prices", "--stale"]],
        "cost": [
            ["cost", "--model", "amazon.nova-micro-v1:0", "--input", "1", "--output", "3", "--cache-read", "7"],
            ["cost", "--model", haiku, "--input", "1000", "--output", "500", "--mode", "batch"],
        ],
        "report": [
            ["report", name, "--ledger", ledger]
            for name in ("spend", "monthly-spend", "family-daily", "tokens", "batch-share", "forecast", "reconcile")
        ],
        "ledger import": [["ledger", "import", str(exported), "--ledger", str(tmp_path / "imported.duckdb")]],
        "ledger stats": [["ledger", "stats", "--ledger", ledger]],
        "keys create": [["keys", "create", "--budget-usd", "0.000001", "--ledger", ledger]],
        "keys list": [["keys", "list", "--ledger", ledger]],
        "keys teams": [["keys", "teams", "--ledger", ledger]],
        "caches list": [["caches", "list", "--ledger", ledger]],
        "batch validate": [["batch", "validate", str(batch_file), "--model", haiku]],
        "batch plan": [["batch", "plan", str(batch_file), "--model", haiku, "--deadline", deadline]],
        "batch list": [["batch", "list", "--ledger", ledger]],
        "plan breakeven": [
            ["plan", "breakeven", "--model", "anthropic.claude-v2:1", "--input-share", "0.5", "--term", "6m"]
        ],
        "plan size": [["plan", "size", "--model", "anthropic.claude-v2:1", "--trace", str(trace), "--term", "6m"]],
        "plan utilization": [
            [
                "plan",
                "utilization",
                "--model",
                "anthropic.claude-v2:1",
                "--trace",
                str(trace),
                "--reservation-units",
                "1",
                "--tpm-per-unit",
                "4000",
            ]
        ],
        "plan savings": [["plan", "savings", "--ledger", ledger]],
        "alerts check": [["alerts", "check", "--ledger", ledger]],
        "review": [["review", "--ledger", ledger]],
        **{
            f"import {kind}": [["import", kind, *(str(EXPORTS / f) for f in files), "--ledger", ledger]]
            for kind, files in (
                ("openai-usage", ["openai_usage_and_costs.jsonl"]),
                ("anthropic-usage", ["anthropic_usage_report.json", "anthropic_cost_report.json"]),
                ("focus", ["focus_multicloud.csv"]),
                ("gcp-billing", ["gcp_billing.jsonl"]),
            )
        },
    }
    commands = {" ".join(path) for path in _json_commands()}
    assert commands == set(runs) | set(NEEDS_A_SERVICE), "give every --json command a run here, or a reason"
    runner = CliRunner()
    problems = []
    for arg_lists in runs.values():
        for args in arg_lists:
            result = runner.invoke(app, [*args, "--json"])
            assert result.exit_code in (0, 1), (args, result.output)  # alerts check exits 1 when something fires
            assert result.stdout.strip(), (args, result.output)
            document = json.loads(result.stdout)
            assert document in ([], {}) or list(_numbers(document)), (args, "no numbers: the check would be empty")
            problems += [f"{' '.join(args)}: {bad}" for bad in _bad_numbers(document)]
    for name in ("spend", "tokens"):  # CSV follows the same rule
        result = runner.invoke(app, ["report", name, "--ledger", ledger, "--csv"])
        assert result.exit_code == 0, result.output
        cells = [cell for line in result.stdout.splitlines()[1:] for cell in line.split(",")]
        problems += [
            f"report {name} --csv: {c}"
            for c in cells
            if re.fullmatch(r"-?\d+(\.\d+)?([eE][-+]?\d+)?", c) and _bad_numbers(c)
        ]
    assert not problems, "\n".join(problems)


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        (1e20, "100000000000000000000"),  # a parsed float's repr was "1E+20"
        (-1e-07, "-0.0000001"),  # ... and "-1e-07"
        (Decimal("-1E-13"), "-0.0000000000001"),  # not rounded to a scale: a wrong amount is not shown as "0.000000"
        (Decimal("50.50"), "50.5"),
        (float("inf"), "inf"),  # no plain notation: as it is
        (1e300, "1e+300"),  # plain, it was a 301-digit line: past MAX_TYPED_DIGITS the form a person types
        (Decimal("-1.5E+40"), "-1.5e+40"),
        (Decimal("1E-40"), "1e-40"),
    ],
)
def test_typed_echoes_a_figure_plain_and_exact(value, expected):
    from tokenomy.money import typed

    assert typed(value) == expected


def test_record_str_is_money_str_of_the_record_kind_for_every_spelling_of_a_value() -> None:
    from tokenomy.money import record_str

    values = ["0.000198", "0.00019800", "1.98E-4", "0", "-0", "0E-7", "0.0000000000125", "12345.678901234567", "1e3"]
    for text in values * 2:  # the second time from the cache
        assert record_str(Decimal(text)) == money_str(Decimal(text), "record"), text
    assert record_str(Decimal("0.1")) == record_str(Decimal("0.10")) == "0.100000"
    with pytest.raises(ValueError):
        record_str(Decimal("NaN"))  # not an amount, cached or not
