"""A 90-day ledger with a weekly pattern, one spike and one slow drift: both flagged, weekends not.

Two more models have idle days: one unused for ten days then back at its usual level, one that starts
on day 40. Idle days are not zero-spend data points, so neither may be flagged.
"""

from __future__ import annotations

import random
from datetime import UTC, datetime, timedelta
from decimal import Decimal

from helpers.seeded_ledgers import _ledger
from tokenomy.analytics.anomalies import find_anomalies
from tokenomy.ledger.events import UsageEvent
from tokenomy.ledger.store import open_store


def test_spike_and_drift_flagged_no_weekend_alerts(ledger_path) -> None:
    spike = _ledger(ledger_path)
    found = find_anomalies(open_store(ledger_path))
    spikes = [a for a in found if a.kind == "spike"]
    assert [(a.key, a.day) for a in spikes] == [("steady", spike)], found
    assert spikes[0].expected_high_usd < spikes[0].actual_usd
    drifts = [a for a in found if a.kind == "drift"]
    assert [a.key for a in drifts] == ["drifter"], found


def test_a_spike_on_a_few_cents_a_day_is_found_like_one_on_dollars(ledger_path) -> None:
    """The test works on spend relative to its usual day: $0.03/day spiking 6x is as visible as $10/day."""
    rng = random.Random(5)
    start = datetime(2026, 7, 1, tzinfo=UTC)
    events = []
    for d in range(60):
        day = start + timedelta(days=d)
        for model, usual in (("tiny", 0.03), ("big", 3000.0)):
            base = usual * (0.3 if day.weekday() >= 5 else 1.0) * (6 if d == 40 else 1)
            events.append(
                UsageEvent(
                    ts=day + timedelta(hours=9),
                    provider="bedrock",
                    model=model,
                    input_tokens=10,
                    cost_usd=Decimal(f"{base * rng.uniform(0.9, 1.1):.8f}"),
                )
            )
    open_store(ledger_path).write(events)
    spikes = sorted((a.key, a.day) for a in find_anomalies(open_store(ledger_path)) if a.kind == "spike")
    day = (start + timedelta(days=40)).date().isoformat()
    assert spikes == [("big", day), ("tiny", day)]


def test_a_spike_on_spend_that_is_the_same_every_day_is_found(ledger_path) -> None:
    """A cron job costs the same every day: robust STL's weights (residual over 6 MADs, MAD 0) all became 0, the
    trend followed the data through the spike and a 5x day was never flagged."""
    start = datetime(2026, 8, 3, tzinfo=UTC)
    days = 104
    events = [
        UsageEvent(
            ts=start + timedelta(days=d, hours=3),
            provider="bedrock",
            model=model,
            input_tokens=10,
            cost_usd=Decimal(usual) * (5 if d == days - 4 else 1) * weight,
        )
        for d in range(days)
        for model, usual, weight in (
            ("cron", "5", 1),
            ("weekday", "6", 1 if (start + timedelta(days=d)).weekday() < 5 else Decimal("0.2")),
        )
    ]
    open_store(ledger_path).write(events)
    found = find_anomalies(open_store(ledger_path))
    day = (start + timedelta(days=days - 4)).date().isoformat()
    assert sorted((a.kind, a.key, a.day) for a in found) == [("spike", "cron", day), ("spike", "weekday", day)], found
    assert all(a.expected_high_usd < a.actual_usd for a in found)


def test_ordinary_noisy_days_are_not_spikes_and_a_real_one_is(ledger_path) -> None:
    """Spend with 20% day-to-day noise (lognormal), a weekly pattern and a rising trend. STL absorbs about half the
    noise into its components, so the residuals' MAD is half the real noise: "6 robust sigmas" was 3 real ones,
    and ordinary days were flagged as spikes (2026-10-05 here, at 1.09x its expected high)."""
    import numpy as np

    rng = np.random.default_rng(0)
    start = datetime(2026, 8, 3, tzinfo=UTC)
    weekly = [1.2, 1.1, 1.0, 1.0, 1.1, 0.3, 0.3]
    events = []
    for d in range(104):
        day = start + timedelta(days=d)
        usual = (10 + 0.1 * d) * weekly[day.weekday()] * float(np.exp(0.2 * rng.standard_normal()))
        for model, factor in (("calm", 1), ("spiky", 5 if d == 97 else 1)):
            events.append(
                UsageEvent(
                    ts=day + timedelta(hours=9),
                    provider="bedrock",
                    model=model,
                    input_tokens=10,
                    cost_usd=Decimal(f"{usual * factor:.6f}"),
                )
            )
    open_store(ledger_path).write(events)
    spikes = [(a.key, a.day) for a in find_anomalies(open_store(ledger_path)) if a.kind == "spike"]
    assert spikes == [("spiky", (start + timedelta(days=97)).date().isoformat())], spikes
