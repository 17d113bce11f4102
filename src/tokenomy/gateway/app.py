"""`tokenomy serve`: OpenAI-compatible chat completions with routing, caching, caps, retries, budgets.

Every request passes: auth (virtual key) → overload guard → route → rate limit → budget reservation
(estimated cost) → the one call path (`tokenomy.client`) → settlement at the actual cost → ledger.
"""

from __future__ import annotations

import asyncio
import gc
import hmac
import json
import logging
import os
import time
from collections.abc import AsyncIterator
from concurrent.futures import ThreadPoolExecutor
from contextlib import asynccontextmanager
from typing import Any

from fastapi import FastAPI, Request
from fastapi.exception_handlers import http_exception_handler
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse, PlainTextResponse, Response
from pydantic import ValidationError
from starlette.exceptions import HTTPException

from tokenomy.config import TokenomyConfig, load_config
from tokenomy.errors import ProviderError, TokenomyError
from tokenomy.gateway import metrics, supervision
from tokenomy.gateway.anthropic_routes import anthropic_error, create_message
from tokenomy.gateway.anthropic_routes import router as anthropic_router
from tokenomy.gateway.bedrock_count import router as bedrock_count_router
from tokenomy.gateway.calls import (
    OPENAI_ERROR_TYPES,
    Refusal,
    admit,
    call_cost,
    paid,
    retry_after,
    settle_when_final,
    upstream_status,
    wind_up_stream,
)
from tokenomy.gateway.calls import settle as _settle
from tokenomy.gateway.converse_routes import bedrock_error
from tokenomy.gateway.converse_routes import router as converse_router
from tokenomy.gateway.embeddings_routes import router as embeddings_router
from tokenomy.gateway.fast_path import SENT_PATH, GatewayApp
from tokenomy.gateway.gemini_caches import router as gemini_caches_router
from tokenomy.gateway.gemini_errors import gemini_error
from tokenomy.gateway.gemini_routes import from_gemini_sdk, gemini_model, gemini_models
from tokenomy.gateway.gemini_routes import router as gemini_router
from tokenomy.gateway.hygiene import PARSED_BODY, EdgeHygiene, api_of
from tokenomy.gateway.invoke_routes import router as invoke_router
from tokenomy.gateway.openai_ingress import caller_param, caller_path, to_chat_request
from tokenomy.gateway.openai_shapes import RequestError
from tokenomy.gateway.responses import (
    FastJSONResponse,
    FirstChunkStream,
    chunk_delta,
    completion_body,
    error,
    invalid_body,
    raw_extras,
    signed_reasoning_delta,
    sse,
    usage_body,
)
from tokenomy.gateway.responses_count import router as responses_count_router
from tokenomy.gateway.responses_routes import router as responses_router
from tokenomy.gateway.schemas import ChatCompletionRequest, ErrorResponse, parse_chat_request
from tokenomy.gateway.state import Gateway
from tokenomy.gateway.unserved import unserved
from tokenomy.gateway.vertex_routes import router as vertex_router
from tokenomy.ids import new_id
from tokenomy.messages import ChatResponse

log = logging.getLogger(__name__)


def create_app(config: TokenomyConfig | None = None, ledger: str | None = None, own_process: bool = False) -> FastAPI:
    """Build the gateway app (no config: serves the local model). `own_process`: the process serves only this
    gateway (`tokenomy serve`), so its garbage collector may be tuned for it."""
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
        holder["gw"] = Gateway(config, ledger)
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
    )
    edge = config.gateway
    app.add_middleware(EdgeHygiene, max_body_bytes=edge.max_body_bytes, read_timeout=edge.read_timeout_seconds)
    # With metrics_key_env named but unset, /metrics is closed rather than silently open.
    metrics_key = os.environ.get(edge.metrics_key_env, "") if edge.metrics_key_env else None

    if config.redis_url:
        from redis.exceptions import RedisError

        @app.exception_handler(RedisError)
        async def limits_down(_: Request, exc: RedisError) -> JSONResponse:
            # Shared limits cannot be checked: refuse (retryable) in OpenAI's shape rather than a bare 500.
            return error(
                503,
                f"the gateway cannot reach its limits store at redis_url ({exc}); retry later",
                "server_error",
                code="limits_unavailable",
            )

    @app.exception_handler(Exception)
    async def unexpected(request: Request, exc: Exception) -> JSONResponse:
        # Still logged with its traceback by the server; the client gets its API's error shape, not plain text.
        status, message, code = 500, f"internal error ({type(exc).__name__}); see the gateway's log", "internal_error"
        if type(exc).__module__.split(".")[0] in ("psycopg", "duckdb", "psycopg_pool"):
            status, code = 503, "database_unavailable"
            message = f"the gateway's database is unavailable ({type(exc).__name__}); retry later"
        api = api_of(request.url.path)
        if api == "anthropic":
            return anthropic_error(status, message)
        if api == "bedrock":
            return bedrock_error(status, message)  # botocore reads the code from x-amzn-ErrorType
        if api == "gemini":
            return gemini_error(status, message)
        return error(status, message, "server_error", code)

    @app.exception_handler(HTTPException)
    async def no_such_endpoint(request: Request, exc: HTTPException) -> Response:
        # A path or method the gateway does not serve: the SDK's error shape naming what it does serve, not
        # FastAPI's {"detail": "Not Found"}, which the SDKs cannot read and which names no fix.
        if exc.status_code not in (404, 405) or request.url.path.startswith("/dashboard"):
            return await http_exception_handler(request, exc)  # the dashboard's own errors, as its page reads them
        sent = request.scope.get(SENT_PATH)
        return unserved(request.method, request.url.path, exc.status_code, dict(exc.headers or {}), sent)

    @app.exception_handler(RequestValidationError)
    async def invalid(request: Request, exc: RequestValidationError) -> JSONResponse:
        if config.auth and "gw" in holder:  # a caller without a key gets 401 before any word on its body
            key = await holder["gw"].authenticate_async(request.headers.get("authorization"))
            if isinstance(key, JSONResponse):
                return key
        return invalid_body(exc.errors())

    @app.get("/healthz")
    async def healthz() -> dict:
        """Liveness: the process is up and its ledger writer is running."""
        gw = holder.get("gw")
        return {"status": "ok", "pending_ledger_events": gw.writer.pending if gw else 0}

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

    served_models = set(config.routes) | set(config.models) | {"local"}

    @app.get("/v1/models")
    async def models(request: Request) -> Response:
        """The names clients may send as `model`: routes and configured models (in Gemini's shape to google-genai,
        whose default API version is v1 too)."""
        if from_gemini_sdk(request):
            return await gemini_models(request)
        return JSONResponse({"object": "list", "data": [_model_object(n) for n in sorted(served_models)]})

    @app.get("/v1/models/{model:path}")
    async def model(request: Request, model: str) -> Response:
        """One name clients may send as `model` (the openai SDK's `client.models.retrieve`, google-genai's
        `client.models.get`)."""
        if from_gemini_sdk(request):
            return await gemini_model(request, model)
        if model not in served_models:
            return error(
                404,
                f"The model `{model}` does not exist on this gateway; GET /v1/models lists the names you can use.",
                "invalid_request_error",
                "model_not_found",
                "model",
            )
        return JSONResponse(_model_object(model))

    @app.post(
        "/v1/chat/completions",
        # The body is parsed by pydantic's JSON parser straight from the bytes (not json.loads, then a dict
        # validated): the largest per-request cost for bodies with images and tools. Documented as before.
        openapi_extra={
            "requestBody": {
                "required": True,
                "content": {"application/json": {"schema": {"$ref": "#/components/schemas/ChatCompletionRequest"}}},
            }
        },
        responses={
            400: {"model": ErrorResponse},
            401: {"model": ErrorResponse},
            404: {"model": ErrorResponse},
            429: {"model": ErrorResponse},
            503: {"model": ErrorResponse},
        },
    )
    async def chat_completions(request: Request):
        """Create a chat completion (streaming with `stream: true`)."""
        gw = holder["gw"]
        started = time.perf_counter()
        try:
            body = parse_chat_request(await request.body(), request.scope.get(PARSED_BODY))
        except ValidationError as exc:
            raise RequestValidationError(exc.errors(include_url=False)) from None
        route = gw.route_for(body.model)
        label = body.model if route is not None else "unknown"  # bounded metric labels, whatever clients send
        key = await gw.authenticate_async(request.headers.get("authorization"))
        if isinstance(key, JSONResponse):
            return metrics.done(key, label, started)
        if route is None:
            return metrics.done(
                error(
                    404,
                    f"The model `{body.model}` does not exist on this gateway; GET /v1/models "
                    "lists the names you can use.",
                    "invalid_request_error",
                    "model_not_found",
                    "model",
                ),
                label,
                started,
            )
        try:
            call = to_chat_request(body, request.headers, key, route)
            refused = gw.refusal(route, call)
        except RequestError as exc:
            return metrics.done(error(400, str(exc), "invalid_request_error", param=exc.param), body.model, started)
        except ValueError as exc:
            return metrics.done(error(400, str(exc), "invalid_request_error"), body.model, started)
        except TokenomyError as exc:  # the route's model cannot be resolved
            return metrics.done(error(400, str(exc), "invalid_request_error"), body.model, started)
        except (TypeError, AttributeError, KeyError) as exc:  # a field of an unexpected shape: the caller's fault
            log.warning("request could not be translated: %r", exc)
            return metrics.done(
                error(
                    400,
                    f"the request has a field of an unexpected shape ({exc}); check it "
                    "against OpenAI's chat completions reference",
                    "invalid_request_error",
                ),
                body.model,
                started,
            )
        if refused is not None:  # named where the caller sent it, not by the content model's indices
            where = caller_path(body, refused)
            return metrics.done(
                error(400, refused.error_text(where), "invalid_request_error", "unsupported_content", where),
                body.model,
                started,
            )
        admitted = await admit(gw, body.model, route, key, call)  # the same admission as /v1/messages
        if isinstance(admitted, Refusal):
            return metrics.done(
                error(
                    admitted.status,
                    admitted.message,
                    OPENAI_ERROR_TYPES[admitted.code],
                    admitted.code,
                    headers=admitted.headers,
                ),
                body.model,
                started,
            )
        policy, budgets = admitted.policy, admitted.budgets
        # One id for the answer, its x-request-id header and its ledger rows: the caller can find its call there.
        call.meta.request_id = new_id()
        request_id = f"chatcmpl-{call.meta.request_id}"
        headers = {"x-request-id": call.meta.request_id}
        if body.stream:
            return FirstChunkStream(_stream(gw, call, policy, body, request_id, budgets, started), headers=headers)
        cost = call_cost(gw, budgets)
        try:
            response = await gw.client.achat(call, policy=policy, cost=cost)
        except TokenomyError as exc:  # the failed attempts are in the ledger under the same id
            await _settle(gw, budgets, None, paid=paid(exc))
            failed = (
                _provider_error(exc, body)
                if isinstance(exc, ProviderError)
                else error(400, str(exc), "invalid_request_error")
            )
            failed.headers.update(headers)
            return metrics.done(failed, body.model, started)
        except asyncio.CancelledError:  # a graceful shutdown's end, or a caller's timeout: its attempts are (or will
            settle_when_final(gw, budgets, cost)  # be) in the ledger at what they cost
            raise
        except BaseException:  # a bug: whether the provider answered is not known
            await _settle(gw, budgets, None, unknown=True)
            raise
        finally:
            gw.guard.slots.release()
        await _settle(gw, budgets, response)
        if gw.journal is not None:
            await gw.journal.durable_async()  # journaled (as journal_sync promises) before the client hears of it
        metrics.observe(response, body.model)
        answer = FastJSONResponse(completion_body(response, body.model, request_id), headers=headers)
        return metrics.done(answer, body.model, started)

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


def _model_object(name: str) -> dict[str, Any]:
    return {"id": name, "object": "model", "created": 0, "owned_by": "tokenomy"}


def _provider_error(exc: ProviderError, body: ChatCompletionRequest) -> JSONResponse:
    if exc.refused is not None:  # no model the call could use can take it (nothing was sent): the caller's place
        where = caller_path(body, exc.refused)
        return error(400, exc.refused.error_text(where), "invalid_request_error", "unsupported_content", where)
    if exc.param is not None:  # refused by the mapping before any call: the request's field, where the caller put it
        where = caller_param(body, exc.param)
        message = str(exc).replace(exc.param, where, 1)
        return error(400, message, "invalid_request_error", "unsupported_parameter", param=where)
    status = upstream_status(exc)
    # The provider's own code (context_length_exceeded, ...) when it sent one: callers branch on it.
    return error(
        status, f"upstream {exc.kind}: {exc}", "upstream_error", exc.code or exc.kind, headers=retry_after(exc)
    )


async def _stream(
    gw: Gateway, call, policy, body, request_id: str, budgets, started: float
) -> AsyncIterator[bytes | Response]:
    created = int(time.time())

    def chunk(
        delta: dict,
        finish: str | None = None,
        usage: dict | None = None,
        extra: dict | None = None,
        top: dict | None = None,
    ) -> bytes:
        payload = {
            "id": request_id,
            "object": "chat.completion.chunk",
            "created": created,
            "model": body.model,
            "choices": []
            if usage is not None
            else [{"index": 0, "delta": delta, "finish_reason": finish, **(extra or {})}],
            **(top or {}),
        }
        if usage is not None:
            payload["usage"] = usage
        return sse(payload)

    final: ChatResponse | None = None
    crashed = False  # a bug ended the stream
    opened = False  # the first chunk is sent: the call produced something, so an error can only end the stream
    refused: Response | None = None  # the call failed before that: the answer is this error, with its status
    signed_calls: set[int] = set()  # tool calls whose thought signature went out with them
    cost = call_cost(gw, budgets)
    pieces = gw.client.astream(call, policy=policy, cost=cost)
    try:
        # A routed call streams too; a cascade's cheaper tier is held until it passes (see README, Routing).
        async for piece in pieces:
            rendered = chunk_delta(piece)
            if not opened and (rendered is not None or piece.response is not None):
                opened = True
                # As OpenAI opens: content "" before text, null before an answer that is only tool calls (the
                # SDK's accumulated message then has content None, not "").
                first = rendered[0] if rendered is not None else {}
                calls_only = "tool_calls" in first and not first.get("content")
                yield chunk({"role": "assistant", "content": None if calls_only else ""})
            if rendered is not None:
                if piece.signature and piece.tool_call is not None:
                    signed_calls.add(piece.tool_call.index)
                yield chunk(rendered[0], extra=rendered[1])
            if piece.response is not None:
                final = piece.response
        assert final is not None
        if gw.journal is not None:
            await gw.journal.durable_async()  # journaled before the stream tells the client it is complete
        signed = signed_reasoning_delta(final, signed_calls)
        if signed:
            yield chunk(signed)
        top = raw_extras(final, "top")  # system_fingerprint, service_tier, ... as the upstream sent them
        yield chunk({}, final.finish_reason, top=top)
        if body.stream_options and body.stream_options.include_usage:
            yield chunk({}, usage=usage_body(final), top=top)
        metrics.observe(final, body.model)
        metrics.count(body.model, 200, started)
    except TokenomyError as exc:
        if not opened:
            refused = (
                _provider_error(exc, body)
                if isinstance(exc, ProviderError)
                else error(400, str(exc), "invalid_request_error")
            )
            refused.headers["x-request-id"] = call.meta.request_id  # the failed attempts' id in the ledger
            metrics.count(body.model, refused.status_code, started)
        else:
            kind = exc.kind if isinstance(exc, ProviderError) else "invalid_request_error"
            yield (
                b"data: "
                + json.dumps({"error": {"message": str(exc), "type": kind, "param": None, "code": kind}}).encode()
                + b"\n\n"
            )
            metrics.count(body.model, 502, started)
    except Exception as exc:  # a bug, not the caller's fault: logged with its traceback, the stream ends with an error
        crashed = True
        log.exception("the chat completions stream for %s failed", body.model)
        message = f"internal error ({type(exc).__name__}); see the gateway's log"
        payload = {"error": {"message": message, "type": "server_error", "param": None, "code": "internal_error"}}
        yield b"data: " + json.dumps(payload).encode() + b"\n\n"
        metrics.count(body.model, 500, started)
    finally:
        gw.guard.slots.release()
        await wind_up_stream(gw, budgets, pieces, cost, final, crashed)
    if refused is not None:
        yield refused
        return
    yield b"data: [DONE]\n\n"


def app_from_env() -> FastAPI:
    """Factory for `uvicorn --factory` with several workers: config and ledger come from the environment."""
    if os.environ.get("TOKENOMY_WORKER_OF"):  # set by `serve --workers N`: this process is a supervised worker
        supervision.exit_with_parent(int(os.environ["TOKENOMY_WORKER_OF"]))
    return create_app(
        load_config(os.environ.get("TOKENOMY_CONFIG")), os.environ.get("TOKENOMY_LEDGER"), own_process=True
    )
