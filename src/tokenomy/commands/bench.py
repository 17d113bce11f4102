"""`tokenomy bench run|summary|export-labels`."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Optional

import typer
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeRemainingColumn

from tokenomy.commands._common import JsonOption, LedgerOption, open_existing_ledger
from tokenomy.commands._options import number_option, output_file
from tokenomy.commands._output import console, dumps, err_console, print_json, table, usd

bench_app = typer.Typer(help="Benchmark cost per task against quality on your own prompts.", no_args_is_help=True)


def register(app: typer.Typer) -> None:
    app.add_typer(bench_app, name="bench")


def print_summary(summary: dict, out: Path | None = None, console=console) -> None:
    """The summary table, the pick per task with its call-outs, the judge used, and where the files are."""
    console.print(
        table(
            "Cost per task vs quality",
            [
                "task",
                "model",
                "quality",
                "95% CI",
                "cost/task",
                "p50 ms",
                "p95 ms",
                "TTFT p50",
                "out tokens",
                "failures",
            ],
            [
                [
                    r["task"],
                    r["model"],
                    r["quality"],
                    "-" if r["quality_ci95"] is None else r["quality_ci95"],  # none: one graded score has no interval
                    usd(r["cost_per_task_usd"], 8),
                    r["latency_p50_ms"],
                    r["latency_p95_ms"],
                    r["ttft_p50_ms"],
                    r["output_tokens_mean"],
                    f"{r['failure_rate']:.0%}" if r["failure_rate"] is not None else "-",
                ]
                for r in summary["results"]
            ],
        )
    )
    for task, pick in summary["recommendations"].items():
        if pick.get("model") is None:  # every candidate failed: there is nothing to "use None" of
            where = f" (the error column of {out / 'results.csv'} says why)" if out else ""
            console.print(f"[bold]{task}[/bold]: no recommendation — {pick['reason']}{where}")
            continue
        console.print(f"[bold]{task}[/bold]: use {pick.get('model')} — {pick['reason']}")
        for note in pick.get("notes", []):
            console.print(f"  • {note}")
    judge = summary.get("judge")
    if judge:
        repeated = judge.get("repeated_call_cost_usd")
        console.print(
            f"Judge: {judge['model']} for every candidate, rubric {', '.join(judge['rubric'])}; "
            f"judge cost {usd(judge['cost_usd'], 8)} (not in cost/task)"
            + (
                f"; candidate calls repeated to judge an answer again {usd(repeated, 8)} (not in cost/task)"
                if repeated
                else ""
            )
        )
    if out:
        console.print(
            f"Results: {out / 'results.csv'}, {out / 'results.parquet'}; plot: {out / 'pareto.png'}; "
            f"report: {out / 'report.html'}"
        )


def finish(out: Path, tolerance: float) -> dict:
    """Summarise DIR/results.csv and write summary.json, the Pareto PNGs and report.html next to it."""
    from tokenomy.bench.plot import plot
    from tokenomy.bench.report import html_report
    from tokenomy.bench.runner import write_parquet
    from tokenomy.bench.summary import load_results, summarize

    summary = summarize(load_results(out / "results.csv"), tolerance)
    if not (out / "results.parquet").exists():
        write_parquet(out / "results.csv")
    pngs = plot(summary, out)
    html_report(summary, pngs[:1], out)
    (out / "summary.json").write_text(dumps(summary))
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
    model_max_tokens: Optional[str] = typer.Option(
        None, "--model-max-tokens", help="Per-model output caps that replace the others, e.g. verbose=128,local=32."
    ),
    tolerance: float = number_option(
        3.0, "--tolerance", min=0, max=100, help="Quality points within which a cheaper model wins."
    ),
    out: Path = typer.Option(  # --output and -o as well: the names every other command's output has
        Path("bench-out"), "--out", "--output", "-o", help="Directory for CSV, Parquet, PNG and HTML."
    ),
    resume: bool = typer.Option(False, "--resume", help="Skip (task, model, example, repeat) already done in --out."),
    config: Optional[str] = typer.Option(
        None, "--config", help="tokenomy.yaml with models (e.g. a server, price_as, system_prompt variants)."
    ),
    ledger: Optional[str] = LedgerOption,
    as_json: bool = JsonOption,
) -> None:
    """Run every task on every model; results are written as they arrive, so --resume continues a run.

    Exit status: 0 when at least one call succeeded; 1 when every call failed (the table and the
    results.csv error column say why; nothing is recommended); 2 on bad input, 130 when interrupted."""
    from tokenomy.bench.runner import RunSettings, count_jobs, run
    from tokenomy.bench.tasks import load_tasks
    from tokenomy.client import Tokenomy
    from tokenomy.config import load_config
    from tokenomy.errors import UsageError

    tasks = load_tasks(tasks_file)
    cfg = load_config(config)
    variants = {name: m.system_prompt for name, m in cfg.models.items() if m.system_prompt}
    names = tuple(dict.fromkeys(m.strip() for m in models.split(",") if m.strip()))
    if not names:
        raise UsageError("--models: name at least one model (catalog id, `local`, or a name under `models:`)")
    for label, value in (("--repeat", repeat), ("--concurrency", concurrency), ("--max-tokens", max_tokens)):
        if value < 1:
            raise UsageError(f"{label}: must be at least 1, got {value}")
    if sample is not None and sample < 1:
        raise UsageError(f"--sample: must be at least 1, got {sample}")
    caps: dict[str, int] = {}
    for pair in (model_max_tokens or "").split(","):
        if pair.strip():
            name, _, cap = pair.partition("=")
            if not cap.strip().isdigit() or int(cap) < 1:
                raise UsageError(f"--model-max-tokens: expected MODEL=N pairs with N >= 1, got {pair.strip()!r}")
            caps[name.strip()] = int(cap)
    settings = RunSettings(names, repeat, concurrency, sample, seed, judge, max_tokens, variants, caps or None)
    _out_folder(out)
    specs = cfg.model_specs()
    for option, name in [*(("--models", n) for n in names), *([("--judge", judge)] if judge else [])]:
        _check_priced(specs, option, name)  # a typo fails now: not once per example, nor after the ledger is made
    total = count_jobs(tasks, settings, out, resume)
    with (
        Tokenomy(open_existing_ledger(ledger or cfg.ledger, must_exist=False), models=specs) as client,
        Progress(
            TextColumn("[bold]bench[/bold]"),
            BarColumn(),
            MofNCompleteColumn(),
            TimeRemainingColumn(),
            console=console,
            transient=True,
            disable=as_json,
        ) as progress,
    ):
        bar = progress.add_task("calls", total=total)
        try:
            run(client, tasks, settings, out, resume, on_row=lambda row: progress.advance(bar))
        except KeyboardInterrupt:
            progress.stop()
            console.print(
                f"Interrupted: finished rows are in {out / 'results.csv'}; run the same command with "
                "--resume to continue without repeating them."
            )
            raise typer.Exit(130) from None
    summary = finish(out, tolerance)
    if as_json:
        print_json(summary)
    else:
        print_summary(summary, out)
    if summary["results"] and all(r["failure_rate"] == 1 for r in summary["results"]):
        err_console.print(
            f"error: every call failed; the error column of {out / 'results.csv'} says why",
            markup=False,
            highlight=False,
        )
        raise typer.Exit(1)


def _out_folder(out: Path) -> None:
    """--out, checked before the ledger is opened: a file there (or on the way) failed only when the results were
    first written, after the ledger had been made (a .tokenomy/ledger.duckdb left by a command that did nothing)."""
    from tokenomy.errors import UsageError

    blocker = next((p for p in (out, *out.parents) if p.exists()), None)
    if blocker is not None and not blocker.is_dir():
        raise UsageError(f"--out {out}: {blocker} is a file; give a folder for the results (made if missing)")


def _check_priced(specs: dict, option: str, name: str) -> None:
    """The model resolves and the catalog prices it: an unpriced model's calls are recorded at $0, which would read as
    the cheapest cost per task."""
    from tokenomy.errors import TokenomyError, UsageError
    from tokenomy.pricing.catalog import default_catalog
    from tokenomy.providers.registry import resolve_model

    spec = resolve_model(name, specs)
    try:
        default_catalog().lookup(spec.pricing_model, spec.region)
    except TokenomyError as exc:
        raise UsageError(
            f"{option}: {name!r} has no price, so its cost would read $0 ({str(exc).rstrip('.')}). Give it "
            "`price_as:` (the catalog model it costs like) under `models:` in --config, or set TOKENOMY_PRICES to a "
            "price file that prices it"
        ) from None


def results_dir(value: Path) -> Path:
    """Callback of the arguments that name a `bench run --out` folder: its results.csv, given instead, is named with
    its folder (it read as "DIR/results.csv/results.csv: no results here")."""
    if value.is_file():
        raise typer.BadParameter(f"{value} is a file; give the folder that holds it, {value.resolve().parent}")
    return value


@bench_app.command("summary")
def summary_cmd(
    out: Path = typer.Argument(..., help="A results directory from `bench run --out`.", callback=results_dir),
    tolerance: float = number_option(
        3.0, "--tolerance", min=0, max=100, help="Quality points within which a cheaper model wins."
    ),
    as_json: bool = JsonOption,
) -> None:
    """Recompute the summary, plots and report from a results directory."""
    summary = finish(out, tolerance)
    print_json(summary) if as_json else print_summary(summary, out)


@bench_app.command("export-labels")
def export_labels_cmd(
    out: Path = typer.Argument(..., help="A results directory from `bench run --out`.", callback=results_dir),
    output: Path = typer.Option(
        Path("labels.jsonl"), "-o", "--output", help="JSONL training set for the router.", callback=output_file
    ),
    tolerance: float = number_option(
        3.0, "--tolerance", min=0, max=100, help="Quality points below the example's best that count."
    ),
    min_quality: float = number_option(
        50.0,
        "--min-quality",
        min=0,
        max=100,
        help="Absolute quality bar (0-100) as well; when no "
        "model reaches it the best one is the label, with met_bar false.",
    ),
    tiers: Optional[str] = typer.Option(
        None, "--tiers", help="model=tier pairs, e.g. local=small,big=large \\[default: `tiers:` in the config]"
    ),
    config: Optional[str] = typer.Option(None, "--config", help="tokenomy.yaml whose `tiers:` map models to tiers."),
    as_json: bool = JsonOption,
) -> None:
    """Per example, the cheapest model that met the quality bar: the router's training set."""
    from tokenomy.bench.summary import export_labels, load_results
    from tokenomy.config import load_config
    from tokenomy.errors import UsageError

    if tiers:
        pairs = [pair.split("=", 1) for pair in tiers.split(",") if pair.strip()]
        if any(len(pair) != 2 for pair in pairs):
            raise UsageError(f"--tiers: expected model=tier pairs separated by commas, got {tiers!r}")
        tier_map = {model.strip(): tier.strip() for model, tier in pairs}
    else:
        tier_map = {model: tier for tier, members in load_config(config).tiers.items() for model in members}
    labels = export_labels(load_results(out / "results.csv"), tolerance, tier_map or None, min_quality)
    with output.open("w") as handle:
        for label in labels:
            handle.write(json.dumps(label) + "\n")
    counts: dict[str, int] = {}
    for label in labels:
        counts[label["label"]] = counts.get(label["label"], 0) + 1
    if as_json:
        print_json({"output": str(output), "examples": len(labels), "labels": counts})
    else:
        console.print(
            f"wrote {len(labels)} labelled example(s) to {output}: "
            + ", ".join(f"{model} {n}" for model, n in counts.items())
        )
