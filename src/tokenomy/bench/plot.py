"""Cost per task against quality: one point per model, the Pareto frontier drawn, the knee marked (PNG)."""

from __future__ import annotations

import re
from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt


def pareto_frontier(points: list[tuple[float, float, str]]) -> list[tuple[float, float, str]]:
    """Points (cost, quality, name) not beaten by a cheaper-or-equal point with higher-or-equal quality."""
    frontier: list[tuple[float, float, str]] = []
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

    def distance(point):
        x, y = (point[0] - c0) / span_c, (point[1] - q0) / span_q
        return abs(y - x) / 2**0.5

    return max(frontier[1:-1], key=distance)


def _draw(ax, rows: list[dict], task: str) -> None:
    points = [(float(r["cost_per_task_usd"]), r["quality"], r["model"]) for r in rows]
    frontier = pareto_frontier(points)
    best_knee = knee(frontier)
    ax.scatter([p[0] for p in points], [p[1] for p in points], s=50, color="#4c72b0", zorder=3)
    top = max(p[0] for p in points) or 1e-6  # all-free candidates still get a readable axis
    placed: list[tuple[float, float]] = []
    for cost, quality, name in points:
        # Stack the names of points that (nearly) coincide instead of printing them over each other.
        near = sum(1 for c, q in placed if abs(c - cost) < 0.04 * top and abs(q - quality) < 4)
        placed.append((cost, quality))
        ax.annotate(name, (cost, quality), textcoords="offset points", xytext=(6, 4 + 10 * near), fontsize=8)
    ax.plot([p[0] for p in frontier], [p[1] for p in frontier], "--", color="#dd8452", label="Pareto frontier")
    if best_knee:
        ax.scatter(
            [best_knee[0]],
            [best_knee[1]],
            s=180,
            facecolors="none",
            edgecolors="#c44e52",
            linewidths=2,
            label=f"knee: {best_knee[2]}",
            zorder=4,
        )
    ax.set_xlabel("cost per task (USD)")
    ax.set_ylabel("quality (0–100)")
    ax.set_title(f"{task}: cost per task vs quality", fontsize=10)
    ax.set_ylim(-5, 105)
    ax.ticklabel_format(axis="x", style="sci", scilimits=(-3, 3))
    ax.set_xlim(-0.06 * top, 1.25 * top)  # room for the names to the right of the dearest point
    ax.grid(alpha=0.3)
    ax.legend(loc="best", fontsize=8, framealpha=0.7)


def _plottable(summary: dict) -> dict[str, list[dict]]:
    by_task: dict[str, list[dict]] = {}
    for row in summary["results"]:
        if row["quality"] is not None and row["cost_per_task_usd"] is not None:
            by_task.setdefault(row["task"], []).append(row)
    return by_task


def plot(summary: dict, out_dir: Path) -> list[Path]:
    """DIR/pareto.png (one panel per task) first, then one pareto_<task>.png per task; returns their paths."""
    by_task = _plottable(summary)
    if not by_task:
        return []
    columns = min(3, len(by_task))
    rows_n = -(-len(by_task) // columns)
    fig, axes = plt.subplots(rows_n, columns, figsize=(6.0 * columns, 4.2 * rows_n), dpi=100, squeeze=False)
    for ax, (task, rows) in zip(axes.flat, by_task.items(), strict=False):
        _draw(ax, rows, task)
    for ax in list(axes.flat)[len(by_task) :]:
        ax.set_visible(False)
    fig.tight_layout()
    paths = [out_dir / "pareto.png"]
    fig.savefig(paths[0])
    plt.close(fig)
    for task, rows in by_task.items():
        fig, ax = plt.subplots(figsize=(6.4, 4.2), dpi=100)
        _draw(ax, rows, task)
        fig.tight_layout()
        path = out_dir / f"pareto_{re.sub(r'[^A-Za-z0-9_.-]+', '_', task)}.png"
        fig.savefig(path)
        plt.close(fig)
        paths.append(path)
    return paths
