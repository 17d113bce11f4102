"""An Anthropic Messages API upstream (JSON and SSE) that records each request and answers from a script.

`reply`: the answer's fields (`text`, `stop_reason`, `stop_sequence`); `broken=True` streams a
message_start without its message, a shape the SDK cannot read (a fault inside the gateway's stream);
`redacted`: the data of a redacted_thinking block the answer opens with (streamed whole, before the text);
`thinking`: (thinking, signature) of each signed thinking block the answer opens with (streamed as Anthropic's API does:
thinking_delta, then signature_delta, then content_block_stop);
`failure`: the `error` object of an error event the stream ends with after its text, as Anthropic's API ends a stream
it cannot finish (`{"type": "overloaded_error", ...}`);
`delay_s`: how long each answer takes to start (a slow generation); `hold`: an Event each answer also waits for (60 s
at most), so a test acts while requests are in flight however slow the machine; `usage`: the answer's usage (in
message_start when streamed); `delta_usage`: a streamed answer's message_delta usage; `pace_s`: the seconds between
two events of a streamed answer (a long answer that keeps coming), which an answer not streamed spends silent before
it comes whole.
"""

from __future__ import annotations

import asyncio
import json
import threading
import time

from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, Response, StreamingResponse
from starlette.routing import Route

USAGE = {"input_tokens": 10, "output_tokens": 2, "cache_creation_input_tokens": 0, "cache_read_input_tokens": 0}


class ScriptedAnthropic:
    def __init__(self, text: str = "Hi", stop_reason: str = "end_turn", stop_sequence: str | None = None) -> None:
        self.reply = {"text": text, "stop_reason": stop_reason, "stop_sequence": stop_sequence}
        self.broken = False
        self.failure: dict | None = None
        self.redacted: str | None = None
        self.thinking: list[tuple[str, str]] = []
        self.delay_s = 0.0
        self.pace_s = 0.0
        self.hold: threading.Event | None = None
        self.usage = dict(USAGE)
        self.delta_usage: dict = {"output_tokens": 2}
        self.inflight = self.peak = 0  # requests being answered now / at most at once
        self.requests: list[tuple[dict[str, str], dict]] = []  # (headers, body) of each call
        self.app = Starlette(routes=[Route("/v1/messages", self.messages, methods=["POST"])])

    async def messages(self, request: Request) -> Response:
        body = await request.json()
        self.requests.append((dict(request.headers), body))
        self.inflight += 1
        self.peak = max(self.peak, self.inflight)
        try:
            await asyncio.sleep(self.delay_s)
            deadline = time.monotonic() + 60
            while self.hold is not None and not self.hold.is_set() and time.monotonic() < deadline:
                await asyncio.sleep(0.01)
        finally:
            self.inflight -= 1
        opening = [{"type": "thinking", "thinking": text, "signature": signed} for text, signed in self.thinking]
        opening += [{"type": "redacted_thinking", "data": self.redacted}] if self.redacted else []
        message = {
            "id": "msg_1",
            "type": "message",
            "role": "assistant",
            "model": body["model"],
            "content": [*opening, {"type": "text", "text": self.reply["text"]}],
            "stop_reason": self.reply["stop_reason"],
            "stop_sequence": self.reply["stop_sequence"],
            "usage": self.usage,
        }
        if not body.get("stream"):
            await asyncio.sleep(self.pace_s * 6)  # as long as the six events of its stream take
            return JSONResponse(message)
        if self.broken:
            events = [("message_start", {"type": "message_start"})]
        else:
            text = len(opening)  # the text block's index
            events = [
                (
                    "message_start",
                    {"type": "message_start", "message": {**message, "content": [], "stop_reason": None}},
                ),
                *[event for i, block in enumerate(opening) for event in _streamed(i, block)],
                (
                    "content_block_start",
                    {"type": "content_block_start", "index": text, "content_block": {"type": "text", "text": ""}},
                ),
                (
                    "content_block_delta",
                    {
                        "type": "content_block_delta",
                        "index": text,
                        "delta": {"type": "text_delta", "text": self.reply["text"]},
                    },
                ),
                ("content_block_stop", {"type": "content_block_stop", "index": text}),
                (
                    "message_delta",
                    {
                        "type": "message_delta",
                        "usage": self.delta_usage,
                        "delta": {
                            "stop_reason": self.reply["stop_reason"],
                            "stop_sequence": self.reply["stop_sequence"],
                        },
                    },
                ),
                ("message_stop", {"type": "message_stop"}),
            ]
            if self.failure is not None:  # the text came; then the API ends the stream with its error
                events = [*events[:-3], ("error", {"type": "error", "error": self.failure})]
        sse = [f"event: {name}\ndata: {json.dumps(event)}\n\n" for name, event in events]
        if self.pace_s:
            return StreamingResponse(_paced(sse, self.pace_s), media_type="text/event-stream")
        return Response("".join(sse), media_type="text/event-stream")


async def _paced(events: list[str], pace_s: float):
    for event in events:
        await asyncio.sleep(pace_s)
        yield event


def _streamed(index: int, block: dict) -> list[tuple[str, dict]]:
    """The events of an opening block: a redacted one whole, a thinking one in a thinking and a signature delta."""
    if block["type"] != "thinking":
        opened = block
        deltas = []
    else:
        opened = {"type": "thinking", "thinking": "", "signature": ""}
        deltas = [
            {"type": "thinking_delta", "thinking": block["thinking"]},
            {"type": "signature_delta", "signature": block["signature"]},
        ]
    return [
        ("content_block_start", {"type": "content_block_start", "index": index, "content_block": opened}),
        *[("content_block_delta", {"type": "content_block_delta", "index": index, "delta": d}) for d in deltas],
        ("content_block_stop", {"type": "content_block_stop", "index": index}),
    ]
