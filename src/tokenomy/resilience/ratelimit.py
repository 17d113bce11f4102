"""A client-side token bucket for requests and tokens per minute, shared by threads and coroutines."""

from __future__ import annotations

import asyncio
import threading
import time


class RateLimiter:
    """Keeps a process under `rpm` requests and `tpm` tokens per minute (either may be None).

    Both buckets start full (a minute's allowance) and refill continuously. `acquire` reserves one
    request (or the several upstream calls one request makes) and an *estimate* of tokens; `settle` corrects the
    token bucket once the real count is known.
    """

    def __init__(self, rpm: float | None = None, tpm: float | None = None, clock=time.monotonic) -> None:
        self.rpm, self.tpm = rpm, tpm
        self._clock = clock
        self._requests = float(rpm or 0)
        self._tokens = float(tpm or 0)
        self._updated = clock()
        self._lock = threading.Lock()

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
            if self.rpm:
                self._requests -= requests
            if self.tpm:
                self._tokens -= tokens
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

    async def acquire_async(self, tokens: int = 0, timeout: float | None = None, requests: int = 1) -> bool:
        """Await until the request fits (True) or `timeout` passes (False), without blocking the loop."""
        deadline = None if timeout is None else self._clock() + timeout
        while True:
            wait = self.try_acquire(tokens, requests)
            if wait == 0:
                return True
            if deadline is not None and self._clock() + wait > deadline:
                return False
            await asyncio.sleep(min(wait, 1.0))

    def release(self, tokens: int = 0) -> None:
        """Give back what `acquire` took for a request that was never sent (a model refused it before any call)."""
        with self._lock:
            if self.rpm:
                self._requests = min(self.rpm, self._requests + 1)
            if self.tpm:
                self._tokens = min(self.tpm, self._tokens + tokens)

    def settle(self, estimated: int, actual: int) -> None:
        """Correct the token bucket by the difference between the estimate and the real count."""
        if not self.tpm:
            return
        with self._lock:
            self._tokens = min(self.tpm, self._tokens + estimated - actual)
