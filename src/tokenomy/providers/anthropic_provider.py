"""Anthropic's Messages API through the official `anthropic` SDK, with `cache_control` cache points.

Usage: Anthropic's `input_tokens` counts only the tokens after the last cache breakpoint (neither
read from nor written to the cache); `cache_read_input_tokens` and `cache_creation_input_tokens`
are separate. That matches `Usage.input_tokens`, so the fields map one to one.
"""

from __future__ import annotations

import os
import time
from typing import Any, Iterator

from tokenomy.errors import ConfigError, ProviderError
from tokenomy.messages import ChatRequest, ChatResponse, StreamChunk, ToolSpec, Usage
from tokenomy.providers.base import Provider
from tokenomy.providers.bedrock import _is_loopback

EPHEMERAL = {"type": "ephemeral"}
# The Messages API requires max_tokens; used when a request sets no cap.
DEFAULT_MAX_TOKENS = 1024
FINISH_REASONS = {"end_turn": "stop", "stop_sequence": "stop", "max_tokens": "length", "tool_use": "tool_calls",
                  "refusal": "content_filter", "model_context_window_exceeded": "length", "pause_turn": "stop"}


def to_anthropic_tools(tools: list[ToolSpec], cache_last: bool) -> list[dict[str, Any]]:
    """Anthropic's tool definitions; the last one carries cache_control when the tools are a cache point."""
    out: list[dict[str, Any]] = []
    for tool in tools:
        item: dict[str, Any] = {"name": tool.name, "input_schema": tool.input_schema}
        if tool.description:
            item["description"] = tool.description
        out.append(item)
    if cache_last and out:
        out[-1]["cache_control"] = dict(EPHEMERAL)
    return out


def to_anthropic_params(request: ChatRequest) -> dict[str, Any]:
    """Map a ChatRequest to Messages API arguments, with cache_control on the block before each cache point."""
    params: dict[str, Any] = {"model": request.model, "max_tokens": int(request.max_tokens or DEFAULT_MAX_TOKENS)}
    if request.system:
        params["system"] = ([{"type": "text", "text": request.system, "cache_control": dict(EPHEMERAL)}]
                            if request.system_cache_point else request.system)
    messages = []
    for message in request.messages:
        if message.cache_point:
            content: Any = [{"type": "text", "text": message.text, "cache_control": dict(EPHEMERAL)}]
        else:
            content = message.text
        messages.append({"role": message.role, "content": content})
    params["messages"] = messages
    if request.temperature is not None:
        params["temperature"] = float(request.temperature)
    if request.stop:
        params["stop_sequences"] = list(request.stop)
    if request.tools:
        params["tools"] = to_anthropic_tools(request.tools, request.tools_cache_point)
    return params


def usage_from_anthropic(usage: Any) -> Usage:
    if usage is None:
        return Usage()
    return Usage(input_tokens=int(getattr(usage, "input_tokens", 0) or 0),
                 output_tokens=int(getattr(usage, "output_tokens", 0) or 0),
                 cache_read_tokens=int(getattr(usage, "cache_read_input_tokens", 0) or 0),
                 cache_write_tokens=int(getattr(usage, "cache_creation_input_tokens", 0) or 0))


def map_anthropic_error(exc: Exception) -> ProviderError:
    """Fold the SDK's exceptions into Tokenomy's four error kinds."""
    import anthropic

    if isinstance(exc, anthropic.APITimeoutError):
        return ProviderError(f"Anthropic call timed out: {exc}", kind="timeout")
    if isinstance(exc, anthropic.APIConnectionError):
        return ProviderError(f"cannot reach the Anthropic API: {exc}", kind="server_error")
    status = getattr(exc, "status_code", None)
    retry_after = None
    response = getattr(exc, "response", None)
    if response is not None:
        try:
            value = response.headers.get("retry-after")
            retry_after = max(0.0, float(value)) if value is not None else None
        except (TypeError, ValueError):
            retry_after = None
    message = f"Anthropic {type(exc).__name__}: {getattr(exc, 'message', None) or exc}"
    if isinstance(exc, anthropic.RateLimitError) or status == 429:
        return ProviderError(message, kind="throttled", retry_after=retry_after, status=429)
    if status == 408:
        return ProviderError(message, kind="timeout", retry_after=retry_after, status=status)
    if status is not None and 400 <= status < 500:
        return ProviderError(message, kind="client_error", status=status)
    return ProviderError(message, kind="server_error", retry_after=retry_after, status=status)


class AnthropicProvider(Provider):
    """Messages API; `stream` measures time to first token from the first text delta."""

    name = "anthropic"

    def __init__(self, base_url: str | None = None, api_key_env: str | None = None, api_key: str | None = None,
                 timeout: float = 120.0) -> None:
        import anthropic

        key = api_key or (os.environ.get(api_key_env) if api_key_env else None) or os.environ.get("ANTHROPIC_API_KEY")
        base = base_url or os.environ.get("ANTHROPIC_BASE_URL")
        if not key and _is_loopback(base):
            key = "tokenomy-local"  # a local emulator accepts any key
        if not key:
            raise ConfigError(f"no Anthropic API key: set {api_key_env or 'ANTHROPIC_API_KEY'} "
                              "(or name another variable with api_key_env in the model config)")
        # Tokenomy's retry layer owns retries (one ledger row per attempt), so the SDK must not retry.
        self.client = anthropic.Anthropic(api_key=key, base_url=base, timeout=timeout, max_retries=0)
        self.base_url = base

    def chat(self, request: ChatRequest) -> ChatResponse:
        import anthropic

        start = time.perf_counter()
        try:
            result = self.client.messages.create(**to_anthropic_params(request))
        except anthropic.AnthropicError as exc:
            raise map_anthropic_error(exc) from exc
        latency = (time.perf_counter() - start) * 1000
        text = "".join(getattr(block, "text", "") for block in result.content if block.type == "text")
        raw = {"served_model": result.model, "message_id": result.id}
        tool_uses = [block.model_dump() for block in result.content if block.type == "tool_use"]
        if tool_uses:
            raw["tool_uses"] = tool_uses
        return ChatResponse.of_text(text, model=request.model, provider=self.name, usage=usage_from_anthropic(result.usage),
                            finish_reason=FINISH_REASONS.get(result.stop_reason or "end_turn", "stop"),
                            latency_ms=latency, ttft_ms=None, region="global", raw=raw)

    def stream(self, request: ChatRequest) -> Iterator[StreamChunk]:
        import anthropic

        start = time.perf_counter()
        ttft = None
        pieces: list[str] = []
        usage = Usage()
        stop_reason = None
        raw: dict[str, Any] = {}
        try:
            for event in self.client.messages.create(**to_anthropic_params(request), stream=True):
                if event.type == "message_start":
                    usage = usage_from_anthropic(event.message.usage)
                    raw.update(served_model=event.message.model, message_id=event.message.id)
                elif event.type == "content_block_delta" and getattr(event.delta, "type", "") == "text_delta":
                    if event.delta.text:
                        if ttft is None:
                            ttft = (time.perf_counter() - start) * 1000
                        pieces.append(event.delta.text)
                        yield StreamChunk(delta=event.delta.text)
                elif event.type == "message_delta":
                    stop_reason = event.delta.stop_reason or stop_reason
                    # message_delta carries the final output count; later API versions repeat input/cache counts.
                    final = usage_from_anthropic(event.usage)
                    usage = Usage(input_tokens=final.input_tokens or usage.input_tokens,
                                  output_tokens=final.output_tokens,
                                  cache_read_tokens=final.cache_read_tokens or usage.cache_read_tokens,
                                  cache_write_tokens=final.cache_write_tokens or usage.cache_write_tokens)
        except anthropic.AnthropicError as exc:
            raise map_anthropic_error(exc) from exc
        latency = (time.perf_counter() - start) * 1000
        yield StreamChunk(response=ChatResponse.of_text(
            "".join(pieces), model=request.model, provider=self.name, usage=usage,
            finish_reason=FINISH_REASONS.get(stop_reason or "end_turn", "stop"), latency_ms=latency,
            ttft_ms=ttft, region="global", raw=raw))

    def close(self) -> None:
        self.client.close()
