"""`tokenomy alerts check`: budgets, forecasts, anomalies, cache drops, routing drift, escalation and idle
provisioned throughput, printed or posted once each."""

from __future__ import annotations

from datetime import datetime, timezone
from typing import Optional

import typer

from tokenomy.commands._common import JsonOption, LedgerOption, console, dumps, print_json, table
from tokenomy.errors import TokenomyError

alerts_app = typer.Typer(help="Budget, anomaly, cache, routing and capacity alerts over the ledger.",
                         no_args_is_help=True)


def register(app: typer.Typer) -> None:
    app.add_typer(alerts_app, name="alerts")


@alerts_app.command("check")
def check(
    config: Optional[str] = typer.Option(None, "--config", help="tokenomy.yaml with budgets: and alerts: "
                                         "(thresholds, reservations)."),
    webhook: Optional[str] = typer.Option(None, "--webhook", help="POST each new alert (JSON) to this URL."),
    as_of: Optional[datetime] = typer.Option(None, "--as-of", help="Evaluate as if it were this time (UTC) "
                                             "\\[default: now]."),
    ledger: Optional[str] = LedgerOption,
    as_json: bool = JsonOption,
) -> None:
    """Evaluate every alert rule; print or POST the alerts not sent before."""
    import httpx

    from tokenomy.analytics.alerts import evaluate, mark_sent, unsent
    from tokenomy.config import load_config
    from tokenomy.commands._common import open_existing_ledger

    if webhook and not webhook.startswith(("http://", "https://")):
        # Checked now, not when the first alert fires and the post fails.
        raise TokenomyError(f"--webhook {webhook}: not an http(s) URL; give e.g. https://hooks.example.com/T000/B000")
    cfg = load_config(config)
    settings = cfg.alert_settings()
    now = None if as_of is None else (as_of.replace(tzinfo=timezone.utc) if as_of.tzinfo is None else as_of)
    store = open_existing_ledger(ledger)
    new = unsent(store, evaluate(store, cfg.budgets, now=now, settings=settings, config=cfg))
    for alert in new:
        if webhook:
            try:
                httpx.post(webhook, content=dumps(alert), headers={"content-type": "application/json"},
                           timeout=10).raise_for_status()
            except httpx.HTTPError as exc:
                # Alerts posted so far are marked sent; this one and the rest go out on the next run.
                raise TokenomyError(f"--webhook {webhook}: posting alert {alert['alert_id']} failed ({exc}); "
                                    "check the URL and rerun") from None
        mark_sent(store, [alert])
    if as_json:
        print_json(new)
        return
    if not new:
        console.print("no new alerts (alerts already reported are not repeated)")
        return
    console.print(table(f"{len(new)} new alert(s)", ["kind", "subject", "detail"],
                        [[a["kind"], a["subject"], a["message"]] for a in new]))
