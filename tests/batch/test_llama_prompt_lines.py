"""A Bedrock batch line in Meta Llama's own InvokeModel shape (`modelInput: {prompt, max_gen_len, ...}`), the body
Bedrock's batch takes for a Llama model: validated and priced from its prompt, sent to a Llama job as written, and
refused by name wherever it cannot be carried exactly (another model, another backend, the local runner)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from helpers.batch_records import records
from tokenomy.batch.anthropic_backend import request_params
from tokenomy.batch.bedrock_bodies import model_input
from tokenomy.batch.formats import read_records
from tokenomy.batch.local_runner import to_request
from tokenomy.batch.openai_backend import request_body
from tokenomy.batch.record_tokens import estimate_tokens
from tokenomy.batch.records import part_payload, part_records
from tokenomy.batch.validate import validate_file
from tokenomy.errors import UsageError

LLAMA = "meta.llama3-1-8b-instruct-v1:0"
CLAUDE = "anthropic.claude-3-haiku-20240307-v1:0"
NOVA = "amazon.nova-lite-v1:0"
MISTRAL = "mistral.mistral-large-2407-v1:0"  # a Converse job
TEMPLATE = (
    "<|begin_of_text|><|start_header_id|>system<|end_header_id|>\n\nBe brief.<|eot_id|>"
    "<|start_header_id|>user<|end_header_id|>\n\n{question}<|eot_id|>"
    "<|start_header_id|>assistant<|end_header_id|>\n\n"
)
FIX = "write the line with modelInput.messages, or use a Llama model on Bedrock"


def llama_line(rid: str, question: str, **params) -> str:
    body = {"prompt": TEMPLATE.format(question=question), "max_gen_len": 50, "temperature": 0.2, **params}
    return json.dumps({"recordId": rid, "modelInput": body})


def lines_file(tmp_path: Path, lines: list[str]) -> Path:
    path = tmp_path / "llama.jsonl"
    path.write_text("\n".join(lines) + "\n")
    return path


def cli(*args: str) -> subprocess.CompletedProcess:
    env = {**os.environ, "PYTHONPATH": str(Path(__file__).parents[2] / "src")}
    return subprocess.run(
        [sys.executable, "-m", "tokenomy.cli", "batch", *args], capture_output=True, text=True, timeout=120, env=env
    )


def test_validate_takes_a_llama_prompt_line_for_a_llama_model_estimating_its_prompt_text(tmp_path) -> None:
    # Refused as `modelInput.messages: messages must be a non-empty list`, though it is the body Bedrock takes.
    lines = [llama_line("r1", "What is a token?"), llama_line("r2", "Name three rivers.", top_p=0.9, max_gen_len=80)]
    path = lines_file(tmp_path, lines)
    prompts = [json.loads(line)["modelInput"]["prompt"] for line in lines]
    for backend in (["--backend", "bedrock"], []):
        out = cli("validate", str(path), "--model", LLAMA, "--json", *backend)
        assert out.returncode == 0, out.stdout + out.stderr
        report = json.loads(out.stdout)
        assert report["bad_lines"] == [] and report["good_records"] == 2
        # The prompt as text, the chat template's special tokens included; each cap its max_gen_len.
        assert report["input_tokens"] == sum(estimate_tokens(p) for p in prompts)
        assert report["output_tokens"] == 50 + 80
        assert float(report["batch_usd"]) > 0


def test_a_llama_prompt_line_goes_to_a_llama_job_as_written() -> None:
    line = llama_line("r1", "Why is the sky blue?", top_p=0.9)
    [rec] = records([line])
    written = json.loads(line)["modelInput"]
    body = model_input(LLAMA, rec)
    assert body == written and list(body) == list(written)  # its extra parameters, in its own order
    assert (rec.max_tokens, rec.temperature) == (50, 0.2)
    # As resume sends it again: the records kept with the job read back to the same body.
    [kept] = part_records({"job_id": "j", "part_no": 1, "payload": part_payload([rec])})
    assert model_input(LLAMA, kept) == written


def test_a_llama_prompt_line_for_another_model_or_backend_is_refused_naming_the_prompt(tmp_path) -> None:
    path = lines_file(tmp_path, [llama_line("r1", "hi")])
    cases = [(model, backend) for model in (CLAUDE, NOVA, MISTRAL) for backend in ("bedrock", None)]
    cases += [(LLAMA, backend) for backend in ("local", "openai", "anthropic", "gemini")]
    for model, backend in cases:
        report = validate_file(path, model, backend=backend)
        assert report.records == [], (model, backend)
        [bad] = report.bad
        assert (bad.line, bad.field) == (1, "modelInput.prompt"), (model, backend)
        assert FIX in bad.reason and "guess" in bad.reason, bad.reason
    out = cli("validate", str(path), "--model", LLAMA, "--backend", "local", "--json")
    assert out.returncode == 1, out.stderr
    [bad] = json.loads(out.stdout)["bad_lines"]
    assert bad["field"] == "modelInput.prompt" and bad["reason"].startswith("--backend local ")
    out = cli("validate", str(path), "--model", CLAUDE, "--backend", "bedrock", "--json")
    assert json.loads(out.stdout)["bad_lines"][0]["field"] == "modelInput.prompt"


def test_every_body_builder_refuses_a_llama_prompt_it_cannot_send_as_written() -> None:
    # The guard for a record that reached a builder without validate (the local runner runs leftovers on demand).
    [rec] = records([llama_line("r1", "hi")])
    builders = [
        lambda: model_input(CLAUDE, rec),
        lambda: model_input(MISTRAL, rec),
        lambda: model_input(NOVA, rec),
        lambda: to_request(rec, LLAMA),
        lambda: request_body("gpt-4o-mini", rec),
        lambda: request_params("claude-haiku-4-5", rec),
    ]
    for build in builders:
        with pytest.raises(UsageError, match=r"record 'r1' \(line 1\): modelInput\.prompt: .*" + FIX):
            build()


def test_a_llama_prompt_that_is_not_text_or_sits_beside_messages_is_named() -> None:
    hi = [{"role": "user", "content": "hi"}]
    good, bad = read_records(
        [
            json.dumps({"recordId": "a", "modelInput": {"prompt": 5, "max_gen_len": 9}}),
            json.dumps({"recordId": "b", "modelInput": {"prompt": "<|begin_of_text|>hi", "messages": hi}}),
            json.dumps({"recordId": "c", "modelInput": {"prompt": "   "}}),
        ]
    )
    assert good == []
    assert [(b.line, b.field) for b in bad] == [(1, "modelInput.prompt"), (2, "modelInput.prompt"), (3, "prompt")]
    assert bad[0].reason == "must be text, not 5; write the prompt as a JSON string"
    assert "both prompt and messages" in bad[1].reason
