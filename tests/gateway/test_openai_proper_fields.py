"""What OpenAI's own API (api.openai.com, Azure OpenAI) refuses in a Chat Completions request, refused by name before
sending, while an OpenAI-compatible server (vLLM, llama.cpp, Ollama, ...) still gets it: `top_k`, and a document
that is no PDF (OpenAI's file parts read PDFs only). The official SDKs drive a real gateway on 127.0.0.1 in front of
recording upstreams; an Azure model is OpenAI's own API wherever its endpoint is."""

from __future__ import annotations

import base64

import anthropic
import openai
import pytest

from helpers.recording_openai import RecordingOpenAI
from tokenomy.config import parse_config
from tokenomy.emulate.server import ServerThread
from tokenomy.gateway.app import create_app
from tokenomy.gateway.upstream import AsyncOpenAIUpstream
from tokenomy.messages import ChatRequest, DocumentBlock, Message, TextBlock
from tokenomy.providers.openai_provider import OpenAIProvider
from tokenomy.providers.registry import ModelSpec

ASK = [{"role": "user", "content": "hi"}]
NOTE = {"type": "document", "source": {"type": "text", "media_type": "text/plain", "data": "the note"}}
PDF = {
    "type": "document",
    "source": {"type": "base64", "media_type": "application/pdf", "data": base64.b64encode(b"%PDF-1.4 x").decode()},
}


@pytest.fixture(scope="module")
def served(tmp_path_factory):
    with RecordingOpenAI() as azure, RecordingOpenAI() as vllm, pytest.MonkeyPatch.context() as env:
        env.setenv("AZURE_OPENAI_API_KEY", "k")
        env.setenv("VLLM_KEY", "k")
        config = parse_config(
            {
                "models": {
                    "azure-gpt": {
                        "provider": "azure",
                        "model": "gpt-4o-mini",
                        "base_url": azure.url.removesuffix("/v1"),
                        "price_as": "gpt-4o-mini",
                    },
                    "vllm": {
                        "provider": "openai",
                        "model": "qwen",
                        "base_url": vllm.url,
                        "api_key_env": "VLLM_KEY",
                        "price_as": "gpt-4o-mini",
                    },
                },
                "routes": {"either": {"model": "azure-gpt", "fallback": ["vllm"]}},
            }
        )
        ledger = tmp_path_factory.mktemp("proper") / "ledger.duckdb"
        with ServerThread(create_app(config, str(ledger)), lifespan="on") as url:
            yield url, azure, vllm


@pytest.fixture
def gateway(served):
    url, azure, vllm = served
    azure.bodies.clear()
    vllm.bodies.clear()
    return url, azure, vllm


def claude_sdk(url: str) -> anthropic.Anthropic:
    return anthropic.Anthropic(base_url=url, api_key="unused", max_retries=0)


def test_top_k_is_refused_by_name_for_azure_and_carried_to_a_compatible_server(gateway):
    url, azure, vllm = gateway
    sdk = claude_sdk(url)
    with pytest.raises(anthropic.BadRequestError) as info:
        sdk.messages.create(model="azure-gpt", max_tokens=5, messages=ASK, extra_body={"top_k": 3})
    said = str(info.value)
    assert "field `top_k`" in said and "model `azure-gpt`" in said
    assert azure.bodies == []  # nothing was sent where it was certain to fail
    reply = sdk.messages.create(model="vllm", max_tokens=5, messages=ASK, extra_body={"top_k": 3})
    assert reply.content and vllm.last["top_k"] == 3


def test_a_route_moves_on_from_azure_to_the_server_that_takes_top_k(gateway):
    url, azure, vllm = gateway
    reply = claude_sdk(url).messages.create(model="either", max_tokens=5, messages=ASK, extra_body={"top_k": 3})
    assert reply.content and azure.bodies == [] and vllm.last["top_k"] == 3


def test_a_text_document_is_refused_by_name_for_azure_and_sent_to_a_compatible_server(gateway):
    url, azure, vllm = gateway
    sdk = claude_sdk(url)
    asked = [{"role": "user", "content": [NOTE, {"type": "text", "text": "summarize"}]}]
    with pytest.raises(anthropic.BadRequestError) as info:
        sdk.messages.create(model="azure-gpt", max_tokens=5, messages=asked)
    said = str(info.value)
    assert "txt document (messages.0.content.0" in said and "PDF files only" in said and "`azure-gpt`" in said
    assert azure.bodies == []
    sdk.messages.create(model="vllm", max_tokens=5, messages=asked)
    part = vllm.last["messages"][0]["content"][0]
    assert part["type"] == "file" and part["file"]["file_data"].startswith("data:text/plain;base64,")


def test_a_pdf_still_reaches_azure(gateway):
    url, azure, _ = gateway
    asked = [{"role": "user", "content": [PDF, {"type": "text", "text": "summarize"}]}]
    claude_sdk(url).messages.create(model="azure-gpt", max_tokens=5, messages=asked)
    assert azure.last["messages"][0]["content"][0]["file"]["file_data"].startswith("data:application/pdf;base64,")


def test_openai_sdk_caller_top_k_to_azure_is_a_400_naming_it(gateway):
    url, azure, vllm = gateway
    sdk = openai.OpenAI(base_url=f"{url}/v1", api_key="unused", max_retries=0)
    with pytest.raises(openai.BadRequestError, match="top_k"):
        sdk.chat.completions.create(model="azure-gpt", messages=ASK, extra_body={"top_k": 4})
    assert azure.bodies == []
    sdk.chat.completions.create(model="vllm", messages=ASK, extra_body={"top_k": 4})
    assert vllm.last["top_k"] == 4


@pytest.mark.parametrize(
    ("base_url", "official"),
    [
        (None, True),  # the SDK's default: api.openai.com
        ("https://api.openai.com/v1", True),
        ("https://API.OpenAI.com/v1/", True),
        ("http://127.0.0.1:8000/v1", False),
        ("https://openrouter.ai/api/v1", False),
        ("https://api.openai.com.example.net/v1", False),
    ],
)
def test_openai_proper_is_told_by_its_host(base_url, official, monkeypatch):
    monkeypatch.delenv("OPENAI_BASE_URL", raising=False)
    asked = [Message("user", [DocumentBlock("txt", data=b"note"), TextBlock("summarize")])]
    request = ChatRequest(messages=asked, model="gpt-4o", top_k=2)
    for provider in (
        OpenAIProvider(base_url=base_url, api_key="k"),
        AsyncOpenAIUpstream(ModelSpec(name="m", provider="openai", model="gpt-4o", base_url=base_url)),
    ):
        why = provider.refusal(request)
        assert (why is not None) is official
        if why is not None:
            assert why.where == "top_k"
            document = provider.refusal(ChatRequest(messages=request.messages, model="gpt-4o"))
            assert document is not None and document.where == "messages[0].content[0]"


def test_a_cap_goes_to_azure_as_max_completion_tokens_and_to_a_compatible_server_as_max_tokens(gateway):
    # OpenAI's reasoning models refuse max_tokens ("Use 'max_completion_tokens' instead"), which OpenAI's API
    # reference deprecates for the same cap under its new name; a compatible server may know only max_tokens.
    url, azure, vllm = gateway
    sdk = claude_sdk(url)
    sdk.messages.create(model="azure-gpt", max_tokens=7, messages=ASK)
    with sdk.messages.stream(model="azure-gpt", max_tokens=8, messages=ASK) as streamed:
        streamed.get_final_message()
    assert [(b.get("max_tokens"), b.get("max_completion_tokens")) for b in azure.bodies] == [(None, 7), (None, 8)]
    sdk.messages.create(model="vllm", max_tokens=7, messages=ASK)
    with sdk.messages.stream(model="vllm", max_tokens=8, messages=ASK) as streamed:
        streamed.get_final_message()
    assert [(b.get("max_tokens"), b.get("max_completion_tokens")) for b in vllm.bodies] == [(7, None), (8, None)]


@pytest.mark.parametrize("base_url", [None, "https://api.openai.com/v1"])
def test_openai_proper_gets_the_cap_as_max_completion_tokens(base_url, monkeypatch):
    monkeypatch.delenv("OPENAI_BASE_URL", raising=False)
    request = ChatRequest.simple("hi", model="gpt-5", max_tokens=9)
    sdk_params = OpenAIProvider(base_url=base_url, api_key="k")._params(request)["extra_body"]
    pooled = AsyncOpenAIUpstream(ModelSpec(name="m", provider="openai", model="gpt-5", base_url=base_url))
    for body in (sdk_params, pooled.body(request), pooled.body(request, stream=True)):
        assert body.get("max_completion_tokens") == 9 and "max_tokens" not in body


def test_an_effort_openai_has_no_level_for_is_refused_by_name_for_azure(gateway):
    # OpenAI's reasoning_effort: none, minimal, low, medium, high, xhigh. Claude's "max" has no equal there; OpenRouter
    # (a compatible server) takes it.
    url, azure, vllm = gateway
    sdk = claude_sdk(url)
    asked = {"thinking": {"type": "adaptive"}, "output_config": {"effort": "max"}}
    with pytest.raises(anthropic.BadRequestError) as info:
        sdk.messages.create(model="azure-gpt", max_tokens=5, messages=ASK, extra_body=asked)
    assert "output_config.effort" in str(info.value) and "xhigh" in str(info.value)
    assert azure.bodies == []
    sdk.messages.create(model="vllm", max_tokens=5, messages=ASK, extra_body=asked)
    assert vllm.last["reasoning_effort"] == "max"
    xhigh = {"thinking": {"type": "adaptive"}, "output_config": {"effort": "xhigh"}}
    sdk.messages.create(model="azure-gpt", max_tokens=5, messages=ASK, extra_body=xhigh)
    assert azure.last["reasoning_effort"] == "xhigh"


def test_more_than_four_stop_sequences_are_refused_by_name_for_azure(gateway):
    # OpenAI's `stop` takes up to 4 sequences (its API reference: maxItems 4); Claude's stop_sequences take more.
    url, azure, vllm = gateway
    sdk = claude_sdk(url)
    five = ["a1", "b2", "c3", "d4", "e5"]
    with pytest.raises(anthropic.BadRequestError) as info:
        sdk.messages.create(model="azure-gpt", max_tokens=5, messages=ASK, stop_sequences=five)
    assert "stop_sequences" in str(info.value) and "4" in str(info.value)
    assert azure.bodies == []
    sdk.messages.create(model="vllm", max_tokens=5, messages=ASK, stop_sequences=five)
    assert vllm.last["stop"] == five
    sdk.messages.create(model="azure-gpt", max_tokens=5, messages=ASK, stop_sequences=five[:4])
    assert azure.last["stop"] == five[:4]


def test_a_gemini_callers_top_k_is_refused_for_azure_naming_its_own_field(gateway):
    from google import genai
    from google.genai import errors, types

    url, azure, vllm = gateway
    client = genai.Client(api_key="unused", http_options={"base_url": url})
    config = types.GenerateContentConfig(top_k=3, max_output_tokens=5)
    with pytest.raises(errors.ClientError) as info:
        client.models.generate_content(model="azure-gpt", contents="hi", config=config)
    assert info.value.code == 400 and "generationConfig.topK" in str(info.value)
    assert azure.bodies == []
    client.models.generate_content(model="vllm", contents="hi", config=config)
    assert vllm.last["top_k"] == 3


def test_a_model_without_base_url_goes_where_openai_base_url_points(tmp_path, monkeypatch):
    # The SDK's own variable, which the SDK-based provider (sync calls, `tokenomy` library calls) honours: the
    # gateway's pooled upstream sent the same model's calls to api.openai.com instead, as OpenAI's own API.
    with RecordingOpenAI() as local:
        monkeypatch.setenv("OPENAI_BASE_URL", local.url)
        monkeypatch.setenv("LOCAL_KEY", "k")
        config = parse_config(
            {
                "models": {
                    "gpt": {
                        "provider": "openai",
                        "model": "qwen",
                        "api_key_env": "LOCAL_KEY",
                        "price_as": "gpt-4o-mini",
                    }
                }
            }
        )
        with ServerThread(create_app(config, str(tmp_path / "ledger.duckdb")), lifespan="on") as url:
            sdk = openai.OpenAI(base_url=f"{url}/v1", api_key="unused", max_retries=0)
            sdk.chat.completions.create(model="gpt", messages=ASK, extra_body={"top_k": 4})
            list(sdk.chat.completions.create(model="gpt", messages=ASK, stream=True))
        assert [b["model"] for b in local.bodies] == ["qwen", "qwen"] and local.bodies[0]["top_k"] == 4
