"""Gemini's cached contents (`cachedContents/<id>`), kept in the ledger database beside the gateway's keys and batch
jobs: every worker of `tokenomy serve --workers N` (and a restart) sees the same caches, as they share the ledger.

A cache belongs to its owner (a team's keys share their team's caches; a key without a team has its own; a gateway
without keys has one owner, ""), and nobody else can read, change or delete it. An expired cache is gone: looking it
up deletes it, and every create or list deletes all expired ones. Times are seconds since the epoch (UTC).
"""

from __future__ import annotations

import json
import threading
from dataclasses import dataclass
from typing import Any

from tokenomy.ledger.store import LedgerStore

DDL = """CREATE TABLE IF NOT EXISTS gemini_cached_contents (
  name TEXT PRIMARY KEY, owner TEXT NOT NULL, model TEXT NOT NULL, display_name TEXT, body TEXT NOT NULL,
  tokens BIGINT NOT NULL, create_time DOUBLE PRECISION NOT NULL, update_time DOUBLE PRECISION NOT NULL,
  expire_time DOUBLE PRECISION NOT NULL)"""
FIELDS = ("name", "owner", "model", "display_name", "body", "tokens", "create_time", "update_time", "expire_time")


@dataclass(frozen=True)
class CachedContent:
    """One cache: `body` holds what it prefixes a request with (contents, systemInstruction, tools, toolConfig, as
    the caller sent them); `model` the route or model name it was created for; `tokens` its size, estimated."""

    name: str
    owner: str
    model: str
    display_name: str | None
    body: dict[str, Any]
    tokens: int
    create_time: float
    update_time: float
    expire_time: float


def owner_of(key: Any) -> str:
    """Whose caches a caller sees: its key's team's, else its key's own (no keys: everyone's, one owner)."""
    if key is None:
        return ""
    return f"team:{key.team}" if key.team else f"key:{key.key_id}"


class CacheStore:
    # DuckDB takes one connection to a file at a time from this process's threads: one statement at a time here.
    _lock = threading.RLock()

    def __init__(self, store: LedgerStore) -> None:
        self.store = store
        self.p = store.placeholder
        with self._lock:
            store.execute(DDL)

    def add(self, cache: CachedContent, now: float) -> None:
        values = [getattr(cache, f) for f in FIELDS]
        values[FIELDS.index("body")] = json.dumps(cache.body, separators=(",", ":"))
        with self._lock:
            self.clean(now)
            marks = ", ".join([self.p] * len(FIELDS))
            self.store.execute(f"INSERT INTO gemini_cached_contents ({', '.join(FIELDS)}) VALUES ({marks})", values)

    def get(self, name: str, owner: str, now: float) -> CachedContent | None:
        """The owner's live cache of that name, or None (an expired one is deleted)."""
        with self._lock:
            rows = self.store.query(
                f"SELECT * FROM gemini_cached_contents WHERE name = {self.p} AND owner = {self.p}", (name, owner)
            )
            if rows and float(rows[0]["expire_time"]) <= now:
                self.store.execute(f"DELETE FROM gemini_cached_contents WHERE name = {self.p}", (name,))
                return None
        return _cache(rows[0]) if rows else None

    def page(self, owner: str, now: float, offset: int, size: int) -> tuple[list[CachedContent], bool]:
        """The owner's live caches from `offset`, oldest first, at most `size`, and whether more follow."""
        with self._lock:
            self.clean(now)
            rows = self.store.query(
                f"SELECT * FROM gemini_cached_contents WHERE owner = {self.p} ORDER BY create_time, name "
                f"LIMIT {int(size) + 1} OFFSET {int(offset)}",
                (owner,),
            )
        return [_cache(r) for r in rows[:size]], len(rows) > size

    def expire_at(self, name: str, owner: str, expire_time: float, now: float) -> CachedContent | None:
        """The owner's live cache with its new expiry, or None when there is none."""
        with self._lock:
            if self.get(name, owner, now) is None:
                return None
            self.store.execute(
                f"UPDATE gemini_cached_contents SET expire_time = {self.p}, update_time = {self.p} "
                f"WHERE name = {self.p}",
                (expire_time, now, name),
            )
            return self.get(name, owner, now)

    def delete(self, name: str, owner: str, now: float) -> CachedContent | None:
        """The owner's live cache, deleted; None when there was none."""
        with self._lock:
            cache = self.get(name, owner, now)
            if cache is not None:
                self.store.execute(f"DELETE FROM gemini_cached_contents WHERE name = {self.p}", (name,))
            return cache

    def clean(self, now: float) -> None:
        with self._lock:
            self.store.execute(f"DELETE FROM gemini_cached_contents WHERE expire_time <= {self.p}", (now,))


def _cache(row: dict[str, Any]) -> CachedContent:
    return CachedContent(
        row["name"],
        row["owner"],
        row["model"],
        row["display_name"],
        json.loads(row["body"]),
        int(row["tokens"]),
        float(row["create_time"]),
        float(row["update_time"]),
        float(row["expire_time"]),
    )
