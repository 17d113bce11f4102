"""Exponential backoff with full jitter, honouring Retry-After, bounded by attempts and a deadline."""

from __future__ import annotations

import random
from typing import Annotated

from pydantic import ConfigDict, Field
from pydantic.dataclasses import dataclass

from tokenomy.errors import ProviderError


# The one definition: `tokenomy.yaml` validates a route's `retry:` into this class (errors name the key),
# and the client uses the same object, so config and code cannot drift apart.
@dataclass(frozen=True, config=ConfigDict(extra="forbid"))
class RetryPolicy:
    """How hard to try one model before giving up (or handing over to the fallback chain)."""

    max_attempts: Annotated[int, Field(ge=1)] = 4
    base_delay_s: Annotated[float, Field(ge=0)] = 0.2
    max_delay_s: Annotated[float, Field(ge=0)] = 8.0
    deadline_s: Annotated[float, Field(gt=0)] = 60.0

    def delay(self, attempt: int, error: ProviderError, rng: random.Random | None = None) -> float:
        """Seconds to wait after failed `attempt` (1-based): full jitter, at least Retry-After."""
        ceiling = min(self.max_delay_s, self.base_delay_s * (2 ** (attempt - 1)))
        wait = (rng or random).uniform(0, ceiling)
        if error.retry_after is not None:
            # The server knows best: wait at least what it asked, even beyond the backoff cap
            # (the deadline still bounds the whole call).
            wait = max(wait, error.retry_after)
        return wait

    def should_retry(self, attempt: int, error: ProviderError, elapsed_s: float, next_delay_s: float) -> bool:
        """Retry throttled/server/timeout errors while attempts and the deadline allow."""
        return error.retryable and attempt < self.max_attempts and elapsed_s + next_delay_s < self.deadline_s


NO_RETRY = RetryPolicy(max_attempts=1)
