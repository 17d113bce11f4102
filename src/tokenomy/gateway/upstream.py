"""Pooled async passthrough to OpenAI-compatible upstreams, for the gateway's hot path.

The `openai` SDK's sync client costs ~1.3 ms of CPU per call (request building, response models)
and the base Provider runs it in a worker thread; at the gateway that capped throughput near
400 requests/s. httpx's async pool was measured next: its connection bookkeeping dominated the
profile at 32 connections; then aiohttp's session, ~160 us of CPU a call (see `http_pool`). This
provider sends the same Chat Completions body as the SDK-based OpenAIProvider (both use
`providers.openai_wire`, and read the answer with `providers.openai_wire_read`) over one keep-alive pool per upstream
(`http_pool`, no thread hop). Sync calls still go through the SDK-based provider.
"""

from __future__ import annotations

import json
import os
import time
from collections.abc import AsyncIterator, Iterator
from typing import Any

import orjson

from tokenomy.chat_response import ChatResponse, StreamChunk
from tokenomy.errors import ProviderError, url_without_credential
from tokenomy.gateway.exact_json import dumps
from tokenomy.gateway.http_pool import HttpPool
from tokenomy.gateway.http_reply import Reply, UpstreamDisconnected, UpstreamTimeout, UpstreamTooLarge
from tokenomy.messages import ChatRequest
from tokenomy.providers import openai_dialects, openai_stream, openai_wire_read
from tokenomy.providers.base import url_server
from tokenomy.providers.http_faults import retry_after_seconds
from tokenomy.providers.openai_provider import OpenAIProvider, openai_key
from tokenomy.providers.registry import ModelSpec, get_provider


def _loads(data: bytes | str) -> Any:
    try:
        return orjson.loads(data)
    except ValueError:  # orjson refuses escaped lone surrogates the stdlib reads: never lose a paid answer
        return json.loads(data)


class AsyncOpenAIUpstream(OpenAIProvider):
    """Chat Completions over a keep-alive connection pool; sync calls delegate to the SDK provider."""

    def __init__(
        self,
        spec: ModelSpec,
        timeout: float | None = None,
        pool: int = 512,
        pooled_with: AsyncOpenAIUpstream | None = None,
    ) -> None:
        self.spec = spec
        # Another model's upstream on the same server, whose connections this one uses: one pool per server, while
        # each model's errors and timeouts name that model, not the first one the server was reached for.
        self.pooled_with = pooled_with
        # Without a base_url, where the SDK-based provider (its sync calls) goes: OPENAI_BASE_URL, else OpenAI's API
        base = (spec.base_url or os.environ.get("OPENAI_BASE_URL") or "https://api.openai.com/v1").rstrip("/")
        self.base_url = self._root = base
        self.server = url_server(base)
        self.url = base + "/chat/completions"
        self.ask_usage = openai_dialects.asks_for_usage(base)
        self.openai_proper = self.completion_cap = openai_dialects.is_openai_proper(base)
        self.empty_call_content = spec.empty_tool_call_content
        self.headers = {"authorization": f"Bearer {openai_key(spec.api_key_env)}", "content-type": "application/json"}
        # How long the upstream may stay silent, as the SDK-based provider's timeout works (the model's timeout_s):
        # not a limit on the whole answer, so a long generation that keeps streaming is not cut.
        self.timeout, self.pool = (spec.timeout_s if timeout is None else timeout), pool
        self._pool: HttpPool | None = None

    def connections(self) -> HttpPool:
        """One pool, made on first use inside the serving event loop."""
        if self.pooled_with is not None:
            return self.pooled_with.connections()
        if self._pool is None:
            try:
                self._pool = HttpPool(self._root, self.headers, self.timeout, self.pool)
            except ValueError as exc:  # the gateway's configuration, not the caller's request: a 502 saying so
                raise ProviderError(f"model {self.spec.name!r}: {exc}", kind="server_error") from exc
        return self._pool

    def chat(self, request: ChatRequest) -> ChatResponse:
        return get_provider(self.spec).chat(request)

    def stream(self, request: ChatRequest) -> Iterator[StreamChunk]:
        return get_provider(self.spec).stream(request)

    def _failed(
        self, exc: UpstreamTimeout | UpstreamDisconnected, url: str | None = None, streamed: bool = False
    ) -> ProviderError:
        # A timeout (silence, or the pool's every connection busy that long) is a 504 to the caller. The fix it names
        # is the one for the call that timed out: a stream's timeout bounds each silence, not the whole answer.
        url = url_without_credential(url or self.url)
        if isinstance(exc, UpstreamTimeout):
            waits = (
                f"waits {self.timeout:g}s for each stream chunk: raise its timeout_s for an upstream that can be "
                "silent longer mid-stream, as a reasoning model before its first token"
                if streamed
                else f"waits {self.timeout:g}s: raise its timeout_s for long answers that are not streamed"
            )
            return ProviderError(f"{url}: {exc} (model {self.spec.name!r} {waits})", kind="timeout", reached=exc.sent)
        if isinstance(exc, UpstreamTooLarge):  # the upstream answered (and bills for it): asked again, it would again
            return ProviderError(f"{url}: {exc}", kind="server_error", retryable=False, reached=True)
        # An answer cut off after it began was billed: the attempt is recorded at its estimated prompt. The upstream
        # was reached then, so the message does not say it could not be.
        reach = "" if exc.sent else "cannot reach "
        return ProviderError(f"{reach}{url}: {exc}", kind="server_error", reached=exc.sent)

    def _status_error(self, reply: Reply, raw: bytes, url: str | None = None) -> ProviderError:
        """An error status the upstream answered, naming where it came from (the URL and the model)."""
        text = raw.decode(errors="replace")
        return openai_wire_read.status_error(
            reply.status,
            text,
            retry_after_seconds(reply.headers),
            url_without_credential(url or self.url),
            self.spec.name,
        )

    async def achat(self, request: ChatRequest) -> ChatResponse:
        self.check(request)
        start = time.perf_counter()
        pool = self.connections()
        try:
            body = self.body(request)
            connection, reply = await pool.post("/chat/completions", dumps(body))
            try:
                raw = await reply.read()
            finally:
                pool.release(connection)
        except (UpstreamTimeout, UpstreamDisconnected) as exc:
            raise self._failed(exc) from exc
        if reply.status >= 400:
            raise self._status_error(reply, raw)
        try:
            data = _loads(raw)
        except ValueError as exc:
            raise ProviderError(  # answered (and billed), as parse_completion's unreadable answers are
                f"upstream sent an unreadable completion: {raw[:200].decode(errors='replace')}",
                kind="server_error",
                reached=True,
            ) from exc
        return openai_wire_read.parse_completion(data, request, self.name, (time.perf_counter() - start) * 1000)

    async def astream(self, request: ChatRequest) -> AsyncIterator[StreamChunk]:
        self.check(request)
        start = time.perf_counter()
        ttft = None
        assembler = openai_stream.StreamAssembler(request)
        done = False
        pool = self.connections()
        try:
            body = self.body(request, stream=True)
            connection, reply = await pool.post("/chat/completions", dumps(body))
            try:
                if reply.status >= 400:
                    raise self._status_error(reply, await reply.read())
                async for raw_line in reply.lines():
                    line = raw_line.decode(errors="replace").strip()
                    if not line.startswith("data:"):
                        continue
                    data = line[5:].strip()
                    if data == "[DONE]":
                        done = True
                        break
                    if not data:  # an empty data field carries no chunk
                        continue
                    try:
                        chunk = _loads(data)
                    except ValueError as exc:
                        # Skipped, the text it carried would be missing from an answer recorded ok. It is the
                        # upstream's fault, as a chunk of the wrong shape is: the stream ends in its error, and the
                        # attempt (answered 200, so billed) is recorded at its estimate.
                        raise ProviderError(
                            f"upstream sent a stream line that is no JSON: {data[:200]}",
                            kind="server_error",
                            reached=True,
                        ) from exc
                    for piece in assembler.feed(chunk):
                        if ttft is None and piece.has_content:
                            ttft = (time.perf_counter() - start) * 1000
                        yield piece
            finally:
                pool.release(connection, done)
        except (UpstreamTimeout, UpstreamDisconnected) as exc:
            raise self._failed(exc, streamed=True) from exc
        assembler.check_complete(done)
        yield StreamChunk(response=assembler.response(self.name, (time.perf_counter() - start) * 1000, ttft))

    async def aembed(self, body: dict[str, Any]) -> dict[str, Any]:
        """POST `body` to the upstream's /embeddings over the same pool as chat; its answer, parsed. The body goes as
        given (the gateway has checked its fields), and errors map to the same kinds as a chat call's."""
        url = self._root + "/embeddings"
        pool = self.connections()
        try:
            connection, reply = await pool.post("/embeddings", dumps(body))
            try:
                raw = await reply.read()
            finally:
                pool.release(connection)
        except (UpstreamTimeout, UpstreamDisconnected) as exc:
            raise self._failed(exc, url) from exc
        if reply.status >= 400:
            raise self._status_error(reply, raw, url)
        try:
            data = _loads(raw)
        except ValueError:
            data = None
        if not isinstance(data, dict) or not isinstance(data.get("data"), list):
            # Billed, probably, but not usable: a fault of the upstream (or of its base_url), not of the caller.
            raise ProviderError(
                f"{url} sent no embeddings list: {raw[:200].decode(errors='replace')}",
                kind="server_error",
                retryable=False,
                reached=True,
            )
        return data

    async def aclose(self) -> None:
        if self._pool is not None:
            await self._pool.aclose()

    def close(self) -> None:
        """The SDK client belongs to the shared provider instance; the pool is closed by `aclose`."""
