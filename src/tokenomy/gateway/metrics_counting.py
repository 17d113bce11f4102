"""Which requests /metrics counts, and under which route and start time: the scope keys and labels that the edge
(`hygiene.EdgeHygiene`), admission (`calls.admit`), the endpoints that name their route only part-way (the count-tokens
ones) and the app's exception handlers share, so that each counts an answer as the others do.

A module of its own, apart from the edge's input checks in `hygiene`: those who only count an answer need the keys
and the counting, not the middleware, and the edge's checks stay one job.
"""

from __future__ import annotations

import time
from typing import TypeVar

from starlette.responses import Response
from starlette.types import Scope

from tokenomy.gateway import metrics

# The scope key under which admission (`calls.admit`) puts the route name /metrics counts the request's answer under:
# the edge counts a request it ends without the endpoint's answer (`count_unanswered`).
COUNTED_AS = "tokenomy.counted_as"
# The label /metrics counts a request under before any route is read from it, as the endpoints count one whose model
# names no route (bounded labels, whatever clients send).
UNROUTED = "unknown"
# The scope key under which the edge puts when it began reading an API call: an exception handler's answer is timed
# in /metrics from there, as the edge and the endpoints time theirs.
STARTED = "tokenomy.started"
BODY_METHODS = ("POST", "PUT", "PATCH")  # the requests whose body the edge reads and checks: every API call
R = TypeVar("R", bound=Response)  # an answer, passed through as its own type


def counted_in_metrics(method: str, path: str) -> bool:
    """Whether /metrics counts the answer to a request: an API call, one with a body, or any request on Gemini's
    `cachedContents` (its get, list and delete are API calls without one, and its endpoints count their answers)."""
    return method in BODY_METHODS or path.split("/", 3)[2:3] == ["cachedContents"]


def count_in_metrics(scope: Scope, answer: R) -> R:
    """`answer`, an endpoint's, counted in /metrics under the route it named (`COUNTED_AS`; none yet: UNROUTED),
    timed from when the edge began reading the request (`STARTED`): for the endpoints that name their route only
    part-way, as the count-tokens ones do."""
    metrics.count(scope.get(COUNTED_AS, UNROUTED), answer.status_code, scope.get(STARTED) or time.perf_counter())
    return answer


def count_unanswered(scope: Scope, status: int, started: float) -> None:
    """Count in /metrics a request that ends without its endpoint's answer, at `status`, under the route admission
    named (`COUNTED_AS`), as the endpoint counts its answers; one that ended before admission under UNROUTED."""
    metrics.count(scope.get(COUNTED_AS, UNROUTED), status, started)
