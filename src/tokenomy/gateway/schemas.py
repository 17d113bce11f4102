"""Request/response shapes of the OpenAI Chat Completions API that the gateway accepts."""

from __future__ import annotations

import json
from typing import Any, Literal, Optional, Union

from pydantic import BaseModel, ConfigDict, Field

from tokenomy.config import RouteConfig
from tokenomy.messages import ChatRequest, Message, RequestMeta, ResponseFormat, ToolSpec


class ContentPart(BaseModel):
    model_config = ConfigDict(extra="allow")
    type: str
    text: Optional[str] = None


class ChatMessage(BaseModel):
    model_config = ConfigDict(extra="allow")
    role: Literal["system", "developer", "user", "assistant", "tool"]
    content: Union[str, list[ContentPart], None] = None
    name: Optional[str] = None


class StreamOptions(BaseModel):
    include_usage: bool = False


class ChatCompletionRequest(BaseModel):
    """The subset of OpenAI's request that maps onto a provider-neutral ChatRequest."""

    model_config = ConfigDict(extra="allow")
    model: str = Field(min_length=1, max_length=512)
    messages: list[ChatMessage] = Field(min_length=1)
    max_tokens: Optional[int] = Field(None, ge=1, le=1_000_000)
    max_completion_tokens: Optional[int] = Field(None, ge=1, le=1_000_000)
    temperature: Optional[float] = Field(None, ge=0, le=2)
    stop: Union[str, list[str], None] = None
    stream: bool = False
    stream_options: Optional[StreamOptions] = None
    tools: Optional[list[dict[str, Any]]] = None
    response_format: Optional[dict[str, Any]] = None
    n: int = Field(1, ge=1, le=1)
    user: Optional[str] = None


class ErrorBody(BaseModel):
    message: str
    type: str
    param: Optional[str] = None
    code: Optional[str] = None


class ErrorResponse(BaseModel):
    error: ErrorBody


def _text(content: Union[str, list[ContentPart], None]) -> str:
    if content is None:
        return ""
    if isinstance(content, str):
        return content
    return "".join(part.text or "" for part in content if part.type == "text")


def parse_tags(header: str | None) -> dict[str, str]:
    """`x-tokenomy-tags`: JSON object or `k=v,k2=v2`."""
    if not header:
        return {}
    header = header.strip()
    if header.startswith("{"):
        try:
            data = json.loads(header)
        except json.JSONDecodeError:
            raise ValueError("x-tokenomy-tags: not valid JSON; send an object or k=v,k2=v2") from None
        if not isinstance(data, dict):
            raise ValueError("x-tokenomy-tags: send a JSON object or k=v,k2=v2")
        return {str(k): str(v) for k, v in data.items()}
    tags = {}
    for pair in header.split(","):
        if pair.strip():
            key, sep, value = pair.partition("=")
            if not sep or not key.strip():
                raise ValueError(f"x-tokenomy-tags: {pair.strip()!r} is not k=v")
            tags[key.strip()] = value.strip()
    return tags


def to_chat_request(body: ChatCompletionRequest, headers, key, route: RouteConfig) -> ChatRequest:  # noqa: ANN001
    """Map the OpenAI request (system/developer messages become the system prompt) to a ChatRequest."""
    system_parts = [_text(m.content) for m in body.messages if m.role in ("system", "developer")]
    turns = [Message("assistant" if m.role == "assistant" else "user", _text(m.content))
             for m in body.messages if m.role not in ("system", "developer")]
    if not turns:
        raise ValueError("messages: at least one user message is required")
    stop = [body.stop] if isinstance(body.stop, str) else list(body.stop or [])
    meta = RequestMeta(task=headers.get("x-tokenomy-task") or route.task, tags=parse_tags(headers.get("x-tokenomy-tags")),
                       tenant=key.team if key else None, key_id=key.key_id if key else None, route=body.model)
    response_format = None
    if body.response_format and body.response_format.get("type") == "json_schema":
        spec = body.response_format.get("json_schema") or {}
        if not isinstance(spec, dict) or not isinstance(spec.get("schema") or {}, dict):
            raise ValueError("response_format.json_schema: send an object {\"name\": ..., \"schema\": {...}}")
        response_format = ResponseFormat("json_schema", spec.get("schema") or {}, spec.get("name"), spec.get("strict"))
    elif body.response_format and body.response_format.get("type") == "json_object":
        response_format = ResponseFormat("json_object")
    tools = [ToolSpec(f.get("name", ""), f.get("description"), f.get("parameters") or {"type": "object", "properties": {}})
             for f in ((t.get("function") or {}) for t in body.tools or [])]
    return ChatRequest(messages=turns, model=route.model or body.model, system="\n\n".join(system_parts) or None,
                       max_tokens=body.max_completion_tokens or body.max_tokens, temperature=body.temperature,
                       stop=stop, tools=tools, response_format=response_format, meta=meta)
