"""Per task and model: quality with a 95% interval, cost per task, latency, verbosity, failures; the pick."""

from __future__ import annotations

import math
from decimal import Decimal
from pathlib import Path

import numpy as np
import pandas as pd
from scipy import stats

from tokenomy.bench.judge import RUBRIC
from tokenomy.errors import ConfigError, one_line
from tokenomy.money import money_str, usd

REQUIRED_COLUMNS = (
    "task",
    "model",
    "example",
    "repeat",
    "prompt",
    "quality",
    "cost_usd",
    "latency_ms",
    "output_tokens",
    "error",
)


def load_results(csv_path: Path) -> pd.DataFrame:
    """Results with the latest row per (task, model, example, repeat) — resumed runs may retry failures."""
    if not Path(csv_path).exists():
        raise ConfigError(f"{csv_path}: no results here; run `tokenomy bench run TASKS --out DIR` first")
    try:
        frame = pd.read_csv(csv_path, dtype=str, keep_default_na=False)
    except (ValueError, pd.errors.ParserError) as exc:  # EmptyDataError is a ValueError
        raise ConfigError(
            f"{csv_path}: cannot read as CSV ({one_line(exc)}); rerun `tokenomy bench run` into a fresh --out"
        ) from None
    missing = [c for c in REQUIRED_COLUMNS if c not in frame]
    if missing:  # a summary of a foreign or truncated file would otherwise end in a KeyError traceback
        raise ConfigError(
            f"{csv_path}: not a `tokenomy bench run` results file (no {', '.join(missing)} column); "
            "point at the --out directory of a bench run"
        )
    for column in ("judge_error", "judge_cost_usd", "judge_model", "rubric", "ttft_ms"):
        if column not in frame:
            frame[column] = ""
    # A resumed run redoes an example whose call failed: the failed attempt was paid for all the same (a call billed,
    # then cut), so the row kept carries what every attempt up to the candidate's answer cost. An answer whose judging
    # failed is judged again without calling the candidate (its row costs nothing); a file from before that, whose
    # resumed run called the candidate again only so it could be judged, keeps those later calls out of the
    # candidate's cost, in repeated_call_cost_usd: the evaluation's overhead, reported as the judge's cost is.
    keys = ["task", "model", "example", "repeat"]
    groups = [frame[k] for k in keys]
    answered = (frame["error"] == "").astype(int)
    after_answer = (
        answered.groupby(groups, sort=False).transform(lambda a: a.cumsum().shift(fill_value=0) > 0).astype(bool)
    )
    costs = frame["cost_usd"]
    frame["repeated_call_cost_usd"] = costs.where(after_answer, "").groupby(groups, sort=False).transform(_paid_total)
    frame["cost_usd"] = costs.where(~after_answer, "").groupby(groups, sort=False).transform(_paid_total)
    frame["judge_cost_usd"] = frame.groupby(keys, sort=False)["judge_cost_usd"].transform(_paid_total)
    return frame.drop_duplicates(keys, keep="last")


def _paid_total(costs: pd.Series) -> str:
    """The attempts' costs added up, by the ledger's money rule ("" where no attempt has a cost: none was priced)."""
    known = [Decimal(c) for c in costs if c]
    return money_str(sum(known, Decimal(0)), "record") if known else ""


def _interval(values: np.ndarray) -> tuple[float, float] | None:
    """95% interval of the mean quality: Wilson's score interval when every score is pass/fail (0 or 100, what
    the exact, regex, classification, numeric and JSON scorers mostly give), else Student's t on the mean; None (no
    interval) for one graded score, where t has no degrees of freedom (it read [q, q], as if the score were certain)."""
    n = len(values)
    if np.isin(values, (0.0, 100.0)).all():
        # A t interval on 0/100 scores is [100, 100] for 10 passes out of 10 and runs past 100 for 8 out of 10.
        p, z = float(values.mean()) / 100, float(stats.norm.ppf(0.975))
        centre = (p + z * z / (2 * n)) / (1 + z * z / n)
        half = z * math.sqrt(p * (1 - p) / n + z * z / (4 * n * n)) / (1 + z * z / n)
        return max(0.0, 100 * (centre - half)), min(100.0, 100 * (centre + half))
    if n < 2:
        return None
    if np.all(values == values[0]):
        return float(values.mean()), float(values.mean())
    low, high = stats.t.interval(0.95, len(values) - 1, loc=values.mean(), scale=stats.sem(values))
    return max(0.0, float(low)), min(100.0, float(high))


def summarize(frame: pd.DataFrame, tolerance: float = 3.0) -> dict:
    """The summary JSON: one row per task and model, and per task the recommended model with reasons."""
    rows = []
    for (task, model), group in frame.groupby(["task", "model"], sort=False):
        ok = group[group["error"] == ""]  # the candidate answered (its cost and latency count)
        scored = ok[ok["quality"] != ""]  # ... and it was scored (a judge failure leaves no quality)
        quality = scored["quality"].astype(float).to_numpy()
        # Cost per task: all the candidate paid for this task's examples, failed calls included (a model that fails
        # after it is billed is not cheaper for it), over the examples it answered. Not in it: the judge's calls, and
        # candidate calls repeated only to judge an answer again (load_results).
        paid = sum((Decimal(c) for c in group["cost_usd"] if c), Decimal(0))
        judge_costs = [Decimal(c) for c in group["judge_cost_usd"] if c]
        repeated = [Decimal(c) for c in group.get("repeated_call_cost_usd", ()) if c]
        latency = ok["latency_ms"].astype(float).to_numpy() if len(ok) else np.array([])
        ttft = ok["ttft_ms"][ok["ttft_ms"] != ""].astype(float).to_numpy() if len(ok) else np.array([])
        interval = _interval(quality) if len(quality) else None
        rows.append(
            {
                "task": task,
                "model": model,
                "examples": len(group),
                "quality": round(float(quality.mean()), 2) if len(quality) else None,
                # None: no scores, or one graded score (no interval exists for it)
                "quality_ci95": [round(interval[0], 2), round(interval[1], 2)] if interval else None,
                "cost_per_task_usd": paid / len(ok) if len(ok) else None,
                "judge_cost_usd": sum(judge_costs, Decimal(0)),
                "repeated_call_cost_usd": sum(repeated, Decimal(0)),
                "latency_p50_ms": round(float(np.percentile(latency, 50)), 1) if len(latency) else None,
                "latency_p95_ms": round(float(np.percentile(latency, 95)), 1) if len(latency) else None,
                "ttft_p50_ms": round(float(np.percentile(ttft, 50)), 1) if len(ttft) else None,
                "ttft_p95_ms": round(float(np.percentile(ttft, 95)), 1) if len(ttft) else None,
                "output_tokens_mean": round(float(ok["output_tokens"].astype(float).mean()), 1) if len(ok) else None,
                "failure_rate": round(1 - len(ok) / len(group), 4) if len(group) else None,
            }
        )
    picks = {
        task: recommend([r for r in rows if r["task"] == task], tolerance)
        for task in dict.fromkeys(r["task"] for r in rows)
    }
    judged = frame[frame["judge_model"] != ""]
    judge = None
    if len(judged):
        judge = {
            "model": ",".join(sorted(set(judged["judge_model"]))),
            "rubric": list(RUBRIC),
            "scale": "each criterion 1-5, quality = (mean - 1) / 4 * 100",
            "cost_usd": sum((Decimal(c) for c in judged["judge_cost_usd"] if c), Decimal(0)),
            "failures": int((judged["judge_error"] != "").sum()),
            # candidate calls made again only to judge an answer again (a results file of an earlier version)
            "repeated_call_cost_usd": sum((r["repeated_call_cost_usd"] for r in rows), Decimal(0)),
        }
    by_task: dict[str, dict[str, dict]] = {}
    for row in rows:  # the same rows, keyed task -> model for readers that look one up
        by_task.setdefault(row["task"], {})[row["model"]] = {k: v for k, v in row.items() if k not in ("task", "model")}
    return {
        "tolerance_points": tolerance,
        "judge": judge,
        "results": rows,
        "by_task": by_task,
        "recommendations": picks,
    }


def _relative(cost: Decimal, reference: Decimal) -> str:
    return "at no cost" if cost == 0 else f"{float(cost / reference):.0%} of the cost"


def recommend(rows: list[dict], tolerance: float) -> dict:
    """The cheapest model within `tolerance` quality points of the best, with the call-outs in words."""
    scored = [r for r in rows if r["quality"] is not None and r["cost_per_task_usd"] is not None]
    if not scored:
        return {"model": None, "reason": "no successful results", "notes": []}
    # Among equally good models the dearer one is "the best": it is the incumbent a cheaper one is measured against.
    best = max(scored, key=lambda r: (r["quality"], r["cost_per_task_usd"]))
    close = [r for r in scored if r["quality"] >= best["quality"] - tolerance]
    pick = min(close, key=lambda r: (r["cost_per_task_usd"], -r["quality"]))
    notes = []
    reference = best["cost_per_task_usd"]
    for row in sorted(scored, key=lambda r: r["cost_per_task_usd"]):
        if row is best or not reference:
            continue
        cost, gap = row["cost_per_task_usd"], best["quality"] - row["quality"]
        delta = row["quality"] - best["quality"]
        if gap <= tolerance and cost <= reference / 2:
            notes.append(
                f"{row['model']}: same quality, much cheaper than {best['model']} ({delta:+.1f} points, "
                f"{_relative(cost, reference)}: {_usd(cost)} vs {_usd(reference)} per task)"
            )
        elif tolerance < gap <= 3 * tolerance and cost <= reference / 5:
            notes.append(
                f"{row['model']}: slightly worse, dramatically cheaper than {best['model']} ({delta:+.1f} "
                f"points, {_relative(cost, reference)}: {_usd(cost)} vs {_usd(reference)} per task)"
            )
    return {
        "model": pick["model"],
        "best_quality_model": best["model"],
        "quality": pick["quality"],
        "cost_per_task_usd": pick["cost_per_task_usd"],
        "notes": notes,
        "reason": f"cheapest within {tolerance:g} points of the best ({best['model']}, {best['quality']:.1f})",
    }


def _usd(value: Decimal) -> str:
    """A cost per task as the summary table prints it (8 places: a local model's $0.00000015 is not "$0.000000")."""
    return usd(value, "amount", 8)


def export_labels(
    frame: pd.DataFrame, tolerance: float = 3.0, tiers: dict[str, str] | None = None, min_quality: float = 50.0
) -> list[dict]:
    """Per example: the cheapest model whose quality met the bar (the example's best minus tolerance, and at
    least `min_quality`); when no model reaches `min_quality` the best one is the label, with met_bar false."""
    labels = []
    ok = frame[(frame["error"] == "") & (frame["quality"] != "")].copy()
    ok["quality_f"] = ok["quality"].astype(float)
    ok["cost_d"] = ok["cost_usd"].map(Decimal)
    for (task, example), group in ok.groupby(["task", "example"], sort=False):
        per_model = group.groupby("model", sort=False).agg(quality=("quality_f", "mean"), prompt=("prompt", "first"))
        costs = group.groupby("model", sort=False)["cost_d"].apply(lambda s: sum(s, Decimal(0)) / len(s))
        best = per_model["quality"].max()
        bar = max(best - tolerance, min_quality)
        eligible = [(costs[m], m) for m in per_model.index if per_model.loc[m, "quality"] >= bar]
        met = bool(eligible)
        if not met:  # nobody is good enough: route to the strongest, cheapest among equals
            eligible = [(costs[m], m) for m in per_model.index if per_model.loc[m, "quality"] == best]
        _, model = min(eligible)
        labels.append(
            {
                "task": task,
                "example": int(example),
                "prompt": per_model["prompt"].iloc[0],
                "label": model,
                "tier": (tiers or {}).get(model),
                "met_bar": met,
                "quality_bar": round(float(bar), 2),
                "quality_by_model": {m: round(float(q), 2) for m, q in per_model["quality"].items()},
                "cost_by_model": {m: money_str(c, "record") for m, c in costs.items()},
            }
        )
    return labels
