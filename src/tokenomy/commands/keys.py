"""`tokenomy keys create|list|revoke|teams|team-budget`: virtual API keys and team budgets for the gateway."""

from __future__ import annotations

from decimal import Decimal
from typing import Optional

import typer

from tokenomy.commands._common import ConfigLedgerOption, JsonOption
from tokenomy.commands._options import parse_usd
from tokenomy.commands._output import console, print_json, table, usd, usd_short
from tokenomy.errors import ConfigError

keys_app = typer.Typer(
    help="Virtual API keys for `tokenomy serve` (stored hashed; budgets and rate limits).", no_args_is_help=True
)


def register(app: typer.Typer) -> None:
    app.add_typer(keys_app, name="keys")


def _store(ledger, must_exist: bool = False):
    from tokenomy.commands._common import open_existing_ledger
    from tokenomy.config import load_config
    from tokenomy.gateway.keys import KeyStore

    # The same ledger `tokenomy serve` uses: --ledger, else the config's `ledger:` (TOKENOMY_CONFIG or
    # ./tokenomy.yaml), else the default file.
    # A new ledger is fine for create/team-budget (keys are often created first); listing or revoking keys in a
    # ledger that does not exist is a typo, not an empty ledger. A directory or a database that is down is an error.
    return KeyStore(open_existing_ledger(ledger or load_config(None).ledger, must_exist=must_exist))


@keys_app.command("create")
def create(
    budget: Optional[Decimal] = typer.Option(
        None, "--budget-usd", help="Spend limit per period (USD).", parser=parse_usd, metavar="USD"
    ),
    period: str = typer.Option("month", "--period", help="day, month or total."),
    rpm: Optional[int] = typer.Option(None, "--rpm", help="Requests per minute."),
    team: Optional[str] = typer.Option(None, "--team", help="Team (tenant) the key belongs to."),
    name: Optional[str] = typer.Option(None, "--name", help="A label for people."),
    ledger: Optional[str] = ConfigLedgerOption,
    as_json: bool = JsonOption,
) -> None:
    """Create a key. The secret is printed once; only its hash is stored."""
    from tokenomy.gateway.keys import check_limits

    check_limits(budget, period, rpm, team)  # before the ledger is opened: a bad option creates no ledger file
    secret, key = _store(ledger).create(budget, period, rpm, team, name)
    if as_json:
        print_json(
            {
                "key": secret,
                "key_id": key.key_id,
                "budget_usd": key.budget_usd,
                "period": key.period,
                "rpm": key.rpm,
                "team": key.team,
                "name": key.name,
            }
        )
        return
    console.print(f"key: [bold]{secret}[/bold]\nid: {key.key_id} (the secret is not stored; keep it now)")


@keys_app.command("list")
def list_(ledger: Optional[str] = ConfigLedgerOption, as_json: bool = JsonOption) -> None:
    """List keys (ids and limits, never secrets)."""
    keys = _store(ledger, must_exist=True).list()
    if as_json:
        print_json([k.__dict__ for k in keys])
        return
    if not keys:
        console.print("no keys in this ledger; create one with `tokenomy keys create --budget-usd N`")
        return
    console.print(
        table(
            "Keys",
            ["id", "name", "team", "budget", "period", "rpm", "revoked"],
            [
                [k.key_id, k.name, k.team, usd_short(k.budget_usd), k.period, k.rpm, "yes" if k.revoked else ""]
                for k in keys
            ],
        )
    )


@keys_app.command("revoke")
def revoke(
    key_id: str = typer.Argument(..., help="Key id from `keys list`."), ledger: Optional[str] = ConfigLedgerOption
) -> None:
    """Revoke a key (gateways notice within 30 seconds)."""
    if not _store(ledger, must_exist=True).revoke(key_id):
        raise ConfigError(f"no key with id {key_id!r} in this ledger; see `tokenomy keys list`")
    console.print(f"revoked {key_id}")


@keys_app.command("teams")
def teams(ledger: Optional[str] = ConfigLedgerOption, as_json: bool = JsonOption) -> None:
    """List team budgets with what each team spent this period (from the ledger) and what is left."""
    from tokenomy.gateway.keys import period_start

    store = _store(ledger, must_exist=True)
    rows = []
    for team, (budget, period) in store.team_budgets().items():
        since = period_start(period)
        spent = store.spent("tenant", team, since)
        rows.append(
            {
                "team": team,
                "budget_usd": budget,
                "period": period,
                "period_start": since,
                "spent_usd": spent,
                "left_usd": max(budget - spent, Decimal(0)),
            }
        )
    if as_json:
        print_json(rows, money="amount")  # the figures the table prints
        return
    if not rows:
        console.print("no team budgets in this ledger; set one with `tokenomy keys team-budget TEAM --budget-usd N`")
        return
    console.print(
        table(
            "Team budgets",
            ["team", "budget", "period", "spent", "left"],
            [[r["team"], usd(r["budget_usd"]), r["period"], usd(r["spent_usd"]), usd(r["left_usd"])] for r in rows],
        )
    )


@keys_app.command("team-budget")
def team_budget(
    team: str = typer.Argument(..., help="Team name used with `keys create --team`."),
    budget: Decimal = typer.Option(
        ..., "--budget-usd", help="Team spend limit per period (USD).", parser=parse_usd, metavar="USD"
    ),
    period: str = typer.Option("month", "--period", help="day, month or total."),
    ledger: Optional[str] = ConfigLedgerOption,
) -> None:
    """Set a team budget; each key of the team is held to both its own and the team's limit."""
    from tokenomy.gateway.keys import check_limits

    check_limits(budget, period, team=team)  # before the ledger is opened: a bad option creates no ledger file
    _store(ledger).set_team_budget(team, budget, period)
    console.print(f"team {team}: {usd_short(budget)} per {period}")
