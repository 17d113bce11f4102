"""A caller that goes away mid-call: the ledger row, the key's budget and the rate limiter all end at what the
provider billed for the call, and agree with each other."""

from __future__ import annotations

import asyncio
import json
import socket
import threading
import time
from decimal import Decimal

import anthropic
import httpx
import openai
import pytest

from helpers.scripted_anthropic import ScriptedAnthropic
from helpers.scripted_openai import ScriptedOpenAI
from tokenomy.config import parse_config
from tokenomy.emulate.server import ServerThread
from tokenomy.gateway.app import create_app
from tokenomy.gateway.keys import KeyStore, period_start
from tokenomy.gateway.limits import to_nano
from tokenomy.ledger.store import open_store

SONNET = "claude-sonnet-4-5-20250929"
HAIKU = "anthropic.claude-3-haiku-20240307-v1:0"
ASK = [{"role": "user", "content": "x" * 400}]
pytestmark = pytest.mark.filterwarnings("ignore:The model .* is deprecated:DeprecationWarning")


async def sent(upstream: ScriptedAnthropic) -> None:
    """Return once the upstream has the request."""
    for _ in range(500):
        if upstream.requests:
            return
        await asyncio.sleep(0.01)
    raise AssertionError("the request never reached the upstream")


def counter(key) -> str:
    return f"key:{key.key_id}:{period_start('month').date()}"


@pytest.mark.parametrize("path", ["/v1/chat/completions", "/v1/messages"])
def test_a_call_cancelled_while_its_sdk_thread_runs_settles_ledger_and_budget_at_the_answer(path, ledger_path):
    # The gateway's handler is cancelled (here its task, on the ASGI app; in `serve`, by the graceful shutdown's end)
    # while the Anthropic SDK waits for Claude in a worker thread, which runs on: Claude answers and bills. The row
    # had only the prompt estimate and the budget kept the whole reservation (max_tokens' worth).
    upstream = ScriptedAnthropic()
    upstream.hold = threading.Event()  # Claude answers once the call was cancelled, not after a time to beat
    secret, key = KeyStore(open_store(ledger_path)).create(budget_usd=Decimal("1"), period="month")
    with ServerThread(upstream.app) as url, pytest.MonkeyPatch.context() as env:
        env.setenv("ANTHROPIC_API_KEY", "unused")
        model = {"provider": "anthropic", "model": SONNET, "base_url": url}
        app = create_app(parse_config({"auth": True, "models": {"claude": model}}), str(ledger_path))

        async def main() -> int | None:
            async with app.router.lifespan_context(app):
                gateway = app.state.gateway
                transport = httpx.ASGITransport(app=app)
                async with httpx.AsyncClient(transport=transport, base_url="http://gateway") as http:
                    call = asyncio.ensure_future(
                        http.post(
                            path,
                            headers={"authorization": f"Bearer {secret}"},
                            json={"model": "claude", "max_tokens": 1000, "messages": ASK},
                        )
                    )
                    await sent(upstream)
                    call.cancel()  # while Claude is still working on it
                    with pytest.raises(asyncio.CancelledError):
                        await call
                    upstream.hold.set()
            # The gateway stopped: it waited for the thread's answer before closing its ledger and budgets.
            return await gateway.limits.spent(counter(key))

        charged = asyncio.run(main())
    [row] = open_store(ledger_path).events()
    assert len(upstream.requests) == 1 and (row.outcome, row.key_id) == ("cancelled", key.key_id)
    assert (row.input_tokens, row.output_tokens) == (10, 2)  # Claude's own count
    assert charged == to_nano(row.cost_usd) > 0  # the budget counts what the ledger says, not max_tokens' worth


def leave_a_stream(api: str, url: str, secret: str) -> None:
    """Read three pieces of the answer, then close the connection."""
    if api == "chat":
        chat = openai.OpenAI(base_url=url + "/v1", api_key=secret, max_retries=0)
        stream = chat.chat.completions.create(model="up", messages=ASK, max_tokens=1000, stream=True)
        pieces = [chunk for chunk, _ in zip(stream, range(3), strict=False)]
    else:
        messages = anthropic.Anthropic(base_url=url, api_key=secret, max_retries=0)
        stream = messages.messages.create(model="up", messages=ASK, max_tokens=1000, stream=True)
        pieces = [event for event, _ in zip(stream, range(3), strict=False)]
    assert len(pieces) == 3
    stream.close()


@pytest.mark.parametrize("api, counters", [("chat", "memory"), ("messages", "memory"), ("chat", "redis")])
def test_a_stream_the_client_leaves_settles_its_budget_at_the_cost_its_ledger_row_records(
    api, counters, ledger_path, request
):
    # Never overspent, but the whole reservation (the prompt and max_tokens of output) stayed counted for a stream the
    # ledger records at its estimate (the prompt and the pieces generated): a budget filled far faster than it spent.
    # With Redis the settlement awaits the network, where the disconnect's cancellation would stop it midway.
    upstream = ScriptedOpenAI([(200, {}, "slow")], reply=tuple(f"w{i} " for i in range(8)))
    secret, key = KeyStore(open_store(ledger_path)).create(budget_usd=Decimal("1"), period="month")
    redis_url = request.getfixturevalue("redis_url") if counters == "redis" else None
    config = {
        "auth": True,
        "redis_url": redis_url,
        "models": {"up": {"provider": "openai", "model": "up", "base_url": upstream.url, "price_as": HAIKU}},
    }
    app = create_app(parse_config(config), str(ledger_path))
    try:
        with ServerThread(app, lifespan="on") as url:
            leave_a_stream(api, url, secret)
            gateway = app.state.gateway
            deadline = time.monotonic() + 5
            while time.monotonic() < deadline and (any(gateway.budgets.open.values()) or gateway.settling):
                time.sleep(0.02)  # the stream wound up and its settlement ended
            if redis_url is None:
                charged = asyncio.run(gateway.limits.spent(counter(key)))
            else:  # read with a client of this thread's own (the gateway's is bound to its event loop)
                import redis

                charged = int(redis.Redis.from_url(redis_url).get(f"tokenomy:spend:{counter(key)}"))
    finally:
        upstream.close()
    [row] = open_store(ledger_path).events()
    assert (row.outcome, row.error_type) == ("cancelled", "StreamAbandoned") and row.output_tokens >= 1
    assert charged == to_nano(row.cost_usd) > 0


def test_calls_to_an_sdk_provider_run_as_many_at_once_as_the_gateway_admits(tmp_path):
    """The Anthropic, Bedrock and Gemini providers call their SDKs in worker threads. asyncio's default pool has
    min(32, cores + 4) of them (6 here): a gateway admitting 256 calls ran 6 at a time, the rest queued unseen."""
    # Each answer waits until all 16 are in (or 30 s passed), not 0.3 s: on a loaded machine 16 requests may take
    # longer than that to arrive, though the gateway runs them all at once.
    upstream = ScriptedAnthropic()
    upstream.hold = threading.Event()
    with ServerThread(upstream.app) as claude:
        config = parse_config({"models": {"claude": {"provider": "anthropic", "model": SONNET, "base_url": claude}}})
        with ServerThread(create_app(config, str(tmp_path / "ledger.duckdb")), lifespan="on") as url:

            async def many() -> list[int]:
                async with httpx.AsyncClient(timeout=90) as client:
                    body = {"model": "claude", "max_tokens": 8, "messages": [{"role": "user", "content": "hi"}]}
                    calls = [asyncio.ensure_future(client.post(url + "/v1/messages", json=body)) for _ in range(16)]
                    deadline = time.monotonic() + 30
                    while upstream.inflight < 16 and time.monotonic() < deadline:
                        await asyncio.sleep(0.01)
                    upstream.hold.set()
                    replies = await asyncio.gather(*calls)
                return [r.status_code for r in replies]

            assert asyncio.run(many()) == [200] * 16
    assert upstream.peak == 16, upstream.peak


@pytest.mark.parametrize("path", ["/v1/chat/completions", "/v1/embeddings"])
def test_a_call_cancelled_before_its_request_left_the_gateway_costs_nothing(path, ledger_path, monkeypatch):
    # The pooled upstream's one connection is busy with another call, so this one waits for it; the caller leaves
    # first. Nothing went out, yet its row said the provider billed the prompt estimate, and the key's budget was
    # charged that much.
    import functools

    from tokenomy.gateway import state
    from tokenomy.gateway.upstream import AsyncOpenAIUpstream

    monkeypatch.setattr(state, "AsyncOpenAIUpstream", functools.partial(AsyncOpenAIUpstream, pool=1))
    upstream = ScriptedOpenAI([(200, {}, "held")])
    secret, key = KeyStore(open_store(ledger_path)).create(budget_usd=Decimal("1"), period="month")
    model = {"provider": "openai", "model": "up", "base_url": upstream.url, "price_as": HAIKU}
    embed = {"provider": "openai", "model": "text-embedding-3-small", "base_url": upstream.url}  # the same pool
    app = create_app(parse_config({"auth": True, "models": {"up": model, "embed": embed}}), str(ledger_path))

    async def main() -> int:
        async with app.router.lifespan_context(app):
            gateway = app.state.gateway
            transport = httpx.ASGITransport(app=app)
            async with httpx.AsyncClient(transport=transport, base_url="http://gateway", timeout=30) as http:
                body = {"model": "up", "max_tokens": 100, "messages": ASK}
                headers = {"authorization": f"Bearer {secret}"}
                first = asyncio.ensure_future(http.post("/v1/chat/completions", headers=headers, json=body))
                while not upstream.received.is_set():  # the first call holds the pool's one connection
                    await asyncio.sleep(0.01)
                asked = body if path.endswith("completions") else {"model": "embed", "input": "x" * 400}
                second = asyncio.ensure_future(http.post(path, headers=headers, json=asked))
                await asyncio.sleep(0.3)  # admitted, and waiting for the connection
                second.cancel()
                with pytest.raises(asyncio.CancelledError):
                    await second
                upstream.released.set()
                assert (await first).status_code == 200
            for _ in range(100):  # the cancelled call's settlement runs in a task of its own
                if not gateway.settling:
                    break
                await asyncio.sleep(0.02)
            return await gateway.limits.spent(counter(key))

    try:
        charged = asyncio.run(main())
    finally:
        upstream.close()
    rows = open_store(ledger_path).events()
    assert upstream.calls == 1 and [(r.outcome, r.input_tokens) for r in rows] == [("ok", 1000)]
    assert charged == to_nano(rows[0].cost_usd) > 0  # the answered call only


@pytest.mark.parametrize("path", ["/v1/chat/completions", "/v1/messages", "/v1/embeddings"])
def test_a_request_whose_caller_left_while_it_waited_for_a_call_slot_is_never_sent(path, ledger_path):
    # The gateway at capacity (max_inflight 1, held by another call): two requests wait for the slot, and the first's
    # caller gives up and closes its connection meanwhile. When the slot came, its call was sent all the same: the
    # provider answered and billed it, the budget paid for it, and nobody read the answer (at capacity, every caller
    # that timed out and retried left one more such call in the queue). The caller who waits is served.
    upstream = ScriptedOpenAI([(200, {}, "held")])
    secret, key = KeyStore(open_store(ledger_path)).create(budget_usd=Decimal("1"), period="month")
    models = {
        "up": {"provider": "openai", "model": "up", "base_url": upstream.url, "price_as": HAIKU},
        "embed": {"provider": "openai", "model": "text-embedding-3-small", "base_url": upstream.url},
    }
    app = create_app(parse_config({"auth": True, "gateway": {"max_inflight": 1}, "models": models}), str(ledger_path))
    headers = {"authorization": f"Bearer {secret}", "x-api-key": secret}
    chat = {"model": "up", "max_tokens": 100, "messages": ASK}
    asked = {"model": "embed", "input": "x" * 400} if path == "/v1/embeddings" else chat
    statuses: list[int] = []

    def call(to: str, body: dict) -> threading.Thread:
        thread = threading.Thread(
            target=lambda: statuses.append(httpx.post(to, json=body, headers=headers, timeout=60).status_code)
        )
        thread.start()
        return thread

    def queued(count: int) -> None:
        deadline = time.monotonic() + 30
        while gateway.guard.waiting < count and time.monotonic() < deadline:
            time.sleep(0.01)
        assert gateway.guard.waiting == count

    try:
        with ServerThread(app, lifespan="on") as url:
            gateway = app.state.gateway
            first = call(url + "/v1/chat/completions", chat)
            assert upstream.received.wait(30)  # the one call slot is taken
            body = json.dumps(asked).encode()
            head = f"POST {path} HTTP/1.1\r\nhost: gateway\r\ncontent-type: application/json\r\n"
            head += "".join(f"{name}: {value}\r\n" for name, value in headers.items())
            with socket.create_connection(("127.0.0.1", int(url.rsplit(":", 1)[1]))) as caller:
                caller.sendall(f"{head}content-length: {len(body)}\r\n\r\n".encode() + body)
                queued(1)
                patient = call(url + "/v1/chat/completions", chat)
                queued(2)
            time.sleep(0.5)  # the first queued caller has left: the gateway hears its connection close
            upstream.release()
            first.join(30), patient.join(30)
            deadline = time.monotonic() + 30
            while (gateway.guard.slots.locked() or any(gateway.budgets.open.values())) and time.monotonic() < deadline:
                time.sleep(0.05)
            charged = asyncio.run(gateway.limits.spent(counter(key)))
    finally:
        upstream.close()
    rows = open_store(ledger_path).events()
    assert statuses == [200, 200] and upstream.calls == 2 and [r.outcome for r in rows] == ["ok", "ok"]
    assert charged == sum(to_nano(r.cost_usd) for r in rows)  # the answered calls only: nothing held for the other


@pytest.mark.parametrize("path", ["/v1/chat/completions", "/v1/messages"])
def test_a_call_whose_caller_left_while_it_waited_to_retry_is_not_sent_again(path, ledger_path):
    # The upstream answered 503 with Retry-After: 1, and the caller gave up and closed its connection during that wait.
    # The gateway still slept, sent the call again and again (a streamed call stops when its caller leaves): each
    # retry is billed for nobody, and one after a read timeout went on the key's budget too. It now asks whether
    # the caller is there before a retry and after a wait, and ends the call unsent (a 499 in /metrics).
    upstream = ScriptedOpenAI([(503, {"retry-after": "1"}), (503, {"retry-after": "1"})])
    name = "retried-" + path.rsplit("/", 1)[1]  # its own metrics
    models = {name: {"provider": "openai", "model": "up", "base_url": upstream.url, "price_as": HAIKU}}
    routes = {name: {"model": name, "retry": {"max_attempts": 3}}}
    app = create_app(parse_config({"models": models, "routes": routes}), str(ledger_path))
    body = json.dumps({"model": name, "max_tokens": 100, "messages": ASK}).encode()
    try:
        with ServerThread(app, lifespan="on") as url:
            head = f"POST {path} HTTP/1.1\r\nhost: gateway\r\ncontent-type: application/json\r\nx-api-key: k\r\n"
            with socket.create_connection(("127.0.0.1", int(url.rsplit(":", 1)[1]))) as caller:
                caller.sendall(f"{head}content-length: {len(body)}\r\n\r\n".encode() + body)
                deadline = time.monotonic() + 30
                while upstream.calls < 1 and time.monotonic() < deadline:
                    time.sleep(0.01)
                time.sleep(0.2)  # the first attempt's 503 is in: the gateway waits its Retry-After
            deadline = time.monotonic() + 10  # the call ends (its status counted), or retried twice within 2.5 s
            while f'model="{name}"' not in (metrics := httpx.get(url + "/metrics").text):
                assert time.monotonic() < deadline
                time.sleep(0.05)
            time.sleep(1.5)  # a retry still to come would be sent by now
    finally:
        upstream.close()
    assert upstream.calls == 1  # it was 3: the Retry-After waits and both retries ran for a caller long gone
    assert [r.outcome for r in open_store(ledger_path).events()] == ["server_error"]
    assert f'tokenomy_requests_total{{model="{name}",status="499"}} 1.0' in metrics, metrics
