"""An instant OpenAI-format chat server on raw asyncio: the upstream for gateway tests and benchmarks.

It answers every POST with a fixed short completion (or an SSE stream), reporting usage that
matches the request: prompt tokens ~ characters of its text / 4, completion tokens = max_tokens (default 16). Tool
results and calls that do not pair are OpenAI's 400, in its words (`tool_pairs_error`).
A POST to .../embeddings gets OpenAI's embeddings answer instead: one vector per input, derived from the input's
bytes (`embedding_vector`, so a test knows what should arrive), as floats or base64 (`encoding_format`), with
`dimensions` numbers each (default 1536, as text-embedding-3-small). An optional delay simulates model latency.
No framework, so it costs almost nothing per request.
"""

from __future__ import annotations

import argparse
import asyncio
import base64
import hashlib
import json
import struct
import threading
import time
from collections.abc import Callable
from typing import Any

import orjson


def _content_chars(content: object) -> int:
    """Characters of a message's text: a string, or the text parts of a list of parts (an image counts none)."""
    if isinstance(content, str):
        return len(content)
    if isinstance(content, list):
        return sum(len(p.get("text") or "") for p in content if isinstance(p, dict) and p.get("type") == "text")
    return 0


DEFAULT_DIMENSIONS = 1536


def embedding_vector(item: str | list[int], dimensions: int = DEFAULT_DIMENSIONS) -> list[float]:
    """The vector this server answers for one input (a text, or a list of token ids): numbers k/128, which a float32
    holds exactly, so floats and base64 carry the very same values."""
    seed = item.encode() if isinstance(item, str) else orjson.dumps(item)
    stream = b""
    counter = 0
    while len(stream) < dimensions:
        stream += hashlib.sha256(seed + counter.to_bytes(4, "big")).digest()
        counter += 1
    return [(byte - 128) / 128 for byte in stream[:dimensions]]


def _embeddings_error(message: str, param: str) -> tuple[int, dict]:
    return 400, {"error": {"message": message, "type": "invalid_request_error", "param": param, "code": None}}


def embeddings_answer(request: dict) -> tuple[int, dict]:
    """OpenAI's embeddings answer (status, body): usage counts a text's characters / 4 (at least 1), a token list's
    length. The Azure OpenAI emulator answers with it too."""
    given = request.get("input")
    single = isinstance(given, str) or (isinstance(given, list) and bool(given) and isinstance(given[0], int))
    items = [given] if single else given
    if not isinstance(items, list) or not items:
        return _embeddings_error("'input' must be a string, a list of strings or of token lists", "input")
    dimensions = request.get("dimensions", DEFAULT_DIMENSIONS)
    if type(dimensions) is not int or dimensions < 1:
        return _embeddings_error("'dimensions' must be a positive integer", "dimensions")
    data, tokens = [], 0
    for index, item in enumerate(items):
        if not isinstance(item, (str, list)):
            return _embeddings_error(f"'input[{index}]' must be a string or a list of token ids", f"input[{index}]")
        tokens += max(1, len(item) // 4) if isinstance(item, str) else len(item)
        vector: list[float] | str = embedding_vector(item, dimensions)
        if request.get("encoding_format") == "base64":  # little-endian float32s, as OpenAI sends them
            vector = base64.b64encode(struct.pack(f"<{dimensions}f", *vector)).decode()
        data.append({"object": "embedding", "index": index, "embedding": vector})
    usage = {"prompt_tokens": tokens, "total_tokens": tokens}
    return 200, {"object": "list", "data": data, "model": request.get("model", "instant"), "usage": usage}


ORPHAN_TOOL_MESSAGE = (
    "Invalid parameter: messages with role 'tool' must be a response to a preceeding message with 'tool_calls'."
)


def tool_pairs_error(messages: object) -> tuple[str, str] | None:
    """(message, param) of OpenAI's 400 for tool calls and results that do not pair, in its words, or None: a `tool`
    message answers a call of the assistant message before its run of tool messages, and each call of an assistant
    message that another follows is answered in the tool messages right after it (results are checked first)."""
    if not isinstance(messages, list):
        return None
    messages = [m if isinstance(m, dict) else {} for m in messages]
    calls: dict[int, list[Any]] = {}  # an assistant message's index: its tool calls' ids
    called: list[Any] | None = None  # the calls the run of tool messages being read may answer
    for i, m in enumerate(messages):
        if m.get("role") != "tool":
            ids = [c.get("id") for c in m.get("tool_calls") or [] if isinstance(c, dict)]
            called = ids if m.get("role") == "assistant" and ids else None
            if called:
                calls[i] = called
        elif called is None:
            return ORPHAN_TOOL_MESSAGE, f"messages.[{i}].role"
        elif m.get("tool_call_id") not in called:
            return (
                f"Invalid parameter: 'tool_call_id' of '{m.get('tool_call_id')}' not found in 'tool_calls' of "
                "previous message.",
                f"messages.[{i}].tool_call_id",
            )
    for i, ids in calls.items():
        if i + 1 == len(messages):
            continue
        answered = set()
        for m in messages[i + 1 :]:
            if m.get("role") != "tool":
                break
            answered.add(m.get("tool_call_id"))
        missing = [str(c) for c in ids if c not in answered]
        if missing:
            return (
                "An assistant message with 'tool_calls' must be followed by tool messages responding to each "
                f"'tool_call_id'. The following tool_call_ids did not have response messages: {', '.join(missing)}",
                f"messages.[{i}].role",
            )
    return None


def _reply(body: bytes, delay_s: float, path: bytes = b"/v1/chat/completions") -> tuple[bytes, bytes, bytes]:
    # orjson, and no text made of a part list: the upstream stays cheap however big the body, so the benchmarks
    # measure the gateway in front of it, not this server competing with it for the same cores.
    request = orjson.loads(body or b"{}")
    if path.split(b"?")[0].endswith(b"/embeddings"):
        status, answer = embeddings_answer(request)
        return b"200 OK" if status == 200 else b"400 Bad Request", orjson.dumps(answer), b"application/json"
    refused = tool_pairs_error(request.get("messages"))
    if refused is not None:
        error = {"message": refused[0], "type": "invalid_request_error", "param": refused[1], "code": None}
        return b"400 Bad Request", orjson.dumps({"error": error}), b"application/json"
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
        return b"200 OK", payload, b"text/event-stream"
    return (
        b"200 OK",
        json.dumps(
            {
                "id": "x",
                "object": "chat.completion",
                "created": 0,
                "model": model,
                "choices": [{"index": 0, "message": {"role": "assistant", "content": "ok"}, "finish_reason": "stop"}],
                "usage": usage,
            }
        ).encode(),
        b"application/json",
    )


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
            path = head.split(b"\r\n", 1)[0].split(b" ")[1:2] or [b"/"]
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
            status, payload, kind = _reply(body, delay_s, path[0])
            writer.write(
                b"HTTP/1.1 "
                + status
                + b"\r\ncontent-type: "
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
