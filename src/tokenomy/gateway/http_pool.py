"""Keep-alive HTTP/1.1 connections to one upstream, for the gateway's hot path: asyncio transports, httptools'
parser.

Why not aiohttp's ClientSession, which this replaced: from one uvloop task against the instant upstream, a POST
and its answer cost ~160 us of CPU through the session (request and response objects, timer contexts, cookie and
trace hooks, a stream reader per answer) and ~35 us here, and the gateway makes one such call a request. At
concurrency 1 that was a fifth of the latency the gateway adds.

What it does: one request at a time per connection (no pipelining), a bounded pool reused last-in first-out,
answers framed by Content-Length, chunked (httptools decodes it) or by the server closing, `Connection: close`
honoured, TLS for https, and a silence timeout: no byte for `timeout` seconds (to connect, before the answer,
between two chunks) fails the request, however long the whole answer takes. What it does not: proxies,
redirects, compression (it asks for `identity`; a gzip or deflate answer sent anyway is still decoded, as the
session did, rather than lose a paid answer), HTTP/2. An OpenAI-format upstream needs none of them from a
gateway, and the session it replaced had proxies off too.
"""

from __future__ import annotations

import asyncio
import ssl
import zlib
from collections.abc import AsyncIterator
from urllib.parse import urlsplit

import httptools

KEEPALIVE_S = 15.0  # an idle connection older than this is closed, not reused (servers drop theirs from 5 s on)


class UpstreamTimeout(TimeoutError):
    """No byte from the upstream for the pool's timeout."""


class UpstreamDisconnected(ConnectionError):
    """The connection failed or closed before the answer was whole, or the answer was not HTTP."""


class Reply:
    """One answer: status and headers once they arrived, then its body (whole, or line by line as it comes)."""

    def __init__(self) -> None:
        self.status = 0
        self.headers: dict[str, str] = {}
        self._chunks: list[bytes] = []
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
        pending = b""
        while True:
            chunks, self._chunks = self._chunks, []
            if chunks:
                pending += b"".join(chunks)
                *whole, pending = pending.split(b"\n")
                for line in whole:
                    yield line + b"\n"
            if self.complete and not self._chunks:
                break
            if not self._chunks:
                await self._more()
        if pending:
            yield pending


class _Connection(asyncio.Protocol):
    def __init__(self, pool: HttpPool) -> None:
        self.pool = pool
        self.loop = asyncio.get_running_loop()
        self.transport: asyncio.Transport | None = None
        self.parser = httptools.HttpResponseParser(self)
        self.reply: Reply | None = None
        self.closed = False
        self.keep_alive = True
        self.idle_since = 0.0
        self.heard = False  # a byte of the current exchange's answer arrived
        self._last_byte = 0.0
        self._timer: asyncio.TimerHandle | None = None
        self._until_close = False  # the answer has neither Content-Length nor chunks: it ends when the server closes
        self._interim = False  # the parser is in a 1xx answer, which precedes the final one
        self._draining = False  # released before its answer's last bytes: rejoin the pool once they arrive
        self._inflate: zlib._Decompress | None = None  # the answer is gzip/deflate-encoded though we asked identity

    # -- one exchange -------------------------------------------------------------------------------
    def send(self, data: bytes) -> Reply:
        assert self.transport is not None
        self.reply = Reply()
        self.heard = False
        self._last_byte = self.loop.time()
        self._timer = self.loop.call_later(self.pool.timeout, self._check_silence)
        self.transport.write(data)
        return self.reply

    def _check_silence(self) -> None:
        """Fail the exchange after `timeout` seconds without a byte; one timer a request, re-armed lazily."""
        silent = self.loop.time() - self._last_byte
        if silent < self.pool.timeout:
            self._timer = self.loop.call_later(self.pool.timeout - silent, self._check_silence)
            return
        self._timer = None
        if self.reply is not None:
            self.reply._fail(UpstreamTimeout(f"no data for {self.pool.timeout:g}s"))
        self.close()

    def finished(self) -> bool:
        """The exchange is over: True if the connection can take another."""
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None
        reply, self.reply = self.reply, None
        return reply is not None and reply.complete and self.keep_alive and not self.closed

    def drain(self) -> bool:
        """The caller has what it needs (a stream's `data: [DONE]`) but the answer's last bytes (the chunked
        terminator, often its own TCP segment) are still coming: let them arrive, then rejoin the pool, rather than
        a new connection for every stream. The silence timer stays: no end within `timeout` closes it."""
        reply = self.reply
        if reply is None or reply.complete or reply._error is not None or self.closed or not reply._headers_done:
            return False
        self._draining = True
        return True

    def close(self) -> None:
        self.closed = True
        if self.transport is not None:
            self.transport.close()

    # -- asyncio ------------------------------------------------------------------------------------
    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = transport  # type: ignore[assignment]

    def data_received(self, data: bytes) -> None:
        self._last_byte = self.loop.time()
        self.heard = True
        reply = self.reply  # kept: a drained answer's end clears `self.reply` within `feed_data`
        if reply is None:  # bytes nobody asked for: the connection is out of step, never reuse it
            self.close()
            return
        try:
            self.parser.feed_data(data)
        except httptools.HttpParserError as exc:  # also raised by `on_message_begin` for bytes after the answer
            reply._fail(UpstreamDisconnected(f"the upstream's answer is not HTTP/1.1 ({exc})"))
            self.close()
        except httptools.HttpParserUpgrade:  # a 101 to a POST: nothing this client can speak, and not an error class
            reply._fail(UpstreamDisconnected("the upstream switched protocols (101)"))
            self.close()

    def connection_lost(self, exc: Exception | None) -> None:
        self.closed = True
        reply = self.reply
        if reply is not None and not reply.complete:
            # An answer with neither Content-Length nor chunks ends when the server closes.
            if reply._headers_done and self._until_close and exc is None:
                reply.complete = True
                reply._wake()
            else:
                reply._fail(UpstreamDisconnected(f"the upstream closed the connection mid-answer ({exc or 'EOF'})"))
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None

    # -- httptools callbacks ------------------------------------------------------------------------
    def on_message_begin(self) -> None:
        # The parser goes on past a whole answer when more bytes came in the same read (or before `release`): a
        # second answer to one request. Refuse it, or its body joins this answer and the connection goes back to
        # the pool mid-message, to answer the next request with the rest.
        if self.reply is None or self.reply.complete:
            raise UpstreamDisconnected("the upstream sent bytes after the whole answer")

    def on_header(self, name: bytes, value: bytes) -> None:
        assert self.reply is not None
        self.reply.headers[name.decode("latin-1").lower()] = value.decode("latin-1")

    def on_headers_complete(self) -> None:
        reply = self.reply
        assert reply is not None
        status = self.parser.get_status_code()
        if 100 <= status < 200 and status != 101:
            # An interim answer (100 Continue, 103 Early Hints): the real one follows on the same connection.
            self._interim = True
            reply.headers = {}
            return
        reply.status = status
        headers = reply.headers
        self._until_close = "content-length" not in headers and "chunked" not in headers.get("transfer-encoding", "")
        encoding = headers.get("content-encoding", "identity").strip().lower()
        self._inflate = None
        if encoding in ("gzip", "x-gzip", "deflate"):
            self._inflate = zlib.decompressobj(zlib.MAX_WBITS | 32)  # | 32: a gzip or a zlib header, either
        elif encoding != "identity":
            reply._fail(UpstreamDisconnected(f"the upstream's answer is {encoding}-encoded, which is not decoded here"))
            self.close()
        reply._headers_done = True
        reply._wake()

    def on_body(self, body: bytes) -> None:
        assert self.reply is not None
        if self._inflate is not None:
            body = self._inflate.decompress(body)  # a zlib.error fails the answer as not HTTP, via the parser
        self.reply._chunks.append(body)
        self.reply._wake()

    def on_message_complete(self) -> None:
        assert self.reply is not None
        if self._interim:  # the end of an interim answer, not of the reply
            self._interim = False
            return
        self.keep_alive = self.parser.should_keep_alive()
        self.reply.complete = True
        self.reply._wake()
        if self._draining:
            self._draining = False
            self.pool._rejoin(self)


class HttpPool:
    """Keep-alive connections to the host of `base_url`; `post` sends one request on one of them."""

    def __init__(self, base_url: str, headers: dict[str, str], timeout: float, limit: int = 512) -> None:
        parts = urlsplit(base_url)
        if parts.scheme not in ("http", "https") or not parts.hostname:
            raise ValueError(f"base_url {base_url!r}: expected http(s)://host[:port][/path]")
        self.host = parts.hostname
        self.port = parts.port or (443 if parts.scheme == "https" else 80)
        self.path = parts.path.rstrip("/")
        self.ssl = ssl.create_default_context() if parts.scheme == "https" else None
        self.timeout = timeout
        netloc = parts.netloc.rpartition("@")[2]  # never a user:password@ from the URL
        fixed = {"host": netloc, "accept-encoding": "identity", "connection": "keep-alive", **headers}
        self._head = "".join(f"{k}: {v}\r\n" for k, v in fixed.items()).encode("latin-1")
        self._idle: list[_Connection] = []
        self._limit = limit
        self._slots: asyncio.Semaphore | None = None

    async def post(self, path: str, body: bytes) -> tuple[_Connection, Reply]:
        """Send `body` to `path` (under base_url's path); the connection (give it to `release`) and its reply, once
        the reply's status and headers arrived."""
        if self._slots is None:
            self._slots = asyncio.Semaphore(self._limit)
        data = b"POST %s HTTP/1.1\r\n%scontent-length: %d\r\n\r\n" % (
            (self.path + path).encode("latin-1"),
            self._head,
            len(body),
        )
        await self._slots.acquire()
        connection = None
        try:
            connection = self._reuse()
            if connection is not None:
                try:
                    return connection, await connection.send(data + body)._started()
                except UpstreamDisconnected:
                    # A kept connection the server closed as the request went out (its idle timeout firing just
                    # then): not a byte came back, so the server dropped the connection rather than answer. Send
                    # once more on a new one instead of failing the call. Any byte back, or a timeout: no resend.
                    if connection.heard:
                        raise
                    connection.finished()
                    connection.close()
            connection = await self._connect()
            return connection, await connection.send(data + body)._started()
        except BaseException:
            if connection is not None:
                connection.finished()
                connection.close()
            self._slots.release()
            raise

    def release(self, connection: _Connection, done: bool = False) -> None:
        """The exchange is over (read whole, failed or abandoned): keep the connection for the next, or close it.
        `done`: the caller stopped at the answer's logical end (a stream's `[DONE]`), not because it gave up, so
        the rest may be awaited in the background (`_Connection.drain`); an abandoned answer's connection is
        closed instead, which also tells the upstream to stop generating."""
        assert self._slots is not None
        self._slots.release()
        if not (done and connection.drain()):
            self._rejoin(connection)

    def _rejoin(self, connection: _Connection) -> None:
        if connection.finished():
            connection.idle_since = connection.loop.time()
            self._idle.append(connection)
        else:
            connection.close()

    def _reuse(self) -> _Connection | None:
        while self._idle:
            connection = self._idle.pop()
            if not connection.closed and connection.loop.time() - connection.idle_since < KEEPALIVE_S:
                return connection
            connection.close()
        return None

    async def _connect(self) -> _Connection:
        loop = asyncio.get_running_loop()
        try:
            _, connection = await asyncio.wait_for(
                loop.create_connection(
                    lambda: _Connection(self),
                    self.host,
                    self.port,
                    ssl=self.ssl,
                    server_hostname=self.host if self.ssl else None,
                ),
                self.timeout,
            )
        except TimeoutError as exc:
            raise UpstreamTimeout(f"no connection within {self.timeout:g}s") from exc
        except OSError as exc:
            raise UpstreamDisconnected(f"cannot connect to {self.host}:{self.port} ({exc})") from exc
        return connection

    async def aclose(self) -> None:
        for connection in self._idle:
            connection.close()
        self._idle.clear()
