"""Every key a plain batch record takes reaches every backend's request body, in that provider's own field, or the
line is refused naming it: nothing a caller wrote is dropped on the way to a provider."""

from __future__ import annotations

import json

from helpers.batch_records import records
from tokenomy.batch.bedrock_bodies import model_input
from tokenomy.batch.formats import PLAIN_KEYS, read_records
from tokenomy.batch.gemini_backend import inline_request
from tokenomy.batch.local_runner import to_request
from tokenomy.batch.openai_backend import request_body
from tokenomy.batch.vertex_backend import vertex_request

CLAUDE = "anthropic.claude-3-haiku-20240307-v1:0"
NOVA = "amazon.nova-lite-v1:0"
LLAMA = "meta.llama3-8b-instruct-v1:0"
MISTRAL = "mistral.mistral-large-2407-v1:0"  # sent as a Converse job


def test_temperature_of_a_plain_record_reaches_every_backends_body() -> None:
    # Only the local runner sent it; OpenAI, Bedrock, Gemini and Vertex bodies went without it. 0 is a temperature.
    for temperature in (0, 0.7):
        [rec] = records([json.dumps({"id": "1", "prompt": "hi", "temperature": temperature})])
        assert request_body("gpt-4o-mini", rec)["temperature"] == temperature
        assert model_input(CLAUDE, rec)["temperature"] == temperature
        assert model_input(NOVA, rec)["inferenceConfig"]["temperature"] == temperature
        assert model_input(LLAMA, rec)["temperature"] == temperature
        assert model_input(MISTRAL, rec)["inferenceConfig"]["temperature"] == temperature
        assert inline_request(rec)["config"]["temperature"] == temperature
        assert vertex_request(rec)["generationConfig"]["temperature"] == temperature
        assert to_request(rec, "local").temperature == temperature


def test_a_record_without_temperature_sends_none_so_the_provider_default_holds() -> None:
    [rec] = records(['{"id": "1", "prompt": "hi"}'])
    assert "temperature" not in request_body("gpt-4o-mini", rec)
    assert "temperature" not in model_input(CLAUDE, rec) and "temperature" not in model_input(LLAMA, rec)
    assert "temperature" not in model_input(NOVA, rec)["inferenceConfig"]
    assert "temperature" not in model_input(MISTRAL, rec)["inferenceConfig"]
    assert "temperature" not in inline_request(rec).get("config", {})
    assert "generationConfig" not in vertex_request(rec)


def test_every_plain_key_reaches_every_backends_body() -> None:
    # A new key in PLAIN_KEYS must be given a place in every body: this test names the ones it knows.
    assert set(PLAIN_KEYS) == {"id", "prompt", "messages", "system", "max_tokens", "temperature"}
    [rec] = records(['{"id": "q1", "prompt": "hello there", "system": "be brief", "max_tokens": 9, '
                     '"temperature": 0.5}'])
    openai = request_body("gpt-4o-mini", rec)
    assert openai["messages"] == [{"role": "system", "content": "be brief"}, {"role": "user", "content": "hello there"}]
    assert (openai["max_completion_tokens"], openai["temperature"]) == (9, 0.5)
    claude = model_input(CLAUDE, rec)
    assert (claude["system"], claude["max_tokens"], claude["temperature"]) == ("be brief", 9, 0.5)
    assert claude["messages"] == [{"role": "user", "content": [{"type": "text", "text": "hello there"}]}]
    nova = model_input(NOVA, rec)
    assert nova["system"] == [{"text": "be brief"}] and nova["inferenceConfig"] == {"max_new_tokens": 9,
                                                                                     "temperature": 0.5}
    llama = model_input(LLAMA, rec)
    assert "be brief" in llama["prompt"] and "hello there" in llama["prompt"]
    assert (llama["max_gen_len"], llama["temperature"]) == (9, 0.5)
    converse = model_input(MISTRAL, rec)
    assert converse["system"] == [{"text": "be brief"}] and converse["inferenceConfig"] == {"maxTokens": 9,
                                                                                            "temperature": 0.5}
    inline = inline_request(rec)
    assert inline["config"] == {"system_instruction": "be brief", "max_output_tokens": 9, "temperature": 0.5}
    assert inline["metadata"] == {"key": "q1"} and inline["contents"][0]["parts"] == [{"text": "hello there"}]
    vertex = vertex_request(rec)
    assert vertex["systemInstruction"] == {"parts": [{"text": "be brief"}]}
    assert vertex["generationConfig"] == {"maxOutputTokens": 9, "temperature": 0.5}
    local = to_request(rec, "local")
    assert (local.system, local.max_tokens, local.temperature) == ("be brief", 9, 0.5)


def test_a_temperature_that_is_not_a_number_is_named_not_sent() -> None:
    good, bad = read_records(['{"id": "a", "prompt": "hi", "temperature": "hot"}',
                              '{"id": "b", "prompt": "hi", "temperature": true}',
                              '{"id": "c", "prompt": "hi", "temperature": -1}',
                              '{"id": "d", "prompt": "hi", "temperature": 1}'])
    assert [r.id for r in good] == ["d"]
    assert [(b.line, b.field) for b in bad] == [(1, "temperature"), (2, "temperature"), (3, "temperature")]
    reasons = [f"must be a number 0 or more, e.g. 0.7, not {v}" for v in ('"hot"', "true", "-1")]
    assert [b.reason for b in bad] == reasons


def test_a_converse_body_temperature_reaches_the_local_runner() -> None:
    # The runner read only a top-level `temperature`; a Converse body keeps it in inferenceConfig.
    [rec] = records(['{"recordId": "1", "modelInput": {"messages": [{"role": "user", "content": [{"text": "hi"}]}], '
                     '"inferenceConfig": {"maxTokens": 5, "temperature": 0.2}}}'])
    assert to_request(rec, "local").temperature == 0.2


def test_a_message_key_or_content_part_a_plain_record_cannot_send_is_named_not_dropped() -> None:
    # Only each message's role and text were kept: `name`, an image part or a cache_control went nowhere, unsaid.
    def line(rid: str, messages: list, **extra) -> str:
        return json.dumps({"id": rid, "messages": messages, **extra})

    hi = {"role": "user", "content": "hi"}
    good, bad = read_records([
        line("a", [{"role": "user", "content": "hi", "name": "x"}]),
        line("b", [hi, {"role": "assistant", "content": "yo", "tool_calls": []}]),
        line("c", [{"role": "user", "content": [{"type": "text", "text": "hi"},
                                                {"type": "image_url", "image_url": {"url": "http://x/y.png"}}]}]),
        line("d", [{"role": "user", "content": [{"type": "text", "text": "hi",
                                                 "cache_control": {"type": "ephemeral"}}]}]),
        line("e", [{"role": "user", "content": [{"text": 5}]}]),
        line("f", [hi, {"role": "tool", "content": "42"}]),
        line("g", [hi], system=[{"type": "text", "text": "be brief", "cache_control": {"type": "ephemeral"}}]),
        line("h", [{"role": "user", "content": [{"type": "text", "text": "hi "}, {"text": "there"}]}],
             system=[{"type": "text", "text": "be brief"}]),
    ])
    assert [r.id for r in good] == ["h"]
    assert good[0].messages == [{"role": "user", "content": "hi there"}] and good[0].system == "be brief"
    assert [(b.line, b.field) for b in bad] == [
        (1, "messages[0].name"), (2, "messages[1].tool_calls"), (3, "messages[0].content[1].type"),
        (4, "messages[0].content[0].cache_control"), (5, "messages[0].content[0].text"), (6, "messages[1].role"),
        (7, "system[0].cache_control"),
    ]
    assert bad[0].reason == ("not a key of a plain record's message (role, content); remove it, or write the line as "
                             "an OpenAI batch line (custom_id, method, url, body) for an OpenAI batch")
    assert bad[2].reason == ("'image_url' parts are not sent from a plain record (text parts only); remove it, or "
                             "write the line as an OpenAI batch line (custom_id, method, url, body) for an OpenAI "
                             "batch")
    assert bad[4].reason == "must be text, not 5"
    assert bad[5].reason == "'tool' is not a role of a plain record's message; use user, assistant or system"


def test_an_openai_or_bedrock_line_keeps_its_messages_whole_for_its_own_backend() -> None:
    # Those lines go to their own provider as written (names, image parts and all), so their messages are not refused.
    message = {"role": "user", "name": "x", "content": [{"type": "text", "text": "hi"},
                                                         {"type": "image_url", "image_url": {"url": "http://x/y.png"}}]}
    [rec] = records([json.dumps({"custom_id": "1", "method": "POST", "url": "/v1/chat/completions",
                                 "body": {"messages": [message]}})])
    assert request_body("gpt-4o-mini", rec)["messages"] == [message]


def test_a_bedrock_inference_config_that_is_not_an_object_is_a_bad_line_not_a_crash() -> None:
    # `inference.get` raised AttributeError out of read_records: no line named, the rest of the file unread.
    good, bad = read_records(['{"recordId": "1", "modelInput": {"inferenceConfig": [1], '
                              '"messages": [{"role": "user", "content": "hi"}]}}',
                              '{"id": "2", "prompt": "hi"}'])
    assert [r.id for r in good] == ["2"]
    assert [(b.line, b.field, b.reason) for b in bad] == [
        (1, "modelInput.inferenceConfig", "must be an object, not [1]")]
