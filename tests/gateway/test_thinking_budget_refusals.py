"""Claude's API takes a thinking budget of at least 1,024 tokens, below max_tokens (which the thinking counts toward)
unless interleaved thinking (a beta) makes the budget the turn's. A request breaking the rule went to the provider,
after its budget was reserved, for Anthropic's or Bedrock's 400 naming their own fields; it is refused before any call,
naming the fields as each API's caller sends them, and the fix."""

from __future__ import annotations

import httpx
import openai
import pytest

from helpers import stand_in_aws_keys
from tokenomy.config import parse_config
from tokenomy.emulate.server import ServerThread
from tokenomy.gateway.app import create_app

DEAD = "http://127.0.0.1:9"  # refused before any call: nothing is sent there
ASK = [{"role": "user", "content": "hi"}]
CONVERSE_ASK = [{"role": "user", "content": [{"text": "hi"}]}]
GEMINI_ASK = [{"role": "user", "parts": [{"text": "hi"}]}]
SONNET = "claude-sonnet-4-5-20250929"
ON_BEDROCK = "anthropic.claude-sonnet-4-5-20250929-v1:0"
INTERLEAVED = "interleaved-thinking-2025-05-14"
HAIKU_3 = "claude-3-haiku-20240307"  # no extended thinking
HAIKU_3_ON_BEDROCK = "anthropic.claude-3-haiku-20240307-v1:0"


@pytest.fixture(scope="module")
def gateway(tmp_path_factory):
    with pytest.MonkeyPatch.context() as env:
        stand_in_aws_keys(env)
        env.setenv("ANTHROPIC_API_KEY", "unused")
        models = {
            "sonnet-api": {"provider": "anthropic", "model": SONNET, "base_url": DEAD},
            "sonnet-bedrock": {"provider": "bedrock", "region": "us-east-1", "endpoint_url": DEAD, "model": ON_BEDROCK},
            "haiku3-api": {"provider": "anthropic", "model": HAIKU_3, "base_url": DEAD},
            "haiku3-bedrock": {
                "provider": "bedrock",
                "region": "us-east-1",
                "endpoint_url": DEAD,
                "model": HAIKU_3_ON_BEDROCK,
            },
        }
        ledger = str(tmp_path_factory.mktemp("budgets") / "ledger.duckdb")
        with ServerThread(create_app(parse_config({"models": models}), ledger), lifespan="on") as url:
            yield url


def _post(url: str, body: dict, headers: dict | None = None) -> httpx.Response:
    return httpx.post(url, json=body, headers={"x-api-key": "unused", **(headers or {})}, timeout=30)


def _said(answer: httpx.Response) -> str:
    body = answer.json()
    error = body.get("error", body)  # Anthropic's, OpenAI's and Gemini's {"error": {...}}; Bedrock's {"message": ...}
    return error["message"] if isinstance(error, dict) else body["message"]


def _over(cap: str, api: str, budget: str) -> str:
    return (
        f"{cap}: {api} takes an output cap above the thinking budget (`{budget}`, 4096 tokens), which the cap includes "
        "(got 4096); raise the cap above 4096, or lower the budget"
    )


ANTHROPIC = f"the Anthropic Messages API (model {SONNET})"
CONVERSE = f"Bedrock Converse (model {ON_BEDROCK})"
BUDGET = {"type": "enabled", "budget_tokens": 4096}


@pytest.mark.parametrize(
    ("path", "body", "said"),
    [
        (
            "/v1/messages",
            {"model": "sonnet-api", "max_tokens": 4096, "messages": ASK, "thinking": BUDGET},
            _over("max_tokens", ANTHROPIC, "thinking.budget_tokens"),
        ),
        (
            "/v1/messages",
            {"model": "sonnet-api", "max_tokens": 4096, "messages": ASK, "thinking": {**BUDGET, "budget_tokens": 512}},
            f"thinking.budget_tokens: {ANTHROPIC} takes a thinking budget of at least 1024 tokens (got 512); raise it "
            "to 1024 or more, or turn thinking off",
        ),
        (
            "/v1/chat/completions",
            {"model": "sonnet-api", "max_completion_tokens": 4096, "messages": ASK, "thinking": BUDGET},
            _over("max_completion_tokens", ANTHROPIC, "thinking.budget_tokens"),
        ),
        (
            "/v1/responses",
            {"model": "sonnet-api", "max_output_tokens": 4096, "input": "hi", "thinking": BUDGET},
            _over("max_output_tokens", ANTHROPIC, "thinking.budget_tokens"),
        ),
        (
            "/model/sonnet-bedrock/converse",
            {
                "messages": CONVERSE_ASK,
                "inferenceConfig": {"maxTokens": 4096},
                "additionalModelRequestFields": {"thinking": BUDGET},
            },
            _over("inferenceConfig.maxTokens", CONVERSE, "additionalModelRequestFields.thinking.budget_tokens"),
        ),
        (
            "/v1beta/models/sonnet-bedrock:generateContent",
            {
                "contents": GEMINI_ASK,
                "generationConfig": {"maxOutputTokens": 4096, "thinkingConfig": {"thinkingBudget": 4096}},
            },
            _over("generationConfig.maxOutputTokens", CONVERSE, "generationConfig.thinkingConfig.thinkingBudget"),
        ),
        (
            "/v1beta/models/sonnet-api:generateContent",
            {"contents": GEMINI_ASK, "generationConfig": {"thinkingConfig": {"thinkingBudget": 512}}},
            f"generationConfig.thinkingConfig.thinkingBudget: {ANTHROPIC} takes a thinking budget of at least 1024 "
            "tokens (got 512); raise it to 1024 or more, or turn thinking off",
        ),
    ],
)
def test_a_thinking_budget_claude_refuses_is_named_in_the_callers_api_before_any_call(gateway, path, body, said):
    # Before, the gateway reserved the call's budget and sent it (here to a dead address: an upstream error, not 400).
    answer = _post(gateway + path, body)
    assert answer.status_code == 400, answer.text
    assert _said(answer) == said


@pytest.mark.parametrize(
    ("path", "body", "headers"),
    [
        (
            "/v1/messages",
            {"model": "sonnet-api", "max_tokens": 2048, "messages": ASK, "thinking": BUDGET},
            {"anthropic-beta": f"fine-grained-tool-streaming-2025-05-14, {INTERLEAVED}"},
        ),
        (
            "/model/sonnet-bedrock/converse",
            {
                "messages": CONVERSE_ASK,
                "inferenceConfig": {"maxTokens": 2048},
                "additionalModelRequestFields": {"thinking": BUDGET, "anthropic_beta": [INTERLEAVED]},
            },
            {},
        ),
    ],
)
def test_with_interleaved_thinking_a_budget_above_the_cap_is_sent(gateway, path, body, headers):
    # Interleaved thinking's budget is the whole turn's: Claude takes one above max_tokens, so the call is made (and
    # fails here only at the dead address it is sent to).
    answer = _post(gateway + path, body, headers)
    assert answer.status_code >= 500, answer.text
    assert "thinking budget" not in _said(answer)


NO_THINKING = (
    "has no extended thinking (Claude 3.7 Sonnet and later models think); send the request without thinking, or "
    "route it to a model that thinks"
)


@pytest.mark.parametrize(
    ("path", "body", "said"),
    [
        (
            "/v1/messages",
            {"model": "haiku3-api", "max_tokens": 4096, "messages": ASK, "thinking": {**BUDGET, "budget_tokens": 2048}},
            f"thinking.budget_tokens: the Anthropic Messages API (model {HAIKU_3}) {NO_THINKING}",
        ),
        (
            "/v1/chat/completions",
            {"model": "haiku3-api", "max_tokens": 100, "messages": ASK, "reasoning_effort": "low"},
            f"reasoning_effort: the Anthropic Messages API (model {HAIKU_3}) {NO_THINKING}",
        ),
        (
            "/model/haiku3-bedrock/converse",
            {
                "messages": CONVERSE_ASK,
                "inferenceConfig": {"maxTokens": 4096},
                "additionalModelRequestFields": {"thinking": {**BUDGET, "budget_tokens": 2048}},
            },
            f"additionalModelRequestFields.thinking.budget_tokens: Bedrock Converse (model {HAIKU_3_ON_BEDROCK}) "
            f"{NO_THINKING}",
        ),
    ],
)
def test_thinking_for_a_claude_model_that_cannot_think_is_refused_before_any_call(gateway, path, body, said):
    # Claude 3 Haiku has no extended thinking: a budget went to the API for its 400 after the call was budgeted, and
    # an effort's refusal told the caller to send a budget instead.
    answer = _post(gateway + path, body)
    assert answer.status_code == 400, answer.text
    assert _said(answer) == said


@pytest.mark.parametrize(
    ("max_tokens", "max_completion_tokens", "cap"), [(4096, 8192, "max_tokens"), (8192, 4096, "max_completion_tokens")]
)
def test_a_cap_from_both_fields_is_named_by_the_field_it_came_from(gateway, max_tokens, max_completion_tokens, cap):
    # The smaller of the two is the cap; the refusal named max_completion_tokens whenever it was sent, even when the
    # cap was max_tokens'.
    client = openai.OpenAI(base_url=gateway + "/v1", api_key="unused", max_retries=0)
    with pytest.raises(openai.BadRequestError) as refused:
        client.chat.completions.create(
            model="sonnet-api",
            messages=ASK,
            max_tokens=max_tokens,
            max_completion_tokens=max_completion_tokens,
            extra_body={"thinking": BUDGET},
        )
    assert refused.value.body["message"] == _over(cap, ANTHROPIC, "thinking.budget_tokens")
