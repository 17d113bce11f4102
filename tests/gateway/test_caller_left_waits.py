"""A whole (not streamed) call whose caller leaves while the gateway waits to try it again (the upstream's
Retry-After, a backoff, the route's rate limiter): nothing more is sent for nobody, the call slot and the route
limiter's allowance are given back, and the key's budget holds only what the ledger says was billed."""

from __future__ import annotations

import asyncio
import time
from decimal import Decimal

import anthropic
import httpx
import openai
import pytest

from helpers import stand_in_aws_keys
from helpers.scripted_openai import ScriptedOpenAI
from tokenomy.config import parse_config
from tokenomy.emulate.server import ServerThread
from tokenomy.gateway.app import create_app
from tokenomy.gateway.keys import KeyStore, period_start
from tokenomy.gateway.limits import to_nano
from tokenomy.ledger.store import open_store

HAIKU = "anthropic.claude-3-haiku-20240307-v1:0"
ASK = [{"role": "user", "content": "x" * 400}]
pytestmark = pytest.mark.filterwarnings("ignore:The model .* is deprecated:DeprecationWarning")


def counter(key) -> str:
    return f"key:{key.key_id}:{period_start('month').date()}"


def ended(url: str, series: str) -> str:
    """/metrics once it counts `series` (the call whose caller left has ended)."""
    deadline = time.monotonic() + 10
    while series not in (metrics := httpx.get(url + "/metrics").text):
        assert time.monotonic() < deadline, metrics
        time.sleep(0.05)
    return metrics


def test_an_embeddings_call_whose_caller_left_while_it_waited_to_retry_is_not_sent_again(ledger_path):
    # The upstream answered 429 with Retry-After: 1, and the caller (the openai SDK, timing out) closed its connection
    # during that wait. The embeddings route slept on and sent the input again (billed for nobody, taking one more of
    # the route's requests per minute); as a chat call does, it now asks whether the caller is there after the wait
    # and ends the call unsent, a 499 in /metrics, the route limiter's request given back.
    upstream = ScriptedOpenAI([(429, {"retry-after": "1"}), (429, {"retry-after": "1"})])
    secret, key = KeyStore(open_store(ledger_path)).create(budget_usd=Decimal("1"), period="month")
    models = {"embed": {"provider": "openai", "model": "text-embedding-3-small", "base_url": upstream.url}}
    route = {"model": "embed", "retry": {"max_attempts": 2}, "rate_limit": {"requests_per_minute": 2}}
    app = create_app(parse_config({"auth": True, "models": models, "routes": {"vectors": route}}), str(ledger_path))
    try:
        with ServerThread(app, lifespan="on") as url:
            gateway = app.state.gateway
            caller = openai.OpenAI(base_url=url + "/v1", api_key=secret, max_retries=0, timeout=0.5)
            with pytest.raises(openai.APITimeoutError):
                caller.embeddings.create(model="vectors", input="x" * 400)
            metrics = ended(url, 'tokenomy_requests_total{model="vectors"')
            time.sleep(1.5)  # a retry still to come would be sent by now
            limiter = gateway.policies["vectors"].limiter
            charged = asyncio.run(gateway.limits.spent(counter(key)))
            held = any(gateway.budgets.open.values())
    finally:
        upstream.close()
    assert upstream.calls == 1  # it was 2: the retry ran after the caller had gone
    assert 'tokenomy_requests_total{model="vectors",status="499"} 1.0' in metrics, metrics
    rows = open_store(ledger_path).events()
    assert [r.outcome for r in rows] == ["throttled"]
    assert limiter.wait_s() == 0  # of its 2 requests a minute, the one sent is counted: the unsent one was given back
    assert not held and charged == sum(to_nano(r.cost_usd) for r in rows)


@pytest.mark.parametrize("api", ["chat", "embeddings"])
def test_a_caller_who_leaves_during_a_retry_after_frees_the_call_slot_at_once(api, ledger_path):
    # The upstream answered 429 with Retry-After: 20 and the caller (the openai SDK, timing out) closed its connection.
    # Nothing more was sent, but the gateway slept the whole 20 s before it noticed, holding its call slot (here the
    # only one, max_inflight 1) and the key's reservation: every caller behind it waited for nobody. The wait now
    # ends when the caller's connection closes, so the next request is served at once.
    upstream = ScriptedOpenAI([(429, {"retry-after": "20"})])
    secret, key = KeyStore(open_store(ledger_path)).create(budget_usd=Decimal("1"), period="month")
    models = {
        "up": {"provider": "openai", "model": "up", "base_url": upstream.url, "price_as": HAIKU},
        "embed": {"provider": "openai", "model": "text-embedding-3-small", "base_url": upstream.url},
    }
    name = "waits-" + api  # its own metrics
    routes = {name: {"model": "up" if api == "chat" else "embed", "retry": {"max_attempts": 2}}}
    config = {"auth": True, "gateway": {"max_inflight": 1}, "models": models, "routes": routes}
    app = create_app(parse_config(config), str(ledger_path))
    try:
        with ServerThread(app, lifespan="on") as url:
            gateway = app.state.gateway
            leaving = openai.OpenAI(base_url=url + "/v1", api_key=secret, max_retries=0, timeout=0.5)
            with pytest.raises(openai.APITimeoutError):
                if api == "chat":
                    leaving.chat.completions.create(model=name, max_tokens=100, messages=ASK)
                else:
                    leaving.embeddings.create(model=name, input="x" * 400)
            left = time.monotonic()
            patient = openai.OpenAI(base_url=url + "/v1", api_key=secret, max_retries=0, timeout=10)
            answer = patient.chat.completions.create(model="up", max_tokens=100, messages=ASK)
            served_in = time.monotonic() - left
            metrics = ended(url, f'tokenomy_requests_total{{model="{name}"')
            charged = asyncio.run(gateway.limits.spent(counter(key)))
            held = any(gateway.budgets.open.values())
    finally:
        upstream.close()
    assert answer.choices[0].message.content == "ok"
    assert served_in < 2, served_in  # it was 20 s: the slot was held through the Retry-After for a caller long gone
    assert upstream.calls == 2  # the 429, then the patient caller's call: nothing more for the one who left
    assert f'tokenomy_requests_total{{model="{name}",status="499"}} 1.0' in metrics, metrics
    rows = open_store(ledger_path).events()
    assert sorted(r.outcome for r in rows) == ["ok", "throttled"]
    assert not held and charged == sum(to_nano(r.cost_usd) for r in rows) > 0  # the answered call only


@pytest.mark.parametrize("api", ["chat", "embeddings"])
def test_a_caller_who_leaves_during_the_route_limiters_wait_frees_the_call_slot_at_once(api, ledger_path):
    # The route allows one request a minute, taken by a first call (answered 429, not retried); a second caller (the
    # openai SDK, timing out) left while the gateway waited the minute for the limiter. The wait was asked about the
    # caller only at its end: the call slot (here the only one, max_inflight 1) and the key's reservation were held a
    # minute for nobody. The limiter's wait now ends when the caller's connection closes, taking nothing, and nothing
    # is sent.
    upstream = ScriptedOpenAI([(429, {})])
    secret, key = KeyStore(open_store(ledger_path)).create(budget_usd=Decimal("1"), period="month")
    models = {
        "up": {"provider": "openai", "model": "up", "base_url": upstream.url, "price_as": HAIKU},
        "embed": {"provider": "openai", "model": "text-embedding-3-small", "base_url": upstream.url},
    }
    name = "limited-" + api  # its own metrics
    tight = {
        "model": "up" if api == "chat" else "embed",
        "retry": {"max_attempts": 1, "deadline_s": 120},
        "rate_limit": {"requests_per_minute": 1},
    }
    config = {"auth": True, "gateway": {"max_inflight": 1}, "models": models, "routes": {name: tight}}
    app = create_app(parse_config(config), str(ledger_path))

    def call(client):
        if api == "chat":
            return client.chat.completions.create(model=name, max_tokens=100, messages=ASK)
        return client.embeddings.create(model=name, input="x" * 400)

    try:
        with ServerThread(app, lifespan="on") as url:
            gateway = app.state.gateway
            patient = openai.OpenAI(base_url=url + "/v1", api_key=secret, max_retries=0, timeout=10)
            with pytest.raises(openai.RateLimitError):
                call(patient)  # the route's one request this minute
            leaving = openai.OpenAI(base_url=url + "/v1", api_key=secret, max_retries=0, timeout=0.5)
            with pytest.raises(openai.APITimeoutError):
                call(leaving)
            left = time.monotonic()
            answer = patient.chat.completions.create(model="up", max_tokens=100, messages=ASK)
            served_in = time.monotonic() - left
            metrics = ended(url, f'tokenomy_requests_total{{model="{name}",status="499"')
            limiter = gateway.policies[name].limiter
            charged = asyncio.run(gateway.limits.spent(counter(key)))
            held = any(gateway.budgets.open.values())
    finally:
        upstream.close()
    assert answer.choices[0].message.content == "ok"
    assert served_in < 2, served_in  # it was a minute: the slot was held through the limiter's wait for nobody
    assert upstream.calls == 2  # the 429 and the patient call: nothing for the caller who left
    assert f'tokenomy_requests_total{{model="{name}",status="499"}} 1.0' in metrics, metrics
    assert limiter.wait_s() > 50  # the first call's request is still counted; the departed caller took nothing
    assert limiter._sent.total == 1
    rows = open_store(ledger_path).events()
    assert [r.outcome for r in rows] == ["throttled", "ok"]
    assert not held and charged == sum(to_nano(r.cost_usd) for r in rows) > 0


def test_a_bedrock_request_of_several_calls_whose_caller_left_gives_back_all_its_unsent_calls(ledger_path, monkeypatch):
    # Titan embeds one text a call: three texts are three InvokeModel calls, which the route's limiter counts as three
    # requests. Bedrock throttled the first attempt and the caller (the openai SDK, timing out) left during the wait
    # before the retry; the retry, granted its three requests, ended unsent, but gave back only one of them: two
    # requests nobody sent stayed counted against the route's minute. All three are given back now.
    from tokenomy.emulate.bedrock_runtime import create_app as create_bedrock

    stand_in_aws_keys(monkeypatch)
    bedrock = create_bedrock(throttle_rate=1.0, retry_after=20)
    secret, _ = KeyStore(open_store(ledger_path)).create()
    model = {"provider": "bedrock", "model": "amazon.titan-embed-text-v2:0", "region": "us-east-1"}
    route = {"model": "titan", "retry": {"max_attempts": 2}, "rate_limit": {"requests_per_minute": 6}}
    with ServerThread(bedrock) as bedrock_url:
        model["endpoint_url"] = bedrock_url
        config = {"auth": True, "models": {"titan": model}, "routes": {"titan-vectors": route}}
        app = create_app(parse_config(config), str(ledger_path))
        with ServerThread(app, lifespan="on") as url:
            # Leaves once the first attempt has surely failed (its three calls to a local server), in the 20 s wait.
            caller = openai.OpenAI(base_url=url + "/v1", api_key=secret, max_retries=0, timeout=2)
            with pytest.raises(openai.APITimeoutError):
                caller.embeddings.create(model="titan-vectors", input=["one", "two", "three"])
            metrics = ended(url, 'tokenomy_requests_total{model="titan-vectors",status="499"')
            limiter = app.state.gateway.policies["titan-vectors"].limiter
    # The first attempt's calls, throttled; the retry sent nothing. Calls still unbegun when the first throttle came
    # back are not sent either (on a busy machine, the third), and the attempt gives their requests back.
    sent = bedrock.state.emulator.calls
    assert 1 <= sent <= 3, sent
    assert 'tokenomy_requests_total{model="titan-vectors",status="499"} 1.0' in metrics, metrics
    # The first attempt's sent calls are counted; the retry's are not.
    assert limiter._sent.total == sent, limiter._sent.total  # it was sent + 2: two of the retry's unsent calls kept
    assert limiter.wait_s(requests=3) == 0


@pytest.mark.parametrize("api", ["chat", "messages"])
def test_a_stream_whose_caller_left_before_or_after_its_first_byte_is_a_499_in_metrics(api, ledger_path):
    # A streamed call whose caller (its SDK, timing out) left during the upstream's Retry-After is stopped by Starlette
    # before its first byte: it was counted nowhere in /metrics, nor was a stream its caller closed after three events.
    # Both are 499s now, as a whole call whose caller left is (chat completions has its own stream; the other APIs
    # share call_stream.call_streamed, here /v1/messages).
    words = tuple(f"w{i} " for i in range(8))
    upstream = ScriptedOpenAI([(429, {"retry-after": "20"}), (200, {}, "slow")], reply=words)
    models = {"up": {"provider": "openai", "model": "up", "base_url": upstream.url, "price_as": HAIKU}}
    before, after = f"before-{api}", f"after-{api}"  # their own metrics
    routes = {before: {"model": "up", "retry": {"max_attempts": 2}}, after: {"model": "up"}}
    app = create_app(parse_config({"models": models, "routes": routes}), str(ledger_path))

    def stream(name: str, timeout: float):
        if api == "chat":
            chat = openai.OpenAI(base_url=url + "/v1", api_key="k", max_retries=0, timeout=timeout)
            return chat.chat.completions.create(model=name, messages=ASK, max_tokens=100, stream=True)
        messages = anthropic.Anthropic(base_url=url, api_key="k", max_retries=0, timeout=timeout)
        return messages.messages.create(model=name, messages=ASK, max_tokens=100, stream=True)

    try:
        with ServerThread(app, lifespan="on") as url:
            with pytest.raises((openai.APITimeoutError, anthropic.APITimeoutError)):
                stream(before, 0.5)
            cut = stream(after, 10)
            assert len([event for event, _ in zip(cut, range(3), strict=False)]) == 3
            cut.close()
            ended(url, f'tokenomy_requests_total{{model="{before}"')
            metrics = ended(url, f'tokenomy_requests_total{{model="{after}"')
    finally:
        upstream.close()
    assert upstream.calls == 2  # the 429, then the stream cut midway: nothing more for the callers who left
    assert f'tokenomy_requests_total{{model="{before}",status="499"}} 1.0' in metrics, metrics
    assert f'tokenomy_requests_total{{model="{after}",status="499"}} 1.0' in metrics, metrics
    rows = open_store(ledger_path).events()
    assert [r.outcome for r in rows] == ["throttled", "cancelled"], rows  # the stream cut midway is in the ledger
