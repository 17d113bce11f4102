"""The state of one logical call while the client's attempt loop runs it: its tiers, their targets, attempts.

Kept apart from `tokenomy.client` (which plans, calls and records) so the loop's data is in one place.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from tokenomy.caching.placement import Placement
from tokenomy.messages import ChatRequest, ChatResponse
from tokenomy.providers.base import Provider
from tokenomy.providers.registry import ModelSpec
from tokenomy.resilience.fallback import AttemptPlan, Step

if TYPE_CHECKING:
    from tokenomy.client import CallPolicy


@dataclass
class Target:
    """One model of a tier's chain, ready to call: the request as sent to it, its provider, its cache points."""

    spec: ModelSpec
    call: ChatRequest
    provider: Provider
    placements: list[Placement]
    estimate: int  # tokens reserved in the rate limiter before the call, corrected after


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
    yielded: bool = False
    response: ChatResponse | None = None
