"""`tokenomy bench run|summary|export-labels`."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Optional

import typer
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeRemainingColumn

from tokenomy.commands._common import JsonOption, LedgerOption, console, print_json, table, usd

bench_app = typer.Typer(help="Benchmark cost per task against quality on your own prompts.", no_args_is_help=True)


def register(app: typer.Typer) -> None:
    app.add_typer(bench_app, name="bench")


def print_summary(summary: dict, out: Path | None = None) -> None:
    console.print(table("Cost per task vs quality", ["task", "model", "quality", "95% CI", "cost/task", "p50 ms",
                                                     "p95 ms", "TTFT p50", "out tokens", "failures"],
                        [[r["task"], r["model"], r["quality"], r["quality_ci95"], usd(r["cost_per_task_usd"], 8),
                          r["latency_p50_ms"], r["latency_p95_ms"], r["ttft_p50_ms"], r["output_tokens_mean"],
                          f"{r['failure_rate']:.0%}" if r["failure_rate"] is not None else "-"]
                         for r in summary["results"]]))
    for task, pick in summary["recommendations"].items():
        console.print(f"[bold]{task}[/bold]: use {pick.get('model')} — {pick['reason']}")
        for note in pick.get("notes", []):
            console.print(f"  • {note}")
    if out:
        console.print(f"[dim]Results: {out}/results.csv, results.parquet, pareto_*.png, report.html[/dim]")


def finish(out: Path, tolerance: float) -> dict:
    from tokenomy.bench.plot import html_report, plot
    from tokenomy.bench.summary import load_results, summarize

    summary = summarize(load_results(out / "results.csv"), tolerance)
    pngs = plot(summary, out)
    html_report(summary, pngs, out)
    (out / "summary.json").write_text(json.dumps(summary, default=str, indent=2))
    return summary


@bench_app.command("run")
def run_cmd(
    tasks_file: Path = typer.Argument(..., help="Task file (YAML with `tasks:` or JSONL)."),
    models: str = typer.Option("local", "--models", help="Comma-separated candidate models."),
    repeat: int = typer.Option(1, "--repeat", help="Runs per example."),
    concurrency: int = typer.Option(1, "--concurrency", help="Calls in flight."),
    sample: Optional[int] = typer.Option(None, "--sample", help="Examples per task, sampled with --seed."),
    seed: int = typer.Option(0, "--seed", help="Sampling seed."),
    judge: Optional[str] = typer.Option(None, "--judge", help="The one evaluator model for judge-scored tasks."),
    max_tokens: int = typer.Option(64, "--max-tokens", help="Output cap per call unless the task sets one."),
    tolerance: float = typer.Option(3.0, "--tolerance", help="Quality points within which a cheaper model wins."),
    out: Path = typer.Option(Path("bench-out"), "--out", help="Directory for CSV, Parquet, PNG and HTML."),
    resume: bool = typer.Option(False, "--resume", help="Skip (task, model, example, repeat) already done in --out."),
    config: Optional[str] = typer.Option(None, "--config", help="tokenomy.yaml with models (e.g. a server, "
                                         "price_as, system_prompt variants)."),
    ledger: Optional[str] = LedgerOption,
    as_json: bool = JsonOption,
) -> None:
    """Run every task on every model; results are written as they arrive, so --resume continues a run."""
    from tokenomy.bench.runner import RunSettings, count_jobs, run
    from tokenomy.bench.tasks import load_tasks
    from tokenomy.client import Tokenomy
    from tokenomy.config import load_config

    tasks = load_tasks(tasks_file)
    cfg = load_config(config) if config else None
    specs = cfg.model_specs() if cfg else None
    variants = {name: m.system_prompt for name, m in (cfg.models.items() if cfg else []) if m.system_prompt}
    settings = RunSettings(tuple(m.strip() for m in models.split(",") if m.strip()), repeat, concurrency, sample,
                           seed, judge, max_tokens, variants)
    total = count_jobs(tasks, settings, out, resume)
    with Tokenomy(ledger, models=specs) as client, Progress(
            TextColumn("[bold]bench[/bold]"), BarColumn(), MofNCompleteColumn(), TimeRemainingColumn(),
            console=console, transient=True, disable=as_json) as progress:
        bar = progress.add_task("calls", total=total)
        run(client, tasks, settings, out, resume, on_row=lambda row: progress.advance(bar))
    summary = finish(out, tolerance)
    if as_json:
        print_json(summary)
    else:
        print_summary(summary, out)


@bench_app.command("summary")
def summary_cmd(out: Path = typer.Argument(..., help="A results directory from `bench run --out`."),
                tolerance: float = typer.Option(3.0, "--tolerance"), as_json: bool = JsonOption) -> None:
    """Recompute the summary, plots and report from a results directory."""
    summary = finish(out, tolerance)
    print_json(summary) if as_json else print_summary(summary, out)


@bench_app.command("export-labels")
def export_labels_cmd(
    out: Path = typer.Argument(..., help="A results directory from `bench run --out`."),
    output: Path = typer.Option(Path("labels.jsonl"), "-o", "--output", help="JSONL training set for the router."),
    tolerance: float = typer.Option(3.0, "--tolerance", help="Quality points below the best that still count."),
    tiers: Optional[str] = typer.Option(None, "--tiers", help="model=tier pairs, e.g. local=tier1,big=tier2."),
) -> None:
    """Per example, the cheapest model that met the quality bar: the router's training set."""
    from tokenomy.bench.summary import export_labels, load_results

    tier_map = dict(pair.split("=", 1) for pair in tiers.split(",")) if tiers else None
    labels = export_labels(load_results(out / "results.csv"), tolerance, tier_map)
    with output.open("w") as handle:
        for label in labels:
            handle.write(json.dumps(label) + "\n")
    console.print(f"wrote {len(labels)} labelled example(s) to {output}")
