"""Output of `tokenomy report forecast` (kept apart so the report command stays a thin dispatcher)."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any, Optional

from tokenomy.commands._output import console, print_json, table, usd


def show_forecast(store: Any, until: Optional[datetime], as_json: bool) -> None:
    """Forecast the month containing `until` (default now) and print it."""
    from tokenomy.analytics.forecast import month_end_forecast

    now = None
    if until is not None:
        now = until.replace(tzinfo=UTC) if until.tzinfo is None else until
    result = month_end_forecast(store, now=now)
    if as_json:
        print_json(result.to_json(), money="amount")
        return
    console.print(
        table(
            f"month-end forecast {result.month} (as of {result.as_of})",
            ["figure", "value"],
            [
                ["month to date", usd(result.month_to_date_usd)],
                ["forecast month end", usd(result.forecast_usd)],
                [f"{result.level:.0%} interval", f"{usd(result.low_usd)} – {usd(result.high_usd)}"],
                ["days left", result.days_left],
                ["history", f"{result.history_days} days, {result.method}"],
            ],
        )
    )
