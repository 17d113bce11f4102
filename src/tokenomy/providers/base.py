"""The provider interface: every backend turns a ChatRequest into a ChatResponse the same way."""

from __future__ import annotations

import asyncio
import threading
from typing import AsyncIterator, Iterator

from tokenomy.messages import ChatRequest, ChatResponse, StreamChunk


class Provider:
    """Subclasses implement `chat` and `stream`; async variants run them in a worker thread."""

    name: str = "provider"  # the gen_ai.provider.name value: local, openai, aws.bedrock, anthropic

    def chat(self, request: ChatRequest) -> ChatResponse:
        """Send the request and wait for the whole answer."""
        final = None
        for chunk in self.stream(request):
            if chunk.response is not None:
                final = chunk.response
        assert final is not None, "stream ended without a final response"
        return final

    def stream(self, request: ChatRequest) -> Iterator[StreamChunk]:  # pragma: no cover - abstract
        """Yield text deltas, then one chunk carrying the complete ChatResponse."""
        raise NotImplementedError

    async def achat(self, request: ChatRequest) -> ChatResponse:
        return await asyncio.to_thread(self.chat, request)

    async def astream(self, request: ChatRequest) -> AsyncIterator[StreamChunk]:
        """Bridge the blocking stream to asyncio through a queue fed by a worker thread."""
        loop = asyncio.get_running_loop()
        queue: asyncio.Queue = asyncio.Queue()
        done = object()

        def pump() -> None:
            try:
                for chunk in self.stream(request):
                    loop.call_soon_threadsafe(queue.put_nowait, chunk)
            except BaseException as exc:  # surfaced to the async consumer below
                loop.call_soon_threadsafe(queue.put_nowait, exc)
            finally:
                loop.call_soon_threadsafe(queue.put_nowait, done)

        threading.Thread(target=pump, daemon=True).start()
        while True:
            item = await queue.get()
            if item is done:
                return
            if isinstance(item, BaseException):
                raise item
            yield item

    def close(self) -> None:
        """Release clients and connections."""
