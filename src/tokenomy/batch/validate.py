"""Validate a batch file for a model: every bad line named, tokens and cost at batch vs on-demand."""

from __future__ import annotations

from dataclasses import dataclass, field
from decimal import Decimal
from pathlib import Path
from typing import Any

from tokenomy.batch.bedrock_bodies import (
    BODY_NAMES,
    body_written_for,
    invocation_type,
    job_body,
    mixed_kind_lines,
    sent_as_written,
)
from tokenomy.batch.conversion import prompt_family_name, prompt_rebuilt, two_caps_as_written, uncarried
from tokenomy.batch.formats import BadLine, BatchRecord, read_file
from tokenomy.batch.line_forms import FORMS
from tokenomy.batch.line_tool_pairs import unpaired_tools
from tokenomy.batch.output_caps import LOCAL_MAX_TOKENS
from tokenomy.batch.record_tokens import record_estimate, sends_media
from tokenomy.batch.worst_case import sent_cap
from tokenomy.chat_response import Usage
from tokenomy.errors import TokenomyError, UsageError, as_written
from tokenomy.pricing.catalog import default_catalog
from tokenomy.pricing.cost import compute_cost


@dataclass
class ValidationReport:
    """Good records, bad lines, token estimate and both prices."""

    path: str
    model: str
    records: list[BatchRecord]
    bad: list[BadLine]
    input_tokens: int = 0
    output_tokens: int = 0
    on_demand_usd: Decimal | None = None
    batch_usd: Decimal | None = None
    # The prices behind both estimates (one catalog entry): who priced them, their source and as_of.
    priced_by: str = ""
    price_source: str = ""
    price_as_of: str = ""
    notes: list[str] = field(default_factory=list)
    backend: str | None = None  # the backend the lines were checked for, if one was named

    def to_json(self) -> dict[str, Any]:
        saving = (
            (self.on_demand_usd - self.batch_usd)
            if (self.on_demand_usd is not None and self.batch_usd is not None)
            else None
        )
        return {
            "file": self.path,
            "model": self.model,
            "good_records": len(self.records),
            "bad_lines": [b.to_json() for b in self.bad],
            "bad_count": len(self.bad),
            "input_tokens": self.input_tokens,
            "output_tokens": self.output_tokens,
            "on_demand_usd": self.on_demand_usd,
            "batch_usd": self.batch_usd,
            "saving_usd": saving,
            "priced_by": self.priced_by,
            "price_source": self.price_source,
            "price_as_of": self.price_as_of,
            "notes": self.notes,
        }


# The backends that send a line of each provider form as written (a Bedrock one only to a job taking its body).
SENT_AS_WRITTEN_BY = {"openai": ("openai", "azure"), "bedrock": ("bedrock",)}


def rebuilt_for(rec: BatchRecord, backend: str, model: str) -> str | None:
    """How `backend` is named in a bad line when it rebuilds `rec` (see conversion.py), or None when it sends the
    record's line as written (an OpenAI line to OpenAI or Azure, a Bedrock body to a job whose model takes it)."""
    if rec.fmt in SENT_AS_WRITTEN_BY and backend not in SENT_AS_WRITTEN_BY[rec.fmt]:
        return f"--backend {backend}"
    if rec.fmt == "bedrock" and not sent_as_written(rec.raw["modelInput"], model):
        kind, takes, written = invocation_type(model), job_body(model), body_written_for(rec.raw["modelInput"])
        job = f"{'an' if kind == 'InvokeModel' else 'a'} {kind} job taking a {BODY_NAMES[takes]} body"
        return f"--backend bedrock --model {model} ({job}, not a {BODY_NAMES[written]} one)"
    return None


# Each provider's documented range (inclusive) of the sampling options a batch line can carry, by the catalog's provider
# name: a value outside it passed here and at submit, and failed its record when the job ran, hours later.
SAMPLING_RANGES: dict[str, dict[str, tuple[float, float]]] = {
    # platform.openai.com/docs/api-reference/chat/create (Azure OpenAI's are the same)
    "openai": {"temperature": (0, 2), "top_p": (0, 1), "presence_penalty": (-2, 2), "frequency_penalty": (-2, 2)},
    # docs.anthropic.com/en/api/messages
    "anthropic": {"temperature": (0, 1), "top_p": (0, 1)},
    # ai.google.dev/api/generate-content#generationconfig (Vertex AI's generationConfig: the same)
    "google": {"temperature": (0, 2), "top_p": (0, 1)},
    # Every Bedrock batch body has 0 to 1: Claude's, Nova's, Llama's, Mistral's and Titan Text's native bodies, and
    # Converse's InferenceConfiguration, which any other model's job takes (bedrock_bodies.job_body).
    "aws.bedrock": {"temperature": (0, 1), "top_p": (0, 1)},
}
TITAN_SAMPLING = (("temperature", "temperature"), ("topP", "top_p"))  # Titan Text's names in textGenerationConfig
PROVIDER_NAMES = {"openai": "OpenAI", "anthropic": "Anthropic", "google": "Gemini", "aws.bedrock": "Bedrock"}


def _sampling_places(rec: BatchRecord) -> list[tuple[str, str, Any]]:
    """(place as the line writes it, option, value) of each sampling option the line gives."""
    if rec.fmt == "openai":
        body = rec.raw["body"]
        names = ("temperature", "top_p", "presence_penalty", "frequency_penalty")
        return [(f"body.{name}", name, body[name]) for name in names if body.get(name) is not None]
    if rec.fmt == "bedrock":
        body = rec.raw["modelInput"]
        inference = body.get("inferenceConfig") or {}
        places = [("modelInput", body, "temperature", "temperature"), ("modelInput", body, "top_p", "top_p")]
        places += [("modelInput.inferenceConfig", inference, "temperature", "temperature")]
        places += [("modelInput.inferenceConfig", inference, "topP", "top_p")]
        titan = body.get("textGenerationConfig")  # Titan Text's; formats.py refused one that is not an object
        titan = titan if isinstance(titan, dict) else {}
        places += [("modelInput.textGenerationConfig", titan, key, name) for key, name in TITAN_SAMPLING]
        return [(f"{at}.{key}", name, held[key]) for at, held, key, name in places if held.get(key) is not None]
    return [("temperature", "temperature", rec.temperature)] if rec.temperature is not None else []


def streamed(rec: BatchRecord) -> BadLine | None:
    """An OpenAI line, sent as written, that asks to stream: a batch answers each request whole, and OpenAI's batch
    validation refuses such a line, failing the whole batch (every record sent with it), which resume would send
    again as it was."""
    value = rec.raw["body"].get("stream") if rec.fmt == "openai" else None
    if value is None or value is False:
        return None
    return BadLine(
        rec.line,
        "body.stream",
        f"{as_written(value)}: OpenAI's batch refuses a request that streams (it answers each one whole), failing "
        "every record of the batch; remove it",
    )


def out_of_range(rec: BatchRecord, provider: str, model: str) -> BadLine | None:
    """The first sampling option of `rec` outside `provider`'s documented range, as a bad line naming its place and
    the range; None when every one is in range (or the provider's ranges are not known: the local model's)."""
    ranges = SAMPLING_RANGES.get(provider, {})
    for place, name, value in _sampling_places(rec):
        if name not in ranges:
            continue
        low, high = ranges[name]
        number = isinstance(value, (int, float)) and not isinstance(value, bool)
        if not number or not (low <= value <= high):
            return BadLine(
                rec.line,
                place,
                f"must be a number from {low:g} to {high:g} for {PROVIDER_NAMES[provider]} ({model}), not "
                f"{as_written(value)}; the provider would refuse the record when the job runs",
            )
    return None


def validate_file(
    path: str | Path,
    model: str,
    region: str | None = None,
    default_max_tokens: int = LOCAL_MAX_TOKENS,
    backend: str | None = None,
) -> ValidationReport:
    """Read `path`, check each record against `model`'s context window and, given the `backend` it will be sent
    with, that every key of its line reaches the provider; price the good ones. A record's output is estimated at the
    cap it is sent with (its max_tokens, else the one `backend` sends it: `worst_case.sent_cap`), else, sent with
    none, at `default_max_tokens`."""
    records, bad = read_file(path)
    entry = default_catalog().lookup(model, region)
    report = ValidationReport(str(path), model, [], bad, backend=backend)
    with_media: list[str] = []
    # A Titan Text or Mistral model's job sends its own prompt bodies or messages, not both: the fewer are refused.
    mixed = {bad.line: bad for bad in mixed_kind_lines(records, model)} if backend in (None, "bedrock") else {}
    for rec in records:
        target = rebuilt_for(rec, backend, model) if backend else None
        if target:
            lost = uncarried(rec, target)
        elif backend is None and rec.fmt == "bedrock" and rebuilt_for(rec, "bedrock", model):
            # A body the model's job does not take is rebuilt even by Bedrock: --backend checks that. A prompt body
            # no backend can send for a model not of its family.
            lost = prompt_rebuilt(rec, f"--model {model} (not a {prompt_family_name(rec)} model)")
        else:  # sent as written (or to no backend yet, as its own would send it): caps its provider refuses
            lost = mixed.get(rec.line) or two_caps_as_written(rec) or streamed(rec)
        if lost is None:
            lost = unpaired_tools(rec) or out_of_range(rec, entry.provider, model)
        if lost is not None:
            bad.append(lost)
            continue
        tokens_in = record_estimate(rec)
        tokens_out = sent_cap(rec, backend, model) or default_max_tokens
        if entry.context_window and tokens_in + tokens_out > entry.context_window:
            bad.append(
                BadLine(
                    rec.line,
                    "prompt",
                    f"over the model's context: ~{tokens_in} input + "
                    f"{tokens_out} output tokens > {entry.context_window}",
                )
            )
            continue
        report.records.append(rec)
        if sends_media(rec.raw):
            with_media.append(f"{rec.id} (line {rec.line})")
        report.input_tokens += tokens_in
        report.output_tokens += tokens_out
    bad.sort(key=lambda b: b.line)
    usage = Usage(input_tokens=report.input_tokens, output_tokens=report.output_tokens)
    on_demand = compute_cost(usage, model, region, mode="on_demand")
    report.on_demand_usd = on_demand.total_usd
    report.priced_by, report.price_source, report.price_as_of = on_demand.priced_by, on_demand.source, on_demand.as_of
    if entry.has_batch:
        report.batch_usd = compute_cost(usage, model, region, mode="batch").total_usd
    else:
        report.notes.append(
            f"{entry.model} has no batch price ({entry.provider}); the local runner "
            "runs it at on-demand price under your rate limits"
        )
    sent = f", else the one --backend {backend} sends it" if backend else ""
    report.notes.append(
        f"output tokens estimated at each record's output cap (its max_tokens{sent}; {default_max_tokens} for one "
        "sent with none)"
    )
    if with_media:
        more = f" and {len(with_media) - 5} more" if len(with_media) > 5 else ""
        report.notes.append(
            f"warning: audio or video is not counted in the input tokens or the cost (billed by its length, which a "
            f"line does not give): {len(with_media)} record(s) send it, {', '.join(with_media[:5])}{more}; their "
            "cost is higher than estimated"
        )
    others = _other_models(report.records, entry.model, region)
    if others:
        report.notes.append(
            f"body.model names another model on {sum(others.values())} line(s) ({', '.join(sorted(others))}): they "
            f"are priced and sent as {model} (--model); split the file by model to run them on their own"
        )
    forms = {fmt: sum(1 for r in records if r.fmt == fmt) for fmt in FORMS}
    seen = [f"{n} as {FORMS[fmt]}" for fmt, n in forms.items() if n]
    if seen:  # say which form each line was read as; a mix usually means two files were concatenated
        report.notes.append("lines read: " + "; ".join(seen) + ("; mixed forms in one file" if len(seen) > 1 else ""))
    if backend is None and (forms["openai"] or forms["bedrock"]):
        report.notes.append(
            "OpenAI and Bedrock lines are sent as written only to their own backend; elsewhere they are rebuilt and "
            "a key the rebuild does not carry is refused: pass --backend to check them for the one you will use"
        )
    return report


def _other_models(records: list[BatchRecord], model: str, region: str | None) -> dict[str, int]:
    """Per model an OpenAI batch line names in body.model that is not `model` (its aliases and snapshots are the
    same model), how many lines name it: submit sends every line as `model`."""
    counts: dict[str, int] = {}
    for rec in records:
        named = rec.raw.get("body", {}).get("model") if rec.fmt == "openai" else None
        if not isinstance(named, str) or not named or named == model:
            continue
        try:
            same = default_catalog().lookup(named, region).model == model
        except TokenomyError:
            same = False
        if not same:
            counts[named] = counts.get(named, 0) + 1
    return counts


def require_good(report: ValidationReport) -> None:
    """Fail when no record survived validation, naming the first bad lines (line, field, reason) and the fix."""
    if not report.records:
        shown = "; ".join(
            f"line {b.line}: {b.field}: {b.reason}" if b.field != "-" else f"line {b.line}: {b.reason}"
            for b in report.bad[:3]
        )
        more = f"; and {len(report.bad) - 3} more" if len(report.bad) > 3 else ""
        said = f"{len(report.bad)} bad lines: {shown}{more}" if report.bad else "the file holds no record"
        checked_for = f" --backend {report.backend}" if report.backend else ""
        raise UsageError(
            f"{report.path}: no valid records ({said}); fix them, then check the file with "
            f"`tokenomy batch validate {report.path} --model {report.model}{checked_for}`"
        )
