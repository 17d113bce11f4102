"""A batch line whose tool result answers no call of the turn before (a history cut after the call), or whose tool call
the next turn leaves unanswered, passed validate and submit, and its provider refused the record once the job ran,
hours later. Validate names it, by line and by its place in the line, for each form a line carries tools in: an
OpenAI chat body, a Bedrock Claude body, a Bedrock Converse (or Nova) body."""

from __future__ import annotations

import json
import subprocess
import sys

from typer.testing import CliRunner

from tokenomy.cli import app

CLAUDE = "anthropic.claude-3-haiku-20240307-v1:0"
ASKED = {"role": "user", "content": "Weather in Paris?"}


def _write(path, *objs):
    path.write_text("".join(json.dumps(o) + "\n" for o in objs))
    return path


def _openai(cid, *messages):
    body = {"model": "gpt-4o-mini", "max_tokens": 5, "messages": [ASKED, *messages]}
    return {"custom_id": cid, "method": "POST", "url": "/v1/chat/completions", "body": body}


OPENAI_CALL = {
    "role": "assistant",
    "content": None,
    "tool_calls": [{"id": "c1", "type": "function", "function": {"name": "weather", "arguments": "{}"}}],
}


def _bad_lines(path, model, backend):
    out = CliRunner().invoke(app, ["batch", "validate", str(path), "--model", model, "--backend", backend, "--json"])
    assert out.exit_code == 1, out.output
    return [(b["line"], b["field"], b["reason"]) for b in json.loads(out.stdout)["bad_lines"]]


def test_an_openai_line_with_an_unpaired_tool_message_or_call_is_a_bad_line(tmp_path):
    path = _write(
        tmp_path / "openai.jsonl",
        _openai("paired", OPENAI_CALL, {"role": "tool", "tool_call_id": "c1", "content": "sunny"}),
        _openai("cut", {"role": "tool", "tool_call_id": "c1", "content": "sunny"}),
        _openai("unanswered", OPENAI_CALL, {"role": "user", "content": "Never mind: Rome?"}),
    )
    bad = _bad_lines(path, "gpt-4o-mini", "openai")
    assert [(line, field) for line, field, _ in bad] == [
        (2, "body.messages[1].tool_call_id"),
        (3, "body.messages[1].tool_calls[0]"),
    ]
    assert bad[0][2].startswith("a tool result (`body.messages[1].tool_call_id`) answering tool call `c1`")
    assert bad[1][2].startswith("tool call `c1` (`body.messages[1].tool_calls[0]`) with no result")
    assert all(reason.endswith("(the provider would refuse the record when the job runs)") for *_, reason in bad)


def test_bedrock_claude_and_converse_lines_with_unpaired_tools_are_bad_lines(tmp_path):
    def claude(rid, *messages):
        body = {"anthropic_version": "bedrock-2023-05-31", "max_tokens": 5, "messages": [ASKED, *messages]}
        return {"recordId": rid, "modelInput": body}

    def converse(rid, *messages):
        asked = {"role": "user", "content": [{"text": "Weather in Paris?"}]}
        return {"recordId": rid, "modelInput": {"messages": [asked, *messages]}}

    use = {"type": "tool_use", "id": "t1", "name": "weather", "input": {}}
    result = {"type": "tool_result", "tool_use_id": "t1", "content": "sunny"}
    claude_path = _write(
        tmp_path / "claude.jsonl",
        claude("paired", {"role": "assistant", "content": [use]}, {"role": "user", "content": [result]}),
        claude("cut", {"role": "user", "content": [{"type": "text", "text": "so?"}, result]}),
        claude("unanswered", {"role": "assistant", "content": [use]}, {"role": "user", "content": "Rome?"}),
    )
    bad = _bad_lines(claude_path, CLAUDE, "bedrock")
    assert [(line, field) for line, field, _ in bad] == [
        (2, "modelInput.messages[1].content[1].tool_use_id"),
        (3, "modelInput.messages[1].content[0]"),
    ]
    converse_use = {"toolUse": {"toolUseId": "t1", "name": "weather", "input": {}}}
    converse_result = {"toolResult": {"toolUseId": "t9", "content": [{"text": "sunny"}]}}
    converse_path = _write(
        tmp_path / "converse.jsonl",
        converse("answered elsewhere", {"role": "assistant", "content": [converse_use]},
                 {"role": "user", "content": [converse_result]}),
        converse("unanswered", {"role": "assistant", "content": [{"text": "Checking."}, converse_use]},
                 {"role": "user", "content": [{"text": "Rome?"}]}),
    )  # fmt: skip
    # Mistral Large takes a Converse body on Bedrock (a Converse job)
    bad = _bad_lines(converse_path, "mistral.mistral-large-2407-v1:0", "bedrock")
    assert [(line, field) for line, field, _ in bad] == [
        (1, "modelInput.messages[2].content[0].toolResult.toolUseId"),
        (2, "modelInput.messages[1].content[1].toolUse"),
    ]
    assert "answering tool call `t9`" in bad[0][2] and "tool call `t1`" in bad[1][2]


def test_submit_of_a_file_of_unpaired_lines_names_them_and_stores_nothing(tmp_path):
    path = _write(tmp_path / "in.jsonl", _openai("cut", {"role": "tool", "tool_call_id": "c1", "content": "sunny"}))
    ledger = tmp_path / "ledger.duckdb"
    args = ["batch", "submit", str(path), "--model", "gpt-4o-mini", "--backend", "openai", "--ledger", str(ledger)]
    out = subprocess.run([sys.executable, "-m", "tokenomy.cli", *args], capture_output=True, text=True, timeout=60)
    assert out.returncode == 2 and "Traceback" not in out.stderr, out.stderr
    error = " ".join(out.stderr.split())
    assert "line 1: body.messages[1].tool_call_id: a tool result" in error and not ledger.exists(), error
