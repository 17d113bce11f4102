"""AnthropicProvider end to end: the official SDK against the Messages API emulator on the local model."""

from __future__ import annotations

from decimal import Decimal

import anthropic
import httpx
import pytest

from helpers import stand_in_aws_keys
from tokenomy.client import Tokenomy
from tokenomy.emulate.anthropic_api import create_app
from tokenomy.emulate.server import ServerThread
from tokenomy.errors import ProviderError
from tokenomy.ledger.store import open_store
from tokenomy.messages import ChatRequest, Message, ProviderBlock
from tokenomy.pricing.catalog import default_catalog
from tokenomy.pricing.cost import compute_cost
from tokenomy.providers.anthropic_provider import AnthropicProvider, to_anthropic_params
from tokenomy.providers.registry import ModelSpec
from tokenomy.request_options import ToolSpec

SONNET = "claude-sonnet-4-5-20250929"
# The SDK warns that catalog models are heading for end-of-life; irrelevant to the emulator.
pytestmark = pytest.mark.filterwarnings("ignore:The model .* is deprecated:DeprecationWarning")
MILLION = Decimal(1_000_000)


def long_text(tag: str, lines: int = 80) -> str:
    return "\n".join(
        f"[{tag}] Section {i}: invoices of group {i} are due {i % 9 + 1} weeks after delivery." for i in range(lines)
    )


@pytest.fixture(scope="module")
def url():
    with ServerThread(create_app()) as base:
        yield base


def test_request_maps_to_messages_with_cache_control() -> None:
    request = ChatRequest(
        messages=[Message("user", "hi", cache_point=True), Message("assistant", "hello"), Message("user", "more")],
        model=SONNET,
        system="be brief",
        system_cache_point=True,
        max_tokens=16,
        stop=["END"],
        tools=[ToolSpec("a", input_schema={"type": "object"}), ToolSpec("b", input_schema={"type": "object"})],
        tools_cache_point=True,
    )
    params = to_anthropic_params(request)
    ephemeral = {"type": "ephemeral"}
    assert params["system"] == [{"type": "text", "text": "be brief", "cache_control": ephemeral}]
    assert params["messages"][0]["content"] == [{"type": "text", "text": "hi", "cache_control": ephemeral}]
    assert params["messages"][1]["content"] == "hello"
    assert "cache_control" not in params["tools"][0] and params["tools"][1]["cache_control"] == ephemeral
    assert params["max_tokens"] == 16 and params["stop_sequences"] == ["END"]
    plain = to_anthropic_params(ChatRequest.simple("x", model=SONNET, system="s"))
    assert plain["system"] == "s" and plain["max_tokens"] > 0 and "tools" not in plain


@pytest.mark.slow
def test_chat_and_stream_record_usage_and_cost(url, ledger_path) -> None:
    spec = {"c": ModelSpec(name="c", provider="anthropic", model=SONNET, base_url=url)}
    with Tokenomy(ledger_path, models=spec) as client:
        whole = client.chat(ChatRequest.simple("Name a planet.", model="c", max_tokens=6))
        chunks = list(client.stream(ChatRequest.simple("Name a planet.", model="c", max_tokens=6)))
    final = chunks[-1].response
    assert whole.provider == "anthropic" and whole.model == SONNET
    assert whole.text.strip() and 0 < whole.usage.output_tokens <= 6 and whole.usage.input_tokens > 5
    assert final.text == "".join(c.delta for c in chunks[:-1]) == whole.text
    assert final.usage == whole.usage
    assert final.ttft_ms is not None and 0 < final.ttft_ms <= final.latency_ms
    entry = default_catalog().lookup(SONNET)
    usage = whole.usage
    assert whole.cost_usd == (usage.input_tokens * entry.input + usage.output_tokens * entry.output) / MILLION
    events = open_store(ledger_path).events()
    assert [e.provider for e in events] == ["anthropic", "anthropic"] and {e.outcome for e in events} == {"ok"}


@pytest.mark.slow
def test_cache_control_writes_then_reads_with_costs(url) -> None:
    provider = AnthropicProvider(base_url=url)
    system = long_text("anthropic-cache")
    first = provider.chat(
        ChatRequest.simple("Group 3?", model=SONNET, system=system, system_cache_point=True, max_tokens=2)
    )
    chunks = list(
        provider.stream(
            ChatRequest.simple("Group 5?", model=SONNET, system=system, system_cache_point=True, max_tokens=2)
        )
    )
    second = chunks[-1].response
    entry = default_catalog().lookup(SONNET)
    assert first.usage.cache_write_tokens >= entry.cache_min_tokens and first.usage.cache_read_tokens == 0
    assert second.usage.cache_read_tokens == first.usage.cache_write_tokens and second.usage.cache_write_tokens == 0
    assert 0 < second.usage.input_tokens < 40
    write = compute_cost(first.usage, SONNET)
    read = compute_cost(second.usage, SONNET)
    assert write.cache_write_usd == first.usage.cache_write_tokens * entry.cache_write / MILLION > 0
    assert read.cache_read_usd == second.usage.cache_read_tokens * entry.cache_read / MILLION > 0


@pytest.mark.slow
def test_short_prompt_is_not_cached(url) -> None:
    provider = AnthropicProvider(base_url=url)
    for _ in range(2):
        response = provider.chat(
            ChatRequest.simple("Hi", model=SONNET, system="Short.", system_cache_point=True, max_tokens=1)
        )
        assert response.usage.cache_read_tokens == 0 and response.usage.cache_write_tokens == 0


@pytest.mark.slow
@pytest.mark.parametrize(
    "request_,status,needle",
    [
        (ChatRequest.simple("x", model="claude-unknown-1", max_tokens=1), 404, "not_found_error"),
        (ChatRequest(messages=[], model=SONNET, max_tokens=1), 400, "at least one message"),
        (ChatRequest(messages=[Message("assistant", "x")], model=SONNET, max_tokens=1), 400, "user"),
        (ChatRequest(messages=[Message("tool", "x")], model=SONNET, max_tokens=1), 400, "role"),
        # A system message is merged into the system prompt (the Messages API takes one): no turn is left.
        (ChatRequest(messages=[Message("system", "x")], model=SONNET, max_tokens=1), 400, "at least one message"),
        (
            ChatRequest(
                messages=[Message("user", f"m{i}", cache_point=True) for i in range(5)], model=SONNET, max_tokens=1
            ),
            400,
            "maximum of 4",
        ),
    ],
)
def test_invalid_requests_are_client_errors(url, request_, status, needle) -> None:
    provider = AnthropicProvider(base_url=url)
    for call in (provider.chat, lambda r: list(provider.stream(r))):
        with pytest.raises(ProviderError) as info:
            call(request_)
        assert info.value.kind == "client_error" and info.value.status == status and needle in str(info.value)


@pytest.mark.slow
def test_rate_limit_maps_to_throttled_with_retry_after() -> None:
    app = create_app(throttle_rate=1.0, retry_after=1.5)
    with ServerThread(app) as base:
        provider = AnthropicProvider(base_url=base)
        for call in (provider.chat, lambda r: list(provider.stream(r))):
            with pytest.raises(ProviderError) as info:
                call(ChatRequest.simple("x", model=SONNET, max_tokens=1))
            assert (info.value.kind, info.value.status, info.value.retry_after) == ("throttled", 429, 1.5)
    assert app.state.emulator.calls == 2  # the SDK did not retry on its own


@pytest.mark.slow
def test_sse_stream_follows_documented_event_order(url) -> None:
    client = anthropic.Anthropic(base_url=url, api_key="x", max_retries=0)
    with client.messages.stream(model=SONNET, max_tokens=3, messages=[{"role": "user", "content": "Hi"}]) as stream:
        kinds = [event.type for event in stream]
        message = stream.get_final_message()
    assert kinds[0] == "message_start" and kinds[-1] == "message_stop"
    assert "content_block_start" in kinds and "content_block_delta" in kinds and "message_delta" in kinds
    assert message.usage.output_tokens <= 3 and message.content[0].text
    missing_key = httpx.post(
        f"{url}/v1/messages", json={"model": SONNET, "max_tokens": 1, "messages": [{"role": "user", "content": "x"}]}
    )
    assert missing_key.status_code == 401 and missing_key.json()["error"]["type"] == "authentication_error"


def test_unreachable_server_is_a_server_error() -> None:
    import socket

    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    provider = AnthropicProvider(base_url=f"http://127.0.0.1:{port}", timeout=2)
    with pytest.raises(ProviderError) as info:
        provider.chat(ChatRequest.simple("x", model=SONNET, max_tokens=1))
    assert info.value.kind == "server_error"


def test_read_timeout_maps_to_timeout() -> None:
    import socket
    import threading

    server = socket.socket()
    server.bind(("127.0.0.1", 0))
    server.listen(4)
    server.settimeout(0.2)
    accepted: list[socket.socket] = []
    stop = threading.Event()

    def accept() -> None:  # accept connections and never answer
        while not stop.is_set():
            try:
                accepted.append(server.accept()[0])
            except OSError:
                continue

    thread = threading.Thread(target=accept, daemon=True)
    thread.start()
    try:
        provider = AnthropicProvider(base_url=f"http://127.0.0.1:{server.getsockname()[1]}", timeout=0.5)
        with pytest.raises(ProviderError) as info:
            provider.chat(ChatRequest.simple("x", model=SONNET, max_tokens=1))
        assert info.value.kind == "timeout" and info.value.retryable
    finally:
        stop.set()
        thread.join(2)
        for conn in accepted:
            conn.close()
        server.close()


def test_missing_api_key_is_a_config_error_naming_the_variable(monkeypatch) -> None:
    from tokenomy.errors import ConfigError

    monkeypatch.delenv("ANTHROPIC_API_KEY", raising=False)
    monkeypatch.delenv("ANTHROPIC_BASE_URL", raising=False)
    monkeypatch.delenv("MY_CLAUDE_KEY", raising=False)
    with pytest.raises(ConfigError, match="MY_CLAUDE_KEY"):
        AnthropicProvider(api_key_env="MY_CLAUDE_KEY")
    monkeypatch.setenv("ANTHROPIC_API_KEY", "sk-ant-real")  # never sent in place of the variable the model names
    with pytest.raises(ConfigError, match="MY_CLAUDE_KEY"):
        AnthropicProvider(api_key_env="MY_CLAUDE_KEY", base_url="https://proxy.example.com")
    monkeypatch.setenv("MY_CLAUDE_KEY", "sk-test")
    assert AnthropicProvider(api_key_env="MY_CLAUDE_KEY").client.api_key == "sk-test"
    assert AnthropicProvider().client.api_key == "sk-ant-real"


SERVER_TOOL_BLOCKS = [
    {"type": "server_tool_use", "id": "srvtoolu_1", "name": "web_search", "input": {"query": "weather Paris"}},
    {
        "type": "web_search_tool_result",
        "tool_use_id": "srvtoolu_1",
        "content": [
            {"type": "web_search_result", "url": "https://example.com", "title": "Paris", "encrypted_content": "x"}
        ],
    },
    {"type": "text", "text": "Sunny in Paris."},
]


def _server_tool_upstream():
    """A Messages API upstream whose answer holds a server tool's call and result (web search) before the text."""
    import json as _json

    from starlette.applications import Starlette
    from starlette.requests import Request
    from starlette.responses import JSONResponse, Response
    from starlette.routing import Route

    searched = {"web_search_requests": 2, "web_fetch_requests": 0}
    usage = {"input_tokens": 10, "output_tokens": 5, "server_tool_use": searched}

    async def messages(request: Request) -> Response:
        body = await request.json()
        message = {
            "id": "msg_1",
            "type": "message",
            "role": "assistant",
            "model": body["model"],
            "content": SERVER_TOOL_BLOCKS,
            "stop_reason": "end_turn",
            "stop_sequence": None,
            "usage": usage,
        }
        if not body.get("stream"):
            return JSONResponse(message)
        use, result, text = SERVER_TOOL_BLOCKS
        opening = {**message, "content": [], "stop_reason": None, "usage": {"input_tokens": 10, "output_tokens": 1}}
        events = [
            ("message_start", {"message": opening}),
            ("content_block_start", {"index": 0, "content_block": {**use, "input": {}}}),
            (
                "content_block_delta",
                {"index": 0, "delta": {"type": "input_json_delta", "partial_json": _json.dumps(use["input"])}},
            ),
            ("content_block_stop", {"index": 0}),
            ("content_block_start", {"index": 1, "content_block": result}),
            ("content_block_stop", {"index": 1}),
            ("content_block_start", {"index": 2, "content_block": {"type": "text", "text": ""}}),
            ("content_block_delta", {"index": 2, "delta": {"type": "text_delta", "text": text["text"]}}),
            ("content_block_stop", {"index": 2}),
            (
                "message_delta",
                {
                    "delta": {"stop_reason": "end_turn", "stop_sequence": None},
                    "usage": {"output_tokens": 5, "server_tool_use": searched},
                },
            ),
            ("message_stop", {}),
        ]
        data = "".join(f"event: {name}\ndata: {_json.dumps({'type': name, **event})}\n\n" for name, event in events)
        return Response(data, media_type="text/event-stream")

    return Starlette(routes=[Route("/v1/messages", messages, methods=["POST"])])


def test_an_answer_with_server_tool_blocks_comes_back_whole_and_recorded(ledger_path) -> None:
    """A server tool's blocks (web search) have no Tokenomy type: the answer still comes back, with them as provider
    blocks in their places, as sent, and is recorded; a raw ValueError escaped after the provider had billed the
    call."""
    with ServerThread(_server_tool_upstream()) as base:
        spec = {"c": ModelSpec(name="c", provider="anthropic", model=SONNET, base_url=base)}
        request = ChatRequest(
            [Message("user", "weather in Paris?")],
            model="c",
            max_tokens=64,
            extra={"tools": [{"type": "web_search_20250305", "name": "web_search"}]},
        )
        with Tokenomy(ledger_path, models=spec) as client:
            chunks = list(client.stream(request))
            answers = [client.chat(request), chunks[-1].response]
    assert not any(c.tool_call for c in chunks)  # the server tool's input is no call for the caller to make
    for answer in answers:
        assert answer.text == "Sunny in Paris." and answer.usage.output_tokens == 5
        assert answer.content[:2] == [ProviderBlock("anthropic", block) for block in SERVER_TOOL_BLOCKS[:2]]
    assert [c.block for c in chunks if c.block] == answers[0].content[:2]  # streamed whole, in their place
    assert [row.outcome for row in open_store(ledger_path).events()] == ["ok", "ok"]


def test_web_searches_are_billed_per_search_beside_the_tokens(ledger_path) -> None:
    """Anthropic bills each web search (usage.server_tool_use.web_search_requests) on top of the tokens: the answer's
    cost and its ledger row include them, whole and streamed, and the row says how many there were."""
    from tokenomy.pricing.server_tools import REQUEST_PRICES

    with ServerThread(_server_tool_upstream()) as base:
        spec = {"c": ModelSpec(name="c", provider="anthropic", model=SONNET, base_url=base)}
        request = ChatRequest(
            [Message("user", "weather in Paris?")],
            model="c",
            max_tokens=64,
            extra={"tools": [{"type": "web_search_20250305", "name": "web_search"}]},
        )
        with Tokenomy(ledger_path, models=spec) as client:
            answers = [client.chat(request), list(client.stream(request))[-1].response]
    tokens = compute_cost(answers[0].usage, SONNET).total_usd
    searches = 2 * REQUEST_PRICES["anthropic"]["web_search_requests"].usd
    assert searches > 0
    assert [a.cost_usd for a in answers] == [tokens + searches] * 2
    rows = open_store(ledger_path).events()
    assert [row.cost_usd for row in rows] == [tokens + searches] * 2
    assert [row.tags.get("web_search_requests") for row in rows] == ["2", "2"]
    assert all(row.input_cost_usd + row.output_cost_usd == tokens for row in rows)  # the search fee is no token cost


def test_a_server_tool_for_a_model_on_another_api_is_refused_before_any_call(ledger_path, monkeypatch) -> None:
    """A server tool (ToolSpec.server) runs on Anthropic's API only: Bedrock's mapping sent it as a function the
    caller never implemented. Refused by name, nothing sent (the endpoint is unreachable)."""
    stand_in_aws_keys(monkeypatch)
    spec = {
        "b": ModelSpec(
            name="b",
            provider="bedrock",
            model="anthropic.claude-3-haiku-20240307-v1:0",
            region="us-east-1",
            endpoint_url="http://127.0.0.1:9",
        )
    }
    search = ToolSpec("web_search", server={"type": "web_search_20250305", "name": "web_search"})
    request = ChatRequest([Message("user", "news?")], model="b", max_tokens=8, tools=[search])
    with Tokenomy(ledger_path, models=spec) as client, pytest.raises(ProviderError) as refused:
        client.chat(request)
    assert refused.value.kind == "client_error" and "`tools[0].type`" in str(refused.value)
    assert "cannot reach" not in str(refused.value)
