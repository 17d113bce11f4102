"""A model's traffic for a review test: a call a day for five days before `end`, priced as the gateway records it."""

from __future__ import annotations

from datetime import datetime, timedelta

from tokenomy.ledger.events import UsageEvent
from tokenomy.pricing.cost import compute_cost


def daily_calls(
    model: str, end: datetime, provider: str = "bedrock", region: str | None = "us-east-1", priced_in: str | None = None
) -> list[UsageEvent]:
    """Five calls of 3,000 input and 300 output tokens, one a day before `end`, priced in `priced_in` (default: their
    own region; a region the catalog has no price for is priced as the review prices it, at another's rates)."""
    events = []
    for day in range(5):
        event = UsageEvent(
            ts=end - timedelta(days=day, hours=3),
            provider=provider,
            model=model,
            region=region,
            task="work",
            input_tokens=3_000,
            output_tokens=300,
        )
        events.append(event.apply_cost(compute_cost(event.usage, model, priced_in or region)))
    return events
