"""`make demo`: the playbook running on the embedded local model, step by step.

Each step is a module of this package with a `TITLE` and `run(ctx)`; `STEPS` lists them in playbook
order. The demo sits above the domain packages (it uses them, and the command layer's renderers);
no domain package imports it.
"""

from __future__ import annotations

import shutil
import time
from pathlib import Path
from types import ModuleType

from rich.console import Console

from tokenomy.client import Tokenomy
from tokenomy.demo import analytics, batch, bench, caching, gateway, planning, review, routing, workload
from tokenomy.demo.context import DemoContext
from tokenomy.errors import UsageError
from tokenomy.ledger.store import open_store

STEPS: tuple[ModuleType, ...] = (workload, gateway, routing, caching, batch, bench, planning, analytics, review)
# Written into each workdir the demo makes: the one sign that a folder is the demo's own to delete and remake.
MARKER = ".tokenomy-demo"
# What the demo writes: a folder holding only these (its two ledgers and bench results among them) was made by a demo
# from before the marker.
OUTPUTS = ("ledger.duckdb", "gateway.duckdb", "batch.jsonl", "batch-local.jsonl", "batch-local.out.jsonl", "bench",
           "report.html", "review.html")  # fmt: skip


def _made_by_demo(workdir: Path) -> bool:
    if (workdir / MARKER).is_file():
        return True
    # a DuckDB file's write-ahead log and journal sit beside it (ledger.duckdb.wal, gateway.duckdb.journal)
    names = {entry.name.partition(".duckdb")[0] + ".duckdb" if ".duckdb" in entry.name else entry.name
             for entry in workdir.iterdir()}  # fmt: skip
    return {"ledger.duckdb", "gateway.duckdb", "bench"} <= names <= set(OUTPUTS)  # a lone ledger may be a real one


def run_demo(workdir: str | Path = ".tokenomy/demo", console: Console | None = None) -> None:
    """Run every available playbook step against a fresh demo ledger."""
    if console is None:
        from tokenomy.commands._output import console as cli_console

        console = cli_console
    workdir = Path(workdir)
    if workdir.is_dir() and any(workdir.iterdir()) and not _made_by_demo(workdir):
        # `--workdir .` (or '', a home or project folder, `.tokenomy` with the real ledger) was deleted whole.
        raise UsageError(
            f"--workdir {workdir}: holds files the demo did not make (it has no {MARKER}), and the demo deletes "
            "its folder on each run; give a new or empty folder"
        )
    if workdir.exists():
        shutil.rmtree(workdir)
    workdir.mkdir(parents=True)
    (workdir / MARKER).write_text("made by `tokenomy demo`, which deletes and remakes this folder on each run\n")
    store = open_store(workdir / "ledger.duckdb")
    started = time.perf_counter()
    with Tokenomy(store) as client:
        ctx = DemoContext(client=client, store=store, console=console, workdir=workdir)
        for number, step in enumerate(STEPS, 1):
            console.rule(f"[bold]{number}. {step.TITLE}")
            step.run(ctx)
            client.flush()
    console.rule()
    console.print(
        f"Demo finished in {time.perf_counter() - started:.0f} s. Ledger: {workdir / 'ledger.duckdb'} "
        f"(try: tokenomy ledger stats --ledger {workdir / 'ledger.duckdb'})"
    )
