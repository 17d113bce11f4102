"""Demo step: the example support tasks on two priced variants of the local model, judged by one evaluator."""

from __future__ import annotations

from pathlib import Path

TITLE = "Benchmark: cost per task vs quality"


def _examples() -> Path:
    for parent in Path(__file__).resolve().parents:
        if (parent / "examples" / "bench").is_dir():
            return parent / "examples" / "bench"
    raise FileNotFoundError("examples/bench")


def run(ctx) -> None:  # noqa: ANN001 - DemoContext
    from tokenomy.bench.runner import RunSettings, run as run_bench
    from tokenomy.bench.tasks import load_tasks
    from tokenomy.client import Tokenomy
    from tokenomy.commands.bench import finish, print_summary
    from tokenomy.config import load_config

    examples = _examples()
    cfg = load_config(examples / "variants.yaml")
    tasks = load_tasks(examples / "support.yaml")
    settings = RunSettings(("terse", "verbose"), sample=2, seed=1, judge_model="local", max_tokens=40,
                           system_prompts={n: m.system_prompt for n, m in cfg.models.items() if m.system_prompt})
    out = ctx.workdir / "bench"
    client = Tokenomy(ctx.client.writer, models=cfg.model_specs())
    run_bench(client, tasks, settings, out)
    print_summary(finish(out, 3.0), out)
