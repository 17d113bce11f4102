"""The gateway's call path shared by its APIs (OpenAI chat completions; Anthropic's, Bedrock's and Gemini's APIs):
admission (overload guard, key rate limit, budget reservation, a call slot), the call, and its settlement (in
`settlement`). The call itself is the client's one attempt loop (`gw.client.achat` / `astream` with the route's
policy, routing included); each API's routes only map the request in and the answer out (`call_whole` here, and
`call_stream.call_streamed` with a `StreamFormat` for a streamed answer)."""

from __future__ import annotations

import asyncio
import json
import logging
import math
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field, replace
from decimal import Decimal
from typing import Any

from starlette.responses import Response

from tokenomy.chat_response import ChatResponse
from tokenomy.client import CallPolicy
from tokenomy.errors import CALLER_LEFT, ProviderError, TokenomyError
from tokenomy.gateway import metrics
from tokenomy.gateway.budgets import BudgetUnavailable, Reservation, Scope
from tokenomy.gateway.disconnects import caller_leaves, caller_left
from tokenomy.gateway.hygiene import PARSED_BODY
from tokenomy.gateway.metrics_counting import COUNTED_AS
from tokenomy.gateway.openai_ingress import caller_meta
from tokenomy.gateway.settlement import call_cost, paid, settle, settle_when_final
from tokenomy.gateway.worst_case import Bound, WorstCase
from tokenomy.messages import ONE_HOUR, ChatRequest, RequestMeta
from tokenomy.providers.refusals import fields_to_carry

log = logging.getLogger(__name__)


async def json_body(request) -> Any:
    """The request's JSON body: the edge's strict-JSON check parsed a clean one already (hygiene.PARSED_BODY); else
    it is parsed here (a ValueError for the caller when it is not JSON)."""
    parsed = request.scope.get(PARSED_BODY)
    return parsed if parsed is not None else json.loads(await request.body() or b"null")


# The request headers a call reads, by their raw (lower-case, as ASGI servers give them) names.
CALL_HEADERS = {
    b"authorization": "authorization",
    b"x-tokenomy-task": "x-tokenomy-task",
    b"x-tokenomy-tags": "x-tokenomy-tags",
}


def call_headers(request) -> dict[str, str]:
    """The headers a call reads (`CALL_HEADERS`; the first of a repeated one, as Starlette's `Headers.get` gives it), in
    one pass over the request's raw headers: `Headers.get` makes a pass of its own for each name and raises, and
    catches, a KeyError for each one not sent (most requests send neither of Tokenomy's)."""
    found: dict[str, str] = {}
    for raw, value in request.scope["headers"]:
        name = CALL_HEADERS.get(raw)
        if name is not None and name not in found:
            found[name] = value.decode("latin-1")
    return found


def request_meta(request, route, key, name: str) -> RequestMeta:
    """Who is calling and what for: the task and tags headers, the key and its team, the route's name."""
    return caller_meta(call_headers(request), route, key, name)


def route_models(gw, route, name: str) -> list[str]:
    """Every model a request on the route may reach: its model, its fallbacks and its routing policy's tiers."""
    router = gw.policy_for(name, route).router
    return [*([route.model] if route.model else []), *route.fallback, *(router.models() if router else [])]


def route_providers(gw, route, name: str) -> set[str]:
    """The providers (`anthropic`, `aws.bedrock`, `gcp.gemini`, ...) of every model a request on the route may reach."""
    return {gw.client.provider_for(gw.client.spec_for(model)).name for model in route_models(gw, route, name)}


def takes_one_hour_cache(gw, route, name: str, call: ChatRequest) -> bool:
    """Whether every model the route may reach takes a 1-hour cache point on `call` (its API has a 1-hour cache and its
    price a 1-hour write): the point the gateway adds itself is made one only then, never refused for it."""
    probe = replace(call, system_cache_point=ONE_HOUR)
    return all(gw.client.cache_refusal(gw.client.spec_for(m), probe) is None for m in route_models(gw, route, name))


# How to stop a field a client sends without being asked, for the caller who cannot edit the request.
SENT_UNASKED = {
    "context_management": " (Claude Code sends it whenever thinking is on: turn thinking off, or set "
    "CLAUDE_CODE_DISABLE_EXPERIMENTAL_BETAS=1)",
}


def leave_out_standard_only(call: ChatRequest, providers: set[str]) -> None:
    """Anthropic's service_tier "standard_only" asks for the standard tier, which every other API serves unasked: it is
    left out on a route with no model on Anthropic's API (which gets it as sent), rather than refused."""
    if "anthropic" not in providers and call.extra.get("service_tier") == "standard_only":
        del call.extra["service_tier"]


def refusal(
    gw,
    route,
    call: ChatRequest,
    name: str,
    api: str,
    providers: tuple[str, ...],
    named: Callable[[str], str] = str,
) -> ProviderError | None:
    """The 400 for what of `call` the route's model cannot take (`Gateway.refusal`), asked before any call or budget
    reservation. An API's own fields the mapping does not know (`call.extra`) reach that API's models as sent, and are
    refused (a ValueError naming the first, as the caller spelled it: `named`) for a route that may reach any other (a
    fallback or routed tier included): its API would get them raw or not at all. Those at a value that asks nothing
    of an API without them (`refusals.ASK_NOTHING_AT`: a service_tier naming the standard tier) are not refused: the
    others leave them out, and an OpenAI-format model takes them as OpenAI does."""
    unknown = next(iter(fields_to_carry(call.extra)), None) if call.extra else None
    others = sorted(route_providers(gw, route, name) - set(providers)) if unknown is not None else []
    if unknown is not None and others:
        raise ValueError(
            f"{named(unknown)}: the gateway carries this field to {api} models only, and `{name}` may reach "
            f"{', '.join(others)} models; remove it{SENT_UNASKED.get(unknown, '')}"
        )
    # The mapping's own refusals (`Provider.mapping_refusal`) read the API's fields it knows (Anthropic's speed,
    # inference_geo, output_config.effort, cache_control): asked of the call as sent
    return gw.refusal(route, replace(call, extra={}) if call.extra else call, mapped=call)


# OpenAI's error `type` for each admission refusal code (chat completions and the Responses API).
OPENAI_ERROR_TYPES = {
    "caller_left": "invalid_request_error",
    "overloaded": "server_error",
    "rate_limit_exceeded": "rate_limit_error",
    "budget_unavailable": "server_error",
    "budget_exceeded": "insufficient_quota",
}


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
    request: Any = None  # the caller's, asked whether it is still there before a retry (`caller_left`)

    def caller_left(self) -> Callable[[], Awaitable[bool]] | None:
        request = self.request
        return None if request is None else (lambda: caller_left(request))

    def caller_leaves(self) -> Callable[[], Awaitable[None]] | None:
        request = self.request
        return None if request is None else (lambda: caller_leaves(request))


def _usd(nano: int) -> str:
    """An amount for a refusal's message: to the micro-dollar, or to the nano-dollar below one (an embeddings
    request costs less: $0.00000052 would read $0.000000)."""
    return f"${Decimal(nano) / Decimal(10**9):.{6 if nano >= 1000 else 9}f}"


async def gate(gw, key) -> Refusal | None:
    """The overload guard and the key's rate limit, whose 429 says when the key may send again (Retry-After, whole
    seconds, which both official SDKs wait before they retry)."""
    if gw.guard.full():
        return Refusal(503, "The gateway is at capacity; retry with backoff.", "overloaded")
    if key is None or not key.rpm:
        return None
    wait = await gw.limits.rate_wait(f"key:{key.key_id}", key.rpm)
    if wait is None:
        return None
    seconds = max(1, math.ceil(wait))
    return Refusal(
        429,
        f"Rate limit of {key.rpm} requests per minute reached for this key; the next may be sent in {seconds} s.",
        "rate_limit_exceeded",
        {"retry-after": str(seconds)},
    )


async def admit(
    gw,
    request,
    model: str,
    route,
    key,
    call: ChatRequest | None,
    estimate_nano: int | None = None,
    cap_field: str = "max_tokens",
) -> Admitted | Refusal:
    """Overload guard, the key's rate limit, the budget reservation, then a call slot (released by the caller). A
    request that waited for its slot is refused (nothing sent, nothing reserved) if its caller left meanwhile: at
    capacity, callers time out and retry, and each call sent after its caller left was billed for nobody.
    The reservation is `estimate_nano` when given (a call that is no chat, e.g. embeddings), else the chat call's
    worst case. `cap_field` names the output cap as the caller's API spells it (generationConfig.maxOutputTokens),
    for the refusal of a call that sets none. From here the request's answer is counted in /metrics under `model`,
    also when the edge ends it unanswered (`metrics_counting.COUNTED_AS`)."""
    request.scope[COUNTED_AS] = model
    refused = await gate(gw, key)
    if refused is not None:
        return refused
    policy = gw.policy_for(model, route)
    scopes = gw.budgets.scopes(key) if gw.budgets else []
    budgets: Reservation | None = None
    if scopes:
        worst = None
        if estimate_nano is not None:
            estimate = estimate_nano
        else:
            assert call is not None, "admit needs the chat call or an estimate"
            worst = gw.worst_case(route, call, policy)
            estimate = worst.nano()
        try:
            held = await gw.budgets.reserve(scopes, estimate)
        except BudgetUnavailable as exc:
            return Refusal(503, f"the gateway cannot check this key's budget: {exc}; retry later", "budget_unavailable")
        if isinstance(held, Scope):
            scope = "team" if held.counter.startswith("team:") else "key"
            bound = worst.binding() if worst is not None else None
            if worst is not None and bound is not None:
                message = await uncapped_refusal(gw, scopes, held, worst, bound, estimate, scope, cap_field)
            else:
                if estimate > held.limit:  # more than the whole budget: no later period would admit it either
                    fix = f" on its own ({_usd(held.limit)}). {_ask_for_less(worst, cap_field)}, or raise the budget; "
                    fix += "waiting for the next period will not help."
                else:
                    fix = ". Raise the budget or wait for the next period."
                message = (
                    f"Budget exhausted for this {scope}: this request could cost up to "
                    f"{_usd(estimate)} and would exceed the {scope}'s budget{fix}"
                )
            if worst is not None and worst.unsized:
                documents = "a document" if worst.unsized == 1 else f"{worst.unsized} documents"
                message += (
                    f" It sends {documents} by URL or file id, whose size the gateway cannot see, so its prompt is "
                    "reserved at the model's whole context window; send a document's data to have it counted."
                )
            fetched = worst.fetched if worst is not None else None
            if fetched is not None:
                tools = " and ".join(fetched.tools) + (" tool" if len(fetched.tools) == 1 else " tools")
                if fetched.tokens is None:
                    message += (
                        f" Its {tools} {'brings' if len(fetched.tools) == 1 else 'bring'} content into the prompt "
                        "(billed as input tokens) whose size the gateway cannot see, so its prompt is reserved at the "
                        "model's whole context window; a web_fetch tool that sets max_uses and max_content_tokens is "
                        "reserved at those instead."
                    )
                else:
                    message += (
                        f" Its {tools} may bring up to {fetched.tokens:,} tokens into the prompt (max_uses times "
                        "max_content_tokens), reserved on top of it."
                    )
            return Refusal(
                429,
                message,
                "budget_exceeded",
                # Both official SDKs retry a 429 unless told not to; an exhausted budget will not change by retrying.
                {"x-should-retry": "false"},
            )
        budgets = held
    queued = gw.guard.slots.locked()  # every slot is taken: this request waits, and its caller may leave meanwhile
    gw.guard.waiting += 1
    try:
        await gw.guard.slots.acquire()
    except BaseException:  # the client left while queued: nothing was called, release the reservation
        await settle(gw, budgets, None)
        raise
    finally:
        gw.guard.waiting -= 1
    if queued and await caller_left(request):
        gw.guard.slots.release()
        await settle(gw, budgets, None)
        return Refusal(
            CALLER_LEFT, "the caller closed the connection while the request waited for a call slot", "caller_left"
        )
    return Admitted(policy, budgets, request)


def _ask_for_less(worst: WorstCase | None, cap_field: str) -> str:
    """What makes a request whose worst case is over the whole budget cost less, in its API's words: its output cap
    (`cap_field`: max_output_tokens on the Responses API, generationConfig.maxOutputTokens on Gemini's) or its prompt
    (and prediction); an embeddings request (no chat call: `worst` None) has no cap, only its input."""
    if worst is None:
        return "Send less input in one request"
    return f"Lower {cap_field}, or shorten the prompt{' or the prediction' if worst.predicted else ''}"


async def uncapped_refusal(
    gw, scopes: list[Scope], held: Scope, worst: WorstCase, bound: Bound, estimate: int, scope: str, cap_field: str
) -> str:
    """The refusal of a call that sets no output cap and whose reservation at its bound the budget cannot hold: what
    it was reserved at and why, and the largest cap there is room for when the limits store can tell what is left
    (one read per budget, on this refusal only)."""
    head = (
        f"Budget exhausted for this {scope}: this request sets no {cap_field}, so it is reserved at "
        f"{bound.reason()} (up to {_usd(estimate)}), more than the {scope}'s budget allows"
    )
    route_cap = "or cap the route's tokens.max_tokens in the gateway's config"
    try:
        left = await gw.budgets.left(scopes)
    except Exception:  # best effort: without the figure the refusal still names the field and the bound
        log.warning("reading what is left of a budget failed; its refusal omits the largest cap that fits")
        left = None
    if left is None:
        return f"{head}. Set {cap_field} to what the answer needs, {route_cap}."
    most = worst.affordable(left)
    if most >= 1:
        below = ""
        if bound.budget >= most:
            below = f"; a cap within the thinking budget of {bound.budget:,} leaves no room to answer"
        return f"{head}. Set {cap_field} (at most {most:,} fits the {_usd(left)} left{below}), {route_cap}."
    if worst.nano(1) > held.limit:  # more than the whole budget at any cap: no later period admits it
        return (
            f"{head}; even with {cap_field} 1 it costs more than the {scope}'s whole budget ({_usd(held.limit)}): "
            "shorten the prompt or raise the budget."
        )
    return f"{head}; not even {cap_field} 1 fits the {_usd(left)} left: raise the budget or wait for the next period."


# Upstream error codes that mean the gateway's configuration is wrong (the route's model is not there), not the
# caller's request.
CONFIG_FAULT_CODES = frozenset({"model_not_found", "DeploymentNotFound"})
# Upstream statuses that mean "overloaded or unavailable, come back later" (529: Anthropic's overloaded_error).
UNAVAILABLE = frozenset({503, 529})


def upstream_status(exc: ProviderError) -> int:
    """The status a failed provider call is answered with. The provider refusing the gateway's own credentials
    (401, 403), or not knowing the route's model, is not the caller's request at fault: a 502, not a 4xx that tells
    the caller to change its request. Another client error keeps the upstream's status (404, 413, 422, ...), as
    the caller would have had it from the provider directly; one the gateway raised itself is a 400. An upstream
    that was overloaded or unavailable (503, or Anthropic's 529) to the last attempt is a 503, with its Retry-After:
    the caller should come back later, where a 502 says the upstream answered something broken."""
    if exc.kind == "client_error":
        if exc.status in (401, 403) or exc.code in CONFIG_FAULT_CODES:
            return 502
        return exc.status if exc.status is not None and 400 <= exc.status < 500 else 400
    if exc.kind == "server_error" and exc.status in UNAVAILABLE:
        return 503
    return {"throttled": 429, "timeout": 504}.get(exc.kind, 502)


def retry_after(exc: ProviderError) -> dict[str, str] | None:
    """The provider's Retry-After, passed on to the caller (whole seconds, as HTTP has it): the SDKs wait that long
    before their retry instead of guessing a backoff."""
    return {"retry-after": str(math.ceil(exc.retry_after))} if exc.retry_after is not None else None


async def call_whole(
    gw, call: ChatRequest, admitted: Admitted, name: str, failure: Callable[[TokenomyError], Response]
) -> ChatResponse | Response:
    """One answer: the call, its settlement, the journal made durable before the caller hears of it, the metrics.
    A failed call is `failure(exc)` (its attempts are in the ledger under the call's request id)."""
    cost = call_cost(gw, admitted.budgets, admitted.caller_left(), admitted.caller_leaves())
    try:
        response = await gw.client.achat(call, policy=admitted.policy, cost=cost)
    except TokenomyError as exc:
        await settle(gw, admitted.budgets, None, paid=paid(exc))
        return failure(exc)
    except asyncio.CancelledError:  # a graceful shutdown's end, or a caller's timeout: its attempts are (or will be)
        settle_when_final(gw, admitted.budgets, cost)  # in the ledger at what they cost
        raise
    except BaseException:  # a bug: whether the provider answered is not known
        await settle(gw, admitted.budgets, None, unknown=True)
        raise
    finally:
        gw.guard.slots.release()
        cost.forget_caller()
    await settle(gw, admitted.budgets, response)
    if gw.journal is not None:
        await gw.journal.durable_async()  # journaled (as journal_sync promises) before the client hears of it
    metrics.observe(response, name)
    return response
