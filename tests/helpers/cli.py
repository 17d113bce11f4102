"""Command-line helpers: every command path, and a small seeded ledger."""

from __future__ import annotations

import sys
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from pathlib import Path

import pytest
import typer.main

from tokenomy.cli import app, main
from tokenomy.ledger.events import UsageEvent
from tokenomy.ledger.store import open_store


def run_cli(monkeypatch, capsys, *args: str) -> tuple[int, str, str]:
    """`tokenomy ARGS` through the real entry point: (exit status, stdout, stderr)."""
    monkeypatch.setattr(sys, "argv", ["tokenomy", *args])
    with pytest.raises(SystemExit) as exited:
        main()
    captured = capsys.readouterr()
    code = exited.value.code
    return (code if isinstance(code, int) else 0), captured.out, captured.err


def one_error_line(err: str) -> str:
    """The one `error: ...` line a refused command prints, and no traceback."""
    assert "Traceback" not in err, err
    lines = err.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: "), err
    return lines[0]


def all_command_paths() -> list[list[str]]:
    root = typer.main.get_command(app)
    paths: list[list[str]] = []

    def walk(command, path: list[str]) -> None:
        paths.append(path)
        if hasattr(command, "commands"):
            for name, sub in command.commands.items():
                walk(sub, path + [name])

    walk(root, [])
    return paths


NOW = datetime(2026, 11, 18, 12, tzinfo=UTC)


def _seed(path: Path, hours: float = 48, n: int = 20, model: str = "anthropic.claude-3-haiku-20240307-v1:0") -> Path:
    store = open_store(path)
    step = timedelta(hours=hours) / max(1, n - 1)
    store.write(
        [
            UsageEvent(
                ts=NOW - timedelta(hours=hours) + step * i,
                provider="bedrock",
                model=model,
                input_tokens=1000,
                output_tokens=200,
                cost_usd=Decimal("0.5"),
                latency_ms=100.0,
            )
            for i in range(n)
        ]
    )
    return path


def interruptible() -> None:
    """`preexec_fn` of a command a test sends SIGINT (Ctrl-C): a job run in the background of a shell (`make test &`,
    nohup) starts with SIGINT ignored, which its children inherit, so Python installs no KeyboardInterrupt handler
    and the command ran to its end, exit 0. The default disposition is restored before the command starts."""
    import signal

    signal.signal(signal.SIGINT, signal.SIG_DFL)
