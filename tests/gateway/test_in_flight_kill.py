"""A gateway killed (SIGKILL, the OOM killer) while calls are in flight: the upstream answered and billed them, so
the next start records each at its estimate (outcome `interrupted`) and the budget counts it."""

from __future__ import annotations

import asyncio
import base64
import concurrent.futures
import json
import subprocess
import time
from datetime import UTC, datetime, timedelta
from decimal import Decimal

import openai
import pytest

from helpers import free_port, start_gateway
from helpers.counting_openai import CountingOpenAI
from tokenomy.chat_response import Usage
from tokenomy.emulate.gemini_api import create_app as create_gemini
from tokenomy.emulate.instant_engine import InstantEngine
from tokenomy.emulate.server import ServerThread
from tokenomy.gateway.keys import KeyStore
from tokenomy.ledger.store import open_store
from tokenomy.pricing.cost import compute_cost

HAIKU = "anthropic.claude-3-haiku-20240307-v1:0"
MESSAGES = [{"role": "user", "content": "y" * 400}]


# "priority": chat calls asked at OpenAI's priority tier were replayed at the standard price, not priority's
@pytest.mark.parametrize("api", ["chat", "priority", "embeddings"])
def test_calls_in_flight_when_the_gateway_is_sigkilled_are_in_the_ledger_and_the_budget_after_restart(api, tmp_path):
    ledger = tmp_path / "ledger.duckdb"
    keys = KeyStore(open_store(ledger))
    secret, key = keys.create(budget_usd=Decimal(1), period="month")
    port = free_port()
    server = CountingOpenAI(delay_s=3.0)
    with server as upstream:
        config = tmp_path / "tokenomy.yaml"
        priced_as = {"chat": HAIKU, "priority": "gpt-4o", "embeddings": "text-embedding-3-small"}[api]
        slow = {
            "provider": "openai",
            "model": "slow",
            "base_url": upstream,
            "api_key_env": "SLOW_KEY",
            "price_as": priced_as,
        }
        config.write_text(json.dumps({"auth": True, "models": {"slow": slow}}))

        def serve() -> subprocess.Popen:
            return start_gateway(config, port, ledger, {"SLOW_KEY": "x"})

        proc = serve()
        try:
            client = openai.OpenAI(base_url=f"http://127.0.0.1:{port}/v1", api_key=secret, max_retries=0, timeout=30)

            def one(_) -> str:
                try:
                    if api != "embeddings":
                        tier = {"service_tier": "priority"} if api == "priority" else {}
                        client.chat.completions.create(model="slow", messages=MESSAGES, max_tokens=200, **tier)
                    else:
                        client.embeddings.create(model="slow", input=["y" * 400, "z" * 400])
                    return "answered"
                except openai.APIConnectionError:
                    return "cut"

            with concurrent.futures.ThreadPoolExecutor(4) as pool:
                assert list(pool.map(one, range(2))) == ["answered"] * 2  # their rows supersede their entries
                results = pool.map(one, range(4))
                deadline = time.monotonic() + 20
                while server.calls < 6 and time.monotonic() < deadline:
                    time.sleep(0.02)
                assert server.calls == 6
                proc.kill()  # the four calls are at the upstream, which answers (and bills) them
                proc.wait(10)
                assert list(results) == ["cut"] * 4
            time.sleep(3.5)  # the upstream has answered all four by now
            proc = serve()  # replays the journal
            proc.terminate()
            proc.wait(30)
        finally:
            if proc.poll() is None:
                proc.kill()
                proc.wait(10)
    rows = [e for e in open_store(ledger).events() if e.key_id == key.key_id]
    assert len(rows) == server.calls == 6  # every call the upstream answered (and billed) has its row
    assert sorted(e.outcome for e in rows) == ["interrupted"] * 4 + ["ok"] * 2
    assert len({e.event_id for e in rows}) == 6
    cut = [e for e in rows if e.outcome == "interrupted"]
    assert all(e.model == "slow" and e.provider == "openai" and e.input_tokens > 0 and e.cost_usd > 0 for e in cut)
    # priced at the restart, as the model's price_as, as the attempt's own row would have been: its prompt's estimate
    tier = "priority" if api == "priority" else "standard"
    for e in cut:
        expected = compute_cost(Usage(input_tokens=e.input_tokens), priced_as, one_call=True, service_tier=tier)
        assert (e.cost_usd, e.input_cost_usd, e.output_tokens, e.priced_by) == (
            expected.total_usd, expected.input_usd, 0, expected.priced_by)  # fmt: skip
    # what the gateway's budget is seeded with at its next start: the four calls' estimates
    since = datetime.now(UTC) - timedelta(days=1)
    assert keys.spent("key_id", key.key_id, since) == sum((e.cost_usd for e in rows), Decimal(0)) > 0
    assert not list((tmp_path / "ledger.duckdb.journal").glob("*.jsonl"))  # replayed and cleaned up


def test_a_gemini_call_with_audio_in_flight_at_a_kill_is_replayed_with_its_audio_at_the_audio_price(
    tmp_path, monkeypatch
):
    """The in-flight entry carries the prompt's audio estimate (its audio parts, as the estimate counts them), so the
    replayed row prices it at the model's audio rate (Gemini 2.5 Flash $1.00 per 1M against $0.30 for text); the
    entry had only the prompt's whole estimate, replayed as text."""
    for key in ("GEMINI_API_KEY", "GOOGLE_API_KEY"):
        monkeypatch.delenv(key, raising=False)
    ledger = tmp_path / "ledger.duckdb"
    port = free_port()
    reached = []

    def slow(app):
        async def held(scope, receive, send):  # the emulator answers (and bills) a call 3 s after it came
            if scope["type"] == "http" and "generateContent" in scope["path"]:
                reached.append(scope["path"])
                await asyncio.sleep(3)
            await app(scope, receive, send)

        return held

    audio = base64.b64encode(bytes(50_000)).decode()  # 101 tokens of audio by the estimate (500 bytes a token, +1)
    asked = [
        {
            "role": "user",
            "content": [
                {"type": "input_audio", "input_audio": {"data": audio, "format": "wav"}},
                {"type": "text", "text": "Transcribe"},
            ],
        }
    ]
    with ServerThread(slow(create_gemini(engine=InstantEngine()))) as gemini:
        config = tmp_path / "tokenomy.yaml"
        config.write_text(
            json.dumps({"models": {"g": {"provider": "gemini", "model": "gemini-2.5-flash", "base_url": gemini}}})
        )
        proc = start_gateway(config, port, ledger, {})
        try:
            client = openai.OpenAI(base_url=f"http://127.0.0.1:{port}/v1", api_key="x", max_retries=0, timeout=30)
            with concurrent.futures.ThreadPoolExecutor(1) as pool:
                cut = pool.submit(client.chat.completions.create, model="g", messages=asked, max_tokens=10)
                deadline = time.monotonic() + 20
                while not reached and time.monotonic() < deadline:
                    time.sleep(0.02)
                proc.kill()
                proc.wait(10)
                with pytest.raises(openai.APIConnectionError):
                    cut.result()
            proc = start_gateway(config, port, ledger, {})  # replays the journal
            proc.terminate()
            proc.wait(30)
        finally:
            if proc.poll() is None:
                proc.kill()
                proc.wait(10)
    [row] = open_store(ledger).events()
    assert row.outcome == "interrupted" and row.audio_input_tokens == 101
    text = row.input_tokens - 101
    assert text > 0
    assert row.input_cost_usd == (101 * Decimal("1.00") + text * Decimal("0.30")) / 1_000_000
