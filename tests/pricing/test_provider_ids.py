"""Provider-specific ids resolve to the catalog entry of the model they name, never to another snapshot's price."""

from decimal import Decimal

import pytest

from tokenomy.chat_response import Usage
from tokenomy.pricing.catalog import PriceCatalog
from tokenomy.pricing.cost import compute_cost

M = 1_000_000


@pytest.mark.parametrize(
    "vertex, anthropic",
    [
        # Vertex AI's model ids (platform.claude.com/docs/en/build-with-claude/claude-on-vertex-ai): `@` and the date.
        ("claude-sonnet-4-5@20250929", "claude-sonnet-4-5-20250929"),
        ("claude-sonnet-4@20250514", "claude-sonnet-4-20250514"),
        ("claude-3-7-sonnet@20250219", "claude-3-7-sonnet-20250219"),
        ("claude-3-5-sonnet-v2@20241022", "claude-3-5-sonnet-20241022"),  # Vertex's "v2" is Anthropic's 20241022
        ("claude-opus-4-5@20251101", "claude-opus-4-5-20251101"),
        ("claude-opus-4-1@20250805", "claude-opus-4-1-20250805"),
        ("claude-opus-4@20250514", "claude-opus-4-20250514"),
        ("claude-haiku-4-5@20251001", "claude-haiku-4-5-20251001"),
        ("claude-3-5-haiku@20241022", "claude-3-5-haiku-20241022"),
        ("claude-3-haiku@20240307", "claude-3-haiku-20240307"),
    ],
)
def test_a_vertex_claude_id_is_priced_by_the_curated_entry_of_its_snapshot(vertex, anthropic):
    """They were priced by genai-prices' own matching: the same per-token figures, but without what only the curated
    entry holds, so a Vertex batch of Claude Opus 4.1 or 3.5 Haiku was refused ("no batch price"), and a budget had no
    maximum output to reserve an uncapped call at. On Vertex's global endpoint Claude costs what it costs on Anthropic's
    API."""
    catalog = PriceCatalog.builtin()
    entry, curated = catalog.lookup(vertex), catalog.lookup(anthropic)
    assert (entry.priced_by, entry.model, entry.resolved_from) == ("tokenomy-catalog", anthropic, vertex)
    usage = Usage(2_000, 500, cache_read_tokens=10_000, cache_write_tokens=1_000)
    # By hand at the curated prices: batch is half of input and output, and of cache reads in proportion.
    batch = (
        2_000 * curated.batch_input
        + 500 * curated.batch_output
        + 10_000 * curated.cache_read / 2
        + 1_000 * curated.cache_write / 2
    ) / M
    assert compute_cost(usage, vertex, mode="batch", catalog=catalog).total_usd == batch


def test_an_undated_vertex_id_and_the_region_form_keep_working():
    catalog = PriceCatalog.builtin()
    assert catalog.lookup("claude-opus-4-6").input == Decimal("5.00")  # Vertex names 4.6 models without `@`
    assert catalog.lookup("vertex_ai/claude-sonnet-4-5@20250929").model == "claude-sonnet-4-5-20250929"


def test_every_id_genai_prices_names_for_a_snapshot_gets_that_snapshots_price():
    """Beyond each library model's own id (test_coverage checks those): every id its match lists (dated snapshots such
    as gpt-4o-2024-08-06, -latest aliases, Bedrock profile ids) that the catalog prices through its alias rules must
    cost what genai-prices says that snapshot costs, never a sibling snapshot's price."""
    from datetime import UTC, datetime

    from tokenomy.errors import UnknownModelError
    from tokenomy.pricing import library
    from tokenomy.pricing.identifiers import parse_model_id

    def listed(clause, out):
        if isinstance(getattr(clause, "equals", None), str):
            out.append(clause.equals)
        for sub in getattr(clause, "or_", None) or []:
            listed(sub, out)
        return out

    catalog, now, checked, wrong = PriceCatalog.builtin(), datetime.now(UTC), 0, []
    # Known and explained: the search preview is its own model (its entry's `overrides`); an embedding writes nothing.
    explained = {"gpt-4o-mini-search-preview-2025-03-11", "text-embedding-ada-002-v2"}
    for provider in library._snapshot()[0].providers:
        if provider.id not in ("openai", "anthropic", "google", "aws"):
            continue
        for model in provider.models:
            prices = model.get_prices(now)
            theirs = (library._flat(prices, "input_mtok"), library._flat(prices, "output_mtok"))
            for asked in listed(model.match, []):
                ref = parse_model_id(asked, strict=False)
                if asked in explained or ref.profiled in catalog.models() or ref.base in catalog.models():
                    continue
                try:
                    entry = catalog.lookup(asked)
                except UnknownModelError:
                    continue
                if entry.priced_by != "tokenomy-catalog":
                    continue
                checked += 1
                if (entry.input, entry.output) != theirs:
                    wrong.append(f"{asked} -> {entry.model}: {entry.input}/{entry.output} vs {model.id} {theirs}")
    assert checked >= 15, checked
    assert not wrong, "\n".join(wrong)


def test_pricing_region_looks_a_place_less_region_up_as_no_region():
    """ "global" (a first-party API) and "local" (the local model) name no price region: looked up as none, a Bedrock
    model priced per region gets its default region's price, where "global" itself has none to find."""
    from tokenomy.errors import UnknownModelError
    from tokenomy.pricing.catalog import default_catalog
    from tokenomy.pricing.identifiers import pricing_region

    assert [pricing_region(r) for r in (None, "global", "local", "eu-west-1")] == [None, None, None, "eu-west-1"]
    model = "meta.llama3-1-8b-instruct-v1:0"
    with pytest.raises(UnknownModelError, match="no price for region 'global'"):
        default_catalog().lookup(model, "global")
    assert default_catalog().lookup(model, pricing_region("global")).region == "us-east-1"
