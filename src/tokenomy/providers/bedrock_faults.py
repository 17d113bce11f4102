"""Bedrock's errors (botocore's, and urllib3's that botocore lets through a stream's body) read as Tokenomy's four
error kinds, with the status, the wait an error answer asks for, and whether the request reached Bedrock (a read
timeout, an answer broken off midway: billed, so recorded at its estimate)."""

from __future__ import annotations

from typing import Any

from tokenomy.errors import ProviderError
from tokenomy.providers.http_faults import exceeds_context_window, read_timed_out, retry_after_seconds

THROTTLED_CODES = {"ThrottlingException", "TooManyRequestsException", "ServiceQuotaExceededException"}
SERVER_CODES = {
    "ServiceUnavailableException",
    "ModelNotReadyException",
    "InternalServerException",
    "ModelErrorException",
    "ModelStreamErrorException",
    "InternalFailure",
    "ServiceUnavailable",
}
# Bedrock unavailable or overloaded: a 503 (Anthropic's overloaded_error on /v1/messages), in a stream as outside one.
UNAVAILABLE_CODES = {"ServiceUnavailableException", "ServiceUnavailable"}
TIMEOUT_CODES = {"ModelTimeoutException", "RequestTimeout", "RequestTimeoutException"}


def _retry_after(headers: dict[str, Any]) -> float | None:
    found = retry_after_seconds(headers)
    return found if found is not None else retry_after_seconds({"retry-after": headers.get("x-amzn-retry-after")})


def map_bedrock_error(exc: Exception) -> ProviderError:
    """Fold botocore exceptions into Tokenomy's four error kinds."""
    from botocore import exceptions as bx

    if isinstance(exc, bx.ClientError):
        error = exc.response.get("Error", {}) or {}
        code = str(error.get("Code") or "")
        # In-stream exceptions arrive with the event name (`throttlingException`); normalise to the error code.
        code = code[:1].upper() + code[1:]
        meta = exc.response.get("ResponseMetadata", {}) or {}
        status = meta.get("HTTPStatusCode")
        headers = {str(k).lower(): v for k, v in (meta.get("HTTPHeaders") or {}).items()}
        retry_after = _retry_after(headers)
        message = f"Bedrock {code or 'error'}: {error.get('Message') or exc}"
        if code in THROTTLED_CODES or (status == 429 and code not in SERVER_CODES):
            return ProviderError(message, kind="throttled", retry_after=retry_after, status=status or 429)
        if code in TIMEOUT_CODES:
            return ProviderError(message, kind="timeout", retry_after=retry_after, status=status)
        if code in SERVER_CODES or (status is not None and status >= 500):
            if status is None and code in UNAVAILABLE_CODES:  # in a stream, which began with 200: no status of its own
                status = 503
            return ProviderError(message, kind="server_error", retry_after=retry_after, status=status)
        return ProviderError(
            message, kind="client_error", status=status, context_window=exceeds_context_window(None, message)
        )
    # A read timeout (the request sent, the model still working on it) is billed: `reached`, recorded at its estimate.
    if isinstance(exc, (bx.ReadTimeoutError, bx.ConnectTimeoutError)):
        return ProviderError(f"Bedrock call timed out: {exc}", kind="timeout", reached=read_timed_out(exc))
    if isinstance(exc, bx.NoCredentialsError):
        return ProviderError(
            "no AWS credentials found; set AWS_PROFILE or AWS_ACCESS_KEY_ID/AWS_SECRET_ACCESS_KEY "
            "(or pass profile= in the model config)",
            kind="client_error",
        )
    if isinstance(exc, bx.ParamValidationError):
        return ProviderError(f"Bedrock request rejected before sending: {exc}", kind="client_error")
    if isinstance(exc, bx.ResponseStreamingError):  # the answer's body broke off while read: answered, and billed
        return ProviderError(f"Bedrock's answer broke off: {exc}", kind="server_error", reached=True)
    if isinstance(exc, (bx.EndpointConnectionError, bx.ConnectionClosedError)):
        return ProviderError(f"cannot reach Bedrock: {exc}", kind="server_error")
    from botocore.eventstream import ParserError
    from urllib3 import exceptions as ux

    if isinstance(exc, ParserError):  # a frame that cannot be read (its checksum or length wrong): the stream broke
        return ProviderError(f"Bedrock stream corrupted: {exc}", kind="server_error", reached=True)
    # Reading a ConverseStream body: botocore lets urllib3's errors through when the connection breaks. The stream may
    # be the provider's own for a caller that did not stream (`outlasts`): the messages say "call", true of both.
    if isinstance(exc, ux.TimeoutError):
        return ProviderError(
            f"Bedrock call timed out while its answer streamed: {exc}", kind="timeout", reached=read_timed_out(exc)
        )
    if isinstance(exc, ux.HTTPError):
        return ProviderError(f"Bedrock call broke off while its answer streamed: {exc}", kind="server_error")
    return ProviderError(f"Bedrock call failed: {exc}", kind="server_error")
