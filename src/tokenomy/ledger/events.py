"""The usage event: one ledger row per provider call attempt."""

from __future__ import annotations

import contextlib
import hashlib
import json
import operator
from dataclasses import dataclass, field, fields
from datetime import UTC, datetime
from decimal import Decimal
from functools import lru_cache
from typing import Any, TypedDict

import orjson

from tokenomy.errors import TokenomyError, UsageError
from tokenomy.ids import new_id
from tokenomy.messages import (
    Block,
    ChatRequest,
    ChatResponse,
    DocumentBlock,
    ImageBlock,
    ProviderBlock,
    ReasoningBlock,
    TextBlock,
    ToolResultBlock,
    ToolSpec,
    ToolUseBlock,
    Usage,
)
from tokenomy.money import record_str
from tokenomy.pricing.cost import CostBreakdown, check_tokens
from tokenomy.token_estimate import estimate_text_tokens, weighted_length

SCHEMA_VERSION = 1
# "cancelled": the caller abandoned a stream; providers still bill what they processed.
OUTCOMES = ("ok", "throttled", "client_error", "server_error", "timeout", "cancelled")
# "cache_storage": what keeping an explicit context cache cost (per token-hour, not per call; see
# caching/context_caches.py).
STORAGE_MODE = "cache_storage"
MODES = ("on_demand", "batch", "provisioned", STORAGE_MODE)
# The tag holding how many of a row's cache-write tokens were 1-hour writes (billed at the 1-hour price), as an
# Anthropic usage report's import writes it: a tag, not a column, since few rows have any.
CACHE_WRITE_1H_TAG = "cache_write_1h_tokens"


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
        )

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


def prompt_fingerprint(request: ChatRequest) -> str:
    """A stable hash of the prompt (system + turns) so repeats can be found without storing text."""
    return fingerprints(request)[0]


def tools_json_of(tools: list[ToolSpec]) -> str:
    """Tools as JSON text with sorted keys. orjson (the stdlib's json.dumps cost ~20 us a request), each tool's text
    made once (`ToolSpec.derived`: an agent's tools come with every request); the stdlib for what orjson refuses (an
    integer past 64 bits in a schema)."""
    try:
        return "[" + ",".join([_tool_json(tool) for tool in tools]) + "]"  # as orjson writes the list
    except TypeError:
        return json.dumps([t.to_dict() for t in tools], sort_keys=True, separators=(",", ":"))


def _tool_json(tool: ToolSpec) -> str:
    derived = tool.derived
    if derived is None:
        derived = tool.derived = {}
    text = derived.get("ledger_json")
    if text is None:
        text = derived["ledger_json"] = orjson.dumps(tool.to_dict(), option=orjson.OPT_SORT_KEYS).decode()
    return text


def _prefix_hash(prefix: str) -> tuple[str | None, int]:
    """Hash and estimated token count (~4 characters a token) of a stable prefix; (None, 0) if empty."""
    if not prefix.strip("\x00"):
        return None, 0
    return hashlib.sha256(prefix.encode()).hexdigest()[:32], estimate_text_tokens(prefix)


@lru_cache(maxsize=64)
def _tools_digest(tools: str) -> Any:
    """SHA-256 fed the tools' JSON and the separator after it, to be copied and fed the rest of a prefix: an agent
    sends the same tools with every request, and hashing their schemas each time cost more than the rest of the
    request's fingerprints."""
    return hashlib.sha256(tools.encode() + b"\x00")


def _turn_identity(blocks: list[Block]) -> str:
    """What a turn's blocks are, as hashed: text as it is (a text-only turn hashes as it always did), every other
    block as a short mark naming it (an image's or document's digest or link, a tool call's id, name and arguments),
    so prompts that differ only in their images, documents or tool calls never hash alike. No content is kept."""
    if len(blocks) == 1:  # most turns: one text block (no list built)
        only = blocks[0]
        return only.text if type(only) is TextBlock else _block_identity(only)
    return "".join([b.text if type(b) is TextBlock else _block_identity(b) for b in blocks])


def _block_identity(block: Block) -> str:
    if isinstance(block, TextBlock):
        return block.text
    if isinstance(block, ImageBlock):
        held = block.base64 if block.base64 is not None else block.data
        what = f"url {block.url}" if held is None else payload_digest(held)
        return f"\x02image {block.media_type} {block.detail} {what}\x03"
    if isinstance(block, DocumentBlock):
        data = "" if block.data is None else payload_digest(block.data)
        inner = "" if block.content is None else _turn_identity(block.content)
        return (
            f"\x02document {block.format} {block.name} {block.file_id} {block.url} {data} {block.context} "
            f"{block.citations} {inner}\x03"
        )
    if isinstance(block, ToolUseBlock):
        arguments = block.arguments
        if arguments is None:
            arguments = orjson.dumps(block.input, option=orjson.OPT_SORT_KEYS).decode()
        return f"\x02call {block.id} {block.name} {arguments}\x03"
    if isinstance(block, ToolResultBlock):
        return f"\x02result {block.tool_use_id} {block.is_error} {_turn_identity(block.content)}\x03"
    if isinstance(block, ReasoningBlock):
        return f"\x02reasoning {block.text} {block.signature} {block.redacted}\x03"
    if isinstance(block, ProviderBlock):
        try:
            data = orjson.dumps(block.data, option=orjson.OPT_SORT_KEYS).decode()
        except TypeError:
            data = repr(block.data)
        return f"\x02{block.api} {data}\x03"
    return f"\x02{type(block).__name__}\x03"


# Payloads hashed lately, found again by a cheap key and an equality check (a memory compare, ~30 us a megabyte,
# where SHA-256 takes ~600 us): an agent sends its conversation's images again with every turn. Bounded by the bytes
# held (64 entries of 8 MB would keep half a gigabyte of old images alive in the gateway), oldest dropped first.
_DIGESTS: dict[tuple[int, Any, Any], tuple[str | bytes, str]] = {}
_DIGESTS_MAX = 64
_DIGEST_BYTES_MAX = 16 << 20  # every payload held, together
_DIGEST_KEPT_MAX = 4 << 20  # a payload past 4 MB is hashed each time rather than held
_digest_bytes = 0


def payload_digest(payload: str | bytes) -> str:
    """SHA-256 (32 hex digits) of an inline image's or document's payload: its identity in a prompt's hash."""
    global _digest_bytes
    size = len(payload)
    key = (size, payload[size // 2 : size // 2 + 32], payload[-32:])
    kept = _DIGESTS.get(key)
    if kept is not None and kept[0] == payload:
        return kept[1]
    digest = hashlib.sha256(payload.encode() if isinstance(payload, str) else payload).hexdigest()[:32]
    if size <= _DIGEST_KEPT_MAX:
        # another thread may change it meanwhile: one more or less kept, or a total off by one payload, is fine
        with contextlib.suppress(RuntimeError, KeyError, StopIteration):
            while _DIGESTS and (len(_DIGESTS) >= _DIGESTS_MAX or _digest_bytes + size > _DIGEST_BYTES_MAX):
                _digest_bytes -= len(_DIGESTS.pop(next(iter(_DIGESTS)))[0])  # the oldest
        _DIGESTS[key] = (payload, digest)
        _digest_bytes += size
    return digest


def fingerprints(request: ChatRequest) -> tuple[str, str | None, int]:
    """(prompt hash, prefix hash, prefix tokens) in one pass: each turn's text is joined once, not twice (a turn
    with tool results or parts has its text built from its blocks). The prompt hash covers the system prompt and
    every turn, so repeats can be found without storing text; the prefix is what a prompt cache can reuse across
    calls (tools, system prompt, earlier turns), None when empty.

    The prompt is the system prompt, then each turn as `\\x00<role>\\x01<text>` (its blocks' identities, see
    `_turn_identity`); the prefix is the tools' JSON, the
    system prompt and each earlier turn, joined by `\\x00`: that is the prompt without its last turn, after the
    tools."""
    system = request.system or ""
    turns = [f"\x00{message.role}\x01{_turn_identity(message.content)}" for message in request.messages]
    prompt = system + "".join(turns)
    earlier = prompt[: len(prompt) - len(turns[-1])] if turns else prompt
    prompt_hash = hashlib.sha256(prompt.encode()).hexdigest()[:32]
    if not request.tools:
        return (prompt_hash, *_prefix_hash(earlier))
    tools, chars = _tools_prefix(request.tools)
    digest = tools.copy()
    digest.update(earlier.encode())
    return prompt_hash, digest.hexdigest()[:32], (chars + 1 + weighted_length(earlier) + 3) // 4


def _tools_prefix(tools: list[ToolSpec]) -> tuple[Any, int]:
    """(the hash state after the tools' JSON and its separator, the JSON's length) of a request's tools, kept on its
    first tool (`ToolSpec.derived`) beside the tools it was made of: the gateway shares the ToolSpecs of a tool list
    sent again (`openai_options.read_tools`), and writing out their JSON to find its hash state cost more than the
    rest of a request's fingerprints. Found by the tools' identities, not equality (equal schemas may write out
    differently: 1 and 1.0); the tools are kept with it, so their ids are not taken by others while it is kept."""
    first = tools[0]
    derived = first.derived
    if derived is None:
        derived = first.derived = {}
    ids = [id(tool) for tool in tools]
    kept = derived.get("ledger_prefix")
    if kept is not None and kept[0] == ids:
        return kept[2], kept[3]
    text = tools_json_of(tools)
    digest = _tools_digest(text)
    # The other tools are kept (the first owns the dict): keeping the first too made a cycle per request whose
    # tools are not shared, freed only by the cyclic collector.
    derived["ledger_prefix"] = (ids, tuple(tools[1:]), digest, len(text))
    return digest, len(text)


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
        **content_counts(request),
    )
    if response.usage.cache_write_1h_tokens:
        event.tags[CACHE_WRITE_1H_TAG] = str(response.usage.cache_write_1h_tokens)
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
