"""Document citations on the emulated Messages API: a request whose document asks for them (`citations: {"enabled":
true}`) is answered with a deterministic fixture, a text block citing that document, as Claude answers a question
about a document it was asked to cite.

The first such document is cited, in the location type the API gives its kind: `char_location` for a text document
(its first sentence, by character), `content_block_location` for a content document (its first block), and
`page_location` for a PDF (page 1; the emulator reads no PDF, so its `cited_text` is empty). `document_index`
counts every document of the request, in order, as the API counts them. No model reads the document for this: the
answer is the same for every question, so callers (and tests) can check what carries the citations, offline.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

ANSWER = "The document says so."


def _first_sentence(text: str) -> str:
    """The text up to and including its first full stop or line end (the whole text when it has neither)."""
    ends = [i for i in (text.find(". "), text.find("\n")) if i >= 0]
    return text[: min(ends) + 1] if ends else text


def _documents(messages: list[Any]) -> Iterator[dict[str, Any]]:
    """The request's document blocks in the order the API numbers them (document_index)."""
    for message in messages:
        content = message.get("content") if isinstance(message, dict) else None
        for block in content if isinstance(content, list) else ():
            if isinstance(block, dict) and block.get("type") == "document":
                yield block


def first_citation(messages: list[Any]) -> dict[str, Any] | None:
    """The citation the fixture answers with: of the first document asking for citations, or None."""
    for index, document in enumerate(_documents(messages)):
        if not (document.get("citations") or {}).get("enabled"):
            continue
        source = document["source"]
        cited: dict[str, Any] = {"document_index": index, "document_title": document.get("title")}
        if source["type"] == "text":
            text = _first_sentence(source["data"])
            return {
                "type": "char_location",
                "cited_text": text,
                **cited,
                "start_char_index": 0,
                "end_char_index": len(text),
            }
        if source["type"] == "content":
            content = source["content"]
            first = content if isinstance(content, str) else content[0].get("text", "")
            return {
                "type": "content_block_location",
                "cited_text": first,
                **cited,
                "start_block_index": 0,
                "end_block_index": 1,
            }
        return {"type": "page_location", "cited_text": "", **cited, "start_page_number": 1, "end_page_number": 2}
    return None


def citation_events(citation: dict[str, Any], index: int = 0) -> Iterator[tuple]:
    """The cited text block as the emulator's abstract answer events (the API streams the citation first)."""
    yield "start", index, {"type": "text", "text": "", "citations": []}
    yield "delta", index, {"type": "citations_delta", "citation": citation}
    yield "delta", index, {"type": "text_delta", "text": ANSWER}
    yield "stop", index
