"""Prices for the gateway: the catalog, plus a $0 'unpriced' entry for models it does not know.

A gateway in front of a self-hosted OpenAI-compatible model (the issue's minimal config) must
serve it even though no price exists; the ledger still records tokens, marked priced_by='unpriced'
so reports can tell, and a warning names the fix (`price_as` in the model's config).
"""

from __future__ import annotations

import logging
from decimal import Decimal
from typing import Any

from tokenomy.errors import TokenomyError, UnknownModelError
from tokenomy.pricing.catalog import PriceCatalog, PriceEntry, default_catalog

log = logging.getLogger(__name__)
ZERO = Decimal(0)
MEMO_SIZE = 4096


class GatewayCatalog:
    """Delegates to the price catalog; unknown models get a zero-price entry instead of an error."""

    def __init__(self, base: PriceCatalog | None = None) -> None:
        self.base = base or default_catalog()
        self._unpriced: dict[str, PriceEntry] = {}
        # The catalog does not change while the gateway runs: each (model, region) is resolved once (a
        # lookup resolves profiles, aliases and the library; three per request measured ~50 us each).
        self._found: dict[tuple[str, str | None], PriceEntry | TokenomyError] = {}
        self._known: dict[str, bool] = {}

    def lookup(self, model: str, region: str | None = None) -> PriceEntry:
        """The catalog's entry, or a $0 entry marked priced_by='unpriced'."""
        key = (model, region)
        found = self._found.get(key)
        if found is None:
            try:
                found = self._lookup(model, region)
            except TokenomyError as exc:  # e.g. no price in that region: the same answer every time
                found = exc
            if len(self._found) >= MEMO_SIZE:  # model names partly come from upstream answers: stay bounded
                self._found.clear()
            self._found[key] = found
        if isinstance(found, TokenomyError):
            raise found.with_traceback(None)  # the stored instance: no traceback piling up across raises
        return found

    def _lookup(self, model: str, region: str | None) -> PriceEntry:
        try:
            return self.base.lookup(model, region)
        except UnknownModelError:
            entry = self._unpriced.get(model)
            if entry is None:
                log.warning(
                    "model %r has no price; recording its usage at $0 (set `price_as` on the model "
                    "in the gateway config to price it like a catalog model)",
                    model,
                )
                entry = self._unpriced[model] = PriceEntry(
                    provider="unknown",
                    model=model,
                    region=region or "global",
                    family="unpriced",
                    source="none",
                    as_of="",
                    priced_by="unpriced",
                    input=ZERO,
                    output=ZERO,
                    cache_read=ZERO,
                    cache_write=ZERO,
                )
            return entry

    def knows(self, model: str) -> bool:
        """Whether the catalog prices `model`: a probe, so an unknown model is not the $0 stand-in and not warned about
        (e.g. the served id of a model priced with `price_as`, which is never charged under its own name)."""
        known = self._known.get(model)
        if known is None:
            if len(self._known) >= MEMO_SIZE:
                self._known.clear()
            known = self._known[model] = self.base.knows(model)
        return known

    def is_unpriced(self, entry: PriceEntry) -> bool:
        return entry.priced_by == "unpriced"

    def __getattr__(self, name: str) -> Any:
        return getattr(self.base, name)
