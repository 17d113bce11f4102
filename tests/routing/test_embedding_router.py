"""The embedding router on the packaged RouteLLM outcomes: it trains, beats random at equal cost on prompts it never
saw, its calibrated threshold holds on held-out data, a policy can name it; the hybrid's sweep and the arithmetic
validator that verifies the cascade. Decision time is measured by benchmarks/router_latency.py, not asserted here."""

from __future__ import annotations

import json
import os
import subprocess
import sys

import numpy as np
import pytest

from helpers import REPO
from tokenomy.chat_response import ChatResponse, Usage
from tokenomy.config import parse_config
from tokenomy.errors import ConfigError
from tokenomy.messages import ChatRequest
from tokenomy.routing.calibrate import split, sweep, train_and_calibrate
from tokenomy.routing.datasets import load_outcomes
from tokenomy.routing.outcome_prices import STRONG_MODEL, WEAK_MODEL, call_costs, price
from tokenomy.routing.router import build_router
from tokenomy.routing.validators import validate, wrong_calculation


def _on(router, frame):
    """(quality retained vs always-strong, strong share) of a calibrated router on `frame`."""
    routed = router.pipeline.predict_proba(frame["prompt"].tolist())[:, 1] >= router.threshold
    quality = np.where(routed, frame["strong_quality"], frame["weak_quality"]).mean()
    return quality / frame["strong_quality"].mean(), routed.mean()


def test_embedding_router_beats_random_at_equal_cost_on_held_out_prompts():
    frame = load_outcomes("gsm8k")
    train_half, held_out = split(frame, 0.5, seed=0)
    router, _ = train_and_calibrate(train_half, target_quality=0.95, kind="embedding", folds=5)
    assert router.pipeline.kind == "embedding"
    scores = router.pipeline.predict_proba(held_out["prompt"].tolist())[:, 1]
    weak_q, strong_q = held_out["weak_quality"].to_numpy(float), held_out["strong_quality"].to_numpy(float)
    curve = sweep(scores, weak_q, strong_q, *call_costs(held_out, price(WEAK_MODEL), price(STRONG_MODEL)))
    # Random routing at share s keeps weak + s * (strong - weak) quality: the router must do better at equal share
    # across the middle of the curve (APGR above random's 0.5) and at its own operating point.
    gap = strong_q.mean() - weak_q.mean()
    recovered = (curve["quality"] - weak_q.mean()) / gap
    assert np.trapezoid(recovered.clip(upper=1), curve["strong_share"]) > 0.55
    retained, share = _on(router, held_out)
    random_retained = (weak_q.mean() + share * gap) / strong_q.mean()
    assert retained > random_retained + 0.02


def test_calibrated_threshold_holds_on_the_held_out_half():
    frame = load_outcomes("mmlu")
    train_half, held_out = split(frame, 0.5, seed=3)
    router, report = train_and_calibrate(train_half, target_quality=0.95, kind="embedding", folds=5, confidence=0.8)
    assert report["method"] == "5-fold cross-fitted" and report["held_out"] == report["trained_on"] == len(train_half)
    assert report["quality_retained"] >= 0.95
    retained, share = _on(router, held_out)
    # The target holds on ~7,000 unseen prompts within sampling error, at clearly less than always-strong.
    assert retained >= 0.95 - 0.01
    assert share < 0.75


def test_a_policy_names_the_embedding_router(tmp_path):
    model = tmp_path / "embedding.joblib"
    out = subprocess.run(
        [
            sys.executable,
            "-m",
            "tokenomy.cli",
            "route",
            "train",
            "gsm8k",
            "--router",
            "embedding",
            "--folds",
            "5",
            "--target-quality",
            "0.9",
            "-o",
            str(model),
            "--json",
        ],
        capture_output=True,
        text=True,
        timeout=300,
        cwd=REPO,
    )
    assert out.returncode == 0, out.stderr
    report = json.loads(out.stdout)["calibration"]
    assert report["router"] == "embedding" and report["quality_retained"] >= 0.9
    cfg = parse_config(
        {
            "tiers": {"tier1": ["local"], "tier2": ["local"]},
            "routing": {
                "policies": {"smart": {"type": "embedding", "classifier_path": str(model), "tiers": ["tier1", "tier2"]}}
            },
        }
    )
    router = build_router(cfg, "smart")
    hard = "A train leaves at 3:40 pm at 72 km/h; a second leaves 25 minutes later at 90 km/h. When does it catch up?"
    decisions = [router.route(ChatRequest.simple(p)).decision for p in (hard, "What is 2 + 2?")]
    assert {d.rule for d in decisions} == {"embedding"}
    probability = router.model().pipeline.predict_proba([hard])[0][1]
    assert decisions[0].tier == ("tier2" if probability >= router.model().threshold else "tier1")
    # A TF-IDF file under an embedding policy, and a misspelt type, are refused with the fix.
    tfidf = tmp_path / "tfidf.joblib"
    subprocess.run(
        [sys.executable, "-m", "tokenomy.cli", "route", "train", "mt-bench", "-o", str(tfidf)],
        capture_output=True,
        timeout=300,
        cwd=REPO,
        check=True,
    )
    cfg.routing.policies["smart"].classifier_path = str(tfidf)
    with pytest.raises(ConfigError, match="--router embedding"):
        build_router(cfg, "smart").route(ChatRequest.simple(hard))
    with pytest.raises(ConfigError, match=r"routing\.policies\.smart\.type"):
        parse_config({"tiers": {"tier1": ["local"]}, "routing": {"policies": {"smart": {"type": "embeding"}}}})


def test_hybrid_sweep_counts_escalations_as_strong_calls():
    # Four prompts; prompt 2 escalates (its weak answer failed the validators), so it pays both and gets strong.
    scores = np.array([0.9, 0.1, 0.5, 0.3])
    weak_q, strong_q = np.array([0.0, 1.0, 0.0, 1.0]), np.ones(4)
    weak_cost, strong_cost = np.full(4, 1.0), np.full(4, 10.0)
    escalated = np.array([False, False, True, False])
    curve = sweep(scores, weak_q, strong_q, weak_cost, strong_cost, escalated=escalated)
    # Threshold above all: only the escalation is a strong call; quality 3/4 (prompt 0 wrong), cost (1+1+11+1)/4.
    assert curve["strong_share"].tolist() == [0.25, 0.5, 0.5, 0.75, 1.0]
    assert curve["quality"].tolist() == [0.75, 1.0, 1.0, 1.0, 1.0]
    assert curve["cost_per_request"].iloc[0] == pytest.approx(14 / 4)
    assert curve["cost_per_request"].iloc[2] == pytest.approx((10 + 1 + 10 + 1) / 4)


def test_arithmetic_validator_rejects_wrong_worked_calculations():
    request = ChatRequest.simple("How much?")

    def verdict(text: str) -> str | None:
        return validate(ChatResponse.of_text(text, "m", "local", Usage()), request, {"arithmetic": True})

    assert verdict("8 x $5 = $40 and 16 - 3 = 13, so 40 + 13 = 53.\n#### 53") is None
    assert verdict("2 + 1/2 = 5/2 = 2.5 bolts; <<8*5*60/100=24>>24") is None
    assert verdict("She earns 12 * 3 = 35 dollars.") == "wrong arithmetic: 12 * 3 = 35"
    assert wrong_calculation("<<40+24=65>>65") == "40+24 = 65"
    # Off by design: without the key, the same answer passes.
    assert validate(ChatResponse.of_text("12 * 3 = 35", "m", "local", Usage()), request, {}) is None
    cfg = parse_config(
        {
            "tiers": {"tier1": ["local"], "tier2": ["local"]},
            "routing": {
                "policies": {
                    "check": {"type": "cascade", "tiers": ["tier1", "tier2"], "validators": {"arithmetic": True}}
                }
            },
        }
    )
    assert cfg.routing.policies["check"].validators == {"arithmetic": True}


def test_fast_decision_path_gives_the_pipelines_probability():
    # The router scores one prompt from the vocabulary and coefficients directly (sub-millisecond); it must be the
    # probability scikit-learn's pipeline computes, for prompts with unknown words and for empty ones too.
    from tokenomy.routing.classifier import strong_probability, train

    frame = load_outcomes("mt-bench")
    model = train(frame["prompt"].tolist(), (frame["strong_quality"] > frame["weak_quality"]).astype(int).tolist())
    prompts = [*frame["prompt"].tolist()[:40], "", "zzqx unknownword", "Prove it step by step."]
    expected = model.predict_proba(prompts)[:, 1]
    assert [strong_probability(model, p) for p in prompts] == pytest.approx(expected.tolist(), abs=1e-12)
    assert len(set(expected.round(6))) > 10  # not a constant: the check compares real scores


def test_eval_over_seeds_reports_each_split_and_the_median(tmp_path):
    from tokenomy.routing.evaluate import evaluate, over_seeds

    summary = over_seeds("mt-bench", 2)
    assert set(summary) == {"classifier", "embedding", "combined"}
    second = evaluate("mt-bench", seed=1)["routers"]["embedding"]["share_at_target"]
    shares = summary["embedding"]["share_at_target"]
    assert len(shares) == 2 and shares[1] == second
    assert summary["embedding"]["median_share_at_target"] == pytest.approx(sum(shares) / 2)
    out = subprocess.run(
        [
            sys.executable,
            "-m",
            "tokenomy.cli",
            "route",
            "eval",
            "mt-bench",
            "--seeds",
            "2",
            "--png",
            str(tmp_path / "mt.png"),
        ],
        capture_output=True,
        text=True,
        timeout=300,
        cwd=REPO,
        env={**os.environ, "COLUMNS": "250"},
    )
    assert out.returncode == 0, out.stderr
    assert "2 splits (seeds 0-1)" in out.stdout and f"{sum(shares) / 2:.1%}" in out.stdout


def test_a_router_file_of_another_kind_is_refused_naming_the_policy_type_that_takes_it(tmp_path):
    # A `type: classifier` policy took the embedding router's file unsaid (and reported its decisions as the
    # classifier's); an embedding policy given a TF-IDF file said "a embedding policy needs one from ...".
    from tokenomy.routing import classifier, embeddings

    prompts = ["add two numbers", "prove the theorem step by step", "say hi", "derive the integral carefully"] * 3
    gains = np.array([0.0, 1.0, 0.0, 1.0] * 3)
    files = {"embedding": tmp_path / "embedding.joblib", "classifier": tmp_path / "tfidf.joblib"}
    classifier.save(embeddings.train(prompts, gains), files["embedding"])
    classifier.save(classifier.train(prompts, [int(g) for g in gains]), files["classifier"])

    def policy(kind, path):
        cfg = parse_config(
            {
                "tiers": {"tier1": ["local"], "tier2": ["local"]},
                "routing": {
                    "policies": {"smart": {"type": kind, "classifier_path": str(path), "tiers": ["tier1", "tier2"]}}
                },
            }
        )
        return build_router(cfg, "smart")

    with pytest.raises(ConfigError) as refused:
        policy("classifier", files["embedding"]).route(ChatRequest.simple("hi"))
    assert str(refused.value) == (
        f"routing.policies: classifier_path {str(files['embedding'])!r} holds the embedding router, which a "
        "`type: embedding` policy takes; a classifier policy needs one from `tokenomy route train` (--router tfidf)"
    )
    with pytest.raises(ConfigError) as refused:
        policy("embedding", files["classifier"]).route(ChatRequest.simple("hi"))
    assert str(refused.value) == (
        f"routing.policies: classifier_path {str(files['classifier'])!r} holds a TF-IDF classifier, which a "
        "`type: classifier` or `type: hybrid` policy takes; an embedding policy needs one from "
        "`tokenomy route train --router embedding`"
    )
    with pytest.raises(
        ConfigError,
        match="holds the embedding router, which a `type: embedding` policy takes; a combined policy needs one from",
    ):
        policy("combined", files["embedding"]).route(ChatRequest.simple("hi"))
    # Each kind still routes under its own policy type.
    for kind, path in files.items():
        assert policy(kind, path).route(ChatRequest.simple("prove it")).decision.rule == kind
