"""A provider's answer in the provider-neutral content model: the response, its token usage and stream chunks.

The answer's content is `messages`' blocks; what a provider cannot return in them is kept whole (`ProviderBlock`),
never dropped.

Conventions:
- `finish_reason` uses OpenAI's vocabulary: stop, length, tool_calls, content_filter; a provider's reason with no
  counterpart there keeps the provider's name, lower-cased (Bedrock's malformed_tool_use, Gemini's
  malformed_function_call), rather than pass for a normal stop.
- Usage: `input_tokens` excludes cache-read/cache-write tokens; reasoning tokens are output tokens
  (`reasoning_tokens` says how many of them were reasoning), and 1-hour cache writes are cache-write tokens
  (`cache_write_1h_tokens` says how many of them were written for an hour).
"""

from __future__ import annotations

from dataclasses import dataclass
from decimal import Decimal
from typing import Any

from tokenomy.messages import Block, ProviderBlock, TextBlock, ToolUseBlock


@dataclass(slots=True)
class Usage:
    """Token counts. `input_tokens` EXCLUDES cache-read and cache-write tokens.

    `cache_write_1h_tokens` is the part of `cache_write_tokens` written to a 1-hour cache (priced at the 1-hour
    cache-write price); the rest of the cache writes are 5-minute ones. `audio_input_tokens`,
    `audio_cache_read_tokens` and `audio_output_tokens` are the audio parts of `input_tokens`, `cache_read_tokens` and
    `output_tokens`, where the provider reports them by modality (Gemini and OpenAI's audio models bill audio at its
    own price)."""

    input_tokens: int = 0
    output_tokens: int = 0
    cache_read_tokens: int = 0
    cache_write_tokens: int = 0
    reasoning_tokens: int = 0  # already counted in output_tokens
    cache_write_1h_tokens: int = 0  # already counted in cache_write_tokens
    audio_input_tokens: int = 0  # already counted in input_tokens
    audio_cache_read_tokens: int = 0  # already counted in cache_read_tokens
    audio_output_tokens: int = 0  # already counted in output_tokens

    @property
    def total_input_tokens(self) -> int:
        """All prompt tokens, cached or not (what OTel's gen_ai.usage.input_tokens reports)."""
        return self.input_tokens + self.cache_read_tokens + self.cache_write_tokens

    def __add__(self, other: Usage) -> Usage:
        return Usage(
            self.input_tokens + other.input_tokens,
            self.output_tokens + other.output_tokens,
            self.cache_read_tokens + other.cache_read_tokens,
            self.cache_write_tokens + other.cache_write_tokens,
            self.reasoning_tokens + other.reasoning_tokens,
            self.cache_write_1h_tokens + other.cache_write_1h_tokens,
            self.audio_input_tokens + other.audio_input_tokens,
            self.audio_cache_read_tokens + other.audio_cache_read_tokens,
            self.audio_output_tokens + other.audio_output_tokens,
        )


@dataclass(slots=True)
class ChatResponse:
    """A provider's answer (content blocks) with usage, timing, and (once priced) its cost."""

    content: list[Block]
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
    # The stop sequence that ended the answer; "" when the provider says one did but not which (Bedrock).
    stop_sequence: str | None = None
    # What every attempt of the call cost together (set by the client): a cascade's rejected cheaper answers and
    # abandoned streams included. `cost_usd` is this answer's own cost; a budget is charged this.
    call_cost_usd: Decimal | None = None

    @classmethod
    def of_text(cls, text: str, model: str, provider: str, usage: Usage, **kwargs: Any) -> ChatResponse:
        return cls(content=[TextBlock(text)] if text else [], model=model, provider=provider, usage=usage, **kwargs)

    @property
    def text(self) -> str:
        return "".join(b.text for b in self.content if isinstance(b, TextBlock))

    @property
    def tool_calls(self) -> list[ToolUseBlock]:
        return [b for b in self.content if isinstance(b, ToolUseBlock)]


@dataclass(slots=True)
class ToolCallDelta:
    """A piece of a streamed tool call: `index` identifies the call; id and name come with its first piece.
    `freeform`: a freeform call's piece (ToolUseBlock.freeform), whose `arguments` are raw text."""

    index: int
    id: str | None = None
    name: str | None = None
    arguments: str = ""
    freeform: bool = False


@dataclass(slots=True)
class StreamChunk:
    """A streamed piece (text, tool-call or reasoning delta), then one final chunk carrying `response`.

    `extra` holds what an OpenAI-format stream sent beside the text in OpenAI's own shape (a choice's
    `logprobs`, other `delta` keys such as `refusal`), so the gateway can pass it on.
    """

    delta: str = ""
    tool_call: ToolCallDelta | None = None
    reasoning: str = ""
    response: ChatResponse | None = None
    extra: dict[str, Any] | None = None
    signature: str | None = None  # the signature that closes the current reasoning block (Anthropic/Bedrock)
    signer: str | None = None  # who signed `signature` or `redacted` (ReasoningBlock.signer), set by the client
    # A redacted reasoning block, whole, in its place in the answer (Claude's redacted_thinking, which has no deltas):
    # a writer sends it there, and skips it in the final response's content, which holds it too.
    redacted: str | None = None
    # A provider block, whole, in its place in the answer (Anthropic's server tools' calls and results): a writer
    # sends it there; the final response's content holds it too.
    block: ProviderBlock | None = None
    # The citations of the text in `delta`, which is then a cited text block of its own, whole (Claude's citations).
    citations: list[dict[str, Any]] | None = None
    # The input and cache counts the upstream reported as its answer began (Anthropic's message_start), on the first
    # piece after them: a Messages API stream passes them on in its own message_start.
    start_usage: Usage | None = None
    # The service tier Anthropic's message_start said served the answer ("standard", "priority"), on the same piece.
    start_tier: str | None = None
    # And the speed it ran at (usage.speed: "fast" for fast mode, "standard"), which the SDKs read there alone.
    start_speed: str | None = None

    @property
    def has_content(self) -> bool:
        return bool(self.delta or self.tool_call or self.reasoning or self.redacted or self.block)

    @property
    def refusal(self) -> str | None:
        """The refusal text an OpenAI-format model streamed on this piece (`delta.refusal`), which a writer of another
        API's stream sends as the answer's text."""
        return ((self.extra or {}).get("delta") or {}).get("refusal")
