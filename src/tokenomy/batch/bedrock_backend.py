"""Amazon Bedrock batch inference: records to S3, a model invocation job, results read back from S3.

Settings come from `SubmitOptions` (region, role_arn, s3_uri, kms_key_id, timeout_hours, endpoint_url,
extra["s3_endpoint_url"]) or the environment: AWS_REGION, TOKENOMY_BEDROCK_ROLE_ARN,
TOKENOMY_BEDROCK_S3_URI, and boto3's own AWS_ENDPOINT_URL_BEDROCK / AWS_ENDPOINT_URL_S3 (so a later
process that only has the job ARN reaches the same endpoints). Each part is written to
`{s3_uri}/{jobName}/input/records.jsonl`; Bedrock writes `{s3_uri}/{jobName}/output/{jobId}/`
with `records.jsonl.out` and `manifest.json.out`.
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
import re
from collections.abc import Iterator
from dataclasses import replace
from datetime import datetime
from typing import Any

from tokenomy.batch.backends import REFUSED_PART, BatchBackend, RecordResult, SubmitOptions, utc_time
from tokenomy.batch.bedrock_bodies import (
    estimated_usage,
    model_input,
    output_usage,
    part_invocation_type,
    read_output,
)
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
from tokenomy.errors import ConfigError, ProviderError
from tokenomy.providers.bedrock import default_region

log = logging.getLogger(__name__)

STATUS_MAP = {
    "Submitted": "submitted",
    "Validating": "validating",
    "Scheduled": "scheduled",
    "InProgress": "in_progress",
    "Completed": "completed",
    "PartiallyCompleted": "partially_completed",
    "Failed": "failed",
    "Stopping": "stopping",
    "Stopped": "stopped",
    "Expired": "expired",
}
FINAL = ("Completed", "PartiallyCompleted", "Failed", "Stopped", "Expired")
INPUT_NAME = "records.jsonl"
_S3_URI = re.compile(r"^s3://([^/]+)/?(.*)$")
# Bedrock's message of a job it failed by a fault of its own, which another run may not repeat; any other failure
# before a record ran was at validation, for what the job was given (its input, its record count, its model).
_SERVICE_FAULT = re.compile(r"internal|server error|service (error|unavailable)|throttl", re.IGNORECASE)


def _split_s3(uri: str, where: str) -> tuple[str, str]:
    match = _S3_URI.match(uri or "")
    if not match:
        raise ConfigError(f"{where} {uri!r} is not an S3 URI: give s3://bucket/prefix")
    return match.group(1), match.group(2).strip("/")


def job_options(options: SubmitOptions) -> SubmitOptions:
    """A Bedrock job's settings with the region it will run in pinned (given, else AWS_REGION, AWS_DEFAULT_REGION, the
    profile's region, us-east-1: the lookup of an on-demand Bedrock call), so the job is made where the user's calls
    go, its answers are priced and recorded in that region, and a later process (resume from a shell without the
    variable) reaches the same region."""
    if options.region:
        return options
    return replace(options, region=_default_region())


def _default_region() -> str:
    import boto3
    from botocore.exceptions import ProfileNotFound

    try:
        session_region = boto3.Session().region_name
    except ProfileNotFound as exc:
        raise ConfigError(
            f"{exc}: fix AWS_PROFILE to name a profile in ~/.aws/config (`aws configure list-profiles`), "
            "or pass --region"
        ) from None
    return default_region(None, session_region)


def _job_name(key: str) -> str:
    """The job's name, and its clientRequestToken, from the part's key: the same each time the part is sent, so
    Bedrock takes a repeated create as the first one (and `find` lists the job by it)."""
    # Bedrock job names: letters, digits and inner hyphens, at most 63 characters; unique per account. The hash
    # keeps keys that differ only in what the pattern drops or the length cuts apart.
    safe = re.sub(r"[^a-zA-Z0-9]+", "-", key).strip("-")[:40] or "job"
    return f"tokenomy-{safe}-{hashlib.sha256(key.encode()).hexdigest()[:8]}"


class BedrockBatchBackend(BatchBackend):
    """CreateModelInvocationJob and friends through boto3."""

    name = "bedrock"
    ledger_provider = "aws.bedrock"  # as BedrockProvider records on-demand calls, so reports see one provider

    def __init__(self, options: SubmitOptions | None = None) -> None:
        self.options = options or SubmitOptions()
        self.manifests: dict[str, dict[str, Any]] = {}  # handle -> manifest.json.out, once results are read

    # -- clients -------------------------------------------------------------------------------------
    def _region(self, handle: str | None = None) -> str:
        if handle and handle.startswith("arn:"):
            return handle.split(":")[3]
        return self.options.region or _default_region()

    def _client(self, service: str, region: str):
        import boto3

        endpoint = self.options.endpoint_url if service == "bedrock" else self.options.extra.get("s3_endpoint_url")
        return boto3.client(service, region_name=region, endpoint_url=endpoint or None)

    def _call(self, what: str, fn, **kwargs: Any) -> Any:
        from botocore.exceptions import BotoCoreError, ClientError

        try:
            return fn(**kwargs)
        except ClientError as exc:
            code = exc.response.get("Error", {}).get("Code", "")
            status = exc.response.get("ResponseMetadata", {}).get("HTTPStatusCode")
            kind = (
                "throttled"
                if code == "ThrottlingException"
                else ("client_error" if status and status < 500 else "server_error")
            )
            raise ProviderError(
                f"Bedrock {what} failed: {code}: {exc.response.get('Error', {}).get('Message')}", kind, status=status
            ) from None
        except BotoCoreError as exc:
            from botocore.exceptions import EndpointConnectionError, NoCredentialsError

            # botocore's text says what broke, not what to change: add the setting to fix.
            hint = ""
            if isinstance(exc, NoCredentialsError):
                hint = "; set AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY or AWS_PROFILE (any values for an emulator)"
            elif isinstance(exc, EndpointConnectionError):
                hint = "; check --endpoint-url / --s3-endpoint-url (or AWS_ENDPOINT_URL*) and that the server is up"
            raise ProviderError(f"Bedrock {what} failed: {exc}{hint}", "server_error") from None

    # -- the contract --------------------------------------------------------------------------------
    @staticmethod
    def _role_and_location(options: SubmitOptions) -> tuple[str, str, str]:
        """The service role, bucket and prefix a job needs (options, else the environment), or a ConfigError."""
        role = options.role_arn or os.environ.get("TOKENOMY_BEDROCK_ROLE_ARN")
        if not role:
            raise ConfigError(
                "Bedrock batch needs a service role: pass --role-arn "
                "arn:aws:iam::ACCOUNT:role/NAME or set TOKENOMY_BEDROCK_ROLE_ARN"
            )
        s3_uri = options.s3_uri or os.environ.get("TOKENOMY_BEDROCK_S3_URI")
        if not s3_uri:
            raise ConfigError(
                "Bedrock batch needs an S3 location for inputs and outputs: pass --s3-uri "
                "s3://bucket/prefix or set TOKENOMY_BEDROCK_S3_URI"
            )
        return (role, *_split_s3(s3_uri, "--s3-uri"))

    def input_line(self, model: str, rec: BatchRecord) -> str:
        return json.dumps({"recordId": rec.id, "modelInput": model_input(model, rec)})

    def check(self, options: SubmitOptions) -> None:
        self._role_and_location(options)
        hours = options.timeout_hours
        if hours is not None and not 24 <= hours <= 168:  # CreateModelInvocationJob's timeoutDurationInHours
            raise ConfigError(f"--timeout-hours {hours}: a Bedrock batch job's timeout is 24 to 168 hours")

    def submit(
        self, job_id: str, model: str, records: list[BatchRecord], options: SubmitOptions, key: str | None = None
    ) -> str:
        self.options = options
        role, bucket, prefix = self._role_and_location(options)
        region = self._region()
        name = _job_name(key or job_id)
        base = f"{prefix}/{name}" if prefix else name
        kind = part_invocation_type(model, records)  # before anything is sent: a mixed part is refused
        lines = "".join(self.input_line(model, rec) + "\n" for rec in records)
        self._call(
            "upload to S3",
            self._client("s3", region).put_object,
            Bucket=bucket,
            Key=f"{base}/input/{INPUT_NAME}",
            Body=lines.encode(),
        )
        output: dict[str, Any] = {"s3Uri": f"s3://{bucket}/{base}/output/"}
        if options.kms_key_id:
            output["s3EncryptionKeyId"] = options.kms_key_id
        request: dict[str, Any] = {
            "jobName": name,
            "roleArn": role,
            "modelId": model,
            "clientRequestToken": name,
            "inputDataConfig": {
                "s3InputDataConfig": {"s3Uri": f"s3://{bucket}/{base}/input/{INPUT_NAME}", "s3InputFormat": "JSONL"}
            },
            "outputDataConfig": {"s3OutputDataConfig": output},
            "tags": [{"key": "tokenomy-job", "value": re.sub(r"[^a-zA-Z0-9\s._:/=+@-]", "-", job_id)[:256]}],
        }
        if options.timeout_hours is not None:
            request["timeoutDurationInHours"] = options.timeout_hours
        if kind == "Converse":
            request["modelInvocationType"] = "Converse"
        bedrock = self._client("bedrock", region)
        return self._call("CreateModelInvocationJob", bedrock.create_model_invocation_job, **request)["jobArn"]

    def find(self, key: str) -> str | None:
        name = _job_name(key)
        return next((j["jobArn"] for j in self.list_jobs(name) if j["jobName"] == name), None)

    def describe(self, handle: str) -> dict[str, Any]:
        """GetModelInvocationJob's answer, as boto3 returns it."""
        bedrock = self._client("bedrock", self._region(handle))
        return self._call("GetModelInvocationJob", bedrock.get_model_invocation_job, jobIdentifier=handle)

    def ended_at(self, handle: str) -> datetime | None:
        return utc_time(self.describe(handle).get("endTime"))

    def status(self, handle: str) -> tuple[str, str | None]:
        job = self.describe(handle)
        message = job.get("message")
        # failed before any record ran, and not by a fault of Bedrock's: refused as given, which `resume` holds back
        at_validation = job["status"] == "Failed" and not job.get("processedRecordCount")
        if at_validation and message and not _SERVICE_FAULT.search(message):
            message = f"{REFUSED_PART}: {message}"
        return STATUS_MAP[job["status"]], message

    def list_jobs(self, name_contains: str = "tokenomy") -> Iterator[dict[str, Any]]:
        """Every Bedrock batch job whose name contains `name_contains` (all pages)."""
        pages = self._client("bedrock", self._region()).get_paginator("list_model_invocation_jobs")
        for page in self._call("ListModelInvocationJobs", pages.paginate, nameContains=name_contains):
            yield from page.get("invocationJobSummaries", [])

    def results(self, handle: str) -> Iterator[RecordResult]:
        """One result per record answered. A line that is not JSON is its record's failure, found by the recordId
        the line still shows, else (a job that ran to its end has a line for every record) as the record no readable
        line answers; in a job that did not run every record, such a record stays missing, and resume sends it again."""
        job = self.describe(handle)
        bucket, prefix = _split_s3(job["outputDataConfig"]["s3OutputDataConfig"]["s3Uri"], "outputDataConfig")
        folder = f"{prefix}/{handle.rsplit('/', 1)[-1]}/" if prefix else f"{handle.rsplit('/', 1)[-1]}/"
        s3 = self._client("s3", self._region(handle))
        pages = s3.get_paginator("list_objects_v2").paginate(Bucket=bucket, Prefix=folder)
        keys = sorted(
            o["Key"] for page in self._call("ListObjectsV2", lambda: list(pages)) for o in page.get("Contents", [])
        )
        seen: set[str] = set()
        nameless: list[tuple[str, bytes]] = []  # (where, line) of lines not JSON that show no recordId
        for key in keys:
            if not key.endswith((".jsonl.out", "manifest.json.out")):
                continue
            body = self._call("GetObject", s3.get_object, Bucket=bucket, Key=key)["Body"]
            if key.endswith("manifest.json.out"):
                self.manifests[handle] = output_object(body.read()) or {}  # only kept: never worth the results
                continue
            for number, line in enumerate(body.iter_lines(), 1):  # streamed: output files can be large
                if not line.strip():
                    continue
                item = output_object(line)
                if item is None:
                    where = f"line {number} of s3://{bucket}/{key}"
                    billed = usage_shown(line, "usage", output_usage)
                    broken = broken_line(line, where, id_shown(line, "recordId"), job["modelId"], nameless, billed)
                    if broken is None:
                        continue
                    result = broken
                else:
                    result = misshapen_or(
                        self._record, item, job["modelId"], "recordId", f"line {number} of s3://{bucket}/{key}"
                    )
                if result.id not in seen:  # one result per record id, even if a file repeats it
                    seen.add(result.id)
                    yield result
        if nameless and self._answered_every_record(handle, job["status"]):
            source = job["inputDataConfig"]["s3InputDataConfig"]["s3Uri"]
            in_bucket, in_key = _split_s3(source, "inputDataConfig")
            sent = self._call("GetObject", s3.get_object, Bucket=in_bucket, Key=in_key)["Body"].iter_lines()
            ids = (str((output_object(x) or {}).get("recordId")) for x in sent if x.strip())
            yield from unanswered_failures(ids, seen, nameless, job["modelId"])
        else:  # the job ended short: the lines are kept as its unmatched ones (collect.collect_part), not only logged
            yield from unplaced(nameless, job["modelId"])

    def _answered_every_record(self, handle: str, status: str) -> bool:
        """Whether the job ran every record it was sent, so a record no readable line answers was answered by a
        line too garbled to name it. A PartiallyCompleted job may have left records unrun ("not all of your records
        could be processed in time"): only its manifest's counts can say it ran them all, else such a record stays
        missing and resume sends it."""
        if status == "Completed":
            return True
        counts = self.manifests.get(handle) or {}
        total, processed = counts.get("totalRecordCount"), counts.get("processedRecordCount")
        return status == "PartiallyCompleted" and type(total) is int and total > 0 and processed == total

    @staticmethod
    def _record(line: dict[str, Any], model: str) -> RecordResult:
        rid = str(line.get("recordId"))
        if "error" in line or "modelOutput" not in line:
            err = line.get("error") or {}
            return RecordResult(
                rid, error=f"{err.get('errorCode', 'error')}: {err.get('errorMessage', err)}", model=model, raw=line
            )
        try:
            text, usage = read_output(line["modelOutput"])
        except ProviderError as exc:  # this record's failure, as an errored line is; the job's other records are kept
            return RecordResult(rid, error=f"unreadable usage: {exc}", model=model, raw=line)
        if usage is None:  # Mistral's own body: Bedrock reports its usage in headers a batch file does not keep
            usage = estimated_usage(line.get("modelInput"), text)
            log.warning(
                "batch record %s of %s has no usage in its output; its tokens are estimated (~4 characters a token)",
                rid,
                model,
            )
        return RecordResult(rid, text=text, usage=usage, model=model, raw=line)

    def cancel(self, handle: str) -> None:
        job = self.describe(handle)
        if job["status"] in FINAL or job["status"] == "Stopping":
            return  # nothing left to stop
        bedrock = self._client("bedrock", self._region(handle))
        self._call("StopModelInvocationJob", bedrock.stop_model_invocation_job, jobIdentifier=handle)
