"""A batch record that gives no max_tokens, on the backends that send a cap anyway (Anthropic's Message Batches, a
Bedrock body rebuilt for the model): it is sent the model's maximum output within its context window, as the sync
path sends an uncapped call to Claude, never a small default that cuts its answer short; and the worst case that
`batch submit --max-cost` is checked against counts it at that same cap."""

from __future__ import annotations

import json

import anthropic

from helpers.batch_records import records, wait
from tokenomy.batch.anthropic_backend import AnthropicBatchBackend, custom_id
from tokenomy.batch.backends import SubmitOptions
from tokenomy.batch.bedrock_backend import BedrockBatchBackend
from tokenomy.batch.formats import BatchRecord
from tokenomy.batch.record_tokens import estimate_tokens, record_estimate
from tokenomy.batch.validate import validate_file
from tokenomy.batch.worst_case import job_worst_case
from tokenomy.emulate.anthropic_batch import create_app
from tokenomy.emulate.instant_engine import InstantEngine
from tokenomy.emulate.server import ServerThread
from tokenomy.pricing.catalog import default_catalog
from tokenomy.providers.anthropic_mapping import DEFAULT_MAX_TOKENS as CLAUDE_FALLBACK_CAP

CLAUDE = "claude-haiku-4-5-20251001"
BEDROCK_CLAUDE = "anthropic.claude-haiku-4-5-20251001-v1:0"
BEDROCK_UNSIZED_CLAUDE = "anthropic.claude-3-5-haiku-20241022-v1:0"  # the catalog has no maximum output for it
NOVA, LLAMA = "amazon.nova-lite-v1:0", "meta.llama3-1-8b-instruct-v1:0"
NOVA_MICRO = "amazon.nova-micro-v1:0"  # the smallest Nova window, 128,000
LLAMA3 = "meta.llama3-8b-instruct-v1:0"  # an 8,192-token window
MISTRAL = "mistral.mistral-7b-instruct-v0:2"  # a Converse job, the prompt body's own job an InvokeModel one
UNSIZED_CONVERSE = "mistral.mistral-large-2407-v1:0"  # a Converse job; the catalog has no maximum output for it
UNSIZED_LLAMA = "meta.llama4-scout-17b-instruct-v1:0"  # a Llama body; the catalog has no maximum output for it

UNCAPPED = json.dumps({"id": "open", "prompt": "Write the whole report, as long as it needs to be."})
CAPPED = json.dumps({"id": "short", "prompt": "One line only.", "max_tokens": 40})


def most(model: str) -> int:
    """The model's maximum output in the price catalog (the figure an uncapped short prompt is sent)."""
    figure = default_catalog().lookup(model).max_output_tokens
    assert figure is not None and figure > 1_000  # a model that writes long answers: what the test is about
    return figure


def bedrock_body(model: str, line: str) -> dict:
    """The modelInput of `line` as the Bedrock backend writes it into the job's input file."""
    [rec] = records([line])
    return json.loads(BedrockBatchBackend().input_line(model, rec))["modelInput"]


def test_an_uncapped_record_sent_to_anthropic_carries_claudes_maximum_output_and_a_capped_one_its_own() -> None:
    app = create_app(engine=InstantEngine())
    with ServerThread(app) as url:
        backend = AnthropicBatchBackend()
        handle = backend.submit("j", CLAUDE, records([UNCAPPED, CAPPED]), SubmitOptions(endpoint_url=url))
        assert wait(backend, handle)[-1] == "completed"
        client = anthropic.Anthropic(base_url=url, api_key="x")
        assert {r.result.type for r in client.messages.batches.results(handle)} == {"succeeded"}
        sent = {item["custom_id"]: item["params"] for item in app.state.batches.batches[handle]["requests"]}
    assert sent[custom_id("open")]["max_tokens"] == most(CLAUDE)
    assert sent[custom_id("short")]["max_tokens"] == 40


def test_an_uncapped_record_rebuilt_for_bedrock_claude_carries_its_maximum_output_and_a_capped_one_its_own() -> None:
    assert bedrock_body(BEDROCK_CLAUDE, UNCAPPED)["max_tokens"] == most(BEDROCK_CLAUDE)
    assert bedrock_body(BEDROCK_CLAUDE, CAPPED)["max_tokens"] == 40


def long_prompt(tokens: int) -> BatchRecord:
    """A record whose prompt is about `tokens` tokens by the estimate."""
    per_word = estimate_tokens("word " * 1000) / 1000
    [rec] = records([json.dumps({"id": "long", "prompt": "word " * int(tokens / per_word)})])
    return rec


def test_a_long_prompt_is_sent_what_the_context_window_leaves_not_the_whole_maximum() -> None:
    entry = default_catalog().lookup(CLAUDE)
    assert entry.context_window is not None
    # A prompt leaving less room in the window than the model's maximum output (even less than the sync path's
    # fallback): the cap is that room (Claude before Sonnet 4.5 refuses a prompt and cap over its window).
    for left in (most(CLAUDE) // 2, CLAUDE_FALLBACK_CAP // 2):
        rec = long_prompt(entry.context_window - left)
        room = entry.context_window - record_estimate(rec)
        assert 0 < room < min(left * 2, most(CLAUDE))
        assert json.loads(AnthropicBatchBackend().input_line(CLAUDE, rec))["params"]["max_tokens"] == room
        assert json.loads(BedrockBatchBackend().input_line(BEDROCK_CLAUDE, rec))["modelInput"]["max_tokens"] == room
        assert job_worst_case([rec], CLAUDE, backend="anthropic").output_tokens == room


def test_the_worst_case_counts_an_uncapped_record_at_the_cap_each_backend_sends_it() -> None:
    both = records([UNCAPPED, CAPPED])
    for model, backend in ((CLAUDE, "anthropic"), (BEDROCK_CLAUDE, "bedrock")):
        worst = job_worst_case(both, model, backend=backend)
        assert worst.output_tokens == most(model) + 40
        assert worst.uncapped == 0  # each is sent a cap: none is counted as sent without one
    local = job_worst_case(both, CLAUDE, backend="local")  # the local runner keeps its own short cap
    assert local.output_tokens == 256 + 40


def test_validate_estimates_an_uncapped_record_at_the_cap_its_backend_sends(tmp_path) -> None:
    path = tmp_path / "in.jsonl"
    path.write_text(UNCAPPED + "\n" + CAPPED + "\n")
    assert validate_file(path, CLAUDE, backend="anthropic").output_tokens == most(CLAUDE) + 40
    assert validate_file(path, CLAUDE, backend="local").output_tokens == 256 + 40


def test_a_claude_model_the_catalog_has_no_maximum_for_is_sent_the_sync_paths_fallback_and_counted_at_it() -> None:
    assert default_catalog().lookup(BEDROCK_UNSIZED_CLAUDE).max_output_tokens is None
    assert bedrock_body(BEDROCK_UNSIZED_CLAUDE, UNCAPPED)["max_tokens"] == CLAUDE_FALLBACK_CAP
    worst = job_worst_case(records([UNCAPPED]), BEDROCK_UNSIZED_CLAUDE, backend="bedrock")
    assert worst.output_tokens == CLAUDE_FALLBACK_CAP and worst.uncapped == 0


def test_an_uncapped_nova_record_carries_its_maximum_output_as_max_new_tokens_and_is_counted_at_it() -> None:
    # Nova's own default for max_new_tokens is not its maximum: the catalog's figure (AWS's 5,000) is sent instead, and
    # the worst case counts the record at that same figure, not as one sent without a cap.
    assert bedrock_body(NOVA, UNCAPPED)["inferenceConfig"] == {"max_new_tokens": most(NOVA)}
    assert bedrock_body(NOVA, CAPPED)["inferenceConfig"] == {"max_new_tokens": 40}
    worst = job_worst_case(records([UNCAPPED, CAPPED]), NOVA, backend="bedrock")
    assert worst.output_tokens == most(NOVA) + 40 and worst.uncapped == 0


def test_a_long_prompt_to_nova_is_sent_what_its_context_window_leaves() -> None:
    entry = default_catalog().lookup(NOVA_MICRO)
    assert entry.context_window is not None
    rec = long_prompt(entry.context_window - most(NOVA_MICRO) // 2)
    room = entry.context_window - record_estimate(rec)
    assert 0 < room < most(NOVA_MICRO)
    assert json.loads(BedrockBatchBackend().input_line(NOVA_MICRO, rec))["modelInput"]["inferenceConfig"] == {
        "max_new_tokens": room
    }
    assert job_worst_case([rec], NOVA_MICRO, backend="bedrock").output_tokens == room


def test_an_uncapped_llama_record_carries_its_maximum_output_as_max_gen_len_and_is_counted_at_it() -> None:
    # Llama's own default for max_gen_len (512) is not its maximum: the catalog's figure (Bedrock's 2,048) is sent, and
    # the worst case counts the record at it; it was sent none and counted at the rest of the 128,000-token window.
    assert most(LLAMA) == 2_048
    assert bedrock_body(LLAMA, UNCAPPED)["max_gen_len"] == most(LLAMA)
    assert bedrock_body(LLAMA, CAPPED)["max_gen_len"] == 40
    worst = job_worst_case(records([UNCAPPED, CAPPED]), LLAMA, backend="bedrock")
    assert worst.output_tokens == most(LLAMA) + 40 and worst.uncapped == 0


def test_a_long_prompt_to_llama_3_is_sent_what_its_context_window_leaves() -> None:
    entry = default_catalog().lookup(LLAMA3)
    assert entry.context_window == 8_192
    rec = long_prompt(entry.context_window - most(LLAMA3) // 2)
    room = entry.context_window - record_estimate(rec)
    assert 0 < room < most(LLAMA3)
    assert json.loads(BedrockBatchBackend().input_line(LLAMA3, rec))["modelInput"]["max_gen_len"] == room
    assert job_worst_case([rec], LLAMA3, backend="bedrock").output_tokens == room


def test_an_uncapped_mistral_record_is_counted_at_its_maximum_output_not_the_rest_of_its_window() -> None:
    # A Mistral model's records go in a Converse job, whose body carries no maxTokens unasked (Converse's default is
    # the model's maximum), and its own prompt body goes as written: either was counted at the rest of the
    # 32,000-token window, and is counted at the catalog's maximum for the model (max_tokens' 8,192 for Mistral 7B).
    assert most(MISTRAL) == 8_192
    assert "inferenceConfig" not in bedrock_body(MISTRAL, UNCAPPED)
    prompt_body = json.dumps({"recordId": "own", "modelInput": {"prompt": "<s>[INST] Write it all. [/INST]"}})
    assert bedrock_body(MISTRAL, prompt_body) == {"prompt": "<s>[INST] Write it all. [/INST]"}  # as written
    for line in (UNCAPPED, prompt_body):
        worst = job_worst_case(records([line, CAPPED]), MISTRAL, backend="bedrock")
        assert worst.output_tokens == most(MISTRAL) + 40 and worst.uncapped == 1
        assert f"{MISTRAL}'s maximum output of 8,192 tokens" in worst.note()


def test_converse_and_llama_bodies_without_a_known_maximum_carry_no_cap_and_are_counted_as_uncapped() -> None:
    # Converse's maxTokens defaults to the model's maximum; Llama's max_gen_len is left to the model's own default
    # where the catalog has no maximum (none was found for Llama 4), rather than a guess Bedrock may refuse.
    for model in (UNSIZED_CONVERSE, UNSIZED_LLAMA):
        assert default_catalog().lookup(model).max_output_tokens is None, model
    assert "inferenceConfig" not in bedrock_body(UNSIZED_CONVERSE, UNCAPPED)
    assert "max_gen_len" not in bedrock_body(UNSIZED_LLAMA, UNCAPPED)
    assert bedrock_body(UNSIZED_CONVERSE, CAPPED)["inferenceConfig"] == {"maxTokens": 40}
    assert bedrock_body(UNSIZED_LLAMA, CAPPED)["max_gen_len"] == 40
    for model in (UNSIZED_CONVERSE, UNSIZED_LLAMA):
        worst = job_worst_case(records([UNCAPPED]), model, backend="bedrock")
        assert worst.uncapped == 1 and "give no max_tokens and are sent with none" in worst.note()
