"""Routing: rule explanations, and a cascade that escalates on invalid JSON with real local-model calls."""

from __future__ import annotations

import pytest

from helpers import REPO
from tokenomy.chat_response import ChatResponse, Usage
from tokenomy.client import CallPolicy, Tokenomy
from tokenomy.config import parse_config
from tokenomy.errors import ConfigError
from tokenomy.ledger.store import open_store
from tokenomy.messages import ChatRequest, RequestMeta
from tokenomy.routing.rules import explain
from tokenomy.routing.validators import validate

CONFIG = {
    "models": {"local2": {"provider": "local", "model": "smollm2-135m"}},
    "tiers": {"tier1": ["local"], "tier2": ["local2"]},
    "routes": {"smart": {"policy": "rules"}, "json": {"policy": "cascade"}},
    "routing": {
        "policies": {
            "rules": {
                "type": "rules",
                "default_tier": "tier1",
                "rules": [
                    {"name": "code-or-math", "tier": "tier2", "keywords": ["prove", "algorithm"]},
                    {"name": "long-input", "tier": "tier2", "min_tokens": 200},
                ],
            },
            "cascade": {
                "type": "cascade",
                "tiers": ["tier1", "tier2"],
                "validators": {"json": True, "required": ["name"]},
            },
        }
    },
}


def chat_via_route(client: Tokenomy, cfg, route: str, request: ChatRequest):
    """A request to a configured route: the route's policy (with its router) through the client."""
    request.meta.route = route
    return client.chat(request, policy=CallPolicy.for_route(cfg, route, client.catalog))


def test_rules_explain_names_rule_and_reason():
    cfg = parse_config(CONFIG)
    policy = cfg.routing_policy("rules")
    decision = explain(policy, ChatRequest.simple("Prove that sqrt(2) is irrational."))
    assert (decision.tier, decision.rule) == ("tier2", "code-or-math")
    assert "prove" in decision.reason
    assert explain(policy, ChatRequest.simple("x " * 1000)).rule == "long-input"
    assert explain(policy, ChatRequest.simple("hello")).tier == "tier1"


def test_a_token_rule_counts_what_the_model_reads_not_only_the_words():
    """An image or a long tool definition is input the model reads (and is billed for): before, `min_tokens`
    counted the words alone, so a screenshot with a short question stayed on the cheap tier."""
    from tokenomy.messages import ImageBlock, Message, TextBlock
    from tokenomy.request_options import ToolSpec

    policy = parse_config(CONFIG).routing_policy("rules")
    pictured = ChatRequest(
        messages=[Message("user", [TextBlock("What is this?"), ImageBlock(media_type="image/png", data=b"\x89PNG")])]
    )
    tooled = ChatRequest(messages=[Message("user", "hello")], tools=[ToolSpec("lookup", "d" * 1000)])
    for request in (pictured, tooled):
        decision = explain(policy, request)
        assert (decision.tier, decision.rule) == ("tier2", "long-input"), decision


def test_bad_policy_names_key():
    with pytest.raises(ConfigError, match=r"routing.policies.bad.type"):
        parse_config({"routing": {"policies": {"bad": {"type": "magic"}}}})


def test_validators():
    req = ChatRequest.simple("x")
    ok = ChatResponse.of_text('{"name": "a"}', "m", "p", Usage())
    assert validate(ok, req, {"json": True, "required": ["name"]}) is None
    assert "missing" in validate(ChatResponse.of_text('{"x": 1}', "m", "p", Usage()), req, {"required": ["name"]})
    assert "invalid JSON" in validate(ChatResponse.of_text("not json", "m", "p", Usage()), req, {"json": True})
    assert "hedging" in validate(ChatResponse.of_text("As an AI I can't", "m", "p", Usage()), req, {})
    assert "truncated" in validate(ChatResponse.of_text("abc", "m", "p", Usage(), finish_reason="length"), req, {})
    assert "schema" in validate(ok, req, {"schema": {"type": "object", "properties": {"name": {"type": "integer"}}}})


@pytest.mark.slow
def test_cascade_escalates_on_invalid_json_real_calls(ledger_path):
    cfg = parse_config(CONFIG)
    store = open_store(ledger_path)
    with Tokenomy(store, models=cfg.model_specs()) as client:
        response = chat_via_route(
            client,
            cfg,
            "json",
            ChatRequest.simple("Write one sentence about the sea.", max_tokens=12, meta=RequestMeta(task="t")),
        )
        client.flush()
    rows = store.query("SELECT route, tier, cost_usd, request_id FROM usage_events ORDER BY ts")
    # The 135M model does not answer a prose prompt with {"name": ...}: tier1 fails, tier2 answers.
    assert [r["tier"] for r in rows] == ["tier1", "tier2"]
    assert all(r["route"] == "json" and r["cost_usd"] is not None for r in rows)
    assert response.tier == "tier2"
    from tokenomy.routing.drift import escalation_rates, tier_share

    rates = escalation_rates(store)
    assert rates == [
        {
            "route": "json",
            "calls": 1,
            "escalations": 1,
            "rate": 1.0,
            "threshold": 0.25,
            "flagged": True,
            "rejections": [{"check": "truncated", "reason": "truncated output (finish_reason length)", "answers": 1}],
        }
    ]
    shares = {r["tier"]: r for r in tier_share(store, expected={"tier1": 0.7, "tier2": 0.3})}
    assert shares["tier1"]["share"] == 0.5 and shares["tier1"]["flagged"]


@pytest.mark.slow
def test_classifier_trains_and_routes_mixed_workload(tmp_path, ledger_path):
    from tokenomy.routing.classifier import load_jsonl, save, train

    examples = tmp_path / "d.jsonl"
    import json

    lines = [{"prompt": f"prove theorem {i} about primes", "label": "strong"} for i in range(20)]
    lines += [{"prompt": f"say hello to user {i}", "label": "weak"} for i in range(20)]
    examples.write_text("\n".join(json.dumps(x) for x in lines))
    save(train(*load_jsonl(examples)), tmp_path / "m.joblib")
    cfg = parse_config(
        {
            **CONFIG,
            "routes": {"mix": {"policy": "hy"}},
            "routing": {
                "policies": {
                    "hy": {
                        "type": "hybrid",
                        "classifier_path": str(tmp_path / "m.joblib"),
                        "tiers": ["tier1", "tier2"],
                        "rules": [{"name": "json", "tier": "tier2", "json_schema": True}],
                    }
                }
            },
        }
    )
    store = open_store(ledger_path)
    with Tokenomy(store, models=cfg.model_specs()) as client:
        tiers = [
            chat_via_route(client, cfg, "mix", ChatRequest.simple(p, max_tokens=8)).tier
            for p in ("prove theorem about primes", "say hello to user")
        ]
        client.flush()
    assert tiers == ["tier2", "tier1"]
    assert [r["tier"] for r in store.query("SELECT tier FROM usage_events ORDER BY ts")] == tiers


@pytest.mark.parametrize("dataset", ["gsm8k", "mmlu"])
def test_eval_held_out_classifier_beats_random(dataset, tmp_path):
    from tokenomy.routing.evaluate import evaluate

    png = tmp_path / "curve.png"
    result = evaluate(dataset, png=str(png))
    names = {p["policy"] for p in result["policies"]}
    assert {"always-cheapest", "always-best", "oracle", "random", "classifier"} <= names
    assert ("cascade" in names) == (dataset == "gsm8k")
    assert png.stat().st_size > 1000
    # Clearly fewer strong calls than random at 95% of strong quality (at least 5 points of share).
    assert result["cpt95_classifier"] <= result["cpt95_random"] - 0.05


def test_cli_explain_json_names_tier_and_rule():
    import json
    import subprocess
    import sys

    root = REPO
    out = subprocess.run(
        [
            sys.executable,
            "-m",
            "tokenomy.cli",
            "route",
            "explain",
            "Prove it step by step",
            "--config",
            str(root / "examples/routing/rules.yaml"),
            "--json",
        ],
        capture_output=True,
        text=True,
        timeout=60,
        cwd=root,
    )
    data = json.loads(out.stdout)
    assert (data["tier"], data["rule"]) == ("tier2", "reasoning")


def test_achat_routed_by_rules_real_call(ledger_path):
    import asyncio

    cfg = parse_config(CONFIG)
    store = open_store(ledger_path)
    request = ChatRequest.simple("Prove 2 is prime.", max_tokens=8, meta=RequestMeta(route="smart"))
    with Tokenomy(store, models=cfg.model_specs()) as client:
        response = asyncio.run(client.achat(request, policy=CallPolicy.for_route(cfg, "smart")))
        client.flush()
    assert response.tier == "tier2"
    assert store.query("SELECT route, tier FROM usage_events") == [{"route": "smart", "tier": "tier2"}]


def test_cli_explain_hybrid_uses_the_classifier_when_no_rule_fires(tmp_path):
    """`route explain` used to answer a hybrid policy with the rules' default tier, ignoring the classifier the
    gateway would use (and never noticing a classifier_path that does not exist)."""
    import json

    import yaml
    from typer.testing import CliRunner

    from tokenomy.cli import app
    from tokenomy.routing.classifier import load_jsonl, save, train

    examples = tmp_path / "d.jsonl"
    lines = [{"prompt": f"prove theorem {i} about primes", "label": "strong"} for i in range(20)]
    lines += [{"prompt": f"say hello to user {i}", "label": "weak"} for i in range(20)]
    examples.write_text("\n".join(json.dumps(x) for x in lines))
    model = tmp_path / "m.joblib"
    save(train(*load_jsonl(examples)), model)
    cfg = tmp_path / "tokenomy.yaml"
    policy = {
        "type": "hybrid",
        "classifier_path": str(model),
        "tiers": ["tier1", "tier2"],
        "default_tier": "tier1",
        "rules": [{"name": "json", "tier": "tier2", "json_schema": True}],
    }
    cfg.write_text(yaml.safe_dump({"tiers": CONFIG["tiers"], "routing": {"policies": {"hy": policy}}}))
    runner = CliRunner()
    out = runner.invoke(app, ["route", "explain", "prove theorem about primes", "--config", str(cfg), "--json"])
    assert out.exit_code == 0, out.output
    assert (json.loads(out.output)["tier"], json.loads(out.output)["rule"]) == ("tier2", "classifier")
    model.unlink()
    missing = runner.invoke(app, ["route", "explain", "say hello", "--config", str(cfg)])
    assert isinstance(missing.exception, ConfigError) and "route train" in str(missing.exception)
    assert str(model) in str(missing.exception)


@pytest.mark.parametrize("saved", [b"", b"hello, not a model\n", "a list"])
def test_a_classifier_file_that_is_no_router_is_named(saved, tmp_path, monkeypatch, capsys):
    # An empty file was click's "aborted", exit 130 (joblib's EOFError is click's Abort); text was an
    # UnpicklingError traceback; another object saved with joblib a traceback at the first decision.
    import joblib
    import yaml

    from helpers.cli import one_error_line, run_cli

    model = tmp_path / "m.joblib"
    if isinstance(saved, bytes):
        model.write_bytes(saved)
    else:
        joblib.dump([1, 2], model)
    cfg = tmp_path / "tokenomy.yaml"
    policy = {"type": "classifier", "classifier_path": str(model), "tiers": ["tier1", "tier2"]}
    cfg.write_text(yaml.safe_dump({"tiers": CONFIG["tiers"], "routing": {"policies": {"c": policy}}}))
    code, out, err = run_cli(monkeypatch, capsys, "route", "explain", "hello", "--config", str(cfg))
    assert code == 2 and out == ""
    line = one_error_line(err)
    assert line.startswith(f"error: classifier_path {model}: not a router saved by `tokenomy route train` ("), line
    assert line.endswith("); train one with `tokenomy route train`"), line


def test_explain_without_a_config_says_none_was_found(tmp_path, monkeypatch, capsys):
    # With no config anywhere it said "add a rules policy to the config given with --config": none was given.
    from helpers.cli import one_error_line, run_cli

    monkeypatch.chdir(tmp_path)
    monkeypatch.delenv("TOKENOMY_CONFIG", raising=False)
    code, out, err = run_cli(monkeypatch, capsys, "route", "explain", "hello")
    assert code == 2 and out == ""
    assert one_error_line(err) == (
        "error: no config: no --config, $TOKENOMY_CONFIG or ./tokenomy.yaml; give --config "
        "with a tokenomy.yaml that defines tiers and routing.policies"
    )
    (tmp_path / "tokenomy.yaml").write_text("tiers: {tier1: [local]}\n")
    code, out, err = run_cli(monkeypatch, capsys, "route", "explain", "hello")
    assert code == 2 and one_error_line(err) == (
        "error: tokenomy.yaml: routing.policies: none defined; add one, e.g. a rules policy (README: Model routing)"
    )
