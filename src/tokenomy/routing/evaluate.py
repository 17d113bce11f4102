"""Replay RouteLLM outcomes (GSM8K, MMLU, MT-Bench): each routing policy's cost and quality on a held-out split.

The routers (TF-IDF classifier, embedding router, combined router) are trained on one seeded half of the data and
their thresholds calibrated on out-of-fold scores of that half (cross-fitting); every policy is reported on the
other half, which nothing was fitted or calibrated on. Policies: always-cheapest, always-best, oracle, random (at
the embedding router's strong share, so equal cost), rules (a rule file applied to the prompts), classifier,
embedding, combined, cascade (the weak model's real responses judged by the cascade validators) and hybrid
(the combined router's predicted-hard prompts straight to the strong model, the rest through the cascade); the last
two on GSM8K only, the one set with responses.
"""

from __future__ import annotations

import time
from decimal import Decimal
from pathlib import Path

import numpy as np
import pandas as pd

from tokenomy.chat_response import ChatResponse, Usage
from tokenomy.data import examples
from tokenomy.errors import UsageError
from tokenomy.messages import ChatRequest
from tokenomy.routing.calibrate import (
    calibrate,
    check_both_classes,
    fit_router,
    out_of_fold_scores,
    plain_folds,
    router_classes,
    split,
    sweep,
)
from tokenomy.routing.classifier import TrainedRouter, strong_probability
from tokenomy.routing.datasets import load_outcomes
from tokenomy.routing.outcome_prices import STRONG_MODEL, WEAK_MODEL, Price, call_costs, exact_cost, price
from tokenomy.routing.rules import Policy, explain
from tokenomy.routing.validators import validate

DEFAULT_RULES = examples("routing/eval_rules.yaml")
FOLDS = 5  # cross-fitting folds for threshold calibration
CONFIDENCE = 0.8  # share of bootstrap resamples of the calibration set in which the target must hold
ROUTERS = {"classifier": "tfidf", "embedding": "embedding", "combined": "combined"}
HYBRID_SCORES = "combined"  # the router whose scores pick the hybrid's predicted-hard prompts


def _policies(rules_file: str | Path | None) -> tuple[Policy | None, dict | None, str | None]:
    """The first rules policy and the first cascade's validators in a config file (None when absent)."""
    from tokenomy.config import load_config

    path = Path(rules_file) if rules_file else DEFAULT_RULES
    if not path.exists():
        if rules_file:
            raise UsageError(f"--rules {rules_file}: no such file; give a tokenomy.yaml with routing.policies")
        return None, None, None
    rules = cascade = None
    for policy in load_config(str(path)).routing.policies.values():
        if policy.type in ("rules", "hybrid") and rules is None and policy.rules:
            rules = policy
        if policy.type == "cascade" and cascade is None:
            cascade = policy.validators
    if rules_file and rules is None and cascade is None:  # it was replayed as no rules at all, exit 0
        raise UsageError(
            f"--rules {rules_file}: no rules policy (type rules or hybrid, with rules) and no cascade under "
            "routing.policies, so nothing to replay; add one, or leave --rules out for the example rules"
        )
    return rules, cascade, str(path)


def rule_decisions(policy: Policy, prompts: pd.Series) -> np.ndarray:
    """True where the rules pick any tier other than the cheapest (the policy's first tier or default)."""
    cheapest = (policy.tiers or [policy.default_tier or "tier1"])[0]
    return np.array([explain(policy, ChatRequest.simple(p), cheapest).tier != cheapest for p in prompts], bool)


def cascade_escalations(test: pd.DataFrame, validators: dict) -> np.ndarray:
    """True where the validators reject the weak model's real response, so the cascade escalates."""
    return np.array(
        [
            validate(
                ChatResponse.of_text(r if isinstance(r, str) else "", WEAK_MODEL, "bedrock", Usage()),
                ChatRequest.simple(p),
                validators,
            )
            is not None
            for p, r in zip(test["prompt"], test["weak_response"], strict=True)
        ],
        bool,
    )


def _row(
    name: str,
    strong_mask: np.ndarray,
    test: pd.DataFrame,
    weak: Price,
    strong: Price,
    escalated: np.ndarray | None = None,
    **extra,
) -> dict:
    weak_q, strong_q = test["weak_quality"].to_numpy(float), test["strong_quality"].to_numpy(float)
    quality = float(np.where(strong_mask, strong_q, weak_q).mean())
    cost = exact_cost(test, strong_mask, weak, strong, weak_too=escalated)
    oracle = strong_q > weak_q
    return {
        "policy": name,
        "cost": cost,
        "cost_per_1k": (cost * 1000 / len(test)).quantize(Decimal("1e-8")),
        "quality": quality,
        "quality_retained": quality / strong_q.mean(),
        "strong_share": float(strong_mask.mean()),
        "routing_accuracy": float((strong_mask == oracle).mean()),
        "escalation_rate": float(escalated.mean()) if escalated is not None else 0.0,
        **extra,
    }


def curve_metrics(curve: pd.DataFrame, weak_q: np.ndarray, strong_q: np.ndarray, target: float) -> dict:
    """RouteLLM's metrics of one router's held-out curve: CPT(x%) = the least strong-call share recovering x% of
    the quality gap between the weak and the strong model (performance gap recovered, PGR), APGR = the area
    under PGR against strong share; plus `share_at_target`, the least share keeping `target` of strong quality."""
    gap = strong_q.mean() - weak_q.mean()
    pgr = (curve["quality"] - weak_q.mean()) / gap if gap > 0 else curve["quality"] * 0 + 1
    out = {}
    for level in (0.5, 0.8, 0.95):
        reaching = curve[pgr >= level - 1e-12]
        out[f"cpt{round(level * 100)}"] = float(reaching["strong_share"].min()) if len(reaching) else 1.0
    out["apgr"] = float(np.trapezoid(pgr.clip(upper=1.0), curve["strong_share"]))
    reaching = curve[curve["quality_retained"] >= target - 1e-12]
    out["share_at_target"] = float(reaching["strong_share"].min()) if len(reaching) else 1.0
    return out


def decision_times(router: TrainedRouter, prompts: list[str], count: int = 500) -> dict:
    """p50 / p99 milliseconds of one routing decision (score one prompt, compare to the threshold): wall clock,
    and this thread's CPU time (on a busy machine the wall p99 is mostly time spent waiting for a core)."""
    for prompt in prompts[:10]:  # warm-up: lazy imports, the embedding table, caches
        strong_probability(router, prompt)
    wall, cpu = [], []
    for i in range(count):
        prompt = prompts[i % len(prompts)]
        start, start_cpu = time.perf_counter(), time.thread_time()
        _ = strong_probability(router, prompt) >= router.threshold
        cpu.append((time.thread_time() - start_cpu) * 1000)
        wall.append((time.perf_counter() - start) * 1000)
    return {
        "decision_ms_p50": float(np.percentile(wall, 50)),
        "decision_ms_p99": float(np.percentile(wall, 99)),
        "decision_cpu_ms_p99": float(np.percentile(cpu, 99)),
    }


def evaluate(
    dataset: str,
    strong_model: str = STRONG_MODEL,
    region: str = "us-east-1",
    seed: int = 0,
    png: str | None = None,
    rules: str | None = None,
    target_quality: float = 0.95,
    test_fraction: float = 0.5,
) -> dict:
    """Train on a seeded part, calibrate thresholds on out-of-fold scores of it, report every policy on the rest."""
    frame = load_outcomes(dataset)
    weak, strong = price(WEAK_MODEL, region), price(strong_model, region)
    train_part, test = split(frame, test_fraction, seed)
    _check_training_half(frame, train_part, dataset, seed)
    weak_q, strong_q = test["weak_quality"].to_numpy(float), test["strong_quality"].to_numpy(float)
    weak_cost, strong_cost = call_costs(test, weak, strong)
    rule_policy, validators, rules_path = _policies(rules)
    has_responses = bool(test["weak_response"].notna().any())

    fitted, calibration, routed, curves, metrics = {}, {}, {}, {}, {}
    out_of_fold: dict[str, np.ndarray] = {}
    for name, kind in ROUTERS.items():
        out_of_fold[name] = out_of_fold_scores(train_part, kind, FOLDS, seed)
        fitted[name] = TrainedRouter(fit_router(train_part, kind, seed))
        calibration[name] = calibrate(
            fitted[name], out_of_fold[name], train_part, weak, strong, target_quality, confidence=CONFIDENCE, seed=seed
        )
    escalated = train_escalated = None
    if has_responses:  # hybrid: one router's scores, its threshold calibrated with the cascade behind it
        escalated = cascade_escalations(test, validators or {})
        train_escalated = cascade_escalations(train_part, validators or {})
        fitted["hybrid"] = TrainedRouter(fitted[HYBRID_SCORES].pipeline)
        calibration["hybrid"] = calibrate(
            fitted["hybrid"],
            out_of_fold[HYBRID_SCORES],
            train_part,
            weak,
            strong,
            target_quality,
            confidence=CONFIDENCE,
            seed=seed,
            escalated=train_escalated,
        )
    for name, router in fitted.items():
        scores = router.pipeline.predict_proba(test["prompt"].tolist())[:, 1]
        routed[name] = scores >= router.threshold
        esc = escalated if name == "hybrid" else None
        curves[name] = sweep(scores, weak_q, strong_q, weak_cost, strong_cost, escalated=esc)
        metrics[name] = {
            **curve_metrics(curves[name], weak_q, strong_q, target_quality),
            "threshold": router.threshold,
            "calibrated_quality": calibration[name]["quality_retained"],
            **decision_times(router, test["prompt"].tolist()),
        }

    n = len(test)
    shuffled = np.zeros(n, bool)
    shuffled[np.random.default_rng(seed).permutation(n)[: int(routed["embedding"].sum())]] = True
    policies = [
        _row("always-cheapest", np.zeros(n, bool), test, weak, strong),
        _row("always-best", np.ones(n, bool), test, weak, strong),
        _row("oracle", strong_q > weak_q, test, weak, strong),
        _row("random", shuffled, test, weak, strong),
    ]
    if rule_policy is not None:
        policies.append(_row("rules", rule_decisions(rule_policy, test["prompt"]), test, weak, strong))
    for name in ROUTERS:
        policies.append(_row(name, routed[name], test, weak, strong, **metrics[name]))
    if escalated is not None:
        policies.append(_row("cascade", escalated, test, weak, strong, escalated))
        # Predicted-hard prompts go straight to strong; the rest start weak and escalate when the validators fail.
        weak_first = ~routed["hybrid"]
        policies.append(
            _row(
                "hybrid",
                routed["hybrid"] | (weak_first & escalated),
                test,
                weak,
                strong,
                weak_first & escalated,
                **metrics["hybrid"],
            )
        )

    gain = strong_q.mean() - weak_q.mean()
    # Random routing is linear in strong share between the two models' qualities.
    random_cpt = float(np.clip((target_quality * strong_q.mean() - weak_q.mean()) / gain, 0, 1)) if gain > 0 else 0.0
    if png:
        plot(curves, policies, png, dataset, strong_model)
    best = curves["embedding"]
    return {
        "dataset": dataset,
        "held_out": n,
        "trained_on": len(train_part),
        "calibrated_on": calibration["embedding"]["held_out"],
        "calibration": f"{FOLDS}-fold cross-fitted on the training half, target met in {CONFIDENCE:.0%} of "
        "bootstrap resamples",
        "threshold": fitted["classifier"].threshold,
        "target_quality": target_quality,
        "policies": policies,
        "routers": metrics,
        "cpt95_classifier": metrics["classifier"]["share_at_target"],
        "cpt95_embedding": metrics["embedding"]["share_at_target"],
        "cpt95_random": random_cpt,
        "apgr_classifier": metrics["classifier"]["apgr"],
        "weak_model": weak.model,
        "strong_model": strong.model,
        "prices": [weak.describe(), strong.describe()],
        "rules_file": rules_path,
        "cascade_validators": validators,
        "png": png,
        "curve": best.iloc[np.linspace(0, len(best) - 1, min(len(best), 21)).astype(int)].to_dict("records"),
    }


def _check_training_half(frame: pd.DataFrame, train_part: pd.DataFrame, dataset: str, seed: int) -> None:
    """Refuse, naming the dataset, outcomes a router cannot be fitted on: the strong model better on every prompt or
    none, in the data or in the seeded training half or without one of its folds (each was the fit's "route
    train: labels are all one class", naming neither the command nor the file)."""
    check_both_classes(frame, "embedding", dataset)  # outcomes: every router learns whether strong did better
    better = router_classes(train_part, "embedding")
    fold_of = plain_folds(len(train_part), FOLDS, seed)
    if all(len(set(better[fold_of != fold])) == 2 for fold in range(FOLDS)):
        return
    raise UsageError(
        f"{dataset}: too few prompts where the strong model scored higher ({int(better.sum())}) or did not "
        f"({int(len(better) - better.sum())}) in the training half of --seed {seed} for its {FOLDS} cross-fitting "
        f"folds: a router fitted without one fold saw only one kind; add prompts (several of each kind per fold), "
        "or try another --seed"
    )


def over_seeds(dataset: str, seeds: int, **options) -> dict:
    """Each router's share for the target quality and its calibrated point on `seeds` different train / held-out
    splits (seed 0 … seeds-1): on small sets (MT-Bench: 73 held-out prompts) one split's figure is mostly luck."""
    runs = [evaluate(dataset, seed=seed, **options) for seed in range(seeds)]
    summary: dict[str, dict[str, list[float]]] = {}
    for run in runs:
        rows = {p["policy"]: p for p in run["policies"]}
        for name, metrics in run["routers"].items():
            entry = summary.setdefault(name, {"share_at_target": [], "strong_share": [], "quality_retained": []})
            entry["share_at_target"].append(metrics["share_at_target"])
            entry["strong_share"].append(rows[name]["strong_share"])
            entry["quality_retained"].append(rows[name]["quality_retained"])
    return {
        name: {
            **values,
            "median_share_at_target": float(np.median(values["share_at_target"])),
            "median_strong_share": float(np.median(values["strong_share"])),
            "median_quality_retained": float(np.median(values["quality_retained"])),
        }
        for name, values in summary.items()
    }


def plot(curves: dict[str, pd.DataFrame], policies: list[dict], png: str, dataset: str, strong_model: str) -> None:
    """Quality retained against cost per 1,000 requests and against strong-model share, thresholds swept."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    points = {p["policy"]: p for p in policies}
    fig, (by_cost, by_share) = plt.subplots(1, 2, figsize=(11, 4.2))
    for ax, key, label in (
        (by_cost, "cost_per_1k", "cost per 1,000 requests (USD)"),
        (by_share, "strong_share", "share of calls to the strong model"),
    ):
        for name, curve in curves.items():
            x = curve["cost_per_request"] * 1000 if key == "cost_per_1k" else curve["strong_share"]
            ax.plot(x, curve["quality_retained"], label=f"{name} (threshold swept)")
        low, high = points["always-cheapest"], points["always-best"]
        ax.plot(
            [float(low[key]), float(high[key])],
            [low["quality_retained"], high["quality_retained"]],
            "--",
            color="grey",
            label="random",
        )
        for name, marker in (("rules", "s"), ("cascade", "^"), ("oracle", "*")):
            if name in points:
                ax.plot(float(points[name][key]), points[name]["quality_retained"], marker, label=name)
        for i, name in enumerate(curves):  # each router at the threshold calibrated on the training half
            dot = "calibrated thresholds" if i == 0 else None
            ax.plot(float(points[name][key]), points[name]["quality_retained"], "o", color="black", ms=4, label=dot)
        ax.axhline(0.95, color="grey", lw=0.5)
        ax.set_xlabel(label)
        ax.set_ylabel("quality retained vs always-strong")
    by_cost.legend(fontsize=8)
    fig.suptitle(f"{dataset}: held-out cost–quality, weak {WEAK_MODEL} vs strong {strong_model}", fontsize=9)
    fig.tight_layout()
    fig.savefig(png, dpi=100)
    plt.close(fig)
