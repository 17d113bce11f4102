"""Demo step: validate a small batch file and show batch vs on-demand price of the same tokens."""

from __future__ import annotations

import json

from tokenomy.commands._common import usd

TITLE = "Batch inference"
MODEL = "anthropic.claude-3-haiku-20240307-v1:0"


def run(ctx) -> None:
    """Write 8 plain records plus 2 bad lines, validate them, print the two prices."""
    from tokenomy.batch.validate import validate_file

    path = ctx.workdir / "batch.jsonl"
    lines = [json.dumps({"id": f"r{i}", "prompt": f"Name a colour. ({i})", "max_tokens": 8}) for i in range(8)]
    lines += ['{"id": "r8", "prompt": ', json.dumps({"id": "r0", "prompt": "duplicate"})]
    path.write_text("\n".join(lines) + "\n")
    report = validate_file(path, MODEL)
    for b in report.bad:
        ctx.console.print(f"  line {b.line}: {b.field}: {b.reason}")
    ctx.console.print(f"  {len(report.records)} good records, ~{report.input_tokens} input + "
                      f"{report.output_tokens} output tokens on {MODEL}: on-demand "
                      f"{usd(report.on_demand_usd)} vs batch {usd(report.batch_usd)}")
