"""A client-side limit of requests and tokens per minute (a token bucket under a sliding window), shared by threads
and coroutines."""

from __future__ import annotations

import asyncio
import contextlib
import math
import threading
import time
from collections import deque
from collections.abc import Awaitable, Callable

WINDOW_S = 60.0


class _Window:
    """What was granted in the last `span` seconds, oldest first: no more than a cap may be in it at any time."""

    def __init__(self) -> None:
        self.grants: deque[list[float]] = deque()  # [time, amount]
        self.total = 0.0

    def expire(self, now: float, span: float) -> None:
        while self.grants and now - self.grants[0][0] >= span:
            self.total -= self.grants.popleft()[1]
        if not self.grants:
            self.total = 0.0  # no float drift left over

    def wait(self, now: float, span: float, need: float, cap: float) -> float:
        """Seconds until `need` more fits under `cap`: until enough of the oldest grants leave the window."""
        excess = self.total + need - cap
        if excess <= 0:
            return 0.0
        for when, amount in self.grants:
            excess -= amount
            if excess <= 0:
                return when + span - now
        return span  # not reached: need is at most cap

    def add(self, now: float, amount: float) -> None:
        if amount > 0:
            self.grants.append([now, amount])
            self.total += amount

    def give_back(self, amount: float) -> None:
        """Take `amount` off the oldest grants (a grant not sent, or an estimate above the real count). The oldest,
        not the newest: while the grant given back is in the window they leave it no later than it does, so the window
        never counts less than was really sent within it (a call settled after its grant left the window frees its
        unused estimate early: it is not known which grant was its own)."""
        while amount > 0 and self.grants:
            first = self.grants[0]
            taken = min(amount, first[1])
            first[1] -= taken
            self.total -= taken
            amount -= taken
            if first[1] <= 0:
                self.grants.popleft()


class RateLimiter:
    """Keeps a process under `rpm` requests and `tpm` tokens per minute (either may be None).

    Both buckets start full (a minute's allowance) and refill continuously. `acquire` reserves one
    request (or the several upstream calls one request makes) and an *estimate* of tokens; `settle` corrects the
    token bucket once the real count is known.

    A bucket alone lets a full bucket and a minute's refill through in the first minute, twice the rate; so what was
    granted is also counted over a sliding minute, and nothing is granted past `rpm` (`tpm`) in it. Below one request
    a minute the window is one request long (60 / rpm seconds); a fraction of a request is never granted (1.5 rpm
    lets one a minute through), so that processes sharing a rate by fractions stay within it together.
    """

    def __init__(self, rpm: float | None = None, tpm: float | None = None, clock=time.monotonic) -> None:
        self.rpm, self.tpm = rpm, tpm
        self._clock = clock
        self._requests = float(rpm or 0)
        self._tokens = float(tpm or 0)
        self._updated = clock()
        self._lock = threading.Lock()
        self._sent = _Window()  # requests granted in the last request window
        self._used = _Window()  # tokens granted in the last minute

    def _request_window(self) -> tuple[float, float]:
        """The request window's span (seconds) and how many requests it may hold."""
        assert self.rpm
        return WINDOW_S * max(1.0, 1 / self.rpm), float(max(1, math.floor(self.rpm)))

    def _refill(self) -> None:
        now = self._clock()
        elapsed = now - self._updated
        self._updated = now
        if self.rpm:
            self._requests = min(self.rpm, self._requests + elapsed * self.rpm / 60)
        if self.tpm:
            self._tokens = min(self.tpm, self._tokens + elapsed * self.tpm / 60)

    def _wait(self, tokens: int, requests: int) -> float:
        """Seconds until `requests` and `tokens` fit (0: now); the caller holds the lock."""
        self._refill()
        wait = 0.0
        # A request larger than a whole minute's allowance can never fit; let it through when full.
        calls = min(requests, self.rpm) if self.rpm else 0
        if self.rpm and self._requests < calls:
            wait = max(wait, (calls - self._requests) * 60 / self.rpm)
        need = min(tokens, self.tpm) if self.tpm else 0
        if self.tpm and self._tokens < need:
            wait = max(wait, (need - self._tokens) * 60 / self.tpm)
        now = self._clock()
        if self.rpm:
            span, cap = self._request_window()
            self._sent.expire(now, span)
            wait = max(wait, self._sent.wait(now, span, min(requests, cap), cap))
        if self.tpm:
            self._used.expire(now, WINDOW_S)
            wait = max(wait, self._used.wait(now, WINDOW_S, need, self.tpm))
        return wait

    def wait_s(self, tokens: int = 0, requests: int = 1) -> float:
        """Seconds until a request of this size would fit, taking nothing: what a refusal tells the caller to wait
        (its Retry-After)."""
        with self._lock:
            return self._wait(tokens, requests)

    def try_acquire(self, tokens: int = 0, requests: int = 1) -> float:
        """Take the allowance now and return 0, or return the seconds to wait before trying again."""
        with self._lock:
            wait = self._wait(tokens, requests)
            if wait > 0:
                return wait
            now = self._clock()
            if self.rpm:
                self._requests -= requests
                self._sent.add(now, requests)
            if self.tpm:
                self._tokens -= tokens
                self._used.add(now, tokens)
            return 0.0

    def acquire(self, tokens: int = 0, timeout: float | None = None, requests: int = 1) -> bool:
        """Block until the request fits (True) or `timeout` passes (False)."""
        deadline = None if timeout is None else self._clock() + timeout
        while True:
            wait = self.try_acquire(tokens, requests)
            if wait == 0:
                return True
            if deadline is not None and self._clock() + wait > deadline:
                return False
            time.sleep(min(wait, 1.0))

    async def acquire_async(
        self,
        tokens: int = 0,
        timeout: float | None = None,
        requests: int = 1,
        given_up: Callable[[], Awaitable[None]] | None = None,
    ) -> bool | None:
        """Await until the request fits (True) or `timeout` passes (False), without blocking the loop. A wait ends,
        taking nothing (None), when `given_up` returns (the gateway's caller closed its connection: nobody is left to
        send the request for); it is awaited only once there is a wait."""
        deadline = None if timeout is None else self._clock() + timeout
        while True:
            wait = self.try_acquire(tokens, requests)
            if wait == 0:
                return True
            if deadline is not None and self._clock() + wait > deadline:
                return False
            if given_up is None:
                await asyncio.sleep(min(wait, 1.0))
                continue
            with contextlib.suppress(TimeoutError):
                async with asyncio.timeout(min(wait, 1.0)):  # no task, unlike wait_for
                    await given_up()
                    return None

    def release(self, tokens: int = 0, requests: int = 1) -> None:
        """Give back what `acquire` took for a request that was never sent (a model refused it before any call): its
        `requests` (the several upstream calls of one request, as acquired) and `tokens`."""
        with self._lock:
            if self.rpm:
                self._requests = min(self.rpm, self._requests + requests)
                self._sent.give_back(requests)
            if self.tpm:
                self._tokens = min(self.tpm, self._tokens + tokens)
                self._used.give_back(tokens)

    def settle(self, estimated: int, actual: int) -> None:
        """Correct the token bucket by the difference between the estimate and the real count."""
        if not self.tpm:
            return
        with self._lock:
            self._tokens = min(self.tpm, self._tokens + estimated - actual)
            if actual > estimated:  # counted from now: later than it was sent, so the window only holds it longer
                self._used.add(self._clock(), actual - estimated)
            else:
                self._used.give_back(estimated - actual)
