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

The answer its caller reads (`Reply`) and the errors above are `http_reply`'s, and each connection, which frames an
answer and holds these limits on it, is `http_connection`'s; here is the pool that chooses, reuses and closes them.
"""

from __future__ import annotations

import asyncio
import ssl
from urllib.parse import urlsplit

from tokenomy.gateway.http_connection import UpstreamConnection
from tokenomy.gateway.http_reply import Reply, UpstreamDisconnected, UpstreamTimeout
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
        self._idle: list[UpstreamConnection] = []
        self._connections: set[UpstreamConnection] = set()  # every open connection, idle or not, for `aclose`
        self._limit = limit
        self._slots: asyncio.Semaphore | None = None

    async def post(self, path: str, body: bytes) -> tuple[UpstreamConnection, Reply]:
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

    def release(self, connection: UpstreamConnection, done: bool = False) -> None:
        """The exchange is over (read whole, failed or abandoned): keep the connection for the next, or close it.
        `done`: the caller stopped at the answer's logical end (a stream's `[DONE]`), not because it gave up, so
        the rest may be awaited in the background (`UpstreamConnection.drain`); an abandoned answer's connection is
        closed instead, which also tells the upstream to stop generating."""
        assert self._slots is not None
        self._slots.release()
        if not (done and connection.drain()):
            self._rejoin(connection)

    def _rejoin(self, connection: UpstreamConnection) -> None:
        if connection.finished():
            connection.idle_since = connection.loop.time()
            self._idle.append(connection)
        else:
            connection.close()

    def _reuse(self) -> UpstreamConnection | None:
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

    async def _connect(self) -> UpstreamConnection:
        loop = asyncio.get_running_loop()
        try:
            _, connection = await asyncio.wait_for(
                loop.create_connection(
                    lambda: UpstreamConnection(self),
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
