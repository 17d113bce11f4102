"""/metrics counts the requests the gateway's edge (`hygiene.EdgeHygiene`) ends itself, before any route is read from
them: under model "unknown", at the status their caller got (a 499 for a caller who left).

A real gateway on 127.0.0.1, sent raw HTTP where an SDK cannot send what is tested, and its /metrics read over HTTP.
The counters live as long as the process, so each test compares a series before and after."""

from __future__ import annotations

import re
import socket
import time

import httpx
import pytest

from tokenomy.config import parse_config
from tokenomy.emulate.server import ServerThread
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
            sock.sendall(f"POST {path} HTTP/1.1\r\nhost: x\r\ncontent-type: application/json\r\n".encode()
                         + b"content-length: 100\r\n\r\n{\"model\": ")
        assert counted(url, 499, before) == before + 1
