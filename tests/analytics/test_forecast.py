"""Month-end forecast: on a ledger with a known trend and weekly pattern the interval holds the true total."""

from __future__ import annotations

import json
import random
from datetime import UTC, datetime, timedelta
from decimal import Decimal

import pytest
from typer.testing import CliRunner

from tokenomy.analytics.forecast import month_end_forecast
from tokenomy.cli import app
from tokenomy.errors import UsageError
from tokenomy.ledger.events import UsageEvent
from tokenomy.ledger.store import open_store

START = datetime(2026, 8, 1, tzinfo=UTC)
CUTOFF = datetime(2026, 11, 16, 9, tzinfo=UTC)  # forecast made on the morning of Nov 16


def _daily_costs(seed: int) -> dict[datetime, Decimal]:
    """Spend per day through November: rising 0.25 $/day, weekends at 40%, ±8% noise."""
    rng = random.Random(seed)
    out = {}
    day = START
    while day < datetime(2026, 12, 1, tzinfo=UTC):
        d = (day - START).days
        level = (30 + 0.25 * d) * (0.4 if day.weekday() >= 5 else 1.0)
        out[day] = Decimal(f"{level * rng.uniform(0.92, 1.08):.6f}")
        day += timedelta(days=1)
    return out


def _write(path, costs: dict[datetime, Decimal]) -> None:
    events = []
    for day, cost in costs.items():
        if day >= CUTOFF.replace(hour=0):
            continue  # the future: not in the ledger
        for hour, share in ((9, Decimal("0.6")), (15, Decimal("0.4"))):  # two calls a day
            events.append(
                UsageEvent(
                    ts=day + timedelta(hours=hour),
                    provider="bedrock",
                    model="m",
                    input_tokens=1000,
                    cost_usd=cost * share,
                )
            )
    open_store(path).write(events)


@pytest.mark.parametrize(("seed", "url_fixture"), [(1, "ledger_path"), (2, "ledger_path"), (4, "fresh_postgres_url")])
def test_interval_contains_true_month_end(request, seed, url_fixture) -> None:
    costs = _daily_costs(seed)
    ledger = request.getfixturevalue(url_fixture)
    _write(ledger, costs)
    result = month_end_forecast(open_store(ledger), now=CUTOFF)
    november = [c for d, c in costs.items() if d.month == 11]
    truth = sum(november)
    assert result.month == "2026-11" and result.days_left == 15
    assert result.month_to_date_usd == sum(november[:15])
    assert result.low_usd < truth < result.high_usd, result
    assert result.low_usd <= result.forecast_usd <= result.high_usd
    # An informative interval: narrower than ±15% of the total (the noise alone is ±8% a day).
    assert result.high_usd - result.low_usd < truth * Decimal("0.3")
    # A naive "month to date x days in month / days so far" misses the trend the model sees.
    naive = result.month_to_date_usd * 30 / 15
    assert abs(result.forecast_usd - truth) < abs(naive - truth) or abs(result.forecast_usd - truth) < truth / 50


def test_cli_and_short_history(ledger_path) -> None:
    costs = _daily_costs(3)
    _write(ledger_path, costs)
    result = CliRunner().invoke(
        app, ["report", "forecast", "--until", CUTOFF.isoformat(), "--json", "--ledger", str(ledger_path)]
    )
    assert result.exit_code == 0, result.output
    data = json.loads(result.output)
    assert Decimal(data["low_usd"]) < Decimal(data["forecast_usd"]) < Decimal(data["high_usd"])
    with pytest.raises(UsageError, match="at least 14 days"):
        month_end_forecast(open_store(ledger_path), now=START + timedelta(days=5))


def test_one_spike_day_in_history_does_not_lift_the_rest_of_the_month(ledger_path) -> None:
    # Nov 13 cost 8x its usual (a runaway job): it is in month-to-date as spent, but the days left are forecast
    # from the usual level. Fitted as it was, it lifted the rest of the month ~1.6x and the interval missed.
    costs = _daily_costs(1)
    spike = datetime(2026, 11, 13, tzinfo=UTC)
    costs[spike] *= 8
    _write(ledger_path, costs)
    result = month_end_forecast(open_store(ledger_path), now=CUTOFF)
    november = [c for d, c in costs.items() if d.month == 11]
    truth = sum(november)
    assert result.month_to_date_usd == sum(november[:15])  # the spike was spent: it stays in month-to-date
    assert result.low_usd < truth < result.high_usd, result
    assert abs(result.forecast_usd - truth) < truth * Decimal("0.05"), (result.forecast_usd, truth)
    assert "1 one-day spike(s)" in result.method


def test_the_forecast_lies_inside_its_own_interval_when_the_fit_trends_below_zero(ledger_path) -> None:
    # An imported bill's $7 day, three idle weeks, then ~$0.01 a day: the fitted trend runs below zero. The point
    # forecast was the fitted mean path clipped day by day ($1.19) while the interval came from the simulated paths
    # clipped day by day ($2.88-$9.64): a forecast below its own 90% interval. Both now come from the same paths.
    start = datetime(2026, 9, 17, tzinfo=UTC)
    events = [UsageEvent(ts=start, provider="openai", model="m", cost_usd=Decimal(7), priced_by="billed")]
    for d in range(21, 61):
        events.append(
            UsageEvent(
                ts=start + timedelta(days=d, hours=9),
                provider="openai",
                model="m",
                input_tokens=1000,
                cost_usd=Decimal("0.0101"),
            )
        )
    open_store(ledger_path).write(events)
    result = month_end_forecast(open_store(ledger_path), now=CUTOFF)
    assert result.low_usd <= result.forecast_usd <= result.high_usd, result


def test_sporadic_use_is_not_taken_for_spikes() -> None:
    # A job that runs on one day in ten: every busy day stands alone among idle ones, which is how it is used.
    import numpy as np
    import pandas as pd

    from tokenomy.analytics.forecast import _without_spikes

    rng = np.random.default_rng(3)
    days = pd.date_range("2026-08-03", "2026-11-14")
    history = pd.Series(np.where(rng.random(len(days)) < 0.1, 10.0, 0.0), index=days)
    cleaned, spikes = _without_spikes(history)
    assert spikes == 0 and cleaned.equals(history)


def test_forecast_refuses_options_it_would_ignore(ledger_path) -> None:
    # --since and --by were accepted and ignored: the figures printed were the whole ledger's, not the ones asked.
    _write(ledger_path, _daily_costs(3))
    for extra in (["--since", "2026-11-01"], ["--by", "model"]):
        result = CliRunner().invoke(
            app, ["report", "forecast", "--until", CUTOFF.isoformat(), "--ledger", str(ledger_path), *extra]
        )
        assert isinstance(result.exception, UsageError) and f"drop {extra[0]}" in str(result.exception), result


def _known_ledger(kind: str) -> dict[datetime, Decimal]:
    """Daily spend Aug 1 - Nov 30 of a known shape (the test ledger holds the days before CUTOFF)."""
    rng = random.Random(7)
    out = {}
    day = START
    while day < datetime(2026, 12, 1, tzinfo=UTC):
        d = (day - START).days
        if kind == "sparse":  # an imported bill's $7 day, three idle weeks, then ~$0.01 a day
            bill = datetime(2026, 9, 17, tzinfo=UTC)
            cost = 7.0 if day == bill else 0.0101 if day >= bill + timedelta(days=21) else 0.0
        elif kind == "steady":
            cost = 20 * rng.uniform(0.95, 1.05)
        elif kind == "trending":
            cost = (10 + 0.3 * d) * rng.uniform(0.95, 1.05)
        else:  # weekly: weekdays busy, weekends near idle
            cost = (40.0 if day.weekday() < 5 else 4.0) * rng.uniform(0.95, 1.05)
        if cost:
            out[day] = Decimal(f"{cost:.6f}")
        day += timedelta(days=1)
    return out


@pytest.mark.parametrize(
    ("kind", "tolerance"), [("sparse", "0.05"), ("steady", "0.03"), ("trending", "0.03"), ("weekly", "0.03")]
)
def test_forecast_is_near_the_truth_and_inside_its_interval(ledger_path, kind, tolerance) -> None:
    # The sparse history was forecast by an ETS fit dominated by its one big day: $5.83 for a month that came to
    # $0.31 (and a budget_forecast alert fired). It is now forecast from its recent daily rate; the others by ETS.
    costs = _known_ledger(kind)
    _write(ledger_path, costs)
    result = month_end_forecast(open_store(ledger_path), now=CUTOFF)
    truth = sum(c for d, c in costs.items() if d.month == 11)
    assert result.low_usd <= result.forecast_usd <= result.high_usd, result
    if kind == "sparse":  # an exact trickle: its interval is the trickle's month
        assert result.low_usd <= truth <= result.high_usd, (truth, result)
    assert abs(result.forecast_usd - truth) <= truth * Decimal(tolerance), (truth, result)
    assert ("intermittent" in result.method) == (kind == "sparse"), result.method


def test_forecast_table_prints_money_as_the_other_reports_and_its_json_do(ledger_path) -> None:
    # The table printed cents ($0.30) where its JSON and every other report's table print 6 places (0.303000).
    costs = _known_ledger("sparse")
    _write(ledger_path, costs)
    args = ["report", "forecast", "--until", CUTOFF.isoformat(), "--ledger", str(ledger_path)]
    data = json.loads(CliRunner().invoke(app, [*args, "--json"]).output)
    table = CliRunner().invoke(app, args, env={"COLUMNS": "200"}).output
    for field in ("month_to_date_usd", "forecast_usd", "low_usd", "high_usd"):
        assert len(data[field].split(".")[1]) == 6, data
        assert f"${Decimal(data[field]):,.6f}" in table, (field, table)


def test_too_little_history_says_the_window_it_read(ledger_path) -> None:
    # Two months of spend that ended five months ago: "the ledger has 0" beside a console showing that spend read
    # as an empty ledger. The forecast reads the last 120 days only, and now says so.
    _write(ledger_path, _daily_costs(3))
    with pytest.raises(UsageError) as raised:
        month_end_forecast(open_store(ledger_path), now=CUTOFF + timedelta(days=150))
    assert "in the 120 days before" in str(raised.value) and "has 0" not in str(raised.value)
