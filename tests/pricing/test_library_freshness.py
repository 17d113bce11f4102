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


def test_pricing_from_a_price_decides_its_age_once_and_warns_the_day_it_turns_old(monkeypatch, caplog):
    # The gateway prices every answer: warn_if_old read the clock (datetime.now) and parsed the price's as_of on each
    # call. The day a price turns old is found once per as_of; a call only compares the time with it.
    from tokenomy.pricing.entry import PriceEntry

    entry = PriceEntry(provider="p", model="m-fresh", region="r", family="f", source="test", as_of="2026-01-01")
    reads = []

    class Clock(datetime):
        @classmethod
        def now(cls, tz=None):
            reads.append(1)
            return datetime(2026, 3, 1, 12, tzinfo=tz or UTC)

    monkeypatch.setattr(freshness, "datetime", Clock)
    monkeypatch.setattr(freshness, "_warned", set())
    day = datetime(2026, 6, 30, 23, 59, 59, tzinfo=UTC).timestamp()  # 180 days after 2026-01-01: not yet old
    monkeypatch.setattr(freshness, "_clock", lambda: day)
    with caplog.at_level("WARNING", logger="tokenomy.pricing"):
        assert not any(freshness.warn_if_old(entry) for _ in range(100))
        assert reads == [] and not caplog.records
        monkeypatch.setattr(freshness, "_clock", lambda: day + 1)  # 2026-07-01 00:00 UTC: 181 days old
        assert freshness.warn_if_old(entry) and freshness.warn_if_old(entry)
    assert [r.getMessage() for r in caplog.records] == [
        "pricing m-fresh from data 181 days old (as of 2026-01-01, test); "
        "give current prices in a price file (TOKENOMY_PRICES=FILE); `tokenomy prices update` refreshes genai-prices' "
        "data only"
    ]
    undated = PriceEntry(provider="p", model="m-undated", region="r", family="f", source="test", as_of="unknown")
    assert not freshness.warn_if_old(undated)  # no date: as before, nothing to say
    assert freshness.age_days(entry.as_of, date(2026, 7, 1)) == 181  # the same rule as `prices --stale`'s
