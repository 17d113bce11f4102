"""Settlement: a call's budget reservation replaced by what the ledger records the call cost, however it ended
(answered, failed after billed attempts, cancelled, a stream the client left), exactly once, and never cut midway by
a request's cancellation. `calls.admit` reserves; the routes and `calls.call_whole` / `call_stream.call_streamed`
settle here."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import AsyncGenerator, Awaitable, Callable, Coroutine
from decimal import Decimal
from typing import Any

from tokenomy.call_cost import CallCost
from tokenomy.chat_response import ChatResponse, StreamChunk
from tokenomy.errors import ProviderError
from tokenomy.gateway.budgets import Reservation
from tokenomy.gateway.limits import LimitsUnavailable, to_nano

log = logging.getLogger(__name__)


async def settle(
    gw, budgets: Reservation | None, response: ChatResponse | None, unknown: bool = False, paid: Decimal = Decimal(0)
) -> None:
    """Replace the reservation by the actual cost (a failed call costs what its attempts were billed, `paid`: a
    cascade's rejected answers, streams cut midway; an unknown cost keeps the reservation).

    The provider has answered by now: a limits store that fails here must not turn a paid answer into an
    error, so the failure is logged; `Budgets` keeps the settlement and retries it until the store takes it."""
    if budgets is None or gw.budgets is None:
        return
    # unknown: e.g. a stream the client dropped mid-way: tokens were spent, the reservation stays
    # A cascade pays for every tier it tried, not only the answer it returned: the whole call is charged.
    cost = paid if response is None else (response.call_cost_usd or response.cost_usd)
    actual = None if unknown else (to_nano(cost) if cost is not None else 0)
    try:
        await gw.budgets.settle(budgets, actual)
    except LimitsUnavailable as exc:
        log.warning("settling a budget reservation failed (%s); it is kept and retried", exc)
    except Exception:
        log.exception("settling a budget reservation failed; its cost is missing from the budget counters")


def in_background(gw, work: Coroutine[Any, Any, None]) -> asyncio.Task:
    """Run `work` as a task of its own, which the gateway's shutdown waits for (`Gateway.wind_down`) and a cancelled
    request cannot stop midway."""
    task = asyncio.get_running_loop().create_task(work)
    gw.settling.add(task)
    task.add_done_callback(gw.settling.discard)
    return task


def settle_when_final(gw, budgets: Reservation | None, cost: CallCost) -> None:
    """Settle a cancelled call's reservation at what its attempts cost, as the ledger records them: now, or, for an
    attempt left running in a provider's worker thread (which answers and bills though nobody waits), when that
    thread has recorded it. Call it on the gateway's loop."""
    if budgets is None or gw.budgets is None:
        return
    loop = asyncio.get_running_loop()

    def final(spent: Decimal) -> None:  # on this loop's thread, or on the worker thread that recorded the attempt
        try:
            loop.call_soon_threadsafe(lambda: in_background(gw, settle(gw, budgets, None, paid=spent)))
        except RuntimeError:  # the loop has closed: in-process counters went with it; Redis keeps the reservation
            log.warning("a call ended after the gateway stopped: its budget reservation stays counted, not settled")

    cost.when_final(final)


async def wind_up_stream(
    gw,
    budgets: Reservation | None,
    pieces: AsyncGenerator[StreamChunk, None],
    cost: CallCost,
    final: ChatResponse | None,
    crashed: bool,
) -> None:
    """Settle a streamed call's reservation at what the ledger records for it: its answer, or what its attempts cost
    (a failed call's; a stream the client left, at its estimate: the prompt and the pieces generated). One a bug broke
    keeps the reservation: whether its attempt was recorded is not known.

    The client's stream is closed first, so an attempt the client left is recorded before it is settled. Shielded in
    a task of its own: the client that left cancels the request's task (Starlette's disconnect listener cancels it
    at every await), and a settlement cancelled midway (Redis) would keep the whole reservation."""

    async def wind_up() -> None:
        await pieces.aclose()
        if final is not None or crashed:
            await settle(gw, budgets, final, unknown=final is None)
        else:
            await settle(gw, budgets, None, paid=cost.spent)

    if budgets is None or gw.budgets is None:  # nothing to settle: no task on the hot path of a gateway without keys
        await pieces.aclose()
        return
    await asyncio.shield(in_background(gw, wind_up()))


def call_cost(
    gw,
    budgets: Reservation | None,
    caller_left: Callable[[], Awaitable[bool]] | None = None,
    caller_leaves: Callable[[], Awaitable[None]] | None = None,
) -> CallCost:
    """What a call costs as it goes. With a budget reservation, which covers one attempt's worst case, a retry after
    attempts billed without an answer (a read timeout, an answer cut off) first reserves what they cost: a key whose
    budget has no room for it gets the call's last error instead of an overspent budget. `caller_left` (a whole
    answer's: a stream is cancelled when its caller leaves) ends the call, unsent, before a retry or after a wait
    whose caller has gone; `caller_leaves` ends such a wait when the caller goes."""
    if budgets is None or gw.budgets is None:
        return CallCost(caller_left=caller_left, caller_leaves=caller_leaves)
    return CallCost(lambda usd: gw.budgets.extend(budgets, to_nano(usd)), caller_left, caller_leaves)


def paid(exc: BaseException | None) -> Decimal:
    """What a failed call's attempts were billed (0 for an error raised before any provider answered)."""
    return exc.call_cost_usd if isinstance(exc, ProviderError) else Decimal(0)
