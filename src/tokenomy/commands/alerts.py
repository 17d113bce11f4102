"""`tokenomy alerts check`: budgets, forecasts, anomalies, cache drops, routing drift, escalation and idle
provisioned throughput, printed or posted once each."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Optional

import typer

from tokenomy.commands._common import JsonOption, LedgerOption
from tokenomy.commands._options import when_option
from tokenomy.commands._output import console, dumps, print_json, table
from tokenomy.errors import TokenomyError

alerts_app = typer.Typer(
    help="Budget, anomaly, cache, routing and capacity alerts over the ledger.", no_args_is_help=True
)


def register(app: typer.Typer) -> None:
    app.add_typer(alerts_app, name="alerts")


@alerts_app.command("check")
def check(
    config: Optional[str] = typer.Option(
        None, "--config", help="tokenomy.yaml with budgets: and alerts: (thresholds, reservations)."
    ),
    webhook: Optional[str] = typer.Option(None, "--webhook", help="POST each new alert (JSON) to this URL."),
    as_of: Optional[datetime] = when_option("--as-of", "Evaluate as if it were this time (UTC) \\[default: now]."),
    dry_run: bool = typer.Option(
        False,
        "--dry-run",
        help="Show the alerts without posting them or remembering them as sent (the ledger is not written).",
    ),
    ledger: Optional[str] = LedgerOption,
    as_json: bool = JsonOption,
) -> None:
    """Evaluate every alert rule; print or POST the alerts not sent before.

    Alerts are remembered as sent (in the ledger's tokenomy_alerts_sent table, created on the first one) when
    they are POSTed to --webhook, or printed as a table without --dry-run; `--json` without --webhook and
    `--dry-run` only read the ledger. Exit status: 0 when the check ran (with or without alerts), 2 on bad
    input or a failed webhook post."""
    import httpx

    from tokenomy.analytics.alerts import evaluate, mark_sent, unsent
    from tokenomy.commands._common import open_existing_ledger
    from tokenomy.config import load_config

    if webhook and not webhook.startswith(("http://", "https://")):
        # Checked now, not when the first alert fires and the post fails.
        raise TokenomyError(f"--webhook {webhook}: not an http(s) URL; give e.g. https://hooks.example.com/T000/B000")
    cfg = load_config(config)
    settings = cfg.alert_settings()
    now = None if as_of is None else (as_of.replace(tzinfo=UTC) if as_of.tzinfo is None else as_of)
    store = open_existing_ledger(ledger)
    new = unsent(store, evaluate(store, cfg.budgets, now=now, settings=settings, config=cfg))
    for alert in new:
        if webhook and not dry_run:
            try:
                httpx.post(
                    webhook,
                    content=dumps(alert, money="amount"),
                    headers={"content-type": "application/json"},
                    timeout=10,
                ).raise_for_status()
            except httpx.HTTPError as exc:
                # Alerts posted so far are marked sent; this one and the rest go out on the next run.
                raise TokenomyError(
                    f"--webhook {webhook}: posting alert {alert['alert_id']} failed ({exc}); check the URL and rerun"
                ) from None
        if not dry_run and (webhook or not as_json):  # read-only modes leave the ledger as it was
            mark_sent(store, [alert])
    if as_json:
        print_json(new, money="amount")
        return
    if not new:
        console.print("no new alerts (alerts already reported are not repeated)")
        return
    from rich.markup import escape

    console.print(
        table(
            f"{len(new)} new alert(s)",
            ["kind", "subject", "detail"],
            # Printed as written, not read as markup: a message may quote a rejection reason (a regex's "[a-z]").
            [[a["kind"], escape(str(a["subject"])), escape(a["message"])] for a in new],
        )
    )
