"""The one call path: request → provider → cost → ledger. The gateway, batch and bench all use it."""

from __future__ import annotations

import time
import uuid
from dataclasses import replace
from typing import AsyncIterator, Iterator

from tokenomy.errors import ProviderError, TokenomyError
from tokenomy.ledger.events import UsageEvent, event_from_response, prompt_fingerprint, utcnow
from tokenomy.ledger.store import LedgerStore
from tokenomy.ledger.writer import LedgerWriter
from tokenomy.messages import ChatRequest, ChatResponse, StreamChunk
from tokenomy.pricing.catalog import PriceCatalog, default_catalog
from tokenomy.pricing.cost import compute_cost
from tokenomy.providers.base import Provider
from tokenomy.providers.registry import ModelSpec, get_provider, resolve_model


class Tokenomy:
    """Calls models and records every call. Use as a context manager so the ledger is flushed."""

    def __init__(self, ledger: LedgerStore | LedgerWriter | str | None = None,
                 models: dict[str, ModelSpec] | None = None, catalog: PriceCatalog | None = None,
                 store_prompts: bool = False, record: bool = True) -> None:
        self.catalog = catalog or default_catalog()
        self.models = models or {}
        self.store_prompts = store_prompts
        if not record:
            self.writer = None
        elif isinstance(ledger, LedgerWriter):
            self.writer = ledger
        else:
            self.writer = LedgerWriter(ledger)

    # -- plumbing -------------------------------------------------------------------------------
    def spec_for(self, model: str) -> ModelSpec:
        return resolve_model(model, self.models)

    def provider_for(self, spec: ModelSpec) -> Provider:
        return get_provider(spec)

    def _prepare(self, request: ChatRequest) -> tuple[ModelSpec, ChatRequest]:
        spec = self.spec_for(request.model)
        return spec, replace(request, model=spec.model, region=request.region or spec.region)

    def _finish(self, spec: ModelSpec, request: ChatRequest, response: ChatResponse, mode: str,
                request_id: str) -> ChatResponse:
        pricing_model = spec.price_as or response.model
        cost = compute_cost(response.usage, pricing_model, response.region if response.region not in
                            ("global", "local") else None, mode, self.catalog)
        response.cost_usd = cost.total_usd
        event = event_from_response(request, response, cost, mode, self.store_prompts, request_id)
        self._record(event)
        return response

    def _record(self, event: UsageEvent) -> None:
        if self.writer is not None:
            self.writer.record(event)

    def _record_failure(self, spec: ModelSpec, request: ChatRequest, exc: ProviderError, started: float,
                        request_id: str, attempt: int = 1) -> None:
        meta = request.meta
        self._record(UsageEvent(
            ts=utcnow(), provider=self.provider_for(spec).name, model=spec.model, region=request.region,
            task=meta.task, tags=dict(meta.tags), tenant=meta.tenant, key_id=meta.key_id, route=meta.route,
            tier=meta.tier, latency_ms=(time.perf_counter() - started) * 1000, outcome=exc.kind,
            error_type=type(exc.__cause__ or exc).__name__, attempt=attempt, request_id=request_id,
            prompt_hash=prompt_fingerprint(request)))

    # -- public API -----------------------------------------------------------------------------
    def chat(self, request: ChatRequest, mode: str = "on_demand") -> ChatResponse:
        """Send one request and record it (failures are recorded with their outcome, then raised)."""
        spec, call = self._prepare(request)
        request_id = uuid.uuid4().hex
        started = time.perf_counter()
        try:
            response = self.provider_for(spec).chat(call)
        except ProviderError as exc:
            self._record_failure(spec, call, exc, started, request_id)
            raise
        return self._finish(spec, call, response, mode, request_id)

    def stream(self, request: ChatRequest, mode: str = "on_demand") -> Iterator[StreamChunk]:
        """Stream deltas; the final chunk's response is priced and recorded."""
        spec, call = self._prepare(request)
        request_id = uuid.uuid4().hex
        started = time.perf_counter()
        try:
            for chunk in self.provider_for(spec).stream(call):
                if chunk.response is not None:
                    self._finish(spec, call, chunk.response, mode, request_id)
                yield chunk
        except ProviderError as exc:
            self._record_failure(spec, call, exc, started, request_id)
            raise

    async def achat(self, request: ChatRequest, mode: str = "on_demand") -> ChatResponse:
        spec, call = self._prepare(request)
        request_id = uuid.uuid4().hex
        started = time.perf_counter()
        try:
            response = await self.provider_for(spec).achat(call)
        except ProviderError as exc:
            self._record_failure(spec, call, exc, started, request_id)
            raise
        return self._finish(spec, call, response, mode, request_id)

    async def astream(self, request: ChatRequest, mode: str = "on_demand") -> AsyncIterator[StreamChunk]:
        spec, call = self._prepare(request)
        request_id = uuid.uuid4().hex
        started = time.perf_counter()
        try:
            async for chunk in self.provider_for(spec).astream(call):
                if chunk.response is not None:
                    self._finish(spec, call, chunk.response, mode, request_id)
                yield chunk
        except ProviderError as exc:
            self._record_failure(spec, call, exc, started, request_id)
            raise

    def flush(self) -> None:
        if self.writer is not None:
            self.writer.flush()

    def close(self) -> None:
        if self.writer is not None:
            self.writer.close()

    def __enter__(self) -> "Tokenomy":
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


__all__ = ["Tokenomy", "TokenomyError"]
