"""The cost engine: the one place where a usage record becomes money (a call at a service tier other than standard
through `service_tier_cost`, which it hands the call to)."""

from __future__ import annotations

import logging
from dataclasses import MISSING, fields, replace
from datetime import UTC, date, datetime
from decimal import Decimal
from typing import Any

from tokenomy.chat_response import Usage
from tokenomy.errors import TokenomyError, UsageError, cost_fix, price_file
from tokenomy.pricing import rates
from tokenomy.pricing.catalog import PriceCatalog, default_catalog
from tokenomy.pricing.cost_breakdown import CostBreakdown
from tokenomy.pricing.entry import SERVICE_TIERS, PriceEntry
from tokenomy.pricing.freshness import warn_if_old
from tokenomy.pricing.rates import MILLION
from tokenomy.pricing.service_tier_cost import tier_cost

log = logging.getLogger(__name__)
MODES = ("on_demand", "batch", "provisioned")
CACHE_TTLS = ("5m", "1h")
SERVICE_TIER_CHOICES = ("standard", *SERVICE_TIERS)
_INTS = {int}
_TOKEN_FIELDS = (
    "input_tokens",
    "output_tokens",
    "cache_read_tokens",
    "cache_write_tokens",
    "cache_write_1h_tokens",
    "audio_input_tokens",
    "audio_cache_read_tokens",
    "audio_output_tokens",
)


# The defaults CostBreakdown's constructor sets, for _breakdown.
_COST_DEFAULTS = {f.name: f.default for f in fields(CostBreakdown) if f.default is not MISSING}


def _breakdown(**values: Any) -> CostBreakdown:
    """`CostBreakdown(**values)` without its __init__: a frozen dataclass sets each of its 14 fields through
    object.__setattr__ (~2 us, a third of pricing a gateway's answer). The same object: each field given, the
    others at their defaults."""
    cost = object.__new__(CostBreakdown)
    cost.__dict__.update(_COST_DEFAULTS, **values)
    return cost


def unpriced_cost(model: str, region: str | None, mode: str) -> CostBreakdown:
    """$0, marked priced_by='unpriced': a call that happened but that the catalog cannot price."""
    zero = Decimal(0)
    return CostBreakdown(model, region or "global", mode, zero, zero, zero, zero, "unpriced", "none", "")


def answered_cost(
    usage: Usage,
    model: str,
    region: str | None,
    mode: str,
    catalog: PriceCatalog | None,
    what: str = "call",
    service_tier: str = "standard",
    at: datetime | date | None = None,
) -> CostBreakdown:
    """The cost of a call the provider answered (and bills), as one call (`compute_cost`, at the prices of `at`, the
    call's time); one the catalog cannot price is $0 marked unpriced (`unpriced_cost`) with a warning naming `what`
    ("call", "embeddings call"), rather than an error that would lose its ledger row."""
    try:
        return compute_cost(usage, model, region, mode, catalog, service_tier=service_tier, one_call=True, at=at)
    except TokenomyError as exc:
        log.warning("%s to %s recorded at $0 (priced_by=unpriced): %s", what, model, exc)
        return unpriced_cost(model, region, mode)


def billable_usage(
    usage: Usage, model: str, region: str | None, catalog: PriceCatalog | None = None, kv_cache: bool = False
) -> Usage:
    """The usage a call is priced and recorded at: cache tokens count as plain input for a model the catalog has no
    cache prices for (compute_cost refuses them there, yet the provider processed, and bills, those tokens; its
    input price is the catalog's best figure). `kv_cache`: the cache counts are the local model's own KV cache, priced
    as `model` (`price_as`, as `make demo`'s bench prices it as Claude Haiku 4.5), so they are billed as `model` would
    bill them (`cacheable_usage`: no prefix under its minimum is cached); a real provider reports what it billed. A
    model the catalog cannot find is left to compute_cost to name."""
    if not (usage.cache_read_tokens or usage.cache_write_tokens):
        return usage
    try:
        entry = (catalog or default_catalog()).lookup(model, region)
    except TokenomyError:
        return usage
    if entry.has_cache:
        return cacheable_usage(usage, entry) if kv_cache else usage
    audio = usage.audio_input_tokens + usage.audio_cache_read_tokens
    return Usage(
        usage.total_input_tokens,
        usage.output_tokens,
        audio_input_tokens=audio,
        audio_output_tokens=usage.audio_output_tokens,
    )


def cacheable_usage(usage: Usage, entry: PriceEntry) -> Usage:
    """`usage` another model reported (a stand-in's KV cache, the model a call is re-priced or routed away from) as
    `entry`'s model would bill it: that model caches no prefix shorter than its `cache_min_tokens`. Reads and writes
    of a prefix under it are plain input; reads under it before writes that reach it are part of the one longer
    prefix it writes (plain input if it has no cache-write price)."""
    minimum = entry.cache_min_tokens or 0
    read, write = usage.cache_read_tokens, usage.cache_write_tokens
    if not (read or write) or read >= minimum or (not read and write >= minimum):
        return usage
    audio = usage.audio_input_tokens + usage.audio_cache_read_tokens
    if read + write >= minimum and entry.cache_write is not None and not usage.audio_cache_read_tokens:
        return replace(usage, cache_read_tokens=0, cache_write_tokens=read + write)
    if read + write >= minimum:  # the writes still reach it; the reads before them are sent as input
        return replace(
            usage,
            input_tokens=usage.input_tokens + read,
            cache_read_tokens=0,
            audio_input_tokens=audio,
            audio_cache_read_tokens=0,
        )
    return replace(
        usage,
        input_tokens=usage.total_input_tokens,
        cache_read_tokens=0,
        cache_write_tokens=0,
        cache_write_1h_tokens=0,
        audio_input_tokens=audio,
        audio_cache_read_tokens=0,
    )


def check_tokens(**counts: Any) -> None:
    """Reject negative or non-integer token counts, naming the offending field and value."""
    for name, value in counts.items():
        if isinstance(value, bool) or not isinstance(value, int):
            if isinstance(value, float) and value.is_integer():
                continue
            raise UsageError(f"{name}={value!r} is not a whole number of tokens")
        if value < 0:
            raise UsageError(f"{name}={value} is negative; token counts must be >= 0")


def compute_cost(
    usage: Usage,
    model: str,
    region: str | None = None,
    mode: str = "on_demand",
    catalog: PriceCatalog | None = None,
    cache_ttl: str = "5m",
    service_tier: str = "standard",
    one_call: bool = False,
    warn_old: bool = True,
    prompt_tokens: int | None = None,
    at: datetime | date | None = None,
) -> CostBreakdown:
    """Price `usage` of `model` in `region` under `mode` (on_demand, batch or provisioned); cache writes
    at the 5-minute or the 1-hour (`cache_ttl="1h"`) write price, except the part `usage` says was written for an
    hour (`cache_write_1h_tokens`, a call's own split), always at the 1-hour price; on demand at the standard,
    priority or flex `service_tier` (the latter two only where the provider publishes their prices).

    `one_call`: `usage` is one call's tokens, so a prompt over the model's long-context threshold is priced at its
    long-context prices. Usage summed over many calls (a batch file's estimate, a day's bill) says nothing about
    any one prompt's size and is priced at the standard rates. `prompt_tokens`: `usage` sums calls whose prompts
    are all on the same side of the model's long-context threshold as a prompt of this many tokens (a review groups
    calls so): priced as `one_call` prices each of them, all at the long-context prices if this is over it.

    `warn_old=False`: the caller shows the price's date itself (`as_of` of the breakdown), as a review does for
    the models it only compares, so no warning is logged for data past 180 days.

    `at`: when the call was made (UTC; None: now). A price the provider changes on a date (a service tier's
    `changes`) is the one in effect on that day, so a call recorded or imported later keeps the price it was billed."""
    counts = (
        usage.input_tokens,
        usage.output_tokens,
        usage.cache_read_tokens,
        usage.cache_write_tokens,
        usage.cache_write_1h_tokens,
        usage.audio_input_tokens,
        usage.audio_cache_read_tokens,
        usage.audio_output_tokens,
    )
    if set(map(type, counts)) != _INTS or min(counts) < 0:  # else check_tokens would pass them
        check_tokens(**dict(zip(_TOKEN_FIELDS, counts, strict=True)))
    if usage.cache_write_1h_tokens > usage.cache_write_tokens:
        raise UsageError(
            f"cache_write_1h_tokens={usage.cache_write_1h_tokens} is more than cache_write_tokens="
            f"{usage.cache_write_tokens}; the 1-hour writes are a part of the cache writes"
        )
    if usage.audio_input_tokens > usage.input_tokens or usage.audio_cache_read_tokens > usage.cache_read_tokens:
        raise UsageError(
            f"audio_input_tokens={usage.audio_input_tokens} / audio_cache_read_tokens={usage.audio_cache_read_tokens} "
            f"are more than input_tokens={usage.input_tokens} / cache_read_tokens={usage.cache_read_tokens}; "
            "the audio tokens are a part of them"
        )
    if usage.audio_output_tokens > usage.output_tokens:
        raise UsageError(
            f"audio_output_tokens={usage.audio_output_tokens} is more than output_tokens={usage.output_tokens}; "
            "the audio output tokens are a part of them"
        )
    if mode not in MODES:
        raise UsageError(f"mode={mode!r} is not one of {', '.join(MODES)}")
    if cache_ttl not in CACHE_TTLS:
        raise UsageError(f"cache_ttl={cache_ttl!r} is not one of {', '.join(CACHE_TTLS)}")
    if service_tier not in SERVICE_TIER_CHOICES:
        raise UsageError(f"service_tier={service_tier!r} is not one of {', '.join(SERVICE_TIER_CHOICES)}")
    if service_tier != "standard" and mode != "on_demand":
        raise UsageError(
            f"service_tier={service_tier!r} applies to on-demand calls only; use mode on_demand "
            "or service tier standard"
        )
    entry = (catalog or default_catalog()).lookup(model, region)
    if warn_old:
        warn_if_old(entry)
    if prompt_tokens is None and one_call:
        prompt_tokens = usage.total_input_tokens
    long = rates.long_context(entry, prompt_tokens, mode) if prompt_tokens is not None else None
    if (
        usage.audio_input_tokens or usage.audio_cache_read_tokens or usage.audio_output_tokens
    ) and mode != "provisioned":
        rates.require_audio_prices(entry, usage, service_tier, long)
    if service_tier != "standard":
        return tier_cost(usage, entry, service_tier, cache_ttl, _utc_day(at), prompt_tokens, long)
    if (entry.input is None or entry.output is None) and mode != "provisioned":
        missing = [name for name in ("input", "output") if getattr(entry, name) is None]
        # A missing price is not $0: an entry without one (e.g. a price file's) would record every call as free.
        raise UsageError(
            f"model {entry.model!r} in {entry.region} has no {' or '.join(missing)} price "
            f"({entry.priced_by}, {entry.source}); add it to the region's block with {price_file()}"
        )
    write_field = "cache_write_1h" if cache_ttl == "1h" else "cache_write"
    if cache_ttl == "1h" and entry.cache_write_1h is None and mode != "provisioned":
        raise UsageError(
            f"model {entry.model!r} in {entry.region} has no published 1-hour cache-write price; "
            + cost_fix("price cache writes with --cache-ttl 5m", "price cache writes with cache_ttl='5m'")
            + f" or add the price with {price_file()}"
        )
    if usage.cache_write_1h_tokens and entry.cache_write_1h is None and mode != "provisioned":
        raise UsageError(
            f"model {entry.model!r} in {entry.region} has no published 1-hour cache-write price but usage reports "
            f"{usage.cache_write_1h_tokens} 1-hour cache-write tokens; add cache_write_1h with {price_file()}"
        )
    tokens_in, tokens_out = Decimal(int(usage.input_tokens)), Decimal(int(usage.output_tokens))
    tokens_cr, tokens_1h = Decimal(int(usage.cache_read_tokens)), Decimal(int(usage.cache_write_1h_tokens))
    tokens_cw = Decimal(int(usage.cache_write_tokens)) - tokens_1h  # written at the `cache_ttl` price
    note = None
    if (tokens_cr or tokens_cw or tokens_1h) and not entry.has_cache and mode != "provisioned":
        raise UsageError(
            f"model {entry.model!r} in {entry.region} has no prompt-cache prices but usage "
            f"reports cache tokens (read={usage.cache_read_tokens}, write={usage.cache_write_tokens}); "
            "count them as input tokens, or price a model that offers prompt caching"
        )
    if long is not None:
        # The whole call at the long-context prices (batch: with the model's batch discount on top).
        rate_in, rate_out = long.input, long.output
        rate_cr, rate_cw = rates.long_cache_rates(entry, long, usage, write_field)
        rate_1h = rates.long_cache_rates(entry, long, usage, "cache_write_1h")[1] if tokens_1h else Decimal(0)
        if mode == "batch":
            rate_in, rate_out, rate_cr, rate_cw, rate_1h = rates.long_batch_rates(
                entry, long, (rate_in, rate_out, rate_cr, rate_cw, rate_1h), write_field
            )
        note = f"long-context prices: {prompt_tokens:,} prompt tokens are over {long.above_tokens:,}"
    elif mode == "on_demand":
        rate_in, rate_out = rates.rate(entry, "input"), rates.rate(entry, "output")
        rate_cr, rate_cw = rates.rate(entry, "cache_read"), rates.rate(entry, write_field, "input")
        rate_1h = rates.rate(entry, "cache_write_1h")
    elif mode == "batch":
        rates.require_batch(entry)
        assert entry.batch_input is not None and entry.batch_output is not None  # has_batch says both are set
        rate_in, rate_out = entry.batch_input, entry.batch_output
        # A cached input token's batch price where the provider publishes one (OpenAI's GPT-4o/4.1/o-series and
        # Gemini 2.5 bill it at no further discount); otherwise the batch discount on input applies in proportion.
        ratio = (entry.batch_input / entry.input) if entry.input else Decimal(0)
        rate_cr = rates.rate(entry, "cache_read") * rates.batch_cache_read_ratio(entry, ratio)
        rate_cw = rates.rate(entry, write_field, "input") * ratio
        rate_1h = rates.rate(entry, "cache_write_1h") * ratio
    else:
        # Provisioned throughput is paid per model unit per hour; tokens add nothing at the margin.
        rate_in = rate_out = rate_cr = rate_cw = rate_1h = Decimal(0)
        note = "provisioned throughput is billed per model unit-hour, not per token; see `tokenomy plan`"
    assert rate_in is not None and rate_out is not None
    input_usd, cache_read_usd = tokens_in * rate_in / MILLION, tokens_cr * rate_cr / MILLION
    if usage.audio_input_tokens or usage.audio_cache_read_tokens:
        audio_in, audio_cr = Decimal(int(usage.audio_input_tokens)), Decimal(int(usage.audio_cache_read_tokens))
        rate_audio, rate_audio_cr = rates.audio_rates(entry, mode, long, rate_in, rate_cr)
        input_usd = ((tokens_in - audio_in) * rate_in + audio_in * rate_audio) / MILLION
        cache_read_usd = ((tokens_cr - audio_cr) * rate_cr + audio_cr * rate_audio_cr) / MILLION
    output_usd = tokens_out * rate_out / MILLION
    if usage.audio_output_tokens:
        audio_out = Decimal(int(usage.audio_output_tokens))
        rate_audio_out = rates.audio_output_rate(entry, mode, long, rate_out)
        output_usd = ((tokens_out - audio_out) * rate_out + audio_out * rate_audio_out) / MILLION
    return _breakdown(
        model=entry.model,
        region=entry.region,
        mode=mode,
        input_usd=input_usd,
        output_usd=output_usd,
        cache_read_usd=cache_read_usd,
        cache_write_usd=(tokens_cw * rate_cw + tokens_1h * rate_1h) / MILLION,
        priced_by=entry.priced_by,
        source=long.source if long is not None else entry.source,
        as_of=long.as_of if long is not None else entry.as_of,
        note=note,
        cache_ttl=cache_ttl,
    )


def _utc_day(at: datetime | date | None) -> date:
    """The UTC day of `at` (a naive datetime is UTC, as in the ledger), or today's."""
    if at is None:
        return datetime.now(UTC).date()
    if isinstance(at, datetime):
        return (at.astimezone(UTC) if at.tzinfo is not None else at).date()
    return at


def cache_storage_cost(
    model: str,
    tokens: int,
    hours: Decimal | float | int,
    region: str | None = None,
    catalog: PriceCatalog | None = None,
) -> Decimal:
    """What keeping `tokens` in an explicit context cache for `hours` costs (Gemini bills storage per hour,
    on top of the cached-input price of each read). Refuses a model with no published storage price."""
    check_tokens(tokens=tokens)
    duration = Decimal(str(hours))
    if duration < 0:
        raise UsageError(f"hours={hours} is negative; a cache is kept for zero or more hours")
    entry = (catalog or default_catalog()).lookup(model, region)
    if entry.cache_storage_hourly is None:
        raise UsageError(
            f"model {entry.model!r} in {entry.region} has no published cache storage price; "
            f"add cache_storage_hourly with {price_file()}"
        )
    return Decimal(int(tokens)) * entry.cache_storage_hourly * duration / MILLION
