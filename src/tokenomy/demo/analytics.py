"""Demo step: spend by model, cache hit rate and latency from the demo ledger, plus the dashboard as report.html."""

from __future__ import annotations

from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from tokenomy.demo.context import DemoContext

TITLE = "Cost report"


def run(ctx: DemoContext) -> None:
    """Print the three reports and write every dashboard chart to one self-contained report.html."""
    from tokenomy.analytics.dashboard import write_report_html
    from tokenomy.analytics.dashboard_data import Filters
    from tokenomy.analytics.reports import run_report
    from tokenomy.commands._output import report_row, table

    ctx.client.flush()
    for name in ("spend", "cache-hit-rate", "latency"):
        rows = run_report(ctx.store, name, by="model")
        columns = list(rows[0]) if rows else ["model"]
        ctx.console.print(table(name, columns, [report_row(columns, r) for r in rows]))
    out = write_report_html(ctx.store, Filters(), ctx.workdir / "report.html")
    ctx.console.print(
        f"wrote {out} (the dashboard's charts in one file; open it in a browser, no network needed; "
        "`tokenomy serve` shows them live at /dashboard)"
    )
