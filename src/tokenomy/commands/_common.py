"""Shared CLI helpers: JSON output that keeps Decimals exact, the --ledger option, tables."""

from __future__ import annotations

import errno
import functools
import json
import math
import os
import re
import sys
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import UTC, date, datetime, timedelta
from decimal import ROUND_HALF_EVEN, Decimal
from pathlib import Path
from typing import Any, Optional, TextIO

import typer
from rich.console import Console
from rich.table import Table

from tokenomy.money import money_str
from tokenomy.money import usd as money_usd

# Pipes and CI logs get a wide, fixed layout so tables aren't squeezed to 80 columns.
_WIDTH = None if sys.stdout.isatty() else int(os.environ.get("COLUMNS", "140"))
console = Console(width=_WIDTH)
# soft_wrap: a message on stderr stays one line however long (scripts grep it; tables still fit the width).
err_console = Console(stderr=True, width=_WIDTH, soft_wrap=True)

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


_AGO = re.compile(r"^(\d+)([mhdw])$")
_AGO_UNITS = {"m": "minutes", "h": "hours", "d": "days", "w": "weeks"}
WHEN_METAVAR = "TIME|7d"  # --help shows what a time option takes


def parse_when(value: str | datetime) -> datetime:
    """Parser of every --since/--until/--as-of: an ISO date or time (naive means UTC; `Z` or an offset is kept),
    or a span back from now (`90m`, `24h`, `7d`, `2w`), as `review --since` and the dashboard speak of periods."""
    if isinstance(value, datetime):
        return value
    text = value.strip()
    ago = _AGO.match(text)
    if ago:
        try:
            return datetime.now(UTC) - timedelta(**{_AGO_UNITS[ago.group(2)]: int(ago.group(1))})
        except OverflowError:  # `99999999999d` reaches back before year 1: a traceback from timedelta or datetime
            raise typer.BadParameter(
                f"{value!r} reaches back before year 1; give a shorter span (e.g. 90d) or a date (2026-11-01)"
            ) from None
    try:
        return datetime.fromisoformat(text)
    except ValueError:
        raise typer.BadParameter(
            f"{value!r} is not a time; give a date (2026-11-01), a UTC time (2026-11-01T09:30) or a span back "
            "from now (90m, 24h, 7d, 2w)"
        ) from None


def when_in_range(param: typer.CallbackParam, value: Optional[datetime]) -> Optional[datetime]:
    """Callback of every --since/--until/--as-of: a time the reports can compute with (a period starting at year 1
    overflowed their date arithmetic with a traceback), named in the error otherwise. Naive means UTC."""
    from tokenomy.analytics.dashboard_filters import EARLIEST, LATEST

    if value is not None and not EARLIEST <= (value if value.tzinfo else value.replace(tzinfo=UTC)) <= LATEST:
        raise typer.BadParameter(
            f"{value.date().isoformat()} is out of range; use a time from {EARLIEST:%Y-%m-%d} to {LATEST:%Y-%m-%d}"
        )
    return value


def utc_window(since: Optional[datetime], until: Optional[datetime]) -> tuple[Optional[datetime], Optional[datetime]]:
    """--since and --until in UTC (naive means UTC), refused when --since is not before --until: an inverted pair
    read as an empty window (`ledger export` wrote nothing and exited 0; `plan savings` asked to record traffic)."""
    since, until = (t.replace(tzinfo=UTC) if t is not None and t.tzinfo is None else t for t in (since, until))
    if since is not None and until is not None and since >= until:
        from tokenomy.errors import UsageError

        raise UsageError(f"--since {since:%Y-%m-%d %H:%M} is not before --until {until:%Y-%m-%d %H:%M}; swap them")
    return since, until


def when_option(flag: str, help: str) -> Any:
    """A --since/--until/--as-of option: a time or a span back from now, checked to be one reports can use."""
    return typer.Option(None, flag, help=help, parser=parse_when, metavar=WHEN_METAVAR, callback=when_in_range)


def finite(param: typer.CallbackParam, value: Optional[float]) -> Optional[float]:
    """Callback of float options with no range of their own: "nan" and "inf" parse as floats, and went on to a
    traceback (`bench summary --tolerance inf --json`) or a misleading error ("the best reachable is 1.004")."""
    if value is not None and not math.isfinite(value):
        raise typer.BadParameter(f"{value} is not a number; give a finite one")
    return value


def usd_amount(param: typer.CallbackParam, value: Optional[float]) -> Optional[float]:
    """Callback of USD options (--hourly-usd, prices, --max-cost-usd): finite, >= 0 and under money.MAX_USD, refused
    naming the option before anything is read (1e300 was priced and printed as a 301-digit cost)."""
    if value is not None:
        from tokenomy.errors import usd_figure

        usd_figure(next(o for o in param.opts if o.startswith("--")), value)
    return value


def bind_host(param: typer.CallbackParam, value: str) -> str:
    """Callback of --host: "" (or blanks) reads as "no host", yet uvicorn and socket.bind take it as every interface
    (0.0.0.0): a server meant for this machine would be open to the network."""
    if not value.strip():
        raise typer.BadParameter(
            "an empty host binds every interface; give an address, e.g. 127.0.0.1 (this machine only), "
            "or 0.0.0.0 to listen on every interface on purpose"
        )
    return value


def http_url(param: typer.CallbackParam, value: Optional[str]) -> Optional[str]:
    """Callback of --endpoint-url / --base-url options: an http(s) URL with a host. `plan utilization --cloudwatch
    --endpoint-url notaurl` was botocore's "ValueError: Invalid endpoint" traceback; elsewhere the word went on to a
    confusing failure (no API key, a connection error naming another URL)."""
    from urllib.parse import urlsplit

    if value is None:
        return value
    parts = urlsplit(value.strip())
    if parts.scheme not in ("http", "https") or not parts.hostname:
        raise typer.BadParameter(f"{value!r} is not an http(s) URL; give e.g. http://127.0.0.1:4566")
    return value


def http_url_or_host(param: typer.CallbackParam, value: Optional[str]) -> Optional[str]:
    """`http_url`, where a bare `host:port` also stands for http://host:port (as STORAGE_EMULATOR_HOST is written)."""
    if value is not None and "://" not in value:
        http_url(param, f"http://{value.strip()}")
        return value
    return http_url(param, value)


def output_file(param: typer.CallbackParam, value: Any) -> Any:
    """Callback of the options that name a file to write (-o, --png): a path that cannot be a file is an error
    before the work, not after it (`route eval --png` ran the whole evaluation, and then "afile: File exists", or
    "No such file or directory" for a folder that is not there)."""
    return _output_path(value, new_folders=False)


def output_file_new_folders(param: typer.CallbackParam, value: Any) -> Any:
    """`output_file` for writers that make the file's folders themselves (`report --html`, `review --html`)."""
    return _output_path(value, new_folders=True)


def _output_path(value: Any, new_folders: bool) -> Any:
    if value is None:
        return value
    target = Path(value)
    if target.is_dir():
        raise typer.BadParameter(f"{value} is a directory; give a file path, e.g. {target / 'out'}")
    if _is_duckdb_file(target):  # `ledger export -o ledger.duckdb --ledger ledger.duckdb` replaced the whole ledger
        raise typer.BadParameter(
            f"{value} is a DuckDB database (a ledger?), which writing here would replace; give another file"
        )
    parent = next((p for p in target.parents if p.exists()), None)
    if parent is not None and not parent.is_dir():
        raise typer.BadParameter(f"{parent} is a file, not a directory; give a path in a directory")
    if not new_folders and not target.parent.exists():
        raise typer.BadParameter(
            f"{value}: folder {target.parent} does not exist; create it (mkdir -p {target.parent}) or give a path "
            "in an existing folder"
        )
    return value


def _is_duckdb_file(path: Path) -> bool:
    """A DuckDB database file: its header carries the magic bytes "DUCK" at offset 8."""
    try:
        with open(path, "rb") as handle:
            return handle.read(12)[8:] == b"DUCK"
    except OSError:  # not there, or not readable: nothing to protect here (the write itself names the problem)
        return False


def _default(value: Any, money: str = "record") -> Any:
    if isinstance(value, Decimal):  # the one money rule: plain text, never "0E-7" or 28 decimals
        return money_str(value, money)
    if isinstance(value, (datetime, date)):
        return value.isoformat().replace("+00:00", "Z")
    if hasattr(value, "to_json"):
        return value.to_json()
    raise TypeError(f"cannot serialise {type(value).__name__}")


_TWELVE_PLACES = Decimal("1E-12")


def _plain_float(value: float) -> str:
    """A float as a JSON number in plain notation, at most 12 decimals (never "1e-05" or 17 digits of noise)."""
    if value != value or value in (float("inf"), float("-inf")):
        raise ValueError(f"{value} cannot be written as JSON")
    # From the float's shortest repr (its meaningful digits), not `format(value, ".12f")`, which writes the binary
    # expansion: 766666.6666666666 came out as 766666.666666666628.
    number = Decimal(repr(float(value)))  # float(): a numpy float's repr is "np.float64(0.5)"
    exponent = number.as_tuple().exponent
    if isinstance(exponent, int) and exponent < -12:
        number = number.quantize(_TWELVE_PLACES, ROUND_HALF_EVEN)
    text = format(number, "f")
    text = text.rstrip("0") if "." in text else text + "."
    text = text + "0" if text.endswith(".") else text
    return "0.0" if text == "-0.0" else text


class _PlainJSONEncoder(json.JSONEncoder):
    """The standard encoder with floats written by `_plain_float` (Decimals go through `_default`)."""

    def iterencode(self, o: Any, _one_shot: bool = False) -> Any:
        encoder: Any = json.encoder  # the stdlib module; its private hook is not in the type stubs
        strings = encoder.encode_basestring_ascii if self.ensure_ascii else encoder.encode_basestring
        return encoder._make_iterencode(  # the one hook for float text in the stdlib encoder
            {} if self.check_circular else None,
            self.default,
            strings,
            self.indent,
            _plain_float,
            self.key_separator,
            self.item_separator,
            self.sort_keys,
            self.skipkeys,
            _one_shot,
        )(o, 0)


# A spreadsheet runs a cell that starts with one of these as a formula (OWASP's "CSV injection").
FORMULA_STARTS = ("=", "+", "-", "@", "\t", "\r")


def csv_cell(value: Any, money: str = "record") -> Any:
    """A CSV value by the same rules as JSON: money by the one money rule (of kind `money`), floats plain.

    Text a caller chose (a tag sent in a request header, a route or model name) that a spreadsheet would run as a
    formula gets a leading `'`, so a report opened in Excel shows it instead of running `=HYPERLINK(...)`."""
    if isinstance(value, Decimal):
        return money_str(value, money)
    if isinstance(value, (datetime, date)):  # as JSON writes it: "2026-11-01T00:00:00Z", not str()'s "+00:00"
        return _default(value)
    if isinstance(value, float) and value == value and value not in (float("inf"), float("-inf")):
        return _plain_float(value)
    if isinstance(value, str) and value.startswith(FORMULA_STARTS) and not _signed_number(value):
        return "'" + value
    return value


def _signed_number(text: str) -> bool:
    """A number with its sign ("-0.5"), which a spreadsheet reads as a number, not a formula."""
    try:
        float(text)
    except ValueError:
        return False
    return text[0] in "+-"


def dumps(data: Any, money: str = "record") -> str:
    """JSON text; Decimals by the money rule of kind `money`: "record" (exact, what the ledger holds) or "amount"
    (fixed 6 places, so every figure of a report or plan has the same scale)."""
    return json.dumps(data, default=functools.partial(_default, money=money), indent=2, cls=_PlainJSONEncoder)


def print_json(data: Any, money: str = "record") -> None:
    """Print JSON to stdout without Rich markup or wrapping (Decimals as `dumps` writes them)."""
    typer.echo(dumps(data, money))


def table(
    title: str | None,
    columns: list[str],
    rows: list[list[Any]],
    text_columns: tuple[str, ...] = (),
    key_columns: tuple[str, ...] = (),
) -> Table:
    """Numbers right-aligned; the first column, any `text_columns` (sentences, reasons) and any column with a cell
    that is not a figure (a model id, a team, a status) left-aligned.

    Nothing is cut with "…": a cell too wide for the terminal wraps (a long id folds onto the next line, whole), and
    `print_table(..., wide=True)` prints at the table's natural width instead. `key_columns` (e.g. a model id that
    is not the first column) are left-aligned like the first."""
    cells = [["" if v is None else str(v) for v in row] for row in rows]
    result = Table(title=title, show_lines=False, header_style="bold")
    for index, column in enumerate(columns):
        words = any(index < len(row) and not _FIGURE.match(row[index]) for row in cells)
        left = index == 0 or column in text_columns or column in key_columns or words
        result.add_column(column, justify="left" if left else "right", overflow="fold")
    for row in cells:
        result.add_row(*row)
    return result


# A cell that reads as a figure: "1,234", "-0.5", "$0.000750", "12.5%", "+3.0%", "1011.1", or blank / a dash for none.
_FIGURE = re.compile(r"^(|[-—]|[-+]?\$?[\d,]*\.?\d+(%|x)?)$")


def print_table(result: Table, wide: bool = False) -> None:
    """Print a table; `wide`: at its natural width (one line per row, for a wide terminal or a pipe)."""
    if not wide:
        console.print(result)
        return
    natural = console.measure(result, options=console.options.update(width=10_000)).maximum
    Console(width=natural, force_terminal=console.is_terminal, no_color=console.no_color).print(result)


WideOption = typer.Option(False, "--wide", help="Print tables at full width (one line per row, nothing wrapped).")


def report_row(columns: list[str], row: dict[str, Any]) -> list[str]:
    """A report row as people read it; its group (the first column) with no value, e.g. calls recorded without a
    task, reads "(none)" as the reports that name it in SQL do, never a blank."""
    return [report_cell(c, row[c]) if row[c] is not None or i else "(none)" for i, c in enumerate(columns)]


def report_cell(column: str, value: Any) -> str:
    """A report value as people read it: money with $, rates and shares as percentages, big counts grouped."""
    if value is None:
        return ""
    if isinstance(value, Decimal):
        return money_usd(value, "amount")
    if isinstance(value, float):
        if column == "delta":  # tier-share: actual minus expected share, in percentage points
            return f"{value:+.1%}"
        if column.endswith(("_rate", "_share")) or column == "share":
            return f"{value:.1%}"
        return f"{value:,.1f}"
    if isinstance(value, int):
        return f"{value:,}"
    if isinstance(value, datetime):
        return value.strftime("%Y-%m-%d %H:%M") if (value.hour or value.minute) else value.strftime("%Y-%m-%d")
    return str(value)


def usd(value: Decimal | None, places: int = 6) -> str:
    return money_usd(value, "amount", places)


def usd_short(value: Decimal | float | str | None) -> str:
    """$50.00, $0.45 or $0.001 (cents, or the digits that matter), never a catalog's trailing zeros; None is "-"."""
    if value is None:
        return "-"
    value = Decimal(str(value))
    if value == value.quantize(Decimal("0.01")):
        return money_usd(value, "report")
    return money_usd(value, "record", min(12, max(2, -int(value.normalize().as_tuple().exponent))))


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


def apply_prices(prices: Optional[str]) -> None:
    """Layer a user price file over the built-in catalog for this process."""
    if prices:
        from tokenomy.pricing.catalog import PriceCatalog, set_default_catalog

        set_default_catalog(PriceCatalog.builtin().with_overrides(prices))
