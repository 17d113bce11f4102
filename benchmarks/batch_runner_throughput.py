"""Local batch runner throughput as a share of a TPM limit, against a server that enforces the same limit.

The upstream (tokenomy.emulate.limited_openai) answers in `--latency` seconds and returns HTTP 429
with Retry-After whenever a request would take it over `--tpm`; the runner is configured with the
same TPM. Prints achieved tokens/minute, its share of the limit (target >= 90%), the 429s the runner
absorbed, and the throttling errors surfaced to the user (must be 0).

    .venv/bin/python benchmarks/batch_runner_throughput.py [--tpm 60000] [--records 450]
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
from pathlib import Path


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--tpm", type=float, default=60_000)
    parser.add_argument("--records", type=int, default=450, help="~100 tokens each: 450 runs ~45 s at 60k TPM")
    parser.add_argument("--latency", type=float, default=0.05)
    parser.add_argument("--concurrency", type=int, default=8)
    parser.add_argument(
        "--runner-tpm",
        type=float,
        default=None,
        help="runner's own limit [default: --tpm]; set it above --tpm to watch it adapt to 429s",
    )
    args = parser.parse_args()

    from tokenomy.batch.jobs import create_job, open_tables
    from tokenomy.batch.local_job import run_job
    from tokenomy.emulate.limited_openai import LimitedOpenAI

    work = Path(tempfile.mkdtemp(prefix="tokenomy-batch-bench-"))
    with LimitedOpenAI(tpm=args.tpm, burst_s=2.0, delay_s=args.latency) as url:
        (work / "tokenomy.yaml").write_text(
            f"models:\n  upstream:\n    provider: openai\n    model: gpt-4o-mini\n    base_url: {url}\n"
            "    price_as: gpt-4o-mini\n"
        )
        prompt = "Summarise the following note in one line: " + "quarterly figures look steady " * 5
        with open(work / "in.jsonl", "w") as fh:
            for i in range(args.records):
                fh.write(json.dumps({"id": f"r{i}", "prompt": f"{prompt} #{i}", "max_tokens": 50}) + "\n")
        tables = open_tables(work / "ledger.duckdb")
        job = create_job(
            tables,
            work / "in.jsonl",
            "upstream",
            "local",
            config_path=str(work / "tokenomy.yaml"),
            run_settings={"concurrency": args.concurrency, "tpm": args.runner_tpm or args.tpm},
        )

        def progress(done: int, total: int, tpm: float) -> None:
            print(f"\r{done}/{total} records, {tpm:,.0f} TPM", end="", file=sys.stderr, flush=True)

        job, stats = run_job(tables, job.job_id, on_progress=progress if sys.stderr.isatty() else None)
    share = stats.tokens_per_minute / args.tpm
    surfaced = job.failed + job.pending
    print(f"records          {job.done}/{job.records} answered in {stats.seconds:.1f} s")
    print(f"TPM limit        {args.tpm:,.0f} at the server, {args.runner_tpm or args.tpm:,.0f} in the runner")
    print(f"achieved TPM     {stats.tokens_per_minute:,.0f} = {share:.1%} of the limit (target >= 90%)")
    print(f"429s absorbed    {stats.throttled} (retried with back-off, rate cut and recovered)")
    print(f"errors surfaced  {surfaced} (must be 0)")
    return 0 if share >= 0.9 and surfaced == 0 else 1


if __name__ == "__main__":
    sys.exit(main())
