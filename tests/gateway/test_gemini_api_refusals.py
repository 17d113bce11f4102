"""What the Gemini API on the gateway refuses for a Gemini model, driven by the google-genai SDK: a field Gemini's
mapping cannot carry is a 400 naming it before any call, budget reservation or ledger row, as for any other model."""

from __future__ import annotations

from decimal import Decimal

import httpx
import pytest
from google import genai
from google.genai import errors, types

from helpers.capturing_asgi import capturing
from tokenomy.config import parse_config
from tokenomy.emulate.gemini_api import create_app as create_gemini
from tokenomy.emulate.instant_engine import InstantEngine
from tokenomy.emulate.server import ServerThread
from tokenomy.gateway.app import create_app
from tokenomy.ledger.store import open_store

GEMINI = "gemini-2.5-flash"
HAIKU = "anthropic.claude-3-haiku-20240307-v1:0"


@pytest.fixture(autouse=True)
def no_google_env(monkeypatch):
    for key in ("GEMINI_API_KEY", "GOOGLE_API_KEY", "GOOGLE_GENAI_USE_VERTEXAI"):
        monkeypatch.delenv(key, raising=False)


@pytest.mark.parametrize(
    ("config", "named"),
    [
        (types.GenerateContentConfig(candidate_count=2), "generationConfig.candidateCount"),
        (types.GenerateContentConfig(response_logprobs=True, logprobs=3), "generationConfig.responseLogprobs"),
        (types.GenerateContentConfig(response_modalities=["AUDIO"]), "generationConfig.responseModalities"),
        # google-genai reads these enums with `.upper()`: Gemini's mapping refuses anything but a name (REST callers')
        ({"safetySettings": [{"category": 0, "threshold": "BLOCK_NONE"}]}, "safetySettings: Gemini"),
        ({"generationConfig": {"mediaResolution": 2**70}}, "generationConfig.mediaResolution: Gemini"),
    ],
)
def test_what_gemini_models_are_not_sent_is_refused_before_the_call(tmp_path, config, named) -> None:
    # Gemini's own fields were left out of the check before the call (they reach Gemini models as sent), and Gemini's
    # mapping refused these when the call was made: after the key's budget was reserved, leaving a $0 client_error
    # row in the ledger for a call nothing was sent for.
    from tokenomy.gateway.keys import KeyStore

    ledger = tmp_path / "ledger.duckdb"
    secret, _ = KeyStore(open_store(ledger)).create(budget_usd=Decimal("1"), period="month", name="app")
    bodies: list[dict] = []
    with ServerThread(capturing(create_gemini(engine=InstantEngine()), bodies)) as gemini:
        models = {"g": {"provider": "gemini", "model": GEMINI, "base_url": gemini}}
        app = create_app(parse_config({"auth": True, "models": models}), str(ledger))
        with ServerThread(app, lifespan="on") as url:
            if isinstance(config, dict):  # a REST caller's body, which the SDK's types would not build
                body = {"contents": [{"role": "user", "parts": [{"text": "hi"}]}], **config}
                for method in ("generateContent", "streamGenerateContent?alt=sse"):
                    answer = httpx.post(
                        f"{url}/v1beta/models/g:{method}", json=body, headers={"x-goog-api-key": secret}
                    )
                    assert answer.status_code == 400 and named in answer.json()["error"]["message"], answer.text
            else:
                client = genai.Client(api_key=secret, http_options={"base_url": url})
                with pytest.raises(errors.ClientError) as refused:
                    client.models.generate_content(model="g", contents="hi", config=config)
                assert refused.value.code == 400 and named in refused.value.message, refused.value.message
                with pytest.raises(errors.ClientError) as refused:
                    list(client.models.generate_content_stream(model="g", contents="hi", config=config))
                assert refused.value.code == 400 and named in refused.value.message, refused.value.message
    assert bodies == [] and open_store(ledger).events() == []


def test_a_field_no_model_is_carried_is_not_said_to_reach_gemini_models(tmp_path) -> None:
    # For a route to another provider, these were refused as "the gateway carries this field to Gemini models only":
    # a caller who moved to a Gemini model was refused again. No model is sent them; the 400 says so, for any model.
    from helpers.recording_openai import RecordingOpenAI

    with ServerThread(create_gemini(engine=InstantEngine())) as gemini, RecordingOpenAI() as upstream:
        models = {
            "g": {"provider": "gemini", "model": GEMINI, "base_url": gemini},
            "fast": {
                "provider": "openai",
                "model": "up",
                "base_url": upstream.url,
                "price_as": "anthropic.claude-3-haiku-20240307-v1:0",
            },
        }
        app = create_app(parse_config({"models": models}), str(tmp_path / "ledger.duckdb"))
        with ServerThread(app, lifespan="on") as url:
            client = genai.Client(api_key="unused", http_options={"base_url": url})
            for config, named in (
                (types.GenerateContentConfig(candidate_count=3), "candidateCount"),
                (types.GenerateContentConfig(response_logprobs=True), "responseLogprobs"),
                (types.GenerateContentConfig(logprobs=2), "logprobs"),
            ):
                for model in ("g", "fast"):
                    with pytest.raises(errors.ClientError) as refused:
                        client.models.generate_content(model=model, contents="hi", config=config)
                    assert refused.value.code == 400 and refused.value.message.startswith(
                        f"generationConfig.{named}: not carried by the gateway"
                    ), refused.value.message
            assert upstream.bodies == []


def test_an_openai_format_models_refusal_comes_back_as_its_answers_text(tmp_path) -> None:
    # OpenAI's models refuse in `message.refusal` (streamed as `delta.refusal`), with no content: the Gemini API has
    # no field for it, and the gateway answered an empty candidate, whole and streamed, as if the model said nothing.
    # It is the answer's text, as the Messages API route gives it.
    from helpers.recording_openai import RecordingOpenAI

    refused = "I'm sorry, I can't help with that."
    with RecordingOpenAI() as upstream:
        upstream.refuse(refused)
        models = {"fast": {"provider": "openai", "model": "up", "base_url": upstream.url, "price_as": HAIKU}}
        app = create_app(parse_config({"models": models}), str(tmp_path / "ledger.duckdb"))
        with ServerThread(app, lifespan="on") as url:
            client = genai.Client(api_key="unused", http_options={"base_url": url})
            whole = client.models.generate_content(model="fast", contents="Something bad")
            chunks = list(client.models.generate_content_stream(model="fast", contents="Something bad"))
    assert whole.text == refused and whole.candidates[0].finish_reason == "STOP"
    assert "".join(c.text or "" for c in chunks) == refused and chunks[-1].candidates[0].finish_reason == "STOP"
    rows = open_store(str(tmp_path / "ledger.duckdb")).events()
    assert [(row.outcome, row.output_tokens) for row in rows] == [("ok", 5), ("ok", 9)]


def test_json_mode_refused_for_a_bedrock_model_says_what_to_send_in_the_gemini_api(tmp_path, monkeypatch) -> None:
    # A Converse model has no JSON mode without a schema; the remedy said "send a json_schema response format",
    # OpenAI's words, to a Gemini caller, whose schema goes in generationConfig.responseJsonSchema.
    from helpers import stand_in_aws_keys
    from tokenomy.emulate.bedrock_runtime import create_app as create_bedrock

    stand_in_aws_keys(monkeypatch)
    with ServerThread(create_bedrock(engine=InstantEngine())) as bedrock:
        models = {"haiku": {"provider": "bedrock", "region": "us-east-1", "endpoint_url": bedrock, "model": HAIKU}}
        app = create_app(parse_config({"models": models}), str(tmp_path / "ledger.duckdb"))
        with ServerThread(app, lifespan="on") as url:
            client = genai.Client(api_key="unused", http_options={"base_url": url})
            with pytest.raises(errors.ClientError) as refused:
                client.models.generate_content(
                    model="haiku",
                    contents="hi",
                    config=types.GenerateContentConfig(response_mime_type="application/json"),
                )
    message = refused.value.message
    assert refused.value.code == 400 and message.startswith("generationConfig.responseMimeType: Bedrock"), message
    assert "`generationConfig.responseJsonSchema`" in message and "response_format" not in message, message
    assert "json_schema" not in message, message
