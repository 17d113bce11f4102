"""An OpenAI-format upstream for gateway tests: records every body it receives and answers with tool calls.

A request that offers tools and does not end with a `tool` message is answered with one call per
offered tool (at most two, one if parallel_tool_calls is false), with argument text spaced oddly so
a test can see it arrives byte for byte (a custom tool's call is freeform: its `input` is PATCH, raw text);
otherwise it answers with text naming the last tool result.
Usage reports cached and reasoning tokens; `logprobs: true` gets logprobs back (on each streamed delta too); `n`
gets n choices.
"""

from __future__ import annotations

import json
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

USAGE = {
    "prompt_tokens": 40,
    "completion_tokens": 9,
    "total_tokens": 49,
    "prompt_tokens_details": {"cached_tokens": 8, "audio_tokens": 0},
    "completion_tokens_details": {
        "reasoning_tokens": 3,
        "accepted_prediction_tokens": 2,
        "rejected_prediction_tokens": 1,
    },
}
LOGPROBS = {"content": [{"token": "ok", "logprob": -0.25, "bytes": [111, 107], "top_logprobs": []}], "refusal": None}


# A custom (freeform) tool's call input: raw text, as Codex's apply_patch takes it (spaces and newlines kept).
PATCH = "*** Begin Patch\n*** Add File: hello.txt\n+hi  there\n*** End Patch\n"


def arguments_for(name: str) -> str:
    return f'{{"city":  "Paris", "tool": "{name}"}}'  # two spaces: re-serialising would change it


def call_for(tool: dict, i: int) -> dict:
    """The model's call of `tool`: a function call, or a custom tool's freeform call."""
    if tool.get("type") == "custom":
        return {"id": f"call_{i}", "type": "custom", "custom": {"name": tool["custom"]["name"], "input": PATCH}}
    name = tool["function"]["name"]
    return {"id": f"call_{i}", "type": "function", "function": {"name": name, "arguments": arguments_for(name)}}


def tool_calls(body: dict) -> list[dict]:
    tools = body.get("tools") or []
    messages = body.get("messages") or []
    if not tools or (messages and messages[-1].get("role") == "tool"):
        return []
    count = 1 if body.get("parallel_tool_calls") is False else min(2, len(tools))
    return [call_for(tools[i], i) for i in range(count)]


def answer_text(body: dict) -> str:
    tools = [m for m in body.get("messages") or [] if m.get("role") == "tool"]
    return f"answer after {tools[-1]['content']}" if tools else "plain answer"


def completion(body: dict) -> dict:
    calls = tool_calls(body)
    message = {"role": "assistant", "content": None if calls else answer_text(body)}
    if calls:
        message["tool_calls"] = calls
    choice = {"index": 0, "message": message, "finish_reason": "tool_calls" if calls else "stop"}
    if body.get("logprobs"):
        choice["logprobs"] = LOGPROBS
    more = [
        {"index": i, "message": {"role": "assistant", "content": f"choice {i}"}, "finish_reason": "stop"}
        for i in range(1, int(body.get("n") or 1))
    ]
    return {
        "id": "up-1",
        "object": "chat.completion",
        "created": 0,
        "model": body.get("model"),
        "system_fingerprint": "fp_test",
        "choices": [choice, *more],
        "usage": USAGE,
    }


def stream_chunks(body: dict, same_index: bool = False) -> list[dict]:
    """The answer as stream chunks; `same_index` numbers every tool call 0 (as Ollama streams parallel calls)."""

    def chunk(delta: dict, finish: str | None = None) -> dict:
        return {
            "id": "up-1",
            "object": "chat.completion.chunk",
            "created": 0,
            "model": body.get("model"),
            "system_fingerprint": "fp_test",  # on every chunk, as OpenAI sends it
            "choices": [{"index": 0, "delta": delta, "finish_reason": finish}],
        }

    calls = tool_calls(body)
    chunks = [chunk({"role": "assistant", "content": None if calls else ""})]
    for i, call in enumerate(calls):
        kind, key = ("custom", "input") if call["type"] == "custom" else ("function", "arguments")
        text = call[kind][key]
        index = 0 if same_index else i
        opening = {"index": index, "id": call["id"], "type": kind, kind: {"name": call[kind]["name"], key: ""}}
        chunks.append(chunk({"tool_calls": [opening]}))
        for piece in (text[:7], text[7:19], text[19:]):  # argument (or input) fragments, split mid-token
            chunks.append(chunk({"tool_calls": [{"index": index, kind: {key: piece}}]}))
    if not calls:
        words = answer_text(body).split(" ")
        chunks += [chunk({"content": w if i == 0 else " " + w}) for i, w in enumerate(words)]
        for piece in chunks[1:] if body.get("logprobs") else []:  # each delta's own, as OpenAI streams them
            piece["choices"][0]["logprobs"] = LOGPROBS
    chunks.append(chunk({}, "tool_calls" if calls else "stop"))
    if (body.get("stream_options") or {}).get("include_usage"):
        chunks.append(
            {
                "id": "up-1",
                "object": "chat.completion.chunk",
                "created": 0,
                "model": body.get("model"),
                "system_fingerprint": "fp_test",
                "choices": [],
                "usage": USAGE,
            }
        )
    return chunks


def calls_in(chunks: list[dict]) -> bool:
    return any(ch["delta"].get("tool_calls") for c in chunks for ch in c["choices"])


class RecordingOpenAI:
    """`with RecordingOpenAI() as upstream:` serves on 127.0.0.1; `upstream.url` ends in /v1, `upstream.bodies`."""

    def __init__(self) -> None:
        self.bodies: list[dict] = []
        self.raw: list[bytes] = []  # each body's bytes as they arrived (a number re-written on the way shows here)
        self.keys: list[str] = []  # each request's Authorization header
        # Keys added to the first choice's message (e.g. refusal, annotations); a refusal and annotations are
        # streamed too.
        self.message_extra: dict = {}
        # Keys added to the answer's top level (e.g. service_tier, the tier that served it), on every streamed chunk too.
        self.top_extra: dict = {}
        self.same_index = False  # stream every tool call at index 0, each with its own id (Ollama does)
        self.no_ids = False  # tool calls without an `id` (llama.cpp server, LM Studio and others)
        self.finish_reason: str | None = None  # the finish reason to report instead of OpenAI's
        self.no_usage = False  # a whole answer without `usage` (some OpenAI-compatible servers and proxies)
        # A dialect's own answer, replayed as given: `answer` for a whole one, `chunks` (the SSE events, then
        # [DONE]) for a stream; `error` (status, body) for a refusal.
        self.answer: dict | None = None
        self.chunks: list[dict] | None = None
        self.error: tuple[int, dict] | None = None
        recorder = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def log_message(self, *args: object) -> None:  # keep test output clean
                pass

            def do_POST(self) -> None:
                raw = self.rfile.read(int(self.headers.get("content-length") or 0))
                recorder.raw.append(raw)
                body = json.loads(raw or b"{}")
                recorder.bodies.append(body)
                recorder.keys.append(self.headers.get("authorization") or "")
                status = 200
                if recorder.error is not None:
                    status, error = recorder.error
                    payload, kind = json.dumps(error).encode(), "application/json"
                elif body.get("stream") and recorder.chunks is not None:
                    payload = b"".join(b"data: " + json.dumps(c).encode() + b"\n\n" for c in recorder.chunks)
                    payload, kind = payload + b"data: [DONE]\n\n", "text/event-stream"
                elif not body.get("stream") and recorder.answer is not None:
                    payload, kind = json.dumps(recorder.answer).encode(), "application/json"
                elif body.get("stream"):
                    chunks = stream_chunks(body, recorder.same_index)
                    for piece in (p for c in chunks for ch in c["choices"] for p in ch["delta"].get("tool_calls", [])):
                        if recorder.no_ids:
                            piece.pop("id", None)
                    for choice in (ch for c in chunks for ch in c["choices"] if ch["finish_reason"]):
                        choice["finish_reason"] = recorder.finish_reason or choice["finish_reason"]
                    cited = recorder.message_extra.get("annotations")
                    if cited and not calls_in(chunks):  # with the last words, as a search model sends them
                        [*_, last] = [c for c in chunks if c["choices"] and c["choices"][0]["delta"].get("content")]
                        last["choices"][0]["delta"]["annotations"] = cited
                    refusal = recorder.message_extra.get("refusal")
                    if refusal:  # the model refused: its words stream as delta.refusal, and no content
                        chunks = [c for c in chunks if not any(ch["delta"].get("content") for ch in c["choices"])]
                        said = {"index": 0, "delta": {"refusal": refusal}, "finish_reason": None}
                        chunks.insert(1, {**chunks[0], "choices": [said]})
                    payload = b"".join(
                        b"data: " + json.dumps({**c, **recorder.top_extra}).encode() + b"\n\n" for c in chunks
                    )
                    payload += b"data: [DONE]\n\n"
                    kind = "text/event-stream"
                else:
                    answer = completion(body)
                    answer["choices"][0]["message"].update(recorder.message_extra)
                    for call in answer["choices"][0]["message"].get("tool_calls") or []:
                        if recorder.no_ids:
                            call.pop("id")
                    if recorder.finish_reason:
                        answer["choices"][0]["finish_reason"] = recorder.finish_reason
                    if recorder.no_usage:
                        del answer["usage"]
                    answer.update(recorder.top_extra)
                    payload, kind = json.dumps(answer).encode(), "application/json"
                self.send_response(status)
                self.send_header("content-type", kind)
                self.send_header("content-length", str(len(payload)))
                self.end_headers()
                self.wfile.write(payload)

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}/v1"
        self.thread = threading.Thread(target=self.server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True)

    def refuse(self, text: str) -> None:
        """Answer every request as an OpenAI model refusing: `message.refusal` (streamed as `delta.refusal`) with no
        content, 10 prompt and 5 completion tokens."""
        self.answer = {
            "id": "up-1",
            "object": "chat.completion",
            "created": 0,
            "model": "up",
            "choices": [
                {
                    "index": 0,
                    "finish_reason": "stop",
                    "message": {"role": "assistant", "content": None, "refusal": text},
                }
            ],
            "usage": {"prompt_tokens": 10, "completion_tokens": 5, "total_tokens": 15},
        }
        self.message_extra = {"refusal": text}  # how the stream says it

    @property
    def last(self) -> dict:
        return self.bodies[-1]

    def __enter__(self) -> RecordingOpenAI:
        self.thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.server.shutdown()
        self.server.server_close()
        self.thread.join(5)
