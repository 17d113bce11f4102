"""Secrets never reach callers, logs or the ledger: an upstream that echoes the key it was sent (some proxies put the
Authorization header in their 401's body) and a base_url with a password in it, driven with the official SDKs."""

from __future__ import annotations

import logging

import anthropic
import openai
import pytest

from helpers import free_port
from helpers.echoing_upstream import echoing_upstream
from tokenomy.config import parse_config
from tokenomy.emulate.server import ServerThread
from tokenomy.gateway.app import create_app

OPENAI_KEY = "sk-proj-UpstreamOpenAIKey0123456789"
ODD_KEY = "plainUpstreamKeyWithoutPrefix42"  # a key of no known shape: only the gateway knows it is one
ANTHROPIC_KEY = "sk-ant-api03-UpstreamClaudeKey0123456789"
PASSWORD = "hunter2Proxy"


@pytest.fixture
def echo_upstream():
    with echoing_upstream() as url:
        yield url


def _config(upstream: str, dead_port: int) -> dict:
    return {
        "models": {
            "gpt": {"provider": "openai", "model": "gpt-4o-mini", "base_url": f"{upstream}/v1", "api_key_env": "T_OAI"},
            "odd": {"provider": "openai", "model": "gpt-4o-mini", "base_url": f"{upstream}/v1", "api_key_env": "T_ODD"},
            "claude": {
                "provider": "anthropic",
                "model": "claude-3-5-haiku-20241022",
                "base_url": upstream,
                "api_key_env": "T_ANT",
            },
            "proxied": {
                "provider": "openai",
                "model": "gpt-4o-mini",
                "base_url": f"http://user:{PASSWORD}@127.0.0.1:{dead_port}/v1",
                "api_key_env": "T_OAI",
            },
        }
    }


def test_upstream_keys_and_url_passwords_reach_no_caller_and_no_log(tmp_path, monkeypatch, caplog, echo_upstream):
    monkeypatch.setenv("T_OAI", OPENAI_KEY)
    monkeypatch.setenv("T_ODD", ODD_KEY)
    monkeypatch.setenv("T_ANT", ANTHROPIC_KEY)
    caplog.set_level(logging.DEBUG)
    app = create_app(parse_config(_config(echo_upstream, free_port())), str(tmp_path / "ledger.duckdb"))
    said: list[str] = []
    with ServerThread(app, lifespan="on") as url:
        oai = openai.OpenAI(base_url=f"{url}/v1", api_key="caller", max_retries=0)
        claude = anthropic.Anthropic(base_url=url, api_key="caller", max_retries=0)
        asks = [
            lambda: oai.chat.completions.create(model="gpt", messages=[{"role": "user", "content": "hi"}]),
            lambda: list(
                oai.chat.completions.create(model="gpt", messages=[{"role": "user", "content": "hi"}], stream=True)
            ),
            lambda: oai.chat.completions.create(model="odd", messages=[{"role": "user", "content": "hi"}]),
            lambda: oai.responses.create(model="gpt", input="hi"),
            lambda: claude.messages.create(model="claude", max_tokens=5, messages=[{"role": "user", "content": "hi"}]),
            lambda: oai.chat.completions.create(model="proxied", messages=[{"role": "user", "content": "hi"}]),
        ]
        for ask in asks:
            with pytest.raises(openai.APIError if ask is not asks[4] else anthropic.APIError) as caught:
                ask()
            said.append(str(caught.value))
    assert all("401" in s for s in said[:5]), said  # the upstream's refusal still reaches the caller
    assert "cannot reach" in said[5]
    everything = "\n".join(said) + caplog.text
    for secret in (OPENAI_KEY, ODD_KEY, ANTHROPIC_KEY, PASSWORD):
        assert secret not in everything, secret


def test_a_ledger_url_password_and_header_shapes_are_hidden_but_prose_is_not():
    from tokenomy.errors import ConfigError
    from tokenomy.errors import scrub as scrub_of

    said = str(
        ConfigError(
            "cannot open postgresql://app:s3cretPass@db:5432/ledger; upstream said {'x-api-key': 'abc123xyz789', "
            "'Authorization': 'Bearer abc.def1234567'} at https://g.example/v1?alt=sse&key=AIzaQQQ; send a bearer token"
        )
    )
    for secret in ("s3cretPass", "abc123xyz789", "abc.def1234567", "AIzaQQQ"):
        assert secret not in said, said
    assert "postgresql://app:***@db:5432/ledger" in said
    assert said.endswith("send a bearer token")
    assert scrub_of("falls back to the basic gpt-4o-mini tier") == "falls back to the basic gpt-4o-mini tier"
    assert "dXNlcjpwYXNzMQ==" not in scrub_of("sent Authorization: Basic dXNlcjpwYXNzMQ==")


def test_a_base_url_password_stays_out_of_the_no_usage_warning(tmp_path, caplog):
    from helpers.scripted_openai import ScriptedOpenAI
    from tokenomy.client import Tokenomy
    from tokenomy.messages import ChatRequest
    from tokenomy.providers.registry import ModelSpec

    caplog.set_level(logging.WARNING)
    upstream = ScriptedOpenAI([])
    try:
        upstream.usage = None  # a server that reports no usage: the client warns, naming the server
        base = upstream.url.replace("http://", f"http://user:{PASSWORD}@")
        spec = {"m": ModelSpec(name="m", provider="openai", model="gpt-4o-mini", base_url=base, price_as="gpt-4o-mini")}
        with Tokenomy(str(tmp_path / "ledger.duckdb"), models=spec) as client:
            client.chat(ChatRequest.simple("hi", model="m", max_tokens=5))
            list(client.stream(ChatRequest.simple("hi", model="m", max_tokens=5)))
    finally:
        upstream.close()
    assert "sent no usage" in caplog.text
    assert PASSWORD not in caplog.text and "user:***@127.0.0.1" in caplog.text


def test_a_password_in_a_ledger_url_query_is_hidden():
    from tokenomy.errors import scrub

    said = scrub("ledger postgresql://db/ledger?sslmode=require&password=qu3ryPass: password authentication failed")
    assert "qu3ryPass" not in said and said.endswith("password authentication failed")
