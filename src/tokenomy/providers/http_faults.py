"""What an HTTP client's error says about a call: whether the provider got the request (and bills it), which
endpoint was tried, and how long an error answer asks the caller to wait."""

from __future__ import annotations

import email.utils
import math
import re
from datetime import UTC, datetime
from typing import Any

# A prompt longer than the model's context window, as each API says it: an error code where the API has one, else its
# message. The request is not at fault as another 4xx's is: a model with a larger window may hold it.
# OpenAI's (also Azure's, Groq's) and llama.cpp server's codes.
_CONTEXT_CODES = frozenset({"context_length_exceeded", "exceed_context_size_error"})
_CONTEXT_WORDS = re.compile(
    r"prompt is too long"  # Anthropic's, also behind Bedrock and Vertex AI
    r"|input is too long"  # Bedrock's ValidationException
    r"|maximum context length"  # OpenAI's message, and the servers that copy it (vLLM, DeepSeek, OpenRouter, Mistral)
    r"|exceeds? (?:the )?(?:available )?context (?:size|limit|window|length)"  # llama.cpp's; Anthropic's max_tokens one
    r"|input token count .{0,40}exceeds the maximum number of tokens",  # Gemini's
    re.IGNORECASE,
)


def exceeds_context_window(code: str | None, message: str) -> bool:
    """Whether a 4xx answer (its error `code`, if any, and its `message`) says the prompt does not fit the model's
    context window (`ProviderError.context_window`)."""
    return code in _CONTEXT_CODES or _CONTEXT_WORDS.search(message) is not None


def answer_broke_off(exc: BaseException) -> bool:
    """Whether an HTTP client's error, raised as `exc` or wrapped by it, is an answer whose body broke off after it
    began (httpx's "peer closed connection without sending complete message body"): the provider answered, and bills
    it (`ProviderError.reached`). A connection closed before any answer is not: the request may never have run."""
    return any("without sending complete message body" in str(e) for e in (exc, exc.__cause__) if e is not None)


UNSENT = "tokenomy_unsent"  # the attribute a cancellation carries when its request had not gone out


def mark_unsent(exc: BaseException) -> None:
    """Say on `exc` (a cancellation) that its request had not gone out yet: a provider that knows (the gateway's pooled
    upstream, cancelled while it waited for a connection) marks it, and the attempt is not recorded as billed."""
    setattr(exc, UNSENT, True)


def left_unsent(exc: BaseException) -> bool:
    """Whether `exc` was marked by `mark_unsent`; a cancellation nobody marked may have reached the provider."""
    return getattr(exc, UNSENT, False) is True


def where_sent(exc: BaseException) -> str:
    """ " at <scheme://host[:port]>" of the request an HTTP client's error (httpx's, or an SDK's wrapping one) was for,
    else "": a "cannot reach" error then names the endpoint that was tried (a base_url or --endpoint-url), which
    httpx's own "All connection attempts failed" does not."""
    for error in (exc, exc.__cause__):
        try:
            url = error.request.url  # type: ignore[union-attr]  # httpx raises RuntimeError when it has none
        except (AttributeError, RuntimeError):
            continue
        return f" at {url.scheme}://{url.netloc.decode() if isinstance(url.netloc, bytes) else url.netloc}"
    return ""


def read_timed_out(exc: BaseException) -> bool:
    """Whether a timeout was an HTTP client's read timeout (httpx's, urllib3's, botocore's; not connect, write or
    pool), raised as `exc` or wrapped by it: the request had been sent, and the provider, still working on it, bills
    it (`ProviderError.reached`)."""
    return any(type(e).__name__ in ("ReadTimeout", "ReadTimeoutError") for e in (exc, exc.__cause__))


def http_errors() -> tuple[tuple[type[Exception], ...], tuple[type[Exception], ...]]:
    """(timeouts, transport errors) of httpx and httpx2, the HTTP clients the SDKs read with (anthropic 2 and
    openai 3 moved to httpx2): a broken or stalled connection while reading a stream surfaces as one of these."""
    import importlib

    timeouts: list[type[Exception]] = []
    transport: list[type[Exception]] = []
    for name in ("httpx", "httpx2"):
        try:
            module = importlib.import_module(name)
        except ImportError:
            continue
        timeouts.append(module.TimeoutException)
        transport.append(module.TransportError)
    return tuple(timeouts), tuple(transport)


def retry_after_seconds(headers: Any) -> float | None:
    """The wait an error answer asks for, from its headers: `retry-after-ms` (OpenAI's and Azure's), else
    `retry-after` as seconds or an HTTP date (RFC 9110); None when neither says something usable."""
    if headers is None:
        return None
    try:
        millis = headers.get("retry-after-ms")
        if millis is not None and math.isfinite(float(millis)):
            return max(0.0, float(millis) / 1000)
    except (TypeError, ValueError):
        pass
    value = headers.get("retry-after")
    if value is None:
        return None
    try:
        seconds = float(value)
        return max(0.0, seconds) if math.isfinite(seconds) else None
    except (TypeError, ValueError):
        pass
    try:
        when = email.utils.parsedate_to_datetime(str(value))
    except (TypeError, ValueError):
        return None
    if when.tzinfo is None:
        return None  # RFC 9110's dates are GMT; one without a zone is not one
    return max(0.0, (when - datetime.now(UTC)).total_seconds())
