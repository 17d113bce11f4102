"""Bedrock batch inference (the `bedrock` control plane) for `tokenomy emulate bedrock`.

Routes (botocore's `bedrock` 2023-04-20 model): CreateModelInvocationJob `POST /model-invocation-job`,
GetModelInvocationJob `GET /model-invocation-job/{jobIdentifier}`, ListModelInvocationJobs
`GET /model-invocation-jobs`, StopModelInvocationJob `POST /model-invocation-job/{jobIdentifier}/stop`.

A job reads its JSONL input from S3 (any S3-compatible endpoint: `AWS_ENDPOINT_URL_S3` or
`configure(app, s3_endpoint_url=...)`), answers each record on the local model (jobs over
`local_model_max_records` records use the instant engine) and writes Bedrock's documented layout
under `{outputS3Uri}/{jobId}/`: one `{input file}.out` per input file (`recordId`, `modelInput`, then
`modelOutput` or `error`) and `manifest.json.out` with the record and token counts.

Statuses follow the API reference: Submitted -> Validating -> Scheduled -> InProgress -> Completed.
Records whose body the model rejects get an `error` line and end the job PartiallyCompleted, as does
running out of time mid-job (unprocessed records are simply absent); timing out before the job starts
is Expired; StopModelInvocationJob moves it through Stopping to Stopped. Time is scaled: one
`timeoutDurationInHours` hour lasts `seconds_per_hour` real seconds.

This module holds the API (create, get, list, stop); `bedrock_batch_worker` runs each job.
"""

from __future__ import annotations

import json
import re
import secrets
import threading
import time
from datetime import datetime, timedelta
from typing import Any

from fastapi import APIRouter, Request
from starlette.responses import JSONResponse

from tokenomy.emulate.bedrock_batch_worker import ACTIVE, BatchSettings, Job, JobWorker, invalid, now_utc, split_s3
from tokenomy.emulate.bedrock_converse import BedrockEmulator
from tokenomy.emulate.bedrock_errors import BedrockError, client_region, error_response
from tokenomy.emulate.bedrock_models import DEFAULT_ACCOUNT, ModelIdError, resolve

router = APIRouter()

_JOB_NAME = re.compile(r"^[a-zA-Z0-9]{1,63}(-*[a-zA-Z0-9+\-.]){0,63}$")
_ROLE_ARN = re.compile(r"^arn:aws(-[^:]+)?:iam::([0-9]{12})?:role/.+$")


class BatchService:
    """Jobs of one emulator app, each run by its own worker thread."""

    def __init__(self, emulator: BedrockEmulator, settings: BatchSettings) -> None:
        self.settings = settings
        self.worker = JobWorker(emulator, settings)
        self.jobs: dict[str, Job] = {}
        self.lock = threading.Lock()

    def create(self, body: dict[str, Any], region: str) -> dict[str, Any]:
        for key in ("jobName", "roleArn", "modelId", "inputDataConfig", "outputDataConfig"):
            if not body.get(key):
                raise invalid(
                    f"1 validation error detected: Value null at '{key}' failed to satisfy constraint: "
                    "Member must not be null"
                )
        if not _JOB_NAME.match(str(body["jobName"])):
            raise invalid(
                f"Value '{body['jobName']}' at 'jobName' failed to satisfy constraint: Member must satisfy "
                "regular expression pattern: [a-zA-Z0-9]{1,63}(-*[a-zA-Z0-9\\+\\-\\.]){0,63}"
            )
        if not _ROLE_ARN.match(str(body["roleArn"])):
            raise invalid(
                f"Value '{body['roleArn']}' at 'roleArn' is not an IAM role ARN (arn:aws:iam::ACCOUNT:role/NAME)"
            )
        try:
            resolve(body["modelId"])
        except ModelIdError as exc:
            raise BedrockError(exc.code, exc.message) from None
        split_s3(((body["inputDataConfig"] or {}).get("s3InputDataConfig") or {}).get("s3Uri", ""))
        split_s3(((body["outputDataConfig"] or {}).get("s3OutputDataConfig") or {}).get("s3Uri", ""))
        hours = body.get("timeoutDurationInHours", 168)
        if not isinstance(hours, int) or not 24 <= hours <= 168:
            raise invalid(
                f"Value '{hours}' at 'timeoutDurationInHours' failed to satisfy constraint: Member must "
                "have value between 24 and 168"
            )
        if body.get("modelInvocationType", "InvokeModel") not in ("InvokeModel", "Converse"):
            raise invalid("modelInvocationType must be InvokeModel or Converse")
        with self.lock:
            token = body.get("clientRequestToken")
            for job in self.jobs.values():
                if token and job.body.get("clientRequestToken") == token:
                    return {"jobArn": job.arn}  # idempotent retry
                if job.body["jobName"] == body["jobName"]:
                    raise BedrockError(
                        "ConflictException",
                        f"A batch inference job named {body['jobName']} already exists. Use a different job name.",
                    )
            job_id = "".join(secrets.choice("abcdefghijklmnopqrstuvwxyz0123456789") for _ in range(12))
            arn = f"arn:aws:bedrock:{region}:{DEFAULT_ACCOUNT}:model-invocation-job/{job_id}"
            submitted = now_utc()
            job = Job(
                arn,
                job_id,
                dict(body),
                region,
                submitted,
                time.monotonic() + hours * self.settings.seconds_per_hour,
                submitted + timedelta(seconds=hours * self.settings.seconds_per_hour),
            )
            self.jobs[job_id] = job
        threading.Thread(target=self.worker.run, args=(job,), name=f"bedrock-batch:{job_id}", daemon=True).start()
        return {"jobArn": arn}

    def get(self, identifier: str) -> Job:
        job = self.jobs.get(identifier.rsplit("/", 1)[-1])
        if job is None:
            raise BedrockError("ResourceNotFoundException", f"Could not find model invocation job {identifier}")
        return job

    def stop(self, identifier: str) -> None:
        job = self.get(identifier)
        with self.lock:
            if job.status not in ACTIVE:
                raise BedrockError("ConflictException", f"The job {job.arn} is {job.status} and cannot be stopped.")
            job.stop_requested = True
            job.set("Stopping")

    def list(self, params: dict[str, str]) -> dict[str, Any]:
        jobs = sorted(
            self.jobs.values(),
            key=lambda j: j.submit_time,
            reverse=params.get("sortOrder", "Descending") == "Descending",
        )
        if params.get("statusEquals"):
            jobs = [j for j in jobs if j.status == params["statusEquals"]]
        if params.get("nameContains"):
            jobs = [j for j in jobs if params["nameContains"] in j.body["jobName"]]
        for key, keep in (
            ("submitTimeAfter", lambda j, t: j.submit_time > t),
            ("submitTimeBefore", lambda j, t: j.submit_time < t),
        ):
            if params.get(key):
                moment = datetime.fromisoformat(params[key].replace("Z", "+00:00"))
                jobs = [j for j in jobs if keep(j, moment)]
        start = int(params.get("nextToken") or 0)
        size = int(params.get("maxResults") or 1000)
        page: dict[str, Any] = {"invocationJobSummaries": [j.describe() for j in jobs[start : start + size]]}
        if start + size < len(jobs):
            page["nextToken"] = str(start + size)
        return page


def configure(app, **settings: Any) -> BatchService:
    """Give an app (from `bedrock_runtime.create_app`) batch settings; call before the first request."""
    service = BatchService(app.state.emulator, BatchSettings(**settings))
    app.state.bedrock_batch = service
    return service


def _service(request: Request) -> BatchService:
    state = request.app.state
    if getattr(state, "bedrock_batch", None) is None:
        state.bedrock_batch = BatchService(state.emulator, BatchSettings())
    return state.bedrock_batch


def _ok(body: dict[str, Any]) -> JSONResponse:
    return JSONResponse(body, headers={"x-amzn-RequestId": secrets.token_hex(16)})


@router.post("/model-invocation-job")
async def create_model_invocation_job(request: Request):
    try:
        body = json.loads(await request.body() or b"{}")
        if not isinstance(body, dict):
            raise invalid("The request body must be a JSON object.")
        return _ok(_service(request).create(body, client_region(request)))
    except ValueError:
        return error_response(invalid("The request body is not valid JSON."))
    except BedrockError as exc:
        return error_response(exc)


@router.get("/model-invocation-jobs")
async def list_model_invocation_jobs(request: Request):
    return _ok(_service(request).list(dict(request.query_params)))


@router.post("/model-invocation-job/{identifier:path}/stop")
async def stop_model_invocation_job(identifier: str, request: Request):
    try:
        _service(request).stop(identifier)
    except BedrockError as exc:
        return error_response(exc)
    return _ok({})


@router.get("/model-invocation-job/{identifier:path}")
async def get_model_invocation_job(identifier: str, request: Request):
    try:
        return _ok(_service(request).get(identifier).describe())
    except BedrockError as exc:
        return error_response(exc)
