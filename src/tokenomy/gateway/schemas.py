"""Request/response shapes of the OpenAI Chat Completions API that the gateway accepts (pydantic: parsed and
type-checked in one pass, and the OpenAPI document's schema). `openai_ingress` maps a parsed request onto a
ChatRequest.
"""

from __future__ import annotations

from typing import Any, Literal, Optional, Union

from pydantic import BaseModel, ConfigDict, Field, ValidationError

# Fields the gateway maps itself; every other field of the body travels in ChatRequest.extra.
MAPPED = {
    "model",
    "messages",
    "max_tokens",
    "max_completion_tokens",
    "temperature",
    "top_p",
    "top_k",
    "stop",
    "seed",
    "presence_penalty",
    "frequency_penalty",
    "stream",
    "stream_options",
    "tools",
    "tool_choice",
    "parallel_tool_calls",
    "response_format",
    "reasoning_effort",
    "thinking",
    "n",
    "logprobs",
    "user",
    "prompt_cache_key",
}


class ChatMessage(BaseModel):
    model_config = ConfigDict(extra="allow")
    role: Literal["system", "developer", "user", "assistant", "tool", "function"]
    content: Union[str, list[Any], None] = None
    name: Optional[str] = None
    tool_calls: Optional[list[Any]] = None
    tool_call_id: Optional[str] = None


class StreamOptions(BaseModel):
    model_config = ConfigDict(extra="allow", strict=True)
    include_usage: bool = False
    include_obfuscation: Optional[bool] = None  # the gateway's chunks have no `obfuscation` padding


class ChatCompletionRequest(BaseModel):
    """OpenAI's chat-completions request: typed where the gateway maps a field, the rest passed through.

    Strict, as OpenAI's API is: `max_tokens: "10"` or `stream: "yes"` is a 400 naming the field, not a guess
    (an integer is still a valid float, e.g. temperature: 1)."""

    model_config = ConfigDict(extra="allow", strict=True)
    model: str = Field(min_length=1, max_length=512)
    messages: list[ChatMessage] = Field(min_length=1)
    max_tokens: Optional[int] = Field(None, ge=1, le=1_000_000)
    max_completion_tokens: Optional[int] = Field(None, ge=1, le=1_000_000)
    temperature: Optional[float] = Field(None, ge=0, le=2)
    top_p: Optional[float] = Field(None, ge=0, le=1)
    top_k: Optional[int] = Field(None, ge=1)
    stop: Union[str, list[str], None] = None
    seed: Optional[int] = None
    presence_penalty: Optional[float] = Field(None, ge=-2, le=2)
    frequency_penalty: Optional[float] = Field(None, ge=-2, le=2)
    stream: Optional[bool] = False
    stream_options: Optional[StreamOptions] = None
    tools: Optional[list[Any]] = None
    tool_choice: Union[str, dict[str, Any], None] = None
    parallel_tool_calls: Optional[bool] = None
    response_format: Optional[dict[str, Any]] = None
    reasoning_effort: Optional[str] = None
    # A thinking budget in tokens, in Anthropic's shape ({"type": "enabled", "budget_tokens": N}): OpenAI's API has
    # no field for it, and Claude, Bedrock and Gemini take a budget rather than an effort level.
    thinking: Optional[dict[str, Any]] = None
    n: Optional[int] = Field(None, ge=1, le=128)
    logprobs: Optional[bool] = None


class ErrorBody(BaseModel):
    message: str
    type: str
    param: Optional[str] = None
    code: Optional[str] = None


class ErrorResponse(BaseModel):
    error: ErrorBody


def parse_chat_request(raw: bytes, parsed: Any = None) -> ChatCompletionRequest:
    """The request from its body: from `parsed`, the body's JSON value when the edge already parsed it
    (`hygiene.PARSED_BODY`), else from the bytes. Validating the parsed value takes half the time parsing the
    bytes again does for a body with an image and tools, and gives the same request. A body it refuses is
    validated again from the bytes, so the 400 reads as it always did (JSON's terms: "a valid array")."""
    request = from_parsed(parsed)
    return ChatCompletionRequest.model_validate_json(raw) if request is None else request


def from_parsed(parsed: Any) -> ChatCompletionRequest | None:
    """The request from the body's JSON value as the edge parsed it; None when there is none, or it does not
    validate: then the bytes are (`parse_chat_request`), which the endpoint need not read before (a request's body
    read through Starlette's Request cost ~15,000 instructions, the edge having it already)."""
    if isinstance(parsed, dict):
        try:
            return ChatCompletionRequest.model_validate(parsed)
        except ValidationError:
            pass
    return None
