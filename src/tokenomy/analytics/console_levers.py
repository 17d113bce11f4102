"""'What to change': the what-if levers on the dashboard's selection, each with what applies it.

The dollars are `planning.savings.what_if` with its default inputs on the filtered calls — the very
function and inputs `tokenomy plan savings --json` uses, so the page and the CLI agree to the cent.
"""

from __future__ import annotations

from typing import Any

from tokenomy.analytics.billed import SPEND_EVENTS
from tokenomy.analytics.dashboard_filters import Filters, money, where
from tokenomy.errors import TokenomyError
from tokenomy.ledger.events import COLUMNS
from tokenomy.ledger.store import event_from_row

SAVINGS_EVENT_LIMIT = 20_000  # what-if re-prices every call several times; the most recent calls stand for the window

# The command or config change that applies each lever (README: call policies, batch, routing).
APPLY = {
    "batch": "Tag latency-tolerant calls (header `x-tokenomy-tags: latency_tolerant=true`) or send them with "
    "`tokenomy batch submit FILE --model M`; size it with `tokenomy plan savings --batch-tasks TASK`",
    "caching": "`caching: {enabled: true}` on the route in tokenomy.yaml, with the stable part of the prompt "
    "(system prompt, tools) first",
    "routing": "Measure what a cheaper model can take with `tokenomy route eval`, then price it with `tokenomy plan "
    "savings --cheap-model M --routing-share S` and route with a routing policy in tokenomy.yaml",
    "output_caps": "`tokens: {max_tokens: N}` on the route in tokenomy.yaml, N from the caps in the assumption",
}
PROVISIONED = {
    "lever": "provisioned",
    "monthly_saving_usd": None,
    "assumption": "not priced from the ledger: provisioned units pay off only on sustained traffic, which needs a "
    "week or more of trace",
    "apply": "`tokenomy plan size --ledger L --model M` (buy units only if it beats on-demand); with units bought, "
    "`tokenomy plan utilization` flags idle reservations",
}


def savings(store: Any, f: Filters) -> dict[str, Any]:
    """Monthly what-if savings per lever (planning.savings) on the filtered calls, ranked, with how to apply each."""
    from tokenomy.planning.savings import SavingsInputs, what_if

    sql, params = where(store, f)
    rows = store.query(
        f"SELECT {', '.join(COLUMNS)} FROM {SPEND_EVENTS}{sql} ORDER BY ts DESC LIMIT {SAVINGS_EVENT_LIMIT}", params
    )
    events = [event_from_row(r) for r in rows]
    try:
        # The range is the window, as in `plan savings --since/--until`; unless only its latest calls were read.
        whole = len(rows) < SAVINGS_EVENT_LIMIT
        result = what_if(events, SavingsInputs(), f.since if whole else None, f.until if whole else None)
    except TokenomyError as exc:
        return {"levers": [], "provisioned": PROVISIONED, "note": str(exc)}
    levers = [
        {
            "lever": row["lever"],
            "monthly_saving_usd": money(row["monthly_saving_usd"]),
            "window_saving_usd": money(row["window_saving_usd"]),
            "assumption": row["assumption"],
            "apply": APPLY[row["lever"]],
        }
        for row in result["levers"]
    ]
    note = f"{result['events']} calls, {result['assumption']}"
    if len(rows) == SAVINGS_EVENT_LIMIT:
        note += f"; the most recent {SAVINGS_EVENT_LIMIT} calls in the range"
    return {
        "levers": levers,
        "provisioned": PROVISIONED,
        "current_monthly_cost_usd": money(result["current_monthly_cost_usd"]),
        "compounded_monthly_saving_usd": money(result["compounded_monthly_saving_usd"]),
        "compounded_order": result["compounded_order"],
        "window_hours": result["window_hours"],
        "events": result["events"],
        "note": note,
        # what `plan savings` warns of (calls it could not price and left out, list prices unlike the recorded cost,
        # a window too short to stand for a month): the dollars above rest on it
        "warnings": result["warnings"],
    }
