"""A request that sets no output cap, to Claude on Anthropic's API. An OpenAI caller without max_tokens and a Gemini
caller without maxOutputTokens let the model write up to its maximum output on their own APIs; the Messages API
requires max_tokens, and it was sent 1,024, so every longer answer was cut at 1,024 tokens ("length"). It is now
sent the model's maximum output in the price catalog (1,024 past the thinking budget only where the catalog has no
maximum), streamed or not (the anthropic SDK refuses a call that is not streamed whose max_tokens implies over ten
minutes, unless given a timeout, which the provider always gives it), and a budget reserves the call at that cap."""

from __future__ import annotations

import contextlib

import openai
import pytest
from google import genai
from google.genai import types

from helpers.gateway_worst_case import worst_case
from tokenomy.caching.placement import estimate_input_tokens
from tokenomy.config import parse_config
from tokenomy.emulate.anthropic_api import create_app as create_anthropic
from tokenomy.emulate.instant_engine import InstantEngine
from tokenomy.emulate.server import ServerThread
from tokenomy.gateway.app import create_app
from tokenomy.messages import ChatRequest, Message
from tokenomy.pricing.catalog import default_catalog
from tokenomy.pricing.identifiers import pricing_region

SONNET = "claude-sonnet-4-5-20250929"
HAIKU = "claude-3-haiku-20240307"  # writes 4,096 tokens at most
ASK = [{"role": "user", "content": "Tell me everything."}]


def most(model: str) -> int:
    """The model's maximum output in the catalog the gateway prices with."""
    tokens = default_catalog().lookup(model, pricing_region(None)).max_output_tokens
    assert tokens is not None and tokens > 1024  # a figure that tells the cap sent from the old default
    return tokens


@pytest.fixture(autouse=True)
def no_google_env(monkeypatch):
    for key in ("GEMINI_API_KEY", "GOOGLE_API_KEY", "GOOGLE_GENAI_USE_VERTEXAI"):
        monkeypatch.delenv(key, raising=False)


@pytest.fixture
def served(tmp_path):
    """(the gateway's URL, the bodies that reached the Anthropic emulator, the gateway's models)."""
    bodies: list[dict] = []
    anthropic = create_anthropic(engine=InstantEngine())

    @anthropic.middleware("http")
    async def record(request, call_next):
        if request.method == "POST" and request.url.path == "/v1/messages":
            bodies.append(await request.json())
        return await call_next(request)

    with contextlib.ExitStack() as stack:
        claude = stack.enter_context(ServerThread(anthropic))
        models = {
            "claude": {"provider": "anthropic", "model": SONNET, "base_url": claude},
            "haiku": {"provider": "anthropic", "model": HAIKU, "base_url": claude},
            # A stand-in priced as another model: its limits are not that model's, so the old default stands.
            "stand-in": {"provider": "anthropic", "model": SONNET, "base_url": claude, "price_as": HAIKU},
        }
        config = parse_config({"models": models})
        url = stack.enter_context(ServerThread(create_app(config, str(tmp_path / "ledger.duckdb")), lifespan="on"))
        yield url, bodies, models


def test_an_openai_caller_without_max_tokens_gets_the_models_maximum_output(served):
    url, bodies, _ = served
    client = openai.OpenAI(base_url=url + "/v1", api_key="unused", max_retries=0)
    for route, model in (("claude", SONNET), ("haiku", HAIKU)):
        answer = client.chat.completions.create(model=route, messages=ASK)  # not streamed: the SDK let it through
        assert answer.choices[0].message.content and answer.choices[0].finish_reason == "stop"
        assert (bodies[-1]["model"], bodies[-1]["max_tokens"]) == (model, most(model))
    chunks = list(client.chat.completions.create(model="claude", messages=ASK, stream=True))
    assert "stop" in [chunk.choices[0].finish_reason for chunk in chunks if chunk.choices]
    assert bodies[-1]["stream"] is True and bodies[-1]["max_tokens"] == most(SONNET)
    # A cap the caller sets is sent as set; a model the catalog has no maximum for keeps 1,024.
    client.chat.completions.create(model="claude", messages=ASK, max_tokens=300)
    assert bodies[-1]["max_tokens"] == 300
    client.chat.completions.create(model="stand-in", messages=ASK)
    assert bodies[-1]["max_tokens"] == 1024


def test_a_gemini_caller_without_max_output_tokens_gets_the_models_maximum_output(served):
    url, bodies, _ = served
    client = genai.Client(api_key="unused", http_options={"base_url": url})
    assert client.models.generate_content(model="claude", contents="Tell me everything.").text
    assert bodies[-1]["max_tokens"] == most(SONNET)
    # With a thinking budget (Gemini's own default is no cap at all), the maximum holds it: it is within it.
    thinking = types.GenerateContentConfig(thinking_config=types.ThinkingConfig(thinking_budget=8192))
    chunks = list(client.models.generate_content_stream(model="claude", contents="Hi", config=thinking))
    assert chunks and bodies[-1]["thinking"]["budget_tokens"] == 8192
    assert bodies[-1]["max_tokens"] == most(SONNET)
    # Where the catalog has no maximum: 1,024 past the thinking budget, as before.
    assert client.models.generate_content(model="stand-in", contents="Hi", config=thinking).text
    assert bodies[-1]["max_tokens"] == 1024 + 8192


def test_the_budget_reserves_an_uncapped_call_at_the_cap_it_is_sent(served, tmp_path):
    url, bodies, models = served
    request = ChatRequest([Message("user", "Tell me everything.")], model="claude")
    bound = worst_case({"models": models}, "claude", request, tmp_path / "reserve.duckdb").binding()
    assert (bound.tokens, bound.kind) == (most(SONNET), "provider")
    # A prompt that leaves less than the maximum in the context window is sent (and reserved at) what it leaves:
    # Claude before Sonnet 4.5 refuses a prompt and max_tokens over its window.
    text = "word " * 136_000
    long = ChatRequest([Message("user", text)], model="claude")
    window = default_catalog().lookup(SONNET, pricing_region(None)).context_window
    left = window - estimate_input_tokens(long)
    assert 1024 < left < most(SONNET)
    bound = worst_case({"models": models}, "claude", long, tmp_path / "reserve.duckdb").binding()
    assert (bound.tokens, bound.kind) == (left, "provider")
    client = openai.OpenAI(base_url=url + "/v1", api_key="unused", max_retries=0)
    client.chat.completions.create(model="claude", messages=[{"role": "user", "content": text}])
    assert bodies[-1]["max_tokens"] == left
