"""The HTTP face of the OpenAI Files + Batches emulator (`openai_batch`): routes, multipart uploads, errors.

`batch_router` serves the same routes under /v1 (OpenAI) and /openai (Azure OpenAI).
"""

from __future__ import annotations

import email.parser
import email.policy
import json
from typing import Any

from fastapi import APIRouter, FastAPI, Request
from starlette.responses import JSONResponse, Response

from tokenomy.emulate.openai_batch import APIError, OpenAIBatchEmulator, OpenAIBatchSettings


def _parse_upload(content_type: str, body: bytes) -> tuple[dict[str, str], tuple[str, bytes] | None]:
    """multipart/form-data fields and the uploaded file, with the standard library's MIME parser."""
    message = email.parser.BytesParser(policy=email.policy.HTTP).parsebytes(
        f"Content-Type: {content_type}\r\n\r\n".encode() + body
    )
    fields: dict[str, str] = {}
    upload: tuple[str, bytes] | None = None
    for part in message.iter_parts() if message.is_multipart() else []:
        name = part.get_param("name", header="content-disposition")
        filename = part.get_filename()
        payload = part.get_payload(decode=True) or b""
        assert isinstance(payload, bytes)  # decode=True on a non-multipart part gives bytes
        if filename is not None:
            upload = (filename, payload)
        elif isinstance(name, str):
            fields[name] = payload.decode()
    return fields, upload


def create_app(engine=None, **settings: Any) -> FastAPI:
    """The Files + Batches emulator; `engine` defaults to the local model (loaded when first needed)."""
    emulator = OpenAIBatchEmulator(engine, OpenAIBatchSettings(**settings))
    app = FastAPI(title="Tokenomy OpenAI Batch emulator", docs_url=None, redoc_url=None, openapi_url=None)
    app.state.emulator = emulator
    install_errors(app)
    app.include_router(batch_router(emulator, "/v1"))
    return app


def install_errors(app: FastAPI) -> None:
    """Answer APIError with OpenAI's error body."""

    @app.exception_handler(APIError)
    async def api_error(request: Request, exc: APIError):
        return JSONResponse(exc.body(), status_code=exc.status)


def batch_router(emulator: OpenAIBatchEmulator, prefix: str, dependencies: list | None = None) -> APIRouter:
    """The Files + Batches routes under `prefix` (/v1 for OpenAI, /openai for Azure)."""
    router = APIRouter(prefix=prefix, dependencies=dependencies or [])

    @router.post("/files")
    async def upload(request: Request):
        fields, upload = _parse_upload(request.headers.get("content-type", ""), await request.body())
        if upload is None:
            raise APIError(400, "Missing required parameter: 'file'.", "file", "missing_required_parameter")
        if not fields.get("purpose"):
            raise APIError(400, "Missing required parameter: 'purpose'.", "purpose", "missing_required_parameter")
        return emulator.add_file(upload[0], upload[1], fields["purpose"])

    @router.get("/files")
    async def list_files():
        return {"object": "list", "data": [meta for meta, _ in emulator.files.values()], "has_more": False}

    @router.get("/files/{file_id}")
    async def get_file(file_id: str):
        return emulator.file(file_id)[0]

    @router.delete("/files/{file_id}")
    async def delete_file(file_id: str):
        emulator.file(file_id)
        emulator.files.pop(file_id, None)
        return {"id": file_id, "object": "file", "deleted": True}

    @router.get("/files/{file_id}/content")
    async def file_content(file_id: str):
        return Response(emulator.file(file_id)[1], media_type="application/octet-stream")

    @router.post("/batches")
    async def create_batch(request: Request):
        try:
            body = json.loads(await request.body() or b"{}")
        except ValueError:
            raise APIError(400, "The request body is not valid JSON.") from None
        return emulator.create_batch(body if isinstance(body, dict) else {})

    @router.get("/batches")
    async def list_batches(limit: int = 20, after: str | None = None):
        batches = sorted(emulator.batches.values(), key=lambda b: (b["created_at"], b["id"]), reverse=True)
        if after:
            ids = [b["id"] for b in batches]
            batches = batches[ids.index(after) + 1 :] if after in ids else []
        page = batches[:limit]
        return {
            "object": "list",
            "data": page,
            "first_id": page[0]["id"] if page else None,
            "last_id": page[-1]["id"] if page else None,
            "has_more": len(batches) > limit,
        }

    @router.get("/batches/{batch_id}")
    async def get_batch(batch_id: str):
        return emulator.batch(batch_id)

    @router.post("/batches/{batch_id}/cancel")
    async def cancel_batch(batch_id: str):
        return emulator.cancel(batch_id)

    return router
