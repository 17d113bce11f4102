"""Demo step: the example support tasks on the local model and a verbose variant priced as Bedrock Haiku."""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path

TITLE = "Benchmark: cost per task vs quality"
CANDIDATES = ("local", "verbose")  # `verbose`: the same model told to answer at length (examples/bench/variants.yaml)


def _examples() -> Path:
    for parent in Path(__file__).resolve().parents:
        if (parent / "examples" / "bench").is_dir():
            return parent / "examples" / "bench"
    raise FileNotFoundError("examples/bench (the bench demo reads its task and model files from there)")


def run(ctx) -> None:  # noqa: ANN001 - DemoContext
    """Each candidate on a small sample of every task, the summary judged by the local model; table + files."""
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn

    from tokenomy.bench.runner import RunSettings, count_jobs, run as run_bench
    from tokenomy.bench.tasks import load_tasks
    from tokenomy.client import Tokenomy
    from tokenomy.commands._common import usd
    from tokenomy.commands.bench import finish, print_summary
    from tokenomy.config import load_config

    examples = _examples()
    cfg = load_config(examples / "variants.yaml")
    # Two examples per task, one for the judged summary (each judging is several evaluator calls on a tiny model).
    tasks = [replace(t, examples=t.examples[:1]) if t.scorer == "judge" else t
             for t in load_tasks(examples / "support.yaml")]
    settings = RunSettings(CANDIDATES, sample=2, seed=1, judge_model="local", max_tokens=24,
                           system_prompts={n: m.system_prompt for n, m in cfg.models.items() if m.system_prompt})
    out = ctx.workdir / "bench"
    client = Tokenomy(ctx.client.writer, models=cfg.model_specs())
    with Progress(TextColumn("[bold]bench[/bold]"), BarColumn(), MofNCompleteColumn(), console=ctx.console,
                  transient=True) as progress:
        bar = progress.add_task("calls", total=count_jobs(tasks, settings, out, False))
        run_bench(client, tasks, settings, out, on_row=lambda row: progress.advance(bar))
    summary = finish(out, 3.0)
    print_summary(summary, out, console=ctx.console)
    verbose = [r for r in summary["results"] if r["model"] == "verbose" and r["output_tokens_mean"]]
    local = {r["task"]: r for r in summary["results"] if r["model"] == "local"}
    price_as = cfg.models["verbose"].price_as
    for row in verbose:
        base = local.get(row["task"])
        if base and base["output_tokens_mean"]:
            ctx.console.print(f"{row['task']}: verbose writes {row['output_tokens_mean'] / base['output_tokens_mean']:.1f}x "
                              f"the tokens per answer; priced as {price_as} that is {usd(row['cost_per_task_usd'], 6)} "
                              "per task, for the same model.")
