"""Routing decision latency of every trained router: train each on GSM8K prompts, save and load it as the gateway
does, then time 2,000 decisions through the Router table (`make_router(...).route(request)`): the TF-IDF
classifier, the embedding router, the combined router (TF-IDF + embedding + difficulty cues, one quality head per
model), a rules-then-classifier hybrid, and the embedding and combined routers with cascade validators (predicted-hard
prompts to the strong tier, the rest verified; `route eval`'s hybrid is the combined one). Prints p50/p99 in ms.

Targets (issue 17): p99 < 5 ms for every router, < 1 ms for TF-IDF + logistic regression.
"""

from __future__ import annotations

import os
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

from tokenomy.messages import ChatRequest
from tokenomy.routing.calibrate import train_and_calibrate
from tokenomy.routing.classifier import save
from tokenomy.routing.datasets import load_outcomes
from tokenomy.routing.router import make_router
from tokenomy.routing.rules import Policy

RULES = [
    {"name": "long-input", "tier": "tier2", "min_tokens": 2000},
    {"name": "reasoning", "tier": "tier2", "keywords": ["prove", "step by step"]},
]


def _time(router, requests: list[ChatRequest], decisions: int) -> tuple[list[float], list[float]]:
    """Wall-clock and CPU (this thread's) milliseconds per decision: on a shared machine the wall p99 mostly
    measures how long the scheduler kept the process off a core, the CPU time what the decision itself costs."""
    for request in requests[:20]:  # warm-up: lazy imports, the model file, the embedding table
        router.route(request)
    wall, cpu = [], []
    for i in range(decisions):
        start, start_cpu = time.perf_counter(), time.thread_time()
        router.route(requests[i % len(requests)])
        cpu.append((time.thread_time() - start_cpu) * 1000)
        wall.append((time.perf_counter() - start) * 1000)
    return wall, cpu


def main(decisions: int = 2000) -> None:
    frame = load_outcomes("gsm8k")
    folder = Path(tempfile.mkdtemp())
    paths = {}
    for kind in ("tfidf", "embedding", "combined"):
        router, _ = train_and_calibrate(frame, target_quality=0.95, kind=kind, folds=5)
        paths[kind] = str(folder / f"{kind}.joblib")
        save(router, paths[kind])
    tiers = {"tier1": ["weak"], "tier2": ["strong"]}
    policies = {
        "classifier (TF-IDF + LR)": Policy(type="classifier", classifier_path=paths["tfidf"], tiers=["tier1", "tier2"]),
        "embedding": Policy(type="embedding", classifier_path=paths["embedding"], tiers=["tier1", "tier2"]),
        "combined": Policy(type="combined", classifier_path=paths["combined"], tiers=["tier1", "tier2"]),
        "hybrid (rules + TF-IDF)": Policy(
            type="hybrid", classifier_path=paths["tfidf"], tiers=["tier1", "tier2"], rules=RULES
        ),
        "embedding + cascade": Policy(
            type="embedding",
            classifier_path=paths["embedding"],
            tiers=["tier1", "tier2"],
            validators={"regex": r"####\s*-?[\d,.]+\s*$", "arithmetic": True},
        ),
        "combined + cascade": Policy(
            type="combined",
            classifier_path=paths["combined"],
            tiers=["tier1", "tier2"],
            validators={"regex": r"####\s*-?[\d,.]+\s*$", "arithmetic": True},
        ),
    }
    requests = [ChatRequest.simple(p) for p in frame["prompt"]]
    load = os.getloadavg()[0]
    print(f"{decisions} decisions per router on GSM8K prompts; load average {load:.1f} on {os.cpu_count()} cores")
    for label, policy in policies.items():
        wall, cpu = _time(make_router(policy, tiers), requests, decisions)
        print(
            f"{label:26} wall p50 {np.percentile(wall, 50):.3f} ms  p99 {np.percentile(wall, 99):.3f} ms | "
            f"cpu p50 {np.percentile(cpu, 50):.3f} ms  p99 {np.percentile(cpu, 99):.3f} ms"
        )


if __name__ == "__main__":
    main(int(sys.argv[1]) if len(sys.argv) > 1 else 2000)
