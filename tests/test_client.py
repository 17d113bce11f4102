"""The single call path: compatible signatures, route policies from config, region fallback, threads."""

from __future__ import annotations

import logging
import threading
from dataclasses import replace

import pytest

from helpers.scripted_openai import ScriptedOpenAI, models
from tokenomy.caching import tokens as token_policy
from tokenomy.chat_response import Usage
from tokenomy.client import CallPolicy, Tokenomy
from tokenomy.config import parse_config
from tokenomy.emulate.bedrock_runtime import create_app
from tokenomy.emulate.server import ServerThread
from tokenomy.errors import ConfigError, ProviderError
from tokenomy.ledger.store import open_store
from tokenomy.messages import ChatRequest, Message, ReasoningBlock, TextBlock, ToolResultBlock, ToolUseBlock
from tokenomy.pricing.cost import compute_cost
from tokenomy.providers.registry import ModelSpec
from tokenomy.request_options import ToolChoice, ToolSpec
from tokenomy.resilience.retry import RetryPolicy

SONNET = "anthropic.claude-3-7-sonnet-20250219-v1:0"
LONG_SYSTEM = "\n".join(f"Policy {i}: refunds for order class {i} take {i % 7 + 2} business days." for i in range(80))


@pytest.fixture
def server():
    s = ScriptedOpenAI([])
    yield s
    s.close()


def test_old_signatures_still_work_and_mode_prices_batch(server, ledger_path):
    with Tokenomy(ledger_path, models=models(a=server.url)) as client:
        plain = client.chat(ChatRequest.simple("hi", model="a", max_tokens=5))
        server.script.append((429, {"retry-after": "0"}))
        batch = client.chat(ChatRequest.simple("hi", model="a", max_tokens=5), "batch")
    assert plain.cost_usd == compute_cost(plain.usage, "gpt-4o-mini").total_usd
    assert batch.cost_usd == compute_cost(batch.usage, "gpt-4o-mini", mode="batch").total_usd < plain.cost_usd
    rows = sorted((e.mode, e.outcome) for e in open_store(ledger_path).events())
    assert rows == [("batch", "ok"), ("batch", "throttled"), ("on_demand", "ok")]  # failed rows keep their mode
    with Tokenomy(record=False, models=models(a=server.url)) as quiet:
        assert quiet.chat(ChatRequest.simple("hi", model="a", max_tokens=5)).text == "ok"
        assert quiet.writer is None


def test_cache_tokens_a_model_has_no_cache_price_for_are_billed_as_input_and_the_row_agrees(
    server, ledger_path, caplog
):
    # Llama 3.1 8B on Bedrock has no prompt-cache prices. Before: with price_as, the row said 800 input + 200 cache
    # read while its cost was 1000 input tokens; without price_as, the caller got a 400 and no row was written.
    server.usage = {
        "prompt_tokens": 1000,
        "completion_tokens": 10,
        "total_tokens": 1010,
        "prompt_tokens_details": {"cached_tokens": 200},
    }
    llama = "meta.llama3-1-8b-instruct-v1:0"
    specs = {
        "priced": ModelSpec(name="priced", provider="openai", model="x", base_url=server.url, price_as=llama),
        "own": ModelSpec(name="own", provider="openai", model=llama, base_url=server.url),
    }
    with caplog.at_level(logging.WARNING, logger="tokenomy.client"), Tokenomy(ledger_path, models=specs) as client:
        answers = [client.chat(ChatRequest.simple("hi", model=m, max_tokens=5)) for m in ("priced", "own")]
    billed = compute_cost(Usage(1000, 10), llama).total_usd
    assert [a.cost_usd for a in answers] == [billed, billed]
    assert answers[1].usage.cache_read_tokens == 200  # the caller still sees what the provider reported
    rows = open_store(ledger_path).query("SELECT input_tokens, cache_read_tokens, cost_usd FROM usage_events")
    assert [(r["input_tokens"], r["cache_read_tokens"], r["cost_usd"]) for r in rows] == [(1000, 0, billed)] * 2
    assert "reported cache tokens but the price catalog has no cache prices" in caplog.text  # for `own` only
    assert caplog.text.count("reported cache tokens") == 1


def test_the_local_models_cache_reads_shorter_than_the_priced_models_minimum_are_billed_as_input(ledger_path):
    # The local model (`make demo`'s bench) priced as Claude Haiku 4.5 read its repeated prompt from its KV cache and
    # the row said a cache read at Haiku's price; Haiku 4.5 caches no prefix under 4,096 tokens, so Bedrock bills it
    # as input.
    haiku = "anthropic.claude-haiku-4-5-20251001-v1:0"
    spec = {"stand-in": ModelSpec(name="stand-in", provider="local", model="local", region="local", price_as=haiku)}
    system = "You are a support assistant. Answer in one word."
    with Tokenomy(ledger_path, models=spec) as client:
        answers = [client.chat(ChatRequest.simple(q, model="stand-in", system=system, max_tokens=2)) for q in "ab"]
    assert answers[1].usage.cache_read_tokens > 0  # the local model did read the prompt from its cache
    billed = [compute_cost(Usage(a.usage.total_input_tokens, a.usage.output_tokens), haiku).total_usd for a in answers]
    assert [a.cost_usd for a in answers] == billed
    rows = open_store(ledger_path).query("SELECT input_tokens, cache_read_tokens FROM usage_events ORDER BY ts")
    assert [(r["input_tokens"], r["cache_read_tokens"]) for r in rows] == [
        (a.usage.total_input_tokens, 0) for a in answers
    ]


def test_route_config_becomes_a_policy_that_caps_and_truncates(server, ledger_path, caplog):
    config = parse_config(
        {
            "models": {"a": {"provider": "openai", "model": "a", "base_url": server.url, "price_as": "gpt-4o-mini"}},
            "routes": {
                "support": {
                    "model": "a",
                    "fallback": [],
                    "caching": {"enabled": False},
                    "tokens": {"max_tokens": 16, "max_turns": 3},
                    "retry": {"max_attempts": 2, "base_delay_s": 0.01, "deadline_s": 5},
                    "rate_limit": {"requests_per_minute": 120},
                }
            },
        }
    )
    policy = CallPolicy.from_route(config.routes["support"])
    assert policy.retry == RetryPolicy(2, 0.01, 8.0, 5) and not policy.caching and policy.tokens.max_tokens == 16
    assert policy.limiter is not None and policy.limiter.rpm == 120 and policy.limiter.tpm is None
    with pytest.raises(ConfigError, match="rate_limit"):
        parse_config({"routes": {"r": {"model": "local", "rate_limit": {"requests_per_minute": 0}}}})
    history = [Message("user" if i % 2 == 0 else "assistant", f"turn {i}") for i in range(7)]
    request = ChatRequest(messages=history, model="a", system="Stay polite.", max_tokens=500)
    with Tokenomy(ledger_path, models=config.model_specs()) as client:
        client.chat(request, policy=policy)
        token_policy._warned.clear()  # logged once per model and process: start clean
        with caplog.at_level(logging.WARNING, logger="tokenomy.policy"):
            client.chat(ChatRequest.simple("uncapped", model="a"))  # default policy: warns, still sends
            client.chat(ChatRequest.simple("uncapped again", model="a"))
    sent = server.bodies[0]
    assert sent["max_tokens"] == 16  # 500 capped by the route
    assert [m["content"] for m in sent["messages"]] == ["Stay polite.", "turn 4", "turn 5", "turn 6"]
    assert "max_tokens" not in server.bodies[1]
    assert sum("no output cap" in r.getMessage() for r in caplog.records) == 1


def test_concurrent_calls_share_one_client(server, ledger_path):
    answers: list[int] = []
    with Tokenomy(ledger_path, models=models(a=server.url)) as client:

        def worker(n: int) -> None:
            for _ in range(5):
                answers.append(client.chat(ChatRequest.simple(f"hi {n}", model="a", max_tokens=3)).attempts)

        threads = [threading.Thread(target=worker, args=(n,)) for n in range(6)]
        for t in threads:
            t.start()
        for t in threads:
            t.join(60)
    events = open_store(ledger_path).events()
    assert len(answers) == 30 and server.calls == 30
    assert len(events) == 30 and len({e.request_id for e in events}) == 30 and {e.outcome for e in events} == {"ok"}


@pytest.mark.slow
def test_region_fallback_through_boto3_and_caching_switch(ledger_path):
    with ServerThread(create_app(throttle_rate=1.0)) as down, ServerThread(create_app()) as up:
        specs = {
            "east": ModelSpec(name="east", provider="bedrock", model=SONNET, region="us-east-1", endpoint_url=down),
            "west": ModelSpec(name="west", provider="bedrock", model=SONNET, region="us-west-2", endpoint_url=up),
        }
        policy = CallPolicy(retry=RetryPolicy(max_attempts=2, base_delay_s=0.01, max_delay_s=0.02), fallback=("west",))
        with Tokenomy(ledger_path, models=specs, policy=policy) as client:
            request = ChatRequest.simple("How long for class 3?", model="east", system=LONG_SYSTEM, max_tokens=4)
            moved = client.chat(request)
            chunks = list(
                client.stream(ChatRequest.simple("And class 4?", model="west", system=LONG_SYSTEM, max_tokens=4))
            )
            uncached = client.chat(
                ChatRequest.simple("Class 5?", model="west", system=LONG_SYSTEM + " ", max_tokens=4),
                policy=CallPolicy(caching=False),
            )
    assert moved.region == "us-west-2" and moved.attempts == 3
    assert moved.usage.cache_write_tokens > 1024  # the fallback got its own automatic cache point
    streamed = chunks[-1].response
    assert streamed.usage.cache_read_tokens == moved.usage.cache_write_tokens  # ConverseStream reads it back
    assert uncached.usage.cache_read_tokens == uncached.usage.cache_write_tokens == 0  # caching switched off
    rows = sorted(open_store(ledger_path).events(), key=lambda e: (e.ts, e.attempt))
    first_call = [(e.region, e.attempt, e.outcome) for e in rows if e.request_id == rows[0].request_id]
    assert first_call == [("us-east-1", 1, "throttled"), ("us-east-1", 2, "throttled"), ("us-west-2", 3, "ok")]


def test_a_call_cancelled_in_flight_is_recorded_as_cancelled_with_what_it_was_billed(server, ledger_path):
    # An async caller gave up after the request had gone out (an asyncio timeout; a gateway's graceful shutdown
    # cancelling what it still runs): the provider got the prompt, answered and billed it. A streamed attempt so
    # cancelled was recorded; a non-streamed one left no ledger row, and a budget re-seeded from the ledger
    # did not count it. The OpenAI SDK's call runs on in its worker thread: its answer's usage is the row's.
    import asyncio

    # The caller leaves once the server has the request, and the server answers only after that (not a timeout
    # racing a fixed delay: on a loaded machine the call may not have gone out within a short timeout).
    server.script.append((200, {}, "held"))

    async def main() -> None:
        with Tokenomy(ledger_path, models=models(a=server.url)) as client:
            call = asyncio.ensure_future(client.achat(ChatRequest.simple("x" * 400, model="a", max_tokens=5)))
            assert await asyncio.to_thread(server.received.wait, 60)
            call.cancel()
            with pytest.raises(asyncio.CancelledError):
                await call
            server.release()  # the answer nobody reads; the client's close waits for it

    asyncio.run(main())
    [row] = open_store(ledger_path).events()
    assert server.calls == 1 and (row.outcome, row.error_type) == ("cancelled", "CallCancelled")
    assert row.input_tokens == 1000 and row.output_tokens == 10  # the answer nobody read, as the server counted it
    assert row.cost_usd == compute_cost(Usage(1000, 10), "gpt-4o-mini").total_usd > 0


@pytest.mark.parametrize("stream", [False, True])
def test_a_blocking_call_interrupted_in_flight_is_recorded_at_its_estimated_prompt(stream, server, ledger_path):
    # Ctrl-C (or `kill`: the ledger's SIGTERM handler raises SystemExit) while a blocking call waits for its answer:
    # the request went out and the provider bills it, but only an async call so cancelled was recorded.
    import os
    import signal

    server.script.append((200, {}, "held"))  # answers only once the call was interrupted

    def interrupt(signum, frame):
        raise KeyboardInterrupt

    def press_ctrl_c_once_sent() -> None:  # a real signal: it breaks the blocking read, as Ctrl-C does
        server.received.wait(60)
        os.kill(os.getpid(), signal.SIGALRM)

    previous = signal.signal(signal.SIGALRM, interrupt)
    try:
        with Tokenomy(ledger_path, models=models(a=server.url)) as client:
            request = ChatRequest.simple("x" * 400, model="a", max_tokens=5)
            threading.Thread(target=press_ctrl_c_once_sent, daemon=True).start()
            with pytest.raises(KeyboardInterrupt):
                list(client.stream(request)) if stream else client.chat(request)
    finally:
        signal.signal(signal.SIGALRM, previous)
        server.release()
    [row] = open_store(ledger_path).events()
    assert server.calls == 1 and row.outcome == "cancelled" and (row.input_tokens, row.output_tokens) == (100, 0)
    assert row.error_type == ("StreamAbandoned" if stream else "CallCancelled") and row.cost_usd > 0


@pytest.mark.filterwarnings("ignore:The model .* is deprecated:DeprecationWarning")
def test_a_cancelled_call_whose_provider_answers_in_its_worker_thread_is_recorded_at_the_real_usage(ledger_path):
    # The Anthropic, Bedrock and Gemini SDKs run in a worker thread, which a cancelled caller cannot stop: the provider
    # answers and bills. The row said only the prompt estimate (100 in, 0 out) and the rate limiter kept that too;
    # the answer's own usage (10 in, 2 out, as the upstream reports it) was thrown away with the answer.
    import asyncio

    from helpers.scripted_anthropic import ScriptedAnthropic
    from tokenomy.resilience.ratelimit import RateLimiter

    upstream = ScriptedAnthropic()
    upstream.hold = threading.Event()  # Claude answers once the call was cancelled, not after a time to beat
    limiter = RateLimiter(tpm=10_000, clock=lambda: 0.0)  # a stopped clock: the bucket holds only what is settled
    with ServerThread(upstream.app) as url, pytest.MonkeyPatch.context() as env:
        env.setenv("ANTHROPIC_API_KEY", "unused")
        spec = {
            "claude": ModelSpec(name="claude", provider="anthropic", model="claude-sonnet-4-5-20250929", base_url=url)
        }

        async def main() -> None:
            with Tokenomy(ledger_path, models=spec, policy=CallPolicy(limiter=limiter)) as client:
                call = asyncio.ensure_future(client.achat(ChatRequest.simple("x" * 400, model="claude", max_tokens=50)))
                while not upstream.requests:  # cancelled once Claude has the request
                    await asyncio.sleep(0.01)
                call.cancel()
                with pytest.raises(asyncio.CancelledError):
                    await call
                upstream.hold.set()

        asyncio.run(main())  # the client's close waits for the thread's answer
    [row] = open_store(ledger_path).events()
    assert len(upstream.requests) == 1 and (row.outcome, row.error_type) == ("cancelled", "CallCancelled")
    assert (row.input_tokens, row.output_tokens) == (10, 2)  # what the provider billed, not the estimate
    assert row.cost_usd == compute_cost(Usage(10, 2), "claude-sonnet-4-5-20250929").total_usd
    assert limiter._tokens == 10_000 - 12


def test_a_call_cancelled_while_still_queued_for_a_worker_thread_sent_nothing_and_records_nothing(server, ledger_path):
    # Every worker thread busy (asyncio's default executor has min(32, CPUs + 4)): the call waited for one and was
    # cancelled before it got it. Nothing went out, yet a row at the prompt estimate said the provider billed it.
    import asyncio
    import concurrent.futures
    import threading

    from tokenomy.resilience.ratelimit import RateLimiter

    limiter = RateLimiter(tpm=10_000, clock=lambda: 0.0)

    async def main() -> None:
        asyncio.get_running_loop().set_default_executor(concurrent.futures.ThreadPoolExecutor(1))
        busy = threading.Event()
        blocker = asyncio.get_running_loop().run_in_executor(None, busy.wait, 5)
        with Tokenomy(ledger_path, models=models(a=server.url), policy=CallPolicy(limiter=limiter)) as client:
            call = asyncio.ensure_future(client.achat(ChatRequest.simple("x" * 400, model="a", max_tokens=5)))
            while limiter._tokens == 10_000:  # its allowance taken: the provider call is queued behind the busy one
                await asyncio.sleep(0.01)
            call.cancel()
            with pytest.raises(asyncio.CancelledError):
                await call
            busy.set()
            await blocker

    asyncio.run(main())
    assert server.calls == 0 and open_store(ledger_path).events() == []
    assert limiter._tokens == 10_000  # its allowance is back


@pytest.mark.slow
def test_abandoned_stream_is_recorded_as_cancelled_with_estimated_tokens(ledger_path):
    """A caller that stops reading mid-stream still leaves a priced ledger row: the provider billed it."""
    request = ChatRequest.simple("Count from one to twenty in words.", model="local", max_tokens=40)
    with Tokenomy(ledger_path) as client:
        chunks = client.stream(request)
        received = [next(chunks) for _ in range(3)]
        chunks.close()
    assert all(c.response is None for c in received)
    rows = open_store(ledger_path).query("SELECT outcome, error_type, input_tokens, output_tokens FROM usage_events")
    assert len(rows) == 1
    row = rows[0]
    assert row["outcome"] == "cancelled" and row["error_type"] == "StreamAbandoned"
    assert row["input_tokens"] > 0 and 1 <= row["output_tokens"] <= 3


def test_an_abandoned_stream_is_priced_at_the_prompt_counts_its_start_gave(ledger_path, monkeypatch):
    """Claude's message_start counts the prompt (fresh input, cache reads and writes): a stream abandoned after it
    was recorded at the prompt estimate, all at the input price, a cached 30,000-token prompt at 10x what it cost
    (Claude Code's interrupted turns). Its row now has Claude's own counts, priced per token type."""
    from tokenomy.emulate.anthropic_api import create_app as create_anthropic
    from tokenomy.emulate.instant_engine import InstantEngine
    from tokenomy.emulate.prompt_cache import PromptCache

    monkeypatch.setenv("CLAUDE_KEY", "unused")
    model = "claude-sonnet-4-5-20250929"
    system = "Clause: refunds are paid within thirty days of the request. " * 2000
    with ServerThread(create_anthropic(engine=InstantEngine(cache=PromptCache()))) as url:
        spec = {"c": ModelSpec(name="c", provider="anthropic", model=model, base_url=url, api_key_env="CLAUDE_KEY")}
        with Tokenomy(ledger_path, models=spec) as client:
            client.chat(ChatRequest.simple("hi", model="c", system=system, max_tokens=5))  # writes the cache
            chunks = client.stream(
                ChatRequest.simple("A long story, please.", model="c", system=system, max_tokens=2000)
            )
            first = next(chunks)
            chunks.close()
    start = first.start_usage
    assert start is not None and start.cache_read_tokens > 20_000
    row = next(e for e in open_store(ledger_path).events() if e.outcome == "cancelled")
    assert (row.input_tokens, row.cache_read_tokens, row.cache_write_tokens) == (
        start.input_tokens,
        start.cache_read_tokens,
        start.cache_write_tokens,
    )
    counted = Usage(start.input_tokens, row.output_tokens, start.cache_read_tokens, start.cache_write_tokens)
    assert row.cost_usd == compute_cost(counted, model, one_call=True).total_usd


@pytest.mark.slow
def test_local_cache_hits_priced_as_a_model_without_caching_are_billed_as_input(ledger_path):
    """The local KV cache reuses a prefix; Mixtral on Bedrock has no prompt caching, so it bills it all as input."""
    mixtral = "mistral.mixtral-8x7b-instruct-v0:1"
    spec = {"cheap": ModelSpec(name="cheap", provider="local", model="local", region="local", price_as=mixtral)}
    with Tokenomy(ledger_path, models=spec) as client:
        answers = [
            client.chat(ChatRequest.simple(q, model="cheap", system=LONG_SYSTEM, max_tokens=4))
            for q in ("Refund time for class 3?", "Refund time for class 5?")
        ]
    second = answers[1]
    assert second.usage.cache_read_tokens > 0  # the local model did reuse its KV cache
    billed = Usage(second.usage.total_input_tokens, second.usage.output_tokens)
    assert second.cost_usd == compute_cost(billed, mixtral).total_usd > 0


@pytest.mark.parametrize(
    "request_",
    [
        ChatRequest(
            messages=[Message("user", "hi"), Message("user", "again", cache_point="1h")], model="m", max_tokens=5
        ),
        # An Anthropic caller's top-level cache_control, a pass-through field the provider's own check is asked without
        ChatRequest.simple("hi", model="m", max_tokens=5, extra={"cache_control": {"type": "ephemeral", "ttl": "1h"}}),
    ],
    ids=["message", "top-level"],
)
def test_a_one_hour_cache_point_to_an_api_without_one_is_refused_unsent_naming_it(request_, ledger_path):
    """A library call asking a 1-hour cache point of an OpenAI-format model is refused before any call, for what its
    API lacks (never sent as a 5-minute point), named where the caller put it, as the gateway refuses it."""
    spec = ModelSpec(name="m", provider="openai", model="gpt-4o-mini", base_url="http://127.0.0.1:9/v1")  # unreached
    with Tokenomy(ledger_path, models={"m": spec}) as client:
        for call in (client.chat, lambda r: list(client.stream(r))):
            with pytest.raises(ProviderError) as caught:
                call(request_)
            assert caught.value.kind == "client_error" and caught.value.status == 400 and caught.value.unsent
            where = "cache_control" if request_.extra else "messages[1]"
            assert f'a 1-hour cache point (ttl "1h" at `{where}`): this API has no 1-hour prompt cache' in str(
                caught.value
            ), str(caught.value)


@pytest.mark.parametrize(
    "provider, model",
    [("anthropic", "claude-sonnet-4-5-20250929"), ("bedrock", "anthropic.claude-3-5-sonnet-20240620-v1:0")],
)
def test_a_participant_name_is_refused_by_apis_without_one(provider, model, ledger_path):
    """OpenAI's per-message `name` has no place in the Messages API or Converse: refused naming it, not dropped."""
    url = "http://127.0.0.1:9"  # never reached: the request is refused before any call
    spec = ModelSpec(name="m", provider=provider, model=model, base_url=url, endpoint_url=url, region="us-east-1")
    request = ChatRequest(
        messages=[Message("user", "hi"), Message("assistant", "hello"), Message("user", "again", name="bob")],
        model="m",
        max_tokens=5,
    )
    with Tokenomy(ledger_path, models={"m": spec}) as client:
        for call in (client.chat, lambda r: list(client.stream(r))):
            with pytest.raises(ProviderError) as caught:
                call(request)
            assert caught.value.kind == "client_error" and caught.value.status == 400
            # Refused by the provider's check (`Provider.refusal`), as the gateway refuses it, before its mapping
            said = str(caught.value)
            assert "cannot take field `messages[2].name`" in said and model in said and caught.value.unsent


def unsigned_reasoning_history(model: str) -> ChatRequest:
    """Five turns whose fourth (messages[3]) sends back reasoning no model signed (an OpenAI caller's
    reasoning_content), which Claude refuses on Bedrock and on Anthropic's API."""
    return ChatRequest(
        messages=[
            Message("user", "hi"),
            Message("assistant", "hello"),
            Message("user", "again"),
            Message("assistant", [ReasoningBlock("Let me think."), TextBlock("Sure.")]),
            Message("user", "and now?"),
        ],
        model=model,
        max_tokens=5,
    )


@pytest.mark.parametrize(
    "provider, model",
    [("anthropic", "claude-sonnet-4-5-20250929"), ("bedrock", "anthropic.claude-3-5-sonnet-20240620-v1:0")],
)
def test_what_claudes_mapping_refuses_is_refused_unsent_and_named_where_the_caller_put_it(
    provider, model, server, ledger_path
):
    # A library caller's request is checked by the provider's mapping only at call time: with the route's max_turns
    # cutting the two oldest turns, the refusal named messages[1], a place of what was sent, not of the request.
    # The mapping's checks (`Provider.mapping_refusal`) are now asked before the provider is called, as the gateway
    # asks them, and the refusal is named as the caller sent it.
    url = "http://127.0.0.1:9"  # never reached: the request is refused before any call
    specs = {
        **models(b=server.url),
        "m": ModelSpec(name="m", provider=provider, model=model, base_url=url, endpoint_url=url, region="us-east-1"),
    }
    cut = CallPolicy(tokens=token_policy.TokenPolicy(max_turns=3))
    request = unsigned_reasoning_history("m")
    with Tokenomy(ledger_path, models=specs) as client:
        for call in (lambda r: client.chat(r, policy=cut), lambda r: list(client.stream(r, policy=cut))):
            with pytest.raises(ProviderError) as caught:
                call(request)
            refused = caught.value
            assert (refused.kind, refused.status, refused.param) == ("client_error", 400, "messages[3].content[0]")
            assert str(refused).startswith("messages[3].content[0]: ") and "signed" in str(refused)
        client.chat(request, policy=replace(cut, fallback=("b",)))  # a fallback takes it
    assert server.calls == 1  # the fallback's answer: nothing went to the model that refused
    rows = [(e.model, e.outcome, e.cost_usd) for e in sorted(open_store(ledger_path).events(), key=lambda e: e.ts)]
    assert rows == [(model, "client_error", 0)] * 3 + [("b", "ok", rows[-1][2])]  # one $0 row per refusal


def empty_turn_history(model: str) -> ChatRequest:
    """Five turns whose fourth (messages[3]) is only empty text: Claude's API and Converse refuse such a message."""
    return ChatRequest(
        messages=[
            Message("user", "hi"),
            Message("assistant", "hello"),
            Message("user", "again"),
            Message("assistant", [TextBlock("")]),
            Message("user", "and now?"),
        ],
        model=model,
        max_tokens=5,
    )


@pytest.mark.parametrize("provider", ["anthropic", "bedrock"])
def test_what_the_api_refuses_of_a_message_is_refused_unsent_and_a_fallback_takes_it(
    provider, server, ledger_path, monkeypatch
):
    # The provider's general check (`Provider.refusal`: a message of nothing but empty text, ...) was not asked of a
    # library call to Claude or Converse: the API was called, refused it with a 400 that ended the call, and no
    # fallback was tried. It is now asked before the call, as the gateway asks it, and named as the caller sent it.
    from tokenomy.emulate.anthropic_api import create_app as create_anthropic
    from tokenomy.emulate.instant_engine import InstantEngine

    monkeypatch.setenv("CLAUDE_KEY", "unused")
    app = create_anthropic(engine=InstantEngine()) if provider == "anthropic" else create_app()
    seen: list[str] = []

    async def counted(scope, receive, send):  # the requests that reached the API
        if scope["type"] == "http":
            seen.append(scope["path"])
        await app(scope, receive, send)

    cut = CallPolicy(tokens=token_policy.TokenPolicy(max_turns=3))
    request = empty_turn_history("m")
    with ServerThread(counted) as url:
        model = "claude-sonnet-4-5-20250929" if provider == "anthropic" else SONNET
        specs = {
            **models(b=server.url),
            "m": ModelSpec(
                name="m",
                provider=provider,
                model=model,
                base_url=url,
                endpoint_url=url,
                region="us-east-1",
                api_key_env="CLAUDE_KEY",
            ),
        }
        with Tokenomy(ledger_path, models=specs) as client:
            for call in (lambda r: client.chat(r, policy=cut), lambda r: list(client.stream(r, policy=cut))):
                with pytest.raises(ProviderError) as caught:
                    call(request)
                refused = caught.value
                assert (refused.kind, refused.status) == ("client_error", 400) and refused.unsent
                said = str(refused)  # named where the caller put it (messages[1] of what was sent)
                assert "cannot take `messages[3]`, a message with no content" in said and model in said
            answer = client.chat(request, policy=replace(cut, fallback=("b",)))  # a fallback takes it
    assert seen == [] and answer.text == "ok" and server.calls == 1
    rows = [(e.model, e.outcome, e.cost_usd) for e in sorted(open_store(ledger_path).events(), key=lambda e: e.ts)]
    assert rows == [(model, "client_error", 0)] * 3 + [("b", "ok", rows[-1][2])]  # one $0 row per refusal


@pytest.mark.parametrize(
    "field, request_",
    [
        (
            "tool_choice",
            ChatRequest(
                messages=[
                    Message("user", "weather?"),
                    Message("assistant", [ToolUseBlock("c1", "weather", {})]),
                    Message("user", [ToolResultBlock("c1", [TextBlock("sunny")])]),
                ],
                model="m",
                max_tokens=5,
                tools=[ToolSpec("weather")],
                tool_choice=ToolChoice("none"),
            ),
        ),
        (
            "requestMetadata.k",
            ChatRequest.simple("hi", model="m", max_tokens=5, extra={"requestMetadata": {"k": "no!"}}),
        ),
    ],
)
def test_a_field_converse_has_no_place_for_is_refused_before_its_provider_is_called(field, request_, ledger_path):
    """Asked by `_check_inputs` of the request as the attempt sends it: before, nothing asked it there, and the
    provider's mapping refused it only once called."""
    url = "http://127.0.0.1:9"
    spec = ModelSpec(name="m", provider="bedrock", model=SONNET, endpoint_url=url, region="us-east-1")
    with Tokenomy(ledger_path, models={"m": spec}) as client:
        call = client._begin(request_, None, "on_demand", stream=False)
        tier = call.tiers[0]
        target = client._target(call, tier, tier.plan.first())
        with pytest.raises(ProviderError) as caught:
            client._check_inputs(target)
    assert caught.value.param == field and str(caught.value).startswith(f"{field}: Bedrock Converse")
    assert caught.value.unsent


def test_truncated_history_does_not_open_with_results_of_calls_it_cut(server, ledger_path):
    """max_turns cutting between a tool call and its result: the orphaned result turn goes too (every provider
    refuses a tool result whose call is not in the turn before)."""
    policy = CallPolicy(tokens=token_policy.TokenPolicy(max_turns=3))
    history = [
        Message("user", "weather in Paris?"),
        Message("assistant", [ToolUseBlock("c1", "weather", {})]),
        Message("user", [ToolResultBlock("c1", [TextBlock("sunny")])]),
        Message("assistant", "It is sunny."),
        Message("user", "and tomorrow?"),
    ]
    with Tokenomy(ledger_path, models=models(a=server.url)) as client:
        client.chat(ChatRequest(messages=history, model="a", max_tokens=5, tools=[ToolSpec("weather")]), policy=policy)
    assert [m["role"] for m in server.bodies[0]["messages"]] == ["user"]
    assert server.bodies[0]["messages"][0]["content"] == "and tomorrow?"


def test_a_call_that_timed_out_after_its_request_went_out_is_recorded_at_its_estimated_prompt(ledger_path):
    # The server had the request and was still working on it (billing it) when the SDK's read timeout passed: the
    # row said 0 tokens at $0, and the retry that was answered was all the call was charged.
    server = ScriptedOpenAI([(200, {}, "late")])  # silent 1.5 s; the retry is answered at once
    spec = ModelSpec(
        name="a",
        provider="openai",
        model="a",
        base_url=server.url,
        price_as="gpt-4o-mini",
        options=(("timeout_s", 0.5),),
    )
    policy = CallPolicy(retry=RetryPolicy(max_attempts=2, base_delay_s=0))
    try:
        with Tokenomy(ledger_path, models={"a": spec}) as client:
            answer = client.chat(ChatRequest.simple("x" * 400, model="a", max_tokens=5), policy=policy)
    finally:
        server.close()
    rows = sorted(open_store(ledger_path).events(), key=lambda e: e.attempt)
    assert [(e.outcome, e.input_tokens, e.output_tokens) for e in rows] == [("timeout", 100, 0), ("ok", 1000, 10)]
    assert rows[0].cost_usd == compute_cost(Usage(100, 0), "gpt-4o-mini").total_usd > 0
    assert answer.call_cost_usd == rows[0].cost_usd + rows[1].cost_usd


@pytest.mark.parametrize(
    "asked, cost", [(None, "0.000208"), ("flex", "0.000104"), ("priority", "0.000364"), ("fast", "0.000364")]
)
def test_a_stream_cut_off_at_a_dearer_tier_is_estimated_at_that_tiers_price(asked, cost, server, ledger_path):
    """A stream that breaks off has no answer saying the tier it was served at: its estimate was priced at the
    standard tier, though OpenAI bills the tier asked for (the gateway reserves it there too). It is now priced at the
    tier asked for ("fast" is priority). o3 per 1M tokens (openai.yaml): standard $2 in / $8 out, flex $1 / $4,
    priority $3.50 / $14; the estimate is 100 prompt tokens (400 characters) and 1 output token (one delta)."""
    from decimal import Decimal

    server.script.append((200, {}, "cut"))
    specs = {"a": ModelSpec(name="a", provider="openai", model="o3", base_url=server.url)}
    extra = {"service_tier": asked} if asked else {}
    with Tokenomy(ledger_path, models=specs) as client:
        with pytest.raises(ProviderError):
            list(client.stream(ChatRequest.simple("x" * 400, model="a", max_tokens=5, extra=extra)))
    [row] = open_store(ledger_path).events()
    assert (row.outcome, row.input_tokens, row.output_tokens) == ("server_error", 100, 1)
    assert row.cost_usd == Decimal(cost)
    assert row.tags.get("service_tier") == {"flex": "flex", "priority": "priority", "fast": "priority"}.get(asked)


def test_a_cut_off_stream_at_a_tier_its_model_publishes_no_price_of_is_estimated_at_the_standard_price(
    server, ledger_path
):
    """gpt-4o publishes priority prices but no flex ones (openai.yaml): a cut-off flex stream's estimate was $0 marked
    unpriced, where the gateway reserves it at the standard price. It is estimated at the standard price, $2.50 in /
    $10 out per 1M: 100 prompt tokens (400 characters) and 1 output token (one delta)."""
    from decimal import Decimal

    server.script.append((200, {}, "cut"))
    specs = {"a": ModelSpec(name="a", provider="openai", model="gpt-4o", base_url=server.url)}
    with Tokenomy(ledger_path, models=specs) as client:
        with pytest.raises(ProviderError):
            list(client.stream(ChatRequest.simple("x" * 400, model="a", max_tokens=5, extra={"service_tier": "flex"})))
    [row] = open_store(ledger_path).events()
    assert (row.outcome, row.input_tokens, row.output_tokens) == ("server_error", 100, 1)
    assert row.cost_usd == Decimal("0.00026") == (100 * Decimal("2.50") + 1 * Decimal(10)) / 1_000_000
    assert row.priced_by != "unpriced"
    assert "service_tier" not in row.tags


@pytest.mark.parametrize("streamed", [False, True])
def test_a_claude_call_anthropic_served_at_priority_is_recorded_at_that_tier(streamed, ledger_path, tmp_path, caplog):
    """Anthropic's usage names the tier that served a call (`service_tier`: "standard", or "priority" for an
    organisation with Priority Tier capacity). The recorder read only an OpenAI-format answer's tier: a priority call
    was recorded as a standard one, untagged, at the standard list price. Anthropic publishes no per-token Priority
    Tier price (it is sold as capacity commitments at contract prices; neither its pricing page nor genai-prices has
    one): the row is tagged `service_tier: priority` and, as any tier without a published price, recorded unpriced
    with a warning; a price file giving the tier's price (the contract's) prices it at that."""
    from decimal import Decimal

    from helpers.scripted_anthropic import USAGE, ScriptedAnthropic
    from tokenomy.pricing.catalog import PriceCatalog

    model = "claude-sonnet-4-5-20250929"
    prices = tmp_path / "contract.yaml"
    prices.write_text(
        f'provider: anthropic\nsource: s\nas_of: "2026-12-01"\nmodels:\n  {model}:\n    regions:\n      global:\n'
        '        input: "3"\n        output: "15"\n'
        '        service_tiers: {priority: {input: "4", output: "20", source: "my contract", as_of: "2026-12-01"}}\n'
    )
    upstream = ScriptedAnthropic()
    upstream.usage = {**USAGE, "service_tier": "priority"}  # 10 in, 2 out
    ask = ChatRequest.simple("hi", model="claude", max_tokens=5)
    with ServerThread(upstream.app) as url, pytest.MonkeyPatch.context() as env:
        env.setenv("ANTHROPIC_API_KEY", "unused")
        spec = {"claude": ModelSpec(name="claude", provider="anthropic", model=model, base_url=url)}
        for catalog in (None, PriceCatalog.builtin().with_overrides(prices)):
            with Tokenomy(ledger_path, models=spec, catalog=catalog) as client:
                list(client.stream(ask)) if streamed else client.chat(ask)
    unpriced, contract = sorted(open_store(ledger_path).events(), key=lambda e: e.ts)
    for row in (unpriced, contract):
        assert (row.outcome, row.input_tokens, row.output_tokens) == ("ok", 10, 2)
        assert row.tags.get("service_tier") == "priority"
    assert (unpriced.priced_by, unpriced.cost_usd) == ("unpriced", 0)
    assert "no priority service-tier price" in caplog.text
    # its fix is a price file: the option that prices another tier is the `cost` command's, not the recorder's
    assert "TOKENOMY_PRICES" in caplog.text and "--service-tier" not in caplog.text
    assert contract.cost_usd == (10 * Decimal(4) + 2 * Decimal(20)) / 1_000_000


@pytest.mark.parametrize(
    "messages, where, said",
    [
        (  # the history cut after the assistant's call: the result answers nothing before it
            [Message("user", "weather in Paris?"), Message("user", [ToolResultBlock("c1", [TextBlock("sunny")])])],
            "messages[1].content[0].tool_use_id",
            "answering tool call `c1`",
        ),
        (  # the call's result never sent: the user moved on
            [
                Message("user", "weather in Paris?"),
                Message("assistant", [TextBlock("Checking."), ToolUseBlock("c1", "weather", {})]),
                Message("user", "never mind: Rome?"),
            ],
            "messages[1].content[1]",
            "tool call `c1`",
        ),
    ],
)
def test_an_unpaired_tool_result_or_call_is_refused_before_any_attempt(messages, where, said, server, ledger_path):
    # A library caller's unpaired result went to the model, and each fallback, each refusing it with a 400 named in
    # its API's terms. Refused before any attempt, as the gateway refuses it, named where the caller put it.
    import asyncio

    request = ChatRequest(messages=messages, model="a", max_tokens=5, tools=[ToolSpec("weather")])
    policy = CallPolicy(fallback=("b",))

    async def collected(chunks):
        return [chunk async for chunk in chunks]

    with Tokenomy(ledger_path, models=models(a=server.url, b=server.url)) as client:
        calls = (
            lambda: client.chat(request, policy=policy),
            lambda: list(client.stream(request, policy=policy)),
            lambda: asyncio.run(client.achat(request, policy=policy)),
            lambda: asyncio.run(collected(client.astream(request, policy=policy))),
        )
        for call in calls:
            with pytest.raises(ProviderError) as caught:
                call()
            refused = caught.value
            assert (refused.kind, refused.status, refused.refused.where) == ("client_error", 400, where)
            assert said in str(refused) and f"`{where}`" in str(refused)
    assert server.calls == 0 and server.bodies == []  # no attempt, no fallback
    assert open_store(ledger_path).events() == []  # nothing was sent: no row
