"""One keep-alive HTTP/1.1 connection to an upstream, as `http_pool.HttpPool` keeps them: an asyncio protocol fed by
httptools' parser, carrying one exchange at a time into its `Reply`.

It frames the answer (Content-Length, chunked, or the server closing), skips interim 1xx answers, decodes a gzip or
deflate answer sent though identity was asked, fails the exchange after `timeout` seconds without a byte, and holds
the pool's limits on an answer's head (`max_header_bytes`) and on what is held unread (`max_body_bytes`). It tells
whether it may be reused (`finished`, `stale`) and whether a failed request's bytes never left (`unsent`); which
connection to use, and when to send a request again, is the pool's.
"""

from __future__ import annotations

import asyncio
import select
import zlib
from typing import Protocol

import httptools

from tokenomy.gateway.http_reply import Reply, UpstreamDisconnected, UpstreamTimeout, UpstreamTooLarge


class ConnectionPool(Protocol):
    """What a connection reads from and tells the pool that made it (`http_pool.HttpPool`)."""

    timeout: float
    max_header_bytes: int
    max_body_bytes: int
    _connections: set[UpstreamConnection]  # every open connection, idle or not

    def _rejoin(self, connection: UpstreamConnection) -> None: ...


class UpstreamConnection(asyncio.Protocol):
    def __init__(self, pool: ConnectionPool) -> None:
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
