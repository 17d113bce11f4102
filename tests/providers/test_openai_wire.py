"""Both OpenAI paths (the SDK provider and the gateway's pooled upstream) speak one wire format."""

from __future__ import annotations

import asyncio
import json
from dataclasses import replace

import pytest

from helpers.recording_openai import RecordingOpenAI, arguments_for
from tokenomy.gateway.upstream import AsyncOpenAIUpstream
from tokenomy.messages import (
    ChatRequest,
    DocumentBlock,
    ImageBlock,
    Message,
    ReasoningBlock,
    TextBlock,
    ToolResultBlock,
    ToolUseBlock,
)
from tokenomy.providers import openai_dialects, openai_stream, openai_wire, openai_wire_read
from tokenomy.providers.openai_provider import OpenAIProvider
from tokenomy.providers.registry import ModelSpec
from tokenomy.request_options import ResponseFormat, ToolChoice, ToolSpec

TOOLS = [
    ToolSpec("get_weather", "Weather", {"type": "object", "properties": {"city": {"type": "string"}}}),
    ToolSpec("get_time", None, {"type": "object", "properties": {}}, strict=True),
]


def conversation() -> ChatRequest:
    return ChatRequest(
        model="up",
        system="Be brief.",
        max_tokens=30,
        top_p=0.5,
        seed=3,
        stop=["END"],
        tools=TOOLS,
        tool_choice=ToolChoice("any"),
        parallel_tool_calls=True,
        extra={"logprobs": True, "user": "u"},
        response_format=ResponseFormat("json_schema", {"type": "object"}, "out", True),
        messages=[
            Message(
                "user",
                [
                    TextBlock("Look"),
                    ImageBlock("image/png", b"\x89PNG\x00\xff"),
                    DocumentBlock("pdf", b"%PDF", "a.pdf"),
                ],
                name="ann",
            ),
            Message(
                "assistant",
                [ReasoningBlock("thinking"), ToolUseBlock("c1", "get_weather", {"city": "Oslo"}, '{"city":  "Oslo"}')],
            ),
            Message("user", [ToolResultBlock("c1", [TextBlock("-3C")]), TextBlock("And now?")]),
        ],
    )


def test_the_sdk_provider_and_the_async_upstream_send_the_same_body_and_read_the_same_answer():
    with RecordingOpenAI() as upstream:
        spec = ModelSpec(name="up", provider="openai", model="up", base_url=upstream.url)
        sdk = OpenAIProvider(base_url=upstream.url)
        fast = AsyncOpenAIUpstream(spec)
        by_sdk = sdk.chat(conversation())
        sdk_body = upstream.last

        async def run():
            try:
                answer = await fast.achat(conversation())
                chunks = [c async for c in fast.astream(conversation())]
                return answer, chunks
            finally:
                await fast.aclose()

        by_fast, chunks = asyncio.run(run())
        assert upstream.bodies[-2] == sdk_body  # identical bodies, byte for byte once parsed
        streamed_sdk = list(sdk.stream(conversation()))
        sdk.close()
    assert sdk_body["messages"] == [
        {"role": "system", "content": "Be brief."},
        {
            "role": "user",
            "name": "ann",
            "content": [
                {"type": "text", "text": "Look"},
                {"type": "image_url", "image_url": {"url": "data:image/png;base64,iVBORwD/"}},
                {"type": "file", "file": {"filename": "a.pdf", "file_data": "data:application/pdf;base64,JVBERg=="}},
            ],
        },
        {
            "role": "assistant",
            "content": None,
            "tool_calls": [
                {"id": "c1", "type": "function", "function": {"name": "get_weather", "arguments": '{"city":  "Oslo"}'}}
            ],
        },
        {"role": "tool", "tool_call_id": "c1", "content": "-3C"},
        {"role": "user", "content": "And now?"},
    ]
    assert sdk_body["tool_choice"] == "required" and sdk_body["tools"][1]["function"]["strict"] is True
    assert sdk_body["response_format"] == {
        "type": "json_schema",
        "json_schema": {"name": "out", "schema": {"type": "object"}, "strict": True},
    }
    assert (sdk_body["logprobs"], sdk_body["user"], sdk_body["seed"], sdk_body["top_p"]) == (True, "u", 3, 0.5)
    for answer in (by_sdk, by_fast, chunks[-1].response, streamed_sdk[-1].response):
        assert [(c.id, c.name, c.arguments, c.input["city"]) for c in answer.tool_calls] == [
            ("call_0", "get_weather", arguments_for("get_weather"), "Paris"),
            ("call_1", "get_time", arguments_for("get_time"), "Paris"),
        ]
        assert answer.finish_reason == "tool_calls"
        assert (answer.usage.input_tokens, answer.usage.cache_read_tokens, answer.usage.reasoning_tokens) == (32, 8, 3)
    assert by_sdk.raw["choice"]["logprobs"]["content"][0]["token"] == "ok" and by_sdk.raw["top"] == {
        "system_fingerprint": "fp_test"
    }
    deltas = [c.tool_call for c in chunks if c.tool_call is not None]
    named = [(d.index, d.id, d.name) for d in deltas if d.id]
    assert named == [(0, "call_0", "get_weather"), (1, "call_1", "get_time")]
    assert "".join(d.arguments for d in deltas if d.index == 1) == arguments_for("get_time")


def test_reasoning_refusal_and_logprobs_of_openai_compatible_servers_are_kept():
    from tokenomy.gateway.responses import chunk_delta, completion_body
    from tokenomy.providers import openai_wire_read

    request = ChatRequest.simple("hi", model="r1")
    data = {
        "id": "x",
        "model": "r1",
        "choices": [
            {
                "index": 0,
                "finish_reason": "stop",
                "logprobs": {"content": []},
                "message": {"role": "assistant", "content": "4", "reasoning_content": "2+2", "refusal": None},
            }
        ],
        "usage": {"prompt_tokens": 5, "completion_tokens": 7, "completion_tokens_details": {"reasoning_tokens": 4}},
    }
    answer = openai_wire_read.parse_completion(data, request, "openai", 1.0)
    assert answer.text == "4" and answer.content[0] == ReasoningBlock("2+2") and answer.usage.reasoning_tokens == 4
    body = completion_body(answer, "r1", "id")["choices"][0]
    assert body["message"]["reasoning_content"] == "2+2" and body["logprobs"] == {"content": []}

    assembler = openai_stream.StreamAssembler(request)
    chunks = [
        {"choices": [{"index": 0, "delta": {"reasoning_content": "think"}}]},
        {"choices": [{"index": 0, "delta": {"refusal": "no"}, "logprobs": {"refusal": []}}]},
        {"choices": [{"index": 0, "delta": {"content": "ok"}, "finish_reason": "stop"}]},
    ]
    pieces = [p for c in chunks for p in assembler.feed(c)]
    assert [chunk_delta(p) for p in pieces] == [
        ({"reasoning_content": "think"}, {}),
        ({"refusal": "no"}, {"logprobs": {"refusal": []}}),
        ({"content": "ok"}, {}),
    ]
    final = assembler.response("openai", 1.0, None)
    assert final.text == "ok" and final.content[0] == ReasoningBlock("think")
    assert final.raw["usage_source"] == "estimated"


def two_tool_call(upstream: RecordingOpenAI) -> tuple[dict[str, ModelSpec], ChatRequest]:
    """A model served by `upstream` and a request offering it two tools (it calls both)."""
    spec = {"up": ModelSpec(name="up", provider="openai", model="up", base_url=upstream.url, price_as="gpt-4o")}
    request = ChatRequest(
        [Message("user", "weather and time?")],
        model="up",
        max_tokens=50,
        tools=[ToolSpec("get_weather"), ToolSpec("get_time")],
    )
    return spec, request


def test_parallel_tool_calls_streamed_at_one_index_stay_apart(ledger_path):
    """Ollama streams every parallel tool call at index 0, each with its own id: two calls, not one call whose
    arguments are both joined (invalid JSON, the second call lost)."""
    from tokenomy.client import Tokenomy

    with RecordingOpenAI() as upstream:
        upstream.same_index = True
        spec, request = two_tool_call(upstream)
        with Tokenomy(ledger_path, models=spec) as client:
            chunks = list(client.stream(request))
    answer = chunks[-1].response
    assert [(c.id, c.name, c.arguments) for c in answer.tool_calls] == [
        ("call_0", "get_weather", arguments_for("get_weather")),
        ("call_1", "get_time", arguments_for("get_time")),
    ]
    deltas = [c.tool_call for c in chunks if c.tool_call is not None]
    assert [(d.index, d.id) for d in deltas if d.id] == [(0, "call_0"), (1, "call_1")]
    assert "".join(d.arguments for d in deltas if d.index == 1) == arguments_for("get_time")


def test_a_whole_answer_without_usage_is_estimated_not_recorded_free(ledger_path):
    """A server that sends no `usage` with a whole answer: the call was recorded at zero tokens and $0 (a stream
    without usage was already estimated, and said so)."""
    from tokenomy.client import Tokenomy
    from tokenomy.ledger.store import open_store

    with RecordingOpenAI() as upstream:
        upstream.no_usage = True
        spec = {"up": ModelSpec(name="up", provider="openai", model="up", base_url=upstream.url, price_as="gpt-4o")}
        prompt = "Summarise the refund policy for a customer whose parcel arrived damaged, in two sentences."
        with Tokenomy(ledger_path, models=spec) as client:
            answer = client.chat(ChatRequest.simple(prompt, model="up"))
            called = client.chat(two_tool_call(upstream)[1])
    assert answer.raw["usage_source"] == "estimated" and answer.text
    assert answer.usage.input_tokens == -(-len(prompt) // 4) and answer.usage.output_tokens == -(-len(answer.text) // 4)
    assert called.tool_calls and called.usage.output_tokens > 0  # the calls' names and arguments are output
    rows = open_store(ledger_path).events()
    assert all(r.input_tokens > 0 and r.output_tokens > 0 and r.cost_usd > 0 for r in rows) and len(rows) == 2


def test_a_reasoning_stream_without_usage_is_estimated_with_its_reasoning_as_output():
    """A reasoning server (vLLM's `reasoning_content`, Ollama's `reasoning`) that sends no usage: each reasoning delta
    is an output token of the estimate, as the model bills them (only the answer's deltas were counted)."""
    request = ChatRequest([Message("user", "2+2?")], model="r1")
    assembler = openai_stream.StreamAssembler(request)
    chunks = [
        {"choices": [{"index": 0, "delta": {"role": "assistant", "reasoning_content": "two "}}]},
        *[{"choices": [{"index": 0, "delta": {"reasoning": "plus two "}}]} for _ in range(5)],
        {"choices": [{"index": 0, "delta": {"content": "4"}}]},
        {"choices": [{"index": 0, "delta": {}, "finish_reason": "stop"}]},
    ]
    for chunk in chunks:
        list(assembler.feed(chunk))
    final = assembler.response("openai", 1.0, None)
    assert final.raw["usage_source"] == "estimated" and final.text == "4"
    assert (final.usage.output_tokens, final.usage.reasoning_tokens) == (1 + 13, 13)  # 49 characters of reasoning


def test_tool_calls_sent_without_ids_get_one_each(ledger_path):
    """Servers that send tool calls without an `id` (llama.cpp server, LM Studio): each call gets an id of its own,
    in the stream's first piece of the call and in the answer, and the results go back under them (both calls had
    the empty id, so their results could not be told apart, and Anthropic and Bedrock refuse an empty id)."""
    from tokenomy.client import Tokenomy

    with RecordingOpenAI() as upstream:
        upstream.no_ids = True
        spec, request = two_tool_call(upstream)
        with Tokenomy(ledger_path, models=spec) as client:
            answer = client.chat(request)
            chunks = list(client.stream(request))
            ids = [c.id for c in answer.tool_calls]
            results = Message("user", [ToolResultBlock(i, [TextBlock(f"result {i}")]) for i in ids])
            client.chat(
                ChatRequest(
                    [*request.messages, Message("assistant", answer.tool_calls), results],
                    model="up",
                    max_tokens=50,
                    tools=request.tools,
                )
            )
    streamed = chunks[-1].response.tool_calls
    assert all(ids) and len(set(ids)) == 2 and [c.name for c in answer.tool_calls] == ["get_weather", "get_time"]
    assert all(c.id for c in streamed) and len({c.id for c in streamed}) == 2
    firsts = [c.tool_call for c in chunks if c.tool_call is not None and c.tool_call.name]
    assert [(d.index, d.id) for d in firsts] == [(0, streamed[0].id), (1, streamed[1].id)]
    sent = upstream.last["messages"]
    assert [m["id"] for m in sent[1]["tool_calls"]] == ids
    assert [(m["tool_call_id"], m["content"]) for m in sent[2:]] == [(i, f"result {i}") for i in ids]


def test_finish_reasons_outside_openais_vocabulary_are_mapped(ledger_path):
    """A server that finishes a tool-calling answer with `stop` (Ollama, some vLLM tool parsers) or any answer with
    TGI's `eos_token`: the answer finishes with tool_calls / stop, so an Anthropic-format client sees stop_reason
    tool_use and runs the tools (it got end_turn with tool_use blocks, and `eos_token` went to OpenAI clients)."""
    from tokenomy.client import Tokenomy
    from tokenomy.providers.anthropic_answers import stop_reason

    with RecordingOpenAI() as upstream:
        spec = {"up": ModelSpec(name="up", provider="openai", model="up", base_url=upstream.url, price_as="gpt-4o")}
        tools = [ToolSpec("get_weather"), ToolSpec("get_time")]
        with Tokenomy(ledger_path, models=spec) as client:
            upstream.finish_reason = "stop"
            calls = [
                client.chat(ChatRequest.simple("weather?", model="up", max_tokens=50, tools=tools)),
                list(client.stream(ChatRequest.simple("weather?", model="up", max_tokens=50, tools=tools)))[
                    -1
                ].response,
            ]
            upstream.finish_reason = "eos_token"
            plain = [
                client.chat(ChatRequest.simple("hi", model="up", max_tokens=50)),
                list(client.stream(ChatRequest.simple("hi", model="up", max_tokens=50)))[-1].response,
            ]
    assert [(a.finish_reason, stop_reason(a), len(a.tool_calls)) for a in calls] == [("tool_calls", "tool_use", 2)] * 2
    assert [(a.finish_reason, stop_reason(a)) for a in plain] == [("stop", "end_turn")] * 2


def test_a_bare_404_from_a_base_url_without_v1_names_the_fix(ledger_path):
    """Ollama answers `404 page not found` (text) for a base_url without /v1: the error names the URL it posted to
    and the fix (it was `Error code: 404`, nothing more). A 404 under /v1 (an unknown model) is left as the server
    said it."""
    import threading
    from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

    from tokenomy.client import Tokenomy
    from tokenomy.errors import ProviderError

    class Ollama(BaseHTTPRequestHandler):
        def log_message(self, *args):
            pass

        def do_POST(self):
            self.rfile.read(int(self.headers.get("content-length") or 0))
            known = self.path == "/v1/chat/completions"
            body = (
                b'{"error":{"message":"model \\"llama9\\" not found, try pulling it first"}}'
                if known
                else (b"404 page not found")
            )
            self.send_response(404)
            self.send_header("content-type", "application/json" if known else "text/plain")
            self.send_header("content-length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

    server = ThreadingHTTPServer(("127.0.0.1", 0), Ollama)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    root = f"http://127.0.0.1:{server.server_address[1]}"
    specs = {
        name: ModelSpec(name=name, provider="openai", model="llama9", base_url=url, price_as="gpt-4o-mini")
        for name, url in (("bare", root), ("v1", f"{root}/v1"))
    }
    errors = []
    try:
        with Tokenomy(ledger_path, models=specs) as client:
            for name in specs:
                with pytest.raises(ProviderError) as info:
                    client.chat(ChatRequest.simple("hi", model=name, max_tokens=5))
                errors.append(info.value)
    finally:
        server.shutdown()
    assert [(e.kind, e.status) for e in errors] == [("client_error", 404)] * 2
    assert f"POST {root}/chat/completions" in str(errors[0]) and f"{root}/v1" in str(errors[0])
    assert "try pulling it first" in str(errors[1]) and "/v1;" not in str(errors[1])


def test_deepseeks_cache_hits_are_cached_tokens():
    """DeepSeek's OpenAI-compatible API counts cache hits as `prompt_cache_hit_tokens` inside prompt_tokens: they are
    cache reads, priced at the cached rate (they were billed as fresh input, about 4x DeepSeek's cache-hit price)."""
    usage = openai_wire_read.usage_from_dict(
        {
            "prompt_tokens": 1000,
            "completion_tokens": 20,
            "total_tokens": 1020,
            "prompt_cache_hit_tokens": 768,
            "prompt_cache_miss_tokens": 232,
        }
    )
    assert (usage.input_tokens, usage.cache_read_tokens, usage.output_tokens) == (232, 768, 20)
    both = openai_wire_read.usage_from_dict(
        {
            "prompt_tokens": 1000,
            "completion_tokens": 20,
            "prompt_cache_hit_tokens": 768,
            "prompt_tokens_details": {"cached_tokens": 768},
        }
    )
    assert (both.input_tokens, both.cache_read_tokens) == (232, 768)


def test_an_unset_api_key_env_never_sends_the_openai_key_to_the_server(monkeypatch):
    """A self-hosted server's model names its key variable (`api_key_env: VLLM_KEY`); while that is unset, neither
    path sends OPENAI_API_KEY in its place (both did: the OpenAI key went to the vLLM/Ollama host)."""
    monkeypatch.setenv("OPENAI_API_KEY", "sk-openai-secret")
    monkeypatch.delenv("VLLM_KEY", raising=False)
    request = ChatRequest([Message("user", "hi")], model="up", max_tokens=5)
    with RecordingOpenAI() as upstream:
        spec = ModelSpec(name="up", provider="openai", model="up", base_url=upstream.url, api_key_env="VLLM_KEY")

        async def gateway_path() -> None:
            async_upstream = AsyncOpenAIUpstream(spec)
            await async_upstream.achat(request)
            await async_upstream.aclose()

        def both() -> None:
            provider = OpenAIProvider(base_url=upstream.url, api_key_env="VLLM_KEY")
            provider.chat(request)
            provider.close()
            asyncio.run(gateway_path())

        both()
        monkeypatch.setenv("VLLM_KEY", "vllm-key")
        both()
        monkeypatch.delenv("VLLM_KEY")
        plain = OpenAIProvider(base_url=upstream.url)  # no variable named: OPENAI_API_KEY, as the SDK reads it
        plain.chat(request)
        plain.close()
    assert upstream.keys == ["Bearer not-needed"] * 2 + ["Bearer vllm-key"] * 2 + ["Bearer sk-openai-secret"]


def test_signed_reasoning_of_an_openai_format_upstream_is_read_streamed_or_not():
    """A LiteLLM proxy in front of Claude sends `thinking_blocks` (a stream: in pieces, the signature last), and
    Google's OpenAI-compatible API a function call's thought signature in its `extra_content`: both are blocks."""
    from tokenomy.messages import ChatRequest, Message, ReasoningBlock, ToolUseBlock
    from tokenomy.providers.openai_stream import StreamAssembler
    from tokenomy.providers.openai_wire_read import parse_completion

    request = ChatRequest(messages=[Message("user", "Weather in Paris?")], model="m")
    call = {
        "id": "call_1",
        "type": "function",
        "function": {"name": "get_weather", "arguments": "{}"},
        "extra_content": {"google": {"thought_signature": "c2ln"}},
    }
    message = {
        "role": "assistant",
        "content": None,
        "reasoning_content": "look",
        "thinking_blocks": [{"type": "thinking", "thinking": "look", "signature": "s1"}],
        "tool_calls": [call],
    }
    whole = parse_completion({"choices": [{"message": message, "finish_reason": "tool_calls"}]}, request, "openai", 1)
    assert whole.content == [
        ReasoningBlock("look", "s1"),
        ReasoningBlock("", "c2ln"),
        ToolUseBlock("call_1", "get_weather", {}, "{}"),
    ]
    assert "message" not in whole.raw  # not passed on a second time as an unknown field

    assembler = StreamAssembler(request)
    deltas = [
        {"reasoning_content": "lo", "thinking_blocks": [{"type": "thinking", "thinking": "lo", "signature": None}]},
        {"reasoning_content": "ok", "thinking_blocks": [{"type": "thinking", "thinking": "ok"}]},
        {"thinking_blocks": [{"type": "thinking", "thinking": "", "signature": "s1"}]},
        {"tool_calls": [{"index": 0, **call, "function": {"name": "get_weather", "arguments": ""}}]},
        {"tool_calls": [{"index": 0, "function": {"arguments": "{}"}}]},
    ]
    pieces = [piece for delta in deltas for piece in assembler.feed({"choices": [{"index": 0, "delta": delta}]})]
    assert [p.signature for p in pieces if p.tool_call is not None] == ["c2ln", None]  # said once, with its call
    assert assembler.response("openai", 1, None).content == whole.content


@pytest.mark.parametrize(
    ("answer", "said"),
    [
        ({"choices": [{"message": "ok"}]}, "unreadable completion"),
        ({"choices": [{"message": {"content": "ok", "tool_calls": "f"}}]}, "unreadable completion"),
        ({"choices": [{"message": {"content": "ok"}}], "usage": "12 tokens"}, "unreadable completion"),
        ({"choices": [{"message": {"content": "ok"}}], "usage": {"prompt_tokens": "twelve"}}, "prompt_tokens 'twelve'"),
    ],
)
def test_an_answer_of_an_unexpected_shape_is_the_upstreams_fault_not_a_bug(answer, said):
    # These raised AttributeError or ValueError out of the provider: a 500 "internal error" at the gateway,
    # which tells an operator to look for a bug in Tokenomy, rather than a 502 naming the upstream.
    from tokenomy.errors import ProviderError

    with pytest.raises(ProviderError) as failed:
        openai_wire_read.parse_completion(answer, ChatRequest.simple("hi", model="m"), "openai", 1.0)
    assert failed.value.kind == "server_error" and said in str(failed.value)


@pytest.mark.parametrize(
    ("chunks", "said"),
    [
        ([{"choices": [{"delta": {"content": 5}}]}], "unreadable stream"),
        (
            [
                {
                    "choices": [
                        {"delta": {"tool_calls": [{"index": 0, "id": "c", "function": {"name": "f", "arguments": 5}}]}}
                    ]
                }
            ],
            "unreadable stream",
        ),
        (
            [
                {"choices": [{"delta": {"content": "ok"}, "finish_reason": "stop"}]},
                {"usage": {"prompt_tokens": "twelve"}},
            ],
            "prompt_tokens 'twelve'",
        ),
        ([[]], "unreadable stream"),
    ],
)
def test_a_stream_of_an_unexpected_shape_is_the_upstreams_fault_not_a_bug(chunks, said):
    # A stream's chunks as a whole answer's fields: the wrong type is the upstream's fault, and the provider had
    # answered (reached: the attempt is recorded at its estimate). Content that is no text was passed on to the
    # caller's stream, where the gateway's writer broke on it.
    from tokenomy.errors import ProviderError

    assembler = openai_stream.StreamAssembler(ChatRequest.simple("hi", model="m"))
    with pytest.raises(ProviderError) as failed:
        for chunk in chunks:
            list(assembler.feed(chunk))
        assembler.response("openai", 1.0, None)
    assert failed.value.kind == "server_error" and failed.value.reached and said in str(failed.value)


def test_streams_to_mistrals_api_do_not_ask_for_usage_it_refuses():
    """Mistral's API refuses `stream_options` (a 422, extra_forbidden) and sends a stream's usage unasked in its last
    chunk: every streamed call to it failed, as Tokenomy asked for the usage whatever the caller sent. It is not asked
    for there (the SDK provider and the gateway's pooled upstream alike); it still is everywhere else."""
    import json

    import httpx
    import openai

    sent: list[dict] = []

    def mistral(request: httpx.Request) -> httpx.Response:
        body = json.loads(request.content)
        sent.append(body)
        if "stream_options" in body:
            detail = [
                {
                    "type": "extra_forbidden",
                    "loc": ["body", "stream_options"],
                    "msg": "Extra inputs are not permitted",
                    "input": body["stream_options"],
                }
            ]
            return httpx.Response(
                422,
                json={
                    "object": "error",
                    "message": {"detail": detail},
                    "type": "invalid_request_error",
                    "param": None,
                    "code": None,
                },
            )
        usage = {"prompt_tokens": 12, "completion_tokens": 3, "total_tokens": 15}
        chunks = [
            {
                "id": "m",
                "object": "chat.completion.chunk",
                "created": 1,
                "model": body["model"],
                "choices": [{"index": 0, "delta": {"role": "assistant", "content": "Bonjour"}, "finish_reason": None}],
            },
            {
                "id": "m",
                "object": "chat.completion.chunk",
                "created": 1,
                "model": body["model"],
                "choices": [{"index": 0, "delta": {"content": ""}, "finish_reason": "stop"}],
                "usage": usage,
            },
        ]
        sse = "".join(f"data: {json.dumps(c)}\n\n" for c in chunks) + "data: [DONE]\n\n"
        return httpx.Response(200, text=sse, headers={"content-type": "text/event-stream"})

    url = "https://api.mistral.ai/v1"
    provider = OpenAIProvider(base_url=url, api_key="k")
    transport = httpx.Client(transport=httpx.MockTransport(mistral))
    provider.client = openai.OpenAI(base_url=url, api_key="k", http_client=transport)
    request = ChatRequest([Message("user", "hi")], model="mistral-small-latest", max_tokens=5)
    final = list(provider.stream(request))[-1].response
    assert final.text == "Bonjour" and (final.usage.input_tokens, final.usage.output_tokens) == (12, 3)
    assert final.raw["usage_source"] == "reported" and "stream_options" not in sent[-1]
    spec = ModelSpec(name="m", provider="openai", model="mistral-small-latest", base_url=url)
    assert "stream_options" not in openai_wire.request_body(request, True, AsyncOpenAIUpstream(spec).ask_usage)
    elsewhere = ModelSpec(name="v", provider="openai", model="mistral-small-latest", base_url="http://10.0.0.5:8000/v1")
    asked = openai_wire.request_body(request, True, AsyncOpenAIUpstream(elsewhere).ask_usage)
    assert asked["stream_options"] == {"include_usage": True}  # vLLM serving a Mistral model sends usage only so


def test_a_tool_results_media_follow_its_tool_message_in_the_user_message():
    # Chat Completions' tool messages take text only: the images and documents a tool returned open the user
    # message after the run of tool messages, each result's labelled with its call, before the turn's own blocks.
    png, pdf = ImageBlock("image/png", b"\x89PNG\x00\xff"), DocumentBlock("pdf", b"%PDF", "a.pdf")
    turn = Message(
        "user",
        [
            ToolResultBlock("c1", [png], is_error=True),
            ToolResultBlock("c2", [TextBlock("ok")]),
            ToolResultBlock("c3", [TextBlock("page"), pdf]),
            TextBlock("Now?"),
        ],
        name="ann",
    )
    failed, plain, paged, user = openai_wire.to_openai_messages(ChatRequest([turn], model="up"))
    assert failed == {"role": "tool", "tool_call_id": "c1", "content": "Error"}  # a failed call says so, as before
    assert plain == {"role": "tool", "tool_call_id": "c2", "content": "ok"}
    assert paged == {"role": "tool", "tool_call_id": "c3", "content": "page"}
    assert user == {
        "role": "user",
        "name": "ann",
        "content": [
            {"type": "text", "text": "Tool call c1 returned:"},
            {"type": "image_url", "image_url": {"url": "data:image/png;base64,iVBORwD/"}},
            {"type": "text", "text": "Tool call c3 returned:"},
            {"type": "file", "file": {"filename": "a.pdf", "file_data": "data:application/pdf;base64,JVBERg=="}},
            {"type": "text", "text": "Now?"},
        ],
    }
    assert openai_wire.refusal(ChatRequest([turn], model="up")) is None


def test_a_tool_results_media_label_names_the_call_by_the_id_a_mistral_model_is_sent():
    # Mistral takes only 9-character call ids, so the call and its tool message carry a derived id: the label of the
    # result's image must name that id too, or the model cannot tell which call returned it.
    call = Message("assistant", [ToolUseBlock("toolu_01A", "shot", {})])
    turn = Message(
        "user",
        [
            ToolResultBlock("toolu_01A", [ImageBlock("image/png", b"\x89PNG")]),
            TextBlock("Tool call toolu_01A returned:"),
        ],
    )  # the caller's own words stay as sent
    body = openai_wire.request_body(ChatRequest([Message("user", "Look"), call, turn], model="mistral-large-latest"))
    sent = openai_dialects.mistral_call_id("toolu_01A")
    assistant, tool, user = body["messages"][1:]
    assert assistant["tool_calls"][0]["id"] == tool["tool_call_id"] == sent != "toolu_01A"
    assert user["content"][0] == {"type": "text", "text": f"Tool call {sent} returned:"}
    assert user["content"][-1] == {"type": "text", "text": "Tool call toolu_01A returned:"}


def test_tool_results_and_named_turns_go_out_in_their_forms():
    results = Message(
        "user",
        [
            ToolResultBlock("c1", [TextBlock("18C")]),
            ToolResultBlock("c2", [TextBlock("no such city")], is_error=True),
            ToolResultBlock("c3", [TextBlock("a"), TextBlock("b")]),
            ToolResultBlock("c4", []),
            TextBlock("and now?"),
        ],
        name="ana",
    )
    call = Message("assistant", [ToolUseBlock("c1", "get_weather", {"city": "Paris"})], name="bot")
    sent = openai_wire.request_body(ChatRequest(messages=[Message("user", "hi", name="ana"), call, results]))
    assert sent["messages"] == [
        {"role": "user", "name": "ana", "content": "hi"},
        {
            "role": "assistant",
            "name": "bot",
            "content": None,
            "tool_calls": [
                {"id": "c1", "type": "function", "function": {"name": "get_weather", "arguments": '{"city": "Paris"}'}}
            ],
        },
        {"role": "tool", "tool_call_id": "c1", "content": "18C"},
        {"role": "tool", "tool_call_id": "c2", "content": "Error: no such city"},
        {
            "role": "tool",
            "tool_call_id": "c3",
            "content": [{"type": "text", "text": "a"}, {"type": "text", "text": "b"}],
        },
        {"role": "tool", "tool_call_id": "c4", "content": ""},
        {"role": "user", "name": "ana", "content": "and now?"},
    ]


def test_an_unreadable_answer_is_quoted_with_its_letters_as_they_are():
    # The upstream's answer was quoted through json.dumps, which writes "très" as "tr\u00e8s": the error named text
    # the upstream never sent. errors.as_written quotes it as sent.
    from tokenomy.errors import ProviderError

    request = ChatRequest.simple("hi", model="m")
    with pytest.raises(ProviderError, match=r"unreadable completion: .*très"):
        openai_wire_read.parse_completion({"choices": [{"message": "très bien"}]}, request, "openai", 1.0)
    with pytest.raises(ProviderError, match=r"unreadable stream chunk: .*très"):
        list(openai_stream.StreamAssembler(request).feed({"choices": [{"delta": {"content": 5, "role": "très"}}]}))


def test_an_error_bodys_innererror_is_kept_for_the_caller():
    """The pooled upstream's errors (an Azure-compatible proxy's content filter 400) keep `innererror` as the SDK
    provider's do; a body that is no JSON, or has none, gives None."""
    inner = {"code": "ResponsibleAIPolicyViolation", "content_filter_result": {"jailbreak": {"filtered": True}}}
    text = json.dumps({"error": {"message": "filtered", "code": "content_filter", "innererror": inner}})
    error = openai_wire_read.status_error(400, text, None)
    assert (error.code, error.innererror) == ("content_filter", inner)
    assert openai_wire_read.status_error(400, "<html>", None).innererror is None
    inner_text = '{"error": {"code": "x", "innererror": "text"}}'
    assert openai_wire_read.status_error(400, inner_text, None).innererror is None


def test_an_answer_without_usage_estimates_the_tools_and_images_it_was_sent():
    """A server that sends no usage (a stream from one that ignores stream_options, a whole answer without it): the
    prompt was estimated from its words alone, so an agent's request of 40 tool definitions and a screenshot was
    recorded at 2 input tokens. It is estimated as a budget reserves it: tools, images and documents counted."""
    from tokenomy.caching.placement import IMAGE_TOKENS, estimate_input_tokens

    schema = {
        "type": "object",
        "properties": {f"field_{i}": {"type": "string", "description": "x" * 80} for i in range(10)},
    }
    tools = [ToolSpec(f"tool_{i}", "Does one thing well. " * 5, schema) for i in range(40)]
    request = ChatRequest(
        [Message("user", [TextBlock("Look."), ImageBlock("image/png", b"\x89PNG" + bytes(64))])],
        model="up",
        tools=tools,
    )
    assembler = openai_stream.StreamAssembler(request)
    for chunk in (
        {"choices": [{"index": 0, "delta": {"content": "Done."}}]},
        {"choices": [{"index": 0, "delta": {}, "finish_reason": "stop"}]},
    ):
        list(assembler.feed(chunk))
    streamed = assembler.response("openai", 1.0, None)
    whole = openai_wire_read.parse_completion(
        {"choices": [{"index": 0, "message": {"role": "assistant", "content": "Done."}, "finish_reason": "stop"}]},
        request,
        "openai",
        1.0,
    )
    for answer in (streamed, whole):
        assert answer.raw["usage_source"] == "estimated"
        assert answer.usage.input_tokens == estimate_input_tokens(request) > IMAGE_TOKENS + 40 * 300


def test_a_stream_without_usage_counts_long_deltas_by_their_length():
    """A stream without usage was estimated at one output token a delta: a server (or proxy) that sends the answer,
    or a tool call's arguments, in a few large deltas had 2,000 characters recorded as 2 tokens. Each delta counts at
    least one token and the text its characters over four, as the estimate of a stream cut midway does."""
    request = ChatRequest([Message("user", "Write it out.")], model="up")
    assembler = openai_stream.StreamAssembler(request)
    call = {"index": 0, "id": "call_1", "type": "function", "function": {"name": "save", "arguments": '"' * 800}}
    for chunk in (
        {"choices": [{"index": 0, "delta": {"content": "word " * 400}}]},
        {"choices": [{"index": 0, "delta": {"reasoning_content": "think " * 100}}]},
        {"choices": [{"index": 0, "delta": {"tool_calls": [call]}}]},
        {"choices": [{"index": 0, "delta": {}, "finish_reason": "tool_calls"}]},
    ):
        list(assembler.feed(chunk))
    usage = assembler.response("openai", 1.0, None).usage
    assert (usage.output_tokens, usage.reasoning_tokens) == ((2000 + 4 + 800) // 4 + 150, 150)


def test_a_cjk_stream_without_usage_counts_a_character_about_a_token():
    """The stream's estimate reads characters by the one rule (token_estimate): 600 Chinese characters in two deltas
    are ~600 tokens, not the 150 that four characters a token gives."""
    request = ChatRequest([Message("user", "写出来。")], model="up")
    assembler = openai_stream.StreamAssembler(request)
    for chunk in (
        {"choices": [{"index": 0, "delta": {"content": "成本" * 150}}]},
        {"choices": [{"index": 0, "delta": {"content": "节省" * 150}, "finish_reason": "stop"}]},
    ):
        list(assembler.feed(chunk))
    assert assembler.response("openai", 1.0, None).usage.output_tokens == 600


def test_a_library_callers_cache_points_reach_claude_over_the_openai_sdk_on_each_turns_last_part():
    request = ChatRequest(
        model="anthropic/claude-haiku-4.5",
        system="Policy.",
        system_cache_point=True,
        tools=TOOLS,
        tools_cache_point=True,
        max_tokens=8,
        messages=[
            Message("user", "Weather in Oslo?"),  # (4 points: Claude takes no more)
            Message("assistant", [ToolUseBlock("c1", "get_weather", {"city": "Oslo"})], cache_point=True),
            Message("user", [ToolResultBlock("c1", [TextBlock("-3C")])], cache_point=True),
            Message("user", "And now?"),
        ],
    )
    with RecordingOpenAI() as upstream:
        OpenAIProvider(base_url=upstream.url).chat(request)
        body = upstream.last
        OpenAIProvider(base_url=upstream.url).chat(replace(request, model="gpt-4o-mini"))
        plain = upstream.last
    cached = {"type": "ephemeral"}
    assert body["messages"][0] == {
        "role": "system",
        "content": [{"type": "text", "text": "Policy.", "cache_control": cached}],
    }
    assert body["messages"][1]["content"] == "Weather in Oslo?"
    assert body["messages"][2]["cache_control"] == cached  # tool calls without text: on the message (LiteLLM's)
    assert body["messages"][3] == {
        "role": "tool",
        "tool_call_id": "c1",
        "content": [{"type": "text", "text": "-3C", "cache_control": cached}],
    }
    assert body["tools"][-1]["cache_control"] == cached and "cache_control" not in body["tools"][0]
    assert "cache_control" not in json.dumps(plain)  # OpenAI caches by itself, and refuses the field
    assert "cache_control" not in json.dumps(TOOLS[-1].derived)  # the shared tool is untouched


def test_a_one_hour_cache_point_for_claude_over_the_openai_format_is_refused_for_what_is_missing():
    # OpenRouter and LiteLLM take ttl "1h" for Claude: "this API has no 1-hour prompt cache" was not the reason.
    request = ChatRequest(model="anthropic/claude-sonnet-4.5", messages=[Message("user", "hi", cache_point="1h")])
    why = str(OpenAIProvider(base_url="http://127.0.0.1:9/v1").refusal(request))
    assert "1-hour" in why and "which cache writes were 1-hour" in why and "no 1-hour prompt cache" not in why
    plain = str(OpenAIProvider(base_url="http://127.0.0.1:9/v1").refusal(replace(request, model="gpt-4o-mini")))
    assert "this API has no 1-hour prompt cache" in plain
    # One inside a turn (a document before the question) is refused alike, never sent as a 5-minute one.
    inside = Message("user", [TextBlock("doc"), TextBlock("?")], block_points=((0, "1h"),))
    refused = OpenAIProvider(base_url="http://127.0.0.1:9/v1").refusal(replace(request, messages=[inside]))
    assert refused is not None and "1-hour" in str(refused) and refused.message == 0
