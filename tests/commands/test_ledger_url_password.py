"""A postgresql:// ledger's password is never printed: commands that name the ledger they read show it hidden."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest


@pytest.mark.slow
def test_report_html_on_an_empty_server_ledger_names_it_without_its_password(fresh_postgres_url, tmp_path: Path):
    from tokenomy.ledger.store import open_store

    url = fresh_postgres_url.replace("postgresql://postgres@", "postgresql://postgres:s3cretPass@")
    open_store(url)  # a ledger with no calls yet (the test cluster trusts any password)
    done = subprocess.run(
        [sys.executable, "-m", "tokenomy.cli", "report", "--html", str(tmp_path / "r.html"), "--ledger", url],
        capture_output=True,
        text=True,
        timeout=120,
    )
    said = done.stdout + done.stderr
    assert done.returncode != 0 and "no calls in ledger" in said, said
    assert "s3cretPass" not in said and "postgres:***@" in said, said
