"""A model in use that its provider has retired, or retires within a quarter, is a review finding naming the model to
move to. Before, the review listed retired models only among the candidates it did not propose, so a team whose
traffic ran on Claude 3.5 Haiku on Bedrock (EOL 2026-06-19) was offered upgrades beside it and no action said that
every call to it fails."""

from __future__ import annotations

from datetime import UTC, date, datetime, timedelta
from decimal import Decimal

from helpers.review_traffic import daily_calls
from tokenomy.analytics.review import rank_actions
from tokenomy.analytics.review_lifecycle import RETIRING_NOTICE_DAYS, not_proposed_line
from tokenomy.analytics.review_models import models_section
from tokenomy.ledger.events import UsageEvent
from tokenomy.ledger.store import open_store
from tokenomy.pricing.catalog import default_catalog
from tokenomy.pricing.cost import compute_cost
from tokenomy.pricing.families import model_line

END = datetime(2026, 12, 7, tzinfo=UTC)
RETIRED = "anthropic.claude-3-5-haiku-20241022-v1:0"
RETIRING = "gpt-5-mini"
ACTIVE = "anthropic.claude-sonnet-4-5-20250929-v1:0"


def _events() -> list[UsageEvent]:
    events = []
    for day in range(10):
        for model, provider in ((RETIRED, "bedrock"), (RETIRING, "openai"), (ACTIVE, "bedrock")):
            event = UsageEvent(
                ts=END - timedelta(days=day, hours=2),
                provider=provider,
                model=model,
                region="us-east-1" if provider == "bedrock" else None,
                task="work",
                input_tokens=3_000,
                output_tokens=300,
            )
            events.append(event.apply_cost(compute_cost(event.usage, model, event.region)))
    return events


def test_a_retired_or_retiring_model_in_use_is_a_finding_naming_its_successor(tmp_path) -> None:
    store = open_store(tmp_path / "ledger.duckdb")
    store.write(_events())
    catalog = default_catalog()
    retires = date.fromisoformat(catalog.lookup(RETIRING).retired_on)
    today = retires - timedelta(days=4)
    assert date.fromisoformat(catalog.lookup(RETIRED, "us-east-1").retired_on) < today  # the catalog's dates
    section = models_section(store, END - timedelta(days=30), END, Decimal(1), today)
    found = {f["subject"]: f for f in section["findings"] if f["kind"].startswith("model_retir")}
    assert set(found) == {RETIRED, RETIRING}  # Sonnet 4.5 has no retirement date: no finding
    in_use = {m["model"]: m for m in section["in_use"]}

    retired = found[RETIRED]
    assert retired["kind"] == "model_retired" and retired["to"] == "anthropic.claude-haiku-4-5-20251001-v1:0"
    assert "every call to it fails" in retired["message"] and retired["to"] in retired["apply"]
    assert retired["monthly_usd"] == in_use[RETIRED]["current_monthly_usd"] > 0  # the traffic that must move

    retiring = found[RETIRING]
    assert retiring["kind"] == "model_retiring" and "(in 4 days)" in retiring["message"]
    assert retiring["to"] in {c["model"] for c in in_use[RETIRING]["candidates"]}
    # the move is to a newer model of its vendor, not to 2024's gpt-4o-mini (its cheapest candidate, same line), nor to
    # gpt-5-nano, which retires the same day
    assert model_line(retiring["to"]).released > model_line(RETIRING).released, retiring["to"]
    assert "gpt-5-nano" not in {c["model"] for c in in_use[RETIRING]["candidates"]}
    assert {"model": "gpt-5-nano", "kind": "cheaper, other line", "retires_on": str(retires)} in in_use[RETIRING][
        "legacy"
    ]
    # Both are actions, ranked by the traffic at stake as any finding by its dollars.
    assert {(a["kind"], a["subject"]) for a in rank_actions(section["findings"])} >= {
        ("model_retired", RETIRED),
        ("model_retiring", RETIRING),
    }

    # A retirement further off than a quarter is no finding yet.
    early = retires - timedelta(days=RETIRING_NOTICE_DAYS + 1)
    later = models_section(store, END - timedelta(days=30), END, Decimal(1), early)["findings"]
    assert RETIRING not in {f["subject"] for f in later if f["kind"].startswith("model_retir")}


def test_a_model_retired_elsewhere_but_served_in_the_region_of_its_traffic_is_no_finding(tmp_path) -> None:
    # AWS still serves Claude 3 Haiku in ca-central-1 (the catalog has no date there) and retired it in us-east-1.
    haiku = "anthropic.claude-3-haiku-20240307-v1:0"
    catalog = default_catalog()
    assert catalog.lookup(haiku, "ca-central-1").retired_on is None
    assert catalog.lookup(haiku, "us-east-1").retired_on is not None
    events = []
    for region in ("ca-central-1", "us-east-1"):
        event = UsageEvent(
            ts=END - timedelta(days=1),
            provider="bedrock",
            model=haiku,
            region=region,
            task="work",
            input_tokens=3_000,
            output_tokens=300,
        )
        events.append(event.apply_cost(compute_cost(event.usage, haiku, region)))
    served, retired = (open_store(tmp_path / f"{name}.duckdb") for name in ("served", "retired"))
    served.write(events[:1])
    retired.write(events)
    today = date(2026, 12, 7)

    def findings(store) -> list[dict]:
        section = models_section(store, END - timedelta(days=30), END, Decimal(1), today)
        return [f for f in section["findings"] if f["kind"].startswith("model_retir")]

    assert findings(served) == []  # every call of its traffic is served: nothing fails
    assert [f["kind"] for f in findings(retired)] == ["model_retired"]  # its us-east-1 calls fail


INSTANT = "anthropic.claude-instant-v1"
HAIKU_3 = "anthropic.claude-3-haiku-20240307-v1:0"
CLAUDE_2_1 = "anthropic.claude-v2:1"


def _store(tmp_path, name: str, region: str, models: tuple[str, ...], priced_in: str = "us-east-1"):
    # priced at us-east-1's rates (unless told), as the review prices a region the catalog has no price for
    events = [event for model in models for event in daily_calls(model, END, region=region, priced_in=priced_in)]
    store = open_store(tmp_path / f"{name}.duckdb")
    store.write(events)
    return store


def test_claude_instant_priced_from_2025_data_is_not_proposed_beside_current_claude_models(tmp_path) -> None:
    # Claude 2.1's traffic was offered Claude Instant as "cheaper, other line", priced from data dated 2025-10-15,
    # while newer Claude models with current prices are candidates too (a model Bedrock no longer sells new).
    from tokenomy.pricing.freshness import WARN_DAYS, age_days

    today = date(2026, 12, 7)
    old = default_catalog().lookup(INSTANT, "us-east-1").as_of
    assert age_days(old, today) > WARN_DAYS  # the premise: Instant's only prices are old
    store = _store(tmp_path, "ledger", "us-east-1", (HAIKU_3, CLAUDE_2_1))
    section = models_section(store, END - timedelta(days=30), END, Decimal(1), today)
    in_use = {m["model"]: m for m in section["in_use"]}
    assert set(in_use) == {HAIKU_3, CLAUDE_2_1}
    for info in in_use.values():
        assert INSTANT not in {c["model"] for c in info["candidates"]}, info["candidates"]
        assert INSTANT not in {t["to"] for t in info.get("per_task", [])}
    # said apart, with the newer model of its vendor that is proposed with current prices
    [outdated] = [o for o in in_use[CLAUDE_2_1]["outdated"] if o["model"] == INSTANT]
    assert outdated["prices_as_of"] == old and outdated["kind"] == "cheaper, other line"
    successor = {c["model"]: c for c in in_use[CLAUDE_2_1]["candidates"]}[outdated["newer"]]
    assert age_days(successor["prices_as_of"], today) <= WARN_DAYS and successor["released"] > "2023-08-09"
    line = not_proposed_line(section["in_use"])
    assert f"{INSTANT} (prices as of {old[:10]}; newer: {outdated['newer']})" in line, line
    # Nova Premier (EOL 2026-09-14 on AWS's card) was a cheaper model of another line for Claude 2.1: not proposed
    assert {"model": "amazon.nova-premier-v1:0", "kind": "cheaper, other line", "retired_on": "2026-09-14"} in (
        in_use[CLAUDE_2_1]["retired"]
    )
    assert "amazon.nova-premier-v1:0 (retired 2026-09-14)" in line


def test_a_candidate_is_judged_by_its_lifecycle_in_the_region_the_traffic_runs_in(tmp_path) -> None:
    # AWS retired Claude 3 Haiku in us-east-1 (the catalog's default region for it) and still serves it in
    # ca-central-1: the review read the default region's date, so Claude 2.1 traffic in Canada was never offered it.
    today = date(2026, 12, 7)
    catalog = default_catalog()
    assert catalog.lookup(HAIKU_3).retired_on == "2026-09-10"  # the default region's
    assert catalog.lookup(HAIKU_3, "ca-central-1").retired_on is None

    def review(region: str) -> dict:
        store = _store(tmp_path, region, region, (CLAUDE_2_1,))
        [info] = models_section(store, END - timedelta(days=30), END, Decimal(1), today)["in_use"]
        return info

    canada, virginia = review("ca-central-1"), review("us-east-1")
    assert HAIKU_3 in {c["model"] for c in canada["candidates"]}
    assert HAIKU_3 not in {r["model"] for r in canada["retired"]}
    assert HAIKU_3 not in {c["model"] for c in virginia["candidates"]}
    assert {"model": HAIKU_3, "kind": "cheaper, other line", "retired_on": "2026-09-10"} in virginia["retired"]


def test_claude_instant_is_not_proposed_to_claude_haiku_4_5_traffic_with_no_other_cheaper_claude(tmp_path) -> None:
    # The demo's case: no current Claude model is cheaper than Haiku 4.5 in us-east-1 (Claude 3 and 3.5 Haiku are
    # retired there), so no candidate stood for Instant, which was offered as "cheaper, other line". The model in use
    # is a current model of its vendor, newer than Instant: that is the move's answer.
    haiku_4_5 = "anthropic.claude-haiku-4-5-20251001-v1:0"
    store = _store(tmp_path, "haiku", "us-east-1", (haiku_4_5,))
    section = models_section(store, END - timedelta(days=30), END, Decimal(1), date(2026, 12, 7))
    [info] = section["in_use"]
    assert INSTANT not in {c["model"] for c in info["candidates"]}, info["candidates"]
    assert {c["kind"] for c in info["candidates"]} >= {"cheaper, other line"}  # Nova Micro, of another vendor
    [outdated] = [o for o in info["outdated"] if o["model"] == INSTANT]
    assert outdated["newer"] == haiku_4_5
    # With Sonnet 4.5 traffic too, Instant is left out for each (newer: Haiku 4.5, Sonnet 4.6): said once
    sonnet = "anthropic.claude-sonnet-4-5-20250929-v1:0"
    store = _store(tmp_path, "both", "us-east-1", (haiku_4_5, sonnet))
    section = models_section(store, END - timedelta(days=30), END, Decimal(1), date(2026, 12, 7))
    line = not_proposed_line(section["in_use"])
    assert line.count(INSTANT) == 1 and f"newer: {haiku_4_5}, anthropic.claude-sonnet-4-6)" in line, line


SONNET_3_5_V1 = "anthropic.claude-3-5-sonnet-20240620-v1:0"
SONNET_3_5_V2 = "anthropic.claude-3-5-sonnet-20241022-v2:0"
OPUS_3 = "anthropic.claude-3-opus-20240229-v1:0"


def test_a_model_its_vendor_retired_is_not_proposed_where_the_platform_gives_no_date(tmp_path) -> None:
    # The catalog has none of Bedrock's dates for Claude 3.5 Sonnet v1 and v2, so Claude 3 Opus traffic on Bedrock was
    # offered Claude 3.5 Sonnet v2 (and v1, 3.7 Sonnet, Sonnet 4) as cheaper lines, and 3.5 Sonnet v1 traffic was told
    # to "upgrade" to v2: models Anthropic retired in 2025 and 2026, that AWS moved to Legacy too.
    catalog = default_catalog()
    assert not any(e.retired_on or e.deprecated_on for e in catalog.entries() if e.model == SONNET_3_5_V2)
    assert catalog.lookup("claude-3-5-sonnet-20241022").retired_on == "2025-10-28"  # Anthropic's own API's date
    today = date(2026, 12, 7)
    store = _store(tmp_path, "bedrock", "us-west-2", (OPUS_3, SONNET_3_5_V1, SONNET_3_5_V2), "us-west-2")
    section = models_section(store, END - timedelta(days=30), END, Decimal(1), today)
    in_use = {info["model"]: info for info in section["in_use"]}
    gone = {
        SONNET_3_5_V1,
        SONNET_3_5_V2,
        "anthropic.claude-3-7-sonnet-20250219-v1:0",
        "anthropic.claude-sonnet-4-20250514-v1:0",
    }
    for info in in_use.values():
        proposed = {c["model"] for c in info["candidates"]} | {t["to"] for t in info.get("per_task", [])}
        assert not proposed & gone, (info["model"], proposed & gone)
    assert {c["model"] for c in in_use[OPUS_3]["candidates"]} >= {"anthropic.claude-sonnet-4-6"}  # the current one
    said = {r["model"]: r["note"] for r in in_use[OPUS_3]["vendor_retired"]}
    assert said[SONNET_3_5_V2] == "retired by anthropic on 2025-10-28 as claude-3-5-sonnet-20241022"
    # v1 is no longer on Anthropic's price list: its line's later release, retired, stands for it
    assert (
        said[SONNET_3_5_V1]
        == "anthropic retired claude-3-5-sonnet-20241022, a later release of its line, on 2025-10-28"
    )
    line = not_proposed_line(section["in_use"])
    assert f"{SONNET_3_5_V2} (retired by anthropic on 2025-10-28" in line, line

    # Each model in use that Anthropic retired is one action naming why and the current successor to move to.
    found = {f["subject"]: f for f in section["findings"]}
    for model in (SONNET_3_5_V1, SONNET_3_5_V2):
        finding = found[model]
        assert finding["kind"] == "model_retired_by_vendor" and finding["to"] == "anthropic.claude-sonnet-4-6"
        assert "on 2025-10-28" in finding["message"] and "may serve it longer" in finding["message"]
        assert finding["monthly_usd"] == in_use[model]["current_monthly_usd"] > 0
    assert found[OPUS_3]["kind"] == "model_retired_by_vendor"  # once: not also "superseded"
    assert [f["subject"] for f in section["findings"]].count(OPUS_3) == 1
    assert found[OPUS_3]["to"] not in gone


def test_a_platform_with_dates_of_its_own_keeps_them(tmp_path) -> None:
    # AWS still serves Claude 3 Haiku in ca-central-1 (its card says so): Anthropic's retirement of claude-3-haiku on
    # its own API does not make the review tell that traffic it is retired.
    assert default_catalog().lookup("claude-3-haiku-20240307").retired_on is not None
    store = _store(tmp_path, "canada", "ca-central-1", (HAIKU_3,))
    section = models_section(store, END - timedelta(days=30), END, Decimal(1), date(2026, 12, 7))
    assert [f for f in section["findings"] if f["kind"].startswith("model_retired")] == []


def test_traffic_on_a_platform_the_dates_are_not_for_is_not_told_its_calls_fail(tmp_path) -> None:
    # Azure's deployments of gpt-5-mini (a FOCUS import's or the gateway's "azure" rows) were told "retires on
    # 2026-12-11: calls to it fail then", OpenAI's date for its own API: Azure retires deployments on its schedule.
    today = date.fromisoformat(default_catalog().lookup(RETIRING).retired_on) - timedelta(days=4)

    def findings(*providers: str) -> list[dict]:
        events = []
        for provider in providers:
            for day in range(5):
                event = UsageEvent(
                    ts=END - timedelta(days=day, hours=3),
                    provider=provider,
                    model=RETIRING,
                    task="work",
                    input_tokens=3_000,
                    output_tokens=300,
                )
                events.append(event.apply_cost(compute_cost(event.usage, RETIRING)))
        store = open_store(tmp_path / f"{'-'.join(providers)}.duckdb")
        store.write(events)
        return models_section(store, END - timedelta(days=30), END, Decimal(1), today)["findings"]

    [azure] = findings("azure")
    assert azure["kind"] == "model_retired_by_vendor", azure
    deprecated = default_catalog().lookup(RETIRING).deprecated_on
    assert azure["message"].startswith(
        f"{RETIRING}: deprecated by openai on {deprecated}; the price catalog has no date of azure's for it"
    )
    assert "calls to it fail" not in azure["message"] and azure["to"]
    # where some of it runs on OpenAI's API, OpenAI's date holds for it
    assert [f["kind"] for f in findings("openai", "azure")] == ["model_retiring"]


def test_claude_3_opus_retired_by_anthropic_is_a_finding_on_its_api_and_on_bedrock(tmp_path) -> None:
    # The catalog gave claude-3-opus-20240229 no date (Anthropic retired it on 2026-01-05): its API traffic, whose every
    # call fails, was offered upgrades and no action, and Bedrock's was told of a later release's retirement.
    traffic = (("claude-3-opus-20240229", "anthropic", None), (OPUS_3, "bedrock", "us-west-2"))
    events = [event for model, provider, region in traffic for event in daily_calls(model, END, provider, region)]
    store = open_store(tmp_path / "ledger.duckdb")
    store.write(events)
    section = models_section(store, END - timedelta(days=30), END, Decimal(1), date(2026, 12, 7))
    found = {f["subject"]: f for f in section["findings"]}
    api = found["claude-3-opus-20240229"]
    assert api["kind"] == "model_retired" and "every call to it fails" in api["message"], api
    assert "2026-01-05" in api["message"] and api["to"]
    bedrock = found[OPUS_3]
    assert bedrock["kind"] == "model_retired_by_vendor" and "on 2026-01-05" in bedrock["message"], bedrock
