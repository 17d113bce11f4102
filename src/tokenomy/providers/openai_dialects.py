"""What OpenAI-format servers take differently: one OpenAI wire format (`openai_wire`), and the servers that read it
their own way. Claude behind an OpenAI-compatible endpoint caches only where a part carries `cache_control`; Mistral's
models take only 9-character tool call ids and refuse `stream_options`; OpenAI's own API (and Azure OpenAI) refuses
fields compatible servers take (`top_k`, a document that is no PDF, more than 4 stop sequences, an effort it has no
level for). Each server is told by its model's name or its base URL, as the endpoints name them.
"""

from __future__ import annotations

import functools
import hashlib
import re
from typing import Any
from urllib.parse import urlsplit

from tokenomy.messages import ChatRequest, DocumentBlock, ToolResultBlock
from tokenomy.providers.refusals import Unsupported

# Claude served over an OpenAI-compatible endpoint (OpenRouter's `anthropic/claude-...`, a LiteLLM proxy's
# `claude-...`) caches a prefix only where a content part carries Anthropic's `cache_control`, which both pass on;
# OpenAI caches by itself and refuses the field, as other OpenAI-compatible servers may. A model is taken for Claude
# by its name, as the endpoints name it. Only 5-minute points reach it: a 1-hour one is refused before (the
# format's usage does not say which writes were 1-hour, so they could not be priced).
_CLAUDE_MODELS = re.compile(r"claude", re.IGNORECASE)
CACHE_CONTROL = {"type": "ephemeral"}


@functools.lru_cache(maxsize=256)
def takes_cache_control(model: str) -> bool:
    """Whether `model`'s cache points go as `cache_control` (a route's few names, each searched once)."""
    return _CLAUDE_MODELS.search(model) is not None


# Mistral's models (its API, and its chat templates wherever they are served) take only tool call ids of 9 letters or
# digits: "Tool call id was toolu_01... but must be a-z, A-Z, 0-9, with a length of 9" (a 400).
_MISTRAL_MODELS = re.compile(r"mistral|mixtral|ministral|magistral|devstral|codestral|pixtral|voxtral", re.IGNORECASE)
_MISTRAL_CALL_ID = re.compile(r"[A-Za-z0-9]{9}")
_ID_LETTERS = "0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz"


def mistral_call_id(call_id: str) -> str:
    """A tool call id Mistral takes: its own as it is, any other (OpenAI's call_..., Claude's toolu_...) as 9 letters
    and digits from its hash, the same every time, so a call and its result still name each other, turn after turn."""
    if _MISTRAL_CALL_ID.fullmatch(call_id):
        return call_id
    number = int.from_bytes(hashlib.sha256(call_id.encode()).digest()[:8], "big")
    return "".join(_ID_LETTERS[(number // 62**i) % 62] for i in range(9))


@functools.lru_cache(maxsize=256)
def is_mistral(model: str) -> bool:
    """Whether `model` is one of Mistral's (asked for every request body: a route's few names, each searched once)."""
    return _MISTRAL_MODELS.search(model) is not None


def mistral_call_ids(messages: list[dict[str, Any]]) -> None:
    """Each tool call id in an OpenAI body's messages, and each tool message's, as Mistral takes it."""
    for message in messages:
        for call in message.get("tool_calls") or []:
            call["id"] = mistral_call_id(call["id"])
        if message.get("tool_call_id"):
            message["tool_call_id"] = mistral_call_id(message["tool_call_id"])


def asks_for_usage(base_url: str | None) -> bool:
    """Whether a stream must ask for its usage (`stream_options.include_usage`): Mistral's API sends it unasked, in the
    last chunk, and refuses the field (a 422, "extra_forbidden"), so every streamed call to it failed."""
    host = urlsplit(base_url).hostname or "" if base_url else ""
    return not (host == "mistral.ai" or host.endswith(".mistral.ai"))


# The reasoning_effort values OpenAI's API reference lists (Claude's "max" has no equal; OpenRouter takes it).
OPENAI_EFFORTS = ("none", "minimal", "low", "medium", "high", "xhigh")

OPENAI_STOPS = 4  # the stop sequences OpenAI's `stop` takes at most (its API reference); Claude's take more


def is_openai_proper(base_url: str | None) -> bool:
    """Whether `base_url` is OpenAI's own API (api.openai.com), not an OpenAI-compatible server (vLLM, llama.cpp,
    Ollama, LiteLLM, OpenRouter, ...), which takes fields OpenAI's API refuses (`openai_proper_refusal`)."""
    return (urlsplit(base_url).hostname or "") == "api.openai.com" if base_url else False


def openai_proper_refusal(request: ChatRequest) -> Unsupported | None:
    """What OpenAI's own Chat Completions (api.openai.com, Azure OpenAI) refuses and OpenAI-compatible servers take:
    a reasoning effort it has no level for (`OPENAI_EFFORTS`), more than 4 stop sequences, `top_k` (OpenAI answers
    "Unrecognized request argument supplied: top_k"), and a document that is no PDF (its `file` parts read PDFs only;
    a file id's type is not known here, and goes as given). Refused by name before sending, so a route moves on to a
    model that takes it."""
    effort = request.reasoning.effort if request.reasoning is not None else None
    if effort is not None and effort not in OPENAI_EFFORTS:
        return Unsupported(
            f"reasoning effort {effort!r} (`{{where}}`; OpenAI's reasoning_effort is one of "
            f"{', '.join(OPENAI_EFFORTS)})",
            field="reasoning_effort",
        )
    if len(request.stop) > OPENAI_STOPS:
        return Unsupported(
            f"{len(request.stop)} stop sequences (`{{where}}`; OpenAI's stop takes up to {OPENAI_STOPS})", field="stop"
        )
    if request.top_k is not None:
        return Unsupported("field `{where}` (OpenAI's Chat Completions has no top_k sampling)", field="top_k")
    for i, message in enumerate(request.messages):
        for j, block in enumerate(message.content):
            parts = block.content if isinstance(block, ToolResultBlock) else [block]
            for k, part in enumerate(parts):
                if isinstance(part, DocumentBlock) and part.file_id is None and part.format != "pdf":
                    return Unsupported(
                        f"a {part.format} document ({{where}}; OpenAI's Chat Completions reads PDF files only: send "
                        "its text as a text block)",
                        i,
                        j,
                        k if isinstance(block, ToolResultBlock) else None,
                    )
    return None
