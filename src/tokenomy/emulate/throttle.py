"""Injected throttling shared by the emulators: a seeded share of calls is refused, as a busy provider would."""

from __future__ import annotations

import random
import threading


class InjectedThrottle:
    """Counts calls and refuses `rate` of them at random (reproducible with `seed`)."""

    def __init__(self, rate: float = 0.0, seed: int | None = None) -> None:
        if not 0.0 <= rate <= 1.0:
            raise ValueError(f"throttle_rate={rate} must be between 0 and 1")
        self.rate = rate
        self._rng = random.Random(seed)
        self._lock = threading.Lock()
        self.calls = 0
        self.throttled = 0

    def hit(self) -> bool:
        """Count one call; True when this one is to be refused."""
        with self._lock:
            self.calls += 1
            if self.rate and self._rng.random() < self.rate:
                self.throttled += 1
                return True
            return False
