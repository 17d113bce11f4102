"""A Claude model's refusal, through each API the gateway serves, names its remedy as that API's caller writes it:
the thinking budget to send instead of an effort (Anthropic's `thinking.budget_tokens`, Converse's
`additionalModelRequestFields.thinking.budget_tokens`, Gemini's `generationConfig.thinkingConfig.thinkingBudget`), and
for a seed or penalty the models that take one, with no word of OpenAI's SDK (`extra_body`) to a caller of another."""

from __future__ import annotations

import httpx
import pytest

from helpers import stand_in_aws_keys
from tokenomy.config import parse_config
from tokenomy.emulate.server import ServerThread
from tokenomy.gateway.app import create_app

DEAD = "http://127.0.0.1:9"  # refused before any call: nothing is sent there
ASK = [{"role": "user", "content": "hi"}]
GEMINI_ASK = [{"role": "user", "parts": [{"text": "hi"}]}]


@pytest.fixture(scope="module")
def gateway(tmp_path_factory):
    with pytest.MonkeyPatch.context() as env:
        stand_in_aws_keys(env)
        env.setenv("ANTHROPIC_API_KEY", "unused")

        def on_bedrock(model: str) -> dict:
            return {"provider": "bedrock", "region": "us-east-1", "endpoint_url": DEAD, "model": model}

        models = {
            "sonnet-api": {"provider": "anthropic", "model": "claude-sonnet-4-5-20250929", "base_url": DEAD},
            "sonnet-bedrock": on_bedrock("anthropic.claude-sonnet-4-5-20250929-v1:0"),
            "opus-bedrock": on_bedrock("anthropic.claude-opus-4-5-20251101-v1:0"),
        }
        ledger = str(tmp_path_factory.mktemp("remedies") / "ledger.duckdb")
        with ServerThread(create_app(parse_config({"models": models}), ledger), lifespan="on") as url:
            yield url


def _said(answer: httpx.Response) -> str:
    body = answer.json()
    error = body.get("error", body)  # Anthropic's and Gemini's {"error": {...}}; Bedrock's {"message": ...}
    return error["message"] if isinstance(error, dict) else body["message"]


@pytest.mark.parametrize(
    ("path", "body", "said"),
    [
        # An Anthropic caller's effort for Claude Sonnet 4.5 (no effort levels): its budget is thinking.budget_tokens
        (
            "/v1/messages",
            {"model": "sonnet-api", "max_tokens": 50, "messages": ASK, "output_config": {"effort": "low"}},
            "output_config.effort: the Anthropic Messages API (model claude-sonnet-4-5-20250929) takes no effort level "
            "(Claude's effort parameter is for Claude Opus 4.5 and the 4.6 and later models); send a thinking budget "
            "in tokens (`thinking.budget_tokens`) instead",
        ),
        (
            "/model/sonnet-bedrock/converse",
            {"messages": [{"role": "user", "content": [{"text": "hi"}]}], "outputConfig": {"effort": "low"}},
            "outputConfig.effort: Bedrock Converse (model anthropic.claude-sonnet-4-5-20250929-v1:0) takes no effort "
            "level (Claude's effort parameter is for Claude Opus 4.5 and the 4.6 and later models); send a thinking "
            "budget in tokens (`additionalModelRequestFields.thinking.budget_tokens`) instead",
        ),
        (
            "/v1beta/models/sonnet-bedrock:generateContent",
            {"contents": GEMINI_ASK, "generationConfig": {"thinkingConfig": {"thinkingLevel": "LOW"}}},
            "generationConfig.thinkingConfig.thinkingLevel: Bedrock Converse (model "
            "anthropic.claude-sonnet-4-5-20250929-v1:0) takes no effort level (Claude's effort parameter is for "
            "Claude Opus 4.5 and the 4.6 and later models); send a thinking budget in tokens "
            "(`generationConfig.thinkingConfig.thinkingBudget`) instead",
        ),
        # An effort level Claude has none of (Gemini's MINIMAL), for a model that takes efforts
        (
            "/v1beta/models/opus-bedrock:generateContent",
            {"contents": GEMINI_ASK, "generationConfig": {"thinkingConfig": {"thinkingLevel": "MINIMAL"}}},
            "generationConfig.thinkingConfig.thinkingLevel: Bedrock Converse (model "
            "anthropic.claude-opus-4-5-20251101-v1:0) takes an effort of low, medium, high, xhigh, max (got "
            "'minimal'); send one of those, or a thinking budget in tokens "
            "(`generationConfig.thinkingConfig.thinkingBudget`)",
        ),
        # A Gemini caller's seed: Gemini's models take it, not only OpenAI's
        (
            "/v1beta/models/sonnet-bedrock:generateContent",
            {"contents": GEMINI_ASK, "generationConfig": {"seed": 7}},
            "generationConfig.seed: Bedrock Converse (model anthropic.claude-sonnet-4-5-20250929-v1:0) has no such "
            "parameter; remove it, or route to a model that takes it (an OpenAI-format or Gemini model)",
        ),
        (
            "/v1beta/models/sonnet-api:generateContent",
            {"contents": GEMINI_ASK, "generationConfig": {"presencePenalty": 0.5}},
            "generationConfig.presencePenalty: the Anthropic Messages API (model claude-sonnet-4-5-20250929) has no "
            "such parameter; remove it, or route to a model that takes it (an OpenAI-format or Gemini model)",
        ),
    ],
)
def test_a_claude_refusal_names_the_remedy_in_the_callers_api(gateway, path, body, said) -> None:
    # The effort remedies said `thinking: {"type": "enabled", "budget_tokens": N}` "(with the openai SDK:
    # extra_body)" to callers of Anthropic's, Converse's and Gemini's APIs, and a seed's said "route to an OpenAI
    # model" to a Gemini caller, whose own models take one.
    answer = httpx.post(gateway + path, json=body, headers={"x-api-key": "unused"}, timeout=30)
    assert answer.status_code == 400, answer.text
    assert _said(answer) == said
