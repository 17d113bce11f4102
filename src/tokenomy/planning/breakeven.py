"""Provisioned-throughput break-even: when does a model unit cost less than on-demand tokens?"""

from __future__ import annotations

import math
from dataclasses import dataclass
from decimal import Decimal

from tokenomy.errors import ConfigError, usd_figure
from tokenomy.pricing.catalog import PriceEntry

HOURS_PER_MONTH = Decimal(730)
MILLION = Decimal(1_000_000)
# AWS does not publish a model unit's tokens per minute ("contact your account manager"). Without the
# user's quote, figures that need capacity use this stated assumption and say so in every answer; the
# break-even *volume* (tokens per minute) needs no capacity at all and is always exact.
ASSUMED_TPM_PER_UNIT = 100_000


@dataclass(frozen=True)
class UnitEconomics:
    """Everything break-even needs, each value traceable to the catalog or the command line."""

    model: str
    region: str
    term: str
    units: int
    tpm_per_unit: int
    hourly_per_unit: Decimal
    input_price: Decimal  # USD per 1M tokens, on demand
    output_price: Decimal
    input_share: Decimal  # fraction of tokens that are input
    sources: dict[str, str]
    # On-demand prices of prompt tokens read from / written to a cache (None: priced as input, e.g. when the
    # command line overrides the input price): spilled cache reads cost a tenth of an input token, not a whole one.
    cache_read_price: Decimal | None = None
    cache_write_price: Decimal | None = None

    @property
    def blended_price(self) -> Decimal:
        """On-demand USD per 1M tokens at this input/output mix."""
        return self.input_share * self.input_price + (1 - self.input_share) * self.output_price


def input_share_from(avg_input: float | None, avg_output: float | None, input_share: float | None) -> Decimal:
    """The workload's input fraction from --input-share or from average tokens per request (not both: the averages
    were ignored without a word, even when they disagreed with the share or were negative)."""
    if input_share is not None and (avg_input is not None or avg_output is not None):
        raise ConfigError("give --input-share or --avg-input and --avg-output, not both (they say the same thing)")
    if input_share is not None:
        if not 0 <= input_share <= 1:
            raise ConfigError(f"--input-share {input_share} must be between 0 and 1")
        return Decimal(str(input_share))
    if avg_input is None or avg_output is None:
        raise ConfigError("give the workload mix: --input-share X, or --avg-input T and --avg-output T")
    if not (0 <= avg_input < math.inf and 0 <= avg_output < math.inf) or avg_input + avg_output == 0:
        raise ConfigError("--avg-input and --avg-output must be finite, >= 0 and not both 0")
    return Decimal(str(avg_input)) / (Decimal(str(avg_input)) + Decimal(str(avg_output)))


def unit_capacity(entry: PriceEntry, tpm_per_unit: int | None = None) -> tuple[int, str]:
    """Tokens per minute one model unit serves and where that figure comes from: the command line, the catalog, or
    the stated assumption (needs no price: utilisation divides by capacity alone)."""
    if tpm_per_unit is not None:
        source = "command line"
    elif entry.provisioned_tpm_per_unit is not None:
        tpm_per_unit, source = entry.provisioned_tpm_per_unit, f"{entry.source} (as of {entry.as_of})"
    else:
        tpm_per_unit = ASSUMED_TPM_PER_UNIT
        source = (
            f"ASSUMED {ASSUMED_TPM_PER_UNIT:,} tokens/min: AWS does not publish a model "
            f"unit's throughput for {entry.model}; pass --tpm-per-unit from your quote"
        )
    if tpm_per_unit <= 0:
        raise ConfigError(f"--tpm-per-unit {tpm_per_unit} must be positive")
    return tpm_per_unit, source


def unit_economics(
    entry: PriceEntry,
    term: str,
    units: int,
    share: Decimal,
    tpm_per_unit: int | None = None,
    hourly_usd: Decimal | None = None,
    input_price: Decimal | None = None,
    output_price: Decimal | None = None,
) -> UnitEconomics:
    """Combine catalog values with command-line overrides, refusing to guess missing ones."""
    if units < 1:
        raise ConfigError(f"--units {units} must be at least 1")
    for option, value in (
        ("--hourly-usd", hourly_usd),
        ("--input-price", input_price),
        ("--output-price", output_price),
    ):
        if value is not None:
            usd_figure(option, value)
    sources = {}
    if hourly_usd is None:
        hourly_usd = entry.provisioned_hourly.get(term)
        if hourly_usd is None:
            terms = ", ".join(sorted(entry.provisioned_hourly)) or "none"
            raise ConfigError(
                f"{entry.model} ({entry.region}) has no published provisioned-throughput price for term "
                f"{term!r} in the catalog (terms with prices: {terms}); pass --hourly-usd"
            )
        sources["hourly_per_unit"] = entry.provisioned_source or f"{entry.source} (as of {entry.as_of})"
    else:
        sources["hourly_per_unit"] = "command line"
    tpm_per_unit, sources["tpm_per_unit"] = unit_capacity(entry, tpm_per_unit)
    sources["on_demand_prices"] = (
        "command line"
        if input_price is not None or output_price is not None
        else (f"{entry.source} (as of {entry.as_of})")
    )
    from_catalog = input_price is None and output_price is None
    input_price = input_price if input_price is not None else entry.input
    output_price = output_price if output_price is not None else entry.output
    if input_price is None or output_price is None:  # e.g. a provisioned-only entry: Decimal(None) was a traceback
        raise ConfigError(
            f"{entry.model}: the catalog has no on-demand token price to compare with; pass "
            "--input-price and --output-price (USD per 1M tokens)"
        )
    if not from_catalog:
        sources["cache_prices"] = (
            "none: with on-demand prices from the command line, cached prompt tokens are priced as input"
        )
    elif entry.cache_read is None:
        sources["cache_prices"] = f"none published for {entry.model}: cached prompt tokens are priced as input"
    else:
        sources["cache_prices"] = f"{entry.source} (as of {entry.as_of})"
    return UnitEconomics(
        model=entry.model,
        region=entry.region,
        term=term,
        units=units,
        tpm_per_unit=tpm_per_unit,
        hourly_per_unit=Decimal(hourly_usd),
        input_price=Decimal(input_price),
        output_price=Decimal(output_price),
        input_share=share,
        sources=sources,
        cache_read_price=entry.cache_read if from_catalog else None,
        cache_write_price=entry.cache_write if from_catalog else None,
    )


def breakeven(econ: UnitEconomics) -> dict:
    """On-demand cost of the units' full capacity vs their hourly price, and the utilisation where they cross."""
    tokens_per_hour = Decimal(econ.tpm_per_unit * econ.units * 60)
    on_demand_full = tokens_per_hour * econ.blended_price / MILLION
    provisioned = econ.hourly_per_unit * econ.units
    # Free on-demand tokens never break even: None (JSON null), since Infinity is not valid JSON.
    utilization = float(provisioned / on_demand_full) if on_demand_full else None
    per_token = econ.blended_price / MILLION
    # The sustained volume at which on-demand spend equals the units' price: needs no capacity figure.
    breakeven_tpm = float(provisioned / (60 * per_token)) if per_token else None
    if any(v is not None and not math.isfinite(v) for v in (utilization, breakeven_tpm)):
        # A float overflows past 1.8e308 (`--hourly-usd 1e308`): "inf" is not JSON, and no volume reaches it anyway.
        raise ConfigError(
            "the provisioned price is so many times the on-demand price that no volume breaks even (the break-even "
            "is past 1e308 tokens a minute); check the hourly price (--hourly-usd) and the on-demand prices"
        )
    return {
        "model": econ.model,
        "region": econ.region,
        "term": econ.term,
        "units": econ.units,
        "tpm_per_unit": econ.tpm_per_unit,
        "input_share": float(econ.input_share),
        "input_price_per_mtok": econ.input_price,
        "output_price_per_mtok": econ.output_price,
        "blended_price_per_mtok": econ.blended_price,
        "provisioned_hourly_usd": provisioned,
        "on_demand_hourly_usd_at_full_capacity": on_demand_full,
        "breakeven_utilization": utilization,
        "breakeven_tokens_per_minute": breakeven_tpm,
        "tpm_per_unit_assumed": econ.sources["tpm_per_unit"].startswith("ASSUMED"),
        "provisioned_monthly_usd": provisioned * HOURS_PER_MONTH,
        "on_demand_monthly_usd_at_full_capacity": on_demand_full * HOURS_PER_MONTH,
        "hours_per_month": int(HOURS_PER_MONTH),
        "sources": econ.sources,
        "formula": "breakeven_utilization = provisioned_hourly_usd / (tpm_per_unit * units * 60 * blended_price / 1e6)",
    }
