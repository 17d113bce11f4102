"""Billing and usage imports: OpenAI's Usage/Costs APIs and Anthropic's Admin usage/cost reports served on
127.0.0.1 with the documented page shapes (pagination, cached input, batch, cache-creation split, service
tier), the same pages saved to files, FOCUS exports of four clouds and a Google Cloud billing export
(committed under billing_exports/). Each re-import adds nothing, and imported rows never double-count
metered calls in the spend reports."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from pathlib import Path

import pandas as pd
import pytest
from typer.testing import CliRunner

from helpers.billing_api import DAY1, KEYS, billing_server
from tokenomy.analytics.reports import REPORTS, run_report
from tokenomy.cli import app
from tokenomy.errors import ConfigError, UsageError
from tokenomy.ledger.events import UsageEvent
from tokenomy.ledger.store import open_store

EXPORTS = Path(__file__).parent / "billing_exports"
D1, D2 = datetime.fromtimestamp(DAY1, UTC), datetime.fromtimestamp(DAY1 + 86_400, UTC)


def _import(args: list[str], ledger: Path, env: dict[str, str] | None = None) -> dict:
    result = CliRunner().invoke(app, ["import", *args, "--json", "--ledger", str(ledger)], env=env)
    assert result.exit_code == 0, result.output
    return json.loads(result.stdout)


def _by_key(ledger: Path) -> dict[tuple, UsageEvent]:
    return {(e.ts.date().isoformat(), e.model, e.mode): e for e in open_store(ledger).events()}


def _check_openai_rows(rows: dict[tuple, UsageEvent]) -> None:
    mini = rows[("2025-11-24", "gpt-4o-mini-2024-07-18", "on_demand")]
    # input_tokens 10,000 include 4,000 cached: 6,000 uncached input and 4,000 cache reads
    assert (mini.input_tokens, mini.cache_read_tokens, mini.output_tokens) == (6000, 4000, 2000)
    assert (mini.input_cost_usd, mini.cache_read_cost_usd, mini.output_cost_usd) == (
        Decimal("0.0009"),
        Decimal("0.0003"),
        Decimal("0.0012"),
    )
    assert mini.cost_usd == Decimal("0.0024") and mini.priced_by == "billed"
    assert mini.tags == {"source": "openai-usage", "account": "proj_a", "granularity": "1d"}
    batch = rows[("2025-11-24", "gpt-4o-mini-2024-07-18", "batch")]
    assert (batch.input_tokens, batch.output_tokens, batch.cost_usd) == (5000, 1000, Decimal("0.000675"))
    tool = rows[("2025-11-24", "web search tool calls", "on_demand")]  # not tokens: kept as its own billed row
    assert (tool.cost_usd, tool.input_tokens + tool.output_tokens) == (Decimal("0.025"), 0)
    big = rows[("2025-11-25", "gpt-4o-2024-08-06", "on_demand")]
    assert (big.input_tokens, big.cache_read_tokens, big.output_tokens, big.cost_usd) == (
        2000,
        1000,
        500,
        Decimal("0.01125"),
    )
    assert len(rows) == 4


def test_openai_usage_from_the_api_follows_pages_and_splits_cache_and_batch(ledger_path) -> None:
    with billing_server() as server:
        args = ["openai-usage", "--base-url", server.url, "--since", "2025-11-24", "--until", "2025-11-26"]
        summary = _import(args, ledger_path, env={"OPENAI_ADMIN_KEY": KEYS["openai"]})
        assert (summary["read"], summary["added"], summary["problems"]) == (4, 4, [])
        seen = [(path, query.get("page", [None])[0]) for path, query in server.requests]
        usage, costs = "/v1/organization/usage/completions", "/v1/organization/costs"
        assert seen == [(usage, None), (usage, "cursor-1"), (costs, None), (costs, "cursor-1")]
        usage_query = server.requests[0][1]
        # by service tier too: a flex or priority call is billed at its tier's price (OpenAI's Usage API groups by
        # project_id, user_id, api_key_id, model, batch, service_tier)
        assert usage_query["group_by"] == ["model", "batch", "project_id", "service_tier"]
        assert usage_query["bucket_width"] == ["1d"]
        assert usage_query["start_time"] == [str(DAY1)] and usage_query["end_time"] == [str(DAY1 + 2 * 86_400)]
        _check_openai_rows(_by_key(ledger_path))
        again = _import(args, ledger_path, env={"OPENAI_ADMIN_KEY": KEYS["openai"]})
        assert (again["read"], again["added"], again["already_in_ledger"]) == (4, 0, 4)
        wrong = CliRunner().invoke(app, ["import", *args, "--ledger", str(ledger_path)], env={"OPENAI_ADMIN_KEY": "x"})
        assert wrong.exit_code != 0 and "HTTP 401" in str(wrong.exception)
    unset = CliRunner().invoke(
        app, ["import", "openai-usage", "--ledger", str(ledger_path)], env={"OPENAI_ADMIN_KEY": ""}
    )
    assert isinstance(unset.exception, ConfigError) and "OPENAI_ADMIN_KEY is not set" in str(unset.exception)


def test_openai_usage_from_saved_pages_matches_the_api(ledger_path, tmp_path) -> None:
    summary = _import(["openai-usage", str(EXPORTS / "openai_usage_and_costs.jsonl")], ledger_path)
    assert (summary["added"], summary["problems"]) == (4, [])
    _check_openai_rows(_by_key(ledger_path))
    assert _import(["openai-usage", str(EXPORTS / "openai_usage_and_costs.jsonl")], ledger_path)["added"] == 0
    # the usage pages alone: no bill, so the rows are priced from the catalog and say so
    usage_only = tmp_path / "usage.jsonl"
    usage_only.write_text("\n".join((EXPORTS / "openai_usage_and_costs.jsonl").read_text().splitlines()[:2]))
    other = tmp_path / "other.duckdb"
    _import(["openai-usage", str(usage_only)], other)
    mini = _by_key(other)[("2025-11-24", "gpt-4o-mini-2024-07-18", "on_demand")]
    assert mini.tags["cost_from"] == "catalog" and mini.priced_by == "billed"
    assert (
        mini.cost_usd
        == Decimal("0.15") * 6000 / 10**6 + Decimal("0.075") * 4000 / 10**6 + Decimal("0.60") * 2000 / 10**6
    )


def _tiered_pages(tmp_path: Path, costs: bool) -> Path:
    """One day of o3 usage grouped by service tier (the Usage API's `service_tier`: "default", "flex", "priority"),
    with or without the day's cost line items (which name no tier)."""

    def usage(tier: str, total: int, cached: int, output: int) -> dict:
        return {
            "object": "organization.usage.completions.result",
            "input_tokens": total,
            "input_cached_tokens": cached,
            "output_tokens": output,
            "num_model_requests": 3,
            "project_id": "proj_a",
            "model": "o3",
            "batch": False,
            "service_tier": tier,
        }

    pages = [
        {
            "object": "page",
            "data": [
                {
                    "object": "bucket",
                    "start_time": DAY1,
                    "end_time": DAY1 + 86_400,
                    "results": [
                        usage("default", 10_000, 4_000, 2_000),
                        usage("flex", 10_000, 4_000, 2_000),
                        usage("priority", 1_000, 0, 100),
                    ],
                }
            ],
        }
    ]
    if costs:
        items = [("o3, input", "0.02"), ("o3, cached input", "0.003"), ("o3, output", "0.0254")]
        pages.append(
            {
                "object": "page",
                "data": [
                    {
                        "object": "bucket",
                        "start_time": DAY1,
                        "end_time": DAY1 + 86_400,
                        "results": [
                            {
                                "object": "organization.costs.result",
                                "amount": {"value": value, "currency": "usd"},
                                "line_item": item,
                                "project_id": "proj_a",
                            }
                            for item, value in items
                        ],
                    }
                ],
            }
        )
    path = tmp_path / ("billed.jsonl" if costs else "usage.jsonl")
    path.write_text("\n".join(json.dumps(page) for page in pages) + "\n")
    return path


def test_openai_usage_by_service_tier_is_priced_at_each_tier_and_a_bill_stays_whole(ledger_path, tmp_path) -> None:
    """Usage without its bill, by tier: the flex and priority lines were merged into the standard one and the row priced
    at the standard tier. o3 per 1M tokens (openai.yaml, from OpenAI's pricing page): standard $2 in / $0.50 cached /
    $8 out, flex $1 / $0.25 / $4, priority $3.50 / $0.875 / $14. With the bill (line items name no tier) the row keeps
    the billed figures, whole."""
    _import(["openai-usage", str(_tiered_pages(tmp_path, costs=False))], ledger_path)
    rows = {e.tags.get("service_tier"): e for e in open_store(ledger_path).events()}
    assert set(rows) == {None, "flex", "priority"}
    m = Decimal(1_000_000)
    assert rows[None].cost_usd == (6_000 * 2 + 4_000 * Decimal("0.50") + 2_000 * 8) / m == Decimal("0.03")
    assert rows["flex"].cost_usd == (6_000 * 1 + 4_000 * Decimal("0.25") + 2_000 * 4) / m == Decimal("0.015")
    assert rows["priority"].cost_usd == (1_000 * Decimal("3.50") + 100 * 14) / m == Decimal("0.0049")
    assert all(e.tags["cost_from"] == "catalog" for e in rows.values())
    assert sum(e.input_tokens + e.cache_read_tokens for e in rows.values()) == 21_000

    billed = tmp_path / "billed.duckdb"
    _import(["openai-usage", str(_tiered_pages(tmp_path, costs=True))], billed)
    (whole,) = open_store(billed).events()
    assert (whole.input_tokens, whole.cache_read_tokens, whole.output_tokens) == (13_000, 8_000, 4_100)
    assert whole.cost_usd == Decimal("0.0484") and "cost_from" not in whole.tags
    assert "service_tier" not in whole.tags  # three tiers in one bill: none of them says what it was


def _check_anthropic_rows(rows: dict[tuple, UsageEvent]) -> None:
    haiku = rows[("2025-11-24", "claude-3-5-haiku-20241022", "on_demand")]
    assert (haiku.input_tokens, haiku.cache_write_tokens, haiku.cache_read_tokens, haiku.output_tokens) == (
        20_000,
        4_000,
        50_000,
        4_000,
    )  # cache writes: 3,000 for 5 minutes + 1,000 for an hour
    # amounts are cents: 1.6 + 0.3 + 0.16 + 0.4 + 1.6 = 4.06 cents
    assert (haiku.input_cost_usd, haiku.cache_write_cost_usd, haiku.cost_usd) == (
        Decimal("0.016"),
        Decimal("0.0046"),
        Decimal("0.0406"),
    )
    assert haiku.tags == {
        "source": "anthropic-usage",
        "account": "wrkspc_1",
        "granularity": "1d",
        "cache_write_1h_tokens": "1000",
    }
    batch = rows[("2025-11-24", "claude-3-5-haiku-20241022", "batch")]
    assert (batch.input_tokens, batch.output_tokens, batch.cost_usd) == (8000, 2000, Decimal("0.0072"))
    assert rows[("2025-11-24", "Web search", "on_demand")].cost_usd == Decimal("0.01")
    assert rows[("2025-11-25", "claude-sonnet-4-20250514", "on_demand")].cost_usd == Decimal("0.0045")
    assert len(rows) == 4


def test_anthropic_usage_from_the_api_and_from_saved_reports(ledger_path, tmp_path) -> None:
    with billing_server() as server:
        args = ["anthropic-usage", "--base-url", server.url, "--since", "2025-11-24", "--until", "2025-11-26"]
        summary = _import(args, ledger_path, env={"ANTHROPIC_ADMIN_KEY": KEYS["anthropic"]})
        assert (summary["added"], summary["problems"]) == (4, [])
        pages = [(path, query.get("page", [None])[0]) for path, query in server.requests]
        assert pages == [
            ("/v1/organizations/usage_report/messages", None),
            ("/v1/organizations/usage_report/messages", "cursor-1"),
            ("/v1/organizations/cost_report", None),
            ("/v1/organizations/cost_report", "cursor-1"),
        ]
        assert server.requests[0][1]["group_by[]"] == ["model", "service_tier", "workspace_id"]
        assert server.requests[0][1]["starting_at"] == ["2025-11-24T00:00:00Z"]
        assert _import(args, ledger_path, env={"ANTHROPIC_ADMIN_KEY": KEYS["anthropic"]})["added"] == 0
    _check_anthropic_rows(_by_key(ledger_path))
    saved = tmp_path / "saved.duckdb"
    files = [str(EXPORTS / "anthropic_usage_report.json"), str(EXPORTS / "anthropic_cost_report.json")]
    assert _import(["anthropic-usage", *files], saved)["added"] == 4
    ids = {k: e.event_id for k, e in _by_key(ledger_path).items()}
    assert {k: e.event_id for k, e in _by_key(saved).items()} == ids  # a saved report is the same data
    _check_anthropic_rows(_by_key(saved))


def test_focus_export_of_four_clouds_keeps_the_model_api_rows(ledger_path) -> None:
    summary = _import(["focus", str(EXPORTS / "focus_multicloud.csv")], ledger_path)
    # skipped: EC2, a VM, a tax and a credit line
    assert (summary["added"], summary["skipped_not_llm_usage"], summary["problems"]) == (5, 4, [])
    rows = {(e.provider, e.model, e.mode): e for e in open_store(ledger_path).events()}
    assert set(rows) == {
        ("bedrock", "Claude3Haiku", "on_demand"),
        ("azure", "gpt-4o-mini-0718", "on_demand"),
        ("vertex", "gemini-2.0-flash", "on_demand"),
        ("vertex", "gemini-2.0-flash", "batch"),
        ("oci", "cohere-command-r", "on_demand"),
    }
    azure = rows[("azure", "gpt-4o-mini-0718", "on_demand")]
    assert (azure.input_tokens, azure.cache_read_tokens, azure.output_tokens) == (12_000, 2_000, 3_000)  # 1K units
    assert (azure.cost_usd, azure.cache_read_cost_usd) == (Decimal("0.00375"), Decimal("0.00015"))
    assert azure.region == "eastus2"
    assert azure.tags == {"source": "focus", "account": "sub-42", "granularity": "1d"}
    vertex = rows[("vertex", "gemini-2.0-flash", "on_demand")]
    assert (vertex.input_tokens, vertex.output_tokens, vertex.cost_usd) == (2_000_000, 500_000, Decimal("0.4"))
    bedrock = rows[("bedrock", "Claude3Haiku", "on_demand")]
    assert (bedrock.input_tokens, bedrock.output_tokens, bedrock.cost_usd) == (10_000, 4_000, Decimal("0.0075"))
    assert _import(["focus", str(EXPORTS / "focus_multicloud.csv")], ledger_path)["added"] == 0


def test_google_cloud_billing_export_vertex_and_gemini_skus(ledger_path) -> None:
    summary = _import(["gcp-billing", str(EXPORTS / "gcp_billing.jsonl")], ledger_path)
    assert (summary["added"], summary["skipped_not_llm_usage"], summary["problems"]) == (2, 2, [])  # Compute, tax
    rows = {(e.provider, e.model): e for e in open_store(ledger_path).events()}
    pro = rows[("vertex", "gemini-2.5-pro")]
    assert (pro.input_tokens, pro.output_tokens, pro.cache_read_tokens) == (1_000_000, 200_000, 1_000_000)
    # 1.25 input + 2.0 output + 0.3125 cached input + 0.45 cache storage (money, no tokens)
    assert (pro.cost_usd, pro.cache_read_cost_usd) == (Decimal("4.0125"), Decimal("0.3125"))
    assert pro.tags == {"source": "gcp-billing", "account": "search-prod", "granularity": "1h"}
    assert rows[("gemini", "gemini-2.0-flash-lite")].cost_usd == Decimal("0.075")
    assert _import(["gcp-billing", str(EXPORTS / "gcp_billing.jsonl")], ledger_path)["added"] == 0


def test_a_bad_saved_page_is_named(ledger_path, tmp_path) -> None:
    bad = tmp_path / "usage.json"
    bad.write_text(
        json.dumps(
            {
                "data": [
                    {
                        "start_time": DAY1,
                        "end_time": DAY1 + 86_400,
                        "results": [
                            {
                                "object": "organization.usage.completions.result",
                                "model": "gpt-4o",
                                "input_tokens": 10,
                                "input_cached_tokens": 20,
                                "output_tokens": 1,
                            }
                        ],
                    }
                ]
            }
        )
    )
    result = CliRunner().invoke(app, ["import", "openai-usage", str(bad), "--json", "--ledger", str(ledger_path)])
    assert result.exit_code == 1
    assert json.loads(result.stdout)["problems"] == [
        f"{bad}: data[0].results[0]: input_cached_tokens=20 exceeds input_tokens=10 (cached tokens are part of it)"
    ]
    (tmp_path / "notes.json").write_text('{"hello": 1}')
    wrong = CliRunner().invoke(
        app, ["import", "anthropic-usage", str(tmp_path / "notes.json"), "--ledger", str(ledger_path)]
    )
    assert isinstance(wrong.exception, ConfigError) and "not a usage/cost API page" in str(wrong.exception)


def test_billed_rows_never_double_count_metered_calls(ledger_path) -> None:
    store = open_store(ledger_path)
    metered = [
        UsageEvent(
            ts=D1.replace(hour=h),
            provider="openai",
            model="gpt-4o-mini-2024-07-18",
            input_tokens=100,
            output_tokens=10,
            cost_usd=Decimal("0.001"),
            priced_by="tokenomy-catalog",
        )
        for h in (3, 9)
    ]
    store.write(metered)
    _import(["openai-usage", str(EXPORTS / "openai_usage_and_costs.jsonl")], ledger_path)
    spend = {r["provider"]: r["cost_usd"] for r in run_report(store, "spend", by="provider")}
    # day 1 is metered (the bill for it is reconciled, not added); day 2 only the bill knows: 0.01125
    assert spend == {"openai": Decimal("0.002") + Decimal("0.01125")}
    monthly = run_report(store, "monthly-spend", since=D1, until=D2.replace(day=26))
    assert [r["cost_usd"] for r in monthly] == [Decimal("0.01325")]


def test_bad_bucket_width_and_window_are_refused(ledger_path) -> None:
    base = ["import", "anthropic-usage", "--ledger", str(ledger_path)]
    width = CliRunner().invoke(app, [*base, "--bucket-width", "2d"])
    assert isinstance(width.exception, UsageError) and "--bucket-width '2d': use 1d, 1h or 1m" in str(width.exception)
    window = CliRunner().invoke(app, [*base, "--since", "2025-11-26", "--until", "2025-11-24"])
    assert isinstance(window.exception, UsageError) and "is not before --until" in str(window.exception)


def test_focus_export_counts_bills_once_and_keeps_their_other_charges(ledger_path, tmp_path) -> None:
    store = open_store(ledger_path)
    store.write(
        [
            UsageEvent(
                ts=D1.replace(hour=3),
                provider="openai",
                model="gpt-4o-mini-2024-07-18",
                input_tokens=100,
                input_cost_usd=Decimal("0.001"),
                cost_usd=Decimal("0.001"),
                priced_by="tokenomy-catalog",
            )
        ]
    )
    _import(["openai-usage", str(EXPORTS / "openai_usage_and_costs.jsonl")], ledger_path)
    _import(["gcp-billing", str(EXPORTS / "gcp_billing.jsonl")], ledger_path)
    out = tmp_path / "focus.csv"
    result = CliRunner().invoke(app, ["export", "focus", "-o", str(out), "--ledger", str(ledger_path)])
    assert result.exit_code == 0, result.output
    rows = pd.read_csv(out, dtype=str)
    total = sum(Decimal(c) for c in rows["BilledCost"])
    # OpenAI day 1 is metered (its bill is not added); day 2 and Google's rows only the bills know
    assert total == Decimal("0.001") + Decimal("0.01125") + Decimal("4.0125") + Decimal("0.075")
    storage = rows[rows["x_TokenType"] == "other"]
    assert list(storage["BilledCost"].map(Decimal)) == [Decimal("0.45")]  # the cache storage, not tokens
    assert list(storage["SkuMeter"]) == ["Other Charges"] and list(storage["x_Model"]) == ["gemini-2.5-pro"]


def test_the_api_import_asks_for_closed_days_only_by_default(ledger_path) -> None:
    today = datetime.now(UTC).replace(hour=0, minute=0, second=0, microsecond=0)
    with billing_server() as server:
        _import(
            ["anthropic-usage", "--base-url", server.url, "--bucket-width", "1h"],
            ledger_path,
            env={"ANTHROPIC_ADMIN_KEY": KEYS["anthropic"]},
        )
        paths = {path for path, _ in server.requests}
        query = server.requests[0][1]
    # today's bucket is still growing, and a re-import keeps a row's first copy: the window ends at midnight
    assert query["ending_at"] == [today.strftime("%Y-%m-%dT%H:%M:%SZ")]
    assert query["starting_at"] == [(today - timedelta(days=7)).strftime("%Y-%m-%dT%H:%M:%SZ")]
    assert query["bucket_width"] == ["1h"] and query["limit"] == ["168"]
    assert paths == {"/v1/organizations/usage_report/messages"}  # costs come in days: not mixed with hours


def test_a_bad_line_in_a_saved_export_is_reported_and_the_good_lines_import(ledger_path, tmp_path) -> None:
    # One bad line used to reject the whole file (exit 2, nothing imported) and leave an empty ledger behind.
    cases = [
        ("gcp-billing", "gcp_billing.jsonl", "expected one billing export row per line"),
        ("openai-usage", "openai_usage_and_costs.jsonl", "expected saved API pages"),
    ]
    for kind, name, expected in cases:
        lines = (EXPORTS / name).read_text().splitlines()
        mixed = tmp_path / name
        mixed.write_text("\n".join([lines[0], "{bad", *lines[1:], "[1, 2]"]) + "\n")
        good = _import([kind, str(EXPORTS / name)], tmp_path / f"{kind}-good.duckdb")
        ledger = tmp_path / f"{kind}.duckdb"
        result = CliRunner().invoke(app, ["import", kind, str(mixed), "--json", "--ledger", str(ledger)])
        assert result.exit_code == 1, result.output
        summary = json.loads(result.stdout)
        assert summary["added"] == good["added"] > 0
        assert (
            summary["problems"][0] == f"{mixed}:2: not JSON (Expecting property name enclosed in double "
            f"quotes); {expected}"
        )
        assert summary["problems"][1].startswith(f"{mixed}:{len(lines) + 2}") and " not a " in summary["problems"][1]
    # A file with nothing but bad lines is the wrong file: an error, and no ledger is created for it.
    junk = tmp_path / "junk.jsonl"
    junk.write_text("{bad\n")
    for kind in ("gcp-billing", "anthropic-usage"):
        wrong = CliRunner().invoke(app, ["import", kind, str(junk), "--ledger", str(tmp_path / "new.duckdb")])
        assert isinstance(wrong.exception, ConfigError) and f"{junk}:1: not JSON" in str(wrong.exception)
    assert not (tmp_path / "new.duckdb").exists()


def test_a_bill_imported_apart_from_its_usage_or_at_another_width_is_refused_not_dropped(ledger_path, tmp_path):
    """A usage report's rows and its cost report's share ids (one bucket, model, tier): imported in two runs, the
    second's rows were skipped as "already in the ledger", so the bill was never recorded. The same day at another
    bucket width has other ids: its hours were added on top of the day, counting it twice. Both are now problems
    naming the bucket and the fix (exit 1), the ledger's rows stay as they were, and the rest is imported."""
    usage, cost = EXPORTS / "anthropic_usage_report.json", EXPORTS / "anthropic_cost_report.json"
    runner = CliRunner()
    assert _import(["anthropic-usage", str(usage)], ledger_path)["added"] == 3
    before = run_report(open_store(ledger_path), "spend")
    result = runner.invoke(app, ["import", "anthropic-usage", str(cost), "--json", "--ledger", str(ledger_path)])
    summary = json.loads(result.stdout)
    assert result.exit_code == 1 and summary["added"] == 1  # the web search charge: a row of its own
    assert len(summary["problems"]) == 3 and summary["already_in_ledger"] == 0
    assert all("already holds this bucket with other figures" in p and "in one run" in p for p in summary["problems"])
    assert "(priced from the catalog)" in summary["problems"][0] and "0 tokens" in summary["problems"][0]
    after = {row["model"]: row["cost_usd"] for row in run_report(open_store(ledger_path), "spend")}
    assert {row["model"]: row["cost_usd"] for row in before}.items() <= after.items()
    # Importing the same usage report again is still nothing new, and no problem.
    assert _import(["anthropic-usage", str(usage)], ledger_path)["already_in_ledger"] == 3

    # 2025-11-24 as 1-hour buckets, over a ledger holding it as a day.
    day = tmp_path / "day.duckdb"
    assert _import(["anthropic-usage", str(usage), str(cost)], day)["added"] == 4
    pages = json.loads(usage.read_text())
    first = pages[0]["data"][0]
    hours = [
        {**first, "starting_at": f"2025-11-24T{h:02d}:00:00Z", "ending_at": f"2025-11-24T{h + 1:02d}:00:00Z"}
        for h in (0, 5)
    ]
    hourly = tmp_path / "hourly.json"
    hourly.write_text(json.dumps({"data": hours, "has_more": False, "next_page": None}))
    spend = run_report(open_store(day), "spend")
    result = runner.invoke(app, ["import", "anthropic-usage", str(hourly), "--json", "--ledger", str(day)])
    summary = json.loads(result.stdout)
    assert result.exit_code == 1 and summary["added"] == 0 and len(summary["problems"]) == 4
    assert all("as a 1d bucket and this import's are 1h" in p and "--bucket-width 1d" in p for p in summary["problems"])
    assert run_report(open_store(day), "spend") == spend


@pytest.mark.parametrize("engine", ["duckdb", "postgres"])
def test_a_refreshed_bill_replaces_its_buckets_with_replace_and_every_report_follows(engine, tmp_path, request):
    """AWS re-issues a month's CUR as late usage arrives. Importing the refreshed export found each changed bucket
    "already held with other figures" and kept the stale figures with no way to take the new ones. `--replace` now
    puts the file's figures in those buckets' place in one transaction, and the hourly rollups and latency days they
    fall on are recomputed: the ledger then reads exactly as one that imported only the refreshed file."""
    original = EXPORTS / "focus_multicloud.csv"
    frame = pd.read_csv(original, dtype=str, keep_default_na=False)
    haiku_input = frame["x_UsageType"] == "USE1-Claude3Haiku-input-tokens"
    assert haiku_input.sum() == 1
    frame.loc[haiku_input, ["BilledCost", "ConsumedQuantity", "PricingQuantity"]] = ["0.00375", "15000", "15"]
    refreshed = tmp_path / "focus_refreshed.csv"
    frame.to_csv(refreshed, index=False)
    fresh = tmp_path / "fresh.duckdb"
    _import(["focus", str(refreshed)], fresh)

    def ledger(name: str) -> str:
        return str(tmp_path / f"{name}.duckdb") if engine == "duckdb" else request.getfixturevalue("fresh_postgres_url")

    held = ledger("held")
    first = _import(["focus", str(original)], held)
    runner = CliRunner()
    stale = runner.invoke(app, ["import", "focus", str(refreshed), "--json", "--ledger", held])
    summary = json.loads(stale.stdout)
    assert stale.exit_code == 1 and summary["added"] == 0 and summary["replaced"] == 0
    assert len(summary["problems"]) == 1 and "--replace" in summary["problems"][0]
    replaced = runner.invoke(app, ["import", "focus", str(refreshed), "--replace", "--json", "--ledger", held])
    summary = json.loads(replaced.stdout)
    assert replaced.exit_code == 0, replaced.output
    assert (summary["added"], summary["replaced"], summary["problems"]) == (0, 1, [])
    assert summary["already_in_ledger"] == first["added"] - 1

    def figures(url: str) -> dict:
        store = open_store(url)
        rows = {e.event_id: (e.input_tokens, e.cost_usd) for e in store.events()}
        return {"rows": rows, **{name: run_report(store, name) for name in REPORTS}}

    assert figures(held) == figures(str(fresh))
    assert Decimal("0.00375") in {cost for _, cost in figures(held)["rows"].values()}
    # Again: nothing changed since, nothing replaced.
    assert _import(["focus", str(refreshed), "--replace"], Path(held) if engine == "duckdb" else held)["replaced"] == 0


def test_a_clickhouse_ledger_refuses_replace_by_name() -> None:
    from tokenomy.errors import NotOnThisLedger
    from tokenomy.ledger.clickhouse import ClickHouseStore

    store = ClickHouseStore.__new__(ClickHouseStore)
    store._shown = "clickhouse://u:***@h:8123/db"
    with pytest.raises(NotOnThisLedger, match=r"ledger clickhouse://u:\*\*\*@h:8123/db: replacing .*--replace"):
        store.replace([UsageEvent(ts=D1, provider="bedrock", model="m")])


@pytest.mark.parametrize("engine", ["duckdb", "postgres"])
def test_a_bill_of_a_bucket_held_as_tier_rows_takes_all_their_places(engine, tmp_path, request) -> None:
    """Usage imported alone is a row per service tier; its bill (line items name no tier) is one row whole. The bill
    imported with --replace took only the standard row's place (same id) and left the flex and priority rows: their
    tokens counted twice. Imported without --replace, over a bill, the tier rows with ids of their own were added on
    top of it. A bucket is now one unit: its bill takes the places of all its tier rows, and tier rows are not added
    to a bucket held whole."""

    ledger_path = tmp_path / "held.duckdb" if engine == "duckdb" else request.getfixturevalue("fresh_postgres_url")

    def window(ledger: Path | str) -> tuple:
        rows = list(open_store(ledger).events())
        return tuple(
            sum(getattr(e, f) for e in rows) for f in ("input_tokens", "cache_read_tokens", "output_tokens", "cost_usd")
        )

    bill = (13_000, 8_000, 4_100, Decimal("0.0484"))
    usage, billed = _tiered_pages(tmp_path, costs=False), _tiered_pages(tmp_path, costs=True)
    assert _import(["openai-usage", str(usage)], ledger_path)["added"] == 3
    runner = CliRunner()
    stale = runner.invoke(app, ["import", "openai-usage", str(billed), "--json", "--ledger", str(ledger_path)])
    summary = json.loads(stale.stdout)
    assert stale.exit_code == 1 and (summary["added"], summary["replaced"]) == (0, 0)
    assert len(summary["problems"]) == 1 and "--replace" in summary["problems"][0]
    # the ledger's three tier rows, whole
    assert (
        "(25,100 tokens, $0.049900 (priced from the catalog); this import: 25,100 tokens, $0.048400 (billed))"
        in summary["problems"][0]
    )
    summary = _import(["openai-usage", str(billed), "--replace"], ledger_path)
    assert (summary["added"], summary["replaced"], summary["problems"]) == (0, 1, [])
    assert window(ledger_path) == bill and len(list(open_store(ledger_path).events())) == 1
    assert _import(["openai-usage", str(billed), "--replace"], ledger_path)["replaced"] == 0  # nothing changed since

    # The other order: the bill first, then the usage alone adds no tier row on top of it.
    held = tmp_path / "bill_first.duckdb"
    _import(["openai-usage", str(billed)], held)
    late = runner.invoke(app, ["import", "openai-usage", str(usage), "--json", "--ledger", str(held)])
    summary = json.loads(late.stdout)
    assert late.exit_code == 1 and summary["added"] == 0 and len(summary["problems"]) == 3
    assert window(held) == bill
