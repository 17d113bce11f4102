"""A conversation answered by two providers: Claude (Anthropic's API, Bedrock) and Gemini each sign their reasoning and
check the signatures sent back, refusing another's. A route that falls over from one to the other, or a later turn
on another model, carries both families' signed reasoning: each provider gets only its own, byte-identical, and the
caller gets back which family signed each block, inside the opaque signature it echoes. Driven with the official
SDKs against the emulators, whose Claude and Gemini sign with different keys."""

from __future__ import annotations

import contextlib
import json

import anthropic
import openai
import pytest
from google import genai
from google.genai import types

from helpers import free_port, stand_in_aws_keys
from tokenomy.config import parse_config
from tokenomy.emulate.anthropic_api import create_app as create_anthropic
from tokenomy.emulate.bedrock_runtime import create_app as create_bedrock
from tokenomy.emulate.gemini_api import create_app as create_gemini
from tokenomy.emulate.instant_engine import InstantEngine
from tokenomy.emulate.server import ServerThread
from tokenomy.gateway.app import create_app

SONNET = "claude-sonnet-4-5-20250929"
BEDROCK_SONNET = "anthropic.claude-sonnet-4-5-20250929-v1:0"
THINK = {"type": "enabled", "budget_tokens": 1024}
SEAL = "tokenomy.signer:"


@pytest.fixture(autouse=True)
def no_google_env(monkeypatch):
    for key in ("GEMINI_API_KEY", "GOOGLE_API_KEY", "GOOGLE_GENAI_USE_VERTEXAI"):
        monkeypatch.delenv(key, raising=False)


class Served:
    def __init__(self, ledger) -> None:
        self.stack = contextlib.ExitStack()
        env = self.stack.enter_context(pytest.MonkeyPatch.context())
        stand_in_aws_keys(env)
        gemini_app = create_gemini(engine=InstantEngine())
        claude_app = create_anthropic(engine=InstantEngine())
        self.gemini_bodies: list[dict] = []  # what reached each, each call
        self.claude_bodies: list[dict] = []

        @gemini_app.middleware("http")
        async def record_gemini(request, call_next):
            if request.method == "POST":
                self.gemini_bodies.append(await request.json())
            return await call_next(request)

        @claude_app.middleware("http")
        async def record_claude(request, call_next):
            if request.method == "POST" and request.url.path == "/v1/messages":
                self.claude_bodies.append(await request.json())
            return await call_next(request)

        gemini = self.stack.enter_context(ServerThread(gemini_app))
        claude = self.stack.enter_context(ServerThread(claude_app))
        bedrock = self.stack.enter_context(ServerThread(create_bedrock(engine=InstantEngine())))
        down = f"http://127.0.0.1:{free_port()}"  # nothing listens: the route falls over to its next model
        config = parse_config({
            "models": {
                "claude": {"provider": "anthropic", "model": SONNET, "base_url": claude},
                "claude-down": {"provider": "anthropic", "model": SONNET, "base_url": down},
                "g": {"provider": "gemini", "model": "gemini-2.5-flash", "base_url": gemini},
                "haiku": {"provider": "bedrock", "region": "us-east-1", "endpoint_url": bedrock,
                          "model": BEDROCK_SONNET}},
            "routes": {"claude-else-gemini": {"model": "claude-down", "fallback": ["g"]}}})  # fmt: skip
        self.url = self.stack.enter_context(ServerThread(create_app(config, str(ledger)), lifespan="on"))


@pytest.fixture
def served(tmp_path):
    served = Served(tmp_path / "ledger.duckdb")
    yield served
    served.stack.close()


def _thinking(content: list[dict]) -> list[dict]:
    return [b for b in content if b["type"] in ("thinking", "redacted_thinking")]


def _ask(sdk: anthropic.Anthropic, model: str, messages: list[dict], stream: bool) -> list[dict]:
    """One Messages call with thinking on: the answer's content as the caller keeps it for the next turn."""
    fields = {"model": model, "max_tokens": 2048, "thinking": THINK, "messages": messages}
    if stream:
        with sdk.messages.stream(**fields) as events:
            message = events.get_final_message()
    else:
        message = sdk.messages.create(**fields)
    return [b.model_dump(exclude_none=True) for b in message.content]


@pytest.mark.parametrize("stream", [False, True])
def test_an_anthropic_conversation_that_falls_over_to_gemini_and_back_keeps_each_signature_to_its_own(
    served, stream
) -> None:
    sdk = anthropic.Anthropic(base_url=served.url, api_key="unused", max_retries=0)
    history: list[dict] = [{"role": "user", "content": "Plan a trip to Lisbon."}]
    first = _ask(sdk, "claude", history, stream)
    claude_signature = _thinking(first)[0]["signature"]
    assert not claude_signature.startswith(SEAL)  # Claude's own, as Claude issued it
    history += [{"role": "assistant", "content": first}, {"role": "user", "content": "And in winter?"}]

    # Claude is down: Gemini answers, and is not sent Claude's signed thinking (it would refuse the signature).
    second = _ask(sdk, "claude-else-gemini", history, stream)
    model_turn = served.gemini_bodies[-1]["contents"][1]
    assert model_turn["role"] == "model" and claude_signature not in json.dumps(model_turn)
    assert not any(p.get("thought") or p.get("thoughtSignature") for p in model_turn["parts"])
    gemini_thinking = _thinking(second)
    assert gemini_thinking and gemini_thinking[0]["signature"].startswith(SEAL + "gemini:")  # who signed it, sealed
    history += [{"role": "assistant", "content": second}, {"role": "user", "content": "Thanks."}]

    # Back on Claude: its own thinking goes back byte-identical, Gemini's is left out.
    _ask(sdk, "claude", history, stream)
    turns = served.claude_bodies[-1]["messages"]
    assert _thinking(turns[1]["content"])[0]["signature"] == claude_signature
    assert isinstance(turns[3]["content"], str)  # Gemini's text alone, sent as a plain text turn


def test_a_gemini_conversation_goes_on_at_claude_on_bedrock_and_back_at_gemini(served) -> None:
    """google-genai: Gemini's signed thought, then a turn at Claude (Bedrock), then Gemini again."""
    client = genai.Client(api_key="unused", http_options={"base_url": served.url})
    config = types.GenerateContentConfig(
        max_output_tokens=2048, thinking_config=types.ThinkingConfig(thinking_budget=1024, include_thoughts=True)
    )
    history = [types.Content(role="user", parts=[types.Part(text="Plan a trip to Lisbon.")])]
    first = client.models.generate_content(model="g", contents=history, config=config)
    gemini_parts = first.candidates[0].content.parts
    assert any(p.thought for p in gemini_parts)
    history += [first.candidates[0].content, types.Content(role="user", parts=[types.Part(text="In winter?")])]

    second = client.models.generate_content(model="haiku", contents=history, config=config)
    assert second.text
    history += [second.candidates[0].content, types.Content(role="user", parts=[types.Part(text="Thanks.")])]

    third = client.models.generate_content(model="g", contents=history, config=config)
    assert third.text
    sent = served.gemini_bodies[-1]["contents"]
    assert [c["role"] for c in sent] == ["user", "model", "user", "model", "user"]
    assert any(p.get("thought") and p.get("thoughtSignature") for p in sent[1]["parts"])  # Gemini's own, back
    assert not any(p.get("thought") or p.get("thoughtSignature") for p in sent[3]["parts"])  # Claude's, left out


def test_a_responses_conversation_carries_each_reasoning_item_to_its_own_family(served) -> None:
    """The Responses API: Claude's reasoning item (encrypted_content holds its signature) reaches Gemini as nothing,
    Gemini's reaches Claude as nothing, and each goes back to its own family as it was issued."""
    sdk = openai.OpenAI(base_url=served.url + "/v1", api_key="unused", max_retries=0)
    fields = {"include": ["reasoning.encrypted_content"], "max_output_tokens": 2048}
    claude = {**fields, "extra_body": {"thinking": THINK}}
    gemini = {**fields, "reasoning": {"effort": "low", "summary": "auto"}}
    history: list = [{"role": "user", "content": "Plan a trip to Lisbon."}]
    first = sdk.responses.create(model="claude", input=history, **claude)
    sealed = next(item.encrypted_content for item in first.output if item.type == "reasoning")
    history += [item.model_dump(exclude_none=True) for item in first.output]
    history.append({"role": "user", "content": "In winter?"})
    second = sdk.responses.create(model="g", input=history, **gemini)
    assert not any(p.get("thought") for p in served.gemini_bodies[-1]["contents"][1]["parts"])
    assert any(item.type == "reasoning" for item in second.output)
    history += [item.model_dump(exclude_none=True) for item in second.output]
    history.append({"role": "user", "content": "Thanks."})
    assert sdk.responses.create(model="claude", input=history, **claude).output_text
    turns = served.claude_bodies[-1]["messages"]
    signature = _thinking(turns[1]["content"])[0]["signature"]
    assert not signature.startswith(SEAL) and sealed.endswith(SEAL + "claude:" + signature)
    assert isinstance(turns[3]["content"], str)  # Gemini's reasoning item left out


def test_a_chat_completions_conversation_carries_each_thinking_block_to_its_own_family(served) -> None:
    """Chat Completions: `thinking_blocks` (LiteLLM's convention) carry Claude's signature as it came, and Gemini's
    sealed with its signer; each reaches only its own family."""
    sdk = openai.OpenAI(base_url=served.url + "/v1", api_key="unused", max_retries=0)
    think = {"max_tokens": 2048, "extra_body": {"thinking": THINK}}
    history: list = [{"role": "user", "content": "Plan a trip to Lisbon."}]
    first = sdk.chat.completions.create(model="claude", messages=history, **think).choices[0].message
    sealed = first.model_extra["thinking_blocks"][0]["signature"]  # LiteLLM's field: any family's, so marked
    assert sealed.startswith(SEAL + "claude:")
    claude_signature = sealed.removeprefix(SEAL + "claude:")
    history += [first.model_dump(exclude_none=True), {"role": "user", "content": "In winter?"}]
    second = sdk.chat.completions.create(model="g", messages=history, **think).choices[0].message
    assert not any(p.get("thought") for p in served.gemini_bodies[-1]["contents"][1]["parts"])
    assert second.model_extra["thinking_blocks"][0]["signature"].startswith(SEAL + "gemini:")
    history += [second.model_dump(exclude_none=True), {"role": "user", "content": "Thanks."}]
    assert sdk.chat.completions.create(model="claude", messages=history, **think).choices[0].message.content
    turns = served.claude_bodies[-1]["messages"]
    assert _thinking(turns[1]["content"])[0]["signature"] == claude_signature
    assert isinstance(turns[3]["content"], str)  # Gemini's thinking left out
