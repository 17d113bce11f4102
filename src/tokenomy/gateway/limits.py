"""Budgets and request rates, enforced before the call and settled after it.

Money is held as integer nano-dollars so counters stay exact in Redis too. The in-process
backend serves one process; with Redis every worker and instance shares the same counters.
"""

from __future__ import annotations

import asyncio
import time
from decimal import Decimal

NANO = Decimal(1_000_000_000)


def to_nano(value: Decimal) -> int:
    return int((value * NANO).to_integral_value(rounding="ROUND_CEILING"))


class LocalLimits:
    """Counters in this process (tests, single worker)."""

    def __init__(self) -> None:
        self._spend: dict[str, int] = {}
        self._windows: dict[str, list[float]] = {}
        self._lock = asyncio.Lock()

    async def reserve(self, budgets: list[tuple[str, int, int]], estimate: int) -> str | None:
        """Reserve `estimate` nano-USD against every (counter, limit, spent-before) budget; None if it fits."""
        async with self._lock:
            for counter, limit, base in budgets:
                current = self._spend.setdefault(counter, base)
                if current + estimate > limit:
                    return counter
            for counter, _, _ in budgets:
                self._spend[counter] += estimate
            return None

    async def settle(self, budgets: list[tuple[str, int, int]], estimate: int, actual: int) -> None:
        async with self._lock:
            for counter, _, _ in budgets:
                self._spend[counter] = self._spend.get(counter, 0) - estimate + actual

    async def hit_rate(self, counter: str, rpm: int) -> bool:
        """Count one request; False when the last minute already had `rpm` requests."""
        async with self._lock:
            now = time.monotonic()
            window = [t for t in self._windows.get(counter, []) if now - t < 60]
            if len(window) >= rpm:
                self._windows[counter] = window
                return False
            window.append(now)
            self._windows[counter] = window
            return True


RESERVE_LUA = """
for i, key in ipairs(KEYS) do
  local current = tonumber(redis.call('GET', key) or ARGV[2 + (i - 1) * 2])
  if current + tonumber(ARGV[1]) > tonumber(ARGV[1 + i * 2]) then return i end
end
for i, key in ipairs(KEYS) do
  if redis.call('EXISTS', key) == 0 then redis.call('SET', key, ARGV[2 + (i - 1) * 2]) end
  redis.call('INCRBY', key, ARGV[1])
end
return 0
"""
RATE_LUA = """
local count = redis.call('INCR', KEYS[1])
if count == 1 then redis.call('EXPIRE', KEYS[1], 60) end
if count > tonumber(ARGV[1]) then return 0 end
return 1
"""


class RedisLimits:
    """The same counters in Redis: atomic Lua scripts, shared by every gateway process."""

    def __init__(self, url: str) -> None:
        import redis.asyncio as redis

        self.client = redis.from_url(url)
        self._reserve = self.client.register_script(RESERVE_LUA)
        self._rate = self.client.register_script(RATE_LUA)

    async def reserve(self, budgets: list[tuple[str, int, int]], estimate: int) -> str | None:
        keys = [f"tokenomy:spend:{c}" for c, _, _ in budgets]
        args: list[int] = [estimate]
        for _, limit, base in budgets:
            args += [base, limit]
        failed = int(await self._reserve(keys=keys, args=args))
        return None if failed == 0 else budgets[failed - 1][0]

    async def settle(self, budgets: list[tuple[str, int, int]], estimate: int, actual: int) -> None:
        async with self.client.pipeline(transaction=True) as pipe:
            for counter, _, _ in budgets:
                pipe.incrby(f"tokenomy:spend:{counter}", actual - estimate)
            await pipe.execute()

    async def hit_rate(self, counter: str, rpm: int) -> bool:
        minute = int(time.time() // 60)
        return bool(int(await self._rate(keys=[f"tokenomy:rpm:{counter}:{minute}"], args=[rpm])))
