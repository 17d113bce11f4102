"""The Gemini emulator's model side: check and render one generateContent body, and keep explicit context caches.

`GeminiEmulator.prepare` validates a body and renders its prompt (a named `cachedContent` is put in
front of the request's turns) as a `Call`, which `gemini_response` answers. The cached tokens it counts are those read
from a cache: an explicit cache, or an implicit hit on a repeated prefix of at least the catalog's `cache_min_tokens`.
A request offering Google Search (googleSearch, googleSearchRetrieval) is answered with a fixed groundingMetadata
(`search_grounding`).
"""

from __future__ import annotations

import secrets
import threading
from dataclasses import dataclass, replace
from datetime import UTC, datetime, timedelta
from typing import Any

from tokenomy.emulate.engine import Block, Engine, InputTooLong, Prepared, Turn
from tokenomy.emulate.gemini_parts import (
    GeminiError,
    audio_tokens,
    camel,
    check_function_turns,
    contents,
    field,
    forced_tool,
    generation_config,
    invalid,
    known,
    system_blocks,
)
from tokenomy.emulate.gemini_request_names import REQUEST_FIELDS
from tokenomy.emulate.throttle import InjectedThrottle
from tokenomy.errors import TokenomyError
from tokenomy.pricing.catalog import PriceEntry, default_catalog
from tokenomy.providers.gemini_update_mask import EXPIRATION, masked_update

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


def _expire_time(value: Any) -> datetime:
    """An expireTime as the API reads it: a proto3 Timestamp, RFC 3339 with its offset ("Z" or "+hh:mm"). One with
    no offset is refused, not taken as local time: kept naive, it could not be compared with the aware "now"."""
    problem = f"expireTime: an RFC 3339 timestamp with its offset, such as '2030-01-01T00:00:00Z' (got {value!r})"
    try:
        moment = datetime.fromisoformat(str(value).replace("Z", "+00:00"))
    except ValueError:
        raise invalid(problem) from None
    if moment.tzinfo is None:
        raise invalid(problem)
    return moment


def _expiration(body: dict[str, Any], now: datetime) -> datetime | None:
    """When a create or update body says the cache expires, or None where it says nothing. ttl and expireTime are
    the two forms of one field (CachedContent's expiration), so a body setting both is refused, not read as one."""
    ttl, expire = body.get("ttl"), field(body, "expireTime")
    if ttl is not None and expire is not None:
        raise invalid("ttl and expireTime: set one of them (both are the cache's expiration)")
    if expire is not None:
        return _expire_time(expire)
    return None if ttl is None else now + timedelta(seconds=_ttl_seconds(ttl))


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
    # The cache's tools and toolConfig as a generateContent body carries them: a call using the cache may set
    # neither, so the cache's apply (toolConfig's forced function call, a Google Search tool) as the API applies them.
    tooling: dict[str, Any]

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
    enum_text: bool = False  # the value json_schema shapes is sent bare (text/x.enum), not as JSON


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
    def _drop_expired(self) -> None:
        """Forget the caches past their expireTime (call with the lock held), as Gemini deletes them."""
        now = datetime.now(UTC)
        for key in [k for k, c in self.caches.items() if c.expires <= now]:
            del self.caches[key]

    def cache(self, name: str) -> CachedContent:
        with self.lock:
            self._drop_expired()
            found = self.caches.get(f"cachedContents/{name.rsplit('/', 1)[-1]}")  # Vertex names carry a project
        if found is None:
            raise GeminiError(403, f"CachedContent not found (or permission denied): {name}")
        return found

    def live_caches(self) -> list[CachedContent]:
        """The caches not yet expired, by name (cachedContents.list); expired ones are dropped first, so the list
        never names a cache that a lookup would not find."""
        with self.lock:
            self._drop_expired()
            return [self.caches[name] for name in sorted(self.caches)]

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
        tooling = {"tools": field(body, "tools") or [], "toolConfig": field(body, "toolConfig")}
        forced_tool(tooling)  # a toolConfig the calls using the cache could not follow is refused now, by its name
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
        expires = _expiration(body, now) or now + timedelta(seconds=DEFAULT_CACHE_TTL)
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
            tooling,
        )
        with self.lock:
            self.caches[cache.name] = cache
        return cache

    def update_cache(self, name: str, body: Any, mask: str | None = None) -> CachedContent:
        """cachedContents.patch: a new expiration (ttl or expireTime), the only fields Gemini updates. With an
        `updateMask` (comma-separated field paths) only the fields it names are read from the body, as a field mask
        means, and a mask naming a field that cannot be updated is refused; without one, each field sent is read."""
        cache = self.cache(name)
        if not isinstance(body, dict):
            raise invalid("update: a CachedContent object with ttl or expireTime")
        try:
            body = masked_update(body, mask)
        except ValueError as exc:
            raise invalid(str(exc)) from None
        for key in body:
            if camel(key) not in EXPIRATION:  # as documented, only the expiration may be updated
                raise invalid(f"update: only a cache's expiration (ttl or expireTime) can be changed, not {key}")
        now = datetime.now(UTC)
        expires = _expiration(body, now)
        if expires is None:
            raise invalid("update: send ttl or expireTime")
        cache.expires, cache.updated = expires, now
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
        else:  # (a cache's turns are not kept as sent: the request's are checked alone only without one)
            check_function_turns(field(request, "contents"))
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
        options = generation_config(body, model)
        system = system_blocks(body)
        cached_tokens = 0
        min_tokens: int | None = None
        tooling = body  # where the tools and toolConfig are: the request's, or (one may not set them) its cache's
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
            tooling = cache.tooling
        else:
            check_function_turns(field(body, "contents"))
        if not name and entry.has_cache and entry.cache_min_tokens:
            # Implicit caching: the system part and every turn but the last close a prefix Gemini may have cached.
            min_tokens = entry.cache_min_tokens
            if system:
                system[-1] = replace(system[-1], cache_ttl=IMPLICIT_TTL)
            for turn in turns[:-1]:
                turn.blocks[-1] = replace(turn.blocks[-1], cache_ttl=IMPLICIT_TTL)
        limit = options["max_tokens"]
        try:
            prepared = self.engine.prepare(
                f"gemini:{model}",
                system,
                turns,
                min_tokens,
                False,
                limit,
                options["temperature"],
                options["stop"],
                sampling=options["sampling"],
            )
        except InputTooLong as exc:
            raise invalid(f"The input token count exceeds the maximum number of tokens allowed: {exc}") from None
        prepared.forced_tool = forced_tool(tooling)
        cached = min(cached_tokens, prepared.prompt_tokens) if name else prepared.account.cache_read_tokens
        tools = field(tooling, "tools") or []
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
            options["enum_text"],
        )
