"""Bedrock traffic sent through a cross-region inference profile is offered the same profile of each candidate. The
review proposed base ids (`anthropic.claude-sonnet-4-6`), which Claude 4 and later do not take on demand: Bedrock
answers "Invocation of model ID ... with on-demand throughput isn't supported. Retry your request with the ID or ARN
of an inference profile", so the move as written failed; a `global.` profile's traffic was priced at the in-region
price (10% above the global one)."""

from __future__ import annotations

from datetime import UTC, date, datetime, timedelta
from decimal import Decimal

from helpers.review_traffic import daily_calls
from tokenomy.analytics.review_models import models_section
from tokenomy.ledger.events import UsageEvent
from tokenomy.ledger.store import open_store
from tokenomy.pricing.cost import compute_cost

END = datetime(2026, 12, 7, tzinfo=UTC)
SONNET_4_5 = "anthropic.claude-sonnet-4-5-20250929-v1:0"
SONNET_4_6 = "anthropic.claude-sonnet-4-6"


def _section(tmp_path, *models: str) -> dict:
    events = [event for model in models for event in daily_calls(model, END)]
    store = open_store(tmp_path / "ledger.duckdb")
    store.write(events)
    return models_section(store, END - timedelta(days=30), END, Decimal(1), date(2026, 12, 7))


def test_profile_traffic_is_offered_the_same_profile_of_each_candidate_at_its_price(tmp_path) -> None:
    us, world = f"us.{SONNET_4_5}", f"global.{SONNET_4_5}"
    section = _section(tmp_path, us, world)
    in_use = {info["model"]: info for info in section["in_use"]}
    for model, profile in ((us, "us"), (world, "global")):
        offered = {c["model"]: c for c in in_use[model]["candidates"]}
        assert f"{profile}.{SONNET_4_6}" in offered and SONNET_4_6 not in offered, sorted(offered)
        # every Claude 4 or later candidate is named by the profile the traffic used
        claude_4 = [m for m in offered if "claude-" in m and "claude-3" not in m]
        assert claude_4 and all(m.startswith(f"{profile}.") for m in claude_4), claude_4
    # the global profile's candidate at the global price, what its calls would be billed
    candidate = {c["model"]: c for c in in_use[world]["candidates"]}[f"global.{SONNET_4_6}"]
    usage = UsageEvent(ts=END, provider="bedrock", model=world, input_tokens=3_000, output_tokens=300).usage
    assert candidate["cost_usd"] == 5 * compute_cost(usage, f"global.{SONNET_4_6}").total_usd
    assert candidate["cost_usd"] < 5 * compute_cost(usage, SONNET_4_6, "us-east-1").total_usd
    # the move a finding names is one the user can call
    moves = {f["subject"]: f["to"] for f in section["findings"] if f["kind"] == "model_superseded"}
    assert moves == {us: f"us.{SONNET_4_6}", world: f"global.{SONNET_4_6}"}, moves
