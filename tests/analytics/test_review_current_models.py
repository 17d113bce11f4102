"""The catalog knows the Claude models released in 2026: a review of Sonnet 4.5 traffic names the current Sonnet
(5.5) as its upgrade, priced from the curated figures, and the caching lever uses a new model's own minimum prefix.
Before these entries the review offered Sonnet 4.6 (the newest Sonnet it knew) and the new models, priced from the
price library alone, had no cache points placed at all."""

from __future__ import annotations

import json
import subprocess
import sys
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from pathlib import Path

import pytest
import yaml

from tokenomy.caching.placement import estimate_tokens, place_cache_points
from tokenomy.ledger.events import UsageEvent
from tokenomy.ledger.store import open_store
from tokenomy.messages import ChatRequest
from tokenomy.money import money_str
from tokenomy.pricing.catalog import default_catalog
from tokenomy.pricing.cost import compute_cost

TOKENOMY = str(Path(sys.executable).with_name("tokenomy"))
ANTHROPIC_YAML = Path(__file__).parents[2] / "src/tokenomy/pricing/data/anthropic.yaml"
NOW = datetime(2026, 12, 1, tzinfo=UTC)
DAYS = 30
OLD, CURRENT = "claude-sonnet-4-5-20250929", "claude-sonnet-5-5"


def _figures(model: str) -> dict:
    """The model's global prices exactly as the curated file writes them (read here, not through the catalog)."""
    return yaml.safe_load(ANTHROPIC_YAML.read_text())["models"][model]["regions"]["global"]


def _by_hand(model: str, input_tokens: int, cache_read: int, output: int) -> Decimal:
    f = _figures(model)
    return (
        input_tokens * Decimal(f["input"]) + cache_read * Decimal(f["cache_read"]) + output * Decimal(f["output"])
    ) / 1_000_000


def _review(events: list[UsageEvent], ledger_path, tmp_path) -> dict:
    """`tokenomy review --json` over these events (the period ends at NOW)."""
    open_store(ledger_path).write(events)
    config = tmp_path / "tokenomy.yaml"
    config.write_text("{}\n")
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
            str(ledger_path),
            "--json",
        ],
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert result.returncode == 0, result.stderr + result.stdout
    return json.loads(result.stdout)


def test_sonnet_4_5_traffic_is_told_sonnet_5_5_supersedes_it(ledger_path, tmp_path) -> None:
    events = []
    for day in range(DAYS):
        ts = NOW - timedelta(days=day, hours=5)
        event = UsageEvent(
            ts=ts,
            provider="anthropic",
            model=OLD,
            task="chat",
            input_tokens=8_000 + day,
            cache_read_tokens=2_000,
            output_tokens=600,
        )
        events.append(event.apply_cost(compute_cost(event.usage, OLD)))
    body = _review(events, ledger_path, tmp_path)
    [finding] = [f for f in body["findings"] if f["kind"] == "model_superseded"]
    assert (finding["subject"], finding["to"]) == (OLD, CURRENT)
    assert f"superseded by {CURRENT} (2026-09-28, same line claude-sonnet)" in finding["message"]
    # What the period's calls cost on Sonnet 4.5 and would have cost on Sonnet 5.5, from the YAML figures by hand.
    now = sum(_by_hand(OLD, e.input_tokens, e.cache_read_tokens, e.output_tokens) for e in events)
    then = sum(_by_hand(CURRENT, e.input_tokens, e.cache_read_tokens, e.output_tokens) for e in events)
    factor = Decimal(730) / (DAYS * 24)
    assert Decimal(finding["monthly_usd"]) == Decimal(money_str((now - then) * factor, "amount")) > 0
    # Every newer Sonnet is listed as an upgrade, newest first in the finding; the older ones are not.
    [info] = [m for m in body["models"] if m["model"] == OLD]
    upgrades = {c["model"] for c in info["candidates"] if c["kind"] == "upgrade"}
    assert upgrades == {"claude-sonnet-4-6", "claude-sonnet-5", CURRENT}


def test_the_caching_lever_uses_a_new_models_own_minimum_prefix() -> None:
    # Opus 5 caches a prefix of 512 tokens, Opus 4.6 needs 4,096: a ~700-token system prompt is worth a cache point
    # on the first only.
    assert _figures("claude-opus-5")["cache_min_tokens"] == 512
    system = "Clause: orders ship within two days of payment. " * 60
    assert 512 <= estimate_tokens(system) < 4_096
    for model, cached in (("claude-opus-5", True), ("claude-opus-4-6", False)):
        entry = default_catalog().lookup(model)
        assert entry.priced_by == "tokenomy-catalog" and entry.cache_max_checkpoints == 4, model
        placed, placements = place_cache_points(ChatRequest.simple("Hi", model=model, system=system), entry)
        assert bool(placed.system_cache_point) is cached and [p.after for p in placements] == (
            ["system"] if cached else []
        ), model
    # Below the 512-token minimum no cache point is placed on Opus 5 either.
    short = "Clause: orders ship within two days of payment. " * 30
    assert estimate_tokens(short) < 512
    entry = default_catalog().lookup("claude-opus-5")
    assert place_cache_points(ChatRequest.simple("Hi", model="claude-opus-5", system=short), entry)[1] == []


def test_gpt_5_5_traffic_is_told_the_current_sol_supersedes_it_not_the_older_gpt_5_2(ledger_path, tmp_path) -> None:
    # "^gpt-5" dated GPT-5.5 (2026-04-23) as GPT-5 (2025-08-07): GPT-5.2 (2025-12-11, cheaper) was its "upgrade".
    from tokenomy.pricing.families import model_line

    assert model_line("gpt-5.5").released > model_line("gpt-5.2").released
    assert model_line("gpt-5.6").line == model_line("gpt-6.1-sol").line == "gpt"  # gpt-5.6 is gpt-5.6-sol's alias
    assert model_line("gpt-5.6-luna").line == "gpt-luna" and model_line("gpt-5.5-cyber") is None
    events = []
    for day in range(DAYS):
        event = UsageEvent(
            ts=NOW - timedelta(days=day, hours=5),
            provider="openai",
            model="gpt-5.5",
            task="chat",
            input_tokens=4_000,
            output_tokens=400,
        )
        events.append(event.apply_cost(compute_cost(event.usage, "gpt-5.5")))
    body = _review(events, ledger_path, tmp_path)
    # Its upgrade is the current Sol (GPT-6.2 Sol), not GPT-5.2: that one is older, merely cheaper.
    [finding] = [f for f in body["findings"] if f["kind"] == "model_superseded"]
    assert (finding["subject"], finding["to"]) == ("gpt-5.5", "gpt-6.2-sol")
    [info] = [m for m in body["models"] if m["model"] == "gpt-5.5"]
    assert info["released"] == "2026-04-23"
    kinds = {c["model"]: c["kind"] for c in info["candidates"]}
    assert [m for m, kind in kinds.items() if kind == "upgrade"] == ["gpt-6.1-sol", "gpt-6.2-sol"]
    assert kinds.get("gpt-5.2") == "same line, cheaper"


@pytest.mark.parametrize(
    "spelled, canonical",
    [
        ("claude-opus-5.5", "claude-opus-5-5"),
        ("claude-sonnet-5.5", "claude-sonnet-5-5"),
        ("claude-sonnet-4.5", "claude-sonnet-4-5-20250929"),
        ("claude-opus-4.8", "claude-opus-4-8"),
        ("claude-3.5-sonnet", "claude-3-5-sonnet-20241022"),
        ("gpt-5-5", "gpt-5.5"),
        ("gpt-5-6-luna", "gpt-5.6-luna"),
        ("llama3.1-8b", "meta.llama3-1-8b-instruct-v1:0"),
    ],
)
def test_a_version_spelled_with_a_dot_or_a_dash_is_the_same_model_of_its_line(spelled, canonical):
    # genai-prices matches both spellings; a pattern for the major version alone ("claude-opus-5", "^gpt-5") took
    # "claude-opus-5.5" for Opus 5 and "gpt-5-5" for GPT-5, so a review called a model superseded by itself.
    from tokenomy.pricing.families import model_line

    assert model_line(spelled) == model_line(canonical) is not None


@pytest.mark.parametrize(
    "model, line",
    [
        ("claude-opus-4-0", "claude-opus"),
        ("claude-sonnet-4-20250514", "claude-sonnet"),
        ("gpt-5-2025-08-07", "gpt"),
        ("shisa-v2-llama3.3-70b", None),  # a fine-tune by another vendor is no Meta line
    ],
)
def test_a_dated_or_point_zero_id_keeps_its_line(model, line):
    from tokenomy.pricing.families import model_line

    found = model_line(model)
    assert (found.line if found else None) == line
