"""Azure OpenAI's data plane on the emulator engines, so the `openai` SDK's AzureOpenAI client runs unmodified.

Routes (all need `?api-version=YYYY-MM-DD[-preview]` and an `api-key` or `Authorization: Bearer` header):
`POST /openai/deployments/{deployment}/chat/completions` (JSON and SSE), and the Files + Batches API
under `/openai` (`/openai/files`, `/openai/batches`, ...), where a batch names `/chat/completions` as
its endpoint and each line's `model` is a deployment name.

Azure's answers where they differ from OpenAI's: a missing api-version is `404 {"error": {"code":
"404", "message": "Resource not found"}}`; an unknown deployment is `404 DeploymentNotFound`; a
missing key is 401; a stream opens with a chunk that has no choices (Azure's prompt filter results);
`stream_options` is an unrecognized argument (400) before api-version 2024-09-01-preview.

Deployments map a name to a catalog OpenAI model (`--deployment NAME=MODEL`); a deployment named
after an OpenAI catalog model also exists (the usual practice). Prompt caching follows OpenAI's rules:
prompts of 1,024 tokens or more, the longest prefix seen in the last 5 minutes (tools, then message
by message), counted in 128-token steps, reported as `prompt_tokens_details.cached_tokens`. Tool
calls: a forced tool (`required` or a named function) is called, and under `auto` the first tool is
called when the last turn is the user's (a tool result is answered in text); arguments follow the
tool's schema (the local model generates them under a grammar; the instant engine fills the schema).
"""

from __future__ import annotations

import json
import re
import secrets
import time
from collections.abc import Iterator
from typing import Any

from fastapi import Depends, FastAPI, Request
from starlette.responses import JSONResponse, StreamingResponse

from tokenomy.caching.placement import DOCUMENT_TOKENS, IMAGE_TOKENS
from tokenomy.emulate.engine import Block, CutShort, Turn
from tokenomy.emulate.instant_openai import embeddings_answer, tool_pairs_error
from tokenomy.emulate.json_schemas import schema_problem
from tokenomy.emulate.openai_batch import APIError, OpenAIBatchEmulator, OpenAIBatchSettings
from tokenomy.emulate.openai_batch_api import batch_router, install_errors
from tokenomy.emulate.prompt_cache import Checkpoint, PromptCache, prefix_digest
from tokenomy.errors import UnknownModelError
from tokenomy.pricing.catalog import default_catalog

API_VERSION = re.compile(r"^\d{4}-\d{2}-\d{2}(-preview)?$")
CACHE_MIN_TOKENS, CACHE_STEP, CACHE_TTL_S = 1024, 128, 300
STREAM_OPTIONS_SINCE = "2024-09-01"  # older api-versions (2024-06-01 GA, ...) refuse stream_options
NOT_FOUND = "Resource not found"
NO_DEPLOYMENT = (
    "The API deployment for this resource does not exist. If you created the deployment within the last 5 minutes, "
    "please wait a moment and try again."
)
NO_KEY = (
    "Access denied due to invalid subscription key or wrong API endpoint. Make sure to provide a valid key for an "
    "active subscription and use a correct regional API endpoint for your resource."
)


# Azure's content filter annotations (every category passed), as its answers carry them.
FILTERED_SAFE = {name: {"filtered": False, "severity": "safe"} for name in ("hate", "self_harm", "sexual", "violence")}


class AzureError(Exception):
    """An error in Azure's own shape: {"error": {"code", "message"}}."""

    def __init__(self, status: int, code: str, message: str) -> None:
        super().__init__(message)
        self.status, self.code, self.message = status, code, message


def deployment_model(deployments: dict[str, str], name: Any) -> str | None:
    """The catalog model behind a deployment name, or None when no such deployment exists."""
    if not isinstance(name, str) or not name:
        return None
    if name in deployments:
        return deployments[name]
    try:
        entry = default_catalog().lookup(name)
    except UnknownModelError:
        return None
    return name if entry.provider == "openai" else None


class AzureBatchEmulator(OpenAIBatchEmulator):
    """OpenAI's Files + Batches emulator with Azure's endpoint name and deployment names as `model`."""

    endpoint = "/chat/completions"

    def __init__(self, deployments: dict[str, str], engine=None, settings: OpenAIBatchSettings | None = None) -> None:
        super().__init__(engine, settings)
        self.deployments = deployments

    def model_for(self, name: Any) -> str:
        model = deployment_model(self.deployments, name)
        if model is None:
            raise APIError(404, NO_DEPLOYMENT, "model", "DeploymentNotFound")
        return model


def sample(schema: Any) -> Any:
    """A value that satisfies a simple JSON schema (object, array, string, number, enum): the instant
    engine's tool arguments and structured output."""
    if not isinstance(schema, dict):
        return None
    if schema.get("enum"):
        return schema["enum"][0]
    kind = schema.get("type")
    kind = kind[0] if isinstance(kind, list) else kind
    if kind == "object" or "properties" in schema:
        props = schema.get("properties") or {}
        return {key: sample(props[key]) for key in props}
    if kind == "array":
        return [sample(schema.get("items"))]
    return {"string": "x", "integer": 1, "number": 1.0, "boolean": True}.get(kind or "")


def _text(content: Any, where: str) -> Block:
    """A message's content as one prompt block; images and files are billed at the fixed estimates."""
    if content is None or isinstance(content, str):
        return Block(content or "")
    if not isinstance(content, list):
        raise APIError(400, f"Invalid type for '{where}.content': expected a string or an array of parts.", where)
    texts, extra = [], 0
    for i, part in enumerate(content):
        kind = part.get("type") if isinstance(part, dict) else None
        if kind == "text":
            texts.append(str(part.get("text", "")))
        elif kind == "image_url":
            texts.append("[image]")
            extra += IMAGE_TOKENS
        elif kind == "file":
            texts.append("[document]")
            extra += DOCUMENT_TOKENS
        else:
            raise APIError(400, f"Invalid content part type {kind!r} at '{where}.content[{i}]'.", f"{where}.content")
    return Block("\n".join(texts), extra_tokens=extra)


class AzureChat:
    """Chat Completions for deployments, on one engine and one prompt cache."""

    def __init__(self, deployments: dict[str, str], engine, cache: PromptCache | None = None) -> None:
        self.deployments, self.engine, self.cache = deployments, engine, cache or PromptCache()

    def _parse(self, body: dict[str, Any]) -> tuple[list[Block], list[Turn], list[tuple[str, int]]]:
        """System blocks, turns, and each message as (exact JSON, its prompt tokens) for prompt caching."""
        messages = body.get("messages")
        if not isinstance(messages, list) or not messages or not all(isinstance(m, dict) for m in messages):
            raise APIError(400, "'messages' must be a non-empty array of message objects.", "messages")
        refused = tool_pairs_error(messages)
        if refused is not None:  # a tool result answering no call, or a call left unanswered
            raise APIError(400, *refused)
        system, turns, texts = [], [], []
        for i, m in enumerate(messages):
            block = _text(m.get("content"), f"messages[{i}]")
            role = m.get("role")
            if role in ("system", "developer"):
                system.append(block)
            elif role == "tool":
                block.text = f"<tool_response>{block.text}</tool_response>"
                turns.append(Turn("user", [block]))
            elif role in ("user", "assistant"):
                calls = [c.get("function") or {} for c in m.get("tool_calls") or []]
                block.text += "".join(f"<tool_call>{json.dumps(c)}</tool_call>" for c in calls)
                turns.append(Turn(role, [block]))
            else:
                raise APIError(400, f"Invalid value for 'messages[{i}].role': {role!r}.", f"messages[{i}].role")
            texts.append((json.dumps(m, sort_keys=True), self.engine.count(block.text) + block.extra_tokens + 1))
        if not turns:
            raise APIError(400, "'messages' must contain a user message.", "messages")
        return system, turns, texts

    def _cached(self, model: str, body: dict[str, Any], texts: list[tuple[str, int]], total: int) -> int:
        """OpenAI's automatic prompt caching: the longest live prefix, in 128-token steps past 1,024."""
        tools = json.dumps(body.get("tools") or [], sort_keys=True)
        prefix, tokens, points = tools, self.engine.count(tools) if body.get("tools") else 0, []
        for text, count in texts:
            prefix, tokens = prefix + text, tokens + count
            points.append(Checkpoint(prefix_digest(model, prefix), min(tokens, total), CACHE_TTL_S))
        read = self.cache.account(points, total, CACHE_MIN_TOKENS, per_checkpoint=False).cache_read_tokens
        return 0 if read < CACHE_MIN_TOKENS else CACHE_MIN_TOKENS + (read - CACHE_MIN_TOKENS) // CACHE_STEP * CACHE_STEP

    def _tool(self, body: dict[str, Any], last_role: str) -> dict[str, Any] | None:
        tools = [t.get("function") or {} for t in body.get("tools") or [] if isinstance(t, dict)]
        for i, tool in enumerate(tools):  # OpenAI checks every function's schema before it answers
            problem = schema_problem(tool["parameters"]) if tool.get("parameters") is not None else None
            if problem is not None:
                name = tool.get("name")
                raise APIError(
                    400, f"Invalid schema for function '{name}': {problem}.", f"tools[{i}].function.parameters"
                )
        choice = body.get("tool_choice", "auto")
        if not tools or choice == "none" or (choice == "auto" and last_role == "tool"):
            return None
        if isinstance(choice, dict):
            name = (choice.get("function") or {}).get("name")
            chosen = next((t for t in tools if t.get("name") == name), None)
            if chosen is None:
                raise APIError(400, f"tool_choice names function {name!r}, which is not in 'tools'.", "tool_choice")
            return chosen
        return tools[0]

    def answer(self, deployment: str, body: dict[str, Any]) -> tuple[dict[str, Any], list[str]]:
        """(chat.completion, the text pieces in generation order) for one request."""
        model = deployment_model(self.deployments, deployment)
        if model is None:
            raise AzureError(404, "DeploymentNotFound", NO_DEPLOYMENT)
        system, turns, texts = self._parse(body)
        max_tokens = body.get("max_completion_tokens", body.get("max_tokens"))
        if max_tokens is not None and (not isinstance(max_tokens, int) or max_tokens < 1):
            raise APIError(400, f"Invalid 'max_tokens': {max_tokens!r}; expected an integer >= 1.", "max_tokens")
        stop = body.get("stop") or []
        prepared = self.engine.prepare(
            model,
            system,
            turns,
            None,
            False,
            max_tokens,
            body.get("temperature"),
            [stop] if isinstance(stop, str) else stop,
        )
        cached = self._cached(model, body, texts, prepared.prompt_tokens)
        message: dict[str, Any] = {"role": "assistant", "content": None}
        pieces: list[str] = []
        tool = self._tool(body, str((body["messages"][-1]).get("role")))
        fmt = body.get("response_format") or {}
        schema = (fmt.get("json_schema") or {}).get("schema") if fmt.get("type") == "json_schema" else None
        problem = schema_problem(schema) if schema is not None else None
        if problem is not None:
            name = (fmt.get("json_schema") or {}).get("name")
            raise APIError(400, f"Invalid schema for response_format '{name}': {problem}.", "response_format")
        if tool is not None or schema is not None or fmt.get("type") == "json_object":
            try:
                value, output_tokens = self._json(prepared, (tool or {}).get("parameters") if tool else schema)
                text, finish = json.dumps(value), "tool_calls" if tool else "stop"
            except CutShort as cut:  # max_tokens stops it: finish_reason "length" with the partial output, as OpenAI's
                text, output_tokens, finish = cut.text, cut.tokens, "length"
            if tool:
                call = {"name": tool.get("name"), "arguments": text}
                message["tool_calls"] = [{"id": f"call_{secrets.token_hex(8)}", "type": "function", "function": call}]
            else:
                pieces = [text]
        else:
            output_tokens, finish = 0, "stop"
            for item in self.engine.generate(prepared):
                if isinstance(item, str):
                    pieces.append(item)
                else:
                    output_tokens, finish = item
        if pieces:
            message["content"] = "".join(pieces)
        usage = {
            "prompt_tokens": prepared.prompt_tokens,
            "completion_tokens": output_tokens,
            "total_tokens": prepared.prompt_tokens + output_tokens,
            "prompt_tokens_details": {"cached_tokens": cached, "audio_tokens": 0},
            "completion_tokens_details": {"reasoning_tokens": 0, "audio_tokens": 0},
        }
        completion = {
            "id": f"chatcmpl-{secrets.token_hex(12)}",
            "object": "chat.completion",
            "created": int(time.time()),
            "model": model,
            "choices": [
                {
                    "index": 0,
                    "message": message,
                    "finish_reason": finish,
                    "logprobs": None,
                    "content_filter_results": FILTERED_SAFE,
                }
            ],
            "prompt_filter_results": [{"prompt_index": 0, "content_filter_results": FILTERED_SAFE}],
            "usage": usage,
            "system_fingerprint": "fp_tokenomy",
        }
        return completion, pieces

    def _json(self, prepared, schema: Any) -> tuple[Any, int]:
        if hasattr(self.engine, "generate_json"):  # the local model, under a grammar
            return self.engine.generate_json(prepared, schema or {"type": "object"})
        value = sample(schema) if schema else {}
        return value, max(1, self.engine.count(json.dumps(value)))


def stream_chunks(completion: dict[str, Any], pieces: list[str], include_usage: bool) -> Iterator[bytes]:
    """The completion as Azure streams it: a choiceless prompt-filter chunk, deltas, finish, usage."""
    head = {"id": completion["id"], "object": "chat.completion.chunk", "created": completion["created"]}
    head["model"] = completion["model"]
    choice = completion["choices"][0]

    def chunk(delta: dict[str, Any], finish: str | None = None, **more: Any) -> bytes:
        data = {**head, "choices": [{"index": 0, "delta": delta, "finish_reason": finish, "logprobs": None, **more}]}
        return b"data: " + json.dumps(data).encode() + b"\n\n"

    filtered = {"id": "", "object": "", "created": 0, "model": "", "choices": []}
    filtered["prompt_filter_results"] = completion["prompt_filter_results"]
    yield b"data: " + json.dumps(filtered).encode() + b"\n\n"
    yield chunk({"role": "assistant", "content": ""})
    for piece in pieces:  # Azure annotates each piece of the answer with its content filter results
        yield chunk({"content": piece}, content_filter_results=choice["content_filter_results"])
    for index, call in enumerate(choice["message"].get("tool_calls") or []):
        yield chunk({"tool_calls": [{"index": index, **call}]})
    yield chunk({}, choice["finish_reason"])
    if include_usage:
        yield b"data: " + json.dumps({**head, "choices": [], "usage": completion["usage"]}).encode() + b"\n\n"
    yield b"data: [DONE]\n\n"


def _azure_request(request: Request) -> None:
    """Every data-plane call names an api-version and carries a key or an Entra ID token."""
    version = request.query_params.get("api-version")
    if not version:
        raise AzureError(404, "404", NOT_FOUND)
    if not API_VERSION.match(version):
        raise AzureError(400, "BadRequest", f"API version not supported: {version!r}")
    bearer = request.headers.get("authorization", "").removeprefix("Bearer ").strip()
    if not request.headers.get("api-key") and not bearer:
        raise AzureError(401, "401", NO_KEY)


def create_app(deployments: dict[str, str] | None = None, engine=None, **batch_settings: Any) -> FastAPI:
    """The Azure OpenAI emulator; `engine` defaults to the local model (loaded when first needed)."""
    deployments = dict(deployments or {})
    for model in deployments.values():
        default_catalog().lookup(model)  # an unknown model fails here, not on the first call
    batches = AzureBatchEmulator(deployments, engine, OpenAIBatchSettings(**batch_settings))
    chat = AzureChat(deployments, engine if engine is not None else _LazyEngine(batches))
    app = FastAPI(title="Tokenomy Azure OpenAI emulator", docs_url=None, redoc_url=None, openapi_url=None)
    app.state.chat, app.state.batches = chat, batches
    install_errors(app)

    @app.exception_handler(AzureError)
    async def azure_error(request: Request, exc: AzureError):
        return JSONResponse({"error": {"code": exc.code, "message": exc.message}}, status_code=exc.status)

    @app.post("/openai/deployments/{deployment}/chat/completions", dependencies=[Depends(_azure_request)])
    async def completions(deployment: str, request: Request):
        try:
            body = json.loads(await request.body() or b"{}")
        except ValueError:
            raise APIError(400, "The request body is not valid JSON.") from None
        if not isinstance(body, dict):
            raise APIError(400, "The request body must be a JSON object.")
        if "stream_options" in body and request.query_params["api-version"] < STREAM_OPTIONS_SINCE:
            raise APIError(400, "Unrecognized request argument supplied: stream_options")
        completion, pieces = chat.answer(deployment, body)
        if body.get("stream"):
            usage = bool((body.get("stream_options") or {}).get("include_usage"))
            return StreamingResponse(stream_chunks(completion, pieces, usage), media_type="text/event-stream")
        return completion

    @app.post("/openai/deployments/{deployment}/embeddings", dependencies=[Depends(_azure_request)])
    async def embeddings(deployment: str, request: Request):
        model = deployment_model(deployments, deployment)
        if model is None:
            raise AzureError(404, "DeploymentNotFound", NO_DEPLOYMENT)
        try:
            body = json.loads(await request.body() or b"{}")
        except ValueError:
            raise APIError(400, "The request body is not valid JSON.") from None
        status, answer = embeddings_answer({**body, "model": model} if isinstance(body, dict) else {})
        return JSONResponse(answer, status_code=status)

    app.include_router(batch_router(batches, "/openai", [Depends(_azure_request)]))
    return app


class _LazyEngine:
    """The batch emulator's local model, loaded on the first chat call (the CLI starts fast)."""

    def __init__(self, batches: AzureBatchEmulator) -> None:
        self._batches = batches

    def __getattr__(self, name: str) -> Any:
        return getattr(self._batches.local, name)
