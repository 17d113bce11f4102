"""Cost per task against quality: one point per model, the Pareto frontier, the knee; PNG + HTML."""

from __future__ import annotations

import base64
import html
from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402


def pareto_frontier(points: list[tuple[float, float, str]]) -> list[tuple[float, float, str]]:
    """Points (cost, quality, name) not beaten by a cheaper-or-equal point with higher-or-equal quality."""
    frontier = []
    for cost, quality, name in sorted(points, key=lambda p: (p[0], -p[1])):
        if not frontier or quality > frontier[-1][1]:
            frontier.append((cost, quality, name))
    return frontier


def knee(frontier: list[tuple[float, float, str]]) -> tuple[float, float, str] | None:
    """The frontier point farthest from the line joining its ends (after normalising both axes)."""
    if len(frontier) < 3:
        return frontier[-1] if frontier else None
    (c0, q0, _), (c1, q1, _) = frontier[0], frontier[-1]
    span_c, span_q = (c1 - c0) or 1.0, (q1 - q0) or 1.0

    def distance(point):  # noqa: ANN001, ANN202
        x, y = (point[0] - c0) / span_c, (point[1] - q0) / span_q
        return abs(y - x) / 2 ** 0.5

    return max(frontier[1:-1], key=distance)


def plot(summary: dict, out_dir: Path) -> list[Path]:
    """One PNG per task; returns their paths."""
    paths = []
    for task in dict.fromkeys(r["task"] for r in summary["results"]):
        rows = [r for r in summary["results"] if r["task"] == task and r["quality"] is not None
                and r["cost_per_task_usd"] is not None]
        if not rows:
            continue
        points = [(float(r["cost_per_task_usd"]), r["quality"], r["model"]) for r in rows]
        frontier = pareto_frontier(points)
        best_knee = knee(frontier)
        fig, ax = plt.subplots(figsize=(6.4, 4.2), dpi=110)
        ax.scatter([p[0] for p in points], [p[1] for p in points], s=50, color="#4c72b0", zorder=3)
        for cost, quality, name in points:
            ax.annotate(name, (cost, quality), textcoords="offset points", xytext=(6, 4), fontsize=8)
        ax.plot([p[0] for p in frontier], [p[1] for p in frontier], "--", color="#dd8452", label="Pareto frontier")
        if best_knee:
            ax.scatter([best_knee[0]], [best_knee[1]], s=180, facecolors="none", edgecolors="#c44e52", linewidths=2,
                       label=f"knee: {best_knee[2]}", zorder=4)
        ax.set_xlabel("cost per task (USD)")
        ax.set_ylabel("quality (0–100)")
        ax.set_title(f"{task}: cost per task vs quality")
        ax.set_ylim(-5, 105)
        ax.grid(alpha=0.3)
        ax.legend(loc="lower right", fontsize=8)
        fig.tight_layout()
        path = out_dir / f"pareto_{task}.png"
        fig.savefig(path)
        plt.close(fig)
        paths.append(path)
    return paths


def html_report(summary: dict, pngs: list[Path], out_dir: Path) -> Path:
    """A self-contained HTML page: the summary table, recommendations and the embedded plots."""
    head = ["task", "model", "quality", "ci95", "cost/task", "p50 ms", "p95 ms", "ttft p50", "out tokens", "failures"]
    body = "".join(
        "<tr>" + "".join(f"<td>{html.escape(str(v))}</td>" for v in (
            r["task"], r["model"], r["quality"], r["quality_ci95"], r["cost_per_task_usd"], r["latency_p50_ms"],
            r["latency_p95_ms"], r["ttft_p50_ms"], r["output_tokens_mean"], r["failure_rate"])) + "</tr>"
        for r in summary["results"])
    picks = "".join(f"<li><b>{html.escape(task)}</b>: {html.escape(str(p.get('model')))} — {html.escape(p['reason'])}"
                    + "".join(f"<br><i>{html.escape(n)}</i>" for n in p.get("notes", [])) + "</li>"
                    for task, p in summary["recommendations"].items())
    images = "".join(f'<img alt="{p.stem}" src="data:image/png;base64,{base64.b64encode(p.read_bytes()).decode()}">'
                     for p in pngs)
    page = (f"<!doctype html><html><head><meta charset='utf-8'><title>Tokenomy benchmark</title><style>"
            "body{font-family:sans-serif;margin:2em}table{border-collapse:collapse}td,th{border:1px solid #ccc;"
            "padding:4px 8px;text-align:right}td:first-child,td:nth-child(2){text-align:left}</style></head><body>"
            f"<h1>Cost per task vs quality</h1><table><tr>{''.join(f'<th>{h}</th>' for h in head)}</tr>{body}</table>"
            f"<h2>Recommendations</h2><ul>{picks}</ul>{images}</body></html>")
    path = out_dir / "report.html"
    path.write_text(page)
    return path
