"""Routing decision latency: train the classifier on GSM8K prompts, save and load it as the router does, then time
2,000 decisions (classifier alone, and a hybrid policy: rules first, classifier for the rest). Prints p50/p99 in ms.

Target: well under 5 ms per decision.
"""

from __future__ import annotations

import sys
import tempfile
import time
from pathlib import Path

import numpy as np

from tokenomy.messages import ChatRequest
from tokenomy.routing.calibrate import train_and_calibrate
from tokenomy.routing.classifier import load, save, strong_probability
from tokenomy.routing.datasets import load_outcomes
from tokenomy.routing.router import make_router
from tokenomy.routing.rules import Policy


def _percentiles(label: str, times_ms: list[float]) -> None:
    print(f"{label:28} decisions: {len(times_ms)}  p50 {np.percentile(times_ms, 50):.3f} ms  "
          f"p99 {np.percentile(times_ms, 99):.3f} ms")


def main(decisions: int = 2000) -> None:
    frame = load_outcomes("gsm8k")
    router, report = train_and_calibrate(frame, holdout=0.25, target_quality=0.95)
    path = Path(tempfile.mkdtemp()) / "router.joblib"
    save(router, path)
    router = load(path)
    prompts = frame["prompt"].tolist()
    for prompt in prompts[:20]:  # warm-up: first calls pay for lazy imports and allocations
        strong_probability(router, prompt)

    times = []
    for i in range(decisions):
        start = time.perf_counter()
        _ = strong_probability(router, prompts[i % len(prompts)]) >= router.threshold
        times.append((time.perf_counter() - start) * 1000)
    _percentiles("classifier", times)

    policy = Policy(type="hybrid", classifier_path=str(path), tiers=["tier1", "tier2"], rules=[
        {"name": "long-input", "tier": "tier2", "min_tokens": 2000},
        {"name": "reasoning", "tier": "tier2", "keywords": ["prove", "step by step"]}])
    hybrid = make_router(policy, {"tier1": ["weak"], "tier2": ["strong"]})
    requests = [ChatRequest.simple(p) for p in prompts]
    times = []
    for i in range(decisions):
        start = time.perf_counter()
        hybrid.route(requests[i % len(requests)])
        times.append((time.perf_counter() - start) * 1000)
    _percentiles("hybrid (rules + classifier)", times)
    print(f"threshold {router.threshold:.3f} calibrated to {report['target_quality']:.0%} of strong quality "
          f"on {report['held_out']} held-out prompts")


if __name__ == "__main__":
    main(int(sys.argv[1]) if len(sys.argv) > 1 else 2000)
