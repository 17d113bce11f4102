"""The Gemini emulator's model side: answer one generateContent body, and keep explicit context caches.

`GeminiEmulator.prepare` validates a body and renders its prompt (a named `cachedContent` is put in
front of the request's turns); `answer` yields the answer as events and `response_body` folds them
into a GenerateContentResponse. Usage follows the API: `promptTokenCount` counts every prompt token,
cached ones included, `cachedContentTokenCount` those read from a cache (an explicit cache, or an
implicit hit on a repeated prefix of at least the catalog's `cache_min_tokens`), and
`thoughtsTokenCount` the thinking, which `candidatesTokenCount` leaves out. A request offering Google Search
(googleSearch, googleSearchRetrieval) is answered with a fixed groundingMetadata (`search_grounding`).
"""

from __future__ import annotations

import base64
import json
import secrets
import threading
from collections.abc import Iterator
from dataclasses import dataclass, replace
from datetime import UTC, datetime, timedelta
from typing import Any

from tokenomy.emulate.engine import (
    GEMINI,
    Block,
    CutShort,
    Engine,
    InputTooLong,
    Prepared,
    Turn,
    reasoning_prepared,
    sign_reasoning,
)
from tokenomy.emulate.gemini_parts import (
    REQUEST_FIELDS,
    GeminiError,
    audio_tokens,
    contents,
    field,
    forced_tool,
    generation_config,
    invalid,
    known,
    system_blocks,
)
from tokenomy.emulate.throttle import InjectedThrottle
from tokenomy.errors import TokenomyError
from tokenomy.pricing.catalog import PriceEntry, default_catalog

FINISH = {"stop": "STOP", "length": "MAX_TOKENS"}
# countTokens' own fields: the Gemini API's (contents or a whole generateContentRequest) and Vertex AI's.
COUNT_FIELDS = {"contents", "generateContentRequest", "systemInstruction", "tools", "generationConfig"}
SEARCH_URL = "https://example.com/tokenomy-emulator/search"
SEARCH_TOOLS = ("googleSearch", "googleSearchRetrieval", "google_search", "google_search_retrieval")
IMPLICIT_TTL = 300  # seconds an implicitly cached prefix stays live (Google publishes no figure)
DEFAULT_CACHE_TTL = 3600  # an explicit cache lives one hour unless told otherwise, as documented


def gemini_entry(model: str) -> PriceEntry | None:
    """The catalog entry of a Gemini model id (`gemini-2.5-flash` or `models/gemini-2.5-flash`): a curated one, or
    genai-prices' (Gemini 3 and later)."""
    name = model.rsplit("/", 1)[-1]  # models/x, or Vertex's projects/../publishers/google/models/x
    curated = next((e for e in default_catalog().entries() if e.provider == "google" and e.model == name), None)
    if curated is not None or not name.startswith("gemini-"):
        return curated
    try:
        entry = default_catalog().lookup(name)
    except TokenomyError:
        return None
    return entry if entry.provider == "google" else None


def search_grounding(turns: list[Turn]) -> dict[str, Any]:
    """The emulated Google Search (a request with googleSearch or googleSearchRetrieval): no search is made; the
    answer's groundingMetadata is a fixture with two queries (the last user turn's text, and it "today"), so callers
    and tests can check what carries it and what bills it (per query on Gemini 3, per grounded prompt on 2.x)."""
    asked = next((t for t in reversed(turns) if t.role == "user"), None)
    question = " ".join(b.text for b in asked.blocks)[:200].strip() if asked else ""
    return {
        "webSearchQueries": [question, f"{question} today"],
        "groundingChunks": [{"web": {"uri": SEARCH_URL, "title": "Tokenomy emulator search result"}}],
        "searchEntryPoint": {"renderedContent": "<div>Tokenomy emulator search</div>"},
    }


def rfc3339(moment: datetime) -> str:
    return moment.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ")


def _ttl_seconds(value: Any) -> float:
    text = str(value)
    if not text.endswith("s"):
        raise invalid(f"ttl: a duration in seconds such as '3600s' (got {value!r})")
    try:
        seconds = float(text[:-1])
    except ValueError:
        raise invalid(f"ttl: a duration in seconds such as '3600s' (got {value!r})") from None
    if seconds <= 0:
        raise invalid("ttl: must be positive")
    return seconds


@dataclass
class CachedContent:
    name: str
    model: str
    display_name: str
    system: list[Block]
    turns: list[Turn]
    tokens: int
    created: datetime
    updated: datetime
    expires: datetime

    def body(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "model": f"models/{self.model}",
            "displayName": self.display_name,
            "createTime": rfc3339(self.created),
            "updateTime": rfc3339(self.updated),
            "expireTime": rfc3339(self.expires),
            "usageMetadata": {"totalTokenCount": self.tokens},
        }


@dataclass
class Call:
    """A validated, rendered request and what to generate for it."""

    prepared: Prepared
    model: str
    cached_tokens: int
    json_schema: dict[str, Any] | None
    thinking_budget: int | None
    include_thoughts: bool
    grounding: dict[str, Any] | None = None  # the candidate's groundingMetadata (a Google Search tool was offered)
    audio_tokens: int = 0  # the prompt's audio (inline audio parts), counted in its tokens
    cached_audio_tokens: int = 0  # the part of that audio read from a cache


class GeminiEmulator:
    """State behind the routes: the model, context caches, the throttle RNG."""

    def __init__(self, throttle_rate: float = 0.0, seed: int | None = None, engine: Engine | None = None) -> None:
        self.throttle = InjectedThrottle(throttle_rate, seed)
        self.engine = engine or Engine()
        self.caches: dict[str, CachedContent] = {}
        self.lock = threading.Lock()

    def entry(self, model: str) -> PriceEntry:
        entry = gemini_entry(model)
        if entry is None:
            raise GeminiError(404, f"models/{model.removeprefix('models/')} is not found for API version v1beta")
        return entry

    # -- explicit context caches ----------------------------------------------------------------
    def cache(self, name: str) -> CachedContent:
        with self.lock:
            now = datetime.now(UTC)
            for key in [k for k, c in self.caches.items() if c.expires <= now]:
                del self.caches[key]
            found = self.caches.get(f"cachedContents/{name.rsplit('/', 1)[-1]}")  # Vertex names carry a project
        if found is None:
            raise GeminiError(403, f"CachedContent not found (or permission denied): {name}")
        return found

    def create_cache(self, body: Any) -> CachedContent:
        if not isinstance(body, dict):
            raise invalid("request body must be a CachedContent object")
        known(
            body,
            {"model", "contents", "systemInstruction", "tools", "toolConfig", "ttl", "expireTime", "displayName"},
            "cached_content",
        )
        model = str(body.get("model") or "").rsplit("/", 1)[-1]
        if not model:
            raise invalid("model: required")
        entry = self.entry(model)
        if not entry.has_cache:
            raise invalid(f"Model {model} does not support explicit caching (the catalog has no cached-input price).")
        turns = contents(field(body, "contents") or [])
        system = system_blocks(body)
        try:
            prepared = self.engine.prepare(f"gemini-cache:{model}", system, turns, None, False, 1, None, [])
        except InputTooLong as exc:
            raise invalid(str(exc)) from None
        minimum = entry.cache_min_tokens or 1024
        if prepared.prompt_tokens < minimum:
            raise invalid(
                f"Cached content is too small. total_token_count={prepared.prompt_tokens}, "
                f"min_total_token_count={minimum}"
            )
        now = datetime.now(UTC)
        if field(body, "expireTime"):
            expires = datetime.fromisoformat(str(field(body, "expireTime")).replace("Z", "+00:00"))
        else:
            expires = now + timedelta(seconds=_ttl_seconds(body.get("ttl") or f"{DEFAULT_CACHE_TTL}s"))
        cache = CachedContent(
            f"cachedContents/{secrets.token_hex(8)}",
            model,
            str(field(body, "displayName") or ""),
            system,
            turns,
            prepared.prompt_tokens,
            now,
            now,
            expires,
        )
        with self.lock:
            self.caches[cache.name] = cache
        return cache

    def update_cache(self, name: str, body: Any) -> CachedContent:
        cache = self.cache(name)
        if not isinstance(body, dict) or not (body.get("ttl") or field(body, "expireTime")):
            raise invalid("update: send ttl or expireTime")
        now = datetime.now(UTC)
        if body.get("ttl"):
            cache.expires = now + timedelta(seconds=_ttl_seconds(body["ttl"]))
        else:
            cache.expires = datetime.fromisoformat(str(field(body, "expireTime")).replace("Z", "+00:00"))
        cache.updated = now
        return cache

    def delete_cache(self, name: str) -> None:
        cache = self.cache(name)
        with self.lock:
            self.caches.pop(cache.name, None)

    # -- generateContent -------------------------------------------------------------------------
    def count(self, model: str, body: Any) -> int:
        """countTokens: the prompt tokens generateContent reports for the same request (`promptTokenCount`). The body
        is the Gemini API's (`contents`, or a whole `generateContentRequest`) or Vertex AI's (`contents` beside
        `systemInstruction`, `tools`, `generationConfig`); a named `cachedContent` is counted with its contents."""
        if not isinstance(body, dict):
            raise invalid("request body must be a CountTokensRequest object")
        known(body, COUNT_FIELDS, "count_tokens_request")
        request = field(body, "generateContentRequest")
        if request is not None and (not isinstance(request, dict) or field(body, "contents") is not None):
            raise invalid("countTokens takes either contents or generateContentRequest, not both")
        request = request if request is not None else body
        known(request, REQUEST_FIELDS, "generate_content_request")
        self.entry(model.rsplit("/", 1)[-1])
        turns = contents(field(request, "contents"))
        if not turns:
            raise invalid("contents is not specified")
        system = system_blocks(request)
        name = field(request, "cachedContent")
        if name:
            cache = self.cache(str(name))
            system, turns = cache.system, cache.turns + turns
        return self.engine.count_input(system, turns)

    def prepare(self, model: str, body: Any) -> Call:
        if not isinstance(body, dict):
            raise invalid("request body must be a GenerateContentRequest object")
        known(body, REQUEST_FIELDS, "generate_content_request")
        model = model.rsplit("/", 1)[-1]
        entry = self.entry(model)
        if self.throttle.hit():
            raise GeminiError(429, "Resource has been exhausted (e.g. check quota).")
        turns = contents(field(body, "contents"))
        if not turns:
            raise invalid("contents is not specified")
        options = generation_config(body)
        system = system_blocks(body)
        cached_tokens = 0
        min_tokens: int | None = None
        name = field(body, "cachedContent")
        if name:
            cache = self.cache(str(name))
            if cache.model != model:
                raise invalid(
                    f"Model used by GenerateContent request ({model}) and CachedContent ({cache.model}) "
                    "has to be the same."
                )
            if system or field(body, "toolConfig"):
                raise invalid(
                    "CachedContent can not be used with GenerateContent request setting system_instruction, tools "
                    "or tool_config. Proposed fix: move those values to CachedContent from GenerateContent request."
                )
            system, turns, cached_tokens = cache.system, cache.turns + turns, cache.tokens
        elif entry.has_cache and entry.cache_min_tokens:
            # Implicit caching: the system part and every turn but the last close a prefix Gemini may have cached.
            min_tokens = entry.cache_min_tokens
            if system:
                system[-1] = replace(system[-1], cache_ttl=IMPLICIT_TTL)
            for turn in turns[:-1]:
                turn.blocks[-1] = replace(turn.blocks[-1], cache_ttl=IMPLICIT_TTL)
        limit = options["max_tokens"]
        try:
            prepared = self.engine.prepare(
                f"gemini:{model}", system, turns, min_tokens, False, limit, options["temperature"], options["stop"]
            )
        except InputTooLong as exc:
            raise invalid(f"The input token count exceeds the maximum number of tokens allowed: {exc}") from None
        prepared.forced_tool = forced_tool(body)
        cached = min(cached_tokens, prepared.prompt_tokens) if name else prepared.account.cache_read_tokens
        tools = field(body, "tools") or []
        searched = any(isinstance(t, dict) and any(k in t for k in SEARCH_TOOLS) for t in tools)
        # The cached prefix's audio: an explicit cache's turns, or (implicit) every turn but the last.
        prefix = cache.turns if name else turns[:-1]
        audio = audio_tokens(turns)
        return Call(
            prepared,
            model,
            cached,
            options["json_schema"],
            options["thinking_budget"],
            options["include_thoughts"],
            search_grounding(turns) if searched else None,
            min(audio, prepared.prompt_tokens),
            min(audio_tokens(prefix), cached) if cached else 0,
        )


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
            yield "text", json.dumps(value)
        yield "finish", tokens, thoughts, "STOP"
        return
    output, finish = 0, "stop"
    for item in engine.generate(prepared):
        if isinstance(item, str):
            yield "text", item
        else:
            output, finish = item
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
    """streamGenerateContent?alt=sse: one `data:` line per piece; the last carries finishReason and usage."""

    def sse(body: dict[str, Any]) -> bytes:
        return f"data: {json.dumps(body, separators=(',', ':'))}\r\n\r\n".encode()

    try:
        for event in answer(engine, call):
            if event[0] == "finish":
                _, candidates, thoughts, finish = event
                # a content without parts, as Gemini sends its last chunk
                last: dict[str, Any] = {"content": {"role": "model", "parts": []}, "finishReason": finish, "index": 0}
                if call.grounding is not None:  # sent with the last chunk, as Gemini does
                    last["groundingMetadata"] = call.grounding
                yield sse(
                    {
                        "candidates": [last],
                        "usageMetadata": usage_metadata(call, candidates, thoughts),
                        "modelVersion": call.model,
                        "responseId": response_id,
                    }
                )
                continue
            parts = event_parts(event)
            if parts:
                yield sse(
                    {
                        "candidates": [{"content": {"role": "model", "parts": parts}, "index": 0}],
                        "usageMetadata": {"promptTokenCount": call.prepared.prompt_tokens},
                        "modelVersion": call.model,
                        "responseId": response_id,
                    }
                )
    except GeminiError as exc:
        yield sse(exc.body())
