"""What Bedrock's Converse refuses of a request (redacted reasoning that is no base64) was found only at call time,
inside the mapping: after the admission and budget reservation, with a $0 client_error ledger row per model for a
call never sent, naming a message by its index after mid-conversation system messages were hoisted out. The official
SDKs drive a real gateway on 127.0.0.1 in front of the Bedrock emulator: each is now a 400 naming the field, as the
caller sent it, before the mapping is ever asked to send it, with no ledger row."""

from __future__ import annotations

import contextlib
from typing import Any

import anthropic
import boto3
import openai
import pytest
from botocore.config import Config

from helpers import stand_in_aws_keys
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
WEATHER = {"name": "get_weather", "description": "Weather in a city",
           "input_schema": {"type": "object", "properties": {"city": {"type": "string"}}}}


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
        monkeypatch.setattr("tokenomy.providers.bedrock.to_converse_params",
                            lambda request: self.tried.append(request) or original(request))
        bedrock = stack.enter_context(ServerThread(create_bedrock(engine=InstantEngine())))
        config = parse_config({"models": {
            "haiku": {"provider": "bedrock", "region": "us-east-1", "endpoint_url": bedrock, "model": HAIKU},
            "nova": {"provider": "bedrock", "region": "us-east-1", "endpoint_url": bedrock, "model": NOVA}}})
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
    converse = boto3.client("bedrock-runtime", endpoint_url=url, region_name="us-east-1",
                            config=Config(retries={"max_attempts": 1, "mode": "standard"}))
    return chat, claude, converse


def test_redacted_reasoning_that_is_no_base64_is_refused_before_any_call(served) -> None:
    chat, claude, _ = clients(served.url)
    says = f"Bedrock Converse (model {HAIKU}) carries redacted reasoning as bytes, and this block's is not base64"
    thought = [{"role": "user", "content": "hi"},
               {"role": "assistant", "content": [{"type": "redacted_thinking", "data": "not base64!"},
                                                 {"type": "text", "text": "hello"}]},
               {"role": "user", "content": "again"}]
    for stream in (False, True):
        with pytest.raises(anthropic.BadRequestError) as refused:
            reply = claude.messages.create(model="haiku", max_tokens=20, messages=thought, stream=stream)
            list(reply) if stream else None
        assert refused.value.body["error"]["message"] == f"messages.1.content.0: {says}; drop the block"
    # An OpenAI caller's redacted thinking block, after a system message the mapping hoists out (counted as sent)
    said = [HI, {"role": "system", "content": "Be brief."},
            {"role": "assistant", "content": "hello",
             "thinking_blocks": [{"type": "redacted_thinking", "data": "not base64!"}]}, HI]
    with pytest.raises(openai.BadRequestError) as refused:
        chat.chat.completions.create(model="haiku", messages=said, max_tokens=20)
    assert refused.value.body["param"].startswith("messages[2]")
    assert says in refused.value.body["message"]
    served.no_call_was_made()
