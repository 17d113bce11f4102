"""Which attempt comes next: retries on one model, then the fallback chain, within one deadline.

`AttemptPlan` only decides (model, attempt number, wait); the caller sleeps (`time.sleep` or
`asyncio.sleep`) and makes the call, so the same plan serves sync, async and streaming paths.
"""

from __future__ import annotations

import random
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass

from tokenomy.errors import ProviderError
from tokenomy.resilience.retry import RetryPolicy


@dataclass(frozen=True)
class Step:
    """One planned attempt: `target` index in the chain, overall `attempt` number, wait before it."""

    target: int
    attempt: int
    per_target: int
    delay_s: float


class AttemptPlan:
    """Walks a chain of targets (models/regions): up to `max_attempts` tries each, one shared deadline.

    Client errors end the plan at once: the request itself is wrong, so neither a retry nor another
    model would help. Except a model's refusal found before any call (an image to a text-only model, a field its
    API has no place for: `ProviderError.unsent`): nothing was sent, so the next target, which may take it, is tried
    at once; and a prompt longer than the model's context
    window (`ProviderError.context_window`), which the next target, a model with a larger one, may hold: it is tried
    at once too, never the same model again; so is a model whose account's quota is spent (`ProviderError.quota_spent`),
    which no retry brings back and another provider's account may serve. Retryable errors are retried with
    full-jitter backoff (at least Retry-After) while attempts and the deadline allow; then the next target takes
    over immediately.
    """

    def __init__(
        self,
        chain: Sequence[str],
        retry: RetryPolicy,
        rng: random.Random | None = None,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        if not chain:
            raise ValueError("an attempt plan needs at least one model")
        self.chain = tuple(chain)
        self.retry = retry
        self._rng = rng or random.Random()
        self._clock = clock
        self._started = clock()
        self._step: Step | None = None
        self._handed_at = self._started  # when the current step was handed out (its wait, then its attempt, follow)

    @property
    def elapsed_s(self) -> float:
        return self._clock() - self._started

    def first(self) -> Step:
        """The first attempt: the primary target, no wait."""
        self._step = Step(target=0, attempt=1, per_target=1, delay_s=0.0)
        self._handed_at = self._clock()
        return self._step

    def _last_attempt_s(self, step: Step) -> float:
        """How long the attempt that just ended took: since its step was handed out, less the wait before it."""
        return max(0.0, self._clock() - self._handed_at - step.delay_s)

    def after(self, error: ProviderError) -> Step | None:
        """The attempt to make after `error`, or None when the call has failed for good."""
        current = self._step
        if current is None:
            raise RuntimeError("call first() before after()")
        if error.unsent or error.context_window or error.quota_spent:  # the next model may take what this one cannot
            following = current.target + 1
            more = following < len(self.chain) and self.elapsed_s < self.retry.deadline_s
            self._step = Step(following, current.attempt + 1, 1, 0.0) if more else None
            self._handed_at = self._clock()
            return self._step
        if not error.retryable or self.elapsed_s >= self.retry.deadline_s:
            self._step = None
            return None
        delay = self.retry.delay(current.per_target, error, self._rng)
        # With a fallback left, a retry is made only if its wait and an attempt as long as the last one end before
        # the deadline: a retry whose answer came after it ended the plan there, and the fallback never had a turn.
        fallback_left = current.target + 1 < len(self.chain)
        room = self._last_attempt_s(current) if fallback_left else 0.0
        if self.retry.should_retry(current.per_target, error, self.elapsed_s + room, delay):
            self._step = Step(current.target, current.attempt + 1, current.per_target + 1, delay)
        elif fallback_left:
            # Retries on this target are spent (or its Retry-After overruns the deadline): hand over now.
            self._step = Step(current.target + 1, current.attempt + 1, 1, 0.0)
        else:
            self._step = None
        self._handed_at = self._clock()
        return self._step
