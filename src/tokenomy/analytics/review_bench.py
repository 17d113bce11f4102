"""Review, part 3: re-run a task file on the models in use and their candidates, with the same fixed judge as
the previous review, and compare quality with that review's stored results.

A (task, model) has regressed when its quality fell beyond both 95% intervals: today's mean is below the
previous interval's low end and the previous mean is above today's interval's high end.
"""

from __future__ import annotations

import tempfile
from pathlib import Path
from typing import Any

from tokenomy.errors import UsageError


def bench_models(
    in_use: list[dict[str, Any]], configured: dict[str, tuple[str | None, str | None]], extra: list[str]
) -> list[str]:
    """Names to benchmark: each model in use and each of its candidates (review part 2), as itself or as any
    `models:` entry that calls or is priced as it (`configured`: name -> (model, price_as)), then `extra`."""
    ids = [info["model"] for info in in_use] + [c["model"] for info in in_use for c in info["candidates"]]
    names = []
    for model_id in ids:
        names += [model_id] if model_id in configured or model_id == "local" else []
        names += [name for name, (model, price_as) in configured.items() if model_id in (model, price_as)]
    return list(dict.fromkeys(names + extra))


def runnable(client: Any, names: list[str], configured: set[str]) -> tuple[list[str], dict[str, str]]:
    """Models this machine can call: names under `models:` in the config, or the local model."""
    ok, skipped = [], {}
    for name in dict.fromkeys(names):
        try:
            spec = client.spec_for(name)
        except Exception as exc:
            skipped[name] = f"cannot resolve ({exc})"
            continue
        if name in configured or spec.provider == "local":
            ok.append(name)
        else:
            skipped[name] = (
                "not under `models:` in the config; add it with its provider (and credentials) to benchmark it"
            )
    return ok, skipped


def run_bench(
    client: Any,
    tasks_file: str | Path,
    models: list[str],
    judge: str | None,
    system_prompts: dict,
    max_tokens: int = 32,
) -> dict[str, Any]:
    """Run every task on `models` (results in a temporary directory) and return the per (task, model) summary."""
    from tokenomy.bench.runner import RunSettings, run
    from tokenomy.bench.summary import load_results, summarize
    from tokenomy.bench.tasks import load_tasks

    if not models:
        raise UsageError(
            "--bench: none of the models in use or their candidates can be called here; name them "
            "under `models:` in --config (with their provider) or add --candidates"
        )
    tasks = load_tasks(Path(tasks_file))
    settings = RunSettings(tuple(models), judge_model=judge, max_tokens=max_tokens, system_prompts=system_prompts)
    with tempfile.TemporaryDirectory(prefix="tokenomy-review-bench-") as out:
        csv_path = run(client, tasks, settings, Path(out))
        summary = summarize(load_results(csv_path))
    results = [
        {k: r[k] for k in ("task", "model", "examples", "quality", "quality_ci95", "cost_per_task_usd", "failure_rate")}
        for r in summary["results"]
    ]
    return {"tasks_file": str(tasks_file), "judge": judge, "models": models, "results": results}


def compare(current: list[dict[str, Any]], previous: list[dict[str, Any]] | None) -> list[dict[str, Any]]:
    """Per (task, model) in both runs: quality then and now, and whether it regressed beyond the intervals."""
    before = {(r["task"], r["model"]): r for r in previous or []}
    out = []
    for row in current:
        old = before.get((row["task"], row["model"]))
        if old is None or old.get("quality") is None or row.get("quality") is None:
            continue
        # A quality from one graded score has no interval (None): a change in it cannot be told from noise.
        then, now = old.get("quality_ci95"), row.get("quality_ci95")
        regressed = then is not None and now is not None and row["quality"] < then[0] and old["quality"] > now[1]
        out.append(
            {
                "task": row["task"],
                "model": row["model"],
                "previous_quality": old["quality"],
                "previous_ci95": old["quality_ci95"],
                "quality": row["quality"],
                "ci95": row["quality_ci95"],
                "change": round(row["quality"] - old["quality"], 2),
                "regressed": regressed,
            }
        )
    return out
