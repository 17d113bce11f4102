"""How long an observed window is, in words, and whether it is long enough for what is projected from it.

A month projected from 54 seconds of calls, or a reservation sized from 8 minutes of trace, reads as a finding;
these helpers make every projection state its window and warn below a minimum."""

from __future__ import annotations

from datetime import datetime

MIN_HOURS_MONTHLY_PROJECTION = 24  # a day's cycle at least before multiplying up to a month
MIN_DAYS_RESERVATION = 7  # a weekly cycle (weekends) at least before a provisioned-throughput purchase


def duration_text(seconds: float) -> str:
    """54 s, 8 min, 3.5 h, 2.1 days."""
    if seconds < 90:
        return f"{seconds:.0f} s"
    if seconds < 90 * 60:
        return f"{seconds / 60:.0f} min"
    if seconds < 48 * 3600:
        return f"{seconds / 3600:.1f} h"
    return f"{seconds / 86400:.1f} days"


def window_text(start: datetime, end: datetime) -> str:
    """'54 s (2026-11-18 12:00 → 12:00 UTC)'."""
    fmt_end = "%H:%M" if start.date() == end.date() else "%Y-%m-%d %H:%M"
    return f"{duration_text((end - start).total_seconds())} ({start:%Y-%m-%d %H:%M} → {end:{fmt_end}} UTC)"


def short_for_monthly(start: datetime, end: datetime) -> str | None:
    """A warning when under MIN_HOURS_MONTHLY_PROJECTION of traffic is projected to a month, else None."""
    if (end - start).total_seconds() >= MIN_HOURS_MONTHLY_PROJECTION * 3600:
        return None
    return (
        f"only {window_text(start, end)} of traffic: a monthly projection needs at least "
        f"{MIN_HOURS_MONTHLY_PROJECTION} h (a daily cycle); treat the monthly figures as rough, or record more "
        "traffic / widen --since/--until"
    )


def short_for_reservation(start: datetime, end: datetime) -> str | None:
    """A warning when a provisioned-throughput verdict rests on under MIN_DAYS_RESERVATION of traffic, else None."""
    if (end - start).total_seconds() >= MIN_DAYS_RESERVATION * 86400:
        return None
    return (
        f"only {window_text(start, end)} of traffic: a provisioned-throughput purchase needs at least "
        f"{MIN_DAYS_RESERVATION} days (a weekly cycle); measure a full week before buying units"
    )
