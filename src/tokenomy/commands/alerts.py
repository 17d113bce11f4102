"""`tokenomy alerts check`: budgets and spend anomalies, printed or posted once each."""

from __future__ import annotations

from typing import Optional

import typer

from tokenomy.commands._common import JsonOption, LedgerOption, console, dumps, print_json, table

alerts_app = typer.Typer(help="Budget and anomaly alerts over the ledger.", no_args_is_help=True)


def register(app: typer.Typer) -> None:
    app.add_typer(alerts_app, name="alerts")


@alerts_app.command("check")
def check(
    config: Optional[str] = typer.Option(None, "--config", help="tokenomy.yaml with a budgets: list."),
    webhook: Optional[str] = typer.Option(None, "--webhook", help="POST each new alert (JSON) to this URL."),
    ledger: Optional[str] = LedgerOption,
    as_json: bool = JsonOption,
) -> None:
    """Evaluate budgets and anomalies; print or POST alerts not sent before."""
    import httpx

    from tokenomy.analytics.alerts import evaluate, mark_sent, unsent
    from tokenomy.ledger.store import open_store

    budgets = []
    if config:
        from tokenomy.config import load_config

        budgets = load_config(config).budgets
    store = open_store(ledger)
    new = unsent(store, evaluate(store, budgets))
    if webhook:
        for alert in new:
            httpx.post(webhook, content=dumps(alert), headers={"content-type": "application/json"},
                       timeout=10).raise_for_status()
    mark_sent(store, new)
    if as_json:
        print_json(new)
        return
    console.print(table("new alerts", ["kind", "what", "detail"],
                        [[a["kind"], a.get("match") or a.get("key"), a.get("day") or a.get("month")] for a in new]))
