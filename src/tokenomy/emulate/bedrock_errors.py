"""What every Bedrock emulator API shares: Bedrock's error type and shape, and the caller's region.

The runtime (Converse) and batch routers both import from here, so neither imports the other.
"""

from __future__ import annotations

import re
import uuid

from starlette.responses import JSONResponse

ERROR_STATUS = {
    "ValidationException": 400,
    "ResourceNotFoundException": 404,
    "ThrottlingException": 429,
    "AccessDeniedException": 403,
    "InternalServerException": 500,
    "ServiceUnavailableException": 503,
    "ModelNotReadyException": 429,
    "ModelTimeoutException": 408,
    "ModelErrorException": 424,
}
_REGION_RE = re.compile(r"Credential=[^/]+/\d{8}/([a-z0-9-]+)/")


class BedrockError(Exception):
    """An error Bedrock would return: code (x-amzn-ErrorType), HTTP status, message."""

    def __init__(self, code: str, message: str) -> None:
        super().__init__(message)
        self.code = code
        self.message = message
        self.status = ERROR_STATUS.get(code, 400)


def invalid(message: str) -> BedrockError:
    return BedrockError("ValidationException", message)


def error_response(error: BedrockError, retry_after: float | None = None) -> JSONResponse:
    """Bedrock's REST-JSON error shape, which botocore's parser turns into ClientError(code)."""
    headers = {
        "x-amzn-ErrorType": f"{error.code}:http://internal.amazon.com/coral/com.amazon.bedrock/",
        "x-amzn-RequestId": str(uuid.uuid4()),
    }
    if retry_after is not None and error.status in (429, 503):
        headers["Retry-After"] = f"{retry_after:g}"
    return JSONResponse({"message": error.message}, status_code=error.status, headers=headers)


def client_region(request) -> str:
    """The region the caller signed for (SigV4 credential scope); signatures themselves are not checked."""
    match = _REGION_RE.search(request.headers.get("authorization", ""))
    return match.group(1) if match else "us-east-1"
