"""Gateway overhead: requests/s and p50/p99 latency direct, through `tokenomy serve`, and through LiteLLM.

An instant OpenAI-format upstream runs on loopback; `wrk` POSTs the same chat completion at
concurrency 1 and 32 against (a) the upstream itself, (b) `tokenomy serve` (ledger and metrics on,
one worker; also with auth on, once with a plain budgeted key and once with a key in a budgeted team)
and (c) the LiteLLM proxy (one worker, installed into its own venv under
.tokenomy/bench-venvs/litellm, never the project venv). Prints a table and the ratios against the
targets (issue 17): added p50 < 0.5 ms at c=1; at c=32 >= 25x LiteLLM's requests/s, >= 20% of what the
upstream alone serves and p99 < 25 ms; `--workers 2` >= 1.7x one worker's requests/s; a team key within
10% of a plain key's requests/s (the two measured alternately, medians of 5 rounds each). A second
request (two tools, an earlier tool call and its result, an image part) is measured direct and through
Tokenomy, alternating with the text-only one (medians of 5 rounds each, so the VM's drift cancels out): its
overhead should stay within 10% of the text-only request's.

    .venv/bin/python benchmarks/gateway_overhead.py [--duration 5] [--no-litellm] [--json] [--flame FILE.svg]

`--flame` also records the one-worker gateway with py-spy during an extra run at concurrency 32 (the
tools+image request) and writes the flame graph (benchmarks/artifacts/gateway-flame.svg is one such run).
"""

from __future__ import annotations

import argparse
import base64
import contextlib
import json
import os
import re
import secrets
import shutil
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
VENV = ROOT / ".tokenomy" / "bench-venvs" / "litellm"
BODY = {"model": "bench-model", "messages": [{"role": "user", "content": "Say hi in one word."}], "max_tokens": 8}
# An agent turn with vision: two tools, the assistant's earlier call and its result, a 4 KB image as a data URL.
RICH_BODY = {
    "model": "bench-model",
    "max_tokens": 8,
    "messages": [
        {
            "role": "user",
            "content": [
                {"type": "text", "text": "What is in the picture, and the weather there?"},
                {
                    "type": "image_url",
                    "image_url": {
                        "url": "data:image/png;base64,"
                        + base64.b64encode(b"\x89PNG\r\n\x1a\n" + bytes(range(256)) * 16).decode(),
                        "detail": "low",
                    },
                },
            ],
        },
        {
            "role": "assistant",
            "content": None,
            "tool_calls": [
                {
                    "id": "call_1",
                    "type": "function",
                    "function": {"name": "get_weather", "arguments": '{"city": "Paris"}'},
                }
            ],
        },
        {"role": "tool", "tool_call_id": "call_1", "content": "18C sunny"},
    ],
    "tools": [
        {
            "type": "function",
            "function": {
                "name": name,
                "description": f"{name} for a city",
                "parameters": {"type": "object", "properties": {"city": {"type": "string"}}, "required": ["city"]},
            },
        }
        for name in ("get_weather", "get_time")
    ],
}
RICH = "+tools/image"  # suffix of the targets measured with RICH_BODY
PAIRED_TEXT = "+text (paired)"  # the text-only runs alternated with them
PAIRED = 5  # rounds of text then tools+image (a median of three still moved with the VM's noise)
MASTER_KEY = "sk-" + secrets.token_hex(32)  # LiteLLM refuses to start without a strong master key
PRICE_AS = "anthropic.claude-3-haiku-20240307-v1:0"  # priced like a real model so the ledger does real work


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def wait_ready(url: str, proc: subprocess.Popen, timeout: float, log: Path | None = None) -> None:
    """Wait until a POST to `url` answers 200 (the server is fully up, model name resolves)."""
    wait_ready_with(url, MASTER_KEY, proc, timeout, log)


def wait_ready_with(url: str, bearer: str, proc: subprocess.Popen, timeout: float, log: Path | None = None) -> None:
    import httpx

    deadline = time.monotonic() + timeout
    last = ""
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            tail = log.read_text(errors="replace").strip().splitlines()[-3:] if log and log.exists() else []
            raise RuntimeError(f"{Path(proc.args[0]).name} exited with {proc.returncode}: {last} {' | '.join(tail)}")
        try:
            r = httpx.post(url, json=BODY, headers={"authorization": f"Bearer {bearer}"}, timeout=5)
            if r.status_code == 200:
                return
            last = f"{r.status_code} {r.text[:200]}"
        except httpx.HTTPError as exc:
            last = str(exc)
        time.sleep(0.25)
    raise RuntimeError(f"{url} not ready after {timeout}s: {last}")


def post_script(path: Path, bearer: str, body: dict = BODY) -> Path:
    path.write_text(
        'wrk.method = "POST"\nwrk.headers["Content-Type"] = "application/json"\n'
        f'wrk.headers["Authorization"] = "Bearer {bearer}"\n'
        f"wrk.body = {json.dumps(json.dumps(body))}\n"
    )
    return path


def create_key(tokenomy: Path, ledger: Path, *extra: str) -> str:
    """A virtual key with a budget far above what a run spends (budgets are checked, never reached)."""
    out = subprocess.run(
        [str(tokenomy), "keys", "create", "--budget-usd", "100000", "--ledger", str(ledger), "--json", *extra],
        capture_output=True,
        text=True,
        timeout=60,
        check=True,
    ).stdout
    return json.loads(out)["key"]


def cpu_seconds(pids: list[int] | None) -> dict[int, float]:
    """User + system CPU time of some processes and everything they started (Linux /proc), by pid: the gateway's
    ledger writer process works for it and is counted with it."""
    seconds: dict[int, float] = {}
    for pid in process_tree(pids or []):
        try:
            fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
            seconds[pid] = (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")
        except (OSError, ValueError, IndexError):
            pass
    return seconds


def child_pids(pid: int) -> list[int]:
    """The processes `pid` started from any of its threads (Linux /proc): uvicorn's workers under `--workers N`."""
    children: list[int] = []
    for task in Path(f"/proc/{pid}/task").glob("*"):
        with contextlib.suppress(OSError, ValueError):  # a thread that ended meanwhile
            children += [int(p) for p in (task / "children").read_text().split()]
    return children


def process_tree(pids: list[int]) -> list[int]:
    tree, todo = [], list(pids)
    while todo:
        pid = todo.pop()
        tree.append(pid)
        todo += child_pids(pid)
    return tree


def wrk(url: str, connections: int, duration: int, script: Path, pids: list[int] | None = None) -> dict:
    """Run wrk; return requests/s, p50 and p99 in ms, non-2xx count, and the server's CPU ms per request and
    cores used (CPU seconds per second of the run).

    CPU per request is what a shared machine's load cannot distort much (requests/s and latency it can)."""
    threads = 1 if connections == 1 else 2
    cpu_before, started = cpu_seconds(pids), time.monotonic()
    out = subprocess.run(
        ["wrk", f"-t{threads}", f"-c{connections}", f"-d{duration}s", "--latency", "-s", str(script), url],
        capture_output=True,
        text=True,
        timeout=duration + 60,
    ).stdout

    def ms(label: str) -> float:
        m = re.search(rf"^\s*{label}%\s+([\d.]+)(us|ms|s)\s*$", out, re.M)
        if not m:
            return float("nan")
        return float(m.group(1)) * {"us": 0.001, "ms": 1.0, "s": 1000.0}[m.group(2)]

    cpu_after, elapsed = cpu_seconds(pids), time.monotonic() - started
    cpu = sum(after - cpu_before.get(pid, 0.0) for pid, after in cpu_after.items())  # a process started meanwhile: all
    done = re.search(r"(\d+) requests in", out)
    cpu_ms = cpu * 1000 / int(done.group(1)) if pids and done and int(done.group(1)) else float("nan")
    rps = re.search(r"Requests/sec:\s+([\d.]+)", out)
    bad = re.search(r"Non-2xx or 3xx responses:\s+(\d+)", out)
    errors = re.search(r"Socket errors:.*", out)
    return {
        "rps": float(rps.group(1)) if rps else 0.0,
        "p50_ms": ms("50"),
        "p99_ms": ms("99"),
        "non_2xx": int(bad.group(1)) if bad else 0,
        "socket_errors": errors.group(0) if errors else "",
        "cpu_ms_per_req": cpu_ms,
        "cores": cpu / elapsed if pids else float("nan"),
    }


def ensure_litellm() -> tuple[Path | None, str]:
    """LiteLLM proxy in its own venv (created on first use); (path to `litellm`, why not)."""
    exe = VENV / "bin" / "litellm"
    if exe.exists():
        return exe, ""
    print(f"installing litellm[proxy] into {VENV} (first run only) ...", flush=True)
    VENV.parent.mkdir(parents=True, exist_ok=True)
    try:
        subprocess.run([sys.executable, "-m", "venv", str(VENV)], check=True, capture_output=True, timeout=300)
        pip = subprocess.run(
            [str(VENV / "bin" / "pip"), "install", "-q", "litellm[proxy]"], capture_output=True, text=True, timeout=1800
        )
    except (subprocess.SubprocessError, OSError) as exc:
        return None, f"could not create the venv: {exc}"
    if pip.returncode != 0 or not exe.exists():
        return None, "pip install litellm[proxy] failed: " + (pip.stderr.strip().splitlines() or ["?"])[-1]
    return exe, ""


def start(cmd: list[str], log: Path, env: dict | None = None, cwd: Path | None = None) -> subprocess.Popen:
    """Start a server with its output in a log file (a pipe nobody reads would stall it under load)."""
    with log.open("wb") as out:
        return subprocess.Popen(cmd, env=env, cwd=cwd, stdout=out, stderr=subprocess.STDOUT)


def stop(proc: subprocess.Popen) -> None:
    if proc.poll() is None:
        proc.terminate()
        try:
            proc.wait(30)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait(10)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--duration", type=int, default=5, help="seconds per wrk run")
    parser.add_argument("--no-litellm", action="store_true", help="skip the LiteLLM proxy")
    parser.add_argument("--json", action="store_true", help="print the results as JSON")
    parser.add_argument("--flame", type=Path, help="write a py-spy flame graph of the gateway to this SVG file")
    args = parser.parse_args()
    if not shutil.which("wrk"):
        print("wrk is not installed (apt-get install wrk)", file=sys.stderr)
        return 2
    tokenomy = Path(sys.executable).with_name("tokenomy")
    work = Path(tempfile.mkdtemp(prefix="tokenomy-bench-"))
    script = post_script(work / "post.lua", MASTER_KEY)
    rich_script = post_script(work / "rich.lua", MASTER_KEY, RICH_BODY)
    scripts: dict[str, Path] = {}
    pids: dict[str, list[int]] = {}
    procs: list[subprocess.Popen] = []
    targets: dict[str, str] = {}
    notes: list[str] = []
    env = {**os.environ, "BENCH_KEY": "sk-bench"}
    try:
        up_port = free_port()
        upstream = f"http://127.0.0.1:{up_port}/v1"
        procs.append(
            start(
                [sys.executable, "-m", "tokenomy.emulate.instant_openai", "--port", str(up_port)], work / "upstream.log"
            )
        )
        wait_ready(upstream + "/chat/completions", procs[-1], 30, work / "upstream.log")
        targets["direct"] = upstream + "/chat/completions"

        gw_port = free_port()
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
        procs.append(
            start(
                [
                    str(tokenomy),
                    "serve",
                    "--config",
                    str(config),
                    "--port",
                    str(gw_port),
                    "--ledger",
                    str(work / "ledger.duckdb"),
                ],
                work / "tokenomy.log",
                env=env,
            )
        )
        wait_ready(f"http://127.0.0.1:{gw_port}/v1/chat/completions", procs[-1], 60, work / "tokenomy.log")
        targets["tokenomy"] = f"http://127.0.0.1:{gw_port}/v1/chat/completions"
        pids["tokenomy"] = [procs[-1].pid]

        # The same gateway with two worker processes; their CPU is the workers' (children of the supervisor).
        workers_port = free_port()
        procs.append(
            start(
                [
                    str(tokenomy),
                    "serve",
                    "--config",
                    str(config),
                    "--port",
                    str(workers_port),
                    "--ledger",
                    str(work / "workers.duckdb"),
                    "--workers",
                    "2",
                ],
                work / "workers.log",
                env=env,
            )
        )
        wait_ready(f"http://127.0.0.1:{workers_port}/v1/chat/completions", procs[-1], 90, work / "workers.log")
        targets["tokenomy-2w"] = f"http://127.0.0.1:{workers_port}/v1/chat/completions"
        pids["tokenomy-2w"] = child_pids(procs[-1].pid)

        # Auth on: a plain budgeted key, and a key in a budgeted team (two budgets checked per request).
        keyed_ledger = work / "keyed.duckdb"
        plain = create_key(tokenomy, keyed_ledger)
        team = create_key(tokenomy, keyed_ledger, "--team", "bench")
        subprocess.run(
            [str(tokenomy), "keys", "team-budget", "bench", "--budget-usd", "100000", "--ledger", str(keyed_ledger)],
            capture_output=True,
            timeout=60,
            check=True,
        )
        keyed_port = free_port()
        keyed_config = work / "keyed.yaml"
        keyed_config.write_text(json.dumps({**json.loads(config.read_text()), "auth": True}))
        procs.append(
            start(
                [
                    str(tokenomy),
                    "serve",
                    "--config",
                    str(keyed_config),
                    "--port",
                    str(keyed_port),
                    "--ledger",
                    str(keyed_ledger),
                ],
                work / "keyed.log",
                env=env,
            )
        )
        keyed_url = f"http://127.0.0.1:{keyed_port}/v1/chat/completions"
        wait_ready_with(keyed_url, plain, procs[-1], 60, work / "keyed.log")
        targets["tokenomy-key"] = targets["tokenomy-team"] = keyed_url
        pids["tokenomy-key"] = pids["tokenomy-team"] = [procs[-1].pid]
        scripts["tokenomy-key"] = post_script(work / "plain.lua", plain)
        scripts["tokenomy-team"] = post_script(work / "team.lua", team)

        if not args.no_litellm:
            exe, why = ensure_litellm()
            if exe is None:
                notes.append(f"LiteLLM proxy not measured: {why}")
            else:
                ll_port = free_port()
                ll_config = work / "litellm.yaml"
                ll_config.write_text(
                    json.dumps(
                        {
                            "model_list": [
                                {
                                    "model_name": "bench-model",
                                    "litellm_params": {
                                        "model": "openai/bench-model",
                                        "api_base": upstream,
                                        "api_key": "sk-bench",
                                    },
                                }
                            ],
                            "litellm_settings": {"telemetry": False},
                        }
                    )
                )
                ll_env = {
                    **env,
                    "LITELLM_MASTER_KEY": MASTER_KEY,
                    "LITELLM_LOG": "ERROR",
                    "LITELLM_TELEMETRY": "False",
                    "DISABLE_ADMIN_UI": "True",
                    "PATH": f"{exe.parent}:{env.get('PATH', '')}",
                }
                procs.append(
                    start(
                        [
                            str(exe),
                            "--config",
                            str(ll_config),
                            "--port",
                            str(ll_port),
                            "--host",
                            "127.0.0.1",
                            "--num_workers",
                            "1",
                        ],
                        work / "litellm.log",
                        env=ll_env,
                        cwd=work,
                    )
                )
                try:
                    wait_ready(f"http://127.0.0.1:{ll_port}/v1/chat/completions", procs[-1], 180, work / "litellm.log")
                    targets["litellm"] = f"http://127.0.0.1:{ll_port}/v1/chat/completions"
                except RuntimeError as exc:
                    notes.append(f"LiteLLM proxy did not start: {exc}")

        results: dict[str, dict[int, dict]] = {}
        keyed = ("tokenomy-key", "tokenomy-team")
        for name, url in targets.items():
            lua = scripts.get(name, script)
            wrk(url, 4, 1, lua)  # warm up connections, caches and JIT-free paths alike
            if name not in keyed:
                results[name] = {c: wrk(url, c, args.duration, lua, pids.get(name)) for c in (1, 32)}
                print(f"measured {name}", file=sys.stderr, flush=True)
        # The plain and the team key share one gateway and its ledger, which grows as they run: measured one after
        # the other, the second ran on a bigger ledger and a drifted VM. Alternated, the medians compare like runs.
        if all(name in targets for name in keyed):
            by_key: dict[str, dict[int, list[dict]]] = {name: {1: [], 32: []} for name in keyed}
            for _ in range(PAIRED):
                for c in (1, 32):
                    for name in keyed:
                        run = wrk(targets[name], c, max(2, args.duration // 2), scripts[name], pids.get(name))
                        by_key[name][c].append(run)
            for name in keyed:
                results[name] = {c: median_run(by_key[name][c]) for c in (1, 32)}
            print("measured tokenomy-key and tokenomy-team", file=sys.stderr, flush=True)
        # The same upstream and gateway with tools and an image, against text-only measured alternately with it
        # (this VM's speed drifts by tens of percent over minutes; a comparison of two runs minutes apart
        # measured the drift): PAIRED rounds of text then rich, the median of each.
        for name in ("direct", "tokenomy"):
            wrk(targets[name], 4, 1, rich_script)
            rounds: dict[str, dict[int, list[dict]]] = {"text": {1: [], 32: []}, "rich": {1: [], 32: []}}
            for _ in range(PAIRED):
                for c in (1, 32):
                    for kind, lua in (("text", script), ("rich", rich_script)):
                        rounds[kind][c].append(wrk(targets[name], c, max(2, args.duration // 2), lua, pids.get(name)))
            results[name + RICH] = {c: median_run(rounds["rich"][c]) for c in (1, 32)}
            results[name + PAIRED_TEXT] = {c: median_run(rounds["text"][c]) for c in (1, 32)}
            print(f"measured {name}{RICH}", file=sys.stderr, flush=True)
        if args.flame:
            notes.append(flame(pids["tokenomy"][0], targets["tokenomy"], rich_script, args.duration, args.flame))
    finally:
        for proc in reversed(procs):
            stop(proc)

    verdict = verdicts(results)
    if args.json:
        print(json.dumps({"results": results, "verdicts": verdict, "notes": notes}, indent=2))
        return 0
    report(results, verdict, notes)
    return 0


def median_run(runs: list[dict]) -> dict:
    """The run with the median requests/s (its latencies and CPU belong together)."""
    return sorted(runs, key=lambda r: r["rps"])[len(runs) // 2]


def flame(pid: int, url: str, script: Path, duration: int, out: Path) -> str:
    """Record the gateway with py-spy while wrk loads it; a note saying where the graph is (or why not)."""
    spy = shutil.which("py-spy") or str(Path(sys.executable).with_name("py-spy"))
    out.parent.mkdir(parents=True, exist_ok=True)
    recorder = subprocess.Popen(
        [spy, "record", "-p", str(pid), "-d", str(duration + 1), "-r", "250", "-o", str(out)],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        text=True,
    )
    time.sleep(0.5)
    wrk(url, 32, duration, script)
    try:
        _, err = recorder.communicate(timeout=duration + 60)
    except subprocess.TimeoutExpired:
        recorder.kill()
        return "py-spy did not finish; no flame graph"
    return f"flame graph: {out}" if recorder.returncode == 0 else f"py-spy failed: {err.strip()[-200:]}"


def verdicts(results: dict) -> list[dict]:
    """Ratios against the targets (only those the measured targets allow)."""
    out = []
    direct, gw, ll = results.get("direct"), results.get("tokenomy"), results.get("litellm")
    plain, team = results.get("tokenomy-key"), results.get("tokenomy-team")
    if plain and team:
        ratio = team[32]["rps"] / plain[32]["rps"] if plain[32]["rps"] else 0.0
        out.append(
            {"check": "team key rps at c=32 within 10% of a plain key", "value": f"{ratio:.2f}x", "ok": ratio >= 0.9}
        )
        cpu = team[32]["cpu_ms_per_req"] / plain[32]["cpu_ms_per_req"]
        out.append(
            {
                "check": "team key CPU per request at c=32 within 10% of a plain key (robust to machine load)",
                "value": f"{cpu:.2f}x",
                "ok": cpu <= 1.1,
            }
        )
    if direct and gw:
        added = gw[1]["p50_ms"] - direct[1]["p50_ms"]
        out.append({"check": "added p50 at c=1 < 0.5 ms", "value": f"{added:.3f} ms", "ok": added < 0.5})
        share = gw[32]["rps"] / direct[32]["rps"] if direct[32]["rps"] else 0.0
        out.append({"check": "rps at c=32 >= 20% of the upstream alone", "value": f"{share:.1%}", "ok": share >= 0.2})
        out.append({"check": "p99 at c=32 < 25 ms", "value": f"{gw[32]['p99_ms']:.2f} ms", "ok": gw[32]["p99_ms"] < 25})
    two = results.get("tokenomy-2w")
    if gw and two:
        ratio = two[32]["rps"] / gw[32]["rps"] if gw[32]["rps"] else 0.0
        # Three places: 1.698 printed as "1.70x" beside "NOT met" read as a contradiction.
        out.append(
            {"check": "--workers 2 rps at c=32 >= 1.7x one worker", "value": f"{ratio:.3f}x", "ok": ratio >= 1.7}
        )
        # What bounds that ratio here: wrk and the upstream run on the same cores as the workers.
        out.append(
            {
                "check": "--workers 2 vs one worker at c=32: cores used, CPU per request (for reference)",
                "value": f"{two[32]['cores']:.2f} vs {gw[32]['cores']:.2f} of {os.cpu_count()} cores; "
                f"{two[32]['cpu_ms_per_req']:.3f} vs {gw[32]['cpu_ms_per_req']:.3f} ms",
                "ok": None,
            }
        )
    rich_direct, rich_gw = results.get("direct" + RICH), results.get("tokenomy" + RICH)
    # Against the text-only runs made alternately with them (see main): drift cancels out.
    text_direct = results.get("direct" + PAIRED_TEXT, direct)
    text_gw = results.get("tokenomy" + PAIRED_TEXT, gw)
    if text_direct and text_gw and rich_direct and rich_gw:
        text_added = text_gw[1]["p50_ms"] - text_direct[1]["p50_ms"]
        rich_added = rich_gw[1]["p50_ms"] - rich_direct[1]["p50_ms"]
        out.append(
            {
                "check": "added p50 at c=1 with tools+image within 10% of text-only",
                "value": f"{rich_added:.3f} vs {text_added:.3f} ms",
                "ok": rich_added <= text_added * 1.1,
            }
        )
        ratio = rich_gw[32]["rps"] / text_gw[32]["rps"] if text_gw[32]["rps"] else 0.0
        out.append(
            {
                "check": "rps at c=32 with tools+image within 10% of text-only",
                "value": f"{rich_gw[32]['rps']:.0f} vs {text_gw[32]['rps']:.0f} ({ratio:.0%})",
                "ok": ratio >= 0.9,
            }
        )
        cpu = rich_gw[32]["cpu_ms_per_req"] / text_gw[32]["cpu_ms_per_req"]
        out.append(
            {
                "check": "gateway CPU per request at c=32 with tools+image within 10% of text-only (robust to "
                "machine load)",
                "value": f"{cpu:.2f}x",
                "ok": cpu <= 1.1,
            }
        )
    if gw and ll:
        ratio = gw[32]["rps"] / ll[32]["rps"] if ll[32]["rps"] else float("inf")
        out.append({"check": "rps at c=32 >= 25x LiteLLM", "value": f"{ratio:.1f}x", "ok": ratio >= 25})
        out.append(
            {
                "check": "p99 at c=32 lower than LiteLLM",
                "value": f"{gw[32]['p99_ms']:.2f} vs {ll[32]['p99_ms']:.2f} ms",
                "ok": gw[32]["p99_ms"] < ll[32]["p99_ms"],
            }
        )
        if ll[1]["p50_ms"] and direct:
            out.append(
                {
                    "check": "LiteLLM added p50 at c=1 (for reference)",
                    "value": f"{ll[1]['p50_ms'] - direct[1]['p50_ms']:.3f} ms",
                    "ok": None,
                }
            )
    return out


def report(results: dict, verdict: list[dict], notes: list[str]) -> None:
    from rich.console import Console
    from rich.table import Table

    console = Console()
    table = Table(title="Gateway overhead (instant upstream on loopback, wrk)")
    for col in ("target", "c", "req/s", "p50 ms", "p99 ms", "non-2xx", "CPU ms/req", "cores"):
        table.add_column(col, justify="right" if col != "target" else "left")
    for name, by_c in results.items():
        for c, r in by_c.items():
            table.add_row(
                name,
                str(c),
                f"{r['rps']:.0f}",
                f"{r['p50_ms']:.3f}",
                f"{r['p99_ms']:.3f}",
                str(r["non_2xx"]),
                f"{r.get('cpu_ms_per_req', float('nan')):.3f}",
                f"{r.get('cores', float('nan')):.2f}",
            )
    console.print(table)
    for v in verdict:
        mark = "" if v["ok"] is None else ("[green]met[/green]" if v["ok"] else "[red]NOT met[/red]")
        console.print(f"{v['check']}: {v['value']} {mark}")
    for note in notes:
        console.print(f"[yellow]{note}[/yellow]")


if __name__ == "__main__":
    sys.exit(main())
