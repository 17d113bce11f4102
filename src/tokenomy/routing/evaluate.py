"""Replay RouteLLM outcomes (GSM8K, MMLU, MT-Bench): each routing policy's cost and quality on a held-out split.

The classifier is trained on one seeded part of the data, its threshold calibrated on a slice of that
part, and every policy is reported on the other part, which nothing was fitted on. Policies:
always-cheapest, always-best, oracle, random (at the classifier's strong share, so equal cost),
rules (a rule file applied to the prompts), classifier, and cascade (the weak model's real responses
judged by the cascade validators; GSM8K only, the one set with responses).
"""

from __future__ import annotations

from decimal import Decimal
from pathlib import Path

import numpy as np
import pandas as pd

from tokenomy.data import examples
from tokenomy.messages import ChatRequest, ChatResponse, Usage
from tokenomy.routing.calibrate import (
    STRONG_MODEL,
    WEAK_MODEL,
    Price,
    call_costs,
    exact_cost,
    price,
    split,
    sweep,
    train_and_calibrate,
)
from tokenomy.routing.datasets import load_outcomes
from tokenomy.routing.rules import Policy, explain
from tokenomy.routing.validators import validate

DEFAULT_RULES = examples("routing/eval_rules.yaml")


def _policies(rules_file: str | Path | None) -> tuple[Policy | None, dict | None, str | None]:
    """The first rules policy and the first cascade's validators in a config file (None when absent)."""
    from tokenomy.config import load_config

    path = Path(rules_file) if rules_file else DEFAULT_RULES
    if not path.exists():
        if rules_file:
            from tokenomy.errors import UsageError

            raise UsageError(f"--rules {rules_file}: no such file; give a tokenomy.yaml with routing.policies")
        return None, None, None
    rules = cascade = None
    for policy in load_config(str(path)).routing.policies.values():
        if policy.type in ("rules", "hybrid") and rules is None and policy.rules:
            rules = policy
        if policy.type == "cascade" and cascade is None:
            cascade = policy.validators
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
    """Train on a seeded part, calibrate the threshold on a slice of it, report every policy on the rest."""
    frame = load_outcomes(dataset)
    weak, strong = price(WEAK_MODEL, region), price(strong_model, region)
    train_part, test = split(frame, test_fraction, seed)
    router, calibration = train_and_calibrate(
        train_part, holdout=0.2, seed=seed, target_quality=target_quality, weak=weak, strong=strong
    )
    scores = router.pipeline.predict_proba(test["prompt"].tolist())[:, 1]
    weak_q, strong_q = test["weak_quality"].to_numpy(float), test["strong_quality"].to_numpy(float)
    weak_cost, strong_cost = call_costs(test, weak, strong)
    curve = sweep(scores, weak_q, strong_q, weak_cost, strong_cost)

    n = len(test)
    routed = scores >= router.threshold
    shuffled = np.zeros(n, bool)
    shuffled[np.random.default_rng(seed).permutation(n)[: int(routed.sum())]] = True
    policies = [
        _row("always-cheapest", np.zeros(n, bool), test, weak, strong),
        _row("always-best", np.ones(n, bool), test, weak, strong),
        _row("oracle", strong_q > weak_q, test, weak, strong),
        _row("random", shuffled, test, weak, strong),
    ]
    rule_policy, validators, rules_path = _policies(rules)
    if rule_policy is not None:
        policies.append(_row("rules", rule_decisions(rule_policy, test["prompt"]), test, weak, strong))
    policies.append(_row("classifier", routed, test, weak, strong, threshold=router.threshold))
    if test["weak_response"].notna().any():
        escalated = cascade_escalations(test, validators or {})
        policies.append(_row("cascade", escalated, test, weak, strong, escalated))

    gain = strong_q.mean() - weak_q.mean()
    reaching = curve[curve["quality_retained"] >= 0.95 - 1e-12]
    cpt = float(reaching["strong_share"].min()) if len(reaching) else 1.0
    # Random routing is linear in strong share between the two models' qualities.
    random_cpt = float(np.clip((0.95 * strong_q.mean() - weak_q.mean()) / gain, 0, 1)) if gain > 0 else 0.0
    recovered = (curve["quality"] - weak_q.mean()) / gain if gain else curve["quality"] * 0
    apgr = float(np.trapezoid(recovered, curve["strong_share"]))
    if png:
        plot(curve, policies, png, dataset, strong_model)
    return {
        "dataset": dataset,
        "held_out": n,
        "trained_on": calibration["trained_on"],
        "calibrated_on": calibration["held_out"],
        "threshold": router.threshold,
        "target_quality": target_quality,
        "policies": policies,
        "cpt95_classifier": cpt,
        "cpt95_random": random_cpt,
        "apgr_classifier": apgr,
        "weak_model": weak.model,
        "strong_model": strong.model,
        "prices": [weak.describe(), strong.describe()],
        "rules_file": rules_path,
        "cascade_validators": validators,
        "png": png,
        "curve": curve.iloc[np.linspace(0, len(curve) - 1, min(len(curve), 21)).astype(int)].to_dict("records"),
    }


def plot(curve: pd.DataFrame, policies: list[dict], png: str, dataset: str, strong_model: str) -> None:
    """Quality retained against cost per 1,000 requests and against strong-model share, thresholds swept."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    points = {p["policy"]: p for p in policies}
    fig, (by_cost, by_share) = plt.subplots(1, 2, figsize=(11, 4.2))
    for ax, x, key, label in (
        (by_cost, curve["cost_per_request"] * 1000, "cost_per_1k", "cost per 1,000 requests (USD)"),
        (by_share, curve["strong_share"], "strong_share", "share of calls to the strong model"),
    ):
        ax.plot(x, curve["quality_retained"], label="classifier (threshold swept)")
        low, high = points["always-cheapest"], points["always-best"]
        ax.plot(
            [float(low[key]), float(high[key])],
            [low["quality_retained"], high["quality_retained"]],
            "--",
            color="grey",
            label="random",
        )
        for name, marker in (("rules", "s"), ("cascade", "^"), ("classifier", "o"), ("oracle", "*")):
            if name in points:
                ax.plot(float(points[name][key]), points[name]["quality_retained"], marker, label=name)
        ax.axhline(0.95, color="grey", lw=0.5)
        ax.set_xlabel(label)
        ax.set_ylabel("quality retained vs always-strong")
    by_cost.legend(fontsize=8)
    fig.suptitle(f"{dataset}: held-out cost–quality, weak {WEAK_MODEL} vs strong {strong_model}", fontsize=9)
    fig.tight_layout()
    fig.savefig(png, dpi=100)
    plt.close(fig)
