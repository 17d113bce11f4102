"""Virtual keys and team budgets held in memory, so no request waits on the database.

The whole `gateway_keys` / `gateway_teams` tables are loaded at start and reloaded by a background
thread every `refresh_seconds` (gateway.key_cache_seconds): a revoked key, a changed key budget or a
changed team budget takes effect within that time. A key created after the last reload is looked up
once, off the event loop, the first time it is used; wrong keys are remembered (bounded) for the same
time so random keys cannot turn every request into a database query. When the database is down the
keys already loaded keep working; an unknown key is answered "cannot check" (the gateway's 503).
"""

from __future__ import annotations

import logging
import threading
import time
from decimal import Decimal

from tokenomy.gateway.keys import KeyStore, VirtualKey, hash_key

log = logging.getLogger(__name__)
MAX_UNKNOWN = 10_000  # remembered wrong keys: random secrets must not grow memory without bound


class KeysUnavailable(Exception):
    """The key is not in memory and the database cannot be asked."""


class KeyCache:
    def __init__(self, keys: KeyStore, refresh_seconds: float) -> None:
        self.keys = keys
        self.refresh_seconds = max(refresh_seconds, 0.5)  # 0 would spin the reload thread
        self._by_hash: dict[str, VirtualKey] = {}
        self._teams: dict[str, tuple[Decimal, str]] = {}
        self._unknown: dict[str, float] = {}
        self._stop = threading.Event()
        self.reload()  # at start the database is reachable (serve checked it): fail loudly otherwise
        self._thread = threading.Thread(target=self._run, name="tokenomy-keys", daemon=True)
        self._thread.start()

    def reload(self) -> None:
        by_hash, teams = self.keys.snapshot()
        self._by_hash, self._teams = by_hash, teams  # swapped whole: readers never see a half-loaded table
        self._unknown = {}

    def _run(self) -> None:
        failures = 0
        while not self._stop.wait(self.refresh_seconds if not failures else min(30.0, 2.0**failures)):
            try:
                self.reload()
                failures = 0
            except Exception as exc:  # database down: keep serving the keys we have; say so once per attempt
                failures += 1
                log.warning("reloading virtual keys failed (%s); keeping the %d keys loaded", exc, len(self._by_hash))

    def close(self) -> None:
        self._stop.set()

    def cached(self, secret: str) -> tuple[bool, VirtualKey | None]:
        """(known, key) from memory only: known=False means the database must be asked."""
        digest = hash_key(secret)
        key = self._by_hash.get(digest)
        if key is not None:
            return True, key
        checked = self._unknown.get(digest)
        if checked is not None and time.monotonic() - checked < self.refresh_seconds:
            return True, None
        return False, None

    def fetch(self, secret: str) -> VirtualKey | None:
        """Ask the database (blocking: call it from a worker thread) and remember the answer."""
        try:
            key = self.keys.lookup(secret)
        except Exception as exc:
            raise KeysUnavailable(
                str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
            ) from None
        digest = hash_key(secret)
        if key is None:
            if len(self._unknown) >= MAX_UNKNOWN:
                self._unknown = {}
            self._unknown[digest] = time.monotonic()
        else:
            self._by_hash = {**self._by_hash, digest: key}
        return key

    def team_budget(self, team: str) -> tuple[Decimal, str] | None:
        return self._teams.get(team)
