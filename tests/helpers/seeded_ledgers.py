"""Seeded usage events shared by the report, alert and FOCUS tests."""

from __future__ import annotations

import random
from datetime import UTC, datetime, timedelta
from decimal import Decimal

from tokenomy.ledger.events import UsageEvent
from tokenomy.ledger.store import open_store

NOW = datetime(2026, 11, 1, 12, tzinfo=UTC)


MODELS = [
    ("bedrock", "anthropic.claude-3-haiku-20240307-v1:0"),
    ("bedrock", "amazon.nova-micro-v1:0"),
    ("openai", "gpt-4o-mini"),
    ("bedrock", "meta.llama3-8b-instruct-v1:0"),
    ("bedrock", "mistral.mistral-7b-instruct-v0:2"),
    ("local", "local"),
]


def _events(n: int = 400, now: datetime = NOW) -> list[UsageEvent]:
    """Events spread over the 45 days before `now`, denser in the last two days so short windows have data."""
    rng = random.Random(7)
    out = []
    for i in range(n):
        provider, model = rng.choice(MODELS)
        back = timedelta(hours=rng.uniform(0, 48)) if i % 4 == 0 else timedelta(days=rng.uniform(0, 45))
        tags = rng.choice([{}, {"team": "search"}, {"team": "ads"}, {"team": "ads", "env": "prod"}])
        out.append(
            UsageEvent(
                ts=now - back,
                provider=provider,
                model=model,
                input_tokens=rng.randint(10, 900),
                output_tokens=rng.randint(1, 300),
                cache_read_tokens=rng.choice([0, 0, 500]),
                cache_write_tokens=rng.choice([0, 64]),
                cost_usd=Decimal(rng.randint(1, 10**6)) / Decimal(10**9),
                latency_ms=rng.uniform(50, 2000),
                ttft_ms=rng.uniform(10, 400),
                tags=tags,
                task=rng.choice([None, "chat", "summarize"]),
                tier=rng.choice(["weak", "weak", "strong"]),
                mode=rng.choice(["on_demand", "on_demand", "batch"]),
                outcome=rng.choice(["ok"] * 8 + ["throttled", "server_error", "cancelled"]),
            )
        )
    return out


def _ledger(path) -> tuple:
    rng = random.Random(3)
    start = datetime(2026, 7, 1, tzinfo=UTC)
    spike_day, events = 50, []
    for d in range(90):
        day = start + timedelta(days=d)
        weekend = day.weekday() >= 5
        for model in ("steady", "drifter", "sporadic", "late"):
            if (model == "sporadic" and 30 <= d < 40) or (model == "late" and d < 40):
                continue  # idle: no calls at all
            base = 10.0 * (0.3 if weekend else 1.0)
            if model == "drifter" and d >= 65:
                base *= 1 + 0.06 * (d - 64)
            if model == "steady" and d == spike_day:
                base *= 6
            cost = base * rng.uniform(0.9, 1.1)
            events.append(
                UsageEvent(
                    ts=day + timedelta(hours=12),
                    provider="bedrock",
                    model=model,
                    input_tokens=100,
                    cost_usd=Decimal(f"{cost:.6f}"),
                )
            )
    open_store(path).write(events)
    return (start + timedelta(days=spike_day)).date().isoformat()
