"""Gateway instructions per request, counted by valgrind's callgrind: a figure the machine's load cannot move.

`gateway_overhead.py` measures time, and on a shared 2-core VM the same code's CPU per request moves by 40% from
one run to the next, so a change of a few percent (or the tools+image request's cost against text-only) is lost in
the noise. Callgrind counts the instructions the gateway process executes; the count repeats within about 1%.

`tokenomy serve` (ledger on, one worker, in front of the instant OpenAI-format upstream) runs under callgrind with
instrumentation off while it starts and warms up; then, for each request body, the counters are zeroed, N requests
are sent one after another on one keep-alive connection and the counters dumped. Printed: instructions per request
for the text-only request and for the tools+image one (`gateway_overhead.RICH_BODY`), and their ratio. With
`--baseline DIR` (another checkout, e.g. `git worktree add --detach /tmp/old <commit>`) the same is measured for
DIR's sources in the same run, and each figure is compared: a deterministic A/B of two versions.

What is counted: the gateway's own process (its event loop, the ledger's flush and journal threads), not the ledger
writer's child process nor the kernel. Instructions are not time (a C loop retires more of them per nanosecond than
the interpreter does), so this complements the wall-clock benchmark and does not replace it.

    .venv/bin/python benchmarks/gateway_instructions.py [--requests 200] [--baseline DIR] [--json]
"""

from __future__ import annotations

import argparse
import http.client
import json
import os
import re
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from gateway_overhead import BODY, PRICE_AS, RICH_BODY, free_port, start, stop, wait_ready

ROOT = Path(__file__).resolve().parent.parent
WARMUP = 40  # requests of each body before counting: imports, caches and the connection pool settle


def send(port: int, body: bytes, n: int) -> None:
    """`n` POSTs on one keep-alive connection, each answered 200."""
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=600)
    try:
        for _ in range(n):
            conn.request("POST", "/v1/chat/completions", body, {"Content-Type": "application/json"})
            answer = conn.getresponse()
            answer.read()
            if answer.status != 200:
                raise RuntimeError(f"the gateway answered {answer.status}")
    finally:
        conn.close()


def control(pid: int, *args: str) -> None:
    subprocess.run(["callgrind_control", *args, str(pid)], check=True, capture_output=True, timeout=120)


def instructions(dump: Path) -> int:
    """The instructions a callgrind dump counted (its `summary:` or `totals:` line)."""
    text = dump.read_text(errors="replace")
    found = re.search(r"^(?:summary|totals):\s*(\d+)", text, re.MULTILINE)
    if not found:
        raise RuntimeError(f"{dump} holds no instruction total")
    return int(found.group(1))


def measure(src: Path, upstream: str, work: Path, requests: int) -> dict[str, float]:
    """Instructions per request of the gateway run from `src` (a checkout's src/ directory), per body."""
    config = work / "tokenomy.yaml"
    config.write_text(
        json.dumps(
            {
                "auth": False,
                "models": {
                    "bench-model": {
                        "provider": "openai",
                        "model": "bench-model",
                        "base_url": upstream,
                        "api_key_env": "BENCH_KEY",
                        "price_as": PRICE_AS,
                    }
                },
            }
        )
    )
    port = free_port()
    out = work / "callgrind.out"
    env = {**os.environ, "BENCH_KEY": "sk-bench", "PYTHONPATH": str(src)}
    proc = start(
        [
            "valgrind",
            "--tool=callgrind",
            "--instr-atstart=no",
            f"--callgrind-out-file={out}",
            sys.executable,
            "-m",
            "tokenomy.cli",
            "serve",
            "--config",
            str(config),
            "--port",
            str(port),
            "--ledger",
            str(work / "ledger.duckdb"),
        ],
        work / "gateway.log",
        env=env,
    )
    try:
        wait_ready(f"http://127.0.0.1:{port}/v1/chat/completions", proc, 600, work / "gateway.log")
        bodies = {"text": json.dumps(BODY).encode(), "tools+image": json.dumps(RICH_BODY).encode()}
        for body in bodies.values():
            send(port, body, WARMUP)
        figures = {}
        for name, body in bodies.items():
            control(proc.pid, "--zero")
            control(proc.pid, "--instr=on")
            send(port, body, requests)
            control(proc.pid, f"--dump={name}")  # before switching off, which would drop the counts
            control(proc.pid, "--instr=off")
            dumps = sorted(work.glob("callgrind.out.*"), key=lambda p: p.stat().st_mtime)
            figures[name] = instructions(dumps[-1]) / requests
            for dump in dumps:
                dump.unlink()
        return figures
    finally:
        stop(proc)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--requests", type=int, default=200, help="requests counted per body (default 200)")
    parser.add_argument("--baseline", type=Path, help="another checkout to measure beside this one")
    parser.add_argument("--json", action="store_true", help="print the results as JSON")
    args = parser.parse_args()
    for tool in ("valgrind", "callgrind_control"):
        if not shutil.which(tool):
            print(f"{tool} is not installed (apt-get install valgrind)", file=sys.stderr)
            return 2
    if args.requests < 1:
        print("--requests: at least 1", file=sys.stderr)
        return 2
    trees = {"this checkout": ROOT / "src"}
    if args.baseline is not None:
        if not (args.baseline / "src" / "tokenomy").is_dir():
            print(f"--baseline {args.baseline}: not a checkout of this project (no src/tokenomy)", file=sys.stderr)
            return 2
        trees["baseline"] = args.baseline.resolve() / "src"
    work = Path(tempfile.mkdtemp(prefix="tokenomy-instr-"))
    up_port = free_port()
    upstream_proc = start(
        [sys.executable, "-m", "tokenomy.emulate.instant_openai", "--port", str(up_port)], work / "upstream.log"
    )
    results: dict[str, dict[str, float]] = {}
    try:
        upstream = f"http://127.0.0.1:{up_port}/v1"
        wait_ready(upstream + "/chat/completions", upstream_proc, 30, work / "upstream.log")
        for label, src in trees.items():
            began = time.monotonic()
            tree_work = work / label.replace(" ", "-")
            tree_work.mkdir()
            results[label] = measure(src, upstream, tree_work, args.requests)
            print(f"measured {label} in {time.monotonic() - began:.0f} s", file=sys.stderr, flush=True)
    finally:
        stop(upstream_proc)
        shutil.rmtree(work, ignore_errors=True)
    report(results, args.json)
    return 0


def report(results: dict[str, dict[str, float]], as_json: bool) -> None:
    rows = []
    for label, figures in results.items():
        ratio = figures["tools+image"] / figures["text"]
        rows.append(
            {
                "tree": label,
                "text": round(figures["text"]),
                "tools_image": round(figures["tools+image"]),
                "tools_image_vs_text": round(ratio, 3),
            }
        )
    comparison = {}
    if "baseline" in results:
        new, old = results["this checkout"], results["baseline"]
        comparison = {name: round(new[name] / old[name], 3) for name in new}
    if as_json:
        print(json.dumps({"instructions_per_request": rows, "this_vs_baseline": comparison}, indent=2))
        return
    print(f"{'tree':<15} {'text':>12} {'tools+image':>12} {'ratio':>7}   (instructions a request, gateway process)")
    for row in rows:
        print(f"{row['tree']:<15} {row['text']:>12,} {row['tools_image']:>12,} {row['tools_image_vs_text']:>6.3f}x")
    for name, ratio in comparison.items():
        print(f"{name}: this checkout / baseline = {ratio:.3f}x")


if __name__ == "__main__":
    sys.exit(main())
