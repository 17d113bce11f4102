"""The work behind one emulated Bedrock batch job: validate the S3 input, answer each record,
write `{input}.out` files and `manifest.json.out` under `{outputS3Uri}/{jobId}/`, move the status.

Used by `bedrock_batch` (the API routes); see that module for the statuses and the time scale.
"""

from __future__ import annotations

import json
import os
import re
import time
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from tokenomy.emulate.bedrock_converse import BedrockEmulator
from tokenomy.emulate.bedrock_errors import BedrockError, invalid
from tokenomy.emulate.bedrock_native import BATCH_FIX, NativeBodyError, from_converse, to_converse
from tokenomy.emulate.instant_engine import InstantEngine
from tokenomy.pricing.catalog import default_catalog

ACTIVE = ("Submitted", "Validating", "Scheduled", "InProgress")
_S3_URI = re.compile(r"^s3://([a-z0-9][-.a-z0-9]{1,61}[a-z0-9])(?:/(.*))?$")


@dataclass
class BatchSettings:
    """How the emulated service behaves; tests shrink the times."""

    s3_endpoint_url: str | None = field(default_factory=lambda: os.environ.get("AWS_ENDPOINT_URL_S3"))
    step_seconds: float = 1.0  # time in Submitted and in Validating
    queue_seconds: float = 1.0  # time Scheduled before the job starts
    seconds_per_hour: float = 3600.0  # real seconds per hour of timeoutDurationInHours
    min_records: int = field(
        default_factory=lambda: int(default_catalog().quotas_for("aws.bedrock").get("min_records_per_job", 0))
    )
    local_model_max_records: int = 20  # bigger jobs run on the instant engine
    instant_delay_s: float = 0.0  # per record, for the instant engine
    flush_seconds: float = 1.0  # outputs are rewritten this often while InProgress


@dataclass
class Job:
    arn: str
    job_id: str
    body: dict[str, Any]
    region: str
    submit_time: datetime
    deadline: float  # monotonic time the job times out
    expiration: datetime
    status: str = "Submitted"
    message: str | None = None
    end_time: datetime | None = None
    last_modified: datetime | None = None
    counts: dict[str, int] = field(
        default_factory=lambda: dict.fromkeys(
            ("totalRecordCount", "processedRecordCount", "successRecordCount", "errorRecordCount"), 0
        )
    )
    stop_requested: bool = False

    def set(self, status: str, message: str | None = None) -> None:
        self.status, self.last_modified = status, now_utc()
        if message:
            self.message = message
        if status not in ACTIVE and status != "Stopping":
            self.end_time = self.last_modified

    def describe(self) -> dict[str, Any]:
        b = self.body
        out = {
            "jobArn": self.arn,
            "jobName": b["jobName"],
            "modelId": b["modelId"],
            "roleArn": b["roleArn"],
            "status": self.status,
            "submitTime": _iso(self.submit_time),
            "lastModifiedTime": _iso(self.last_modified or self.submit_time),
            "inputDataConfig": b["inputDataConfig"],
            "outputDataConfig": b["outputDataConfig"],
            "timeoutDurationInHours": b.get("timeoutDurationInHours", 168),
            "jobExpirationTime": _iso(self.expiration),
            "modelInvocationType": b.get("modelInvocationType", "InvokeModel"),
            **self.counts,
        }
        for key in ("clientRequestToken", "vpcConfig"):
            if key in b:
                out[key] = b[key]
        if self.message:
            out["message"] = self.message
        if self.end_time:
            out["endTime"] = _iso(self.end_time)
        return out


def now_utc() -> datetime:
    return datetime.now(UTC)


def _iso(moment: datetime) -> str:
    return moment.isoformat().replace("+00:00", "Z")


def split_s3(uri: str) -> tuple[str, str]:
    match = _S3_URI.match(uri or "")
    if not match:
        raise invalid(f"Value '{uri}' is not a valid S3 URI: use s3://bucket/key or s3://bucket/prefix/")
    return match.group(1), match.group(2) or ""


class JobWorker:
    """Runs jobs: the app's emulator for small jobs, the instant engine for big ones."""

    def __init__(self, emulator: BedrockEmulator, settings: BatchSettings) -> None:
        self.local = emulator
        self.instant = BedrockEmulator(engine=InstantEngine(settings.instant_delay_s))  # type: ignore[arg-type]
        self.settings = settings

    def s3(self, region: str):
        import boto3

        kwargs: dict[str, Any] = {"region_name": region}
        if self.settings.s3_endpoint_url:  # a local S3: any credentials do
            kwargs.update(
                endpoint_url=self.settings.s3_endpoint_url,
                aws_access_key_id=os.environ.get("AWS_ACCESS_KEY_ID", "emulator"),
                aws_secret_access_key=os.environ.get("AWS_SECRET_ACCESS_KEY", "emulator"),
            )
        return boto3.client("s3", **kwargs)

    def _wait(self, job: Job, seconds: float) -> bool:
        """Sleep in small steps; False when the job was stopped or timed out meanwhile."""
        end = time.monotonic() + seconds
        while time.monotonic() < end:
            if job.stop_requested or time.monotonic() >= job.deadline:
                return False
            time.sleep(min(0.02, max(0.0, end - time.monotonic())))
        return not job.stop_requested and time.monotonic() < job.deadline

    def _end_early(self, job: Job) -> None:
        if job.stop_requested:
            job.set("Stopped")
        else:
            job.set("Expired", "The job timed out before it started. Submit a new job.")

    def run(self, job: Job) -> None:
        """Take the job from Submitted to a final status (the thread's target)."""
        try:
            if not self._wait(job, self.settings.step_seconds):
                return self._end_early(job)
            job.set("Validating")
            files = self._read_inputs(job)
            if files is None:
                return
            if not self._wait(job, self.settings.step_seconds):
                return self._end_early(job)
            job.set("Scheduled")
            if not self._wait(job, self.settings.queue_seconds):
                return self._end_early(job)
            job.set("InProgress")
            self._process(job, files)
        except Exception as exc:  # an emulator fault fails the job, as an internal error would
            job.set("Failed", f"Internal error: {exc}")

    def _read_inputs(self, job: Job) -> list[tuple[str, list[dict[str, Any]]]] | None:
        """Validation: the input files exist, are JSONL objects with recordId + modelInput, and in quota."""
        from botocore.exceptions import BotoCoreError, ClientError

        bucket, key = split_s3(job.body["inputDataConfig"]["s3InputDataConfig"]["s3Uri"])
        s3 = self.s3(job.region)
        try:
            if key and not key.endswith("/") and key.endswith(".jsonl"):
                keys = [key]
            else:
                prefix = key if not key or key.endswith("/") else key + "/"
                pages = s3.get_paginator("list_objects_v2").paginate(Bucket=bucket, Prefix=prefix)
                keys = sorted(o["Key"] for p in pages for o in p.get("Contents", []) if o["Key"].endswith(".jsonl"))
            files = [(k, s3.get_object(Bucket=bucket, Key=k)["Body"].read().decode("utf-8")) for k in keys]
        except (ClientError, BotoCoreError) as exc:
            job.set("Failed", f"Unable to read the input from s3://{bucket}/{key}: {exc}")
            return None
        if not files:
            job.set("Failed", f"No .jsonl input files found at s3://{bucket}/{key}")
            return None
        parsed = []
        for name, text in files:
            records = []
            for number, line in enumerate(text.splitlines(), start=1):
                if not line.strip():
                    continue
                try:
                    obj = json.loads(line)
                except ValueError:
                    obj = None
                if not isinstance(obj, dict) or "modelInput" not in obj:
                    job.set(
                        "Failed",
                        f"Invalid record at line {number} of s3://{bucket}/{name}: each line must be "
                        "a JSON object with recordId and modelInput",
                    )
                    return None
                records.append(obj)
            parsed.append((name.rsplit("/", 1)[-1], records))
        total = sum(len(r) for _, r in parsed)
        job.counts["totalRecordCount"] = total
        if total < self.settings.min_records:
            job.set(
                "Failed",
                f"The job has {total} records; batch inference needs at least "
                f"{self.settings.min_records} records per job.",
            )
            return None
        return parsed

    def _answer(
        self, emulator: BedrockEmulator, job: Job, record: dict[str, Any]
    ) -> tuple[dict[str, Any], tuple[int, int]]:
        """One output line (modelOutput, or error {errorCode, errorMessage}) and its tokens (input, output) for the
        manifest, read from the Converse answer: a native body need not hold them (Mistral's has none)."""
        model_id, body = job.body["modelId"], record["modelInput"]
        out: dict[str, Any] = {"modelInput": body}
        if "recordId" in record:
            out = {"recordId": record["recordId"], **out}
        try:
            if job.body.get("modelInvocationType") == "Converse":
                result = emulator.converse(model_id, body, job.region, throttle=False)
                result.pop("metrics", None)
                out["modelOutput"] = result
            else:
                result = emulator.converse(model_id, to_converse(model_id, body, BATCH_FIX), job.region, throttle=False)
                out["modelOutput"] = from_converse(model_id, result)
        except NativeBodyError as exc:
            out["error"] = {"errorCode": 400, "errorMessage": str(exc)}
            return out, (0, 0)
        except BedrockError as exc:
            out["error"] = {"errorCode": exc.status, "errorMessage": exc.message}
            return out, (0, 0)
        return out, (result["usage"]["inputTokens"], result["usage"]["outputTokens"])

    def _process(self, job: Job, files: list[tuple[str, list[dict[str, Any]]]]) -> None:
        emulator = (
            self.local if job.counts["totalRecordCount"] <= self.settings.local_model_max_records else self.instant
        )
        bucket, prefix = split_s3(job.body["outputDataConfig"]["s3OutputDataConfig"]["s3Uri"])
        base = f"{prefix.rstrip('/')}/{job.job_id}/" if prefix.strip("/") else f"{job.job_id}/"
        s3 = self.s3(job.region)
        tokens = {"inputTokenCount": 0, "outputTokenCount": 0}
        outputs: dict[str, list[str]] = {name: [] for name, _ in files}
        last_flush = time.monotonic()
        kms_key = job.body["outputDataConfig"]["s3OutputDataConfig"].get("s3EncryptionKeyId")
        encryption = {"ServerSideEncryption": "aws:kms", "SSEKMSKeyId": kms_key} if kms_key else {}

        def flush() -> None:
            for name, lines in outputs.items():
                s3.put_object(Bucket=bucket, Key=f"{base}{name}.out", Body="".join(lines).encode(), **encryption)
            s3.put_object(
                Bucket=bucket,
                Key=f"{base}manifest.json.out",
                Body=json.dumps({**job.counts, **tokens}).encode(),
                **encryption,
            )

        ended = None
        for name, records in files:
            for record in records:
                if job.stop_requested:
                    ended = "Stopped"
                elif time.monotonic() >= job.deadline:
                    ended = "PartiallyCompleted"
                if ended:
                    break
                line, usage = self._answer(emulator, job, record)
                outputs[name].append(json.dumps(line) + "\n")
                job.counts["processedRecordCount"] += 1
                if "error" in line:
                    job.counts["errorRecordCount"] += 1
                else:
                    job.counts["successRecordCount"] += 1
                    tokens["inputTokenCount"] += usage[0]
                    tokens["outputTokenCount"] += usage[1]
                if time.monotonic() - last_flush > self.settings.flush_seconds:
                    flush()
                    last_flush = time.monotonic()
            if ended:
                break
        flush()
        if ended == "Stopped":
            job.set("Stopped")
        elif ended:
            job.set(ended, "The job timed out before all records were processed.")
        elif job.counts["errorRecordCount"]:
            job.set(
                "PartiallyCompleted",
                f"{job.counts['errorRecordCount']} records failed; see the error field "
                "of their lines in the output files.",
            )
        else:
            job.set("Completed")
