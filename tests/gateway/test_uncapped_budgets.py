"""A request that sets no output cap under a budget, through the official openai client: the gateway reserved 1,024
output tokens for it, so an answer that ran longer overspent a key close to its limit (and every concurrent one did).
Now it reserves the call's true worst case (its model's context window), and caps the call at what the budget
affords when that is not covered."""

from __future__ import annotations

import asyncio
import concurrent.futures
from decimal import Decimal
from pathlib import Path

import httpx
import openai
import pytest
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse
from starlette.routing import Route

from tokenomy.config import parse_config
from tokenomy.emulate.server import ServerThread
from tokenomy.gateway.app import create_app
from tokenomy.gateway.keys import KeyStore
from tokenomy.ledger.store import open_store

HAIKU = "anthropic.claude-3-haiku-20240307-v1:0"  # $0.25 in / $1.25 out per 1M tokens, a 200,000-token window
OUTPUT_PRICE = Decimal("1.25") / 1_000_000
RUNAWAY = 100_000  # what the fake model writes when nothing stops it: $0.125 at Haiku's output price


def runaway_upstream(delay_s: float = 0.0) -> tuple[ServerThread, list[int | None]]:
    """An OpenAI-format model that writes RUNAWAY tokens unless max_tokens stops it (finish_reason length), after
    `delay_s`; with the caps it was sent."""
    caps: list[int | None] = []

    async def chat(request: Request) -> JSONResponse:
        body = await request.json()
        cap = body.get("max_tokens") or body.get("max_completion_tokens")
        caps.append(cap)
        await asyncio.sleep(delay_s)
        written = RUNAWAY if cap is None else min(cap, RUNAWAY)
        # The prompt counted as the gateway estimates it (characters / 4): this is about the output.
        prompt = sum(len(m["content"]) for m in body["messages"] if isinstance(m["content"], str)) // 4
        return JSONResponse({
            "id": "chatcmpl-runaway", "object": "chat.completion", "created": 0, "model": body["model"],
            "choices": [{"index": 0, "message": {"role": "assistant", "content": "la " * 10},
                         "finish_reason": "length" if cap is not None and cap < RUNAWAY else "stop"}],
            "usage": {"prompt_tokens": prompt, "completion_tokens": written, "total_tokens": prompt + written},
        })

    app = Starlette(routes=[Route("/v1/chat/completions", chat, methods=["POST"])])
    return ServerThread(app), caps


def gateway(upstream: str, ledger: Path, price_as: str = HAIKU, **settings) -> ServerThread:
    config = {"auth": True, "models": {"fast": {"provider": "openai", "model": "fast", "base_url": upstream + "/v1",
                                                "api_key_env": "FAST_KEY", "price_as": price_as}}}
    if settings:
        config["gateway"] = settings
    return ServerThread(create_app(parse_config(config), str(ledger)), lifespan="on")


def spent(ledger: Path, key_id: str) -> Decimal:
    return sum((e.cost_usd for e in open_store(ledger).events() if e.key_id == key_id), Decimal(0))


ASK = [{"role": "user", "content": "Tell me everything."}]


def test_an_uncapped_call_its_budget_cannot_cover_is_capped_and_says_so(ledger_path, monkeypatch):
    monkeypatch.setenv("FAST_KEY", "sk-test")
    store = KeyStore(open_store(ledger_path))
    secret, key = store.create(budget_usd=Decimal("0.05"), period="month")  # the runaway answer costs $0.125
    upstream, caps = runaway_upstream()
    with upstream as up, gateway(up, ledger_path) as url:
        client = openai.OpenAI(base_url=url + "/v1", api_key=secret, max_retries=0)
        raw = client.chat.completions.with_raw_response.create(model="fast", messages=ASK)
        reply = raw.parse()
        # Its worst case (200,000 tokens, $0.25) is more than the key has left: sent with the default cap, 8,192,
        # which the budget affords; the caller sees where the answer stopped and why.
        assert raw.headers["x-tokenomy-budget-max-tokens"] == "8192"
        assert reply.choices[0].finish_reason == "length" and reply.usage.completion_tokens == 8192
        # One with its own cap is sent as it came.
        capped = client.chat.completions.with_raw_response.create(model="fast", messages=ASK, max_tokens=50)
        assert "x-tokenomy-budget-max-tokens" not in capped.headers
    assert caps == [8192, 50]
    assert spent(ledger_path, key.key_id) <= Decimal("0.05")


def test_an_uncapped_call_its_budget_covers_is_sent_as_it_came(ledger_path, monkeypatch):
    monkeypatch.setenv("FAST_KEY", "sk-test")
    store = KeyStore(open_store(ledger_path))
    secret, key = store.create(budget_usd=Decimal("1"), period="month")  # room for its whole window ($0.25)
    upstream, caps = runaway_upstream()
    with upstream as up, gateway(up, ledger_path) as url:
        client = openai.OpenAI(base_url=url + "/v1", api_key=secret, max_retries=0)
        raw = client.chat.completions.with_raw_response.create(model="fast", messages=ASK)
        assert "x-tokenomy-budget-max-tokens" not in raw.headers
        assert raw.parse().usage.completion_tokens == RUNAWAY
    assert caps == [None]
    assert spent(ledger_path, key.key_id) == Decimal(4) * Decimal("0.25") / 1_000_000 + RUNAWAY * OUTPUT_PRICE


def test_an_uncapped_call_to_a_model_whose_window_is_not_known_is_capped_whatever_its_budget(
    ledger_path, monkeypatch
):
    monkeypatch.setenv("FAST_KEY", "sk-test")
    store = KeyStore(open_store(ledger_path))
    secret, _ = store.create(budget_usd=Decimal("100"), period="month")
    upstream, caps = runaway_upstream()
    # A price entry without a context window (a price file's may have none): no reservation bounds what its model
    # may write, so the configured cap does.
    from dataclasses import replace

    from tokenomy.pricing.catalog import PriceCatalog

    lookup = PriceCatalog.lookup
    monkeypatch.setattr(PriceCatalog, "lookup", lambda *a, **k: replace(lookup(*a, **k), context_window=None))
    with upstream as up, gateway(up, ledger_path, price_as="gemini-2.5-pro", budget_output_cap=2000) as url:
        client = openai.OpenAI(base_url=url + "/v1", api_key=secret, max_retries=0)
        raw = client.chat.completions.with_raw_response.create(model="fast", messages=ASK)
        assert raw.headers["x-tokenomy-budget-max-tokens"] == "2000"
    assert caps == [2000]


def test_concurrent_uncapped_calls_racing_for_the_last_dollars_stay_within_the_budget(ledger_path, monkeypatch):
    monkeypatch.setenv("FAST_KEY", "sk-test")
    store = KeyStore(open_store(ledger_path))
    budget = Decimal("0.015")  # one capped call (8,192 tokens, ~$0.0102) and part of another
    secret, key = store.create(budget_usd=budget, period="month")
    upstream, caps = runaway_upstream(delay_s=0.3)  # slow: every call is in flight while the others are admitted
    with upstream as up, gateway(up, ledger_path) as url:
        client = openai.OpenAI(base_url=url + "/v1", api_key=secret, max_retries=0)

        def one(_):
            try:
                raw = client.chat.completions.with_raw_response.create(model="fast", messages=ASK)
                return raw.headers.get("x-tokenomy-budget-max-tokens", "none")
            except openai.RateLimitError as exc:
                assert exc.body["code"] == "budget_exceeded", exc.body
                return 429

        with concurrent.futures.ThreadPoolExecutor(8) as pool:
            outcomes = list(pool.map(one, range(8)))
    assert spent(ledger_path, key.key_id) <= budget, outcomes
    assert None not in caps  # no call reached the model without a cap
    answered = [o for o in outcomes if o != 429]
    assert answered and 429 in outcomes, outcomes
    assert all(int(cap) >= 1024 for cap in answered), outcomes  # never cut below what was assumed before


def test_refusing_instead_of_capping_names_the_cap_the_budget_affords(ledger_path, monkeypatch):
    monkeypatch.setenv("FAST_KEY", "sk-test")
    store = KeyStore(open_store(ledger_path))
    secret, key = store.create(budget_usd=Decimal("0.05"), period="month")
    upstream, caps = runaway_upstream()
    with upstream as up, gateway(up, ledger_path, budget_output_cap=0) as url:
        client = openai.OpenAI(base_url=url + "/v1", api_key=secret, max_retries=0)
        with pytest.raises(openai.RateLimitError) as refused:
            client.chat.completions.create(model="fast", messages=ASK)
        message = refused.value.body["message"]
        assert refused.value.body["code"] == "budget_exceeded" and "sets no output cap (max_tokens)" in message
        affordable = int(message.split("Send an output cap of at most ")[1].split(" tokens (max_tokens;")[0])
        assert 39_000 < affordable < 40_000  # $0.05 at $1.25 per 1M output tokens, less the prompt
        reply = client.chat.completions.create(model="fast", messages=ASK, max_tokens=affordable)
        assert reply.usage.completion_tokens == affordable
    assert caps == [affordable]
    assert spent(ledger_path, key.key_id) <= Decimal("0.05")


def test_every_ingress_caps_an_uncapped_call_its_budget_cannot_cover(ledger_path, monkeypatch):
    monkeypatch.setenv("FAST_KEY", "sk-test")
    store = KeyStore(open_store(ledger_path))
    secret, key = store.create(budget_usd=Decimal("0.05"), period="month")
    upstream, caps = runaway_upstream()
    auth = {"authorization": f"Bearer {secret}"}
    with upstream as up, gateway(up, ledger_path) as url:
        client = openai.OpenAI(base_url=url + "/v1", api_key=secret, max_retries=0)
        raw = client.responses.with_raw_response.create(model="fast", input="Tell me everything.")
        assert raw.headers["x-tokenomy-budget-max-tokens"] == "8192"
        assert raw.parse().incomplete_details.reason == "max_output_tokens"
        converse = httpx.post(f"{url}/model/fast/converse", headers=auth, timeout=30,
                              json={"messages": [{"role": "user", "content": [{"text": "Tell me everything."}]}]})
        assert converse.status_code == 200 and converse.headers["x-tokenomy-budget-max-tokens"] == "8192"
        assert converse.json()["stopReason"] == "max_tokens"
        gemini = httpx.post(f"{url}/v1beta/models/fast:generateContent", headers={"x-goog-api-key": secret},
                            timeout=30, json={"contents": [{"role": "user", "parts": [{"text": "Tell me."}]}]})
        assert gemini.status_code == 200 and gemini.headers["x-tokenomy-budget-max-tokens"] == "8192"
        assert gemini.json()["candidates"][0]["finishReason"] == "MAX_TOKENS"
    assert caps == [8192, 8192, 8192]
    assert spent(ledger_path, key.key_id) <= Decimal("0.05")
