"""`tokenomy serve` and `tokenomy keys` as real processes: the issue's minimal config, streaming through the
pooled upstream, key lifecycle from the CLI, graceful shutdown with a request in flight, keys on PostgreSQL."""

from __future__ import annotations

import concurrent.futures
import json
import os
import signal
import subprocess
import sys
from decimal import Decimal
from pathlib import Path

import httpx
import openai
import pytest

from helpers import REPO, free_port, wait_for_port
from helpers.noticing_openai import NoticingOpenAI
from tokenomy.config import parse_config
from tokenomy.emulate.instant_openai import InstantOpenAI
from tokenomy.emulate.server import ServerThread
from tokenomy.gateway.app import create_app
from tokenomy.gateway.keys import KeyStore
from tokenomy.ledger.store import open_store

TOKENOMY = str(Path(sys.executable).with_name("tokenomy"))
HAIKU = "anthropic.claude-3-haiku-20240307-v1:0"


def cli(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run([TOKENOMY, *args], capture_output=True, text=True, timeout=120)


def serve(config: Path, ledger: Path, port: int, env: dict | None = None) -> subprocess.Popen:
    return subprocess.Popen(
        [TOKENOMY, "serve", "--config", str(config), "--port", str(port), "--ledger", str(ledger)],
        env={**os.environ, **(env or {})},
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
    )


def test_streams_through_the_pooled_upstream_with_usage_and_json_tags(ledger_path):
    config = {"models": {"fast": {"provider": "openai", "model": "fast", "api_key_env": "FAST_KEY", "price_as": HAIKU}}}
    with InstantOpenAI() as upstream:
        config["models"]["fast"]["base_url"] = upstream
        with ServerThread(create_app(parse_config(config), str(ledger_path)), lifespan="on") as url:
            client = openai.OpenAI(base_url=url + "/v1", api_key="unused")
            stream = client.chat.completions.create(
                model="fast",
                messages=[{"role": "user", "content": "z" * 80}],
                max_tokens=7,
                stream=True,
                stream_options={"include_usage": True},
                extra_headers={"x-tokenomy-task": "summarise", "x-tokenomy-tags": json.dumps({"feature": "digest"})},
            )
            chunks = list(stream)
            raw = httpx.post(
                url + "/v1/chat/completions",
                json={"model": "fast", "messages": [{"role": "user", "content": "x"}], "stream": True, "max_tokens": 3},
            )
    assert "".join(c.choices[0].delta.content or "" for c in chunks if c.choices) == "ok"
    assert [c.choices[0].finish_reason for c in chunks if c.choices][-1] == "stop"
    assert chunks[-1].usage.prompt_tokens == 20 and chunks[-1].usage.completion_tokens == 7
    lines = [line for line in raw.text.split("\n\n") if line]
    assert lines[-1] == "data: [DONE]" and all(line.startswith("data: ") for line in lines)
    assert all("usage" not in json.loads(line[6:]) for line in lines[:-1])  # usage only when asked for
    events = sorted(open_store(ledger_path).events(), key=lambda e: e.ts)
    assert len(events) == 2 and events[0].task == "summarise" and events[0].tags == {"feature": "digest"}
    # 20 input tokens at $0.25/M + 7 output tokens at $1.25/M
    assert events[0].cost_usd == Decimal(20) * Decimal("0.25") / 10**6 + Decimal(7) * Decimal("1.25") / 10**6


def test_minimal_config_from_the_issue_and_graceful_shutdown(tmp_path):
    ledger = tmp_path / "ledger.duckdb"
    port = free_port()
    upstream_server = NoticingOpenAI(delay_s=1.5)
    with upstream_server as upstream:
        config = tmp_path / "tokenomy.yaml"
        config.write_text(
            f"auth: false\nmodels:\n  bench-model:\n    provider: openai\n    model: bench-model\n"
            f"    base_url: {upstream}\n    api_key_env: BENCH_KEY\n"
        )
        proc = serve(config, ledger, port, {"BENCH_KEY": "sk-test"})
        try:
            wait_for_port(port, 60, proc)
            base = f"http://127.0.0.1:{port}"
            assert [m["id"] for m in httpx.get(base + "/v1/models").json()["data"]] >= ["bench-model"]
            missing = httpx.post(
                base + "/v1/chat/completions", json={"model": "gpt-9", "messages": [{"role": "user", "content": "x"}]}
            )
            assert missing.status_code == 404 and missing.json()["error"]["code"] == "model_not_found"
            with concurrent.futures.ThreadPoolExecutor(1) as pool:
                pending = pool.submit(
                    httpx.post,
                    base + "/v1/chat/completions",
                    timeout=30,
                    json={"model": "bench-model", "messages": [{"role": "user", "content": "x"}], "max_tokens": 4},
                )
                assert upstream_server.has_request.wait(60)  # the request is now waiting on the upstream
                proc.send_signal(signal.SIGTERM)
                answer = pending.result(30)
            assert proc.wait(30) in (0, -signal.SIGTERM)  # uvicorn re-raises the signal once it has drained
        finally:
            if proc.poll() is None:
                proc.kill()
                proc.wait(10)
    assert answer.status_code == 200 and answer.json()["choices"][0]["message"]["content"] == "ok"
    events = open_store(ledger).events()
    assert [e.route for e in events] == ["bench-model"]  # the in-flight call reached the ledger before exit
    assert events[0].priced_by == "unpriced" and events[0].cost_usd == 0 and events[0].output_tokens == 4


def test_keys_cli_create_list_revoke(tmp_path):
    ledger = str(tmp_path / "ledger.duckdb")
    created = cli(
        "keys",
        "create",
        "--budget-usd",
        "50",
        "--period",
        "month",
        "--rpm",
        "600",
        "--team",
        "web",
        "--name",
        "ci",
        "--ledger",
        ledger,
        "--json",
    )
    assert created.returncode == 0, created.stderr
    key = json.loads(created.stdout)
    assert key["key"].startswith("tk-") and Decimal(str(key["budget_usd"])) == 50 and key["rpm"] == 600
    listed = json.loads(cli("keys", "list", "--ledger", ledger, "--json").stdout)
    assert [k["key_id"] for k in listed] == [key["key_id"]] and key["key"] not in json.dumps(listed)
    table = cli("keys", "list", "--ledger", ledger).stdout  # people read $50.00, not 50.000000000000
    assert "$50.00" in table and "50.000000000000" not in table
    assert cli("keys", "team-budget", "web", "--budget-usd", "5", "--ledger", ledger).returncode == 0
    bad = cli("keys", "create", "--period", "fortnight", "--ledger", ledger)
    assert bad.returncode == 2 and "--period" in bad.stdout + bad.stderr
    # NaN and inf ended in tracebacks (decimal.InvalidOperation, a database error); a negative team budget was kept.
    for amount in ("nan", "inf", "-3"):
        for args in (["keys", "create"], ["keys", "team-budget", "web"]):
            bad = cli(*args, "--budget-usd", amount, "--ledger", ledger)
            assert bad.returncode == 2 and "give an amount in dollars" in bad.stderr and "Traceback" not in bad.stderr
    folder = cli("keys", "list", "--ledger", str(tmp_path))  # a directory: a duckdb IOException traceback before
    assert (
        folder.returncode == 2
        and folder.stderr.startswith(f"error: ledger {tmp_path}")
        and "Traceback" not in folder.stderr
    )
    assert cli("keys", "revoke", key["key_id"], "--ledger", ledger).returncode == 0
    config = parse_config({"auth": True})
    with ServerThread(create_app(config, ledger), lifespan="on") as url:
        denied = httpx.post(
            url + "/v1/chat/completions",
            headers={"authorization": f"Bearer {key['key']}"},
            json={"model": "local", "messages": [{"role": "user", "content": "x"}]},
        )
        anonymous = httpx.post(
            url + "/v1/chat/completions", json={"model": "local", "messages": [{"role": "user", "content": "x"}]}
        )
    assert denied.status_code == 401 and denied.json()["error"]["code"] == "invalid_api_key"
    assert anonymous.status_code == 401 and set(anonymous.json()["error"]) == {"message", "type", "param", "code"}


@pytest.mark.postgres
def test_keys_and_spend_on_postgresql(fresh_postgres_url):
    store = KeyStore(open_store(fresh_postgres_url))
    secret, key = store.create(budget_usd=Decimal("0.0006"), period="day", team="ops")
    store.set_team_budget("ops", Decimal("1"), "month")
    assert store.lookup(secret) == key and store.team_budget("ops") == (Decimal("1"), "month")
    with InstantOpenAI() as upstream:
        config = parse_config(
            {
                "auth": True,
                "models": {"fast": {"provider": "openai", "model": "fast", "base_url": upstream, "price_as": HAIKU}},
            }
        )
        with ServerThread(create_app(config, fresh_postgres_url), lifespan="on") as url:
            client = openai.OpenAI(base_url=url + "/v1", api_key=secret, max_retries=0)
            codes = []
            for _ in range(3):
                try:
                    client.chat.completions.create(
                        model="fast", messages=[{"role": "user", "content": "y" * 400}], max_tokens=200
                    )
                    codes.append(200)
                except openai.RateLimitError:
                    codes.append(429)
    assert codes == [200, 200, 429]
    assert store.spent("key_id", key.key_id, key_start()) == Decimal("0.00055")
    assert store.spent("tenant", "ops", key_start()) == Decimal("0.00055")  # the team's spend, via tenant


def key_start():
    from tokenomy.gateway.keys import period_start

    return period_start("day")


@pytest.mark.parametrize("name", ["minimal.yaml", "team.yaml"])
def test_example_configs_load(name):
    from tokenomy.config import load_config

    config = load_config(REPO / "examples" / "gateway" / name)
    assert config.route_for(next(iter(config.routes or config.models))) is not None
    assert config.gateway.max_inflight >= 1  # typed when the config loaded
    # The start-up checks pass too: minimal.yaml's model warned that its calls would be recorded at $0.
    from tokenomy.config_checks import check_config

    keys = {m.api_key_env: "set" for m in config.models.values() if m.api_key_env}
    findings = check_config(config, environ=keys)
    assert findings.errors == [] and findings.warnings == [], findings


def test_bad_gateway_settings_name_the_key(tmp_path):
    config = tmp_path / "tokenomy.yaml"
    config.write_text("gateway:\n  max_inflight: 0\n")
    result = cli("serve", "--config", str(config), "--port", str(free_port()))
    assert result.returncode == 2 and "gateway.max_inflight" in result.stdout + result.stderr


def test_policy_routes_metrics_labels_and_fallback_priced_reservations(ledger_path):
    store = KeyStore(open_store(ledger_path))
    # Primary: Haiku-priced; fallback: Sonnet-priced (12x dearer). The reservation must cover the fallback.
    sonnet = "anthropic.claude-3-5-sonnet-20241022-v2:0"
    secret, _ = store.create(budget_usd=Decimal("0.003"), period="month")  # < one Sonnet-priced worst case
    with InstantOpenAI() as upstream:
        config = parse_config(
            {
                "auth": True,
                "models": {
                    "cheap": {"provider": "openai", "model": "cheap", "base_url": upstream, "price_as": HAIKU},
                    "dear": {"provider": "openai", "model": "dear", "base_url": upstream, "price_as": sonnet},
                },
                "routes": {"chat": {"model": "cheap", "fallback": ["dear"]}, "smart": {"policy": "cascade"}},
                "tiers": {"t1": ["cheap"]},
                "routing": {"policies": {"cascade": {"type": "cascade", "tiers": ["t1"]}}},
            }
        )
        with ServerThread(create_app(config, str(ledger_path)), lifespan="on") as url:
            auth = {"authorization": f"Bearer {secret}"}
            message = {"messages": [{"role": "user", "content": "y" * 400}], "max_tokens": 200}
            # 100 in + 200 out: Haiku $0.000275 fits, Sonnet $0.0033 does not
            refused = httpx.post(url + "/v1/chat/completions", headers=auth, json={"model": "chat", **message})
            direct = httpx.post(url + "/v1/chat/completions", headers=auth, json={"model": "cheap", **message})
            policy = httpx.post(url + "/v1/chat/completions", headers=auth, json={"model": "smart", **message})
            httpx.post(url + "/v1/chat/completions", headers=auth, json={"model": "no-such-model", **message})
            exposition = httpx.get(url + "/metrics").text
    assert refused.status_code == 429 and refused.json()["error"]["code"] == "budget_exceeded"
    assert direct.status_code == 200
    assert policy.status_code < 500
    assert 'model="unknown",status="404"' in exposition and "no-such-model" not in exposition


def test_spend_survives_a_gateway_restart(ledger_path):
    store = KeyStore(open_store(ledger_path))
    per_request = Decimal(100) * Decimal("0.25") / 10**6 + Decimal(200) * Decimal("1.25") / 10**6
    secret, _ = store.create(budget_usd=per_request * 2 + per_request / 2, period="day")
    message = {"model": "fast", "messages": [{"role": "user", "content": "y" * 400}], "max_tokens": 200}
    codes = []
    with InstantOpenAI() as upstream:
        config = parse_config(
            {
                "auth": True,
                "models": {"fast": {"provider": "openai", "model": "fast", "base_url": upstream, "price_as": HAIKU}},
            }
        )
        for _ in range(2):  # two gateway lifetimes over one ledger
            with ServerThread(create_app(config, str(ledger_path)), lifespan="on") as url:
                for _ in range(2):
                    codes.append(
                        httpx.post(
                            url + "/v1/chat/completions", json=message, headers={"authorization": f"Bearer {secret}"}
                        ).status_code
                    )
    assert codes == [200, 200, 429, 429]  # the second lifetime starts from the ledger's spend, not from zero


def test_route_naming_an_undefined_policy_fails_at_start(tmp_path):
    # It used to start and answer every request to the route with a 400 the client could not fix.
    config = tmp_path / "tokenomy.yaml"
    config.write_text("routes:\n  smart: {policy: ghost}\nrouting:\n  policies:\n    rules: {type: rules}\n")
    result = cli("serve", "--config", str(config), "--port", str(free_port()))
    assert (
        result.returncode == 2
        and "routes.smart.policy: 'ghost' is not defined under routing.policies" in result.stderr
        and "(defined: rules)" in result.stderr
    )


def test_serve_refuses_impossible_port_and_workers():
    # --port 99999 used to hang without listening anywhere; --workers 0 started anyway.
    for args, option in ((["--port", "99999"], "--port"), (["--workers", "0"], "--workers")):
        result = cli("serve", *args)
        assert result.returncode == 2 and option in result.stderr, result.stderr


@pytest.mark.parametrize(
    ("url", "said"),
    [
        ("127.0.0.1:6379", "redis_url: '127.0.0.1:6379' is not a Redis URL; write redis://HOST:6379/0"),
        ("http://127.0.0.1:6379", "redis_url: 'http://127.0.0.1:6379' is not a Redis URL; write redis://HOST:6379/0"),
        (
            "redis://127.0.0.1:abc/0",
            "redis_url: Port could not be cast to integer value as 'abc'; write it as redis://HOST",
        ),
    ],
)
def test_a_redis_url_redis_cannot_read_is_one_line_naming_it(url, said, tmp_path, monkeypatch, capsys):
    # redis-py's from_url raised ValueError ("Redis URL must specify one of the following schemes", or a port that is
    # not a number), which `serve` let through as a traceback.
    from helpers.cli import one_error_line, run_cli

    config = tmp_path / "tokenomy.yaml"
    config.write_text(f"redis_url: '{url}'\n")
    code, out, err = run_cli(
        monkeypatch, capsys, "serve", "--config", str(config), "--port", "0", "--ledger", str(tmp_path / "l.duckdb")
    )
    line = one_error_line(err)
    assert code == 2 and out == ""
    assert line.startswith(f"error: {config}: {said}"), line


def test_unreachable_redis_fails_at_start_and_is_a_503_in_openais_shape(tmp_path):
    # It used to start silently and answer the first rate-limited request with a bare "Internal Server Error".
    url = f"redis://127.0.0.1:{free_port()}/0"  # nothing listens there
    config = tmp_path / "tokenomy.yaml"
    config.write_text(f"auth: true\nredis_url: {url}\n")
    started = cli("serve", "--config", str(config), "--port", str(free_port()), "--ledger", str(tmp_path / "l.duckdb"))
    assert started.returncode == 2 and "redis_url: cannot reach" in started.stderr and "Traceback" not in started.stderr
    ledger = str(tmp_path / "app.duckdb")
    secret, _ = KeyStore(open_store(ledger)).create(budget_usd=Decimal("1"), period="month", rpm=10)
    with ServerThread(create_app(parse_config({"auth": True, "redis_url": url}), ledger), lifespan="on") as base:
        answer = httpx.post(
            base + "/v1/chat/completions",
            headers={"authorization": f"Bearer {secret}"},
            json={"model": "local", "max_tokens": 2, "messages": [{"role": "user", "content": "x"}]},
        )
    assert answer.status_code == 503 and answer.json()["error"]["code"] == "limits_unavailable"


def test_unreachable_redis_with_workers_and_auth_names_a_fix_that_starts(tmp_path):
    # The README's `serve --config examples/gateway/team.yaml --workers 2` without Redis said "remove redis_url for
    # per-process limits", and doing so was refused next: --workers 2 with auth needs redis_url.
    config = tmp_path / "tokenomy.yaml"
    config.write_text(f"auth: true\nredis_url: redis://127.0.0.1:{free_port()}/0\n")
    args = ("serve", "--config", str(config), "--port", str(free_port()), "--ledger", str(tmp_path / "l.duckdb"))
    several = cli(*args, "--workers", "2")
    assert several.returncode == 2 and "redis_url: cannot reach" in several.stderr
    assert "remove redis_url" not in several.stderr
    assert "or run one worker (--workers 1) without redis_url for per-process limits" in several.stderr
    one = cli(*args)
    assert one.returncode == 2 and "start redis-server there or remove redis_url for per-process limits" in one.stderr


def test_serve_with_auth_on_a_clickhouse_ledger_is_one_line_before_starting(tmp_path):
    # Keys live beside the calls only on DuckDB or PostgreSQL: the refusal came from inside the worker, as uvicorn's
    # "Application startup failed" after a traceback.
    pytest.importorskip("chdb")
    config = tmp_path / "tokenomy.yaml"
    config.write_text("auth: true\n")
    ledger = f"chdb:{tmp_path / 'ledger.chdb'}"
    result = cli("serve", "--config", str(config), "--port", str(free_port()), "--ledger", ledger)
    assert result.returncode == 2 and "Traceback" not in result.stderr + result.stdout, result.stderr
    assert result.stderr.startswith(f"error: ledger {ledger}: virtual keys and team budgets"), result.stderr


def test_serve_names_a_bad_ledger_before_starting(tmp_path):
    # A directory as --ledger failed inside the worker: uvicorn printed a traceback and "startup failed".
    result = cli("serve", "--port", str(free_port()), "--ledger", str(tmp_path))
    assert result.returncode == 2 and result.stderr.startswith(f"error: ledger {tmp_path}")
    assert "Traceback" not in result.stderr + result.stdout


def test_serve_checks_routing_tiers_and_policies_before_starting(tmp_path):
    # Both started fine and then answered every request to the route with a 400 naming a server-side mistake.
    config = tmp_path / "tokenomy.yaml"
    config.write_text(
        "tiers: {tier1: [nosuch-model]}\nroutes: {r: {policy: p}}\n"
        "routing: {policies: {p: {type: rules, default_tier: tier1}}}\n"
    )
    result = cli("serve", "--config", str(config), "--port", str(free_port()), "--ledger", str(tmp_path / "l.duckdb"))
    assert result.returncode == 2 and "tiers.tier1: unknown model 'nosuch-model'" in result.stderr
    config.write_text("routes: {r: {policy: p}}\nrouting: {policies: {p: {type: ruels}}}\n")
    result = cli("serve", "--config", str(config), "--port", str(free_port()), "--ledger", str(tmp_path / "l.duckdb"))
    assert result.returncode == 2 and "routing.policies.p.type" in result.stderr


def test_the_configs_ledger_is_the_one_the_gateway_writes_even_with_tokenomy_ledger_set(tmp_path):
    # serve checked (and created) the config's `ledger:`, as `keys create` picks it, but its worker wrote to
    # $TOKENOMY_LEDGER: the calls landed in another ledger than the keys and the one checked at start.
    configured, from_env = tmp_path / "configured.duckdb", tmp_path / "from_env.duckdb"
    port = free_port()
    with InstantOpenAI() as upstream:
        config = tmp_path / "tokenomy.yaml"
        config.write_text(
            f"ledger: {configured}\nauth: false\nmodels:\n  m: {{provider: openai, model: m, "
            f"base_url: '{upstream}', price_as: {HAIKU}}}\n"
        )
        proc = subprocess.Popen(
            [TOKENOMY, "serve", "--config", str(config), "--port", str(port)],
            env={**os.environ, "TOKENOMY_LEDGER": str(from_env)},
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
        )
        try:
            wait_for_port(port, 60, proc)
            answer = httpx.post(
                f"http://127.0.0.1:{port}/v1/chat/completions",
                timeout=30,
                json={"model": "m", "max_tokens": 3, "messages": [{"role": "user", "content": "x"}]},
            )
            proc.send_signal(signal.SIGTERM)
            proc.wait(30)
        finally:
            if proc.poll() is None:
                proc.kill()
                proc.wait(10)
    assert answer.status_code == 200, answer.text
    assert [e.model for e in open_store(configured).events()] == ["m"]
    assert not from_env.exists()


def test_a_route_rate_limit_the_workers_cannot_share_is_one_line_before_starting(tmp_path, monkeypatch, capsys):
    # Four workers on a 3-rpm route would each hold 3/4 of a request a minute, and from a cold start each sent one.
    from helpers.cli import one_error_line, run_cli

    config = tmp_path / "tokenomy.yaml"
    config.write_text(
        "models: {fast: {provider: openai, model: fast, base_url: 'http://127.0.0.1:9'}}\n"
        "routes: {r: {model: fast, rate_limit: {requests_per_minute: 3}}}\n"
    )
    code, out, err = run_cli(
        monkeypatch,
        capsys,
        "serve",
        "--config",
        str(config),
        "--port",
        "0",
        "--workers",
        "4",
        "--ledger",
        str(tmp_path / "l.duckdb"),
    )
    line = one_error_line(err)
    assert code == 2 and out == ""
    assert "routes.r.rate_limit.requests_per_minute: 3 cannot be shared by 4 workers" in line, line


def test_a_port_in_use_is_refused_before_the_ledger_is_created(tmp_path, monkeypatch, capsys):
    # The ledger was opened (so created) before the port was tried: a refused start left a stray empty ledger.
    import socket

    from helpers.cli import one_error_line, run_cli

    ledger = tmp_path / "new.duckdb"
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        code, out, err = run_cli(monkeypatch, capsys, "serve", "--port", str(port), "--ledger", str(ledger))
    line = one_error_line(err)
    assert code == 2 and out == ""
    assert f"cannot listen on 127.0.0.1:{port}" in line and "pick another --port" in line, line
    assert not ledger.exists() and list(tmp_path.iterdir()) == []
