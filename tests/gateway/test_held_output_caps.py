"""A caller's output cap above the maximum output of a model the gateway chose for it (a route's fallback, the model
a route's name stands for, a routed tier) was forwarded as is, and the upstream answered 400 (Claude Code's 32,000
to a fallback on Claude 3 Haiku's 4,096): the caller could not know which model would answer. Such an attempt is now
sent the model's maximum output from the catalog, reserved at it, and its ledger row tagged `max_tokens_clamped`
with the caller's figure. A caller that named the model itself is forwarded its cap unchanged (the provider's
answer is the authority). The openai SDK drives a real gateway in front of a scripted OpenAI-format upstream."""

from __future__ import annotations

import openai
import pytest

from helpers.gateway_worst_case import worst_case
from helpers.scripted_openai import ScriptedOpenAI
from tokenomy.config import parse_config
from tokenomy.emulate.server import ServerThread
from tokenomy.gateway.app import create_app
from tokenomy.ledger.store import open_store
from tokenomy.messages import ChatRequest, Message, RequestMeta

ASK = [{"role": "user", "content": "Tell me everything."}]
ASKED = 32_000  # Claude Code's max_tokens
MINI_MOST = 16_384  # gpt-4o-mini's maximum output in the catalog
NOWHERE = "http://127.0.0.1:9"  # a loopback port nothing listens on (the worst case sends nothing)


def config(url: str) -> dict:
    """ "big" (gpt-4.1, 32,768 output tokens at most) and "mini" (gpt-4o-mini, 16,384) on one upstream; route "chain"
    falls back from big to mini, route "fast" is mini by another name."""
    models = {
        "big": {"provider": "openai", "model": "gpt-4.1", "base_url": url},
        "mini": {"provider": "openai", "model": "gpt-4o-mini", "base_url": url},
    }
    routes = {
        "chain": {"model": "big", "fallback": ["mini"], "retry": {"max_attempts": 1}},
        "fast": {"model": "mini"},
    }
    return {"models": models, "routes": routes}


def served(script: list[tuple], ledger, model: str) -> tuple[list[dict], list]:
    """What the upstream received, and the ledger's rows, for one call of `model` with max_tokens ASKED."""
    upstream = ScriptedOpenAI(script)
    try:
        with ServerThread(create_app(parse_config(config(upstream.url)), str(ledger)), lifespan="on") as url:
            sdk = openai.OpenAI(base_url=url + "/v1", api_key="unused", max_retries=0)
            answer = sdk.chat.completions.create(model=model, messages=ASK, max_tokens=ASKED)
        assert answer.choices[0].message.content == "ok"
    finally:
        upstream.close()
    return upstream.bodies, sorted(open_store(str(ledger)).events(), key=lambda e: e.attempt)


def test_a_fallback_is_sent_no_more_than_its_maximum_output_and_its_row_says_so(ledger_path):
    # gpt-4.1 fails with a 500; the fallback, gpt-4o-mini, was sent 32,000 and refused it.
    bodies, rows = served([(500, {})], ledger_path, "chain")
    assert [(b["model"], b["max_tokens"]) for b in bodies] == [("gpt-4.1", ASKED), ("gpt-4o-mini", MINI_MOST)]
    failed, answered = rows
    assert failed.outcome == "server_error" and "max_tokens_clamped" not in failed.tags
    assert answered.outcome == "ok" and answered.tags["max_tokens_clamped"] == str(ASKED)


def test_a_routes_model_reached_by_the_routes_name_is_held_to_its_maximum(ledger_path):
    bodies, [row] = served([], ledger_path, "fast")
    assert [(b["model"], b["max_tokens"]) for b in bodies] == [("gpt-4o-mini", MINI_MOST)]
    assert row.tags["max_tokens_clamped"] == str(ASKED)


def test_a_model_the_caller_named_gets_its_cap_as_sent(ledger_path):
    # The caller chose the model: its cap is forwarded, and the provider's answer is the authority.
    bodies, [row] = served([], ledger_path, "mini")
    assert [(b["model"], b["max_tokens"]) for b in bodies] == [("gpt-4o-mini", ASKED)]
    assert "max_tokens_clamped" not in row.tags


@pytest.mark.parametrize("name, held", [("fast", True), ("mini", False)])
def test_the_budget_reserves_the_cap_the_model_is_sent(ledger_path, name, held):
    def reserved(cap: int) -> int:
        request = ChatRequest([Message("user", "Tell me everything.")], model="mini", max_tokens=cap)
        request.meta = RequestMeta(route=name)  # as the gateway's ingress sets it: the name the caller sent
        return worst_case(config(NOWHERE), name, request, ledger_path).nano()

    at_most = reserved(MINI_MOST)
    assert (reserved(ASKED) == at_most) is held
    assert reserved(ASKED) >= at_most
