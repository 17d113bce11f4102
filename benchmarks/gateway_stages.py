"""Where a chat completion's instructions go: each stage of the gateway's path counted by callgrind, per request.

`gateway_instructions.py` counts a whole request; this splits the part that depends on the body into the stages a
`POST /v1/chat/completions` to an OpenAI-format model goes through, each called on its own N times:

    edge_parse       hygiene.checked_body: the edge's strict JSON parse (orjson) and its big-integer check
    validate         schemas.from_parsed: the pydantic request from the parsed value
    ingress          openai_ingress.to_chat_request: the content model (blocks, tools, options)
    refusal          Gateway.refusal: what the route's model cannot take, asked before any budget
    wire_body        openai_wire.request_body: the upstream's body
    wire_dumps       exact_json.dumps of that body
    fingerprints     ledger.fingerprints: the prompt and prefix hashes of the ledger row
    content_counts   ledger.events.content_counts: the row's image and document counts
    estimate         placement.estimate_input_tokens: the prompt's estimate a rate limit reserves

for the text-only body and the tools+image one (`gateway_overhead.BODY`, `RICH_BODY`), and prints their difference:
what the tools+image request's extra cost is made of. Each body runs in its own process under
`valgrind --tool=callgrind`, collecting only inside the stage loops (`itertools.starmap`'s C iterator drives them, so
`--toggle-collect=starmap_next` switches collection on and off) and dumping after each stage (`os.getppid` marks
the end of one: `--dump-before=os_getppid`). The counts are deterministic, like gateway_instructions'; what a stage
reads from the sockets, the ledger's threads and the answer's path are not in them.

    .venv/bin/python benchmarks/gateway_stages.py [--calls 50] [--json]
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import re
import shutil
import subprocess
import sys
import tempfile
from collections import deque
from itertools import repeat, starmap
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from gateway_overhead import BODY, PRICE_AS, RICH_BODY

ROOT = Path(__file__).resolve().parent.parent
BODIES = {"text": BODY, "tools+image": RICH_BODY}
WARMUP = 20  # calls of each stage before counting: its caches (tools read, payloads checked) settle


def child(name: str, calls: int) -> None:
    """Under callgrind: every stage `calls` times for one body, a dump after each; the stage names on stdout."""
    from tokenomy.caching.placement import estimate_input_tokens
    from tokenomy.config import load_config
    from tokenomy.gateway.exact_json import dumps
    from tokenomy.gateway.hygiene import checked_body
    from tokenomy.gateway.openai_ingress import to_chat_request
    from tokenomy.gateway.schemas import from_parsed
    from tokenomy.gateway.state import Gateway
    from tokenomy.ledger.events import content_counts
    from tokenomy.ledger.fingerprints import fingerprints
    from tokenomy.providers.openai_wire import request_body

    work = Path(tempfile.mkdtemp(prefix="tokenomy-stages-"))
    config = work / "tokenomy.yaml"
    config.write_text(
        json.dumps(
            {
                "auth": False,
                "models": {
                    "bench-model": {
                        "provider": "openai",
                        "model": "bench-model",
                        "base_url": "http://127.0.0.1:9/v1",
                        "api_key_env": "BENCH_KEY",
                        "price_as": PRICE_AS,
                    }
                },
            }
        )
    )
    os.environ["BENCH_KEY"] = "sk-bench"

    async def run() -> list[str]:
        gw = Gateway(load_config(str(config)), str(work / "ledger.duckdb"), 1)
        await gw.start()
        route = gw.route_for("bench-model")
        raw = json.dumps(BODIES[name]).encode()
        value = checked_body(raw)[0]
        body = from_parsed(value)
        call = to_chat_request(body, {}, None, route)
        wire = request_body(call)
        stages = {
            "edge_parse": lambda: checked_body(raw),
            "validate": lambda: from_parsed(value),
            "ingress": lambda: to_chat_request(body, {}, None, route),
            "refusal": lambda: gw.refusal(route, call, sent_as_is=True),
            "wire_body": lambda: request_body(call),
            "wire_dumps": lambda: dumps(wire),
            "fingerprints": lambda: fingerprints(call),
            "content_counts": lambda: content_counts(call),
            "estimate": lambda: estimate_input_tokens(call),
        }
        os.getppid()  # the first dump: what ran before the first stage (nothing is collected outside the loops)
        for stage in stages.values():
            for _ in range(WARMUP):
                stage()
            deque(starmap(stage, repeat((), calls)), 0)
            os.getppid()
        return list(stages)

    try:
        print(json.dumps(asyncio.run(run())))
    finally:
        shutil.rmtree(work, ignore_errors=True)


def measure(name: str, calls: int, work: Path) -> dict[str, float]:
    """Instructions per call of each stage for one body."""
    out = work / name.replace("+", "-")
    out.mkdir()
    env = {**os.environ, "PYTHONPATH": str(ROOT / "src")}
    done = subprocess.run(
        [
            "valgrind",
            "--tool=callgrind",
            "--collect-atstart=no",
            "--toggle-collect=starmap_next",
            "--dump-before=os_getppid",
            f"--callgrind-out-file={out}/callgrind.out",
            sys.executable,
            __file__,
            "--child",
            name,
            "--calls",
            str(calls),
        ],
        capture_output=True,
        text=True,
        env=env,
        timeout=1800,
        check=False,
    )
    if done.returncode != 0:
        raise RuntimeError(f"{name}: the stages exited with {done.returncode}: {done.stderr.strip()[-500:]}")
    names = json.loads(done.stdout.strip().splitlines()[-1])
    counts = {}
    for index, stage in enumerate(names, start=2):  # dump 1 is what ran before the first stage
        text = (out / f"callgrind.out.{index}").read_text(errors="replace")
        found = re.search(r"^(?:summary|totals):\s*(\d+)", text, re.MULTILINE)
        counts[stage] = int(found.group(1)) / calls if found else 0.0
    return counts


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--calls", type=int, default=50, help="calls counted per stage (default 50)")
    parser.add_argument("--json", action="store_true", help="print the results as JSON")
    parser.add_argument("--child", choices=list(BODIES), help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        child(args.child, args.calls)
        return 0
    if not shutil.which("valgrind"):
        print("valgrind is not installed (apt-get install valgrind)", file=sys.stderr)
        return 2
    if args.calls < 1:
        print("--calls: at least 1", file=sys.stderr)
        return 2
    work = Path(tempfile.mkdtemp(prefix="tokenomy-stages-"))
    try:
        results = {name: measure(name, args.calls, work) for name in BODIES}
    finally:
        shutil.rmtree(work, ignore_errors=True)
    text, rich = results["text"], results["tools+image"]
    if args.json:
        print(json.dumps({stage: {"text": round(text[stage]), "tools_image": round(rich[stage])} for stage in text}))
        return 0
    print(f"{'stage':<16} {'text':>10} {'tools+image':>12} {'difference':>11}   (instructions a call)")
    for stage in text:
        print(f"{stage:<16} {text[stage]:>10,.0f} {rich[stage]:>12,.0f} {rich[stage] - text[stage]:>11,.0f}")
    total = {name: sum(figures.values()) for name, figures in results.items()}
    print(
        f"{'all':<16} {total['text']:>10,.0f} {total['tools+image']:>12,.0f} "
        f"{total['tools+image'] - total['text']:>11,.0f}"
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
