"""The output cap a batch record that gives no max_tokens is sent with, where its backend sends one: the model's
maximum output in the price catalog, no more than its context window leaves after the record's prompt (by the
estimate), as the sync path sends an uncapped call to Claude (`CallPlanner.uncapped_cap`). The caller's own API (an
OpenAI batch file's) lets the model write that much; a lower cap would cut long answers short, billed. The worst case
(`worst_case.sent_cap`) counts a record at this same figure."""

from __future__ import annotations

from tokenomy.batch.formats import BatchRecord
from tokenomy.batch.record_tokens import record_estimate
from tokenomy.errors import TokenomyError
from tokenomy.pricing.catalog import default_catalog
from tokenomy.providers.anthropic_mapping import DEFAULT_MAX_TOKENS as CLAUDE_FALLBACK_CAP

# The local runner's cap for a record that gives none: it runs a small local model, whose answers (and the demo's
# speed) it keeps short. `batch validate` estimates at it, too, the answer of a record sent with no cap at all.
LOCAL_MAX_TOKENS = 256


def catalog_most(model: str, rec: BatchRecord) -> int | None:
    """What `model` may write after `rec`'s prompt: its maximum output in the catalog within its context window less
    the prompt's estimate (`PriceEntry.output_within`); None where the catalog lacks the model or its maximum, or
    the prompt leaves no room (a cap of 0 is no cap: the record is refused by validation as over the context)."""
    try:
        entry = default_catalog().lookup(model)
    except TokenomyError:
        return None
    return entry.output_within(record_estimate(rec)) or None


def claude_cap(model: str, rec: BatchRecord) -> int:
    """The max_tokens a Messages body (Anthropic's batch, a Bedrock Claude body) carries for `rec`, which the API
    requires: the record's own, else `catalog_most`, else (the catalog has no maximum output for the model) the sync
    path's fallback, CLAUDE_FALLBACK_CAP (`anthropic_mapping.default_max_tokens`). Unlike the sync path's, it is not
    raised to that fallback where the window leaves less: a batch record sets no thinking budget to keep room for,
    and a cap over the window is one Claude before Sonnet 4.5 refuses."""
    if rec.max_tokens:
        return rec.max_tokens
    most = catalog_most(model, rec)
    return CLAUDE_FALLBACK_CAP if most is None else most
