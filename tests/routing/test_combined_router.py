"""The combined router (TF-IDF + static embedding + difficulty cues, one quality head per model): it trains on the
packaged MMLU outcomes and beats random on the held-out half, survives save/load with the same scores, its hand
scoring equals the linear heads computed by scikit-learn, graded outcomes get graded heads, its calibrated threshold
holds on fresh data, and a `combined` policy routes with it (and refuses a router of another kind). Decision time is
measured by benchmarks/router_latency.py, not asserted here."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
import scipy.sparse as sparse

from tokenomy.config import parse_config
from tokenomy.errors import ConfigError
from tokenomy.messages import ChatRequest
from tokenomy.routing.calibrate import split, sweep, train_and_calibrate
from tokenomy.routing.classifier import load, save
from tokenomy.routing.combined import CUES, cues, train
from tokenomy.routing.datasets import load_outcomes
from tokenomy.routing.evaluate import curve_metrics
from tokenomy.routing.outcome_prices import STRONG_MODEL, WEAK_MODEL, call_costs, price
from tokenomy.routing.router import build_router


def test_cues_read_options_negation_and_numbers():
    question = "Which of the following is NOT a prime?\nA. 2\nB. 3\nC. 9\nD. 11\nAnswer:"
    values = dict(zip(CUES, cues(question), strict=True))
    assert values["answer options"] == 4
    assert values["capitalised negation"] == 1 and values["negation words"] == 1
    assert values["log digits"] > 0 and values["question marks"] == 1
    assert dict(zip(CUES, cues("Write a poem about the sea."), strict=True))["answer options"] == 0


@pytest.fixture(scope="module")
def mmlu_half():
    frame = load_outcomes("mmlu")
    train_half, held_out = split(frame, 0.5, seed=0)
    return train(train_half["prompt"].tolist(), train_half["weak_quality"], train_half["strong_quality"]), held_out


def test_combined_router_beats_random_on_held_out_mmlu(mmlu_half):
    model, held_out = mmlu_half
    scores = model.predict_proba(held_out["prompt"].tolist())[:, 1]
    weak_q, strong_q = held_out["weak_quality"].to_numpy(float), held_out["strong_quality"].to_numpy(float)
    curve = sweep(scores, weak_q, strong_q, *call_costs(held_out, price(WEAK_MODEL), price(STRONG_MODEL)))
    metrics = curve_metrics(curve, weak_q, strong_q, 0.95)
    # Random routing needs ~70% strong calls for 95% of strong quality on MMLU; APGR of random is 0.5.
    assert metrics["share_at_target"] < 0.55
    assert metrics["apgr"] > 0.6


def test_saved_and_loaded_router_scores_the_same_and_matches_its_linear_heads(mmlu_half, tmp_path):
    model, held_out = mmlu_half
    prompts = held_out["prompt"].tolist()[:200]
    path = tmp_path / "combined.joblib"
    save(model, path, threshold=0.4)
    loaded = load(path)
    assert loaded.threshold == 0.4 and loaded.pipeline.kind == "combined"
    np.testing.assert_allclose(loaded.pipeline.predict_proba(prompts), model.predict_proba(prompts), atol=1e-12)
    # The hand-walked TF-IDF row gives what scikit-learn's transform and a dot product with the heads give.
    features = sparse.hstack([model.vectorizer.transform(prompts), model._dense(prompts)]).tocsr()
    heads = []
    for words, dense, intercept, logistic in model.heads:
        z = features @ np.concatenate([words, dense]) + intercept
        heads.append(1 / (1 + np.exp(-z)) if logistic else z)
    assert all(logistic for *_, logistic in model.heads)  # MMLU outcomes are right/wrong: logistic heads
    np.testing.assert_allclose(model.gain(prompts), heads[0] - heads[1], atol=1e-9)
    assert len(set(np.round(heads[0] - heads[1], 6))) > 50  # real, varied scores


def _synthetic(n: int, seed: int) -> pd.DataFrame:
    """Graded outcomes: proofs gain 0.5 from the strong model, small talk nothing (plus judge noise)."""
    rng = np.random.default_rng(seed)
    hard = rng.random(n) < 0.3
    topics = ["the sea", "a cat", "lunch", "the weather", "trains", "music"]
    prompts = [
        (
            f"Prove that the sum of the first {i} odd numbers is a square, step by step."
            if h
            else f"Write two friendly sentences about {topics[i % 6]} number {i}."
        )
        for i, h in enumerate(hard)
    ]
    weak = np.clip(np.where(hard, 0.4, 0.9) + rng.normal(0, 0.05, n), 0.1, 1.0)
    strong = np.clip(np.where(hard, 0.9, 0.9) + rng.normal(0, 0.05, n), 0.1, 1.0)
    frame = pd.DataFrame({"prompt": prompts, "weak_quality": weak, "strong_quality": strong, "weak_response": None})
    frame["input_tokens"], frame["weak_output_tokens"], frame["strong_output_tokens"] = 30, 200, 200
    return frame


def test_graded_outcomes_get_graded_heads_and_the_calibrated_threshold_holds_on_fresh_data():
    frame, fresh = _synthetic(300, seed=1), _synthetic(300, seed=2)
    router, report = train_and_calibrate(frame, target_quality=0.95, kind="combined", folds=5, confidence=0.8)
    assert report["router"] == "combined" and report["quality_retained"] >= 0.95
    assert not any(logistic for *_, logistic in router.pipeline.heads)  # judge scores: ridge heads
    gains = router.pipeline.gain(fresh["prompt"].tolist())
    hard = fresh["prompt"].str.startswith("Prove").to_numpy()
    assert gains[hard].min() > gains[~hard].max()  # it learnt where the strong model pays
    routed = router.pipeline.predict_proba(fresh["prompt"].tolist())[:, 1] >= router.threshold
    quality = np.where(routed, fresh["strong_quality"], fresh["weak_quality"]).mean()
    assert quality / fresh["strong_quality"].mean() >= 0.95
    assert routed.mean() < hard.mean() + 0.1  # and does not buy it by sending everything to the strong model


def test_a_combined_policy_routes_and_refuses_other_kinds(tmp_path):
    frame = _synthetic(200, seed=3)
    paths = {}
    for kind in ("combined", "embedding"):
        router, _ = train_and_calibrate(frame, target_quality=0.95, kind=kind, folds=5)
        paths[kind] = tmp_path / f"{kind}.joblib"
        save(router, paths[kind])
    cfg = parse_config(
        {
            "tiers": {"tier1": ["local"], "tier2": ["local"]},
            "routing": {
                "policies": {
                    "smart": {
                        "type": "combined",
                        "classifier_path": str(paths["combined"]),
                        "tiers": ["tier1", "tier2"],
                    }
                }
            },
        }
    )
    router = build_router(cfg, "smart")
    hard = router.route(ChatRequest.simple("Prove that the sum of the first 7 odd numbers is a square, step by step."))
    easy = router.route(ChatRequest.simple("Write two friendly sentences about the sea number 7."))
    assert (hard.decision.tier, easy.decision.tier) == ("tier2", "tier1")
    assert hard.decision.rule == "combined" and "the combined router" in hard.decision.reason
    cfg.routing.policies["smart"].classifier_path = str(paths["embedding"])
    with pytest.raises(ConfigError, match=r"holds the embedding router.*--router combined"):
        build_router(cfg, "smart").route(ChatRequest.simple("hello"))
