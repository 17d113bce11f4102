"""A seeded multi-day ledger for the console tests: keys and teams with budgets, retries, batch-tolerant calls."""

from __future__ import annotations

import random
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from pathlib import Path

from tokenomy.chat_response import Usage
from tokenomy.gateway.keys import KeyStore
from tokenomy.ledger.events import UsageEvent
from tokenomy.ledger.store import open_store
from tokenomy.pricing.cost import compute_cost

DAYS = 35
SPIKE_DAYS_AGO = 3  # one day of ten times the usual output, for the anomaly panel
MODELS = [("openai", "gpt-4o-mini", None), ("anthropic", "claude-haiku-4-5-20251001", None)]


def end_of_seed() -> datetime:
    """The seed ends an hour ago (budgets and the forecast are as of now)."""
    return datetime.now(UTC).replace(minute=0, second=0, microsecond=0) - timedelta(hours=1)


def seed(path: Path) -> dict:
    """Write the ledger; return its events, the keys (id -> team) and the budgets set."""
    store = open_store(path)
    keys = KeyStore(store)
    _, research = keys.create(budget_usd=Decimal("0.50"), period="month", team="research", name="research-bot")
    _, solo = keys.create(budget_usd=Decimal("1"), period="month", name="solo")
    keys.set_team_budget("research", Decimal("0.40"))
    rng = random.Random(16)
    end = end_of_seed()
    start = end - timedelta(days=DAYS)
    spike_day = (end - timedelta(days=SPIKE_DAYS_AGO)).date()
    events: list[UsageEvent] = []
    for i in range(DAYS * 24):
        ts = start + timedelta(hours=i, minutes=rng.randint(0, 50))
        provider, model, _ = MODELS[i % 2]
        key = research if i % 3 else solo
        task = rng.choice(["classify", "summarise"])
        cached = i % 4 == 0
        spike = 10 if ts.date() == spike_day and model.startswith("claude") else 1
        usage = Usage(
            rng.randint(100, 900),
            rng.randint(20, 600) * (1 + (ts > end - timedelta(days=5))) * spike,
            1200 if cached else 0,
            0 if cached else 64,
        )
        common = dict(
            provider=provider,
            model=model,
            task=task,
            key_id=key.key_id,
            tenant=key.team,
            route="support" if i % 2 else "triage",
            tier=rng.choice(["weak", "strong"]),
            tags={"latency_tolerant": "true"} if task == "summarise" else {"team": "cx"},
            request_id=f"req-{i:04d}",
            prefix_hash=f"p-{task}",
            prefix_tokens=1100,
            prompt_text=f"prompt number {i}" if i % 5 == 0 else None,
        )
        if i % 10 == 7:  # a throttled first attempt, retried
            events.append(
                UsageEvent(
                    ts=ts - timedelta(seconds=2),
                    outcome="throttled",
                    attempt=1,
                    error_type="rate_limit",
                    latency_ms=120.0,
                    **common,
                )
            )
            attempt = 2
        else:
            attempt = 1
        event = UsageEvent(
            ts=ts,
            attempt=attempt,
            input_tokens=usage.input_tokens,
            output_tokens=usage.output_tokens,
            cache_read_tokens=usage.cache_read_tokens,
            cache_write_tokens=usage.cache_write_tokens,
            latency_ms=rng.uniform(200, 2500),
            ttft_ms=rng.uniform(40, 400),
            **common,
        )
        events.append(event.apply_cost(compute_cost(usage, model, None, "on_demand")))
    store.write(events)
    return {
        "events": events,
        "research": research,
        "solo": solo,
        "team_budget": Decimal("0.40"),
        "end": end,
        "spike_day": spike_day.isoformat(),
    }
