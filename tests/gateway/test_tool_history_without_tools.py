"""A follow-up turn whose history holds tool calls and results but that declares no tools (an OpenAI caller's final
"summarise" turn, which OpenAI takes). Anthropic's Messages API takes it too (since 2025-02-27; it refused it
before), so a Claude route sends it as it came: no tools declared, none can be called. Bedrock Converse refuses it
without toolConfig and has no 'none' choice, so the gateway refuses it before the call
(test_converse_pre_call_refusals), and a route whose fallback takes it is answered by the fallback: it went to Bedrock
and came back as Bedrock's 400. The official openai SDK drives a gateway on 127.0.0.1 in front of the Anthropic and
Bedrock emulators, the Anthropic one recording what it is sent."""

from __future__ import annotations

import openai
import pytest

from helpers import stand_in_aws_keys
from helpers.capturing_asgi import capturing
from helpers.ledger_rows import written_rows
from helpers.openai_samples import WEATHER_CALLED
from tokenomy.config import parse_config
from tokenomy.emulate.anthropic_api import create_app as create_anthropic
from tokenomy.emulate.bedrock_runtime import create_app as create_bedrock
from tokenomy.emulate.instant_engine import InstantEngine
from tokenomy.emulate.server import ServerThread
from tokenomy.gateway.app import create_app

pytestmark = pytest.mark.slow
HAIKU = "anthropic.claude-3-haiku-20240307-v1:0"
SONNET = "claude-sonnet-4-5-20250929"
TURNS = [*WEATHER_CALLED, {"role": "user", "content": "Summarise."}]


@pytest.fixture
def served(tmp_path):
    """(OpenAI client of the gateway, bodies the Anthropic emulator was sent, bodies the Bedrock one was, ledger)."""
    bodies: list[dict] = []
    converse: list[dict] = []
    ledger = tmp_path / "ledger.duckdb"
    with pytest.MonkeyPatch.context() as env:
        env.setenv("ANTHROPIC_API_KEY", "unused")
        stand_in_aws_keys(env)
        with (
            ServerThread(capturing(create_anthropic(engine=InstantEngine()), bodies)) as claude,
            ServerThread(capturing(create_bedrock(engine=InstantEngine()), converse)) as bedrock,
        ):
            config = parse_config(
                {
                    "models": {
                        "claude": {"provider": "anthropic", "model": SONNET, "base_url": claude},
                        "haiku": {
                            "provider": "bedrock",
                            "region": "us-east-1",
                            "endpoint_url": bedrock,
                            "model": HAIKU,
                        },
                    },
                    "routes": {"chain": {"model": "haiku", "fallback": ["claude"]}},
                }
            )
            with ServerThread(create_app(config, str(ledger)), lifespan="on") as url:
                client = openai.OpenAI(base_url=url + "/v1", api_key="unused", max_retries=0)
                yield client, bodies, converse, ledger


def test_claude_takes_the_tool_history_with_no_tools_declared(served) -> None:
    client, bodies, _, _ = served
    for stream in (False, True):
        reply = client.chat.completions.create(model="claude", messages=TURNS, max_tokens=20, stream=stream)
        text = "".join(c.choices[0].delta.content or "" for c in reply if c.choices) if stream else None
        assert text if stream else reply.choices[0].message.content
        sent = bodies[-1]
        assert "tools" not in sent and "tool_choice" not in sent  # none declared: Claude cannot call one
        assert sent["messages"][1]["content"][0]["type"] == "tool_use"
        assert sent["messages"][2]["content"][0]["type"] == "tool_result"


def test_a_route_bedrock_refuses_it_on_is_answered_by_its_claude_fallback(served) -> None:
    client, bodies, converse, ledger = served
    reply = client.chat.completions.create(model="chain", messages=TURNS, max_tokens=20)
    assert reply.choices[0].message.content
    assert converse == []  # refused before the call: Bedrock was never sent it
    assert len(bodies) == 1 and "tools" not in bodies[0]
    assert [row.model for row in written_rows(ledger, 1)] == [SONNET]
