"""`tokenomy keys`: budgets the ledger cannot hold are refused by option, before any ledger is made."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

TOKENOMY = str(Path(sys.executable).with_name("tokenomy"))


def test_a_budget_of_100_million_or_more_is_refused_by_option_without_a_traceback(tmp_path):
    # The budget columns are DECIMAL(20,12): 1e8 ended in a database traceback.
    ledger = tmp_path / "ledger.duckdb"
    for args in (["keys", "create"], ["keys", "team-budget", "research"]):
        for amount in ("1e8", "250000000"):
            bad = subprocess.run(
                [TOKENOMY, *args, "--budget-usd", amount, "--ledger", str(ledger)],
                capture_output=True,
                text=True,
                timeout=120,
            )
            assert bad.returncode == 2 and "Traceback" not in bad.stderr, bad.stderr
            assert bad.stderr.startswith("error: --budget-usd ") and "under 100,000,000" in bad.stderr
    assert not ledger.exists()  # refused before the ledger was opened
    ok = subprocess.run(
        [TOKENOMY, "keys", "team-budget", "research", "--budget-usd", "99999999.5", "--ledger", str(ledger)],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert ok.returncode == 0 and "research: $99,999,999.50 per month" in ok.stdout, ok.stderr
    from tokenomy.ledger.base import MAX_MONEY
    from tokenomy.money import MAX_USD

    assert MAX_USD <= MAX_MONEY  # the cap of every USD option is what the budget columns hold


def test_keys_teams_lists_each_team_budget_with_its_spend_this_period(tmp_path):
    """Team budgets could be set (`keys team-budget`) but not listed: nothing showed a team's limit or spend."""
    import json
    from datetime import UTC, datetime, timedelta
    from decimal import Decimal

    from tokenomy.gateway.keys import KeyStore
    from tokenomy.ledger.events import UsageEvent
    from tokenomy.ledger.store import open_store

    ledger = tmp_path / "ledger.duckdb"
    empty = subprocess.run(
        [TOKENOMY, "keys", "teams", "--ledger", str(ledger)], capture_output=True, text=True, timeout=120
    )
    assert empty.returncode == 2 and "no ledger" in empty.stderr  # a typo, not an empty ledger
    store = open_store(ledger)
    keys = KeyStore(store)
    keys.set_team_budget("research", Decimal("50"), "month")
    keys.set_team_budget("cx", Decimal("5"), "day")
    now = datetime.now(UTC)
    store.write(
        [
            UsageEvent(ts=now - timedelta(minutes=m), provider="p", model="m", tenant=team, cost_usd=Decimal(cost))
            for m, team, cost in ((1, "research", "1.25"), (2, "cx", "6"), (3, "other", "9"))
        ]
    )
    del keys, store  # DuckDB: one process at a time holds the file
    listed = subprocess.run(
        [TOKENOMY, "keys", "teams", "--ledger", str(ledger), "--json"], capture_output=True, text=True, timeout=120
    )
    rows = {r["team"]: r for r in json.loads(listed.stdout)}
    assert sorted(rows) == ["cx", "research"]
    assert (rows["research"]["spent_usd"], rows["research"]["left_usd"], rows["research"]["period"]) == (
        "1.250000",
        "48.750000",
        "month",
    )
    assert (rows["cx"]["spent_usd"], rows["cx"]["left_usd"]) == ("6.000000", "0.000000")  # over: nothing left
    table = subprocess.run(
        [TOKENOMY, "keys", "teams", "--ledger", str(ledger)], capture_output=True, text=True, timeout=120
    )
    assert "research" in table.stdout and "$48.750000" in table.stdout, table.stdout
    # One scale for the money of one table: the budget beside what was spent and what is left ($50.00 read as a
    # different kind of figure beside $1.250000).
    assert "$50.000000" in table.stdout and "$50.00 " not in table.stdout, table.stdout


def test_keys_list_on_a_ledger_with_no_keys_says_how_to_create_one(tmp_path):
    # It printed an empty "Keys" table with no hint, where `keys teams` says how to set a team budget.
    import json

    from tokenomy.ledger.store import open_store

    ledger = tmp_path / "ledger.duckdb"
    store = open_store(ledger)
    del store  # DuckDB: one process at a time holds the file
    listed = subprocess.run(
        [TOKENOMY, "keys", "list", "--ledger", str(ledger)], capture_output=True, text=True, timeout=120
    )
    assert listed.returncode == 0 and "no keys in this ledger" in listed.stdout, listed.stderr
    assert "tokenomy keys create" in listed.stdout
    as_json = subprocess.run(
        [TOKENOMY, "keys", "list", "--ledger", str(ledger), "--json"], capture_output=True, text=True, timeout=120
    )
    assert json.loads(as_json.stdout) == []


def test_keys_teams_json_prints_the_spend_its_table_prints(tmp_path):
    # The JSON wrote the ledger's exact record ("0.0000045") where the table printed $0.000004: one spend, two figures.
    import json
    from datetime import UTC, datetime
    from decimal import Decimal

    from typer.testing import CliRunner

    from tokenomy.cli import app
    from tokenomy.gateway.keys import KeyStore
    from tokenomy.ledger.events import UsageEvent
    from tokenomy.ledger.store import open_store

    ledger = tmp_path / "ledger.duckdb"
    store = open_store(ledger)
    KeyStore(store).set_team_budget("research", Decimal("50"), "total")
    store.write(
        [UsageEvent(ts=datetime.now(UTC), provider="p", model="m", tenant="research", cost_usd=Decimal("0.0000045"))]
    )
    del store
    runner = CliRunner()
    rows = json.loads(runner.invoke(app, ["keys", "teams", "--ledger", str(ledger), "--json"]).stdout)
    assert (rows[0]["spent_usd"], rows[0]["left_usd"]) == ("0.000004", "49.999996")
    table = runner.invoke(app, ["keys", "teams", "--ledger", str(ledger)], env={"COLUMNS": "200"}).output
    assert "$0.000004" in table and "$49.999996" in table, table


def test_a_budget_finer_than_the_column_keeps_is_refused_not_stored_as_zero(tmp_path):
    # DECIMAL(20,12) rounded 0.0000000000004 to 0: a key whose budget was silently $0, refusing every call.
    ledger = tmp_path / "ledger.duckdb"
    for args in (["keys", "create"], ["keys", "team-budget", "research"]):
        bad = subprocess.run(
            [TOKENOMY, *args, "--budget-usd", "0.0000000000004", "--ledger", str(ledger)],
            capture_output=True,
            text=True,
            timeout=120,
        )
        assert bad.returncode == 2 and "Traceback" not in bad.stderr, bad.stderr
        assert bad.stderr.startswith("error: --budget-usd 0.0000000000004: budgets are kept to 12 decimal places")
    ok = subprocess.run(
        [TOKENOMY, "keys", "team-budget", "research", "--budget-usd", "0.000000000001", "--ledger", str(ledger)],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert ok.returncode == 0, ok.stderr


def test_usd_options_are_read_as_decimals_and_echoed_as_typed(tmp_path):
    # Read as floats first, `--budget-usd 1e400` was refused as "Infinity" and 0.1234567890123456789 echoed as
    # 0.12345678901234568: neither is what was typed.
    ledger = tmp_path / "ledger.duckdb"
    cases = [
        (["keys", "create", "--budget-usd", "1e400"], "error: --budget-usd 1e+400: give an amount in dollars"),
        (["keys", "team-budget", "research", "--budget-usd", "1e400"], "error: --budget-usd 1e+400: give an amount"),
        (
            ["keys", "create", "--budget-usd", "0.1234567890123456789"],
            "error: --budget-usd 0.1234567890123456789: budgets are kept to 12 decimal places",
        ),
        (["keys", "create", "--budget-usd", "fifty"], "'fifty' is not an amount; give a number of dollars, e.g. 50"),
        # Decimal("inf") prints as "Infinity", which nobody typed: the word is echoed as it was.
        (["keys", "create", "--budget-usd", "inf"], "'inf': give an amount in dollars, a finite number >= 0"),
        (["keys", "team-budget", "research", "--budget-usd", "NaN"], "'NaN': give an amount in dollars"),
        (
            ["plan", "breakeven", "--model", "anthropic.claude-v2:1", "--input-share", "0.5", "--hourly-usd", "inf"],
            "'inf': give an amount in dollars",
        ),
        (
            ["plan", "breakeven", "--model", "anthropic.claude-v2:1", "--input-share", "0.5", "--hourly-usd", "1e400"],
            "error: --hourly-usd 1e+400: give a price in USD",
        ),
    ]
    for args, message in cases:
        bad = subprocess.run(
            [TOKENOMY, *args, "--ledger", str(ledger)] if args[0] == "keys" else [TOKENOMY, *args],
            capture_output=True,
            text=True,
            timeout=120,
        )
        assert bad.returncode == 2 and "Traceback" not in bad.stderr, bad.stderr
        assert message in bad.stderr and "Infinity" not in bad.stderr, bad.stderr
    assert not ledger.exists()
