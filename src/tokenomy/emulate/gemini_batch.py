"""The Gemini Batch API on the emulator: `models/{model}:batchGenerateContent` with inline requests.

A batch is a long-running operation named `batches/{id}`; its `metadata` (a GenerateContentBatch)
moves BATCH_STATE_PENDING -> BATCH_STATE_RUNNING -> BATCH_STATE_SUCCEEDED, and once done carries
`output.inlinedResponses.inlinedResponses`: one `{response | error, metadata}` per request, in input
order. `batches/{id}:cancel` stops a batch that has not finished (BATCH_STATE_CANCELLED); requests it
never ran are left out of the output. Requests run one after another on a background thread, after
`pending_seconds`.
"""

from __future__ import annotations

import secrets
import threading
import time
from datetime import UTC, datetime
from typing import Any

from tokenomy.emulate.gemini_model import GeminiEmulator, rfc3339
from tokenomy.emulate.gemini_parts import GeminiError, field, invalid
from tokenomy.emulate.gemini_response import answer, response_body

METADATA_TYPE = "type.googleapis.com/google.ai.generativelanguage.v1main.GenerateContentBatch"
DONE = ("BATCH_STATE_SUCCEEDED", "BATCH_STATE_FAILED", "BATCH_STATE_CANCELLED", "BATCH_STATE_EXPIRED")


class GeminiBatches:
    """Batches in memory, each run by its own worker thread."""

    def __init__(self, emulator: GeminiEmulator, pending_seconds: float = 0.2) -> None:
        self.emulator = emulator
        self.pending_seconds = pending_seconds
        self.batches: dict[str, dict[str, Any]] = {}
        self.lock = threading.Lock()

    def create(self, model: str, body: Any) -> dict[str, Any]:
        model = model.removeprefix("models/")
        self.emulator.entry(model)
        batch = body.get("batch") if isinstance(body, dict) else None
        if not isinstance(batch, dict):
            raise invalid("batch: required")
        source = field(batch, "inputConfig") or {}
        if field(source, "fileName"):
            raise invalid("inputConfig.fileName: the Tokenomy emulator takes inline requests only")
        requests = field(field(source, "requests") or {}, "requests")
        if not isinstance(requests, list) or not requests:
            raise invalid("batch.inputConfig.requests.requests: at least one request is required")
        for i, item in enumerate(requests):
            if not isinstance(item, dict) or not isinstance(item.get("request"), dict):
                raise invalid(f"batch.inputConfig.requests.requests[{i}].request: required")
        now = rfc3339(datetime.now(UTC))
        name = f"batches/{secrets.token_hex(10)}"
        record = {
            "name": name,
            "model": f"models/{model}",
            "displayName": str(field(batch, "displayName") or name),
            "state": "BATCH_STATE_PENDING",
            "createTime": now,
            "updateTime": now,
            "requests": requests,
            "responses": [],
        }
        with self.lock:
            self.batches[name] = record
        threading.Thread(target=self._run, args=(record,), name=f"gemini-batch:{name}", daemon=True).start()
        return self.operation(record)

    def _run(self, record: dict[str, Any]) -> None:
        time.sleep(self.pending_seconds)
        with self.lock:
            if record["state"] != "BATCH_STATE_PENDING":
                return
            record["state"] = "BATCH_STATE_RUNNING"
        model = record["model"]
        for item in record["requests"]:
            if record["state"] != "BATCH_STATE_RUNNING":
                return  # cancelled: requests not yet run are left out
            out: dict[str, Any] = {}
            if "metadata" in item:
                out["metadata"] = item["metadata"]
            try:
                call = self.emulator.prepare(model, item["request"])
                out["response"] = response_body(call, answer(self.emulator.engine, call), secrets.token_hex(8))
            except GeminiError as exc:
                out["error"] = {"code": exc.code, "message": exc.message}
            except Exception as exc:  # the model failed on this request: the batch goes on with the next
                out["error"] = {"code": 500, "message": f"The model failed: {exc}"}
            with self.lock:
                record["responses"].append(out)
        with self.lock:
            if record["state"] == "BATCH_STATE_RUNNING":
                record["state"] = "BATCH_STATE_SUCCEEDED"
                record["endTime"] = rfc3339(datetime.now(UTC))
            record["updateTime"] = rfc3339(datetime.now(UTC))

    def get(self, name: str) -> dict[str, Any]:
        record = self.batches.get(name if name.startswith("batches/") else f"batches/{name}")
        if record is None:
            raise GeminiError(404, f"Batch {name} not found.")
        return record

    def operation(self, record: dict[str, Any]) -> dict[str, Any]:
        """The batch as the API's Operation, its GenerateContentBatch in `metadata`."""
        with self.lock:
            responses = list(record["responses"])
            failed = sum(1 for r in responses if "error" in r)
            metadata: dict[str, Any] = {
                "@type": METADATA_TYPE,
                "name": record["name"],
                "model": record["model"],
                "displayName": record["displayName"],
                "state": record["state"],
                "createTime": record["createTime"],
                "updateTime": record["updateTime"],
                "batchStats": {
                    "requestCount": str(len(record["requests"])),
                    "successfulRequestCount": str(len(responses) - failed),
                    "failedRequestCount": str(failed),
                    "pendingRequestCount": str(len(record["requests"]) - len(responses)),
                },
            }
            if "endTime" in record:
                metadata["endTime"] = record["endTime"]
            done = record["state"] in DONE
            if done:
                metadata["output"] = {"inlinedResponses": {"inlinedResponses": responses}}
        return {"name": record["name"], "metadata": metadata, "done": done}

    def list(self, page_size: int, page_token: str | None) -> dict[str, Any]:
        names = sorted(self.batches, key=lambda n: self.batches[n]["createTime"], reverse=True)
        start = int(page_token or 0)
        page = names[start : start + page_size]
        out: dict[str, Any] = {"operations": [self.operation(self.batches[n]) for n in page]}
        if start + page_size < len(names):
            out["nextPageToken"] = str(start + page_size)
        return out

    def cancel(self, name: str) -> None:
        record = self.get(name)
        with self.lock:
            if record["state"] in ("BATCH_STATE_PENDING", "BATCH_STATE_RUNNING"):
                record["state"] = "BATCH_STATE_CANCELLED"
                record["endTime"] = record["updateTime"] = rfc3339(datetime.now(UTC))

    def delete(self, name: str) -> None:
        record = self.get(name)
        with self.lock:
            self.batches.pop(record["name"], None)
