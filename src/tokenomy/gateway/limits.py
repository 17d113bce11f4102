"""Budgets and request rates, enforced before the call and settled after it.

Money is held as integer nano-dollars so counters stay exact in Redis too. The in-process
backend serves one process; with Redis every worker and instance shares the same counters.

A counter that does not exist is never created by a reservation or a settlement: `reserve` answers
which counters are missing and the caller seeds them from the ledger (the source of truth), so a
Redis that restarted empty is re-seeded with what was really spent, not with a figure from start-up.
Each seeding gets a new epoch; a settlement for a reservation made under an older epoch adds the full
actual cost (the seed may not have counted that call), never "actual - estimate"; nothing when its call was in the
ledger before the seed read it (the epoch says from when: a settlement Redis could not take, sent again later).

In Redis each reservation is also a hold with a lease (`hold_seconds`): a worker killed before it settled (SIGKILL,
OOM) would otherwise leave its reservations on the shared counters until the budget's period ends. The next
reservation against a counter releases the holds whose lease ran out and notes them as released (for a week); a
settlement that comes after its hold was released adds the full actual cost, as one from an older epoch does.

A settlement is applied at most once: one whose hold is neither held nor released was applied already (a retry after
Redis answered but the answer was lost, or a settlement the caller kept and sent again), so it changes nothing; one
from an older epoch is remembered as settled for a week too. The caller may therefore retry a failed settlement
until Redis takes it (`Budgets` does).
"""

from __future__ import annotations

import asyncio
import itertools
import logging
import time
import uuid
from dataclasses import dataclass
from decimal import Decimal
from typing import Any

NANO = Decimal(1_000_000_000)
log = logging.getLogger("tokenomy.gateway")


def to_nano(value: Decimal) -> int:
    return int((value * NANO).to_integral_value(rounding="ROUND_CEILING"))


# (counter, epoch at reservation, estimate, actual, hold, recorded): `recorded` is when the call's cost was in the
# ledger (ms since the epoch), None when it may not be (a cost not known); a tuple without it counts as recorded now.
Settlement = tuple[str, str, int, int, str, int | None]


class LimitsUnavailable(Exception):
    """The limits store could not be reached (Redis down) while settling; `landed` settlements of the batch were
    applied before it failed, the rest were not (or not knowingly: a settlement whose answer was lost is applied
    at most once when sent again)."""

    def __init__(self, landed: int, cause: Exception) -> None:
        super().__init__(str(cause))
        self.landed = landed


@dataclass
class Reserved:
    """What `reserve` answers: missing counters (seed them and retry), the counter that refused, or epochs."""

    missing: list[str]
    refused: str | None
    epochs: dict[str, str]


class LocalLimits:
    """Counters in this process (tests, single worker)."""

    def __init__(self) -> None:
        self._spend: dict[str, int] = {}
        self._windows: dict[str, list[float]] = {}
        self._lock = asyncio.Lock()
        self._epochs = itertools.count(1)
        self._epoch: dict[str, str] = {}
        self._counted: dict[str, int | None] = {}  # each counter's seed counted the calls recorded before this (ms)

    async def reserve(self, budgets: list[tuple[str, int]], estimate: int, hold: str) -> Reserved:
        """Reserve `estimate` nano-USD against every (counter, limit) budget (`hold` names it in Redis only: these
        counters die with the process that holds them)."""
        async with self._lock:
            missing = [c for c, _ in budgets if c not in self._spend]
            if missing:
                return Reserved(missing, None, {})
            for counter, limit in budgets:
                if self._spend[counter] + estimate > limit:
                    return Reserved([], counter, {})
            for counter, _ in budgets:
                self._spend[counter] += estimate
            return Reserved([], None, {c: self._epoch[c] for c, _ in budgets})

    async def seed(self, counter: str, value: int, counted_before: int | None = None) -> bool:
        """Create the counter at `value` (under a new epoch) unless it exists; True if this call created it.
        `counted_before` (ms since the epoch), as for RedisLimits.seed: every call whose cost was in the ledger before
        then is in `value`, so a settlement of such a call made under an older epoch adds nothing."""
        async with self._lock:
            if counter in self._spend:
                return False
            self._spend[counter] = value
            self._epoch[counter] = str(next(self._epochs))
            self._counted[counter] = counted_before
            return True

    async def settle(self, settlements: list[Settlement]) -> None:
        """Each (see `Settlement`): replace the reservation by the actual cost. One made under an older epoch adds
        the actual cost whole (the seed may not have counted the call), but nothing when the call was in the ledger
        before the seed began counting (a settlement kept while the counter was seeded again): as SETTLE_LUA."""
        async with self._lock:
            for counter, epoch, estimate, actual, _hold, *rest in settlements:
                if counter not in self._spend:
                    continue
                if self._epoch.get(counter) == epoch:
                    self._spend[counter] += actual - estimate
                    continue
                recorded = rest[0] if rest else None  # a tuple without it counts as recorded now: after the seed
                counted = self._counted.get(counter)
                if counted is not None and recorded is not None and recorded < counted:
                    continue  # the seed counted it
                self._spend[counter] += actual

    async def spent(self, counter: str) -> int | None:
        return self._spend.get(counter)

    async def forget(self, prefix: str) -> None:
        """Remove the counters whose names begin with `prefix`: their next reservation seeds them again."""
        async with self._lock:
            for counter in [c for c in self._spend if c.startswith(prefix)]:
                del self._spend[counter]

    async def rate_wait(self, counter: str, rpm: int) -> float | None:
        """Count one request and return None; or, when the last minute already had `rpm` requests, count nothing and
        return the seconds until the oldest of them leaves the minute (when one more may be sent)."""
        async with self._lock:
            now = time.monotonic()
            window = [t for t in self._windows.get(counter, []) if now - t < 60]
            self._windows[counter] = window
            if len(window) >= rpm:
                return 60 - (now - window[0])
            window.append(now)
            return None

    async def aclose(self) -> None:
        return None


KINDS = ("spend", "epoch", "holds", "released")  # the Redis keys of one counter: tokenomy:<kind>:<counter>
RELEASED_KEPT_MS = 7 * 24 * 3600 * 1000  # how long a released hold is remembered for a late settlement

# Releases the holds on one counter (KEYS[c]) whose lease ran out (score <= now) from its holds set (KEYS[h]) into
# its released set (KEYS[r], scored by release time; entries older than `kept` ms go). A member is
# "<hold id>:<nano-USD>".
RELEASE_EXPIRED_LUA = """
local function release_expired(c, h, r, now, kept)
  local expired = redis.call('ZRANGEBYSCORE', h, '-inf', now)
  if #expired == 0 then return end
  local total = 0
  for _, member in ipairs(expired) do
    total = total + tonumber(string.match(member, ':(%d+)$'))
    redis.call('ZADD', r, now, member)
  end
  redis.call('DECRBY', c, string.format('%d', total))
  redis.call('ZREMRANGEBYSCORE', h, '-inf', now)
  redis.call('ZREMRANGEBYSCORE', r, '-inf', now - kept)
  redis.call('PEXPIRE', r, kept)  -- a past period's counter sees no more reservations to trim it
end
"""
# KEYS: n spend counters, their n epoch keys, their n holds sets, their n released sets. ARGV: estimate, hold id,
# now (ms), lease end (ms), how long released holds are kept (ms), then n limits.
RESERVE_LUA = (
    RELEASE_EXPIRED_LUA
    + """
local n = #KEYS / 4
local missing = {}
for i = 1, n do
  if redis.call('EXISTS', KEYS[i]) == 0 then table.insert(missing, i) end
end
if #missing > 0 then return {-1, unpack(missing)} end
for i = 1, n do release_expired(KEYS[i], KEYS[2 * n + i], KEYS[3 * n + i], tonumber(ARGV[3]), tonumber(ARGV[5])) end
for i = 1, n do
  if tonumber(redis.call('GET', KEYS[i])) + tonumber(ARGV[1]) > tonumber(ARGV[5 + i]) then return {i} end
end
local epochs = {0}
local member = ARGV[2] .. ':' .. ARGV[1]
for i = 1, n do
  redis.call('INCRBY', KEYS[i], ARGV[1])
  redis.call('ZADD', KEYS[2 * n + i], ARGV[4], member)
  table.insert(epochs, redis.call('GET', KEYS[n + i]) or '')
end
return epochs
"""
)
# KEYS: spend counter, epoch key, holds set, released set. ARGV: value, new epoch. Holds from before (the counter
# was lost) go.
SEED_LUA = """
if redis.call('EXISTS', KEYS[1]) == 1 then return 0 end
redis.call('SET', KEYS[1], ARGV[1])
redis.call('SET', KEYS[2], ARGV[2])
redis.call('DEL', KEYS[3], KEYS[4])
return 1
"""
# KEYS: spend counter, epoch key, holds set, released set. ARGV: epoch at reservation, estimate, actual, hold id,
# now (ms), how long released holds are kept (ms), when the call's cost was in the ledger (ms; '' if it may not be).
# Same epoch: a held reservation becomes its actual cost; a released one (its lease ran out, its estimate went) adds
# it whole; one in neither set was settled already and changes nothing (answers 2). An older epoch adds the actual
# cost whole (the seed may not have counted the call), once: the released set remembers it as "settled:<member>";
# but nothing when the call was in the ledger before the seed's count began (the epoch's ":<ms>" end), as a
# settlement Redis could not take when the call ended is, sent again once Redis came back empty: the seed counted it.
SETTLE_LUA = """
if redis.call('EXISTS', KEYS[1]) == 0 then return 0 end
local member = ARGV[4] .. ':' .. ARGV[2]
local delta = tonumber(ARGV[3])
local current = redis.call('GET', KEYS[2]) or ''
if current == ARGV[1] then
  if redis.call('ZREM', KEYS[3], member) == 1 then delta = delta - tonumber(ARGV[2])
  elseif redis.call('ZREM', KEYS[4], member) == 0 then return 2 end
else
  if redis.call('ZADD', KEYS[4], 'NX', ARGV[5], 'settled:' .. member) == 0 then return 2 end
  redis.call('PEXPIRE', KEYS[4], ARGV[6])
  local counted = tonumber(string.match(current, ':(%d+)$'))
  if counted and ARGV[7] ~= '' and tonumber(ARGV[7]) < counted then return 2 end
end
redis.call('INCRBY', KEYS[1], string.format('%d', delta))  -- %d: Lua would print 1e+14
return 1
"""
# KEYS: the key's requests of the last minute (a sorted set scored by time). ARGV: rpm, now (ms), this request's id.
# The last 60 s, as LocalLimits counts them: a counter per calendar minute let a key send its rpm at the end of one
# minute and again at the start of the next. A refused request is not counted.
RATE_LUA = """
local now = tonumber(ARGV[2])
redis.call('ZREMRANGEBYSCORE', KEYS[1], '-inf', now - 60000)
if redis.call('ZCARD', KEYS[1]) >= tonumber(ARGV[1]) then
  local oldest = redis.call('ZRANGE', KEYS[1], 0, 0, 'WITHSCORES')
  return tonumber(oldest[2]) + 60000 - now
end
redis.call('ZADD', KEYS[1], now, ARGV[3])
redis.call('PEXPIRE', KEYS[1], 60000)
return -1
"""  # -1: counted; else the milliseconds until the oldest request of the minute leaves it


def _glob_escaped(text: str) -> str:
    """`text` matched literally by a Redis SCAN pattern (a key id or team name may hold *, ?, [ or \\)."""
    return "".join("\\" + c if c in "*?[]\\" else c for c in text)


class RedisLimits:
    """The same counters in Redis: atomic Lua scripts, shared by every gateway process.

    The connection pool holds up to `max_connections` (the worker's concurrency) and a request waits
    at most `pool_timeout` seconds for one instead of failing with "Too many connections"; a connection
    that went stale (Redis restarted) is retried on a fresh one. A reservation not settled within
    `hold_seconds` (its worker died) is released by the next reservation on its counter.
    """

    def __init__(
        self, url: str, max_connections: int = 512, pool_timeout: float = 5.0, hold_seconds: float = 3600.0
    ) -> None:
        self.hold_ms = int(hold_seconds * 1000)
        import redis.asyncio as redis
        from redis.asyncio.retry import Retry
        from redis.backoff import ExponentialBackoff
        from redis.exceptions import ConnectionError, TimeoutError

        pool = redis.BlockingConnectionPool.from_url(
            url,
            max_connections=max_connections,
            timeout=pool_timeout,
            socket_connect_timeout=2,
            socket_timeout=5,
            health_check_interval=5,
            retry_on_error=[ConnectionError, TimeoutError],
            retry=Retry(ExponentialBackoff(cap=0.5, base=0.05), 3),
        )
        self.client = redis.Redis(connection_pool=pool)
        self._reserve = self.client.register_script(RESERVE_LUA)
        self._seed = self.client.register_script(SEED_LUA)
        self._settle = self.client.register_script(SETTLE_LUA)
        self._rate = self.client.register_script(RATE_LUA)

    async def reserve(self, budgets: list[tuple[str, int]], estimate: int, hold: str) -> Reserved:
        keys = [f"tokenomy:{kind}:{c}" for kind in KINDS for c, _ in budgets]
        now = int(time.time() * 1000)  # gateways' clocks may differ by seconds; a lease is many minutes
        lease_end = now + self.hold_ms
        args: list[int | str] = [estimate, hold, now, lease_end, RELEASED_KEPT_MS, *(lim for _, lim in budgets)]
        answer: list[Any] = [
            int(v) if i == 0 or not isinstance(v, bytes) else v.decode()
            for i, v in enumerate(await self._reserve(keys=keys, args=args))
        ]
        if answer[0] == -1:
            return Reserved([budgets[int(i) - 1][0] for i in answer[1:]], None, {})
        if answer[0] > 0:
            return Reserved([], budgets[answer[0] - 1][0], {})
        return Reserved([], None, {c: str(e) for (c, _), e in zip(budgets, answer[1:], strict=True)})

    async def seed(self, counter: str, value: int, counted_before: int | None = None) -> bool:
        """Create the counter at `value` under a new epoch unless it exists; True if this call created it.
        `counted_before` (ms since the epoch): every call whose cost was in the ledger before then is in `value`, so
        a settlement of such a call made under an older epoch adds nothing (SETTLE_LUA)."""
        epoch = uuid.uuid4().hex + ("" if counted_before is None else f":{counted_before}")
        return bool(int(await self._seed(keys=[f"tokenomy:{kind}:{counter}" for kind in KINDS], args=[value, epoch])))

    async def settle(self, settlements: list[Settlement]) -> None:
        """Each in turn; LimitsUnavailable (naming how many landed) if Redis cannot be reached."""
        from redis.exceptions import ConnectionError, RedisError, TimeoutError

        for landed, (counter, epoch, estimate, actual, hold, *rest) in enumerate(settlements):
            now = int(time.time() * 1000)
            recorded = rest[0] if rest else now
            try:
                await self._settle(
                    keys=[f"tokenomy:{kind}:{counter}" for kind in KINDS],
                    args=[epoch, estimate, actual, hold, now, RELEASED_KEPT_MS, "" if recorded is None else recorded],
                )
            except (ConnectionError, TimeoutError, OSError) as exc:
                raise LimitsUnavailable(landed, exc) from exc
            except RedisError as exc:  # refused, not unreachable: sent again it would be refused again, and hold up
                # the settlements behind it
                log.error("Redis refused the settlement of hold %s on %s (%s); it is dropped", hold, counter, exc)

    async def forget(self, prefix: str) -> None:
        """Remove the counters whose names begin with `prefix`: their next reservation finds them missing and seeds
        them again (under a new epoch, their holds dropped: SEED_LUA)."""
        async for name in self.client.scan_iter(match=f"tokenomy:spend:{_glob_escaped(prefix)}*", count=1000):
            await self.client.delete(name)

    async def spent(self, counter: str) -> int | None:
        value = await self.client.get(f"tokenomy:spend:{counter}")
        return None if value is None else int(value)

    async def rate_wait(self, counter: str, rpm: int) -> float | None:
        """Count one request and return None; or, when the last minute already had `rpm` requests (every worker's),
        the seconds until one more may be sent."""
        now = int(time.time() * 1000)  # gateways' clocks may differ by a little: a minute's window is that much off
        args: list[int | str] = [rpm, now, uuid.uuid4().hex]
        wait = int(await self._rate(keys=[f"tokenomy:rpm:{counter}"], args=args))
        return None if wait < 0 else wait / 1000

    async def aclose(self) -> None:
        await self.client.aclose()
        await self.client.connection_pool.disconnect()  # a pool passed in is not closed by the client
