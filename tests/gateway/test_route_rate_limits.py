"""A route's `rate_limit` refuses what its limiter has no room for with a 429. That 429 said nothing about when to come
back (no Retry-After), so the official SDKs retried at once, and were refused again, until their retries ran out; the
key's rpm 429 already said it. The route's 429 now carries the limiter's own wait, which the SDKs honour."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
from pathlib import Path

import openai
import pytest
import yaml

from helpers import free_port, wait_for_port
from tokenomy.emulate.instant_openai import InstantOpenAI

TOKENOMY = str(Path(sys.executable).with_name("tokenomy"))
HAIKU = "anthropic.claude-3-haiku-20240307-v1:0"


def config(url: str, rpm: float) -> dict:
    model = {"provider": "openai", "model": "fast", "base_url": url, "api_key_env": "FAST_KEY", "price_as": HAIKU}
    # A short deadline: a request the limiter has no room for is refused at once, not after its wait.
    route = {"model": "fast", "rate_limit": {"requests_per_minute": rpm}, "retry": {"deadline_s": 0.2}}
    return {"models": {"fast": model}, "routes": {"r": route}}


@pytest.fixture
def serve(tmp_path):
    """`tokenomy serve` as a process on 127.0.0.1 in front of an instant upstream; yields a function of the rpm that
    starts it and answers its base URL."""
    started: list[subprocess.Popen] = []
    with InstantOpenAI() as upstream:

        def start(rpm: float, workers: int = 1) -> str:
            path = tmp_path / "tokenomy.yaml"
            path.write_text(yaml.safe_dump(config(upstream, rpm)))
            port = free_port()
            server = subprocess.Popen(
                [
                    TOKENOMY,
                    "serve",
                    "--config",
                    str(path),
                    "--port",
                    str(port),
                    "--workers",
                    str(workers),
                    "--ledger",
                    str(tmp_path / "ledger.duckdb"),
                ],
                env={**os.environ, "FAST_KEY": "x"},
                start_new_session=True,
                stdout=subprocess.DEVNULL,
                stderr=subprocess.PIPE,
            )
            started.append(server)
            wait_for_port(port, 60, server)
            return f"http://127.0.0.1:{port}/v1"

        try:
            yield start
        finally:
            for server in started:
                if server.poll() is None:
                    os.killpg(server.pid, signal.SIGTERM)
                    server.wait(20)


@pytest.mark.parametrize("stream", [False, True])
def test_the_routes_429_says_when_to_come_back(serve, stream):
    base = serve(2)
    client = openai.OpenAI(base_url=base, api_key="unused", max_retries=0)
    ask = {"model": "r", "messages": [{"role": "user", "content": "hi"}], "max_tokens": 5}
    for _ in range(2):
        client.chat.completions.create(**ask, stream=stream)  # type: ignore[call-overload]
    with pytest.raises(openai.RateLimitError) as info:
        client.chat.completions.create(**ask, stream=stream)  # type: ignore[call-overload]
    wait = info.value.response.headers.get("retry-after")
    # The route's two requests of the minute are spent: room comes back within the minute, not at once.
    assert wait is not None and 1 <= int(wait) <= 60, info.value.response.headers
    assert "client-side rate limit" in info.value.message


def test_the_anthropic_and_embeddings_routes_429_say_it_too(serve):
    import anthropic

    base = serve(1)
    claude = anthropic.Anthropic(base_url=base.removesuffix("/v1"), api_key="unused", max_retries=0)
    claude.messages.create(model="r", max_tokens=5, messages=[{"role": "user", "content": "hi"}])
    with pytest.raises(anthropic.RateLimitError) as refused:
        claude.messages.create(model="r", max_tokens=5, messages=[{"role": "user", "content": "hi"}])
    assert 1 <= int(refused.value.response.headers["retry-after"]) <= 60
    embed = openai.OpenAI(base_url=base, api_key="unused", max_retries=0)
    with pytest.raises(openai.RateLimitError) as info:
        embed.embeddings.create(model="r", input="hi")
    assert 1 <= int(info.value.response.headers["retry-after"]) <= 60
