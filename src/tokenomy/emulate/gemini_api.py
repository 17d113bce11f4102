"""`tokenomy emulate gemini`: the Gemini API (v1 and v1beta) on the local model, for the `google-genai` SDK.

Routes (AI Studio paths; Vertex AI's `v1beta1/projects/{p}/locations/{l}/publishers/google/models/...`, and its
express mode's `v1beta1/publishers/google/models/...`, serve generateContent and streamGenerateContent too):
- `POST v1beta/models/{model}:generateContent` and `:streamGenerateContent?alt=sse` (SSE `data:` lines);
- `POST v1beta/models/{model}:countTokens`: `totalTokens`, the `promptTokenCount` generateContent reports;
- `POST|GET v1beta/cachedContents`, `GET|PATCH|DELETE v1beta/cachedContents/{id}`: explicit context
  caches (PATCH changes the expiration only, and under an `updateMask` only the fields it names); a request
  naming `cachedContent` reports the cache's tokens as `cachedContentTokenCount`;
- `POST v1beta/models/{model}:batchGenerateContent` (inline requests), `GET v1beta/batches[/{id}]`,
  `POST v1beta/batches/{id}:cancel`, `DELETE v1beta/batches/{id}` (see `gemini_batch`);
- Vertex AI batch prediction, `.../projects/{p}/locations/{l}/batchPredictionJobs[/{id}[:cancel]]`, and the
  Cloud Storage JSON API it reads and writes, `/upload/storage/v1/...` and `/storage/v1/...` (see `vertex_batch`).
Models are the catalog's Gemini ids. A key (`x-goog-api-key` or `?key=`) or a bearer token is required,
any value. Errors use Google's `{"error": {"code", "message", "status"}}` shape.
"""

from __future__ import annotations

import json
import secrets
from typing import Any

from fastapi import FastAPI, Request
from starlette.concurrency import run_in_threadpool
from starlette.responses import JSONResponse, StreamingResponse

from tokenomy.emulate.engine import Engine
from tokenomy.emulate.gemini_batch import GeminiBatches
from tokenomy.emulate.gemini_model import GeminiEmulator
from tokenomy.emulate.gemini_parts import GeminiError, invalid
from tokenomy.emulate.gemini_response import answer, model_failure, response_body, stream_chunks
from tokenomy.emulate.vertex_batch import ObjectStore, VertexBatchJobs, add_routes

VERTEX = "/{version}/projects/{project}/locations/{location}/publishers/google/models/{target}"
VERSIONS = ("v1", "v1beta", "v1beta1")  # google-genai 3.x calls v1 by default; v1beta / v1beta1 (Vertex) too
STORAGE = ("storage", "upload")  # Cloud Storage's JSON API, for Vertex AI batch input and output


def _error(exc: GeminiError) -> JSONResponse:
    return JSONResponse(exc.body(), status_code=exc.code)


def _authorised(request: Request) -> bool:
    return bool(
        request.headers.get("x-goog-api-key")
        or request.query_params.get("key")
        or request.headers.get("authorization", "").startswith("Bearer ")
    )


async def _body(request: Request) -> Any:
    try:
        return json.loads(await request.body() or b"{}")
    except ValueError:
        raise invalid("Invalid JSON payload received.") from None


def create_app(
    throttle_rate: float = 0.0,
    seed: int | None = None,
    engine: Engine | None = None,
    batch_pending_seconds: float = 0.2,
) -> FastAPI:
    """The Gemini API emulator as an ASGI app (`app.state.emulator`, `app.state.batches`,
    `app.state.vertex_jobs` and `app.state.storage` for tests)."""
    emulator = GeminiEmulator(throttle_rate, seed, engine)
    batches = GeminiBatches(emulator, batch_pending_seconds)
    storage = ObjectStore()
    vertex_jobs = VertexBatchJobs(emulator, storage, batch_pending_seconds)
    app = FastAPI(title="Tokenomy Gemini emulator", docs_url=None, redoc_url=None, openapi_url=None)
    app.state.emulator = emulator
    app.state.batches = batches
    app.state.storage = storage
    app.state.vertex_jobs = vertex_jobs

    @app.exception_handler(GeminiError)
    async def gemini_error(request: Request, exc: GeminiError):
        return _error(exc)

    @app.middleware("http")
    async def auth(request: Request, call_next):
        if request.url.path.split("/")[1] not in (*VERSIONS, *STORAGE):
            return _error(
                GeminiError(404, f"{request.url.path}: the emulator serves API versions {', '.join(VERSIONS)}")
            )
        if not _authorised(request):
            return _error(GeminiError(401, "Method doesn't allow unregistered callers. Please use an API key."))
        return await call_next(request)

    async def model_action(target: str, request: Request):
        model, sep, action = target.partition(":")
        if not sep:
            raise GeminiError(404, f"no method on models/{target}; use :generateContent")
        body = await _body(request)
        if action == "batchGenerateContent":
            return JSONResponse(await run_in_threadpool(batches.create, model, body))
        if action == "countTokens":
            tokens = await run_in_threadpool(emulator.count, model, body)
            return JSONResponse(
                {"totalTokens": tokens, "promptTokensDetails": [{"modality": "TEXT", "tokenCount": tokens}]}
            )
        if action not in ("generateContent", "streamGenerateContent"):
            raise GeminiError(404, f"models/{model}:{action} is not served by the Tokenomy emulator")
        call = await run_in_threadpool(emulator.prepare, model, body)
        response_id = secrets.token_urlsafe(12)
        if action == "streamGenerateContent":
            if request.query_params.get("alt") != "sse":
                raise invalid("streamGenerateContent: the Tokenomy emulator streams with alt=sse only")
            return StreamingResponse(stream_chunks(emulator.engine, call, response_id), media_type="text/event-stream")
        try:
            body_out = await run_in_threadpool(lambda: response_body(call, answer(emulator.engine, call), response_id))
        except Exception as exc:  # a local-model failure is the service's fault: the API's 500 shape
            raise model_failure(exc) from None
        return JSONResponse(body_out)

    @app.post("/{version}/models/{target}")
    async def ai_studio(target: str, request: Request):
        return await model_action(target, request)

    @app.post("/{version}/publishers/google/models/{target}")  # Vertex AI's express mode: an API key, no project
    @app.post(VERTEX)
    async def vertex(target: str, request: Request):
        return await model_action(target, request)

    @app.post("/{version}/projects/{project}/locations/{location}/cachedContents")
    @app.post("/{version}/cachedContents")
    async def create_cache(request: Request):
        body = await _body(request)
        return JSONResponse((await run_in_threadpool(emulator.create_cache, body)).body())

    @app.get("/{version}/projects/{project}/locations/{location}/cachedContents")
    @app.get("/{version}/cachedContents")
    async def list_caches(pageSize: int = 50, pageToken: str | None = None):
        caches = emulator.live_caches()
        start = int(pageToken or 0)
        page = [cache.body() for cache in caches[start : start + pageSize]]
        out: dict[str, Any] = {"cachedContents": page}
        if start + pageSize < len(caches):
            out["nextPageToken"] = str(start + pageSize)
        return out

    @app.get("/{version}/projects/{project}/locations/{location}/cachedContents/{cache_id}")
    @app.get("/{version}/cachedContents/{cache_id}")
    async def get_cache(cache_id: str):
        return emulator.cache(cache_id).body()

    @app.patch("/{version}/projects/{project}/locations/{location}/cachedContents/{cache_id}")
    @app.patch("/{version}/cachedContents/{cache_id}")
    async def update_cache(cache_id: str, request: Request):
        return emulator.update_cache(cache_id, await _body(request), request.query_params.get("updateMask")).body()

    @app.delete("/{version}/projects/{project}/locations/{location}/cachedContents/{cache_id}")
    @app.delete("/{version}/cachedContents/{cache_id}")
    async def delete_cache(cache_id: str):
        emulator.delete_cache(cache_id)
        return {}

    add_routes(app, vertex_jobs, storage, _body)

    @app.get("/{version}/batches")
    async def list_batches(pageSize: int = 50, pageToken: str | None = None):
        return batches.list(pageSize, pageToken)

    @app.get("/{version}/batches/{target}")
    async def get_batch(target: str):
        return batches.operation(batches.get(target))

    @app.post("/{version}/batches/{target}")
    async def batch_action(target: str):
        name, _, action = target.partition(":")
        if action != "cancel":
            raise GeminiError(404, f"batches/{target}: only :cancel is served")
        batches.cancel(name)
        return {}

    @app.delete("/{version}/batches/{target}")
    async def delete_batch(target: str):
        batches.delete(target)
        return {}

    return app
