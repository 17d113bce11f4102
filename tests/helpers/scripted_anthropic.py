"""An Anthropic Messages API upstream (JSON and SSE) that records each request and answers from a script.

`reply`: the answer's fields (`text`, `stop_reason`, `stop_sequence`); `broken=True` streams a
message_start without its message, a shape the SDK cannot read (a fault inside the gateway's stream).
"""

from __future__ import annotations

import json

from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

USAGE = {"input_tokens": 10, "output_tokens": 2, "cache_creation_input_tokens": 0, "cache_read_input_tokens": 0}


class ScriptedAnthropic:
    def __init__(self, text: str = "Hi", stop_reason: str = "end_turn", stop_sequence: str | None = None) -> None:
        self.reply = {"text": text, "stop_reason": stop_reason, "stop_sequence": stop_sequence}
        self.broken = False
        self.requests: list[tuple[dict[str, str], dict]] = []  # (headers, body) of each call
        self.app = Starlette(routes=[Route("/v1/messages", self.messages, methods=["POST"])])

    async def messages(self, request: Request) -> Response:
        body = await request.json()
        self.requests.append((dict(request.headers), body))
        message = {
            "id": "msg_1",
            "type": "message",
            "role": "assistant",
            "model": body["model"],
            "content": [{"type": "text", "text": self.reply["text"]}],
            "stop_reason": self.reply["stop_reason"],
            "stop_sequence": self.reply["stop_sequence"],
            "usage": USAGE,
        }
        if not body.get("stream"):
            return JSONResponse(message)
        if self.broken:
            events = [("message_start", {"type": "message_start"})]
        else:
            events = [
                ("message_start", {"type": "message_start",
                                   "message": {**message, "content": [], "stop_reason": None}}),
                ("content_block_start", {"type": "content_block_start", "index": 0,
                                         "content_block": {"type": "text", "text": ""}}),
                ("content_block_delta", {"type": "content_block_delta", "index": 0,
                                         "delta": {"type": "text_delta", "text": self.reply["text"]}}),
                ("content_block_stop", {"type": "content_block_stop", "index": 0}),
                ("message_delta", {"type": "message_delta", "usage": {"output_tokens": 2},
                                   "delta": {"stop_reason": self.reply["stop_reason"],
                                             "stop_sequence": self.reply["stop_sequence"]}}),
                ("message_stop", {"type": "message_stop"}),
            ]
        data = "".join(f"event: {name}\ndata: {json.dumps(event)}\n\n" for name, event in events)
        return Response(data, media_type="text/event-stream")
