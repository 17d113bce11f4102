"""Anthropic's errors as Tokenomy's: the SDK's exceptions (and its HTTP client's, reading a stream) folded into the
four error kinds, with whether Claude was reached (and bills the attempt), and the status an error event that ends
a stream stands for (`IN_STREAM_STATUSES`, which the batch backend reads a failed record's error by too)."""

from __future__ import annotations

import json
from typing import Any

from tokenomy.errors import ProviderError
from tokenomy.providers.http_faults import (
    answer_broke_off,
    exceeds_context_window,
    http_errors,
    read_timed_out,
    retry_after_seconds,
    where_sent,
)


def not_a_message(result: Any) -> ProviderError:
    """A 200 body the SDK did not read as JSON (no JSON content type, as a proxy's HTML error page has): it hands back
    the text. Claude's fault as a decode error is (it answered, and bills it), not an AttributeError's 500."""
    return ProviderError(
        f"Anthropic sent an answer that is no message: {str(result)[:200]!r}", kind="server_error", reached=True
    )


# The status each error type of Anthropic's API is answered with: an error event that ends a stream comes in an
# answer of 200, and its type says what failed (an overloaded_error is a 529, which agents wait out and retry).
IN_STREAM_STATUSES = {
    "invalid_request_error": 400,
    "authentication_error": 401,
    "billing_error": 402,
    "permission_error": 403,
    "not_found_error": 404,
    "request_too_large": 413,
    "rate_limit_error": 429,
    "api_error": 500,
    "timeout_error": 504,
    "overloaded_error": 529,
}


def _error_type(body: Any) -> str | None:
    """The `error.type` of an Anthropic error body ({"type": "error", "error": {"type": ...}}), or None."""
    error = body.get("error") if isinstance(body, dict) else None
    kind = error.get("type") if isinstance(error, dict) else None
    return kind if isinstance(kind, str) else None


def map_anthropic_error(exc: Exception) -> ProviderError:
    """Fold the SDK's exceptions into Tokenomy's four error kinds."""
    import anthropic

    # Reading a stream's body: the SDK lets its HTTP client's errors through when the connection breaks. The stream
    # may be the provider's own for a caller that did not stream (`outlasts`): the messages say "call", true of both.
    timeouts, transport = http_errors()
    # A read timeout (the request sent, Claude still working on it) is billed: `reached`, recorded at its estimate.
    if isinstance(exc, timeouts):
        return ProviderError(
            f"Anthropic call timed out while its answer streamed: {exc}", kind="timeout", reached=read_timed_out(exc)
        )
    # A 200 whose body (or a stream event's data) is no JSON, as a proxy's error page is: the SDK lets the decoder's
    # error through. It answered (and bills it); the fault is the upstream's, not a bug of the gateway's (a 500).
    if isinstance(exc, json.JSONDecodeError):
        return ProviderError(f"Anthropic sent an answer that is no JSON: {exc}", kind="server_error", reached=True)
    if isinstance(exc, transport):
        return ProviderError(
            f"Anthropic call broke off while its answer streamed: {exc}",
            kind="server_error",
            reached=answer_broke_off(exc),
        )
    if isinstance(exc, anthropic.APITimeoutError):
        return ProviderError(f"Anthropic call timed out: {exc}", kind="timeout", reached=read_timed_out(exc))
    if isinstance(exc, anthropic.APIConnectionError):
        if answer_broke_off(exc):  # Claude answered (and bills it): the connection broke while its body came
            return ProviderError(f"Anthropic's answer broke off: {exc.__cause__}", kind="server_error", reached=True)
        return ProviderError(f"cannot reach the Anthropic API{where_sent(exc)}: {exc}", kind="server_error")
    status = getattr(exc, "status_code", None)
    if status is None or status < 400:  # an error event ending a stream answered 200: the status its type stands for
        status = IN_STREAM_STATUSES.get(_error_type(getattr(exc, "body", None)) or "", status)
    retry_after = retry_after_seconds(getattr(getattr(exc, "response", None), "headers", None))
    message = f"Anthropic {type(exc).__name__}: {getattr(exc, 'message', None) or exc}"
    if isinstance(exc, anthropic.RateLimitError) or status == 429:
        return ProviderError(message, kind="throttled", retry_after=retry_after, status=429)
    if status == 408:
        return ProviderError(message, kind="timeout", retry_after=retry_after, status=status)
    if status is not None and 400 <= status < 500:
        return ProviderError(
            message, kind="client_error", status=status, context_window=exceeds_context_window(None, message)
        )
    return ProviderError(message, kind="server_error", retry_after=retry_after, status=status)
