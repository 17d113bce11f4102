"""Bedrock batch record bodies: build `modelInput` for a model family, read text and usage back.

InvokeModel jobs take the model's native body: Anthropic Claude's Messages body with
`anthropic_version` "bedrock-2023-05-31" and `max_tokens`, Amazon Nova's `messages-v1` body, Meta
Llama's `prompt` / `max_gen_len`. Any other family is sent as a Converse job (modelInvocationType
"Converse"), whose bodies are the same for every model. Records already in Bedrock form keep their
own body when it is the one the job's model takes, so their extra parameters survive; a Titan Text or
Mistral model also takes its own text-completion body as written, in an InvokeModel job made for a part
whose every record is one (`part_invocation_type`).
"""

from __future__ import annotations

import json
from typing import Any

from tokenomy.batch.backends import estimated_usage as estimate_from_text
from tokenomy.batch.conversion import require_carried, require_one_cap
from tokenomy.batch.formats import BadLine, BatchRecord
from tokenomy.batch.native_bodies import PROMPT_FIELD, body_written_for
from tokenomy.batch.output_caps import catalog_most, claude_cap
from tokenomy.chat_response import Usage
from tokenomy.errors import UsageError
from tokenomy.providers.bedrock_answer_read import usage_from_bedrock
from tokenomy.providers.bedrock_families import body_family, prompt_family
from tokenomy.providers.usage_counts import checked_counts, usage_count

ANTHROPIC_VERSION = "bedrock-2023-05-31"
NATIVE_FAMILIES = ("anthropic", "nova", "llama")


def invocation_type(model: str) -> str:
    """The job type `model`'s records are sent in by default (a part of prompt bodies: `part_invocation_type`)."""
    return "InvokeModel" if body_family(model) in NATIVE_FAMILIES else "Converse"


# A body as a bad line names it, by the family it was written for ("converse" for a Converse body, which any model
# of a Converse job takes).
BODY_NAMES = {
    "anthropic": "Claude",
    "nova": "Nova",
    "llama": "Llama",
    "mistral": "Mistral",
    "titan": "Titan",
    "converse": "Converse",
}


def job_body(model: str) -> str:
    """Which body `model`'s batch job takes: its own family's for an InvokeModel job, else a Converse body."""
    return body_family(model) if invocation_type(model) == "InvokeModel" else "converse"


def own_prompt_body(body: dict[str, Any], model: str) -> bool:
    """Whether `body` is the text-completion body (Titan Text's, Mistral's) of `model`, a Converse-job model: sent as
    written, in an InvokeModel job."""
    return prompt_family(model) is not None and body_written_for(body) == prompt_family(model)


def sent_as_written(body: dict[str, Any], model: str) -> bool:
    """Whether a Bedrock line's body goes to `model`'s job as written: only when it is the body that job takes. An
    InvokeModel job takes one family's body (a Claude body in a Nova job is refused by Bedrock, after the job ran),
    so a body of another family, or a Converse one, is rebuilt for the model (conversion.py names what it drops)."""
    return body_written_for(body) == job_body(model) or own_prompt_body(body, model)


def own_prompt_line(rec: BatchRecord, model: str) -> bool:
    """Whether `rec` is a Bedrock line in `model`'s own text-completion body (`own_prompt_body`)."""
    body = rec.raw.get("modelInput") if rec.fmt == "bedrock" else None
    return isinstance(body, dict) and own_prompt_body(body, model)


def _kinds_said(model: str, own: int, others: int) -> str:
    name = BODY_NAMES[prompt_family(model) or "converse"]
    return (
        f"a Bedrock job for {model} takes one kind of body, and this file holds {own} {name} prompt line(s) (sent as "
        f"written, in an InvokeModel job) and {others} other line(s) (sent in a Converse job)"
    )


def mixed_kind_lines(records: list[BatchRecord], model: str) -> list[BadLine]:
    """The lines of the fewer kind (the model's own prompt bodies, or the others; the prompts on a tie) of a file
    mixing both for a Titan Text or Mistral model, as bad lines: one job cannot send both, and a prompt body cannot
    be rebuilt into messages without a guess (conversion.py)."""
    own = [rec for rec in records if own_prompt_line(rec, model)]
    others = [rec for rec in records if not own_prompt_line(rec, model)]
    if not own or not others:
        return []
    said = _kinds_said(model, len(own), len(others))
    if len(own) <= len(others):
        field = f"modelInput.{PROMPT_FIELD[body_written_for(own[0].raw['modelInput'])]}"
        fix = "the prompt lines, fewer, are refused; send them in a file of their own"
        return [BadLine(rec.line, field, f"{said}; {fix}") for rec in own]
    fix = "the other lines, fewer, are refused; send them in a file of their own"
    return [BadLine(rec.line, "-", f"{said}; {fix}") for rec in others]


def part_invocation_type(model: str, records: list[BatchRecord]) -> str:
    """The job type a part of `records` is sent in: InvokeModel when each is the model's own text-completion body
    (Titan Text's, Mistral's), else the model's default. A job takes one type, so a part mixing those with other
    lines is a UsageError, before anything is sent (validate refuses the file's fewer kind: `mixed_kind_lines`)."""
    own = sum(own_prompt_line(rec, model) for rec in records)
    if own == 0:
        return invocation_type(model)
    if own < len(records):
        raise UsageError(f"{_kinds_said(model, own, len(records) - own)}; put each kind in a file of its own")
    return "InvokeModel"


def _turns(rec: BatchRecord) -> tuple[str | None, list[dict[str, str]]]:
    """System text and user/assistant turns (system-role messages folded into the system prompt)."""
    system = [rec.system] if rec.system else []
    system += [m["content"] for m in rec.messages if m["role"] == "system"]
    return ("\n".join(system) or None), [m for m in rec.messages if m["role"] != "system"]


def _llama_prompt(system: str | None, turns: list[dict[str, str]]) -> str:
    # Llama 3 instruct chat template, as the Bedrock user guide shows for meta.llama3 models.
    parts = ["<|begin_of_text|>"]
    if system:
        parts.append(f"<|start_header_id|>system<|end_header_id|>\n\n{system}<|eot_id|>")
    for turn in turns:
        parts.append(f"<|start_header_id|>{turn['role']}<|end_header_id|>\n\n{turn['content']}<|eot_id|>")
    parts.append("<|start_header_id|>assistant<|end_header_id|>\n\n")
    return "".join(parts)


def _with(body: dict[str, Any], key: str, value: Any) -> dict[str, Any]:
    """`body` with `key` set when the record gave a value (0 included: a temperature of 0 is one)."""
    if value is not None:
        body[key] = value
    return body


def output_cap(model: str, rec: BatchRecord) -> int | None:
    """The output cap `rec` goes with in `model`'s job (None: none is sent): its own; a body sent as written, only the
    caps it has; one rebuilt, the model's maximum output within its window (`output_caps`). Where the catalog has no
    maximum, a Claude body, which requires max_tokens, gets the sync path's fallback (`claude_cap`); a Llama or Nova
    body is sent without max_gen_len / max_new_tokens, so the model's own default applies rather than a guess that
    cuts answers short; a Converse body never carries maxTokens unasked, since Converse's default is the model's
    maximum (InferenceConfiguration.maxTokens)."""
    if rec.max_tokens:
        return rec.max_tokens
    body = rec.raw.get("modelInput")
    if rec.fmt == "bedrock" and isinstance(body, dict) and sent_as_written(body, model):
        return None
    kind = job_body(model)
    if kind == "anthropic":
        return claude_cap(model, rec)
    return catalog_most(model, rec) if kind in ("llama", "nova") else None


def model_input(model: str, rec: BatchRecord) -> dict[str, Any]:
    """The record's `modelInput` for `model`'s batch job."""
    if (
        rec.fmt == "bedrock"
        and isinstance(rec.raw.get("modelInput"), dict)
        and sent_as_written(rec.raw["modelInput"], model)
    ):
        require_one_cap(rec)  # sent as written: a cap its body does not take fails the record after the job ran
        return rec.raw["modelInput"]
    require_carried(rec, f"a Bedrock {invocation_type(model)} job for {model}")
    system, turns = _turns(rec)
    max_tokens = output_cap(model, rec)
    kind = body_family(model)
    if kind == "anthropic":
        body: dict[str, Any] = {
            "anthropic_version": ANTHROPIC_VERSION,
            "max_tokens": max_tokens,
            "messages": [{"role": t["role"], "content": [{"type": "text", "text": t["content"]}]} for t in turns],
        }
        if system:
            body["system"] = system
        return _with(body, "temperature", rec.temperature)
    if kind == "llama":
        body = _with({"prompt": _llama_prompt(system, turns)}, "max_gen_len", max_tokens)
        return _with(body, "temperature", rec.temperature)
    body = {"messages": [{"role": t["role"], "content": [{"text": t["content"]}]} for t in turns]}
    if system:
        body["system"] = [{"text": system}]
    if kind == "nova":
        body["schemaVersion"] = "messages-v1"
    config = _with({}, "max_new_tokens" if kind == "nova" else "maxTokens", max_tokens)
    config = _with(config, "temperature", rec.temperature)
    if config:  # none without a cap or a temperature: each is optional
        body["inferenceConfig"] = config
    return body


def read_output(output: dict[str, Any]) -> tuple[str, Usage | None]:
    """Text and usage from a modelOutput of any supported shape (usage None when the body has none: the caller
    estimates it rather than record a billed answer as 0 tokens). A count no answer can have (text, a fraction, a
    boolean, negative, past MAX_ANSWER_TOKENS) is a ProviderError naming it, as the sync path refuses it."""
    if isinstance(output.get("content"), list):  # Anthropic Messages
        u = output.get("usage")
        text = "".join(b.get("text", "") for b in output["content"] if b.get("type", "text") == "text")
        if not isinstance(u, dict):
            return text, None
        names = ("input_tokens", "output_tokens", "cache_read_input_tokens", "cache_creation_input_tokens")
        # The writes to a 1-hour cache, priced at the 1-hour write price, as the sync path reads them.
        creation = u.get("cache_creation")
        creation = creation if isinstance(creation, dict) else {}
        one_hour = usage_count(creation.get("ephemeral_1h_input_tokens"), "Bedrock", "ephemeral_1h_input_tokens")
        return text, _counted(u, names, 0, one_hour)
    if isinstance(output.get("output"), dict):  # Converse and Nova
        u = output.get("usage")
        text = "".join(b.get("text", "") for b in output["output"]["message"]["content"])
        if not isinstance(u, dict):
            return text, None
        return text, usage_from_bedrock(u)  # as a Converse call's: its cacheDetails split the writes by TTL
    if "generation" in output:  # Llama
        if "prompt_token_count" not in output and "generation_token_count" not in output:
            return output["generation"], None
        return output["generation"], _counted(output, ("prompt_token_count", "generation_token_count"))
    if isinstance(output.get("results"), list):  # Titan text
        first = output["results"][0] if output["results"] else {}
        if "inputTextTokenCount" not in output and "tokenCount" not in first:
            return first.get("outputText", ""), None
        output_tokens = usage_count(first.get("tokenCount"), "Bedrock", "results[0].tokenCount")
        return first.get("outputText", ""), _counted(output, ("inputTextTokenCount",), output_tokens)
    if isinstance(output.get("outputs"), list):  # Mistral: usage travels in headers, not the body
        return "".join(o.get("text", "") for o in output["outputs"]), None
    return "", None


def output_usage(usage: dict[str, Any]) -> Usage | None:
    """A modelOutput's `usage` alone (read from a line too garbled to read whole): Claude's Messages counts, or
    Converse's and Nova's, as `read_output` reads them."""
    if "input_tokens" in usage or "output_tokens" in usage:
        return read_output({"content": [], "usage": usage})[1]
    return read_output({"output": {"message": {"content": []}}, "usage": usage})[1]


def _counted(usage: dict[str, Any], names: tuple[str, ...], *more: int) -> Usage:
    """A Usage of the counts `names` name in `usage` (input, output, cache read, cache write, in that order; one not
    sent is 0) and `more` after them, each checked as the sync path checks an answer's."""
    counts = [usage_count(usage.get(name), "Bedrock", name) for name in names]
    return checked_counts(Usage(*counts, *more), "Bedrock")


def estimated_usage(body: Any, text: str) -> Usage:
    """Tokens of a record whose output carries no usage, estimated from its prompt and answer (never recorded as
    nothing: the provider billed it): the body's `prompt` when it has one, else the whole body as JSON."""
    prompt = body.get("prompt") if isinstance(body, dict) and isinstance(body.get("prompt"), str) else None
    return estimate_from_text(prompt if prompt is not None else json.dumps(body or {}), text)
