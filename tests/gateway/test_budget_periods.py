"""A call running as its budget's period ends (a daily budget at midnight UTC): the ledger records its rows when they
are written, in the new period, and seeds the new period's counter from them; its settlement went onto the old
period's counter, so a new counter seeded before the call ended never counted it, and the key could spend past its
budget by each such call until the counter was seeded again."""

from __future__ import annotations

import asyncio
from datetime import timedelta
from decimal import Decimal

import pytest

from tokenomy.gateway import budgets as budgets_module
from tokenomy.gateway.budgets import Budgets, Reservation
from tokenomy.gateway.keys import KeyStore, VirtualKey, period_start
from tokenomy.gateway.limits import LocalLimits
from tokenomy.ledger.events import UsageEvent, utcnow
from tokenomy.ledger.store import open_store
from tokenomy.ledger.writer import LedgerWriter


def test_a_call_settled_after_its_period_ended_lands_on_the_period_its_ledger_rows_count_in(tmp_path, monkeypatch):
    store = open_store(str(tmp_path / "ledger.duckdb"))
    writer = LedgerWriter(store, flush_interval=0.1)
    key = VirtualKey("k1", None, None, Decimal("1"), "day", None)
    today = period_start("day")
    before_midnight = today - timedelta(seconds=1)
    clock = [before_midnight]  # the budgets' clock: just before midnight, then now
    monkeypatch.setattr(budgets_module, "period_start", lambda period, now=None: period_start(period, now or clock[0]))

    async def run() -> tuple[int | None, int | None, int]:
        budgets = Budgets(LocalLimits(), writer, KeyStore(store), None)  # type: ignore[arg-type]
        try:
            budgets.clock = lambda: clock[0]
            [yesterday] = budgets.scopes(key)
            running = await budgets.reserve([yesterday], 100)  # sent at 23:59:59, answered after midnight
            clock[0] = utcnow()
            [new] = budgets.scopes(key)
            assert new.counter != yesterday.counter
            other = await budgets.reserve([new], 10)  # the new day's first call seeds its counter (0), holds 10
            assert isinstance(running, Reservation) and isinstance(other, Reservation)
            writer.record(UsageEvent(ts=utcnow(), provider="p", model="m", key_id="k1", cost_usd=Decimal("80e-9")))
            await budgets.settle(running, 80)
            writer.flush()
            ledger_today = int(KeyStore(store).spent("key_id", "k1", today) * 10**9)
            return await budgets.limits.spent(new.counter), await budgets.limits.spent(yesterday.counter), ledger_today
        finally:
            await budgets.aclose()
            writer.close()

    new_counter, old_counter, ledger_today = asyncio.run(run())
    assert ledger_today == 80  # the ledger counts the call in the new day
    assert new_counter == 80 + 10  # the call, and the other's hold: it was 10
    assert old_counter == 0  # the old day's hold released: nothing of it was spent then


def test_a_kept_settlement_of_a_call_the_new_periods_seed_counted_is_not_added_again(tmp_path, monkeypatch):
    # The same call, its settlement cancelled as it was applied (kept, and sent again later), while the new day's first
    # call seeded the new counter from the ledger, which had its rows: the seed counted the call, and its settlement
    # (made under no epoch of that counter) was added on top by the in-process limits, which ignored when the seed
    # began counting (`counted_before`), as Redis does not: the key's counter stood 80 over what its ledger says.
    store = open_store(str(tmp_path / "ledger.duckdb"))
    writer = LedgerWriter(store, flush_interval=0.1)
    key = VirtualKey("k1", None, None, Decimal("1"), "day", None)
    today = period_start("day")
    clock = [today - timedelta(seconds=1)]
    monkeypatch.setattr(budgets_module, "period_start", lambda period, now=None: period_start(period, now or clock[0]))

    async def run() -> tuple[int | None, int | None, int]:
        budgets = Budgets(LocalLimits(), writer, KeyStore(store), None)  # type: ignore[arg-type]
        applied = budgets.limits.settle

        async def cancelled(settlements):
            raise asyncio.CancelledError

        try:
            budgets.clock = lambda: clock[0]
            [yesterday] = budgets.scopes(key)
            running = await budgets.reserve([yesterday], 100)  # sent at 23:59:59, answered after midnight
            assert isinstance(running, Reservation)
            clock[0] = utcnow()
            [new] = budgets.scopes(key)
            writer.record(UsageEvent(ts=utcnow(), provider="p", model="m", key_id="k1", cost_usd=Decimal("80e-9")))
            budgets.limits.settle = cancelled  # type: ignore[method-assign]
            with pytest.raises(asyncio.CancelledError):
                await budgets.settle(running, 80)  # kept, to be sent again
            budgets.limits.settle = applied  # type: ignore[method-assign]
            other = await budgets.reserve([new], 10)  # the new day's first call seeds its counter (80), holds 10
            assert isinstance(other, Reservation)
            assert await budgets.retry_unsettled()
            ledger_today = int(KeyStore(store).spent("key_id", "k1", today) * 10**9)
            return await budgets.limits.spent(new.counter), await budgets.limits.spent(yesterday.counter), ledger_today
        finally:
            await budgets.aclose()
            writer.close()

    new_counter, old_counter, ledger_today = asyncio.run(run())
    assert ledger_today == 80
    assert new_counter == 80 + 10  # the call once, and the other's hold: it was 170
    assert old_counter == 0
