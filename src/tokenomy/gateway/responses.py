"""OpenAI-shaped bodies the gateway answers with: errors, completions, usage."""

from __future__ import annotations

import time
from typing import Any

from fastapi.responses import JSONResponse

from tokenomy.messages import ChatResponse


def error(status: int, message: str, kind: str, code: str | None = None, param: str | None = None) -> JSONResponse:
    """OpenAI's error shape."""
    return JSONResponse({"error": {"message": message, "type": kind, "param": param, "code": code}}, status_code=status)


def completion_body(response: ChatResponse, model: str, request_id: str) -> dict[str, Any]:
    """A chat.completion object, plus Tokenomy's cost and attempt details under `tokenomy`."""
    usage = response.usage
    return {
        "id": request_id, "object": "chat.completion", "created": int(time.time()), "model": model,
        "choices": [{"index": 0, "message": {"role": "assistant", "content": response.text},
                     "finish_reason": response.finish_reason}],
        "usage": usage_body(response),
        "tokenomy": {"cost_usd": str(response.cost_usd), "model": response.model, "provider": response.provider,
                     "tier": response.tier, "attempts": response.attempts, "cache_write_tokens": usage.cache_write_tokens},
    }


def usage_body(response: ChatResponse) -> dict[str, Any]:
    """OpenAI usage: prompt_tokens include cached tokens, reported under prompt_tokens_details."""
    usage = response.usage
    return {"prompt_tokens": usage.total_input_tokens, "completion_tokens": usage.output_tokens,
            "total_tokens": usage.total_input_tokens + usage.output_tokens,
            "prompt_tokens_details": {"cached_tokens": usage.cache_read_tokens}}
