"""Demo step: the quarterly review, shortened to the demo's one day, stored in the demo ledger."""

from __future__ import annotations

from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from tokenomy.demo.context import DemoContext

TITLE = "Review: what changed, what is newer or cheaper, what to do"


def run(ctx: DemoContext) -> None:
    """`tokenomy review --since 1d` on the demo ledger (no re-benchmark: the bench step just ran)."""
    from tokenomy.analytics.review import run_review, save_review
    from tokenomy.analytics.review_html import write_review_html
    from tokenomy.commands.review import render

    ctx.client.flush()
    body = run_review(ctx.store, days=1)
    save_review(ctx.store, body)
    body["html"] = str(write_review_html(body, ctx.workdir / "review.html"))
    render(body, console=ctx.console, short=True)
    ctx.console.print(
        f"Full review: tokenomy review --ledger {ctx.workdir / 'ledger.duckdb'} --since 90d "
        "--config tokenomy.yaml --bench TASKS.yaml"
    )
