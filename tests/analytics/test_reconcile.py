"""`report reconcile` and the billing_mismatch alert on DuckDB and PostgreSQL: metered Bedrock (recorded as the
Bedrock provider names itself, `aws.bedrock`, while its bill says `bedrock`), OpenAI and
Anthropic calls (priced by the catalog, as the gateway records them) next to their imported bills, which
differ on purpose — OpenAI bills cached input at the full input rate (a missing cache discount), Anthropic
bills a model no call went to (unmetered traffic), Bedrock agrees. Every figure is checked against a
computation of its own from the raw numbers written into the bills."""

from __future__ import annotations

import csv
import io
import json
from datetime import UTC, datetime, timedelta
from decimal import Decimal

import pandas as pd
import pytest
from typer.testing import CliRunner

from tokenomy.analytics.alerts import evaluate
from tokenomy.analytics.billed import canonical_provider
from tokenomy.analytics.reconcile import model_key, reconcile
from tokenomy.analytics.reports import run_report
from tokenomy.chat_response import Usage
from tokenomy.cli import app
from tokenomy.ledger.events import UsageEvent
from tokenomy.ledger.store import open_store
from tokenomy.money import money_str
from tokenomy.pricing.cost import compute_cost

D1 = datetime(2025, 11, 24, tzinfo=UTC)
D2 = D1 + timedelta(days=1)
MINI, HAIKU_BR, HAIKU, SONNET = (
    "gpt-4o-mini-2024-07-18",
    "anthropic.claude-3-haiku-20240307-v1:0",
    "claude-3-5-haiku-20241022",
    "claude-sonnet-4-20250514",
)


def _call(ts: datetime, provider: str, model: str, usage: Usage, region: str | None = None) -> UsageEvent:
    event = UsageEvent(
        ts=ts,
        provider=provider,
        model=model,
        region=region,
        input_tokens=usage.input_tokens,
        output_tokens=usage.output_tokens,
        cache_read_tokens=usage.cache_read_tokens,
    )
    return event.apply_cost(compute_cost(usage, model, region))


def _metered() -> list[UsageEvent]:
    calls = [
        _call(D1 + timedelta(hours=h), "aws.bedrock", HAIKU_BR, Usage(1000 * h, 200 * h), "us-east-1")
        for h in (1, 2, 3)
    ]
    calls += [_call(D1 + timedelta(hours=h), "openai", MINI, Usage(2000, 500, 8000)) for h in (4, 5)]
    calls.append(_call(D1 + timedelta(hours=6), "anthropic", HAIKU, Usage(1000, 100)))
    calls.append(_call(D2 + timedelta(hours=1), "openai", MINI, Usage(300, 30)))  # day 2: no bill imported yet
    return calls


def _bills(tmp_path, metered: list[UsageEvent]) -> tuple[list[list[str]], dict[tuple, Decimal]]:
    """The three bills as import commands, and the billed dollars per (provider, model) they carry."""

    def total(provider: str, field: str) -> Decimal:
        return sum((getattr(e, field) for e in metered if e.provider == provider and e.ts < D2), Decimal(0))

    def tokens(provider: str, field: str) -> int:
        return sum(getattr(e, field) for e in metered if e.provider == provider and e.ts < D2)

    billed: dict[tuple, Decimal] = {}
    # Bedrock (AWS FOCUS export): exactly what was metered.
    focus = tmp_path / "aws-focus.csv"
    lines = [
        (
            f"USE1-Claude3Haiku-{kind}-tokens",
            tokens("aws.bedrock", f"{kind}_tokens"),
            total("aws.bedrock", f"{kind}_cost_usd"),
        )
        for kind in ("input", "output")
    ]
    pd.DataFrame(
        [
            {
                "ChargePeriodStart": "2025-11-24T00:00:00Z",
                "ChargePeriodEnd": "2025-11-25T00:00:00Z",
                "ProviderName": "AWS",
                "ServiceName": "Amazon Bedrock",
                "ChargeCategory": "Usage",
                "x_UsageType": usage_type,
                "ConsumedQuantity": str(n),
                "ConsumedUnit": "Tokens",
                "BilledCost": str(cost),
                "RegionId": "us-east-1",
                "SubAccountId": "444455556666",
            }
            for usage_type, n, cost in lines
        ]
    ).to_csv(focus, index=False)
    billed[("bedrock", HAIKU_BR)] = sum((cost for _, _, cost in lines), Decimal(0))
    # OpenAI (Usage + Costs API pages): the cached input billed at the full input rate of $0.15/M.
    cached = tokens("openai", "cache_read_tokens")
    full_rate_cached = Decimal("0.15") * cached / 10**6
    costs = [
        ("input", total("openai", "input_cost_usd")),
        ("cached input", full_rate_cached),
        ("output", total("openai", "output_cost_usd")),
    ]
    start = int(D1.timestamp())
    pages = [
        {
            "object": "page",
            "data": [
                {
                    "object": "bucket",
                    "start_time": start,
                    "end_time": start + 86400,
                    "results": [
                        {
                            "object": "organization.usage.completions.result",
                            "model": MINI,
                            "batch": False,
                            "project_id": "p1",
                            "input_tokens": tokens("openai", "input_tokens") + cached,
                            "input_cached_tokens": cached,
                            "output_tokens": tokens("openai", "output_tokens"),
                            "num_model_requests": 2,
                        }
                    ],
                }
            ],
            "has_more": False,
        },
        {
            "object": "page",
            "data": [
                {
                    "object": "bucket",
                    "start_time": start,
                    "end_time": start + 86400,
                    "results": [
                        {
                            "object": "organization.costs.result",
                            "amount": {"value": float(cost), "currency": "usd"},
                            "line_item": f"{MINI}, {kind}",
                            "project_id": "p1",
                        }
                        for kind, cost in costs
                    ],
                }
            ],
            "has_more": False,
        },
    ]
    openai_file = tmp_path / "openai.jsonl"
    openai_file.write_text("\n".join(json.dumps(p) for p in pages))
    billed[("openai", MINI)] = sum((cost for _, cost in costs), Decimal(0))
    # Anthropic (cost report, cents): Haiku as metered, plus Sonnet that no metered call used.
    haiku = [
        ("uncached_input_tokens", total("anthropic", "input_cost_usd")),
        ("output_tokens", total("anthropic", "output_cost_usd")),
    ]
    sonnet = [("uncached_input_tokens", Decimal("0.03")), ("output_tokens", Decimal("0.015"))]
    report = {
        "data": [
            {
                "starting_at": "2025-11-24T00:00:00Z",
                "ending_at": "2025-11-25T00:00:00Z",
                "results": [
                    {
                        "currency": "USD",
                        "amount": str(cost * 100),
                        "model": model,
                        "service_tier": "standard",
                        "token_type": kind,
                        "cost_type": "tokens",
                        "workspace_id": None,
                        "description": None,
                    }
                    for model, items in ((HAIKU, haiku), (SONNET, sonnet))
                    for kind, cost in items
                ],
            }
        ],
        "has_more": False,
    }
    anthropic_file = tmp_path / "anthropic-cost.json"
    anthropic_file.write_text(json.dumps(report))
    billed[("anthropic", HAIKU)] = sum((c for _, c in haiku), Decimal(0))
    billed[("anthropic", SONNET)] = sum((c for _, c in sonnet), Decimal(0))
    commands = [["focus", str(focus)], ["openai-usage", str(openai_file)], ["anthropic-usage", str(anthropic_file)]]
    return commands, billed


def _expected(metered: list[UsageEvent], billed: dict[tuple, Decimal], tolerance: Decimal) -> dict[tuple, dict]:
    """Reconciliation computed directly from the calls and the bills' own numbers."""
    out = {}
    for provider, model in set(billed) | {(canonical_provider(e.provider), e.model) for e in metered}:
        for day in (D1, D2):
            cost = [
                e.cost_usd
                for e in metered
                if (canonical_provider(e.provider), e.model) == (provider, model)
                and day <= e.ts < day + timedelta(days=1)
            ]
            bill = billed.get((provider, model)) if day == D1 else None
            if not cost and bill is None:
                continue
            m = sum(cost, Decimal(0))
            if bill is None:
                status, diff, pct = "no_billing_data", None, None
            elif not cost:
                status, diff, pct = "unmetered", bill - m, None
            else:
                diff = bill - m
                pct = round(diff / m * 100, 2)
                status = "mismatch" if abs(diff / m * 100) > tolerance else "ok"
            out[(day.date().isoformat(), provider, model_key(model))] = {
                "metered_usd": m,
                "billed_usd": bill,
                "difference_usd": diff,
                "difference_pct": pct,
                "status": status,
                "flagged": status in ("mismatch", "unmetered"),
                "unmetered_usd": bill if status == "unmetered" else 0,
            }
    return out


@pytest.mark.parametrize("url_fixture", ["ledger_path", "fresh_postgres_url"])
def test_reconcile_names_each_difference(request, tmp_path, url_fixture) -> None:
    url = str(request.getfixturevalue(url_fixture))
    store = open_store(url)
    metered = _metered()
    store.write(metered)
    commands, billed = _bills(tmp_path, metered)
    for args in commands:
        result = CliRunner().invoke(app, ["import", *args, "--json", "--ledger", url])
        assert result.exit_code == 0, result.output
    rows = reconcile(store, since=D1, until=D2 + timedelta(days=1), tolerance_pct=5)
    got = {(r["day"], r["provider"], model_key(r["model"])): r for r in rows}
    expected = _expected(metered, billed, Decimal(5))
    assert set(got) == set(expected)
    for key, want in expected.items():
        assert {k: got[key][k] for k in want} == want, key
    # The causes say what differs, in the bill's own figures.
    mini = got[("2025-11-24", "openai", "gpt4omini")]
    full = Decimal("0.15") * 16000 / 10**6
    discounted = sum(e.cache_read_cost_usd for e in metered if e.model == MINI)
    assert (
        mini["cause"]
        == f"cache discount missing on the bill; cache read billed ${full:.6f} vs metered ${discounted:.6f}"
    )
    assert got[("2025-11-24", "anthropic", "claudesonnet4")]["cause"].startswith("billed with no metered call")
    assert got[("2025-11-24", "bedrock", "claude3haiku")]["status"] == "ok"
    # Spend reports count each call once: a provider's metered day is its calls (its bill is reconciled here,
    # not added to them), so the total is what was metered.
    spend = {r["provider"]: r["cost_usd"] for r in run_report(store, "spend", by="provider")}
    assert spend == {
        p: sum(e.cost_usd for e in metered if canonical_provider(e.provider) == p)
        for p in ("bedrock", "openai", "anthropic")
    }  # the Bedrock bill pairs with aws.bedrock calls

    # The CLI: JSON rows and flagged count; by provider one row per provider and day.
    cli = CliRunner().invoke(
        app, ["report", "reconcile", "--since", "2025-11-24", "--until", "2025-11-26", "--json", "--ledger", url]
    )
    assert cli.exit_code == 0, cli.output
    body = json.loads(cli.stdout)
    assert body["flagged"] == sum(1 for w in expected.values() if w["flagged"]) == 2
    # The CSV carries every field the JSON has (metered_calls and billed_models were missing), with its values.
    as_csv = CliRunner().invoke(
        app, ["report", "reconcile", "--since", "2025-11-24", "--until", "2025-11-26", "--csv", "--ledger", url]
    )
    assert as_csv.exit_code == 0, as_csv.output
    csv_rows = list(csv.DictReader(io.StringIO(as_csv.stdout)))
    assert set(csv_rows[0]) == set(body["rows"][0]) and len(csv_rows) == len(body["rows"])

    def cell(value) -> str:
        if value is None:
            return ""
        if isinstance(value, bool):
            return "true" if value else "false"
        return ";".join(value) if isinstance(value, list) else str(value)

    for got_row, want in zip(csv_rows, body["rows"], strict=True):
        assert got_row == {k: cell(v) for k, v in want.items()}
    assert any(r["billed_models"] and r["metered_calls"] not in ("", "0") for r in csv_rows)
    table = CliRunner().invoke(
        app,
        ["report", "reconcile", "--since", "2025-11-24", "--until", "2025-11-26", "--ledger", url],
        env={"COLUMNS": "200"},
    )
    assert "! mismatch" in table.stdout and "! unmetered" in table.stdout and "cache discount missing" in table.stdout
    by_provider = reconcile(store, by="provider", since=D1, until=D2)
    assert {(r["provider"], r["status"]) for r in by_provider} == {
        ("bedrock", "ok"),
        ("openai", "mismatch"),
        ("anthropic", "mismatch"),
    }
    anthropic = next(r for r in by_provider if r["provider"] == "anthropic")
    assert anthropic["difference_usd"] == billed[("anthropic", SONNET)] + billed[("anthropic", HAIKU)] - sum(
        e.cost_usd for e in metered if e.provider == "anthropic"
    )
    # A wider tolerance forgives the cache discount, never the unmetered spend.
    loose = reconcile(store, since=D1, until=D2, tolerance_pct=1000)
    assert [(r["provider"], r["status"]) for r in loose if r["flagged"]] == [("anthropic", "unmetered")]

    # The alert: one per flagged day and model, sent once.
    alerts = [a for a in evaluate(store, [], now=D2 + timedelta(hours=12)) if a["kind"] == "billing_mismatch"]
    assert sorted(a["subject"] for a in alerts) == [f"anthropic/{SONNET}", f"openai/{MINI}"]
    unmetered = next(a for a in alerts if a["provider"] == "anthropic")
    assert unmetered["unmetered_usd"] == billed[("anthropic", SONNET)] and unmetered["day"] == "2025-11-24"


@pytest.mark.parametrize(
    ("metered", "billed"),
    [
        ("anthropic.claude-3-haiku-20240307-v1:0", "Claude3Haiku"),  # Bedrock call, CUR/FOCUS usage type
        ("us.anthropic.claude-3-5-haiku-20241022-v1:0", "Claude3.5Haiku"),  # cross-region inference profile
        ("gpt-4o-mini", "gpt-4o-mini-2024-07-18"),  # alias, OpenAI's dated snapshot
        ("gpt-4o-mini-2024-07-18", "gpt-4o-mini-0718"),  # Azure's meter names the version
        ("gemini-2.0-flash-001", "gemini-2.0-flash"),  # Vertex version, billing SKU
        ("amazon.nova-micro-v1:0", "NovaMicro"),
    ],
)
def test_model_keys_meet_across_naming_schemes(metered, billed) -> None:
    assert model_key(metered) == model_key(billed)


def test_model_keys_keep_different_models_apart() -> None:
    names = [
        "claude-3-haiku-20240307",
        "claude-3-5-haiku-20241022",
        "claude-sonnet-4-20250514",
        "claude-sonnet-4-5@20250929",
        "gpt-4o-2024-08-06",
        "gpt-4o-mini-2024-07-18",
        "gemini-2.0-flash-lite",
    ]
    assert len({model_key(n) for n in names}) == len(names)


def test_a_day_with_no_bill_yet_is_not_diagnosed_as_a_billing_difference(tmp_path) -> None:
    # With no bill imported the row said "cache discount missing on the bill; input tokens billed 0 vs metered 3000"
    # (JSON and CSV `cause`): a diagnosis of a bill that does not exist.
    store = open_store(tmp_path / "ledger.duckdb")
    store.write([_call(D1 + timedelta(hours=1), "openai", MINI, Usage(3000, 20, cache_read_tokens=1024))])
    [row] = reconcile(store, since=D1, until=D2)
    assert row["status"] == "no_billing_data" and not row["flagged"]
    assert "billed 0" not in row["cause"] and "cache discount" not in row["cause"], row["cause"]
    assert row["cause"].startswith("no bill imported for openai on 2025-11-24 yet"), row["cause"]


def test_the_tolerance_default_in_the_help_is_the_one_reconcile_uses() -> None:
    # The help hard-coded "[default: 5]": a change to the default would have left the help saying 5. It is read from
    # the constant now; a process that sets another value before the CLI is built shows that value.
    import os
    import subprocess
    import sys

    from tokenomy.analytics import reconcile as module

    def help_text(code: str) -> str:
        env = {**os.environ, "COLUMNS": "250", "NO_COLOR": "1", "TERM": "dumb"}
        out = subprocess.run(
            [sys.executable, "-c", code, "report", "--help"], capture_output=True, text=True, timeout=120, env=env
        )
        assert out.returncode == 0, out.stderr
        return " ".join(out.stdout.split())

    main = "from tokenomy.cli import main; main()"
    assert f"[default: {module.DEFAULT_TOLERANCE_PCT}]" in help_text(main)
    changed = help_text(
        f"from decimal import Decimal; import tokenomy.analytics as a; a.DEFAULT_TOLERANCE_PCT = Decimal('7.5'); {main}"
    )
    assert "[default: 7.5]" in changed


def test_a_billing_alert_prints_its_dollars_by_the_money_rule(tmp_path) -> None:
    # The message wrote the Decimals as they came: "billed 0.047800000000 vs metered 0 USD", in `alerts check`'s table
    # and the console's alert list, beside every other alert's "$0.446922".
    store = open_store(tmp_path / "ledger.duckdb")
    metered = _call(D1 + timedelta(hours=1), "openai", MINI, Usage(3000, 20))
    bill = UsageEvent(
        ts=D1,
        provider="openai",
        model=MINI,
        input_tokens=3000,
        output_tokens=20,
        cost_usd=Decimal("0.0478"),
        priced_by="billed",
    )
    unmetered = UsageEvent(
        ts=D1, provider="anthropic", model=HAIKU, input_tokens=100, cost_usd=Decimal("0.01"), priced_by="billed"
    )
    store.write([metered, bill, unmetered])
    alerts = {a["provider"]: a["message"] for a in evaluate(store, [], now=D2) if a["kind"] == "billing_mismatch"}
    assert alerts["openai"].startswith(f"mismatch: billed $0.047800 vs metered ${money_str(metered.cost_usd)};"), alerts
    assert alerts["anthropic"].startswith("unmetered: billed $0.010000 vs metered $0.000000;"), alerts
