"""How old genai-prices' bundled data is said to be: the date must not move forward with the clock."""

from __future__ import annotations

from datetime import UTC, date, datetime
from types import SimpleNamespace

from tokenomy.pricing import freshness, library


def _providers(*starts: date) -> list:
    prices = [SimpleNamespace(constraint=SimpleNamespace(start_date=start)) for start in starts]
    return [SimpleNamespace(models=[SimpleNamespace(prices=prices)])]


def _on(day: date):
    class Clock(datetime):
        @classmethod
        def now(cls, tz=None):
            return datetime(day.year, day.month, day.day, 12, tzinfo=tz or UTC)

    return Clock


def test_a_change_the_data_scheduled_ahead_does_not_make_old_data_look_current(monkeypatch):
    # Installed 2026-12-02 with a price change already in effect (2026-11-01) and one scheduled for 2027-01-01.
    providers = _providers(date(2026, 11, 1), date(2027, 1, 1))
    monkeypatch.setattr(library, "_installed_on", lambda: date(2026, 12, 2), raising=False)
    monkeypatch.setattr(library, "datetime", _on(date(2026, 12, 3)))
    assert library._bundled_as_of(providers) == "2026-11-01"
    # Seven months on, nothing updated: the scheduled change's day has come, but the data is no newer for it.
    monkeypatch.setattr(library, "datetime", _on(date(2027, 7, 1)))
    as_of = library._bundled_as_of(providers)
    assert as_of == "2026-11-01"
    assert freshness.age_days(as_of, date(2027, 7, 1)) > freshness.WARN_DAYS  # so pricing from it warns


def test_a_data_file_dated_1970_says_nothing_of_when_it_was_installed(monkeypatch):
    # Nix and some image builders set every file's mtime to 1970: taken as the install day, every bundled price was
    # dated 2000-01-01 and warned about as decades stale.
    providers = _providers(date(2026, 11, 1))
    monkeypatch.setattr(library, "_installed_on", lambda: date(1970, 1, 1), raising=False)
    monkeypatch.setattr(library, "datetime", _on(date(2026, 12, 3)))
    assert library._bundled_as_of(providers) == "2026-11-01"
