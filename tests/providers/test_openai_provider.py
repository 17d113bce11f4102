"""The OpenAI provider end to end against llama-cpp-python's own OpenAI-compatible server."""

from __future__ import annotations

import pytest

from tokenomy.client import Tokenomy
from tokenomy.errors import ProviderError
from tokenomy.ledger.store import open_store
from tokenomy.messages import ChatRequest
from tokenomy.providers.openai_provider import usage_from_openai
from tokenomy.providers.registry import ModelSpec

pytestmark = pytest.mark.slow


def spec(url: str) -> dict[str, ModelSpec]:
    return {"smol": ModelSpec(name="smol", provider="openai", model="smollm2", base_url=url, price_as="gpt-4o-mini")}


def test_chat_and_stream_through_the_openai_sdk(llama_server, ledger_path):
    with Tokenomy(ledger_path, models=spec(llama_server)) as client:
        response = client.chat(ChatRequest.simple("Name a colour.", model="smol", max_tokens=6))
        chunks = list(client.stream(ChatRequest.simple("Name a fruit.", model="smol", max_tokens=6)))
    assert response.text and response.provider == "openai" and response.model == "smollm2"
    assert response.usage.input_tokens > 0 and response.usage.output_tokens > 0
    # Priced as gpt-4o-mini: $0.15 / $0.60 per million tokens.
    expected = (response.usage.input_tokens * 15 + response.usage.output_tokens * 60) / 100_000_000
    assert float(response.cost_usd) == pytest.approx(expected)
    streamed = chunks[-1].response
    assert streamed is not None and streamed.ttft_ms is not None and streamed.text
    # llama.cpp's server sends no usage in streams: the counts are estimated, and labelled so.
    assert streamed.raw["usage_source"] in ("reported", "estimated") and streamed.usage.output_tokens > 0
    events = open_store(ledger_path).events()
    assert len(events) == 2 and all(e.outcome == "ok" and e.cost_usd > 0 for e in events)


def test_unreachable_server_is_a_server_error(ledger_path):
    models = spec("http://127.0.0.1:9/v1")
    with Tokenomy(ledger_path, models=models) as client, pytest.raises(ProviderError) as info:
        client.chat(ChatRequest.simple("hi", model="smol", max_tokens=2))
    assert info.value.kind == "server_error" and info.value.retryable


def test_cached_tokens_are_split_out_of_prompt_tokens():
    from openai.types.completion_usage import CompletionUsage, PromptTokensDetails

    usage = usage_from_openai(CompletionUsage(prompt_tokens=2000, completion_tokens=50, total_tokens=2050,
                                              prompt_tokens_details=PromptTokensDetails(cached_tokens=1536)))
    assert (usage.input_tokens, usage.cache_read_tokens, usage.output_tokens) == (464, 1536, 50)
