"""What Bedrock's Converse refuses of a request (redacted reasoning that is no base64, tool_choice none in a
conversation with tool calls, such a conversation with no tools, a tools cache point on Amazon Nova, requestMetadata that does not fit Bedrock's limits)
was found only at call time, inside the mapping: after the admission and budget reservation, with a $0 client_error
ledger row per model for a call never sent (or, for requestMetadata the caller passed through, by Bedrock itself
after the call was made). The official SDKs drive a real gateway on 127.0.0.1 in front of the Bedrock emulator: each
is now a 400 naming the field before the mapping is ever asked to send it, with no ledger row."""

from __future__ import annotations

import contextlib
from typing import Any

import anthropic
import boto3
import openai
import pytest
from botocore.config import Config
from botocore.exceptions import ClientError

from helpers import stand_in_aws_keys
from helpers.openai_samples import WEATHER_CALLED
from tokenomy.config import parse_config
from tokenomy.emulate.bedrock_runtime import create_app as create_bedrock
from tokenomy.emulate.instant_engine import InstantEngine
from tokenomy.emulate.server import ServerThread
from tokenomy.gateway.app import create_app
from tokenomy.ledger.store import open_store

pytestmark = pytest.mark.slow
HAIKU = "anthropic.claude-3-haiku-20240307-v1:0"
NOVA = "amazon.nova-lite-v1:0"
HI = {"role": "user", "content": "hi"}
WEATHER = {
    "name": "get_weather",
    "description": "Weather in a city",
    "input_schema": {"type": "object", "properties": {"city": {"type": "string"}}},
}


@pytest.fixture
def served(tmp_path, monkeypatch):
    """The gateway in front of the Bedrock emulator (`Served`), stopped after the test."""
    with contextlib.ExitStack() as stack:
        yield Served(tmp_path / "ledger.duckdb", monkeypatch, stack)


class Served:
    """The gateway at `url`; `tried` holds each request the Bedrock provider's mapping was asked to send (at call
    time, after admission, whether or not it then refuses). `rows()` stops the gateway and reads its ledger."""

    def __init__(self, ledger, monkeypatch, stack: contextlib.ExitStack) -> None:
        from tokenomy.providers import converse_mapping

        stand_in_aws_keys(monkeypatch)
        self.ledger, self.stack, self.tried = ledger, stack, []
        original = converse_mapping.to_converse_params
        monkeypatch.setattr(
            "tokenomy.providers.bedrock.to_converse_params",
            lambda request: self.tried.append(request) or original(request),
        )
        bedrock = stack.enter_context(ServerThread(create_bedrock(engine=InstantEngine())))
        config = parse_config(
            {
                "models": {
                    "haiku": {"provider": "bedrock", "region": "us-east-1", "endpoint_url": bedrock, "model": HAIKU},
                    "nova": {"provider": "bedrock", "region": "us-east-1", "endpoint_url": bedrock, "model": NOVA},
                }
            }
        )
        self.url = stack.enter_context(ServerThread(create_app(config, str(ledger)), lifespan="on"))

    def rows(self) -> list[Any]:
        self.stack.close()  # the gateway's ledger writer flushes and lets the file go
        return open_store(str(self.ledger)).events()

    def no_call_was_made(self) -> None:
        assert self.tried == []  # the mapping was never asked: refused before admission, not inside an attempt
        assert self.rows() == []  # and no $0 client_error row for a call never sent


def clients(url: str):
    chat = openai.OpenAI(base_url=url + "/v1", api_key="unused", max_retries=0)
    claude = anthropic.Anthropic(base_url=url, api_key="unused", max_retries=0)
    converse = boto3.client(
        "bedrock-runtime",
        endpoint_url=url,
        region_name="us-east-1",
        config=Config(retries={"max_attempts": 1, "mode": "standard"}),
    )
    return chat, claude, converse


def test_redacted_reasoning_that_is_no_base64_is_refused_before_any_call(served) -> None:
    chat, claude, _ = clients(served.url)
    says = f"Bedrock Converse (model {HAIKU}) carries redacted reasoning as bytes, and this block's is not base64"
    thought = [
        {"role": "user", "content": "hi"},
        {
            "role": "assistant",
            "content": [{"type": "redacted_thinking", "data": "not base64!"}, {"type": "text", "text": "hello"}],
        },
        {"role": "user", "content": "again"},
    ]
    for stream in (False, True):
        with pytest.raises(anthropic.BadRequestError) as refused:
            reply = claude.messages.create(model="haiku", max_tokens=20, messages=thought, stream=stream)
            list(reply) if stream else None
        assert refused.value.body["error"]["message"] == f"messages.1.content.0: {says}; drop the block"
    # An OpenAI caller's redacted thinking block, after a system message the mapping hoists out (counted as sent)
    said = [
        HI,
        {"role": "system", "content": "Be brief."},
        {
            "role": "assistant",
            "content": "hello",
            "thinking_blocks": [{"type": "redacted_thinking", "data": "not base64!"}],
        },
        HI,
    ]
    with pytest.raises(openai.BadRequestError) as refused:
        chat.chat.completions.create(model="haiku", messages=said, max_tokens=20)
    assert refused.value.body["param"].startswith("messages[2]")
    assert says in refused.value.body["message"]
    served.no_call_was_made()


def test_a_tool_choice_converse_cannot_say_is_refused_before_any_call(served) -> None:
    chat, claude, _ = clients(served.url)
    says = (
        f"tool_choice: Bedrock Converse (model {HAIKU}) has no 'none' tool choice, and a conversation with tool "
        "calls must declare its tools; send tool_choice auto (and ask in the prompt for no tool call) instead"
    )
    turns = list(WEATHER_CALLED)
    tools = [{"type": "function", "function": {"name": WEATHER["name"], "parameters": WEATHER["input_schema"]}}]
    for stream in (False, True):
        with pytest.raises(openai.BadRequestError) as refused:
            reply = chat.chat.completions.create(
                model="haiku", messages=turns, tools=tools, tool_choice="none", max_tokens=20, stream=stream
            )
            list(reply) if stream else None
        assert refused.value.body["param"] == "tool_choice"
        assert refused.value.body["message"] == says
    asked = [
        {"role": "user", "content": "Weather in Paris?"},
        {
            "role": "assistant",
            "content": [{"type": "tool_use", "id": "c1", "name": "get_weather", "input": {"city": "Paris"}}],
        },
        {"role": "user", "content": [{"type": "tool_result", "tool_use_id": "c1", "content": "sunny"}]},
    ]
    with pytest.raises(anthropic.BadRequestError) as refused:
        claude.messages.create(
            model="haiku", max_tokens=20, messages=asked, tools=[WEATHER], tool_choice={"type": "none"}
        )
    assert refused.value.body["error"]["message"] == says
    with pytest.raises(openai.BadRequestError) as refused:  # a tool call forced with no tools to call
        chat.chat.completions.create(model="haiku", messages=[HI], tool_choice="required", max_tokens=20)
    assert refused.value.body["param"] == "tool_choice"
    assert refused.value.body["message"] == (
        f"tool_choice: Bedrock Converse (model {HAIKU}) cannot force a tool call "
        "(any) when no tools are given; send the tools, or leave tool_choice out"
    )
    served.no_call_was_made()


def test_a_conversation_with_tool_calls_and_no_tools_is_refused_before_any_call(served) -> None:
    """A follow-up turn (OpenAI takes it: "summarise") whose history holds tool calls and results but that declares no
    tools: Bedrock refuses it without toolConfig, and declared by the gateway the tools could be called (Converse has
    no 'none' choice). It reached Bedrock and came back as its 400 after an attempt."""
    chat, claude, converse = clients(served.url)
    says = (
        f"tools: Bedrock Converse (model {HAIKU}) requires the tools of a conversation with tool calls to be declared "
        "(toolConfig), and has no 'none' tool choice to keep the model from calling them; send the tools the "
        "conversation's calls used, with tool_choice auto"
    )
    turns = [*WEATHER_CALLED, {"role": "user", "content": "Summarise."}]
    for stream in (False, True):
        for choice in ({}, {"tool_choice": "auto"}):
            with pytest.raises(openai.BadRequestError) as refused:
                reply = chat.chat.completions.create(
                    model="haiku", messages=turns, max_tokens=20, stream=stream, **choice
                )
                list(reply) if stream else None
            assert refused.value.status_code == 400
            assert refused.value.body["param"] == "tools"
            assert refused.value.body["message"] == says
    asked = [
        {"role": "user", "content": "Weather in Paris?"},
        {
            "role": "assistant",
            "content": [{"type": "tool_use", "id": "c1", "name": "get_weather", "input": {"city": "Paris"}}],
        },
        {"role": "user", "content": [{"type": "tool_result", "tool_use_id": "c1", "content": "sunny"}]},
    ]
    with pytest.raises(anthropic.BadRequestError) as refused:  # an Anthropic caller's (its API takes it)
        claude.messages.create(model="haiku", max_tokens=20, messages=asked)
    assert refused.value.body["error"]["message"] == says
    with pytest.raises(ClientError) as failed:  # a Converse caller's: refused as Bedrock would, without the attempt
        converse.converse(
            modelId="haiku",
            messages=[
                {"role": "user", "content": [{"text": "Weather in Paris?"}]},
                {
                    "role": "assistant",
                    "content": [{"toolUse": {"toolUseId": "c1", "name": "get_weather", "input": {}}}],
                },
                {"role": "user", "content": [{"toolResult": {"toolUseId": "c1", "content": [{"text": "sunny"}]}}]},
            ],
        )
    assert failed.value.response["ResponseMetadata"]["HTTPStatusCode"] == 400
    assert failed.value.response["Error"]["Message"].startswith(
        f"toolConfig.tools: Bedrock Converse (model {HAIKU}) requires"
    )
    served.no_call_was_made()


def test_a_tools_cache_point_on_nova_is_refused_before_any_call(served) -> None:
    _, claude, converse = clients(served.url)
    cached = {**WEATHER, "cache_control": {"type": "ephemeral"}}
    for stream in (False, True):
        with pytest.raises(anthropic.BadRequestError) as refused:
            reply = claude.messages.create(model="nova", max_tokens=20, messages=[HI], tools=[cached], stream=stream)
            list(reply) if stream else None
        message = refused.value.body["error"]["message"]
        assert message.startswith(f"tools: Bedrock Converse (model {NOVA}) takes no cache point in its tools"), message
    tool = {"toolSpec": {"name": "get_weather", "inputSchema": {"json": WEATHER["input_schema"]}}}
    with pytest.raises(ClientError) as failed:
        converse.converse(
            modelId="nova",
            messages=[{"role": "user", "content": [{"text": "hi"}]}],
            toolConfig={"tools": [tool, {"cachePoint": {"type": "default"}}]},
        )
    assert failed.value.response["ResponseMetadata"]["HTTPStatusCode"] == 400
    assert "takes no cache point in its tools" in failed.value.response["Error"]["Message"]
    served.no_call_was_made()


@pytest.mark.parametrize(
    ("asked", "field", "why"),
    [
        ({"user": "ann <ann@example.com>"}, "user", "takes an end-user id in requestMetadata, as at most 256"),
        (
            {"extra_body": {"requestMetadata": {"app": "<shop>"}}},
            "requestMetadata.app",
            "takes requestMetadata values of at most 256",
        ),
        (
            {"extra_body": {"requestMetadata": {"app": "x" * 257}}},
            "requestMetadata.app",
            "takes requestMetadata values of at most 256",
        ),
        (
            {"extra_body": {"requestMetadata": {"a key!": "x"}}},
            "requestMetadata",
            "takes requestMetadata keys of 1 to 256",
        ),
        (
            {"extra_body": {"requestMetadata": {f"k{i}": "v" for i in range(16)}}, "user": "ann"},
            "requestMetadata",
            "takes at most 16 requestMetadata entries",
        ),
        ({"extra_body": {"requestMetadata": ["app"]}}, "requestMetadata", "takes requestMetadata as an object"),
        (
            {"extra_body": {"requestMetadata": {"user_id": "bob"}}, "user": "ann"},
            "requestMetadata.user_id",
            "holds the end-user id (`user`) as user_id, and this request gives user_id another value",
        ),
    ],
)
def test_request_metadata_that_does_not_fit_bedrocks_limits_is_refused_before_any_call(served, asked, field, why):
    chat, _, _ = clients(served.url)
    for stream in (False, True):
        with pytest.raises(openai.BadRequestError) as refused:
            reply = chat.chat.completions.create(model="haiku", messages=[HI], max_tokens=20, stream=stream, **asked)
            list(reply) if stream else None
        assert refused.value.body["param"] == field
        assert refused.value.body["message"].startswith(f"{field}: Bedrock Converse (model {HAIKU}) {why}")
    served.no_call_was_made()


def test_request_metadata_that_fits_reaches_bedrock(served) -> None:
    chat, _, converse = clients(served.url)
    metadata = {f"k{i}": "v" * 256 for i in range(15)}
    reply = chat.chat.completions.create(
        model="haiku", messages=[HI], max_tokens=20, user="ann", extra_body={"requestMetadata": metadata}
    )
    assert reply.choices[0].message.content
    reply = converse.converse(
        modelId="haiku",
        messages=[{"role": "user", "content": [{"text": "hi"}]}],
        requestMetadata={"app": "shop", "empty": ""},
    )
    assert reply["output"]["message"]["content"][0]["text"]
    assert len(served.tried) == 2
    with pytest.raises(ClientError) as failed:  # Converse's own caller: the same refusal, named as it sent it
        converse.converse(
            modelId="haiku", messages=[{"role": "user", "content": [{"text": "hi"}]}], requestMetadata={"app": "<shop>"}
        )
    assert failed.value.response["ResponseMetadata"]["HTTPStatusCode"] == 400
    message = failed.value.response["Error"]["Message"]
    assert message.startswith(f"requestMetadata.app: Bedrock Converse (model {HAIKU})")
    assert len(served.tried) == 2 and len(served.rows()) == 2
