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


PROSE = [
    # A JSON answer is data: its values are the document's words, not the model's.
    ('{"status": "unable to ship", "reason": "I cannot find the address"}', {"json": True}, False),
    ('```json\n{"note": "customer said: I don\'t know my order number"}\n```', {"json": True}, False),
    ('[{"quote": "As an AI, I cannot do that", "speaker": "HAL"}]', {}, False),
    # Code says what the program does.
    ('Here is the fix:\n```python\nif not ok:\n    raise RuntimeError("unable to connect")\n```', {}, False),
    ("Set `on_error: unable to acquire lock` in the config.", {}, False),
    ("~~~\nI cannot open file\n~~~\nThat log line means the path is wrong.", {}, False),
    # Words quoted from the user or a document are theirs.
    ('You wrote "I can\'t log in". Reset your password at /reset.', {}, False),
    ("Le client a écrit « je ne sais pas » ; the error “unable to verify” means the card expired.", {}, False),
    ("> I don't know how to export my data\n\nGo to Settings > Export.", {}, False),
    # The model's own hedging beside any of these still escalates.
    ('I am not sure, but here: {"a": 1}', {}, True),
    ('I\'m not sure this is right:\n```python\nprint("hi")\n```', {}, True),
    ('You wrote "help". As an AI, I cannot give legal advice.', {}, True),
    ('{"answer": 42}\nI\'m not sure about the units.', {}, True),
]


@pytest.mark.parametrize(("answer", "spec", "escalates"), PROSE)
def test_hedging_reads_the_prose_of_an_answer(answer, spec, escalates):
    assert (verdict(answer, spec) is not None) is escalates, verdict(answer, spec)
