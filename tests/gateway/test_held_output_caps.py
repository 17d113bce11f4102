"""A caller's output cap above the maximum output of a model the gateway chose for it (a route's fallback, the model
a route's name stands for, a routed tier) was forwarded as is, and the upstream answered 400 (Claude Code's 32,000
to a fallback on Claude 3 Haiku's 4,096): the caller could not know which model would answer. Such an attempt is now
sent the model's maximum output from the catalog, reserved at it, and its ledger row tagged `max_tokens_clamped`
with the caller's figure. A caller that named the model itself is forwarded its cap unchanged (the provider's
answer is the authority). The openai SDK drives a real gateway in front of a scripted OpenAI-format upstream.

A Claude thinking budget the held cap does not leave room for (Claude's API takes one only below max_tokens) was sent
as asked, and the attempt refused with a 400: it is lowered to leave the answer the room the caller gave it (never
below Claude's 1,024 tokens), and the row tagged `thinking_budget_clamped` with the caller's figure; where no budget
fits below the held cap, the attempt is refused before any call. The anthropic SDK drives a gateway in front of the
Anthropic emulator."""

from __future__ import annotations

import anthropic
import openai
import pytest

from helpers.capturing_asgi import capturing
from helpers.gateway_worst_case import worst_case
from helpers.scripted_openai import ScriptedOpenAI
from tokenomy.config import parse_config
from tokenomy.emulate.anthropic_api import create_app as create_anthropic
from tokenomy.emulate.instant_engine import InstantEngine
from tokenomy.emulate.server import ServerThread
from tokenomy.gateway.app import create_app
from tokenomy.ledger.store import open_store
from tokenomy.messages import ChatRequest, Message, RequestMeta
from tokenomy.pricing.catalog import PriceCatalog, set_default_catalog

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


# A caller of Claude Opus 4.6 (128,000 output tokens at most) asks for 100,000 with 90,000 of them thinking; the route
# falls back to Claude Sonnet 4.5, which writes 64,000 at most.
OPUS, SONNET = "claude-opus-4-6", "claude-sonnet-4-5-20250929"
CLAUDE_ASKED, THOUGHT = 100_000, 90_000
SONNET_MOST = 64_000
INTERLEAVED = "interleaved-thinking-2025-05-14"
# The SDK's warning that Opus 4.6 prefers adaptive thinking: its attempt fails unsent anyway (nothing listens).
pytestmark = pytest.mark.filterwarnings("ignore:Using Claude with claude-opus-4-6:UserWarning")


def claude_config(url: str) -> dict:
    """Route "thinking": Opus (where nothing listens: its attempt fails) falling back to Sonnet at `url`."""
    models = {
        "opus": {"provider": "anthropic", "model": OPUS, "base_url": NOWHERE},
        "sonnet": {"provider": "anthropic", "model": SONNET, "base_url": url},
    }
    route = {"model": "opus", "fallback": ["sonnet"], "retry": {"max_attempts": 1}}
    return {"models": models, "routes": {"thinking": route}}


def thought(ledger, monkeypatch, budget: int = THOUGHT, headers: dict | None = None):
    """What the Anthropic emulator received, the answer (or the SDK's error) and the ledger's rows, for one call of
    route "thinking" asking CLAUDE_ASKED tokens, `budget` of them thinking."""
    monkeypatch.setenv("ANTHROPIC_API_KEY", "unused")
    bodies: list[dict] = []
    app = capturing(create_anthropic(engine=InstantEngine()), bodies)
    with ServerThread(app) as claude:
        with ServerThread(create_app(parse_config(claude_config(claude)), str(ledger)), lifespan="on") as url:
            # A timeout of its own: the SDK refuses a non-streamed call this long under its default one.
            sdk = anthropic.Anthropic(base_url=url, api_key="unused", max_retries=0, timeout=60)
            try:
                answer: object = sdk.messages.create(
                    model="thinking",
                    max_tokens=CLAUDE_ASKED,
                    messages=ASK,
                    thinking={"type": "enabled", "budget_tokens": budget},
                    extra_headers=headers,
                )
            except anthropic.APIStatusError as exc:
                answer = exc
    return bodies, answer, sorted(open_store(str(ledger)).events(), key=lambda e: e.attempt)


@pytest.mark.parametrize(
    "budget, sent",
    [
        (THOUGHT, SONNET_MOST - (CLAUDE_ASKED - THOUGHT)),  # the answer keeps the 10,000 tokens the caller left it
        (SONNET_MOST, SONNET_MOST - (CLAUDE_ASKED - SONNET_MOST)),  # a budget at the held cap is Claude's 400 too
    ],
)
def test_a_thinking_budget_is_lowered_below_the_cap_a_fallback_is_held_to(ledger_path, monkeypatch, budget, sent):
    bodies, answer, rows = thought(ledger_path, monkeypatch, budget)
    assert isinstance(answer, anthropic.types.Message), answer
    assert [(b["model"], b["max_tokens"], b["thinking"]) for b in bodies] == [
        (SONNET, SONNET_MOST, {"type": "enabled", "budget_tokens": sent})
    ]
    failed, answered = rows
    assert failed.model == OPUS and "thinking_budget_clamped" not in failed.tags
    assert answered.outcome == "ok"
    assert answered.tags["max_tokens_clamped"] == str(CLAUDE_ASKED)
    assert answered.tags["thinking_budget_clamped"] == str(budget)


def test_a_thinking_budget_below_the_held_cap_is_sent_as_asked(ledger_path, monkeypatch):
    # 30,000 thinking fits below Sonnet's 64,000: only the cap had to change, so only the cap does.
    bodies, answer, rows = thought(ledger_path, monkeypatch, 30_000)
    assert isinstance(answer, anthropic.types.Message), answer
    assert [(b["max_tokens"], b["thinking"]["budget_tokens"]) for b in bodies] == [(SONNET_MOST, 30_000)]
    assert "thinking_budget_clamped" not in rows[-1].tags and rows[-1].tags["max_tokens_clamped"] == str(CLAUDE_ASKED)


def test_an_interleaved_thinking_budget_is_sent_as_asked(ledger_path, monkeypatch):
    # With interleaved thinking the budget is the whole turn's, and may exceed max_tokens: it is not lowered.
    bodies, answer, rows = thought(ledger_path, monkeypatch, headers={"anthropic-beta": INTERLEAVED})
    assert isinstance(answer, anthropic.types.Message), answer
    assert [(b["model"], b["max_tokens"], b["thinking"]["budget_tokens"]) for b in bodies] == [
        (SONNET, SONNET_MOST, THOUGHT)
    ]
    assert "thinking_budget_clamped" not in rows[-1].tags and rows[-1].tags["max_tokens_clamped"] == str(CLAUDE_ASKED)


def test_a_fallback_held_below_any_thinking_budget_is_refused_before_the_call(ledger_path, monkeypatch, tmp_path):
    # A price file gives Sonnet 4.5 a maximum output of 1,024 tokens: no budget of at least 1,024 fits below it.
    prices = tmp_path / "prices.yaml"
    prices.write_text(
        f"""provider: anthropic
source: a test's
as_of: "2026-12-01"
models:
  {SONNET}:
    max_output_tokens: 1024
    regions: {{global: {{input: "3.00", output: "15.00"}}}}
"""
    )
    set_default_catalog(PriceCatalog.builtin().with_overrides(prices))
    try:
        bodies, answer, rows = thought(ledger_path, monkeypatch)
    finally:
        set_default_catalog(None)
    assert bodies == []  # nothing reached the upstream
    assert isinstance(answer, anthropic.BadRequestError), answer
    assert answer.body["error"]["message"] == (
        f"max_tokens: model {SONNET} writes 1024 output tokens at most, so it is sent that cap in place of the "
        f"{CLAUDE_ASKED} asked, which leaves no room for the thinking budget (`thinking.budget_tokens`, {THOUGHT} "
        "tokens): Claude takes one of at least 1024 tokens and below the cap; turn thinking off, or send the request "
        "to a model with a larger maximum output"
    )
    assert [(row.model, row.outcome) for row in rows] == [(OPUS, "server_error"), (SONNET, "client_error")]
