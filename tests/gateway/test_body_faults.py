"""Upstream answers that break or cannot be read, for providers reached through their SDKs (Gemini, the counting
endpoints of Anthropic, Bedrock and Gemini): the caller gets the upstream's fault in its API's shape (a 502), never
a 500 of the gateway's own, and an answer the provider billed is in the ledger at its estimate. (test_route_faults.py
holds the others; it is at the size a module may have.)"""

from __future__ import annotations

import json
from collections.abc import Callable

import openai
import pytest

from helpers import stand_in_aws_keys
from helpers.cut_off import cut_off_upstream
from tokenomy.config import parse_config
from tokenomy.emulate.server import ServerThread
from tokenomy.gateway.app import create_app
from tokenomy.ledger.store import open_store

ASK = "x" * 400  # ~100 tokens


def cut_and_closed(ledger_path, answer: bytes, model: Callable[[str], dict]) -> dict[str, str]:
    """Call route "cut", whose upstream breaks off halfway through `answer`, and route "closed", whose server closes
    without a word, each tried once (`model(base_url)` configures each one's model); both are 502s. What each said."""
    said = {}
    with cut_off_upstream(answer) as base:
        models = {name: model(base + path) for name, path in (("cut", ""), ("closed", "/silent"))}
        routes = {name: {"model": name, "retry": {"max_attempts": 1}} for name in models}
        app = create_app(parse_config({"models": models, "routes": routes}), str(ledger_path))
        with ServerThread(app, lifespan="on") as url:
            client = openai.OpenAI(base_url=url + "/v1", api_key="unused", max_retries=0)
            for name in models:
                with pytest.raises(openai.APIStatusError) as failed:
                    client.chat.completions.create(model=name, messages=[{"role": "user", "content": ASK}])
                assert failed.value.status_code == 502
                said[name] = failed.value.message
    return said


def test_a_gemini_answer_cut_off_midway_is_recorded_at_its_estimate_not_free(ledger_path):
    # The connection broke halfway through Gemini's JSON answer (a 200 whose Content-Length is longer than the body it
    # sent): Gemini generated, and billed, it. The broken body was read as "cannot reach the Gemini API" and recorded
    # at $0, as if nothing had been sent; Anthropic's provider already tells the two apart. A server that closes
    # before any answer (the request may never have run) stays at $0.
    answer = json.dumps(
        {
            "candidates": [
                {"content": {"role": "model", "parts": [{"text": "Hi " * 100}]}, "finishReason": "STOP", "index": 0}
            ],
            "usageMetadata": {"promptTokenCount": 100, "candidatesTokenCount": 100},
            "modelVersion": "gemini-2.0-flash",
        }
    ).encode()
    cut_and_closed(
        ledger_path, answer, lambda base: {"provider": "gemini", "model": "gemini-2.0-flash", "base_url": base}
    )
    cut, closed = sorted(open_store(str(ledger_path)).events(), key=lambda e: e.route != "cut")
    assert (cut.route, cut.outcome, cut.input_tokens) == ("cut", "server_error", 100) and cut.cost_usd > 0
    assert (closed.route, closed.outcome, closed.input_tokens, closed.cost_usd) == ("closed", "server_error", 0, 0)


@pytest.mark.parametrize(
    "answer",
    [
        "<html>upstream proxy error</html>",
        "{}",
        '{"input_tokens": "many"}',
        '{"input_tokens": -5}',
        '{"input_tokens": 3000000000}',
    ],
)
def test_an_anthropic_token_count_it_cannot_have_counted_is_anthropics_502_not_a_500(answer, ledger_path, monkeypatch):
    # messages.count_tokens answered 200 with a body that is no JSON (a proxy's error page): the SDK let the decoder's
    # error through, and the gateway answered a 500 "internal error (JSONDecodeError)" with a traceback in its log,
    # which sends an operator looking for a bug of the gateway's; messages.create already answered this 502. A count
    # missing or not a number was a 500 too (TypeError, ValueError), and a negative one or one past any context was
    # passed on as the caller's count.
    import anthropic
    from starlette.applications import Starlette
    from starlette.responses import Response
    from starlette.routing import Route

    async def count(request):
        return Response(answer, media_type="application/json")

    monkeypatch.setenv("ANTHROPIC_API_KEY", "x")
    upstream = Starlette(routes=[Route("/v1/messages/count_tokens", count, methods=["POST"])])
    with ServerThread(upstream) as base:
        models = {"claude": {"provider": "anthropic", "model": "claude-sonnet-4-5-20250929", "base_url": base}}
        with ServerThread(create_app(parse_config({"models": models}), str(ledger_path)), lifespan="on") as url:
            sdk = anthropic.Anthropic(base_url=url, api_key="unused", max_retries=0)
            with pytest.raises(anthropic.APIStatusError) as failed:
                sdk.messages.count_tokens(model="claude", messages=[{"role": "user", "content": "hi"}])
    assert failed.value.status_code == 502 and failed.value.body["type"] == "error"
    said = failed.value.body["error"]
    assert said["type"] == "api_error" and "internal error" not in said["message"]
    assert ("no JSON" if answer.startswith("<") else "input_tokens") in said["message"], said


# Counts no request can have, as an upstream's counting endpoint might answer them: missing, not a number, a
# fraction, a boolean, negative, past any context.
BAD_COUNTS = ["{}", '"many"', "12.5", "true", "-5", "3000000000"]


@pytest.mark.parametrize("count", BAD_COUNTS)
def test_a_bedrock_token_count_it_cannot_have_counted_is_bedrocks_502_not_a_500(count, ledger_path, monkeypatch):
    # CountTokens answered 200 without inputTokens: a KeyError, the gateway's 500 "internal error" with a traceback;
    # "many" a ValueError's 500 too; a fraction, a boolean, a negative count or one past any context was passed on as
    # the caller's count (12 for 12.5, 1 for true).
    import boto3
    from botocore.config import Config
    from botocore.exceptions import ClientError
    from starlette.applications import Starlette
    from starlette.responses import Response
    from starlette.routing import Route

    async def counted(request):
        return Response(count if count == "{}" else f'{{"inputTokens": {count}}}', media_type="application/json")

    stand_in_aws_keys(monkeypatch)
    upstream = Starlette(routes=[Route("/model/{model:path}/count-tokens", counted, methods=["POST"])])
    with ServerThread(upstream) as base:
        models = {
            "sonnet": {
                "provider": "bedrock",
                "model": "anthropic.claude-3-7-sonnet-20250219-v1:0",
                "region": "us-east-1",
                "endpoint_url": base,
            }
        }
        with ServerThread(create_app(parse_config({"models": models}), str(ledger_path)), lifespan="on") as url:
            client = boto3.client(
                "bedrock-runtime",
                endpoint_url=url,
                region_name="us-east-1",
                config=Config(retries={"total_max_attempts": 1}),
            )
            with pytest.raises(ClientError) as failed:
                client.count_tokens(
                    modelId="sonnet", input={"converse": {"messages": [{"role": "user", "content": [{"text": "hi"}]}]}}
                )
    said = failed.value.response
    assert said["ResponseMetadata"]["HTTPStatusCode"] == 502, said
    assert "inputTokens" in said["Error"]["Message"] and "internal error" not in said["Error"]["Message"], said


# A count of contents alone is read by google-genai's pydantic model, which takes true as 1 before the provider sees
# it; a whole request (a system instruction beside the contents) is read by the provider itself.
@pytest.mark.parametrize(
    ("count", "whole"), [(count, whole) for count in BAD_COUNTS for whole in (False, True) if count != "true" or whole]
)
def test_a_gemini_token_count_it_cannot_have_counted_is_geminis_502_not_a_count(count, whole, ledger_path, monkeypatch):
    # countTokens answered 200 without totalTokens: passed on as a count of 0; "many" or a fraction was the SDK's
    # ValidationError, or (a whole request) a ValueError, either answered in Python's words; a boolean, a negative
    # count or one past any context was passed on as the caller's count.
    import httpx
    from starlette.applications import Starlette
    from starlette.responses import Response
    from starlette.routing import Route

    async def counted(request):
        return Response(count if count == "{}" else f'{{"totalTokens": {count}}}', media_type="application/json")

    for name in ("GEMINI_API_KEY", "GOOGLE_API_KEY"):
        monkeypatch.delenv(name, raising=False)
    upstream = Starlette(routes=[Route("/{version}/models/{target}", counted, methods=["POST"])])
    with ServerThread(upstream) as base:
        models = {"flash": {"provider": "gemini", "model": "gemini-2.5-flash", "base_url": base}}
        with ServerThread(create_app(parse_config({"models": models}), str(ledger_path)), lifespan="on") as url:
            body = {"contents": [{"role": "user", "parts": [{"text": "hi"}]}]}
            if whole:
                body = {"generateContentRequest": {**body, "systemInstruction": {"parts": [{"text": "Be brief."}]}}}
            answer = httpx.post(f"{url}/v1beta/models/flash:countTokens", json=body, timeout=30)
    said = answer.json()["error"]
    assert answer.status_code == 502 and said["status"] != "INTERNAL", said
    assert "totalTokens" in said["message"] and "Error" not in said["message"], said


def claude_or_converse_answer(count: str):
    """An upstream answering Anthropic's Messages and Bedrock's Converse with `count` as the prompt's tokens."""
    from starlette.applications import Starlette
    from starlette.responses import Response
    from starlette.routing import Route

    async def messages(request):
        return Response(
            f'{{"id": "msg_1", "type": "message", "role": "assistant", "model": "claude", "content": '
            f'[{{"type": "text", "text": "Hi"}}], "stop_reason": "end_turn", "usage": {{"input_tokens": '
            f'{count}, "output_tokens": 3}}}}',
            media_type="application/json",
        )

    async def converse(request):
        return Response(
            f'{{"output": {{"message": {{"role": "assistant", "content": [{{"text": "Hi"}}]}}}}, '
            f'"stopReason": "end_turn", "usage": {{"inputTokens": {count}, "outputTokens": 3, '
            f'"totalTokens": 4}}}}',
            media_type="application/json",
        )

    return Starlette(
        routes=[
            Route("/v1/messages", messages, methods=["POST"]),
            Route("/model/{model:path}/converse", converse, methods=["POST"]),
        ]
    )


@pytest.mark.parametrize("count", ["true", "100.5", '"many"'])
@pytest.mark.parametrize("model", ["claude", "sonnet"])
def test_a_usage_count_that_is_no_whole_number_is_the_upstreams_fault_recorded_at_its_estimate(
    model, count, ledger_path, monkeypatch
):
    # Claude's input_tokens true was recorded as 1 token and 100.5 as 100, an "ok" row at a price of nothing it
    # counted; "many" was a 500 (ValueError). Bedrock's "many" was botocore's ValueError, a 500 too.
    monkeypatch.setenv("ANTHROPIC_API_KEY", "x")
    stand_in_aws_keys(monkeypatch)
    with ServerThread(claude_or_converse_answer(count)) as base:
        models = {
            "claude": {"provider": "anthropic", "model": "claude-sonnet-4-5-20250929", "base_url": base},
            "sonnet": {
                "provider": "bedrock",
                "model": "anthropic.claude-3-7-sonnet-20250219-v1:0",
                "region": "us-east-1",
                "endpoint_url": base,
            },
        }
        routes = {model: {"model": model, "retry": {"max_attempts": 1}}}
        app = create_app(parse_config({"models": models, "routes": routes}), str(ledger_path))
        with ServerThread(app, lifespan="on") as url:
            client = openai.OpenAI(base_url=url + "/v1", api_key="unused", max_retries=0)
            with pytest.raises(openai.APIStatusError) as failed:
                # A cap an answer cannot outlast the timeout with: the call goes as one JSON answer, not streamed
                client.chat.completions.create(model=model, max_tokens=64, messages=[{"role": "user", "content": ASK}])
    assert failed.value.status_code == 502 and "token counts" in failed.value.message, failed.value.message
    [row] = open_store(str(ledger_path)).events()
    assert row.outcome == "server_error" and row.input_tokens == 100 and row.cost_usd > 0


@pytest.mark.parametrize("stream", [False, True])
@pytest.mark.parametrize("count", ["100.5", '"many"'])
def test_a_gemini_usage_count_that_is_no_whole_number_is_geminis_fault_recorded_at_its_estimate(
    count, stream, ledger_path
):
    # google-genai's pydantic model refused the count (a ValidationError), which was taken as no answer at all: a
    # 502 "Gemini ValidationError" recorded at $0, as if no request had gone out. (true it reads as 1 itself.)
    from starlette.applications import Starlette
    from starlette.responses import Response
    from starlette.routing import Route

    answer = (
        '{"candidates": [{"content": {"role": "model", "parts": [{"text": "Hi"}]}, "finishReason": "STOP"}], '
        f'"usageMetadata": {{"promptTokenCount": {count}, "candidatesTokenCount": 2}}}}'
    )

    async def generate(request):
        if request.path_params["model"].endswith(":streamGenerateContent"):
            return Response(f"data: {answer}\r\n\r\n", media_type="text/event-stream")
        return Response(answer, media_type="application/json")

    upstream = Starlette(routes=[Route("/{version}/models/{model:path}", generate, methods=["POST"])])
    with ServerThread(upstream) as base:
        models = {"g": {"provider": "gemini", "model": "gemini-2.0-flash", "base_url": base}}
        routes = {"g": {"model": "g", "retry": {"max_attempts": 1}}}
        app = create_app(parse_config({"models": models, "routes": routes}), str(ledger_path))
        with ServerThread(app, lifespan="on") as url:
            client = openai.OpenAI(base_url=url + "/v1", api_key="unused", max_retries=0)
            with pytest.raises(openai.APIError) as failed:
                reply = client.chat.completions.create(
                    model="g", messages=[{"role": "user", "content": ASK}], stream=stream
                )
                list(reply) if stream else None
    said = failed.value.message
    assert "token counts" in said and "ValidationError" not in said, said
    [row] = open_store(str(ledger_path)).events()
    assert row.outcome == "server_error" and row.input_tokens == 100 and row.cost_usd > 0


def test_an_openai_format_answer_cut_off_midway_says_the_upstream_answered(ledger_path):
    # A 200 whose body broke off halfway (generated, and billed) read "cannot reach <url>: the upstream closed the
    # connection mid-answer", sending an operator to look at the network though the upstream had answered. It now says
    # the upstream answered 200 and its body was cut off; a server that closes without a word is still unreachable.
    answer = json.dumps(
        {
            "id": "c",
            "object": "chat.completion",
            "created": 1,
            "model": "m",
            "choices": [
                {"index": 0, "message": {"role": "assistant", "content": "Hi " * 100}, "finish_reason": "stop"}
            ],
            "usage": {"prompt_tokens": 100, "completion_tokens": 100, "total_tokens": 200},
        }
    ).encode()
    said = cut_and_closed(
        ledger_path,
        answer,
        lambda base: {
            "provider": "openai",
            "model": "gpt-4o-mini",
            "base_url": base + "/v1",
            "api_key_env": "UNSET_KEY_FOR_TEST",
        },
    )
    assert "cannot reach" not in said["cut"] and "answered 200" in said["cut"], said
    assert "body was cut off" in said["cut"]
    assert "cannot reach" in said["closed"] and "answered" not in said["closed"], said
