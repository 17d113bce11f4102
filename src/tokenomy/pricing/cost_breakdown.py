"""What a call cost: `CostBreakdown`, the money per token type that the cost engine (`cost.compute_cost`) and its
service-tier pricing (`service_tier_cost`) return, and the ledger and the recorder read.

Its own module so the pricing paths that build it, and the layers that only read it, need not import the engine.
"""

from __future__ import annotations

from dataclasses import dataclass
from decimal import Decimal
from typing import Any

from tokenomy.money import money_str


@dataclass(frozen=True)
class CostBreakdown:
    """Money per token type, in `currency` (always USD today)."""

    model: str
    region: str
    mode: str
    input_usd: Decimal
    output_usd: Decimal
    cache_read_usd: Decimal
    cache_write_usd: Decimal
    priced_by: str
    source: str
    as_of: str
    currency: str = "USD"
    note: str | None = None
    cache_ttl: str = "5m"
    service_tier: str = "standard"
    # Requests of tools the provider runs and bills per request (Anthropic's web search): part of the total, of no
    # token type (pricing/server_tools.py)
    tools_usd: Decimal = Decimal(0)

    @property
    def total_usd(self) -> Decimal:
        return self.input_usd + self.output_usd + self.cache_read_usd + self.cache_write_usd + self.tools_usd

    def to_json(self) -> dict[str, Any]:
        """Each amount exact (the ledger's "record" rule), so the parts add up to the total as written."""
        return {
            "model": self.model,
            "region": self.region,
            "mode": self.mode,
            "currency": self.currency,
            "input_usd": money_str(self.input_usd, "record"),
            "output_usd": money_str(self.output_usd, "record"),
            "cache_read_usd": money_str(self.cache_read_usd, "record"),
            "cache_write_usd": money_str(self.cache_write_usd, "record"),
            "tools_usd": money_str(self.tools_usd, "record"),
            "total_usd": money_str(self.total_usd, "record"),
            "priced_by": self.priced_by,
            "source": self.source,
            "as_of": self.as_of,
            "cache_ttl": self.cache_ttl,
            "service_tier": self.service_tier,
            "note": self.note,
        }
