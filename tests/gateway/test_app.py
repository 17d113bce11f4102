"""The gateway through the official openai client: chats, streams, keys, budgets, limits, overload, fuzzing."""

from __future__ import annotations

import concurrent.futures
import json
import os
import re
import subprocess
import sys
import time
from decimal import Decimal
from pathlib import Path

import httpx
import openai
import pytest

from helpers import free_port, require, wait_for_port
from tokenomy.caching.placement import input_bound
from tokenomy.config import parse_config
from tokenomy.emulate.instant_openai import InstantOpenAI
from tokenomy.emulate.server import ServerThread
from tokenomy.gateway.app import create_app
from tokenomy.gateway.keys import KeyStore
from tokenomy.ledger.store import open_store
from tokenomy.messages import ChatRequest, Message

HAIKU = "anthropic.claude-3-haiku-20240307-v1:0"  # $0.25 in / $1.25 out per 1M tokens
TOKENOMY = str(Path(sys.executable).with_name("tokenomy"))


def gateway(config: dict, ledger: Path) -> ServerThread:
    return ServerThread(create_app(parse_config(config), str(ledger)), lifespan="on")


def upstream_config(url: str, **extra) -> dict:
    return {
        "models": {
            "fast": {
                "provider": "openai",
                "model": "fast",
                "base_url": url,
                "api_key_env": "FAST_KEY",
                "price_as": HAIKU,
            }
        },
        **extra,
    }


def local_successes(metrics: str) -> float:
    found = re.search(r'^tokenomy_requests_total\{model="local",status="200"\} ([\d.]+)$', metrics, re.M)
    return float(found.group(1)) if found else 0.0


@pytest.mark.slow
def test_openai_client_chats_and_streams_on_the_local_model(ledger_path):
    with gateway({}, ledger_path) as url:
        before = local_successes(httpx.get(url + "/metrics").text)  # the counters live as long as the process
        client = openai.OpenAI(base_url=url + "/v1", api_key="unused")
        headers = {"x-tokenomy-task": "greet", "x-tokenomy-tags": "team=web,feature=hello"}
        reply = client.chat.completions.create(
            model="local", messages=[{"role": "user", "content": "Say hi."}], max_tokens=5, extra_headers=headers
        )
        assert reply.choices[0].message.content and reply.usage.completion_tokens > 0
        stream = client.chat.completions.create(
            model="local",
            messages=[{"role": "system", "content": "Be brief."}, {"role": "user", "content": "Say hi."}],
            max_tokens=5,
            stream=True,
            stream_options={"include_usage": True},
        )
        chunks = list(stream)
        text = "".join(c.choices[0].delta.content or "" for c in chunks if c.choices)
        assert text and chunks[-1].usage.completion_tokens > 0
        assert {m.id for m in client.models.list()} >= {"local"}
        assert httpx.get(url + "/healthz").json()["status"] == "ok"
        assert local_successes(httpx.get(url + "/metrics").text) == before + 2
    events = open_store(ledger_path).events()
    assert len(events) == 2
    tagged = [e for e in events if e.task == "greet"]
    assert tagged and tagged[0].tags == {"team": "web", "feature": "hello"} and tagged[0].route == "local"


def test_errors_have_openais_shape(ledger_path):
    with InstantOpenAI() as upstream, gateway(upstream_config(upstream), ledger_path) as url:
        client = openai.OpenAI(base_url=url + "/v1", api_key="unused")
        with pytest.raises(openai.NotFoundError) as missing:
            client.chat.completions.create(model="nope", messages=[{"role": "user", "content": "x"}])
        assert missing.value.body["code"] == "model_not_found"
        bad = httpx.post(url + "/v1/chat/completions", json={"model": "fast", "messages": []})
        assert bad.status_code == 400 and bad.json()["error"]["type"] == "invalid_request_error"
        bad = httpx.post(
            url + "/v1/chat/completions",
            json={"model": "fast", "messages": [{"role": "user", "content": "x"}], "temperature": 9},
        )
        assert bad.status_code == 400 and "temperature" in bad.json()["error"]["message"]
        # A body that is not JSON used to be answered "1: JSON decode error" with param "1".
        bad = httpx.post(
            url + "/v1/chat/completions", content=b"{model: fast", headers={"content-type": "application/json"}
        )
        assert bad.status_code == 400 and bad.json()["error"]["param"] is None
        assert "request body is not valid JSON" in bad.json()["error"]["message"]
        ok = client.chat.completions.create(
            model="fast", messages=[{"role": "user", "content": "x" * 400}], max_tokens=10
        )
        assert ok.usage.prompt_tokens == 100 and ok.usage.completion_tokens == 10


@pytest.mark.parametrize(
    "fields, param",
    [
        ({"messages": [{"role": "user", "content": [{"type": "text", "text": "hi"}, 1]}]}, "messages[0].content[1]"),
        (
            {"messages": [{"role": "system", "content": [[]]}, {"role": "user", "content": "x"}]},
            "messages[0].content[0]",
        ),
        (
            {
                "messages": [
                    {"role": "user", "content": "x"},
                    {"role": "assistant", "tool_calls": [1]},
                    {"role": "user", "content": "y"},
                ]
            },
            "messages[1].tool_calls[0]",
        ),
        ({"messages": [{"role": "user", "content": "x"}], "tools": ["get_weather"]}, "tools[0]"),
    ],
)
def test_a_content_part_tool_call_or_tool_that_is_no_object_is_a_400_naming_its_place(ledger_path, fields, param):
    # The schema copied every part, call and tool as a dict only to refuse what is none (as
    # `messages.0.content.str: Input should be a valid string` for a part); the mapping reads them and names the place.
    with InstantOpenAI() as upstream, gateway(upstream_config(upstream), ledger_path) as url:
        bad = httpx.post(url + "/v1/chat/completions", json={"model": "fast", **fields})
        assert bad.status_code == 400 and bad.json()["error"]["param"] == param
        assert bad.json()["error"]["type"] == "invalid_request_error"


def test_paths_and_methods_the_gateway_does_not_serve_are_openai_errors_naming_what_it_serves(ledger_path):
    # These were FastAPI's {"detail": "Not Found"}: not OpenAI's shape (the SDK's error had no message or code)
    # and no word on what the gateway does serve.
    with gateway({}, ledger_path) as url:
        client = openai.OpenAI(base_url=url + "/v1", api_key="unused", max_retries=0)
        for call in (
            lambda: client.images.generate(model="local", prompt="hi"),
            lambda: client.completions.create(model="local", prompt="hi"),
        ):
            with pytest.raises(openai.NotFoundError) as missing:
                call()
            assert missing.value.code == "unknown_url" and "POST /v1/chat/completions" in missing.value.message
        wrong_base = openai.OpenAI(base_url=url, api_key="unused", max_retries=0)  # without /v1: a common slip
        with pytest.raises(openai.NotFoundError) as missing:
            wrong_base.chat.completions.create(model="local", messages=[{"role": "user", "content": "x"}])
        assert "POST /chat/completions" in missing.value.message and "base_url" in missing.value.message
        wrong_method = httpx.get(url + "/v1/chat/completions")
        assert wrong_method.status_code == 405 and wrong_method.headers["allow"] == "POST"
        assert wrong_method.json()["error"]["code"] == "method_not_allowed"
        assert "send POST" in wrong_method.json()["error"]["message"]
        assert httpx.get(url + "/dashboard/static/nope.js").json() == {"detail": "no dashboard file 'nope.js'"}
    assert open_store(ledger_path).events() == []


def test_models_retrieve_answers_for_each_name_models_list_gives(ledger_path):
    # client.models.retrieve (GET /v1/models/{model}) was a 404 for every name, the ones /v1/models lists too.
    config = upstream_config("http://unused", routes={"team/chat": {"model": "fast"}})
    with gateway(config, ledger_path) as url:
        client = openai.OpenAI(base_url=url + "/v1", api_key="unused", max_retries=0)
        listed = [m.id for m in client.models.list()]
        assert [client.models.retrieve(name).id for name in listed] == listed == ["fast", "local", "team/chat"]
        with pytest.raises(openai.NotFoundError) as missing:
            client.models.retrieve("nope")
        assert missing.value.code == "model_not_found" and missing.value.param == "model"


def test_each_answer_names_its_ledger_request_id_in_x_request_id_and_its_id(ledger_path):
    # The answer's id and the ledger's request_id were two unrelated ids, and no x-request-id header came back
    # (the SDK's `_request_id` was None): a caller could not find its call in the ledger.
    with InstantOpenAI() as upstream, gateway(upstream_config(upstream), ledger_path) as url:
        client = openai.OpenAI(base_url=url + "/v1", api_key="unused", max_retries=0)
        ask = {"model": "fast", "messages": [{"role": "user", "content": "x"}], "max_tokens": 5}
        raw = client.chat.completions.with_raw_response.create(**ask)
        reply = raw.parse()
        streamed = client.chat.completions.with_raw_response.create(**ask, stream=True)
        chunks = list(streamed.parse())
    ids = [raw.headers["x-request-id"], streamed.headers["x-request-id"]]
    assert reply._request_id == ids[0] and reply.id == f"chatcmpl-{ids[0]}"
    assert {c.id for c in chunks} == {f"chatcmpl-{ids[1]}"} and ids[0] != ids[1]
    assert sorted(e.request_id for e in open_store(ledger_path).events()) == sorted(ids)


def test_only_a_model_charged_at_zero_is_warned_about(ledger_path, caplog):
    # "fast" is unknown to the catalog but priced as Haiku: its id is probed, never charged, so no
    # "recording its usage at $0" warning; a model with no price_as is charged at $0 and warned about.
    config = upstream_config("http://unused")
    config["models"]["bare"] = {**config["models"]["fast"], "model": "bare"}
    del config["models"]["bare"]["price_as"]
    with InstantOpenAI() as upstream:
        for spec in config["models"].values():
            spec["base_url"] = upstream
        with caplog.at_level("WARNING", logger="tokenomy.gateway.pricing"), gateway(config, ledger_path) as url:
            client = openai.OpenAI(base_url=url + "/v1", api_key="unused")
            for model in ("fast", "bare"):
                client.chat.completions.create(model=model, messages=[{"role": "user", "content": "x"}], max_tokens=5)
    warned = [r.getMessage() for r in caplog.records if "has no price" in r.getMessage()]
    assert len(warned) == 1 and "'bare'" in warned[0]
    costs = {e.model: e.cost_usd for e in open_store(ledger_path).events()}
    assert costs["fast"] > 0 and costs["bare"] == 0


def test_keys_are_required_hashed_and_revocable(ledger_path):
    store = KeyStore(open_store(ledger_path))
    secret, key = store.create(budget_usd=Decimal("5"), period="month", rpm=100, name="ci")
    rows = open_store(ledger_path).query("SELECT * FROM gateway_keys")
    assert secret not in json.dumps(rows, default=str)  # only the hash is stored
    with InstantOpenAI() as upstream, gateway(upstream_config(upstream, auth=True), ledger_path) as url:
        anonymous = openai.OpenAI(base_url=url + "/v1", api_key="tk-wrong")
        with pytest.raises(openai.AuthenticationError) as denied:
            anonymous.chat.completions.create(model="fast", messages=[{"role": "user", "content": "x"}])
        assert denied.value.body["code"] == "invalid_api_key"
        client = openai.OpenAI(base_url=url + "/v1", api_key=secret)
        client.chat.completions.create(model="fast", messages=[{"role": "user", "content": "x"}], max_tokens=5)
    [event] = open_store(ledger_path).events()
    assert event.key_id == key.key_id and event.cost_usd > 0
    assert store.revoke(key.key_id) and store.lookup(secret).revoked


def test_budget_holds_under_fifty_concurrent_requests(ledger_path):
    store = KeyStore(open_store(ledger_path))
    # Each request: 400 chars ≈ 100 prompt tokens, 200 output tokens → $0.000275 at Haiku prices.
    per_request = Decimal(100) * Decimal("0.25") / 1_000_000 + Decimal(200) * Decimal("1.25") / 1_000_000
    budget = per_request * 10 + per_request / 2  # room for ten and a half requests
    secret, key = store.create(budget_usd=budget, period="month")
    with InstantOpenAI(delay_s=0.05) as upstream, gateway(upstream_config(upstream, auth=True), ledger_path) as url:
        client = openai.OpenAI(base_url=url + "/v1", api_key=secret, max_retries=0)

        def one(_):
            try:
                client.chat.completions.create(
                    model="fast", messages=[{"role": "user", "content": "y" * 400}], max_tokens=200
                )
                return 200
            except openai.RateLimitError as exc:
                assert exc.body["code"] == "budget_exceeded" and "Budget exhausted" in exc.body["message"]
                return 429

        with concurrent.futures.ThreadPoolExecutor(50) as pool:
            statuses = list(pool.map(one, range(50)))
    spent = sum(e.cost_usd for e in open_store(ledger_path).events() if e.key_id == key.key_id)
    assert statuses.count(200) == 10 and statuses.count(429) == 40
    assert spent <= budget + per_request
    assert spent == per_request * 10


def test_team_budget_is_the_weaker_limit(ledger_path):
    store = KeyStore(open_store(ledger_path))
    secret, _ = store.create(budget_usd=Decimal("100"), period="month", team="research")
    store.set_team_budget("research", Decimal("0.0006"), "month")  # two requests' worth
    with InstantOpenAI() as upstream, gateway(upstream_config(upstream, auth=True), ledger_path) as url:
        client = openai.OpenAI(base_url=url + "/v1", api_key=secret, max_retries=0)
        results = []
        for _ in range(4):
            try:
                client.chat.completions.create(
                    model="fast", messages=[{"role": "user", "content": "y" * 400}], max_tokens=200
                )
                results.append(200)
            except openai.RateLimitError as exc:
                results.append("team" if "for this team" in exc.body["message"] else "key")
    assert results == [200, 200, "team", "team"]


def test_a_budget_reserves_a_requests_images_and_tool_definitions_not_only_its_words(ledger_path):
    """Before, the reservation counted the messages' text only: an agent's tool definitions and a screenshot were
    free up front, so a key with $0.0001 left could start any number of such requests and overspend."""
    import base64

    from tokenomy.caching.placement import IMAGE_TOKENS

    store = KeyStore(open_store(ledger_path))
    secret, _ = store.create(budget_usd=Decimal("0.0001"), period="month")  # 400 Haiku input tokens' worth
    image = "data:image/png;base64," + base64.b64encode(b"\x89PNG\r\n\x1a\n" + bytes(64)).decode()
    tool = {
        "type": "function",
        "function": {"name": "lookup", "description": "d" * 2400, "parameters": {"type": "object", "properties": {}}},
    }
    with InstantOpenAI() as upstream, gateway(upstream_config(upstream, auth=True), ledger_path) as url:
        client = openai.OpenAI(base_url=url + "/v1", api_key=secret, max_retries=0)

        def ask(content, **extra):
            return client.chat.completions.create(
                model="fast", max_tokens=5, messages=[{"role": "user", "content": content}], **extra
            )

        with pytest.raises(openai.RateLimitError) as pictured:
            ask([{"type": "text", "text": "What is it?"}, {"type": "image_url", "image_url": {"url": image}}])
        with pytest.raises(openai.RateLimitError) as tooled:
            ask("What is it?", tools=[tool])
        assert ask("What is it?").choices[0].message.content  # the words alone fit
    words = input_bound(ChatRequest([Message("user", "What is it?")]))[0]  # the words' upper bound, and their framing
    worst = Decimal(IMAGE_TOKENS + words) * Decimal("0.25") / 1_000_000 + Decimal(5) * Decimal("1.25") / 1_000_000
    assert f"could cost up to ${worst:.6f}" in pictured.value.body["message"]
    assert "Budget exhausted" in tooled.value.body["message"]


def test_rate_limit_per_key(ledger_path):
    """A key over its rpm gets a 429 saying when it may send again (Retry-After, which the SDKs wait before a retry;
    without one they retried at once, three times, each refused)."""
    store = KeyStore(open_store(ledger_path))
    secret, _ = store.create(rpm=3)
    with InstantOpenAI() as upstream, gateway(upstream_config(upstream, auth=True), ledger_path) as url:
        client = openai.OpenAI(base_url=url + "/v1", api_key=secret, max_retries=0)
        codes, waits = [], []
        for _ in range(5):
            try:
                client.chat.completions.create(model="fast", messages=[{"role": "user", "content": "x"}], max_tokens=2)
                codes.append(200)
            except openai.RateLimitError as exc:
                codes.append(exc.body["code"])
                waits.append(int(exc.response.headers["retry-after"]))
                assert f"the next may be sent in {waits[-1]} s" in exc.body["message"]
    assert codes == [200, 200, 200, "rate_limit_exceeded", "rate_limit_exceeded"]
    assert all(50 <= wait <= 60 for wait in waits)


def test_overload_is_refused_fast(ledger_path):
    from helpers.scripted_openai import ScriptedOpenAI

    # The upstream answers nothing until the refusals are all back: a request refused only after waiting for an
    # upstream call would never come back (not a measured time, which a loaded machine would stretch).
    upstream = ScriptedOpenAI([(200, {})] + [(200, {}, "held")] * 12)
    config = upstream_config(upstream.url, gateway={"max_inflight": 2, "max_queue": 2})
    try:
        # One shared client: httpx.post builds a new client (and TLS context, ~40 ms) per call.
        with (
            gateway(config, ledger_path) as url,
            httpx.Client(timeout=60, limits=httpx.Limits(max_connections=20)) as http,
        ):

            def one(_):
                return http.post(
                    url + "/v1/chat/completions",
                    json={"model": "fast", "messages": [{"role": "user", "content": "x"}], "max_tokens": 2},
                ).status_code

            assert one(0) == 200  # the chat path is warm (imports, the ledger's first write)
            with concurrent.futures.ThreadPoolExecutor(12) as pool:
                calls = [pool.submit(one, i) for i in range(12)]
                deadline = time.monotonic() + 30  # (a "held" answer waits 60 s at most)
                while sum(c.done() for c in calls) < 8 and time.monotonic() < deadline:
                    time.sleep(0.01)
                refused = [c.result() for c in calls if c.done()]  # while no upstream call had answered
                upstream.release()
                results = [c.result() for c in calls]
    finally:
        upstream.release()
        upstream.close()
    # 2 running and 2 queued; the other 8 refused at once.
    assert refused == [503] * 8 and sorted(results) == [200] * 4 + [503] * 8
    assert upstream.calls == 1 + 4


@pytest.mark.redis
def test_limits_hold_across_two_gateway_processes(redis_url, tmp_path):
    ledger = tmp_path / "ledger.duckdb"
    store = KeyStore(open_store(ledger))
    # Each request is reserved at its prompt's upper bound (`input_bound`: 108 tokens of "y" * 400, its framing too).
    prompt = input_bound(ChatRequest([Message("user", "y" * 400)]))[0]
    reserved = Decimal(prompt) * Decimal("0.25") / 1_000_000 + Decimal(200) * Decimal("1.25") / 1_000_000
    secret, key = store.create(budget_usd=reserved * 6, period="month")
    limited, _ = store.create(rpm=5)
    with InstantOpenAI(delay_s=0.02) as upstream:
        config = tmp_path / "tokenomy.yaml"
        config.write_text(json.dumps(upstream_config(upstream, auth=True, redis_url=redis_url)))
        ports = [free_port(), free_port()]
        env = {**os.environ, "FAST_KEY": "x"}
        procs = [
            subprocess.Popen(
                [TOKENOMY, "serve", "--config", str(config), "--port", str(port), "--ledger", str(ledger)],
                env=env,
                stderr=subprocess.PIPE,
            )
            for port in ports
        ]
        try:
            for port, proc in zip(ports, procs, strict=True):
                wait_for_port(port, 60, proc)

            def one(i):
                client = openai.OpenAI(base_url=f"http://127.0.0.1:{ports[i % 2]}/v1", api_key=secret, max_retries=0)
                try:
                    client.chat.completions.create(
                        model="fast", messages=[{"role": "user", "content": "y" * 400}], max_tokens=200
                    )
                    return 200
                except openai.RateLimitError:
                    return 429

            with concurrent.futures.ThreadPoolExecutor(20) as pool:
                statuses = list(pool.map(one, range(20)))

            def limited_one(i):
                reply = httpx.post(
                    f"http://127.0.0.1:{ports[i % 2]}/v1/chat/completions",
                    timeout=30,
                    headers={"authorization": f"Bearer {limited}"},
                    json={"model": "fast", "messages": [{"role": "user", "content": "x"}], "max_tokens": 2},
                )
                return reply.status_code

            with concurrent.futures.ThreadPoolExecutor(10) as pool:
                rpm_statuses = list(pool.map(limited_one, range(10)))
        finally:
            for proc in procs:
                proc.terminate()
            for proc in procs:
                proc.wait(30)
    assert statuses.count(200) == 6  # one shared budget, not six per process
    assert sorted(rpm_statuses) == [200] * 5 + [429] * 5  # one shared per-minute window across processes
    events = [e for e in open_store(ledger).events() if e.key_id == key.key_id]
    assert len(events) == 6  # both processes flushed their ledger on SIGTERM


@pytest.mark.slow
def test_schema_fuzzing_finds_no_server_errors(ledger_path, tmp_path):
    schemathesis = str(Path(sys.executable).with_name("schemathesis"))
    with InstantOpenAI() as upstream, gateway(upstream_config(upstream), ledger_path) as url:
        result = subprocess.run(
            [
                schemathesis,
                "run",
                url + "/openapi.json",
                "--checks",
                "not_a_server_error",
                "--max-examples",
                "40",
                "--seed",
                "1",
                "--workers",
                "1",
            ],
            capture_output=True,
            text=True,
            timeout=600,
            cwd=tmp_path,
        )  # its cache dir
    assert result.returncode == 0, result.stdout[-3000:]
    import re

    counts = re.search(r"(\d+) generated, (\d+) passed", result.stdout)
    assert counts and int(counts.group(1)) >= 50, result.stdout[-2000:]  # many generated requests, no 5xx
    assert counts.group(1) == counts.group(2), result.stdout[-2000:]
    ok = [e for e in open_store(ledger_path).events() if e.outcome == "ok"]
    assert ok, "the fuzzer never reached a real completion (the OpenAPI example names a served model)"


def test_no_page_the_gateway_serves_loads_anything_from_elsewhere(ledger_path):
    """FastAPI's /docs and /redoc loaded Swagger UI and ReDoc from cdn.jsdelivr.net and fonts.googleapis.com: blank
    pages with no network, and another site's scripts on the origin where the dashboard keeps its virtual key."""
    with ServerThread(create_app(None, str(ledger_path)), lifespan="on") as url:
        described = httpx.get(url + "/openapi.json").json()["paths"]
        paths = ["/docs", "/redoc", "/dashboard", *(p for p, ops in described.items() if "get" in ops and "{" not in p)]
        pages = {path: httpx.get(url + path, timeout=60) for path in paths}
        gone = {path: httpx.get(url + path) for path in ("/docs", "/redoc")}
    html = {path: r.text for path, r in pages.items() if "html" in r.headers.get("content-type", "")}
    assert {"/dashboard", "/dashboard/", "/dashboard/review"} <= set(html), set(html)
    elsewhere = {path for path, text in html.items() if re.search(r"""\b(src|href)\s*=\s*["']?(https?:)?//""", text)}
    assert elsewhere == set(), elsewhere
    for path, answer in gone.items():
        assert answer.status_code == 404 and "GET /openapi.json" in answer.json()["error"]["message"], path


def test_the_openapi_document_still_describes_the_request_body(ledger_path):
    """The body is parsed from bytes by the handler (not by FastAPI), so its schema is declared by hand: the
    document must still name every typed field, with the example naming a model this gateway serves."""
    with InstantOpenAI() as upstream, gateway(upstream_config(upstream), ledger_path) as url:
        doc = httpx.get(url + "/openapi.json").json()
    body = doc["paths"]["/v1/chat/completions"]["post"]["requestBody"]
    ref = body["content"]["application/json"]["schema"]["$ref"]
    schema = doc["components"]["schemas"][ref.rsplit("/", 1)[-1]]
    assert body["required"] and {"model", "messages", "tools", "response_format"} <= set(schema["properties"])
    assert schema["example"]["model"] == "fast" and "messages" in schema["required"]
    message_ref = schema["properties"]["messages"]["items"]["$ref"]
    assert message_ref.rsplit("/", 1)[-1] in doc["components"]["schemas"]  # nested models resolve too


def test_model_listings_need_a_valid_key_when_auth_is_on(ledger_path):
    # GET /v1/models and /v1/models/{model} answered anyone with auth on, so a caller without a key learned every
    # route and model name; OpenAI's API requires a key there too. Each SDK gets its own API's 401.
    import anthropic

    secret, _ = KeyStore(open_store(ledger_path)).create(budget_usd=Decimal("5"), period="month", name="ci")
    with gateway(
        upstream_config("http://unused", auth=True, routes={"team/chat": {"model": "fast"}}), ledger_path
    ) as url:
        stranger = openai.OpenAI(base_url=url + "/v1", api_key="tk-wrong", max_retries=0)
        for listing in (lambda: list(stranger.models.list()), lambda: stranger.models.retrieve("fast")):
            with pytest.raises(openai.AuthenticationError) as denied:
                listing()
            assert denied.value.code == "invalid_api_key"
        for path in ("/v1/models", "/v1/models/fast", "/openai/models"):  # no key at all (and Azure's path)
            anonymous = httpx.get(url + path)
            assert anonymous.status_code == 401 and anonymous.json()["error"]["code"] == "invalid_api_key"
        claude = anthropic.Anthropic(base_url=url, api_key="tk-wrong", max_retries=0)
        with pytest.raises(anthropic.AuthenticationError) as denied:
            list(claude.models.list())
        assert denied.value.body["error"]["type"] == "authentication_error"
        assert (
            "x-api-key"
            in httpx.get(url + "/v1/models", headers={"anthropic-version": "2023-06-01"}).json()["error"]["message"]
        )
        client = openai.OpenAI(base_url=url + "/v1", api_key=secret, max_retries=0)
        assert [m.id for m in client.models.list()] == ["fast", "local", "team/chat"]
        assert client.models.retrieve("team/chat").id == "team/chat"
        assert [m.id for m in anthropic.Anthropic(base_url=url, api_key=secret).models.list()] == [
            "fast",
            "local",
            "team/chat",
        ]
        # what operators and probes read stays open
        assert httpx.get(url + "/healthz").json()["status"] == "ok"
        assert httpx.get(url + "/metrics").status_code == 200


def test_the_anthropic_sdk_reads_the_model_listing_in_anthropics_shape(ledger_path):
    # The listing answered the anthropic SDK in OpenAI's shape: `.id` worked, but display_name, created_at and the
    # page's first_id / last_id were missing (None), and an unknown model's 404 was OpenAI's error body.
    import anthropic

    with gateway(upstream_config("http://unused", routes={"team/chat": {"model": "fast"}}), ledger_path) as url:
        claude = anthropic.Anthropic(base_url=url, api_key="unused", max_retries=0)
        page = claude.models.list()
        assert [(m.type, m.id, m.display_name) for m in page.data] == [
            ("model", n, n) for n in ("fast", "local", "team/chat")
        ]
        assert page.first_id == "fast" and page.last_id == "team/chat" and page.has_more is False
        assert page.data[0].created_at.tzinfo is not None
        one = claude.models.retrieve("team/chat")
        assert (one.type, one.id) == ("model", "team/chat")
        with pytest.raises(anthropic.NotFoundError) as missing:
            claude.models.retrieve("nope")
        assert missing.value.body["error"]["type"] == "not_found_error"
        assert "GET /v1/models" in missing.value.body["error"]["message"]
        # the openai SDK still reads OpenAI's shape
        assert openai.OpenAI(base_url=url + "/v1", api_key="unused").models.list().data[0].object == "model"


def test_healthz_says_when_answers_are_not_crash_safe_because_the_journal_cannot_be_written(ledger_path):
    # A full disk does not stop answers (the provider has answered), but until the journal takes writes again a crash
    # loses what is not yet in the database: an operator's probe must be able to see that window.
    with InstantOpenAI() as upstream:
        app = create_app(parse_config(upstream_config(upstream)), str(ledger_path))
        with ServerThread(app, lifespan="on") as url:
            client = openai.OpenAI(base_url=url + "/v1", api_key="unused", max_retries=0)
            ask = {"model": "fast", "messages": [{"role": "user", "content": "hi"}], "max_tokens": 3}
            health = httpx.get(url + "/healthz")
            assert (health.status_code, health.json()["status"], health.json()["journal"]) == (200, "ok", "ok")
            segment = app.state.gateway.journal._current
            write = segment.write

            def disk_full(data: bytes) -> None:
                raise OSError(28, "No space left on device")

            segment.write = disk_full
            client.chat.completions.create(**ask)  # still answered
            health = httpx.get(url + "/healthz")
            assert health.status_code == 200
            assert (health.json()["status"], health.json()["journal"]) == ("degraded", "failing")
            segment.write = write  # the disk has room again
            client.chat.completions.create(**ask)
            assert httpx.get(url + "/healthz").json()["journal"] == "ok"


def requests_at(url: str, model: str, status: int) -> float:
    """The count /metrics has of requests for `model` answered `status` (0 before the first)."""
    exposed = httpx.get(url + "/metrics").text
    found = re.search(rf'^tokenomy_requests_total{{model="{model}",status="{status}"}} ([\d.]+)$', exposed, re.M)
    return float(found.group(1)) if found else 0.0


def test_an_unexpected_error_answered_by_the_apps_handler_is_counted_in_metrics(ledger_path, monkeypatch):
    # The handler for Exception answers a bug with a 500 in the request's API's shape; that answer was in no /metrics
    # series (its endpoint counts only what it returns), as if the request never came. On the direct path and
    # Starlette's, it is counted under the route admission named.
    import boto3
    from botocore.config import Config
    from botocore.exceptions import ClientError

    async def broken(*args, **kwargs):
        raise RuntimeError("boom")

    app = create_app(parse_config(upstream_config("http://127.0.0.1:9/v1")), str(ledger_path))
    with ServerThread(app, lifespan="on") as url:
        monkeypatch.setattr(app.state.gateway.client, "achat", broken)
        before = requests_at(url, "fast", 500)
        chat = openai.OpenAI(base_url=url + "/v1", api_key="unused", max_retries=0)
        with pytest.raises(openai.InternalServerError, match="RuntimeError"):
            chat.chat.completions.create(model="fast", messages=[{"role": "user", "content": "hi"}])
        bedrock = boto3.client(
            "bedrock-runtime",
            endpoint_url=url,
            region_name="us-east-1",
            aws_access_key_id="x",
            aws_secret_access_key="x",
            config=Config(retries={"total_max_attempts": 1}),
        )
        with pytest.raises(ClientError, match="RuntimeError"):
            bedrock.converse(modelId="fast", messages=[{"role": "user", "content": [{"text": "hi"}]}])
        after = requests_at(url, "fast", 500)
    assert after == before + 2


def seconds_at(url: str, model: str) -> float:
    """The total time /metrics has of requests for `model` (0 before the first)."""
    exposed = httpx.get(url + "/metrics").text
    found = re.search(rf'^tokenomy_request_seconds_sum{{model="{model}"}} ([\d.e+-]+)$', exposed, re.M)
    return float(found.group(1)) if found else 0.0


def test_an_unexpected_errors_time_in_metrics_runs_from_the_request_not_from_its_handler(ledger_path, monkeypatch):
    # The handler's answer was timed from the handler itself, so a call that failed after 0.3 s showed as ~0 s.
    import asyncio

    async def broken_late(*args, **kwargs):
        await asyncio.sleep(0.3)
        raise RuntimeError("boom")

    app = create_app(parse_config(upstream_config("http://127.0.0.1:9/v1")), str(ledger_path))
    with ServerThread(app, lifespan="on") as url:
        monkeypatch.setattr(app.state.gateway.client, "achat", broken_late)
        before = seconds_at(url, "fast")
        chat = openai.OpenAI(base_url=url + "/v1", api_key="unused", max_retries=0)
        with pytest.raises(openai.InternalServerError, match="RuntimeError"):
            chat.chat.completions.create(model="fast", messages=[{"role": "user", "content": "hi"}])
        assert seconds_at(url, "fast") - before >= 0.3


def test_a_503_for_a_limits_store_that_is_down_is_counted_in_metrics(ledger_path):
    # Redis down: the handler for RedisError answers a retryable 503; it was in no /metrics series either. The key's
    # rate limit is checked once the route is known: it is counted under its model.
    url = f"redis://127.0.0.1:{free_port()}/0"  # nothing listens there
    secret, _ = KeyStore(open_store(str(ledger_path))).create(budget_usd=Decimal("1"), period="month", rpm=10)
    with gateway({"auth": True, "redis_url": url}, ledger_path) as base:
        before = requests_at(base, "local", 503)
        chat = openai.OpenAI(base_url=base + "/v1", api_key=secret, max_retries=0)
        with pytest.raises(openai.InternalServerError) as down:
            chat.chat.completions.create(model="local", max_tokens=2, messages=[{"role": "user", "content": "x"}])
        after = requests_at(base, "local", 503)
    assert down.value.status_code == 503 and down.value.body["code"] == "limits_unavailable"
    assert after == before + 1


def test_a_redis_that_answers_but_refuses_the_limits_check_is_not_said_to_be_unreachable(ledger_path):
    # A Redis out of memory (maxmemory reached, noeviction) answers every write with an error: the call is refused
    # as when Redis is down, but the message said "cannot reach Redis", sending the operator to the network.
    import shutil

    server = shutil.which("redis-server")
    require(server is not None, "redis-server not found (run scripts/install-system-deps.sh)")
    port = free_port()
    full = ["--maxmemory", "1", "--maxmemory-policy", "noeviction", "--save", "", "--appendonly", "no"]
    proc = subprocess.Popen([server, "--port", str(port), "--bind", "127.0.0.1", *full], stdout=subprocess.DEVNULL)
    try:
        wait_for_port(port, 20, proc)
        secret, _ = KeyStore(open_store(str(ledger_path))).create(budget_usd=Decimal("1"), period="month")
        with gateway({"auth": True, "redis_url": f"redis://127.0.0.1:{port}/0"}, ledger_path) as base:
            chat = openai.OpenAI(base_url=base + "/v1", api_key=secret, max_retries=0)
            with pytest.raises(openai.InternalServerError) as refused:
                chat.chat.completions.create(model="local", max_tokens=2, messages=[{"role": "user", "content": "x"}])
    finally:
        proc.terminate()
        proc.wait(10)
    message = refused.value.body["message"]
    assert refused.value.status_code == 503 and refused.value.body["code"] == "limits_unavailable"
    assert "refused the limits check" in message and "maxmemory" in message and "cannot reach" not in message
    assert open_store(str(ledger_path)).count() == 0  # refused before any call


def test_a_503_for_a_limits_store_that_is_down_is_in_the_callers_api_shape_and_names_redis(ledger_path):
    # Redis down: a budgeted call is refused (never let through unreserved), but the 503 came back in OpenAI's shape
    # on every API: boto3 read error code "503" and an empty message (its handling keys on
    # ServiceUnavailableException), google-genai no status, Anthropic's SDK a body without its error type.
    import anthropic
    import boto3
    from botocore.config import Config
    from botocore.exceptions import ClientError
    from google import genai
    from google.genai import errors as genai_errors

    url = f"redis://127.0.0.1:{free_port()}/0"  # nothing listens there
    secret, _ = KeyStore(open_store(str(ledger_path))).create(budget_usd=Decimal("1"), period="month")
    with gateway({"auth": True, "redis_url": url}, ledger_path) as base:
        claude = anthropic.Anthropic(base_url=base, api_key=secret, max_retries=0)
        with pytest.raises(anthropic.APIStatusError) as messages:
            claude.messages.create(model="local", max_tokens=2, messages=[{"role": "user", "content": "x"}])
        gemini = genai.Client(api_key=secret, http_options={"base_url": base})
        with pytest.raises(genai_errors.APIError) as generate:
            gemini.models.generate_content(model="local", contents="x")
        session = boto3.session.Session(aws_access_key_id=secret, aws_secret_access_key="anything")
        bedrock = session.client(
            "bedrock-runtime", endpoint_url=base, region_name="us-east-1", config=Config(retries={"max_attempts": 1})
        )
        with pytest.raises(ClientError) as converse:
            bedrock.converse(modelId="local", messages=[{"role": "user", "content": [{"text": "x"}]}])
    assert messages.value.status_code == 503 and messages.value.body["type"] == "error"
    assert "Redis" in messages.value.body["error"]["message"]
    assert (generate.value.code, generate.value.status) == (503, "UNAVAILABLE") and "Redis" in generate.value.message
    error = converse.value.response["Error"]
    assert converse.value.response["ResponseMetadata"]["HTTPStatusCode"] == 503
    assert error["Code"] == "ServiceUnavailableException" and "Redis" in error["Message"]
    assert open_store(str(ledger_path)).count() == 0  # refused before any call
