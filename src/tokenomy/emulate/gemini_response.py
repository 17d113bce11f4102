"""The Gemini emulator's answers: what the model says for a prepared call, as a GenerateContentResponse or as
streamGenerateContent's SSE chunks.

Apart from `gemini_model` (which validates a body, renders its prompt and keeps the context caches) because building
the wire answer is its own job, shared by generateContent, the stream and both batch APIs (`gemini_batch`,
`vertex_batch`). `answer` yields the answer as events; `response_body` folds them into one response and
`stream_chunks` sends them one `data:` line each. Usage follows the API: `promptTokenCount` counts every prompt token,
cached ones included, `cachedContentTokenCount` those read from a cache, and `thoughtsTokenCount` the thinking, which
`candidatesTokenCount` leaves out.
"""

from __future__ import annotations

import base64
import json
from collections.abc import Iterator
from typing import Any

from tokenomy.emulate.engine import (
    GEMINI,
    CutShort,
    Engine,
    answer_prepared,
    generate_to_stop,
    reasoning_prepared,
    sign_reasoning,
)
from tokenomy.emulate.gemini_model import Call
from tokenomy.emulate.gemini_parts import GeminiError

FINISH = {"stop": "STOP", "length": "MAX_TOKENS"}


def model_failure(exc: Exception) -> GeminiError:
    """A local-model failure as the API reports an internal error: a 500 in its error shape, never a traceback."""
    return exc if isinstance(exc, GeminiError) else GeminiError(500, f"The model failed: {exc}")


def answer(engine: Engine, call: Call) -> Iterator[tuple]:
    """The answer as events: ("thought", text, signature), ("text", text), ("call", name, args),
    then ("finish", candidate_tokens, thought_tokens, finish_reason)."""
    prepared = call.prepared
    thoughts = 0
    if call.thinking_budget is not None:
        pieces: list[str] = []
        for item in engine.generate(reasoning_prepared(prepared, call.thinking_budget)):
            if isinstance(item, str):
                pieces.append(item)
            else:
                thoughts = item[0]
        text = "".join(pieces)
        if call.include_thoughts:
            yield "thought", text, sign_reasoning(text, GEMINI)
        answering = answer_prepared(prepared, thoughts)  # maxOutputTokens counts the thoughts as well as the answer
        if answering is None:
            yield "finish", 0, thoughts, "MAX_TOKENS"
            return
        prepared = answering
    if prepared.forced_tool is not None or call.json_schema is not None:
        schema = prepared.forced_tool["schema"] if prepared.forced_tool else call.json_schema
        try:
            # A function's arguments are an object; a response schema may be any type (an array, a string, ...).
            generate = engine.generate_json if prepared.forced_tool is not None else engine.generate_value
            value, tokens = generate(prepared, schema or {"type": "object"})
        except CutShort as cut:
            # Gemini stops at MAX_TOKENS with the JSON text written so far; a function call is sent whole or
            # not at all, so a call the limit cut leaves no part.
            if prepared.forced_tool is None:
                yield "text", cut.text
            yield "finish", cut.tokens, thoughts, "MAX_TOKENS"
            return
        except ValueError as exc:
            raise GeminiError(500, f"The model could not produce JSON: {exc}") from None
        if prepared.forced_tool is not None:
            yield "call", prepared.forced_tool["name"], value
        else:
            yield "text", value if call.enum_text else json.dumps(value)
        yield "finish", tokens, thoughts, "STOP"
        return
    output, finish = 0, "stop"
    for piece in generate_to_stop(engine, prepared):  # the text ends before a stop sequence, which Gemini calls STOP
        if isinstance(piece, str):
            yield "text", piece
        else:
            output, finish, _ = piece
    yield "finish", output, thoughts, FINISH.get(finish, "STOP")


def event_parts(event: tuple) -> list[dict[str, Any]]:
    if event[0] == "thought":
        signature = base64.b64encode(event[2].encode()).decode()  # bytes on the wire, base64 in JSON
        return [{"text": event[1], "thought": True, "thoughtSignature": signature}]
    if event[0] == "text":
        return [{"text": event[1]}] if event[1] else []
    if event[0] == "call":
        return [{"functionCall": {"name": event[1], "args": event[2]}}]
    return []


def modality_details(tokens: int, audio: int) -> list[dict[str, Any]]:
    """A count split by modality as Google reports it: TEXT, and AUDIO where there is any."""
    details = [{"modality": "TEXT", "tokenCount": tokens - audio}]
    return [*details, {"modality": "AUDIO", "tokenCount": audio}] if audio else details


def usage_metadata(call: Call, candidates: int, thoughts: int) -> dict[str, Any]:
    prompt = call.prepared.prompt_tokens
    usage: dict[str, Any] = {
        "promptTokenCount": prompt,
        "candidatesTokenCount": candidates,
        "totalTokenCount": prompt + candidates + thoughts,
        "promptTokensDetails": modality_details(prompt, call.audio_tokens),
    }
    if candidates:  # the answer is text (thoughts are counted apart, in no modality)
        usage["candidatesTokensDetails"] = modality_details(candidates, 0)
    if call.cached_tokens:
        usage["cachedContentTokenCount"] = call.cached_tokens
        usage["cacheTokensDetails"] = modality_details(call.cached_tokens, call.cached_audio_tokens)
    if thoughts:
        usage["thoughtsTokenCount"] = thoughts
    return usage


def response_body(call: Call, events: Iterator[tuple], response_id: str) -> dict[str, Any]:
    """Fold answer events into one GenerateContentResponse."""
    parts: list[dict[str, Any]] = []
    candidates, thoughts, finish = 0, 0, "STOP"
    for event in events:
        if event[0] == "finish":
            _, candidates, thoughts, finish = event
            continue
        for part in event_parts(event):
            if (
                "text" in part
                and parts
                and "text" in parts[-1]
                and not part.get("thought")
                and not parts[-1].get("thought")
            ):
                parts[-1]["text"] += part["text"]
            else:
                parts.append(part)
    candidate: dict[str, Any] = {"content": {"role": "model", "parts": parts}, "finishReason": finish, "index": 0}
    if call.grounding is not None:
        candidate["groundingMetadata"] = call.grounding
    return {
        "candidates": [candidate],
        "usageMetadata": usage_metadata(call, candidates, thoughts),
        "modelVersion": call.model,
        "responseId": response_id,
    }


def stream_chunks(engine: Engine, call: Call, response_id: str) -> Iterator[bytes]:
    """streamGenerateContent?alt=sse: one `data:` line per piece; the last carries finishReason and usage, with the
    answer's last piece, as Gemini's does (google-genai's chats drop a streamed turn whose last chunk has no part)."""

    def sse(body: dict[str, Any]) -> bytes:
        return f"data: {json.dumps(body, separators=(',', ':'))}\r\n\r\n".encode()

    def chunk(parts: list[dict[str, Any]], finish: str | None = None, usage: dict[str, Any] | None = None) -> bytes:
        candidate: dict[str, Any] = {"content": {"role": "model", "parts": parts}, "index": 0}
        if finish is not None:
            candidate["finishReason"] = finish
            if call.grounding is not None:  # sent with the last chunk, as Gemini does
                candidate["groundingMetadata"] = call.grounding
        return sse(
            {
                "candidates": [candidate],
                "usageMetadata": usage or {"promptTokenCount": call.prepared.prompt_tokens},
                "modelVersion": call.model,
                "responseId": response_id,
            }
        )

    held: list[dict[str, Any]] = []  # the latest piece, sent in the next piece's chunk or in the last
    try:
        for event in answer(engine, call):
            if event[0] == "finish":
                _, candidates, thoughts, finish = event
                yield chunk(held, finish, usage_metadata(call, candidates, thoughts))
                held = []
                continue
            parts = event_parts(event)
            if parts:
                if held:
                    yield chunk(held)
                held = parts
    except Exception as exc:  # the stream ends with the error as its last chunk, as Gemini ends one that failed
        if held:  # answered all the same
            yield chunk(held)
        yield sse(model_failure(exc).body())
