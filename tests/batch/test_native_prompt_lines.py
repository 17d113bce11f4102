"""Bedrock batch lines in Amazon Titan Text's own InvokeModel body (`inputText`, `textGenerationConfig`) and Mistral
AI's text-completion body (`prompt`, `max_tokens`, `top_k`, `stop`): validated and priced from their prompt, sent as
written to their own model's job (an InvokeModel job, where the model's other lines go in a Converse one), and refused
naming their own family wherever they cannot be carried exactly."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from helpers.batch_records import records
from tokenomy.batch.anthropic_backend import request_params
from tokenomy.batch.bedrock_bodies import model_input, part_invocation_type
from tokenomy.batch.local_runner import to_request
from tokenomy.batch.openai_backend import request_body
from tokenomy.batch.record_tokens import estimate_tokens
from tokenomy.batch.validate import validate_file
from tokenomy.errors import UsageError

TITAN = "amazon.titan-text-express-v1"
MISTRAL = "mistral.mistral-7b-instruct-v0:2"
LLAMA = "meta.llama3-1-8b-instruct-v1:0"
CLAUDE = "anthropic.claude-3-haiku-20240307-v1:0"
NOVA = "amazon.nova-lite-v1:0"


def titan_line(rid: str, question: str, **config) -> str:
    body = {"inputText": f"User: {question}\nBot:", "textGenerationConfig": {"maxTokenCount": 40, **config}}
    return json.dumps({"recordId": rid, "modelInput": body})


def mistral_line(rid: str, question: str, **params) -> str:
    body = {"prompt": f"<s>[INST] {question} [/INST]", "max_tokens": 40, "temperature": 0.3, **params}
    return json.dumps({"recordId": rid, "modelInput": body})


def messages_line(rid: str) -> str:
    return json.dumps({"recordId": rid, "modelInput": {"messages": [{"role": "user", "content": [{"text": "hi"}]}]}})


def lines_file(tmp_path: Path, lines: list[str]) -> Path:
    path = tmp_path / "native.jsonl"
    path.write_text("\n".join(lines) + "\n")
    return path


@pytest.mark.parametrize(
    ("model", "lines", "field"),
    [
        (TITAN, [titan_line("r1", "What is a token?"), titan_line("r2", "A river?", temperature=0.5)], "inputText"),
        (MISTRAL, [mistral_line("r1", "What is a token?"), mistral_line("r2", "Name a river.", top_k=20)], "prompt"),
    ],
)
def test_a_prompt_line_for_its_own_model_is_validated_from_its_prompt_and_sent_as_written(
    tmp_path, model, lines, field
) -> None:
    # A Titan line was refused as `modelInput.messages: messages must be a non-empty list`; a Mistral one as a Llama
    # prompt a Mistral model's job would have to rebuild.
    path = lines_file(tmp_path, lines)
    for backend in ("bedrock", None):
        report = validate_file(path, model, backend=backend)
        assert report.bad == [] and len(report.records) == 2, report.bad
        prompts = [json.loads(line)["modelInput"][field] for line in lines]
        assert report.input_tokens == sum(estimate_tokens(p) for p in prompts)
        assert report.output_tokens == 80  # each line's own cap (maxTokenCount, max_tokens)
    recs = records(lines)
    for rec, line in zip(recs, lines, strict=True):
        written = json.loads(line)["modelInput"]
        assert model_input(model, rec) == written and list(model_input(model, rec)) == list(written)
    assert part_invocation_type(model, recs) == "InvokeModel"  # the job that takes a native body
    assert part_invocation_type(model, records([messages_line("m1")])) == "Converse"  # as before


def test_a_titan_temperature_out_of_range_or_a_second_cap_is_named_where_the_line_has_it(tmp_path) -> None:
    path = lines_file(tmp_path, [titan_line("r1", "hi", temperature=1.5)])
    [bad] = validate_file(path, TITAN, backend="bedrock").bad
    assert bad.field == "modelInput.textGenerationConfig.temperature" and "from 0 to 1" in bad.reason
    line = {"recordId": "r1", "modelInput": {"inputText": "hi", "max_tokens": 9}}
    path.write_text(json.dumps(line) + "\n")
    [bad] = validate_file(path, TITAN, backend="bedrock").bad
    assert bad.field == "modelInput.max_tokens"
    assert "a Titan body takes its cap in modelInput.textGenerationConfig.maxTokenCount" in bad.reason


@pytest.mark.parametrize(
    ("line", "field", "name", "others"),
    [
        (titan_line("r1", "hi"), "modelInput.inputText", "Titan Text", (CLAUDE, NOVA, LLAMA, MISTRAL)),
        (mistral_line("r1", "hi"), "modelInput.prompt", "Mistral", (CLAUDE, NOVA, LLAMA, TITAN)),
    ],
)
def test_a_prompt_line_for_another_model_or_backend_is_refused_naming_its_own_family(
    tmp_path, line, field, name, others
) -> None:
    path = lines_file(tmp_path, [line])
    own = TITAN if name == "Titan Text" else MISTRAL
    cases = [(model, backend) for model in others for backend in ("bedrock", None)]
    cases += [(own, backend) for backend in ("local", "openai", "anthropic", "gemini")]
    for model, backend in cases:
        report = validate_file(path, model, backend=backend)
        assert report.records == [], (model, backend)
        [bad] = report.bad
        assert (bad.line, bad.field) == (1, field), (model, backend, bad)
        assert f"this {name} prompt" in bad.reason and "Llama prompt" not in bad.reason, bad.reason
        assert f"use a {name} model on Bedrock (--backend bedrock --model " in bad.reason, bad.reason
    builders = [lambda: model_input(CLAUDE, rec), lambda: model_input(LLAMA, rec), lambda: to_request(rec, own)]
    builders += [lambda: request_body("gpt-4o-mini", rec), lambda: request_params("claude-haiku-4-5", rec)]
    [rec] = records([line])
    for build in builders:  # the guard for a record that reached a builder without validate
        with pytest.raises(UsageError, match=rf"record 'r1' \(line 1\): {field}: .*this {name} prompt"):
            build()


def test_a_file_mixing_prompt_lines_and_messages_for_one_model_refuses_the_fewer_kind(tmp_path) -> None:
    # A job takes one invocation type: a Mistral prompt in a Converse job (or messages in an InvokeModel one) fails.
    lines = [mistral_line("p1", "a"), mistral_line("p2", "b"), messages_line("m1")]
    path = lines_file(tmp_path, lines)
    report = validate_file(path, MISTRAL, backend="bedrock")
    assert [r.id for r in report.records] == ["p1", "p2"]
    [bad] = report.bad
    assert bad.line == 3 and "2 Mistral prompt line(s)" in bad.reason and "1 other line(s)" in bad.reason
    path = lines_file(tmp_path, [*lines[:1], messages_line("m1"), messages_line("m2")])
    report = validate_file(path, MISTRAL)
    assert [r.id for r in report.records] == ["m1", "m2"]
    assert [(b.line, b.field) for b in report.bad] == [(1, "modelInput.prompt")]
    with pytest.raises(UsageError, match=r"takes one kind of body.*put each kind in a file of its own"):
        part_invocation_type(MISTRAL, records(lines))


def test_a_prompt_that_is_not_text_or_sits_beside_messages_is_named() -> None:
    from tokenomy.batch.formats import read_records

    hi = [{"role": "user", "content": "hi"}]
    good, bad = read_records(
        [
            json.dumps({"recordId": "a", "modelInput": {"inputText": 5}}),
            json.dumps({"recordId": "b", "modelInput": {"inputText": "hi", "messages": hi}}),
            json.dumps({"recordId": "c", "modelInput": {"inputText": "hi", "textGenerationConfig": [1]}}),
            json.dumps({"recordId": "d", "modelInput": {"prompt": "[INST] hi [/INST]", "messages": hi}}),
        ]
    )
    assert good == []
    fields = [(b.line, b.field) for b in bad]
    assert fields == [
        (1, "modelInput.inputText"),
        (2, "modelInput.inputText"),
        (3, "modelInput.textGenerationConfig"),
        (4, "modelInput.prompt"),
    ]
    assert bad[0].reason == "must be text, not 5; write the prompt as a JSON string"
    assert "both inputText and messages" in bad[1].reason and "a Titan body takes inputText" in bad[1].reason
    assert "a Mistral body takes prompt" in bad[3].reason
