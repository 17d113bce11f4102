"""Helpers shared by the tests (imported as `helpers`; tests/ is on sys.path through conftest.py).

Fixtures live in conftest.py; plain functions and fakes that several test files use live here, so no
test file imports another.
"""

from __future__ import annotations

import os
import re
import socket
import subprocess
import time
from pathlib import Path

import httpx
import pytest

REPO = Path(__file__).resolve().parents[2]
IN_CI = bool(os.environ.get("CI"))


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def wait_for_port(port: int, timeout: float = 60.0, proc: subprocess.Popen | None = None) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc is not None and proc.poll() is not None:
            raise RuntimeError(f"server exited with code {proc.returncode} before listening on {port}")
        with socket.socket() as sock:
            if sock.connect_ex(("127.0.0.1", port)) == 0:
                return
        time.sleep(0.1)
    raise TimeoutError(f"nothing listening on 127.0.0.1:{port} after {timeout}s")


def start_gateway(
    config: Path, port: int, ledger: Path | str, env: dict[str, str], stderr: int = subprocess.DEVNULL
) -> subprocess.Popen:
    """`tokenomy serve` (this environment's) with `config` on `port` and `ledger`, `env` added to the environment,
    once it listens; its stderr as `stderr` says (subprocess.PIPE: text, for a test that reads the log)."""
    tokenomy = str(Path(os.sys.executable).with_name("tokenomy"))
    proc = subprocess.Popen(
        [tokenomy, "serve", "--config", str(config), "--port", str(port), "--ledger", str(ledger)],
        env={**os.environ, **env},
        stdout=subprocess.DEVNULL,
        stderr=stderr,
        text=True,
    )
    wait_for_port(port, 60, proc)
    return proc


def stand_in_aws_keys(env: pytest.MonkeyPatch, access_key_id: str = "x") -> None:
    """Stand-in AWS keys for boto3 to sign with (the emulators and the gateway do not check the signature), and no
    Bedrock API key from the developer's environment, which would be used in their place."""
    env.setenv("AWS_ACCESS_KEY_ID", access_key_id)
    env.setenv("AWS_SECRET_ACCESS_KEY", "x")
    env.delenv("AWS_BEARER_TOKEN_BEDROCK", raising=False)


def require(condition: bool, why: str) -> None:
    """Skip with a printed reason locally; in CI a missing prerequisite is a failure, not a skip."""
    if condition:
        return
    if IN_CI:
        pytest.fail(f"CI prerequisite missing: {why}")
    pytest.skip(reason=why)


def requests_in_metrics(url: str) -> dict[tuple[str, str], float]:
    """tokenomy_requests_total by (model, status), as the gateway at `url` has them in /metrics now."""
    exposed = httpx.get(url + "/metrics").text
    found = re.findall(r'^tokenomy_requests_total{model="([^"]*)",status="(\d+)"} ([\d.]+)$', exposed, re.M)
    return {(model, status): float(value) for model, status, value in found}
