"""Reading a gateway's ledger from a test: the gateway's writer flushes its rows in batches (about a second apart), so
a test waits for the rows it expects rather than reading once."""

from __future__ import annotations

import time

from tokenomy.ledger.store import open_store


def written_rows(ledger, count: int, answered_only: bool = True, wait_s: float = 10.0) -> list:
    """The ledger's rows (only answered ones, outcome "ok", unless `answered_only` is False), oldest first, once the
    writer has written `count` of them, or whatever is there after `wait_s` seconds (the test's own assert then
    says what is missing)."""
    deadline = time.monotonic() + wait_s
    while True:
        rows = sorted(
            (e for e in open_store(ledger).events() if not answered_only or e.outcome == "ok"), key=lambda e: e.ts
        )
        if len(rows) >= count or time.monotonic() > deadline:
            return rows
        time.sleep(0.1)
