"""Virtual-key authentication for the gateway: `Authorization: Bearer <key>`, answered from memory.

A key not in memory yet is looked up once (in a worker thread for the async path, never on the event
loop); when the key database cannot be reached the answer is a 503 in OpenAI's shape, not a 500.
"""

from __future__ import annotations

import asyncio

from fastapi.responses import JSONResponse

from tokenomy.gateway.keycache import KeyCache, KeysUnavailable
from tokenomy.gateway.keys import VirtualKey
from tokenomy.gateway.responses import error


def _secret(header: str | None) -> str | JSONResponse:
    if not header or not header.lower().startswith("bearer "):
        return error(
            401,
            "Missing API key: send `Authorization: Bearer <key>` (create one with `tokenomy keys create`).",
            "invalid_request_error",
            "invalid_api_key",
        )
    return header[7:].strip()


def _verdict(key: VirtualKey | None) -> VirtualKey | JSONResponse:
    if key is None or key.revoked:
        return error(401, "Invalid or revoked API key.", "invalid_request_error", "invalid_api_key")
    return key


def _unavailable(exc: Exception) -> JSONResponse:
    return error(
        503,
        f"the gateway cannot check this API key: its key database is unreachable ({exc}); keys "
        "it has already seen keep working; retry later",
        "server_error",
        "keys_unavailable",
    )


def authenticate(cache: KeyCache | None, header: str | None) -> VirtualKey | JSONResponse | None:
    """None when auth is off; the key; or the error response to send."""
    if cache is None:
        return None
    secret = _secret(header)
    if isinstance(secret, JSONResponse):
        return secret
    known, key = cache.cached(secret)
    if not known:
        try:
            key = cache.fetch(secret)
        except KeysUnavailable as exc:
            return _unavailable(exc)
    return _verdict(key)


async def authenticate_async(cache: KeyCache | None, header: str | None) -> VirtualKey | JSONResponse | None:
    if cache is None:
        return None
    secret = _secret(header)
    if isinstance(secret, JSONResponse):
        return secret
    known, key = cache.cached(secret)
    if not known:
        try:
            key = await asyncio.to_thread(cache.fetch, secret)
        except KeysUnavailable as exc:
            return _unavailable(exc)
    return _verdict(key)
