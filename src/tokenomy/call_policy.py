"""What happens around a call (`CallPolicy`: caps, cache points, retries, fallbacks, rate limit, router), and
the state of one logical call while the client's attempt loop runs it (its tiers, their targets, attempts).

Kept apart from `tokenomy.client` (with `call_plan` and `recording`), which plans, calls and records.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from decimal import Decimal
from functools import cached_property
from typing import TYPE_CHECKING, Any

from tokenomy.caching.placement import Placement, audio_input_tokens, estimate_input_tokens
from tokenomy.caching.tokens import TokenPolicy
from tokenomy.call_cost import CallCost
from tokenomy.chat_response import ChatResponse, Usage
from tokenomy.errors import ConfigError, ProviderError
from tokenomy.messages import ChatRequest
from tokenomy.providers.base import Provider
from tokenomy.providers.registry import ModelSpec
from tokenomy.resilience.fallback import AttemptPlan, Step
from tokenomy.resilience.ratelimit import RateLimiter
from tokenomy.resilience.retry import RetryPolicy
from tokenomy.routing.router import Prices, Router, build_router
from tokenomy.routing.validators import Rejection

if TYPE_CHECKING:
    from tokenomy.config import RouteConfig, TokenomyConfig


@dataclass(frozen=True)
class CallPolicy:
    """What happens around a call: automatic cache points, token caps, retries, fallbacks, rate limit, and the
    router that picks the tiers to try (each tier's attempts get all of the above)."""

    caching: bool = True
    tokens: TokenPolicy = field(default_factory=TokenPolicy)
    retry: RetryPolicy = field(default_factory=RetryPolicy)
    fallback: tuple[str, ...] = ()
    limiter: RateLimiter | None = None
    router: Router | None = None

    @classmethod
    def from_route(
        cls,
        route: RouteConfig,
        limiter: RateLimiter | None = None,
        router: Router | None = None,
        processes: int = 1,
        name: str = "<route>",
    ) -> CallPolicy:
        """Build the policy a config route asks for (build it once per route: it owns the route's token bucket).
        `processes`: how many processes serve the route, each with a bucket of its own (`tokenomy serve --workers
        N`): each takes 1/N of the route's rate, so that together they stay within it."""
        check_rate_split(route, name, processes)
        if limiter is None and route.rate_limit is not None:
            rpm, tpm = route.rate_limit.requests_per_minute, route.rate_limit.tokens_per_minute
            limiter = RateLimiter(rpm and rpm / processes, tpm and tpm / processes)
        return cls(
            caching=route.caching.enabled,
            tokens=route.tokens,
            retry=route.retry,
            fallback=tuple(route.fallback),
            limiter=limiter,
            router=router,
        )

    @classmethod
    def for_route(
        cls, config: TokenomyConfig, name: str, catalog: Prices | None = None, processes: int = 1
    ) -> CallPolicy:
        """The policy of route `name` in `config`, with its router when the route names a routing policy
        (`processes`: as for `from_route`)."""
        route = config.route_for(name)
        if route is None:
            raise ConfigError(f"routes.{name}: no such route or model; define it under `routes:` or `models:`")
        router = build_router(config, route.policy, catalog) if route.policy else None
        return cls.from_route(route, router=router, processes=processes, name=name)


def check_rate_split(route: RouteConfig, name: str, processes: int) -> None:
    """Refuse a route's requests_per_minute that `processes` workers cannot share: each would hold less than one
    request a minute, and a worker cannot know the others are idle, so from a cold start each would send one (four
    workers, four requests, on a 3-rpm route)."""
    rpm = route.rate_limit.requests_per_minute if route.rate_limit is not None else None
    if processes > 1 and rpm is not None and rpm < processes:
        raise ConfigError(
            f"routes.{name}.rate_limit.requests_per_minute: {rpm:g} cannot be shared by {processes} workers (each "
            f"holds 1/{processes} of it, less than one request a minute); raise it to at least {processes} or serve "
            f"with at most {max(1, math.floor(rpm))} worker(s)"
        )


@dataclass
class Target:
    """One model of a tier's chain, ready to call: the request as sent to it, its provider, its cache points."""

    spec: ModelSpec
    call: ChatRequest
    provider: Provider
    placements: list[Placement]
    # Why the model cannot take the request as resolved for it, found then (no thinking budget fits below the cap
    # it is held to): raised by `CallPlanner._check_inputs` before anything is sent.
    refused: ProviderError | None = None

    @cached_property
    def estimate(self) -> int:
        """Tokens reserved in the rate limiter before the call (its prompt, estimated, and its output cap), corrected
        after; also what an attempt that failed after reaching its provider, or was in flight when a journaled gateway
        died, is recorded at. Made when first asked, once: estimating the prompt reads every block."""
        return estimate_input_tokens(self.call) + (self.call.max_tokens or 0)

    @cached_property
    def audio_estimate(self) -> int:
        """The audio in `estimate`'s prompt (Gemini's audio parts, which OpenAI-format models take as input_audio),
        which a row at the estimate prices as audio. A walk of type checks: a prompt without audio is 0."""
        return sum(audio_input_tokens(message.content) for message in self.call.messages)


@dataclass
class TierRun:
    """One tier of the call (a call without a router has one, unnamed): its chain, retries and targets."""

    index: int
    name: str | None
    plan: AttemptPlan
    validated: bool  # its answer must pass the route's validators before the caller sees it
    targets: dict[int, Target] = field(default_factory=dict)


@dataclass
class CallState:
    """State shared by every attempt of one logical call."""

    request: ChatRequest
    policy: CallPolicy
    tiers: list[TierRun]
    validators: dict | None
    request_id: str
    mode: str
    stream: bool
    attempts: int = 0  # attempts made by the tiers already done: numbering runs on across a cascade
    # What the attempts recorded so far cost (every answer, abandoned streams), shared with a caller that settles
    # against it (the gateway's budget).
    cost: CallCost = field(default_factory=CallCost)
    asked: ChatRequest | None = None  # the request as the caller made it, before turns were cut (CallPlanner._pass_on)
    escalated: bool = False  # an answer failed the validators; a later tier reached only by refusals was passed up
    escalations: int = 0  # answers the validators rejected so far: an escalated tier's tag is its number
    failed_below: bool = False  # the tier below ended with an error and passed the request up (not refused it unsent)

    @property
    def spent(self) -> Decimal:
        return self.cost.spent


@dataclass
class Attempt:
    """One attempt in flight: how much of it the caller has seen, and its answer once it has one."""

    tier: TierRun
    step: Step
    target: Target
    number: int  # the attempt's number within the whole call (ledger `attempt`)
    span: Any = None
    started: float = 0.0
    deltas: int = 0
    # The prompt's counts the provider gave as its answer began (StreamChunk.start_usage: Anthropic's message_start),
    # which a stream that ends early is recorded at, rather than at the gateway's estimate.
    reported: Usage | None = None
    chars: int = 0  # of the text, reasoning and tool-call arguments received: estimates an unfinished answer's output
    yielded: bool = False
    response: ChatResponse | None = None
    rejection: Rejection | None = None  # why the validators rejected its answer (a validated tier's)
    # A cancelled caller's attempt whose provider call was to run in a worker thread: "queued" (not started: nothing
    # was sent) or "running" (the thread's end records it).
    thread: str | None = None
    # The id its ledger row takes, when a journal holds an in-flight entry for it (Recorder._in_flight): the row
    # supersedes the entry, and a replay that finds both keeps the row.
    event_id: str | None = None
