"""Replay RouteLLM outcomes (GSM8K, MMLU): cost, quality, strong share, CPT(95%), APGR per policy."""

from __future__ import annotations

import glob
import re
from decimal import Decimal
from pathlib import Path

import numpy as np
import pandas as pd

from tokenomy.messages import Usage
from tokenomy.pricing.cost import compute_cost

WEAK_COL, STRONG_COL = "mistralai/Mixtral-8x7B-Instruct-v0.1", "gpt-4-1106-preview"
WEAK_MODEL = "mistral.mixtral-8x7b-instruct-v0:1"
SHARED = Path(__file__).resolve().parents[3].parent / "shared" / "data" / "routellm"
HEDGE = re.compile(r"i'm not sure|i am not sure|as an ai|cannot determine|not enough information", re.I)


def load(dataset: str) -> pd.DataFrame:
    """A path or the name gsm8k/mmlu under ../shared/data/routellm, read as is."""
    path = Path(dataset)
    if not path.exists():
        path = SHARED / ("gsm8k_responses.csv" if dataset == "gsm8k" else dataset)
    files = sorted(glob.glob(str(path / "*.csv"))) if path.is_dir() else [str(path)]
    return pd.concat([pd.read_csv(f) for f in files], ignore_index=True)


def _cascade_ok(text) -> bool:
    # Escalate when the weak answer hedges or has no final number (malformed for GSM8K).
    text = str(text) if isinstance(text, str) else ""
    return bool(text.strip()) and not HEDGE.search(text) and re.search(r"-?\d[\d,]*(\.\d+)?\s*\W*$", text.strip()) is not None


def evaluate(dataset: str, strong_model: str = "anthropic.claude-3-7-sonnet-20250219-v1:0",
             region: str = "us-east-1", seed: int = 0, png: str | None = None) -> dict:
    """Train on a seeded half, report policies on the held-out half."""
    from tokenomy.routing.classifier import strong_probability, train

    df = load(dataset)
    rng = np.random.default_rng(seed)
    test_mask = rng.random(len(df)) < 0.5
    train_df, test = df[~test_mask], df[test_mask].reset_index(drop=True)
    weak_ok, strong_ok = test[WEAK_COL].astype(bool).to_numpy(), test[STRONG_COL].astype(bool).to_numpy()
    labels = (~train_df[WEAK_COL].astype(bool) & train_df[STRONG_COL].astype(bool)).astype(int).tolist()
    model = train(train_df["prompt"].astype(str).tolist(), labels, seed)
    scores = model.predict_proba(test["prompt"].astype(str).tolist())[:, 1]
    in_tok = int(test["prompt"].astype(str).str.len().mean() / 4) or 1  # ~4 characters per token
    out_tok = int(test[WEAK_COL + "_response"].astype(str).str.len().mean() / 4) if WEAK_COL + "_response" in test else 256
    weak_cost = compute_cost(Usage(in_tok, out_tok), WEAK_MODEL, region)
    strong_cost = compute_cost(Usage(in_tok, out_tok), strong_model, region)
    n = len(test)

    def row(name, strong_mask, escalated=None):
        quality = float(np.where(strong_mask, strong_ok, weak_ok).mean())
        cost = weak_cost.total_usd * int((~strong_mask).sum()) + strong_cost.total_usd * int(strong_mask.sum())
        if escalated is not None:
            cost += weak_cost.total_usd * int(escalated.sum())
        oracle = ~weak_ok & strong_ok
        return {"policy": name, "cost": cost, "quality": quality, "strong_share": float(strong_mask.mean()),
                "quality_retained": quality / strong_ok.mean(), "routing_accuracy": float((strong_mask == oracle).mean()),
                "escalation_rate": float(escalated.mean()) if escalated is not None else 0.0}

    thresholds = np.quantile(scores, np.linspace(0, 1, 51))
    curve = [(float((scores >= t).mean()), float(np.where(scores >= t, strong_ok, weak_ok).mean())) for t in thresholds]
    curve = sorted(curve + [(0.0, float(weak_ok.mean())), (1.0, float(strong_ok.mean()))])
    target = 0.95 * strong_ok.mean()
    cpt = min((s for s, q in curve if q >= target), default=1.0)
    shares, quals = np.array([c[0] for c in curve]), np.array([c[1] for c in curve])
    gain = strong_ok.mean() - weak_ok.mean()
    apgr = float(np.trapezoid((quals - weak_ok.mean()) / gain, shares)) if gain else 0.0
    random_cpt = float((target - weak_ok.mean()) / gain) if gain else 1.0  # random routing is linear in share
    rate = float((scores >= 0.5).mean())
    policies = [row("always-cheapest", np.zeros(n, bool)), row("always-best", np.ones(n, bool)),
                row("oracle", ~weak_ok & strong_ok),
                row("random", rng.random(n) < rate), row("classifier", scores >= 0.5)]
    if WEAK_COL + "_response" in test:
        esc = ~test[WEAK_COL + "_response"].map(_cascade_ok).to_numpy(bool)
        policies.append(row("cascade", esc, esc))
    if png:
        import matplotlib
        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
        fig, ax = plt.subplots(figsize=(6, 4))
        ax.plot(shares, quals, label="classifier")
        ax.plot([0, 1], [weak_ok.mean(), strong_ok.mean()], "--", label="random")
        ax.axhline(target, color="grey", lw=0.5, label="95% of strong")
        ax.set_xlabel("strong-model share"), ax.set_ylabel("quality"), ax.legend()
        fig.savefig(png, dpi=100)
        plt.close(fig)
    prices = [{"model": m, "region": region, "source": c.source, "as_of": c.as_of}
              for m, c in ((WEAK_MODEL, weak_cost), (strong_model, strong_cost))]
    return {"dataset": dataset, "held_out": n, "trained_on": len(train_df), "policies": policies,
            "cpt95_classifier": cpt, "cpt95_random": random_cpt, "apgr_classifier": apgr, "prices": prices,
            "tokens_per_call": {"input": in_tok, "output": out_tok}}
