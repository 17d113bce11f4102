"""Cache points on an OpenAI-format route. Claude served behind an OpenAI-compatible endpoint (OpenRouter's
`anthropic/claude-...`, a LiteLLM proxy's `claude-...`) caches only where a content part carries `cache_control`, as
Anthropic's API does: the points the gateway places, and a caller's own, reach it there. OpenAI caches by itself and
refuses the field, so a plain OpenAI model gets none (README, "Cache points")."""

from __future__ import annotations

import json

import openai
import pytest

from helpers.recording_openai import RecordingOpenAI
from tokenomy.config import parse_config
from tokenomy.emulate.server import ServerThread
from tokenomy.gateway.app import create_app

pytestmark = pytest.mark.slow
EPHEMERAL = {"type": "ephemeral"}
# ~1,500 tokens at ~4 characters a token: past Claude Sonnet 4.5's 1,024-token minimum, so the route's caching
# places a point after it.
POLICY = "Answer as the support desk of a bicycle shop. " * 130
TOOL = {
    "type": "function",
    "function": {"name": "stock", "parameters": {"type": "object", "properties": {"sku": {"type": "string"}}}},
}


def models(url: str) -> dict:
    return {
        "models": {
            "or-claude": {
                "provider": "openai",
                "model": "anthropic/claude-sonnet-4.5",
                "base_url": url,
                "price_as": "claude-sonnet-4-5",
            },
            "gpt": {"provider": "openai", "model": "gpt-4o-mini", "base_url": url},
        }
    }


def test_the_gateways_cache_points_reach_claude_behind_an_openai_compatible_endpoint(ledger_path) -> None:
    with (
        RecordingOpenAI() as upstream,
        ServerThread(create_app(parse_config(models(upstream.url)), str(ledger_path)), lifespan="on") as url,
    ):
        client = openai.OpenAI(base_url=url + "/v1", api_key="unused", max_retries=0)
        for stream in (False, True):
            answer = client.chat.completions.create(
                model="or-claude",
                stream=stream,
                max_tokens=8,
                messages=[{"role": "system", "content": POLICY}, {"role": "user", "content": "Is the red one in?"}],
            )
            if stream:
                list(answer)
            system = upstream.bodies[-1]["messages"][0]
            assert system["role"] == "system"
            assert system["content"] == [{"type": "text", "text": POLICY, "cache_control": EPHEMERAL}]


def test_a_callers_own_cache_points_reach_claude_on_the_part_and_the_tool_they_mark(ledger_path) -> None:
    with (
        RecordingOpenAI() as upstream,
        ServerThread(create_app(parse_config(models(upstream.url)), str(ledger_path)), lifespan="on") as url,
    ):
        client = openai.OpenAI(base_url=url + "/v1", api_key="unused", max_retries=0)
        client.chat.completions.create(
            model="or-claude",
            max_tokens=8,
            tools=[{**TOOL, "cache_control": EPHEMERAL}],
            messages=[
                {
                    "role": "user",
                    "content": [
                        {"type": "text", "text": "Here is the catalogue."},
                        {"type": "text", "text": "Red, blue.", "cache_control": EPHEMERAL},
                    ],
                },
                {"role": "assistant", "content": "Noted."},
                {"role": "user", "content": "Is the red one in?"},
            ],
        )
        body = upstream.bodies[-1]
        assert body["messages"][0]["content"] == [
            {"type": "text", "text": "Here is the catalogue."},
            {"type": "text", "text": "Red, blue.", "cache_control": EPHEMERAL},
        ]
        assert body["messages"][1:] == [
            {"role": "assistant", "content": "Noted."},
            {"role": "user", "content": "Is the red one in?"},
        ]
        assert body["tools"] == [{**TOOL, "cache_control": EPHEMERAL}]


def test_a_plain_openai_model_gets_no_cache_control_which_it_would_refuse(ledger_path) -> None:
    with (
        RecordingOpenAI() as upstream,
        ServerThread(create_app(parse_config(models(upstream.url)), str(ledger_path)), lifespan="on") as url,
    ):
        client = openai.OpenAI(base_url=url + "/v1", api_key="unused", max_retries=0)
        client.chat.completions.create(
            model="gpt",
            max_tokens=8,
            tools=[{**TOOL, "cache_control": EPHEMERAL}],
            messages=[
                {"role": "system", "content": POLICY},
                {"role": "user", "content": [{"type": "text", "text": "Red, blue.", "cache_control": EPHEMERAL}]},
                {"role": "assistant", "content": "Noted."},
                {"role": "user", "content": "Is the red one in?"},
            ],
        )
        assert "cache_control" not in json.dumps(upstream.bodies[-1])  # OpenAI caches the prefix by itself


def test_a_one_hour_point_for_claude_over_the_openai_format_is_a_400_saying_why(ledger_path) -> None:
    with (
        RecordingOpenAI() as upstream,
        ServerThread(create_app(parse_config(models(upstream.url)), str(ledger_path)), lifespan="on") as url,
    ):
        client = openai.OpenAI(base_url=url + "/v1", api_key="unused", max_retries=0)
        with pytest.raises(openai.BadRequestError) as refused:
            client.chat.completions.create(
                model="or-claude",
                max_tokens=8,
                messages=[
                    {
                        "role": "user",
                        "content": [
                            {"type": "text", "text": "Policy.", "cache_control": {"type": "ephemeral", "ttl": "1h"}}
                        ],
                    },
                    {"role": "assistant", "content": "Noted."},
                    {"role": "user", "content": "Hi"},
                ],
            )
        assert "messages[0]" in str(refused.value) and "could not be priced" in str(refused.value)
        assert upstream.bodies == []  # nothing sent: a 5-minute point instead would be billed as one not asked for


def test_a_messages_callers_cache_control_reaches_claude_behind_an_openai_compatible_endpoint(ledger_path) -> None:
    import anthropic

    with (
        RecordingOpenAI() as upstream,
        ServerThread(create_app(parse_config(models(upstream.url)), str(ledger_path)), lifespan="on") as url,
    ):
        client = anthropic.Anthropic(base_url=url, api_key="unused", max_retries=0)
        client.messages.create(
            model="or-claude",
            max_tokens=8,
            system=[
                {"type": "text", "text": "House rules.", "cache_control": EPHEMERAL},
                {"type": "text", "text": "Policy text."},
            ],
            messages=[
                {"role": "user", "content": [{"type": "text", "text": "Catalogue.", "cache_control": EPHEMERAL}]},
                {"role": "assistant", "content": "Noted."},
                {"role": "user", "content": "Is the red one in?"},
            ],
        )
        body = upstream.bodies[-1]
        assert body["messages"][0]["content"][0] == {"type": "text", "text": "House rules.", "cache_control": EPHEMERAL}
        assert "cache_control" not in body["messages"][0]["content"][-1]
        assert body["messages"][1]["content"] == [{"type": "text", "text": "Catalogue.", "cache_control": EPHEMERAL}]
