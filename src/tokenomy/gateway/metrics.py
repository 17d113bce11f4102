"""Prometheus metrics of the gateway: requests by status, latency, tokens by type, cost."""

from __future__ import annotations

import os
import time
from decimal import Decimal
from typing import Any

from prometheus_client import CONTENT_TYPE_LATEST, CollectorRegistry, Counter, Histogram, generate_latest

from tokenomy.chat_response import ChatResponse, Usage

CONTENT_TYPE = CONTENT_TYPE_LATEST
REGISTRY = CollectorRegistry()
REQUESTS = Counter("tokenomy_requests_total", "Chat completion requests", ["model", "status"], registry=REGISTRY)
LATENCY = Histogram(
    "tokenomy_request_seconds",
    "Time from request to response (streams: to the last byte)",
    ["model"],
    registry=REGISTRY,
    buckets=(0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60),
)
TOKENS = Counter("tokenomy_tokens_total", "Tokens by usage type", ["model", "type"], registry=REGISTRY)
COST = Counter(
    "tokenomy_cost_usd_total", "Spend in USD (float: for dashboards; the ledger is exact)", ["model"], registry=REGISTRY
)


# Each metric's child per label values. `labels()` checks and locks on every call (~1.5 us each, five a request);
# the label values are bounded (served model names, status codes, usage types), so the children are kept here.
_children: dict[tuple, Any] = {}


def _child(metric: Counter | Histogram, *values: str) -> Any:
    key = (metric, *values)
    child = _children.get(key)
    if child is None:
        child = _children[key] = metric.labels(*values)
    return child


# (model, status) -> its request counter and its model's latency histogram, found once (both are made on first use).
_request_children: dict[tuple[str, int], tuple[Any, Any]] = {}


def count(model: str, status: int, started: float) -> None:
    children = _request_children.get((model, status))
    if children is None:
        children = _request_children[model, status] = (_child(REQUESTS, model, str(status)), _child(LATENCY, model))
    children[0].inc()
    children[1].observe(time.perf_counter() - started)


def done(response, model: str, started: float):
    """Count a finished non-streaming response and pass it through."""
    count(model, response.status_code, started)
    return response


def observe(response: ChatResponse, model: str) -> None:
    # Every attempt's cost, as the ledger has them.
    observe_usage(response.usage, response.call_cost_usd or response.cost_usd, model)


# Per model: its four token counters (input, output, cache read, cache write) and its cost counter, each made when
# it first counts something (a series shows in /metrics only then, as with `labels()` on each call) and kept.
_usage_children: dict[str, list[Any]] = {}
_KINDS = ("input", "output", "cache_read", "cache_write")


def _counter(children: list[Any], index: int, model: str) -> Any:
    child = children[index] = _child(TOKENS, model, _KINDS[index]) if index < 4 else _child(COST, model)
    return child


def observe_usage(usage: Usage, cost: Decimal | None, model: str) -> None:
    """Tokens by type and cost of one answered call (a chat's, or an embeddings call's input tokens)."""
    children = _usage_children.get(model)
    if children is None:
        children = _usage_children[model] = [None] * 5
    if usage.input_tokens:
        (children[0] or _counter(children, 0, model)).inc(usage.input_tokens)
    if usage.output_tokens:
        (children[1] or _counter(children, 1, model)).inc(usage.output_tokens)
    if usage.cache_read_tokens:
        (children[2] or _counter(children, 2, model)).inc(usage.cache_read_tokens)
    if usage.cache_write_tokens:
        (children[3] or _counter(children, 3, model)).inc(usage.cache_write_tokens)
    if cost:
        (children[4] or _counter(children, 4, model)).inc(float(cost))


def render() -> bytes:
    """This process's metrics; with several workers (PROMETHEUS_MULTIPROC_DIR set by `serve`) every worker's, summed."""
    if os.environ.get("PROMETHEUS_MULTIPROC_DIR"):
        from prometheus_client import multiprocess

        registry = CollectorRegistry()
        multiprocess.MultiProcessCollector(registry)
        return generate_latest(registry)
    return generate_latest(REGISTRY)
