"""`tokenomy serve`: the gateway app, OpenAI-compatible chat completions with routing, caching, caps, retries, budgets.

Every request passes: auth (virtual key) → overload guard → route → rate limit → budget reservation
(estimated cost) → the one call path (`tokenomy.client`) → settlement at the actual cost → ledger.
`create_app` builds the app around the route modules (`chat_routes` for `/v1/chat/completions` and `/v1/models`,
`anthropic_routes`, `converse_routes`, ...): the gateway's state for the lifespan, the edge hygiene, the error
handlers that answer in each API's shape, `/healthz`, `/metrics`, the OpenAPI document and the fast path.
"""

from __future__ import annotations

import asyncio
import gc
import hmac
import logging
import os
from collections.abc import AsyncIterator
from concurrent.futures import ThreadPoolExecutor
from contextlib import asynccontextmanager
from typing import Any

from fastapi import FastAPI, Request
from fastapi.exception_handlers import http_exception_handler
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse, PlainTextResponse, Response
from starlette.exceptions import HTTPException

from tokenomy.config import TokenomyConfig, load_config
from tokenomy.errors import NotOnThisLedger
from tokenomy.gateway import metrics, supervision
from tokenomy.gateway.anthropic_errors import anthropic_error
from tokenomy.gateway.anthropic_routes import create_message
from tokenomy.gateway.anthropic_routes import router as anthropic_router
from tokenomy.gateway.bedrock_count import router as bedrock_count_router
from tokenomy.gateway.chat_routes import chat_completions
from tokenomy.gateway.chat_routes import router as chat_router
from tokenomy.gateway.converse_routes import bedrock_error
from tokenomy.gateway.converse_routes import router as converse_router
from tokenomy.gateway.embeddings_routes import router as embeddings_router
from tokenomy.gateway.fast_path import SENT_PATH, GatewayApp
from tokenomy.gateway.gemini_caches import router as gemini_caches_router
from tokenomy.gateway.gemini_errors import gemini_error
from tokenomy.gateway.gemini_routes import router as gemini_router
from tokenomy.gateway.hygiene import EdgeHygiene, api_of
from tokenomy.gateway.invoke_routes import router as invoke_router
from tokenomy.gateway.metrics_counting import count_in_metrics, counted_in_metrics
from tokenomy.gateway.responses import error, invalid_body
from tokenomy.gateway.responses_count import router as responses_count_router
from tokenomy.gateway.responses_routes import router as responses_router
from tokenomy.gateway.schemas import ChatCompletionRequest
from tokenomy.gateway.state import Gateway
from tokenomy.gateway.unserved import unserved
from tokenomy.gateway.vertex_routes import router as vertex_router

log = logging.getLogger(__name__)


def in_its_api(request: Request, status: int, message: str, code: str) -> JSONResponse:
    """A gateway-side error in the shape of the API the request's path belongs to (OpenAI's where none)."""
    api = api_of(request.url.path)
    if api == "anthropic":
        return anthropic_error(status, message)
    if api == "bedrock":
        return bedrock_error(status, message)  # botocore reads the code from x-amzn-ErrorType
    if api == "gemini":
        return gemini_error(status, message)
    return error(status, message, "server_error", code)


def counted(request: Request, answer: Response) -> Response:
    """`answer`, an exception handler's to an API call (`metrics_counting.counted_in_metrics`), counted in /metrics
    under the route admission named (`metrics_counting.COUNTED_AS`; before admission, `UNROUTED`), as its endpoint
    counts its own answers; timed from when the edge began reading it (`metrics_counting.STARTED`)."""
    return count_in_metrics(request.scope, answer) if counted_in_metrics(request.method, request.url.path) else answer


def create_app(
    config: TokenomyConfig | None = None, ledger: str | None = None, own_process: bool = False, workers: int = 1
) -> FastAPI:
    """Build the gateway app (no config: serves the local model). `own_process`: the process serves only this
    gateway (`tokenomy serve`), so its garbage collector may be tuned for it. `workers`: how many processes serve it
    (`serve --workers N`), which share out a route's `rate_limit`."""
    config = config or load_config(None)
    holder: dict[str, Gateway] = {}

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        # The SDK-based providers (Anthropic, Bedrock, Gemini) call in worker threads of the loop's default pool,
        # which asyncio sizes min(32, cores + 4): 6 calls at once on two cores, whatever max_inflight admits. One
        # thread per admitted call, plus a few for key and budget lookups; threads start only as calls need them.
        asyncio.get_running_loop().set_default_executor(
            ThreadPoolExecutor(max_workers=config.gateway.max_inflight + 8, thread_name_prefix="tokenomy-call")
        )
        holder["gw"] = Gateway(config, ledger, workers)
        await holder["gw"].start()
        if own_process:
            _tune_gc()
        app.state.ledger_store = holder["gw"].store
        app.state.gateway = holder["gw"]  # the dashboard checks virtual keys when auth is on
        yield
        await holder["gw"].wind_down()  # calls cancelled requests left running are recorded and settled first
        holder["gw"].close()
        await holder["gw"].limits.aclose()
        await holder["gw"].client.aclose_upstreams()
        holder["gw"].client.close(wait_s=0)  # in-flight requests are done: flush the ledger

    app = GatewayApp(
        title="Tokenomy gateway",
        version="0.1.0",
        lifespan=lifespan,
        description="OpenAI-compatible chat completions with cost policies.",
        # FastAPI's /docs and /redoc load Swagger UI and ReDoc from CDNs: blank pages offline, and another site's
        # scripts on the origin where the dashboard keeps its virtual key. /openapi.json describes the API.
        docs_url=None,
        redoc_url=None,
    )
    edge = config.gateway
    app.add_middleware(EdgeHygiene, max_body_bytes=edge.max_body_bytes, read_timeout=edge.read_timeout_seconds)
    # With metrics_key_env named but unset, /metrics is closed rather than silently open.
    metrics_key = os.environ.get(edge.metrics_key_env, "") if edge.metrics_key_env else None

    if config.redis_url:
        from redis.exceptions import ConnectionError as RedisDown
        from redis.exceptions import RedisError
        from redis.exceptions import TimeoutError as RedisSilent

        @app.exception_handler(RedisError)
        async def limits_down(request: Request, exc: RedisError) -> Response:
            # Shared limits cannot be checked: refuse (retryable) rather than let the call through unreserved, in the
            # shape of the caller's API (its SDK reads the status and message from it), not as a bare 500. Said as
            # it is: Redis unreachable, or answering but refusing the check (out of memory, read-only replica).
            if isinstance(exc, (RedisDown, RedisSilent)):
                message = f"the gateway cannot reach Redis, its limits store at redis_url ({exc}); retry later"
            else:
                message = (
                    f"Redis, the gateway's limits store at redis_url, refused the limits check ({exc}); retry later"
                )
            return counted(request, in_its_api(request, 503, message, "limits_unavailable"))

    @app.exception_handler(Exception)
    async def unexpected(request: Request, exc: Exception) -> Response:
        # Still logged with its traceback by the server; the client gets its API's error shape, not plain text.
        status, message, code = 500, f"internal error ({type(exc).__name__}); see the gateway's log", "internal_error"
        if type(exc).__module__.split(".")[0] in ("psycopg", "duckdb", "psycopg_pool"):
            status, code = 503, "database_unavailable"
            message = f"the gateway's database is unavailable ({type(exc).__name__}); retry later"
        return counted(request, in_its_api(request, status, message, code))

    @app.exception_handler(NotOnThisLedger)
    async def not_on_this_ledger(request: Request, exc: NotOnThisLedger) -> Response:
        # A feature this ledger cannot hold (a ClickHouse ledger and Gemini's cachedContents): the operator's choice,
        # not a fault, so no traceback; the caller is told what the gateway does not serve here, and why.
        status, message = 501, str(exc)
        log.warning("%s %s: %s", request.method, request.url.path, message)
        return counted(request, in_its_api(request, status, message, "not_implemented"))

    @app.exception_handler(HTTPException)
    async def no_such_endpoint(request: Request, exc: HTTPException) -> Response:
        # A path or method the gateway does not serve: the SDK's error shape naming what it does serve, not
        # FastAPI's {"detail": "Not Found"}, which the SDKs cannot read and which names no fix.
        if exc.status_code not in (404, 405) or request.url.path.startswith("/dashboard"):
            return await http_exception_handler(request, exc)  # the dashboard's own errors, as its page reads them
        sent = request.scope.get(SENT_PATH)
        return unserved(request.method, request.url.path, exc.status_code, dict(exc.headers or {}), sent)

    @app.exception_handler(RequestValidationError)
    async def invalid(request: Request, exc: RequestValidationError) -> Response:
        answer = invalid_body(exc.errors())
        if config.auth and "gw" in holder:  # a caller without a key gets 401 before any word on its body
            key = await holder["gw"].authenticate_async(request.headers.get("authorization"))
            if isinstance(key, JSONResponse):
                answer = key
        return counted(request, answer)  # an API call refused before its model was read, as the edge counts one

    @app.get("/healthz")
    async def healthz() -> dict:
        """Liveness: the process is up and its ledger writer is running. `journal` says whether an answer that leaves
        now survives a crash ("failing": the disk is full; "off": `gateway.journal: false`); "degraded" then, still a
        200, for the process is alive and a restart would not mend a full disk."""
        gw = holder.get("gw")
        journal = "off" if gw is None or gw.journal is None else "failing" if gw.journal.failing else "ok"
        return {
            "status": "degraded" if journal == "failing" else "ok",
            "journal": journal,
            "pending_ledger_events": gw.writer.pending if gw else 0,
        }

    @app.get("/metrics", response_class=PlainTextResponse)
    async def prometheus(request: Request) -> Response:
        """Prometheus text exposition of requests, tokens, cost and latency (every worker's, summed)."""
        if metrics_key is not None and not (
            metrics_key
            and hmac.compare_digest(request.headers.get("authorization", "").encode(), f"Bearer {metrics_key}".encode())
        ):
            return error(
                401,
                f"/metrics needs `Authorization: Bearer <the key in ${edge.metrics_key_env}>`",
                "invalid_request_error",
                "invalid_api_key",
            )
        return PlainTextResponse(metrics.render(), media_type=metrics.CONTENT_TYPE)

    # Included here, before the other APIs' routers, so the routes (and the OpenAPI document's paths) keep their order.
    app.include_router(chat_router)  # POST /v1/chat/completions, GET /v1/models[/{model}]: OpenAI's chat completions

    default_openapi = app.openapi

    def openapi_with_examples() -> dict[str, Any]:
        """The served OpenAPI document, with a request example naming a model this gateway really serves."""
        if app.openapi_schema is None:
            schema = default_openapi()  # cached on app.openapi_schema; the example is added once
            components = schema.setdefault("components", {}).setdefault("schemas", {})
            request_schema = ChatCompletionRequest.model_json_schema(ref_template="#/components/schemas/{model}")
            components.update(request_schema.pop("$defs", {}))
            components["ChatCompletionRequest"] = request_schema
            served = next(iter(config.routes), None) or next(iter(config.models), None) or "local"
            body = schema.get("components", {}).get("schemas", {}).get("ChatCompletionRequest")
            if body is not None:
                body["example"] = {
                    "model": served,
                    "messages": [{"role": "user", "content": "Say hi."}],
                    "max_tokens": 8,
                }
                body["properties"]["model"]["examples"] = [served]
        return app.openapi_schema or {}

    app.openapi = openapi_with_examples  # type: ignore[method-assign]

    from tokenomy.gateway.dashboard_routes import router as dashboard_router

    app.include_router(dashboard_router)  # /dashboard: cost charts over this gateway's ledger
    app.include_router(anthropic_router)  # POST /v1/messages: Anthropic's Messages API over the same path
    app.include_router(converse_router)  # POST /model/{modelId}/converse(-stream): Bedrock's Converse API, the same
    app.include_router(invoke_router)  # POST /model/{modelId}/invoke(-with-response-stream): Claude's body, the same
    app.include_router(bedrock_count_router)  # POST /model/{modelId}/count-tokens: Bedrock's CountTokens
    app.include_router(gemini_router)  # POST /v1beta/models/{model}:generateContent: the Gemini API, the same
    app.include_router(gemini_caches_router)  # /v1beta/cachedContents: Gemini's explicit caches, kept by the gateway
    app.include_router(vertex_router)  # POST /v1/projects/.../anthropic/models/{model}:rawPredict: Claude on Vertex
    app.include_router(responses_router)  # POST /v1/responses: OpenAI's Responses API, the same
    app.include_router(responses_count_router)  # POST /v1/responses/input_tokens: its token count
    app.include_router(embeddings_router)  # POST /v1/embeddings: OpenAI's embeddings, on OpenAI-format upstreams
    # The two hot endpoints skip Starlette's layers (still declared above, so the OpenAPI document lists them).
    app.serve_directly(
        {"/v1/chat/completions": chat_completions, "/v1/messages": create_message},
        max_body_bytes=edge.max_body_bytes,
        read_timeout=edge.read_timeout_seconds,
    )
    return app


def _tune_gc() -> None:
    """Keep the cyclic garbage collector off the request path.

    What exists once the gateway has started (modules, config, price catalog, models) lives as long as the
    process, yet every full collection walked it; and at the default threshold (a young collection every 700
    allocations) a collection ran every few requests. Frozen start-up objects and a 20,000-allocation
    threshold measured, at concurrency 32 on the instant upstream: p99 160 -> 40 ms, requests/s +40-60%,
    CPU per request -30% (a request's garbage is mostly freed by reference counting anyway)."""
    gc.collect()
    gc.freeze()
    gc.set_threshold(20_000, 20, 100)


def app_from_env() -> FastAPI:
    """Factory for `uvicorn --factory` with several workers: config and ledger come from the environment."""
    if os.environ.get("TOKENOMY_WORKER_OF"):  # set by `serve --workers N`: this process is a supervised worker
        supervision.exit_with_parent(int(os.environ["TOKENOMY_WORKER_OF"]))
    return create_app(
        load_config(os.environ.get("TOKENOMY_CONFIG")),
        os.environ.get("TOKENOMY_LEDGER"),
        own_process=True,
        workers=int(os.environ.get("TOKENOMY_WORKERS") or 1),
    )
