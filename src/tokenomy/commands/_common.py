"""Shared CLI helpers: the --ledger, --json and --prices options (and the --region and --backend of `batch validate`
and `batch plan`), opening the ledger a report reads, writing a file
whole or not at all. Option parsers are in `_options`, what commands print in `_output`."""

from __future__ import annotations

import errno
import functools
import os
import tempfile
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any, Optional, TextIO

import typer

# "\\[" keeps Rich from taking "[default: ...]" for markup and dropping it from --help.
LedgerOption = typer.Option(
    None,
    "--ledger",
    help="Ledger: a DuckDB path, a postgresql:// URL, or clickhouse://… / chdb:DIR (the clickhouse extra) "
    "\\[default: $TOKENOMY_LEDGER or .tokenomy/ledger.duckdb]",
)
# `serve` and `keys`: the ledger the gateway writes, which a config may name (`ledger:`).
ConfigLedgerOption = typer.Option(
    None,
    "--ledger",
    help="Ledger: a DuckDB path, a postgresql:// URL, or clickhouse://… / chdb:DIR (the clickhouse extra) "
    "\\[default: the config's ledger:, else $TOKENOMY_LEDGER or .tokenomy/ledger.duckdb]",
)
JsonOption = typer.Option(False, "--json", help="Print machine-readable JSON instead of a table.")
PricesOption = typer.Option(None, "--prices", help="YAML price file layered over the built-in catalog.")
# `batch validate` and `batch plan`: they price a file and check its lines as `batch submit` would send them.
BatchRegionOption = typer.Option(None, "--region", help="AWS region for prices (Bedrock).")


def batch_backend_option(as_for: str, effect: str) -> Any:
    """The --backend of a command that reads a file before `batch submit` (`as_for` the command that takes it too):
    optional, and `effect` says what it does to the lines submit would not send as they are."""
    return typer.Option(None, "--backend", help=f"The backend submit will use (as for {as_for}): {effect}")


def new_duckdb_file(ledger: Optional[str]) -> bool:
    """`ledger` names a DuckDB file that is not there yet, which opening it would make (its URL scheme checked)."""
    from tokenomy.ledger.store import duckdb_path, ledger_target

    path = duckdb_path(ledger_target(ledger))
    return path is not None and not path.exists()


def open_existing_ledger(ledger: Optional[str], must_exist: bool = True) -> Any:
    """Open the ledger a read-only command reports on; a DuckDB file that does not exist is an error, not a new
    empty ledger (a mistyped --ledger or the wrong directory otherwise reads as "nothing spent")."""
    from tokenomy.errors import ConfigError, TokenomyError
    from tokenomy.ledger.store import duckdb_path, foreign_tables, ledger_target, local_path, open_store

    target = ledger_target(ledger)  # the scheme checked before "no ledger at mysql://...": it is what is wrong
    path = local_path(target)  # a file (DuckDB) or a directory (embedded ClickHouse); None on a server
    if must_exist and path is not None and not path.exists():
        raise ConfigError(
            f"no ledger at {path}; pass --ledger (or set TOKENOMY_LEDGER) to the ledger your calls "
            "were recorded in, or record some first (`tokenomy demo`, `tokenomy chat`, `tokenomy serve`)"
        )
    duckdb_file = duckdb_path(target)
    if duckdb_file is not None:
        tables = foreign_tables(duckdb_file)
        if tables:  # opening it would add the ledger's tables to someone else's database
            listed = ", ".join(tables[:5]) + (", ..." if len(tables) > 5 else "")
            raise ConfigError(
                f"ledger {duckdb_file}: a DuckDB database but not a Tokenomy ledger (it holds {listed}); pass --ledger "
                "(or set TOKENOMY_LEDGER) to your ledger file, or a new file to start one"
            )
    try:  # a directory, a file that is not a ledger, or a database that is down: one line, not a traceback
        store = open_store(target, creates=not must_exist)
        store.query("SELECT COUNT(*) AS n FROM usage_events WHERE 1 = 0", [])  # must_exist=False: created above
    except TokenomyError:
        raise  # already says what is wrong and how to fix it
    except Exception as exc:
        shown = target.split("@")[-1] if "://" in target else target  # no password in the message
        first = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        raise ConfigError(
            f"ledger {shown}: cannot read it as a Tokenomy ledger ({first}); pass the DuckDB file or "
            "postgresql:// URL your calls were recorded in"
        ) from None
    return store


@contextmanager
def replacing(path: str | os.PathLike[str], newline: str | None = None) -> Iterator[TextIO]:
    """Write a text file whole or not at all: into a temporary file beside `path`, moved over `path` only when the
    block finishes. A bad option, an error or Ctrl-C part-way leaves the file that was there as it was (opening
    `path` for writing first emptied it) and no half-written file.

    A symlink is followed (the file it names is replaced, the link kept), and anything that is not a regular file
    (/dev/stdout, a device, a FIFO) is written in place: moving a file over it replaced the device or the link."""
    target = Path(path)
    if target.is_dir():
        raise IsADirectoryError(errno.EISDIR, os.strerror(errno.EISDIR), str(target))
    if target.exists() and not target.is_file():
        try:
            with open(target, "w", encoding="utf-8", newline=newline) as direct:
                yield direct
        except OSError as exc:  # e.g. /dev/full: "No space left on device", named
            if exc.filename is not None:
                raise
            raise type(exc)(exc.errno, exc.strerror, str(target)) from None
        return
    if target.is_symlink():
        target = target.resolve()
    try:
        handle, temporary = tempfile.mkstemp(prefix=f".{target.name}.", suffix=".part", dir=target.parent)
    except OSError as exc:  # no such directory, a file where the directory should be: name the path given
        raise type(exc)(exc.errno, exc.strerror, str(target)) from None
    try:
        with os.fdopen(handle, "w", encoding="utf-8", newline=newline) as out:
            yield out
        umask = os.umask(0)
        os.umask(umask)
        os.chmod(temporary, 0o666 & ~umask)  # as open() would have made it, not mkstemp's 0600
        os.replace(temporary, target)
    except BaseException:
        Path(temporary).unlink(missing_ok=True)
        raise


def takes_prices(command: Callable[..., Any]) -> Callable[..., Any]:
    """Mark a command that takes --prices: a missing price's error names it as a way to add one (elsewhere only
    TOKENOMY_PRICES, which every command reads)."""

    @functools.wraps(command)  # Typer reads the options from the signature this keeps
    def run(*args: Any, **kwargs: Any) -> Any:
        from tokenomy.errors import price_option_taken

        with price_option_taken():
            return command(*args, **kwargs)

    return run


def apply_prices(prices: Optional[str]) -> None:
    """Layer a user price file over the built-in catalog for this process."""
    if prices:
        from tokenomy.pricing.catalog import PriceCatalog, set_default_catalog

        set_default_catalog(PriceCatalog.builtin().with_overrides(prices))
