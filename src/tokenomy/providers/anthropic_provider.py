"""Anthropic's Messages API through the official `anthropic` SDK, with `cache_control` cache points.

Usage: Anthropic's `input_tokens` counts only the tokens after the last cache breakpoint (neither
read from nor written to the cache); `cache_read_input_tokens` and `cache_creation_input_tokens`
are separate. That matches `Usage.input_tokens`, so the fields map one to one; `cache_creation` splits the writes
by lifetime (`ephemeral_1h_input_tokens` is `Usage.cache_write_1h_tokens`).
"""

from __future__ import annotations

import json
import os
import time
from collections.abc import Iterator
from dataclasses import replace
from typing import Any

from tokenomy.chat_response import ChatResponse, StreamChunk, ToolCallDelta, Usage
from tokenomy.errors import ConfigError, ProviderError, remember_secret
from tokenomy.messages import CLAUDE_SIGNED, ChatRequest, ProviderBlock
from tokenomy.providers.anthropic_faults import map_anthropic_error, not_a_message
from tokenomy.providers.anthropic_mapping import FINISH_REASONS, answer_blocks, default_max_tokens, to_anthropic_params
from tokenomy.providers.anthropic_refusals import refuse, refuse_blocks, refuse_unsupported
from tokenomy.providers.anthropic_stream import AnthropicStreamAssembler
from tokenomy.providers.base import DEFAULT_TIMEOUT_S, Provider, delta_chunk, is_loopback, outlasts, url_server
from tokenomy.providers.block_refusals import ALL_BLOCKS, DOCUMENT_FIELDS
from tokenomy.providers.claude_speed import FAST_MODE_BETA, needs_fast_beta
from tokenomy.providers.http_faults import http_errors
from tokenomy.providers.refusals import MAX_CACHE_POINTS, fields_to_carry
from tokenomy.providers.usage_counts import (
    answered_count,
    checked_counts,
    estimated_usage,
    usage_count,
    with_estimated,
)

SAMPLING = ("temperature", "top_p", "top_k")
SAMPLING_API_VERSION = "2023-06-01"  # the API version that still takes SAMPLING (2026-10-21 refuses them)
# A request's `extra` key holding the caller's `anthropic-beta` header (beta features of the Messages API), sent
# on as that header rather than in the body.
BETA_HEADER = "anthropic-beta"
# The fields of a mapped request that `messages.count_tokens` takes: what the model reads, not how it answers.
COUNTED = frozenset({"model", "messages", "system", "tools", "tool_choice", "thinking", "output_config"})


def _stop_sequence(stop_reason: str | None, matched: str | None) -> str | None:
    """ChatResponse.stop_sequence: the matched one; "" when the answer says a stop sequence ended it, not which."""
    return (matched or "") if stop_reason == "stop_sequence" else None


# Anthropic's Messages API has a service_tier of its own, whose "auto" is its default: carried as the caller sent it.
ANTHROPIC_OWN: dict[str, tuple[Any, ...]] = {"service_tier": ("auto",)}


def _extra_body(request: ChatRequest, params: dict[str, Any]) -> tuple[dict[str, Any], Any]:
    """The caller's pass-through fields for the body, and its anthropic-beta header (the gateway's /v1/messages),
    with the fast-mode beta added where the model's fast mode needs it (`claude_speed`).
    A pass-through `output_config` (its effort, say) joins the one mapped from the request (its JSON schema), since
    the body's copy would replace the mapped one whole."""
    extra = fields_to_carry(request.extra, own=ANTHROPIC_OWN)
    beta = extra.pop(BETA_HEADER, None)
    if extra.get("speed") == "fast" and needs_fast_beta(request.model):  # else the API runs it at standard speed
        betas = [b.strip() for b in str(beta or "").split(",") if b.strip()]
        beta = ",".join(betas if FAST_MODE_BETA in betas else [*betas, FAST_MODE_BETA])
    sent, mapped = extra.get("output_config"), params.get("output_config")
    if isinstance(sent, dict) and mapped:
        twice = sorted(set(sent) & set(mapped))
        if twice:
            raise refuse(
                request.model,
                f"output_config.{twice[0]}",
                "is set twice: in output_config and by the request's own field (reasoning effort, response format)",
            )
        params["output_config"] = {**sent, **mapped}
        del extra["output_config"]
    return extra, beta


def usage_from_anthropic(usage: Any) -> Usage:
    if usage is None:
        return Usage()
    # The SDK's Usage types cache_creation; a stream's message_delta keeps it, if sent, as an untyped dict.
    creation = getattr(usage, "cache_creation", None)
    creation = creation if isinstance(creation, dict) else vars(creation) if creation is not None else {}
    one_hour = creation.get("ephemeral_1h_input_tokens")

    def count(name: str) -> int:  # the SDK builds its answer unchecked: each count is as Anthropic sent it
        return usage_count(getattr(usage, name, None), "Anthropic", name)

    counted = Usage(
        input_tokens=count("input_tokens"),
        output_tokens=count("output_tokens"),
        cache_read_tokens=count("cache_read_input_tokens"),
        cache_write_tokens=count("cache_creation_input_tokens"),
        cache_write_1h_tokens=usage_count(one_hour, "Anthropic", "cache_creation.ephemeral_1h_input_tokens"),
    )
    return checked_counts(counted, "Anthropic")


def counts(usage: Any, name: str) -> bool:
    """Whether an answer's usage gives the count `name` (input_tokens, output_tokens): an Anthropic-format server may
    send `usage: {}` or nulls, which count nothing (`usage_counts.with_estimated` estimates them)."""
    return getattr(usage, name, None) is not None


def served_tier(usage: Any) -> str | None:
    """The service tier an answer's usage says served it (`usage.service_tier`: "standard", "priority", "batch"), for
    `ChatResponse.raw["service_tier"]`, which the gateway's Messages API answer passes on; None when it names none."""
    tier = getattr(usage, "service_tier", None)
    return tier if isinstance(tier, str) and tier else None


def served_speed(usage: Any) -> str | None:
    """The speed an answer's usage says it ran at (`usage.speed`: "standard", or "fast" for fast mode, billed at its
    own prices), for `ChatResponse.raw["speed"]`, where the recorder reads it; None when it names none."""
    speed = getattr(usage, "speed", None)
    return speed if isinstance(speed, str) and speed else None


def server_tool_use(usage: Any) -> dict[str, Any] | None:
    """An answer's `usage.server_tool_use` (web searches and fetches Anthropic ran, and bills), for
    `ChatResponse.raw["server_tool_use"]`, where the recorder prices them (pricing/server_tools.py)."""
    used = getattr(usage, "server_tool_use", None)
    if used is None:
        return None
    return used.model_dump(exclude_none=True) if hasattr(used, "model_dump") else dict(used)


class AnthropicProvider(Provider):
    """Messages API; `stream` measures time to first token from the first content delta."""

    name = "anthropic"
    # No pass-through field is taken in `refusal`: the callers that ask it with `extra` are the OpenAI-format
    # ingresses (chat completions, the Responses API), whose fields (store, logprobs, ...) Anthropic's API refuses
    # after the call ("Extra inputs are not permitted"), so they are refused by name before it. Anthropic's own
    # fields (a /v1/messages caller's, a library caller's) are carried as sent (`_extra_body`): those paths ask
    # `refusal` without `extra` (gateway.calls.refusal, the client's `_check_inputs`) and `mapping_refusal` checks them.
    accepts_extra: frozenset[str] | None = frozenset()
    accepts_user = True  # metadata.user_id
    accepts_1h_cache = True  # cache_control ttl "1h"
    accepts_blocks = (*ALL_BLOCKS, ProviderBlock)  # server tools' calls and results, sent back as they came
    accepts_server_tools = True  # web search, web fetch: Anthropic's API runs them (and bills them)
    accepts_zero_output = True  # max_tokens 0: the prompt is read into the cache and nothing is generated
    refuses_empty_text = True  # "text content blocks must be non-empty"
    takes_empty_final_assistant = True  # "...non-empty content except for the optional final assistant message"
    accepts_document_fields = DOCUMENT_FIELDS  # citations, context, url and content sources: sent as the API has them
    file_apis = frozenset({"anthropic"})  # a `file` source's id, of Anthropic's Files API

    def reasoning_signer(self, model: str) -> str | None:
        return CLAUDE_SIGNED

    def cache_point_limit(self, request: ChatRequest) -> int | None:
        return MAX_CACHE_POINTS

    def mapping_refusal(self, request: ChatRequest, model: str) -> ProviderError | None:
        try:
            refuse_unsupported(request, model)  # what to_anthropic_params refuses first
            refuse_blocks(request, model)  # and what block_to_anthropic refuses of a block
        except ProviderError as exc:
            return exc
        return None

    def default_cap(self, request: ChatRequest, most: int | None = None) -> int:
        return default_max_tokens(request, most)  # the Messages API requires max_tokens

    def __init__(
        self,
        base_url: str | None = None,
        api_key_env: str | None = None,
        api_key: str | None = None,
        timeout: float = DEFAULT_TIMEOUT_S,
    ) -> None:
        import anthropic

        # The variable the model names, and only it: an unset one never falls back to ANTHROPIC_API_KEY, which would
        # send that key to whatever server this model's base_url points at.
        key = remember_secret(api_key or os.environ.get(api_key_env or "ANTHROPIC_API_KEY"))
        base = base_url or os.environ.get("ANTHROPIC_BASE_URL")
        if not key and is_loopback(base):
            key = "tokenomy-local"  # a local emulator accepts any key
        if not key:
            raise ConfigError(
                f"no Anthropic API key: set {api_key_env or 'ANTHROPIC_API_KEY'} "
                "(or name another variable with api_key_env in the model config)"
            )
        # Tokenomy's retry layer owns retries (one ledger row per attempt), so the SDK must not retry. The timeout
        # given (seconds of silence, the model's timeout_s) also keeps the SDK from refusing a call that is not streamed
        # whose max_tokens implies over 10 minutes (`_calculate_nonstreaming_timeout`, asked only with the SDK's own
        # default timeout): an uncapped request is sent its model's maximum output (Sonnet 4.5's 64,000).
        self.client = anthropic.Anthropic(api_key=key, base_url=base, timeout=timeout, max_retries=0)
        self.timeout = timeout
        self.base_url = base
        self.server = url_server(str(self.client.base_url))

    def _params(self, request: ChatRequest) -> dict[str, Any]:
        params = to_anthropic_params(request)  # refuses unsupported fields before any call
        # anthropic 2.x sends API version 2026-10-21, which refuses temperature/top_p/top_k, and dropped them
        # from `messages.create`'s keywords. API version 2023-06-01 still takes them: a request that sets one
        # is sent with that version and the values in the body (extra_body works on every SDK version).
        sampling = {name: params.pop(name) for name in SAMPLING if name in params}
        extra, beta = _extra_body(request, params)
        body = {**sampling, **extra}  # extra: provider-specific fields, carried as sent
        if body:
            params["extra_body"] = body
        headers = {"anthropic-version": SAMPLING_API_VERSION} if sampling else {}
        if beta:
            headers[BETA_HEADER] = str(beta)
        if headers:
            params["extra_headers"] = headers
        return params

    def count_tokens(self, request: ChatRequest) -> int:
        """Anthropic's `messages.count_tokens` on the request as `chat` maps it, without the fields that shape only
        the answer (max_tokens, sampling, stop sequences, metadata), which the counting endpoint refuses."""
        import anthropic

        params = {k: v for k, v in to_anthropic_params(request).items() if k in COUNTED}
        extra, beta = _extra_body(request, params)
        if extra:
            params["extra_body"] = extra
        if beta:
            params["extra_headers"] = {BETA_HEADER: str(beta)}
        try:
            result = self.client.messages.count_tokens(**params)
        except (anthropic.AnthropicError, json.JSONDecodeError) as exc:  # a 200 that is no JSON: as for create
            raise map_anthropic_error(exc) from exc
        # The SDK builds its answer unchecked: the count is as Anthropic sent it, or missing.
        return answered_count(getattr(result, "input_tokens", None), "Anthropic", "input_tokens")

    def chat(self, request: ChatRequest) -> ChatResponse:
        import anthropic

        params = self._params(request)
        # A cap whose answer could outlast the timeout (an uncapped request is sent its model's maximum output,
        # Sonnet 4.5's 64,000) is sent as a stream and folded into one answer (`outlasts`). The caller sees a call
        # that was not streamed: no time to first token.
        if outlasts(params["max_tokens"], self.timeout):
            return replace(super().chat(request), ttft_ms=None)
        start = time.perf_counter()
        try:
            result = self.client.messages.create(**params)
        except (anthropic.AnthropicError, json.JSONDecodeError) as exc:
            raise map_anthropic_error(exc) from exc
        if not isinstance(result, anthropic.types.Message):
            raise not_a_message(result)
        latency = (time.perf_counter() - start) * 1000
        raw: dict[str, Any] = {"served_model": result.model, "message_id": result.id}
        content = answer_blocks([block.model_dump(exclude_none=True) for block in result.content])
        used = server_tool_use(result.usage)
        if used:
            raw["server_tool_use"] = used
        if result.stop_reason:  # Anthropic's own, which finish_reason generalises (as Bedrock's provider keeps it)
            raw["stop_reason"] = result.stop_reason
        tier, speed = served_tier(result.usage), served_speed(result.usage)
        if tier is not None:
            raw["service_tier"] = tier
        if speed is not None:
            raw["speed"] = speed
        return ChatResponse(
            content=content,
            model=request.model,
            provider=self.name,
            usage=with_estimated(
                usage_from_anthropic(result.usage),
                counts(result.usage, "input_tokens"),
                counts(result.usage, "output_tokens"),
                lambda: estimated_usage(request, content, raw),
            ),
            finish_reason=FINISH_REASONS.get(result.stop_reason or "end_turn", "stop"),
            latency_ms=latency,
            ttft_ms=None,
            region="global",
            raw=raw,
            stop_sequence=_stop_sequence(result.stop_reason, result.stop_sequence),
        )

    def stream(self, request: ChatRequest) -> Iterator[StreamChunk]:
        import anthropic

        params = self._params(request)
        start = time.perf_counter()
        ttft = None
        usage = Usage()
        prompt_counted = answer_counted = False  # the stream's usage counted its prompt, its answer
        stop_reason = stop_sequence = None
        stopped = False
        used = None  # the server tools' requests (web searches) the stream reported
        raw: dict[str, Any] = {}
        start_usage: Usage | None = None  # message_start's counts, until the first piece carries them
        start_tier: str | None = None  # and the service tier it names
        start_speed: str | None = None  # and the speed (fast mode's "fast")
        assembler = AnthropicStreamAssembler()
        # What the SDK raises for an error answer, and its HTTP client for a connection broken while reading the body.
        failures: tuple[type[Exception], ...] = (anthropic.AnthropicError, json.JSONDecodeError, *http_errors()[1])
        try:
            for event in self.client.messages.create(**params, stream=True):
                chunk = None
                if event.type == "message_start":
                    usage = usage_from_anthropic(event.message.usage)
                    prompt_counted = counts(event.message.usage, "input_tokens")
                    answer_counted = counts(event.message.usage, "output_tokens")
                    start_usage = usage
                    used = server_tool_use(event.message.usage)
                    raw.update(served_model=event.message.model, message_id=event.message.id)
                    start_tier = served_tier(event.message.usage)
                    if start_tier is not None:
                        raw["service_tier"] = start_tier
                    start_speed = served_speed(event.message.usage)
                    if start_speed is not None:
                        raw["speed"] = start_speed
                elif event.type == "content_block_start":
                    block = event.model_dump(exclude_none=True)
                    started = assembler.start(block)
                    if started is not None:
                        chunk = StreamChunk(tool_call=ToolCallDelta(*started))
                    elif block["content_block"].get("type") == "redacted_thinking":  # whole, in its place
                        chunk = StreamChunk(redacted=block["content_block"].get("data", ""))
                elif event.type == "content_block_delta":
                    chunk = delta_chunk(*assembler.delta(event.model_dump(exclude_none=True)))
                elif event.type == "content_block_stop":  # a cited text or a server tool's block: whole, in place
                    chunk = assembler.stop(event.model_dump(exclude_none=True))
                elif event.type == "message_delta":
                    stop_reason = event.delta.stop_reason or stop_reason
                    stop_sequence = event.delta.stop_sequence or stop_sequence
                    # message_delta carries the final output count; later API versions repeat input/cache counts.
                    final = usage_from_anthropic(event.usage)
                    prompt_counted = prompt_counted or counts(event.usage, "input_tokens")
                    answer_counted = counts(event.usage, "output_tokens")  # the answer's final count
                    used = server_tool_use(event.usage) or used  # its counts are the answer's totals
                    # The speed is message_start's (the SDK types it there only); one sent here too is priced.
                    late_speed = served_speed(event.usage)
                    if late_speed is not None:
                        raw["speed"] = late_speed
                    usage = Usage(
                        input_tokens=final.input_tokens or usage.input_tokens,
                        output_tokens=final.output_tokens,
                        cache_read_tokens=final.cache_read_tokens or usage.cache_read_tokens,
                        cache_write_tokens=final.cache_write_tokens or usage.cache_write_tokens,
                        cache_write_1h_tokens=final.cache_write_1h_tokens or usage.cache_write_1h_tokens,
                    )
                elif event.type == "message_stop":
                    stopped = True
                if chunk is not None:
                    if ttft is None:
                        ttft = (time.perf_counter() - start) * 1000
                    chunk.start_usage, start_usage = start_usage, None
                    chunk.start_tier, start_tier = start_tier, None
                    chunk.start_speed, start_speed = start_speed, None
                    yield chunk
        except failures as exc:
            raise map_anthropic_error(exc) from exc
        if not stopped:  # the body ended before message_stop: part of an answer, not an answer
            # It was answered 200, so it is billed (its prompt at least) even when no content came: `reached`.
            raise ProviderError(
                "Anthropic stream ended before the answer was complete (no message_stop)",
                kind="server_error",
                reached=True,
            )
        latency = (time.perf_counter() - start) * 1000
        content = assembler.content()
        if used:
            raw["server_tool_use"] = used
        if stop_reason:
            raw["stop_reason"] = stop_reason
        yield StreamChunk(
            response=ChatResponse(
                content=content,
                model=request.model,
                provider=self.name,
                usage=with_estimated(  # a count none sent: estimated, not $0
                    usage, prompt_counted, answer_counted, lambda: estimated_usage(request, content, raw)
                ),
                finish_reason=FINISH_REASONS.get(stop_reason or "end_turn", "stop"),
                latency_ms=latency,
                ttft_ms=ttft,
                region="global",
                raw=raw,
                stop_sequence=_stop_sequence(stop_reason, stop_sequence),
            )
        )

    def close(self) -> None:
        self.client.close()
