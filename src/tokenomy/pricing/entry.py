"""One price entry: what one model costs in one region, with the source and date it was read from."""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from datetime import date
from decimal import Decimal
from typing import Any

from tokenomy.money import money_str

TERMS = ("none", "1m", "6m")
# USD per million tokens. cache_write is the 5-minute write; cache_write_1h the 1-hour write;
# cache_storage_hourly is USD per million tokens per hour a context cache is kept (Gemini's explicit caches);
# batch_cache_read is a cached input token's price in a batch, where published (otherwise the batch discount on
# input applies to it in proportion). web_search is the one price not per token: USD per 1,000 web searches the
# provider runs for the model (a search, a search query or a grounded prompt: pricing/server_tools.py).
# input_audio and cache_read_audio: an audio input token's price, uncached and cached, and output_audio an audio output
# token's, where the provider bills audio apart from text (Gemini 2.0 and 2.5 Flash, OpenAI's audio and realtime
# models); an entry without any of them bills audio as text (pricing/cost.py).
PRICE_FIELDS = (
    "input",
    "output",
    "batch_input",
    "batch_output",
    "batch_cache_read",
    "cache_read",
    "cache_write",
    "cache_write_1h",
    "cache_storage_hourly",
    "web_search",
    "input_audio",
    "cache_read_audio",
    "output_audio",
)
INT_FIELDS = (
    "cache_min_tokens",
    "cache_max_checkpoints",
    "cache_ttl_seconds",
    "context_window",
    "max_output_tokens",
    "provisioned_tpm_per_unit",
    "tool_prompt_tokens_auto",
    "tool_prompt_tokens_any",
)
# limits_source: where context_window and max_output_tokens were read, with the day (the entry's source and as_of
# are its prices'); provisioned_source likewise for provisioned_hourly, where it was read elsewhere than the per-token
# prices (genai-prices, which the Bedrock entries' token prices are checked against, has no provisioned prices).
# tool_prompt_source: where tool_prompt_tokens_auto and tool_prompt_tokens_any were read, with the day.
TEXT_FIELDS = (
    "batch_note",
    "provisioned_note",
    "overrides",
    "note",
    "service_tier_note",
    "limits_source",
    "provisioned_source",
    "tool_prompt_source",
)
# Anthropic's fast mode (`speed: "fast"` on Claude's Messages API), priced as a tier of its own: its prices are
# published per model, as a tier's are. Not OpenAI's "fast", which is its name for priority (TIER_ALIASES).
FAST_MODE_TIER = "fast_mode"
# On-demand service tiers other than the standard one; each is priced only where the provider publishes it.
SERVICE_TIERS = ("priority", "flex", "ultrafast", FAST_MODE_TIER)
# Other names a provider takes and reports for one of those tiers, at its price: OpenAI renamed priority processing
# "fast" and accepts either name (genai-prices prices both variants alike).
TIER_ALIASES = {"fast": "priority"}


def priced_tier(name: object) -> str:
    """The tier a provider's name for one is priced at: one of SERVICE_TIERS (an alias read as its tier), else the
    standard tier ("default", "auto", "standard", "scale", none)."""
    if isinstance(name, str):
        name = TIER_ALIASES.get(name, name)
        if name in SERVICE_TIERS:
            return str(name)
    return "standard"


TIER_PRICE_FIELDS = ("input", "output", "cache_read", "cache_write", "cache_write_1h")


def unit_prices(prices: Any, fields: tuple[str, ...]) -> dict[str, str]:
    """The published ones of `fields` as unit-price text (None means not published: left out)."""
    published = {name: getattr(prices, name) for name in fields}
    return {name: money_str(value, "unit_price") for name, value in published.items() if value is not None}


# Output tokens reserved for a call that sets no cap, to a model whose provider sends none and whose maximum output
# the price catalog lacks (a gateway budget adds the call's thinking budget, billed as output): not a bound, a guess.
DEFAULT_OUTPUT_ESTIMATE = 1024


@dataclass(frozen=True)
class TierPrice:
    """The on-demand prices of one service tier (USD per million tokens), with their own source and date.

    `as_of` is the day the price was read; `starts` the UTC day it takes effect where the provider announced it ahead
    (None: in effect when read). `changes` are the tier's prices announced to replace this one, each with its
    `starts`, in date order (OpenAI's ultrafast tier doubles on 2027-03-01): a call is priced at the one in effect on
    its own day (`on`), as genai-prices picks a price variant by the request's UTC date."""

    input: Decimal
    output: Decimal
    source: str
    as_of: str
    cache_read: Decimal | None = None
    cache_write: Decimal | None = None
    cache_write_1h: Decimal | None = None  # where published (Anthropic's fast mode: caching's 2x on its input price)
    starts: str | None = None
    changes: tuple[TierPrice, ...] = ()
    # The tier's prices for a prompt over a size threshold, where published (OpenAI's over 272k input tokens).
    long_context: LongContextPrice | None = None

    def on(self, day: date) -> TierPrice:
        """The price in effect on `day` (UTC)."""
        current = self
        for change in self.changes:
            if change.starts is not None and date.fromisoformat(change.starts) <= day:
                current = change
        return current

    def to_json(self) -> dict[str, Any]:
        out: dict[str, Any] = {**unit_prices(self, TIER_PRICE_FIELDS), "source": self.source, "as_of": self.as_of}
        if self.starts is not None:
            out["starts"] = self.starts
        if self.changes:
            out["changes"] = [change.to_json() for change in self.changes]
        if self.long_context is not None:
            out["long_context"] = self.long_context.to_json()
        return out


LONG_CONTEXT_PRICE_FIELDS = ("input", "output", "cache_read", "cache_write", "cache_write_1h")


@dataclass(frozen=True)
class LongContextPrice:
    """The prices of a call whose prompt (input + cache read + cache write tokens) is over `above_tokens`: the
    provider bills the whole call at them (Gemini 2.5 Pro and Claude Sonnet 4.5 over 200k prompt tokens). USD per
    million tokens, with their own source and date."""

    above_tokens: int
    input: Decimal
    output: Decimal
    source: str
    as_of: str
    cache_read: Decimal | None = None
    cache_write: Decimal | None = None
    cache_write_1h: Decimal | None = None

    def to_json(self) -> dict[str, Any]:
        prices = unit_prices(self, LONG_CONTEXT_PRICE_FIELDS)
        return {"above_tokens": self.above_tokens, **prices, "source": self.source, "as_of": self.as_of}


@dataclass(frozen=True)
class PriceEntry:
    """Prices of one model in one region (USD per million tokens; provisioned per hour)."""

    provider: str
    model: str
    region: str
    family: str
    source: str
    as_of: str
    priced_by: str = "tokenomy-catalog"
    currency: str = "USD"
    input: Decimal | None = None
    output: Decimal | None = None
    batch_input: Decimal | None = None
    batch_output: Decimal | None = None
    batch_cache_read: Decimal | None = None  # where published; else cache_read x batch_input / input
    cache_read: Decimal | None = None
    cache_write: Decimal | None = None
    cache_write_1h: Decimal | None = None
    cache_storage_hourly: Decimal | None = None  # USD per million cached tokens per hour of storage
    web_search: Decimal | None = None  # USD per 1,000 web searches the provider runs (its search tool, grounding)
    input_audio: Decimal | None = None  # an audio input token, where billed apart from text
    cache_read_audio: Decimal | None = None  # a cached audio input token, where billed apart from text
    output_audio: Decimal | None = None  # an audio output token, where billed apart from text
    cache_min_tokens: int | None = None
    cache_max_checkpoints: int | None = None
    cache_ttl_seconds: int | None = None
    context_window: int | None = None
    # The most output tokens (reasoning included) one call may write, as the provider documents it; None: not known.
    # A budget reserves a call that sets no cap at it (gateway.state).
    max_output_tokens: int | None = None
    limits_source: str | None = None  # where the limits were read, and when
    # The system prompt the provider adds to a call that sends tools, billed as input (Claude's tool use system
    # prompt), by tool_choice: auto or none, and any or tool. None: the model adds none, or it is not known.
    tool_prompt_tokens_auto: int | None = None
    tool_prompt_tokens_any: int | None = None
    tool_prompt_source: str | None = None  # where those counts were read, and when
    provisioned_hourly: dict[str, Decimal] = field(default_factory=dict)
    provisioned_tpm_per_unit: int | None = None
    provisioned_source: str | None = None  # where provisioned_hourly was read, and when; None: the entry's source
    service_tiers: dict[str, TierPrice] = field(default_factory=dict)  # SERVICE_TIERS' prices where published
    long_context: LongContextPrice | None = None  # prices of a call over a prompt-size threshold, where published
    # The batch prices over that threshold where published (GPT-5.4's rounded $0.25 cache read, not $0.50 x 0.13/0.25).
    batch_long_context: LongContextPrice | None = None
    service_tier_note: str | None = None  # why a tier is not priced (e.g. sold, but no figure verified)
    batch_note: str | None = None  # why there is no batch price (the provider publishes none)
    provisioned_note: str | None = None
    # The provider's lifecycle (pricing/lifecycle.py): ISO days it deprecated and retires the model, and where they
    # were read, with the day. None: not known (an active model, or one the catalog has no dates for).
    deprecated_on: str | None = None
    retired_on: str | None = None
    lifecycle_source: str | None = None
    overrides: str | None = None  # why a curated figure deliberately differs from genai-prices'
    note: str | None = None
    resolved_from: str | None = None  # the id the caller asked for, when it was an alias/profile

    def output_within(self, prompt: int) -> int | None:
        """The most the model may write after a `prompt` of that many tokens: its maximum output, no more than its
        context window leaves; None where the catalog has no maximum output."""
        if self.max_output_tokens is None:
            return None
        if self.context_window is None:
            return self.max_output_tokens
        return min(self.max_output_tokens, max(self.context_window - prompt, 0))

    def tool_prompt_tokens(self, choice: str | None) -> int:
        """The tokens of the system prompt the provider adds to a call that sends tools, for its tool_choice mode
        (auto, none, any or tool; None: auto, the default). 0 where the catalog has no count."""
        count = self.tool_prompt_tokens_any if choice in ("any", "tool") else self.tool_prompt_tokens_auto
        return count or 0

    @property
    def has_batch(self) -> bool:
        return self.batch_input is not None and self.batch_output is not None

    @property
    def has_cache(self) -> bool:
        return self.cache_read is not None

    def to_json(self) -> dict[str, Any]:
        """A JSON-ready dict: prices as strings by the one money rule (per 1M tokens, >= 4 places, exact)."""
        out = asdict(self)
        for key, value in list(out.items()):
            if isinstance(value, Decimal):
                out[key] = money_str(value, "unit_price")
        out["provisioned_hourly"] = {k: money_str(v, "unit_price") for k, v in self.provisioned_hourly.items()}
        out["service_tiers"] = {k: v.to_json() for k, v in self.service_tiers.items()}
        out["long_context"] = self.long_context.to_json() if self.long_context is not None else None
        batch_long = self.batch_long_context
        out["batch_long_context"] = batch_long.to_json() if batch_long is not None else None
        out["unit"] = (
            "USD per 1M tokens (provisioned_hourly: USD per model unit per hour; "
            "cache_storage_hourly: USD per 1M cached tokens per hour; web_search: USD per 1,000 web searches)"
        )
        return out
