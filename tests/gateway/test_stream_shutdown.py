"""A call still running when `tokenomy serve`'s graceful shutdown runs out (SIGTERM, then
`gateway.shutdown_grace_seconds`) ends in its API's own error: a stream whose answer has begun with its API's error
event and a properly ended body, not a protocol error about a broken chunked body; a call not yet answered with its
API's "unavailable" status. Each official SDK raises its API's error naming the shutdown, and the ledger keeps the
cut call's row.

A real gateway process, SIGTERM and the SDKs, against an upstream that sends one delta and then nothing, or nothing
at all (until the test releases it): no step waits on a clock, each call is with the upstream before the signal."""

from __future__ import annotations

import asyncio
import concurrent.futures
import contextlib
import json
import logging
import os
import re
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from types import SimpleNamespace

import anthropic
import boto3
import openai
from botocore.config import Config
from botocore.exceptions import ClientError, EventStreamError
from google import genai
from google.genai import errors as genai_errors

from helpers import free_port, wait_for_port
from helpers.scripted_openai import ScriptedOpenAI
from tokenomy.gateway.hygiene import UVICORN_SHUTDOWN, end_shutdown_cancel, shutdown_cancel
from tokenomy.ledger.store import open_store

TOKENOMY = str(Path(sys.executable).with_name("tokenomy"))
HAIKU = "anthropic.claude-3-haiku-20240307-v1:0"
SAID = "the gateway shut down mid-stream"  # what every cut stream's error says
SAID_BEFORE = "the gateway shut down before answering"  # what a call cut before its answer began gets
HI = [{"role": "user", "content": "hi"}]


def begun(events):
    """The stream's iterator, once its first event has arrived (the answer's headers and first bytes are out)."""
    events = iter(events)
    next(events)
    return events


def ending(events) -> BaseException | list:
    """What reading the rest of a stream ends in: the exception its SDK raised, or the events it yielded."""
    seen = []
    try:
        for event in events:
            seen.append(event)
    except Exception as exc:  # what each SDK raises is asserted below
        return exc
    return seen


@contextlib.contextmanager
def serving(upstream: ScriptedOpenAI, tmp_path: Path) -> Iterator[tuple[subprocess.Popen, SimpleNamespace]]:
    """`tokenomy serve` (a one-second shutdown grace) in front of `upstream`, and the four SDKs pointed at it (none
    retries); the process is killed at the end if the test did not stop it, and the upstream closed."""
    config = tmp_path / "tokenomy.yaml"
    config.write_text(
        json.dumps(
            {
                "gateway": {"shutdown_grace_seconds": 1},
                "models": {"up": {"provider": "openai", "model": "up", "base_url": upstream.url, "price_as": HAIKU}},
            }
        )
    )
    port = free_port()
    log = (tmp_path / "gateway.log").open("w")
    proc = subprocess.Popen(
        [TOKENOMY, "serve", "--config", str(config), "--port", str(port), "--ledger", str(tmp_path / "ledger.duckdb")],
        env={**os.environ, "AWS_EC2_METADATA_DISABLED": "true"},
        stdout=log,
        stderr=log,
    )
    base = f"http://127.0.0.1:{port}"
    try:
        wait_for_port(port, 60, proc)
        yield (
            proc,
            SimpleNamespace(
                openai=openai.OpenAI(base_url=base + "/v1", api_key="unused", max_retries=0),
                anthropic=anthropic.Anthropic(base_url=base, api_key="unused", max_retries=0),
                gemini=genai.Client(api_key="unused", http_options={"base_url": base}),
                bedrock=boto3.client(
                    "bedrock-runtime",
                    endpoint_url=base,
                    region_name="us-east-1",
                    aws_access_key_id="x",
                    aws_secret_access_key="x",
                    config=Config(retries={"total_max_attempts": 1}),
                ),
            ),
        )
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait(10)
        log.close()
        upstream.release()
        upstream.close()


def test_streams_still_running_when_the_shutdown_grace_ends_get_their_apis_error_and_stay_in_the_ledger(tmp_path):
    upstream = ScriptedOpenAI([(200, {}, "stall")] * 6)
    with serving(upstream, tmp_path) as (proc, sdk):
        oai, claude, gemini, bedrock = sdk.openai, sdk.anthropic, sdk.gemini, sdk.bedrock
        body = json.dumps({"anthropic_version": "bedrock-2023-05-31", "max_tokens": 16, "messages": HI})
        converse = [{"role": "user", "content": [{"text": "hi"}]}]
        streams = {
            "chat": begun(oai.chat.completions.create(model="up", messages=HI, stream=True)),
            "responses": begun(oai.responses.create(model="up", input="hi", stream=True)),
            "messages": begun(claude.messages.create(model="up", max_tokens=16, messages=HI, stream=True)),
            "converse": begun(bedrock.converse_stream(modelId="up", messages=converse)["stream"]),
            "invoke": begun(bedrock.invoke_model_with_response_stream(modelId="up", body=body)["body"]),
            "gemini": begun(gemini.models.generate_content_stream(model="up", contents="hi")),
        }
        proc.send_signal(signal.SIGTERM)  # every stream waits on the upstream: the grace runs out, the gateway cuts it
        ends = {api: ending(events) for api, events in streams.items()}
        assert proc.wait(60) in (0, -signal.SIGTERM)

    chat = ends["chat"]  # OpenAI's error chunk: openai.APIError, not APIConnectionError ("incomplete chunked read")
    assert type(chat) is openai.APIError and SAID in chat.message and chat.body["code"] == "service_unavailable"
    # The Responses API ends a failed response with response.failed, which the SDK yields rather than raises.
    assert isinstance(ends["responses"], list) and ends["responses"][-1].type == "response.failed"
    assert SAID in ends["responses"][-1].response.error.message
    messages = ends["messages"]  # Anthropic's error event, as its API ends a stream it cannot finish
    assert isinstance(messages, anthropic.APIStatusError) and messages.body["error"]["type"] == "overloaded_error"
    assert SAID in messages.body["error"]["message"]
    for api in ("converse", "invoke"):  # an event-stream exception message: botocore's EventStreamError
        cut = ends[api]
        assert isinstance(cut, EventStreamError), (api, cut)
        assert cut.response["Error"]["Code"] == "serviceUnavailableException"
        assert SAID in cut.response["Error"]["Message"]
    google = ends["gemini"]  # Google's error object as the stream's last chunk: google-genai's ServerError
    assert isinstance(google, genai_errors.ServerError) and (google.code, google.status) == (503, "UNAVAILABLE")
    assert SAID in google.message
    rows = open_store(tmp_path / "ledger.duckdb").events()  # each cut call is in the ledger, as cancelled
    assert len(rows) == 6 and {r.outcome for r in rows} == {"cancelled"}, [(r.route, r.outcome) for r in rows]
    # The operator's log says it once a stream; it held a traceback for each ("Exception in ASGI application").
    said = (tmp_path / "gateway.log").read_text()
    assert "Traceback" not in said and "Exception in ASGI application" not in said, said
    assert said.count("a stream was cut by the end of the shutdown grace") == 6, said


def test_calls_not_yet_answered_when_the_shutdown_grace_ends_get_their_apis_unavailable_error(tmp_path):
    # They got uvicorn's plain-text 500 "Internal Server Error" (and the log a traceback each): a 503 in each API's
    # own shape, saying why, is what every SDK raises as "unavailable, send it again" (Anthropic's is its 529).
    upstream = ScriptedOpenAI([(200, {}, "held")] * 5)
    with serving(upstream, tmp_path) as (proc, sdk):
        oai, claude, gemini, bedrock = sdk.openai, sdk.anthropic, sdk.gemini, sdk.bedrock
        calls = {
            "chat": lambda: oai.chat.completions.create(model="up", messages=HI),
            "chat stream": lambda: oai.chat.completions.create(model="up", messages=HI, stream=True),
            "messages": lambda: claude.messages.create(model="up", max_tokens=16, messages=HI),
            "converse": lambda: bedrock.converse(modelId="up", messages=[{"role": "user", "content": [{"text": "x"}]}]),
            "gemini": lambda: gemini.models.generate_content(model="up", contents="hi"),
        }

        def outcome(call):
            try:
                return call()
            except Exception as exc:  # what each SDK raises is asserted below
                return exc

        with concurrent.futures.ThreadPoolExecutor(len(calls)) as pool:
            futures = {api: pool.submit(outcome, call) for api, call in calls.items()}
            deadline = time.monotonic() + 60
            while upstream.calls < len(calls) and time.monotonic() < deadline:  # each is with the upstream
                time.sleep(0.05)
            assert upstream.calls == len(calls)
            proc.send_signal(signal.SIGTERM)
            ends = {api: future.result(60) for api, future in futures.items()}
        assert proc.wait(60) in (0, -signal.SIGTERM)

    for api in ("chat", "chat stream"):
        cut = ends[api]
        assert isinstance(cut, openai.APIStatusError) and cut.status_code == 503, (api, cut)
        assert SAID_BEFORE in cut.message and cut.body["type"] == "server_error"
    messages = ends["messages"]
    assert isinstance(messages, anthropic.APIStatusError) and messages.status_code == 529, messages
    assert messages.body["error"]["type"] == "overloaded_error" and SAID_BEFORE in messages.body["error"]["message"]
    converse = ends["converse"]
    assert isinstance(converse, ClientError), converse
    assert converse.response["Error"]["Code"] == "ServiceUnavailableException"
    assert SAID_BEFORE in converse.response["Error"]["Message"]
    google = ends["gemini"]
    assert isinstance(google, genai_errors.ServerError) and (google.code, google.status) == (503, "UNAVAILABLE")
    assert SAID_BEFORE in google.message
    rows = open_store(tmp_path / "ledger.duckdb").events()  # each cut call is in the ledger, as cancelled
    assert len(rows) == 5 and {r.outcome for r in rows} == {"cancelled"}, [(r.route, r.outcome) for r in rows]
    said = (tmp_path / "gateway.log").read_text()
    assert "Traceback" not in said and said.count("cut by the end of the shutdown grace before its answer") == 5, said


def test_end_shutdown_cancel_ends_uvicorns_cancellation_and_logs_one_line(caplog):
    # The edge's unavailable answer and a cut stream each ended the cancellation and logged their line themselves.
    async def request() -> int:
        task = asyncio.current_task()
        task.cancel(UVICORN_SHUTDOWN)  # as uvicorn cancels a request its shutdown grace could not wait for
        try:
            await asyncio.sleep(1)
        except asyncio.CancelledError as exc:
            assert shutdown_cancel(exc)
            end_shutdown_cancel("/v1/messages", "answered its API's unavailable error")
        await asyncio.sleep(0)  # no longer cancelled: the request's task goes on to its end
        return task.cancelling()

    with caplog.at_level(logging.WARNING, logger="tokenomy.gateway.hygiene"):
        assert asyncio.run(request()) == 0
    assert [r.getMessage() for r in caplog.records] == ["/v1/messages: answered its API's unavailable error"]


def test_calls_the_shutdown_grace_cut_before_their_answer_are_counted_in_metrics_at_the_status_they_got(ledger_path):
    # The edge's unavailable answer (a 503, Anthropic's 529) was missing from /metrics: a whole call and a request
    # queued for its call slot were not counted at all, and a stream cut before its first event as a 499, its caller
    # gone. Each is now counted at the status its caller got, under its route.
    from tokenomy.config import parse_config
    from tokenomy.emulate.server import ServerThread
    from tokenomy.gateway import metrics
    from tokenomy.gateway.app import create_app

    upstream = ScriptedOpenAI([(200, {}, "held")] * 2)
    routes = {name: {"model": "up"} for name in ("cut-whole", "cut-stream", "cut-queued")}
    config = {
        "gateway": {"max_inflight": 2},
        "models": {"up": {"provider": "openai", "model": "up", "base_url": upstream.url, "price_as": HAIKU}},
        "routes": routes,
    }
    app = create_app(parse_config(config), str(ledger_path))
    server = ServerThread(app, lifespan="on")
    server.server.config.timeout_graceful_shutdown = 1
    url = server.start()
    oai = openai.OpenAI(base_url=url + "/v1", api_key="unused", max_retries=0)
    claude = anthropic.Anthropic(base_url=url, api_key="unused", max_retries=0)
    calls = {
        "cut-whole": lambda: oai.chat.completions.create(model="cut-whole", messages=HI),
        "cut-stream": lambda: oai.chat.completions.create(model="cut-stream", messages=HI, stream=True),
        "cut-queued": lambda: claude.messages.create(model="cut-queued", max_tokens=16, messages=HI),
    }

    def status(call) -> int | None:
        try:
            call()
        except (openai.APIStatusError, anthropic.APIStatusError) as exc:
            return exc.status_code
        return None

    try:
        with concurrent.futures.ThreadPoolExecutor(len(calls)) as pool:
            futures = {name: pool.submit(status, calls[name]) for name in ("cut-whole", "cut-stream")}
            deadline = time.monotonic() + 60
            while upstream.calls < 2 and time.monotonic() < deadline:  # both call slots are with the upstream
                time.sleep(0.05)
            futures["cut-queued"] = pool.submit(status, calls["cut-queued"])
            while app.state.gateway.guard.waiting < 1 and time.monotonic() < deadline:  # waits for a slot
                time.sleep(0.05)
            assert upstream.calls == 2 and app.state.gateway.guard.waiting == 1
            server.stop()  # the grace (1 s) runs out: uvicorn cancels all three, the edge answers each
            got = {name: future.result(60) for name, future in futures.items()}
    finally:
        server.stop()
        upstream.close()
    assert got == {"cut-whole": 503, "cut-stream": 503, "cut-queued": 529}
    counted = metrics.render().decode()
    for name, code in got.items():
        assert f'tokenomy_requests_total{{model="{name}",status="{code}"}} 1.0' in counted, counted
        assert not re.search(rf'tokenomy_requests_total{{model="{name}",status="(?!{code}")', counted), counted


def test_streams_the_shutdown_grace_cut_after_their_first_event_are_counted_at_their_apis_unavailable_status(
    ledger_path,
):
    # A stream cut midway by the end of the shutdown grace ends with its API's unavailable error event, yet /metrics
    # counted it a 499 (client closed request): the gateway closed it, not its caller. It is counted now as the edge
    # counts a call the shutdown cut before its answer began: a 503, Anthropic's 529 (chat completions has its own
    # stream; /v1/messages is calls.call_streamed's).
    from tokenomy.config import parse_config
    from tokenomy.emulate.server import ServerThread
    from tokenomy.gateway import metrics
    from tokenomy.gateway.app import create_app

    upstream = ScriptedOpenAI([(200, {}, "stall")] * 2)
    routes = {name: {"model": "up"} for name in ("midway-chat", "midway-messages")}
    config = {
        "models": {"up": {"provider": "openai", "model": "up", "base_url": upstream.url, "price_as": HAIKU}},
        "routes": routes,
    }
    app = create_app(parse_config(config), str(ledger_path))
    server = ServerThread(app, lifespan="on")
    server.server.config.timeout_graceful_shutdown = 1
    url = server.start()
    oai = openai.OpenAI(base_url=url + "/v1", api_key="unused", max_retries=0)
    claude = anthropic.Anthropic(base_url=url, api_key="unused", max_retries=0)
    try:
        streams = {
            "midway-chat": begun(oai.chat.completions.create(model="midway-chat", messages=HI, stream=True)),
            "midway-messages": begun(
                claude.messages.create(model="midway-messages", max_tokens=16, messages=HI, stream=True)
            ),
        }
        server.stop()  # both wait on the upstream: the grace (1 s) runs out, the gateway cuts them
        ends = {name: ending(events) for name, events in streams.items()}
    finally:
        server.stop()
        upstream.release()
        upstream.close()
    assert type(ends["midway-chat"]) is openai.APIError and SAID in ends["midway-chat"].message
    assert isinstance(ends["midway-messages"], anthropic.APIStatusError), ends["midway-messages"]
    assert ends["midway-messages"].body["error"]["type"] == "overloaded_error"
    counted = metrics.render().decode()
    for name, code in {"midway-chat": 503, "midway-messages": 529}.items():
        assert f'tokenomy_requests_total{{model="{name}",status="{code}"}} 1.0' in counted, counted
        assert not re.search(rf'tokenomy_requests_total{{model="{name}",status="(?!{code}")', counted), counted
