"""alerts check: budgets (spent and forecast), anomalies, cache drops, routing drift, escalation and idle
reservations; each alert posted once to a real local webhook; bad settings name their key."""

from __future__ import annotations

import json
import threading
from dataclasses import replace
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest
from typer.testing import CliRunner

from helpers.seeded_ledgers import NOW as REPORT_NOW
from helpers.seeded_ledgers import _events, _ledger
from tokenomy.analytics.alerts import AlertSettings, evaluate, validate_budgets
from tokenomy.cli import app
from tokenomy.config import parse_config
from tokenomy.errors import ConfigError
from tokenomy.ledger.events import UsageEvent
from tokenomy.ledger.store import open_store
from tokenomy.routing.router import ESCALATED_TAG


@pytest.fixture
def webhook():
    """A real HTTP server on 127.0.0.1 that records every JSON body POSTed to it."""
    received: list[dict] = []

    class Handler(BaseHTTPRequestHandler):
        def do_POST(self) -> None:
            received.append(json.loads(self.rfile.read(int(self.headers["content-length"]))))
            self.send_response(204)
            self.end_headers()

        def log_message(self, *args) -> None:
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{server.server_address[1]}/hook", received
    server.shutdown()
    server.server_close()


def test_budget_spent_and_forecast(ledger_path) -> None:
    _ledger(ledger_path)
    store = open_store(ledger_path)
    late_sept = datetime(2026, 9, 28, 23, tzinfo=UTC)
    over = evaluate(store, [{"scope": "model", "match": "steady", "limit_usd": 5}], now=late_sept)
    spent = sum(e.cost_usd for e in store.events() if e.model == "steady" and e.ts.month == 9)
    assert [a["spent_usd"] for a in over if a["kind"] == "budget"] == [spent]
    # Mid-September: ~$110 spent, ~$235 by month end. A $150 budget is not yet spent but will be.
    mid = datetime(2026, 9, 15, tzinfo=UTC)
    spent_mid = sum(e.cost_usd for e in store.events() if e.model == "steady" and mid.replace(day=1) <= e.ts < mid)
    alerts = evaluate(
        store,
        [
            {"scope": "model", "match": "steady", "limit_usd": 150},
            {"scope": "model", "match": "steady", "limit_usd": 400},
        ],
        now=mid,
    )
    budget = [a for a in alerts if a["kind"].startswith("budget")]
    assert len(budget) == 1 and budget[0]["kind"] == "budget_forecast" and budget[0]["limit_usd"] == 150
    assert budget[0]["spent_usd"] == spent_mid < 150 < budget[0]["forecast_usd"]
    assert budget[0]["low_usd"] < budget[0]["forecast_usd"] < budget[0]["high_usd"] < 400


@pytest.mark.parametrize("url_fixture", ["ledger_path", "fresh_postgres_url"])
def test_tag_budget(request, url_fixture) -> None:
    store = open_store(request.getfixturevalue(url_fixture))
    store.write(_events())
    month = REPORT_NOW.replace(day=1, hour=0)
    ads = sum(e.cost_usd for e in store.events() if e.tags.get("team") == "ads" and month <= e.ts < REPORT_NOW)
    alerts = evaluate(store, [{"scope": "tag", "match": "team=ads", "limit_usd": "0.000001"}], now=REPORT_NOW)
    assert [a["spent_usd"] for a in alerts if a["kind"] == "budget"] == [ads] and ads > 0


@pytest.mark.parametrize("url_fixture", ["ledger_path", "fresh_postgres_url"])
def test_tag_budget_counts_its_own_tag_value_only(request, url_fixture) -> None:
    # The tag was matched with LIKE, whose `_` and `%` are wildcards: team=ml_ops was charged team ml-ops's spend.
    now = datetime(2026, 11, 20, tzinfo=UTC)
    store = open_store(request.getfixturevalue(url_fixture))
    store.write(
        [
            UsageEvent(
                ts=now - timedelta(hours=h + 1),
                provider="openai",
                model="m",
                cost_usd=Decimal(cost),
                tags={"team": team},
            )
            for h, (team, cost) in enumerate([("ml-ops", "5"), ("ml_ops", "1"), ("100%", "2")])
        ]
    )
    for match, spent in (("team=ml_ops", Decimal(1)), ("team=ml%", Decimal(0)), ("team=100%", Decimal(2))):
        alerts = evaluate(store, [{"scope": "tag", "match": match, "limit_usd": "0.5"}], now=now)
        assert [a["spent_usd"] for a in alerts if a["kind"] == "budget"] == ([spent] if spent else []), match


def test_cli_posts_each_alert_once(ledger_path, tmp_path, webhook) -> None:
    url, received = webhook
    _ledger(ledger_path)  # spike on 2026-08-20, drift from 2026-09-04
    cfg = tmp_path / "tokenomy.yaml"
    cfg.write_text("budgets:\n  - {scope: model, match: steady, limit_usd: 5}\n")
    base = ["alerts", "check", "--json", "--config", str(cfg), "--webhook", url, "--ledger", str(ledger_path)]
    runner = CliRunner()
    first = runner.invoke(app, [*base, "--as-of", "2026-08-21T06:00:00"])
    assert first.exit_code == 0, first.output
    kinds = sorted(a["kind"] for a in json.loads(first.output))
    assert kinds == ["anomaly_spike", "budget"]
    assert [a["alert_id"] for a in received] == [a["alert_id"] for a in json.loads(first.output)]
    again = runner.invoke(app, [*base, "--as-of", "2026-08-21T18:00:00"])
    assert json.loads(again.output) == [] and len(received) == 2  # same spike, same month: not resent
    later = runner.invoke(app, [*base, "--as-of", "2026-09-29T06:00:00"])
    kinds = sorted(a["kind"] for a in json.loads(later.output))
    assert kinds == ["anomaly_drift", "budget"]  # September's budget is new; the old spike is not news
    assert len(received) == 4 and received[2]["subject"] in {"drifter", "model steady"}
    quiet = runner.invoke(app, [*base[:2], *base[3:], "--as-of", "2026-09-29T07:00:00"])  # human output
    assert quiet.exit_code == 0 and "no new alerts" in quiet.output
    # A mistyped webhook used to pass unnoticed until the first alert failed to post.
    typo = runner.invoke(app, ["alerts", "check", "--webhook", "hooks.example.com/x", "--ledger", str(ledger_path)])
    assert typo.exit_code != 0 and "not an http(s) URL" in str(typo.exception)


def _event(ts, model="m", **kw) -> UsageEvent:
    return UsageEvent(ts=ts, provider="bedrock", model=model, cost_usd=Decimal("0.001"), **kw)


@pytest.mark.parametrize("url_fixture", ["ledger_path", "fresh_postgres_url"])
def test_cache_routing_escalation_idle(request, url_fixture) -> None:
    now = datetime(2026, 11, 18, 12, tzinfo=UTC)
    day = timedelta(days=1)
    events = []
    for i in range(100):  # cache: "prompted" falls from 94% to 61%, "stable" stays at 90%
        prev, recent = now - day - timedelta(minutes=10 * i + 5), now - timedelta(minutes=10 * i + 5)
        events += [
            _event(prev, "prompted", input_tokens=6, cache_read_tokens=94),
            _event(recent, "prompted", input_tokens=39, cache_read_tokens=61),
            _event(prev, "stable", input_tokens=10, cache_read_tokens=90),
            _event(recent, "stable", input_tokens=10, cache_read_tokens=90),
        ]
    for i in range(100):  # routing: chat sends 40% to weak (expected 70%), 40 escalations per 100 calls
        ts = now - timedelta(minutes=7 * i + 3)
        events.append(_event(ts, route="chat", tier="weak" if i % 5 < 2 else "strong", input_tokens=5))
        if i % 5 < 2:
            events.append(_event(ts, route="chat", tier="strong", input_tokens=5, tags={ESCALATED_TAG: "1"}))
        events.append(
            _event(
                ts,
                route="qa",
                tier="weak" if i % 10 < 7 else "strong",
                input_tokens=5,
                tags={ESCALATED_TAG: "1"} if i % 10 == 0 else {},
            )
        )
    for minute in range(24 * 60):  # idle: "busy" runs at capacity all day, "reserved" one burst an hour
        ts = now - timedelta(minutes=minute + 1)
        events.append(_event(ts, "busy", input_tokens=4000, output_tokens=1000))
        if minute % 60 == 0:
            events.append(_event(ts, "reserved", input_tokens=800, output_tokens=200))
    store = open_store(request.getfixturevalue(url_fixture))
    store.write(events)
    settings = AlertSettings.from_config(
        {
            "window_days": 1,
            "reservations": [
                {"model": "busy", "units": 1, "tpm_per_unit": 5000},
                {"model": "reserved", "units": 2, "tpm_per_unit": 1000},
            ],
        },
        {"expected_tier_share": {"weak": 0.7, "strong": 0.3}},
    )
    alerts = evaluate(store, [], now=now, settings=settings)
    by_kind: dict[str, list] = {}
    for alert in alerts:
        by_kind.setdefault(alert["kind"], []).append(alert)
    [cache] = by_kind.pop("cache_drop")
    assert cache["model"] == "prompted"
    assert (cache["previous_rate"], cache["recent_rate"]) == (pytest.approx(0.94), pytest.approx(0.61))
    drift = {(a["route"], a["tier"]): a["share"] for a in by_kind.pop("routing_drift")}
    chat_calls = 100 + 40
    assert drift == {
        ("chat", "weak"): pytest.approx(40 / chat_calls),
        ("chat", "strong"): pytest.approx(100 / chat_calls),
    }
    [escalation] = by_kind.pop("escalation_rate")
    assert escalation["route"] == "chat" and escalation["rate"] == pytest.approx(40 / 100)
    [idle] = by_kind.pop("provisioned_idle")
    assert idle["model"] == "reserved" and idle["utilization"] == pytest.approx(24 * 1000 / (2000 * 1440))
    assert by_kind == {}
    # The route's own routing policy (expected shares, escalation threshold) wins over the alerts: defaults.
    cfg = parse_config(
        {
            "tiers": {"weak": ["local"], "strong": ["local"]},
            "routes": {"chat": {"policy": "cascade"}},
            "routing": {
                "policies": {
                    "cascade": {
                        "type": "cascade",
                        "tiers": ["weak", "strong"],
                        "escalation_threshold": 0.5,
                        "expected_share": {"weak": 0.3, "strong": 0.7},
                    }
                }
            },
        }
    )
    kinds = {a["kind"] for a in evaluate(store, [], now=now, settings=settings, config=cfg)}
    assert kinds == {"cache_drop", "provisioned_idle"}


def test_bad_settings_name_their_key() -> None:
    with pytest.raises(ConfigError, match=r"budgets\[0\]\.limit_usd"):
        validate_budgets([{"scope": "model", "match": "x", "limit_usd": "lots"}])
    # NaN crashed `alerts check` with a decimal.InvalidOperation traceback; a negative limit alerted on any spend;
    # an unknown key such as `period: day` was ignored and the budget silently read as monthly.
    for limit in (".nan", "NaN", -1, None):
        with pytest.raises(ConfigError, match=r"budgets\[0\]\.limit_usd: .* e\.g\. limit_usd: 500"):
            validate_budgets([{"scope": "model", "match": "x", "limit_usd": limit}])
    # ...and said "-1 is not a number of dollars" of a negative limit and "None is not a number" of a missing one.
    with pytest.raises(ConfigError, match=r"budgets\[0\]\.limit_usd: -1 is negative; give the monthly limit, 0 or"):
        validate_budgets([{"scope": "model", "match": "x", "limit_usd": -1}])
    with pytest.raises(ConfigError, match=r"budgets\[0\]\.limit_usd: required; give the monthly limit"):
        validate_budgets([{"scope": "model", "match": "x"}])
    with pytest.raises(ConfigError, match=r"budgets\[0\]\.period: not a budget key"):
        validate_budgets([{"scope": "model", "match": "x", "limit_usd": 5, "period": "day"}])
    with pytest.raises(ConfigError, match=r"alerts\.reservations\.0\.units"):
        AlertSettings.from_config({"reservations": [{"model": "m", "units": 0, "tpm_per_unit": 10}]})
    with pytest.raises(ConfigError, match=r"alerts\.cache_drop_pct"):
        AlertSettings.from_config({"cache_drop_pct": 10})


def test_provider_anomalies_on_request(ledger_path) -> None:
    _ledger(ledger_path)  # every model is on bedrock; the spike on 2026-08-20 shows in the provider's total too
    store = open_store(ledger_path)
    now = datetime(2026, 8, 21, 6, tzinfo=UTC)
    default = evaluate(store, [], now=now)
    assert [(a["kind"], a["subject"]) for a in default if a["kind"] == "anomaly_spike"] == [("anomaly_spike", "steady")]
    both = evaluate(store, [], now=now, settings=AlertSettings.from_config({"anomaly_groups": ["model", "provider"]}))
    spikes = {(a["subject"], a["day"]) for a in both if a["kind"] == "anomaly_spike"}
    assert spikes == {("steady", "2026-08-20"), ("provider bedrock", "2026-08-20")}


def test_provider_anomalies_name_the_provider_as_budgets_and_reports_do(ledger_path, tmp_path) -> None:
    # Metered Bedrock calls record `aws.bedrock`: the anomaly read "provider aws.bedrock" where a provider budget,
    # the reports and the console say "bedrock".
    _ledger(tmp_path / "seed.duckdb")
    events = [replace(e, provider="aws.bedrock") for e in open_store(tmp_path / "seed.duckdb").events()]
    store = open_store(ledger_path)
    store.write(events)
    both = evaluate(
        store,
        [],
        now=datetime(2026, 8, 21, 6, tzinfo=UTC),
        settings=AlertSettings.from_config({"anomaly_groups": ["provider"]}),
    )
    assert {(a["subject"], a["day"]) for a in both if a["kind"] == "anomaly_spike"} == {
        ("provider bedrock", "2026-08-20")
    }


def test_escalation_rate_needs_enough_requests_to_alert(ledger_path) -> None:
    """One escalated request out of two is 50%, but not a trend: no alert until the route has 20 requests."""
    now = datetime(2026, 11, 18, 12, tzinfo=UTC)
    store = open_store(ledger_path)
    for n in range(20):
        ts = now - timedelta(minutes=n + 1)
        events = [_event(ts, route="json", tier="weak", input_tokens=5)]
        if n % 2 == 0:
            events.append(_event(ts, route="json", tier="strong", input_tokens=5, tags={ESCALATED_TAG: "1"}))
        store.write(events)
        settings = AlertSettings.from_config({"window_days": 1})
        kinds = [a["kind"] for a in evaluate(store, [], now=now, settings=settings)]
        assert ("escalation_rate" in kinds) == (n + 1 >= 20), (n, kinds)


def test_provider_budget_matches_either_spelling_and_messages_use_the_money_rule(ledger_path) -> None:
    now = datetime(2026, 11, 20, tzinfo=UTC)
    store = open_store(ledger_path)
    # Metered calls record OpenTelemetry's `aws.bedrock`; an imported bill says `bedrock`.
    store.write(
        [
            UsageEvent(
                ts=now - timedelta(days=1, hours=h),
                provider=provider,
                model="m",
                cost_usd=Decimal("0.2"),
                priced_by="tokenomy-catalog",
            )
            for h, provider in enumerate(["aws.bedrock", "aws.bedrock", "openai"])
        ]
    )
    for match in ("bedrock", "aws.bedrock"):  # `bedrock` (the README's example) never fired before
        alerts = evaluate(store, [{"scope": "provider", "match": match, "limit_usd": "0.1"}], now=now)
        budget = [a for a in alerts if a["kind"] == "budget"]
        assert [a["spent_usd"] for a in budget] == [Decimal("0.4")], match
        # by the rule the console's budget bar prints ("of $0.1" once, then cents beside its "$0.400000")
        assert budget[0]["message"] == "spent $0.400000 of $0.100000 this month"
    zero = evaluate(store, [{"scope": "provider", "match": "openai", "limit_usd": "0.0005"}], now=now)
    assert [a["message"] for a in zero if a["kind"] == "budget"] == ["spent $0.200000 of $0.000500 this month"]


def test_an_anomaly_range_never_goes_below_zero_and_its_amounts_follow_the_money_rule(ledger_path) -> None:
    """A noisy model ($3, $10 or $17 a day) spiking to $400: the expected range's low end came out as -$0.08
    ("expected -$0.08–$87.37") and the JSON amounts as floats (400.0, -0.083678217237) beside "29.000000"."""
    import random

    rng = random.Random(3)
    start = datetime(2026, 10, 1, 12, tzinfo=UTC)
    days = [10 * rng.choice([0.3, 1, 1.7]) for _ in range(60)]
    days[55] = 400  # 2026-11-25
    open_store(ledger_path).write(
        [
            UsageEvent(
                ts=start + timedelta(days=d),
                provider="openai",
                model="noisy",
                input_tokens=1,
                cost_usd=Decimal(f"{cost:.6f}"),
            )
            for d, cost in enumerate(days)
        ]
    )
    result = CliRunner().invoke(
        app, ["alerts", "check", "--ledger", str(ledger_path), "--as-of", "2026-11-30T06:00:00Z", "--dry-run", "--json"]
    )
    [spike] = [a for a in json.loads(result.stdout) if a["kind"] == "anomaly_spike"]
    assert spike["day"] == "2026-11-25" and spike["actual_usd"] == "400.000000"
    low, high = Decimal(spike["expected_low_usd"]), Decimal(spike["expected_high_usd"])
    assert spike["expected_low_usd"] == "0.000000" and Decimal(0) < high < Decimal(400)
    assert spike["message"] == f"$400.000000/day, expected $0.000000–${high}" and low >= 0


def test_a_spike_of_a_model_costing_under_a_cent_a_day_says_its_figures(ledger_path) -> None:
    """A model at ~$0.0005 a day spiking tenfold read "$0.01/day, expected $0.00–$0.00": cents cannot show it."""
    start = datetime(2026, 10, 1, 12, tzinfo=UTC)
    wobble = [1, 1.04, 0.97, 1.02, 0.99, 1.03, 0.96]
    open_store(ledger_path).write(
        [
            UsageEvent(
                ts=start + timedelta(days=d),
                provider="openai",
                model="small",
                input_tokens=1,
                cost_usd=Decimal("0.0005") * Decimal(str(wobble[d % 7])) * (10 if d == 56 else 1),
            )
            for d in range(60)
        ]
    )
    result = CliRunner().invoke(
        app, ["alerts", "check", "--ledger", str(ledger_path), "--as-of", "2026-11-30T06:00:00Z", "--dry-run", "--json"]
    )
    assert result.exit_code == 0, result.output
    [spike] = [a for a in json.loads(result.stdout) if a["kind"] == "anomaly_spike"]
    low, high = (Decimal(spike[k]).quantize(Decimal("0.000001")) for k in ("expected_low_usd", "expected_high_usd"))
    assert spike["actual_usd"] == "0.005000" and Decimal(0) < low < high < Decimal("0.005")
    assert spike["message"] == f"$0.005000/day, expected ${low}–${high}"


def test_expected_tier_shares_in_the_config_are_shares() -> None:
    # `routing.expected_tier_share: {weak: 2}` loaded, and `report tier-share` showed "expected 200.0%, delta
    # -133.5%"; `--expected weak=2` was refused. The same for a policy's expected_share and alerts.
    for data, key in (
        ({"routing": {"expected_tier_share": {"weak": 2}}}, r"routing\.expected_tier_share\.weak"),
        (
            {"routing": {"policies": {"p": {"expected_share": {"strong": -0.1}}}}},
            r"routing\.policies\.p\.expected_share\.strong",
        ),
        ({"alerts": {"expected_tier_share": {"weak": 1.5}}}, r"alerts\.expected_tier_share\.weak"),
    ):
        with pytest.raises(ConfigError, match=key + r": Input should be (less|greater) than or equal to"):
            parse_config(data).alert_settings()
    fine = parse_config({"routing": {"expected_tier_share": {"weak": 0.7, "strong": 0.3}}})
    assert fine.alert_settings().expected_tier_share == {"weak": 0.7, "strong": 0.3}


def test_no_budget_forecast_alert_from_an_imported_bills_day_before_a_trickle(ledger_path) -> None:
    # A $7 imported-bill day, three idle weeks, then ~$0.01 a day: the forecast was ~$5.83 for a ~$0.31 month, so
    # a $1 budget got a budget_forecast alert. The trickle's month stays under it; a $0.20 budget is still warned.
    from tokenomy.ledger.events import UsageEvent

    start = datetime(2026, 9, 17, tzinfo=UTC)
    events = [UsageEvent(ts=start, provider="openai", model="m", cost_usd=Decimal(7), priced_by="billed")]
    events += [
        UsageEvent(
            ts=start + timedelta(days=d, hours=9),
            provider="openai",
            model="m",
            input_tokens=1000,
            cost_usd=Decimal("0.0101"),
        )
        for d in range(21, 60)
    ]
    store = open_store(ledger_path)
    store.write(events)
    budgets = [{"scope": "model", "match": "m", "limit_usd": limit} for limit in (Decimal(1), Decimal("0.2"))]
    alerts = evaluate(store, budgets, now=datetime(2026, 11, 16, 9, tzinfo=UTC))
    assert [a["limit_usd"] for a in alerts if a["kind"] == "budget_forecast"] == [Decimal("0.2")], alerts


def test_an_escalation_alert_says_what_the_rejected_answers_were_rejected_for(ledger_path) -> None:
    """The escalation_rate alert said only that a route escalated too often; the reason its cheap answers were
    rejected (hedging, truncation, invalid JSON, ...), which the rejected rows now carry, is what to act on."""
    now = datetime(2026, 11, 18, 12, tzinfo=UTC)
    events = []
    for n in range(20):
        ts = now - timedelta(minutes=n + 1)
        why = (
            {"cascade_rejected": "hedging", "cascade_reason": 'hedging language: "i cannot"'}
            if n % 3
            else {"cascade_rejected": "json", "cascade_reason": "invalid JSON: Expecting value: line 1 column 1"}
        )
        events.append(_event(ts, route="json", tier="weak", input_tokens=5, tags=why if n % 2 == 0 else {}))
        if n % 2 == 0:
            events.append(_event(ts, route="json", tier="strong", input_tokens=5, tags={ESCALATED_TAG: "1"}))
    store = open_store(ledger_path)
    store.write(events)
    [alert] = [
        a
        for a in evaluate(store, [], now=now, settings=AlertSettings.from_config({"window_days": 1}))
        if a["kind"] == "escalation_rate"
    ]
    assert alert["message"] == (
        "50% of requests escalated (threshold 25%); the commonest reason: hedging language: "
        '"i cannot" (6 of 10 rejected answers)'
    )
    assert [(r["check"], r["answers"]) for r in alert["rejections"]] == [("hedging", 6), ("json", 4)]


@pytest.mark.parametrize("reason", ["does not match regex '^\\d+[/-]\\d+$'", "does not match regex '^[a-z]+$'"])
def test_alerts_check_prints_a_rejection_reason_with_brackets_as_it_is(ledger_path, tmp_path, reason) -> None:
    """The escalation_rate alert's message now quotes why answers were rejected, and `alerts check` printed it as
    Rich markup: a regex validator's reason (`does not match regex '^\\d+[/-]\\d+$'`) ended the command with a
    MarkupError traceback, and `[a-z]` was dropped from another as if it were a style."""
    now = datetime(2026, 11, 18, 12, tzinfo=UTC)
    events = []
    for n in range(20):
        ts = now - timedelta(minutes=n + 1)
        why = {"cascade_rejected": "regex", "cascade_reason": reason}
        events.append(_event(ts, route="json", tier="weak", input_tokens=5, tags=why if n % 2 == 0 else {}))
        if n % 2 == 0:
            events.append(_event(ts, route="json", tier="strong", input_tokens=5, tags={ESCALATED_TAG: "1"}))
    open_store(ledger_path).write(events)
    config = tmp_path / "tokenomy.yaml"
    config.write_text("alerts:\n  window_days: 1\n")
    result = CliRunner().invoke(
        app,
        [
            "alerts",
            "check",
            "--ledger",
            str(ledger_path),
            "--config",
            str(config),
            "--as-of",
            "2026-11-18T12:00:00",
            "--dry-run",
        ],
        env={"COLUMNS": "400"},
    )
    assert result.exit_code == 0, (result.output, result.exception)
    assert f"the commonest reason: {reason}" in result.output, result.output
