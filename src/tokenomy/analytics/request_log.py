"""The console's request log: the most recent calls under the dashboard's filters, and each request's attempts.

One ledger row is one attempt; rows sharing a request_id are one request (retries, fallbacks). The log
lists the latest attempt rows and carries every attempt of the requests it shows, so the page (served or
as one offline file) can drill into a request without another query. The prompt is shown only where the
ledger stored it (prompt_text); answers are never stored in the ledger. An imported bill's rows are a provider's
day of usage, not calls: the log leaves them out and says how many there are.
"""

from __future__ import annotations

import json
from decimal import Decimal
from typing import Any

from tokenomy.analytics.dashboard_filters import Filters, money, stamp, where
from tokenomy.ledger.spend import is_billed_sql, is_metered_sql
from tokenomy.routing.router import REASON_TAG, REJECTED_TAG

LOG_ROWS = 200
FIELDS = (
    "event_id",
    "ts",
    "request_id",
    "attempt",
    "provider",
    "model",
    "region",
    "mode",
    "route",
    "tier",
    "task",
    "tenant",
    "key_id",
    "input_tokens",
    "output_tokens",
    "cache_read_tokens",
    "cache_write_tokens",
    "cost_usd",
    "latency_ms",
    "ttft_ms",
    "outcome",
    "error_type",
    "prompt_text",
    "tags",
)


def _row(r: dict[str, Any]) -> dict[str, Any]:
    out = {k: r[k] for k in FIELDS if k != "tags"}
    # Why a cascade's validators rejected the attempt's answer (its row's tag), shown beside its outcome.
    tags = r["tags"]
    if isinstance(tags, str):
        try:
            tags = json.loads(tags) if tags else {}
        except ValueError:
            tags = {}
    out["rejected"] = (tags.get(REASON_TAG) or tags.get(REJECTED_TAG)) if isinstance(tags, dict) else None
    out["ts"] = stamp(r["ts"])
    out["cost_usd"] = money(r["cost_usd"])
    for k in ("input_tokens", "output_tokens", "cache_read_tokens", "cache_write_tokens", "attempt"):
        out[k] = int(r[k] or 0)
    for k in ("latency_ms", "ttft_ms"):
        out[k] = None if r[k] is None else float(r[k])
    return out


def requests(store: Any, f: Filters) -> dict[str, Any]:
    """The latest calls (time, route, tier, model, tokens by type, cost, latency, outcome, stored prompt) and
    every attempt of the requests among them, keyed by request_id, with what each request's attempts cost."""
    sql, params = where(store, f)
    sql += (" AND " if sql else " WHERE ") + is_metered_sql()
    cols = ", ".join(FIELDS)
    total = int(store.query(f"SELECT COUNT(*) AS n FROM usage_events{sql}", params)[0]["n"])
    billed, billed_params = where(store, f)
    billed += (" AND " if billed else " WHERE ") + is_billed_sql()
    bill_rows = int(store.query(f"SELECT COUNT(*) AS n FROM usage_events{billed}", billed_params)[0]["n"])
    rows = [
        _row(r)
        for r in store.query(
            f"SELECT {cols} FROM usage_events{sql} ORDER BY ts DESC, attempt DESC LIMIT {LOG_ROWS}", params
        )
    ]
    ids = sorted({r["request_id"] for r in rows if r["request_id"]})
    attempts: dict[str, list[dict[str, Any]]] = {}
    costs: dict[str, Decimal] = {}  # what each request's attempts cost together, summed here and not by the page
    if ids:
        # the filters still apply (a scoped key never sees another team's attempt), the date range does not:
        # a retry just past the range end is still part of the request
        scoped, scoped_params = where(store, Filters(tenant=f.tenant, key_id=f.key_id))
        marks = ", ".join([store.placeholder] * len(ids))
        also = " AND " if scoped else " WHERE "
        for r in store.query(
            f"SELECT {cols} FROM usage_events{scoped}{also}request_id IN ({marks}) ORDER BY ts, attempt",
            [*scoped_params, *ids],
        ):
            attempts.setdefault(r["request_id"], []).append(_row(r))
            costs[r["request_id"]] = costs.get(r["request_id"], Decimal(0)) + Decimal(r["cost_usd"] or 0)
    return {
        "rows": rows,
        "total": total,
        "shown": len(rows),
        "attempts": attempts,
        "request_costs": {request_id: money(cost) for request_id, cost in costs.items()},
        "bill_rows": bill_rows,
    }
