"""Noticing that a request's caller has left (closed its connection) while the gateway works on its call: asked
without waiting before a queued call is sent or a whole call is retried (`caller_left`), and raced against a wait
(`caller_leaves`: a Retry-After, a backoff, the route's limiter), so nothing is sent, and no call slot held, for
nobody. Both read the request's ASGI receive channel, which the server answers with `http.disconnect` once the
connection is closed."""

from __future__ import annotations

import asyncio
from typing import Any

import anyio


async def caller_left(request) -> bool:
    """Whether the caller has closed its connection, found without waiting: the server answers a receive at once with
    the disconnect it has seen, and a receive with nothing to give is cancelled at once, as Starlette's
    `is_disconnected` does. The edge's replay gives the body it read first (`hygiene.EdgeHygiene`), so up to two."""
    for _ in range(2):
        message: dict[str, Any] = {}
        with anyio.CancelScope() as scope:
            scope.cancel()
            message = await request.receive()
        if message.get("type") != "http.request":
            return message.get("type") == "http.disconnect"
    return False


async def caller_leaves(request) -> None:
    """Return once the caller has closed its connection (to race a wait against). Its body was read, so the server's
    next message is the disconnect, sent when it comes; the edge's replay may give the body first. A server that
    answers a receive at once with something else is asked again every 0.1 s, not in a busy loop."""
    while True:
        message = await request.receive()
        if message.get("type") == "http.disconnect":
            return
        if not message.get("body"):
            await asyncio.sleep(0.1)
