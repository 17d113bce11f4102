"""A route's `rate_limit` of N requests a minute must let no more than N through in any 60 s. The token bucket started
full (a minute's allowance) and refilled as it was spent, so from a cold start a 6-rpm route let 6 through at once and
6 more within the minute; and with `serve --workers N` each worker's bucket held 1/N of the rate (1.5 of 6 with four
workers), so each let its first request through, and another within the minute. Each limiter now also counts what it
granted in the last window, and a worker's share below one request a minute is refused at start-up."""

from __future__ import annotations

import itertools

import pytest

from tokenomy.call_policy import CallPolicy
from tokenomy.config import RouteConfig, parse_config
from tokenomy.errors import ConfigError
from tokenomy.resilience.ratelimit import RateLimiter


def granted_times(limiters: list[RateLimiter], now: list[float], seconds: float, tokens: int = 0) -> list[float]:
    """Every limiter asked as often as it grants, every 0.25 s for `seconds`: the times of the grants."""
    times = []
    while now[0] <= seconds:
        for limiter in limiters:
            while limiter.try_acquire(tokens) == 0:
                times.append(now[0])
        now[0] += 0.25
    return times


def most_in_a_minute(times: list[float]) -> int:
    return max((sum(start <= t < start + 60 for t in times) for start in times), default=0)


def test_a_6_rpm_limiter_lets_no_more_than_6_through_in_any_minute():
    now = [0.0]
    limiter = RateLimiter(rpm=6, clock=lambda: now[0])
    times = granted_times([limiter], now, 300)
    assert most_in_a_minute(times) == 6
    assert len(times) == 36  # and the rate is kept: 6 at 0, 60, ... and 300 s
    now[0] = 1000.0
    for _ in range(6):
        assert limiter.try_acquire() == 0
    now[0] += 20
    assert limiter.try_acquire() == pytest.approx(40.0)  # room again when the first of the six leaves the minute


def test_tokens_per_minute_hold_in_any_minute_too():
    now = [0.0]
    limiter = RateLimiter(tpm=1000, clock=lambda: now[0])
    times = granted_times([limiter], now, 300, tokens=100)
    assert most_in_a_minute(times) == 10
    limiter.settle(estimated=100, actual=10)  # the last call used far fewer tokens than reserved: given back
    assert limiter.try_acquire(80) == 0


def test_a_limiter_below_one_request_a_minute_spaces_them():
    now = [0.0]
    limiter = RateLimiter(rpm=0.5, clock=lambda: now[0])
    times = granted_times([limiter], now, 600)
    assert all(b - a >= 120 for a, b in itertools.pairwise(times)) and len(times) == 5


def test_workers_share_the_route_from_a_cold_start():
    now = [0.0]
    route = RouteConfig(model="fast", rate_limit={"requests_per_minute": 6})
    limiters = []
    for _ in range(4):  # serve --workers 4: each process builds the route's policy, with its 1/4 share
        limiter = CallPolicy.from_route(route, processes=4).limiter
        assert limiter is not None
        limiter._clock = lambda: now[0]
        limiter._updated = 0.0
        limiters.append(limiter)
    assert most_in_a_minute(granted_times(limiters, now, 300)) <= 6


def test_fewer_requests_a_minute_than_workers_is_refused_at_start_up():
    route = {"model": "fast", "rate_limit": {"requests_per_minute": 3}}
    config = parse_config(
        {"models": {"fast": {"provider": "openai", "model": "fast", "base_url": "http://x"}}, "routes": {"r": route}}
    )
    CallPolicy.for_route(config, "r", processes=3)  # one a minute each
    with pytest.raises(ConfigError, match=r"routes\.r\.rate_limit\.requests_per_minute: 3 .* 4 workers"):
        CallPolicy.for_route(config, "r", processes=4)
