"""The Gemini Batch API (`batches.create` with inline requests) through the official `google-genai` SDK.

Settings: `SubmitOptions.endpoint_url` (or GOOGLE_GEMINI_BASE_URL) for `tokenomy emulate gemini`, the API
key from `extra["api_key_env"]`'s variable or GEMINI_API_KEY / GOOGLE_API_KEY. Each record becomes one
inline GenerateContent request whose `metadata.key` is the record id, so results are matched by id, not
by position. Answers are priced at the model's batch rates by records.py (Gemini bills batch at half the
standard price); cached tokens a response reports are cache reads, as on demand.
"""

from __future__ import annotations

import json
import os
import re
from collections.abc import Iterator, Sequence
from datetime import datetime
from typing import Any

from tokenomy.batch.backends import REFUSED_PART, BatchBackend, RecordResult, SubmitOptions, utc_time
from tokenomy.batch.conversion import require_carried
from tokenomy.batch.formats import BatchRecord
from tokenomy.batch.output_lines import unanswered_failures
from tokenomy.chat_response import Usage
from tokenomy.errors import ProviderError, as_written
from tokenomy.providers.gemini_answer_read import USAGE_COUNTS
from tokenomy.providers.gemini_parts_read import usage_from_gemini
from tokenomy.providers.usage_counts import checked_counts, usage_count

STATUS_MAP = {
    "JOB_STATE_QUEUED": "scheduled",
    "JOB_STATE_PENDING": "submitted",
    "JOB_STATE_RUNNING": "in_progress",
    "JOB_STATE_SUCCEEDED": "completed",
    "JOB_STATE_PARTIALLY_SUCCEEDED": "partially_completed",
    "JOB_STATE_FAILED": "failed",
    "JOB_STATE_CANCELLING": "stopping",
    "JOB_STATE_CANCELLED": "stopped",
    "JOB_STATE_EXPIRED": "expired",
}

# google.rpc.Code INVALID_ARGUMENT: a job failed for what it was given (its input, its requests), not by a fault of
# Google's (INTERNAL, UNAVAILABLE, RESOURCE_EXHAUSTED...), which another run may not repeat.
INVALID_ARGUMENT = 3


def job_failure(error: Any) -> str:
    """A Gemini or Vertex AI job's error (a JobError: code, message) in the provider's words; one refused as given is
    marked REFUSED_PART, so `resume` does not send it unchanged to be refused again (as OpenAI's failed at
    validation)."""
    said = str(error.message or error)
    return f"{REFUSED_PART}: {said}" if error.code == INVALID_ARGUMENT else said


def inline_request(rec: BatchRecord) -> dict[str, Any]:
    """One record as an InlinedRequest (snake_case, as the SDK takes it); its id rides in metadata."""
    require_carried(rec, "a Gemini batch")
    system, turns = rec.system_and_turns()  # a system-role message is the system instruction, not a user turn
    contents = [
        {"role": "model" if m["role"] == "assistant" else "user", "parts": [{"text": m["content"]}]} for m in turns
    ]
    config: dict[str, Any] = {}
    if system:
        config["system_instruction"] = system
    if rec.max_tokens:
        config["max_output_tokens"] = int(rec.max_tokens)
    if rec.temperature is not None:  # `is not None`: 0 is a temperature
        config["temperature"] = rec.temperature
    request: dict[str, Any] = {"contents": contents, "metadata": {"key": rec.id}}
    if config:
        request["config"] = config
    return request


def display_name(key: str) -> str:
    """The name a part's job is created under: the API takes no idempotency key, so `find` looks for this."""
    return f"tokenomy {key}"[:128]


def find_by_display_name(backend: Any, key: str) -> str | None:
    """The newest job (Gemini API batch or Vertex AI batch prediction job) named for `key`, through the SDK's
    pager over every page: only a create cut short asks, and its job is among the newest."""
    client, name = backend._client(), display_name(key)

    def newest_first() -> str | None:
        for job in client.batches.list(config={"page_size": 100}):
            if job.display_name == name:
                return str(job.name)
        return None

    found: str | None = backend._call("batch list", newest_first)
    return found


class GeminiBatchBackend(BatchBackend):
    """Gemini API batches (AI Studio); a handle is the batch's name, `batches/...`."""

    name = "gemini"
    ledger_provider = "gcp.gemini"  # as GeminiProvider records on-demand calls, so reports see one provider

    def __init__(self, options: SubmitOptions | None = None) -> None:
        self.options = options or SubmitOptions()
        self._sdk: Any = None
        self._target: tuple | None = None

    def _client(self) -> Any:
        """One SDK client per target, kept: a `genai.Client` closes its connections when it is collected."""
        from tokenomy.providers.gemini_client import gemini_client

        base_url = self.options.endpoint_url or os.environ.get("GOOGLE_GEMINI_BASE_URL")
        target = (base_url, self.options.extra.get("api_key_env"))
        if self._sdk is None or self._target != target:
            self._sdk = gemini_client(base_url=base_url, api_key_env=target[1])
            self._target = target
        return self._sdk

    def _call(self, what: str, fn, *args: Any, **kwargs: Any) -> Any:
        from tokenomy.providers.gemini_faults import map_gemini_error

        try:
            return fn(*args, **kwargs)
        except Exception as exc:
            error = map_gemini_error(exc)
            raise ProviderError(f"Gemini {what} failed: {error}", error.kind, status=error.status) from None

    def check(self, options: SubmitOptions) -> None:
        # A client for `options` is built (a missing API key is named here) on a backend of its own: this one keeps
        # the settings it was made with (resume checks a job's stored settings with the backend it calls).
        type(self)(options)._client()

    def input_line(self, model: str, rec: BatchRecord) -> str:
        return json.dumps(inline_request(rec))  # one of the batch's inline requests, which count in its 20 MB

    def submit(
        self, job_id: str, model: str, records: list[BatchRecord], options: SubmitOptions, key: str | None = None
    ) -> str:
        self.options = options
        client = self._client()
        job = self._call(
            "batch create",
            client.batches.create,
            model=model,
            src=[inline_request(rec) for rec in records],
            config={"display_name": display_name(key or job_id)},
        )
        return str(job.name)

    def find(self, key: str) -> str | None:
        return find_by_display_name(self, key)

    def describe(self, handle: str) -> Any:
        """The BatchJob, as the SDK returns it."""
        return self._call("batch get", self._client().batches.get, name=handle)

    def ended_at(self, handle: str) -> datetime | None:
        return utc_time(self.describe(handle).end_time)

    def status(self, handle: str) -> tuple[str, str | None]:
        job = self.describe(handle)
        state_name = getattr(job.state, "value", job.state)
        state = STATUS_MAP.get(str(state_name), "in_progress")
        message = None
        # google-genai (3.6) does not carry a Gemini API batch's error over from its operation: job.error is None
        # here until it does, and a failed batch then gives no reason (Vertex AI's jobs carry theirs)
        if job.error is not None:
            message = job_failure(job.error)
        elif state == "completed" and job.dest is not None:
            failed = sum(1 for r in job.dest.inlined_responses or [] if r.error is not None)
            if failed:
                state, message = "partially_completed", f"{failed} requests failed; see their results"
        return state, message

    def results(self, handle: str) -> Iterator[RecordResult]:
        return self.part_results(handle, ())

    def part_results(self, handle: str, sent: Sequence[str]) -> Iterator[RecordResult]:
        """One result per response, by the record id its metadata.key carries. A response whose key was lost names
        no record: it is never yielded under its position ("0", which may be another record's id). In a batch that
        answered every request (succeeded, a response for each of `sent`), the records no response names are failed,
        quoting it; in a batch that ended short they stay missing, and resume sends them again. The response itself
        is yielded too, under where it is (`response N of BATCH`), with its usage: it was billed, and
        `collect.collect_part` keeps it as the job's unmatched answer."""
        job = self.describe(handle)
        served = str(job.model or "").rsplit("/", 1)[-1] or None
        responses = (job.dest.inlined_responses if job.dest else None) or []
        answered: set[str] = set()
        nameless: list[tuple[str, str]] = []  # (where, response) of responses whose metadata names no record
        # Those responses themselves, under where they are: billed, so kept as the job's unmatched answers with their
        # usage (collect.collect_part prices them), where they were dropped, or only logged.
        unmatched: list[RecordResult] = []
        for i, item in enumerate(responses):
            raw = item.model_dump(mode="json", exclude_none=True)
            rid = (item.metadata or {}).get("key")
            if not rid:
                where = f"response {i + 1} of {handle}"
                nameless.append((where, as_written(raw)))
                unmatched.append(_result(item, where, served, raw))
                continue
            answered.add(rid)
            yield _result(item, rid, served, raw)
        state = str(getattr(job.state, "value", job.state))
        if nameless and state == "JOB_STATE_SUCCEEDED" and len(responses) >= len(sent):
            heading = "output without its record's key: no response names this record"
            yield from unanswered_failures(sent, answered, nameless, served, heading)
        yield from unmatched

    def cancel(self, handle: str) -> None:
        state, _ = self.status(handle)
        if state in ("submitted", "scheduled", "in_progress"):
            self._call("batch cancel", self._client().batches.cancel, name=handle)


# google.rpc.Code by number: a batch response's error is a google.rpc.Status, whose code is gRPC's canonical code (8
# for a throttled request, 14 for an unavailable model), not an HTTP status (which the emulator, like the sync API,
# sends). `backends.transient` knows a throttled or failed record by the name, so resume sends it again.
GRPC_CODES = {
    1: "CANCELLED", 2: "UNKNOWN", 3: "INVALID_ARGUMENT", 4: "DEADLINE_EXCEEDED", 5: "NOT_FOUND", 6: "ALREADY_EXISTS",
    7: "PERMISSION_DENIED", 8: "RESOURCE_EXHAUSTED", 9: "FAILED_PRECONDITION", 10: "ABORTED", 11: "OUT_OF_RANGE",
    12: "UNIMPLEMENTED", 13: "INTERNAL", 14: "UNAVAILABLE", 15: "DATA_LOSS", 16: "UNAUTHENTICATED",
}  # fmt: skip


def status_text(error: Any) -> str:
    """A response's error as a record's stored error: its code (a gRPC code by its name) and message."""
    code = error.code
    return f"{GRPC_CODES.get(code, code) if isinstance(code, int) else code}: {error.message}"


def batch_usage(meta: Any, sent: dict[str, Any] | None = None) -> Usage | None:
    """A result's usage_metadata as Usage, its counts checked as the sync path checks an answer's (`answer_usage`):
    a negative count, or one past MAX_ANSWER_TOKENS, is a ProviderError naming it, not a negative cost or a row set
    aside out of the ledger. `sent` is the usageMetadata as written, where it is at hand (Vertex's output line): the
    SDK reads text ("7") and true as numbers, which no answer sends. No usage_metadata is None, which `records`
    estimates (usage_from_gemini would say 0 tokens, $0)."""
    for name, value in (sent or {}).items():
        if _snake(name) in USAGE_COUNTS:
            usage_count(value, "the batch", name)
    if meta is None:
        return None
    for name in USAGE_COUNTS:
        count = usage_count(getattr(meta, name, None), "the batch", name)
        if count < 0:  # usage_from_gemini takes cached tokens out of the prompt's at 0 or more, which would hide it
            raise ProviderError(
                f"the batch answered with token counts no answer can have: {name} {count}", reached=True
            )
    return checked_counts(usage_from_gemini(meta), "the batch")


def _snake(name: str) -> str:
    """A REST field name as the SDK spells it: promptTokenCount is prompt_token_count."""
    return re.sub(r"(?<!^)(?=[A-Z])", "_", name).lower()


def _result(item: Any, rid: str, served: str | None, raw: dict[str, Any]) -> RecordResult:
    """One inlined response as the result of record `rid`: its answer and usage, or its error."""
    if item.error is not None or item.response is None:
        detail = status_text(item.error) if item.error is not None else "no response"
        return RecordResult(rid, error=detail, model=served, raw=raw)
    response = item.response
    try:
        usage = batch_usage(response.usage_metadata)
    except ProviderError as exc:  # this record's failure, as another malformed answer is; the rest are kept
        return RecordResult(rid, error=f"unreadable usage: {exc}", model=served, raw=raw)
    return RecordResult(rid, text=response.text or "", usage=usage, model=response.model_version or served, raw=raw)
