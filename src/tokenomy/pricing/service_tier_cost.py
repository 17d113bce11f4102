"""The on-demand cost of a call at a published service tier (priority, flex, ultrafast), which `cost.compute_cost`
hands over to `tier_cost` when a call names a tier other than standard.

Its own module because a tier is priced by its own rules: its own published prices in effect on the call's day, its
own long-context threshold, refusals of whatever the tier publishes no price for (never a multiplier of the standard
price), and audio derived at the tier's ratio to the standard text price.
"""

from __future__ import annotations

from datetime import date
from decimal import Decimal

from tokenomy.chat_response import Usage
from tokenomy.errors import UsageError, cost_fix, price_file
from tokenomy.pricing import rates
from tokenomy.pricing.cost_breakdown import CostBreakdown
from tokenomy.pricing.entry import LongContextPrice, PriceEntry, TierPrice
from tokenomy.pricing.rates import MILLION


def tier_cost(
    usage: Usage,
    entry: PriceEntry,
    tier_name: str,
    cache_ttl: str,
    day: date,
    prompt_tokens: int | None,
    long: LongContextPrice | None,
) -> CostBreakdown:
    """On-demand cost at a published tier price (priority, flex, ultrafast, fast_mode), the one in effect on `day`; a
    prompt of `prompt_tokens` over the tier's long-context threshold at the tier's long-context prices (`long`: the
    standard tier's, which the prompt is over). Refuses what the tier's published prices do not cover (never a
    multiplier of the standard price: a 1-hour cache write where the tier publishes no 1-hour price), but for the
    audio of a model that bills it apart, which no tier price has: derived at the tier's own ratio to the standard text
    price (`rates.tier_audio_rates`), and the cost's source says so."""
    tier = entry.service_tiers.get(tier_name)
    where = f"model {entry.model!r} in {entry.region}"
    if tier is None:
        reason = entry.service_tier_note or "no published price for it in the catalog's sources"
        fix = cost_fix("Use --service-tier standard, or add", "Add")
        raise UsageError(
            f"{where} has no {tier_name} service-tier price: {reason}. {fix} the tier's published price with "
            f"{price_file()} (service_tiers: {{{tier_name}: {{input, output, source, as_of}}}})"
        )
    tier = tier.on(day)
    tier_long = tier.long_context
    over = tier_long is not None and prompt_tokens is not None and prompt_tokens > tier_long.above_tokens
    if long is not None and not over:
        raise UsageError(
            f"{where}: the {tier_name} tier publishes no price for prompts over {long.above_tokens:,} tokens; "
            f"price it with {cost_fix('--service-tier standard or ')}{price_file()}"
        )
    prices: TierPrice | LongContextPrice = tier_long if over and tier_long is not None else tier
    # 1-hour writes at the tier's own 1-hour price where published (Anthropic's fast mode), else refused; the rest of
    # the writes at the `cache_ttl` price, as the standard tier's are.
    written_1h = usage.cache_write_1h_tokens
    if prices.cache_write_1h is None and written_1h:
        raise UsageError(
            f"{where}: the {tier_name} tier publishes no 1-hour cache-write price but usage reports {written_1h} "
            f"1-hour cache-write tokens; add the tier's cache_write_1h with {price_file()}"
        )
    if prices.cache_write_1h is None and cache_ttl == "1h":
        raise UsageError(
            f"{where}: the {tier_name} tier publishes no 1-hour cache-write price; "
            + cost_fix("use --cache-ttl 5m", f"add the tier's cache_write_1h with {price_file()}")
        )
    write_rate = prices.cache_write_1h if cache_ttl == "1h" else prices.cache_write
    for tokens, rate, label in (
        (usage.cache_read_tokens, prices.cache_read, "cache-read"),
        (usage.cache_write_tokens - written_1h, write_rate, "cache-write"),
    ):
        if tokens and rate is None:
            raise UsageError(
                f"{where}: the {tier_name} tier publishes no {label} price but usage reports "
                f"{tokens} {label} tokens; count them as input tokens or price the standard tier"
            )
    million_tokens = {
        k: Decimal(int(v)) / MILLION
        for k, v in (
            ("in", usage.input_tokens),
            ("out", usage.output_tokens),
            ("cr", usage.cache_read_tokens),
            ("cw", usage.cache_write_tokens - written_1h),
            ("1h", written_1h),
        )
    }
    input_usd = million_tokens["in"] * prices.input
    cache_read_usd = million_tokens["cr"] * (prices.cache_read or Decimal(0))
    source = prices.source
    if entry.input_audio is not None and (usage.audio_input_tokens or usage.audio_cache_read_tokens):
        if not isinstance(prices, TierPrice):
            raise UsageError(
                f"{where}: the {tier_name} tier's long-context prices have no audio price to derive, and usage reports "
                f"{usage.audio_input_tokens + usage.audio_cache_read_tokens} audio tokens; price it with a price file"
            )
        audio, cached = rates.tier_audio_rates(entry, prices, tier_name)
        audio_in, audio_cr = Decimal(int(usage.audio_input_tokens)), Decimal(int(usage.audio_cache_read_tokens))
        input_usd += audio_in * (audio - prices.input) / MILLION
        cache_read_usd += audio_cr * (cached - (prices.cache_read or Decimal(0))) / MILLION
        source = (
            f"{prices.source}; audio input at ${audio.normalize():f} per 1M, derived: the standard audio price at the "
            f"{tier_name} tier's ratio to the standard text price (no {tier_name} audio price is published)"
        )
    return CostBreakdown(
        model=entry.model,
        region=entry.region,
        mode="on_demand",
        input_usd=input_usd,
        output_usd=million_tokens["out"] * prices.output,
        cache_read_usd=cache_read_usd,
        cache_write_usd=million_tokens["cw"] * (write_rate or Decimal(0))
        + million_tokens["1h"] * (prices.cache_write_1h or Decimal(0)),
        priced_by=entry.priced_by,
        source=source,
        as_of=prices.as_of,
        note=_tier_note(tier_name, tier, prompt_tokens if over else None, tier_long),
        cache_ttl=cache_ttl,
        service_tier=tier_name,
    )


def _tier_note(tier_name: str, tier: TierPrice, prompt_tokens: int | None, long: LongContextPrice | None) -> str | None:
    """What a tier's cost says beside its figures: the long-context prices it used, the day its price took effect."""
    notes = []
    if prompt_tokens is not None and long is not None:
        notes.append(f"long-context prices: {prompt_tokens:,} prompt tokens are over {long.above_tokens:,}")
    if tier.starts is not None:
        notes.append(f"the {tier_name} price in effect from {tier.starts}")
    return "; ".join(notes) or None
