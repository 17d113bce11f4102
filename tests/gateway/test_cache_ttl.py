"""1-hour prompt-cache points through the gateway: Anthropic's `cache_control: {"type": "ephemeral", "ttl": "1h"}` on
/v1/messages and Bedrock's `cachePoint: {"type": "default", "ttl": "1h"}` on Converse reach Claude as sent, the
answer's split of cache writes by lifetime comes back in each API's shape, and the ledger prices 1-hour writes at the
1-hour cache-write price. A model with no 1-hour cache (or no 1-hour price) and a ttl no API has are 400s naming
the place, before anything is sent."""

from __future__ import annotations

import contextlib
from decimal import Decimal

import anthropic
import boto3
import httpx
import pytest
from botocore.config import Config
from botocore.exceptions import ClientError

from helpers.converse_capture import record_converse
from helpers.ledger_rows import written_rows
from helpers.scripted_anthropic import USAGE, ScriptedAnthropic
from helpers.scripted_openai import ScriptedOpenAI
from tokenomy.caching.placement import estimate_input_tokens
from tokenomy.config import parse_config
from tokenomy.emulate.bedrock_runtime import create_app as create_bedrock
from tokenomy.emulate.instant_engine import InstantEngine
from tokenomy.emulate.prompt_cache import PromptCache
from tokenomy.emulate.server import ServerThread
from tokenomy.gateway.app import create_app
from tokenomy.ledger.store import open_store
from tokenomy.pricing.catalog import default_catalog
from tokenomy.providers.anthropic_inbound import request_from_anthropic

SONNET = "claude-sonnet-4-5-20250929"
BEDROCK_SONNET = "anthropic.claude-sonnet-4-5-20250929-v1:0"  # 1-hour caching on Bedrock: Claude 4.5 and later
BEDROCK_SONNET_4 = "anthropic.claude-sonnet-4-20250514-v1:0"  # 5-minute caching only: no 1-hour price
HOUR = {"type": "ephemeral", "ttl": "1h"}
HOUR_POINT = {"cachePoint": {"type": "default", "ttl": "1h"}}
SPLIT = {
    **USAGE,
    "cache_creation_input_tokens": 3000,
    "cache_read_input_tokens": 500,
    "cache_creation": {"ephemeral_5m_input_tokens": 1000, "ephemeral_1h_input_tokens": 2000},
}
NO_RETRIES = Config(retries={"max_attempts": 1, "mode": "standard"})


def priced(model: str, region: str | None, row) -> Decimal:
    """What the row should cost by the catalog: 5-minute writes at cache_write, 1-hour ones at cache_write_1h."""
    entry = default_catalog().lookup(model, region)
    one_hour = int(row.tags.get("cache_write_1h_tokens", 0))
    return (
        row.input_tokens * entry.input
        + row.output_tokens * entry.output
        + row.cache_read_tokens * entry.cache_read
        + (row.cache_write_tokens - one_hour) * entry.cache_write
        + one_hour * entry.cache_write_1h
    ) / 10**6


@pytest.fixture
def messages_gateway(tmp_path):
    """(scripted Anthropic upstream, gateway URL, ledger path)."""
    scripted = ScriptedAnthropic()
    ledger = tmp_path / "ledger.duckdb"
    with ServerThread(scripted.app) as upstream, pytest.MonkeyPatch.context() as env:
        env.setenv("GPT_KEY", "unused")
        config = parse_config(
            {
                "models": {
                    "claude": {"provider": "anthropic", "model": SONNET, "base_url": upstream},
                    # An OpenAI-format model (never called: port 9 has no server): its API has no 1-hour cache.
                    "gpt": {
                        "provider": "openai",
                        "model": "gpt",
                        "base_url": "http://127.0.0.1:9/v1",
                        "api_key_env": "GPT_KEY",
                        "price_as": "gpt-4o-mini",
                    },
                }
            }
        )
        with ServerThread(create_app(config, str(ledger)), lifespan="on") as url:
            yield scripted, url, ledger


def test_one_hour_points_reach_claude_and_their_writes_are_billed_at_the_one_hour_price(messages_gateway) -> None:
    scripted, url, ledger = messages_gateway
    scripted.usage = SPLIT
    sdk = anthropic.Anthropic(base_url=url, api_key="unused", max_retries=0)
    reply = sdk.messages.create(
        model="claude",
        max_tokens=5,
        system=[{"type": "text", "text": "Rules.", "cache_control": HOUR}],
        tools=[{"name": "f", "input_schema": {"type": "object"}, "cache_control": HOUR}],
        messages=[
            {"role": "user", "content": [{"type": "text", "text": "hi", "cache_control": {"type": "ephemeral"}}]}
        ],
    )
    sent = scripted.requests[-1][1]
    assert sent["system"][0]["cache_control"] == HOUR and sent["tools"][-1]["cache_control"] == HOUR
    assert sent["messages"][0]["content"][-1]["cache_control"] == {"type": "ephemeral"}
    assert reply.usage.cache_creation_input_tokens == 3000
    assert (
        reply.usage.cache_creation.ephemeral_5m_input_tokens,
        reply.usage.cache_creation.ephemeral_1h_input_tokens,
    ) == (1000, 2000)
    # Streamed, with the 1-hour point on a tool result's own content: the split comes in message_delta's usage.
    turns = [
        {"role": "user", "content": "Weather?"},
        {"role": "assistant", "content": [{"type": "tool_use", "id": "t1", "name": "f", "input": {}}]},
        {
            "role": "user",
            "content": [
                {
                    "type": "tool_result",
                    "tool_use_id": "t1",
                    "content": [{"type": "text", "text": "18C", "cache_control": HOUR}],
                }
            ],
        },
    ]
    with sdk.messages.stream(
        model="claude", max_tokens=5, messages=turns, tools=[{"name": "f", "input_schema": {"type": "object"}}]
    ) as stream:
        deltas = [event.usage.to_dict() for event in stream if event.type == "message_delta"]
    assert scripted.requests[-1][1]["messages"][2]["content"][-1]["cache_control"] == HOUR
    assert deltas[-1]["cache_creation"] == SPLIT["cache_creation"]
    rows = written_rows(ledger, 2)
    assert len(rows) == 2
    for row in rows:
        assert (row.cache_write_tokens, row.cache_read_tokens, row.tags["cache_write_1h_tokens"]) == (3000, 500, "2000")
        entry = default_catalog().lookup(SONNET)
        assert row.cache_write_cost_usd == (1000 * entry.cache_write + 2000 * entry.cache_write_1h) / 10**6
        assert row.cost_usd == priced(SONNET, None, row)
        assert row.usage.cache_write_1h_tokens == 2000  # the row can be priced again from what it holds


def test_a_top_level_one_hour_cache_control_reaches_claude_as_sent(messages_gateway) -> None:
    scripted, url, _ = messages_gateway
    sdk = anthropic.Anthropic(base_url=url, api_key="unused", max_retries=0)
    sdk.messages.create(
        model="claude", max_tokens=5, messages=[{"role": "user", "content": "hi"}], extra_body={"cache_control": HOUR}
    )
    assert scripted.requests[-1][1]["cache_control"] == HOUR


@pytest.mark.parametrize(
    "change, named",
    [
        (
            {"system": [{"type": "text", "text": "s", "cache_control": {"type": "ephemeral", "ttl": "2h"}}]},
            "system.0.cache_control.ttl",
        ),
        (
            {
                "messages": [
                    {
                        "role": "user",
                        "content": [{"type": "text", "text": "a", "cache_control": {"type": "ephemeral", "ttl": "2h"}}],
                    }
                ]
            },
            "messages.0.content.0.cache_control.ttl",
        ),
        ({"cache_control": {"type": "ephemeral", "ttl": "2h"}}, "cache_control.ttl"),
    ],
)
def test_a_ttl_anthropic_lacks_is_a_400_naming_its_place_and_the_two_it_takes(messages_gateway, change, named) -> None:
    scripted, url, _ = messages_gateway
    body = {"model": "claude", "max_tokens": 8, "messages": [{"role": "user", "content": "hi"}], **change}
    answer = httpx.post(url + "/v1/messages", json=body)
    message = answer.json()["error"]["message"]
    assert answer.status_code == 400 and message.startswith(named + ":"), answer.text
    assert '"5m" or "1h"' in message  # the two the API takes (a 1-hour one was refused too)
    assert scripted.requests == []


def test_a_one_hour_point_to_a_model_without_a_one_hour_cache_is_a_400_naming_it(messages_gateway) -> None:
    scripted, url, ledger = messages_gateway
    sdk = anthropic.Anthropic(base_url=url, api_key="unused", max_retries=0)
    with pytest.raises(anthropic.BadRequestError) as refused:
        sdk.messages.create(
            model="gpt",
            max_tokens=5,
            messages=[
                {"role": "user", "content": "a"},
                {"role": "assistant", "content": "b"},
                {"role": "user", "content": [{"type": "text", "text": "c", "cache_control": HOUR}]},
            ],
        )
    message = refused.value.body["error"]["message"]
    assert "model `gpt`" in message and 'a 1-hour cache point (ttl "1h" at `messages.2`)' in message, message
    assert scripted.requests == [] and open_store(ledger).events() == []  # never sent as a 5-minute point


@pytest.fixture
def converse_gateway(tmp_path, monkeypatch):
    """(boto3 client, the Converse params the Bedrock provider sent, ledger path)."""
    sent = record_converse(monkeypatch)
    ledger = tmp_path / "ledger.duckdb"
    with ServerThread(create_bedrock(engine=InstantEngine(cache=PromptCache()))) as bedrock:
        config = parse_config(
            {
                "models": {
                    "sonnet": {
                        "provider": "bedrock",
                        "region": "us-east-1",
                        "endpoint_url": bedrock,
                        "model": BEDROCK_SONNET,
                    },
                    "sonnet-4": {
                        "provider": "bedrock",
                        "region": "us-east-1",
                        "endpoint_url": bedrock,
                        "model": BEDROCK_SONNET_4,
                    },
                }
            }
        )
        with ServerThread(create_app(config, str(ledger)), lifespan="on") as url:
            client = boto3.client("bedrock-runtime", endpoint_url=url, region_name="us-east-1", config=NO_RETRIES)
            yield client, sent, ledger


def test_boto3_converse_one_hour_points_reach_bedrock_and_come_back_split(converse_gateway) -> None:
    client, sent, ledger = converse_gateway
    system = [{"text": "rule " * 1500}, HOUR_POINT]  # over the model's 1,024-token minimum per cache point
    ask = [{"role": "user", "content": [{"text": "doc " * 1500}, {"cachePoint": {"type": "default"}}]}]
    reply = client.converse(modelId="sonnet", system=system, messages=ask, inferenceConfig={"maxTokens": 4})
    assert sent[-1]["system"][-1] == HOUR_POINT and sent[-1]["messages"][0]["content"][-1] == ask[0]["content"][-1]
    usage = reply["usage"]
    details = usage["cacheDetails"]
    assert [d["ttl"] for d in details] == ["1h", "5m"] and min(d["inputTokens"] for d in details) > 1000
    assert usage["cacheWriteInputTokens"] == sum(d["inputTokens"] for d in details)
    # Streamed: the system prompt's hour-long entry is read, the new question written for 5 minutes.
    ask[0]["content"][0]["text"] = "other " * 1500
    events = list(
        client.converse_stream(modelId="sonnet", system=system, messages=ask, inferenceConfig={"maxTokens": 4})[
            "stream"
        ]
    )
    streamed = events[-1]["metadata"]["usage"]
    assert streamed["cacheReadInputTokens"] == details[0]["inputTokens"]
    assert [d["ttl"] for d in streamed["cacheDetails"]] == ["5m"]
    rows = written_rows(ledger, 2)
    assert [r.tags.get("cache_write_1h_tokens") for r in rows] == [str(details[0]["inputTokens"]), None]
    for row in rows:
        assert row.cost_usd == priced(BEDROCK_SONNET, "us-east-1", row)


def test_boto3_converse_one_hour_point_to_a_model_without_one_is_a_400_naming_it(converse_gateway) -> None:
    client, sent, ledger = converse_gateway
    ask = [{"role": "user", "content": [{"text": "hi"}]}]
    with pytest.raises(ClientError) as refused:
        client.converse(modelId="sonnet-4", system=[{"text": "s"}, HOUR_POINT], messages=ask)
    message = refused.value.response["Error"]["Message"]
    assert refused.value.response["Error"]["Code"] == "ValidationException"
    assert 'a 1-hour cache point (ttl "1h" at `system`)' in message and BEDROCK_SONNET_4 in message, message
    with pytest.raises(ClientError, match=r"messages\[0\]\.content\[1\]\.cachePoint\.ttl"):
        client.converse(
            modelId="sonnet",
            messages=[{"role": "user", "content": [{"text": "hi"}, {"cachePoint": {"type": "default", "ttl": "2h"}}]}],
        )
    assert sent == [] and open_store(ledger).events() == []


def test_a_budget_reserves_a_one_hour_write_at_its_price(tmp_path) -> None:
    """The reservation takes every prompt token at the dearest write price the request may pay: 1-hour writes
    (2x input) where it asks for a 1-hour point, 5-minute ones (1.25x) otherwise."""
    from tokenomy.gateway.keys import KeyStore

    entry = default_catalog().lookup(SONNET)
    body = {
        "model": "claude",
        "max_tokens": 1,
        "messages": [{"role": "user", "content": [{"type": "text", "text": "word " * 8000, "cache_control": HOUR}]}],
    }
    prompt = estimate_input_tokens(request_from_anthropic(body))
    five_minutes, one_hour = (
        (prompt * rate + entry.output) / 10**6 for rate in (entry.cache_write, entry.cache_write_1h)
    )
    ledger = tmp_path / "ledger.duckdb"
    secret, _ = KeyStore(open_store(ledger)).create(budget_usd=(five_minutes + one_hour) / 2, period="month")
    scripted = ScriptedAnthropic()
    with ServerThread(scripted.app) as upstream:
        config = parse_config(
            {"auth": True, "models": {"claude": {"provider": "anthropic", "model": SONNET, "base_url": upstream}}}
        )
        with ServerThread(create_app(config, str(ledger)), lifespan="on") as url:
            sdk = anthropic.Anthropic(base_url=url, api_key=secret, max_retries=0)
            with pytest.raises(anthropic.RateLimitError, match="Budget exhausted"):
                sdk.messages.create(**body)
            body["messages"][0]["content"][0]["cache_control"] = {"type": "ephemeral"}
            assert sdk.messages.create(**body).content
    assert len(scripted.requests) == 1


class SilentEngine(InstantEngine):
    """An answer with no text (as Claude's empty turn after a tool result, or a reasoning model cut off while it
    thought): the stream ends before any piece of content."""

    def generate(self, prepared):
        yield ""
        yield 0, "stop"


@pytest.fixture(params=["bedrock", "openai"])
def end_counted(request, tmp_path):
    """(anthropic SDK on the gateway, route, a request builder): a route whose upstream counts its usage at the end of
    a stream, with cache writes: Claude on the Bedrock emulator (writes of both lifetimes) or an OpenAI-format upstream
    (5-minute writes, as GPT-6.x reports them)."""
    with contextlib.ExitStack() as stack:
        if request.param == "bedrock":
            bedrock = stack.enter_context(ServerThread(create_bedrock(engine=SilentEngine(cache=PromptCache()))))
            route = {"provider": "bedrock", "region": "us-east-1", "endpoint_url": bedrock, "model": BEDROCK_SONNET}
        else:
            upstream = stack.enter_context(contextlib.closing(ScriptedOpenAI([], reply=())))
            upstream.usage = {
                "prompt_tokens": 1000,
                "completion_tokens": 5,
                "total_tokens": 1005,
                "prompt_tokens_details": {"cached_tokens": 200, "cache_write_tokens": 300},
            }
            env = stack.enter_context(pytest.MonkeyPatch.context())
            env.setenv("GPT_KEY", "unused")
            route = {
                "provider": "openai",
                "model": "up",
                "base_url": upstream.url,
                "api_key_env": "GPT_KEY",
                "price_as": "gpt-4o-mini",
            }
        config = parse_config({"models": {"route": route}})
        url = stack.enter_context(ServerThread(create_app(config, str(tmp_path / "ledger.duckdb")), lifespan="on"))

        def ask(n: int) -> dict:  # each a prompt of its own (of one size), so each writes the cache anew
            point = HOUR if request.param == "bedrock" else {"type": "ephemeral"}  # OpenAI's API has no 1-hour cache
            system = [{"type": "text", "text": f"rule{n} " * 1500, "cache_control": point}]
            text = {"type": "text", "text": f"doc{n} " * 1500, "cache_control": {"type": "ephemeral"}}
            return {
                "model": "route",
                "max_tokens": 5,
                "system": system,
                "messages": [{"role": "user", "content": [text]}],
            }

        yield anthropic.Anthropic(base_url=url, api_key="unused", max_retries=0), ask, request.param


def test_a_streamed_answer_s_usage_is_the_whole_answer_s_for_a_route_counting_at_the_end(end_counted) -> None:
    """A streamed answer with no content before its end (an empty turn) went out with message_start's usage at
    {input_tokens: 0, output_tokens: 0}, though its counts were known by then: the SDK's final message had no
    `cache_creation` (the SDK takes the writes by lifetime from message_start alone), where the whole answer has them.
    message_start now carries the answer's counts, as Anthropic's does, and message_delta repeats them: the streamed
    usage is the whole one, key for key. (An answer with content streams before its upstream counts it: the split
    comes in message_delta, with the same numbers.)"""
    sdk, ask, kind = end_counted
    whole = sdk.messages.create(**ask(0)).usage.to_dict()
    with sdk.messages.stream(**ask(1)) as stream:
        events = [event for event in stream if event.type in ("message_start", "message_delta")]
        streamed = stream.get_final_message().usage.to_dict()
    started, delta = events[0].message.usage.to_dict(), events[-1].usage.to_dict()
    assert streamed == started == delta == whole, kind
    split = whole["cache_creation"]
    if kind == "bedrock":  # the system prompt written for an hour, the question for 5 minutes
        assert min(split.values()) > 1000
    else:
        assert split == {"ephemeral_5m_input_tokens": 300, "ephemeral_1h_input_tokens": 0}
    assert whole["cache_creation_input_tokens"] == sum(split.values())
