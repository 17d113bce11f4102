"""OpenAI and any OpenAI-compatible server, through the official `openai` SDK."""

from __future__ import annotations

import json
import logging
import os
import time
from collections.abc import Iterator
from dataclasses import replace
from typing import Any
from urllib.parse import urlsplit

from tokenomy.chat_response import ChatResponse, StreamChunk, Usage
from tokenomy.errors import ProviderError, remember_secret, scrub
from tokenomy.messages import ChatRequest, ProviderBlock, TextBlock
from tokenomy.providers import openai_dialects, openai_stream, openai_wire, openai_wire_read
from tokenomy.providers.base import DEFAULT_TIMEOUT_S, Provider, url_server
from tokenomy.providers.http_faults import (
    answer_broke_off,
    exceeds_context_window,
    read_timed_out,
    retry_after_seconds,
)
from tokenomy.providers.refusals import MAX_CACHE_POINTS, Unsupported

log = logging.getLogger(__name__)


def map_openai_error(exc: Exception) -> ProviderError:
    """Fold the SDK's exceptions into Tokenomy's four error kinds."""
    import openai

    status = getattr(exc, "status_code", None)
    retry_after = retry_after_seconds(getattr(getattr(exc, "response", None), "headers", None))
    # A 200 whose body (or a stream line's data) is no JSON, as a proxy's error page is: the SDK lets the decoder's
    # error through. The server answered (and bills it): its fault, recorded at the estimate, as AsyncOpenAIUpstream's.
    if isinstance(exc, json.JSONDecodeError):
        return ProviderError(f"the server sent an answer that is no JSON: {exc}", kind="server_error", reached=True)
    if isinstance(exc, openai.APITimeoutError):
        # A read timeout: the request went out and the server was still working on it (billing it).
        return ProviderError(f"timed out: {exc}", kind="timeout", reached=read_timed_out(exc))
    if isinstance(exc, openai.APIConnectionError):
        if answer_broke_off(exc):  # the server answered (and bills it): the connection broke while its body came
            return ProviderError(f"the answer broke off: {exc.__cause__}", kind="server_error", reached=True)
        url = getattr(getattr(exc, "request", None), "url", None) or "the server"
        return ProviderError(
            f"cannot reach {url}: {exc} Check the model's base_url (config) or OPENAI_BASE_URL, "
            "and that the server is up",
            kind="server_error",
        )
    code = getattr(exc, "code", None)  # the API's error.code, as the SDK read it
    code = code if isinstance(code, str) else None
    if status == 429:  # its code tells a spent quota (insufficient_quota, not retried) from a rate limit
        return ProviderError(str(exc), kind="throttled", retry_after=retry_after, status=status, code=code)
    if status == 408:  # the server timed out waiting: retryable, as for the other providers
        return ProviderError(str(exc), kind="timeout", retry_after=retry_after, status=status)
    if status is not None and 400 <= status < 500:
        too_long = exceeds_context_window(code, str(exc))
        error = ProviderError(str(exc), kind="client_error", status=status, code=code, context_window=too_long)
        detail = getattr(exc, "body", None)  # the API's `error` object, as the SDK read it
        error.innererror = openai_wire_read.innererror(detail)
        error.upstream_param = openai_wire_read.upstream_param(detail)
        return error
    return ProviderError(str(exc), kind="server_error", retry_after=retry_after, status=status)


def openai_key(api_key_env: str | None) -> str:
    """The key for an OpenAI-format server: the variable the model names, and only it (an unset one never falls back
    to OPENAI_API_KEY, which would send the OpenAI key to another server); else OPENAI_API_KEY. Local
    OpenAI-compatible servers accept any key, and the SDK insists on one being set: a placeholder stands in."""
    key = os.environ.get(api_key_env) if api_key_env else os.environ.get("OPENAI_API_KEY")
    return remember_secret(key) or "not-needed"


def usage_from_openai(usage: Any) -> Usage:
    """Usage from the SDK's CompletionUsage model (cached tokens split out of prompt_tokens)."""
    return openai_wire_read.usage_from_dict(usage.model_dump() if usage is not None else None)


def _audio_refused(request: ChatRequest, found: Unsupported) -> bool:
    """Whether `found` is the base refusal of an audio part Chat Completions takes as `input_audio`: the content
    model has no audio block, so it is Gemini's own part (`ProviderBlock`), which every other provider refuses."""
    if found.message is None or found.block is None or found.part is not None:
        return False
    block = request.messages[found.message].content[found.block]
    return type(block) is ProviderBlock and openai_wire.input_audio(block) is not None


def _without_audio(request: ChatRequest) -> ChatRequest:
    """`request` with each audio part Chat Completions takes in its place as empty text, so the rest is checked with
    the places it has (refusals name a block by its index)."""
    messages = [
        replace(
            m,
            content=[
                TextBlock("") if type(b) is ProviderBlock and openai_wire.input_audio(b) is not None else b
                for b in m.content
            ],
        )
        for m in request.messages
    ]
    return replace(request, messages=messages)


class OpenAIProvider(Provider):
    """Chat Completions with streaming; usage comes from the final stream chunk."""

    name = "openai"
    accepts_extra = None  # any pass-through field: the caller named it for this API
    accepts_names = True
    accepts_user = True  # `user`
    accepts_freeform = True  # custom tools and their calls (openai_wire)
    accepts_openai_fields = True  # a message's own fields sent back (OpenRouter's reasoning_details)
    file_apis = frozenset({"openai"})  # file ids of OpenAI's Files API (a chat `file` part's file_id)
    ask_usage = True  # a stream asks for its usage (openai_dialects.asks_for_usage)
    empty_call_content = False  # a tool-calling turn without text goes as content "" (the model's setting)
    # OpenAI's own API, which refuses what compatible servers take (`openai_dialects.openai_proper_refusal`)
    openai_proper = False
    completion_cap = False  # the cap goes as max_completion_tokens (`openai_wire.request_body`): OpenAI's own API

    def __init__(
        self,
        base_url: str | None = None,
        api_key: str | None = None,
        api_key_env: str | None = None,
        timeout: float = DEFAULT_TIMEOUT_S,
        max_retries: int = 0,
        empty_call_content: bool = False,
    ) -> None:
        import openai

        key = api_key or openai_key(api_key_env)
        self.client = openai.OpenAI(base_url=base_url, api_key=key, timeout=timeout, max_retries=max_retries)
        self.base_url = base_url
        self.server = url_server(str(self.client.base_url))  # the SDK's default (OPENAI_BASE_URL, OpenAI's) too
        self.openai_proper = self.completion_cap = openai_dialects.is_openai_proper(str(self.client.base_url))
        self.ask_usage = openai_dialects.asks_for_usage(base_url)
        self.empty_call_content = empty_call_content

    def body(self, request: ChatRequest, stream: bool = False) -> dict[str, Any]:
        """The Chat Completions body this upstream is sent for `request`."""
        return openai_wire.request_body(request, stream, self.ask_usage, self.empty_call_content, self.completion_cap)

    def _params(self, request: ChatRequest, stream: bool = False) -> dict[str, Any]:
        """The SDK's named arguments; every other body field goes through `extra_body` untouched."""
        body = self.body(request, stream)
        named = {"model": body.pop("model"), "messages": body.pop("messages")}
        if body.pop("stream", False):
            named["stream"] = True
        return {**named, "extra_body": body}

    def map_error(self, exc: Exception) -> ProviderError:
        error = map_openai_error(exc)
        if error.status != 404 or not self.base_url or urlsplit(self.base_url).path.rstrip("/").endswith("/v1"):
            return error
        # A server's bare 404 ("Error code: 404") for a base_url without /v1 says nothing of the usual cause.
        url = f"{self.base_url.rstrip('/')}/chat/completions"
        return ProviderError(
            f"{error} (POST {url}): OpenAI-compatible servers (vLLM, Ollama, LM Studio) serve the API under /v1; "
            f"check the model's base_url (e.g. {self.base_url.rstrip('/')}/v1) and the model name",
            error.kind,
            error.retry_after,
            404,
        )

    def refusal(self, request: ChatRequest) -> Unsupported | None:
        found = super().refusal(request)
        if found is not None and _audio_refused(request, found):  # (rare: the request carries audio)
            return self.refusal(_without_audio(request))
        return (
            found
            or openai_wire.refusal(request)
            or (openai_dialects.openai_proper_refusal(request) if self.openai_proper else None)
        )

    def carries_cache_points(self, request: ChatRequest) -> bool:
        return openai_dialects.takes_cache_control(request.model)  # Claude by its name; the others cache by themselves

    def cache_point_limit(self, request: ChatRequest) -> int | None:  # Claude's, where they reach it
        return MAX_CACHE_POINTS if openai_dialects.takes_cache_control(request.model) else None

    def no_one_hour_cache(self, request: ChatRequest) -> str:
        if openai_dialects.takes_cache_control(request.model):  # Claude behind OpenRouter or LiteLLM: it has one
            return (
                "the OpenAI format's usage does not say which cache writes were 1-hour ones, so they could not be "
                "priced; send a 5-minute point, or reach Claude through Anthropic's API or Bedrock"
            )
        return super().no_one_hour_cache(request)

    def stream(self, request: ChatRequest) -> Iterator[StreamChunk]:
        import openai

        self.check(request)
        start = time.perf_counter()
        ttft = None
        assembler = openai_stream.StreamAssembler(request)
        try:
            for chunk in self.client.chat.completions.create(**self._params(request, stream=True)):
                for piece in assembler.feed(chunk.model_dump(exclude_unset=True)):
                    if ttft is None and piece.has_content:
                        ttft = (time.perf_counter() - start) * 1000
                    yield piece
        except (openai.OpenAIError, json.JSONDecodeError) as exc:  # an in-stream error event is an SDK APIError
            raise self.map_error(exc) from exc
        assembler.check_complete(False)  # the SDK swallows [DONE]: a finish_reason is the only sign of a whole answer
        response = assembler.response(self.name, (time.perf_counter() - start) * 1000, ttft)
        if response.raw["usage_source"] == "estimated":
            log.warning("%s sent no usage in its stream; token counts are estimated", scrub(self.base_url or "server"))
        yield StreamChunk(response=response)

    def chat(self, request: ChatRequest) -> ChatResponse:
        import openai

        self.check(request)
        start = time.perf_counter()
        try:
            result = self.client.chat.completions.create(**self._params(request))
        except (openai.OpenAIError, json.JSONDecodeError) as exc:
            raise self.map_error(exc) from exc
        if isinstance(result, str):
            # A 200 not labelled JSON (a proxy's text/html page), which the SDK hands back as its text: the server's
            # fault as a body that is no JSON is (it answered, and bills it), not an AttributeError's 500.
            said = f"the server sent an answer that is no JSON: {result[:200]!r}"
            raise ProviderError(said, kind="server_error", reached=True)
        response = openai_wire_read.parse_completion(
            result.model_dump(exclude_unset=True), request, self.name, (time.perf_counter() - start) * 1000
        )
        if response.raw.get("usage_source") == "estimated":
            log.warning("%s sent no usage in its answer; token counts are estimated", scrub(self.base_url or "server"))
        return response

    def close(self) -> None:
        self.client.close()
