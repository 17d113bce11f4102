"""The emulated web search tool (`web_search_*`, an Anthropic server tool): a request that offers it is answered
with a deterministic fixture, as Claude answers after one search: a server_tool_use block (the search's query,
streamed as input_json_delta), a web_search_tool_result with one result, then a text block citing it; the usage
counts one search (`server_tool_use.web_search_requests`), which Anthropic bills per search.

No search is made: the result is the same page for every query, so callers (and tests) can check what carries the
blocks and what bills the search, offline.
"""

from __future__ import annotations

import base64
import hashlib
import json
from collections.abc import Iterator
from typing import Any

from tokenomy.emulate.anthropic_blocks import invalid

RESULT_URL = "https://example.com/tokenomy-emulator/search"
RESULT_TITLE = "Tokenomy emulator search result"
CITED_TEXT = "The Tokenomy emulator answers every web search with this one page."
ANSWER = "The emulator's search found one page, which it cites."


def search_tool(tools: list[dict[str, Any]]) -> dict[str, Any] | None:
    """The request's web search tool (its definition), or None."""
    return next((t for t in tools if str(t.get("type", "")).startswith("web_search_")), None)


def check_server_tool(tool: dict[str, Any], where: str) -> None:
    """A server tool's definition as the API checks it: a web search or web fetch tool, with its name."""
    kind = str(tool.get("type"))
    if not kind.startswith(("web_search_", "web_fetch_")):
        raise invalid(f"{where}.type: '{kind}' is not a tool the Tokenomy emulator runs (web_search_*, web_fetch_*)")
    expected = "web_search" if kind.startswith("web_search_") else "web_fetch"
    if tool.get("name") != expected:
        raise invalid(f"{where}.name: Input should be '{expected}'")
    uses = tool.get("max_uses")
    if uses is not None and (isinstance(uses, bool) or not isinstance(uses, int) or uses < 1):
        raise invalid(f"{where}.max_uses: Input should be a positive integer")


def search_events(query: str, first: int = 0) -> Iterator[tuple]:
    """The fixture's content blocks as the emulator's abstract answer events (indices `first` to `first` + 2)."""
    digest = hashlib.sha256(query.encode()).hexdigest()
    use_id = f"srvtoolu_{digest[:24]}"
    yield "start", first, {"type": "server_tool_use", "id": use_id, "name": "web_search", "input": {}}
    yield "delta", first, {"type": "input_json_delta", "partial_json": json.dumps({"query": query})}
    yield "stop", first
    page = base64.b64encode(CITED_TEXT.encode()).decode()  # the API's results are encrypted; this one is not
    result = {"type": "web_search_result", "url": RESULT_URL, "title": RESULT_TITLE, "encrypted_content": page}
    yield "start", first + 1, {"type": "web_search_tool_result", "tool_use_id": use_id, "content": [result]}
    yield "stop", first + 1
    citation = {
        "type": "web_search_result_location",
        "url": RESULT_URL,
        "title": RESULT_TITLE,
        "cited_text": CITED_TEXT,
        "encrypted_index": base64.b64encode(digest[:16].encode()).decode(),
    }
    yield "start", first + 2, {"type": "text", "text": ""}
    yield "delta", first + 2, {"type": "citations_delta", "citation": citation}
    yield "delta", first + 2, {"type": "text_delta", "text": ANSWER}
    yield "stop", first + 2
