"""Budget reservations for virtual keys and teams: reserved before the provider is called, settled after.

Counters live in `limits` (this process, or Redis shared by every worker). A counter that is missing
(first use in a period, or Redis restarted empty) is seeded from the ledger, the source of truth:
this process's buffered events are flushed first, and the reservations this process holds but has
not settled are added at their estimate (their settlement then leaves the counter alone). So a
re-seeded counter never counts less than was really spent or is still being spent here. When the
counters are shared (Redis), seeding first waits one write-behind interval so that what the other
workers recorded before the counter went missing has reached the database too; their reservations
made before it went missing settle at the full actual cost (see limits.py), unless their call was in the ledger
the seed read (a settlement kept while Redis was down, sent again once it came back empty): then at nothing. This
adds about 0.7 s to the first request of a key or team in each period, once.

A settlement the limits store cannot take (Redis unreachable, or the request cancelled while it was sent) is kept
in this process and tried again in the background with backoff until it lands, and once more at shutdown. Dropped,
the reservation's hold would be released when its lease ends and the call's cost would be missing from the
counter: overspend. Within an epoch a settlement is applied at most once, so sending again one whose answer was
lost changes nothing. Kept settlements die with a killed process (its holds are then released at their estimate).
"""

from __future__ import annotations

import asyncio
import logging
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field, replace
from datetime import datetime
from decimal import Decimal

from tokenomy.call_cost import NO_ROOM
from tokenomy.gateway.keycache import KeyCache
from tokenomy.gateway.keys import KeyStore, VirtualKey, period_start
from tokenomy.gateway.limits import LimitsUnavailable, Settlement, to_nano
from tokenomy.ledger.events import utcnow
from tokenomy.ledger.writer import LedgerWriter

log = logging.getLogger("tokenomy.gateway")
RETRY_MAX_S = 30.0  # the longest wait between two tries of the settlements Redis did not take
# A re-seed counts from the ledger the calls recorded before it began less this (gateways' clocks may differ by this
# much): a settlement of such a call made under the older epoch then adds nothing; one recorded later adds its cost.
CLOCK_MARGIN_S = 1.0


class BudgetUnavailable(Exception):
    """A budget cannot be checked (its counter cannot be seeded from the ledger)."""


@dataclass(frozen=True)
class Scope:
    counter: str
    limit: int  # nano-USD
    column: str  # ledger column that names the spender: key_id or tenant
    value: str
    since: datetime
    period: str = "total"  # the budget's period (day, month, total); `counter` ends with its start's date

    def at(self, now: datetime) -> Scope:
        """This budget in the period `now` falls in: itself, or a later period's (its own counter and start)."""
        start = period_start(self.period, now)
        if start <= self.since:
            return self
        return replace(self, counter=f"{self.counter.rpartition(':')[0]}:{start.date()}", since=start)


@dataclass(eq=False)
class Reservation:
    scopes: list[Scope]
    estimate: int
    epochs: dict[str, str]
    hold: str  # its name in the limits store, where a hold whose worker died is released after a lease
    seeded: set[str] = field(default_factory=set)  # counters whose re-seed counted this reservation
    # Reserved mid-call on top of the estimate (a retry after attempts billed without an answer): settled with it.
    extensions: list[Reservation] = field(default_factory=list)


class Budgets:
    def __init__(self, limits, writer: LedgerWriter, keys: KeyStore, cache: KeyCache, shared: bool = False) -> None:
        self.limits = limits
        self.shared = shared
        self.writer = writer
        self.keys = keys
        self.cache = cache
        self.open: dict[str, set[Reservation]] = {}  # counter -> reservations of this process not yet settled
        self._seeding: dict[str, asyncio.Lock] = {}
        self.unsettled: list[Settlement] = []  # settlements the limits store did not take yet
        self._retrying: asyncio.Task | None = None
        self._sending = asyncio.Lock()  # one retry at a time: each removes exactly the settlements it sent
        # What a budget's period is read by: the ledger's clock, which timestamps a call's rows as they are recorded.
        self.clock: Callable[[], datetime] = utcnow

    def scopes(self, key: VirtualKey | None) -> list[Scope]:
        """The key's budget and its team's (the tighter one bites first); memory only."""
        if key is None:
            return []
        result = []
        now = self.clock()
        if key.budget_usd is not None:
            start = period_start(key.period, now)
            counter = f"key:{key.key_id}:{start.date()}"
            result.append(Scope(counter, to_nano(key.budget_usd), "key_id", key.key_id, start, key.period))
        team_name = key.team
        team = self.cache.team_budget(team_name) if team_name else None
        if team_name and team is not None:
            start = period_start(team[1], now)
            result.append(
                Scope(f"team:{team_name}:{start.date()}", to_nano(team[0]), "tenant", team_name, start, team[1])
            )
        return result

    async def reserve(self, scopes: list[Scope], estimate: int) -> Reservation | Scope:
        """A reservation, or the scope that refused it."""
        hold = uuid.uuid4().hex
        for _ in range(4):
            answer = await self.limits.reserve([(s.counter, s.limit) for s in scopes], estimate, hold)
            if answer.refused is not None:
                return next(s for s in scopes if s.counter == answer.refused)
            if not answer.missing:
                reservation = Reservation(scopes, estimate, answer.epochs, hold)
                for scope in scopes:
                    self.open.setdefault(scope.counter, set()).add(reservation)
                return reservation
            for scope in scopes:
                if scope.counter in answer.missing:
                    await self._seed(scope)
        raise BudgetUnavailable("budget counters keep disappearing from the limits store")

    async def recount(self, spenders: set[tuple[str, str]]) -> None:
        """Have the counters of these spenders (("key_id", id), ("tenant", team)) seeded again from the ledger at
        their next use: a killed gateway's calls its journal's replay wrote were never settled on them (in Redis its
        holds are released at their estimate when their lease ends, and the calls' cost was then counted nowhere).
        Other workers' reservations on them settle as after any re-seed (see limits.py)."""
        for column, value in spenders:
            await self.limits.forget(f"{'key' if column == 'key_id' else 'team'}:{value}:")

    async def left(self, scopes: list[Scope]) -> int | None:
        """What is left of the tightest of `scopes`, in nano-USD: its limit less what is spent and held (one read per
        counter, nothing seeded); None when a counter is missing. Another call may take it meanwhile."""
        rooms = []
        for scope in scopes:
            spent = await self.limits.spent(scope.counter)
            if spent is None:
                return None
            rooms.append(max(scope.limit - spent, 0))
        return min(rooms) if rooms else None

    async def extend(self, reservation: Reservation, extra: int) -> str | None:
        """Reserve `extra` more for the call holding `reservation` (its failed attempts were billed and it is about to
        try again): None once reserved, else why not, for the call's error: a budget has no room for it, or cannot be
        checked (its counter cannot be seeded, or Redis cannot be reached). Unchecked, the retry is not made: its
        spend would go past the budget unseen. The call has its answer (its attempt's error) to give, so a Redis that
        fails here is no 503 and no crash, unlike at admission."""
        from redis.exceptions import ConnectionError, RedisError, TimeoutError

        try:
            held = await self.reserve(reservation.scopes, extra)
        except (BudgetUnavailable, RedisError) as exc:
            if isinstance(exc, ConnectionError | TimeoutError):
                cause = f"the gateway cannot reach Redis, its limits store at redis_url: {exc}"
            elif isinstance(exc, RedisError):
                cause = f"Redis, its limits store at redis_url, failed: {exc}"
            else:
                cause = str(exc)
            why = f"the budget could not be checked for another attempt ({cause})"
            log.warning("a call's retry after its billed failed attempts was not made: %s", why)
            return why
        if isinstance(held, Scope):
            return NO_ROOM
        reservation.extensions.append(held)
        return None

    async def settle(self, reservation: Reservation, actual: int | None) -> None:
        """Replace the estimate by the actual cost; None (unknown, e.g. a dropped stream) keeps the estimate, settled
        as the cost so that its hold is not released when its lease ends. The actual cost is the whole call's, so
        what was reserved on top of the estimate is released (settled at 0).

        If the limits store cannot be reached (or this is cancelled), what it did not take is kept and retried (see
        the module's docstring) and the error is raised for the caller to log."""
        settlements = self._settlements(reservation, actual)
        if not settlements:
            return
        try:
            await self.limits.settle(settlements)
        except LimitsUnavailable as exc:
            self._keep(settlements[exc.landed :])
            raise
        except asyncio.CancelledError:  # which were sent is unknown: all are kept (applied once when sent again)
            self._keep(settlements)
            raise

    def _keep(self, settlements: list[Settlement]) -> None:
        self.unsettled.extend(settlements)
        if self._retrying is None or self._retrying.done():
            self._retrying = asyncio.get_running_loop().create_task(self._retry_with_backoff())

    def _settlements(self, reservation: Reservation, actual: int | None) -> list[Settlement]:
        """A `Settlement` for each counter the reservation and its extensions hold. The call's cost is in the ledger
        by now when it is known (`actual`): its attempts are recorded before their reservation is settled."""
        settlements = []
        for extension in reservation.extensions:
            settlements += self._settlements(extension, None if actual is None else 0)
        cost = reservation.estimate if actual is None else actual
        recorded = None if actual is None else int(time.time() * 1000)
        now = self.clock()
        for scope in reservation.scopes:
            self.open.get(scope.counter, set()).discard(reservation)
            # A call that ends in a later period than it was reserved in (running at midnight) has its rows recorded,
            # and counted by the ledger, in that period: its cost goes on that period's counter, and the old one's
            # hold is released. As a settlement from an older epoch, it adds nothing to a counter seeded after the
            # rows were recorded (the seed counted them), and to a missing one (its seed will).
            now_scope = scope.at(now)
            moved = now_scope is not scope
            if scope.counter not in reservation.seeded:
                epoch = reservation.epochs.get(scope.counter, "")
                held_cost = 0 if moved else cost
                settlements.append((scope.counter, epoch, reservation.estimate, held_cost, reservation.hold, recorded))
            if moved and cost:
                settlements.append((now_scope.counter, "", 0, cost, reservation.hold, recorded))
        return settlements

    async def retry_unsettled(self) -> bool:
        """Send the kept settlements again; True when none is left. They stay in the list until the store took
        them, so a cancellation midway loses none."""
        async with self._sending:
            sent = list(self.unsettled)
            try:
                await self.limits.settle(sent)
            except LimitsUnavailable as exc:
                del self.unsettled[: exc.landed]
                log.warning(
                    "%d budget settlement(s) still not taken by the limits store (%s)", len(self.unsettled), exc
                )
                return False
            del self.unsettled[: len(sent)]  # settlements kept meanwhile were appended after them
            return not self.unsettled

    async def _retry_with_backoff(self) -> None:
        delay = 1.0
        while self.unsettled:
            await asyncio.sleep(delay)
            if await self.retry_unsettled():
                log.warning("the budget settlements kept while the limits store failed are now applied")
                return
            delay = min(delay * 2, RETRY_MAX_S)

    async def aclose(self) -> None:
        """Stop the background retries, trying the kept settlements once more (a gateway shutting down)."""
        if self._retrying is not None:
            self._retrying.cancel()
            await asyncio.gather(self._retrying, return_exceptions=True)
        if self.unsettled and not await self.retry_unsettled():
            log.warning(
                "%d budget settlement(s) were never taken by the limits store: the costs of those calls are "
                "missing from their budget counters until they are next seeded from the ledger",
                len(self.unsettled),
            )

    async def _seed(self, scope: Scope) -> None:
        lock = self._seeding.setdefault(scope.counter, asyncio.Lock())
        async with lock:
            if await self.limits.spent(scope.counter) is not None:
                return  # seeded meanwhile (by this process or another)
            # What was recorded before now is in the ledger when it is read: this process's rows are flushed first,
            # the other workers' have had their write-behind interval (below).
            counted_before = int((time.time() - CLOCK_MARGIN_S) * 1000)
            held = list(self.open.get(scope.counter, ()))
            for reservation in held:  # counted below at their estimate: their settlement must not subtract it
                reservation.seeded.add(scope.counter)
            if self.shared:  # other workers' write-behind reaches the database within one interval
                await asyncio.sleep(self.writer.flush_interval + 0.2)
            try:
                spent = await asyncio.to_thread(self._ledger_spent, scope)
            except Exception as exc:
                for reservation in held:
                    reservation.seeded.discard(scope.counter)
                raise BudgetUnavailable(f"the ledger cannot be read to seed the budget ({exc})") from None
            created = await self.limits.seed(scope.counter, spent + sum(r.estimate for r in held), counted_before)
            if not created:
                for reservation in held:
                    reservation.seeded.discard(scope.counter)
                return
            # This process's kept settlements on the counter are of calls the seed counted (flushed before it read the
            # ledger), however recently recorded: sent again, they change nothing. Replaced in place, as a retry under
            # way removes by position the ones it sent.
            for i, (counter, epoch, estimate, actual, hold, recorded) in enumerate(self.unsettled):
                if counter == scope.counter and recorded is not None:
                    self.unsettled[i] = (counter, epoch, estimate, actual, hold, 0)

    def _ledger_spent(self, scope: Scope) -> int:
        self.writer.flush()  # what this process recorded is in the database before it is summed
        return to_nano(self.keys.spent(scope.column, scope.value, scope.since))


def decimal_usd(nano: int) -> Decimal:
    return Decimal(nano) / Decimal(10**9)
