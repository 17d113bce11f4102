"""Anthropic's Message Batches API (`messages.batches`) through the official `anthropic` SDK.

Settings: `SubmitOptions.endpoint_url` (or ANTHROPIC_BASE_URL) for `tokenomy emulate anthropic` and compatible
servers, the API key from `extra["api_key"]` or ANTHROPIC_API_KEY. A part is one batch: each record is one
`{custom_id, params}` request whose params are a Messages API body rebuilt from the record (any input form; keys the
rebuild does not carry are refused by validation, see conversion.py). A record id Anthropic's custom_id pattern
(`^[a-zA-Z0-9_-]{1,64}$`) refuses goes as a hash of it, mapped back by `part_results`. Answers are priced at the batch
rates by records.py; usage maps as the sync path's (`usage_from_anthropic`: input_tokens excludes cache reads and
writes). Errored requests are their records' failures in the provider's words ("529 overloaded_error: Overloaded":
a 429 or 5xx one is sent again by resume); canceled and expired ones are left out, so they stay missing and resume
sends them.
"""

from __future__ import annotations

import hashlib
import json
import os
import re
from collections.abc import Iterator, Sequence
from datetime import datetime
from types import SimpleNamespace
from typing import Any

from tokenomy.batch.backends import BatchBackend, RecordResult, SubmitOptions, api_key, utc_time
from tokenomy.batch.conversion import require_carried
from tokenomy.batch.formats import BatchRecord
from tokenomy.batch.output_caps import claude_cap
from tokenomy.batch.output_lines import (
    broken_line,
    id_shown,
    misshapen_or,
    output_object,
    unanswered_failures,
    unplaced,
    usage_shown,
)
from tokenomy.errors import ConfigError, ProviderError
from tokenomy.providers.anthropic_faults import IN_STREAM_STATUSES
from tokenomy.providers.anthropic_provider import SAMPLING_API_VERSION, usage_from_anthropic

_CUSTOM_ID = re.compile(r"^[a-zA-Z0-9_-]{1,64}$")
# The HTTP status each error type of an errored request stands for, as the Messages API answers it: put first in
# the record's error, so `backends.transient` knows a throttled or overloaded one, which resume sends again.
ERROR_STATUS = IN_STREAM_STATUSES


def custom_id(record_id: str) -> str:
    """The custom_id a record goes under: its id when Anthropic takes it, else a hash of it."""
    if _CUSTOM_ID.match(record_id):
        return record_id
    return "tk-" + hashlib.sha256(record_id.encode()).hexdigest()[:40]


def request_params(model: str, rec: BatchRecord) -> dict[str, Any]:
    """The record as a Messages API body (max_tokens is required: the record's, else the model's maximum output within
    its window, `output_caps.claude_cap`)."""
    require_carried(rec, "an Anthropic batch")
    system, turns = rec.system_and_turns()
    params: dict[str, Any] = {
        "model": model,
        "max_tokens": int(claude_cap(model, rec)),
        "messages": [{"role": t["role"], "content": t["content"]} for t in turns],
    }
    if system:
        params["system"] = system
    if rec.temperature is not None:  # `is not None`: 0 is a temperature
        params["temperature"] = rec.temperature
    return params


class AnthropicBatchBackend(BatchBackend):
    """Message Batches; a handle is the batch's id, `msgbatch_...`."""

    name = "anthropic"

    def __init__(self, options: SubmitOptions | None = None) -> None:
        self.options = options or SubmitOptions()

    def _client(self):
        import anthropic

        base_url = self.options.endpoint_url or os.environ.get("ANTHROPIC_BASE_URL")
        return anthropic.Anthropic(api_key=api_key(self.options, "ANTHROPIC_API_KEY", "Anthropic"), base_url=base_url)

    def _call(self, what: str, fn, *args: Any, **kwargs: Any) -> Any:
        import anthropic

        try:
            return fn(*args, **kwargs)
        except anthropic.APIStatusError as exc:
            status = exc.status_code
            kind = "throttled" if status == 429 else ("client_error" if status < 500 else "server_error")
            raise ProviderError(f"Anthropic {what} failed: {status}: {exc.message}", kind, status=status) from None
        except anthropic.APIConnectionError as exc:
            url = getattr(getattr(exc, "request", None), "url", None)
            raise ProviderError(
                f"Anthropic {what} failed: {exc} (calling {url}); check --endpoint-url or ANTHROPIC_BASE_URL "
                "and that the server is up",
                "timeout" if isinstance(exc, anthropic.APITimeoutError) else "server_error",
            ) from None
        except anthropic.AnthropicError as exc:  # the SDK's own refusal, e.g. results of a batch with no results_url
            raise ProviderError(f"Anthropic {what} failed: {exc}", "client_error") from None

    def _result_lines(self, handle: str) -> Iterator[str]:
        """The batch's results file, line by line as it streams (it can be large); a failure to open it is named."""
        manager = self._client().messages.batches.with_streaming_response.results(handle)
        response = self._call("batch results", manager.__enter__)  # the requests are made here
        try:
            yield from response.iter_lines()
        finally:
            manager.__exit__(None, None, None)

    def input_line(self, model: str, rec: BatchRecord) -> str:
        # One request of the create body, which Anthropic's 256 MB a batch counts (a comma where the line has "\n").
        return json.dumps({"custom_id": custom_id(rec.id), "params": request_params(model, rec)})

    def check(self, options: SubmitOptions) -> None:
        # A client for `options` is built (a missing key is named here) on a backend of its own: this one keeps
        # the settings it was made with (resume checks a job's stored settings with the backend it calls).
        type(self)(options)._client()

    def submit(
        self, job_id: str, model: str, records: list[BatchRecord], options: SubmitOptions, key: str | None = None
    ) -> str:
        self.options = options
        requests = [json.loads(self.input_line(model, rec)) for rec in records]
        ids = [r["custom_id"] for r in requests]
        if len(set(ids)) != len(ids):  # two record ids hashed alike, or an id equal to another's hash
            raise ConfigError(f"job {job_id}: two records would go under one custom_id; give each record its own id")
        # The API version that still takes temperature (the SDK's default refuses it), as the sync path sends it.
        headers = (
            {"anthropic-version": SAMPLING_API_VERSION} if any("temperature" in r["params"] for r in requests) else None
        )
        # A batch has no name or metadata, so a create whose answer was lost cannot be found (`find`): the SDK must
        # not send it again on its own, which would run, and bill, every record twice.
        create = self._client().with_options(max_retries=0).messages.batches.create
        try:
            return str(self._call("batch create", create, requests=requests, extra_headers=headers).id)
        except ProviderError as exc:
            if exc.kind == "client_error":  # refused: no batch was made
                raise
            raise ProviderError(
                f"{exc}; whether Anthropic made the batch is not known, and a batch has no name to look it up by: "
                "check your batches (console.anthropic.com, or GET /v1/messages/batches) before `tokenomy batch "
                "resume`, which sends the part again",
                exc.kind,
                status=exc.status,
            ) from None

    def find(self, key: str) -> str | None:
        """None: Anthropic's batches carry no name or metadata to find one by (the create is sent once, see submit)."""
        return None

    def unfindable(self) -> str | None:
        return (
            "Anthropic's batches carry no name or metadata to look one up by: check your batches "
            "(console.anthropic.com, or GET /v1/messages/batches) for one made then"
        )

    def describe(self, handle: str):
        """The MessageBatch, as the SDK returns it."""
        return self._call("batch retrieve", self._client().messages.batches.retrieve, handle)

    def ended_at(self, handle: str) -> datetime | None:
        return utc_time(self.describe(handle).ended_at)

    def status(self, handle: str) -> tuple[str, str | None]:
        batch = self.describe(handle)
        counts = batch.request_counts
        if batch.processing_status == "in_progress":
            return "in_progress", None
        if batch.processing_status == "canceling":
            return "stopping", None
        total = counts.succeeded + counts.errored + counts.canceled + counts.expired
        notes = []
        if counts.errored:
            notes.append(f"{counts.errored} requests errored; `tokenomy batch results` gives each one's error")
        if counts.canceled:
            notes.insert(0, f"cancelled: {counts.canceled} of its {total} requests never ran")
        if counts.expired:
            notes.insert(0, f"expired: {counts.expired} of its {total} requests never ran (its 24 h window ran out)")
        if counts.canceled or batch.cancel_initiated_at:
            state = "stopped"
        elif counts.expired:
            state = "expired"
        else:
            state = "partially_completed" if counts.errored else "completed"
        return state, "; ".join(notes) or None

    def results(self, handle: str) -> Iterator[RecordResult]:
        return self.part_results(handle, ())

    def part_results(self, handle: str, sent: Sequence[str]) -> Iterator[RecordResult]:
        """One result per request answered, by record id (a hashed custom_id mapped back through `sent`). A line that
        is not JSON is its record's failure, found by the custom_id it still shows, else (a batch in which every
        request ran) as the record no readable line answers; otherwise it is kept as an unmatched line."""
        batch = self.describe(handle)
        records = {custom_id(rid): rid for rid in sent}
        seen: set[str] = set()
        never_ran: set[str] = set()
        nameless: list[tuple[str, str]] = []
        for number, line in enumerate(self._result_lines(handle), 1):
            if not line.strip():
                continue
            where = f"line {number} of the results of batch {handle}"
            item = output_object(line)
            if item is None:
                shown = id_shown(line, "custom_id")
                billed = usage_shown(line, "usage", lambda u: usage_from_anthropic(SimpleNamespace(**u)))
                result = broken_line(line, where, records.get(shown or "", shown), None, nameless, billed)
                if result is None:
                    continue
            else:
                item = {**item, "custom_id": records.get(str(item.get("custom_id")), item.get("custom_id"))}
                result = misshapen_or(self._record, item, None, "custom_id", where)
                if result is None:
                    never_ran.add(str(item["custom_id"]))
                    continue
            if result.id not in seen:
                seen.add(result.id)
                yield result
        counts = batch.request_counts
        if nameless and sent and not (counts.canceled or counts.expired):
            yield from unanswered_failures(sent, seen | never_ran, nameless, None)
        else:
            yield from unplaced(nameless, None)

    @staticmethod
    def _record(line: dict[str, Any], model: str | None) -> RecordResult | None:
        rid = str(line.get("custom_id"))
        result = line.get("result") or {}
        kind = result.get("type")
        if kind in ("canceled", "expired"):
            return None  # never run: the record stays missing and resume sends it
        if kind != "succeeded":
            error = (result.get("error") or {}).get("error") or {}
            etype = error.get("type") or kind or "error"
            status = ERROR_STATUS.get(etype)
            said = f"{status} {etype}" if status else etype
            return RecordResult(rid, error=f"{said}: {error.get('message') or json.dumps(result)}", raw=line)
        message = result.get("message") or {}
        text = "".join(b.get("text", "") for b in message.get("content") or [] if b.get("type") == "text")
        usage = message.get("usage")
        try:
            counted = usage_from_anthropic(SimpleNamespace(**usage)) if isinstance(usage, dict) else None
        except ProviderError as exc:  # this record's failure; the batch's other answers are kept
            return RecordResult(rid, error=f"unreadable usage: {exc}", model=message.get("model"), raw=line)
        return RecordResult(rid, text=text, usage=counted, model=message.get("model") or model, raw=line)

    def cancel(self, handle: str) -> None:
        if self.describe(handle).processing_status == "in_progress":
            self._call("batch cancel", self._client().messages.batches.cancel, handle)
