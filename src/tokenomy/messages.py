"""Provider-neutral request/response types (one definition each; see DESIGN.md)."""

from __future__ import annotations

from dataclasses import dataclass, field
from decimal import Decimal
from typing import Any

ROLES = ("user", "assistant")


@dataclass(slots=True)
class Message:
    """One conversation turn. `cache_point` marks a cache checkpoint right after this turn."""

    role: str
    content: str
    cache_point: bool = False


@dataclass(slots=True)
class RequestMeta:
    """Who asked and why: lands in the ledger for cost per task, tag, key and tenant."""

    task: str | None = None
    tags: dict[str, str] = field(default_factory=dict)
    tenant: str | None = None
    key_id: str | None = None
    route: str | None = None
    tier: str | None = None


@dataclass(slots=True)
class ChatRequest:
    """A chat call, independent of provider. `system_cache_point` caches the system prompt."""

    messages: list[Message]
    model: str = "local"
    system: str | None = None
    max_tokens: int | None = None
    temperature: float | None = None
    stop: list[str] = field(default_factory=list)
    tools: list[dict[str, Any]] = field(default_factory=list)
    json_schema: dict[str, Any] | None = None
    system_cache_point: bool = False
    tools_cache_point: bool = False
    region: str | None = None
    meta: RequestMeta = field(default_factory=RequestMeta)

    @classmethod
    def simple(cls, prompt: str, model: str = "local", system: str | None = None,
               max_tokens: int | None = None, **kwargs: Any) -> "ChatRequest":
        return cls(messages=[Message("user", prompt)], model=model, system=system,
                   max_tokens=max_tokens, **kwargs)


@dataclass(slots=True)
class Usage:
    """Token counts. `input_tokens` EXCLUDES cache-read and cache-write tokens."""

    input_tokens: int = 0
    output_tokens: int = 0
    cache_read_tokens: int = 0
    cache_write_tokens: int = 0

    @property
    def total_input_tokens(self) -> int:
        """All prompt tokens, cached or not (what OTel's gen_ai.usage.input_tokens reports)."""
        return self.input_tokens + self.cache_read_tokens + self.cache_write_tokens

    def __add__(self, other: "Usage") -> "Usage":
        return Usage(self.input_tokens + other.input_tokens, self.output_tokens + other.output_tokens,
                     self.cache_read_tokens + other.cache_read_tokens,
                     self.cache_write_tokens + other.cache_write_tokens)


@dataclass(slots=True)
class ChatResponse:
    """A provider's answer with usage, timing, and (once priced) its cost."""

    text: str
    model: str
    provider: str
    usage: Usage
    finish_reason: str = "stop"
    latency_ms: float = 0.0
    ttft_ms: float | None = None
    region: str | None = None
    cost_usd: Decimal | None = None
    attempts: int = 1
    tier: str | None = None
    raw: Any = None


@dataclass(slots=True)
class StreamChunk:
    """A streamed piece: text deltas, then one final chunk carrying `response`."""

    delta: str = ""
    response: ChatResponse | None = None
