"""`tokenomy route explain`: which tier a prompt goes to, and which rule said so."""

from __future__ import annotations

from typing import Optional

import typer

from tokenomy.commands._common import JsonOption, console, print_json

route_app = typer.Typer(help="Model routing: explain decisions.", no_args_is_help=True)


def register(app: typer.Typer) -> None:
    app.add_typer(route_app, name="route")


@route_app.command("explain")
def explain_cmd(
    prompt: str = typer.Argument(..., help="The prompt to route."),
    config: Optional[str] = typer.Option(None, "--config", help="tokenomy.yaml with tiers and routing.policies."),
    policy: Optional[str] = typer.Option(None, "--policy", help="Policy name [default: the first rules policy]."),
    task: Optional[str] = typer.Option(None, "--task", help="Task header to route on."),
    as_json: bool = JsonOption,
) -> None:
    """Print the tier the rule router picks for PROMPT, the rule that fired and why."""
    from tokenomy.config import load_config
    from tokenomy.errors import ConfigError
    from tokenomy.messages import ChatRequest, RequestMeta
    from tokenomy.routing.rules import explain, load_policy

    cfg = load_config(config)
    policies = (cfg.routing or {}).get("policies") or {}
    name = policy or next(iter(policies), None)
    if name is None:
        raise ConfigError("routing.policies: none defined; add a rules policy to the config given with --config")
    decision = explain(load_policy(cfg.routing, name), ChatRequest.simple(prompt, meta=RequestMeta(task=task)))
    result = {"policy": name, "tier": decision.tier, "rule": decision.rule, "reason": decision.reason,
              "models": cfg.tiers.get(decision.tier, [])}
    if as_json:
        print_json(result)
    else:
        console.print(f"tier [bold]{decision.tier}[/bold] by rule {decision.rule or '(default)'}: {decision.reason}")


@route_app.command("train")
def train_cmd(
    data: str = typer.Argument(..., help="JSONL of {prompt, label} (label: strong/weak or a tier name)."),
    output: str = typer.Option("router.joblib", "-o", "--output", help="Where to save the model."),
    as_json: bool = JsonOption,
) -> None:
    """Fit TF-IDF + logistic regression on labelled prompts and save it with joblib."""
    from tokenomy.routing.classifier import load_jsonl, save, train

    prompts, labels = load_jsonl(data)
    save(train(prompts, labels), output)
    result = {"output": output, "examples": len(prompts), "strong": sum(labels)}
    if as_json:
        print_json(result)
    else:
        console.print(f"trained on {len(prompts)} prompts ({sum(labels)} strong); saved {output}")


@route_app.command("eval")
def eval_cmd(
    dataset: str = typer.Argument(..., help="gsm8k, mmlu, or a path to RouteLLM outcome files."),
    strong: str = typer.Option("anthropic.claude-3-7-sonnet-20250219-v1:0", "--strong", help="Strong model to price."),
    png: str = typer.Option("route_eval.png", "--png", help="Cost-quality curve PNG."),
    seed: int = typer.Option(0, "--seed"),
    as_json: bool = JsonOption,
) -> None:
    """Train on a seeded split, report each policy on the held-out split (cost, quality, strong share, CPT95)."""
    from tokenomy.commands._common import table, usd
    from tokenomy.routing.evaluate import evaluate

    result = evaluate(dataset, strong, seed=seed, png=png)
    if as_json:
        # One object per policy (as the checks expect); the run's summary rides along on each.
        extra = {k: v for k, v in result.items() if k != "policies"}
        print_json([{**p, **extra} for p in result["policies"]])
        return
    console.print(table(f"{dataset}: held-out {result['held_out']} prompts", ["policy", "cost", "quality",
                        "retained", "strong share", "accuracy", "escalation"],
                        [[p["policy"], usd(p["cost"]), f"{p['quality']:.3f}", f"{p['quality_retained']:.1%}",
                          f"{p['strong_share']:.1%}", f"{p['routing_accuracy']:.1%}", f"{p['escalation_rate']:.1%}"]
                         for p in result["policies"]]))
    console.print(f"CPT(95%): classifier {result['cpt95_classifier']:.1%} vs random {result['cpt95_random']:.1%}; "
                  f"APGR {result['apgr_classifier']:.3f}; curve: {png}")
    for p in result["prices"]:
        console.print(f"price: {p['model']} {p['region']} {p['source']} as of {p['as_of']}")
