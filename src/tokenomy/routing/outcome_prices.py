"""What a routed call costs on the RouteLLM outcomes: per-token prices of the two models, per-prompt float costs for
curves and threshold search, and the exact Decimal cost of a routing.

The outcomes (see `routing.datasets`) carry token counts, not money; these prices turn them into cost with the
catalog's source and as-of date, so an evaluation's figures say where their prices came from.
"""

from __future__ import annotations

from dataclasses import dataclass
from decimal import Decimal

import numpy as np
import pandas as pd

from tokenomy.chat_response import Usage
from tokenomy.pricing.cost import compute_cost

WEAK_MODEL = "mistral.mixtral-8x7b-instruct-v0:1"  # Bedrock's Mixtral 8x7B, the weak model of RouteLLM's data
STRONG_MODEL = "anthropic.claude-3-7-sonnet-20250219-v1:0"
MILLION = 1_000_000


@dataclass(frozen=True)
class Price:
    """Per-token on-demand prices of one catalog model, with where they came from."""

    model: str
    region: str
    input_per_token: Decimal
    output_per_token: Decimal
    source: str
    as_of: str

    def describe(self) -> dict:
        return {
            "model": self.model,
            "region": self.region,
            "input_per_million": self.input_per_token * MILLION,
            "output_per_million": self.output_per_token * MILLION,
            "source": self.source,
            "as_of": self.as_of,
        }


def price(model: str, region: str = "us-east-1") -> Price:
    """Look the model up in the catalog (an unknown model raises an error naming it)."""
    # One token each: a million-token prompt would be priced at a long-context rate where the model has one.
    per_in = compute_cost(Usage(1, 0), model, region)
    per_out = compute_cost(Usage(0, 1), model, region)
    return Price(model, region, per_in.total_usd, per_out.total_usd, per_in.source, per_in.as_of)


def call_costs(frame: pd.DataFrame, weak: Price, strong: Price) -> tuple[np.ndarray, np.ndarray]:
    """Per-prompt cost (float USD, for curves and search) of answering with the weak and with the strong model."""
    tokens_in = frame["input_tokens"].to_numpy(float)
    weak_cost = tokens_in * float(weak.input_per_token) + frame["weak_output_tokens"].to_numpy(float) * float(
        weak.output_per_token
    )
    strong_cost = tokens_in * float(strong.input_per_token) + frame["strong_output_tokens"].to_numpy(float) * float(
        strong.output_per_token
    )
    return weak_cost, strong_cost


def exact_cost(
    frame: pd.DataFrame, strong_mask: np.ndarray, weak: Price, strong: Price, weak_too: np.ndarray | None = None
) -> Decimal:
    """Decimal cost of a routing: strong calls at strong prices, the rest (plus `weak_too`, e.g. a cascade's
    first attempts that escalated) at weak prices. Token sums are integers, so the money stays exact."""
    weak_calls = ~strong_mask if weak_too is None else (~strong_mask | weak_too)

    def total(mask: np.ndarray, p: Price, out_col: str) -> Decimal:
        return p.input_per_token * int(frame["input_tokens"].to_numpy()[mask].sum()) + p.output_per_token * int(
            frame[out_col].to_numpy()[mask].sum()
        )

    return total(weak_calls, weak, "weak_output_tokens") + total(strong_mask, strong, "strong_output_tokens")
