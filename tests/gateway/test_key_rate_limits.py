"""A key's `rpm` counts the requests of the last minute, in one process (LocalLimits) and in Redis alike. In Redis it
was a counter per calendar minute: a key limited to 5 requests a minute could send 5 at 12:00:59 and 5 more at
12:01:00, twice its limit within a second, where the in-process counter (a sliding minute) refused the second five.
Redis now keeps the last minute's requests too."""

from __future__ import annotations

import asyncio
import time
from types import SimpleNamespace

import pytest

from tokenomy.gateway import limits as limits_module
from tokenomy.gateway.limits import LocalLimits, RedisLimits


@pytest.mark.parametrize("backend", ["local", pytest.param("redis", marks=pytest.mark.redis)])
def test_a_keys_rpm_holds_across_a_minutes_boundary(backend, request, monkeypatch):
    now = [1_000 * 60 + 59.5]  # half a second before a minute ends
    clock = SimpleNamespace(time=lambda: now[0], monotonic=lambda: now[0])
    monkeypatch.setattr(limits_module, "time", clock)
    limits = RedisLimits(request.getfixturevalue("redis_url")) if backend == "redis" else LocalLimits()

    async def hits(count: int) -> list[float | None]:
        return [await limits.rate_wait("key:k", 3) for _ in range(count)]

    async def main() -> tuple[list[float | None], ...]:
        try:
            before = await hits(4)
            now[0] += 1.0  # the next minute has begun, but the first three were sent within the last minute
            after = await hits(2)
            now[0] += 59.5  # 60.5 s after the first three: their minute is over
            later = await hits(4)
            return before, after, later
        finally:
            await limits.aclose()

    before, after, later = asyncio.run(main())
    # None: counted; a number: refused, and the seconds until the oldest request of the minute leaves it
    assert before == [None, None, None, pytest.approx(60.0)]
    assert after == [pytest.approx(59.0), pytest.approx(59.0)]
    assert later[:3] == [None, None, None] and later[3] == pytest.approx(60.0)


def test_the_clock_the_test_replaces_is_the_modules_own():
    assert limits_module.time is time  # the patch above replaces what limits.py reads, nothing else
