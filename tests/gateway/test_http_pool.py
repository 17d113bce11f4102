"""The gateway's upstream connection pool against raw servers on 127.0.0.1 that answer as real ones can: framed
by Content-Length, chunked, or by closing; keeping the connection or not; slow, silent, or cut mid-answer."""

from __future__ import annotations

import asyncio
import contextlib
import gzip
import itertools
import socket
import struct
import time
import zlib
from collections.abc import Callable

import pytest

from tokenomy.errors import ProviderError
from tokenomy.gateway.http_pool import HttpPool
from tokenomy.gateway.http_reply import UpstreamDisconnected, UpstreamTimeout, UpstreamTooLarge
from tokenomy.gateway.upstream import AsyncOpenAIUpstream
from tokenomy.messages import ChatRequest, Message, TextBlock
from tokenomy.providers.registry import ModelSpec

Answer = Callable[[bytes], list[bytes | float | None]]  # per request: bytes to send, seconds to wait, None to close


def ok(body: bytes = b'{"ok":1}', extra: bytes = b"") -> list[bytes | float | None]:
    return [
        b"HTTP/1.1 200 OK\r\ncontent-type: application/json\r\n%scontent-length: %d\r\n\r\n%s"
        % (extra, len(body), body)
    ]


async def serve(answer: Answer) -> tuple[asyncio.Server, list[bytes], list[int]]:
    """A server that reads one request head + body at a time and plays `answer(request)`; it records each request
    and the connection (by number) it came on."""
    requests: list[bytes] = []
    connections: list[int] = []
    opened = 0

    async def handle(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        nonlocal opened
        opened += 1
        number = opened
        try:
            while True:
                head = await reader.readuntil(b"\r\n\r\n")
                length = int(
                    next(
                        line.split(b":")[1]
                        for line in head.split(b"\r\n")
                        if line.lower().startswith(b"content-length")
                    )
                )
                request = head + await reader.readexactly(length)
                requests.append(request)
                connections.append(number)
                for step in answer(request):
                    if step is None:
                        writer.close()
                        return
                    if isinstance(step, float):
                        await asyncio.sleep(step)
                    else:
                        writer.write(step)
                        await writer.drain()
        except (asyncio.IncompleteReadError, ConnectionError):
            writer.close()

    server = await asyncio.start_server(handle, "127.0.0.1", 0)
    return server, requests, connections


def url(server: asyncio.Server) -> str:
    return f"http://127.0.0.1:{server.sockets[0].getsockname()[1]}/v1"


async def post(pool: HttpPool, body: bytes = b'{"q":1}') -> tuple[int, dict[str, str], bytes]:
    connection, reply = await pool.post("/chat/completions", body)
    try:
        return reply.status, reply.headers, await reply.read()
    finally:
        pool.release(connection)


def run(coro):
    return asyncio.run(coro)


async def until(condition: Callable[[], object], what: str) -> None:
    """Let the event loop run until `condition()` holds (30 s at most): what a fixed sleep would assume a loaded
    machine manages in time."""
    deadline = time.monotonic() + 30
    while not condition():
        assert time.monotonic() < deadline, f"still not {what} after 30 s"
        await asyncio.sleep(0.01)


async def two_posts(answer: Answer) -> tuple[list[tuple[int, dict[str, str], bytes]], list[int]]:
    """Two requests (bodies {"n":0} and {"n":1}) through one pool to a server playing `answer`: the answers, and
    the connection each request came on."""
    server, _, connections = await serve(answer)
    pool = HttpPool(url(server), {}, 5)
    answers = [await post(pool, b'{"n":%d}' % i) for i in range(2)]
    await pool.aclose()
    server.close()
    return answers, connections


def test_requests_carry_the_path_headers_and_body_and_reuse_one_connection():
    async def main():
        server, requests, connections = await serve(lambda _: ok())
        pool = HttpPool(url(server), {"authorization": "Bearer sk-x", "content-type": "application/json"}, 5)
        answers = [await post(pool, b'{"n":%d}' % i) for i in range(3)]
        await pool.aclose()
        server.close()
        return answers, requests, connections

    answers, requests, connections = run(main())
    assert [a[0] for a in answers] == [200] * 3 and answers[0][2] == b'{"ok":1}'
    assert answers[0][1]["content-type"] == "application/json"
    assert requests[1].startswith(b"POST /v1/chat/completions HTTP/1.1\r\n")
    assert b"authorization: Bearer sk-x\r\n" in requests[1] and b"accept-encoding: identity\r\n" in requests[1]
    assert requests[1].endswith(b'\r\n\r\n{"n":1}') and connections == [1, 1, 1]


def test_chunked_answers_are_decoded_and_streamed_line_by_line():
    chunks = [b'data: {"a":1}\n\nda', b"ta: [DONE]\n\n"]
    head = b"HTTP/1.1 200 OK\r\ntransfer-encoding: chunked\r\n\r\n"

    def answer(_: bytes) -> list[bytes | float | None]:
        return [head, *(b"%x\r\n%s\r\n" % (len(c), c) for c in chunks), 0.05, b"0\r\n\r\n"]

    async def main():
        server, _, connections = await serve(answer)
        pool = HttpPool(url(server), {}, 5)
        connection, reply = await pool.post("/chat/completions", b"{}")
        lines = [line async for line in reply.lines()]
        pool.release(connection)
        again = await post(pool)
        await pool.aclose()
        server.close()
        return lines, again, connections

    lines, again, connections = run(main())
    assert lines == [b'data: {"a":1}\n', b"\n", b"data: [DONE]\n", b"\n"]
    assert again[2] == b"".join(chunks) and connections == [1, 1]  # the chunked answer left the connection reusable


def test_an_answer_ended_by_closing_is_whole_and_its_connection_not_reused():
    async def main():
        server, _, connections = await serve(lambda _: [b"HTTP/1.1 200 OK\r\nconnection: close\r\n\r\nall of it", None])
        pool = HttpPool(url(server), {}, 5)
        first, second = await post(pool), await post(pool)
        await pool.aclose()
        server.close()
        return first, second, connections

    first, second, connections = run(main())
    assert first[2] == second[2] == b"all of it" and connections == [1, 2]


def test_connection_close_is_honoured_and_a_connection_the_server_dropped_is_not_reused():
    async def main():
        server, _, connections = await serve(lambda _: [*ok(extra=b"connection: close\r\n"), None])
        pool = HttpPool(url(server), {}, 5)
        await post(pool)
        await post(pool)
        # A server that keeps the connection but drops it while idle (uvicorn after 5 s, nginx after 75 s).
        server2, _, connections2 = await serve(lambda r: [*ok(), None] if b'"last"' in r else ok())
        pool2 = HttpPool(url(server2), {}, 5)
        await post(pool2, b'"last"')
        idle = pool2._idle[-1]
        await until(lambda: idle.closed or idle.stale(), "closed")  # the server's FIN arrives while it is idle
        answer = await post(pool2)
        for p, s in ((pool, server), (pool2, server2)):
            await p.aclose()
            s.close()
        return connections, connections2, answer

    connections, connections2, answer = run(main())
    assert connections == [1, 2] and connections2 == [1, 2] and answer[0] == 200


def test_silence_fails_with_a_timeout_but_a_slow_steady_answer_does_not():
    # A byte every 0.1 s against a 1 s timeout: a loaded machine's pause of a few tenths of a second is no silence.
    def slow_steady(_: bytes) -> list[bytes | float | None]:
        head = b"HTTP/1.1 200 OK\r\ntransfer-encoding: chunked\r\n\r\n"
        return [head, *[step for _ in range(15) for step in (0.1, b"1\r\nx\r\n")], b"0\r\n\r\n"]

    async def main():
        steady, _, _ = await serve(slow_steady)
        silent, _, _ = await serve(lambda _: [5.0])
        pool = HttpPool(url(steady), {}, 1.0)  # 1.5 s of answer, never 1 s without a byte
        body = (await post(pool))[2]
        with pytest.raises(UpstreamTimeout, match=r"no data for 1s"):
            await post(HttpPool(url(silent), {}, 1.0))
        await pool.aclose()
        steady.close(), silent.close()
        return body

    assert run(main()) == b"x" * 15


def test_an_answer_cut_mid_way_or_not_http_is_an_error_and_nothing_is_reused():
    async def main():
        cut, _, _ = await serve(lambda _: [b"HTTP/1.1 200 OK\r\ncontent-length: 100\r\n\r\nonly part", None])
        garbage, _, _ = await serve(lambda _: [b"SSH-2.0-OpenSSH_9.6\r\n\r\n"])
        errors = []
        for server in (cut, garbage):
            pool = HttpPool(url(server), {}, 5)
            with pytest.raises(UpstreamDisconnected) as caught:
                await post(pool)
            errors.append(str(caught.value))
            assert pool._idle == []
            server.close()
        return errors

    cut_error, garbage_error = run(main())
    assert "closed the connection mid-answer" in cut_error and "not HTTP/1.1" in garbage_error


def test_nobody_listening_is_a_connection_error_naming_the_address():
    async def main():
        server, _, _ = await serve(lambda _: ok())
        address = url(server)
        server.close()
        await server.wait_closed()
        with pytest.raises(UpstreamDisconnected, match=r"cannot connect to 127\.0\.0\.1"):
            await post(HttpPool(address, {}, 5))

    run(main())


def test_a_bad_base_url_is_refused_at_once():
    with pytest.raises(ValueError, match="expected http"):
        HttpPool("ftp://example.com/v1", {}, 5)


def test_interim_1xx_answers_are_skipped_for_the_final_one():
    # 103 Early Hints (or a 100 Continue) in its own write, then the real answer: the caller must get the 200 and
    # its body, and the next request its own answer, not this one.
    def answer(request: bytes) -> list[bytes | float | None]:
        return [b"HTTP/1.1 103 Early Hints\r\nlink: </x>\r\n\r\n", 0.05, *ok(request.partition(b"\r\n\r\n")[2])]

    answers, connections = run(two_posts(answer))
    assert [(a[0], a[2]) for a in answers] == [(200, b'{"n":0}'), (200, b'{"n":1}')]
    assert "link" not in answers[0][1] and connections == [1, 1]


def test_a_second_answer_to_one_request_is_refused_and_never_reaches_the_next_request():
    # A broken upstream (or proxy) answers one request twice in one write: the second answer must neither join the
    # first's body nor be left on a pooled connection to answer the next request.
    def answer(request: bytes) -> list[bytes | float | None]:
        return [ok(request.partition(b"\r\n\r\n")[2])[0] + ok(b"STALE")[0]]

    answers, connections = run(two_posts(answer))
    assert [a[2] for a in answers] == [b'{"n":0}', b'{"n":1}'] and connections == [1, 2]


def test_a_request_the_server_read_then_closed_on_unanswered_is_not_sent_twice():
    # The server read the whole request on a kept connection, then closed it without a byte back (a crash, a proxy's
    # timeout, its idle timeout firing just then): it may be running, and billing, the call. It was sent again on a
    # new connection: the provider ran it twice. It fails instead; the caller's retry policy decides.
    async def main():
        numbers = itertools.count()

        def answer(request: bytes) -> list[bytes | float | None]:
            return [None] if next(numbers) == 1 else ok(request.partition(b"\r\n\r\n")[2])

        server, requests, connections = await serve(answer)
        pool = HttpPool(url(server), {}, 5)
        first = await post(pool, b'{"n":0}')
        with pytest.raises(UpstreamDisconnected, match="closed the connection mid-answer"):
            await post(pool, b'{"n":1}')
        third = await post(pool, b'{"n":2}')
        await pool.aclose()
        server.close()
        return first, third, requests, connections

    first, third, requests, connections = run(main())
    assert first[2] == b'{"n":0}' and third[2] == b'{"n":2}'
    assert [r.partition(b"\r\n\r\n")[2] for r in requests] == [b'{"n":0}', b'{"n":1}', b'{"n":2}']
    assert connections == [1, 1, 2]


async def _idle_connection_closed_unseen(rst: bool) -> tuple[tuple, list[bytes], list[int]]:
    """A request on a pool whose one idle connection the server closed (FIN, or RST with `rst`) while the event
    loop was busy: the close is in the socket, not yet seen by the connection."""
    sockets = []

    async def handle(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        sockets.append(writer)
        with contextlib.suppress(ConnectionError, asyncio.IncompleteReadError):
            while True:
                head = await reader.readuntil(b"\r\n\r\n")
                await reader.readexactly(int(head.lower().split(b"content-length:")[1].split(b"\r\n")[0]))
                requests.append(head)
                connections.append(len(sockets))
                writer.write(ok()[0])

    requests: list[bytes] = []
    connections: list[int] = []
    server = await asyncio.start_server(handle, "127.0.0.1", 0)
    pool = HttpPool(url(server), {}, 5)
    await post(pool)
    await asyncio.sleep(0.05)  # the server is back in its read
    idle = sockets[0]
    if rst:
        idle.get_extra_info("socket").setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
    idle.transport.abort() if rst else idle.close()
    await asyncio.sleep(0)  # the server's transport closes its socket
    await asyncio.sleep(0)
    time.sleep(0.1)  # the close reaches the client's socket; the loop does not run, so the pool has not seen it
    answer = await post(pool)
    await pool.aclose()
    server.close()
    return answer, requests, connections


def test_an_idle_connection_the_server_closed_unseen_is_not_reused():
    # The server's FIN is in the socket but the event loop has not read it: a request written there reaches a
    # closed server, then fails, and (since it might have been read) is not sent again. The pool checks first.
    answer, requests, connections = run(_idle_connection_closed_unseen(rst=False))
    assert answer[0] == 200 and connections == [1, 2] and len(requests) == 2  # each request received once


def test_a_request_whose_first_write_fails_is_sent_once_more_on_a_new_connection(monkeypatch):
    # The server reset the kept connection just before the write (after the pool's check): the write fails, not a
    # byte of the request left, so it is sent on a new connection; the server gets it exactly once.
    from tokenomy.gateway.http_connection import UpstreamConnection

    monkeypatch.setattr(UpstreamConnection, "stale", lambda self: False)  # the reset arrives after the check
    answer, requests, connections = run(_idle_connection_closed_unseen(rst=True))
    assert answer[0] == 200 and connections == [1, 2] and len(requests) == 2  # each request received once


def test_a_new_connection_closed_without_an_answer_is_not_retried():
    async def main():
        dropping, requests, _ = await serve(lambda _: [None])
        with pytest.raises(UpstreamDisconnected, match="closed the connection mid-answer"):
            await post(HttpPool(url(dropping), {}, 5))
        dropping.close()
        return requests

    assert len(run(main())) == 1


def test_a_stream_released_at_its_done_line_rejoins_the_pool_when_its_last_chunk_arrives():
    # Servers write the chunked terminator apart from the last event (uvicorn: its own `send`), so the caller is
    # done at `data: [DONE]` before the answer is. The connection must come back for the next request, unless its
    # end never comes (then the silence timeout closes it).
    def answer(request: bytes) -> list[bytes | float | None]:
        event = b"data: [DONE]\n\n"
        head = b"HTTP/1.1 200 OK\r\ntransfer-encoding: chunked\r\n\r\n%x\r\n%s\r\n" % (len(event), event)
        return [head, 5.0] if b"never" in request else [head, 0.05, b"0\r\n\r\n"]

    async def stream_until_done(pool: HttpPool, body: bytes) -> None:
        connection, reply = await pool.post("/chat/completions", body)
        async for line in reply.lines():
            if line.startswith(b"data: [DONE]"):
                break
        pool.release(connection, done=True)

    async def main():
        server, _, connections = await serve(answer)
        pool = HttpPool(url(server), {}, 1.0)  # 1 s of silence against a 0.05 s pause: no loaded machine's stall
        await stream_until_done(pool, b"{}")
        await until(lambda: pool._idle, "back in the pool")  # the terminator arrives while nobody is reading
        await stream_until_done(pool, b'{"never":1}')
        await until(lambda: not pool._connections, "closed")  # no terminator: closed after 1 s of silence
        await post(pool)
        await pool.aclose()
        server.close()
        return connections

    assert run(main()) == [1, 1, 2]


def test_a_compressed_answer_sent_despite_identity_is_decoded_and_an_unknown_encoding_is_an_error():
    body = b'{"ok":1,"text":"' + b"long enough to compress " * 40 + b'"}'
    gzipped, deflated = gzip.compress(body), zlib.compress(body)

    def answer(request: bytes) -> list[bytes | float | None]:
        if b"stream" in request:  # gzip across chunks, read line by line
            head = b"HTTP/1.1 200 OK\r\ncontent-encoding: gzip\r\ntransfer-encoding: chunked\r\n\r\n"
            pieces = [gzipped[i : i + 7] for i in range(0, len(gzipped), 7)]
            return [head, *(b"%x\r\n%s\r\n" % (len(p), p) for p in pieces), b"0\r\n\r\n"]
        encoding, data = (
            (b"br", b"\x0b\x02")
            if b"br" in request
            else (b"deflate", deflated)
            if b"deflate" in request
            else (b"gzip", gzipped)
        )
        return ok(data, extra=b"content-encoding: %s\r\n" % encoding)

    async def main():
        server, _, _ = await serve(answer)
        pool = HttpPool(url(server), {}, 5)
        plain, deflate = await post(pool, b"gzip"), await post(pool, b"deflate")
        connection, reply = await pool.post("/chat/completions", b"stream")
        lines = [line async for line in reply.lines()]
        pool.release(connection)
        with pytest.raises(UpstreamDisconnected, match="br-encoded"):
            await post(pool, b"br")
        await pool.aclose()
        server.close()
        return plain[2], deflate[2], b"".join(lines)

    assert run(main()) == (body, body, body)


def test_a_switch_of_protocols_fails_the_request_without_a_fatal_error_in_the_event_loop():
    # httptools signals a 101 with an exception outside its error classes; escaping `data_received` it is logged
    # as a fatal protocol error with a traceback.
    async def main():
        loop_errors: list[dict] = []
        asyncio.get_running_loop().set_exception_handler(lambda _, context: loop_errors.append(context))
        server, _, _ = await serve(
            lambda _: [b"HTTP/1.1 101 Switching Protocols\r\nupgrade: h2c\r\nconnection: upgrade\r\n\r\nraw bytes", 0.2]
        )
        pool = HttpPool(url(server), {}, 5)
        with contextlib.suppress(UpstreamDisconnected):  # a 101 and no body, or the error: either is no answer
            await post(pool)
        await asyncio.sleep(0.05)
        server.close()
        return [error["message"] for error in loop_errors if "protocol" in error], pool._idle

    protocol_errors, idle = run(main())
    assert protocol_errors == [] and idle == []


CHUNKED = b"HTTP/1.1 200 OK\r\ntransfer-encoding: chunked\r\n\r\n"


def chunk(data: bytes) -> bytes:
    return b"%x\r\n%s\r\n" % (len(data), data)


def test_an_endless_head_fails_naming_the_limit_and_its_connection_is_never_reused():
    # A broken upstream sends headers without end: many lines, or one line that never ends (httptools holds that
    # one itself, so counting `on_header` calls would not see it). 1 MiB of either against a 16 KiB limit.
    def answer(request: bytes) -> list[bytes | float | None]:
        if b"lines" in request:
            return [b"HTTP/1.1 200 OK\r\n", *[b"x-junk: %s\r\n" % (b"a" * 1000)] * 1000]
        if b"one" in request:
            return [b"HTTP/1.1 200 OK\r\nx-junk: ", *[b"a" * 1000] * 1000]
        return ok()

    async def main():
        server, _, connections = await serve(answer)
        pool = HttpPool(url(server), {}, 1.0, max_header_bytes=16 * 1024)
        for body in (b"lines", b"one"):
            with pytest.raises(UpstreamTooLarge, match=r"head passed 16384 bytes \(max_header_bytes\)"):
                await post(pool, body)
            assert pool._idle == []
        answer_after = await post(pool)
        await pool.aclose()
        server.close()
        return answer_after, connections

    answer_after, connections = run(main())
    assert answer_after[0] == 200 and connections == [1, 2, 3]


def test_a_body_or_one_stream_line_past_the_limit_fails_but_a_longer_stream_of_short_lines_does_not():
    bomb = gzip.compress(b"x" * 1_000_000)  # ~1 KB that inflates to 1 MB: stopped at the limit, not after

    def answer(request: bytes) -> list[bytes | float | None]:
        if b"big" in request:
            return ok(b"x" * 4097)
        if b"fits" in request:
            return ok(b"x" * 4096)
        if b"bomb" in request:
            return ok(bomb, extra=b"content-encoding: gzip\r\n")
        if b"short" in request:  # 10 KB of 100-byte lines, in 1 KB chunks read as they come
            return [
                CHUNKED,
                *[step for _ in range(10) for step in (0.01, chunk((b"y" * 99 + b"\n") * 10))],
                b"0\r\n\r\n",
            ]
        return [CHUNKED, *[chunk(b"z" * 1000)] * 10, b"0\r\n\r\n"]  # one 10 KB line

    async def lines(pool: HttpPool, body: bytes) -> list[bytes]:
        connection, reply = await pool.post("/chat/completions", body)
        try:
            return [line async for line in reply.lines()]
        finally:
            pool.release(connection)

    async def main():
        server, _, connections = await serve(answer)
        pool = HttpPool(url(server), {}, 1.0, max_body_bytes=4096)
        with pytest.raises(UpstreamTooLarge, match=r"passed 4096 bytes held at once \(max_body_bytes\)"):
            await post(pool, b"big")
        fits = await post(pool, b"fits")
        with pytest.raises(UpstreamTooLarge, match="4096 bytes"):
            await post(pool, b"bomb")
        short = await lines(pool, b"short")
        with pytest.raises(UpstreamTooLarge, match="4096 bytes"):
            await lines(pool, b"long")
        idle = list(pool._idle)
        await pool.aclose()
        server.close()
        return fits, short, connections, idle

    fits, short, connections, idle = run(main())
    assert fits[2] == b"x" * 4096 and short == [b"y" * 99 + b"\n"] * 100
    assert connections == [1, 2, 2, 3, 3] and idle == []  # each refused answer's connection was closed


def test_a_request_waits_for_a_busy_pool_no_longer_than_the_timeout_and_no_slot_leaks():
    # One connection, busy with an answer that takes 2.5 s yet is never 1 s silent (a byte every 0.1 s: no loaded
    # machine's stall is a silence): the next request gives up after 1 s instead of waiting for it; a waiter
    # cancelled meanwhile takes no slot with it.
    def answer(request: bytes) -> list[bytes | float | None]:
        if b"slow" in request:
            return [CHUNKED, *[step for _ in range(25) for step in (0.1, chunk(b"x"))], b"0\r\n\r\n"]
        return ok()

    async def main():
        server, requests, connections = await serve(answer)
        pool = HttpPool(url(server), {}, 1.0, limit=1)
        slow = asyncio.create_task(post(pool, b"slow"))
        await until(lambda: requests, "sent")  # the slow one holds the pool's one connection
        with pytest.raises(UpstreamTimeout, match=r"pool of 1 connections to 127\.0\.0\.1:\d+ was busy for 1s"):
            await post(pool)
        cancelled = asyncio.create_task(post(pool))
        await asyncio.sleep(0.05)  # it waits for the slot (cancelled any time before its 1 s end)
        cancelled.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await cancelled
        slow_body = (await slow)[2]
        after = [await post(pool) for _ in range(2)]
        assert pool._slots is not None
        free = pool._slots._value
        await pool.aclose()
        server.close()
        return slow_body, after, free, connections

    slow_body, after, free, connections = run(main())
    assert slow_body == b"x" * 25 and [a[0] for a in after] == [200, 200]
    assert free == 1 and connections == [1, 1, 1]


def test_the_upstream_makes_a_busy_pool_a_timeout_and_a_too_large_answer_a_server_error():
    # The slow answer: 2.5 s, a byte every 0.1 s, against a 1 s timeout (no loaded machine's stall is a silence).
    def answer(request: bytes) -> list[bytes | float | None]:
        if b"slow" in request:
            return [CHUNKED, *[step for _ in range(25) for step in (0.1, chunk(b" "))], b"0\r\n\r\n"]
        return ok(b" " * 5000)

    async def main():
        server, requests, _ = await serve(answer)
        spec = ModelSpec(name="up", provider="openai", model="up", base_url=url(server))
        upstream = AsyncOpenAIUpstream(spec, timeout=1.0, pool=1)
        upstream._pool = HttpPool(url(server), {}, 1.0, 1, max_body_bytes=4096)  # the pool it makes, a small limit

        def request(text: str) -> ChatRequest:
            return ChatRequest(messages=[Message("user", [TextBlock(text)])], model="up")

        slow = asyncio.create_task(upstream.achat(request("slow")))
        await until(lambda: requests, "sent")  # the slow one holds the pool's one connection
        errors = []
        for text in ("busy", "big"):
            with pytest.raises(ProviderError) as caught:
                if text == "big":
                    with contextlib.suppress(ProviderError):
                        await slow  # whitespace, no completion: its own error, not this test's
                await upstream.achat(request(text))
            errors.append(caught.value)
        await upstream.aclose()
        server.close()
        return errors

    busy, big = run(main())
    assert busy.kind == "timeout" and "was busy for 1s" in str(busy)  # a 504 to the caller
    assert big.kind == "server_error" and not big.retryable and "max_body_bytes" in str(big)  # asked again: paid again


def test_aclose_closes_idle_draining_and_in_use_connections_and_fails_the_waiting_reply():
    # At shutdown: one stream released at its [DONE] whose terminator never comes (draining), one answer framed by
    # closing, half sent (in use: its reader must fail, not take the half as whole), one connection idle.
    def answer(request: bytes) -> list[bytes | float | None]:
        if b"drain" in request:
            return [CHUNKED + chunk(b"data: [DONE]\n\n"), 5.0]
        if b"hang" in request:
            return [b"HTTP/1.1 200 OK\r\nconnection: close\r\n\r\nhalf", 5.0]
        return ok()

    async def main():
        server, _, _ = await serve(answer)
        pool = HttpPool(url(server), {}, 5)
        draining, reply = await pool.post("/chat/completions", b"drain")
        async for line in reply.lines():
            if line.startswith(b"data: [DONE]"):
                break
        pool.release(draining, done=True)
        in_use, reply = await pool.post("/chat/completions", b"hang")
        reading = asyncio.create_task(reply.read())
        await post(pool)
        idle = pool._idle[-1]
        await asyncio.sleep(0.05)
        await pool.aclose()
        with pytest.raises(UpstreamDisconnected, match="pool was closed"):
            await asyncio.wait_for(reading, 1)
        await asyncio.sleep(0.05)
        server.close()
        return [c.transport is not None and c.transport.is_closing() for c in (idle, draining, in_use)], pool

    closed, pool = run(main())
    assert closed == [True, True, True] and pool._connections == set() and pool._idle == []
