"""The hot endpoints served directly answer exactly as they do through FastAPI's own middleware and router."""

from __future__ import annotations

import json
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import pytest
from fastapi.testclient import TestClient

from tokenomy.config import parse_config
from tokenomy.emulate.instant_openai import InstantOpenAI
from tokenomy.gateway.app import create_app

HAIKU = "anthropic.claude-3-haiku-20240307-v1:0"
CHAT = "/v1/chat/completions"
MESSAGES = "/v1/messages"
# (path, body bytes, headers): good calls, malformed bodies, unknown models, edge refusals
CASES = [
    (CHAT, json.dumps({"model": "fast", "messages": [{"role": "user", "content": "hi"}], "max_tokens": 4}), {}),
    (CHAT, '{"model": "fast", "messages": []}', {}),
    (CHAT, '{"model": "fast", "messages": [{"role": "wizard", "content": "hi"}]}', {}),
    (CHAT, "not json", {}),
    (CHAT, '{"model": "nope", "messages": [{"role": "user", "content": "hi"}]}', {}),
    (CHAT, '{"model": "fast", "messages": [{"role": "user", "content": [{"type": "audio"}]}]}', {}),
    (CHAT, '{"model": "fast", "messages": [{"role": "user", "content": "hi \\ud800"}]}', {}),
    (CHAT, json.dumps({"model": "fast", "messages": [{"role": "user", "content": "x" * 5000}]}), {}),
    (CHAT, '{"model": "fast", "messages": [{"role": "user", "content": "hi"}]}', {"x-tokenomy-tags": "{oops"}),
    (MESSAGES, json.dumps({"model": "fast", "max_tokens": 4, "messages": [{"role": "user", "content": "hi"}]}), {}),
    (MESSAGES, "[1, 2]", {}),
    (MESSAGES, json.dumps({"model": "nope", "max_tokens": 4, "messages": [{"role": "user", "content": "hi"}]}), {}),
]


def _comparable(response) -> tuple:
    """Status, content type and body with the per-call ids and timings taken out."""
    body = response.json()
    for key in ("id", "created"):
        body.pop(key, None)
    return response.status_code, response.headers["content-type"], body


@contextmanager
def through_fastapi(app) -> Iterator[None]:
    """Inside: the same app with every request through FastAPI's middleware and router."""
    served_directly, app._direct_app = app._direct_app, None
    try:
        yield
    finally:
        app._direct_app = served_directly


@pytest.fixture
def app(tmp_path: Path, monkeypatch):
    monkeypatch.setenv("FAST_KEY", "sk-test")
    with InstantOpenAI() as url:
        config = parse_config({
            "gateway": {"max_body_bytes": 4096},
            "models": {"fast": {"provider": "openai", "model": "fast", "base_url": url, "api_key_env": "FAST_KEY",
                                "price_as": HAIKU}},
        })
        yield create_app(config, str(tmp_path / "ledger.duckdb"))


def test_direct_answers_match_fastapis_own_path(app) -> None:
    with TestClient(app, raise_server_exceptions=False) as client:
        direct = [client.post(path, content=body, headers=headers) for path, body, headers in CASES]
        with through_fastapi(app):
            routed = [client.post(path, content=body, headers=headers) for path, body, headers in CASES]
    assert [r.status_code for r in direct] == [200, 400, 400, 400, 404, 400, 400, 413, 400, 200, 400, 404]
    assert [_comparable(r) for r in direct] == [_comparable(r) for r in routed]


def test_the_hot_endpoints_bypass_fastapis_stack_and_the_rest_does_not(app) -> None:
    with TestClient(app) as client:
        assert client.get("/healthz").status_code == 200  # builds FastAPI's middleware stack

        async def refuse(scope, receive, send) -> None:
            raise AssertionError(f"{scope['method']} {scope['path']} went through FastAPI's stack")

        app.middleware_stack = refuse
        ok = client.post(CHAT, json={"model": "fast", "messages": [{"role": "user", "content": "hi"}]})
        assert ok.status_code == 200 and ok.json()["choices"][0]["message"]["content"] == "ok"
        message = client.post(MESSAGES, json={"model": "fast", "max_tokens": 4,
                                              "messages": [{"role": "user", "content": "hi"}]})
        assert message.status_code == 200 and message.json()["content"][0]["text"] == "ok"
        with pytest.raises(AssertionError, match="GET /healthz"):
            client.get("/healthz")


def test_an_unexpected_error_is_answered_in_openai_shape_and_raised_for_the_log(app, monkeypatch) -> None:
    with TestClient(app, raise_server_exceptions=False) as client:
        async def broken(*args, **kwargs):
            raise RuntimeError("boom")

        monkeypatch.setattr(app.state.gateway.client, "achat", broken)
        answer = client.post(CHAT, json={"model": "fast", "messages": [{"role": "user", "content": "hi"}]})
    assert answer.status_code == 500
    assert answer.json()["error"]["code"] == "internal_error" and "RuntimeError" in answer.json()["error"]["message"]
    with TestClient(app) as client:  # raised on after the answer, as Starlette does, so the server logs it
        monkeypatch.setattr(app.state.gateway.client, "achat", broken)
        with pytest.raises(RuntimeError, match="boom"):
            client.post(CHAT, json={"model": "fast", "messages": [{"role": "user", "content": "hi"}]})


def test_http_exceptions_reach_the_status_code_handler_on_both_paths(app, monkeypatch) -> None:
    from fastapi.responses import JSONResponse
    from starlette.exceptions import HTTPException

    async def teapot(request, exc):
        return JSONResponse({"teapot": exc.detail}, status_code=exc.status_code)

    async def refuse(*args, **kwargs):
        raise HTTPException(418, "short and stout")

    app.add_exception_handler(418, teapot)
    body = {"model": "fast", "messages": [{"role": "user", "content": "hi"}]}
    with TestClient(app) as client:
        monkeypatch.setattr(app.state.gateway.client, "achat", refuse)
        direct = client.post(CHAT, json=body)
        with through_fastapi(app):
            routed = client.post(CHAT, json=body)
    assert direct.status_code == routed.status_code == 418
    assert direct.json() == routed.json() == {"teapot": "short and stout"}
