"""The cost console (gateway /dashboard and `report --html`): the JSON of each console section against sums
over a seeded multi-day ledger, and the page driven in headless Chromium (Playwright) — headline, what to
change (equal to `plan savings --json` on the same range), budget bars, group-by, previous period, CSV,
request drill-down, an empty range and a 390-px phone screen. Screenshots land in the test's tmp dir."""

from __future__ import annotations

import csv
import io
import json
from collections import defaultdict
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from pathlib import Path

import httpx
import pytest
from typer.testing import CliRunner

from helpers.browser import _wait_renders, _watch_requests
from helpers.console_seed import seed
from tokenomy.cli import app as cli
from tokenomy.emulate.server import ServerThread
from tokenomy.gateway.app import create_app
from tokenomy.gateway.keys import period_start
from tokenomy.money import money_str, usd


@pytest.fixture(scope="module")
def seeded(tmp_path_factory) -> dict:
    path = tmp_path_factory.mktemp("console") / "ledger.duckdb"
    data = seed(path)
    data["path"] = path
    today = data["end"].replace(hour=0)
    data["until"] = today  # a 10-day range ending at today's midnight, and the 10 days before it
    data["since"] = today - timedelta(days=10)
    return data


@pytest.fixture(scope="module")
def gateway(seeded):
    with ServerThread(create_app(None, str(seeded["path"])), lifespan="on") as url:
        yield url


def _in(events, since, until):
    return [e for e in events if since <= e.ts < until]


def _by(events, attr) -> dict[str, Decimal]:
    out: dict[str, Decimal] = defaultdict(Decimal)
    for e in events:
        out[getattr(e, attr) or "(none)"] += e.cost_usd
    return dict(out)


def _range(seeded) -> dict[str, str]:
    return {"since": seeded["since"].date().isoformat(), "until": seeded["until"].date().isoformat()}


def _cli_savings(seeded) -> dict:
    result = CliRunner().invoke(
        cli,
        [
            "plan",
            "savings",
            "--json",
            "--ledger",
            str(seeded["path"]),
            "--since",
            seeded["since"].isoformat(),
            "--until",
            seeded["until"].isoformat(),
        ],
    )
    assert result.exit_code == 0, result.output
    return json.loads(result.stdout)


def _usd(value: Decimal) -> str:
    """The page's money rule is tokenomy.money's for an amount (what `tokenomy report` prints)."""
    return usd(value, "amount")


# --- JSON API ---------------------------------------------------------------------------------------------------
def test_headline_forecast_is_the_one_report_forecast_prints(gateway, seeded) -> None:
    # The page simulated 500 month paths and the CLI 2000: the same month's forecast and interval differed by cents.
    head = httpx.get(f"{gateway}/dashboard/api/headline", params=_range(seeded), timeout=60).json()
    args = ["report", "forecast", "--json", "--ledger", str(seeded["path"]), "--until", seeded["until"].isoformat()]
    result = CliRunner().invoke(cli, args)
    assert result.exit_code == 0, result.output
    cli_fc = json.loads(result.stdout)
    for figure in ("month_to_date_usd", "forecast_usd", "low_usd", "high_usd"):
        assert Decimal(head["forecast"][figure]) == Decimal(cli_fc[figure]), figure


def test_headline_and_breakdown_compare_with_the_previous_period(gateway, seeded) -> None:
    events, since, until = seeded["events"], seeded["since"], seeded["until"]
    now, before = _in(events, since, until), _in(events, since - timedelta(days=10), since)
    head = httpx.get(f"{gateway}/dashboard/api/headline", params=_range(seeded), timeout=60).json()
    assert Decimal(head["spend_usd"]) == sum(e.cost_usd for e in now)
    assert Decimal(head["previous_spend_usd"]) == sum(e.cost_usd for e in before) > 0
    assert Decimal(head["delta_usd"]) == Decimal(head["spend_usd"]) - Decimal(head["previous_spend_usd"])
    assert head["previous_period"] == {
        "since": (since - timedelta(days=10)).isoformat().replace("+00:00", "Z"),
        "until": since.isoformat().replace("+00:00", "Z"),
    }
    fc = head["forecast"]
    assert fc and Decimal(fc["low_usd"]) <= Decimal(fc["forecast_usd"]) <= Decimal(fc["high_usd"])
    assert fc["month"] == until.strftime("%Y-%m")  # the month of the range's end (complete days before it)
    assert Decimal(head["monthly_budget_usd"]) == seeded["team_budget"] + Decimal(1)  # team + the key outside it
    alerts = httpx.get(f"{gateway}/dashboard/api/alerts", params=_range(seeded), timeout=60).json()
    assert head["open_alerts"] == len(alerts["alerts"])
    spikes = [a for a in alerts["anomalies"] if a["kind"] == "spike" and a["day"] == seeded["spike_day"]]
    assert [a["model"] for a in spikes] == ["claude-haiku-4-5-20251001"]  # the seeded tenfold day, and only it
    spiked = [e for e in now if e.ts.date().isoformat() == seeded["spike_day"] and e.model.startswith("claude")]
    assert Decimal(spikes[0]["actual_usd"]) == pytest.approx(sum(e.cost_usd for e in spiked))
    assert Decimal(spikes[0]["actual_usd"]) > Decimal(spikes[0]["expected_high_usd"])

    groups = httpx.get(f"{gateway}/dashboard/api/breakdown", params=_range(seeded), timeout=60).json()["groups"]
    for name, attr in (("key", "key_id"), ("team", "tenant"), ("task", "task"), ("route", "route")):
        assert {r["key"]: Decimal(r["cost_usd"]) for r in groups[name]} == _by(now, attr), name
        previous = _by(before, attr)
        assert {r["key"]: Decimal(r["previous_cost_usd"]) for r in groups[name]} == {
            k: previous.get(k, Decimal(0)) for k in _by(now, attr)
        }, name
    costs = [Decimal(r["cost_usd"]) for r in groups["key"]]
    assert costs == sorted(costs, reverse=True)  # top-N tables: largest first
    types = {r["key"]: Decimal(r["cost_usd"]) for r in groups["usage type"]}
    assert types["cache write"] == sum(e.cache_write_cost_usd for e in now)
    assert types["output"] == sum(e.output_cost_usd for e in now)
    assert sum(types.values()) == sum(e.cost_usd for e in now)  # the seven usage types add up to the spend
    tags = {r["key"]: Decimal(r["cost_usd"]) for r in groups["tag"]}
    assert tags["latency_tolerant=true"] == sum(e.cost_usd for e in now if e.tags.get("latency_tolerant"))


def test_spend_anomalies_are_over_the_filtered_calls(gateway, seeded) -> None:
    # The anomaly list ("in this range") ignored the provider, model, task and tag filters: with provider=openai the
    # page listed the Claude model's spike beside openai's spend.
    def spikes(**params: str) -> list[tuple[str, str]]:
        answer = httpx.get(f"{gateway}/dashboard/api/alerts", params={**_range(seeded), **params}, timeout=60)
        assert answer.status_code == 200, answer.text
        return [(a["model"], a["day"]) for a in answer.json()["anomalies"] if a["kind"] == "spike"]

    claude = ("claude-haiku-4-5-20251001", seeded["spike_day"])
    assert claude in spikes()
    assert claude in spikes(model="claude-haiku-4-5-20251001") and claude in spikes(provider="anthropic")
    assert spikes(provider="openai") == [] and spikes(model="gpt-4o-mini") == []


def test_open_alerts_read_the_gateways_config_as_alerts_check_does(seeded, tmp_path) -> None:
    # The console evaluated alerts with no budgets and default settings: a `budgets:` entry spent past its limit and
    # routing drift against `routing.expected_tier_share` were alerts in `tokenomy alerts check --config` and missing
    # (and uncounted in "Open alerts") on the page of a gateway serving that very config.
    from tokenomy.config import parse_config

    config = {
        "budgets": [{"scope": "model", "match": "claude-haiku-4-5-20251001", "limit_usd": "0.10"}],
        "routing": {"expected_tier_share": {"weak": 0.9, "strong": 0.1}},
    }
    path = tmp_path / "tokenomy.yaml"
    path.write_text(json.dumps(config))  # JSON is YAML
    result = CliRunner().invoke(
        cli, ["alerts", "check", "--config", str(path), "--ledger", str(seeded["path"]), "--dry-run", "--json"]
    )
    assert result.exit_code == 0, result.output
    expected = {(a["kind"], a["subject"]) for a in json.loads(result.stdout)}
    assert {"budget", "routing_drift"} <= {kind for kind, _ in expected}
    with ServerThread(create_app(parse_config(config), str(seeded["path"])), lifespan="on") as url:
        alerts = httpx.get(f"{url}/dashboard/api/alerts", timeout=60).json()["alerts"]
        head = httpx.get(f"{url}/dashboard/api/headline", timeout=60).json()
    shown = {(a["kind"], a["subject"]) for a in alerts}
    assert expected <= shown and all(kind.endswith("_budget") for kind, _ in shown - expected)
    assert head["open_alerts"] == len(alerts)


def test_report_html_alerts_read_the_config_given(seeded, tmp_path) -> None:
    # `report --html` refused --config, so the offline console's open alerts could never hold the `budgets:` and
    # routing drift that `alerts check --config` reports over the same ledger.
    config = tmp_path / "tokenomy.yaml"
    config.write_text("budgets:\n  - {scope: model, match: claude-haiku-4-5-20251001, limit_usd: 0.10}\n")
    out = tmp_path / "console.html"
    result = CliRunner().invoke(
        cli, ["report", "--html", str(out), "--config", str(config), "--ledger", str(seeded["path"])]
    )
    assert result.exit_code == 0, result.output
    text = out.read_text()
    data = json.loads(text[text.index("window.TOKENOMY_DATA = ") + 23 : text.index(";</script>")])
    budget = [a for a in data["alerts"]["alerts"] if a["kind"] == "budget"]
    assert [a["subject"] for a in budget] == ["model claude-haiku-4-5-20251001"]
    assert data["headline"]["open_alerts"] == len(data["alerts"]["alerts"])


def test_budgets_are_spent_in_their_period_as_of_the_range_end(gateway, seeded) -> None:
    events, until = seeded["events"], seeded["until"]
    start = period_start("month", until - timedelta(microseconds=1))
    body = httpx.get(f"{gateway}/dashboard/api/budgets", params=_range(seeded)).json()
    keys = {r["id"]: r for r in body["keys"]}
    research = keys[seeded["research"].key_id]
    spent = sum((e.cost_usd for e in _in(events, start, until) if e.key_id == seeded["research"].key_id), Decimal(0))
    assert Decimal(research["spent_usd"]) == spent and Decimal(research["budget_usd"]) == Decimal("0.5")
    assert research["used"] == pytest.approx(float(spent / Decimal("0.5")))
    team = {r["id"]: r for r in body["teams"]}["research"]
    team_spent = sum((e.cost_usd for e in _in(events, start, until) if e.tenant == "research"), Decimal(0))
    assert Decimal(team["spent_usd"]) == team_spent and Decimal(team["budget_usd"]) == seeded["team_budget"]
    alerts = httpx.get(f"{gateway}/dashboard/api/alerts", params=_range(seeded), timeout=60).json()["alerts"]
    assert any(a["kind"] == "team_budget" for a in alerts) == (team_spent >= seeded["team_budget"])


def test_what_to_change_equals_plan_savings_json(gateway, seeded) -> None:
    page = httpx.get(f"{gateway}/dashboard/api/savings", params=_range(seeded), timeout=60).json()
    cli_result = _cli_savings(seeded)
    assert [r["lever"] for r in page["levers"]] == [r["lever"] for r in cli_result["levers"]]  # same ranking
    for mine, theirs in zip(page["levers"], cli_result["levers"], strict=True):
        # The page keeps the exact figure; `plan savings --json` prints amounts at the money rule's 6 places.
        assert money_str(Decimal(mine["monthly_saving_usd"])) == theirs["monthly_saving_usd"], mine["lever"]
        assert mine["assumption"] == theirs["assumption"] and mine["apply"]
    assert money_str(Decimal(page["compounded_monthly_saving_usd"])) == cli_result["compounded_monthly_saving_usd"]
    batch = next(r for r in page["levers"] if r["lever"] == "batch")
    assert Decimal(batch["monthly_saving_usd"]) > 0 and "latency_tolerant" in batch["apply"]
    assert page["provisioned"]["monthly_saving_usd"] is None and "plan size" in page["provisioned"]["apply"]


def test_request_log_carries_each_requests_attempts(gateway, seeded) -> None:
    body = httpx.get(f"{gateway}/dashboard/api/requests", params=_range(seeded)).json()
    in_range = _in(seeded["events"], seeded["since"], seeded["until"])
    assert body["total"] == len(in_range) and body["shown"] == len(body["rows"]) == 200
    stamps = [r["ts"] for r in body["rows"]]
    assert stamps == sorted(stamps, reverse=True)
    retried = next(r for r in body["rows"] if r["attempt"] == 2)
    attempts = body["attempts"][retried["request_id"]]
    assert [(a["attempt"], a["outcome"]) for a in attempts] == [(1, "throttled"), (2, "ok")]
    expected = next(e for e in in_range if e.request_id == retried["request_id"] and e.attempt == 2)
    assert Decimal(retried["cost_usd"]) == expected.cost_usd
    assert retried["cache_write_tokens"] == expected.cache_write_tokens and retried["route"] == expected.route
    stored = [r for r in body["rows"] if r["prompt_text"]]
    assert stored and all(r["prompt_text"].startswith("prompt number") for r in stored)


def test_budget_line_counts_the_keys_of_a_team_without_a_budget(tmp_path) -> None:
    """A key in a team with no team budget is capped by its own budget only; the line used to leave it out."""
    from tokenomy.gateway.keys import KeyStore
    from tokenomy.ledger.store import open_store

    keys = KeyStore(open_store(tmp_path / "ledger.duckdb"))
    keys.create(budget_usd=Decimal(2), team="unbudgeted")  # counts: nothing else caps it
    keys.set_team_budget("capped", Decimal(10))
    keys.create(budget_usd=Decimal(5), team="capped")  # inside the team's $10: the team's figure counts
    keys.create(budget_usd=Decimal(1))  # no team: counts
    del keys
    with ServerThread(create_app(None, str(tmp_path / "ledger.duckdb")), lifespan="on") as url:
        head = httpx.get(f"{url}/dashboard/api/headline", timeout=60).json()
    assert Decimal(head["monthly_budget_usd"]) == 2 + 10 + 1


def test_usage_types_add_up_to_the_spend_with_a_bills_other_charges(tmp_path) -> None:
    """A bill's charges that are not tokens (Google's cache storage, tool fees) are in a billed row's cost only: the
    usage-type split and the usage chart dropped them, so they added up to less than the spend."""
    from tokenomy.analytics.console_data import breakdown
    from tokenomy.analytics.dashboard_data import Filters, usage_types
    from tokenomy.ledger.events import UsageEvent
    from tokenomy.ledger.store import open_store

    store = open_store(tmp_path / "ledger.duckdb")
    day = datetime(2026, 11, 3, tzinfo=UTC)
    store.write(
        [
            UsageEvent(
                ts=day,
                provider="openai",
                model="gpt-4o-mini",
                input_tokens=1000,
                output_tokens=100,
                input_cost_usd=Decimal("0.00015"),
                output_cost_usd=Decimal("0.00006"),
                cost_usd=Decimal("0.00021"),
            ),
            # 1.25 input + 2.0 output + 0.45 cache storage, as the gcp-billing import records it
            UsageEvent(
                ts=day,
                provider="vertex",
                model="gemini-2.5-pro",
                input_tokens=1_000_000,
                output_tokens=200_000,
                input_cost_usd=Decimal("1.25"),
                output_cost_usd=Decimal("2.0"),
                cost_usd=Decimal("3.70"),
                priced_by="billed",
            ),
        ]
    )
    f = Filters(since=day, until=day + timedelta(days=1))
    types = {r["key"]: Decimal(r["cost_usd"]) for r in breakdown(store, f)["groups"]["usage type"]}
    assert sum(types.values()) == Decimal("3.70021")
    assert types["other"] == Decimal("0.45")
    pro = {r["model"]: r for r in usage_types(store, f)}["gemini-2.5-pro"]
    assert Decimal(pro["other_cost_usd"]) == Decimal("0.45")


def test_empty_range_answers_empty_sections(gateway) -> None:
    params = {"since": "2020-01-01", "until": "2020-01-08"}
    head = httpx.get(f"{gateway}/dashboard/api/headline", params=params, timeout=60).json()
    assert head["spend_usd"] == "0.000000" and Decimal(head["previous_spend_usd"]) == 0 and head["forecast"] is None
    assert "forecast needs" in head["forecast_note"]
    assert httpx.get(f"{gateway}/dashboard/api/requests", params=params).json()["rows"] == []
    assert httpx.get(f"{gateway}/dashboard/api/breakdown", params=params).json()["groups"]["model"] == []
    assert httpx.get(f"{gateway}/dashboard/api/savings", params=params).json()["levers"] == []


# --- the page in headless Chromium --------------------------------------------------------------------------------
def _set_range(page, since: str, to: str, renders: int) -> int:
    page.fill("input[name=since]", since)
    _wait_renders(page, renders + 1)
    page.fill("input[name=to]", to)
    _wait_renders(page, renders + 2)
    return renders + 2


def _group_chart(page) -> dict:
    return page.evaluate("""() => { const c = Chart.getChart('chart-groups');
        return {labels: c.data.labels, datasets: c.data.datasets.map(d => d.data)}; }""")


@pytest.mark.browser
def test_console_in_chromium(gateway, seeded, browser, tmp_path) -> None:
    events, since, until = seeded["events"], seeded["since"], seeded["until"]
    page = browser.new_page(viewport={"width": 1400, "height": 1000}, accept_downloads=True)
    outside = _watch_requests(page, gateway)
    errors: list[str] = []
    page.on("pageerror", lambda exc: errors.append(str(exc)))
    page.goto(f"{gateway}/dashboard")
    _wait_renders(page, 1)
    assert page.evaluate("window.tokenomyDashboard.error") is None
    renders = _set_range(page, since.date().isoformat(), (until - timedelta(days=1)).date().isoformat(), 1)
    now, before = _in(events, since, until), _in(events, since - timedelta(days=10), since)

    # headline: this period, the delta against the previous one, the forecast and open alerts
    spend, prior = sum(e.cost_usd for e in now), sum(e.cost_usd for e in before)
    assert page.inner_text("#head-spend") == _usd(spend)
    assert page.inner_text("#head-delta").startswith(("+" if spend >= prior else "-") + "$")
    assert _usd(prior) in page.inner_text("#head-previous")
    assert page.inner_text("#head-forecast").startswith("$") and "interval" in page.inner_text("#head-interval")
    assert "budget $1.400000/month" in page.inner_text("#head-budget")
    forecast = page.evaluate("""() => { const c = Chart.getChart('chart-forecast');
        return Object.fromEntries(c.data.datasets.map(d => [d.label, d.data.map(p => p.y).filter(y => y !== null)])); }""")
    fc = page.evaluate("window.tokenomyDashboard.data.headline.forecast")
    assert forecast["budget"][-1] == pytest.approx(1.40)  # the budget line
    assert forecast["forecast"][-1] == pytest.approx(float(fc["forecast_usd"]))
    assert forecast["interval"][-1] == pytest.approx(float(fc["high_usd"]))
    assert forecast["low"][-1] == pytest.approx(float(fc["low_usd"]))
    so_far = sum(e.cost_usd for e in _in(events, until.replace(day=1), until))  # the forecast month: until's
    assert (forecast["spent so far"] or [0])[-1] == pytest.approx(float(so_far))
    head = page.evaluate("window.tokenomyDashboard.data.headline")
    assert page.inner_text("#head-alerts") == str(head["open_alerts"])

    # the anomalies panel shows the seeded spike day
    assert "claude-haiku-4-5-20251001 · spike" in page.inner_text(f"#anomalies li[data-day='{seeded['spike_day']}']")

    # what to change: ranked as `plan savings --json` on the same range, the same dollars, how to apply each
    cli_levers = _cli_savings(seeded)["levers"]
    shown = page.eval_on_selector_all("#levers li", "els => els.map(e => [e.dataset.lever, e.innerText])")
    assert [lever for lever, _ in shown] == [r["lever"] for r in cli_levers] + ["provisioned"]
    for (lever, text), theirs in zip(shown[:-1], cli_levers, strict=True):
        assert _usd(Decimal(theirs["monthly_saving_usd"])) + "/month" in text, lever
        assert "Assumes: " + theirs["assumption"] in text and "Apply: " in text
    page_levers = page.evaluate("window.tokenomyDashboard.data.savings.levers")
    assert [money_str(Decimal(r["monthly_saving_usd"])) for r in page_levers] == [
        r["monthly_saving_usd"] for r in cli_levers
    ]

    # budget bars for a key and a team, filled to the share of the budget spent
    key_id = seeded["research"].key_id
    for selector in (f"#budget-key-{key_id}", "#budget-team-research"):
        assert page.is_visible(selector), selector
    budgets = page.evaluate("window.tokenomyDashboard.data.budgets")
    team = next(r for r in budgets["teams"] if r["id"] == "research")
    width = page.eval_on_selector("#budget-team-research .fill", "e => e.style.width")
    # Chromium reads a CSS percentage back to 6 significant digits (15.738475% is "15.7385%").
    assert float(width.rstrip("%")) == pytest.approx(min(team["used"], 1) * 100, abs=1e-3)
    assert _usd(Decimal(team["spent_usd"])) in page.inner_text("#budget-team-research")

    # group by key: the chart shows this period and the previous one per key, largest first
    page.select_option("#group-by", "key")
    _wait_renders(page, renders + 1)
    renders += 1
    chart = _group_chart(page)
    current, previous = _by(now, "key_id"), _by(before, "key_id")
    names = {seeded["research"].key_id: "research-bot", seeded["solo"].key_id: "solo"}
    ranked = sorted(current, key=lambda k: -current[k])
    assert chart["labels"] == [f"{names[k]} ({k})" for k in ranked]  # named keys, largest first
    assert chart["datasets"][0] == pytest.approx([float(current[k]) for k in ranked])
    assert chart["datasets"][1] == pytest.approx([float(previous.get(k, 0)) for k in ranked])
    assert page.inner_text("#groups-title").startswith("Spend by key")
    page.screenshot(path=str(tmp_path / "console-wide.png"), full_page=True)

    # CSV download of that chart: exact decimal strings, one row per key
    with page.expect_download() as info:
        page.click("#sec-groups button[data-csv]")
    download = info.value
    assert download.suggested_filename == "tokenomy-spend-by-key.csv"
    rows = list(csv.DictReader(io.StringIO(Path(download.path()).read_text())))
    assert {r["key"]: Decimal(r["cost_usd"]) for r in rows} == current
    assert {r["key"]: r["name"] for r in rows} == names
    assert {r["key"]: Decimal(r["previous_cost_usd"]) for r in rows} == {
        k: previous.get(k, Decimal(0)) for k in current
    }

    # request log: 25 rows a page, more on demand; find a retried request and drill into its attempts
    assert page.eval_on_selector_all("#table-requests tbody tr", "rs => rs.length") == 25
    page.click("#log-more")
    assert page.eval_on_selector_all("#table-requests tbody tr", "rs => rs.length") == 50
    retried = max((e for e in now if e.attempt == 2), key=lambda e: e.ts)
    page.fill("#log-search", retried.request_id)
    assert page.eval_on_selector_all("#table-requests tbody tr", "rs => rs.length") == 2
    page.click(f"#table-requests tbody tr[data-request='{retried.request_id}']")
    page.wait_for_selector("#table-attempts")
    attempts = page.eval_on_selector_all("#table-attempts tbody tr", "rs => rs.map(r => r.innerText)")
    assert len(attempts) == 2 and "throttled" in attempts[0] and "ok" in attempts[1]
    assert page.inner_text("#table-attempts thead th:nth-child(2)") == "time (UTC)"  # as the log's, labelled
    assert _usd(retried.cost_usd) in attempts[1]
    assert retried.request_id in page.inner_text("#drill h3")
    page.screenshot(path=str(tmp_path / "console-drill.png"), full_page=True)

    # a range that fails (From after To): the error says the figures shown are the last good load's, greyed out
    shown = page.inner_text("#head-spend")
    page.fill("input[name=since]", "2026-12-20")
    page.wait_for_function("window.tokenomyDashboard.error !== null")
    assert "The figures below are from the last successful load." in page.inner_text("#error")
    assert page.evaluate("document.body.classList.contains('stale')") and page.inner_text("#head-spend") == shown
    assert float(page.evaluate("getComputedStyle(document.querySelector('main')).opacity")) < 1

    # an empty range: every panel says why and what to do, no chart is drawn
    renders = _set_range(page, "2020-01-01", "2020-01-07", renders)
    assert not page.evaluate("document.body.classList.contains('stale')") and not page.is_visible("#error")
    for section in ("#sec-groups", "#sec-spend", "#sec-requests", "#sec-levers"):
        message = page.inner_text(f"{section} .empty-state")
        assert page.is_visible(f"{section} .empty-state") and message, section
        assert not page.is_visible(f"{section} .chart, {section} .has-data"), section
    assert "Widen" in page.inner_text("#sec-spend .empty-state")
    assert page.inner_text("#head-spend") == "$0.000000"
    page.screenshot(path=str(tmp_path / "console-empty.png"), full_page=True)
    assert outside == [] and errors == []
    page.close()


@pytest.mark.browser
def test_group_table_counts_and_shares_every_group_beyond_the_top_50(browser, tmp_path) -> None:
    """The API sends the largest 50 groups; the title used to say "top 10 of 50" for 60 models and each share was
    of those 50's sum (17% for $10 of $69), not of the period's spend (14%)."""
    from tokenomy.ledger.events import UsageEvent
    from tokenomy.ledger.store import open_store

    path = tmp_path / "ledger.duckdb"
    open_store(path).write(
        [
            UsageEvent(
                ts=datetime(2026, 11, 10, 12, tzinfo=UTC),
                provider="openai",
                model=f"model-{i:02d}",
                cost_usd=Decimal(10 if i == 0 else 1),
            )
            for i in range(60)
        ]
    )
    with ServerThread(create_app(None, str(path)), lifespan="on") as url:
        page = browser.new_page(viewport={"width": 1400, "height": 1000})
        page.goto(f"{url}/dashboard")
        _wait_renders(page, 1)
        assert page.inner_text("#head-spend") == "$69.000000"
        assert page.inner_text("#groups-title") == "Spend by model (top 10 of 60)"
        first = page.eval_on_selector_all("#table-groups tbody tr:first-child td", "tds => tds.map(t => t.innerText)")
        assert first[:3] == ["model-00", "$10.000000", "14%"]
        page.close()


@pytest.mark.browser
def test_csv_keeps_a_carriage_return_inside_its_cell(browser, tmp_path) -> None:
    """A name with a lone CR was written unquoted: a CSV reader (or a spreadsheet) split the row in two."""
    from tokenomy.ledger.events import UsageEvent
    from tokenomy.ledger.store import open_store

    path = tmp_path / "ledger.duckdb"
    models = {"line\rbreak": Decimal("1.25"), "plain": Decimal("2")}
    open_store(path).write(
        [
            UsageEvent(ts=datetime(2026, 11, 10, 12, tzinfo=UTC), provider="openai", model=model, cost_usd=cost)
            for model, cost in models.items()
        ]
    )
    with ServerThread(create_app(None, str(path)), lifespan="on") as url:
        page = browser.new_page(accept_downloads=True)
        page.goto(f"{url}/dashboard")
        _wait_renders(page, 1)
        with page.expect_download() as info:
            page.click("#sec-groups button[data-csv]")
        text = Path(info.value.path()).read_bytes().decode()  # as written: no newline translation
        rows = list(csv.DictReader(io.StringIO(text, newline="")))
        assert {r["key"]: Decimal(r["cost_usd"]) for r in rows} == models
        page.close()


@pytest.mark.browser
def test_usage_type_note_explains_every_type_drawn(gateway, browser) -> None:
    # The note said "the five add up to the period's spend" under a chart of seven usage types.
    page = browser.new_page(viewport={"width": 1400, "height": 1000})
    page.goto(f"{gateway}/dashboard")
    _wait_renders(page, 1)
    labels = page.evaluate("Chart.getChart('chart-types').data.labels")
    note = page.inner_text("#sec-types .note")
    page.close()
    assert len(labels) == 7 and all(label in note for label in labels), (labels, note)
    assert "add up to the period's spend" in note


@pytest.mark.browser
def test_the_console_loads_with_nothing_in_the_browsers_console(gateway, browser) -> None:
    # Every load logged "Failed to load resource: 404" for the /favicon.ico the browser asks a page with no icon for.
    page = browser.new_page()
    logged: list[str] = []
    page.on("console", lambda message: logged.append(f"{message.type}: {message.text} {message.location}"))
    page.on("pageerror", lambda exc: logged.append(f"pageerror: {exc}"))
    page.goto(f"{gateway}/dashboard")
    _wait_renders(page, 1)
    page.wait_for_load_state("networkidle")
    # Every link on it loads too: the header's "latest quarterly review" answered 404 (and its page asked for an
    # icon, another 404) on a gateway whose ledger holds no review yet, for a page that only says so.
    links = page.eval_on_selector_all("a[href]", "links => links.map(a => a.href)")
    assert links, "the page links to nothing"
    for link in links:
        answer = page.goto(link)
        page.wait_for_load_state("networkidle")
        assert answer is not None and answer.status == 200, (link, answer and answer.status)
        assert page.inner_text("body").strip(), f"{link} is blank"
    page.close()
    assert logged == []


@pytest.mark.browser
def test_dates_out_of_order_are_named_as_the_form_names_them(gateway, browser) -> None:
    # From after To sent thirteen queries the API refused, and the page said "since=2026-12-01 is not before
    # until=2026-11-21 (until is exclusive)": parameters the form does not show, and a day nobody picked.
    page = browser.new_page()
    refused: list[str] = []
    page.on("response", lambda r: refused.append(r.url) if r.status >= 400 else None)
    page.goto(f"{gateway}/dashboard")
    _wait_renders(page, 1)
    page.fill("input[name=since]", "2026-12-01")
    _wait_renders(page, 2)
    page.fill("input[name=to]", "2026-11-20")
    page.wait_for_function("document.getElementById('error').textContent !== ''")
    page.wait_for_load_state("networkidle")
    assert page.inner_text("#error").startswith("From 2026-12-01 is after To 2026-11-20: swap them, or clear one.")
    assert page.evaluate("document.body.classList.contains('stale')")  # the figures shown are the last load's
    assert refused == []
    page.fill("input[name=to]", "2026-12-01")
    _wait_renders(page, 3)
    assert page.inner_text("#error") == "" and page.inner_text("#head-period") == "2026-12-01 → 2026-12-01"
    page.close()


# The cells of a table that reach past the box it is drawn in (cut off, or behind a sideways scroll), with the text.
_CELLS_OUTSIDE = """id => {
    const table = document.getElementById(id), box = table.closest(".scroll").getBoundingClientRect();
    return [...table.querySelectorAll("th, td")].filter(c => c.getBoundingClientRect().width > 0)
        .filter(c => c.getBoundingClientRect().right > box.right + 0.5 || c.getBoundingClientRect().left < box.left - 0.5)
        .map(c => c.textContent);
}"""


@pytest.mark.browser
def test_console_fits_a_390px_phone(gateway, seeded, browser, tmp_path) -> None:
    page = browser.new_page(viewport={"width": 390, "height": 844})
    errors: list[str] = []
    page.on("pageerror", lambda exc: errors.append(str(exc)))
    page.goto(f"{gateway}/dashboard")
    _wait_renders(page, 1)
    # money is printed by the one rule (six places, half to even, from the exact string, thousands grouped as
    # `tokenomy report` groups them: the page wrote "$1234.500000" beside the CLI's "$1,234.500000") in text and
    # tooltips
    amounts = [
        "0.0004",
        "0.4",
        "0.000123456",
        "1234.5",
        "0.0000005",
        "0.0000015",
        "-0.25",
        "12345678901234.1234565",
        "-999.9999995",
        "-1000",
        "100000",
    ]
    assert (
        page.evaluate(f"{amounts}.map(TokenomyConsole.usd)")
        == [_usd(Decimal(a)) for a in amounts]
        == [
            "$0.000400",
            "$0.400000",
            "$0.000123",
            "$1,234.500000",
            "$0.000000",
            "$0.000002",
            "-$0.250000",
            "$12,345,678,901,234.123456",
            "-$1,000.000000",
            "-$1,000.000000",
            "$100,000.000000",
        ]
    )
    tip = page.evaluate("""() => Chart.getChart('chart-spend').options.plugins.tooltip.callbacks
        .label({dataset: {label: 'gpt-4o-mini'}, raw: 0.0004})""")
    assert tip == "gpt-4o-mini: $0.000400"
    page.click("#table-requests tbody tr")  # the drill-down too
    page.wait_for_selector("#table-attempts")
    assert page.evaluate("document.documentElement.scrollWidth") <= 390
    boxes = page.eval_on_selector_all("section, .card", "els => els.map(e => e.getBoundingClientRect().right)")
    assert boxes and max(boxes) <= 390
    # the provider view's model table keeps each month's cost and tokens on screen beside the model id (they sat
    # past the edge of its scroll box, "Monthly cost" cut in half, behind a sideways scroll)
    # and so do the group table, the request log and a request's attempts: their change, cost, latency and outcome
    # sat past the edge of their boxes, a sideways scroll away, the group names squeezed to five letters a line
    for table in ("table-provider-models", "table-groups", "table-requests", "table-attempts"):
        assert page.evaluate(_CELLS_OUTSIDE, table) == [], table
    names = page.eval_on_selector_all("#table-groups tbody td:first-child", "cs => cs.map(c => c.clientWidth)")
    assert names and min(names) > 200, names  # a group's name has a line of its own
    shown = page.eval_on_selector_all(
        "#table-requests tbody tr:first-child td", "cs => cs.map(c => c.getBoundingClientRect().width > 0)"
    )
    assert shown == [True] * 8  # stacked, not dropped: time, route, tier, model, tokens, cost, latency, outcome
    page.screenshot(path=str(tmp_path / "console-390.png"), full_page=True)
    assert errors == []
    page.close()


@pytest.mark.browser
def test_report_html_console_works_offline(seeded, browser, tmp_path) -> None:
    out = tmp_path / "console.html"
    result = CliRunner().invoke(
        cli,
        [
            "report",
            "--html",
            str(out),
            "--ledger",
            str(seeded["path"]),
            "--since",
            seeded["since"].isoformat(),
            "--until",
            seeded["until"].isoformat(),
        ],
    )
    assert result.exit_code == 0, result.output
    page = browser.new_page(viewport={"width": 390, "height": 844})
    outside = _watch_requests(page, out.as_uri())
    page.goto(out.as_uri())
    _wait_renders(page, 1)
    now = _in(seeded["events"], seeded["since"], seeded["until"])
    assert page.inner_text("#head-spend") == _usd(sum(e.cost_usd for e in now))
    page.select_option("#group-by", "team")  # every grouping is in the file: no query needed
    _wait_renders(page, 2)
    assert set(_group_chart(page)["labels"]) == set(_by(now, "tenant"))
    page.click("#table-requests tbody tr")  # the attempts travel with the file
    assert page.eval_on_selector_all("#table-attempts tbody tr", "rs => rs.length") >= 1
    assert page.evaluate("document.documentElement.scrollWidth") <= 390
    assert outside == []
    page.close()


# Where each label a chart's category axis draws lies: outside the canvas (cut), beyond its axis box, or over the next.
_LABELS_OFF = """ids => ids.flatMap(id => {
    const chart = Chart.getChart(id);
    return Object.values(chart.scales).filter(axis => axis.type === "category").flatMap(axis => {
        axis.ctx.font = Chart.helpers.toFont(axis.options.ticks.font).string;
        const turn = axis.labelRotation * Math.PI / 180, wrong = [];
        const boxes = axis.ticks.map((tick, i) => {
            const width = axis.ctx.measureText(String(tick.label)).width, at = axis.getPixelForTick(i);
            if (!axis.isHorizontal()) return width > axis.width + 1 ? wrong.push([id, tick.label, "cut"]) : null;
            const left = turn ? at - width * Math.cos(turn) : at - width / 2;
            if (left < -1 || axis.top + width * Math.sin(turn) > axis.bottom + 2) wrong.push([id, tick.label, "cut"]);
            return [left, turn ? at : at + width / 2];
        });
        if (axis.isHorizontal() && !turn) boxes.slice(1).forEach((box, i) => box[0] - boxes[i][1] < 6 && wrong.push([id, boxes[i], box, "overlap"]));
        return wrong;
    });
})"""


@pytest.mark.browser
def test_chart_labels_stay_whole_and_apart_on_a_phone(browser, tmp_path) -> None:
    """At 390 px, a forecast in the millions widened the money axis until the four days under the month-end chart
    ran together ("2026-12-012026-12-03..."), and long model ids were cut at the canvas edge on the usage, cache
    and latency charts ("y-long-model-name-05-20")."""
    from tokenomy.ledger.events import UsageEvent
    from tokenomy.ledger.store import open_store

    end = datetime.now(UTC).replace(minute=0, second=0, microsecond=0)
    models = ["gpt-4o-mini", "claude-haiku-4-5-20251001", "us.anthropic.claude-3-7-sonnet-20250219-v1:0", "gpt-4.1"]
    models.append("gemini-2.5-flash-preview-very-long-model-name-05-20")
    path = tmp_path / "ledger.duckdb"
    open_store(path).write(
        [
            UsageEvent(
                ts=end - timedelta(days=d, hours=i),
                provider="openai",
                model=model,
                input_tokens=10**7,
                cache_read_tokens=10**6,
                latency_ms=100.0,
                cost_usd=Decimal("123456.7891234") * (i + 1),
            )
            for d in range(40)
            for i, model in enumerate(models)
        ]
    )
    out = tmp_path / "console.html"
    result = CliRunner().invoke(cli, ["report", "--html", str(out), "--ledger", str(path)])
    assert result.exit_code == 0, result.output
    page = browser.new_page(viewport={"width": 390, "height": 844})
    page.goto(out.as_uri())
    _wait_renders(page, 1)
    charts = ["chart-forecast", "chart-usage", "chart-cache", "chart-latency", "chart-groups"]
    off = page.evaluate(_LABELS_OFF, charts)
    page.close()
    assert off == [], [(o[0], o[-1]) for o in off]


def test_a_team_key_sees_its_own_team_budgets_and_no_ledger_wide_alerts(seeded, tmp_path) -> None:
    import shutil

    from tokenomy.config import parse_config
    from tokenomy.gateway.keys import KeyStore
    from tokenomy.ledger.store import open_store

    path = tmp_path / "ledger.duckdb"
    shutil.copy(seeded["path"], path)
    secret, _ = KeyStore(open_store(path)).create(team="research", name="viewer")
    with ServerThread(create_app(parse_config({"auth": True}), str(path)), lifespan="on") as url:
        bearer = {"authorization": f"Bearer {secret}"}
        assert httpx.get(f"{url}/dashboard/api/budgets").status_code == 401
        body = httpx.get(f"{url}/dashboard/api/budgets", headers=bearer).json()
        assert [t["id"] for t in body["teams"]] == ["research"]
        assert seeded["solo"].key_id not in {k["id"] for k in body["keys"]}  # not in the team: not shown
        alerts = httpx.get(f"{url}/dashboard/api/alerts", headers=bearer, timeout=60).json()
        assert alerts["note"] and all(a["kind"].endswith("_budget") for a in alerts["alerts"])
        rows = httpx.get(f"{url}/dashboard/api/requests", headers=bearer).json()["rows"]
        assert rows and {r["tenant"] for r in rows} == {"research"}


@pytest.mark.browser
def test_a_console_behind_keys_asks_for_a_key_once_and_then_loads(seeded, browser, tmp_path) -> None:
    # Opened without a key, the page asked for one and then fetched all thirteen sections anyway: thirteen more
    # 401s in the browser's console and a red "Could not load the dashboard data" box under the key form.
    import shutil

    from tokenomy.config import parse_config
    from tokenomy.gateway.keys import KeyStore
    from tokenomy.ledger.store import open_store

    path = tmp_path / "ledger.duckdb"
    shutil.copy(seeded["path"], path)
    secret, _ = KeyStore(open_store(path)).create(team="research", name="viewer")
    with ServerThread(create_app(parse_config({"auth": True}), str(path)), lifespan="on") as url:
        page = browser.new_page()
        refused: list[str] = []
        page.on("response", lambda r: refused.append(r.url) if r.status == 401 else None)
        page.goto(f"{url}/dashboard")
        page.wait_for_selector("#auth:not([hidden])")
        page.wait_for_load_state("networkidle")
        assert [u.split("/dashboard")[1] for u in refused] == ["/api/filters"], refused
        assert page.inner_text("#error") == "" and not page.is_visible("#error")
        assert "needs a virtual key" in page.inner_text("#auth-message")
        page.fill("#auth input[name=key]", secret)
        page.click("#auth button")
        _wait_renders(page, 1)
        assert page.is_hidden("#auth") and page.inner_text("#error") == ""
        assert page.inner_text("#kpi-calls") != "0"
        page.close()


@pytest.mark.postgres
def test_console_sections_are_the_same_on_postgres(seeded, fresh_postgres_url) -> None:
    from tokenomy.analytics import dashboard_data
    from tokenomy.ledger.store import open_store

    duck, pg = open_store(seeded["path"]), open_store(fresh_postgres_url)
    pg.write(seeded["events"])
    filters = dashboard_data.make_filters(since=_range(seeded)["since"], until=_range(seeded)["until"])
    for name in ("requests", "savings"):
        assert dashboard_data.SECTIONS[name](pg, filters) == dashboard_data.SECTIONS[name](duck, filters), name
    on_pg, on_duck = (dashboard_data.SECTIONS["breakdown"](s, filters) for s in (pg, duck))
    assert {r.pop("name") for r in on_pg["groups"]["key"]} == {None}  # no keys table on PostgreSQL here
    for r in on_duck["groups"]["key"]:
        r.pop("name")
    assert on_pg == on_duck
    assert dashboard_data.SECTIONS["budgets"](pg, filters)["keys"] == []  # no keys table there: nothing, not an error


def test_a_key_database_outage_is_a_503_not_a_request_for_a_key(tmp_path, monkeypatch) -> None:
    """With the key database unreachable, a key the gateway has not cached yet cannot be checked: the dashboard
    answered 401 "needs a virtual key", so the page asked again for the key the user had just given."""
    from tokenomy.config import parse_config
    from tokenomy.gateway.keycache import KeysUnavailable

    app = create_app(parse_config({"auth": True}), str(tmp_path / "ledger.duckdb"))
    with ServerThread(app, lifespan="on") as url:

        def unreachable(secret: str):
            raise KeysUnavailable("connection refused")

        monkeypatch.setattr(app.state.gateway.key_cache, "fetch", unreachable)
        answer = httpx.get(f"{url}/dashboard/api/totals", headers={"authorization": "Bearer tk-not-cached"})
        assert answer.status_code == 503 and "unreachable" in answer.json()["detail"], answer.text
        assert httpx.get(f"{url}/dashboard/api/totals").status_code == 401  # no key at all: still the caller's


def test_a_zero_team_budget_with_spend_is_over_budget(tmp_path) -> None:
    # A $0 team budget (spend nothing) showed no usage when the team had spent, so no over-budget alert fired.
    from tokenomy.analytics.console_data import alerts, budgets
    from tokenomy.analytics.dashboard_data import Filters
    from tokenomy.gateway.keys import KeyStore
    from tokenomy.ledger.events import UsageEvent
    from tokenomy.ledger.store import open_store

    store = open_store(tmp_path / "ledger.duckdb")
    keys = KeyStore(store)
    keys.set_team_budget("frozen", Decimal(0))
    keys.set_team_budget("idle", Decimal(0))
    store.write(
        [
            UsageEvent(
                ts=datetime(2026, 11, 3, 9, tzinfo=UTC),
                provider="openai",
                model="m",
                tenant="frozen",
                input_tokens=10,
                cost_usd=Decimal("0.25"),
            )
        ]
    )
    f = Filters(since=datetime(2026, 11, 1, tzinfo=UTC), until=datetime(2026, 11, 10, tzinfo=UTC))
    teams = {r["id"]: r for r in budgets(store, f)["teams"]}
    assert (teams["frozen"]["spent_usd"], teams["frozen"]["used"]) == ("0.250000", 1.0)
    assert teams["idle"]["used"] == 0.0  # nothing spent: within its $0
    over = [a for a in alerts(store, f)["alerts"] if a["kind"] == "team_budget"]
    assert [a["subject"] for a in over] == ["team frozen"], over


def test_an_over_budget_alert_below_a_cent_shows_its_figures(tmp_path) -> None:
    # A $0.004 key budget spent to $0.006 read "spent $0.01 of $0.00 this month" in the console's alerts (cents),
    # where `alerts check` and the budget bar beside it print the figures a sub-cent budget needs.
    from tokenomy.analytics.console_data import alerts
    from tokenomy.analytics.dashboard_data import Filters
    from tokenomy.gateway.keys import KeyStore
    from tokenomy.ledger.events import UsageEvent
    from tokenomy.ledger.store import open_store

    store = open_store(tmp_path / "ledger.duckdb")
    keys = KeyStore(store)
    _, tiny = keys.create(budget_usd=Decimal("0.004"), name="tiny")
    _, whole = keys.create(budget_usd=Decimal("0.10"), name="whole")
    store.write(
        [
            UsageEvent(
                ts=datetime(2026, 11, 3, 9, tzinfo=UTC),
                provider="openai",
                model="m",
                key_id=key.key_id,
                input_tokens=10,
                cost_usd=cost,
            )
            for key, cost in ((tiny, Decimal("0.006")), (whole, Decimal("0.4")))
        ]
    )
    f = Filters(since=datetime(2026, 11, 1, tzinfo=UTC), until=datetime(2026, 11, 10, tzinfo=UTC))
    over = {a["subject"]: a["message"] for a in alerts(store, f)["alerts"] if a["kind"] == "key_budget"}
    assert over == {
        "key tiny": "spent $0.006000 of $0.004000 this month",
        "key whole": "spent $0.400000 of $0.100000 this month",
    }


def test_the_request_log_lists_calls_not_an_imported_bills_rows(tmp_path) -> None:
    # A bill's day row sat in the log as a $5 "call" beside the day's metered calls, though spend does not count it
    # (the metered calls are that provider-day's spend), and the log said "of 3 calls" where the header said 2.
    from tokenomy.analytics.dashboard_data import Filters, requests, totals
    from tokenomy.ledger.events import UsageEvent
    from tokenomy.ledger.store import open_store

    store = open_store(tmp_path / "ledger.duckdb")
    day = datetime(2026, 11, 3, tzinfo=UTC)
    store.write(
        [
            UsageEvent(
                ts=day + timedelta(hours=h),
                provider="openai",
                model="gpt-4o-mini",
                input_tokens=10,
                cost_usd=Decimal("0.01"),
                request_id=f"r{h}",
            )
            for h in (1, 2)
        ]
        + [
            UsageEvent(
                ts=day,
                provider="openai",
                model="gpt-4o-mini",
                input_tokens=10**6,
                cost_usd=Decimal(5),
                priced_by="billed",
            ),
            UsageEvent(
                ts=day, provider="anthropic", model="claude", input_tokens=10, cost_usd=Decimal(1), priced_by="billed"
            ),
        ]
    )
    log = requests(store, Filters())
    assert [r["request_id"] for r in log["rows"]] == ["r2", "r1"] and log["total"] == totals(store, Filters())["calls"]
    assert log["bill_rows"] == 2  # said in the note and the empty state: a bill's rows are spend, not calls
    only_bills = requests(store, Filters(provider="anthropic"))
    assert (only_bills["rows"], only_bills["total"], only_bills["bill_rows"]) == ([], 0, 1)


def test_a_lifetime_budget_is_said_in_total_not_this_total(tmp_path) -> None:
    # A key with a lifetime budget (period total) was over "spent $0.40 of $0.10 this total".
    from tokenomy.analytics.console_data import alerts
    from tokenomy.analytics.dashboard_data import Filters
    from tokenomy.gateway.keys import KeyStore
    from tokenomy.ledger.events import UsageEvent
    from tokenomy.ledger.store import open_store

    store = open_store(tmp_path / "ledger.duckdb")
    keys = KeyStore(store)
    _, lifetime = keys.create(budget_usd=Decimal("0.10"), period="total", name="lifetime")
    _, daily = keys.create(budget_usd=Decimal("0.10"), period="day", name="daily")
    store.write(
        [
            UsageEvent(
                ts=datetime(2026, 11, 3, 9, tzinfo=UTC),
                provider="openai",
                model="m",
                key_id=key.key_id,
                input_tokens=10,
                cost_usd=Decimal("0.4"),
            )
            for key in (lifetime, daily)
        ]
    )
    f = Filters(since=datetime(2026, 11, 1, tzinfo=UTC), until=datetime(2026, 11, 4, tzinfo=UTC))
    over = {a["subject"]: a["message"] for a in alerts(store, f)["alerts"] if a["kind"] == "key_budget"}
    assert over == {
        "key lifetime": "spent $0.400000 of $0.100000 in total",
        "key daily": "spent $0.400000 of $0.100000 this day",
    }
    # and no period start to name: the page printed the epoch after it, "in total (1970-01-01)"
    when = {a["subject"]: a["when"] for a in alerts(store, f)["alerts"] if a["kind"] == "key_budget"}
    assert when == {"key lifetime": None, "key daily": "2026-11-03"}


@pytest.mark.browser
def test_what_to_change_says_the_warnings_plan_savings_gives(tmp_path, browser) -> None:
    # `plan savings` warns that calls it cannot price were left out and that list prices are not what the ledger
    # recorded; the console printed the same dollars ("... of $119.13/month now") with neither warning.
    bill = Path(__file__).parent / "billing_exports" / "openai_usage_and_costs.jsonl"
    path = tmp_path / "ledger.duckdb"
    assert CliRunner().invoke(cli, ["import", "openai-usage", str(bill), "--ledger", str(path)]).exit_code == 0
    result = CliRunner().invoke(cli, ["plan", "savings", "--json", "--ledger", str(path)])
    assert result.exit_code == 0, result.output
    warnings = json.loads(result.stdout)["warnings"]
    assert any("left out" in w for w in warnings)
    assert not any(".;" in w for w in warnings), warnings  # "... (TOKENOMY_PRICES=FILE).; or re-price"
    with ServerThread(create_app(None, str(path)), lifespan="on") as url:
        section = httpx.get(f"{url}/dashboard/api/savings", timeout=60).json()
        page = browser.new_page(viewport={"width": 1400, "height": 1000})
        page.goto(f"{url}/dashboard")
        _wait_renders(page, 1)
        note = page.inner_text("#levers-note")
        page.close()
    assert section["warnings"] == warnings
    assert "Warning: " + warnings[0] in note


def test_the_request_log_says_why_a_cascade_rejected_an_attempts_answer(ledger_path) -> None:
    """A cascade's request showed two answered attempts and no reason the first was not the answer; each attempt
    now carries `rejected`, the reason its ledger row records (the drill-down prints it beside the outcome)."""
    import openai

    from helpers.scripted_openai import ScriptedOpenAI
    from tokenomy.config import parse_config

    small, big = ScriptedOpenAI([], reply=("I'm not sure, ", "maybe Tom")), ScriptedOpenAI([], reply=("Tom",))
    try:
        cfg = parse_config(
            {
                "models": {
                    "small": {"provider": "openai", "model": "small", "base_url": small.url, "price_as": "gpt-4o-mini"},
                    "big": {"provider": "openai", "model": "big", "base_url": big.url, "price_as": "gpt-4o"},
                },
                "tiers": {"basic": ["small"], "premium": ["big"]},
                "routes": {"extract": {"policy": "cascade"}},
                "routing": {"policies": {"cascade": {"type": "cascade", "tiers": ["basic", "premium"]}}},
            }
        )
        with ServerThread(create_app(cfg, str(ledger_path)), lifespan="on") as url:
            client = openai.OpenAI(base_url=url + "/v1", api_key="unused", max_retries=0)
            client.chat.completions.create(model="extract", messages=[{"role": "user", "content": "Name?"}])
        with ServerThread(create_app(None, str(ledger_path)), lifespan="on") as url:
            body = httpx.get(f"{url}/dashboard/api/requests").json()
    finally:
        small.close()
        big.close()
    [attempts] = body["attempts"].values()
    assert [(a["attempt"], a["outcome"], a["rejected"]) for a in attempts] == [
        (1, "ok", 'hedging language: "i\'m not sure"'),
        (2, "ok", None),
    ]


@pytest.mark.browser
def test_the_page_prints_the_totals_the_api_summed_not_float_sums(browser, tmp_path) -> None:
    """The page added and subtracted money as floats (a group's change against the previous period, a request's
    attempts, a chart's tooltip read back from a float): on large amounts the sixth decimal came out one off, so the
    console printed +$123,456.315649 where `tokenomy report` prints +$123,456.315648. The API now sends those totals
    as exact strings and the page prints them by the money rule."""
    from tokenomy.ledger.events import UsageEvent
    from tokenomy.ledger.store import open_store

    path = tmp_path / "ledger.duckdb"
    before, now = datetime(2026, 11, 2, 12, tzinfo=UTC), datetime(2026, 11, 5, 12, tzinfo=UTC)
    first, second, previous = Decimal("0.8510126"), Decimal("123456.1712059"), Decimal("0.70657")
    row = {"provider": "openai", "model": "big", "input_tokens": 10}
    open_store(path).write(
        [
            UsageEvent(ts=before, request_id="earlier", cost_usd=previous, **row),
            UsageEvent(ts=now, request_id="retried", attempt=1, outcome="throttled", cost_usd=first, **row),
            UsageEvent(ts=now + timedelta(seconds=1), request_id="retried", attempt=2, cost_usd=second, **row),
        ]
    )
    spent, change = first + second, first + second - previous  # 123457.0222185 and 123456.3156485: halves
    assert (_usd(spent), _usd(change)) == ("$123,457.022218", "$123,456.315648")  # to even, as reports print them
    out = tmp_path / "console.html"
    result = CliRunner().invoke(
        cli, ["report", "--html", str(out), "--ledger", str(path), "--since", "2026-11-04", "--until", "2026-11-07"]
    )
    assert result.exit_code == 0, result.output
    page = browser.new_page(viewport={"width": 1400, "height": 1000})
    page.goto(out.as_uri())
    _wait_renders(page, 1)
    assert page.inner_text("#head-spend") == _usd(spent)
    assert page.inner_text("#head-delta").startswith("+" + _usd(change))
    cells = page.eval_on_selector_all("#table-groups tbody tr:first-child td", "tds => tds.map(t => t.innerText)")
    assert cells == ["big", _usd(spent), "100%", _usd(previous), "+" + _usd(change)]
    tips = page.evaluate("""() => ['chart-groups', 'chart-spend'].map((id) => {
        const chart = Chart.getChart(id), dataset = chart.data.datasets[0];
        const index = dataset.data.findIndex((v) => v > 0);
        return chart.options.plugins.tooltip.callbacks.label({dataset, dataIndex: index, raw: dataset.data[index]});
    })""")
    assert all(tip.endswith(": " + _usd(spent)) for tip in tips), tips
    page.click("#table-requests tbody tr[data-request='retried']")
    assert "2 attempt(s) · " + _usd(spent) + " ·" in page.inner_text("#drill h3")
    page.close()


@pytest.mark.browser
def test_the_month_end_forecast_sits_at_the_months_last_day(browser, tmp_path) -> None:
    # The forecast chart's axis was one category a day with the month's last day added after them, so on 2026-11-15
    # the month-end point sat one step after 11-14 (the forecast line one day long) instead of sixteen days on.
    from tokenomy.ledger.events import UsageEvent
    from tokenomy.ledger.store import open_store

    until = datetime(2026, 11, 15, tzinfo=UTC)
    path = tmp_path / "ledger.duckdb"
    open_store(path).write(
        [
            UsageEvent(
                ts=until - timedelta(days=d, hours=3),
                provider="openai",
                model="gpt-4o-mini",
                input_tokens=1000,
                cost_usd=Decimal("1.5") + Decimal(d % 3) / 10,
            )
            for d in range(1, 60)
        ]
    )
    out = tmp_path / "console.html"
    args = ["report", "--html", str(out), "--ledger", str(path), "--until", until.isoformat()]
    assert CliRunner().invoke(cli, args).exit_code == 0
    page = browser.new_page(viewport={"width": 1280, "height": 900})
    page.goto(out.as_uri())
    _wait_renders(page, 1)
    chart = page.evaluate("""() => {
        const chart = Chart.getChart('chart-forecast'), forecast = chart.data.datasets.findIndex(d => d.label === 'forecast');
        const points = chart.getDatasetMeta(forecast).data.filter(p => !p.skip);
        return { left: chart.chartArea.left, right: chart.chartArea.right, points: points.map(p => p.x),
                 ticks: chart.scales.x.ticks.map((t, i) => chart.scales.x.getLabelForValue(t.value)) };
    }""")
    page.close()
    [today, month_end] = chart["points"]  # month to date after 11-14, the forecast at 11-30
    width = chart["right"] - chart["left"]
    assert month_end == pytest.approx(chart["right"], abs=1)
    assert (today - chart["left"]) / width == pytest.approx(13 / 29, abs=0.01)  # day 14 of 1..30


@pytest.mark.browser
def test_alerts_the_budget_bar_and_what_to_change_print_money_alike(browser, tmp_path) -> None:
    # An over-budget alert printed cents ("spent $0.40 of $0.10 in total") beside its budget bar's "$0.400000 of
    # $0.100000 in total", and "What to change" said "... of $0.000600/month now" then "the current cost at list
    # prices, 0.000600 USD a month": one page, three ways to write money.
    from tokenomy.gateway.keys import KeyStore
    from tokenomy.ledger.events import UsageEvent
    from tokenomy.ledger.store import open_store

    path = tmp_path / "ledger.duckdb"
    store = open_store(path)
    _, key = KeyStore(store).create(budget_usd=Decimal("0.10"), period="total", name="capped")
    now = datetime.now(UTC).replace(microsecond=0)
    store.write(  # recorded at a price that is not the list price: plan savings warns of it
        [
            UsageEvent(
                ts=now - timedelta(hours=h),
                provider="openai",
                model="gpt-4o-mini",
                key_id=key.key_id,
                input_tokens=1000,
                output_tokens=100,
                cost_usd=Decimal("0.1"),
                tags={"latency_tolerant": "true"},  # the batch lever saves: the note gives the cost it is measured on
            )
            for h in range(1, 5)
        ]
    )
    with ServerThread(create_app(None, str(path)), lifespan="on") as url:
        page = browser.new_page(viewport={"width": 1280, "height": 900})
        page.goto(f"{url}/dashboard")
        _wait_renders(page, 1)
        alert = page.inner_text("#alerts li[data-kind=key_budget]")
        bar = page.inner_text(f"#budget-key-{key.key_id} .budget-figures")
        note = page.inner_text("#levers-note")
        page.close()
    figures = alert.split(" spent ", 1)[1].split(" in total")[0]
    assert figures == "$0.400000 of $0.100000" and bar.startswith(figures + " in total"), (alert, bar)
    now_cost = note.split(" of ", 1)[1].split("/month now")[0]
    assert now_cost.startswith("$") and f"the current cost at list prices, {now_cost} a month" in note, note
    assert " USD" not in note, note
