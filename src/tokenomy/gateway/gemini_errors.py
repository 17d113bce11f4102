"""Google's error shape, `{"error": {"code", "message", "status"}}`, which google-genai reads (its `APIError.status`
and `.message`): answered on the Gemini API's paths and Gemini on Vertex AI's, by their endpoints and by the edge."""

from __future__ import annotations

from typing import Any

from fastapi.responses import JSONResponse

STATUS = {
    400: "INVALID_ARGUMENT",
    401: "UNAUTHENTICATED",
    403: "PERMISSION_DENIED",
    404: "NOT_FOUND",
    413: "INVALID_ARGUMENT",
    429: "RESOURCE_EXHAUSTED",
    499: "CANCELLED",  # the caller (or, passed on, the upstream's) cancelled the request: no fault of its content
    500: "INTERNAL",
    501: "UNIMPLEMENTED",
    502: "UNAVAILABLE",
    503: "UNAVAILABLE",
    504: "DEADLINE_EXCEEDED",
}


def error_body(status: int, message: str) -> dict[str, Any]:
    """Google's error: another client error (an upstream's 409 or 422, a 405) is the caller's request, another server
    error an internal one, as Google's own status codes file them."""
    default = "INVALID_ARGUMENT" if status < 500 else "INTERNAL"
    return {"error": {"code": status, "message": message, "status": STATUS.get(status, default)}}


def gemini_error(status: int, message: str, headers: dict[str, str] | None = None) -> JSONResponse:
    return JSONResponse(error_body(status, message), status_code=status, headers=headers)
