"""What a generateContent answer says beside its parts, read for the provider's ChatResponse: ids for function calls
Gemini sent without one, the service tier it was served at, why it blocked a prompt, what its built-in tools found,
and its usage (estimated when it sent none, refused when a count is negative).

Usage: Gemini's `prompt_token_count` includes the tokens read from a context cache (implicit or an
explicit `cached_content`); `Usage.input_tokens` excludes them (`cache_read_tokens`). Thinking tokens
(`thoughts_token_count`) are output tokens, as Gemini bills them. A call served at the flex or priority tier
(`service_tier` in `extra`) is priced at that tier: see `served_tier`. Google Search grounding is billed per search
query the answer ran (Gemini 3 and later) or per grounded prompt (Gemini 2.x): `beside_parts` counts the queries.
"""

from __future__ import annotations

from typing import Any

from tokenomy.chat_response import Usage
from tokenomy.errors import ProviderError
from tokenomy.ids import new_id
from tokenomy.messages import Block, ChatRequest
from tokenomy.providers.gemini_mapping import GENERATED_ID
from tokenomy.providers.gemini_parts_read import usage_from_gemini
from tokenomy.providers.usage_counts import checked_counts, estimated_usage


class CallIds:
    """Ids for an answer's function calls Gemini sent without one, unique to the answer (`gemini-call-<id>-<n>`): an
    agent pairs tool results to calls by id, and Anthropic's API refuses a conversation that repeats a tool_use id.
    The GENERATED_ID prefix keeps them out of what goes back to Gemini (`gemini_mapping`)."""

    def __init__(self) -> None:
        self.answer: str | None = None  # drawn at the first call without an id
        self.calls = 0

    def name(self, part: dict[str, Any]) -> None:
        """Give `part`'s function call (if any) an id when it has none."""
        call = part.get("function_call")
        if not isinstance(call, dict):
            return
        if not call.get("id"):
            self.answer = self.answer or new_id()
            call["id"] = f"{GENERATED_ID}{self.answer}-{self.calls}"
        self.calls += 1


# The counts of a usage_metadata that Usage is made of (`usage_from_gemini`).
USAGE_COUNTS = (
    "prompt_token_count",
    "candidates_token_count",
    "cached_content_token_count",
    "thoughts_token_count",
    "tool_use_prompt_token_count",
)
# The tier a call was served at, which Google bills at its own price (flex at half the standard price, priority at
# up to twice it): the Gemini API says so in this response header (a priority call over its limit is served, and
# billed, at standard), Vertex AI in usage_metadata.traffic_type.
TIER_HEADER = "x-gemini-service-tier"
TRAFFIC_TIERS = {"ON_DEMAND": "standard", "ON_DEMAND_FLEX": "flex", "ON_DEMAND_PRIORITY": "priority"}


def served_tier(headers: Any, meta: Any, asked: Any) -> str | None:
    """The service tier Gemini served the call at: its header, else Vertex AI's traffic type, else the tier the
    request asked for (`service_tier` in `extra`, "flex" or "SERVICE_TIER_FLEX"); None when nothing names one."""
    items = headers.items() if hasattr(headers, "items") else ()
    header = next((value for name, value in items if str(name).lower() == TIER_HEADER), None)  # any case
    if header:
        return str(header).lower()
    traffic = getattr(getattr(meta, "traffic_type", None), "value", None)
    if traffic in TRAFFIC_TIERS:
        return TRAFFIC_TIERS[traffic]
    if asked is None:
        return None
    tier = str(getattr(asked, "value", asked)).lower().removeprefix("service_tier_")
    return tier if tier in ("flex", "priority", "standard") else None


def prompt_blocked(result: Any) -> str | None:
    """SAFETY when Gemini refused the prompt itself (no candidates, a `prompt_feedback.block_reason`)."""
    feedback = getattr(result, "prompt_feedback", None)
    return "SAFETY" if feedback is not None and feedback.block_reason else None


# What Gemini says of a candidate beside its parts: what its built-in tools found (googleSearch, urlContext: the
# caller's sources), and why an answer was cut short (its safety ratings, a finish message). Not citationMetadata:
# the Gemini API and Vertex AI name its list apart (citationSources, citations), and the SDK keeps Vertex AI's name.
CANDIDATE_FIELDS = {"grounding_metadata", "url_context_metadata", "safety_ratings", "finish_message"}


def beside_parts(result: Any, candidate: Any) -> dict[str, Any]:
    """What Gemini said beside the parts, in Gemini's JSON, for the gateway's Gemini routes to send on as Gemini sent
    it (gemini_answers): the candidate's CANDIDATE_FIELDS (`candidate`) and why it blocked the prompt
    (`prompt_feedback`); and the Google searches the model ran (`webSearchQueries`), which Google bills, as
    `server_tool_use.web_search_queries` (pricing/server_tools.py prices them: per query on Gemini 3 and later, per
    grounded prompt on Gemini 2.x)."""
    said: dict[str, Any] = {}
    feedback = getattr(result, "prompt_feedback", None)
    if feedback is not None:
        said["prompt_feedback"] = feedback.model_dump(mode="json", by_alias=True, exclude_none=True)
    held = {name for name in CANDIDATE_FIELDS if getattr(candidate, name, None) is not None}
    if not held:  # most chunks of a stream: no dump to make
        return said
    said["candidate"] = candidate.model_dump(mode="json", by_alias=True, exclude_none=True, include=held)
    queries = getattr(getattr(candidate, "grounding_metadata", None), "web_search_queries", None) or []
    if queries:
        said["server_tool_use"] = {"web_search_queries": len(queries)}
    return said


def answer_usage(request: ChatRequest, meta: Any, content: list[Block], raw: dict[str, Any]) -> Usage:
    """What an answer's usage_metadata says it used. None (or no count in it, as a proxy that strips it sends) is
    estimated, as an OpenAI-format or Claude answer without usage is, not recorded at 0 tokens and $0; a negative
    count is Gemini's fault (`checked_counts`), not a prompt of 0 tokens (`usage_from_gemini` keeps cached tokens
    apart and would hide it) nor an output of -10 the gateway's metrics refuse."""
    counts = [getattr(meta, name, None) for name in USAGE_COUNTS] if meta is not None else []
    if not any(count is not None for count in counts):
        return estimated_usage(request, content, raw)
    if any(count is not None and count < 0 for count in counts):
        said = {name: count for name, count in zip(USAGE_COUNTS, counts, strict=True) if count is not None}
        raise ProviderError(f"Gemini answered with token counts no answer can have: {said}", reached=True)
    return checked_counts(usage_from_gemini(meta), "Gemini")
