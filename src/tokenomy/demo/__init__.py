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
from tokenomy.ledger.store import open_store

STEPS: tuple[ModuleType, ...] = (workload, gateway, routing, caching, batch, bench, planning, analytics, review)


def run_demo(workdir: str | Path = ".tokenomy/demo", console: Console | None = None) -> None:
    """Run every available playbook step against a fresh demo ledger."""
    if console is None:
        from tokenomy.commands._common import console as cli_console

        console = cli_console
    workdir = Path(workdir)
    if workdir.exists():
        shutil.rmtree(workdir)
    workdir.mkdir(parents=True)
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
