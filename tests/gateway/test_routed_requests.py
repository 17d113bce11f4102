"""Routing through the gateway: a hybrid policy (rules, then a trained classifier) and a JSON cascade serve a
mixed workload from the OpenAI SDK with real calls to the local model; the ledger prices each tier apart."""

from __future__ import annotations

import json

import openai
import pytest

from tokenomy.config import parse_config
from tokenomy.emulate.server import ServerThread
from tokenomy.gateway.app import create_app
from tokenomy.ledger.store import open_store
from tokenomy.pricing.cost import compute_cost
from tokenomy.routing.classifier import save, train

# Both have prompt-cache prices: llama.cpp reuses the KV cache of a shared prefix and reports cache reads.
CHEAP = "amazon.nova-micro-v1:0"  # $0.035 in / $0.14 out per 1M tokens
STRONG = "anthropic.claude-3-7-sonnet-20250219-v1:0"  # $3 in / $15 out per 1M tokens


def _config(classifier_path: str) -> dict:
    # Two tiers served by the same local model under two aliases, priced as a cheap and a strong model.
    return {
        "store_prompts": True,  # so cascade outcomes can be exported as training labels
        "models": {
            "small": {"provider": "local", "model": "smollm2-135m", "price_as": CHEAP},
            "big": {"provider": "local", "model": "smollm2-135m", "price_as": STRONG},
        },
        "tiers": {"tier1": ["small"], "tier2": ["big"]},
        "routes": {"auto": {"policy": "hybrid"}, "extract": {"policy": "json-cascade"}},
        "routing": {
            "policies": {
                "hybrid": {
                    "type": "hybrid",
                    "classifier_path": classifier_path,
                    "tiers": ["tier1", "tier2"],
                    "default_tier": "tier1",
                    "rules": [
                        {"name": "legal-task", "tier": "tier2", "task": ["legal"]},
                        {"name": "reasoning", "tier": "tier2", "keywords": ["step by step"]},
                    ],
                },
                "json-cascade": {
                    "type": "cascade",
                    "tiers": ["tier1", "tier2"],
                    "validators": {"json": True, "required": ["name"]},
                },
            }
        },
    }


@pytest.mark.slow
def test_hybrid_and_cascade_routes_through_the_gateway(tmp_path, ledger_path):
    strong = [f"prove the theorem {i} about prime numbers" for i in range(15)]
    weak = [f"say hello to the user number {i}" for i in range(15)]
    save(train(strong + weak, [1] * 15 + [0] * 15), tmp_path / "router.joblib", threshold=0.5)
    cfg = parse_config(_config(str(tmp_path / "router.joblib")))
    # (route, prompt, task header, tier expected, why)
    workload = [
        ("auto", "Explain step by step why 2 + 2 = 4.", None, "tier2"),  # rule: keyword
        ("auto", "Summarise this contract clause.", "legal", "tier2"),  # rule: task header
        ("auto", "Prove the theorem about prime numbers.", None, "tier2"),  # no rule: classifier, strong
        ("auto", "Say hello to the user.", None, "tier1"),  # no rule: classifier, weak
        ("extract", "Write one sentence about the sea.", None, "tier2"),
    ]  # cascade: prose is not JSON
    with ServerThread(create_app(cfg, str(ledger_path)), lifespan="on") as url:
        client = openai.OpenAI(base_url=url + "/v1", api_key="unused", max_retries=0)
        answered = []
        for route, prompt, task, _ in workload:
            reply = client.chat.completions.create(
                model=route,
                messages=[{"role": "user", "content": prompt}],
                max_tokens=8,
                extra_headers={"x-tokenomy-task": task} if task else None,
            )
            assert reply.model == route and reply.usage.completion_tokens > 0
            answered.append(reply.model_dump()["tokenomy"]["tier"])  # the response names the tier that answered
    assert answered == [w[3] for w in workload]

    rows = open_store(ledger_path).query(
        "SELECT route, tier, tags, input_tokens, output_tokens, cache_read_tokens, cache_write_tokens, cost_usd "
        "FROM usage_events ORDER BY ts"
    )
    # Five requests, six calls: the cascade's first attempt (tier1, invalid JSON) and its escalation.
    assert [(r["route"], r["tier"]) for r in rows] == [
        ("auto", "tier2"),
        ("auto", "tier2"),
        ("auto", "tier2"),
        ("auto", "tier1"),
        ("extract", "tier1"),
        ("extract", "tier2"),
    ]
    first, second = rows[-2:]
    tags = lambda r: json.loads(r["tags"]) if isinstance(r["tags"], str) else (r["tags"] or {})  # noqa: E731
    assert "cascade_escalated" not in tags(first) and tags(second)["cascade_escalated"] == "1"
    from tokenomy.chat_response import Usage

    for row in rows:  # every attempt costed at its tier's price
        priced_as = STRONG if row["tier"] == "tier2" else CHEAP
        expected = compute_cost(
            Usage(row["input_tokens"], row["output_tokens"], row["cache_read_tokens"], row["cache_write_tokens"]),
            priced_as,
        ).total_usd
        assert row["cost_usd"] == expected and row["cost_usd"] > 0
    assert second["cost_usd"] > first["cost_usd"]  # same prompt, the strong tier's price
    from tokenomy.routing.drift import escalation_rates

    rates = escalation_rates(open_store(ledger_path), cfg)
    # Why the cheap answer was rejected: cut by the 8-token cap, or prose where JSON was asked for.
    assert [r["check"] for r in rates[1].pop("rejections")] == [tags(first)["cascade_rejected"]]
    assert tags(first)["cascade_rejected"] in ("truncated", "json")
    assert rates == [
        {
            "route": "auto",
            "calls": 4,
            "escalations": 0,
            "rate": 0.0,
            "threshold": 0.25,
            "flagged": False,
            "rejections": [],
        },
        {"route": "extract", "calls": 1, "escalations": 1, "rate": 1.0, "threshold": 0.25, "flagged": True},
    ]

    # The cascade's outcome becomes a training label: the cheap tier failed, so the prompt needs the strong one.
    from tokenomy.routing.labels import cascade_labels, cascade_routes

    assert cascade_routes(cfg) == ["extract"]
    labels = cascade_labels(open_store(ledger_path), cascade_routes(cfg))
    assert [(r["label"], "Write one sentence about the sea." in r["prompt"]) for r in labels] == [("strong", True)]
