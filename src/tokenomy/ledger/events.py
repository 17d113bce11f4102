"""The usage event: one ledger row per provider call attempt."""

from __future__ import annotations

import json
import operator
from dataclasses import dataclass, field, fields
from datetime import UTC, datetime
from decimal import Decimal
from typing import Any, TypedDict

import orjson

from tokenomy.chat_response import ChatResponse, Usage
from tokenomy.errors import TokenomyError, UsageError
from tokenomy.ids import new_id
from tokenomy.ledger.fingerprints import fingerprints
from tokenomy.messages import ChatRequest, DocumentBlock, ImageBlock, ToolResultBlock
from tokenomy.money import record_str
from tokenomy.pricing.cost import check_tokens
from tokenomy.pricing.cost_breakdown import CostBreakdown

SCHEMA_VERSION = 1
# "cancelled": the caller abandoned a stream; providers still bill what they processed.
# "interrupted": the gateway died (SIGKILL, OOM) while the attempt was at its provider, which answered and billed it;
# written at the next start from the journal's in-flight entry, at the attempt's estimate (ledger/journal_replay.py).
OUTCOMES = ("ok", "throttled", "client_error", "server_error", "timeout", "cancelled", "interrupted")
# "cache_storage": what keeping an explicit context cache cost (per token-hour, not per call; see
# caching/context_caches.py).
STORAGE_MODE = "cache_storage"
MODES = ("on_demand", "batch", "provisioned", STORAGE_MODE)
# The tag holding how many of a row's cache-write tokens were 1-hour writes (billed at the 1-hour price), as an
# Anthropic usage report's import writes it: a tag, not a column, since few rows have any.
CACHE_WRITE_1H_TAG = "cache_write_1h_tokens"
# The tag on a row whose answer reported more output tokens than the call allowed: the cap it passed ("max_tokens
# 100", or "model maximum 16384" when the call set none). The row is billed as reported (the provider bills it).
OVER_CAP_TAG = "output_over_cap"
# The tag on an answer a provider's content filter blocked or cut short (finish reason content_filter: Gemini's blocked
# prompt or SAFETY, Azure's filter, a Bedrock guardrail): the reason as the provider gave it. The row is billed as
# answered (the prompt, and what came before a cut), and without the tag it read as an ordinary answer.
FILTERED_TAG = "content_filter"
# The tag on an attempt sent a lower output cap than its caller asked for: the caller's figure (the route's
# tokens.max_tokens where it sent none). A model the caller did not name (a fallback, a routed tier, a route's model
# reached by the route's name) is held to its maximum output in the catalog (`CallPlanner.held_cap`).
MAX_TOKENS_CLAMPED_TAG = "max_tokens_clamped"
# The tag on such an attempt whose Claude thinking budget, not below the held cap, was lowered with it (Claude's API
# takes a budget only below max_tokens): the caller's budget. The answer keeps the room the caller left it past the
# thinking, the budget never below Claude's 1,024 tokens (`claude_thinking_rules.held_thinking_budget`).
THINKING_BUDGET_CLAMPED_TAG = "thinking_budget_clamped"
# The tag on an attempt to Claude whose structured-output or strict tool schema was sent in Claude's form
# (`providers.claude_schema`), constraints Claude's API refuses (minimum, maxLength, ...) moved into descriptions the
# model reads but is not held to: each field and place with what was moved.
SCHEMA_LOOSENED_TAG = "schema_constraints_described"


def decimal_str(value: Decimal) -> str:
    """A recorded cost as text, by the one money rule (plain, >= 6 places, exact to 12), cached (`record_str`)."""
    return record_str(value)


def utcnow() -> datetime:
    return datetime.now(UTC)


@dataclass(slots=True)
class UsageEvent:
    """One call (or one attempt of a call): who, what, how many tokens, what it cost, how it went."""

    ts: datetime
    provider: str
    model: str
    region: str | None = None
    mode: str = "on_demand"
    task: str | None = None
    tags: dict[str, str] = field(default_factory=dict)
    tenant: str | None = None
    key_id: str | None = None
    route: str | None = None
    tier: str | None = None
    input_tokens: int = 0
    output_tokens: int = 0
    cache_read_tokens: int = 0
    cache_write_tokens: int = 0
    input_cost_usd: Decimal = Decimal(0)
    output_cost_usd: Decimal = Decimal(0)
    cache_read_cost_usd: Decimal = Decimal(0)
    cache_write_cost_usd: Decimal = Decimal(0)
    cost_usd: Decimal = Decimal(0)
    latency_ms: float | None = None
    ttft_ms: float | None = None
    outcome: str = "ok"
    error_type: str | None = None
    attempt: int = 1
    request_id: str | None = None
    batch_job_id: str | None = None
    prompt_hash: str | None = None
    prefix_hash: str | None = None
    prefix_tokens: int | None = None
    prompt_text: str | None = None
    priced_by: str | None = None
    # What the call carried, counted, never stored (content lands only in prompt_text, if prompts are stored):
    image_count: int = 0  # images in the request
    document_count: int = 0  # documents in the request
    tool_call_count: int = 0  # tool calls the model made in its answer
    # The audio parts of input_tokens, cache_read_tokens and output_tokens (Usage's), kept so a row priced again
    # (ledger import, reviews) prices its audio at the audio rates it was recorded at, not as text.
    audio_input_tokens: int = 0
    audio_cache_read_tokens: int = 0
    audio_output_tokens: int = 0
    event_id: str = field(default_factory=new_id)

    @property
    def usage(self) -> Usage:
        """The row's tokens, its 1-hour cache writes (CACHE_WRITE_1H_TAG) among them, so it can be priced again."""
        one_hour = str((self.tags or {}).get(CACHE_WRITE_1H_TAG, ""))
        return Usage(
            self.input_tokens,
            self.output_tokens,
            self.cache_read_tokens,
            self.cache_write_tokens,
            cache_write_1h_tokens=min(int(one_hour), self.cache_write_tokens) if one_hour.isdigit() else 0,
            audio_input_tokens=self.audio_input_tokens or 0,
            audio_cache_read_tokens=self.audio_cache_read_tokens or 0,
            audio_output_tokens=self.audio_output_tokens or 0,
        )

    def apply_usage(self, usage: Usage) -> UsageEvent:
        """The row's tokens set to `usage` (the counts its cost was computed from, where they differ from what the
        model reported), its 1-hour cache writes in CACHE_WRITE_1H_TAG: the inverse of `usage`."""
        self.input_tokens, self.output_tokens = usage.input_tokens, usage.output_tokens
        self.cache_read_tokens, self.cache_write_tokens = usage.cache_read_tokens, usage.cache_write_tokens
        self.audio_input_tokens, self.audio_output_tokens = usage.audio_input_tokens, usage.audio_output_tokens
        self.audio_cache_read_tokens = usage.audio_cache_read_tokens
        tags = {k: v for k, v in (self.tags or {}).items() if k != CACHE_WRITE_1H_TAG}  # a copy: replace() shares it
        if usage.cache_write_1h_tokens:
            tags[CACHE_WRITE_1H_TAG] = str(usage.cache_write_1h_tokens)
        self.tags = tags
        return self

    def apply_cost(self, cost: CostBreakdown) -> UsageEvent:
        self.input_cost_usd, self.output_cost_usd = cost.input_usd, cost.output_usd
        self.cache_read_cost_usd, self.cache_write_cost_usd = cost.cache_read_usd, cost.cache_write_usd
        self.cost_usd = cost.total_usd
        self.priced_by = cost.priced_by
        return self

    def validate(self) -> None:
        """Raise UsageError naming the field that cannot go into the ledger."""
        check_tokens(
            input_tokens=self.input_tokens,
            output_tokens=self.output_tokens,
            cache_read_tokens=self.cache_read_tokens,
            cache_write_tokens=self.cache_write_tokens,
            audio_input_tokens=self.audio_input_tokens,
            audio_cache_read_tokens=self.audio_cache_read_tokens,
            audio_output_tokens=self.audio_output_tokens,
        )
        for part, whole in (
            ("audio_input_tokens", "input_tokens"),
            ("audio_cache_read_tokens", "cache_read_tokens"),
            ("audio_output_tokens", "output_tokens"),
        ):
            if getattr(self, part) > getattr(self, whole):
                raise UsageError(
                    f"{part}={getattr(self, part)} is more than {whole}={getattr(self, whole)}; "
                    f"the audio tokens are a part of {whole}"
                )
        if self.mode not in MODES:
            raise UsageError(f"mode={self.mode!r} is not one of {', '.join(MODES)}")
        if self.outcome not in OUTCOMES:
            raise UsageError(f"outcome={self.outcome!r} is not one of {', '.join(OUTCOMES)}")
        if self.ts.tzinfo is None:
            raise UsageError(f"ts={self.ts.isoformat()} has no timezone; timestamps must be UTC (end with Z)")
        if not self.provider or not self.model:
            raise UsageError("provider and model are required")

    def to_row(self) -> dict[str, Any]:
        return dict(zip(COLUMNS, _column_values(self), strict=True))  # (read in one C call: once per ledger row)

    def to_json(self) -> dict[str, Any]:
        row = self.to_row()
        row["ts"] = self.ts.astimezone(UTC).isoformat().replace("+00:00", "Z")
        for key, value in row.items():
            if isinstance(value, Decimal):
                row[key] = decimal_str(value)
        return row

    def to_jsonl(self) -> bytes:
        """One JSONL line: the journal's and the rejected-events file's format (`tokenomy ledger import` reads it).

        The same text as `to_json` dumped, written by orjson from the row itself: the timestamp in UTC with a Z
        (orjson's own RFC 3339, which `isoformat` spelled with "+00:00" at ~15,000 instructions a row) and each
        Decimal as `decimal_str` (through orjson's `default`, not a look at every column in Python)."""
        row = self.to_row()
        ts = self.ts
        row["ts"] = ts if ts.tzinfo is UTC else ts.astimezone(UTC)
        try:
            return orjson.dumps(row, default=_decimal_text, option=orjson.OPT_UTC_Z | orjson.OPT_APPEND_NEWLINE)
        except TypeError:  # orjson refuses a lone surrogate in a string; the stdlib escapes it
            return (json.dumps(self.to_json(), separators=(",", ":")) + "\n").encode()


def row_jsonl(row: dict[str, Any]) -> bytes:
    """Some of a row's columns (the others take their defaults when it is read back), as one JSONL line in
    `UsageEvent.to_jsonl`'s format: for a line written often that needs few columns (a journal's in-flight entry)."""
    return orjson.dumps(row, default=_decimal_text, option=orjson.OPT_UTC_Z | orjson.OPT_APPEND_NEWLINE)


COLUMNS = [f.name for f in fields(UsageEvent)]
_column_values = operator.attrgetter(*COLUMNS)


def _decimal_text(value: Any) -> str:
    """orjson's `default` for a row: a Decimal as the ledger writes it; anything else is no JSON (a TypeError)."""
    if isinstance(value, Decimal):
        return decimal_str(value)
    raise TypeError(f"{type(value).__name__} is not JSON serializable")


class ContentCounts(TypedDict):
    image_count: int
    document_count: int


def content_counts(request: ChatRequest) -> ContentCounts:
    """How many images and documents a request carries (also inside tool results), for the ledger row."""
    images = documents = 0
    for message in request.messages:
        for block in message.content:  # no tuple built per block: this runs for every ledger row
            if isinstance(block, ImageBlock):
                images += 1
            elif isinstance(block, DocumentBlock):
                documents += 1
            elif isinstance(block, ToolResultBlock):
                for part in block.content:
                    if isinstance(part, ImageBlock):
                        images += 1
                    elif isinstance(part, DocumentBlock):
                        documents += 1
    return {"image_count": images, "document_count": documents}


def event_from_response(
    request: ChatRequest,
    response: ChatResponse,
    cost: CostBreakdown | None,
    mode: str = "on_demand",
    store_prompt: bool = False,
    request_id: str | None = None,
) -> UsageEvent:
    """Build the ledger row for one successful call."""
    meta = request.meta
    prompt_hash, prefix_hash, prefix_tokens = fingerprints(request)
    event = UsageEvent(
        ts=utcnow(),
        provider=response.provider,
        model=response.model,
        region=response.region or request.region,
        mode=mode,
        task=meta.task,
        tags=dict(meta.tags),
        tenant=meta.tenant,
        key_id=meta.key_id,
        route=meta.route,
        tier=response.tier or meta.tier,
        input_tokens=response.usage.input_tokens,
        output_tokens=response.usage.output_tokens,
        cache_read_tokens=response.usage.cache_read_tokens,
        cache_write_tokens=response.usage.cache_write_tokens,
        latency_ms=response.latency_ms,
        ttft_ms=response.ttft_ms,
        outcome="ok",
        attempt=response.attempts,
        request_id=request_id,
        prompt_hash=prompt_hash,
        prompt_text=_prompt_text(request) if store_prompt else None,
        tool_call_count=len(response.tool_calls),
        audio_input_tokens=response.usage.audio_input_tokens,
        audio_cache_read_tokens=response.usage.audio_cache_read_tokens,
        audio_output_tokens=response.usage.audio_output_tokens,
        **content_counts(request),
    )
    if response.usage.cache_write_1h_tokens:
        event.tags[CACHE_WRITE_1H_TAG] = str(response.usage.cache_write_1h_tokens)
    if response.finish_reason == "content_filter":
        raw = response.raw if isinstance(response.raw, dict) else {}
        own = raw.get("content_filter") or raw.get("finish_reason")  # a provider's own words for it, where it has them
        event.tags[FILTERED_TAG] = own if isinstance(own, str) and own else "content_filter"
    event.prefix_hash, event.prefix_tokens = prefix_hash, prefix_tokens
    if cost is not None:
        event.apply_cost(cost)
    return event


def record_priced_as(event: UsageEvent, price_as: str | None, name: str, catalog: Any) -> UsageEvent:
    """A model configured with `price_as` whose served id is itself a catalog model (e.g. `local`, which is free) is
    recorded under the model it is priced as, so the model column and the cost agree (a `local` row at Haiku's price
    read as "the free model cost money"); the configured name (e.g. a bench variant) and the model that answered
    are kept as tags. A served id the catalog does not know, or knows as the priced model itself (a self-hosted
    model's own name), misleads no one and is kept as it is."""
    if not price_as or price_as == event.model or not catalog.knows(event.model):
        return event
    try:
        if catalog.lookup(event.model).model == catalog.lookup(price_as).model:
            return event  # an alias of the priced model
    except TokenomyError:
        return event
    event.tags = {**(event.tags or {}), "variant": name, "served_model": event.model}
    event.model = price_as
    return event


def _prompt_text(request: ChatRequest) -> str:
    parts = [f"[system] {request.system}"] if request.system else []
    parts += [f"[{m.role}] {m.text}" for m in request.messages]
    return "\n".join(parts)
