"""`tokenomy review`: the quarterly review in one command (stored in the ledger for the next one)."""

from __future__ import annotations

import re
from datetime import UTC, datetime
from decimal import Decimal
from pathlib import Path
from typing import Any, Optional

import typer

from tokenomy.commands._common import JsonOption, LedgerOption
from tokenomy.commands._options import output_file_new_folders, when_option
from tokenomy.commands._output import console, print_json, table
from tokenomy.errors import UsageError
from tokenomy.money import money_str


def register(app: typer.Typer) -> None:
    app.command("review")(review_cmd)


MAX_DAYS = 36_500  # a century: the period before it is compared too


def parse_days(text: str, until: Optional[datetime] = None) -> int:
    """--since as whole days (`90d`, or weeks: `2w`), the length of the period the review compares with the one
    before. A date, which every other --since takes, is answered with the days it stands for (`2w` and a date were
    refused as "give the period in days", with no count to give)."""
    match = re.fullmatch(r"\s*(\d+)\s*([dw]?)\s*", text or "")
    days = int(match.group(1)) * (7 if match.group(2) == "w" else 1) if match else 0
    if not 1 <= days <= MAX_DAYS:  # 99999999d overflowed the date arithmetic
        hint = ""
        try:
            start = datetime.fromisoformat(text.strip())
        except ValueError:
            start = None
        if start is not None:
            end = until or datetime.now(UTC)
            start, end = (t.replace(tzinfo=UTC) if t.tzinfo is None else t for t in (start, end))
            whole = (end - start).days
            if 1 <= whole <= MAX_DAYS:
                hint = f" (from {start:%Y-%m-%d} to {end:%Y-%m-%d} is --since {whole}d)"
        raise UsageError(
            f"--since {text!r}: give the period in whole days or weeks, 1 to {MAX_DAYS} days, e.g. 90d{hint}"
        )
    return days


def review_cmd(
    since: str = typer.Option(
        "90d", "--since", metavar="DAYS", help="Period reviewed (90d, 13w), compared with the one before it."
    ),
    until: Optional[datetime] = when_option("--until", "End of the period (UTC) \\[default: now]."),
    config: Optional[str] = typer.Option(
        None,
        "--config",
        help="tokenomy.yaml: routing policies, alerts (thresholds, reservations), models to benchmark.",
    ),
    bench: Optional[Path] = typer.Option(
        None, "--bench", help="Task file to re-run on the models in use and their candidates."
    ),
    judge: Optional[str] = typer.Option(
        None, "--judge", help="With --bench: evaluator for judge-scored tasks \\[default: the previous review's]."
    ),
    candidates: Optional[str] = typer.Option(
        None,
        "--candidates",
        help="With --bench: extra comma-separated models to benchmark (names under `models:` in --config).",
    ),
    html: Optional[Path] = typer.Option(
        None, "--html", help="Also write the review as one self-contained page.", callback=output_file_new_folders
    ),
    ledger: Optional[str] = LedgerOption,
    as_json: bool = JsonOption,
) -> None:
    """Spend and trend, newer or cheaper models, re-benchmark, drift and habits, and ranked actions.

    Exit status: 0 when the review was printed (with no usage in the period nor the one before, it says so and
    saves nothing); 1 when --html finds no usage (no page is written); 2 on bad input or a missing ledger.
    """
    from tokenomy.analytics.review import run_review, save_review
    from tokenomy.analytics.review_html import write_review_html
    from tokenomy.commands._common import open_existing_ledger
    from tokenomy.config import load_config

    days = parse_days(since, until)
    end = None if until is None else (until.replace(tzinfo=UTC) if until.tzinfo is None else until)
    now = datetime.now(UTC)
    if end is not None and end > now:
        # Days still to come have no calls: they were scaled to a month as if spend had dropped, compared with the
        # previous period as a fall, and the review saved as the one the next compares with.
        raise UsageError(
            f"--until {end:%Y-%m-%d %H:%M} UTC is after now ({now:%Y-%m-%d %H:%M} UTC): a review covers days that "
            "have ended; give a time up to now, or leave --until out to end the period now"
        )
    if bench is None and (judge is not None or candidates is not None):
        misplaced = "--judge" if judge is not None else "--candidates"
        raise UsageError(f"{misplaced} applies to the re-benchmark; add --bench TASKS.yaml or drop {misplaced}")
    cfg = load_config(config)
    if bench is not None:  # a typo in the task file fails now, not after the analysis
        from tokenomy.bench.tasks import load_tasks

        load_tasks(bench)
    store = open_existing_ledger(ledger)
    bench_hook = None
    if bench is not None:

        def bench_hook(in_use: list[dict], previous_judge: Optional[str]) -> dict:
            return _bench(store, cfg, bench, judge or previous_judge, candidates, in_use)

    body = run_review(store, days=days, until=end, cfg=cfg, bench=bench_hook)
    if not any(body["spend"]["groups"].values()) and "bench" not in body:
        # No call in the period nor the one before (an empty ledger, a wrong --ledger or --until): a review of
        # zeros said "nothing drifted", and saved, it became the previous review the next real one compares with.
        period = body["period"]
        said = (
            f"no usage in the ledger from {period['previous_start'][:10]} to {period['end'][:10]} (this period and "
            f"the one before); widen --since/--until, or check --ledger. Nothing was saved"
            + (f" and {html} was not written" if html is not None else "")
        )
        if as_json:  # the body of zeros, marked as the review that was not kept
            print_json(_estimates_as_amounts({**body, "saved": False, "note": said}))
        else:
            console.print(f"review: {said}.", markup=False, highlight=False)
        if html is not None:  # as `report --html`: a page asked for and not written is a failure for a script
            raise typer.Exit(1)
        return
    save_review(store, body)
    body["saved"] = True
    if html is not None:
        body["html"] = str(write_review_html(body, html))
    if as_json:
        print_json(_estimates_as_amounts(body))
    else:
        render(body)


def _estimates_as_amounts(body: Any, estimate: bool = False) -> Any:
    """The review for --json: estimates (projected monthly figures, the forecast, candidates' re-priced costs) at the
    `amount` scale, 6 places; figures summed from ledger rows stay `record` (exact, as the ledger holds them). A
    projection printed to 12 places claimed a precision no estimate has."""
    if isinstance(body, dict):
        return {
            key: (
                _estimates_as_amounts(value, estimate or key in ("forecast", "candidates") or "monthly" in key)
                if isinstance(value, (dict, list, Decimal))
                else value
            )
            for key, value in body.items()
        }
    if isinstance(body, list):
        return [_estimates_as_amounts(value, estimate) for value in body]
    return Decimal(money_str(body, "amount")) if estimate and isinstance(body, Decimal) else body


def _bench(store: Any, cfg: Any, tasks: Path, judge: Optional[str], extra: Optional[str], in_use: list[dict]) -> dict:
    """Run the task file on the runnable models in use, their candidates and --candidates."""
    from tokenomy.analytics.review_bench import bench_models, run_bench, runnable
    from tokenomy.client import Tokenomy

    configured = {name: (m.model, m.price_as) for name, m in cfg.models.items()}
    names = bench_models(in_use, configured, [m.strip() for m in (extra or "").split(",") if m.strip()])
    with Tokenomy(store, models=cfg.model_specs()) as client:
        models, skipped = runnable(client, names, set(cfg.models))
        prompts = {n: m.system_prompt for n, m in cfg.models.items() if m.system_prompt}
        result = run_bench(client, tasks, models, judge, prompts)
    result["skipped"] = skipped
    return result


def render(body: dict, console: Any = console, short: bool = False) -> None:
    """The review for people; `short` (the demo) keeps the headline, the candidates and the actions."""
    from tokenomy.analytics.review_html import days_text, money, period_title
    from tokenomy.analytics.review_lifecycle import not_proposed_line, retirement_note
    from tokenomy.analytics.review_models import price_date_note

    spend, period = body["spend"], body["period"]
    console.print(
        f"[bold]Review {period_title(period)}[/bold] ({days_text(period['days'])}): {money(spend['current_usd'])}, "
        f"previous period {money(spend['previous_usd'])} (change {money(spend['change_usd'])})"
    )
    forecast = spend.get("forecast") or {}
    if "forecast_usd" in forecast:
        console.print(
            f"Month-end forecast {forecast['month']}: {money(forecast['forecast_usd'])} "
            f"({money(forecast['low_usd'])}–{money(forecast['high_usd'])})"
        )
    else:
        console.print(f"Month-end forecast: {forecast.get('unavailable')}")
    for by, rows in spend["movers"].items():
        if not rows or short:
            continue
        console.print(
            table(
                f"Largest movers by {by}",
                [by, "change", "volume", "tokens/call", "price"],
                [
                    [
                        r[by],
                        money(r["change_usd"]),
                        money(r["volume_usd"]),
                        money(r["tokens_per_call_usd"]),
                        money(r["price_usd"]),
                    ]
                    for r in rows
                ],
            )
        )
    rows = []
    for info in body["models"]:
        for c in info["candidates"][: 2 if short else 4]:
            rows.append(
                [
                    info["model"],
                    f"{c['kind']}: {c['model']}{price_date_note(c)}{retirement_note(c)}",
                    money(c["monthly_usd"]),
                    money(c["monthly_change_usd"]),
                ]
            )
    if rows:
        console.print(
            table(
                "Newer or cheaper models (this period's traffic, per month)",
                ["in use", "candidate", "$/month", "change"],
                rows,
                text_columns=("candidate",),
            )
        )
    retired = not_proposed_line(body["models"])
    if retired:
        console.print(retired, markup=False, highlight=False)
    moves = [
        [
            info["model"],
            t["task"],
            t["to"] + price_date_note(t),
            money(t["monthly_usd"]),
            money(t["monthly_saving_usd"]),
        ]
        for info in body["models"]
        for t in info.get("per_task", [])[:3]
    ]
    if moves and not short:
        console.print(
            table(
                "Per task: a cheaper line of the same vendor (benchmark before moving)",
                ["in use", "task", "to", "$/month now", "saving/month"],
                moves,
            )
        )
    bench = body.get("bench")
    if bench:
        console.print(
            table(
                f"Re-benchmark (judge {bench.get('judge') or 'none'})",
                ["task", "model", "quality", "95% CI", "previous", "regressed"],
                [
                    [
                        c["task"],
                        c["model"],
                        c["quality"],
                        c["ci95"],
                        c["previous_quality"],
                        "YES" if c["regressed"] else "",
                    ]
                    for c in bench["comparison"]
                ]
                or [[r["task"], r["model"], r["quality"], r["quality_ci95"], "-", ""] for r in bench["results"]],
            )
        )
    console.print(f"Uncapped outputs: {body['habits']['uncapped_outputs']['note']}")
    if body["actions"]:
        console.print(
            table(
                "Actions",
                ["#", "change", "$/month", "apply"],
                [[a["rank"], a["message"], money(a["monthly_usd"]), a["apply"]] for a in body["actions"]],
                text_columns=("change", "apply"),
            )
        )
    else:
        console.print("No actions: nothing drifted, dropped or was superseded this period.")
    if body.get("previous_review"):
        prev = body["previous_review"]
        console.print(
            f"Previous review {prev['period']}: still open {len(prev['still_open'])}, resolved {len(prev['resolved'])}"
        )
    if body.get("html"):
        console.print(f"wrote {body['html']}")
