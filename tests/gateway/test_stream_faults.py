"""An upstream stream that is cut or fails midway is an error, not an answer: the official openai SDK
streams through the gateway from a scripted OpenAI-format upstream, and the ledger says what happened."""

from __future__ import annotations

import json
from contextlib import contextmanager, nullcontext

import openai
import pytest

from helpers.scripted_openai import ScriptedOpenAI
from tokenomy.config import parse_config
from tokenomy.emulate.server import ServerThread
from tokenomy.gateway.app import create_app
from tokenomy.ledger.store import open_store
from tokenomy.pricing.catalog import default_catalog

HAIKU = "anthropic.claude-3-haiku-20240307-v1:0"


def served(script: list[tuple], ledger_path, fallback: list[tuple] | None = None):
    upstream, spare = ScriptedOpenAI(script), ScriptedOpenAI(fallback or [])
    config = {
        "models": {
            "up": {"provider": "openai", "model": "up", "base_url": upstream.url, "price_as": HAIKU},
            "spare": {"provider": "openai", "model": "spare", "base_url": spare.url, "price_as": HAIKU},
        },
        "routes": {
            "chain": {"model": "up", "fallback": ["spare"]},
            "once": {"model": "up", "retry": {"max_attempts": 1}},
        },
    }
    return upstream, spare, ServerThread(create_app(parse_config(config), str(ledger_path)), lifespan="on")


def stream_text(url: str, model: str = "up") -> tuple[str, str | None]:
    client = openai.OpenAI(base_url=url + "/v1", api_key="unused", max_retries=0)
    text, finish = "", None
    for chunk in client.chat.completions.create(model=model, messages=[{"role": "user", "content": "hi"}], stream=True):
        for choice in chunk.choices:
            text += choice.delta.content or ""
            finish = choice.finish_reason or finish
    return text, finish


def outcomes(ledger_path) -> list[tuple[str, str]]:
    events = sorted(open_store(str(ledger_path)).events(), key=lambda e: (e.ts, e.attempt))
    return [(e.model, e.outcome) for e in events]


@pytest.mark.parametrize("kind", ["cut", "broken"])
def test_a_cut_or_failed_upstream_stream_ends_in_an_error_and_is_not_ok_in_the_ledger(kind, ledger_path):
    upstream, spare, gateway = served([(200, {}, kind)], ledger_path)
    with gateway as url:
        with pytest.raises(openai.APIError) as failed:  # the SDK raises on OpenAI's in-stream error event
            stream_text(url)
        assert "upstream" in failed.value.message and "stop" not in failed.value.message
    upstream.close(), spare.close()
    assert outcomes(ledger_path) == [("up", "server_error")] and upstream.calls == 1


@pytest.mark.parametrize("kind", ["cut", "broken"])
def test_a_stream_that_fails_midway_is_recorded_at_its_estimated_cost_like_an_abandoned_one(kind, ledger_path):
    # The provider generated "par" before the stream failed: it billed the prompt and that token.
    upstream, spare, gateway = served([(200, {}, kind)], ledger_path)
    with gateway as url:
        with pytest.raises(openai.APIError):
            stream_text(url)
    upstream.close(), spare.close()
    [row] = open_store(str(ledger_path)).events()
    assert row.outcome == "server_error" and row.input_tokens > 0 and row.output_tokens == 1
    assert row.cost_usd is not None and row.cost_usd > 0


def test_a_stream_line_that_is_no_json_ends_the_stream_in_its_error_not_in_an_ok_answer_without_it(ledger_path):
    # A `data:` line the gateway could not read was skipped: the caller got "he", the text that line carried missing,
    # with finish "stop", and the row said ok. It is the upstream's fault, as an error event midway is: the stream's
    # error event (no fallback after "he" reached the client), the attempt recorded at its estimate.
    upstream, spare, gateway = served([(200, {}, "garbled-line")], ledger_path)
    with gateway as url:
        with pytest.raises(openai.APIError) as failed:
            stream_text(url, "chain")
        assert "{not json" in failed.value.message and "internal error" not in failed.value.message
    upstream.close(), spare.close()
    [row] = open_store(str(ledger_path)).events()
    assert row.outcome == "server_error" and row.input_tokens > 0 and row.output_tokens == 1 and row.cost_usd > 0
    assert upstream.calls == 1 and spare.calls == 0


def test_a_stream_of_an_unpriced_model_that_fails_midway_is_recorded_unpriced(ledger_path):
    # A library client's model the catalog cannot price: its estimated cost has no price to come from. The row says
    # so at $0, as an answered call's would, and the caller gets the stream's error, not the pricing error.
    from tokenomy.client import Tokenomy
    from tokenomy.config import ModelSpec
    from tokenomy.errors import ProviderError
    from tokenomy.messages import ChatRequest

    upstream = ScriptedOpenAI([(200, {}, "cut")])
    spec = {"up": ModelSpec(name="up", provider="openai", model="no-price-model-x", base_url=upstream.url)}
    with Tokenomy(str(ledger_path), models=spec) as client, pytest.raises(ProviderError):
        for _ in client.stream(ChatRequest.simple("hi", model="up")):
            pass
    upstream.close()
    [row] = open_store(str(ledger_path)).events()
    assert row.outcome == "server_error" and row.priced_by == "unpriced" and row.cost_usd == 0
    assert row.input_tokens > 0 and row.output_tokens == 1


@pytest.mark.parametrize("kind", ["empty", "whole", "done-only"])
def test_a_stream_answered_200_that_ends_before_its_first_chunk_is_charged_its_prompt_not_free(kind, ledger_path):
    """The upstream answered 200 and then sent no chunk the gateway could read: its body ended at once, or it answered
    as if the request were not streamed. It had the request and bills its prompt, but the attempt was recorded at 0
    tokens and $0, so a key's budget counted nothing for it and every retry of it was paid for unbudgeted. A stream of
    `[DONE]` alone was an ok empty answer with finish "stop", though a whole answer with no choices is this 502."""
    upstream, spare, gateway = served([(200, {}, kind)], ledger_path)
    with gateway as url:
        with pytest.raises(openai.APIStatusError) as failed:
            stream_text(url, "once")
    upstream.close(), spare.close()
    assert failed.value.status_code == 502 and upstream.calls == 1
    [row] = open_store(str(ledger_path)).events()
    assert row.outcome == "server_error" and row.input_tokens > 0 and row.output_tokens == 0 and row.cost_usd > 0


def test_a_stream_whose_call_fails_before_its_first_token_is_answered_with_the_errors_status(ledger_path):
    # As a provider answers: a throttled or failed call is a 429 or 5xx both SDKs raise as such (and retry), not a
    # 200 whose stream holds only an error event (the openai SDK's bare APIError, the anthropic SDK's "status 200").
    import anthropic

    upstream, spare, gateway = served([(429, {}), (429, {}), (503, {}), (503, {})], ledger_path)
    ask = [{"role": "user", "content": "hi"}]
    with gateway as url:
        chat = openai.OpenAI(base_url=url + "/v1", api_key="unused", max_retries=0)
        messages = anthropic.Anthropic(base_url=url, api_key="unused", max_retries=0)
        for raised in (openai.RateLimitError, openai.InternalServerError):
            with pytest.raises(raised) as failed:
                chat.chat.completions.create(model="once", messages=ask, stream=True)
            assert failed.value.body["code"] in ("throttled", "server_error")
            with pytest.raises(getattr(anthropic, raised.__name__)) as refused:
                with messages.messages.stream(model="once", max_tokens=5, messages=ask) as stream:
                    list(stream)
            assert refused.value.body["type"] == "error"
    upstream.close(), spare.close()
    assert outcomes(ledger_path) == [("up", "throttled")] * 2 + [("up", "server_error")] * 2


def test_a_throttled_answer_passes_the_providers_retry_after_on(ledger_path):
    # The SDKs wait what Retry-After says before retrying a 429; without it they retry within a second or two.
    import anthropic

    upstream, spare, gateway = served([(429, {"retry-after": "2.5"})] * 3, ledger_path)
    ask = [{"role": "user", "content": "hi"}]
    with gateway as url:
        chat = openai.OpenAI(base_url=url + "/v1", api_key="unused", max_retries=0)
        messages = anthropic.Anthropic(base_url=url, api_key="unused", max_retries=0)
        for stream in (False, True):
            with pytest.raises(openai.RateLimitError) as failed:
                chat.chat.completions.create(model="once", messages=ask, stream=stream)
            assert failed.value.response.headers.get("retry-after") == "3"
        with pytest.raises(anthropic.RateLimitError) as refused:
            messages.messages.create(model="once", max_tokens=5, messages=ask)
        assert refused.value.response.headers.get("retry-after") == "3"
    upstream.close(), spare.close()


def test_the_upstream_refusing_the_gateways_credentials_is_a_502_not_the_callers_400(ledger_path):
    # A 400 tells the caller its request is at fault; a bad key in the gateway's config is not the caller's doing.
    import anthropic

    upstream, spare, gateway = served([(401, {}), (403, {}), (400, {})], ledger_path)
    ask = [{"role": "user", "content": "hi"}]
    with gateway as url:
        chat = openai.OpenAI(base_url=url + "/v1", api_key="unused", max_retries=0)
        messages = anthropic.Anthropic(base_url=url, api_key="unused", max_retries=0)
        with pytest.raises(openai.InternalServerError) as failed:
            chat.chat.completions.create(model="once", messages=ask, stream=True)
        assert failed.value.status_code == 502 and "401" in failed.value.message
        with pytest.raises(anthropic.InternalServerError) as refused:
            messages.messages.create(model="once", max_tokens=5, messages=ask)
        assert refused.value.status_code == 502 and "403" in refused.value.message
        with pytest.raises(openai.BadRequestError):  # the upstream's 400: the request is at fault
            chat.chat.completions.create(model="once", messages=ask)
    upstream.close(), spare.close()


@pytest.mark.parametrize("kind", ["error", "cut"])
def test_retries_and_fallback_apply_only_while_nothing_was_streamed(kind, ledger_path):
    upstream, spare, gateway = served([(200, {}, kind)], ledger_path, fallback=[])
    with gateway as url:
        if kind == "error":  # failed before its first delta: retried or replaced, the client sees one answer
            assert stream_text(url, "chain") == ("ok", "stop")
        else:  # "par" had reached the client: no second answer may follow it
            with pytest.raises(openai.APIError):
                stream_text(url, "chain")
    upstream.close(), spare.close()
    rows = outcomes(ledger_path)
    assert rows[0] == ("up", "server_error")
    after = [("up", "ok")] if upstream.calls == 2 else [("spare", "ok")]
    assert rows[1:] == (after if kind == "error" else []) and spare.calls + upstream.calls == 1 + len(rows[1:])


def test_a_long_stream_is_not_cut_while_its_chunks_keep_coming(ledger_path, monkeypatch):
    # The upstream timeout bounds a silence, not the answer: a generation longer than it (here 4 s of deltas
    # 0.1 s apart against 2 s) used to be cut at that length, its answer lost and its cost still billed.
    import functools

    from tokenomy.gateway import state
    from tokenomy.gateway import upstream as passthrough

    monkeypatch.setattr(state, "AsyncOpenAIUpstream", functools.partial(passthrough.AsyncOpenAIUpstream, timeout=2.0))
    pieces = tuple(f"w{i} " for i in range(40))
    upstream = ScriptedOpenAI([(200, {}, "slow")], reply=pieces)
    config = {"models": {"up": {"provider": "openai", "model": "up", "base_url": upstream.url, "price_as": HAIKU}}}
    with ServerThread(create_app(parse_config(config), str(ledger_path)), lifespan="on") as url:
        assert stream_text(url) == ("".join(pieces), "stop")
    upstream.close()
    assert outcomes(ledger_path) == [("up", "ok")] and upstream.calls == 1


def test_a_stream_silent_past_its_timeout_s_says_how_to_raise_it_for_a_stream(ledger_path):
    # The upstream sent "par" and fell silent past the model's timeout_s. The error told the caller to raise timeout_s
    # "for long answers that are not streamed", which this answer was: it names the silence between chunks instead.
    upstream = ScriptedOpenAI([(200, {}, "stall")])
    config = {
        "models": {
            "up": {"provider": "openai", "model": "up", "base_url": upstream.url, "price_as": HAIKU, "timeout_s": 0.5}
        },
        "routes": {"up": {"model": "up", "retry": {"max_attempts": 1}}},
    }
    try:
        with ServerThread(create_app(parse_config(config), str(ledger_path)), lifespan="on") as url:
            with pytest.raises(openai.APIError) as failed:
                stream_text(url)
    finally:
        upstream.close()
    said = failed.value.message
    assert "no data for 0.5s" in said and "waits 0.5s for each stream chunk" in said, said
    assert "raise its timeout_s" in said and "not streamed" not in said, said
    assert outcomes(ledger_path) == [("up", "timeout")]


def test_a_whole_stream_without_done_is_accepted(ledger_path):
    upstream, spare, gateway = served([(200, {}, "nodone")], ledger_path)
    with gateway as url:
        assert stream_text(url) == ("ok", "stop")
    upstream.close(), spare.close()
    assert outcomes(ledger_path) == [("up", "ok")]


@pytest.mark.parametrize("kind", ["cut", "broken", "error", "empty", "garbled-line"])
def test_the_sdk_based_provider_treats_a_cut_or_failed_stream_the_same(kind):
    from tokenomy.errors import ProviderError
    from tokenomy.messages import ChatRequest
    from tokenomy.providers.openai_provider import OpenAIProvider

    upstream = ScriptedOpenAI([(200, {}, kind), (200, {}, "nodone")])
    provider = OpenAIProvider(base_url=upstream.url)
    try:
        with pytest.raises(ProviderError) as failed:
            list(provider.stream(ChatRequest.simple("hi", model="m")))
        assert failed.value.kind == "server_error"
        # a stream that ends unfinished or unreadable was answered 200 and is billed (an error event is the upstream's
        # own word); a line that is no JSON raised the SDK's JSONDecodeError, no ProviderError, out of the library
        assert failed.value.reached == (kind in ("cut", "empty", "garbled-line"))
        chunks = list(provider.stream(ChatRequest.simple("hi", model="m")))  # a finish_reason, no [DONE]: whole
        assert chunks[-1].response is not None and chunks[-1].response.text == "ok"
    finally:
        provider.close(), upstream.close()


def test_the_sdk_based_provider_takes_a_whole_answer_that_is_no_json_as_the_upstreams_fault():
    # The SDK's JSONDecodeError came out of the library's chat() as it was, where every other fault is a ProviderError.
    from tokenomy.errors import ProviderError
    from tokenomy.messages import ChatRequest
    from tokenomy.providers.openai_provider import OpenAIProvider

    upstream = ScriptedOpenAI([(200, {}, "garbled")])
    provider = OpenAIProvider(base_url=upstream.url)
    try:
        with pytest.raises(ProviderError) as failed:
            provider.chat(ChatRequest.simple("hi", model="m"))
    finally:
        provider.close(), upstream.close()
    assert failed.value.kind == "server_error" and failed.value.reached and "no JSON" in str(failed.value)


def event(name: str, data: dict) -> str:
    """One event of Anthropic's Messages stream."""
    import json

    return f"event: {name}\ndata: {json.dumps({'type': name, **data})}\n\n"


@contextmanager
def claude_gateway_over(ledger_path, messages):
    """The gateway with one Claude model, `claude`, whose Anthropic API is the Starlette handler `messages` (POST
    /v1/messages): yields an anthropic client of the gateway."""
    import anthropic
    from starlette.applications import Starlette
    from starlette.routing import Route

    upstream = Starlette(routes=[Route("/v1/messages", messages, methods=["POST"])])
    with ServerThread(upstream) as upstream_url:
        config = {
            "models": {
                "claude": {
                    "provider": "anthropic",
                    "model": "claude-sonnet-4-5-20250929",
                    "base_url": upstream_url,
                    "api_key_env": "SCRIPTED_ANTHROPIC_KEY",
                }
            }
        }
        with pytest.MonkeyPatch.context() as env:
            env.setenv("SCRIPTED_ANTHROPIC_KEY", "unused")
            with ServerThread(create_app(parse_config(config), str(ledger_path)), lifespan="on") as url:
                yield anthropic.Anthropic(base_url=url, api_key="unused", max_retries=0)


@pytest.mark.filterwarnings("ignore:The model .* is deprecated:DeprecationWarning")
def test_a_stream_the_client_leaves_stops_the_anthropic_upstream_too(ledger_path):
    # Providers the gateway reaches through their SDK (Anthropic, Bedrock, Gemini) stream from a worker thread,
    # which read the whole answer after the client had left: the provider generated, and billed, all of it.
    import asyncio
    import threading
    import time

    from starlette.responses import StreamingResponse

    sent, ended = [], threading.Event()

    async def messages(request):
        body = await request.json()

        async def generate():
            try:
                yield event(
                    "message_start",
                    {
                        "message": {
                            "id": "m",
                            "type": "message",
                            "role": "assistant",
                            "model": body["model"],
                            "content": [],
                            "stop_reason": None,
                            "stop_sequence": None,
                            "usage": {"input_tokens": 10, "output_tokens": 1},
                        }
                    },
                )
                yield event("content_block_start", {"index": 0, "content_block": {"type": "text", "text": ""}})
                for i in range(100):  # a long answer: 5 s
                    yield event("content_block_delta", {"index": 0, "delta": {"type": "text_delta", "text": f"w{i} "}})
                    sent.append(i)
                    await asyncio.sleep(0.05)
                yield event("content_block_stop", {"index": 0})
                yield event(
                    "message_delta",
                    {"delta": {"stop_reason": "end_turn", "stop_sequence": None}, "usage": {"output_tokens": 100}},
                )
                yield event("message_stop", {})
            finally:
                ended.set()

        return StreamingResponse(generate(), media_type="text/event-stream")

    with claude_gateway_over(ledger_path, messages) as client:
        with client.messages.stream(
            model="claude", max_tokens=500, messages=[{"role": "user", "content": "hi"}]
        ) as stream:
            deltas = 0
            for item in stream:
                deltas += item.type == "content_block_delta"
                if deltas == 3:
                    break  # the client leaves
        left = time.monotonic()
        assert ended.wait(20)
        stopped_after = time.monotonic() - left
    assert len(sent) < 100 and stopped_after < 4, (len(sent), stopped_after)  # not read to its end
    [row] = open_store(str(ledger_path)).events()
    assert row.outcome == "cancelled" and row.output_tokens >= 3


@pytest.mark.parametrize(
    "usage",
    [None, {"total_tokens": 600}, {"prompt_tokens": None, "completion_tokens": None}, {"prompt_tokens": 100}],
)
@pytest.mark.parametrize("stream", [False, True])
def test_an_answer_sent_without_usage_is_recorded_at_estimated_tokens_not_free(stream, usage, ledger_path):
    # Some OpenAI-compatible servers send no usage. A stream without it was estimated; an answer that was not
    # streamed was recorded with 0 tokens at $0, and its budget charged nothing, though the server answered it. So was
    # an answer whose usage counted nothing (only total_tokens, or nulls), streamed or not, and one whose usage left
    # completion_tokens out was recorded as writing nothing.
    upstream, spare, gateway = served([], ledger_path)
    upstream.usage = usage
    with gateway as url:
        client = openai.OpenAI(base_url=url + "/v1", api_key="unused", max_retries=0)
        prompt = [{"role": "user", "content": "x" * 400}]  # ~100 tokens
        reply = client.chat.completions.create(model="once", messages=prompt, stream=stream)
        text = (
            "".join(c.choices[0].delta.content or "" for c in reply if c.choices)
            if stream
            else reply.choices[0].message.content
        )
    upstream.close(), spare.close()
    assert text == "ok"
    [row] = open_store(str(ledger_path)).events()
    assert row.outcome == "ok" and row.input_tokens == 100 and row.output_tokens >= 1 and row.cost_usd > 0


@pytest.mark.parametrize("stream", [True, False])
def test_an_answer_the_gateway_cannot_read_is_a_500_and_still_in_the_ledger(stream, ledger_path, monkeypatch):
    """A bug in reading a provider's answer (here Anthropic's stream start without its message, which the provider's
    mapping does not expect) fails the call with a 500, and the attempt, which the provider answered and billed, is
    in the ledger at its estimate: it was lost before."""
    import anthropic

    from helpers.scripted_anthropic import ScriptedAnthropic

    scripted = ScriptedAnthropic()
    scripted.broken = True
    if not stream:  # the whole answer read with a mapping bug
        from tokenomy.providers import anthropic_provider

        def unreadable(*args, **kwargs):
            raise KeyError("content")

        monkeypatch.setattr(anthropic_provider, "answer_blocks", unreadable)
    with ServerThread(scripted.app) as claude_api:
        config = {
            "models": {
                "claude": {"provider": "anthropic", "model": "claude-3-5-haiku-20241022", "base_url": claude_api}
            }
        }
        with ServerThread(create_app(parse_config(config), str(ledger_path)), lifespan="on") as url:
            sdk = anthropic.Anthropic(base_url=url, api_key="unused", max_retries=0)
            with pytest.raises(anthropic.APIError):
                if stream:
                    with sdk.messages.stream(
                        model="claude", max_tokens=20, messages=[{"role": "user", "content": "hi"}]
                    ) as answer:
                        list(answer)
                else:
                    sdk.messages.create(model="claude", max_tokens=20, messages=[{"role": "user", "content": "hi"}])
    rows = open_store(str(ledger_path)).events()
    assert len(scripted.requests) == 1
    assert [(r.outcome, r.error_type) for r in rows] == [("server_error", "AttributeError" if stream else "KeyError")]
    assert rows[0].input_tokens > 0 and rows[0].cost_usd > 0


def test_an_upstream_overloaded_to_the_last_attempt_is_a_503_and_anthropics_529(ledger_path):
    # An overloaded upstream (OpenAI's 503, Anthropic's 529) was a 502 "bad gateway": Anthropic-SDK applications and
    # coding agents wait out an overloaded_error (529) as such, and every caller gets the upstream's Retry-After.
    import anthropic

    script = [(503, {"retry-after": "7"}), (529, {"retry-after": "7"}), (529, {}), (503, {})]
    upstream, spare, gateway = served(script, ledger_path)
    ask = [{"role": "user", "content": "hi"}]
    with gateway as url:
        chat = openai.OpenAI(base_url=url + "/v1", api_key="unused", max_retries=0)
        messages = anthropic.Anthropic(base_url=url, api_key="unused", max_retries=0)
        for _ in range(2):  # the upstream's 503, then its 529
            with pytest.raises(openai.InternalServerError) as failed:
                chat.chat.completions.create(model="once", messages=ask)
            assert failed.value.status_code == 503 and failed.value.response.headers["retry-after"] == "7"
        with pytest.raises(anthropic.OverloadedError) as overloaded:
            messages.messages.create(model="once", max_tokens=5, messages=ask)
        assert overloaded.value.body["error"]["type"] == "overloaded_error"
        with pytest.raises(anthropic.OverloadedError):
            with messages.messages.stream(model="once", max_tokens=5, messages=ask) as stream:
                list(stream)
    upstream.close(), spare.close()
    assert outcomes(ledger_path) == [("up", "server_error")] * 4


def test_an_upstreams_error_status_names_the_upstream_and_model_that_answered_it(ledger_path):
    # "upstream server_error: upstream answered 500: ..." named no upstream: behind a route whose fallback is another
    # OpenAI-compatible server the caller (and the operator reading the log) could not tell which one failed, where a
    # timeout or a dropped connection named its URL and model.
    import anthropic

    upstream, spare, gateway = served([(500, {})] + [(502, {})] * 4, ledger_path, fallback=[(503, {})] * 4)
    ask = [{"role": "user", "content": "hi"}]
    with gateway as url:
        chat = openai.OpenAI(base_url=url + "/v1", api_key="unused", max_retries=0)
        with pytest.raises(openai.InternalServerError) as failed:
            chat.chat.completions.create(model="once", messages=ask)
        assert f"{upstream.url}/chat/completions answered 500 (model 'up')" in failed.value.message
        messages = anthropic.Anthropic(base_url=url, api_key="unused", max_retries=0)
        with pytest.raises(anthropic.APIStatusError) as refused:  # the fallback's 503, the last attempt's
            with messages.messages.stream(model="chain", max_tokens=5, messages=ask) as stream:
                list(stream)
        assert f"{spare.url}/chat/completions answered 503 (model 'spare')" in refused.value.message
    upstream.close(), spare.close()


def test_an_error_names_the_model_it_answered_when_models_share_a_server(ledger_path):
    # Models on one server (a vLLM serving several, OpenRouter's one URL) share its connection pool, and every error
    # of the second, whole or streamed, named the first: "(model 'first')" for a call to 'second'.
    upstream = ScriptedOpenAI([(200, {}), (404, {}), (404, {})])
    models = {
        name: {"provider": "openai", "model": name, "base_url": upstream.url, "price_as": HAIKU}
        for name in ("first", "second")
    }
    with ServerThread(create_app(parse_config({"models": models}), str(ledger_path)), lifespan="on") as url:
        chat = openai.OpenAI(base_url=url + "/v1", api_key="unused", max_retries=0)
        assert chat.chat.completions.create(model="first", messages=[{"role": "user", "content": "hi"}]).choices
        for stream in (False, True):
            with pytest.raises(openai.NotFoundError) as failed:
                list(
                    chat.chat.completions.create(
                        model="second", messages=[{"role": "user", "content": "hi"}], stream=stream
                    )
                )
            assert f"{upstream.url}/chat/completions answered 404 (model 'second')" in failed.value.message, stream
    upstream.close()
    assert outcomes(ledger_path) == [("first", "ok"), ("second", "client_error"), ("second", "client_error")]


def test_a_stream_an_exception_breaks_after_its_answer_began_still_ends_in_its_apis_error(ledger_path, monkeypatch):
    # An exception the stream's own events do not end (here its settlement, which runs after the last event) used to
    # cut the body mid-chunk: the SDKs raised a connection error. Now the stream ends with its API's error event.
    import anthropic

    from tokenomy.gateway import call_stream

    async def broken_settlement(gw, budgets, pieces, *args) -> None:
        await pieces.aclose()  # the attempt is recorded, as the real wind-up does first
        raise RuntimeError("settlement failed")

    monkeypatch.setattr(call_stream, "wind_up_stream", broken_settlement)  # every API's streams
    upstream, spare, gateway = served([], ledger_path)
    ask = [{"role": "user", "content": "hi"}]
    with gateway as url:
        with pytest.raises(openai.APIError) as chat:
            stream_text(url)
        with pytest.raises(anthropic.APIStatusError) as messages:
            sdk = anthropic.Anthropic(base_url=url, api_key="unused", max_retries=0)
            list(sdk.messages.create(model="up", max_tokens=5, messages=ask, stream=True))
    upstream.close(), spare.close()
    said = "internal error (RuntimeError); see the gateway's log"
    assert type(chat.value) is openai.APIError and chat.value.message == said  # not APIConnectionError
    assert messages.value.body["error"] == {"type": "api_error", "message": said}
    assert outcomes(ledger_path) == [("up", "ok")] * 2


@pytest.mark.parametrize("ending", ["left", "overloaded"])
def test_a_claude_stream_cut_short_is_recorded_at_the_counts_its_message_start_gave(ending, ledger_path):
    # Anthropic's API counts the prompt (its cache reads and writes) in message_start. A stream the caller left (an
    # agent's user pressing Esc) or that ended in an error was recorded at the gateway's estimate of the prompt, all
    # of it plain input: a prompt read from the cache at a tenth of the input price was billed at ten times its cost.
    import asyncio

    import anthropic
    from starlette.responses import StreamingResponse

    usage = {
        "input_tokens": 12,
        "output_tokens": 1,
        "cache_read_input_tokens": 50_000,
        "cache_creation_input_tokens": 3_000,
        "cache_creation": {"ephemeral_5m_input_tokens": 1_000, "ephemeral_1h_input_tokens": 2_000},
    }

    async def messages(request):
        body = await request.json()

        async def generate():
            yield event(
                "message_start",
                {
                    "message": {
                        "id": "m",
                        "type": "message",
                        "role": "assistant",
                        "model": body["model"],
                        "content": [],
                        "stop_reason": None,
                        "stop_sequence": None,
                        "usage": usage,
                    }
                },
            )
            yield event("content_block_start", {"index": 0, "content_block": {"type": "text", "text": ""}})
            for i in range(3 if ending == "overloaded" else 100):
                yield event("content_block_delta", {"index": 0, "delta": {"type": "text_delta", "text": f"w{i} "}})
                await asyncio.sleep(0.05)
            yield event("error", {"error": {"type": "overloaded_error", "message": "Overloaded"}})

        return StreamingResponse(generate(), media_type="text/event-stream")

    with claude_gateway_over(ledger_path, messages) as client:
        ask = {"model": "claude", "max_tokens": 500, "messages": [{"role": "user", "content": "hi"}]}
        with pytest.raises(anthropic.APIStatusError) if ending == "overloaded" else nullcontext():
            with client.messages.stream(**ask) as stream:
                deltas = 0
                for item in stream:
                    deltas += item.type == "content_block_delta"
                    if deltas == 3 and ending == "left":
                        break  # the client leaves
    [row] = open_store(str(ledger_path)).events()
    assert row.outcome == ("cancelled" if ending == "left" else "server_error")
    counts = (row.input_tokens, row.cache_read_tokens, row.cache_write_tokens, row.tags.get("cache_write_1h_tokens"))
    assert counts == (12, 50_000, 3_000, "2000") and row.output_tokens >= 3
    entry = default_catalog().lookup("claude-sonnet-4-5-20250929")
    assert (
        row.cost_usd
        == (
            12 * entry.input
            + 50_000 * entry.cache_read
            + 1_000 * entry.cache_write
            + 2_000 * entry.cache_write_1h
            + row.output_tokens * entry.output
        )
        / 10**6
    )


def test_a_gemini_stream_with_audio_that_fails_midway_prices_the_audio_estimate_at_the_audio_rate(
    ledger_path, monkeypatch
):
    """A stream cut after its first chunk is recorded at the prompt's estimate: its audio part (101 tokens by the
    estimate, 500 bytes a token) at Gemini 2.5 Flash's audio rate, $1.00 per 1M, not as text at $0.30."""
    import asyncio
    import base64
    from decimal import Decimal

    from fastapi import FastAPI
    from fastapi.responses import StreamingResponse

    for key in ("GEMINI_API_KEY", "GOOGLE_API_KEY"):
        monkeypatch.delenv(key, raising=False)
    gemini = FastAPI()

    @gemini.post("/{version}/models/{model}:streamGenerateContent")
    async def cut(version: str, model: str):
        async def chunks():
            first = {"candidates": [{"content": {"role": "model", "parts": [{"text": "par"}]}, "index": 0}]}
            yield f"data: {json.dumps(first)}\r\n\r\n"
            await asyncio.sleep(0.05)
            raise RuntimeError("the upstream died midway")

        return StreamingResponse(chunks(), media_type="text/event-stream")

    audio = {"type": "input_audio", "input_audio": {"data": base64.b64encode(bytes(50_000)).decode(), "format": "wav"}}
    with ServerThread(gemini) as upstream:
        config = {"models": {"g": {"provider": "gemini", "model": "gemini-2.5-flash", "base_url": upstream}}}
        with ServerThread(create_app(parse_config(config), str(ledger_path)), lifespan="on") as url:
            client = openai.OpenAI(base_url=url + "/v1", api_key="unused", max_retries=0)
            with pytest.raises(openai.APIError):
                list(
                    client.chat.completions.create(
                        model="g",
                        stream=True,
                        max_tokens=10,
                        messages=[{"role": "user", "content": [audio, {"type": "text", "text": "Transcribe"}]}],
                    )
                )
    [row] = open_store(str(ledger_path)).events()
    assert row.outcome == "server_error" and row.audio_input_tokens == 101 and row.output_tokens == 1
    text = row.input_tokens - 101
    assert row.input_cost_usd == (101 * Decimal("1.00") + text * Decimal("0.30")) / 1_000_000


@pytest.mark.parametrize("stream", [False, True])
def test_an_answer_whose_usage_leaves_its_prompt_out_is_recorded_at_its_estimated_prompt_not_free(stream, ledger_path):
    upstream, spare, gateway = served([], ledger_path)
    upstream.usage = {"completion_tokens": 10}  # the prompt was billed all the same
    with gateway as url:
        client = openai.OpenAI(base_url=url + "/v1", api_key="unused", max_retries=0)
        prompt = [{"role": "user", "content": "x" * 400}]  # ~100 tokens
        reply = client.chat.completions.create(model="once", messages=prompt, stream=stream)
        list(reply) if stream else None
    upstream.close(), spare.close()
    [row] = open_store(str(ledger_path)).events()
    assert (row.outcome, row.input_tokens, row.output_tokens) == ("ok", 100, 10)


@pytest.mark.parametrize(
    ("usage", "delta_usage", "counts"),
    [
        ({}, {}, (100, 1)),  # counts nothing: all estimated ("Hi" is a token)
        ({"input_tokens": None, "output_tokens": None}, {}, (100, 1)),
        ({"output_tokens": 5}, {"output_tokens": 5}, (100, 5)),  # the prompt left out: estimated
        ({"input_tokens": 40}, {}, (40, 1)),  # the answer left out: estimated
    ],
)
@pytest.mark.parametrize("stream", [False, True])
def test_a_claude_answer_whose_usage_counts_nothing_is_recorded_at_estimated_tokens_not_free(
    stream, usage, delta_usage, counts, ledger_path
):
    # An Anthropic-format server that sent `usage: {}` (or nulls, or one count only) had its answer recorded at 0
    # tokens for what it did not count, at $0 when it counted nothing: the call was charged to no budget.
    import anthropic

    from helpers.scripted_anthropic import ScriptedAnthropic

    scripted = ScriptedAnthropic()
    scripted.usage, scripted.delta_usage = usage, delta_usage
    with ServerThread(scripted.app) as upstream:
        models = {"claude": {"provider": "anthropic", "model": "claude-sonnet-4-5-20250929", "base_url": upstream}}
        with ServerThread(create_app(parse_config({"models": models}), str(ledger_path)), lifespan="on") as url:
            client = anthropic.Anthropic(base_url=url, api_key="unused", max_retries=0)
            asked = {"model": "claude", "max_tokens": 50, "messages": [{"role": "user", "content": "x" * 400}]}
            if stream:
                list(client.messages.create(**asked, stream=True))
            else:
                client.messages.create(**asked)
    [row] = open_store(str(ledger_path)).events()
    assert (row.outcome, row.input_tokens, row.output_tokens) == ("ok", *counts) and row.cost_usd > 0
