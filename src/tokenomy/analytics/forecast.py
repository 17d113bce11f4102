"""Month-end spend forecast with an interval: an ETS model (statsmodels) fitted to daily spend.

The interval comes from simulated future paths, summed per path, so it is an interval for the
month's total (not a sum of per-day intervals, which would be far too wide).
"""

from __future__ import annotations

import warnings
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from typing import Any

import numpy as np
import pandas as pd

from tokenomy.analytics.billed import SPEND_EVENTS
from tokenomy.analytics.reports import trunc
from tokenomy.errors import UsageError
from tokenomy.ledger.rollups import facts

MIN_HISTORY_DAYS = 14
MAX_HISTORY_DAYS = 120  # older days say little about this month and slow the fit down
IDLE_RUN_DAYS = 7  # a week or more with no spend makes a history intermittent
RECENT_DAYS = (7, 28)  # the recent window an intermittent history is forecast from: at least a week, at most four
CENTS = Decimal("0.000001")


@dataclass
class Forecast:
    """Month-to-date spend, the forecast month-end total and its interval (USD)."""

    month: str
    as_of: str
    month_to_date_usd: Decimal
    forecast_usd: Decimal
    low_usd: Decimal
    high_usd: Decimal
    level: float
    days_left: int
    history_days: int
    method: str

    def to_json(self) -> dict[str, Any]:
        return dict(self.__dict__)


def _money(value: float) -> Decimal:
    return Decimal(repr(max(float(value), 0.0))).quantize(CENTS)


def _spend_source(
    store: Any, start: datetime, until: datetime, filter_sql: str, filter_params: tuple
) -> tuple[str, list[Any]]:
    """Events in [start, until): the hourly rollups (ledger/rollups.py) unless a filter needs raw events."""
    if not filter_sql:
        return facts(store, start, until)
    ph = store.placeholder
    return f"{SPEND_EVENTS} WHERE ts >= {ph} AND ts < {ph}{filter_sql}", [start, until, *filter_params]


def daily_spend(store: Any, until: datetime, filter_sql: str = "", filter_params: tuple = ()) -> pd.Series:
    """Spend per UTC day before `until`, idle days filled with zero (no spend is real spend here)."""
    start = until - timedelta(days=MAX_HISTORY_DAYS)
    source, params = _spend_source(store, start, until, filter_sql, filter_params)
    day = trunc(store.dialect, "day")
    rows = store.query(f"SELECT {day} AS day, SUM(cost_usd) AS cost FROM {source} GROUP BY 1", params)
    if not rows:
        return pd.Series(dtype=float)
    frame = pd.DataFrame(rows)
    frame["day"] = pd.to_datetime(frame["day"], utc=True).dt.tz_localize(None).dt.normalize()
    series = frame.set_index("day")["cost"].astype(float).sort_index()
    last = pd.Timestamp(until.astimezone(UTC).replace(tzinfo=None)).normalize() - pd.Timedelta(days=1)
    return series.reindex(pd.date_range(series.index.min(), last, freq="D")).fillna(0.0)


def _without_spikes(history: pd.Series, z: float = 6.0) -> tuple[pd.Series, int]:
    """History with isolated one-day spikes replaced by their weekday's typical spend, and how many there were.

    A day counts as a spike when it is more than `z` robust sigmas above the median of the same weekday in the
    four weeks either side, and the day after it is back to normal; only in steady use (spend on 80% of days or
    more), since in sporadic use a busy day among idle ones is the pattern itself. One such day (a runaway job, a
    retry storm) is real spend and stays in month-to-date, but fitted as history it lifts the level and trend of
    every day left in the month: a single 8x day three days before the cutoff made the forecast of the rest of the month
    1.6x too high. The last day is kept: it may be the start of a new level, not a one-off."""
    values = history.to_numpy(dtype=float)
    n = len(values)
    if (values > 0).mean() < 0.8:  # sporadic use: a busy day among idle ones is how it is used, not a spike
        return history, 0
    typical = np.array(
        [np.median([values[i + 7 * k] for k in (-4, -3, -2, -1, 1, 2, 3, 4) if 0 <= i + 7 * k < n]) for i in range(n)]
    )
    above = values - typical
    positive = values[values > 0]
    sigma = max(
        1.4826 * float(np.median(np.abs(above - np.median(above)))),
        0.05 * float(np.median(positive)) if len(positive) else 0.0,  # a floor: noise-free history has MAD 0
    )
    if sigma == 0:
        return history, 0
    high = (above > z * sigma) & (typical > 0)
    spikes = high & ~np.append(high[1:], True)  # the next day is normal again (never the last day)
    return pd.Series(np.where(spikes, typical, values), index=history.index), int(spikes.sum())


def _idle_run_end(values: np.ndarray) -> int | None:
    """The index just after the last run of IDLE_RUN_DAYS or more idle days, or None if there is none."""
    run, end = 0, None
    for i, v in enumerate(values):
        run = run + 1 if v <= 0 else 0
        if run >= IDLE_RUN_DAYS:
            end = i + 1
    return end


def _intermittent_window(history: pd.Series) -> np.ndarray | None:
    """The recent days to forecast from if the history is intermittent (else None).

    Intermittent: spend on fewer than half the days, or a week or more with none (an imported bill's day, then
    idle weeks, then a trickle). An ETS fit to such a history is dominated by the one big day and the jump back to
    the trickle: it forecast $5.83 for a month that came to $0.31. The window is the days since the last idle week
    (the current pattern of use), at least a week and at most four."""
    values = history.to_numpy(dtype=float)
    gap_end = _idle_run_end(values)
    if (values > 0).mean() >= 0.5 and gap_end is None:
        return None
    low, high = RECENT_DAYS
    start = len(values) - high if gap_end is None else gap_end
    start = min(max(start, len(values) - high), len(values) - low)
    return values[max(start, 0) :]


def _resample(window: np.ndarray, horizon: int, repetitions: int, seed: int) -> tuple[np.ndarray, str]:
    """Daily spend paths (horizon x repetitions) drawn day by day from the window's days: the window's daily rate,
    with an interval from its spread."""
    rng = np.random.default_rng(seed)
    paths = rng.choice(window, size=(horizon, repetitions), replace=True)
    return paths, f"intermittent history: the last {len(window)} days' daily spend, resampled"


def _simulate(history: pd.Series, horizon: int, repetitions: int, seed: int) -> tuple[np.ndarray, str]:
    """Simulated daily spend paths (horizon x repetitions) from an additive-trend ETS model."""
    from statsmodels.tsa.exponential_smoothing.ets import ETSModel

    seasonal = "add" if len(history) >= 2 * 7 + 7 else None
    values = history.to_numpy(dtype=float)
    model = ETSModel(
        values,
        error="add",
        trend="add",
        damped_trend=False,
        seasonal=seasonal,
        seasonal_periods=7 if seasonal else None,
    )
    with warnings.catch_warnings():  # convergence chatter on short or flat series; the fit is still usable
        warnings.simplefilter("ignore")
        fit = model.fit(disp=False)
        paths = np.asarray(
            fit.simulate(horizon, repetitions=repetitions, anchor="end", rng=np.random.default_rng(seed))
        )
    return paths.reshape(horizon, -1), f"ETS(A,A,{'A' if seasonal else 'N'}) weekly"


def month_end_forecast(
    store: Any,
    now: datetime | None = None,
    level: float = 0.9,
    filter_sql: str = "",
    filter_params: tuple = (),
    repetitions: int = 2000,
    seed: int = 0,
) -> Forecast:
    """Forecast this month's total spend from complete days before `now` (UTC)."""
    now = (now or datetime.now(UTC)).astimezone(UTC)
    cutoff = now.replace(hour=0, minute=0, second=0, microsecond=0)
    month_start = cutoff.replace(day=1)
    month_end = (month_start + timedelta(days=32)).replace(day=1)
    history = daily_spend(store, cutoff, filter_sql, filter_params)
    if len(history) < MIN_HISTORY_DAYS:
        # "The ledger has 0" read as an empty ledger where its spend was only older than the window read.
        raise UsageError(
            f"forecast needs at least {MIN_HISTORY_DAYS} days of spend history before {cutoff.date()}; "
            f"in the {MAX_HISTORY_DAYS} days before it, from the first day with spend, there are {len(history)}. "
            "Pass --until to forecast an earlier month"
        )
    source, params = _spend_source(store, month_start, cutoff, filter_sql, filter_params)
    mtd_rows = store.query(f"SELECT SUM(cost_usd) AS s FROM {source}", params)
    # At the scale of the forecast's other figures (which add to it): the console printed the ledger's exact sum
    # (0.04559315) where `report forecast` printed its amount (0.045593), for the same month to date.
    month_to_date = Decimal(mtd_rows[0]["s"] or 0).quantize(CENTS)
    horizon = (month_end - cutoff).days
    window = _intermittent_window(history)
    if window is not None:
        paths, method = _resample(window, horizon, repetitions, seed)
        spikes = 0
    else:
        history, spikes = _without_spikes(history)
        paths, method = _simulate(history, horizon, repetitions, seed)
    if spikes:
        method += f"; {spikes} one-day spike(s) in history fitted at their weekday's typical spend"
    # A day cannot cost less than nothing. The forecast is the median of these month totals, the same paths the
    # interval comes from: the fitted mean path clipped day by day fell below the whole interval when the fit
    # trended under zero (clipping lifts every noisy path, not the smooth mean).
    totals = np.clip(paths, 0, None).sum(axis=0)
    tail = (1 - level) / 2
    return Forecast(
        month=month_start.strftime("%Y-%m"),
        as_of=cutoff.date().isoformat(),
        month_to_date_usd=month_to_date,
        forecast_usd=(month_to_date + _money(np.median(totals))).quantize(CENTS),
        low_usd=(month_to_date + _money(np.quantile(totals, tail))).quantize(CENTS),
        high_usd=(month_to_date + _money(np.quantile(totals, 1 - tail))).quantize(CENTS),
        level=level,
        days_left=horizon,
        history_days=len(history),
        method=method,
    )
