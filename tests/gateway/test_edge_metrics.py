"""/metrics counts the requests the gateway's edge (`hygiene.EdgeHygiene`) ends itself, before any route is read from
them: under model "unknown", at the status their caller got (a 499 for a caller who left).

A real gateway on 127.0.0.1, sent raw HTTP where an SDK cannot send what is tested, and its /metrics read over HTTP.
The counters live as long as the process, so each test compares a series before and after."""

from __future__ import annotations

import logging
import re
import socket
import time

import httpx
import pytest

from tokenomy.config import parse_config
from tokenomy.emulate.server import ServerThread
from tokenomy.gateway import metrics
from tokenomy.gateway.app import create_app

MODELS = {"fast": {"provider": "openai", "model": "fast", "base_url": "http://127.0.0.1:9/v1"}}


def gateway(ledger_path, **edge) -> ServerThread:
    return ServerThread(create_app(parse_config({"models": MODELS, "gateway": edge}), str(ledger_path)), lifespan="on")


def unrouted(url: str, status: int) -> float:
    """The count of requests /metrics has under model "unknown" at `status` (0 before the first)."""
    exposed = httpx.get(url + "/metrics").text
    found = re.search(rf'^tokenomy_requests_total{{model="unknown",status="{status}"}} ([\d.]+)$', exposed, re.M)
    return float(found.group(1)) if found else 0.0


def counted(url: str, status: int, more_than: float) -> float:
    """The count under "unknown" at `status` once it is over `more_than` (or after 10 s): the edge counts a request
    the connection of which the test closed when it notices, not when the test's `close` returns."""
    deadline = time.monotonic() + 10
    while (now := unrouted(url, status)) <= more_than and time.monotonic() < deadline:
        time.sleep(0.05)
    return now


def opened(url: str) -> socket.socket:
    host, port = url.removeprefix("http://").split(":")
    return socket.create_connection((host, int(port)), timeout=10)


@pytest.mark.parametrize("path", ["/v1/chat/completions", "/v1/responses"])  # the fast path, and FastAPI's
def test_a_caller_who_leaves_while_its_body_arrives_is_a_499_in_metrics(path, ledger_path):
    # The edge reads a request's body before any endpoint does; a caller that closed its connection midway was ended
    # there without a trace in /metrics, as no route had admitted it. It is a 499 (client closed request) now.
    with gateway(ledger_path) as url:
        before = unrouted(url, 499)
        with opened(url) as sock:
            sock.sendall(
                f"POST {path} HTTP/1.1\r\nhost: x\r\ncontent-type: application/json\r\n".encode()
                + b'content-length: 100\r\n\r\n{"model": '
            )
        assert counted(url, 499, before) == before + 1


def test_the_edges_own_400_408_and_413_answers_are_counted_in_metrics(ledger_path):
    # The edge answers a body that cannot be sent on (not UTF-8, a lone surrogate), a body over gateway.max_body_bytes
    # (declared or as it arrives) and one that does not arrive in time itself, before any endpoint: none of these
    # answers was in /metrics, which looked as if they never came. (A header value with a line break is the edge's
    # 400 too, but uvicorn's parser refuses it first: no app sees it.)
    with gateway(ledger_path, max_body_bytes=1024, read_timeout_seconds=0.5) as url, httpx.Client(timeout=30) as http:
        before = {status: unrouted(url, status) for status in (400, 408, 413)}
        not_utf8 = http.post(
            url + "/v1/chat/completions",
            headers={"content-type": "application/json"},
            content=b'{"model": "fast", "messages": [{"role": "user", "content": "\xff"}]}',
        )
        surrogate = http.post(
            url + "/v1/messages",
            headers={"content-type": "application/json"},
            content=b'{"model": "fast", "max_tokens": 5, "messages": [{"role": "user", "content": "hi \\ud800"}]}',
        )
        declared = http.post(url + "/v1/responses", json={"model": "fast", "input": "x" * 2000})
        with opened(url) as sock:  # chunked: its size is known only as it arrives
            sock.sendall(
                b"POST /v1/chat/completions HTTP/1.1\r\nhost: x\r\ntransfer-encoding: chunked\r\n\r\n"
                + b"%x\r\n" % 2000
                + b"x" * 2000
                + b"\r\n"
            )
            arrived = sock.recv(65536)
        with opened(url) as sock:
            sock.sendall(b'POST /v1/chat/completions HTTP/1.1\r\nhost: x\r\ncontent-length: 100\r\n\r\n{"model": ')
            late = sock.recv(65536)
        after = {status: unrouted(url, status) for status in (400, 408, 413)}
    assert (not_utf8.status_code, surrogate.status_code, declared.status_code) == (400, 400, 413)
    assert arrived.startswith(b"HTTP/1.1 413"), arrived
    assert late.startswith(b"HTTP/1.1 408"), late
    assert after == {400: before[400] + 2, 408: before[408] + 1, 413: before[413] + 2}, (before, after)


def test_a_chat_request_whose_body_fails_validation_is_counted_in_metrics(ledger_path):
    # A chat completion whose body is no JSON, or no chat request, is answered a 400 by the app's handler for
    # RequestValidationError, before its model is read; every other API's endpoint counts its own such 400 (under
    # "unknown"), chat completions' was in no series.
    with gateway(ledger_path) as url, httpx.Client(timeout=30) as http:
        before = unrouted(url, 400)
        post = url + "/v1/chat/completions"
        not_json = http.post(post, content=b"not json", headers={"content-type": "application/json"})
        no_messages = http.post(post, json={"model": "fast"})
        after = unrouted(url, 400)
    assert (not_json.status_code, no_messages.status_code) == (400, 400)
    assert "messages" in no_messages.json()["error"]["message"]
    assert after == before + 2


@pytest.mark.parametrize(("path", "status"), [("/v1/chat/completions", 503), ("/v1/messages", 529)])
def test_a_request_whose_body_is_still_arriving_when_the_shutdown_grace_ends_gets_its_apis_unavailable_error(
    path, status, ledger_path
):
    # The edge reads the body before any endpoint; uvicorn's cancellation at the end of its shutdown grace reached the
    # caller there as uvicorn's plain-text 500 (and its log a traceback), in no /metrics series. It is answered as a
    # request cut before its answer began: its API's unavailable status (Anthropic's 529), counted under "unknown".
    server = ServerThread(create_app(parse_config({"models": MODELS}), str(ledger_path)), lifespan="on")
    server.server.config.timeout_graceful_shutdown = 1
    faults: list[logging.LogRecord] = []
    catcher = logging.Handler(logging.ERROR)
    catcher.emit = faults.append  # uvicorn logs "Exception in ASGI application" with its traceback
    logging.getLogger("uvicorn.error").addHandler(catcher)
    before = metrics.REGISTRY.get_sample_value("tokenomy_requests_total", {"model": "unknown", "status": str(status)})
    try:
        with server as url, opened(url) as sock:
            sock.sendall(
                f"POST {path} HTTP/1.1\r\nhost: x\r\ncontent-type: application/json\r\n".encode()
                + b'content-length: 100\r\n\r\n{"model": '
            )
            deadline = time.monotonic() + 10
            while not server.server.server_state.tasks and time.monotonic() < deadline:
                time.sleep(0.02)  # until the request runs: the edge is waiting on the rest of its body
            server.server.should_exit = True  # what SIGTERM does; the body never comes, the grace runs out
            answer = sock.recv(65536)
    finally:
        logging.getLogger("uvicorn.error").removeHandler(catcher)
    # The server is gone: its counters are read in this process, where it ran.
    after = metrics.REGISTRY.get_sample_value("tokenomy_requests_total", {"model": "unknown", "status": str(status)})
    assert answer.startswith(f"HTTP/1.1 {status}".encode()), answer
    assert b"the gateway shut down before answering" in answer, answer
    assert (after or 0) == (before or 0) + 1
    tracebacks = [record.getMessage() for record in faults if record.exc_info]  # (uvicorn's own "Cancel 1 running
    assert not tracebacks, tracebacks  # task(s)" line is no traceback: it says what the shutdown did)
