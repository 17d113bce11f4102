"""A reasoning effort reaches each Gemini model in the field it takes: Gemini 3's thinking_level, or Gemini 2.5's
thinking budget in tokens (the real API refuses a level on 2.5 with 400 "Thinking level is not supported for this
model."). Every 2.5 request with an effort sent thinking_level, and the emulator took it: the tests passed that
Google's API would have failed."""

from __future__ import annotations

from pathlib import Path

import openai
import pytest
from google import genai
from google.genai import errors, types

from tokenomy.config import parse_config
from tokenomy.emulate.gemini_api import create_app as create_gemini
from tokenomy.emulate.gemini_model import GeminiEmulator
from tokenomy.emulate.instant_engine import InstantEngine
from tokenomy.emulate.server import ServerThread
from tokenomy.gateway.app import create_app

ROUTES = {"flash": "gemini-2.5-flash", "pro": "gemini-2.5-pro", "three": "gemini-3-pro-preview"}


@pytest.fixture(autouse=True)
def no_google_env(monkeypatch):
    for key in ("GEMINI_API_KEY", "GOOGLE_API_KEY"):
        monkeypatch.delenv(key, raising=False)


@pytest.fixture
def sent(monkeypatch) -> list[tuple[str, dict]]:
    """The bodies Gemini's API received (model, GenerateContentRequest as sent on the wire)."""
    bodies: list[tuple[str, dict]] = []
    original = GeminiEmulator.prepare

    def recorded(self, model, body):
        bodies.append((model, body))
        return original(self, model, body)

    monkeypatch.setattr(GeminiEmulator, "prepare", recorded)
    return bodies


def thinking(body: dict) -> dict:
    return body["generationConfig"]["thinkingConfig"]  # as google-genai sends it: snake_case inside


def test_reasoning_effort_is_a_thinking_budget_on_gemini_2_5_and_a_level_on_gemini_3(ledger_path: Path, sent) -> None:
    with ServerThread(create_gemini(engine=InstantEngine())) as upstream:
        routes = {name: {"provider": "gemini", "model": model, "base_url": upstream} for name, model in ROUTES.items()}
        with ServerThread(create_app(parse_config({"models": routes}), str(ledger_path)), lifespan="on") as url:
            client = openai.OpenAI(base_url=url + "/v1", api_key="unused", max_retries=0)
            hi = [{"role": "user", "content": "Hi"}]
            for effort, budget in (("low", 1024), ("medium", 8192), ("high", 24576)):  # Google's own mapping
                assert client.chat.completions.create(model="flash", messages=hi, reasoning_effort=effort).id
                assert sent[-1][0].endswith("gemini-2.5-flash")
                assert thinking(sent[-1][1]) == {"include_thoughts": True, "thinking_budget": budget}
            assert client.chat.completions.create(model="pro", messages=hi, reasoning_effort="low").id
            assert thinking(sent[-1][1]) == {"include_thoughts": True, "thinking_budget": 1024}
            assert client.chat.completions.create(model="three", messages=hi, reasoning_effort="low").id
            assert sent[-1][0].endswith("gemini-3-pro-preview")
            assert thinking(sent[-1][1]) == {"include_thoughts": True, "thinking_level": "LOW"}
            # "none" turns 2.5 Flash's thinking off; 2.5 Pro cannot turn it off, and is refused, naming the field
            assert client.chat.completions.create(model="flash", messages=hi, reasoning_effort="none").id
            assert thinking(sent[-1][1]) == {"thinking_budget": 0}
            calls = len(sent)
            for effort in ("none", "minimal"):
                with pytest.raises(openai.BadRequestError) as refused:
                    client.chat.completions.create(model="pro", messages=hi, reasoning_effort=effort)
                assert refused.value.body["param"] == "reasoning_effort"
                assert "gemini-2.5-pro" in refused.value.message and "cannot turn thinking off" in refused.value.message
            assert len(sent) == calls  # refused before any call


def test_the_emulator_refuses_a_thinking_level_on_gemini_2_5_as_googles_api_does() -> None:
    with ServerThread(create_gemini(engine=InstantEngine())) as upstream:
        client = genai.Client(api_key="unused", http_options=types.HttpOptions(base_url=upstream))
        level = types.GenerateContentConfig(
            thinking_config=types.ThinkingConfig(thinking_level=types.ThinkingLevel.LOW)
        )
        with pytest.raises(errors.ClientError) as refused:
            client.models.generate_content(model="gemini-2.5-flash", contents="Hi", config=level)
        assert (refused.value.code, refused.value.status) == (400, "INVALID_ARGUMENT")
        assert refused.value.message == "Thinking level is not supported for this model."
        assert client.models.generate_content(model="gemini-3-pro-preview", contents="Hi", config=level).text
        budget = types.GenerateContentConfig(thinking_config=types.ThinkingConfig(thinking_budget=1024))
        assert client.models.generate_content(model="gemini-2.5-flash", contents="Hi", config=budget).text


def test_a_thinking_budget_below_a_gemini_2_5_models_range_is_refused_before_the_call(ledger_path: Path, sent) -> None:
    """Google's thinking docs: 2.5 Pro takes a budget of 128 to 32,768 and cannot turn thinking off, 2.5 Flash-Lite one
    of 512 to 24,576 or 0 (off). Thinking turned off on 2.5 Pro, or a budget below the range, went to Gemini for its
    400 after the call; each is refused before it, naming the field and the least budget the model takes."""
    models = {**ROUTES, "lite": "gemini-2.5-flash-lite"}
    with ServerThread(create_gemini(engine=InstantEngine())) as upstream:
        routes = {name: {"provider": "gemini", "model": model, "base_url": upstream} for name, model in models.items()}
        with ServerThread(create_app(parse_config({"models": routes}), str(ledger_path)), lifespan="on") as url:
            client = openai.OpenAI(base_url=url + "/v1", api_key="unused", max_retries=0)
            gemini = genai.Client(api_key="unused", http_options=types.HttpOptions(base_url=url))
            hi = [{"role": "user", "content": "Hi"}]
            refused_cases = [
                ("pro", {"type": "disabled"}, "thinking", "cannot turn thinking off", "at least 128 tokens"),
                ("pro", {"type": "enabled", "budget_tokens": 64}, "thinking.budget_tokens", "(got 64)", "to 128"),
                ("lite", {"type": "enabled", "budget_tokens": 256}, "thinking.budget_tokens", "(got 256)", "to 512"),
            ]
            for route, thinking_asked, param, why, fix in refused_cases:
                with pytest.raises(openai.BadRequestError) as refused:
                    client.chat.completions.create(model=route, messages=hi, extra_body={"thinking": thinking_asked})
                assert refused.value.body["param"] == param, refused.value.message
                assert why in refused.value.message and fix in refused.value.message, refused.value.message
            off = types.GenerateContentConfig(thinking_config=types.ThinkingConfig(thinking_budget=0))
            with pytest.raises(errors.ClientError) as refused_natively:
                gemini.models.generate_content(model="pro", contents="Hi", config=off)
            assert refused_natively.value.code == 400 and "at least 128 tokens" in refused_natively.value.message
            assert "generationConfig.thinkingConfig" in refused_natively.value.message
            assert sent == []  # each refused before any call
            # The least budget each takes, and Flash-Lite's thinking off, are sent as asked
            for route, budget in (("pro", 128), ("lite", 512), ("lite", 0), ("flash", 1)):
                enabled = {"type": "enabled", "budget_tokens": budget} if budget else {"type": "disabled"}
                assert client.chat.completions.create(model=route, messages=hi, extra_body={"thinking": enabled}).id
                assert thinking(sent[-1][1])["thinking_budget"] == budget


def test_the_emulator_refuses_a_budget_below_a_gemini_2_5_models_range_as_googles_api_does() -> None:
    with ServerThread(create_gemini(engine=InstantEngine())) as upstream:
        client = genai.Client(api_key="unused", http_options=types.HttpOptions(base_url=upstream))
        for model, budget in (("gemini-2.5-pro", 0), ("gemini-2.5-pro", 127), ("gemini-2.5-flash-lite", 511)):
            config = types.GenerateContentConfig(thinking_config=types.ThinkingConfig(thinking_budget=budget))
            with pytest.raises(errors.ClientError) as refused:
                client.models.generate_content(model=model, contents="Hi", config=config)
            assert (refused.value.code, refused.value.status) == (400, "INVALID_ARGUMENT"), (model, budget)
        for model, budget in (("gemini-2.5-pro", 128), ("gemini-2.5-flash-lite", 0), ("gemini-2.5-flash", 0)):
            config = types.GenerateContentConfig(thinking_config=types.ThinkingConfig(thinking_budget=budget))
            assert client.models.generate_content(model=model, contents="Hi", config=config).text
