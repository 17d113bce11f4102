"""Explicit context caches Tokenomy manages (Gemini API or Vertex AI), and their storage cost in the ledger.

Gemini bills an explicit cache for every hour it is kept (the catalog's `cache_storage_hourly`, USD per
1M tokens per hour, prorated), on top of the cached-input price of each read, which the calls themselves
record, and the tokens that create it at the model's standard input price (as Vertex AI's and the Gemini API's
pricing pages say): creating a cache writes one ledger row at once, mode `on_demand`, `input_tokens` the cache's
tokens, tags `operation=cache_create` and `cache` (a request the provider billed, so reports count it as a call).
Each cache created, or deleted, through `ContextCaches` is kept in the ledger database's
`context_caches` table (name, model, tokens, created, expires). When it ends, one ledger row records its
storage:

- deleted through `delete()`: from its creation to the deletion (or to its expiry, if that came first);
- expired: from its creation to its expiry, when `settle()` runs (`tokenomy caches settle`, and every
  `create`/`delete` through this class settles what has expired). A cache whose TTL was extended elsewhere
  is asked for its new expiry first, so it is not closed early.

The row: mode `cache_storage` (so spend reports count it and show it as its own kind of spend, never as
input tokens), cost = tokens x hours x hourly price (rounded to the ledger's 12 decimal places), the token
columns 0 (storage is not tokens processed; the count and the hours are in the tags `cached_tokens` and
`storage_hours`), `ts` the end of the storage, and an event id derived from the cache name, so a cache is
recorded once however often it is settled. A cache that is still alive has no row yet: it is recorded
when it is deleted or expires.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from decimal import ROUND_HALF_UP, Decimal
from typing import Any

from tokenomy.chat_response import Usage
from tokenomy.errors import ProviderError, UsageError
from tokenomy.ledger.events import STORAGE_MODE, UsageEvent, utcnow
from tokenomy.ledger.store import LedgerStore
from tokenomy.pricing.catalog import PriceCatalog, default_catalog
from tokenomy.pricing.cost import compute_cost

MICROS_PER_HOUR = Decimal(3_600_000_000)
MILLION = Decimal(1_000_000)
CENT_FRACTION = Decimal("1e-12")  # the ledger keeps 12 decimal places (DECIMAL(20,12))
DDL = """CREATE TABLE IF NOT EXISTS context_caches (
  name TEXT PRIMARY KEY, provider TEXT NOT NULL, model TEXT NOT NULL, region TEXT, tokens BIGINT NOT NULL,
  created_at TIMESTAMPTZ NOT NULL, expires_at TIMESTAMPTZ NOT NULL, settled_at TIMESTAMPTZ, event_id TEXT)"""


CREATE_OPERATION = "cache_create"  # the `operation` tag of a cache's creation row


def creation_event_id(name: str) -> str:
    """One ledger event id per cache name for its creation."""
    return hashlib.sha256(f"cache_create\x00{name}".encode()).hexdigest()[:32]


def storage_event_id(name: str) -> str:
    """One ledger event id per cache name: recording a cache's storage again is a no-op."""
    return hashlib.sha256(f"cache_storage\x00{name}".encode()).hexdigest()[:32]


def storage_cost(tokens: int, hourly: Decimal, start: datetime, end: datetime) -> tuple[Decimal, Decimal]:
    """(cost, hours) of keeping `tokens` from `start` to `end` at `hourly` USD per 1M tokens per hour."""
    micros = max(0, (end - start) // timedelta(microseconds=1))
    hours = Decimal(micros) / MICROS_PER_HOUR
    cost = (Decimal(tokens) * hourly * Decimal(micros) / (MICROS_PER_HOUR * MILLION)).quantize(
        CENT_FRACTION, ROUND_HALF_UP
    )
    return cost, hours


def _utc(value: datetime) -> datetime:
    return value.replace(tzinfo=UTC) if value.tzinfo is None else value.astimezone(UTC)


def require_gemini_model(model: str, region: str | None = None, catalog: PriceCatalog | None = None) -> Any:
    """The catalog entry of `model`, refusing a model that is not Gemini's: explicit context caches exist on
    Gemini and Vertex AI only (asked first, so the answer is not "no Gemini API key" or a missing storage price)."""
    entry = (catalog or default_catalog()).lookup(model, region)
    if entry.provider != "google":
        raise UsageError(
            f"--model {model} (provider {entry.provider}): context caches are Gemini/Vertex AI only; "
            "give a Gemini model (e.g. gemini-2.5-flash)"
        )
    return entry


def storage_price(model: str, region: str | None = None, catalog: PriceCatalog | None = None) -> Decimal:
    """The catalog's storage price (USD per 1M tokens per hour) of a Gemini model's caches, or a UsageError: a
    cache Tokenomy could not price is never made."""
    entry = require_gemini_model(model, region, catalog)
    if entry.cache_storage_hourly is None:
        raise UsageError(
            f"model {entry.model!r} has no published cache storage price, so Tokenomy could not record what "
            "a cache costs to keep; add cache_storage_hourly with a price file (TOKENOMY_PRICES=FILE)"
        )
    return entry.cache_storage_hourly


@dataclass
class TrackedCache:
    name: str
    provider: str
    model: str
    region: str | None
    tokens: int
    created_at: datetime
    expires_at: datetime
    settled_at: datetime | None = None
    event_id: str | None = None

    @classmethod
    def from_row(cls, row: dict[str, Any]) -> TrackedCache:
        values = dict(row)
        for key in ("created_at", "expires_at", "settled_at"):
            if values.get(key) is not None:
                values[key] = _utc(values[key])
        values["tokens"] = int(values["tokens"])
        return cls(**values)


def _not_found(exc: Exception) -> bool:
    """The SDK's error for a cache that is gone (404; Gemini answers 403 for a name it does not know)."""
    return getattr(exc, "code", None) in (403, 404)


class ContextCaches:
    """Create, extend, delete and settle context caches through one `google.genai.Client`."""

    def __init__(
        self,
        client: Any,
        store: LedgerStore,
        vertex: bool = False,
        region: str | None = None,
        catalog: PriceCatalog | None = None,
    ) -> None:
        self.client = client
        self.store = store
        self.provider = "gcp.vertex_ai" if vertex else "gcp.gemini"  # as GeminiProvider records calls
        self.region = region or "global"
        self.catalog = catalog or default_catalog()
        self.p = store.placeholder
        store.execute(DDL)

    # -- the provider ---------------------------------------------------------------------------------
    @staticmethod
    def _error(what: str, exc: Exception) -> ProviderError:
        from tokenomy.providers.gemini_faults import map_gemini_error

        error = map_gemini_error(exc)
        return ProviderError(f"context cache {what} failed: {error}", error.kind, status=error.status)

    def _call(self, what: str, fn, **kwargs: Any) -> Any:
        try:
            return fn(**kwargs)
        except Exception as exc:
            raise self._error(what, exc) from None

    def _hourly(self, model: str) -> Decimal:
        return storage_price(model, self.region, self.catalog)

    def create(
        self,
        model: str,
        contents: Any = None,
        system_instruction: str | None = None,
        ttl_seconds: int = 3600,
        display_name: str | None = None,
        tools: Any = None,
    ) -> TrackedCache:
        """Create a cache and keep it for settling; refuses a model whose storage Tokenomy cannot price."""
        self._hourly(model)
        if ttl_seconds <= 0:
            raise UsageError(f"ttl {ttl_seconds}s: a cache lives for 1 second or more")
        self.settle()
        config: dict[str, Any] = {"ttl": f"{int(ttl_seconds)}s"}
        for key, value in (
            ("contents", contents),
            ("system_instruction", system_instruction),
            ("display_name", display_name),
            ("tools", tools),
        ):
            if value is not None:
                config[key] = value
        cache = self._call("create", self.client.caches.create, model=model, config=config)
        tracked = self._track(cache, model)
        self._record_creation(tracked)
        return tracked

    def _track(self, cache: Any, model: str | None = None) -> TrackedCache:
        tokens = int(cache.usage_metadata.total_token_count or 0) if cache.usage_metadata else 0
        tracked = TrackedCache(
            name=str(cache.name),
            provider=self.provider,
            model=(model or str(cache.model or "")).rsplit("/", 1)[-1],
            region=self.region,
            tokens=tokens,
            created_at=_utc(cache.create_time or utcnow()),
            expires_at=_utc(cache.expire_time or utcnow()),
        )
        self.store.execute(
            "INSERT INTO context_caches (name, provider, model, region, tokens, created_at, expires_at) "
            f"VALUES ({', '.join([self.p] * 7)}) ON CONFLICT (name) DO NOTHING",
            [tracked.name, tracked.provider, tracked.model, tracked.region, tokens, tracked.created_at,
             tracked.expires_at],
        )  # fmt: skip
        return self.get(tracked.name) or tracked

    def update_ttl(self, name: str, ttl_seconds: int) -> TrackedCache:
        """Extend (or shorten) a cache's life; its storage is then recorded up to the new expiry."""
        cache = self._call("update", self.client.caches.update, name=name, config={"ttl": f"{int(ttl_seconds)}s"})
        tracked = self.get(name) or self._track(cache)
        self._set_expiry(name, _utc(cache.expire_time))
        return self.get(name) or tracked

    def delete(self, name: str) -> UsageEvent | None:
        """Delete a cache and record its storage (a cache Tokenomy did not create is read first, so it is
        recorded too); None when it was recorded already."""
        tracked = self.get(name)
        if tracked is None:
            tracked = self._track(self._call("get", self.client.caches.get, name=name))
        elif tracked.settled_at is None and utcnow() >= tracked.expires_at:
            # Past the expiry kept here, and not settled: it may have been extended elsewhere, and be kept until now.
            tracked = self._extended(tracked)
        try:
            self.client.caches.delete(name=name)
        except Exception as exc:
            if not _not_found(exc):  # a cache gone already (expired) still owes its storage: go on
                raise self._error("delete", exc) from None
        event = self._record(tracked, min(utcnow(), tracked.expires_at))
        self.settle()
        return event

    def settle(self, now: datetime | None = None) -> list[UsageEvent]:
        """Record every tracked cache of this client's provider whose expiry has passed (after asking the
        provider whether it was extended); returns the rows written."""
        now = now or utcnow()
        rows = self.store.query(
            "SELECT * FROM context_caches WHERE settled_at IS NULL AND provider = "
            f"{self.p} AND expires_at <= {self.p} ORDER BY expires_at",
            [self.provider, now],
        )
        events = []
        for tracked in map(TrackedCache.from_row, rows):
            try:
                live = self.client.caches.get(name=tracked.name)
            except Exception as exc:
                if not _not_found(exc):
                    raise self._error("get", exc) from None
                live = None
            if live is not None and live.expire_time is not None and _utc(live.expire_time) > now:
                self._set_expiry(tracked.name, _utc(live.expire_time))  # extended elsewhere: not over yet
                continue
            event = self._record(tracked, tracked.expires_at)
            if event is not None:
                events.append(event)
        return events

    def _extended(self, tracked: TrackedCache) -> TrackedCache:
        """`tracked` with the expiry the provider now gives it, when that is later (extended elsewhere); as it was
        when the provider no longer has it (it expired when it was kept to)."""
        try:
            live = self.client.caches.get(name=tracked.name)
        except Exception as exc:
            if not _not_found(exc):
                raise self._error("get", exc) from None
            return tracked
        if live.expire_time is None or _utc(live.expire_time) <= tracked.expires_at:
            return tracked
        self._set_expiry(tracked.name, _utc(live.expire_time))
        return self.get(tracked.name) or tracked

    # -- the ledger -----------------------------------------------------------------------------------
    def _record_creation(self, tracked: TrackedCache) -> UsageEvent:
        """The creation's input tokens at the model's standard input price (one request's prompt), which Google
        bills on top of the storage."""
        cost = compute_cost(
            Usage(input_tokens=tracked.tokens), tracked.model, tracked.region, catalog=self.catalog, one_call=True
        )
        event = UsageEvent(
            ts=tracked.created_at,
            provider=tracked.provider,
            model=tracked.model,
            region=tracked.region,
            input_tokens=tracked.tokens,
            tags={"cache": tracked.name, "operation": CREATE_OPERATION},
            request_id=tracked.name,
            event_id=creation_event_id(tracked.name),
        ).apply_cost(cost)
        self.store.write([event])  # idempotent: the event id is the cache's
        return event

    def _record(self, tracked: TrackedCache, end: datetime) -> UsageEvent | None:
        if tracked.settled_at is not None:
            return None
        entry = self.catalog.lookup(tracked.model, tracked.region)
        cost, hours = storage_cost(tracked.tokens, self._hourly(tracked.model), tracked.created_at, end)
        event = UsageEvent(
            ts=end,
            provider=tracked.provider,
            model=tracked.model,
            region=tracked.region,
            mode=STORAGE_MODE,
            tags={"cache": tracked.name, "cached_tokens": str(tracked.tokens), "storage_hours": f"{hours:.6f}"},
            cost_usd=cost,
            request_id=tracked.name,
            priced_by=entry.priced_by,
            event_id=storage_event_id(tracked.name),
        )
        self.store.write([event])  # idempotent: the event id is the cache's
        self.store.execute(
            f"UPDATE context_caches SET settled_at = {self.p}, event_id = {self.p} WHERE name = {self.p}",
            [utcnow(), event.event_id, tracked.name],
        )
        return event

    def _set_expiry(self, name: str, expires: datetime) -> None:
        self.store.execute(f"UPDATE context_caches SET expires_at = {self.p} WHERE name = {self.p}", [expires, name])

    def get(self, name: str) -> TrackedCache | None:
        rows = self.store.query(f"SELECT * FROM context_caches WHERE name = {self.p}", [name])
        return TrackedCache.from_row(rows[0]) if rows else None

    def tracked(self) -> list[TrackedCache]:
        return [TrackedCache.from_row(r) for r in self.store.query("SELECT * FROM context_caches ORDER BY created_at")]
