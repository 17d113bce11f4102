"""Billed line items gathered into ledger rows: one row per time bucket, provider, account, model, region and
mode, with tokens and billed cost split by usage type (input, output, cache read, cache write).

Usage and cost often arrive separately (OpenAI's Usage and Costs APIs, Anthropic's usage and cost reports) or
as one line per usage type (CUR, FOCUS, Google Cloud billing): each line adds its tokens and its cost to the
row it belongs to. A row no cost line reached (a usage export without its cost export) is priced from the
catalog and tagged `cost_from=catalog`. Every row is marked billed data (see tokenomy.analytics.billed).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime
from decimal import Decimal

from tokenomy.analytics.billed import BILLED, billed_tags
from tokenomy.analytics.imports.common import ImportResult, event_id
from tokenomy.errors import TokenomyError
from tokenomy.ledger.events import UsageEvent

TOKEN_KINDS = ("input_tokens", "output_tokens", "cache_read_tokens", "cache_write_tokens")


@dataclass
class BilledRow:
    tokens: dict[str, int] = field(default_factory=dict)
    costs: dict[str, Decimal] = field(default_factory=dict)
    other_cost: Decimal = Decimal(0)  # charges that are not tokens (cache storage, tools, fees)
    has_cost: bool = False
    tags: dict[str, str] = field(default_factory=dict)


@dataclass
class BilledRows:
    """Rows keyed by (start, provider, account, model, region, mode), in the order their first line came."""

    source: str
    granularity: str | None = None
    rows: dict[tuple, BilledRow] = field(default_factory=dict)

    def add(
        self,
        start: datetime,
        provider: str,
        model: str,
        *,
        kind: str | None,
        tokens: int = 0,
        cost: Decimal | None = None,
        region: str | None = None,
        mode: str = "on_demand",
        account: str | None = None,
        tags: dict[str, str] | None = None,
    ) -> None:
        """One line: `tokens` of usage type `kind` (a TOKEN_KINDS name, or None for a non-token charge) and
        its billed `cost` (None: this line carries no cost, e.g. a usage API row)."""
        row = self.rows.setdefault((start, provider, account or "", model, region or "", mode), BilledRow())
        if kind is not None:
            row.tokens[kind] = row.tokens.get(kind, 0) + tokens
        if cost is not None:
            row.has_cost = True
            if kind is None:
                row.other_cost += cost
            else:
                row.costs[kind] = row.costs.get(kind, Decimal(0)) + cost
        row.tags.update(tags or {})

    def events(self, result: ImportResult, id_prefix: str | None = None) -> list[UsageEvent]:
        out = []
        for (start, provider, account, model, region, mode), row in self.rows.items():
            parts = [start.isoformat(), region or None, model, mode] + ([provider, account] if account else [])
            event = UsageEvent(
                ts=start,
                provider=provider,
                model=model,
                region=region or None,
                mode=mode,
                tags=billed_tags(self.source, account, self.granularity, **row.tags),
                input_tokens=row.tokens.get("input_tokens", 0),
                output_tokens=row.tokens.get("output_tokens", 0),
                cache_read_tokens=row.tokens.get("cache_read_tokens", 0),
                cache_write_tokens=row.tokens.get("cache_write_tokens", 0),
                event_id=f"{id_prefix or self.source}-" + event_id(*parts),
            )
            if row.has_cost:
                for kind, cost in row.costs.items():
                    setattr(event, kind.replace("_tokens", "_cost_usd"), cost)
                event.cost_usd = sum(row.costs.values(), Decimal(0)) + row.other_cost
            else:
                _catalog_price(event, result)
            event.priced_by = BILLED
            out.append(event)
        result.events.extend(out)
        return out


def _catalog_price(event: UsageEvent, result: ImportResult) -> None:
    from tokenomy.pricing.cost import compute_cost

    try:
        event.apply_cost(compute_cost(event.usage, event.model, event.region, mode=event.mode))
        event.tags["cost_from"] = "catalog"
    except TokenomyError:
        result.unpriced_models.add(event.model)
        event.tags["cost_from"] = "none"
