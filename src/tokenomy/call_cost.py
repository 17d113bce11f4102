"""What a call cost, for whoever settles a reservation against it, however the call ended — including an attempt its
caller was cancelled from while the provider call ran on in a worker thread.

A thread cannot be stopped: the SDK-based providers (Anthropic, Bedrock, Gemini, and OpenAI outside the gateway) run
`chat` in one, so a cancelled caller's provider still answers, and bills. The client leaves such an attempt running
and records it when its thread ends (`Tokenomy._leave_running`); `CallCost` tells the caller (the gateway's budget)
the call's final cost only then, and `Running` lets a shutdown wait for those threads before the ledger closes.
"""

from __future__ import annotations

import asyncio
import contextlib
import threading
from collections.abc import Awaitable, Callable
from decimal import Decimal

# Seconds Tokenomy.close() (and the gateway's shutdown) waits for attempts left running in worker threads before it
# closes the ledger writer; one that ends later is still written (the writer writes through once closed).
RUNNING_WAIT_S = 30.0
_ZERO = Decimal(0)  # a call's totals start here (a Decimal is immutable: `+=` makes a new one)
# Why a guard refuses a retry whose cost its budget cannot take.
NO_ROOM = "the budget has no room for another attempt"


class CallCost:
    """The running total of one call's recorded attempts, and when it is final.

    `spent` grows as attempts are recorded (answers, and the estimates of failed or abandoned ones). An attempt left
    running after its caller was cancelled holds the total open; `when_final(callback)` calls back with the total
    once no attempt is left running — at once if none is, else from the worker thread that recorded the last one.

    `guard`, when set, is asked before an async call tries again after attempts that were billed without an answer (a
    read timeout, an answer cut off): a reservation made for one attempt's worst case does not cover the retry, so the
    guard is given what those failures cost beyond what it already covered and answers None if it may be spent (the
    gateway reserves it on the key's budget), else why not (e.g. `NO_ROOM`); then the call ends with its last error,
    which says why, rather than overspend.

    `caller_left`, when set, says whether the caller is gone (the gateway's client closed its connection): asked
    before a retry or fallback, and after a wait before an attempt, so that no attempt is sent, and billed, for nobody.
    `caller_leaves`, when set, returns once the caller is gone: a wait before a retry (`wait`) ends then, rather than
    holding the gateway's call slot and the key's reservation for nobody until its end.
    """

    def __init__(
        self,
        guard: Callable[[Decimal], Awaitable[str | None]] | None = None,
        caller_left: Callable[[], Awaitable[bool]] | None = None,
        caller_leaves: Callable[[], Awaitable[None]] | None = None,
    ) -> None:
        self._lock = threading.Lock()
        self._spent = _ZERO
        self._unanswered = _ZERO  # what attempts billed without an answer cost: their retry pays again
        self._covered = _ZERO  # ... of which the guard has reserved so far
        self._running = 0
        self._callbacks: list[Callable[[Decimal], None]] = []
        self.guard = guard
        self.caller_left = caller_left
        self.caller_leaves = caller_leaves

    @property
    def spent(self) -> Decimal:
        return self._spent

    @property
    def final(self) -> bool:
        return self._running == 0

    def add(self, usd: Decimal, unanswered: bool = False) -> Decimal:
        """Count a recorded attempt's cost (`unanswered`: billed without an answer); the call's total so far."""
        with self._lock:
            self._spent += usd
            if unanswered:
                self._unanswered += usd
            return self._spent

    async def retry_refused(self) -> str | None:
        """Before another attempt: None if the guard covers what the call's unanswered attempts cost so far, else why
        it does not (for the call's last error: `ProviderError.not_retried_for_budget`)."""
        more = self._unanswered - self._covered
        if self.guard is None or more <= 0:
            return None
        refused = await self.guard(more)
        if refused is None:
            self._covered += more
        return refused

    async def caller_gone(self) -> bool:
        """Whether the call's caller has left, so another attempt would be answered, and billed, for nobody."""
        return self.caller_left is not None and await self.caller_left()

    async def wait(self, seconds: float) -> None:
        """Sleep `seconds` (a Retry-After, a backoff) before another attempt, or less if the caller leaves meanwhile
        (`caller_gone`, asked after the wait, then ends the call)."""
        if self.caller_leaves is None:
            await asyncio.sleep(seconds)
            return
        with contextlib.suppress(TimeoutError):
            async with asyncio.timeout(seconds):  # no task, unlike wait_for
                await self.caller_leaves()

    def forget_caller(self) -> None:
        """Drop the caller's checks once the call is done: the request they hold is freed when the handler returns,
        not by the cyclic GC."""
        self.caller_left = self.caller_leaves = None

    def leave_running(self) -> None:
        with self._lock:
            self._running += 1

    def ended(self) -> None:
        """An attempt left running was recorded: call back if it was the last."""
        with self._lock:
            self._running -= 1
            ready, self._callbacks = (self._callbacks, []) if self._running == 0 else ([], self._callbacks)
            spent = self._spent
        for callback in ready:
            callback(spent)

    def when_final(self, callback: Callable[[Decimal], None]) -> None:
        with self._lock:
            if self._running:
                self._callbacks.append(callback)
                return
            spent = self._spent
        callback(spent)


class Running:
    """A client's attempts left running in worker threads, counted until each is recorded."""

    def __init__(self) -> None:
        self._done = threading.Condition()
        self._count = 0

    def __len__(self) -> int:
        return self._count

    def add(self) -> None:
        with self._done:
            self._count += 1

    def remove(self) -> None:
        with self._done:
            self._count -= 1
            self._done.notify_all()

    def wait(self, timeout: float = RUNNING_WAIT_S) -> bool:
        """Block until every attempt left running is recorded (True), or `timeout` seconds pass (False)."""
        with self._done:
            return self._done.wait_for(lambda: self._count == 0, timeout)
