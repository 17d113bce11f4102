"""The instant OpenAI-format upstream with a tokens-per-minute quota: HTTP 429 + Retry-After when over.

Like a real provider's account quota, a token bucket of `tpm` per minute (holding at most
`burst_s` seconds of allowance) is charged each request's tokens (prompt ~ characters / 4 plus
max_tokens, as the instant server reports them); a request that does not fit is refused with 429
and the seconds until it would. Used by the batch runner's tests and throughput benchmark.
"""

from __future__ import annotations

import asyncio
import json
import threading
import time

from tokenomy.emulate.instant_openai import _reply


class _Quota:
    def __init__(self, tpm: float, burst_s: float) -> None:
        self.rate = tpm / 60
        self.capacity = self.rate * burst_s
        self.tokens = self.capacity
        self.updated = time.monotonic()
        self.accepted_tokens = 0
        self.accepted = 0
        self.refused = 0

    def take(self, tokens: int) -> float:
        """0 when admitted, else seconds to wait."""
        now = time.monotonic()
        self.tokens = min(self.capacity, self.tokens + (now - self.updated) * self.rate)
        self.updated = now
        if tokens > self.tokens:
            self.refused += 1
            return (tokens - self.tokens) / self.rate
        self.tokens -= tokens
        self.accepted += 1
        self.accepted_tokens += tokens
        return 0.0


def _tokens(body: bytes) -> int:
    request = json.loads(body or b"{}")
    prompt_chars = sum(len(str(m.get("content", ""))) for m in request.get("messages", []))
    return max(1, prompt_chars // 4) + int(request.get("max_tokens") or 16)


class LimitedOpenAI:
    """`with LimitedOpenAI(tpm=60_000) as url:` serves in a thread; `.quota` counts accepted and refused."""

    def __init__(self, tpm: float, burst_s: float = 2.0, delay_s: float = 0.0) -> None:
        self.quota = _Quota(tpm, burst_s)
        self.delay_s = delay_s
        self._loop = asyncio.new_event_loop()
        self._started = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    async def _handle(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            while True:
                head = await reader.readuntil(b"\r\n\r\n")
                length = 0
                for line in head.split(b"\r\n")[1:]:
                    name, _, value = line.partition(b":")
                    if name.strip().lower() == b"content-length":
                        length = int(value.strip())
                body = await reader.readexactly(length) if length else b""
                wait = self.quota.take(_tokens(body))
                if wait:
                    payload = json.dumps({"error": {"message": "Rate limit reached for tokens per min (TPM)",
                                                    "type": "tokens", "code": "rate_limit_exceeded"}}).encode()
                    writer.write(b"HTTP/1.1 429 Too Many Requests\r\ncontent-type: application/json\r\n"
                                 b"retry-after: " + f"{wait:.3f}".encode() + b"\r\ncontent-length: "
                                 + str(len(payload)).encode() + b"\r\n\r\n" + payload)
                else:
                    if self.delay_s:
                        await asyncio.sleep(self.delay_s)
                    payload, kind = _reply(body, self.delay_s)
                    writer.write(b"HTTP/1.1 200 OK\r\ncontent-type: " + kind + b"\r\ncontent-length: "
                                 + str(len(payload)).encode() + b"\r\n\r\n" + payload)
                await writer.drain()
        except (asyncio.IncompleteReadError, ConnectionError, asyncio.CancelledError):
            pass
        finally:
            writer.close()

    def _run(self) -> None:
        asyncio.set_event_loop(self._loop)
        self._server = self._loop.run_until_complete(
            asyncio.start_server(self._handle, "127.0.0.1", 0, backlog=1024))
        self.port = self._server.sockets[0].getsockname()[1]
        self._started.set()
        self._loop.run_forever()

    async def _shutdown(self) -> None:
        self._server.close()
        tasks = [t for t in asyncio.all_tasks() if t is not asyncio.current_task()]
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)

    def __enter__(self) -> str:
        self._thread.start()
        self._started.wait(10)
        return f"http://127.0.0.1:{self.port}/v1"

    def __exit__(self, *exc: object) -> None:
        asyncio.run_coroutine_threadsafe(self._shutdown(), self._loop).result(10)
        self._loop.call_soon_threadsafe(self._loop.stop)
        self._thread.join(5)
