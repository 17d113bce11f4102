"""A CLI that never misleads: read-only commands leave ledgers alone, failures exit non-zero, bad input gets
one line naming the fix. (Issue 16, part 2.)"""

from __future__ import annotations

from datetime import datetime, timedelta, timezone
from decimal import Decimal
from pathlib import Path

from typer.testing import CliRunner

from tokenomy.cli import app
from tokenomy.ledger.events import UsageEvent
from tokenomy.ledger.store import open_store

NOW = datetime(2026, 11, 18, 12, tzinfo=timezone.utc)


def _seed(path: Path, hours: float = 48, n: int = 20, model: str = "anthropic.claude-3-haiku-20240307-v1:0") -> Path:
    store = open_store(path)
    step = timedelta(hours=hours) / max(1, n - 1)
    store.write([UsageEvent(ts=NOW - timedelta(hours=hours) + step * i, provider="bedrock", model=model,
                            input_tokens=1000, output_tokens=200, cost_usd=Decimal("0.5"), latency_ms=100.0)
                 for i in range(n)])
    return path


def _tables(path: Path) -> set[str]:
    return {r["table_name"] for r in open_store(path).query("SELECT table_name FROM information_schema.tables")}


def test_read_only_commands_refuse_a_missing_ledger(tmp_path: Path) -> None:
    runner = CliRunner()
    typo = tmp_path / "ledgr.duckdb"
    for args in (["ledger", "stats"], ["ledger", "export"], ["plan", "savings"],
                 ["plan", "size", "--model", "anthropic.claude-3-haiku-20240307-v1:0"]):
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
