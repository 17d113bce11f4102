"""Azure OpenAI PTUs as a provisioned mode of `plan breakeven`: the user's hourly price, Azure's published
input tokens per minute per PTU as a stated assumption, the 15-PTU minimum in steps of 5."""

from __future__ import annotations

import json
from decimal import Decimal

import pytest
from typer.testing import CliRunner

from tokenomy.cli import app
from tokenomy.errors import ConfigError
from tokenomy.pricing.catalog import default_catalog


def run(*args: str):
    return CliRunner().invoke(app, ["plan", "breakeven", "--provisioned", "azure-ptu", *args])


def test_ptu_breakeven_against_a_hand_computation():
    result = run("--model", "azure/gpt-4o", "--units", "20", "--hourly-usd", "2", "--input-share", "0.75", "--json")
    assert result.exit_code == 0, result.output
    out = json.loads(result.output)
    entry = default_catalog().lookup("gpt-4o")
    blended = Decimal("0.75") * entry.input + Decimal("0.25") * entry.output
    on_demand_hour = Decimal(2500 * 20 * 60) * blended / Decimal(1_000_000)  # Azure's 2,500 input TPM per PTU
    assert Decimal(out["provisioned_hourly_usd"]) == Decimal(40)
    assert Decimal(out["on_demand_hourly_usd_at_full_capacity"]) == on_demand_hour
    assert out["breakeven_utilization"] == pytest.approx(float(Decimal(40) / on_demand_hour), rel=1e-12)
    assert out["term"] == "ptu-hour" and out["tpm_per_unit"] == 2500 and out["tpm_per_unit_assumed"] is True
    assert "INPUT tokens/min per PTU" in out["sources"]["tpm_per_unit"]


def test_ptu_capacity_from_the_command_line_is_not_an_assumption():
    args = ("--model", "gpt-4o-mini", "--hourly-usd", "1", "--tpm-per-unit", "30000", "--input-share", ".9")
    result = run(*args, "--json")
    out = json.loads(result.output)
    assert out["units"] == 15 and out["tpm_per_unit"] == 30000 and out["tpm_per_unit_assumed"] is False


def test_ptu_refusals_name_the_fix():
    # Through the CLI's entry point these are one "error: ..." line and exit code 2 (ConfigError).
    for args, fix in (
        (("--model", "gpt-4o", "--input-share", "0.5"), "--hourly-usd"),
        (("--model", "gpt-4o", "--units", "17", "--hourly-usd", "1", "--input-share", "0.5"), "--units 20"),
        (("--model", "gpt-4-turbo", "--hourly-usd", "1", "--input-share", "0.5"), "--tpm-per-unit"),
    ):
        result = run(*args)
        assert isinstance(result.exception, ConfigError) and fix in str(result.exception), result.output
