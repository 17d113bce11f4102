"""The audio counts of a call another provider answered reach an OpenAI-format caller where OpenAI puts them: the
openai SDK sends an `input_audio` part to a Gemini model through the gateway, the Gemini emulator counts the audio
apart (usageMetadata.promptTokensDetails, modality AUDIO), and the chat answer's usage says it in
prompt_tokens_details.audio_tokens, whole and streamed; the gateway said only what an OpenAI-format upstream sent."""

from __future__ import annotations

import base64

import httpx
import openai
import pytest
from google import genai
from google.genai import types

from helpers import stand_in_aws_keys
from helpers.scripted_openai import ScriptedOpenAI
from tokenomy.caching.placement import DOCUMENT_TOKENS
from tokenomy.config import parse_config
from tokenomy.emulate.gemini_api import create_app as create_gemini
from tokenomy.emulate.instant_engine import InstantEngine
from tokenomy.emulate.server import ServerThread
from tokenomy.gateway.app import create_app

WAV = b"RIFF" + bytes(64)
AUDIO_PART = {"type": "input_audio", "input_audio": {"data": base64.b64encode(WAV).decode(), "format": "wav"}}
ASKED = [{"role": "user", "content": [AUDIO_PART, {"type": "text", "text": "Transcribe"}]}]


@pytest.fixture(autouse=True)
def no_google_env(monkeypatch):
    for key in ("GEMINI_API_KEY", "GOOGLE_API_KEY"):
        monkeypatch.delenv(key, raising=False)


@pytest.fixture
def gemini_served(tmp_path, monkeypatch):
    ledger = tmp_path / "ledger.duckdb"
    stand_in_aws_keys(monkeypatch)
    with ServerThread(create_gemini(engine=InstantEngine())) as gemini:
        config = parse_config(
            {
                "models": {
                    "g": {"provider": "gemini", "model": "gemini-2.5-flash", "base_url": gemini},
                    "c": {
                        "provider": "anthropic",
                        "model": "claude-sonnet-4-5-20250929",
                        "base_url": "http://127.0.0.1:9",
                    },
                    "b": {
                        "provider": "bedrock",
                        "model": "anthropic.claude-3-haiku-20240307-v1:0",
                        "region": "us-east-1",
                        "endpoint_url": "http://127.0.0.1:9",
                    },
                }
            }
        )
        with ServerThread(create_app(config, str(ledger)), lifespan="on") as url:
            yield gemini, url, ledger


def emulator_audio(gemini: str) -> int:
    """The prompt audio the Gemini emulator counts for the audio part, asked of it directly."""
    direct = genai.Client(api_key="unused", http_options={"base_url": gemini})
    audio = types.Part.from_bytes(data=WAV, mime_type="audio/wav")
    sent = direct.models.generate_content(model="gemini-2.5-flash", contents=[audio, "Transcribe"]).usage_metadata
    [counted] = [d.token_count for d in sent.prompt_tokens_details if d.modality == types.MediaModality.AUDIO]
    return counted


@pytest.mark.parametrize("stream", [False, True])
def test_gemini_s_audio_count_reaches_the_openai_sdk(gemini_served, stream) -> None:
    gemini, url, _ = gemini_served
    client = openai.OpenAI(base_url=url + "/v1", api_key="unused")
    if stream:
        chunks = list(
            client.chat.completions.create(
                model="g", messages=ASKED, stream=True, stream_options={"include_usage": True}
            )
        )
        usage = next(c.usage for c in chunks if c.usage is not None)
        text = "".join(c.choices[0].delta.content or "" for c in chunks if c.choices)
    else:
        reply = client.chat.completions.create(model="g", messages=ASKED)
        usage, text = reply.usage, reply.choices[0].message.content
    assert "[audio/wav, 68 bytes]" in text  # the emulator got the audio as audio
    counted = emulator_audio(gemini)
    assert counted == DOCUMENT_TOKENS
    assert usage.prompt_tokens_details.audio_tokens == counted
    assert usage.completion_tokens_details.audio_tokens == 0


def test_an_answer_without_audio_gains_no_audio_keys(gemini_served) -> None:
    _, url, _ = gemini_served
    reply = httpx.post(
        url + "/v1/chat/completions",
        json={"model": "g", "messages": [{"role": "user", "content": "Say ok"}]},
        timeout=30,
    ).json()
    assert set(reply["usage"]["prompt_tokens_details"]) == {"cached_tokens"}
    assert set(reply["usage"]["completion_tokens_details"]) == {"reasoning_tokens"}


def test_input_audio_to_a_model_that_takes_none_and_a_malformed_part_are_400s_naming_it(gemini_served) -> None:
    _, url, _ = gemini_served
    # Claude (its mapping's refusal) and Bedrock (the base refusal) name the part as audio, as the caller sent it:
    # they said "a gemini audio block", Gemini's part the gateway holds it as, to a caller who sent input_audio.
    for model in ("c", "b"):
        refused = httpx.post(url + "/v1/chat/completions", json={"model": model, "messages": ASKED}, timeout=30)
        error = refused.json()["error"]
        assert refused.status_code == 400 and error["param"] == "messages[0].content[0]", refused.text
        assert "audio part" in error["message"] and "gemini" not in error["message"].lower(), error
    bad = {**AUDIO_PART, "input_audio": {"data": "@@", "format": "wav"}}
    reply = httpx.post(
        url + "/v1/chat/completions", json={"model": "g", "messages": [{"role": "user", "content": [bad]}]}, timeout=30
    )
    assert reply.status_code == 400 and reply.json()["error"]["param"] == "messages[0].content[0].input_audio.data"
    flac = {**AUDIO_PART, "input_audio": {"data": AUDIO_PART["input_audio"]["data"], "format": "flac"}}
    reply = httpx.post(
        url + "/v1/chat/completions", json={"model": "g", "messages": [{"role": "user", "content": [flac]}]}, timeout=30
    )
    assert reply.status_code == 400 and reply.json()["error"]["param"] == "messages[0].content[0].input_audio.format"


def test_the_responses_api_answer_says_the_audio_counts_too(tmp_path, monkeypatch) -> None:
    """/v1/responses, answered by an upstream that counted audio: its usage carries them beside the cached tokens
    (input_tokens_details.audio_tokens, output_tokens_details.audio_tokens), as chat's does."""
    monkeypatch.setenv("AUDIO_KEY", "sk-test")
    upstream = ScriptedOpenAI([])
    upstream.usage = {
        "prompt_tokens": 1_200,
        "completion_tokens": 500,
        "total_tokens": 1_700,
        "prompt_tokens_details": {"cached_tokens": 0, "audio_tokens": 1_000},
        "completion_tokens_details": {"reasoning_tokens": 0, "audio_tokens": 400},
    }
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
        with ServerThread(create_app(config, str(tmp_path / "ledger.duckdb")), lifespan="on") as url:
            client = openai.OpenAI(base_url=url + "/v1", api_key="unused")
            usage = client.responses.create(model="voice", input="Say ok").usage
    finally:
        upstream.close()
    assert (usage.input_tokens, usage.output_tokens) == (1_200, 500)
    assert usage.input_tokens_details.model_extra["audio_tokens"] == 1_000
    assert usage.output_tokens_details.model_extra["audio_tokens"] == 400
