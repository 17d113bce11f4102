"""The gateway's call path shared by its APIs (OpenAI chat completions, Anthropic messages):
admission (overload guard, key rate limit, budget reservation, a call slot) and settlement. The call itself
is the client's one attempt loop (`gw.client.achat` / `astream` with the route's policy, routing included)."""

from __future__ import annotations

import logging
import math
from dataclasses import dataclass, field
from decimal import Decimal

from tokenomy.client import CallPolicy
from tokenomy.errors import ProviderError
from tokenomy.gateway.budgets import BudgetUnavailable, Reservation, Scope
from tokenomy.gateway.limits import to_nano
from tokenomy.messages import ChatRequest, ChatResponse

log = logging.getLogger(__name__)


@dataclass
class Refusal:
    """Why admission refused a request: HTTP status, a message for the caller, a machine code."""

    status: int
    message: str
    code: str
    headers: dict[str, str] = field(default_factory=dict)


@dataclass
class Admitted:
    """A request that holds a call slot and (with budgets) a reservation; settle it exactly once."""

    policy: CallPolicy
    budgets: Reservation | None


async def admit(gw, model: str, route, key, call: ChatRequest) -> Admitted | Refusal:
    """Overload guard, the key's rate limit, the budget reservation, then a call slot (released by the caller)."""
    if gw.guard.full():
        return Refusal(503, "The gateway is at capacity; retry with backoff.", "overloaded")
    if key is not None and key.rpm and not await gw.limits.hit_rate(f"key:{key.key_id}", key.rpm):
        return Refusal(429, f"Rate limit of {key.rpm} requests per minute reached for this key.", "rate_limit_exceeded")
    policy = gw.policy_for(model, route)
    scopes = gw.budgets.scopes(key) if gw.budgets else []
    budgets: Reservation | None = None
    if scopes:
        estimate = gw.estimate_nano(route, call, policy)
        try:
            held = await gw.budgets.reserve(scopes, estimate)
        except BudgetUnavailable as exc:
            return Refusal(503, f"the gateway cannot check this key's budget: {exc}; retry later", "budget_unavailable")
        if isinstance(held, Scope):
            scope = "team" if held.counter.startswith("team:") else "key"
            if estimate > held.limit:  # more than the whole budget: no later period would admit it either
                fix = (
                    f" on its own (${Decimal(held.limit) / Decimal(10**9):.6f}). Lower max_tokens or shorten the "
                    "prompt, or raise the budget; waiting for the next period will not help."
                )
            else:
                fix = ". Raise the budget or wait for the next period."
            return Refusal(
                429,
                f"Budget exhausted for this {scope}: this request could cost up to "
                f"${Decimal(estimate) / Decimal(10**9):.6f} and would exceed the {scope}'s budget{fix}",
                "budget_exceeded",
                # Both official SDKs retry a 429 unless told not to; an exhausted budget will not change by retrying.
                {"x-should-retry": "false"},
            )
        budgets = held
    gw.guard.waiting += 1
    try:
        await gw.guard.slots.acquire()
    except BaseException:  # the client left while queued: nothing was called, release the reservation
        await settle(gw, budgets, None)
        raise
    finally:
        gw.guard.waiting -= 1
    return Admitted(policy, budgets)


async def settle(
    gw, budgets: Reservation | None, response: ChatResponse | None, unknown: bool = False, paid: Decimal = Decimal(0)
) -> None:
    """Replace the reservation by the actual cost (a failed call costs what its attempts were billed, `paid`: a
    cascade's rejected answers, streams cut midway; an unknown cost keeps the reservation).

    The provider has answered by now: a limits store that fails here must not turn a paid answer into an
    error, so the failure is logged and the reservation stays (the counter over-counts, never under)."""
    if budgets is None or gw.budgets is None:
        return
    # unknown: e.g. a stream the client dropped mid-way: tokens were spent, the reservation stays
    # A cascade pays for every tier it tried, not only the answer it returned: the whole call is charged.
    cost = paid if response is None else (response.call_cost_usd or response.cost_usd)
    actual = None if unknown else (to_nano(cost) if cost is not None else 0)
    try:
        await gw.budgets.settle(budgets, actual)
    except Exception as exc:
        log.warning("settling a budget reservation failed (%s); the reservation stays counted", exc)


def paid(exc: BaseException | None) -> Decimal:
    """What a failed call's attempts were billed (0 for an error raised before any provider answered)."""
    return exc.call_cost_usd if isinstance(exc, ProviderError) else Decimal(0)


# Upstream error codes that mean the gateway's configuration is wrong (the route's model is not there), not the
# caller's request.
CONFIG_FAULT_CODES = frozenset({"model_not_found", "DeploymentNotFound"})


def upstream_status(exc: ProviderError) -> int:
    """The status a failed provider call is answered with. The provider refusing the gateway's own credentials
    (401, 403), or not knowing the route's model, is not the caller's request at fault: a 502, not a 4xx that tells
    the caller to change its request. Another client error keeps the upstream's status (404, 413, 422, ...), as
    the caller would have had it from the provider directly; one the gateway raised itself is a 400."""
    if exc.kind == "client_error":
        if exc.status in (401, 403) or exc.code in CONFIG_FAULT_CODES:
            return 502
        return exc.status if exc.status is not None and 400 <= exc.status < 500 else 400
    return {"throttled": 429, "timeout": 504}.get(exc.kind, 502)


def retry_after(exc: ProviderError) -> dict[str, str] | None:
    """The provider's Retry-After, passed on to the caller (whole seconds, as HTTP has it): the SDKs wait that long
    before their retry instead of guessing a backoff."""
    return {"retry-after": str(math.ceil(exc.retry_after))} if exc.retry_after is not None else None
