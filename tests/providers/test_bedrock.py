"""BedrockProvider end to end: Tokenomy client -> boto3 -> the Bedrock emulator -> the local model."""

from __future__ import annotations

import socket
import threading
from decimal import Decimal

import pytest
from botocore.exceptions import ClientError, EventStreamError

from tokenomy.client import Tokenomy
from tokenomy.emulate.bedrock_runtime import create_app
from tokenomy.emulate.server import ServerThread
from tokenomy.errors import ProviderError
from tokenomy.ledger.store import open_store
from tokenomy.messages import ChatRequest, Message
from tokenomy.pricing.catalog import default_catalog
from tokenomy.pricing.cost import compute_cost
from tokenomy.providers.bedrock import BedrockProvider, to_converse_params
from tokenomy.providers.bedrock_answer_read import usage_from_bedrock
from tokenomy.providers.bedrock_faults import map_bedrock_error
from tokenomy.providers.registry import ModelSpec
from tokenomy.request_options import ToolSpec

SONNET = "anthropic.claude-3-7-sonnet-20250219-v1:0"
ROUTER = "arn:aws:bedrock:us-east-1:123456789012:default-prompt-router/anthropic.claude:1"
MILLION = Decimal(1_000_000)


def long_text(tag: str, lines: int = 80) -> str:
    return "\n".join(
        f"[{tag}] Clause {i}: shipments of class {i} leave within {i % 5 + 1} days of payment." for i in range(lines)
    )


@pytest.fixture(scope="module")
def url():
    with ServerThread(create_app()) as base:
        yield base


def models(url: str) -> dict[str, ModelSpec]:
    return {
        "sonnet": ModelSpec(name="sonnet", provider="bedrock", model=SONNET, region="us-east-1", endpoint_url=url),
        "router": ModelSpec(name="router", provider="bedrock", model=ROUTER, region="us-east-1", endpoint_url=url),
        "us-sonnet": ModelSpec(
            name="us-sonnet", provider="bedrock", model=f"us.{SONNET}", region="us-east-1", endpoint_url=url
        ),
    }


def test_request_maps_to_converse_with_cache_points() -> None:
    request = ChatRequest(
        messages=[Message("user", "hi", cache_point=True), Message("assistant", "hello"), Message("user", "more")],
        model=SONNET,
        system="be brief",
        system_cache_point=True,
        max_tokens=16,
        temperature=0.2,
        stop=["END"],
        tools=[ToolSpec("lookup", "find", {"type": "object"})],
        tools_cache_point=True,
    )
    params = to_converse_params(request)
    point = {"cachePoint": {"type": "default"}}
    assert params["modelId"] == SONNET
    assert params["system"] == [{"text": "be brief"}, point]
    assert params["messages"][0]["content"] == [{"text": "hi"}, point]
    assert params["messages"][1]["content"] == [{"text": "hello"}]
    assert params["inferenceConfig"] == {"maxTokens": 16, "temperature": 0.2, "stopSequences": ["END"]}
    assert params["toolConfig"]["tools"] == [
        {"toolSpec": {"name": "lookup", "description": "find", "inputSchema": {"json": {"type": "object"}}}},
        point,
    ]
    plain = to_converse_params(ChatRequest.simple("x", model=SONNET, system="s"))
    assert plain["system"] == [{"text": "s"}] and "inferenceConfig" not in plain and "toolConfig" not in plain


@pytest.mark.parametrize("model", ["amazon.nova-lite-v1:0", "us.amazon.nova-pro-v1:0"])
def test_a_cache_point_in_novas_tools_is_refused_by_name(model) -> None:
    """Amazon Nova takes cache points in system and messages only, not in toolConfig.tools (a point after a system
    prompt or a message caches the tools before it): the point is refused by name before anything is sent."""
    tools = [ToolSpec("lookup", "find", {"type": "object"})]
    request = ChatRequest(messages=[Message("user", "hi")], model=model, tools=tools, tools_cache_point=True)
    with pytest.raises(ProviderError) as info:
        to_converse_params(request)
    # named by the content model ("tools"): each ingress names it as its caller sent it (Converse's toolConfig.tools)
    assert info.value.status == 400 and info.value.param == "tools"
    assert "Nova" in str(info.value) and "system prompt" in str(info.value)
    # The same point on the system prompt reaches Nova; a Claude model takes the one in its tools.
    moved = to_converse_params(
        ChatRequest(messages=[Message("user", "hi")], model=model, tools=tools, system="s", system_cache_point=True)
    )
    assert moved["system"][-1] == {"cachePoint": {"type": "default"}}
    claude = to_converse_params(
        ChatRequest(messages=[Message("user", "hi")], model=SONNET, tools=tools, tools_cache_point=True)
    )
    assert claude["toolConfig"]["tools"][-1] == {"cachePoint": {"type": "default"}}


@pytest.mark.slow
def test_chat_and_stream_record_usage_and_cost(url, ledger_path) -> None:
    with Tokenomy(ledger_path, models=models(url)) as client:
        whole = client.chat(ChatRequest.simple("Name a fruit.", model="sonnet", max_tokens=6))
        chunks = list(client.stream(ChatRequest.simple("Name a fruit.", model="sonnet", max_tokens=6)))
    final = chunks[-1].response
    assert whole.provider == "aws.bedrock" and whole.model == SONNET and whole.region == "us-east-1"
    assert whole.text.strip() and 0 < whole.usage.output_tokens <= 6 and whole.usage.input_tokens > 5
    assert final.text == "".join(c.delta for c in chunks[:-1]) == whole.text
    assert final.ttft_ms is not None and 0 < final.ttft_ms <= final.latency_ms
    assert final.finish_reason in ("stop", "length")
    entry = default_catalog().lookup(SONNET, "us-east-1")
    expected = (whole.usage.input_tokens * entry.input + whole.usage.output_tokens * entry.output) / MILLION
    assert whole.cost_usd == expected
    events = open_store(ledger_path).events()
    assert len(events) == 2 and {e.provider for e in events} == {"aws.bedrock"}
    assert {e.outcome for e in events} == {"ok"} and sum(e.cost_usd for e in events) == 2 * expected


@pytest.mark.slow
def test_cache_write_then_read_with_costs(url, ledger_path) -> None:
    system = long_text("provider-cache")
    with Tokenomy(ledger_path, models=models(url)) as client:
        first = client.chat(
            ChatRequest.simple("Class 2?", model="sonnet", system=system, system_cache_point=True, max_tokens=2)
        )
        second = client.chat(
            ChatRequest.simple("Class 4?", model="sonnet", system=system, system_cache_point=True, max_tokens=2)
        )
    entry = default_catalog().lookup(SONNET, "us-east-1")
    assert first.usage.cache_write_tokens >= entry.cache_min_tokens and first.usage.cache_read_tokens == 0
    assert second.usage.cache_read_tokens == first.usage.cache_write_tokens and second.usage.cache_write_tokens == 0
    write_cost = compute_cost(first.usage, SONNET, "us-east-1")
    read_cost = compute_cost(second.usage, SONNET, "us-east-1")
    assert write_cost.cache_write_usd == first.usage.cache_write_tokens * entry.cache_write / MILLION > 0
    assert read_cost.cache_read_usd == second.usage.cache_read_tokens * entry.cache_read / MILLION > 0
    assert read_cost.total_usd < write_cost.total_usd
    rows = sorted(open_store(ledger_path).events(), key=lambda e: e.ts)
    assert rows[0].cache_write_tokens == first.usage.cache_write_tokens
    assert rows[0].cache_write_cost_usd == write_cost.cache_write_usd
    assert rows[1].cache_read_tokens == second.usage.cache_read_tokens
    assert rows[1].cache_read_cost_usd == read_cost.cache_read_usd


@pytest.mark.slow
def test_short_prompt_with_cache_point_gets_no_cache_tokens(url) -> None:
    provider = BedrockProvider(region="us-east-1", endpoint_url=url)
    for _ in range(2):
        response = provider.chat(
            ChatRequest.simple("Hi", model=SONNET, system="Be brief.", system_cache_point=True, max_tokens=1)
        )
        assert response.usage.cache_read_tokens == 0 and response.usage.cache_write_tokens == 0


@pytest.mark.slow
def test_prompt_router_is_priced_as_the_invoked_model(url, ledger_path) -> None:
    with Tokenomy(ledger_path, models=models(url)) as client:
        response = client.chat(ChatRequest.simple("Hi", model="router", max_tokens=2))
    assert response.model == "anthropic.claude-3-haiku-20240307-v1:0"
    assert response.raw["requested_model"] == ROUTER
    assert response.raw["invoked_model_id"].endswith("inference-profile/us.anthropic.claude-3-haiku-20240307-v1:0")
    entry = default_catalog().lookup(response.model, "us-east-1")
    assert (
        response.cost_usd
        == (response.usage.input_tokens * entry.input + response.usage.output_tokens * entry.output) / MILLION
        > 0
    )
    [event] = open_store(ledger_path).events()
    assert event.model == response.model and event.cost_usd == response.cost_usd


@pytest.mark.slow
def test_cross_region_profile_id_is_passed_through_and_priced(url) -> None:
    with Tokenomy(record=False, models=models(url)) as client:
        response = client.chat(ChatRequest.simple("Hi", model="us-sonnet", max_tokens=1))
    assert response.model == f"us.{SONNET}" and response.cost_usd > 0


@pytest.mark.slow
def test_endpoint_and_region_come_from_environment(url, monkeypatch) -> None:
    monkeypatch.setenv("TOKENOMY_BEDROCK_ENDPOINT", url)
    monkeypatch.setenv("AWS_REGION", "eu-central-1")
    for name in ("AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY", "AWS_SESSION_TOKEN", "AWS_PROFILE"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("AWS_SHARED_CREDENTIALS_FILE", "/nonexistent")
    monkeypatch.setenv("AWS_CONFIG_FILE", "/nonexistent")
    provider = BedrockProvider()
    assert provider.region == "eu-central-1" and provider.endpoint_url == url
    response = provider.chat(ChatRequest.simple("Hi", model="eu.anthropic.claude-3-haiku-20240307-v1:0", max_tokens=1))
    assert response.region == "eu-central-1" and response.usage.output_tokens == 1


@pytest.mark.slow
@pytest.mark.parametrize(
    "request_",
    [
        ChatRequest.simple("x", model="acme.unknown-model-v1:0", max_tokens=1),
        ChatRequest(messages=[], model=SONNET, max_tokens=1),
        ChatRequest(messages=[Message("assistant", "x")], model=SONNET, max_tokens=1),
        ChatRequest(messages=[Message("system", "x")], model=SONNET, max_tokens=1),
    ],
)
def test_validation_errors_are_client_errors(url, request_) -> None:
    provider = BedrockProvider(region="us-east-1", endpoint_url=url)
    for call in (provider.chat, lambda r: list(provider.stream(r))):
        with pytest.raises(ProviderError) as info:
            call(request_)
        assert info.value.kind == "client_error" and info.value.status == 400 and not info.value.retryable
        assert "ValidationException" in str(info.value)


@pytest.mark.slow
def test_throttling_maps_to_throttled_with_retry_after(ledger_path) -> None:
    app = create_app(throttle_rate=1.0, retry_after=2)
    with ServerThread(app) as base:
        provider = BedrockProvider(region="us-east-1", endpoint_url=base)
        for call in (provider.chat, lambda r: list(provider.stream(r))):
            with pytest.raises(ProviderError) as info:
                call(ChatRequest.simple("x", model=SONNET, max_tokens=1))
            assert (info.value.kind, info.value.status, info.value.retry_after) == ("throttled", 429, 2.0)
            assert info.value.retryable
        # botocore made exactly one request per call: retrying is Tokenomy's job, not the SDK's
        assert app.state.emulator.calls == 2
        spec = {"s": ModelSpec(name="s", provider="bedrock", model=SONNET, region="us-east-1", endpoint_url=base)}
        with Tokenomy(ledger_path, models=spec) as client, pytest.raises(ProviderError):
            client.chat(ChatRequest.simple("x", model="s", max_tokens=1))
    events = open_store(ledger_path).events()
    assert events and {e.outcome for e in events} == {"throttled"}


def test_read_timeout_maps_to_timeout() -> None:
    # A real socket that accepts the connection and never answers.
    server = socket.socket()
    server.bind(("127.0.0.1", 0))
    server.listen(4)
    accepted: list[socket.socket] = []
    stop = threading.Event()

    def accept() -> None:
        server.settimeout(0.2)
        while not stop.is_set():
            try:
                accepted.append(server.accept()[0])
            except OSError:
                continue

    thread = threading.Thread(target=accept, daemon=True)
    thread.start()
    try:
        provider = BedrockProvider(
            region="us-east-1",
            endpoint_url=f"http://127.0.0.1:{server.getsockname()[1]}",
            read_timeout=0.5,
            connect_timeout=0.5,
        )
        with pytest.raises(ProviderError) as info:
            provider.chat(ChatRequest.simple("x", model=SONNET, max_tokens=1))
        assert info.value.kind == "timeout" and info.value.retryable
    finally:
        stop.set()
        thread.join(2)
        for conn in accepted:
            conn.close()
        server.close()


def test_connection_refused_is_a_server_error() -> None:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]  # closed again at once: nothing listens here
    provider = BedrockProvider(region="us-east-1", endpoint_url=f"http://127.0.0.1:{port}", connect_timeout=0.5)
    with pytest.raises(ProviderError) as info:
        provider.chat(ChatRequest.simple("x", model=SONNET, max_tokens=1))
    assert info.value.kind == "server_error"


@pytest.mark.parametrize(
    "code,status,headers,kind,retry_after",
    [
        ("ThrottlingException", 429, {"retry-after": "3"}, "throttled", 3.0),
        ("ServiceUnavailableException", 503, {}, "server_error", None),
        ("ModelNotReadyException", 429, {}, "server_error", None),
        ("InternalServerException", 500, {}, "server_error", None),
        ("ModelTimeoutException", 408, {}, "timeout", None),
        ("AccessDeniedException", 403, {}, "client_error", None),
        ("ResourceNotFoundException", 404, {}, "client_error", None),
        ("SomethingNew", 502, {}, "server_error", None),
    ],
)
def test_error_codes_map_to_kinds(code, status, headers, kind, retry_after) -> None:
    # botocore's parsed error-response shape, as produced for every failed call
    error = ClientError(
        {
            "Error": {"Code": code, "Message": "m"},
            "ResponseMetadata": {"HTTPStatusCode": status, "HTTPHeaders": headers},
        },
        "Converse",
    )
    mapped = map_bedrock_error(error)
    assert (mapped.kind, mapped.retry_after) == (kind, retry_after)


@pytest.mark.parametrize(
    "code,kind",
    [
        ("throttlingException", "throttled"),
        ("modelStreamErrorException", "server_error"),
        ("serviceUnavailableException", "server_error"),
        ("validationException", "client_error"),
    ],
)
def test_in_stream_exceptions_map_by_event_name(code, kind) -> None:
    # botocore raises EventStreamError with the stream event's name as the code and no HTTP status
    error = EventStreamError({"Error": {"Code": code, "Message": "m"}}, "ConverseStream")
    assert map_bedrock_error(error).kind == kind


@pytest.mark.parametrize("code", ["serviceUnavailableException", "ServiceUnavailableException"])
def test_an_unavailable_bedrock_is_a_503_in_a_stream_too(code) -> None:
    # In a stream the exception has no HTTP status (the answer began with 200): an agent on /v1/messages waits out
    # and retries Anthropic's overloaded_error, which the gateway sends for a 503, not an api_error (a 502).
    from tokenomy.gateway.calls import upstream_status

    error = EventStreamError(
        {"Error": {"Code": code, "Message": "Bedrock is unable to process your request."}}, "ConverseStream"
    )
    assert upstream_status(map_bedrock_error(error)) == 503


def test_exception_frame_mid_stream_reaches_boto3_as_server_error() -> None:
    # A peer that starts a ConverseStream answer and then fails in-band, as Bedrock does on model errors.
    from starlette.applications import Starlette
    from starlette.responses import StreamingResponse
    from starlette.routing import Route

    from tokenomy.providers import eventstream

    async def failing(request):
        def frames():
            yield eventstream.event("messageStart", {"role": "assistant"})
            yield eventstream.event("contentBlockDelta", {"contentBlockIndex": 0, "delta": {"text": "Hel"}})
            yield eventstream.exception("modelStreamErrorException", "model crashed")

        return StreamingResponse(frames(), media_type="application/vnd.amazon.eventstream")

    app = Starlette(routes=[Route("/model/{model_id:path}/converse-stream", failing, methods=["POST"])])
    with ServerThread(app) as base:
        provider = BedrockProvider(region="us-east-1", endpoint_url=base)
        deltas = []
        with pytest.raises(ProviderError) as info:
            for chunk in provider.stream(ChatRequest.simple("x", model=SONNET, max_tokens=1)):
                deltas.append(chunk.delta)
    assert deltas == ["Hel"]
    assert info.value.kind == "server_error" and "model crashed" in str(info.value)


@pytest.mark.slow
def test_request_region_selects_the_client_region(url) -> None:
    provider = BedrockProvider(region="us-east-1", endpoint_url=url)
    request = ChatRequest.simple("Hi", model=SONNET, max_tokens=1, region="us-west-2")
    response = provider.chat(request)
    assert response.region == "us-west-2" and set(provider._clients) == {"us-east-1", "us-west-2"}
    assert provider._clients["us-west-2"].meta.region_name == "us-west-2"
    assert compute_cost(response.usage, response.model, response.region).region == "us-west-2"


def test_response_fields_and_guardrail_trace_the_caller_asked_for_come_back() -> None:
    # additionalModelResponseFieldPaths and guardrailConfig.trace are passed through to Converse; their answers
    # (additionalModelResponseFields, trace.guardrail) were dropped, streamed or not. A peer answering as Bedrock
    # does, read by the real boto3.
    from starlette.applications import Starlette
    from starlette.responses import JSONResponse, StreamingResponse
    from starlette.routing import Route

    from tokenomy.gateway.responses import completion_body
    from tokenomy.providers import eventstream

    fields = {"stop_sequence": "END"}
    guardrail = {"modelOutput": ["blocked text"], "actionReason": "Guardrail blocked."}
    usage = {"inputTokens": 5, "outputTokens": 2, "totalTokens": 7}

    async def whole(request):
        return JSONResponse(
            {
                "output": {"message": {"role": "assistant", "content": [{"text": "Hi"}]}},
                "stopReason": "stop_sequence",
                "usage": usage,
                "metrics": {"latencyMs": 1},
                "additionalModelResponseFields": fields,
                "trace": {"guardrail": guardrail},
            }
        )

    async def streamed(request):
        def frames():
            yield eventstream.event("messageStart", {"role": "assistant"})
            yield eventstream.event("contentBlockDelta", {"contentBlockIndex": 0, "delta": {"text": "Hi"}})
            yield eventstream.event("contentBlockStop", {"contentBlockIndex": 0})
            yield eventstream.event(
                "messageStop", {"stopReason": "stop_sequence", "additionalModelResponseFields": fields}
            )
            yield eventstream.event(
                "metadata", {"usage": usage, "metrics": {"latencyMs": 1}, "trace": {"guardrail": guardrail}}
            )

        return StreamingResponse(frames(), media_type="application/vnd.amazon.eventstream")

    app = Starlette(
        routes=[
            Route("/model/{model_id:path}/converse", whole, methods=["POST"]),
            Route("/model/{model_id:path}/converse-stream", streamed, methods=["POST"]),
        ]
    )
    request = ChatRequest.simple(
        "x",
        model=SONNET,
        max_tokens=4,
        stop=["END"],
        extra={
            "additionalModelResponseFieldPaths": ["/stop_sequence"],
            "guardrailConfig": {"guardrailIdentifier": "gr-1", "guardrailVersion": "1", "trace": "enabled"},
        },
    )
    with ServerThread(app) as base:
        provider = BedrockProvider(region="us-east-1", endpoint_url=base)
        answers = [provider.chat(request), list(provider.stream(request))[-1].response]
    for answer in answers:
        assert answer.text == "Hi" and answer.usage.output_tokens == 2
        assert answer.raw["top"] == {"additionalModelResponseFields": fields, "trace": {"guardrail": guardrail}}
        body = completion_body(answer, "sonnet", "chatcmpl-1")  # the gateway's answer carries them
        assert body["additionalModelResponseFields"] == fields and body["trace"]["guardrail"] == guardrail


@pytest.mark.parametrize("count", [True, 12.5, "many"])
def test_a_streamed_usage_count_that_is_no_whole_number_is_bedrocks_fault(count) -> None:
    # botocore reads a ConverseStream event's JSON as sent (its event parser has no int()): true was 1 input token,
    # 12.5 was 12 and "many" a ValueError out of the stream. (A whole answer is checked before botocore's int().)
    with pytest.raises(ProviderError) as failed:
        usage_from_bedrock({"inputTokens": count, "outputTokens": 3, "totalTokens": 4})
    assert failed.value.reached and "inputTokens" in str(failed.value)
    assert usage_from_bedrock({"inputTokens": 12.0, "outputTokens": 3}).input_tokens == 12  # whole all the same
