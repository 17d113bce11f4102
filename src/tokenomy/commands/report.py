"""`tokenomy report NAME`: preset cost reports over the ledger; `--html FILE`: the dashboard as one file."""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path
from typing import Optional

import typer

from tokenomy.analytics import DEFAULT_TOLERANCE_PCT  # a constant in the package's light __init__, no ledger
from tokenomy.commands._common import JsonOption, LedgerOption
from tokenomy.commands._options import number_option, output_file_new_folders, when_option
from tokenomy.commands._output import console, csv_cell, err_console, print_json, report_row, table


def register(app: typer.Typer) -> None:
    app.command("report")(report)


def report(
    name: Optional[str] = typer.Argument(
        None,
        help="Preset: spend, monthly-spend, family-daily, tokens, hourly-tokens, "
        "cache-hit-rate, cache-trend, latency, errors, cost-per-task, cost-per-tag, tier-share, "
        "batch-share, forecast (month-end spend with an interval), or reconcile (metered against billed cost).",
    ),
    by: Optional[str] = typer.Option(
        None, "--by", help="Group by model, provider, family, region, task, tier ... \\[default: the preset's own]"
    ),
    since: Optional[datetime] = when_option("--since", "Start (UTC, inclusive)."),
    until: Optional[datetime] = when_option("--until", "End (UTC, exclusive)."),
    ledger: Optional[str] = LedgerOption,
    as_json: bool = JsonOption,
    as_csv: bool = typer.Option(False, "--csv", help="Print CSV instead of a table."),
    html: Optional[Path] = typer.Option(
        None,
        "--html",
        help="Write the dashboard's charts for --since/--until as one self-contained HTML file (opens offline).",
        callback=output_file_new_folders,
    ),
    expected: Optional[str] = typer.Option(
        None,
        "--expected",
        help="tier-share: expected shares, e.g. weak=0.7,strong=0.3 \\[default: routing.expected_tier_share in config]",
    ),
    config: Optional[str] = typer.Option(
        None, "--config", help="tokenomy.yaml: tier-share's expected shares; --html's alert rules (budgets:, alerts:)."
    ),
    tolerance_pct: Optional[float] = number_option(  # None is "not given": another preset refuses it
        None,
        "--tolerance-pct",
        min=0,
        help="reconcile: flag a day billed more than this % off its metered cost. "
        f"\\[default: {DEFAULT_TOLERANCE_PCT}]",
    ),
    exact: Optional[bool] = typer.Option(  # None is "not given", as above; still a bare flag
        None,
        "--exact",
        metavar="",
        help="latency: exact percentiles from raw events (slow on big ledgers). By default they come from "
        "log-bucket histograms and are within 0.99% of the exact value.",
    ),
) -> None:
    """Run a preset report over the ledger and print it, or write all charts to one HTML file.

    Exit status: 0 when the report was printed or written; 1 when --html finds no calls in the ledger or window
    (nothing is written); 2 on bad input or a missing ledger."""
    from tokenomy.analytics.reports import run_report
    from tokenomy.commands._common import open_existing_ledger
    from tokenomy.errors import scrub

    if as_json and as_csv:
        from tokenomy.errors import UsageError

        raise UsageError("give --json or --csv, not both")
    if html is not None:
        from tokenomy.analytics.dashboard import write_report_html
        from tokenomy.analytics.dashboard_data import Filters
        from tokenomy.analytics.dashboard_filters import check_when

        utc = [t.replace(tzinfo=UTC) if t and t.tzinfo is None else t for t in (since, until)]
        utc = [check_when(t, option) for t, option in zip(utc, ("--since", "--until"), strict=True)]
        if utc[0] and utc[1] and utc[0] >= utc[1]:
            from tokenomy.errors import UsageError

            raise UsageError(f"--since {since} is not before --until {until}; swap them or widen the window")
        # The page holds every chart over --since/--until; a NAME, --csv or a preset's option would be ignored.
        given = {"--by": by, "--expected": expected, "--tolerance-pct": tolerance_pct}
        ignored = [flag for flag, value in (*given.items(), ("--exact", exact)) if value is not None]
        if name is not None or as_csv or ignored:
            from tokenomy.errors import UsageError

            drop = name or ("--csv" if as_csv else ignored[0])
            raise UsageError(
                f"--html writes all charts to one page; drop {drop} (or drop --html for one report's table)"
            )
        # The console's open alerts evaluate the config's rules (budgets:, alerts:, routing), as `alerts check` does.
        from tokenomy.config import load_config

        rules = load_config(config) if config is not None else None
        store = open_existing_ledger(ledger)
        if not _calls_in(store, utc[0], utc[1]):  # a page of blank charts would read as "nothing spent"
            window = f" between {since or 'the start'} and {until or 'now'}" if (since or until) else ""
            err_console.print(
                f"error: no calls in ledger {scrub(store.url)}{window}, nothing to chart; record some first "
                "or widen --since/--until (no HTML written)",
                markup=False,
                highlight=False,
            )
            raise typer.Exit(1)
        written = write_report_html(store, Filters(since=utc[0], until=utc[1]), html, rules)
        if as_json:
            print_json({"html": str(written)})
        else:
            console.print(f"wrote {written}")
        return
    if name is None:
        from tokenomy.errors import UsageError

        raise UsageError("give a report NAME (e.g. `tokenomy report spend`) or --html FILE for the charts")
    # An option one preset reads would change nothing in another: refuse it rather than drop it silently.
    for preset, flags in (
        ("tier-share", (("--expected", expected), ("--config", config))),
        ("reconcile", (("--tolerance-pct", tolerance_pct),)),
        ("latency", (("--exact", exact),)),
    ):
        unread = [flag for flag, value in flags if value is not None]
        if name != preset and unread:
            from tokenomy.errors import UsageError

            raise UsageError(f"{unread[0]} is read by `report {preset}` only; drop it from `report {name}`")
    if name == "forecast":
        if as_csv:
            from tokenomy.errors import UsageError

            raise UsageError("report forecast is one figure set, not rows: use --json instead of --csv")
        if since is not None or by is not None:  # they would be ignored: the forecast was of another window
            from tokenomy.errors import UsageError

            raise UsageError(
                f"report forecast forecasts the whole ledger's month containing --until (default now) from the days "
                f"before it; drop {'--since' if since is not None else '--by'}"
            )
        from tokenomy.commands._forecast import show_forecast

        show_forecast(open_existing_ledger(ledger), until, as_json)
        return
    if name == "reconcile":
        from tokenomy.commands._reconcile import show_reconcile

        tolerance = float(DEFAULT_TOLERANCE_PCT) if tolerance_pct is None else tolerance_pct
        show_reconcile(open_existing_ledger(ledger), by, since, until, tolerance, as_json, as_csv)
        return
    shares = None
    if name == "tier-share":
        from tokenomy.analytics.reports import parse_expected
        from tokenomy.config import load_config

        shares = parse_expected(expected, None if expected else load_config(config).routing.model_dump())
    store = open_existing_ledger(ledger)
    rows = run_report(store, name, by=by, since=since, until=until, expected=shares, exact=bool(exact))
    if as_json:
        print_json(rows, money="amount")  # one scale per report: amounts to 6 places
        return
    if not rows and not as_csv:
        from tokenomy.analytics.reports import PRESETS

        days = PRESETS[name].days if since is None else None
        span = f" from {since:%Y-%m-%d %H:%M}" if since else ""
        span += f" until {until:%Y-%m-%d %H:%M}" if until else ""
        if days is not None:  # said "(the preset may use a default window)": which one was left to guess
            said = f"no usage in its default window, the last {days} days{span}; give --since to look further back"
        else:
            said = f"no usage in the ledger{span}; widen --since/--until"
        console.print(f"report {name}: {said}, or check --ledger")
        return
    if as_csv:
        import csv
        import sys

        from tokenomy.analytics.reports import report_columns

        # No row is still the report's header (it printed the report's name as the whole file).
        columns = list(rows[0]) if rows else report_columns(store, name, by=by, since=since, until=until)
        writer = csv.DictWriter(sys.stdout, fieldnames=columns)
        writer.writeheader()
        writer.writerows({k: csv_cell(v, "amount") for k, v in row.items()} for row in rows)
        return
    columns = list(rows[0])
    console.print(table(f"report {name}", columns, [report_row(columns, r) for r in rows]))
    if name == "latency" and not exact:  # None (not given) too
        from tokenomy.analytics.latency import APPROXIMATION

        console.print(APPROXIMATION, markup=False, highlight=False)


def _calls_in(store, since, until) -> int:
    clauses = [c for c, v in ((f"ts >= {store.placeholder}", since), (f"ts < {store.placeholder}", until)) if v]
    where = f" WHERE {' AND '.join(clauses)}" if clauses else ""
    return int(store.query(f"SELECT COUNT(*) AS n FROM usage_events{where}", [v for v in (since, until) if v])[0]["n"])
