"""Vertex AI batch prediction (`batchPredictionJobs`) through the official `google-genai` SDK.

Settings (kept with the job, so status, results and cancel work from any later process):
- `gcs_uri` (`--gcs-uri gs://bucket/prefix`, required): each part writes its input to
  `{prefix}/{job}/{part}/input.jsonl` and Vertex writes its predictions under `{prefix}/{job}/{part}/output`;
- `project` (`--project`, else GOOGLE_CLOUD_PROJECT) and the location (`--region`, else
  GOOGLE_CLOUD_LOCATION, else `global`);
- `SubmitOptions.endpoint_url` (or GOOGLE_VERTEX_BASE_URL) for `tokenomy emulate gemini`, and
  `gcs_endpoint_url` (`--gcs-endpoint-url`, else STORAGE_EMULATOR_HOST) for Cloud Storage; on a loopback
  `--endpoint-url` with neither given, the emulator's own Cloud Storage is used.

Each input line is `{"request": GenerateContentRequest}`. Vertex writes one output line per request with
the request echoed, and `response` or a non-empty `status`, in no promised order; the record id rides in
the request's `labels` as a hash (label values allow only lowercase letters, digits, `_` and `-`), and
`ids.json` beside the input maps each hash back to its record id. Answers are priced at the model's batch
rates by records.py (Vertex AI bills Gemini batch prediction at half the on-demand price).
"""

from __future__ import annotations

import hashlib
import json
import os
import uuid
from collections.abc import Iterator
from dataclasses import replace
from datetime import datetime
from typing import Any

from tokenomy.batch.backends import BatchBackend, RecordResult, SubmitOptions, utc_time
from tokenomy.batch.conversion import require_carried
from tokenomy.batch.formats import BatchRecord
from tokenomy.batch.gcs import CloudStorage, split_gs_uri
from tokenomy.batch.gemini_backend import (  # shared: JobState, names, the usage check
    STATUS_MAP,
    batch_usage,
    display_name,
    find_by_display_name,
    job_failure,
)
from tokenomy.batch.output_lines import (
    broken_line,
    id_shown,
    output_object,
    unanswered_failures,
    unplaced,
    usage_shown,
)
from tokenomy.chat_response import Usage
from tokenomy.errors import ConfigError, ProviderError

LABEL = "tokenomy_record"


def job_options(options: SubmitOptions) -> SubmitOptions:
    """Check a Vertex job's settings before it is stored, and keep the project and location it will run in
    (from the environment when not given), so later processes need neither."""
    uri = options.extra.get("gcs_uri")
    if not uri:
        raise ConfigError(
            "--backend vertex needs a Cloud Storage location for batch input and output: "
            "--gcs-uri gs://my-bucket/tokenomy-batch"
        )
    split_gs_uri(str(uri))
    project = options.extra.get("project") or os.environ.get("GOOGLE_CLOUD_PROJECT")
    if not project:
        raise ConfigError("--backend vertex needs a Google Cloud project: --project NAME or GOOGLE_CLOUD_PROJECT")
    from tokenomy.providers.gemini_client import vertex_location

    region = vertex_location(options.region)
    return replace(options, region=region, extra={**options.extra, "project": project})


def record_label(record_id: str) -> str:
    """A label value for a record id (any text) within Vertex's label rules: 40 lowercase hex digits."""
    return hashlib.sha256(record_id.encode()).hexdigest()[:40]


def vertex_request(rec: BatchRecord) -> dict[str, Any]:
    """One record as a GenerateContentRequest in the REST API's camelCase, as the input file holds it."""
    require_carried(rec, "a Vertex AI batch")
    system, turns = rec.system_and_turns()  # a system-role message is the system instruction, not a user turn
    request: dict[str, Any] = {
        "contents": [
            {"role": "model" if m["role"] == "assistant" else "user", "parts": [{"text": m["content"]}]} for m in turns
        ],
        "labels": {LABEL: record_label(rec.id)},
    }
    if system:
        request["systemInstruction"] = {"parts": [{"text": system}]}
    generation: dict[str, Any] = {}
    if rec.max_tokens:
        generation["maxOutputTokens"] = int(rec.max_tokens)
    if rec.temperature is not None:  # `is not None`: 0 is a temperature
        generation["temperature"] = rec.temperature
    if generation:
        request["generationConfig"] = generation
    return request


def answered_every_request(job: Any, sent: int) -> bool:
    """Whether a finished job wrote a line for each of its `sent` requests, so a record no readable line answers was
    the one a line that is not JSON answered. JOB_STATE_SUCCEEDED says so (unless it counts requests not finished);
    JOB_STATE_PARTIALLY_SUCCEEDED ("some results may be missing") only when its counts cover every request.
    A job cancelled, expired or failed may not have reached it: that record stays missing, for resume."""
    state = str(getattr(job.state, "value", job.state))
    stats = job.completion_stats
    incomplete = int(stats.incomplete_count or 0) if stats else 0
    if state == "JOB_STATE_SUCCEEDED":
        return incomplete <= 0
    if state != "JOB_STATE_PARTIALLY_SUCCEEDED" or stats is None or incomplete != 0:
        return False
    return int(stats.successful_count or 0) + int(stats.failed_count or 0) >= sent


def _without_labels(request: dict[str, Any]) -> str:
    """A request as canonical JSON without its labels: matches an output line whose echo lost them."""
    return json.dumps({k: v for k, v in request.items() if k != "labels"}, sort_keys=True)


class VertexBatchBackend(BatchBackend):
    """Vertex AI batch prediction jobs; a handle is the job's resource name, `projects/.../batchPredictionJobs/N`."""

    name = "vertex"
    ledger_provider = "gcp.vertex_ai"  # as GeminiProvider records Vertex AI calls, so reports see one provider

    def __init__(self, options: SubmitOptions | None = None) -> None:
        self.options = options or SubmitOptions()
        self._sdk: Any = None
        self._storage: CloudStorage | None = None
        self._target: tuple | None = None

    def _base_url(self) -> str | None:
        return self.options.endpoint_url or os.environ.get("GOOGLE_VERTEX_BASE_URL")

    def _client(self) -> Any:
        """One SDK client per target, kept: a `genai.Client` closes its connections when it is collected."""
        from tokenomy.providers.gemini_client import gemini_client

        extra = self.options.extra
        target = (self._base_url(), extra.get("project"), self.options.region)
        if self._sdk is None or self._target != target:
            self._sdk = gemini_client(vertex=True, base_url=target[0], project=target[1], location=target[2])
            self._target = target
        return self._sdk

    def _gcs(self) -> CloudStorage:
        if self._storage is None:
            from tokenomy.providers.base import is_loopback

            endpoint = self.options.extra.get("gcs_endpoint_url") or os.environ.get("STORAGE_EMULATOR_HOST")
            base_url = self._base_url()
            if not endpoint and base_url and is_loopback(base_url):
                endpoint = base_url  # `tokenomy emulate gemini` serves Cloud Storage beside Vertex AI
            self._storage = CloudStorage(endpoint)
        return self._storage

    def _call(self, what: str, fn, *args: Any, **kwargs: Any) -> Any:
        from tokenomy.providers.gemini_faults import map_gemini_error

        try:
            return fn(*args, **kwargs)
        except (ConfigError, ProviderError):
            raise
        except Exception as exc:
            error = map_gemini_error(exc)
            raise ProviderError(f"Vertex AI {what} failed: {error}", error.kind, status=error.status) from None

    def input_line(self, model: str, rec: BatchRecord) -> str:
        return json.dumps({"request": vertex_request(rec)})

    def submit(
        self, job_id: str, model: str, records: list[BatchRecord], options: SubmitOptions, key: str | None = None
    ) -> str:
        self.options = options
        bucket, prefix = split_gs_uri(str(job_options(options).extra["gcs_uri"]))
        folder = "/".join(p for p in (prefix, job_id, uuid.uuid4().hex[:10]) if p)
        lines = "".join(self.input_line(model, rec) + "\n" for rec in records)
        ids = {record_label(rec.id): rec.id for rec in records}
        storage = self._gcs()
        storage.upload(bucket, f"{folder}/ids.json", json.dumps(ids).encode(), "application/json")
        storage.upload(bucket, f"{folder}/input.jsonl", lines.encode())
        job = self._call(
            "batch create",
            self._client().batches.create,
            model=model,
            src=f"gs://{bucket}/{folder}/input.jsonl",
            config={"display_name": display_name(key or job_id), "dest": f"gs://{bucket}/{folder}/output"},
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
        state = STATUS_MAP.get(str(getattr(job.state, "value", job.state)), "in_progress")
        message = None
        if job.error is not None:
            message = job_failure(job.error)
        failed = int((job.completion_stats.failed_count or 0) if job.completion_stats else 0)
        if state == "completed" and failed:
            state, message = "partially_completed", f"{failed} requests failed; see their results"
        return state, message

    def results(self, handle: str) -> Iterator[RecordResult]:
        """Every output line under the job's output directory, matched to its record by the label its request
        echoes (or, were the labels lost, by the request itself against the input file); a readable line matching
        no record is yielded under `line N of OBJECT`. A line that is not JSON is its record's failure, found by the
        label the line still shows, else (a job that answered every request has a line for each) as the record no
        readable line answers; in a job that ended short, the line is yielded under where it is (collect_part keeps it
        as unmatched), and such a record stays missing, for resume to send again."""
        job = self.describe(handle)
        served = str(job.model or "").rsplit("/", 1)[-1] or None
        if job.src is None or not job.src.gcs_uri:
            raise ProviderError(f"Vertex AI batch {handle} names no Cloud Storage input", "server_error")
        bucket, input_name = split_gs_uri(job.src.gcs_uri[0], "the job's input")
        ids: dict[str, str] = json.loads(self._gcs().download(bucket, input_name.rsplit("/", 1)[0] + "/ids.json"))
        out_dir = (job.output_info.gcs_output_directory if job.output_info else None) or (
            job.dest.gcs_uri if job.dest else None
        )
        if not out_dir:
            return
        by_request: dict[str, list[str]] | None = None

        def record_id(request: Any, where: str) -> str:
            nonlocal by_request
            labels = request.get("labels") if isinstance(request, dict) else None
            found = ids.get(str((labels or {}).get(LABEL)))
            if found is not None or not isinstance(request, dict):
                return found or where
            if by_request is None:  # read the input once, only if some line lost its label
                by_request = {}
                for line in self._gcs().download(bucket, input_name).decode().splitlines():
                    sent = json.loads(line)["request"]
                    by_request.setdefault(_without_labels(sent), []).append(ids[sent["labels"][LABEL]])
            same = by_request.get(_without_labels(request))
            return same.pop(0) if same else where

        out_bucket, out_prefix = split_gs_uri(out_dir, "the job's output")
        answered: set[str] = set()
        nameless: list[tuple[str, bytes]] = []  # (where, line) of lines not JSON that show no label of this job
        for name in sorted(self._gcs().list(out_bucket, out_prefix + "/")):
            if not name.endswith(".jsonl"):
                continue
            # Split as bytes: one line that is not UTF-8 is that line's failure, not a decode error losing the file.
            for number, line in enumerate(self._gcs().download(out_bucket, name).splitlines(), 1):
                if not line.strip():
                    continue
                where = f"line {number} of gs://{out_bucket}/{name}"
                item = output_object(line)
                if item is None:
                    billed = usage_shown(line, "usageMetadata", _shown_usage)
                    broken = broken_line(line, where, ids.get(id_shown(line, LABEL) or ""), served, nameless, billed)
                    if broken is None:
                        continue
                    result = broken
                else:
                    result = self._result(item, record_id(item.get("request"), where), served)
                answered.add(result.id)
                yield result
        if nameless and answered_every_request(job, len(ids)):
            yield from unanswered_failures(ids.values(), answered, nameless, served)
        else:
            yield from unplaced(nameless, served)

    @staticmethod
    def _result(item: dict[str, Any], rid: str, served: str | None) -> RecordResult:
        from google.genai import types

        response = item.get("response")
        if item.get("status") or not isinstance(response, dict):
            return RecordResult(rid, error=str(item.get("status") or "no response"), model=served, raw=item)
        try:
            parsed = types.GenerateContentResponse.model_validate(response)
        except ValueError as exc:
            return RecordResult(rid, error=f"unreadable response: {str(exc).splitlines()[0]}", model=served, raw=item)
        sent = response.get("usageMetadata", response.get("usage_metadata"))
        try:
            usage = batch_usage(parsed.usage_metadata, sent if isinstance(sent, dict) else None)
        except ProviderError as exc:  # this record's failure, as an unreadable response is; the rest are kept
            return RecordResult(rid, error=f"unreadable usage: {exc}", model=served, raw=item)
        return RecordResult(rid, text=parsed.text or "", usage=usage, model=parsed.model_version or served, raw=item)

    def cancel(self, handle: str) -> None:
        state, _ = self.status(handle)
        if state in ("submitted", "scheduled", "in_progress"):
            self._call("batch cancel", self._client().batches.cancel, name=handle)


def _shown_usage(sent: dict[str, Any]) -> Usage | None:
    """A response's usageMetadata alone (read from a line too garbled to read whole), as `_result` reads it."""
    from google.genai import types

    return batch_usage(types.GenerateContentResponseUsageMetadata.model_validate(sent), sent)
