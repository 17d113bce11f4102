"""Gemini's explicit context caching on the gateway: the `cachedContents` resource (`POST /v1beta/cachedContents`,
`GET` one or a page of them, `PATCH` its ttl or expireTime (only those an `updateMask` names), `DELETE`), which
google-genai's `client.caches` and LiteLLM's Gemini context caching call, and `cachedContent` in generateContent,
streamGenerateContent and countTokens.

A cache is kept by the gateway (`cache_store`), not created upstream: a request naming it is sent with the cache's
tools, toolConfig and systemInstruction, and its contents before the request's, as Gemini reads it, and with a cache
point right after that prefix, so that Claude (Anthropic's API, Bedrock) caches it for real: a 1-hour point when the
cache was made to last an hour or more and every model the route may reach takes one (`takes_one_hour_cache`), else
the 5-minute default, which a prefix reused less often than every 5 minutes would write again. A Gemini model gets the
whole prompt too, and caches its repeated prefix implicitly. Errors are Gemini's: a request that sets tools, toolConfig
or systemInstruction beside a cache is a 400, an unknown or expired cache a 404, one made for another model a 400.
Each answer of the cachedContents endpoints is counted in /metrics under the route its cache is for, as that route's
calls are, or "unknown" where no cache or route was read (a listing, a 404, a refused key).
"""

from __future__ import annotations

import asyncio
import re
import time
import uuid
from collections.abc import Callable
from datetime import UTC, datetime
from typing import Any

from fastapi import APIRouter, Request
from fastapi.responses import JSONResponse, Response

from tokenomy.caching.placement import estimate_input_tokens
from tokenomy.errors import TokenomyError
from tokenomy.gateway import metrics
from tokenomy.gateway.cache_store import CachedContent, CacheStore, owner_of
from tokenomy.gateway.calls import json_body
from tokenomy.gateway.gemini_auth import authenticate
from tokenomy.gateway.gemini_errors import gemini_error
from tokenomy.gateway.metrics_counting import UNROUTED
from tokenomy.gateway.vertex_paths import VERTEX_PARENT
from tokenomy.messages import ONE_HOUR, CachePoint, ChatRequest
from tokenomy.providers.gemini_fields import get, snake
from tokenomy.providers.gemini_inbound import request_from_gemini
from tokenomy.providers.gemini_turns import turns
from tokenomy.providers.gemini_update_mask import EXPIRATION, masked_update

router = APIRouter()
VERSIONS = ("v1beta", "v1alpha", "v1")
PREFIX_FIELDS = ("contents", "systemInstruction", "tools", "toolConfig")  # what a cache prefixes a request with
CREATE_FIELDS = ("model", *PREFIX_FIELDS, "ttl", "expireTime", "displayName")
DEFAULT_TTL_S = 3600  # Gemini's default: an hour
MAX_PAGE = 1000
LAST_TIME = 253402300799.0  # 9999-12-31T23:59:59Z
TTL = re.compile(r"^(\d+(?:\.\d{1,9})?)s$")  # proto3 JSON Duration: "300s", "1.5s"
_MODEL = re.compile(r"(?:projects/[^/]+/locations/[^/]+/)?(?:publishers/google/)?(?:models/)?([^/]+)")
_VERTEX_NAME = re.compile(r"projects/[^/]+/locations/[^/]+/(cachedContents/[^/]+)")  # a cache's name on Vertex AI
PLACEHOLDER = {"role": "user", "parts": [{"text": "."}]}  # stands for the request's own turn when a cache is checked


def _store(gw: Any) -> CacheStore:
    """The gateway's cache store, made on first use (its table in the ledger database)."""
    store = getattr(gw, "gemini_caches", None)
    if store is None:
        store = gw.gemini_caches = CacheStore(gw.store)
    return store


def _time(seconds: float) -> str:
    return datetime.fromtimestamp(seconds, UTC).isoformat().replace("+00:00", "Z")


def _parent(request: Request) -> str:
    """`projects/{p}/locations/{l}` when the caller came by a Vertex AI path naming them (`vertex_paths`), else ""."""
    return str(request.scope.get(VERTEX_PARENT) or "")


def _shown(name: str, parent: str) -> str:
    """A cache's name as the caller's API spells it: Vertex's full `projects/.../cachedContents/{id}`, or Gemini's."""
    return f"{parent}/{name}" if parent else name


def cache_body(cache: CachedContent, parent: str = "") -> dict[str, Any]:
    """Gemini's CachedContent answer (its contents are not sent back, as Gemini's are not); on a Vertex AI path, its
    name and model in Vertex's form."""
    model = f"{parent}/publishers/google/models/{cache.model}" if parent else f"models/{cache.model}"
    body: dict[str, Any] = {"name": _shown(cache.name, parent), "model": model}
    if cache.display_name is not None:
        body["displayName"] = cache.display_name
    return body | {
        "createTime": _time(cache.create_time),
        "updateTime": _time(cache.update_time),
        "expireTime": _time(cache.expire_time),
        "usageMetadata": {"totalTokenCount": cache.tokens},
    }


def _fields(body: Any, allowed: tuple[str, ...], what: str) -> dict[str, Any]:
    if not isinstance(body, dict):
        raise ValueError("the request body must be a JSON object")
    for key in body:
        if key not in allowed and snake(key) not in {snake(f) for f in allowed}:
            raise ValueError(f"{key}: not carried by the gateway for {what}; send only {', '.join(allowed)}")
    return body


def _expiry(body: dict[str, Any], now: float) -> float | None:
    """The expiry `ttl` or `expireTime` asks for (None: neither sent), before the year 10000 (RFC 3339's last)."""
    expire = _asked_expiry(body, now)
    if expire is not None and expire >= LAST_TIME:
        raise ValueError("ttl, expireTime: the cache would outlive the year 9999; give a shorter one")
    return expire


def _asked_expiry(body: dict[str, Any], now: float) -> float | None:
    ttl, expire = get(body, "ttl"), get(body, "expireTime")
    if ttl is not None and expire is not None:
        raise ValueError("ttl, expireTime: send one of them, not both")
    if ttl is not None:
        found = TTL.match(ttl) if isinstance(ttl, str) else None
        if found is None or float(found.group(1)) <= 0:
            raise ValueError(f'ttl: expected a positive duration in seconds such as "3600s", not {ttl!r}')
        return now + float(found.group(1))
    if expire is not None:
        try:
            when = datetime.fromisoformat(expire) if isinstance(expire, str) else None
        except ValueError:
            when = None
        if when is None or when.tzinfo is None:
            raise ValueError(f'expireTime: expected an RFC 3339 time such as "2030-01-01T00:00:00Z", not {expire!r}')
        if when.timestamp() <= now:
            raise ValueError(f"expireTime: {expire} has passed; give a time in the future")
        return when.timestamp()
    return None


def _model_name(model: Any) -> str:
    """The model a cache is for: Gemini's `models/{m}`, or Vertex's `projects/{p}/locations/{l}/publishers/google/
    models/{m}` (express mode sends `projects/None/locations/None/...`)."""
    found = _MODEL.fullmatch(model) if isinstance(model, str) else None
    if found is None:
        raise ValueError('model: expected the model the cache is for, e.g. "models/gemini-2.5-flash"')
    return found.group(1)


def _not_found(name: str) -> JSONResponse:
    return gemini_error(404, f"{name}: no such cached content (it may have expired, or belong to another key)")


async def _caller(request: Request, version: str) -> Any:
    """The caller's key, or the answer refusing the request: a version not served, or Gemini's 401/403 for the key."""
    if version not in VERSIONS:
        return gemini_error(404, f"/{version}/cachedContents: this gateway serves cachedContents on /v1beta")
    return await authenticate(request)


def _label(gw: Any, cache: CachedContent | None) -> str:
    """The /metrics label of an answer about `cache`: the route it was made for; "unknown" for none, or for one whose
    route the config no longer has (bounded labels, as the endpoints count a model that names no route)."""
    return cache.model if cache is not None and gw.route_for(cache.model) is not None else UNROUTED


def _answer(cache: CachedContent | None, name: str, request: Request, started: float) -> Response:
    parent = _parent(request)
    answer = _not_found(_shown(name, parent)) if cache is None else JSONResponse(cache_body(cache, parent))
    return metrics.done(answer, _label(request.app.state.gateway, cache), started)


@router.post("/{version}/cachedContents")
async def create_cache(request: Request, version: str) -> Response:
    """cachedContents.create: the cache is checked as a request's prefix (each field named as sent), kept, and
    answered without its contents."""
    started = time.perf_counter()
    key = await _caller(request, version)
    if isinstance(key, JSONResponse):
        return metrics.done(key, UNROUTED, started)
    gw = request.app.state.gateway
    now = time.time()
    label = UNROUTED  # the route, once the body names one
    try:
        body = _fields(await json_body(request), CREATE_FIELDS, "a cached content")
        model = _model_name(get(body, "model"))
        route = gw.route_for(model)
        if route is None:
            message = f"model `{model}` does not exist on this gateway; GET /v1/models lists the names"
            return metrics.done(gemini_error(404, message), UNROUTED, started)
        label = model
        prefix = {name: get(body, name) for name in PREFIX_FIELDS if get(body, name) is not None}
        if not prefix:
            raise ValueError("contents: a cached content holds contents, a systemInstruction or tools; send some")
        contents = prefix.get("contents", [])
        if not isinstance(contents, list):
            raise ValueError("contents: expected a list")
        # Read as a request would be (a placeholder turn when the cache holds no contents): each field named as sent.
        call = request_from_gemini(route.model or model, {**prefix, "contents": contents or [PLACEHOLDER]})
        if not contents:
            call.messages = []
        expire = _expiry(body, now)
        display = get(body, "displayName")
        if display is not None and not isinstance(display, str):
            raise ValueError("displayName: expected a string")
    except (ValueError, TokenomyError) as exc:  # json.JSONDecodeError is a ValueError
        return metrics.done(gemini_error(400, str(exc)), label, started)
    cache = CachedContent(
        f"cachedContents/{uuid.uuid4().hex}",
        owner_of(key),
        model,
        display,
        {snake(k): v for k, v in prefix.items()},
        estimate_input_tokens(call),
        now,
        now,
        expire if expire is not None else now + DEFAULT_TTL_S,
    )
    await asyncio.to_thread(_store(gw).add, cache, now)
    return metrics.done(JSONResponse(cache_body(cache, _parent(request))), label, started)


@router.get("/{version}/cachedContents")
async def list_caches(request: Request, version: str) -> Response:
    """cachedContents.list: the caller's live caches, oldest first, `pageSize` a page (default and most 1000);
    counted under "unknown", as a page holds caches of any route."""
    started = time.perf_counter()
    key = await _caller(request, version)
    if isinstance(key, JSONResponse):
        return metrics.done(key, UNROUTED, started)
    size_text = request.query_params.get("pageSize", str(MAX_PAGE))
    token = request.query_params.get("pageToken") or "0"
    if not size_text.isdigit() or not token.isdigit() or len(token) > 12:
        message = "pageSize, pageToken: expected a number of caches and a nextPageToken as answered"
        return metrics.done(gemini_error(400, message), UNROUTED, started)
    size = min(int(size_text) or MAX_PAGE, MAX_PAGE)  # 0: the default, as Gemini reads it
    caches, more = await asyncio.to_thread(
        _store(request.app.state.gateway).page, owner_of(key), time.time(), int(token), size
    )
    answer: dict[str, Any] = {"cachedContents": [cache_body(c, _parent(request)) for c in caches]} if caches else {}
    if more:
        answer["nextPageToken"] = str(int(token) + size)
    return metrics.done(JSONResponse(answer), UNROUTED, started)


@router.get("/{version}/cachedContents/{cache_id}")
async def get_cache(request: Request, version: str, cache_id: str) -> Response:
    started = time.perf_counter()
    key = await _caller(request, version)
    if isinstance(key, JSONResponse):
        return metrics.done(key, UNROUTED, started)
    name = f"cachedContents/{cache_id}"
    cache = await asyncio.to_thread(_store(request.app.state.gateway).get, name, owner_of(key), time.time())
    return _answer(cache, name, request, started)


@router.patch("/{version}/cachedContents/{cache_id}")
async def update_cache(request: Request, version: str, cache_id: str) -> Response:
    """cachedContents.patch: a new `ttl` (from now) or `expireTime`; nothing else of a cache changes. Under an
    `updateMask` only the fields it names are read (`masked_update`), as Gemini reads them."""
    started = time.perf_counter()
    key = await _caller(request, version)
    if isinstance(key, JSONResponse):
        return metrics.done(key, UNROUTED, started)
    now = time.time()
    try:
        sent = await json_body(request)
        if not isinstance(sent, dict):
            raise ValueError("the request body must be a JSON object")
        read = masked_update(sent, request.query_params.get("updateMask"))
        body = _fields(read, EXPIRATION, "an update (only the expiry of a cache changes)")
        expire = _expiry(body, now)
        if expire is None:
            raise ValueError("ttl: send a new ttl or expireTime")
    except ValueError as exc:  # refused before the cache is read: no route known
        return metrics.done(gemini_error(400, str(exc)), UNROUTED, started)
    name = f"cachedContents/{cache_id}"
    cache = await asyncio.to_thread(_store(request.app.state.gateway).expire_at, name, owner_of(key), expire, now)
    return _answer(cache, name, request, started)


@router.delete("/{version}/cachedContents/{cache_id}")
async def delete_cache(request: Request, version: str, cache_id: str) -> Response:
    started = time.perf_counter()
    key = await _caller(request, version)
    if isinstance(key, JSONResponse):
        return metrics.done(key, UNROUTED, started)
    name = f"cachedContents/{cache_id}"
    gw = request.app.state.gateway
    deleted = await asyncio.to_thread(_store(gw).delete, name, owner_of(key), time.time())
    answer = JSONResponse({}) if deleted is not None else _not_found(_shown(name, _parent(request)))
    return metrics.done(answer, _label(gw, deleted), started)


class CacheUse:
    """A request's `cachedContent` taken in: `body` the request with the cache's prefix in it, and where the cache
    point goes (`mark` on the ChatRequest read from that body)."""

    def __init__(self, body: dict[str, Any], cache: CachedContent) -> None:
        prefix = cache.body
        self.turns = len(prefix.get("contents") or [])
        self.system = prefix.get("system_instruction") is not None
        self.tools = prefix.get("tools") is not None
        self.lasts_an_hour = cache.expire_time - cache.update_time >= 3600  # the ttl it was made or last updated with
        self.body = {k: v for k, v in body.items() if snake(k) != "cached_content"} | {
            "contents": [*(prefix.get("contents") or []), *(get(body, "contents") or [])],
            **{field: prefix[snake(field)] for field in PREFIX_FIELDS[1:] if snake(field) in prefix},
        }

    def mark(self, call: ChatRequest, takes_one_hour: Callable[[ChatRequest], bool]) -> None:
        """A cache point right after the cached prefix (tools, then the system prompt, then the cached turns): for an
        hour when the cache lasts one and `takes_one_hour(call)` (the route's models take a 1-hour point)."""
        point: CachePoint = ONE_HOUR if self.lasts_an_hour and takes_one_hour(call) else True
        if self.turns:
            # The message the cache's last content is in: a model's contents in a row are one (`gemini_turns`), the
            # request's first too when both are a model's (then the point follows it: a message has no point inside)
            last = next(m for m, group in enumerate(turns(self.body["contents"])) if self.turns - 1 in group)
            call.messages[last].cache_point = call.messages[last].cache_point or point
        elif self.system:
            call.system_cache_point = call.system_cache_point or point
        elif self.tools:
            call.tools_cache_point = call.tools_cache_point or point


async def use_cache(
    request: Request, key: Any, model: str, body: Any, gemini_only: Callable[[], bool]
) -> CacheUse | JSONResponse | None:
    """The cache a generateContent (or countTokens) body names in `cachedContent`, checked as Gemini checks it: None
    when it names none; else the request with the cache in it, or Google's error. A Vertex AI name the gateway does
    not keep is None (sent on as is) when `gemini_only()`: the route's models are Gemini's, and it may be a cache made
    on Vertex AI itself; for other models it is the 404 of a cache that is not there."""
    name = get(body, "cachedContent") if isinstance(body, dict) else None
    if name is None:
        return None
    if not isinstance(name, str):
        return gemini_error(400, f'cachedContent: expected a cache\'s name, "cachedContents/<id>", not {name!r}')
    vertex = _VERTEX_NAME.fullmatch(name)
    if not name.startswith("cachedContents/") and vertex is None:
        return None  # not a cache's name the gateway gives: to Gemini models as sent
    sent = [f for f in PREFIX_FIELDS[1:] if get(body, f) is not None]
    if sent:
        return gemini_error(
            400,
            f"{', '.join(sent)}: CachedContent can not be used with GenerateContent request setting "
            "system_instruction, tools or tool_config. Proposed fix: move those values to CachedContent from "
            "GenerateContent request.",
        )
    contents = get(body, "contents")
    if contents is not None and not isinstance(contents, list):  # spliced after the cache's turns, as a list
        return gemini_error(
            400,
            f"contents: expected a list of turns to follow the cache's, not {contents!r:.80}; send a list of Content "
            "objects, or leave contents out to send only the cache's",
        )
    kept = vertex.group(1) if vertex is not None else name
    cache = await asyncio.to_thread(_store(request.app.state.gateway).get, kept, owner_of(key), time.time())
    if cache is None and vertex is not None and gemini_only():
        return None  # a cache made on Vertex AI itself, not through the gateway: to Gemini models as sent, as before
    if cache is None:
        return _not_found(name)
    if cache.model != model:
        return gemini_error(
            400,
            f"cachedContent: model used by GenerateContent request (models/{model}) and CachedContent "
            f"(models/{cache.model}) has to be the same",
        )
    return CacheUse(body, cache)
