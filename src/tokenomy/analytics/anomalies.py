"""Daily spend anomalies per model: robust weekly STL (statsmodels); spikes from residuals, drifts from trend."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from decimal import Decimal
from typing import Any

import numpy as np
import pandas as pd
from statsmodels.tsa.seasonal import STL

from tokenomy.analytics.billed import SPEND_EVENTS, provider_sql
from tokenomy.analytics.reports import trunc
from tokenomy.ledger.rollups import DIMENSIONS, facts


@dataclass
class Anomaly:
    """One flagged day (spike) or trend shift (drift) with the range expected from history."""

    kind: str
    key: str
    day: str
    actual_usd: float
    expected_low_usd: float
    expected_high_usd: float

    def to_json(self) -> dict[str, Any]:
        """Amounts as Decimals (from each float's shortest repr), so JSON writes them by the one money rule."""
        return {key: Decimal(repr(value)) if key.endswith("_usd") else value for key, value in self.__dict__.items()}


def _at_least_zero(usd: float) -> float:
    """The low end of an expected range: a day cannot cost less than nothing (expm1 of a wide band goes below 0)."""
    return max(usd, 0.0)


def daily_spend(
    store: Any, by: str = "model", until: datetime | None = None, filter_sql: str = "", filter_params: tuple = ()
) -> pd.DataFrame:
    """Daily spend per group before `until` as a day x group frame, days without calls filled with zero.

    `filter_sql` (` AND ...`, with `filter_params`) narrows the calls, as the console's filters do."""
    if by in DIMENSIONS and not filter_sql:  # a column the hourly rollups keep (ledger/rollups.py)
        source, params = facts(store, None, until)
    else:
        where, params = ("", []) if until is None else (f" WHERE ts < {store.placeholder}", [until])
        if filter_sql:
            where = (where or " WHERE TRUE") + filter_sql
            params = [*params, *filter_params]
        source = f"{SPEND_EVENTS}{where}"
    key = provider_sql() if by == "provider" else by  # `aws.bedrock` calls and a `bedrock` bill: one provider
    rows = store.query(
        f"SELECT {trunc(store.dialect, 'day')} AS day, {key} AS key, SUM(cost_usd) AS cost FROM {source} GROUP BY 1, 2",
        params,
    )
    if not rows:
        return pd.DataFrame()
    frame = pd.DataFrame(rows)
    frame["day"] = pd.to_datetime(frame["day"], utc=True).dt.tz_localize(None).dt.normalize()
    frame["cost"] = frame["cost"].astype(float)  # statistics only; money stays Decimal in reports
    wide = frame.pivot_table(index="day", columns="key", values="cost", aggfunc="sum")
    return wide.reindex(pd.date_range(wide.index.min(), wide.index.max(), freq="D")).fillna(0.0)


def detect(series: pd.Series, key: str, z: float = 6.0, recent_days: int = 14) -> list[Anomaly]:
    """Spikes: robust-STL residual above z robust sigmas. Drift: recent trend outside the earlier trend band."""
    active = series > 0
    if int(active.sum()) < 28:
        return []
    # Idle days (no calls at all) are missing data, not a level to model: a model unused for a week and then
    # used again at its usual level must not look like a spike. They are filled by interpolation in log space
    # (weekday/weekend differences are multiplicative, so one seasonal shape fits all levels) and never flagged.
    # Spend is first scaled by its typical active day, so the test is the same at $0.03 and $3,000 a day
    # (log1p on raw dollars is nearly linear below $1, which hid a 10x spike on a small model).
    scale = float(series[active].median())
    logged = np.log1p(series.where(active) / scale).interpolate(limit_direction="both").to_numpy()
    # Robust STL weighs each day by its residual over 6 MADs; spend that is the same every day (a cron job) has a
    # MAD of 0, every weight becomes 0 and the trend follows the data through the spike, which was never flagged.
    # A fixed, small jitter (1% in log space, well below the 5% sigma floor) keeps the weights meaningful.
    jitter = 0.01 * np.random.default_rng(0).standard_normal(len(logged))
    fit = STL(logged + jitter, period=7, robust=True).fit()
    expected = fit.trend + fit.seasonal
    resid = logged - expected  # the day's own spend against the expected range printed with it (no jitter)
    used = resid[active.to_numpy()]
    # STL absorbs about half the day-to-day noise into its trend and seasonal parts, so the residuals' MAD is about
    # half the real noise: doubled, z sigmas are z real ones (undoubled, ordinary noisy days were flagged). Floor:
    # nearly noise-free spend has a MAD near 0.
    sigma = max(2 * 1.4826 * float(np.median(np.abs(used - np.median(used)))), 0.05)
    out: list[Anomaly] = []
    for i, day in enumerate(series.index):
        if active.iloc[i] and resid[i] > z * sigma:  # overspend only; a quiet day is not an alert
            out.append(
                Anomaly(
                    "spike",
                    key,
                    day.date().isoformat(),
                    float(series.iloc[i]),
                    _at_least_zero(scale * float(np.expm1(expected[i] - z * sigma))),
                    scale * float(np.expm1(expected[i] + z * sigma)),
                )
            )
    # Drift: a level shift in the trend that residual tests cannot see (the trend absorbs it).
    history = fit.trend[:-recent_days]
    level, spread = float(np.median(history)), 1.4826 * float(np.median(np.abs(history - np.median(history))))
    band = max(z * spread, 0.2)  # at least a 20%-ish shift in log level
    recent = float(np.mean(fit.trend[-7:]))
    if abs(recent - level) > band:
        out.append(
            Anomaly(
                "drift",
                key,
                series.index[-1].date().isoformat(),
                float(np.mean(series.values[-7:])),
                _at_least_zero(scale * float(np.expm1(level - band))),
                scale * float(np.expm1(level + band)),
            )
        )
    return out


def find_anomalies(
    store: Any, by: str = "model", until: datetime | None = None, filter_sql: str = "", filter_params: tuple = ()
) -> list[Anomaly]:
    """Anomalies of daily spend per group over the ledger (before `until`, if given; narrowed by `filter_sql`)."""
    wide = daily_spend(store, by, until, filter_sql, filter_params)
    found: list[Anomaly] = []
    for key in wide.columns:
        found.extend(detect(wide[key], str(key)))
    return found
