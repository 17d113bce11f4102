"""Audio input through the gateway's Gemini API is recorded at Gemini's audio price: the google-genai SDK sends an
audio part, the Gemini emulator reports the prompt's audio apart (usageMetadata.promptTokensDetails, modality
AUDIO, as Google does), and the ledger prices those tokens at the model's audio rate."""

from __future__ import annotations

from decimal import Decimal

import pytest
from google import genai
from google.genai import types

from tokenomy.caching.placement import DOCUMENT_TOKENS
from tokenomy.config import parse_config
from tokenomy.emulate.gemini_api import create_app as create_gemini
from tokenomy.emulate.instant_engine import InstantEngine
from tokenomy.emulate.server import ServerThread
from tokenomy.gateway.app import create_app
from tokenomy.ledger.store import open_store


@pytest.fixture(autouse=True)
def no_google_env(monkeypatch):
    for key in ("GEMINI_API_KEY", "GOOGLE_API_KEY"):
        monkeypatch.delenv(key, raising=False)


def test_a_gemini_call_with_audio_is_recorded_at_the_audio_price(tmp_path) -> None:
    ledger = tmp_path / "ledger.duckdb"
    with ServerThread(create_gemini(engine=InstantEngine())) as gemini:
        config = parse_config(
            {"models": {"g": {"provider": "gemini", "model": "gemini-2.5-flash", "base_url": gemini}}}
        )
        with ServerThread(create_app(config, str(ledger)), lifespan="on") as url:
            client = genai.Client(api_key="unused", http_options={"base_url": url})
            audio = types.Part.from_bytes(data=b"RIFF" + bytes(64), mime_type="audio/wav")
            reply = client.models.generate_content(model="g", contents=[audio, "Transcribe"])
    assert "[audio/wav, 68 bytes]" in reply.text  # the emulator read the audio, and counted it as audio
    [row] = open_store(str(ledger)).events()
    text = row.input_tokens - DOCUMENT_TOKENS
    assert text > 0 and row.cache_read_tokens == 0
    # $1.00 per 1M audio tokens and $0.30 per 1M text tokens (Gemini 2.5 Flash), not $0.30 for all of them
    assert row.input_cost_usd == (DOCUMENT_TOKENS * Decimal("1.00") + text * Decimal("0.30")) / 1_000_000


def test_audio_sent_by_uri_is_recorded_at_the_audio_price(tmp_path) -> None:
    """Audio by URI (a Files API upload: fileData) is audio as inline audio is: Gemini reports it under the AUDIO
    modality by its MIME type. The emulator counted only inline audio as audio, so the gateway priced it as text."""
    ledger = tmp_path / "ledger.duckdb"
    with ServerThread(create_gemini(engine=InstantEngine())) as gemini:
        config = parse_config(
            {"models": {"g": {"provider": "gemini", "model": "gemini-2.5-flash", "base_url": gemini}}}
        )
        with ServerThread(create_app(config, str(ledger)), lifespan="on") as url:
            client = genai.Client(api_key="unused", http_options={"base_url": url})
            audio = types.Part.from_uri(
                file_uri="https://generativelanguage.googleapis.com/v1beta/files/abc", mime_type="audio/mpeg"
            )
            reply = client.models.generate_content(model="g", contents=[audio, "Transcribe"])
    assert reply.usage_metadata.prompt_tokens_details[-1] == types.ModalityTokenCount(
        modality="AUDIO", token_count=DOCUMENT_TOKENS
    )
    [row] = open_store(str(ledger)).events()
    text = row.input_tokens - DOCUMENT_TOKENS
    assert row.input_cost_usd == (DOCUMENT_TOKENS * Decimal("1.00") + text * Decimal("0.30")) / 1_000_000


def test_the_gemini_answer_passes_on_the_per_modality_counts_gemini_sent(tmp_path) -> None:
    """usageMetadata's promptTokensDetails and candidatesTokensDetails (audio apart from text) reach the caller as
    Gemini sent them, whole and streamed; the gateway's answer left them out, though it priced the audio by them."""
    with ServerThread(create_gemini(engine=InstantEngine())) as gemini:
        config = parse_config(
            {"models": {"g": {"provider": "gemini", "model": "gemini-2.5-flash", "base_url": gemini}}}
        )
        with ServerThread(create_app(config, str(tmp_path / "ledger.duckdb")), lifespan="on") as url:
            client = genai.Client(api_key="unused", http_options={"base_url": url})
            direct = genai.Client(api_key="unused", http_options={"base_url": gemini})
            audio = types.Part.from_bytes(data=b"RIFF" + bytes(64), mime_type="audio/wav")
            asked = {"model": "g", "contents": [audio, "Transcribe"]}
            sent = direct.models.generate_content(**{**asked, "model": "gemini-2.5-flash"}).usage_metadata
            whole = client.models.generate_content(**asked).usage_metadata
            streamed = list(client.models.generate_content_stream(**asked))[-1].usage_metadata
    prompt = [
        types.ModalityTokenCount(modality="TEXT", token_count=sent.prompt_token_count - DOCUMENT_TOKENS),
        types.ModalityTokenCount(modality="AUDIO", token_count=DOCUMENT_TOKENS),
    ]
    assert sent.prompt_tokens_details == prompt and sent.candidates_tokens_details
    for usage in (whole, streamed):
        assert usage.prompt_token_count == sent.prompt_token_count
        assert usage.prompt_tokens_details == prompt
        assert usage.candidates_tokens_details == sent.candidates_tokens_details
        assert usage.candidates_tokens_details[0].token_count == usage.candidates_token_count


def test_cached_audio_is_read_from_cache_tokens_details_and_taken_out_of_the_uncached_audio() -> None:
    """Gemini's prompt count (and its AUDIO detail) includes the cached tokens; cacheTokensDetails says which of
    those were audio, so 1,000 prompt audio tokens of which 600 cached are 400 uncached and 600 cached audio."""
    from tokenomy.providers.gemini_parts_read import usage_from_gemini

    meta = types.GenerateContentResponseUsageMetadata.model_validate(
        {
            "promptTokenCount": 1_500,
            "cachedContentTokenCount": 800,
            "candidatesTokenCount": 10,
            "promptTokensDetails": [
                {"modality": "TEXT", "tokenCount": 500},
                {"modality": "AUDIO", "tokenCount": 1_000},
            ],
            "cacheTokensDetails": [{"modality": "TEXT", "tokenCount": 200}, {"modality": "AUDIO", "tokenCount": 600}],
        }
    )
    usage = usage_from_gemini(meta)
    assert (usage.input_tokens, usage.cache_read_tokens) == (700, 800)
    assert (usage.audio_input_tokens, usage.audio_cache_read_tokens) == (400, 600)


def test_a_budget_reserves_audio_at_the_audio_price_so_an_audio_call_cannot_overspend_it(tmp_path) -> None:
    """The reservation priced a prompt's audio at the text price: 1,500 audio tokens to Gemini 2.0 Flash ($0.70 per
    1M, $0.10 for text) were reserved at ~$0.00015 and billed ~$0.00105, so a $0.0005 budget let the call through and
    ended overspent twice over (and N concurrent audio calls overspent it N times the gap)."""
    from google.genai import errors

    from tokenomy.gateway.keys import KeyStore

    ledger = tmp_path / "ledger.duckdb"
    secret, _ = KeyStore(open_store(ledger)).create(budget_usd=Decimal("0.0005"), period="month")
    with ServerThread(create_gemini(engine=InstantEngine())) as gemini:
        config = parse_config(
            {"auth": True, "models": {"g": {"provider": "gemini", "model": "gemini-2.0-flash", "base_url": gemini}}}
        )
        with ServerThread(create_app(config, str(ledger)), lifespan="on") as url:
            client = genai.Client(api_key=secret, http_options={"base_url": url})
            # ~1,500 audio tokens by its size (500 bytes a token), as the emulator bills any audio part
            audio = types.Part.from_bytes(data=b"RIFF" + bytes(750_000), mime_type="audio/wav")
            small = types.GenerateContentConfig(max_output_tokens=10)
            with pytest.raises(errors.ClientError, match="Budget exhausted") as refused:
                client.models.generate_content(model="g", contents=[audio, "Transcribe"], config=small)
            # text alone is reserved at the text price, as before
            client.models.generate_content(model="g", contents="Transcribe", config=small)
    assert refused.value.code == 429
    [row] = open_store(str(ledger)).events()  # the text call only: the audio one was never sent
    assert row.cost_usd < Decimal("0.0005")
