"""An OpenAI-format upstream's answer, read: a Chat Completions answer → ChatResponse (its usage, its message's blocks,
its finish reason), and an error status → Tokenomy's error kinds. `openai_wire` builds the request; `openai_stream`
reads a stream's chunks with the readers here.

Everything a response carries that ChatResponse has no slot for (logprobs, refusal, more choices,
system_fingerprint, ...) is kept in `raw` in OpenAI's own shape so the gateway can hand it back.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from typing import Any

from tokenomy.chat_response import ChatResponse, Usage
from tokenomy.errors import ProviderError, as_written
from tokenomy.ids import new_id
from tokenomy.messages import Block, ChatRequest, ReasoningBlock, TextBlock, ToolUseBlock
from tokenomy.providers.http_faults import exceeds_context_window
from tokenomy.providers.json_text import call_input
from tokenomy.providers.openai_reasoning import call_signature, thinking_block
from tokenomy.providers.usage_counts import checked_counts, estimated_usage, usage_count, with_estimated

# Keys of a message / choice / response that ChatResponse models itself; everything else is kept in raw.
_MESSAGE_KEYS = {"role", "content", "tool_calls", "reasoning_content", "reasoning", "thinking_blocks"}
CHOICE_KEYS = {"index", "message", "finish_reason", "delta", "usage"}  # Moonshot streams usage in the choice
_TOP_KEYS = {"id", "object", "created", "model", "choices", "usage"}
# Finish reasons OpenAI-compatible servers send outside OpenAI's vocabulary (TGI: eos_token, stop_sequence).
# Mistral's model_length: the answer reached the model's context length (OpenAI says length for either limit).
_FINISH_ALIASES = {"eos": "stop", "eos_token": "stop", "stop_sequence": "stop", "model_length": "length"}


def usage_from_dict(usage: dict | None) -> Usage:
    """OpenAI counts cached tokens inside prompt_tokens; Usage keeps them apart, and so the tokens written to the
    cache, also inside prompt_tokens (`prompt_tokens_details.cache_write_tokens`: GPT-6.x bills them at 1.25x input,
    and OpenRouter reports a Claude model's writes so; a LiteLLM proxy's top-level `cache_creation_input_tokens`;
    priced at the cache-write rate). Reasoning is output. Cache hits in other places, also inside prompt_tokens:
    DeepSeek's `prompt_cache_hit_tokens`, Moonshot's top-level `cached_tokens`. xAI's completion_tokens leave its
    reasoning tokens out (its total_tokens adds them): they are output all the same, billed at the output price.
    The audio parts (`prompt_tokens_details.audio_tokens`, `completion_tokens_details.audio_tokens`: OpenAI's audio
    models bill audio tokens at their own prices) are kept as Usage's audio counts; the prompt's audio, which OpenAI
    does not split into cached and uncached, counts as uncached as far as the uncached tokens hold it (the dearer
    price: cached audio costs less), the rest as cached. Counts no answer can have (negative, more cached and written
    tokens than prompt tokens, more audio than its whole) are the upstream's fault (`checked_counts`)."""
    if not usage:
        return Usage()
    details = usage.get("prompt_tokens_details") or {}
    cached = usage_count(
        details.get("cached_tokens") or usage.get("prompt_cache_hit_tokens") or usage.get("cached_tokens"),
        "upstream",
        "cached_tokens",
    )
    written = usage_count(
        details.get("cache_write_tokens") or usage.get("cache_creation_input_tokens"),
        "upstream",
        "cache_write_tokens",
    )
    completion_details = usage.get("completion_tokens_details") or {}
    reasoning = usage_count(completion_details.get("reasoning_tokens"), "upstream", "reasoning_tokens")
    prompt = usage_count(usage.get("prompt_tokens"), "upstream", "prompt_tokens")
    completion = usage_count(usage.get("completion_tokens"), "upstream", "completion_tokens")
    if reasoning and usage.get("total_tokens") == prompt + completion + reasoning:
        completion += reasoning  # xAI counts reasoning beside completion_tokens, not in it (its total says so)
    counted = Usage(
        input_tokens=prompt - cached - written,
        output_tokens=completion,
        cache_read_tokens=cached,
        cache_write_tokens=written,
        reasoning_tokens=reasoning,
    )
    audio_prompt, audio_output = details.get("audio_tokens"), completion_details.get("audio_tokens")
    if audio_prompt or audio_output:  # OpenAI's audio models; other answers send 0 or nothing (read on every call)
        count_audio(counted, audio_prompt, audio_output, "upstream")
    return checked_counts(counted, "upstream")


def counts_anything(usage: Any) -> bool:
    """Whether an answer's usage counts its prompt or its answer: a usage of neither (`{}`, only total_tokens, or
    nulls, as some compatible servers and proxies send) counts nothing, and its answer is estimated as one sent
    without usage, not recorded at zero tokens and $0 (charged to no budget)."""
    if not isinstance(usage, dict):
        return bool(usage)  # one of another shape is read, and refused as unreadable (`usage_from_dict`)
    return usage.get("prompt_tokens") is not None or usage.get("completion_tokens") is not None


def with_missing_counts(usage: Usage, reported: Any, estimate: Callable[[], Usage]) -> Usage:
    """`usage` read from `reported`, with the count it left out (prompt_tokens or completion_tokens absent or null)
    taken from `estimate` rather than as zero: the provider billed that part too."""
    prompt, answer = reported.get("prompt_tokens") is not None, reported.get("completion_tokens") is not None
    return with_estimated(usage, prompt, answer, estimate)


def count_audio(counted: Usage, audio_prompt: Any, audio_output: Any, source: str) -> None:
    """Sets `counted`'s audio parts from an answer's prompt and completion audio counts: the prompt's as uncached as
    far as its uncached tokens hold it, the rest as cached (usage_from_dict). `source` names who sent a bad count."""
    prompt = usage_count(audio_prompt, source, "prompt_tokens_details.audio_tokens")
    counted.audio_input_tokens = min(prompt, max(counted.input_tokens, 0))
    counted.audio_cache_read_tokens = prompt - counted.audio_input_tokens
    counted.audio_output_tokens = usage_count(audio_output, source, "completion_tokens_details.audio_tokens")


def usage_details(usage: dict | None) -> dict[str, Any]:
    """The upstream's token details (audio, accepted and rejected prediction tokens, ...) as it sent them: the
    gateway passes them on beside the cached and reasoning counts Usage keeps."""
    if not isinstance(usage, dict):
        return {}
    keys = ("prompt_tokens_details", "completion_tokens_details")
    return {k: usage[k] for k in keys if isinstance(usage.get(k), dict) and usage[k]}


def stand_in_id() -> str:
    """An id for a tool call the server sent without one (llama.cpp, LM Studio and other OpenAI-compatible servers):
    the result must name its call, and two calls of one turn must not share the empty id."""
    return f"call_{new_id()}"


def _tool_use(call: dict[str, Any]) -> ToolUseBlock:
    custom = call.get("custom")
    if call.get("type") == "custom" or isinstance(custom, dict):  # a freeform call: its input is raw text
        custom = custom or {}
        text = custom.get("input")
        if not isinstance(text, str):
            raise TypeError(f"custom tool call input: {text!r} is no text")
        return ToolUseBlock(
            id=call.get("id") or stand_in_id(), name=custom.get("name") or "", arguments=text, freeform=True
        )
    function = call.get("function") or {}
    arguments = function.get("arguments")
    return ToolUseBlock(
        id=call.get("id") or stand_in_id(),
        name=function.get("name") or "",
        input=call_input(arguments) if arguments else {},  # the exact text stays in `arguments` too
        arguments=arguments,
    )


def _thinking_blocks(items: Any) -> list[Block] | None:
    """An upstream's `thinking_blocks` as blocks; None when it sent none, or entries this format does not know
    (then its `reasoning_content` is the reasoning, as before)."""
    if not isinstance(items, list) or not items:
        return None
    try:
        return [thinking_block(item) for item in items]
    except ValueError:
        return None


def call_blocks(call: dict[str, Any]) -> list[Block]:
    """A tool call, after the bare thought signature it carries (if any)."""
    signature = call_signature(call.get("extra_content"))
    use = _tool_use(call)
    return [ReasoningBlock("", signature), use] if signature else [use]


def message_blocks(message: dict[str, Any]) -> list[Block]:
    blocks: list[Block] = []
    reasoning = message.get("reasoning_content") or message.get("reasoning")
    signed = _thinking_blocks(message.get("thinking_blocks"))
    if signed is not None:
        blocks += signed
    elif isinstance(reasoning, str) and reasoning:
        blocks.append(ReasoningBlock(reasoning))
    content = message.get("content")
    if isinstance(content, str) and content:
        blocks.append(TextBlock(content))
    elif isinstance(content, list):
        blocks += [TextBlock(p.get("text") or "") for p in content if isinstance(p, dict) and p.get("type") == "text"]
    for call in message.get("tool_calls") or []:
        blocks += call_blocks(call)
    return blocks


def beyond(message: dict[str, Any]) -> dict[str, Any]:
    """A message's (or delta's) keys beyond ChatResponse's slots (refusal, annotations, audio, ...), to pass on. The
    legacy `function_call` that llama-cpp-python sends beside its tool calls, repeating the first, is not passed on:
    the caller would get each call twice, and the gateway refuses a function_call in the message sent back."""
    duplicate = "function_call" if message.get("tool_calls") else None
    return {k: v for k, v in message.items() if k not in _MESSAGE_KEYS and k != duplicate and v is not None}


def extras(data: dict[str, Any]) -> dict[str, Any]:
    """What an OpenAI response has beyond ChatResponse's slots, in OpenAI's shape (for the gateway)."""
    raw: dict[str, Any] = {"served_model": data.get("model")}
    top = {k: v for k, v in data.items() if k not in _TOP_KEYS and v is not None}
    choices = data.get("choices") or []
    first = choices[0] if choices else {}
    choice = {k: v for k, v in first.items() if k not in CHOICE_KEYS and v is not None}
    message = beyond(first.get("message") or {})
    for key, value in (("top", top), ("choice", choice), ("message", message)):
        if value:
            raw[key] = value
    if len(choices) > 1:  # n > 1: the first choice is the ChatResponse, the others are returned as sent
        raw["more_choices"] = choices[1:]
    details = usage_details(data.get("usage"))
    if details:
        raw["usage_details"] = details
    return raw


def finish_reason(reason: str | None, blocks: list[Block]) -> str:
    """The answer's finish reason in OpenAI's vocabulary: an answer that calls tools finishes with tool_calls even
    when the server says stop (Ollama, vLLM streams), as Anthropic-format clients run tools on stop_reason tool_use."""
    reason = _FINISH_ALIASES.get(reason or "stop", reason or "stop")
    return "tool_calls" if reason == "stop" and any(isinstance(b, ToolUseBlock) for b in blocks) else reason


# What reading an answer of an unexpected shape raises: a field missing or of the wrong type.
SHAPE_ERRORS = (KeyError, IndexError, TypeError, AttributeError, ValueError)


def parse_completion(data: dict[str, Any], request: ChatRequest, provider: str, latency_ms: float) -> ChatResponse:
    """The ChatResponse of a Chat Completions answer; one of an unexpected shape (a field of the wrong type, no
    choices) is the upstream's fault: a ProviderError (a 502 at the gateway), not a bug's 500. The upstream answered,
    and bills what it generated: the attempt is recorded at its estimate (`reached`), not at $0."""
    try:
        return _completion(data, request, provider, latency_ms)
    except SHAPE_ERRORS as exc:
        raise ProviderError(
            f"upstream sent an unreadable completion: {as_written(data)[:200]}",
            kind="server_error",
            reached=True,
        ) from exc


def _completion(data: dict[str, Any], request: ChatRequest, provider: str, latency_ms: float) -> ChatResponse:
    choice = data["choices"][0]
    message = choice.get("message") or {}
    blocks = message_blocks(message)
    raw = extras(data)
    reported = data.get("usage")
    if counts_anything(reported):
        usage = with_missing_counts(usage_from_dict(reported), reported, lambda: estimated_usage(request, blocks, raw))
    else:  # recorded as zero tokens, the call was free in the ledger: estimate, and say so (as a stream does)
        usage = estimated_usage(request, blocks, raw)
    return ChatResponse(
        content=blocks,
        model=request.model,
        provider=provider,
        usage=usage,
        finish_reason=finish_reason(choice.get("finish_reason"), blocks),
        latency_ms=latency_ms,
        ttft_ms=None,
        region="global",
        raw=raw,
    )


def status_error(
    status: int, text: str, after: float | None, url: str = "upstream", model: str | None = None
) -> ProviderError:
    """Map an upstream HTTP error status (and the wait it asks for, in seconds) to Tokenomy's error kinds. The message
    names the `url` and `model` that answered it: behind a fallback to another server, which one failed."""
    message = f"{url} answered {status}{f' (model {model!r})' if model else ''}: {text[:300]}"
    detail = _error_object(text) if 400 <= status < 500 else {}
    code = detail.get("code")
    code = code if isinstance(code, str) and code else None
    if status == 429:  # its code tells a spent quota (insufficient_quota, not retried) from a rate limit
        return ProviderError(message, kind="throttled", retry_after=after, status=status, code=code)
    if status == 408:  # the server timed out waiting: retryable, as for the other providers
        return ProviderError(message, kind="timeout", retry_after=after, status=status)
    if 400 <= status < 500:
        error = ProviderError(
            message, kind="client_error", status=status, code=code, context_window=exceeds_context_window(code, text)
        )
        error.innererror, error.upstream_param = innererror(detail), upstream_param(detail)
        return error
    return ProviderError(message, kind="server_error", retry_after=after, status=status)


def _error_object(text: str) -> dict[str, Any]:
    """The `error` object of an OpenAI-shaped error body; empty if it is none."""
    try:
        body = json.loads(text)
    except ValueError:
        return {}
    detail = body.get("error") if isinstance(body, dict) else None
    return detail if isinstance(detail, dict) else {}


def innererror(detail: Any) -> dict[str, Any] | None:
    """The `innererror` of an error object (Azure's content filter: its code and which filter caught the prompt),
    passed on to the caller, who branches on it as on the code."""
    inner = detail.get("innererror") if isinstance(detail, dict) else None
    return inner if isinstance(inner, dict) else None


def upstream_param(detail: Any) -> str | None:
    """The `param` of an error object: the request field the API refused (`temperature`), passed on to the caller."""
    param = detail.get("param") if isinstance(detail, dict) else None
    return param if isinstance(param, str) and param else None
