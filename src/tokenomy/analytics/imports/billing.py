"""Billed line items gathered into ledger rows: one row per time bucket, provider, account, model, region and
mode, with tokens and billed cost split by usage type (input, output, cache read, cache write).

Usage and cost often arrive separately (OpenAI's Usage and Costs APIs, Anthropic's usage and cost reports) or
as one line per usage type (CUR, FOCUS, Google Cloud billing): each line adds its tokens and its cost to the
row it belongs to. A row no cost line reached (a usage export without its cost export) is priced from the
catalog at the prices of its day, and tagged `cost_from=catalog`. Every row is marked billed data (see
tokenomy.analytics.billed).

A line may name the on-demand service tier it was served at (flex, priority, ...: a usage report grouped by tier):
the tiers of one row are kept apart, each priced at its own tier, unless a line of that row names no tier (OpenAI's
cost line items do not): the bill cannot be split by tier, so the row stays whole and keeps the billed figures.
A tier's row has its bucket's id and the tier's name, so the bucket's bill, whole, finds every row it replaces.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime
from decimal import Decimal

from tokenomy.analytics.billed import BILLED, billed_tags
from tokenomy.analytics.imports.common import ImportResult, event_id
from tokenomy.errors import TokenomyError
from tokenomy.ledger.events import UsageEvent
from tokenomy.pricing.entry import SERVICE_TIERS

TOKEN_KINDS = ("input_tokens", "output_tokens", "cache_read_tokens", "cache_write_tokens")


@dataclass
class BilledRow:
    tokens: dict[str, int] = field(default_factory=dict)
    costs: dict[str, Decimal] = field(default_factory=dict)
    other_cost: Decimal = Decimal(0)  # charges that are not tokens (cache storage, tools, fees)
    has_cost: bool = False
    tags: dict[str, str] = field(default_factory=dict)

    def merge(self, other: BilledRow) -> None:
        for kind, tokens in other.tokens.items():
            self.tokens[kind] = self.tokens.get(kind, 0) + tokens
        for kind, cost in other.costs.items():
            self.costs[kind] = self.costs.get(kind, Decimal(0)) + cost
        self.other_cost += other.other_cost
        self.has_cost = self.has_cost or other.has_cost
        self.tags.update(other.tags)


@dataclass
class BilledRows:
    """Rows keyed by (start, provider, account, model, region, mode, service tier), in the order their first line
    came (the tier: as `add` was told, None where a line named none)."""

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
        service_tier: str | None = None,
    ) -> None:
        """One line: `tokens` of usage type `kind` (a TOKEN_KINDS name, or None for a non-token charge) and
        its billed `cost` (None: this line carries no cost, e.g. a usage API row); `service_tier` the on-demand tier
        it was served at, as `priced_tier` reads it (None: the line does not say)."""
        key = (start, provider, account or "", model, region or "", mode, service_tier)
        row = self.rows.setdefault(key, BilledRow())
        if kind is not None:
            row.tokens[kind] = row.tokens.get(kind, 0) + tokens
        if cost is not None:
            row.has_cost = True
            if kind is None:
                row.other_cost += cost
            else:
                row.costs[kind] = row.costs.get(kind, Decimal(0)) + cost
        row.tags.update(tags or {})

    def _by_tier(self) -> list[tuple[tuple, str, BilledRow]]:
        """(row key without its tier, the tier it is priced at, row): a row's tiers apart where every one of its lines
        named its tier, else whole (at the standard tier, or the one tier its lines named)."""
        groups: dict[tuple, dict[str | None, BilledRow]] = {}
        for full_key, row in self.rows.items():
            groups.setdefault(full_key[:-1], {})[full_key[-1]] = row
        out: list[tuple[tuple, str, BilledRow]] = []
        for key, tiers in groups.items():
            if None not in tiers or len(tiers) == 1:
                out += [(key, tier or "standard", row) for tier, row in tiers.items()]
                continue
            named = {tier for tier in tiers if tier is not None}
            whole = BilledRow()
            for row in tiers.values():
                whole.merge(row)
            if len(named) > 1:  # tokens of several tiers and one bill: no one tier says what the row was served at
                whole.tags.pop("service_tier", None)
            out.append((key, named.pop() if len(named) == 1 else "standard", whole))
        return out

    def events(self, result: ImportResult, id_prefix: str | None = None) -> list[UsageEvent]:
        out = []
        for (start, provider, account, model, region, mode), tier, row in self._by_tier():
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
                event_id=tier_row_id(f"{id_prefix or self.source}-" + event_id(*parts), tier),
            )
            if row.has_cost:
                for kind, cost in row.costs.items():
                    setattr(event, kind.replace("_tokens", "_cost_usd"), cost)
                event.cost_usd = sum(row.costs.values(), Decimal(0)) + row.other_cost
            else:
                _catalog_price(event, result, tier)
            event.priced_by = BILLED
            out.append(event)
        result.events.extend(out)
        return out


def tier_row_id(bucket: str, tier: str) -> str:
    """The id of a bucket's row at `tier`: the bucket's own id at the standard tier (the id it had before tiers),
    else that id and the tier, so a bill of the bucket, whole, finds the rows it takes the place of."""
    return bucket if tier == "standard" else f"{bucket}-{tier}"


def bucket_of(row_id: str) -> str:
    """The bucket id a row's id is of (`tier_row_id` undone; a hash never ends in a tier's name)."""
    head, _, tier = row_id.rpartition("-")
    return head if tier in SERVICE_TIERS else row_id


def _catalog_price(event: UsageEvent, result: ImportResult, tier: str) -> None:
    """The row's tokens at the catalog's prices of its day, at its service tier (on demand): a tier without a
    published price leaves it unpriced, never at the standard price."""
    from tokenomy.pricing.cost import compute_cost

    tier = tier if event.mode == "on_demand" else "standard"
    try:
        event.apply_cost(
            compute_cost(event.usage, event.model, event.region, mode=event.mode, service_tier=tier, at=event.ts)
        )
        event.tags["cost_from"] = "catalog"
    except TokenomyError:
        result.unpriced_models.add(event.model)
        event.tags["cost_from"] = "none"
