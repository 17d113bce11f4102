"""Command-line helpers: every command path, and a small seeded ledger."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from decimal import Decimal
from pathlib import Path

import typer.main

from tokenomy.cli import app
from tokenomy.ledger.events import UsageEvent
from tokenomy.ledger.store import open_store


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
