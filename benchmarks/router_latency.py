"""Classifier routing decision latency: train on GSM8K prompts, time 2,000 decisions, print p50/p99 in ms."""

from __future__ import annotations

import time
from pathlib import Path

import numpy as np
import pandas as pd

from tokenomy.routing.classifier import strong_probability, train

DATA = Path(__file__).resolve().parents[2] / "shared" / "data" / "routellm" / "gsm8k_responses.csv"


def main(decisions: int = 2000) -> None:
    df = pd.read_csv(DATA)
    labels = [int((not w) and s) for w, s in zip(df["mistralai/Mixtral-8x7B-Instruct-v0.1"], df["gpt-4-1106-preview"])]
    model = train(df["prompt"].tolist(), labels)
    prompts = df["prompt"].tolist()
    times = []
    for i in range(decisions):
        start = time.perf_counter()
        strong_probability(model, prompts[i % len(prompts)])
        times.append((time.perf_counter() - start) * 1000)
    print(f"classifier decisions: {decisions}  p50 {np.percentile(times, 50):.3f} ms  p99 {np.percentile(times, 99):.3f} ms")


if __name__ == "__main__":
    main()
