"""A gateway in front of three upstreams that speak to Claude, for the tests of the gateway's Claude-shaped ingresses
(Bedrock's InvokeModel, Vertex AI's rawPredict): the Bedrock emulator ("haiku"), a scripted Anthropic API ("claude"),
a recording OpenAI-format upstream ("fast", priced as haiku) and "down", where nothing listens; and, when asked, Gemini
models on the Gemini emulator."""

from __future__ import annotations

import contextlib
from typing import Any

import pytest

from helpers import stand_in_aws_keys
from helpers.recording_openai import RecordingOpenAI
from helpers.scripted_anthropic import ScriptedAnthropic
from tokenomy.config import parse_config
from tokenomy.emulate.bedrock_runtime import create_app as create_bedrock
from tokenomy.emulate.gemini_api import create_app as create_gemini
from tokenomy.emulate.gemini_model import GeminiEmulator
from tokenomy.emulate.instant_engine import InstantEngine
from tokenomy.emulate.server import ServerThread
from tokenomy.gateway.app import create_app
from tokenomy.ledger.store import open_store

HAIKU = "anthropic.claude-3-haiku-20240307-v1:0"


class ClaudeGateway:
    """The gateway at `url` with `routes` beside the four models (and other config `settings`, e.g. auth; and more
    models on the Bedrock emulator, `bedrock_models`: name -> Bedrock model id; Gemini models on the Gemini emulator,
    `gemini_models`: name -> Gemini model id). `sent` holds the Converse params the Bedrock provider sent, and
    `gemini_sent` the bodies Gemini's API received (GenerateContentRequest as sent on the wire). The ledger is read
    once the gateway has stopped (`rows`)."""

    def __init__(
        self,
        ledger,
        routes: dict[str, Any],
        settings: dict[str, Any] | None = None,
        bedrock_models: dict[str, str] | None = None,
        gemini_models: dict[str, str] | None = None,
    ) -> None:
        from tokenomy.providers import bedrock as bedrock_provider
        from tokenomy.providers import converse_mapping

        self.ledger, self.sent, self.scripted = ledger, [], ScriptedAnthropic()
        self.gemini_sent: list[dict[str, Any]] = []
        self.stack = contextlib.ExitStack()
        env = self.stack.enter_context(pytest.MonkeyPatch.context())
        stand_in_aws_keys(env)
        original = converse_mapping.to_converse_params
        env.setattr(
            bedrock_provider, "to_converse_params", lambda request: self.sent.append(original(request)) or self.sent[-1]
        )
        bedrock = self.stack.enter_context(ServerThread(create_bedrock(engine=InstantEngine())))
        self.upstream = self.stack.enter_context(RecordingOpenAI())
        claude_api = self.stack.enter_context(ServerThread(self.scripted.app))
        models = {
            "haiku": {"provider": "bedrock", "region": "us-east-1", "endpoint_url": bedrock, "model": HAIKU},
            "claude": {"provider": "anthropic", "model": "claude-sonnet-4-5-20250929", "base_url": claude_api},
            "fast": {"provider": "openai", "model": "up-model", "base_url": self.upstream.url, "price_as": HAIKU},
            # No server listens on port 9: every call fails before anything streams.
            "down": {"provider": "openai", "model": "down", "base_url": "http://127.0.0.1:9/v1", "price_as": HAIKU},
        }
        for name, model in (bedrock_models or {}).items():  # more models on the same Bedrock emulator
            models[name] = {"provider": "bedrock", "region": "us-east-1", "endpoint_url": bedrock, "model": model}
        if gemini_models:
            models.update(self._gemini(env, gemini_models))
        config = parse_config({"models": models, "routes": routes, **(settings or {})})  # settings: e.g. auth
        self.url = self.stack.enter_context(ServerThread(create_app(config, str(ledger)), lifespan="on"))

    def _gemini(self, env: pytest.MonkeyPatch, names: dict[str, str]) -> dict[str, Any]:
        """Config entries for `names` on a Gemini emulator, each body it receives recorded in `gemini_sent`."""
        for key in ("GEMINI_API_KEY", "GOOGLE_API_KEY"):  # a real key in the environment is never sent
            env.delenv(key, raising=False)
        original = GeminiEmulator.prepare

        def recorded(emulator, model, body):
            self.gemini_sent.append(body)
            return original(emulator, model, body)

        env.setattr(GeminiEmulator, "prepare", recorded)
        gemini = self.stack.enter_context(ServerThread(create_gemini(engine=InstantEngine())))
        return {name: {"provider": "gemini", "model": model, "base_url": gemini} for name, model in names.items()}

    def rows(self, request_id: str):
        self.stack.close()  # the gateway's ledger writer flushes and lets the file go
        return [e for e in open_store(str(self.ledger)).events() if e.request_id == request_id]
