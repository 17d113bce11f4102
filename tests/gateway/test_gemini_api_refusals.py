"""What the Gemini API on the gateway refuses for a Gemini model, driven by the google-genai SDK: a field Gemini's
mapping cannot carry is a 400 naming it before any call, budget reservation or ledger row, as for any other model."""

from __future__ import annotations

import json
from decimal import Decimal

import httpx
import pytest
from google import genai
from google.genai import errors, types

from helpers.capturing_asgi import capturing
from helpers.gemini_samples import COMPANIONS, SAMPLES, SDK_ONLY, config_fields
from helpers.recording_openai import RecordingOpenAI
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
        # each named with the names that field takes (a service tier's were said to be HARM_CATEGORY_HARASSMENT ...)
        (
            {"serviceTier": 5},
            "serviceTier: Gemini (model gemini-2.5-flash) takes its names here (strings such as flex,",
        ),
        (
            {"generationConfig": {"mediaResolution": 5}},
            "(strings such as MEDIA_RESOLUTION_LOW, MEDIA_RESOLUTION_MEDIUM",
        ),
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


# Where each GenerateContentConfig field lands in an OpenAI-format model's body (None: the gateway keeps it, as
# `labels` become the ledger row's tags, test_gemini_agents.py); any other is refused by name.
IN_OPENAI_FORM = {
    "frequency_penalty": ("frequency_penalty", 0.25),
    "labels": None,
    "max_output_tokens": ("max_tokens", 20),
    "presence_penalty": ("presence_penalty", 0.25),
    "response_json_schema": ("response_format", "json_schema"),
    "response_mime_type": ("response_format", "json_object"),
    "response_schema": ("response_format", "json_schema"),
    "seed": ("seed", 7),
    "stop_sequences": ("stop", ["END"]),
    "system_instruction": ("messages", [{"role": "system", "content": "Be brief."}, {"role": "user", "content": "hi"}]),
    "temperature": ("temperature", 0.5),
    "tool_config": ("tool_choice", "required"),
    "tools": ("tools", "get_weather"),
    "top_k": ("top_k", 3),
    "top_p": ("top_p", 0.5),
}
# Gemini's older schema form reaches Gemini models as the JSON schema it means (gemini_inbound.json_schema).
RESHAPED_FOR_GEMINI = {"generationConfig.responseSchema": "generationConfig.responseJsonSchema"}
TESTED_ELSEWHERE = {"cached_content"}  # needs a cache the gateway made: test_gemini_caches.py sends it to each API


def _wire_places(body: dict, bare: dict) -> list[str]:
    """The places of a generateContent body that a bare request lacks: top-level fields, generationConfig's fields."""
    top = [key for key in body if key not in bare]
    return top + [f"generationConfig.{key}" for key in body.get("generationConfig", {})]


def _at(body: dict, place: str):
    head, _, rest = place.partition(".")
    return body.get(head) if not rest else (body.get(head) or {}).get(rest)


def test_every_field_of_the_sdks_config_is_carried_or_refused_by_name(tmp_path) -> None:
    """Each field of the installed google-genai's GenerateContentConfig, as the SDK writes it (Developer API, or
    Vertex AI's express mode for a field only Vertex AI has), reaches a Gemini model where the SDK put it and an
    OpenAI-format model in its own field (IN_OPENAI_FORM), or is refused naming it before any call. A field a newer
    SDK adds fails here until it gets a sample (helpers/gemini_samples.py) and a place."""
    into_gateway: list[dict] = []
    into_gemini: list[dict] = []
    with (
        ServerThread(capturing(create_gemini(engine=InstantEngine()), into_gemini)) as gemini,
        RecordingOpenAI() as upstream,
    ):
        models = {
            "g": {"provider": "gemini", "model": GEMINI, "base_url": gemini},
            "fast": {"provider": "openai", "model": "up", "base_url": upstream.url, "price_as": HAIKU},
        }
        app = capturing(create_app(parse_config({"models": models}), str(tmp_path / "ledger.duckdb")), into_gateway)
        with ServerThread(app, lifespan="on") as url:
            developer = genai.Client(api_key="unused", http_options={"base_url": url})
            vertex = genai.Client(vertexai=True, api_key="unused", http_options={"base_url": url})
            developer.models.generate_content(model="g", contents="hi", config=types.GenerateContentConfig())
            bare = into_gateway[-1]
            for field in config_fields():
                if field in TESTED_ELSEWHERE:
                    continue
                assert field in SAMPLES, f"GenerateContentConfig has a new field {field!r}: add a sample to SAMPLES"
                config = types.GenerateContentConfig(**{field: SAMPLES[field], **COMPANIONS.get(field, {})})
                for model in ("g", "fast"):
                    into_gateway.clear(), into_gemini.clear(), upstream.bodies.clear()
                    refused = None
                    try:
                        developer.models.generate_content(model=model, contents="hi", config=config)
                    except ValueError:  # the SDK sends it to Vertex AI only
                        into_gateway.clear()
                        try:
                            vertex.models.generate_content(model=model, contents="hi", config=config)
                        except errors.ClientError as error:
                            refused = error
                    except errors.ClientError as error:
                        refused = error
                    places = _wire_places(into_gateway[-1], bare)
                    if field in SDK_ONLY:
                        assert places == [] and refused is None, (field, places)  # nothing sent: nothing to carry
                        continue
                    assert places, f"{field} was sent nowhere the test looks: give it a place"
                    if model == "g" and into_gemini:  # sent on (Gemini's own refusal, if any, is the provider's)
                        sent = into_gemini[-1]
                        for place in places:
                            assert _at(sent, RESHAPED_FOR_GEMINI.get(place, place)) is not None, (field, place, sent)
                        continue
                    if model == "fast" and field in IN_OPENAI_FORM and refused is None:
                        if IN_OPENAI_FORM[field] is not None:
                            key, value = IN_OPENAI_FORM[field]
                            sent = upstream.last[key]  # the value, or (a string) a name or type inside it
                            assert sent == value or (isinstance(value, str) and value in json.dumps(sent)), sent
                        continue
                    assert refused is not None and refused.code == 400, (model, field)
                    named = [
                        *places,
                        field,
                    ]  # as sent, or by the SDK's name (the Gemini provider's google-genai refusing it)
                    assert any(place in refused.message for place in named), (model, field, refused.message)
                    assert into_gemini == [] and upstream.bodies == [], (model, field)  # refused before any call
