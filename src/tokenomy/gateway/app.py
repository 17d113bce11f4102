"""`tokenomy serve`: OpenAI-compatible chat completions with routing, caching, caps, retries, budgets.

Every request passes: auth (virtual key) → overload guard → route → rate limit → budget reservation
(estimated cost) → the one call path (`tokenomy.client`) → settlement at the actual cost → ledger.
"""

from __future__ import annotations

import asyncio
import gc
import hmac
import itertools
import json
import logging
import os
import time
import uuid
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from decimal import Decimal
from pathlib import Path
from typing import Any

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse, PlainTextResponse, Response, StreamingResponse
from pydantic import ValidationError

from tokenomy.caching.placement import estimate_tokens
from tokenomy.caching.tokens import apply_token_policy
from tokenomy.client import CallPolicy, Tokenomy
from tokenomy.config import RouteConfig, TokenomyConfig, load_config
from tokenomy.errors import ProviderError, TokenomyError
from tokenomy.gateway import auth, metrics, supervision
from tokenomy.gateway.anthropic_routes import router as anthropic_router
from tokenomy.gateway.budgets import Budgets
from tokenomy.gateway.calls import Refusal, admit
from tokenomy.gateway.calls import settle as _settle
from tokenomy.gateway.hygiene import EdgeHygiene
from tokenomy.gateway.keycache import KeyCache
from tokenomy.gateway.keys import KeyStore, VirtualKey
from tokenomy.gateway.limits import LocalLimits, RedisLimits, to_nano
from tokenomy.gateway.pricing import GatewayCatalog
from tokenomy.gateway.responses import (
    FastJSONResponse,
    chunk_delta,
    completion_body,
    error,
    invalid_body,
    sse,
    usage_body,
)
from tokenomy.gateway.schemas import ChatCompletionRequest, ErrorResponse, RequestError, to_chat_request
from tokenomy.gateway.upstream import AsyncOpenAIUpstream
from tokenomy.ledger.journal import Journal, journal_dir, replay
from tokenomy.ledger.store import open_store
from tokenomy.ledger.writer import LedgerWriter
from tokenomy.messages import ChatRequest, ChatResponse
from tokenomy.providers.base import inputs_refusal

# OpenAI's error `type` for each admission refusal code.
_ERROR_TYPES = {
    "overloaded": "server_error",
    "rate_limit_exceeded": "rate_limit_error",
    "budget_unavailable": "server_error",
    "budget_exceeded": "insufficient_quota",
}
# Response ids: a random per-process prefix and a counter (os.urandom per request measured ~75 us here).
_ID_PREFIX = uuid.uuid4().hex[:16]
_IDS = itertools.count(1)
log = logging.getLogger(__name__)
DEFAULT_OUTPUT_ESTIMATE = 1024  # output tokens assumed for budget reservations when max_tokens is absent


class OverloadGuard:
    """At most `max_inflight` calls run and `max_queue` wait; beyond that requests are refused at once."""

    def __init__(self, max_inflight: int, max_queue: int) -> None:
        self.slots = asyncio.Semaphore(max_inflight)
        self.max_queue = max_queue
        self.waiting = 0
        self.inflight = 0

    def full(self) -> bool:
        return self.slots.locked() and self.waiting >= self.max_queue


class GatewayClient(Tokenomy):
    """The one call path, with OpenAI-compatible upstreams reached through a pooled async passthrough."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.upstreams: dict[tuple, AsyncOpenAIUpstream] = {}
        # Escape hatch (and A/B switch for the benchmark): the SDK-based provider in a worker thread.
        self.sdk_upstream = bool(os.environ.get("TOKENOMY_GATEWAY_SDK_UPSTREAM"))

    def provider_for(self, spec):
        if spec.provider != "openai" or self.sdk_upstream:
            return super().provider_for(spec)
        key = (spec.base_url, spec.api_key_env)
        upstream = self.upstreams.get(key)
        if upstream is None:
            upstream = self.upstreams[key] = AsyncOpenAIUpstream(spec)
        return upstream

    async def aclose_upstreams(self) -> None:
        for upstream in self.upstreams.values():
            await upstream.aclose()


class Gateway:
    """State shared by the handlers: config, client, keys, limits, estimates."""

    def __init__(self, config: TokenomyConfig, ledger: str | None) -> None:
        self.config = config
        store = open_store(ledger or config.ledger)
        self.store = store
        self.settings = config.gateway
        self.journal = None
        if self.settings.journal:  # a crash loses nothing answered: replay what the last run left, then journal
            folder = Path(self.settings.journal_dir) if self.settings.journal_dir else journal_dir(store)
            replay(folder, store)
            self.journal = Journal(folder, self.settings.journal_sync, self.settings.journal_fsync_seconds)
        self.writer = LedgerWriter(store, flush_interval=0.5, journal=self.journal)
        self.catalog = GatewayCatalog()
        self.client = GatewayClient(
            self.writer, models=config.model_specs(), store_prompts=config.store_prompts, catalog=self.catalog
        )
        self.keys = KeyStore(store) if config.auth else None
        self.key_cache = KeyCache(self.keys, self.settings.key_cache_seconds) if self.keys else None
        concurrency = self.settings.max_inflight + self.settings.max_queue
        self.limits = RedisLimits(config.redis_url, max_connections=concurrency) if config.redis_url else LocalLimits()
        self.budgets = (
            Budgets(self.limits, self.writer, self.keys, self.key_cache, shared=bool(config.redis_url))
            if self.keys and self.key_cache
            else None
        )
        self.guard = OverloadGuard(self.settings.max_inflight, self.settings.max_queue)
        # Built once per route: each owns its token bucket and its router (policies were validated at load).
        self.policies = {name: CallPolicy.for_route(config, name, self.catalog) for name in config.routes}
        self._routes: dict[str, RouteConfig] = dict(config.routes)

    def route_for(self, name: str) -> RouteConfig | None:
        """The route a client's `model` names, made once per name (a bare model name is a one-model route)."""
        route = self._routes.get(name)
        if route is None:
            route = self.config.route_for(name)
            if route is not None:  # only names the config serves are kept: the cache stays bounded
                self._routes[name] = route
        return route

    def policy_for(self, name: str, route: RouteConfig) -> CallPolicy:
        """The call policy of a route, built once (a bare model's too: no per-request rebuild)."""
        policy = self.policies.get(name)
        if policy is None:
            policy = self.policies[name] = CallPolicy.from_route(route)
        return policy

    # -- auth -----------------------------------------------------------------------------------
    def authenticate(self, header: str | None) -> VirtualKey | JSONResponse | None:
        """Blocking form (the dashboard's handlers run in a worker thread)."""
        return auth.authenticate(self.key_cache, header)

    async def authenticate_async(self, header: str | None) -> VirtualKey | JSONResponse | None:
        return await auth.authenticate_async(self.key_cache, header)

    def close(self) -> None:
        if self.key_cache is not None:
            self.key_cache.close()

    def refusal(self, route, request: ChatRequest) -> str | None:
        """Why the route's model cannot take this request (an image to a text-only model, a field its API
        lacks), asked before any call or budget reservation. Fallbacks and routed tiers refuse at call time."""
        if not route.model:
            return None
        spec = self.client.spec_for(route.model)
        why = inputs_refusal(spec.inputs, request) or self.client.provider_for(spec).refusal(request)
        return (
            None
            if why is None
            else (f"model `{route.model}` cannot take {why}; remove it or send the request to a model that supports it")
        )

    def estimate_nano(self, route, request, policy: CallPolicy) -> int:
        """Worst-case cost of a call: its prompt at input price plus its output cap at output price, on the
        dearest model the route may use (its fallbacks; for a routing policy, every model of its tiers).
        The cap is the one the client applies to every attempt: the smaller of the request's and the route's."""
        names = [route.model] if route.model else []
        if policy.router is not None:
            names += policy.router.models()
        names += route.fallback
        sent = apply_token_policy(request, policy.tokens)[0]  # what the client will send: capped and trimmed
        prompt = estimate_tokens(sent.text())
        output = sent.max_tokens or DEFAULT_OUTPUT_ESTIMATE
        worst = Decimal(0)
        for name in names:
            spec = self.client.spec_for(name)
            try:
                entry = self.catalog.lookup(
                    spec.pricing_model, spec.region if spec.region not in (None, "global", "local") else None
                )
            except TokenomyError:
                continue
            # Without caching information, price every prompt token at the dearest input rate that may apply.
            input_rate = max(entry.input or 0, entry.cache_write or 0)
            worst = max(worst, Decimal(prompt) * input_rate + Decimal(output) * (entry.output or 0))
        return to_nano(worst / Decimal(1_000_000))


def create_app(config: TokenomyConfig | None = None, ledger: str | None = None, own_process: bool = False) -> FastAPI:
    """Build the gateway app (no config: serves the local model). `own_process`: the process serves only this
    gateway (`tokenomy serve`), so its garbage collector may be tuned for it."""
    config = config or load_config(None)
    holder: dict[str, Gateway] = {}

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        holder["gw"] = Gateway(config, ledger)
        if own_process:
            _tune_gc()
        app.state.ledger_store = holder["gw"].store
        app.state.gateway = holder["gw"]  # the dashboard checks virtual keys when auth is on
        yield
        holder["gw"].close()
        await holder["gw"].limits.aclose()
        await holder["gw"].client.aclose_upstreams()
        holder["gw"].client.close()  # in-flight requests are done: flush the ledger

    app = FastAPI(
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
    async def unexpected(_: Request, exc: Exception) -> JSONResponse:
        # Still logged with its traceback by the server; the client gets OpenAI's error shape, not plain text.
        if type(exc).__module__.split(".")[0] in ("psycopg", "duckdb", "psycopg_pool"):
            return error(
                503,
                f"the gateway's database is unavailable ({type(exc).__name__}); retry later",
                "server_error",
                "database_unavailable",
            )
        return error(
            500, f"internal error ({type(exc).__name__}); see the gateway's log", "server_error", "internal_error"
        )

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

    @app.get("/v1/models")
    async def models() -> dict:
        """The names clients may send as `model`: routes and configured models."""
        names = sorted(set(config.routes) | set(config.models) | {"local"})
        return {
            "object": "list",
            "data": [{"id": n, "object": "model", "created": 0, "owned_by": "tokenomy"} for n in names],
        }

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
            body = ChatCompletionRequest.model_validate_json(await request.body())
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
        if refused is not None:
            return metrics.done(
                error(400, refused, "invalid_request_error", "unsupported_content"), body.model, started
            )
        admitted = await admit(gw, body.model, route, key, call)  # the same admission as /v1/messages
        if isinstance(admitted, Refusal):
            return metrics.done(
                error(admitted.status, admitted.message, _ERROR_TYPES[admitted.code], admitted.code),
                body.model,
                started,
            )
        policy, budgets = admitted.policy, admitted.budgets
        request_id = f"chatcmpl-{_ID_PREFIX}{next(_IDS):x}"
        if body.stream:
            return StreamingResponse(
                _stream(gw, call, policy, body, request_id, budgets, started), media_type="text/event-stream"
            )
        try:
            response = await gw.client.achat(call, policy=policy)
        except ProviderError as exc:
            await _settle(gw, budgets, None)
            return metrics.done(_provider_error(exc), body.model, started)
        except TokenomyError as exc:
            await _settle(gw, budgets, None)
            return metrics.done(error(400, str(exc), "invalid_request_error"), body.model, started)
        finally:
            gw.guard.slots.release()
        await _settle(gw, budgets, response)
        if gw.journal is not None:
            await gw.journal.durable_async()  # journaled (as journal_sync promises) before the client hears of it
        metrics.observe(response, body.model)
        return metrics.done(FastJSONResponse(completion_body(response, body.model, request_id)), body.model, started)

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


def _provider_error(exc: ProviderError) -> JSONResponse:
    status = {"throttled": 429, "client_error": 400, "timeout": 504}.get(exc.kind, 502)
    return error(status, f"upstream {exc.kind}: {exc}", "upstream_error", exc.kind)


async def _stream(gw: Gateway, call, policy, body, request_id: str, budgets, started: float) -> AsyncIterator[bytes]:
    created = int(time.time())

    def chunk(delta: dict, finish: str | None = None, usage: dict | None = None, extra: dict | None = None) -> bytes:
        payload = {
            "id": request_id,
            "object": "chat.completion.chunk",
            "created": created,
            "model": body.model,
            "choices": []
            if usage is not None
            else [{"index": 0, "delta": delta, "finish_reason": finish, **(extra or {})}],
        }
        if usage is not None:
            payload["usage"] = usage
        return sse(payload)

    final: ChatResponse | None = None
    streamed = False
    try:
        yield chunk({"role": "assistant", "content": ""})
        # A routed call streams too; a cascade's cheaper tier is held until it passes (see README, Routing).
        async for piece in gw.client.astream(call, policy=policy):
            rendered = chunk_delta(piece)
            if rendered is not None:
                streamed = True
                yield chunk(rendered[0], extra=rendered[1])
            if piece.response is not None:
                final = piece.response
        assert final is not None
        if gw.journal is not None:
            await gw.journal.durable_async()  # journaled before the stream tells the client it is complete
        yield chunk({}, final.finish_reason)
        if body.stream_options and body.stream_options.include_usage:
            yield chunk({}, usage=usage_body(final))
        metrics.observe(final, body.model)
        metrics.count(body.model, 200, started)
    except TokenomyError as exc:
        kind = exc.kind if isinstance(exc, ProviderError) else "invalid_request_error"
        yield (
            b"data: "
            + json.dumps({"error": {"message": str(exc), "type": kind, "param": None, "code": kind}}).encode()
            + b"\n\n"
        )
        metrics.count(body.model, 502, started)
    finally:
        gw.guard.slots.release()
        await _settle(gw, budgets, final, unknown=final is None and streamed)
    yield b"data: [DONE]\n\n"


def app_from_env() -> FastAPI:
    """Factory for `uvicorn --factory` with several workers: config and ledger come from the environment."""
    if os.environ.get("TOKENOMY_WORKER_OF"):  # set by `serve --workers N`: this process is a supervised worker
        supervision.exit_with_parent(int(os.environ["TOKENOMY_WORKER_OF"]))
    return create_app(
        load_config(os.environ.get("TOKENOMY_CONFIG")), os.environ.get("TOKENOMY_LEDGER"), own_process=True
    )
