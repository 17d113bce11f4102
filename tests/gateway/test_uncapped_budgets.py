"""A request that sets no output cap under a budget. The gateway reserved 1,024 output tokens for it whatever it
could write, so concurrent uncapped calls that wrote more overspent the budget: a thinking budget (billed as output,
and sent to Claude as 1,024 past it) was not counted, nor what a model that is sent no cap may write. It is now
reserved, model by model, at the cap its provider will be held to: the one the provider sends (Anthropic's: the
model's maximum output in the catalog, else 1,024 past its thinking budget), else the model's maximum output in the
price catalog, else 1,024 plus its thinking budget. A budget that cannot hold the reservation refuses, naming the
bound and the largest cap that fits."""

from __future__ import annotations

import re
from decimal import Decimal
from pathlib import Path

import httpx
import openai
import pytest

from helpers.gateway_worst_case import worst_case as gateway_worst_case
from helpers.recording_openai import RecordingOpenAI
from tokenomy.caching.placement import estimate_input_tokens, input_bound
from tokenomy.config import parse_config
from tokenomy.emulate.server import ServerThread
from tokenomy.gateway.app import create_app
from tokenomy.gateway.keys import KeyStore
from tokenomy.gateway.limits import to_nano
from tokenomy.gateway.worst_case import WorstCase
from tokenomy.ledger.store import open_store
from tokenomy.messages import ChatRequest, Message
from tokenomy.pricing.entry import DEFAULT_OUTPUT_ESTIMATE
from tokenomy.request_options import Reasoning

SCOUT = "meta.llama4-scout-17b-instruct-v1:0"  # $0.17 / $0.66 per 1M tokens; no maximum output in the catalog
NOWHERE = "http://127.0.0.1:9"  # a loopback port nothing listens on: a call refused before it is sent needs no server
ASK = [{"role": "user", "content": "Tell me everything."}]
M = Decimal(1_000_000)


def worst_case(models: dict, name: str, request: ChatRequest, ledger: Path) -> WorstCase:
    """The gateway's worst case for `request` on the route `name` of a gateway serving `models`."""
    return gateway_worst_case({"models": models}, name, request, ledger)


def ask(text: str = "Tell me everything.", **fields) -> ChatRequest:
    return ChatRequest([Message("user", text)], model="m", **fields)


def usd(nano: int) -> Decimal:
    return Decimal(nano) / 10**9


def test_an_uncapped_call_is_reserved_at_its_models_maximum_output(ledger_path):
    # gpt-4.1 is sent no cap (OpenAI's API has no default of its own) and may write 32,768 tokens at $8 per 1M: the
    # reservation was 1,024 of them, a 32nd of the worst case.
    models = {"big": {"provider": "openai", "model": "gpt-4.1", "base_url": NOWHERE}}
    request = ask()
    worst = worst_case(models, "big", request, ledger_path)
    prompt = input_bound(request)[0]  # the prompt's upper bound, which a budget reserves
    assert worst.nano() == to_nano((prompt * Decimal(2) + 32_768 * Decimal(8)) / M)
    bound = worst.binding()
    assert (bound.model, bound.tokens, bound.kind) == ("gpt-4.1", 32_768, "catalog")
    # Each of `n` choices may write as much; a capped call is reserved at its cap, as before.
    two = worst_case(models, "big", ask(extra={"n": 2}), ledger_path)
    assert two.nano() == to_nano((prompt * Decimal(2) + 2 * 32_768 * Decimal(8)) / M)
    capped = worst_case(models, "big", ask(max_tokens=100), ledger_path)
    assert capped.nano() == to_nano((prompt * Decimal(2) + 100 * Decimal(8)) / M) and capped.binding() is None


def test_a_maximum_output_is_bounded_by_the_window_the_prompt_leaves(ledger_path):
    # gpt-4o writes 16,384 tokens at most in a 128,000-token window: a 120,000-token prompt leaves about 8,000.
    models = {"4o": {"provider": "openai", "model": "gpt-4o", "base_url": NOWHERE}}
    request = ask("x" * 480_000)
    prompt = estimate_input_tokens(request)
    assert 110_000 < prompt < 128_000 - 1_024
    bound = worst_case(models, "4o", request, ledger_path).binding()
    assert (bound.tokens, bound.kind) == (128_000 - prompt, "catalog")


def test_each_model_of_a_route_is_reserved_at_its_own_bound(ledger_path):
    # A fallback that may write more than the route's model: the dearer of the two is reserved.
    models = {
        "mini": {"provider": "openai", "model": "gpt-4o-mini", "base_url": NOWHERE},
        "big": {"provider": "openai", "model": "gpt-4.1", "base_url": NOWHERE},
    }
    config = {**models, "m": {"provider": "openai", "model": "gpt-4o-mini", "base_url": NOWHERE}}
    request = ask()
    prompt = input_bound(request)[0]  # the prompt's upper bound, which a budget reserves

    worst = gateway_worst_case(
        {"models": config, "routes": {"r": {"model": "mini", "fallback": ["big"]}}}, "r", request, ledger_path
    )
    mini, big = worst.answers[0]
    assert (mini.bound.tokens, big.bound.tokens) == (16_384, 32_768)
    assert worst.nano() == to_nano((prompt * Decimal(2) + 32_768 * Decimal(8)) / M)  # gpt-4.1's, the dearer
    assert worst.binding().model == "gpt-4.1"


def test_a_model_whose_maximum_output_is_not_known_keeps_the_estimate(ledger_path):
    models = {"m": {"provider": "openai", "model": "up", "base_url": NOWHERE, "price_as": SCOUT}}
    request = ask()
    worst = worst_case(models, "m", request, ledger_path)
    prompt = input_bound(request)[0]  # the prompt's upper bound, which a budget reserves
    assert DEFAULT_OUTPUT_ESTIMATE == 1024
    assert worst.nano() == to_nano((prompt * Decimal("0.17") + 1024 * Decimal("0.66")) / M)
    assert (worst.binding().tokens, worst.binding().kind) == (1024, "estimate")


@pytest.mark.parametrize(
    ("model", "most", "prices"),
    [
        ("meta.llama3-1-70b-instruct-v1:0", 2_048, ("0.72", "0.72")),  # max_gen_len's maximum, which Bedrock enforces
        ("mistral.mistral-7b-instruct-v0:2", 8_192, ("0.15", "0.20")),  # max_tokens' maximum on AWS's Mistral page
    ],
)
def test_an_uncapped_call_to_llama_or_mistral_on_bedrock_is_reserved_at_its_maximum_output(
    model, most, prices, ledger_path
):
    # Sent to Converse with no maxTokens, whose default is the model's maximum: the reservation was the 1,024-token
    # estimate (the catalog had no maximum for either), which an answer of 2,048 or 8,192 tokens overspent.
    bedrock = {"m": {"provider": "bedrock", "model": model, "region": "us-east-1", "endpoint_url": NOWHERE}}
    request = ask()
    worst = worst_case(bedrock, "m", request, ledger_path)
    assert (worst.binding().model, worst.binding().tokens, worst.binding().kind) == (model, most, "catalog")
    prompt = input_bound(request)[0]
    assert worst.nano() == to_nano((prompt * Decimal(prices[0]) + most * Decimal(prices[1])) / M)


def test_an_uncapped_thinking_call_is_reserved_past_its_thinking_budget(ledger_path):
    # Reasoning tokens are billed as output. Claude is sent its maximum output (Sonnet 4.5's 64,000), which holds a
    # Gemini caller's thinkingBudget 8192 with no maxOutputTokens; where the catalog has no maximum (Claude Sonnet 4),
    # max_tokens 1,024 past the budget: 9,216 output tokens were reserved as 1,024. A model whose maximum output is
    # not known may write its whole thinking budget and 1,024 more.
    thinking = Reasoning(budget_tokens=8192)
    claude = {"m": {"provider": "anthropic", "model": "claude-sonnet-4-5-20250929", "base_url": NOWHERE}}
    request = ask(reasoning=thinking)
    prompt = input_bound(request)[0]  # the prompt's upper bound, which a budget reserves
    worst = worst_case(claude, "m", request, ledger_path)
    assert (worst.binding().tokens, worst.binding().kind) == (64_000, "provider")  # what Claude is sent
    assert worst.nano() == to_nano((prompt * Decimal("3.75") + 64_000 * Decimal(15)) / M)  # a cache write's price
    plain = worst_case(claude, "m", ask(), ledger_path)
    assert (plain.binding().tokens, plain.binding().kind) == (64_000, "provider")
    sonnet4 = {"m": {"provider": "anthropic", "model": "claude-sonnet-4-20250514", "base_url": NOWHERE}}
    worst = worst_case(sonnet4, "m", request, ledger_path)
    assert (worst.binding().tokens, worst.binding().kind) == (9216, "provider")
    assert worst_case(sonnet4, "m", ask(), ledger_path).binding().tokens == 1024
    flash = {"m": {"provider": "gemini", "model": "gemini-2.5-flash", "base_url": NOWHERE}}
    worst = worst_case(flash, "m", request, ledger_path)
    assert (worst.binding().tokens, worst.binding().kind) == (9216, "estimate")
    # With a maximum output known, the thinking is within it (Gemini 2.5 Flash-Lite: 65,536).
    lite = {"m": {"provider": "gemini", "model": "gemini-2.5-flash-lite", "base_url": NOWHERE}}
    assert worst_case(lite, "m", request, ledger_path).binding().tokens == 65_536


def gateway(models: dict, ledger: Path) -> ServerThread:
    return ServerThread(create_app(parse_config({"auth": True, "models": models}), str(ledger)), lifespan="on")


def test_a_budget_that_cannot_hold_an_uncapped_calls_maximum_output_refuses_naming_the_cap_that_fits(ledger_path):
    store = KeyStore(open_store(ledger_path))
    secret, _ = store.create(budget_usd=Decimal("0.05"), period="month")  # 32,768 tokens of gpt-4.1 cost $0.26
    with RecordingOpenAI() as upstream:
        models = {"big": {"provider": "openai", "model": "gpt-4.1", "base_url": upstream.url}}
        with gateway(models, ledger_path) as url:
            client = openai.OpenAI(base_url=url + "/v1", api_key=secret, max_retries=0)
            with pytest.raises(openai.RateLimitError) as refused:
                client.chat.completions.create(model="big", messages=ASK)
            body = refused.value.body
            assert body["code"] == "budget_exceeded" and refused.value.response.headers["x-should-retry"] == "false"
            message = body["message"]
            assert message.startswith(
                "Budget exhausted for this key: this request sets no max_tokens or max_completion_tokens, so it is "
                "reserved at gpt-4.1's maximum output of 32,768 tokens (up to $0.26"
            ), message
            fits = int(re.search(r"at most ([\d,]+) fits the \$0\.050000 left", message).group(1).replace(",", ""))
            assert message.endswith(", or cap the route's tokens.max_tokens in the gateway's config.")
            assert 6_000 < fits < 6_250  # $0.05 at $8 per 1M output tokens, less the prompt
            # The same prompt with that cap is admitted, and sent as it came; one token more is not admitted.
            reply = client.chat.completions.create(model="big", messages=ASK, max_tokens=fits)
            assert reply.choices[0].message.content
            with pytest.raises(openai.RateLimitError, match=r"could cost up to \$0\.05"):
                client.chat.completions.create(model="big", messages=ASK, max_tokens=fits + 1)
            # The Responses API and Gemini's names for the cap, as their callers spell it.
            with pytest.raises(openai.RateLimitError, match="sets no max_output_tokens, so it is reserved"):
                client.responses.create(model="big", input="Tell me everything.")
            gemini = httpx.post(
                f"{url}/v1beta/models/big:generateContent",
                headers={"x-goog-api-key": secret},
                json={"contents": [{"role": "user", "parts": [{"text": "Tell me."}]}]},
                timeout=30,
            )
            assert gemini.status_code == 429
            assert "sets no generationConfig.maxOutputTokens" in gemini.json()["error"]["message"]
    assert [body.get("max_tokens") for body in upstream.bodies] == [fits]  # only the capped call went out


def test_an_uncapped_call_its_budget_holds_is_sent_as_it_came(ledger_path):
    # No cap is added to what is sent (OpenAI's reasoning models refuse max_tokens): the reservation alone changed.
    store = KeyStore(open_store(ledger_path))
    secret, key = store.create(budget_usd=Decimal("1"), period="month")
    with RecordingOpenAI() as upstream:
        models = {
            "big": {"provider": "openai", "model": "gpt-4.1", "base_url": upstream.url},
            "o3": {"provider": "openai", "model": "o3", "base_url": upstream.url},
        }
        with gateway(models, ledger_path) as url:
            client = openai.OpenAI(base_url=url + "/v1", api_key=secret, max_retries=0)
            assert client.chat.completions.create(model="big", messages=ASK).choices[0].message.content
            assert client.chat.completions.create(model="o3", messages=ASK, reasoning_effort="high").choices
            assert client.responses.create(model="o3", input="Tell me everything.").output_text
    assert len(upstream.bodies) == 3
    for body in upstream.bodies:
        assert "max_tokens" not in body and "max_completion_tokens" not in body, body
    spent = sum(e.cost_usd for e in open_store(ledger_path).events() if e.key_id == key.key_id)
    assert 0 < spent < Decimal("0.01")  # settled at what the answers cost, not at the reservations


def test_a_gemini_callers_thinking_budget_to_claude_is_reserved_and_refused_by_name(ledger_path):
    # thinkingBudget 8192 and no maxOutputTokens: Claude is sent its maximum output, max_tokens 64,000, $0.96 at
    # Sonnet 4.5's $15 per 1M output tokens. The key's $0.05 held the 1,024 tokens once reserved for it, and was
    # overspent.
    store = KeyStore(open_store(ledger_path))
    secret, _ = store.create(budget_usd=Decimal("0.05"), period="month")
    models = {"claude": {"provider": "anthropic", "model": "claude-sonnet-4-5-20250929", "base_url": NOWHERE}}
    thinking = {"thinkingConfig": {"thinkingBudget": 8192}}
    with gateway(models, ledger_path) as url:
        refused = httpx.post(
            f"{url}/v1beta/models/claude:generateContent",
            headers={"x-goog-api-key": secret},
            json={"contents": [{"role": "user", "parts": [{"text": "Think."}]}], "generationConfig": thinking},
            timeout=30,
        )
    assert refused.status_code == 429, refused.text
    message = refused.json()["error"]["message"]
    assert (
        "so it is reserved at 64,000 output tokens, the cap claude-sonnet-4-5-20250929 is sent when a request "
        "sets none, 55,808 past its thinking budget of 8,192 (up to $0.96"
    ) in message, message
    fits = int(re.search(r"at most ([\d,]+) fits", message).group(1).replace(",", ""))
    assert 3_000 < fits < 3_334  # $0.05 at $15 per 1M output tokens, less the prompt
    assert "a cap within the thinking budget of 8,192 leaves no room to answer" in message  # 3,300 is below it


def test_a_budget_no_cap_fits_says_so(ledger_path):
    store = KeyStore(open_store(ledger_path))
    secret, _ = store.create(budget_usd=Decimal("0.000001"), period="month")  # less than the prompt
    with gateway({"big": {"provider": "openai", "model": "gpt-4.1", "base_url": NOWHERE}}, ledger_path) as url:
        client = openai.OpenAI(base_url=url + "/v1", api_key=secret, max_retries=0)
        with pytest.raises(openai.RateLimitError) as refused:
            client.chat.completions.create(model="big", messages=ASK)
    assert refused.value.body["message"].endswith(
        "; even with max_tokens or max_completion_tokens 1 it costs more than the key's whole budget ($0.000001): "
        "shorten the prompt or raise the budget."
    )


def test_a_document_sent_by_url_or_file_id_is_reserved_at_the_models_whole_window(ledger_path):
    # The gateway cannot see the size of a PDF Claude fetches itself (a url source) or of a file id: it was reserved
    # as one page (1,500 tokens) whatever its length, and a 300-page PDF overspent the budget 200 times over.
    from tokenomy.messages import DocumentBlock, TextBlock

    claude = {"m": {"provider": "anthropic", "model": "claude-sonnet-4-5-20250929", "base_url": NOWHERE}}
    for document in (
        DocumentBlock("pdf", url="https://example.com/annual-report.pdf"),
        DocumentBlock("pdf", file_id="file_011CNha8iCJcU1wXNR6q4V8w"),
    ):
        request = ChatRequest([Message("user", [document, TextBlock("Summarise.")])], model="m", max_tokens=100)
        worst = worst_case(claude, "m", request, ledger_path)
        # Sonnet 4.5's 200,000-token window at its dearest input price (a cache write, $3.75), and 100 output tokens.
        assert worst.unsized == 1 and worst.nano() == to_nano((200_000 * Decimal("3.75") + 100 * Decimal(15)) / M)
    # A document whose bytes are sent is counted by its pages, as before.
    pdf = DocumentBlock("pdf", b"%PDF-1.4 1 0 obj << /Type /Page >>")
    sized = worst_case(claude, "m", ChatRequest([Message("user", [pdf])], model="m", max_tokens=100), ledger_path)
    assert sized.unsized == 0 and sized.nano() < to_nano(Decimal("0.01"))

    store = KeyStore(open_store(ledger_path))
    secret, _ = store.create(budget_usd=Decimal("0.5"), period="month")  # the window costs $0.75
    body = {
        "model": "m",
        "max_tokens": 100,
        "messages": [
            {
                "role": "user",
                "content": [
                    {"type": "document", "source": {"type": "url", "url": "https://example.com/annual-report.pdf"}},
                    {"type": "text", "text": "Summarise."},
                ],
            }
        ],
    }
    with gateway(claude, ledger_path) as url:
        refused = httpx.post(
            f"{url}/v1/messages",
            headers={"x-api-key": secret, "anthropic-version": "2023-06-01"},
            json=body,
            timeout=30,
        )
    assert refused.status_code == 429, refused.text
    assert refused.json()["error"]["message"].endswith(
        "It sends a document by URL or file id, whose size the gateway cannot see, so its prompt is reserved at "
        "the model's whole context window; send a document's data to have it counted."
    )
