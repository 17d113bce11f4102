"""The embedded local model through the client: real inference, real KV-cache prefix reuse."""

from __future__ import annotations

import asyncio

import pytest

from tokenomy.client import Tokenomy
from tokenomy.errors import ProviderError
from tokenomy.ledger.store import open_store
from tokenomy.messages import ChatRequest, ImageBlock, Message, RequestMeta
from tokenomy.providers.local import LocalProvider
from tokenomy.request_options import ToolSpec

LONG_PREFIX = " ".join(f"Policy {i}: refunds for order type {i} take {i % 7 + 1} business days." for i in range(150))

pytestmark = pytest.mark.slow


def test_chat_answers_and_records_to_the_ledger(ledger_path):
    with Tokenomy(ledger_path) as client:
        response = client.chat(
            ChatRequest.simple(
                "What is the capital of France? One word.",
                max_tokens=8,
                meta=RequestMeta(task="qa", tags={"team": "t1"}),
            )
        )
    assert response.text.strip()
    assert response.provider == "local" and response.model == "local"
    assert response.usage.input_tokens > 5 and 0 < response.usage.output_tokens <= 8
    assert response.cost_usd == 0 and response.latency_ms > 0 and response.ttft_ms is not None
    [event] = open_store(ledger_path).events()
    assert (event.task, event.tags, event.outcome, event.model) == ("qa", {"team": "t1"}, "ok", "local")
    assert event.input_tokens == response.usage.input_tokens and event.prompt_text is None


def test_second_call_with_long_shared_prefix_reads_the_cache():
    provider = LocalProvider()
    provider.chat(ChatRequest.simple("Warm-up with an unrelated prompt.", max_tokens=1))
    first = provider.chat(ChatRequest.simple("How long for order type 3?", system=LONG_PREFIX, max_tokens=4))
    second = provider.chat(ChatRequest.simple("How long for order type 5?", system=LONG_PREFIX, max_tokens=4))
    prefix_tokens = provider.count_text(provider.format_prompt(ChatRequest.simple("", system=LONG_PREFIX)))
    assert prefix_tokens > 2000
    assert first.usage.cache_read_tokens < 50  # only the chat-template opening was shared
    assert second.usage.cache_read_tokens >= prefix_tokens - 10
    assert second.usage.input_tokens < 40
    # Re-using the 2,000-token prefix makes time to first token many times shorter.
    assert second.ttft_ms * 4 < first.ttft_ms, (first.ttft_ms, second.ttft_ms)


def test_streaming_yields_deltas_then_one_priced_response(ledger_path):
    with Tokenomy(ledger_path) as client:
        chunks = list(client.stream(ChatRequest(messages=[Message("user", "Count: one, two,")], max_tokens=6)))
    deltas = [c.delta for c in chunks if c.delta]
    final = [c.response for c in chunks if c.response is not None]
    assert deltas and len(final) == 1 and final[0].text == "".join(deltas)
    assert final[0].ttft_ms <= final[0].latency_ms
    assert open_store(ledger_path).count() == 1


def test_async_chat(ledger_path):
    async def run():
        with Tokenomy(ledger_path) as client:
            return await client.achat(ChatRequest.simple("Say hi.", max_tokens=4))

    assert asyncio.run(run()).usage.output_tokens > 0


def test_prompt_over_the_context_is_a_client_error(ledger_path):
    with Tokenomy(ledger_path) as client:
        with pytest.raises(ProviderError, match="exceeds the local model's context") as info:
            client.chat(ChatRequest.simple("word " * 9000, max_tokens=8))
    assert info.value.kind == "client_error"
    [event] = open_store(ledger_path).events()
    assert event.outcome == "client_error"


def test_prompt_text_is_stored_only_when_asked(ledger_path):
    with Tokenomy(ledger_path, store_prompts=True) as client:
        client.chat(ChatRequest.simple("Remember me.", system="Be brief.", max_tokens=2))
    [event] = open_store(ledger_path).events()
    assert "Remember me." in event.prompt_text and "Be brief." in event.prompt_text


def test_a_local_model_with_a_server_url_is_refused_at_load():
    """`provider: local` with a base_url (meant for Ollama or vLLM) was accepted and the URL ignored: every call ran
    on the built-in model. Refused at load, naming provider: openai as the fix."""
    from tokenomy.config import parse_config
    from tokenomy.errors import ConfigError

    with pytest.raises(ConfigError, match=r"models\.ollama: .*base_url applies to .* set provider: openai"):
        parse_config({"models": {"ollama": {"provider": "local", "base_url": "http://127.0.0.1:11434/v1"}}}, "t.yaml")


def test_a_count_is_the_prompt_the_model_evaluates_with_tools_and_history() -> None:
    provider = LocalProvider()
    request = ChatRequest(
        messages=[
            Message("user", "Weather in Paris?"),
            Message("assistant", "Checking."),
            Message("user", "Thanks, and Rome?"),
        ],
        system="Be brief.",
        tools=[ToolSpec("weather", "The weather in a city.", {"type": "object"})],
        max_tokens=2,
    )
    counted = provider.count_tokens(request)
    usage = provider.chat(request).usage
    assert counted == usage.input_tokens + usage.cache_read_tokens  # the KV cache may hold a prefix: same prompt
    assert counted > provider.count_tokens(ChatRequest.simple("Thanks, and Rome?"))
    image = ImageBlock("image/png", b"\x89PNG")
    with pytest.raises(ProviderError, match=r"image block \(messages\[0\]\.content\[0\]\)") as refused:
        provider.count_tokens(ChatRequest(messages=[Message("user", [image])]))
    assert refused.value.status == 400
