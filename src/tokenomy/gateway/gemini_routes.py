"""The Gemini API on the gateway (`POST /v1beta/models/{model}:generateContent` and `:streamGenerateContent`), so an
application on the `google-genai` SDK moves behind Tokenomy by its base URL:

    genai.Client(api_key=<gateway key>, http_options={"base_url": "http://gateway:8080"})

`model` names a gateway route or model, as on the other APIs. The same path as `/v1/chat/completions`: the virtual
key (`x-goog-api-key`, or `Authorization: Bearer`), overload guard, rate limit, budget reservation, the one call path
(ledger, telemetry, retries, fallback, caching, routing), settlement. Requests and answers are mapped by
`providers.gemini_inbound`; streams are server-sent events of GenerateContentResponse chunks with `alt=sse` (the
SDK's), else one JSON array of them written as they come (the REST API's default), by `gemini_stream`; errors
Google's `{"error": {"code", "message", "status"}}`.
"""

from __future__ import annotations

import time
from dataclasses import replace
from functools import partial
from typing import Any

from fastapi import APIRouter, Request
from fastapi.responses import JSONResponse, Response

from tokenomy.errors import NotOnThisLedger, ProviderError, TokenomyError
from tokenomy.gateway import metrics
from tokenomy.gateway.call_stream import call_streamed
from tokenomy.gateway.calls import (
    Refusal,
    admit,
    call_whole,
    gate,
    json_body,
    refusal,
    request_meta,
    route_providers,
    takes_one_hour_cache,
)
from tokenomy.gateway.counting import cannot_count, count, counter_for
from tokenomy.gateway.fast_path import SENT_PATH
from tokenomy.gateway.gemini_auth import authenticate
from tokenomy.gateway.gemini_caches import use_cache
from tokenomy.gateway.gemini_errors import gemini_error
from tokenomy.gateway.gemini_stream import ChunkWriter, provider_error
from tokenomy.gateway.responses import FirstChunkStream
from tokenomy.gateway.unserved import unserved
from tokenomy.ids import new_id
from tokenomy.messages import ChatRequest
from tokenomy.pricing.identifiers import pricing_region
from tokenomy.providers.gemini_answers import (
    response_body,
)
from tokenomy.providers.gemini_caller_places import caller_field, caller_param
from tokenomy.providers.gemini_fields import get
from tokenomy.providers.gemini_inbound import request_from_gemini, shows_thoughts
from tokenomy.providers.gemini_signatures import without_skip_signatures
from tokenomy.providers.refusals import Unsupported
from tokenomy.routing.router import routing_tag_refusal

router = APIRouter()
METHODS = ("generateContent", "streamGenerateContent")
GEMINI_PROVIDERS = ("gcp.gemini", "gcp.vertex_ai")  # the providers that take Gemini's own fields


def _gemini_only(gw: Any, route: Any, model: str) -> bool:
    """Whether every model the route may reach is a Gemini one (which takes Gemini's own fields as sent)."""
    return route_providers(gw, route, model) <= set(GEMINI_PROVIDERS)


def labels(call: ChatRequest) -> dict[str, str]:
    """The request's `labels` (Vertex AI's billing labels: ADK sets `adk_agent_name` on each call), as the ledger
    row's tags: how the gateway carries them to every provider (Gemini models get them as sent as well)."""
    given = call.extra.get("labels")
    if given is None:
        return {}
    if not isinstance(given, dict) or not all(isinstance(k, str) and isinstance(v, str) for k, v in given.items()):
        raise ValueError("labels: expected an object of string keys and values")
    refused = routing_tag_refusal(given)  # the row's tags: not one routing writes
    if refused is not None:
        raise ValueError(f"labels: {refused}")
    return dict(given)


def leave_out_standard_tier(call: ChatRequest) -> None:
    """For a route that may reach a provider that is not Gemini's: a `serviceTier` naming the standard tier is left
    out, since every provider serves it unasked (Gemini too: left out for it as well, for the fields go to every model
    of the route alike); a flex or priority tier, which no other API's tiers are mapped from, is refused by name.
    (Safety settings that turn every filter off are left out by each other provider's mapping:
    `refusals.GEMINI_ASKING_NOTHING`.)"""
    tier = call.extra.get("service_tier")
    if isinstance(tier, str) and tier.lower().removeprefix("service_tier_") in ("standard", "unspecified"):
        call.extra.pop("service_tier")


def _parse_target(target: str) -> tuple[str, str] | None:
    model, _, method = target.rpartition(":")
    if method not in METHODS or not model:
        return None
    return model.removeprefix("models/"), method


def _model_body(gw: Any, name: str) -> dict[str, Any]:
    """Gemini's Model for a route or model of the gateway. inputTokenLimit is the smallest context window of the
    models it may use, when the price catalog knows each of them; the catalog has no output limits."""
    model: dict[str, Any] = {
        "name": f"models/{name}",
        "baseModelId": name,
        "version": "tokenomy",
        "displayName": name,
        "supportedGenerationMethods": list(METHODS),
    }
    route = gw.route_for(name)
    windows: list[int | None] = []
    for each in (route.model, *route.fallback) if route is not None and route.model else ():
        spec = gw.client.spec_for(each)
        region = pricing_region(spec.region)
        try:
            windows.append(gw.catalog.lookup(spec.pricing_model, region).context_window)
        except TokenomyError:
            windows.append(None)
    if windows and None not in windows:
        model["inputTokenLimit"] = min(w for w in windows if w is not None)
    return model


async def _count(request: Request, model: str) -> Response:
    """countTokens (`models.count_tokens`): `{"totalTokens": N}` as the route's first model counts the prompt. The
    body is the Gemini API's (`contents`, or a whole `generateContentRequest`) or Vertex AI's (`contents` beside
    `systemInstruction` and `tools`). Nothing is generated, reserved against a budget or written to the ledger."""
    gw = request.app.state.gateway
    key = await authenticate(request)
    if isinstance(key, JSONResponse):
        return key
    route = gw.route_for(model)
    if route is None:
        return gemini_error(404, f"model `{model}` does not exist on this gateway; GET /v1/models lists the names")
    body: Any = None
    try:
        body = await json_body(request)
        if isinstance(body, dict) and get(body, "generateContentRequest") is not None:
            if get(body, "contents") is not None:
                raise ValueError("generateContentRequest: send it or contents, not both")
            body = get(body, "generateContentRequest")
            body = {k: v for k, v in body.items() if k != "model"} if isinstance(body, dict) else body
        cached = await use_cache(request, key, model, body, partial(_gemini_only, gw, route, model))
        if isinstance(cached, JSONResponse):
            return cached
        body = cached.body if cached is not None else body
        call = request_from_gemini(model, body)
        labels(call)  # checked as a call checks them, though a count (not billed) carries them nowhere else
        # generationConfig's sampling shapes the answer, which a count makes none of: Vertex AI's SDK sends the
        # request's generationConfig with it, and a seed or penalty Claude has no place for refused the count
        call = replace(call, max_tokens=None, temperature=None, top_p=None, top_k=None, stop=[], seed=None)
        call = replace(call, presence_penalty=None, frequency_penalty=None)
        stand_ins_out = not _gemini_only(gw, route, model)
        if stand_ins_out:
            call.messages = without_skip_signatures(call.messages)
            call.extra.pop("labels", None)  # labels a call's billing; a count is not billed
            leave_out_standard_tier(call)
        counter = counter_for(gw, model, route, call, "Gemini", GEMINI_PROVIDERS, partial(caller_field, body))
        if isinstance(counter, Unsupported):
            return gemini_error(400, counter.error_text(caller_param(body, counter.where, stand_ins_out)))
    except NotOnThisLedger:
        raise  # a cache on a ledger that cannot keep one: the operator's choice, the app's 501 as for its create
    except (ValueError, TokenomyError) as exc:  # json.JSONDecodeError is a ValueError
        return gemini_error(400, str(exc))
    refused = await gate(gw, key)  # counting is free: no budget reservation, no call slot
    if refused is not None:
        return gemini_error(refused.status, refused.message, refused.headers)
    try:
        tokens = await count(counter)
    except ProviderError as exc:
        if cannot_count(exc):
            return gemini_error(400, f"`{model}` counts with model `{counter.model}`: {exc}")
        return provider_error(exc, body, stand_ins_out)
    return JSONResponse({"totalTokens": tokens})


async def _generate(request: Request, version: str, target: str) -> Response:
    gw = request.app.state.gateway
    started = time.perf_counter()
    if version in ("v1", "v1beta", "v1alpha") and target.endswith(":countTokens") and target != ":countTokens":
        model = target.removesuffix(":countTokens").removeprefix("models/")
        label = model if gw.route_for(model) is not None else "unknown"  # as its generateContent's are counted
        return metrics.done(await _count(request, model), label, started)
    parsed_target = _parse_target(target)
    if version not in ("v1", "v1beta", "v1alpha") or parsed_target is None:
        sent = request.scope.get(SENT_PATH, request.url.path)  # a Vertex path as the caller sent it
        message = f"{sent}: this gateway serves :generateContent, :streamGenerateContent and :countTokens"
        return metrics.done(gemini_error(404, message), "unknown", started)
    model, method = parsed_target
    route = gw.route_for(model)
    label = model if route is not None else "unknown"  # bounded metric labels, whatever clients send
    key = await authenticate(request)
    if isinstance(key, JSONResponse):
        return metrics.done(key, label, started)
    if route is None:
        return metrics.done(
            gemini_error(404, f"model `{model}` does not exist on this gateway; GET /v1/models lists the names"),
            label,
            started,
        )
    alt = request.query_params.get("alt")
    if method == "streamGenerateContent" and alt not in (None, "json", "sse"):
        message = f"alt: the gateway streams a JSON array (alt=json, the default) or events (alt=sse), not {alt!r}"
        return metrics.done(gemini_error(400, message), model, started)
    body: Any = None
    try:
        body = await json_body(request)
        cached = await use_cache(request, key, model, body, partial(_gemini_only, gw, route, model))
        if isinstance(cached, JSONResponse):
            return metrics.done(cached, model, started)
        body = cached.body if cached is not None else body  # the cache's prefix in it: places are named in it
        call = request_from_gemini(route.model or model, body)
        if cached is not None:
            cached.mark(call, partial(takes_one_hour_cache, gw, route, model))
        call.meta = request_meta(request, route, key, model)
        call.meta.tags = {**labels(call), **call.meta.tags}  # the x-tokenomy-tags header's win
        stand_ins_out = not _gemini_only(gw, route, model)
        if stand_ins_out:
            call.messages = without_skip_signatures(call.messages)
            call.extra.pop("labels", None)  # in the ledger row's tags, which is where they count for the others
            leave_out_standard_tier(call)
        refused = refusal(gw, route, call, model, "Gemini", GEMINI_PROVIDERS, partial(caller_field, body))
        if refused is not None:
            return metrics.done(provider_error(refused, body, stand_ins_out), model, started)
    except NotOnThisLedger:
        raise  # a cache on a ledger that cannot keep one: the operator's choice, the app's 501 as for its create
    except (ValueError, TokenomyError) as exc:  # json.JSONDecodeError is a ValueError
        return metrics.done(gemini_error(400, str(exc)), model, started)
    admitted = await admit(gw, request, model, route, key, call, cap_field="generationConfig.maxOutputTokens")
    if isinstance(admitted, Refusal):
        return metrics.done(gemini_error(admitted.status, admitted.message, admitted.headers), model, started)
    call.meta.request_id = new_id()  # the answer's responseId, and the call's ledger rows
    headers = {"x-request-id": call.meta.request_id}
    if method == "streamGenerateContent":
        array = alt != "sse"
        writer = ChunkWriter(model, call.meta.request_id, body, array, stand_ins_out)
        stream = call_streamed(gw, call, admitted, model, started, writer)
        return FirstChunkStream(stream, "application/json" if array else "text/event-stream", headers, ends=writer)
    response = await call_whole(gw, call, admitted, model, lambda exc: provider_error(exc, body, stand_ins_out))
    if isinstance(response, Response):
        response.headers.update(headers)
        return metrics.done(response, model, started)
    answer = response_body(response, model, call.meta.request_id, shows_thoughts(body))
    return metrics.done(JSONResponse(answer, headers=headers), model, started)


@router.post("/{version}/models/{target:path}")
async def generate_content(request: Request, version: str, target: str) -> Response:
    """Gemini's generateContent and streamGenerateContent (`models/{model}:generateContent`)."""
    return await _generate(request, version, target)


def from_gemini_sdk(request: Request) -> bool:
    """A GET /v1/models[/{model}] of google-genai (v1 is its default version; the path is OpenAI's too): it sends
    Google's key header (or `?key=`), which OpenAI's SDK never does."""
    return "x-goog-api-key" in request.headers or "key" in request.query_params


@router.get("/v1beta/models")
@router.get("/v1alpha/models")
async def gemini_models(request: Request) -> Response:
    """Gemini's models.list: the gateway's routes and models, one page."""
    key = await authenticate(request)
    if isinstance(key, JSONResponse):
        return key
    gw = request.app.state.gateway
    return JSONResponse({"models": [_model_body(gw, name) for name in gw.served_names()]})


@router.get("/v1beta/models/{model:path}")
@router.get("/v1alpha/models/{model:path}")
async def gemini_model(request: Request, model: str) -> Response:
    """Gemini's models.get (`models/{model}`)."""
    key = await authenticate(request)
    if isinstance(key, JSONResponse):
        return key
    gw = request.app.state.gateway
    name = model.removeprefix("models/")
    if name not in gw.served_names():
        if name.rpartition(":")[2] in (*METHODS, "countTokens"):  # a method's path (`g:generateContent`): POST only
            return unserved(request.method, request.url.path, 405, {"Allow": "POST"}, request.scope.get(SENT_PATH))
        message = f"model `{name}` does not exist on this gateway; GET /v1beta/models lists the names"
        return gemini_error(404, message)
    return JSONResponse(_model_body(gw, name))
