"""Demo step: route a few prompts with rules and a JSON cascade on the local model; compare to always-strong;
then the trained router on held-out GSM8K outcomes."""

from __future__ import annotations

from decimal import Decimal
from typing import TYPE_CHECKING

from tokenomy.client import CallPolicy
from tokenomy.config import parse_config
from tokenomy.messages import ChatRequest, RequestMeta
from tokenomy.pricing.cost import compute_cost
from tokenomy.routing.router import build_router

if TYPE_CHECKING:
    from tokenomy.demo.context import DemoContext

TITLE = "Model routing"
STRONG = "anthropic.claude-sonnet-4-5-20250929-v1:0"
CONFIG = {
    "models": {"local-strong": {"provider": "local", "model": "smollm2-135m"}},
    "tiers": {"tier1": ["local"], "tier2": ["local-strong"]},
    "routes": {"smart": {"policy": "rules"}, "json": {"policy": "cascade"}},
    "routing": {
        "policies": {
            "rules": {
                "type": "rules",
                "default_tier": "tier1",
                "rules": [{"name": "reasoning", "tier": "tier2", "keywords": ["prove", "step by step"]}],
            },
            "cascade": {"type": "cascade", "tiers": ["tier1", "tier2"], "validators": {"json": True}},
        }
    },
}
PROMPTS = [
    ("smart", "Say hello to Maria."),
    ("smart", "Prove step by step that 17 is prime."),
    ("smart", "Name a colour."),
    ("json", "Give the name Tom as JSON."),
]


def run(ctx: DemoContext) -> None:
    """Route the prompts, print each decision, and the cost against sending everything to the strong model."""
    cfg = parse_config(CONFIG)
    ctx.client.models.update(cfg.model_specs())
    policies = {route: CallPolicy.for_route(cfg, route, ctx.client.catalog) for route in cfg.routes}
    rules = build_router(cfg, "rules", ctx.client.catalog)
    strong_total = Decimal(0)
    for route, prompt in PROMPTS:
        request = ChatRequest.simple(
            prompt, model=route, max_tokens=16, meta=RequestMeta(task="routing-demo", route=route)
        )
        response = ctx.client.chat(request, policy=policies[route])
        why = rules.route(request).decision if route == "smart" else None
        note = f"rule {why.rule or 'default'} ({why.reason})" if why else f"cascade, attempts end at {response.tier}"
        ctx.console.print(f"{route:5} {prompt[:40]!r:44} -> {response.tier}: {note}")
        strong_total += compute_cost(response.usage, STRONG, "us-east-1").total_usd
    ctx.client.flush()
    rows = ctx.store.query("SELECT tier, COUNT(*) AS n FROM usage_events WHERE task = 'routing-demo' GROUP BY tier")
    ctx.console.print(
        "calls per tier: "
        + ", ".join(f"{r['tier']}={r['n']}" for r in rows)
        + f"; the same answers all on {STRONG} (us-east-1) would cost ${strong_total:.6f}"
    )

    from tokenomy.routing.evaluate import evaluate

    result = evaluate("gsm8k")  # ~5 s: train both routers, calibrate, replay the held-out half of the outcomes
    ctx.console.print(held_out_summary(result))


def held_out_summary(result: dict) -> str:
    """One sentence on `route eval gsm8k`'s held-out half: the routers' strong shares, the cascade and the hybrid."""
    from tokenomy.routing.evaluate import HYBRID_SCORES

    by_policy = {p["policy"]: p for p in result["policies"]}
    hybrid = by_policy["hybrid"]
    return (
        f"held-out GSM8K ({result['held_out']} prompts): for 95% of strong quality the classifier "
        f"sends {result['cpt95_classifier']:.0%} of calls to the strong model, random "
        f"{result['cpt95_random']:.0%}; the cascade keeps "
        f"{by_policy['cascade']['quality_retained']:.0%} of strong quality at "
        f"{by_policy['cascade']['cost'] / by_policy['always-best']['cost']:.0%} of its cost; the hybrid "
        f"({HYBRID_SCORES} router, the rest through the cascade) keeps {hybrid['quality_retained']:.0%} with "
        f"{hybrid['strong_share']:.0%} strong calls (`tokenomy route eval gsm8k`)"
    )
