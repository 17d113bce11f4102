"""`POST /v1/messages` (and chat completions) to an Anthropic upstream: what reaches the upstream, what the
caller gets back. The official SDKs drive a real gateway on 127.0.0.1 in front of a recording upstream."""

from __future__ import annotations

import anthropic
import httpx
import openai
import pytest

from helpers.scripted_anthropic import ScriptedAnthropic
from tokenomy.config import parse_config
from tokenomy.emulate.server import ServerThread
from tokenomy.gateway.app import create_app

SONNET = "claude-sonnet-4-5-20250929"
ASK = [{"role": "user", "content": "hi"}]
pytestmark = pytest.mark.filterwarnings("ignore:The model .* is deprecated:DeprecationWarning")


@pytest.fixture(scope="module")
def upstream():
    scripted = ScriptedAnthropic()
    with ServerThread(scripted.app) as url:
        yield scripted, url


@pytest.fixture(scope="module")
def gateway(upstream, tmp_path_factory):
    config = parse_config({"models": {"claude": {"provider": "anthropic", "model": SONNET, "base_url": upstream[1]}}})
    ledger = tmp_path_factory.mktemp("gw") / "ledger.duckdb"
    with ServerThread(create_app(config, str(ledger)), lifespan="on") as url:
        yield url


@pytest.fixture
def scripted(upstream):
    scripted = upstream[0]
    scripted.requests.clear()
    scripted.reply = {"text": "Hi", "stop_reason": "end_turn", "stop_sequence": None}
    scripted.broken = False
    return scripted


@pytest.fixture
def sdk(gateway):
    return anthropic.Anthropic(base_url=gateway, api_key="unused", max_retries=0)


def test_sampling_parameters_reach_the_upstream(gateway, scripted, sdk) -> None:
    # anthropic 2.x's messages.create has no temperature/top_p/top_k keywords and its API version refuses them:
    # callers send them in the body, and so does the gateway, under the API version that takes them.
    reply = sdk.messages.create(model="claude", max_tokens=5, messages=ASK, extra_body={"temperature": 0.2, "top_k": 3})
    assert reply.content[0].text == "Hi"
    with sdk.messages.stream(model="claude", max_tokens=5, messages=ASK, extra_body={"top_p": 0.9}) as stream:
        assert "".join(stream.text_stream) == "Hi"
    chat = openai.OpenAI(base_url=gateway + "/v1", api_key="unused", max_retries=0)
    assert chat.chat.completions.create(model="claude", messages=ASK, max_tokens=5, temperature=0.5).choices
    sent = [(headers["anthropic-version"], {k: body.get(k) for k in ("temperature", "top_p", "top_k")})
            for headers, body in scripted.requests]
    assert sent == [
        ("2023-06-01", {"temperature": 0.2, "top_p": None, "top_k": 3}),
        ("2023-06-01", {"temperature": None, "top_p": 0.9, "top_k": None}),
        ("2023-06-01", {"temperature": 0.5, "top_p": None, "top_k": None}),
    ]
    sdk.messages.create(model="claude", max_tokens=5, messages=ASK)  # no sampling: the SDK's own API version
    assert scripted.requests[-1][0]["anthropic-version"] == anthropic._constants.ANTHROPIC_API_VERSION


def test_a_fault_inside_a_stream_ends_it_with_an_error_event(gateway, scripted, sdk) -> None:
    scripted.broken = True
    with pytest.raises(anthropic.APIStatusError) as raised:
        with sdk.messages.stream(model="claude", max_tokens=5, messages=ASK) as stream:
            list(stream)
    assert raised.value.body["error"]["type"] == "api_error"
    assert "see the gateway's log" in raised.value.body["error"]["message"]
    assert "Traceback" not in str(raised.value.body)
    with httpx.stream("POST", gateway + "/v1/chat/completions",
                      json={"model": "claude", "messages": ASK, "max_tokens": 5, "stream": True}) as response:
        lines = [line for line in response.iter_lines() if line.startswith("data: ")]
    assert '"type": "server_error"' in lines[-2] and lines[-1] == "data: [DONE]"
