"""Keep-alive HTTP/1.1 connections to one upstream, for the gateway's hot path: asyncio transports, httptools'
parser.

Why not aiohttp's ClientSession, which this replaced: from one uvloop task against the instant upstream, a POST
and its answer cost ~160 us of CPU through the session (request and response objects, timer contexts, cookie and
trace hooks, a stream reader per answer) and ~35 us here, and the gateway makes one such call a request. At
concurrency 1 that was a fifth of the latency the gateway adds.

What it does: one request at a time per connection (no pipelining), a bounded pool reused last-in first-out,
answers framed by Content-Length, chunked (httptools decodes it) or by the server closing, `Connection: close`
honoured, TLS for https, and a silence timeout: no byte for `timeout` seconds (to connect, before the answer,
between two chunks) fails the request, however long the whole answer takes. A POST is never sent twice once it may
have reached the server (a chat call would be run and billed twice): an idle connection the server closed is not
reused, and a request is sent again only if its first write failed outright. What it does not: proxies,
redirects, compression (it asks for `identity`; a gzip or deflate answer sent anyway is still decoded, as the
session did, rather than lose a paid answer), HTTP/2. An OpenAI-format upstream needs none of them from a
gateway, and the session it replaced had proxies off too.

Limits, so that a misbehaving upstream costs a failed request, never the gateway's memory or a hung caller:
an answer's head (status line and headers, interim 1xx answers included) may take `max_header_bytes`, and what
is held unread at once (a non-streamed body; of a stream, one line not yet ended and what arrived since the caller
last read) `max_body_bytes`; past either the request fails with `UpstreamTooLarge` naming the limit and the
connection is closed. A stream's total length is not limited. A request finding all `limit` connections busy
waits at most `timeout` for one (`UpstreamTimeout`). `aclose` closes every connection the pool made: idle,
draining a stream's end, or in use.

The answer its caller reads (`Reply`) and the errors above are `http_reply`'s; here are the connections that feed it.
"""

from __future__ import annotations

import asyncio
import select
import ssl
import zlib
from urllib.parse import urlsplit

import httptools

from tokenomy.gateway.http_reply import Reply, UpstreamDisconnected, UpstreamTimeout, UpstreamTooLarge
from tokenomy.providers.http_faults import mark_unsent

KEEPALIVE_S = 15.0  # an idle connection older than this is closed, not reused (servers drop theirs from 5 s on)

# An answer's head, status line to blank line. OpenAI-format upstreams send 1-2 KiB. The SDK-based provider's
# HTTP client (httpx over h11) refuses a head over 16 KiB and the aiohttp session this replaced any header line
# over 8 KiB, so an upstream either of them could talk to fits 4 times over; 512 connections stuck at the limit
# hold 32 MiB. Counted per read before the head is whole, so one endless header line is bounded too.
MAX_HEADER_BYTES = 64 * 1024

# What an answer may hold unread at once: a non-streamed body; of a stream, one line without its newline yet and
# what arrived since the caller last read. A chat completion is ~100 KB per choice at most without logprobs; with
# top_logprobs=20 each token carries ~1.4 KB, so a 16k-token choice is ~23 MB: 64 MiB takes that twice over. A
# stream line is one small event, and a whole stream is far below it. Larger answers are refused (and their
# connection closed); a deployment that really gets them sets HttpPool's max_body_bytes.
MAX_BODY_BYTES = 64 * 1024 * 1024


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
        self.unsent = False  # the current request's first write failed: not a byte of it left this side
        self._poller: select.poll | None = None  # the socket, registered once for `stale`
        self._head_bytes = 0  # bytes of the current exchange's answer read before its head was whole
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
        self._head_bytes = 0
        self._last_byte = self.loop.time()
        self._timer = self.loop.call_later(self.pool.timeout, self._check_silence)
        self.transport.write(data)
        # The transport sends at once; a send that fails (the server had reset the connection) closes it before
        # write returns, having sent nothing. Any other outcome may have delivered the request.
        self.unsent = self.transport.is_closing()
        return self.reply

    def stale(self) -> bool:
        """An idle connection whose socket is readable: the server closed it (or sent bytes nobody asked for) after
        the event loop last looked. Never reused: a request written on it may or may not reach the server."""
        if self._poller is None:
            return False
        try:
            return bool(self._poller.poll(0))
        except (OSError, ValueError):  # a socket closed meanwhile
            return True

    def _check_silence(self) -> None:
        """Fail the exchange after `timeout` seconds without a byte; one timer a request, re-armed lazily."""
        silent = self.loop.time() - self._last_byte
        if silent < self.pool.timeout:
            self._timer = self.loop.call_later(self.pool.timeout - silent, self._check_silence)
            return
        self._timer = None
        if self.reply is not None:
            self.reply._fail(UpstreamTimeout(f"no data for {self.pool.timeout:g}s", sent=True))
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
        self.pool._connections.add(self)
        sock = transport.get_extra_info("socket")
        if sock is not None:  # `stale` asks it one syscall a reuse; poll, as select fails past descriptor 1023
            self._poller = select.poll()
            self._poller.register(sock.fileno(), select.POLLIN)

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
            # A callback's own exception comes wrapped (HttpParserCallbackError), the original as its context.
            too_large = exc.__context__
            if isinstance(too_large, UpstreamTooLarge):
                reply._fail(too_large)
            else:
                reply._fail(UpstreamDisconnected(f"the upstream's answer is not HTTP/1.1 ({exc})"))
            self.close()
            return
        except httptools.HttpParserUpgrade:  # a 101 to a POST: nothing this client can speak, and not an error class
            reply._fail(UpstreamDisconnected("the upstream switched protocols (101)"))
            self.close()
            return
        if not reply._headers_done:  # all of this read was head (httptools holds an unended header line itself)
            self._head_bytes += len(data)
            if self._head_bytes > self.pool.max_header_bytes:
                limit = self.pool.max_header_bytes
                reply._fail(UpstreamTooLarge(f"the upstream's answer head passed {limit} bytes (max_header_bytes)"))
                self.close()

    def connection_lost(self, exc: Exception | None) -> None:
        closed_here, self.closed = self.closed, True
        self.pool._connections.discard(self)
        reply = self.reply
        if reply is not None and not reply.complete:
            # An answer with neither Content-Length nor chunks ends when the server closes; our own close (a
            # timeout, a limit, the pool's `aclose`) cut it short instead.
            if reply._headers_done and self._until_close and exc is None and not closed_here:
                reply.complete = True
                reply._wake()
            else:
                # Once its status came, the upstream was reached and answered: say so, and that its body was cut.
                said = f"answered {reply.status}, then " if reply._headers_done else ""
                cut = UpstreamDisconnected(
                    f"the upstream {said}closed the connection mid-answer ({exc or 'EOF'})"
                    + (": its body was cut off" if said else "")
                )
                cut.sent = self.heard
                reply._fail(cut)
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
        reply = self.reply
        assert reply is not None
        limit = self.pool.max_body_bytes
        if self._inflate is not None:
            # At most one byte past the limit out of each piece, so a small gzip bomb cannot blow up here either.
            # A zlib.error fails the answer as not HTTP, via the parser.
            body = self._inflate.decompress(body, limit - reply._buffered + 1)
        reply._buffered += len(body)
        if reply._buffered > limit:  # raised through the parser, which stops; `data_received` fails the reply
            raise UpstreamTooLarge(
                f"the upstream's answer passed {limit} bytes held at once (max_body_bytes): a body, or one stream "
                "line, this long is no chat completion"
            )
        reply._chunks.append(body)
        reply._wake()

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

    def __init__(
        self,
        base_url: str,
        headers: dict[str, str],
        timeout: float,
        limit: int = 512,
        max_header_bytes: int = MAX_HEADER_BYTES,
        max_body_bytes: int = MAX_BODY_BYTES,
    ) -> None:
        parts = urlsplit(base_url)
        if parts.scheme not in ("http", "https") or not parts.hostname:
            raise ValueError(f"base_url {base_url!r}: expected http(s)://host[:port][/path]")
        self.host = parts.hostname
        self.port = parts.port or (443 if parts.scheme == "https" else 80)
        self.path = parts.path.rstrip("/")
        self.ssl = ssl.create_default_context() if parts.scheme == "https" else None
        self.timeout = timeout
        self.max_header_bytes = max_header_bytes
        self.max_body_bytes = max_body_bytes
        netloc = parts.netloc.rpartition("@")[2]  # never a user:password@ from the URL
        fixed = {"host": netloc, "accept-encoding": "identity", "connection": "keep-alive", **headers}
        self._head = "".join(f"{k}: {v}\r\n" for k, v in fixed.items()).encode("latin-1")
        self._idle: list[_Connection] = []
        self._connections: set[_Connection] = set()  # every open connection, idle or not, for `aclose`
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
        if self._slots.locked():
            # All `limit` connections busy (hung upstream calls, say): wait for one no longer than a silence.
            # A timed-out or cancelled wait holds no permit (Semaphore.acquire gives back one handed to it).
            try:
                async with asyncio.timeout(self.timeout):
                    await self._slots.acquire()
            except TimeoutError:
                raise UpstreamTimeout(
                    f"the pool of {self._limit} connections to {self.host}:{self.port} was busy for {self.timeout:g}s"
                ) from None
            except asyncio.CancelledError as exc:
                mark_unsent(exc)  # cancelled while it waited for a connection: nothing went out, nothing to bill
                raise
        else:
            await self._slots.acquire()  # a free permit: acquired without a wait, so never cancelled here
        connection = None
        sent = False  # a byte of the request may have left: a cancellation from here on is of a billed call
        try:
            connection = self._reuse()
            if connection is not None:
                try:
                    sent = True
                    return connection, await connection.send(data + body)._started()
                except UpstreamDisconnected:
                    # Sent again only if not a byte of it left (the kept connection had been reset). A request
                    # written on a connection that then closed without a byte back may have reached the server,
                    # which may be running (and billing) it though it closed (a crash, a proxy's timeout, its idle
                    # timeout firing just as the request arrived): a resend could run the call twice. The caller's
                    # retry policy decides instead, knowing the call failed.
                    if connection.heard or not connection.unsent:
                        raise
                    connection.finished()
                    connection.close()
                    sent = False
            connection = await self._connect()
            sent = True
            return connection, await connection.send(data + body)._started()
        except BaseException as exc:
            if isinstance(exc, asyncio.CancelledError) and not sent:
                mark_unsent(exc)  # cancelled while it connected: nothing went out, nothing to bill
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
            if (
                not connection.closed
                and connection.loop.time() - connection.idle_since < KEEPALIVE_S
                and not connection.stale()
            ):
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
        """Close every connection the pool made: idle, draining a stream's end, or in use (its reply then fails
        with UpstreamDisconnected), so that no socket outlives the pool."""
        self._idle.clear()
        for connection in list(self._connections):
            if connection.reply is not None:
                connection.reply._fail(UpstreamDisconnected("the connection pool was closed (shutting down)"))
            connection.close()
