"""Provider-specific ids resolve to the catalog entry of the model they name, never to another snapshot's price."""

from decimal import Decimal

import pytest

from tokenomy.messages import Usage
from tokenomy.pricing.catalog import PriceCatalog
from tokenomy.pricing.cost import compute_cost

M = 1_000_000


@pytest.mark.parametrize("vertex, anthropic", [
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
])
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
    batch = (2_000 * curated.batch_input + 500 * curated.batch_output + 10_000 * curated.cache_read / 2
             + 1_000 * curated.cache_write / 2) / M
    assert compute_cost(usage, vertex, mode="batch", catalog=catalog).total_usd == batch


def test_an_undated_vertex_id_and_the_region_form_keep_working():
    catalog = PriceCatalog.builtin()
    assert catalog.lookup("claude-opus-4-6").input == Decimal("5.00")  # Vertex names 4.6 models without `@`
    assert catalog.lookup("vertex_ai/claude-sonnet-4-5@20250929").model == "claude-sonnet-4-5-20250929"
