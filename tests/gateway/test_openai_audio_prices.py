"""Audio tokens of OpenAI's audio models are recorded at their own prices: an OpenAI-format upstream reports them in
usage (prompt_tokens_details.audio_tokens, completion_tokens_details.audio_tokens, parts of prompt_tokens and
completion_tokens, as OpenAI does), the gateway passes them on to the openai SDK, and the ledger prices them at the
model's audio rates (genai-prices' input_audio_mtok / output_audio_mtok), not at the text rates 8 to 67 times lower."""

from __future__ import annotations

import base64
from decimal import Decimal

import openai
import pytest
from genai_prices import Usage as LibraryUsage
from genai_prices import calc_price

from helpers.scripted_openai import ScriptedOpenAI
from tokenomy.chat_response import Usage
from tokenomy.config import parse_config
from tokenomy.emulate.server import ServerThread
from tokenomy.gateway.app import create_app
from tokenomy.ledger.store import open_store
from tokenomy.pricing.cost import compute_cost
from tokenomy.providers.openai_wire_read import usage_from_dict

M = Decimal(1_000_000)
WAV = b"RIFF" + bytes(64)
AUDIO_PART = {"type": "input_audio", "input_audio": {"data": base64.b64encode(WAV).decode(), "format": "wav"}}
AUDIO_USAGE = {
    "prompt_tokens": 1_200,
    "completion_tokens": 500,
    "total_tokens": 1_700,
    "prompt_tokens_details": {"cached_tokens": 0, "audio_tokens": 1_000},
    "completion_tokens_details": {"reasoning_tokens": 0, "audio_tokens": 400},
}
# gpt-audio, by hand from genai-prices' published prices (USD per 1M tokens): text $2.50 in / $10 out, audio $32 in /
# $64 out. 200 text and 1,000 audio prompt tokens; 100 text and 400 audio completion tokens.
GPT_AUDIO_INPUT = (200 * Decimal("2.50") + 1_000 * Decimal("32")) / M  # $0.0325
GPT_AUDIO_OUTPUT = (100 * Decimal("10") + 400 * Decimal("64")) / M  # $0.0266


@pytest.mark.parametrize("stream", [False, True])
def test_an_audio_call_through_the_gateway_is_recorded_at_the_audio_prices(tmp_path, monkeypatch, stream):
    monkeypatch.setenv("AUDIO_KEY", "sk-test")
    upstream = ScriptedOpenAI([])
    upstream.usage = AUDIO_USAGE
    ledger = tmp_path / "ledger.duckdb"
    config = parse_config(
        {
            "models": {
                "voice": {
                    "provider": "openai",
                    "model": "gpt-audio",
                    "base_url": upstream.url,
                    "api_key_env": "AUDIO_KEY",
                }
            }
        }
    )
    try:
        with ServerThread(create_app(config, str(ledger)), lifespan="on") as url:
            client = openai.OpenAI(base_url=url + "/v1", api_key="unused")
            # The caller's audio part reaches the upstream as it was sent (the gateway refused every input_audio
            # part to an OpenAI-format model: only Gemini's took it)
            messages = [{"role": "user", "content": [AUDIO_PART, {"type": "text", "text": "Transcribe"}]}]
            if stream:
                chunks = list(
                    client.chat.completions.create(
                        model="voice", messages=messages, stream=True, stream_options={"include_usage": True}
                    )
                )
                usage = next(c.usage for c in chunks if c.usage is not None)
            else:
                usage = client.chat.completions.create(model="voice", messages=messages).usage
    finally:
        upstream.close()
    assert [body["messages"] for body in upstream.bodies] == [messages]
    # The caller gets the audio counts as the upstream sent them
    assert usage.prompt_tokens == 1_200 and usage.completion_tokens == 500
    assert usage.prompt_tokens_details.audio_tokens == 1_000
    assert usage.completion_tokens_details.audio_tokens == 400
    [row] = open_store(str(ledger)).events()
    assert (row.input_tokens, row.output_tokens) == (1_200, 500)
    assert row.input_cost_usd == GPT_AUDIO_INPUT and row.output_cost_usd == GPT_AUDIO_OUTPUT
    assert row.cost_usd == Decimal("0.0591")
    # ... the figure genai-prices itself computes for these counts (its audio counts are parts of its totals too)
    library = calc_price(
        LibraryUsage(input_tokens=1_200, output_tokens=500, input_audio_tokens=1_000, output_audio_tokens=400),
        "gpt-audio",
        provider_id="openai",
    )
    assert row.cost_usd == library.total_price


def test_cached_prompt_audio_counts_uncached_first_and_each_part_at_its_own_price():
    """OpenAI's prompt audio count does not say how much of it was cached: as much as the uncached tokens hold is
    counted uncached (the dearer price), the rest cached. gpt-realtime-mini: text $0.60 / cached $0.06 / out $2.40,
    audio $10 / cached $0.30 / out $20 (genai-prices)."""
    usage = usage_from_dict(
        {
            "prompt_tokens": 3_000,
            "completion_tokens": 500,
            "prompt_tokens_details": {"cached_tokens": 1_000, "audio_tokens": 2_500},
            "completion_tokens_details": {"audio_tokens": 400},
        }
    )
    assert (usage.input_tokens, usage.cache_read_tokens, usage.output_tokens) == (2_000, 1_000, 500)
    assert (usage.audio_input_tokens, usage.audio_cache_read_tokens, usage.audio_output_tokens) == (2_000, 500, 400)
    cost = compute_cost(usage, "gpt-realtime-mini", one_call=True)
    assert cost.input_usd == 2_000 * Decimal("10") / M
    assert cost.cache_read_usd == (500 * Decimal("0.06") + 500 * Decimal("0.30")) / M
    assert cost.output_usd == (100 * Decimal("2.40") + 400 * Decimal("20")) / M
    assert (
        cost.total_usd
        == Decimal("0.02842")
        == calc_price(
            LibraryUsage(
                input_tokens=3_000,
                cache_read_tokens=1_000,
                output_tokens=500,
                input_audio_tokens=2_500,
                cache_audio_read_tokens=500,
                output_audio_tokens=400,
            ),
            "gpt-realtime-mini",
            provider_id="openai",
        ).total_price
    )


def test_the_audio_previews_are_priced_at_openai_audio_prices_genai_prices_lacks():
    """genai-prices lists only the text prices of gpt-4o-audio-preview and gpt-4o-mini-audio-preview; OpenAI's model
    pages bill their audio at $40 in / $80 out and $10 / $20 per 1M tokens (text $2.50 / $10 and $0.15 / $0.60)."""
    usage = Usage(1_000_000, 1_000_000, audio_input_tokens=600_000, audio_output_tokens=250_000)
    four = compute_cost(usage, "gpt-4o-audio-preview-2024-12-17")
    assert four.input_usd == Decimal("0.40") * Decimal("2.50") + Decimal("0.60") * Decimal("40")  # $25.00
    assert four.output_usd == Decimal("0.75") * Decimal("10") + Decimal("0.25") * Decimal("80")  # $27.50
    mini = compute_cost(usage, "gpt-4o-mini-audio-preview")
    assert mini.total_usd == Decimal("0.40") * Decimal("0.15") + Decimal("0.60") * Decimal("10") + Decimal(
        "0.75"
    ) * Decimal("0.60") + Decimal("0.25") * Decimal("20")  # $11.51


def test_audio_counts_past_their_whole_are_the_upstreams_fault_and_a_missing_audio_price_is_refused():
    from tokenomy.errors import ProviderError, UsageError
    from tokenomy.pricing.catalog import PriceCatalog
    from tokenomy.pricing.entry import PriceEntry

    with pytest.raises(ProviderError, match="no answer can have"):
        usage_from_dict({"prompt_tokens": 10, "completion_tokens": 5, "completion_tokens_details": {"audio_tokens": 6}})
    with pytest.raises(ProviderError, match="no answer can have"):
        usage_from_dict({"prompt_tokens": 10, "completion_tokens": 5, "prompt_tokens_details": {"audio_tokens": 11}})
    # A model that bills audio input apart but has no audio output price: its audio output is not priced as text
    entry = PriceEntry(
        "openai",
        "voice-x",
        "global",
        "voice-x",
        "test",
        "2026-12-05",
        input=Decimal(1),
        output=Decimal(2),
        input_audio=Decimal(8),
    )
    catalog = PriceCatalog([entry], use_fallback=False)
    with pytest.raises(UsageError, match=r"no audio output price.*400 audio output tokens; add output_audio"):
        compute_cost(Usage(0, 500, audio_output_tokens=400), "voice-x", catalog=catalog)
    assert (
        compute_cost(Usage(100, 500, audio_input_tokens=100), "voice-x", catalog=catalog).total_usd
        == (100 * Decimal(8) + 500 * Decimal(2)) / M
    )


def test_a_budget_reserves_a_spoken_answer_at_the_audio_output_price(tmp_path, monkeypatch):
    """A call asking for audio out (`modalities`) was reserved at the text output price: 100 tokens of GPT-4o mini
    audio's output at $0.60 per 1M (~$0.00007 with its prompt), billed at $20 per 1M as audio ($0.002), so a $0.001
    budget let it through and ended overspent twice over. A text answer of the same model is reserved as before."""
    from tokenomy.gateway.keys import KeyStore

    monkeypatch.setenv("AUDIO_KEY", "sk-test")
    upstream = ScriptedOpenAI([])
    upstream.usage = {
        "prompt_tokens": 20,
        "completion_tokens": 100,
        "total_tokens": 120,
        "completion_tokens_details": {"reasoning_tokens": 0, "audio_tokens": 100},
    }
    ledger = tmp_path / "ledger.duckdb"
    secret, _ = KeyStore(open_store(ledger)).create(budget_usd=Decimal("0.001"), period="month")
    model = {"provider": "openai", "model": "gpt-4o-mini-audio-preview", "base_url": upstream.url}
    config = parse_config({"auth": True, "models": {"voice": {**model, "api_key_env": "AUDIO_KEY"}}})
    ask = {"model": "voice", "messages": [{"role": "user", "content": "Say hi"}], "max_tokens": 100}
    try:
        with ServerThread(create_app(config, str(ledger)), lifespan="on") as url:
            client = openai.OpenAI(base_url=url + "/v1", api_key=secret, max_retries=0)
            with pytest.raises(openai.RateLimitError, match="Budget exhausted") as refused:
                client.chat.completions.create(
                    **ask, modalities=["text", "audio"], audio={"voice": "alloy", "format": "wav"}
                )
            upstream.usage = {"prompt_tokens": 20, "completion_tokens": 100, "total_tokens": 120}
            client.chat.completions.create(**ask)  # text out: reserved at the text price, within the budget
    finally:
        upstream.close()
    assert refused.value.code == "budget_exceeded"
    assert [body.get("modalities") for body in upstream.bodies] == [None]  # the spoken one was never sent
