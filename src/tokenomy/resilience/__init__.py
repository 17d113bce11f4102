"""Surviving throttling and errors: retries with backoff, client-side rate limits, fallbacks."""

from tokenomy.resilience.fallback import AttemptPlan, Step
from tokenomy.resilience.ratelimit import RateLimiter
from tokenomy.resilience.retry import NO_RETRY, RetryPolicy

__all__ = ["NO_RETRY", "AttemptPlan", "RateLimiter", "RetryPolicy", "Step"]
