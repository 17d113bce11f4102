"""Vertex AI batch prediction on the emulator, with the small part of Cloud Storage it reads and writes.

Cloud Storage (the JSON API, objects in memory): `POST /upload/storage/v1/b/{bucket}/o?uploadType=media&name=`,
`GET /storage/v1/b/{bucket}/o?prefix=` (paged), `GET /storage/v1/b/{bucket}/o/{object}[?alt=media]`.

Vertex AI (as google-genai calls it with `vertexai=True`):
`POST {version}/projects/{p}/locations/{l}/batchPredictionJobs`, `GET .../batchPredictionJobs[/{id}]`,
`POST .../batchPredictionJobs/{id}:cancel`. A job reads its JSONL input (`{"request": ...}` a line) from
`inputConfig.gcsSource.uris`, moves JOB_STATE_PENDING -> RUNNING -> SUCCEEDED after `pending_seconds`,
answers each request on the local model one after another, and writes
`{outputUriPrefix}/prediction-model-{time}/predictions.jsonl`: per request `{"status", "processedTime",
"request", "response"}`, with `status` "" and a `response`, or a non-empty `status` naming the error and no
`response`. A cancelled job (JOB_STATE_CANCELLED) writes the requests it answered before it stopped.
"""

from __future__ import annotations

import json
import secrets
import threading
import time
from datetime import UTC, datetime
from typing import Any

from fastapi import FastAPI, Request
from starlette.concurrency import run_in_threadpool
from starlette.responses import JSONResponse, Response

from tokenomy.emulate.gemini_model import GeminiEmulator, rfc3339
from tokenomy.emulate.gemini_parts import STATUS, GeminiError, invalid
from tokenomy.emulate.gemini_response import answer, response_body

JOBS = "/{version}/projects/{project}/locations/{location}/batchPredictionJobs"
DONE = ("JOB_STATE_SUCCEEDED", "JOB_STATE_FAILED", "JOB_STATE_CANCELLED", "JOB_STATE_EXPIRED")


class ObjectStore:
    """Cloud Storage objects in memory: (bucket, name) -> bytes."""

    def __init__(self) -> None:
        self.objects: dict[tuple[str, str], bytes] = {}
        self.lock = threading.Lock()

    def put(self, bucket: str, name: str, data: bytes) -> dict[str, Any]:
        with self.lock:
            self.objects[(bucket, name)] = data
        return self.resource(bucket, name)

    def get(self, bucket: str, name: str) -> bytes:
        with self.lock:
            data = self.objects.get((bucket, name))
        if data is None:
            raise GeminiError(404, f"No such object: {bucket}/{name}")
        return data

    def resource(self, bucket: str, name: str) -> dict[str, Any]:
        size = len(self.get(bucket, name))
        return {"kind": "storage#object", "id": f"{bucket}/{name}", "bucket": bucket, "name": name, "size": str(size)}

    def names(self, bucket: str, prefix: str) -> list[str]:
        with self.lock:
            return sorted(n for b, n in self.objects if b == bucket and n.startswith(prefix))

    def read_uri(self, uri: str) -> bytes:
        bucket, _, name = uri.removeprefix("gs://").partition("/")
        return self.get(bucket, name)


class VertexBatchJobs:
    """batchPredictionJobs in memory, each run by its own worker thread."""

    def __init__(self, emulator: GeminiEmulator, store: ObjectStore, pending_seconds: float = 0.2) -> None:
        self.emulator = emulator
        self.store = store
        self.pending_seconds = pending_seconds
        self.jobs: dict[str, dict[str, Any]] = {}
        self.lock = threading.Lock()

    def create(self, project: str, location: str, body: Any) -> dict[str, Any]:
        if not isinstance(body, dict):
            raise invalid("request body must be a BatchPredictionJob object")
        model = str(body.get("model") or "").rsplit("/", 1)[-1]
        if not model:
            raise invalid("model: required")
        self.emulator.entry(model)
        uris = ((body.get("inputConfig") or {}).get("gcsSource") or {}).get("uris") or []
        if not uris or not all(isinstance(u, str) and u.startswith("gs://") for u in uris):
            raise invalid("inputConfig.gcsSource.uris: one or more gs:// URIs are required (BigQuery is not emulated)")
        dest = ((body.get("outputConfig") or {}).get("gcsDestination") or {}).get("outputUriPrefix")
        if not isinstance(dest, str) or not dest.startswith("gs://"):
            raise invalid("outputConfig.gcsDestination.outputUriPrefix: a gs:// prefix is required")
        now = rfc3339(datetime.now(UTC))
        job_id = str(secrets.randbelow(10**18) + 10**18)  # Vertex job ids are numbers
        job = {
            "name": f"projects/{project}/locations/{location}/batchPredictionJobs/{job_id}",
            "displayName": str(body.get("displayName") or job_id),
            "model": f"publishers/google/models/{model}",
            "inputConfig": {"instancesFormat": "jsonl", "gcsSource": {"uris": uris}},
            "outputConfig": {"predictionsFormat": "jsonl", "gcsDestination": {"outputUriPrefix": dest}},
            "state": "JOB_STATE_PENDING",
            "createTime": now,
            "updateTime": now,
        }
        with self.lock:
            self.jobs[job_id] = job
        threading.Thread(target=self._run, args=(job,), name=f"vertex-batch:{job_id}", daemon=True).start()
        return self.view(job)

    def _run(self, job: dict[str, Any]) -> None:
        time.sleep(self.pending_seconds)
        with self.lock:
            if job["state"] != "JOB_STATE_PENDING":
                return
            job["state"], job["startTime"] = "JOB_STATE_RUNNING", rfc3339(datetime.now(UTC))
        try:
            lines = [
                line
                for uri in job["inputConfig"]["gcsSource"]["uris"]
                for line in self.store.read_uri(uri).decode().splitlines()
                if line.strip()
            ]
        except (GeminiError, UnicodeDecodeError) as exc:
            return self._finish(job, [], {"code": 3, "message": f"cannot read the input: {exc}"})
        out: list[dict[str, Any]] = []
        for line in lines:
            if job["state"] != "JOB_STATE_RUNNING":
                break  # cancelled: requests not yet run are left out
            out.append(self._predict(job["model"], line))
        self._finish(job, out, None)

    def _predict(self, model: str, line: str) -> dict[str, Any]:
        item: dict[str, Any] = {"status": "", "processedTime": rfc3339(datetime.now(UTC))}
        try:
            parsed = json.loads(line)
            request = parsed.get("request") if isinstance(parsed, dict) else None
            if not isinstance(request, dict):
                raise invalid('each input line must be an object with a "request" GenerateContentRequest')
            item["request"] = request
            call = self.emulator.prepare(model, request)
            item["response"] = response_body(call, answer(self.emulator.engine, call), secrets.token_hex(8))
        except ValueError:
            item.update(request=line, status="Bad Request: the line is not JSON")
        except GeminiError as exc:
            item["status"] = f"{STATUS.get(exc.code, 'UNKNOWN')}: {json.dumps(exc.body())}"
        except Exception as exc:  # the model failed on this request: the job goes on with the next
            item["status"] = f"INTERNAL: The model failed: {exc}"
        return item

    def _finish(self, job: dict[str, Any], out: list[dict[str, Any]], error: dict[str, Any] | None) -> None:
        now = datetime.now(UTC)
        folder = f"{job['outputConfig']['gcsDestination']['outputUriPrefix'].rstrip('/')}/prediction-model-"
        folder += now.strftime("%Y-%m-%dT%H:%M:%S.%fZ")
        bucket, _, name = folder.removeprefix("gs://").partition("/")
        if out:
            self.store.put(bucket, f"{name}/predictions.jsonl", "".join(json.dumps(i) + "\n" for i in out).encode())
        failed = sum(1 for i in out if i["status"])
        with self.lock:
            if error is not None:
                job["state"], job["error"] = "JOB_STATE_FAILED", error
            elif job["state"] == "JOB_STATE_RUNNING":
                job["state"] = "JOB_STATE_SUCCEEDED"
            job["outputInfo"] = {"gcsOutputDirectory": folder}
            job["completionStats"] = {"successfulCount": str(len(out) - failed), "failedCount": str(failed)}
            job["endTime"] = job["updateTime"] = rfc3339(now)

    def get(self, job_id: str) -> dict[str, Any]:
        job = self.jobs.get(job_id.rsplit("/", 1)[-1])
        if job is None:
            raise GeminiError(404, f"The BatchPredictionJob does not exist: {job_id}")
        return job

    def view(self, job: dict[str, Any]) -> dict[str, Any]:
        with self.lock:
            return json.loads(json.dumps(job))

    def list(self, page_size: int, page_token: str | None) -> dict[str, Any]:
        with self.lock:
            ids = sorted(self.jobs, key=lambda i: self.jobs[i]["createTime"], reverse=True)
        start = int(page_token or 0)
        out: dict[str, Any] = {"batchPredictionJobs": [self.view(self.jobs[i]) for i in ids[start : start + page_size]]}
        if start + page_size < len(ids):
            out["nextPageToken"] = str(start + page_size)
        return out

    def cancel(self, job_id: str) -> None:
        job = self.get(job_id)
        with self.lock:
            if job["state"] == "JOB_STATE_PENDING":  # never started: nothing to write
                job["state"] = "JOB_STATE_CANCELLED"
                job["endTime"] = job["updateTime"] = rfc3339(datetime.now(UTC))
            elif job["state"] == "JOB_STATE_RUNNING":
                job["state"] = "JOB_STATE_CANCELLED"  # the worker stops after the request in hand, then writes


def add_routes(app: FastAPI, jobs: VertexBatchJobs, store: ObjectStore, body_of) -> None:
    """Cloud Storage and batchPredictionJobs routes on the Gemini emulator's app."""

    @app.post("/upload/storage/v1/b/{bucket}/o")
    async def upload(bucket: str, request: Request):
        name = request.query_params.get("name")
        if request.query_params.get("uploadType") != "media" or not name:
            raise invalid("the emulator takes uploadType=media uploads with a name")
        return store.put(bucket, name, await request.body())

    @app.get("/storage/v1/b/{bucket}/o")
    async def list_objects(bucket: str, prefix: str = "", pageToken: str | None = None, maxResults: int = 1000):
        names = store.names(bucket, prefix)
        start = int(pageToken or 0)
        out: dict[str, Any] = {
            "kind": "storage#objects",
            "items": [store.resource(bucket, n) for n in names[start : start + maxResults]],
        }
        if start + maxResults < len(names):
            out["nextPageToken"] = str(start + maxResults)
        return out

    @app.get("/storage/v1/b/{bucket}/o/{name:path}")
    async def get_object(bucket: str, name: str, alt: str | None = None):
        if alt == "media":
            return Response(store.get(bucket, name), media_type="application/octet-stream")
        return store.resource(bucket, name)

    @app.post(JOBS)
    async def create_job(project: str, location: str, request: Request):
        body = await body_of(request)
        return JSONResponse(await run_in_threadpool(jobs.create, project, location, body))

    @app.get(JOBS)
    async def list_jobs(pageSize: int = 50, pageToken: str | None = None):
        return jobs.list(pageSize, pageToken)

    @app.get(JOBS + "/{job_id}")
    async def get_job(job_id: str):
        return jobs.view(jobs.get(job_id))

    @app.post(JOBS + "/{target}")
    async def job_action(target: str):
        job_id, _, action = target.partition(":")
        if action != "cancel":
            raise GeminiError(404, f"batchPredictionJobs/{target}: only :cancel is served")
        jobs.cancel(job_id)
        return {}
