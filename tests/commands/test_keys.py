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
            bad = subprocess.run([TOKENOMY, *args, "--budget-usd", amount, "--ledger", str(ledger)],
                                 capture_output=True, text=True, timeout=120)
            assert bad.returncode == 2 and "Traceback" not in bad.stderr, bad.stderr
            assert bad.stderr.startswith("error: --budget-usd ") and "under 100,000,000" in bad.stderr
    assert not ledger.exists()  # refused before the ledger was opened
    ok = subprocess.run([TOKENOMY, "keys", "team-budget", "research", "--budget-usd", "99999999.5", "--ledger",
                         str(ledger)], capture_output=True, text=True, timeout=120)
    assert ok.returncode == 0 and "research: $99,999,999.50 per month" in ok.stdout, ok.stderr
