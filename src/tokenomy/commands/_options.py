"""Parsers and callbacks of CLI options: times and spans back from now, money, hosts, URLs, files to write. Each
refuses a bad value naming the option and the fix, before a command does any work."""

from __future__ import annotations

import math
import re
from datetime import UTC, datetime, timedelta
from decimal import Decimal, InvalidOperation
from pathlib import Path
from typing import Any, Optional

import typer

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
        from tokenomy.errors import not_before

        raise not_before(since, until)
    return since, until


def when_option(flag: str, help: str) -> Any:
    """A --since/--until/--as-of option: a time or a span back from now, checked to be one reports can use."""
    return typer.Option(None, flag, help=help, parser=parse_when, metavar=WHEN_METAVAR, callback=when_in_range)


def finite_in(low: Optional[float], high: Optional[float]) -> Any:
    """Parser of a float option with a range: a finite number from `low` to `high`, or one error saying so. Checked
    here, not by Typer's range: it let "nan" through (NaN compares false with both bounds) and refused inf and -inf
    as "Input should be less than or equal to 100", so one option answered nan, inf and -inf in three ways."""
    if low is not None and high is not None:
        span = f"from {low:g} to {high:g}"
    else:
        span = f"of at least {low:g}" if low is not None else f"of at most {high:g}"

    def parse(value: Any) -> float:
        try:
            number = float(value)
        except (TypeError, ValueError):
            number = math.nan
        if not math.isfinite(number) or (low is not None and number < low) or (high is not None and number > high):
            raise typer.BadParameter(f"{value!r}: must be a finite number {span}")
        return number

    return parse


def number_option(
    default: Any, *flags: str, help: str, min: Optional[float] = None, max: Optional[float] = None
) -> Any:
    """A float option with a range: checked by `finite_in`; min and max are given to Typer as well, which shows the
    range in --help."""
    return typer.Option(default, *flags, help=help, min=min, max=max, parser=finite_in(min, max))


def parse_usd(value: str | Decimal) -> Decimal:
    """Parser of every USD option, as a Decimal: read as a float, 1e400 became "Infinity" and 0.1234567890123456789
    came back as 0.12345678901234568 in the error, neither of them what was typed. NaN and infinities are refused
    here, echoing the word typed; range is `usd_amount`'s job."""
    if isinstance(value, Decimal):
        return value
    try:
        amount = Decimal(value.strip())
    except InvalidOperation:
        raise typer.BadParameter(f"{value!r} is not an amount; give a number of dollars, e.g. 50 or 0.25") from None
    if not amount.is_finite():  # refused here, where the word typed is known: a Decimal echoes `inf` as "Infinity"
        from tokenomy.money import MAX_USD

        raise typer.BadParameter(f"{value!r}: give an amount in dollars, a finite number >= 0 and under {MAX_USD:,}")
    return amount


def usd_amount(param: typer.CallbackParam, value: Optional[Decimal]) -> Optional[Decimal]:
    """Callback of USD options (--budget-usd, --hourly-usd, prices, --max-cost-usd): finite, >= 0 and under
    money.MAX_USD, refused naming the option before anything is read (1e300 was priced and printed as a 301-digit
    cost)."""
    if value is not None:
        from tokenomy.errors import usd_figure

        usd_figure(next(o for o in param.opts if o.startswith("--")), value)
    return value


def usd_option(default: Any, flag: str, help: str) -> Any:
    """A USD option: parsed as a Decimal (`parse_usd`) and checked (`usd_amount`)."""
    return typer.Option(default, flag, help=help, parser=parse_usd, metavar="USD", callback=usd_amount)


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


def routing_pair(cheap_model: Optional[str], routing_share: float) -> None:
    """The routing lever takes both options: one of them alone was dropped without a word, the lever reading "no
    routing result given" and the unknown model in `--cheap-model nosuch` never checked."""
    from tokenomy.errors import UsageError

    if cheap_model and not routing_share:
        raise UsageError(
            f"--cheap-model {cheap_model} needs --routing-share, the share of calls it would take (from `route eval` "
            "or `bench`), e.g. --routing-share 0.4"
        )
    if routing_share and not cheap_model:
        raise UsageError(
            f"--routing-share {routing_share:g} needs --cheap-model, the model routing would move those calls to, "
            "e.g. --cheap-model amazon.nova-micro-v1:0"
        )
