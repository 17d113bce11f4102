"""Upstream answers that break or cannot be read, for providers reached through their SDKs (Gemini, Anthropic's
counting endpoint): the caller gets the upstream's fault in its API's shape (a 502), never a 500 of the gateway's
own, and an answer the provider billed is in the ledger at its estimate. (test_route_faults.py holds the others; it is
at the size a module may have.)"""

from __future__ import annotations

import json

import openai
import pytest

from helpers.cut_off import cut_off_upstream
from tokenomy.config import parse_config
from tokenomy.emulate.server import ServerThread
from tokenomy.gateway.app import create_app
from tokenomy.ledger.store import open_store

ASK = "x" * 400  # ~100 tokens


def test_a_gemini_answer_cut_off_midway_is_recorded_at_its_estimate_not_free(ledger_path):
    # The connection broke halfway through Gemini's JSON answer (a 200 whose Content-Length is longer than the body it
    # sent): Gemini generated, and billed, it. The broken body was read as "cannot reach the Gemini API" and recorded
    # at $0, as if nothing had been sent; Anthropic's provider already tells the two apart. A server that closes
    # before any answer (the request may never have run) stays at $0.
    answer = json.dumps({"candidates": [{"content": {"role": "model", "parts": [{"text": "Hi " * 100}]},
                                         "finishReason": "STOP", "index": 0}],
                         "usageMetadata": {"promptTokenCount": 100, "candidatesTokenCount": 100},
                         "modelVersion": "gemini-2.0-flash"}).encode()
    with cut_off_upstream(answer) as base:
        models = {name: {"provider": "gemini", "model": "gemini-2.0-flash", "base_url": base + path}
                  for name, path in (("cut", ""), ("closed", "/silent"))}
        routes = {name: {"model": name, "retry": {"max_attempts": 1}} for name in models}
        app = create_app(parse_config({"models": models, "routes": routes}), str(ledger_path))
        with ServerThread(app, lifespan="on") as url:
            client = openai.OpenAI(base_url=url + "/v1", api_key="unused", max_retries=0)
            for model in models:
                with pytest.raises(openai.APIStatusError) as failed:
                    client.chat.completions.create(model=model, messages=[{"role": "user", "content": ASK}])
                assert failed.value.status_code == 502
    cut, closed = sorted(open_store(str(ledger_path)).events(), key=lambda e: e.route != "cut")
    assert (cut.route, cut.outcome, cut.input_tokens) == ("cut", "server_error", 100) and cut.cost_usd > 0
    assert (closed.route, closed.outcome, closed.input_tokens, closed.cost_usd) == ("closed", "server_error", 0, 0)


@pytest.mark.parametrize("answer", ["<html>upstream proxy error</html>", "{}", '{"input_tokens": "many"}',
                                    '{"input_tokens": -5}', '{"input_tokens": 3000000000}'])
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
