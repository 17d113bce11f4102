"""Demo step: validate a batch file (batch vs on-demand price), then run a small job on the local model."""

from __future__ import annotations

import json
from typing import TYPE_CHECKING

from tokenomy.commands._output import table, usd

if TYPE_CHECKING:
    from tokenomy.demo.context import DemoContext

TITLE = "Batch inference"
MODEL = "anthropic.claude-haiku-4-5-20251001-v1:0"


def run(ctx: DemoContext) -> None:
    """Validate 8 records plus 2 bad lines and price them; run 5 tiny records through the local runner."""
    from tokenomy.batch.jobs import create_job, open_tables
    from tokenomy.batch.local_job import run_job
    from tokenomy.batch.records import export_results
    from tokenomy.batch.validate import validate_file

    path = ctx.workdir / "batch.jsonl"
    lines = [json.dumps({"id": f"r{i}", "prompt": f"Name a colour. ({i})", "max_tokens": 8}) for i in range(8)]
    lines += ['{"id": "r8", "prompt": ', json.dumps({"id": "r0", "prompt": "duplicate"})]
    path.write_text("\n".join(lines) + "\n")
    report = validate_file(path, MODEL)
    for b in report.bad:
        ctx.console.print(f"  line {b.line}: {b.field}: {b.reason}")
    ctx.console.print(
        f"  {len(report.records)} good records, ~{report.input_tokens} input + "
        f"{report.output_tokens} output tokens on {MODEL}: on-demand "
        f"{usd(report.on_demand_usd)} vs batch {usd(report.batch_usd)}"
    )

    # The local model has no batch service: the local runner sends records on demand under rate
    # limits, commits each answer as it lands, and `tokenomy batch resume` finishes a killed run.
    small = ctx.workdir / "batch-local.jsonl"
    small.write_text(
        "\n".join(
            json.dumps({"id": f"c{i}", "prompt": f"One word: a {fruit}'s colour?", "max_tokens": 4})
            for i, fruit in enumerate(["banana", "lime", "plum", "cherry", "orange"])
        )
        + "\n"
    )
    ctx.client.flush()  # the demo ledger is one DuckDB file: let the client's writer finish first
    tables = open_tables(ctx.store)
    job = create_job(tables, small, "local", "local", run_settings={"concurrency": 1, "rpm": 600})
    ctx.console.print(f"  $ tokenomy batch submit {small.name} --model local --backend local  →  {job.job_id}")
    job, stats = run_job(tables, job.job_id)
    ctx.console.print(
        table(
            None,
            ["job", "status", "records", "done", "failed", "seconds", "cost"],
            [[job.job_id, job.status, job.records, job.done, job.failed, f"{stats.seconds:.1f}", usd(job.cost_usd)]],
        )
    )
    out = ctx.workdir / "batch-local.out.jsonl"
    export_results(tables, job.job_id, out)
    for line in out.read_text().splitlines():
        row = json.loads(line)
        ctx.console.print(f"  {row['id']}: {(row.get('text') or row.get('error') or '').strip()[:60]!r}")
