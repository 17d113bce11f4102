"""Which per-token rate applies to a call: an entry's rate for a field, its batch rates, and its long-context and
audio rates, each refused (UsageError) where the catalog has no figure rather than priced at another's. The cost engine
(`cost.compute_cost`) multiplies tokens by them."""

from __future__ import annotations

from decimal import Decimal

from tokenomy.chat_response import Usage
from tokenomy.errors import UsageError, cost_fix, price_file
from tokenomy.pricing.catalog import PriceEntry
from tokenomy.pricing.entry import LongContextPrice, TierPrice

MILLION = Decimal(1_000_000)  # catalog rates are USD per million tokens


def rate(entry: PriceEntry, field: str, fallback: str | None = None) -> Decimal:
    value = getattr(entry, field)
    if value is None and fallback:
        value = getattr(entry, fallback)
    return value if value is not None else Decimal(0)


def require_audio_prices(entry: PriceEntry, usage: Usage, service_tier: str, long: LongContextPrice | None) -> None:
    """Refuses audio tokens of a model that bills audio apart from text (its entry has an audio price) where the
    catalog has no audio price for them: a kind of audio token it has no price for, a prompt over the long-context
    threshold, audio output at a service tier (never the text price, which would under-price them: OpenAI's audio
    costs 8 to 16 times its text). Audio input at a service tier is derived (`tier_audio_rates`). A model with no
    audio price bills audio as text (Google's page prices Gemini 2.5 Pro's audio input as its text), so its audio is
    priced at the text prices everywhere."""
    if entry.input_audio is None and entry.output_audio is None:
        return
    where = f"model {entry.model!r} in {entry.region} bills audio apart from text"
    for tokens, field, kind in (
        (usage.audio_input_tokens, "input_audio", "audio input"),
        (usage.audio_cache_read_tokens, "cache_read_audio", "cached audio"),
        (usage.audio_output_tokens, "output_audio", "audio output"),
    ):
        if tokens and getattr(entry, field) is None:
            raise UsageError(
                f"{where} but has no {kind} price, and usage reports {tokens} {kind} tokens; add {field} with "
                f"{price_file()}"
            )
    what = f"prompts over {long.above_tokens:,} tokens" if long is not None else None
    if what is None and service_tier != "standard" and usage.audio_output_tokens:
        what = f"audio output at the {service_tier} tier"
    if what is not None:
        audio = usage.audio_input_tokens + usage.audio_cache_read_tokens + usage.audio_output_tokens
        raise UsageError(
            f"{where} and the catalog has no audio price for {what}, but usage reports {audio} audio tokens; price "
            f"it with {cost_fix('--service-tier standard or ' if service_tier != 'standard' else '')}{price_file()}"
        )


def tier_audio_rates(entry: PriceEntry, tier: TierPrice, tier_name: str) -> tuple[Decimal, Decimal]:
    """An audio input token's rate at a service tier, and a cached one's, for a model that bills audio apart from text
    (its entry has input_audio): its standard audio prices scaled by the tier's own ratio to the standard text prices,
    as a batch's audio is (`audio_rates`). Google publishes its tiers as a share of the standard prices (flex half,
    priority a premium) and no audio price per tier; the cost's source says the audio price is derived."""
    assert entry.input_audio is not None
    where = f"model {entry.model!r} in {entry.region}"
    if not entry.input:
        raise UsageError(f"{where} has no standard input price to derive the {tier_name} tier's audio price from")
    cached = Decimal(0)
    if entry.cache_read_audio is not None and entry.cache_read and tier.cache_read is not None:
        cached = entry.cache_read_audio * tier.cache_read / entry.cache_read
    return entry.input_audio * tier.input / entry.input, cached


def audio_rates(
    entry: PriceEntry, mode: str, long: LongContextPrice | None, rate_in: Decimal, rate_cr: Decimal
) -> tuple[Decimal, Decimal]:
    """An audio input token's rate and a cached one's: the entry's audio prices where it has them, else the text
    rates (`rate_in`, `rate_cr`: the model bills audio as text; one that bills it apart is refused where the catalog
    has none, by require_audio_prices). In a batch at the batch discount on input, as Google halves audio too."""
    if mode == "provisioned" or long is not None:
        return rate_in, rate_cr
    audio, cached = rate(entry, "input_audio", "input"), rate(entry, "cache_read_audio", "cache_read")
    if mode == "batch":
        ratio = (entry.batch_input / entry.input) if entry.input and entry.batch_input else Decimal(0)
        return audio * ratio, cached * batch_cache_read_ratio(entry, ratio)
    return audio, cached


def audio_output_rate(entry: PriceEntry, mode: str, long: LongContextPrice | None, rate_out: Decimal) -> Decimal:
    """An audio output token's rate: the entry's output_audio where it has it, else the text rate `rate_out` (the
    model bills audio as text); in a batch at the batch discount on output."""
    if mode == "provisioned" or long is not None:
        return rate_out
    audio = rate(entry, "output_audio", "output")
    if mode == "batch":
        return audio * ((entry.batch_output / entry.output) if entry.output and entry.batch_output else Decimal(0))
    return audio


def require_batch(entry: PriceEntry) -> None:
    if not entry.has_batch:
        reason = entry.batch_note or "the provider publishes no batch price for it"
        raise UsageError(
            f"model {entry.model!r} in {entry.region} has no batch price: {reason}. "
            f"Use mode on_demand, pick a batch-capable model, or add the price with {price_file()}."
        )


def long_batch_rates(
    entry: PriceEntry, long: LongContextPrice, rates: tuple[Decimal, ...], write_field: str
) -> tuple[Decimal, ...]:
    """Batch rates (input, output, cache read, cache write, 1-hour write) over the long-context threshold, from
    the standard tier's `rates` there: the published batch long-context figure of each field where there is one
    (GPT-5.4: $0.25 cache read, a rounded half of $0.50), else that field's own batch ratio, never another's."""
    require_batch(entry)
    assert entry.batch_input is not None and entry.batch_output is not None  # has_batch says both are set
    ratio_in = (entry.batch_input / entry.input) if entry.input else Decimal(0)
    ratio_out = (entry.batch_output / entry.output) if entry.output else Decimal(0)
    ratios = (ratio_in, ratio_out, batch_cache_read_ratio(entry, ratio_in), ratio_in, ratio_in)
    published = entry.batch_long_context
    if published is None or published.above_tokens != long.above_tokens:
        return tuple(rate * ratio for rate, ratio in zip(rates, ratios, strict=True))
    figures = (
        published.input,
        published.output,
        published.cache_read,
        getattr(published, write_field),
        published.cache_write_1h,
    )
    return tuple(
        figure if figure is not None else rate * ratio
        for figure, rate, ratio in zip(figures, rates, ratios, strict=True)
    )


def batch_cache_read_ratio(entry: PriceEntry, input_ratio: Decimal) -> Decimal:
    """Batch cache-read price over the on-demand one: from the published batch_cache_read where there is one."""
    if entry.batch_cache_read is not None and entry.cache_read:
        return entry.batch_cache_read / entry.cache_read
    return input_ratio


def long_context(entry: PriceEntry, prompt_tokens: int, mode: str) -> LongContextPrice | None:
    """The entry's long-context prices if a call's prompt (input + cache read + cache write) is over their
    threshold; provisioned throughput has no per-token price to raise."""
    long = entry.long_context
    if long is None or mode == "provisioned" or prompt_tokens <= long.above_tokens:
        return None
    return long


def long_cache_rates(
    entry: PriceEntry, long: LongContextPrice, usage: Usage, write_field: str
) -> tuple[Decimal, Decimal]:
    """Cache read and write rates over the threshold; refuses cache tokens it has no published rate for (never the
    short-prompt rate, which would under-price them). A model whose writes cost plain input does so here too."""
    where = f"model {entry.model!r} in {entry.region}"
    read = long.cache_read
    if usage.cache_read_tokens and read is None:
        raise UsageError(
            f"{where} publishes no cache-read price for prompts over {long.above_tokens:,} tokens but usage "
            f"reports {usage.cache_read_tokens} cache-read tokens; add long_context.cache_read with {price_file()}"
        )
    write = getattr(long, write_field)
    if write is None and getattr(entry, write_field) is None:
        write = long.input  # writes cost the input price, as below the threshold
    if usage.cache_write_tokens and write is None:
        raise UsageError(
            f"{where} publishes no {'1-hour ' if write_field == 'cache_write_1h' else ''}cache-write price for "
            f"prompts over {long.above_tokens:,} tokens but usage reports {usage.cache_write_tokens} cache-write "
            f"tokens; add long_context.{write_field} with {price_file()}"
        )
    return read or Decimal(0), write or Decimal(0)
