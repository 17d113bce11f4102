"""Anthropic's error shape, `{"type": "error", "error": {"type", "message"}}`, which the anthropic SDK reads: answered
on the Messages API's paths (and Claude on Vertex AI's), by their endpoints and by the gateway's own refusals; and a
failed call's status and message, its refused field named where the Messages API caller put it (`failure_parts`).
"""

from __future__ import annotations

from typing import Any

from fastapi.responses import JSONResponse

from tokenomy.errors import ProviderError, TokenomyError
from tokenomy.gateway.calls import retry_after, upstream_status
from tokenomy.providers.anthropic_answers import caller_param, caller_path

ERROR_TYPES = {
    400: "invalid_request_error",
    401: "authentication_error",
    403: "permission_error",
    404: "not_found_error",
    405: "invalid_request_error",
    402: "billing_error",
    413: "request_too_large",
    429: "rate_limit_error",
    503: "overloaded_error",
    504: "timeout_error",
    529: "overloaded_error",
}


def error_type(status: int) -> str:
    """Anthropic's error type for a status: another 4xx (an upstream's 422 passed on) is the request's fault, as
    invalid_request_error says; api_error is the server's."""
    return ERROR_TYPES.get(status, "invalid_request_error" if 400 <= status < 500 else "api_error")


def anthropic_error(status: int, message: str, headers: dict[str, str] | None = None) -> JSONResponse:
    """Anthropic's error shape: {"type": "error", "error": {"type", "message"}}."""
    return JSONResponse(
        {"type": "error", "error": {"type": error_type(status), "message": message}},
        status_code=status,
        headers=headers,
    )


def failure_parts(exc: TokenomyError, body: dict[str, Any]) -> tuple[int, str, dict[str, str] | None]:
    """Status, message and headers for a call that failed, a refused field named as the Messages API caller sent it
    (`messages.1.content.0`): shared with Bedrock's InvokeModel, whose bodies are Messages API bodies."""
    if not isinstance(exc, ProviderError):
        return 400, str(exc), None
    if exc.refused is not None:  # no model the call could use can take it (nothing was sent): the caller's place
        return 400, exc.refused.error_text(caller_path(body, exc.refused)), None
    if exc.param is not None:  # the provider's mapping refused a field before any call: named as the caller sent it
        return 400, exc.named(lambda param: caller_param(param, body)), None
    return upstream_status(exc), f"upstream {exc.kind}: {exc}", retry_after(exc)


def failure(exc: TokenomyError, body: dict[str, Any]) -> JSONResponse:
    status, message, headers = failure_parts(exc, body)
    # An overloaded upstream is Anthropic's 529 overloaded_error, which Anthropic-SDK applications and coding agents
    # wait out and retry as such (InvokeModel's callers get Bedrock's 503 ServiceUnavailableException).
    return anthropic_error(529 if status == 503 else status, message, headers)
