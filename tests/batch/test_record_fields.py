"""Every key a plain batch record takes reaches every backend's request body, in that provider's own field, or the
line is refused naming it: nothing a caller wrote is dropped on the way to a provider."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from datetime import UTC, datetime, time
from pathlib import Path

import pytest

from helpers.batch_records import records
from tokenomy.batch.bedrock_bodies import model_input
from tokenomy.batch.conversion import CARRIED
from tokenomy.batch.formats import read_records
from tokenomy.batch.gemini_backend import inline_request
from tokenomy.batch.line_forms import PLAIN_KEYS
from tokenomy.batch.local_runner import to_request
from tokenomy.batch.openai_backend import request_body
from tokenomy.batch.plan import plan_deadline
from tokenomy.batch.validate import validate_file
from tokenomy.batch.vertex_backend import vertex_request
from tokenomy.emulate.instant_openai import InstantOpenAI
from tokenomy.errors import UsageError

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
    assert "temperature" not in model_input(NOVA, rec).get("inferenceConfig", {})
    assert "temperature" not in model_input(MISTRAL, rec).get("inferenceConfig", {})
    assert "temperature" not in inline_request(rec).get("config", {})
    assert "generationConfig" not in vertex_request(rec)


def test_every_plain_key_reaches_every_backends_body() -> None:
    # A new key in PLAIN_KEYS must be given a place in every body: this test names the ones it knows.
    assert set(PLAIN_KEYS) == {"id", "prompt", "messages", "system", "max_tokens", "temperature"}
    [rec] = records(
        ['{"id": "q1", "prompt": "hello there", "system": "be brief", "max_tokens": 9, "temperature": 0.5}']
    )
    openai = request_body("gpt-4o-mini", rec)
    assert openai["messages"] == [{"role": "system", "content": "be brief"}, {"role": "user", "content": "hello there"}]
    assert (openai["max_completion_tokens"], openai["temperature"]) == (9, 0.5)
    claude = model_input(CLAUDE, rec)
    assert (claude["system"], claude["max_tokens"], claude["temperature"]) == ("be brief", 9, 0.5)
    assert claude["messages"] == [{"role": "user", "content": [{"type": "text", "text": "hello there"}]}]
    nova = model_input(NOVA, rec)
    assert nova["system"] == [{"text": "be brief"}] and nova["inferenceConfig"] == {
        "max_new_tokens": 9,
        "temperature": 0.5,
    }
    llama = model_input(LLAMA, rec)
    assert "be brief" in llama["prompt"] and "hello there" in llama["prompt"]
    assert (llama["max_gen_len"], llama["temperature"]) == (9, 0.5)
    converse = model_input(MISTRAL, rec)
    assert converse["system"] == [{"text": "be brief"}] and converse["inferenceConfig"] == {
        "maxTokens": 9,
        "temperature": 0.5,
    }
    inline = inline_request(rec)
    assert inline["config"] == {"system_instruction": "be brief", "max_output_tokens": 9, "temperature": 0.5}
    assert inline["metadata"] == {"key": "q1"} and inline["contents"][0]["parts"] == [{"text": "hello there"}]
    vertex = vertex_request(rec)
    assert vertex["systemInstruction"] == {"parts": [{"text": "be brief"}]}
    assert vertex["generationConfig"] == {"maxOutputTokens": 9, "temperature": 0.5}
    local = to_request(rec, "local")
    assert (local.system, local.max_tokens, local.temperature) == ("be brief", 9, 0.5)


def test_a_temperature_that_is_not_a_number_is_named_not_sent() -> None:
    good, bad = read_records(
        [
            '{"id": "a", "prompt": "hi", "temperature": "hot"}',
            '{"id": "b", "prompt": "hi", "temperature": true}',
            '{"id": "c", "prompt": "hi", "temperature": -1}',
            '{"id": "d", "prompt": "hi", "temperature": 1}',
        ]
    )
    assert [r.id for r in good] == ["d"]
    assert [(b.line, b.field) for b in bad] == [(1, "temperature"), (2, "temperature"), (3, "temperature")]
    reasons = [f"must be a number 0 or more, e.g. 0.7, not {v}" for v in ('"hot"', "true", "-1")]
    assert [b.reason for b in bad] == reasons


def test_a_converse_body_temperature_reaches_the_local_runner() -> None:
    # The runner read only a top-level `temperature`; a Converse body keeps it in inferenceConfig.
    [rec] = records(
        [
            '{"recordId": "1", "modelInput": {"messages": [{"role": "user", "content": [{"text": "hi"}]}], '
            '"inferenceConfig": {"maxTokens": 5, "temperature": 0.2}}}'
        ]
    )
    assert to_request(rec, "local").temperature == 0.2


def test_a_message_key_or_content_part_a_plain_record_cannot_send_is_named_not_dropped() -> None:
    # Only each message's role and text were kept: `name`, an image part or a cache_control went nowhere, unsaid.
    def line(rid: str, messages: list, **extra) -> str:
        return json.dumps({"id": rid, "messages": messages, **extra})

    hi = {"role": "user", "content": "hi"}
    good, bad = read_records(
        [
            line("a", [{"role": "user", "content": "hi", "name": "x"}]),
            line("b", [hi, {"role": "assistant", "content": "yo", "tool_calls": []}]),
            line(
                "c",
                [
                    {
                        "role": "user",
                        "content": [
                            {"type": "text", "text": "hi"},
                            {"type": "image_url", "image_url": {"url": "http://x/y.png"}},
                        ],
                    }
                ],
            ),
            line(
                "d",
                [{"role": "user", "content": [{"type": "text", "text": "hi", "cache_control": {"type": "ephemeral"}}]}],
            ),
            line("e", [{"role": "user", "content": [{"text": 5}]}]),
            line("f", [hi, {"role": "tool", "content": "42"}]),
            line("g", [hi], system=[{"type": "text", "text": "be brief", "cache_control": {"type": "ephemeral"}}]),
            line(
                "h",
                [{"role": "user", "content": [{"type": "text", "text": "hi "}, {"text": "there"}]}],
                system=[{"type": "text", "text": "be brief"}],
            ),
        ]
    )
    assert [r.id for r in good] == ["h"]
    assert good[0].messages == [{"role": "user", "content": "hi there"}] and good[0].system == "be brief"
    assert [(b.line, b.field) for b in bad] == [
        (1, "messages[0].name"),
        (2, "messages[1].tool_calls"),
        (3, "messages[0].content[1].type"),
        (4, "messages[0].content[0].cache_control"),
        (5, "messages[0].content[0].text"),
        (6, "messages[1].role"),
        (7, "system[0].cache_control"),
    ]
    assert bad[0].reason == (
        "not a key of a plain record's message (role, content); remove it, or write the line as "
        "an OpenAI batch line (custom_id, method, url, body) for an OpenAI batch"
    )
    assert bad[2].reason == (
        "'image_url' parts are not sent from a plain record (text parts only); remove it, or "
        "write the line as an OpenAI batch line (custom_id, method, url, body) for an OpenAI "
        "batch"
    )
    assert bad[4].reason == "must be text, not 5"
    assert bad[5].reason == "'tool' is not a role of a plain record's message; use user, assistant or system"


def test_an_openai_or_bedrock_line_keeps_its_messages_whole_for_its_own_backend() -> None:
    # Those lines go to their own provider as written (names, image parts and all), so their messages are not refused.
    message = {
        "role": "user",
        "name": "x",
        "content": [{"type": "text", "text": "hi"}, {"type": "image_url", "image_url": {"url": "http://x/y.png"}}],
    }
    [rec] = records(
        [
            json.dumps(
                {"custom_id": "1", "method": "POST", "url": "/v1/chat/completions", "body": {"messages": [message]}}
            )
        ]
    )
    assert request_body("gpt-4o-mini", rec)["messages"] == [message]


def test_a_bedrock_inference_config_that_is_not_an_object_is_a_bad_line_not_a_crash() -> None:
    # `inference.get` raised AttributeError out of read_records: no line named, the rest of the file unread.
    good, bad = read_records(
        [
            '{"recordId": "1", "modelInput": {"inferenceConfig": [1], '
            '"messages": [{"role": "user", "content": "hi"}]}}',
            '{"id": "2", "prompt": "hi"}',
        ]
    )
    assert [r.id for r in good] == ["2"]
    assert [(b.line, b.field, b.reason) for b in bad] == [
        (1, "modelInput.inferenceConfig", "must be an object, not [1]")
    ]


OPENAI_LINE = {"custom_id": "1", "method": "POST", "url": "/v1/chat/completions"}


def openai_line(rid: str, body: dict) -> str:
    return json.dumps({**OPENAI_LINE, "custom_id": rid, "body": body})


def bedrock_line(rid: str, body: dict) -> str:
    return json.dumps({"recordId": rid, "modelInput": body})


def lines_file(tmp_path, lines: list[str]):
    path = tmp_path / "in.jsonl"
    path.write_text("\n".join(lines) + "\n")
    return path


def test_an_openai_line_rebuilt_for_another_backend_names_each_key_it_would_not_send(tmp_path) -> None:
    # Sent to Bedrock, Gemini, Vertex or local, an OpenAI line kept its messages, max_tokens and temperature only:
    # top_p, stop, seed, response_format, tools, a message's name and an image part were dropped, unsaid.
    hi = {"role": "user", "content": "hi"}
    image = {"type": "image_url", "image_url": {"url": "http://x/y.png"}}
    path = lines_file(
        tmp_path,
        [
            openai_line("a", {"messages": [hi], "top_p": 0.1}),
            openai_line("b", {"messages": [hi], "stop": ["x"]}),
            openai_line("c", {"messages": [hi], "seed": 1}),
            openai_line("d", {"messages": [hi], "response_format": {"type": "json_object"}}),
            openai_line("e", {"messages": [hi], "tools": []}),
            openai_line("f", {"messages": [{"role": "user", "content": "hi", "name": "x"}]}),
            openai_line("g", {"messages": [{"role": "user", "content": [{"type": "text", "text": "hi"}, image]}]}),
            openai_line("i", {"messages": [{"role": "user", "content": [{"type": "text", "text": "hi"}, "there"]}]}),
            openai_line(
                "h",
                {
                    "model": "gpt-4o-mini",
                    "messages": [
                        {"role": "system", "content": "be brief"},
                        {"role": "user", "content": [{"type": "text", "text": "hi"}]},
                    ],
                    "max_tokens": 5,
                    "temperature": 0,
                },
            ),
        ],
    )
    fields = [
        (1, "body.top_p"),
        (2, "body.stop"),
        (3, "body.seed"),
        (4, "body.response_format"),
        (5, "body.tools"),
        (6, "body.messages[0].name"),
        (7, "body.messages[0].content[1].type"),
        (8, "body.messages[0].content[1]"),
    ]
    for backend, model in (
        ("gemini", "gemini-2.0-flash"),
        ("vertex", "gemini-2.0-flash"),
        ("local", "gpt-4o-mini"),
        ("bedrock", CLAUDE),
        ("bedrock", MISTRAL),
    ):
        report = validate_file(path, model, backend=backend)
        assert [(b.line, b.field) for b in report.bad] == fields, (backend, model)
        assert [r.id for r in report.records] == ["h"]
    report = validate_file(path, CLAUDE, backend="bedrock")
    assert report.bad[0].reason == (
        "--backend bedrock rebuilds an OpenAI batch line from its messages (role and text), max_tokens and "
        "temperature, so this key would not be sent; remove it, or send the line with --backend openai or azure"
    )
    assert report.bad[6].reason.startswith("'image_url' parts are not sent: --backend bedrock rebuilds")
    for backend in ("openai", "azure"):  # sent as written: every key reaches the provider
        assert not validate_file(path, "gpt-4o-mini", backend=backend).bad
    assert not validate_file(path, "gpt-4o-mini").bad  # no backend named: nothing to check against


def test_a_bedrock_line_rebuilt_for_another_body_or_backend_names_each_key_it_would_not_send(tmp_path) -> None:
    # A Converse body sent to an InvokeModel job (Claude), or any Bedrock line sent to OpenAI, Gemini, Vertex or
    # local, was rebuilt from its messages: topP, stopSequences, top_k and the like were dropped, unsaid.
    hi = {"role": "user", "content": [{"text": "hi"}]}
    claude_hi = {"role": "user", "content": [{"type": "text", "text": "hi"}]}
    path = lines_file(
        tmp_path,
        [
            bedrock_line("a", {"messages": [hi], "inferenceConfig": {"maxTokens": 5, "topP": 0.5}}),
            bedrock_line("b", {"messages": [hi], "inferenceConfig": {"stopSequences": ["x"]}}),
            bedrock_line("c", {"messages": [hi], "additionalModelRequestFields": {"top_k": 5}}),
            bedrock_line("d", {"messages": [hi, {"role": "assistant", "content": [{"image": {"format": "png"}}]}]}),
            bedrock_line(
                "e",
                {
                    "messages": [hi],
                    "system": [{"text": "be brief"}, {"cachePoint": {"type": "default"}}],
                    "inferenceConfig": {"maxTokens": 5, "temperature": 0.2},
                },
            ),
            bedrock_line(
                "f",
                {
                    "messages": [hi],
                    "system": [{"text": "be brief"}],
                    "inferenceConfig": {"maxTokens": 5, "temperature": 0.2},
                },
            ),
        ],
    )
    fields = [
        (1, "modelInput.inferenceConfig.topP"),
        (2, "modelInput.inferenceConfig.stopSequences"),
        (3, "modelInput.additionalModelRequestFields"),
        (4, "modelInput.messages[1].content[0].image"),
        (5, "modelInput.system[1].cachePoint"),
    ]
    for backend, model in (
        ("bedrock", CLAUDE),
        ("openai", "gpt-4o-mini"),
        ("azure", "gpt-4o-mini"),
        ("gemini", "gemini-2.0-flash"),
        ("vertex", "gemini-2.0-flash"),
        ("local", "gpt-4o-mini"),
    ):
        report = validate_file(path, model, backend=backend)
        assert [(b.line, b.field) for b in report.bad] == fields, (backend, model)
        assert [r.id for r in report.records] == ["f"]
    assert validate_file(path, CLAUDE, backend="bedrock").bad[0].reason == (
        f"--backend bedrock --model {CLAUDE} (an InvokeModel job taking a Claude body, not a Converse one) rebuilds "
        "a Bedrock line whose body is not for it from its messages (role and text), system, max_tokens and "
        "temperature, so this key would not be sent; remove it, or send the line to a Bedrock job whose model takes "
        "this body as written"
    )
    assert not validate_file(path, MISTRAL, backend="bedrock").bad  # a Converse job: each body sent as written
    native = lines_file(
        tmp_path,
        [
            bedrock_line(
                "a", {"anthropic_version": "bedrock-2023-05-31", "max_tokens": 5, "messages": [claude_hi], "top_k": 5}
            )
        ],
    )
    assert not validate_file(native, CLAUDE, backend="bedrock").bad
    report = validate_file(native, "gemini-2.0-flash", backend="gemini")
    assert [(b.line, b.field) for b in report.bad] == [(1, "modelInput.top_k")]


def test_a_nova_bodys_max_new_tokens_is_its_max_tokens_when_rebuilt() -> None:
    # Read only as max_tokens or inferenceConfig.maxTokens, a Nova body's cap was dropped when rebuilt elsewhere.
    [rec] = records(
        [
            bedrock_line(
                "1",
                {
                    "schemaVersion": "messages-v1",
                    "messages": [{"role": "user", "content": [{"text": "hi"}]}],
                    "inferenceConfig": {"max_new_tokens": 7},
                },
            )
        ]
    )
    assert rec.max_tokens == 7 and inline_request(rec)["config"]["max_output_tokens"] == 7


def test_a_body_rebuilt_by_hand_still_refuses_a_key_it_would_not_send() -> None:
    # validate skips such lines; a record reaching a body builder some other way is refused there, by key, not sent.
    [openai] = records([openai_line("o1", {"messages": [{"role": "user", "content": "hi"}], "top_p": 0.1})])
    [bedrock] = records(
        [
            bedrock_line(
                "b1", {"messages": [{"role": "user", "content": [{"text": "hi"}]}], "inferenceConfig": {"topP": 0.5}}
            )
        ]
    )
    for build, rec, fld in (
        (inline_request, openai, "body.top_p"),
        (vertex_request, openai, "body.top_p"),
        (lambda r: to_request(r, "local"), openai, "body.top_p"),
        (lambda r: model_input(CLAUDE, r), openai, "body.top_p"),
        (lambda r: model_input(CLAUDE, r), bedrock, "modelInput.inferenceConfig.topP"),
        (lambda r: request_body("gpt-4o-mini", r), bedrock, "modelInput.inferenceConfig.topP"),
    ):
        with pytest.raises(UsageError) as raised:
            build(rec)
        assert f"record {rec.id!r} (line {rec.line}): {fld}: " in str(raised.value)
    assert model_input(MISTRAL, bedrock)["inferenceConfig"] == {"topP": 0.5}  # its own body, as written
    assert request_body("gpt-4o-mini", openai)["top_p"] == 0.1


def test_the_keys_a_rebuild_carries_are_one_list_per_form() -> None:
    # A key added to a form's line is refused when rebuilt until it is mapped into every body and named here.
    assert CARRIED == {
        "openai": {
            "body": ("messages", "max_tokens", "max_completion_tokens", "temperature", "model"),
            "message": ("role", "content"),
            "part": ("type", "text"),
        },
        "bedrock": {
            "modelInput": (
                "messages",
                "system",
                "max_tokens",
                "temperature",
                "inferenceConfig",
                "anthropic_version",
                "schemaVersion",
                "max_gen_len",
            ),
            "inferenceConfig": ("maxTokens", "max_new_tokens", "temperature"),
            "message": ("role", "content"),
            "part": ("type", "text"),
        },
    }


def test_validate_and_submit_name_a_key_a_backend_would_not_send(tmp_path) -> None:
    # validate knew no backend, and submit listed only the lines read_file refused: the rest went out without them.
    env = {**os.environ, "PYTHONPATH": str(Path(__file__).parents[2] / "src")}
    path = lines_file(
        tmp_path,
        [
            openai_line("a", {"messages": [{"role": "user", "content": "hi"}], "top_p": 0.1}),
            openai_line("b", {"messages": [{"role": "user", "content": "hi"}]}),
        ],
    )
    cmd = [sys.executable, "-m", "tokenomy.cli", "batch"]
    out = subprocess.run(
        cmd + ["validate", str(path), "--model", "local", "--backend", "local", "--json"],
        capture_output=True,
        text=True,
        timeout=120,
        env=env,
    )
    assert out.returncode == 1, out.stderr
    assert json.loads(out.stdout)["bad_lines"] == [
        {
            "line": 1,
            "field": "body.top_p",
            "reason": (
                "--backend local rebuilds an OpenAI batch line from its messages (role and text), max_tokens and temperature, "
                "so this key would not be sent; remove it, or send the line with --backend openai or azure"
            ),
        }
    ]
    out = subprocess.run(
        cmd + ["validate", str(path), "--model", "local"], capture_output=True, text=True, timeout=120, env=env
    )
    assert out.returncode == 0 and "--backend" in out.stdout, out.stdout + out.stderr  # said unchecked, not passed
    config = tmp_path / "tokenomy.yaml"
    with InstantOpenAI() as url:  # the local runner, against an OpenAI-format server
        config.write_text(
            f"models:\n  upstream:\n    provider: openai\n    model: gpt-4o-mini\n    base_url: {url}\n"
            "    price_as: gpt-4o-mini\n"
        )
        out = subprocess.run(
            cmd
            + [
                "submit",
                str(path),
                "--model",
                "upstream",
                "--config",
                str(config),
                "--backend",
                "local",
                "--ledger",
                str(tmp_path / "l.duckdb"),
            ],
            capture_output=True,
            text=True,
            timeout=300,
            env=env,
        )
    assert out.returncode == 0, out.stderr
    assert "1 records on upstream via local (1 bad lines skipped)" in out.stdout, out.stdout
    assert "skipped line 1: body.top_p: --backend local rebuilds" in out.stdout, out.stdout


def test_a_stored_record_an_earlier_version_took_is_named_with_the_fix_on_resume():
    # A job stored before plain records' unknown keys were refused: its resume said "cannot happen" in effect.
    from tokenomy.batch.records import part_records
    from tokenomy.errors import ConfigError

    part = {
        "job_id": "job-1",
        "part_no": 0,
        "payload": '{"id": "a", "prompt": "hi"}\n{"id": "b", "prompt": "hi", "model": "x"}',
    }
    with pytest.raises(ConfigError, match=r"job-1#0: record on line 2 .*model.*earlier Tokenomy.*Submit"):
        part_records(part)


def test_a_bad_bedrock_temperature_is_named_where_the_line_has_it() -> None:
    # A Converse body's inferenceConfig.temperature was named modelInput.temperature, a key the line does not have.
    hi = [{"role": "user", "content": [{"text": "hi"}]}]
    good, bad = read_records(
        [
            bedrock_line("1", {"messages": hi, "inferenceConfig": {"temperature": "hot"}}),
            bedrock_line("2", {"messages": hi, "temperature": -1}),
            bedrock_line("3", {"messages": hi, "inferenceConfig": {"temperature": 0.3}}),
        ]
    )
    assert [r.id for r in good] == ["3"] and good[0].temperature == 0.3
    assert [(b.line, b.field, b.reason) for b in bad] == [
        (1, "modelInput.inferenceConfig.temperature", 'must be a number 0 or more, e.g. 0.7, not "hot"'),
        (2, "modelInput.temperature", "must be a number 0 or more, e.g. 0.7, not -1"),
    ]


def test_a_key_an_openai_or_bedrock_line_does_not_have_is_named_not_dropped() -> None:
    # Neither provider takes another key on a line (OpenAI: custom_id, method, url, body; Bedrock: recordId,
    # modelInput), and the line sent was rebuilt from those: a `temperature` or `metadata` beside them went nowhere.
    hi = [{"role": "user", "content": "hi"}]
    good, bad = read_records(
        [
            json.dumps({**OPENAI_LINE, "custom_id": "a", "body": {"messages": hi}, "temperature": 0}),
            json.dumps({**OPENAI_LINE, "custom_id": "b", "body": {"messages": hi}, "metadata": {"k": "v"}}),
            json.dumps({"recordId": "c", "modelInput": {"messages": hi}, "max_tokens": 5}),
            json.dumps({**OPENAI_LINE, "custom_id": "d", "body": {"messages": hi}}),
            json.dumps({"recordId": "e", "modelInput": {"messages": hi}}),
        ]
    )
    assert [r.id for r in good] == ["d", "e"]
    assert [(b.line, b.field, b.reason) for b in bad] == [
        (
            1,
            "temperature",
            "not a key of an OpenAI batch line (custom_id, method, url, body), so it would not be sent; "
            "remove it, or move a request parameter into body",
        ),
        (
            2,
            "metadata",
            "not a key of an OpenAI batch line (custom_id, method, url, body), so it would not be sent; "
            "remove it, or move a request parameter into body",
        ),
        (
            3,
            "max_tokens",
            "not a key of a Bedrock batch line (recordId, modelInput), so it would not be sent; remove "
            "it, or move a model parameter into modelInput",
        ),
    ]


def test_an_anthropic_gemini_or_vertex_batch_line_is_named_as_such_with_the_forms_read() -> None:
    # Anthropic's {custom_id, params} was refused for its params with "move a request parameter into body" (there is
    # no body), and Gemini's {key, request} or Vertex AI's {request} as a plain record "missing id": none said what the
    # line was or which forms are read.
    hi = [{"role": "user", "content": "hi"}]
    contents = [{"role": "user", "parts": [{"text": "hi"}]}]
    good, bad = read_records(
        [
            json.dumps({"custom_id": "a", "params": {"model": "claude-haiku-4-5", "max_tokens": 9, "messages": hi}}),
            json.dumps({"key": "b", "request": {"contents": contents}}),
            json.dumps({"request": {"contents": contents}}),
            json.dumps({"id": "d", "prompt": "hi"}),
        ]
    )
    assert [r.id for r in good] == ["d"]
    forms = (
        "write it as an OpenAI batch line (custom_id, method, url, body), a Bedrock batch line (recordId, modelInput) "
        "or a plain record (id, prompt or messages), which every backend takes"
    )
    assert [(b.line, b.field, b.reason) for b in bad] == [
        (1, "params", f"an Anthropic Message Batches request (custom_id, params) is not a line this reads; {forms}"),
        (2, "request", f"a Gemini batch line (key, request) is not a line this reads; {forms}"),
        (3, "request", f"a Vertex AI batch line (request) is not a line this reads; {forms}"),
    ]


def test_an_openai_line_with_two_different_caps_is_named_when_a_rebuild_keeps_one(tmp_path) -> None:
    # A rebuild keeps max_tokens: a different max_completion_tokens beside it was dropped unsaid.
    hi = [{"role": "user", "content": "hi"}]
    path = lines_file(
        tmp_path,
        [
            openai_line("a", {"messages": hi, "max_tokens": 5, "max_completion_tokens": 9}),
            openai_line("b", {"messages": hi, "max_tokens": 7, "max_completion_tokens": 7}),
            openai_line("c", {"messages": hi, "max_completion_tokens": 9}),
        ],
    )
    for backend, model in (("gemini", "gemini-2.0-flash"), ("local", "gpt-4o-mini"), ("bedrock", CLAUDE)):
        report = validate_file(path, model, backend=backend)
        assert [(b.line, b.field) for b in report.bad] == [(1, "body.max_completion_tokens")], (backend, model)
        assert [(r.id, r.max_tokens) for r in report.records] == [("b", 7), ("c", 9)]
    assert validate_file(path, "gemini-2.0-flash", backend="gemini").bad[0].reason == (
        "--backend gemini rebuilds an OpenAI batch line from its messages (role and text), max_tokens and temperature, "
        "so body.max_completion_tokens (9) would not be sent beside body.max_tokens (5); give one of them, or send "
        "the line with --backend openai or azure"
    )
    [rec] = records([openai_line("a", {"messages": hi, "max_tokens": 5, "max_completion_tokens": 9})])
    with pytest.raises(UsageError, match=r"record 'a' \(line 1\): body.max_completion_tokens: "):
        inline_request(rec)


def test_an_openai_line_with_both_caps_is_named_when_sent_as_written_even_equal(tmp_path) -> None:
    # Sent as written (OpenAI, Azure), a line with max_tokens 5 and max_completion_tokens 9 went out whole, though a
    # rebuild refuses it. Equal caps (7 and 7) passed as well, yet OpenAI answers a request that sets both a 400
    # whatever their values ("Setting 'max_tokens' and 'max_completion_tokens' at the same time is not supported"):
    # each such record failed only after the batch was made and waited for.
    hi = [{"role": "user", "content": "hi"}]
    path = lines_file(
        tmp_path,
        [
            openai_line("a", {"messages": hi, "max_tokens": 5, "max_completion_tokens": 9}),
            openai_line("b", {"messages": hi, "max_tokens": 7, "max_completion_tokens": 7}),
            openai_line("c", {"messages": hi, "max_completion_tokens": 9}),
            openai_line("d", {"messages": hi, "max_tokens": None, "max_completion_tokens": 9}),
        ],
    )
    for backend in ("openai", "azure", None):
        report = validate_file(path, "gpt-4o-mini", backend=backend)
        assert [(b.line, b.field) for b in report.bad] == [
            (1, "body.max_completion_tokens"),
            (2, "body.max_completion_tokens"),
        ], backend
        assert [(r.id, r.max_tokens) for r in report.records] == [("c", 9), ("d", 9)]  # null is no cap
    refusal = (
        'an OpenAI batch line is sent as written, and OpenAI refuses a request that sets both ("Setting '
        "'max_tokens' and 'max_completion_tokens' at the same time is not supported\"); give one of them"
    )
    assert [b.reason for b in validate_file(path, "gpt-4o-mini", backend="openai").bad] == [
        f"body.max_completion_tokens (9) beside body.max_tokens (5): {refusal}",
        f"body.max_completion_tokens (7) beside body.max_tokens (7): {refusal}",
    ]
    for caps in ((5, 9), (7, 7)):
        [rec] = records([openai_line("a", {"messages": hi, "max_tokens": caps[0], "max_completion_tokens": caps[1]})])
        with pytest.raises(UsageError, match=r"record 'a' \(line 1\): body.max_completion_tokens: "):
            request_body("gpt-4o-mini", rec)


def test_a_bedrock_line_with_two_different_caps_is_named_when_a_rebuild_keeps_one(tmp_path) -> None:
    # max_tokens 5 beside inferenceConfig.maxTokens 9 was rebuilt for Gemini with 5, the 9 dropped unsaid.
    hi = [{"role": "user", "content": "hi"}]

    def line(rid, body):
        return json.dumps({"recordId": rid, "modelInput": {"messages": hi, **body}})

    path = lines_file(
        tmp_path,
        [
            line("a", {"max_tokens": 5, "inferenceConfig": {"maxTokens": 9}}),
            line("b", {"max_tokens": 7, "inferenceConfig": {"maxTokens": 7}}),
            line("c", {"inferenceConfig": {"maxTokens": 6, "max_new_tokens": 8}}),
        ],
    )
    report = validate_file(path, "gemini-2.0-flash", backend="gemini")
    assert [(b.line, b.field) for b in report.bad] == [
        (1, "modelInput.inferenceConfig.maxTokens"),
        (3, "modelInput.inferenceConfig.max_new_tokens"),
    ]
    assert [(r.id, r.max_tokens) for r in report.records] == [("b", 7)]
    assert report.bad[0].reason == (
        "--backend gemini rebuilds a Bedrock line whose body is not for it from its messages (role and text), system, "
        "max_tokens and temperature, so modelInput.inferenceConfig.maxTokens (9) would not be sent beside "
        "modelInput.max_tokens (5); give one of them, or send the line to a Bedrock job whose model takes this body "
        "as written"
    )


def test_a_bedrock_line_with_two_different_temperatures_is_named_when_a_rebuild_keeps_one(tmp_path) -> None:
    # temperature 0.2 beside inferenceConfig.temperature 0.9 was rebuilt for Gemini, OpenAI or a Claude job with 0.2,
    # the 0.9 dropped unsaid.
    hi = [{"role": "user", "content": "hi"}]

    def line(rid, body):
        return json.dumps({"recordId": rid, "modelInput": {"messages": hi, **body}})

    path = lines_file(
        tmp_path,
        [
            line("a", {"temperature": 0.2, "inferenceConfig": {"temperature": 0.9}}),
            line("b", {"temperature": 0.3, "inferenceConfig": {"temperature": 0.3}}),
        ],
    )
    for backend, model in (("gemini", "gemini-2.0-flash"), ("openai", "gpt-4o-mini")):
        report = validate_file(path, model, backend=backend)
        assert [(b.line, b.field) for b in report.bad] == [(1, "modelInput.inferenceConfig.temperature")]
        assert [(r.id, r.temperature) for r in report.records] == [("b", 0.3)]
        assert report.bad[0].reason == (
            f"--backend {backend} rebuilds a Bedrock line whose body is not for it from its messages (role and text), "
            "system, max_tokens and temperature, so modelInput.inferenceConfig.temperature (0.9) would not be sent "
            "beside modelInput.temperature (0.2); give one of them, or send the line to a Bedrock job whose model "
            "takes this body as written"
        )
    [rec] = records([line("a", {"temperature": 0.2, "inferenceConfig": {"temperature": 0.9}})])
    with pytest.raises(UsageError, match=r"record 'a' \(line 1\): modelInput.inferenceConfig.temperature: "):
        inline_request(rec)
    with pytest.raises(UsageError, match=r"modelInput.inferenceConfig.temperature"):
        model_input("anthropic.claude-3-haiku-20240307-v1:0", rec)


def test_a_bedrock_line_sent_as_written_with_a_cap_its_body_does_not_take_is_named(tmp_path) -> None:
    # A Claude body with max_tokens 50 and inferenceConfig.maxTokens 4000 went to a Claude job as written, priced with
    # 50, though Bedrock refuses a key a Claude body does not take: each record failed only after the job ran. Each
    # body shape takes one cap of its own: Claude's max_tokens, Nova's inferenceConfig.max_new_tokens, Converse's
    # inferenceConfig.maxTokens; any other cap (or a second one) is named, as plan and submit leave it out.
    hi = [{"role": "user", "content": "hi"}]
    claude = {"anthropic_version": "bedrock-2023-05-31", "messages": hi}
    nova = {"schemaVersion": "messages-v1", "messages": hi}
    cases = {
        "anthropic.claude-3-5-haiku-20241022-v1:0": [
            bedrock_line("a1", {**claude, "max_tokens": 50, "inferenceConfig": {"maxTokens": 4000}}),
            bedrock_line("a2", {**claude, "inferenceConfig": {"maxTokens": 40}}),
            bedrock_line("a3", {**claude, "max_tokens": 50}),
        ],
        NOVA: [
            bedrock_line("n1", {**nova, "inferenceConfig": {"maxTokens": 9, "max_new_tokens": 9}}),
            bedrock_line("n2", {**nova, "max_tokens": 9}),
            bedrock_line("n3", {**nova, "inferenceConfig": {"max_new_tokens": 9}}),
        ],
        MISTRAL: [
            bedrock_line("c1", {"messages": hi, "max_tokens": 9}),
            bedrock_line("c2", {"messages": hi, "inferenceConfig": {"maxTokens": 9}}),
        ],
    }
    expected = {
        "anthropic.claude-3-5-haiku-20241022-v1:0": [
            (
                1,
                "modelInput.inferenceConfig.maxTokens",
                "modelInput.inferenceConfig.maxTokens (4000) beside "
                "modelInput.max_tokens (50): a Bedrock line is sent as written, and a Claude body takes its cap in "
                "modelInput.max_tokens only (Bedrock refuses the record, after the job ran); give one cap, in "
                "modelInput.max_tokens",
            ),
            (
                2,
                "modelInput.inferenceConfig.maxTokens",
                "modelInput.inferenceConfig.maxTokens (40): a Bedrock line is "
                "sent as written, and a Claude body takes its cap in modelInput.max_tokens only (Bedrock refuses the "
                "record, after the job ran); move it to modelInput.max_tokens",
            ),
        ],
        NOVA: [(1, "modelInput.inferenceConfig.maxTokens", None), (2, "modelInput.max_tokens", None)],
        MISTRAL: [
            (
                1,
                "modelInput.max_tokens",
                "modelInput.max_tokens (9): a Bedrock line is sent as written, and a "
                "Converse body takes its cap in modelInput.inferenceConfig.maxTokens only (Bedrock refuses the "
                "record, after the job ran); move it to modelInput.inferenceConfig.maxTokens",
            )
        ],
    }
    for model, lines in cases.items():
        path = lines_file(tmp_path, lines)
        for backend in ("bedrock", None):  # with no backend, as its own backend would send it
            report = validate_file(path, model, backend=backend)
            assert [(b.line, b.field) for b in report.bad] == [(n, f) for n, f, _ in expected[model]], (model, backend)
            assert [
                (b.reason if reason else None) for b, (_, _, reason) in zip(report.bad, expected[model], strict=True)
            ] == [reason for _, _, reason in expected[model]]
            assert len(report.records) == len(lines) - len(expected[model]), (model, backend)
        plan = plan_deadline(path, model, time(2, 0), start=datetime(2026, 1, 5, 0, 0, tzinfo=UTC), backend="bedrock")
        assert [(b["line"], b["field"]) for b in plan.bad_lines] == [(line, f) for line, f, _ in expected[model]]
        assert plan.records == len(lines) - len(expected[model])  # priced without them
        for line, (_, field, _) in zip(lines[: len(expected[model])], expected[model], strict=True):
            [rec] = records([line])
            rid = json.loads(line)["recordId"]
            with pytest.raises(UsageError, match=rf"record '{rid}' \(line 1\): {field}: "):
                model_input(model, rec)
    # A Converse body with top-level max_tokens is not sent as written to a Claude job: it is rebuilt, its cap kept.
    [rec] = records([bedrock_line("c1", {"messages": hi, "max_tokens": 9})])
    assert model_input("anthropic.claude-3-5-haiku-20241022-v1:0", rec)["max_tokens"] == 9
    assert (
        validate_file(
            lines_file(tmp_path, [bedrock_line("c1", {"messages": hi, "max_tokens": 9})]),
            "anthropic.claude-3-5-haiku-20241022-v1:0",
        ).bad
        == []
    )


def test_a_converse_body_sent_as_written_with_a_sampling_option_at_its_top_is_named(tmp_path) -> None:
    # {"messages", "temperature": 0.2} went as written to a Converse job, priced and checked as temperature 0.2, but
    # Converse takes it in inferenceConfig only: the job ran the record at the model's default temperature, unsaid.
    hi = [{"role": "user", "content": [{"text": "hi"}]}]
    model = "mistral.mistral-large-2407-v1:0"  # a Converse job
    path = lines_file(
        tmp_path,
        [
            bedrock_line("a", {"messages": hi, "temperature": 0.2}),
            bedrock_line("b", {"messages": hi, "top_k": 5, "inferenceConfig": {"maxTokens": 9}}),
            bedrock_line("c", {"messages": hi, "inferenceConfig": {"temperature": 0.2, "topP": 0.9}}),
        ],
    )
    report = validate_file(path, model, backend="bedrock")
    assert [(b.line, b.field, b.reason) for b in report.bad] == [
        (
            1,
            "modelInput.temperature",
            "0.2: a Bedrock line is sent as written, and a Converse body has no temperature at its top (it would not "
            "be applied); move it to modelInput.inferenceConfig.temperature",
        ),
        (
            2,
            "modelInput.top_k",
            "5: a Bedrock line is sent as written, and a Converse body has no top_k at its top (it would not be "
            "applied); move it to modelInput.additionalModelRequestFields.top_k",
        ),
    ]
    assert [r.id for r in report.records] == ["c"]
    assert model_input(model, report.records[0]) == {
        "messages": hi,
        "inferenceConfig": {"temperature": 0.2, "topP": 0.9},
    }
    [rec] = records([bedrock_line("a", {"messages": hi, "temperature": 0.2})])
    with pytest.raises(UsageError, match=r"record 'a' \(line 1\): modelInput.temperature: "):
        model_input(model, rec)


def test_a_bedrock_body_for_another_family_than_the_jobs_model_is_rebuilt_or_named(tmp_path) -> None:
    # A Claude body in a Nova or Llama job went out as written (both are InvokeModel jobs, so its kind matched), and
    # Bedrock refused every such record after the job ran. Like a Converse body sent to a Claude job, it is now rebuilt
    # for the job's model, its cap kept; a key the rebuild would not send names the line, both bodies and the fix.
    hi = [{"role": "user", "content": "hi"}]
    claude = bedrock_line("x", {"anthropic_version": "bedrock-2023-05-31", "max_tokens": 50, "messages": hi})
    nova = bedrock_line("y", {"schemaVersion": "messages-v1", "messages": hi, "inferenceConfig": {"max_new_tokens": 7}})
    [claude_rec], [nova_rec] = records([claude]), records([nova])
    body = model_input(NOVA, claude_rec)
    assert "anthropic_version" not in body and body["inferenceConfig"]["max_new_tokens"] == 50
    body = model_input(LLAMA, claude_rec)
    assert body["max_gen_len"] == 50 and body["prompt"].endswith("assistant<|end_header_id|>\n\n")
    body = model_input(CLAUDE, nova_rec)
    assert body["anthropic_version"] == "bedrock-2023-05-31" and body["max_tokens"] == 7
    assert "schemaVersion" not in body
    assert model_input(CLAUDE, claude_rec) == json.loads(claude)["modelInput"]  # its own family: as written
    assert model_input(NOVA, nova_rec) == json.loads(nova)["modelInput"]
    for model in (NOVA, LLAMA):
        report = validate_file(lines_file(tmp_path, [claude, nova]), model, backend="bedrock")
        assert report.bad == [] and len(report.records) == 2, model
    top_k = bedrock_line("z", {"anthropic_version": "bedrock-2023-05-31", "max_tokens": 50, "messages": hi, "top_k": 5})
    report = validate_file(lines_file(tmp_path, [top_k]), NOVA, backend="bedrock")
    assert [(b.line, b.field) for b in report.bad] == [(1, "modelInput.top_k")]
    assert report.bad[0].reason == (
        f"--backend bedrock --model {NOVA} (an InvokeModel job taking a Nova body, not a Claude one) rebuilds a "
        "Bedrock line whose body is not for it from its messages (role and text), system, max_tokens and "
        "temperature, so this key would not be sent; remove it, or send the line to a Bedrock job whose model takes "
        "this body as written"
    )
    with pytest.raises(UsageError, match=r"record 'z' \(line 1\): modelInput.top_k: "):
        model_input(NOVA, records([top_k])[0])


def test_a_text_part_whose_text_is_not_a_string_is_named_not_turned_into_text() -> None:
    # `"text": 5` was read as the text "5" (and `null` as "None"), estimated and rebuilt so; the provider refuses it.
    def user(*parts) -> list:
        return [{"role": "user", "content": [{"type": "text", "text": "hi"}, *parts]}]

    good, bad = read_records(
        [
            openai_line("a", {"messages": user({"type": "text", "text": 5})}),
            bedrock_line("b", {"messages": [{"role": "user", "content": "hi"}, *user({"text": None})]}),
            bedrock_line("c", {"messages": user(), "system": [{"text": ["be brief"]}]}),
            openai_line("d", {"messages": [{"role": "user", "content": 5}]}),
            bedrock_line("e", {"messages": user({"text": " there"}), "system": [{"text": "be brief"}]}),
        ]
    )
    assert [(r.id, r.messages, r.system) for r in good] == [
        ("e", [{"role": "user", "content": "hi there"}], "be brief")
    ]
    assert [(b.line, b.field, b.reason) for b in bad] == [
        (1, "body.messages[0].content[1].text", "must be text, not 5"),
        (2, "modelInput.messages[1].content[1].text", "must be text, not null"),
        (3, "modelInput.system[0].text", 'must be text, not ["be brief"]'),
        (4, "body.messages[0].content", "content must be a string or a list of text blocks"),
    ]


def test_a_bedrock_system_that_is_not_text_is_a_bad_line_not_a_crash(tmp_path) -> None:
    # `"system": 5` reached BatchRecord.text() as an int: a TypeError traceback out of validate, no line named.
    hi = [{"role": "user", "content": "hi"}]
    path = lines_file(
        tmp_path,
        [
            bedrock_line("a", {"messages": hi, "system": 5}),
            bedrock_line("b", {"messages": hi, "system": {"text": "be brief"}}),
            bedrock_line("c", {"messages": hi, "system": "be brief"}),
        ],
    )
    report = validate_file(path, CLAUDE)
    assert [(r.id, r.system) for r in report.records] == [("c", "be brief")]
    assert [(b.line, b.field, b.reason) for b in report.bad] == [
        (1, "modelInput.system", "content must be a string or a list of text blocks"),
        (2, "modelInput.system", "content must be a string or a list of text blocks"),
    ]


def test_a_bad_cap_is_named_where_the_line_has_it() -> None:
    # Every bad cap was named `max_tokens`, though an OpenAI or Bedrock line may hold it under another key or place.
    hi = [{"role": "user", "content": "hi"}]
    good, bad = read_records(
        [
            openai_line("a", {"messages": hi, "max_completion_tokens": 0}),
            openai_line("b", {"messages": hi, "max_tokens": "9"}),
            bedrock_line("c", {"messages": hi, "inferenceConfig": {"maxTokens": -1}}),
            bedrock_line("d", {"messages": hi, "inferenceConfig": {"max_new_tokens": 1.5}}),
            bedrock_line("e", {"messages": hi, "max_tokens": True}),
            json.dumps({"id": "f", "prompt": "hi", "max_tokens": 0}),
            openai_line("g", {"messages": hi, "max_completion_tokens": 9}),
            openai_line("h", {"messages": hi, "max_tokens": None, "max_completion_tokens": 7}),  # null: none given
            json.dumps({"id": "i", "prompt": "hi", "max_tokens": None}),
        ]
    )
    assert [(r.id, r.max_tokens) for r in good] == [("g", 9), ("h", 7), ("i", None)]
    assert [(b.line, b.field, b.reason) for b in bad] == [
        (1, "body.max_completion_tokens", "must be a positive integer, not 0"),
        (2, "body.max_tokens", 'must be a positive integer, not "9"'),
        (3, "modelInput.inferenceConfig.maxTokens", "must be a positive integer, not -1"),
        (4, "modelInput.inferenceConfig.max_new_tokens", "must be a positive integer, not 1.5"),
        (5, "modelInput.max_tokens", "must be a positive integer, not true"),
        (6, "max_tokens", "must be a positive integer, not 0"),
    ]


def test_a_bad_message_of_an_openai_or_bedrock_line_is_named_by_its_index() -> None:
    # `[{"role": "user", ...}, 5]` was named body.messages, not which message.
    hi = {"role": "user", "content": "hi"}
    good, bad = read_records(
        [
            json.dumps(
                {"custom_id": "a", "method": "POST", "url": "/v1/chat/completions", "body": {"messages": [hi, 5]}}
            ),
            json.dumps({"recordId": "b", "modelInput": {"messages": [hi, {"role": "robot", "content": "x"}]}}),
        ]
    )
    assert not good
    assert [(b.line, b.field) for b in bad] == [(1, "body.messages[1]"), (2, "modelInput.messages[1].role")]
    assert "'robot' is not a message role; use user, assistant or system" in bad[1].reason


def test_a_value_quoted_in_a_bad_line_keeps_its_non_ascii_letters() -> None:
    # `"temperature": "très"` was named `not "tr\u00e8s"`, `"max_tokens": ["dix-huit", "été"]` the same way.
    good, bad = read_records(
        [
            json.dumps({"id": "a", "prompt": "hi", "temperature": "très"}),
            json.dumps({"id": "b", "prompt": "hi", "max_tokens": ["été"]}),
        ]
    )
    assert not good
    assert [b.reason for b in bad] == [
        'must be a number 0 or more, e.g. 0.7, not "très"',
        'must be a positive integer, not ["été"]',
    ]


def test_an_openai_line_with_tool_turns_a_developer_message_or_only_an_image_goes_as_written(tmp_path) -> None:
    # OpenAI lines the chat API takes were refused before the batch was made, each as a bad line: a `developer`
    # message ("'developer' is not a message role"), a tool-calling turn (an assistant message whose content is null,
    # then a `tool` message), and a question that is only an image under a system prompt ("empty prompt"). Sent as
    # written (OpenAI, Azure) they go whole; a backend that rebuilds the line names what it would not send.
    image = {"type": "image_url", "image_url": {"url": "data:image/png;base64,iVBORw0KGgo="}}
    call = {"id": "call_1", "type": "function", "function": {"name": "weather", "arguments": '{"city": "Oslo"}'}}
    tools = [{"type": "function", "function": {"name": "weather", "parameters": {"type": "object"}}}]
    developer = {"messages": [{"role": "developer", "content": "Answer in French."}, {"role": "user", "content": "hi"}]}
    tool_turn = {
        "messages": [
            {"role": "user", "content": "Weather in Oslo?"},
            {"role": "assistant", "content": None, "tool_calls": [call]},
            {"role": "tool", "tool_call_id": "call_1", "content": "12 C, rain"},
        ],
        "tools": tools,
    }
    image_only = {
        "messages": [{"role": "system", "content": "Describe the picture."}, {"role": "user", "content": [image]}]
    }
    path = lines_file(
        tmp_path, [openai_line("dev", developer), openai_line("tool", tool_turn), openai_line("img", image_only)]
    )
    for backend in ("openai", "azure"):
        report = validate_file(path, "gpt-4o-mini", backend=backend)
        assert not report.bad and [r.id for r in report.records] == ["dev", "tool", "img"], report.bad
        sent = [request_body("gpt-4o-mini", r) for r in report.records]
        assert sent == [{**body, "model": "gpt-4o-mini"} for body in (developer, tool_turn, image_only)]
    report = validate_file(path, "gemini-2.0-flash", backend="gemini")
    assert [(b.line, b.field) for b in report.bad] == [(2, "body.tools"), (3, "body.messages[1].content[0].type")]
    # A developer message is the system prompt of a rebuilt line, as OpenAI reads it.
    assert report.records[0].system_and_turns() == ("Answer in French.", [{"role": "user", "content": "hi"}])
