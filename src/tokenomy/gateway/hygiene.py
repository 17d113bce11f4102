"""Input hygiene at the edge, before any parsing or provider call (an ASGI middleware).

- Header values with CR, LF or NUL: 400 naming the header. (Behind uvicorn, which `tokenomy serve` runs, its
  parser, httptools or h11, refuses such a request with its own plain-text 400 before any app sees it.)
- Request bodies larger than `max_body_bytes`: 413 (checked on Content-Length and while reading).
- A body that does not arrive within `read_timeout` seconds: 408 and the connection is closed.
- Text that is not valid UTF-8, or a JSON string holding a lone UTF-16 surrogate (`"hi \\ud800"`,
  which Python's JSON decoder accepts but no provider can encode): 400 naming the field.
- NaN, Infinity or a number too large for a double (1e400) as a value (not JSON, yet Python's decoder reads
  them; the SDKs then fail to encode the upstream request, or orjson sends null): 400 naming the field.

Each of these answers to an API call (a request with a body, or any on Gemini's cachedContents:
`metrics_counting.counted_in_metrics`) is counted in /metrics under "unknown" (`metrics_counting.UNROUTED`).

And on the way out: a request with a body (POST, PUT, PATCH: every API call) whose answer had not begun when the
shutdown grace ran out (uvicorn cancels it) gets its API's "unavailable" error, not uvicorn's plain-text 500 and a
traceback in the log; it is counted in /metrics at that status, and a stream whose caller left before its first event
at a 499, under the route admission named (before admission, or a caller who left while its body arrived: under
"unknown").

orjson's strict parser clears the normal body in one pass in C; only a body it refuses is decoded again by
the stdlib, which reads these values, so the field can be named. A body holding an integer past 64 bits is read
exactly (`exact_json.exact_loads`), and one the edge changes is written back with `exact_json.dumps`.
"""

from __future__ import annotations

import asyncio
import json
import logging
import math
import time
from collections.abc import Awaitable, Callable
from typing import Any

import anyio
import orjson
from starlette.types import Message, Receive, Scope, Send

from tokenomy.errors import CALLER_LEFT
from tokenomy.gateway import metrics
from tokenomy.gateway.exact_json import dumps, exact_loads
from tokenomy.gateway.gemini_errors import error_body
from tokenomy.gateway.metrics_counting import (
    BODY_METHODS,
    STARTED,
    UNROUTED,
    count_unanswered,
    counted_in_metrics,
)
from tokenomy.gateway.path_aliases import DEPLOYMENT

log = logging.getLogger(__name__)
# The scope key under which a clean body's JSON value, as orjson parsed it here, is handed to the endpoint: a body
# is parsed once, not once to check it and again to read it (see `schemas.parse_chat_request`).
PARSED_BODY = "tokenomy.parsed_body"
UNPARSED = object()  # the body's value when orjson refused it (the endpoint parses the bytes itself)
BOM = b"\xef\xbb\xbf"  # UTF-8's byte order mark
MAX_DEPTH = 64  # JSON nesting beyond this is refused (Python's decoder recurses; nothing legitimate nests so)


def header_problem(headers: list[tuple[bytes, bytes]]) -> str | None:
    """The name of the first header whose value holds a CR, LF or NUL (which would split or end a header line)."""
    for name, value in headers:
        # Three searches for a byte value (memchr), not a regular expression, whose set-up cost ~1,600 instructions a
        # header, on every header of every request. Byte values, not b"\r": `bytes in bytes` first tries to read its
        # operand as an integer, and raises and clears a TypeError to find it is not one.
        if 13 in value or 10 in value or 0 in value:  # CR, LF, NUL
            return name.decode("latin-1")
    return None


def body_problem(body: bytes) -> tuple[str, str | None] | None:
    """(message, field) for a body whose text cannot be sent on, None when it is clean."""
    return checked_body(body)[1]


def checked_body(body: bytes) -> tuple[Any, tuple[str, str | None] | None]:
    """(the body's JSON value, or UNPARSED; (message, field) for a body whose text cannot be sent on, or None)."""
    if body.startswith(BOM):
        # JSON may open with one (RFC 8259 lets a parser ignore it; some Windows clients send it): orjson refuses it,
        # and a body left unparsed here would reach its endpoint without what the edge adds (an Azure deployment).
        body = body[len(BOM) :]
    try:
        # Strict JSON: one pass in C clears the normal body (3 us for 6 KB with an image), and its value is kept.
        return exact_loads(body), None
    except (orjson.JSONDecodeError, RecursionError):
        pass  # rare: find out why, and where, with the slower tools below
    return UNPARSED, _strict_problem(body)


def _strict_problem(body: bytes) -> tuple[str, str | None] | None:
    try:
        body.decode("utf-8")
    except UnicodeDecodeError as exc:
        return (f"the request body is not valid UTF-8 (byte {exc.start}); send JSON text encoded as UTF-8", None)
    try:
        data = json.loads(body)  # reads NaN, Infinity, 1e400 and lone surrogates, so they can be named
    except ValueError:
        return None  # not JSON: the parser after this middleware says so
    except RecursionError:  # the endpoint's parser would recurse as deep: refused here, for every endpoint alike
        return (f"the request body is nested more than {MAX_DEPTH} levels deep; send the request unnested", None)
    return _unsendable(data)


def _unsendable(data: Any) -> tuple[str, str | None] | None:
    stack: list[tuple[str, Any, int]] = [("", data, 0)]
    while stack:
        path, value, depth = stack.pop()
        if depth > MAX_DEPTH:
            return (f"{path or 'body'}: nested more than {MAX_DEPTH} levels deep", path or None)
        if isinstance(value, str):
            try:
                value.encode("utf-8")
            except UnicodeEncodeError:
                where = path or "body"
                return (
                    f"{where}: contains a lone UTF-16 surrogate (an unpaired \\ud800-\\udfff escape), which is "
                    "not valid Unicode text; send valid UTF-8 (pair the surrogate or remove it)",
                    path or None,
                )
        elif isinstance(value, float) and not math.isfinite(value):
            return (f"{path or 'body'}: {value} is not a JSON number; send a finite number", path or None)
        elif isinstance(value, dict):
            for key, item in value.items():
                child = f"{path}.{key}" if path else str(key)
                stack.append((child, key, depth + 1))  # keys are text too
                stack.append((child, item, depth + 1))
        elif isinstance(value, list):
            stack.extend((f"{path}.{i}" if path else str(i), item, depth + 1) for i, item in enumerate(value))
    return None


# The edge's refusals as Anthropic types them (the rest are invalid_request_error).
ANTHROPIC_TYPES = {408: "timeout_error", 413: "request_too_large", 529: "overloaded_error"}
SHUT_DOWN_BEFORE = "the gateway shut down before answering this request; send it again"
# What uvicorn cancels the requests still running at the end of its graceful shutdown with (uvicorn/server.py): only
# that cancellation is answered and ended here. Any other (a caller's own, the app run in-process under httpx's
# ASGITransport) goes on as a cancellation.
UVICORN_SHUTDOWN = "Task cancelled, timeout graceful shutdown exceeded"


def shutdown_cancel(exc: BaseException) -> bool:
    """Whether `exc` is uvicorn's cancellation of a request its graceful shutdown could not wait for."""
    return isinstance(exc, asyncio.CancelledError) and UVICORN_SHUTDOWN in exc.args


# Bedrock Runtime's paths (Converse, InvokeModel, CountTokens, and the operations the gateway does not serve): answered
# in its REST-JSON shape, the type in `x-amzn-ErrorType` (botocore's error code; without it boto3 raises a ClientError
# with code "400" and no message).
BEDROCK_PREFIXES = ("/model/", "/guardrail/", "/async-invoke")


def api_of(path: str) -> str:
    """Whose error shape a request on this path is answered in ("bedrock", "anthropic", "gemini" or "openai"): each
    SDK reads only its own API's, so an error in another shows no message. By the path as served (Azure's and Vertex
    Gemini's are rewritten first: OpenAI's and the Gemini API's)."""
    if path.startswith(BEDROCK_PREFIXES):
        return "bedrock"
    if path.startswith("/openai/"):  # Azure OpenAI's (its assistants' /threads/{id}/messages too)
        return "openai"
    if "/publishers/anthropic/" in path or path.startswith("/anthropic/"):  # Claude on Vertex AI, on Bedrock's base
        return "anthropic"
    if "/projects/" in path or "/publishers/" in path:  # Vertex AI's other paths: Google's shape
        return "gemini"
    if path.startswith(("/v1beta/", "/v1alpha/")) or (path.startswith("/v1/models/") and ":" in path):
        return "gemini"
    if path.startswith("/v1/cachedContents"):  # where google-genai 3 keeps caches (its default version is v1)
        return "gemini"
    if "/messages" in path:
        return "anthropic"
    return "openai"


async def refuse(
    send: Send, status: int, message: str, param: str | None = None, close: bool = False, shape: str = "openai"
) -> None:
    """An error in OpenAI's shape (Anthropic's, Bedrock's or Google's, by `shape`), sent directly by the middleware."""
    extra: list[tuple[bytes, bytes]] = []
    if shape == "gemini":
        payload = json.dumps(error_body(status, message)).encode()
    elif shape == "anthropic":
        kind = ANTHROPIC_TYPES.get(status, "invalid_request_error")
        payload = json.dumps({"type": "error", "error": {"type": kind, "message": message}}).encode()
    elif shape == "bedrock":
        payload = json.dumps({"message": message}).encode()
        # Bedrock files a bad request as ValidationException; the shutdown's 503 is its ServiceUnavailableException.
        code = b"ServiceUnavailableException" if status == 503 else b"ValidationException"
        extra.append((b"x-amzn-errortype", code))
    else:
        kind = "server_error" if status >= 500 else "invalid_request_error"
        error = {"message": message, "type": kind, "param": param, "code": None}
        payload = json.dumps({"error": error}).encode()
    headers = [(b"content-type", b"application/json"), (b"content-length", str(len(payload)).encode()), *extra]
    if close:
        headers.append((b"connection", b"close"))
    await send({"type": "http.response.start", "status": status, "headers": headers})
    await send({"type": "http.response.body", "body": payload})


class EdgeHygiene:
    def __init__(self, app: Callable, max_body_bytes: int, read_timeout: float) -> None:
        self.app = app
        self.max_body_bytes = max_body_bytes
        self.read_timeout = read_timeout

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        shape = api_of(scope["path"])
        started = time.perf_counter()
        bad = header_problem(scope["headers"])
        if bad is not None:
            await _refused(
                scope,
                send,
                started,
                400,
                f"header {bad}: its value contains a CR, LF or NUL character; send each header value on one line",
                bad,
                shape=shape,
            )
            return
        if scope["method"] not in BODY_METHODS:
            scope[STARTED] = started  # a handler's answer to one counted (`counted_in_metrics`) is timed from here
            await self.app(scope, receive, send)
            return
        declared = next((v for k, v in scope["headers"] if k == b"content-length"), None)
        if declared is not None and declared.isdigit() and int(declared) > self.max_body_bytes:
            await _refused(
                scope,
                send,
                started,
                413,
                f"the request body is {int(declared)} bytes; this gateway accepts at most "
                f"{self.max_body_bytes} (gateway.max_body_bytes)",
                close=True,
                shape=shape,
            )
            return
        chunks: list[bytes] = []
        size = 0
        more = True
        while more:
            try:
                async with asyncio.timeout(self.read_timeout):  # no task per receive, unlike wait_for
                    message = await receive()
            except TimeoutError:
                await _refused(
                    scope,
                    send,
                    started,
                    408,
                    f"the request body did not arrive within {self.read_timeout:g} s (gateway.read_timeout_seconds)",
                    close=True,
                    shape=shape,
                )
                return
            except asyncio.CancelledError as exc:  # the shutdown grace ran out while the body was still arriving
                if not shutdown_cancel(exc):
                    raise
                await _unanswered_at_shutdown(scope, send, shape, started)
                return
            if message["type"] == "http.disconnect":  # its caller left before the body was all there
                count_unanswered(scope, CALLER_LEFT, started)
                return
            chunk = message.get("body", b"")
            size += len(chunk)
            if size > self.max_body_bytes:
                await _refused(
                    scope,
                    send,
                    started,
                    413,
                    f"the request body exceeds {self.max_body_bytes} bytes (gateway.max_body_bytes)",
                    close=True,
                    shape=shape,
                )
                return
            chunks.append(chunk)
            more = message.get("more_body", False)
        body = chunks[0] if len(chunks) == 1 else b"".join(chunks)
        value, problem = checked_body(body)
        if problem is not None:
            await _refused(scope, send, started, 400, problem[0], problem[1], shape=shape)
            return
        if value is not UNPARSED:
            deployment = scope.get(DEPLOYMENT)
            if deployment is not None and isinstance(value, dict):
                # An Azure deployment path names the model (Azure does not read the body's): the endpoints read it as
                # the body's, from the bytes as from the parsed value.
                value["model"] = deployment
                body = dumps(value)
            scope[PARSED_BODY] = value
        scope[STARTED] = started
        replayed = False

        async def replay() -> Message:
            nonlocal replayed
            if not replayed:
                replayed = True
                return {"type": "http.request", "body": body, "more_body": False}
            return await receive()  # after the body: a disconnect, when it comes

        answered = False  # whether the answer has begun: then the shutdown's cancellation cannot be answered here

        def sending(message: Message) -> Awaitable[None]:
            # Not a coroutine: the server's own awaitable is handed back, so a message (each stream chunk) costs a
            # call, not a coroutine of its own and a further await.
            nonlocal answered
            answered = True
            return send(message)

        try:
            await self.app(scope, replay, sending)
        except asyncio.CancelledError as exc:
            # (a stream the shutdown cut after its headers ends itself: responses.FirstChunkStream)
            if answered or not shutdown_cancel(exc):
                raise
            await _unanswered_at_shutdown(scope, send, shape, started)
            return
        if not answered:  # a stream whose caller left before its first event: Starlette stopped it, nothing was sent
            count_unanswered(scope, CALLER_LEFT, started)


async def _refused(
    scope: Scope,
    send: Send,
    started: float,
    status: int,
    message: str,
    param: str | None = None,
    close: bool = False,
    shape: str = "openai",
) -> None:
    """The edge's own refusal (`refuse`) of a request, counted in /metrics under UNROUTED (no route is read from it
    yet) when it is an API call (`counted_in_metrics`): as the endpoints count their answers, not their GETs."""
    if counted_in_metrics(scope["method"], scope["path"]):
        metrics.count(UNROUTED, status, started)
    await refuse(send, status, message, param, close, shape)


def unavailable_status(shape: str) -> int:
    """The status of the "unavailable" error the shutdown ends a request with in this API's shape (`api_of`), which
    each SDK raises as such: Anthropic's 529 overloaded_error (as the gateway answers an overloaded upstream), else
    503."""
    return 529 if shape == "anthropic" else 503


async def _unanswered_at_shutdown(scope: Scope, send: Send, shape: str, started: float) -> None:
    """Answer a request uvicorn cancelled before it was answered (its shutdown grace ran out) with its API's
    "unavailable" status (`unavailable_status`), counted in /metrics. Nothing waits on the cancellation (uvicorn
    cancels and moves on), so it ends here."""
    status = unavailable_status(shape)
    count_unanswered(scope, status, started)
    with anyio.CancelScope(shield=True), anyio.move_on_after(5) as sending:  # a caller reading nothing cannot hold it
        await refuse(send, status, SHUT_DOWN_BEFORE, close=True, shape=shape)
    caller_got = (
        "its caller read nothing for 5 s" if sending.cancelled_caught else "answered its API's unavailable error"
    )
    end_shutdown_cancel(scope["path"], f"cut by the end of the shutdown grace before its answer began; {caller_got}")


def end_shutdown_cancel(path: str, outcome: str) -> None:
    """End uvicorn's shutdown cancellation of the running request, once the request was ended properly (answered,
    or its stream closed with its API's error event), and log one line: `path` and `outcome`, what its caller got.
    Nothing waits on that cancellation (uvicorn cancels and moves on); re-raised, it reached uvicorn, which logged a
    traceback for each request the shutdown cut."""
    task = asyncio.current_task()
    if task is not None:
        task.uncancel()
    log.warning("%s: %s", path, outcome)
