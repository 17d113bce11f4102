"""An answer reporting more output tokens than the request let the model write (its max_tokens, times its `n`
choices) or than the model can write at all: billed as reported (the provider bills it), with a warning in the log
(no prompt, no key) and a tag on the ledger row that reports can group by. Before, nothing said so."""

from __future__ import annotations

import logging

import openai
import pytest

from helpers.scripted_openai import ScriptedOpenAI
from tokenomy.chat_response import Usage
from tokenomy.client import Tokenomy
from tokenomy.config import parse_config
from tokenomy.emulate.server import ServerThread
from tokenomy.gateway.app import create_app
from tokenomy.ledger.events import OVER_CAP_TAG
from tokenomy.ledger.store import open_store
from tokenomy.messages import ChatRequest
from tokenomy.pricing.cost import compute_cost
from tokenomy.providers.registry import ModelSpec

MINI = "gpt-4o-mini"  # the catalog's maximum output: 16,384 tokens


@pytest.fixture
def server():
    s = ScriptedOpenAI([])
    yield s
    s.close()


def _call(server, ledger_path, caplog, written: int, **asked) -> list:
    server.usage = {"prompt_tokens": 100, "completion_tokens": written, "total_tokens": 100 + written}
    specs = {"mini": ModelSpec(name="mini", provider="openai", model=MINI, base_url=server.url)}
    request = ChatRequest.simple("secret prompt text", model="mini", **asked)
    with caplog.at_level(logging.WARNING, logger="tokenomy"), Tokenomy(ledger_path, models=specs) as client:
        answer = client.chat(request)
    assert answer.cost_usd == compute_cost(Usage(100, written), MINI).total_usd  # billed as reported
    return [e.tags for e in open_store(ledger_path).events()]


def test_more_output_than_max_tokens_is_billed_warned_of_and_tagged(server, ledger_path, caplog) -> None:
    tags = _call(server, ledger_path, caplog, 500, max_tokens=5)
    assert tags == [{OVER_CAP_TAG: "max_tokens 5"}]
    assert "mini" in caplog.text and "500 output tokens" in caplog.text and "max_tokens 5" in caplog.text
    assert "secret prompt text" not in caplog.text


def test_more_output_than_the_model_can_write_is_warned_of_when_no_cap_was_sent(server, ledger_path, caplog) -> None:
    tags = _call(server, ledger_path, caplog, 20_000)
    assert tags == [{OVER_CAP_TAG: "model maximum 16384"}]
    assert "20000 output tokens" in caplog.text


@pytest.mark.parametrize(("written", "asked"), [(5, {"max_tokens": 5}), (9000, {}), (12, {"max_tokens": 5, "n": 3})])
def test_output_within_the_cap_is_not_flagged(server, ledger_path, caplog, written: int, asked: dict) -> None:
    extra = {"n": asked.pop("n")} if "n" in asked else {}
    tags = _call(server, ledger_path, caplog, written, extra=extra, **asked)
    assert tags == [{}] and "output tokens" not in caplog.text


def test_a_streamed_answer_through_the_gateway_over_its_cap_is_tagged_and_warned_of(server, ledger_path, caplog):
    server.usage = {"prompt_tokens": 100, "completion_tokens": 500, "total_tokens": 600}
    config = parse_config(
        {
            "models": {"mini": {"provider": "openai", "model": MINI, "base_url": server.url}},
            "routes": {"chat": {"model": "mini"}},
        }
    )
    with caplog.at_level(logging.WARNING, logger="tokenomy"):
        with ServerThread(create_app(config, str(ledger_path)), lifespan="on") as url:
            client = openai.OpenAI(base_url=url + "/v1", api_key="unused", max_retries=0)
            chunks = list(
                client.chat.completions.create(
                    model="chat",
                    messages=[{"role": "user", "content": "hi"}],
                    max_tokens=5,
                    stream=True,
                    stream_options={"include_usage": True},
                )
            )
    assert chunks[-1].usage.completion_tokens == 500  # the caller sees what the provider reported
    [row] = open_store(ledger_path).events()
    assert row.output_tokens == 500 and row.tags[OVER_CAP_TAG] == "max_tokens 5"
    assert "route chat, model mini: the provider reported 500 output tokens" in caplog.text


def test_an_estimated_count_is_not_taken_for_the_providers_report(ledger_path, caplog) -> None:
    # An answer without usage is counted at ~4 characters a token: 400 characters pass max_tokens 5, but that is the
    # estimate's doing, not the provider's.
    server = ScriptedOpenAI([], reply=("word " * 80,))
    server.usage = None
    specs = {"mini": ModelSpec(name="mini", provider="openai", model=MINI, base_url=server.url)}
    try:
        with caplog.at_level(logging.WARNING, logger="tokenomy"), Tokenomy(ledger_path, models=specs) as client:
            answer = client.chat(ChatRequest.simple("hi", model="mini", max_tokens=5))
    finally:
        server.close()
    assert answer.usage.output_tokens > 5 and answer.raw["usage_source"] == "estimated"
    assert [e.tags for e in open_store(ledger_path).events()] == [{}] and OVER_CAP_TAG not in caplog.text
