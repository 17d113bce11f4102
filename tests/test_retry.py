"""Retries, backoff, fallbacks and rate limits against real HTTP servers on 127.0.0.1."""

from __future__ import annotations

import json
import random
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest

from tokenomy.client import CallPolicy, Tokenomy
from tokenomy.errors import ProviderError
from tokenomy.ledger.store import open_store
from tokenomy.messages import ChatRequest
from tokenomy.providers.registry import ModelSpec
from tokenomy.resilience.ratelimit import RateLimiter
from tokenomy.resilience.retry import RetryPolicy

FAST = RetryPolicy(max_attempts=4, base_delay_s=0.01, max_delay_s=0.05, deadline_s=10)


class ScriptedOpenAI:
    """An OpenAI-format chat server that answers from a script of statuses (then 200s)."""

    def __init__(self, script: list[tuple[int, dict]]) -> None:
        self.script = list(script)
        self.calls = 0
        outer = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, *args):  # keep test output clean
                pass

            def do_POST(self):  # noqa: N802 - http.server API
                length = int(self.headers.get("content-length", 0))
                body = json.loads(self.rfile.read(length))
                outer.calls += 1
                status, headers = outer.script.pop(0) if outer.script else (200, {})
                if status == 200:
                    payload = {"id": "x", "object": "chat.completion", "created": 0, "model": body["model"],
                               "choices": [{"index": 0, "message": {"role": "assistant", "content": "ok"},
                                            "finish_reason": "stop"}],
                               "usage": {"prompt_tokens": 1000, "completion_tokens": 10, "total_tokens": 1010}}
                else:
                    payload = {"error": {"message": f"scripted {status}", "type": "x", "code": None}}
                data = json.dumps(payload).encode()
                self.send_response(status)
                for key, value in headers.items():
                    self.send_header(key, value)
                self.send_header("content-type", "application/json")
                self.send_header("content-length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}/v1"
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    def close(self) -> None:
        self.server.shutdown()


@pytest.fixture
def scripted():
    servers = []

    def make(script):
        server = ScriptedOpenAI(script)
        servers.append(server)
        return server

    yield make
    for server in servers:
        server.close()


def models(**urls: str) -> dict[str, ModelSpec]:
    return {name: ModelSpec(name=name, provider="openai", model=name, base_url=url, price_as="gpt-4o-mini")
            for name, url in urls.items()}


def test_throttling_is_retried_with_retry_after_and_every_attempt_recorded(scripted, ledger_path):
    server = scripted([(429, {"retry-after": "0.3"}), (503, {}), (200, {})])
    with Tokenomy(ledger_path, models=models(a=server.url), policy=CallPolicy(retry=FAST), seed=1) as client:
        started = time.monotonic()
        response = client.chat(ChatRequest.simple("hi", model="a", max_tokens=5))
        elapsed = time.monotonic() - started
    assert response.text == "ok" and response.attempts == 3 and server.calls == 3
    assert elapsed >= 0.3  # Retry-After is honoured beyond the 0.05 s backoff cap
    events = sorted(open_store(ledger_path).events(), key=lambda e: e.attempt)
    assert [(e.attempt, e.outcome) for e in events] == [(1, "throttled"), (2, "server_error"), (3, "ok")]
    assert len({e.request_id for e in events}) == 1
    assert events[2].cost_usd > 0 and events[0].cost_usd == 0


def test_client_errors_are_not_retried_nor_fall_back(scripted, ledger_path):
    bad, spare = scripted([(400, {})]), scripted([])
    policy = CallPolicy(retry=FAST, fallback=("b",))
    with Tokenomy(ledger_path, models=models(a=bad.url, b=spare.url), policy=policy) as client:
        with pytest.raises(ProviderError) as info:
            client.chat(ChatRequest.simple("hi", model="a", max_tokens=5))
    assert info.value.kind == "client_error" and bad.calls == 1 and spare.calls == 0


def test_fallback_chain_takes_over_after_retries(scripted, ledger_path):
    down, spare = scripted([(503, {})] * 10), scripted([])
    policy = CallPolicy(retry=RetryPolicy(max_attempts=2, base_delay_s=0.01, max_delay_s=0.02), fallback=("b",))
    with Tokenomy(ledger_path, models=models(a=down.url, b=spare.url), policy=policy) as client:
        response = client.chat(ChatRequest.simple("hi", model="a", max_tokens=5))
    assert response.model == "b" and down.calls == 2 and spare.calls == 1
    outcomes = [(e.model, e.attempt, e.outcome) for e in sorted(open_store(ledger_path).events(), key=lambda e: e.attempt)]
    assert outcomes == [("a", 1, "server_error"), ("a", 2, "server_error"), ("b", 3, "ok")]


def test_deadline_bounds_the_retries(scripted, ledger_path):
    server = scripted([(429, {"retry-after": "5"})] * 10)
    policy = CallPolicy(retry=RetryPolicy(max_attempts=10, base_delay_s=0.01, max_delay_s=5, deadline_s=1))
    with Tokenomy(ledger_path, models=models(a=server.url), policy=policy) as client:
        started = time.monotonic()
        with pytest.raises(ProviderError) as info:
            client.chat(ChatRequest.simple("hi", model="a", max_tokens=5))
    assert info.value.kind == "throttled" and time.monotonic() - started < 1 and server.calls == 1


def test_full_jitter_stays_within_the_exponential_ceiling():
    policy = RetryPolicy(base_delay_s=0.5, max_delay_s=4)
    rng = random.Random(7)
    error = ProviderError("x", kind="throttled")
    for attempt, ceiling in [(1, 0.5), (2, 1.0), (3, 2.0), (4, 4.0), (8, 4.0)]:
        delays = [policy.delay(attempt, error, rng) for _ in range(300)]
        assert 0 <= min(delays) and max(delays) <= ceiling
        assert max(delays) > ceiling * 0.8  # spread over the whole range, not a fixed wait
    assert policy.delay(1, ProviderError("x", kind="throttled", retry_after=3), rng) >= 3


def test_token_bucket_keeps_under_requests_and_tokens_per_minute():
    now = [0.0]
    limiter = RateLimiter(rpm=60, tpm=6000, clock=lambda: now[0])
    granted = 0
    for _ in range(200):
        if limiter.try_acquire(100) == 0:
            granted += 1
    assert granted == 60  # a full minute's allowance up front, then nothing
    now[0] += 10  # ten seconds refill 10 requests and 1,000 tokens
    assert sum(limiter.try_acquire(100) == 0 for _ in range(50)) == 10
    assert limiter.try_acquire(100) == pytest.approx(1.0)  # next slot in one second
    limiter.settle(estimated=100, actual=20)


def test_rate_limited_client_spaces_real_calls(scripted, ledger_path):
    server = scripted([])
    policy = CallPolicy(retry=FAST, limiter=RateLimiter(rpm=600))  # 10/s after the first minute's burst
    limiter = policy.limiter
    limiter._requests = 1  # start nearly empty so the limit shows within the test
    with Tokenomy(ledger_path, models=models(a=server.url), policy=policy) as client:
        started = time.monotonic()
        for _ in range(4):
            client.chat(ChatRequest.simple("hi", model="a", max_tokens=5))
    assert time.monotonic() - started >= 0.25  # 3 waits of ~0.1 s
