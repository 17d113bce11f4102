"""The requests Claude Code sends, as it sends them (`ANTHROPIC_BASE_URL` → `POST /v1/messages?beta=true`), on the
gateway in front of Anthropic's API (a scripted upstream), Claude on Bedrock (the emulator, through Converse) and an
OpenAI-format model: each is carried, not refused."""

from __future__ import annotations

import contextlib
import json

import anthropic
import httpx
import pytest

from helpers import stand_in_aws_keys
from helpers.recording_openai import RecordingOpenAI
from helpers.scripted_anthropic import ScriptedAnthropic
from tokenomy.config import parse_config
from tokenomy.emulate.bedrock_runtime import create_app as create_bedrock
from tokenomy.emulate.instant_engine import InstantEngine
from tokenomy.emulate.server import ServerThread
from tokenomy.gateway.app import create_app

HAIKU = "anthropic.claude-3-haiku-20240307-v1:0"
SESSION = "user_" + "a" * 64 + "_account__session_5f0c1e1a-3c3b-4b4a-8d8d-0f1e2d3c4b5a"
BETAS = "claude-code-20250219,interleaved-thinking-2025-05-14,fine-grained-tool-streaming-2025-05-14"
HEADERS = {"anthropic-version": "2023-06-01", "anthropic-beta": BETAS, "x-api-key": "unused", "x-app": "cli"}
# Claude Code's system prompt: its identity line and its instructions, each block a cache point of its own.
SYSTEM = [
    {
        "type": "text",
        "text": "You are Claude Code, Anthropic's official CLI for Claude.",
        "cache_control": {"type": "ephemeral"},
    },
    {
        "type": "text",
        "text": "\nYou are an interactive CLI tool that helps users with software engineering tasks.",
        "cache_control": {"type": "ephemeral"},
    },
]
BASH = {
    "name": "Bash",
    "description": "Run a command",
    "input_schema": {
        "type": "object",
        "properties": {"command": {"type": "string"}},
        "required": ["command"],
        "additionalProperties": False,
        "$schema": "http://json-schema.org/draft-07/schema#",
    },
}
FIRST = [
    {
        "role": "user",
        "content": [
            {"type": "text", "text": "<system-reminder>\nThe date is today.\n</system-reminder>"},
            {"type": "text", "text": "list the files", "cache_control": {"type": "ephemeral"}},
        ],
    }
]


# The max_tokens Claude Code sends for each route's model: its cap for Claude 3 Haiku is the model's maximum output
# (4096, which Bedrock refuses to exceed); 32000 for later models.
MAX_TOKENS = {"haiku": 4096}


def first_request(model: str, **fields) -> dict:
    """The opening request of a Claude Code session (thinking off)."""
    return {
        "model": model,
        "messages": FIRST,
        "temperature": 1,
        "system": SYSTEM,
        "tools": [BASH],
        "metadata": {"user_id": SESSION},
        "max_tokens": MAX_TOKENS.get(model, 32000),
        "stream": True,
        **fields,
    }


@pytest.fixture(scope="module")
def served(tmp_path_factory):
    """A gateway in front of a scripted Anthropic API ("claude"), the Bedrock emulator ("haiku") and a recording
    OpenAI-format upstream ("gpt"); `sent` holds the Converse params the Bedrock provider sent."""
    from tokenomy.providers import bedrock as bedrock_provider
    from tokenomy.providers import converse_mapping

    scripted, sent = ScriptedAnthropic(), []
    with contextlib.ExitStack() as stack:
        env = stack.enter_context(pytest.MonkeyPatch.context())
        stand_in_aws_keys(env)
        original = converse_mapping.to_converse_params
        env.setattr(bedrock_provider, "to_converse_params", lambda request: sent.append(original(request)) or sent[-1])
        bedrock = stack.enter_context(ServerThread(create_bedrock(engine=InstantEngine())))
        openai_up = stack.enter_context(RecordingOpenAI())
        claude_api = stack.enter_context(ServerThread(scripted.app))
        config = parse_config(
            {
                "models": {
                    "claude": {"provider": "anthropic", "model": "claude-sonnet-4-5-20250929", "base_url": claude_api},
                    "haiku": {"provider": "bedrock", "region": "us-east-1", "endpoint_url": bedrock, "model": HAIKU},
                    "gpt": {"provider": "openai", "model": "up-model", "base_url": openai_up.url, "price_as": HAIKU},
                }
            }
        )
        ledger = tmp_path_factory.mktemp("cc") / "ledger.duckdb"
        url = stack.enter_context(ServerThread(create_app(config, str(ledger)), lifespan="on"))
        yield {"url": url, "scripted": scripted, "sent": sent, "openai": openai_up}


def events(served, body: dict) -> list[dict]:
    with httpx.stream("POST", served["url"] + "/v1/messages?beta=true", json=body, headers=HEADERS) as response:
        assert response.status_code == 200, response.read()
        return [json.loads(line[6:]) for line in response.iter_lines() if line.startswith("data: ")]


def test_claude_codes_first_request_with_both_system_blocks_cached_reaches_each_model(served) -> None:
    # Was a 400 on every route ("system.0.cache_control: ... move cache_control to the last block"): Claude Code
    # marks both of its system blocks, so no session could start.
    scripted = served["scripted"]
    scripted.requests.clear()
    kinds = [e["type"] for e in events(served, first_request("claude"))]
    assert kinds[0] == "message_start" and kinds[-2:] == ["message_delta", "message_stop"]
    assert scripted.requests[-1][1]["system"] == SYSTEM  # the caller's blocks and cache points, as sent
    assert events(served, first_request("haiku"))[-1]["type"] == "message_stop"
    assert served["sent"][-1]["system"] == [
        {"text": SYSTEM[0]["text"]},
        {"cachePoint": {"type": "default"}},
        {"text": SYSTEM[1]["text"]},
        {"cachePoint": {"type": "default"}},
    ]
    assert events(served, first_request("gpt"))[-1]["type"] == "message_stop"
    system = served["openai"].bodies[-1]["messages"][0]
    assert system == {"role": "system", "content": SYSTEM[0]["text"] + "\n" + SYSTEM[1]["text"]}


def test_a_one_hour_cache_point_on_a_system_block_before_the_last_is_carried(served) -> None:
    sdk = anthropic.Anthropic(base_url=served["url"], api_key="unused", max_retries=0)
    system = [{**SYSTEM[0], "cache_control": {"type": "ephemeral", "ttl": "1h"}}, {"type": "text", "text": "Rules."}]
    sdk.messages.create(model="claude", max_tokens=5, system=system, messages=[{"role": "user", "content": "hi"}])
    assert served["scripted"].requests[-1][1]["system"] == system


def test_claude_code_on_bedrock_reaches_an_openai_format_route_without_its_betas(served) -> None:
    # CLAUDE_CODE_USE_BEDROCK=1 puts Claude Code's betas in every InvokeModel body (`anthropic_beta`); a route to a
    # GPT model was refused for them ("anthropic_beta: the gateway carries this field to Bedrock and Anthropic
    # models only"). It now answers without them, as /v1/messages answers without the anthropic-beta header.
    sdk = anthropic.AnthropicBedrock(
        base_url=served["url"], aws_region="us-east-1", aws_access_key="x", aws_secret_key="x", max_retries=0
    )
    with sdk.beta.messages.stream(
        model="gpt",
        max_tokens=32000,
        system=SYSTEM,
        messages=FIRST,
        tools=[BASH],
        betas=BETAS.split(","),
        extra_body={"temperature": 1},
    ) as stream:
        kinds = [event.type for event in stream]
        final = stream.get_final_message()
    assert kinds[0] == "message_start" and kinds[-1] == "message_stop"
    assert [block.type for block in final.content] == ["tool_use"] and final.content[0].name == "Bash"
    body = served["openai"].bodies[-1]
    assert "anthropic_beta" not in body and body["tools"][0]["function"]["name"] == "Bash"


@pytest.mark.parametrize("model", ["haiku", "gpt"])
def test_claude_codes_context_management_is_refused_off_anthropic_with_the_setting_that_stops_it(served, model):
    # With thinking on, Claude Code sends context_management (clear_thinking_20251015) on every request; the route's
    # models cannot take it through the Messages API, and its user cannot edit the request: the 400 names the
    # field and the Claude Code settings that stop it.
    body = first_request(
        model,
        thinking={"type": "enabled", "budget_tokens": 31999},
        context_management={"edits": [{"type": "clear_thinking_20251015", "keep": "all"}]},
    )
    response = httpx.post(served["url"] + "/v1/messages?beta=true", json=body, headers=HEADERS)
    assert response.status_code == 400
    message = response.json()["error"]["message"]
    assert message.startswith("context_management: the gateway carries this field to Anthropic models only")
    assert "CLAUDE_CODE_DISABLE_EXPERIMENTAL_BETAS=1" in message and "turn thinking off" in message


def test_claude_codes_own_tool_fields_reach_claude_and_a_streaming_hint_is_answered_elsewhere(served) -> None:
    # Claude Code sends `eager_input_streaming` (fine-grained tool streaming) and `defer_loading` (tool search) on
    # its tools; each was refused on every route ("tools.0.eager_input_streaming: the gateway cannot carry this
    # field of a tool"), Anthropic's API included. They now reach Anthropic's API as sent; another model streams a
    # tool's input as it is written anyway, so the hint is answered there without the field; a field it cannot
    # honour (defer_loading) is refused by name.
    scripted = served["scripted"]
    tools = [
        BASH | {"eager_input_streaming": True},
        BASH | {"name": "mcp__db__query", "defer_loading": True, "input_examples": [{"command": "ls"}]},
    ]
    events(served, first_request("claude", tools=tools))
    assert scripted.requests[-1][1]["tools"] == tools
    kinds = [e["type"] for e in events(served, first_request("gpt", tools=tools[:1]))]
    assert kinds[-1] == "message_stop" and "eager_input_streaming" not in json.dumps(served["openai"].bodies[-1])
    assert events(served, first_request("haiku", tools=tools[:1]))[-1]["type"] == "message_stop"
    assert "eager_input_streaming" not in json.dumps(served["sent"][-1]["toolConfig"])
    for model in ("gpt", "haiku"):
        refused = httpx.post(
            served["url"] + "/v1/messages?beta=true",
            headers=HEADERS,
            json=first_request(model, tools=tools, stream=False),
        )
        assert refused.status_code == 400
        assert "(`tools.1.defer_loading`)" in refused.json()["error"]["message"]
