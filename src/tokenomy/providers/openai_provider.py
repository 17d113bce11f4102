"""OpenAI and any OpenAI-compatible server, through the official `openai` SDK."""

from __future__ import annotations

import logging
import os
import time
from typing import Any, Iterator

from tokenomy.errors import ProviderError
from tokenomy.messages import ChatRequest, ChatResponse, StreamChunk, Usage
from tokenomy.providers.base import Provider

log = logging.getLogger(__name__)


def to_openai_messages(request: ChatRequest) -> list[dict[str, Any]]:
    messages: list[dict[str, Any]] = []
    if request.system:
        messages.append({"role": "system", "content": request.system})
    messages += [{"role": m.role, "content": m.text} for m in request.messages]
    return messages


def usage_from_openai(usage: Any) -> Usage:
    """OpenAI reports cached tokens inside prompt_tokens; Usage keeps them apart."""
    if usage is None:
        return Usage()
    prompt = int(getattr(usage, "prompt_tokens", 0) or 0)
    details = getattr(usage, "prompt_tokens_details", None)
    cached = int(getattr(details, "cached_tokens", 0) or 0) if details is not None else 0
    return Usage(input_tokens=prompt - cached, output_tokens=int(getattr(usage, "completion_tokens", 0) or 0),
                 cache_read_tokens=cached)


def map_openai_error(exc: Exception) -> ProviderError:
    """Fold the SDK's exceptions into Tokenomy's four error kinds."""
    import openai

    status = getattr(exc, "status_code", None)
    retry_after = None
    response = getattr(exc, "response", None)
    if response is not None:
        try:
            retry_after = float(response.headers.get("retry-after")) if response.headers.get("retry-after") else None
        except (TypeError, ValueError):
            retry_after = None
    if isinstance(exc, openai.APITimeoutError):
        return ProviderError(f"timed out: {exc}", kind="timeout")
    if isinstance(exc, openai.APIConnectionError):
        url = getattr(getattr(exc, "request", None), "url", None) or "the server"
        return ProviderError(f"cannot reach {url}: {exc} Check the model's base_url (config) or OPENAI_BASE_URL, "
                             "and that the server is up", kind="server_error")
    if status == 429:
        return ProviderError(str(exc), kind="throttled", retry_after=retry_after, status=status)
    if status is not None and 400 <= status < 500:
        return ProviderError(str(exc), kind="client_error", status=status)
    return ProviderError(str(exc), kind="server_error", retry_after=retry_after, status=status)


class OpenAIProvider(Provider):
    """Chat Completions with streaming; usage comes from the final stream chunk."""

    name = "openai"

    def __init__(self, base_url: str | None = None, api_key: str | None = None, api_key_env: str | None = None,
                 timeout: float = 120.0, max_retries: int = 0) -> None:
        import openai

        key = api_key or (os.environ.get(api_key_env) if api_key_env else None) or os.environ.get("OPENAI_API_KEY")
        # Local OpenAI-compatible servers accept any key; the SDK insists on one being set.
        self.client = openai.OpenAI(base_url=base_url, api_key=key or "not-needed", timeout=timeout,
                                    max_retries=max_retries)
        self.base_url = base_url

    def _params(self, request: ChatRequest) -> dict[str, Any]:
        params: dict[str, Any] = {"model": request.model, "messages": to_openai_messages(request)}
        if request.max_tokens is not None:
            params["max_tokens"] = request.max_tokens
        if request.temperature is not None:
            params["temperature"] = request.temperature
        if request.stop:
            params["stop"] = request.stop
        if request.tools:
            params["tools"] = [{"type": "function", "function": {"name": t.name, "description": t.description or "",
                                                                 "parameters": t.input_schema}} for t in request.tools]
        if request.json_schema:
            params["response_format"] = {"type": "json_object"}
        return params

    def stream(self, request: ChatRequest) -> Iterator[StreamChunk]:
        import openai

        start = time.perf_counter()
        ttft = None
        pieces: list[str] = []
        finish = "stop"
        usage = None
        model = request.model
        try:
            stream = self.client.chat.completions.create(**self._params(request), stream=True,
                                                         stream_options={"include_usage": True})
            for chunk in stream:
                model = getattr(chunk, "model", None) or model
                if getattr(chunk, "usage", None) is not None:
                    usage = chunk.usage
                for choice in chunk.choices or []:
                    delta = getattr(choice.delta, "content", None) or ""
                    if delta:
                        if ttft is None:
                            ttft = (time.perf_counter() - start) * 1000
                        pieces.append(delta)
                        yield StreamChunk(delta=delta)
                    if choice.finish_reason:
                        finish = choice.finish_reason
        except openai.OpenAIError as exc:
            raise map_openai_error(exc) from exc
        latency = (time.perf_counter() - start) * 1000
        raw = {"served_model": model, "usage_source": "reported"}
        if usage is None:
            # Some OpenAI-compatible servers ignore stream_options.include_usage; estimate rather than
            # record zero, and say so (one delta per token; ~4 characters per prompt token).
            log.warning("%s sent no usage in its stream; token counts are estimated", self.base_url or "server")
            raw["usage_source"] = "estimated"
            prompt_chars = len(request.system or "") + sum(len(m.text) for m in request.messages)
            counted = Usage(input_tokens=max(1, prompt_chars // 4), output_tokens=len(pieces))
        else:
            counted = usage_from_openai(usage)
        yield StreamChunk(response=ChatResponse.of_text(
            "".join(pieces), model=request.model, provider=self.name, usage=counted,
            finish_reason=finish, latency_ms=latency, ttft_ms=ttft, region="global", raw=raw))

    def chat(self, request: ChatRequest) -> ChatResponse:
        import openai

        start = time.perf_counter()
        try:
            result = self.client.chat.completions.create(**self._params(request))
        except openai.OpenAIError as exc:
            raise map_openai_error(exc) from exc
        latency = (time.perf_counter() - start) * 1000
        choice = result.choices[0]
        return ChatResponse.of_text(choice.message.content or "", model=request.model, provider=self.name,
                            usage=usage_from_openai(result.usage), finish_reason=choice.finish_reason or "stop",
                            latency_ms=latency, ttft_ms=None, region="global", raw={"served_model": result.model})

    def close(self) -> None:
        self.client.close()
