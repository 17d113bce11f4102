"""The gateway's call path shared by its APIs (OpenAI chat completions, Anthropic messages):
admission (overload guard, key rate limit, budget reservation), the call itself, and settlement."""

from __future__ import annotations

from dataclasses import dataclass
from decimal import Decimal

from tokenomy.client import CallPolicy
from tokenomy.errors import TokenomyError
from tokenomy.gateway.limits import to_nano
from tokenomy.messages import ChatRequest, ChatResponse


@dataclass
class Refusal:
    """Why admission refused a request: HTTP status, a message for the caller, a machine code."""

    status: int
    message: str
    code: str


@dataclass
class Admitted:
    """A request that holds a call slot and (with budgets) a reservation; settle it exactly once."""

    policy: CallPolicy
    budgets: list
    estimate: int


async def admit(gw, model: str, route, key, call: ChatRequest) -> Admitted | Refusal:  # noqa: ANN001
    """Overload guard, the key's rate limit, the budget reservation, then a call slot (released by the caller)."""
    if gw.guard.full():
        return Refusal(503, "The gateway is at capacity; retry with backoff.", "overloaded")
    if key is not None and key.rpm and not await gw.limits.hit_rate(f"key:{key.key_id}", key.rpm):
        return Refusal(429, f"Rate limit of {key.rpm} requests per minute reached for this key.", "rate_limit_exceeded")
    budgets = gw.budgets(key)
    estimate = gw.estimate_nano(route, call) if budgets else 0
    if budgets:
        refused = await gw.limits.reserve(budgets, estimate)
        if refused is not None:
            scope = "team" if refused.startswith("team:") else "key"
            return Refusal(429, f"Budget exhausted for this {scope}: this request could cost up to "
                                f"${Decimal(estimate) / Decimal(10**9):.6f} and would exceed the {scope}'s budget. "
                                "Raise the budget or wait for the next period.", "budget_exceeded")
    policy = gw.policies.get(model) or CallPolicy.from_route(route)
    gw.guard.waiting += 1
    try:
        await gw.guard.slots.acquire()
    finally:
        gw.guard.waiting -= 1
    return Admitted(policy, budgets, estimate)


async def call_route(gw, call: ChatRequest, route, policy: CallPolicy) -> ChatResponse:  # noqa: ANN001
    """One whole answer through the route (a routing policy dispatches to its tiers)."""
    if route.policy:
        try:
            from tokenomy.routing.dispatch import achat_via_route
        except ModuleNotFoundError as exc:
            raise TokenomyError(f"route uses routing policy {route.policy!r} but the routing package is not "
                                "available") from exc
        return await achat_via_route(gw.client, gw.config, call.meta.route, call)
    return await gw.client.achat(call, policy=policy)


async def settle(gw, budgets, estimate: int, response: ChatResponse | None,  # noqa: ANN001
                 unknown: bool = False) -> None:
    """Replace the reservation by the actual cost (failed calls cost nothing; an unknown cost keeps it)."""
    if budgets:
        if unknown:
            return  # e.g. a stream the client dropped mid-way: tokens were spent, the reservation stays
        actual = to_nano(response.cost_usd) if response is not None and response.cost_usd is not None else 0
        await gw.limits.settle(budgets, estimate, actual)
