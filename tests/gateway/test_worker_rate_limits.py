"""A route's `rate_limit` is a token bucket in each gateway process: `tokenomy serve --workers 2` ran two, each with
the route's whole allowance, so a route limited to 4 requests a minute sent 8 upstream (N times the limit with N
workers, past the provider quota the limit was set to stay under). Each worker now keeps 1/N of it."""

from __future__ import annotations

import json
from pathlib import Path

import httpx
import pytest

from helpers.cli import run_cli
from tokenomy.config import parse_config
from tokenomy.emulate.instant_openai import InstantOpenAI
from tokenomy.emulate.server import ServerThread
from tokenomy.gateway import app as gateway_app
from tokenomy.gateway.app import create_app

HAIKU = "anthropic.claude-3-haiku-20240307-v1:0"


def limited(url: str) -> dict:
    model = {"provider": "openai", "model": "fast", "base_url": url, "api_key_env": "FAST_KEY", "price_as": HAIKU}
    # A short deadline: a request the bucket has no slot for is refused (429) at once, not after a minute's wait.
    route = {"model": "fast", "rate_limit": {"requests_per_minute": 4}, "retry": {"deadline_s": 0.2}}
    return {"models": {"fast": model}, "routes": {"r": route}}


def test_two_workers_send_no_more_than_the_routes_rate_limit_between_them(tmp_path, monkeypatch):
    monkeypatch.setenv("FAST_KEY", "x")
    ledger = str(tmp_path / "ledger.duckdb")
    ask = {"model": "r", "messages": [{"role": "user", "content": "hi"}], "max_tokens": 5}
    with InstantOpenAI() as upstream:
        config = parse_config(limited(upstream))
        first, second = (ServerThread(create_app(config, ledger, workers=2), lifespan="on") for _ in range(2))
        with first as one, second as two:
            statuses = [
                httpx.post(url + "/v1/chat/completions", json=ask, timeout=30).status_code for url in [one, two] * 5
            ]
    assert statuses.count(200) == 4 and set(statuses) == {200, 429}, statuses


def test_serve_tells_its_workers_how_many_share_the_limits(tmp_path, monkeypatch, capsys):
    import uvicorn

    seen: dict = {}
    monkeypatch.setattr(uvicorn, "run", lambda *args, **kwargs: seen.update(kwargs))
    monkeypatch.chdir(tmp_path)
    # What serve exports for its workers, restored after the test (the metrics folder: one of this test's)
    for name in ("CONFIG", "LEDGER", "WORKER_OF", "HEADER_TIMEOUT", "WORKERS"):
        monkeypatch.setenv(f"TOKENOMY_{name}", "")
    monkeypatch.setenv("PROMETHEUS_MULTIPROC_DIR", str(tmp_path))
    config = tmp_path / "tokenomy.yaml"
    config.write_text(json.dumps(limited("http://127.0.0.1:9")))
    code, _, err = run_cli(
        monkeypatch,
        capsys,
        "serve",
        "--config",
        str(config),
        "--workers",
        "3",
        "--port",
        "0",
        "--ledger",
        str(tmp_path / "ledger.duckdb"),
    )
    assert code == 0, err
    made: dict = {}
    monkeypatch.setattr(gateway_app, "create_app", lambda *args, **kwargs: made.update(kwargs))
    monkeypatch.setenv("TOKENOMY_WORKER_OF", "")  # this test process is no supervised worker
    gateway_app.app_from_env()
    assert seen["workers"] == 3 and made["workers"] == 3


@pytest.mark.parametrize("workers", [1, 4])
def test_each_workers_bucket_holds_its_share_of_the_route(tmp_path, workers):
    import asyncio

    from tokenomy.gateway.state import Gateway

    async def bucket() -> tuple[float | None, float | None]:
        route = dict(
            limited("http://127.0.0.1:9")["routes"]["r"],
            rate_limit={"requests_per_minute": 400, "tokens_per_minute": 100_000},
        )
        gw = Gateway(
            parse_config({**limited("http://127.0.0.1:9"), "routes": {"r": route}}),
            str(Path(tmp_path) / "ledger.duckdb"),
            workers=workers,
        )
        try:
            limiter = gw.policy_for("r", gw.route_for("r")).limiter
            assert limiter is not None
            return limiter.rpm, limiter.tpm
        finally:
            await gw.client.aclose_upstreams()
            gw.client.close()
            gw.writer.close()

    assert asyncio.run(bucket()) == (400 / workers, 100_000 / workers)
