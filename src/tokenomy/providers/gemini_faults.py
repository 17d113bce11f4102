"""The `google-genai` SDK's errors (and its transport's, and a count it could not read) as Tokenomy's error kinds."""

from __future__ import annotations

import json

from tokenomy.errors import ProviderError
from tokenomy.providers.http_faults import (
    answer_broke_off,
    exceeds_context_window,
    http_errors,
    read_timed_out,
    retry_after_seconds,
    where_sent,
)
from tokenomy.providers.usage_counts import miscounted


def map_gemini_error(exc: Exception) -> ProviderError:
    """Fold the SDK's errors (APIError with an HTTP code, httpx transport errors) into Tokenomy's kinds."""
    from google.genai import errors

    timeouts, transport = http_errors()
    # A read timeout (the request sent, Gemini still working on it) is billed: `reached`, recorded at its estimate.
    if isinstance(exc, timeouts):
        return ProviderError(f"Gemini call timed out: {exc}", kind="timeout", reached=read_timed_out(exc))
    if isinstance(exc, transport):
        if answer_broke_off(exc):  # Gemini answered (and bills it): the connection broke while its body came
            return ProviderError(f"Gemini's answer broke off: {exc}", kind="server_error", reached=True)
        return ProviderError(f"cannot reach the Gemini API{where_sent(exc)}: {exc}", kind="server_error")
    from google.auth.exceptions import DefaultCredentialsError, RefreshError

    if isinstance(exc, DefaultCredentialsError):  # no credentials: a retry finds none either
        return ProviderError(
            f"no Google Cloud credentials for Vertex AI ({exc}); run `gcloud auth application-default login` or set "
            "GOOGLE_APPLICATION_CREDENTIALS to a service-account key file",
            kind="client_error",
        )
    if isinstance(exc, RefreshError) and not exc.retryable:  # expired or revoked: a retry is refused the same way
        return ProviderError(
            f"Google Cloud refused the credentials for Vertex AI ({exc.args[0] if exc.args else exc}); run `gcloud "
            "auth application-default login` again or check the key file in GOOGLE_APPLICATION_CREDENTIALS",
            kind="client_error",
        )
    if isinstance(exc, ValueError) and "parameter is only supported in" in str(exc):
        # The SDK refused, before sending, a config field the other API takes (Gemini API vs Vertex AI): final.
        return ProviderError(
            f"Gemini: {exc} (Agent Platform mode is Vertex AI, provider: vertex); remove the field, or send the "
            "request to a model on the other API",
            kind="client_error",
            status=400,
        )
    if isinstance(exc, (json.JSONDecodeError, errors.UnknownApiResponseError)):
        # A 200 whose body (or a stream event's data) is no JSON, as a proxy's error page is: Gemini answered, and
        # bills it, so the attempt is recorded at its estimate, not at $0 as if no request had gone out.
        return ProviderError(f"Gemini sent an answer that is no JSON: {exc}", kind="server_error", reached=True)
    miscount = _miscount(exc)
    if miscount is not None:
        return miscount
    if not isinstance(exc, errors.APIError):
        return ProviderError(f"Gemini {type(exc).__name__}: {exc}", kind="server_error")
    status = int(exc.code or 500)
    message = f"Gemini {exc.status or type(exc).__name__} ({status}): {exc.message or exc}"
    retry_after = retry_after_seconds(getattr(getattr(exc, "response", None), "headers", None))
    if retry_after is None:  # Google says it in the body (RetryInfo), not in a Retry-After header
        retry_after = _retry_delay(exc.details)
    if status == 429:
        return ProviderError(message, kind="throttled", retry_after=retry_after, status=429)
    if status in (408, 504):
        return ProviderError(message, kind="timeout", status=status)
    if 400 <= status < 500:
        return ProviderError(
            message, kind="client_error", status=status, context_window=exceeds_context_window(None, message)
        )
    return ProviderError(message, kind="server_error", retry_after=retry_after, status=status)


def _retry_delay(body: object) -> float | None:
    """The seconds a Google error body's RetryInfo asks to wait (`"retryDelay": "37s"`, a Duration in JSON), as the
    Gemini API says it in a 429's `error.details`; None when it says none."""
    error = body.get("error") if isinstance(body, dict) else None
    details = error.get("details") if isinstance(error, dict) else None
    for detail in details if isinstance(details, list) else ():
        if isinstance(detail, dict) and str(detail.get("@type", "")).endswith("google.rpc.RetryInfo"):
            delay = str(detail.get("retryDelay", ""))
            try:
                seconds = float(delay.removesuffix("s"))
            except ValueError:
                return None
            return seconds if delay.endswith("s") and 0 <= seconds < float("inf") else None
    return None


def _miscount(exc: Exception) -> ProviderError | None:
    """A token count of Gemini's answer that the SDK's pydantic model refused to read as an integer (text, a
    fraction; true it reads as 1): Gemini's fault, said as `answered_count` (countTokens' totalTokens) and
    `usage_count` (usageMetadata, reached: Gemini answered, and bills it) say it, not "Gemini ValidationError" taken
    for no answer at all and recorded at $0. None for any other error."""
    import pydantic

    if not isinstance(exc, pydantic.ValidationError):
        return None
    for error in exc.errors():
        where = error["loc"]
        if where[:1] == ("total_tokens",):
            return miscounted(error.get("input"), "Gemini", "totalTokens")
        if where[:1] == ("usage_metadata",):
            name = ".".join(map(str, where))
            said = f"Gemini answered with token counts no answer can have: {name} {error.get('input')!r}"
            return ProviderError(said, reached=True)
    return None
