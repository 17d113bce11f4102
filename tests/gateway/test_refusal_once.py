"""What a model cannot take is looked for once a chat completion: the gateway's check before the budget covers the
client's before the attempt and the provider's own, so the request it cleared is sent without them; a request the
call path changes (the route's token cap, a fallback) is checked again, and a refusal still comes back by name."""

from __future__ import annotations

import base64
import json
from pathlib import Path

import pytest
from fastapi.testclient import TestClient

from tokenomy.config import parse_config
from tokenomy.emulate.instant_openai import InstantOpenAI
from tokenomy.gateway.app import create_app
from tokenomy.providers.openai_provider import OpenAIProvider

HAIKU = "anthropic.claude-3-haiku-20240307-v1:0"
IMAGE = "data:image/png;base64," + base64.b64encode(b"\x89PNG\r\n\x1a\n" + bytes(range(256))).decode()
RICH = {
    "max_tokens": 8,
    "messages": [
        {"role": "user", "content": [{"type": "text", "text": "What is it?"},
                                     {"type": "image_url", "image_url": {"url": IMAGE}}]},
        {"role": "assistant", "content": None, "tool_calls": [{"id": "call_1", "type": "function", "function": {
            "name": "get_weather", "arguments": '{"city": "Paris"}'}}]},
        {"role": "tool", "tool_call_id": "call_1", "content": "18C sunny"},
    ],
    "tools": [{"type": "function", "function": {"name": "get_weather", "parameters": {"type": "object"}}}],
}  # fmt: skip


@pytest.fixture
def gateway(tmp_path: Path, monkeypatch):
    """A gateway in front of an instant OpenAI-format upstream, and the refusal checks its OpenAI provider made."""
    monkeypatch.setenv("FAST_KEY", "sk-test")
    checked: list[str] = []
    refusal = OpenAIProvider.refusal

    def counted(self, request):
        checked.append(request.model)
        return refusal(self, request)

    monkeypatch.setattr(OpenAIProvider, "refusal", counted)
    with InstantOpenAI() as url:
        model = {"provider": "openai", "base_url": url, "api_key_env": "FAST_KEY", "price_as": HAIKU}
        config = parse_config({
            "models": {
                "fast": {**model, "model": "fast-v1"},
                "texty": {**model, "model": "texty-v1", "inputs": ["text"]},
            },
            "routes": {
                "capped": {"model": "fast", "tokens": {"max_tokens": 4}},
                "falls": {"model": "texty", "fallback": ["fast"]},
            },
        })  # fmt: skip
        with TestClient(create_app(config, str(tmp_path / "ledger.duckdb"))) as client:
            yield client, checked


def _post(client, model: str, stream: bool = False, **body):
    return client.post("/v1/chat/completions", json={**RICH, "model": model, "stream": stream, **body})


@pytest.mark.parametrize("stream", [False, True])
def test_a_request_the_model_can_take_is_checked_once(gateway, stream: bool) -> None:
    client, checked = gateway
    answer = _post(client, "fast", stream)
    assert answer.status_code == 200, answer.text
    assert checked == ["fast"]  # the gateway's, before the budget: not again in the client nor in the provider


def test_a_request_the_call_path_changed_is_checked_again(gateway) -> None:
    client, checked = gateway
    answer = _post(client, "capped", max_tokens=64)  # the route caps it at 4: what is sent is another request
    assert answer.status_code == 200, answer.text
    assert checked == ["fast", "fast-v1"]


def test_a_fallback_that_takes_what_the_model_cannot_is_checked_where_it_is_sent(gateway) -> None:
    client, checked = gateway
    answer = _post(client, "falls")
    assert answer.status_code == 200, answer.text
    assert answer.json()["tokenomy"]["model"] == "fast-v1"  # texty reads text only: its fallback answered
    # Only the gateway's: texty refused by its inputs (no provider check), fast cleared, and sent as cleared
    assert checked == ["texty"]


def test_what_no_model_can_take_is_still_refused_by_name(gateway) -> None:
    client, _ = gateway
    answer = _post(client, "fast", thinking={"type": "enabled", "budget_tokens": 2048})
    assert answer.status_code == 400
    error = answer.json()["error"]
    assert error["param"] == "thinking.budget_tokens" and "reasoning_effort" in error["message"]
    assert json.loads(_post(client, "texty").text)["error"]["code"] == "unsupported_content"


def test_tool_pairs_are_checked_once_a_request(gateway, monkeypatch) -> None:
    # The gateway asks it before the budget; the client, which asks a library caller's request before any attempt,
    # does not ask the gateway's again (a request the route's cap changed included).
    from tokenomy.providers import block_refusals

    client, _ = gateway
    walked: list[int] = []
    pairs = block_refusals.tool_pairs_refusal

    def counted(request):
        walked.append(len(request.messages))
        return pairs(request)

    monkeypatch.setattr(block_refusals, "tool_pairs_refusal", counted)
    for model in ("fast", "capped"):
        answer = _post(client, model)
        assert answer.status_code == 200, answer.text
    messages = {  # an Anthropic caller's, its own field carried (`mapped`: the client gets the request as sent)
        "model": "fast",
        "max_tokens": 8,
        "service_tier": "auto",
        "messages": [
            {"role": "user", "content": "Weather in Paris?"},
            {"role": "assistant", "content": [{"type": "tool_use", "id": "t1", "name": "w", "input": {}}]},
            {"role": "user", "content": [{"type": "tool_result", "tool_use_id": "t1", "content": "sunny"}]},
        ],
    }
    answer = client.post("/v1/messages", json=messages)
    assert answer.status_code == 200, answer.text
    assert walked == [3, 3, 3]
