"""Gemini's `serviceTier` (the google-genai SDK's `GenerateContentConfig(service_tier=...)`, a top-level field of the
request) reaches a Gemini model as sent, and the call is recorded at the tier it asked for; a route that may reach
another provider refuses a flex or priority tier by name, since the gateway has no mapping of Gemini's tiers to
another API's (the standard tier asks nothing of it). Before, the Gemini routes refused the field for every model."""

from __future__ import annotations

import pytest
from google import genai
from google.genai import errors, types

from helpers.capturing_asgi import capturing
from helpers.recording_openai import RecordingOpenAI
from tokenomy.config import parse_config
from tokenomy.emulate.gemini_api import create_app as create_gemini
from tokenomy.emulate.instant_engine import InstantEngine
from tokenomy.emulate.server import ServerThread
from tokenomy.gateway.app import create_app
from tokenomy.ledger.store import open_store

pytestmark = pytest.mark.slow
HAIKU = "anthropic.claude-3-haiku-20240307-v1:0"


@pytest.fixture(autouse=True)
def no_google_env(monkeypatch):
    for key in ("GEMINI_API_KEY", "GOOGLE_API_KEY"):
        monkeypatch.delenv(key, raising=False)


def test_service_tier_reaches_gemini_and_is_refused_by_name_for_another_provider(tmp_path) -> None:
    emulator = create_gemini(engine=InstantEngine())
    bodies: list[dict] = []
    ledger = str(tmp_path / "ledger.duckdb")
    with ServerThread(capturing(emulator, bodies)) as gemini, RecordingOpenAI() as upstream:
        config = parse_config(
            {
                "models": {
                    "g": {"provider": "gemini", "model": "gemini-2.5-flash", "base_url": gemini},
                    "fast": {"provider": "openai", "model": "up-model", "base_url": upstream.url, "price_as": HAIKU},
                },
                "routes": {"g-then-fast": {"model": "g", "fallback": ["fast"]}},
            }
        )
        with ServerThread(create_app(config, ledger), lifespan="on") as url:
            client = genai.Client(api_key="unused", http_options={"base_url": url})
            flex = types.GenerateContentConfig(service_tier="flex", max_output_tokens=16)
            answer = client.models.generate_content(model="g", contents="Hi", config=flex)
            assert answer.text
            streamed = list(client.models.generate_content_stream(model="g", contents="Hi", config=flex))
            assert "".join(c.text or "" for c in streamed)
            assert [b.get("serviceTier") for b in bodies] == ["flex", "flex"]
            with pytest.raises(errors.ClientError) as refused:
                client.models.generate_content(model="fast", contents="Hi", config=flex)
            assert refused.value.code == 400 and "serviceTier" in refused.value.message
            assert upstream.bodies == []
            standard = types.GenerateContentConfig(service_tier="standard", max_output_tokens=16)
            assert client.models.generate_content(model="fast", contents="Hi", config=standard).text  # asks nothing
            assert "service_tier" not in upstream.bodies[-1]
            # A route that may reach Gemini and another provider: the standard tier is what Gemini serves unasked too,
            # so it is left out for both (it was refused, as the other provider's field); a flex tier still is.
            assert client.models.generate_content(model="g-then-fast", contents="Hi", config=standard).text
            assert "serviceTier" not in bodies[-1] and len(bodies) == 3
            with pytest.raises(errors.ClientError, match="serviceTier: the gateway carries this field to Gemini"):
                client.models.generate_content(model="g-then-fast", contents="Hi", config=flex)
    rows = open_store(ledger).events()
    assert [(row.tags or {}).get("service_tier") for row in rows] == ["flex", "flex", None, None]
