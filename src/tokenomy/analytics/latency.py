"""The latency report from the daily latency histograms (ledger/latency_rollup.py): p50/p95 of latency and of
time to first token per group over its answered calls (outcome ok), each within RELATIVE_ERROR (0.99%) of the
exact percentile.

The database merges the bucket counts per group (whole days from the histograms, the partial days at the
window's edges from raw events bucketed alike); Python reads the percentiles off the merged counts, a few
thousand rows whatever the size of the ledger. `--exact` runs the preset's own SQL over raw events instead.
"""

from __future__ import annotations

from collections import defaultdict
from datetime import datetime
from typing import Any

from tokenomy.ledger.latency_rollup import RELATIVE_ERROR, histogram_facts, percentile

APPROXIMATION = (
    f"percentiles within {RELATIVE_ERROR:.2%} of the exact value (log-bucket histograms; --exact reads raw events)"
)


def latency_rows(store: Any, group_sql: str, by: str, since: datetime | None, until: datetime | None) -> list[dict]:
    """Rows as the exact preset gives them: `by`, calls, p50_ms, p95_ms, ttft_p50_ms, ttft_p95_ms, sorted by `by`.

    `group_sql` is the SQL for the group (a column, or the family CASE) named `by`."""
    source, params = histogram_facts(store, since, until)
    counts = store.query(
        f"SELECT {group_sql}, measure, bucket, CAST(SUM(calls) AS BIGINT) AS n FROM {source} GROUP BY 1, 2, 3",
        params,
    )
    buckets: dict[Any, dict[str, list[tuple[int, int]]]] = defaultdict(lambda: defaultdict(list))
    for row in counts:
        buckets[row[by]][row["measure"]].append((int(row["bucket"]), int(row["n"])))
    out = []
    for group in sorted(buckets, key=lambda g: (g is None, g)):  # NULL last, as ORDER BY puts it on both engines
        latency, ttft = sorted(buckets[group]["latency_ms"]), sorted(buckets[group]["ttft_ms"])
        out.append(
            {
                by: group,
                "calls": sum(n for _, n in latency),  # every answered call has a latency bucket (NULL_BUCKET if none)
                "p50_ms": percentile(latency, 0.5),
                "p95_ms": percentile(latency, 0.95),
                "ttft_p50_ms": percentile(ttft, 0.5),
                "ttft_p95_ms": percentile(ttft, 0.95),
            }
        )
    return out
