"""An upstream's answer as the caller of `http_pool.HttpPool.post` reads it (`Reply`: status and headers, then the
body whole or line by line as it arrives, fed by the pool's connection), and the errors an exchange may end in:
`UpstreamTimeout`, `UpstreamDisconnected`, `UpstreamTooLarge`, each saying whether the request had gone out."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator


class UpstreamTimeout(TimeoutError):
    """No byte from the upstream for the pool's timeout. `sent`: the request had gone out (the upstream is working
    on it, and bills it), not a wait for a connection."""

    def __init__(self, message: str, sent: bool = False) -> None:
        super().__init__(message)
        self.sent = sent


class UpstreamDisconnected(ConnectionError):
    """The connection failed or closed before the answer was whole, or the answer was not HTTP. `sent`: part of
    an answer had arrived, so the upstream had the request (and bills it)."""

    sent = False


class UpstreamTooLarge(UpstreamDisconnected):
    """The answer's head, or what it holds unread at once, passed the pool's limit; its connection was closed."""

    sent = True


class Reply:
    """One answer: status and headers once they arrived, then its body (whole, or line by line as it comes)."""

    def __init__(self) -> None:
        self.status = 0
        self.headers: dict[str, str] = {}
        self._chunks: list[bytes] = []
        self._buffered = 0  # bytes of body held unread (in `_chunks`, or a stream's unended line): bounded
        self._headers_done = False
        self.complete = False
        self._error: BaseException | None = None
        self._waiter: asyncio.Future[None] | None = None

    # -- fed by the connection --------------------------------------------------------------------
    def _wake(self) -> None:
        if self._waiter is not None and not self._waiter.done():
            self._waiter.set_result(None)

    def _fail(self, error: BaseException) -> None:
        if not self.complete and self._error is None:
            self._error = error
            self._wake()

    # -- read by the caller -----------------------------------------------------------------------
    async def _more(self) -> None:
        """Wait until something arrives (headers, body, the end, an error); raise the error."""
        if self._error is None:
            self._waiter = asyncio.get_running_loop().create_future()
            try:
                await self._waiter
            finally:
                self._waiter = None
        if self._error is not None:
            raise self._error

    async def _started(self) -> Reply:
        while not self._headers_done:
            await self._more()
        return self

    async def read(self) -> bytes:
        """The whole body."""
        while not self.complete:
            await self._more()
        return b"".join(self._chunks)

    async def lines(self) -> AsyncIterator[bytes]:
        """The body line by line (each with its newline; the last may have none), as it arrives."""
        # The pieces of a line begun but not ended, joined once its newline comes: a long line arriving in many
        # reads is copied once, not once a read. They stay counted in `_buffered`, which bounds them.
        partial: list[bytes] = []
        while True:
            chunks, self._chunks = self._chunks, []
            if chunks:
                data = b"".join(chunks)
                if 10 in data:  # (a byte value: `bytes in bytes` raises and clears a TypeError first)
                    if partial:
                        data = b"".join((*partial, data))
                        partial.clear()
                    *whole, rest = data.split(b"\n")
                    self._buffered = len(rest)  # set before yielding: bodies may arrive while the caller works
                    if rest:
                        partial.append(rest)
                    for line in whole:
                        yield line + b"\n"
                else:
                    partial.append(data)
            if self.complete and not self._chunks:
                break
            if not self._chunks:
                await self._more()
        if partial:
            yield b"".join(partial)
