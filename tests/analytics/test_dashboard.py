"""The cost dashboard: its JSON API against sums over the ledger's events, the page in a real headless
Chromium (Debian's, driven by Playwright), and `tokenomy report --html` as one offline file."""

from __future__ import annotations

import json
import random
import re
import shutil
from collections import defaultdict
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from pathlib import Path

import httpx
import numpy as np
import pytest
from typer.testing import CliRunner

from helpers.browser import _wait_renders, _watch_requests
from tokenomy.chat_response import Usage
from tokenomy.cli import app as cli
from tokenomy.config import parse_config
from tokenomy.emulate.server import ServerThread
from tokenomy.gateway.app import create_app
from tokenomy.gateway.keys import KeyStore
from tokenomy.ledger.events import UsageEvent
from tokenomy.ledger.store import open_store
from tokenomy.pricing.cost import compute_cost

START = datetime(2026, 10, 1, tzinfo=UTC)
DAYS = 12
MODELS = [
    ("openai", "gpt-4o-mini", None),
    ("anthropic", "claude-haiku-4-5-20251001", None),
    ("bedrock", "amazon.nova-micro-v1:0", "us-east-1"),
]
CHARTS = ["chart-spend", "chart-usage", "chart-cache", "chart-latency", "chart-tiers", "chart-groups", "chart-types"]
PROVIDER_CHARTS = ["chart-provider-monthly", "chart-family-daily", "chart-provider-types", "chart-provider-hourly"]


def _events() -> list[UsageEvent]:
    """Several providers, models, tasks, tags and tiers over DAYS days, priced from the catalog."""
    rng = random.Random(11)
    out = []
    for i in range(DAYS * 40):
        provider, model, region = MODELS[i % 3] if i % 7 else MODELS[0]  # gpt-4o-mini gets the most traffic
        task = rng.choice(["classify", "extract", "summarise"])
        cached = rng.random() < {"gpt-4o-mini": 0.6, "claude-haiku-4-5-20251001": 0.3}.get(model, 0.1)
        usage = Usage(rng.randint(50, 900), rng.randint(5, 400), 1200 if cached else 0, 0 if cached else 64)
        event = UsageEvent(
            ts=START + timedelta(minutes=36 * i + rng.randint(0, 30)),
            provider=provider,
            model=model,
            region=region,
            task=task,
            tags={"team": rng.choice(["search", "support"])},
            tenant=rng.choice(["acme", "globex"]),
            tier=rng.choice(["weak", "weak", "strong", None]),
            input_tokens=usage.input_tokens,
            output_tokens=usage.output_tokens,
            cache_read_tokens=usage.cache_read_tokens,
            cache_write_tokens=usage.cache_write_tokens,
            latency_ms=rng.uniform(150, 3000),
            ttft_ms=rng.uniform(40, 600),
            prefix_hash=f"p{task}",
            prefix_tokens=1100,
        )
        out.append(event.apply_cost(compute_cost(usage, model, region, "on_demand")))
    return out


def _spend(events: list[UsageEvent]) -> dict[str, Decimal]:
    result: dict[str, Decimal] = defaultdict(Decimal)
    for e in events:
        result[e.model] += e.cost_usd
    return dict(result)


@pytest.fixture(scope="module")
def ledger(tmp_path_factory) -> tuple[Path, list[UsageEvent]]:
    path = tmp_path_factory.mktemp("dash") / "ledger.duckdb"
    events = _events()
    open_store(path).write(events)
    return path, events


@pytest.fixture(scope="module")
def gateway(ledger):
    with ServerThread(create_app(None, str(ledger[0])), lifespan="on") as url:
        yield url


# --- JSON API ---------------------------------------------------------------------------------------------
def test_api_sections_match_the_ledger(gateway, ledger) -> None:
    _, events = ledger
    spend = httpx.get(f"{gateway}/dashboard/api/spend").json()
    charted: dict[str, Decimal] = defaultdict(Decimal)
    for row in spend:
        charted[row["model"]] += Decimal(row["cost_usd"])
    assert dict(charted) == _spend(events)  # exact: money leaves as decimal strings
    assert len({row["day"] for row in spend}) == DAYS

    usage = {r["model"]: r for r in httpx.get(f"{gateway}/dashboard/api/usage").json()}
    cache = {r["model"]: r for r in httpx.get(f"{gateway}/dashboard/api/cache").json()}
    latency = {r["model"]: r for r in httpx.get(f"{gateway}/dashboard/api/latency").json()}
    for _, model, _ in MODELS:
        mine = [e for e in events if e.model == model]
        assert usage[model]["output_tokens"] == sum(e.output_tokens for e in mine)
        assert usage[model]["cache_write_tokens"] == sum(e.cache_write_tokens for e in mine)
        read = sum(e.cache_read_tokens for e in mine)
        assert cache[model]["cache_hit_rate"] == pytest.approx(
            read / sum(e.input_tokens + e.cache_read_tokens + e.cache_write_tokens for e in mine)
        )
        assert latency[model]["p95_ms"] == pytest.approx(float(np.percentile([e.latency_ms for e in mine], 95)))
        assert latency[model]["ttft_p50_ms"] == pytest.approx(float(np.percentile([e.ttft_ms for e in mine], 50)))

    tiers = {r["tier"]: r["calls"] for r in httpx.get(f"{gateway}/dashboard/api/tiers").json()}
    assert tiers == {t: sum(1 for e in events if (e.tier or "(none)") == t) for t in ("(none)", "strong", "weak")}
    savings = httpx.get(f"{gateway}/dashboard/api/savings").json()
    assert {r["lever"] for r in savings["levers"]} == {"routing", "caching", "output_caps", "batch"}
    assert Decimal(savings["current_monthly_cost_usd"]) > 0

    # filters narrow every section: provider, task and tag together
    params = {
        "provider": "anthropic",
        "task": "extract",
        "tag": "team=support",
        "since": "2026-10-03",
        "until": "2026-10-08",
    }
    narrowed = httpx.get(f"{gateway}/dashboard/api/spend", params=params).json()
    expect = [
        e
        for e in events
        if e.provider == "anthropic"
        and e.task == "extract"
        and e.tags["team"] == "support"
        and datetime(2026, 10, 3, tzinfo=UTC) <= e.ts < datetime(2026, 10, 8, tzinfo=UTC)
    ]
    assert expect and sum(Decimal(r["cost_usd"]) for r in narrowed) == sum(e.cost_usd for e in expect)
    assert httpx.get(f"{gateway}/dashboard/api/totals", params=params).json()["calls"] == len(expect)


def test_api_names_bad_filters(gateway) -> None:
    bad = httpx.get(f"{gateway}/dashboard/api/spend", params={"since": "last tuesday"})
    assert bad.status_code == 400 and "since" in bad.json()["detail"] and "YYYY-MM-DD" in bad.json()["detail"]
    bad = httpx.get(f"{gateway}/dashboard/api/usage", params={"tag": "team"})
    assert bad.status_code == 400 and "key=value" in bad.json()["detail"]
    # A reversed range used to answer 200 with no rows, as if nothing had been spent.
    bad = httpx.get(f"{gateway}/dashboard/api/spend", params={"since": "2026-10-08", "until": "2026-10-01"})
    assert bad.status_code == 400 and "is not before until" in bad.json()["detail"]
    # Dates at the ends of the calendar used to overflow the previous period's or a budget period's sums: a 500.
    for params in (
        {"since": "0001-01-01"},
        {"until": "9999-12-31"},
        {"until": "0001-01-01"},
        {"since": "0001-01-01T00:00:00+14:00"},
    ):
        for section in ("headline", "breakdown", "budgets", "alerts", "spend"):
            bad = httpx.get(f"{gateway}/dashboard/api/{section}", params=params)
            assert bad.status_code == 400, (section, params, bad.text)
            assert "1900-01-01" in bad.json()["detail"] or "is not a date" in bad.json()["detail"]
    options = httpx.get(f"{gateway}/dashboard/api/filters").json()
    assert options["models"] == sorted(m for _, m, _ in MODELS)
    assert options["tags"] == ["team=search", "team=support"]
    assert options["first_day"] == "2026-10-01"


def test_api_refuses_a_parameter_it_would_drop(gateway) -> None:
    """`period=7d` and `limit=` were not read: the whole ledger answered as if narrowed; a repeated model answered
    the last one alone."""
    for params in ({"period": "7d"}, {"limit": "1000000000"}, [("model", "gpt-4o-mini"), ("model", "m")]):
        for section in ("totals", "spend", "requests", "headline"):
            bad = httpx.get(f"{gateway}/dashboard/api/{section}", params=params, timeout=60)
            assert bad.status_code == 400, (section, params, bad.text)
            assert "since and until" in bad.json()["detail"], bad.text
    assert "'period'" in httpx.get(f"{gateway}/dashboard/api/totals", params={"period": "7d"}).json()["detail"]
    bad = httpx.get(f"{gateway}/dashboard/api/filters", params={"since": "2026-10-01"})
    assert bad.status_code == 400 and "takes no query parameters" in bad.json()["detail"]


def test_api_names_a_filter_value_the_ledger_does_not_hold(gateway, tmp_path) -> None:
    """A misspelt model (provider, task, tag) answered $0 everywhere, as if nothing had been spent on it."""
    for name, value in (("model", "gpt4o-mini"), ("provider", "opneai"), ("task", "clasify"), ("tag", "team=serch")):
        for section in ("totals", "spend", "breakdown"):
            bad = httpx.get(f"{gateway}/dashboard/api/{section}", params={name: value}, timeout=60)
            assert bad.status_code == 400, (section, name, bad.text)
            assert f"{name}={value!r} matches nothing" in bad.json()["detail"]
    detail = httpx.get(f"{gateway}/dashboard/api/totals", params={"model": "gpt4o-mini"}).json()["detail"]
    assert "gpt-4o-mini" in detail  # the values it does hold
    # a value the ledger holds answers, empty where the range or the other filters leave nothing
    ok = httpx.get(f"{gateway}/dashboard/api/totals", params={"model": "gpt-4o-mini", "since": "2027-01-01"})
    assert ok.status_code == 200 and ok.json()["calls"] == 0
    ok = httpx.get(f"{gateway}/dashboard/api/totals", params={"model": "gpt-4o-mini", "provider": "anthropic"})
    assert ok.status_code == 200 and ok.json()["calls"] == 0
    # behind keys, a value only another team's calls hold is unknown to this key, and not listed to it
    path = tmp_path / "ledger.duckdb"
    store = open_store(path)
    secret, _ = KeyStore(store).create(team="acme")
    store.write(
        [
            UsageEvent(ts=START, provider="openai", model=model, tenant=team, cost_usd=Decimal("0.5"))
            for model, team in (("gpt-4o-mini", "acme"), ("secret-model", "globex"))
        ]
    )
    with ServerThread(create_app(parse_config({"auth": True}), str(path)), lifespan="on") as url:
        bearer = {"authorization": f"Bearer {secret}"}
        bad = httpx.get(f"{url}/dashboard/api/totals", params={"model": "secret-model"}, headers=bearer)
        assert bad.status_code == 400 and "gpt-4o-mini" in bad.json()["detail"], bad.text
        mine = httpx.get(f"{url}/dashboard/api/totals", params={"model": "gpt-4o-mini"}, headers=bearer).json()
        assert mine["calls"] == 1
        bad = httpx.get(f"{url}/dashboard/api/totals", params={"model": "gpt4o-mini"}, headers=bearer)
        assert "secret-model" not in bad.json()["detail"], bad.text


def test_tag_filter_reaches_any_tag_key(tmp_path) -> None:
    """The filter menu offers every tag key=value in the ledger; a non-ASCII key used to match nothing (the page
    showed $0) and an empty key answered 500."""
    path = tmp_path / "ledger.duckdb"
    keys = ["模型", "", 'a"b', "x/y~z"]
    open_store(path).write(
        [
            UsageEvent(
                ts=START + timedelta(hours=i),
                provider="openai",
                model="gpt-4o-mini",
                tags={key: "v"},
                cost_usd=Decimal(i + 1),
            )
            for i, key in enumerate(keys)
        ]
    )
    with ServerThread(create_app(None, str(path)), lifespan="on") as url:
        tags = httpx.get(f"{url}/dashboard/api/filters").json()["tags"]
        assert sorted(tags) == sorted(f"{key}=v" for key in keys)
        for i, key in enumerate(keys):
            totals = httpx.get(f"{url}/dashboard/api/totals", params={"tag": f"{key}=v"})
            assert totals.status_code == 200, totals.text
            assert (totals.json()["calls"], Decimal(totals.json()["cost_usd"])) == (1, i + 1), key


def test_tag_menu_keeps_every_key_whatever_another_key_holds(tmp_path) -> None:
    """The menu read the first 500 distinct tag sets: a per-user tag made every set distinct, and team=search (on
    the 600th call) was missing from the menu, so the page could not filter by it. Every key keeps its values now;
    a key with more than the menu lists says how many it has."""
    from tokenomy.analytics.dashboard_data import TAG_VALUES_PER_KEY, filter_options

    store = open_store(tmp_path / "ledger.duckdb")
    store.write(
        [
            UsageEvent(
                ts=START + timedelta(minutes=i),
                provider="openai",
                model="m",
                cost_usd=Decimal("0.01"),
                tags={"user": f"u{i:03d}", "team": "search" if i == 599 else "cx"},
            )
            for i in range(600)
        ]
    )
    options = filter_options(store)
    assert [t for t in options["tags"] if t.startswith("team=")] == ["team=cx", "team=search"]
    users = [t for t in options["tags"] if t.startswith("user=")]
    assert users == [f"user=u{i:03d}" for i in range(TAG_VALUES_PER_KEY)]
    assert options["tags_cut"] == {"user": 600}


def test_sections_fetched_at_once_all_answer(ledger, tmp_path) -> None:
    """The page asks for every section in parallel; a fresh gateway must answer them all (DuckDB's first
    connections from several threads at once used to collide)."""
    from concurrent.futures import ThreadPoolExecutor

    for round_ in range(3):  # a new gateway each round: no connection is open when the requests arrive
        with ServerThread(create_app(None, str(ledger[0])), lifespan="on") as url:
            with httpx.Client() as client, ThreadPoolExecutor(8) as pool:
                codes = list(
                    pool.map(
                        lambda name: client.get(f"{url}/dashboard/api/{name}").status_code,
                        ["totals", "spend", "usage", "cache", "latency", "tiers", "filters"] * 2,
                    )
                )
        assert codes == [200] * len(codes), f"round {round_}: {codes}"


def test_a_ledger_of_imported_bills_only_answers_every_section(tmp_path) -> None:
    """An imported bill's rows are no calls: the tier share divided by zero calls and answered None, which the section
    turned into a 500; the page (which loads every section at once) drew nothing and `report --html` crashed."""
    from tokenomy.analytics.dashboard_data import SECTIONS

    path = tmp_path / "ledger.duckdb"
    bill = Path(__file__).parent / "billing_exports" / "openai_usage_and_costs.jsonl"
    assert CliRunner().invoke(cli, ["import", "openai-usage", str(bill), "--ledger", str(path)]).exit_code == 0
    with ServerThread(create_app(None, str(path)), lifespan="on") as url:
        answers = {name: httpx.get(f"{url}/dashboard/api/{name}", timeout=60) for name in SECTIONS}
    assert {name: r.status_code for name, r in answers.items()} == dict.fromkeys(SECTIONS, 200)
    assert answers["tiers"].json() == [{"tier": "(none)", "calls": 0, "share": None}]
    assert answers["totals"].json()["calls"] == 0 and Decimal(answers["totals"].json()["cost_usd"]) > 0
    out = tmp_path / "bill.html"
    result = CliRunner().invoke(cli, ["report", "--html", str(out), "--ledger", str(path)])
    assert result.exit_code == 0, result.output
    assert _embedded(out.read_text())["tiers"] == [{"tier": "(none)", "calls": 0, "share": None}]


@pytest.mark.postgres
def test_sections_are_the_same_on_postgres(ledger, fresh_postgres_url) -> None:
    """The dashboard's SQL (tag filter, day buckets, percentiles) gives the same figures on PostgreSQL."""
    from tokenomy.analytics import dashboard_data

    duck = open_store(ledger[0])
    pg = open_store(fresh_postgres_url)
    pg.write(ledger[1])
    for filters in (
        dashboard_data.Filters(),
        dashboard_data.make_filters(since="2026-10-02", until="2026-10-09", tag="team=search"),
        dashboard_data.make_filters(provider="bedrock", task="classify"),
    ):
        assert dashboard_data.totals(duck, filters)["calls"] > 0
        for name in ("spend", "usage", "cache", "tiers", "totals"):
            assert dashboard_data.SECTIONS[name](pg, filters) == dashboard_data.SECTIONS[name](duck, filters), name
        for a, b in zip(dashboard_data.latency(pg, filters), dashboard_data.latency(duck, filters), strict=True):
            assert a == pytest.approx(b), a["model"]
    assert dashboard_data.filter_options(pg) == dashboard_data.filter_options(duck)
    # PostgreSQL text holds no NUL: a filter with one failed the query, answered as "database unavailable" (503)
    with ServerThread(create_app(None, fresh_postgres_url), lifespan="on") as url:
        for params in ({"model": "gpt\x00"}, {"provider": "\x00"}, {"task": "a\x00"}, {"tag": "team=\x00"}):
            bad = httpx.get(f"{url}/dashboard/api/totals", params=params)
            assert bad.status_code == 400 and "NUL" in bad.json()["detail"], (params, bad.text)


# --- the page in headless Chromium ---------------------------------------------------------------------------
def _charted(page, ids: list[str] = CHARTS) -> dict:
    """Labels and datasets of every chart as Chart.js holds them (what is drawn, not what was fetched)."""
    return page.evaluate(
        """ids => Object.fromEntries(ids.map(id => {
        const chart = Chart.getChart(id);
        const box = document.getElementById(id).getBoundingClientRect();
        return [id, chart && {labels: chart.data.labels, width: box.width, height: box.height,
                              datasets: chart.data.datasets.map(d => ({label: d.label, data: d.data}))}];
    }))""",
        ids,
    )


def _spend_by_model(chart: dict) -> dict[str, float]:
    return {d["label"]: sum(d["data"]) for d in chart["datasets"]}


@pytest.mark.browser
def test_page_renders_charts_and_filters_redraw_them(gateway, ledger, browser) -> None:
    _, events = ledger
    page = browser.new_page(viewport={"width": 1400, "height": 1000})
    outside = _watch_requests(page, gateway)
    fetched: dict[str, list] = {}
    page.on("response", lambda r: fetched.__setitem__(r.url, r) if "/dashboard/api/" in r.url else None)
    page.goto(f"{gateway}/dashboard")
    _wait_renders(page, 1)
    assert page.evaluate("window.tokenomyDashboard.error") is None

    charts = _charted(page)
    for chart_id in CHARTS:
        chart = charts[chart_id]
        assert chart and chart["labels"] and chart["width"] > 100 and chart["height"] > 100, chart_id
        assert any(v for d in chart["datasets"] for v in d["data"]), f"{chart_id} has no data"
    expect = _spend(events)
    assert _spend_by_model(charts["chart-spend"]) == pytest.approx({m: float(v) for m, v in expect.items()})
    assert len(charts["chart-spend"]["labels"]) == DAYS
    spend_json = next(r for url, r in fetched.items() if "/api/spend" in url).json()
    assert sum(Decimal(r["cost_usd"]) for r in spend_json) == sum(expect.values())
    assert charts["chart-tiers"]["datasets"][0]["data"] == [
        sum(1 for e in events if (e.tier or "(none)") == t) for t in charts["chart-tiers"]["labels"]
    ]
    # the savings levers are a ranked list now ("what to change"), not a chart
    assert set(page.eval_on_selector_all("#levers li", "els => els.map(e => e.dataset.lever)")) == {
        "routing",
        "caching",
        "output_caps",
        "batch",
        "provisioned",
    }
    assert "/month" in page.inner_text("#levers-note")

    # a model filter re-queries and redraws with that model only
    page.select_option("select[name=model]", "claude-haiku-4-5-20251001")
    _wait_renders(page, 2)
    charts = _charted(page)
    assert _spend_by_model(charts["chart-spend"]) == pytest.approx(
        {"claude-haiku-4-5-20251001": float(expect["claude-haiku-4-5-20251001"])}
    )
    assert charts["chart-usage"]["labels"] == ["claude-haiku-4-5-20251001"]

    # a date range (the "to" day inclusive) narrows the days and the sums
    page.fill("input[name=since]", "2026-10-04")
    _wait_renders(page, 3)
    page.fill("input[name=to]", "2026-10-06")
    _wait_renders(page, 4)
    charts = _charted(page)
    assert charts["chart-spend"]["labels"] == ["2026-10-04", "2026-10-05", "2026-10-06"]
    in_range = [
        e
        for e in events
        if e.model == "claude-haiku-4-5-20251001"
        and datetime(2026, 10, 4, tzinfo=UTC) <= e.ts < datetime(2026, 10, 7, tzinfo=UTC)
    ]
    assert _spend_by_model(charts["chart-spend"])["claude-haiku-4-5-20251001"] == pytest.approx(
        float(sum(e.cost_usd for e in in_range))
    )
    assert page.inner_text("#kpi-calls") == str(len(in_range))
    assert outside == [], f"the page reached outside the gateway: {outside}"
    page.close()


@pytest.mark.browser
def test_page_charts_the_spend_of_a_ledger_of_imported_bills_only(tmp_path, browser) -> None:
    """A bill's rows are spend but no calls: the page said "No calls in this range" over the spend, usage and cache
    charts (the headline beside them showing the bill's dollars); only latency and tier share have nothing to show."""
    path = tmp_path / "ledger.duckdb"
    bill = Path(__file__).parent / "billing_exports" / "openai_usage_and_costs.jsonl"
    assert CliRunner().invoke(cli, ["import", "openai-usage", str(bill), "--ledger", str(path)]).exit_code == 0
    billed = {}
    for e in open_store(path).events():
        billed[e.model] = billed.get(e.model, Decimal(0)) + e.cost_usd
    with ServerThread(create_app(None, str(path)), lifespan="on") as url:
        page = browser.new_page(viewport={"width": 1400, "height": 1000})
        page.goto(f"{url}/dashboard")
        _wait_renders(page, 1)
        assert page.evaluate("window.tokenomyDashboard.error") is None
        charts = _charted(page, ["chart-spend", "chart-usage", "chart-cache"])
        assert _spend_by_model(charts["chart-spend"]) == pytest.approx({m: float(v) for m, v in billed.items()})
        assert charts["chart-usage"]["labels"] == sorted(billed) and charts["chart-cache"]["labels"] == sorted(billed)
        for section in ("sec-spend", "sec-usage", "sec-cache"):
            assert not page.is_visible(f"#{section} .empty-state"), section
        for section in ("sec-latency", "sec-tiers"):
            assert "imported bills" in page.inner_text(f"#{section} .empty-state"), section
        page.close()


@pytest.mark.browser
def test_time_axes_keep_idle_days_and_hours(tmp_path, browser) -> None:
    """The spend-over-time and provider charts labelled only the days (hours) with spend, so a day after a week
    without calls was drawn next to the day before that week, as if spend had gone on without a break."""
    path = tmp_path / "ledger.duckdb"
    when = [START, START + timedelta(days=1), START + timedelta(days=9, hours=1), START + timedelta(days=9, hours=5)]
    open_store(path).write(
        [
            UsageEvent(ts=ts, provider="openai", model="gpt-4o-mini", input_tokens=100, cost_usd=Decimal("0.25"))
            for ts in when
        ]
    )
    with ServerThread(create_app(None, str(path)), lifespan="on") as url:
        page = browser.new_page(viewport={"width": 1400, "height": 1000})
        page.goto(f"{url}/dashboard")
        _wait_renders(page, 1)
        charts = _charted(page, ["chart-spend", *PROVIDER_CHARTS])
        # an hour's tick reads "10-10 01:00" ("2026-10-10T01:00" was turned on its side on a phone, the T in it)
        hours = page.evaluate("Chart.getChart('chart-provider-hourly').scales.x.ticks.map(t => t.label)")
        # the days and hours are UTC's, and the page says so where it prints them without a form label beside them
        said = (
            page.inner_text("#kpi-range"),
            page.inner_text("#hourly-title") if page.query_selector("#hourly-title") else "",
        )
        page.close()
    assert said[0] == "2026-10-01 → 2026-10-10 (UTC)" and "(UTC)" in said[1], said
    days = [(START + timedelta(days=d)).date().isoformat() for d in range(10)]
    assert charts["chart-spend"]["labels"] == days
    assert charts["chart-spend"]["datasets"][0]["data"] == [0.25, 0.25] + [0] * 7 + [0.5]
    assert charts["chart-family-daily"]["labels"] == days
    assert charts["chart-provider-hourly"]["labels"] == [f"2026-10-10T0{h}:00" for h in range(1, 6)]
    assert hours == [f"10-10 0{h}:00" for h in range(1, 6)], hours
    assert charts["chart-provider-hourly"]["datasets"][0]["data"] == [100, 0, 0, 0, 100]


@pytest.mark.browser
def test_with_auth_the_page_asks_for_a_key_and_shows_its_team_only(ledger, tmp_path, browser) -> None:
    _, events = ledger
    path = tmp_path / "ledger.duckdb"
    shutil.copy(ledger[0], path)
    keys = KeyStore(open_store(path))
    team_secret, _ = keys.create(team="acme")
    own_secret, _ = keys.create(name="personal")
    acme = [e for e in events if e.tenant == "acme"]
    with ServerThread(create_app(parse_config({"auth": True}), str(path)), lifespan="on") as url:
        denied = httpx.get(f"{url}/dashboard/api/spend")
        assert denied.status_code == 401 and "virtual key" in denied.json()["detail"]
        assert httpx.get(f"{url}/dashboard/api/filters").status_code == 401
        bearer = {"authorization": f"Bearer {team_secret}"}
        assert httpx.get(f"{url}/dashboard/api/totals", headers=bearer).json()["calls"] == len(acme)
        spend = httpx.get(f"{url}/dashboard/api/spend", headers=bearer).json()
        assert sum(Decimal(r["cost_usd"]) for r in spend) == sum(e.cost_usd for e in acme)
        own = httpx.get(f"{url}/dashboard/api/totals", headers={"authorization": f"Bearer {own_secret}"}).json()
        assert own["calls"] == 0  # a key without a team sees its own calls, and it made none

        page = browser.new_page(viewport={"width": 1400, "height": 1000})
        page.goto(f"{url}/dashboard")
        page.wait_for_selector("#auth", state="visible")
        assert "virtual key" in page.inner_text("#auth")
        page.fill("#auth input[name=key]", team_secret)
        page.click("#auth button")
        _wait_renders(page, 1)
        assert page.inner_text("#kpi-calls") == str(len(acme))
        assert _spend_by_model(_charted(page)["chart-spend"]) == pytest.approx(
            {m: float(v) for m, v in _spend(acme).items()}
        )
        page.close()


# --- tokenomy report --html ------------------------------------------------------------------------------------
def _embedded(text: str) -> dict:
    match = re.search(r"window\.TOKENOMY_DATA = (\{.*?\});</script>", text, re.S)
    assert match, "no embedded data"
    return json.loads(match.group(1))


def test_report_html_is_self_contained(ledger, tmp_path) -> None:
    path, events = ledger
    out = tmp_path / "out.html"
    result = CliRunner().invoke(
        cli, ["report", "--html", str(out), "--ledger", str(path), "--since", "2026-10-02", "--until", "2026-10-05"]
    )
    assert result.exit_code == 0, result.output
    assert str(out) in result.output.replace("\n", "")
    text = out.read_text()
    data = _embedded(text)
    in_range = [e for e in events if datetime(2026, 10, 2, tzinfo=UTC) <= e.ts < datetime(2026, 10, 5, tzinfo=UTC)]
    assert sum(Decimal(r["cost_usd"]) for r in data["spend"]) == sum(e.cost_usd for e in in_range)
    assert data["totals"]["calls"] == len(in_range)
    assert {r["day"] for r in data["spend"]} == {"2026-10-02", "2026-10-03", "2026-10-04"}
    # nothing is loaded from elsewhere: no src/href attributes, stylesheets or CSS urls at all
    assert not re.search(r"""\b(src|href)\s*=""", text, re.I)
    assert "<link" not in text.lower() and "url(" not in text and "@import" not in text
    assert "Chart.js v4" in text  # the library itself is inlined


@pytest.mark.browser
def test_report_html_renders_offline_in_chromium(ledger, tmp_path, browser) -> None:
    path, events = ledger
    out = tmp_path / "report.html"
    result = CliRunner().invoke(cli, ["report", "--html", str(out), "--ledger", str(path)])
    assert result.exit_code == 0, result.output
    page = browser.new_page(viewport={"width": 1400, "height": 1000})
    outside = _watch_requests(page, out.as_uri())
    page.goto(out.as_uri())
    _wait_renders(page, 1)
    charts = _charted(page)
    for chart_id in CHARTS:
        assert charts[chart_id] and any(v for d in charts[chart_id]["datasets"] for v in d["data"]), chart_id
    assert _spend_by_model(charts["chart-spend"]) == pytest.approx({m: float(v) for m, v in _spend(events).items()})
    providers = _charted(page, PROVIDER_CHARTS)  # the provider view draws from the same embedded data
    for chart_id in PROVIDER_CHARTS:
        assert providers[chart_id] and any(v for d in providers[chart_id]["datasets"] for v in d["data"]), chart_id
    assert sorted(providers["chart-provider-monthly"]["labels"]) == ["2026-10"]
    cells = page.locator("#table-provider-models tbody tr").all_inner_texts()
    assert len(cells) == 2 * len(MODELS)  # every model both read/wrote the cache and paid for other tokens
    assert not page.is_visible("#filters")  # a file cannot re-query: the filter bar is hidden
    assert outside == []
    page.close()


@pytest.mark.browser
@pytest.mark.parametrize("model", ["</SCRIPT><SCRIPT>window.__owned=1//", "<!--<script>"])
def test_report_html_keeps_markup_in_ledger_text_as_text(model, tmp_path, browser) -> None:
    """Model names and tags are anyone's text: "</SCRIPT>" (any case) used to end the inlined data early and run
    what followed; "<!--<script>" kept the data's script from ending, so the page drew nothing."""
    path = tmp_path / "ledger.duckdb"
    open_store(path).write(
        [UsageEvent(ts=START, provider="openai", model=model, tags={"note": model}, cost_usd=Decimal("1.5"))]
    )
    out = tmp_path / "report.html"
    result = CliRunner().invoke(cli, ["report", "--html", str(out), "--ledger", str(path)])
    assert result.exit_code == 0, result.output
    page = browser.new_page()
    errors: list[str] = []
    page.on("pageerror", lambda exc: errors.append(str(exc)))
    page.goto(out.as_uri())  # waits for the load event: every script has run
    assert page.evaluate("window.__owned") is None
    assert page.evaluate("window.TOKENOMY_DATA && window.TOKENOMY_DATA.totals.calls") == 1
    _wait_renders(page, 1)
    assert page.inner_text("#head-spend") == "$1.500000"
    assert page.inner_text("#table-provider-models tbody td") == model
    assert errors == []
    page.close()
