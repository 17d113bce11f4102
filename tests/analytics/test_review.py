"""`tokenomy review`: on a two-quarter ledger with planted changes, each change is reported with the dollars an
independent computation gives, and nothing else; with --bench a planted quality regression is flagged against
the previous review."""

from __future__ import annotations

import json
import re
import subprocess
import sys
from dataclasses import replace
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from pathlib import Path

import pytest

from tokenomy.analytics.review_bench import bench_models
from tokenomy.analytics.review_html import period_title
from tokenomy.analytics.review_spend import decompose
from tokenomy.ledger.events import UsageEvent
from tokenomy.ledger.store import open_store
from tokenomy.money import money_str
from tokenomy.pricing.catalog import default_catalog
from tokenomy.pricing.cost import compute_cost
from tokenomy.pricing.families import model_line

TOKENOMY = str(Path(sys.executable).with_name("tokenomy"))
NOW = datetime(2026, 10, 1, tzinfo=UTC)
DAYS = 90
START = NOW - timedelta(days=DAYS)
FACTOR = Decimal(730) / (DAYS * 24)
OLD_MISTRAL, NEW_MISTRAL = "mistral.mistral-large-2402-v1:0", "mistral.mistral-large-2407-v1:0"
# The newest of their lines in the catalog, so none of them is superseded (only Mistral Large 2402 is planted).
SONNET, NANO, GPT5, MINI = "claude-sonnet-5-5", "gpt-5-nano", "gpt-6.2-sol", "gpt-5-mini"
RESERVED = "amazon.titan-text-lite-v1"  # a model with a no-commitment Provisioned Throughput price
CONFIG = (
    "alerts:\n  expected_tier_share: {weak: 0.8, strong: 0.2}\n"
    f"  reservations:\n    - {{model: {RESERVED}, units: 1, tpm_per_unit: 10000}}\n"
)


def _event(
    ts: datetime, model: str, provider: str, task: str, region: str | None = None, mode: str = "on_demand", **kw
) -> UsageEvent:
    event = UsageEvent(ts=ts, provider=provider, model=model, region=region, mode=mode, task=task, **kw)
    return event.apply_cost(compute_cost(event.usage, model, region, mode))


def planted_events() -> list[UsageEvent]:
    """Two quarters, one day at a time: five planted changes between the previous quarter and this one."""
    events = []
    for day in range(2 * DAYS):
        ts = NOW - timedelta(days=2 * DAYS) + timedelta(days=day, hours=12)
        current = ts >= START
        # 1. superseded: Mistral Large 2402 all along (2407 is newer and cheaper)
        events.append(
            _event(ts, OLD_MISTRAL, "aws.bedrock", "extract", "us-west-2", input_tokens=10_000, output_tokens=1_000)
        )
        # 2. cache drop: Sonnet 5.5 read 90% of its input from cache, now 40% (same input per call)
        cached = 4_000 if current else 9_000
        events.append(
            _event(
                ts,
                SONNET,
                "anthropic",
                "chat",
                input_tokens=10_000 - cached,
                cache_read_tokens=cached,
                output_tokens=500,
            )
        )
        # 3. tier drift: route support sends half its calls to the strong tier (expected 20%) this quarter
        tiers = ["weak", "strong", "weak", "strong"] if current else ["weak", "weak", "weak", "strong"]
        for i, tier in enumerate(tiers):
            events.append(
                _event(
                    ts + timedelta(minutes=i),
                    NANO if tier == "weak" else GPT5,
                    "openai",
                    "support",
                    route="support",
                    tier=tier,
                    input_tokens=1_500,
                    output_tokens=300,
                )
            )
        # 4. idle reservation: one small call a day on a provisioned unit
        events.append(
            _event(
                ts,
                RESERVED,
                "aws.bedrock",
                "reserved",
                "us-east-1",
                mode="provisioned",
                input_tokens=4_000,
                output_tokens=1_000,
            )
        )
        # 5. prompt growth: task summarise sends 3,000 input tokens a call instead of 2,000
        events.append(
            _event(ts, MINI, "openai", "summarise", input_tokens=3_000 if current else 2_000, output_tokens=200)
        )
    return events


def planted_findings(body: dict) -> set[tuple[str, str]]:
    """The review's findings but those on its models' lifecycle. A model in use that retires within a quarter of
    today (the day the review runs, not its period's) is a finding too, so which there are depends on the day the
    test runs: they are checked against the catalog's dates here, and the planted ones are returned."""
    found = {(f["kind"], f["subject"]) for f in body["findings"]}
    lifecycle = {key for key in found if key[0] in ("model_retired", "model_retiring")}
    assert lifecycle == {(kind, m["model"]) for m in body["models"] if (kind := retirement_kind(m["model"]))}
    return found - lifecycle


def retirement_kind(model: str) -> str | None:
    """The review's lifecycle finding for a model in use today (UTC), from the catalog's retirement date."""
    from tokenomy.analytics.review_lifecycle import RETIRING_NOTICE_DAYS
    from tokenomy.pricing.lifecycle import utc_today

    retired_on = default_catalog().lookup(model).retired_on
    if retired_on is None:
        return None
    days_left = (datetime.fromisoformat(retired_on).date() - utc_today()).days
    if days_left > RETIRING_NOTICE_DAYS:
        return None
    return "model_retired" if days_left <= 0 else "model_retiring"


def as_json(value: Decimal) -> Decimal:
    """A projected figure as `--json` prints it. A projection is an estimate, not a ledger record: it is printed at
    the `amount` scale (6 places); it was printed to 12 (`record`), a precision no projection has."""
    return Decimal(money_str(value, "amount"))


ROUNDED = Decimal("5e-7")  # the most a figure printed at the `amount` scale is off from the exact one


def _review(ledger: Path, config: Path, *extra: str) -> dict:
    return json.loads(_review_text(ledger, config, *extra))


def _review_text(ledger: Path, config: Path, *extra: str) -> str:
    result = subprocess.run(
        [
            TOKENOMY,
            "review",
            "--since",
            f"{DAYS}d",
            "--until",
            NOW.strftime("%Y-%m-%dT%H:%M:%S"),
            "--config",
            str(config),
            "--ledger",
            str(ledger),
            "--json",
            *extra,
        ],
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert result.returncode == 0, result.stderr + result.stdout
    return result.stdout


def test_planted_changes_are_found_with_their_dollars_and_nothing_else(ledger_path, tmp_path) -> None:
    events = planted_events()
    open_store(ledger_path).write(events)
    config = tmp_path / "tokenomy.yaml"
    config.write_text(CONFIG)
    text = _review_text(ledger_path, config, "--html", str(tmp_path / "review.html"))
    body = json.loads(text)
    now = [e for e in events if e.ts >= START]
    before = [e for e in events if e.ts < START]
    found = {(f["kind"], f["subject"]): f for f in body["findings"]}
    assert planted_findings(body) == {
        ("model_superseded", OLD_MISTRAL),
        ("cache_drop", SONNET),
        ("tier_drift", "support"),
        ("provisioned_idle", RESERVED),
        ("history_growth", "summarise"),
    }

    # 1. what Mistral Large 2402's traffic would have cost on 2407, token for token
    mistral = [e for e in now if e.model == OLD_MISTRAL]
    on_new = sum(compute_cost(e.usage, NEW_MISTRAL, "us-west-2").total_usd for e in mistral)
    superseded = found[("model_superseded", OLD_MISTRAL)]
    assert superseded["to"] == NEW_MISTRAL
    assert Decimal(superseded["monthly_usd"]) == as_json((sum(e.cost_usd for e in mistral) - on_new) * FACTOR) > 0

    # Sonnet for chat → Haiku 5.5 (the newest cheaper line of the vendor): what moving the task would save
    sonnet_info = next(m for m in body["models"] if m["model"] == SONNET)
    [chat] = sonnet_info["per_task"]
    chat_events = [e for e in now if e.model == SONNET]
    on_haiku = sum(compute_cost(e.usage, "claude-haiku-5-5").total_usd for e in chat_events)
    assert chat["task"] == "chat" and chat["to"] == "claude-haiku-5-5"
    assert Decimal(chat["monthly_saving_usd"]) == as_json((sum(e.cost_usd for e in chat_events) - on_haiku) * FACTOR)

    # 2. the half of Sonnet's input no longer cached, at input minus cache-read price
    sonnet = default_catalog().lookup(SONNET)
    lost = Decimal("0.5") * sum(e.input_tokens + e.cache_read_tokens for e in now if e.model == SONNET)
    cache = found[("cache_drop", SONNET)]
    assert (cache["previous_rate"], cache["current_rate"]) == (0.9, 0.4)
    assert (
        abs(Decimal(cache["monthly_usd"]) - lost * (sonnet.input - sonnet.cache_read) / 1_000_000 * FACTOR) <= ROUNDED
    )

    # 3. support's actual cost minus the same calls at the expected 80/20 split
    support = [e for e in now if e.route == "support"]
    per_call = {
        t: sum(e.cost_usd for e in support if e.tier == t) / sum(1 for e in support if e.tier == t)
        for t in ("weak", "strong")
    }
    expected_cost = len(support) * (Decimal("0.8") * per_call["weak"] + Decimal("0.2") * per_call["strong"])
    drift = found[("tier_drift", "support")]
    assert abs(Decimal(drift["monthly_usd"]) - (sum(e.cost_usd for e in support) - expected_cost) * FACTOR) <= ROUNDED
    assert drift["shares"] == {"strong": 0.5, "weak": 0.5}

    # 4. the idle share of one unit's no-commitment hourly price for the month
    hourly = default_catalog().lookup(RESERVED).provisioned_hourly["none"]
    idle = found[("provisioned_idle", RESERVED)]
    served = sum(e.input_tokens + e.output_tokens for e in now if e.model == RESERVED)
    utilisation = served / (10_000 * DAYS * 24 * 60)
    assert idle["utilization"] == pytest.approx(utilisation)
    assert abs(Decimal(idle["monthly_usd"]) - hourly * 730 * (1 - Decimal(repr(utilisation)))) <= ROUNDED

    # 5. the extra 1,000 input tokens a call of summarise, at its input price
    calls = sum(1 for e in now if e.task == "summarise")
    growth = found[("history_growth", "summarise")]
    price = default_catalog().lookup(MINI).input / 1_000_000
    assert Decimal(growth["monthly_usd"]) == as_json(1_000 * calls * price * FACTOR)
    assert growth["growth"] == pytest.approx(0.5)

    # Every projection (monthly figures, the forecast, candidates' re-priced costs) at the `amount` scale; the spend
    # summed from ledger rows stays exact (`record`).
    projected = re.findall(r'"(\w*monthly\w*|forecast_usd|low_usd|high_usd)": "([-\d.]+)"', text)
    assert len(projected) > 10 and all(len(figure.split(".")[1]) == 6 for _, figure in projected), projected

    # Spend: totals per period and the mover split add up to each change.
    assert Decimal(body["spend"]["current_usd"]) == sum(e.cost_usd for e in now)
    assert Decimal(body["spend"]["previous_usd"]) == sum(e.cost_usd for e in before)
    summarise = next(r for r in body["spend"]["movers"]["task"] if r["task"] == "summarise")
    effects = [Decimal(summarise[k]) for k in ("volume_usd", "tokens_per_call_usd", "price_usd")]
    # (each figure is printed to 12 places, so their sum may differ from the printed change in the last place)
    assert abs(sum(effects) - Decimal(summarise["change_usd"])) <= Decimal("3e-12") and effects[1] > 0
    assert effects[0] == 0
    # Actions: one per finding, by dollars per month, each with what to run or change.
    amounts = [Decimal(a["monthly_usd"]) for a in body["actions"]]
    assert len(amounts) == len(found) and amounts == sorted(amounts, reverse=True)
    assert all(a["apply"] for a in body["actions"])
    assert body["habits"]["uncapped_outputs"]["known"] is False
    page = (tmp_path / "review.html").read_text()
    assert "<h2>Actions</h2>" in page and OLD_MISTRAL in page
    assert "src=" not in page and "<link" not in page  # one file: nothing fetched from anywhere
    # The review was stored; the next one names it and still sees the same open findings.
    again = _review(ledger_path, config)
    assert again["previous_review"]["id"] == body["id"] and len(again["previous_review"]["still_open"]) == len(found)


def test_decomposition_is_exact_and_splits_each_cause() -> None:
    # volume only, tokens only, price only, then all three together
    assert decompose(10, Decimal(100), Decimal(1), 20, Decimal(200), Decimal(2)) == {
        "volume_usd": Decimal(1),
        "tokens_per_call_usd": Decimal(0),
        "price_usd": Decimal(0),
    }
    split = decompose(10, Decimal(100), Decimal(1), 10, Decimal(150), Decimal("1.5"))
    assert split["tokens_per_call_usd"] == Decimal("0.5") and split["volume_usd"] == 0 and split["price_usd"] == 0
    split = decompose(10, Decimal(100), Decimal(1), 12, Decimal(180), Decimal("2.7"))
    assert sum(split.values()) == Decimal("1.7") and all(v > 0 for v in split.values())


SECRET_TASKS = """tasks:
  - name: secret
    prompt: "{input} Reply with the secret word only."
    scorer: normalized_match
    examples:
      - {input: "What is the secret word?", expected: apple}
      - {input: "Tell me the secret word.", expected: apple}
      - {input: "Which word is secret?", expected: apple}
"""


def _helper(path: Path, word: str) -> Path:
    """A candidate on the local model whose answers depend on its instructions (banana: the planted regression)."""
    path.write_text(
        f'models:\n  helper:\n    provider: local\n    model: local\n    system_prompt: "The secret word is {word}."\n'
    )
    return path


def test_bench_flags_a_regression_against_the_previous_review(ledger_path, tmp_path) -> None:
    open_store(ledger_path).write(
        [
            UsageEvent(
                ts=NOW - timedelta(days=d, hours=1),
                provider="local",
                model="local",
                task="qa",
                input_tokens=50,
                output_tokens=5,
            )
            for d in range(20)
        ]
    )
    tasks = tmp_path / "tasks.yaml"
    tasks.write_text(SECRET_TASKS)
    bench = ["--bench", str(tasks)]  # helper calls the model in use (local), so it is benchmarked with it
    first = _review(ledger_path, _helper(tmp_path / "good.yaml", "apple"), *bench)
    quality = {r["model"]: r["quality"] for r in first["bench"]["results"]}
    assert quality["helper"] == 100.0 and set(quality) == {"local", "helper"}  # the model in use and the candidate
    assert first["bench"]["comparison"] == [] and first["previous_review"] is None
    second = _review(ledger_path, _helper(tmp_path / "bad.yaml", "banana"), *bench)
    assert second["previous_review"]["id"] == first["id"]
    compared = {c["model"]: c for c in second["bench"]["comparison"]}
    assert compared["helper"]["previous_quality"] == 100.0 and compared["helper"]["quality"] < 100.0
    assert compared["helper"]["regressed"] and not compared["local"]["regressed"]
    assert [a["subject"] for a in second["actions"] if a["kind"] == "quality_regression"] == ["secret on helper"]


def test_bench_models_are_the_models_in_use_and_their_candidates_that_config_can_call() -> None:
    in_use = [
        {"model": OLD_MISTRAL, "candidates": [{"model": NEW_MISTRAL}, {"model": "amazon.nova-micro-v1:0"}]},
        {"model": "local", "candidates": []},
    ]
    configured = {
        "large": ("mistral.mistral-large-2407-v1:0", None),
        "cheap": ("local", "amazon.nova-micro-v1:0"),
        "other": ("gpt-5", None),
    }
    assert bench_models(in_use, configured, ["other"]) == ["local", "cheap", "large", "other"]


def test_model_lines_resolve_profiles_and_order_releases() -> None:
    profile = model_line("us.anthropic.claude-3-5-haiku-20241022-v1:0")
    assert profile is not None and profile.line == "claude-haiku"
    assert (
        model_line("claude-3-haiku-20240307").released
        < profile.released
        < model_line("claude-haiku-4-5-20251001").released
    )
    assert model_line(OLD_MISTRAL).line == model_line(NEW_MISTRAL).line and model_line("local") is None


def test_review_runs_and_is_stored_on_postgresql(fresh_postgres_url) -> None:
    import yaml

    from tokenomy.analytics.review import latest_review, run_review, save_review
    from tokenomy.config import parse_config

    store = open_store(fresh_postgres_url)
    store.write(planted_events())
    body = run_review(store, days=DAYS, until=NOW, cfg=parse_config(yaml.safe_load(CONFIG)))
    assert planted_findings(body) == {
        ("model_superseded", OLD_MISTRAL),
        ("cache_drop", SONNET),
        ("tier_drift", "support"),
        ("provisioned_idle", RESERVED),
        ("history_growth", "summarise"),
    }
    save_review(store, body)
    stored = latest_review(store)
    assert stored["id"] == body["id"] and stored["period"]["label"] == body["period"]["label"]
    assert Decimal(stored["spend"]["current_usd"]) == body["spend"]["current_usd"]


def test_batch_and_escalation_findings_carry_their_dollars(ledger_path) -> None:
    from tokenomy.analytics.review import run_review
    from tokenomy.routing.router import ESCALATED_TAG, REJECTED_TAG

    events = []
    for i in range(40):
        ts = NOW - timedelta(days=1 + i)
        # latency-tolerant work ran on demand: batch prices would have halved it
        events.append(
            _event(
                ts, MINI, "openai", "nightly", tags={"latency_tolerant": "true"}, input_tokens=5_000, output_tokens=500
            )
        )
        # route faq: every other request escalated from nano to gpt-5 (threshold 25%), its nano answer rejected
        rejected = {REJECTED_TAG: "hedging"} if i % 2 == 0 else {}
        events.append(
            _event(
                ts, NANO, "openai", "faq", route="faq", tier="weak", input_tokens=800, output_tokens=100, tags=rejected
            )
        )
        if i % 2 == 0:
            events.append(
                _event(
                    ts,
                    GPT5,
                    "openai",
                    "faq",
                    route="faq",
                    tier="strong",
                    input_tokens=800,
                    output_tokens=100,
                    tags={ESCALATED_TAG: "1"},
                )
            )
    store = open_store(ledger_path)
    store.write(events)
    body = run_review(store, days=DAYS, until=NOW)
    found = {(f["kind"], f["subject"]): f for f in body["findings"]}
    assert planted_findings(body) == {("batch_candidate", "nightly"), ("escalation_rate", "faq")}
    nightly = [e for e in events if e.task == "nightly"]
    batch = sum(compute_cost(e.usage, MINI, None, "batch").total_usd for e in nightly)
    assert found[("batch_candidate", "nightly")]["monthly_usd"] == (sum(e.cost_usd for e in nightly) - batch) * FACTOR
    # What the habit costs is the cheaper tier's answers paid for and thrown away, which sending such prompts
    # straight to the strong tier saves; it was the strong tier's cost, which no change to the route saves.
    escalated = sum(e.cost_usd for e in events if e.tags.get(ESCALATED_TAG))
    thrown_away = sum(e.cost_usd for e in events if e.tags.get(REJECTED_TAG))
    assert found[("escalation_rate", "faq")]["rate"] == 0.5
    assert found[("escalation_rate", "faq")]["monthly_usd"] == thrown_away * FACTOR
    assert found[("escalation_rate", "faq")]["escalated_usd"] == escalated * FACTOR
    assert "rejected answers" in found[("escalation_rate", "faq")]["message"]

    # Rows written before rejected answers were tagged: what they cost is not known, and the finding says so.
    untagged = open_store(ledger_path.with_name("untagged.duckdb"))
    untagged.write([replace(e, tags={k: v for k, v in e.tags.items() if k != REJECTED_TAG}) for e in events])
    older = {(f["kind"], f["subject"]): f for f in run_review(untagged, days=DAYS, until=NOW)["findings"]}
    assert older[("escalation_rate", "faq")]["monthly_usd"] is None
    assert "cascade_rejected" in older[("escalation_rate", "faq")]["message"]


def test_a_long_context_calls_batch_saving_is_its_long_context_price_halved(ledger_path) -> None:
    # Sonnet 4.5 over 200k prompt tokens: $6 / $22.50 per 1M on demand, $3 / $11.25 in batch. A latency-tolerant call
    # of 250,000 in + 1,000 out cost $1.5225 (as the ledger priced it); in batch $0.76125, so batch saves $0.76125 a
    # day. Its batch price was taken at the standard rates ($0.3825): a saving of $1.14, half again too much.
    from tokenomy.analytics.review import run_review

    model = "claude-sonnet-4-5-20250929"
    event = UsageEvent(
        ts=NOW - timedelta(hours=12),
        provider="anthropic",
        model=model,
        task="nightly",
        tags={"latency_tolerant": "true"},
        input_tokens=250_000,
        output_tokens=1_000,
    )
    event.apply_cost(compute_cost(event.usage, model, one_call=True))  # as the gateway records a call
    assert event.cost_usd == Decimal("1.5225")
    store = open_store(ledger_path)
    store.write([event])
    body = run_review(store, days=1, until=NOW)
    found = {(f["kind"], f["subject"]): f for f in body["findings"]}
    assert found[("batch_candidate", "nightly")]["monthly_usd"] == Decimal("0.76125") * Decimal(730) / 24


def test_every_catalog_model_has_a_curated_line() -> None:
    """A model added to the catalog without a line would get no upgrade candidates: add it to families.py."""
    from tokenomy.pricing.catalog import split_inference_profile

    catalog = default_catalog()
    missing = [
        m for m in catalog.models() if split_inference_profile(m)[0] == m and m != "local" and model_line(m) is None
    ]
    assert missing == [], f"add these to tokenomy/pricing/families.py: {missing}"


def test_the_dashboard_links_to_the_latest_stored_review(ledger_path, tmp_path) -> None:
    import httpx

    from tokenomy.emulate.server import ServerThread
    from tokenomy.gateway.app import create_app

    open_store(ledger_path).write(planted_events())
    with ServerThread(create_app(None, str(ledger_path)), lifespan="on") as gateway:
        page = httpx.get(f"{gateway}/dashboard/").text
        assert 'href="/dashboard/review"' in page
        missing = httpx.get(f"{gateway}/dashboard/review")  # an empty state, not a failed load
        assert missing.status_code == 200 and "tokenomy review" in missing.text
        # laid out for the phone it is read on (without a viewport a phone drew it 980 px wide, the text tiny)
        assert '<meta name="viewport" content="width=device-width, initial-scale=1">' in missing.text
        tables = open_store(ledger_path).query(
            "SELECT COUNT(*) AS n FROM information_schema.tables WHERE table_name = 'tokenomy_reviews'"
        )
        assert tables[0]["n"] == 0  # looking did not create the reviews table
        config = tmp_path / "tokenomy.yaml"
        config.write_text(CONFIG)
        stored = _review(ledger_path, config)
        shown = httpx.get(f"{gateway}/dashboard/review")
    assert shown.status_code == 200 and period_title(stored["period"]) in shown.text and "<html" in shown.text.lower()
    # the latest stored review, however old, says when it was made and the period it covers, in UTC
    made = datetime.fromisoformat(stored["created_at"].replace("Z", "+00:00"))
    assert f"<p>Made {made:%Y-%m-%d %H:%M} UTC, over {START:%Y-%m-%d %H:%M} UTC to {NOW:%Y-%m-%d %H:%M} UTC;" in (
        shown.text
    )
    assert '<link rel="icon" href="data:,">' in shown.text  # no /favicon.ico asked of the gateway (a 404)


@pytest.mark.browser
def test_the_html_page_fits_a_390px_phone(ledger_path, browser) -> None:
    """The page had no viewport meta (a phone laid it out 980 px wide and shrank its figures) and its wide tables
    pushed the page to 552 px at 390: the figures sat off screen. The tables scroll inside the page now."""
    from tokenomy.analytics.review import run_review
    from tokenomy.analytics.review_html import review_html

    open_store(ledger_path).write(planted_events())
    page = browser.new_page(viewport={"width": 390, "height": 800}, is_mobile=True)
    page.set_content(review_html(run_review(open_store(ledger_path), days=1, until=NOW)))
    widths = page.evaluate("[innerWidth, document.documentElement.scrollWidth]")
    tables = page.eval_on_selector_all("table", "ts => ts.map(t => t.getBoundingClientRect().right)")
    page.close()
    assert widths == [390, 390], widths
    assert tables and max(tables) <= 390, tables


@pytest.mark.browser
def test_the_html_page_sets_words_left_and_figures_right(ledger_path, browser) -> None:
    """Every column but the first was set flush right, so an action's sentence and the command that applies it read
    ragged on their left beside the dollars; a section with nothing to show stood as bare headings."""
    from tokenomy.analytics.review import run_review
    from tokenomy.analytics.review_html import review_html

    open_store(ledger_path).write(planted_events())
    body = run_review(open_store(ledger_path), days=1, until=NOW)
    body["habits"]["reservations"] = []
    page = browser.new_page(viewport={"width": 1280, "height": 900})
    page.set_content(review_html(body))
    aligned = page.evaluate("""() => {
        const table = [...document.querySelectorAll('h2')].find(h => h.textContent === 'Actions').nextElementSibling;
        const heads = [...table.rows[0].cells].map(c => c.textContent);
        return Object.fromEntries(heads.map((h, i) => [h, [...table.rows].map(r => getComputedStyle(r.cells[i]).textAlign)]));
    }""")
    empty = page.evaluate("""() => [...document.querySelectorAll('h2')].find(h => h.textContent === 'Provisioned throughput')
        .nextElementSibling.innerText""")
    page.close()
    assert len(aligned["change"]) > 1 and set(aligned["change"]) == set(aligned["apply"]) == {"left"}, aligned
    assert set(aligned["$/month"]) == {"right"}, aligned
    assert empty.endswith("none in this period"), empty


def test_the_html_page_shows_rates_as_percentages_and_other_numbers_as_numbers(ledger_path) -> None:
    """Bench quality is 0-100 and history length is tokens per call: neither is a percentage, however small."""
    from tokenomy.analytics.review import run_review
    from tokenomy.analytics.review_html import review_html

    body = run_review(open_store(ledger_path), days=1, until=NOW)
    body["habits"]["history_length"] = [
        {"task": "ping", "previous_input_per_call": 4.0, "current_input_per_call": 8.0, "growth": 1.0}
    ]
    body["habits"]["cache_hit_rate"] = [{"model": "m", "previous_rate": 0.9, "current_rate": 12.5 / 100}]
    body["bench"] = {
        "judge": None,
        "comparison": [],
        "results": [{"task": "t", "model": "m", "quality": 5.0, "quality_ci95": [0.0, 20.0]}],
    }
    page = review_html(body)
    assert '<td>ping</td><td class="num">4.0</td><td class="num">8.0</td><td class="num">100.0%</td>' in page
    assert '<td>m</td><td class="num">90.0%</td><td class="num">12.5%</td>' in page
    assert '<td>t</td><td>m</td><td class="num">5.0</td>' in page


def test_a_one_day_review_says_one_day(ledger_path) -> None:
    """The demo's review covers one day: "(1 day)", not "(1 days)", on the terminal and in the page."""
    from rich.console import Console

    from tokenomy.analytics.review import run_review
    from tokenomy.analytics.review_html import review_html
    from tokenomy.commands.review import render

    body = run_review(open_store(ledger_path), days=1, until=NOW)
    console = Console(record=True, width=200)
    render(body, console=console, short=True)
    assert "(1 day):" in console.export_text()
    assert "<p>1 day against the previous 1 day:" in review_html(body)


def test_a_candidate_priced_from_old_data_shows_its_date_instead_of_a_warning(monkeypatch, caplog) -> None:
    """The review re-prices the traffic on every model of the provider, retired ones too: Claude Instant's price
    (dated 2025-10-15, nothing newer confirms it) logged "pricing ... from data 412 days old" in every review, a
    model the review did not even show. A candidate now carries its prices' date, shown beside it when old; the
    model in use still warns (its spend is priced from that data)."""
    from tokenomy.analytics.review_models import candidates_for, price_date_note
    from tokenomy.pricing import freshness

    monkeypatch.setattr(freshness, "_warned", set())
    instant = "anthropic.claude-instant-v1"
    haiku = "anthropic.claude-3-5-haiku-20241022-v1:0"
    groups = [
        {
            "task": "t",
            "region": "us-east-1",
            "mode": "on_demand",
            "calls": 10,
            "input_tokens": 100_000,
            "output_tokens": 50_000,
            "cache_read_tokens": 0,
            "cache_write_tokens": 0,
        }
    ]
    with caplog.at_level("WARNING", logger="tokenomy.pricing"):
        info = candidates_for(haiku, groups, Decimal(1))
    by_model = {c["model"]: c for c in info["candidates"]}
    # cheaper output, another line, but priced from old data beside Claude Haiku 4.5's current prices: not proposed
    # (tests/analytics/test_review_lifecycle.py), and its row keeps the prices' date all the same
    outdated = {o["model"]: o for o in info["outdated"]}
    assert instant in outdated and instant not in by_model, sorted(by_model)
    old_as_of = default_catalog().lookup(instant, "us-east-1").as_of
    assert freshness.age_days(old_as_of) > freshness.WARN_DAYS  # the premise: its data is old
    assert outdated[instant]["prices_as_of"] == old_as_of
    assert price_date_note(outdated[instant]) == f" (prices as of {old_as_of[:10]})"
    assert not [r for r in caplog.records if instant in r.getMessage()]
    current = [c for c in by_model.values() if freshness.age_days(c["prices_as_of"]) <= freshness.WARN_DAYS]
    assert current and all(price_date_note(c) == "" for c in current)
    with caplog.at_level("WARNING", logger="tokenomy.pricing"):
        candidates_for(instant, groups, Decimal(1))  # in use: its own spend is priced from the old data
    assert [r for r in caplog.records if f"pricing {instant} from data" in r.getMessage()]


def test_history_growth_counts_calls_not_a_bills_day_totals(tmp_path) -> None:
    # An imported bill's row is a provider-day's usage: counted as one call, a day the gateway missed (500,000
    # input tokens) read as input per call up from 1,000 to ~17,000, a "history growth" finding with a price.
    from tokenomy.analytics.review_habits import history_growth

    store = open_store(tmp_path / "ledger.duckdb")
    end = datetime(2026, 11, 30, tzinfo=UTC)
    events = [
        UsageEvent(
            ts=end - timedelta(days=d, hours=1),
            provider="openai",
            model="gpt-4o-mini",
            task="chat",
            input_tokens=1000,
            cost_usd=Decimal("0.00015"),
        )
        for d in range(60)
        if d != 10
    ]
    events.append(
        UsageEvent(
            ts=end - timedelta(days=10, hours=12),
            provider="openai",
            model="gpt-4o-mini",
            task="chat",
            input_tokens=500_000,
            input_cost_usd=Decimal("0.075"),
            cost_usd=Decimal("0.075"),
            priced_by="billed",
        )
    )
    store.write(events)
    rows, findings = history_growth(store, end - timedelta(days=30), end, 30, Decimal(1))
    assert [(r["task"], r["previous_input_per_call"], r["current_input_per_call"]) for r in rows] == [
        ("chat", 1000.0, 1000.0)
    ]
    assert findings == []


def test_embedding_models_are_candidates_only_for_embedding_models() -> None:
    """An embedding model reads text and answers no prompt: it is no cheaper stand-in for a chat model (with input
    at $0.02 per million, text-embedding-3-small was every OpenAI chat model's cheapest "other line"), and the
    upgrade of text-embedding-ada-002 is text-embedding-3-small."""
    from tokenomy.analytics.review_models import candidates_for

    groups = [
        {
            "task": "t",
            "region": None,
            "mode": "on_demand",
            "calls": 10,
            "input_tokens": 100_000,
            "output_tokens": 0,
            "cache_read_tokens": 0,
            "cache_write_tokens": 0,
        }
    ]
    chat = {c["model"] for c in candidates_for("gpt-4o-mini", groups, Decimal(1))["candidates"]}
    assert chat and not {m for m in chat if "embedding" in m}, sorted(chat)
    ada = {c["model"]: c["kind"] for c in candidates_for("text-embedding-ada-002", groups, Decimal(1))["candidates"]}
    assert ada == {"text-embedding-3-small": "upgrade"}, ada
    # Bedrock's: Cohere Embed (curated, $0.10 per million) is no stand-in for a Bedrock chat model either.
    bedrock = [{**groups[0], "region": "us-east-1"}]
    nova = {c["model"] for c in candidates_for("amazon.nova-pro-v1:0", bedrock, Decimal(1))["candidates"]}
    assert nova and not {m for m in nova if "embed" in m}, sorted(nova)
    english = candidates_for("cohere.embed-english-v3", bedrock, Decimal(1))["candidates"]
    cohere = {c["model"]: c["kind"] for c in english}
    assert cohere == {"cohere.embed-v4:0": "upgrade"}, cohere


def test_a_bench_quality_without_an_interval_is_compared_and_never_called_a_regression():
    # A graded quality from one score has no 95% interval (None, as the bench summary gives it): comparing it with
    # the previous review's read [0] of None, a TypeError that ended the review.
    from tokenomy.analytics.review_bench import compare

    previous = [{"task": "t", "model": "m", "quality": 90.0, "quality_ci95": [85.0, 95.0]}]
    one_score = [{"task": "t", "model": "m", "quality": 40.0, "quality_ci95": None}]
    assert compare(one_score, previous) == [
        {
            "task": "t",
            "model": "m",
            "previous_quality": 90.0,
            "previous_ci95": [85.0, 95.0],
            "quality": 40.0,
            "ci95": None,
            "change": -50.0,
            "regressed": False,
        }
    ]
    assert compare(previous, one_score)[0]["regressed"] is False
    worse = [{"task": "t", "model": "m", "quality": 40.0, "quality_ci95": [35.0, 45.0]}]
    assert compare(worse, previous)[0]["regressed"] is True


def test_history_growth_reads_calls_and_not_a_cache_storage_row(tmp_path) -> None:
    """A context cache's storage row (mode cache_storage, task of the calls that read it) is no call: counted as one,
    it cut the task's input tokens per call (4 calls of 2000 and 1 storage row read as 1600)."""
    from tokenomy.analytics.review_habits import history_growth
    from tokenomy.ledger.events import STORAGE_MODE

    store = open_store(str(tmp_path / "l.duckdb"))
    rows = []
    for day, tokens in ((5, 1000), (35, 2000)):  # the previous window's calls, then the current one's
        for i in range(4):
            rows.append(
                UsageEvent(
                    ts=START + timedelta(days=day, minutes=i),
                    provider="openai",
                    model=MINI,
                    task="summarise",
                    input_tokens=tokens,
                    cost_usd=Decimal("0.001"),
                )
            )
    rows.append(
        UsageEvent(
            ts=START + timedelta(days=40),
            provider="gcp.gemini",
            model="gemini-2.5-flash",
            task="summarise",
            mode=STORAGE_MODE,
            cost_usd=Decimal("0.05"),
            request_id="c1",
        )
    )
    store.write(rows)
    got, _ = history_growth(store, START + timedelta(days=30), START + timedelta(days=60), 30, FACTOR)
    assert [(r["previous_input_per_call"], r["current_input_per_call"]) for r in got] == [(1000.0, 2000.0)]


def test_a_dashboard_behind_keys_offers_no_link_to_the_review_it_refuses_every_key(ledger_path) -> None:
    # With auth on, /dashboard/review answers 403 to every key (a review covers every key and team), yet the page's
    # header linked to it for everyone who opened the console.
    import httpx

    from tokenomy.config import parse_config
    from tokenomy.emulate.server import ServerThread
    from tokenomy.gateway.app import create_app

    open_store(ledger_path).write(planted_events())
    with ServerThread(create_app(parse_config({"auth": True}), str(ledger_path)), lifespan="on") as gateway:
        page = httpx.get(f"{gateway}/dashboard/").text
        assert httpx.get(f"{gateway}/dashboard/review").status_code == 403
    assert "/dashboard/review" not in page and 'id="review-link"' not in page
