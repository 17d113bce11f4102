"""An OpenAI-format upstream that answers from a script (errors, delays, replies)."""

from __future__ import annotations

import contextlib
import json
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

from tokenomy.providers.registry import ModelSpec


def _sse(events: list[dict]) -> bytes:
    return b"".join(b"data: " + json.dumps(e).encode() + b"\n\n" for e in events)


def _delta(model: str, text: str | None, finish: str | None = None, usage: dict | None = None) -> dict:
    choices = (
        []
        if text is None and finish is None
        else [{"index": 0, "delta": {"content": text} if text else {}, "finish_reason": finish}]
    )
    return {
        "id": "x",
        "object": "chat.completion.chunk",
        "created": 0,
        "model": model,
        "choices": choices,
        "usage": usage,
    }


class ScriptedOpenAI:
    """An OpenAI-format chat server (JSON and SSE streams) that answers from a script, then with 200s.

    A script entry is (status, headers) or (200, {}, kind) for a stream: "broken" sends one delta and then an
    in-stream error event, as OpenAI does when generation fails midway; "error" is that event alone; "cut" sends one
    delta and ends (no finish_reason, no [DONE]: the connection was lost); "nodone" is a whole answer without
    [DONE], as some compatible servers send; "slow" is a whole answer whose deltas come 0.1 s apart (a long
    generation); "stall" sends one delta and then nothing until `release()` (a generation that outlasts a gateway's
    shutdown grace); "late" (streamed or not) starts answering after 1.5 s; "held" starts answering once the test
    calls `release()` (a test that must act while the server works on the request: `received` is set when it has it,
    so nothing depends on how fast a loaded machine runs); "cutbody" is a non-streamed answer whose connection
    closes halfway through its body; "misshapen" is a non-streamed 200 answer without choices, "garbled" one that is
    no JSON ("html" that, labelled text/html, as a proxy's page is); streamed, "misshapen" sends one delta and then
    a chunk whose `choices` is a string, "misshapen-first" that chunk first (then the whole answer); "garbled-line"
    sends the delta "he", then a `data:` line that is no JSON, then a whole answer's end; "done-only" is a streamed
    200 of `data: [DONE]` alone (no chunk, no choice); "empty" is a streamed 200 whose body ends before its first
    event, "whole" a streamed request answered as if it were not. An error entry's third item is the error's `code`
    (e.g. (400, {}, "context_length_exceeded")). `reply`: the answer's stream deltas (a non-streamed answer is their
    concatenation).
    """

    def __init__(self, script: list[tuple], reply: tuple[str, ...] = ("o", "k")) -> None:
        self.script = list(script)
        self.calls = 0
        self.bodies: list[dict] = []
        self.usage = {"prompt_tokens": 1000, "completion_tokens": 10, "total_tokens": 1010}  # what every answer reports
        self.top: dict = {}  # more top-level fields of every non-streamed answer (e.g. service_tier)
        self.error_fields: dict = {}  # more fields of every error's `error` object (e.g. Azure's innererror)
        self.released = threading.Event()  # a "stall" or "held" answer goes on
        self.received = threading.Event()  # a request arrived
        outer = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, *args):  # keep test output clean
                pass

            def do_POST(self):
                length = int(self.headers.get("content-length", 0))
                body = json.loads(self.rfile.read(length))
                outer.calls += 1
                outer.bodies.append(body)
                status, headers, *kind = outer.script.pop(0) if outer.script else (200, {})
                outer.received.set()
                if kind == ["late"]:  # the answer takes a second and a half to start (a long generation)
                    time.sleep(1.5)
                elif kind == ["held"]:
                    outer.released.wait(60)  # bounded: a test that never releases it still ends
                    kind = []
                model = body["model"]
                usage = outer.usage
                content_type = "application/json"
                if status != 200:  # (status, headers, code): an error with OpenAI's error.code
                    code = kind[0] if kind and kind[0] != "late" else None
                    said = {"message": f"scripted {status}", "type": "x", "code": code, **outer.error_fields}
                    data = json.dumps({"error": said}).encode()
                elif body.get("stream") and kind == ["broken"]:
                    content_type = "text/event-stream"
                    data = _sse([_delta(model, "par"), {"error": {"message": "overloaded mid-stream"}}])
                elif body.get("stream") and kind == ["error"]:
                    content_type = "text/event-stream"
                    data = _sse([{"error": {"message": "overloaded", "type": "server_error"}}])
                elif kind == ["garbled"]:
                    data = b"<html>upstream proxy error</html>"
                elif kind == ["html"]:
                    content_type, data = "text/html", b"<html>upstream proxy error</html>"
                elif kind == ["misshapen"] and not body.get("stream"):
                    data = json.dumps({"id": "x", "object": "chat.completion", "model": model, "usage": usage}).encode()
                elif body.get("stream") and kind in (["misshapen"], ["misshapen-first"]):
                    content_type = "text/event-stream"
                    wrong = {**_delta(model, None), "choices": "zzz"}
                    events = [wrong] if kind == ["misshapen-first"] else [_delta(model, "par"), wrong]
                    data = _sse([*events, *(_delta(model, p) for p in reply), _delta(model, None, "stop", usage=usage)])
                    data += b"data: [DONE]\n\n"
                elif body.get("stream") and kind == ["garbled-line"]:
                    content_type = "text/event-stream"
                    data = _sse([_delta(model, "he")]) + b"data: {not json\n\n"
                    data += _sse([_delta(model, None, "stop", usage=usage)]) + b"data: [DONE]\n\n"
                elif body.get("stream") and kind == ["done-only"]:
                    content_type, data = "text/event-stream", b"data: [DONE]\n\n"
                elif body.get("stream") and kind == ["empty"]:
                    content_type, data = "text/event-stream", b""
                elif body.get("stream") and kind == ["cut"]:
                    content_type = "text/event-stream"
                    data = _sse([_delta(model, "par")])
                elif body.get("stream") and kind == ["slow"]:
                    self.send_response(200)
                    self.send_header("content-type", "text/event-stream")
                    self.end_headers()  # no content-length: the body ends when the connection closes
                    for piece in reply:
                        self.wfile.write(_sse([_delta(model, piece)]))
                        self.wfile.flush()
                        time.sleep(0.1)
                    self.wfile.write(_sse([_delta(model, None, "stop", usage=usage)]) + b"data: [DONE]\n\n")
                    return
                elif body.get("stream") and kind == ["stall"]:
                    self.send_response(200)
                    self.send_header("content-type", "text/event-stream")
                    self.end_headers()  # no content-length: the body ends when the connection closes
                    self.wfile.write(_sse([_delta(model, "par")]))
                    self.wfile.flush()
                    outer.released.wait(60)  # bounded: a test that never releases it still ends
                    with contextlib.suppress(OSError):  # the gateway has left by then
                        self.wfile.write(_sse([_delta(model, None, "stop", usage=usage)]) + b"data: [DONE]\n\n")
                    return
                elif body.get("stream") and kind == ["nodone"]:
                    content_type = "text/event-stream"
                    data = _sse([*(_delta(model, p) for p in reply), _delta(model, None, "stop", usage=usage)])
                elif body.get("stream") and kind != ["whole"]:
                    content_type = "text/event-stream"
                    data = (
                        _sse(
                            [
                                *(_delta(model, piece) for piece in reply),
                                _delta(model, None, "stop"),
                                _delta(model, None, usage=usage),
                            ]
                        )
                        + b"data: [DONE]\n\n"
                    )
                else:
                    data = json.dumps(
                        {
                            "id": "x",
                            "object": "chat.completion",
                            "created": 0,
                            "model": model,
                            "choices": [
                                {
                                    "index": 0,
                                    "message": {"role": "assistant", "content": "".join(reply)},
                                    "finish_reason": "stop",
                                }
                            ],
                            "usage": usage,
                            **outer.top,
                        }
                    ).encode()
                if kind == ["cutbody"]:  # the answer was generated (and billed); the connection broke halfway
                    self.send_response(status)
                    self.send_header("content-type", content_type)
                    self.send_header("content-length", str(len(data)))
                    self.end_headers()
                    self.wfile.write(data[: len(data) // 2])
                    self.close_connection = True
                    return
                self.send_response(status)
                for key, value in headers.items():
                    self.send_header(key, value)
                self.send_header("content-type", content_type)
                self.send_header("content-length", str(len(data)))
                self.end_headers()
                with contextlib.suppress(OSError):  # the caller gave up waiting (a "late" answer past its timeout)
                    self.wfile.write(data)

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}/v1"
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    def release(self) -> None:
        """Lets every "stall" and "held" answer go on."""
        self.released.set()

    def close(self) -> None:
        self.release()
        self.server.shutdown()
        self.server.server_close()


def models(**urls: str) -> dict[str, ModelSpec]:
    return {
        name: ModelSpec(name=name, provider="openai", model=name, base_url=url, price_as="gpt-4o-mini")
        for name, url in urls.items()
    }
