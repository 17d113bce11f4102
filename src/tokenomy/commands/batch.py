"""`tokenomy batch`: validate, submit, follow, collect, cancel and resume batch jobs; plan for a deadline.

The group only: its commands are in `batch_submit` (validate, submit, resume), `batch_follow` (status, list, wait,
results, cancel) and `batch_plan` (plan), added here in the order `--help` lists them."""

from __future__ import annotations

import typer

from tokenomy.commands.batch_follow import register_follow
from tokenomy.commands.batch_plan import register_plan
from tokenomy.commands.batch_submit import register_resume, register_submit


def register(app: typer.Typer) -> None:
    """Add the `batch` command group."""
    batch = typer.Typer(
        help="Batch inference: validate, split and run JSONL jobs at batch prices.", no_args_is_help=True
    )
    app.add_typer(batch, name="batch")
    register_submit(batch)  # validate, submit
    register_follow(batch)  # status, list, wait, results, cancel
    register_resume(batch)
    register_plan(batch)
