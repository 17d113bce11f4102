"""A stream that ends before its answer's end (the caller left it, or the upstream cut it) is recorded at an estimate:
its output was one token per delta received, yet a provider may send many tokens in one delta (Gemini's and
Bedrock's chunks often carry dozens): 3 deltas of 400 characters were recorded as 3 output tokens, not about 300, and
the budget settled at that. The estimate is now the larger of the deltas and the characters received over four (as
the prompt is estimated)."""

from __future__ import annotations

from collections.abc import AsyncIterator, Iterator

import pytest

from helpers.scripted_openai import ScriptedOpenAI, models
from tokenomy.chat_response import StreamChunk, ToolCallDelta
from tokenomy.client import Tokenomy
from tokenomy.errors import ProviderError
from tokenomy.ledger.store import open_store
from tokenomy.messages import ChatRequest
from tokenomy.providers.registry import ModelSpec

WORDS = "word " * 80  # 400 characters: about 100 tokens


def test_a_stream_the_caller_leaves_is_recorded_at_the_text_it_received(ledger_path):
    upstream = ScriptedOpenAI([(200, {}, "slow")], reply=(WORDS, WORDS, WORDS, WORDS))
    try:
        with Tokenomy(ledger_path, models=models(m=upstream.url)) as client:
            chunks = client.stream(ChatRequest.simple("hi", model="m", max_tokens=500))
            received = [next(chunks) for _ in range(2)]
            chunks.close()
    finally:
        upstream.close()
    assert "".join(c.delta for c in received) == WORDS * 2
    [row] = open_store(ledger_path).events()
    assert row.outcome == "cancelled" and row.output_tokens == 200


class CutProvider:
    """Streams a reasoning piece, a tool call's arguments and text, then fails as a connection lost midway does."""

    name = "cut"
    accepts_server_tools = accepts_zero_output = accepts_1h_cache = True
    deployment_names = False

    def pieces(self) -> list[StreamChunk]:
        return [
            StreamChunk(reasoning="r" * 400),
            StreamChunk(tool_call=ToolCallDelta(0, "c1", "lookup", "a" * 400)),
            StreamChunk(delta="t" * 400),
        ]

    def refusal(self, request):
        return None

    def mapping_refusal(self, request, model):  # the client asks it before each attempt, as the gateway does
        return None

    def carries_cache_points(self, request) -> bool:
        return True

    def server_for(self, request) -> None:
        return None  # in process, as the local model: no server for its span

    def stream(self, request: ChatRequest) -> Iterator[StreamChunk]:
        yield from self.pieces()
        raise ProviderError("the upstream closed the connection mid-answer", kind="server_error", reached=True)

    async def astream(self, request: ChatRequest) -> AsyncIterator[StreamChunk]:
        for piece in self.pieces():
            yield piece
        raise ProviderError("the upstream closed the connection mid-answer", kind="server_error", reached=True)


@pytest.mark.parametrize("run", ["sync", "async"])
def test_a_stream_cut_midway_is_recorded_at_the_text_reasoning_and_arguments_received(run, ledger_path):
    import asyncio

    spec = ModelSpec(name="m", provider="openai", model="m", price_as="gpt-4o-mini")

    class Client(Tokenomy):
        def provider_for(self, spec):
            return CutProvider()

    request = ChatRequest.simple("hi", model="m", max_tokens=500)
    with Client(ledger_path, models={"m": spec}) as client:
        with pytest.raises(ProviderError):
            if run == "sync":
                list(client.stream(request))
            else:

                async def drain() -> None:
                    async for _ in client.astream(request):
                        pass

                asyncio.run(drain())
    [row] = open_store(ledger_path).events()
    assert row.outcome == "server_error" and row.output_tokens == 300 and row.cost_usd > 0
