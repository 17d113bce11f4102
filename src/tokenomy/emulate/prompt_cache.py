"""Prompt-cache accounting shared by the emulators: prefix hashes with a TTL, per model.

Semantics follow the providers' documentation:
- a cache point caches the whole prompt prefix up to it (tools, then system, then messages);
- a point only counts when its prefix is long enough: Bedrock needs the model's minimum per
  checkpoint ("the first checkpoint after 1,024 tokens, the second after 2,048"), Anthropic
  needs the minimum for the prefix as a whole; below it the call succeeds uncached;
- the longest live prefix is read; the part up to the last point beyond it is written;
- a hit refreshes the TTL; `inputTokens` / `input_tokens` exclude both read and written tokens.
"""

from __future__ import annotations

import hashlib
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass


@dataclass(frozen=True)
class Checkpoint:
    """A cache point: hash of the prefix text it closes, that prefix's token count, its TTL in seconds."""

    digest: str
    tokens: int
    ttl: int


@dataclass(frozen=True)
class CacheAccount:
    """How one request's prompt tokens split between fresh input, cache reads and cache writes."""

    input_tokens: int
    cache_read_tokens: int
    cache_write_tokens: int
    writes_by_ttl: tuple[tuple[int, int], ...] = ()  # (ttl seconds, tokens written with that TTL)


def prefix_digest(namespace: str, prefix: str) -> str:
    return hashlib.sha256(f"{namespace}\x00{prefix}".encode()).hexdigest()


class PromptCache:
    """Thread-safe map of prefix digest -> expiry (monotonic seconds)."""

    def __init__(self, clock: Callable[[], float] = time.monotonic, max_entries: int = 10_000) -> None:
        self._clock = clock
        self._expiry: dict[str, float] = {}
        self._lock = threading.Lock()
        self._max_entries = max_entries

    def effective(self, checkpoints: list[Checkpoint], min_tokens: int, per_checkpoint: bool) -> list[Checkpoint]:
        """The points that are long enough to be cached (others are silently ignored, as the providers do)."""
        kept: list[Checkpoint] = []
        floor = 0
        for point in sorted(checkpoints, key=lambda p: p.tokens):
            needed = (floor + min_tokens) if per_checkpoint else min_tokens
            if point.tokens >= needed and point.tokens > floor:
                kept.append(point)
                floor = point.tokens
        return kept

    def account(
        self, checkpoints: list[Checkpoint], total_tokens: int, min_tokens: int, per_checkpoint: bool = True
    ) -> CacheAccount:
        """Look up and store the request's prefixes; return its token split."""
        points = self.effective(checkpoints, min_tokens, per_checkpoint)
        if not points:
            return CacheAccount(total_tokens, 0, 0)
        now = self._clock()
        with self._lock:
            self._evict(now)
            hit = None
            for point in reversed(points):
                if self._expiry.get(point.digest, 0.0) > now:
                    hit = point
                    break
            read = hit.tokens if hit else 0
            for point in points:
                # Hits refresh their TTL; new prefixes beyond the hit are written with theirs.
                if point.tokens <= read:
                    if point.digest in self._expiry:
                        self._expiry[point.digest] = now + point.ttl
                else:
                    self._expiry[point.digest] = now + point.ttl
        by_ttl: dict[int, int] = {}
        floor = read
        for point in points:
            if point.tokens > floor:  # each written segment is kept for its own point's TTL
                by_ttl[point.ttl] = by_ttl.get(point.ttl, 0) + point.tokens - floor
                floor = point.tokens
        write = sum(by_ttl.values())
        read = min(read, total_tokens)
        write = min(write, total_tokens - read)
        return CacheAccount(total_tokens - read - write, read, write, tuple(sorted(by_ttl.items())))

    def _evict(self, now: float) -> None:
        if len(self._expiry) < self._max_entries:
            return
        for digest in [d for d, t in self._expiry.items() if t <= now]:
            del self._expiry[digest]
        while len(self._expiry) >= self._max_entries:  # still full of live entries: drop the oldest-expiring
            del self._expiry[min(self._expiry, key=self._expiry.__getitem__)]

    def clear(self) -> None:
        with self._lock:
            self._expiry.clear()
