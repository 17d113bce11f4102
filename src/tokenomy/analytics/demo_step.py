"""Demo step: spend by model, cache hit rate and latency from the demo ledger, plus report.html."""

from __future__ import annotations

import html

TITLE = "Cost report"


def _table(title: str, rows: list[dict]) -> str:
    if not rows:
        return f"<h2>{html.escape(title)}</h2><p>no data</p>"
    head = "".join(f"<th>{html.escape(k)}</th>" for k in rows[0])
    body = "".join("<tr>" + "".join(f"<td>{html.escape(str(v))}</td>" for v in r.values()) + "</tr>" for r in rows)
    return f"<h2>{html.escape(title)}</h2><table border=1><tr>{head}</tr>{body}</table>"


def run(ctx) -> None:
    """Print the three reports and write them to report.html."""
    from tokenomy.analytics.reports import run_report
    from tokenomy.commands._common import table

    ctx.client.flush()
    parts = []
    for name in ("spend", "cache-hit-rate", "latency"):
        rows = run_report(ctx.store, name, by="model")
        parts.append(_table(name, rows))
        columns = list(rows[0]) if rows else ["model"]
        ctx.console.print(table(name, columns, [[round(r[c], 1) if isinstance(r[c], float) else r[c]
                                                 for c in columns] for r in rows]))
    out = ctx.workdir / "report.html"
    out.write_text("<!doctype html><meta charset=utf-8><title>Tokenomy cost report</title>" + "".join(parts))
    ctx.console.print(f"wrote {out}")
