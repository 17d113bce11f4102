"""OpenAI Batch API: one JSONL file per part, one batch per file, results from the output/error files.

Settings: `SubmitOptions.endpoint_url` (or OPENAI_BASE_URL) for emulators and compatible servers,
the API key from `extra["api_key"]` or OPENAI_API_KEY. Requests use `max_completion_tokens`, which
every current chat model accepts. Requests the batch never ran (error codes batch_cancelled /
batch_expired) are left out of `results`, so records.py counts them as missing and jobs.py can resubmit them.
"""

from __future__ import annotations

import json
import os
import time
from collections.abc import Iterator
from datetime import datetime
from typing import Any
from urllib.parse import urlparse

from tokenomy.batch.backends import REFUSED_PART, BatchBackend, RecordResult, SubmitOptions, api_key, utc_time
from tokenomy.batch.conversion import require_carried, require_one_cap
from tokenomy.batch.formats import BatchRecord
from tokenomy.batch.output_lines import (
    broken_line,
    id_shown,
    misshapen_or,
    output_object,
    unanswered_failures,
    unplaced,
    usage_shown,
)
from tokenomy.chat_response import Usage
from tokenomy.errors import ProviderError, as_written
from tokenomy.providers.openai_wire_read import count_audio
from tokenomy.providers.usage_counts import checked_counts, usage_count

ENDPOINT = "/v1/chat/completions"
STATUS_MAP = {
    "validating": "validating",
    "in_progress": "in_progress",
    "finalizing": "in_progress",
    "completed": "completed",
    "failed": "failed",
    "expired": "expired",
    "cancelling": "stopping",
    "cancelled": "stopped",
}
NEVER_RAN = ("batch_cancelled", "batch_expired")
PART_KEY = "tokenomy_part"  # the metadata naming the part a batch was made for (see BatchBackend.find)
CREATE_ATTEMPTS = 3


def request_body(model: str, rec: BatchRecord) -> dict[str, Any]:
    """The chat.completions body for a record; OpenAI-form records keep their own parameters."""
    if rec.fmt == "openai" and isinstance(rec.raw.get("body"), dict):
        require_one_cap(rec)
        return {**rec.raw["body"], "model": model}
    require_carried(rec, "an OpenAI batch")
    messages = ([{"role": "system", "content": rec.system}] if rec.system else []) + [
        {"role": m["role"], "content": m["content"]} for m in rec.messages
    ]
    body: dict[str, Any] = {"model": model, "messages": messages}
    if rec.max_tokens:
        body["max_completion_tokens"] = rec.max_tokens
    if rec.temperature is not None:  # `is not None`: 0 is a temperature
        body["temperature"] = rec.temperature
    return body


def _base_url(url: str | None) -> str | None:
    # Compatible servers live under /v1; accept the bare host:port an emulator prints, too.
    if url and urlparse(url).path in ("", "/"):
        return url.rstrip("/") + "/v1"
    return url


class OpenAIBatchBackend(BatchBackend):
    """Files + Batches through the official `openai` SDK. Azure's subclass changes the client, the
    endpoint name and what a line's `model` says (a deployment)."""

    name = "openai"
    label = "OpenAI"
    endpoint = ENDPOINT

    def __init__(self, options: SubmitOptions | None = None) -> None:
        self.options = options or SubmitOptions()

    def _client(self):
        from openai import OpenAI

        base_url = _base_url(self.options.endpoint_url or os.environ.get("OPENAI_BASE_URL"))
        return OpenAI(api_key=api_key(self.options, "OPENAI_API_KEY", "OpenAI"), base_url=base_url)

    def _call(self, what: str, fn, *args: Any, **kwargs: Any) -> Any:
        import openai

        try:
            return fn(*args, **kwargs)
        except openai.APIStatusError as exc:
            kind = (
                "throttled" if exc.status_code == 429 else ("client_error" if exc.status_code < 500 else "server_error")
            )
            raise ProviderError(
                f"{self.label} {what} failed: {exc.status_code}: {exc.message}", kind, status=exc.status_code
            ) from None
        except openai.APIConnectionError as exc:
            # Name the address tried and where it came from: the SDK's own text is only "Connection error."
            url = getattr(getattr(exc, "request", None), "url", None)
            raise ProviderError(
                f"{self.label} {what} failed: {exc} (calling {url}); check --endpoint-url or "
                f"{self.endpoint_env} and that the server is up",
                "timeout" if isinstance(exc, openai.APITimeoutError) else "server_error",
            ) from None

    endpoint_env = "OPENAI_BASE_URL"

    def line_model(self, model: str) -> str:
        """What each line's body names as `model` (Azure: the deployment)."""
        return model

    def input_line(self, model: str, rec: BatchRecord) -> str:
        body = request_body(self.line_model(model), rec)
        return json.dumps({"custom_id": rec.id, "method": "POST", "url": self.endpoint, "body": body})

    def check(self, options: SubmitOptions) -> None:
        # A client for `options` is built (a missing key or endpoint is named here) on a backend of its own: this
        # one keeps the settings it was made with (resume checks a job's stored settings with the backend it calls).
        type(self)(options)._client()

    def submit(
        self, job_id: str, model: str, records: list[BatchRecord], options: SubmitOptions, key: str | None = None
    ) -> str:
        self.options = options
        key = (key or job_id)[:512]  # a metadata value's limit
        client = self._client()
        data = "".join(self.input_line(model, rec) + "\n" for rec in records).encode()
        upload = self._call("file upload", client.files.create, file=(f"{job_id}.jsonl", data), purpose="batch")
        request = {
            "input_file_id": upload.id,
            "endpoint": self.endpoint,
            "completion_window": "24h",
            "metadata": {"tokenomy_job": job_id[:512], PART_KEY: key},
        }
        # The API takes no idempotency key, and the SDK's own retry of a create whose answer was lost (a timeout, a
        # dropped connection) made a second batch, run and billed again. So a create is sent again only once the
        # batches listed show none under `key`.
        create = client.with_options(max_retries=0).batches.create
        for attempt in range(CREATE_ATTEMPTS):
            try:
                return self._call("batch create", create, **request).id
            except ProviderError as exc:
                if exc.kind == "client_error" or attempt == CREATE_ATTEMPTS - 1:
                    raise
                failed = exc
            try:
                found = self.find(key)
            except ProviderError as exc:
                raise ProviderError(f"{failed}; whether the batch was made is not known ({exc})", failed.kind) from None
            if found is not None:
                return found
            time.sleep(2**attempt)  # as the SDK would have waited (1 s, then 2 s)
        raise AssertionError("unreachable: the last attempt returns or raises")

    def find(self, key: str) -> str | None:
        client = self._client()

        def newest_first() -> str | None:  # every page: only a create cut short asks, and its batch is recent
            return next((b.id for b in client.batches.list(limit=100) if (b.metadata or {}).get(PART_KEY) == key), None)

        return self._call("batch list", newest_first)

    def describe(self, handle: str):
        """The Batch object, as the SDK returns it."""
        return self._call("batch retrieve", self._client().batches.retrieve, handle)

    def status(self, handle: str) -> tuple[str, str | None]:
        batch = self.describe(handle)
        state = STATUS_MAP[batch.status]
        failed = batch.request_counts.failed if batch.request_counts else 0
        if state == "completed" and failed:
            state = "partially_completed"
        notes = []
        if batch.errors and batch.errors.data:
            errors = batch.errors.data
            # A line of the file uploaded for the part, which the user never sees: named with the record it holds.
            sent = self._sent_ids(batch.input_file_id) if any(e.line for e in errors) else {}
            said = "; ".join(self._line_error(e.line, e.message, sent) for e in errors)
            # Failed at validation (lines or models it refuses), not by a fault of its own: refused as written.
            whole = state == "failed" and all(e.code and e.code != "server_error" for e in errors)
            notes.append(f"{REFUSED_PART}: {said}" if whole else said)
        elif failed:
            notes.append(f"{failed} requests failed; `tokenomy batch results` gives each one's error")
        counts = batch.request_counts
        never_ran = counts.total - counts.completed - counts.failed if counts else 0
        if state in ("expired", "stopped") and never_ran > 0:  # else the reason they have no result is nowhere
            why = f" (its {batch.completion_window} completion window ran out)" if state == "expired" else ""
            ended = "expired" if state == "expired" else "cancelled"
            notes.insert(0, f"{ended}: {never_ran} of its {counts.total} requests never ran{why}")
        return state, "; ".join(notes) or None

    def ended_at(self, handle: str) -> datetime | None:
        batch = self.describe(handle)
        return utc_time(batch.completed_at or batch.expired_at or batch.cancelled_at or batch.failed_at)

    def _sent_ids(self, file_id: str | None) -> dict[int, str]:
        """The custom_id on each line of an input file, by line number."""
        if not file_id:
            return {}
        text = self._call("file content", self._client().files.content, file_id).text
        lines = enumerate(text.split("\n"), 1)
        return {n: str(item["custom_id"]) for n, x in lines if "custom_id" in (item := output_object(x) or {})}

    @staticmethod
    def _line_error(line: int | None, message: Any, sent: dict[int, str]) -> str:
        if not line:
            return str(message)
        record = f" (record {sent[line]!r})" if line in sent else ""
        return f"line {line} of the batch's input file{record}: {message}"

    def results(self, handle: str) -> Iterator[RecordResult]:
        """One result per record answered. A line that is not JSON is its record's failure, found by the custom_id
        the line still shows, else (a completed batch has a line for every request) as the request no readable
        line answers; in a batch that ended short, such a record stays missing, and resume sends it again."""
        batch = self.describe(handle)
        client = self._client()
        seen: set[str] = set()
        never_ran: set[str] = set()
        nameless: list[tuple[str, str]] = []  # (where, line) of lines not JSON that show no custom_id
        for what, file_id in (("output", batch.output_file_id), ("error", batch.error_file_id)):
            if not file_id:
                continue
            text = self._call("file content", client.files.content, file_id).text
            # Lines end at "\n" alone: splitlines() also cuts at U+2028, U+0085 and the like, which JSON may hold
            # raw inside a string, and so turned an answered record into an unreadable line.
            for number, line in enumerate(text.split("\n"), 1):
                if not line.strip():
                    continue
                item = output_object(line)
                if item is None:
                    where = f"line {number} of the {what} file {file_id}"
                    shown = usage_shown(line, "usage", _usage)
                    result = broken_line(line, where, id_shown(line, "custom_id"), batch.model, nameless, shown)
                    if result is None:
                        continue
                else:
                    result = misshapen_or(
                        self._record, item, batch.model, "custom_id", f"line {number} of the {what} file {file_id}"
                    )
                    if result is None:
                        never_ran.add(str(item.get("custom_id")))
                if result is not None and result.id not in seen:
                    seen.add(result.id)
                    yield result
        if nameless and batch.status == "completed" and batch.input_file_id:
            sent = self._call("file content", client.files.content, batch.input_file_id).text
            ids = (str((output_object(x) or {}).get("custom_id")) for x in sent.split("\n") if x.strip())
            yield from unanswered_failures(ids, seen | never_ran, nameless, batch.model)
        else:  # the job ended short: the lines are kept as its unmatched ones (collect.collect_part), not only logged
            yield from unplaced(nameless, batch.model)

    @staticmethod
    def _record(line: dict[str, Any], model: str | None) -> RecordResult | None:
        rid = str(line.get("custom_id"))
        error, response = line.get("error"), line.get("response")
        if error and error.get("code") in NEVER_RAN:
            return None  # not answered: the record stays missing and can be resubmitted
        if error or not response:
            return RecordResult(
                rid, error=f"{(error or {}).get('code')}: {(error or {}).get('message')}", model=model, raw=line
            )
        body = response.get("body") or {}
        if response.get("status_code") != 200:
            detail = (body.get("error") or {}).get("message") or as_written(body)
            return RecordResult(rid, error=f"{response.get('status_code')}: {detail}", model=model, raw=line)
        u = body.get("usage")
        usage = None  # an answer without usage (some compatible servers): estimated where it is recorded, not $0
        if isinstance(u, dict):
            try:
                usage = _usage(u)
            except ProviderError as exc:  # this record's failure, as another malformed line is; the rest are kept
                return RecordResult(rid, error=f"unreadable usage: {exc}", model=model, raw=line)
        choice = (body.get("choices") or [{}])[0]
        return RecordResult(
            rid,
            text=(choice.get("message") or {}).get("content") or "",
            usage=usage,
            model=body.get("model") or model,
            raw=line,
        )

    def cancel(self, handle: str) -> None:
        if self.describe(handle).status in ("validating", "in_progress"):
            self._call("batch cancel", self._client().batches.cancel, handle)


def _usage(u: dict[str, Any]) -> Usage:
    """An output line's usage, its counts checked as the sync path checks an answer's (`usage_count`,
    `checked_counts`): text, a fraction, a boolean, a negative count or one past MAX_ANSWER_TOKENS is a
    ProviderError naming it, not 1 token, a negative cost or a TypeError that loses the job's other results."""
    details = u.get("prompt_tokens_details") or {}
    cached = usage_count(details.get("cached_tokens"), "the batch", "cached_tokens")
    written = usage_count(details.get("cache_write_tokens"), "the batch", "cache_write_tokens")  # GPT-6.x bills them
    prompt = usage_count(u.get("prompt_tokens"), "the batch", "prompt_tokens")
    completion = usage_count(u.get("completion_tokens"), "the batch", "completion_tokens")
    counted = Usage(prompt - cached - written, completion, cached, written)
    audio_prompt, audio_output = (
        details.get("audio_tokens"),
        (u.get("completion_tokens_details") or {}).get("audio_tokens"),
    )
    if audio_prompt or audio_output:  # an audio model's line bills its audio at its own prices, as a sync answer's
        count_audio(counted, audio_prompt, audio_output, "the batch")
    return checked_counts(counted, "the batch")
