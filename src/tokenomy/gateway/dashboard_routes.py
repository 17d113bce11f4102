"""The gateway's /dashboard: the cost dashboard page, its static files and its JSON API over the gateway's ledger.

The queries live in tokenomy.analytics.dashboard_data and the page in tokenomy.analytics.dashboard; this
module only does the web part: the ledger and the caller's scope from the gateway, HTTP errors.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from dataclasses import replace
from functools import partial
from typing import Any

from fastapi import APIRouter, HTTPException, Request
from fastapi.responses import HTMLResponse, JSONResponse, Response

from tokenomy.analytics import dashboard_data
from tokenomy.analytics.dashboard import SCRIPTS, STATIC_FILES, page_html, static_text
from tokenomy.analytics.dashboard_data import Filters
from tokenomy.analytics.dashboard_filters import check_known
from tokenomy.analytics.review import stored_review
from tokenomy.analytics.review_html import review_html
from tokenomy.errors import TokenomyError
from tokenomy.gateway.keys import VirtualKey

router = APIRouter(prefix="/dashboard", tags=["dashboard"])
# An empty icon: a page without one has the browser ask the gateway for /favicon.ico and log its 404 every load.
_NO_ICON = '<link rel="icon" href="data:,">'


def _store(request: Request) -> Any:
    store = getattr(request.app.state, "ledger_store", None)
    if store is None:
        raise HTTPException(503, "the gateway's ledger is not open yet")
    return store


def _scope(request: Request) -> Filters:
    """With auth on, the caller's virtual key decides what it may see: its team's calls, or its own."""
    gateway = getattr(request.app.state, "gateway", None)
    if gateway is None or gateway.keys is None:
        return Filters()
    key = gateway.authenticate(request.headers.get("authorization"))
    if isinstance(key, JSONResponse) and key.status_code == 503:  # the key database is down: not the caller's key
        raise HTTPException(503, json.loads(bytes(key.body))["error"]["message"])
    if not isinstance(key, VirtualKey):
        raise HTTPException(
            401,
            "The dashboard needs a virtual key: send `Authorization: Bearer <key>` (the page "
            "asks for one; create it with `tokenomy keys create`).",
        )
    return Filters(tenant=key.team) if key.team else Filters(key_id=key.key_id)


# The query parameters every section takes (`/api/filters` takes none).
SECTION_QUERY = ("since", "until", "provider", "model", "task", "tag")
_TAKES = "since and until (YYYY-MM-DD or an ISO timestamp, UTC; until exclusive), provider, model, task, tag=key=value"


def _refuse_unknown_query(request: Request, takes: tuple[str, ...]) -> None:
    """A parameter the API does not read would be dropped: `?period=7d` answered the whole ledger as if narrowed to a
    week, and `model=a&model=b` answered model b alone."""
    names = [name for name, _ in request.query_params.multi_items()]
    what = f"{request.url.path} takes {_TAKES}" if takes else f"{request.url.path} takes no query parameters"
    for name in names:
        if name not in takes:
            raise HTTPException(400, f"unknown query parameter {name!r}: {what}")
    for name in names:
        if names.count(name) > 1:
            raise HTTPException(400, f"{name} is given {names.count(name)} times; give it once ({what})")


def _answer(
    request: Request,
    fn: Callable[..., Any],
    configured: bool,
    since: str | None,
    until: str | None,
    provider: str | None,
    model: str | None,
    task: str | None,
    tag: str | None,
) -> Any:
    scope = _scope(request)
    _refuse_unknown_query(request, SECTION_QUERY)
    if configured:  # the alert rules of the tokenomy.yaml the gateway serves (budgets:, alerts:, routing)
        gateway = getattr(request.app.state, "gateway", None)
        fn = partial(fn, config=gateway.config if gateway is not None else None)
    try:
        filters = dashboard_data.make_filters(since, until, provider, model, task, tag)
        filters = replace(filters, tenant=scope.tenant, key_id=scope.key_id)
        store = _store(request)
        check_known(store, filters)
        return fn(store, filters)
    except TokenomyError as exc:
        raise HTTPException(400, str(exc)) from exc


@router.get("", response_class=HTMLResponse, include_in_schema=False)
@router.get("/", response_class=HTMLResponse, summary="Cost dashboard page")
def page(request: Request) -> HTMLResponse:
    """The dashboard page (charts load from the JSON API below)."""
    base = str(request.url.path).rstrip("/")
    scripts = "\n".join(f'<script src="{base}/static/{name}"></script>' for name in SCRIPTS)
    gateway = getattr(request.app.state, "gateway", None)
    # Behind keys, /review refuses every key (it covers every key and team): no link to a page that answers 403.
    behind_keys = gateway is not None and gateway.keys is not None
    link = "" if behind_keys else f'<a class="kpi" id="review-link" href="{base}/review">latest quarterly review</a>'
    return HTMLResponse(page_html(base, scripts, header_links=link, head=_NO_ICON))


@router.get("/review", response_class=HTMLResponse, summary="The latest quarterly review")
def review(request: Request) -> HTMLResponse:
    """The latest review stored by `tokenomy review` in this gateway's ledger, as its self-contained page."""
    gateway = getattr(request.app.state, "gateway", None)
    if gateway is not None and gateway.keys is not None:
        # A review covers the whole ledger; a virtual key sees only its own or its team's calls.
        raise HTTPException(
            403,
            "The quarterly review covers every key and team; run `tokenomy review --html "
            "review.html` against the ledger to read it.",
        )
    body = stored_review(_store(request))
    if body is None:
        # An empty state, as the dashboard's own for an empty ledger: the page the header links to, not a 404 the
        # browser logs as a failed load on every gateway that has had no review yet.
        return HTMLResponse(
            '<!doctype html><html lang="en"><head><meta charset="utf-8"><title>No review yet</title>'
            # a phone laid a page without it out 980 px wide, its sentence in type too small to read
            '<meta name="viewport" content="width=device-width, initial-scale=1">'
            f"{_NO_ICON}</head><body><p>No quarterly review is stored in this "
            "ledger yet. Run <code>tokenomy review --ledger LEDGER</code>; its latest one is shown here.</p>"
            '<p><a href="./">Back to the cost console</a></p></body></html>'
        )
    # The served page names an empty icon, as the dashboard does (the browser's /favicon.ico is a 404 every load);
    # the file `review --html` writes links to nothing.
    return HTMLResponse(review_html(body).replace("<head>", f"<head>{_NO_ICON}", 1))


@router.get("/static/{name}", include_in_schema=False)
def static(name: str) -> Response:
    if name not in STATIC_FILES:
        raise HTTPException(404, f"no dashboard file {name!r}")
    return Response(static_text(name), media_type=STATIC_FILES[name], headers={"Cache-Control": "max-age=3600"})


@router.get("/api/filters", summary="Values for the filter menus")
def api_filters(request: Request) -> dict:
    """Providers, models, tasks and tags in the ledger (within the key's scope), and its first and last day."""
    scope = _scope(request)
    _refuse_unknown_query(request, ())
    return dashboard_data.filter_options(_store(request), scope)


def _section(name: str, fn: Callable[[Any, Filters], Any], doc: str) -> None:
    def endpoint(
        request: Request,
        since: str | None = None,
        until: str | None = None,
        provider: str | None = None,
        model: str | None = None,
        task: str | None = None,
        tag: str | None = None,
    ) -> Any:
        return _answer(request, fn, name in dashboard_data.CONFIGURED, since, until, provider, model, task, tag)

    endpoint.__doc__ = (
        doc + " Query: since, until (exclusive; YYYY-MM-DD or ISO), provider, model, task, tag=key=value."
    )
    endpoint.__name__ = f"api_{name}"
    router.add_api_route(f"/api/{name}", endpoint, methods=["GET"], summary=doc)


for _name, _fn in dashboard_data.SECTIONS.items():
    _section(_name, _fn, (_fn.__doc__ or _name).strip().splitlines()[0])
