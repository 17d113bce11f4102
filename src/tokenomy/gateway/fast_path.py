"""The gateway's hot endpoints served without Starlette's middleware and routing layers.

`POST /v1/chat/completions` and `POST /v1/messages` are nearly all of a gateway's traffic. Through FastAPI
each request passes its server-error, exception, telemetry and body-limit middleware, the router's path
matching and an exit stack before the endpoint runs: about 120 µs of CPU a request, a fifth of the
gateway's own, measured in process at concurrency 32 on the instant upstream. `GatewayApp`
hands these two requests straight to their endpoints behind the same edge hygiene, and passes what they
raise to the app's own exception handlers as Starlette would (a handler for `Exception` answers, then the
error is raised on so the server logs its traceback). Everything else — docs, the dashboard, /metrics,
lifespan — goes through FastAPI unchanged.
"""

from __future__ import annotations

import inspect
import logging
from collections.abc import Awaitable, Callable
from typing import Any

from fastapi import FastAPI, Request
from starlette.datastructures import State
from starlette.exceptions import HTTPException
from starlette.responses import Response
from starlette.types import Receive, Scope, Send

from tokenomy.gateway import path_aliases, vertex_paths
from tokenomy.gateway.hygiene import EdgeHygiene

Endpoint = Callable[[Request], Awaitable[Response]]
log = logging.getLogger(__name__)
# The path as the caller sent it, in the scope of a request served on another's: its 404 or 405 names what was sent.
SENT_PATH = "tokenomy.sent_path"


class PlainState(State):
    """Starlette's app state, each value also a plain attribute. Starlette's State holds them in a dict that its
    `__getattr__` reads, which Python calls only once the ordinary lookup has failed, raising (and dropping) an
    AttributeError: ~5,000 instructions for `request.app.state.gateway`, which every endpoint reads on every request."""

    def __setattr__(self, key: Any, value: Any) -> None:
        super().__setattr__(key, value)
        object.__setattr__(self, key, value)

    def __delattr__(self, key: Any) -> None:
        super().__delattr__(key)
        self.__dict__.pop(key, None)


class GatewayApp(FastAPI):
    """FastAPI with a direct path to the endpoints named in `serve_directly` (POST only, exact paths)."""

    def __init__(self, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.state = PlainState(self.state._state)
        self._direct: dict[str, Endpoint] = {}
        self._direct_app: EdgeHygiene | None = None

    def serve_directly(self, endpoints: dict[str, Endpoint], max_body_bytes: int, read_timeout: float) -> None:
        """Serve POSTs to these paths directly; the same edge hygiene as every other request comes first."""
        self._direct = dict(endpoints)
        self._direct_app = EdgeHygiene(self._call_endpoint, max_body_bytes=max_body_bytes, read_timeout=read_timeout)

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        sent = scope.get("path")
        if scope["type"] == "http" and scope["path"].startswith(path_aliases.PREFIXES):
            scope = path_aliases.served_scope(scope)  # Azure OpenAI's and Bedrock's paths: the gateway's own
        elif scope["type"] == "http" and scope["path"].startswith(vertex_paths.PREFIXES):
            scope = vertex_paths.served_scope(scope)  # Gemini on Vertex AI: the Gemini API request the gateway serves
        if scope.get("path") != sent:
            scope[SENT_PATH] = sent
        if (
            self._direct_app is not None
            and scope["type"] == "http"
            and scope["method"] == "POST"
            and scope["path"] in self._direct
        ):
            scope["app"] = self  # what Starlette sets: endpoints reach the app (and its state) through the request
            await self._direct_app(scope, receive, send)
            return
        try:
            await super().__call__(scope, receive, send)
        except Exception:
            if scope["type"] != "http":
                raise
            # Starlette's ServerErrorMiddleware answered with the handler for Exception (unless the answer had
            # begun: then the server closes the connection of the unfinished answer), and raises on for the log.
            log.exception("%s %s failed", scope["method"], scope["path"])

    async def _call_endpoint(self, scope: Scope, receive: Receive, send: Send) -> None:
        request = Request(scope, receive)
        try:
            response = await self._direct[scope["path"]](request)
        except Exception as exc:
            handler, last_resort = self._handler_for(exc)
            if handler is None:
                raise
            answer = handler(request, exc)
            await ((await answer) if inspect.isawaitable(answer) else answer)(scope, receive, send)
            if last_resort:  # answered; the traceback is for the log (see the module's docstring)
                log.exception("%s %s failed", scope["method"], scope["path"])
            return
        await response(scope, receive, send)

    def _handler_for(self, exc: Exception) -> tuple[Callable[..., Any] | None, bool]:
        """The app's handler for this exception (nearest class first), and whether it is the last resort (the
        handler for `Exception` or 500, which Starlette answers with and then raises on)."""
        if isinstance(exc, HTTPException) and exc.status_code in self.exception_handlers:
            return self.exception_handlers[exc.status_code], False  # Starlette looks up a status code first
        for cls in type(exc).__mro__:
            if cls is not Exception and cls in self.exception_handlers:
                return self.exception_handlers[cls], False
        return self.exception_handlers.get(Exception) or self.exception_handlers.get(500), True
