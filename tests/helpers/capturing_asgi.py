"""An ASGI app (an emulator) wrapped to keep the JSON body of each request it is sent, for a test to read what the
gateway sent upstream (the Gemini emulator records nothing itself)."""

from __future__ import annotations

import json
from typing import Any

import anyio


def capturing(app: Any, bodies: list[dict], headers: list[dict[str, str]] | None = None) -> Any:
    """`app`, appending each request's JSON body to `bodies` (and its headers to `headers`) before it answers."""

    async def wrapped(scope, receive, send):
        if scope["type"] != "http":
            return await app(scope, receive, send)
        if headers is not None:
            headers.append({name.decode("latin-1"): value.decode("latin-1") for name, value in scope["headers"]})
        chunks = []
        while True:
            message = await receive()
            chunks.append(message.get("body", b""))
            if not message.get("more_body"):
                break
        body = b"".join(chunks)
        if body:
            bodies.append(json.loads(body))
        sent = False

        async def replay():
            nonlocal sent
            if sent:  # the client stays: a streamed answer goes on until it ends
                await anyio.sleep_forever()
            sent = True
            return {"type": "http.request", "body": body, "more_body": False}

        return await app(scope, replay, send)

    return wrapped
