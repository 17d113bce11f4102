"""Cascade validators on real-looking answers: a false positive escalates a good cheap answer (paid twice for
nothing), a false negative passes a bad one. Each row: an answer, the validators, whether the cascade escalates."""

from __future__ import annotations

import pytest

from tokenomy.chat_response import ChatResponse, Usage
from tokenomy.messages import ChatRequest, TextBlock, ToolUseBlock
from tokenomy.request_options import ResponseFormat
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
    ("As a large language model, I have no personal opinions.", True),
    ("As a language model, I can only offer general information.", True),
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


def test_a_hedge_beside_a_tool_call_is_the_model_acting_and_a_malformed_call_is_still_rejected():
    """The hedge check judged the text beside a tool call: "I'm not sure, let me check the weather tool" and a valid
    call was escalated. A call is the model acting on its doubt; only its arguments are judged."""
    from tokenomy.request_options import ToolSpec

    schema = {"type": "object", "properties": {"city": {"type": "string"}}, "required": ["city"]}
    request = ChatRequest.simple("Weather in Paris?", tools=[ToolSpec("get_weather", input_schema=schema)])
    preamble = TextBlock("I'm not sure, let me check the weather tool.")

    def judged(call: ToolUseBlock) -> str | None:
        return validate(ChatResponse([preamble, call], "m", "p", Usage(), finish_reason="tool_calls"), request, {})

    assert judged(ToolUseBlock("1", "get_weather", {"city": "Paris"}, '{"city": "Paris"}')) is None
    assert judged(ToolUseBlock("1", "get_weather", None, '{"city": ')).startswith("malformed tool call")
    assert judged(ToolUseBlock("1", "get_weather", {"town": "Paris"}, '{"town": "Paris"}')).startswith(
        "schema-invalid tool call"
    )
    offered = "tool call to 'get_time', a tool the request did not offer"
    assert judged(ToolUseBlock("1", "get_time", {}, "{}")) == offered
    text_only = ChatResponse([preamble], "m", "p", Usage())
    assert validate(text_only, request, {}) == 'hedging language: "i\'m not sure"'


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


ARITHMETIC = [
    # Right worked steps, as GSM8K answers write them: pass.
    ("The total cost is 1,350 + 6 * 350 = 1,350 + 2,100 = $3,450.", None),
    ("Sally spends 8 + 3 * 8 = $8 + $24 = $32.", None),
    ("Ali has 4 x $10 + 6 x $20 = $40 + $120 = $160 in total.", None),
    ("His bill is $50 - 10% * $50 = $50 - $5 = $45.", None),
    ("Cross-multiplying, we get:\n240 * 100% = 40 * Total students", None),
    ("We have the equation:\n\nx * 4 + 8 = 40\n\nso x * 4 = 32 and x = 8.", None),
    ("The temperature was -6 + 3 = -3 degrees Celsius.", None),
    ("For 16 miles it eats 16 \\* 1/2 = 8 bales of hay.", None),
    ("The remoras are 0.1 * 100 = 10% of the shark's length.", None),
    ("He spent 500 * $.5 * 7 = $<<500*.5*7=1750>>1750.", None),
    ("- 5 * 3 = 15 apples\n- 15 + 2 = 17 apples", None),
    ("The total was 3 + 4 = 7. 5 * 2 = 10, so 7 + 10 = 17.", None),
    # Mixed numbers, clock times and ratios are not the numbers the pattern reads.
    ("She walks 1 1/2 + 2 = 3.5 miles.", None),
    ("From 1:30 + 45 minutes = 2:15 pm.", None),
    ("It starts at 1:30 + 45 = 2:15 pm.", None),
    ("The ratio 3:2 + 1 = 4 parts.", None),
    # Wrong ones still escalate.
    ("She earns 12 * 3 = 35 dollars.", "12 * 3 = 35"),
    ("5 * 4 = 20, and 20 / 2 = 11", "20 / 2 = 11"),
    ("The football team ate 80/100 \\* 2 \\* 20 = 64 pizzas.", "80/100 * 2 * 20 = 64"),
    ("- 5 * 3 = 16 apples", "5 * 3 = 16"),
    ("The total was 3 + 4 = 7. 5 * 2 = 12.", "5 * 2 = 12"),
    ("Subtracting, -6 + 3 = -9 degrees.", "-6 + 3 = -9"),
    ("It is 0.2 * 40 = 80%.", "0.2 * 40 = 80%"),
]


@pytest.mark.parametrize(("answer", "wrong"), ARITHMETIC)
def test_arithmetic_checks_whole_calculations(answer, wrong):
    assert verdict(answer, {"arithmetic": True, "hedging": False}) == (wrong and f"wrong arithmetic: {wrong}")


@pytest.mark.parametrize(("finish_reason", "escalates"), [("stop", False), ("length", True), ("content_filter", True)])
def test_an_answer_cut_short_escalates(finish_reason, escalates):
    # A content filter stops an answer part-way as a token cap does: what the caller would get is not the answer.
    answer = ChatResponse.of_text("The steps are: 1. Open the", "m", "p", Usage(), finish_reason=finish_reason)
    assert (validate(answer, REQUEST, {}) is not None) is escalates
    assert validate(answer, REQUEST, {"truncated": False}) is None


JSON_ANSWERS = [
    ('{"name": "Tom", "age": 31}', None),
    ('```json\n{"name": "Tom"}\n```', None),
    ('```JSON\n{"name": "Tom"}\n```', None),
    ('```\n{"name": "Tom"}\n```\n', None),
    ('{"name": "Tom", "note": "unable to verify age"}', None),
    ('{"nom": "Tom"}', "missing required fields: name"),
    ("Tom is the name.", "invalid JSON"),
    ('Here is the JSON:\n```json\n{"name": "Tom"}\n```', "invalid JSON"),
    ('{"name": "Tom",}', "invalid JSON"),
]


@pytest.mark.parametrize(("answer", "problem"), JSON_ANSWERS)
def test_json_answers(answer, problem):
    found = verdict(answer, {"json": True, "required": ["name"]})
    assert found == problem if problem is None else found.startswith(problem), found


FENCED = ['```json\n{"name": "Tom"}\n```', '```\n{"name": "Tom"}\n```\n', '```JSON\n{"name": "Tom"}\n```']


@pytest.mark.parametrize("answer", FENCED)
@pytest.mark.parametrize(
    "fmt",
    [ResponseFormat("json_object"), ResponseFormat("json_schema", schema={"type": "object", "required": ["name"]})],
)
def test_a_fenced_answer_to_a_caller_who_asked_for_json_is_malformed(answer, fmt):
    """A caller's response_format means it parses the answer as it comes (json.loads): a fenced block passed as valid
    JSON, and the caller's parser failed on the cheap tier's answer. It is now rejected, the route's own `json`
    validator set or not; that validator alone, chosen by the route's author for prompts that ask for JSON in words,
    still reads a fenced block (the rows of JSON_ANSWERS), as models fence such JSON and the strong tier would too."""
    request = ChatRequest.simple("Name as JSON.", response_format=fmt)
    for spec in ({}, {"json": True}):
        found = validate(ChatResponse.of_text(answer, "m", "p", Usage()), request, spec)
        assert found is not None and found.startswith("invalid JSON: a fenced code block"), found
    bare = validate(ChatResponse.of_text(' {"name": "Tom"}\n', "m", "p", Usage()), request, {"json": True})
    assert bare is None


@pytest.mark.parametrize("constant", ["NaN", "Infinity", "-Infinity"])
def test_nan_and_infinity_are_no_json(constant):
    """Python's json.loads reads NaN and Infinity, which JSON (RFC 8259) has not: the answer passed the JSON check,
    and a caller's strict parser (JavaScript's JSON.parse, Go's encoding/json) failed on the cheap tier's answer."""
    answer = ChatResponse.of_text(f'{{"score": {constant}}}', "m", "p", Usage())
    for request, spec in (
        (ChatRequest.simple("Score as JSON.", response_format=ResponseFormat("json_object")), {}),
        (ChatRequest.simple("Score as JSON."), {"json": True}),
    ):
        found = validate(answer, request, spec)
        assert found is not None and found.startswith(f"invalid JSON: {constant}"), found
    fine = ChatResponse.of_text('{"score": 1e308, "name": "NaN"}', "m", "p", Usage())
    assert validate(fine, ChatRequest.simple("Score as JSON."), {"json": True}) is None


def test_a_tool_schema_whose_ref_cannot_be_resolved_judges_the_call_without_it():
    # A tool's schema pointing at a $defs entry it lacks raised out of the validators (a 500 after a paid answer).
    from tokenomy.request_options import ToolSpec

    schema = {"type": "object", "properties": {"q": {"$ref": "#/$defs/Query"}}}
    request = ChatRequest.simple("Look it up.", tools=[ToolSpec("lookup", input_schema=schema)])
    call = ToolUseBlock("1", "lookup", {"q": "x"}, '{"q": "x"}')
    answer = ChatResponse([call], "m", "p", Usage(), finish_reason="tool_calls")
    assert validate(answer, request, {}) is None
    malformed = ChatResponse([ToolUseBlock("1", "lookup", None, "[1]")], "m", "p", Usage(), finish_reason="tool_calls")
    assert "not a JSON object" in validate(malformed, request, {})
