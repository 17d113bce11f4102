"""Requests as the LiteLLM SDK sends them to the gateway (`litellm.completion(model="anthropic/<route>",
api_base=<gateway>)`), replayed byte for byte with httpx: LiteLLM itself is not a test dependency."""

from __future__ import annotations

import httpx
import pytest

from helpers.converse_capture import record_converse
from helpers.scripted_anthropic import ScriptedAnthropic
from tokenomy.config import parse_config
from tokenomy.emulate.server import ServerThread
from tokenomy.gateway.app import create_app

# The headers LiteLLM 1.110 sends on its Anthropic path (captured at the gateway), and its body for
# `reasoning_effort="low"` on Claude Opus 4.6: adaptive thinking with a summarized display, and the effort.
LITELLM_HEADERS = {
    "User-Agent": "litellm/1.110.2",
    "anthropic-version": "2023-06-01",
    "accept": "application/json",
    "content-type": "application/json",
    "x-api-key": "sk-x",
}
ADAPTIVE_LOW = {
    "messages": [{"role": "user", "content": [{"type": "text", "text": "Say hi"}]}],
    "max_tokens": 3000,
    "thinking": {"type": "adaptive", "display": "summarized"},
    "output_config": {"effort": "low"},
}


@pytest.fixture(scope="module")
def upstream():
    scripted = ScriptedAnthropic()
    with ServerThread(scripted.app) as url:
        yield scripted, url


@pytest.fixture(scope="module")
def gateway(upstream, tmp_path_factory):
    config = parse_config(
        {
            "models": {
                "claude-opus-4-6": {"provider": "anthropic", "model": "claude-opus-4-6", "base_url": upstream[1]},
                # An OpenAI-format model; never called (port 9 has no server).
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
    ledger = tmp_path_factory.mktemp("gw") / "ledger.duckdb"
    with pytest.MonkeyPatch.context() as env:
        env.setenv("GPT_KEY", "unused")
        with ServerThread(create_app(config, str(ledger)), lifespan="on") as url:
            yield url


def test_litellms_reasoning_effort_reaches_claude_with_its_thinking_display(gateway, upstream) -> None:
    """LiteLLM turns `reasoning_effort` for Claude 4.6 into adaptive thinking with `display: "summarized"`
    (Claude's field: show thinking summarized, or "omitted"). The gateway answered 400 `thinking.display: not
    carried`; it now reaches Claude as sent."""
    scripted = upstream[0]
    scripted.requests.clear()
    scripted.reply = {"text": "Hi", "stop_reason": "end_turn", "stop_sequence": None}
    body = {"model": "claude-opus-4-6", **ADAPTIVE_LOW}
    answer = httpx.post(gateway + "/v1/messages", json=body, headers=LITELLM_HEADERS, timeout=30)
    assert answer.status_code == 200, answer.text
    sent = scripted.requests[-1][1]
    assert sent["thinking"] == {"type": "adaptive", "display": "summarized"}
    assert sent["output_config"] == {"effort": "low"}


def test_litellms_adaptive_thinking_and_effort_reach_claude_on_bedrock(tmp_path, monkeypatch) -> None:
    """Claude on Bedrock reads the display in its own fields (additionalModelRequestFields.thinking) and the effort
    in Converse's outputConfig. The effort (`output_config.effort`) was refused: "output_config: the gateway carries
    this field to Anthropic models only"."""
    from tokenomy.emulate.bedrock_runtime import create_app as create_bedrock
    from tokenomy.emulate.instant_engine import InstantEngine

    sent = record_converse(monkeypatch)
    with ServerThread(create_bedrock(engine=InstantEngine())) as bedrock:
        config = parse_config(
            {
                "models": {
                    "opus": {
                        "provider": "bedrock",
                        "region": "us-east-1",
                        "endpoint_url": bedrock,
                        "model": "anthropic.claude-opus-4-6-v1",
                    }
                }
            }
        )
        with ServerThread(create_app(config, str(tmp_path / "ledger.duckdb")), lifespan="on") as url:
            body = {"model": "opus", **ADAPTIVE_LOW}
            answer = httpx.post(url + "/v1/messages", json=body, headers=LITELLM_HEADERS, timeout=30)
    assert answer.status_code == 200, answer.text
    fields = sent[-1]["additionalModelRequestFields"]
    assert fields["thinking"] == {"type": "adaptive", "display": "summarized"}
    assert sent[-1]["outputConfig"] == {"effort": "low"} and "output_config" not in fields


def test_a_thinking_display_is_refused_by_name_where_it_cannot_go(gateway, upstream) -> None:
    """Chat Completions has no switch for showing reasoning: the display is refused naming the field, not dropped;
    a display Claude does not have is refused before any call."""
    scripted = upstream[0]
    scripted.requests.clear()
    body = {
        "model": "gpt",
        "messages": ADAPTIVE_LOW["messages"],
        "max_tokens": 3000,
        "thinking": {"type": "enabled", "budget_tokens": 1024, "display": "summarized"},
    }
    answer = httpx.post(gateway + "/v1/messages", json=body, headers=LITELLM_HEADERS)
    assert answer.status_code == 400 and "thinking.display" in answer.json()["error"]["message"]
    wrong = {"model": "claude-opus-4-6", **ADAPTIVE_LOW, "thinking": {"type": "adaptive", "display": "full"}}
    answer = httpx.post(gateway + "/v1/messages", json=wrong, headers=LITELLM_HEADERS)
    assert answer.status_code == 400 and "thinking.display" in answer.json()["error"]["message"]
    assert not scripted.requests


def test_the_anthropic_emulator_takes_litellms_adaptive_thinking(tmp_path) -> None:
    """`tokenomy emulate anthropic` behind the gateway refused adaptive thinking ("thinking.type: Input should be
    'enabled' or 'disabled'") where Anthropic's API takes it for Claude 4.6; it now answers, and refuses a display
    the API does not have."""
    from tokenomy.emulate.anthropic_api import create_app as create_anthropic
    from tokenomy.emulate.instant_engine import InstantEngine

    with ServerThread(create_anthropic(engine=InstantEngine())) as claude:
        config = parse_config(
            {"models": {"opus": {"provider": "anthropic", "model": "claude-opus-4-6", "base_url": claude}}}
        )
        with ServerThread(create_app(config, str(tmp_path / "ledger.duckdb")), lifespan="on") as url:
            answer = httpx.post(
                url + "/v1/messages", json={"model": "opus", **ADAPTIVE_LOW}, headers=LITELLM_HEADERS, timeout=30
            )
            assert answer.status_code == 200, answer.text
            assert answer.json()["content"][-1]["type"] == "text"
        wrong = {"model": "claude-opus-4-6", **ADAPTIVE_LOW, "thinking": {"type": "adaptive", "display": "full"}}
        refused = httpx.post(claude + "/v1/messages", json=wrong, headers=LITELLM_HEADERS)
        assert refused.status_code == 400 and "thinking.display" in refused.text


def test_litellms_bedrock_converse_with_adaptive_thinking_reaches_claude(tmp_path, monkeypatch) -> None:
    """`litellm.completion(model="bedrock/<route>", aws_bedrock_runtime_endpoint=<gateway>, reasoning_effort="low")`
    for Claude Opus 4.6 sends Converse with Claude's adaptive thinking (display summarized) and effort in
    additionalModelRequestFields. The gateway refused the display ("additionalModelRequestFields.thinking: send
    ..."); it now reaches Bedrock with the effort in outputConfig."""
    from tokenomy.emulate.bedrock_runtime import create_app as create_bedrock
    from tokenomy.emulate.instant_engine import InstantEngine

    sent = record_converse(monkeypatch)
    body = {
        "messages": [{"role": "user", "content": [{"text": "hi"}]}],
        "inferenceConfig": {"maxTokens": 1100},
        "additionalModelRequestFields": {
            "thinking": {"type": "adaptive", "display": "summarized"},
            "output_config": {"effort": "low"},
        },
        "additionalModelResponseFieldPaths": ["/usage/output_tokens_details"],
    }
    with ServerThread(create_bedrock(engine=InstantEngine())) as bedrock:
        model = "anthropic.claude-opus-4-6-v1"
        config = parse_config(
            {"models": {model: {"provider": "bedrock", "region": "us-east-1", "endpoint_url": bedrock, "model": model}}}
        )
        with ServerThread(create_app(config, str(tmp_path / "ledger.duckdb")), lifespan="on") as url:
            answer = httpx.post(
                f"{url}/model/{model}/converse",
                json=body,
                timeout=30,
                headers={"content-type": "application/json", "User-Agent": "litellm/1.110.2"},
            )
            assert answer.status_code == 200, answer.text
            assert answer.json()["output"]["message"]["content"]
            body["additionalModelRequestFields"]["thinking"]["display"] = "full"
            refused = httpx.post(f"{url}/model/{model}/converse", json=body, timeout=30)
            assert refused.status_code == 400 and "thinking.display" in refused.text
    fields = sent[-1]["additionalModelRequestFields"]
    assert fields["thinking"] == {"type": "adaptive", "display": "summarized"}
    assert sent[-1]["outputConfig"] == {"effort": "low"} and "output_config" not in fields
