"""Azure OpenAI provisioned deployments (PTUs) as a provisioned mode for `plan breakeven`.

A provisioned deployment is bought in provisioned throughput units (PTUs) per hour. Azure publishes,
per model, the deployment minimum and increment and the *input* tokens per minute one PTU serves;
it publishes no figure for mixed input/output traffic (output tokens use more capacity), so the
published input figure is used as a stated assumption (`tpm_per_unit_assumed`), replaced by
--tpm-per-unit from Azure's capacity calculator. The PTU hourly price depends on the deployment type
(global, data zone, regional) and on reservations, and the catalog holds no verified figure for it:
it is always given with --hourly-usd.
"""

from __future__ import annotations

from dataclasses import replace
from decimal import Decimal

from tokenomy.errors import ConfigError
from tokenomy.planning.breakeven import UnitEconomics, unit_economics
from tokenomy.pricing.catalog import PriceEntry

SOURCE = (
    "learn.microsoft.com, Azure OpenAI provisioned throughput onboarding, model table "
    "(MicrosoftDocs/azure-ai-docs, as of 2026-03-20)"
)
# Input tokens per minute per PTU, as published (global, data zone and regional deployments alike).
INPUT_TPM_PER_PTU = {
    "gpt-5": 4750,
    "gpt-5-mini": 23750,
    "gpt-4.1": 3000,
    "gpt-4.1-mini": 14900,
    "gpt-4.1-nano": 59400,
    "o3": 3000,
    "o4-mini": 5400,
    "gpt-4o": 2500,
    "gpt-4o-mini": 37000,
    "o3-mini": 2500,
    "o1": 230,
}
MIN_PTUS, PTU_STEP = 15, 5  # global and data zone provisioned deployments of every model in the table


def ptu_economics(
    entry: PriceEntry,
    ptus: int,
    share: Decimal,
    tpm_per_unit: int | None,
    hourly_usd: Decimal | None,
    input_price: Decimal | None = None,
    output_price: Decimal | None = None,
) -> UnitEconomics:
    """Break-even inputs for `ptus` PTUs of `entry`'s model: the hourly price from the caller, the capacity
    from the caller or (assumed) Azure's published input figure, on-demand prices from the catalog."""
    if hourly_usd is None:
        raise ConfigError(
            "Azure PTUs: pass --hourly-usd, the price of one PTU per hour for your deployment type (global, data "
            "zone or regional) or reservation, from Azure's pricing page; the catalog holds no verified PTU price"
        )
    if ptus < MIN_PTUS or ptus % PTU_STEP:
        valid = max(MIN_PTUS, ptus + (-ptus) % PTU_STEP)
        raise ConfigError(
            f"--units {ptus}: an Azure global or data zone provisioned deployment has at least {MIN_PTUS} PTUs, "
            f"in steps of {PTU_STEP} (regional deployments need more); pass e.g. --units {valid}"
        )
    published = INPUT_TPM_PER_PTU.get(entry.model)
    if tpm_per_unit is None and published is None:
        raise ConfigError(
            f"Azure publishes no tokens-per-minute figure per PTU for {entry.model} in the table Tokenomy carries "
            f"({', '.join(INPUT_TPM_PER_PTU)}); pass --tpm-per-unit from Azure's capacity calculator"
        )
    econ = unit_economics(entry, "none", ptus, share, tpm_per_unit or published, hourly_usd, input_price, output_price)
    sources = dict(econ.sources)
    if tpm_per_unit is None:
        sources["tpm_per_unit"] = (
            f"ASSUMED {published:,} tokens/min per PTU: Azure's published INPUT tokens/min per PTU for "
            f"{entry.model} ({SOURCE}); output tokens use more capacity, so mixed traffic gets less; pass "
            "--tpm-per-unit from Azure's capacity calculator"
        )
    return replace(econ, term="ptu-hour", sources=sources)
