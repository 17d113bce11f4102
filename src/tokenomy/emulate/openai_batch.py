"""OpenAI's Files and Batches API on the local model, so the official `openai` SDK works unmodified.

Routes: `POST /v1/files` (multipart, purpose=batch), `GET /v1/files`, `GET|DELETE /v1/files/{id}`,
`GET /v1/files/{id}/content`, `POST /v1/batches`, `GET /v1/batches`, `GET /v1/batches/{id}`,
`POST /v1/batches/{id}/cancel`. A batch moves validating -> in_progress -> finalizing -> completed;
a bad input file fails it (`errors.data` names each line); cancel goes cancelling -> cancelled and
running out of the completion window is expired. Answers go to the output file
(`{"id", "custom_id", "response": {"status_code": 200, "request_id", "body": chat.completion}, "error": null}`);
requests the model rejects go to the error file with their 4xx response, and requests never run
(cancelled or expired) go there with `error.code` batch_cancelled / batch_expired.

The HTTP routes are in `openai_batch_api`. Batches of up to `local_model_max_records` requests run on the
local model, bigger ones on the instant engine. Time is scaled: the 24h window lasts 24 x `seconds_per_hour`
real seconds.
"""

from __future__ import annotations

import json
import secrets
import threading
import time
from dataclasses import dataclass
from typing import Any

from tokenomy.emulate.engine import Block, InputTooLong, Turn
from tokenomy.emulate.instant_engine import InstantEngine
from tokenomy.errors import UnknownModelError
from tokenomy.pricing.catalog import default_catalog

ENDPOINT = "/v1/chat/completions"
WINDOW_HOURS = {"24h": 24}
ACTIVE = ("validating", "in_progress", "finalizing", "cancelling")
NEVER_RAN = {
    "batch_cancelled": "This request was not executed because the batch was cancelled.",
    "batch_expired": "This request could not be executed before the completion window expired.",
}


@dataclass
class OpenAIBatchSettings:
    validating_seconds: float = 1.0
    seconds_per_hour: float = 3600.0
    local_model_max_records: int = 20
    instant_delay_s: float = 0.0
    # Models this account may not use: a batch naming one fails at validation (model_not_found), as OpenAI's does.
    no_access_models: tuple[str, ...] = ()


class APIError(Exception):
    def __init__(self, status: int, message: str, param: str | None = None, code: str | None = None) -> None:
        super().__init__(message)
        self.status, self.message, self.param, self.code = status, message, param, code

    def body(self) -> dict[str, Any]:
        kind = "invalid_request_error" if self.status < 500 else "server_error"
        return {"error": {"message": self.message, "type": kind, "param": self.param, "code": self.code}}


def _new_id(prefix: str) -> str:
    return f"{prefix}{secrets.token_hex(12)}"


def _text(content: Any) -> str:
    if content is None:  # an assistant turn that only calls tools: OpenAI takes `"content": null`
        return ""
    if isinstance(content, str):
        return content
    if isinstance(content, list):
        return "".join(p.get("text", "") for p in content if isinstance(p, dict) and p.get("type", "text") == "text")
    raise APIError(400, "Invalid type for 'messages[].content': expected a string or an array of parts.", "messages")


class OpenAIBatchEmulator:
    """Files and batches in memory; each batch is worked by its own thread.

    Subclasses (Azure) change `endpoint` (what a batch and its lines must name) and `model_for`
    (what a request's `model` names)."""

    endpoint = ENDPOINT

    def __init__(self, engine=None, settings: OpenAIBatchSettings | None = None) -> None:
        self.settings = settings or OpenAIBatchSettings()
        self._local = engine
        self.instant = InstantEngine(self.settings.instant_delay_s)
        self.files: dict[str, tuple[dict[str, Any], bytes]] = {}
        self.batches: dict[str, dict[str, Any]] = {}
        self.lock = threading.Lock()

    @property
    def local(self):
        if self._local is None:  # load the local model only when a batch needs it
            from tokenomy.emulate.engine import Engine

            self._local = Engine()
        return self._local

    # -- files ----------------------------------------------------------------------------------------
    def add_file(self, name: str, data: bytes, purpose: str) -> dict[str, Any]:
        meta: dict[str, Any] = {
            "id": _new_id("file-"),
            "object": "file",
            "bytes": len(data),
            "created_at": int(time.time()),
            "filename": name,
            "purpose": purpose,
            "status": "processed",
            "expires_at": None,
            "status_details": None,
        }
        self.files[meta["id"]] = (meta, data)
        return meta

    def file(self, file_id: str) -> tuple[dict[str, Any], bytes]:
        if file_id not in self.files:
            raise APIError(404, f"No such File object: {file_id}", "id")
        return self.files[file_id]

    # -- batches --------------------------------------------------------------------------------------
    def create_batch(self, body: dict[str, Any]) -> dict[str, Any]:
        for key in ("input_file_id", "endpoint", "completion_window"):
            if not body.get(key):
                raise APIError(400, f"Missing required parameter: '{key}'.", key, "missing_required_parameter")
        if body["endpoint"] != self.endpoint:
            raise APIError(
                400,
                f"Invalid value: '{body['endpoint']}'. The emulator supports {self.endpoint} only.",
                "endpoint",
                "invalid_value",
            )
        if body["completion_window"] not in WINDOW_HOURS:
            raise APIError(
                400,
                "Invalid value for 'completion_window': only '24h' is supported.",
                "completion_window",
                "invalid_value",
            )
        meta, _ = self.file(body["input_file_id"])
        if meta["purpose"] != "batch":
            raise APIError(
                400,
                f"File {meta['id']} has purpose {meta['purpose']!r}; upload it with purpose 'batch'.",
                "input_file_id",
            )
        now = int(time.time())
        window = WINDOW_HOURS[body["completion_window"]] * self.settings.seconds_per_hour
        batch = {
            "id": _new_id("batch_"),
            "object": "batch",
            "endpoint": self.endpoint,
            "errors": None,
            "input_file_id": meta["id"],
            "completion_window": body["completion_window"],
            "status": "validating",
            "output_file_id": None,
            "error_file_id": None,
            "created_at": now,
            "in_progress_at": None,
            "expires_at": int(now + window),
            "finalizing_at": None,
            "completed_at": None,
            "failed_at": None,
            "expired_at": None,
            "cancelling_at": None,
            "cancelled_at": None,
            "request_counts": {"total": 0, "completed": 0, "failed": 0},
            "metadata": body.get("metadata") or {},
            "model": None,
            "usage": None,
        }
        with self.lock:
            self.batches[batch["id"]] = batch
        deadline = time.monotonic() + window
        threading.Thread(
            target=self._run, args=(batch, deadline), name=f"openai-batch:{batch['id']}", daemon=True
        ).start()
        return batch

    def batch(self, batch_id: str) -> dict[str, Any]:
        if batch_id not in self.batches:
            raise APIError(404, f"No batch found with id '{batch_id}'.", "batch_id")
        return self.batches[batch_id]

    def cancel(self, batch_id: str) -> dict[str, Any]:
        batch = self.batch(batch_id)
        with self.lock:
            if batch["status"] not in ("validating", "in_progress"):
                raise APIError(409, f"Cannot cancel a batch with status '{batch['status']}'.")
            batch["status"], batch["cancelling_at"] = "cancelling", int(time.time())
        return batch

    def _set(self, batch: dict[str, Any], status: str) -> None:
        with self.lock:
            batch["status"] = status
            batch[f"{status}_at"] = int(time.time())

    def _run(self, batch: dict[str, Any], deadline: float) -> None:
        try:
            end = time.monotonic() + self.settings.validating_seconds
            while time.monotonic() < end and batch["status"] == "validating" and time.monotonic() < deadline:
                time.sleep(0.02)
            lines = self._validate(batch)
            if lines is None:
                return
            if batch["status"] == "validating":
                self._set(batch, "in_progress")
            self._process(batch, lines, deadline)
        except Exception as exc:  # an emulator fault fails the batch, as a server error would
            batch["errors"] = {
                "object": "list",
                "data": [{"code": "server_error", "message": str(exc), "param": None, "line": None}],
            }
            self._set(batch, "failed")

    def _validate(self, batch: dict[str, Any]) -> list[dict[str, Any]] | None:
        """Every line must be a JSON request object for this endpoint with a unique custom_id."""
        _, data = self.file(batch["input_file_id"])
        errors, lines, seen = [], [], set()
        for number, text in enumerate(data.decode("utf-8", "replace").splitlines(), start=1):
            if not text.strip():
                continue
            try:
                obj = json.loads(text)
            except ValueError:
                obj = None
            problem: tuple[str, str, str | None] | None = None
            if not isinstance(obj, dict):
                problem = ("invalid_json_line", "This line is not parseable as valid JSON.", None)
            elif not obj.get("custom_id"):
                problem = ("missing_required_parameter", "Missing required parameter: 'custom_id'.", "custom_id")
            elif obj["custom_id"] in seen:
                problem = (
                    "duplicate_custom_id",
                    f"The custom_id {obj['custom_id']!r} is used more than once.",
                    "custom_id",
                )
            elif obj.get("method") != "POST" or obj.get("url") != batch["endpoint"]:
                problem = ("invalid_url", f"Each request must be POST {batch['endpoint']}.", "url")
            elif not isinstance(obj.get("body"), dict):
                problem = ("missing_required_parameter", "Missing required parameter: 'body'.", "body")
            elif obj["body"].get("model") in self.settings.no_access_models:
                model = obj["body"]["model"]
                said = f"The model `{model}` does not exist or you do not have access to it."
                problem = ("model_not_found", said, "body.model")
            if problem:
                errors.append({"code": problem[0], "message": problem[1], "param": problem[2], "line": number})
            else:
                seen.add(obj["custom_id"])
                lines.append(obj)
        if not errors and not lines:
            errors.append(
                {"code": "empty_file", "message": "The input file has no requests.", "param": None, "line": None}
            )
        if errors:
            batch["errors"] = {"object": "list", "data": errors}
            self._set(batch, "failed")
            return None
        batch["request_counts"]["total"] = len(lines)
        batch["model"] = lines[0]["body"].get("model")
        return lines

    def model_for(self, name: Any) -> str:
        """The catalog model a request's `model` names (APIError 4xx when none)."""
        if not isinstance(name, str) or not name:
            raise APIError(400, "Missing required parameter: 'model'.", "model", "missing_required_parameter")
        try:
            default_catalog().lookup(name)
        except UnknownModelError:
            raise APIError(
                404, f"The model `{name}` does not exist or you do not have access to it.", "model", "model_not_found"
            ) from None
        return name

    def chat(self, engine, body: dict[str, Any]) -> dict[str, Any]:
        """One chat.completion body, or APIError like the API's 4xx."""
        model = self.model_for(body.get("model"))
        messages = body.get("messages")
        if not isinstance(messages, list) or not messages or not all(isinstance(m, dict) for m in messages):
            raise APIError(
                400,
                "'messages' must be a non-empty array of message objects.",
                "messages",
                "missing_required_parameter",
            )
        system = [Block(_text(m.get("content"))) for m in messages if m.get("role") in ("system", "developer")]
        turns = [
            Turn(m.get("role"), [Block(_text(m.get("content")))])
            for m in messages
            if m.get("role") in ("user", "assistant")
        ]
        if not turns:
            raise APIError(400, "'messages' must contain a user message.", "messages")
        max_tokens = body.get("max_completion_tokens", body.get("max_tokens"))
        if max_tokens is not None and (not isinstance(max_tokens, int) or max_tokens < 1):
            raise APIError(400, f"Invalid 'max_tokens': {max_tokens!r}; expected an integer >= 1.", "max_tokens")
        temperature = body.get("temperature")
        if temperature is not None and (not isinstance(temperature, (int, float)) or not 0 <= temperature <= 2):
            raise APIError(
                400,
                f"Invalid 'temperature': {temperature!r}; expected a number between 0 and 2.",
                "temperature",
                "decimal_above_max_value",
            )
        stop = body.get("stop") or []
        if not isinstance(stop, (str, list)) or any(not isinstance(s, str) for s in stop):
            raise APIError(400, "Invalid 'stop': expected a string or an array of strings.", "stop")
        try:
            prepared = engine.prepare(
                model,
                system,
                turns,
                None,
                False,
                max_tokens,
                temperature,
                [stop] if isinstance(stop, str) else list(stop),
            )
        except InputTooLong as exc:
            raise APIError(400, str(exc), "messages", "context_length_exceeded") from None
        pieces, output_tokens, finish = [], 0, "stop"
        for item in engine.generate(prepared):
            if isinstance(item, str):
                pieces.append(item)
            else:
                output_tokens, finish = item
        return {
            "id": _new_id("chatcmpl-"),
            "object": "chat.completion",
            "created": int(time.time()),
            "model": model,
            "choices": [
                {
                    "index": 0,
                    "message": {"role": "assistant", "content": "".join(pieces), "refusal": None},
                    "logprobs": None,
                    "finish_reason": finish,
                }
            ],
            "usage": {
                "prompt_tokens": prepared.prompt_tokens,
                "completion_tokens": output_tokens,
                "total_tokens": prepared.prompt_tokens + output_tokens,
                "prompt_tokens_details": {"cached_tokens": 0},
                "completion_tokens_details": {"reasoning_tokens": 0},
            },
            "system_fingerprint": None,
        }

    def _process(self, batch: dict[str, Any], lines: list[dict[str, Any]], deadline: float) -> None:
        engine = self.local if len(lines) <= self.settings.local_model_max_records else self.instant
        outputs, errors = [], []
        usage = {"input_tokens": 0, "output_tokens": 0}
        ended = None
        for obj in lines:
            if ended is None and batch["status"] == "cancelling":
                ended = "batch_cancelled"
            elif ended is None and time.monotonic() >= deadline:
                ended = "batch_expired"
            line = {"id": _new_id("batch_req_"), "custom_id": obj["custom_id"], "response": None, "error": None}
            if ended:
                errors.append({**line, "error": {"code": ended, "message": NEVER_RAN[ended]}})
                continue
            request_id = _new_id("req_")
            try:
                body = self.chat(engine, obj["body"])
                line["response"] = {"status_code": 200, "request_id": request_id, "body": body}
                outputs.append(line)
                batch["request_counts"]["completed"] += 1
                usage["input_tokens"] += body["usage"]["prompt_tokens"]
                usage["output_tokens"] += body["usage"]["completion_tokens"]
            except APIError as exc:
                line["response"] = {"status_code": exc.status, "request_id": request_id, "body": exc.body()}
                errors.append(line)
                batch["request_counts"]["failed"] += 1
        if ended is None:
            self._set(batch, "finalizing")
        name = batch["id"]
        for kind, rows in (("output", outputs), ("error", errors)):
            if rows:
                data = "".join(json.dumps(r) + "\n" for r in rows).encode()
                batch[f"{kind}_file_id"] = self.add_file(f"{name}_{kind}.jsonl", data, "batch_output")["id"]
        batch["usage"] = {
            **usage,
            "total_tokens": usage["input_tokens"] + usage["output_tokens"],
            "input_tokens_details": {"cached_tokens": 0},
            "output_tokens_details": {"reasoning_tokens": 0},
        }
        self._set(batch, {"batch_cancelled": "cancelled", "batch_expired": "expired"}.get(ended or "", "completed"))
