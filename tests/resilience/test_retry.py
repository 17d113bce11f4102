"""Retries, backoff, fallbacks and rate limits against real HTTP servers on 127.0.0.1."""

from __future__ import annotations

import random
import threading
import time
from dataclasses import replace

import pytest

from helpers.scripted_openai import ScriptedOpenAI, models
from tokenomy.caching.tokens import TokenPolicy
from tokenomy.client import CallPolicy, Tokenomy
from tokenomy.errors import ProviderError
from tokenomy.ledger.store import open_store
from tokenomy.messages import ChatRequest, ImageBlock, Message, TextBlock
from tokenomy.providers.registry import ModelSpec
from tokenomy.resilience.fallback import AttemptPlan
from tokenomy.resilience.ratelimit import RateLimiter
from tokenomy.resilience.retry import RetryPolicy

FAST = RetryPolicy(max_attempts=4, base_delay_s=0.01, max_delay_s=0.05, deadline_s=10)


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
    events = sorted(open_store(ledger_path).events(), key=lambda e: e.attempt)
    outcomes = [(e.model, e.attempt, e.outcome) for e in events]
    assert outcomes == [("a", 1, "server_error"), ("a", 2, "server_error"), ("b", 3, "ok")]


def test_a_spent_quota_is_not_retried_and_the_fallback_takes_over_at_once(scripted, ledger_path):
    # OpenAI's 429 `insufficient_quota` (no credit left on the account) was retried as a rate limit, four calls that
    # could only be refused again, and its code was lost. It is not retried: the next model is tried at once, and
    # without one the caller gets the provider's code.
    spent, spare = scripted([(429, {}, "insufficient_quota")] * 10), scripted([])
    policy = CallPolicy(retry=FAST, fallback=("b",))
    with Tokenomy(ledger_path, models=models(a=spent.url, b=spare.url), policy=policy) as client:
        response = client.chat(ChatRequest.simple("hi", model="a", max_tokens=5))
        assert response.model == "b" and spent.calls == 1 and spare.calls == 1
        with pytest.raises(ProviderError) as info:
            client.chat(ChatRequest.simple("hi", model="a", max_tokens=5), policy=CallPolicy(retry=FAST))
    assert info.value.code == "insufficient_quota" and info.value.status == 429 and spent.calls == 2
    throttled = scripted([(429, {}, "rate_limit_exceeded"), (200, {})])  # a rate limit's 429 is still retried
    with Tokenomy(ledger_path, models=models(a=throttled.url), policy=CallPolicy(retry=FAST)) as client:
        assert client.chat(ChatRequest.simple("hi", model="a", max_tokens=5)).text == "ok" and throttled.calls == 2


def test_deadline_bounds_the_retries(scripted, ledger_path):
    server = scripted([(429, {"retry-after": "5"})] * 10)
    policy = CallPolicy(retry=RetryPolicy(max_attempts=10, base_delay_s=0.01, max_delay_s=5, deadline_s=1))
    with Tokenomy(ledger_path, models=models(a=server.url), policy=policy) as client:
        started = time.monotonic()
        with pytest.raises(ProviderError) as info:
            client.chat(ChatRequest.simple("hi", model="a", max_tokens=5))
    # Well short of the 5 s retry-after (with room for a slow CI machine), and no second attempt.
    assert info.value.kind == "throttled" and time.monotonic() - started < 3 and server.calls == 1


def test_full_jitter_stays_within_the_exponential_ceiling():
    policy = RetryPolicy(base_delay_s=0.5, max_delay_s=4)
    rng = random.Random(7)
    error = ProviderError("x", kind="throttled")
    for attempt, ceiling in [(1, 0.5), (2, 1.0), (3, 2.0), (4, 4.0), (8, 4.0)]:
        delays = [policy.delay(attempt, error, rng) for _ in range(300)]
        assert min(delays) >= 0 and max(delays) <= ceiling
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
    now[0] += 10  # ten seconds refill the bucket by 10 requests, but the last minute already had 60
    assert sum(limiter.try_acquire(100) == 0 for _ in range(50)) == 0
    assert limiter.try_acquire(100) == pytest.approx(50.0)  # next slot when the first of the 60 leaves the minute
    now[0] += 50
    assert sum(limiter.try_acquire(100) == 0 for _ in range(100)) == 60


def test_rate_limited_client_spaces_real_calls(scripted, ledger_path):
    server = scripted([])
    policy = CallPolicy(retry=FAST, limiter=RateLimiter(rpm=600))  # 10/s after the first minute's burst
    limiter = policy.limiter
    with Tokenomy(ledger_path, models=models(a=server.url), policy=policy) as client:
        # Start nearly empty, from now: set before the client was built, its start-up time (0.1 s on a loaded
        # machine) refilled the bucket and the calls came 0.21 s apart in all.
        limiter._requests, limiter._updated = 1, time.monotonic()
        started = time.monotonic()
        for _ in range(4):
            client.chat(ChatRequest.simple("hi", model="a", max_tokens=5))
    assert time.monotonic() - started >= 0.25  # 3 waits of ~0.1 s


def outcomes(ledger_path: str) -> list[tuple[str, int, str]]:
    events = sorted(open_store(ledger_path).events(), key=lambda e: (e.ts, e.attempt))
    return [(e.model, e.attempt, e.outcome) for e in events]


def test_stream_is_retried_before_its_first_delta(scripted, ledger_path):
    server = scripted([(429, {"retry-after": "0.1"}), (500, {})])
    with Tokenomy(ledger_path, models=models(a=server.url), policy=CallPolicy(retry=FAST), seed=2) as client:
        chunks = list(client.stream(ChatRequest.simple("hi", model="a", max_tokens=5)))
    assert "".join(c.delta for c in chunks) == "ok" and server.calls == 3
    final = chunks[-1].response
    assert final.attempts == 3 and final.usage.input_tokens == 1000 and final.cost_usd > 0
    assert outcomes(ledger_path) == [("a", 1, "throttled"), ("a", 2, "server_error"), ("a", 3, "ok")]


def test_stream_is_not_retried_after_a_delta_reached_the_caller(scripted, ledger_path):
    server = scripted([(200, {}, "broken")])
    received = []
    with Tokenomy(ledger_path, models=models(a=server.url), policy=CallPolicy(retry=FAST)) as client:
        with pytest.raises(ProviderError) as info:
            for chunk in client.stream(ChatRequest.simple("hi", model="a", max_tokens=5)):
                received.append(chunk.delta)
    assert received == ["par"] and server.calls == 1  # a retry would have sent "par" twice
    assert info.value.retryable  # retryable in itself: the stream position is what forbids it
    assert outcomes(ledger_path) == [("a", 1, "server_error")]


def test_async_chat_and_stream_retry_with_asyncio_sleep(scripted, ledger_path):
    import asyncio

    server = scripted([(503, {"retry-after": "0.2"}), (200, {}), (429, {})])

    async def run():
        with Tokenomy(ledger_path, models=models(a=server.url), policy=CallPolicy(retry=FAST), seed=3) as client:
            ticks = 0

            async def ticker():  # proves the event loop keeps running while a retry waits
                nonlocal ticks
                while True:
                    await asyncio.sleep(0.02)
                    ticks += 1

            task = asyncio.create_task(ticker())
            answer = await client.achat(ChatRequest.simple("hi", model="a", max_tokens=5))
            streamed = [c async for c in client.astream(ChatRequest.simple("hi", model="a", max_tokens=5))]
            task.cancel()
            return answer, streamed, ticks

    answer, streamed, ticks = asyncio.run(run())
    assert answer.text == "ok" and answer.attempts == 2 and ticks >= 5
    assert "".join(c.delta for c in streamed) == "ok" and streamed[-1].response.attempts == 2
    rows = outcomes(ledger_path)
    assert rows.count(("a", 2, "ok")) == 2 and ("a", 1, "server_error") in rows and ("a", 1, "throttled") in rows
    assert len({e.request_id for e in open_store(ledger_path).events()}) == 2


def test_retries_stop_short_of_the_deadline_then_the_fallback_takes_over(scripted, ledger_path):
    # The deadline leaves room for several retries even when a loaded CI machine takes 1 s per attempt (a 1.5 s
    # deadline left none on a CI run sharing two cores with a demo); `a` answers 503 far more often, and the
    # attempt limit is far above what the deadline lets it be asked, so only the deadline can end its retries.
    # The SDK is imported before the clock starts: its first import, timed as the first attempt, would leave no
    # room for a retry before the fallback's turn (a retry is made only if an attempt as long fits).
    import openai  # noqa: F401

    slow, spare = scripted([(503, {})] * 300), scripted([])
    policy = CallPolicy(
        retry=RetryPolicy(max_attempts=200, base_delay_s=0.1, max_delay_s=0.2, deadline_s=3.0), fallback=("b",)
    )
    with Tokenomy(ledger_path, models=models(a=slow.url, b=spare.url), policy=policy, seed=4) as client:
        started = time.monotonic()
        response = client.chat(ChatRequest.simple("hi", model="a", max_tokens=5))
    # Retries on `a` stop when the next wait would cross the deadline; `b` then takes over at once.
    assert response.model == "b" and spare.calls == 1 and 2 <= slow.calls < 200
    assert time.monotonic() - started < 10  # the deadline is 3 s; the rest is room for a slow CI machine


def test_attempt_plan_hands_over_when_retry_after_overruns_the_deadline():
    now = [0.0]
    plan = AttemptPlan(
        ("a", "b", "c"),
        RetryPolicy(max_attempts=3, base_delay_s=0.1, max_delay_s=1, deadline_s=10),
        random.Random(1),
        clock=lambda: now[0],
    )
    step = plan.first()
    assert (step.target, step.attempt) == (0, 1)
    step = plan.after(ProviderError("slow down", kind="throttled", retry_after=30))  # longer than the deadline
    assert (step.target, step.attempt, step.delay_s) == (1, 2, 0.0)
    step = plan.after(ProviderError("x", kind="timeout"))
    assert (step.target, step.per_target) == (1, 2) and 0 <= step.delay_s <= 0.1
    step = plan.after(ProviderError("x", kind="server_error"))
    assert (step.target, step.per_target) == (1, 3) and 0 <= step.delay_s <= 0.2
    step = plan.after(ProviderError("x", kind="server_error"))
    assert (step.target, step.attempt) == (2, 5)
    now[0] = 11.0  # past the deadline: nothing more, even with attempts left on `c`
    assert plan.after(ProviderError("x", kind="server_error")) is None
    fresh = AttemptPlan(("a", "b"), RetryPolicy(), random.Random(1))
    fresh.first()
    assert fresh.after(ProviderError("bad request", kind="client_error")) is None


def test_token_bucket_is_exact_under_concurrent_threads():
    limiter = RateLimiter(rpm=100, tpm=10_000, clock=lambda: 0.0)  # frozen clock: no refill
    granted = []

    def worker():
        granted.append(sum(limiter.try_acquire(30) == 0 for _ in range(200)))

    threads = [threading.Thread(target=worker) for _ in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(10)
    assert sum(granted) == 100  # the request bucket binds (100 x 30 = 3,000 tokens < 10,000)
    limiter2 = RateLimiter(tpm=1000, clock=lambda: 0.0)
    assert limiter2.try_acquire(800) == 0 and limiter2.try_acquire(800) > 0
    limiter2.settle(estimated=800, actual=100)  # the call used far fewer tokens than reserved
    assert limiter2.try_acquire(800) == 0


def test_async_acquire_waits_for_refill_without_blocking_the_loop():
    import asyncio

    limiter = RateLimiter(rpm=1200)  # one request every 50 ms once the burst is spent
    limiter._requests = 0.0

    async def run():
        started = time.monotonic()
        await asyncio.gather(*(limiter.acquire_async() for _ in range(4)))
        return time.monotonic() - started

    assert 0.15 <= asyncio.run(run()) < 2.0


@pytest.mark.slow
def test_fifty_calls_through_emulate_bedrock_with_thirty_percent_throttling(ledger_path):
    """The issue's check: `tokenomy emulate bedrock --throttle-rate 0.3` as a process, boto3 underneath."""
    import subprocess
    import sys
    from concurrent.futures import ThreadPoolExecutor

    from helpers import free_port, wait_for_port
    from tokenomy.telemetry.otel_pipeline import in_memory_pipeline

    exporter, _ = in_memory_pipeline()
    exporter.clear()
    port = free_port()
    proc = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "tokenomy.cli",
            "emulate",
            "bedrock",
            "--port",
            str(port),
            "--throttle-rate",
            "0.3",
            "--seed",
            "11",
        ],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
    )
    try:
        wait_for_port(port, 60, proc)
        spec = {
            "nova": ModelSpec(
                name="nova",
                provider="bedrock",
                model="amazon.nova-micro-v1:0",
                region="us-east-1",
                endpoint_url=f"http://127.0.0.1:{port}",
            )
        }
        policy = CallPolicy(retry=RetryPolicy(max_attempts=10, base_delay_s=0.01, max_delay_s=0.05, deadline_s=60))
        with Tokenomy(ledger_path, models=spec, policy=policy, seed=5) as client, ThreadPoolExecutor(4) as pool:
            responses = list(
                pool.map(lambda i: client.chat(ChatRequest.simple(f"Say {i}.", model="nova", max_tokens=2)), range(50))
            )
    finally:
        proc.terminate()
        proc.wait(10)
    assert len(responses) == 50 and all(r.cost_usd > 0 for r in responses)
    events = open_store(ledger_path).events()
    ok = [e for e in events if e.outcome == "ok"]
    throttled = [e for e in events if e.outcome == "throttled"]
    assert len(ok) == 50 and len({e.request_id for e in ok}) == 50  # every call recorded exactly once
    assert len(throttled) >= 5 and len(ok) + len(throttled) == len(events)  # retries visible, nothing else
    by_call: dict[str, list] = {}
    for e in events:
        by_call.setdefault(e.request_id, []).append(e)
    for rows in by_call.values():  # attempts 1..n, all throttled but the last, which is the one ok row
        rows.sort(key=lambda e: e.attempt)
        assert [e.attempt for e in rows] == list(range(1, len(rows) + 1))
        assert [e.outcome for e in rows] == ["throttled"] * (len(rows) - 1) + ["ok"]
        assert rows[-1].error_type is None and all(e.error_type == "ThrottlingException" for e in rows[:-1])
    assert sorted(r.attempts for r in responses) == sorted(len(rows) for rows in by_call.values())
    spans = [s for s in exporter.get_finished_spans() if s.name == "chat amazon.nova-micro-v1:0"]
    assert len(spans) == len(events)
    assert sorted(s.attributes.get("error.type", "") for s in spans).count("ThrottlingException") == len(throttled)


def test_rate_limiter_wait_is_bounded_by_the_deadline(scripted, ledger_path):
    server = scripted([])
    limiter = RateLimiter(rpm=6)  # one slot every 10 s once the first is spent
    limiter._requests = 1
    policy = CallPolicy(retry=RetryPolicy(deadline_s=0.5), limiter=limiter)
    with Tokenomy(ledger_path, models=models(a=server.url), policy=policy) as client:
        client.chat(ChatRequest.simple("hi", model="a", max_tokens=5))
        started = time.monotonic()
        with pytest.raises(ProviderError, match="client-side rate limit") as info:
            client.chat(ChatRequest.simple("hi", model="a", max_tokens=5))
    # Refused at the deadline, not after the 10 s wait for the next slot (room left for a slow CI machine).
    assert info.value.kind == "throttled" and time.monotonic() - started < 3 and server.calls == 1
    assert [e.outcome for e in open_store(ledger_path).events()] == ["ok"]  # nothing was sent the second time


def test_rate_limited_call_retries_a_failed_attempt(scripted, ledger_path):
    """A failed attempt (no tokens generated) under a rate limit is recorded and retried, streamed or not."""
    server = scripted([(503, {}), (429, {}), (200, {}), (200, {}, "broken")])
    policy = CallPolicy(retry=FAST, limiter=RateLimiter(rpm=600, tpm=100_000))
    with Tokenomy(ledger_path, models=models(a=server.url), policy=policy, seed=3) as client:
        assert client.chat(ChatRequest.simple("hi", model="a", max_tokens=5)).text == "ok"
        with pytest.raises(ProviderError):  # part of an answer arrived: no retry, settled at its estimate
            list(client.stream(ChatRequest.simple("hi", model="a", max_tokens=5)))
        assert [c.delta for c in client.stream(ChatRequest.simple("hi", model="a", max_tokens=5))][:2] == ["o", "k"]
    assert [o for _, _, o in outcomes(ledger_path)] == ["server_error", "throttled", "ok", "server_error", "ok"]


def test_a_408_request_timeout_is_retried(scripted, ledger_path):
    """408 is the server's timeout: retried like Anthropic's and Gemini's, not a final client error."""
    server = scripted([(408, {}), (408, {})])
    with Tokenomy(ledger_path, models=models(a=server.url), policy=CallPolicy(retry=FAST), seed=4) as client:
        assert client.chat(ChatRequest.simple("hi", model="a", max_tokens=5)).text == "ok"
        assert "".join(c.delta for c in client.stream(ChatRequest.simple("hi", model="a", max_tokens=5))) == "ok"
    assert server.calls == 4
    assert [o for _, _, o in outcomes(ledger_path)] == ["timeout", "timeout", "ok", "ok"]


def text_only_then_seeing(scripted):
    """Upstream `a`, declared text-only, and `b`, which reads images; their specs; an image request to `a`."""
    blind, seeing = scripted([]), scripted([])
    specs = models(a=blind.url, b=seeing.url)
    specs["a"] = replace(specs["a"], options=(("inputs", ("text",)),))
    image = ChatRequest(
        messages=[Message("user", [TextBlock("What is this?"), ImageBlock(media_type="image/png", data=b"\x89PNG")])],
        model="a",
        max_tokens=5,
    )
    return blind, seeing, specs, image


def test_a_model_that_cannot_read_an_image_passes_it_to_the_fallback_without_sending_it(scripted, ledger_path):
    # The primary is declared text-only: before, a fallback or routed tier so declared was sent the image anyway
    # (only the gateway's up-front check of a route's own model read `inputs`), and a client error never fell back.
    blind, seeing, specs, image = text_only_then_seeing(scripted)
    with Tokenomy(ledger_path, models=specs, policy=CallPolicy(retry=FAST, fallback=("b",))) as client:
        response = client.chat(image)
        assert client.chat(ChatRequest.simple("hi", model="a", max_tokens=5)).model == "a"  # text: the primary
    assert response.model == "b" and blind.calls == 1 and seeing.calls == 1
    events = sorted(open_store(ledger_path).events(), key=lambda e: (e.ts, e.attempt))
    assert [(e.model, e.attempt, e.outcome, e.cost_usd) for e in events[:2]] == [
        ("a", 1, "client_error", 0),
        ("b", 2, "ok", events[1].cost_usd),
    ]
    with Tokenomy(ledger_path, models=specs, policy=CallPolicy(retry=FAST)) as client:  # no fallback: refused
        with pytest.raises(ProviderError, match=r"cannot take an image block \(messages\[0\]\.content\[1\]\)") as info:
            client.chat(image)
    assert info.value.refused is not None and blind.calls == 1  # still only the text call


def test_a_refusal_of_a_cut_history_names_the_block_where_the_caller_put_it(scripted, ledger_path):
    # max_turns cut the first two turns: the error's message named the image at messages[0], a place of what was
    # sent (only its `refused`, which the gateway reads, was placed in the caller's request).
    blind, _, specs, image = text_only_then_seeing(scripted)
    history = replace(image, messages=[Message("user", "hi"), Message("assistant", "hello"), *image.messages])
    policy = CallPolicy(retry=FAST, tokens=TokenPolicy(max_turns=1))
    with Tokenomy(ledger_path, models=specs, policy=policy) as client:
        with pytest.raises(ProviderError) as info:
            client.chat(history)
    assert info.value.refused.where == "messages[2].content[1]" and blind.calls == 0
    assert str(info.value).startswith("model `a` (openai) cannot take an image block (messages[2].content[1]): ")
    assert [(e.model, e.outcome, e.cost_usd) for e in open_store(ledger_path).events()] == [("a", "client_error", 0)]


def test_a_refused_attempt_gives_its_rate_limit_allowance_back(scripted, ledger_path):
    """Nothing was sent, so the refused attempt must not spend the route's one request a minute: before, the
    fallback found no slot left and the call failed as throttled."""
    _, seeing, specs, image = text_only_then_seeing(scripted)
    limiter = RateLimiter(rpm=1, tpm=10_000, clock=lambda: 0.0)  # a stopped clock: nothing refills
    with Tokenomy(ledger_path, models=specs, policy=CallPolicy(retry=FAST, fallback=("b",), limiter=limiter)) as c:
        answer = c.chat(image)
    assert answer.model == "b" and seeing.calls == 1
    assert limiter._requests == 0  # the answered call took the one request of the minute
    # and its tokens only (settled to its count), not the refused attempt's estimate as well
    assert limiter._tokens == 10_000 - answer.usage.total_input_tokens - answer.usage.output_tokens


def test_attempt_plan_moves_past_a_refusal_at_once():
    plan = AttemptPlan(("a", "b"), RetryPolicy(max_attempts=3), random.Random(1))
    plan.first()
    refused = ProviderError("cannot take an image", kind="client_error", refused=object())
    step = plan.after(refused)
    assert (step.target, step.attempt, step.per_target, step.delay_s) == (1, 2, 1, 0.0)
    assert plan.after(refused) is None  # the last model refused too


def test_a_models_timeout_s_reaches_its_sdk_provider(scripted, ledger_path):
    """The library's path (the openai SDK) waits the configured `timeout_s` too, not a fixed 120 s."""
    # The upstream answers only after the call gave up (no measured time, which a loaded machine would stretch):
    # a timeout then is the model's 0.5 s, not the default 120 s (that call would get the answer, at 60 s).
    late = scripted([(200, {}, "held"), (200, {}, "held")])
    specs = models(hasty=late.url)
    specs["hasty"] = replace(specs["hasty"], options=(("timeout_s", 0.5),))
    assert specs["hasty"].timeout_s == 0.5 and models(other=late.url)["other"].timeout_s == 120
    try:
        with Tokenomy(ledger_path, models=specs, policy=CallPolicy(retry=RetryPolicy(max_attempts=1))) as client:
            with pytest.raises(ProviderError) as info:
                client.chat(ChatRequest.simple("hi", model="hasty", max_tokens=5))
    finally:
        late.release()
    assert info.value.kind == "timeout" and late.calls == 1


def test_every_hosted_provider_is_built_with_the_models_timeout_s(monkeypatch):
    from tokenomy.config import parse_config
    from tokenomy.errors import ConfigError
    from tokenomy.providers.registry import get_provider

    monkeypatch.setenv("ANTHROPIC_API_KEY", "k")
    monkeypatch.setenv("OPENAI_API_KEY", "k")
    specs = parse_config(
        {
            "models": {
                "claude": {"provider": "anthropic", "model": "claude-sonnet-4-5", "timeout_s": 7},
                "nova": {
                    "provider": "bedrock",
                    "model": "amazon.nova-lite-v1:0",
                    "region": "us-east-1",
                    "timeout_s": 8,
                },
                "gpt": {"provider": "openai", "model": "gpt-4o-mini", "timeout_s": 9},
            }
        }
    ).model_specs()
    assert get_provider(specs["claude"]).client.timeout == 7
    assert get_provider(specs["nova"]).client.meta.config.read_timeout == 8
    assert get_provider(specs["gpt"]).client.timeout == 9
    with pytest.raises(ConfigError, match=r"timeout_s applies to provider .*no upstream to wait for; remove it"):
        parse_config({"models": {"mine": {"provider": "local", "timeout_s": 5}}})


def test_a_retry_that_would_leave_the_fallback_no_turn_hands_over_instead():
    # A retry whose wait fitted before the deadline was made though its attempt would end past it; the plan then
    # ended at the deadline and the fallback never had a turn (the deadline-then-fallback test failed 1 run in 3).
    now = [0.0]
    retry = RetryPolicy(max_attempts=10, base_delay_s=0.1, max_delay_s=0.1, deadline_s=1.0)
    plan = AttemptPlan(("a", "b"), retry, random.Random(1), clock=lambda: now[0])
    plan.first()
    now[0] = 0.2  # a 0.2 s attempt: a wait and another such attempt end before the deadline
    step = plan.after(ProviderError("x", kind="server_error"))
    assert (step.target, step.per_target) == (0, 2)
    now[0] += step.delay_s + 0.5  # a 0.5 s attempt: another would end past the deadline
    step = plan.after(ProviderError("x", kind="server_error"))
    assert (step.target, step.delay_s) == (1, 0.0)
    alone = AttemptPlan(("a",), retry, random.Random(1), clock=lambda: now[0])  # no fallback: retried while it fits
    now[0] = 0.0
    alone.first()
    now[0] = 0.6
    assert alone.after(ProviderError("x", kind="server_error")).target == 0
