"""The Gemini API's key check, for its routes (`gemini_routes`, `gemini_caches`): the gateway's virtual key as Google's
clients send one, and a refusal in Google's error shape."""

from __future__ import annotations

import json
from typing import Any

from fastapi import Request
from fastapi.responses import JSONResponse

from tokenomy.gateway.gemini_errors import gemini_error


async def authenticate(request: Request) -> Any:
    """The caller's virtual key (`x-goog-api-key`, `?key=`, or `Authorization: Bearer`), or Google's error."""
    secret = request.headers.get("x-goog-api-key") or request.query_params.get("key")
    key = await request.app.state.gateway.authenticate_async(
        f"Bearer {secret}" if secret else request.headers.get("authorization")
    )
    if isinstance(key, JSONResponse):
        message = json.loads(bytes(key.body))["error"]["message"].replace(
            "send `Authorization: Bearer <key>`", "send `x-goog-api-key: <key>` (the SDK's api_key)"
        )
        return gemini_error(key.status_code, message)
    return key
