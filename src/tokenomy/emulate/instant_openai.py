"""An instant OpenAI-format chat server on raw asyncio: the upstream for gateway tests and benchmarks.

It answers every POST with a fixed short completion (or an SSE stream), reporting usage that
matches the request: prompt tokens ~ characters of its text / 4, completion tokens = max_tokens (default 16).
An optional delay simulates model latency. No framework, so it costs almost nothing per request.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import threading
import time
from collections.abc import Callable

import orjson


def _content_chars(content: object) -> int:
    """Characters of a message's text: a string, or the text parts of a list of parts (an image counts none)."""
    if isinstance(content, str):
        return len(content)
    if isinstance(content, list):
        return sum(len(p.get("text") or "") for p in content if isinstance(p, dict) and p.get("type") == "text")
    return 0


def _reply(body: bytes, delay_s: float) -> tuple[bytes, bytes]:
    # orjson, and no text made of a part list: the upstream stays cheap however big the body, so the benchmarks
    # measure the gateway in front of it, not this server competing with it for the same cores.
    request = orjson.loads(body or b"{}")
    prompt_chars = sum(_content_chars(m.get("content")) for m in request.get("messages", []))
    completion = int(request.get("max_tokens") or request.get("max_completion_tokens") or 16)
    usage = {
        "prompt_tokens": max(1, prompt_chars // 4),
        "completion_tokens": completion,
        "total_tokens": max(1, prompt_chars // 4) + completion,
    }
    model = request.get("model", "instant")
    if request.get("stream"):
        chunks = [
            {
                "id": "x",
                "object": "chat.completion.chunk",
                "created": 0,
                "model": model,
                "choices": [{"index": 0, "delta": {"role": "assistant", "content": "ok"}, "finish_reason": None}],
            },
            {
                "id": "x",
                "object": "chat.completion.chunk",
                "created": 0,
                "model": model,
                "choices": [{"index": 0, "delta": {}, "finish_reason": "stop"}],
            },
            {"id": "x", "object": "chat.completion.chunk", "created": 0, "model": model, "choices": [], "usage": usage},
        ]
        payload = b"".join(b"data: " + json.dumps(c).encode() + b"\n\n" for c in chunks) + b"data: [DONE]\n\n"
        return payload, b"text/event-stream"
    return json.dumps(
        {
            "id": "x",
            "object": "chat.completion",
            "created": 0,
            "model": model,
            "choices": [{"index": 0, "message": {"role": "assistant", "content": "ok"}, "finish_reason": "stop"}],
            "usage": usage,
        }
    ).encode(), b"application/json"


async def _handle(
    reader: asyncio.StreamReader,
    writer: asyncio.StreamWriter,
    delay_s: float,
    refuse: Callable[[bytes], bytes | None] | None = None,
) -> None:
    """Answer requests on one connection; `refuse(body)` may return a whole HTTP response to send instead."""
    try:
        while True:
            head = await reader.readuntil(b"\r\n\r\n")
            length = 0
            for line in head.split(b"\r\n")[1:]:
                name, _, value = line.partition(b":")
                if name.strip().lower() == b"content-length":
                    length = int(value.strip())
            body = await reader.readexactly(length) if length else b""
            refusal = refuse(body) if refuse else None
            if refusal:
                writer.write(refusal)
                await writer.drain()
                continue
            if delay_s:
                await asyncio.sleep(delay_s)
            payload, kind = _reply(body, delay_s)
            writer.write(
                b"HTTP/1.1 200 OK\r\ncontent-type: "
                + kind
                + b"\r\ncontent-length: "
                + str(len(payload)).encode()
                + b"\r\n\r\n"
                + payload
            )
            await writer.drain()
    except (asyncio.IncompleteReadError, ConnectionError, asyncio.CancelledError):
        pass
    finally:
        writer.close()


class InstantOpenAI:
    """`with InstantOpenAI() as url:` runs the server in a thread; `url` ends in /v1."""

    def __init__(self, port: int = 0, delay_s: float = 0.0) -> None:
        self.port, self.delay_s = port, delay_s
        self._loop = asyncio.new_event_loop()
        self._started = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def _run(self) -> None:
        asyncio.set_event_loop(self._loop)
        server = self._loop.run_until_complete(
            asyncio.start_server(
                lambda r, w: _handle(r, w, self.delay_s, self._refusal), "127.0.0.1", self.port, backlog=1024
            )
        )
        self._server = server
        self.port = server.sockets[0].getsockname()[1]
        self._started.set()
        self._loop.run_forever()

    def _refusal(self, body: bytes) -> bytes | None:
        """Subclasses refuse some requests (quotas); this server answers everything."""
        return None

    def __enter__(self) -> str:
        self._thread.start()
        self._started.wait(10)
        return f"http://127.0.0.1:{self.port}/v1"

    async def _shutdown(self) -> None:
        self._server.close()
        tasks = [t for t in asyncio.all_tasks() if t is not asyncio.current_task()]
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)

    def __exit__(self, *exc: object) -> None:
        asyncio.run_coroutine_threadsafe(self._shutdown(), self._loop).result(10)
        self._loop.call_soon_threadsafe(self._loop.stop)
        self._thread.join(5)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--port", type=int, default=9999)
    parser.add_argument("--delay", type=float, default=0.0)
    args = parser.parse_args()
    import uvloop

    uvloop.install()

    async def serve() -> None:
        server = await asyncio.start_server(
            lambda r, w: _handle(r, w, args.delay), "127.0.0.1", args.port, backlog=4096
        )
        async with server:
            await server.serve_forever()

    print(f"instant OpenAI upstream on http://127.0.0.1:{args.port}/v1", flush=True)
    started = time.time()
    try:
        asyncio.run(serve())
    except KeyboardInterrupt:
        print(f"stopped after {time.time() - started:.0f}s")


if __name__ == "__main__":
    main()
