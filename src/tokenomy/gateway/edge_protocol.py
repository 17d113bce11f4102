"""uvicorn's httptools protocol with a header-read timeout (uvicorn has none: a client that opens a
connection and sends its headers slowly, or never, holds it forever).

A connection must deliver a request's complete headers within TOKENOMY_HEADER_TIMEOUT seconds
(gateway.header_timeout_seconds, set by `tokenomy serve`) of connecting or of starting that request;
otherwise it is closed. Bodies are bounded separately (gateway.read_timeout_seconds, gateway/hygiene.py).
"""

from __future__ import annotations

import asyncio
import os

from uvicorn.protocols.http.httptools_impl import HttpToolsProtocol

DEFAULT_HEADER_TIMEOUT = 10.0


class HeaderTimeoutProtocol(HttpToolsProtocol):
    def __init__(self, *args, **kwargs) -> None:
        super().__init__(*args, **kwargs)
        self.header_timeout = float(os.environ.get("TOKENOMY_HEADER_TIMEOUT") or DEFAULT_HEADER_TIMEOUT)
        self._header_timer: asyncio.TimerHandle | None = None

    def _arm(self) -> None:
        self._disarm()
        self._header_timer = self.loop.call_later(self.header_timeout, self._headers_too_slow)

    def _disarm(self) -> None:
        if self._header_timer is not None:
            self._header_timer.cancel()
            self._header_timer = None

    def _headers_too_slow(self) -> None:
        self._header_timer = None
        if not self.transport.is_closing():
            self.transport.close()

    def connection_made(self, transport) -> None:
        super().connection_made(transport)
        self._arm()

    def on_message_begin(self) -> None:
        super().on_message_begin()
        self._arm()

    def on_headers_complete(self) -> None:
        self._disarm()
        super().on_headers_complete()

    def connection_lost(self, exc: Exception | None) -> None:
        self._disarm()
        super().connection_lost(exc)
