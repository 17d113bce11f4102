"""The gateway's Prometheus counters: a series shows in /metrics only once it has counted something."""

from __future__ import annotations

from decimal import Decimal

from tokenomy.chat_response import Usage
from tokenomy.gateway import metrics


def _series(model: str) -> dict[str, str]:
    exposed = metrics.render().decode()
    return {
        line.split(" ")[0]: line.split(" ")[1]
        for line in exposed.splitlines()
        if line.startswith(("tokenomy_tokens_total{", "tokenomy_cost_usd_total{")) and f'model="{model}"' in line
    }


def test_token_and_cost_series_appear_when_first_counted_and_add_up():
    # observe_usage keeps each model's counters after finding them once: a type never counted still has no series
    # (no cache_read 0 line for a model that never read the cache), and each answer adds to the same counters.
    metrics.observe_usage(Usage(0, 3), None, "series-a")
    assert _series("series-a") == {'tokenomy_tokens_total{model="series-a",type="output"}': "3.0"}
    metrics.observe_usage(Usage(20, 5, 7), Decimal("0.25"), "series-a")
    metrics.observe_usage(Usage(10, 0, 0, 4), Decimal("0.5"), "series-a")
    assert _series("series-a") == {
        'tokenomy_tokens_total{model="series-a",type="input"}': "30.0",
        'tokenomy_tokens_total{model="series-a",type="output"}': "8.0",
        'tokenomy_tokens_total{model="series-a",type="cache_read"}': "7.0",
        'tokenomy_tokens_total{model="series-a",type="cache_write"}': "4.0",
        'tokenomy_cost_usd_total{model="series-a"}': "0.75",
    }
    assert _series("series-b") == {}


def test_requests_are_counted_by_model_and_status_and_timed_by_model():
    # count keeps each (model, status)'s counter and its model's histogram after finding them once.
    import time

    for status in (200, 200, 429):
        metrics.count("series-c", status, time.perf_counter())
    lines = [line for line in metrics.render().decode().splitlines() if 'model="series-c"' in line]
    assert 'tokenomy_requests_total{model="series-c",status="200"} 2.0' in lines
    assert 'tokenomy_requests_total{model="series-c",status="429"} 1.0' in lines
    assert 'tokenomy_request_seconds_count{model="series-c"} 3.0' in lines
