"""Cascade validators on real-looking answers: a false positive escalates a good cheap answer (paid twice for
nothing), a false negative passes a bad one. Each row: an answer, the validators, whether the cascade escalates."""

from __future__ import annotations

import pytest

from tokenomy.messages import ChatRequest, ChatResponse, TextBlock, ToolUseBlock, Usage
from tokenomy.routing.validators import validate

REQUEST = ChatRequest.simple("Help me with my order.")


def verdict(text: str, spec: dict | None = None) -> str | None:
    return validate(ChatResponse.of_text(text, "m", "p", Usage()), REQUEST, spec or {})


HEDGING = [
    # Genuine hedges and refusals: escalate.
    ("I'm not sure, but maybe the answer is 42.", True),
    ("As an AI, I cannot browse the web.", True),
    ("I'm sorry, but I can't help with that.", True),
    ("I do not know the exact figure.", True),
    # Typographic apostrophes, as many models write them.
    ("I’m not sure, but maybe the answer is 42.", True),
    ("I don’t know the answer to that.", True),
    # A phrase inside another word is no hedge.
    ("Residents of Hawaii cannot vote by mail before 2020.", False),
    ("Traffic in Mumbai can't be avoided at 9am.", False),
    ("Use the index card as an aid to memory.", False),
    ("The answer is 42.", False),
]


@pytest.mark.parametrize(("answer", "escalates"), HEDGING)
def test_hedging(answer, escalates):
    assert (verdict(answer) is not None) is escalates, verdict(answer)


def test_a_configured_hedge_phrase_matches_whatever_its_case():
    assert verdict("Possibly 42.", {"hedge_phrases": ["Possibly"]}) == "hedging language: 'Possibly'"
    assert verdict("The answer is 42.", {"hedge_phrases": ["Possibly"]}) is None


def test_tool_call_arguments_are_not_read_for_hedging():
    call = ToolUseBlock("1", "note", {"text": "unable to ship"}, '{"text": "unable to ship"}')
    answer = ChatResponse([TextBlock("Saving the note."), call], "m", "p", Usage(), finish_reason="tool_calls")
    assert validate(answer, REQUEST, {}) is None
