"""The ClickHouse ledger (embedded chDB here) keeps the calls only; what keeps other state in the ledger database
says so in one line."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

TOKENOMY = str(Path(sys.executable).with_name("tokenomy"))


def test_commands_that_keep_state_beside_the_calls_name_a_clickhouse_ledger_and_the_fix(tmp_path: Path) -> None:
    # `keys create`, `batch list` and `caches list` on a ClickHouse ledger were ClickHouse's syntax error about a
    # CREATE TABLE it cannot read (UNIQUE, TIMESTAMPTZ), as a traceback.
    pytest.importorskip("chdb")
    ledger = f"chdb:{tmp_path / 'ledger.chdb'}"
    for args, feature in ((["keys", "create", "--budget-usd", "5"], "virtual keys"),
                          (["keys", "list"], "virtual keys"),
                          (["batch", "list"], "batch jobs"),
                          (["caches", "list"], "context caches")):
        result = subprocess.run([TOKENOMY, *args, "--ledger", ledger], capture_output=True, text=True, timeout=120,
                                cwd=tmp_path)
        assert result.returncode == 2 and "Traceback" not in result.stderr, (args, result.stderr)
        assert result.stderr.startswith(f"error: ledger {ledger}: {feature}"), result.stderr
        assert "a DuckDB file or a postgresql:// URL" in result.stderr and len(result.stderr.splitlines()) == 1
