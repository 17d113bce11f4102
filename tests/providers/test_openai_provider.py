"""The OpenAI provider end to end against llama-cpp-python's own OpenAI-compatible server."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import httpx
import pytest

from helpers.scripted_openai import ScriptedOpenAI
from tokenomy.client import Tokenomy
from tokenomy.errors import ProviderError
from tokenomy.ledger.store import open_store
from tokenomy.messages import ChatRequest
from tokenomy.providers.openai_provider import OpenAIProvider, usage_from_openai
from tokenomy.providers.registry import ModelSpec

pytestmark = pytest.mark.slow


def spec(url: str) -> dict[str, ModelSpec]:
    return {"smol": ModelSpec(name="smol", provider="openai", model="smollm2", base_url=url, price_as="gpt-4o-mini")}


def test_chat_and_stream_through_the_openai_sdk(llama_server, ledger_path):
    with Tokenomy(ledger_path, models=spec(llama_server)) as client:
        response = client.chat(ChatRequest.simple("Name a colour.", model="smol", max_tokens=6))
        chunks = list(client.stream(ChatRequest.simple("Name a fruit.", model="smol", max_tokens=6)))
    assert response.text and response.provider == "openai" and response.model == "smollm2"
    assert response.usage.input_tokens > 0 and response.usage.output_tokens > 0
    # Priced as gpt-4o-mini: $0.15 / $0.60 per million tokens.
    expected = (response.usage.input_tokens * 15 + response.usage.output_tokens * 60) / 100_000_000
    assert float(response.cost_usd) == pytest.approx(expected)
    streamed = chunks[-1].response
    assert streamed is not None and streamed.ttft_ms is not None and streamed.text
    # llama.cpp's server sends no usage in streams: the counts are estimated, and labelled so.
    assert streamed.raw["usage_source"] in ("reported", "estimated") and streamed.usage.output_tokens > 0
    events = open_store(ledger_path).events()
    assert len(events) == 2 and all(e.outcome == "ok" and e.cost_usd > 0 for e in events)


def test_unreachable_server_is_a_server_error(ledger_path):
    models = spec("http://127.0.0.1:9/v1")
    with Tokenomy(ledger_path, models=models) as client, pytest.raises(ProviderError) as info:
        client.chat(ChatRequest.simple("hi", model="smol", max_tokens=2))
    assert info.value.kind == "server_error" and info.value.retryable


def test_cached_tokens_are_split_out_of_prompt_tokens():
    from openai.types.completion_usage import CompletionUsage, PromptTokensDetails

    usage = usage_from_openai(
        CompletionUsage(
            prompt_tokens=2000,
            completion_tokens=50,
            total_tokens=2050,
            prompt_tokens_details=PromptTokensDetails(cached_tokens=1536),
        )
    )
    assert (usage.input_tokens, usage.cache_read_tokens, usage.output_tokens) == (464, 1536, 50)


def _tiered_upstream(prompt_tokens=1000):
    """An OpenAI-format server that answers at the service tier asked for, as OpenAI does (`service_tier` in the
    answer: "flex", "priority", else "default"); 1,000 prompt tokens (200 cached), 100 completion (60 reasoning)."""
    import json
    import threading
    from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

    class Handler(BaseHTTPRequestHandler):
        def log_message(self, *args):
            pass

        def do_POST(self):
            body = json.loads(self.rfile.read(int(self.headers["content-length"])))
            usage = {
                "prompt_tokens": prompt_tokens,
                "completion_tokens": 100,
                "total_tokens": prompt_tokens + 100,
                "prompt_tokens_details": {"cached_tokens": 200},
                "completion_tokens_details": {"reasoning_tokens": 60},
            }
            answer = {
                "id": "x",
                "object": "chat.completion",
                "created": 0,
                "model": body["model"],
                "service_tier": body.get("service_tier", "default"),
                "choices": [{"index": 0, "message": {"role": "assistant", "content": "ok"}, "finish_reason": "stop"}],
            }
            if body.get("stream"):
                chunks = [
                    {
                        **answer,
                        "object": "chat.completion.chunk",
                        "choices": [{"index": 0, "delta": {"content": "ok"}, "finish_reason": "stop"}],
                    },
                    {**answer, "object": "chat.completion.chunk", "choices": [], "usage": usage},
                ]
                data = b"".join(b"data: " + json.dumps(c).encode() + b"\n\n" for c in chunks) + b"data: [DONE]\n\n"
                kind = "text/event-stream"
            else:
                data, kind = json.dumps({**answer, "usage": usage}).encode(), "application/json"
            self.send_response(200)
            self.send_header("content-type", kind)
            self.send_header("content-length", str(len(data)))
            self.end_headers()
            self.wfile.write(data)

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    return server


def test_a_flex_or_priority_call_is_recorded_at_that_tiers_price(ledger_path, monkeypatch):
    """`service_tier` rides in `extra` to OpenAI, which bills the tier it served: the ledger priced every call at
    the standard tier (an o3 flex call at $2/$8 per 1M instead of $1/$4)."""
    from decimal import Decimal

    monkeypatch.setenv("OPENAI_API_KEY", "x")
    server = _tiered_upstream()
    url = f"http://127.0.0.1:{server.server_address[1]}/v1"
    try:
        models = {"o3": ModelSpec(name="o3", provider="openai", model="o3", base_url=url)}
        with Tokenomy(ledger_path, models=models) as client:
            for tier in ("flex", "priority", None):
                extra = {"service_tier": tier} if tier else {}
                client.chat(ChatRequest.simple("hi", model="o3", max_tokens=100, extra=extra))
            list(client.stream(ChatRequest.simple("hi", model="o3", max_tokens=100, extra={"service_tier": "flex"})))
    finally:
        server.shutdown()
        server.server_close()
    rows = open_store(ledger_path).events()

    # o3 per 1M tokens (openai.yaml, from OpenAI's pricing page): standard $2 in / $0.50 cached / $8 out;
    # flex $1 / $0.25 / $4; priority $3.50 / $0.875 / $14. 800 uncached + 200 cached input, 100 output.
    def price(rate_in, rate_cached, rate_out):
        return (800 * Decimal(rate_in) + 200 * Decimal(rate_cached) + 100 * Decimal(rate_out)) / 1_000_000

    assert [(r.input_tokens, r.cache_read_tokens, r.output_tokens) for r in rows] == [(800, 200, 100)] * 4
    assert [r.cost_usd for r in rows] == [
        price("1", "0.25", "4"),
        price("3.50", "0.875", "14"),
        price("2", "0.50", "8"),
        price("1", "0.25", "4"),
    ]
    assert [r.cost_usd for r in rows] == [
        Decimal("0.00125"),
        Decimal("0.004375"),
        Decimal("0.0025"),
        Decimal("0.00125"),
    ]
    assert [r.tags.get("service_tier") for r in rows] == ["flex", "priority", None, "flex"]
    assert all(r.cost_usd == r.input_cost_usd + r.output_cost_usd + r.cache_read_cost_usd for r in rows)


def _chat_and_stream_at(ledger_path, monkeypatch, model: str, tier: str) -> list:
    """The ledger's rows of one whole and one streamed call to `model` asked at service tier `tier`, answered by
    the tiered upstream (which says it served that tier)."""
    monkeypatch.setenv("OPENAI_API_KEY", "x")
    server = _tiered_upstream()
    url = f"http://127.0.0.1:{server.server_address[1]}/v1"
    try:
        models = {"m": ModelSpec(name="m", provider="openai", model=model, base_url=url)}
        with Tokenomy(ledger_path, models=models) as client:
            client.chat(ChatRequest.simple("hi", model="m", max_tokens=100, extra={"service_tier": tier}))
            list(client.stream(ChatRequest.simple("hi", model="m", max_tokens=100, extra={"service_tier": tier})))
    finally:
        server.shutdown()
        server.server_close()
    return open_store(ledger_path).events()


def test_a_fast_call_is_recorded_at_the_priority_price(ledger_path, monkeypatch):
    """OpenAI renamed priority processing "fast" and takes (and reports) either name at the same price
    (genai-prices 0.2.5: gpt-5's `fast` and `priority` variants, both $2.50 in / $0.25 cached / $20 out from
    2026-10-12; the AI SDK's 3.0.93 notes "accepts service_tier: 'fast' and 'priority' interchangeably"). An answer
    served at "fast" was recorded at the standard price, half what OpenAI bills."""
    from decimal import Decimal

    rows = _chat_and_stream_at(ledger_path, monkeypatch, "gpt-5", "fast")
    # gpt-5 priority per 1M tokens: $2.50 in / $0.25 cached / $20 out; 800 uncached + 200 cached input, 100 output
    expected = (800 * Decimal("2.50") + 200 * Decimal("0.25") + 100 * Decimal("20")) / 1_000_000
    assert [r.cost_usd for r in rows] == [expected, expected] == [Decimal("0.00405")] * 2
    assert [r.tags.get("service_tier") for r in rows] == ["priority", "priority"]


def test_an_ultrafast_call_is_recorded_at_the_ultrafast_price(ledger_path, monkeypatch):
    """OpenAI's ultrafast tier (GPT-6.2 Sol and Astra) bills 3x the standard rates through 2027-02-28 and 6x from
    2027-03-01 (genai-prices 0.2.5: GPT-6.2 Sol $6 in / $0.30 cached / $30 out, then $12 / $0.60 / $60). An answer
    served at "ultrafast" was recorded at the standard price ($2 / $0.10 / $10) and untagged."""
    from decimal import Decimal

    rows = _chat_and_stream_at(ledger_path, monkeypatch, "gpt-6.2-sol", "ultrafast")
    # 800 uncached + 200 cached input, 100 output, at the price of the day the call was made
    early = all(r.ts < datetime(2027, 3, 1, tzinfo=UTC) for r in rows)
    rate_in, rate_cached, rate_out = (
        (Decimal(6), Decimal("0.30"), Decimal(30)) if early else (Decimal(12), Decimal("0.60"), Decimal(60))
    )
    expected = (800 * rate_in + 200 * rate_cached + 100 * rate_out) / 1_000_000
    assert [r.cost_usd for r in rows] == [expected, expected]
    assert [r.tags.get("service_tier") for r in rows] == ["ultrafast", "ultrafast"]


def test_a_call_over_the_long_context_threshold_is_recorded_at_the_long_context_price(ledger_path, monkeypatch):
    """One call with a 250,000-token prompt (200 of them cached) priced as Gemini 2.5 Pro: Google bills the whole
    call at $2.50 in / $0.25 cached / $15 out per 1M over 200k prompt tokens (was $1.25 / $0.125 / $10)."""
    from decimal import Decimal

    monkeypatch.setenv("OPENAI_API_KEY", "x")
    server = _tiered_upstream(prompt_tokens=250_000)
    url = f"http://127.0.0.1:{server.server_address[1]}/v1"
    try:
        models = {"g": ModelSpec(name="g", provider="openai", model="g", base_url=url, price_as="gemini-2.5-pro")}
        with Tokenomy(ledger_path, models=models) as client:
            client.chat(ChatRequest.simple("hi", model="g", max_tokens=100))
    finally:
        server.shutdown()
        server.server_close()
    [row] = open_store(ledger_path).events()
    assert (row.input_tokens, row.cache_read_tokens, row.output_tokens) == (249_800, 200, 100)
    expected = (249_800 * Decimal("2.50") + 200 * Decimal("0.25") + 100 * Decimal("15")) / 1_000_000
    assert row.cost_usd == expected == Decimal("0.62605")


def test_the_wait_an_error_asks_for_is_read_in_every_form_servers_send() -> None:
    from email.utils import format_datetime

    from tokenomy.providers.http_faults import retry_after_seconds

    soon = format_datetime(datetime.now(UTC) + timedelta(seconds=30), usegmt=True)
    past = format_datetime(datetime.now(UTC) - timedelta(seconds=30), usegmt=True)
    assert retry_after_seconds(httpx.Headers({"Retry-After": "2"})) == 2.0
    assert retry_after_seconds(httpx.Headers({"retry-after-ms": "1500", "retry-after": "9"})) == 1.5  # ms wins
    assert 28 <= retry_after_seconds({"retry-after": soon}) <= 30  # an HTTP date (RFC 9110)
    assert retry_after_seconds({"retry-after": past}) == 0.0
    assert retry_after_seconds({"retry-after": "-3"}) == 0.0
    for junk in ("soon", "nan", "inf", "Mon, 30 Nov 2026 25:00:00"):
        assert retry_after_seconds({"retry-after": junk}) is None, junk
    assert retry_after_seconds({}) is None and retry_after_seconds(None) is None


def test_a_throttle_that_gives_its_wait_in_milliseconds_is_waited_for() -> None:
    # Azure and OpenAI send retry-after-ms; it was ignored, and with it the wait the server asked for.
    server = ScriptedOpenAI([(429, {"retry-after-ms": "2500"})])
    try:
        with pytest.raises(ProviderError) as info:
            OpenAIProvider(base_url=server.url, api_key="k").chat(ChatRequest.simple("hi", model="m", max_tokens=5))
    finally:
        server.close()
    assert (info.value.kind, info.value.retry_after) == ("throttled", 2.5)


def test_counting_tokens_is_refused_by_name_not_estimated() -> None:
    # Chat Completions, which every OpenAI-format server speaks, has no counting endpoint: an estimate returned as a
    # count would size a context wrongly with no sign of it.
    provider = OpenAIProvider(base_url="http://127.0.0.1:9/v1", api_key="k")
    with pytest.raises(ProviderError, match=r"not available for provider `openai` \(model `m`\)") as refused:
        provider.count_tokens(ChatRequest.simple("hi", model="m"))
    assert (refused.value.kind, refused.value.status, refused.value.code) == (
        "client_error",
        400,
        "counting_unavailable",
    )


def test_an_answer_that_broke_off_midway_is_billed_and_a_closed_connection_is_not() -> None:
    # The connection broke halfway through the answer's body: the server generated (and bills) it, so the attempt is
    # `reached` (recorded at its estimate), as on the Anthropic and Bedrock providers; it was "cannot reach" at $0. A
    # server that closes before any answer (the request may never have run) stays unreached.
    import json

    from helpers.cut_off import cut_off_upstream

    answer = json.dumps(
        {
            "id": "c",
            "object": "chat.completion",
            "created": 1,
            "model": "m",
            "choices": [
                {"index": 0, "message": {"role": "assistant", "content": "Hi " * 100}, "finish_reason": "stop"}
            ],
            "usage": {"prompt_tokens": 100, "completion_tokens": 100, "total_tokens": 200},
        }
    ).encode()
    request = ChatRequest.simple("hi", model="m", max_tokens=5)
    with cut_off_upstream(answer) as url:
        failures = []
        for base in (url + "/v1", url + "/silent/v1"):
            with pytest.raises(ProviderError) as failed:
                OpenAIProvider(base_url=base, api_key_env="UNSET_KEY_FOR_TEST").chat(request)
            failures.append((failed.value.kind, failed.value.reached))
    assert failures == [("server_error", True), ("server_error", False)]
