"""Redis restarted empty while a paid call's settlement could not be sent (Redis down as the call ended): the
settlement was kept and sent again later, under the counter's older epoch, so it added the call's whole cost, the seed
having already counted the call from the ledger. The call was counted twice: measured through `serve --workers 2`,
9 kept settlements put a key's counter $0.0314 above what its ledger says, and the key was refused calls its budget
still had room for. A settlement of a call recorded before the re-seed began now changes nothing (the seed counted
it); one recorded later (a call still out when the counter was lost) still adds its whole cost."""

from __future__ import annotations

import asyncio
import time
from datetime import UTC, datetime
from decimal import Decimal

import pytest
from redis.exceptions import ConnectionError as RedisConnectionError

from tokenomy.gateway.budgets import Budgets, Reservation, Scope
from tokenomy.gateway.keys import KeyStore
from tokenomy.gateway.limits import KINDS, LimitsUnavailable, RedisLimits
from tokenomy.ledger.events import UsageEvent
from tokenomy.ledger.store import open_store
from tokenomy.ledger.writer import LedgerWriter


@pytest.mark.redis
def test_a_kept_settlement_of_a_call_the_reseed_counted_is_not_added_again(redis_url, tmp_path):
    counter = f"key:reseed-kept-{time.time_ns()}"
    since = datetime(2026, 1, 1, tzinfo=UTC)
    scope = Scope(counter, 10**9, "key_id", "k1", since)
    store = open_store(str(tmp_path / "ledger.duckdb"))
    writer = LedgerWriter(store, flush_interval=0.1)

    def paid(nano: int) -> None:  # a call's ledger row, as the client records it before its settlement
        cost = Decimal(nano) / Decimal(10**9)
        writer.record(UsageEvent(ts=datetime.now(UTC), provider="p", model="m", key_id="k1", cost_usd=cost))

    async def run() -> tuple[int | None, int | None]:
        worker = Budgets(RedisLimits(redis_url), writer, KeyStore(store), None)  # type: ignore[arg-type]
        script = worker.limits._settle
        try:
            held = await worker.reserve([scope], 100)  # seeds the counter from the empty ledger
            out = await worker.reserve([scope], 100)  # a call still out when the counter is lost
            assert isinstance(held, Reservation) and isinstance(out, Reservation)
            paid(80)

            async def down(*args, **kwargs):
                raise RedisConnectionError("Redis is down")

            worker.limits._settle = down
            with pytest.raises(LimitsUnavailable):
                await worker.settle(held, 80)  # kept
            worker.limits._settle = script
            worker.open.clear()  # the other call is another worker's: this one's seed does not count it
            await worker.limits.client.delete(*(f"tokenomy:{kind}:{counter}" for kind in KINDS))  # Redis restarted
            again = await worker.reserve([scope], 10)  # re-seeded from the ledger (80), then reserves 10
            assert isinstance(again, Reservation)
            await asyncio.sleep(0.05)
            paid(30)
            await worker.settle(out, 30)  # ended after the re-seed: added whole
            assert await worker.retry_unsettled()
            first = await worker.limits.spent(counter)
            assert await worker.retry_unsettled()  # nothing left to send
            return first, await worker.limits.spent(counter)
        finally:
            await worker.aclose()
            await worker.limits.aclose()
            writer.close()

    assert asyncio.run(run()) == (120, 120)  # 80 and 30 paid, 10 held; the 80 was added twice (200)


@pytest.mark.redis
def test_an_older_epochs_settlement_adds_its_cost_unless_the_call_was_in_the_ledger_the_seed_read(redis_url):
    # Another worker's kept settlement: the seed read the ledger after its call was recorded, or before.
    async def run() -> list[int | None]:
        limits = RedisLimits(redis_url)
        counter = f"key:counted-{time.time_ns()}"
        seen: list[int | None] = []
        try:
            await limits.seed(counter, 0)
            old = (await limits.reserve([(counter, 10**6)], 100, "a")).epochs[counter]
            await limits.client.delete(*(f"tokenomy:{kind}:{counter}" for kind in KINDS))
            seeded = int(time.time() * 1000)
            await limits.seed(counter, 500, counted_before=seeded)
            for hold, recorded in (("a", seeded - 5_000), ("b", seeded + 5_000), ("c", None)):
                await limits.settle([(counter, old, 100, 80, hold, recorded)])
                seen.append(await limits.spent(counter))
            await limits.settle([(counter, old, 100, 80, "d")])  # a settlement that says nothing of it: added
            seen.append(await limits.spent(counter))
        finally:
            await limits.aclose()
        return seen

    # recorded before: counted by the seed; after, or a cost that may not be in the ledger: added whole
    assert asyncio.run(run()) == [500, 580, 660, 740]
