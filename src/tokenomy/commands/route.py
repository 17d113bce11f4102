"""`tokenomy route explain|train|eval|drift|export-labels`: decisions, the trained router, evaluation, drift."""

from __future__ import annotations

from datetime import UTC
from decimal import Decimal
from typing import Optional

import typer

from tokenomy.commands._common import JsonOption, LedgerOption
from tokenomy.commands._options import number_option, output_file, usd_option
from tokenomy.commands._output import console, print_json
from tokenomy.routing.outcome_prices import STRONG_MODEL, WEAK_MODEL

SEED_MAX = 2**32 - 1  # scikit-learn's and numpy's seeds: -1 or a bigger one came out as their traceback
HOLDOUT = 0.25  # `route train`'s held-out share when --holdout is not given
SEEDS_MAX = 100  # each split trains and replays every router again: a huge --seeds ran practically forever

route_app = typer.Typer(
    help="Model routing: explain decisions, train and calibrate the classifier, evaluate "
    "policies, watch escalation and tier drift.",
    no_args_is_help=True,
)


def register(app: typer.Typer) -> None:
    app.add_typer(route_app, name="route")


@route_app.command("explain")
def explain_cmd(
    prompt: str = typer.Argument(..., help="The prompt to route."),
    config: Optional[str] = typer.Option(None, "--config", help="tokenomy.yaml with tiers and routing.policies."),
    policy: Optional[str] = typer.Option(
        None, "--policy", help="Policy name \\[default: the first policy in routing.policies]."
    ),
    task: Optional[str] = typer.Option(None, "--task", help="Task header to route on."),
    as_json: bool = JsonOption,
) -> None:
    """Print the tier the policy picks for PROMPT (rules, then the classifier for a hybrid), the rule that fired
    and why."""
    from tokenomy.config import config_file, load_config
    from tokenomy.errors import ConfigError
    from tokenomy.messages import ChatRequest, RequestMeta
    from tokenomy.routing.router import build_router

    cfg = load_config(config)
    name = policy or next(iter(cfg.routing.policies), None)
    if name is None:
        source = config_file(config)
        if source is None:  # it said "add a rules policy to the config given with --config", when none was
            raise ConfigError(
                "no config: no --config, $TOKENOMY_CONFIG or ./tokenomy.yaml; give --config with a tokenomy.yaml "
                "that defines tiers and routing.policies"
            )
        raise ConfigError(
            f"{source}: routing.policies: none defined; add one, e.g. a rules policy (README: Model routing)"
        )
    # Say what the gateway would do (the same router): rules, a trained classifier, or a cascade's first tier.
    decision = build_router(cfg, name).route(ChatRequest.simple(prompt, meta=RequestMeta(task=task))).decision
    result = {
        "policy": name,
        "tier": decision.tier,
        "rule": decision.rule,
        "reason": decision.reason,
        "models": cfg.tiers.get(decision.tier, []),
    }
    if as_json:
        print_json(result)
    else:
        console.print(f"tier [bold]{decision.tier}[/bold] by rule {decision.rule or '(default)'}: {decision.reason}")


@route_app.command("train")
def train_cmd(
    data: str = typer.Argument(
        ...,
        help="JSONL of {prompt, label[, weak_quality, strong_quality, output_tokens]} "
        "(label: strong/weak or a tier name), or gsm8k / mmlu / mt-bench.",
    ),
    output: str = typer.Option(
        "router.joblib", "-o", "--output", help="Where to save the model.", callback=output_file
    ),
    target_quality: Optional[float] = number_option(
        None,
        "--target-quality",
        help="Pick the cheapest threshold keeping this share of always-strong quality (e.g. 0.95).",
        min=0,
    ),
    max_cost_usd: Optional[Decimal] = usd_option(
        None,
        "--max-cost-usd",
        "Or: the best-quality threshold whose average cost per request stays within this many USD.",
    ),
    holdout: Optional[float] = number_option(
        None,  # None: not given, so it can be refused where it would not be used
        "--holdout",
        min=0.01,
        max=0.99,
        help=f"Share of each class held out to calibrate the threshold \\[default: {HOLDOUT}].",
    ),
    # Defaults named in words: a 41-character model id was cut in a help column at 80 columns.
    weak_model: str = typer.Option(
        WEAK_MODEL,
        "--weak-model",
        show_default=False,
        help="Catalog model pricing the cheap tier \\[default: Mixtral 8x7B on Bedrock].",
    ),
    strong_model: str = typer.Option(
        STRONG_MODEL,
        "--strong-model",
        show_default=False,
        help="Catalog model pricing the strong tier \\[default: Claude 3.7 Sonnet on Bedrock].",
    ),
    region: str = typer.Option("us-east-1", "--region", help="Region of both prices."),
    seed: int = typer.Option(0, "--seed", min=0, max=SEED_MAX, help="Seed of the calibration split."),
    router_kind: str = typer.Option(
        "tfidf",
        "--router",
        help="tfidf (TF-IDF + logistic regression), embedding (static MiniLM embedding, regression on the "
        "strong model's quality gain) or combined (TF-IDF + embedding + difficulty cues, one quality head per "
        "model); an `embedding` or `combined` policy needs a router of its kind.",
    ),
    folds: Optional[int] = typer.Option(
        None,
        "--folds",
        min=2,  # 0 was taken for "no folds": the --holdout split, silently
        help="Calibrate on out-of-fold scores of all prompts (cross-fitting, e.g. 5) instead of a --holdout share.",
    ),
    weak_label: Optional[list[str]] = typer.Option(
        None,
        "--weak-label",
        help="Label or tier meaning the cheap tier was good enough (repeatable); any other label counts as strong.",
    ),
    as_json: bool = JsonOption,
) -> None:
    """Fit a router (TF-IDF + logistic regression, the embedding router or the combined router) on labelled
    prompts; with a target, calibrate the decision threshold on prompts it was not fitted on and save it with the
    model (the router then uses it unless the policy sets `threshold`)."""
    from tokenomy.commands.route_output import print_prices
    from tokenomy.routing.calibrate import check_both_classes, train_and_calibrate
    from tokenomy.routing.classifier import save
    from tokenomy.routing.datasets import load_training_data
    from tokenomy.routing.outcome_prices import price

    _check_split_options(target_quality is not None or max_cost_usd is not None, holdout, folds)
    frame = load_training_data(data, set(weak_label) if weak_label else None)
    check_both_classes(frame, router_kind, data)
    router, report = train_and_calibrate(
        frame,
        HOLDOUT if holdout is None else holdout,
        seed,
        target_quality,
        None if max_cost_usd is None else float(max_cost_usd),  # the calibration curve's costs are float estimates
        price(weak_model, region),
        price(strong_model, region),
        kind=router_kind,
        folds=folds,
        source=data,
    )
    save(router, output)
    result = {"output": output, "examples": len(frame), "threshold": router.threshold, "calibration": report}
    if as_json:
        print_json(result)
    elif report:
        console.print(
            f"{router_kind} router trained on {report['trained_on']} prompts; threshold {router.threshold:.4f} "
            + (
                f"calibrated on out-of-fold scores of {report['held_out']} prompts ({folds} folds): "
                if folds
                else f"calibrated on {report['held_out']} held-out prompts: "
            )
            + f"{report['quality_retained']:.1%} of strong quality, "
            f"{report['strong_share']:.1%} strong calls, ${report['cost_per_request']:.6f} per request "
            f"({weak_model} / {strong_model}); saved {output}"
        )
        print_prices(report["prices"])
    else:
        console.print(f"trained on {len(frame)} prompts; threshold 0.5 (not calibrated); saved {output}")


def _check_split_options(calibrating: bool, holdout: float | None, folds: int | None) -> None:
    """--holdout and --folds only choose how a threshold is calibrated: without a target each was dropped unsaid
    (a --folds meant to calibrate trained uncalibrated, exit 0), and --holdout beside --folds was not used."""
    from tokenomy.errors import UsageError

    if not calibrating:
        for name, value in (("--folds", folds), ("--holdout", holdout)):
            if value is not None:
                raise UsageError(
                    f"{name} {value:g}: only calibrating a threshold uses it; give --target-quality or "
                    f"--max-cost-usd too, or leave {name} out"
                )
    if holdout is not None and folds:
        raise UsageError(
            f"--holdout {holdout:g} and --folds {folds}: give one; --folds calibrates on out-of-fold scores of every "
            "prompt, --holdout on a held-out share"
        )


def _image_file(param: typer.CallbackParam, value: str) -> str:
    """`output_file`, with a suffix matplotlib writes: curve.txt was its "Format 'txt' is not supported" traceback
    after the whole evaluation, and a name without one was written with .png added, not where the output said."""
    from pathlib import Path

    from matplotlib.backend_bases import FigureCanvasBase

    value = output_file(param, value)
    if Path(value).suffix.lower().lstrip(".") not in FigureCanvasBase.get_supported_filetypes():
        raise typer.BadParameter(
            f"{value}: end the name with an image format matplotlib writes (png, pdf, svg, jpg, ...), e.g. curve.png"
        )
    return value


@route_app.command("eval")
def eval_cmd(
    dataset: str = typer.Argument(..., help="gsm8k, mmlu, mt-bench, or a path to RouteLLM outcome files."),
    strong_model: str = typer.Option(
        STRONG_MODEL,
        "--strong-model",
        "--strong",
        show_default=False,  # its 41-character id was cut in a help column at 80 columns
        help="Catalog model that prices the strong side (weak: Bedrock Mixtral 8x7B) "
        "\\[default: Claude 3.7 Sonnet on Bedrock].",
    ),
    region: str = typer.Option("us-east-1", "--region", help="Region of both prices."),
    rules: Optional[str] = typer.Option(
        None,
        "--rules",
        help="Config with a rules policy (and a cascade's "
        "validators) to replay \\[default: eval_rules.yaml in examples/routing].",
    ),
    target_quality: float = number_option(
        0.95,
        "--target-quality",
        help="Quality floor the routers' thresholds are calibrated to (share of always-strong quality).",
        min=0,
    ),
    png: str = typer.Option(
        "route_eval.png", "--png", help="Cost-quality curve PNG (or .pdf, .svg, ...).", callback=_image_file
    ),
    seed: int = typer.Option(0, "--seed", min=0, max=SEED_MAX, help="Seed of the train / held-out split."),
    seeds: int = typer.Option(
        1,
        "--seeds",
        min=1,
        max=SEEDS_MAX,
        help=f"Also repeat on N splits (seeds 0..N-1; at most {SEEDS_MAX}, each split trains every router again) and "
        "print each router's median: one split of a small set is luck.",
    ),
    as_json: bool = JsonOption,
) -> None:
    """Train on a seeded half, report each policy on the held-out half (cost, quality, strong share, routing
    accuracy), and each router's CPT(50/80/95%), APGR and decision time."""
    from tokenomy.commands.route_output import show_eval
    from tokenomy.routing.evaluate import evaluate, over_seeds

    with console.status(f"training and replaying {dataset}"):
        result = evaluate(
            dataset, strong_model, region=region, seed=seed, png=png, rules=rules, target_quality=target_quality
        )
        if seeds > 1:
            result["over_seeds"] = over_seeds(
                dataset, seeds, strong_model=strong_model, region=region, rules=rules, target_quality=target_quality
            )
    if as_json:
        # One object per policy (as the checks expect); the run's summary rides along on each.
        extra = {k: v for k, v in result.items() if k not in ("policies", "curve")}
        print_json([{**extra, **p} for p in result["policies"]])  # a row's own keys (its threshold) win
        return
    show_eval(result, dataset, png, seeds)


@route_app.command("drift")
def drift_cmd(
    config: Optional[str] = typer.Option(None, "--config", help="tokenomy.yaml with routes and routing.policies."),
    ledger: Optional[str] = LedgerOption,
    days: int = typer.Option(7, "--days", min=1, max=36_500, help="Look back this many days."),
    as_json: bool = JsonOption,
) -> None:
    """Escalation rate per routed route against its threshold, and each tier's share against the expected one."""
    from datetime import datetime, timedelta

    from tokenomy.commands._common import open_existing_ledger
    from tokenomy.commands.route_output import show_drift
    from tokenomy.config import load_config
    from tokenomy.routing.drift import escalation_rates, expected_tier_shares, tier_share

    cfg = load_config(config)
    store = open_existing_ledger(ledger or cfg.ledger)
    since = datetime.now(UTC) - timedelta(days=days)
    result = {
        "escalation": escalation_rates(store, cfg, since),
        # The same expectations and tolerance `alerts check` uses (policy shares, else routing.expected_tier_share).
        "tier_share": tier_share(store, since, expected_tier_shares(cfg), cfg.alert_settings().tier_tolerance),
    }
    if as_json:
        print_json(result)
        return
    show_drift(result, days)


@route_app.command("export-labels")
def export_labels_cmd(
    output: str = typer.Option(
        "labels.jsonl", "-o", "--output", help="JSONL for `tokenomy route train`.", callback=output_file
    ),
    config: Optional[str] = typer.Option(None, "--config", help="tokenomy.yaml: its cascade routes are exported."),
    route: Optional[list[str]] = typer.Option(None, "--route", help="Cascade route(s) to export (repeatable)."),
    ledger: Optional[str] = LedgerOption,
    as_json: bool = JsonOption,
) -> None:
    """Turn cascade outcomes in the ledger into training labels: answered by the cheap tier = weak, escalated =
    strong (needs `store_prompts: true`)."""
    from tokenomy.commands._common import open_existing_ledger
    from tokenomy.config import load_config
    from tokenomy.routing.labels import cascade_export, cascade_routes, write_jsonl

    cfg = load_config(config)
    routes = route or cascade_routes(cfg)
    labels, skipped = cascade_export(open_existing_ledger(ledger or cfg.ledger), routes)
    if not labels:  # an empty file would only fail later in `route train`; a mistyped --route is the usual cause
        from tokenomy.errors import UsageError

        raise UsageError(
            f"no cascade outcomes in the ledger for route(s) {', '.join(routes)}; check --route "
            "(the names clients send as `model`) and --ledger; nothing written"
        )
    write_jsonl(labels, output)
    result = {
        "output": output,
        "examples": len(labels),
        "strong": sum(r["label"] == "strong" for r in labels),
        "skipped": skipped,
    }
    if as_json:
        print_json(result)
        return
    # Said, not only counted in --json: the file holds fewer prompts than the ledger has requests.
    why = {
        "no_prompt_text": "with no prompt text",
        "blank_prompt": "with a blank prompt",
        "not_judged": "the cheap tier never answered (passed up)",
    }
    said = ""
    if left_out := [(n, why[kind]) for kind, n in skipped.items() if n]:
        (n, first), *rest = left_out
        said = "; skipped " + " and ".join(
            [f"{n} request{'' if n == 1 else 's'} {first}", *(f"{m} {w}" for m, w in rest)]
        )
    console.print(f"wrote {result['examples']} labelled prompts ({result['strong']} strong) to {output}{said}")
