"""`tokenomy demo`: the whole playbook on the embedded local model."""

from __future__ import annotations

import typer


def register(app: typer.Typer) -> None:
    app.command("demo")(demo)


def demo(
    workdir: str = typer.Option(
        ".tokenomy/demo",
        "--workdir",
        help="Where the demo ledger and outputs go: a new or empty folder, or one an earlier demo made "
        "(recreated on each run).",
    ),
) -> None:
    """Run a mixed support workload on the local model and every lever of the playbook."""
    from tokenomy.demo import run_demo

    run_demo(workdir)
