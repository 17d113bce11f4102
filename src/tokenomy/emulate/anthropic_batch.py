"""Anthropic's Message Batches API on the Messages emulator, so the official `anthropic` SDK's
`messages.batches` works unmodified.

Routes: `POST /v1/messages/batches`, `GET /v1/messages/batches` (newest first, `limit`/`after_id`/`before_id`),
`GET /v1/messages/batches/{id}`, `POST /v1/messages/batches/{id}/cancel`, `GET /v1/messages/batches/{id}/results`.
A batch is `in_progress` until every request has an outcome, then `ended` (cancel: `canceling`, then `ended`).
As the API does, `request_counts` keeps every request under `processing` until the batch ends, and the results
file (JSONL, one line per request, by `custom_id`) exists only then. Each request runs through the Messages
emulator (`AnthropicEmulator.prepare`) under the create's `anthropic-beta` header, which applies to every request
of the batch as the API's does: one it refuses is `errored` with its error; requests not run when
the 24 h window ran out are `expired`, and those a cancel stopped are `canceled`.

For tests: `error_ids` maps a custom_id to the error type its request is answered with (e.g.
"overloaded_error"), the window lasts 24 x `seconds_per_hour` real seconds, and `request_delay_s` holds
each request so a batch can be stopped or run out of time midway.
"""

from __future__ import annotations

import json
import re
import threading
import time
import uuid
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from fastapi import APIRouter, FastAPI, Request
from starlette.concurrency import run_in_threadpool
from starlette.responses import JSONResponse, Response

from tokenomy.emulate.anthropic_answer import answer, message_body, message_content, message_usage
from tokenomy.emulate.anthropic_api import AnthropicEmulator
from tokenomy.emulate.anthropic_api import create_app as messages_app
from tokenomy.emulate.anthropic_blocks import AnthropicError, invalid

MAX_REQUESTS = 100_000  # per batch, as the API documents (and 256 MB)
CUSTOM_ID = re.compile(r"^[a-zA-Z0-9_-]{1,64}$")
ERROR_MESSAGES = {
    "overloaded_error": "Overloaded",
    "api_error": "Internal server error",
    "rate_limit_error": "Number of request tokens has exceeded your per-minute rate limit",
}


@dataclass
class AnthropicBatchSettings:
    seconds_per_hour: float = 3600.0
    request_delay_s: float = 0.0
    error_ids: dict[str, str] = field(default_factory=dict)


def _when(seconds: float | None) -> str | None:
    if seconds is None:
        return None
    return datetime.fromtimestamp(seconds, UTC).isoformat().replace("+00:00", "Z")


class AnthropicBatches:
    """Message batches in memory, each worked by its own thread through the Messages emulator."""

    def __init__(self, messages: AnthropicEmulator, settings: AnthropicBatchSettings | None = None) -> None:
        self.messages = messages
        self.settings = settings or AnthropicBatchSettings()
        self.batches: dict[str, dict[str, Any]] = {}  # id -> state (requests, outcomes, times)
        self.lock = threading.Lock()

    def create(self, body: Any, results_base: str, betas: str | None = None) -> dict[str, Any]:
        """A new batch, run at once; `betas`, the create's anthropic-beta header, applies to each of its requests (a
        request's params carry no header of its own)."""
        requests = body.get("requests") if isinstance(body, dict) else None
        if not isinstance(requests, list) or not requests:
            raise invalid("requests: Field required (a non-empty list)")
        if len(requests) > MAX_REQUESTS:
            raise invalid(f"requests: at most {MAX_REQUESTS} requests per batch, got {len(requests)}")
        seen: set[str] = set()
        for i, item in enumerate(requests):
            custom_id = item.get("custom_id") if isinstance(item, dict) else None
            if not isinstance(custom_id, str) or not CUSTOM_ID.match(custom_id):
                raise invalid(f"requests.{i}.custom_id: String should match pattern '^[a-zA-Z0-9_-]{{1,64}}$'")
            if custom_id in seen:
                raise invalid(f"requests.{i}.custom_id: duplicate custom_id {custom_id!r}")
            if not isinstance(item.get("params"), dict):
                raise invalid(f"requests.{i}.params: Field required")
            seen.add(custom_id)
        now = time.time()
        window = 24 * self.settings.seconds_per_hour
        batch_id = f"msgbatch_{uuid.uuid4().hex[:24]}"
        state: dict[str, Any] = {
            "id": batch_id,
            "requests": requests,
            "betas": betas,
            "outcomes": {},  # custom_id -> result object
            "created": now,
            "expires": now + window,
            "ended": None,
            "cancel": None,
            "results_url": f"{results_base}/v1/messages/batches/{batch_id}/results",
        }
        with self.lock:
            self.batches[batch_id] = state
        deadline = time.monotonic() + window
        threading.Thread(
            target=self._run, args=(state, deadline), name=f"anthropic-batch:{batch_id}", daemon=True
        ).start()
        return self.view(state)

    def get(self, batch_id: str) -> dict[str, Any]:
        if batch_id not in self.batches:
            raise AnthropicError("not_found_error", f"message_batch: {batch_id} not found")
        return self.batches[batch_id]

    def view(self, state: dict[str, Any]) -> dict[str, Any]:
        """The MessageBatch object: counts by outcome only once the batch ended, as the API reports them."""
        counts = dict.fromkeys(("processing", "succeeded", "errored", "canceled", "expired"), 0)
        ended = state["ended"] is not None
        if ended:
            for result in state["outcomes"].values():
                counts[result["type"]] += 1
        else:
            counts["processing"] = len(state["requests"])
        status = "ended" if ended else ("canceling" if state["cancel"] else "in_progress")
        return {
            "id": state["id"],
            "type": "message_batch",
            "processing_status": status,
            "request_counts": counts,
            "created_at": _when(state["created"]),
            "expires_at": _when(state["expires"]),
            "ended_at": _when(state["ended"]),
            "cancel_initiated_at": _when(state["cancel"]),
            "archived_at": None,
            "results_url": state["results_url"] if ended else None,
        }

    def cancel(self, batch_id: str) -> dict[str, Any]:
        state = self.get(batch_id)
        with self.lock:
            if state["ended"] is None and state["cancel"] is None:
                state["cancel"] = time.time()
        return self.view(state)

    def results(self, batch_id: str) -> bytes:
        state = self.get(batch_id)
        if state["ended"] is None:
            raise invalid(f"message_batch {batch_id} is still processing; results are available once it has ended")
        lines = (json.dumps({"custom_id": cid, "result": result}) for cid, result in state["outcomes"].items())
        return "".join(line + "\n" for line in lines).encode()

    def listed(self, limit: int, after_id: str | None, before_id: str | None) -> dict[str, Any]:
        newest = sorted(self.batches.values(), key=lambda s: s["created"], reverse=True)
        ids = [s["id"] for s in newest]
        if after_id in ids:
            newest = newest[ids.index(after_id) + 1 :]
        elif before_id in ids:
            newest = newest[: ids.index(before_id)]
        page = newest[:limit]
        return {
            "data": [self.view(s) for s in page],
            "has_more": len(newest) > len(page),
            "first_id": page[0]["id"] if page else None,
            "last_id": page[-1]["id"] if page else None,
        }

    def _run(self, state: dict[str, Any], deadline: float) -> None:
        ended = None
        for item in state["requests"]:
            if ended is None and state["cancel"] is not None:
                ended = "canceled"
            elif ended is None and time.monotonic() >= deadline:
                ended = "expired"
            state["outcomes"][item["custom_id"]] = {"type": ended} if ended else self._answer(item, state["betas"])
            if self.settings.request_delay_s and not ended:
                time.sleep(self.settings.request_delay_s)
        state["ended"] = time.time()

    def _answer(self, item: dict[str, Any], betas: str | None) -> dict[str, Any]:
        """One request's result: its message, or the error the Messages API would answer it with under the batch's
        beta header (`betas`)."""
        kind = self.settings.error_ids.get(item["custom_id"])
        try:
            if kind:
                raise AnthropicError(kind, ERROR_MESSAGES.get(kind, "Injected error"))
            params = item["params"]
            if params.get("stream"):
                raise invalid("stream: streaming is not supported in a message batch")
            prepared, model, budget = self.messages.prepare(params, betas)
            content, output_tokens, stop, searches, sequence = message_content(
                answer(self.messages.engine, prepared, budget)
            )
        except AnthropicError as exc:
            error = {"type": "error", "error": {"type": exc.kind, "message": exc.message}, "request_id": None}
            return {"type": "errored", "error": error}
        usage = message_usage(prepared, output_tokens, searches)
        message = message_body(f"msg_{uuid.uuid4().hex[:24]}", model, content, stop, sequence, usage)
        return {"type": "succeeded", "message": message}


def create_app(
    throttle_rate: float = 0.0,
    seed: int | None = None,
    retry_after: float | None = None,
    engine: Any = None,
    **batch_settings: Any,
) -> FastAPI:
    """The Messages API emulator (`anthropic_api.create_app`) with its Message Batches; `batch_settings` are
    AnthropicBatchSettings' fields. `app.state.batches` holds the batches (tests change its settings)."""
    app = messages_app(throttle_rate, seed, retry_after, engine)
    app.state.batches = AnthropicBatches(app.state.emulator, AnthropicBatchSettings(**batch_settings))
    app.include_router(batch_router(app.state.batches))
    return app


def _error(exc: AnthropicError) -> JSONResponse:
    return JSONResponse({"type": "error", "error": {"type": exc.kind, "message": exc.message}}, status_code=exc.status)


def batch_router(batches: AnthropicBatches) -> APIRouter:
    """The Message Batches routes under /v1/messages/batches."""
    router = APIRouter(prefix="/v1/messages/batches")

    @router.post("")
    async def create(request: Request):
        if not (request.headers.get("x-api-key") or request.headers.get("authorization")):
            return _error(AnthropicError("authentication_error", "x-api-key header is required"))
        try:
            body = json.loads(await request.body() or b"{}")
        except ValueError:
            return _error(invalid("request body is not valid JSON"))
        base = str(request.base_url).rstrip("/")
        try:
            betas = request.headers.get("anthropic-beta")  # the batch's, for each of its requests
            return JSONResponse(await run_in_threadpool(batches.create, body, base, betas))
        except AnthropicError as exc:
            return _error(exc)

    @router.get("")
    async def list_batches(limit: int = 20, after_id: str | None = None, before_id: str | None = None):
        return JSONResponse(batches.listed(max(1, min(limit, 1000)), after_id, before_id))

    @router.get("/{batch_id}")
    async def retrieve(batch_id: str):
        try:
            return JSONResponse(batches.view(batches.get(batch_id)))
        except AnthropicError as exc:
            return _error(exc)

    @router.post("/{batch_id}/cancel")
    async def cancel(batch_id: str):
        try:
            return JSONResponse(batches.cancel(batch_id))
        except AnthropicError as exc:
            return _error(exc)

    @router.get("/{batch_id}/results")
    async def results(batch_id: str):
        try:
            return Response(batches.results(batch_id), media_type="application/binary")
        except AnthropicError as exc:
            return _error(exc)

    return router
