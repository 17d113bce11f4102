"""Demo step: the example support tasks on the local model and a verbose variant priced as Bedrock Haiku."""

from __future__ import annotations

from dataclasses import replace
from typing import TYPE_CHECKING

from tokenomy.data import examples as packaged_examples

if TYPE_CHECKING:
    from tokenomy.demo.context import DemoContext

TITLE = "Benchmark: cost per task vs quality"
CANDIDATES = ("local", "verbose")  # `verbose`: the same model told to answer at length (examples/bench/variants.yaml)


def run(ctx: DemoContext) -> None:
    """Each candidate on a small sample of every task, the summary judged by the local model; table + files."""
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn

    from tokenomy.bench.runner import RunSettings, count_jobs
    from tokenomy.bench.runner import run as run_bench
    from tokenomy.bench.tasks import load_tasks
    from tokenomy.client import Tokenomy
    from tokenomy.commands._output import usd
    from tokenomy.commands.bench import finish, print_summary
    from tokenomy.config import load_config

    examples = packaged_examples("bench")
    cfg = load_config(examples / "variants.yaml")
    # Two examples per task, one for the judged summary (each judging is several evaluator calls on a tiny model).
    tasks = [
        replace(t, examples=t.examples[:1]) if t.scorer == "judge" else t for t in load_tasks(examples / "support.yaml")
    ]
    # `verbose` may run to 64 tokens, as a chatty model would; everyone else is capped at 24.
    settings = RunSettings(
        CANDIDATES,
        sample=2,
        seed=1,
        judge_model="local",
        max_tokens=24,
        model_max_tokens={"verbose": 64},
        system_prompts={n: m.system_prompt for n, m in cfg.models.items() if m.system_prompt},
    )
    out = ctx.workdir / "bench"
    client = Tokenomy(ctx.client.writer, models=cfg.model_specs())
    with Progress(
        TextColumn("[bold]bench[/bold]"), BarColumn(), MofNCompleteColumn(), console=ctx.console, transient=True
    ) as progress:
        bar = progress.add_task("calls", total=count_jobs(tasks, settings, out, False))
        run_bench(client, tasks, settings, out, on_row=lambda row: progress.advance(bar))
    summary = finish(out, 3.0)
    print_summary(summary, out, console=ctx.console)
    rows = {(r["task"], r["model"]): r for r in summary["results"] if r["output_tokens_mean"]}
    pairs = [(rows[(t, "local")], rows[(t, "verbose")]) for t, m in rows if m == "local" and (t, "verbose") in rows]
    if pairs:
        ratio = sum(v["output_tokens_mean"] for _, v in pairs) / sum(local["output_tokens_mean"] for local, _ in pairs)
        cost = sum((v["cost_per_task_usd"] for _, v in pairs), start=0) / len(pairs)
        ctx.console.print(
            f"Same weights, two prices: `verbose` writes {ratio:.1f}x the tokens of `local` and, "
            "priced as "
            f"{cfg.models['verbose'].price_as}, costs {usd(cost, 6)} per task on average; `local` costs "
            "nothing. Open the HTML report for the Pareto plot."
        )
