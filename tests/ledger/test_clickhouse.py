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
    for args, feature in (
        (["keys", "create", "--budget-usd", "5"], "virtual keys"),
        (["keys", "list"], "virtual keys"),
        (["batch", "list"], "batch jobs"),
        (["caches", "list"], "context caches"),
    ):
        result = subprocess.run(
            [TOKENOMY, *args, "--ledger", ledger], capture_output=True, text=True, timeout=120, cwd=tmp_path
        )
        assert result.returncode == 2 and "Traceback" not in result.stderr, (args, result.stderr)
        assert result.stderr.startswith(f"error: ledger {ledger}: {feature}"), result.stderr
        assert "a DuckDB file or a postgresql:// URL" in result.stderr and len(result.stderr.splitlines()) == 1


def test_the_gateways_gemini_caches_on_a_clickhouse_ledger_are_a_501_naming_the_fix(tmp_path: Path, caplog) -> None:
    # A caller's cachedContents request on a gateway whose ledger is ClickHouse was a 500 "internal error" and a
    # traceback in the log: the gateway keeps those caches in the ledger database, which ClickHouse cannot hold.
    pytest.importorskip("chdb")
    import httpx

    from tokenomy.config import parse_config
    from tokenomy.emulate.gemini_api import create_app as create_gemini
    from tokenomy.emulate.instant_engine import InstantEngine
    from tokenomy.emulate.server import ServerThread
    from tokenomy.gateway.app import create_app

    ledger = f"chdb:{tmp_path / 'ledger.chdb'}"
    with ServerThread(create_gemini(engine=InstantEngine())) as gemini:
        config = parse_config(
            {
                "models": {
                    "g": {
                        "provider": "gemini",
                        "model": "gemini-2.5-flash",
                        "base_url": gemini,
                        "api_key_env": "NO_SUCH_KEY_ENV",
                    }
                }
            }
        )
        with ServerThread(create_app(config, ledger), lifespan="on") as url:
            made = httpx.post(
                f"{url}/v1beta/cachedContents",
                json={"model": "models/g", "contents": [{"role": "user", "parts": [{"text": "a book " * 600}]}]},
            )
            listed = httpx.get(f"{url}/v1beta/cachedContents")
    for answer in (made, listed):
        error = answer.json()["error"]
        assert answer.status_code == 501 and error["status"] == "UNIMPLEMENTED", answer.text
        assert "need a DuckDB or PostgreSQL ledger" in error["message"] and ledger in error["message"]
    assert "Traceback" not in caplog.text
