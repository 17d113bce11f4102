"""The `tokenomy` command. Thin: parse arguments, call the packages, print tables or JSON.

Each command group lives in `tokenomy.commands.<name>` and exposes `register(app)`.
"""

from __future__ import annotations

import importlib
import sys

import typer

from tokenomy.errors import TokenomyError

app = typer.Typer(
    name="tokenomy",
    help="Cut the cost of LLM workloads: route, cache, batch, benchmark, plan and report.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
)



def _version(value: bool) -> None:
    if value:
        from importlib.metadata import version

        typer.echo(f"tokenomy {version('tokenomy')}")
        raise typer.Exit()


@app.callback()
def _root(_version: bool = typer.Option(False, "--version", callback=_version, is_eager=True,
                                        help="Print the installed version and exit.")) -> None:
    """Cut the cost of LLM workloads: route, cache, batch, benchmark, plan and report."""


COMMAND_MODULES = ("core", "ledger", "emulate", "serve", "keys", "route", "batch", "bench", "plan", "report",
                   "alerts", "review", "export", "imports", "demo")

for _name in COMMAND_MODULES:
    importlib.import_module(f"tokenomy.commands.{_name}").register(app)


def main() -> None:
    """Entry point that turns Tokenomy errors into one readable line and exit code 2."""
    try:
        app()
    except TokenomyError as exc:
        print(f"error: {exc}", file=sys.stderr)
        sys.exit(2)
    except OSError as exc:
        # A file named on the command line that cannot be read or written: name it, no traceback.
        if exc.filename is not None:
            print(f"error: {exc.filename}: {exc.strerror or exc}; check the path and its permissions", file=sys.stderr)
        else:
            print(f"error: {exc}", file=sys.stderr)
        sys.exit(2)


if __name__ == "__main__":
    main()
