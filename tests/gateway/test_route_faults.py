"""Upstream faults behind the Responses API and Bedrock's InvokeModel: an OpenAI-format upstream that answers 200
with a body or a stream chunk of the wrong shape, or counts it cannot have counted; Claude (Anthropic's API or
Bedrock) still working when the gateway stops waiting. The request was answered or worked on (and billed), so the
ledger has its row at a cost, the key's budget is charged what that row says, and the SDK gets the upstream's fault
(a 502 or 504, or the stream's error event), never a 500 of the gateway's own."""

from __future__ import annotations

import asyncio
import json
import time
from decimal import Decimal

import boto3
import openai
import pytest
from botocore.config import Config
from botocore.exceptions import ClientError, EventStreamError

from helpers import stand_in_aws_keys
from helpers.cut_off import cut_off_upstream
from helpers.scripted_openai import ScriptedOpenAI
from tokenomy.config import parse_config
from tokenomy.emulate.server import ServerThread
from tokenomy.gateway.app import create_app
from tokenomy.gateway.keys import KeyStore, period_start
from tokenomy.gateway.limits import to_nano
from tokenomy.ledger.store import open_store

HAIKU = "anthropic.claude-3-haiku-20240307-v1:0"
ASK = "x" * 400
pytestmark = pytest.mark.filterwarnings("ignore:The model .* is deprecated:DeprecationWarning")
CLAUDE_BODY = json.dumps(
    {"anthropic_version": "bedrock-2023-05-31", "max_tokens": 1000, "messages": [{"role": "user", "content": ASK}]}
)


class Served:
    """A gateway with keys in front of one scripted OpenAI-format upstream: route "up" (no retries) and "chain"
    ("up", falling back to "spare", on the same upstream). `charged()` is the key's budget counter; the ledger is
    read once the gateway has stopped (`rows`)."""

    def __init__(self, script: list[tuple], ledger) -> None:
        self.ledger, self.upstream = ledger, ScriptedOpenAI(script)
        self.secret, self.key = KeyStore(open_store(ledger)).create(budget_usd=Decimal("1"), period="month")
        url = self.upstream.url
        models = {
            name: {"provider": "openai", "model": name, "base_url": url, "price_as": HAIKU} for name in ("up", "spare")
        }
        routes = {
            "up": {"model": "up", "retry": {"max_attempts": 1}},
            "chain": {"model": "up", "retry": {"max_attempts": 1}, "fallback": ["spare"]},
        }
        self.app = create_app(parse_config({"auth": True, "models": models, "routes": routes}), str(ledger))
        self.server = ServerThread(self.app, lifespan="on")
        self.url = self.server.__enter__()

    def responses(self) -> openai.OpenAI:
        return openai.OpenAI(base_url=self.url + "/v1", api_key=self.secret, max_retries=0)

    def bedrock(self):
        return bedrock_client(self.url, self.secret)

    def charged(self) -> int | None:
        gateway = self.app.state.gateway
        deadline = time.monotonic() + 5
        while time.monotonic() < deadline and (any(gateway.budgets.open.values()) or gateway.settling):
            time.sleep(0.02)  # a stream's settlement runs in a task of its own
        return asyncio.run(gateway.limits.spent(f"key:{self.key.key_id}:{period_start('month').date()}"))

    def rows(self):
        self.server.__exit__(None, None, None)  # the ledger writer flushes and lets the file go
        self.upstream.close()
        return sorted(open_store(str(self.ledger)).events(), key=lambda e: e.attempt)


def bedrock_client(url: str, key: str, read_timeout: float = 60):
    """boto3's bedrock-runtime on the gateway, the gateway key as the access key id, no retries of its own."""
    return boto3.client(
        "bedrock-runtime",
        endpoint_url=url,
        region_name="us-east-1",
        aws_access_key_id=key,
        aws_secret_access_key="any",
        config=Config(retries={"total_max_attempts": 1}, read_timeout=read_timeout),
    )


@pytest.fixture
def served(ledger_path):
    made: list[Served] = []
    yield lambda script: made.append(Served(script, ledger_path)) or made[-1]
    for each in made:
        each.server.__exit__(None, None, None)
        each.upstream.close()


@pytest.mark.parametrize("api, kind", [("responses", "misshapen"), ("invoke", "misshapen"), ("responses", "garbled")])
def test_an_unreadable_whole_answer_is_a_502_recorded_and_charged_at_its_estimate(api, kind, served):
    # A 200 whose body has no choices, or is no JSON: the upstream generated (and billed) it. The row was at $0 and
    # the budget charged nothing, as if no request had gone out.
    gateway = served([(200, {}, kind)])
    if api == "responses":
        with pytest.raises(openai.InternalServerError) as failed:
            gateway.responses().responses.create(model="up", input=ASK, max_output_tokens=1000)
        assert failed.value.status_code == 502 and "unreadable" in failed.value.message
    else:
        with pytest.raises(ClientError) as failed:
            gateway.bedrock().invoke_model(modelId="up", body=CLAUDE_BODY)
        assert failed.value.response["ResponseMetadata"]["HTTPStatusCode"] == 502
    charged = gateway.charged()
    [row] = gateway.rows()
    assert row.outcome == "server_error"
    assert row.input_tokens == 100 and row.cost_usd > 0  # the prompt, estimated
    assert charged == to_nano(row.cost_usd)


@pytest.mark.parametrize("api", ["responses", "invoke"])
def test_a_stream_chunk_of_the_wrong_shape_ends_the_stream_as_the_upstreams_fault_charged_at_its_row(api, served):
    # After one delta the upstream sends a chunk whose `choices` is a string. It was read as a bug of the gateway's
    # ("internal error; see the gateway's log", a traceback logged) and the budget kept the call's whole reservation
    # (max_tokens' worth) though the ledger recorded the attempt at its estimate.
    gateway = served([(200, {}, "misshapen")])
    if api == "responses":
        stream = gateway.responses().responses.create(model="up", input=ASK, max_output_tokens=1000, stream=True)
        [failed] = [event for event in stream if event.type == "response.failed"]
        message = failed.response.error.message
    else:
        reply = gateway.bedrock().invoke_model_with_response_stream(modelId="up", body=CLAUDE_BODY)
        with pytest.raises(EventStreamError) as ended:
            list(reply["body"])
        message = ended.value.response["Error"]["Message"]
    assert "unreadable stream chunk" in message and "internal error" not in message
    charged = gateway.charged()
    [row] = gateway.rows()
    assert row.outcome == "server_error" and (row.input_tokens, row.output_tokens) == (100, 1)
    assert charged == to_nano(row.cost_usd) > 0


def test_a_stream_whose_first_chunk_has_the_wrong_shape_falls_back_and_each_attempt_is_a_row(served):
    # Nothing had reached the caller: the route's fallback answers, as after any other failure of the upstream's.
    gateway = served([(200, {}, "misshapen-first")])
    reply = gateway.bedrock().invoke_model_with_response_stream(modelId="chain", body=CLAUDE_BODY)
    events = [json.loads(part["chunk"]["bytes"]) for part in reply["body"]]
    text = "".join(e["delta"]["text"] for e in events if e["type"] == "content_block_delta")
    assert text == "ok" and events[-1]["type"] == "message_stop"
    charged = gateway.charged()
    first, second = gateway.rows()
    assert (first.model, first.outcome, first.input_tokens) == ("up", "server_error", 100) and first.cost_usd > 0
    assert (second.model, second.outcome, second.input_tokens) == ("spare", "ok", 1000)
    assert charged == to_nano(first.cost_usd + second.cost_usd)


@pytest.mark.parametrize(
    "usage",
    [
        {"prompt_tokens": -5, "completion_tokens": 3, "total_tokens": -2},
        {"prompt_tokens": 5, "completion_tokens": 3, "total_tokens": 8, "prompt_tokens_details": {"cached_tokens": 8}},
        {"prompt_tokens": 10**20, "completion_tokens": 3, "total_tokens": 10**20 + 3},
        {"prompt_tokens": True, "completion_tokens": 3.5, "total_tokens": 4.5},  # were read as 1 and 3 tokens
    ],
    ids=["negative", "more-cached-than-prompt", "past-any-context", "boolean-and-fraction"],
)
@pytest.mark.parametrize("stream", [False, True])
def test_an_answer_counting_negative_tokens_is_the_upstreams_fault_recorded_at_its_estimate(stream, usage, served):
    # -5 prompt tokens, or 5 of which 8 cached (-3 uncached): the row was "ok" at -5 (-3) input tokens and $0
    # (unpriced), the budget charged nothing, and the caller got a 500 (Prometheus refuses to count negative tokens)
    # for an answer the upstream billed. 10^20 prompt tokens (no context holds a millionth of it) was answered "ok",
    # the budget charged $25 trillion, and the row, which no ledger column can hold, was set aside out of the ledger.
    gateway = served([])
    gateway.upstream.usage = usage
    client = gateway.responses()
    if stream:
        events = list(client.responses.create(model="up", input=ASK, max_output_tokens=1000, stream=True))
        assert events[-1].type == "response.failed" and "token counts" in events[-1].response.error.message
    else:
        with pytest.raises(openai.InternalServerError) as failed:
            client.responses.create(model="up", input=ASK, max_output_tokens=1000)
        assert failed.value.status_code == 502 and "token counts" in failed.value.message
    charged = gateway.charged()
    [row] = gateway.rows()
    assert row.outcome == "server_error" and row.input_tokens == 100 and row.cost_usd > 0
    assert charged == to_nano(row.cost_usd)


@pytest.mark.parametrize("model", ["claude", "haiku"])
def test_a_call_that_outwaits_its_timeout_at_anthropic_or_bedrock_is_recorded_and_charged_at_its_estimate(
    model, ledger_path, monkeypatch
):
    # The request reached Claude (Anthropic's API, or Bedrock), which kept working after the gateway stopped waiting
    # and bills it. The OpenAI-format paths record such an attempt at its estimate; these recorded it at $0 and the
    # budget charged nothing.
    from botocore.exceptions import ReadTimeoutError

    from helpers.scripted_anthropic import ScriptedAnthropic
    from tokenomy.emulate.bedrock_runtime import create_app as create_bedrock
    from tokenomy.emulate.instant_engine import InstantEngine

    stand_in_aws_keys(monkeypatch)
    monkeypatch.setenv("ANTHROPIC_API_KEY", "x")
    claude = ScriptedAnthropic()
    claude.delay_s = 1.5
    secret, key = KeyStore(open_store(ledger_path)).create(budget_usd=Decimal("1"), period="month")
    with (
        ServerThread(claude.app) as claude_api,
        ServerThread(create_bedrock(engine=InstantEngine(delay_s=1.5))) as bedrock,
    ):
        models = {
            "claude": {
                "provider": "anthropic",
                "model": "claude-sonnet-4-5-20250929",
                "base_url": claude_api,
                "timeout_s": 0.5,
            },
            "haiku": {
                "provider": "bedrock",
                "region": "us-east-1",
                "endpoint_url": bedrock,
                "model": HAIKU,
                "timeout_s": 0.5,
            },
        }
        routes = {name: {"model": name, "retry": {"max_attempts": 1}} for name in models}
        app = create_app(parse_config({"auth": True, "models": models, "routes": routes}), str(ledger_path))
        with ServerThread(app, lifespan="on") as url:
            client = bedrock_client(url, secret, read_timeout=30)
            with pytest.raises((ClientError, ReadTimeoutError)) as failed:
                client.invoke_model(modelId=model, body=CLAUDE_BODY)
            assert failed.value.response["ResponseMetadata"]["HTTPStatusCode"] == 504
            gateway = app.state.gateway
            charged = asyncio.run(gateway.limits.spent(f"key:{key.key_id}:{period_start('month').date()}"))
    [row] = open_store(str(ledger_path)).events()
    assert row.outcome == "timeout" and row.input_tokens > 0 and row.cost_usd > 0
    assert charged == to_nano(row.cost_usd)


def test_a_corrupted_bedrock_stream_frame_ends_the_stream_as_bedrocks_fault_charged_at_its_row(
    ledger_path, monkeypatch
):
    # A frame whose checksum does not match (a corrupted connection) raised botocore's ChecksumMismatch, which is no
    # BotoCoreError: the stream ended as a bug of the gateway's ("internal error", a traceback logged) and the budget
    # kept the whole reservation though the ledger recorded the attempt at its estimate.
    from starlette.applications import Starlette
    from starlette.responses import StreamingResponse
    from starlette.routing import Route

    from tokenomy.providers import eventstream

    async def converse_stream(request):
        async def frames():
            yield eventstream.event("messageStart", {"role": "assistant"})
            yield eventstream.event("contentBlockDelta", {"contentBlockIndex": 0, "delta": {"text": "Hel"}})
            corrupted = bytearray(
                eventstream.event("contentBlockDelta", {"contentBlockIndex": 0, "delta": {"text": "lo"}})
            )
            corrupted[-1] ^= 0xFF
            yield bytes(corrupted)

        return StreamingResponse(frames(), media_type="application/vnd.amazon.eventstream")

    stand_in_aws_keys(monkeypatch)
    secret, key = KeyStore(open_store(ledger_path)).create(budget_usd=Decimal("1"), period="month")
    bedrock = Starlette(routes=[Route("/model/{model:path}/converse-stream", converse_stream, methods=["POST"])])
    with ServerThread(bedrock) as bedrock_url:
        models = {"haiku": {"provider": "bedrock", "region": "us-east-1", "endpoint_url": bedrock_url, "model": HAIKU}}
        app = create_app(parse_config({"auth": True, "models": models}), str(ledger_path))
        with ServerThread(app, lifespan="on") as url:
            client = bedrock_client(url, secret)
            reply = client.invoke_model_with_response_stream(modelId="haiku", body=CLAUDE_BODY)
            with pytest.raises(EventStreamError) as ended:
                list(reply["body"])
            gateway = app.state.gateway
            deadline = time.monotonic() + 5
            while time.monotonic() < deadline and (any(gateway.budgets.open.values()) or gateway.settling):
                time.sleep(0.02)  # the stream's settlement runs in a task of its own
            charged = asyncio.run(gateway.limits.spent(f"key:{key.key_id}:{period_start('month').date()}"))
    message = ended.value.response["Error"]["Message"]
    assert "corrupted" in message and "internal error" not in message
    [row] = open_store(str(ledger_path)).events()
    assert row.outcome == "server_error" and row.input_tokens == 100 and row.output_tokens == 1
    assert charged == to_nano(row.cost_usd) > 0


@pytest.mark.parametrize("model", ["claude", "haiku"])
def test_claude_counting_negative_tokens_is_its_fault_and_recorded_at_its_estimate(model, ledger_path, monkeypatch):
    # Anthropic's API or Bedrock answering input_tokens -5: the row was "ok" at -5 tokens and $0 (unpriced), the
    # budget charged nothing, and the caller got a 500 (Prometheus refuses to count negative tokens).
    from starlette.applications import Starlette
    from starlette.responses import JSONResponse
    from starlette.routing import Route

    from helpers import scripted_anthropic

    async def converse(request):
        return JSONResponse(
            {
                "output": {"message": {"role": "assistant", "content": [{"text": "Hi"}]}},
                "stopReason": "end_turn",
                "metrics": {"latencyMs": 1},
                "usage": {"inputTokens": -5, "outputTokens": 2, "totalTokens": -3},
            }
        )

    stand_in_aws_keys(monkeypatch)
    monkeypatch.setenv("ANTHROPIC_API_KEY", "x")
    monkeypatch.setattr(scripted_anthropic, "USAGE", {**scripted_anthropic.USAGE, "input_tokens": -5})
    secret, key = KeyStore(open_store(ledger_path)).create(budget_usd=Decimal("1"), period="month")
    bedrock = Starlette(routes=[Route("/model/{model:path}/converse", converse, methods=["POST"])])
    with ServerThread(scripted_anthropic.ScriptedAnthropic().app) as claude_api, ServerThread(bedrock) as bedrock_url:
        models = {
            "claude": {"provider": "anthropic", "model": "claude-sonnet-4-5-20250929", "base_url": claude_api},
            "haiku": {"provider": "bedrock", "region": "us-east-1", "endpoint_url": bedrock_url, "model": HAIKU},
        }
        routes = {name: {"model": name, "retry": {"max_attempts": 1}} for name in models}
        app = create_app(parse_config({"auth": True, "models": models, "routes": routes}), str(ledger_path))
        with ServerThread(app, lifespan="on") as url:
            client = bedrock_client(url, secret)
            with pytest.raises(ClientError) as failed:
                client.invoke_model(modelId=model, body=CLAUDE_BODY)
            gateway = app.state.gateway
            charged = asyncio.run(gateway.limits.spent(f"key:{key.key_id}:{period_start('month').date()}"))
    assert failed.value.response["ResponseMetadata"]["HTTPStatusCode"] == 502
    assert "token counts" in failed.value.response["Error"]["Message"]
    [row] = open_store(str(ledger_path)).events()
    assert row.outcome == "server_error" and row.input_tokens == 100 and row.cost_usd > 0
    assert charged == to_nano(row.cost_usd)


def usageless_claude():
    """Anthropic's Messages API and Bedrock's Converse (whole and streamed) answering "Hi there" with no usage at
    all, as a proxy that strips it does."""
    from starlette.applications import Starlette
    from starlette.responses import JSONResponse, Response
    from starlette.routing import Route

    from tokenomy.providers import eventstream

    message = {
        "id": "msg_1",
        "type": "message",
        "role": "assistant",
        "model": "m",
        "stop_reason": "end_turn",
        "stop_sequence": None,
        "content": [{"type": "text", "text": "Hi there"}],
    }

    async def messages(request):
        if not (await request.json()).get("stream"):
            return JSONResponse(message)
        events = [
            ("message_start", {"type": "message_start", "message": {**message, "content": [], "stop_reason": None}}),
            (
                "content_block_start",
                {"type": "content_block_start", "index": 0, "content_block": {"type": "text", "text": ""}},
            ),
            (
                "content_block_delta",
                {"type": "content_block_delta", "index": 0, "delta": {"type": "text_delta", "text": "Hi there"}},
            ),
            ("content_block_stop", {"type": "content_block_stop", "index": 0}),
            ("message_delta", {"type": "message_delta", "delta": {"stop_reason": "end_turn"}}),
            ("message_stop", {"type": "message_stop"}),
        ]
        return Response(
            "".join(f"event: {n}\ndata: {json.dumps(e)}\n\n" for n, e in events), media_type="text/event-stream"
        )

    async def converse(request):
        return JSONResponse(
            {
                "output": {"message": {"role": "assistant", "content": [{"text": "Hi there"}]}},
                "stopReason": "end_turn",
                "metrics": {"latencyMs": 1},
            }
        )

    async def converse_stream(request):
        frames = [
            ("messageStart", {"role": "assistant"}),
            ("contentBlockDelta", {"contentBlockIndex": 0, "delta": {"text": "Hi there"}}),
            ("contentBlockStop", {"contentBlockIndex": 0}),
            ("messageStop", {"stopReason": "end_turn"}),
        ]
        return Response(
            b"".join(eventstream.event(*frame) for frame in frames), media_type="application/vnd.amazon.eventstream"
        )

    return Starlette(
        routes=[
            Route("/v1/messages", messages, methods=["POST"]),
            Route("/model/{model:path}/converse", converse, methods=["POST"]),
            Route("/model/{model:path}/converse-stream", converse_stream, methods=["POST"]),
        ]
    )


@pytest.mark.parametrize("stream", [False, True])
@pytest.mark.parametrize("model", ["claude", "haiku"])
def test_claude_answering_without_usage_is_recorded_at_estimated_tokens_not_free(
    model, stream, ledger_path, monkeypatch
):
    # An OpenAI-format answer without usage is estimated; Claude's, from Anthropic's API or Bedrock, was recorded at
    # 0 tokens and $0, and its budget charged nothing, though the model answered it.
    stand_in_aws_keys(monkeypatch)
    monkeypatch.setenv("ANTHROPIC_API_KEY", "x")
    secret, key = KeyStore(open_store(ledger_path)).create(budget_usd=Decimal("1"), period="month")
    with ServerThread(usageless_claude()) as upstream:
        models = {
            "claude": {"provider": "anthropic", "model": "claude-sonnet-4-5-20250929", "base_url": upstream},
            "haiku": {"provider": "bedrock", "region": "us-east-1", "endpoint_url": upstream, "model": HAIKU},
        }
        app = create_app(parse_config({"auth": True, "models": models}), str(ledger_path))
        with ServerThread(app, lifespan="on") as url:
            client = bedrock_client(url, secret)
            if stream:
                reply = client.invoke_model_with_response_stream(modelId=model, body=CLAUDE_BODY)
                events = [json.loads(part["chunk"]["bytes"]) for part in reply["body"]]
                counted = events[-1]["amazon-bedrock-invocationMetrics"]["inputTokenCount"]
            else:
                counted = json.loads(client.invoke_model(modelId=model, body=CLAUDE_BODY)["body"].read())["usage"][
                    "input_tokens"
                ]
            gateway = app.state.gateway
            deadline = time.monotonic() + 5
            while time.monotonic() < deadline and (any(gateway.budgets.open.values()) or gateway.settling):
                time.sleep(0.02)  # a stream's settlement runs in a task of its own
            charged = asyncio.run(gateway.limits.spent(f"key:{key.key_id}:{period_start('month').date()}"))
    [row] = open_store(str(ledger_path)).events()
    assert row.outcome == "ok" and row.input_tokens == counted == 100 and row.output_tokens == 2  # "Hi there"
    assert charged == to_nano(row.cost_usd) > 0


def test_a_bedrock_answer_cut_off_midway_is_a_502_recorded_at_its_estimate_not_an_empty_answer(
    ledger_path, monkeypatch
):
    # The connection broke halfway through Converse's JSON answer. botocore reads a body it cannot parse as an
    # empty result: the caller got a 200 with an empty message, recorded "ok" (at $0 before answers without usage
    # were estimated), though Claude had generated, and billed, a whole answer.
    answer = json.dumps(
        {
            "output": {"message": {"role": "assistant", "content": [{"text": "Hi " * 100}]}},
            "stopReason": "end_turn",
            "metrics": {"latencyMs": 1},
            "usage": {"inputTokens": 100, "outputTokens": 100, "totalTokens": 200},
        }
    ).encode()
    stand_in_aws_keys(monkeypatch)
    secret, key = KeyStore(open_store(ledger_path)).create(budget_usd=Decimal("1"), period="month")
    with cut_off_upstream(answer) as endpoint:
        models = {"haiku": {"provider": "bedrock", "region": "us-east-1", "endpoint_url": endpoint, "model": HAIKU}}
        routes = {"haiku": {"model": "haiku", "retry": {"max_attempts": 1}}}
        app = create_app(parse_config({"auth": True, "models": models, "routes": routes}), str(ledger_path))
        with ServerThread(app, lifespan="on") as url:
            client = bedrock_client(url, secret)
            with pytest.raises(ClientError) as failed:
                client.invoke_model(modelId="haiku", body=CLAUDE_BODY)
            charged = asyncio.run(app.state.gateway.limits.spent(f"key:{key.key_id}:{period_start('month').date()}"))
    assert failed.value.response["ResponseMetadata"]["HTTPStatusCode"] == 502
    [row] = open_store(str(ledger_path)).events()
    assert row.outcome == "server_error" and row.input_tokens == 100 and row.cost_usd > 0
    assert charged == to_nano(row.cost_usd)


def test_an_anthropic_answer_cut_off_midway_is_recorded_at_its_estimate_not_free(ledger_path, monkeypatch):
    # The connection broke halfway through Claude's JSON answer (generated, and billed): the SDK's connection error
    # was read as "cannot reach the Anthropic API" and recorded at $0, as if nothing had been sent. A server that
    # closes before any answer (the request may never have run) stays at $0.
    answer = json.dumps(
        {
            "id": "msg_1",
            "type": "message",
            "role": "assistant",
            "model": "m",
            "stop_reason": "end_turn",
            "stop_sequence": None,
            "content": [{"type": "text", "text": "Hi " * 100}],
            "usage": {"input_tokens": 100, "output_tokens": 100},
        }
    ).encode()

    monkeypatch.setenv("ANTHROPIC_API_KEY", "x")
    with cut_off_upstream(answer) as base:
        models = {
            name: {"provider": "anthropic", "model": "claude-sonnet-4-5-20250929", "base_url": base + path}
            for name, path in (("cut", ""), ("closed", "/silent"))
        }
        routes = {name: {"model": name, "retry": {"max_attempts": 1}} for name in models}
        app = create_app(parse_config({"models": models, "routes": routes}), str(ledger_path))
        with ServerThread(app, lifespan="on") as url:
            client = bedrock_client(url, "x")
            for model in models:
                with pytest.raises(ClientError) as failed:
                    client.invoke_model(modelId=model, body=CLAUDE_BODY)
                assert failed.value.response["ResponseMetadata"]["HTTPStatusCode"] == 502
    cut, closed = sorted(open_store(str(ledger_path)).events(), key=lambda e: e.route != "cut")
    assert (cut.route, cut.outcome, cut.input_tokens) == ("cut", "server_error", 100) and cut.cost_usd > 0
    assert (closed.route, closed.outcome, closed.input_tokens, closed.cost_usd) == ("closed", "server_error", 0, 0)


def gemini_counting(usage: dict | None):
    """The Gemini API answering "Hi there" (whole, or streamed in one event) with `usage` as its usageMetadata, or
    with none at all, as a proxy that strips it does."""
    from starlette.applications import Starlette
    from starlette.responses import JSONResponse, Response
    from starlette.routing import Route

    answer = {
        "candidates": [
            {"content": {"role": "model", "parts": [{"text": "Hi there"}]}, "finishReason": "STOP", "index": 0}
        ],
        "modelVersion": "gemini-2.0-flash",
    }
    if usage is not None:
        answer["usageMetadata"] = usage

    async def generate(request):
        if request.path_params["model"].endswith(":streamGenerateContent"):
            return Response(f"data: {json.dumps(answer)}\r\n\r\n", media_type="text/event-stream")
        return JSONResponse(answer)

    return Starlette(routes=[Route("/{version}/models/{model:path}", generate, methods=["POST"])])


@pytest.mark.parametrize("stream", [False, True])
@pytest.mark.parametrize(
    "usage",
    [
        None,
        {"promptTokenCount": 100, "candidatesTokenCount": -10},
        {"promptTokenCount": -100, "candidatesTokenCount": 2},
    ],
)
def test_gemini_answering_without_usage_or_negative_counts_is_recorded_at_its_estimate(usage, stream, ledger_path):
    # Gemini's answer without usageMetadata was recorded at 0 tokens and $0 (budget charged nothing) where an
    # OpenAI-format or Claude answer is estimated; a negative prompt count was taken as 0 and a negative output count
    # made an "ok" row at -10 tokens and a 500 (Prometheus refuses it). Negative counts are Gemini's fault, as
    # Claude's are: a 502 (or the stream's error event), recorded at its estimate.
    secret, key = KeyStore(open_store(ledger_path)).create(budget_usd=Decimal("1"), period="month")
    with ServerThread(gemini_counting(usage)) as upstream:
        models = {"g": {"provider": "gemini", "model": "gemini-2.0-flash", "base_url": upstream}}
        routes = {"g": {"model": "g", "retry": {"max_attempts": 1}}}
        app = create_app(parse_config({"auth": True, "models": models, "routes": routes}), str(ledger_path))
        with ServerThread(app, lifespan="on") as url:
            client = openai.OpenAI(base_url=url + "/v1", api_key=secret, max_retries=0)
            ask = {"model": "g", "messages": [{"role": "user", "content": ASK}], "stream": stream}
            try:
                reply = client.chat.completions.create(**ask)
                text = (
                    "".join(c.choices[0].delta.content or "" for c in reply if c.choices)
                    if stream
                    else reply.choices[0].message.content
                )
                failure = None
            except openai.APIError as exc:
                text, failure = None, exc
            gateway = app.state.gateway
            deadline = time.monotonic() + 5
            while time.monotonic() < deadline and (any(gateway.budgets.open.values()) or gateway.settling):
                time.sleep(0.02)  # a stream's settlement runs in a task of its own
            charged = asyncio.run(gateway.limits.spent(f"key:{key.key_id}:{period_start('month').date()}"))
    [row] = open_store(str(ledger_path)).events()
    if usage is None:
        assert text == "Hi there" and failure is None
        assert row.outcome == "ok" and row.input_tokens == 100 and row.output_tokens == 2
    else:
        assert "token counts" in failure.message and "internal error" not in failure.message
        assert stream or failure.status_code == 502
        assert row.outcome == "server_error" and row.input_tokens == 100
    assert row.cost_usd > 0 and charged == to_nano(row.cost_usd)


def started_then_cut():
    """Anthropic's Messages API, Bedrock's ConverseStream and the Gemini API each answering a stream 200 and ending it
    before any content: Anthropic after message_start (which counts the prompt), Bedrock after messageStart, Gemini
    with no event at all."""
    from starlette.applications import Starlette
    from starlette.responses import Response
    from starlette.routing import Route

    from tokenomy.providers import eventstream

    async def messages(request):
        start = {
            "type": "message_start",
            "message": {
                "id": "msg_1",
                "type": "message",
                "role": "assistant",
                "model": "m",
                "content": [],
                "stop_reason": None,
                "stop_sequence": None,
                "usage": {"input_tokens": 100, "output_tokens": 1},
            },
        }
        return Response(f"event: message_start\ndata: {json.dumps(start)}\n\n", media_type="text/event-stream")

    async def converse_stream(request):
        return Response(
            eventstream.event("messageStart", {"role": "assistant"}), media_type="application/vnd.amazon.eventstream"
        )

    async def generate(request):
        return Response("", media_type="text/event-stream")

    return Starlette(
        routes=[
            Route("/v1/messages", messages, methods=["POST"]),
            Route("/model/{model:path}/converse-stream", converse_stream, methods=["POST"]),
            Route("/{version}/models/{model:path}", generate, methods=["POST"]),
        ]
    )


@pytest.mark.parametrize("model", ["claude", "haiku", "g"])
def test_a_stream_answered_200_and_cut_before_any_content_is_charged_its_prompt_not_free(
    model, ledger_path, monkeypatch
):
    # Anthropic's API, Bedrock and Gemini had the request and answered it 200 (Anthropic even counted its prompt), and
    # the stream ended before any content: the attempt was recorded at 0 tokens and $0 (only a stream cut after some
    # content was estimated), so the key's budget counted nothing and each retry of it was paid for unbudgeted.
    stand_in_aws_keys(monkeypatch)
    monkeypatch.setenv("ANTHROPIC_API_KEY", "x")
    secret, key = KeyStore(open_store(ledger_path)).create(budget_usd=Decimal("1"), period="month")
    with ServerThread(started_then_cut()) as upstream:
        models = {
            "claude": {"provider": "anthropic", "model": "claude-sonnet-4-5-20250929", "base_url": upstream},
            "haiku": {"provider": "bedrock", "region": "us-east-1", "endpoint_url": upstream, "model": HAIKU},
            "g": {"provider": "gemini", "model": "gemini-2.0-flash", "base_url": upstream},
        }
        routes = {name: {"model": name, "retry": {"max_attempts": 1}} for name in models}
        app = create_app(parse_config({"auth": True, "models": models, "routes": routes}), str(ledger_path))
        with ServerThread(app, lifespan="on") as url:
            client = openai.OpenAI(base_url=url + "/v1", api_key=secret, max_retries=0)
            with pytest.raises(openai.APIStatusError) as failed:
                list(
                    client.chat.completions.create(
                        model=model, messages=[{"role": "user", "content": ASK}], stream=True
                    )
                )
            charged = asyncio.run(app.state.gateway.limits.spent(f"key:{key.key_id}:{period_start('month').date()}"))
    assert failed.value.status_code == 502 and "ended before the answer was complete" in failed.value.message
    [row] = open_store(str(ledger_path)).events()
    assert row.outcome == "server_error" and row.input_tokens == 100 and row.output_tokens == 0
    assert row.cost_usd > 0 and charged == to_nano(row.cost_usd)


def unreadable_answers(media_type="application/json"):
    """Anthropic's Messages API and the Gemini API answering 200 with a body that is no JSON (a proxy's error page,
    labelled JSON or not), or, streamed, with an event whose data is none."""
    from starlette.applications import Starlette
    from starlette.responses import Response
    from starlette.routing import Route

    async def messages(request):
        if not (await request.json()).get("stream"):
            return Response("<html>upstream proxy error</html>", media_type=media_type)
        start = {
            "type": "message_start",
            "message": {
                "id": "msg_1",
                "type": "message",
                "role": "assistant",
                "model": "m",
                "content": [],
                "stop_reason": None,
                "stop_sequence": None,
                "usage": {"input_tokens": 100, "output_tokens": 1},
            },
        }
        events = f"event: message_start\ndata: {json.dumps(start)}\n\nevent: content_block_start\ndata: {{bad\n\n"
        return Response(events, media_type="text/event-stream")

    async def generate(request):
        if request.path_params["model"].endswith(":streamGenerateContent"):
            return Response("data: {bad\r\n\r\n", media_type="text/event-stream")
        return Response("<html>upstream proxy error</html>", media_type=media_type)

    return Starlette(
        routes=[
            Route("/v1/messages", messages, methods=["POST"]),
            Route("/{version}/models/{model:path}", generate, methods=["POST"]),
        ]
    )


@pytest.mark.parametrize(
    "stream,media_type", [(False, "application/json"), (False, "text/html"), (True, "application/json")]
)
@pytest.mark.parametrize("model", ["claude", "g"])
def test_an_answer_from_anthropic_or_gemini_that_is_no_json_is_their_fault_charged_at_its_estimate(
    model, stream, media_type, ledger_path, monkeypatch
):
    # Anthropic's: a 500 "internal error (JSONDecodeError)" with a traceback in the log, which tells an operator to
    # look for a bug in the gateway; Gemini's: a 502 recorded at 0 tokens and $0, though it had answered 200 (billed).
    monkeypatch.setenv("ANTHROPIC_API_KEY", "x")
    secret, key = KeyStore(open_store(ledger_path)).create(budget_usd=Decimal("1"), period="month")
    with ServerThread(unreadable_answers(media_type)) as upstream:
        models = {
            "claude": {"provider": "anthropic", "model": "claude-sonnet-4-5-20250929", "base_url": upstream},
            "g": {"provider": "gemini", "model": "gemini-2.0-flash", "base_url": upstream},
        }
        routes = {name: {"model": name, "retry": {"max_attempts": 1}} for name in models}
        app = create_app(parse_config({"auth": True, "models": models, "routes": routes}), str(ledger_path))
        with ServerThread(app, lifespan="on") as url:
            client = openai.OpenAI(base_url=url + "/v1", api_key=secret, max_retries=0)
            with pytest.raises(openai.APIStatusError) as failed:
                list(
                    client.chat.completions.create(
                        model=model, messages=[{"role": "user", "content": ASK}], stream=stream, max_tokens=10
                    )
                )
            charged = asyncio.run(app.state.gateway.limits.spent(f"key:{key.key_id}:{period_start('month').date()}"))
    assert failed.value.status_code == 502 and "internal error" not in failed.value.message
    [row] = open_store(str(ledger_path)).events()
    assert row.outcome == "server_error" and row.input_tokens == 100
    assert row.cost_usd > 0 and charged == to_nano(row.cost_usd)
