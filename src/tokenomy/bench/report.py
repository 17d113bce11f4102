"""A self-contained HTML report: the summary table, the recommendations, the judge used, the plots embedded."""

from __future__ import annotations

import base64
import html
from decimal import Decimal
from pathlib import Path

from tokenomy.money import usd

_STYLE = (
    "body{font-family:sans-serif;margin:2em;color:#222}table{border-collapse:collapse;margin:1em 0}"
    "td,th{border:1px solid #ccc;padding:4px 8px;text-align:right}td:first-child,td:nth-child(2)"
    "{text-align:left}th{background:#f4f4f4}img{max-width:100%;margin:1em 0;display:block}"
    ".note{color:#555}"
)


def _cell(value: object) -> str:
    if isinstance(value, Decimal):
        value = usd(value, "amount", 8)  # as `bench summary` prints it
    elif isinstance(value, list):
        value = " – ".join(str(v) for v in value)
    elif value is None:
        value = "-"
    return f"<td>{html.escape(str(value))}</td>"


def html_report(summary: dict, pngs: list[Path], out_dir: Path) -> Path:
    """Write DIR/report.html with the table, picks, evaluator and every PNG inlined (no external files)."""
    head = [
        "task",
        "model",
        "n",
        "quality",
        "95% CI",
        "cost / task",
        "judge cost",
        "p50 ms",
        "p95 ms",
        "TTFT p50",
        "TTFT p95",
        "out tokens",
        "failures",
    ]
    body = "".join(
        "<tr>"
        + "".join(
            _cell(v)
            for v in (
                r["task"],
                r["model"],
                r["examples"],
                r["quality"],
                r["quality_ci95"],
                r["cost_per_task_usd"],
                r["judge_cost_usd"],
                r["latency_p50_ms"],
                r["latency_p95_ms"],
                r["ttft_p50_ms"],
                r["ttft_p95_ms"],
                r["output_tokens_mean"],
                None if r["failure_rate"] is None else f"{r['failure_rate']:.0%}",
            )
        )
        + "</tr>"
        for r in summary["results"]
    )
    picks = "".join(
        f"<li><b>{html.escape(task)}</b>: {html.escape(str(p.get('model')))} — {html.escape(p['reason'])}"
        + "".join(f"<br><span class='note'>{html.escape(n)}</span>" for n in p.get("notes", []))
        + "</li>"
        for task, p in summary["recommendations"].items()
    )
    judge = summary.get("judge") or {}
    judged = (
        (
            f"<p>Judge-scored tasks use one evaluator for every candidate: <b>{html.escape(judge['model'])}</b>, "
            f"rubric {html.escape(', '.join(judge['rubric']))} (1–5 each, mapped to 0–100); the judge's own cost "
            f"({usd(judge['cost_usd'], 'amount', 8)}) is not in the candidates' cost per task"
            + (
                f", nor are candidate calls repeated to judge an answer again "
                f"({usd(judge['repeated_call_cost_usd'], 'amount', 8)})"
                if judge.get("repeated_call_cost_usd")
                else ""
            )
            + ".</p>"
        )
        if judge.get("model")
        else ""
    )
    images = "".join(
        f'<img alt="{html.escape(p.stem)}" src="data:image/png;base64,{base64.b64encode(p.read_bytes()).decode()}">'
        for p in pngs
    )
    page = (
        f"<!doctype html><html><head><meta charset='utf-8'><title>Tokenomy benchmark</title>"
        f"<style>{_STYLE}</style></head><body><h1>Cost per task vs quality</h1>"
        f"<p>Quality is 0–100; cost per task is all a candidate paid for its calls, failed ones included (not the "
        f"judge's), divided by the examples it answered. Tolerance: "
        f"{summary['tolerance_points']:g} quality points.</p>"
        f"<table><tr>{''.join(f'<th>{h}</th>' for h in head)}</tr>{body}</table>"
        f"<h2>Recommendations</h2><ul>{picks}</ul>{judged}<h2>Pareto frontier</h2>{images}</body></html>"
    )
    path = out_dir / "report.html"
    path.write_text(page)
    return path
