"""`tokenomy emulate bedrock`: Amazon Bedrock Runtime's Converse, ConverseStream and CountTokens on the local model.

Implements `POST /model/{modelId}/converse`, `POST /model/{modelId}/converse-stream`,
`POST /model/{modelId}/count-tokens` (its `input.converse` form) and `POST /model/{modelId}/invoke` for the
embedding models (Titan Text Embeddings V2, Cohere Embed: `bedrock_embed`) and the chat models' own bodies (Claude,
Nova, Llama, Mistral, Titan Text: `bedrock_native`, through Converse) with the
documented request/response shapes, so `boto3.client("bedrock-runtime", endpoint_url=...)` works
unmodified. Errors use Bedrock's shape (status, `x-amzn-ErrorType`, JSON `message`) so botocore
raises the same ClientError codes. Signatures are not checked; the region is read from the SigV4
credential scope only to shape ARNs. Request validation: `bedrock_request`; tool calls, images and documents:
`bedrock_converse` (the local model answers text; images count at a fixed token estimate).

Layout: each API is a router (`router` here, `bedrock_batch.router` for batch jobs) reaching the
shared state through `request.app.state.emulator` (a `BedrockEmulator`); `create_app` is the one app
factory that mounts both. Errors and the caller's region live in `bedrock_errors`, so the routers do
not import each other.
"""

from __future__ import annotations

import json
import time
import uuid
from typing import Any

from fastapi import APIRouter, FastAPI, Request
from starlette.concurrency import run_in_threadpool
from starlette.responses import JSONResponse, StreamingResponse

from tokenomy.emulate.bedrock_batch import router as batch_router
from tokenomy.emulate.bedrock_converse import BedrockEmulator, claude_stop_paths, stream_events
from tokenomy.emulate.bedrock_embed import invoke_embedding, is_embedding_model
from tokenomy.emulate.bedrock_errors import BedrockError, client_region, error_response
from tokenomy.emulate.bedrock_native import INVOKE_FIX, NativeBodyError, from_converse, to_converse
from tokenomy.emulate.engine import Engine

router = APIRouter()


async def _read_body(request: Request) -> Any:
    try:
        return json.loads(await request.body() or b"{}")
    except ValueError:
        raise BedrockError("ValidationException", "The request body is not valid JSON.") from None


@router.post("/model/{model_id:path}/converse")
async def converse(model_id: str, request: Request):
    emulator: BedrockEmulator = request.app.state.emulator
    try:
        body = await _read_body(request)
        result = await run_in_threadpool(emulator.converse, model_id, body, client_region(request))
    except BedrockError as exc:
        return error_response(exc, emulator.retry_after)
    except Exception as exc:  # a local-model failure is the service's fault: Bedrock's 500 shape
        return error_response(BedrockError("InternalServerException", f"The model failed: {exc}"))
    return JSONResponse(result, headers={"x-amzn-RequestId": str(uuid.uuid4())})


@router.post("/model/{model_id:path}/converse-stream")
async def converse_stream(model_id: str, request: Request):
    emulator: BedrockEmulator = request.app.state.emulator
    try:
        body = await _read_body(request)
        prepared, invoked = await run_in_threadpool(emulator.prepare, model_id, body, client_region(request))
    except BedrockError as exc:
        return error_response(exc, emulator.retry_after)
    return StreamingResponse(
        stream_events(emulator.engine, prepared, invoked, claude_stop_paths(model_id, body)),
        media_type="application/vnd.amazon.eventstream",
        headers={"x-amzn-RequestId": str(uuid.uuid4())},
    )


@router.post("/model/{model_id:path}/count-tokens")
async def count_tokens(model_id: str, request: Request):
    """CountTokens: `{"inputTokens": N}`, as many as Converse reports as input for the same prompt."""
    emulator: BedrockEmulator = request.app.state.emulator
    try:
        body = await _read_body(request)
        tokens = await run_in_threadpool(emulator.count, model_id, body)
    except BedrockError as exc:
        return error_response(exc, emulator.retry_after)
    return JSONResponse({"inputTokens": tokens}, headers={"x-amzn-RequestId": str(uuid.uuid4())})


@router.post("/model/{model_id:path}/invoke")
async def invoke_model(model_id: str, request: Request):
    """InvokeModel, answered with Bedrock's headers (the token counts and the latency, ms): an embedding model's
    vectors (`bedrock_embed`), or a chat model's answer to its family's own body (Claude, Nova, Llama, Mistral, Titan
    Text: `bedrock_native`), run through Converse as batch jobs' bodies are."""
    emulator: BedrockEmulator = request.app.state.emulator
    started = time.perf_counter()
    try:
        body = await _read_body(request)
        if is_embedding_model(model_id):
            emulator.maybe_throttle()
            answer, tokens = await run_in_threadpool(invoke_embedding, model_id, body, emulator.engine.count)
            counts = {"x-amzn-bedrock-input-token-count": str(tokens)}
        else:
            answer, counts = await run_in_threadpool(_invoke_native, emulator, model_id, body, client_region(request))
    except BedrockError as exc:
        return error_response(exc, emulator.retry_after)
    headers = {
        "x-amzn-RequestId": str(uuid.uuid4()),
        **counts,
        "x-amzn-bedrock-invocation-latency": str(max(1, round((time.perf_counter() - started) * 1000))),
    }
    return JSONResponse(answer, headers=headers)


def _invoke_native(
    emulator: BedrockEmulator, model_id: str, body: Any, region: str
) -> tuple[dict[str, Any], dict[str, str]]:
    """A chat model's native body answered in its family's shape, and Bedrock's token-count headers (the only
    place Mistral's answer has them)."""
    try:
        converse_body = to_converse(model_id, body, INVOKE_FIX)
    except NativeBodyError as exc:
        raise BedrockError("ValidationException", str(exc)) from None
    result = emulator.converse(model_id, converse_body, region)
    usage = result["usage"]
    counts = {
        "x-amzn-bedrock-input-token-count": str(usage["inputTokens"]),
        "x-amzn-bedrock-output-token-count": str(usage["outputTokens"]),
    }
    return from_converse(model_id, result), counts


def create_app(
    throttle_rate: float = 0.0, seed: int | None = None, retry_after: float | None = None, engine: Engine | None = None
) -> FastAPI:
    """The Bedrock emulator as an ASGI app: the runtime and batch-job routers over one emulator."""
    app = FastAPI(title="Tokenomy Bedrock emulator", docs_url=None, redoc_url=None, openapi_url=None)
    app.state.emulator = BedrockEmulator(throttle_rate, seed, retry_after, engine)
    app.include_router(router)
    app.include_router(batch_router)
    return app
