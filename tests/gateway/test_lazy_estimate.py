"""A call's prompt is estimated (every block read) once, for what asks for the estimate: a route's rate limit, which
reserves it before the call, an attempt that failed after reaching its provider, or the journal's in-flight entry
(what a gateway killed mid-call records it at). A route without a rate limit reserves nothing."""

from __future__ import annotations

import base64
from pathlib import Path

import pytest
from fastapi.testclient import TestClient

from tokenomy import call_policy
from tokenomy.caching.placement import estimate_input_tokens
from tokenomy.config import parse_config
from tokenomy.emulate.instant_openai import InstantOpenAI
from tokenomy.gateway.app import create_app
from tokenomy.resilience.ratelimit import RateLimiter

HAIKU = "anthropic.claude-3-haiku-20240307-v1:0"
IMAGE = "data:image/png;base64," + base64.b64encode(b"\x89PNG\r\n\x1a\n" + bytes(range(256))).decode()
BODY = {"max_tokens": 8, "messages": [{"role": "user", "content": [
    {"type": "text", "text": "What is in it?"}, {"type": "image_url", "image_url": {"url": IMAGE}}]}]}  # fmt: skip


@pytest.fixture
def gateway(tmp_path: Path, monkeypatch):
    """A gateway with a plain route and a rate-limited one; the estimates made and the tokens the limiter took."""
    monkeypatch.setenv("FAST_KEY", "sk-test")
    estimated: list[int] = []
    reserved: list[int] = []

    def counted(request):
        estimated.append(estimate_input_tokens(request))
        return estimated[-1]

    acquire = RateLimiter.acquire_async

    async def taken(self, tokens=0, timeout=None, requests=1, given_up=None):
        reserved.append(tokens)
        return await acquire(self, tokens, timeout, requests, given_up)

    monkeypatch.setattr(call_policy, "estimate_input_tokens", counted)
    monkeypatch.setattr(RateLimiter, "acquire_async", taken)
    with InstantOpenAI() as url:
        model = {"provider": "openai", "model": "fast", "base_url": url, "api_key_env": "FAST_KEY", "price_as": HAIKU}
        config = parse_config({
            "models": {"fast": model},
            "routes": {"plain": {"model": "fast"},
                       "limited": {"model": "fast", "rate_limit": {"tokens_per_minute": 1_000_000}}},
        })  # fmt: skip
        with TestClient(create_app(config, str(tmp_path / "ledger.duckdb"))) as client:
            yield client, estimated, reserved


def test_a_route_without_a_rate_limit_estimates_once_for_the_journal_and_reserves_nothing(gateway) -> None:
    client, estimated, reserved = gateway
    answer = client.post("/v1/chat/completions", json={**BODY, "model": "plain"})
    assert answer.status_code == 200, answer.text
    assert len(estimated) == 1 and estimated[0] > 1600 and reserved == []


def test_a_rate_limited_route_reserves_the_prompts_estimate_and_the_cap(gateway) -> None:
    client, estimated, reserved = gateway
    answer = client.post("/v1/chat/completions", json={**BODY, "model": "limited"})
    assert answer.status_code == 200, answer.text
    assert len(estimated) == 1 and estimated[0] > 1600  # the image counted (1,600 tokens), not only the words
    assert reserved == [estimated[0] + 8]
